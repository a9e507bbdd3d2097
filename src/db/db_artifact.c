/*
 * db_artifact.c: artifacts and tags as the REST API lists them — filtered by
 * digest, tag, media type or taggedness, sorted by push time, pull time,
 * size or id, with their tags and the children of an index — plus tag
 * creation and the check that an artifact is not a child of another before
 * deletion. A list shows Harbor's base collection (artifact.listed, kept by
 * the schema's triggers) unless asked for every artifact; its SQL is
 * assembled for its filters and sort key so that it walks one index.
 * Platform details of index children and image config attributes are read
 * from the blobs by api/, not stored here.
 */
#include "db/db_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ART_COLS                                                                                   \
    "a.id, a.repo_id, r.project_id, r.name, a.digest, a.media_type, coalesce(a.artifact_type, ''),"  \
    " a.size, a.push_ms, coalesce(a.pull_ms, 0), coalesce(a.annotations, '')"
#define ART_FROM " FROM artifact a JOIN repository r ON r.id = a.repo_id"

static void art_row(struct wh_artifact_info *o, db_stmt *s)
{
    o->id = db_col_i64(s, 0);
    o->repo_id = db_col_i64(s, 1);
    o->project_id = db_col_i64(s, 2);
    db_copy_col(o->repo_name, sizeof(o->repo_name), s, 3);
    db_copy_col(o->digest, sizeof(o->digest), s, 4);
    db_copy_col(o->media_type, sizeof(o->media_type), s, 5);
    db_copy_col(o->artifact_type, sizeof(o->artifact_type), s, 6);
    o->size = (uint64_t)db_col_i64(s, 7);
    o->push_ms = db_col_i64(s, 8);
    o->pull_ms = db_col_i64(s, 9);
}

void wh_artifact_info_dispose(struct wh_artifact_info *a)
{
    if (!a)
        return;
    free(a->annotations);
    a->annotations = NULL;
}

int wh_db_artifact_get(wh_db *db, int64_t repo_id, const char *ref, bool is_digest,
                       struct wh_artifact_info *out)
{
    static const char by_digest[] = "SELECT " ART_COLS ART_FROM " WHERE a.repo_id = ?1"
                                    " AND a.digest = ?2";
    static const char by_tag[] = "SELECT " ART_COLS ART_FROM " JOIN tag t ON t.artifact_id = a.id"
                                 " WHERE t.repo_id = ?1 AND t.name = ?2";
    out->annotations = NULL; /* wh_artifact_info_dispose is safe after any return */
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, is_digest ? by_digest : by_tag);
    db_bind_i64(s, 1, repo_id);
    db_bind_text(s, 2, ref);
    int rc = db_step(s);
    int error = 0;
    if (rc == DB_ROW) {
        art_row(out, s);
        out->annotations = db_dup_col(s, 10);
    } else if (rc == DB_DONE) {
        error = wh_error_set(WH_ENOTFOUND, "artifact %s not found", ref);
    } else {
        error = db_fail(c);
    }
    db_done(s);
    return error;
}

struct list_each {
    int (*fn)(const struct wh_artifact_info *row, void *payload);
    void *payload;
    struct wh_artifact_info *row;
    size_t cap; /* of row->annotations, reused from row to row */
};

static int list_each(db_stmt *s, void *payload)
{
    struct list_each *e = payload;
    art_row(e->row, s);
    const char *ann = db_col_text(s, 10);
    size_t n = ann ? db_col_bytes(s, 10) : 0;
    if (n + 1 > e->cap) {
        e->cap = n + 1 > 2 * e->cap ? n + 1 : 2 * e->cap;
        e->row->annotations = wh_realloc(e->row->annotations, e->cap);
    }
    if (n)
        memcpy(e->row->annotations, ann, n);
    e->row->annotations[n] = '\0';
    return e->fn(e->row, e->payload);
}

