/*
 * gc.c: Harbor's garbage collection and audit-log purge APIs, for system
 * administrators:
 *
 *   GET|POST|PUT /system/gc/schedule        the schedule; POST type Manual runs now
 *   GET /system/gc                          the history (paginated, newest first)
 *   GET /system/gc/{gc_id}                  one run
 *   PUT /system/gc/{gc_id}                  stop it
 *   GET /system/gc/{gc_id}/log              its log (text/plain)
 *
 * and the same under /system/purgeaudit. A request only records (a Pending
 * run, a schedule); the server's gc thread (gc/) executes the runs. The
 * history items are Harbor's GCHistory / ExecHistory with wharf's counts
 * beside them.
 */
#include "api/api_int.h"

#include <stdlib.h>
#include <string.h>

#include "gc/gc.h"

#define SCHEDULE_TYPES "[Hourly Daily Weekly Custom Manual None Schedule]"

/* The kind of the route: /system/gc... or /system/purgeaudit... */
static const char *kind_of(struct call *c)
{
    return strstr(c->route->path, "/purgeaudit") ? WH_GC_KIND_PURGE : WH_GC_KIND_GC;
}

static const char *job_name(const char *kind)
{
    return strcmp(kind, WH_GC_KIND_GC) == 0 ? "GARBAGE_COLLECTION" : "PURGE_AUDIT_LOG";
}

static const char *what(const char *kind)
{
    return strcmp(kind, WH_GC_KIND_GC) == 0 ? "garbage collection" : "audit log purge";
}

/* Harbor's schedule object; NULL when there is no schedule. */
static json_t *schedule_obj(struct call *c, const struct wh_gc_schedule *s)
{
    if (!s->type[0])
        return NULL;
    json_t *o = json_pack("{s:s,s:s}", "type", s->type, "cron", s->cron);
    if (s->next_ms > 0 && s->next_ms < INT64_MAX)
        json_object_set_new(o, "next_scheduled_time", json_string(api_time(c, s->next_ms)));
    return o;
}

static json_t *run_view(struct call *c, const struct wh_gc_run *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(r->id));
    json_object_set_new(o, "job_name", json_string(job_name(r->kind)));
    json_object_set_new(o, "job_kind",
                        json_string(strcmp(r->trigger, "Schedule") == 0 ? "SCHEDULE" : "MANUAL"));
    json_object_set_new(o, "job_trigger", json_string(r->trigger));
    json_object_set_new(o, "job_parameters", json_string(r->params));
    json_object_set_new(o, "job_status", json_string(r->status));
    json_object_set_new(o, "deleted", json_false());
    json_object_set_new(o, "operator", json_string(r->operator));
    json_object_set_new(o, "creation_time", json_string(api_time(c, r->created_ms)));
    json_object_set_new(o, "update_time", json_string(api_time(c, r->updated_ms)));
    if (r->start_ms > 0)
        json_object_set_new(o, "start_time", json_string(api_time(c, r->start_ms)));
    if (r->end_ms > 0)
        json_object_set_new(o, "end_time", json_string(api_time(c, r->end_ms)));
    if (strcmp(r->trigger, "Schedule") == 0) {
        struct wh_gc_schedule s;
        if (wh_gc_schedule_get(c->api->db, r->kind, &s) == 0) {
            json_t *so = schedule_obj(c, &s);
            if (so)
                json_object_set_new(o, "schedule", so);
        }
    }
    if (strcmp(r->kind, WH_GC_KIND_GC) == 0) {
        json_object_set_new(o, "blobs_deleted", json_integer(r->blobs));
        json_object_set_new(o, "bytes_freed", json_integer(r->bytes));
        json_object_set_new(o, "artifacts_deleted", json_integer(r->artifacts));
    } else {
        json_object_set_new(o, "audit_entries_purged", json_integer(r->purged));
    }
    json_object_set_new(o, "failures", json_integer(r->failures));
    return o;
}

/*
 * Reads {"schedule":{"type","cron"},"parameters":{...}}: 0 with `*type`,
 * `*cron` (may be NULL) and `*params` (JSON text, pool memory), or
 * answered (< 0).
 */
