/* The latency policy's learning for _heads.c: a trace's spans into its histograms.
 *
 * latency_groups() is pipeline.sampling.latency.latency_groups_of: each (service,
 * operation) of the heads with its durations in span order, the groups in the order
 * of their last span. latency_observe() is latency_observe_of: each group learnt at
 * once, which leaves the recency order span-by-span observing would.
 *
 * The histogram parameters come as arguments; of the per-operation objects it reads
 * only what pipeline.sampling.latency declares for it (OpLatency.hist and
 * .since_refresh; DecayingHistogram.bins and .count, and its fold() and halve(),
 * called the moment they are due so that their float sums are Python's).
 */
#ifndef SPANSTREAM_LATENCY_H
#define SPANSTREAM_LATENCY_H

#include <Python.h>

#include "_sampling.h"

/* {(service, operation): [duration, ...]} for `seq` read from its END: the dict's
 * order is then that of each key's last span, reversed, and each list is reversed.
 * (Reading forwards would need a delete and re-insert per span to get that order.) */
static PyObject *
group_backwards(PyObject *seq)
{
    PyObject *groups = PyDict_New();
    for (Py_ssize_t i = PySequence_Fast_GET_SIZE(seq) - 1; groups != NULL && i >= 0; i--) {
        SpanHead *h = as_head(PySequence_Fast_GET_ITEM(seq, i));
        PyObject *key = h ? PyTuple_Pack(2, h->service_name, h->operation) : NULL;
        PyObject *list = key ? PyDict_GetItemWithError(groups, key) : NULL;
        int rc = key == NULL || PyErr_Occurred() ? -1 : 0;
        if (rc == 0 && list != NULL)
            rc = PyList_Append(list, h->duration_ns);
        else if (rc == 0) {
            list = PyList_New(1);
            rc = list == NULL ? -1 : PyDict_SetItem(groups, key, list);
            if (list != NULL)
                PyList_SET_ITEM(list, 0, Py_NewRef(h->duration_ns));
            Py_XDECREF(list); /* the dict holds it */
        }
        Py_XDECREF(key);
        if (rc < 0)
            Py_CLEAR(groups);
    }
    return groups;
}

/* latency_groups(heads) -> [((service, operation), [duration_ns, ...]), ...] */
static PyObject *
latency_groups(PyObject *Py_UNUSED(module), PyObject *spans)
{
    PyObject *seq = PySequence_Fast(spans, "spans must be a sequence");
    PyObject *groups = seq ? group_backwards(seq) : NULL;
    PyObject *items = groups ? PyDict_Items(groups) : NULL;
    int rc = items == NULL ? -1 : PyList_Reverse(items);
    for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(items); i++)
        rc = PyList_Reverse(PyTuple_GET_ITEM(PyList_GET_ITEM(items, i), 1));
    Py_XDECREF(groups);
    Py_XDECREF(seq);
    if (rc < 0)
        Py_CLEAR(items);
    return items;
}

static PyObject *str_hist, *str_since_refresh, *str_bins, *str_count, *str_fold, *str_halve,
    *str_move_to_end;

static int
init_latency(void)
{
    return (str_hist = PyUnicode_InternFromString("hist")) == NULL
                   || (str_since_refresh = PyUnicode_InternFromString("since_refresh")) == NULL
                   || (str_bins = PyUnicode_InternFromString("bins")) == NULL
                   || (str_count = PyUnicode_InternFromString("count")) == NULL
                   || (str_fold = PyUnicode_InternFromString("fold")) == NULL
                   || (str_halve = PyUnicode_InternFromString("halve")) == NULL
                   || (str_move_to_end = PyUnicode_InternFromString("move_to_end")) == NULL
               ? -1 : 0;
}

typedef struct {
    double inv_log_gamma, horizon;
    Py_ssize_t max_bins;
} HistParams;

