/*
 * repositories.c: /repositories (every repository the caller may see) and
 * /projects/{p}/repositories[/{r}] — list with `q` (name, fuzzy or exact) and
 * `sort`, get, update of the description, delete. Repository names in paths
 * are relative to the project and arrive double-encoded (a%252Fb); objects
 * carry the full name, as Harbor's do.
 */
#include "api/api_int.h"

#include <string.h>

static json_t *repo_view(struct call *c, const struct wh_repo_info *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(r->id));
    json_object_set_new(o, "project_id", json_integer(r->project_id));
    json_object_set_new(o, "name", json_string(r->name));
    json_object_set_new(o, "description", json_string(r->description));
    json_object_set_new(o, "artifact_count", json_integer(r->artifact_count));
    json_object_set_new(o, "pull_count", json_integer(r->pull_count));
    json_object_set_new(o, "creation_time", json_string(api_time(c, r->created_ms)));
    json_object_set_new(o, "update_time", json_string(api_time(c, r->updated_ms)));
    return o;
}

struct list_ctx {
    struct call *c;
    json_t *arr;
};

static int add_repo(const struct wh_repo_info *r, void *payload)
{
    struct list_ctx *l = payload;
    json_array_append_new(l->arr, repo_view(l->c, r));
    return 0;
}

static int list(struct call *c, int64_t project_id)
{
    static const char *const sorts[] = {"name", "creation_time", "update_time", "pull_count",
                                        "id", NULL};
    struct wh_repo_filter f = {.project_id = project_id};
    int64_t offset, limit, total = 0;
    bool fuzzy;
    if (api_page(c, &offset, &limit) < 0)
        return -1;
    const char *name = api_q(c, "name", &fuzzy);
    if (name && fuzzy)
        f.name_like = name;
    else if (name)
        f.name = name;
    f.sort = api_sort(c, sorts, 0, &f.desc);
    if (f.sort < 0)
        return api_error(c, 400, "BAD_REQUEST", "unsupported sort key");
    if (project_id)
        f.visible_user = -1; /* the route checked the project already */
    else
        api_visibility_all(c, &f.visible_user, &f.visible_project, &f.visible_names);
    struct list_ctx l = {c, json_array()};
    int error = wh_db_repo_page(c->api->db, &f, offset, limit, add_repo, &l, &total);
    if (error < 0) {
        json_decref(l.arr);
        return api_fail(c, error);
    }
    return api_list(c, l.arr, total, offset, limit);
}

int api_repos_all(struct call *c)
{
    return list(c, 0);
}

int api_repos_list(struct call *c)
{
    return list(c, c->proj->p.id);
}

/* Loads the route's repository or answers 404. */
static int load(struct call *c, struct wh_repo_info *out)
{
    const char *name = api_repo_name(c, c->param[1]);
    int error = wh_db_repo_info(c->api->db, name, out);
    if (error == WH_ENOTFOUND)
        return api_error(c, 404, "NOT_FOUND",
                         wh_pool_sprintf(c->pool, "repository %s not found", name));
    if (error < 0)
        return api_fail(c, error);
    return 0;
}

int api_repo_get(struct call *c)
{
    struct wh_repo_info *ri = wh_pool_alloc(c->pool, sizeof(*ri));
    if (load(c, ri) < 0)
        return -1;
    return api_json(c, 200, repo_view(c, ri));
}

int api_repo_update(struct call *c)
{
    struct wh_repo_info *ri = wh_pool_alloc(c->pool, sizeof(*ri));
    json_t *b = api_body(c);
    if (!b || load(c, ri) < 0)
        return -1;
    json_t *d = json_object_get(b, "description");
    if (d && !json_is_string(d))
        return api_error(c, 400, "BAD_REQUEST", "description must be a string");
    if (d && strlen(json_string_value(d)) >= sizeof(ri->description))
        return api_error(c, 400, "BAD_REQUEST", "description is too long");
    int error = wh_db_repo_set_description(c->api->db, ri->id, d ? json_string_value(d) : "");
    if (error < 0)
        return api_fail(c, error);
    return api_ok(c, 200);
}

int api_repo_delete(struct call *c)
{
    struct wh_repo_info *ri = wh_pool_alloc(c->pool, sizeof(*ri));
    if (load(c, ri) < 0)
        return -1;
    int error = wh_db_repo_delete(c->api->db, ri->id);
    api_audit(c, ri->project_id, ri->name, "repository", "delete", error == 0);
    if (error < 0)
        return api_fail(c, error);
    return api_ok(c, 200);
}
