/*
 * db_gc.c: online garbage collection (schema 12), modelled on GitLab's
 * container registry: the triggers of migration 12 queue every blob digest
 * and every artifact whose references may just have changed, with a review
 * time a delay ahead (gc_setting.review_delay_ms); the collector claims due
 * reviews one after the other in short write transactions (a few dozen
 * each) and decides each there, with the references as they are then:
 *
 *   blob      kept when any artifact (any repository) has it as its manifest,
 *             config or layer; else its rows and its bytes are deleted.
 *   artifact  kept when tagged, listed by an index of its repository, or
 *             the referrer of a subject that exists; else deleted when the
 *             run deletes untagged artifacts, or when it lost its index or
 *             subject (a child of a deleted index goes with it). Its delete
 *             queues its blobs, children and referrers (triggers), so the
 *             collection spreads through the graph one step at a time.
 *
 * The storage delete runs inside the transaction, under SQLite's write lock,
 * so a writer that records a blob row afterwards sees the bytes gone (the
 * check of wh_db_on_blob_recorded) and never records a blob nobody has. On
 * PostgreSQL the claim becomes SELECT ... FOR UPDATE SKIP LOCKED, and any
 * number of collectors on any number of nodes can run side by side (every
 * write transaction also takes the database's write lock first, db_pg.c, so
 * two batches never even overlap): a review is claimed by one transaction
 * and removed by it, so no review is decided twice and no blob's bytes are
 * deleted twice; a digest queued again after its delete finds no row and
 * no bytes, and counts as nothing.
 *
 * The runs (gc_run) keep Harbor's history of collections and audit-log
 * purges: parameters, counts, status and a log. The node holding a run and
 * the nodes helping it add to its counts and append to its log.
 */
#include "db/db_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_MAX_MS (24LL * 3600 * 1000) /* longest wait before a failed review is retried */

/* Whether any artifact uses digest ?1: as its manifest, or as config or layer. */
#define BLOB_USED                                                                                  \
    "(EXISTS (SELECT 1 FROM artifact a WHERE a.digest = ?1)"                                       \
    " OR EXISTS (SELECT 1 FROM artifact_blob ab WHERE ab.digest = ?1))"
/* Whether artifact `a` is kept: tagged, a child of an index of its repository, or a
 * referrer of a subject that exists. */
#define ARTIFACT_KEPT(a)                                                                           \
    "(EXISTS (SELECT 1 FROM tag t WHERE t.artifact_id = " a ".id)"                                 \
    " OR EXISTS (SELECT 1 FROM artifact_child ch WHERE ch.repo_id = " a ".repo_id"                 \
    "  AND ch.child_digest = " a ".digest)"                                                        \
    " OR (" a ".subject IS NOT NULL AND EXISTS (SELECT 1 FROM artifact s"                          \
    "  WHERE s.repo_id = " a ".repo_id AND s.digest = " a ".subject)))"
/* The events after which an artifact goes even when untagged ones are kept. */
#define ORPHAN_EVENTS "('parent_delete', 'subject_delete')"

int wh_db_gc_set_delay(wh_db *db, int64_t delay_ms)
{
    static const char sql[] = "UPDATE gc_setting SET review_delay_ms = ?1 WHERE id = 1"
                              " AND review_delay_ms <> ?1";
    static const char peek[] = "SELECT 1 FROM gc_setting WHERE id = 1 AND review_delay_ms = ?1";
    CONN_WRITE_OR_FAIL(c, db);
    bool same = false;
    db_stmt *s = db_stmt(c, peek);
    db_bind_i64(s, 1, delay_ms);
    int error = db_exists(c, s, &same);
    if (error < 0 || same)
        return error; /* a read: a start with the same setting takes no write lock */
    s = db_stmt(c, sql);
    db_bind_i64(s, 1, delay_ms);
    return db_run(c, s);
}

int db_gc_postpone_blob(struct conn *c, const char *digest, int64_t now_ms)
{
    static const char sql[] =
        "UPDATE gc_blob_review SET review_after_ms = ?2"
        " + (SELECT review_delay_ms FROM gc_setting WHERE id = 1)"
        " WHERE digest = ?1 AND review_after_ms < ?2"
        " + (SELECT review_delay_ms FROM gc_setting WHERE id = 1)";
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, digest);
    db_bind_i64(s, 2, now_ms);
    return db_run(c, s);
}

int wh_db_gc_blob_enqueue(wh_db *db, const char *digest, int64_t now_ms)
{
    static const char sql[] =
        "INSERT INTO gc_blob_review(digest, review_after_ms, event)"
        " VALUES(?1, ?2 + (SELECT review_delay_ms FROM gc_setting WHERE id = 1), 'push_failed')"
        " ON CONFLICT(digest) DO UPDATE SET review_after_ms = excluded.review_after_ms,"
        " event = excluded.event";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, digest);
    db_bind_i64(s, 2, now_ms);
    return db_run(c, s);
}

