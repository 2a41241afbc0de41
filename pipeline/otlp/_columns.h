/* otel_traces columns for _heads.c: pipeline.sinks.clickhouse.span_columns of kept
 * heads, read from their bytes without building a pipeline.model.Span per span.
 *
 * columns() appends, per head, what to_span() and span_columns() would give: the
 * head's ids, start and duration, its ScopeContext's service, resource attributes
 * and scope, and what fields() reads from the span's bytes (name, kind, status,
 * attributes, events, links). The column names are pipeline.sinks.clickhouse.TRACE_TYPES
 * (the SQL's); tests/unit/test_native.py and tests/unit/sinks/test_clickhouse.py hold
 * the two equal.
 */
#ifndef SPANSTREAM_COLUMNS_H
#define SPANSTREAM_COLUMNS_H

#include <Python.h>

#include "_head_type.h"
#include "_span.h"

/* The otel_traces columns, in span_columns() order. */
enum {
    C_TIMESTAMP, C_TRACE_ID, C_SPAN_ID, C_PARENT, C_TRACE_STATE, C_NAME, C_KIND, C_SERVICE,
    C_RESOURCE, C_SCOPE_NAME, C_SCOPE_VERSION, C_ATTRIBUTES, C_DURATION, C_STATUS,
    C_STATUS_MESSAGE, C_EV_TIME, C_EV_NAME, C_EV_ATTRS, C_LK_TRACE, C_LK_SPAN, C_LK_STATE,
    C_LK_ATTRS, N_COLUMNS
};
static const char *COLUMN_NAMES[N_COLUMNS] = {
    "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind",
    "ServiceName", "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes",
    "Duration", "StatusCode", "StatusMessage", "Events.Timestamp", "Events.Name",
    "Events.Attributes", "Links.TraceId", "Links.SpanId", "Links.TraceState",
    "Links.Attributes"};

/* pack(*args) -> args: builds events and links as plain tuples. */
static PyObject *
pack(PyObject *Py_UNUSED(module), PyObject *args)
{
    return Py_NewRef(args);
}
static PyMethodDef PACK_DEF = {"pack", pack, METH_VARARGS, NULL};

/* Append (and release) `item` to `list`; -1 if either failed. */
static int
append_new(PyObject *list, PyObject *item)
{
    if (item == NULL)
        return -1;
    int rc = PyList_Append(list, item);
    Py_DECREF(item);
    return rc;
}

/* One list per tuple position of `parts` (e.g. every event's name), into cols[first..]. */
static int
append_parts(PyObject **cols, int first, int width, PyObject *parts)
{
    for (int k = 0; k < width; k++) {
        PyObject *column = PyList_New(PyTuple_GET_SIZE(parts));
        if (column == NULL)
            return -1;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(parts); i++)
            PyList_SET_ITEM(column, i, Py_NewRef(PyTuple_GET_ITEM(PyTuple_GET_ITEM(parts, i), k)));
        if (append_new(cols[first + k], column) < 0)
            return -1;
    }
    return 0;
}

static PyObject *
label(PyObject *names, int32_t code)
{
    PyObject *key = PyLong_FromLong(code);
    PyObject *name = key ? PyDict_GetItemWithError(names, key) : NULL;
    Py_XDECREF(key);
    if (name != NULL)
        return Py_NewRef(name);
    return PyErr_Occurred() ? NULL : PyUnicode_FromStringAndSize("", 0);
}

typedef struct {
    PyObject *ctx, *service, *resource, *scope_name, *scope_version; /* owned */
} CtxCache;

static int
ctx_fields(CtxCache *c, PyObject *ctx)
{
    if (c->ctx == ctx)
        return 0;
    Py_CLEAR(c->service);
    Py_CLEAR(c->resource);
    Py_CLEAR(c->scope_name);
    Py_CLEAR(c->scope_version);
    Py_XSETREF(c->ctx, Py_NewRef(ctx));
    c->service = PyObject_GetAttrString(ctx, "service");
    c->resource = PyObject_GetAttrString(ctx, "resource_attributes");
    c->scope_name = PyObject_GetAttrString(ctx, "scope_name");
    c->scope_version = PyObject_GetAttrString(ctx, "scope_version");
    if (c->service && c->resource && c->scope_name && c->scope_version)
        return 0;
    Py_CLEAR(c->ctx); /* not cached: the error is raised now */
    return -1;
}

typedef struct {
    PyObject *kv_string, *kinds, *statuses, *packer;
    Scratch *scratch;
    CtxCache ctx;
} Rows;

