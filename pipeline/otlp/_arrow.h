/* otel_traces columns of kept heads as Arrow buffers, for _heads.c.
 *
 * arrow_columns() gives what columns() gives (see _columns.h), laid out as Arrow
 * arrays instead of Python lists: no str, dict or tuple per value. Building those
 * objects and then converting them to Arrow held the GIL for ~15 % of a worker's
 * time; these buffers become arrays without a copy (pipeline.store.arrow).
 *
 * It runs in two phases. With the GIL, it reads what lives in Python objects (each
 * head's ids and times, each context's service, scope and resource map) into C
 * values and takes references that keep their bytes alive. Without the GIL, it
 * reads every span's bytes and writes all buffers, so the ingest thread keeps the
 * interpreter meanwhile. A row needing Python (an attribute value only the
 * kv_string callback renders, a kind or status code outside the tables) is rolled
 * back and written again with the GIL.
 *
 * Per column a layout and its buffers, each a bytes object:
 *   "ts", "u64"     values (int64 ns / uint64)
 *   "str"           offsets (int32, n + 1), UTF-8 data
 *   "map"           offsets, key offsets, key data, value offsets, value data
 *   "list_ts"       list offsets, values
 *   "list_str"      list offsets, string offsets, string data
 *   "list_map"      list offsets, then the five buffers of "map"
 * Attribute maps follow dict semantics (a duplicate key keeps its first position
 * and last value) so each row equals the dict columns() would give.
 * OverflowError when a buffer passes Arrow's int32 offsets: the caller splits.
 */
#ifndef SPANSTREAM_ARROW_H
#define SPANSTREAM_ARROW_H

#include "_buffers.h"
#include "_columns.h"

/* What the rows of one ScopeContext share, read with the GIL; holds references. */
typedef struct {
    PyObject *ctx, *objects; /* objects: a list owning every str the slices point into */
    Slice service, scope_name, scope_version;
    Slice *resource; /* key, value, key, value, ... */
    Py_ssize_t n_resource;
} Ctx;

/* What a row needs of its head: C values and slices into objects kept alive. */
typedef struct {
    Slice raw, trace_id, span_id, parent;
    int64_t start;
    uint64_t duration;
    Py_ssize_t ctx;
} HeadRow;

#define N_LABELS 8 /* kind and status codes 0..7 resolved up front */

enum { A_TIMESTAMP, A_DURATION, A_EV_TIME, N_FIXED };
enum {
    S_TRACE_ID, S_SPAN_ID, S_PARENT, S_TRACE_STATE, S_NAME, S_KIND, S_SERVICE, S_SCOPE_NAME,
    S_SCOPE_VERSION, S_STATUS, S_STATUS_MESSAGE, S_EV_NAME, S_LK_TRACE, S_LK_SPAN, S_LK_STATE,
    N_STRINGS
};
enum { M_RESOURCE, M_ATTRIBUTES, M_EV_ATTRS, M_LK_ATTRS, N_MAPS };
#define N_BUFS (N_FIXED + 2 * N_STRINGS + 5 * N_MAPS + 2)
#define N_COUNTS (N_STRINGS + 3 * N_MAPS + 2)

typedef struct {
    Buf fixed[N_FIXED];
    Strings strings[N_STRINGS];
    Maps maps[N_MAPS];
    Offsets events, links; /* the list offsets of the Events.* and Links.* columns */
    Buf *bufs[N_BUFS];     /* every buffer above, and every count: for roll-backs */
    Py_ssize_t *counts[N_COUNTS];
    Slice kinds[N_LABELS], statuses[N_LABELS];
    PyObject *labels; /* owns the label strs */
    Entry entries[MAX_KV];
    SpanFields span;
    union {
        EventFields event;
        LinkFields link;
    } part;
    Ctx *ctxs;
    Py_ssize_t n_ctxs;
    HeadRow *rows;
} Arrow;

/* Python's side of a row written with the GIL; NULL without it. */
typedef struct {
    PyObject *kv_string, *kinds, *statuses;
} PyParts;

static int
hex_add(Strings *s, Slice id)
{
    char out[32];
    return strings_add(s, (Slice){(const uint8_t *)out, hex_chars(id, out)});
}

