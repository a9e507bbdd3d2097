/*
 * Unit tests of the pluggable scanner API's pure parts (adapter/) and of the
 * scanner registrations in db/ (db_scanner.c, schema 10): Harbor's checks of
 * adapter metadata, an adapter's report turned into what the scan queue
 * stores (items checked, severity and summary recomputed, caps), the
 * adapter's own metadata passing its own checks, the bearer check of the
 * adapter API, and which scanner is in charge of an artifact (the project's
 * choice, the default, the built-in one).
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
#include "adapter/adapter.h"
#include "db/db.h"
#include "scan/scan.h"

#define DOCKER "application/vnd.docker.distribution.manifest.v2+json"

static int meta_check(const char *text)
{
    json_t *m = json_loads(text, 0, NULL);
    assert_non_null(m);
    int rc = wh_adapter_metadata_check(m);
    json_decref(m);
    return rc;
}

static void test_adapter__metadata_checks(void **state)
{
    (void)state;
    assert_int_equal(meta_check("{\"scanner\":{\"name\":\"T\",\"vendor\":\"V\",\"version\":\"1\"},"
                                "\"capabilities\":[{\"consumes_mime_types\":[\"" DOCKER "\"],"
                                "\"produces_mime_types\":[\"" WH_REPORT_MIME "\"]}]}"),
                     0);
    /* no version; no capability; a capability without the Docker manifest; nothing produced */
    assert_int_equal(meta_check("{\"scanner\":{\"name\":\"T\",\"vendor\":\"V\"},"
                                "\"capabilities\":[{\"consumes_mime_types\":[\"" DOCKER "\"],"
                                "\"produces_mime_types\":[\"" WH_REPORT_MIME "\"]}]}"),
                     WH_EINVALID);
    assert_int_equal(meta_check("{\"scanner\":{\"name\":\"T\",\"vendor\":\"V\",\"version\":\"1\"},"
                                "\"capabilities\":[]}"),
                     WH_EINVALID);
    assert_int_equal(meta_check("{\"scanner\":{\"name\":\"T\",\"vendor\":\"V\",\"version\":\"1\"},"
                                "\"capabilities\":[{\"consumes_mime_types\":[\"x\"],"
                                "\"produces_mime_types\":[\"" WH_REPORT_MIME "\"]}]}"),
                     WH_EINVALID);
    assert_non_null(strstr(wh_error_msg(), "consumes_mime_types"));
    assert_int_equal(meta_check("{\"scanner\":{\"name\":\"T\",\"vendor\":\"V\",\"version\":\"1\"},"
                                "\"capabilities\":[{\"consumes_mime_types\":[\"" DOCKER "\"],"
                                "\"produces_mime_types\":[\"text/plain\"]}]}"),
                     WH_EINVALID);
    assert_int_equal(meta_check("[]"), WH_EINVALID);

    /* wharf's own metadata, as served at /api/v1/metadata, passes */
    char dir[] = "/tmp/wharf-adapter-XXXXXX";
    assert_non_null(mkdtemp(dir));
    wh_adapter *a = NULL;
    struct wh_adapter_config cfg = {.enabled = true, .token = "0123456789abcdef",
                                    .max_concurrent = 1, .max_image_bytes = 1 << 20,
                                    .timeout_s = 5, .data_dir = dir};
    assert_int_equal(wh_adapter_new(&a, &cfg), 0);
    json_t *m = wh_adapter_metadata(a);
    assert_int_equal(wh_adapter_metadata_check(m), 0);
    json_decref(m);
    /* the bearer: exact match only, by either header */
    assert_true(wh_adapter_authorized(a, "Bearer 0123456789abcdef", NULL));
    assert_true(wh_adapter_authorized(a, "bearer 0123456789abcdef", NULL));
    assert_true(wh_adapter_authorized(a, NULL, "0123456789abcdef"));
    assert_false(wh_adapter_authorized(a, "Bearer 0123456789abcde", NULL));
    assert_false(wh_adapter_authorized(a, "Bearer 0123456789abcdefg", NULL));
    assert_false(wh_adapter_authorized(a, "Basic 0123456789abcdef", NULL));
    assert_false(wh_adapter_authorized(a, NULL, NULL));
    /* a bad request is refused before anything starts */
    char id[WH_ADAPTER_ID_MAX];
    json_t *req = json_loads("{\"registry\":{\"url\":\"ftp://x\"},\"artifact\":{\"repository\":"
                             "\"a/b\",\"digest\":\"sha256:" "0000000000000000000000000000000000000000000000000000000000000000"
                             "\",\"mime_type\":\"" DOCKER "\"}}",
                             0, NULL);
    assert_int_equal(wh_adapter_submit(a, req, id), WH_EINVALID);
    json_decref(req);
    char *text = NULL;
    unsigned refresh = 0;
    assert_int_equal(wh_adapter_report(a, "nope", &text, &refresh), WH_ENOTFOUND);
    wh_adapter_free(a);
    /* an empty token authorizes nobody */
    cfg.token = "";
    assert_int_equal(wh_adapter_new(&a, &cfg), 0);
    assert_false(wh_adapter_authorized(a, "Bearer ", ""));
    wh_adapter_free(a);
    rmdir(dir);
}

