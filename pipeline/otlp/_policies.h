/* Per-trace checks of the sampling policies for _heads.c.
 *
 * Each is the Python definition named in its comment (pipeline.native lists them),
 * evaluated the same way (truthiness, `>` on durations, bytes.fromhex) on heads
 * without attribute lookups: a trace is judged by every policy, so these run once per
 * span per trace.
 */
#ifndef SPANSTREAM_POLICIES_H
#define SPANSTREAM_POLICIES_H

#include <Python.h>
#include <stdint.h>

#include "_sampling.h"

/* The first span whose parent_span_id is falsy, else max(spans, key=duration_ns)
 * (the earliest of equals), else None. The caller holds `seq`. */
static PyObject *
pick_representative(PyObject *seq)
{
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        SpanHead *h = as_head(PySequence_Fast_GET_ITEM(seq, i));
        int root = h ? PyObject_Not(h->parent_span_id) : -1;
        if (root != 0)
            return root < 0 ? NULL : Py_NewRef((PyObject *)h);
    }
    PyObject *best = NULL, *best_key = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *span = PySequence_Fast_GET_ITEM(seq, i);
        SpanHead *h = as_head(span);
        PyObject *key = h ? h->duration_ns : NULL;
        int gt = key == NULL ? -1 : best_key == NULL ? 1
                                  : PyObject_RichCompareBool(key, best_key, Py_GT);
        if (gt > 0) {
            best = span;
            Py_XSETREF(best_key, Py_NewRef(key));
        }
        if (gt < 0) {
            Py_XDECREF(best_key);
            return NULL;
        }
    }
    Py_XDECREF(best_key);
    return Py_NewRef(best != NULL ? best : Py_None);
}

/* representative(spans) -> TraceData.representative() of a trace holding `spans` */
static PyObject *
representative(PyObject *self, PyObject *spans)
{
    (void)self;
    PyObject *seq = PySequence_Fast(spans, "spans must be a sequence");
    PyObject *out = seq ? pick_representative(seq) : NULL;
    Py_XDECREF(seq);
    return out;
}

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
