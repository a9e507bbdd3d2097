/*
 * PEP 440 version ordering (PyPI), as pypa/packaging's Version parses
 * (VERSION_PATTERN, case-insensitive, blanks around allowed) and orders it
 * (_cmpkey): epoch, release with trailing zeros ignored, pre-release
 * (a < b < rc; a bare .devN sorts before any pre-release of its release),
 * post-release, dev-release, then the local version label.
 * Normalisation is done while comparing: "alpha"/"beta"/"c"/"pre"/"preview",
 * "rev"/"r", "-N" post releases, optional separators, implicit 0 numbers.
 *
 * Fallback: packaging rejects invalid strings; its older LegacyVersion sorted
 * them before every valid version, and so do we, ordering them among
 * themselves byte by byte.
 */
#include <string.h>

#include "scan/version/version_int.h"

struct pep440 {
    const char *epoch; /* digits ("" = 0) */
    size_t epoch_len;
    const char *release; /* "N(.N)*" */
    size_t release_len;
    int pre;          /* 0 none, 1 a, 2 b, 3 rc */
    const char *pre_n; /* digits ("" = 0) */
    size_t pre_n_len;
    bool post;
    const char *post_n;
    size_t post_n_len;
    bool dev;
    const char *dev_n;
    size_t dev_n_len;
    const char *local; /* after '+', NULL when none */
    size_t local_len;
};

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

static bool is_sep(int c)
{
    return c == '-' || c == '_' || c == '.';
}

/* Case-insensitive match of `word` at *p; advances on success. */
static bool take_word(const char **p, const char *end, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(end - *p) < n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)(*p)[i]) != word[i])
            return false;
    *p += n;
    return true;
}

static void take_digits(const char **p, const char *end, const char **out, size_t *len)
{
    const char *d = *p;
    while (*p < end && wh_version_isdigit((unsigned char)**p))
        (*p)++;
    *out = d;
    *len = (size_t)(*p - d);
}

static bool pep_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/*
 * Matches VERSION_PATTERN. Each optional part is tried at the current position
 * and dropped if it does not match; taking the longest label and a separator
 * greedily never loses a match the regular expression would find, because
 * what may follow a part is a superset of what may follow its shorter form.
 */
static bool pep440_parse(struct pep440 *v, const char *s)
{
    const char *p = s, *end, *q;

    memset(v, 0, sizeof(*v));
    v->epoch = v->pre_n = v->post_n = v->dev_n = "";
    while (pep_space((unsigned char)*p))
        p++;
    end = p + strlen(p);
    while (end > p && pep_space((unsigned char)end[-1]))
        end--;
    if (p < end && lower((unsigned char)*p) == 'v')
        p++;

    /* Epoch. */
    q = p;
    while (q < end && wh_version_isdigit((unsigned char)*q))
        q++;
    if (q > p && q < end && *q == '!') {
        v->epoch = p;
        v->epoch_len = (size_t)(q - p);
        p = q + 1;
    }
    /* Release. */
    v->release = p;
    if (p >= end || !wh_version_isdigit((unsigned char)*p))
        return false;
    for (;;) {
        while (p < end && wh_version_isdigit((unsigned char)*p))
            p++;
        if (p + 1 < end && *p == '.' && wh_version_isdigit((unsigned char)p[1]))
            p++;
        else
            break;
    }
    v->release_len = (size_t)(p - v->release);

    /* Pre-release. */
    static const struct {
        const char *word;
        int kind;
    } pre_words[] = {{"alpha", 1}, {"a", 1}, {"beta", 2}, {"b", 2}, {"preview", 3},
                     {"pre", 3},   {"c", 3}, {"rc", 3}};
    q = p;
    if (q < end && is_sep((unsigned char)*q))
        q++;
    for (size_t i = 0; i < sizeof(pre_words) / sizeof(pre_words[0]); i++) {
        if (take_word(&q, end, pre_words[i].word)) {
            v->pre = pre_words[i].kind;
            if (q < end && is_sep((unsigned char)*q))
                q++;
            take_digits(&q, end, &v->pre_n, &v->pre_n_len);
            p = q;
            break;
        }
    }
    /* Post-release: "-N", or [sep](post|rev|r)[sep][N]. */
    if (p + 1 < end && *p == '-' && wh_version_isdigit((unsigned char)p[1])) {
        p++;
        v->post = true;
        take_digits(&p, end, &v->post_n, &v->post_n_len);
    } else {
        static const char *const post_words[] = {"post", "rev", "r"};
        q = p;
        if (q < end && is_sep((unsigned char)*q))
            q++;
        for (size_t i = 0; i < 3; i++) {
            if (take_word(&q, end, post_words[i])) {
                v->post = true;
                if (q < end && is_sep((unsigned char)*q))
                    q++;
                take_digits(&q, end, &v->post_n, &v->post_n_len);
                p = q;
                break;
            }
        }
    }
    /* Dev-release. */
    q = p;
    if (q < end && is_sep((unsigned char)*q))
        q++;
    if (take_word(&q, end, "dev")) {
        v->dev = true;
        if (q < end && is_sep((unsigned char)*q))
            q++;
        take_digits(&q, end, &v->dev_n, &v->dev_n_len);
        p = q;
    }
    /* Local label: [a-z0-9]+([-_.][a-z0-9]+)*. */
    if (p < end && *p == '+') {
        v->local = ++p;
        bool need = true;
        while (p < end) {
            int c = lower((unsigned char)*p);
            if (wh_version_isdigit(c) || (c >= 'a' && c <= 'z'))
                need = false;
            else if (is_sep(c) && !need)
                need = true;
            else
                return false;
            p++;
        }
        if (need)
            return false;
        v->local_len = (size_t)(p - v->local);
    }
    return p == end;
}

