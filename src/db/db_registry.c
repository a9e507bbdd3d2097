/*
 * db_registry.c: the registry's own rows -- projects, repositories, blobs,
 * manifests (artifacts), tags, referrers and pull counts -- what /v2/ reads
 * and writes. The manifest lookups by tag and by digest and the blob lookup
 * are the hot paths of pulls: each is one cached statement and one step.
 */
#include "db/db_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- statements ---- */

enum stmt_id {
    S_PROJECT_INSERT,
    S_PROJECT_GET,
    S_PROJECT_ALL,
    S_REPO_GET,
    S_REPO_TOUCH_NAME,
    S_REPO_INSERT,
    S_REPO_LIST,
    S_BLOB_INSERT,
    S_REPO_BLOB_INSERT,
    S_BLOB_GET,
    S_BLOB_UNLINK,
    S_REPO_BLOB_HAS,
    S_ARTIFACT_HAS,
    S_ARTIFACT_REPUSH,
    S_ARTIFACT_INSERT,
    S_ARTIFACT_BLOB_INSERT,
    S_ARTIFACT_CHILD_INSERT,
    S_TAG_MOVE,
    S_TAG_INSERT,
    S_MANIFEST_BY_TAG,
    S_MANIFEST_BY_DIGEST,
    S_ARTIFACT_DELETE,
    S_TAG_DELETE,
    S_TAG_LIST,
    S_REFERRERS,
    S_REFERRERS_TYPE,
    S_PULL_ARTIFACT,
    S_PULL_REPO,
    S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    [S_PROJECT_INSERT] = "INSERT INTO project(name, public, created_ms, updated_ms)"
                         " VALUES(?1, ?2, ?3, ?3) RETURNING id",
    [S_PROJECT_GET] = "SELECT id, name, public, created_ms FROM project WHERE name = ?1",
    [S_PROJECT_ALL] = "SELECT id, name, public, created_ms FROM project ORDER BY name",
    [S_REPO_GET] = "SELECT id, project_id, name FROM repository WHERE name = ?1",
    /* Existing rows are updated, not upserted: an upsert that meets its conflict still
     * takes a number from an AUTOINCREMENT sequence, and ids would run ahead. */
    [S_REPO_TOUCH_NAME] = "UPDATE repository SET updated_ms = ?2 WHERE name = ?1 RETURNING id",
    [S_REPO_INSERT] = "INSERT INTO repository(project_id, name, created_ms, updated_ms)"
                      " VALUES(?1, ?2, ?3, ?3) RETURNING id",
    [S_REPO_LIST] = "SELECT name FROM repository WHERE name > ?1 ORDER BY name LIMIT ?2",
    [S_BLOB_INSERT] = "INSERT INTO blob(digest, size, created_ms) VALUES(?1, ?2, ?3)"
                      " ON CONFLICT(digest) DO NOTHING",
    [S_REPO_BLOB_INSERT] = "INSERT INTO repo_blob(repo_id, digest) VALUES(?1, ?2)"
                           " ON CONFLICT DO NOTHING",
    [S_BLOB_GET] = "SELECT b.size FROM repository r JOIN repo_blob rb ON rb.repo_id = r.id"
                   " JOIN blob b ON b.digest = rb.digest WHERE r.name = ?1 AND rb.digest = ?2",
    [S_BLOB_UNLINK] = "DELETE FROM repo_blob WHERE digest = ?2"
                      " AND repo_id = (SELECT id FROM repository WHERE name = ?1)",
    [S_REPO_BLOB_HAS] = "SELECT 1 FROM repo_blob WHERE repo_id = ?1 AND digest = ?2",
    [S_ARTIFACT_HAS] = "SELECT 1 FROM artifact WHERE repo_id = ?1 AND digest = ?2",
    [S_ARTIFACT_REPUSH] = "UPDATE artifact SET push_ms = ?3 WHERE repo_id = ?1 AND digest = ?2"
                          " RETURNING id",
    [S_ARTIFACT_INSERT] =
        "INSERT INTO artifact(repo_id, project_id, digest, media_type, artifact_type, size,"
        " subject, annotations, push_ms) SELECT ?1, project_id, ?2, ?3, ?4, ?5, ?6, ?7, ?8"
        " FROM repository WHERE id = ?1 RETURNING id",
    [S_ARTIFACT_BLOB_INSERT] = "INSERT INTO artifact_blob(artifact_id, digest) VALUES(?1, ?2)"
                               " ON CONFLICT DO NOTHING",
    [S_ARTIFACT_CHILD_INSERT] = "INSERT INTO artifact_child(artifact_id, child_digest, repo_id)"
                                " VALUES(?1, ?2, ?3) ON CONFLICT DO NOTHING",
    [S_TAG_MOVE] = "UPDATE tag SET artifact_id = ?3, push_ms = ?4 WHERE repo_id = ?1 AND name = ?2",
    [S_TAG_INSERT] = "INSERT INTO tag(repo_id, name, artifact_id, push_ms) VALUES(?1, ?2, ?3, ?4)",
    [S_MANIFEST_BY_TAG] = "SELECT a.id, a.repo_id, a.digest, a.media_type, a.size"
                          " FROM repository r JOIN tag t ON t.repo_id = r.id"
                          " JOIN artifact a ON a.id = t.artifact_id"
                          " WHERE r.name = ?1 AND t.name = ?2",
    [S_MANIFEST_BY_DIGEST] = "SELECT a.id, a.repo_id, a.digest, a.media_type, a.size"
                             " FROM repository r JOIN artifact a ON a.repo_id = r.id"
                             " WHERE r.name = ?1 AND a.digest = ?2",
    [S_ARTIFACT_DELETE] = "DELETE FROM artifact WHERE digest = ?2"
                          " AND repo_id = (SELECT id FROM repository WHERE name = ?1)",
    [S_TAG_DELETE] = "DELETE FROM tag WHERE name = ?2"
                     " AND repo_id = (SELECT id FROM repository WHERE name = ?1)",
    [S_TAG_LIST] = "SELECT t.name FROM repository r JOIN tag t ON t.repo_id = r.id"
                   " WHERE r.name = ?1 AND t.name > ?2 ORDER BY t.name LIMIT ?3",
    [S_REFERRERS] = "SELECT a.digest, a.media_type, a.artifact_type, a.annotations, a.size"
                    " FROM repository r JOIN artifact a ON a.repo_id = r.id"
                    " WHERE r.name = ?1 AND a.subject = ?2 ORDER BY a.push_ms, a.id",
    [S_REFERRERS_TYPE] = "SELECT a.digest, a.media_type, a.artifact_type, a.annotations, a.size"
                         " FROM repository r JOIN artifact a ON a.repo_id = r.id"
                         " WHERE r.name = ?1 AND a.subject = ?2 AND a.artifact_type = ?3"
                         " ORDER BY a.push_ms, a.id",
    [S_PULL_ARTIFACT] = "UPDATE artifact SET pull_ms = ?2 WHERE id = ?1 RETURNING repo_id",
    [S_PULL_REPO] = "UPDATE repository SET pull_count = pull_count + ?2 WHERE id = ?1",
};

