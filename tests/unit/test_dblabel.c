/*
 * Unit tests for labels in db/ (db_label.c, schema 3): names unique per
 * scope and project, Harbor's conflict and not-found messages, listing with
 * filters and sorts, labels on artifacts, and what cascades (a deleted
 * label, artifact or project takes its links along); ids are not reused.
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

struct fixture {
    char dir[64];
    wh_db *db;
    int64_t p1, p2;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/wharf-dblabel-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/wharf.db", f->dir);
    assert_int_equal(test_db_open(&f->db, path), 0);
    struct wh_project_info in;
    memset(&in, 0, sizeof(in));
    in.storage_limit = -1;
    snprintf(in.p.name, sizeof(in.p.name), "one");
    assert_int_equal(wh_db_project_insert(f->db, &in, &f->p1), 0);
    snprintf(in.p.name, sizeof(in.p.name), "two");
    assert_int_equal(wh_db_project_insert(f->db, &in, &f->p2), 0);
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

static int64_t make_label(wh_db *db, const char *name, const char *scope, int64_t project,
                          int want)
{
    struct wh_label l;
    memset(&l, 0, sizeof(l));
    snprintf(l.name, sizeof(l.name), "%s", name);
    snprintf(l.scope, sizeof(l.scope), "%s", scope);
    snprintf(l.color, sizeof(l.color), "#123456");
    l.project_id = project;
    int64_t id = 0;
    assert_int_equal(wh_db_label_create(db, &l, &id), want);
    return id;
}

struct names {
    char buf[512];
};

static int collect(const struct wh_label *l, void *payload)
{
    struct names *n = payload;
    size_t len = strlen(n->buf);
    snprintf(n->buf + len, sizeof(n->buf) - len, "%s%s", len ? "," : "", l->name);
    return 0;
}

static const char *list(wh_db *db, const char *scope, int64_t project, const char *like,
                        int sort, bool desc, int64_t *total)
{
    static struct names n;
    struct wh_label_filter f = {.scope = scope, .project_id = project, .name_like = like,
                                .sort = sort, .desc = desc};
    memset(&n, 0, sizeof(n));
    assert_int_equal(wh_db_label_list(db, &f, 0, 100, collect, &n, total), 0);
    return n.buf;
}

static void test_dblabel__crud(void **state)
{
    struct fixture *f = *state;
    int64_t g = make_label(f->db, "red", "g", 0, 0);
    make_label(f->db, "red", "g", 0, WH_EEXISTS);
    int64_t a = make_label(f->db, "red", "p", f->p1, 0); /* same name, another scope */
    int64_t b = make_label(f->db, "red", "p", f->p2, 0); /* and another project */
    make_label(f->db, "red", "p", f->p1, WH_EEXISTS);
    assert_string_equal(wh_error_msg(), "label red already exists");
    make_label(f->db, "x", "p", 999999, WH_ENOTFOUND); /* no such project */
    int64_t c = make_label(f->db, "blue", "p", f->p1, 0);
    assert_true(g > 0 && a > g && b > a && c > b);

    struct wh_label l;
    assert_int_equal(wh_db_label_get(f->db, a, &l), 0);
    assert_string_equal(l.name, "red");
    assert_string_equal(l.scope, "p");
    assert_string_equal(l.color, "#123456");
    assert_int_equal(l.project_id, f->p1);
    assert_true(l.created_ms > 0 && l.updated_ms == l.created_ms);
    assert_int_equal(wh_db_label_get(f->db, g, &l), 0);
    assert_int_equal(l.project_id, 0);

    int64_t total = 0;
    assert_string_equal(list(f->db, "p", f->p1, NULL, 1, false, &total), "blue,red");
    assert_int_equal(total, 2);
    assert_string_equal(list(f->db, "p", f->p1, NULL, 0, true, NULL), "blue,red");
    assert_string_equal(list(f->db, "p", f->p1, "lu", 0, false, &total), "blue");
    assert_int_equal(total, 1);
    assert_string_equal(list(f->db, "g", 0, NULL, 0, false, &total), "red");
    assert_string_equal(list(f->db, "p", f->p2, NULL, 0, false, NULL), "red");

    /* rename: a name taken in the same scope and project conflicts */
    assert_int_equal(wh_db_label_get(f->db, c, &l), 0);
    snprintf(l.name, sizeof(l.name), "red");
    assert_int_equal(wh_db_label_update(f->db, &l), WH_EEXISTS);
    snprintf(l.name, sizeof(l.name), "green");
    snprintf(l.description, sizeof(l.description), "grass");
    assert_int_equal(wh_db_label_update(f->db, &l), 0);
    assert_int_equal(wh_db_label_get(f->db, c, &l), 0);
    assert_string_equal(l.name, "green");
    assert_string_equal(l.description, "grass");
    l.id = 999999;
    assert_int_equal(wh_db_label_update(f->db, &l), WH_ENOTFOUND);

    /* ids are not reused after a delete */
    assert_int_equal(wh_db_label_delete(f->db, c), 0);
    assert_int_equal(wh_db_label_delete(f->db, c), WH_ENOTFOUND);
    assert_int_equal(wh_db_label_get(f->db, c, &l), WH_ENOTFOUND);
    int64_t d = make_label(f->db, "green", "p", f->p1, 0);
    assert_true(d > c);
}

