/*
 * db_upload.c: upload sessions (the registry's chunked blob uploads), capped
 * per owner, per project and in total, and expired when idle or too old.
 */
#include "db/db_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- statements ---- */

enum stmt_id {
    S_UPLOAD_INSERT,
    S_UPLOAD_GET,
    S_UPLOAD_TOUCH,
    S_UPLOAD_DELETE,
    S_UPLOAD_COUNT,
    S_UPLOAD_EXPIRED,
    S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    [S_UPLOAD_INSERT] = "INSERT INTO upload(id, repo, started_ms, updated_ms, project_id, owner)"
                        " VALUES(?1, ?2, ?3, ?3, ?4, ?5)",
    [S_UPLOAD_GET] = "SELECT repo FROM upload WHERE id = ?1",
    [S_UPLOAD_TOUCH] = "UPDATE upload SET updated_ms = ?2 WHERE id = ?1",
    [S_UPLOAD_DELETE] = "DELETE FROM upload WHERE id = ?1",
    [S_UPLOAD_COUNT] = "SELECT count(*) FROM upload",
    [S_UPLOAD_EXPIRED] = "SELECT id FROM upload WHERE updated_ms < ?1 OR started_ms < ?2 LIMIT 1000",
};

/* The statement `id` of this file, prepared once per connection. */
static db_stmt *stmt(struct conn *c, enum stmt_id id)
{
    return db_stmt(c, stmt_sql[id]);
}

/* ---- upload sessions ---- */

/* Sessions in one scope and the last activity of its most idle one (`now_ms` when empty). */
static int upload_scope(struct conn *c, const char *sql, int64_t key, const char *text_key,
                        int64_t now_ms, int64_t *n_out, int64_t *oldest_out)
{
    db_stmt *s = db_stmt(c, sql);
    if (text_key)
        db_bind_text(s, 1, text_key);
    else
        db_bind_i64(s, 1, key); /* ignored by the statement without ?1 */
    int rc = db_step(s);
    int error = 0;
    if (rc == DB_ROW) {
        *n_out = db_col_i64(s, 0);
        *oldest_out = db_col_null(s, 1) ? now_ms
                                                               : db_col_i64(s, 1);
    } else {
        error = db_fail(c);
    }
    db_done(s);
    return error;
}

static int upload_create_tx(struct conn *c, const char *id, const char *repo, int64_t project_id,
                            const char *owner, int64_t now_ms, const struct wh_upload_caps *caps,
                            struct wh_upload_refusal *refused)
{
    static const char by_owner[] = "SELECT count(*), min(updated_ms) FROM upload WHERE owner = ?1";
    static const char by_project[] =
        "SELECT count(*), min(updated_ms) FROM upload WHERE project_id = ?1";
    static const char all[] = "SELECT count(*), min(updated_ms) FROM upload";
    const struct {
        int64_t cap;
        const char *sql;
        int64_t key;
        const char *text_key;
        enum wh_upload_scope scope;
    } checks[] = {
        {owner && *owner ? caps->per_owner : 0, by_owner, 0, owner, WH_UPLOAD_OWNER},
        {project_id ? caps->per_project : 0, by_project, project_id, NULL, WH_UPLOAD_PROJECT},
        {caps->total, all, 0, NULL, WH_UPLOAD_SERVER},
    };
    int error;
    for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
        int64_t n = 0, oldest = now_ms;
        if (checks[i].cap <= 0)
            continue;
        error = upload_scope(c, checks[i].sql, checks[i].key, checks[i].text_key, now_ms, &n,
                             &oldest);
        if (error < 0)
            return error;
        if (n >= checks[i].cap) {
            refused->scope = checks[i].scope;
            refused->limit = checks[i].cap;
            refused->oldest_ms = oldest;
            return wh_error_set(WH_EBUSY, "too many open upload sessions");
        }
    }
    db_stmt *s = stmt(c, S_UPLOAD_INSERT);
    db_bind_text(s, 1, id);
    db_bind_text(s, 2, repo);
    db_bind_i64(s, 3, now_ms);
    db_bind_i64(s, 4, project_id);
    db_bind_text(s, 5, owner ? owner : "");
    return db_run(c, s);
}

int wh_db_upload_create(wh_db *db, const char *id, const char *repo, int64_t project_id,
                        const char *owner, int64_t now_ms, const struct wh_upload_caps *caps,
                        struct wh_upload_refusal *refused)
{
    CONN_WRITE_OR_FAIL(c, db);
    int error;
    if ((error = db_tx_begin(c)) < 0)
        return error;
    return db_tx_end(c, upload_create_tx(c, id, repo, project_id, owner, now_ms, caps, refused));
}

int wh_db_upload_get(wh_db *db, const char *id, char *repo_out)
{
    CONN_OR_FAIL(c, db);
    db_stmt *s = stmt(c, S_UPLOAD_GET);
    db_bind_text(s, 1, id);
    int rc = db_step(s);
    int error = 0;
    if (rc == DB_ROW)
        db_copy_col(repo_out, WH_NAME_MAX, s, 0);
    else if (rc == DB_DONE)
        error = wh_error_set(WH_ENOTFOUND, "upload unknown");
    else
        error = db_fail(c);
    db_done(s);
    return error;
}

int wh_db_upload_touch(wh_db *db, const char *id, int64_t now_ms)
{
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = stmt(c, S_UPLOAD_TOUCH);
    db_bind_text(s, 1, id);
    db_bind_i64(s, 2, now_ms);
    return db_run(c, s);
}

int wh_db_upload_delete(wh_db *db, const char *id)
{
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = stmt(c, S_UPLOAD_DELETE);
    db_bind_text(s, 1, id);
    return db_run(c, s);
}

int wh_db_upload_count(wh_db *db, int64_t *out)
{
    CONN_OR_FAIL(c, db);
    db_stmt *s = stmt(c, S_UPLOAD_COUNT);
    int rc = db_step(s);
    int error = 0;
    if (rc == DB_ROW)
        *out = db_col_i64(s, 0);
    else
        error = db_fail(c);
    db_done(s);
    return error;
}

int wh_db_upload_expired(wh_db *db, int64_t idle_before_ms, int64_t started_before_ms,
                         int (*fn)(const char *id, void *payload), void *payload)
{
    CONN_OR_FAIL(c, db);
    db_stmt *s = stmt(c, S_UPLOAD_EXPIRED);
    db_bind_i64(s, 1, idle_before_ms);
    db_bind_i64(s, 2, started_before_ms);
    /* Collect first: the callback deletes rows, which must not run under our cursor. */
    char *ids[1000];
    size_t n = 0;
    int rc = DB_DONE, error = 0;
    while (n < 1000 && (rc = db_step(s)) == DB_ROW)
        ids[n++] = wh_strdup(db_col_text(s, 0));
    if (rc < 0)
        error = db_fail(c);
    db_done(s);
    bool stop = false;
    for (size_t i = 0; i < n; i++) {
        if (!stop && fn(ids[i], payload) != 0)
            stop = true;
        free(ids[i]);
    }
    return error;
}