int wh_db_gc_blob_touch(wh_db *db, const char *digest, int64_t now_ms)
{
    /* due within half the delay: worth a write; else a read is all a HEAD costs */
    static const char peek[] =
        "SELECT 1 FROM gc_blob_review WHERE digest = ?1 AND review_after_ms < ?2"
        " + (SELECT review_delay_ms FROM gc_setting WHERE id = 1) / 2";
    CONN_OR_FAIL(c, db);
    bool soon = false;
    db_stmt *s = db_stmt(c, peek);
    db_bind_text(s, 1, digest);
    db_bind_i64(s, 2, now_ms);
    int error = db_exists(c, s, &soon);
    if (error < 0 || !soon)
        return error;
    return db_gc_postpone_blob(c, digest, now_ms);
}

/* ---- reviews ---- */

/* Exponential backoff after `count` failures: 1 s, 2 s, 4 s ... at most a day. */
static int64_t backoff_ms(int64_t count)
{
    if (count < 0)
        count = 0;
    if (count > 26)
        return BACKOFF_MAX_MS;
    int64_t ms = 1000LL << count;
    return ms > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms;
}

/* A review whose storage delete failed: tried again after a backoff (same transaction). */
static int bump_blob(struct conn *c, const char *digest, int64_t count, int64_t now_ms)
{
    static const char sql[] = "UPDATE gc_blob_review SET review_count = review_count + 1,"
                              " review_after_ms = ?2 WHERE digest = ?1";
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, digest);
    db_bind_i64(s, 2, now_ms + backoff_ms(count));
    return db_run(c, s);
}

/* Inside a write transaction: claims and reviews the blob review due first (see db.h). */
static int blob_review_one(struct conn *c, int64_t now_ms,
                           int (*del)(const char *digest, void *payload), void *payload,
                           struct wh_gc_review *out)
{
    static const char claim[] = "SELECT digest, review_count FROM gc_blob_review"
                                " WHERE review_after_ms <= ?1 ORDER BY review_after_ms LIMIT 1";
    /* PostgreSQL: the collectors of every node share the queue, each skipping the
     * reviews another's open transaction holds (never deciding one twice) */
    static const char claim_skip_locked[] =
        "SELECT digest, review_count FROM gc_blob_review WHERE review_after_ms <= ?1"
        " ORDER BY review_after_ms LIMIT 1 FOR UPDATE SKIP LOCKED";
    static const char look[] =
        "SELECT CASE WHEN " BLOB_USED " THEN 1 ELSE 0 END,"
        " (SELECT b.size FROM blob b WHERE b.digest = ?1)";
    static const char unlink_all[] = "DELETE FROM repo_blob WHERE digest = ?1";
    static const char drop_blob[] = "DELETE FROM blob WHERE digest = ?1";
    static const char drop_review[] = "DELETE FROM gc_blob_review WHERE digest = ?1";
    /* what lists showed of it when the bytes were a manifest (db_manifest_summary.c) */
    static const char drop_summary[] = "DELETE FROM manifest_summary WHERE digest = ?1";
    memset(out, 0, sizeof(*out));
    db_stmt *s = db_stmt(c, strcmp(db_driver_name(c), "postgres") == 0 ? claim_skip_locked : claim);
    db_bind_i64(s, 1, now_ms);
    int error = db_one_row(c, s, "due blob review");
    if (error == WH_ENOTFOUND)
        return 0;
    if (error < 0)
        return error;
    out->claimed = true;
    db_copy_col(out->digest, sizeof(out->digest), s, 0);
    int64_t count = db_col_i64(s, 1);
    db_done(s);

    s = db_stmt(c, look);
    db_bind_text(s, 1, out->digest);
    if ((error = db_one_row(c, s, "blob")) < 0)
        return error;
    bool used = db_col_i64(s, 0) != 0;
    bool exists = !db_col_null(s, 1);
    out->size = exists ? (uint64_t)db_col_i64(s, 1) : 0;
    db_done(s);
    if (!used) {
        /*
         * The bytes first, under the write lock this transaction holds: a
         * failed delete leaves the rows as they are and retries later. Bytes
         * with no row are deleted too: stored by a push whose recording then
         * failed (a manifest refused for a missing blob, an upload over the
         * quota), which queued them. A push storing them right now finds them
         * gone when it records them, and stores them again
         * (wh_db_on_blob_recorded).
         */
        int gone = del(out->digest, payload);
        if (gone < 0 && gone != WH_ENOTFOUND) {
            char msg[512];
            snprintf(msg, sizeof(msg), "%s", wh_error_msg());
            out->failed = true;
            if ((error = bump_blob(c, out->digest, count, now_ms)) < 0)
                return error;
            wh_error_set(WH_ERROR, "%s", msg);
            return 0;
        }
        out->deleted = exists || gone == 0;
        /* repo_blob first: its rows refer to the blob row (and queue the digest again,
         * which the delete of the review below takes back) */
        const char *const dels[] = {unlink_all, drop_blob};
        for (size_t i = 0; exists && i < 2; i++) {
            s = db_stmt(c, dels[i]);
            db_bind_text(s, 1, out->digest);
            if ((error = db_run(c, s)) < 0)
                return error;
        }
        s = db_stmt(c, drop_summary);
        db_bind_text(s, 1, out->digest);
        if ((error = db_run(c, s)) < 0)
            return error;
    }
    s = db_stmt(c, drop_review);
    db_bind_text(s, 1, out->digest);
    return db_run(c, s);
}

