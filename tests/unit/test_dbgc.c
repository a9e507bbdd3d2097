/*
 * Unit tests for online garbage collection in db/ (db_gc.c, schema 12): the
 * triggers queue what a write may have left unreferenced, a review is due
 * only after the grace delay, and a due review keeps what is referenced
 * (by any artifact of any repository), deletes what is not (its rows, and
 * its bytes through the callback), postpones when a push touches the blob,
 * retries with a backoff when storage refuses; untagged artifacts go only
 * when asked for, children of a deleted index and referrers of a deleted
 * subject go anyway; the run history and the audit purge by operation.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "db/db.h"
#include "db_fixture.h"

#define IMAGE_MT "application/vnd.oci.image.manifest.v1+json"
#define INDEX_MT "application/vnd.oci.image.index.v1+json"
#define IMAGE_CFG "application/vnd.oci.image.config.v1+json"
#define HOUR (3600LL * 1000)
#define LATER (wh_now_ms() + 2 * HOUR) /* past the fixture's delay of one hour */

struct fixture {
    char dir[64];
    wh_db *db;
    int64_t pid;
    char deleted[64][80]; /* what the storage callback was asked to delete */
    int ndeleted;
    int refuse;           /* the storage callback fails this many times */
};

static const char *dg(char *buf, int n)
{
    snprintf(buf, 80, "sha256:%064d", n);
    return buf;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/wharf-dbgc-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/wharf.db", f->dir);
    assert_int_equal(test_db_open(&f->db, path), 0);
    struct wh_project_info in;
    memset(&in, 0, sizeof(in));
    snprintf(in.p.name, sizeof(in.p.name), "p");
    snprintf(in.metadata, sizeof(in.metadata), "{}");
    in.storage_limit = -1;
    assert_int_equal(wh_db_project_insert(f->db, &in, &f->pid), 0);
    assert_int_equal(wh_db_gc_set_delay(f->db, HOUR), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    wh_db_close(f->db);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static int del(const char *digest, void *payload)
{
    struct fixture *f = payload;
    if (f->refuse > 0) {
        f->refuse--;
        return wh_error_set(WH_ERROR, "storage refuses");
    }
    if (f->ndeleted < 64)
        snprintf(f->deleted[f->ndeleted++], 80, "%s", digest);
    return 0;
}

static bool was_deleted(struct fixture *f, const char *digest)
{
    for (int i = 0; i < f->ndeleted; i++)
        if (strcmp(f->deleted[i], digest) == 0)
            return true;
    return false;
}

/* Pushes manifest `m` in `repo` with blobs (linked first), children, subject and tag. */
static void push(struct fixture *f, const char *repo, int m, const int *blobs, size_t nblobs,
                 const int *children, size_t nchildren, int subject, const char *tag)
{
    char d[80], bd[8][80], cd[8][80], sd[80];
    const char *bp[8], *cp[8];
    for (size_t i = 0; i < nblobs; i++) {
        bp[i] = dg(bd[i], blobs[i]);
        assert_int_equal(wh_db_blob_link(f->db, f->pid, repo, bp[i], 1000 + blobs[i]), 0);
    }
    for (size_t i = 0; i < nchildren; i++)
        cp[i] = dg(cd[i], children[i]);
    struct wh_artifact_in a = {.repo = repo, .project_id = f->pid, .digest = dg(d, m),
                               .media_type = nchildren ? INDEX_MT : IMAGE_MT,
                               .artifact_type = nchildren ? NULL : IMAGE_CFG, .size = 100,
                               .blobs = bp, .nblobs = nblobs, .children = cp,
                               .nchildren = nchildren, .tag = tag,
                               .subject = subject ? dg(sd, subject) : NULL};
    assert_int_equal(wh_db_manifest_put(f->db, &a), 0);
}

/* Runs every due review at `now` (manifests first, as a run does); returns the deletions. */
static int collect(struct fixture *f, int64_t now, bool untagged)
{
    int deleted = 0;
    for (int i = 0; i < 1000; i++) {
        struct wh_gc_review r;
        assert_int_equal(wh_db_gc_review_manifest(f->db, now, untagged, &r), 0);
        if (!r.claimed)
            assert_int_equal(wh_db_gc_review_blob(f->db, now, del, f, &r), 0);
        if (!r.claimed)
            return deleted;
        deleted += r.deleted;
    }
    fail_msg("the queues never drained");
    return -1;
}

static bool blob_known(struct fixture *f, const char *repo, int n)
{
    char d[80];
    uint64_t size;
    return wh_db_blob_get(f->db, repo, dg(d, n), &size) == 0;
}

static bool manifest_known(struct fixture *f, const char *repo, int n)
{
    char d[80];
    struct wh_manifest_ref ref;
    return wh_db_manifest_get(f->db, repo, dg(d, n), true, &ref) == 0;
}

static void test_dbgc__unreferenced_blob_waits_for_the_delay(void **state)
{
    struct fixture *f = *state;
    char d[80];
    assert_int_equal(wh_db_blob_link(f->db, f->pid, "p/a", dg(d, 1), 10), 0);
    struct wh_gc_queue q;
    assert_int_equal(wh_db_gc_queue(f->db, wh_now_ms(), &q), 0);
    assert_int_equal(q.blobs, 1);
    assert_int_equal(q.blobs_due, 0);
    /* an upload that no manifest references yet survives until the delay has passed */
    assert_int_equal(collect(f, wh_now_ms(), true), 0);
    assert_true(blob_known(f, "p/a", 1));
    assert_int_equal(collect(f, LATER, false), 1);
    assert_false(blob_known(f, "p/a", 1));
    assert_true(was_deleted(f, dg(d, 1)));
    assert_int_equal(wh_db_gc_queue(f->db, LATER, &q), 0);
    assert_int_equal(q.blobs, 0);
}

static void test_dbgc__referenced_blobs_stay_shared_ones_too(void **state)
{
    struct fixture *f = *state;
    push(f, "p/a", 100, (int[]){1, 2}, 2, NULL, 0, 0, "v1");
    push(f, "p/b", 200, (int[]){2, 3}, 2, NULL, 0, 0, "v1");
    assert_int_equal(collect(f, LATER, true), 0); /* everything is tagged and used */
    assert_int_equal(f->ndeleted, 0);

    /* the repository goes: its own blobs go, the one image b shares stays */
    struct wh_repo repo;
    assert_int_equal(wh_db_repo_get(f->db, "p/a", &repo), 0);
    assert_int_equal(wh_db_repo_delete(f->db, repo.id), 0);
    assert_int_equal(collect(f, wh_now_ms(), true), 0); /* queued anew: not due yet */
    assert_int_equal(collect(f, LATER, false), 2);     /* blob 1 and manifest 100's bytes */
    char d[80];
    assert_true(was_deleted(f, dg(d, 1)));
    assert_true(was_deleted(f, dg(d, 100)));
    assert_false(was_deleted(f, dg(d, 2)));
    assert_true(blob_known(f, "p/b", 2));
    assert_true(blob_known(f, "p/b", 3));
    assert_true(manifest_known(f, "p/b", 200));
}

static void test_dbgc__untagged_artifacts_only_when_asked(void **state)
{
    struct fixture *f = *state;
    push(f, "p/a", 100, (int[]){1, 2}, 2, NULL, 0, 0, "v1");
    push(f, "p/a", 101, (int[]){2, 3}, 2, NULL, 0, 0, "v1"); /* the tag moves to 101 */
    assert_int_equal(collect(f, LATER, false), 0);
    assert_true(manifest_known(f, "p/a", 100));
    /* what the collection's own deletes queue is due a (longer) delay after them */
    assert_int_equal(wh_db_gc_set_delay(f->db, 10 * HOUR), 0);
    /* delete_untagged: 100 goes, then (once due) blob 1 and its bytes; 2 is 101's too */
    assert_int_equal(collect(f, LATER, true), 1);
    assert_false(manifest_known(f, "p/a", 100));
    assert_true(blob_known(f, "p/a", 1));
    assert_int_equal(collect(f, wh_now_ms() + 11 * HOUR, true), 2);
    assert_false(blob_known(f, "p/a", 1));
    assert_true(blob_known(f, "p/a", 2));
    assert_true(manifest_known(f, "p/a", 101));
    /* a tag delete makes 101 untagged: collected the same way, with its blobs and bytes */
    assert_int_equal(wh_db_tag_delete(f->db, "p/a", "v1"), 0);
    assert_int_equal(collect(f, LATER, true), 0);
    assert_int_equal(collect(f, wh_now_ms() + 11 * HOUR, false), 0);
    assert_int_equal(collect(f, wh_now_ms() + 11 * HOUR, true), 4);
    assert_false(manifest_known(f, "p/a", 101));
    assert_false(blob_known(f, "p/a", 2));
}

static void test_dbgc__deleting_an_index_takes_its_unreferenced_children(void **state)
{
    struct fixture *f = *state;
    push(f, "p/a", 10, (int[]){1}, 1, NULL, 0, 0, NULL);
    push(f, "p/a", 11, (int[]){2}, 1, NULL, 0, 0, "amd64"); /* a child with a tag of its own */
    push(f, "p/a", 12, (int[]){3}, 1, NULL, 0, 0, NULL);
    push(f, "p/a", 20, NULL, 0, (int[]){10, 11, 12}, 3, 0, "multi");
    push(f, "p/a", 21, NULL, 0, (int[]){12}, 1, 0, "other"); /* another index lists 12 */
    assert_int_equal(collect(f, LATER, true), 0); /* children are referenced by their index */
    char d[80];
    assert_int_equal(wh_db_manifest_delete(f->db, "p/a", dg(d, 20)), 0);
    assert_int_equal(wh_db_gc_set_delay(f->db, 10 * HOUR), 0);
    /* without delete_untagged all the same: 10 goes, 11 is tagged, 12 is listed by 21;
     * and the index's own bytes */
    assert_int_equal(collect(f, LATER, false), 2);
    assert_false(manifest_known(f, "p/a", 10));
    assert_true(manifest_known(f, "p/a", 11));
    assert_true(manifest_known(f, "p/a", 12));
    assert_int_equal(collect(f, wh_now_ms() + 11 * HOUR, false), 2); /* 10's blob and bytes */
    assert_true(was_deleted(f, dg(d, 1)));
    assert_true(was_deleted(f, dg(d, 10)));
    assert_true(was_deleted(f, dg(d, 20)));
    assert_false(was_deleted(f, dg(d, 2)));
    assert_false(was_deleted(f, dg(d, 3)));
}

static void test_dbgc__referrers_live_and_die_with_their_subject(void **state)
{
    struct fixture *f = *state;
    push(f, "p/a", 100, (int[]){1}, 1, NULL, 0, 0, "v1");
    push(f, "p/a", 300, (int[]){5}, 1, NULL, 0, 100, NULL); /* an untagged signature of 100 */
    assert_int_equal(collect(f, LATER, true), 0);
    assert_true(manifest_known(f, "p/a", 300));
    char d[80];
    assert_int_equal(wh_db_manifest_delete(f->db, "p/a", dg(d, 100)), 0);
    assert_int_equal(wh_db_gc_set_delay(f->db, 10 * HOUR), 0);
    /* the signature, and 100's blob and bytes (queued by its delete) */
    assert_int_equal(collect(f, LATER, false), 3);
    assert_false(manifest_known(f, "p/a", 300));
}

static void test_dbgc__a_push_postpones_the_review(void **state)
{
    struct fixture *f = *state;
    char d[80];
    assert_int_equal(wh_db_blob_link(f->db, f->pid, "p/a", dg(d, 1), 10), 0);
    /* time passes: due in 10 minutes, within half the delay, so a HEAD postpones it */
    int64_t later = wh_now_ms() + 50 * 60 * 1000;
    assert_int_equal(wh_db_gc_blob_touch(f->db, dg(d, 1), later), 0);
    struct wh_gc_queue q;
    assert_int_equal(wh_db_gc_queue(f->db, later + 30 * 60 * 1000, &q), 0);
    assert_int_equal(q.blobs_due, 0);
    assert_int_equal(collect(f, later + 30 * 60 * 1000, false), 0);
    assert_int_equal(collect(f, wh_now_ms() + 2 * HOUR, false), 1);
    assert_false(blob_known(f, "p/a", 1));
    /* pushed again (a mount, an upload of the same bytes): postponed by the delay from then */
    assert_int_equal(wh_db_blob_link(f->db, f->pid, "p/a", dg(d, 2), 10), 0);
    assert_int_equal(wh_db_gc_set_delay(f->db, 3 * HOUR), 0);
    assert_int_equal(wh_db_blob_link(f->db, f->pid, "p/b", dg(d, 2), 10), 0);
    assert_int_equal(collect(f, wh_now_ms() + 2 * HOUR, false), 0);
    assert_int_equal(collect(f, wh_now_ms() + 4 * HOUR, false), 1);
    assert_false(blob_known(f, "p/b", 2));
}

static void test_dbgc__failed_deletes_retry_with_backoff(void **state)
{
    struct fixture *f = *state;
    char d[80];
    assert_int_equal(wh_db_blob_link(f->db, f->pid, "p/a", dg(d, 1), 10), 0);
    f->refuse = 1;
    struct wh_gc_review r;
    int64_t t = LATER;
    assert_int_equal(wh_db_gc_review_blob(f->db, t, del, f, &r), 0);
    assert_true(r.claimed && r.failed && !r.deleted);
    assert_true(blob_known(f, "p/a", 1)); /* rolled back: rows as before */
    struct wh_gc_queue q;
    assert_int_equal(wh_db_gc_queue(f->db, t, &q), 0);
    assert_int_equal(q.blobs, 1);
    assert_int_equal(q.blobs_due, 0); /* a second later */
    assert_int_equal(q.max_review_count, 1);
    assert_int_equal(wh_db_gc_review_blob(f->db, t + 1000, del, f, &r), 0);
    assert_true(r.claimed && r.deleted);
    assert_false(blob_known(f, "p/a", 1));
}

static int missing(const char *digest, void *payload)
{
    (void)digest;
    (void)payload;
    return WH_ENOTFOUND;
}

static void test_dbgc__a_new_blob_row_needs_its_bytes(void **state)
{
    struct fixture *f = *state;
    char d[80];
    assert_int_equal(wh_db_blob_link(f->db, f->pid, "p/a", dg(d, 1), 10), 0);
    wh_db_on_blob_recorded(f->db, missing, NULL);
    /* an existing row is not checked (it promises bytes a collection keeps) */
    assert_int_equal(wh_db_blob_link(f->db, f->pid, "p/b", dg(d, 1), 10), 0);
    /* a new one is: the collector took the bytes after they were stored */
    assert_int_equal(wh_db_blob_link(f->db, f->pid, "p/a", dg(d, 2), 10), WH_EBUSY);
    assert_false(blob_known(f, "p/a", 2));
    wh_db_on_blob_recorded(f->db, NULL, NULL);
}

struct preview_counts {
    int artifacts, blobs;
    uint64_t bytes;
};

static int count_item(const struct wh_gc_review *r, void *payload)
{
    struct preview_counts *n = payload;
    if (r->repo[0]) {
        n->artifacts++;
    } else {
        n->blobs++;
        n->bytes += r->size;
    }
    return 0;
}

static void test_dbgc__preview_changes_nothing(void **state)
{
    struct fixture *f = *state;
    push(f, "p/a", 100, (int[]){1, 2}, 2, NULL, 0, 0, NULL); /* untagged */
    char d[80];
    assert_int_equal(wh_db_blob_link(f->db, f->pid, "p/a", dg(d, 7), 77), 0);
    struct preview_counts n = {0};
    assert_int_equal(wh_db_gc_preview(f->db, wh_now_ms(), true, count_item, &n), 0);
    assert_int_equal(n.artifacts + n.blobs, 0); /* nothing is due yet */
    assert_int_equal(wh_db_gc_preview(f->db, LATER, false, count_item, &n), 0);
    assert_int_equal(n.artifacts, 0);
    assert_int_equal(n.blobs, 1);
    assert_int_equal(n.bytes, 77);
    n = (struct preview_counts){0};
    assert_int_equal(wh_db_gc_preview(f->db, LATER, true, count_item, &n), 0);
    assert_int_equal(n.artifacts, 1);
    assert_int_equal(n.blobs, 1);
    assert_true(blob_known(f, "p/a", 7));
    assert_true(manifest_known(f, "p/a", 100));
    struct wh_gc_queue q;
    assert_int_equal(wh_db_gc_queue(f->db, LATER, &q), 0);
    assert_int_equal(q.manifests_due, 1);
}

static int run_count(const struct wh_gc_run *r, void *payload)
{
    (void)r;
    (*(int *)payload)++;
    return 0;
}

static void test_dbgc__runs_one_at_a_time_with_history(void **state)
{
    struct fixture *f = *state;
    int64_t id = 0, id2 = 0, total = 0;
    assert_int_equal(wh_db_gcrun_create(f->db, WH_GC_KIND_GC, "Manual", "admin",
                                        "{\"dry_run\":true}", false, 1000, &id),
                     0);
    assert_int_equal(wh_db_gcrun_create(f->db, WH_GC_KIND_GC, "Manual", "admin", "{}", false,
                                        1001, &id2),
                     WH_ECONFLICT);
    /* the purge is a kind of its own */
    assert_int_equal(wh_db_gcrun_create(f->db, WH_GC_KIND_PURGE, "Manual", "admin", "{}", true,
                                        1002, &id2),
                     0);
    struct wh_gc_run r;
    assert_int_equal(wh_db_gcrun_claim(f->db, 2000, &r), 0);
    assert_int_equal(r.id, id);
    assert_string_equal(r.status, "Running");
    assert_string_equal(r.params, "{\"dry_run\":true}");
    assert_int_equal(wh_db_gcrun_claim(f->db, 2000, &r), WH_ENOTFOUND);
    struct wh_gc_run now;
    r.blobs = 3;
    r.bytes = 300;
    assert_int_equal(wh_db_gcrun_update(f->db, id, &r, "line\n", NULL, 2500, &now), 0);
    assert_false(now.stop_requested);
    assert_int_equal(now.bytes, 300);
    assert_int_equal(wh_db_gcrun_stop(f->db, WH_GC_KIND_GC, id, 2600), 0);
    assert_int_equal(wh_db_gcrun_update(f->db, id, NULL, "end\n", NULL, 2700, &now), 0);
    assert_true(now.stop_requested);
    assert_int_equal(wh_db_gcrun_update(f->db, id, NULL, "", "Stopped", 2800, NULL), 0);
    assert_int_equal(wh_db_gcrun_get(f->db, WH_GC_KIND_GC, id, &r), 0);
    assert_string_equal(r.status, "Stopped");
    assert_int_equal(r.end_ms, 2800);
    assert_int_equal(r.bytes, 300);
    assert_int_equal(wh_db_gcrun_get(f->db, WH_GC_KIND_PURGE, id, &r), WH_ENOTFOUND);
    char *log = NULL;
    assert_int_equal(wh_db_gcrun_log(f->db, WH_GC_KIND_GC, id, &log), 0);
    assert_string_equal(log, "line\nend\n");
    free(log);
    int n = 0;
    assert_int_equal(wh_db_gcrun_list(f->db, WH_GC_KIND_GC, 0, 10, run_count, &n, &total), 0);
    assert_int_equal(n, 1);
    assert_int_equal(total, 1);
    /* a Running run whose process died is queued again; a Pending one is stopped at once */
    int64_t requeued = -1;
    assert_int_equal(wh_db_gcrun_recover(f->db, 5000, 6000, false, &requeued), 0);
    assert_int_equal(requeued, 1);
    assert_int_equal(wh_db_gcrun_get(f->db, WH_GC_KIND_PURGE, id2, &r), 0);
    assert_string_equal(r.status, "Pending");
    assert_int_equal(wh_db_gcrun_log(f->db, WH_GC_KIND_PURGE, id2, &log), 0);
    assert_string_equal(log, "attempt 1 of 3 was cut off: the node running it stopped (wharf gc)\n"
                             "queued again: the next node to look takes it over\n");
    free(log);
    assert_int_equal(wh_db_gcrun_claim(f->db, 6100, &r), 0);
    assert_int_equal(r.id, id2);
    assert_int_equal(r.attempts, 2);
    assert_int_equal(r.start_ms, 1002); /* its first attempt's */
    assert_int_equal(wh_db_gcrun_update(f->db, id2, NULL, "", "Error", 6200, NULL), 0);
    assert_int_equal(wh_db_gcrun_create(f->db, WH_GC_KIND_GC, "Schedule", "", "{}", false, 7000,
                                        &id),
                     0);
    assert_int_equal(wh_db_gcrun_stop(f->db, WH_GC_KIND_GC, id, 7100), 0);
    assert_int_equal(wh_db_gcrun_get(f->db, WH_GC_KIND_GC, id, &r), 0);
    assert_string_equal(r.status, "Stopped");
    assert_int_equal(wh_db_gcrun_stop(f->db, WH_GC_KIND_GC, 99999, 7100), WH_ENOTFOUND);
}

/*
 * Several nodes: a run whose node died (no progress for a lease) is taken
 * over by another node, which skips it while its node lives; a node starting
 * takes back its own at once; a run cut off WH_GC_ATTEMPTS_MAX times ends
 * as Error, one whose stop was asked for as Stopped.
 */
static void test_dbgc__run_taken_over_when_its_node_dies(void **state)
{
    struct fixture *f = *state;
    char path[160];
    snprintf(path, sizeof(path), "%s/wharf.db", f->dir);
    wh_db *b = NULL;
    assert_int_equal(test_db_open(&b, path), 0);
    wh_db_set_node(f->db, "a:5000");
    wh_db_set_node(b, "b:5000");
    int64_t id = 0, n = -1;
    struct wh_gc_run r;
    assert_int_equal(wh_db_gcrun_create(f->db, WH_GC_KIND_GC, "Manual", "admin", "{}", false,
                                        1000, &id), 0);
    assert_int_equal(wh_db_gcrun_claim(f->db, 1000, &r), 0); /* a runs it */
    assert_int_equal(r.attempts, 1);
    r.blobs = 7;
    assert_int_equal(wh_db_gcrun_update(f->db, id, &r, "started\n", NULL, 2000, NULL), 0);
    /* b looks while a writes its progress: nothing to take */
    assert_int_equal(wh_db_gcrun_recover(b, 1500, 2500, false, &n), 0);
    assert_int_equal(n, 0);
    /* a node starting takes back only its own: b has none */
    assert_int_equal(wh_db_gcrun_recover(b, 1500, 2500, true, &n), 0);
    assert_int_equal(n, 0);
    /* a dies: past a lease without progress, b queues it again and takes it over */
    assert_int_equal(wh_db_gcrun_recover(b, 2001, 62001, false, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(wh_db_gcrun_claim(b, 62002, &r), 0);
    assert_int_equal(r.id, id);
    assert_int_equal(r.attempts, 2);
    assert_int_equal(r.blobs, 7); /* its counts so far */
    /* a, only stalled, writes its progress: refused, the run is b's now (a stops) */
    assert_int_equal(wh_db_gcrun_update(f->db, id, NULL, "a again\n", NULL, 62003, NULL),
                     WH_ENOTFOUND);
    char *log = NULL;
    assert_int_equal(wh_db_gcrun_log(b, WH_GC_KIND_GC, id, &log), 0);
    assert_string_equal(log, "started\nattempt 1 of 3 was cut off: the node running it stopped "
                             "(a:5000)\nqueued again: the next node to look takes it over\n");
    free(log);
    /* b dies too and restarts: its own run is taken back at once, however fresh */
    assert_int_equal(wh_db_gcrun_recover(b, 0, 62003, true, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(wh_db_gcrun_claim(f->db, 62004, &r), 0);
    assert_int_equal(r.attempts, 3);
    /* the third death: given up */
    assert_int_equal(wh_db_gcrun_recover(f->db, 0, 62005, true, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(wh_db_gcrun_get(b, WH_GC_KIND_GC, id, &r), 0);
    assert_string_equal(r.status, "Error");
    assert_int_equal(r.end_ms, 62005);
    assert_int_equal(wh_db_gcrun_log(b, WH_GC_KIND_GC, id, &log), 0);
    assert_non_null(strstr(log, "attempt 3 of 3 was cut off"));
    assert_non_null(strstr(log, "gave up after 3 attempts\n"));
    free(log);
    /* a run whose stop was asked for ends Stopped when its node dies */
    assert_int_equal(wh_db_gcrun_create(f->db, WH_GC_KIND_GC, "Manual", "admin", "{}", false,
                                        70000, &id), 0);
    assert_int_equal(wh_db_gcrun_claim(f->db, 70000, &r), 0);
    assert_int_equal(wh_db_gcrun_stop(b, WH_GC_KIND_GC, id, 70001), 0);
    assert_int_equal(wh_db_gcrun_recover(b, 80000, 80001, false, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(wh_db_gcrun_get(b, WH_GC_KIND_GC, id, &r), 0);
    assert_string_equal(r.status, "Stopped");
    wh_db_close(b);
}

/* ---- pushes racing collections ---- */

#define RACE_PUSHES 3000 /* pushes, each racing the collector that runs beside it */
#define RACE_BASE 1000000 /* blob numbers of the race: RACE_BASE + push */

struct race {
    wh_db *db;
    pthread_mutex_t lock; /* guards gone[] and the counts */
    bool gone[RACE_PUSHES]; /* bytes deleted, by push */
    int deletes, stray;   /* deletes of the race's blobs, and of anything else */
    int drained;          /* times the collector found nothing due */
    bool stop;            /* under lock */
    int error;            /* the line of a failed call (asserts belong to the main thread) */
};

static int race_del(const char *digest, void *payload)
{
    struct race *r = payload;
    long n = strtol(digest + strlen("sha256:"), NULL, 10) - RACE_BASE;
    pthread_mutex_lock(&r->lock);
    if (n >= 0 && n < RACE_PUSHES) {
        r->gone[n] = true;
        r->deletes++;
    } else {
        r->stray++;
    }
    pthread_mutex_unlock(&r->lock);
    return 0;
}

static void race_seen(const struct wh_gc_review *rv, void *payload)
{
    (void)rv;
    (void)payload;
}

/* The collector: reviews in small batches, as a run's worker does, until stopped. */
static void *race_collector(void *arg)
{
    struct race *r = arg;
    wh_db_thread_background(true);
    for (;;) {
        pthread_mutex_lock(&r->lock);
        bool stop = r->stop;
        pthread_mutex_unlock(&r->lock);
        if (stop)
            break;
        int nm = 0, nb = 0;
        int64_t now = wh_now_ms();
        if (wh_db_gc_review_manifests(r->db, now, false, 4, 0, race_seen, NULL, &nm) < 0 ||
            wh_db_gc_review_blobs(r->db, now, 4, 0, race_del, r, race_seen, NULL, &nb) < 0) {
            r->error = __LINE__;
            break;
        }
        if (nm + nb == 0) {
            pthread_mutex_lock(&r->lock);
            r->drained++;
            pthread_mutex_unlock(&r->lock);
            struct timespec pause = {.tv_sec = 0, .tv_nsec = 50000};
            nanosleep(&pause, NULL);
        }
    }
    return NULL;
}

/*
 * With no grace delay, a blob is due for review the moment it is linked, so
 * the collector beside the pusher wins many races against the manifest that
 * would reference it (every fourth push waits for it to catch up between
 * its layers and its manifest, so it always does some): thousands of pushes,
 * each of a new layer and a layer of an earlier accepted image. Either the manifest is refused (its new
 * layer was collected) or it is accepted; an accepted manifest's layers are
 * never deleted, the shared one included, and once the collector drains the
 * queue exactly the unreferenced layers are gone.
 */
static void test_dbgc__push_racing_collections_thousands_of_times(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(wh_db_gc_set_delay(f->db, 0), 0);
    struct race *r = calloc(1, sizeof(*r));
    r->db = f->db;
    pthread_mutex_init(&r->lock, NULL);
    static bool accepted[RACE_PUSHES];
    static int shared_of[RACE_PUSHES];
    memset(accepted, 0, sizeof(accepted));
    int last = -1, naccepted = 0;
    pthread_t t;
    pthread_create(&t, NULL, race_collector, r);
    for (int i = 0; i < RACE_PUSHES; i++) {
        char d[80], bd[2][80], td[16];
        const char *bp[2] = {dg(bd[0], RACE_BASE + i), NULL};
        size_t nb = 1;
        shared_of[i] = last;
        if (last >= 0)
            bp[nb++] = dg(bd[1], RACE_BASE + last);
        for (size_t k = 0; k < nb; k++) {
            int rc = wh_db_blob_link(f->db, f->pid, "p/race", bp[k], 100);
            assert_int_equal(rc, 0);
        }
        if (i % 4 == 3) {
            /* the collector, which gives way to this thread and so falls behind, is
             * let catch up now and then: from there on it races the next pushes */
            pthread_mutex_lock(&r->lock);
            int seen = r->drained;
            pthread_mutex_unlock(&r->lock);
            int64_t deadline = wh_now_ms() + 5000;
            while (wh_now_ms() < deadline) {
                pthread_mutex_lock(&r->lock);
                bool caught_up = r->drained > seen + 1;
                pthread_mutex_unlock(&r->lock);
                if (caught_up)
                    break;
                usleep(100);
            }
        }
        snprintf(td, sizeof(td), "t%d", i);
        struct wh_artifact_in a = {.repo = "p/race", .project_id = f->pid,
                                   .digest = dg(d, 5 * RACE_BASE + i), .media_type = IMAGE_MT,
                                   .artifact_type = IMAGE_CFG, .size = 100, .blobs = bp,
                                   .nblobs = nb, .tag = td};
        int rc = wh_db_manifest_put(f->db, &a);
        assert_true(rc == 0 || rc == WH_ENOTFOUND);
        if (rc == 0) {
            accepted[i] = true;
            naccepted++;
            last = i;
        }
    }
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    pthread_mutex_unlock(&r->lock);
    pthread_join(t, NULL);
    assert_int_equal(r->error, 0);
    print_message("%d of %d manifests accepted, %d layers collected while pushing\n",
                  naccepted, RACE_PUSHES, r->deletes);
    /* the race happened both ways */
    assert_true(naccepted > 0);
    assert_true(naccepted < RACE_PUSHES);
    /* what a collection finds unreferenced later goes too; the accepted stay */
    wh_db_thread_background(false);
    for (int round = 0; round < 10000; round++) {
        int nm = 0, nb = 0;
        int64_t now = wh_now_ms();
        assert_int_equal(wh_db_gc_review_manifests(f->db, now, false, 64, 0, race_seen, NULL, &nm), 0);
        assert_int_equal(wh_db_gc_review_blobs(f->db, now, 64, 0, race_del, r, race_seen, NULL, &nb), 0);
        if (nm + nb == 0)
            break;
    }
    assert_int_equal(r->stray, 0);
    int referenced = 0;
    for (int i = 0; i < RACE_PUSHES; i++) {
        bool used = accepted[i];
        for (int j = i + 1; j < RACE_PUSHES && !used; j++)
            used = accepted[j] && shared_of[j] == i;
        if (used) {
            referenced++;
            if (r->gone[i] || !blob_known(f, "p/race", RACE_BASE + i))
                fail_msg("push %d: a layer of an accepted manifest was collected", i);
        } else {
            if (!r->gone[i] || blob_known(f, "p/race", RACE_BASE + i))
                fail_msg("push %d: an unreferenced layer was left", i);
        }
    }
    assert_int_equal(r->deletes, RACE_PUSHES - referenced); /* each deleted once */
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* ---- several nodes on one run ---- */

#define MANY 400 /* unreferenced blobs the two nodes collect */

struct node_work {
    wh_db *db;
    int64_t id;            /* the run */
    bool holder;           /* flushes with wh_db_gcrun_update, else wh_db_gcrun_help */
    const char *name;
    pthread_mutex_t *lock; /* guards hits */
    int *hits;             /* storage deletes per blob number, both nodes */
    pthread_barrier_t *go; /* the holder starts after the helper's first batch */
    struct wh_gc_run add;  /* done since the last flush */
    int64_t blobs;         /* done in all */
    int flushes, batches;
    int error;             /* a failed call (asserts belong to the main thread) */
};

static int node_del(const char *digest, void *payload)
{
    struct node_work *w = payload;
    long n = strtol(digest + strlen("sha256:"), NULL, 10);
    pthread_mutex_lock(w->lock);
    if (n >= 0 && n < 2 * MANY)
        w->hits[n]++;
    pthread_mutex_unlock(w->lock);
    return 0;
}

static void node_seen(const struct wh_gc_review *r, void *payload)
{
    struct node_work *w = payload;
    if (r->deleted) {
        w->add.blobs++;
        w->add.bytes += (int64_t)r->size;
        w->blobs++;
    }
}

/* Writes what `w` did since the last flush: counts as increments, one log line. */
static int node_flush(struct node_work *w, const char *status, struct wh_gc_run *now)
{
    char line[128];
    snprintf(line, sizeof(line), "%s: %lld blobs\n", w->name, (long long)w->add.blobs);
    int error = w->holder ? wh_db_gcrun_update(w->db, w->id, &w->add, line, status,
                                               wh_now_ms(), now)
                          : wh_db_gcrun_help(w->db, w->id, &w->add, line, now);
    if (error == 0) {
        memset(&w->add, 0, sizeof(w->add));
        w->flushes++;
    }
    return error;
}

static void *node_main(void *arg)
{
    struct node_work *w = arg;
    if (w->holder)
        pthread_barrier_wait(w->go);
    for (;;) {
        int n = 0;
        if (wh_db_gc_review_blobs(w->db, LATER, 4, 0, node_del, w, node_seen, w, &n) < 0) {
            w->error = __LINE__;
            break;
        }
        if (!w->holder && w->batches == 0)
            pthread_barrier_wait(w->go);
        if (n == 0)
            break;
        /* progress now and then, as a run's thread writes it; the helper keeps its last
         * counts for after the holder's end */
        if (++w->batches % 7 == 0 && node_flush(w, NULL, NULL) < 0) {
            w->error = __LINE__;
            break;
        }
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 2000000}; /* as a worker gives way */
        nanosleep(&pause, NULL);
    }
    return NULL;
}

/*
 * Node a holds a run and node b helps it: both claim batches of the shared
 * queue at the same time (threads on two handles, as two nodes on one
 * database). Every unreferenced blob's bytes are deleted exactly once, the
 * referenced ones never; the run's counts are the exact sums of both nodes'
 * increments, what the helper adds after the holder ended the run included,
 * and the log holds every line both appended.
 */
static void test_dbgc__two_nodes_work_one_run_counts_add_up(void **state)
{
    struct fixture *f = *state;
    char path[160], d[80];
    snprintf(path, sizeof(path), "%s/wharf.db", f->dir);
    wh_db *b = NULL;
    assert_int_equal(test_db_open(&b, path), 0);
    wh_db_set_node(f->db, "a:5000");
    wh_db_set_node(b, "b:5000");
    int kept[] = {MANY + 1, MANY + 2};
    push(f, "p/keep", MANY + 3, kept, 2, NULL, 0, 0, "v1");
    int64_t bytes = 0;
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(wh_db_blob_link(f->db, f->pid, "p/a", dg(d, i), 10 + i), 0);
        bytes += 10 + i;
    }
    int64_t id = 0;
    struct wh_gc_run r, now;
    assert_int_equal(wh_db_gcrun_create(f->db, WH_GC_KIND_GC, "Manual", "admin",
                                        "{\"workers\":2}", false, wh_now_ms(), &id), 0);
    assert_int_equal(wh_db_gcrun_claim(f->db, wh_now_ms(), &r), 0);
    /* b sees a run to help (a's, fresh, with reviews due); a does not help its own */
    assert_int_equal(wh_db_gcrun_helpable(b, WH_GC_KIND_GC, wh_now_ms() - HOUR, LATER, &r), 0);
    assert_int_equal(r.id, id);
    assert_int_equal(wh_db_gcrun_helpable(f->db, WH_GC_KIND_GC, wh_now_ms() - HOUR, LATER, &r),
                     WH_ENOTFOUND);

    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 2);
    int *hits = calloc(2 * MANY, sizeof(int));
    assert_non_null(hits);
    struct node_work wa = {.db = f->db, .id = id, .holder = true, .name = "a", .lock = &lock,
                          .hits = hits, .go = &go};
    struct node_work wb = {.db = b, .id = id, .holder = false, .name = "b", .lock = &lock,
                          .hits = hits, .go = &go};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&tb, NULL, node_main, &wb), 0);
    assert_int_equal(pthread_create(&ta, NULL, node_main, &wa), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&go);
    assert_int_equal(wa.error, 0);
    assert_int_equal(wb.error, 0);
    assert_true(wa.blobs > 0); /* both worked the run */
    assert_true(wb.blobs > 0);
    assert_int_equal(wa.blobs + wb.blobs, MANY);
    for (int i = 0; i < MANY; i++)
        assert_int_equal(hits[i], 1); /* never deleted twice */
    assert_int_equal(hits[MANY + 1] + hits[MANY + 2] + hits[MANY + 3], 0);

    /* a ends the run; b's last batch is counted after the end, and b learns it ended */
    assert_int_equal(node_flush(&wa, "Success", &now), 0);
    assert_string_equal(now.status, "Success");
    int64_t late = wb.add.blobs;
    assert_int_equal(node_flush(&wb, NULL, &now), 0);
    assert_string_equal(now.status, "Success");
    assert_int_equal(wh_db_gcrun_get(b, WH_GC_KIND_GC, id, &r), 0);
    assert_string_equal(r.status, "Success");
    assert_int_equal(r.blobs, MANY);
    assert_int_equal(r.bytes, bytes);
    /* the log: every line of both, in the order written */
    char *log = NULL;
    assert_int_equal(wh_db_gcrun_log(b, WH_GC_KIND_GC, id, &log), 0);
    int lines_a = 0, lines_b = 0;
    for (const char *p = log; *p; p = strchr(p, '\n') + 1) {
        lines_a += strncmp(p, "a: ", 3) == 0;
        lines_b += strncmp(p, "b: ", 3) == 0;
        assert_non_null(strchr(p, '\n'));
    }
    assert_int_equal(lines_a, wa.flushes);
    assert_int_equal(lines_b, wb.flushes);
    char last[64];
    snprintf(last, sizeof(last), "b: %lld blobs\n", (long long)late);
    assert_true(strlen(log) >= strlen(last));
    assert_string_equal(log + strlen(log) - strlen(last), last);
    free(log);
    /* referenced blobs stay; nothing is left to help with */
    assert_true(blob_known(f, "p/keep", MANY + 1));
    assert_false(blob_known(f, "p/a", 0));
    assert_int_equal(wh_db_gcrun_helpable(b, WH_GC_KIND_GC, 0, LATER, &r), WH_ENOTFOUND);
    free(hits);
    wh_db_close(b);
}

/*
 * Which runs a node helps: only another server's Running run whose holder
 * writes progress, with no stop asked for and reviews due; not `wharf gc`'s.
 * The stored log stops at WH_GC_LOG_MAX with one line saying so, the counts
 * go on.
 */
static void test_dbgc__which_runs_are_helped_and_the_log_cap(void **state)
{
    struct fixture *f = *state;
    char path[160], d[80];
    snprintf(path, sizeof(path), "%s/wharf.db", f->dir);
    wh_db *b = NULL;
    assert_int_equal(test_db_open(&b, path), 0);
    wh_db_set_node(b, "b:5000");
    struct wh_gc_run r, now;
    int64_t id = 0;
    /* wharf gc's run (holder ""): its own process's */
    assert_int_equal(wh_db_gcrun_create(f->db, WH_GC_KIND_GC, "CLI", "", "{}", true, 1000, &id),
                     0);
    assert_int_equal(wh_db_blob_link(f->db, f->pid, "p/a", dg(d, 1), 10), 0);
    assert_int_equal(wh_db_gcrun_helpable(b, WH_GC_KIND_GC, 0, LATER, &r), WH_ENOTFOUND);
    assert_int_equal(wh_db_gcrun_update(f->db, id, NULL, "", "Success", 1100, NULL), 0);
    wh_db_set_node(f->db, "a:5000");
    assert_int_equal(wh_db_gcrun_create(f->db, WH_GC_KIND_GC, "Manual", "admin", "{}", false,
                                        2000, &id), 0);
    assert_int_equal(wh_db_gcrun_claim(f->db, 2000, &r), 0);
    /* nothing due yet; then due; a holder silent for a lease is not helped */
    assert_int_equal(wh_db_gcrun_helpable(b, WH_GC_KIND_GC, 1000, wh_now_ms(), &r),
                     WH_ENOTFOUND);
    assert_int_equal(wh_db_gcrun_helpable(b, WH_GC_KIND_GC, 1000, LATER, &r), 0);
    assert_int_equal(wh_db_gcrun_helpable(b, WH_GC_KIND_GC, 2001, LATER, &r), WH_ENOTFOUND);
    /* the log's cap */
    size_t chunk = WH_GC_LOG_MAX / 3;
    char *text = malloc(chunk + 1);
    assert_non_null(text);
    memset(text, 'a', chunk - 1);
    text[chunk - 1] = '\n';
    text[chunk] = '\0';
    struct wh_gc_run one = {.blobs = 1, .bytes = 5};
    for (int i = 0; i < 4; i++)
        assert_int_equal(wh_db_gcrun_help(b, id, &one, text, NULL), 0);
    assert_int_equal(wh_db_gcrun_update(f->db, id, &one, "short\n", NULL, 2100, &now), 0);
    assert_int_equal(now.blobs, 5);
    assert_int_equal(now.bytes, 25);
    char *log = NULL;
    assert_int_equal(wh_db_gcrun_log(b, WH_GC_KIND_GC, id, &log), 0);
    const char *cut = "... (the log is cut here; the counts go on)\n";
    assert_int_equal(strlen(log), 2 * chunk + strlen(cut));
    assert_true(strlen(log) <= WH_GC_LOG_MAX);
    assert_string_equal(log + 2 * chunk, cut);
    free(log);
    free(text);
    /* a stop asked for: not helped, and a helper's progress write says so */
    assert_int_equal(wh_db_gcrun_stop(f->db, WH_GC_KIND_GC, id, 2200), 0);
    assert_int_equal(wh_db_gcrun_helpable(b, WH_GC_KIND_GC, 1000, LATER, &r), WH_ENOTFOUND);
    assert_int_equal(wh_db_gcrun_help(b, id, NULL, "", &now), 0);
    assert_true(now.stop_requested);
    wh_db_close(b);
}

static int audit_seen(const struct wh_audit *a, void *payload)
{
    (void)payload;
    assert_int_equal(a->op_time_ms, 9000);
    return 0;
}

static void test_dbgc__audit_purge_by_operation(void **state)
{
    struct fixture *f = *state;
    const char *ops[] = {"create", "pull", "delete", "pull"};
    for (int i = 0; i < 4; i++) {
        struct wh_audit a = {.op_time_ms = 1000 + i, .username = "u", .resource = "r",
                             .resource_type = "artifact", .operation = ops[i], .result = true};
        assert_int_equal(wh_db_audit_add(f->db, &a), 0);
    }
    struct wh_audit recent = {.op_time_ms = 9000, .username = "u", .resource = "r",
                              .resource_type = "artifact", .operation = "pull", .result = true};
    assert_int_equal(wh_db_audit_add(f->db, &recent), 0);
    int64_t n = 0;
    const char *pull[] = {"pull"};
    assert_int_equal(wh_db_audit_purge_ops(f->db, 5000, pull, 1, true, INT64_MAX, &n), 0);
    assert_int_equal(n, 2); /* a dry run counts */
    assert_int_equal(wh_db_audit_purge_ops(f->db, 5000, pull, 1, false, 1, &n), 0);
    assert_int_equal(n, 1); /* batches */
    assert_int_equal(wh_db_audit_purge_ops(f->db, 5000, pull, 1, false, 1000, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(wh_db_audit_purge_ops(f->db, 5000, NULL, 0, false, 1000, &n), 0);
    assert_int_equal(n, 2); /* no operations named: all of them */
    int64_t total = 0;
    assert_int_equal(wh_db_audit_list(f->db, 0, NULL, NULL, 0, 10, audit_seen, NULL, &total), 0);
    assert_int_equal(total, 1); /* the recent pull */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dbgc__unreferenced_blob_waits_for_the_delay, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dbgc__referenced_blobs_stay_shared_ones_too, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dbgc__untagged_artifacts_only_when_asked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_dbgc__deleting_an_index_takes_its_unreferenced_children, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbgc__referrers_live_and_die_with_their_subject,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbgc__a_push_postpones_the_review, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbgc__failed_deletes_retry_with_backoff, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dbgc__a_new_blob_row_needs_its_bytes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dbgc__preview_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbgc__run_taken_over_when_its_node_dies, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dbgc__runs_one_at_a_time_with_history, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dbgc__two_nodes_work_one_run_counts_add_up, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dbgc__which_runs_are_helped_and_the_log_cap, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dbgc__audit_purge_by_operation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbgc__push_racing_collections_thousands_of_times,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
