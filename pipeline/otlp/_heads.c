/* pipeline.otlp._heads: the per-span hot path of otlp_proto decoding, in C.
 *
 * scan() walks the wire bytes of an ExportTraceServiceRequest that valid() (see
 * _validate.h) or else upb has already accepted, and makes one SpanHead per span: the
 * few fields that enrichment, tail sampling and window aggregation read, plus where the
 * span's bytes are, so that the full pipeline.model.Span is built (in Python, by
 * pipeline.otlp.heads) only for spans of kept traces.
 *
 * Exactness rule: this file handles the canonical encoding only. A span that uses
 * anything else (a wrong wire type for a known field, a merged sub-message, invalid
 * ids, more attributes than the cap, ...) is handed to the `slow` callback, which
 * decodes it with the Python decoder; an unusual request layout makes scan() return
 * None so the caller decodes the whole message that way. Attribute values that are
 * not plain strings, ints or bools are rendered by the `kv_string` callback.
 *
 * Files: _wire.h (wire format), _values.h (attributes), _span.h (one span),
 * _derive.h (the enricher memo), _head_type.h (the SpanHead type); _sampling.h,
 * _latency.h and _policies.h hold the tail sampler's per-span loops, _window.h the window partials',
 * _spanmetrics.h the spanmetrics counts', _graph.h the service graph's peer reader and
 * sketch counts.
 *
 * pipeline.native is the only importer: it lists every function here beside its
 * Python definition. Everything the C code needs from Python comes as an argument
 * (or through configure()); it reads only the fields of its own types.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "_derive.h"
#include "_graph.h"
#include "_head_type.h"
#include "_latency.h"
#include "_policies.h"
#include "_sampling.h"
#include "_spanmetrics.h"
#include "_window.h"

/* ------------------------------------------------------------------ the scan */

typedef struct {
    SpanFields span;
    Relevant relevant[N_RELEVANT];
    union {
        EventFields event;
        LinkFields link;
    } part;
} Scratch;

#include "_arrow.h"
#include "_validate.h"

typedef struct {
    PyObject *context, *contexts, *memo, *derive, *slow, *kv_string;
    Py_ssize_t max_attributes, max_value_length, memo_limit;
    PyObject *value, *out;
    Scratch *scratch;
    /* The last head's trace id (borrowed: the head is in `out`) and its bytes: spans
     * of a trace come together, and one shared str also hashes once downstream. */
    PyObject *last_trace_id;
    Slice last_trace;
} Scan;

static PyObject *
make_head(Scan *w, const SpanFields *s, PyObject *derived,
          Py_ssize_t row_bytes, Slice raw, PyObject *ctx)
{
    if (!PyTuple_Check(derived) || PyTuple_GET_SIZE(derived) != 3
        || !PyUnicode_Check(PyTuple_GET_ITEM(derived, 2))) {
        PyErr_SetString(PyExc_TypeError,
                        "derive must return (operation, is_error, series service str)");
        return NULL;
    }
    int is_error = PyObject_IsTrue(PyTuple_GET_ITEM(derived, 1));
    SpanHead *h = PyObject_New(SpanHead, &SpanHeadType);
    if (h == NULL)
        return NULL;
    int same = w->last_trace_id != NULL && memcmp(w->last_trace.p, s->trace_id.p, 16) == 0;
    h->trace_id = same ? Py_NewRef(w->last_trace_id) : hex_text(s->trace_id);
    h->span_id = hex_text(s->span_id);
    h->parent_span_id = hex_text(s->parent);
    h->timestamp_ns = PyLong_FromUnsignedLongLong(s->start);
    h->duration_ns = PyLong_FromUnsignedLongLong(s->end > s->start ? s->end - s->start : 0);
    /* The series service (capped), not the resource's: ctx keeps that for storage. */
    h->service_name = Py_NewRef(PyTuple_GET_ITEM(derived, 2));
    h->operation = Py_NewRef(PyTuple_GET_ITEM(derived, 0));
    h->is_error = Py_NewRef(is_error > 0 ? Py_True : Py_False);
    h->value = Py_NewRef(w->value);
    h->ctx = Py_NewRef(ctx);
    h->span = Py_NewRef(Py_None);
    h->row_bytes = row_bytes;
    h->offset = raw.p - (const uint8_t *)PyBytes_AS_STRING(w->value);
    h->length = raw.n;
    h->kind = s->kind;
    h->status = s->status;
    if (!h->trace_id || !h->span_id || !h->parent_span_id || !h->timestamp_ns
        || !h->duration_ns || is_error < 0) {
        Py_DECREF(h);
        return NULL;
    }
    w->last_trace_id = h->trace_id;
    w->last_trace = s->trace_id;
    return (PyObject *)h;
}

