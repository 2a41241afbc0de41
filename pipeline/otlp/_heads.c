/* pipeline.otlp._heads: the per-span hot path of otlp_proto decoding, in C.
 *
 * scan() walks the wire bytes of an ExportTraceServiceRequest that upb has already
 * parsed (and so validated) and makes one SpanHead per span: the few fields that
 * enrichment, tail sampling and window aggregation read, plus where the span's bytes
 * are, so that the full pipeline.model.Span is built (in Python, by
 * pipeline.otlp.heads) only for spans of kept traces.
 *
 * Exactness rule: this file handles the canonical encoding only. A span that uses
 * anything else (a wrong wire type for a known field, a merged sub-message, invalid
 * ids, more attributes than the cap, ...) is handed to the `slow` callback, which
 * decodes it with the Python decoder; an unusual request layout makes scan() return
 * None so the caller decodes the whole message that way. Attribute values that are
 * not plain strings, ints or bools are rendered by the `kv_string` callback.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "_wire.h"

/* ------------------------------------------------------------------ SpanHead */

typedef struct {
    PyObject_HEAD
    PyObject *trace_id, *span_id, *parent_span_id, *timestamp_ns, *duration_ns;
    PyObject *service_name, *operation, *is_error, *value, *ctx, *span;
    Py_ssize_t row_bytes, offset, length;
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
                            "row_bytes", "value", "offset", "length", "ctx", "span", NULL};
    PyObject *o[11];
    Py_ssize_t row_bytes, offset, length;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "UUUOOUUOnOnnOO", names, &o[0], &o[1],
                                     &o[2], &o[3], &o[4], &o[5], &o[6], &o[7], &row_bytes,
                                     &o[8], &offset, &length, &o[9], &o[10]))
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
    return (PyObject *)self;
}

#define RO(name, type) {#name, type, offsetof(SpanHead, name), READONLY, NULL}
static PyMemberDef head_members[] = {
    RO(trace_id, T_OBJECT), RO(span_id, T_OBJECT), RO(parent_span_id, T_OBJECT),
    RO(timestamp_ns, T_OBJECT), RO(duration_ns, T_OBJECT), RO(service_name, T_OBJECT),
    RO(operation, T_OBJECT), RO(is_error, T_OBJECT), RO(row_bytes, T_PYSSIZET),
    RO(value, T_OBJECT), RO(offset, T_PYSSIZET), RO(length, T_PYSSIZET), RO(ctx, T_OBJECT),
    RO(span, T_OBJECT), {NULL}};

static PyTypeObject SpanHeadType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pipeline.otlp._heads.SpanHead",
    .tp_doc = PyDoc_STR("What sampling and windows read of one span; see pipeline.otlp.heads."),
    .tp_basicsize = sizeof(SpanHead),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = head_new,
    .tp_dealloc = (destructor)head_dealloc,
    .tp_members = head_members,
};

/* ------------------------------------------------------------ attribute values */

/* The attributes pipeline.enrich reads (operation_for, http_server_error), in the
 * order of the derive memo key. */
#define N_RELEVANT 16
static const char *RELEVANT[N_RELEVANT] = {
    "http.request.method", "http.method", "http.route", "url.path", "http.target",
    "url.full", "http.url", "rpc.system", "rpc.service", "rpc.method", "db.system.name",
    "db.system", "db.operation.name", "db.operation", "http.response.status_code",
    "http.status_code"};
static PyObject *relevant_names[N_RELEVANT];

static int
relevant_index(Slice key)
{
    for (int i = 0; i < N_RELEVANT; i++)
        if ((Py_ssize_t)strlen(RELEVANT[i]) == key.n && memcmp(RELEVANT[i], key.p, key.n) == 0)
            return i;
    return -1;
}

enum { AV_EMPTY, AV_STRING, AV_BOOL, AV_INT, AV_OTHER };

typedef struct {
    int kind;
    Slice text;
    uint64_t number;
} AnyValue;

