/*
 * projects.c: /projects — list (name/public/owner/q filters, visibility by
 * caller), HEAD by name, create (Harbor's name rules and messages; the
 * project and its creator's projectAdmin membership are one transaction;
 * robots need the system permission project:create), get, update (metadata,
 * CVE allowlist, storage limit), delete (412 while repositories remain), _deletable,
 * summary (member counts, quota) and the /metadatas/ sub-resource.
 * Metadata values are strings; "public" is the project's
 * public column, the other keys live in its metadata JSON.
 */
#include "api/api_int.h"

#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "registry/registry.h"

/* Metadata keys kept; booleans are normalised to "true"/"false". */
static const char *const bool_keys[] = {
    "enable_content_trust", "enable_content_trust_cosign", "prevent_vul", "auto_scan",
    "auto_sbom_generation", "reuse_sys_cve_allowlist", NULL,
};

static bool in_list(const char *const *list, const char *s)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

static bool truthy(const char *v)
{
    return strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0;
}

/* A metadata value as a string: strings as they are, booleans and numbers spelled out. */
static const char *meta_string(struct call *c, json_t *v)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_boolean(v))
        return json_is_true(v) ? "true" : "false";
    if (json_is_integer(v))
        return wh_pool_sprintf(c->pool, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return NULL;
}

/*
 * Validates `in` and merges it into `meta` (the stored keys) and `*public`.
 * Answers 400 itself and returns < 0 on a bad value.
 */
static int meta_merge(struct call *c, json_t *in, json_t *meta, bool *public)
{
    const char *k;
    json_t *v;
    json_object_foreach(in, k, v) {
        const char *s = meta_string(c, v);
        if (!s)
            return api_error(c, 400, "BAD_REQUEST",
                             wh_pool_sprintf(c->pool, "metadata.%s should be a string", k));
        if (strcmp(k, "public") == 0) {
            if (strcasecmp(s, "true") != 0 && strcasecmp(s, "false") != 0)
                return api_error(c, 400, "BAD_REQUEST",
                                 wh_pool_sprintf(c->pool,
                                                 "metadata.public should only be 'true' or "
                                                 "'false', but got: '%s'",
                                                 s));
            *public = truthy(s);
        } else if (in_list(bool_keys, k)) {
            json_object_set_new(meta, k, json_string(truthy(s) ? "true" : "false"));
        } else if (strcmp(k, "severity") == 0) {
            char low[16];
            if (wh_policy_severity_norm(low, sizeof(low), s) < 0)
                return api_error(c, 400, "BAD_REQUEST",
                                 wh_pool_sprintf(c->pool, "invalid severity: '%s'", s));
            json_object_set_new(meta, k, json_string(low));
        } else if (strcmp(k, "retention_id") == 0) {
            if (*s)
                return api_error(c, 400, "BAD_REQUEST",
                                 "the retention_id in the request's payload when creating a "
                                 "project should be omitted, alternatively passing an empty "
                                 "string");
        }
        /* proxy-cache keys and unknown keys are dropped, as Harbor does on
         * projects that are not proxy caches */
    }
    return 0;
}

/* Validates a CVE allowlist body into its stored text (policy/, malloc'ed). Answers 400 itself. */
static int allowlist_parse(struct call *c, json_t *in, char **out)
{
    char msg[256];
    if (wh_policy_allowlist_text(out, in, msg, sizeof(msg)) < 0)
        return api_error(c, 400, "BAD_REQUEST", wh_pool_strdup(c->pool, msg));
    return 0;
}