static int import(const char *text, char **rep, char **sum, char *sev)
{
    json_t *r = json_loads(text, 0, NULL);
    assert_non_null(r);
    int rc = wh_adapter_report_import(r, "sha256:abc", rep, sum, sev, 16);
    json_decref(r);
    return rc;
}

static void test_adapter__report_import(void **state)
{
    (void)state;
    char *rep = NULL, *sum = NULL, sev[16];
    assert_int_equal(
        import("{\"generated_at\":\"2024-01-01T00:00:00Z\",\"severity\":\"Low\","
               "\"scanner\":{\"name\":\"T\",\"vendor\":\"V\",\"version\":\"1\"},"
               "\"vulnerabilities\":["
               "{\"id\":\"CVE-1\",\"package\":\"p\",\"version\":\"1\",\"severity\":\"High\","
               "\"fix_version\":\"2\",\"links\":[\"https://x\"],\"junk\":{\"a\":1},"
               "\"artifact_digests\":[\"sha256:other\"]},"
               "{\"id\":\"CVE-2\",\"package\":\"q\",\"version\":\"1\",\"severity\":\"Unknown\"},"
               "{\"id\":\"CVE-3\",\"package\":\"q\",\"version\":\"1\",\"severity\":\"High\","
               "\"description\":7}]}",
               &rep, &sum, sev),
        0);
    /* the overall severity is recomputed from the items, not taken from the report */
    assert_string_equal(sev, "High");
    assert_string_equal(sum, "{\"total\":3,\"fixable\":1,\"summary\":{\"High\":2,\"Unknown\":1}}");
    json_t *r = json_loads(rep, 0, NULL);
    json_t *v0 = json_array_get(json_object_get(r, "vulnerabilities"), 0);
    assert_null(json_object_get(v0, "junk"));
    assert_string_equal(json_string_value(json_array_get(json_object_get(v0, "artifact_digests"), 0)),
                        "sha256:abc");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "scanner"), "name")),
                        "T");
    /* a field of the wrong type is left out */
    json_t *v2 = json_array_get(json_object_get(r, "vulnerabilities"), 2);
    assert_null(json_object_get(v2, "description"));
    json_decref(r);
    free(rep);
    free(sum);

    /* only Unknown findings: "None" overall, as the built-in scanner says */
    assert_int_equal(import("{\"vulnerabilities\":[{\"id\":\"X\",\"package\":\"p\",\"version\":"
                            "\"1\",\"severity\":\"Unknown\"}]}",
                            &rep, &sum, sev),
                     0);
    assert_string_equal(sev, "None");
    free(rep);
    free(sum);
    /* no vulnerabilities (null or absent) is an empty report */
    assert_int_equal(import("{\"vulnerabilities\":null}", &rep, &sum, sev), 0);
    assert_string_equal(sum, "{\"total\":0,\"fixable\":0,\"summary\":{}}");
    free(rep);
    free(sum);

    /* garbage */
    rep = sum = NULL;
    assert_int_equal(import("[]", &rep, &sum, sev), WH_EINVALID);
    assert_int_equal(import("{\"vulnerabilities\":{}}", &rep, &sum, sev), WH_EINVALID);
    assert_int_equal(import("{\"vulnerabilities\":[{\"id\":\"X\",\"package\":\"p\",\"version\":"
                            "\"1\",\"severity\":\"Apocalyptic\"}]}",
                            &rep, &sum, sev),
                     WH_EINVALID);
    assert_int_equal(import("{\"vulnerabilities\":[{\"package\":\"p\",\"version\":\"1\","
                            "\"severity\":\"Low\"}]}",
                            &rep, &sum, sev),
                     WH_EINVALID);
    assert_int_equal(import("{\"vulnerabilities\":[7]}", &rep, &sum, sev), WH_EINVALID);
    assert_null(rep);
    assert_null(sum);
}

