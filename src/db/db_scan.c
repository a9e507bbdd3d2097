/*
 * db_scan.c: the scan job queue (schema 7). One scan_job row per artifact
 * holds its latest scan: queued (Pending), taken by a worker (Running) or
 * finished (Success with its report, Error with a log, Stopped). Every
 * transition is one statement, so two workers never take the same job and a
 * crash leaves a row in a state that wh_db_scan_recover puts right.
 */
#include "db/db_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Image manifests whose config is an image config: what the scanner reads. */
static bool scannable(const struct wh_artifact_in *a)
{
    if (!a->media_type || !a->artifact_type)
        return false;
    bool manifest = strcmp(a->media_type, "application/vnd.oci.image.manifest.v1+json") == 0 ||
                    strcmp(a->media_type,
                           "application/vnd.docker.distribution.manifest.v2+json") == 0;
    bool image = strcmp(a->artifact_type, "application/vnd.oci.image.config.v1+json") == 0 ||
                 strcmp(a->artifact_type, "application/vnd.docker.container.image.v1+json") == 0;
    return manifest && image;
}

bool db_auto_scan(const char *metadata)
{
    /* Harbor compares boolean metadata with "true" and "1", ignoring case; a
     * JSON true or 1 counts too; metadata that is somehow not JSON is off */
    json_t *doc = metadata ? json_loads(metadata, 0, NULL) : NULL;
    json_t *v = json_object_get(doc, "auto_scan");
    bool on = json_is_true(v) || (json_is_integer(v) && json_integer_value(v) == 1);
    if (json_is_string(v)) {
        const char *t = json_string_value(v);
        on = strcasecmp(t, "true") == 0 || strcmp(t, "1") == 0;
    }
    json_decref(doc);
    return on;
}

int db_scan_enqueue(struct conn *c, int64_t artifact_id, int64_t now_ms, int64_t run_id,
                    const char *operator, bool requeue)
{
    /* an artifact pushed again keeps the scan it has */
    static const char once[] =
        "INSERT INTO scan_job(artifact_id, report_id, status, queued_ms, due_ms)"
        " VALUES(?1, ?2, 'Pending', ?3, ?3) ON CONFLICT(artifact_id) DO NOTHING";
    /* a scan-all queues again what is neither pending nor running */
    static const char again[] =
        "INSERT INTO scan_job(artifact_id, report_id, status, queued_ms, due_ms, run_id, operator)"
        " VALUES(?1, ?2, 'Pending', ?3, ?3, ?4, ?5)"
        " ON CONFLICT(artifact_id) DO UPDATE SET report_id = excluded.report_id,"
        " status = 'Pending', queued_ms = excluded.queued_ms, due_ms = excluded.due_ms,"
        " start_ms = 0, end_ms = 0,"
        " attempts = 0, log = '', run_id = excluded.run_id, operator = excluded.operator"
        " WHERE scan_job.status NOT IN ('Pending', 'Running')";
    char report_id[33]; /* what an external scanner's token is checked against: random */
    wh_random_hex(report_id, 16);
    db_stmt *s = db_stmt(c, requeue ? again : once);
    db_bind_i64(s, 1, artifact_id);
    db_bind_text(s, 2, report_id);
    db_bind_i64(s, 3, now_ms);
    if (requeue) {
        if (run_id > 0)
            db_bind_i64(s, 4, run_id);
        db_bind_text(s, 5, operator ? operator : "");
    }
    return db_run(c, s);
}

int db_scan_autoqueue(struct conn *c, int64_t artifact_id, const struct wh_artifact_in *a,
                      int64_t now_ms)
{
    static const char meta[] = "SELECT metadata FROM project WHERE id = ?1";
    if (!scannable(a))
        return 0;
    db_stmt *s = db_stmt(c, meta);
    db_bind_i64(s, 1, a->project_id);
    int error = db_one_row(c, s, "project");
    if (error == WH_ENOTFOUND)
        return 0;
    if (error < 0)
        return error;
    bool on = db_auto_scan(db_col_text(s, 0));
    db_done(s);
    if (!on)
        return 0;
    error = db_scan_enqueue(c, artifact_id, now_ms, 0, NULL, false);
    if (error == 0 && db_changes(c) > 0)
        db_note_scan_queued(c);
    return error;
}

#define JOB_COLS                                                                                   \
    "j.artifact_id, j.report_id, j.status, a.digest, j.queued_ms, j.start_ms, j.end_ms,"          \
    " j.attempts, j.severity, coalesce(j.summary, ''), j.scanner, j.due_ms"

