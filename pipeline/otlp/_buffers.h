/* Arrow column buffers for _arrow.h: growable bytes, int32 offsets, UTF-8 strings,
 * string maps, and attribute rendering (AnyValue -> AsString text, as attr_dict()).
 *
 * Everything here runs without the GIL except where `kv_string` is given: the
 * buffers grow with PyMem_Raw*, and failures are E_* codes raised by the caller
 * once it holds the GIL again.
 */
#ifndef SPANSTREAM_BUFFERS_H
#define SPANSTREAM_BUFFERS_H

#include "_values.h"

/* Outcomes of the writers below; raised as Python errors once the GIL is back. */
enum { E_OK, E_PYTHON, E_NOMEM, E_OFFSETS, E_TIME, E_SPAN, E_EVENT, E_LINK, E_NEED_GIL };

#define TRY(expr)                                                                        \
    do {                                                                                 \
        int rc_ = (expr);                                                                \
        if (rc_ != E_OK)                                                                 \
            return rc_;                                                                  \
    } while (0)

/* A growable byte buffer; PyMem_Raw* because it grows without the GIL. */
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
        char *p = PyMem_RawRealloc(b->p, cap);
        if (p == NULL)
            return E_NOMEM;
        b->p = p;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->n, src, n);
    b->n += n;
    return E_OK;
}

static int
buf_u64(Buf *b, uint64_t v)
{
    return buf_put(b, &v, sizeof v);
}

/* An int32 offsets buffer over `count` children so far; it starts with a 0. */
typedef struct {
    Buf off;
    Py_ssize_t count;
} Offsets;

static int
offsets_close(Offsets *o)
{
    if (o->count > INT32_MAX)
        return E_OFFSETS;
    int32_t x = (int32_t)o->count;
    return buf_put(&o->off, &x, sizeof x);
}

typedef struct {
    Offsets o;
    Buf data;
} Strings;

static int
strings_add(Strings *s, Slice text)
{
    TRY(buf_put(&s->data, text.p, text.n));
    s->o.count = s->data.n;
    return offsets_close(&s->o);
}

typedef struct {
    Offsets o;
    Strings keys, values;
} Maps;

/* A str's UTF-8 (cached in the str by CPython, so it lives as long as the str). */
static int
utf8_of(PyObject *text, Slice *out)
{
    const char *p = PyUnicode_AsUTF8AndSize(text, &out->n);
    out->p = (const uint8_t *)p;
    return p == NULL ? E_PYTHON : E_OK;
}

/* One rendered attribute: key and value text, valid while `object` lives. */
typedef struct {
    Slice key, text;
    char digits[24];
    PyObject *object;
} Entry;

/* With the GIL (`kv_string` set) only: entries hold objects then. */
static void
entries_clear(Entry *entries, Py_ssize_t count)
{
    for (Py_ssize_t i = 0; i < count; i++)
        Py_CLEAR(entries[i].object);
}

static int
render_value(Entry *e, const AnyValue *v, Slice raw, PyObject *kv_string)
{
    if (v->kind != AV_OTHER) {
        e->text = plain_text(v, raw, e->digits);
        return E_OK;
    }
    if (kv_string == NULL)
        return E_NEED_GIL;
    Py_CLEAR(e->object);
    e->object = PyObject_CallFunction(kv_string, "y#", (const char *)raw.p, raw.n);
    return e->object == NULL ? E_PYTHON : utf8_of(e->object, &e->text);
}

/* A repeated KeyValue into entries[0..*count), as attr_dict() would make the dict. */
static int
render_kvs(const Slice *kvs, Py_ssize_t n, PyObject *kv_string, Entry *entries,
           Py_ssize_t *count)
{
    *count = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Slice key, raw;
        AnyValue v;
        if (read_keyvalue(kvs[i], &key, &raw))
            return E_SPAN;
        read_anyvalue(raw, &v);
        Py_ssize_t at = 0;
        while (at < *count && !(entries[at].key.n == key.n
                                && memcmp(entries[at].key.p, key.p, key.n) == 0))
            at++;
        if (at == *count) {
            entries[at].key = key;
            entries[at].object = NULL;
            (*count)++;
        }
        TRY(render_value(&entries[at], &v, raw, kv_string));
    }
    return E_OK;
}

static int
maps_add(Maps *m, const Slice *kvs, Py_ssize_t n, PyObject *kv_string, Entry *entries)
{
    Py_ssize_t count;
    int rc = render_kvs(kvs, n, kv_string, entries, &count);
    for (Py_ssize_t i = 0; rc == E_OK && i < count; i++) {
        rc = strings_add(&m->keys, entries[i].key);
        if (rc == E_OK)
            rc = strings_add(&m->values, entries[i].text);
    }
    if (kv_string != NULL)
        entries_clear(entries, count);
    TRY(rc);
    m->o.count += count;
    return offsets_close(&m->o);
}

/* Raise the Python error of a failed writer (E_PYTHON: already set). */
static void
raise_for(int rc)
{
    switch (rc) {
    case E_NOMEM:
        PyErr_NoMemory();
        break;
    case E_OFFSETS:
        PyErr_SetString(PyExc_OverflowError, "Arrow int32 offsets overflow");
        break;
    case E_TIME:
        PyErr_SetString(PyExc_OverflowError, "event time beyond DateTime64(9)");
        break;
    case E_EVENT:
        PyErr_SetString(PyExc_ValueError, "odd event");
        break;
    case E_LINK:
        PyErr_SetString(PyExc_ValueError, "odd link");
        break;
    case E_SPAN:
        PyErr_SetString(PyExc_ValueError, "not a span the scan accepted");
        break;
    default: /* E_PYTHON: already set */
        break;
    }
}

#endif
