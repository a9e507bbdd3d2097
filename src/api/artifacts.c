/*
 * artifacts.c: artifacts of a repository (or of a whole project) and their
 * tags — list with `q` (digest, tags, media_type, base), `sort`, `with_tag`,
 * `with_label`; get by digest or tag; delete (412 when an index still lists
 * it); tags list, create and delete. Objects follow Harbor's Artifact and
 * Tag shapes; `extra_attrs` (the image config's fields) and `references` (an
 * index's manifest list) come from the summary recorded at push time
 * (registry/summary.c), never from the blob store;
 * `addition_links` from additions.c, `labels` from labels.c.
 */
#include "api/api_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry.h"

#define BLOB_READ_MAX (4u << 20) /* manifests and image configs read for a view */

bool api_is_index(const char *mt)
{
    return strcmp(mt, WH_MT_OCI_INDEX) == 0 || strcmp(mt, WH_MT_DOCKER_LIST) == 0;
}

static const char *artifact_kind(const struct wh_artifact_info *a)
{
    const char *t = a->artifact_type;
    if (api_is_index(a->media_type))
        return "IMAGE";
    if (strcmp(t, "application/vnd.oci.image.config.v1+json") == 0 ||
        strcmp(t, "application/vnd.docker.container.image.v1+json") == 0)
        return "IMAGE";
    if (strcmp(t, "application/vnd.cncf.helm.config.v1+json") == 0)
        return "CHART";
    if (strncmp(t, "application/vnd.cnab", 20) == 0)
        return "CNAB";
    if (strncmp(t, "application/vnd.wasm", 20) == 0)
        return "WASM";
    return "UNKNOWN";
}

json_t *api_read_json(struct call *c, const char *digest)
{
    struct wh_digest d;
    struct wh_buf b;
    json_t *doc = NULL;
    if (wh_digest_parse(&d, digest, strlen(digest)) < 0)
        return NULL;
    wh_buf_init(&b, BLOB_READ_MAX);
    if (wh_store_read_blob(c->api->store, &d, &b) == 0 && b.data)
        doc = json_loadb(b.data, b.len, 0, NULL);
    wh_buf_dispose(&b);
    return doc;
}

/* An index's `references` from its recorded children (wh_manifest_summary). */
static json_t *references(struct call *c, const struct wh_artifact_info *a, json_t *children)
{
    json_t *refs = json_array();
    size_t i;
    json_t *m;
    struct wh_artifact_info *child = wh_malloc(sizeof(*child));
    json_array_foreach(children, i, m) {
        const char *dg = json_string_value(json_object_get(m, "digest"));
        if (!dg)
            continue;
        json_t *ref = json_object();
        json_object_set_new(ref, "parent_id", json_integer(a->id));
        if (wh_db_artifact_get(c->api->db, a->repo_id, dg, true, child) == 0) {
            json_object_set_new(ref, "child_id", json_integer(child->id));
            wh_artifact_info_dispose(child);
        }
        json_object_set_new(ref, "child_digest", json_string(dg));
        json_t *v;
        if ((v = json_object_get(m, "platform")))
            json_object_set(ref, "platform", v);
        if ((v = json_object_get(m, "annotations")))
            json_object_set(ref, "annotations", v);
        if ((v = json_object_get(m, "urls")))
            json_object_set(ref, "urls", v);
        json_array_append_new(refs, ref);
    }
    free(child);
    return refs;
}

/*
 * The manifest's summary (extra_attrs, children) from the database, where
 * the push put it. A manifest pushed before the summaries existed is
 * summarised from its blobs on its first view, once. NULLs when the blobs
 * are gone as well.
 */
static void summary(struct call *c, const struct wh_artifact_info *a, json_t **extra,
                    json_t **children)
{
    char *e = NULL, *r = NULL;
    int error = wh_db_manifest_summary_get(c->api->db, a->digest, &e, &r);
    if (error == WH_ENOTFOUND &&
        wh_registry_summarize(c->api->db, c->api->store, a->digest, NULL, 0) == 0)
        error = wh_db_manifest_summary_get(c->api->db, a->digest, &e, &r);
    *extra = error == 0 ? json_loads(e, 0, NULL) : NULL;
    *children = error == 0 ? json_loads(r, 0, NULL) : NULL;
    free(e);
    free(r);
}