static int64_t push(wh_db *db, int64_t project, const char *repo, const char *digest)
{
    struct wh_artifact_in in = {.repo = repo, .project_id = project, .digest = digest,
                                .media_type = "application/vnd.oci.image.manifest.v1+json",
                                .size = 100};
    assert_int_equal(wh_db_manifest_put(db, &in), 0);
    struct wh_manifest_ref ref;
    assert_int_equal(wh_db_manifest_get(db, repo, digest, true, &ref), 0);
    return ref.artifact_id;
}

static int count(const struct wh_label *l, void *payload)
{
    (void)l;
    (*(int *)payload)++;
    return 0;
}

static void test_dblabel__on_artifacts(void **state)
{
    struct fixture *f = *state;
    const char *d1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    int64_t art = push(f->db, f->p1, "one/app", d1);
    int64_t g = make_label(f->db, "g", "g", 0, 0);
    int64_t p = make_label(f->db, "p", "p", f->p1, 0);
    assert_int_equal(wh_db_artifact_label_add(f->db, art, g), 0);
    assert_int_equal(wh_db_artifact_label_add(f->db, art, p), 0);
    assert_int_equal(wh_db_artifact_label_add(f->db, art, g), WH_EEXISTS);
    assert_int_equal(wh_db_artifact_label_add(f->db, art, 999999), WH_ENOTFOUND);
    assert_int_equal(wh_db_artifact_label_add(f->db, 999999, g), WH_ENOTFOUND);
    int n = 0;
    assert_int_equal(wh_db_artifact_labels(f->db, art, count, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(wh_db_artifact_label_remove(f->db, art, g), 0);
    assert_int_equal(wh_db_artifact_label_remove(f->db, art, g), WH_ENOTFOUND);
    /* deleting the label takes it off */
    assert_int_equal(wh_db_label_delete(f->db, p), 0);
    n = 0;
    assert_int_equal(wh_db_artifact_labels(f->db, art, count, &n), 0);
    assert_int_equal(n, 0);
    /* deleting the artifact takes its links */
    assert_int_equal(wh_db_artifact_label_add(f->db, art, g), 0);
    assert_int_equal(wh_db_manifest_delete(f->db, "one/app", d1), 0);
    art = push(f->db, f->p1, "one/app", d1);
    n = 0;
    assert_int_equal(wh_db_artifact_labels(f->db, art, count, &n), 0);
    assert_int_equal(n, 0);
    /* deleting a project takes its labels */
    int64_t q = make_label(f->db, "q", "p", f->p2, 0);
    assert_int_equal(wh_db_project_delete(f->db, f->p2), 0);
    struct wh_label l;
    assert_int_equal(wh_db_label_get(f->db, q, &l), WH_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dblabel__crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dblabel__on_artifacts, setup, teardown),
    };
    return cmocka_run_group_tests_name("dblabel", tests, NULL, NULL);
}