/* Calls hist.<method>() when `due`; 0 on success. */
static int
call_if(int due, PyObject *hist, PyObject *method)
{
    PyObject *r = due ? PyObject_CallMethodNoArgs(hist, method) : Py_NewRef(Py_None);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* hist.add(v) for v in values: runs of values, a fold or halving whenever one is due. */
static int
hist_learn(PyObject *hist, PyObject *values, const HistParams *p)
{
    Py_ssize_t done = 0;
    while (done >= 0 && done < PyList_GET_SIZE(values)) {
        /* Fetched each round: a halving replaces the dict and the count. */
        PyObject *bins = PyObject_GetAttr(hist, str_bins);
        PyObject *c = bins ? PyObject_GetAttr(hist, str_count) : NULL;
        double count = c ? PyFloat_AsDouble(c) : -1.0;
        Py_XDECREF(c);
        if (bins != NULL && !PyDict_Check(bins))
            PyErr_SetString(PyExc_TypeError, "histogram bins must be a dict");
        if (!PyErr_Occurred())
            done = add_run_values(bins, values, done, p->inv_log_gamma, &count, p->max_bins,
                                  p->horizon);
        c = PyErr_Occurred() ? NULL : PyFloat_FromDouble(count);
        if (c == NULL || PyObject_SetAttr(hist, str_count, c) < 0
            || call_if(PyDict_GET_SIZE(bins) > p->max_bins, hist, str_fold) < 0
            || call_if(count >= p->horizon, hist, str_halve) < 0)
            done = -1;
        Py_XDECREF(c);
        Py_XDECREF(bins);
    }
    return done < 0 ? -1 : 0;
}

/* The op of `key` in `ops` (an OrderedDict): moved to the end by `move` (its bound
 * move_to_end), or a new_op() added there. Returns a new reference. */
static PyObject *
op_at_end(PyObject *ops, PyObject *move, PyObject *key, PyObject *new_op)
{
    PyObject *op = PyDict_GetItemWithError(ops, key); /* an OrderedDict is a dict */
    if (op != NULL) {
        PyObject *r = PyObject_CallOneArg(move, key);
        Py_XDECREF(r);
        return r == NULL ? NULL : Py_NewRef(op);
    }
    op = PyErr_Occurred() ? NULL : PyObject_CallNoArgs(new_op);
    if (op != NULL && PyObject_SetItem(ops, key, op) < 0)
        Py_CLEAR(op);
    return op;
}

/* op.hist.add(d) for d in durations; op.since_refresh += len(durations) */
static int
op_learn(PyObject *op, PyObject *durations, const HistParams *p)
{
    PyObject *hist = PyObject_GetAttr(op, str_hist);
    PyObject *since = hist && hist_learn(hist, durations, p) == 0
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

/* latency_observe(ops, heads, new_op, inv_log_gamma, max_bins, horizon) -> None
 *
 * Each group of latency_groups(heads) is found in `ops` or added by new_op(), moved
 * to the end, and learns its durations. Adds without evicting: the caller observes
 * one by one when `ops` could overflow. */
static PyObject *
latency_observe(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *ops, *spans, *new_op;
    HistParams p;
    if (!PyArg_ParseTuple(args, "O!OOdnd:latency_observe", &PyDict_Type, &ops, &spans, &new_op,
                          &p.inv_log_gamma, &p.max_bins, &p.horizon))
        return NULL;
    PyObject *groups = latency_groups(NULL, spans);
    PyObject *move = groups ? PyObject_GetAttr(ops, str_move_to_end) : NULL;
    for (Py_ssize_t i = 0; move != NULL && i < PyList_GET_SIZE(groups); i++) {
        PyObject *item = PyList_GET_ITEM(groups, i);
        PyObject *op = op_at_end(ops, move, PyTuple_GET_ITEM(item, 0), new_op);
        int rc = op == NULL ? -1 : op_learn(op, PyTuple_GET_ITEM(item, 1), &p);
        Py_XDECREF(op);
        if (rc < 0)
            break;
    }
    Py_XDECREF(move);
    Py_XDECREF(groups);
    return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
}

#endif
