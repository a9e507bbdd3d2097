/*
 * db_label.c: Harbor's labels (schema 3) — global ones (scope "g", managed by
 * administrators) and those of one project (scope "p") — and which artifacts
 * carry them. A name is unique within its scope and project; ids are never
 * reused. Deleting a label, an artifact or a project drops the links (the
 * foreign keys cascade). Who may do what is api/'s business.
 */
#include "db/db_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LABEL_COLS                                                                                 \
    "l.id, l.name, l.description, l.color, l.scope, coalesce(l.project_id, 0), l.created_ms,"      \
    " l.updated_ms"

static void label_row(struct wh_label *o, db_stmt *s)
{
    memset(o, 0, sizeof(*o));
    o->id = db_col_i64(s, 0);
    db_copy_col(o->name, sizeof(o->name), s, 1);
    db_copy_col(o->description, sizeof(o->description), s, 2);
    db_copy_col(o->color, sizeof(o->color), s, 3);
    db_copy_col(o->scope, sizeof(o->scope), s, 4);
    o->project_id = db_col_i64(s, 5);
    o->created_ms = db_col_i64(s, 6);
    o->updated_ms = db_col_i64(s, 7);
}

struct label_each {
    int (*fn)(const struct wh_label *l, void *payload);
    void *payload;
    struct wh_label row;
};

static int label_each(db_stmt *s, void *payload)
{
    struct label_each *e = payload;
    label_row(&e->row, s);
    return e->fn(&e->row, e->payload);
}

/* Steps a bound INSERT or UPDATE of a label: a uniqueness violation is
 * WH_EEXISTS with Harbor's message, a missing project WH_ENOTFOUND. Resets `s`. */
static int label_write(struct conn *c, db_stmt *s, const char *name, int64_t *id_out)
{
    int rc = db_step(s);
    int error = 0;
    if (rc == WH_ENOTFOUND)
        error = wh_error_set(WH_ENOTFOUND, "project not found");
    else if (rc == WH_EEXISTS)
        error = wh_error_set(WH_EEXISTS, "label %s already exists", name);
    else if (rc < 0)
        error = db_fail(c);
    else if (id_out) /* an INSERT ... RETURNING id */
        *id_out = rc == DB_ROW ? db_col_i64(s, 0) : 0;
    db_done(s);
    return error;
}

int wh_db_label_create(wh_db *db, const struct wh_label *l, int64_t *id_out)
{
    static const char sql[] = "INSERT INTO label(name, description, color, scope, project_id,"
                              " created_ms, updated_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6)"
                              " RETURNING id";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, l->name);
    db_bind_text(s, 2, l->description);
    db_bind_text(s, 3, l->color);
    db_bind_text(s, 4, l->scope);
    if (l->project_id > 0)
        db_bind_i64(s, 5, l->project_id);
    else
        db_bind_null(s, 5);
    db_bind_i64(s, 6, wh_now_ms());
    return label_write(c, s, l->name, id_out);
}

int wh_db_label_get(wh_db *db, int64_t id, struct wh_label *out)
{
    static const char sql[] = "SELECT " LABEL_COLS " FROM label l WHERE l.id = ?1";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, id);
    int rc = db_step(s);
    int error = 0;
    if (rc == DB_ROW)
        label_row(out, s);
    else if (rc == DB_DONE)
        error = wh_error_set(WH_ENOTFOUND, "label %" PRId64 " not found", id);
    else
        error = db_fail(c);
    db_done(s);
    return error;
}

int wh_db_label_update(wh_db *db, const struct wh_label *l)
{
    static const char sql[] = "UPDATE label SET name = ?2, description = ?3, color = ?4,"
                              " updated_ms = ?5 WHERE id = ?1";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, l->id);
    db_bind_text(s, 2, l->name);
    db_bind_text(s, 3, l->description);
    db_bind_text(s, 4, l->color);
    db_bind_i64(s, 5, wh_now_ms());
    int error = label_write(c, s, l->name, NULL);
    if (error == 0 && db_changes(c) == 0)
        error = wh_error_set(WH_ENOTFOUND, "label %" PRId64 " not found", l->id);
    return error;
}

int wh_db_label_delete(wh_db *db, int64_t id)
{
    static const char sql[] = "DELETE FROM label WHERE id = ?1";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, id);
    int error = db_run(c, s);
    if (error == 0 && db_changes(c) == 0)
        error = wh_error_set(WH_ENOTFOUND, "label %" PRId64 " not found", id);
    return error;
}

/* ?1 scope, ?2 project (0 for global labels), ?3 exact name, ?4 name substring,
 * ?5 offset, ?6 limit. The (scope, project, name) index serves the first two. */
