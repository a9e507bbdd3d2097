/*
 * Unit tests for db_finding.c (schema 9): a successful scan stores its
 * inventory once per content (shared, dropped with the last artifact that
 * has it), its findings and counts in the same transaction as the report; a
 * rescan replaces them and they go with the artifact; a re-match rewrites
 * only a scan that is still the one it read and records the CVE ids added
 * and removed; the change list filters by time and by the projects a caller
 * may read; the security hub's totals, top fives and filtered list; and the
 * plans of the hub's list and the change list walk an index.
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
#include "db/db_int.h"

#include <sqlite3.h>

#define IMAGE_MT "application/vnd.oci.image.manifest.v1+json"
#define IMAGE_CFG "application/vnd.oci.image.config.v1+json"
#define LAYER "sha256:1111111111111111111111111111111111111111111111111111111111111111"

struct fixture {
    char dir[64];
    char path[128];
    wh_db *db;
    int64_t pub, priv; /* projects */
};

static int64_t project(wh_db *db, const char *name, bool public)
{
    struct wh_project_info in;
    memset(&in, 0, sizeof(in));
    snprintf(in.p.name, sizeof(in.p.name), "%s", name);
    in.p.public = public;
    snprintf(in.metadata, sizeof(in.metadata), "{}");
    in.storage_limit = -1;
    int64_t id = 0;
    assert_int_equal(wh_db_project_insert(db, &in, &id), 0);
    return id;
}

static const char *digest(char *buf, unsigned n)
{
    snprintf(buf, 72, "sha256:%064x", n);
    return buf;
}

