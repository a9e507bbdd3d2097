/*
 * Unit tests for what the scan workers record (scand.c): an external
 * scanner's report, as the adapter client imports it, becomes the same
 * finding rows and counts as the built-in scanner's findings of the same
 * image (the pinned bookworm root file system against the fixture
 * database); a new report replaces the rows (no duplicates, nothing left of
 * the old one); a report that cannot be read writes nothing; such reports
 * keep no inventory, so a re-match leaves them alone and counts them; a
 * re-match run cut off after its first page (the failpoint rematch.hold, a
 * node that dies) is taken over by another node, which goes on from the
 * run's cursor: the first page is neither matched nor written again.
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
#include <sqlite3.h>

#include "adapter/adapter.h"
#include "db/db_int.h"
#include "scan/scan.h"
#include "scand/scand.h"

#define IMAGE_MT "application/vnd.oci.image.manifest.v1+json"
#define IMAGE_CFG "application/vnd.oci.image.config.v1+json"
#define LAYER "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define ROOTFS "rootfs:tests/data/images/bookworm-minbase/rootfs"

struct fixture {
    char dir[64];
    char path[128];
    wh_db *db;
    wh_vulndb *vdb;
    int64_t pid;
    struct wh_inventory *inv;
    struct wh_findings *f;
};

static int64_t push(wh_db *db, int64_t pid, const char *d)
{
    const char *blobs[] = {LAYER};
    assert_int_equal(wh_db_blob_link(db, pid, "p/img", LAYER, 10), 0);
    struct wh_artifact_in a = {.repo = "p/img", .project_id = pid, .digest = d,
                               .media_type = IMAGE_MT, .artifact_type = IMAGE_CFG, .size = 100,
                               .blobs = blobs, .nblobs = 1};
    assert_int_equal(wh_db_manifest_put(db, &a), 0);
    struct wh_manifest_ref ref;
    assert_int_equal(wh_db_manifest_get(db, "p/img", d, true, &ref), 0);
    return ref.artifact_id;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/wharf-scand-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/wharf.db", f->dir);
    assert_int_equal(wh_db_open(&f->db, f->path), 0);
    struct wh_project_info in;
    memset(&in, 0, sizeof(in));
    snprintf(in.p.name, sizeof(in.p.name), "p");
    snprintf(in.metadata, sizeof(in.metadata), "{}");
    in.storage_limit = -1;
    assert_int_equal(wh_db_project_insert(f->db, &in, &f->pid), 0);
    /* the built-in scanner's findings of the pinned bookworm image */
    const char *feeds[] = {"tests/data/vulndb/debian/tracker-bookworm-fixture.json",
                           "tests/data/vulndb/nvd"};
    char *vpath = wh_sprintf("%s/vulndb.sqlite", f->dir);
    struct wh_vulndb_stats st;
    assert_int_equal(wh_vulndb_import(vpath, feeds, 2, &st), 0);
    assert_int_equal(wh_vulndb_open(&f->vdb, vpath), 0);
    free(vpath);
    struct wh_scan_opts opts = {0};
    assert_int_equal(wh_scan_inventory(&f->inv, ROOTFS, &opts), 0);
    assert_int_equal(wh_match(&f->f, f->vdb, f->inv), 0);
    assert_true(f->f->n > 20);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    wh_findings_free(f->f);
    wh_inventory_free(f->inv);
    wh_vulndb_close(f->vdb);
    wh_db_close(f->db);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Queues and claims a scan of `art`: the job the worker records. */
static void claim(wh_db *db, int64_t art, const char *rid, struct wh_scan_job *j)
{
    assert_int_equal(wh_db_scan_request(db, art, rid, 10, NULL), 0);
    assert_int_equal(wh_db_scan_claim(db, 11, j), 0);
    assert_int_equal(j->artifact_id, art);
}

/* One finding row as text, its artifact left out (rows of two artifacts compare). */
struct rows {
    char **v;
    size_t n;
};