_Static_assert(S_COUNT <= DB_HOT_SLOTS, "more registry statements than hot slots");

/* The statement `id` of this file, prepared once per connection, in its own slot. */
static db_stmt *stmt(struct conn *c, enum stmt_id id)
{
    return db_stmt_hot(c, (int)id, stmt_sql[id]);
}

/* ---- projects ---- */

int wh_db_project_create(wh_db *db, const char *name, bool public, int64_t *id_out)
{
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = stmt(c, S_PROJECT_INSERT);
    db_bind_text(s, 1, name);
    db_bind_i64(s, 2, public);
    db_bind_i64(s, 3, wh_now_ms());
    int rc = db_step(s);
    int error = 0;
    if (rc == WH_EEXISTS || rc == WH_ENOTFOUND)
        error = wh_error_set(WH_EEXISTS, "project %s already exists", name);
    else if (rc != DB_ROW)
        error = db_fail(c);
    else if (id_out)
        *id_out = db_col_i64(s, 0);
    db_done(s);
    return error;
}

static void project_row(struct wh_project *p, db_stmt *s)
{
    p->id = db_col_i64(s, 0);
    db_copy_col(p->name, sizeof(p->name), s, 1);
    p->public = db_col_int(s, 2) != 0;
    p->created_ms = db_col_i64(s, 3);
}