json_t *api_project_view(struct call *c, const struct wh_project_info *p)
{
    json_t *o = json_object();
    json_object_set_new(o, "project_id", json_integer(p->p.id));
    json_object_set_new(o, "owner_id", json_integer(p->owner_id));
    json_object_set_new(o, "name", json_string(p->p.name));
    json_object_set_new(o, "creation_time", json_string(api_time(c, p->p.created_ms)));
    json_object_set_new(o, "update_time", json_string(api_time(c, p->updated_ms)));
    json_object_set_new(o, "deleted", json_false());
    json_object_set_new(o, "owner_name", json_string(p->owner_name));
    int role = wh_acl_role(c->api->acl, &c->who, p->p.id);
    json_object_set_new(o, "current_user_role_id", json_integer(role));
    json_t *roles = json_array();
    if (role > 0)
        json_array_append_new(roles, json_integer(role));
    json_object_set_new(o, "current_user_role_ids", roles);
    json_object_set_new(o, "repo_count", json_integer(p->repo_count));
    json_t *meta = json_loads(p->metadata, 0, NULL);
    if (!json_is_object(meta)) {
        json_decref(meta);
        meta = json_object();
    }
    json_object_set_new(meta, "public", json_string(p->p.public ? "true" : "false"));
    json_object_set_new(o, "metadata", meta);
    json_t *al = json_loads(p->cve_allowlist, 0, NULL);
    if (!json_is_object(al)) {
        json_decref(al);
        al = json_object();
    }
    if (!json_is_array(json_object_get(al, "items")))
        json_object_set_new(al, "items", json_array());
    json_object_set_new(al, "project_id", json_integer(p->p.id));
    json_object_set_new(al, "creation_time", json_string(api_time(c, p->p.created_ms)));
    json_object_set_new(al, "update_time", json_string(api_time(c, p->updated_ms)));
    json_object_set_new(o, "cve_allowlist", al);
    json_object_set_new(o, "registry_id", json_integer(0));
    return o;
}

/* ---- list, head ---- */

struct list_ctx {
    struct call *c;
    json_t *arr;
};

static int add_project(const struct wh_project_info *p, void *payload)
{
    struct list_ctx *l = payload;
    json_array_append_new(l->arr, api_project_view(l->c, p));
    return 0;
}

int api_projects_list(struct call *c)
{
    static const char *const sorts[] = {"name", "creation_time", "project_id", "update_time",
                                        NULL};
    struct wh_project_filter f = {.public = -1};
    int64_t offset, limit, total = 0;
    bool fuzzy;
    if (api_page(c, &offset, &limit) < 0)
        return -1;
    const char *name = wh_req_query(c->r, "name");
    if (name && *name)
        f.name_like = name;
    const char *qn = api_q(c, "name", &fuzzy);
    if (qn) {
        if (fuzzy)
            f.name_like = qn;
        else
            f.name = qn;
    }
    const char *pub = wh_req_query(c->r, "public");
    const char *qp = api_q(c, "public", NULL);
    if (!pub || !*pub)
        pub = qp;
    if (pub && *pub)
        f.public = truthy(pub) ? 1 : 0;
    const char *owner = wh_req_query(c->r, "owner");
    f.owner = owner && *owner ? owner : api_q(c, "owner", NULL);
    f.sort = api_sort(c, sorts, 0, &f.desc);
    if (f.sort < 0)
        return api_error(c, 400, "BAD_REQUEST", "unsupported sort key");
    api_visibility_all(c, &f.visible_user, &f.visible_project, &f.visible_names);
    struct list_ctx l = {c, json_array()};
    int error = wh_db_project_list(c->api->db, &f, offset, limit, add_project, &l, &total);
    if (error < 0) {
        json_decref(l.arr);
        return api_fail(c, error);
    }
    return api_list(c, l.arr, total, offset, limit);
}

int api_projects_head(struct call *c)
{
    const char *name = wh_req_query(c->r, "project_name");
    if (!name || !*name)
        return api_error(c, 400, "BAD_REQUEST", "project_name is required");
    struct wh_project p;
    int error = wh_db_project_get(c->api->db, name, &p);
    if (error == WH_ENOTFOUND)
        return api_error(c, 404, "NOT_FOUND", wh_pool_sprintf(c->pool, "project %s not found", name));
    if (error < 0)
        return api_fail(c, error);
    return api_ok(c, 200);
}

/* ---- create ---- */

