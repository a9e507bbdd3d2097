/*
 * db_quota.c: the quota API's view of the projects' storage quotas. wharf
 * keeps one storage limit per project (project.storage_limit), so a quota
 * is its project: the same id, the project's times, the limit as `hard` and
 * the usage (distinct blobs over the project's repositories, db_project.c's
 * rule) as `used`. Only storage is counted, as in Harbor 2.x.
 */
#include "db/db_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Usage of project p: the distinct blobs linked into its repositories. */
#define USED                                                                                       \
    "(SELECT coalesce(sum(b.size), 0) FROM blob b WHERE b.digest IN"                               \
    " (SELECT rb.digest FROM repo_blob rb JOIN repository r ON r.id = rb.repo_id"                  \
    "  WHERE r.project_id = p.id))"
#define QUOTA_COLS                                                                                 \
    "p.id, p.name, coalesce(u.username, ''), p.storage_limit, " USED ", p.created_ms,"             \
    " coalesce(p.updated_ms, p.created_ms)"
#define QUOTA_FROM " FROM project p LEFT JOIN \"user\" u ON u.id = p.owner_id"

static void quota_row(struct wh_quota *o, db_stmt *s)
{
    memset(o, 0, sizeof(*o));
    o->id = db_col_i64(s, 0);
    db_copy_col(o->project_name, sizeof(o->project_name), s, 1);
    db_copy_col(o->owner_name, sizeof(o->owner_name), s, 2);
    o->hard = db_col_i64(s, 3);
    o->used = (uint64_t)db_col_i64(s, 4);
    o->created_ms = db_col_i64(s, 5);
    o->updated_ms = db_col_i64(s, 6);
}

struct quota_each {
    int (*fn)(const struct wh_quota *q, void *payload);
    void *payload;
    struct wh_quota row;
};

static int quota_each(db_stmt *s, void *payload)
{
    struct quota_each *e = payload;
    quota_row(&e->row, s);
    return e->fn(&e->row, e->payload);
}

int wh_db_quota_get(wh_db *db, int64_t id, struct wh_quota *out)
{
    static const char sql[] = "SELECT " QUOTA_COLS QUOTA_FROM " WHERE p.id = ?1";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, id);
    int rc = db_step(s);
    int error = 0;
    if (rc == DB_ROW)
        quota_row(out, s);
    else if (rc == DB_DONE)
        error = wh_error_set(WH_ENOTFOUND, "quota %" PRId64 " not found", id);
    else
        error = db_fail(c);
    db_done(s);
    return error;
}

/* ?1 project (0: all; two statements so that each can use its index), ?2 offset, ?3 limit */
#define QUOTA_LIST(order)                                                                          \
    "SELECT " QUOTA_COLS QUOTA_FROM " ORDER BY " order " LIMIT ?3 OFFSET ?2"

int wh_db_quota_list(wh_db *db, const struct wh_quota_filter *f, int64_t offset, int64_t limit,
                     int (*fn)(const struct wh_quota *q, void *payload), void *payload,
                     int64_t *total_out)
{
    static const char sql_count[] = "SELECT count(*) FROM project";
    static const char sql_one[] = "SELECT " QUOTA_COLS QUOTA_FROM
                                  " WHERE p.id = ?1 LIMIT ?3 OFFSET ?2";
    static const char sql_one_count[] = "SELECT count(*) FROM project WHERE id = ?1";
    /* one statement per sort key and direction (wh_quota_filter.sort order) */
    static const char *const sql[5][2] = {
        {QUOTA_LIST("p.id"), QUOTA_LIST("p.id DESC")},
        {QUOTA_LIST("5, p.id"), QUOTA_LIST("5 DESC, p.id DESC")},
        {QUOTA_LIST("p.storage_limit, p.id"), QUOTA_LIST("p.storage_limit DESC, p.id DESC")},
        {QUOTA_LIST("p.created_ms, p.id"), QUOTA_LIST("p.created_ms DESC, p.id DESC")},
        {QUOTA_LIST("coalesce(p.updated_ms, p.created_ms), p.id"),
         QUOTA_LIST("coalesce(p.updated_ms, p.created_ms) DESC, p.id DESC")},
    };
    CONN_OR_FAIL(c, db);
    int sort = f->sort >= 0 && f->sort < 5 ? f->sort : 0;
    int error;
    if (total_out) {
        db_stmt *cs = db_stmt(c, f->project_id ? sql_one_count : sql_count);
        if (f->project_id)
            db_bind_i64(cs, 1, f->project_id);
        if ((error = db_count(c, cs, total_out)) < 0)
            return error;
    }
    db_stmt *s = db_stmt(c, f->project_id ? sql_one : sql[sort][f->desc ? 1 : 0]);
    if (f->project_id)
        db_bind_i64(s, 1, f->project_id);
    db_bind_i64(s, 2, offset);
    db_bind_i64(s, 3, limit);
    struct quota_each *e = wh_malloc(sizeof(*e));
    e->fn = fn;
    e->payload = payload;
    error = db_rows(c, s, quota_each, e);
    free(e);
    return error;
}

int wh_db_quota_set_hard(wh_db *db, int64_t id, int64_t hard)
{
    static const char sql[] =
        "UPDATE project SET storage_limit = ?2, updated_ms = ?3 WHERE id = ?1";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, id);
    db_bind_i64(s, 2, hard);
    db_bind_i64(s, 3, wh_now_ms());
    int error = db_run(c, s);
    if (error == 0 && db_changes(c) == 0)
        error = wh_error_set(WH_ENOTFOUND, "quota %" PRId64 " not found", id);
    return error;
}
