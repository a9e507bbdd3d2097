/*
 * scanall.c: scan-all (see scand.h) — the schedule, stored as the setting
 * "scan_all_schedule", and one thread that fires it and feeds the runs into
 * the scan queue. The thread wakes at least once a second (or when kicked):
 * it ends the runs whose scans have all finished, queues the next batches
 * of a run that is still queueing (WH_SCANALL_BATCH artifacts per
 * transaction, so pushes and scans never wait long on the database), and
 * fires the schedule when its time has come.
 *
 * The next fire time is stored with the schedule and moved on in the same
 * transaction that starts the run, so a restart neither fires twice nor
 * forgets: a time missed while the server was down fires once at the start,
 * then the schedule continues from the cron expression.
 */
#include "scand/scand.h"

#include "common/loop.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WH_SCANALL_BATCH 1000   /* artifact ids looked at per transaction */
#define WH_SCANALL_TICK_MS 1000 /* longest sleep of the thread */
#define SETTING_MAX 1024        /* the schedule's JSON text incl. NUL */

struct wh_scanall {
    wh_db *db;
    wh_scand *scand;
    wh_loop *loop;
};

static const char *const types[] = {"Hourly", "Daily", "Weekly", "Custom", "Schedule", NULL};

/* Harbor's presets when a request names the type but no expression. */
static const char *preset(const char *type)
{
    if (strcmp(type, "Hourly") == 0)
        return "0 0 * * * *";
    if (strcmp(type, "Daily") == 0)
        return "0 0 0 * * *";
    if (strcmp(type, "Weekly") == 0)
        return "0 0 0 * * 0";
    return NULL;
}

static int schedule_parse(struct wh_scanall_schedule *out, const char *text)
{
    json_t *doc = json_loads(text, 0, NULL);
    memset(out, 0, sizeof(*out));
    const char *type = json_string_value(json_object_get(doc, "type"));
    const char *cron = json_string_value(json_object_get(doc, "cron"));
    if (type && cron) {
        snprintf(out->type, sizeof(out->type), "%s", type);
        snprintf(out->cron, sizeof(out->cron), "%s", cron);
        out->created_ms = json_integer_value(json_object_get(doc, "created_ms"));
        out->updated_ms = json_integer_value(json_object_get(doc, "updated_ms"));
        out->next_ms = json_integer_value(json_object_get(doc, "next_ms"));
    }
    json_decref(doc);
    return 0;
}

/* The stored text of a schedule (malloc'ed); "{}" for none. */
static char *schedule_text(const struct wh_scanall_schedule *s)
{
    if (!s->type[0])
        return wh_strdup("{}");
    json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:I}", "type", s->type, "cron", s->cron,
                          "created_ms", (json_int_t)s->created_ms, "updated_ms",
                          (json_int_t)s->updated_ms, "next_ms", (json_int_t)s->next_ms);
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    if (!text)
        abort(); /* jansson fails only without memory; our allocators abort then too */
    return text;
}

/* Reads the schedule and its stored text (`raw`, SETTING_MAX bytes). */
static int schedule_read(wh_db *db, struct wh_scanall_schedule *out, char *raw)
{
    int error = wh_db_setting_get(db, WH_SCANALL_SETTING, raw, SETTING_MAX);
    if (error == WH_ENOTFOUND) {
        memset(out, 0, sizeof(*out));
        raw[0] = '\0';
        return 0;
    }
    return error < 0 ? error : schedule_parse(out, raw);
}

int wh_scanall_schedule_get(wh_db *db, struct wh_scanall_schedule *out)
{
    char *raw = wh_malloc(SETTING_MAX);
    int error = schedule_read(db, out, raw);
    free(raw);
    return error;
}

bool wh_scanall_type_valid(const char *type)
{
    for (int i = 0; types[i]; i++)
        if (strcmp(type, types[i]) == 0)
            return true;
    return false;
}

/* The first fire time after `now_ms` of `cron` (ms): 0 or WH_EINVALID with a message. */
static int next_fire(int64_t *out, const char *cron, int64_t now_ms)
{
    struct wh_cron c;
    int64_t next = 0;
    int error = wh_cron_parse(&c, cron);
    if (error < 0)
        return error;
    if (wh_cron_next(&next, &c, now_ms / 1000) < 0)
        return wh_error_set(WH_EINVALID, "the expression matches no time in the next five years");
    *out = next * 1000;
    return 0;
}

int wh_scanall_schedule_set(wh_db *db, const char *type, const char *cron, int64_t now_ms,
                            struct wh_scanall_schedule *out)
{
    struct wh_scanall_schedule cur, s;
    char *text = NULL;
    int error;