static int manifest_claim(struct conn *c, int64_t now_ms, bool delete_untagged, int64_t *id_out)
{
    static const char any[] = "SELECT artifact_id FROM gc_manifest_review"
                              " WHERE review_after_ms <= ?1 ORDER BY review_after_ms LIMIT 1";
    static const char of_event[] =
        "SELECT artifact_id FROM gc_manifest_review"
        " WHERE event = ?2 AND review_after_ms <= ?1 ORDER BY review_after_ms LIMIT 1";
    /* PostgreSQL: as blob_review_one's claim */
    static const char any_skip_locked[] =
        "SELECT artifact_id FROM gc_manifest_review WHERE review_after_ms <= ?1"
        " ORDER BY review_after_ms LIMIT 1 FOR UPDATE SKIP LOCKED";
    static const char of_event_skip_locked[] =
        "SELECT artifact_id FROM gc_manifest_review WHERE event = ?2 AND review_after_ms <= ?1"
        " ORDER BY review_after_ms LIMIT 1 FOR UPDATE SKIP LOCKED";
    static const char *const events[] = {"parent_delete", "subject_delete"};
    bool pg = strcmp(db_driver_name(c), "postgres") == 0;
    for (size_t i = 0; i < (delete_untagged ? 1 : 2); i++) {
        db_stmt *s = db_stmt(c, delete_untagged ? (pg ? any_skip_locked : any)
                                                : (pg ? of_event_skip_locked : of_event));
        db_bind_i64(s, 1, now_ms);
        if (!delete_untagged)
            db_bind_text(s, 2, events[i]);
        int error = db_one_row(c, s, "due manifest review");
        if (error == WH_ENOTFOUND)
            continue;
        if (error < 0)
            return error;
        *id_out = db_col_i64(s, 0);
        db_done(s);
        return 0;
    }
    return WH_ENOTFOUND;
}

/* Inside a write transaction: claims and reviews the manifest review due first. */
static int manifest_review_one(struct conn *c, int64_t now_ms, bool delete_untagged,
                               struct wh_gc_review *out)
{
    static const char look[] =
        "SELECT a.digest, r.name, a.size, CASE WHEN " ARTIFACT_KEPT("a") " THEN 1 ELSE 0 END"
        " FROM artifact a JOIN repository r ON r.id = a.repo_id WHERE a.id = ?1";
    static const char drop_artifact[] = "DELETE FROM artifact WHERE id = ?1";
    static const char drop_review[] = "DELETE FROM gc_manifest_review WHERE artifact_id = ?1";
    int64_t id = 0;
    memset(out, 0, sizeof(*out));
    int error = manifest_claim(c, now_ms, delete_untagged, &id);
    if (error == WH_ENOTFOUND)
        return 0;
    if (error < 0)
        return error;
    out->claimed = true;
    bool kept = true;
    db_stmt *s = db_stmt(c, look);
    db_bind_i64(s, 1, id);
    error = db_one_row(c, s, "artifact");
    if (error == 0) {
        db_copy_col(out->digest, sizeof(out->digest), s, 0);
        db_copy_col(out->repo, sizeof(out->repo), s, 1);
        out->size = (uint64_t)db_col_i64(s, 2);
        kept = db_col_i64(s, 3) != 0;
        db_done(s);
    } else if (error != WH_ENOTFOUND) {
        return error;
    }
    if (error == 0 && !kept) {
        s = db_stmt(c, drop_artifact);
        db_bind_i64(s, 1, id);
        if ((error = db_run(c, s)) < 0)
            return error;
        out->deleted = true;
    }
    s = db_stmt(c, drop_review);
    db_bind_i64(s, 1, id);
    return db_run(c, s);
}

struct batch {
    bool manifests;
    bool delete_untagged;
    int (*del)(const char *digest, void *payload);
    void *del_payload;
    void (*seen)(const struct wh_gc_review *r, void *payload);
    void *payload;
    int max;
    int64_t budget_ms;
};

/* One transaction of reviews: until none is due, `max` were claimed or the budget is spent. */
static int batch_tx(struct conn *c, int64_t now_ms, const struct batch *b, int *claimed_out)
{
    int64_t start = wh_now_ms();
    *claimed_out = 0;
    while (*claimed_out < b->max && (*claimed_out == 0 || wh_now_ms() - start < b->budget_ms)) {
        struct wh_gc_review r;
        int error = b->manifests ? manifest_review_one(c, now_ms, b->delete_untagged, &r)
                                 : blob_review_one(c, now_ms, b->del, b->del_payload, &r);
        if (error < 0)
            return error;
        if (!r.claimed)
            break;
        ++*claimed_out;
        b->seen(&r, b->payload);
    }
    return 0;
}

