/* The service graph's peer reader: peer_in_span() is the Python definition
 * pipeline.graph.read:peer_in_span_of (pipeline.native lists the two).
 *
 * needles: ((bytes, bool), ...), each a KeyValue's start (tag 1, key length, key,
 * tag 2) and whether its attribute names a database, in the order the rules read
 * them. The first needle found in value[start:end] whose AnyValue is a non-empty
 * string gives the peer (up to max_peer characters, decoded with "replace").
 */
#ifndef SPANSTREAM_GRAPH_H
#define SPANSTREAM_GRAPH_H

#include <string.h>

/* A one- or two-byte varint at *pos (< end): its value, or -1. */
static Py_ssize_t
graph_varint(const unsigned char *v, Py_ssize_t *pos, Py_ssize_t end)
{
    Py_ssize_t p = *pos;
    if (p >= end)
        return -1;
    unsigned char first = v[p];
    if (first < 0x80) {
        *pos = p + 1;
        return first;
    }
    if (p + 1 >= end || v[p + 1] >= 0x80)
        return -1;
    *pos = p + 2;
    return (first & 0x7F) | ((Py_ssize_t)v[p + 1] << 7);
}

/* The string of the AnyValue whose length prefix is at pos: new ref, "" (NULL +
 * no error) when there is none. */
static PyObject *
graph_string_at(const unsigned char *v, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t max_peer)
{
    Py_ssize_t any_len = graph_varint(v, &pos, end);
    if (any_len < 0)
        return NULL;
    Py_ssize_t any_end = pos + any_len;
    if (any_end > end || pos >= any_end || v[pos] != 0x0A)
        return NULL;
    pos += 1;
    Py_ssize_t length = graph_varint(v, &pos, any_end);
    if (length < 0 || pos + length > any_end)
        return NULL;
    if (length > max_peer * 4)
        length = max_peer * 4;
    PyObject *text = PyUnicode_DecodeUTF8((const char *)v + pos, length, "replace");
    if (text == NULL || PyUnicode_GET_LENGTH(text) <= max_peer)
        return text;
    PyObject *cut = PyUnicode_Substring(text, 0, max_peer);
    Py_DECREF(text);
    return cut;
}

/* peer_in_span(value, start, end, needles, max_peer) -> (peer, names a database) */
static PyObject *
peer_in_span(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer value;
    Py_ssize_t start, end, max_peer;
    PyObject *needles;
    if (!PyArg_ParseTuple(args, "y*nnO!n", &value, &start, &end, &PyTuple_Type, &needles,
                          &max_peer))
        return NULL;
    if (start < 0)
        start = 0;
    if (end > value.len)
        end = value.len;
    const unsigned char *v = value.buf;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(needles); i++) {
        PyObject *pair = PyTuple_GET_ITEM(needles, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
            !PyBytes_Check(PyTuple_GET_ITEM(pair, 0))) {
            PyBuffer_Release(&value);
            PyErr_SetString(PyExc_TypeError, "needles: ((bytes, bool), ...)");
            return NULL;
        }
        PyObject *needle = PyTuple_GET_ITEM(pair, 0);
        Py_ssize_t n = PyBytes_GET_SIZE(needle);
        if (n == 0 || end - start < n)
            continue;
        const unsigned char *at = memmem(v + start, end - start, PyBytes_AS_STRING(needle), n);
        if (at == NULL)
            continue;
        PyObject *found = graph_string_at(v, (at - v) + n, end, max_peer);
        if (found == NULL) {
            if (PyErr_Occurred()) {
                PyBuffer_Release(&value);
                return NULL;
            }
            continue;
        }
        if (PyUnicode_GET_LENGTH(found) > 0) {
            PyBuffer_Release(&value);
            PyObject *database = PyTuple_GET_ITEM(pair, 1);
            return Py_BuildValue("(NO)", found, PyObject_IsTrue(database) ? Py_True : Py_False);
        }
        Py_DECREF(found);
    }
    PyBuffer_Release(&value);
    return Py_BuildValue("(sO)", "", Py_False);
}

/* sketch_counts(values_ns, inv_log_gamma) -> (bins, zeros, low, high): the Python
 * definition is pipeline.graph.histogram:sketch_counts_of. Each value counts at
 * v / 1e6 ms (as Python divides ints: exactly, below 2**53), a value at or below
 * 1e-9 ms as a zero; bins are keyed ceil(log(ms) * inv_log_gamma). */
static PyObject *
sketch_counts(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *values, *seq;
    double inv;
    if (!PyArg_ParseTuple(args, "Od", &values, &inv))
        return NULL;
    seq = PySequence_Fast(values, "values_ns must be a sequence");
    if (seq == NULL)
        return NULL;
    PyObject *bins = PyDict_New(), *per_ms = PyLong_FromLong(1000000);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), zeros = 0;
    double low = 0.0, high = 0.0;
    if (bins == NULL || per_ms == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_ITEMS(seq)[i];
        double ms;
        int overflow = 0;
        long long v = PyLong_Check(item) ? PyLong_AsLongLongAndOverflow(item, &overflow) : 0;
        if (PyLong_Check(item) && !overflow && v <= (1LL << 53) && v >= -(1LL << 53)) {
            ms = (double)v / 1e6;
        } else {
            PyObject *q = PyNumber_TrueDivide(item, per_ms);
            if (q == NULL)
                goto fail;
            ms = PyFloat_AsDouble(q);
            Py_DECREF(q);
            if (ms == -1.0 && PyErr_Occurred())
                goto fail;
        }
        if (i == 0 || ms < low)
            low = ms;
        if (i == 0 || ms > high)
            high = ms;
        if (!(ms > 1e-9)) {
            zeros++;
            continue;
        }
        PyObject *key = PyLong_FromDouble(ceil(log(ms) * inv));
        if (key == NULL)
            goto fail;
        PyObject *count = PyDict_GetItemWithError(bins, key);
        PyObject *next = NULL;
        if (count != NULL)
            next = PyLong_FromSsize_t(PyLong_AsSsize_t(count) + 1);
        else if (!PyErr_Occurred())
            next = PyLong_FromLong(1);
        if (next == NULL || PyDict_SetItem(bins, key, next) < 0) {
            Py_DECREF(key);
            Py_XDECREF(next);
            goto fail;
        }
        Py_DECREF(key);
        Py_DECREF(next);
    }
    Py_DECREF(seq);
    Py_DECREF(per_ms);
    return Py_BuildValue("(Nndd)", bins, zeros, low > 0.0 ? low : 0.0, high > 0.0 ? high : 0.0);
fail:
    Py_DECREF(seq);
    Py_XDECREF(bins);
    Py_XDECREF(per_ms);
    return NULL;
}

#endif