int wh_db_project_get(wh_db *db, const char *name, struct wh_project *out)
{
    CONN_OR_FAIL(c, db);
    db_stmt *s = stmt(c, S_PROJECT_GET);
    db_bind_text(s, 1, name);
    int rc = db_step(s);
    int error = 0;
    if (rc == DB_ROW)
        project_row(out, s);
    else if (rc == DB_DONE)
        error = wh_error_set(WH_ENOTFOUND, "project %s not found", name);
    else
        error = db_fail(c);
    db_done(s);
    return error;
}

int wh_db_project_each(wh_db *db, int (*fn)(const struct wh_project *p, void *payload),
                       void *payload)
{
    CONN_OR_FAIL(c, db);
    db_stmt *s = stmt(c, S_PROJECT_ALL);
    int rc, error = 0;
    while ((rc = db_step(s)) == DB_ROW) {
        struct wh_project p;
        project_row(&p, s);
        if (fn(&p, payload) != 0)
            break;
    }
    if (rc < 0)
        error = db_fail(c);
    db_done(s);
    return error;
}

/* ---- repositories ---- */

int wh_db_repo_get(wh_db *db, const char *name, struct wh_repo *out)
{
    CONN_OR_FAIL(c, db);
    db_stmt *s = stmt(c, S_REPO_GET);
    db_bind_text(s, 1, name);
    int rc = db_step(s);
    int error = 0;
    if (rc == DB_ROW) {
        out->id = db_col_i64(s, 0);
        out->project_id = db_col_i64(s, 1);
        db_copy_col(out->name, sizeof(out->name), s, 2);
    } else if (rc == DB_DONE) {
        error = wh_error_set(WH_ENOTFOUND, "repository %s not found", name);
    } else {
        error = db_fail(c);
    }
    db_done(s);
    return error;
}

/* Pages through a one-column text query: binds (…, last, n+1) and reports `more`. */
static int list_page(struct conn *c, db_stmt *s, int last_idx, const char *last, int64_t n,
                     int (*fn)(const char *, void *), void *payload, bool *more_out)
{
    int rc, error = 0;
    int64_t seen = 0;
    db_bind_text(s, last_idx, last ? last : "");
    db_bind_i64(s, last_idx + 1, n + 1);
    *more_out = false;
    while ((rc = db_step(s)) == DB_ROW) {
        if (seen == n) {
            *more_out = true;
            break;
        }
        seen++;
        if (fn(db_col_text(s, 0), payload) != 0)
            break;
    }
    if (rc < 0)
        error = db_fail(c);
    db_done(s);
    return error;
}

int wh_db_repo_list(wh_db *db, const char *last, int64_t n,
                    int (*fn)(const char *name, void *payload), void *payload, bool *more_out)
{
    CONN_OR_FAIL(c, db);
    return list_page(c, stmt(c, S_REPO_LIST), 1, last, n, fn, payload, more_out);
}

/* Creates the repository if needed; returns its id in `*id_out`. Inside a transaction. */
/*
 * Steps a statement that returns an id (RETURNING): `*id_out` is 0 when it
 * returned no row. Resets `s`.
 */
static int step_id(struct conn *c, db_stmt *s, int64_t *id_out)
{
    int rc = db_step(s);
    int error = 0;
    *id_out = 0;
    if (rc == DB_ROW)
        *id_out = db_col_i64(s, 0);
    else if (rc != DB_DONE)
        error = db_fail(c);
    db_done(s);
    return error;
}

static int repo_ensure(struct conn *c, int64_t project_id, const char *repo, int64_t now,
                       int64_t *id_out)
{
    db_stmt *s = stmt(c, S_REPO_TOUCH_NAME);
    db_bind_text(s, 1, repo);
    db_bind_i64(s, 2, now);
    int error = step_id(c, s, id_out);
    if (error < 0 || *id_out > 0)
        return error;
    s = stmt(c, S_REPO_INSERT);
    db_bind_i64(s, 1, project_id);
    db_bind_text(s, 2, repo);
    db_bind_i64(s, 3, now);
    if ((error = step_id(c, s, id_out)) == 0 && *id_out == 0)
        error = wh_error_set(WH_ERROR, "repository %s was not created", repo);
    return error;
}