static int take_row(const struct wh_vuln_item *v, void *payload)
{
    struct rows *r = payload;
    json_t *links = json_loads(v->links, 0, NULL), *cwes = json_loads(v->cwe_ids, 0, NULL);
    char *l = json_dumps(links, JSON_COMPACT | JSON_SORT_KEYS);
    char *c = json_dumps(cwes, JSON_COMPACT | JSON_SORT_KEYS);
    r->v = realloc(r->v, (r->n + 1) * sizeof(*r->v));
    r->v[r->n++] = wh_sprintf("%s|%s|%s|%s|%d|%.1f|%s|%s|%s|%s", v->cve_id, v->package,
                              v->version, v->fixed_version, v->severity, v->cvss3,
                              v->description, l, v->cvss3_vector, c);
    free(l);
    free(c);
    json_decref(links);
    json_decref(cwes);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static struct rows rows_of(wh_db *db, const char *digest)
{
    struct rows r = {0};
    struct wh_vuln_filter flt = {.digest = digest, .severity = -1};
    int64_t total = 0;
    assert_int_equal(wh_db_vuln_list(db, &flt, 0, 1000000, take_row, &r, &total), 0);
    assert_int_equal((size_t)total, r.n);
    if (r.n > 1)
        qsort(r.v, r.n, sizeof(*r.v), cmp_str);
    return r;
}

static void rows_free(struct rows *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i]);
    free(r->v);
}

static void assert_rows_equal(const struct rows *a, const struct rows *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        assert_string_equal(a->v[i], b->v[i]);
}

static int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &s, NULL), SQLITE_OK);
    int64_t v = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    sqlite3_finalize(s);
    sqlite3_close(h);
    return v;
}

/* The counts on an artifact's scan row, as one string. */
static char *counts(const char *path, int64_t art)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT critical_cnt * 1000000000000 + high_cnt * 100000000 + medium_cnt * 10000"
             " + low_cnt * 100 + none_cnt FROM scan_job WHERE artifact_id = %lld",
             (long long)art);
    int64_t a = raw_int(path, sql);
    snprintf(sql, sizeof(sql),
             "SELECT unknown_cnt * 100000 + fixable_cnt FROM scan_job WHERE artifact_id = %lld",
             (long long)art);
    return wh_sprintf("%lld/%lld", (long long)a, (long long)raw_int(path, sql));
}

/* An adapter's report of `f` for `digest`, through the adapter client's import. */
static void imported(const struct wh_findings *f, const char *digest, char **rep, char **sum,
                     char *sev)
{
    json_t *doc = wh_report_json(f, digest);
    assert_int_equal(wh_adapter_report_import(doc, digest, rep, sum, sev, 16), 0);
    json_decref(doc);
}

