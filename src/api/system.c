/*
 * system.c: the system-wide endpoints — /health (components and their
 * state), /ping, /systeminfo (a subset for anonymous callers), /statistics
 * (counts over what the caller may see), /search (projects and repositories
 * by name), /audit-logs and the OpenAPI document at /swagger.json.
 */
#include "api/api_int.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "scand/scand.h"

/*
 * The storage probe: a small blob of its own (a random text, so its digest is
 * no image's) written, read back, compared and deleted through the store, as
 * a push and a pull would. Its outcome is kept for PROBE_EVERY_MS so that
 * /health, which anyone may ask, costs at most one write a second.
 */
#define PROBE_EVERY_MS 1000
#define PROBE_TEXT_MAX 96

static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t probe_at_ms;
static bool probe_ok;

static bool storage_probe(wh_store *st)
{
    char rnd[33], text[PROBE_TEXT_MAX];
    struct wh_digest d;
    struct wh_buf back;
    bool ok = false;

    wh_random_hex(rnd, 16);
    int n = snprintf(text, sizeof(text), "wharf health probe %s\n", rnd);
    wh_digest_of(&d, WH_DIGEST_SHA256, text, (size_t)n);
    wh_buf_init(&back, PROBE_TEXT_MAX);
    if (wh_store_put_bytes(st, &d, text, (size_t)n) < 0) {
        wh_log_warn("health: the storage probe could not be written: %s", wh_error_msg());
        goto out;
    }
    if (wh_store_read_blob(st, &d, &back) < 0)
        wh_log_warn("health: the storage probe could not be read back: %s", wh_error_msg());
    else if (back.len != (size_t)n || memcmp(back.data, text, (size_t)n) != 0)
        wh_log_warn("health: the storage probe read back differs from what was written");
    else
        ok = true;
    if (wh_store_delete_blob(st, &d) < 0) {
        wh_log_warn("health: the storage probe could not be deleted: %s", wh_error_msg());
        ok = false;
    }
out:
    wh_buf_dispose(&back);
    return ok;
}

/* The probe's outcome, run again when the last one is older than PROBE_EVERY_MS. */
static bool storage_writable(wh_store *st)
{
    pthread_mutex_lock(&probe_lock);
    int64_t now = wh_now_ms();
    if (probe_at_ms == 0 || now - probe_at_ms >= PROBE_EVERY_MS || now < probe_at_ms) {
        probe_ok = storage_probe(st);
        probe_at_ms = wh_now_ms();
    }
    bool ok = probe_ok;
    pthread_mutex_unlock(&probe_lock);
    return ok;
}

/* One component as Harbor's ComponentHealthStatus: name, status, and error when unhealthy. */
static json_t *component(const char *name, const char *error)
{
    json_t *v = json_pack("{s:s,s:s}", "name", name, "status", error ? "unhealthy" : "healthy");
    if (error)
        json_object_set_new(v, "error", json_string(error));
    return v;
}

/*
 * The job queue (Harbor's "jobservice"): the scan workers, how many are
 * alive, the queue's depth and the age of its oldest waiting job. Unhealthy
 * when a worker has ended, none runs, or the queue cannot be read.
 */
static json_t *jobservice(struct call *c, bool *healthy)
{
    unsigned started = 0, alive = 0;
    struct wh_db_queue_state q = {0};
    const char *error = NULL;

    wh_scand_workers(c->api->cfg.scand, &started, &alive);
    bool queue_ok = wh_db_scan_queue_state(c->api->db, &q) == 0;
    if (!queue_ok)
        error = "the scan queue cannot be read from the metadata database";
    else if (started == 0)
        error = "no scan worker runs";
    else if (alive < started)
        error = wh_pool_sprintf(c->pool, "%u of %u scan workers have stopped", started - alive,
                                started);
    json_t *v = component("jobservice", error);
    json_object_set_new(v, "workers", json_integer(started));
    json_object_set_new(v, "workers_alive", json_integer(alive));
    if (queue_ok) {
        int64_t now = wh_now_ms();
        int64_t age = q.oldest_queued_ms > 0 && now > q.oldest_queued_ms
                          ? (now - q.oldest_queued_ms) / 1000
                          : 0;
        json_object_set_new(v, "queue_depth", json_integer(q.pending));
        json_object_set_new(v, "running", json_integer(q.running));
        json_object_set_new(v, "oldest_pending_seconds", json_integer(age));
    }
    *healthy = error == NULL;
    return v;
}

/*
 * GET /health, Harbor's OverallHealthStatus: {"status","components":[...]},
 * the components sorted by name as Harbor sorts them, the whole unhealthy
 * when one is, and always 200 (Harbor's answer too: the body tells). Anyone
 * may ask: no sizes, paths or internal messages here, the log has them.
 */
int api_health(struct call *c)
{
    int64_t n = 0;
    bool jobs_ok = true;
    bool db_ok = wh_db_user_count(c->api->db, &n) == 0;
    const char *store_err = NULL;
    if (wh_store_check_space(c->api->store) < 0)
        store_err = "storage is full: uploads are refused until space is freed";
    else if (!storage_writable(c->api->store))
        store_err = "storage does not accept writes: a test blob could not be written, read "
                    "back and deleted (see the server log)";
    json_t *comps = json_array();
    json_array_append_new(comps, component("core", NULL));
    json_array_append_new(comps, component("database",
                                           db_ok ? NULL
                                                 : "the metadata database does not answer"));
    json_array_append_new(comps, jobservice(c, &jobs_ok));
    json_array_append_new(comps, component("registry", NULL));
    json_array_append_new(comps, component("storage", store_err));
    json_t *o = json_object();
    bool ok = db_ok && jobs_ok && !store_err;
    json_object_set_new(o, "status", json_string(ok ? "healthy" : "unhealthy"));
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
