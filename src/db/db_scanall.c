/*
 * db_scanall.c: scan-all runs (schema 11), Harbor's "scan all" executions.
 * A run row remembers who or what started it and how far
 * it has queued: the artifacts with an id up to `cursor` have been looked
 * at, and it stops at `last_id`, the highest id when it started (artifacts
 * pushed later are the push's business). Each batch queues the scannable
 * ones in one short transaction and tags their scan_job rows with the run,
 * so the run's counts are a GROUP BY over its rows while it is going on,
 * and are written into the run row when it ends (the rows may be scanned
 * again later, for other reasons).
 *
 * Audit entries of scans are written by the trigger scan_job_audit
 * (db_sqlite.c, schema 11), in the statement that ends a scan.
 */
#include "db/db_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * What a scan-all queues: image manifests with an image configuration (the
 * test the pull gate and scan on push use), neither accessories (an
 * artifact with a subject) nor signatures tagged the cosign way. An index
 * is not scanned itself: its image children are artifacts of their own.
 */
#define SCANNABLE_SQL                                                                              \
    " a.media_type IN ('application/vnd.oci.image.manifest.v1+json',"                             \
    " 'application/vnd.docker.distribution.manifest.v2+json') AND a.artifact_type IN"             \
    " ('application/vnd.oci.image.config.v1+json',"                                               \
    " 'application/vnd.docker.container.image.v1+json') AND a.subject IS NULL"                    \
    " AND NOT EXISTS(SELECT 1 FROM tag t WHERE t.artifact_id = a.id AND" DB_COSIGN_TAG("t.name") ")"

/* The counts of run ?1 from its rows, frozen into the run when it ends. */
#define FREEZE_SQL                                                                                 \
    " pending = (SELECT count(*) FROM scan_job WHERE run_id = scan_run.id AND status = 'Pending'),"  \
    " running = (SELECT count(*) FROM scan_job WHERE run_id = scan_run.id AND status = 'Running'),"  \
    " success = (SELECT count(*) FROM scan_job WHERE run_id = scan_run.id AND status = 'Success'),"  \
    " error = (SELECT count(*) FROM scan_job WHERE run_id = scan_run.id AND status = 'Error'),"      \
    " stopped = (SELECT count(*) FROM scan_job WHERE run_id = scan_run.id AND status = 'Stopped')"

/* Ends the runs that queued everything and whose scans have all finished. */
static int settle(struct conn *c, int64_t now_ms)
{
    static const char sql[] =
        "UPDATE scan_run SET" FREEZE_SQL ", end_ms = ?1,"
        " status = CASE WHEN EXISTS(SELECT 1 FROM scan_job WHERE run_id = scan_run.id"
        "  AND status = 'Error') THEN 'Error' ELSE 'Success' END"
        " WHERE status = 'Running' AND cursor >= last_id AND NOT EXISTS(SELECT 1 FROM scan_job"
        "  WHERE run_id = scan_run.id AND status IN ('Pending', 'Running'))";
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, now_ms);
    return db_run(c, s);
}

int wh_db_scanrun_settle(wh_db *db, int64_t now_ms)
{
    /* a read first: an idle server's tick takes no write lock */
    static const char peek[] = "SELECT 1 FROM scan_run WHERE status = 'Running' LIMIT 1";
    CONN_OR_FAIL(c, db);
    bool any = false;
    int error = db_exists(c, db_stmt(c, peek), &any);
    return error < 0 || !any ? error : settle(c, now_ms);
}

/* Inside a transaction: a new run, unless one is going on (WH_ECONFLICT). */
static int start_tx(struct conn *c, const char *trigger, const char *operator, int64_t now_ms,
                    int64_t *id_out)
{
    static const char busy[] = "SELECT 1 FROM scan_run WHERE status = 'Running' LIMIT 1";
    static const char ins[] =
        "INSERT INTO scan_run(trigger_type, operator, status, start_ms, last_id)"
        " VALUES(?1, ?2, 'Running', ?3, (SELECT coalesce(max(id), 0) FROM artifact))"
        " RETURNING id";
    bool running = false;
    int error;
    if ((error = settle(c, now_ms)) < 0 || (error = db_exists(c, db_stmt(c, busy), &running)) < 0)
        return error;
    if (running)
        return wh_error_set(WH_ECONFLICT, "a scan-all run is going on");
    db_stmt *s = db_stmt(c, ins);
    db_bind_text(s, 1, trigger);
    db_bind_text(s, 2, operator ? operator : "");
    db_bind_i64(s, 3, now_ms);
    return db_insert(c, s, "scan run", id_out);
}

