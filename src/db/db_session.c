/*
 * db_session.c: the state of sign-ins that every node must see alike
 * (migration 14): portal sessions, found by the SHA-256 of their id (the id
 * itself is never stored), and the failed-login counts of the throttle, one
 * row per key (a hash of a name and address, or of an address). The policy
 * lives in acl/ and auth/throttle.c; here are only the rows.
 */
#include "db/db_int.h"

#include <assert.h>
#include <string.h>

int wh_db_session_add(wh_db *db, const char *id_hash, int64_t user_id, const char *stamp,
                      int64_t now_ms, int64_t expires_ms, int per_user_max)
{
    static const char insert[] =
        "INSERT INTO portal_session(id_hash, user_id, stamp, created_ms, seen_ms, expires_ms)"
        " VALUES(?1, ?2, ?3, ?4, ?4, ?5)";
    /* the new session always stays, whatever the ties of the others' times */
    static const char trim[] =
        "DELETE FROM portal_session WHERE user_id = ?1 AND id_hash <> ?3 AND id_hash NOT IN"
        " (SELECT id_hash FROM portal_session WHERE user_id = ?1 AND id_hash <> ?3"
        "  ORDER BY seen_ms DESC, created_ms DESC LIMIT ?2)";
    CONN_WRITE_OR_FAIL(c, db);
    int error = db_tx_begin(c);
    if (error < 0)
        return error;
    db_stmt *s = db_stmt(c, insert);
    db_bind_text(s, 1, id_hash);
    db_bind_i64(s, 2, user_id);
    db_bind_text(s, 3, stamp);
    db_bind_i64(s, 4, now_ms);
    db_bind_i64(s, 5, expires_ms);
    if ((error = db_insert(c, s, "session", NULL)) < 0)
        goto out;
    if (per_user_max > 0) {
        s = db_stmt(c, trim);
        db_bind_i64(s, 1, user_id);
        db_bind_i64(s, 2, per_user_max - 1);
        db_bind_text(s, 3, id_hash);
        error = db_run(c, s);
    }
out:
    return db_tx_end(c, error);
}

int wh_db_session_get(wh_db *db, const char *id_hash, struct wh_db_session *out)
{
    static const char sql[] =
        "SELECT user_id, stamp, created_ms, seen_ms, expires_ms FROM portal_session"
        " WHERE id_hash = ?1";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, id_hash);
    int error = db_one_row(c, s, "session");
    if (error < 0)
        return error;
    memset(out, 0, sizeof(*out));
    out->user_id = db_col_i64(s, 0);
    db_copy_col(out->stamp, sizeof(out->stamp), s, 1);
    out->created_ms = db_col_i64(s, 2);
    out->seen_ms = db_col_i64(s, 3);
    out->expires_ms = db_col_i64(s, 4);
    db_done(s);
    return 0;
}

int wh_db_session_touch(wh_db *db, const char *id_hash, int64_t now_ms)
{
    static const char sql[] =
        "UPDATE portal_session SET seen_ms = ?2 WHERE id_hash = ?1 AND seen_ms < ?2";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, id_hash);
    db_bind_i64(s, 2, now_ms);
    return db_run(c, s);
}

int wh_db_session_end(wh_db *db, const char *id_hash)
{
    static const char sql[] = "DELETE FROM portal_session WHERE id_hash = ?1";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, id_hash);
    return db_run(c, s);
}

int wh_db_session_end_user(wh_db *db, int64_t user_id)
{
    static const char sql[] = "DELETE FROM portal_session WHERE user_id = ?1";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, user_id);
    return db_run(c, s);
}

int wh_db_session_purge(wh_db *db, int64_t now_ms, int64_t idle_before_ms, int64_t *deleted)
{
    /* two statements, so that each walks its own index */
    static const char ended[] = "DELETE FROM portal_session WHERE expires_ms <= ?1";
    static const char idle[] = "DELETE FROM portal_session WHERE seen_ms < ?1";
    int64_t n = 0;
    int error;
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, ended);
    db_bind_i64(s, 1, now_ms);
    if ((error = db_run(c, s)) < 0)
        return error;
    n += db_changes(c);
    s = db_stmt(c, idle);
    db_bind_i64(s, 1, idle_before_ms);
    if ((error = db_run(c, s)) < 0)
        return error;
    n += db_changes(c);
    if (deleted)
        *deleted = n;
    return 0;
}

