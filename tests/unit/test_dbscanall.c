/*
 * Unit tests for scan-all runs in db/ (db_scanall.c, schema 11): a run
 * queues exactly the images (not other artifacts, accessories or cosign
 * signatures), in batches, leaving scans already pending or running alone;
 * one run at a time; its counts while it goes on and once it ended; stop;
 * the scheduled start's compare-and-set on the schedule setting; and the
 * audit entries the trigger writes when a scan ends (who asked, which
 * resource, which endings are listed).
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
    int64_t pid;
};

/* Commits manifest number `n` in `repo` (config type `cfg`, optional subject and tag). */
static int64_t push(wh_db *db, int64_t pid, const char *repo, int n, const char *cfg,
                    const char *subject, const char *tag)
{
    char digest[80];
    snprintf(digest, sizeof(digest), "sha256:%064d", n);
    const char *blobs[] = {LAYER};
    assert_int_equal(wh_db_blob_link(db, pid, repo, LAYER, 10), 0);
    struct wh_artifact_in a = {.repo = repo, .project_id = pid, .digest = digest,
                               .media_type = IMAGE_MT, .artifact_type = cfg, .size = 100,
                               .blobs = blobs, .nblobs = 1, .tag = tag, .subject = subject};
    assert_int_equal(wh_db_manifest_put(db, &a), 0);
    struct wh_manifest_ref ref;
    assert_int_equal(wh_db_manifest_get(db, repo, digest, true, &ref), 0);
    return ref.artifact_id;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/wharf-dbscanall-XXXXXX");
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

/* Runs every batch; returns the scans queued. */
static int64_t feed(wh_db *db, int64_t batch)
{
    int64_t total = 0, queued = 0;
    bool more = true;
    int steps = 0;
    while (more) {
        assert_int_equal(wh_db_scanrun_step(db, batch, 100, &queued, &more), 0);
        total += queued;
        assert_true(++steps < 1000);
    }
    return total;
}

struct audit_rows {
    int n;
    char resource[8][128], username[8][64], description[8][128];
    bool result[8];
};

static int audit_row(const struct wh_audit *a, void *payload)
{
    struct audit_rows *r = payload;
    if (r->n < 8) {
        snprintf(r->resource[r->n], sizeof(r->resource[0]), "%s", a->resource);
        snprintf(r->username[r->n], sizeof(r->username[0]), "%s", a->username);
        snprintf(r->description[r->n], sizeof(r->description[0]), "%s",
                 a->description ? a->description : "");
        r->result[r->n] = a->result;
    }
    r->n++;
    return 0;
}

static void scan_audit(wh_db *db, struct audit_rows *out)
{
    int64_t total = 0;
    memset(out, 0, sizeof(*out));
    assert_int_equal(wh_db_audit_list(db, 0, NULL, "scan", 0, 100, audit_row, out, &total), 0);
    assert_int_equal(total, out->n);
}

static void test_dbscanall__queues_images_only_in_batches(void **state)
{
    struct fixture *f = *state;
    struct wh_scan_run r;
    struct wh_scan_job j;
    int64_t img[5];
    for (int i = 0; i < 5; i++)
        img[i] = push(f->db, f->pid, "p/app", i + 1, IMAGE_CFG, NULL, NULL);
    int64_t thing = push(f->db, f->pid, "p/app", 10, "application/vnd.example.thing", NULL, NULL);
    int64_t sbom = push(f->db, f->pid, "p/app", 11, IMAGE_CFG,
                        "sha256:0000000000000000000000000000000000000000000000000000000000000001",
                        NULL);
    int64_t sig = push(f->db, f->pid, "p/app", 12, IMAGE_CFG, NULL,
                       "sha256-0000000000000000000000000000000000000000000000000000000000000001.sig");
    /* img[0] is being scanned: the run leaves it alone */
    assert_int_equal(wh_db_scan_request_by(f->db, img[0], "busy", 1, "alice", NULL), 0);

    assert_int_equal(wh_db_scanrun_latest(f->db, NULL, &r), WH_ENOTFOUND);
    int64_t id = 0, other = 0;
    assert_int_equal(wh_db_scanrun_start(f->db, WH_SCAN_RUN_MANUAL, "admin", 50, &id), 0);
    assert_true(id > 0);
    assert_int_equal(wh_db_scanrun_start(f->db, WH_SCAN_RUN_MANUAL, "admin", 51, &other),
                     WH_ECONFLICT);
    /* nothing queued yet: the run is going on with no scans */
    assert_int_equal(wh_db_scanrun_latest(f->db, NULL, &r), 0);
    assert_true(r.ongoing);
    assert_int_equal(r.total, 0);
    assert_string_equal(r.trigger, "Manual");
    assert_string_equal(r.operator, "admin");

    assert_int_equal(feed(f->db, 2), 4); /* batches of two ids: 8 artifacts, 4 steps */
    assert_int_equal(wh_db_scan_get(f->db, img[0], &j), 0);
    assert_string_equal(j.report_id, "busy");
    for (int i = 1; i < 5; i++) {
        assert_int_equal(wh_db_scan_get(f->db, img[i], &j), 0);
        assert_string_equal(j.status, WH_SCAN_PENDING);
    }
    assert_int_equal(wh_db_scan_get(f->db, thing, &j), WH_ENOTFOUND);
    assert_int_equal(wh_db_scan_get(f->db, sbom, &j), WH_ENOTFOUND);
    assert_int_equal(wh_db_scan_get(f->db, sig, &j), WH_ENOTFOUND);
    assert_int_equal(wh_db_scanrun_latest(f->db, WH_SCAN_RUN_MANUAL, &r), 0);
    assert_int_equal(r.total, 4);
    assert_int_equal(r.pending, 4);
    assert_true(r.ongoing);
    assert_int_equal(wh_db_scanrun_latest(f->db, WH_SCAN_RUN_SCHEDULE, &r), WH_ENOTFOUND);

    /* workers take and finish them: one fails */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(wh_db_scan_claim(f->db, 100, &j), 0);
        int rc = wh_db_scan_finish(f->db, j.artifact_id, j.report_id,
                                   j.artifact_id == img[3] ? WH_SCAN_ERROR : WH_SCAN_SUCCESS,
                                   "High", "{}", "{}", "boom", 70);
        assert_int_equal(rc, 0);
    }
    assert_int_equal(wh_db_scanrun_latest(f->db, NULL, &r), 0);
    assert_false(r.ongoing);
    assert_int_equal(r.success, 3);
    assert_int_equal(r.error, 1);
    assert_string_equal(r.status, "Running"); /* until settled */
    assert_int_equal(wh_db_scanrun_settle(f->db, 80), 0);
    assert_int_equal(wh_db_scanrun_latest(f->db, NULL, &r), 0);
    assert_string_equal(r.status, "Error");
    assert_int_equal(r.end_ms, 80);
    /* the counts are kept once it ended, even when an image is scanned again */
    assert_int_equal(wh_db_scan_request_by(f->db, img[2], "again", 90, NULL, NULL), 0);
    assert_int_equal(wh_db_scanrun_latest(f->db, NULL, &r), 0);
    assert_int_equal(r.total, 4);
    assert_int_equal(r.success, 3);

    /* audit: one entry per scan that ended, by who asked */
    struct audit_rows a;
    scan_audit(f->db, &a);
    assert_int_equal(a.n, 5);
    int alice = 0, failed = 0;
    for (int i = 0; i < a.n; i++) {
        alice += strcmp(a.username[i], "alice") == 0;
        if (!a.result[i]) {
            failed++;
            assert_string_equal(a.resource[i], "p/app@sha256:"
                                               "0000000000000000000000000000000000000000000000000"
                                               "000000000000004");
            assert_non_null(strstr(a.description[i], "scan failed: boom (scan all "));
        }
        assert_non_null(strstr(a.resource[i], "p/app@sha256:"));
    }
    assert_int_equal(alice, 1);
    assert_int_equal(failed, 1);
}