static void test_scand__external_report_rows_equal_builtin(void **state)
{
    struct fixture *f = *state;
    char da[72], db[72];
    snprintf(da, sizeof(da), "sha256:%064x", 1);
    snprintf(db, sizeof(db), "sha256:%064x", 2);
    int64_t a = push(f->db, f->pid, da), b = push(f->db, f->pid, db);
    struct wh_scan_job ja, jb;

    /* the built-in scanner's rows of the image, on artifact a */
    claim(f->db, a, "ra", &ja);
    assert_int_equal(wh_scand_record(f->db, &ja, f->inv, f->f), 0);
    struct rows builtin = rows_of(f->db, da);
    assert_int_equal(builtin.n, f->f->n);

    /* the same findings as an adapter's report, on artifact b: the same rows and counts */
    char *rep = NULL, *sum = NULL, sev[16];
    imported(f->f, db, &rep, &sum, sev);
    claim(f->db, b, "rb", &jb);
    assert_int_equal(wh_scand_record_report(f->db, &jb, rep, sum, sev), 0);
    struct rows ext = rows_of(f->db, db);
    assert_rows_equal(&builtin, &ext);
    char *ca = counts(f->path, a), *cb = counts(f->path, b);
    assert_string_equal(ca, cb);
    free(ca);
    free(cb);
    struct wh_scan_job got;
    assert_int_equal(wh_db_scan_get(f->db, b, &got), 0);
    assert_string_equal(got.status, "Success");
    assert_string_equal(got.summary, sum);
    assert_string_equal(got.severity, sev);
    free(rep);
    free(sum);
    rows_free(&ext);
    rows_free(&builtin);

    /* no inventory for b: a re-match leaves it as it is, and counts it */
    int64_t n = -1;
    assert_int_equal(wh_db_reports_without_inventory(f->db, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM scan_job WHERE inventory_id IS NULL"
                                      " AND report IS NOT NULL"),
                     1);
    struct rows before = rows_of(f->db, db);
    struct wh_rematch_stats st;
    assert_int_equal(wh_scand_rematch(f->db, f->vdb, NULL, &st), 0);
    assert_int_equal(st.artifacts, 1); /* a only */
    assert_int_equal(st.skipped, 1);   /* b */
    struct rows after = rows_of(f->db, db);
    assert_rows_equal(&before, &after);
    rows_free(&before);
    rows_free(&after);
}

static void test_scand__rescan_replaces_and_bad_report_writes_nothing(void **state)
{
    struct fixture *f = *state;
    char d[72];
    snprintf(d, sizeof(d), "sha256:%064x", 3);
    int64_t art = push(f->db, f->pid, d);
    struct wh_scan_job j;

    /* the built-in scanner first: rows and an inventory */
    claim(f->db, art, "r1", &j);
    assert_int_equal(wh_scand_record(f->db, &j, f->inv, f->f), 0);
    size_t n0 = f->f->n;
    struct rows r0 = rows_of(f->db, d);
    assert_int_equal(r0.n, n0);
    rows_free(&r0);

    /* then an adapter's report of two findings: they replace every row, the inventory goes */
    const char *two =
        "{\"vulnerabilities\":["
        "{\"id\":\"CVE-2099-0001\",\"package\":\"libfoo\",\"version\":\"1.0\","
        "\"fix_version\":\"1.1\",\"severity\":\"Critical\",\"description\":\"foo\","
        "\"links\":[\"https://x/1\",7],\"cwe_ids\":[\"CWE-79\"],"
        "\"preferred_cvss\":{\"score_v3\":9.1,\"vector_v3\":\"CVSS:3.1/AV:N\",\"junk\":1}},"
        "{\"id\":\"CVE-2099-0002\",\"package\":\"libbar\",\"version\":\"2\","
        "\"severity\":\"low\",\"title\":\"bar title\"},"
        "{\"id\":\"CVE-2099-0002\",\"package\":\"libbar\",\"version\":\"2\","
        "\"severity\":\"Low\",\"title\":\"bar title\"}]}";
    json_t *doc = json_loads(two, 0, NULL);
    char *rep = NULL, *sum = NULL, sev[16];
    assert_int_equal(wh_adapter_report_import(doc, d, &rep, &sum, sev, 16), 0);
    json_decref(doc);
    claim(f->db, art, "r2", &j);
    assert_int_equal(wh_scand_record_report(f->db, &j, rep, sum, sev), 0);
    free(rep);
    free(sum);
    struct rows r1 = rows_of(f->db, d);
    assert_int_equal(r1.n, 3); /* one per item, as the overview counts them */
    assert_string_equal(r1.v[0], "CVE-2099-0001|libfoo|1.0|1.1|5|9.1|foo|[\"https://x/1\"]|"
                                 "CVSS:3.1/AV:N|[\"CWE-79\"]");
    assert_string_equal(r1.v[1], "CVE-2099-0002|libbar|2||2|0.0|bar title|[]||[]");
    assert_string_equal(r1.v[1], r1.v[2]);
    rows_free(&r1);
    char *c = counts(f->path, art);
    assert_string_equal(c, "1000000000200/1"); /* 1 critical, 2 low; 1 fixable */
    free(c);
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT inventory_id IS NULL FROM scan_job WHERE artifact_id = %lld",
             (long long)art);
    assert_int_equal(raw_int(f->path, sql), 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM scan_inventory"), 0);

    /* a report the workers cannot read: WH_EINVALID, nothing written, still Running */
    claim(f->db, art, "r3", &j);
    assert_int_equal(wh_scand_record_report(f->db, &j, "{\"vulnerabilities\":[{\"id\":1}]}",
                                            "{}", "Low"),
                     WH_EINVALID);
    assert_int_equal(wh_scand_record_report(f->db, &j, "not json", "{}", "Low"), WH_EINVALID);
    struct wh_scan_job got;
    assert_int_equal(wh_db_scan_get(f->db, art, &got), 0);
    assert_string_equal(got.status, "Running");
    struct rows r2 = rows_of(f->db, d);
    assert_int_equal(r2.n, 3);
    rows_free(&r2);
    /* a job no longer Running records nothing either */
    assert_int_equal(wh_db_scan_stop(f->db, art, 20, NULL), 0);
    assert_int_equal(wh_scand_record_report(f->db, &j, "{\"vulnerabilities\":[]}",
                                            "{\"total\":0,\"fixable\":0,\"summary\":{}}", "None"),
                     WH_ENOTFOUND);
    r2 = rows_of(f->db, d);
    assert_int_equal(r2.n, 3);
    rows_free(&r2);

    /* an empty report clears the rows */
    claim(f->db, art, "r4", &j);
    assert_int_equal(wh_scand_record_report(f->db, &j, "{\"vulnerabilities\":[]}",
                                            "{\"total\":0,\"fixable\":0,\"summary\":{}}", "None"),
                     0);
    r2 = rows_of(f->db, d);
    assert_int_equal(r2.n, 0);
    rows_free(&r2);
    c = counts(f->path, art);
    assert_string_equal(c, "0/0");
    free(c);
}