static int64_t push(wh_db *db, int64_t pid, const char *repo, const char *d, const char *tag)
{
    const char *blobs[] = {LAYER};
    assert_int_equal(wh_db_blob_link(db, pid, repo, LAYER, 10), 0);
    struct wh_artifact_in a = {.repo = repo, .project_id = pid, .digest = d,
                               .media_type = IMAGE_MT, .artifact_type = IMAGE_CFG, .size = 100,
                               .blobs = blobs, .nblobs = 1, .tag = tag};
    assert_int_equal(wh_db_manifest_put(db, &a), 0);
    struct wh_manifest_ref ref;
    assert_int_equal(wh_db_manifest_get(db, repo, d, true, &ref), 0);
    return ref.artifact_id;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/wharf-dbfinding-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/wharf.db", f->dir);
    assert_int_equal(test_db_open(&f->db, f->path), 0);
    f->pub = project(f->db, "pub", true);
    f->priv = project(f->db, "priv", false);
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

#define raw_int test_db_int /* db_fixture.h: SQLite or PostgreSQL */

static const struct wh_db_finding F_CRIT = {"CVE-2023-45853", "zlib1g", "1:1.2.13", "", 5, 9.8,
                                            "zlib overflow", "[\"https://x/1\"]",
                                            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                                            "[\"CWE-190\"]"};
static const struct wh_db_finding F_HIGH = {"CVE-2024-0001", "libc6", "2.36", "2.37", 4, 7.5,
                                            "libc bug", "[]", "", "[]"};
static const struct wh_db_finding F_LOW = {"CVE-2011-3374", "apt", "2.6.1", "", 2, 3.7,
                                           "apt weak", "[]", "", "[]"};
static const struct wh_db_finding F_UNK = {"CVE-2025-0002", "tar", "1.34", "", 0, 0,
                                           "tar thing", "[]", "", "[]"};

/* Queues, claims and completes a scan of `art` with these findings and inventory. */
static void scan_ok(wh_db *db, int64_t art, const char *rid, const struct wh_db_finding *rows,
                    size_t n, const char *inventory, const char *fp)
{
    struct wh_scan_job j;
    assert_int_equal(wh_db_scan_request(db, art, rid, 10, NULL), 0);
    assert_int_equal(wh_db_scan_claim(db, 11, &j), 0);
    assert_int_equal(j.artifact_id, art);
    struct wh_scan_result r = {.severity = n ? "Critical" : "None", .summary = "{}",
                               .report = "{\"vulnerabilities\":[]}", .inventory = inventory,
                               .inventory_len = inventory ? strlen(inventory) : 0,
                               .fingerprint = fp, .findings = rows, .nfindings = n};
    assert_int_equal(wh_db_scan_succeed(db, art, rid, &r, 12), 0);
}

static void test_dbfinding__store_share_replace_drop(void **state)
{
    struct fixture *f = *state;
    char d1[72], d2[72];
    int64_t a1 = push(f->db, f->pub, "pub/app", digest(d1, 1), "1");
    int64_t a2 = push(f->db, f->priv, "priv/app", digest(d2, 2), "2");
    const struct wh_db_finding rows[] = {F_CRIT, F_HIGH, F_LOW, F_UNK};
    scan_ok(f->db, a1, "r1", rows, 4, "{\"inv\":1}", "fp1");
    scan_ok(f->db, a2, "r2", rows, 2, "{\"inv\":1}", "fp2");
    /* one inventory row for both */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM scan_inventory"), 1);
    assert_int_equal(raw_int(f->path, "SELECT count(DISTINCT inventory_id) FROM scan_job"), 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM finding"), 6);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM finding_text"), 4);
    /* each CVE x package x version once, with how many rows have it */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM finding_vuln"), 4);
    assert_int_equal(raw_int(f->path, "SELECT n FROM finding_vuln WHERE cve_id = 'CVE-2023-45853'"),
                     2);

    struct wh_security_summary sum;
    assert_int_equal(wh_db_security_summary(f->db, &sum), 0);
    assert_int_equal(sum.total_artifact, 2);
    assert_int_equal(sum.scanned_cnt, 2);
    assert_int_equal(sum.critical_cnt, 2);
    assert_int_equal(sum.high_cnt, 2);
    assert_int_equal(sum.low_cnt, 1);
    assert_int_equal(sum.unknown_cnt, 1);
    assert_int_equal(sum.fixable_cnt, 2);

    /* a rescan of a1 with other findings and another inventory replaces them */
    scan_ok(f->db, a1, "r3", &rows[2], 1, "{\"inv\":2}", "fp3");
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM finding"), 3);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM scan_inventory"), 2);
    /* a scan that fails keeps the last report, findings and inventory */
    struct wh_scan_job j;
    assert_int_equal(wh_db_scan_request(f->db, a2, "r4", 20, NULL), 0);
    assert_int_equal(wh_db_scan_claim(f->db, 21, &j), 0);
    assert_int_equal(wh_db_scan_finish(f->db, a2, "r4", WH_SCAN_ERROR, "", NULL, NULL, "x", 22), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM finding WHERE artifact_id = 2"), 2);
    /* a job no longer Running is not completed */
    struct wh_scan_result r = {.summary = "{}", .report = "{}", .fingerprint = ""};
    assert_int_equal(wh_db_scan_succeed(f->db, a2, "r4", &r, 23), WH_ENOTFOUND);

    /* gone with the artifact; the last artifact of an inventory drops it */
    assert_int_equal(wh_db_manifest_delete(f->db, "priv/app", d2), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM finding WHERE artifact_id = 2"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM scan_inventory"), 1);
    assert_int_equal(wh_db_manifest_delete(f->db, "pub/app", d1), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM finding"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM scan_inventory"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM finding_vuln"), 0);
}

struct seen {
    int n;
    char ids[8][WH_NAME_MAX];
    char added[8][256];
    char removed[8][256];
};

static int see_target(const struct wh_rematch_target *t, void *payload)
{
    struct seen *s = payload;
    snprintf(s->ids[s->n++], WH_NAME_MAX, "%s", t->report_id);
    return 0;
}

static int see_change(const struct wh_vuln_change *ch, void *payload)
{
    struct seen *s = payload;
    snprintf(s->ids[s->n], WH_NAME_MAX, "%s", ch->repository);
    snprintf(s->added[s->n], 256, "%s", ch->added);
    snprintf(s->removed[s->n++], 256, "%s", ch->removed);
    return 0;
}

static int count_inv(int64_t id, const void *body, size_t len, void *payload)
{
    (void)id;
    assert_memory_equal(body, "{\"inv\":1}", len);
    (*(int *)payload)++;
    return 0;
}

