/*
 * robots.c: /robots — robot accounts at project level (`robot$<project>+<name>`,
 * one project permission) or system level (`robot$<name>`). The secret is
 * generated (or taken from the body when it passes Harbor's policy), shown
 * once in the 201 answer and stored only as an argon2id hash; PATCH makes a
 * new one. Expiry is a duration in days (-1: never). Listing without `q`
 * shows system robots; `q=Level=project,ProjectID=<id>` a project's.
 * Nobody gives a robot permissions it lacks itself,
 * a robot cannot change or re-key a stronger robot, and a robot's level,
 * name and project never change.
 */
#include "api/api_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "registry/registry.h"

#define DEFAULT_DURATION_DAYS 30

static json_t *robot_view(struct call *c, const struct wh_robot *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(r->id));
    json_object_set_new(o, "name", json_string(r->name));
    json_object_set_new(o, "description", json_string(r->description));
    json_object_set_new(o, "level", json_string(r->level));
    json_object_set_new(o, "duration", json_integer(r->duration));
    json_object_set_new(o, "editable", json_true());
    json_object_set_new(o, "disable", json_boolean(r->disabled));
    json_object_set_new(o, "expires_at", json_integer(r->expires_at));
    json_t *perms = json_loads(r->permissions, 0, NULL);
    json_object_set_new(o, "permissions", json_is_array(perms) ? perms : json_array());
    if (perms && !json_is_array(perms))
        json_decref(perms);
    json_object_set_new(o, "creation_time", json_string(api_time(c, r->created_ms)));
    json_object_set_new(o, "update_time", json_string(api_time(c, r->updated_ms)));
    return o;
}

/* May the caller do `act` on robots of `project_id` (0: system robots)? */
static bool may(struct call *c, int64_t project_id, enum wh_rbac_act act)
{
    if (project_id == 0)
        return wh_acl_can(c->api->acl, &c->who, NULL, WH_RBAC_RES_ROBOT, act);
    struct wh_project_info *p = wh_pool_alloc(c->pool, sizeof(*p));
    if (wh_db_project_info(c->api->db, project_id, p) < 0)
        return false;
    return wh_acl_can(c->api->acl, &c->who, &p->p, WH_RBAC_RES_ROBOT, act);
}

static int64_t expiry(int64_t created_ms, int64_t days)
{
    return days < 0 ? -1 : created_ms / 1000 + days * 86400;
}

/* Validates duration (days): -1 never, else positive; 0/absent is the default. */
/* 400 for a description longer than what is stored (never stored cut short). */
static int description_too_long(struct call *c, const struct wh_robot *r)
{
    return api_error(c, 400, "BAD_REQUEST",
                     wh_pool_sprintf(c->pool, "description is too long (max %zu bytes)",
                                     sizeof(r->description) - 1));
}

static int parse_duration(struct call *c, json_t *b, int64_t *out)
{
    json_t *d = json_object_get(b, "duration");
    if (!d || json_is_null(d) || (json_is_integer(d) && json_integer_value(d) == 0)) {
        *out = DEFAULT_DURATION_DAYS;
        return 0;
    }
    if (!json_is_integer(d) || json_integer_value(d) < -1 || json_integer_value(d) > 36500)
        return api_error(c, 400, "BAD_REQUEST", "duration must be -1 (never expires) or 1..36500 days");
    *out = json_integer_value(d);
    return 0;
}

/* Hashes `secret` into r->secret. */
static int set_secret(struct call *c, struct wh_robot *r, const char *secret)
{
    int error = wh_auth_password_hash(r->secret, sizeof(r->secret), secret);
    return error < 0 ? api_fail(c, error) : 0;
}

/* 403 DENIED for permissions the caller cannot give; the reason is wh_error_msg(). */
static int scope_denied(struct call *c)
{
    const char *why = wh_pool_strdup(c->pool, wh_error_msg());
    if (c->who.kind == WH_PRINCIPAL_ROBOT)
        return api_error(c, 403, "DENIED",
                         wh_pool_sprintf(c->pool,
                                         "permission scope is invalid. It must be equal to or "
                                         "more restrictive than the creator robot's "
                                         "permissions: %s (%s)",
                                         c->who.name, why));
    return api_error(c, 403, "DENIED",
                     wh_pool_sprintf(c->pool, "permission scope is invalid: %s", why));
}

/*
 * Checks permissions `perms` (JSON text) for a robot of the level
 * (`system_robot`): first that they are well formed (400, or 404 for a
 * namespace that names no project), then that the caller holds all they
 * grant (403 DENIED): nobody gives a robot more than it has itself. Answers
 * itself and returns < 0 when refused.
 */
