/* The probabilistic policy's trace hash for _heads.c.
 *
 * trace_hash() is the Python definition named in its comment (pipeline.native lists
 * it), computed the same way (bytes.fromhex, else UTF-8): every trace is hashed once
 * per decision.
 */
#ifndef SPANSTREAM_POLICIES_H
#define SPANSTREAM_POLICIES_H

#include <Python.h>
#include <stdint.h>

#define FNV_OFFSET 0xCBF29CE484222325ULL
#define FNV_PRIME 0x100000001B3ULL

static uint64_t
fnv1a(uint64_t h, const unsigned char *p, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

static uint64_t
fmix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDULL;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ULL;
    return h ^ (h >> 33);
}

static int
hex_digit(Py_UCS1 c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* FNV-1a of a canonical hex id's bytes (even length, hex digits only) from `h`;
 * 0 when the id is anything else, which bytes.fromhex must judge. */
static int
fnv1a_hex(PyObject *id, uint64_t *h)
{
    if (!PyUnicode_IS_ASCII(id) || PyUnicode_GET_LENGTH(id) % 2 != 0)
        return 0;
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(id);
    uint64_t acc = *h;
    for (Py_ssize_t i = 0; i < PyUnicode_GET_LENGTH(id); i += 2) {
        int hi = hex_digit(s[i]), lo = hex_digit(s[i + 1]);
        if (hi < 0 || lo < 0)
            return 0;
        acc = (acc ^ (uint64_t)(hi << 4 | lo)) * FNV_PRIME;
    }
    *h = acc;
    return 1;
}

/* The id's bytes as trace_id_bytes() makes them: bytes.fromhex, else UTF-8. */
static PyObject *
id_bytes(PyObject *id)
{
    PyObject *raw = PyObject_CallMethod((PyObject *)&PyBytes_Type, "fromhex", "O", id);
    if (raw == NULL && PyErr_ExceptionMatches(PyExc_ValueError)) {
        PyErr_Clear();
        raw = PyUnicode_AsUTF8String(id);
    }
    return raw;
}

/* trace_hash(trace_id, salt) -> fmix64(fnv1a_64(salt + trace_id_bytes(trace_id))) */
static PyObject *
trace_hash(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *id;
    Py_buffer salt;
    if (!PyArg_ParseTuple(args, "Uy*", &id, &salt))
        return NULL;
    uint64_t h = fnv1a(FNV_OFFSET, salt.buf, salt.len);
    PyBuffer_Release(&salt);
    if (!fnv1a_hex(id, &h)) {
        PyObject *raw = id_bytes(id);
        if (raw == NULL)
            return NULL;
        h = fnv1a(h, (const unsigned char *)PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw));
        Py_DECREF(raw);
    }
    return PyLong_FromUnsignedLongLong(fmix(h));
}

#endif
