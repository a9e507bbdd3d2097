/*
 * users.c: /users — list and create (system administrators), the current
 * user and their permissions, search by name, get/update (self or admin),
 * delete, the sysadmin flag and password changes.
 * Passwords follow Harbor's policy and are stored as argon2id hashes made by
 * auth/; no answer ever carries one.
 */
#include "api/api_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"

static json_t *user_view(struct call *c, const struct wh_user *u)
{
    json_t *o = json_object();
    json_object_set_new(o, "user_id", json_integer(u->id));
    json_object_set_new(o, "username", json_string(u->username));
    json_object_set_new(o, "email", json_string(u->email));
    json_object_set_new(o, "realname", json_string(u->realname));
    json_object_set_new(o, "comment", json_string(u->comment));
    json_object_set_new(o, "sysadmin_flag", json_boolean(u->sysadmin));
    json_object_set_new(o, "admin_role_in_auth", json_false());
    json_object_set_new(o, "creation_time", json_string(api_time(c, u->created_ms)));
    json_object_set_new(o, "update_time", json_string(api_time(c, u->updated_ms)));
    return o;
}

struct list_ctx {
    struct call *c;
    json_t *arr;
    bool brief; /* /users/search: id and name only */
};

static int add_user(const struct wh_user *u, void *payload)
{
    struct list_ctx *l = payload;
    if (l->brief)
        json_array_append_new(l->arr, json_pack("{s:I,s:s}", "user_id", (json_int_t)u->id,
                                                "username", u->username));
    else
        json_array_append_new(l->arr, user_view(l->c, u));
    return 0;
}

static int list(struct call *c, const char *like, bool brief)
{
    int64_t offset, limit, total = 0;
    if (api_page(c, &offset, &limit) < 0)
        return -1;
    struct list_ctx l = {c, json_array(), brief};
    int error = wh_db_user_list(c->api->db, like, offset, limit, add_user, &l, &total);
    if (error < 0) {
        json_decref(l.arr);
        return api_fail(c, error);
    }
    return api_list(c, l.arr, total, offset, limit);
}

int api_users_list(struct call *c)
{
    const char *like = api_q(c, "username", NULL);
    if (!like)
        like = wh_req_query(c->r, "username");
    return list(c, like, false);
}

int api_users_search(struct call *c)
{
    const char *like = wh_req_query(c->r, "username");
    if (!like || !*like)
        return api_error(c, 400, "BAD_REQUEST", "username is required");
    return list(c, like, true);
}

/* Copies the string `key` of `b` (if any) into `dst`; answers 400 itself when it
 * does not fit, so that nothing is stored cut short. */
static int copy_field(struct call *c, char *dst, size_t cap, json_t *b, const char *key)
{
    const char *v = json_string_value(json_object_get(b, key));
    if (!v)
        return 0;
    size_t n = strlen(v);
    if (n >= cap)
        return api_error(c, 400, "BAD_REQUEST",
                         wh_pool_sprintf(c->pool, "%s is too long (max %zu bytes)", key, cap - 1));
    memcpy(dst, v, n + 1);
    return 0;
}

int api_user_create(struct call *c)
{
    json_t *b = api_body(c);
    if (!b)
        return -1;
    struct wh_user *u = wh_pool_alloc(c->pool, sizeof(*u));
    memset(u, 0, sizeof(*u));
    const char *name = json_string_value(json_object_get(b, "username"));
    const char *pw = json_string_value(json_object_get(b, "password"));
    if (!name || wh_auth_username_check(name) < 0)
        return api_error(c, 400, "BAD_REQUEST", "username contains illegal characters");
    const char *email = json_string_value(json_object_get(b, "email"));
    if (email && *email && !strchr(email, '@'))
        return api_error(c, 400, "BAD_REQUEST", "email format is illegal");
    if (!pw || wh_auth_password_policy(pw) < 0)
        return api_error(c, 400, "BAD_REQUEST", WH_AUTH_PASSWORD_POLICY_MSG);
    snprintf(u->username, sizeof(u->username), "%s", name);
    if (copy_field(c, u->email, sizeof(u->email), b, "email") < 0 ||
        copy_field(c, u->realname, sizeof(u->realname), b, "realname") < 0 ||
        copy_field(c, u->comment, sizeof(u->comment), b, "comment") < 0)
        return -1;
    int error = wh_auth_password_hash(u->password, sizeof(u->password), pw);
    if (error < 0)
        return api_fail(c, error);
    int64_t id = 0;
    error = wh_db_user_create(c->api->db, u, &id);
    api_audit(c, 0, name, "user", "create", error == 0);
    if (error == WH_EEXISTS)
        return api_error(c, 409, "CONFLICT",
                         wh_pool_sprintf(c->pool, "username %s already exists", name));
    if (error < 0)
        return api_fail(c, error);
    wh_resp_header(c->r, "Location", wh_pool_sprintf(c->pool, API_PREFIX "/users/%" PRId64, id));
    return api_ok(c, 201);
}