static int perms_check(struct call *c, const char *perms, bool system_robot)
{
    int error = wh_acl_robot_perms_check(c->api->acl, NULL, perms, system_robot);
    if (error == WH_ENOTFOUND)
        return api_error(c, 404, "NOT_FOUND", wh_error_msg());
    if (error < 0)
        return api_fail(c, error);
    error = wh_acl_robot_perms_check(c->api->acl, &c->who, perms, system_robot);
    if (error == WH_EDENIED)
        return scope_denied(c);
    return error < 0 ? api_fail(c, error) : 0;
}

/*
 * A robot acting on another robot (update, new secret) must hold all the
 * other holds: else robot:update would be a way to take over a stronger
 * robot. Users who may update robots are project administrators or system
 * administrators, who hold everything in their scope.
 */
static int holds_target(struct call *c, const struct wh_robot *r)
{
    if (c->who.kind != WH_PRINCIPAL_ROBOT || c->who.id == r->id)
        return 0;
    int error = wh_acl_robot_perms_check(c->api->acl, &c->who, r->permissions,
                                         strcmp(r->level, "system") == 0);
    if (error == WH_EDENIED || error == WH_EINVALID || error == WH_ENOTFOUND)
        return scope_denied(c);
    return error < 0 ? api_fail(c, error) : 0;
}

/* JSON text of `perms` into r->permissions; answers 400 when too large. */
static int perms_store(struct call *c, struct wh_robot *r, json_t *perms)
{
    char *ptext = json_dumps(perms, JSON_COMPACT);
    size_t plen = ptext ? strlen(ptext) : 0;
    if (!ptext || plen >= sizeof(r->permissions)) {
        free(ptext);
        return api_error(c, 400, "BAD_REQUEST", "permissions too large");
    }
    memcpy(r->permissions, ptext, plen + 1);
    free(ptext);
    return 0;
}

int api_robot_create(struct call *c)
{
    json_t *b = api_body(c);
    if (!b)
        return -1;
    const char *name = json_string_value(json_object_get(b, "name"));
    const char *level = json_string_value(json_object_get(b, "level"));
    json_t *perms = json_object_get(b, "permissions");
    struct wh_robot *r = wh_pool_alloc(c->pool, sizeof(*r));
    memset(r, 0, sizeof(*r));
    if (!name || !wh_ref_project_valid(name, strlen(name)))
        return api_error(c, 400, "BAD_REQUEST",
                         "robot name is not in lower case or contains illegal characters");
    if (!level || (strcmp(level, "system") != 0 && strcmp(level, "project") != 0))
        return api_error(c, 400, "BAD_REQUEST", "level must be 'system' or 'project'");
    if (!json_is_array(perms) || json_array_size(perms) == 0)
        return api_error(c, 400, "BAD_REQUEST", "permissions are required");
    if (strcmp(level, "project") == 0) {
        json_t *p0 = json_array_get(perms, 0);
        const char *ns = json_string_value(json_object_get(p0, "namespace"));
        const char *kind = json_string_value(json_object_get(p0, "kind"));
        if (json_array_size(perms) != 1 || !ns || !kind || strcmp(kind, "project") != 0)
            return api_error(c, 400, "BAD_REQUEST",
                             "a project level robot takes exactly one permission of kind "
                             "'project' naming its project");
        struct wh_project_info *p = wh_pool_alloc(c->pool, sizeof(*p));
        int error = wh_db_project_info_name(c->api->db, ns, p);
        if (error == WH_ENOTFOUND)
            return api_error(c, 404, "NOT_FOUND",
                             wh_pool_sprintf(c->pool, "project %s not found", ns));
        if (error < 0)
            return api_fail(c, error);
        if (!wh_acl_can(c->api->acl, &c->who, &p->p, WH_RBAC_RES_ROBOT, WH_RBAC_ACT_CREATE))
            return api_forbidden(c);
        r->project_id = p->p.id;
        snprintf(r->name, sizeof(r->name), ROBOT_PREFIX "%s+%s", ns, name);
    } else {
        if (!may(c, 0, WH_RBAC_ACT_CREATE))
            return api_forbidden(c);
        snprintf(r->name, sizeof(r->name), ROBOT_PREFIX "%s", name);
    }
    snprintf(r->level, sizeof(r->level), "%s", level);
    const char *desc = json_string_value(json_object_get(b, "description"));
    if (desc && strlen(desc) >= sizeof(r->description))
        return description_too_long(c, r);
    snprintf(r->description, sizeof(r->description), "%s", desc ? desc : "");
    r->disabled = json_is_true(json_object_get(b, "disable"));
    if (parse_duration(c, b, &r->duration) < 0)
        return -1;
    int64_t now = wh_now_ms();
    r->expires_at = expiry(now, r->duration);
    if (perms_store(c, r, perms) < 0 || perms_check(c, r->permissions, !r->project_id) < 0)
        return -1;

    char generated[WH_AUTH_SECRET_LEN + 1];
    const char *secret = json_string_value(json_object_get(b, "secret"));
    if (secret && *secret) {
        if (wh_auth_secret_policy(secret) < 0)
            return api_error(c, 400, "BAD_REQUEST", wh_error_msg());
    } else {
        wh_auth_secret_new(generated);
        secret = generated;
    }
    if (set_secret(c, r, secret) < 0)
        return -1;
    int64_t id = 0;
    int error = wh_db_robot_create(c->api->db, r, &id);
    api_audit(c, r->project_id, r->name, "robot", "create", error == 0);
    if (error == WH_EEXISTS)
        return api_error(c, 409, "CONFLICT",
                         wh_pool_sprintf(c->pool, "robot account %s already exists", r->name));
    if (error < 0)
        return api_fail(c, error);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(id));
    json_object_set_new(o, "name", json_string(r->name));
    json_object_set_new(o, "secret", json_string(secret));
    json_object_set_new(o, "creation_time", json_string(api_time(c, now)));
    json_object_set_new(o, "expires_at", json_integer(r->expires_at));
    wh_resp_header(c->r, "Location", wh_pool_sprintf(c->pool, API_PREFIX "/robots/%" PRId64, id));
    return api_json(c, 201, o);
}

