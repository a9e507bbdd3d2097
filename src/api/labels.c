/*
 * labels.c: Harbor's labels — /labels, global (scope
 * "g") or of one project (scope "p"), and putting them on artifacts
 * (POST/DELETE .../artifacts/{reference}/labels). Permissions follow
 * Harbor's handler: global labels are created, read, changed and deleted by
 * administrators only, yet anyone may list them; project labels follow the
 * project's roles (label and artifact-label in the role matrix). A label of
 * another project is not visible on an artifact: it answers 404.
 */
#include "api/api_int.h"

#include <inttypes.h>
#include <string.h>

static json_t *label_view(struct call *c, const struct wh_label *l)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(l->id));
    json_object_set_new(o, "name", json_string(l->name));
    json_object_set_new(o, "description", json_string(l->description));
    json_object_set_new(o, "color", json_string(l->color));
    json_object_set_new(o, "scope", json_string(l->scope));
    json_object_set_new(o, "project_id", json_integer(l->project_id));
    json_object_set_new(o, "creation_time", json_string(api_time(c, l->created_ms)));
    json_object_set_new(o, "update_time", json_string(api_time(c, l->updated_ms)));
    return o;
}

struct list_ctx {
    struct call *c;
    json_t *arr;
};

static int add_label(const struct wh_label *l, void *payload)
{
    struct list_ctx *lc = payload;
    json_array_append_new(lc->arr, label_view(lc->c, l));
    return 0;
}

json_t *api_artifact_labels_view(struct call *c, int64_t artifact_id)
{
    struct list_ctx lc = {c, json_array()};
    if (wh_db_artifact_labels(c->api->db, artifact_id, add_label, &lc) < 0)
        wh_log_warn("labels of artifact %" PRId64 ": %s", artifact_id, wh_error_msg());
    return lc.arr;
}

/*
 * May the caller do `act` on label `l`? Global labels are a system resource
 * (administrators); a project label is the project's `label` resource.
 * Answers 401/403 (or 404 for a project that vanished) and returns < 0 if not.
 */
static int require_access(struct call *c, const struct wh_label *l, enum wh_rbac_act act)
{
    if (strcmp(l->scope, "g") == 0)
        return api_admin(c) ? 0 : api_forbidden(c);
    struct wh_project_info *p = wh_pool_alloc(c->pool, sizeof(*p));
    int error = wh_db_project_info(c->api->db, l->project_id, p);
    if (error < 0)
        return api_fail(c, error);
    if (!wh_acl_can(c->api->acl, &c->who, &p->p, WH_RBAC_RES_LABEL, act))
        return api_forbidden(c);
    return 0;
}

/* Loads the label of path parameter `i` or answers 400/404. */
static int load(struct call *c, int i, struct wh_label *out)
{
    int64_t id;
    if (api_id(c->param[i], &id) < 0)
        return api_error(c, 400, "BAD_REQUEST", "the label id must be a positive integer");
    int error = wh_db_label_get(c->api->db, id, out);
    return error < 0 ? api_fail(c, error) : 0;
}

/* Copies an optional string member of `b` into `dst` (cap bytes): 0, or an
 * answered 400 (< 0) when it is not a string or too long. */