static int
event_add(Arrow *a, Slice raw, PyParts *py)
{
    EventFields *e = &a->part.event;
    if (read_event(raw, e))
        return E_EVENT;
    if (e->time > (uint64_t)INT64_MAX)
        return E_TIME;
    TRY(buf_u64(&a->fixed[A_EV_TIME], e->time));
    TRY(strings_add(&a->strings[S_EV_NAME], e->name));
    return maps_add(&a->maps[M_EV_ATTRS], e->kvs, e->n_kvs, py ? py->kv_string : NULL,
                    a->entries);
}

static int
link_add(Arrow *a, Slice raw, PyParts *py)
{
    LinkFields *l = &a->part.link;
    if (read_link(raw, l))
        return E_LINK;
    TRY(hex_add(&a->strings[S_LK_TRACE], l->trace_id));
    TRY(hex_add(&a->strings[S_LK_SPAN], l->span_id));
    TRY(strings_add(&a->strings[S_LK_STATE], l->trace_state));
    return maps_add(&a->maps[M_LK_ATTRS], l->kvs, l->n_kvs, py ? py->kv_string : NULL,
                    a->entries);
}

/* A kind or status name: from the table, else (with the GIL) label(). */
static int
label_add(Strings *s, const Slice *table, PyObject *names, int32_t code, PyParts *py)
{
    if (code >= 0 && code < N_LABELS)
        return strings_add(s, table[code]);
    if (py == NULL)
        return E_NEED_GIL;
    PyObject *text = label(names, code);
    Slice utf8;
    int rc = text == NULL ? E_PYTHON : utf8_of(text, &utf8);
    if (rc == E_OK)
        rc = strings_add(s, utf8);
    Py_XDECREF(text);
    return rc;
}

static int
span_add(Arrow *a, const SpanFields *s, PyParts *py)
{
    Strings *str = a->strings;
    TRY(strings_add(&str[S_TRACE_STATE], s->trace_state));
    TRY(strings_add(&str[S_NAME], s->name));
    TRY(label_add(&str[S_KIND], a->kinds, py ? py->kinds : NULL, s->kind, py));
    TRY(label_add(&str[S_STATUS], a->statuses, py ? py->statuses : NULL, s->status, py));
    TRY(strings_add(&str[S_STATUS_MESSAGE], s->status_message));
    TRY(maps_add(&a->maps[M_ATTRIBUTES], s->kvs, s->n_kvs, py ? py->kv_string : NULL,
                 a->entries));
    for (Py_ssize_t i = 0; i < s->n_events; i++)
        TRY(event_add(a, s->events[i], py));
    for (Py_ssize_t i = 0; i < s->n_links; i++)
        TRY(link_add(a, s->links[i], py));
    a->events.count += s->n_events;
    a->links.count += s->n_links;
    TRY(offsets_close(&a->events));
    return offsets_close(&a->links);
}

/* One row from its head's C values: touches no Python object unless `py` is set. */
static int
row_add(Arrow *a, const HeadRow *h, PyParts *py)
{
    const Ctx *c = &a->ctxs[h->ctx];
    Strings *str = a->strings;
    Maps *resource = &a->maps[M_RESOURCE];
    if (read_span(h->raw, &a->span))
        return E_SPAN;
    TRY(buf_u64(&a->fixed[A_TIMESTAMP], (uint64_t)h->start));
    TRY(buf_u64(&a->fixed[A_DURATION], h->duration));
    TRY(strings_add(&str[S_TRACE_ID], h->trace_id));
    TRY(strings_add(&str[S_SPAN_ID], h->span_id));
    TRY(strings_add(&str[S_PARENT], h->parent));
    TRY(strings_add(&str[S_SERVICE], c->service));
    TRY(strings_add(&str[S_SCOPE_NAME], c->scope_name));
    TRY(strings_add(&str[S_SCOPE_VERSION], c->scope_version));
    for (Py_ssize_t i = 0; i < c->n_resource; i += 2) {
        TRY(strings_add(&resource->keys, c->resource[i]));
        TRY(strings_add(&resource->values, c->resource[i + 1]));
    }
    resource->o.count += c->n_resource / 2;
    TRY(offsets_close(&resource->o));
    return span_add(a, &a->span, py);
}

/* ---------------------------------------------------------------- with the GIL */

/* Keep `text` alive in `owner` and point `out` at its UTF-8. */
static int
hold_utf8(PyObject *owner, PyObject *text, Slice *out)
{
    if (text == NULL || PyList_Append(owner, text) < 0)
        return E_PYTHON;
    return utf8_of(text, out);
}

