/*
 * Unit tests for wh_db_artifact_copy (db_copy.c): an index comes with its
 * children and its referrers, blob links and tags follow, the target
 * project's quota counts only what it lacks and a refused copy writes
 * nothing, a copy inside one project costs nothing, an index whose child is
 * missing is refused.
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

#define D(c) "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
             c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
#define CFG D("c")
#define L1 D("1")
#define L2 D("2")
#define M1 D("a")
#define M2 D("b")
#define IDX D("e")
#define SIG D("f")
#define MT_IMG "application/vnd.oci.image.manifest.v1+json"
#define MT_IDX "application/vnd.oci.image.index.v1+json"

struct fixture {
    char dir[64];
    wh_db *db;
    int64_t one, two, three;
};

static int64_t project(wh_db *db, const char *name, int64_t limit)
{
    struct wh_project_info in;
    memset(&in, 0, sizeof(in));
    snprintf(in.p.name, sizeof(in.p.name), "%s", name);
    in.storage_limit = limit;
    int64_t id = 0;
    assert_int_equal(wh_db_project_insert(db, &in, &id), 0);
    return id;
}

static void put(wh_db *db, int64_t proj, const char *digest, const char *mt, uint64_t size,
                const char **blobs, size_t nblobs, const char **children, size_t nchildren,
                const char *subject, const char *tag)
{
    struct wh_artifact_in in = {.repo = "one/app", .project_id = proj, .digest = digest,
                                .media_type = mt, .size = size, .blobs = blobs, .nblobs = nblobs,
                                .children = children, .nchildren = nchildren, .subject = subject,
                                .tag = tag};
    assert_int_equal(wh_db_manifest_put(db, &in), 0);
}

/* one/app: images M1 (CFG, L1) and M2 (CFG, L2), index IDX of both (tags v1
 * and also), SIG a referrer of M1. Sizes: CFG 100, L1 1000, L2 2000, M1 300,
 * M2 400, IDX 500, SIG 50: 4350 bytes in all. */
static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/wharf-dbcopy-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/wharf.db", f->dir);
    assert_int_equal(test_db_open(&f->db, path), 0);
    f->one = project(f->db, "one", -1);
    f->two = project(f->db, "two", -1);
    f->three = project(f->db, "three", 4349);
    assert_int_equal(wh_db_blob_link(f->db, f->one, "one/app", CFG, 100), 0);
    assert_int_equal(wh_db_blob_link(f->db, f->one, "one/app", L1, 1000), 0);
    assert_int_equal(wh_db_blob_link(f->db, f->one, "one/app", L2, 2000), 0);
    const char *b1[] = {CFG, L1}, *b2[] = {CFG, L2}, *kids[] = {M1, M2}, *bs[] = {CFG};
    put(f->db, f->one, M1, MT_IMG, 300, b1, 2, NULL, 0, NULL, NULL);
    put(f->db, f->one, M2, MT_IMG, 400, b2, 2, NULL, 0, NULL, NULL);
    put(f->db, f->one, IDX, MT_IDX, 500, NULL, 0, kids, 2, NULL, "v1");
    put(f->db, f->one, IDX, MT_IDX, 500, NULL, 0, kids, 2, NULL, "also");
    put(f->db, f->one, SIG, MT_IMG, 50, bs, 1, NULL, 0, M1, NULL);
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

static int64_t artifact_id(wh_db *db, const char *repo, const char *ref, bool is_digest)
{
    struct wh_manifest_ref r;
    if (wh_db_manifest_get(db, repo, ref, is_digest, &r) < 0)
        return 0;
    return r.artifact_id;
}

static int count_child(const char *digest, int64_t child_id, void *payload)
{
    (void)digest;
    assert_true(child_id > 0); /* the child is in the destination repository */
    (*(int *)payload)++;
    return 0;
}

