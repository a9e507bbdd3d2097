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
#include <pthread.h>
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

/* ---- re-match runs and exports across nodes (schema 17) ---- */

#define VDB1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define VDB2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"

struct racer {
    wh_db *db;
    pthread_barrier_t *go;
    int rc;
    struct wh_rematch_run run;
    struct wh_cve_export e;
    bool export;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    pthread_barrier_wait(r->go);
    r->rc = r->export ? wh_db_export_claim(r->db, 1000, &r->e)
                      : wh_db_rematch_claim(r->db, VDB1, 1000, &r->run);
    return NULL;
}

/* Two nodes claim at the same moment: exactly one gets it. */
static void claim_race(wh_db *a, wh_db *b, bool export, struct racer out[2])
{
    pthread_barrier_t go;
    pthread_t t[2];
    pthread_barrier_init(&go, NULL, 2);
    out[0] = (struct racer){.db = a, .go = &go, .export = export};
    out[1] = (struct racer){.db = b, .go = &go, .export = export};
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, race, &out[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&go);
    assert_true((out[0].rc == 0 && out[1].rc == WH_ENOTFOUND) ||
                (out[1].rc == 0 && out[0].rc == WH_ENOTFOUND));
}

/* What a node does with one page of a run: the inventories after `after` (`limit` of them),
 * a result written for `t` when given, and the cursor, in one transaction. */
struct page_work {
    const char *run;
    int64_t after, limit, walked, last;
    const struct wh_rematch_target *t;
};

static int walk_one(int64_t id, const void *body, size_t len, void *payload)
{
    (void)body;
    (void)len;
    struct page_work *w = payload;
    w->walked++;
    w->last = id;
    return 0;
}

static int page_tx(wh_db *db, void *payload)
{
    struct page_work *w = payload;
    int error = wh_db_inventory_walk(db, w->after, w->limit, walk_one, w);
    if (error == 0 && w->t) {
        const struct wh_db_finding rows[] = {F_CRIT};
        struct wh_scan_result r = {.severity = "Critical", .summary = "{}", .report = "{}",
                                   .fingerprint = "fpx", .findings = rows, .nfindings = 1};
        error = wh_db_rematch_apply(db, w->t, "rx", &r, 5000, NULL, NULL);
    }
    struct wh_rematch_counts n = {.inventories = w->walked, .artifacts = w->walked};
    if (error == 0)
        error = wh_db_rematch_progress(db, w->run, w->last, &n, 5000);
    return error;
}

