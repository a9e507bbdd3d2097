/*
 * Unit tests for the scan job queue of db/ (db_scan.c, schema 7): a manifest
 * commit queues a scan of an image when the project has auto_scan on (and of
 * nothing else), a job is taken by one worker only, a second request is
 * refused while one is pending or running, stop and finish race safely, and
 * recovery after a crash puts Running jobs back in the queue, giving up on
 * one that was cut off too often; a failed attempt whose cause may pass
 * waits for its backoff and is tried again, up to the last attempt.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "db_fixture.h"
#include "db/db.h"

#define IMAGE_MT "application/vnd.oci.image.manifest.v1+json"
#define IMAGE_CFG "application/vnd.oci.image.config.v1+json"
#define LAYER "sha256:1111111111111111111111111111111111111111111111111111111111111111"

struct fixture {
    char dir[64];
    wh_db *db;
    int64_t auto_pid, plain_pid;
};

static int64_t project(wh_db *db, const char *name, const char *metadata)
{
    struct wh_project_info in;
    memset(&in, 0, sizeof(in));
    snprintf(in.p.name, sizeof(in.p.name), "%s", name);
    snprintf(in.metadata, sizeof(in.metadata), "%s", metadata);
    in.storage_limit = -1;
    int64_t id = 0;
    assert_int_equal(wh_db_project_insert(db, &in, &id), 0);
    return id;
}

/* Commits a manifest `digest` (config type `cfg`) in repository `repo`; its artifact id. */
static int64_t push(wh_db *db, int64_t pid, const char *repo, const char *digest, const char *cfg)
{
    const char *blobs[] = {LAYER};
    assert_int_equal(wh_db_blob_link(db, pid, repo, LAYER, 10), 0);
    struct wh_artifact_in a = {.repo = repo, .project_id = pid, .digest = digest,
                               .media_type = IMAGE_MT, .artifact_type = cfg, .size = 100,
                               .blobs = blobs, .nblobs = 1, .tag = "t"};
    assert_int_equal(wh_db_manifest_put(db, &a), 0);
    struct wh_manifest_ref ref;
    assert_int_equal(wh_db_manifest_get(db, repo, digest, true, &ref), 0);
    return ref.artifact_id;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/wharf-dbscan-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/wharf.db", f->dir);
    assert_int_equal(test_db_open(&f->db, path), 0);
    f->auto_pid = project(f->db, "auto", "{\"auto_scan\":\"TRUE\"}");
    f->plain_pid = project(f->db, "plain", "{\"auto_scan\":\"false\"}");
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

static const char *const D1 =
    "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char *const D2 =
    "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
static const char *const D3 =
    "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

static void test_dbscan__auto_scan_queues_images_only(void **state)
{
    struct fixture *f = *state;
    struct wh_scan_job j;
    int64_t img = push(f->db, f->auto_pid, "auto/app", D1, IMAGE_CFG);
    int64_t art = push(f->db, f->auto_pid, "auto/app", D2, "application/vnd.example.thing");
    int64_t plain = push(f->db, f->plain_pid, "plain/app", D3, IMAGE_CFG);
    assert_int_equal(wh_db_scan_get(f->db, img, &j), 0);
    assert_string_equal(j.status, WH_SCAN_PENDING);
    assert_string_equal(j.digest, D1);
    assert_int_equal(strlen(j.report_id), 32);
    assert_int_equal(wh_db_scan_get(f->db, art, &j), WH_ENOTFOUND);
    assert_int_equal(wh_db_scan_get(f->db, plain, &j), WH_ENOTFOUND);
    /* metadata that is not JSON (never written by wharf) does not fail a push */
    int64_t odd = project(f->db, "odd", "{not json");
    int64_t oa = push(f->db, odd, "odd/app", D1, IMAGE_CFG);
    assert_int_equal(wh_db_scan_get(f->db, oa, &j), WH_ENOTFOUND);
    /* pushed again: the job is kept, not queued twice */
    char id[WH_SCAN_ID_MAX];
    assert_int_equal(wh_db_scan_get(f->db, img, &j), 0);
    snprintf(id, sizeof(id), "%s", j.report_id);
    push(f->db, f->auto_pid, "auto/app", D1, IMAGE_CFG);
    assert_int_equal(wh_db_scan_get(f->db, img, &j), 0);
    assert_string_equal(j.report_id, id);
}

/* What the queued callback saw: how often it ran, and whether the job of
 * `repo`@`digest` could be read through another handle then (committed). */
struct queued_seen {
    wh_db *other;
    const char *repo, *digest;
    int calls, visible;
};

static void on_queued(void *payload)
{
    struct queued_seen *q = payload;
    struct wh_manifest_ref ref;
    struct wh_scan_job j;
    q->calls++;
    if (wh_db_manifest_get(q->other, q->repo, q->digest, true, &ref) == 0 &&
        wh_db_scan_get(q->other, ref.artifact_id, &j) == 0)
        q->visible++;
}

static void test_dbscan__push_that_queues_calls_back_after_commit(void **state)
{
    struct fixture *f = *state;
    char path[128], msg[256];
    struct queued_seen q = {0};
    struct wh_scan_job j;
    int64_t copied = 0;
    snprintf(path, sizeof(path), "%s/wharf.db", f->dir);
    assert_int_equal(test_db_open(&q.other, path), 0);
    wh_db_on_scan_queued(f->db, on_queued, &q);
    /* not an image, not an auto_scan project: no job, no call */
    push(f->db, f->auto_pid, "auto/app", D2, "application/vnd.example.thing");
    push(f->db, f->plain_pid, "plain/app", D3, IMAGE_CFG);
    assert_int_equal(q.calls, 0);
    /* an image into an auto_scan project: one call, its job committed by then */
    q.repo = "auto/app";
    q.digest = D1;
    push(f->db, f->auto_pid, "auto/app", D1, IMAGE_CFG);
    assert_int_equal(q.calls, 1);
    assert_int_equal(q.visible, 1);
    /* pushed again: the job is kept, nothing queued, no call */
    push(f->db, f->auto_pid, "auto/app", D1, IMAGE_CFG);
    assert_int_equal(q.calls, 1);
    /* a copy into the auto_scan project queues the image it brings */
    int64_t plain_img = push(f->db, f->plain_pid, "plain/app2", D1, IMAGE_CFG);
    assert_int_equal(q.calls, 1);
    q.repo = "auto/copied";
    assert_int_equal(wh_db_artifact_copy(f->db, plain_img, f->auto_pid, "auto/copied", msg,
                                         sizeof(msg), &copied),
                     0);
    assert_int_equal(q.calls, 2);
    assert_int_equal(q.visible, 2);
    assert_int_equal(wh_db_scan_get(q.other, copied, &j), 0);
    /* no callback: nothing called */
    wh_db_on_scan_queued(f->db, NULL, NULL);
    push(f->db, f->auto_pid, "auto/other", D3, IMAGE_CFG);
    assert_int_equal(q.calls, 2);
    wh_db_close(q.other);
}

static void test_dbscan__lifecycle(void **state)
{
    struct fixture *f = *state;
    struct wh_scan_job j, k;
    char status[16] = "";
    int64_t a = push(f->db, f->plain_pid, "plain/app", D1, IMAGE_CFG);
    assert_int_equal(wh_db_scan_claim(f->db, 1, &j), WH_ENOTFOUND);
    assert_int_equal(wh_db_scan_stop(f->db, a, 1, status), WH_ENOTFOUND);
    assert_int_equal(wh_db_scan_request(f->db, a, "r1", 10, status), 0);
    assert_int_equal(wh_db_scan_request(f->db, a, "r2", 11, status), WH_ECONFLICT);
    assert_string_equal(status, "Pending");
    assert_int_equal(wh_db_scan_request(f->db, 999, "r3", 11, status), WH_ENOTFOUND);

    /* one worker takes it; nothing is left for another */
    assert_int_equal(wh_db_scan_claim(f->db, 20, &j), 0);
    assert_string_equal(j.report_id, "r1");
    assert_string_equal(j.status, WH_SCAN_RUNNING);
    assert_int_equal(j.attempts, 1);
    assert_int_equal(j.start_ms, 20);
    assert_int_equal(wh_db_scan_claim(f->db, 21, &k), WH_ENOTFOUND);
    assert_int_equal(wh_db_scan_request(f->db, a, "r2", 22, status), WH_ECONFLICT);
    assert_string_equal(status, "Running");

    /* a crash: back to Pending, taken again */
    int64_t n = 0;
    assert_int_equal(wh_db_scan_recover(f->db, 25, true, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(wh_db_scan_claim(f->db, 30, &j), 0);
    assert_int_equal(j.attempts, 2);
    assert_int_equal(wh_db_scan_finish(f->db, a, "r1", WH_SCAN_SUCCESS, "High",
                                       "{\"total\":1,\"fixable\":0,\"summary\":{\"High\":1}}",
                                       "{\"vulnerabilities\":[]}", "", 40),
                     0);
    assert_int_equal(wh_db_scan_get(f->db, a, &j), 0);
    assert_string_equal(j.status, WH_SCAN_SUCCESS);
    assert_string_equal(j.severity, "High");
    assert_int_equal(j.end_ms, 40);
    char *text = NULL;
    assert_int_equal(wh_db_scan_report(f->db, a, &text), 0);
    assert_string_equal(text, "{\"vulnerabilities\":[]}");
    free(text);
    assert_int_equal(wh_db_scan_stop(f->db, a, 41, status), WH_ECONFLICT);
    assert_string_equal(status, "Success");

    /* stopped while running: the worker's result is dropped, the old report kept */
    assert_int_equal(wh_db_scan_request(f->db, a, "r4", 50, status), 0);
    assert_int_equal(wh_db_scan_claim(f->db, 51, &j), 0);
    assert_int_equal(wh_db_scan_stop(f->db, a, 52, status), 0);
    assert_int_equal(wh_db_scan_finish(f->db, a, "r4", WH_SCAN_SUCCESS, "Low", "{}", "{}", "", 53),
                     WH_ENOTFOUND);
    assert_int_equal(wh_db_scan_get(f->db, a, &j), 0);
    assert_string_equal(j.status, WH_SCAN_STOPPED);
    assert_int_equal(wh_db_scan_report(f->db, a, &text), 0);
    assert_string_equal(text, "{\"vulnerabilities\":[]}");
    free(text);
    assert_int_equal(wh_db_scan_log(f->db, a, "r4", &text), 0);
    assert_string_equal(text, "stopped by request");
    free(text);
    assert_int_equal(wh_db_scan_log(f->db, a, "r1", &text), WH_ENOTFOUND);
}

/*
 * Two nodes on one queue: a node's running job is left alone while its lease
 * holds (renewed), taken back once it ended (the node died), and a node
 * starting takes back only its own.
 */
static void test_dbscan__leases_across_nodes(void **state)
{
    struct fixture *f = *state;
    struct wh_scan_job j, k;
    char status[16], path[128];
    snprintf(path, sizeof(path), "%s/wharf.db", f->dir);
    wh_db *b = NULL;
    assert_int_equal(test_db_open(&b, path), 0);
    wh_db_set_node(f->db, "a:5000");
    wh_db_set_node(b, "b:5000");
    int64_t x = push(f->db, f->plain_pid, "plain/x", D1, IMAGE_CFG);
    int64_t y = push(f->db, f->plain_pid, "plain/y", D2, IMAGE_CFG);
    assert_int_equal(wh_db_scan_request(f->db, x, "rx", 10, status), 0);
    assert_int_equal(wh_db_scan_request(f->db, y, "ry", 11, status), 0);
    assert_int_equal(wh_db_scan_claim(f->db, 1000, &j), 0); /* node a runs x */
    assert_int_equal(wh_db_scan_claim(b, 1000, &k), 0);     /* node b runs y */
    assert_int_equal(j.artifact_id, x);
    assert_int_equal(k.artifact_id, y);

    /* b starts again: it takes back its own job, never a's, whose lease holds */
    int64_t n = -1;
    assert_int_equal(wh_db_scan_recover(b, 2000, true, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(wh_db_scan_get(f->db, x, &j), 0);
    assert_string_equal(j.status, WH_SCAN_RUNNING);
    assert_int_equal(wh_db_scan_get(f->db, y, &k), 0);
    assert_string_equal(k.status, WH_SCAN_PENDING);

    /* a renews while it scans: b's periodic look finds nothing to take back */
    assert_int_equal(wh_db_scan_renew(f->db, 1000 + WH_SCAN_LEASE_MS - 10), 0);
    assert_int_equal(wh_db_scan_recover(b, 1000 + WH_SCAN_LEASE_MS + 10, false, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(wh_db_scan_get(f->db, x, &j), 0);
    assert_string_equal(j.status, WH_SCAN_RUNNING);

    /* a dies (no more renewals): once its lease ended, b takes the job back and runs it */
    assert_int_equal(wh_db_scan_recover(b, 1000 + 2 * WH_SCAN_LEASE_MS - 20, false, &n), 0);
    assert_int_equal(n, 0); /* not yet */
    assert_int_equal(wh_db_scan_recover(b, 1000 + 2 * WH_SCAN_LEASE_MS, false, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(wh_db_scan_claim(b, 1000 + 2 * WH_SCAN_LEASE_MS + 1, &j), 0);
    assert_int_equal(wh_db_scan_claim(b, 1000 + 2 * WH_SCAN_LEASE_MS + 2, &k), 0);
    assert_true((j.artifact_id == x && k.artifact_id == y) ||
                (j.artifact_id == y && k.artifact_id == x));
    assert_int_equal(wh_db_scan_get(f->db, x, &j), 0);
    assert_int_equal(j.attempts, 2);
    wh_db_close(b);
}

/* A lease set on the handle (scan.lease) is the one claims and renewals give. */
static void test_dbscan__lease_length_is_the_handles(void **state)
{
    struct fixture *f = *state;
    struct wh_scan_job j;
    char status[16], path[128];
    snprintf(path, sizeof(path), "%s/wharf.db", f->dir);
    wh_db *b = NULL;
    assert_int_equal(test_db_open(&b, path), 0);
    assert_int_equal(wh_db_scan_lease(b), WH_SCAN_LEASE_MS); /* the default */
    wh_db_set_scan_lease(f->db, 3000);
    wh_db_set_scan_lease(b, 3000);
    assert_int_equal(wh_db_scan_lease(b), 3000);
    wh_db_set_node(f->db, "a:5000");
    wh_db_set_node(b, "b:5000");
    int64_t x = push(f->db, f->plain_pid, "plain/x", D1, IMAGE_CFG);
    assert_int_equal(wh_db_scan_request(f->db, x, "rx", 10, status), 0);
    assert_int_equal(wh_db_scan_claim(f->db, 1000, &j), 0); /* held until 4000 */
    int64_t n = -1;
    assert_int_equal(wh_db_scan_recover(b, 4000, false, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(wh_db_scan_renew(f->db, 3000), 0); /* now until 6000 */
    assert_int_equal(wh_db_scan_recover(b, 6000, false, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(wh_db_scan_recover(b, 6001, false, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(wh_db_scan_get(f->db, x, &j), 0);
    assert_string_equal(j.status, WH_SCAN_PENDING);
    wh_db_set_scan_lease(b, 0); /* 0: the default again */
    assert_int_equal(wh_db_scan_lease(b), WH_SCAN_LEASE_MS);
    wh_db_close(b);
}

static void test_dbscan__crash_loop_ends_in_error(void **state)
{
    struct fixture *f = *state;
    struct wh_scan_job j;
    char status[16];
    int64_t a = push(f->db, f->plain_pid, "plain/app", D1, IMAGE_CFG);
    assert_int_equal(wh_db_scan_request(f->db, a, "r1", 1, status), 0);
    int64_t n = 0;
    wh_db_set_node(f->db, "a:5000");
    for (int i = 1; i <= WH_SCAN_ATTEMPTS_MAX; i++) {
        assert_int_equal(wh_db_scan_claim(f->db, 10 * i, &j), 0);
        assert_int_equal(j.attempts, i);
        assert_int_equal(wh_db_scan_recover(f->db, 10 * i + 1, true, &n), 0);
        if (i < WH_SCAN_ATTEMPTS_MAX) { /* due again at once: the lease made it wait */
            assert_int_equal(n, 1);
            assert_int_equal(wh_db_scan_get(f->db, a, &j), 0);
            assert_string_equal(j.status, WH_SCAN_PENDING);
            assert_int_equal(j.due_ms, 10 * i + 1);
        }
    }
    assert_int_equal(n, 0);
    assert_int_equal(wh_db_scan_get(f->db, a, &j), 0);
    assert_string_equal(j.status, WH_SCAN_ERROR);
    char *log = NULL;
    assert_int_equal(wh_db_scan_log(f->db, a, "r1", &log), 0);
    /* a line per attempt cut off, naming the node, then the end */
    assert_non_null(strstr(log, "attempt 1 of 5 was cut off: the node running it stopped "
                                "(a:5000)\n"));
    assert_non_null(strstr(log, "attempt 5 of 5 was cut off"));
    assert_non_null(strstr(log, "gave up after 5 attempts"));
    free(log);
    assert_int_equal(wh_db_scan_claim(f->db, 100, &j), WH_ENOTFOUND);
    /* deleting the artifact takes its job with it */
    assert_int_equal(wh_db_manifest_delete(f->db, "plain/app", D1), 0);
    assert_int_equal(wh_db_scan_get(f->db, a, &j), WH_ENOTFOUND);
}

/*
 * A failed attempt whose cause may pass: the job waits Pending for its
 * backoff (doubled each time) while other jobs are taken, is taken again
 * once due, and ends in Error after the last attempt with a log of each.
 */
static void test_dbscan__retry_with_backoff(void **state)
{
    struct fixture *f = *state;
    struct wh_scan_job j;
    char status[16] = "";
    int64_t due = 0;
    wh_db_set_scan_retry(f->db, 3, 1000);
    assert_int_equal(wh_db_scan_attempts(f->db), 3);
    assert_int_equal(wh_db_scan_retry_delay(f->db, 1), 1000);
    assert_int_equal(wh_db_scan_retry_delay(f->db, 2), 2000);
    assert_int_equal(wh_db_scan_retry_delay(f->db, 30), WH_SCAN_RETRY_CAP_MS);
    int64_t a = push(f->db, f->plain_pid, "plain/a", D1, IMAGE_CFG);
    int64_t b = push(f->db, f->plain_pid, "plain/b", D2, IMAGE_CFG);
    assert_int_equal(wh_db_scan_request(f->db, a, "ra", 10, status), 0);
    assert_int_equal(wh_db_scan_request(f->db, b, "rb", 20, status), 0);

    /* attempt 1 at a fails: Pending, due one delay later */
    assert_int_equal(wh_db_scan_claim(f->db, 100, &j), 0);
    assert_int_equal(j.artifact_id, a);
    assert_int_equal(wh_db_scan_retry(f->db, a, "ra", "storage: connection refused", 150, status,
                                      &due), 0);
    assert_string_equal(status, WH_SCAN_PENDING);
    assert_int_equal(due, 1150);
    assert_int_equal(wh_db_scan_get(f->db, a, &j), 0);
    assert_string_equal(j.status, WH_SCAN_PENDING);
    assert_int_equal(j.due_ms, 1150);
    /* a second request is still refused: the scan is Pending */
    assert_int_equal(wh_db_scan_request(f->db, a, "rx", 151, status), WH_ECONFLICT);
    assert_string_equal(status, WH_SCAN_PENDING);
    /* b is taken meanwhile; a not before its time */
    assert_int_equal(wh_db_scan_claim(f->db, 200, &j), 0);
    assert_int_equal(j.artifact_id, b);
    assert_int_equal(wh_db_scan_claim(f->db, 1149, &j), WH_ENOTFOUND);
    assert_int_equal(wh_db_scan_claim(f->db, 1150, &j), 0);
    assert_int_equal(j.artifact_id, a);
    assert_int_equal(j.attempts, 2);

    /* attempt 2 fails: twice the delay; a retry of an old attempt changes nothing */
    assert_int_equal(wh_db_scan_retry(f->db, a, "rz", "x", 1200, status, &due), WH_ENOTFOUND);
    assert_int_equal(wh_db_scan_retry(f->db, a, "ra", "scanner s: get metadata: refused", 1200,
                                      status, &due), 0);
    assert_int_equal(due, 3200);
    assert_int_equal(wh_db_scan_claim(f->db, 3199, &j), WH_ENOTFOUND);
    assert_int_equal(wh_db_scan_claim(f->db, 3200, &j), 0);
    assert_int_equal(j.attempts, 3);

    /* attempt 3 of 3 fails: Error, the log telling each attempt */
    assert_int_equal(wh_db_scan_retry(f->db, a, "ra", "storage: timeout", 3300, status, &due), 0);
    assert_string_equal(status, WH_SCAN_ERROR);
    assert_int_equal(due, 0);
    assert_int_equal(wh_db_scan_get(f->db, a, &j), 0);
    assert_string_equal(j.status, WH_SCAN_ERROR);
    assert_int_equal(j.end_ms, 3300);
    char *log = NULL;
    assert_int_equal(wh_db_scan_log(f->db, a, "ra", &log), 0);
    assert_string_equal(log, "attempt 1 of 3 failed: storage: connection refused\n"
                             "retried in 1 s\n"
                             "attempt 2 of 3 failed: scanner s: get metadata: refused\n"
                             "retried in 2 s\n"
                             "attempt 3 of 3 failed: storage: timeout\n"
                             "gave up after 3 attempts\n");
    free(log);
    assert_int_equal(wh_db_scan_claim(f->db, 99999, &j), WH_ENOTFOUND);

    /* a new request starts over: attempts, due time and log */
    assert_int_equal(wh_db_scan_request(f->db, a, "rn", 4000, status), 0);
    assert_int_equal(wh_db_scan_claim(f->db, 4000, &j), 0);
    assert_int_equal(j.attempts, 1);
    assert_int_equal(wh_db_scan_log(f->db, a, "rn", &log), 0);
    assert_string_equal(log, "");
    free(log);
    /* stopped while waiting for its retry: Stopped, never taken again */
    assert_int_equal(wh_db_scan_retry(f->db, a, "rn", "db busy", 4100, status, &due), 0);
    assert_int_equal(wh_db_scan_stop(f->db, a, 4200, status), 0);
    assert_int_equal(wh_db_scan_claim(f->db, 99999, &j), WH_ENOTFOUND);
    /* a UTF-8 cause longer than the line keeps whole characters */
    char big[1200];
    for (size_t i = 0; i + 2 < sizeof(big); i += 2)
        memcpy(big + i, "\xc3\xa9", 2);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(wh_db_scan_request(f->db, a, "ru", 5000, status), 0);
    assert_int_equal(wh_db_scan_claim(f->db, 5000, &j), 0);
    assert_int_equal(wh_db_scan_retry(f->db, a, "ru", big, 5001, status, &due), 0);
    assert_int_equal(wh_db_scan_log(f->db, a, "ru", &log), 0);
    const char *q = strstr(log, "failed: ");
    assert_non_null(q);
    assert_true(strstr(log, "\nretried in") - (q + 8) == 700);
    free(log);
}

/* The claim reads the index of due Pending jobs, in its order (no sort, no scan). */
static void test_dbscan__claim_plan(void **state)
{
    struct fixture *f = *state;
    static const char inner[] = "SELECT artifact_id FROM scan_job WHERE status = 'Pending'"
                                " AND due_ms <= 5 ORDER BY due_ms, artifact_id LIMIT 1";
    char path[128], plan[4096] = "";
    snprintf(path, sizeof(path), "%s/wharf.db", f->dir);
    if (test_db_pg()) {
        char *target = test_db_target(path);
        PGconn *h = test_db_pg_connect(target);
        free(target);
        PQclear(PQexec(h, "SET enable_seqscan = off"));
        char q[512];
        snprintf(q, sizeof(q), "EXPLAIN %s", inner);
        PGresult *r = PQexec(h, q);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        for (int i = 0; i < PQntuples(r); i++) {
            strncat(plan, PQgetvalue(r, i, 0), sizeof(plan) - strlen(plan) - 2);
            strcat(plan, "\n");
        }
        PQclear(r);
        PQfinish(h);
        if (!strstr(plan, "scan_job_due") || strstr(plan, "Sort"))
            fail_msg("claim plan:\n%s", plan);
        return;
    }
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    char q[512];
    snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", inner);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(h, q, -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        strncat(plan, (const char *)sqlite3_column_text(st, 3), sizeof(plan) - strlen(plan) - 2);
        strcat(plan, "\n");
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    if (!strstr(plan, "USING INDEX scan_job_due") || strstr(plan, "TEMP B-TREE"))
        fail_msg("claim plan:\n%s", plan);
}

/*
 * Several nodes claim from one queue: a job another node has locked (its claim
 * not yet committed) is skipped, not waited for, and the next one is taken
 * (PostgreSQL's FOR UPDATE SKIP LOCKED; SQLite has one process and one writer).
 */
static void test_dbscan__claim_skips_a_locked_job(void **state)
{
    struct fixture *f = *state;
    if (!test_db_pg())
        skip();
    int64_t a1 = push(f->db, f->auto_pid, "auto/one", D1, IMAGE_CFG);
    int64_t a2 = push(f->db, f->auto_pid, "auto/two", D2, IMAGE_CFG);
    char path[128];
    snprintf(path, sizeof(path), "%s/wharf.db", f->dir);
    char *target = test_db_target(path);
    PGconn *other = test_db_pg_connect(target); /* another node, mid-claim of the oldest job */
    free(target);
    PGresult *r = PQexec(other, "BEGIN; SELECT artifact_id FROM scan_job WHERE status = 'Pending'"
                                " ORDER BY due_ms, artifact_id LIMIT 1 FOR UPDATE");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(strtoll(PQgetvalue(r, 0, 0), NULL, 10), a1);
    PQclear(r);
    /* this node does not wait for it (lock_timeout would end that after 30 s) */
    struct wh_scan_job j;
    int64_t t0 = wh_now_ms();
    assert_int_equal(wh_db_scan_claim(f->db, wh_now_ms(), &j), 0);
    assert_true(wh_now_ms() - t0 < 10000);
    assert_int_equal(j.artifact_id, a2);
    assert_string_equal(j.status, WH_SCAN_RUNNING);
    /* the other node's claim is still its own to make */
    assert_int_equal(wh_db_scan_claim(f->db, wh_now_ms(), &j), WH_ENOTFOUND);
    PQclear(PQexec(other, "ROLLBACK"));
    PQfinish(other);
    assert_int_equal(wh_db_scan_claim(f->db, wh_now_ms(), &j), 0);
    assert_int_equal(j.artifact_id, a1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dbscan__auto_scan_queues_images_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbscan__push_that_queues_calls_back_after_commit,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbscan__lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbscan__crash_loop_ends_in_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbscan__leases_across_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbscan__lease_length_is_the_handles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbscan__claim_skips_a_locked_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbscan__retry_with_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbscan__claim_plan, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
