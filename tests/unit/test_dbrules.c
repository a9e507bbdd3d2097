/*
 * Unit tests for the rules db/ keeps in one transaction whatever the
 * concurrency: caps on open upload sessions, the storage quota reserved as a
 * blob is linked, deletes refused while a manifest or index uses what they
 * would remove, and the last system administrator. Each test has a fresh
 * database in a temp dir; the concurrent cases release their threads
 * together and check the one outcome that every interleaving must give.
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
#include "db/db.h"

struct fixture {
    char dir[64];
    wh_db *db;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/wharf-dbrules-XXXXXX");
    if (!f || !mkdtemp(f->dir))
        return -1;
    char path[128];
    snprintf(path, sizeof(path), "%s/wharf.db", f->dir);
    if (test_db_open(&f->db, path) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    wh_db_close(f->db);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* The sha256-shaped digest of a number. */
static const char *digest_n(char *buf, size_t cap, unsigned n)
{
    snprintf(buf, cap, "sha256:%064x", n);
    return buf;
}

static int64_t project(wh_db *db, const char *name, int64_t storage_limit)
{
    struct wh_project_info in;
    int64_t id = 0;
    memset(&in, 0, sizeof(in));
    snprintf(in.p.name, sizeof(in.p.name), "%s", name);
    in.storage_limit = storage_limit;
    assert_int_equal(wh_db_project_insert(db, &in, &id), 0);
    return id;
}

/* Runs `fn(i)` on `n` threads released together. */
struct race {
    pthread_barrier_t gate;
    void (*fn)(struct race *r, size_t i);
    wh_db *db;
    int results[16];
    void *payload;
};

struct racer {
    struct race *race;
    size_t i;
};

static void *racer_main(void *arg)
{
    struct racer *me = arg;
    pthread_barrier_wait(&me->race->gate);
    me->race->fn(me->race, me->i);
    return NULL;
}

static void run_race(struct race *r, size_t n)
{
    pthread_t t[16];
    struct racer who[16];
    assert_true(n <= 16);
    pthread_barrier_init(&r->gate, NULL, (unsigned)n);
    for (size_t i = 0; i < n; i++) {
        who[i] = (struct racer){r, i};
        assert_int_equal(pthread_create(&t[i], NULL, racer_main, &who[i]), 0);
    }
    for (size_t i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&r->gate);
}

static size_t count_equal(const int *v, size_t n, int want)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += v[i] == want;
    return k;
}

/* ---- upload sessions ---- */

static void test_dbrules__upload_caps(void **state)
{
    struct fixture *f = *state;
    const struct wh_upload_caps caps = {.total = 6, .per_project = 4, .per_owner = 2};
    struct wh_upload_refusal why;
    int64_t a = project(f->db, "a", -1), b = project(f->db, "b", -1);
    static const struct {
        const char *id, *repo, *owner;
        int64_t *project;
        int64_t now;
        int want;
        enum wh_upload_scope scope;
        int64_t limit, oldest;
    } steps[] = {
        {"u1", "a/x", "alice", NULL, 100, 0, 0, 0, 0},
        {"u2", "a/x", "alice", NULL, 110, 0, 0, 0, 0},
        {"u3", "a/y", "alice", NULL, 120, WH_EBUSY, WH_UPLOAD_OWNER, 2, 100},
        {"u4", "a/x", "bob", NULL, 130, 0, 0, 0, 0},
        {"u5", "a/x", "bob", NULL, 140, 0, 0, 0, 0},
        {"u6", "a/x", "carol", NULL, 150, WH_EBUSY, WH_UPLOAD_PROJECT, 4, 100},
        {"u7", "b/x", "carol", NULL, 160, 0, 0, 0, 0},
        {"u8", "b/x", "dave", NULL, 170, 0, 0, 0, 0},
        {"u9", "b/x", "erin", NULL, 180, WH_EBUSY, WH_UPLOAD_SERVER, 6, 100},
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        int64_t pid = steps[i].repo[0] == 'a' ? a : b;
        memset(&why, 0, sizeof(why));
        int rc = wh_db_upload_create(f->db, steps[i].id, steps[i].repo, pid, steps[i].owner,
                                     steps[i].now, &caps, &why);
        assert_int_equal(rc, steps[i].want);
        if (rc == WH_EBUSY) {
            assert_int_equal(why.scope, steps[i].scope);
            assert_int_equal(why.limit, steps[i].limit);
            assert_int_equal(why.oldest_ms, steps[i].oldest);
        }
    }
    /* a finished session gives its place back; activity moves `oldest_ms` */
    assert_int_equal(wh_db_upload_delete(f->db, "u1"), 0);
    assert_int_equal(wh_db_upload_touch(f->db, "u2", 500), 0);
    assert_int_equal(wh_db_upload_create(f->db, "u10", "a/x", a, "alice", 510, &caps, &why), 0);
    assert_int_equal(wh_db_upload_create(f->db, "u11", "a/x", a, "alice", 520, &caps, &why),
                     WH_EBUSY);
    assert_int_equal(why.scope, WH_UPLOAD_OWNER);
    assert_int_equal(why.oldest_ms, 500);
    /* no caps at all */
    const struct wh_upload_caps none = {0, 0, 0};
    assert_int_equal(wh_db_upload_create(f->db, "u12", "a/x", a, "alice", 530, &none, &why), 0);
}