/* Classify an AnyValue; AV_OTHER (rendered by Python) unless exactly one plain member. */
static void
read_anyvalue(Slice raw, AnyValue *out)
{
    Cursor c = {raw.p, raw.p + raw.n};
    int members = 0;
    out->kind = AV_EMPTY;
    while (c.p < c.end) {
        uint32_t field;
        int wt;
        if (read_tag(&c, &field, &wt) < 0)
            goto other;
        if (field >= 1 && field <= 8)
            members++;
        if (field == 1 && wt == WT_LEN) {
            if (read_slice(&c, &out->text) < 0)
                goto other;
            out->kind = AV_STRING;
        }
        else if ((field == 2 || field == 3) && wt == WT_VARINT) {
            if (read_varint(&c, &out->number) < 0)
                goto other;
            out->kind = field == 2 ? AV_BOOL : AV_INT;
        }
        else if (field >= 1 && field <= 8) {
            goto other;
        }
        else if (skip_field(&c, field, wt, 0) < 0) {
            goto other;
        }
    }
    if (members <= 1)
        return;
other:
    out->kind = AV_OTHER;
}

/* AsString(value) as a str (new reference); kv_string renders the unusual kinds. */
static PyObject *
value_text(const AnyValue *v, Slice raw, PyObject *kv_string)
{
    char digits[24];
    switch (v->kind) {
    case AV_EMPTY:
        return PyUnicode_FromStringAndSize("", 0);
    case AV_STRING:
        return PyUnicode_DecodeUTF8((const char *)v->text.p, v->text.n, NULL);
    case AV_BOOL:
        return PyUnicode_FromString(v->number ? "true" : "false");
    case AV_INT:
        snprintf(digits, sizeof digits, "%lld", (long long)(int64_t)v->number);
        return PyUnicode_FromString(digits);
    default:
        return PyObject_CallFunction(kv_string, "y#", (const char *)raw.p, raw.n);
    }
}

static Py_ssize_t
value_length(const AnyValue *v)
{
    char digits[24];
    switch (v->kind) {
    case AV_STRING:
        return code_points(v->text);
    case AV_BOOL:
        return v->number ? 4 : 5;
    case AV_INT:
        return snprintf(digits, sizeof digits, "%lld", (long long)(int64_t)v->number);
    default:
        return 0;
    }
}

#define MAX_KV 256

/* One repeated KeyValue field seen as a dict: what the row-size estimate and the
 * enrichment need of it. */
typedef struct {
    Py_ssize_t size;      /* sum of len(key) + len(value) over distinct keys */
    Py_ssize_t count;     /* distinct keys */
    Py_ssize_t longest;   /* longest value, in characters */
    PyObject **relevant;  /* N_RELEVANT slots (last duplicate wins), or NULL */
} AttrSummary;

/* Split one KeyValue; 1 when it is not the canonical encoding (one value at most). */
static int
read_keyvalue(Slice kv, Slice *key, Slice *value)
{
    Cursor c = {kv.p, kv.p + kv.n};
    int values = 0;
    key->n = value->n = 0;
    while (c.p < c.end) {
        uint32_t field;
        int wt;
        if (read_tag(&c, &field, &wt) < 0)
            return 1;
        if ((field == 1 || field == 2) && wt != WT_LEN)
            return 1;
        if (field == 1 ? read_slice(&c, key) : field == 2 ? read_slice(&c, value)
                                                           : skip_field(&c, field, wt, 0))
            return 1;
        values += field == 2;
    }
    return values > 1;
}

/* 0 done, 1 not canonical (take the Python path), -1 Python error. */
static int
summarize(const Slice *kvs, Py_ssize_t n, PyObject *kv_string, AttrSummary *out)
{
    Slice keys[MAX_KV];
    Py_ssize_t lengths[MAX_KV], key_lengths[MAX_KV];
    out->size = out->count = out->longest = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Slice key, raw;
        AnyValue v;
        if (read_keyvalue(kvs[i], &key, &raw))
            return 1;
        read_anyvalue(raw, &v);
        int slot = out->relevant ? relevant_index(key) : -1;
        Py_ssize_t length = value_length(&v);
        if (slot >= 0 || v.kind == AV_OTHER) {
            PyObject *text = value_text(&v, raw, kv_string);
            if (text == NULL)
                return -1;
            length = PyUnicode_GET_LENGTH(text);
            if (slot >= 0)
                Py_XSETREF(out->relevant[slot], text);
            else
                Py_DECREF(text);
        }
        Py_ssize_t j = 0;
        while (j < out->count && !(keys[j].n == key.n && memcmp(keys[j].p, key.p, key.n) == 0))
            j++;
        if (j == out->count) { /* a new key; a duplicate only replaces the value */
            keys[j] = key;
            key_lengths[j] = code_points(key);
            out->count++;
        }
        lengths[j] = length;
    }
    for (Py_ssize_t j = 0; j < out->count; j++) {
        out->size += key_lengths[j] + lengths[j];
        if (lengths[j] > out->longest)
            out->longest = lengths[j];
    }
    return 0;
}

