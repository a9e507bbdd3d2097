/*
 * db_manifest_summary.c: what artifact lists show of a manifest (the image
 * config's fields, an index's children), kept by digest at push time so
 * that a list reads the database only (migration 13).
 */
#include "db/db_int.h"

int wh_db_manifest_summary_put(wh_db *db, const char *digest, const char *extra_attrs,
                               const char *references)
{
    static const char sql[] =
        "INSERT INTO manifest_summary(digest, extra_attrs, refs) VALUES(?1, ?2, ?3)"
        " ON CONFLICT(digest) DO UPDATE SET extra_attrs = excluded.extra_attrs,"
        " refs = excluded.refs";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, digest);
    db_bind_text(s, 2, extra_attrs);
    db_bind_text(s, 3, references);
    return db_run(c, s);
}

int wh_db_manifest_summary_get(wh_db *db, const char *digest, char **extra_attrs,
                               char **references)
{
    static const char sql[] = "SELECT extra_attrs, refs FROM manifest_summary WHERE digest = ?1";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, digest);
    int error = db_one_row(c, s, "manifest summary");
    if (error < 0)
        return error;
    const char *e = db_col_text(s, 0), *r = db_col_text(s, 1);
    *extra_attrs = wh_strdup(e ? e : "{}");
    *references = wh_strdup(r ? r : "[]");
    db_done(s);
    return 0;
}