int wh_db_session_count(wh_db *db, int64_t *out)
{
    static const char sql[] = "SELECT count(*) FROM portal_session";
    CONN_OR_FAIL(c, db);
    return db_count(c, db_stmt(c, sql), out);
}

/* ---- failed logins ---- */

int wh_db_login_failures(wh_db *db, const char *const ids[], size_t n,
                         struct wh_db_login_failure *out)
{
    /* one statement, one round trip: the cost of every login that has no failures */
    static const char sql[] =
        "SELECT id, fails, first_ms, last_ms FROM login_failure WHERE id IN (?1, ?2)";
    int error = 0;
    assert(n >= 1 && n <= WH_DB_LOGIN_KEYS_MAX);
    memset(out, 0, n * sizeof(*out));
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, ids[0]);
    db_bind_text(s, 2, ids[n - 1]);
    while ((error = db_step(s)) == DB_ROW) {
        const char *id = db_col_text(s, 0);
        for (size_t i = 0; id && i < n; i++) {
            if (strcmp(id, ids[i]) != 0)
                continue;
            out[i].fails = db_col_i64(s, 1);
            out[i].first_ms = db_col_i64(s, 2);
            out[i].last_ms = db_col_i64(s, 3);
        }
    }
    db_done(s);
    return error < 0 ? error : 0;
}

int wh_db_login_fail(wh_db *db, const char *const ids[], size_t n, int64_t now_ms,
                     int64_t window_ms)
{
    /* SET reads the row as it was: a window that is over starts again */
    static const char sql[] =
        "INSERT INTO login_failure(id, fails, first_ms, last_ms) VALUES(?1, 1, ?2, ?2)"
        " ON CONFLICT(id) DO UPDATE SET"
        " fails = CASE WHEN ?2 - login_failure.first_ms > ?3 THEN 1"
        "  ELSE login_failure.fails + 1 END,"
        " first_ms = CASE WHEN ?2 - login_failure.first_ms > ?3 THEN ?2"
        "  ELSE login_failure.first_ms END,"
        " last_ms = CASE WHEN login_failure.last_ms > ?2 THEN login_failure.last_ms ELSE ?2 END";
    assert(n <= WH_DB_LOGIN_KEYS_MAX);
    CONN_WRITE_OR_FAIL(c, db);
    int error = db_tx_begin(c);
    if (error < 0)
        return error;
    for (size_t i = 0; error == 0 && i < n; i++) {
        db_stmt *s = db_stmt(c, sql);
        db_bind_text(s, 1, ids[i]);
        db_bind_i64(s, 2, now_ms);
        db_bind_i64(s, 3, window_ms);
        error = db_run(c, s);
    }
    return db_tx_end(c, error);
}

int wh_db_login_hold(wh_db *db, const char *id, int64_t now_ms)
{
    static const char sql[] = "UPDATE login_failure SET last_ms = ?2 WHERE id = ?1 AND last_ms < ?2";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, id);
    db_bind_i64(s, 2, now_ms);
    return db_run(c, s);
}

int wh_db_login_clear(wh_db *db, const char *id)
{
    static const char sql[] = "DELETE FROM login_failure WHERE id = ?1";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, id);
    return db_run(c, s);
}

int wh_db_login_purge(wh_db *db, int64_t before_ms, int64_t *deleted)
{
    static const char sql[] = "DELETE FROM login_failure WHERE first_ms < ?1";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, before_ms);
    int error = db_run(c, s);
    if (error == 0 && deleted)
        *deleted = db_changes(c);
    return error;
}

int wh_db_login_count(wh_db *db, int64_t *out)
{
    static const char sql[] = "SELECT count(*) FROM login_failure";
    CONN_OR_FAIL(c, db);
    return db_count(c, db_stmt(c, sql), out);
}