/* Next dot-separated release number at *p (none left = "0"). */
static void next_num(const char **p, const char *end, const char **out, size_t *len)
{
    if (*p >= end) {
        *out = "";
        *len = 0;
        return;
    }
    take_digits(p, end, out, len);
    if (*p < end)
        (*p)++; /* the dot */
}

static int release_cmp(const struct pep440 *a, const struct pep440 *b)
{
    const char *pa = a->release, *ea = pa + a->release_len;
    const char *pb = b->release, *eb = pb + b->release_len;

    while (pa < ea || pb < eb) {
        const char *x, *y;
        size_t xl, yl;
        next_num(&pa, ea, &x, &xl);
        next_num(&pb, eb, &y, &yl);
        int r = wh_version_numcmp(x, xl, y, yl);
        if (r != 0)
            return r;
    }
    return 0;
}

/* Case-insensitive byte compare. */
static int icase_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++) {
        int x = lower((unsigned char)a[i]), y = lower((unsigned char)b[i]);
        if (x != y)
            return x - y;
    }
    return (alen > blen) - (alen < blen);
}

static bool digits_only(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!wh_version_isdigit((unsigned char)p[i]))
            return false;
    return true;
}

/* Local labels: segment by segment, numbers above strings, more segments win. */
static int local_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t i = 0, j = 0;

    for (;;) {
        if (i >= alen || j >= blen)
            return (i < alen) - (j < blen);
        size_t ie = i, je = j;
        while (ie < alen && !is_sep((unsigned char)a[ie]))
            ie++;
        while (je < blen && !is_sep((unsigned char)b[je]))
            je++;
        bool an = digits_only(a + i, ie - i), bn = digits_only(b + j, je - j);
        int r;
        if (an && bn)
            r = wh_version_numcmp(a + i, ie - i, b + j, je - j);
        else if (an != bn)
            r = an ? 1 : -1;
        else
            r = icase_cmp(a + i, ie - i, b + j, je - j);
        if (r != 0)
            return r;
        i = ie + 1;
        j = je + 1;
    }
}

int wh_version_pep440_cmp(const char *a, const char *b)
{
    struct pep440 x, y;
    bool xo = pep440_parse(&x, a), yo = pep440_parse(&y, b);
    int r;

    if (!xo || !yo) {
        if (xo != yo)
            return xo ? 1 : -1;
        return wh_version_sign(strcmp(a, b));
    }
    if ((r = wh_version_numcmp(x.epoch, x.epoch_len, y.epoch, y.epoch_len)) != 0)
        return wh_version_sign(r);
    if ((r = release_cmp(&x, &y)) != 0)
        return wh_version_sign(r);

    /* Pre-release class: a bare dev release (no pre, no post) sorts first,
     * then pre-releases, then none. */
    int xc = x.pre ? 1 : (!x.post && x.dev) ? 0 : 2;
    int yc = y.pre ? 1 : (!y.post && y.dev) ? 0 : 2;
    if (xc != yc)
        return xc < yc ? -1 : 1;
    if (xc == 1) {
        if (x.pre != y.pre)
            return x.pre < y.pre ? -1 : 1;
        if ((r = wh_version_numcmp(x.pre_n, x.pre_n_len, y.pre_n, y.pre_n_len)) != 0)
            return wh_version_sign(r);
    }
    /* No post release sorts first. */
    if (x.post != y.post)
        return x.post ? 1 : -1;
    if (x.post && (r = wh_version_numcmp(x.post_n, x.post_n_len, y.post_n, y.post_n_len)) != 0)
        return wh_version_sign(r);
    /* No dev release sorts last. */
    if (x.dev != y.dev)
        return x.dev ? -1 : 1;
    if (x.dev && (r = wh_version_numcmp(x.dev_n, x.dev_n_len, y.dev_n, y.dev_n_len)) != 0)
        return wh_version_sign(r);
    /* No local label sorts first. */
    if (!x.local || !y.local) {
        if (!x.local && !y.local)
            return 0;
        return x.local ? 1 : -1;
    }
    return wh_version_sign(local_cmp(x.local, x.local_len, y.local, y.local_len));
}

bool wh_version_pep440_valid(const char *v)
{
    struct pep440 x;
    return pep440_parse(&x, v);
}