static void job_row(db_stmt *s, struct wh_scan_job *out)
{
    memset(out, 0, sizeof(*out));
    out->artifact_id = db_col_i64(s, 0);
    db_copy_col(out->report_id, sizeof(out->report_id), s, 1);
    db_copy_col(out->status, sizeof(out->status), s, 2);
    db_copy_col(out->digest, sizeof(out->digest), s, 3);
    out->queued_ms = db_col_i64(s, 4);
    out->start_ms = db_col_i64(s, 5);
    out->end_ms = db_col_i64(s, 6);
    out->attempts = db_col_i64(s, 7);
    db_copy_col(out->severity, sizeof(out->severity), s, 8);
    db_copy_col(out->summary, sizeof(out->summary), s, 9);
    db_copy_col(out->scanner, sizeof(out->scanner), s, 10);
    out->due_ms = db_col_i64(s, 11);
}

int wh_db_scan_get(wh_db *db, int64_t artifact_id, struct wh_scan_job *out)
{
    static const char sql[] = "SELECT " JOB_COLS " FROM scan_job j"
                              " JOIN artifact a ON a.id = j.artifact_id WHERE j.artifact_id = ?1";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, artifact_id);
    int error = db_one_row(c, s, "scan");
    if (error < 0)
        return error;
    job_row(s, out);
    db_done(s);
    return 0;
}

static bool active(const char *status)
{
    return strcmp(status, WH_SCAN_PENDING) == 0 || strcmp(status, WH_SCAN_RUNNING) == 0;
}

static void copy_status(char *out, const char *status)
{
    if (out)
        snprintf(out, 16, "%s", status);
}

static int request_tx(struct conn *c, wh_db *db, int64_t artifact_id, const char *report_id,
                      int64_t now_ms, const char *operator, char *status_out)
{
    static const char has[] = "SELECT 1 FROM artifact WHERE id = ?1";
    static const char upsert[] =
        "INSERT INTO scan_job(artifact_id, report_id, status, queued_ms, due_ms, operator)"
        " VALUES(?1, ?2, 'Pending', ?3, ?3, ?4)"
        " ON CONFLICT(artifact_id) DO UPDATE SET report_id = ?2, status = 'Pending',"
        " queued_ms = ?3, due_ms = ?3, start_ms = 0, end_ms = 0, attempts = 0, log = '', scanner = '',"
        " run_id = NULL, operator = ?4";
    struct wh_scan_job *cur = wh_malloc(sizeof(*cur));
    bool exists = false;
    int error = wh_db_scan_get(db, artifact_id, cur);
    if (error == 0 && active(cur->status)) {
        copy_status(status_out, cur->status);
        error = wh_error_set(WH_ECONFLICT, "a previous scan process is %s", cur->status);
        goto out;
    }
    if (error < 0 && error != WH_ENOTFOUND)
        goto out;
    db_stmt *s = db_stmt(c, has);
    db_bind_i64(s, 1, artifact_id);
    if ((error = db_exists(c, s, &exists)) < 0)
        goto out;
    if (!exists) {
        error = wh_error_set(WH_ENOTFOUND, "artifact not found");
        goto out;
    }
    s = db_stmt(c, upsert);
    db_bind_i64(s, 1, artifact_id);
    db_bind_text(s, 2, report_id);
    db_bind_i64(s, 3, now_ms);
    db_bind_text(s, 4, operator ? operator : "");
    error = db_run(c, s);
out:
    free(cur);
    return error;
}

int wh_db_scan_request_by(wh_db *db, int64_t artifact_id, const char *report_id, int64_t now_ms,
                          const char *operator, char *status_out)
{
    CONN_WRITE_OR_FAIL(c, db);
    int error = db_tx_begin(c);
    if (error < 0)
        return error;
    return db_tx_end(c, request_tx(c, db, artifact_id, report_id, now_ms, operator, status_out));
}

int wh_db_scan_request(wh_db *db, int64_t artifact_id, const char *report_id, int64_t now_ms,
                       char *status_out)
{
    return wh_db_scan_request_by(db, artifact_id, report_id, now_ms, NULL, status_out);
}