static int
head_row(PyObject **cols, SpanHead *h, Rows *r)
{
    PyObject *kv_string = r->kv_string, *packer = r->packer, *attrs = NULL, *events = NULL,
             *links = NULL;
    CtxCache *c = &r->ctx;
    SpanFields *s = &r->scratch->span;
    void *scratch = &r->scratch->part;
    Slice raw = {(const uint8_t *)PyBytes_AS_STRING(h->value) + h->offset, h->length};
    int rc = ctx_fields(c, h->ctx);
    if (rc == 0 && (read_span(raw, s) || attr_dict(s->kvs, s->n_kvs, kv_string, &attrs))) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "not a span the scan accepted");
        rc = -1;
    }
    if (rc == 0) {
        events = build_parts(s->events, s->n_events, packer, kv_string, build_event, scratch);
        links = events ? build_parts(s->links, s->n_links, packer, kv_string, build_link, scratch)
                       : NULL;
        rc = links == NULL ? -1 : 0;
    }
    PyObject *fixed[] = {h->timestamp_ns, h->trace_id, h->span_id, h->parent_span_id};
    for (int k = 0; rc == 0 && k < 4; k++)
        rc = PyList_Append(cols[C_TIMESTAMP + k], fixed[k]);
    if (rc == 0)
        rc = append_new(cols[C_TRACE_STATE], utf8_text(s->trace_state)) < 0
                     || append_new(cols[C_NAME], utf8_text(s->name)) < 0
                     || append_new(cols[C_KIND], label(r->kinds, s->kind)) < 0
                     || PyList_Append(cols[C_SERVICE], c->service) < 0
                     || PyList_Append(cols[C_RESOURCE], c->resource) < 0
                     || PyList_Append(cols[C_SCOPE_NAME], c->scope_name) < 0
                     || PyList_Append(cols[C_SCOPE_VERSION], c->scope_version) < 0
                     || PyList_Append(cols[C_ATTRIBUTES], attrs) < 0
                     || PyList_Append(cols[C_DURATION], h->duration_ns) < 0
                     || append_new(cols[C_STATUS], label(r->statuses, s->status)) < 0
                     || append_new(cols[C_STATUS_MESSAGE], utf8_text(s->status_message)) < 0
                     || append_parts(cols, C_EV_TIME, 3, events) < 0
                     || append_parts(cols, C_LK_TRACE, 4, links) < 0
                 ? -1
                 : 0;
    Py_XDECREF(attrs);
    Py_XDECREF(events);
    Py_XDECREF(links);
    return rc;
}

/* columns(heads, kv_string, kinds, statuses) -> {column: [value per head]} */
static PyObject *
columns(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *heads, *cols[N_COLUMNS] = {NULL};
    Rows r = {NULL};
    if (!PyArg_ParseTuple(args, "O!OO!O!:columns", &PyList_Type, &heads, &r.kv_string,
                          &PyDict_Type, &r.kinds, &PyDict_Type, &r.statuses))
        return NULL;
    r.scratch = PyMem_Malloc(sizeof(Scratch));
    r.packer = PyCFunction_New(&PACK_DEF, NULL);
    PyObject *out = r.scratch ? (r.packer ? PyDict_New() : NULL) : PyErr_NoMemory();
    for (int k = 0; out != NULL && k < N_COLUMNS; k++) {
        cols[k] = PyList_New(0);
        if (cols[k] == NULL || PyDict_SetItemString(out, COLUMN_NAMES[k], cols[k]) < 0)
            Py_CLEAR(out);
    }
    for (Py_ssize_t i = 0; out != NULL && i < PyList_GET_SIZE(heads); i++) {
        SpanHead *h = (SpanHead *)PyList_GET_ITEM(heads, i);
        if (!Py_IS_TYPE(h, &SpanHeadType) || h->span != Py_None) {
            PyErr_SetString(PyExc_TypeError, "columns() takes heads the scan made");
            Py_CLEAR(out);
        }
        else if (head_row(cols, h, &r) < 0)
            Py_CLEAR(out);
    }
    Py_XDECREF(r.ctx.ctx);
    Py_XDECREF(r.ctx.service);
    Py_XDECREF(r.ctx.resource);
    Py_XDECREF(r.ctx.scope_name);
    Py_XDECREF(r.ctx.scope_version);
    Py_XDECREF(r.packer);
    for (int k = 0; k < N_COLUMNS; k++)
        Py_XDECREF(cols[k]);
    PyMem_Free(r.scratch);
    return out;
}

#endif