static int body_string(struct call *c, json_t *b, const char *key, char *dst, size_t cap)
{
    json_t *v = json_object_get(b, key);
    if (!v || json_is_null(v)) {
        dst[0] = '\0';
        return 0;
    }
    if (!json_is_string(v))
        return api_error(c, 400, "BAD_REQUEST",
                         wh_pool_sprintf(c->pool, "%s must be a string", key));
    if (json_string_length(v) >= cap || strlen(json_string_value(v)) != json_string_length(v))
        return api_error(c, 400, "BAD_REQUEST",
                         wh_pool_sprintf(c->pool, "%s is too long (max %zu bytes) or holds a NUL",
                                         key, cap - 1));
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

/* name, description and color of a label body (Harbor's Label.Valid on the name). */
static int body_fields(struct call *c, json_t *b, struct wh_label *l)
{
    char name[WH_LABEL_NAME_MAX + 2];
    if (body_string(c, b, "name", name, sizeof(name)) < 0 ||
        body_string(c, b, "description", l->description, sizeof(l->description)) < 0 ||
        body_string(c, b, "color", l->color, sizeof(l->color)) < 0)
        return -1;
    if (!name[0])
        return api_error(c, 400, "BAD_REQUEST", "the label name cannot be empty");
    if (strlen(name) > WH_LABEL_NAME_MAX)
        return api_error(c, 400, "BAD_REQUEST", "the label name is too long: max length is 128");
    memcpy(l->name, name, strlen(name) + 1);
    return 0;
}

int api_labels_list(struct call *c)
{
    static const char *const sorts[] = {"id", "name", "creation_time", "update_time", NULL};
    struct wh_label_filter f = {0};
    int64_t offset, limit, total = 0;
    bool fuzzy;
    if (api_page(c, &offset, &limit) < 0)
        return -1;
    const char *scope = wh_req_query(c->r, "scope");
    if (!scope || (strcmp(scope, "g") != 0 && strcmp(scope, "p") != 0))
        return api_error(c, 400, "BAD_REQUEST",
                         wh_pool_sprintf(c->pool, "invalid scope: %.64s", scope ? scope : ""));
    f.scope = scope;
    if ((f.sort = api_sort(c, sorts, 0, &f.desc)) < 0)
        return api_error(c, 400, "BAD_REQUEST", "unsupported sort key");
    const char *name = wh_req_query(c->r, "name");
    const char *qname = api_q(c, "name", &fuzzy);
    if (name && *name)
        f.name_like = name;
    if (qname && fuzzy)
        f.name_like = qname;
    else if (qname)
        f.name = qname;
    if (*scope == 'p') {
        const char *pid = wh_req_query(c->r, "project_id");
        if (api_id(pid, &f.project_id) < 0)
            return api_error(c, 400, "BAD_REQUEST",
                             "must with project ID when to query project labels");
        struct wh_project_info *p = wh_pool_alloc(c->pool, sizeof(*p));
        int error = wh_db_project_info(c->api->db, f.project_id, p);
        if (error == WH_ENOTFOUND && !api_admin(c))
            return api_forbidden(c); /* as Harbor: no permission on what does not exist */
        if (error < 0 && error != WH_ENOTFOUND)
            return api_fail(c, error);
        if (error == 0 &&
            !wh_acl_can(c->api->acl, &c->who, &p->p, WH_RBAC_RES_LABEL, WH_RBAC_ACT_LIST))
            return api_forbidden(c);
    }
    struct list_ctx lc = {c, json_array()};
    int error = wh_db_label_list(c->api->db, &f, offset, limit, add_label, &lc, &total);
    if (error < 0) {
        json_decref(lc.arr);
        return api_fail(c, error);
    }
    return api_list(c, lc.arr, total, offset, limit);
}

int api_label_create(struct call *c)
{
    struct wh_label *l = wh_pool_alloc(c->pool, sizeof(*l));
    memset(l, 0, sizeof(*l));
    json_t *b = api_body(c);
    if (!b || body_fields(c, b, l) < 0)
        return -1;
    const char *scope = json_string_value(json_object_get(b, "scope"));
    if (!scope || (strcmp(scope, "g") != 0 && strcmp(scope, "p") != 0))
        return api_error(c, 400, "BAD_REQUEST",
                         wh_pool_sprintf(c->pool, "invalid scope: %.64s", scope ? scope : ""));
    l->scope[0] = scope[0];
    if (*scope == 'p') {
        json_t *pid = json_object_get(b, "project_id");
        if (!json_is_integer(pid) || json_integer_value(pid) <= 0)
            return api_error(c, 400, "BAD_REQUEST", "invalid project_id of a project label");
        l->project_id = (int64_t)json_integer_value(pid);
    }
    if (require_access(c, l, WH_RBAC_ACT_CREATE) < 0)
        return -1;
    int64_t id = 0;
    int error = wh_db_label_create(c->api->db, l, &id);
    api_audit(c, l->project_id, l->name, "label", "create", error == 0);
    if (error < 0)
        return api_fail(c, error);
    const char *path = wh_req_path(c->r);
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    wh_resp_header(c->r, "Location", wh_pool_sprintf(c->pool, "%.*s/%" PRId64, (int)n, path, id));
    return api_ok(c, 201);
}

int api_label_get(struct call *c)
{
    struct wh_label *l = wh_pool_alloc(c->pool, sizeof(*l));
    if (load(c, 0, l) < 0 || require_access(c, l, WH_RBAC_ACT_READ) < 0)
        return -1;
    return api_json(c, 200, label_view(c, l));
}

int api_label_update(struct call *c)
{
    struct wh_label *l = wh_pool_alloc(c->pool, sizeof(*l));
    json_t *b = api_body(c);
    if (!b || load(c, 0, l) < 0 || require_access(c, l, WH_RBAC_ACT_UPDATE) < 0)
        return -1;
    /* as Harbor: name, description and color are replaced as a whole */
    if (body_fields(c, b, l) < 0)
        return -1;
    int error = wh_db_label_update(c->api->db, l);
    api_audit(c, l->project_id, l->name, "label", "update", error == 0);
    if (error < 0)
        return api_fail(c, error);
    return api_ok(c, 200);
}

int api_label_delete(struct call *c)
{
    struct wh_label *l = wh_pool_alloc(c->pool, sizeof(*l));
    if (load(c, 0, l) < 0 || require_access(c, l, WH_RBAC_ACT_DELETE) < 0)
        return -1;
    int error = wh_db_label_delete(c->api->db, l->id);
    api_audit(c, l->project_id, l->name, "label", "delete", error == 0);
    if (error < 0)
        return api_fail(c, error);
    return api_ok(c, 200);
}

/* ---- labels on artifacts ---- */

int api_artifact_label_add(struct call *c)
{
    struct wh_repo_info *ri = wh_pool_alloc(c->pool, sizeof(*ri));
    struct wh_artifact_info *a = wh_pool_alloc(c->pool, sizeof(*a));
    struct wh_label *l = wh_pool_alloc(c->pool, sizeof(*l));
    json_t *b = api_body(c);
    if (!b)
        return -1;
    json_t *idv = json_object_get(b, "id");
    if (!json_is_integer(idv) || json_integer_value(idv) <= 0)
        return api_error(c, 400, "BAD_REQUEST", "the label id is required");
    int64_t id = (int64_t)json_integer_value(idv);
    if (api_load_artifact(c, ri, a) < 0)
        return -1;
    int error = wh_db_label_get(c->api->db, id, l);
    /* another project's label does not exist as far as this artifact goes */
    if (error == 0 && strcmp(l->scope, "p") == 0 && l->project_id != a->project_id)
        error = wh_error_set(WH_ENOTFOUND, "label %" PRId64 " not found", id);
    if (error == 0)
        error = wh_db_artifact_label_add(c->api->db, a->id, id);
    if (error < 0)
        return api_fail(c, error);
    return api_ok(c, 200);
}

int api_artifact_label_remove(struct call *c)
{
    struct wh_repo_info *ri = wh_pool_alloc(c->pool, sizeof(*ri));
    struct wh_artifact_info *a = wh_pool_alloc(c->pool, sizeof(*a));
    int64_t id;
    if (api_id(c->param[3], &id) < 0)
        return api_error(c, 400, "BAD_REQUEST", "the label id must be a positive integer");
    if (api_load_artifact(c, ri, a) < 0)
        return -1;
    int error = wh_db_artifact_label_remove(c->api->db, a->id, id);
    if (error < 0)
        return api_fail(c, error);
    return api_ok(c, 200);
}