int api_project_create(struct call *c)
{
    json_t *b = api_body(c);
    if (!b)
        return -1;
    bool admin = c->who.kind == WH_PRINCIPAL_USER && c->who.sysadmin;
    if (c->who.kind == WH_PRINCIPAL_ROBOT) {
        int64_t user, project;
        api_visibility(c, &user, &project);
        if (project)
            return api_error(c, 403, "FORBIDDEN", "Only system level robot can create project");
        /* Harbor's rule: a robot creates projects with the system permission
         * project:create, and then as the administrators do (storage_limit) */
        if (!wh_acl_can(c->api->acl, &c->who, NULL, WH_RBAC_RES_PROJECT, WH_RBAC_ACT_CREATE))
            return api_error(c, 403, "FORBIDDEN",
                             "a robot needs the system permission project:create to create a "
                             "project");
        admin = true;
    }
    if (c->api->cfg.admin_only_creation && !admin)
        return api_error(c, 403, "FORBIDDEN", "Only system admin can create project");
    json_t *reg = json_object_get(b, "registry_id");
    if (json_is_integer(reg) && json_integer_value(reg) != 0) {
        if (!admin)
            return api_error(c, 403, "FORBIDDEN", "Only system admin can create proxy cache project");
        return api_error(c, 400, "BAD_REQUEST", "proxy cache projects are not supported");
    }
    const char *name = json_string_value(json_object_get(b, "project_name"));
    size_t nlen = name ? strlen(name) : 0;
    if (nlen < 1 || nlen > 255)
        return api_error(c, 400, "BAD_REQUEST",
                         wh_pool_sprintf(c->pool,
                                         "Project name %s is illegal in length. (greater than "
                                         "255 or less than 1)",
                                         name ? name : ""));
    if (!wh_ref_project_valid(name, nlen))
        return api_error(c, 400, "BAD_REQUEST",
                         "project name is not in lower case or contains illegal characters");

    struct wh_project_info *in = wh_pool_alloc(c->pool, sizeof(*in));
    memset(in, 0, sizeof(*in));
    snprintf(in->p.name, sizeof(in->p.name), "%s", name);
    in->p.public = json_is_true(json_object_get(b, "public"));
    in->storage_limit = -1;
    json_t *meta = json_object();
    json_t *min = json_object_get(b, "metadata");
    int error = 0;
    char *al = NULL;
    if (json_is_object(min) && meta_merge(c, min, meta, &in->p.public) < 0)
        goto answered;
    json_t *alin = json_object_get(b, "cve_allowlist");
    if (json_is_object(alin) && allowlist_parse(c, alin, &al) < 0)
        goto answered;
    json_t *lim = json_object_get(b, "storage_limit");
    if (json_is_integer(lim) && admin) {
        json_int_t v = json_integer_value(lim);
        if (v < -1 || v == 0) {
            api_error(c, 400, "BAD_REQUEST", "storage_limit must be -1 (unlimited) or positive");
            goto answered;
        }
        in->storage_limit = v;
    }
    char *mtext = json_dumps(meta, JSON_COMPACT);
    snprintf(in->metadata, sizeof(in->metadata), "%s", mtext ? mtext : "{}");
    free(mtext);
    if (al)
        snprintf(in->cve_allowlist, sizeof(in->cve_allowlist), "%s", al);
    /* a user owns what it creates; a robot's project is the first administrator's */
    assert(c->who.kind == WH_PRINCIPAL_USER ? c->who.id > 0 : c->who.kind == WH_PRINCIPAL_ROBOT);
    in->owner_id = c->who.kind == WH_PRINCIPAL_USER ? c->who.id : WH_OWNER_FIRST_ADMIN;
    int64_t id = 0;
    /* the project and its owner's membership: one transaction */
    error = wh_db_project_insert(c->api->db, in, &id);
    json_decref(meta);
    free(al);
    if (error < 0) {
        api_audit(c, 0, name, "project", "create", false);
        return api_fail(c, error);
    }
    api_audit(c, id, name, "project", "create", true);
    const char *loc_hdr = wh_req_header(c->r, "X-Resource-Name-In-Location");
    const char *loc =
        loc_hdr && strcasecmp(loc_hdr, "true") == 0
            ? wh_pool_sprintf(c->pool, API_PREFIX "/projects/%s", name)
            : wh_pool_sprintf(c->pool, API_PREFIX "/projects/%" PRId64, id);
    wh_resp_header(c->r, "Location", loc);
    return api_ok(c, 201);
answered:
    json_decref(meta);
    free(al);
    return -1;
}

