/*
 * db_repository.c: repositories as the REST API shows them — with their
 * description, artifact count and pull count — listed per project or over
 * every project the caller may see, searched by name, described and deleted.
 * A list's SQL is assembled for its filters and sort key so that it walks
 * one index; the artifact count is of the base collection (db_artifact.c).
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
    " (SELECT count(*) FROM artifact a WHERE a.repo_id = r.id AND a.listed = 1), p.name,"          \
    " p.public"
#define REPO_FROM " FROM repository r JOIN project p ON p.id = r.project_id"

static void repo_row(struct wh_repo_info *o, db_stmt *s)
{
    memset(o, 0, sizeof(*o));
    o->id = db_col_i64(s, 0);
    o->project_id = db_col_i64(s, 1);
    db_copy_col(o->name, sizeof(o->name), s, 2);
    db_copy_col(o->description, sizeof(o->description), s, 3);
    o->pull_count = db_col_i64(s, 4);
    o->created_ms = db_col_i64(s, 5);
    o->updated_ms = db_col_i64(s, 6);
    o->artifact_count = db_col_i64(s, 7);
    db_copy_col(o->project_name, sizeof(o->project_name), s, 8);
    o->project_public = db_col_int(s, 9) != 0;
}

struct repo_each {
    int (*fn)(const struct wh_repo_info *r, void *payload);
    void *payload;
    struct wh_repo_info *ri;
};

static int repo_each(db_stmt *s, void *payload)
{
    struct repo_each *e = payload;
    repo_row(e->ri, s);
    return e->fn(e->ri, e->payload);
}

static int each_row(struct conn *c, db_stmt *s,
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
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, name);
    int rc = db_step(s);
    int error = 0;
    if (rc == DB_ROW)
        repo_row(out, s);
    else if (rc == DB_DONE)
        error = wh_error_set(WH_ENOTFOUND, "repository %s not found", name);
    else
        error = db_fail(c);
    db_done(s);
    return error;
}

void db_repo_page_sql(struct db_sql *q, const struct wh_repo_filter *f, bool count)
{
    /* ?1 project, ?2 exact name, ?3 name substring, ?4/?5 visibility (as for projects,
     * db_project.c), ?6 offset, ?7 limit */
    static const char *const keys[] = {NULL, "r.created_ms", "r.updated_ms", "r.pull_count",
                                       "r.id"};
    const char *dir = f->desc ? " DESC" : "";
    bool visible = f->visible_user != -1;
    /*
     * A page walks an index in the sort order and tests each repository's
     * project; the total of a list over every project counts the visible
     * projects' repositories through the project index instead.
     */
    bool by_projects = count && visible && f->project_id <= 0;
    if (!count)
        db_sql_add(q, "SELECT " REPO_COLS REPO_FROM);
    else if (visible && !by_projects)
        db_sql_add(q, "SELECT count(*)" REPO_FROM);
    else
        db_sql_add(q, "SELECT count(*) FROM repository r");
    db_sql_add(q, f->project_id > 0 ? " WHERE r.project_id = ?1" : " WHERE 1 = 1");
    if (f->name)
        db_sql_add(q, " AND r.name = ?2");
    if (f->name_like)
        db_sql_add(q, " AND" DB_CONTAINS("r.name", "?3"));
    /* ?8: the project names a system robot's permissions cover (NULL: none) */
    if (by_projects)
        db_sql_add(q, f->visible_names
                          ? " AND r.project_id IN (SELECT id FROM project WHERE public = 1"
                            " UNION ALL SELECT ?5"
                            " UNION ALL SELECT project_id FROM member WHERE user_id = ?4"
                            " UNION ALL SELECT id FROM project WHERE" DB_IN_NAMES("name", "?8") ")"
                          : " AND r.project_id IN (SELECT id FROM project WHERE public = 1"
                            " UNION ALL SELECT ?5"
                            " UNION ALL SELECT project_id FROM member WHERE user_id = ?4)");
    else if (visible)
        db_sql_add(q, f->visible_names
                          ? " AND (p.public = 1 OR p.id = ?5"
                            " OR p.id IN (SELECT project_id FROM member WHERE user_id = ?4)"
                            " OR" DB_IN_NAMES("p.name", "?8") ")"
                          : " AND (p.public = 1 OR p.id = ?5"
                            " OR p.id IN (SELECT project_id FROM member WHERE user_id = ?4))");
    if (count)
        return;
    if (f->name) {
        /* names are unique: one row at most, nothing to sort */
        db_sql_add(q, " LIMIT ?7 OFFSET ?6");
        return;
    }
    int k = f->sort >= 0 && f->sort < 5 ? f->sort : 0;
    db_sql_add(q, " ORDER BY ");
    if (keys[k]) {
        db_sql_add(q, keys[k]);
        db_sql_add(q, dir);
    }
    if (k != 4) {
        db_sql_add(q, keys[k] ? ", r.name" : "r.name");
        db_sql_add(q, dir);
    }
    db_sql_add(q, " LIMIT ?7 OFFSET ?6");
}

int wh_db_repo_page(wh_db *db, const struct wh_repo_filter *f, int64_t offset, int64_t limit,
                    int (*fn)(const struct wh_repo_info *r, void *payload), void *payload,
                    int64_t *total_out)
{
    CONN_OR_FAIL(c, db);
    int error = 0;
    struct db_sql *q = wh_malloc(sizeof(*q));
    char *names = db_name_set(f->visible_names);
    for (int pass = total_out ? 0 : 1; pass < 2 && error == 0; pass++) {
        q->len = 0;
        db_repo_page_sql(q, f, pass == 0);
        db_stmt *s = db_stmt_text(c, q->text);
        /* A parameter the text does not use is ignored (db_driver.h). */
        db_bind_i64(s, 1, f->project_id);
        db_bind_text(s, 2, f->name);
        db_bind_text(s, 3, f->name_like);
        db_bind_i64(s, 4, f->visible_user);
        db_bind_i64(s, 5, f->visible_project);
        db_bind_text(s, 8, names);
        if (pass == 0) {
            error = db_count(c, s, total_out);
            continue;
        }
        db_bind_i64(s, 6, offset);
        db_bind_i64(s, 7, limit);
        error = each_row(c, s, fn, payload);
    }
    free(names);
    free(q);
    return error;
}

int wh_db_repo_set_description(wh_db *db, int64_t id, const char *description)
{
    static const char sql[] = "UPDATE repository SET description = ?2, updated_ms = ?3 WHERE id = ?1";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, id);
    db_bind_text(s, 2, description ? description : "");
    db_bind_i64(s, 3, wh_now_ms());
    int error = db_run(c, s);
    if (error == 0 && db_changes(c) == 0)
        error = wh_error_set(WH_ENOTFOUND, "repository %" PRId64 " not found", id);
    return error;
}

int wh_db_repo_delete(wh_db *db, int64_t id)
{
    static const char sql[] = "DELETE FROM repository WHERE id = ?1";
    CONN_WRITE_OR_FAIL(c, db);
    int error;
    if ((error = db_tx_begin(c)) < 0)
        return error;
    /* Tags point at artifacts of the same repository: both cascade from the row. */
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, id);
    error = db_run(c, s);
    if (error == 0 && db_changes(c) == 0)
        error = wh_error_set(WH_ENOTFOUND, "repository %" PRId64 " not found", id);
    return db_tx_end(c, error);
}
