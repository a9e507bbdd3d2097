/* Unit tests for storage/ (filesystem driver) and db/ (SQLite), each test in a fresh temp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "db/db.h"
#include "storage/storage.h"

struct fixture {
    char dir[64];
    wh_store *store;
    wh_db *db;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/wharf-unit-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    char db[128];
    snprintf(db, sizeof(db), "%s/wharf.db", f->dir);
    if (wh_store_open_fs(&f->store, f->dir) < 0 || wh_db_open(&f->db, db) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    wh_db_close(f->db);
    wh_store_free(f->store);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static int count_files(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "find '%s' -type f | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p && fscanf(p, "%d", &n) != 1)
        n = -1;
    if (p)
        pclose(p);
    return n;
}

static void test_storage__commit_verified(void **state)
{
    struct fixture *f = *state;
    wh_upload *u = NULL;
    struct wh_digest d;
    uint64_t size = 0;
    wh_digest_of(&d, WH_DIGEST_SHA256, "hello world", 11);
    assert_int_equal(wh_store_upload_create(f->store, "u-1", &u), 0);
    assert_int_equal(wh_upload_write(u, "hello ", 6), 0);
    assert_int_equal(wh_upload_write(u, "world", 5), 0);
    assert_true(wh_upload_size(u) == 11);
    assert_int_equal(wh_store_stat(f->store, &d, &size), WH_ENOTFOUND); /* not visible yet */
    assert_int_equal(wh_upload_commit(u, &d), 0);
    assert_int_equal(wh_store_stat(f->store, &d, &size), 0);
    assert_true(size == 11);
    assert_int_equal(wh_store_upload_remove(f->store, "u-1"), WH_ENOTFOUND); /* staging gone */
}

static void test_storage__commit_wrong_digest_stores_nothing(void **state)
{
    struct fixture *f = *state;
    wh_upload *u = NULL;
    struct wh_digest claimed, real;
    uint64_t size;
    wh_digest_of(&claimed, WH_DIGEST_SHA256, "something else", 14);
    wh_digest_of(&real, WH_DIGEST_SHA256, "payload", 7);
    assert_int_equal(wh_store_upload_create(f->store, "u-2", &u), 0);
    assert_int_equal(wh_upload_write(u, "payload", 7), 0);
    assert_int_equal(wh_upload_commit(u, &claimed), WH_EINVALID);
    assert_int_equal(wh_store_stat(f->store, &claimed, &size), WH_ENOTFOUND);
    assert_int_equal(wh_store_stat(f->store, &real, &size), WH_ENOTFOUND);
    char blobs[128];
    snprintf(blobs, sizeof(blobs), "%s/blobs", f->dir);
    assert_int_equal(count_files(blobs), 0);
}

static void test_storage__reopen_rebuilds_hash_and_sha512(void **state)
{
    struct fixture *f = *state;
    wh_upload *u = NULL;
    struct wh_digest d256, d512;
    wh_digest_of(&d256, WH_DIGEST_SHA256, "abcdef", 6);
    wh_digest_of(&d512, WH_DIGEST_SHA512, "abcdef", 6);
    assert_int_equal(wh_store_upload_create(f->store, "u-3", &u), 0);
    assert_int_equal(wh_upload_write(u, "abc", 3), 0);
    wh_upload_close(u); /* as after a request, or a restart */
    assert_int_equal(wh_store_upload_open(f->store, "u-3", &u), 0);
    assert_true(wh_upload_size(u) == 3);
    assert_int_equal(wh_upload_write(u, "def", 3), 0);
    assert_int_equal(wh_upload_commit(u, &d512), 0);
    uint64_t size;
    assert_int_equal(wh_store_stat(f->store, &d512, &size), 0);
    assert_int_equal(wh_store_stat(f->store, &d256, &size), WH_ENOTFOUND);
    assert_int_equal(wh_store_upload_open(f->store, "../x", &u), WH_ENOTFOUND);
}

static void test_storage__put_bytes_idempotent(void **state)
{
    struct fixture *f = *state;
    struct wh_digest d;
    struct wh_buf b;
    wh_digest_of(&d, WH_DIGEST_SHA256, "{}", 2);
    assert_int_equal(wh_store_put_bytes(f->store, &d, "{}", 2), 0);
    assert_int_equal(wh_store_put_bytes(f->store, &d, "{}", 2), 0);
    wh_buf_init(&b, 1);
    assert_int_equal(wh_store_read_blob(f->store, &d, &b), WH_ETOOBIG);
    wh_buf_dispose(&b);
    wh_buf_init(&b, 16);
    assert_int_equal(wh_store_read_blob(f->store, &d, &b), 0);
    assert_string_equal(b.data, "{}");
    wh_buf_dispose(&b);
}

static int collect(const char *s, void *payload)
{
    struct wh_buf *b = payload;
    wh_buf_puts(b, s);
    wh_buf_puts(b, ",");
    return 0;
}

static int collect_ref(const struct wh_referrer *r, void *payload)
{
    struct wh_buf *b = payload;
    wh_buf_printf(b, "%s|%s,", r->digest, r->artifact_type ? r->artifact_type : "");
    return 0;
}

#define DA "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DB "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define DM "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define DR "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"

