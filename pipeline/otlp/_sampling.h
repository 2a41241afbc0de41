/* Tail-sampling loops for _heads.c, per span.
 *
 * hist_add_run() is the loop of DecayingHistogram.add_many (pipeline.sampling.sketch),
 * with the same float arithmetic; _latency.h drives it. per_service() counts spans
 * and row bytes per service for the volume counters (pipeline.sampling.stats,
 * pipeline.ingest.volume); by_trace() files a message's spans by trace
 * (pipeline.sampling.buffer).
 */
#ifndef SPANSTREAM_SAMPLING_H
#define SPANSTREAM_SAMPLING_H

#include <Python.h>
#include <math.h>

#include "_head_type.h"

/* DecayingHistogram: values below 1 count in the lowest bucket. */
#define HIST_MIN_VALUE 1.0

static PyObject *
head_attr(PyObject *span, PyObject *head_field, const char *name)
{
    return Py_IS_TYPE(span, &SpanHeadType) ? Py_NewRef(head_field)
                                           : PyObject_GetAttrString(span, name);
}

/* Adds values[start:] to `bins` until one makes len(bins) > max_bins or *count >=
 * horizon; returns the index after the last value added (len(values) when all were),
 * or -1 on error. The loop of DecayingHistogram.add_many, with its float arithmetic. */
static Py_ssize_t
hist_add_run(PyObject *bins, PyObject *values, Py_ssize_t start, double inv_log_gamma,
             double *count, Py_ssize_t max_bins, double horizon)
{
    Py_ssize_t i = start < 0 ? 0 : start;
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

/* The row size of one span: a head carries it, anything else is sized by `size_of`. */
static Py_ssize_t
span_row_bytes(PyObject *span, PyObject *size_of)
{
    if (Py_IS_TYPE(span, &SpanHeadType))
        return ((SpanHead *)span)->row_bytes;
    PyObject *n = PyObject_CallOneArg(size_of, span);
    Py_ssize_t size = n ? PyLong_AsSsize_t(n) : -1;
    Py_XDECREF(n);
    return size;
}

/* per_service(spans, row_bytes) -> {service: [spans, row bytes]}, in first-seen order.
 *
 * Spans of one service mostly come together (one resource), so a run of the same
 * service str is summed in C and added to its entry once. */
static PyObject *
per_service(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *spans, *size_of;
    if (!PyArg_ParseTuple(args, "OO", &spans, &size_of))
        return NULL;
    PyObject *seq = PySequence_Fast(spans, "spans must be a sequence");
    PyObject *out = seq ? PyDict_New() : NULL;
    PyObject *run = NULL; /* the current run's service (owned) */
    Py_ssize_t run_n = 0, run_bytes = 0;
    for (Py_ssize_t i = 0; out != NULL && i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *span = PySequence_Fast_GET_ITEM(seq, i);
        int is_head = Py_IS_TYPE(span, &SpanHeadType);
        PyObject *service = head_attr(span, is_head ? ((SpanHead *)span)->service_name : NULL,
                                      "service_name");
        Py_ssize_t size = service ? span_row_bytes(span, size_of) : -1;
        int rc = PyErr_Occurred() ? -1 : 0;
        if (rc == 0 && service != run) {
            rc = run == NULL ? 0 : add_run(out, run, run_n, run_bytes);
            Py_XSETREF(run, Py_NewRef(service));
            run_n = run_bytes = 0;
        }
        run_n += 1;
        run_bytes += size;
        Py_XDECREF(service);
        if (rc < 0)
            Py_CLEAR(out);
    }
    if (out != NULL && run != NULL && add_run(out, run, run_n, run_bytes) < 0)
        Py_CLEAR(out);
    Py_XDECREF(run);
    Py_XDECREF(seq);
    return out;
}

/* by_trace(spans) -> {trace_id: [span, ...]} in first-seen order: TraceBuffer.add's
 * grouping. A message's spans of one trace mostly come together and share one id
 * str (the scan reuses it), so a run of the same object skips the dict. */
static PyObject *
by_trace(PyObject *self, PyObject *spans)
{
    (void)self;
    PyObject *seq = PySequence_Fast(spans, "spans must be a sequence");
    PyObject *out = seq ? PyDict_New() : NULL;
    PyObject *run_id = NULL; /* owned: its address must not be reused meanwhile */
    PyObject *run = NULL;    /* borrowed: `out` holds it */
    for (Py_ssize_t i = 0; out != NULL && i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *span = PySequence_Fast_GET_ITEM(seq, i);
        int is_head = Py_IS_TYPE(span, &SpanHeadType);
        PyObject *id = head_attr(span, is_head ? ((SpanHead *)span)->trace_id : NULL,
                                 "trace_id");
        PyObject *list = id == NULL ? NULL : id == run_id ? run
                                                           : PyDict_GetItemWithError(out, id);
        int rc = id == NULL || PyErr_Occurred() ? -1 : 0;
        if (rc == 0 && list == NULL) {
            list = PyList_New(0);
            rc = list == NULL ? -1 : PyDict_SetItem(out, id, list);
            Py_XDECREF(list); /* the dict holds it */
        }
        if (rc == 0)
            rc = PyList_Append(list, span);
        Py_XSETREF(run_id, id);
        run = list;
        if (rc < 0)
            Py_CLEAR(out);
    }
    Py_XDECREF(run_id);
    Py_XDECREF(seq);
    return out;
}

#endif