/* ---- get, update, delete ---- */

int api_project_get(struct call *c)
{
    return api_json(c, 200, api_project_view(c, c->proj));
}

static int save(struct call *c, struct wh_project_info *p, json_t *meta)
{
    char *mtext = json_dumps(meta, JSON_COMPACT);
    snprintf(p->metadata, sizeof(p->metadata), "%s", mtext ? mtext : "{}");
    free(mtext);
    return wh_db_project_update(c->api->db, p);
}

static json_t *stored_meta(const struct wh_project_info *p)
{
    json_t *meta = json_loads(p->metadata, 0, NULL);
    if (!json_is_object(meta)) {
        json_decref(meta);
        meta = json_object();
    }
    return meta;
}

int api_project_update(struct call *c)
{
    json_t *b = api_body(c);
    if (!b)
        return -1;
    struct wh_project_info *p = c->proj;
    json_t *meta = stored_meta(p);
    char *al = NULL;
    int error;
    /* A top-level "public" is ignored: only metadata.public changes visibility. */
    json_t *min = json_object_get(b, "metadata");
    if (json_is_object(min) && meta_merge(c, min, meta, &p->p.public) < 0)
        goto answered;
    json_t *alin = json_object_get(b, "cve_allowlist");
    if (json_is_object(alin)) {
        if (allowlist_parse(c, alin, &al) < 0)
            goto answered;
        snprintf(p->cve_allowlist, sizeof(p->cve_allowlist), "%s", al);
    }
    json_t *lim = json_object_get(b, "storage_limit");
    if (json_is_integer(lim) && c->who.sysadmin) {
        json_int_t v = json_integer_value(lim);
        if (v < -1 || v == 0) {
            api_error(c, 400, "BAD_REQUEST", "storage_limit must be -1 (unlimited) or positive");
            goto answered;
        }
        p->storage_limit = v;
    }
    error = save(c, p, meta);
    json_decref(meta);
    free(al);
    api_audit(c, p->p.id, p->p.name, "project", "update", error == 0);
    if (error < 0)
        return api_fail(c, error);
    return api_ok(c, 200);
answered:
    json_decref(meta);
    free(al);
    return -1;
}

static const char not_empty[] = "the project contains repositories, can not be deleted";

int api_project_delete(struct call *c)
{
    int error = wh_db_project_delete(c->api->db, c->proj->p.id);
    api_audit(c, c->proj->p.id, c->proj->p.name, "project", "delete", error == 0);
    if (error == WH_ECONFLICT)
        return api_error(c, 412, "PRECONDITION",
                         wh_pool_sprintf(c->pool, "precondition failed: %s", not_empty));
    if (error < 0)
        return api_fail(c, error);
    return api_ok(c, 200);
}

int api_project_deletable(struct call *c)
{
    json_t *o = json_object();
    bool ok = c->proj->repo_count == 0;
    json_object_set_new(o, "deletable", json_boolean(ok));
    if (!ok)
        json_object_set_new(o, "message", json_string(not_empty));
    return api_json(c, 200, o);
}

int api_project_summary(struct call *c)
{
    struct wh_project_info *p = c->proj;
    json_t *o = json_object();
    json_object_set_new(o, "repo_count", json_integer(p->repo_count));
    int error;
    if (wh_acl_can(c->api->acl, &c->who, &p->p, WH_RBAC_RES_MEMBER, WH_RBAC_ACT_LIST)) {
        int64_t n[6];
        if ((error = wh_db_project_member_counts(c->api->db, p->p.id, n)) < 0) {
            json_decref(o);
            return api_fail(c, error);
        }
        json_object_set_new(o, "project_admin_count", json_integer(n[1]));
        json_object_set_new(o, "maintainer_count", json_integer(n[4]));
        json_object_set_new(o, "developer_count", json_integer(n[2]));
        json_object_set_new(o, "guest_count", json_integer(n[3]));
        json_object_set_new(o, "limited_guest_count", json_integer(n[5]));
    }
    if (wh_acl_can(c->api->acl, &c->who, &p->p, WH_RBAC_RES_QUOTA, WH_RBAC_ACT_READ)) {
        uint64_t used = 0;
        if ((error = wh_db_project_usage(c->api->db, p->p.id, &used)) < 0) {
            json_decref(o);
            return api_fail(c, error);
        }
        json_object_set_new(o, "quota",
                            json_pack("{s:{s:I},s:{s:I}}", "hard", "storage",
                                      (json_int_t)p->storage_limit, "used", "storage",
                                      (json_int_t)used));
    }
    return api_json(c, 200, o);
}

