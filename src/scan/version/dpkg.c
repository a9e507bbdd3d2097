/*
 * Debian version ordering, as dpkg's lib/dpkg/version.c (dpkg_version_compare,
 * verrevcmp) and lib/dpkg/parsehelp.c (parseversion) define it; deb-version(7).
 * A version is [epoch:]upstream[-revision]; epoch compares as a number, then
 * upstream and revision each by verrevcmp.
 *
 * Strings dpkg refuses to parse still get an order (the fallback): the same
 * split done leniently (an epoch only if the part before the first ':' is
 * [+-]digits, a revision after the last '-'), then the same comparison. For
 * every string dpkg accepts the fallback split is dpkg's own, so it is exact
 * there; and it is a total preorder everywhere.
 */
#include <string.h>

#include "scan/version/version_int.h"

struct deb_version {
    const char *epoch; /* digits, no sign; length epoch_len (0 = epoch 0) */
    size_t epoch_len;
    const char *upstream;
    size_t upstream_len;
    const char *revision; /* "" when absent */
    size_t revision_len;
};

static bool deb_isspace(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/*
 * Splits `s` the way parseversion does, but never fails. Leading and trailing
 * blanks are dropped, as dpkg does.
 */
static void deb_split(struct deb_version *out, const char *s)
{
    const char *end, *colon, *hyphen, *p;

    while (deb_isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && deb_isspace((unsigned char)end[-1]))
        end--;

    out->epoch = s;
    out->epoch_len = 0;
    colon = memchr(s, ':', (size_t)(end - s));
    if (colon) {
        p = s;
        if (p < colon && (*p == '+' || *p == '-'))
            p++;
        const char *digits = p;
        while (p < colon && wh_version_isdigit((unsigned char)*p))
            p++;
        bool zero = true;
        for (const char *q = digits; q < p; q++)
            zero = zero && *q == '0';
        /* dpkg takes the epoch with strtol: a sign is allowed, a negative
         * non-zero one is an error (such strings keep the colon in upstream). */
        if (p == colon && p > digits && !(*s == '-' && !zero)) {
            out->epoch = digits;
            out->epoch_len = (size_t)(p - digits);
            s = colon + 1;
        }
    }
    hyphen = NULL;
    for (p = s; p < end; p++)
        if (*p == '-')
            hyphen = p;
    out->upstream = s;
    if (hyphen) {
        out->upstream_len = (size_t)(hyphen - s);
        out->revision = hyphen + 1;
        out->revision_len = (size_t)(end - hyphen - 1);
    } else {
        out->upstream_len = (size_t)(end - s);
        out->revision = end;
        out->revision_len = 0;
    }
}

/* dpkg's character weight: '~' below the end of the string, letters next,
 * then everything else. Digits and the end weigh 0. */
static int deb_order(const char *p, const char *end)
{
    if (p >= end)
        return 0;
    int c = (unsigned char)*p;
    if (wh_version_isdigit(c))
        return 0;
    if (wh_version_isalpha(c))
        return c;
    if (c == '~')
        return -1;
    return c + 256;
}

/* verrevcmp over (pointer, length) strings. */
static int deb_verrevcmp(const char *a, size_t alen, const char *b, size_t blen)
{
    const char *ae = a + alen, *be = b + blen;

    while (a < ae || b < be) {
        int first_diff = 0;

        /* A run of non-digits, compared by weight. */
        while ((a < ae && !wh_version_isdigit((unsigned char)*a)) ||
               (b < be && !wh_version_isdigit((unsigned char)*b))) {
            int ac = deb_order(a, ae), bc = deb_order(b, be);
            if (ac != bc)
                return ac - bc;
            if (a < ae)
                a++;
            if (b < be)
                b++;
        }
        /* A run of digits, compared as a number of any length. */
        while (a < ae && *a == '0')
            a++;
        while (b < be && *b == '0')
            b++;
        while (a < ae && b < be && wh_version_isdigit((unsigned char)*a) &&
               wh_version_isdigit((unsigned char)*b)) {
            if (!first_diff)
                first_diff = *a - *b;
            a++;
            b++;
        }
        if (a < ae && wh_version_isdigit((unsigned char)*a))
            return 1;
        if (b < be && wh_version_isdigit((unsigned char)*b))
            return -1;
        if (first_diff)
            return first_diff;
    }
    return 0;
}

int wh_version_dpkg_cmp(const char *a, const char *b)
{
    struct deb_version va, vb;
    int r;

    deb_split(&va, a);
    deb_split(&vb, b);
    if ((r = wh_version_numcmp(va.epoch, va.epoch_len, vb.epoch, vb.epoch_len)) != 0)
        return wh_version_sign(r);
    if ((r = deb_verrevcmp(va.upstream, va.upstream_len, vb.upstream, vb.upstream_len)) != 0)
        return wh_version_sign(r);
    return wh_version_sign(deb_verrevcmp(va.revision, va.revision_len, vb.revision, vb.revision_len));
}

/* parseversion's checks, warnings included (dpkg refuses those strings too). */
bool wh_version_dpkg_valid(const char *v)
{
    const char *s = v, *end, *colon, *p, *hyphen;

    while (deb_isspace((unsigned char)*s))
        s++;
    if (!*s)
        return false; /* empty or blank */
    end = s;
    while (*end && !deb_isspace((unsigned char)*end))
        end++;
    for (p = end; *p; p++)
        if (!deb_isspace((unsigned char)*p))
            return false; /* embedded blank */

    colon = memchr(s, ':', (size_t)(end - s));
    if (colon) {
        /* strtol: optional sign, digits, value in [0, INT_MAX]. */
        p = s;
        bool neg = false;
        if (*p == '+' || *p == '-')
            neg = *p++ == '-';
        const char *digits = p;
        while (p < colon && wh_version_isdigit((unsigned char)*p))
            p++;
        if (colon == s || p != colon || p == digits)
            return false; /* empty or not a number */
        while (digits < p - 1 && *digits == '0')
            digits++;
        if (neg && !(p - digits == 1 && *digits == '0'))
            return false; /* negative */
        if (p - digits > 10 || (p - digits == 10 && memcmp(digits, "2147483647", 10) > 0))
            return false; /* too big */
        s = colon + 1;
        if (s == end)
            return false; /* nothing after the colon */
    }
    hyphen = NULL;
    for (p = s; p < end; p++)
        if (*p == '-')
            hyphen = p;
    if (hyphen && hyphen + 1 == end)
        return false; /* empty revision */
    const char *uend = hyphen ? hyphen : end;
    if (s == uend)
        return false; /* empty version */
    if (!wh_version_isdigit((unsigned char)*s))
        return false;
    for (p = s + 1; p < uend; p++)
        if (!wh_version_isdigit((unsigned char)*p) && !wh_version_isalpha((unsigned char)*p) &&
            !strchr(".-+~:", *p))
            return false;
    if (hyphen)
        for (p = hyphen + 1; p < end; p++)
            if (!wh_version_isdigit((unsigned char)*p) && !wh_version_isalpha((unsigned char)*p) &&
                !strchr(".+~", *p))
                return false;
    return true;
}
