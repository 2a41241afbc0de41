/* Window aggregation for _heads.c: the per-span loop of PartialAggregator.add_record.
 *
 * window_add() files each span into its (service, operation, window start)
 * accumulator, a RedAcc: requests, errors, the largest duration, the latency
 * sketch's counts (pipeline.windows.latency_sketch.LatencySketch: zero bucket, min, max and
 * the bucket dict, keyed exactly as LatencySketch.add keys them) and the ranked
 * exemplars (pipeline.windows.red_stats.best_exemplars), and, for a service given latency
 * thresholds (the SLO file's), how many spans took at most each threshold (`under`).
 * pipeline.windows.partial turns a
 * RedAcc into a Partial at the cut; tests/unit/test_native.py holds this file to its
 * Python definition (pipeline.windows.partial.window_add), span for span.
 *
 * The window and sketch parameters come as arguments. Timestamps and durations are
 * Python ints of any size: the
 * int64 fast path covers real traffic, Python arithmetic covers the rest, so a span
 * from a broken clock is counted, never an error.
 */
#ifndef SPANSTREAM_WINDOW_H
#define SPANSTREAM_WINDOW_H

#include <Python.h>
#include <math.h>
#include <structmember.h>

#include "_sampling.h"

/* pipeline.windows.latency_sketch.MIN_VALUE_MS: values at or below it count as zero. */
#define MIN_VALUE_MS 1e-9

typedef struct {
    PyObject *trace_id, *duration_ns; /* owned */
    int is_error;
} Exemplar_;

typedef struct {
    PyObject_HEAD
    Py_ssize_t requests, errors, zeros, n_exemplars, max_exemplars;
    PyObject *max_ns; /* the largest duration (ns, int) */
    PyObject *bins;   /* dict: bucket key (int) -> count (int) */
    double min, max;  /* milliseconds, as LatencySketch.min/max */
    Exemplar_ *exemplars;
    Py_ssize_t n_under;   /* latency thresholds counted (0: none) */
    long long *limits;    /* n_under thresholds in ns, as given */
    Py_ssize_t *under;    /* spans with max(duration, 0) <= limits[i] */
} RedAcc;

/* No GC support: a RedAcc holds only ints, strs and a dict of ints. */
static void
redacc_dealloc(RedAcc *self)
{
    for (Py_ssize_t i = 0; i < self->n_exemplars; i++) {
        Py_DECREF(self->exemplars[i].trace_id);
        Py_DECREF(self->exemplars[i].duration_ns);
    }
    PyMem_Free(self->exemplars);
    PyMem_Free(self->limits);
    PyMem_Free(self->under);
    Py_XDECREF(self->max_ns);
    Py_XDECREF(self->bins);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
redacc_exemplars(RedAcc *self, void *closure)
{
    (void)closure;
    PyObject *out = PyTuple_New(self->n_exemplars);
    for (Py_ssize_t i = 0; out != NULL && i < self->n_exemplars; i++) {
        Exemplar_ *e = &self->exemplars[i];
        PyObject *item = PyTuple_Pack(3, e->trace_id, e->duration_ns,
                                      e->is_error ? Py_True : Py_False);
        if (item == NULL)
            Py_CLEAR(out);
        else
            PyTuple_SET_ITEM(out, i, item);
    }
    return out;
}

static PyObject *
redacc_under(RedAcc *self, void *closure)
{
    (void)closure;
    PyObject *out = PyTuple_New(self->n_under);
    for (Py_ssize_t i = 0; out != NULL && i < self->n_under; i++) {
        PyObject *item = Py_BuildValue("(Ln)", self->limits[i], self->under[i]);
        if (item == NULL)
            Py_CLEAR(out);
        else
            PyTuple_SET_ITEM(out, i, item);
    }
    return out;
}

#define RA(name, type) {#name, type, offsetof(RedAcc, name), READONLY, NULL}
static PyMemberDef redacc_members[] = {
    RA(requests, T_PYSSIZET), RA(errors, T_PYSSIZET), RA(zeros, T_PYSSIZET),
    RA(max_ns, T_OBJECT), RA(bins, T_OBJECT), RA(min, T_DOUBLE), RA(max, T_DOUBLE), {NULL}};

static PyGetSetDef redacc_getset[] = {
    {"exemplars", (getter)redacc_exemplars, NULL,
     PyDoc_STR("Ranked (trace_id, duration_ns, is_error) tuples, one per trace."), NULL},
    {"under", (getter)redacc_under, NULL,
     PyDoc_STR("(threshold_ns, spans at most that long) pairs, in the thresholds' order."), NULL},
    {NULL}};

static PyTypeObject RedAccType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pipeline.otlp._heads.RedAcc",
    .tp_doc = PyDoc_STR("RED counts of one series in one window; see pipeline.windows.partial."),
    .tp_basicsize = sizeof(RedAcc),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)redacc_dealloc,
    .tp_members = redacc_members,
    .tp_getset = redacc_getset,
};