/* Scans recorded for three images of distinct inventories, with no findings (stale). */
static void three_stale(struct fixture *f, int64_t art[3])
{
    struct wh_findings none = {0};
    for (unsigned i = 0; i < 3; i++) {
        char d[72], name[16], rid[8];
        snprintf(d, sizeof(d), "sha256:%064x", 10 + i);
        snprintf(name, sizeof(name), "extra%u", i);
        snprintf(rid, sizeof(rid), "s%u", i);
        art[i] = push(f->db, f->pid, d);
        struct wh_pkg p = {.kind = WH_PKG_DPKG, .name = name, .version = "1.0", .path = "x"};
        wh_inventory_add(f->inv, &p); /* one more package each: an inventory of its own */
        wh_inventory_sort(f->inv);
        struct wh_scan_job j;
        claim(f->db, art[i], rid, &j);
        assert_int_equal(wh_scand_record(f->db, &j, f->inv, &none), 0);
    }
}

static void test_scand__rematch_run_taken_over_goes_on_from_cursor(void **state)
{
    struct fixture *f = *state;
    int64_t art[3];
    three_stale(f, art);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM scan_inventory"), 3);
    wh_db *b = NULL;
    assert_int_equal(wh_db_open(&b, f->path), 0);
    wh_db_set_node(f->db, "a:5000");
    wh_db_set_node(b, "b:5000");
    struct wh_digest vd;
    assert_int_equal(wh_vulndb_digest(f->vdb, &vd), 0);
    struct wh_rematch_run run;
    struct wh_rematch_stats st;

    /* node a takes the run and is cut off before its second inventory */
    assert_int_equal(wh_db_rematch_queue(f->db, vd.str, wh_now_ms(), NULL), 0);
    assert_int_equal(wh_db_rematch_claim(f->db, vd.str, wh_now_ms(), &run), 0);
    assert_int_equal(wh_failpoint_set("rematch.hold=2:EIO"), 0);
    assert_int_equal(wh_scand_rematch_run(f->db, f->vdb, NULL, &run, &st), WH_ECONFLICT);
    assert_int_equal(wh_failpoint_hits("rematch.hold"), 2);
    assert_int_equal(wh_failpoint_set(NULL), 0);
    assert_int_equal(st.inventories, 1);
    assert_int_equal(st.changed, 1);
    int64_t first = raw_int(f->path, "SELECT min(id) FROM scan_inventory");
    assert_int_equal(wh_db_rematch_get(b, vd.str, &run), 0);
    assert_int_equal(run.after_id, first);
    assert_int_equal(run.changed, 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM vuln_change"), 1);

    /* its lease ends: node b takes the run over and does the other two only */
    int64_t n = 0, later = wh_now_ms() + 2 * WH_SCAN_LEASE_MS;
    assert_int_equal(wh_db_rematch_recover(b, later, false, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(wh_db_rematch_claim(b, vd.str, later, &run), 0);
    assert_int_equal(run.after_id, first);
    assert_int_equal(wh_scand_rematch_run(b, f->vdb, NULL, &run, &st), 0);
    assert_int_equal(st.inventories, 2);
    assert_int_equal(st.changed, 2);
    assert_int_equal(wh_db_rematch_finish(b, vd.str, "", wh_now_ms()), 0);
    assert_int_equal(wh_db_rematch_get(f->db, vd.str, &run), 0);
    assert_string_equal(run.status, "Success");
    assert_int_equal(run.inventories, 3);
    assert_int_equal(run.changed, 3);
    /* one change recorded per image: none twice */
    assert_int_equal(raw_int(f->path, "SELECT count(DISTINCT artifact_id) FROM vuln_change"), 3);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM vuln_change"), 3);
    /* the node that was cut off cannot write to the run any more */
    struct wh_rematch_counts none = {0};
    assert_int_equal(wh_db_rematch_progress(f->db, vd.str, 0, &none, wh_now_ms()), WH_ENOTFOUND);
    wh_db_close(b);
}

/* The digest names the content: a copy has the same, another import changes it. */
static void test_scand__vulndb_digest_is_the_contents(void **state)
{
    struct fixture *f = *state;
    struct wh_digest d1, d2, d3;
    assert_int_equal(wh_vulndb_digest(f->vdb, &d1), 0);
    const char *feeds[] = {"tests/data/vulndb/debian/tracker-bookworm-fixture.json",
                           "tests/data/vulndb/nvd"};
    const char *one[] = {"tests/data/vulndb/debian/tracker-bookworm-fixture.json"};
    char *p2 = wh_sprintf("%s/other.sqlite", f->dir), *p3 = wh_sprintf("%s/third.sqlite", f->dir);
    struct wh_vulndb_stats st;
    wh_vulndb *v = NULL;
    assert_int_equal(wh_vulndb_import(p2, feeds, 2, &st), 0); /* later: another import time */
    assert_int_equal(wh_vulndb_open(&v, p2), 0);
    assert_int_equal(wh_vulndb_digest(v, &d2), 0);
    wh_vulndb_close(v);
    assert_string_equal(d1.str, d2.str);
    assert_int_equal(wh_vulndb_import(p3, one, 1, &st), 0);
    assert_int_equal(wh_vulndb_open(&v, p3), 0);
    assert_int_equal(wh_vulndb_digest(v, &d3), 0);
    wh_vulndb_close(v);
    assert_string_not_equal(d1.str, d3.str);
    free(p2);
    free(p3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_scand__external_report_rows_equal_builtin, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_scand__rescan_replaces_and_bad_report_writes_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_scand__rematch_run_taken_over_goes_on_from_cursor,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_scand__vulndb_digest_is_the_contents, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