/* ---- blobs ---- */

static int blob_record(struct conn *c, int64_t repo_id, const char *digest, uint64_t size,
                       int64_t now)
{
    db_stmt *s = stmt(c, S_BLOB_INSERT);
    db_bind_text(s, 1, digest);
    db_bind_i64(s, 2, (int64_t)size);
    db_bind_i64(s, 3, now);
    int error = db_run(c, s);
    if (error < 0)
        return error;
    if (db_changes(c) > 0) {
        /*
         * A new row: the collector may have deleted the blob (row and file,
         * under the write lock we now hold) after the caller stored it and
         * before this transaction began. The file must be there now, or the
         * row would promise bytes nobody has.
         */
        if ((error = db_blob_check(c, digest)) < 0)
            return error;
    } else if ((error = db_gc_postpone_blob(c, digest, now)) < 0) {
        return error; /* an existing blob pushed again: its review waits again */
    }
    s = stmt(c, S_REPO_BLOB_INSERT);
    db_bind_i64(s, 1, repo_id);
    db_bind_text(s, 2, digest);
    return db_run(c, s);
}

/*
 * Inside a write transaction: reserves the quota for a blob about to be
 * linked into the project, so that what the check saw is what the commit
 * writes (two pushes checked side by side cannot both take the last bytes).
 * Nothing is charged for a blob the project holds already. 0, WH_EDENIED
 * (Harbor's message) or WH_ERROR.
 */
static int quota_reserve(wh_db *db, int64_t project_id, const char *digest, uint64_t size)
{
    char msg[512];
    return wh_db_project_blob_admit(db, project_id, digest, size, msg, sizeof(msg));
}

int wh_db_blob_link(wh_db *db, int64_t project_id, const char *repo, const char *digest,
                    uint64_t size)
{
    CONN_WRITE_OR_FAIL(c, db);
    int64_t now = wh_now_ms(), repo_id = 0;
    int error;
    if ((error = db_tx_begin(c)) < 0)
        return error;
    if ((error = quota_reserve(db, project_id, digest, size)) == 0 &&
        (error = repo_ensure(c, project_id, repo, now, &repo_id)) == 0)
        error = blob_record(c, repo_id, digest, size, now);
    return db_tx_end(c, error);
}

int wh_db_blob_get(wh_db *db, const char *repo, const char *digest, uint64_t *size_out)
{
    CONN_OR_FAIL(c, db);
    db_stmt *s = stmt(c, S_BLOB_GET);
    db_bind_text(s, 1, repo);
    db_bind_text(s, 2, digest);
    int rc = db_step(s);
    int error = 0;
    if (rc == DB_ROW)
        *size_out = (uint64_t)db_col_i64(s, 0);
    else if (rc == DB_DONE)
        error = wh_error_set(WH_ENOTFOUND, "blob unknown to repository");
    else
        error = db_fail(c);
    db_done(s);
    return error;
}

/* Runs a DELETE/UPDATE keyed by (repo, key); WH_ENOTFOUND when nothing changed. */
static int change_one(wh_db *db, enum stmt_id id, const char *repo, const char *key,
                      const char *what)
{
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = stmt(c, id);
    db_bind_text(s, 1, repo);
    db_bind_text(s, 2, key);
    int error = db_run(c, s);
    if (error == 0 && db_changes(c) == 0)
        error = wh_error_set(WH_ENOTFOUND, "%s unknown to repository", what);
    return error;
}

/*
 * Inside a transaction: the first manifest of `repo` that `sql` finds for
 * `digest`, with one of its tags (or "" when it has none). 0 when there is
 * one, WH_ENOTFOUND when not, WH_ERROR.
 */
static int first_user(struct conn *c, const char *sql, const char *repo, const char *digest,
                      char *digest_out, char *tag_out)
{
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, repo);
    db_bind_text(s, 2, digest);
    int error = db_one_row(c, s, "referencing manifest");
    if (error < 0)
        return error;
    db_copy_col(digest_out, WH_DIGEST_STR_MAX, s, 0);
    db_copy_col(tag_out, WH_NAME_MAX, s, 1);
    db_done(s);
    return 0;
}