static void test_dbcopy__index_with_children_referrers_and_tags(void **state)
{
    struct fixture *f = *state;
    char msg[256] = "";
    int64_t dst = 0;
    /* the destination already has "v1" on something else: the tag moves */
    struct wh_artifact_in other = {.repo = "two/copy", .project_id = f->two, .digest = D("9"),
                                   .media_type = MT_IMG, .size = 10, .tag = "v1"};
    assert_int_equal(wh_db_manifest_put(f->db, &other), 0);

    int64_t src = artifact_id(f->db, "one/app", "v1", false);
    assert_int_equal(wh_db_artifact_copy(f->db, src, f->two, "two/copy", msg, sizeof(msg), &dst), 0);
    assert_int_equal(dst, artifact_id(f->db, "two/copy", IDX, true));
    assert_int_equal(artifact_id(f->db, "two/copy", "v1", false), dst);
    assert_int_equal(artifact_id(f->db, "two/copy", "also", false), dst);
    const char *all[] = {M1, M2, SIG, CFG, L1, L2, IDX};
    for (size_t i = 0; i < 3; i++)
        assert_true(artifact_id(f->db, "two/copy", all[i], true) > 0);
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        uint64_t size = 0;
        assert_int_equal(wh_db_blob_get(f->db, "two/copy", all[i], &size), 0);
    }
    int kids = 0;
    assert_int_equal(wh_db_artifact_children(f->db, dst, count_child, &kids), 0);
    assert_int_equal(kids, 2);
    uint64_t used = 0;
    assert_int_equal(wh_db_project_usage(f->db, f->two, &used), 0);
    assert_int_equal(used, 4350 + 10);

    /* again: nothing changes, nothing fails */
    assert_int_equal(wh_db_artifact_copy(f->db, src, f->two, "two/copy", msg, sizeof(msg), NULL), 0);
    assert_int_equal(wh_db_project_usage(f->db, f->two, &used), 0);
    assert_int_equal(used, 4350 + 10);

    /* inside one project a copy stores nothing new */
    uint64_t before = 0, after = 0;
    assert_int_equal(wh_db_project_usage(f->db, f->one, &before), 0);
    int64_t m1 = artifact_id(f->db, "one/app", M1, true);
    assert_int_equal(wh_db_artifact_copy(f->db, m1, f->one, "one/other", msg, sizeof(msg), NULL), 0);
    assert_int_equal(wh_db_project_usage(f->db, f->one, &after), 0);
    assert_int_equal(before, after);
    /* the referrer of M1 came along, M2 did not */
    assert_true(artifact_id(f->db, "one/other", SIG, true) > 0);
    assert_int_equal(artifact_id(f->db, "one/other", M2, true), 0);

    assert_int_equal(wh_db_artifact_copy(f->db, 999999, f->two, "two/x", msg, sizeof(msg), NULL),
                     WH_ENOTFOUND);
}

static void test_dbcopy__quota(void **state)
{
    struct fixture *f = *state;
    char msg[256] = "";
    int64_t src = artifact_id(f->db, "one/app", IDX, true);
    assert_int_equal(wh_db_artifact_copy(f->db, src, f->three, "three/x", msg, sizeof(msg), NULL),
                     WH_EDENIED);
    assert_string_equal(msg, "adding 4.2 KiB of storage resource, which when updated to current "
                             "usage of 0 B will exceed the configured upper limit of 4.2 KiB.");
    struct wh_repo r;
    assert_int_equal(wh_db_repo_get(f->db, "three/x", &r), WH_ENOTFOUND); /* nothing written */
    uint64_t used = 1;
    assert_int_equal(wh_db_project_usage(f->db, f->three, &used), 0);
    assert_int_equal(used, 0);
    assert_int_equal(wh_db_quota_set_hard(f->db, f->three, 4350), 0);
    assert_int_equal(wh_db_artifact_copy(f->db, src, f->three, "three/x", msg, sizeof(msg), NULL), 0);
    assert_int_equal(wh_db_project_usage(f->db, f->three, &used), 0);
    assert_int_equal(used, 4350);
}

static void test_dbcopy__missing_child(void **state)
{
    struct fixture *f = *state;
    char msg[256] = "";
    /* the API refuses to delete a child an index lists; a database from before the
     * rule may still lack one, which is what the copy must refuse */
    assert_int_equal(wh_db_manifest_delete(f->db, "one/app", M2), WH_ECONFLICT);
    char *path = wh_sprintf("%s/wharf.db", f->dir);
    char *sql = wh_sprintf("DELETE FROM artifact WHERE digest = '%s'", M2);
    test_db_exec(path, sql);
    free(sql);
    free(path);
    int64_t src = artifact_id(f->db, "one/app", IDX, true);
    assert_int_equal(wh_db_artifact_copy(f->db, src, f->two, "two/y", msg, sizeof(msg), NULL),
                     WH_ENOTFOUND);
    struct wh_repo r;
    assert_int_equal(wh_db_repo_get(f->db, "two/y", &r), WH_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dbcopy__index_with_children_referrers_and_tags, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dbcopy__quota, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbcopy__missing_child, setup, teardown),
    };
    return cmocka_run_group_tests_name("dbcopy", tests, NULL, NULL);
}
