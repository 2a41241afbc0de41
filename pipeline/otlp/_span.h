/* One Span message for _heads.c: its fields, its row-size estimate, its full columns.
 *
 * read_span() accepts the canonical encoding only (1 otherwise): each known field
 * with its declared wire type, ids of valid lengths. Unknown fields are skipped, as
 * upb does; a repeated singular field keeps its last value, as upb does.
 *
 * Times the store cannot hold (past INT64_MAX ns, the range of DateTime64(9)) and an
 * unset start also return 1: the Python path (otlp_proto.build_span, checks in ids.py)
 * then raises bad_span with its own detail, as it does for invalid ids.
 */
#ifndef SPANSTREAM_SPAN_H
#define SPANSTREAM_SPAN_H

#include "_values.h"

#define MAX_PARTS 64 /* events or links per span read natively */

typedef struct {
    Slice trace_id, span_id, parent, name, trace_state, status_message;
    uint64_t start, end;
    int32_t kind, status;
    Py_ssize_t n_kvs, n_events, n_links;
    Slice kvs[MAX_KV], events[MAX_PARTS], links[MAX_PARTS];
} SpanFields;

typedef struct {
    uint64_t time;
    Slice name, kvs[MAX_KV];
    Py_ssize_t n_kvs;
} EventFields;

typedef struct {
    Slice trace_id, span_id, trace_state, kvs[MAX_KV];
    Py_ssize_t n_kvs;
} LinkFields;

static const Py_ssize_t KIND_LENGTHS[] = {11, 8, 6, 6, 8, 8}; /* Unspecified .. Consumer */
static const Py_ssize_t STATUS_LENGTHS[] = {5, 2, 5};         /* Unset, Ok, Error */

/* Field number -> wire type, for the fields 1..16 of Span, Event and Link. */
static const int SPAN_WIRE_TYPES[17] = {
    -1, WT_LEN, WT_LEN, WT_LEN, WT_LEN, WT_LEN, WT_VARINT, WT_I64, WT_I64, WT_LEN,
    WT_VARINT, WT_LEN, WT_VARINT, WT_LEN, WT_VARINT, WT_LEN, WT_I32};
static const int EVENT_WIRE_TYPES[5] = {-1, WT_I64, WT_LEN, WT_LEN, WT_VARINT};
static const int LINK_WIRE_TYPES[7] = {-1, WT_LEN, WT_LEN, WT_LEN, WT_LEN, WT_VARINT, WT_I32};

/* Append a LEN field to a bounded array of slices; -1 when full or truncated. */
static inline int
push_slice(Cursor *c, Slice *items, Py_ssize_t *n, Py_ssize_t max)
{
    return *n == max ? -1 : read_slice(c, &items[(*n)++]);
}

/* Append a slice to a bounded array; 1 (take the Python path) when full. */
static inline int
push_slice_value(Slice *items, Py_ssize_t *n, Py_ssize_t max, Slice value)
{
    if (*n == max)
        return 1;
    items[(*n)++] = value;
    return 0;
}

static int
read_event(Slice raw, EventFields *e)
{
    Cursor c = {raw.p, raw.p + raw.n};
    memset(e, 0, offsetof(EventFields, kvs));
    e->n_kvs = 0;
    while (c.p < c.end) {
        uint32_t field;
        int wt;
        if (read_tag(&c, &field, &wt) < 0)
            return 1;
        if (field >= 1 && field <= 4 && wt != EVENT_WIRE_TYPES[field])
            return 1;
        int rc = field == 1   ? read_fixed64(&c, &e->time)
                 : field == 2 ? read_slice(&c, &e->name)
                 : field == 3 ? push_slice(&c, e->kvs, &e->n_kvs, MAX_KV)
                              : skip_field(&c, field, wt, 0);
        if (rc < 0)
            return 1;
    }
    return e->time > (uint64_t)INT64_MAX; /* ids.check_event_time */
}

