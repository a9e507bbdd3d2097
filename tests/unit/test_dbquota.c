/*
 * Unit tests for the storage quota of db/: Harbor's size display, usage
 * counting a blob shared by two repositories of a project once, and the
 * refusal message of wh_db_project_quota_check.
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

#include "db/db.h"

static void test_dbquota__size_format(void **state)
{
    (void)state;
    static const struct {
        uint64_t v;
        const char *want;
    } cases[] = {
        {0, "0 B"},          {1023, "1023 B"},        {1024, "1.0 KiB"},
        {1536, "1.5 KiB"},   {200u << 20, "200.0 MiB"}, {(uint64_t)3 << 30, "3.0 GiB"},
        {346134937, "330.1 MiB"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[32];
        wh_db_size_format(out, sizeof(out), cases[i].v);
        assert_string_equal(out, cases[i].want);
    }
}

static void test_dbquota__check(void **state)
{
    (void)state;
    char dir[] = "/tmp/wharf-dbquota-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/wharf.db", dir);
    wh_db *db = NULL;
    assert_int_equal(wh_db_open(&db, path), 0);
    struct wh_project_info in;
    memset(&in, 0, sizeof(in));
    snprintf(in.p.name, sizeof(in.p.name), "quota");
    in.storage_limit = 2048;
    int64_t pid = 0;
    assert_int_equal(wh_db_project_insert(db, &in, &pid), 0);
    const char *d1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    assert_int_equal(wh_db_blob_link(db, pid, "quota/a", d1, 1500), 0);
    assert_int_equal(wh_db_blob_link(db, pid, "quota/b", d1, 1500), 0);
    uint64_t used = 0;
    assert_int_equal(wh_db_project_usage(db, pid, &used), 0);
    assert_int_equal(used, 1500); /* shared blob counts once */
    char msg[256] = "";
    assert_int_equal(wh_db_project_quota_check(db, pid, 548, msg, sizeof(msg)), 0);
    assert_int_equal(wh_db_project_quota_check(db, pid, 549, msg, sizeof(msg)), WH_EDENIED);
    assert_string_equal(msg, "adding 549 B of storage resource, which when updated to current usage "
                             "of 1.5 KiB will exceed the configured upper limit of 2.0 KiB.");
    in.p.id = pid;
    in.storage_limit = -1;
    assert_int_equal(wh_db_project_update(db, &in), 0);
    assert_int_equal(wh_db_project_quota_check(db, pid, UINT64_MAX / 2, msg, sizeof(msg)), 0);
    assert_int_equal(wh_db_project_delete(db, pid), WH_ECONFLICT);
    wh_db_close(db);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dbquota__size_format),
        cmocka_unit_test(test_dbquota__check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