/* ---- /metadatas/ ---- */

static json_t *all_meta(struct call *c)
{
    json_t *meta = stored_meta(c->proj);
    json_object_set_new(meta, "public", json_string(c->proj->p.public ? "true" : "false"));
    return meta;
}

int api_project_metadata_list(struct call *c)
{
    return api_json(c, 200, all_meta(c));
}

int api_project_metadata_get(struct call *c)
{
    json_t *meta = all_meta(c);
    json_t *v = json_object_get(meta, c->param[1]);
    if (!v) {
        json_decref(meta);
        return api_error(c, 404, "NOT_FOUND",
                         wh_pool_sprintf(c->pool, "metadata %s not found", c->param[1]));
    }
    json_t *o = json_object();
    json_object_set(o, c->param[1], v);
    json_decref(meta);
    return api_json(c, 200, o);
}

static int meta_write(struct call *c, const char *only_key)
{
    json_t *b = api_body(c);
    if (!b)
        return -1;
    if (only_key && !json_object_get(b, only_key))
        return api_error(c, 400, "BAD_REQUEST",
                         wh_pool_sprintf(c->pool, "the body must carry the key %s", only_key));
    json_t *meta = stored_meta(c->proj);
    if (meta_merge(c, b, meta, &c->proj->p.public) < 0) {
        json_decref(meta);
        return -1;
    }
    int error = save(c, c->proj, meta);
    json_decref(meta);
    api_audit(c, c->proj->p.id, c->proj->p.name, "project", "update", error == 0);
    if (error < 0)
        return api_fail(c, error);
    return api_ok(c, 200);
}

int api_project_metadata_add(struct call *c)
{
    return meta_write(c, NULL);
}

int api_project_metadata_put(struct call *c)
{
    return meta_write(c, c->param[1]);
}

int api_project_metadata_delete(struct call *c)
{
    const char *k = c->param[1];
    json_t *meta = stored_meta(c->proj);
    if (strcmp(k, "public") == 0) {
        c->proj->p.public = false;
    } else if (!json_object_get(meta, k)) {
        json_decref(meta);
        return api_error(c, 404, "NOT_FOUND", wh_pool_sprintf(c->pool, "metadata %s not found", k));
    }
    json_object_del(meta, k);
    int error = save(c, c->proj, meta);
    json_decref(meta);
    api_audit(c, c->proj->p.id, c->proj->p.name, "project", "update", error == 0);
    if (error < 0)
        return api_fail(c, error);
    return api_ok(c, 200);
}

/* ---- /logs ---- */

struct log_ctx {
    struct call *c;
    json_t *arr;
};

static int add_log(const struct wh_audit *a, void *payload)
{
    struct log_ctx *l = payload;
    json_array_append_new(l->arr, api_audit_view(l->c, a));
    return 0;
}

int api_project_logs(struct call *c)
{
    int64_t offset, limit, total = 0;
    if (api_page(c, &offset, &limit) < 0)
        return -1;
    struct log_ctx l = {c, json_array()};
    int error = wh_db_audit_list(c->api->db, c->proj->p.id, api_q(c, "username", NULL),
                                 api_q(c, "operation", NULL), offset, limit, add_log, &l, &total);
    if (error < 0) {
        json_decref(l.arr);
        return api_fail(c, error);
    }
    return api_list(c, l.arr, total, offset, limit);
}
