/*
 * system.c: the system-wide endpoints — /health (components and their
 * state), /ping, /systeminfo (a subset for anonymous callers), /statistics
 * (counts over what the caller may see), /search (projects and repositories
 * by name), /audit-logs and the OpenAPI document at /swagger.json.
 */
#include "api/api_int.h"

#include <string.h>

int api_health(struct call *c)
{
    int64_t n = 0;
    bool db_ok = wh_db_user_count(c->api->db, &n) == 0;
    /* Harbor's shape: each component's status, and an "error" for the unhealthy ones */
    bool store_ok = wh_store_check_space(c->api->store) == 0;
    json_t *comps = json_array();
    json_array_append_new(comps, json_pack("{s:s,s:s}", "name", "core", "status", "healthy"));
    json_t *dbc = json_pack("{s:s,s:s}", "name", "database", "status",
                            db_ok ? "healthy" : "unhealthy");
    if (!db_ok)
        json_object_set_new(dbc, "error", json_string("the metadata database does not answer"));
    json_array_append_new(comps, dbc);
    json_array_append_new(comps, json_pack("{s:s,s:s}", "name", "registry", "status", "healthy"));
    json_t *stc = json_pack("{s:s,s:s}", "name", "storage", "status",
                            store_ok ? "healthy" : "unhealthy");
    if (!store_ok) /* anyone may ask: no sizes or paths here, the log has them */
        json_object_set_new(stc, "error",
                            json_string("storage is full: uploads are refused until space is "
                                        "freed"));
    json_array_append_new(comps, stc);
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string(db_ok && store_ok ? "healthy" : "unhealthy"));
    json_object_set_new(o, "components", comps);
    return api_json(c, 200, o);
}

int api_ping(struct call *c)
{
    static const char pong[] = "Pong";
    wh_resp_send(c->r, 200, "text/plain; charset=utf-8", pong, sizeof(pong) - 1);
    return 0;
}

int api_systeminfo(struct call *c)
{
    json_t *o = json_object();
    json_object_set_new(o, "auth_mode", json_string("db_auth"));
    json_object_set_new(o, "primary_auth_mode", json_false());
    json_object_set_new(o, "self_registration", json_false());
    json_object_set_new(o, "harbor_version", json_string(c->api->cfg.version));
    json_object_set_new(o, "banner_message", json_string(""));
    json_object_set_new(o, "oidc_provider_name", json_string(""));
    json_object_set_new(o, "current_time", json_string(api_time(c, wh_now_ms())));
    if (api_authenticated(c)) {
        const char *host = wh_req_host(c->r);
        json_object_set_new(o, "project_creation_restriction",
                            json_string(c->api->cfg.admin_only_creation ? "adminonly"
                                                                        : "everyone"));
        json_object_set_new(o, "has_ca_root", json_false());
        json_object_set_new(o, "registry_url", json_string(host));
        json_object_set_new(o, "external_url",
                            json_string(wh_pool_sprintf(c->pool, "http://%s", host)));
        json_object_set_new(o, "read_only", json_boolean(c->api->cfg.read_only));
        json_object_set_new(o, "notification_enable", json_false());
        json_object_set_new(o, "registry_storage_provider_name", json_string("filesystem"));
    }
    return api_json(c, 200, o);
}

int api_statistics(struct call *c)
{
    struct wh_project_filter f = {.public = -1};
    struct wh_statistics st;
    api_visibility_all(c, &f.visible_user, &f.visible_project, &f.visible_names);
    int error = wh_db_statistics(c->api->db, &f, &st);
    if (error < 0)
        return api_fail(c, error);
    json_t *o = json_object();
    json_object_set_new(o, "private_project_count", json_integer(st.private_projects));
    json_object_set_new(o, "private_repo_count", json_integer(st.private_repos));
    json_object_set_new(o, "public_project_count", json_integer(st.public_projects));
    json_object_set_new(o, "public_repo_count", json_integer(st.public_repos));
    json_object_set_new(o, "total_project_count",
                        json_integer(st.private_projects + st.public_projects));
    json_object_set_new(o, "total_repo_count", json_integer(st.private_repos + st.public_repos));
    if (f.visible_user == -1)
        json_object_set_new(o, "total_storage_consumption",
                            json_integer((json_int_t)st.storage_bytes));
    return api_json(c, 200, o);
}