/* The head of one span (new reference), by the fast path or the slow callback. */
static PyObject *
span_head(Scan *w, Slice raw, PyObject *ctx, PyObject *service, Py_ssize_t base_bytes)
{
    SpanFields *s = &w->scratch->span;
    Relevant *relevant = w->scratch->relevant;
    PyObject *derived = NULL, *head = NULL;
    AttrSummary attrs = {0, 0, 0, relevant};
    Py_ssize_t parts = 0;
    int rc = read_span(raw, s);
    if (rc == 0)
        rc = summarize(s->kvs, s->n_kvs, w->kv_string, &attrs);
    if (rc == 0)
        rc = parts_size(s, w->kv_string, &parts, &w->scratch->part);
    if (rc == 0 && (attrs.count > w->max_attributes || attrs.longest > w->max_value_length))
        rc = 1; /* Enricher.cap_attributes changes the map: leave it to Python */
    if (rc == 1) {
        Py_ssize_t offset = raw.p - (const uint8_t *)PyBytes_AS_STRING(w->value);
        head = PyObject_CallFunction(w->slow, "OnnO", w->value, offset, raw.n, ctx);
    }
    else if (rc == 0) {
        derived = derive(w->memo, w->memo_limit, w->derive, service, s->name, s->kind,
                         s->status, relevant);
        Py_ssize_t row_bytes = base_bytes + code_points(s->name) + attrs.size + parts
                               + code_points(s->status_message) + code_points(s->trace_state)
                               + (s->kind >= 0 && s->kind <= 5 ? KIND_LENGTHS[s->kind] : 0)
                               + (s->status >= 0 && s->status <= 2 ? STATUS_LENGTHS[s->status]
                                                                   : 0);
        if (derived != NULL)
            head = make_head(w, s, derived, row_bytes, raw, ctx);
    }
    clear_relevant(relevant);
    Py_XDECREF(derived);
    return head;
}

/* Every walk_* returns 0 ok, 1 unusual layout (decode the message in Python), -1 error. */

static int
walk_spans(Scan *w, Slice raw, PyObject *ctx)
{
    PyObject *service = PyObject_GetAttrString(ctx, "service");
    PyObject *base = service ? PyObject_GetAttrString(ctx, "base_bytes") : NULL;
    Py_ssize_t base_bytes = base ? PyLong_AsSsize_t(base) : -1;
    int rc = (base_bytes >= 0 && PyUnicode_Check(service)) ? 0 : -1;
    if (rc < 0 && !PyErr_Occurred())
        PyErr_SetString(PyExc_TypeError, "scope context needs str service, int base_bytes");
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
                                 : span_head(w, span, ctx, service, base_bytes);
            rc = head == NULL ? (PyErr_Occurred() ? -1 : 1) : PyList_Append(w->out, head);
            Py_XDECREF(head);
        }
        else if (skip_field(&c, field, wt, 0) < 0) {
            rc = 1;
        }
    }
    Py_XDECREF(service);
    Py_XDECREF(base);
    return rc;
}

/* Calls `each` on every occurrence of LEN field `field` in `raw`; other fields are
 * skipped, as upb treats a known field with another wire type as unknown. */
static int
each_field(Slice raw, uint32_t field, int (*each)(void *, Slice), void *arg)
{
    Cursor c = {raw.p, raw.p + raw.n};
    while (c.p < c.end) {
        uint32_t f;
        int wt, rc;
        Slice sub;
        if (read_tag(&c, &f, &wt) < 0)
            return 1;
        if (f == field && wt == WT_LEN)
            rc = read_slice(&c, &sub) < 0 ? 1 : each(arg, sub);
        else
            rc = skip_field(&c, f, wt, 0) < 0 ? 1 : 0;
        if (rc)
            return rc;
    }
    return 0;
}

#define MAX_OCCURRENCES 4 /* of a Resource or an InstrumentationScope read natively */

typedef struct {
    Scan *w;
    PyObject *resource_attributes; /* built on the first context cache miss */
    Py_ssize_t map_bytes;
    Slice resources[MAX_OCCURRENCES], scopes[MAX_OCCURRENCES];
    Py_ssize_t n_resources, n_scopes;
    Slice kvs[MAX_KV];
    Py_ssize_t n_kvs;
} Resource;

static int
note_resource(void *arg, Slice raw)
{
    Resource *r = arg;
    return push_slice_value(r->resources, &r->n_resources, MAX_OCCURRENCES, raw);
}

static int
note_scope(void *arg, Slice raw)
{
    Resource *r = arg;
    return push_slice_value(r->scopes, &r->n_scopes, MAX_OCCURRENCES, raw);
}

