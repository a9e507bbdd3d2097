/*
 * db_copy.c: copying an artifact from one repository to another (Harbor's
 * "copy" / retag, POST .../artifacts?from=). Blobs are content-addressed
 * and stored once, so a copy writes metadata only: artifact rows, their
 * blob links and index children, and the source's tags, all in one
 * transaction that first checks the destination project's storage quota for
 * the blobs it does not hold yet.
 *
 * What comes along is the closure of the source artifact in its repository:
 * the children of an index and the artifacts whose subject it is
 * (signatures, SBOMs), recursively — a recursive CTE, repeated in each
 * statement so that nothing outlives the transaction.
 */
#include "db/db_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The ids of the artifacts a copy of artifact ?1 takes along (itself included). */
#define CLOSURE                                                                                    \
    "WITH RECURSIVE closure(id) AS (SELECT ?1 UNION"                                               \
    " SELECT k.id FROM closure c JOIN artifact a ON a.id = c.id"                                   \
    " JOIN artifact k ON k.repo_id = a.repo_id AND (k.subject = a.digest OR k.digest IN"           \
    "  (SELECT ch.child_digest FROM artifact_child ch WHERE ch.artifact_id = a.id))) "

/* Binds ?1 source artifact, ?2 destination repository id and ?3 now (ignored
 * by a statement without it), then runs `sql`. */
static int run3(struct conn *c, const char *sql, int64_t src, int64_t dst_repo, int64_t now)
{
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, src);
    db_bind_i64(s, 2, dst_repo);
    db_bind_i64(s, 3, now);
    return db_run(c, s);
}

/*
 * With auto_scan on in project `dst_project`, queues a scan of each image
 * `images` finds (bound as run3 binds), each with its own random report id.
 */
static int queue_scans(struct conn *c, const char *meta, const char *images, int64_t src,
                       int64_t dst_repo, int64_t dst_project, int64_t now)
{
    db_stmt *s = db_stmt(c, meta);
    db_bind_i64(s, 1, dst_project);
    int error = db_one_row(c, s, "project");
    if (error < 0)
        return error;
    bool on = db_auto_scan(db_col_text(s, 0));
    db_done(s);
    if (!on)
        return 0;
    struct db_ids ids = {0};
    s = db_stmt(c, images);
    db_bind_i64(s, 1, src);
    db_bind_i64(s, 2, dst_repo);
    error = db_rows(c, s, db_collect_id, &ids);
    bool queued = false;
    for (size_t i = 0; i < ids.n && error == 0; i++) {
        error = db_scan_enqueue(c, ids.v[i], now, 0, NULL, false);
        queued = queued || db_changes(c) > 0;
    }
    free(ids.v);
    if (error == 0 && queued)
        db_note_scan_queued(c);
    return error;
}

