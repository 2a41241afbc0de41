/* spanmetrics_add() for _heads.c: pipeline.spanmetrics.counts.spanmetrics_add_of, per span.
 *
 * acc maps (service, operation, kind index, status index) to a list
 * [calls, duration sum ns, count per bucket..., count above the last bound]; kinds
 * outside 0..5 and statuses outside 0..2 count under the index after the last one.
 * tests/unit/test_native.py holds it to its Python definition.
 */
#ifndef SPANSTREAM_SPANMETRICS_H
#define SPANSTREAM_SPANMETRICS_H

#include <Python.h>

#include "_sampling.h"

#define SM_UNKNOWN_KIND 6
#define SM_UNKNOWN_STATUS 3
#define SM_MAX_BOUNDS 64

/* entry[i] += by (an int object); 0 on success. */
static int
sm_add(PyObject *entry, Py_ssize_t i, PyObject *by)
{
    PyObject *sum = PyNumber_Add(PyList_GET_ITEM(entry, i), by);
    if (sum == NULL)
        return -1;
    PyList_SetItem(entry, i, sum); /* steals sum, drops the old value */
    return 0;
}

/* The entry of key in acc (borrowed), made of zeros if missing; NULL on error. */
static PyObject *
sm_entry(PyObject *acc, PyObject *key, Py_ssize_t width)
{
    PyObject *entry = PyDict_GetItemWithError(acc, key);
    if (entry != NULL || PyErr_Occurred())
        return entry;
    entry = PyList_New(width);
    if (entry == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < width; i++)
        PyList_SET_ITEM(entry, i, PyLong_FromLong(0)); /* a cached small int: never NULL */
    int rc = PyDict_SetItem(acc, key, entry);
    Py_DECREF(entry); /* acc holds it */
    return rc < 0 ? NULL : entry;
}

/* Index of the first bound >= duration (bisect_left); n_bounds when above them all. */
static Py_ssize_t
sm_bucket(PyObject *duration, const long long *bounds, Py_ssize_t n_bounds)
{
    int overflow = 0;
    long long d = PyLong_AsLongLongAndOverflow(duration, &overflow);
    if (d == -1 && PyErr_Occurred())
        return -1;
    if (overflow != 0)
        return overflow > 0 ? n_bounds : 0;
    Py_ssize_t i = 0;
    while (i < n_bounds && bounds[i] < d)
        i++;
    return i;
}

static int
sm_add_span(PyObject *acc, SpanHead *h, const long long *bounds, Py_ssize_t n_bounds,
            PyObject *one)
{
    int kind = h->kind >= 0 && h->kind < SM_UNKNOWN_KIND ? h->kind : SM_UNKNOWN_KIND;
    int status = h->status >= 0 && h->status < SM_UNKNOWN_STATUS ? h->status : SM_UNKNOWN_STATUS;
    PyObject *k = PyLong_FromLong(kind), *s = PyLong_FromLong(status); /* cached small ints */
    PyObject *key = PyTuple_Pack(4, h->service_name, h->operation, k, s);
    Py_DECREF(k);
    Py_DECREF(s);
    if (key == NULL)
        return -1;
    PyObject *entry = sm_entry(acc, key, n_bounds + 3);
    Py_DECREF(key);
    if (entry == NULL)
        return -1;
    Py_ssize_t bucket = sm_bucket(h->duration_ns, bounds, n_bounds);
    if (bucket < 0 || sm_add(entry, 0, one) < 0 || sm_add(entry, 1, h->duration_ns) < 0)
        return -1;
    return sm_add(entry, 2 + bucket, one);
}

/* spanmetrics_add(spans, acc, bounds_ns) -> None */
static PyObject *
spanmetrics_add(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *spans, *acc, *bounds_obj;
    long long bounds[SM_MAX_BOUNDS];
    if (!PyArg_ParseTuple(args, "OO!O", &spans, &PyDict_Type, &acc, &bounds_obj))
        return NULL;
    PyObject *bseq = PySequence_Fast(bounds_obj, "bounds_ns must be a sequence of ints");
    if (bseq == NULL)
        return NULL;
    Py_ssize_t n_bounds = PySequence_Fast_GET_SIZE(bseq);
    if (n_bounds > SM_MAX_BOUNDS) {
        Py_DECREF(bseq);
        return PyErr_Format(PyExc_ValueError, "at most %d bounds", SM_MAX_BOUNDS);
    }
    for (Py_ssize_t i = 0; i < n_bounds; i++)
        bounds[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(bseq, i));
    Py_DECREF(bseq);
    if (PyErr_Occurred())
        return NULL;
    PyObject *seq = PySequence_Fast(spans, "spans must be a sequence");
    if (seq == NULL)
        return NULL;
    PyObject *one = PyLong_FromLong(1);
    int rc = 0;
    for (Py_ssize_t i = 0; rc == 0 && i < PySequence_Fast_GET_SIZE(seq); i++) {
        SpanHead *h = as_head(PySequence_Fast_GET_ITEM(seq, i));
        rc = h == NULL ? -1 : sm_add_span(acc, h, bounds, n_bounds, one);
    }
    Py_DECREF(one);
    Py_DECREF(seq);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

#endif
