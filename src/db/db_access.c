/*
 * db_access.c: users, project members, robot accounts and the audit log
 * (schema 2). Passwords and robot secrets are stored only as argon2id
 * strings made by auth/; this file never sees a clear-text secret.
 */
#include "db/db_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- users ---- */

#define USER_COLS "id, username, email, realname, comment, password, sysadmin, created_ms, updated_ms"

static void user_row(struct wh_user *u, db_stmt *s)
{
    u->id = db_col_i64(s, 0);
    db_copy_col(u->username, sizeof(u->username), s, 1);
    db_copy_col(u->email, sizeof(u->email), s, 2);
    db_copy_col(u->realname, sizeof(u->realname), s, 3);
    db_copy_col(u->comment, sizeof(u->comment), s, 4);
    db_copy_col(u->password, sizeof(u->password), s, 5);
    u->sysadmin = db_col_int(s, 6) != 0;
    u->created_ms = db_col_i64(s, 7);
    u->updated_ms = db_col_i64(s, 8);
}

struct user_each {
    int (*fn)(const struct wh_user *u, void *payload);
    void *payload;
};

static int user_each(db_stmt *s, void *payload)
{
    struct user_each *e = payload;
    struct wh_user u;
    user_row(&u, s);
    return e->fn(&u, e->payload);
}

int wh_db_user_create(wh_db *db, const struct wh_user *u, int64_t *id_out)
{
    static const char sql[] = "INSERT INTO \"user\"(username, email, realname, comment, password,"
                              " sysadmin, created_ms, updated_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)"
                              " RETURNING id";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, u->username);
    db_bind_text(s, 2, u->email);
    db_bind_text(s, 3, u->realname);
    db_bind_text(s, 4, u->comment);
    db_bind_text(s, 5, u->password);
    db_bind_i64(s, 6, u->sysadmin);
    db_bind_i64(s, 7, wh_now_ms());
    return db_insert(c, s, "user", id_out);
}

static int user_get(wh_db *db, const char *sql, const char *name, int64_t id, struct wh_user *out)
{
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    if (name)
        db_bind_text(s, 1, name);
    else
        db_bind_i64(s, 1, id);
    int error = db_one_row(c, s, "user");
    if (error < 0)
        return error;
    user_row(out, s);
    db_done(s);
    return 0;
}

int wh_db_user_get(wh_db *db, const char *username, struct wh_user *out)
{
    static const char sql[] = "SELECT " USER_COLS " FROM \"user\" WHERE username = ?1";
    return user_get(db, sql, username, 0, out);
}

int wh_db_user_get_id(wh_db *db, int64_t id, struct wh_user *out)
{
    static const char sql[] = "SELECT " USER_COLS " FROM \"user\" WHERE id = ?1";
    return user_get(db, sql, NULL, id, out);
}

int wh_db_user_set_password(wh_db *db, int64_t id, const char *password_hash)
{
    static const char sql[] = "UPDATE \"user\" SET password = ?2, updated_ms = ?3 WHERE id = ?1";
    /* a new password ends the user's portal sessions, on every node (db_session.c) */
    static const char end[] = "DELETE FROM portal_session WHERE user_id = ?1";
    CONN_WRITE_OR_FAIL(c, db);
    int error = db_tx_begin(c);
    if (error < 0)
        return error;
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, id);
    db_bind_text(s, 2, password_hash);
    db_bind_i64(s, 3, wh_now_ms());
    if ((error = db_change(c, s, "user")) == 0) {
        s = db_stmt(c, end);
        db_bind_i64(s, 1, id);
        error = db_run(c, s);
    }
    return db_tx_end(c, error);
}

/*
 * Inside a write transaction: refuses to take the administrator role away
 * from user `id` when nobody else has it. Checked in the transaction that
 * makes the change, so two administrators removing each other at once
 * cannot both succeed. 0, WH_ECONFLICT or WH_ERROR.
 */
static int keep_an_admin(struct conn *c, int64_t id)
{
    static const char sql[] = "SELECT 1 FROM \"user\" WHERE id = ?1 AND sysadmin = 1"
                              " AND NOT EXISTS (SELECT 1 FROM \"user\" WHERE sysadmin = 1 AND id <> ?1)";
    bool last = false;
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, id);
    int error = db_exists(c, s, &last);
    if (error == 0 && last)
        error = wh_error_set(WH_ECONFLICT, "the last system administrator cannot be removed");
    return error;
}

