/*
 * members.c: /projects/{p}/members — list (filter `entityname`), add a user
 * with a role, get, change the role, remove. Only users can be members here
 * (no user groups). Role ids and names are Harbor's: 1 projectAdmin,
 * 2 developer, 3 guest, 4 maintainer, 5 limitedGuest.
 * Adding or promoting a member takes holding everything its role may do.
 */
#include "api/api_int.h"

#include <inttypes.h>
#include <string.h>

static json_t *member_view(const struct wh_member *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(m->id));
    json_object_set_new(o, "project_id", json_integer(m->project_id));
    json_object_set_new(o, "entity_name", json_string(m->username));
    const char *rn = wh_rbac_role_name((enum wh_role)m->role);
    json_object_set_new(o, "role_name", json_string(rn ? rn : ""));
    json_object_set_new(o, "role_id", json_integer(m->role));
    json_object_set_new(o, "entity_id", json_integer(m->user_id));
    json_object_set_new(o, "entity_type", json_string("u"));
    return o;
}

struct list_ctx {
    json_t *arr;
    int64_t skip, left, total;
};

static int add_member(const struct wh_member *m, void *payload)
{
    struct list_ctx *l = payload;
    l->total++;
    if (l->skip > 0) {
        l->skip--;
        return 0;
    }
    if (l->left > 0) {
        l->left--;
        json_array_append_new(l->arr, member_view(m));
    }
    return 0;
}

int api_members_list(struct call *c)
{
    int64_t offset, limit;
    if (api_page(c, &offset, &limit) < 0)
        return -1;
    struct list_ctx l = {json_array(), offset, limit, 0};
    int error = wh_db_member_list(c->api->db, c->proj->p.id, wh_req_query(c->r, "entityname"),
                                  add_member, &l);
    if (error < 0) {
        json_decref(l.arr);
        return api_fail(c, error);
    }
    return api_list(c, l.arr, l.total, offset, limit);
}

static int parse_role(struct call *c, json_t *b, int *out)
{
    json_t *r = json_object_get(b, "role_id");
    if (!json_is_integer(r) || json_integer_value(r) < 1 || json_integer_value(r) > 5)
        return api_error(c, 400, "BAD_REQUEST", "role_id must be one of 1, 2, 3, 4, 5");
    *out = (int)json_integer_value(r);
    return 0;
}

/*
 * Whoever adds or promotes a member must hold everything the role may do:
 * a robot given member:create cannot make project administrators (users who
 * may add members are project administrators, who hold every role). Answers
 * 403 itself.
 */
static int grant_check(struct call *c, int role)
{
    if (wh_acl_role_grant_check(c->api->acl, &c->who, &c->proj->p, (enum wh_role)role) < 0)
        return api_error(c, 403, "FORBIDDEN", wh_error_msg());
    return 0;
}

static const char *member_res(struct call *c, const char *username)
{
    return wh_pool_sprintf(c->pool, "%s/%s", c->proj->p.name, username);
}

int api_member_create(struct call *c)
{
    json_t *b = api_body(c);
    int role, error;
    if (!b || parse_role(c, b, &role) < 0)
        return -1;
    if (json_is_object(json_object_get(b, "member_group")))
        return api_error(c, 400, "BAD_REQUEST", "user groups are not supported");
    json_t *mu = json_object_get(b, "member_user");
    struct wh_user *u = wh_pool_alloc(c->pool, sizeof(*u));
    const char *username = json_string_value(json_object_get(mu, "username"));
    json_t *uid = json_object_get(mu, "user_id");
    if (username)
        error = wh_db_user_get(c->api->db, username, u);
    else if (json_is_integer(uid))
        error = wh_db_user_get_id(c->api->db, json_integer_value(uid), u);
    else
        return api_error(c, 400, "BAD_REQUEST", "member_user.username or user_id is required");
    if (error == WH_ENOTFOUND)
        return api_error(c, 404, "NOT_FOUND", "user not found");
    if (error < 0)
        return api_fail(c, error);
    if (grant_check(c, role) < 0)
        return -1;
    int64_t id = 0;
    /* one INSERT: of two clients adding the same user, one wins, the other gets 409 */
    error = wh_db_member_add(c->api->db, c->proj->p.id, u->id, role, &id);
    api_audit(c, c->proj->p.id, member_res(c, u->username), "member", "create", error == 0);
    if (error == WH_EEXISTS)
        return api_error(c, 409, "CONFLICT",
                         wh_pool_sprintf(c->pool,
                                         "The user %s is already a member of the project %s",
                                         u->username, c->proj->p.name));
    if (error == WH_ENOTFOUND)
        return api_error(c, 404, "NOT_FOUND", "user not found");
    if (error < 0)
        return api_fail(c, error);
    wh_resp_header(c->r, "Location",
                   wh_pool_sprintf(c->pool, API_PREFIX "/projects/%" PRId64 "/members/%" PRId64,
                                   c->proj->p.id, id));
    return api_ok(c, 201);
}

static int load(struct call *c, struct wh_member *m)
{
    uint64_t id;
    const char *s = c->param[1];
    if (wh_parse_u64(&id, s, strlen(s)) < 0 || id > INT64_MAX)
        return api_error(c, 400, "BAD_REQUEST", "the member id must be an integer");
    int error = wh_db_member_get(c->api->db, c->proj->p.id, (int64_t)id, m);
    if (error == WH_ENOTFOUND)
        return api_error(c, 404, "NOT_FOUND",
                         wh_pool_sprintf(c->pool, "member %s not found", s));
    return error < 0 ? api_fail(c, error) : 0;
}

int api_member_get(struct call *c)
{
    struct wh_member m;
    if (load(c, &m) < 0)
        return -1;
    return api_json(c, 200, member_view(&m));
}

int api_member_update(struct call *c)
{
    struct wh_member m;
    json_t *b = api_body(c);
    int role;
    if (!b || load(c, &m) < 0 || parse_role(c, b, &role) < 0 || grant_check(c, role) < 0)
        return -1;
    int error = wh_db_member_set_role(c->api->db, c->proj->p.id, m.id, role);
    api_audit(c, c->proj->p.id, member_res(c, m.username), "member", "update", error == 0);
    if (error < 0)
        return api_fail(c, error);
    return api_ok(c, 200);
}

int api_member_delete(struct call *c)
{
    struct wh_member m;
    if (load(c, &m) < 0)
        return -1;
    int error = wh_db_member_delete(c->api->db, c->proj->p.id, m.id);
    api_audit(c, c->proj->p.id, member_res(c, m.username), "member", "delete", error == 0);
    if (error < 0)
        return api_fail(c, error);
    return api_ok(c, 200);
}