static json_t *tag_view(struct call *c, const struct wh_tag_info *t)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(t->id));
    json_object_set_new(o, "repository_id", json_integer(t->repo_id));
    json_object_set_new(o, "artifact_id", json_integer(t->artifact_id));
    json_object_set_new(o, "name", json_string(t->name));
    json_object_set_new(o, "push_time", json_string(api_time(c, t->push_ms)));
    json_object_set_new(o, "pull_time", json_string(api_pull_time(c, t->pull_ms)));
    json_object_set_new(o, "immutable", json_false());
    return o;
}

static int add_tag(const struct wh_tag_info *t, void *payload)
{
    void **p = payload;
    json_array_append_new(p[1], tag_view(p[0], t));
    return 0;
}

static json_t *artifact_view(struct call *c, const struct wh_artifact_info *a, bool with_tag,
                             bool with_label, bool with_scan)
{
    json_t *o = json_object();
    bool idx = api_is_index(a->media_type);
    json_object_set_new(o, "id", json_integer(a->id));
    json_object_set_new(o, "type", json_string(artifact_kind(a)));
    json_object_set_new(o, "media_type",
                        json_string(!idx && a->artifact_type[0] ? a->artifact_type : a->media_type));
    json_object_set_new(o, "manifest_media_type", json_string(a->media_type));
    if (a->artifact_type[0])
        json_object_set_new(o, "artifact_type", json_string(a->artifact_type));
    json_object_set_new(o, "project_id", json_integer(a->project_id));
    json_object_set_new(o, "repository_id", json_integer(a->repo_id));
    json_object_set_new(o, "repository_name", json_string(a->repo_name));
    json_object_set_new(o, "digest", json_string(a->digest));
    json_object_set_new(o, "size", json_integer((json_int_t)a->size));
    json_object_set_new(o, "icon", json_string(""));
    json_object_set_new(o, "push_time", json_string(api_time(c, a->push_ms)));
    json_object_set_new(o, "pull_time", json_string(api_pull_time(c, a->pull_ms)));
    json_t *ann = a->annotations && a->annotations[0] ? json_loads(a->annotations, 0, NULL) : NULL;
    json_object_set_new(o, "annotations", ann ? ann : json_null());
    json_t *extra = NULL, *children = NULL;
    summary(c, a, &extra, &children);
    json_object_set_new(o, "extra_attrs", extra && !idx ? json_incref(extra) : json_object());
    json_object_set_new(o, "references", idx && children ? references(c, a, children)
                                                         : json_array());
    json_decref(extra);
    json_decref(children);
    if (with_tag) {
        json_t *tags = json_array();
        void *p[2] = {c, tags};
        wh_db_tag_page(c->api->db, a->id, NULL, NULL, 0, 1000, add_tag, p, NULL);
        json_object_set_new(o, "tags", tags);
    }
    /* Harbor fills labels only when asked (with_label), else null */
    json_object_set_new(o, "labels", with_label ? api_artifact_labels_view(c, a->id) : json_null());
    json_object_set_new(o, "addition_links", api_addition_links(c, a));
    json_t *overview = with_scan ? api_scan_overview(c, a) : NULL;
    if (overview)
        json_object_set_new(o, "scan_overview", overview);
    return o;
}

/* ---- accessories (with_accessory): what signs or describes an artifact ---- */

struct accessories {
    struct call *c;
    const struct wh_artifact_info *subject;
    json_t *arr;
};

/* Harbor's accessory type of an artifact type. */
static const char *accessory_type(const char *artifact_type)
{
    if (!artifact_type)
        return "subject.accessory";
    if (strcmp(artifact_type, "application/vnd.dev.cosign.artifact.sig.v1+json") == 0)
        return "signature.cosign";
    if (strcmp(artifact_type, "application/vnd.cncf.notary.signature") == 0)
        return "signature.notation";
    if (strstr(artifact_type, "sbom") || strstr(artifact_type, "spdx") ||
        strstr(artifact_type, "cyclonedx"))
        return "harbor.sbom";
    return "subject.accessory";
}

