/*
 * inventory.c: the merged package inventory of an image (packages plus the
 * detected OS), with its strings in one pool, and small text helpers shared by
 * the catalogers.
 */
#include "scan/scan_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct wh_inventory *wh_inventory_new(void)
{
    struct wh_inventory *inv = wh_calloc(1, sizeof(*inv));
    inv->pool = wh_pool_new();
    return inv;
}

void wh_inventory_free(struct wh_inventory *inv)
{
    if (!inv)
        return;
    free(inv->pkgs);
    wh_pool_free(inv->pool);
    free(inv);
}

/* A pool copy of s, kept as UTF-8 (see wh_utf8_escape). */
static const char *text(wh_pool *pool, const char *s)
{
    return wh_utf8_escape(pool, s, strlen(s));
}

void wh_inventory_add(struct wh_inventory *inv, const struct wh_pkg *p)
{
    if (inv->npkgs == inv->cap) {
        inv->cap = inv->cap ? inv->cap * 2 : 64;
        inv->pkgs = wh_realloc(inv->pkgs, inv->cap * sizeof(*inv->pkgs));
    }
    struct wh_pkg *q = &inv->pkgs[inv->npkgs++];
    q->kind = p->kind;
    q->name = text(inv->pool, p->name);
    q->version = text(inv->pool, p->version);
    q->src_name = text(inv->pool, p->src_name ? p->src_name : p->name);
    q->src_version = text(inv->pool, p->src_version ? p->src_version : p->version);
    q->arch = p->arch ? text(inv->pool, p->arch) : NULL;
    q->path = p->path ? text(inv->pool, p->path) : "";
}

static int pkg_cmp(const void *a, const void *b)
{
    const struct wh_pkg *x = a, *y = b;
    int c;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    if ((c = strcmp(x->name, y->name)) != 0)
        return c;
    if ((c = strcmp(x->version, y->version)) != 0)
        return c;
    return strcmp(x->path, y->path);
}

void wh_inventory_sort(struct wh_inventory *inv)
{
    if (inv->npkgs == 0)
        return;
    qsort(inv->pkgs, inv->npkgs, sizeof(*inv->pkgs), pkg_cmp);
    /* Language packages found twice (installed tree and a lockfile) count once. */
    size_t o = 1;
    for (size_t i = 1; i < inv->npkgs; i++) {
        const struct wh_pkg *prev = &inv->pkgs[o - 1], *cur = &inv->pkgs[i];
        bool lang = cur->kind >= WH_PKG_NPM;
        if (prev->kind == cur->kind && strcmp(prev->name, cur->name) == 0 &&
            strcmp(prev->version, cur->version) == 0 &&
            (lang || strcmp(prev->path, cur->path) == 0))
            continue;
        inv->pkgs[o++] = *cur;
    }
    inv->npkgs = o;
}

/* ---- text from layers: always valid UTF-8 ---- */

/*
 * Length of the UTF-8 sequence at s[0..n) (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF; jansson accepts exactly these), or 0
 * when the bytes there are not one.
 */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c < 0xc2 || c > 0xf4)
        return 0;
    len = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
    if (n < len)
        return 0;
    unsigned cp = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

const char *wh_utf8_escape(wh_pool *pool, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    const char *nul = memchr(s, '\0', n);
    size_t bad = 0, i, k;
    if (nul)
        n = (size_t)(nul - s);
    for (i = 0; i < n; i += k)
        if ((k = utf8_seq(u + i, n - i)) == 0) {
            bad++;
            k = 1;
        }
    if (bad == 0)
        return wh_pool_strndup(pool, s, n);
    /* each bad byte becomes the four characters \xNN */
    char *out = wh_pool_alloc(pool, n + bad * 3 + 1), *o = out;
    for (i = 0; i < n; i += k) {
        if ((k = utf8_seq(u + i, n - i)) == 0) {
            static const char hex[] = "0123456789abcdef";
            *o++ = '\\';
            *o++ = 'x';
            *o++ = hex[u[i] >> 4];
            *o++ = hex[u[i] & 15];
            k = 1;
            continue;
        }
        memcpy(o, s + i, k);
        o += k;
    }
    *o = '\0';
    return out;
}

size_t wh_utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    /* a continuation byte at the cut belongs to a character that starts before it */
    size_t i = max;
    while (i > 0 && max - i < 3 && ((unsigned char)s[i] & 0xc0) == 0x80)
        i--;
    return i;
}

json_t *wh_json_text(const char *s)
{
    if (!s)
        s = "";
    json_t *j = json_string(s);
    if (j)
        return j;
    /* not UTF-8 (a string that missed wh_utf8_escape): keep the bytes, escaped */
    wh_pool *tmp = wh_pool_new();
    j = json_string(wh_utf8_escape(tmp, s, strlen(s)));
    wh_pool_free(tmp);
    return j;
}

