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

#include "_slots.h"

enum { H_BINS, H_COUNT, H_INV_LOG_GAMMA, H_MAX_BINS, H_HORIZON };
static SlotCache hist_slots = {{"_bins", "count", "_inv_log_gamma", "max_bins", "horizon"}};
enum { OP_HIST, OP_SINCE_REFRESH };
static SlotCache op_slots = {{"hist", "since_refresh"}};
static PyObject *str_fold, *str_halve, *str_move_to_end;

static int
init_latency(void)
{
    if (slots_init(&hist_slots) < 0 || slots_init(&op_slots) < 0)
        return -1;
    return (str_fold = PyUnicode_InternFromString("_fold")) == NULL
                   || (str_halve = PyUnicode_InternFromString("_halve")) == NULL
                   || (str_move_to_end = PyUnicode_InternFromString("move_to_end")) == NULL
               ? -1 : 0;
}

/* A float member of the histogram; -1.0 with an error set on failure. */
static double
hist_float(PyObject *hist, int slot)
{
    PyObject *v = slot_get(&hist_slots, hist, slot);
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

/* One round of add_many: values[done:] until a fold or halving is due, then that.
 * Returns the index reached, -1 on error. */
static Py_ssize_t
extend_round(PyObject *hist, PyObject *values, Py_ssize_t done, double inv,
             Py_ssize_t max_bins, double horizon)
{
    /* Fetched each round: a halving replaces the dict and the count. */
    PyObject *bins = slot_get(&hist_slots, hist, H_BINS);
    double count = bins ? hist_float(hist, H_COUNT) : -1.0;
    if (bins != NULL && !PyDict_Check(bins))
        PyErr_SetString(PyExc_TypeError, "histogram bins must be a dict");
    if (!PyErr_Occurred())
        done = hist_add_run(bins, values, done, inv, &count, max_bins, horizon);
    PyObject *c = PyErr_Occurred() ? NULL : PyFloat_FromDouble(count);
    if (c != NULL && slot_set(&hist_slots, hist, H_COUNT, c) == 0
        && call_if(PyDict_GET_SIZE(bins) > max_bins, hist, str_fold) == 0)
        call_if(count >= horizon, hist, str_halve);
    Py_XDECREF(c);
    Py_XDECREF(bins);
    return PyErr_Occurred() ? -1 : done;
}

/* DecayingHistogram.add_many(values): add in order, folding and halving when due. */
static int
extend(PyObject *hist, PyObject *values)
{
    double inv = hist_float(hist, H_INV_LOG_GAMMA);
    double horizon = PyErr_Occurred() ? -1.0 : hist_float(hist, H_HORIZON);
    PyObject *mb = PyErr_Occurred() ? NULL : slot_get(&hist_slots, hist, H_MAX_BINS);
    Py_ssize_t max_bins = mb ? PyLong_AsSsize_t(mb) : -1;
    Py_XDECREF(mb);
    Py_ssize_t done = PyErr_Occurred() ? -1 : 0;
    while (done >= 0 && done < PyList_GET_SIZE(values))
        done = extend_round(hist, values, done, inv, max_bins, horizon);
    return done < 0 ? -1 : 0;
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

/* The _OpLatency of `key` in `ops` (an OrderedDict): moved to the end by `move`
 * (its bound move_to_end), or a new_op() added there. Returns a new reference. */
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

/* op.hist.add_many(durations); op.since_refresh += len(durations) */
static int
op_learn(PyObject *op, PyObject *durations)
{
    PyObject *hist = slot_get(&op_slots, op, OP_HIST);
    PyObject *since = hist && extend(hist, durations) == 0
                          ? slot_get(&op_slots, op, OP_SINCE_REFRESH) : NULL;
    PyObject *n = since ? PyLong_FromSsize_t(PyList_GET_SIZE(durations)) : NULL;
    PyObject *sum = n ? PyNumber_Add(since, n) : NULL;
    int rc = sum == NULL ? -1 : slot_set(&op_slots, op, OP_SINCE_REFRESH, sum);
    Py_XDECREF(sum);
    Py_XDECREF(n);
    Py_XDECREF(since);
    Py_XDECREF(hist);
    return rc;
}

/* float(duration), except that an int or float is kept as it is (hist_add_run
 * converts those exactly as float() does) and so costs no allocation. */
static PyObject *
duration_value(PyObject *duration)
{
    return PyLong_CheckExact(duration) || PyFloat_CheckExact(duration)
               ? Py_NewRef(duration) : PyNumber_Float(duration);
}

/* {(service, operation): [duration, ...]} for `seq` read from its END: the dict's
 * order is then that of each key's last span, reversed, and each list is reversed.
 * (Reading forwards would need a delete and re-insert per span to get that order.) */
static PyObject *
group_backwards(PyObject *seq)
{
    PyObject *groups = PyDict_New();
    for (Py_ssize_t i = PySequence_Fast_GET_SIZE(seq) - 1; groups != NULL && i >= 0; i--) {
        PyObject *span = PySequence_Fast_GET_ITEM(seq, i);
        SpanHead *h = (SpanHead *)span; /* fields read only when it is one */
        int is_head = Py_IS_TYPE(span, &SpanHeadType);
        PyObject *service = head_attr(span, is_head ? h->service_name : NULL, "service_name");
        PyObject *op = service ? head_attr(span, is_head ? h->operation : NULL, "operation")
                               : NULL;
        PyObject *dur = op ? head_attr(span, is_head ? h->duration_ns : NULL, "duration_ns")
                           : NULL;
        PyObject *key = dur ? PyTuple_Pack(2, service, op) : NULL;
        PyObject *value = key ? duration_value(dur) : NULL;
        PyObject *list = value ? PyDict_GetItemWithError(groups, key) : NULL;
        int rc = value == NULL || PyErr_Occurred() ? -1 : 0;
        if (rc == 0 && list != NULL)
            rc = PyList_Append(list, value);
        else if (rc == 0) {
            list = PyList_New(1);
            rc = list == NULL ? -1 : PyDict_SetItem(groups, key, list);
            if (list != NULL)
                PyList_SET_ITEM(list, 0, Py_NewRef(value));
            Py_XDECREF(list); /* the dict holds it */
        }
        Py_XDECREF(value);
        Py_XDECREF(key);
        Py_XDECREF(dur);
        Py_XDECREF(op);
        Py_XDECREF(service);
        if (rc < 0)
            Py_CLEAR(groups);
    }
    return groups;
}

/* Learns each group of `groups` (from group_backwards), last-visited first. */
static int
learn_groups(PyObject *ops, PyObject *groups, PyObject *new_op)
{
    PyObject *move = PyObject_GetAttr(ops, str_move_to_end);
    PyObject *items = move ? PyDict_Items(groups) : NULL;
    for (Py_ssize_t i = items ? PyList_GET_SIZE(items) - 1 : -1; i >= 0; i--) {
        PyObject *item = PyList_GET_ITEM(items, i);
        PyObject *durations = PyTuple_GET_ITEM(item, 1);
        PyObject *op = PyList_Reverse(durations) == 0
                           ? op_at_end(ops, move, PyTuple_GET_ITEM(item, 0), new_op) : NULL;
        int rc = op == NULL ? -1 : op_learn(op, durations);
        Py_XDECREF(op);
        if (rc < 0)
            break;
    }
    Py_XDECREF(items);
    Py_XDECREF(move);
    return PyErr_Occurred() ? -1 : 0;
}

/* latency_observe(ops, spans, new_op) -> None
 *
 * Each (service, operation) group of `spans`, in the order of its last span, is found
 * in `ops` or added by new_op(), moved to the end and learns its durations in span
 * order. Adds without evicting: the caller observes one by one when `ops` could
 * overflow. */
static PyObject *
latency_observe(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *ops, *spans, *new_op;
    if (!PyArg_ParseTuple(args, "O!OO", &PyDict_Type, &ops, &spans, &new_op))
        return NULL;
    PyObject *seq = PySequence_Fast(spans, "spans must be a sequence");
    PyObject *groups = seq ? group_backwards(seq) : NULL;
    int rc = groups == NULL ? -1 : learn_groups(ops, groups, new_op);
    Py_XDECREF(groups);
    Py_XDECREF(seq);
    return rc < 0 ? NULL : Py_NewRef(Py_None);
}

#endif
