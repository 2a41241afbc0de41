/* otel_traces columns of kept heads as Arrow buffers, for _heads.c.
 *
 * arrow_columns() gives what columns() gives (see _columns.h), laid out as Arrow
 * arrays instead of Python lists: no str, dict or tuple per value. Building those
 * objects and then converting them to Arrow held the GIL for ~15 % of a worker's
 * time; these buffers become arrays without a copy (pipeline.store.arrow).
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

#include "_columns.h"

typedef struct {
    char *p;
    Py_ssize_t n, cap;
} Buf;

static int
buf_put(Buf *b, const void *src, Py_ssize_t n)
{
    if (b->n + n > b->cap) {
        Py_ssize_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n)
            cap *= 2;
        char *p = PyMem_Realloc(b->p, cap);
        if (p == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->n, src, n);
    b->n += n;
    return 0;
}

static int
buf_i32(Buf *b, Py_ssize_t v)
{
    if (v > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "Arrow int32 offsets overflow");
        return -1;
    }
    int32_t x = (int32_t)v;
    return buf_put(b, &x, sizeof x);
}

static int
buf_u64(Buf *b, uint64_t v)
{
    return buf_put(b, &v, sizeof v);
}

/* An offsets buffer counting `*count` children so far; starts at 0. */
typedef struct {
    Buf off;
    Py_ssize_t count;
} Offsets;

static int
offsets_close(Offsets *o)
{
    return buf_i32(&o->off, o->count);
}

typedef struct {
    Offsets o;
    Buf data;
} Strings;

static int
strings_add(Strings *s, const void *p, Py_ssize_t n)
{
    if (buf_put(&s->data, p, n) < 0)
        return -1;
    s->o.count = s->data.n;
    return offsets_close(&s->o);
}

static int
strings_add_str(Strings *s, PyObject *text)
{
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(text, &n);
    return p == NULL ? -1 : strings_add(s, p, n);
}

typedef struct {
    Offsets o;
    Strings keys, values;
} Maps;

/* One rendered attribute: key and value text, valid while `object` lives. */
typedef struct {
    Slice key, text;
    char digits[24];
    PyObject *object;
} Entry;

static void
entries_clear(Entry *entries, Py_ssize_t count)
{
    for (Py_ssize_t i = 0; i < count; i++)
        Py_CLEAR(entries[i].object);
}

/* A repeated KeyValue into entries[], as attr_dict() would make the dict; returns
 * the count, -2 when not canonical, -1 on a Python error (entries then released). */
static Py_ssize_t
render_kvs(const Slice *kvs, Py_ssize_t n, PyObject *kv_string, Entry *entries)
{
    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Slice key, raw;
        AnyValue v;
        if (read_keyvalue(kvs[i], &key, &raw)) {
            entries_clear(entries, count);
            return -2;
        }
        read_anyvalue(raw, &v);
        Py_ssize_t at = 0;
        while (at < count && !(entries[at].key.n == key.n
                               && memcmp(entries[at].key.p, key.p, key.n) == 0))
            at++;
        Entry *e = &entries[at];
        if (at == count) {
            e->key = key;
            e->object = NULL;
            count++;
        }
        Py_CLEAR(e->object);
        switch (v.kind) {
        case AV_EMPTY:
            e->text = (Slice){raw.p, 0};
            break;
        case AV_STRING:
            e->text = v.text;
            break;
        case AV_BOOL:
            e->text = (Slice){(const uint8_t *)(v.number ? "true" : "false"), v.number ? 4 : 5};
            break;
        case AV_INT:
            e->text.n = snprintf(e->digits, sizeof e->digits, "%lld", (long long)(int64_t)v.number);
            e->text.p = (const uint8_t *)e->digits;
            break;
        default: {
            Py_ssize_t len;
            e->object = PyObject_CallFunction(kv_string, "y#", (const char *)raw.p, raw.n);
            const char *p = e->object ? PyUnicode_AsUTF8AndSize(e->object, &len) : NULL;
            if (p == NULL) {
                entries_clear(entries, count);
                return -1;
            }
            e->text = (Slice){(const uint8_t *)p, len};
        }
        }
    }
    return count;
}

