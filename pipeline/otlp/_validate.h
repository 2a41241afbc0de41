/* Does upb accept these bytes as an ExportTraceServiceRequest? For _heads.c.
 *
 * upb's parse is the decoder's validation (UTF-8 of every string field, the wire
 * format of every field, nesting depth) and it cost a worker ~10 % of its GIL time
 * only to be thrown away. valid() walks the same bytes against the OTLP trace
 * schema and answers 1 only when upb must accept them: strict UTF-8 (RFC 3629, as
 * upb's utf8_range), known fields with their declared wire types, well-formed
 * varints, lengths in bounds, nesting well under upb's limit of 100. Anything it
 * is not sure of (an unknown length-delimited field, a group, a wire-type
 * mismatch, an odd varint) answers 0 and the caller asks upb, whose verdict and
 * error text then stand. So a 1 is only ever a shortcut, never a different answer.
 */
#ifndef SPANSTREAM_VALIDATE_H
#define SPANSTREAM_VALIDATE_H

#include "_wire.h"

/* Well under upb's 100: a message this walk accepts is never too deep for upb. */
#define VALID_MAX_DEPTH 64

enum { F_NONE, F_VARINT, F_I64, F_I32, F_BYTES, F_STRING, F_MESSAGE };
enum {
    VM_REQUEST, VM_RESOURCE_SPANS, VM_RESOURCE, VM_SCOPE_SPANS, VM_SCOPE, VM_SPAN, VM_EVENT,
    VM_LINK, VM_STATUS, VM_KEY_VALUE, VM_ANY_VALUE, VM_ARRAY, VM_KV_LIST, VN_MESSAGES
};

typedef struct {
    uint8_t kind, message;
} FieldSpec;

#define MAX_FIELD 16
#define STR {F_STRING, 0}
#define BYT {F_BYTES, 0}
#define VAR {F_VARINT, 0}
#define I64 {F_I64, 0}
#define I32 {F_I32, 0}
#define MSG(m) {F_MESSAGE, m}

/* opentelemetry/proto/{collector/trace,trace,resource,common}/v1, by field number. */
static const FieldSpec SCHEMA[VN_MESSAGES][MAX_FIELD + 1] = {
    [VM_REQUEST] = {[1] = MSG(VM_RESOURCE_SPANS)},
    [VM_RESOURCE_SPANS] = {[1] = MSG(VM_RESOURCE), [2] = MSG(VM_SCOPE_SPANS), [3] = STR},
    [VM_RESOURCE] = {[1] = MSG(VM_KEY_VALUE), [2] = VAR},
    [VM_SCOPE_SPANS] = {[1] = MSG(VM_SCOPE), [2] = MSG(VM_SPAN), [3] = STR},
    [VM_SCOPE] = {[1] = STR, [2] = STR, [3] = MSG(VM_KEY_VALUE), [4] = VAR},
    [VM_SPAN] = {[1] = BYT, [2] = BYT, [3] = STR, [4] = BYT, [5] = STR, [6] = VAR, [7] = I64,
                [8] = I64, [9] = MSG(VM_KEY_VALUE), [10] = VAR, [11] = MSG(VM_EVENT),
                [12] = VAR, [13] = MSG(VM_LINK), [14] = VAR, [15] = MSG(VM_STATUS),
                [16] = I32},
    [VM_EVENT] = {[1] = I64, [2] = STR, [3] = MSG(VM_KEY_VALUE), [4] = VAR},
    [VM_LINK] = {[1] = BYT, [2] = BYT, [3] = STR, [4] = MSG(VM_KEY_VALUE), [5] = VAR, [6] = I32},
    [VM_STATUS] = {[2] = STR, [3] = VAR},
    [VM_KEY_VALUE] = {[1] = STR, [2] = MSG(VM_ANY_VALUE)},
    [VM_ANY_VALUE] = {[1] = STR, [2] = VAR, [3] = VAR, [4] = I64, [5] = MSG(VM_ARRAY),
                     [6] = MSG(VM_KV_LIST), [7] = BYT},
    [VM_ARRAY] = {[1] = MSG(VM_ANY_VALUE)},
    [VM_KV_LIST] = {[1] = MSG(VM_KEY_VALUE)},
};

