/* Tail-sampling loops for _heads.c, per span.
 *
 * add_run_values() is DecayingHistogram.add (pipeline.sampling.decaying_histogram) on a
 * run of values, with the same float arithmetic, for latency_observe (_latency.h);
 * per_service() counts heads and row bytes per service (pipeline.sampling.counters).
 */
#ifndef SPANSTREAM_SAMPLING_H
#define SPANSTREAM_SAMPLING_H

#include <Python.h>
#include <math.h>

#include "_head_type.h"

/* DecayingHistogram: values below 1 count in the lowest bucket. */
#define HIST_MIN_VALUE 1.0

/* The SpanHead `span` is (borrowed), or NULL with TypeError: spans reach the stages
 * as heads only (pipeline.otlp.heads.head_of converts a built Span). */
static SpanHead *
as_head(PyObject *span)
{
    if (Py_IS_TYPE(span, &SpanHeadType))
        return (SpanHead *)span;
    PyErr_Format(PyExc_TypeError, "expected a SpanHead, got %.100s", Py_TYPE(span)->tp_name);
    return NULL;
}

/* Adds values[i:] to `bins` until one makes len(bins) > max_bins or *count >=
 * horizon; the index after the last value added, or -1 on error. */
static Py_ssize_t
add_run_values(PyObject *bins, PyObject *values, Py_ssize_t i, double inv_log_gamma,
               double *count, Py_ssize_t max_bins, double horizon)
{
    i = i < 0 ? 0 : i;
    while (i < PyList_GET_SIZE(values)) {
        double v = PyFloat_AsDouble(PyList_GET_ITEM(values, i));
        if (v == -1.0 && PyErr_Occurred())
            return -1;
        PyObject *key = PyLong_FromDouble(ceil(log(v > HIST_MIN_VALUE ? v : HIST_MIN_VALUE)
                                               * inv_log_gamma));
        PyObject *w = key ? PyDict_GetItemWithError(bins, key) : NULL;
        double weight = w ? PyFloat_AsDouble(w) : 0.0;
        PyObject *next = PyErr_Occurred() ? NULL : PyFloat_FromDouble(weight + 1.0);
        int rc = next == NULL ? -1 : PyDict_SetItem(bins, key, next);
        Py_XDECREF(next);
        Py_XDECREF(key);
        if (rc < 0)
            return -1;
        *count += 1.0;
        i++;
        if (PyDict_GET_SIZE(bins) > max_bins || *count >= horizon)
            break;
    }
    return i;
}

/* Adds a run of `n` spans, `size` row bytes, to out[service]; 0 on success. */
static int
add_run(PyObject *out, PyObject *service, Py_ssize_t n, Py_ssize_t size)
{
    PyObject *entry = PyDict_GetItemWithError(out, service);
    if (entry == NULL) {
        entry = PyErr_Occurred() ? NULL : Py_BuildValue("[nn]", n, size);
        int rc = entry == NULL ? -1 : PyDict_SetItem(out, service, entry);
        Py_XDECREF(entry); /* the dict holds it */
        return rc;
    }
    PyObject *count = PyLong_FromSsize_t(PyLong_AsSsize_t(PyList_GET_ITEM(entry, 0)) + n);
    PyObject *bytes = PyLong_FromSsize_t(PyLong_AsSsize_t(PyList_GET_ITEM(entry, 1)) + size);
    if (count == NULL || bytes == NULL) {
        Py_XDECREF(count);
        Py_XDECREF(bytes);
        return -1;
    }
    PyList_SetItem(entry, 0, count);
    PyList_SetItem(entry, 1, bytes);
    return 0;
}

/* per_service(heads) -> {service: [spans, row bytes]}, in first-seen order.
 *
 * Spans of one service mostly come together (one resource), so a run of the same
 * service str is summed in C and added to its entry once. */
static PyObject *
per_service(PyObject *Py_UNUSED(module), PyObject *spans)
{
    PyObject *seq = PySequence_Fast(spans, "spans must be a sequence");
    PyObject *out = seq ? PyDict_New() : NULL;
    PyObject *run = NULL; /* the current run's service (owned) */
    Py_ssize_t run_n = 0, run_bytes = 0;
    for (Py_ssize_t i = 0; out != NULL && i < PySequence_Fast_GET_SIZE(seq); i++) {
        SpanHead *h = as_head(PySequence_Fast_GET_ITEM(seq, i));
        int rc = h == NULL ? -1 : 0;
        if (rc == 0 && h->service_name != run) {
            rc = run == NULL ? 0 : add_run(out, run, run_n, run_bytes);
            Py_XSETREF(run, Py_NewRef(h->service_name));
            run_n = run_bytes = 0;
        }
        if (rc < 0) {
            Py_CLEAR(out);
            break;
        }
        run_n += 1;
        run_bytes += h->row_bytes;
    }
    if (out != NULL && run != NULL && add_run(out, run, run_n, run_bytes) < 0)
        Py_CLEAR(out);
    Py_XDECREF(run);
    Py_XDECREF(seq);
    return out;
}

#endif