/* ------------------------------------------------------------------ one span */

typedef struct {
    PyObject *kv_string, *derive, *slow, *memo;
    Py_ssize_t max_attributes, max_value_length, memo_limit;
} Config;

typedef struct {
    Slice trace_id, span_id, parent, name, trace_state, status_message;
    uint64_t start, end;
    int32_t kind, status;
    Slice kvs[MAX_KV];
    Py_ssize_t n_kvs, extra_bytes; /* extra: events and links of the row estimate */
} SpanFields;

static const Py_ssize_t KIND_LENGTHS[] = {11, 8, 6, 6, 8, 8}; /* Unspecified .. Consumer */
static const Py_ssize_t STATUS_LENGTHS[] = {5, 2, 5};         /* Unset, Ok, Error */

/* An event's share of the row estimate: 8 + len(name) + its attribute map. */
static int
scan_event(Slice raw, const Config *cfg, Py_ssize_t *size)
{
    Cursor c = {raw.p, raw.p + raw.n};
    Slice name = {NULL, 0}, kvs[MAX_KV];
    Py_ssize_t n = 0;
    while (c.p < c.end) {
        uint32_t field;
        int wt;
        if (read_tag(&c, &field, &wt) < 0)
            return 1;
        int expected = field == 1 ? WT_I64 : field == 4 ? WT_VARINT : WT_LEN;
        if (field >= 1 && field <= 4 && wt != expected)
            return 1;
        if (field == 2 && read_slice(&c, &name) < 0)
            return 1;
        if (field == 3 && (n == MAX_KV || read_slice(&c, &kvs[n++]) < 0))
            return 1;
        if (field != 2 && field != 3 && skip_field(&c, field, wt, 0) < 0)
            return 1;
    }
    AttrSummary attrs = {0, 0, 0, NULL};
    int rc = summarize(kvs, n, cfg->kv_string, &attrs);
    *size += 8 + code_points(name) + attrs.size;
    return rc;
}

/* A link's share of the row estimate (48 + len(trace_state)); 1 on an invalid id. */
static int
scan_link(Slice raw, Py_ssize_t *size)
{
    Cursor c = {raw.p, raw.p + raw.n};
    Slice trace_id = {NULL, 0}, span_id = {NULL, 0}, state = {NULL, 0};
    while (c.p < c.end) {
        uint32_t field;
        int wt;
        if (read_tag(&c, &field, &wt) < 0)
            return 1;
        int expected = field == 5 ? WT_VARINT : field == 6 ? WT_I32 : WT_LEN;
        if (field >= 1 && field <= 6 && wt != expected)
            return 1;
        Slice *into = field == 1 ? &trace_id : field == 2 ? &span_id : field == 3 ? &state : NULL;
        if (into ? read_slice(&c, into) < 0 : skip_field(&c, field, wt, 0) < 0)
            return 1;
    }
    if ((trace_id.n != 0 && trace_id.n != 16) || (span_id.n != 0 && span_id.n != 8))
        return 1;
    *size += 48 + code_points(state);
    return 0;
}

static int
scan_status(Slice raw, SpanFields *s)
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
        if (field == 2 ? read_slice(&c, &s->status_message) < 0
            : field == 3 ? read_varint(&c, &code) < 0
                         : skip_field(&c, field, wt, 0) < 0)
            return 1;
        if (field == 3)
            s->status = (int32_t)(uint32_t)code;
    }
    return 0;
}

static const int SPAN_WIRE_TYPES[17] = {
    -1, WT_LEN, WT_LEN, WT_LEN, WT_LEN, WT_LEN, WT_VARINT, WT_I64, WT_I64, WT_LEN,
    WT_VARINT, WT_LEN, WT_VARINT, WT_LEN, WT_VARINT, WT_LEN, WT_I32};