/* Resource occurrences merge: their attributes concatenate, in order. */
static int
resource_attributes(Resource *r)
{
    for (Py_ssize_t i = 0; i < r->n_resources; i++) {
        Cursor c = {r->resources[i].p, r->resources[i].p + r->resources[i].n};
        while (c.p < c.end) {
            uint32_t field;
            int wt;
            if (read_tag(&c, &field, &wt) < 0 || (field == 1 && wt != WT_LEN))
                return 1;
            int rc = field == 1 ? push_slice(&c, r->kvs, &r->n_kvs, MAX_KV)
                                : skip_field(&c, field, wt, 0);
            if (rc < 0)
                return 1;
        }
    }
    int rc = attr_dict(r->kvs, r->n_kvs, r->w->kv_string, &r->resource_attributes);
    if (rc == 0)
        r->map_bytes = dict_map_size(r->resource_attributes);
    return rc;
}

/* InstrumentationScope occurrences merge: the last name and version win. */
static int
scope_names(const Resource *r, Slice *name, Slice *version)
{
    name->n = version->n = 0;
    for (Py_ssize_t i = 0; i < r->n_scopes; i++) {
        Cursor c = {r->scopes[i].p, r->scopes[i].p + r->scopes[i].n};
        while (c.p < c.end) {
            uint32_t field;
            int wt;
            if (read_tag(&c, &field, &wt) < 0 || ((field == 1 || field == 2) && wt != WT_LEN))
                return 1;
            int rc = field == 1   ? read_slice(&c, name)
                     : field == 2 ? read_slice(&c, version)
                                  : skip_field(&c, field, wt, 0);
            if (rc < 0)
                return 1;
        }
    }
    return 0;
}

/* The cache key of a (resource, scope): their bytes, resource length first. */
static PyObject *
context_key(const Resource *r)
{
    Py_ssize_t res = 0, total = 8;
    for (Py_ssize_t i = 0; i < r->n_resources; i++)
        res += r->resources[i].n;
    for (Py_ssize_t i = 0; i < r->n_scopes; i++)
        total += r->scopes[i].n;
    PyObject *key = PyBytes_FromStringAndSize(NULL, total + res);
    if (key == NULL)
        return NULL;
    char *out = PyBytes_AS_STRING(key);
    uint64_t prefix = (uint64_t)res;
    memcpy(out, &prefix, 8);
    out += 8;
    for (Py_ssize_t i = 0; i < r->n_resources; i++, out += r->resources[i - 1].n)
        memcpy(out, r->resources[i].p, r->resources[i].n);
    for (Py_ssize_t i = 0; i < r->n_scopes; i++, out += r->scopes[i - 1].n)
        memcpy(out, r->scopes[i].p, r->scopes[i].n);
    return key;
}

/* The ScopeContext (new reference) of a scope: cached, since the same services send
 * the same resource and scope in message after message. NULL with rc set on failure. */
static PyObject *
scope_context(Resource *r, int *rc)
{
    Slice name, version;
    PyObject *key = context_key(r), *ctx = NULL;
    *rc = -1;
    if (key == NULL)
        return NULL;
    ctx = PyDict_GetItemWithError(r->w->contexts, key);
    if (ctx != NULL || PyErr_Occurred()) {
        Py_XINCREF(ctx);
        goto done;
    }
    if ((r->resource_attributes == NULL && (*rc = resource_attributes(r)) != 0)
        || (*rc = scope_names(r, &name, &version)) != 0) {
        *rc = *rc ? *rc : -1;
        goto done;
    }
    *rc = -1;
    PyObject *name_text = utf8_text(name), *version_text = utf8_text(version);
    if (name_text && version_text)
        ctx = PyObject_CallFunction(r->w->context, "OOOn", r->resource_attributes, name_text,
                                    version_text, r->map_bytes);
    Py_XDECREF(name_text);
    Py_XDECREF(version_text);
    if (ctx != NULL && PyDict_GET_SIZE(r->w->contexts) >= r->w->memo_limit)
        PyDict_Clear(r->w->contexts); /* bounded, like the derive memo */
    if (ctx != NULL && PyDict_SetItem(r->w->contexts, key, ctx) < 0)
        Py_CLEAR(ctx);
done:
    Py_DECREF(key);
    if (ctx != NULL)
        *rc = 0;
    return ctx;
}

static int
walk_scope(void *arg, Slice raw)
{
    Resource *r = arg;
    r->n_scopes = 0;
    int rc = each_field(raw, 1, note_scope, r);
    if (rc)
        return rc;
    PyObject *ctx = scope_context(r, &rc);
    if (ctx != NULL)
        rc = walk_spans(r->w, raw, ctx);
    Py_XDECREF(ctx);
    return rc;
}

