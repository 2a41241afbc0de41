/* Protobuf wire-format reading for _heads.c: varints, tags, length-delimited fields.
 *
 * The scan reads bytes valid() or upb (ExportTraceServiceRequest.FromString) accepted, so
 * these readers only need to be memory-safe, not to explain errors: any inconsistency
 * makes the caller take the exact Python path instead.
 */
#ifndef SPANSTREAM_WIRE_H
#define SPANSTREAM_WIRE_H

#include <stdint.h>
#include <string.h>

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_I32 = 5 };

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} Cursor;

typedef struct {
    const uint8_t *p;
    Py_ssize_t n;
} Slice;

/* 0 on success, -1 on a truncated or over-long varint. */
static inline int
read_varint(Cursor *c, uint64_t *out)
{
    uint64_t value = 0;
    for (int shift = 0; shift < 64 && c->p < c->end; shift += 7) {
        uint8_t byte = *c->p++;
        value |= (uint64_t)(byte & 0x7F) << shift;
        if (byte < 0x80) {
            *out = value;
            return 0;
        }
    }
    return -1;
}

static inline int
read_tag(Cursor *c, uint32_t *field, int *wire_type)
{
    uint64_t tag;
    if (read_varint(c, &tag) < 0 || tag > UINT32_MAX)
        return -1;
    *field = (uint32_t)(tag >> 3);
    *wire_type = (int)(tag & 7);
    return 0;
}

static inline int
read_fixed64(Cursor *c, uint64_t *out)
{
    if (c->end - c->p < 8)
        return -1;
    memcpy(out, c->p, 8); /* little-endian hosts only, as upb itself on x86/arm */
    c->p += 8;
    return 0;
}

static inline int
read_slice(Cursor *c, Slice *out)
{
    uint64_t n;
    if (read_varint(c, &n) < 0 || n > (uint64_t)(c->end - c->p))
        return -1;
    out->p = c->p;
    out->n = (Py_ssize_t)n;
    c->p += n;
    return 0;
}

static int skip_field(Cursor *c, uint32_t field, int wire_type, int depth);

/* Skip a (deprecated, but legal as an unknown field) group up to its end tag. */
static int
skip_group(Cursor *c, uint32_t field, int depth)
{
    if (depth > 100)
        return -1;
    while (c->p < c->end) {
        uint32_t inner;
        int wt;
        if (read_tag(c, &inner, &wt) < 0)
            return -1;
        if (wt == WT_EGROUP)
            return inner == field ? 0 : -1;
        if (skip_field(c, inner, wt, depth + 1) < 0)
            return -1;
    }
    return -1;
}

static int
skip_field(Cursor *c, uint32_t field, int wire_type, int depth)
{
    uint64_t ignored;
    Slice slice;
    switch (wire_type) {
    case WT_VARINT:
        return read_varint(c, &ignored);
    case WT_I64:
        return read_fixed64(c, &ignored);
    case WT_LEN:
        return read_slice(c, &slice);
    case WT_I32:
        if (c->end - c->p < 4)
            return -1;
        c->p += 4;
        return 0;
    case WT_SGROUP:
        return skip_group(c, field, depth);
    default:
        return -1;
    }
}

/* Python's len() of valid UTF-8: every byte that is not a continuation byte
 * (10xxxxxx). Eight bytes at a time, as attribute values are mostly ASCII. */
static inline Py_ssize_t
code_points(Slice s)
{
    Py_ssize_t n = s.n, i = 0;
    for (; i + 8 <= s.n; i += 8) {
        uint64_t w;
        memcpy(&w, s.p + i, 8);
        if (w & 0x8080808080808080ULL) /* continuation bytes: high bit set, next bit clear */
            n -= __builtin_popcountll(w & ~(w << 1) & 0x8080808080808080ULL);
    }
    for (; i < s.n; i++)
        n -= (s.p[i] & 0xC0) == 0x80;
    return n;
}

static inline int
all_zero(Slice s)
{
    for (Py_ssize_t i = 0; i < s.n; i++)
        if (s.p[i])
            return 0;
    return 1;
}

#endif