static int
maps_add(Maps *m, const Slice *kvs, Py_ssize_t n, PyObject *kv_string, Entry *entries)
{
    Py_ssize_t count = render_kvs(kvs, n, kv_string, entries);
    int rc = count == -2 ? 1 : count < 0 ? -1 : 0;
    for (Py_ssize_t i = 0; rc == 0 && i < count; i++)
        if (strings_add(&m->keys, entries[i].key.p, entries[i].key.n) < 0
            || strings_add(&m->values, entries[i].text.p, entries[i].text.n) < 0)
            rc = -1;
    entries_clear(entries, count);
    if (rc == 0) {
        m->o.count += count;
        rc = offsets_close(&m->o);
    }
    if (rc == 1)
        PyErr_SetString(PyExc_ValueError, "not a span the scan accepted");
    return rc == 0 ? 0 : -1;
}

static int
maps_add_dict(Maps *m, PyObject *dict)
{
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    if (!PyDict_Check(dict)) {
        PyErr_SetString(PyExc_TypeError, "resource attributes must be a dict");
        return -1;
    }
    while (PyDict_Next(dict, &pos, &k, &v))
        if (strings_add_str(&m->keys, k) < 0 || strings_add_str(&m->values, v) < 0)
            return -1;
    m->o.count += PyDict_GET_SIZE(dict);
    return offsets_close(&m->o);
}

enum { A_TIMESTAMP, A_DURATION, A_EV_TIME, N_FIXED };
enum {
    S_TRACE_ID, S_SPAN_ID, S_PARENT, S_TRACE_STATE, S_NAME, S_KIND, S_SERVICE, S_SCOPE_NAME,
    S_SCOPE_VERSION, S_STATUS, S_STATUS_MESSAGE, S_EV_NAME, S_LK_TRACE, S_LK_SPAN, S_LK_STATE,
    N_STRINGS
};
enum { M_RESOURCE, M_ATTRIBUTES, M_EV_ATTRS, M_LK_ATTRS, N_MAPS };

typedef struct {
    Buf fixed[N_FIXED];
    Strings strings[N_STRINGS];
    Maps maps[N_MAPS];
    Offsets events, links; /* the list offsets of the Events.* and Links.* columns */
    Entry entries[MAX_KV];
    Rows rows;
} Arrow;

static int
hex_add(Strings *s, Slice id)
{
    static const char digits[] = "0123456789abcdef";
    char out[32];
    if (id.n == 0 || id.n > 16 || all_zero(id))
        return strings_add(s, "", 0);
    for (Py_ssize_t i = 0; i < id.n; i++) {
        out[2 * i] = digits[id.p[i] >> 4];
        out[2 * i + 1] = digits[id.p[i] & 15];
    }
    return strings_add(s, out, 2 * id.n);
}

static int
event_add(Arrow *a, Slice raw)
{
    EventFields *e = &a->rows.scratch->part.event;
    if (read_event(raw, e)) {
        PyErr_SetString(PyExc_ValueError, "odd event");
        return -1;
    }
    if (e->time > (uint64_t)INT64_MAX) {
        PyErr_SetString(PyExc_OverflowError, "event time beyond DateTime64(9)");
        return -1;
    }
    return buf_u64(&a->fixed[A_EV_TIME], e->time) < 0
                   || strings_add(&a->strings[S_EV_NAME], e->name.p, e->name.n) < 0
                   || maps_add(&a->maps[M_EV_ATTRS], e->kvs, e->n_kvs, a->rows.kv_string,
                               a->entries) < 0
               ? -1
               : 0;
}

static int
link_add(Arrow *a, Slice raw)
{
    LinkFields *l = &a->rows.scratch->part.link;
    if (read_link(raw, l)) {
        PyErr_SetString(PyExc_ValueError, "odd link");
        return -1;
    }
    return hex_add(&a->strings[S_LK_TRACE], l->trace_id) < 0
                   || hex_add(&a->strings[S_LK_SPAN], l->span_id) < 0
                   || strings_add(&a->strings[S_LK_STATE], l->trace_state.p, l->trace_state.n)
                          < 0
                   || maps_add(&a->maps[M_LK_ATTRS], l->kvs, l->n_kvs, a->rows.kv_string,
                               a->entries) < 0
               ? -1
               : 0;
}