static int batch_run(wh_db *db, int64_t now_ms, const struct batch *b, int *claimed_out)
{
    CONN_WRITE_OR_FAIL(c, db);
    int error = db_tx_begin(c);
    if (error < 0)
        return error;
    return db_tx_end(c, batch_tx(c, now_ms, b, claimed_out));
}

int wh_db_gc_review_blobs(wh_db *db, int64_t now_ms, int max, int64_t budget_ms,
                          int (*del)(const char *digest, void *payload), void *del_payload,
                          void (*seen)(const struct wh_gc_review *r, void *payload),
                          void *payload, int *claimed_out)
{
    struct batch b = {.del = del, .del_payload = del_payload, .seen = seen, .payload = payload,
                      .max = max, .budget_ms = budget_ms};
    return batch_run(db, now_ms, &b, claimed_out);
}

int wh_db_gc_review_manifests(wh_db *db, int64_t now_ms, bool delete_untagged, int max,
                              int64_t budget_ms,
                              void (*seen)(const struct wh_gc_review *r, void *payload),
                              void *payload, int *claimed_out)
{
    struct batch b = {.manifests = true, .delete_untagged = delete_untagged, .seen = seen,
                      .payload = payload, .max = max, .budget_ms = budget_ms};
    return batch_run(db, now_ms, &b, claimed_out);
}

static void keep_one(const struct wh_gc_review *r, void *payload)
{
    *(struct wh_gc_review *)payload = *r;
}

int wh_db_gc_review_blob(wh_db *db, int64_t now_ms,
                         int (*del)(const char *digest, void *payload), void *payload,
                         struct wh_gc_review *out)
{
    int n = 0;
    memset(out, 0, sizeof(*out));
    return wh_db_gc_review_blobs(db, now_ms, 1, 0, del, payload, keep_one, out, &n);
}

int wh_db_gc_review_manifest(wh_db *db, int64_t now_ms, bool delete_untagged,
                             struct wh_gc_review *out)
{
    int n = 0;
    memset(out, 0, sizeof(*out));
    return wh_db_gc_review_manifests(db, now_ms, delete_untagged, 1, 0, keep_one, out, &n);
}

struct preview {
    int (*fn)(const struct wh_gc_review *r, void *payload);
    void *payload;
    bool artifacts;
    struct wh_gc_review row;
};

static int preview_row(db_stmt *s, void *payload)
{
    struct preview *p = payload;
    memset(&p->row, 0, sizeof(p->row));
    p->row.claimed = p->row.deleted = true;
    db_copy_col(p->row.digest, sizeof(p->row.digest), s, 0);
    p->row.size = (uint64_t)db_col_i64(s, 1);
    if (p->artifacts)
        db_copy_col(p->row.repo, sizeof(p->row.repo), s, 2);
    return p->fn(&p->row, p->payload);
}

int wh_db_gc_preview(wh_db *db, int64_t now_ms, bool delete_untagged,
                     int (*fn)(const struct wh_gc_review *r, void *payload), void *payload)
{
    static const char artifacts[] =
        "SELECT a.digest, a.size, r.name FROM gc_manifest_review q"
        " JOIN artifact a ON a.id = q.artifact_id JOIN repository r ON r.id = a.repo_id"
        " WHERE q.review_after_ms <= ?1 AND (?2 = 1 OR q.event IN " ORPHAN_EVENTS ")"
        " AND NOT " ARTIFACT_KEPT("a") " ORDER BY q.review_after_ms, q.artifact_id";
    static const char blobs[] =
        "SELECT b.digest, b.size FROM gc_blob_review q JOIN blob b ON b.digest = q.digest"
        " WHERE q.review_after_ms <= ?1"
        " AND NOT EXISTS (SELECT 1 FROM artifact a WHERE a.digest = q.digest)"
        " AND NOT EXISTS (SELECT 1 FROM artifact_blob ab WHERE ab.digest = q.digest)"
        " ORDER BY q.review_after_ms, q.digest";
    CONN_OR_FAIL(c, db);
    struct preview p = {.fn = fn, .payload = payload, .artifacts = true};
    db_stmt *s = db_stmt(c, artifacts);
    db_bind_i64(s, 1, now_ms);
    db_bind_i64(s, 2, delete_untagged ? 1 : 0);
    int error = db_rows(c, s, preview_row, &p);
    if (error < 0)
        return error;
    p.artifacts = false;
    s = db_stmt(c, blobs);
    db_bind_i64(s, 1, now_ms);
    return db_rows(c, s, preview_row, &p);
}

