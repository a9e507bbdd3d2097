/* Unit tests for registry/'s pure parsers: names, tags, ranges, manifests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "registry/registry.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_registry__names(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        bool ok;
    } cases[] = {
        {"library/ubuntu", true},
        {"team/app", true},
        {"team/a/b/c", true},
        {"my-team/my_app", true},
        {"team/a__b", true},
        {"team/a---b", true},
        {"team/a.b", true},
        {"t1.x/r", true},
        {"library", false},           /* no project/repository split */
        {"Library/ubuntu", false},    /* upper case */
        {"library/Ubuntu", false},
        {"library/../etc", false},    /* traversal */
        {"library/./x", false},
        {"../library/x", false},
        {"library//x", false},        /* empty component */
        {"library/x/", false},
        {"/library/x", false},
        {"library/-x", false},
        {"library/x-", false},
        {"library/a___b", false},     /* three underscores */
        {"library/a._b", false},
        {"my__team/app", false},      /* project rule: single separators only */
        {"my--team/app", false},
        {"team/a b", false},
        {"team/a%2fb", false},
        {"", false},
    };
    for (size_t i = 0; i < N(cases); i++) {
        bool got = wh_ref_name_valid(cases[i].name, strlen(cases[i].name));
        if (got != cases[i].ok)
            fail_msg("name %s: expected %d", cases[i].name, cases[i].ok);
    }
    char longname[300];
    memset(longname, 'a', sizeof(longname));
    longname[7] = '/';
    assert_true(wh_ref_name_valid(longname, 255));
    assert_false(wh_ref_name_valid(longname, 256));
}

static void test_registry__tags(void **state)
{
    (void)state;
    static const struct {
        const char *tag;
        bool ok;
    } cases[] = {
        {"latest", true}, {"1.4", true},    {"v1.2.3-rc.1", true}, {"_x", true},
        {"A_b-C.d", true}, {".x", false},   {"-x", false},         {"a/b", false},
        {"a:b", false},    {"", false},     {"a b", false},
    };
    for (size_t i = 0; i < N(cases); i++)
        if (wh_ref_tag_valid(cases[i].tag, strlen(cases[i].tag)) != cases[i].ok)
            fail_msg("tag %s: expected %d", cases[i].tag, cases[i].ok);
    char t[130];
    memset(t, 'a', sizeof(t));
    assert_true(wh_ref_tag_valid(t, 128));
    assert_false(wh_ref_tag_valid(t, 129));
}

static void test_registry__range(void **state)
{
    (void)state;
    static const struct {
        const char *hdr;
        uint64_t size;
        int rc;
        uint64_t first, last;
    } cases[] = {
        {"bytes=0-4", 10, 0, 0, 4},
        {"bytes=5-", 10, 0, 5, 9},
        {"bytes=-3", 10, 0, 7, 9},
        {"bytes=-30", 10, 0, 0, 9},
        {"bytes=3-100", 10, 0, 3, 9},
        {"bytes=9-9", 10, 0, 9, 9},
        {"bytes=10-", 10, WH_ERANGE, 0, 0},
        {"bytes=10-20", 10, WH_ERANGE, 0, 0},
        {"bytes=-0", 10, WH_ERANGE, 0, 0},
        {"bytes=0-", 0, WH_ERANGE, 0, 0},
        {"bytes=5-2", 10, WH_ENOTFOUND, 0, 0},
        {"bytes=0-1,3-4", 10, WH_ENOTFOUND, 0, 0},
        {"items=0-1", 10, WH_ENOTFOUND, 0, 0},
        {"bytes=a-b", 10, WH_ENOTFOUND, 0, 0},
        {"bytes=-", 10, WH_ENOTFOUND, 0, 0},
        {"bytes=99999999999999999999999-", 10, WH_ENOTFOUND, 0, 0},
    };
    for (size_t i = 0; i < N(cases); i++) {
        uint64_t a = 77, b = 77;
        int rc = wh_range_parse(cases[i].hdr, cases[i].size, &a, &b);
        if (rc != cases[i].rc)
            fail_msg("range %s: rc %d, expected %d", cases[i].hdr, rc, cases[i].rc);
        if (rc == 0 && (a != cases[i].first || b != cases[i].last))
            fail_msg("range %s: got %llu-%llu", cases[i].hdr, (unsigned long long)a,
                     (unsigned long long)b);
    }
    uint64_t a, b;
    assert_int_equal(wh_range_parse(NULL, 10, &a, &b), WH_ENOTFOUND);
}