/* Read the fields of one span; 1 when it is not in the canonical encoding. */
static int
read_span(Slice raw, const Config *cfg, SpanFields *s)
{
    Cursor c = {raw.p, raw.p + raw.n};
    memset(s, 0, offsetof(SpanFields, kvs));
    s->n_kvs = s->extra_bytes = 0;
    while (c.p < c.end) {
        uint32_t field;
        int wt;
        uint64_t number;
        Slice sub;
        if (read_tag(&c, &field, &wt) < 0)
            return 1;
        if (field >= 1 && field <= 16 && wt != SPAN_WIRE_TYPES[field])
            return 1;
        Slice *into = field == 1 ? &s->trace_id : field == 2 ? &s->span_id
                    : field == 3 ? &s->trace_state : field == 4 ? &s->parent
                    : field == 5 ? &s->name : NULL;
        if (into != NULL) {
            if (read_slice(&c, into) < 0)
                return 1;
        }
        else if (field == 6 || field == 7 || field == 8) {
            if ((field == 6 ? read_varint(&c, &number) : read_fixed64(&c, &number)) < 0)
                return 1;
            if (field == 6)
                s->kind = (int32_t)(uint32_t)number;
            else
                *(field == 7 ? &s->start : &s->end) = number;
        }
        else if (field == 9 || field == 11 || field == 13 || field == 15) {
            if (read_slice(&c, &sub) < 0)
                return 1;
            if (field == 9 && s->n_kvs == MAX_KV)
                return 1;
            int rc = field == 9    ? (s->kvs[s->n_kvs++] = sub, 0)
                     : field == 11 ? scan_event(sub, cfg, &s->extra_bytes)
                     : field == 13 ? scan_link(sub, &s->extra_bytes)
                                   : scan_status(sub, s);
            if (rc)
                return rc;
        }
        else if (skip_field(&c, field, wt, 0) < 0) {
            return 1;
        }
    }
    int ids_ok = s->trace_id.n == 16 && !all_zero(s->trace_id) && s->span_id.n == 8
                 && !all_zero(s->span_id) && (s->parent.n == 0 || s->parent.n == 8);
    return !ids_ok;
}

static PyObject *
hex_text(Slice s)
{
    static const char digits[] = "0123456789abcdef";
    char out[32];
    if (s.n == 0 || all_zero(s)) /* an empty or all-zero parent renders as "" */
        return PyUnicode_FromStringAndSize("", 0);
    for (Py_ssize_t i = 0; i < s.n; i++) {
        out[2 * i] = digits[s.p[i] >> 4];
        out[2 * i + 1] = digits[s.p[i] & 15];
    }
    return PyUnicode_FromStringAndSize(out, 2 * s.n);
}

/* (operation, is_error) from the memo, else from the derive callback (then memoised).
 * Sound because Enricher.derive's answer for given inputs never changes once given:
 * its per-service operation sets only grow and never shrink. */
static PyObject *
derive(const Config *cfg, PyObject *service, PyObject *name, const SpanFields *s,
       PyObject **relevant)
{
    PyObject *key = PyTuple_New(4 + N_RELEVANT), *result = NULL, *attrs = NULL;
    if (key == NULL)
        return NULL;
    Py_INCREF(service);
    PyTuple_SET_ITEM(key, 0, service);
    Py_INCREF(name);
    PyTuple_SET_ITEM(key, 1, name);
    PyTuple_SET_ITEM(key, 2, PyLong_FromLong(s->kind));
    PyTuple_SET_ITEM(key, 3, PyLong_FromLong(s->status));
    for (int i = 0; i < N_RELEVANT; i++) {
        PyObject *v = relevant[i] ? relevant[i] : Py_None;
        Py_INCREF(v);
        PyTuple_SET_ITEM(key, 4 + i, v);
    }
    if (PyTuple_GET_ITEM(key, 2) == NULL || PyTuple_GET_ITEM(key, 3) == NULL)
        goto done;
    result = PyDict_GetItemWithError(cfg->memo, key);
    if (result != NULL || PyErr_Occurred()) {
        Py_XINCREF(result);
        goto done;
    }
    if ((attrs = PyDict_New()) == NULL)
        goto done;
    for (int i = 0; i < N_RELEVANT; i++)
        if (relevant[i] && PyDict_SetItem(attrs, relevant_names[i], relevant[i]) < 0)
            goto done;
    result = PyObject_CallFunction(cfg->derive, "OOiiO", service, name, s->kind, s->status,
                                   attrs);
    if (result == NULL)
        goto done;
    /* Bounded: span names full of ids could otherwise grow it without end. */
    if (PyDict_GET_SIZE(cfg->memo) >= cfg->memo_limit)
        PyDict_Clear(cfg->memo);
    if (PyDict_SetItem(cfg->memo, key, result) < 0)
        Py_CLEAR(result);
done:
    Py_DECREF(key);
    Py_XDECREF(attrs);
    return result;
}

