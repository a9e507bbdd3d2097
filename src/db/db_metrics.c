/*
 * db_metrics.c: what GET /metrics reads from the database, each one cheap
 * (an index or a small table): the scan queue.
 */
#include "db/db_int.h"

int wh_db_scan_queue(wh_db *db, int64_t *pending, int64_t *running)
{
    /* Pending rows through the partial index scan_job_pending; Running ones are few */
    static const char sql[] = "SELECT (SELECT count(*) FROM scan_job WHERE status = 'Pending'),"
                              " (SELECT count(*) FROM scan_job WHERE status = 'Running')";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    int error = db_one_row(c, s, "scan queue");
    if (error < 0)
        return error;
    *pending = db_col_i64(s, 0);
    *running = db_col_i64(s, 1);
    db_done(s);
    return 0;
}
