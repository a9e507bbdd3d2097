/*
 * manifest.c: parsing and validation of pushed manifests — the OCI image
 * manifest and index (image-spec manifest.md, image-index.md) and Docker's
 * schema 2 manifest and manifest list, which have the same shape. What is
 * extracted is what the registry must check or index: referenced blobs and
 * child manifests, the subject, the artifact type and annotations. The bytes
 * themselves are stored and served untouched; nothing here re-serialises.
 */
#include "registry/registry.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char *const known_types[] = {WH_MT_OCI_MANIFEST, WH_MT_OCI_INDEX,
                                          WH_MT_DOCKER_MANIFEST, WH_MT_DOCKER_LIST};

/* Returns the canonical constant for a known manifest media type, else NULL. */
static const char *known_type(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof(known_types) / sizeof(known_types[0]); i++)
        if (strlen(known_types[i]) == len && memcmp(known_types[i], s, len) == 0)
            return known_types[i];
    return NULL;
}

/* Layers whose bytes live elsewhere: the registry need not hold them. */
static bool is_foreign(const char *mt)
{
    return strcmp(mt, "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip") == 0 ||
           strncmp(mt, "application/vnd.oci.image.layer.nondistributable.", 49) == 0;
}

/* Validates a descriptor; `*digest_out` is borrowed from the document. */
static int descriptor(const json_t *d, const char *where, const char **digest_out,
                      const char **mt_out)
{
    struct wh_digest dg;
    const json_t *mt = json_object_get(d, "mediaType");
    const json_t *dig = json_object_get(d, "digest");
    const json_t *size = json_object_get(d, "size");
    if (!json_is_object(d))
        return wh_error_set(WH_EINVALID, "%s: descriptor is not an object", where);
    if (!json_is_string(mt) || json_string_length(mt) == 0)
        return wh_error_set(WH_EINVALID, "%s: mediaType missing", where);
    if (!json_is_string(dig) ||
        wh_digest_parse(&dg, json_string_value(dig), json_string_length(dig)) < 0)
        return wh_error_set(WH_EINVALID, "%s: digest missing or invalid", where);
    if (!json_is_integer(size) || json_integer_value(size) < 0)
        return wh_error_set(WH_EINVALID, "%s: size missing or negative", where);
    *digest_out = json_string_value(dig);
    if (mt_out)
        *mt_out = json_string_value(mt);
    return 0;
}

static int descriptor_list(const json_t *arr, const char *what, const char ***out, size_t *n,
                           size_t extra, bool skip_foreign)
{
    size_t count = json_array_size(arr), used = 0;
    if (!json_is_array(arr))
        return wh_error_set(WH_EINVALID, "%s must be an array", what);
    if (count > WH_MANIFEST_REFS_MAX)
        return wh_error_set(WH_EINVALID, "too many %s (limit %d)", what, WH_MANIFEST_REFS_MAX);
    const char **list = wh_calloc(count + extra, sizeof(*list));
    for (size_t i = 0; i < count; i++) {
        const char *dg, *mt;
        int error = descriptor(json_array_get(arr, i), what, &dg, &mt);
        if (error < 0) {
            free(list);
            return error;
        }
        if (skip_foreign && is_foreign(mt))
            continue;
        list[extra + used++] = dg;
    }
    *out = list;
    *n = extra + used;
    return 0;
}

/* The media type of a Content-Type value, without parameters. */
static const char *strip_params(const char *ct, size_t *len)
{
    const char *semi = strchr(ct, ';');
    size_t n = semi ? (size_t)(semi - ct) : strlen(ct);
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    *len = n;
    return ct;
}