static void test_dbscanall__stop_and_schedule(void **state)
{
    struct fixture *f = *state;
    struct wh_scan_run r;
    struct wh_scan_job j;
    int64_t id = 0;
    for (int i = 0; i < 3; i++)
        push(f->db, f->pid, "p/app", i + 1, IMAGE_CFG, NULL, NULL);
    assert_int_equal(wh_db_scanrun_stop(f->db, 10, &id), WH_ENOTFOUND);

    /* the schedule fires only from the value it read */
    assert_int_equal(wh_db_scanrun_fire(f->db, "sched", "a", "b", 10, &id), WH_ENOTFOUND);
    assert_int_equal(wh_db_setting_set(f->db, "sched", "a", 1), 0);
    assert_int_equal(wh_db_scanrun_fire(f->db, "sched", "x", "b", 10, &id), WH_ECONFLICT);
    assert_int_equal(wh_db_scanrun_fire(f->db, "sched", "a", "b", 10, &id), 0);
    assert_true(id > 0);
    char v[8];
    assert_int_equal(wh_db_setting_get(f->db, "sched", v, sizeof(v)), 0);
    assert_string_equal(v, "b");
    /* while it goes on, a fire moves the schedule on but starts nothing */
    int64_t id2 = -1;
    assert_int_equal(wh_db_scanrun_fire(f->db, "sched", "b", "c", 11, &id2), 0);
    assert_int_equal(id2, 0);
    assert_int_equal(feed(f->db, 1000), 3);
    assert_int_equal(wh_db_scan_claim(f->db, 100, &j), 0); /* one Running */

    int64_t stopped = 0;
    assert_int_equal(wh_db_scanrun_stop(f->db, 30, &stopped), 0);
    assert_int_equal(stopped, id);
    assert_int_equal(wh_db_scanrun_latest(f->db, WH_SCAN_RUN_SCHEDULE, &r), 0);
    assert_string_equal(r.status, "Stopped");
    assert_int_equal(r.stopped, 3);
    assert_int_equal(r.total, 3);
    assert_false(r.ongoing);
    assert_string_equal(r.operator, "");
    /* the worker's result is dropped */
    assert_int_equal(wh_db_scan_finish(f->db, j.artifact_id, j.report_id, WH_SCAN_SUCCESS, "Low",
                                       "{}", "{}", "", 40),
                     WH_ENOTFOUND);
    /* only the running scan is in the audit log, by the system */
    struct audit_rows a;
    scan_audit(f->db, &a);
    assert_int_equal(a.n, 1);
    assert_string_equal(a.username[0], "system");
    assert_false(a.result[0]);
    assert_non_null(strstr(a.description[0], "scan stopped (scan all "));
    /* stopping an ended run is fine and changes nothing */
    assert_int_equal(wh_db_scanrun_stop(f->db, 50, &stopped), 0);
    scan_audit(f->db, &a);
    assert_int_equal(a.n, 1);

    /* a new run queues the three again, the one whose result was dropped included */
    int64_t id3 = 0;
    assert_int_equal(wh_db_scanrun_start(f->db, WH_SCAN_RUN_MANUAL, "bob", 60, &id3), 0);
    assert_int_equal(feed(f->db, 1000), 3);
    assert_int_equal(wh_db_scanrun_latest(f->db, NULL, &r), 0);
    assert_int_equal(r.id, id3);
    assert_int_equal(r.pending, 3);
    assert_true(r.ongoing);
}

static void test_dbscanall__empty_registry_run_ends_at_once(void **state)
{
    struct fixture *f = *state;
    struct wh_scan_run r;
    int64_t id = 0;
    assert_int_equal(wh_db_scanrun_start(f->db, WH_SCAN_RUN_MANUAL, "bob", 60, &id), 0);
    assert_int_equal(wh_db_scanrun_latest(f->db, NULL, &r), 0);
    assert_false(r.ongoing);
    assert_int_equal(r.total, 0);
    assert_int_equal(wh_db_scanrun_settle(f->db, 61), 0);
    assert_int_equal(wh_db_scanrun_latest(f->db, NULL, &r), 0);
    assert_string_equal(r.status, "Success");
    /* ended: the next one may start */
    assert_int_equal(wh_db_scanrun_start(f->db, WH_SCAN_RUN_MANUAL, "bob", 62, &id), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dbscanall__queues_images_only_in_batches, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dbscanall__stop_and_schedule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbscanall__empty_registry_run_ends_at_once, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("dbscanall", tests, NULL, NULL);
}
