/*
 * RPM version ordering: rpmvercmp (rpmio/rpmvercmp.c) applied to epoch,
 * version and release in turn, the EVR string split as rpm's rpmverParse does
 * ("[epoch:]version[-release]", epoch = leading digits before ':', release
 * after the last '-').
 *
 * One deliberate difference from rpmverCmp: there a missing release on either
 * side skips the release comparison ("1.0" matches "1.0-5"), which is a
 * matching rule, not an order (it is not transitive). Here a missing release
 * compares as the empty string, older than any release, as go-rpm-version and
 * the OS scanners do. Every string has an order; rpmvercmp takes anything.
 */
#include <string.h>

#include "scan/version/version_int.h"

struct rpm_evr {
    const char *e; /* epoch digits; e_len 0 = epoch 0 */
    size_t e_len;
    const char *v;
    size_t v_len;
    const char *r; /* release; "" when absent */
    size_t r_len;
    bool has_r;    /* a '-' was present */
};

static void rpm_split(struct rpm_evr *out, const char *s)
{
    const char *p = s, *end = s + strlen(s), *hyphen = NULL;

    while (wh_version_isdigit((unsigned char)*p))
        p++;
    if (*p == ':') {
        out->e = s;
        out->e_len = (size_t)(p - s);
        s = p + 1;
    } else {
        out->e = s;
        out->e_len = 0;
    }
    /* rpm searches for the release hyphen after the epoch digits. */
    for (const char *q = p; q < end; q++)
        if (*q == '-')
            hyphen = q;
    out->has_r = hyphen != NULL;
    out->v = s;
    if (hyphen) {
        out->v_len = (size_t)(hyphen - s);
        out->r = hyphen + 1;
        out->r_len = (size_t)(end - hyphen - 1);
    } else {
        out->v_len = (size_t)(end - s);
        out->r = end;
        out->r_len = 0;
    }
}

static bool rpm_isalnum(int c)
{
    return wh_version_isdigit(c) || wh_version_isalpha(c);
}

/* rpmvercmp over (pointer, length) strings: <0, 0, >0. */
static int rpm_vercmp(const char *one, size_t onelen, const char *two, size_t twolen)
{
    const char *oe = one + onelen, *te = two + twolen;

    if (onelen == twolen && memcmp(one, two, onelen) == 0)
        return 0;

    while (one < oe || two < te) {
        /* Separators (anything but letters, digits, '~' and '^') are skipped. */
        while (one < oe && !rpm_isalnum((unsigned char)*one) && *one != '~' && *one != '^')
            one++;
        while (two < te && !rpm_isalnum((unsigned char)*two) && *two != '~' && *two != '^')
            two++;

        /* '~' sorts before everything, even the end of the string. */
        if ((one < oe && *one == '~') || (two < te && *two == '~')) {
            if (one >= oe || *one != '~')
                return 1;
            if (two >= te || *two != '~')
                return -1;
            one++;
            two++;
            continue;
        }
        /* '^' sorts after the end of the string but before anything else. */
        if ((one < oe && *one == '^') || (two < te && *two == '^')) {
            if (one >= oe)
                return -1;
            if (two >= te)
                return 1;
            if (*one != '^')
                return 1;
            if (*two != '^')
                return -1;
            one++;
            two++;
            continue;
        }
        if (one >= oe || two >= te)
            break;

        /* The next all-digit or all-letter segment of each side, its type
         * set by `one`. */
        const char *s1 = one, *s2 = two;
        bool isnum = wh_version_isdigit((unsigned char)*s1);
        if (isnum) {
            while (s1 < oe && wh_version_isdigit((unsigned char)*s1))
                s1++;
            while (s2 < te && wh_version_isdigit((unsigned char)*s2))
                s2++;
        } else {
            while (s1 < oe && wh_version_isalpha((unsigned char)*s1))
                s1++;
            while (s2 < te && wh_version_isalpha((unsigned char)*s2))
                s2++;
        }
        /* Different segment types: a number is newer than letters. */
        if (s2 == two)
            return isnum ? 1 : -1;
        int r = isnum ? wh_version_numcmp(one, (size_t)(s1 - one), two, (size_t)(s2 - two))
                      : wh_version_bytecmp(one, (size_t)(s1 - one), two, (size_t)(s2 - two));
        if (r != 0)
            return r < 0 ? -1 : 1;
        one = s1;
        two = s2;
    }
    if (one >= oe && two >= te)
        return 0;
    /* Whichever still has segments left is newer. */
    return one >= oe ? -1 : 1;
}

int wh_version_rpm_cmp(const char *a, const char *b)
{
    struct rpm_evr x, y;
    int r;

    rpm_split(&x, a);
    rpm_split(&y, b);
    if ((r = wh_version_numcmp(x.e, x.e_len, y.e, y.e_len)) != 0)
        return wh_version_sign(r);
    if ((r = rpm_vercmp(x.v, x.v_len, y.v, y.v_len)) != 0)
        return r;
    return rpm_vercmp(x.r, x.r_len, y.r, y.r_len);
}

/* What rpmbuild accepts in Version and Release: letters, digits, "._+~^". */
static bool rpm_field_ok(const char *p, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!rpm_isalnum((unsigned char)p[i]) && !strchr("._+~^", p[i]))
            return false;
    return true;
}

bool wh_version_rpm_valid(const char *v)
{
    struct rpm_evr x;
    const char *colon = strchr(v, ':');

    rpm_split(&x, v);
    if (colon && (x.e_len == 0 || colon != x.e + x.e_len))
        return false; /* a colon that is not after a numeric epoch */
    if (!rpm_field_ok(x.v, x.v_len))
        return false;
    return !x.has_r || rpm_field_ok(x.r, x.r_len);
}