int wh_db_scan_claim(wh_db *db, int64_t now_ms, struct wh_scan_job *out)
{
    /* a read first: an idle worker's poll takes no write lock (the index scan_job_due
     * answers both: a job waiting for its retry is past the range) */
    static const char peek[] =
        "SELECT 1 FROM scan_job WHERE status = 'Pending' AND due_ms <= ?1 LIMIT 1";
    static const char take[] =
        "UPDATE scan_job SET status = 'Running', start_ms = ?1, end_ms = 0,"
        " attempts = attempts + 1, holder = ?2, lease_ms = ?3 WHERE status = 'Pending' AND"
        " artifact_id = (SELECT artifact_id FROM scan_job WHERE status = 'Pending'"
        " AND due_ms <= ?1 ORDER BY due_ms, artifact_id LIMIT 1) RETURNING artifact_id";
    /*
     * PostgreSQL, several nodes on one queue: the job another node's claim has
     * locked is skipped, not waited for (and then found taken); SQLite has one
     * writer and no row locks.
     */
    static const char take_skip_locked[] =
        "UPDATE scan_job SET status = 'Running', start_ms = ?1, end_ms = 0,"
        " attempts = attempts + 1, holder = ?2, lease_ms = ?3 WHERE status = 'Pending' AND"
        " artifact_id = (SELECT artifact_id FROM scan_job WHERE status = 'Pending'"
        " AND due_ms <= ?1 ORDER BY due_ms, artifact_id LIMIT 1 FOR UPDATE SKIP LOCKED)"
        " RETURNING artifact_id";
    CONN_WRITE_OR_FAIL(c, db);
    bool any = false;
    db_stmt *p = db_stmt(c, peek);
    db_bind_i64(p, 1, now_ms);
    int error = db_exists(c, p, &any);
    if (error < 0)
        return error;
    if (!any)
        return WH_ENOTFOUND;
    bool pg = strcmp(db_driver_name(c), "postgres") == 0;
    db_stmt *s = db_stmt(c, pg ? take_skip_locked : take);
    db_bind_i64(s, 1, now_ms);
    db_bind_text(s, 2, db_node(c));
    db_bind_i64(s, 3, now_ms + wh_db_scan_lease(db));
    int rc = db_step(s);
    int64_t id = rc == DB_ROW ? db_col_i64(s, 0) : 0;
    error = rc >= 0 ? 0 : db_fail(c);
    db_done(s);
    if (error < 0)
        return error;
    if (id == 0)
        return WH_ENOTFOUND;
    return wh_db_scan_get(db, id, out);
}

int wh_db_scan_finish(wh_db *db, int64_t artifact_id, const char *report_id, const char *status,
                      const char *severity, const char *summary, const char *report,
                      const char *log, int64_t now_ms)
{
    /* a report is replaced only by a successful scan's */
    static const char sql[] =
        "UPDATE scan_job SET status = ?3, end_ms = ?4, log = ?7,"
        " severity = CASE WHEN ?3 = 'Success' THEN ?5 ELSE severity END,"
        " summary = CASE WHEN ?3 = 'Success' THEN ?6 ELSE summary END,"
        " report = CASE WHEN ?3 = 'Success' THEN ?8 ELSE report END"
        " WHERE artifact_id = ?1 AND report_id = ?2 AND status = 'Running'";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, artifact_id);
    db_bind_text(s, 2, report_id);
    db_bind_text(s, 3, status);
    db_bind_i64(s, 4, now_ms);
    db_bind_text(s, 5, severity ? severity : "");
    db_bind_text(s, 6, summary);
    db_bind_text(s, 7, log ? log : "");
    db_bind_text(s, 8, report);
    return db_change(c, s, "running scan");
}

/* The length of the first `cap` bytes at most of `s`, cut on a UTF-8 character boundary. */
static int utf8_cut(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap + 1);
    if (n > cap) {
        n = cap;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    return (int)n;
}

bool db_retry_plan(wh_db *db, int64_t attempts, const char *why, int64_t now_ms, char *line,
                   size_t cap, int64_t *due_out)
{
    int64_t max = wh_db_scan_attempts(db);
    bool last = attempts >= max;
    int64_t due = last ? 0 : now_ms + wh_db_scan_retry_delay(db, attempts);
    int wn = utf8_cut(why, 700);
    if (last)
        snprintf(line, cap, "attempt %lld of %lld failed: %.*s\ngave up after %lld attempts\n",
                 (long long)attempts, (long long)max, wn, why, (long long)attempts);
    else
        snprintf(line, cap, "attempt %lld of %lld failed: %.*s\nretried in %lld s\n",
                 (long long)attempts, (long long)max, wn, why,
                 (long long)((due - now_ms + 999) / 1000));
    *due_out = due;
    return last;
}

int wh_db_scan_retry(wh_db *db, int64_t artifact_id, const char *report_id, const char *why,
                     int64_t now_ms, char *status_out, int64_t *due_out)
{
    static const char look[] = "SELECT attempts FROM scan_job"
                               " WHERE artifact_id = ?1 AND report_id = ?2 AND status = 'Running'";
    /* guarded by the attempts read: a job taken back and claimed again meanwhile is
     * another attempt's to record */
    static const char again[] =
        "UPDATE scan_job SET status = ?4, due_ms = ?5, end_ms = ?6, holder = '', log = log || ?7"
        " WHERE artifact_id = ?1 AND report_id = ?2 AND status = 'Running' AND attempts = ?3";
    char line[WH_SCAN_LOG_LINE_MAX];
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, look);
    db_bind_i64(s, 1, artifact_id);
    db_bind_text(s, 2, report_id);
    int error = db_one_row(c, s, "running scan");
    if (error < 0)
        return error;
    int64_t attempts = db_col_i64(s, 0), due;
    db_done(s);
    bool last = db_retry_plan(db, attempts, why, now_ms, line, sizeof(line), &due);
    s = db_stmt(c, again);
    db_bind_i64(s, 1, artifact_id);
    db_bind_text(s, 2, report_id);
    db_bind_i64(s, 3, attempts);
    db_bind_text(s, 4, last ? WH_SCAN_ERROR : WH_SCAN_PENDING);
    db_bind_i64(s, 5, due);
    db_bind_i64(s, 6, last ? now_ms : 0);
    db_bind_text(s, 7, line);
    if ((error = db_change(c, s, "running scan")) < 0)
        return error;
    copy_status(status_out, last ? WH_SCAN_ERROR : WH_SCAN_PENDING);
    if (due_out)
        *due_out = due;
    return 0;
}