static int
label_add(Strings *s, PyObject *names, int32_t code)
{
    PyObject *text = label(names, code);
    int rc = text == NULL ? -1 : strings_add_str(s, text);
    Py_XDECREF(text);
    return rc;
}

/* The span's own columns, read from its bytes (after the head's and context's). */
static int
span_add(Arrow *a, SpanFields *s)
{
    Strings *str = a->strings;
    if (strings_add(&str[S_TRACE_STATE], s->trace_state.p, s->trace_state.n) < 0
        || strings_add(&str[S_NAME], s->name.p, s->name.n) < 0
        || label_add(&str[S_KIND], a->rows.kinds, s->kind) < 0
        || label_add(&str[S_STATUS], a->rows.statuses, s->status) < 0
        || strings_add(&str[S_STATUS_MESSAGE], s->status_message.p, s->status_message.n) < 0
        || maps_add(&a->maps[M_ATTRIBUTES], s->kvs, s->n_kvs, a->rows.kv_string, a->entries)
               < 0)
        return -1;
    for (Py_ssize_t i = 0; i < s->n_events; i++)
        if (event_add(a, s->events[i]) < 0)
            return -1;
    for (Py_ssize_t i = 0; i < s->n_links; i++)
        if (link_add(a, s->links[i]) < 0)
            return -1;
    a->events.count += s->n_events;
    a->links.count += s->n_links;
    return offsets_close(&a->events) < 0 || offsets_close(&a->links) < 0 ? -1 : 0;
}

static int
arrow_row(Arrow *a, SpanHead *h)
{
    CtxCache *c = &a->rows.ctx;
    SpanFields *s = &a->rows.scratch->span;
    Slice raw = {(const uint8_t *)PyBytes_AS_STRING(h->value) + h->offset, h->length};
    if (ctx_fields(c, h->ctx) < 0)
        return -1;
    if (read_span(raw, s)) {
        PyErr_SetString(PyExc_ValueError, "not a span the scan accepted");
        return -1;
    }
    long long start = PyLong_AsLongLong(h->timestamp_ns);
    unsigned long long duration = PyLong_AsUnsignedLongLong(h->duration_ns);
    if (PyErr_Occurred())
        return -1;
    Strings *str = a->strings;
    return buf_u64(&a->fixed[A_TIMESTAMP], (uint64_t)start) < 0
                   || buf_u64(&a->fixed[A_DURATION], duration) < 0
                   || strings_add_str(&str[S_TRACE_ID], h->trace_id) < 0
                   || strings_add_str(&str[S_SPAN_ID], h->span_id) < 0
                   || strings_add_str(&str[S_PARENT], h->parent_span_id) < 0
                   || strings_add_str(&str[S_SERVICE], c->service) < 0
                   || strings_add_str(&str[S_SCOPE_NAME], c->scope_name) < 0
                   || strings_add_str(&str[S_SCOPE_VERSION], c->scope_version) < 0
                   || maps_add_dict(&a->maps[M_RESOURCE], c->resource) < 0
                   || span_add(a, s) < 0
               ? -1
               : 0;
}

static PyObject *
buf_bytes(Buf *b)
{
    return PyBytes_FromStringAndSize(b->p ? b->p : "", b->n);
}

/* Build a (layout, bytes...) tuple: `spec` is the layout, then the buffers. */
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
        PyObject *bytes = buf_bytes(bufs[i]);
        if (bytes == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i + 1, bytes);
    }
    return out;
}

#define MAP_BUFS(m) &(m).o.off, &(m).keys.o.off, &(m).keys.data, &(m).values.o.off, &(m).values.data