/* " (tagged t)" or " (untagged)", in `buf`. */
static const char *tagged(char *buf, size_t cap, const char *tag)
{
    if (*tag)
        snprintf(buf, cap, " (tagged %s)", tag);
    else
        snprintf(buf, cap, " (untagged)");
    return buf;
}

#define ONE_TAG "(SELECT t.name FROM tag t WHERE t.artifact_id = a.id ORDER BY t.name LIMIT 1)"


/* Runs the delete `id` bound to (repo, digest): WH_ENOTFOUND (`missing`) when it
 * deleted nothing. */
static int delete_one(struct conn *c, enum stmt_id id, const char *repo, const char *digest,
                      const char *missing)
{
    db_stmt *s = stmt(c, id);
    db_bind_text(s, 1, repo);
    db_bind_text(s, 2, digest);
    int error = db_run(c, s);
    if (error == 0 && db_changes(c) == 0)
        error = wh_error_set(WH_ENOTFOUND, "%s", missing);
    return error;
}

static int blob_unlink_tx(struct conn *c, const char *repo, const char *digest)
{
    /* the blob is a manifest of the repository, or a manifest's config or layer */
    static const char users[] =
        "SELECT a.digest, " ONE_TAG " FROM repository r JOIN artifact a ON a.repo_id = r.id"
        " WHERE r.name = ?1 AND a.digest = ?2"
        " UNION ALL SELECT a.digest, " ONE_TAG " FROM repository r"
        " JOIN artifact a ON a.repo_id = r.id JOIN artifact_blob ab ON ab.artifact_id = a.id"
        " WHERE r.name = ?1 AND ab.digest = ?2 LIMIT 1";
    char by[WH_DIGEST_STR_MAX], tag[WH_NAME_MAX], tb[WH_NAME_MAX + 16];
    int error = first_user(c, users, repo, digest, by, tag);
    if (error == 0 && strcmp(by, digest) == 0)
        return wh_error_set(WH_ECONFLICT,
                            "%s is a manifest of this repository%s: delete it as a manifest",
                            digest, tagged(tb, sizeof(tb), tag));
    if (error == 0)
        return wh_error_set(WH_ECONFLICT,
                            "blob %s is referenced by manifest %s%s of this repository: delete "
                            "the manifest first",
                            digest, by, tagged(tb, sizeof(tb), tag));
    if (error != WH_ENOTFOUND)
        return error;
    return delete_one(c, S_BLOB_UNLINK, repo, digest, "blob unknown to repository");
}

int wh_db_blob_unlink(wh_db *db, const char *repo, const char *digest)
{
    CONN_WRITE_OR_FAIL(c, db);
    int error;
    if ((error = db_tx_begin(c)) < 0)
        return error;
    return db_tx_end(c, blob_unlink_tx(c, repo, digest));
}

/* ---- manifests ---- */

static int has_row(struct conn *c, enum stmt_id id, int64_t repo_id, const char *digest,
                   bool *out)
{
    db_stmt *s = stmt(c, id);
    db_bind_i64(s, 1, repo_id);
    db_bind_text(s, 2, digest);
    return db_exists(c, s, out);
}

/* Links the artifact to each digest (?1 artifact, ?2 digest, ?3 its repository). */
static int link_each(struct conn *c, enum stmt_id id, int64_t artifact_id, int64_t repo_id,
                     const char **digests, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        db_stmt *s = stmt(c, id);
        db_bind_i64(s, 1, artifact_id);
        db_bind_text(s, 2, digests[i]);
        db_bind_i64(s, 3, repo_id); /* ignored by the statement without ?3 */
        int error = db_run(c, s);
        if (error < 0)
            return error;
    }
    return 0;
}