int wh_db_scan_stop(wh_db *db, int64_t artifact_id, int64_t now_ms, char *status_out)
{
    static const char sql[] =
        "UPDATE scan_job SET status = 'Stopped', end_ms = ?2, log = 'stopped by request'"
        " WHERE artifact_id = ?1 AND status IN ('Pending', 'Running')";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, artifact_id);
    db_bind_i64(s, 2, now_ms);
    int error = db_run(c, s);
    if (error < 0 || db_changes(c) > 0)
        return error;
    struct wh_scan_job *cur = wh_malloc(sizeof(*cur));
    error = wh_db_scan_get(db, artifact_id, cur);
    if (error == 0) {
        copy_status(status_out, cur->status);
        error = wh_error_set(WH_ECONFLICT, "the scan is %s, not pending or running", cur->status);
    }
    free(cur);
    return error;
}

static int text_col(wh_db *db, const char *sql, int64_t artifact_id, const char *report_id,
                    const char *what, char **out)
{
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, artifact_id);
    if (report_id)
        db_bind_text(s, 2, report_id);
    int error = db_one_row(c, s, what);
    if (error < 0)
        return error;
    const char *t = db_col_text(s, 0);
    *out = t ? wh_strdup(t) : NULL;
    db_done(s);
    return t ? 0 : wh_error_set(WH_ENOTFOUND, "%s not found", what);
}

int wh_db_scan_report(wh_db *db, int64_t artifact_id, char **out)
{
    static const char sql[] = "SELECT report FROM scan_job WHERE artifact_id = ?1";
    return text_col(db, sql, artifact_id, NULL, "scan report", out);
}

int wh_db_scan_log(wh_db *db, int64_t artifact_id, const char *report_id, char **out)
{
    static const char sql[] = "SELECT log FROM scan_job WHERE artifact_id = ?1 AND report_id = ?2";
    return text_col(db, sql, artifact_id, report_id, "scan log", out);
}

int db_lease_renew(wh_db *db, const char *sql, int64_t now_ms)
{
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, db_node(c));
    db_bind_i64(s, 2, now_ms + wh_db_scan_lease(db));
    return db_run(c, s);
}

int db_lease_recover(wh_db *db, const char *sql, int64_t now_ms, bool at_start,
                     int64_t *requeued)
{
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, wh_db_scan_attempts(db));
    db_bind_i64(s, 2, now_ms);
    db_bind_i64(s, 3, at_start ? 1 : 0);
    db_bind_text(s, 4, db_node(c));
    db_bind_text(s, 5, "\n");
    return db_count_pending(c, s, requeued);
}

int wh_db_scan_renew(wh_db *db, int64_t now_ms)
{
    static const char sql[] = "UPDATE scan_job SET lease_ms = ?2"
                              " WHERE status = 'Running' AND holder = ?1";
    return db_lease_renew(db, sql, now_ms);
}

int wh_db_scan_recover(wh_db *db, int64_t now_ms, bool at_start, int64_t *requeued)
{
    /* a line per attempt cut off, as wh_db_scan_retry writes for a failed one */
    static const char sql[] =
        "UPDATE scan_job SET"
        " status = CASE WHEN attempts >= ?1 THEN 'Error' ELSE 'Pending' END,"
        " log = log || 'attempt ' || attempts || ' of ' || ?1 || ' was cut off: the node running"
        " it stopped (' || CASE WHEN holder = '' THEN 'unnamed' ELSE holder END || ')' || ?5 ||"
        " CASE WHEN attempts >= ?1 THEN 'gave up after ' || attempts || ' attempts' || ?5"
        " ELSE '' END,"
        " end_ms = CASE WHEN attempts >= ?1 THEN ?2 ELSE 0 END, due_ms = ?2, holder = ''"
        " WHERE status = 'Running' AND (lease_ms < ?2 OR (?3 = 1 AND holder = ?4))"
        " RETURNING status";
    return db_lease_recover(db, sql, now_ms, at_start, requeued);
}