struct expired_ctx {
    char seen[256];
};

static int note_expired(const char *id, void *payload)
{
    struct expired_ctx *c = payload;
    size_t n = strlen(c->seen);
    snprintf(c->seen + n, sizeof(c->seen) - n, "%s,", id);
    return 0;
}

static void test_dbrules__upload_expiry_idle_or_old(void **state)
{
    struct fixture *f = *state;
    const struct wh_upload_caps none = {0, 0, 0};
    struct wh_upload_refusal why;
    assert_int_equal(wh_db_upload_create(f->db, "old-busy", "library/x", 1, "u", 1000, &none,
                                         &why), 0);
    assert_int_equal(wh_db_upload_create(f->db, "idle", "library/x", 1, "u", 5000, &none, &why),
                     0);
    assert_int_equal(wh_db_upload_create(f->db, "fresh", "library/x", 1, "u", 8000, &none, &why),
                     0);
    assert_int_equal(wh_db_upload_touch(f->db, "old-busy", 9000), 0);
    struct expired_ctx c = {""};
    /* idle before 6000 or started before 2000 */
    assert_int_equal(wh_db_upload_expired(f->db, 6000, 2000, note_expired, &c), 0);
    assert_true(strstr(c.seen, "old-busy,") && strstr(c.seen, "idle,") && !strstr(c.seen, "fresh"));
    c.seen[0] = '\0';
    assert_int_equal(wh_db_upload_expired(f->db, 6000, 0, note_expired, &c), 0);
    assert_string_equal(c.seen, "idle,");
}

static void create_upload(struct race *r, size_t i)
{
    const struct wh_upload_caps *caps = r->payload;
    struct wh_upload_refusal why;
    char id[32];
    snprintf(id, sizeof(id), "race-%zu", i);
    r->results[i] = wh_db_upload_create(r->db, id, "library/x", 1, "mallory", 1000, caps, &why);
}

static void test_dbrules__upload_caps_hold_under_concurrency(void **state)
{
    struct fixture *f = *state;
    struct wh_upload_caps caps = {.total = 100, .per_project = 100, .per_owner = 5};
    struct race r = {.fn = create_upload, .db = f->db, .payload = &caps};
    run_race(&r, 16);
    assert_int_equal(count_equal(r.results, 16, 0), 5);
    assert_int_equal(count_equal(r.results, 16, WH_EBUSY), 11);
}

/* ---- quota ---- */

static void link_blob(struct race *r, size_t i)
{
    char d[80];
    int64_t pid = *(int64_t *)r->payload;
    r->results[i] = wh_db_blob_link(r->db, pid, "quota/r", digest_n(d, sizeof(d), (unsigned)i + 1),
                                    300);
}