int wh_db_scanrun_start(wh_db *db, const char *trigger, const char *operator, int64_t now_ms,
                        int64_t *id_out)
{
    CONN_WRITE_OR_FAIL(c, db);
    int error = db_tx_begin(c);
    if (error < 0)
        return error;
    return db_tx_end(c, start_tx(c, trigger, operator, now_ms, id_out));
}

static int fire_tx(struct conn *c, const char *name, const char *expect, const char *value,
                   int64_t now_ms, int64_t *id_out)
{
    static const char get[] = "SELECT value FROM setting WHERE name = ?1";
    static const char set[] = "UPDATE setting SET value = ?2, updated_ms = ?3 WHERE name = ?1";
    db_stmt *s = db_stmt(c, get);
    db_bind_text(s, 1, name);
    int error = db_one_row(c, s, "setting");
    if (error < 0)
        return error;
    const char *cur = db_col_text(s, 0);
    bool same = cur && strcmp(cur, expect) == 0;
    db_done(s);
    if (!same)
        return wh_error_set(WH_ECONFLICT, "setting %s changed", name);
    s = db_stmt(c, set);
    db_bind_text(s, 1, name);
    db_bind_text(s, 2, value);
    db_bind_i64(s, 3, now_ms);
    if ((error = db_run(c, s)) < 0)
        return error;
    *id_out = 0;
    error = start_tx(c, WH_SCAN_RUN_SCHEDULE, "", now_ms, id_out);
    return error == WH_ECONFLICT ? 0 : error;
}

int wh_db_scanrun_fire(wh_db *db, const char *name, const char *expect, const char *value,
                       int64_t now_ms, int64_t *id_out)
{
    CONN_WRITE_OR_FAIL(c, db);
    int error = db_tx_begin(c);
    if (error < 0)
        return error;
    return db_tx_end(c, fire_tx(c, name, expect, value, now_ms, id_out));
}

static int step_tx(struct conn *c, int64_t batch, int64_t now_ms, int64_t *queued, bool *more)
{
    static const char next[] =
        "SELECT id, cursor, last_id, operator FROM scan_run WHERE status = 'Running'"
        " AND cursor < last_id ORDER BY id LIMIT 1";
    static const char upto[] =
        "SELECT coalesce(max(id), ?2) FROM (SELECT id FROM artifact WHERE id > ?1 AND id <= ?2"
        " ORDER BY id LIMIT ?3) AS page";
    static const char queue[] =
        "SELECT a.id FROM artifact a WHERE a.id > ?1 AND a.id <= ?2 AND" SCANNABLE_SQL
        " ORDER BY a.id";
    static const char advance[] = "UPDATE scan_run SET cursor = ?2 WHERE id = ?1";
    char operator[WH_NAME_MAX];
    int64_t id, cursor, last, end = 0;

    *queued = 0;
    *more = false;
    db_stmt *s = db_stmt(c, next);
    int error = db_one_row(c, s, "scan run");
    if (error == WH_ENOTFOUND)
        return 0;
    if (error < 0)
        return error;
    id = db_col_i64(s, 0);
    cursor = db_col_i64(s, 1);
    last = db_col_i64(s, 2);
    db_copy_col(operator, sizeof(operator), s, 3);
    db_done(s);

    s = db_stmt(c, upto);
    db_bind_i64(s, 1, cursor);
    db_bind_i64(s, 2, last);
    db_bind_i64(s, 3, batch);
    if ((error = db_count(c, s, &end)) < 0)
        return error;
    /* the ids first, then one job each: every job gets its own random report id */
    struct db_ids ids = {0};
    s = db_stmt(c, queue);
    db_bind_i64(s, 1, cursor);
    db_bind_i64(s, 2, end);
    error = db_rows(c, s, db_collect_id, &ids);
    for (size_t i = 0; i < ids.n && error == 0; i++)
        if ((error = db_scan_enqueue(c, ids.v[i], now_ms, id, operator, true)) == 0)
            *queued += db_changes(c);
    free(ids.v);
    if (error < 0)
        return error;
    s = db_stmt(c, advance);
    db_bind_i64(s, 1, id);
    db_bind_i64(s, 2, end);
    if ((error = db_run(c, s)) < 0)
        return error;
    *more = true; /* this run may have more, or another run may be waiting */
    return 0;
}

int wh_db_scanrun_step(wh_db *db, int64_t batch, int64_t now_ms, int64_t *queued_out,
                       bool *more)
{
    static const char peek[] =
        "SELECT 1 FROM scan_run WHERE status = 'Running' AND cursor < last_id LIMIT 1";
    CONN_WRITE_OR_FAIL(c, db);
    bool any = false;
    *queued_out = 0;
    *more = false;
    int error = db_exists(c, db_stmt(c, peek), &any);
    if (error < 0 || !any)
        return error;
    error = db_tx_begin(c);
    if (error < 0)
        return error;
    return db_tx_end(c, step_tx(c, batch, now_ms, queued_out, more));
}