int wh_db_gc_queue(wh_db *db, int64_t now_ms, struct wh_gc_queue *out)
{
    static const char sql[] =
        "SELECT (SELECT count(*) FROM gc_blob_review),"
        " (SELECT count(*) FROM gc_blob_review WHERE review_after_ms <= ?1),"
        " (SELECT count(*) FROM gc_manifest_review),"
        " (SELECT count(*) FROM gc_manifest_review WHERE review_after_ms <= ?1),"
        " (SELECT coalesce(max(review_count), 0) FROM gc_blob_review),"
        " (SELECT coalesce(max(review_count), 0) FROM gc_manifest_review)";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, now_ms);
    int error = db_one_row(c, s, "queue");
    if (error < 0)
        return error;
    out->blobs = db_col_i64(s, 0);
    out->blobs_due = db_col_i64(s, 1);
    out->manifests = db_col_i64(s, 2);
    out->manifests_due = db_col_i64(s, 3);
    int64_t a = db_col_i64(s, 4), b = db_col_i64(s, 5);
    out->max_review_count = a > b ? a : b;
    db_done(s);
    return 0;
}

/* ---- runs ---- */

#define RUN_COLS                                                                                   \
    "id, kind, trigger_type, operator, status, params, created_ms, start_ms, end_ms, updated_ms,"  \
    " stop_requested, blobs, bytes, artifacts, purged, failures, attempts"

static void run_row(struct wh_gc_run *o, db_stmt *s)
{
    memset(o, 0, sizeof(*o));
    o->id = db_col_i64(s, 0);
    db_copy_col(o->kind, sizeof(o->kind), s, 1);
    db_copy_col(o->trigger, sizeof(o->trigger), s, 2);
    db_copy_col(o->operator, sizeof(o->operator), s, 3);
    db_copy_col(o->status, sizeof(o->status), s, 4);
    db_copy_col(o->params, sizeof(o->params), s, 5);
    o->created_ms = db_col_i64(s, 6);
    o->start_ms = db_col_i64(s, 7);
    o->end_ms = db_col_i64(s, 8);
    o->updated_ms = db_col_i64(s, 9);
    o->stop_requested = db_col_i64(s, 10) != 0;
    o->blobs = db_col_i64(s, 11);
    o->bytes = db_col_i64(s, 12);
    o->artifacts = db_col_i64(s, 13);
    o->purged = db_col_i64(s, 14);
    o->failures = db_col_i64(s, 15);
    o->attempts = db_col_i64(s, 16);
}

static int create_tx(struct conn *c, const char *kind, const char *trigger, const char *operator,
                     const char *params, bool running, int64_t now_ms, int64_t *id_out)
{
    static const char busy[] = "SELECT 1 FROM gc_run WHERE kind = ?1"
                               " AND status IN ('Pending', 'Running')";
    static const char ins[] =
        "INSERT INTO gc_run(kind, trigger_type, operator, status, params, created_ms, start_ms,"
        " updated_ms, holder, attempts) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?6, ?8, ?9)"
        " RETURNING id";
    bool going = false;
    db_stmt *s = db_stmt(c, busy);
    db_bind_text(s, 1, kind);
    int error = db_exists(c, s, &going);
    if (error < 0)
        return error;
    if (going)
        return wh_error_set(WH_ECONFLICT, "a %s run is going on", kind);
    s = db_stmt(c, ins);
    db_bind_text(s, 1, kind);
    db_bind_text(s, 2, trigger);
    db_bind_text(s, 3, operator ? operator : "");
    db_bind_text(s, 4, running ? "Running" : "Pending");
    db_bind_text(s, 5, params && *params ? params : "{}");
    db_bind_i64(s, 6, now_ms);
    db_bind_i64(s, 7, running ? now_ms : 0);
    db_bind_text(s, 8, running ? db_node(c) : "");
    db_bind_i64(s, 9, running ? 1 : 0);
    return db_insert(c, s, "gc run", id_out);
}

int wh_db_gcrun_create(wh_db *db, const char *kind, const char *trigger, const char *operator,
                       const char *params, bool running, int64_t now_ms, int64_t *id_out)
{
    CONN_WRITE_OR_FAIL(c, db);
    int error = db_tx_begin(c);
    if (error < 0)
        return error;
    return db_tx_end(c, create_tx(c, kind, trigger, operator, params, running, now_ms, id_out));
}

static int gcfire_tx(struct conn *c, const char *name, const char *expect, const char *value,
                     const char *kind, const char *params, int64_t now_ms, int64_t *id_out)
{
    static const char get[] = "SELECT value FROM setting WHERE name = ?1";
    static const char set[] = "UPDATE setting SET value = ?2, updated_ms = ?3 WHERE name = ?1";
    db_stmt *s = db_stmt(c, get);
    db_bind_text(s, 1, name);
    int error = db_one_row(c, s, "setting");
    if (error < 0)
        return error;
    const char *cur = db_col_text(s, 0);
    bool same = cur && strcmp(cur, expect) == 0;
    db_done(s);
    if (!same)
        return wh_error_set(WH_ECONFLICT, "setting %s changed", name);
    s = db_stmt(c, set);
    db_bind_text(s, 1, name);
    db_bind_text(s, 2, value);
    db_bind_i64(s, 3, now_ms);
    if ((error = db_run(c, s)) < 0)
        return error;
    *id_out = 0;
    error = create_tx(c, kind, "Schedule", "", params, false, now_ms, id_out);
    return error == WH_ECONFLICT ? 0 : error;
}