/* 1 also when an id has a length link_id() rejects (the Python path raises). */
static int
read_link(Slice raw, LinkFields *l)
{
    Cursor c = {raw.p, raw.p + raw.n};
    memset(l, 0, offsetof(LinkFields, kvs));
    l->n_kvs = 0;
    while (c.p < c.end) {
        uint32_t field;
        int wt;
        if (read_tag(&c, &field, &wt) < 0)
            return 1;
        if (field >= 1 && field <= 6 && wt != LINK_WIRE_TYPES[field])
            return 1;
        int rc = field == 1   ? read_slice(&c, &l->trace_id)
                 : field == 2 ? read_slice(&c, &l->span_id)
                 : field == 3 ? read_slice(&c, &l->trace_state)
                 : field == 4 ? push_slice(&c, l->kvs, &l->n_kvs, MAX_KV)
                              : skip_field(&c, field, wt, 0);
        if (rc < 0)
            return 1;
    }
    return (l->trace_id.n != 0 && l->trace_id.n != 16) || (l->span_id.n != 0 && l->span_id.n != 8);
}

static int
read_status(Slice raw, SpanFields *s)
{
    Cursor c = {raw.p, raw.p + raw.n};
    while (c.p < c.end) {
        uint32_t field;
        int wt;
        uint64_t code;
        if (read_tag(&c, &field, &wt) < 0)
            return 1;
        if ((field == 2 && wt != WT_LEN) || (field == 3 && wt != WT_VARINT))
            return 1;
        int rc = field == 2   ? read_slice(&c, &s->status_message)
                 : field == 3 ? read_varint(&c, &code)
                              : skip_field(&c, field, wt, 0);
        if (rc < 0)
            return 1;
        if (field == 3)
            s->status = (int32_t)(uint32_t)code; /* proto int32: the low 32 bits */
    }
    return 0;
}

/* Read the fields of one span; 1 when it is not in the canonical encoding. */
static int
read_span(Slice raw, SpanFields *s)
{
    Cursor c = {raw.p, raw.p + raw.n};
    memset(s, 0, offsetof(SpanFields, kvs));
    while (c.p < c.end) {
        uint32_t field;
        int wt;
        uint64_t number = 0;
        Slice status;
        if (read_tag(&c, &field, &wt) < 0)
            return 1;
        if (field >= 1 && field <= 16 && wt != SPAN_WIRE_TYPES[field])
            return 1;
        int rc;
        switch (field) {
        case 1: rc = read_slice(&c, &s->trace_id); break;
        case 2: rc = read_slice(&c, &s->span_id); break;
        case 3: rc = read_slice(&c, &s->trace_state); break;
        case 4: rc = read_slice(&c, &s->parent); break;
        case 5: rc = read_slice(&c, &s->name); break;
        case 6: rc = read_varint(&c, &number); s->kind = (int32_t)(uint32_t)number; break;
        case 7: rc = read_fixed64(&c, &s->start); break;
        case 8: rc = read_fixed64(&c, &s->end); break;
        case 9: rc = push_slice(&c, s->kvs, &s->n_kvs, MAX_KV); break;
        case 11: rc = push_slice(&c, s->events, &s->n_events, MAX_PARTS); break;
        case 13: rc = push_slice(&c, s->links, &s->n_links, MAX_PARTS); break;
        case 15: /* a repeated status merges: later scalars override, as read here */
            rc = read_slice(&c, &status) < 0 ? -1 : -read_status(status, s);
            break;
        default: rc = skip_field(&c, field, wt, 0);
        }
        if (rc < 0)
            return 1;
    }
    return !(s->trace_id.n == 16 && !all_zero(s->trace_id) && s->span_id.n == 8
             && !all_zero(s->span_id) && (s->parent.n == 0 || s->parent.n == 8)
             /* ids.check_times */
             && s->start != 0 && s->start <= (uint64_t)INT64_MAX
             && s->end <= (uint64_t)INT64_MAX);
}