struct list_ctx {
    struct call *c;
    json_t *arr;
};

static int add_robot(const struct wh_robot *r, void *payload)
{
    struct list_ctx *l = payload;
    json_array_append_new(l->arr, robot_view(l->c, r));
    return 0;
}

int api_robots_list(struct call *c)
{
    int64_t offset, limit, total = 0, project_id = 0;
    if (api_page(c, &offset, &limit) < 0)
        return -1;
    const char *lv = api_q(c, "Level", NULL);
    const char *pid = api_q(c, "ProjectID", NULL);
    if (lv && strcmp(lv, "project") == 0) {
        uint64_t v;
        if (!pid || wh_parse_u64(&v, pid, strlen(pid)) < 0 || v == 0 || v > INT64_MAX)
            return api_error(c, 400, "BAD_REQUEST", "ProjectID is required for project robots");
        project_id = (int64_t)v;
        struct wh_project_info *p = wh_pool_alloc(c->pool, sizeof(*p));
        int error = wh_db_project_info(c->api->db, project_id, p);
        if (error < 0)
            return api_fail(c, error);
    }
    if (!may(c, project_id, WH_RBAC_ACT_LIST))
        return api_forbidden(c);
    struct list_ctx l = {c, json_array()};
    int error = wh_db_robot_list(c->api->db, project_id, offset, limit, add_robot, &l, &total);
    if (error < 0) {
        json_decref(l.arr);
        return api_fail(c, error);
    }
    return api_list(c, l.arr, total, offset, limit);
}

/* Loads the route's robot and checks `act` on it. */
static int load(struct call *c, struct wh_robot *r, enum wh_rbac_act act)
{
    uint64_t id;
    const char *s = c->param[0];
    if (wh_parse_u64(&id, s, strlen(s)) < 0 || id > INT64_MAX)
        return api_error(c, 400, "BAD_REQUEST", "the robot id must be an integer");
    int error = wh_db_robot_get_id(c->api->db, (int64_t)id, r);
    if (error == WH_ENOTFOUND)
        return api_error(c, 404, "NOT_FOUND", wh_pool_sprintf(c->pool, "robot %s not found", s));
    if (error < 0)
        return api_fail(c, error);
    if (!may(c, r->project_id, act))
        return api_forbidden(c);
    return 0;
}

/* Whether `name` names robot `r`: its full name, or without the prefix (and project). */
static bool same_name(const struct wh_robot *r, const char *name)
{
    size_t np = strlen(ROBOT_PREFIX);
    const char *bare = strncmp(r->name, ROBOT_PREFIX, np) == 0 ? r->name + np : r->name;
    const char *plus = strchr(bare, '+');
    return strcmp(name, r->name) == 0 || strcmp(name, bare) == 0 ||
           (plus && strcmp(name, plus + 1) == 0);
}

/*
 * A project robot's new permissions: one entry naming its own project. A
 * different namespace is refused (Harbor: "cannot update the project id of
 * robot") rather than stored, which would leave the robot with nothing.
 */