int wh_db_gcrun_fire(wh_db *db, const char *name, const char *expect, const char *value,
                     const char *kind, const char *params, int64_t now_ms, int64_t *id_out)
{
    CONN_WRITE_OR_FAIL(c, db);
    int error = db_tx_begin(c);
    if (error < 0)
        return error;
    return db_tx_end(c, gcfire_tx(c, name, expect, value, kind, params, now_ms, id_out));
}

static int claim_tx(struct conn *c, int64_t now_ms, struct wh_gc_run *out)
{
    static const char next[] = "SELECT " RUN_COLS " FROM gc_run WHERE status = 'Pending'"
                               " ORDER BY id LIMIT 1";
    /* PostgreSQL, several nodes: a run another node is taking is skipped, not waited for */
    static const char next_skip_locked[] = "SELECT " RUN_COLS " FROM gc_run"
                                           " WHERE status = 'Pending' ORDER BY id LIMIT 1"
                                           " FOR UPDATE SKIP LOCKED";
    /* a run taken back keeps the start of its first attempt */
    static const char take[] =
        "UPDATE gc_run SET status = 'Running',"
        " start_ms = CASE WHEN start_ms = 0 THEN ?2 ELSE start_ms END, updated_ms = ?2,"
        " holder = ?3, attempts = attempts + 1 WHERE id = ?1 AND status = 'Pending'";
    bool pg = strcmp(db_driver_name(c), "postgres") == 0;
    db_stmt *s = db_stmt(c, pg ? next_skip_locked : next);
    int error = db_one_row(c, s, "pending run");
    if (error < 0)
        return error;
    run_row(out, s);
    db_done(s);
    s = db_stmt(c, take);
    db_bind_i64(s, 1, out->id);
    db_bind_i64(s, 2, now_ms);
    db_bind_text(s, 3, db_node(c));
    if ((error = db_change(c, s, "pending run")) < 0)
        return error;
    snprintf(out->status, sizeof(out->status), "Running");
    if (out->start_ms == 0)
        out->start_ms = now_ms;
    out->updated_ms = now_ms;
    out->attempts++;
    return 0;
}

int wh_db_gcrun_claim(wh_db *db, int64_t now_ms, struct wh_gc_run *out)
{
    /* a read first: an idle server's tick takes no write lock */
    static const char peek[] = "SELECT 1 FROM gc_run WHERE status = 'Pending'";
    CONN_WRITE_OR_FAIL(c, db);
    bool any = false;
    int error = db_exists(c, db_stmt(c, peek), &any);
    if (error < 0)
        return error;
    if (!any)
        return WH_ENOTFOUND;
    if ((error = db_tx_begin(c)) < 0)
        return error;
    return db_tx_end(c, claim_tx(c, now_ms, out));
}

/*
 * A run's counts grow by increments and its log by appends, so that the node
 * holding it and the nodes helping it (wh_db_gcrun_help) never overwrite one
 * another. The log stops growing once it ends with CUT_LINE: an append that
 * would take it beyond WH_GC_LOG_MAX characters adds that line instead.
 */
#define CUT_LINE "... (the log is cut here; the counts go on)\n"
#define ADD_COUNTS                                                                                 \
    " blobs = blobs + ?2, bytes = bytes + ?3, artifacts = artifacts + ?4, purged = purged + ?5,"   \
    " failures = failures + ?6,"                                                                   \
    " log = CASE WHEN log LIKE '%' || CAST(?11 AS TEXT) THEN log"                                  \
    " WHEN length(log) + length(CAST(?7 AS TEXT)) + length(CAST(?11 AS TEXT)) <= ?12"               \
    " THEN log || CAST(?7 AS TEXT) ELSE log || CAST(?11 AS TEXT) END"

static void bind_add(db_stmt *s, int64_t id, const struct wh_gc_run *add, const char *log)
{
    db_bind_i64(s, 1, id);
    db_bind_i64(s, 2, add ? add->blobs : 0);
    db_bind_i64(s, 3, add ? add->bytes : 0);
    db_bind_i64(s, 4, add ? add->artifacts : 0);
    db_bind_i64(s, 5, add ? add->purged : 0);
    db_bind_i64(s, 6, add ? add->failures : 0);
    db_bind_text(s, 7, log ? log : "");
    db_bind_text(s, 11, CUT_LINE);
    db_bind_i64(s, 12, WH_GC_LOG_MAX);
}

/* Steps `s` (bound by the caller), which yields one row of RUN_COLS, into `out` (may be NULL). */
static int one_run(struct conn *c, db_stmt *s, const char *what, struct wh_gc_run *out)
{
    int error = db_one_row(c, s, what);
    if (error < 0)
        return error;
    if (out)
        run_row(out, s);
    db_done(s);
    return 0;
}