/* The thresholds (ns) of `limits`, a sequence of ints, into the accumulator's arrays. */
static int
redacc_set_limits(RedAcc *a, PyObject *limits)
{
    PyObject *seq = PySequence_Fast(limits, "thresholds must map services to sequences");
    if (seq == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    a->limits = PyMem_Malloc(sizeof(long long) * (n + 1));
    a->under = PyMem_Calloc(n + 1, sizeof(Py_ssize_t));
    int rc = (a->limits == NULL || a->under == NULL) ? -1 : 0;
    if (rc < 0)
        PyErr_NoMemory();
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        a->limits[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
        rc = (a->limits[i] == -1 && PyErr_Occurred()) ? -1 : 0;
    }
    if (rc == 0)
        a->n_under = n;
    Py_DECREF(seq);
    return rc;
}

static RedAcc *
redacc_create(Py_ssize_t max_exemplars)
{
    RedAcc *a = PyObject_New(RedAcc, &RedAccType);
    if (a == NULL)
        return NULL;
    a->n_under = 0;
    a->limits = NULL;
    a->under = NULL;
    a->requests = a->errors = a->zeros = a->n_exemplars = 0;
    a->max_exemplars = max_exemplars > 0 ? max_exemplars : 0;
    a->min = Py_HUGE_VAL;
    a->max = -Py_HUGE_VAL;
    a->max_ns = PyLong_FromLong(0);
    a->bins = PyDict_New();
    a->exemplars = PyMem_Malloc(sizeof(Exemplar_) * (a->max_exemplars + 1));
    if (a->max_ns == NULL || a->bins == NULL || a->exemplars == NULL) {
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

/* -------------------------------------------------------------- the sketch */

/* LatencySketch._fold: past max_bins buckets, the lowest fold into the
 * max_bins-th highest key. */
static int
fold_bins(PyObject *bins, Py_ssize_t max_bins)
{
    PyObject *keys = PyDict_Keys(bins);
    if (keys == NULL || PyList_Sort(keys) < 0 || PyList_Reverse(keys) < 0) {
        Py_XDECREF(keys);
        return -1;
    }
    PyObject *floor_key = PyList_GET_ITEM(keys, max_bins - 1);
    PyObject *folded = PyDict_GetItemWithError(bins, floor_key);
    Py_XINCREF(folded);
    int rc = folded == NULL ? -1 : 0;
    for (Py_ssize_t i = max_bins; rc == 0 && i < PyList_GET_SIZE(keys); i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        PyObject *n = PyDict_GetItemWithError(bins, key);
        PyObject *sum = n ? PyNumber_Add(folded, n) : NULL;
        Py_SETREF(folded, sum);
        rc = (folded == NULL || PyDict_DelItem(bins, key) < 0) ? -1 : 0;
    }
    if (rc == 0)
        rc = PyDict_SetItem(bins, floor_key, folded);
    Py_XDECREF(folded);
    Py_DECREF(keys);
    return rc;
}

/* LatencySketch.add(value) for one value in milliseconds (value >= 0). */
static int
sketch_add(RedAcc *a, double value, double inv_log_gamma, Py_ssize_t max_bins)
{
    if (!(value > MIN_VALUE_MS)) {
        a->zeros++;
        if (value > a->max)
            a->max = value;
        if (value < a->min)
            a->min = value;
        return 0;
    }
    if (value > a->max)
        a->max = value;
    if (value < a->min)
        a->min = value;
    PyObject *key = PyLong_FromDouble(ceil(log(value) * inv_log_gamma));
    if (key == NULL)
        return -1;
    PyObject *n = PyDict_GetItemWithError(a->bins, key);
    Py_ssize_t count = n ? PyLong_AsSsize_t(n) : 0;
    PyObject *next = PyErr_Occurred() ? NULL : PyLong_FromSsize_t(count + 1);
    int rc = next == NULL ? -1 : PyDict_SetItem(a->bins, key, next);
    Py_DECREF(key);
    Py_XDECREF(next);
    if (rc == 0 && n == NULL && PyDict_GET_SIZE(a->bins) > max_bins)
        rc = fold_bins(a->bins, max_bins);
    return rc;
}

/* ------------------------------------------------------------- exemplars */

/* 1 when `x` ranks before `y` (errors first, then the slowest, then by trace id). */
static int
ranks_before(PyObject *tid, PyObject *dur, int err, const Exemplar_ *y)
{
    if (err != y->is_error)
        return err > y->is_error;
    int gt = PyObject_RichCompareBool(dur, y->duration_ns, Py_GT);
    if (gt != 0)
        return gt; /* 1, or -1 on error */
    int eq = PyObject_RichCompareBool(dur, y->duration_ns, Py_EQ);
    if (eq <= 0)
        return eq < 0 ? -1 : 0;
    return PyObject_RichCompareBool(tid, y->trace_id, Py_LT);
}

/* Move exemplar `i` up while it ranks before its predecessor. */
static int
bubble_up(RedAcc *a, Py_ssize_t i)
{
    while (i > 0) {
        Exemplar_ *e = &a->exemplars[i];
        int before = ranks_before(e->trace_id, e->duration_ns, e->is_error, e - 1);
        if (before <= 0)
            return before;
        Exemplar_ tmp = *e;
        *e = *(e - 1);
        *(e - 1) = tmp;
        i--;
    }
    return 0;
}

/* best_exemplars((*kept, candidate), max_exemplars), kept ranked and one per trace. */
static int
exemplar_add(RedAcc *a, PyObject *tid, PyObject *dur, int err)
{
    if (a->max_exemplars == 0)
        return 0;
    Py_ssize_t i = 0;
    for (; i < a->n_exemplars; i++) {
        PyObject *other = a->exemplars[i].trace_id;
        int same = other == tid ? 1 : PyObject_RichCompareBool(other, tid, Py_EQ);
        if (same < 0)
            return -1;
        if (same)
            break;
    }
    if (i == a->n_exemplars && i == a->max_exemplars)
        i--; /* a new trace: it can only take the last place */
    else if (i == a->n_exemplars) {
        a->exemplars[i] = (Exemplar_){Py_NewRef(tid), Py_NewRef(dur), err};
        a->n_exemplars++;
        return bubble_up(a, i);
    }
    Exemplar_ *slot = &a->exemplars[i];
    int before = ranks_before(tid, dur, err, slot);
    if (before <= 0)
        return before;
    Py_SETREF(slot->trace_id, Py_NewRef(tid));
    Py_SETREF(slot->duration_ns, Py_NewRef(dur));
    slot->is_error = err;
    return bubble_up(a, i);
}

/* ------------------------------------------------------------ one span */

typedef struct {
    PyObject *trace_id, *service, *operation, *timestamp_ns, *duration_ns; /* owned */
    int is_error;
} Facts;

static void
facts_release(Facts *f)
{
    Py_CLEAR(f->trace_id);
    Py_CLEAR(f->service);
    Py_CLEAR(f->operation);
    Py_CLEAR(f->timestamp_ns);
    Py_CLEAR(f->duration_ns);
}

static int
facts_of(PyObject *span, Facts *f)
{
    SpanHead *h = as_head(span);
    if (h == NULL)
        return -1;
    f->trace_id = Py_NewRef(h->trace_id);
    f->service = Py_NewRef(h->service_name);
    f->operation = Py_NewRef(h->operation);
    f->timestamp_ns = Py_NewRef(h->timestamp_ns);
    f->duration_ns = Py_NewRef(h->duration_ns);
    f->is_error = PyObject_IsTrue(h->is_error);
    if (f->is_error < 0) {
        facts_release(f);
        return -1;
    }
    return 0;
}

/* ts - ts % window (Python's floor modulo), new reference. */
static PyObject *
window_start(PyObject *ts, long long window_ns, PyObject *window_obj, PyObject *last)
{
    int overflow = 0;
    long long t = PyLong_AsLongLongAndOverflow(ts, &overflow);
    if (t == -1 && PyErr_Occurred())
        return NULL;
    long long r = t % window_ns, start;
    if (r < 0)
        r += window_ns;
    if (overflow == 0 && !__builtin_sub_overflow(t, r, &start)) {
        /* Spans of one record mostly share a window: reuse the last start's int. */
        int last_overflow = 1;
        if (last != NULL && PyLong_AsLongLongAndOverflow(last, &last_overflow) == start
            && last_overflow == 0)
            return Py_NewRef(last);
        return PyLong_FromLongLong(start);
    }
    PyObject *rem = PyNumber_Remainder(ts, window_obj);
    PyObject *out = rem ? PyNumber_Subtract(ts, rem) : NULL;
    Py_XDECREF(rem);
    return out;
}

/* duration_ns / NS_PER_MS as Python divides ints (correctly rounded), for d > 0. */
static int
to_ms(PyObject *dur, long long d, int overflow, double *value)
{
    static PyObject *ns_per_ms = NULL;
    if (overflow == 0 && d <= (1LL << 53)) {
        *value = (double)d / 1e6; /* both operands exact in a double */
        return 0;
    }
    if (ns_per_ms == NULL && (ns_per_ms = PyLong_FromLong(1000000)) == NULL)
        return -1;
    PyObject *q = PyNumber_TrueDivide(dur, ns_per_ms);
    *value = q ? PyFloat_AsDouble(q) : -1.0;
    Py_XDECREF(q);
    return PyErr_Occurred() ? -1 : 0;
}

/* WindowStats.add(max(duration, 0), is_error, trace_id). */
static int
acc_add(RedAcc *a, const Facts *f, double inv_log_gamma, Py_ssize_t max_bins)
{
    int overflow = 0;
    long long d = PyLong_AsLongLongAndOverflow(f->duration_ns, &overflow);
    if (d == -1 && PyErr_Occurred())
        return -1;
    int positive = overflow > 0 || (overflow == 0 && d > 0);
    /* A negative duration (clock skew) counts as zero, the int 0 as in Python. */
    PyObject *dur = positive ? Py_NewRef(f->duration_ns) : PyLong_FromLong(0);
    double value = 0.0;
    if (dur == NULL || (positive && to_ms(dur, d, overflow, &value) < 0))
        goto fail;
    int longest = PyObject_RichCompareBool(dur, a->max_ns, Py_GT);
    if (longest < 0)
        goto fail;
    a->requests++;
    if (f->is_error)
        a->errors++;
    /* A duration past int64 is over every threshold; a negative one counts as 0. */
    long long counted = positive ? d : 0;
    for (Py_ssize_t i = 0; overflow <= 0 && i < a->n_under; i++)
        if (counted <= a->limits[i])
            a->under[i]++;
    if (longest)
        Py_SETREF(a->max_ns, Py_NewRef(dur));
    if (sketch_add(a, value, inv_log_gamma, max_bins) < 0
        || exemplar_add(a, f->trace_id, dur, f->is_error) < 0)
        goto fail;
    Py_DECREF(dur);
    return 0;
fail:
    Py_XDECREF(dur);
    return -1;
}

/* The accumulator of (service, operation, window start) in `accs`, created if new with
 * the service's thresholds from `thresholds` (a dict, or None) (borrowed reference). */
static RedAcc *
acc_for(PyObject *accs, const Facts *f, PyObject *start, Py_ssize_t max_exemplars,
        PyObject *thresholds)
{
    PyObject *key = PyTuple_Pack(3, f->service, f->operation, start);
    if (key == NULL)
        return NULL;
    PyObject *acc = PyDict_GetItemWithError(accs, key);
    if (acc == NULL && !PyErr_Occurred()) {
        acc = (PyObject *)redacc_create(max_exemplars);
        PyObject *limits = (acc == NULL || thresholds == Py_None)
                               ? NULL : PyDict_GetItemWithError(thresholds, f->service);
        if (PyErr_Occurred()
            || (limits != NULL && redacc_set_limits((RedAcc *)acc, limits) < 0)
            || (acc != NULL && PyDict_SetItem(accs, key, acc) < 0))
            Py_CLEAR(acc);
        Py_XDECREF(acc); /* the dict holds it */
    }
    else if (acc != NULL && !Py_IS_TYPE(acc, &RedAccType)) {
        PyErr_SetString(PyExc_TypeError, "accumulators must hold RedAcc values");
        acc = NULL;
    }
    Py_DECREF(key);
    return (RedAcc *)acc;
}

/* The watermark after `ts`: max(watermark, min(ts, cap)); `*wm` is owned. */
static int
raise_watermark(PyObject **wm, PyObject *ts, PyObject *cap)
{
    PyObject *mark = ts;
    if (cap != Py_None) {
        int below = PyObject_RichCompareBool(ts, cap, Py_LT);
        if (below < 0)
            return -1;
        mark = below ? ts : cap;
    }
    int higher = *wm == Py_None ? 1 : PyObject_RichCompareBool(mark, *wm, Py_GT);
    if (higher > 0)
        Py_SETREF(*wm, Py_NewRef(mark));
    return higher < 0 ? -1 : 0;
}

static PyObject *
window_add(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *spans, *accs, *window_obj, *cap, *wm, *thresholds = Py_None;
    Py_ssize_t max_exemplars, max_bins;
    double inv_log_gamma;
    if (!PyArg_ParseTuple(args, "OO!O!OOndn|O", &spans, &PyDict_Type, &accs, &PyLong_Type,
                          &window_obj, &cap, &wm, &max_exemplars, &inv_log_gamma, &max_bins,
                          &thresholds))
        return NULL;
    if (thresholds != Py_None && !PyDict_Check(thresholds))
        return PyErr_Format(PyExc_TypeError, "thresholds must be a dict or None");
    long long window_ns = PyLong_AsLongLong(window_obj);
    if (window_ns <= 0)
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "window_ns must be > 0");
    if (max_bins < 1)
        return PyErr_Format(PyExc_ValueError, "max_bins must be >= 1");
    PyObject *seq = PySequence_Fast(spans, "spans must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_INCREF(wm);
    /* Spans of one record mostly repeat their series and window: one lookup for a run. */
    PyObject *last_service = NULL, *last_operation = NULL, *start = NULL;
    RedAcc *acc = NULL;
    int rc = 0;
    for (Py_ssize_t i = 0; rc == 0 && i < PySequence_Fast_GET_SIZE(seq); i++) {
        Facts f;
        if (facts_of(PySequence_Fast_GET_ITEM(seq, i), &f) < 0) {
            rc = -1;
            break;
        }
        PyObject *s = window_start(f.timestamp_ns, window_ns, window_obj, start);
        int same = s && start && f.service == last_service && f.operation == last_operation
                   ? (s == start ? 1 : PyObject_RichCompareBool(s, start, Py_EQ)) : 0;
        if (s == NULL || same < 0)
            rc = -1;
        else if (!same) {
            Py_XSETREF(start, Py_NewRef(s));
            Py_XSETREF(last_service, Py_NewRef(f.service));
            Py_XSETREF(last_operation, Py_NewRef(f.operation));
            acc = acc_for(accs, &f, start, max_exemplars, thresholds);
            rc = acc == NULL ? -1 : 0;
        }
        Py_XDECREF(s);
        if (rc == 0)
            rc = raise_watermark(&wm, f.timestamp_ns, cap);
        if (rc == 0)
            rc = acc_add(acc, &f, inv_log_gamma, max_bins);
        facts_release(&f);
    }
    Py_XDECREF(start);
    Py_XDECREF(last_service);
    Py_XDECREF(last_operation);
    Py_DECREF(seq);
    if (rc < 0)
        Py_CLEAR(wm);
    return wm;
}

#endif
