/*
 * lang.c: language package catalogers for files found inside images
 * (SCANNING.md §A.6): npm (installed node_modules/<pkg>/package.json and
 * package-lock.json v1-v3) and Python (*.dist-info/METADATA and egg-info
 * PKG-INFO headers). Sub-path package.json helper files without a name and a
 * version are not packages and are skipped.
 */
#include "scan/scan_int.h"

#include <string.h>

#define LOCK_DEPTH_MAX 32


static void add_npm(struct wh_layer_inv *li, struct wh_layer_rec *r, const char *name,
                    const char *version)
{
    if (!name || !version || !*name || !*version)
        return;
    struct wh_pkg p = {.kind = WH_PKG_NPM, .name = name, .version = version};
    wh_layer_rec_pkg(li, r, &p);
}

static void lock_v1(struct wh_layer_inv *li, struct wh_layer_rec *r, json_t *deps, int depth)
{
    const char *name;
    json_t *v;
    if (depth > LOCK_DEPTH_MAX || !json_is_object(deps))
        return;
    json_object_foreach(deps, name, v) {
        add_npm(li, r, name, json_string_value(json_object_get(v, "version")));
        lock_v1(li, r, json_object_get(v, "dependencies"), depth + 1);
    }
}

int wh_catalog_npm(struct wh_layer_inv *li, const char *path, const char *data, size_t len,
                   bool lockfile)
{
    json_error_t jerr;
    json_t *doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return wh_error_set(WH_EINVALID, "not a JSON object: %s", jerr.text);
    }
    if (!lockfile) {
        const char *name = json_string_value(json_object_get(doc, "name"));
        const char *version = json_string_value(json_object_get(doc, "version"));
        if (name && version) {
            struct wh_layer_rec *r = wh_layer_rec_add(li, path, WH_CAT_NPM);
            add_npm(li, r, name, version);
        }
        json_decref(doc);
        return 0;
    }
    struct wh_layer_rec *r = wh_layer_rec_add(li, path, WH_CAT_NPM_LOCK);
    json_t *pkgs = json_object_get(doc, "packages");
    if (json_is_object(pkgs)) {
        const char *key;
        json_t *v;
        json_object_foreach(pkgs, key, v) {
            if (!*key || json_is_true(json_object_get(v, "link")))
                continue;
            const char *nm = strstr(key, "node_modules/");
            const char *last = NULL;
            while (nm) {
                last = nm + 13;
                nm = strstr(last, "node_modules/");
            }
            const char *name = json_string_value(json_object_get(v, "name"));
            add_npm(li, r, name ? name : last, json_string_value(json_object_get(v, "version")));
        }
    } else {
        lock_v1(li, r, json_object_get(doc, "dependencies"), 0);
    }
    json_decref(doc);
    return 0;
}

/* RFC 822-style headers of a Python core metadata file, up to the first blank line. */
int wh_catalog_python(struct wh_layer_inv *li, const char *path, const char *data, size_t len)
{
    const char *p = data, *end = data + len, *line;
    size_t n;
    char name[256] = "", version[128] = "";
    while (wh_next_line(&p, end, &line, &n)) {
        if (n == 0)
            break;
        char *dst = NULL;
        size_t cap = 0, kl = 0;
        if (n > 5 && memcmp(line, "Name:", 5) == 0)
            dst = name, cap = sizeof(name), kl = 5;
        else if (n > 8 && memcmp(line, "Version:", 8) == 0)
            dst = version, cap = sizeof(version), kl = 8;
        if (!dst)
            continue;
        const char *v = line + kl;
        size_t vl = n - kl;
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            vl--;
        if (vl >= cap)
            vl = cap - 1;
        memcpy(dst, v, vl);
        dst[vl] = '\0';
    }
    if (!name[0] || !version[0])
        return 0;
    struct wh_layer_rec *r = wh_layer_rec_add(li, path, WH_CAT_PYTHON);
    struct wh_pkg pk = {.kind = WH_PKG_PYPI, .name = name, .version = version};
    wh_layer_rec_pkg(li, r, &pk);
    return 0;
}