static int project_perm_check(struct call *c, const struct wh_robot *r, json_t *perms)
{
    json_t *p0 = json_array_get(perms, 0);
    const char *ns = json_string_value(json_object_get(p0, "namespace"));
    const char *kind = json_string_value(json_object_get(p0, "kind"));
    if (json_array_size(perms) != 1 || !ns || !kind || strcmp(kind, "project") != 0)
        return api_error(c, 400, "BAD_REQUEST",
                         "a project level robot takes exactly one permission of kind "
                         "'project' naming its project");
    struct wh_project_info *p = wh_pool_alloc(c->pool, sizeof(*p));
    int error = wh_db_project_info(c->api->db, r->project_id, p);
    if (error < 0)
        return api_fail(c, error);
    if (strcmp(ns, p->p.name) != 0)
        return api_error(c, 400, "BAD_REQUEST", "cannot update the project id of robot");
    return 0;
}

int api_robot_get(struct call *c)
{
    struct wh_robot *r = wh_pool_alloc(c->pool, sizeof(*r));
    if (load(c, r, WH_RBAC_ACT_READ) < 0)
        return -1;
    return api_json(c, 200, robot_view(c, r));
}

int api_robot_update(struct call *c)
{
    struct wh_robot *r = wh_pool_alloc(c->pool, sizeof(*r));
    json_t *b = api_body(c);
    if (!b || load(c, r, WH_RBAC_ACT_UPDATE) < 0)
        return -1;
    json_t *v;
    if (holds_target(c, r) < 0)
        return -1;
    /* a robot's level, name and project are what it is: Harbor refuses to change them */
    if (((v = json_object_get(b, "level")) && json_is_string(v) &&
         strcmp(json_string_value(v), r->level) != 0) ||
        ((v = json_object_get(b, "name")) && json_is_string(v) &&
         !same_name(r, json_string_value(v))))
        return api_error(c, 400, "BAD_REQUEST", "cannot update the level or name of robot");
    if ((v = json_object_get(b, "description")) && json_is_string(v)) {
        if (strlen(json_string_value(v)) >= sizeof(r->description))
            return description_too_long(c, r);
        snprintf(r->description, sizeof(r->description), "%s", json_string_value(v));
    }
    if ((v = json_object_get(b, "disable")) && json_is_boolean(v))
        r->disabled = json_is_true(v);
    if (json_object_get(b, "duration")) {
        if (parse_duration(c, b, &r->duration) < 0)
            return -1;
        r->expires_at = expiry(r->created_ms, r->duration);
    }
    if ((v = json_object_get(b, "permissions"))) {
        if (!json_is_array(v))
            return api_error(c, 400, "BAD_REQUEST", "permissions must be an array");
        if (r->project_id && project_perm_check(c, r, v) < 0)
            return -1;
        if (perms_store(c, r, v) < 0 || perms_check(c, r->permissions, !r->project_id) < 0)
            return -1;
    }
    int error = wh_db_robot_update(c->api->db, r);
    api_audit(c, r->project_id, r->name, "robot", "update", error == 0);
    if (error < 0)
        return api_fail(c, error);
    return api_ok(c, 200);
}

int api_robot_refresh(struct call *c)
{
    struct wh_robot *r = wh_pool_alloc(c->pool, sizeof(*r));
    json_t *b = api_body(c);
    if (!b || load(c, r, WH_RBAC_ACT_UPDATE) < 0 || holds_target(c, r) < 0)
        return -1;
    char generated[WH_AUTH_SECRET_LEN + 1];
    const char *secret = json_string_value(json_object_get(b, "secret"));
    if (secret && *secret) {
        if (wh_auth_secret_policy(secret) < 0)
            return api_error(c, 400, "BAD_REQUEST", wh_error_msg());
    } else {
        wh_auth_secret_new(generated);
        secret = generated;
    }
    if (set_secret(c, r, secret) < 0)
        return -1;
    int error = wh_db_robot_update(c->api->db, r);
    api_audit(c, r->project_id, r->name, "robot", "update", error == 0);
    if (error < 0)
        return api_fail(c, error);
    json_t *o = json_object();
    json_object_set_new(o, "secret", json_string(secret));
    return api_json(c, 200, o);
}

int api_robot_delete(struct call *c)
{
    struct wh_robot *r = wh_pool_alloc(c->pool, sizeof(*r));
    if (load(c, r, WH_RBAC_ACT_DELETE) < 0)
        return -1;
    int error = wh_db_robot_delete(c->api->db, r->id);
    api_audit(c, r->project_id, r->name, "robot", "delete", error == 0);
    if (error < 0)
        return api_fail(c, error);
    return api_ok(c, 200);
}