static void test_dbfinding__rematch_run_across_nodes(void **state)
{
    struct fixture *f = *state;
    char d[3][72];
    int64_t art[3];
    const struct wh_db_finding rows[] = {F_HIGH};
    for (unsigned i = 0; i < 3; i++) {
        char inv[32], rid[8];
        snprintf(inv, sizeof(inv), "{\"inv\":%u}", i + 1);
        snprintf(rid, sizeof(rid), "r%u", i + 1);
        art[i] = push(f->db, f->pub, "pub/app", digest(d[i], i + 1), NULL);
        scan_ok(f->db, art[i], rid, rows, 1, inv, "fp1");
    }
    wh_db *b = NULL;
    assert_int_equal(test_db_open(&b, f->path), 0);
    wh_db_set_node(f->db, "a:5000");
    wh_db_set_node(b, "b:5000");
    struct wh_rematch_run run, other;
    bool created = false;

    /* both nodes load the same database: one run, queued once */
    assert_int_equal(wh_db_rematch_queue(f->db, VDB1, 100, &created), 0);
    assert_true(created);
    assert_int_equal(wh_db_rematch_queue(b, VDB1, 200, &created), 0);
    assert_false(created);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM rematch_run"), 1);

    /* they claim it together: one takes it */
    struct racer r[2];
    claim_race(f->db, b, false, r);
    wh_db *holder = r[0].rc == 0 ? f->db : b, *taker = holder == f->db ? b : f->db;
    run = r[0].rc == 0 ? r[0].run : r[1].run;
    assert_string_equal(run.status, "Running");
    assert_string_equal(run.holder, wh_db_node(holder));
    assert_int_equal(run.after_id, 0);
    assert_int_equal(run.attempts, 1);
    assert_int_equal(wh_db_rematch_claim(taker, VDB1, 1001, &other), WH_ENOTFOUND);

    /* the holder does one page of one inventory; the other node cannot write its cursor */
    struct page_work w = {.run = VDB1, .after = 0, .limit = 1};
    assert_int_equal(wh_db_batch(holder, page_tx, &w), 0);
    int64_t first = w.last;
    assert_int_equal(w.walked, 1);
    struct wh_rematch_counts none = {0};
    assert_int_equal(wh_db_rematch_progress(taker, VDB1, 99, &none, 1002), WH_ENOTFOUND);
    assert_int_equal(wh_db_rematch_get(taker, VDB1, &other), 0);
    assert_int_equal(other.after_id, first);
    assert_int_equal(other.inventories, 1);

    /* while its lease holds (renewed) nobody takes it back */
    int64_t n = -1;
    assert_int_equal(wh_db_rematch_renew(holder, 2000), 0); /* until 2000 + the lease */
    assert_int_equal(wh_db_rematch_recover(taker, 2000 + WH_SCAN_LEASE_MS - 1, false, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(wh_db_rematch_recover(taker, 3000, true, &n), 0); /* its own start */
    assert_int_equal(n, 0);

    /* the holder dies: once its lease ended the other node takes the run over at the cursor */
    assert_int_equal(wh_db_rematch_recover(taker, 2001 + WH_SCAN_LEASE_MS, false, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(wh_db_rematch_claim(taker, VDB1, 3000 + WH_SCAN_LEASE_MS, &other), 0);
    assert_int_equal(other.after_id, first);
    assert_int_equal(other.attempts, 2);
    assert_int_equal(other.inventories, 1);
    assert_non_null(strstr(other.log, "was cut off at inventory"));
    /* and does only what is left: the two other inventories, not the first again */
    struct page_work w2 = {.run = VDB1, .after = other.after_id, .limit = 64};
    assert_int_equal(wh_db_batch(taker, page_tx, &w2), 0);
    assert_int_equal(w2.walked, 2);

    /* the old holder comes back to life mid-page: its page's writes are rolled back */
    struct wh_rematch_target t = {.artifact_id = art[0]};
    snprintf(t.report_id, sizeof(t.report_id), "r1");
    struct page_work late = {.run = VDB1, .after = 0, .limit = 1, .t = &t};
    assert_int_equal(wh_db_batch(holder, page_tx, &late), WH_ENOTFOUND);
    struct wh_scan_job j;
    assert_int_equal(wh_db_scan_get(f->db, art[0], &j), 0);
    assert_string_equal(j.report_id, "r1");
    assert_int_equal(wh_db_rematch_finish(holder, VDB1, "", 6000), WH_ENOTFOUND);

    /* done: never taken again, by either node, and loading the database again queues nothing */
    assert_int_equal(wh_db_rematch_finish(taker, VDB1, "", 6000), 0);
    assert_int_equal(wh_db_rematch_get(f->db, VDB1, &run), 0);
    assert_string_equal(run.status, "Success");
    assert_int_equal(run.inventories, 3);
    assert_int_equal(run.after_id, w2.last);
    assert_int_equal(run.end_ms, 6000);
    assert_int_equal(wh_db_rematch_queue(f->db, VDB1, 7000, &created), 0);
    assert_false(created);
    assert_int_equal(wh_db_rematch_claim(f->db, VDB1, 7000, &run), WH_ENOTFOUND);
    assert_int_equal(wh_db_rematch_claim(b, VDB1, 7000, &run), WH_ENOTFOUND);
    assert_int_equal(wh_db_rematch_recover(b, 1000000, true, &n), 0);
    assert_int_equal(n, 0);

    /* a node starting takes back its own run at once; a stop gives it back uncounted */
    assert_int_equal(wh_db_rematch_queue(f->db, VDB2, 8000, &created), 0);
    assert_int_equal(wh_db_rematch_claim(f->db, VDB2, 8000, &run), 0);
    assert_int_equal(wh_db_rematch_release(f->db, VDB2), 0);
    assert_int_equal(wh_db_rematch_claim(b, VDB2, 8001, &run), 0);
    assert_int_equal(run.attempts, 1);
    assert_int_equal(wh_db_rematch_recover(b, 8002, true, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(wh_db_rematch_claim(b, VDB2, 8003, &run), 0);
    assert_int_equal(run.attempts, 2);
    wh_db_close(b);
}

static void test_dbfinding__rematch_run_retry(void **state)
{
    struct fixture *f = *state;
    struct wh_rematch_run run;
    char status[16];
    int64_t due = 0;
    wh_db_set_node(f->db, "a:5000");
    wh_db_set_scan_retry(f->db, 2, 1000);
    assert_int_equal(wh_db_rematch_queue(f->db, VDB1, 100, NULL), 0);
    assert_int_equal(wh_db_rematch_claim(f->db, VDB1, 100, &run), 0);
    /* a transient failure: Pending again after the backoff, not before */
    assert_int_equal(wh_db_rematch_retry(f->db, VDB1, "database away", 200, status, &due), 0);
    assert_string_equal(status, "Pending");
    assert_int_equal(due, 1200);
    assert_int_equal(wh_db_rematch_claim(f->db, VDB1, 1199, &run), WH_ENOTFOUND);
    assert_int_equal(wh_db_rematch_claim(f->db, VDB1, 1200, &run), 0);
    assert_int_equal(run.attempts, 2);
    assert_non_null(strstr(run.log, "attempt 1 of 2 failed: database away"));
    /* the last attempt fails: Error, never claimed again */
    assert_int_equal(wh_db_rematch_retry(f->db, VDB1, "again", 1300, status, &due), 0);
    assert_string_equal(status, "Error");
    assert_int_equal(wh_db_rematch_claim(f->db, VDB1, 999999, &run), WH_ENOTFOUND);
    assert_int_equal(wh_db_rematch_get(f->db, VDB1, &run), 0);
    assert_string_equal(run.status, "Error");
    assert_int_equal(wh_db_rematch_retry(f->db, VDB1, "no", 1400, status, &due), WH_ENOTFOUND);
    /* an ended run goes with the prune, a running one stays */
    assert_int_equal(wh_db_rematch_queue(f->db, VDB2, 5000, NULL), 0);
    assert_int_equal(wh_db_rematch_claim(f->db, VDB2, 5000, &run), 0);
    assert_int_equal(wh_db_rematch_prune(f->db, 10000), 0);
    assert_int_equal(wh_db_rematch_get(f->db, VDB1, &run), WH_ENOTFOUND);
    assert_int_equal(wh_db_rematch_get(f->db, VDB2, &run), 0);
}

static void test_dbfinding__export_leases(void **state)
{
    struct fixture *f = *state;
    wh_db *b = NULL;
    assert_int_equal(test_db_open(&b, f->path), 0);
    wh_db_set_node(f->db, "a:5000");
    wh_db_set_node(b, "b:5000");
    struct wh_cve_export in = {.user_id = 1, .project_id = f->pub}, e;
    snprintf(in.username, sizeof(in.username), "admin");
    int64_t x = 0, y = 0, n = -1;
    assert_int_equal(wh_db_export_create(f->db, &in, 10, &x), 0);

    /* two nodes claim it together: one runs it */
    struct racer r[2];
    claim_race(f->db, b, true, r);
    wh_db *holder = r[0].rc == 0 ? f->db : b, *other = holder == f->db ? b : f->db;
    assert_int_equal(r[0].rc == 0 ? r[0].e.id : r[1].e.id, x);
    assert_int_equal(wh_db_export_claim(other, 1001, &e), WH_ENOTFOUND);

    /* the other node starting leaves it alone while its lease holds (renewed) */
    assert_int_equal(wh_db_export_recover(other, 1002, true, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(wh_db_export_renew(holder, 2000), 0);
    assert_int_equal(wh_db_export_recover(other, 2000 + WH_SCAN_LEASE_MS - 1, false, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(wh_db_export_get(f->db, x, &e), 0);
    assert_string_equal(e.status, "Running");
    /* only its holder ends it */
    assert_int_equal(wh_db_export_finish(other, x, "Success", "", "a", 1, 2001), WH_ENOTFOUND);

    /* the holder dies: once the lease ended it is queued again, and the other node runs it */
    assert_int_equal(wh_db_export_recover(other, 2001 + WH_SCAN_LEASE_MS, false, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(wh_db_export_claim(other, 3000 + WH_SCAN_LEASE_MS, &e), 0);
    assert_int_equal(e.id, x);
    assert_int_equal(wh_db_export_finish(holder, x, "Success", "", "a", 1, 2002), WH_ENOTFOUND);
    assert_int_equal(wh_db_export_finish(other, x, "Success", "", "csv", 3, 4000 + WH_SCAN_LEASE_MS),
                     0);
    assert_int_equal(wh_db_export_get(f->db, x, &e), 0);
    assert_string_equal(e.status, "Success");
    assert_true(e.file_present);
    assert_int_equal(wh_db_export_claim(holder, 999999, &e), WH_ENOTFOUND);

    /* a node starting takes back its own Running export at once */
    assert_int_equal(wh_db_export_create(f->db, &in, 20, &y), 0);
    assert_int_equal(wh_db_export_claim(f->db, 5000, &e), 0);
    assert_int_equal(e.id, y);
    assert_int_equal(wh_db_export_recover(b, 5001, true, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(wh_db_export_recover(f->db, 5001, true, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(wh_db_export_claim(b, 5002, &e), 0);
    assert_int_equal(e.id, y);
    wh_db_close(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dbfinding__store_share_replace_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbfinding__rematch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbfinding__rematch_run_across_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbfinding__rematch_run_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbfinding__export_leases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbfinding__hub, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbfinding__plans, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
