/* Unit tests for db_backup.c: database files copied, checked and listed for backup/restore. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "db/db_int.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"

struct fixture {
    char dir[64];
    char src[128], dst[128];
    wh_db *db;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/wharf-dbbackup-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->src, sizeof(f->src), "%s/wharf.db", f->dir);
    snprintf(f->dst, sizeof(f->dst), "%s/copy.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    wh_db_close(f->db);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

struct seen {
    char digests[8][WH_DIGEST_STR_MAX];
    uint64_t sizes[8];
    int n;
};

static int collect(const char *digest, uint64_t size, void *payload)
{
    struct seen *s = payload;
    if (s->n >= 8)
        return -1;
    snprintf(s->digests[s->n], sizeof(s->digests[0]), "%s", digest);
    s->sizes[s->n++] = size;
    return 0;
}

/* A registry with two linked blobs, one blob no repository links any more, and an upload session. */
static void fill(struct fixture *f)
{
    int64_t pid = 0;
    struct wh_upload_caps caps = {100, 100, 100};
    struct wh_upload_refusal refused;
    assert_int_equal(wh_db_open(&f->db, f->src), 0);
    assert_int_equal(wh_db_project_create(f->db, "p", false, &pid), 0);
    assert_int_equal(wh_db_blob_link(f->db, pid, "p/a", D2, 20), 0);
    assert_int_equal(wh_db_blob_link(f->db, pid, "p/a", D1, 10), 0);
    assert_int_equal(wh_db_blob_link(f->db, pid, "p/b", D3, 30), 0);
    assert_int_equal(wh_db_blob_unlink(f->db, "p/b", D3), 0);
    assert_int_equal(wh_db_upload_create(f->db, "u1", "p/a", pid, "admin", wh_now_ms(), &caps,
                                         &refused), 0);
}

static void test_dbbackup__copy_is_whole_and_drops_what_cannot_be_restored(void **state)
{
    struct fixture *f = *state;
    int schema = -1;
    fill(f);
    /* the source is open, in WAL mode, with a live connection: as under a running server */
    assert_int_equal(wh_db_backup_file(f->src, f->dst, true, &schema), 0);
    assert_int_equal(schema, wh_db_schema_latest());
    assert_int_equal(wh_db_file_check(f->dst, &schema), 0);
    assert_int_equal(schema, wh_db_schema_latest());
    /* one file: no WAL beside it */
    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", f->dst);
    assert_int_not_equal(access(wal, F_OK), 0);

    struct seen s = {0};
    assert_int_equal(wh_db_file_blobs(f->dst, collect, &s), 0);
    assert_int_equal(s.n, 2); /* by digest; D3 is linked nowhere */
    assert_string_equal(s.digests[0], D1);
    assert_int_equal(s.sizes[0], 10);
    assert_string_equal(s.digests[1], D2);
    assert_int_equal(s.sizes[1], 20);

    /* the copy opens as a registry, without the upload session; the source keeps it */
    wh_db *copy = NULL;
    int64_t n = -1;
    assert_int_equal(wh_db_open(&copy, f->dst), 0);
    assert_int_equal(wh_db_upload_count(copy, &n), 0);
    assert_int_equal(n, 0);
    wh_db_close(copy);
    assert_int_equal(wh_db_upload_count(f->db, &n), 0);
    assert_int_equal(n, 1);

    /* a callback's non-zero return stops the walk and is returned */
    s.n = 8;
    assert_int_equal(wh_db_file_blobs(f->dst, collect, &s), -1);
}

static void test_dbbackup__refusals(void **state)
{
    struct fixture *f = *state;
    int schema = 0;
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/none.db", f->dir);
    assert_int_equal(wh_db_backup_file(missing, f->dst, true, &schema), WH_ENOTFOUND);
    assert_int_not_equal(access(missing, F_OK), 0); /* not created by trying */
    assert_int_equal(wh_db_file_check(missing, &schema), WH_ENOTFOUND);
    fill(f);
    assert_int_equal(wh_db_backup_file(f->src, f->dst, true, &schema), 0);
    assert_int_equal(wh_db_backup_file(f->src, f->dst, true, &schema), WH_EEXISTS);

    /* a damaged page is found by the check */
    FILE *fp = fopen(f->dst, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 4096, SEEK_SET), 0);
    char junk[512];
    memset(junk, 0x5a, sizeof(junk));
    assert_int_equal(fwrite(junk, 1, sizeof(junk), fp), sizeof(junk));
    fclose(fp);
    int rc = wh_db_file_check(f->dst, &schema);
    assert_true(rc == WH_EINVALID || rc == WH_ERROR);

    /* not a database at all */
    fp = fopen(f->dst, "wb");
    fputs("not sqlite", fp);
    fclose(fp);
    rc = wh_db_file_check(f->dst, &schema);
    assert_true(rc == WH_EINVALID || rc == WH_ERROR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_dbbackup__copy_is_whole_and_drops_what_cannot_be_restored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbbackup__refusals, setup, teardown),
    };
    return cmocka_run_group_tests_name("dbbackup", tests, NULL, NULL);
}