static int
ctx_read(Ctx *c, PyObject *ctx)
{
    PyObject *names[] = {PyObject_GetAttrString(ctx, "service"),
                         PyObject_GetAttrString(ctx, "scope_name"),
                         PyObject_GetAttrString(ctx, "scope_version"),
                         PyObject_GetAttrString(ctx, "resource_attributes")};
    Slice *slots[] = {&c->service, &c->scope_name, &c->scope_version};
    int rc = (c->objects = PyList_New(0)) == NULL ? E_PYTHON : E_OK;
    c->ctx = Py_NewRef(ctx);
    for (int k = 0; rc == E_OK && k < 3; k++)
        rc = hold_utf8(c->objects, names[k], slots[k]);
    PyObject *dict = names[3];
    if (rc == E_OK && (dict == NULL || PyList_Append(c->objects, dict) < 0))
        rc = E_PYTHON;
    else if (rc == E_OK && !PyDict_Check(dict)) {
        PyErr_SetString(PyExc_TypeError, "resource attributes must be a dict");
        rc = E_PYTHON;
    }
    if (rc == E_OK) {
        c->resource = PyMem_RawMalloc(sizeof(Slice) * 2 * (PyDict_GET_SIZE(dict) + 1));
        rc = c->resource == NULL ? E_NOMEM : E_OK;
    }
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (rc == E_OK && PyDict_Next(dict, &pos, &k, &v)) {
        rc = hold_utf8(c->objects, k, &c->resource[c->n_resource]);
        if (rc == E_OK)
            rc = hold_utf8(c->objects, v, &c->resource[c->n_resource + 1]);
        c->n_resource += 2;
    }
    for (int k = 0; k < 4; k++)
        Py_XDECREF(names[k]);
    return rc;
}

/* The index of `ctx` in a->ctxs, reading it on first sight; -1 on failure (*rc set). */
static Py_ssize_t
ctx_index(Arrow *a, PyObject *ctx, Py_ssize_t last, Py_ssize_t capacity, int *rc)
{
    if (last >= 0 && a->ctxs[last].ctx == ctx)
        return last;
    for (Py_ssize_t i = 0; i < a->n_ctxs; i++)
        if (a->ctxs[i].ctx == ctx)
            return i;
    if (a->n_ctxs == capacity) {
        *rc = E_NOMEM; /* cannot happen: one context per head at most */
        return -1;
    }
    *rc = ctx_read(&a->ctxs[a->n_ctxs++], ctx);
    return *rc == E_OK ? a->n_ctxs - 1 : -1;
}

static int
head_read(Arrow *a, PyObject *item, HeadRow *r, Py_ssize_t *last, Py_ssize_t capacity)
{
    SpanHead *h = (SpanHead *)item;
    int rc = E_OK;
    if (!Py_IS_TYPE(h, &SpanHeadType) || h->span != Py_None) {
        PyErr_SetString(PyExc_TypeError, "arrow_columns() takes heads the scan made");
        return E_PYTHON;
    }
    r->raw = (Slice){(const uint8_t *)PyBytes_AS_STRING(h->value) + h->offset, h->length};
    r->start = PyLong_AsLongLong(h->timestamp_ns);
    r->duration = PyLong_AsUnsignedLongLong(h->duration_ns);
    if (PyErr_Occurred())
        return E_PYTHON;
    TRY(utf8_of(h->trace_id, &r->trace_id));
    TRY(utf8_of(h->span_id, &r->span_id));
    TRY(utf8_of(h->parent_span_id, &r->parent));
    *last = r->ctx = ctx_index(a, h->ctx, *last, capacity, &rc);
    return rc;
}

static int
labels_read(Arrow *a, PyParts *py)
{
    PyObject *dicts[] = {py->kinds, py->statuses};
    Slice *tables[] = {a->kinds, a->statuses};
    if ((a->labels = PyList_New(0)) == NULL)
        return E_PYTHON;
    for (int d = 0; d < 2; d++)
        for (int32_t code = 0; code < N_LABELS; code++) {
            PyObject *text = label(dicts[d], code);
            int rc = hold_utf8(a->labels, text, &tables[d][code]);
            Py_XDECREF(text);
            TRY(rc);
        }
    return E_OK;
}

/* ---------------------------------------------------------------- the two phases */

