/*
 * Unit tests for the storage quota of db/: Harbor's size display, usage
 * counting a blob shared by two repositories of a project once, the
 * refusal message of wh_db_project_quota_check, a blob admitted when the
 * project holds it already or has room for it, and the quota API's view
 * (db_quota.c): get, list with its sorts and filter, set the hard limit.
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
    assert_int_equal(test_db_open(&db, path), 0);
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
    /* a blob: counted once, so one the project holds is always admitted */
    const char *d2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    assert_int_equal(wh_db_project_blob_admit(db, pid, d1, 1500, msg, sizeof(msg)), 0);
    assert_int_equal(wh_db_project_blob_admit(db, pid, d2, 548, msg, sizeof(msg)), 0);
    msg[0] = '\0';
    assert_int_equal(wh_db_project_blob_admit(db, pid, d2, 549, msg, sizeof(msg)), WH_EDENIED);
    assert_string_equal(msg, "adding 549 B of storage resource, which when updated to current usage "
                             "of 1.5 KiB will exceed the configured upper limit of 2.0 KiB.");
    assert_int_equal(wh_db_blob_link(db, pid, "quota/a", d2, 549), WH_EDENIED);
    assert_int_equal(wh_db_project_blob_admit(db, 999999, d2, 1, msg, sizeof(msg)), WH_ENOTFOUND);
    in.p.id = pid;
    in.storage_limit = -1;
    assert_int_equal(wh_db_project_update(db, &in), 0);
    assert_int_equal(wh_db_project_quota_check(db, pid, UINT64_MAX / 2, msg, sizeof(msg)), 0);
    assert_int_equal(wh_db_project_blob_admit(db, pid, d2, UINT64_MAX / 2, msg, sizeof(msg)), 0);
    assert_int_equal(wh_db_project_delete(db, pid), WH_ECONFLICT);
    wh_db_close(db);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

struct ids {
    int64_t id[8];
    int n;
};

static int collect(const struct wh_quota *q, void *payload)
{
    struct ids *ids = payload;
    if (ids->n < 8)
        ids->id[ids->n++] = q->id;
    return 0;
}

static void test_dbquota__quota_view(void **state)
{
    (void)state;
    char dir[] = "/tmp/wharf-dbquota-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/wharf.db", dir);
    wh_db *db = NULL;
    assert_int_equal(test_db_open(&db, path), 0);
    struct wh_project_info in;
    memset(&in, 0, sizeof(in));
    int64_t a = 0, b = 0;
    snprintf(in.p.name, sizeof(in.p.name), "small");
    in.storage_limit = 5000;
    assert_int_equal(wh_db_project_insert(db, &in, &a), 0);
    snprintf(in.p.name, sizeof(in.p.name), "big");
    in.storage_limit = -1;
    assert_int_equal(wh_db_project_insert(db, &in, &b), 0);
    assert_int_equal(wh_db_blob_link(db, a, "small/x",
                                     "sha256:1111111111111111111111111111111111111111111111111111111111111111", 10),
                     0);
    assert_int_equal(wh_db_blob_link(db, b, "big/x",
                                     "sha256:2222222222222222222222222222222222222222222222222222222222222222", 900),
                     0);
    struct wh_quota q;
    assert_int_equal(wh_db_quota_get(db, a, &q), 0);
    assert_int_equal(q.id, a);
    assert_string_equal(q.project_name, "small");
    assert_int_equal(q.hard, 5000);
    assert_int_equal(q.used, 10);
    assert_int_equal(wh_db_quota_get(db, 999999, &q), WH_ENOTFOUND);

    /* the default project (library, id 1) is there too, with nothing stored */
    struct {
        int sort;
        bool desc;
        int64_t want[3];
    } cases[] = {
        {0, false, {1, a, b}}, {0, true, {b, a, 1}},   {1, false, {1, a, b}},
        {1, true, {b, a, 1}},  {2, false, {1, b, a}},  {2, true, {a, b, 1}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct wh_quota_filter f = {.sort = cases[i].sort, .desc = cases[i].desc};
        struct ids ids = {{0}, 0};
        int64_t total = 0;
        assert_int_equal(wh_db_quota_list(db, &f, 0, 10, collect, &ids, &total), 0);
        assert_int_equal(total, 3);
        assert_int_equal(ids.n, 3);
        for (int k = 0; k < 3; k++)
            if (ids.id[k] != cases[i].want[k])
                fail_msg("case %zu: position %d is %lld", i, k, (long long)ids.id[k]);
    }
    struct wh_quota_filter one = {.project_id = b};
    struct ids ids = {{0}, 0};
    int64_t total = 0;
    assert_int_equal(wh_db_quota_list(db, &one, 0, 10, collect, &ids, &total), 0);
    assert_int_equal(total, 1);
    assert_int_equal(ids.id[0], b);

    assert_int_equal(wh_db_quota_set_hard(db, b, 100), 0);
    assert_int_equal(wh_db_quota_get(db, b, &q), 0);
    assert_int_equal(q.hard, 100);
    assert_int_equal(wh_db_quota_set_hard(db, 999999, 100), WH_ENOTFOUND);
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
        cmocka_unit_test(test_dbquota__quota_view),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