static PyObject *
make_head(const SpanFields *s, PyObject *service, PyObject *derived, Py_ssize_t row_bytes,
          PyObject *value, Slice raw, PyObject *ctx)
{
    if (!PyTuple_Check(derived) || PyTuple_GET_SIZE(derived) != 2) {
        PyErr_SetString(PyExc_TypeError, "derive must return (operation, is_error)");
        return NULL;
    }
    SpanHead *h = PyObject_New(SpanHead, &SpanHeadType);
    if (h == NULL)
        return NULL;
    h->trace_id = hex_text(s->trace_id);
    h->span_id = hex_text(s->span_id);
    h->parent_span_id = hex_text(s->parent);
    h->timestamp_ns = PyLong_FromUnsignedLongLong(s->start);
    h->duration_ns = PyLong_FromUnsignedLongLong(s->end > s->start ? s->end - s->start : 0);
    h->service_name = Py_NewRef(service);
    h->operation = Py_NewRef(PyTuple_GET_ITEM(derived, 0));
    h->is_error = Py_NewRef(PyObject_IsTrue(PyTuple_GET_ITEM(derived, 1)) ? Py_True : Py_False);
    h->value = Py_NewRef(value);
    h->ctx = Py_NewRef(ctx);
    h->span = Py_NewRef(Py_None);
    h->row_bytes = row_bytes;
    h->offset = raw.p - (const uint8_t *)PyBytes_AS_STRING(value);
    h->length = raw.n;
    if (!h->trace_id || !h->span_id || !h->parent_span_id || !h->timestamp_ns
        || !h->duration_ns) {
        Py_DECREF(h);
        return NULL;
    }
    return (PyObject *)h;
}

/* The head of one span (new reference), by the fast path or the slow callback. */
static PyObject *
span_head(Slice raw, const Config *cfg, PyObject *value, PyObject *ctx, PyObject *service,
          Py_ssize_t base_bytes, SpanFields *s)
{
    PyObject *relevant[N_RELEVANT] = {NULL}, *name = NULL, *derived = NULL, *head = NULL;
    AttrSummary attrs = {0, 0, 0, relevant};
    int rc = read_span(raw, cfg, s);
    if (rc == 0)
        rc = summarize(s->kvs, s->n_kvs, cfg->kv_string, &attrs);
    if (rc == 0 && (attrs.count > cfg->max_attributes || attrs.longest > cfg->max_value_length))
        rc = 1; /* Enricher.cap_attributes changes the map: leave it to Python */
    if (rc == 1) {
        head = PyObject_CallFunction(cfg->slow, "OnnO", value,
                                     (Py_ssize_t)(raw.p - (const uint8_t *)PyBytes_AS_STRING(value)),
                                     raw.n, ctx);
        goto done;
    }
    if (rc < 0)
        goto done;
    name = PyUnicode_DecodeUTF8((const char *)s->name.p, s->name.n, NULL);
    if (name == NULL || (derived = derive(cfg, service, name, s, relevant)) == NULL)
        goto done;
    Py_ssize_t row_bytes = base_bytes + code_points(s->name) + attrs.size + s->extra_bytes
                           + code_points(s->status_message) + code_points(s->trace_state)
                           + (s->kind >= 0 && s->kind <= 5 ? KIND_LENGTHS[s->kind] : 0)
                           + (s->status >= 0 && s->status <= 2 ? STATUS_LENGTHS[s->status] : 0);
    head = make_head(s, service, derived, row_bytes, value, raw, ctx);
done:
    for (int i = 0; i < N_RELEVANT; i++)
        Py_XDECREF(relevant[i]);
    Py_XDECREF(name);
    Py_XDECREF(derived);
    return head;
}

/* ------------------------------------------------------------- the request walk */

typedef struct {
    const Config *cfg;
    PyObject *value, *out;
    SpanFields *fields;
} Walk;