static void add_accessory(struct accessories *x, const char *digest, const char *type)
{
    struct wh_artifact_info *acc = wh_pool_alloc(x->c->pool, sizeof(*acc));
    if (wh_db_artifact_get(x->c->api->db, x->subject->repo_id, digest, true, acc) < 0)
        return; /* gone meanwhile */
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(acc->id));
    json_object_set_new(o, "artifact_id", json_integer(acc->id));
    json_object_set_new(o, "subject_artifact_id", json_integer(x->subject->id));
    json_object_set_new(o, "subject_artifact_digest", json_string(x->subject->digest));
    json_object_set_new(o, "subject_artifact_repo", json_string(x->subject->repo_name));
    json_object_set_new(o, "digest", json_string(acc->digest));
    json_object_set_new(o, "size", json_integer((json_int_t)acc->size));
    json_object_set_new(o, "type", json_string(type));
    json_object_set_new(o, "icon", json_string(""));
    json_object_set_new(o, "creation_time", json_string(api_time(x->c, acc->push_ms)));
    json_array_append_new(x->arr, o);
    wh_artifact_info_dispose(acc);
}

static int add_referrer(const struct wh_referrer *r, void *payload)
{
    add_accessory(payload, r->digest, accessory_type(r->artifact_type));
    return 0;
}

/*
 * Sets "accessories" of `o`: the artifacts of the repository whose subject is
 * `a`, and the signature cosign tags "sha256-<hex>.sig" (its form without a
 * subject), as Harbor lists them.
 */
static void set_accessories(struct call *c, json_t *o, const struct wh_artifact_info *a)
{
    struct accessories x = {c, a, json_array()};
    wh_db_referrers(c->api->db, a->repo_name, a->digest, NULL, add_referrer, &x);
    const char *colon = strchr(a->digest, ':');
    if (colon && strncmp(a->digest, "sha256:", 7) == 0) {
        char tag[WH_DIGEST_STR_MAX + 16];
        struct wh_artifact_info *sig = wh_pool_alloc(c->pool, sizeof(*sig));
        snprintf(tag, sizeof(tag), "sha256-%s.sig", colon + 1);
        if (wh_db_artifact_get(c->api->db, a->repo_id, tag, false, sig) == 0) {
            bool listed = false;
            for (size_t i = 0; i < json_array_size(x.arr); i++) {
                const char *d = json_string_value(json_object_get(json_array_get(x.arr, i), "digest"));
                listed |= d && strcmp(d, sig->digest) == 0;
            }
            if (!listed)
                add_accessory(&x, sig->digest, "signature.cosign");
            wh_artifact_info_dispose(sig);
        }
    }
    json_object_set_new(o, "accessories", x.arr);
}

/* ---- loading the route's repository and artifact ---- */

static int load_repo(struct call *c, struct wh_repo_info *out)
{
    const char *name = api_repo_name(c, c->param[1]);
    int error = wh_db_repo_info(c->api->db, name, out);
    if (error == WH_ENOTFOUND)
        return api_error(c, 404, "NOT_FOUND",
                         wh_pool_sprintf(c->pool, "repository %s not found", name));
    return error < 0 ? api_fail(c, error) : 0;
}

static bool ref_is_digest(const char *ref)
{
    return strchr(ref, ':') != NULL;
}

static void artifact_dispose(void *a)
{
    wh_artifact_info_dispose(a);
}

int api_load_artifact(struct call *c, struct wh_repo_info *ri, struct wh_artifact_info *out)
{
    if (load_repo(c, ri) < 0)
        return -1;
    const char *ref = c->param[2];
    if (ref_is_digest(ref)) {
        struct wh_digest d;
        if (wh_digest_parse(&d, ref, strlen(ref)) < 0)
            return api_error(c, 400, "BAD_REQUEST",
                             wh_pool_sprintf(c->pool, "invalid digest: %s", ref));
    }
    int error = wh_db_artifact_get(c->api->db, ri->id, ref, ref_is_digest(ref), out);
    if (error == 0) /* the struct lives as long as the request */
        wh_pool_cleanup(c->pool, artifact_dispose, out);
    if (error == WH_ENOTFOUND)
        return api_error(c, 404, "NOT_FOUND",
                         wh_pool_sprintf(c->pool, "artifact %s@%s not found", ri->name, ref));
    return error < 0 ? api_fail(c, error) : 0;
}

/* ---- list ---- */

