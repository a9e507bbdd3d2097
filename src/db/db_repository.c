/*
 * db_repository.c: repositories as the REST API shows them — with their
 * description, artifact count and pull count — listed per project or over
 * every project the caller may see, searched by name, described and deleted.
 * Deleting a repository drops its artifacts, tags and blob links (foreign
 * keys cascade); the blobs themselves stay for garbage collection.
 */
#include "db/db_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPO_COLS                                                                                  \
    "r.id, r.project_id, r.name, r.description, r.pull_count, r.created_ms, r.updated_ms,"         \
    " (SELECT count(*) FROM artifact a WHERE a.repo_id = r.id), p.name, p.public"
#define REPO_FROM " FROM repository r JOIN project p ON p.id = r.project_id"
/* Same visibility rule as for projects (db_project.c). */
#define VISIBLE(V, R, N)                                                                           \
    " (" V " = -1 OR p.public = 1 OR p.id = " R " OR p.id IN"                                      \
    " (SELECT project_id FROM member WHERE user_id = " V ")"                                       \
    " OR p.name IN (SELECT value FROM json_each(" N "))) "

static void repo_row(struct wh_repo_info *o, sqlite3_stmt *s)
{
    memset(o, 0, sizeof(*o));
    o->id = sqlite3_column_int64(s, 0);
    o->project_id = sqlite3_column_int64(s, 1);
    db_copy_col(o->name, sizeof(o->name), s, 2);
    db_copy_col(o->description, sizeof(o->description), s, 3);
    o->pull_count = sqlite3_column_int64(s, 4);
    o->created_ms = sqlite3_column_int64(s, 5);
    o->updated_ms = sqlite3_column_int64(s, 6);
    o->artifact_count = sqlite3_column_int64(s, 7);
    db_copy_col(o->project_name, sizeof(o->project_name), s, 8);
    o->project_public = sqlite3_column_int(s, 9) != 0;
}

struct repo_each {
    int (*fn)(const struct wh_repo_info *r, void *payload);
    void *payload;
    struct wh_repo_info *ri;
};

static int repo_each(sqlite3_stmt *s, void *payload)
{
    struct repo_each *e = payload;
    repo_row(e->ri, s);
    return e->fn(e->ri, e->payload);
}

static int each_row(struct conn *c, sqlite3_stmt *s,
                    int (*fn)(const struct wh_repo_info *r, void *payload), void *payload)
{
    struct repo_each e = {fn, payload, wh_malloc(sizeof(struct wh_repo_info))};
    int error = db_rows(c, s, repo_each, &e);
    free(e.ri);
    return error;
}

int wh_db_repo_info(wh_db *db, const char *name, struct wh_repo_info *out)
{
    static const char sql[] = "SELECT " REPO_COLS REPO_FROM " WHERE r.name = ?1";
    CONN_OR_FAIL(c, db);
    sqlite3_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, name);
    int rc = sqlite3_step(s);
    int error = 0;
    if (rc == SQLITE_ROW)
        repo_row(out, s);
    else if (rc == SQLITE_DONE)
        error = wh_error_set(WH_ENOTFOUND, "repository %s not found", name);
    else
        error = db_fail(c);
    db_done(s);
    return error;
}

int wh_db_repo_page(wh_db *db, const struct wh_repo_filter *f, int64_t offset, int64_t limit,
                    int (*fn)(const struct wh_repo_info *r, void *payload), void *payload,
                    int64_t *total_out)
{
    /* ?1 project (0 any), ?2 exact name, ?3 name substring, ?4/?5/?10 visibility,
     * ?6 sort key, ?7 direction, ?8 offset, ?9 limit */
#define WHERE                                                                                      \
    " WHERE (?1 = 0 OR r.project_id = ?1) AND (?2 IS NULL OR r.name = ?2)"                         \
    " AND (?3 IS NULL OR instr(r.name, ?3) > 0) AND" VISIBLE("?4", "?5", "?10")
    static const char sql_count[] = "SELECT count(*)" REPO_FROM WHERE;
    static const char sql[] = "SELECT " REPO_COLS REPO_FROM WHERE
                              " ORDER BY CASE ?6 WHEN 0 THEN NULL WHEN 1 THEN r.created_ms * ?7"
                              " WHEN 2 THEN r.updated_ms * ?7 WHEN 3 THEN r.pull_count * ?7"
                              " ELSE r.id * ?7 END,"
                              " CASE WHEN ?7 > 0 THEN r.name END ASC,"
                              " CASE WHEN ?7 < 0 THEN r.name END DESC"
                              " LIMIT ?9 OFFSET ?8";
#undef WHERE
    CONN_OR_FAIL(c, db);
    int error = 0;
    for (int pass = total_out ? 0 : 1; pass < 2; pass++) {
        sqlite3_stmt *s = db_stmt(c, pass == 0 ? sql_count : sql);
        sqlite3_bind_int64(s, 1, f->project_id);
        db_bind_text(s, 2, f->name);
        db_bind_text(s, 3, f->name_like);
        sqlite3_bind_int64(s, 4, f->visible_user);
        sqlite3_bind_int64(s, 5, f->visible_project);
        db_bind_text(s, 10, f->visible_names);
        if (pass == 0) {
            if (sqlite3_step(s) == SQLITE_ROW)
                *total_out = sqlite3_column_int64(s, 0);
            else
                error = db_fail(c);
            db_done(s);
            if (error < 0)
                return error;
            continue;
        }
        sqlite3_bind_int(s, 6, f->sort);
        sqlite3_bind_int(s, 7, f->desc ? -1 : 1);
        sqlite3_bind_int64(s, 8, offset);
        sqlite3_bind_int64(s, 9, limit);
        error = each_row(c, s, fn, payload);
    }
    return error;
}

int wh_db_repo_set_description(wh_db *db, int64_t id, const char *description)
{
    static const char sql[] = "UPDATE repository SET description = ?2, updated_ms = ?3 WHERE id = ?1";
    CONN_OR_FAIL(c, db);
    sqlite3_stmt *s = db_stmt(c, sql);
    sqlite3_bind_int64(s, 1, id);
    db_bind_text(s, 2, description ? description : "");
    sqlite3_bind_int64(s, 3, wh_now_ms());
    int error = db_run(c, s);
    if (error == 0 && db_changes(c) == 0)
        error = wh_error_set(WH_ENOTFOUND, "repository %" PRId64 " not found", id);
    return error;
}

int wh_db_repo_delete(wh_db *db, int64_t id)
{
    static const char sql[] = "DELETE FROM repository WHERE id = ?1";
    CONN_OR_FAIL(c, db);
    int error;
    if ((error = db_tx_begin(c)) < 0)
        return error;
    /* Tags point at artifacts of the same repository: both cascade from the row. */
    sqlite3_stmt *s = db_stmt(c, sql);
    sqlite3_bind_int64(s, 1, id);
    error = db_run(c, s);
    if (error == 0 && db_changes(c) == 0)
        error = wh_error_set(WH_ENOTFOUND, "repository %" PRId64 " not found", id);
    return db_tx_end(c, error);
}