#define SEARCH_MAX 100 /* results per kind */

struct search_ctx {
    struct call *c;
    json_t *arr;
};

static int add_project(const struct wh_project_info *p, void *payload)
{
    struct search_ctx *s = payload;
    json_array_append_new(s->arr, api_project_view(s->c, p));
    return 0;
}

static int add_repo(const struct wh_repo_info *r, void *payload)
{
    struct search_ctx *s = payload;
    json_t *o = json_object();
    json_object_set_new(o, "project_id", json_integer(r->project_id));
    json_object_set_new(o, "project_name", json_string(r->project_name));
    json_object_set_new(o, "project_public", json_boolean(r->project_public));
    json_object_set_new(o, "repository_name", json_string(r->name));
    json_object_set_new(o, "pull_count", json_integer(r->pull_count));
    json_object_set_new(o, "artifact_count", json_integer(r->artifact_count));
    json_array_append_new(s->arr, o);
    return 0;
}

int api_search(struct call *c)
{
    const char *q = wh_req_query(c->r, "q");
    if (!q || !*q)
        return api_error(c, 400, "BAD_REQUEST", "q is required");
    struct wh_project_filter pf = {.public = -1, .name_like = q};
    struct wh_repo_filter rf = {.name_like = q};
    api_visibility_all(c, &pf.visible_user, &pf.visible_project, &pf.visible_names);
    rf.visible_user = pf.visible_user;
    rf.visible_project = pf.visible_project;
    rf.visible_names = pf.visible_names;
    struct search_ctx ps = {c, json_array()}, rs = {c, json_array()};
    int error = wh_db_project_list(c->api->db, &pf, 0, SEARCH_MAX, add_project, &ps, NULL);
    if (error == 0)
        error = wh_db_repo_page(c->api->db, &rf, 0, SEARCH_MAX, add_repo, &rs, NULL);
    if (error < 0) {
        json_decref(ps.arr);
        json_decref(rs.arr);
        return api_fail(c, error);
    }
    json_t *o = json_object();
    json_object_set_new(o, "project", ps.arr);
    json_object_set_new(o, "repository", rs.arr);
    return api_json(c, 200, o);
}

json_t *api_audit_view(struct call *c, const struct wh_audit *a)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(a->id));
    json_object_set_new(o, "username", json_string(a->username ? a->username : ""));
    json_object_set_new(o, "resource", json_string(a->resource ? a->resource : ""));
    json_object_set_new(o, "resource_type", json_string(a->resource_type ? a->resource_type : ""));
    json_object_set_new(o, "operation", json_string(a->operation ? a->operation : ""));
    json_object_set_new(o, "operation_description",
                        json_string(a->description ? a->description : ""));
    json_object_set_new(o, "operation_result", json_boolean(a->result));
    json_object_set_new(o, "op_time", json_string(api_time(c, a->op_time_ms)));
    /* wharf's own: where the request came from, and how many events a folded row holds */
    json_object_set_new(o, "client_ip", json_string(a->client_ip ? a->client_ip : ""));
    json_object_set_new(o, "count", json_integer(a->count > 0 ? a->count : 1));
    return o;
}

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

int api_audit_logs(struct call *c)
{
    int64_t offset, limit, total = 0;
    if (api_page(c, &offset, &limit) < 0)
        return -1;
    struct log_ctx l = {c, json_array()};
    int error = wh_db_audit_list(c->api->db, 0, api_q(c, "username", NULL),
                                 api_q(c, "operation", NULL), offset, limit, add_log, &l, &total);
    if (error < 0) {
        json_decref(l.arr);
        return api_fail(c, error);
    }
    return api_list(c, l.arr, total, offset, limit);
}

int api_swagger_json(struct call *c)
{
    size_t n = 0;
    const char *doc = wh_api_swagger(&n);
    wh_resp_send(c->r, 200, "application/json", doc, n);
    return 0;
}