struct list_ctx {
    struct call *c;
    json_t *arr;
    bool with_tag, with_label, with_scan, with_accessory;
};

static int add_artifact(const struct wh_artifact_info *a, void *payload)
{
    struct list_ctx *l = payload;
    json_t *o = artifact_view(l->c, a, l->with_tag, l->with_label, l->with_scan);
    if (l->with_accessory)
        set_accessories(l->c, o, a);
    json_array_append_new(l->arr, o);
    return 0;
}

static int list(struct call *c, int64_t repo_id, int64_t project_id)
{
    static const char *const sorts[] = {"push_time", "pull_time", "size", "id", NULL};
    struct wh_artifact_filter f = {.repo_id = repo_id, .project_id = project_id, .tagged = -1};
    int64_t offset, limit, total = 0;
    if (api_page(c, &offset, &limit) < 0)
        return -1;
    f.digest = api_q(c, "digest", NULL);
    f.media_type = api_q(c, "media_type", NULL);
    const char *tags = api_q(c, "tags", NULL);
    if (tags && strcmp(tags, "*") == 0)
        f.tagged = 1;
    else if (tags && strcmp(tags, "nil") == 0)
        f.tagged = 0;
    else
        f.tag = tags;
    /* Harbor lists an index once, not its children as artifacts of their own
     * (untagged ones); q=base=* lists every artifact. */
    const char *base = api_q(c, "base", NULL);
    if (base && strcmp(base, "*") != 0)
        return api_error(c, 400, "BAD_REQUEST",
                         "the value of \"base\" query can only be exact match value with \"*\"");
    f.all = base != NULL;
    if (!wh_req_query(c->r, "sort")) {
        f.sort = 0;
        f.desc = true; /* newest first */
    } else if ((f.sort = api_sort(c, sorts, 0, &f.desc)) < 0) {
        return api_error(c, 400, "BAD_REQUEST", "unsupported sort key");
    }
    struct list_ctx l = {c, json_array(), api_bool_query(c, "with_tag", true),
                         api_bool_query(c, "with_label", false),
                         api_bool_query(c, "with_scan_overview", false),
                         api_bool_query(c, "with_accessory", false)};
    int error = wh_db_artifact_list(c->api->db, &f, offset, limit, add_artifact, &l, &total);
    if (error < 0) {
        json_decref(l.arr);
        return api_fail(c, error);
    }
    return api_list(c, l.arr, total, offset, limit);
}

int api_artifacts_list(struct call *c)
{
    struct wh_repo_info *ri = wh_pool_alloc(c->pool, sizeof(*ri));
    if (load_repo(c, ri) < 0)
        return -1;
    return list(c, ri->id, 0);
}

int api_project_artifacts(struct call *c)
{
    return list(c, 0, c->proj->p.id);
}

int api_artifact_get(struct call *c)
{
    struct wh_repo_info *ri = wh_pool_alloc(c->pool, sizeof(*ri));
    struct wh_artifact_info *a = wh_pool_alloc(c->pool, sizeof(*a));
    if (api_load_artifact(c, ri, a) < 0)
        return -1;
    json_t *o = artifact_view(c, a, api_bool_query(c, "with_tag", true),
                              api_bool_query(c, "with_label", false),
                              api_bool_query(c, "with_scan_overview", false));
    if (api_bool_query(c, "with_accessory", false))
        set_accessories(c, o, a);
    return api_json(c, 200, o);
}

int api_artifact_delete(struct call *c)
{
    struct wh_repo_info *ri = wh_pool_alloc(c->pool, sizeof(*ri));
    struct wh_artifact_info *a = wh_pool_alloc(c->pool, sizeof(*a));
    if (api_load_artifact(c, ri, a) < 0)
        return -1;
    /* an index's child is refused in the transaction that deletes (as on /v2/) */
    int error = wh_db_manifest_delete(c->api->db, ri->name, a->digest);
    const char *res = wh_pool_sprintf(c->pool, "%s@%s", ri->name, a->digest);
    api_audit(c, ri->project_id, res, "artifact", "delete", error == 0);
    if (error == WH_ECONFLICT)
        return api_error(c, 412, "VIOLATE_FOREIGN_KEY_CONSTRAINT",
                         "the deleting artifact is referenced by others");
    if (error < 0)
        return api_fail(c, error);
    return api_ok(c, 200);
}