/* A report of `n` items, each `item`, in a buffer the caller frees. */
static char *many(const char *item, size_t n, size_t *len)
{
    size_t il = strlen(item);
    char *b = malloc(32 + n * (il + 1));
    size_t k = (size_t)sprintf(b, "{\"vulnerabilities\":[");
    for (size_t i = 0; i < n; i++) {
        memcpy(b + k, item, il);
        k += il;
        b[k++] = i + 1 < n ? ',' : ']';
    }
    b[k++] = '}';
    *len = k;
    return b;
}

static void test_adapter__report_weigh(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int want;
    } cases[] = {
        {"", 0},
        {"{}", 0},
        {"{\"vulnerabilities\":[]}", 0},
        /* brackets, quotes and commas inside strings are text */
        {"{\"vulnerabilities\":[{\"id\":\"[[[,,,{{{\\\"]]]\"}]}", 0},
        /* not JSON: left to the parser */
        {"not json {[", 0},
        {"]]]}}}", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(wh_adapter_report_weigh(cases[i].text, strlen(cases[i].text)),
                         cases[i].want);
    /* nesting: up to the cap */
    char deep[2 * WH_ADAPTER_REPORT_DEPTH_MAX + 2];
    memset(deep, '[', WH_ADAPTER_REPORT_DEPTH_MAX);
    memset(deep + WH_ADAPTER_REPORT_DEPTH_MAX, ']', WH_ADAPTER_REPORT_DEPTH_MAX);
    assert_int_equal(wh_adapter_report_weigh(deep, 2 * WH_ADAPTER_REPORT_DEPTH_MAX), 0);
    memset(deep, '[', WH_ADAPTER_REPORT_DEPTH_MAX + 1);
    assert_int_equal(wh_adapter_report_weigh(deep, WH_ADAPTER_REPORT_DEPTH_MAX + 1), WH_ETOOBIG);
    assert_non_null(strstr(wh_error_msg(), "nested deeper"));
    /* the same brackets inside a string (after an escaped quote) are text */
    deep[0] = '"';
    deep[1] = '\\';
    deep[2] = '"';
    memset(deep + 3, '[', WH_ADAPTER_REPORT_DEPTH_MAX + 1);
    deep[WH_ADAPTER_REPORT_DEPTH_MAX + 4] = '"';
    assert_int_equal(wh_adapter_report_weigh(deep, WH_ADAPTER_REPORT_DEPTH_MAX + 5), 0);

    /* items of the top-level list: up to the cap, not one more (however the key is spelt) */
    size_t len;
    char *b = many("{}", WH_ADAPTER_REPORT_ITEMS_MAX, &len);
    assert_int_equal(wh_adapter_report_weigh(b, len), 0);
    free(b);
    b = many("{}", WH_ADAPTER_REPORT_ITEMS_MAX + 1, &len);
    assert_int_equal(wh_adapter_report_weigh(b, len), WH_ETOOBIG);
    assert_non_null(strstr(wh_error_msg(), "more than 100000 vulnerabilities"));
    free(b);
    b = many("1", WH_ADAPTER_REPORT_ITEMS_MAX + 1, &len);
    assert_int_equal(wh_adapter_report_weigh(b, len), WH_ETOOBIG);
    free(b);
    const char *esc = "{\"vulnerabilit\\u0069es\":[";
    char *e = malloc(strlen(esc) + 3 * (WH_ADAPTER_REPORT_ITEMS_MAX + 1) + 4);
    size_t k = (size_t)sprintf(e, "%s", esc);
    for (size_t i = 0; i <= WH_ADAPTER_REPORT_ITEMS_MAX; i++)
        k += (size_t)sprintf(e + k, "{},");
    e[k - 1] = ']';
    e[k++] = '}';
    assert_int_equal(wh_adapter_report_weigh(e, k), WH_ETOOBIG);
    free(e);
    /* the same count elsewhere than the top-level list is no item */
    b = many("{}", WH_ADAPTER_REPORT_ITEMS_MAX + 1, &len);
    memcpy(b + 2, "Vulnerabilities", 15);
    assert_int_equal(wh_adapter_report_weigh(b, len), 0);
    free(b);

    /* all values: items within the cap, each with too many values */
    b = many("{\"a\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,\"x\",true,null]}",
             WH_ADAPTER_REPORT_ITEMS_MAX / 2, &len);
    assert_int_equal(wh_adapter_report_weigh(b, len), 0);
    free(b);
    b = many("{\"a\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,\"x\",true,null]}",
             WH_ADAPTER_REPORT_ITEMS_MAX, &len);
    assert_int_equal(wh_adapter_report_weigh(b, len), WH_ETOOBIG);
    assert_non_null(strstr(wh_error_msg(), "JSON values"));
    free(b);
}

static void test_adapter__report_caps(void **state)
{
    (void)state;
    char *rep = NULL, *sum = NULL, sev[16];
    char longs[WH_ADAPTER_ITEM_STR_MAX + 2];
    memset(longs, 'a', sizeof(longs) - 1);
    longs[sizeof(longs) - 1] = '\0';
    /* each identifying string: at its cap accepted, one byte more refused, naming it */
    static const char *const fields[] = {"id", "package", "version", "fix_version", "status"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        for (int over = 0; over <= 1; over++) {
            json_t *v = json_pack("{s:s, s:s, s:s, s:s}", "id", "CVE-1", "package", "p",
                                  "version", "1", "severity", "Low");
            json_object_set_new(v, fields[i],
                                json_stringn(longs, WH_ADAPTER_ITEM_STR_MAX + (size_t)over));
            json_t *r = json_pack("{s:[o]}", "vulnerabilities", v);
            rep = sum = NULL;
            int rc = wh_adapter_report_import(r, "sha256:abc", &rep, &sum, sev, 16);
            json_decref(r);
            assert_int_equal(rc, over ? WH_ETOOBIG : 0);
            if (over) {
                assert_non_null(strstr(wh_error_msg(), fields[i]));
                assert_null(rep);
            }
            free(rep);
            free(sum);
        }
    }
    /* lists: 64 links accepted, 65 refused; a link or CWE id too long refused; a vector too */
    json_t *links = json_array();
    for (int i = 0; i < WH_ADAPTER_ITEM_LIST_MAX; i++)
        json_array_append_new(links, json_string("https://x"));
    json_t *v = json_pack("{s:s, s:s, s:s, s:s, s:O}", "id", "CVE-1", "package", "p", "version",
                          "1", "severity", "Low", "links", links);
    json_t *r = json_pack("{s:[O]}", "vulnerabilities", v);
    assert_int_equal(wh_adapter_report_import(r, "sha256:abc", &rep, &sum, sev, 16), 0);
    free(rep);
    free(sum);
    json_decref(r);
    json_array_append_new(links, json_string("https://x"));
    r = json_pack("{s:[O]}", "vulnerabilities", v);
    assert_int_equal(wh_adapter_report_import(r, "sha256:abc", &rep, &sum, sev, 16), WH_ETOOBIG);
    assert_non_null(strstr(wh_error_msg(), "links"));
    json_decref(r);
    json_object_set_new(v, "links", json_pack("[s]", longs));
    r = json_pack("{s:[O]}", "vulnerabilities", v);
    assert_int_equal(wh_adapter_report_import(r, "sha256:abc", &rep, &sum, sev, 16), WH_ETOOBIG);
    json_decref(r);
    json_object_del(v, "links");
    json_object_set_new(v, "cwe_ids", json_pack("[s]", longs));
    r = json_pack("{s:[O]}", "vulnerabilities", v);
    assert_int_equal(wh_adapter_report_import(r, "sha256:abc", &rep, &sum, sev, 16), WH_ETOOBIG);
    assert_non_null(strstr(wh_error_msg(), "cwe_ids"));
    json_decref(r);
    json_object_del(v, "cwe_ids");
    json_object_set_new(v, "preferred_cvss", json_pack("{s:s}", "vector_v3", longs));
    r = json_pack("{s:[O]}", "vulnerabilities", v);
    assert_int_equal(wh_adapter_report_import(r, "sha256:abc", &rep, &sum, sev, 16), WH_ETOOBIG);
    assert_non_null(strstr(wh_error_msg(), "preferred_cvss"));
    json_decref(r);
    json_decref(links);

    /* texts are cut at their caps, on a character boundary: "é" is two bytes */
    size_t dn = WH_ADAPTER_DESC_MAX + 9;
    char *desc = malloc(dn + 1);
    memset(desc, 'd', dn);
    desc[WH_ADAPTER_DESC_MAX - 1] = (char)0xc3; /* "é" straddles the cap */
    desc[WH_ADAPTER_DESC_MAX] = (char)0xa9;
    desc[dn] = '\0';
    json_object_set_new(v, "description", json_string(desc));
    json_object_set_new(v, "title", json_stringn(longs, 10));
    json_object_set_new(v, "preferred_cvss",
                        json_pack("{s:f, s:s, s:s, s:i}", "score_v3", 7.5, "vector_v3",
                                  "CVSS:3.1/AV:N", "score_v2", "junk", "extra", 1));
    r = json_pack("{s:[O]}", "vulnerabilities", v);
    assert_int_equal(wh_adapter_report_import(r, "sha256:abc", &rep, &sum, sev, 16), 0);
    json_decref(r);
    json_t *got = json_loads(rep, 0, NULL);
    json_t *g0 = json_array_get(json_object_get(got, "vulnerabilities"), 0);
    const char *d = json_string_value(json_object_get(g0, "description"));
    assert_non_null(d);
    assert_int_equal(strlen(d), WH_ADAPTER_DESC_MAX - 1);
    assert_int_equal(strlen(json_string_value(json_object_get(g0, "title"))), 10);
    /* preferred_cvss keeps Harbor's four keys, a score that is no number as null */
    json_t *cv = json_object_get(g0, "preferred_cvss");
    assert_int_equal(json_object_size(cv), 4);
    assert_true(json_number_value(json_object_get(cv, "score_v3")) == 7.5);
    assert_true(json_is_null(json_object_get(cv, "score_v2")));
    assert_string_equal(json_string_value(json_object_get(cv, "vector_v2")), "");
    json_decref(got);
    free(rep);
    free(sum);
    free(desc);
    json_decref(v);
}

/* ---- registrations and the scanner in charge ---- */

static void reg(struct wh_scanner_reg *r, const char *uuid, const char *name, const char *url)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->uuid, sizeof(r->uuid), "%s", uuid);
    snprintf(r->name, sizeof(r->name), "%s", name);
    snprintf(r->url, sizeof(r->url), "%s", url);
    r->created_ms = r->updated_ms = 1;
}

