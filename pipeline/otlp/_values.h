/* Attribute values for _heads.c: AnyValue -> AsString, repeated KeyValue -> dict or sizes.
 *
 * Plain strings, ints, bools and empty values are rendered here, exactly as
 * pipeline.otlp.anyvalue does; every other AnyValue (double, bytes, array, kvlist,
 * several oneof members) goes to the `kv_string` Python callback with its bytes.
 */
#ifndef SPANSTREAM_VALUES_H
#define SPANSTREAM_VALUES_H

#include "_wire.h"

#define MAX_KV 256

/* The attributes pipeline.enrich reads (pipeline.enrich.DERIVE_ATTRIBUTES), in that
 * order: _derive.h names them by index. configure() receives them from Python; until
 * then no key is relevant and scan() refuses to run. */
#define N_RELEVANT 16
static const char *relevant_text[N_RELEVANT]; /* UTF-8 of relevant_names[i] */
static Py_ssize_t relevant_lengths[N_RELEVANT];
static PyObject *relevant_names[N_RELEVANT];
static Py_ssize_t relevant_min = 1, relevant_max = 0; /* key lengths worth comparing */

/* configure(attributes) -> None: the derive attributes, a tuple of N_RELEVANT strs. */
static PyObject *
configure(PyObject *Py_UNUSED(module), PyObject *names)
{
    if (!PyTuple_Check(names) || PyTuple_GET_SIZE(names) != N_RELEVANT)
        return PyErr_Format(PyExc_ValueError, "configure takes a tuple of %d attribute names",
                            N_RELEVANT);
    for (int i = 0; i < N_RELEVANT; i++)
        if (!PyUnicode_Check(PyTuple_GET_ITEM(names, i)))
            return PyErr_Format(PyExc_TypeError, "attribute names must be str");
    relevant_min = PY_SSIZE_T_MAX;
    relevant_max = 0;
    for (int i = 0; i < N_RELEVANT; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        const char *text = PyUnicode_AsUTF8AndSize(name, &relevant_lengths[i]);
        if (text == NULL)
            return NULL;
        Py_XSETREF(relevant_names[i], Py_NewRef(name)); /* keeps `text` alive */
        relevant_text[i] = text;
        relevant_min = Py_MIN(relevant_min, relevant_lengths[i]);
        relevant_max = Py_MAX(relevant_max, relevant_lengths[i]);
    }
    Py_RETURN_NONE;
}

static int
relevant_configured(void)
{
    if (relevant_names[0] != NULL)
        return 1;
    PyErr_SetString(PyExc_RuntimeError, "configure() the derive attributes first");
    return 0;
}

/* Index of `key` among the relevant names, or -1; every span's every key comes here. */
static inline int
relevant_index(Slice key)
{
    if (key.n < relevant_min || key.n > relevant_max)
        return -1;
    for (int i = 0; i < N_RELEVANT; i++)
        if (relevant_lengths[i] == key.n && memcmp(relevant_text[i], key.p, key.n) == 0)
            return i;
    return -1;
}

enum { AV_EMPTY, AV_STRING, AV_BOOL, AV_INT, AV_OTHER };

typedef struct {
    int kind;
    Slice text;
    uint64_t number;
} AnyValue;

/* Classify an AnyValue; AV_OTHER (rendered by Python) unless at most one plain member. */
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
        int member = field >= 1 && field <= 8;
        members += member;
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
        else if (member || skip_field(&c, field, wt, 0) < 0) {
            goto other;
        }
    }
    if (members <= 1)
        return;
other:
    out->kind = AV_OTHER;
}

/* AsString(value) as a new str; `raw` is the AnyValue's bytes, for kv_string. */
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

static inline Py_ssize_t
decimal_length(int64_t n)
{
    uint64_t u = n < 0 ? 0 - (uint64_t)n : (uint64_t)n;
    Py_ssize_t length = n < 0 ? 2 : 1;
    while (u >= 10) {
        u /= 10;
        length++;
    }
    return length;
}

/* len(AsString(value)) without making the str; AV_OTHER needs value_text. */
static Py_ssize_t
value_length(const AnyValue *v)
{
    switch (v->kind) {
    case AV_STRING:
        return code_points(v->text);
    case AV_BOOL:
        return v->number ? 4 : 5;
    case AV_INT:
        return decimal_length((int64_t)v->number);
    default:
        return 0;
    }
}

