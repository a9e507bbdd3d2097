/*
 * Unit tests for db_session.c: portal sessions found by the hash of their
 * id (add, read, touch never backwards, end one, end a user's, the per-user
 * cap, purge by absolute end and by idleness, a new password or a user's
 * delete ending them)
 * and the failed-login counts (one read for two keys, the window starting
 * over in the upsert, hold, clear, purge). Two handles on one file stand for
 * two nodes sharing a database.
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
#include "db_fixture.h"

struct fixture {
    char dir[64];
    char path[96];
    wh_db *db, *other; /* two nodes on one database */
    int64_t alice, bob;
};

static int64_t add_user(wh_db *db, const char *name)
{
    struct wh_user u;
    int64_t id = 0;
    memset(&u, 0, sizeof(u));
    snprintf(u.username, sizeof(u.username), "%s", name);
    snprintf(u.password, sizeof(u.password), "$argon2id$stored-%s", name);
    assert_int_equal(wh_db_user_create(db, &u, &id), 0);
    return id;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/wharf-dbsession-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/wharf.db", f->dir);
    if (test_db_open(&f->db, f->path) < 0 || test_db_open(&f->other, f->path) < 0)
        return -1;
    f->alice = add_user(f->db, "alice");
    f->bob = add_user(f->db, "bob");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    wh_db_close(f->db);
    wh_db_close(f->other);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* A session key as acl.c makes them: 64 hex digits, distinct per `n`. */
static const char *key(int n)
{
    static char buf[8][65];
    char *k = buf[n % 8];
    snprintf(k, 65, "%064x", n);
    return k;
}

static int64_t count(wh_db *db)
{
    int64_t n = -1;
    assert_int_equal(wh_db_session_count(db, &n), 0);
    return n;
}

static void test_dbsession__lifecycle(void **state)
{
    struct fixture *f = *state;
    struct wh_db_session s;

    assert_int_equal(wh_db_session_add(f->db, key(1), f->alice, "0123456789abcdef", 1000,
                                       50000, 10), 0);
    /* the other node reads what this one wrote */
    assert_int_equal(wh_db_session_get(f->other, key(1), &s), 0);
    assert_int_equal(s.user_id, f->alice);
    assert_string_equal(s.stamp, "0123456789abcdef");
    assert_int_equal(s.created_ms, 1000);
    assert_int_equal(s.seen_ms, 1000);
    assert_int_equal(s.expires_ms, 50000);
    assert_int_equal(wh_db_session_get(f->db, key(2), &s), WH_ENOTFOUND);
    /* one id, one session */
    assert_int_equal(wh_db_session_add(f->db, key(1), f->bob, "x", 1000, 50000, 10),
                     WH_EEXISTS);
    /* no such user: refused, nothing kept */
    assert_int_equal(wh_db_session_add(f->db, key(3), 999999, "x", 1000, 50000, 10),
                     WH_ENOTFOUND);
    assert_int_equal(count(f->db), 1);

    /* touch moves the last use forward only (nodes with clocks a little apart) */
    assert_int_equal(wh_db_session_touch(f->other, key(1), 7000), 0);
    assert_int_equal(wh_db_session_touch(f->db, key(1), 5000), 0);
    assert_int_equal(wh_db_session_get(f->db, key(1), &s), 0);
    assert_int_equal(s.seen_ms, 7000);
    assert_int_equal(wh_db_session_touch(f->db, key(2), 7000), 0); /* gone: nothing */

    /* sign-out on one node: the other no longer finds it */
    assert_int_equal(wh_db_session_end(f->db, key(1)), 0);
    assert_int_equal(wh_db_session_get(f->other, key(1), &s), WH_ENOTFOUND);
    assert_int_equal(wh_db_session_end(f->db, key(1)), 0); /* twice: no error */

    /* all of a user's sessions end at once; another user's stay */
    assert_int_equal(wh_db_session_add(f->db, key(4), f->alice, "a", 1000, 50000, 10), 0);
    assert_int_equal(wh_db_session_add(f->db, key(5), f->alice, "a", 1000, 50000, 10), 0);
    assert_int_equal(wh_db_session_add(f->db, key(6), f->bob, "b", 1000, 50000, 10), 0);
    assert_int_equal(wh_db_session_end_user(f->other, f->alice), 0);
    assert_int_equal(wh_db_session_get(f->db, key(4), &s), WH_ENOTFOUND);
    assert_int_equal(wh_db_session_get(f->db, key(5), &s), WH_ENOTFOUND);
    assert_int_equal(wh_db_session_get(f->db, key(6), &s), 0);

    /* a new password ends the user's sessions (the rows go at once) */
    assert_int_equal(wh_db_session_add(f->db, key(7), f->bob, "b", 1000, 50000, 10), 0);
    assert_int_equal(wh_db_user_set_password(f->other, f->bob, "$argon2id$new"), 0);
    assert_int_equal(wh_db_session_get(f->db, key(7), &s), WH_ENOTFOUND);
    assert_int_equal(wh_db_session_get(f->db, key(6), &s), WH_ENOTFOUND);
    assert_int_equal(wh_db_session_add(f->db, key(6), f->bob, "b", 1000, 50000, 10), 0);
    assert_int_equal(wh_db_user_set_password(f->db, 999999, "x"), WH_ENOTFOUND);
    /* deleting the user deletes its sessions */
    assert_int_equal(wh_db_user_delete(f->db, f->bob), 0);
    assert_int_equal(wh_db_session_get(f->db, key(6), &s), WH_ENOTFOUND);
    assert_int_equal(count(f->db), 0);
}

static void test_dbsession__cap_and_purge(void **state)
{
    struct fixture *f = *state;
    struct wh_db_session s;
    int64_t deleted = -1;

    /* a user's sessions past the cap: the least recently used ones end */
    for (int i = 0; i < 5; i++)
        assert_int_equal(wh_db_session_add(f->db, key(10 + i), f->alice, "a", 1000 + i,
                                           100000, 3), 0);
    assert_int_equal(count(f->db), 3);
    assert_int_equal(wh_db_session_get(f->db, key(10), &s), WH_ENOTFOUND);
    assert_int_equal(wh_db_session_get(f->db, key(14), &s), 0);
    /* a used one is kept over newer unused ones */
    assert_int_equal(wh_db_session_touch(f->db, key(12), 9000), 0);
    assert_int_equal(wh_db_session_add(f->db, key(15), f->alice, "a", 2000, 100000, 3), 0);
    assert_int_equal(wh_db_session_get(f->db, key(12), &s), 0);
    assert_int_equal(wh_db_session_get(f->db, key(13), &s), WH_ENOTFOUND);

    /* purge: past the absolute end, or idle since before the bound */
    assert_int_equal(wh_db_session_add(f->db, key(20), f->bob, "b", 1000, 3000, 0), 0);
    assert_int_equal(wh_db_session_purge(f->db, 2999, 0, &deleted), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(wh_db_session_purge(f->db, 3000, 0, &deleted), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(wh_db_session_get(f->db, key(20), &s), WH_ENOTFOUND);
    /* idle: 14 (seen 1004) and 15 (2000) go, 12 (seen 9000) stays */
    assert_int_equal(wh_db_session_purge(f->other, 5000, 8000, &deleted), 0);
    assert_int_equal(deleted, 2);
    assert_int_equal(wh_db_session_get(f->db, key(12), &s), 0);
    assert_int_equal(count(f->db), 1);
}

static void test_dbsession__login_failures(void **state)
{
    struct fixture *f = *state;
    struct wh_db_login_failure got[2];
    const char *ids[2] = {key(100), key(101)};

    /* nothing on record: zeros, from one statement */
    assert_int_equal(wh_db_login_failures(f->db, ids, 2, got), 0);
    assert_int_equal(got[0].fails + got[1].fails, 0);
    /* counted on one node, seen on the other; both keys at once */
    assert_int_equal(wh_db_login_fail(f->db, ids, 2, 1000, 60000), 0);
    assert_int_equal(wh_db_login_fail(f->other, ids, 2, 1500, 60000), 0);
    assert_int_equal(wh_db_login_fail(f->db, &ids[1], 1, 2000, 60000), 0);
    assert_int_equal(wh_db_login_failures(f->other, ids, 2, got), 0);
    assert_int_equal(got[0].fails, 2);
    assert_int_equal(got[0].first_ms, 1000);
    assert_int_equal(got[0].last_ms, 1500);
    assert_int_equal(got[1].fails, 3);
    assert_int_equal(got[1].last_ms, 2000);
    /* one key alone, and the same key twice */
    assert_int_equal(wh_db_login_failures(f->db, &ids[1], 1, got), 0);
    assert_int_equal(got[0].fails, 3);
    /* a failure stamped earlier (a node whose clock lags) never moves last_ms back */
    assert_int_equal(wh_db_login_fail(f->db, ids, 1, 1200, 60000), 0);
    assert_int_equal(wh_db_login_failures(f->db, ids, 1, got), 0);
    assert_int_equal(got[0].fails, 3);
    assert_int_equal(got[0].last_ms, 1500);
    /* hold: the latest failure moves, the count does not; unknown keys: no row */
    assert_int_equal(wh_db_login_hold(f->db, ids[0], 4000), 0);
    assert_int_equal(wh_db_login_hold(f->db, ids[0], 3000), 0);
    assert_int_equal(wh_db_login_hold(f->db, key(102), 4000), 0);
    assert_int_equal(wh_db_login_failures(f->db, ids, 1, got), 0);
    assert_int_equal(got[0].fails, 3);
    assert_int_equal(got[0].last_ms, 4000);
    int64_t n = 0;
    assert_int_equal(wh_db_login_count(f->db, &n), 0);
    assert_int_equal(n, 2);
    /* past the window the count starts over */
    assert_int_equal(wh_db_login_fail(f->db, ids, 1, 61001, 60000), 0);
    assert_int_equal(wh_db_login_failures(f->db, ids, 1, got), 0);
    assert_int_equal(got[0].fails, 1);
    assert_int_equal(got[0].first_ms, 61001);
    /* clear, then purge by the window's start */
    assert_int_equal(wh_db_login_clear(f->other, ids[0]), 0);
    assert_int_equal(wh_db_login_failures(f->db, ids, 1, got), 0);
    assert_int_equal(got[0].fails, 0);
    int64_t deleted = 0;
    assert_int_equal(wh_db_login_purge(f->db, 1000, &deleted), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(wh_db_login_purge(f->db, 1001, &deleted), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(wh_db_login_count(f->db, &n), 0);
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dbsession__lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbsession__cap_and_purge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbsession__login_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
