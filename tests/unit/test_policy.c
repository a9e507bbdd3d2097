/*
 * Unit tests for the vulnerability gate of policy/ (gate.c, Harbor's "Prevent vulnerable images from running")
 * over a real metadata database: the threshold's codes (none and unset refuse
 * Unknown, low ignores Negligible and Unknown), the count over deduplicated
 * items of every severity, the blocking CVEs named (five, then "and N more"),
 * which allowlist applies and an expired one ignored, not scanned and
 * unfinished scans, non-images and cosign's tagged signatures, and the
 * allowlist validation messages.
 */
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
#include <jansson.h>

#include "db_fixture.h"
#include "common/common.h"
#include "db/db.h"
#include "policy/policy.h"

#define IMAGE_MT "application/vnd.oci.image.manifest.v1+json"
#define IMAGE_CFG "application/vnd.oci.image.config.v1+json"
#define LAYER "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D(c) "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
             c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c

struct fixture {
    char dir[64];
    wh_db *db;
    int64_t pid;
};

static int64_t push(wh_db *db, int64_t pid, const char *digest, const char *cfg, const char *tag)
{
    const char *blobs[] = {LAYER};
    assert_int_equal(wh_db_blob_link(db, pid, "p/r", LAYER, 10), 0);
    struct wh_artifact_in a = {.repo = "p/r", .project_id = pid, .digest = digest,
                               .media_type = IMAGE_MT, .artifact_type = cfg, .size = 100,
                               .blobs = blobs, .nblobs = 1, .tag = tag};
    assert_int_equal(wh_db_manifest_put(db, &a), 0);
    struct wh_manifest_ref ref;
    assert_int_equal(wh_db_manifest_get(db, "p/r", digest, true, &ref), 0);
    return ref.artifact_id;
}