static void test_registry__content_range(void **state)
{
    (void)state;
    static const struct {
        const char *hdr;
        int rc;
        uint64_t first, last;
    } cases[] = {
        {"0-99", 0, 0, 99},
        {"100-199", 0, 100, 199},
        {"bytes 0-9/10", 0, 0, 9},
        {"bytes 0-9/*", 0, 0, 9},
        {"bytes=5-9", 0, 5, 9},
        {"9-0", WH_EINVALID, 0, 0},
        {"-5", WH_EINVALID, 0, 0},
        {"5-", WH_EINVALID, 0, 0},
        {"0-9x", WH_EINVALID, 0, 0},
        {"bytes 0-9/x", WH_EINVALID, 0, 0},
        {"", WH_EINVALID, 0, 0},
    };
    for (size_t i = 0; i < N(cases); i++) {
        uint64_t a = 0, b = 0;
        int rc = wh_content_range_parse(cases[i].hdr, &a, &b);
        if (rc != cases[i].rc)
            fail_msg("content-range %s: rc %d", cases[i].hdr, rc);
        if (rc == 0 && (a != cases[i].first || b != cases[i].last))
            fail_msg("content-range %s: wrong bounds", cases[i].hdr);
    }
}

#define D1 "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
#define D2 "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define D3 "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

static const char oci_manifest[] =
    "{\"schemaVersion\":2,\"mediaType\":\"" WH_MT_OCI_MANIFEST "\","
    "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" D1
    "\",\"size\":5},"
    "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"" D2
    "\",\"size\":0},"
    "{\"mediaType\":\"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip\",\"digest\":\"" D3
    "\",\"size\":1,\"urls\":[\"https://example.invalid/x\"]}],"
    "\"annotations\":{\"b\":\"2\",\"a\":\"1\"}}";

static const char artifact_manifest[] =
    "{\"schemaVersion\":2,\"mediaType\":\"" WH_MT_OCI_MANIFEST "\","
    "\"artifactType\":\"application/vnd.example.sbom\","
    "\"config\":{\"mediaType\":\"application/vnd.oci.empty.v1+json\",\"digest\":\"" D1
    "\",\"size\":2},\"layers\":[],"
    "\"subject\":{\"mediaType\":\"" WH_MT_OCI_MANIFEST "\",\"digest\":\"" D3 "\",\"size\":9}}";

static const char docker_list[] =
    "{\"schemaVersion\":2,\"mediaType\":\"" WH_MT_DOCKER_LIST "\",\"manifests\":["
    "{\"mediaType\":\"" WH_MT_DOCKER_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":5,"
    "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}},"
    "{\"mediaType\":\"" WH_MT_DOCKER_MANIFEST "\",\"digest\":\"" D2 "\",\"size\":7}]}";

static void test_registry__manifest_image(void **state)
{
    (void)state;
    struct wh_manifest *m = NULL;
    assert_int_equal(wh_manifest_parse(&m, oci_manifest, strlen(oci_manifest), NULL), 0);
    assert_string_equal(m->media_type, WH_MT_OCI_MANIFEST);
    assert_false(m->is_index);
    assert_int_equal(m->nblobs, 2); /* config + one layer; the foreign layer is not required */
    assert_string_equal(m->blobs[0], D1);
    assert_string_equal(m->blobs[1], D2);
    assert_string_equal(m->artifact_type, "application/vnd.oci.image.config.v1+json");
    assert_null(m->subject);
    assert_string_equal(m->annotations, "{\"a\":\"1\",\"b\":\"2\"}");
    wh_manifest_free(m);
}

