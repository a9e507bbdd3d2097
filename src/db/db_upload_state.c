/*
 * db_upload_state.c: what a node needs to resume an upload session another
 * node began (migration 13): the accepted byte count, the storage driver's
 * state, and the lease of the request writing to it.
 */
#include "db/db_int.h"

#include <stdio.h>
#include <string.h>

/* Columns repo, project_id, accepted_bytes, state of the current row. */
static void read_session(struct wh_upload_session *out, db_stmt *s)
{
    memset(out, 0, sizeof(*out));
    db_copy_col(out->repo, sizeof(out->repo), s, 0);
    out->project_id = db_col_i64(s, 1);
    int64_t accepted = db_col_i64(s, 2);
    out->accepted = accepted > 0 ? (uint64_t)accepted : 0;
    const char *st = db_col_text(s, 3);
    out->state = wh_strdup(st ? st : "");
}

int wh_db_upload_claim(wh_db *db, const char *id, const char *holder, int64_t now_ms,
                       int64_t until_ms, struct wh_upload_session *out)
{
    static const char claim[] =
        "UPDATE upload SET holder = ?2, held_until_ms = ?4"
        " WHERE id = ?1 AND (holder IS NULL OR held_until_ms < ?3)"
        " RETURNING repo, project_id, accepted_bytes, state";
    static const char exists[] = "SELECT 1 FROM upload WHERE id = ?1";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, claim);
    db_bind_text(s, 1, id);
    db_bind_text(s, 2, holder);
    db_bind_i64(s, 3, now_ms);
    db_bind_i64(s, 4, until_ms);
    int error = db_one_row(c, s, "upload");
    if (error == 0) {
        read_session(out, s);
        db_done(s);
        return 0;
    }
    if (error != WH_ENOTFOUND)
        return error;
    bool found = false;
    s = db_stmt(c, exists);
    db_bind_text(s, 1, id);
    if ((error = db_exists(c, s, &found)) < 0)
        return error;
    if (!found)
        return wh_error_set(WH_ENOTFOUND, "upload unknown");
    return wh_error_set(WH_EBUSY, "another request is writing to this upload");
}

int wh_db_upload_peek(wh_db *db, const char *id, struct wh_upload_session *out)
{
    static const char sql[] =
        "SELECT repo, project_id, accepted_bytes, state FROM upload WHERE id = ?1";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, id);
    int error = db_one_row(c, s, "upload");
    if (error < 0)
        return error;
    read_session(out, s);
    db_done(s);
    return 0;
}

int wh_db_upload_renew(wh_db *db, const char *id, const char *holder, int64_t until_ms)
{
    static const char sql[] =
        "UPDATE upload SET held_until_ms = ?3 WHERE id = ?1 AND holder = ?2";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, id);
    db_bind_text(s, 2, holder);
    db_bind_i64(s, 3, until_ms);
    return db_change(c, s, "upload lease");
}

int wh_db_upload_save(wh_db *db, const char *id, const char *holder, uint64_t accepted,
                      const char *state, int64_t now_ms)
{
    static const char leased[] =
        "UPDATE upload SET accepted_bytes = ?3, state = ?4, updated_ms = ?5, holder = NULL,"
        " held_until_ms = 0 WHERE id = ?1 AND holder = ?2";
    /* no holder: the store's own lock guards the session (wh_store_upload_lock) */
    static const char locked[] =
        "UPDATE upload SET accepted_bytes = ?2, state = ?3, updated_ms = ?4 WHERE id = ?1";
    if (accepted > INT64_MAX)
        return wh_error_set(WH_ETOOBIG, "upload too large");
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, holder ? leased : locked);
    int n = 1;
    db_bind_text(s, n++, id);
    if (holder)
        db_bind_text(s, n++, holder);
    db_bind_i64(s, n++, (int64_t)accepted);
    db_bind_text(s, n++, state ? state : "");
    db_bind_i64(s, n, now_ms);
    return db_change(c, s, holder ? "upload lease" : "upload");
}

int wh_db_upload_release(wh_db *db, const char *id, const char *holder)
{
    static const char sql[] =
        "UPDATE upload SET holder = NULL, held_until_ms = 0 WHERE id = ?1 AND holder = ?2";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, id);
    db_bind_text(s, 2, holder);
    int error = db_change(c, s, "upload lease");
    return error == WH_ENOTFOUND ? 0 : error;
}
