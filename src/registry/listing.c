/*
 * listing.c: content discovery (spec.md, "Content discovery"): tags list and
 * catalog with ?n=&last= pagination and a Link header to the next page, and
 * the referrers API, which answers an OCI index of the manifests whose
 * subject is the given digest (filtered by ?artifactType=).
 */
#include "registry/registry_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_MAX 10000 /* the largest page served; more follows through Link */

int page_size(wh_req *r, int64_t dflt, int64_t *out)
{
    const char *n = wh_req_query(r, "n");
    uint64_t v;
    if (!n || !*n) {
        *out = dflt;
        return 0;
    }
    if (wh_parse_u64(&v, n, strlen(n)) < 0)
        return oci_error(r, E_PAGINATION_INVALID, NULL);
    *out = v > PAGE_MAX ? PAGE_MAX : (int64_t)v;
    return 0;
}

struct list_ctx {
    json_t *arr;
    const char *last; /* last name appended (borrowed from arr) */
};

static int add_name(const char *name, void *payload)
{
    struct list_ctx *l = payload;
    json_t *s = json_string(name);
    json_array_append_new(l->arr, s);
    l->last = json_string_value(s);
    return 0;
}

/* Sends `obj` as JSON, with a Link to the next page when `more`. */
static void send_page(wh_req *r, json_t *obj, const char *base, int64_t n, bool more,
                      const char *last)
{
    if (more && last) {
        wh_pool *p = wh_req_pool(r);
        wh_resp_header(r, "Link",
                       wh_pool_sprintf(p, "<%s?n=%" PRId64 "&last=%s>; rel=\"next\"", base, n,
                                       wh_http_query_escape(p, last)));
    }
    char *text = json_dumps(obj, JSON_COMPACT);
    wh_resp_send_copy(r, 200, "application/json", text, strlen(text));
    free(text);
}

int handle_tags(wh_registry *reg, wh_req *r, struct target *t)
{
    struct wh_repo repo;
    int64_t n;
    bool more = false;
    int error;

    if (page_size(r, PAGE_MAX, &n) < 0)
        return -1;
    error = wh_db_repo_get(reg->db, t->name, &repo);
    if (error == WH_ENOTFOUND)
        return oci_error(r, E_NAME_UNKNOWN, NULL);
    if (error < 0)
        return oci_error(r, E_INTERNAL, NULL);
    json_t *obj = json_pack("{s:s,s:[]}", "name", t->name, "tags");
    struct list_ctx l = {json_object_get(obj, "tags"), NULL};
    if (n > 0)
        error = wh_db_tag_list(reg->db, t->name, wh_req_query(r, "last"), n, add_name, &l, &more);
    if (error < 0) {
        json_decref(obj);
        return oci_error(r, E_INTERNAL, NULL);
    }
    send_page(r, obj, wh_pool_sprintf(wh_req_pool(r), "/v2/%s/tags/list", t->name), n, more,
              l.last);
    json_decref(obj);
    return 0;
}

int handle_catalog(wh_registry *reg, wh_req *r)
{
    int64_t n;
    bool more = false;
    int error = 0;
    if (page_size(r, PAGE_MAX, &n) < 0)
        return -1;
    json_t *obj = json_pack("{s:[]}", "repositories");
    struct list_ctx l = {json_object_get(obj, "repositories"), NULL};
    if (n > 0)
        error = wh_db_repo_list(reg->db, wh_req_query(r, "last"), n, add_name, &l, &more);
    if (error < 0) {
        json_decref(obj);
        return oci_error(r, E_INTERNAL, NULL);
    }
    send_page(r, obj, "/v2/_catalog", n, more, l.last);
    json_decref(obj);
    return 0;
}

static int add_referrer(const struct wh_referrer *ref, void *payload)
{
    json_t *arr = payload;
    json_t *d = json_pack("{s:s,s:s,s:I}", "mediaType", ref->media_type, "digest", ref->digest,
                          "size", (json_int_t)ref->size);
    if (ref->artifact_type)
        json_object_set_new(d, "artifactType", json_string(ref->artifact_type));
    if (ref->annotations) {
        json_t *ann = json_loads(ref->annotations, 0, NULL);
        if (ann)
            json_object_set_new(d, "annotations", ann);
    }
    json_array_append_new(arr, d);
    return 0;
}

int handle_referrers(wh_registry *reg, wh_req *r, struct target *t)
{
    struct wh_digest d;
    if (wh_digest_parse(&d, t->ref, strlen(t->ref)) < 0)
        return oci_error(r, E_DIGEST_INVALID, "invalid digest");
    const char *type = wh_req_query(r, "artifactType");
    if (type && !*type)
        type = NULL;
    json_t *idx = json_pack("{s:i,s:s,s:[]}", "schemaVersion", 2, "mediaType", WH_MT_OCI_INDEX,
                            "manifests");
    if (wh_db_referrers(reg->db, t->name, d.str, type, add_referrer,
                        json_object_get(idx, "manifests")) < 0) {
        json_decref(idx);
        return oci_error(r, E_INTERNAL, NULL);
    }
    if (type)
        wh_resp_header(r, "OCI-Filters-Applied", "artifactType");
    char *text = json_dumps(idx, JSON_COMPACT);
    wh_resp_send_copy(r, 200, WH_MT_OCI_INDEX, text, strlen(text));
    free(text);
    json_decref(idx);
    return 0;
}