static int
walk_resource(void *arg, Slice raw)
{
    Resource *r = PyMem_Malloc(sizeof(Resource)); /* ~4 KB: not on the stack */
    if (r == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    r->w = arg;
    r->n_kvs = r->n_resources = 0;
    r->resource_attributes = NULL;
    int rc = each_field(raw, 1, note_resource, r);
    if (rc == 0)
        rc = each_field(raw, 2, walk_scope, r);
    Py_XDECREF(r->resource_attributes);
    PyMem_Free(r);
    return rc;
}

static PyObject *
scan(PyObject *Py_UNUSED(module), PyObject *args)
{
    Scan w;
    if (!PyArg_ParseTuple(args, "O!OO!O!OOOnnn:scan", &PyBytes_Type, &w.value, &w.context,
                          &PyDict_Type, &w.contexts, &PyDict_Type, &w.memo, &w.derive, &w.slow,
                          &w.kv_string, &w.max_attributes, &w.max_value_length, &w.memo_limit)
        || !relevant_configured())
        return NULL;
    w.last_trace_id = NULL;
    w.scratch = PyMem_Calloc(1, sizeof(Scratch)); /* zeroed: no relevant values yet */
    w.out = PyList_New(0);
    if (w.scratch == NULL || w.out == NULL) {
        PyMem_Free(w.scratch);
        Py_XDECREF(w.out);
        return PyErr_NoMemory();
    }
    Slice all = {(const uint8_t *)PyBytes_AS_STRING(w.value), PyBytes_GET_SIZE(w.value)};
    int rc = each_field(all, 1, walk_resource, &w);
    PyMem_Free(w.scratch);
    if (rc == 0)
        return w.out;
    Py_DECREF(w.out);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     PyDoc_STR("scan(value, context, memo, derive, slow, kv_string, max_attributes, "
               "max_value_length, memo_limit) -> list[SpanHead] | None")},
    {"valid", valid, METH_O,
     PyDoc_STR("valid(value) -> True only if upb accepts value as an ExportTraceServiceRequest")},
    {"columns", columns, METH_VARARGS,
     PyDoc_STR("columns(heads, kv_string, kinds, statuses) -> {otel_traces column: values}")},
    {"arrow_columns", arrow_columns, METH_VARARGS,
     PyDoc_STR("arrow_columns(heads, kv_string, kinds, statuses) -> {otel_traces column: "
               "(layout, buffer, ...)}")},
    {"window_add", window_add, METH_VARARGS,
     PyDoc_STR("window_add(spans, accumulators, window_ns, watermark_cap_ns, watermark, "
               "max_exemplars, inv_log_gamma, max_bins, thresholds=None) -> watermark")},
    {"per_service", per_service, METH_O,
     PyDoc_STR("per_service(heads) -> {service: [spans, row bytes]}")},
    {"trace_hash", trace_hash, METH_VARARGS,
     PyDoc_STR("trace_hash(trace_id, salt) -> the probabilistic policy's 64-bit hash")},
    {"latency_observe", latency_observe, METH_VARARGS,
     PyDoc_STR("latency_observe(ops, heads, new_op, inv_log_gamma, max_bins, horizon): "
               "LatencyState.observe_spans, grouped")},
    {"spanmetrics_add", spanmetrics_add, METH_VARARGS,
     PyDoc_STR("spanmetrics_add(spans, acc, bounds_ns): calls, duration sum and buckets per "
               "(service, operation, kind, status)")},
    {"peer_in_span", peer_in_span, METH_VARARGS,
     PyDoc_STR("peer_in_span(value, start, end, needles, max_peer) -> (peer, names a database)")},
    {"sketch_counts", sketch_counts, METH_VARARGS,
     PyDoc_STR("sketch_counts(values_ns, inv_log_gamma) -> (bins, zeros, min ms, max ms)")},
    {"configure", configure, METH_O,
     PyDoc_STR("configure(derive_attributes): the attributes Enricher.derive reads")},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "pipeline.otlp._heads",
    PyDoc_STR("Native per-span scan of otlp_proto requests; see pipeline.otlp.heads."), -1,
    methods};

PyMODINIT_FUNC
PyInit__heads(void)
{
    if (PyType_Ready(&SpanHeadType) < 0 || PyType_Ready(&RedAccType) < 0 || init_latency() < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "SpanHead", (PyObject *)&SpanHeadType) < 0
        || PyModule_AddObjectRef(m, "RedAcc", (PyObject *)&RedAccType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