static int manifest_put_tx(wh_db *db, struct conn *c, const struct wh_artifact_in *a)
{
    int64_t now = wh_now_ms(), repo_id = 0, artifact_id = 0;
    bool ok;
    int error;

    if ((error = repo_ensure(c, a->project_id, a->repo, now, &repo_id)) < 0)
        return error;
    for (size_t i = 0; i < a->nblobs; i++) {
        if ((error = has_row(c, S_REPO_BLOB_HAS, repo_id, a->blobs[i], &ok)) < 0)
            return error;
        if (!ok)
            return wh_error_set(WH_ENOTFOUND, "blob %s", a->blobs[i]);
    }
    for (size_t i = 0; i < a->nchildren; i++) {
        if ((error = has_row(c, S_ARTIFACT_HAS, repo_id, a->children[i], &ok)) < 0)
            return error;
        if (!ok)
            return wh_error_set(WH_ENOTFOUND, "manifest %s", a->children[i]);
    }
    /* The manifest bytes are a blob of the repository too, and count towards the quota. */
    if ((error = quota_reserve(db, a->project_id, a->digest, a->size)) < 0 ||
        (error = blob_record(c, repo_id, a->digest, a->size, now)) < 0)
        return error;

    db_stmt *s = stmt(c, S_ARTIFACT_REPUSH);
    db_bind_i64(s, 1, repo_id);
    db_bind_text(s, 2, a->digest);
    db_bind_i64(s, 3, now);
    if ((error = step_id(c, s, &artifact_id)) < 0)
        return error;
    if (artifact_id == 0) {
        s = stmt(c, S_ARTIFACT_INSERT);
        db_bind_i64(s, 1, repo_id);
        db_bind_text(s, 2, a->digest);
        db_bind_text(s, 3, a->media_type);
        db_bind_text(s, 4, a->artifact_type);
        db_bind_i64(s, 5, (int64_t)a->size);
        db_bind_text(s, 6, a->subject);
        db_bind_text(s, 7, a->annotations);
        db_bind_i64(s, 8, now);
        if ((error = step_id(c, s, &artifact_id)) < 0)
            return error;
        if (artifact_id == 0)
            return wh_error_set(WH_ERROR, "artifact %s was not recorded", a->digest);
    }
    if ((error = link_each(c, S_ARTIFACT_BLOB_INSERT, artifact_id, repo_id, a->blobs,
                            a->nblobs)) < 0)
        return error;
    if ((error = link_each(c, S_ARTIFACT_CHILD_INSERT, artifact_id, repo_id, a->children,
                            a->nchildren)) <
        0)
        return error;
    if (a->tag) {
        /* Moved when it exists (keeping its id), else created. */
        for (int i = 0; i < 2; i++) {
            s = stmt(c, i == 0 ? S_TAG_MOVE : S_TAG_INSERT);
            db_bind_i64(s, 1, repo_id);
            db_bind_text(s, 2, a->tag);
            db_bind_i64(s, 3, artifact_id);
            db_bind_i64(s, 4, now);
            if ((error = db_run(c, s)) < 0)
                return error;
            if (db_changes(c) > 0)
                break;
        }
    }
    return db_scan_autoqueue(c, artifact_id, a, now);
}

int wh_db_manifest_put(wh_db *db, const struct wh_artifact_in *a)
{
    CONN_WRITE_OR_FAIL(c, db);
    int error;
    if ((error = db_tx_begin(c)) < 0)
        return error;
    error = manifest_put_tx(db, c, a);
    if (error == 0 && a->summary_extra && a->summary_refs)
        error = wh_db_manifest_summary_put(db, a->digest, a->summary_extra, a->summary_refs);
    return db_tx_end(c, error);
}

int wh_db_manifest_get(wh_db *db, const char *repo, const char *ref, bool is_digest,
                       struct wh_manifest_ref *out)
{
    CONN_OR_FAIL(c, db);
    db_stmt *s = stmt(c, is_digest ? S_MANIFEST_BY_DIGEST : S_MANIFEST_BY_TAG);
    db_bind_text(s, 1, repo);
    db_bind_text(s, 2, ref);
    int rc = db_step(s);
    int error = 0;
    if (rc == DB_ROW) {
        out->artifact_id = db_col_i64(s, 0);
        out->repo_id = db_col_i64(s, 1);
        db_copy_col(out->digest, sizeof(out->digest), s, 2);
        db_copy_col(out->media_type, sizeof(out->media_type), s, 3);
        out->size = (uint64_t)db_col_i64(s, 4);
    } else if (rc == DB_DONE) {
        error = wh_error_set(WH_ENOTFOUND, "manifest unknown");
    } else {
        error = db_fail(c);
    }
    db_done(s);
    return error;
}

