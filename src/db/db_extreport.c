/*
 * db_extreport.c: what the re-matcher cannot re-evaluate. A report stored
 * without the image's package inventory -- an external scanner's (the
 * pluggable scanner API hands back vulnerabilities, not packages), or a
 * built-in scan stored before schema 9 -- has finding rows like any other
 * (db_finding.c) but nothing a new vulnerability database could be matched
 * against: only a new scan refreshes it. This file counts them, so that the
 * re-matcher can say so.
 */
#include "db/db_int.h"

int wh_db_reports_without_inventory(wh_db *db, int64_t *out)
{
    /* two counts over partial indexes (scan_job_danger: report IS NOT NULL,
     * scan_job_inventory: inventory_id IS NOT NULL): reading inventory_id from
     * the table would walk every report's overflow pages. An inventory is
     * linked only by a successful scan, which leaves a report. */
    static const char sql[] =
        "SELECT (SELECT count(*) FROM scan_job WHERE report IS NOT NULL)"
        " - (SELECT count(*) FROM scan_job WHERE inventory_id IS NOT NULL)";
    CONN_OR_FAIL(c, db);
    int64_t n = 0;
    int error = db_count(c, db_stmt(c, sql), &n);
    *out = error == 0 && n > 0 ? n : 0;
    return error;
}