int wh_db_user_set_sysadmin(wh_db *db, int64_t id, bool sysadmin)
{
    static const char sql[] = "UPDATE \"user\" SET sysadmin = ?2, updated_ms = ?3 WHERE id = ?1";
    CONN_WRITE_OR_FAIL(c, db);
    int error;
    if ((error = db_tx_begin(c)) < 0)
        return error;
    if (sysadmin || (error = keep_an_admin(c, id)) == 0) {
        db_stmt *s = db_stmt(c, sql);
        db_bind_i64(s, 1, id);
        db_bind_i64(s, 2, sysadmin);
        db_bind_i64(s, 3, wh_now_ms());
        error = db_change(c, s, "user");
    }
    return db_tx_end(c, error);
}

int wh_db_user_update(wh_db *db, const struct wh_user *u)
{
    static const char sql[] = "UPDATE \"user\" SET email = ?2, realname = ?3, comment = ?4,"
                              " updated_ms = ?5 WHERE id = ?1";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, u->id);
    db_bind_text(s, 2, u->email);
    db_bind_text(s, 3, u->realname);
    db_bind_text(s, 4, u->comment);
    db_bind_i64(s, 5, wh_now_ms());
    return db_change(c, s, "user");
}

int wh_db_user_delete(wh_db *db, int64_t id)
{
    static const char sql[] = "DELETE FROM \"user\" WHERE id = ?1";
    CONN_WRITE_OR_FAIL(c, db);
    int error;
    if ((error = db_tx_begin(c)) < 0)
        return error;
    if ((error = keep_an_admin(c, id)) == 0) {
        db_stmt *s = db_stmt(c, sql);
        db_bind_i64(s, 1, id);
        error = db_change(c, s, "user");
    }
    return db_tx_end(c, error);
}

int wh_db_user_list(wh_db *db, const char *like, int64_t offset, int64_t limit,
                    int (*fn)(const struct wh_user *u, void *payload), void *payload,
                    int64_t *total_out)
{
    static const char sql_count[] = "SELECT count(*) FROM \"user\" WHERE" DB_CONTAINS("username", "?1");
    static const char sql[] = "SELECT " USER_COLS " FROM \"user\" WHERE" DB_CONTAINS("username", "?1")
                              " ORDER BY username LIMIT ?3 OFFSET ?2";
    CONN_OR_FAIL(c, db);
    int error;
    db_stmt *s = db_stmt(c, sql_count);
    db_bind_text(s, 1, like ? like : "");
    if (total_out && (error = db_count(c, s, total_out)) < 0)
        return error;
    if (!total_out)
        db_done(s);
    s = db_stmt(c, sql);
    db_bind_text(s, 1, like ? like : "");
    db_bind_i64(s, 2, offset);
    db_bind_i64(s, 3, limit);
    struct user_each e = {fn, payload};
    return db_rows(c, s, user_each, &e);
}

int wh_db_user_count(wh_db *db, int64_t *out)
{
    static const char sql[] = "SELECT count(*) FROM \"user\"";
    CONN_OR_FAIL(c, db);
    return db_count(c, db_stmt(c, sql), out);
}

/* ---- members ---- */

int wh_db_member_set(wh_db *db, int64_t project_id, int64_t user_id, int role, int64_t *id_out)
{
    static const char sql[] = "INSERT INTO member(project_id, user_id, role, created_ms, updated_ms)"
                              " VALUES(?1, ?2, ?3, ?4, ?4) ON CONFLICT(project_id, user_id)"
                              " DO UPDATE SET role = ?3, updated_ms = ?4 RETURNING id";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, project_id);
    db_bind_i64(s, 2, user_id);
    db_bind_i64(s, 3, role);
    db_bind_i64(s, 4, wh_now_ms());
    int rc = db_step(s);
    int error = 0;
    if (rc == DB_ROW) {
        if (id_out)
            *id_out = db_col_i64(s, 0);
    } else {
        error = db_fail(c);
    }
    db_done(s);
    return error;
}

int wh_db_member_add(wh_db *db, int64_t project_id, int64_t user_id, int role, int64_t *id_out)
{
    static const char sql[] = "INSERT INTO member(project_id, user_id, role, created_ms, updated_ms)"
                              " VALUES(?1, ?2, ?3, ?4, ?4) RETURNING id";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, project_id);
    db_bind_i64(s, 2, user_id);
    db_bind_i64(s, 3, role);
    db_bind_i64(s, 4, wh_now_ms());
    return db_insert(c, s, "member", id_out);
}