static void test_db__projects(void **state)
{
    struct fixture *f = *state;
    struct wh_project p;
    assert_int_equal(wh_db_project_get(f->db, "library", &p), 0); /* exists from the start */
    assert_int_equal(wh_db_project_create(f->db, "team", true, NULL), 0);
    assert_int_equal(wh_db_project_create(f->db, "team", false, NULL), WH_EEXISTS);
    assert_int_equal(wh_db_project_get(f->db, "team", &p), 0);
    assert_true(p.public);
    assert_int_equal(wh_db_project_get(f->db, "nope", &p), WH_ENOTFOUND);
}

static void test_db__manifest_references_checked(void **state)
{
    struct fixture *f = *state;
    const char *blobs[] = {DA, DB};
    struct wh_artifact_in a = {.repo = "library/app", .project_id = 1, .digest = DM,
                               .media_type = "application/vnd.oci.image.manifest.v1+json",
                               .size = 100, .blobs = blobs, .nblobs = 2, .tag = "v1"};
    struct wh_manifest_ref ref;
    assert_int_equal(wh_db_blob_link(f->db, 1, "library/app", DA, 10), 0);
    assert_int_equal(wh_db_manifest_put(f->db, &a), WH_ENOTFOUND); /* DB missing */
    assert_int_equal(wh_db_manifest_get(f->db, "library/app", "v1", false, &ref), WH_ENOTFOUND);
    /* a blob in another repository does not count */
    assert_int_equal(wh_db_blob_link(f->db, 1, "library/other", DB, 20), 0);
    assert_int_equal(wh_db_manifest_put(f->db, &a), WH_ENOTFOUND);
    assert_int_equal(wh_db_blob_link(f->db, 1, "library/app", DB, 20), 0);
    assert_int_equal(wh_db_manifest_put(f->db, &a), 0);
    assert_int_equal(wh_db_manifest_get(f->db, "library/app", "v1", false, &ref), 0);
    assert_string_equal(ref.digest, DM);
    assert_true(ref.size == 100);
    assert_int_equal(wh_db_manifest_get(f->db, "library/app", DM, true, &ref), 0);

    /* an index needs its children */
    const char *children[] = {DM, DR};
    struct wh_artifact_in idx = {.repo = "library/app", .project_id = 1, .digest = DR,
                                 .media_type = "application/vnd.oci.image.index.v1+json",
                                 .size = 50, .children = children, .nchildren = 2};
    assert_int_equal(wh_db_manifest_put(f->db, &idx), WH_ENOTFOUND);

    /* deleting the manifest removes its tags */
    assert_int_equal(wh_db_manifest_delete(f->db, "library/app", DM), 0);
    assert_int_equal(wh_db_manifest_get(f->db, "library/app", "v1", false, &ref), WH_ENOTFOUND);
    assert_int_equal(wh_db_manifest_delete(f->db, "library/app", DM), WH_ENOTFOUND);
}

static void test_db__tags_pagination_and_referrers(void **state)
{
    struct fixture *f = *state;
    const char *blobs[] = {DA};
    static const char *tags[] = {"c", "a", "b", "d"};
    assert_int_equal(wh_db_blob_link(f->db, 1, "library/app", DA, 10), 0);
    for (size_t i = 0; i < 4; i++) {
        struct wh_artifact_in a = {.repo = "library/app", .project_id = 1, .digest = DM,
                                   .media_type = "application/vnd.oci.image.manifest.v1+json",
                                   .size = 100, .blobs = blobs, .nblobs = 1, .tag = tags[i]};
        assert_int_equal(wh_db_manifest_put(f->db, &a), 0);
    }
    struct wh_buf b;
    bool more;
    wh_buf_init(&b, 1024);
    assert_int_equal(wh_db_tag_list(f->db, "library/app", NULL, 2, collect, &b, &more), 0);
    assert_string_equal(b.data, "a,b,");
    assert_true(more);
    b.len = 0;
    assert_int_equal(wh_db_tag_list(f->db, "library/app", "b", 2, collect, &b, &more), 0);
    assert_string_equal(b.data, "c,d,");
    assert_false(more);
    wh_buf_dispose(&b);

    struct wh_artifact_in sig = {.repo = "library/app", .project_id = 1, .digest = DR,
                                 .media_type = "application/vnd.oci.image.manifest.v1+json",
                                 .artifact_type = "application/vnd.example.sig", .subject = DM,
                                 .size = 10, .blobs = blobs, .nblobs = 1};
    assert_int_equal(wh_db_manifest_put(f->db, &sig), 0);
    wh_buf_init(&b, 1024);
    assert_int_equal(wh_db_referrers(f->db, "library/app", DM, NULL, collect_ref, &b), 0);
    assert_string_equal(b.data, DR "|application/vnd.example.sig,");
    b.len = 0;
    assert_int_equal(
        wh_db_referrers(f->db, "library/app", DM, "application/vnd.other", collect_ref, &b), 0);
    assert_int_equal(b.len, 0);
    assert_int_equal(wh_db_referrers(f->db, "library/other", DM, NULL, collect_ref, &b), 0);
    assert_int_equal(b.len, 0);
    assert_int_equal(wh_db_tag_delete(f->db, "library/app", "a"), 0);
    assert_int_equal(wh_db_tag_delete(f->db, "library/app", "a"), WH_ENOTFOUND);
    wh_buf_dispose(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_storage__commit_verified, setup, teardown),
        cmocka_unit_test_setup_teardown(test_storage__commit_wrong_digest_stores_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_storage__reopen_rebuilds_hash_and_sha512, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_storage__put_bytes_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db__projects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db__manifest_references_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db__tags_pagination_and_referrers, setup, teardown),
    };
    return cmocka_run_group_tests_name("storage", tests, NULL, NULL);
}