static void
arrow_index(Arrow *a)
{
    int nb = 0, nc = 0;
    for (int k = 0; k < N_FIXED; k++)
        a->bufs[nb++] = &a->fixed[k];
    for (int k = 0; k < N_STRINGS; k++) {
        a->bufs[nb++] = &a->strings[k].o.off;
        a->bufs[nb++] = &a->strings[k].data;
        a->counts[nc++] = &a->strings[k].o.count;
    }
    for (int k = 0; k < N_MAPS; k++) {
        Maps *m = &a->maps[k];
        Offsets *offsets[] = {&m->o, &m->keys.o, &m->values.o};
        a->bufs[nb++] = &m->keys.data;
        a->bufs[nb++] = &m->values.data;
        for (int j = 0; j < 3; j++) {
            a->bufs[nb++] = &offsets[j]->off;
            a->counts[nc++] = &offsets[j]->count;
        }
    }
    a->bufs[nb++] = &a->events.off;
    a->bufs[nb++] = &a->links.off;
    a->counts[nc++] = &a->events.count;
    a->counts[nc++] = &a->links.count;
}

typedef struct {
    Py_ssize_t lengths[N_BUFS], counts[N_COUNTS];
} Mark;

static void
mark_take(const Arrow *a, Mark *m)
{
    for (int k = 0; k < N_BUFS; k++)
        m->lengths[k] = a->bufs[k]->n;
    for (int k = 0; k < N_COUNTS; k++)
        m->counts[k] = *a->counts[k];
}

static void
mark_restore(Arrow *a, const Mark *m)
{
    for (int k = 0; k < N_BUFS; k++)
        a->bufs[k]->n = m->lengths[k];
    for (int k = 0; k < N_COUNTS; k++)
        *a->counts[k] = m->counts[k];
}

/* Every row, without the GIL where it can; E_OK or the first failure. */
static int
rows_write(Arrow *a, Py_ssize_t n, PyParts *py)
{
    Mark mark;
    int rc = E_OK;
    Py_ssize_t i = 0;
    while (i < n && rc == E_OK) {
        Py_BEGIN_ALLOW_THREADS
        for (; i < n; i++) {
            mark_take(a, &mark);
            if ((rc = row_add(a, &a->rows[i], NULL)) != E_OK)
                break;
        }
        Py_END_ALLOW_THREADS
        if (rc == E_NEED_GIL) {
            mark_restore(a, &mark);
            rc = row_add(a, &a->rows[i++], py);
        }
    }
    return rc;
}

static int
arrow_start(Arrow *a)
{
    Offsets *all[] = {&a->events, &a->links};
    for (int k = 0; k < 2; k++)
        TRY(offsets_close(all[k]));
    for (int k = 0; k < N_STRINGS; k++)
        TRY(offsets_close(&a->strings[k].o));
    for (int k = 0; k < N_MAPS; k++) {
        TRY(offsets_close(&a->maps[k].o));
        TRY(offsets_close(&a->maps[k].keys.o));
        TRY(offsets_close(&a->maps[k].values.o));
    }
    return E_OK;
}

static void
arrow_free(Arrow *a)
{
    for (int k = 0; k < N_BUFS; k++)
        PyMem_RawFree(a->bufs[k]->p);
    for (Py_ssize_t i = 0; i < a->n_ctxs; i++) {
        Py_XDECREF(a->ctxs[i].ctx);
        Py_XDECREF(a->ctxs[i].objects);
        PyMem_RawFree(a->ctxs[i].resource);
    }
    Py_XDECREF(a->labels);
    PyMem_RawFree(a->ctxs);
    PyMem_RawFree(a->rows);
    PyMem_RawFree(a);
}

/* ---------------------------------------------------------------- output */

static PyObject *
layout(const char *spec, int n, Buf **bufs)
{
    PyObject *out = PyTuple_New(n + 1);
    PyObject *name = out ? PyUnicode_FromString(spec) : NULL;
    if (name == NULL) {
        Py_XDECREF(out);
        return NULL;
    }
    PyTuple_SET_ITEM(out, 0, name);
    for (int i = 0; i < n; i++) {
        PyObject *bytes = PyBytes_FromStringAndSize(bufs[i]->p ? bufs[i]->p : "", bufs[i]->n);
        if (bytes == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i + 1, bytes);
    }
    return out;
}

