/*
 * scanall.c: Harbor's scan-all API:
 * GET|POST|PUT /system/scanAll/schedule, POST /system/scanAll/stop,
 * GET /scans/all/metrics and /scans/schedule/metrics, for system
 * administrators. The answers and messages are Harbor's (its scan_all.go
 * handler); the runs and the schedule live in scand/ (scanall.c) and db/
 * (db_scanall.c): a request only records, the scan-all thread queues.
 */
#include "api/api_int.h"

#include <stdlib.h>
#include <string.h>

#include "scand/scand.h"

#define SCHEDULE_TYPES "[Hourly Daily Weekly Custom Manual None Schedule]"

/*
 * The {"schedule":{"type","cron"}} of the body: 0 with `*type` and `*cron`
 * (borrowed from the body; cron may be NULL), or answered (< 0). Shapes the
 * swagger refuses get go-swagger's 422, as in Harbor.
 */
static int schedule_body(struct call *c, const char **type, const char **cron)
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
        !wh_scanall_type_valid(*type))
        return api_error(c, 422, "UNPROCESSABLE_ENTITY",
                         "schedule.type in body should be one of " SCHEDULE_TYPES);
    return 0;
}

/* Sets (type NULL: removes) the schedule; a refused expression gets Harbor's 400 "invalid cron <cron>: <why>". */
static int set_schedule(struct call *c, const char *type, const char *cron)
{
    /* no type: a schedule all the same, as Harbor stores it */
    int error = wh_scanall_schedule_set(c->api->db, !type || *type ? type : "Custom", cron,
                                        wh_now_ms(), NULL);
    if (error == WH_EINVALID) {
        char shown[WH_CRON_MAX + 16];
        wh_log_escape(shown, sizeof(shown), cron ? cron : "");
        api_audit(c, 0, "scan all schedule", "configuration", "update", false);
        return api_error(c, 400, "BAD_REQUEST",
                         wh_pool_sprintf(c->pool, "invalid cron %s: %s", shown, wh_error_msg()));
    }
    api_audit(c, 0, "scan all schedule", "configuration", "update", error == 0);
    if (error < 0)
        return api_fail(c, error);
    wh_scanall_kick(c->api->cfg.scanall);
    return 0;
}

static int run_now(struct call *c)
{
    int64_t id = 0;
    int error = wh_db_scanrun_start(c->api->db, WH_SCAN_RUN_MANUAL, c->who.name, wh_now_ms(), &id);
    if (error == WH_ECONFLICT)
        /* Harbor's words, its spelling included: clients may match them */
        return api_error(c, 409, "CONFLICT",
                         "a previous scan all job aleady exits, its status is Running");
    api_audit(c, 0, "scan all", "scan_all", "scan", error == 0);
    if (error < 0)
        return api_fail(c, error);
    wh_log_info("scan all: run %lld started by %s", (long long)id, c->who.name);
    wh_scanall_kick(c->api->cfg.scanall);
    return api_ok(c, 201);
}

int api_scanall_schedule_create(struct call *c)
{
    const char *type, *cron;
    if (api_writable(c) < 0 || schedule_body(c, &type, &cron) < 0)
        return -1;
    if (strcmp(type, "None") == 0)
        return api_ok(c, 201);
    if (strcmp(type, "Manual") == 0)
        return run_now(c);
    struct wh_scanall_schedule cur;
    int error = wh_scanall_schedule_get(c->api->db, &cur);
    if (error < 0)
        return api_fail(c, error);
    if (cur.type[0])
        return api_error(c, 412, "PRECONDITION",
                         "fail to set schedule for scan all as always had one, please delete it "
                         "firstly then to re-schedule");
    if (set_schedule(c, type, cron) < 0)
        return -1;
    return api_ok(c, 201);
}

int api_scanall_schedule_update(struct call *c)
{
    const char *type, *cron;
    if (api_writable(c) < 0 || schedule_body(c, &type, &cron) < 0)
        return -1;
    if (strcmp(type, "Manual") == 0)
        return api_error(c, 400, "BAD_REQUEST",
                         "fail to update scan all schedule as wrong schedule type: Manual");
    if (set_schedule(c, strcmp(type, "None") == 0 ? NULL : type, cron) < 0)
        return -1;
    return api_ok(c, 200);
}

int api_scanall_schedule_get(struct call *c)
{
    struct wh_scanall_schedule s;
    int error = wh_scanall_schedule_get(c->api->db, &s);
    if (error < 0)
        return api_fail(c, error);
    /* no schedule: Harbor answers 200 with no body; "{}" parses as JSON and means the same */
    if (!s.type[0])
        return api_json(c, 200, json_object());
    json_t *obj = json_pack("{s:s,s:s}", "type", s.type, "cron", s.cron);
    if (s.next_ms > 0 && s.next_ms < INT64_MAX)
        json_object_set_new(obj, "next_scheduled_time", json_string(api_time(c, s.next_ms)));
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(1)); /* there is one scan-all schedule */
    json_object_set_new(o, "status", json_string("Scheduled"));
    json_object_set_new(o, "creation_time", json_string(api_time(c, s.created_ms)));
    json_object_set_new(o, "update_time", json_string(api_time(c, s.updated_ms)));
    json_object_set_new(o, "schedule", obj);
    return api_json(c, 200, o);
}

int api_scanall_stop(struct call *c)
{
    int64_t id = 0;
    if (api_writable(c) < 0)
        return -1;
    int error = wh_db_scanrun_stop(c->api->db, wh_now_ms(), &id);
    if (error == WH_ENOTFOUND)
        return api_error(c, 400, "BAD_REQUEST", "no scan all job is found currently");
    api_audit(c, 0, "scan all", "scan_all", "stop", error == 0);
    if (error < 0)
        return api_fail(c, error);
    wh_log_info("scan all: run %lld stopped by %s", (long long)id, c->who.name);
    return api_ok(c, 202);
}

/* Harbor's Stats of the latest run (of `trigger`; NULL: any); {} when there is none. */
static int metrics(struct call *c, const char *trigger)
{
    struct wh_scan_run r;
    int error = wh_db_scanrun_latest(c->api->db, trigger, &r);
    if (error == WH_ENOTFOUND)
        return api_json(c, 200, json_object());
    if (error < 0)
        return api_fail(c, error);
    json_t *m = json_pack("{s:I,s:I,s:I,s:I,s:I}", "Pending", (json_int_t)r.pending, "Running",
                          (json_int_t)r.running, "Success", (json_int_t)r.success, "Error",
                          (json_int_t)r.error, "Stopped", (json_int_t)r.stopped);
    json_t *o = json_object();
    json_object_set_new(o, "total", json_integer(r.total));
    json_object_set_new(o, "completed", json_integer(r.success + r.error + r.stopped));
    json_object_set_new(o, "metrics", m);
    json_object_set_new(o, "ongoing", json_boolean(r.ongoing));
    json_object_set_new(o, "trigger", json_string(r.trigger));
    return api_json(c, 200, o);
}

int api_scans_all_metrics(struct call *c)
{
    return metrics(c, NULL);
}

int api_scans_schedule_metrics(struct call *c)
{
    return metrics(c, WH_SCAN_RUN_SCHEDULE);
}