#define LABEL_WHERE                                                                                \
    " WHERE l.scope = ?1 AND coalesce(l.project_id, 0) = ?2 AND (?3 IS NULL OR l.name = ?3)"       \
    " AND (?4 IS NULL OR" DB_CONTAINS("l.name", "?4") ")"
#define LABEL_LIST(order)                                                                          \
    "SELECT " LABEL_COLS " FROM label l" LABEL_WHERE " ORDER BY " order " LIMIT ?6 OFFSET ?5"

int wh_db_label_list(wh_db *db, const struct wh_label_filter *f, int64_t offset, int64_t limit,
                     int (*fn)(const struct wh_label *l, void *payload), void *payload,
                     int64_t *total_out)
{
    static const char sql_count[] = "SELECT count(*) FROM label l" LABEL_WHERE;
    /* one statement per sort key and direction (wh_label_filter.sort order) */
    static const char *const sql[4][2] = {
        {LABEL_LIST("l.id"), LABEL_LIST("l.id DESC")},
        {LABEL_LIST("l.name, l.id"), LABEL_LIST("l.name DESC, l.id DESC")},
        {LABEL_LIST("l.created_ms, l.id"), LABEL_LIST("l.created_ms DESC, l.id DESC")},
        {LABEL_LIST("l.updated_ms, l.id"), LABEL_LIST("l.updated_ms DESC, l.id DESC")},
    };
    CONN_OR_FAIL(c, db);
    int sort = f->sort >= 0 && f->sort < 4 ? f->sort : 0;
    int64_t project = strcmp(f->scope, "p") == 0 ? f->project_id : 0;
    int error;
    for (int pass = total_out ? 0 : 1; pass < 2; pass++) {
        db_stmt *s = db_stmt(c, pass == 0 ? sql_count : sql[sort][f->desc ? 1 : 0]);
        db_bind_text(s, 1, f->scope);
        db_bind_i64(s, 2, project);
        db_bind_text(s, 3, f->name);
        db_bind_text(s, 4, f->name_like);
        if (pass == 0) {
            if ((error = db_count(c, s, total_out)) < 0)
                return error;
            continue;
        }
        db_bind_i64(s, 5, offset);
        db_bind_i64(s, 6, limit);
        struct label_each *e = wh_malloc(sizeof(*e));
        e->fn = fn;
        e->payload = payload;
        error = db_rows(c, s, label_each, e);
        free(e);
        return error;
    }
    return 0;
}

int wh_db_artifact_label_add(wh_db *db, int64_t artifact_id, int64_t label_id)
{
    static const char sql[] = "INSERT INTO artifact_label(artifact_id, label_id, created_ms)"
                              " VALUES(?1, ?2, ?3)";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, artifact_id);
    db_bind_i64(s, 2, label_id);
    db_bind_i64(s, 3, wh_now_ms());
    int rc = db_step(s);
    int error = 0;
    if (rc == WH_EEXISTS || rc == WH_ENOTFOUND) {
        if (rc == WH_ENOTFOUND)
            error = wh_error_set(WH_ENOTFOUND,
                                 "the reference tries to refer a non existing label %" PRId64
                                 " or artifact %" PRId64,
                                 label_id, artifact_id);
        else
            error = wh_error_set(WH_EEXISTS,
                                 "label %" PRId64 " is already added to the artifact %" PRId64,
                                 label_id, artifact_id);
    } else if (rc != DB_DONE) {
        error = db_fail(c);
    }
    db_done(s);
    return error;
}

int wh_db_artifact_label_remove(wh_db *db, int64_t artifact_id, int64_t label_id)
{
    static const char sql[] = "DELETE FROM artifact_label WHERE artifact_id = ?1 AND label_id = ?2";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, artifact_id);
    db_bind_i64(s, 2, label_id);
    int error = db_run(c, s);
    if (error == 0 && db_changes(c) == 0)
        error = wh_error_set(WH_ENOTFOUND,
                             "reference with label %" PRId64 " and artifact %" PRId64 " not found",
                             label_id, artifact_id);
    return error;
}

int wh_db_artifact_labels(wh_db *db, int64_t artifact_id,
                          int (*fn)(const struct wh_label *l, void *payload), void *payload)
{
    static const char sql[] = "SELECT " LABEL_COLS " FROM artifact_label al"
                              " JOIN label l ON l.id = al.label_id WHERE al.artifact_id = ?1"
                              " ORDER BY l.id";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, artifact_id);
    struct label_each *e = wh_malloc(sizeof(*e));
    e->fn = fn;
    e->payload = payload;
    int error = db_rows(c, s, label_each, e);
    free(e);
    return error;
}
