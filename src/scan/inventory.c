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

void wh_inventory_add(struct wh_inventory *inv, const struct wh_pkg *p)
{
    if (inv->npkgs == inv->cap) {
        inv->cap = inv->cap ? inv->cap * 2 : 64;
        inv->pkgs = wh_realloc(inv->pkgs, inv->cap * sizeof(*inv->pkgs));
    }
    struct wh_pkg *q = &inv->pkgs[inv->npkgs++];
    q->kind = p->kind;
    q->name = wh_pool_strdup(inv->pool, p->name);
    q->version = wh_pool_strdup(inv->pool, p->version);
    q->src_name = wh_pool_strdup(inv->pool, p->src_name ? p->src_name : p->name);
    q->src_version = wh_pool_strdup(inv->pool, p->src_version ? p->src_version : p->version);
    q->arch = p->arch ? wh_pool_strdup(inv->pool, p->arch) : NULL;
    q->path = p->path ? wh_pool_strdup(inv->pool, p->path) : "";
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
    json_t *pkgs = json_array();
    for (size_t i = 0; i < inv->npkgs; i++) {
        const struct wh_pkg *p = &inv->pkgs[i];
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", kind_names[p->kind], "name",
                              p->name, "version", p->version, "source_name", p->src_name,
                              "source_version", p->src_version, "path", p->path);
        if (p->arch)
            json_object_set_new(o, "arch", json_string(p->arch));
        json_array_append_new(pkgs, o);
    }
    return json_pack("{s:i, s:{s:s, s:s, s:s, s:s}, s:o}", "inventory_version", 1, "os", "family",
                     inv->os.family, "version", inv->os.version, "codename", inv->os.codename, "name",
                     inv->os.name, "packages", pkgs);
}

static void copy_field(char *dst, size_t cap, const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    snprintf(dst, cap, "%s", v ? v : "");
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
