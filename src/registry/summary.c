/*
 * summary.c: what artifact lists show of a manifest, computed once when it
 * is pushed (or, for manifests pushed before schema 13, on its first
 * listing) and kept in the database, so that a list of N artifacts reads no
 * blob: the image config's fields Harbor shows as `extra_attrs`, and an
 * index's children with their platforms (`references`).
 */
#include "registry/registry_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define SUMMARY_BLOB_MAX (4u << 20) /* image configs read for a summary */

/* The summary of the parsed manifest `m` (a JSON object), its config's bytes beside. */
static int summary_of(char **extra_attrs, char **references, json_t *m, const char *config,
                      size_t config_len)
{
    json_t *conf = config ? json_loadb(config, config_len, 0, NULL) : NULL;
    json_t *attrs = json_object(), *refs = json_array();
    if (json_is_object(conf)) {
        static const char *const keys[] = {"architecture", "os", "config", "created", "author",
                                           "variant", "os.version", NULL};
        for (int i = 0; keys[i]; i++) {
            json_t *v = json_object_get(conf, keys[i]);
            if (v)
                json_object_set(attrs, keys[i], v);
        }
    }
    size_t i;
    json_t *child;
    json_array_foreach(json_object_get(m, "manifests"), i, child) {
        const char *dg = json_string_value(json_object_get(child, "digest"));
        if (!dg)
            continue;
        json_t *ref = json_pack("{s:s}", "digest", dg), *v;
        if ((v = json_object_get(child, "platform")))
            json_object_set(ref, "platform", v);
        if ((v = json_object_get(child, "annotations")))
            json_object_set(ref, "annotations", v);
        if ((v = json_object_get(child, "urls")))
            json_object_set(ref, "urls", v);
        json_array_append_new(refs, ref);
    }
    *extra_attrs = json_dumps(attrs, JSON_COMPACT);
    *references = json_dumps(refs, JSON_COMPACT);
    json_decref(conf);
    json_decref(attrs);
    json_decref(refs);
    if (!*extra_attrs || !*references) {
        free(*extra_attrs);
        free(*references);
        *extra_attrs = *references = NULL;
        return wh_error_set(WH_ERROR, "cannot write a manifest summary");
    }
    return 0;
}

int wh_manifest_summary(char **extra_attrs, char **references, const char *manifest, size_t len,
                        const char *config, size_t config_len)
{
    json_t *m = json_loadb(manifest, len, 0, NULL);
    if (!json_is_object(m)) {
        json_decref(m);
        return wh_error_set(WH_EINVALID, "manifest is not a JSON object");
    }
    int error = summary_of(extra_attrs, references, m, config, config_len);
    json_decref(m);
    return error;
}

/* Reads a small blob whole; 0 or an error. */
static int read_small(wh_store *store, const char *digest, struct wh_buf *b)
{
    struct wh_digest d;
    if (wh_digest_parse(&d, digest, strlen(digest)) < 0)
        return wh_error_set(WH_EINVALID, "malformed digest %s", digest);
    wh_buf_init(b, SUMMARY_BLOB_MAX);
    int error = wh_store_read_blob(store, &d, b);
    if (error < 0)
        wh_buf_dispose(b);
    return error;
}

/* The summary of the parsed manifest `m`, its image config read from `store`. */
static int summary_make(char **extra_attrs, char **references, wh_store *store, json_t *m)
{
    struct wh_buf cb = {0};
    if (!json_is_object(m))
        return wh_error_set(WH_EINVALID, "manifest is not a JSON object");
    const char *cfg = json_string_value(json_object_get(json_object_get(m, "config"), "digest"));
    /* an image's summary is its config's fields: one that cannot be read now is made
     * later (on the first listing), never stored without them */
    bool have_config = cfg && !json_object_get(m, "manifests");
    int error;
    if (have_config && (error = read_small(store, cfg, &cb)) < 0)
        return error;
    error = summary_of(extra_attrs, references, m, have_config ? cb.data : NULL,
                       have_config ? cb.len : 0);
    wh_buf_dispose(&cb);
    return error;
}

int wh_registry_summary_make(char **extra_attrs, char **references, wh_store *store,
                             const struct wh_manifest *m)
{
    return summary_make(extra_attrs, references, store, m->doc);
}

int wh_registry_summarize(wh_db *db, wh_store *store, const char *digest, const char *manifest,
                          size_t len)
{
    struct wh_buf mb = {0};
    char *extra = NULL, *refs = NULL;
    int error;
    if (!manifest) {
        if ((error = read_small(store, digest, &mb)) < 0)
            return error;
        manifest = mb.data ? mb.data : "";
        len = mb.len;
    }
    json_t *m = json_loadb(manifest, len, 0, NULL);
    error = summary_make(&extra, &refs, store, m);
    json_decref(m);
    if (error == 0)
        error = wh_db_manifest_summary_put(db, digest, extra, refs);
    free(extra);
    free(refs);
    wh_buf_dispose(&mb);
    return error;
}