bool wh_next_line(const char **p, const char *end, const char **line, size_t *len)
{
    if (*p >= end)
        return false;
    const char *s = *p;
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    const char *e = nl ? nl : end;
    *p = nl ? nl + 1 : end;
    if (e > s && e[-1] == '\r')
        e--;
    *line = s;
    *len = (size_t)(e - s);
    return true;
}

/* ---- JSON form ---- */

static const char *const kind_names[] = {"dpkg", "apk", "rpm", "npm", "pypi", "go", "maven"};

json_t *wh_inventory_to_json(const struct wh_inventory *inv)
{
    /* wh_json_text never fails, so no package or OS field can be lost on the way out */
    json_t *pkgs = json_array(), *os = json_object(), *root = json_object();
    for (size_t i = 0; i < inv->npkgs; i++) {
        const struct wh_pkg *p = &inv->pkgs[i];
        json_t *o = json_object();
        json_object_set_new(o, "type", json_string(kind_names[p->kind]));
        json_object_set_new(o, "name", wh_json_text(p->name));
        json_object_set_new(o, "version", wh_json_text(p->version));
        json_object_set_new(o, "source_name", wh_json_text(p->src_name));
        json_object_set_new(o, "source_version", wh_json_text(p->src_version));
        json_object_set_new(o, "path", wh_json_text(p->path));
        if (p->arch)
            json_object_set_new(o, "arch", wh_json_text(p->arch));
        json_array_append_new(pkgs, o);
    }
    json_object_set_new(os, "family", wh_json_text(inv->os.family));
    json_object_set_new(os, "version", wh_json_text(inv->os.version));
    json_object_set_new(os, "codename", wh_json_text(inv->os.codename));
    json_object_set_new(os, "name", wh_json_text(inv->os.name));
    json_object_set_new(root, "inventory_version", json_integer(1));
    json_object_set_new(root, "os", os);
    json_object_set_new(root, "packages", pkgs);
    return root;
}

static void copy_field(char *dst, size_t cap, const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    size_t n = v ? wh_utf8_cut(v, strlen(v), cap - 1) : 0; /* never half a character */
    memcpy(dst, v ? v : "", n);
    dst[n] = '\0';
}

int wh_inventory_from_json(struct wh_inventory **out, const json_t *j)
{
    if (json_integer_value(json_object_get(j, "inventory_version")) != 1 ||
        !json_is_array(json_object_get(j, "packages")))
        return wh_error_set(WH_EINVALID, "not a wharf inventory (inventory_version 1)");
    struct wh_inventory *inv = wh_inventory_new();
    json_t *os = json_object_get(j, "os");
    copy_field(inv->os.family, sizeof(inv->os.family), os, "family");
    copy_field(inv->os.version, sizeof(inv->os.version), os, "version");
    copy_field(inv->os.codename, sizeof(inv->os.codename), os, "codename");
    copy_field(inv->os.name, sizeof(inv->os.name), os, "name");
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(j, "packages"), i, o) {
        const char *type = json_string_value(json_object_get(o, "type"));
        struct wh_pkg p = {0};
        int kind = -1;
        for (int k = 0; type && k < WH_PKG_KIND_COUNT; k++)
            if (strcmp(type, kind_names[k]) == 0)
                kind = k;
        p.name = json_string_value(json_object_get(o, "name"));
        p.version = json_string_value(json_object_get(o, "version"));
        if (kind < 0 || !p.name || !p.version) {
            wh_inventory_free(inv);
            return wh_error_set(WH_EINVALID, "inventory package %zu is malformed", i + 1);
        }
        p.kind = (enum wh_pkg_kind)kind;
        p.src_name = json_string_value(json_object_get(o, "source_name"));
        p.src_version = json_string_value(json_object_get(o, "source_version"));
        p.arch = json_string_value(json_object_get(o, "arch"));
        p.path = json_string_value(json_object_get(o, "path"));
        wh_inventory_add(inv, &p);
    }
    wh_inventory_sort(inv);
    *out = inv;
    return 0;
}

/* ---- the stored form: one line per package ---- */

/*
 * "wharf-inventory 1\n", one line "os\tFAMILY\tVERSION\tCODENAME\tNAME\n",
 * then one line per package "KIND\tNAME\tVERSION\tSRC_NAME\tSRC_VERSION\tARCH\tPATH\n"
 * (SRC_* empty when equal to the binary's, ARCH "-" when unknown). A tab, a
 * newline or a backslash inside a field is written as \t, \n or \\. About a
 * third of the JSON form's size, and read without a JSON parser: re-matching
 * reads every stored inventory.
 */
#define INV_TEXT_MAGIC "wharf-inventory 1\n"