    memset(&s, 0, sizeof(s));
    if ((error = wh_scanall_schedule_get(db, &cur)) < 0)
        return error;
    if (type && strcmp(type, "None") != 0) {
        if (!wh_scanall_type_valid(type))
            return wh_error_set(WH_EINVALID, "unknown schedule type %s", type);
        if ((!cron || !*cron) && preset(type))
            cron = preset(type);
        if (!cron || !*cron)
            return wh_error_set(WH_EINVALID, "a cron expression is required");
        if (cur.type[0] && strcmp(cur.type, type) == 0 && strcmp(cur.cron, cron) == 0) {
            if (out)
                *out = cur; /* unchanged: keeps its times (Harbor keeps the schedule) */
            return 0;
        }
        snprintf(s.type, sizeof(s.type), "%s", type);
        if (strlen(cron) >= sizeof(s.cron))
            return wh_error_set(WH_EINVALID, "longer than %d characters", WH_CRON_MAX - 1);
        snprintf(s.cron, sizeof(s.cron), "%s", cron);
        if ((error = next_fire(&s.next_ms, s.cron, now_ms)) < 0)
            return error;
        s.created_ms = cur.type[0] ? cur.created_ms : now_ms;
        s.updated_ms = now_ms;
    }
    text = schedule_text(&s);
    error = wh_db_setting_set(db, WH_SCANALL_SETTING, text, now_ms);
    free(text);
    if (error == 0 && out)
        *out = s;
    return error;
}

/* ---- the thread ---- */

static bool stopping(wh_scanall *sa)
{
    return atomic_load(wh_loop_stopping(sa->loop));
}

/* Queues the runs' batches until none is left (or the server stops). */
static void feed(wh_scanall *sa)
{
    bool more = true;
    while (more && !stopping(sa)) {
        int64_t queued = 0;
        if (wh_db_scanrun_step(sa->db, WH_SCANALL_BATCH, wh_now_ms(), &queued, &more) < 0) {
            wh_log_error("scan all: cannot queue scans: %s", wh_error_msg());
            return;
        }
        if (queued > 0)
            wh_scand_kick(sa->scand);
    }
}

/* Fires the schedule when its time has come; returns ms until the next fire (or a tick). */
static int64_t fire(wh_scanall *sa)
{
    struct wh_scanall_schedule s;
    char *raw = wh_malloc(SETTING_MAX);
    char *text = NULL;
    int64_t now = wh_now_ms(), wait = WH_SCANALL_TICK_MS, id = 0;
    int error = schedule_read(sa->db, &s, raw);
    if (error < 0) {
        wh_log_error("scan all: cannot read the schedule: %s", wh_error_msg());
        goto out;
    }
    if (!s.type[0])
        goto out;
    if (s.next_ms > now) {
        wait = s.next_ms - now < wait ? s.next_ms - now : wait;
        goto out;
    }
    /* due (or overdue after a stop): one run, and the next time after now */
    int64_t due = s.next_ms;
    if (next_fire(&s.next_ms, s.cron, now) < 0) {
        wh_log_error("scan all: the stored schedule \"%s\" is unusable: %s", s.cron,
                     wh_error_msg());
        s.next_ms = INT64_MAX; /* never again, until the schedule is set anew */
    }
    text = schedule_text(&s);
    error = wh_db_scanrun_fire(sa->db, WH_SCANALL_SETTING, raw, text, now, &id);
    if (error == WH_ECONFLICT)
        goto out; /* changed through the API meanwhile: read again at the next tick */
    if (error < 0) {
        wh_log_error("scan all: the schedule cannot fire: %s", wh_error_msg());
        goto out;
    }
    if (id > 0)
        wh_log_info("scan all: scheduled run %lld started (due %lld ms ago)", (long long)id,
                    (long long)(now - due));
    else
        wh_log_info("scan all: a run is going on, the scheduled one due now is skipped");
    wait = 0;
out:
    free(text);
    free(raw);
    return wait;
}

/* One turn of the thread: settles runs, feeds the queue, fires the schedule. */
static int64_t scanall_turn(void *arg)
{
    wh_scanall *sa = arg;
    if (wh_db_scanrun_settle(sa->db, wh_now_ms()) < 0)
        wh_log_error("scan all: %s", wh_error_msg());
    feed(sa);
    return fire(sa);
}

int wh_scanall_start(wh_scanall **out, wh_db *db, wh_scand *scand)
{
    wh_scanall *sa = wh_calloc(1, sizeof(*sa));
    sa->db = db;
    sa->scand = scand;
    *out = NULL;
    if (wh_loop_start(&sa->loop, "scan-all", scanall_turn, sa) < 0) {
        free(sa);
        return WH_ERROR;
    }
    *out = sa;
    return 0;
}

void wh_scanall_kick(wh_scanall *sa)
{
    if (sa)
        wh_loop_kick(sa->loop);
}

void wh_scanall_stop(wh_scanall *sa)
{
    if (!sa)
        return;
    wh_loop_stop(sa->loop);
    free(sa);
}