void db_artifact_list_sql(struct db_sql *q, const struct wh_artifact_filter *f, bool count)
{
    /* ?1 repository, ?2 project, ?3 digest, ?4 tag, ?5 media type, ?6 offset, ?7 limit */
    static const char *const keys[] = {"a.push_ms", "a.pull_ms", "a.size", "a.id"};
    const char *dir = f->desc ? " DESC" : "";
    db_sql_add(q, count ? "SELECT count(*) FROM artifact a" : "SELECT " ART_COLS ART_FROM);
    if (f->repo_id > 0)
        db_sql_add(q, f->project_id > 0 ? " WHERE a.repo_id = ?1 AND a.project_id = ?2"
                                        : " WHERE a.repo_id = ?1");
    else if (f->project_id > 0)
        db_sql_add(q, " WHERE a.project_id = ?2");
    else
        db_sql_add(q, " WHERE 1 = 1");
    if (f->digest)
        db_sql_add(q, " AND a.digest = ?3");
    if (f->tag && f->repo_id > 0)
        db_sql_add(q, " AND a.id IN (SELECT artifact_id FROM tag"
                      " WHERE repo_id = ?1 AND name = ?4)");
    else if (f->tag)
        db_sql_add(q, " AND EXISTS (SELECT 1 FROM tag t"
                      " WHERE t.artifact_id = a.id AND t.name = ?4)");
    if (f->media_type)
        db_sql_add(q, " AND (a.media_type = ?5 OR a.artifact_type = ?5)");
    if (f->tagged == 1)
        db_sql_add(q, " AND EXISTS (SELECT 1 FROM tag t WHERE t.artifact_id = a.id)");
    else if (f->tagged == 0)
        db_sql_add(q, " AND NOT EXISTS (SELECT 1 FROM tag t WHERE t.artifact_id = a.id)");
    /* Harbor's base collection (a column the schema keeps, see migration 3);
     * a tagged artifact is in it already */
    if (!f->all && f->tagged != 1)
        db_sql_add(q, " AND a.listed = 1");
    if (count)
        return;
    if (f->repo_id > 0 && f->digest) {
        /* (repo_id, digest) is unique: one row at most, nothing to sort */
        db_sql_add(q, " LIMIT ?7 OFFSET ?6");
        return;
    }
    int k = f->sort >= 0 && f->sort < 4 ? f->sort : 0;
    db_sql_add(q, " ORDER BY ");
    db_sql_add(q, keys[k]);
    db_sql_add(q, dir);
    /* never pulled (NULL) sorts as the oldest on every backend: SQLite's own
     * order, which PostgreSQL (NULL as the largest) is told */
    if (k == 1)
        db_sql_add(q, f->desc ? " NULLS LAST" : " NULLS FIRST");
    if (k != 3) {
        db_sql_add(q, ", a.id");
        db_sql_add(q, dir);
    }
    db_sql_add(q, " LIMIT ?7 OFFSET ?6");
}

int wh_db_artifact_list(wh_db *db, const struct wh_artifact_filter *f, int64_t offset,
                        int64_t limit, int (*fn)(const struct wh_artifact_info *a, void *payload),
                        void *payload, int64_t *total_out)
{
    CONN_OR_FAIL(c, db);
    int error = 0;
    struct db_sql *q = wh_malloc(sizeof(*q));
    for (int pass = total_out ? 0 : 1; pass < 2 && error == 0; pass++) {
        q->len = 0;
        db_artifact_list_sql(q, f, pass == 0);
        db_stmt *s = db_stmt_text(c, q->text);
        /* A parameter the text does not use is ignored (db_driver.h). */
        db_bind_i64(s, 1, f->repo_id);
        db_bind_i64(s, 2, f->project_id);
        db_bind_text(s, 3, f->digest);
        db_bind_text(s, 4, f->tag);
        db_bind_text(s, 5, f->media_type);
        if (pass == 0) {
            error = db_count(c, s, total_out);
            continue;
        }
        db_bind_i64(s, 6, offset);
        db_bind_i64(s, 7, limit);
        struct list_each e = {fn, payload, wh_calloc(1, sizeof(struct wh_artifact_info)), 0};
        error = db_rows(c, s, list_each, &e);
        wh_artifact_info_dispose(e.row);
        free(e.row);
    }
    free(q);
    return error;
}