static int
put_column(PyObject *out, int column, const char *spec, int n, Buf **bufs)
{
    PyObject *value = layout(spec, n, bufs);
    int rc = value == NULL ? -1 : PyDict_SetItemString(out, COLUMN_NAMES[column], value);
    Py_XDECREF(value);
    return rc;
}

#define MAP_BUFS(m) &(m).o.off, &(m).keys.o.off, &(m).keys.data, &(m).values.o.off, &(m).values.data

static int
arrow_output(Arrow *a, PyObject *out)
{
    static const int STRING_COLUMNS[N_STRINGS] = {
        C_TRACE_ID, C_SPAN_ID, C_PARENT, C_TRACE_STATE, C_NAME, C_KIND, C_SERVICE,
        C_SCOPE_NAME, C_SCOPE_VERSION, C_STATUS, C_STATUS_MESSAGE, C_EV_NAME, C_LK_TRACE,
        C_LK_SPAN, C_LK_STATE};
    static const int MAP_COLUMNS[N_MAPS] = {C_RESOURCE, C_ATTRIBUTES, C_EV_ATTRS, C_LK_ATTRS};
    Buf *ts[] = {&a->fixed[A_TIMESTAMP]}, *dur[] = {&a->fixed[A_DURATION]};
    Buf *ev_ts[] = {&a->events.off, &a->fixed[A_EV_TIME]};
    if (put_column(out, C_TIMESTAMP, "ts", 1, ts) < 0
        || put_column(out, C_DURATION, "u64", 1, dur) < 0
        || put_column(out, C_EV_TIME, "list_ts", 2, ev_ts) < 0)
        return -1;
    for (int k = 0; k < N_STRINGS; k++) {
        int listed = k >= S_EV_NAME;
        Offsets *list = k == S_EV_NAME ? &a->events : &a->links;
        Buf *bufs[] = {&list->off, &a->strings[k].o.off, &a->strings[k].data};
        if (put_column(out, STRING_COLUMNS[k], listed ? "list_str" : "str", listed ? 3 : 2,
                       listed ? bufs : bufs + 1)
            < 0)
            return -1;
    }
    for (int k = 0; k < N_MAPS; k++) {
        int listed = k >= M_EV_ATTRS;
        Offsets *list = k == M_EV_ATTRS ? &a->events : &a->links;
        Buf *bufs[] = {&list->off, MAP_BUFS(a->maps[k])};
        if (put_column(out, MAP_COLUMNS[k], listed ? "list_map" : "map", listed ? 6 : 5,
                       listed ? bufs : bufs + 1)
            < 0)
            return -1;
    }
    return 0;
}

/* arrow_columns(heads, kv_string, kinds, statuses) -> {column: (layout, bytes, ...)} */
static PyObject *
arrow_columns(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *heads, *items, *out = NULL;
    PyParts py;
    if (!PyArg_ParseTuple(args, "O!OO!O!:arrow_columns", &PyList_Type, &heads, &py.kv_string,
                          &PyDict_Type, &py.kinds, &PyDict_Type, &py.statuses))
        return NULL;
    /* Our own tuple: the rows point into these heads while the GIL is released. */
    if ((items = PyList_AsTuple(heads)) == NULL)
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(items), last = -1;
    Arrow *a = PyMem_RawCalloc(1, sizeof(Arrow));
    int rc = a == NULL ? E_NOMEM : E_OK;
    if (rc == E_OK) {
        arrow_index(a); /* first: arrow_free() walks the index */
        a->rows = PyMem_RawMalloc(sizeof(HeadRow) * (n + 1));
        a->ctxs = PyMem_RawCalloc(n + 1, sizeof(Ctx));
        rc = a->rows && a->ctxs ? arrow_start(a) : E_NOMEM;
    }
    if (rc == E_OK)
        rc = labels_read(a, &py);
    for (Py_ssize_t i = 0; rc == E_OK && i < n; i++)
        rc = head_read(a, PyTuple_GET_ITEM(items, i), &a->rows[i], &last, n + 1);
    if (rc == E_OK)
        rc = rows_write(a, n, &py);
    if (rc == E_OK && (out = PyDict_New()) != NULL && arrow_output(a, out) < 0)
        Py_CLEAR(out);
    if (rc != E_OK)
        raise_for(rc);
    if (a != NULL)
        arrow_free(a);
    Py_DECREF(items);
    return out;
}

#endif