int wh_db_member_set_role(wh_db *db, int64_t project_id, int64_t member_id, int role)
{
    static const char sql[] = "UPDATE member SET role = ?3, updated_ms = ?4"
                              " WHERE project_id = ?1 AND id = ?2";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, project_id);
    db_bind_i64(s, 2, member_id);
    db_bind_i64(s, 3, role);
    db_bind_i64(s, 4, wh_now_ms());
    return db_change(c, s, "member");
}

int wh_db_member_role(wh_db *db, int64_t project_id, int64_t user_id, int *role_out)
{
    static const char sql[] = "SELECT role FROM member WHERE project_id = ?1 AND user_id = ?2";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, project_id);
    db_bind_i64(s, 2, user_id);
    int error = db_one_row(c, s, "member");
    if (error < 0)
        return error;
    *role_out = db_col_int(s, 0);
    db_done(s);
    return 0;
}

#define MEMBER_SELECT                                                                              \
    "SELECT m.id, m.project_id, m.user_id, u.username, m.role FROM member m"                       \
    " JOIN \"user\" u ON u.id = m.user_id"

static void member_row(struct wh_member *m, db_stmt *s)
{
    m->id = db_col_i64(s, 0);
    m->project_id = db_col_i64(s, 1);
    m->user_id = db_col_i64(s, 2);
    db_copy_col(m->username, sizeof(m->username), s, 3);
    m->role = db_col_int(s, 4);
}

struct member_each {
    int (*fn)(const struct wh_member *m, void *payload);
    void *payload;
};

static int member_each(db_stmt *s, void *payload)
{
    struct member_each *e = payload;
    struct wh_member m;
    member_row(&m, s);
    return e->fn(&m, e->payload);
}

int wh_db_member_get(wh_db *db, int64_t project_id, int64_t member_id, struct wh_member *out)
{
    static const char sql[] = MEMBER_SELECT " WHERE m.project_id = ?1 AND m.id = ?2";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, project_id);
    db_bind_i64(s, 2, member_id);
    int error = db_one_row(c, s, "member");
    if (error < 0)
        return error;
    member_row(out, s);
    db_done(s);
    return 0;
}

int wh_db_member_delete(wh_db *db, int64_t project_id, int64_t member_id)
{
    static const char sql[] = "DELETE FROM member WHERE project_id = ?1 AND id = ?2";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, project_id);
    db_bind_i64(s, 2, member_id);
    return db_change(c, s, "member");
}

int wh_db_member_list(wh_db *db, int64_t project_id, const char *like,
                      int (*fn)(const struct wh_member *m, void *payload), void *payload)
{
    static const char sql[] = MEMBER_SELECT " WHERE m.project_id = ?1 AND" DB_CONTAINS("u.username", "?2")
                                            " ORDER BY u.username";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, project_id);
    db_bind_text(s, 2, like ? like : "");
    struct member_each e = {fn, payload};
    return db_rows(c, s, member_each, &e);
}

/* ---- robots ---- */

#define ROBOT_COLS                                                                                 \
    "id, name, description, level, project_id, secret, disabled, duration, expires_at,"            \
    " permissions, created_ms, updated_ms"

static void robot_row(struct wh_robot *r, db_stmt *s)
{
    r->id = db_col_i64(s, 0);
    db_copy_col(r->name, sizeof(r->name), s, 1);
    db_copy_col(r->description, sizeof(r->description), s, 2);
    db_copy_col(r->level, sizeof(r->level), s, 3);
    r->project_id = db_col_i64(s, 4);
    db_copy_col(r->secret, sizeof(r->secret), s, 5);
    r->disabled = db_col_int(s, 6) != 0;
    r->duration = db_col_i64(s, 7);
    r->expires_at = db_col_i64(s, 8);
    db_copy_col(r->permissions, sizeof(r->permissions), s, 9);
    r->created_ms = db_col_i64(s, 10);
    r->updated_ms = db_col_i64(s, 11);
}

struct robot_each {
    int (*fn)(const struct wh_robot *r, void *payload);
    void *payload;
    struct wh_robot *r; /* one row at a time: the struct is large */
};

static int robot_each(db_stmt *s, void *payload)
{
    struct robot_each *e = payload;
    robot_row(e->r, s);
    return e->fn(e->r, e->payload);
}