/* Scans artifact `id` to Success with `report` (JSON text). */
static void scanned(wh_db *db, int64_t id, const char *report)
{
    /* report ids unique in the process, as the server's random ones are: the
     * gate remembers verdicts by artifact id and report id, and each test's
     * database numbers its artifacts from 1 again */
    static int serial;
    char rid[WH_SCAN_ID_MAX];
    snprintf(rid, sizeof(rid), "r%d", ++serial);
    assert_int_equal(wh_db_scan_request(db, id, rid, 1, NULL), 0);
    struct wh_scan_job job;
    assert_int_equal(wh_db_scan_claim(db, 2, &job), 0);
    assert_int_equal(job.artifact_id, id);
    assert_int_equal(wh_db_scan_finish(db, id, rid, WH_SCAN_SUCCESS, "High", "{}", report, "", 3),
                     0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/wharf-policy-XXXXXX");
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

#define V(id, pkg, sev) "{\"id\":\"" id "\",\"package\":\"" pkg "\",\"version\":\"1\",\"severity\":\"" sev "\"}"

/* The gate's answer: 0 when allowed, else the message (static copy). */
static const char *judge(wh_db *db, const char *meta, const char *own, int64_t id, int64_t now)
{
    static char copy[2048];
    char *msg = NULL;
    int error = wh_policy_gate(&msg, db, meta, own, id, now);
    if (error == 0) {
        assert_null(msg);
        return NULL;
    }
    assert_int_equal(error, WH_EDENIED);
    snprintf(copy, sizeof(copy), "%s", msg);
    free(msg);
    return copy;
}

static void test_policy__threshold_count_and_names(void **state)
{
    struct fixture *f = *state;
    int64_t only_low = push(f->db, f->pid, D("a"), IMAGE_CFG, "low");
    scanned(f->db, only_low, "{\"vulnerabilities\":[" V("CVE-1", "a", "Negligible") ","
                             V("CVE-2", "a", "Unknown") "]}");
    /* low ignores Negligible and Unknown; none and an unset threshold do not */
    assert_null(judge(f->db, "{\"severity\":\"low\"}", "{}", only_low, 10));
    const char *m = judge(f->db, "{\"severity\":\"none\"}", "{}", only_low, 10);
    assert_non_null(strstr(m, "current image with 2 vulnerabilities cannot be pulled due to "
                              "configured policy in 'Prevent images with vulnerability severity "
                              "of \"None\" or higher from running.'"));
    m = judge(f->db, "{}", "{}", only_low, 10);
    assert_non_null(strstr(m, "of \"Unknown\" or higher"));
    assert_non_null(strstr(m, "Blocking vulnerabilities: CVE-1, CVE-2."));

    int64_t many = push(f->db, f->pid, D("b"), IMAGE_CFG, "many");
    scanned(f->db, many, "{\"vulnerabilities\":[" V("CVE-1", "a", "Critical") ","
                         V("CVE-1", "a", "Critical") "," V("CVE-1", "b", "Critical") ","
                         V("CVE-2", "a", "Critical") "," V("CVE-3", "a", "Critical") ","
                         V("CVE-4", "a", "Critical") "," V("CVE-5", "a", "Critical") ","
                         V("CVE-6", "a", "Critical") "," V("CVE-7", "a", "Critical") ","
                         V("CVE-8", "a", "Low") "]}");
    m = judge(f->db, "{\"severity\":\"critical\"}", "{}", many, 10);
    /* (id, package, version) duplicates count once; every severity counts */
    assert_non_null(strstr(m, "current image with 9 vulnerabilities"));
    assert_non_null(strstr(m, "through configuring the CVE allowlist. Blocking vulnerabilities: "
                              "CVE-1, CVE-2, CVE-3, CVE-4, CVE-5 and 2 more."));

    int64_t one = push(f->db, f->pid, D("c"), IMAGE_CFG, "one");
    scanned(f->db, one, "{\"vulnerabilities\":[" V("CVE-9", "a", "High") "]}");
    m = judge(f->db, "{\"severity\":\"High\"}", "{}", one, 10);
    assert_non_null(strstr(m, "current image with 1 vulnerability cannot"));
    assert_null(judge(f->db, "{\"severity\":\"critical\"}", "{}", one, 10));
    /* an unknown severity in a report has Harbor's code 99: always above */
    int64_t odd = push(f->db, f->pid, D("d"), IMAGE_CFG, "odd");
    scanned(f->db, odd, "{\"vulnerabilities\":[" V("CVE-X", "a", "Weird") "]}");
    assert_non_null(judge(f->db, "{\"severity\":\"critical\"}", "{}", odd, 10));
    /* no vulnerabilities: allowed */
    int64_t clean = push(f->db, f->pid, D("e"), IMAGE_CFG, "clean");
    scanned(f->db, clean, "{\"vulnerabilities\":[]}");
    assert_null(judge(f->db, "{}", "{}", clean, 10));
}

static void test_policy__allowlists(void **state)
{
    struct fixture *f = *state;
    int64_t id = push(f->db, f->pid, D("a"), IMAGE_CFG, "t");
    scanned(f->db, id, "{\"vulnerabilities\":[" V("CVE-1", "a", "Critical") ","
                       V("CVE-2", "a", "Low") "]}");
    const char *own = "{\"items\":[{\"cve_id\":\"CVE-1\"}]}";
    const char *crit = "{\"severity\":\"critical\"}";
    const char *mine = "{\"severity\":\"critical\",\"reuse_sys_cve_allowlist\":\"false\"}";
    /* reuse absent: the system list (empty), the project's is ignored */
    assert_non_null(judge(f->db, crit, own, id, 10));
    assert_null(judge(f->db, mine, own, id, 10));
    /* expired at now: ignored as a whole */
    const char *expiring = "{\"items\":[{\"cve_id\":\"CVE-1\"}],\"expires_at\":100}";
    assert_null(judge(f->db, mine, expiring, id, 99));
    const char *m = judge(f->db, mine, expiring, id, 100);
    assert_non_null(strstr(m, "current image with 2 vulnerabilities"));
    /* the system list, used while the project reuses it */
    assert_int_equal(wh_db_setting_set(f->db, WH_SETTING_CVE_ALLOWLIST, own, 1), 0);
    assert_null(judge(f->db, crit, "{}", id, 10));
    assert_null(judge(f->db, "{\"severity\":\"critical\",\"reuse_sys_cve_allowlist\":\"TRUE\"}",
                      "{}", id, 10));
    assert_non_null(judge(f->db, mine, "{}", id, 10));
    /* allowlisted items are not counted: the Low one remains, and blocks at low */
    const char *low = judge(f->db, "{\"severity\":\"low\"}", "{}", id, 10);
    assert_non_null(low);
    assert_non_null(strstr(low, "current image with 1 vulnerability cannot"));
    assert_non_null(strstr(low, "Blocking vulnerabilities: CVE-2."));
}

/* A remembered verdict never outlives its report, list or threshold. */
static void test_policy__remembered_verdicts_follow_changes(void **state)
{
    struct fixture *f = *state;
    int64_t id = push(f->db, f->pid, D("a"), IMAGE_CFG, "t");
    scanned(f->db, id, "{\"vulnerabilities\":[" V("CVE-1", "a", "Critical") "]}");
    const char *crit = "{\"severity\":\"critical\"}";
    for (int i = 0; i < 3; i++) /* judged, then remembered */
        assert_non_null(strstr(judge(f->db, crit, "{}", id, 10), "Blocking vulnerabilities: CVE-1."));
    /* the system list changes */
    assert_int_equal(wh_db_setting_set(f->db, WH_SETTING_CVE_ALLOWLIST,
                                       "{\"items\":[{\"cve_id\":\"CVE-1\"}],\"expires_at\":50}", 5),
                     0);
    assert_null(judge(f->db, crit, "{}", id, 10));
    assert_null(judge(f->db, crit, "{}", id, 10));
    /* ... and expires */
    assert_non_null(judge(f->db, crit, "{}", id, 50));
    assert_int_equal(wh_db_setting_set(f->db, WH_SETTING_CVE_ALLOWLIST, "{}", 6), 0);
    assert_non_null(judge(f->db, crit, "{}", id, 10));
    /* the threshold changes */
    assert_non_null(judge(f->db, "{}", "{}", id, 10));
    /* a new report */
    scanned(f->db, id, "{\"vulnerabilities\":[" V("CVE-2", "a", "Low") "]}");
    assert_null(judge(f->db, crit, "{}", id, 10));
    assert_non_null(strstr(judge(f->db, "{\"severity\":\"low\"}", "{}", id, 10),
                           "Blocking vulnerabilities: CVE-2."));
    /* a scan requested again: its status, not the remembered verdict */
    assert_int_equal(wh_db_scan_request(f->db, id, "again", 20, NULL), 0);
    assert_non_null(strstr(judge(f->db, crit, "{}", id, 10), "\"Pending\" status"));
}

static void test_policy__status_and_kinds(void **state)
{
    struct fixture *f = *state;
    int64_t img = push(f->db, f->pid, D("a"), IMAGE_CFG, "img");
    const char *m = judge(f->db, "{\"severity\":\"high\"}", "{}", img, 10);
    assert_string_equal(m, "current image without vulnerability scanning cannot be pulled due "
                           "to configured policy in 'Prevent images with vulnerability severity "
                           "of \"High\" or higher from running.' To continue with pull, please "
                           "contact your project administrator for help.");
    assert_int_equal(wh_db_scan_request(f->db, img, "r1", 1, NULL), 0);
    m = judge(f->db, "{}", "{}", img, 10);
    assert_non_null(strstr(m, "current image with \"Pending\" status of vulnerability scanning "
                              "cannot be pulled"));
    assert_int_equal(wh_db_scan_stop(f->db, img, 11, NULL), 0);
    m = judge(f->db, "{}", "{}", img, 10);
    assert_non_null(strstr(m, "current image with \"Stopped\" status of vulnerability scanning"));
    /* not an image, and cosign's tagged signature: allowed unscanned */
    assert_null(judge(f->db, "{}", "{}",
                      push(f->db, f->pid, D("b"), "application/vnd.example+json", "art"), 10));
    char tag[80];
    snprintf(tag, sizeof(tag), "sha256-%.64s.sig", D("a") + 7);
    assert_null(judge(f->db, "{}", "{}", push(f->db, f->pid, D("c"), IMAGE_CFG, tag), 10));
    /* an index: refused while none of its image children is scanned, then
     * served (each child is judged when it is pulled); an index of non-images passes */
    int64_t child = push(f->db, f->pid, D("e"), IMAGE_CFG, NULL);
    const char *kids[] = {D("e")};
    struct wh_artifact_in ix = {.repo = "p/r", .project_id = f->pid, .digest = D("f"),
                                .media_type = "application/vnd.oci.image.index.v1+json",
                                .size = 100, .children = kids, .nchildren = 1, .tag = "ix"};
    assert_int_equal(wh_db_manifest_put(f->db, &ix), 0);
    struct wh_manifest_ref ref;
    assert_int_equal(wh_db_manifest_get(f->db, "p/r", "ix", false, &ref), 0);
    m = judge(f->db, "{}", "{}", ref.artifact_id, 10);
    assert_non_null(strstr(m, "current image without vulnerability scanning"));
    scanned(f->db, child, "{\"vulnerabilities\":[" V("CVE-1", "a", "Critical") "]}");
    assert_null(judge(f->db, "{}", "{}", ref.artifact_id, 10));
    assert_non_null(judge(f->db, "{}", "{}", child, 10));
    const char *other[] = {D("b")};
    struct wh_artifact_in ix2 = ix;
    ix2.digest = D("9");
    ix2.children = other;
    ix2.tag = "ix2";
    assert_int_equal(wh_db_manifest_put(f->db, &ix2), 0);
    assert_int_equal(wh_db_manifest_get(f->db, "p/r", "ix2", false, &ref), 0);
    assert_null(judge(f->db, "{}", "{}", ref.artifact_id, 10));

    assert_true(wh_policy_prevent_vul("{\"prevent_vul\":\"1\"}"));
    assert_true(wh_policy_prevent_vul("{\"prevent_vul\":\"True\"}"));
    assert_false(wh_policy_prevent_vul("{\"prevent_vul\":\"false\"}"));
    assert_false(wh_policy_prevent_vul("not json"));
    assert_false(wh_policy_prevent_vul(NULL));
}

static void parse_fails(const char *body, const char *want)
{
    json_t *in = json_loads(body, 0, NULL), *out = NULL;
    char msg[256] = "";
    assert_non_null(in);
    assert_int_equal(wh_policy_allowlist_parse(&out, in, msg, sizeof(msg)), WH_EINVALID);
    assert_string_equal(msg, want);
    json_decref(out);
    json_decref(in);
}

static void test_policy__allowlist_parse(void **state)
{
    (void)state;
    parse_fails("{\"items\":[{\"cve_id\":\" \\t\"}]}", "empty or whitespace-only CVE ID in allowlist");
    parse_fails("{\"items\":[{}]}", "empty or whitespace-only CVE ID in allowlist");
    parse_fails("{\"items\":[{\"cve_id\":\"A\"},{\"cve_id\":\"A\"}]}",
                "duplicate CVE ID in allowlist: A");
    parse_fails("{\"items\":{}}", "cve_allowlist.items must be an array");
    parse_fails("{\"expires_at\":\"soon\"}",
                "cve_allowlist.expires_at must be an integer (unix seconds) or null");
    json_t *in = json_loads("{\"items\":[{\"cve_id\":\"A\",\"x\":1}],\"expires_at\":5}", 0, NULL);
    json_t *out = NULL;
    char msg[64];
    assert_int_equal(wh_policy_allowlist_parse(&out, in, msg, sizeof(msg)), 0);
    char *text = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"expires_at\":5,\"items\":[{\"cve_id\":\"A\"}]}");
    free(text);
    json_decref(out);
    json_decref(in);
    /* items [] without expires_at clears both */
    in = json_loads("{\"items\":[],\"expires_at\":null}", 0, NULL);
    assert_int_equal(wh_policy_allowlist_parse(&out, in, msg, sizeof(msg)), 0);
    text = json_dumps(out, JSON_COMPACT);
    assert_string_equal(text, "{\"items\":[]}");
    free(text);
    json_decref(out);
    json_decref(in);
}

/* What the API and the command line store: the checked text, capped; the threshold's spelling. */
static void test_policy__stored_text_and_severity(void **state)
{
    (void)state;
    char msg[128] = "", sev[16];
    char *text = NULL;
    json_t *in = json_loads("{\"items\":[{\"cve_id\":\"CVE-1\"}],\"expires_at\":7}", 0, NULL);
    assert_int_equal(wh_policy_allowlist_text(&text, in, msg, sizeof(msg)), 0);
    assert_string_equal(text, "{\"items\":[{\"cve_id\":\"CVE-1\"}],\"expires_at\":7}");
    free(text);
    json_decref(in);
    /* a bad body: the parser's message, no text */
    in = json_loads("{\"items\":[{\"cve_id\":\"\"}]}", 0, NULL);
    assert_int_equal(wh_policy_allowlist_text(&text, in, msg, sizeof(msg)), WH_EINVALID);
    assert_null(text);
    assert_string_equal(msg, "empty or whitespace-only CVE ID in allowlist");
    json_decref(in);
    /* a list whose text would not fit the stored column is refused, not cut */
    in = json_object();
    json_t *items = json_array();
    json_object_set_new(in, "items", items);
    for (int i = 0; i < 400; i++) { /* 400 x 29 bytes */
        char id[32];
        snprintf(id, sizeof(id), "CVE-2024-%05d", i);
        json_array_append_new(items, json_pack("{s:s}", "cve_id", id));
    }
    assert_int_equal(wh_policy_allowlist_text(&text, in, msg, sizeof(msg)), WH_EINVALID);
    assert_null(text);
    assert_string_equal(msg, "cve_allowlist exceeds 4095 bytes");
    json_decref(in);

    assert_int_equal(wh_policy_severity_norm(sev, sizeof(sev), "CriTical"), 0);
    assert_string_equal(sev, "critical");
    assert_int_equal(wh_policy_severity_norm(sev, sizeof(sev), "none"), 0);
    assert_string_equal(sev, "none");
    assert_int_equal(wh_policy_severity_norm(sev, sizeof(sev), "negligible"), WH_EINVALID);
    assert_string_equal(sev, "");
    assert_int_equal(wh_policy_severity_norm(sev, sizeof(sev), ""), WH_EINVALID);
    assert_int_equal(wh_policy_severity_norm(sev, sizeof(sev), NULL), WH_EINVALID);
    assert_int_equal(wh_policy_severity_norm(sev, sizeof(sev), "criticalcriticalcritical"),
                     WH_EINVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_policy__threshold_count_and_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy__allowlists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy__remembered_verdicts_follow_changes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_policy__status_and_kinds, setup, teardown),
        cmocka_unit_test(test_policy__allowlist_parse),
        cmocka_unit_test(test_policy__stored_text_and_severity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