int api_user_current(struct call *c)
{
    if (c->who.kind != WH_PRINCIPAL_USER)
        return api_error(c, 403, "FORBIDDEN", "only users have a current user");
    struct wh_user *u = wh_pool_alloc(c->pool, sizeof(*u));
    int error = wh_db_user_get_id(c->api->db, c->who.id, u);
    if (error < 0)
        return api_fail(c, error);
    return api_json(c, 200, user_view(c, u));
}

/*
 * Harbor's system-namespace policies for what wharf serves (catalog, audit
 * log, projects, users, labels, quotas, the storage volumes); a system
 * administrator holds them all, anybody else none.
 */
static const struct {
    const char *res, *act;
} system_policies[] = {
    {"catalog", "read"},        {"audit-log", "list"},     {"project", "create"},
    {"project", "read"},        {"project", "update"},     {"project", "delete"},
    {"project", "list"},        {"user", "create"},        {"user", "read"},
    {"user", "update"},         {"user", "delete"},        {"user", "list"},
    {"label", "create"},        {"label", "read"},         {"label", "update"},
    {"label", "delete"},        {"quota", "read"},         {"quota", "list"},
    {"quota", "update"},        {"system-volumes", "read"},
};

/* Appends one permission: `resource` relative to the scope (Harbor's
 * Resource.RelativeTo: the scope itself is ".") or absolute. */
static void add_permission(struct call *c, json_t *arr, const char *scope, const char *sub,
                           const char *act, bool relative)
{
    const char *res;
    if (relative)
        res = *sub ? sub : ".";
    else
        res = *sub ? wh_pool_sprintf(c->pool, "%s/%s", scope, sub) : scope;
    json_array_append_new(arr, json_pack("{s:s,s:s}", "resource", res, "action", act));
}

int api_user_permissions(struct call *c)
{
    const char *scope = wh_req_query(c->r, "scope");
    bool relative = api_bool_query(c, "relative", false);
    json_t *arr = json_array();
    int64_t id;
    /*
     * Harbor's namespaces: "/system..." and "/project/<id>" (an id, never a
     * name). Any other scope, or a project that does not exist, yields
     * nothing (200 with an empty list).
     */
    if (scope && strncmp(scope, "/system", 7) == 0) {
        if (api_admin(c))
            for (size_t i = 0; i < sizeof(system_policies) / sizeof(system_policies[0]); i++)
                add_permission(c, arr, "/system", system_policies[i].res, system_policies[i].act,
                               relative);
    } else if (scope && strncmp(scope, "/project/", 9) == 0) {
        size_t n = strcspn(scope + 9, "/");
        const char *idtext = wh_pool_strndup(c->pool, scope + 9, n);
        struct wh_project_info *p = wh_pool_alloc(c->pool, sizeof(*p));
        if (api_id(idtext, &id) == 0 && wh_db_project_info(c->api->db, id, p) == 0) {
            const char *ns = wh_pool_sprintf(c->pool, "/project/%" PRId64, id);
            for (int i = 0; i < WH_RBAC_RES_COUNT; i++) {
                for (int j = 0; j < WH_RBAC_ACT_COUNT; j++) {
                    enum wh_rbac_res res = (enum wh_rbac_res)i;
                    enum wh_rbac_act act = (enum wh_rbac_act)j;
                    if (!wh_rbac_policy_defined(res, act) ||
                        !wh_acl_can(c->api->acl, &c->who, &p->p, res, act))
                        continue;
                    /* the project itself is Harbor's "self" resource, the namespace */
                    const char *sub = res == WH_RBAC_RES_PROJECT ? "" : wh_rbac_res_name(res);
                    add_permission(c, arr, ns, sub, wh_rbac_act_name(act), relative);
                }
            }
        }
    }
    return api_json(c, 200, arr);
}

/* Loads the route's user; `self_ok` lets a user act on their own account. */
static int load(struct call *c, struct wh_user *u, bool self_ok)
{
    uint64_t id;
    const char *s = c->param[0];
    if (wh_parse_u64(&id, s, strlen(s)) < 0 || id > INT64_MAX)
        return api_error(c, 400, "BAD_REQUEST", "the user id must be an integer");
    bool self = c->who.kind == WH_PRINCIPAL_USER && c->who.id == (int64_t)id;
    if (!(self && self_ok) && !api_admin(c))
        return api_forbidden(c);
    int error = wh_db_user_get_id(c->api->db, (int64_t)id, u);
    if (error == WH_ENOTFOUND)
        return api_error(c, 404, "NOT_FOUND", wh_pool_sprintf(c->pool, "user %s not found", s));
    return error < 0 ? api_fail(c, error) : 0;
}