int wh_db_robot_create(wh_db *db, const struct wh_robot *r, int64_t *id_out)
{
    static const char sql[] =
        "INSERT INTO robot(name, description, level, project_id, secret, disabled, duration,"
        " expires_at, permissions, created_ms, updated_ms)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10) RETURNING id";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, r->name);
    db_bind_text(s, 2, r->description);
    db_bind_text(s, 3, r->level);
    if (r->project_id > 0)
        db_bind_i64(s, 4, r->project_id);
    else
        db_bind_null(s, 4);
    db_bind_text(s, 5, r->secret);
    db_bind_i64(s, 6, r->disabled);
    db_bind_i64(s, 7, r->duration);
    db_bind_i64(s, 8, r->expires_at);
    db_bind_text(s, 9, r->permissions[0] ? r->permissions : "[]");
    db_bind_i64(s, 10, wh_now_ms());
    return db_insert(c, s, "robot", id_out);
}

static int robot_get(wh_db *db, const char *sql, const char *name, int64_t id, struct wh_robot *out)
{
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    if (name)
        db_bind_text(s, 1, name);
    else
        db_bind_i64(s, 1, id);
    int error = db_one_row(c, s, "robot");
    if (error < 0)
        return error;
    robot_row(out, s);
    db_done(s);
    return 0;
}

int wh_db_robot_get(wh_db *db, const char *name, struct wh_robot *out)
{
    static const char sql[] = "SELECT " ROBOT_COLS " FROM robot WHERE name = ?1";
    return robot_get(db, sql, name, 0, out);
}

int wh_db_robot_get_id(wh_db *db, int64_t id, struct wh_robot *out)
{
    static const char sql[] = "SELECT " ROBOT_COLS " FROM robot WHERE id = ?1";
    return robot_get(db, sql, NULL, id, out);
}

int wh_db_robot_update(wh_db *db, const struct wh_robot *r)
{
    static const char sql[] = "UPDATE robot SET description = ?2, disabled = ?3, duration = ?4,"
                              " expires_at = ?5, permissions = ?6, secret = ?7, updated_ms = ?8"
                              " WHERE id = ?1";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, r->id);
    db_bind_text(s, 2, r->description);
    db_bind_i64(s, 3, r->disabled);
    db_bind_i64(s, 4, r->duration);
    db_bind_i64(s, 5, r->expires_at);
    db_bind_text(s, 6, r->permissions[0] ? r->permissions : "[]");
    db_bind_text(s, 7, r->secret);
    db_bind_i64(s, 8, wh_now_ms());
    return db_change(c, s, "robot");
}

int wh_db_robot_delete(wh_db *db, int64_t id)
{
    static const char sql[] = "DELETE FROM robot WHERE id = ?1";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, id);
    return db_change(c, s, "robot");
}

int wh_db_robot_list(wh_db *db, int64_t project_id, int64_t offset, int64_t limit,
                     int (*fn)(const struct wh_robot *r, void *payload), void *payload,
                     int64_t *total_out)
{
    static const char sql_count[] = "SELECT count(*) FROM robot WHERE coalesce(project_id, 0) = ?1";
    static const char sql[] = "SELECT " ROBOT_COLS " FROM robot WHERE coalesce(project_id, 0) = ?1"
                              " ORDER BY name LIMIT ?3 OFFSET ?2";
    CONN_OR_FAIL(c, db);
    int error;
    if (total_out) {
        db_stmt *cs = db_stmt(c, sql_count);
        db_bind_i64(cs, 1, project_id);
        if ((error = db_count(c, cs, total_out)) < 0)
            return error;
    }
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, project_id);
    db_bind_i64(s, 2, offset);
    db_bind_i64(s, 3, limit);
    struct robot_each e = {fn, payload, wh_malloc(sizeof(struct wh_robot))};
    error = db_rows(c, s, robot_each, &e);
    free(e.r);
    return error;
}

/* ---- audit log ---- */

static int audit_insert(struct conn *c, const struct wh_audit *a);

int wh_db_audit_add(wh_db *db, const struct wh_audit *a)
{
    CONN_WRITE_OR_FAIL(c, db);
    return audit_insert(c, a);
}

int wh_db_audit_add_many(wh_db *db, const struct wh_audit *a, size_t n)
{
    CONN_WRITE_OR_FAIL(c, db);
    int error = db_tx_begin(c);
    for (size_t i = 0; i < n && error == 0; i++)
        error = audit_insert(c, &a[i]);
    return db_tx_end(c, error);
}

