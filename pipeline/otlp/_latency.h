/* The latency policy's learning for _heads.c: a trace's spans into its histograms.
 *
 * hist_extend() is DecayingHistogram.add_many and latency_observe() the grouped path
 * of LatencyState.observe_spans (pipeline.sampling.sketch and .latency), so that one
 * call per decided trace replaces a Python loop over its operations. The rare fold
 * and halving stay Python methods, called the moment they are due: that keeps their
 * float sums (and so every learned weight) those of the Python definition.
 */
#ifndef SPANSTREAM_LATENCY_H
#define SPANSTREAM_LATENCY_H

#include <Python.h>

#include "_sampling.h"

static PyObject *str_bins, *str_count, *str_inv_log_gamma, *str_max_bins, *str_horizon,
    *str_fold, *str_halve, *str_hist, *str_since_refresh, *str_move_to_end;

static int
init_latency(void)
{
#define INTERN(var, text) ((var = PyUnicode_InternFromString(text)) == NULL)
    if (INTERN(str_bins, "_bins") || INTERN(str_count, "count")
        || INTERN(str_inv_log_gamma, "_inv_log_gamma") || INTERN(str_max_bins, "max_bins")
        || INTERN(str_horizon, "horizon") || INTERN(str_fold, "_fold")
        || INTERN(str_halve, "_halve") || INTERN(str_hist, "hist")
        || INTERN(str_since_refresh, "since_refresh")
        || INTERN(str_move_to_end, "move_to_end"))
        return -1;
#undef INTERN
    return 0;
}

/* A float attribute; -1.0 with an error set on failure. */
static double
float_attr(PyObject *obj, PyObject *name)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    double d = v ? PyFloat_AsDouble(v) : -1.0;
    Py_XDECREF(v);
    return d;
}

/* Calls hist.<method>() when `due`; 0 on success. */
static int
call_if(int due, PyObject *hist, PyObject *method)
{
    PyObject *r = due ? PyObject_CallMethodNoArgs(hist, method) : Py_NewRef(Py_None);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* DecayingHistogram.add_many(values): add in order, folding and halving when due. */
static int
extend(PyObject *hist, PyObject *values)
{
    double inv = float_attr(hist, str_inv_log_gamma);
    double horizon = PyErr_Occurred() ? -1.0 : float_attr(hist, str_horizon);
    PyObject *mb = PyErr_Occurred() ? NULL : PyObject_GetAttr(hist, str_max_bins);
    Py_ssize_t max_bins = mb ? PyLong_AsSsize_t(mb) : -1;
    Py_XDECREF(mb);
    Py_ssize_t done = 0;
    while (!PyErr_Occurred() && done < PyList_GET_SIZE(values)) {
        /* Fetched again each round: a halving replaces the dict and the count. */
        PyObject *bins = PyObject_GetAttr(hist, str_bins);
        double count = bins ? float_attr(hist, str_count) : -1.0;
        if (bins != NULL && !PyDict_Check(bins))
            PyErr_SetString(PyExc_TypeError, "histogram bins must be a dict");
        if (!PyErr_Occurred())
            done = hist_add_run(bins, values, done, inv, &count, max_bins, horizon);
        PyObject *c = PyErr_Occurred() ? NULL : PyFloat_FromDouble(count);
        if (c != NULL && PyObject_SetAttr(hist, str_count, c) == 0
            && call_if(PyDict_GET_SIZE(bins) > max_bins, hist, str_fold) == 0)
            call_if(count >= horizon, hist, str_halve);
        Py_XDECREF(c);
        Py_XDECREF(bins);
    }
    return PyErr_Occurred() ? -1 : 0;
}

/* hist_extend(hist, values) -> None */
static PyObject *
hist_extend(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *hist, *values;
    if (!PyArg_ParseTuple(args, "OO!", &hist, &PyList_Type, &values))
        return NULL;
    return extend(hist, values) < 0 ? NULL : Py_NewRef(Py_None);
}

/* The _OpLatency of `key` in `ops` (an OrderedDict): moved to the end, or a new_op()
 * added there. Returns a new reference. */
static PyObject *
op_at_end(PyObject *ops, PyObject *key, PyObject *new_op)
{
    PyObject *op = PyDict_GetItemWithError(ops, key); /* an OrderedDict is a dict */
    if (op != NULL) {
        PyObject *r = PyObject_CallMethodOneArg(ops, str_move_to_end, key);
        Py_XDECREF(r);
        return r == NULL ? NULL : Py_NewRef(op);
    }
    op = PyErr_Occurred() ? NULL : PyObject_CallNoArgs(new_op);
    if (op != NULL && PyObject_SetItem(ops, key, op) < 0)
        Py_CLEAR(op);
    return op;
}

/* op.hist.add_many(durations); op.since_refresh += len(durations) */
static int
op_learn(PyObject *op, PyObject *durations)
{
    PyObject *hist = PyObject_GetAttr(op, str_hist);
    PyObject *since = hist && extend(hist, durations) == 0
                          ? PyObject_GetAttr(op, str_since_refresh) : NULL;
    PyObject *n = since ? PyLong_FromSsize_t(PyList_GET_SIZE(durations)) : NULL;
    PyObject *sum = n ? PyNumber_Add(since, n) : NULL;
    int rc = sum == NULL ? -1 : PyObject_SetAttr(op, str_since_refresh, sum);
    Py_XDECREF(sum);
    Py_XDECREF(n);
    Py_XDECREF(since);
    Py_XDECREF(hist);
    return rc;
}

/* latency_observe(ops, spans, new_op) -> None
 *
 * Each (service, operation) group of `spans`, in the order of its last span, is found
 * in `ops` or added by new_op(), moved to the end and learns its durations. Adds
 * without evicting: the caller observes one by one when `ops` could overflow. */
static PyObject *
latency_observe(PyObject *self, PyObject *args)
{
    PyObject *ops, *spans, *new_op;
    if (!PyArg_ParseTuple(args, "O!OO", &PyDict_Type, &ops, &spans, &new_op))
        return NULL;
    PyObject *groups = group_durations(self, spans);
    PyObject *key, *durations;
    Py_ssize_t pos = 0;
    while (groups != NULL && PyDict_Next(groups, &pos, &key, &durations)) {
        PyObject *op = op_at_end(ops, key, new_op);
        int rc = op == NULL ? -1 : op_learn(op, durations);
        Py_XDECREF(op);
        if (rc < 0)
            Py_CLEAR(groups);
    }
    if (groups == NULL)
        return NULL;
    Py_DECREF(groups);
    return Py_NewRef(Py_None);
}

#endif
