/*
 * lang.c: language package catalogers for files found inside images:
 * npm (installed node_modules/<pkg>/package.json and
 * package-lock.json v1-v3) and Python (*.dist-info/METADATA, egg-info
 * PKG-INFO headers, and EGG-INFO/PKG-INFO inside a zipped .egg). Sub-path package.json helper files without a name and a
 * version are not packages and are skipped.
 */
#include "scan/scan_int.h"

#include <archive.h>
#include <archive_entry.h>
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

/* A zipped egg: the same headers in EGG-INFO/PKG-INFO inside the zip. */
int wh_catalog_pyegg(struct wh_layer_inv *li, const char *path, const char *data, size_t len)
{
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    int error = 0;
    archive_read_support_format_zip(a);
    if (archive_read_open_memory(a, data, len) != ARCHIVE_OK) {
        error = wh_error_set(WH_EINVALID, "not a zip archive");
        goto out;
    }
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(e);
        if (!name || strcmp(name, "EGG-INFO/PKG-INFO") != 0)
            continue;
        struct wh_buf b;
        char block[16384];
        la_ssize_t n;
        wh_buf_init(&b, 256 * 1024);
        while ((n = archive_read_data(a, block, sizeof(block))) > 0)
            if (wh_buf_put(&b, block, (size_t)n) < 0)
                break; /* the headers come first: a prefix is enough */
        if (b.data)
            error = wh_catalog_python(li, path, b.data, b.len);
        wh_buf_dispose(&b);
        break;
    }
out:
    archive_read_free(a);
    return error;
}