static int audit_insert(struct conn *c, const struct wh_audit *a)
{
    static const char sql[] =
        "INSERT INTO audit_log(op_time_ms, username, resource, resource_type, operation,"
        " description, result, project_id, client_ip, count, bucket)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
    /* the conflict target is the partial unique index audit_fold */
    static const char sql_fold[] =
        "INSERT INTO audit_log(op_time_ms, username, resource, resource_type, operation,"
        " description, result, project_id, client_ip, count, bucket)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        " ON CONFLICT(bucket, username, resource, resource_type, operation, result, client_ip,"
        " project_id) WHERE bucket IS NOT NULL DO UPDATE SET count = audit_log.count + excluded.count";
    int64_t when = a->op_time_ms ? a->op_time_ms : wh_now_ms();
    db_stmt *s = db_stmt(c, a->folded ? sql_fold : sql);
    db_bind_i64(s, 10, a->count > 0 ? a->count : 1);
    if (a->folded)
        db_bind_i64(s, 11, when / 60000);
    else
        db_bind_null(s, 11);
    db_bind_i64(s, 1, when);
    db_bind_text(s, 2, a->username ? a->username : "");
    db_bind_text(s, 3, a->resource ? a->resource : "");
    db_bind_text(s, 4, a->resource_type ? a->resource_type : "");
    db_bind_text(s, 5, a->operation ? a->operation : "");
    db_bind_text(s, 6, a->description ? a->description : "");
    db_bind_i64(s, 7, a->result);
    if (a->project_id > 0)
        db_bind_i64(s, 8, a->project_id);
    else if (a->folded)
        db_bind_i64(s, 8, 0); /* NULLs never conflict in the fold index */
    else
        db_bind_null(s, 8);
    db_bind_text(s, 9, a->client_ip ? a->client_ip : "");
    return db_run(c, s);
}

int wh_db_audit_purge(wh_db *db, int64_t before_ms, int64_t *deleted)
{
    /* batches of rows: a purge of millions never holds the write lock for long */
    static const char sql[] =
        "DELETE FROM audit_log WHERE id IN"
        " (SELECT id FROM audit_log WHERE op_time_ms < ?1 LIMIT 5000)";
    CONN_WRITE_OR_FAIL(c, db);
    int64_t total = 0;
    int error = 0;
    for (;;) {
        db_stmt *s = db_stmt(c, sql);
        db_bind_i64(s, 1, before_ms);
        if ((error = db_run(c, s)) < 0)
            break;
        int n = db_changes(c);
        total += n;
        if (n < 5000)
            break;
    }
    if (deleted)
        *deleted = total;
    return error;
}

struct audit_each {
    int (*fn)(const struct wh_audit *a, void *payload);
    void *payload;
};

static int audit_each(db_stmt *s, void *payload)
{
    struct audit_each *e = payload;
    struct wh_audit a = {
        .id = db_col_i64(s, 0),
        .op_time_ms = db_col_i64(s, 1),
        .username = db_col_text(s, 2),
        .resource = db_col_text(s, 3),
        .resource_type = db_col_text(s, 4),
        .operation = db_col_text(s, 5),
        .description = db_col_text(s, 6),
        .result = db_col_int(s, 7) != 0,
        .project_id = db_col_i64(s, 8),
        .client_ip = db_col_text(s, 9),
        .count = db_col_i64(s, 10),
    };
    return e->fn(&a, e->payload);
}

int wh_db_audit_list(wh_db *db, int64_t project_id, const char *username, const char *operation,
                     int64_t offset, int64_t limit,
                     int (*fn)(const struct wh_audit *a, void *payload), void *payload,
                     int64_t *total_out)
{
#define AUDIT_WHERE                                                                                \
    " WHERE (?1 = 0 OR project_id = ?1) AND (?2 = '' OR username = ?2)"                           \
    " AND (?3 = '' OR operation = ?3)"
    static const char sql_count[] = "SELECT count(*) FROM audit_log" AUDIT_WHERE;
    static const char sql[] =
        "SELECT id, op_time_ms, username, resource, resource_type, operation, description, result,"
        " coalesce(project_id, 0), client_ip, count FROM audit_log" AUDIT_WHERE
        " ORDER BY op_time_ms DESC, id DESC LIMIT ?5 OFFSET ?4";
#undef AUDIT_WHERE
    CONN_OR_FAIL(c, db);
    int error;
    if (total_out) {
        db_stmt *cs = db_stmt(c, sql_count);
        db_bind_i64(cs, 1, project_id);
        db_bind_text(cs, 2, username ? username : "");
        db_bind_text(cs, 3, operation ? operation : "");
        if ((error = db_count(c, cs, total_out)) < 0)
            return error;
    }
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, project_id);
    db_bind_text(s, 2, username ? username : "");
    db_bind_text(s, 3, operation ? operation : "");
    db_bind_i64(s, 4, offset);
    db_bind_i64(s, 5, limit);
    struct audit_each e = {fn, payload};
    return db_rows(c, s, audit_each, &e);
}