/* Split one KeyValue; 1 when it is not the canonical encoding (one value at most). */
static int
read_keyvalue(Slice kv, Slice *key, Slice *value)
{
    Cursor c = {kv.p, kv.p + kv.n};
    int values = 0;
    key->n = value->n = 0;
    key->p = value->p = kv.p;
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

/* A repeated KeyValue field as pipeline.otlp.otlp_proto.attributes() builds it:
 * {key: AsString(value)}, a duplicate key keeping its first position and last value.
 * 0 done (new dict in *out), 1 not canonical, -1 Python error. */
static int
attr_dict(const Slice *kvs, Py_ssize_t n, PyObject *kv_string, PyObject **out)
{
    PyObject *dict = PyDict_New();
    if (dict == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        Slice key, raw;
        AnyValue v;
        if (read_keyvalue(kvs[i], &key, &raw)) {
            Py_DECREF(dict);
            return 1;
        }
        read_anyvalue(raw, &v);
        PyObject *k = PyUnicode_DecodeUTF8((const char *)key.p, key.n, NULL);
        PyObject *text = k ? value_text(&v, raw, kv_string) : NULL;
        int rc = text ? PyDict_SetItem(dict, k, text) : -1;
        Py_XDECREF(k);
        Py_XDECREF(text);
        if (rc < 0) {
            Py_DECREF(dict);
            return -1;
        }
    }
    *out = dict;
    return 0;
}

/* The last value of one relevant attribute, as the UTF-8 bytes of AsString(value). */
typedef struct {
    int present;
    Slice text;       /* into the record, `digits`, or `object` */
    char digits[24];  /* an int or bool rendered */
    PyObject *object; /* AsString from kv_string (unusual kinds), owned; else NULL */
} Relevant;

static void
clear_relevant(Relevant *relevant)
{
    for (int i = 0; i < N_RELEVANT; i++) {
        Py_CLEAR(relevant[i].object);
        relevant[i].present = 0;
    }
}

/* AsString of a value the kv_string callback is not needed for (kind < AV_OTHER), as
 * UTF-8: into the record, a literal, or `digits` (24 bytes) for an int. */
static Slice
plain_text(const AnyValue *v, Slice raw, char *digits)
{
    switch (v->kind) {
    case AV_STRING:
        return v->text;
    case AV_BOOL:
        return (Slice){(const uint8_t *)(v->number ? "true" : "false"), v->number ? 4 : 5};
    case AV_INT:
        return (Slice){(const uint8_t *)digits,
                       snprintf(digits, 24, "%lld", (long long)(int64_t)v->number)};
    default:
        return (Slice){raw.p, 0};
    }
}

/* Keep `v` as the value of a relevant attribute; its len() in *length. -1 on error. */
static int
set_relevant(Relevant *r, const AnyValue *v, Slice raw, PyObject *kv_string, Py_ssize_t *length)
{
    Py_CLEAR(r->object);
    r->present = 1;
    if (v->kind != AV_OTHER) {
        r->text = plain_text(v, raw, r->digits);
        *length = code_points(r->text);
        return 0;
    }
    if ((r->object = value_text(v, raw, kv_string)) == NULL)
        return -1;
    const char *utf8 = PyUnicode_AsUTF8AndSize(r->object, &r->text.n);
    if (utf8 == NULL)
        return -1;
    r->text.p = (const uint8_t *)utf8;
    *length = PyUnicode_GET_LENGTH(r->object);
    return 0;
}

/* What the row-size estimate and the enrichment need of a repeated KeyValue field,
 * without building the dict. */
typedef struct {
    Py_ssize_t size;     /* sum of len(key) + len(value) over distinct keys */
    Py_ssize_t count;    /* distinct keys */
    Py_ssize_t longest;  /* longest value, in characters */
    Relevant *relevant;  /* N_RELEVANT slots (last duplicate wins), or NULL */
} AttrSummary;

/* 0 done, 1 not canonical (take the Python path), -1 Python error. */
static int
summarize(const Slice *kvs, Py_ssize_t n, PyObject *kv_string, AttrSummary *out)
{
    Slice keys[MAX_KV];
    Py_ssize_t lengths[MAX_KV];
    out->size = out->count = out->longest = 0;
    if (n > MAX_KV)
        return 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        Slice key, raw;
        AnyValue v;
        if (read_keyvalue(kvs[i], &key, &raw))
            return 1;
        read_anyvalue(raw, &v);
        int slot = out->relevant ? relevant_index(key) : -1;
        Py_ssize_t length = value_length(&v);
        if (slot >= 0) {
            if (set_relevant(&out->relevant[slot], &v, raw, kv_string, &length) < 0)
                return -1;
        }
        else if (v.kind == AV_OTHER) {
            PyObject *text = value_text(&v, raw, kv_string);
            if (text == NULL)
                return -1;
            length = PyUnicode_GET_LENGTH(text);
            Py_DECREF(text);
        }
        Py_ssize_t j = 0;
        while (j < out->count && !(keys[j].n == key.n && memcmp(keys[j].p, key.p, key.n) == 0))
            j++;
        if (j == out->count) { /* a new key; a duplicate only replaces the value */
            keys[j] = key;
            out->size += code_points(key);
            out->count++;
            lengths[j] = 0;
        }
        out->size += length - lengths[j];
        lengths[j] = length;
    }
    for (Py_ssize_t j = 0; j < out->count; j++)
        if (lengths[j] > out->longest)
            out->longest = lengths[j];
    return 0;
}

/* sum(len(k) + len(v)) over a dict of str -> str: pipeline.otlp.heads._map_size. */
static Py_ssize_t
dict_map_size(PyObject *dict)
{
    Py_ssize_t pos = 0, size = 0;
    PyObject *k, *v;
    while (PyDict_Next(dict, &pos, &k, &v))
        size += PyUnicode_GET_LENGTH(k) + PyUnicode_GET_LENGTH(v);
    return size;
}

#endif