static void test_dbfinding__rematch(void **state)
{
    struct fixture *f = *state;
    char d1[72], d2[72];
    int64_t a1 = push(f->db, f->pub, "pub/app", digest(d1, 1), "1");
    int64_t a2 = push(f->db, f->priv, "priv/app", digest(d2, 2), "2");
    const struct wh_db_finding before[] = {F_HIGH, F_LOW};
    scan_ok(f->db, a1, "r1", before, 2, "{\"inv\":1}", "fp1");
    scan_ok(f->db, a2, "r2", before, 2, "{\"inv\":1}", "fp1");
    int ninv = 0;
    assert_int_equal(wh_db_inventory_walk(f->db, 0, 10, count_inv, &ninv), 0);
    assert_int_equal(ninv, 1);
    int64_t inv = raw_int(f->path, "SELECT id FROM scan_inventory");
    struct seen ts = {0};
    assert_int_equal(wh_db_inventory_artifacts(f->db, inv, see_target, &ts), 0);
    assert_int_equal(ts.n, 2);

    struct wh_rematch_target t = {.artifact_id = a1};
    snprintf(t.report_id, sizeof(t.report_id), "r1");
    const struct wh_db_finding after[] = {F_CRIT, F_HIGH};
    struct wh_scan_result r = {.severity = "Critical", .summary = "{\"total\":2}",
                               .report = "{\"new\":1}", .fingerprint = "fp9",
                               .findings = after, .nfindings = 2};
    char *added = NULL, *removed = NULL;
    assert_int_equal(wh_db_rematch_apply(f->db, &t, "r9", &r, 1000, &added, &removed), 0);
    assert_string_equal(added, "[\"CVE-2023-45853\"]");
    assert_string_equal(removed, "[\"CVE-2011-3374\"]");
    free(added);
    free(removed);
    struct wh_scan_job j;
    assert_int_equal(wh_db_scan_get(f->db, a1, &j), 0);
    assert_string_equal(j.report_id, "r9");
    assert_string_equal(j.severity, "Critical");
    assert_string_equal(j.status, WH_SCAN_SUCCESS);
    assert_int_equal(j.end_ms, 1000);
    char *rep = NULL;
    assert_int_equal(wh_db_scan_report(f->db, a1, &rep), 0);
    assert_string_equal(rep, "{\"new\":1}");
    free(rep);
    assert_int_equal(raw_int(f->path, "SELECT critical_cnt FROM scan_job WHERE artifact_id = 1"),
                     1);
    /* the inventory is kept */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM scan_job WHERE inventory_id IS NOT NULL"),
                     2);
    /* the same target again: its scan is no longer r1, nothing is written */
    assert_int_equal(wh_db_rematch_apply(f->db, &t, "r10", &r, 1001, NULL, NULL), WH_ENOTFOUND);
    /* a change that adds and removes no id (a fix appeared) records nothing */
    struct wh_db_finding fixed = F_CRIT;
    fixed.fixed_version = "1:1.3";
    const struct wh_db_finding after2[] = {fixed, F_HIGH};
    snprintf(t.report_id, sizeof(t.report_id), "r9");
    r.findings = after2;
    assert_int_equal(wh_db_rematch_apply(f->db, &t, "r11", &r, 1002, NULL, NULL), 0);
    /* a2 in the private project */
    struct wh_rematch_target t2 = {.artifact_id = a2};
    snprintf(t2.report_id, sizeof(t2.report_id), "r2");
    r.findings = after;
    assert_int_equal(wh_db_rematch_apply(f->db, &t2, "r12", &r, 2000, NULL, NULL), 0);

    /* the change list: all, since, and what an outsider may read */
    struct wh_vuln_change_filter cf = {.since_ms = 0, .visible_user = -1};
    struct seen ch = {0};
    int64_t total = 0;
    assert_int_equal(wh_db_vuln_changes(f->db, &cf, 0, 10, see_change, &ch, &total), 0);
    assert_int_equal(total, 2);
    assert_int_equal(ch.n, 2);
    assert_string_equal(ch.ids[0], "pub/app");
    assert_string_equal(ch.ids[1], "priv/app");
    assert_string_equal(ch.added[1], "[\"CVE-2023-45853\"]");
    cf.since_ms = 1500;
    memset(&ch, 0, sizeof(ch));
    assert_int_equal(wh_db_vuln_changes(f->db, &cf, 0, 10, see_change, &ch, &total), 0);
    assert_int_equal(total, 1);
    assert_string_equal(ch.ids[0], "priv/app");
    cf.since_ms = 0;
    cf.visible_user = 0; /* public projects only */
    memset(&ch, 0, sizeof(ch));
    assert_int_equal(wh_db_vuln_changes(f->db, &cf, 0, 10, see_change, &ch, &total), 0);
    assert_int_equal(total, 1);
    assert_string_equal(ch.ids[0], "pub/app");
    cf.visible_project = f->priv; /* a robot of the private project */
    assert_int_equal(wh_db_vuln_changes(f->db, &cf, 1, 10, see_change, &ch, &total), 0);
    assert_int_equal(total, 2);
    /* gone with the artifact, and with time */
    assert_int_equal(wh_db_manifest_delete(f->db, "priv/app", d2), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM vuln_change"), 1);
    assert_int_equal(wh_db_vuln_change_prune(f->db, 1000), 0); /* older than 1000: none */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM vuln_change"), 1);
    assert_int_equal(wh_db_vuln_change_prune(f->db, 1001), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM vuln_change"), 0);
}

struct items {
    int n;
    char cve[16][64];
    char digest[16][WH_DIGEST_STR_MAX];
    double score[16];
};

static int see_item(const struct wh_vuln_item *v, void *payload)
{
    struct items *it = payload;
    snprintf(it->cve[it->n], 64, "%s", v->cve_id);
    snprintf(it->digest[it->n], WH_DIGEST_STR_MAX, "%s", v->digest);
    it->score[it->n++] = v->cvss3;
    return 0;
}

static int see_danger(const struct wh_dangerous_artifact *a, void *payload)
{
    struct items *it = payload;
    snprintf(it->digest[it->n], WH_DIGEST_STR_MAX, "%s", a->digest);
    it->score[it->n++] = (double)a->critical_cnt;
    return 0;
}

static void test_dbfinding__hub(void **state)
{
    struct fixture *f = *state;
    char d[72];
    int64_t a[7];
    /* seven artifacts: artifact i has i critical copies of ... no: the first
     * has all four findings, the others one high each */
    a[0] = push(f->db, f->pub, "pub/app", digest(d, 100), "v1");
    const struct wh_db_finding all[] = {F_CRIT, F_HIGH, F_LOW, F_UNK};
    scan_ok(f->db, a[0], "r0", all, 4, "{\"inv\":0}", "x");
    for (int i = 1; i < 7; i++) {
        char rid[16], repo[32];
        snprintf(rid, sizeof(rid), "r%d", i);
        snprintf(repo, sizeof(repo), "priv/app%d", i); /* a tag names one artifact per repository */
        a[i] = push(f->db, f->priv, repo, digest(d, 100 + (unsigned)i), "v2");
        scan_ok(f->db, a[i], rid, &all[1], 1, "{\"inv\":1}", "y");
    }
    struct items it = {0};
    assert_int_equal(wh_db_dangerous_cves(f->db, see_item, &it), 0);
    /* the same CVE x package x version in six images counts once */
    assert_int_equal(it.n, 3);
    assert_string_equal(it.cve[0], "CVE-2023-45853");
    assert_string_equal(it.cve[1], "CVE-2024-0001");
    assert_string_equal(it.cve[2], "CVE-2011-3374");
    memset(&it, 0, sizeof(it));
    assert_int_equal(wh_db_dangerous_artifacts(f->db, see_danger, &it), 0);
    assert_int_equal(it.n, 5);
    assert_string_equal(it.digest[0], digest(d, 100));
    assert_true(it.score[0] == 1.0);

    struct wh_vuln_filter vf = {.severity = -1};
    int64_t total = 0;
    memset(&it, 0, sizeof(it));
    assert_int_equal(wh_db_vuln_list(f->db, &vf, 0, 3, see_item, &it, &total), 0);
    assert_int_equal(total, 10);
    assert_int_equal(it.n, 3);
    assert_true(it.score[0] == 9.8); /* highest score first */
    vf.cve_id = "CVE-2024-0001";
    memset(&it, 0, sizeof(it));
    assert_int_equal(wh_db_vuln_list(f->db, &vf, 0, 100, see_item, &it, &total), 0);
    assert_int_equal(total, 7);
    vf.project_id = f->pub;
    assert_int_equal(wh_db_vuln_list(f->db, &vf, 0, 100, see_item, &it, &total), 0);
    assert_int_equal(total, 1);
    vf = (struct wh_vuln_filter){.severity = 4, .tag = "v2"};
    assert_int_equal(wh_db_vuln_list(f->db, &vf, 0, 100, see_item, &it, &total), 0);
    assert_int_equal(total, 6);
    vf = (struct wh_vuln_filter){.severity = -1, .cvss_range = true, .cvss_from = 3.0,
                                 .cvss_to = 8.0, .digest = digest(d, 100)};
    assert_int_equal(wh_db_vuln_list(f->db, &vf, 0, 100, see_item, &it, &total), 0);
    assert_int_equal(total, 2);
    vf = (struct wh_vuln_filter){.severity = -1, .package = "tar"};
    memset(&it, 0, sizeof(it));
    assert_int_equal(wh_db_vuln_list(f->db, &vf, 0, 100, see_item, &it, &total), 0);
    assert_int_equal(total, 1);
    assert_true(it.score[0] == 0.0); /* unknown score */
    vf = (struct wh_vuln_filter){.severity = -1, .repo_id = -1};
    assert_int_equal(wh_db_vuln_list(f->db, &vf, 0, 100, see_item, &it, &total), 0);
    assert_int_equal(total, 0);
}

/* ---- plans ---- */

static void plan(sqlite3 *h, const char *sql, char *out, size_t cap)
{
    char q[DB_SQL_MAX + 32];
    snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", sql);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(h, q, -1, &s, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sqlite3_errmsg(h), sql);
    size_t len = 0;
    out[0] = '\0';
    while (sqlite3_step(s) == SQLITE_ROW) {
        int n = snprintf(out + len, cap - len, "%s\n", (const char *)sqlite3_column_text(s, 3));
        if (n > 0 && (size_t)n < cap - len)
            len += (size_t)n;
    }
    sqlite3_finalize(s);
}

/*
 * No full scan of the big tables (a walk of an index in its order, which a
 * page stops early, is fine: "SCAN x USING [COVERING] INDEX"); a sort only
 * where `sort_ok` (the few rows of one artifact or tag).
 */
static void check_plan(sqlite3 *h, const char *sql, bool sort_ok)
{
    static const char *const no_scan[] = {"f", "v", "a", "j", "t", "finding", "tag", NULL};
    char p[8192];
    plan(h, sql, p, sizeof(p));
    if (!sort_ok && strstr(p, "USE TEMP B-TREE FOR ORDER BY"))
        fail_msg("sorted in a temporary B-tree:\n%s\n%s", sql, p);
    for (int i = 0; no_scan[i]; i++) {
        char line[32];
        snprintf(line, sizeof(line), "SCAN %s", no_scan[i]);
        size_t n = strlen(line);
        for (const char *at = p; (at = strstr(at, line)); at++)
            if ((at == p || at[-1] == '\n') && (at[n] == '\n' || (at[n] == ' ' &&
                strncmp(at + n, " USING INDEX", 12) != 0 &&
                strncmp(at + n, " USING COVERING INDEX", 21) != 0)))
                fail_msg("scans %s:\n%s\n%s", no_scan[i], sql, p);
    }
}

static void test_dbfinding__plans(void **state)
{
    struct fixture *f = *state;
    test_db_sqlite_only(); /* EXPLAIN QUERY PLAN */
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    struct db_sql q;
    int checked = 0;
    /* every single filter, and each with a second one, list and count */
    for (int i = 0; i < 9; i++) {
        for (int k = i; k < 9; k++) {
            struct wh_vuln_filter vf = {.severity = -1};
            bool sort_ok = false;
            for (int which = 0; which < 2; which++) {
                switch (which ? k : i) {
                case 0: break; /* no filter */
                case 1: vf.cve_id = "x"; break;
                case 2: vf.package = "x"; break;
                case 3: vf.severity = 3; break;
                case 4: vf.project_id = 1; break;
                case 5: vf.repo_id = 1; break;
                case 6: vf.cvss_range = true; break;
                case 7: vf.digest = "x"; sort_ok = true; break;
                case 8: vf.tag = "x"; sort_ok = true; break;
                }
            }
            for (int count = 0; count < 2; count++) {
                memset(&q, 0, sizeof(q));
                db_vuln_list_sql(&q, &vf, count);
                check_plan(h, q.text, sort_ok);
                checked++;
            }
        }
    }
    for (int vis = 0; vis < 3; vis++)
        for (int count = 0; count < 2; count++) {
            struct wh_vuln_change_filter cf = {.visible_user = vis == 0 ? -1 : 5,
                                               .visible_names = vis == 2 ? "[]" : NULL};
            memset(&q, 0, sizeof(q));
            db_vuln_changes_sql(&q, &cf, count);
            /* a caller who is not an administrator: the changes of the projects
             * it may read come from the project index and are sorted (they are
             * that caller's few; the administrator's walk the time index) */
            check_plan(h, q.text, vis != 0);
            checked++;
        }
    assert_int_equal(checked, 2 * 45 + 6);
    sqlite3_close(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dbfinding__store_share_replace_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbfinding__rematch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbfinding__hub, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbfinding__plans, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