static void test_dbrules__quota_reserved_with_the_link(void **state)
{
    struct fixture *f = *state;
    int64_t pid = project(f->db, "quota", 1024);
    struct race r = {.fn = link_blob, .db = f->db, .payload = &pid};
    run_race(&r, 10);
    /* 3 x 300 fits in 1024, a fourth does not: whatever the interleaving */
    assert_int_equal(count_equal(r.results, 10, 0), 3);
    assert_int_equal(count_equal(r.results, 10, WH_EDENIED), 7);
    uint64_t used = 0;
    assert_int_equal(wh_db_project_usage(f->db, pid, &used), 0);
    assert_int_equal(used, 900);

    /* a blob the project holds costs nothing more; a manifest's bytes count */
    char d[80];
    for (unsigned i = 1; i <= 10; i++) {
        uint64_t size;
        if (wh_db_blob_get(f->db, "quota/r", digest_n(d, sizeof(d), i), &size) == 0) {
            assert_int_equal(wh_db_blob_link(f->db, pid, "quota/other", d, 300), 0);
            break;
        }
    }
    struct wh_artifact_in m = {.repo = "quota/r", .project_id = pid,
                               .digest = digest_n(d, sizeof(d), 99),
                               .media_type = "application/vnd.oci.image.manifest.v1+json",
                               .size = 200, .tag = "v1"};
    assert_int_equal(wh_db_manifest_put(f->db, &m), WH_EDENIED);
    m.size = 124;
    assert_int_equal(wh_db_manifest_put(f->db, &m), 0);
    assert_int_equal(wh_db_project_usage(f->db, pid, &used), 0);
    assert_int_equal(used, 1024);
}

/* ---- deletes ---- */

#define DL "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define DC "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define DM "sha256:3333333333333333333333333333333333333333333333333333333333333333"
#define DI "sha256:4444444444444444444444444444444444444444444444444444444444444444"
#define DX "sha256:5555555555555555555555555555555555555555555555555555555555555555"

static void test_dbrules__deletes_never_break_an_image(void **state)
{
    struct fixture *f = *state;
    const char *blobs[] = {DC, DL};
    const char *children[] = {DM};
    struct wh_artifact_in m = {.repo = "library/app", .project_id = 1, .digest = DM,
                               .media_type = "application/vnd.oci.image.manifest.v1+json",
                               .size = 100, .blobs = blobs, .nblobs = 2};
    struct wh_artifact_in idx = {.repo = "library/app", .project_id = 1, .digest = DI,
                                 .media_type = "application/vnd.oci.image.index.v1+json",
                                 .size = 100, .children = children, .nchildren = 1,
                                 .tag = "multi"};
    assert_int_equal(wh_db_blob_link(f->db, 1, "library/app", DC, 10), 0);
    assert_int_equal(wh_db_blob_link(f->db, 1, "library/app", DL, 20), 0);
    assert_int_equal(wh_db_blob_link(f->db, 1, "library/app", DX, 30), 0);
    assert_int_equal(wh_db_manifest_put(f->db, &m), 0);
    assert_int_equal(wh_db_manifest_put(f->db, &idx), 0);

    /* the index's child, the child's config and layer, the child's own bytes */
    assert_int_equal(wh_db_manifest_delete(f->db, "library/app", DM), WH_ECONFLICT);
    assert_non_null(strstr(wh_error_msg(), DI " (tagged multi)"));
    assert_int_equal(wh_db_blob_unlink(f->db, "library/app", DL), WH_ECONFLICT);
    assert_non_null(strstr(wh_error_msg(), "by manifest " DM " (untagged)"));
    assert_int_equal(wh_db_blob_unlink(f->db, "library/app", DC), WH_ECONFLICT);
    assert_int_equal(wh_db_blob_unlink(f->db, "library/app", DM), WH_ECONFLICT);
    assert_non_null(strstr(wh_error_msg(), "is a manifest of this repository"));
    /* the same digests in another repository are other objects */
    assert_int_equal(wh_db_blob_unlink(f->db, "library/other", DL), WH_ENOTFOUND);
    assert_int_equal(wh_db_manifest_delete(f->db, "library/other", DM), WH_ENOTFOUND);
    /* what nothing uses goes */
    assert_int_equal(wh_db_blob_unlink(f->db, "library/app", DX), 0);
    assert_int_equal(wh_db_blob_unlink(f->db, "library/app", DX), WH_ENOTFOUND);

    /* top down, everything goes */
    assert_int_equal(wh_db_manifest_delete(f->db, "library/app", DI), 0);
    assert_int_equal(wh_db_manifest_delete(f->db, "library/app", DM), 0);
    assert_int_equal(wh_db_blob_unlink(f->db, "library/app", DL), 0);
    assert_int_equal(wh_db_blob_unlink(f->db, "library/app", DC), 0);
    assert_int_equal(wh_db_blob_unlink(f->db, "library/app", DM), 0);
}