static int
put_column(PyObject *out, int column, const char *spec, int n, Buf **bufs)
{
    PyObject *value = layout(spec, n, bufs);
    int rc = value == NULL ? -1 : PyDict_SetItemString(out, COLUMN_NAMES[column], value);
    Py_XDECREF(value);
    return rc;
}

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
        Strings *s = &a->strings[k];
        int listed = k >= S_EV_NAME;
        Offsets *list = k == S_EV_NAME ? &a->events : &a->links;
        Buf *bufs[] = {&list->off, &s->o.off, &s->data};
        if (put_column(out, STRING_COLUMNS[k], listed ? "list_str" : "str", listed ? 3 : 2,
                       listed ? bufs : bufs + 1)
            < 0)
            return -1;
    }
    for (int k = 0; k < N_MAPS; k++) {
        Offsets *list = k == M_EV_ATTRS ? &a->events : &a->links;
        Buf *bufs[] = {&list->off, MAP_BUFS(a->maps[k])};
        int listed = k >= M_EV_ATTRS;
        if (put_column(out, MAP_COLUMNS[k], listed ? "list_map" : "map", listed ? 6 : 5,
                       listed ? bufs : bufs + 1)
            < 0)
            return -1;
    }
    return 0;
}

static int
arrow_start(Arrow *a)
{
    Offsets *all[N_STRINGS + 3 * N_MAPS + 2];
    int n = 0;
    for (int k = 0; k < N_STRINGS; k++)
        all[n++] = &a->strings[k].o;
    for (int k = 0; k < N_MAPS; k++) {
        all[n++] = &a->maps[k].o;
        all[n++] = &a->maps[k].keys.o;
        all[n++] = &a->maps[k].values.o;
    }
    all[n++] = &a->events;
    all[n++] = &a->links;
    for (int i = 0; i < n; i++)
        if (offsets_close(all[i]) < 0)
            return -1;
    return 0;
}

static void
arrow_free(Arrow *a)
{
    for (int k = 0; k < N_FIXED; k++)
        PyMem_Free(a->fixed[k].p);
    for (int k = 0; k < N_STRINGS; k++) {
        PyMem_Free(a->strings[k].o.off.p);
        PyMem_Free(a->strings[k].data.p);
    }
    for (int k = 0; k < N_MAPS; k++) {
        Maps *m = &a->maps[k];
        PyMem_Free(m->o.off.p);
        PyMem_Free(m->keys.o.off.p);
        PyMem_Free(m->keys.data.p);
        PyMem_Free(m->values.o.off.p);
        PyMem_Free(m->values.data.p);
    }
    PyMem_Free(a->events.off.p);
    PyMem_Free(a->links.off.p);
    Py_XDECREF(a->rows.ctx.ctx);
    Py_XDECREF(a->rows.ctx.service);
    Py_XDECREF(a->rows.ctx.resource);
    Py_XDECREF(a->rows.ctx.scope_name);
    Py_XDECREF(a->rows.ctx.scope_version);
    PyMem_Free(a->rows.scratch);
    PyMem_Free(a);
}

/* arrow_columns(heads, kv_string, kinds, statuses) -> {column: (layout, bytes, ...)} */
static PyObject *
arrow_columns(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *heads, *out = NULL;
    Arrow *a = PyMem_Calloc(1, sizeof(Arrow));
    if (a == NULL)
        return PyErr_NoMemory();
    if (!PyArg_ParseTuple(args, "O!OO!O!:arrow_columns", &PyList_Type, &heads,
                          &a->rows.kv_string, &PyDict_Type, &a->rows.kinds, &PyDict_Type,
                          &a->rows.statuses)) {
        arrow_free(a);
        return NULL;
    }
    a->rows.scratch = PyMem_Malloc(sizeof(Scratch));
    int rc = a->rows.scratch == NULL ? (PyErr_NoMemory(), -1) : arrow_start(a);
    for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(heads); i++) {
        SpanHead *h = (SpanHead *)PyList_GET_ITEM(heads, i);
        if (!Py_IS_TYPE(h, &SpanHeadType) || h->span != Py_None) {
            PyErr_SetString(PyExc_TypeError, "arrow_columns() takes heads the scan made");
            rc = -1;
        }
        else
            rc = arrow_row(a, h);
    }
    if (rc == 0 && (out = PyDict_New()) != NULL && arrow_output(a, out) < 0)
        Py_CLEAR(out);
    arrow_free(a);
    return out;
}

#endif
