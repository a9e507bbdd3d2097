/*
 * Semantic Versioning 2.0.0 ordering (semver.org §11) for OSV SEMVER ranges,
 * Go modules (golang.org/x/mod/semver: "v" prefix, "v1" and "v1.2"
 * shorthands) and npm (node-semver: optional "v" or "="). Build metadata is
 * ignored, so "1.0.0+a" == "1.0.0+b", as all three references do.
 *
 * Fallback for invalid strings: a lenient reading (surrounding blanks, "=" and
 * "v" prefixes, one to three numbers with leading zeros allowed and missing
 * ones taken as 0, any pre-release text up to '+') still orders by the
 * semver rules; strings even that cannot read sort below all others and
 * among themselves byte by byte (x/mod/semver puts invalid versions first too).
 */
#include <string.h>

#include "scan/version/version_int.h"

struct semver {
    bool lenient_ok;    /* the lenient reading succeeded */
    bool strict_ok;     /* well-formed for the mode */
    const char *num[3]; /* major, minor, patch digits ("" when missing) */
    size_t num_len[3];
    const char *pre;    /* pre-release text without '-', NULL when none */
    size_t pre_len;
};

static bool ident_char(int c)
{
    return wh_version_isdigit(c) || wh_version_isalpha(c) || c == '-';
}

static bool all_digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!wh_version_isdigit((unsigned char)p[i]))
            return false;
    return true;
}

/* Dot-separated identifiers: non-empty, [0-9A-Za-z-]; numeric ones without
 * leading zeros when `numeric_strict`. */
static bool idents_ok(const char *p, size_t n, bool numeric_strict)
{
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && p[i] != '.') {
            if (!ident_char((unsigned char)p[i]))
                return false;
            continue;
        }
        size_t len = i - start;
        if (len == 0)
            return false;
        if (numeric_strict && len > 1 && p[start] == '0' && all_digits(p + start, len))
            return false;
        start = i + 1;
    }
    return true;
}

static bool sv_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static void semver_parse(struct semver *out, enum wh_semver_mode mode, const char *s)
{
    const char *p = s, *end;
    bool prefix_v = false, prefix_eq = false, blanks = false, upper_v = false;
    int count = 0;

    memset(out, 0, sizeof(*out));
    for (int i = 0; i < 3; i++)
        out->num[i] = "";
    while (sv_space((unsigned char)*p))
        p++, blanks = true;
    end = p + strlen(p);
    while (end > p && sv_space((unsigned char)end[-1]))
        end--, blanks = true;
    if (p < end && *p == '=')
        p++, prefix_eq = true;
    if (p < end && (*p == 'v' || *p == 'V')) {
        prefix_v = true;
        upper_v = *p == 'V';
        p++;
    }

    /* One to three numbers. */
    bool zeros_ok = true;
    while (count < 3) {
        const char *d = p;
        while (p < end && wh_version_isdigit((unsigned char)*p))
            p++;
        if (p == d)
            return; /* not even lenient */
        out->num[count] = d;
        out->num_len[count] = (size_t)(p - d);
        if (p - d > 1 && *d == '0')
            zeros_ok = false;
        count++;
        if (count < 3 && p < end && *p == '.' && p + 1 < end && wh_version_isdigit((unsigned char)p[1]))
            p++;
        else
            break;
    }
    const char *build = NULL;
    size_t build_len = 0;
    if (p < end && *p == '-') {
        out->pre = ++p;
        while (p < end && *p != '+')
            p++;
        out->pre_len = (size_t)(p - out->pre);
    }
    if (p < end && *p == '+') {
        build = ++p;
        build_len = (size_t)(end - p);
        p = end;
    }
    if (p != end)
        return;
    out->lenient_ok = true;

    /* Strict checks. */
    bool ok = zeros_ok && (!out->pre || idents_ok(out->pre, out->pre_len, true)) &&
              (!build || idents_ok(build, build_len, false)) && !upper_v;
    switch (mode) {
    case WH_SEMVER_STRICT:
        ok = ok && count == 3 && !prefix_v && !prefix_eq && !blanks;
        break;
    case WH_SEMVER_GO:
        /* "v1" and "v1.2" are Go shorthands, only bare and only with the v. */
        ok = ok && !prefix_eq && !blanks && (count == 3 || (prefix_v && !out->pre && !build));
        break;
    case WH_SEMVER_NPM:
        ok = ok && count == 3;
        break;
    }
    out->strict_ok = ok;
}

/* Pre-release identifiers compared per §11.4. */
static int pre_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t i = 0, j = 0;

    for (;;) {
        if (i > alen && j > blen)
            return 0;
        if (i > alen)
            return -1; /* fewer identifiers */
        if (j > blen)
            return 1;
        size_t ie = i, je = j;
        while (ie < alen && a[ie] != '.')
            ie++;
        while (je < blen && b[je] != '.')
            je++;
        bool an = ie > i && all_digits(a + i, ie - i);
        bool bn = je > j && all_digits(b + j, je - j);
        int r;
        if (an && bn)
            r = wh_version_numcmp(a + i, ie - i, b + j, je - j);
        else if (an != bn)
            r = an ? -1 : 1; /* numeric identifiers sort first */
        else
            r = wh_version_bytecmp(a + i, ie - i, b + j, je - j);
        if (r != 0)
            return wh_version_sign(r);
        i = ie + 1;
        j = je + 1;
    }
}

int wh_version_semver_cmp(enum wh_semver_mode mode, const char *a, const char *b)
{
    struct semver x, y;
    int r;

    semver_parse(&x, mode, a);
    semver_parse(&y, mode, b);
    if (!x.lenient_ok || !y.lenient_ok) {
        if (x.lenient_ok != y.lenient_ok)
            return x.lenient_ok ? 1 : -1;
        return wh_version_sign(strcmp(a, b));
    }
    for (int i = 0; i < 3; i++)
        if ((r = wh_version_numcmp(x.num[i], x.num_len[i], y.num[i], y.num_len[i])) != 0)
            return wh_version_sign(r);
    if (!x.pre || !y.pre) {
        if (!x.pre && !y.pre)
            return 0;
        return x.pre ? -1 : 1; /* a pre-release is older than the release */
    }
    return pre_cmp(x.pre, x.pre_len, y.pre, y.pre_len);
}

bool wh_version_semver_valid(enum wh_semver_mode mode, const char *v)
{
    struct semver x;

    semver_parse(&x, mode, v);
    return x.strict_ok;
}