/* ---- tags ---- */

int api_tags_list(struct call *c)
{
    struct wh_repo_info *ri = wh_pool_alloc(c->pool, sizeof(*ri));
    struct wh_artifact_info *a = wh_pool_alloc(c->pool, sizeof(*a));
    int64_t offset, limit, total = 0;
    bool fuzzy;
    if (api_load_artifact(c, ri, a) < 0 || api_page(c, &offset, &limit) < 0)
        return -1;
    const char *name = api_q(c, "name", &fuzzy);
    json_t *arr = json_array();
    void *p[2] = {c, arr};
    int error = wh_db_tag_page(c->api->db, a->id, fuzzy ? NULL : name, fuzzy ? name : NULL,
                               offset, limit, add_tag, p, &total);
    if (error < 0) {
        json_decref(arr);
        return api_fail(c, error);
    }
    return api_list(c, arr, total, offset, limit);
}

int api_tag_create(struct call *c)
{
    struct wh_repo_info *ri = wh_pool_alloc(c->pool, sizeof(*ri));
    struct wh_artifact_info *a = wh_pool_alloc(c->pool, sizeof(*a));
    json_t *b = api_body(c);
    if (!b || api_load_artifact(c, ri, a) < 0)
        return -1;
    const char *name = json_string_value(json_object_get(b, "name"));
    if (!name || !wh_ref_tag_valid(name, strlen(name)))
        return api_error(c, 400, "BAD_REQUEST",
                         wh_pool_sprintf(c->pool, "invalid tag name: '%s'", name ? name : ""));
    int error = wh_db_tag_create(c->api->db, ri->id, a->id, name);
    const char *res = wh_pool_sprintf(c->pool, "%s:%s", ri->name, name);
    api_audit(c, ri->project_id, res, "tag", "create", error == 0);
    if (error == WH_EEXISTS)
        return api_error(c, 409, "CONFLICT",
                         wh_pool_sprintf(c->pool, "the tag %s already exists", name));
    if (error < 0)
        return api_fail(c, error);
    wh_resp_header(c->r, "Location",
                   wh_pool_sprintf(c->pool, "%s/%s", wh_req_path(c->r), name));
    return api_ok(c, 201);
}

int api_tag_get(struct call *c)
{
    struct wh_repo_info *ri = wh_pool_alloc(c->pool, sizeof(*ri));
    struct wh_artifact_info *a = wh_pool_alloc(c->pool, sizeof(*a));
    if (api_load_artifact(c, ri, a) < 0)
        return -1;
    const char *name = c->param[3];
    json_t *arr = json_array();
    void *p[2] = {c, arr};
    int64_t total = 0;
    int error = wh_db_tag_page(c->api->db, a->id, name, NULL, 0, 1, add_tag, p, &total);
    if (error < 0 || json_array_size(arr) == 0) {
        json_decref(arr);
        if (error < 0)
            return api_fail(c, error);
        return api_error(c, 404, "NOT_FOUND",
                         wh_pool_sprintf(c->pool, "tag %s not found on artifact", name));
    }
    json_t *tag = json_incref(json_array_get(arr, 0));
    json_decref(arr);
    return api_json(c, 200, tag);
}

int api_tag_delete(struct call *c)
{
    struct wh_repo_info *ri = wh_pool_alloc(c->pool, sizeof(*ri));
    struct wh_artifact_info *a = wh_pool_alloc(c->pool, sizeof(*a));
    if (api_load_artifact(c, ri, a) < 0)
        return -1;
    const char *name = c->param[3];
    int64_t total = 0;
    int error = wh_db_tag_page(c->api->db, a->id, name, NULL, 0, 0, add_tag, NULL, &total);
    if (error < 0)
        return api_fail(c, error);
    if (total == 0)
        return api_error(c, 404, "NOT_FOUND",
                         wh_pool_sprintf(c->pool, "tag %s not found on artifact", name));
    error = wh_db_tag_delete(c->api->db, ri->name, name);
    api_audit(c, ri->project_id, wh_pool_sprintf(c->pool, "%s:%s", ri->name, name), "tag",
              "delete", error == 0);
    if (error < 0)
        return api_fail(c, error);
    return api_ok(c, 200);
}