static int schedule_body(struct call *c, const char *kind, const char **type, const char **cron,
                         const char **params)
{
    json_t *b = api_body(c);
    if (!b)
        return -1;
    json_t *s = json_object_get(b, "schedule");
    if (!json_is_object(s))
        return api_error(c, 422, "UNPROCESSABLE_ENTITY", "schedule in body is required");
    json_t *t = json_object_get(s, "type"), *cr = json_object_get(s, "cron");
    if (t && !json_is_string(t))
        return api_error(c, 422, "UNPROCESSABLE_ENTITY",
                         "schedule.type in body must be of type string");
    if (cr && !json_is_null(cr) && !json_is_string(cr))
        return api_error(c, 422, "UNPROCESSABLE_ENTITY",
                         "schedule.cron in body must be of type string");
    *type = t ? json_string_value(t) : "";
    *cron = json_string_value(cr);
    if (**type && strcmp(*type, "Manual") != 0 && strcmp(*type, "None") != 0 &&
        !wh_gc_schedule_type_valid(*type))
        return api_error(c, 422, "UNPROCESSABLE_ENTITY",
                         "schedule.type in body should be one of " SCHEDULE_TYPES);
    struct wh_gc_params p;
    json_t *po = json_object_get(b, "parameters");
    if (po && !json_is_null(po) && !json_is_object(po))
        return api_error(c, 400, "BAD_REQUEST", "parameters must be an object");
    if (wh_gc_params_parse(&p, kind, po) < 0)
        return api_error(c, 400, "BAD_REQUEST", wh_pool_strdup(c->pool, wh_error_msg()));
    char *text = wh_gc_params_text(&p, kind);
    *params = wh_pool_strdup(c->pool, text);
    free(text);
    return 0;
}

static int run_now(struct call *c, const char *kind, const char *params)
{
    int64_t id = 0;
    int error = wh_db_gcrun_create(c->api->db, kind, "Manual", c->who.name, params, false,
                                   wh_now_ms(), &id);
    if (error == WH_ECONFLICT)
        return api_error(c, 409, "CONFLICT",
                         wh_pool_sprintf(c->pool, "a %s is already pending or running",
                                         what(kind)));
    api_audit(c, 0, what(kind), "system", "create", error == 0);
    if (error < 0)
        return api_fail(c, error);
    wh_log_info("%s: run %lld asked for by %s", kind, (long long)id, c->who.name);
    wh_gc_kick(c->api->cfg.gc);
    wh_resp_header(c->r, "Location",
                   wh_pool_sprintf(c->pool, API_PREFIX "/system/%s/%lld",
                                   strcmp(kind, WH_GC_KIND_GC) == 0 ? "gc" : "purgeaudit",
                                   (long long)id));
    return api_ok(c, 201);
}

static int set_schedule(struct call *c, const char *kind, const char *type, const char *cron,
                        const char *params)
{
    int error = wh_gc_schedule_set(c->api->db, kind, !type || *type ? type : "Custom", cron,
                                   params, wh_now_ms(), NULL);
    const char *res = wh_pool_sprintf(c->pool, "%s schedule", what(kind));
    if (error == WH_EINVALID) {
        char shown[WH_CRON_MAX + 16];
        wh_log_escape(shown, sizeof(shown), cron ? cron : "");
        api_audit(c, 0, res, "configuration", "update", false);
        return api_error(c, 400, "BAD_REQUEST",
                         wh_pool_sprintf(c->pool, "invalid cron %s: %s", shown, wh_error_msg()));
    }
    api_audit(c, 0, res, "configuration", "update", error == 0);
    if (error < 0)
        return api_fail(c, error);
    wh_gc_kick(c->api->cfg.gc);
    return 0;
}

int api_gc_schedule_create(struct call *c)
{
    const char *kind = kind_of(c), *type, *cron, *params;
    if (schedule_body(c, kind, &type, &cron, &params) < 0)
        return -1;
    if (strcmp(type, "Manual") == 0)
        return run_now(c, kind, params);
    if (set_schedule(c, kind, strcmp(type, "None") == 0 ? NULL : type, cron, params) < 0)
        return -1;
    return api_ok(c, 201);
}