int api_user_get(struct call *c)
{
    struct wh_user *u = wh_pool_alloc(c->pool, sizeof(*u));
    if (load(c, u, true) < 0)
        return -1;
    return api_json(c, 200, user_view(c, u));
}

int api_user_update(struct call *c)
{
    struct wh_user *u = wh_pool_alloc(c->pool, sizeof(*u));
    json_t *b = api_body(c);
    if (!b || load(c, u, true) < 0)
        return -1;
    const char *email = json_string_value(json_object_get(b, "email"));
    if (email && *email && !strchr(email, '@'))
        return api_error(c, 400, "BAD_REQUEST", "email format is illegal");
    if (copy_field(c, u->email, sizeof(u->email), b, "email") < 0 ||
        copy_field(c, u->realname, sizeof(u->realname), b, "realname") < 0 ||
        copy_field(c, u->comment, sizeof(u->comment), b, "comment") < 0)
        return -1;
    int error = wh_db_user_update(c->api->db, u);
    api_audit(c, 0, u->username, "user", "update", error == 0);
    if (error < 0)
        return api_fail(c, error);
    return api_ok(c, 200);
}

int api_user_delete(struct call *c)
{
    struct wh_user *u = wh_pool_alloc(c->pool, sizeof(*u));
    if (load(c, u, false) < 0)
        return -1;
    if (c->who.kind == WH_PRINCIPAL_USER && c->who.id == u->id)
        return api_error(c, 403, "FORBIDDEN", "can not delete yourself");
    int error = wh_db_user_delete(c->api->db, u->id);
    api_audit(c, 0, u->username, "user", "delete", error == 0);
    if (error == WH_ECONFLICT)
        return api_error(c, 403, "FORBIDDEN", wh_error_msg());
    if (error < 0)
        return api_fail(c, error);
    return api_ok(c, 200);
}

int api_user_sysadmin(struct call *c)
{
    struct wh_user *u = wh_pool_alloc(c->pool, sizeof(*u));
    json_t *b = api_body(c);
    if (!b || load(c, u, false) < 0)
        return -1;
    json_t *f = json_object_get(b, "sysadmin_flag");
    if (!json_is_boolean(f))
        return api_error(c, 400, "BAD_REQUEST", "sysadmin_flag must be a boolean");
    if (c->who.kind == WH_PRINCIPAL_USER && c->who.id == u->id && !json_is_true(f))
        return api_error(c, 403, "FORBIDDEN", "can not remove your own administrator role");
    int error = wh_db_user_set_sysadmin(c->api->db, u->id, json_is_true(f));
    api_audit(c, 0, u->username, "user", "update", error == 0);
    if (error == WH_ECONFLICT)
        return api_error(c, 403, "FORBIDDEN", wh_error_msg());
    if (error < 0)
        return api_fail(c, error);
    return api_ok(c, 200);
}

int api_user_password(struct call *c)
{
    struct wh_user *u = wh_pool_alloc(c->pool, sizeof(*u));
    json_t *b = api_body(c);
    if (!b || load(c, u, true) < 0)
        return -1;
    bool self = c->who.kind == WH_PRINCIPAL_USER && c->who.id == u->id;
    const char *old_pw = json_string_value(json_object_get(b, "old_password"));
    const char *new_pw = json_string_value(json_object_get(b, "new_password"));
    if (!new_pw || wh_auth_password_policy(new_pw) < 0)
        return api_error(c, 400, "BAD_REQUEST", WH_AUTH_PASSWORD_POLICY_MSG);
    if (self && !c->who.sysadmin) {
        if (!old_pw || wh_auth_password_verify(u->password, old_pw) < 0) {
            api_audit(c, 0, u->username, "user", "update", false);
            return api_error(c, 403, "FORBIDDEN", "the old password is incorrect");
        }
    }
    if (old_pw && strcmp(old_pw, new_pw) == 0)
        return api_error(c, 400, "BAD_REQUEST", "the new password can not be same with the old one");
    char hash[WH_NAME_MAX];
    int error = wh_auth_password_hash(hash, sizeof(hash), new_pw);
    if (error == 0)
        error = wh_db_user_set_password(c->api->db, u->id, hash);
    api_audit(c, 0, u->username, "user", "update", error == 0);
    if (error < 0)
        return api_fail(c, error);
    return api_ok(c, 200);
}