static void tag_row(struct wh_tag_info *t, db_stmt *s)
{
    t->id = db_col_i64(s, 0);
    t->repo_id = db_col_i64(s, 1);
    t->artifact_id = db_col_i64(s, 2);
    db_copy_col(t->name, sizeof(t->name), s, 3);
    t->push_ms = db_col_i64(s, 4);
    t->pull_ms = db_col_i64(s, 5);
}

int wh_db_tag_page(wh_db *db, int64_t artifact_id, const char *name, const char *name_like,
                   int64_t offset, int64_t limit,
                   int (*fn)(const struct wh_tag_info *t, void *payload), void *payload,
                   int64_t *total_out)
{
#define WHERE                                                                                      \
    " WHERE t.artifact_id = ?1 AND (?2 IS NULL OR t.name = ?2)"                                    \
    " AND (?3 IS NULL OR" DB_CONTAINS("t.name", "?3") ")"
    static const char sql_count[] = "SELECT count(*) FROM tag t" WHERE;
    static const char sql[] = "SELECT t.id, t.repo_id, t.artifact_id, t.name, t.push_ms,"
                              " coalesce(a.pull_ms, 0) FROM tag t JOIN artifact a"
                              " ON a.id = t.artifact_id" WHERE
                              " ORDER BY t.push_ms DESC, t.id DESC LIMIT ?5 OFFSET ?4";
#undef WHERE
    CONN_OR_FAIL(c, db);
    int error = 0, rc;
    for (int pass = total_out ? 0 : 1; pass < 2; pass++) {
        db_stmt *s = db_stmt(c, pass == 0 ? sql_count : sql);
        db_bind_i64(s, 1, artifact_id);
        db_bind_text(s, 2, name);
        db_bind_text(s, 3, name_like);
        if (pass == 0) {
            if (db_step(s) == DB_ROW)
                *total_out = db_col_i64(s, 0);
            else
                error = db_fail(c);
            db_done(s);
            if (error < 0)
                return error;
            continue;
        }
        db_bind_i64(s, 4, offset);
        db_bind_i64(s, 5, limit);
        struct wh_tag_info t;
        while ((rc = db_step(s)) == DB_ROW) {
            tag_row(&t, s);
            if (fn(&t, payload) != 0)
                break;
        }
        if (rc < 0)
            error = db_fail(c);
        db_done(s);
    }
    return error;
}

int wh_db_tag_create(wh_db *db, int64_t repo_id, int64_t artifact_id, const char *name)
{
    static const char sql[] = "INSERT INTO tag(repo_id, name, artifact_id, push_ms)"
                              " VALUES(?1, ?2, ?3, ?4)";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, repo_id);
    db_bind_text(s, 2, name);
    db_bind_i64(s, 3, artifact_id);
    db_bind_i64(s, 4, wh_now_ms());
    int rc = db_step(s);
    int error = 0;
    if (rc == WH_EEXISTS || rc == WH_ENOTFOUND)
        error = wh_error_set(WH_EEXISTS, "tag %s already exists", name);
    else if (rc != DB_DONE)
        error = db_fail(c);
    db_done(s);
    return error;
}

int wh_db_artifact_children(wh_db *db, int64_t artifact_id,
                            int (*fn)(const char *digest, int64_t child_id, void *payload),
                            void *payload)
{
    static const char sql[] =
        "SELECT c.child_digest, coalesce(k.id, 0) FROM artifact_child c"
        " JOIN artifact a ON a.id = c.artifact_id"
        " LEFT JOIN artifact k ON k.repo_id = a.repo_id AND k.digest = c.child_digest"
        " WHERE c.artifact_id = ?1";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, artifact_id);
    int rc, error = 0;
    while ((rc = db_step(s)) == DB_ROW) {
        if (fn(db_col_text(s, 0), db_col_i64(s, 1), payload) != 0)
            break;
    }
    if (rc < 0)
        error = db_fail(c);
    db_done(s);
    return error;
}

int wh_db_artifact_referenced(wh_db *db, int64_t repo_id, const char *digest, bool *out)
{
    static const char sql[] = "SELECT 1 FROM artifact_child"
                              " WHERE repo_id = ?1 AND child_digest = ?2 LIMIT 1";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, repo_id);
    db_bind_text(s, 2, digest);
    return db_exists(c, s, out);
}