int wh_manifest_parse(struct wh_manifest **out, const char *p, size_t len,
                      const char *content_type)
{
    json_error_t jerr;
    struct wh_manifest *m = NULL;
    json_t *doc = NULL;
    const char *ct_type = NULL;
    int error = 0;

    doc = json_loadb(p, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        error = wh_error_set(WH_EINVALID, "manifest is not valid JSON: %s (line %d)", jerr.text,
                             jerr.line);
        goto out;
    }
    if (!json_is_object(doc)) {
        error = wh_error_set(WH_EINVALID, "manifest is not a JSON object");
        goto out;
    }
    const json_t *sv = json_object_get(doc, "schemaVersion");
    if (!json_is_integer(sv) || json_integer_value(sv) != 2) {
        error = wh_error_set(WH_EINVALID, "schemaVersion must be 2");
        goto out;
    }
    if (content_type) {
        size_t n;
        const char *ct = strip_params(content_type, &n);
        ct_type = known_type(ct, n);
    }
    m = wh_calloc(1, sizeof(*m));
    m->doc = doc;
    const json_t *mt = json_object_get(doc, "mediaType");
    if (mt) {
        if (!json_is_string(mt) ||
            !(m->media_type = known_type(json_string_value(mt), json_string_length(mt)))) {
            error = wh_error_set(WH_EINVALID, "unsupported manifest mediaType");
            goto out;
        }
        if (ct_type && ct_type != m->media_type) {
            error = wh_error_set(WH_EINVALID, "mediaType %s does not match Content-Type %s",
                                 m->media_type, ct_type);
            goto out;
        }
    } else if (ct_type) {
        m->media_type = ct_type;
    } else if (json_object_get(doc, "manifests")) {
        m->media_type = WH_MT_OCI_INDEX;
    } else {
        m->media_type = WH_MT_OCI_MANIFEST;
    }
    m->is_index = m->media_type == known_types[1] || m->media_type == known_types[3];

    if (m->is_index) {
        if ((error = descriptor_list(json_object_get(doc, "manifests"), "manifests",
                                     &m->children, &m->nchildren, 0, false)) < 0)
            goto out;
        if (json_object_get(doc, "config") || json_object_get(doc, "layers")) {
            error = wh_error_set(WH_EINVALID, "an index has no config or layers");
            goto out;
        }
    } else {
        const char *cfg_digest, *cfg_type;
        if ((error = descriptor(json_object_get(doc, "config"), "config", &cfg_digest,
                                &cfg_type)) < 0)
            goto out;
        if ((error = descriptor_list(json_object_get(doc, "layers"), "layers", &m->blobs,
                                     &m->nblobs, 1, true)) < 0)
            goto out;
        m->blobs[0] = cfg_digest;
        m->artifact_type = cfg_type;
        if (json_object_get(doc, "manifests")) {
            error = wh_error_set(WH_EINVALID, "an image manifest has no manifests list");
            goto out;
        }
    }
    const json_t *at = json_object_get(doc, "artifactType");
    if (at) {
        if (!json_is_string(at) || json_string_length(at) == 0) {
            error = wh_error_set(WH_EINVALID, "artifactType must be a non-empty string");
            goto out;
        }
        m->artifact_type = json_string_value(at);
    }
    const json_t *subject = json_object_get(doc, "subject");
    if (subject && (error = descriptor(subject, "subject", &m->subject, NULL)) < 0)
        goto out;
    const json_t *ann = json_object_get(doc, "annotations");
    if (ann) {
        const char *k;
        json_t *v;
        if (!json_is_object(ann)) {
            error = wh_error_set(WH_EINVALID, "annotations must be an object");
            goto out;
        }
        json_object_foreach((json_t *)(uintptr_t)ann, k, v)
        {
            if (!json_is_string(v)) {
                error = wh_error_set(WH_EINVALID, "annotation %s is not a string", k);
                goto out;
            }
        }
        m->annotations = json_dumps(ann, JSON_COMPACT | JSON_SORT_KEYS);
    }
    *out = m;
    m = NULL;
    doc = NULL;
out:
    if (m) {
        m->doc = NULL;
        wh_manifest_free(m);
    }
    json_decref(doc);
    return error;
}

void wh_manifest_free(struct wh_manifest *m)
{
    if (!m)
        return;
    free(m->blobs);
    free(m->children);
    free(m->annotations);
    json_decref(m->doc);
    free(m);
}