static void test_registry__manifest_artifact_with_subject(void **state)
{
    (void)state;
    struct wh_manifest *m = NULL;
    assert_int_equal(wh_manifest_parse(&m, artifact_manifest, strlen(artifact_manifest),
                                       WH_MT_OCI_MANIFEST),
                     0);
    assert_string_equal(m->artifact_type, "application/vnd.example.sbom");
    assert_string_equal(m->subject, D3);
    assert_int_equal(m->nblobs, 1);
    wh_manifest_free(m);
}

static void test_registry__manifest_index(void **state)
{
    (void)state;
    struct wh_manifest *m = NULL;
    assert_int_equal(wh_manifest_parse(&m, docker_list, strlen(docker_list), WH_MT_DOCKER_LIST),
                     0);
    assert_true(m->is_index);
    assert_int_equal(m->nchildren, 2);
    assert_string_equal(m->children[1], D2);
    assert_int_equal(m->nblobs, 0);
    wh_manifest_free(m);
}

static void test_registry__manifest_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "not json",
        "[]",
        "{}",
        "{\"schemaVersion\":1}",
        "{\"schemaVersion\":2,\"mediaType\":\"text/plain\"}",
        "{\"schemaVersion\":2,\"mediaType\":\"" WH_MT_OCI_MANIFEST "\"}",
        "{\"schemaVersion\":2,\"mediaType\":\"" WH_MT_OCI_MANIFEST "\",\"config\":{\"mediaType\":"
        "\"x\",\"digest\":\"sha256:abc\",\"size\":1},\"layers\":[]}",
        "{\"schemaVersion\":2,\"mediaType\":\"" WH_MT_OCI_MANIFEST "\",\"config\":{\"mediaType\":"
        "\"x\",\"digest\":\"" D1 "\",\"size\":-1},\"layers\":[]}",
        "{\"schemaVersion\":2,\"mediaType\":\"" WH_MT_OCI_MANIFEST "\",\"config\":{\"mediaType\":"
        "\"x\",\"digest\":\"" D1 "\",\"size\":1},\"layers\":{}}",
        "{\"schemaVersion\":2,\"mediaType\":\"" WH_MT_OCI_INDEX "\",\"manifests\":[{}]}",
        "{\"schemaVersion\":2,\"mediaType\":\"" WH_MT_OCI_INDEX "\",\"manifests\":[],"
        "\"annotations\":{\"a\":1}}",
        "{\"schemaVersion\":2,\"schemaVersion\":2}",
    };
    for (size_t i = 0; i < N(bad); i++) {
        struct wh_manifest *m = NULL;
        if (wh_manifest_parse(&m, bad[i], strlen(bad[i]), NULL) != WH_EINVALID)
            fail_msg("accepted bad manifest %zu: %s", i, bad[i]);
        assert_null(m);
    }
    /* mediaType and Content-Type must agree */
    struct wh_manifest *m = NULL;
    assert_int_equal(wh_manifest_parse(&m, docker_list, strlen(docker_list), WH_MT_OCI_MANIFEST),
                     WH_EINVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry__names),
        cmocka_unit_test(test_registry__tags),
        cmocka_unit_test(test_registry__range),
        cmocka_unit_test(test_registry__content_range),
        cmocka_unit_test(test_registry__manifest_image),
        cmocka_unit_test(test_registry__manifest_artifact_with_subject),
        cmocka_unit_test(test_registry__manifest_index),
        cmocka_unit_test(test_registry__manifest_invalid),
    };
    return cmocka_run_group_tests_name("registry", tests, NULL, NULL);
}
