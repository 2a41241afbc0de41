/* SpanHead for _heads.c: what sampling and windows read of a span, plus where it is.
 *
 * A plain data holder with read-only members; pipeline.otlp.heads builds the full
 * Span from `value[offset:offset + length]` and `ctx` (or returns `span` when the
 * Python path already built it).
 */
#ifndef SPANSTREAM_HEAD_TYPE_H
#define SPANSTREAM_HEAD_TYPE_H

#include <Python.h>
#include <structmember.h>

typedef struct {
    PyObject_HEAD
    PyObject *trace_id, *span_id, *parent_span_id, *timestamp_ns, *duration_ns;
    PyObject *service_name, *operation, *is_error, *value, *ctx, *span;
    Py_ssize_t row_bytes, offset, length;
    int kind; /* OTLP Span.SpanKind number: the service graph tells clients from servers */
} SpanHead;

/* No GC support on purpose: a head never refers (even indirectly) to another head,
 * so it cannot be part of a cycle, and untracked objects are cheaper to create. */
static void
head_dealloc(SpanHead *self)
{
    Py_XDECREF(self->trace_id);
    Py_XDECREF(self->span_id);
    Py_XDECREF(self->parent_span_id);
    Py_XDECREF(self->timestamp_ns);
    Py_XDECREF(self->duration_ns);
    Py_XDECREF(self->service_name);
    Py_XDECREF(self->operation);
    Py_XDECREF(self->is_error);
    Py_XDECREF(self->value);
    Py_XDECREF(self->ctx);
    Py_XDECREF(self->span);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
head_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"trace_id", "span_id", "parent_span_id", "timestamp_ns",
                            "duration_ns", "service_name", "operation", "is_error",
                            "row_bytes", "value", "offset", "length", "ctx", "span", "kind",
                            NULL};
    PyObject *o[11];
    Py_ssize_t row_bytes, offset, length;
    int kind = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "UUUOOUUOnOnnOO|i", names, &o[0], &o[1],
                                     &o[2], &o[3], &o[4], &o[5], &o[6], &o[7], &row_bytes,
                                     &o[8], &offset, &length, &o[9], &o[10], &kind))
        return NULL;
    SpanHead *self = (SpanHead *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    PyObject **slots[] = {&self->trace_id, &self->span_id, &self->parent_span_id,
                          &self->timestamp_ns, &self->duration_ns, &self->service_name,
                          &self->operation, &self->is_error, &self->value, &self->ctx,
                          &self->span};
    for (int i = 0; i < 11; i++) {
        Py_INCREF(o[i]);
        *slots[i] = o[i];
    }
    self->row_bytes = row_bytes;
    self->offset = offset;
    self->length = length;
    self->kind = kind;
    return (PyObject *)self;
}

#define RO(name, type) {#name, type, offsetof(SpanHead, name), READONLY, NULL}
static PyMemberDef head_members[] = {
    RO(trace_id, T_OBJECT), RO(span_id, T_OBJECT), RO(parent_span_id, T_OBJECT),
    RO(timestamp_ns, T_OBJECT), RO(duration_ns, T_OBJECT), RO(service_name, T_OBJECT),
    RO(operation, T_OBJECT), RO(is_error, T_OBJECT), RO(row_bytes, T_PYSSIZET),
    RO(value, T_OBJECT), RO(offset, T_PYSSIZET), RO(length, T_PYSSIZET), RO(ctx, T_OBJECT),
    RO(span, T_OBJECT), RO(kind, T_INT), {NULL}};

static PyTypeObject SpanHeadType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pipeline.otlp._heads.SpanHead",
    .tp_doc = PyDoc_STR("What sampling and windows read of one span; see pipeline.otlp.heads."),
    .tp_basicsize = sizeof(SpanHead),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = head_new,
    .tp_dealloc = (destructor)head_dealloc,
    .tp_members = head_members,
};

#endif