/* ---- the last administrator ---- */

static int64_t user(wh_db *db, const char *name, bool admin)
{
    struct wh_user u;
    int64_t id = 0;
    memset(&u, 0, sizeof(u));
    snprintf(u.username, sizeof(u.username), "%s", name);
    snprintf(u.password, sizeof(u.password), "x");
    u.sysadmin = admin;
    assert_int_equal(wh_db_user_create(db, &u, &id), 0);
    return id;
}

static bool is_admin(wh_db *db, int64_t id)
{
    struct wh_user u;
    return wh_db_user_get_id(db, id, &u) == 0 && u.sysadmin;
}

static void test_dbrules__last_admin_is_kept(void **state)
{
    struct fixture *f = *state;
    int64_t a = user(f->db, "a", true), b = user(f->db, "b", false);
    assert_int_equal(wh_db_user_set_sysadmin(f->db, a, false), WH_ECONFLICT);
    assert_string_equal(wh_error_msg(), "the last system administrator cannot be removed");
    assert_int_equal(wh_db_user_delete(f->db, a), WH_ECONFLICT);
    assert_true(is_admin(f->db, a));
    /* others come and go; a non-administrator is never the last one */
    assert_int_equal(wh_db_user_set_sysadmin(f->db, b, false), 0);
    assert_int_equal(wh_db_user_set_sysadmin(f->db, b, true), 0);
    assert_int_equal(wh_db_user_set_sysadmin(f->db, a, false), 0);
    assert_int_equal(wh_db_user_delete(f->db, b), WH_ECONFLICT);
    assert_int_equal(wh_db_user_set_sysadmin(f->db, a, true), 0);
    assert_int_equal(wh_db_user_delete(f->db, b), 0);
    assert_int_equal(wh_db_user_delete(f->db, 12345), WH_ENOTFOUND);
    assert_int_equal(wh_db_user_set_sysadmin(f->db, 12345, false), WH_ENOTFOUND);
}

struct mutual {
    int64_t ids[2];
    bool delete_[2];
};

static void remove_other(struct race *r, size_t i)
{
    struct mutual *m = r->payload;
    int64_t other = m->ids[1 - i];
    r->results[i] = m->delete_[i] ? wh_db_user_delete(r->db, other)
                                  : wh_db_user_set_sysadmin(r->db, other, false);
}

static void test_dbrules__admins_removing_each_other(void **state)
{
    struct fixture *f = *state;
    int64_t survivor = 0;
    for (int round = 0; round < 30; round++) {
        char n0[16], n1[16];
        snprintf(n0, sizeof(n0), "x%d", round);
        snprintf(n1, sizeof(n1), "y%d", round);
        struct mutual m = {{user(f->db, n0, true), user(f->db, n1, true)},
                           {round % 3 == 1, round % 3 == 2}};
        /* exactly these two are administrators now */
        if (survivor)
            assert_int_equal(wh_db_user_set_sysadmin(f->db, survivor, false), 0);
        struct race r = {.fn = remove_other, .db = f->db, .payload = &m};
        run_race(&r, 2);
        assert_int_equal(count_equal(r.results, 2, 0), 1);
        assert_int_equal(count_equal(r.results, 2, WH_ECONFLICT), 1);
        assert_true(is_admin(f->db, m.ids[0]) != is_admin(f->db, m.ids[1]));
        survivor = is_admin(f->db, m.ids[0]) ? m.ids[0] : m.ids[1];
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dbrules__upload_caps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbrules__upload_expiry_idle_or_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbrules__upload_caps_hold_under_concurrency, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dbrules__quota_reserved_with_the_link, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dbrules__deletes_never_break_an_image, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dbrules__last_admin_is_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbrules__admins_removing_each_other, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("dbrules", tests, NULL, NULL);
}