static void test_adapter__registrations(void **state)
{
    (void)state;
    char dir[] = "/tmp/wharf-dbscanner-XXXXXX", path[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/wharf.db", dir);
    wh_db *db = NULL;
    assert_int_equal(test_db_open(&db, path), 0);
    struct wh_project_info in;
    memset(&in, 0, sizeof(in));
    snprintf(in.p.name, sizeof(in.p.name), "team");
    in.storage_limit = -1;
    int64_t pid = 0;
    assert_int_equal(wh_db_project_insert(db, &in, &pid), 0);
    const char *blobs[] = {"sha256:1111111111111111111111111111111111111111111111111111111111111111"};
    assert_int_equal(wh_db_blob_link(db, pid, "team/app", blobs[0], 10), 0);
    struct wh_artifact_in a = {.repo = "team/app", .project_id = pid,
                               .digest = "sha256:2222222222222222222222222222222222222222222222222222222222222222",
                               .media_type = DOCKER,
                               .artifact_type = "application/vnd.docker.container.image.v1+json",
                               .size = 100, .blobs = blobs, .nblobs = 1, .tag = "t"};
    assert_int_equal(wh_db_manifest_put(db, &a), 0);
    struct wh_manifest_ref ref;
    assert_int_equal(wh_db_manifest_get(db, "team/app", a.digest, true, &ref), 0);

    struct wh_scan_target *t = malloc(sizeof(*t));
    struct wh_scanner_reg *r = malloc(sizeof(*r));
    /* nothing registered: the built-in scanner */
    assert_int_equal(wh_db_scan_target(db, ref.artifact_id, t), 0);
    assert_false(t->external);
    assert_string_equal(t->repo_name, "team/app");
    assert_int_equal(t->project_id, pid);
    assert_int_equal(wh_db_scan_target(db, 999999, t), WH_ENOTFOUND);

    reg(r, "u1", "one", "http://one");
    assert_int_equal(wh_db_scanner_create(db, r), 0);
    reg(r, "u2", "one", "http://two");
    assert_int_equal(wh_db_scanner_create(db, r), WH_EEXISTS);
    assert_non_null(strstr(wh_error_msg(), "name"));
    reg(r, "u2", "two", "http://one");
    assert_int_equal(wh_db_scanner_create(db, r), WH_EEXISTS);
    assert_non_null(strstr(wh_error_msg(), "URL"));
    reg(r, "u2", "two", "http://two");
    assert_int_equal(wh_db_scanner_create(db, r), 0);

    /* registered but not chosen nor default: still the built-in scanner */
    assert_int_equal(wh_db_scan_target(db, ref.artifact_id, t), 0);
    assert_false(t->external);
    /* the default */
    assert_int_equal(wh_db_scanner_set_default(db, "u2"), 0);
    assert_int_equal(wh_db_scan_target(db, ref.artifact_id, t), 0);
    assert_true(t->external);
    assert_string_equal(t->reg.uuid, "u2");
    assert_int_equal(wh_db_scanner_set_default(db, "nope"), WH_ENOTFOUND);
    /* the project's choice wins, the built-in one included */
    assert_int_equal(wh_db_project_scanner_set(db, pid, "u1"), 0);
    assert_int_equal(wh_db_scan_target(db, ref.artifact_id, t), 0);
    assert_string_equal(t->reg.uuid, "u1");
    assert_int_equal(wh_db_project_scanner_set(db, pid, WH_ADAPTER_BUILTIN_UUID), 0);
    assert_int_equal(wh_db_scan_target(db, ref.artifact_id, t), 0);
    assert_false(t->external);
    /* deleting the chosen registration puts the project back on the default */
    assert_int_equal(wh_db_project_scanner_set(db, pid, "u1"), 0);
    assert_int_equal(wh_db_scanner_delete(db, "u1"), 0);
    char uuid[WH_SCANNER_UUID_MAX];
    assert_int_equal(wh_db_project_scanner_get(db, pid, uuid), WH_ENOTFOUND);
    assert_int_equal(wh_db_scan_target(db, ref.artifact_id, t), 0);
    assert_string_equal(t->reg.uuid, "u2");
    assert_int_equal(wh_db_scanner_delete(db, "u1"), WH_ENOTFOUND);
    /* back to the built-in default */
    assert_int_equal(wh_db_scanner_set_default(db, NULL), 0);
    assert_int_equal(wh_db_scan_target(db, ref.artifact_id, t), 0);
    assert_false(t->external);
    /* an update keeps the uniqueness */
    assert_int_equal(wh_db_scanner_get(db, "u2", r), 0);
    snprintf(r->description, sizeof(r->description), "changed");
    assert_int_equal(wh_db_scanner_update(db, r, 5), 0);
    assert_int_equal(wh_db_scanner_get(db, "u2", r), 0);
    assert_string_equal(r->description, "changed");
    assert_int_equal(r->updated_ms, 5);
    reg(r, "u2", "one", "http://two"); /* the name of another: refused */
    reg(r, "missing", "three", "http://three");
    assert_int_equal(wh_db_scanner_update(db, r, 6), WH_ENOTFOUND);
    reg(r, "u3", "three", "http://three");
    assert_int_equal(wh_db_scanner_create(db, r), 0);
    snprintf(r->name, sizeof(r->name), "two");
    assert_int_equal(wh_db_scanner_update(db, r, 7), WH_EEXISTS);

    free(t);
    free(r);
    wh_db_close(db);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adapter__metadata_checks),
        cmocka_unit_test(test_adapter__report_import),
        cmocka_unit_test(test_adapter__report_weigh),
        cmocka_unit_test(test_adapter__report_caps),
        cmocka_unit_test(test_adapter__registrations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