#undef STR
#undef BYT
#undef VAR
#undef I64
#undef I32
#undef MSG

static inline int
continuation(uint8_t b)
{
    return (b & 0xC0) == 0x80;
}

/* RFC 3629 UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
static int
utf8_valid(const uint8_t *p, Py_ssize_t n)
{
    const uint8_t *end = p + n;
    while (p < end) {
        if (end - p >= 8) {
            uint64_t word;
            memcpy(&word, p, 8);
            if ((word & 0x8080808080808080ULL) == 0) {
                p += 8;
                continue;
            }
        }
        uint8_t b = *p;
        if (b < 0x80) {
            p++;
            continue;
        }
        Py_ssize_t left = end - p;
        if (b >= 0xC2 && b <= 0xDF) {
            if (left < 2 || !continuation(p[1]))
                return 0;
            p += 2;
        }
        else if (b >= 0xE0 && b <= 0xEF) {
            uint8_t lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
            if (left < 3 || p[1] < lo || p[1] > hi || !continuation(p[2]))
                return 0;
            p += 3;
        }
        else if (b >= 0xF0 && b <= 0xF4) {
            uint8_t lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
            if (left < 4 || p[1] < lo || p[1] > hi || !continuation(p[2]) || !continuation(p[3]))
                return 0;
            p += 4;
        }
        else {
            return 0;
        }
    }
    return 1;
}

/* A varint of at most 10 bytes whose value fits 64 bits; 0 otherwise. */
static inline int
strict_varint(Cursor *c, uint64_t *out)
{
    const uint8_t *start = c->p;
    if (read_varint(c, out) < 0)
        return 0;
    return c->p - start < 10 || start[9] <= 1;
}

static int valid_message(Slice s, int message, int depth);

static int
valid_field(Cursor *c, FieldSpec spec, int wt, int depth)
{
    static const int WIRE[] = {[F_VARINT] = WT_VARINT, [F_I64] = WT_I64, [F_I32] = WT_I32,
                               [F_BYTES] = WT_LEN,     [F_STRING] = WT_LEN, [F_MESSAGE] = WT_LEN};
    uint64_t ignored;
    Slice s;
    if (spec.kind == F_NONE) /* unknown: only fields that cannot hold text or messages */
        return wt == WT_VARINT   ? strict_varint(c, &ignored)
               : wt == WT_I64    ? read_fixed64(c, &ignored) == 0
               : wt == WT_I32    ? skip_field(c, 0, WT_I32, 0) == 0
                                 : 0;
    if (wt != WIRE[spec.kind])
        return 0;
    switch (spec.kind) {
    case F_VARINT:
        return strict_varint(c, &ignored);
    case F_I64:
        return read_fixed64(c, &ignored) == 0;
    case F_I32:
        return skip_field(c, 0, WT_I32, 0) == 0;
    case F_BYTES:
        return read_slice(c, &s) == 0;
    case F_STRING:
        return read_slice(c, &s) == 0 && utf8_valid(s.p, s.n);
    default:
        return read_slice(c, &s) == 0 && depth < VALID_MAX_DEPTH
               && valid_message(s, spec.message, depth + 1);
    }
}

static int
valid_message(Slice s, int message, int depth)
{
    Cursor c = {s.p, s.p + s.n};
    static const FieldSpec NONE = {F_NONE, 0};
    while (c.p < c.end) {
        uint64_t tag;
        if (!strict_varint(&c, &tag) || tag > UINT32_MAX)
            return 0;
        uint32_t field = (uint32_t)(tag >> 3);
        if (field == 0 || field > 536870911u)
            return 0;
        FieldSpec spec = field <= MAX_FIELD ? SCHEMA[message][field] : NONE;
        if (!valid_field(&c, spec, (int)(tag & 7), depth))
            return 0;
    }
    return 1;
}

/* valid(value) -> True only if upb accepts `value` as an ExportTraceServiceRequest. */
static PyObject *
valid(PyObject *Py_UNUSED(module), PyObject *value)
{
    if (!PyBytes_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "valid() takes bytes");
        return NULL;
    }
    Slice s = {(const uint8_t *)PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value)};
    return PyBool_FromLong(valid_message(s, VM_REQUEST, 1));
}

#endif