static int manifest_delete_tx(struct conn *c, const char *repo, const char *digest)
{
    static const char parents[] =
        "SELECT a.digest, " ONE_TAG " FROM repository r JOIN artifact a ON a.repo_id = r.id"
        " JOIN artifact_child ch ON ch.artifact_id = a.id"
        " WHERE r.name = ?1 AND ch.child_digest = ?2 LIMIT 1";
    char by[WH_DIGEST_STR_MAX], tag[WH_NAME_MAX], tb[WH_NAME_MAX + 16];
    int error = first_user(c, parents, repo, digest, by, tag);
    if (error == 0)
        return wh_error_set(WH_ECONFLICT,
                            "manifest %s is listed by index %s%s of this repository: delete the "
                            "index first",
                            digest, by, tagged(tb, sizeof(tb), tag));
    if (error != WH_ENOTFOUND)
        return error;
    return delete_one(c, S_ARTIFACT_DELETE, repo, digest, "manifest unknown to repository");
}

int wh_db_manifest_delete(wh_db *db, const char *repo, const char *digest)
{
    CONN_WRITE_OR_FAIL(c, db);
    int error;
    if ((error = db_tx_begin(c)) < 0)
        return error;
    return db_tx_end(c, manifest_delete_tx(c, repo, digest));
}

int wh_db_tag_delete(wh_db *db, const char *repo, const char *tag)
{
    return change_one(db, S_TAG_DELETE, repo, tag, "tag");
}

int wh_db_tag_list(wh_db *db, const char *repo, const char *last, int64_t n,
                   int (*fn)(const char *tag, void *payload), void *payload, bool *more_out)
{
    CONN_OR_FAIL(c, db);
    db_stmt *s = stmt(c, S_TAG_LIST);
    db_bind_text(s, 1, repo);
    return list_page(c, s, 2, last, n, fn, payload, more_out);
}

int wh_db_referrers(wh_db *db, const char *repo, const char *subject, const char *artifact_type,
                    int (*fn)(const struct wh_referrer *r, void *payload), void *payload)
{
    CONN_OR_FAIL(c, db);
    db_stmt *s = stmt(c, artifact_type ? S_REFERRERS_TYPE : S_REFERRERS);
    db_bind_text(s, 1, repo);
    db_bind_text(s, 2, subject);
    if (artifact_type)
        db_bind_text(s, 3, artifact_type);
    int rc, error = 0;
    while ((rc = db_step(s)) == DB_ROW) {
        struct wh_referrer r = {
            .digest = db_col_text(s, 0),
            .media_type = db_col_text(s, 1),
            .artifact_type = db_col_text(s, 2),
            .annotations = db_col_text(s, 3),
            .size = (uint64_t)db_col_i64(s, 4),
        };
        if (fn(&r, payload) != 0)
            break;
    }
    if (rc < 0)
        error = db_fail(c);
    db_done(s);
    return error;
}

int wh_db_pulls_record(wh_db *db, const int64_t *artifact_ids, const int64_t *counts, size_t n,
                       int64_t when_ms)
{
    CONN_WRITE_OR_FAIL(c, db);
    int error;
    if ((error = db_tx_begin(c)) < 0)
        return error;
    for (size_t i = 0; i < n && error == 0; i++) {
        db_stmt *s = stmt(c, S_PULL_ARTIFACT);
        db_bind_i64(s, 1, artifact_ids[i]);
        db_bind_i64(s, 2, when_ms);
        int rc = db_step(s);
        int64_t repo_id = rc == DB_ROW ? db_col_i64(s, 0) : 0;
        if (rc < 0)
            error = db_fail(c);
        db_done(s);
        if (error < 0 || repo_id == 0)
            continue; /* the artifact was deleted meanwhile */
        s = stmt(c, S_PULL_REPO);
        db_bind_i64(s, 1, repo_id);
        db_bind_i64(s, 2, counts[i]);
        error = db_run(c, s);
    }
    return db_tx_end(c, error);
}