int wh_db_gcrun_update(wh_db *db, int64_t id, const struct wh_gc_run *add, const char *log,
                       const char *status, int64_t now_ms, struct wh_gc_run *out)
{
    static const char sql[] =
        "UPDATE gc_run SET" ADD_COUNTS ", updated_ms = ?8, status = coalesce(?9, status),"
        " end_ms = CASE WHEN ?9 IS NULL THEN end_ms ELSE ?8 END"
        " WHERE id = ?1 AND status = 'Running' AND holder = ?10 RETURNING " RUN_COLS;
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    bind_add(s, id, add, log);
    db_bind_i64(s, 8, now_ms);
    db_bind_text(s, 9, status);
    db_bind_text(s, 10, db_node(c));
    return one_run(c, s, "running gc run of this node", out);
}

int wh_db_gcrun_help(wh_db *db, int64_t id, const struct wh_gc_run *add, const char *log,
                     struct wh_gc_run *out)
{
    /* neither updated_ms (the holder's lease) nor the status: a helper only adds */
    static const char sql[] = "UPDATE gc_run SET" ADD_COUNTS " WHERE id = ?1 RETURNING " RUN_COLS;
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    bind_add(s, id, add, log);
    return one_run(c, s, "gc run", out);
}

int wh_db_gcrun_helpable(wh_db *db, const char *kind, int64_t fresh_after_ms, int64_t now_ms,
                         struct wh_gc_run *out)
{
    /* a run another node's server holds and writes progress for, not asked to stop, with
     * reviews due (a read: an idle node's tick takes no write lock) */
    static const char sql[] =
        "SELECT " RUN_COLS " FROM gc_run WHERE kind = ?1 AND status = 'Running'"
        " AND stop_requested = 0 AND holder <> '' AND holder <> ?2 AND updated_ms >= ?3"
        " AND (EXISTS (SELECT 1 FROM gc_blob_review WHERE review_after_ms <= ?4)"
        " OR EXISTS (SELECT 1 FROM gc_manifest_review WHERE review_after_ms <= ?4))"
        " ORDER BY id LIMIT 1";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, kind);
    db_bind_text(s, 2, db_node(c));
    db_bind_i64(s, 3, fresh_after_ms);
    db_bind_i64(s, 4, now_ms);
    return one_run(c, s, "gc run to help", out);
}

int wh_db_gcrun_get(wh_db *db, const char *kind, int64_t id, struct wh_gc_run *out)
{
    static const char sql[] = "SELECT " RUN_COLS " FROM gc_run WHERE id = ?1 AND kind = ?2";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, id);
    db_bind_text(s, 2, kind);
    int error = db_one_row(c, s, "run");
    if (error < 0)
        return error;
    run_row(out, s);
    db_done(s);
    return 0;
}

struct run_each {
    int (*fn)(const struct wh_gc_run *r, void *payload);
    void *payload;
    struct wh_gc_run row;
};

static int run_each(db_stmt *s, void *payload)
{
    struct run_each *e = payload;
    run_row(&e->row, s);
    return e->fn(&e->row, e->payload);
}

int wh_db_gcrun_list(wh_db *db, const char *kind, int64_t offset, int64_t limit,
                     int (*fn)(const struct wh_gc_run *r, void *payload), void *payload,
                     int64_t *total)
{
    static const char count[] = "SELECT count(*) FROM gc_run WHERE kind = ?1";
    static const char page[] = "SELECT " RUN_COLS " FROM gc_run WHERE kind = ?1"
                               " ORDER BY id DESC LIMIT ?2 OFFSET ?3";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, count);
    db_bind_text(s, 1, kind);
    int error = db_count(c, s, total);
    if (error < 0)
        return error;
    struct run_each e = {.fn = fn, .payload = payload};
    s = db_stmt(c, page);
    db_bind_text(s, 1, kind);
    db_bind_i64(s, 2, limit);
    db_bind_i64(s, 3, offset);
    return db_rows(c, s, run_each, &e);
}

int wh_db_gcrun_log(wh_db *db, const char *kind, int64_t id, char **out)
{
    static const char sql[] = "SELECT log FROM gc_run WHERE id = ?1 AND kind = ?2";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, id);
    db_bind_text(s, 2, kind);
    int error = db_one_row(c, s, "run");
    if (error < 0)
        return error;
    const char *t = db_col_text(s, 0);
    *out = wh_strdup(t ? t : "");
    db_done(s);
    return 0;
}

static int stop_tx(struct conn *c, const char *kind, int64_t id, int64_t now_ms)
{
    static const char pending[] = "UPDATE gc_run SET status = 'Stopped', end_ms = ?3,"
                                  " updated_ms = ?3 WHERE id = ?1 AND kind = ?2"
                                  " AND status = 'Pending'";
    static const char running[] = "UPDATE gc_run SET stop_requested = 1 WHERE id = ?1"
                                  " AND kind = ?2 AND status = 'Running'";
    static const char known[] = "SELECT 1 FROM gc_run WHERE id = ?1 AND kind = ?2";
    const char *const steps[] = {pending, running};
    for (size_t i = 0; i < 2; i++) {
        db_stmt *s = db_stmt(c, steps[i]);
        db_bind_i64(s, 1, id);
        db_bind_text(s, 2, kind);
        if (i == 0)
            db_bind_i64(s, 3, now_ms);
        int error = db_run(c, s);
        if (error < 0)
            return error;
        if (db_changes(c) > 0)
            return 0;
    }
    bool exists = false;
    db_stmt *s = db_stmt(c, known);
    db_bind_i64(s, 1, id);
    db_bind_text(s, 2, kind);
    int error = db_exists(c, s, &exists);
    if (error == 0 && !exists)
        error = wh_error_set(WH_ENOTFOUND, "run %lld not found", (long long)id);
    return error;
}