int api_gc_schedule_update(struct call *c)
{
    const char *kind = kind_of(c), *type, *cron, *params;
    if (schedule_body(c, kind, &type, &cron, &params) < 0)
        return -1;
    if (strcmp(type, "Manual") == 0)
        return api_error(c, 400, "BAD_REQUEST",
                         wh_pool_sprintf(c->pool, "fail to update %s schedule as wrong schedule "
                                                  "type: Manual",
                                         what(kind)));
    if (set_schedule(c, kind, strcmp(type, "None") == 0 ? NULL : type, cron, params) < 0)
        return -1;
    return api_ok(c, 200);
}

int api_gc_schedule_get(struct call *c)
{
    const char *kind = kind_of(c);
    struct wh_gc_schedule s;
    int error = wh_gc_schedule_get(c->api->db, kind, &s);
    if (error < 0)
        return api_fail(c, error);
    if (!s.type[0])
        return api_json(c, 200, json_object());
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(1)); /* one schedule per kind */
    json_object_set_new(o, "job_name", json_string(job_name(kind)));
    json_object_set_new(o, "job_kind", json_string("SCHEDULE"));
    json_object_set_new(o, "job_parameters", json_string(s.params));
    json_object_set_new(o, "job_status", json_string("Scheduled"));
    json_object_set_new(o, "deleted", json_false());
    json_object_set_new(o, "creation_time", json_string(api_time(c, s.created_ms)));
    json_object_set_new(o, "update_time", json_string(api_time(c, s.updated_ms)));
    json_object_set_new(o, "schedule", schedule_obj(c, &s));
    json_t *params = json_loads(s.params, 0, NULL);
    json_object_set_new(o, "parameters", params ? params : json_object());
    return api_json(c, 200, o);
}

static int add_run(const struct wh_gc_run *r, void *payload)
{
    struct call *c = ((void **)payload)[0];
    json_array_append_new(((void **)payload)[1], run_view(c, r));
    return 0;
}

int api_gc_list(struct call *c)
{
    int64_t offset, limit, total = 0;
    if (api_page(c, &offset, &limit) < 0)
        return -1;
    json_t *arr = json_array();
    void *ctx[2] = {c, arr};
    int error = wh_db_gcrun_list(c->api->db, kind_of(c), offset, limit, add_run, ctx, &total);
    if (error < 0) {
        json_decref(arr);
        return api_fail(c, error);
    }
    return api_list(c, arr, total, offset, limit);
}

/* The run of the path's {gc_id}: 0, or answered (< 0). */
static int load_run(struct call *c, struct wh_gc_run *out)
{
    int64_t id;
    if (api_id(c->param[0], &id) < 0)
        return api_error(c, 400, "BAD_REQUEST",
                         wh_pool_sprintf(c->pool, "invalid id: %s", "a positive integer is "
                                                                    "required"));
    int error = wh_db_gcrun_get(c->api->db, kind_of(c), id, out);
    if (error == WH_ENOTFOUND)
        return api_error(c, 404, "NOT_FOUND",
                         wh_pool_sprintf(c->pool, "%s %lld not found", what(kind_of(c)),
                                         (long long)id));
    if (error < 0)
        return api_fail(c, error);
    return 0;
}

int api_gc_get(struct call *c)
{
    struct wh_gc_run r;
    if (load_run(c, &r) < 0)
        return -1;
    return api_json(c, 200, run_view(c, &r));
}

int api_gc_stop(struct call *c)
{
    struct wh_gc_run r;
    if (load_run(c, &r) < 0)
        return -1;
    int error = wh_db_gcrun_stop(c->api->db, r.kind, r.id, wh_now_ms());
    api_audit(c, 0, what(r.kind), "system", "stop", error == 0);
    if (error < 0)
        return api_fail(c, error);
    wh_log_info("%s: run %lld stopped by %s", r.kind, (long long)r.id, c->who.name);
    return api_ok(c, 200);
}

int api_gc_log(struct call *c)
{
    struct wh_gc_run r;
    char *log = NULL;
    if (load_run(c, &r) < 0)
        return -1;
    int error = wh_db_gcrun_log(c->api->db, r.kind, r.id, &log);
    if (error < 0)
        return api_fail(c, error);
    wh_resp_send_copy(c->r, 200, "text/plain; charset=utf-8", log, strlen(log));
    free(log);
    return 0;
}