/* The events' and links' share of the row estimate: 8 + len(name) + attribute map per
 * event, 48 + len(trace_state) per link. 0 done, 1 not canonical, -1 Python error. */
static int
parts_size(const SpanFields *s, PyObject *kv_string, Py_ssize_t *size, void *scratch)
{
    for (Py_ssize_t i = 0; i < s->n_events; i++) {
        EventFields *e = scratch;
        AttrSummary attrs = {0, 0, 0, NULL};
        int rc = read_event(s->events[i], e);
        if (rc == 0)
            rc = summarize(e->kvs, e->n_kvs, kv_string, &attrs);
        if (rc)
            return rc;
        *size += 8 + code_points(e->name) + attrs.size;
    }
    for (Py_ssize_t i = 0; i < s->n_links; i++) {
        LinkFields *l = scratch;
        if (read_link(s->links[i], l))
            return 1;
        *size += 48 + code_points(l->trace_state);
    }
    return 0;
}

/* Lowercase hex into `out` (32 bytes), returning its length; an empty, all-zero or
 * over-long id renders as "" (link_id / check_ids). */
static Py_ssize_t
hex_chars(Slice s, char *out)
{
    static const char digits[] = "0123456789abcdef";
    if (s.n == 0 || s.n > 16 || all_zero(s))
        return 0;
    for (Py_ssize_t i = 0; i < s.n; i++) {
        out[2 * i] = digits[s.p[i] >> 4];
        out[2 * i + 1] = digits[s.p[i] & 15];
    }
    return 2 * s.n;
}

static PyObject *
hex_text(Slice s)
{
    char out[32];
    return PyUnicode_FromStringAndSize(out, hex_chars(s, out));
}

static inline PyObject *
utf8_text(Slice s)
{
    return PyUnicode_DecodeUTF8((const char *)s.p, s.n, NULL);
}

/* SpanEvent(time, name, attributes), as otlp_proto._events builds it. */
static PyObject *
build_event(Slice raw, PyObject *event_cls, PyObject *kv_string, void *scratch)
{
    EventFields *e = scratch;
    PyObject *attrs = NULL, *out = NULL;
    if (read_event(raw, e) || attr_dict(e->kvs, e->n_kvs, kv_string, &attrs))
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "odd event");
    PyObject *name = utf8_text(e->name);
    if (name != NULL)
        out = PyObject_CallFunction(event_cls, "KOO", (unsigned long long)e->time, name, attrs);
    Py_XDECREF(name);
    Py_DECREF(attrs);
    return out;
}

/* SpanLink(trace_id, span_id, trace_state, attributes), as otlp_proto._links builds it. */
static PyObject *
build_link(Slice raw, PyObject *link_cls, PyObject *kv_string, void *scratch)
{
    LinkFields *l = scratch;
    PyObject *attrs = NULL, *out = NULL;
    if (read_link(raw, l) || attr_dict(l->kvs, l->n_kvs, kv_string, &attrs))
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "odd link");
    PyObject *trace_id = hex_text(l->trace_id), *span_id = hex_text(l->span_id);
    PyObject *state = utf8_text(l->trace_state);
    if (trace_id && span_id && state)
        out = PyObject_CallFunction(link_cls, "OOOO", trace_id, span_id, state, attrs);
    Py_XDECREF(trace_id);
    Py_XDECREF(span_id);
    Py_XDECREF(state);
    Py_DECREF(attrs);
    return out;
}

/* A tuple of SpanEvent or SpanLink values built by `build` from `parts`. */
static PyObject *
build_parts(const Slice *parts, Py_ssize_t n, PyObject *cls, PyObject *kv_string,
            PyObject *(*build)(Slice, PyObject *, PyObject *, void *), void *scratch)
{
    PyObject *out = PyTuple_New(n);
    for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
        PyObject *item = build(parts[i], cls, kv_string, scratch);
        if (item == NULL)
            Py_CLEAR(out);
        else
            PyTuple_SET_ITEM(out, i, item);
    }
    return out;
}

#endif