static void put_field(struct wh_buf *b, const char *s, bool last)
{
    size_t run = 0;
    for (const char *p = s; ; p++) {
        if (*p == '\0' || *p == '\t' || *p == '\n' || *p == '\\') {
            wh_buf_put(b, p - run, run);
            run = 0;
            if (*p == '\0')
                break;
            wh_buf_puts(b, *p == '\t' ? "\\t" : *p == '\n' ? "\\n" : "\\\\");
        } else {
            run++;
        }
    }
    wh_buf_put(b, last ? "\n" : "\t", 1);
}

char *wh_inventory_to_text(const struct wh_inventory *inv, size_t *len)
{
    struct wh_buf b;
    wh_buf_init(&b, (size_t)1 << 30);
    wh_buf_puts(&b, INV_TEXT_MAGIC);
    put_field(&b, "os", false);
    put_field(&b, inv->os.family, false);
    put_field(&b, inv->os.version, false);
    put_field(&b, inv->os.codename, false);
    put_field(&b, inv->os.name, true);
    for (size_t i = 0; i < inv->npkgs; i++) {
        const struct wh_pkg *p = &inv->pkgs[i];
        put_field(&b, kind_names[p->kind], false);
        put_field(&b, p->name, false);
        put_field(&b, p->version, false);
        put_field(&b, strcmp(p->src_name, p->name) == 0 ? "" : p->src_name, false);
        put_field(&b, strcmp(p->src_version, p->version) == 0 ? "" : p->src_version, false);
        put_field(&b, p->arch ? p->arch : "-", false);
        put_field(&b, p->path, true);
    }
    return wh_buf_detach(&b, len);
}

/* Splits the line [p, end) into at most `max` fields, unescaped in place. Returns the count. */
static size_t split_line(char *p, char *end, char **fields, size_t max)
{
    size_t n = 0;
    char *w = p;
    fields[n++] = w;
    for (char *r = p; r < end; r++) {
        if (*r == '\t') {
            *w++ = '\0';
            if (n == max)
                return max + 1;
            fields[n++] = w;
        } else if (*r == '\\' && r + 1 < end) {
            r++;
            *w++ = *r == 't' ? '\t' : *r == 'n' ? '\n' : *r;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return n;
}

int wh_inventory_from_text(struct wh_inventory **out, const char *text, size_t len)
{
    size_t ml = strlen(INV_TEXT_MAGIC);
    if (len < ml || memcmp(text, INV_TEXT_MAGIC, ml) != 0)
        return wh_error_set(WH_EINVALID, "not a stored wharf inventory");
    char *copy = wh_strndup(text + ml, len - ml), *p = copy, *end = copy + (len - ml);
    struct wh_inventory *inv = wh_inventory_new();
    char *f[8];
    size_t line = 1;
    int error = 0;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        size_t n = split_line(p, le, f, 7);
        line++;
        if (line == 2) {
            if (n != 5 || strcmp(f[0], "os") != 0) {
                error = wh_error_set(WH_EINVALID, "stored inventory: bad os line");
                break;
            }
            snprintf(inv->os.family, sizeof(inv->os.family), "%s", f[1]);
            snprintf(inv->os.version, sizeof(inv->os.version), "%s", f[2]);
            snprintf(inv->os.codename, sizeof(inv->os.codename), "%s", f[3]);
            snprintf(inv->os.name, sizeof(inv->os.name), "%s", f[4]);
        } else {
            int kind = -1;
            for (int k = 0; n == 7 && k < WH_PKG_KIND_COUNT; k++)
                if (strcmp(f[0], kind_names[k]) == 0)
                    kind = k;
            if (kind < 0) {
                error = wh_error_set(WH_EINVALID, "stored inventory: line %zu is malformed", line);
                break;
            }
            struct wh_pkg pk = {.kind = (enum wh_pkg_kind)kind, .name = f[1], .version = f[2],
                                .src_name = f[3][0] ? f[3] : NULL,
                                .src_version = f[4][0] ? f[4] : NULL,
                                .arch = strcmp(f[5], "-") == 0 ? NULL : f[5], .path = f[6]};
            wh_inventory_add(inv, &pk);
        }
        p = nl ? nl + 1 : end;
    }
    free(copy);
    if (error == 0 && line < 2)
        error = wh_error_set(WH_EINVALID, "stored inventory: no os line");
    if (error < 0) {
        wh_inventory_free(inv);
        return error;
    }
    /* written sorted; sorted again only if it is not (never by wharf) */
    for (size_t i = 1; i < inv->npkgs; i++)
        if (pkg_cmp(&inv->pkgs[i - 1], &inv->pkgs[i]) > 0) {
            wh_inventory_sort(inv);
            break;
        }
    *out = inv;
    return 0;
}