/* 0 ok, 1 unusual layout (decode the message in Python), -1 Python error. */
static int
walk_scope(Walk *w, Slice raw, PyObject *ctx)
{
    PyObject *service = PyObject_GetAttrString(ctx, "service");
    PyObject *base = PyObject_GetAttrString(ctx, "base_bytes");
    Py_ssize_t base_bytes = base ? PyLong_AsSsize_t(base) : -1;
    int rc = (service && base_bytes >= 0 && PyUnicode_Check(service)) ? 0 : -1;
    Cursor c = {raw.p, raw.p + raw.n};
    while (rc == 0 && c.p < c.end) {
        uint32_t field;
        int wt;
        Slice span;
        if (read_tag(&c, &field, &wt) < 0) {
            rc = 1;
        }
        else if (field == 2 && wt == WT_LEN) {
            PyObject *head = read_slice(&c, &span) < 0
                                 ? NULL
                                 : span_head(span, w->cfg, w->value, ctx, service, base_bytes,
                                             w->fields);
            rc = head == NULL ? (PyErr_Occurred() ? -1 : 1) : PyList_Append(w->out, head);
            Py_XDECREF(head);
        }
        else if (skip_field(&c, field, wt, 0) < 0) {
            rc = 1;
        }
    }
    if (rc < 0 && !PyErr_Occurred())
        PyErr_SetString(PyExc_TypeError, "scope context needs str service, int base_bytes");
    Py_XDECREF(service);
    Py_XDECREF(base);
    return rc;
}

/* Field `field` (a repeated message) of `raw`, each occurrence given to `each`. */
static int
walk_repeated(Walk *w, Slice raw, uint32_t field, PyObject *contexts,
              int (*each)(Walk *, Slice, PyObject *))
{
    Cursor c = {raw.p, raw.p + raw.n};
    Py_ssize_t index = 0;
    while (c.p < c.end) {
        uint32_t f;
        int wt;
        Slice sub;
        if (read_tag(&c, &f, &wt) < 0)
            return 1;
        if (f == field && wt == WT_LEN) {
            if (read_slice(&c, &sub) < 0 || !PyList_Check(contexts)
                || index >= PyList_GET_SIZE(contexts))
                return 1; /* upb saw a different layout: let Python decide */
            int rc = each(w, sub, PyList_GET_ITEM(contexts, index++));
            if (rc)
                return rc;
        }
        else if (skip_field(&c, f, wt, 0) < 0) {
            return 1;
        }
    }
    return 0;
}

static int
walk_resource(Walk *w, Slice raw, PyObject *scope_contexts)
{
    return walk_repeated(w, raw, 2, scope_contexts, walk_scope);
}

static PyObject *
scan(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *value, *contexts;
    Config cfg;
    if (!PyArg_ParseTuple(args, "O!O!O!OOOnnn:scan", &PyBytes_Type, &value, &PyList_Type,
                          &contexts, &PyDict_Type, &cfg.memo, &cfg.derive, &cfg.slow,
                          &cfg.kv_string, &cfg.max_attributes, &cfg.max_value_length,
                          &cfg.memo_limit))
        return NULL;
    SpanFields *fields = PyMem_Malloc(sizeof(SpanFields)); /* ~4 KB: not on the stack */
    PyObject *out = PyList_New(0);
    if (fields == NULL || out == NULL) {
        PyMem_Free(fields);
        Py_XDECREF(out);
        return PyErr_NoMemory();
    }
    Walk w = {&cfg, value, out, fields};
    Slice all = {(const uint8_t *)PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value)};
    int rc = walk_repeated(&w, all, 1, contexts, walk_resource);
    PyMem_Free(fields);
    if (rc == 0)
        return out;
    Py_DECREF(out);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     PyDoc_STR("scan(value, contexts, memo, derive, slow, kv_string, max_attributes, "
               "max_value_length, memo_limit) -> list[SpanHead] | None")},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "pipeline.otlp._heads",
    PyDoc_STR("Native per-span scan of otlp_proto requests; see pipeline.otlp.heads."), -1,
    methods};

PyMODINIT_FUNC
PyInit__heads(void)
{
    if (PyType_Ready(&SpanHeadType) < 0)
        return NULL;
    for (int i = 0; i < N_RELEVANT; i++)
        if ((relevant_names[i] = PyUnicode_InternFromString(RELEVANT[i])) == NULL)
            return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    Py_INCREF(&SpanHeadType);
    if (PyModule_AddObject(m, "SpanHead", (PyObject *)&SpanHeadType) < 0) {
        Py_DECREF(&SpanHeadType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