static int copy_tx(wh_db *db, struct conn *c, int64_t src, int64_t dst_project,
                   const char *dst_repo, char *msg, size_t msgcap, int64_t *dst_artifact_id)
{
    static const char sql_src[] = "SELECT digest FROM artifact WHERE id = ?1";
    /* a child of an index in the closure that the source repository lacks */
    static const char sql_missing[] =
        CLOSURE "SELECT count(*) FROM closure cl JOIN artifact a ON a.id = cl.id"
                " JOIN artifact_child ch ON ch.artifact_id = a.id WHERE NOT EXISTS"
                " (SELECT 1 FROM artifact k WHERE k.repo_id = a.repo_id"
                "  AND k.digest = ch.child_digest)";
    /* bytes of the closure's blobs and manifests the destination project lacks */
    static const char sql_adding[] =
        CLOSURE "SELECT coalesce(sum(b.size), 0) FROM blob b WHERE b.digest IN"
                " (SELECT ab.digest FROM artifact_blob ab WHERE ab.artifact_id IN (SELECT id FROM closure)"
                "  UNION SELECT a.digest FROM artifact a WHERE a.id IN (SELECT id FROM closure))"
                " AND NOT EXISTS (SELECT 1 FROM repo_blob rb JOIN repository r ON r.id = rb.repo_id"
                "  WHERE r.project_id = ?2 AND rb.digest = b.digest)";
    /* a copy is a push (Harbor fires its push event): with auto_scan on in the
     * destination, the images copied are queued as db_scan.c queues a pushed one */
    static const char sql_meta[] = "SELECT metadata FROM project WHERE id = ?1";
    static const char sql_images[] =
        CLOSURE "SELECT d.id FROM artifact s JOIN artifact d ON d.repo_id = ?2"
                " AND d.digest = s.digest WHERE s.id IN (SELECT id FROM closure)"
                " AND d.media_type IN ('application/vnd.oci.image.manifest.v1+json',"
                "  'application/vnd.docker.distribution.manifest.v2+json')"
                " AND d.artifact_type IN ('application/vnd.oci.image.config.v1+json',"
                "  'application/vnd.docker.container.image.v1+json')";
    static const char sql_repo[] =
        "INSERT INTO repository(project_id, name, created_ms, updated_ms)"
        " VALUES(?1, ?2, ?3, ?3) ON CONFLICT(name) DO UPDATE SET updated_ms = ?3"
        " RETURNING id, project_id";
    static const char sql_artifacts[] =
        CLOSURE "INSERT INTO artifact(repo_id, project_id, digest, media_type, artifact_type, size,"
                " subject, annotations, push_ms) SELECT ?2,"
                " (SELECT project_id FROM repository WHERE id = ?2), s.digest, s.media_type,"
                " s.artifact_type, s.size, s.subject, s.annotations, ?3 FROM artifact s"
                " WHERE s.id IN (SELECT id FROM closure) AND NOT EXISTS (SELECT 1 FROM artifact e"
                " WHERE e.repo_id = ?2 AND e.digest = s.digest)";
    static const char sql_blobs[] =
        CLOSURE "INSERT INTO artifact_blob(artifact_id, digest) SELECT d.id, ab.digest"
                " FROM artifact s JOIN artifact_blob ab ON ab.artifact_id = s.id"
                " JOIN artifact d ON d.repo_id = ?2 AND d.digest = s.digest"
                " WHERE s.id IN (SELECT id FROM closure) ON CONFLICT DO NOTHING";
    static const char sql_children[] =
        CLOSURE "INSERT INTO artifact_child(artifact_id, child_digest, repo_id)"
                " SELECT d.id, ch.child_digest, ?2"
                " FROM artifact s JOIN artifact_child ch ON ch.artifact_id = s.id"
                " JOIN artifact d ON d.repo_id = ?2 AND d.digest = s.digest"
                " WHERE s.id IN (SELECT id FROM closure) ON CONFLICT DO NOTHING";
    /* the blobs (and manifests, which are blobs too) become readable in the destination */
    static const char sql_links[] =
        CLOSURE "INSERT INTO repo_blob(repo_id, digest) SELECT ?2, x.digest FROM"
                " (SELECT ab.digest FROM artifact_blob ab WHERE ab.artifact_id IN (SELECT id FROM closure)"
                "  UNION SELECT a.digest FROM artifact a WHERE a.id IN (SELECT id FROM closure)) x"
                " WHERE EXISTS (SELECT 1 FROM blob b WHERE b.digest = x.digest)"
                " ON CONFLICT DO NOTHING";
    static const char sql_dst[] = "SELECT id FROM artifact WHERE repo_id = ?1 AND digest = ?2";
    static const char sql_tags[] =
        "INSERT INTO tag(repo_id, name, artifact_id, push_ms) SELECT ?2, t.name, ?4, ?3 FROM tag t"
        " WHERE t.artifact_id = ?1 ON CONFLICT(repo_id, name) DO UPDATE"
        " SET artifact_id = excluded.artifact_id, push_ms = excluded.push_ms";
    int64_t now = wh_now_ms(), n = 0, repo_id = 0, repo_project = 0, dst_id = 0;
    char digest[WH_DIGEST_STR_MAX];
    int error;

    db_stmt *s = db_stmt(c, sql_src);
    db_bind_i64(s, 1, src);
    if ((error = db_one_row(c, s, "artifact")) < 0)
        return error;
    db_copy_col(digest, sizeof(digest), s, 0);
    db_done(s);

    s = db_stmt(c, sql_missing);
    db_bind_i64(s, 1, src);
    if ((error = db_count(c, s, &n)) < 0)
        return error;
    if (n > 0)
        return wh_error_set(WH_ENOTFOUND, "a manifest the index %s lists is missing from its"
                                          " repository", digest);

    s = db_stmt(c, sql_adding);
    db_bind_i64(s, 1, src);
    db_bind_i64(s, 2, dst_project);
    if ((error = db_count(c, s, &n)) < 0)
        return error;
    /* same connection, inside this transaction: nothing can slip in between;
     * a copy that stores nothing new is never refused */
    if (n > 0 && (error = wh_db_project_quota_check(db, dst_project, (uint64_t)n, msg, msgcap)) < 0)
        return error;

    s = db_stmt(c, sql_repo);
    db_bind_i64(s, 1, dst_project);
    db_bind_text(s, 2, dst_repo);
    db_bind_i64(s, 3, now);
    if ((error = db_one_row(c, s, "repository")) < 0)
        return error;
    repo_id = db_col_i64(s, 0);
    repo_project = db_col_i64(s, 1);
    db_done(s);
    if (repo_project != dst_project)
        return wh_error_set(WH_ERROR, "repository %s belongs to project %" PRId64, dst_repo,
                            repo_project);

    if ((error = run3(c, sql_artifacts, src, repo_id, now)) < 0 ||
        (error = run3(c, sql_blobs, src, repo_id, now)) < 0 ||
        (error = run3(c, sql_children, src, repo_id, now)) < 0 ||
        (error = run3(c, sql_links, src, repo_id, now)) < 0)
        return error;

    s = db_stmt(c, sql_dst);
    db_bind_i64(s, 1, repo_id);
    db_bind_text(s, 2, digest);
    if ((error = db_one_row(c, s, "copied artifact")) < 0)
        return error;
    dst_id = db_col_i64(s, 0);
    db_done(s);

    s = db_stmt(c, sql_tags);
    db_bind_i64(s, 1, src);
    db_bind_i64(s, 2, repo_id);
    db_bind_i64(s, 3, now);
    db_bind_i64(s, 4, dst_id);
    if ((error = db_run(c, s)) < 0 || (error = queue_scans(c, sql_meta, sql_images, src,
                                                           repo_id, dst_project, now)) < 0)
        return error;
    if (dst_artifact_id)
        *dst_artifact_id = dst_id;
    return 0;
}

int wh_db_artifact_copy(wh_db *db, int64_t src_artifact_id, int64_t dst_project_id,
                        const char *dst_repo, char *msg, size_t msgcap, int64_t *dst_artifact_id)
{
    CONN_WRITE_OR_FAIL(c, db);
    int error;
    if ((error = db_tx_begin(c)) < 0)
        return error;
    error = copy_tx(db, c, src_artifact_id, dst_project_id, dst_repo, msg, msgcap,
                    dst_artifact_id);
    return db_tx_end(c, error);
}
