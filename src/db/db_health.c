/*
 * db_health.c: what GET /api/v2.0/health reads from the database, each one
 * cheap: the state of the scan queue (its depth and how long its oldest job
 * has waited, through the partial index scan_job_pending).
 */
#include "db/db_int.h"

int wh_db_scan_queue_state(wh_db *db, struct wh_db_queue_state *out)
{
    static const char sql[] =
        "SELECT (SELECT count(*) FROM scan_job WHERE status = 'Pending'),"
        " (SELECT count(*) FROM scan_job WHERE status = 'Running'),"
        " COALESCE((SELECT min(queued_ms) FROM scan_job WHERE status = 'Pending'), 0)";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    int error = db_one_row(c, s, "scan queue");
    if (error < 0)
        return error;
    out->pending = db_col_i64(s, 0);
    out->running = db_col_i64(s, 1);
    out->oldest_queued_ms = db_col_i64(s, 2);
    db_done(s);
    return 0;
}
