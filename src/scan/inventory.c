/*
 * inventory.c: the merged package inventory of an image (packages plus the
 * detected OS), with its strings in one pool, and small text helpers shared by
 * the catalogers.
 */
#include "scan/scan_int.h"

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