int wh_db_gcrun_stop(wh_db *db, const char *kind, int64_t id, int64_t now_ms)
{
    CONN_WRITE_OR_FAIL(c, db);
    int error = db_tx_begin(c);
    if (error < 0)
        return error;
    return db_tx_end(c, stop_tx(c, kind, id, now_ms));
}

int wh_db_gcrun_recover(wh_db *db, int64_t stale_before_ms, int64_t now_ms, bool at_start,
                        int64_t *requeued)
{
    /* which runs: not updated for a lease (their node died), or this node's own at its start */
#define RECOVERABLE                                                                                \
    " status = 'Running' AND (updated_ms < ?1 OR (?4 = 1 AND holder = ?5 AND holder <> ''))"
    static const char peek[] = "SELECT 1 FROM gc_run WHERE" RECOVERABLE;
    /* a line in the run's log for the attempt cut off; queued again unless a stop was asked
     * for or it was taken WH_GC_ATTEMPTS_MAX times (a run that kills every node ends) */
    static const char sql[] =
        "UPDATE gc_run SET"
        " status = CASE WHEN stop_requested <> 0 THEN 'Stopped' WHEN attempts >= ?3 THEN 'Error'"
        " ELSE 'Pending' END,"
        " end_ms = CASE WHEN stop_requested <> 0 OR attempts >= ?3 THEN ?2 ELSE end_ms END,"
        " updated_ms = ?2,"
        " log = log || 'attempt ' || attempts || ' of ' || ?3 || ' was cut off: the node running"
        " it stopped (' || CASE WHEN holder = '' THEN 'wharf gc' ELSE holder END || ')' || ?6 ||"
        " CASE WHEN stop_requested <> 0 THEN 'stopped, as asked' || ?6"
        " WHEN attempts >= ?3 THEN 'gave up after ' || attempts || ' attempts' || ?6"
        " ELSE 'queued again: the next node to look takes it over' || ?6 END,"
        " holder = '' WHERE" RECOVERABLE " RETURNING status";
#undef RECOVERABLE
    CONN_WRITE_OR_FAIL(c, db);
    bool any = false;
    if (requeued)
        *requeued = 0;
    db_stmt *s = db_stmt(c, peek);
    db_bind_i64(s, 1, stale_before_ms);
    db_bind_i64(s, 4, at_start ? 1 : 0);
    db_bind_text(s, 5, db_node(c));
    int error = db_exists(c, s, &any);
    if (error < 0 || !any)
        return error; /* a read: an idle node's tick takes no write lock */
    s = db_stmt(c, sql);
    db_bind_i64(s, 1, stale_before_ms);
    db_bind_i64(s, 2, now_ms);
    db_bind_i64(s, 3, WH_GC_ATTEMPTS_MAX);
    db_bind_i64(s, 4, at_start ? 1 : 0);
    db_bind_text(s, 5, db_node(c));
    db_bind_text(s, 6, "\n");
    return db_count_pending(c, s, requeued);
}

/* ---- audit log purge ---- */

#define PURGE_OPS_MAX 16
#define PURGE_WHERE                                                                                \
    " WHERE op_time_ms < ?1 AND (?2 = 0 OR operation IN (?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,"   \
    " ?12, ?13, ?14, ?15, ?16, ?17, ?18))"

int wh_db_audit_purge_ops(wh_db *db, int64_t before_ms, const char *const *ops, size_t nops,
                      bool dry, int64_t limit, int64_t *n_out)
{
    static const char del[] = "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log"
                              PURGE_WHERE " LIMIT ?19)";
    static const char count[] = "SELECT count(*) FROM (SELECT id FROM audit_log" PURGE_WHERE
                                " LIMIT ?19) x";
    if (nops > PURGE_OPS_MAX)
        return wh_error_set(WH_EINVALID, "at most %d operations", PURGE_OPS_MAX);
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, dry ? count : del);
    db_bind_i64(s, 1, before_ms);
    db_bind_i64(s, 2, (int64_t)nops);
    for (size_t i = 0; i < PURGE_OPS_MAX; i++)
        db_bind_text(s, 3 + (int)i, i < nops ? ops[i] : NULL);
    db_bind_i64(s, 19, limit);
    if (dry)
        return db_count(c, s, n_out);
    int error = db_tx_begin(c);
    if (error < 0) {
        db_done(s);
        return error;
    }
    error = db_run(c, s);
    *n_out = error == 0 ? db_changes(c) : 0;
    return db_tx_end(c, error);
}
