/*
 * range.c: byte ranges. `Range` on blob GET follows RFC 9110 §14.1.2 for a
 * single range (multiple ranges are answered with the whole blob, which the
 * RFC allows). `Content-Range` on upload PATCH is the distribution spec's
 * "<start>-<end>" (inclusive); "bytes <start>-<end>/<total|*>" is accepted
 * too since some clients send the RFC form.
 */
#include "registry/registry.h"

#include <string.h>

/* Parses "<digits>" at *s, advancing it. */
static bool take_u64(const char **s, uint64_t *out)
{
    const char *p = *s;
    while (*p >= '0' && *p <= '9')
        p++;
    if (p == *s || wh_parse_u64(out, *s, (size_t)(p - *s)) < 0)
        return false;
    *s = p;
    return true;
}

int wh_range_parse(const char *hdr, uint64_t size, uint64_t *first, uint64_t *last)
{
    const char *p = hdr;
    uint64_t a = 0, b = 0;
    bool has_a, has_b;

    if (!hdr || strncmp(p, "bytes=", 6) != 0)
        return WH_ENOTFOUND;
    p += 6;
    while (*p == ' ')
        p++;
    if (strchr(p, ','))
        return WH_ENOTFOUND; /* several ranges: send everything */
    has_a = take_u64(&p, &a);
    if (*p++ != '-')
        return WH_ENOTFOUND;
    has_b = take_u64(&p, &b);
    while (*p == ' ')
        p++;
    if (*p != '\0' || (!has_a && !has_b))
        return WH_ENOTFOUND;
    if (!has_a) { /* suffix: the last b bytes */
        if (b == 0 || size == 0)
            return WH_ERANGE;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 0;
    }
    if (has_b && b < a)
        return WH_ENOTFOUND; /* invalid range: ignored per RFC */
    if (a >= size)
        return WH_ERANGE;
    *first = a;
    *last = (!has_b || b >= size) ? size - 1 : b;
    return 0;
}

int wh_content_range_parse(const char *hdr, uint64_t *first, uint64_t *last)
{
    const char *p = hdr;
    uint64_t a, b;
    if (!hdr)
        return WH_EINVALID;
    if (strncmp(p, "bytes ", 6) == 0)
        p += 6;
    else if (strncmp(p, "bytes=", 6) == 0)
        p += 6;
    if (!take_u64(&p, &a) || *p++ != '-' || !take_u64(&p, &b) || b < a)
        return wh_error_set(WH_EINVALID, "malformed Content-Range");
    if (*p == '/') {
        p++;
        uint64_t total;
        if (!(*p == '*' && p[1] == '\0') && (!take_u64(&p, &total) || *p != '\0'))
            return wh_error_set(WH_EINVALID, "malformed Content-Range");
    } else if (*p != '\0') {
        return wh_error_set(WH_EINVALID, "malformed Content-Range");
    }
    *first = a;
    *last = b;
    return 0;
}