static int stop_tx(struct conn *c, int64_t now_ms, int64_t *id_out)
{
    static const char latest[] = "SELECT id, status FROM scan_run ORDER BY id DESC LIMIT 1";
    static const char jobs[] =
        "UPDATE scan_job SET status = 'Stopped', end_ms = ?2, log = 'stopped by request'"
        " WHERE run_id = ?1 AND status IN ('Pending', 'Running')";
    static const char run[] = "UPDATE scan_run SET" FREEZE_SQL ", status = 'Stopped',"
                              " end_ms = ?2, cursor = last_id WHERE id = ?1";
    db_stmt *s = db_stmt(c, latest);
    int error = db_one_row(c, s, "scan-all run");
    if (error < 0)
        return error;
    int64_t id = db_col_i64(s, 0);
    bool running = strcmp(db_col_text(s, 1), "Running") == 0;
    db_done(s);
    *id_out = id;
    if (!running)
        return 0; /* Harbor stops a finished execution without complaint */
    s = db_stmt(c, jobs);
    db_bind_i64(s, 1, id);
    db_bind_i64(s, 2, now_ms);
    if ((error = db_run(c, s)) < 0)
        return error;
    s = db_stmt(c, run);
    db_bind_i64(s, 1, id);
    db_bind_i64(s, 2, now_ms);
    return db_run(c, s);
}

int wh_db_scanrun_stop(wh_db *db, int64_t now_ms, int64_t *id_out)
{
    CONN_WRITE_OR_FAIL(c, db);
    int error = db_tx_begin(c);
    if (error < 0)
        return error;
    return db_tx_end(c, stop_tx(c, now_ms, id_out));
}

static void add_count(struct wh_scan_run *r, const char *status, int64_t n)
{
    if (strcmp(status, WH_SCAN_PENDING) == 0)
        r->pending += n;
    else if (strcmp(status, WH_SCAN_RUNNING) == 0)
        r->running += n;
    else if (strcmp(status, WH_SCAN_SUCCESS) == 0)
        r->success += n;
    else if (strcmp(status, WH_SCAN_ERROR) == 0)
        r->error += n;
    else if (strcmp(status, WH_SCAN_STOPPED) == 0)
        r->stopped += n;
}

int wh_db_scanrun_latest(wh_db *db, const char *trigger, struct wh_scan_run *out)
{
    static const char any[] =
        "SELECT id, trigger_type, operator, status, start_ms, end_ms, cursor >= last_id,"
        " pending, running, success, error, stopped FROM scan_run ORDER BY id DESC LIMIT 1";
    static const char by[] =
        "SELECT id, trigger_type, operator, status, start_ms, end_ms, cursor >= last_id,"
        " pending, running, success, error, stopped FROM scan_run WHERE trigger_type = ?1"
        " ORDER BY id DESC LIMIT 1";
    static const char live[] =
        "SELECT status, count(*) FROM scan_job WHERE run_id = ?1 GROUP BY status";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, trigger ? by : any);
    if (trigger)
        db_bind_text(s, 1, trigger);
    int error = db_one_row(c, s, "scan-all run");
    if (error < 0)
        return error;
    memset(out, 0, sizeof(*out));
    out->id = db_col_i64(s, 0);
    db_copy_col(out->trigger, sizeof(out->trigger), s, 1);
    db_copy_col(out->operator, sizeof(out->operator), s, 2);
    db_copy_col(out->status, sizeof(out->status), s, 3);
    out->start_ms = db_col_i64(s, 4);
    out->end_ms = db_col_i64(s, 5);
    bool queued_all = db_col_int(s, 6) != 0;
    out->pending = db_col_i64(s, 7);
    out->running = db_col_i64(s, 8);
    out->success = db_col_i64(s, 9);
    out->error = db_col_i64(s, 10);
    out->stopped = db_col_i64(s, 11);
    db_done(s);
    bool going = strcmp(out->status, "Running") == 0;
    if (going) {
        /* not ended yet: the counts are those of its rows now */
        out->pending = out->running = out->success = out->error = out->stopped = 0;
        s = db_stmt(c, live);
        db_bind_i64(s, 1, out->id);
        int rc;
        while ((rc = db_step(s)) == DB_ROW) {
            const char *st = db_col_text(s, 0);
            add_count(out, st ? st : "", db_col_i64(s, 1));
        }
        error = rc == DB_DONE ? 0 : db_fail(c);
        db_done(s);
        if (error < 0)
            return error;
    }
    out->total = out->pending + out->running + out->success + out->error + out->stopped;
    out->ongoing = going && !(queued_all && out->pending == 0 && out->running == 0);
    return 0;
}
