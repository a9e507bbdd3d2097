/*
 * dpkg.c: the dpkg status database (var/lib/dpkg/status, and one stanza file
 * per package under status.d/ in distroless images).
 * Stanzas are RFC 822-like paragraphs separated by blank lines. Binary name
 * and version come from Package:/Version:, the source from `Source: name` or
 * `Source: name (version)`; packages whose Status has deinstall or purge are
 * left out. Continuation lines (descriptions, conffiles) are ignored.
 */
#include "scan/scan_int.h"

#include <string.h>

#define FIELD_MAX 512

struct stanza {
    char package[FIELD_MAX], version[FIELD_MAX], source[FIELD_MAX], arch[64], status[128];
};

static void field(char *out, size_t cap, const char *v, size_t n)
{
    const char *nul = memchr(v, '\0', n);
    if (nul)
        n = (size_t)(nul - v); /* a NUL ends the value; trim what is really kept */
    while (n && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, v, n);
    out[n] = '\0';
}

static bool has_word(const char *s, const char *w)
{
    size_t n = strlen(w);
    for (const char *p = s; (p = strstr(p, w)); p += n)
        if ((p == s || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
            return true;
    return false;
}

static void emit(struct wh_layer_inv *li, struct wh_layer_rec *r, struct stanza *st)
{
    if (!st->package[0] || !st->version[0])
        return;
    if (has_word(st->status, "deinstall") || has_word(st->status, "purge"))
        return;
    if (st->status[0] && has_word(st->status, "not-installed"))
        return;
    char src[FIELD_MAX], srcver[FIELD_MAX];
    src[0] = srcver[0] = '\0';
    if (st->source[0]) {
        /* "name" or "name (version)" */
        const char *paren = strchr(st->source, '(');
        size_t nl = paren ? (size_t)(paren - st->source) : strlen(st->source);
        field(src, sizeof(src), st->source, nl);
        if (paren) {
            const char *close = strchr(paren, ')');
            if (close)
                field(srcver, sizeof(srcver), paren + 1, (size_t)(close - paren - 1));
        }
    }
    struct wh_pkg p = {
        .kind = WH_PKG_DPKG,
        .name = st->package,
        .version = st->version,
        .src_name = src[0] ? src : NULL,
        .src_version = srcver[0] ? srcver : NULL,
        .arch = st->arch[0] ? st->arch : NULL,
    };
    wh_layer_rec_pkg(li, r, &p);
}

int wh_catalog_dpkg(struct wh_layer_inv *li, const char *path, const char *data, size_t len)
{
    const char *p = data, *end = data + len, *line;
    size_t n;
    struct stanza st;
    struct wh_layer_rec *r = wh_layer_rec_add(li, path, WH_CAT_DPKG);

    memset(&st, 0, sizeof(st));
    while (wh_next_line(&p, end, &line, &n)) {
        if (n == 0) {
            emit(li, r, &st);
            memset(&st, 0, sizeof(st));
            continue;
        }
        if (line[0] == ' ' || line[0] == '\t')
            continue;
        const char *colon = memchr(line, ':', n);
        if (!colon)
            continue;
        size_t kl = (size_t)(colon - line);
        const char *v = colon + 1;
        size_t vl = n - kl - 1;
#define KEY_IS(k) (kl == sizeof(k) - 1 && memcmp(line, k, kl) == 0)
        if (KEY_IS("Package"))
            field(st.package, sizeof(st.package), v, vl);
        else if (KEY_IS("Version"))
            field(st.version, sizeof(st.version), v, vl);
        else if (KEY_IS("Source"))
            field(st.source, sizeof(st.source), v, vl);
        else if (KEY_IS("Architecture"))
            field(st.arch, sizeof(st.arch), v, vl);
        else if (KEY_IS("Status"))
            field(st.status, sizeof(st.status), v, vl);
#undef KEY_IS
    }
    emit(li, r, &st);
    return 0;
}
