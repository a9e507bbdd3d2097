/*
 * Unit tests for db/: schema 3 keeps every row and id of a schema-2 database
 * and starts the sequences above the ids already handed out; ids of deleted
 * projects, repositories, artifacts, tags, users, members and robots never
 * come back, and updating an existing row takes no number; the list queries
 * of the REST API (artifacts, repositories, projects) are planned on an
 * index for every filter and sort combination (EXPLAIN QUERY PLAN: no scan of
 * a big table, no sort in a temporary B-tree) and return what the filters and
 * sort keys say, Harbor's base collection of artifacts included; a batch is
 * one transaction.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "db/db_driver.h"
#include "common/metrics.h"
#include "db/db_int.h"
#include "db_fixture.h"

#include <sqlite3.h>

#define MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_INDEX "application/vnd.oci.image.index.v1+json"

struct fixture {
    char dir[64];
    char path[128];
    wh_db *db;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/wharf-db-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/wharf.db", f->dir);
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

/* Raw SQL beside the driver: SQLite's file or PostgreSQL's schema (db_fixture.h). */
#define raw_exec test_db_exec
#define raw_int test_db_int

/* "sha256:" and 64 hex digits made from `n`. */
static const char *digest(char *buf, unsigned n)
{
    snprintf(buf, 72, "sha256:%064x", n);
    return buf;
}

static int64_t project(wh_db *db, const char *name, bool public)
{
    struct wh_project_info *in = calloc(1, sizeof(*in));
    snprintf(in->p.name, sizeof(in->p.name), "%s", name);
    in->p.public = public;
    in->storage_limit = -1;
    int64_t id = 0;
    assert_int_equal(wh_db_project_insert(db, in, &id), 0);
    free(in);
    return id;
}

/* Records a manifest (an index when `children`) and returns its artifact id. */
static int64_t put(wh_db *db, int64_t pid, const char *repo, const char *dg, const char **children,
                   size_t nchildren, const char *tag)
{
    struct wh_artifact_in a = {
        .repo = repo,
        .project_id = pid,
        .digest = dg,
        .media_type = children ? MT_INDEX : MT_MANIFEST,
        .artifact_type = children ? NULL : "application/vnd.oci.image.config.v1+json",
        .size = 100,
        .children = children,
        .nchildren = nchildren,
        .tag = tag,
    };
    assert_int_equal(wh_db_manifest_put(db, &a), 0);
    struct wh_repo r;
    assert_int_equal(wh_db_repo_get(db, repo, &r), 0);
    struct wh_artifact_info *ai = malloc(sizeof(*ai));
    assert_int_equal(wh_db_artifact_get(db, r.id, dg, true, ai), 0);
    int64_t id = ai->id;
    wh_artifact_info_dispose(ai);
    free(ai);
    return id;
}

static int64_t repo_id(wh_db *db, const char *name)
{
    struct wh_repo r;
    assert_int_equal(wh_db_repo_get(db, name, &r), 0);
    return r.id;
}

static int keep_tag(const struct wh_tag_info *t, void *payload)
{
    *(struct wh_tag_info *)payload = *t;
    return 0;
}

static int64_t the_tag_id(wh_db *db, int64_t artifact_id, const char *name)
{
    struct wh_tag_info t = {0};
    assert_int_equal(wh_db_tag_page(db, artifact_id, name, NULL, 0, 1, keep_tag, &t, NULL), 0);
    assert_string_equal(t.name, name);
    return t.id;
}

/* Whether every artifact's `listed` says what Harbor's base collection is:
 * tagged, or not a child of an index of its repository. */
static void assert_listed_consistent(const char *path)
{
    assert_int_equal(raw_int(path, "SELECT count(*) FROM artifact a WHERE a.listed <>"
                                   " CASE WHEN EXISTS (SELECT 1 FROM tag t WHERE t.artifact_id = a.id)"
                                   " OR NOT EXISTS (SELECT 1 FROM artifact_child c"
                                   " JOIN artifact p ON p.id = c.artifact_id"
                                   " WHERE p.repo_id = a.repo_id AND c.child_digest = a.digest)"
                                   " THEN 1 ELSE 0 END"),
                     0);
}

/* ---- schema 3 over a schema-2 database ---- */

static void test_db__migration_keeps_rows_and_ids(void **state)
{
    struct fixture *f = *state;
    char d[4][72];
    test_db_sqlite_only(); /* SQLite files of old schemas; PostgreSQL starts at 11 */
    assert_int_equal(db_open_at(&f->db, f->path, 2), 0);
    wh_db_close(f->db);
    f->db = NULL;
    assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 2);
    char sql[4096];
    snprintf(sql, sizeof(sql),
             "INSERT INTO project(id, name, public, created_ms, updated_ms)"
             "  VALUES(2, 'team', 0, 100, NULL), (5, 'gone', 0, 100, 100);"
             "INSERT INTO audit_log(op_time_ms, username, resource, resource_type, operation,"
             "  result, project_id) VALUES(1, 'admin', 'gone', 'project', 'create', 1, 5);"
             "DELETE FROM project WHERE id = 5;"
             "INSERT INTO repository(id, project_id, name, pull_count, created_ms, updated_ms,"
             "  description) VALUES(7, 2, 'team/app', 3, 100, 200, 'the app');"
             "INSERT INTO artifact(id, repo_id, digest, media_type, size, push_ms, pull_ms)"
             "  VALUES(11, 7, '%s', '" MT_MANIFEST "', 10, 100, NULL),"
             "        (12, 7, '%s', '" MT_MANIFEST "', 20, 110, 500),"
             "        (13, 7, '%s', '" MT_INDEX "', 30, 120, NULL);"
             "INSERT INTO artifact_child(artifact_id, child_digest) VALUES(13, '%s');"
             "INSERT INTO tag(id, repo_id, name, artifact_id, push_ms)"
             "  VALUES(21, 7, 'v1', 11, 100), (22, 7, 'multi', 13, 120);"
             "INSERT INTO user(id, username, password, created_ms, updated_ms)"
             "  VALUES(31, 'alice', 'x', 1, 1);"
             "INSERT INTO member(id, project_id, user_id, role, created_ms, updated_ms)"
             "  VALUES(41, 2, 31, 2, 1, 1);"
             "INSERT INTO robot(id, name, level, project_id, secret, created_ms, updated_ms)"
             "  VALUES(51, 'robot$team+ci', 'project', 2, 's', 1, 1);",
             digest(d[0], 1), digest(d[1], 2), digest(d[2], 3), digest(d[3], 2));
    raw_exec(f->path, sql);

    assert_int_equal(test_db_open(&f->db, f->path), 0);
    wh_db *db = f->db;
    assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 18); /* every migration since 2 */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'new_%'"),
                     0);
    assert_listed_consistent(f->path); /* 12, a child of the index 13, is not listed */
    assert_int_equal(raw_int(f->path, "SELECT listed FROM artifact WHERE id = 12"), 0);

    /* every row with its id and values */
    struct wh_project_info *pi = malloc(sizeof(*pi));
    assert_int_equal(wh_db_project_info(db, 2, pi), 0);
    assert_string_equal(pi->p.name, "team");
    assert_int_equal(pi->updated_ms, 100); /* was NULL: the creation time */
    assert_int_equal(pi->repo_count, 1);
    assert_int_equal(wh_db_project_info(db, 1, pi), 0);
    assert_string_equal(pi->p.name, "library");
    struct wh_repo_info *ri = malloc(sizeof(*ri));
    assert_int_equal(wh_db_repo_info(db, "team/app", ri), 0);
    assert_int_equal(ri->id, 7);
    assert_int_equal(ri->project_id, 2);
    assert_int_equal(ri->pull_count, 3);
    assert_string_equal(ri->description, "the app");
    assert_int_equal(ri->artifact_count, 2); /* 12 is a child of the index 13 */
    struct wh_artifact_info *ai = malloc(sizeof(*ai));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(wh_db_artifact_get(db, 7, d[i], true, ai), 0);
        assert_int_equal(ai->id, 11 + i);
        assert_int_equal(ai->project_id, 2);
        assert_int_equal(ai->size, 10 * (i + 1));
        wh_artifact_info_dispose(ai);
    }
    assert_int_equal(wh_db_artifact_get(db, 7, d[1], true, ai), 0);
    assert_int_equal(ai->pull_ms, 500);
    wh_artifact_info_dispose(ai);
    assert_int_equal(wh_db_artifact_get(db, 7, "multi", false, ai), 0);
    assert_int_equal(ai->id, 13);
    wh_artifact_info_dispose(ai);
    /* project_id was filled in: the project's list finds the artifacts */
    struct wh_artifact_filter af = {.project_id = 2, .tagged = -1, .all = true};
    int64_t total = 0;
    assert_int_equal(wh_db_artifact_list(db, &af, 0, 0, NULL, NULL, &total), 0);
    assert_int_equal(total, 3);
    assert_int_equal(the_tag_id(db, 11, "v1"), 21);
    assert_int_equal(the_tag_id(db, 13, "multi"), 22);
    struct wh_user u;
    assert_int_equal(wh_db_user_get_id(db, 31, &u), 0);
    assert_string_equal(u.username, "alice");
    struct wh_member m;
    assert_int_equal(wh_db_member_get(db, 2, 41, &m), 0);
    assert_int_equal(m.user_id, 31);
    struct wh_robot *rb = calloc(1, sizeof(*rb));
    assert_int_equal(wh_db_robot_get_id(db, 51, rb), 0);
    assert_string_equal(rb->name, "robot$team+ci");

    /* new rows get ids above every id handed out: the deleted project 5 is in
     * the audit log, so the next project is 6 */
    assert_int_equal(project(db, "fresh", false), 6);
    assert_int_equal(wh_db_blob_link(db, 2, "team/other", d[0], 1), 0);
    assert_int_equal(repo_id(db, "team/other"), 8);
    char dn[72];
    assert_int_equal(put(db, 2, "team/app", digest(dn, 9), NULL, 0, "v9"), 14);
    assert_int_equal(the_tag_id(db, 14, "v9"), 23);
    struct wh_user nu = {0};
    snprintf(nu.username, sizeof(nu.username), "bob");
    snprintf(nu.password, sizeof(nu.password), "x");
    int64_t id = 0;
    assert_int_equal(wh_db_user_create(db, &nu, &id), 0);
    assert_int_equal(id, 32);
    assert_int_equal(wh_db_member_set(db, 2, 32, 3, &id), 0);
    assert_int_equal(id, 42);
    memset(rb, 0, sizeof(*rb));
    snprintf(rb->name, sizeof(rb->name), "robot$ci");
    snprintf(rb->level, sizeof(rb->level), "system");
    snprintf(rb->secret, sizeof(rb->secret), "s");
    rb->duration = rb->expires_at = -1;
    assert_int_equal(wh_db_robot_create(db, rb, &id), 0);
    assert_int_equal(id, 52);

    /* foreign keys are back on: deleting the repository takes its artifacts and tags */
    assert_int_equal(wh_db_repo_delete(db, 7), 0);
    assert_int_equal(wh_db_artifact_get(db, 7, d[0], true, ai), WH_ENOTFOUND);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tag WHERE repo_id = 7"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM artifact_child"), 0);
    free(pi);
    free(ri);
    free(ai);
    free(rb);
}

/* ---- schema 18 over a schema-17 database: the review queue and the summaries rebuilt ---- */

static void test_db__migration_18_keeps_queue_and_triggers(void **state)
{
    struct fixture *f = *state;
    char d[3][72];
    test_db_sqlite_only(); /* the rebuild is SQLite's; PostgreSQL drops an index only */
    assert_int_equal(db_open_at(&f->db, f->path, 17), 0);
    wh_db_close(f->db);
    f->db = NULL;
    char sql[2048];
    snprintf(sql, sizeof(sql),
             "DELETE FROM gc_blob_review;"
             "INSERT INTO gc_blob_review(digest, review_after_ms, review_count, event)"
             "  VALUES('%s', 1000, 2, 'blob_upload'), ('%s', 2000, 0, 'blob_unlink');"
             "INSERT INTO manifest_summary(digest, extra_attrs, refs)"
             "  VALUES('%s', '{\"os\":\"linux\"}', '[]');",
             digest(d[0], 1), digest(d[1], 2), digest(d[2], 3));
    raw_exec(f->path, sql);

    assert_int_equal(test_db_open(&f->db, f->path), 0);
    assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 18);
    /* the rows, as they were */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM gc_blob_review WHERE (digest = '%s' AND review_after_ms = 1000"
             " AND review_count = 2 AND event = 'blob_upload') OR (digest = '%s' AND"
             " review_after_ms = 2000 AND review_count = 0 AND event = 'blob_unlink')",
             d[0], d[1]);
    assert_int_equal(raw_int(f->path, sql), 2);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM gc_blob_review"), 2);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM manifest_summary WHERE digest = '%s'"
             " AND extra_attrs = '{\"os\":\"linux\"}' AND refs = '[]'", d[2]);
    assert_int_equal(raw_int(f->path, sql), 1);
    /* one b-tree each (no rowid table beside the key's index), the sweep's unused index
     * gone, nothing left of the rebuild, the due-time index back */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE name IN"
                                      " ('sqlite_autoindex_gc_blob_review_1',"
                                      " 'sqlite_autoindex_manifest_summary_1', 'upload_updated')"
                                      " OR name LIKE '%\\_18' ESCAPE '\\'"),
                     0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE"
                                      " name = 'gc_blob_review_due' AND tbl_name = 'gc_blob_review'"),
                     1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM pragma_integrity_check"
                                      " WHERE integrity_check <> 'ok'"),
                     0);
    /* the triggers feed the rebuilt queue: a new blob is queued, a queued one postponed */
    snprintf(sql, sizeof(sql),
             "INSERT INTO blob(digest, size, created_ms) VALUES('%s', 1, 1), ('%s', 1, 1);",
             digest(d[2], 4), d[0]);
    raw_exec(f->path, sql);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM gc_blob_review WHERE event = 'blob_upload'"
             " AND review_after_ms > 1000 AND digest IN ('%s', '%s')",
             d[2], d[0]);
    assert_int_equal(raw_int(f->path, sql), 2);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM gc_blob_review"), 3);
}


/* ---- ids are never reused ---- */

static void test_db__ids_never_reused(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(test_db_open(&f->db, f->path), 0);
    wh_db *db = f->db;
    char d1[72], d2[72], d3[72];
    digest(d1, 1);
    digest(d2, 2);
    digest(d3, 3);

    /* projects */
    int64_t p1 = project(db, "one", false);
    assert_int_equal(wh_db_project_delete(db, p1), 0);
    int64_t p2 = project(db, "two", false);
    assert_true(p2 > p1);
    struct wh_project_info *pi = malloc(sizeof(*pi));
    assert_int_equal(wh_db_project_info(db, p1, pi), WH_ENOTFOUND);

    /* repositories: linking a blob again touches the row and takes no number */
    assert_int_equal(wh_db_blob_link(db, p2, "two/a", d1, 1), 0);
    int64_t r1 = repo_id(db, "two/a");
    assert_int_equal(wh_db_blob_link(db, p2, "two/a", d2, 1), 0);
    assert_int_equal(repo_id(db, "two/a"), r1);
    assert_int_equal(wh_db_repo_delete(db, r1), 0);
    assert_int_equal(wh_db_blob_link(db, p2, "two/a", d1, 1), 0);
    int64_t r2 = repo_id(db, "two/a");
    assert_int_equal(r2, r1 + 1);

    /* artifacts and tags: a re-push keeps the artifact's id, a moved tag keeps its id */
    int64_t a1 = put(db, p2, "two/a", d1, NULL, 0, "t");
    int64_t t1 = the_tag_id(db, a1, "t");
    assert_int_equal(put(db, p2, "two/a", d1, NULL, 0, "t"), a1);
    int64_t a2 = put(db, p2, "two/a", d2, NULL, 0, "t");
    assert_int_equal(a2, a1 + 1);
    assert_int_equal(the_tag_id(db, a2, "t"), t1);
    assert_int_equal(wh_db_tag_delete(db, "two/a", "t"), 0);
    assert_int_equal(wh_db_manifest_delete(db, "two/a", d2), 0);
    int64_t a3 = put(db, p2, "two/a", d2, NULL, 0, "t");
    assert_int_equal(a3, a2 + 1);
    assert_int_equal(the_tag_id(db, a3, "t"), t1 + 1);
    struct wh_artifact_info *ai = malloc(sizeof(*ai));
    int64_t ra = repo_id(db, "two/a");
    assert_int_equal(wh_db_artifact_get(db, ra, d3, true, ai), WH_ENOTFOUND);

    /* users, members, robots */
    struct wh_user u = {0};
    snprintf(u.username, sizeof(u.username), "carol");
    snprintf(u.password, sizeof(u.password), "x");
    int64_t u1 = 0, u2 = 0, m1 = 0, m2 = 0, b1 = 0, b2 = 0;
    assert_int_equal(wh_db_user_create(db, &u, &u1), 0);
    assert_int_equal(wh_db_member_set(db, p2, u1, 1, &m1), 0);
    assert_int_equal(wh_db_member_delete(db, p2, m1), 0);
    assert_int_equal(wh_db_member_set(db, p2, u1, 1, &m2), 0);
    assert_true(m2 > m1);
    assert_int_equal(wh_db_user_delete(db, u1), 0);
    assert_int_equal(wh_db_user_create(db, &u, &u2), 0);
    assert_true(u2 > u1);
    struct wh_user got;
    assert_int_equal(wh_db_user_get_id(db, u1, &got), WH_ENOTFOUND);
    struct wh_robot *rb = calloc(1, sizeof(*rb));
    snprintf(rb->name, sizeof(rb->name), "robot$x");
    snprintf(rb->level, sizeof(rb->level), "system");
    snprintf(rb->secret, sizeof(rb->secret), "s");
    rb->duration = rb->expires_at = -1;
    assert_int_equal(wh_db_robot_create(db, rb, &b1), 0);
    assert_int_equal(wh_db_robot_delete(db, b1), 0);
    assert_int_equal(wh_db_robot_create(db, rb, &b2), 0);
    assert_true(b2 > b1);
    assert_int_equal(wh_db_robot_get_id(db, b1, rb), WH_ENOTFOUND);

    /* and across a restart (the sequences are in the file) */
    wh_db_close(db);
    assert_int_equal(test_db_open(&f->db, f->path), 0);
    db = f->db;
    assert_int_equal(wh_db_project_delete(db, project(db, "three", false)), 0);
    assert_true(project(db, "four", false) > p2 + 1);
    free(pi);
    free(ai);
    free(rb);
}

/* ---- query plans ---- */

/* The plan of `sql` as lines "<detail>\n". */
static void plan(sqlite3 *h, const char *sql, char *out, size_t cap)
{
    char q[DB_SQL_MAX + 32];
    snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", sql);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(h, q, -1, &s, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sqlite3_errmsg(h), sql);
    size_t len = 0;
    out[0] = '\0';
    while (sqlite3_step(s) == SQLITE_ROW) {
        int n = snprintf(out + len, cap - len, "%s\n", (const char *)sqlite3_column_text(s, 3));
        if (n > 0 && (size_t)n < cap - len)
            len += (size_t)n;
    }
    sqlite3_finalize(s);
}

/*
 * Plan rules: never a sort in a temporary B-tree; no line "SCAN <alias>" for
 * the aliases in `no_scan` (the big tables: their rows are reached through an
 * index, never read one by one). Returns what is wrong, or NULL.
 */
static const char *plan_fault(sqlite3 *h, const char *sql, const char *const *no_scan, char *p,
                              size_t cap)
{
    plan(h, sql, p, cap);
    if (strstr(p, "USE TEMP B-TREE FOR ORDER BY"))
        return "sorted in a temporary B-tree";
    for (int i = 0; no_scan[i]; i++) {
        char line[32];
        snprintf(line, sizeof(line), "SCAN %s", no_scan[i]);
        size_t n = strlen(line);
        for (const char *at = p; (at = strstr(at, line)); at++)
            if ((at == p || at[-1] == '\n') && (at[n] == ' ' || at[n] == '\n'))
                return no_scan[i];
    }
    return NULL;
}

static void check_plan(sqlite3 *h, const char *sql, const char *const *no_scan, int *checked)
{
    char p[8192];
    const char *why = plan_fault(h, sql, no_scan, p, sizeof(p));
    if (why)
        fail_msg("%s:\n%s\n%s", why, sql, p);
    (*checked)++;
}

static void test_db__list_plans(void **state)
{
    struct fixture *f = *state;
    test_db_sqlite_only(); /* EXPLAIN QUERY PLAN */
    assert_int_equal(test_db_open(&f->db, f->path), 0);
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    struct db_sql *q = malloc(sizeof(*q));
    int checked = 0;
    /* artifacts: a, its repository r, the tags t, index children c and their parents p */
    static const char *const art_no_scan[] = {"a", "r", "t", "c", "p", "tag", NULL};
    /* the rules catch the "match anything" list this schema replaced */
    static const char before[] =
        "SELECT a.id FROM artifact a JOIN repository r ON r.id = a.repo_id"
        " WHERE (?1 = 0 OR a.repo_id = ?1) AND (?2 = 0 OR r.project_id = ?2)"
        " ORDER BY CASE ?7 WHEN 1 THEN coalesce(a.pull_ms, 0) WHEN 2 THEN a.size"
        " ELSE a.push_ms END * ?8, a.id * ?8 LIMIT ?10 OFFSET ?9";
    char p[8192];
    assert_non_null(plan_fault(h, before, art_no_scan, p, sizeof(p)));
    assert_non_null(plan_fault(h, "SELECT id FROM artifact a WHERE a.size > 1", art_no_scan, p,
                               sizeof(p)));
    for (int scope = 0; scope < 2; scope++)
        for (int bits = 0; bits < 16; bits++)
            for (int tagged = -1; tagged <= 1; tagged++)
                for (int sort = 0; sort < 4; sort++)
                    for (int count = 0; count < 2; count++) {
                        struct wh_artifact_filter af = {
                            .repo_id = scope == 0 ? 7 : 0,
                            .project_id = scope == 1 ? 3 : 0,
                            .digest = bits & 1 ? "sha256:0" : NULL,
                            .tag = bits & 2 ? "v1" : NULL,
                            .media_type = bits & 4 ? MT_MANIFEST : NULL,
                            .all = bits & 8,
                            .tagged = tagged,
                            .sort = sort,
                            .desc = (bits + sort) & 1,
                        };
                        q->len = 0;
                        db_artifact_list_sql(q, &af, count);
                        check_plan(h, q->text, art_no_scan, &checked);
                    }
    /*
     * repositories: within a project nothing is scanned; a list over every
     * project walks one index in the sort order (a scan of r, bounded by the
     * page) and counts the visible projects' repositories through the project
     * index.
     */
    static const char *const repo_no_scan[] = {"r", "a", "t", "c", "p", NULL};
    static const char *const repo_all_page[] = {"a", "t", "c", "member", NULL};
    static const char *const repo_all_count[] = {"r", "member", NULL};
    static const int64_t users[] = {-1, 0, 5};
    for (int scope = 0; scope < 2; scope++)
        for (int bits = 0; bits < 4; bits++)
            for (int v = 0; v < 3; v++)
                for (int sort = 0; sort < 5; sort++)
                    for (int count = 0; count < 2; count++) {
                        struct wh_repo_filter rf = {
                            .project_id = scope == 0 ? 3 : 0,
                            .name = bits & 1 ? "p/r" : NULL,
                            .name_like = bits & 2 ? "r" : NULL,
                            .visible_user = users[v],
                            .visible_project = v == 2 ? 4 : 0,
                            .sort = sort,
                            .desc = (bits + sort) & 1,
                        };
                        q->len = 0;
                        db_repo_page_sql(q, &rf, count);
                        const char *const *rule = repo_no_scan;
                        if (scope == 1 && !count)
                            rule = repo_all_page;
                        else if (scope == 1 && users[v] != -1)
                            rule = repo_all_count;
                        else if (scope == 1)
                            rule = repo_all_page; /* every repository: count(*) over an index */
                        check_plan(h, q->text, rule, &checked);
                    }
    /* projects: a small table, walked in the sort order; their repositories counted on an index */
    static const char *const proj_no_scan[] = {"r", "u", "member", "user", NULL};
    for (int bits = 0; bits < 16; bits++)
        for (int v = 0; v < 3; v++)
            for (int sort = 0; sort < 4; sort++)
                for (int count = 0; count < 2; count++) {
                    struct wh_project_filter pf = {
                        .name = bits & 1 ? "p" : NULL,
                        .name_like = bits & 2 ? "p" : NULL,
                        .public = bits & 4 ? 1 : -1,
                        .owner = bits & 8 ? "alice" : NULL,
                        .visible_user = users[v],
                        .visible_project = v == 2 ? 4 : 0,
                        .sort = sort,
                        .desc = (bits + sort) & 1,
                    };
                    q->len = 0;
                    db_project_list_sql(q, &pf, count);
                    check_plan(h, q->text, proj_no_scan, &checked);
                }
    /* the catalog and the tags of an artifact */
    static const char *const catalog[] = {
        "SELECT name FROM repository WHERE name > ?1 ORDER BY name LIMIT ?2",
        "SELECT t.id FROM tag t JOIN artifact a ON a.id = t.artifact_id WHERE t.artifact_id = ?1"
        " ORDER BY t.push_ms DESC, t.id DESC LIMIT ?5 OFFSET ?4",
    };
    static const char *const catalog_no_scan[] = {"repository", "t", "a", NULL};
    for (size_t i = 0; i < sizeof(catalog) / sizeof(catalog[0]); i++)
        check_plan(h, catalog[i], catalog_no_scan, &checked);
    assert_true(checked > 1000);
    free(q);
    sqlite3_close(h);
}

/* ---- what the lists return ---- */

struct seen {
    int64_t ids[64];
    int64_t keys[64];
    size_t n;
    int sort;
};

static int seen_artifact(const struct wh_artifact_info *a, void *payload)
{
    struct seen *s = payload;
    assert_true(s->n < 64);
    s->ids[s->n] = a->id;
    s->keys[s->n++] = s->sort == 0   ? a->push_ms
                      : s->sort == 1 ? a->pull_ms
                      : s->sort == 2 ? (int64_t)a->size
                                     : a->id;
    return 0;
}

static void test_db__artifact_lists(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(test_db_open(&f->db, f->path), 0);
    wh_db *db = f->db;
    int64_t pid = project(db, "lists", false);
    char d[12][72];
    int64_t ids[12];
    for (unsigned i = 0; i < 8; i++)
        ids[i] = put(db, pid, "lists/app", digest(d[i], 100 + i), NULL, 0, i == 0 ? "v0" : NULL);
    /* an index over 2 and 3, and one over 0 (tagged) and 4 */
    const char *kids[] = {d[2], d[3]};
    ids[8] = put(db, pid, "lists/app", digest(d[8], 108), kids, 2, "multi");
    const char *kids2[] = {d[0], d[4]};
    ids[9] = put(db, pid, "lists/app", digest(d[9], 109), kids2, 2, NULL);
    /* the same child digest as an artifact of another repository, not a child there */
    ids[10] = put(db, pid, "lists/other", d[2], NULL, 0, NULL);
    int64_t rid = repo_id(db, "lists/app");
    /* distinct pull times and sizes, in an order of their own */
    char sql[256];
    for (int i = 0; i < 10; i++) {
        snprintf(sql, sizeof(sql), "UPDATE artifact SET pull_ms = %s, size = %d WHERE id = %lld",
                 i % 3 == 0 ? "NULL" : (i % 3 == 1 ? "900" : "100"), (i * 7) % 10,
                 (long long)ids[i]);
        raw_exec(f->path, sql);
    }

    /* base collection: everything but the untagged children 2, 3 and 4 */
    struct wh_artifact_filter af = {.repo_id = rid, .tagged = -1};
    int64_t total = 0;
    struct seen s = {0};
    assert_int_equal(wh_db_artifact_list(db, &af, 0, 50, seen_artifact, &s, &total), 0);
    assert_int_equal(total, 7);
    assert_int_equal(s.n, 7);
    for (size_t i = 0; i < s.n; i++)
        assert_true(s.ids[i] != ids[2] && s.ids[i] != ids[3] && s.ids[i] != ids[4]);
    af.all = true;
    assert_int_equal(wh_db_artifact_list(db, &af, 0, 0, NULL, NULL, &total), 0);
    assert_int_equal(total, 10);
    af.all = false;
    af.tagged = 0;
    assert_int_equal(wh_db_artifact_list(db, &af, 0, 0, NULL, NULL, &total), 0);
    assert_int_equal(total, 5); /* 1 5 6 7 9 */
    af.tagged = 1;
    assert_int_equal(wh_db_artifact_list(db, &af, 0, 0, NULL, NULL, &total), 0);
    assert_int_equal(total, 2); /* 0 (a tagged child) and 8 */
    af.tagged = -1;
    af.tag = "multi";
    memset(&s, 0, sizeof(s));
    assert_int_equal(wh_db_artifact_list(db, &af, 0, 50, seen_artifact, &s, &total), 0);
    assert_true(total == 1 && s.n == 1 && s.ids[0] == ids[8]);
    af.tag = NULL;
    af.digest = d[3];
    assert_int_equal(wh_db_artifact_list(db, &af, 0, 0, NULL, NULL, &total), 0);
    assert_int_equal(total, 0); /* a child: listed with base=* only */
    af.all = true;
    assert_int_equal(wh_db_artifact_list(db, &af, 0, 0, NULL, NULL, &total), 0);
    assert_int_equal(total, 1);
    af.digest = NULL;
    af.all = false;
    af.media_type = MT_INDEX;
    assert_int_equal(wh_db_artifact_list(db, &af, 0, 0, NULL, NULL, &total), 0);
    assert_int_equal(total, 2);
    af.media_type = NULL;
    /* the repository counts its base collection; the other repository its one artifact */
    struct wh_repo_info *ri = malloc(sizeof(*ri));
    assert_int_equal(wh_db_repo_info(db, "lists/app", ri), 0);
    assert_int_equal(ri->artifact_count, 7);
    assert_int_equal(wh_db_repo_info(db, "lists/other", ri), 0);
    assert_int_equal(ri->artifact_count, 1);

    /* every sort key, both ways, in pages of 3: ordered by the key, then by id */
    for (int sort = 0; sort < 4; sort++)
        for (int desc = 0; desc < 2; desc++)
            for (int scope = 0; scope < 2; scope++) {
                struct wh_artifact_filter sf = {.repo_id = scope ? 0 : rid,
                                                .project_id = scope ? pid : 0,
                                                .tagged = -1,
                                                .all = true,
                                                .sort = sort,
                                                .desc = desc};
                memset(&s, 0, sizeof(s));
                s.sort = sort;
                for (int64_t off = 0; off < 12; off += 3)
                    assert_int_equal(
                        wh_db_artifact_list(db, &sf, off, 3, seen_artifact, &s, &total), 0);
                assert_int_equal(s.n, scope ? 11 : 10);
                assert_int_equal(total, (int64_t)s.n);
                for (size_t i = 1; i < s.n; i++) {
                    int64_t k0 = s.keys[i - 1], k1 = s.keys[i];
                    int cmp = k0 < k1 ? -1 : k0 > k1 ? 1 : (s.ids[i - 1] < s.ids[i] ? -1 : 1);
                    if (desc ? cmp < 0 : cmp > 0)
                        fail_msg("sort %d desc %d scope %d: row %zu out of order", sort, desc,
                                 scope, i);
                }
            }
    free(ri);
}

static int64_t listed(const char *path, int64_t id)
{
    char sql[96];
    snprintf(sql, sizeof(sql), "SELECT listed FROM artifact WHERE id = %lld", (long long)id);
    return raw_int(path, sql);
}

static void test_db__listed_follows_tags_and_indexes(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(test_db_open(&f->db, f->path), 0);
    wh_db *db = f->db;
    int64_t pid = project(db, "base", false);
    char a[72], b[72], c[72], i1[72], i2[72], i3[72];
    digest(a, 1);
    digest(b, 2);
    digest(c, 3);
    digest(i1, 11);
    digest(i2, 12);
    digest(i3, 13);
    int64_t ia = put(db, pid, "base/app", a, NULL, 0, NULL);
    int64_t ib = put(db, pid, "base/app", b, NULL, 0, NULL);
    put(db, pid, "base/app", c, NULL, 0, "c");
    int64_t rid = repo_id(db, "base/app");
    /* the same digest in another repository is no child there */
    int64_t other = put(db, pid, "base/other", a, NULL, 0, NULL);
    assert_listed_consistent(f->path);

    const char *ab[] = {a, b};
    int64_t x1 = put(db, pid, "base/app", i1, ab, 2, "multi");
    assert_int_equal(listed(f->path, ia), 0);
    assert_int_equal(listed(f->path, ib), 0);
    assert_int_equal(listed(f->path, other), 1);
    assert_listed_consistent(f->path);
    /* a tag of its own lists a child; taking it away unlists it again */
    assert_int_equal(wh_db_tag_create(db, rid, ia, "amd64"), 0);
    assert_int_equal(listed(f->path, ia), 1);
    assert_int_equal(wh_db_tag_delete(db, "base/app", "amd64"), 0);
    assert_int_equal(listed(f->path, ia), 0);
    assert_listed_consistent(f->path);
    /* a tag moved onto a child lists it; the index it left stays listed (no child) */
    put(db, pid, "base/app", a, NULL, 0, "multi");
    assert_int_equal(listed(f->path, ia), 1);
    assert_int_equal(listed(f->path, x1), 1);
    assert_listed_consistent(f->path);
    /* and moved away again */
    put(db, pid, "base/app", c, NULL, 0, "multi");
    assert_int_equal(listed(f->path, ia), 0);
    assert_listed_consistent(f->path);
    /* b is a child of two indexes: deleting one leaves it a child */
    const char *bb[] = {b};
    put(db, pid, "base/app", i2, bb, 1, NULL);
    assert_int_equal(wh_db_manifest_delete(db, "base/app", i1), 0);
    assert_int_equal(listed(f->path, ia), 1);
    assert_int_equal(listed(f->path, ib), 0);
    assert_listed_consistent(f->path);
    assert_int_equal(wh_db_manifest_delete(db, "base/app", i2), 0);
    assert_int_equal(listed(f->path, ib), 1);
    assert_listed_consistent(f->path);
    /* a child deleted and pushed again while an index lists it comes back unlisted */
    put(db, pid, "base/app", i3, bb, 1, "three");
    /* (the API refuses to delete a child an index lists; older data may lack one) */
    assert_int_equal(wh_db_manifest_delete(db, "base/app", b), WH_ECONFLICT);
    char *del = wh_sprintf("DELETE FROM artifact WHERE id = %lld", (long long)ib);
    raw_exec(f->path, del);
    free(del);
    int64_t ib2 = put(db, pid, "base/app", b, NULL, 0, NULL);
    assert_true(ib2 > ib);
    assert_int_equal(listed(f->path, ib2), 0);
    assert_listed_consistent(f->path);
    struct wh_repo_info *ri = malloc(sizeof(*ri));
    assert_int_equal(wh_db_repo_info(db, "base/app", ri), 0);
    assert_int_equal(ri->artifact_count, 3); /* a, c, i3 */
    /* deleting the repository takes everything, triggers and all */
    assert_int_equal(wh_db_repo_delete(db, rid), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM artifact_child"), 0);
    assert_listed_consistent(f->path);
    assert_int_equal(wh_db_repo_info(db, "base/other", ri), 0);
    assert_int_equal(ri->artifact_count, 1);
    free(ri);
}

struct batch {
    const char *names[3];
    int fail; /* the code fn returns */
};

static int batch_projects(wh_db *db, void *payload)
{
    struct batch *b = payload;
    for (int i = 0; i < 3 && b->names[i]; i++) {
        struct wh_project_info *in = calloc(1, sizeof(*in));
        snprintf(in->p.name, sizeof(in->p.name), "%s", b->names[i]);
        in->storage_limit = -1;
        int error = wh_db_project_insert(db, in, NULL);
        free(in);
        /* a refused call rolls back its own savepoint only */
        if (error < 0 && error != WH_EEXISTS)
            return error;
    }
    return b->fail;
}

static void test_db__batch(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(test_db_open(&f->db, f->path), 0);
    wh_db *db = f->db;
    struct batch ok = {{"b1", "b1", "b2"}, 0};
    assert_int_equal(wh_db_batch(db, batch_projects, &ok), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM project WHERE name IN ('b1','b2')"), 2);
    struct batch bad = {{"b3", "b4", NULL}, WH_EINVALID};
    assert_int_equal(wh_db_batch(db, batch_projects, &bad), WH_EINVALID);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM project WHERE name IN ('b3','b4')"), 0);
    /* the connection is out of the batch: a single call commits on its own */
    project(db, "b5", false);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM project WHERE name = 'b5'"), 1);
    /* whole: no savepoints inside, the same all or nothing */
    struct batch whole = {{"w1", "w2", NULL}, 0};
    assert_int_equal(wh_db_batch_whole(db, batch_projects, &whole), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM project WHERE name IN ('w1','w2')"), 2);
    struct batch whole_bad = {{"w3", "w4", NULL}, WH_EINVALID};
    assert_int_equal(wh_db_batch_whole(db, batch_projects, &whole_bad), WH_EINVALID);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM project WHERE name IN ('w3','w4')"), 0);
    project(db, "b6", false);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM project WHERE name = 'b6'"), 1);
}

struct names {
    char v[16][WH_NAME_MAX];
    size_t n;
};

static int seen_repo(const struct wh_repo_info *r, void *payload)
{
    struct names *n = payload;
    assert_true(n->n < 16);
    snprintf(n->v[n->n++], WH_NAME_MAX, "%s", r->name);
    return 0;
}

static int seen_project(const struct wh_project_info *p, void *payload)
{
    struct names *n = payload;
    assert_true(n->n < 16);
    snprintf(n->v[n->n++], WH_NAME_MAX, "%s", p->p.name);
    return 0;
}

static void test_db__repo_and_project_lists(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(test_db_open(&f->db, f->path), 0);
    wh_db *db = f->db;
    int64_t pub = project(db, "pub", true), priv = project(db, "priv", false);
    int64_t other = project(db, "other", false);
    char d[72];
    digest(d, 1);
    static const char *const names[] = {"pub/b", "pub/a", "priv/c", "priv/a", "other/x"};
    for (int i = 0; i < 5; i++) {
        int64_t in = i < 2 ? pub : i < 4 ? priv : other;
        assert_int_equal(wh_db_blob_link(db, in, names[i], d, 1), 0);
    }
    struct wh_user u = {0};
    snprintf(u.username, sizeof(u.username), "dan");
    snprintf(u.password, sizeof(u.password), "x");
    int64_t uid = 0;
    assert_int_equal(wh_db_user_create(db, &u, &uid), 0);
    assert_int_equal(wh_db_member_set(db, priv, uid, 3, NULL), 0);

    struct names n = {0};
    int64_t total = 0;
    struct wh_repo_filter rf = {.visible_user = -1};
    assert_int_equal(wh_db_repo_page(db, &rf, 0, 10, seen_repo, &n, &total), 0);
    assert_int_equal(total, 5);
    assert_string_equal(n.v[0], "other/x");
    assert_string_equal(n.v[4], "pub/b");
    /* a member sees the public project and its own; anonymous the public one */
    rf.visible_user = uid;
    memset(&n, 0, sizeof(n));
    assert_int_equal(wh_db_repo_page(db, &rf, 0, 10, seen_repo, &n, &total), 0);
    assert_int_equal(total, 4);
    assert_int_equal(n.n, 4);
    assert_string_equal(n.v[0], "priv/a");
    rf.visible_user = 0;
    assert_int_equal(wh_db_repo_page(db, &rf, 0, 0, NULL, NULL, &total), 0);
    assert_int_equal(total, 2);
    /* a robot of the project `other` sees it beside the public one */
    rf.visible_project = other;
    memset(&n, 0, sizeof(n));
    assert_int_equal(wh_db_repo_page(db, &rf, 0, 10, seen_repo, &n, &total), 0);
    assert_int_equal(total, 3);
    assert_string_equal(n.v[0], "other/x");
    /* one project, by name descending, a page of one */
    struct wh_repo_filter pf = {.project_id = priv, .visible_user = -1, .desc = true};
    memset(&n, 0, sizeof(n));
    assert_int_equal(wh_db_repo_page(db, &pf, 1, 1, seen_repo, &n, &total), 0);
    assert_int_equal(total, 2);
    assert_int_equal(n.n, 1);
    assert_string_equal(n.v[0], "priv/a");
    pf.name_like = "c";
    assert_int_equal(wh_db_repo_page(db, &pf, 0, 0, NULL, NULL, &total), 0);
    assert_int_equal(total, 1);

    struct wh_project_filter jf = {.public = -1, .visible_user = uid};
    memset(&n, 0, sizeof(n));
    assert_int_equal(wh_db_project_list(db, &jf, 0, 10, seen_project, &n, &total), 0);
    assert_int_equal(total, 3); /* library, pub, priv */
    assert_string_equal(n.v[0], "library");
    assert_string_equal(n.v[1], "priv");
    jf.sort = 2;
    jf.desc = true;
    memset(&n, 0, sizeof(n));
    assert_int_equal(wh_db_project_list(db, &jf, 0, 10, seen_project, &n, &total), 0);
    assert_string_equal(n.v[0], "priv");
    jf.public = 0;
    assert_int_equal(wh_db_project_list(db, &jf, 0, 0, NULL, NULL, &total), 0);
    assert_int_equal(total, 1);

    /* a system robot sees the public projects and the ones its permissions name, exactly
     * ("oth_r" is no pattern: it does not name "other"); "" is in every name */
    struct wh_repo_filter sf = {.visible_names = "[\"priv\", \"oth_r\", \"a/b\"]"};
    memset(&n, 0, sizeof(n));
    assert_int_equal(wh_db_repo_page(db, &sf, 0, 10, seen_repo, &n, &total), 0);
    assert_int_equal(total, 4);
    assert_string_equal(n.v[0], "priv/a");
    assert_string_equal(n.v[3], "pub/b");
    sf.project_id = 0;
    sf.name_like = "";
    assert_int_equal(wh_db_repo_page(db, &sf, 0, 0, NULL, NULL, &total), 0);
    assert_int_equal(total, 4);
    sf.visible_names = "[]";
    assert_int_equal(wh_db_repo_page(db, &sf, 0, 0, NULL, NULL, &total), 0);
    assert_int_equal(total, 2);
    struct wh_project_filter sj = {.public = -1, .visible_names = "[\"priv\", \"oth_r\"]"};
    memset(&n, 0, sizeof(n));
    assert_int_equal(wh_db_project_list(db, &sj, 0, 10, seen_project, &n, &total), 0);
    assert_int_equal(total, 3); /* library, pub, priv */
    assert_string_equal(n.v[1], "priv");
    struct wh_statistics st;
    assert_int_equal(wh_db_statistics(db, &sj, &st), 0);
    assert_int_equal(st.private_projects, 1);
    assert_int_equal(st.public_projects, 2);
}

/* Reads a tag page with no filters (SQL whose parameters PostgreSQL must be told the types
 * of: the driver's first try at preparing it fails). */
static int tag_page_in_tx(wh_db *db, void *payload)
{
    (void)payload;
    struct wh_project_info *in = calloc(1, sizeof(*in));
    snprintf(in->p.name, sizeof(in->p.name), "in-tx");
    in->storage_limit = -1;
    int error = wh_db_project_insert(db, in, NULL);
    free(in);
    if (error == 0)
        error = wh_db_tag_page(db, 1, NULL, NULL, 0, 10, keep_tag, &(struct wh_tag_info){0},
                               NULL);
    return error;
}

/* A statement first prepared inside a transaction does not break the transaction. */
static void test_db__prepare_in_tx(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(test_db_open(&f->db, f->path), 0);
    assert_int_equal(wh_db_batch(f->db, tag_page_in_tx, NULL), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM project WHERE name = 'in-tx'"), 1);
}

/*
 * PostgreSQL's plan of `sql` (each ?N as the literal '1', which the server types from
 * where it stands) with sequential scans and sorts priced out: a "Seq Scan" or a "Sort"
 * left in it means no index can serve the query. Returns the first offending line or NULL.
 */
static const char *pg_plan_fault(PGconn *h, const char *sql, const char *const *no_scan,
                                 bool sort_ok, char *out, size_t cap)
{
    char *q = malloc(strlen(sql) * 4 + 16), *o = q;
    o += sprintf(o, "EXPLAIN ");
    for (const char *p = sql; *p;) {
        if (*p == '?') {
            p++;
            while (*p >= '0' && *p <= '9')
                p++;
            o += sprintf(o, "'1'");
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    PGresult *r = PQexec(h, q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", q, PQerrorMessage(h));
    const char *fault = NULL;
    const char *pending = NULL; /* a scan of a listed table not yet seen bounded by its index */
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < PQntuples(r); i++) {
        const char *line = PQgetvalue(r, i, 0);
        len += (size_t)snprintf(out + len, len < cap ? cap - len : 0, "%s\n", line);
        if (len >= cap)
            len = cap - 1;
        bool node = i == 0 || strstr(line, "->");
        if (node && pending && !fault)
            fault = pending; /* a whole index walked with a filter is a scan too */
        if (node)
            pending = NULL;
        if (strstr(line, "Index Cond") || strstr(line, "Recheck Cond"))
            pending = NULL;
        if (!sort_ok && node && strstr(line, "Sort") && !fault)
            fault = "Sort";
        for (int k = 0; node && no_scan[k] && !fault; k++) {
            char on[64];
            snprintf(on, sizeof(on), " on %s ", no_scan[k]);
            if (!strstr(line, "Scan") || !strstr(line, on))
                continue;
            if (strstr(line, "Seq Scan"))
                fault = no_scan[k];
            else
                pending = no_scan[k];
        }
    }
    if (pending && !fault)
        fault = pending;
    PQclear(r);
    free(q);
    return fault;
}

/* PostgreSQL's side of test_db__list_plans: every artifact list, tag page and repository
 * list of one project is served by an index, in its sort order. */
static void test_db__list_plans_pg(void **state)
{
    struct fixture *f = *state;
    if (!test_db_pg())
        skip(); /* SQLite's: test_db__list_plans */
    assert_int_equal(test_db_open(&f->db, f->path), 0);
    char *target = test_db_target(f->path);
    PGconn *h = test_db_pg_connect(target);
    free(target);
    PQclear(PQexec(h, "SET enable_seqscan = off; SET enable_sort = off"));
    struct db_sql *q = malloc(sizeof(*q));
    char *p = malloc(16384);
    static const char *const art_no_scan[] = {"artifact", "tag", "artifact_child", NULL};
    int checked = 0;
    /* the rules catch a list no index can serve */
    assert_non_null(pg_plan_fault(h, "SELECT id FROM artifact a WHERE a.media_type = 'x'", art_no_scan,
                                  false, p, 16384));
    assert_non_null(pg_plan_fault(h, "SELECT id FROM artifact a WHERE a.repo_id = 1"
                                     " ORDER BY a.media_type", art_no_scan, false, p, 16384));
    for (int scope = 0; scope < 2; scope++)
        for (int bits = 0; bits < 16; bits++)
            for (int tagged = -1; tagged <= 1; tagged++)
                for (int sort = 0; sort < 4; sort++)
                    for (int count = 0; count < 2; count++) {
                        struct wh_artifact_filter af = {
                            .repo_id = scope == 0 ? 7 : 0,
                            .project_id = scope == 1 ? 3 : 0,
                            .digest = bits & 1 ? "sha256:0" : NULL,
                            .tag = bits & 2 ? "v1" : NULL,
                            .media_type = bits & 4 ? MT_MANIFEST : NULL,
                            .all = bits & 8,
                            .tagged = tagged,
                            .sort = sort,
                            .desc = (bits + sort) & 1,
                        };
                        q->len = 0;
                        db_artifact_list_sql(q, &af, count);
                        const char *fault = pg_plan_fault(h, q->text, art_no_scan, count != 0,
                                                          p, 16384);
                        if (fault)
                            fail_msg("%s in the plan of\n%s\n%s", fault, q->text, p);
                        checked++;
                    }
    static const char *const repo_no_scan[] = {"repository", "artifact", "tag", NULL};
    for (int bits = 0; bits < 4; bits++)
        for (int sort = 0; sort < 5; sort++) {
            struct wh_repo_filter rf = {
                .project_id = 3,
                .name = bits & 1 ? "p/r" : NULL,
                .name_like = bits & 2 ? "r" : NULL,
                .visible_user = -1,
                .sort = sort,
                .desc = (bits + sort) & 1,
            };
            q->len = 0;
            db_repo_page_sql(q, &rf, false);
            const char *fault = pg_plan_fault(h, q->text, repo_no_scan, false, p, 16384);
            if (fault)
                fail_msg("%s in the plan of\n%s\n%s", fault, q->text, p);
            checked++;
        }
    static const char *const catalog[] = {
        "SELECT name FROM repository WHERE name > ?1 ORDER BY name LIMIT ?2",
        "SELECT t.id FROM tag t JOIN artifact a ON a.id = t.artifact_id WHERE t.artifact_id = ?1"
        " ORDER BY t.push_ms DESC, t.id DESC LIMIT ?5 OFFSET ?4",
    };
    for (size_t i = 0; i < sizeof(catalog) / sizeof(catalog[0]); i++) {
        const char *fault = pg_plan_fault(h, catalog[i], repo_no_scan, false, p, 16384);
        if (fault)
            fail_msg("%s in the plan of\n%s\n%s", fault, catalog[i], p);
    }
    assert_true(checked > 300);
    free(p);
    free(q);
    PQfinish(h);
}

/* A pooled connection the server dropped (a restart, a failover) is made again; the
 * statement that met it runs again and succeeds. */
static void test_db__dropped_connection(void **state)
{
    struct fixture *f = *state;
    if (!test_db_pg())
        skip(); /* SQLite's file does not go away */
    assert_int_equal(test_db_open(&f->db, f->path), 0);
    struct wh_project p;
    assert_int_equal(wh_db_project_get(f->db, "library", &p), 0);
    assert_true(raw_int(f->path, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                 " WHERE datname = current_database()"
                                 " AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
                >= 1);
    assert_int_equal(wh_db_project_get(f->db, "library", &p), 0);
    assert_string_equal(p.name, "library");
    assert_int_equal(wh_db_project_create(f->db, "after-drop", false, NULL), 0);
}

/* Schema version N is the same logical schema on every driver: each driver knows every
 * version (a migration added to one driver and not the other fails here). */
static void test_db__drivers_know_every_version(void **state)
{
    (void)state;
    assert_int_equal(db_pg_driver.nmigrations, db_sqlite_driver.nmigrations);
    assert_int_equal(wh_db_schema_latest(), db_pg_driver.nmigrations);
    for (int i = 0; i < db_pg_driver.nmigrations; i++)
        assert_non_null(db_pg_driver.migrations[i]);
}

/* ---- several connections, threads and processes (PostgreSQL's pool and locks) ---- */

struct opener {
    const char *path;
    wh_db *db;
    int rc;
};

static void *open_one(void *payload)
{
    struct opener *o = payload;
    o->rc = test_db_open(&o->db, o->path);
    return NULL;
}

/* Nodes starting together on one empty database migrate it once (the advisory lock). */
static void test_db__migrate_together(void **state)
{
    struct fixture *f = *state;
    if (!test_db_pg())
        skip(); /* one process owns a SQLite file (the data directory's lock) */
    struct opener o[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        o[i] = (struct opener){.path = f->path};
        assert_int_equal(pthread_create(&t[i], NULL, open_one, &o[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(o[i].rc, 0);
    }
    assert_int_equal(raw_int(f->path, "SELECT version FROM wharf_schema"), wh_db_schema_latest());
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM wharf_schema"), 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM project WHERE name = 'library'"), 1);
    for (int i = 0; i < 4; i++)
        wh_db_close(o[i].db);
}

struct waiter {
    wh_db *db;
    int rc;
    bool done;
    pthread_mutex_t lock;
};

static void *insert_project(void *payload)
{
    struct waiter *w = payload;
    struct wh_project_info *in = calloc(1, sizeof(*in));
    snprintf(in->p.name, sizeof(in->p.name), "second");
    in->storage_limit = -1;
    int rc = wh_db_project_insert(w->db, in, NULL);
    free(in);
    pthread_mutex_lock(&w->lock);
    w->rc = rc;
    w->done = true;
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static bool waiter_done(struct waiter *w)
{
    pthread_mutex_lock(&w->lock);
    bool d = w->done;
    pthread_mutex_unlock(&w->lock);
    return d;
}

/* Polls `cond(payload)` for up to 10 s. */
static bool eventually(bool (*cond)(void *payload), void *payload)
{
    for (int i = 0; i < 1000; i++) {
        if (cond(payload))
            return true;
        usleep(10000);
    }
    return false;
}

struct held {
    const char *path;
    struct waiter *w;
    pthread_t t;
    int64_t waits_before;
    bool saw;
};

static bool advisory_waiter(void *payload)
{
    const struct held *h = payload;
    return raw_int(h->path, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                            " AND NOT granted") >= 1;
}

static int64_t pool_waits(void)
{
    struct wh_db_pool_stats st;
    return wh_db_pool_stats(&st) == 0 ? st.waits : -1;
}

static bool pool_waiter(void *payload)
{
    const struct held *h = payload;
    return pool_waits() > h->waits_before;
}

/* Inside the first writer's transaction: starts the second, sees it wait, writes again. */
static int hold_write_lock(wh_db *db, void *payload)
{
    struct held *h = payload;
    struct wh_project_info *in = calloc(1, sizeof(*in));
    snprintf(in->p.name, sizeof(in->p.name), "first");
    in->storage_limit = -1;
    int error = wh_db_project_insert(db, in, NULL);
    assert_int_equal(error, 0);
    assert_int_equal(pthread_create(&h->t, NULL, insert_project, h->w), 0);
    /* the second writer queues on the write lock (or, with a pool of one, on the pool) */
    h->saw = h->waits_before >= 0 ? eventually(pool_waiter, h) : eventually(advisory_waiter, h);
    assert_false(waiter_done(h->w));
    /* this thread's own calls go on through its connection: it never waits for itself */
    snprintf(in->p.name, sizeof(in->p.name), "first-again");
    error = wh_db_project_insert(db, in, NULL);
    free(in);
    return error;
}

/* Two writers on PostgreSQL queue on the write lock as they do on SQLite's one writer. */
static void test_db__writers_queue(void **state)
{
    struct fixture *f = *state;
    if (!test_db_pg())
        skip(); /* SQLite: BEGIN IMMEDIATE, its busy timeout; tested by the e2e suites */
    assert_int_equal(test_db_open(&f->db, f->path), 0);
    struct waiter w = {.db = f->db};
    pthread_mutex_init(&w.lock, NULL);
    struct held h = {.path = f->path, .w = &w, .waits_before = -1};
    assert_int_equal(wh_db_batch(f->db, hold_write_lock, &h), 0);
    assert_true(h.saw);
    pthread_join(h.t, NULL);
    assert_int_equal(w.rc, 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM project WHERE name IN"
                                      " ('first', 'first-again', 'second')"), 3);
    pthread_mutex_destroy(&w.lock);
}

/*
 * With a pool of one connection, a thread inside a transaction keeps it: a
 * second thread waits for the pool (counted in the metrics), the first never
 * waits for itself, and the second goes on once the transaction ends.
 */
static void test_db__pool_of_one(void **state)
{
    struct fixture *f = *state;
    if (!test_db_pg())
        skip(); /* SQLite has a connection per thread, no pool */
    wh_db_pool_size_set(1);
    int rc = test_db_open(&f->db, f->path);
    wh_db_pool_size_set(8);
    assert_int_equal(rc, 0);
    struct wh_db_pool_stats st;
    assert_int_equal(wh_db_pool_stats(&st), 0);
    struct waiter w = {.db = f->db};
    pthread_mutex_init(&w.lock, NULL);
    struct held h = {.path = f->path, .w = &w, .waits_before = st.waits};
    assert_int_equal(wh_db_batch(f->db, hold_write_lock, &h), 0);
    assert_true(h.saw);
    pthread_join(h.t, NULL);
    assert_int_equal(w.rc, 0);
    assert_int_equal(wh_db_pool_stats(&st), 0);
    assert_int_equal(st.in_use, 0);
    assert_true(st.open >= 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM project WHERE name IN"
                                      " ('first', 'first-again', 'second')"), 3);
    pthread_mutex_destroy(&w.lock);
}

/* ---- SQLite's writers' queue: background writers give way to waiting requests ---- */

struct turn {
    wh_db *db;
    const char *who;
    bool background;
    bool pooled; /* writes from inside a call holding a pooled connection, not the writer's */
    int rc;
    pthread_mutex_t *lock;
    char *order; /* who committed, in order */
};

static int write_setting(wh_db *db, void *payload)
{
    struct turn *t = payload;
    int error = wh_db_setting_set(db, t->who, t->who, 1);
    pthread_mutex_lock(t->lock);
    strcat(t->order, t->who);
    strcat(t->order, " ");
    pthread_mutex_unlock(t->lock);
    return error;
}

static void *take_turn(void *arg)
{
    struct turn *t = arg;
    wh_db_thread_background(t->background);
    struct conn *c = t->pooled ? db_conn(t->db) : NULL;
    t->rc = wh_db_batch(t->db, write_setting, t);
    db_conn_put(c);
    return NULL;
}

static wh_db *queue_db; /* the database whose writer connection queue_is watches */

/*
 * Polls until the writers waiting are `fg` request threads and `bg`
 * background ones giving way (10 s at most), for the writer connection and
 * SQLite's lock together.
 */
static bool queue_is(int fg, int bg)
{
    for (int i = 0; i < 10000; i++) {
        int a, b, wa = 0, wb = 0;
        db_sqlite_writers(&a, &b);
        if (queue_db)
            db_writer_queue(queue_db, &wa, &wb);
        if (a + wa == fg && b + wb == bg)
            return true;
        usleep(1000);
    }
    return false;
}

struct hold_ctx {
    struct turn *request, *scan;
    pthread_t t1, t2;
    bool queued;
};

/* Holding the write lock: a request queues, then a background writer arrives. */
static int hold_while_two_queue(wh_db *db, void *payload)
{
    struct hold_ctx *h = payload;
    int error = wh_db_setting_set(db, "holder", "x", 1);
    pthread_create(&h->t1, NULL, take_turn, h->request);
    bool one = queue_is(1, 0);
    pthread_create(&h->t2, NULL, take_turn, h->scan);
    h->queued = one && queue_is(1, 1);
    return error;
}

/*
 * A request thread waiting for the write lock goes before a background
 * thread (a scan's results) that asked after it; with SQLite's own sleeping
 * busy handler the one whose sleep ended first would win.
 */
/* wharf_db_lock_waits_total, as /metrics shows it (and its seconds shown > 0). */
static long long lock_waits(void)
{
    struct wh_buf b;
    wh_buf_init(&b, 1 << 20);
    assert_int_equal(wh_metrics_render(&b, NULL, 0), 0);
    wh_buf_put(&b, "", 1);
    const char *waits = strstr(b.data, "\nwharf_db_lock_waits_total ");
    const char *secs = strstr(b.data, "\nwharf_db_lock_wait_seconds_total ");
    assert_non_null(waits);
    assert_non_null(secs);
    long long n = atoll(waits + strlen("\nwharf_db_lock_waits_total "));
    if (n > 0)
        assert_true(atof(secs + strlen("\nwharf_db_lock_wait_seconds_total ")) > 0);
    wh_buf_dispose(&b);
    return n;
}

static void gives_way(struct fixture *f, bool pooled)
{
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    char order[64] = "";
    struct turn request = {.db = f->db, .who = "request", .pooled = pooled, .lock = &lock,
                           .order = order};
    struct turn scan = {.db = f->db, .who = "scan", .background = true, .pooled = pooled,
                        .lock = &lock, .order = order};
    struct hold_ctx h = {.request = &request, .scan = &scan};
    long long waits0 = lock_waits();
    assert_int_equal(wh_db_batch(f->db, hold_while_two_queue, &h), 0);
    pthread_join(h.t1, NULL);
    pthread_join(h.t2, NULL);
    assert_true(h.queued);
    assert_int_equal(request.rc, 0);
    assert_int_equal(scan.rc, 0);
    assert_string_equal(order, "request scan ");
    assert_true(queue_is(0, 0));
    /* the request's wait is counted in /metrics */
    assert_true(lock_waits() > waits0);
}

/*
 * A request thread waiting to write goes before a background thread (a
 * scan's results) that asked after it: for the writer connection, which
 * write calls take, and for SQLite's lock, which a write inside a call
 * holding a pooled connection waits for (with SQLite's own sleeping busy
 * handler the one whose sleep ended first would win).
 */
static void test_db__background_writer_gives_way(void **state)
{
    struct fixture *f = *state;
    if (test_db_pg())
        skip(); /* PostgreSQL queues writers on its advisory lock, in order */
    assert_int_equal(test_db_open(&f->db, f->path), 0);
    queue_db = f->db;
    gives_way(f, false);
    gives_way(f, true);
    queue_db = NULL;
}


/* ---- checkpoints wait for the write transactions under way (SQLite's WAL-reset race) ---- */

#define CKPT_BIG (5 << 20) /* bytes written by one transaction: past 1000 WAL frames */

struct ckpt_case {
    wh_db *db;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool in_tx;   /* the other writer's transaction is open */
    bool release; /* it may end */
    bool saw_wait; /* a checkpoint waited, none ran, while it was open */
    int rc;
    uint64_t run_before;
    pthread_t writer, watcher;
};

static int open_until_released(wh_db *db, void *payload)
{
    struct ckpt_case *k = payload;
    int error = wh_db_setting_set(db, "ckpt-other", "x", 1);
    pthread_mutex_lock(&k->lock);
    k->in_tx = true;
    while (!k->release)
        pthread_cond_wait(&k->cond, &k->lock);
    pthread_mutex_unlock(&k->lock);
    return error;
}

static void *other_writer(void *arg)
{
    struct ckpt_case *k = arg;
    /* inside a call holding a pooled connection: a second SQLite connection writing */
    struct conn *c = db_conn(k->db);
    k->rc = wh_db_batch(k->db, open_until_released, k);
    db_conn_put(c);
    return NULL;
}

/* Waits (10 s at most) for a checkpoint waiting while the other transaction is open. */
static void *ckpt_watcher(void *arg)
{
    struct ckpt_case *k = arg;
    bool seen = false;
    for (int i = 0; i < 10000 && !seen; i++) {
        int waiting;
        uint64_t run;
        db_sqlite_checkpoints(&waiting, &run);
        pthread_mutex_lock(&k->lock);
        seen = waiting == 1 && k->in_tx && run == k->run_before;
        pthread_mutex_unlock(&k->lock);
        if (!seen)
            usleep(1000);
    }
    pthread_mutex_lock(&k->lock);
    k->saw_wait = seen;
    k->release = true;
    pthread_cond_signal(&k->cond);
    pthread_mutex_unlock(&k->lock);
    return NULL;
}

/* Another writer queues for the lock; this transaction then writes enough to need a checkpoint. */
static int big_write_while_queued(wh_db *db, void *payload)
{
    struct ckpt_case *k = payload;
    pthread_create(&k->writer, NULL, other_writer, k);
    if (!queue_is(1, 0))
        return WH_ERROR;
    char *big = malloc(CKPT_BIG + 1);
    memset(big, 'x', CKPT_BIG);
    big[CKPT_BIG] = '\0';
    int error = wh_db_setting_set(db, "ckpt-big", big, 1);
    free(big);
    pthread_create(&k->watcher, NULL, ckpt_watcher, k);
    return error;
}

/*
 * The commit that leaves the WAL past its threshold checkpoints only once no
 * other write transaction of the process is under way: here the one queued
 * behind it, which takes the lock at that commit. A checkpoint overlapping
 * other connections' commits is what SQLite before 3.51.3 can get wrong (its
 * "WAL-reset bug": committed pages lost). The checkpoint still runs, at the
 * end of that transaction, and everything written is in the database.
 */
static void test_db__checkpoint_waits_for_writers(void **state)
{
    struct fixture *f = *state;
    if (test_db_pg())
        skip(); /* PostgreSQL has no WAL of SQLite's kind */
    assert_int_equal(test_db_open(&f->db, f->path), 0);
    struct ckpt_case k = {.db = f->db};
    pthread_mutex_init(&k.lock, NULL);
    pthread_cond_init(&k.cond, NULL);
    int waiting;
    db_sqlite_checkpoints(&waiting, &k.run_before);
    assert_int_equal(wh_db_batch(f->db, big_write_while_queued, &k), 0);
    pthread_join(k.writer, NULL);
    pthread_join(k.watcher, NULL);
    assert_int_equal(k.rc, 0);
    assert_true(k.saw_wait);
    uint64_t run;
    db_sqlite_checkpoints(&waiting, &run);
    assert_int_equal(waiting, 0);
    assert_true(run > k.run_before);
    assert_int_equal(raw_int(f->path, "SELECT length(value) FROM setting WHERE name = 'ckpt-big'"),
                     CKPT_BIG);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM setting WHERE name = 'ckpt-other'"), 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM pragma_integrity_check"
                                      " WHERE integrity_check <> 'ok'"), 0);
    pthread_mutex_destroy(&k.lock);
    pthread_cond_destroy(&k.cond);
}

struct storm {
    wh_db *db;
    bool background;
    int id, failures;
};

static int storm_write(wh_db *db, void *payload)
{
    struct storm *s = payload;
    char name[32];
    snprintf(name, sizeof(name), "storm-%d", s->id);
    return wh_db_setting_set(db, name, "x", wh_now_ms());
}

static void *storm_thread(void *arg)
{
    struct storm *s = arg;
    wh_db_thread_background(s->background);
    for (int i = 0; i < 150; i++)
        if (wh_db_batch(s->db, storm_write, s) < 0)
            s->failures++;
    return NULL;
}

/* Request and background threads writing at once: every transaction commits. */
static void test_db__writers_storm(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(test_db_open(&f->db, f->path), 0);
    struct storm s[6];
    pthread_t t[6];
    for (int i = 0; i < 6; i++) {
        s[i] = (struct storm){.db = f->db, .background = i >= 4, .id = i};
        pthread_create(&t[i], NULL, storm_thread, &s[i]);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(s[i].failures, 0);
    }
    if (!test_db_pg())
        assert_true(queue_is(0, 0));
}

/* A thread that takes a connection of `db` and holds it until released. */
struct holder {
    wh_db *db;
    pthread_barrier_t *held, *release;
    struct conn *c;
    uint64_t version;
};

static void *hold_conn(void *arg)
{
    struct holder *h = arg;
    h->c = db_conn(h->db);
    h->version = wh_db_data_version(h->db); /* a call inside: the same connection */
    pthread_barrier_wait(h->held);
    pthread_barrier_wait(h->release);
    db_conn_put(h->c);
    return NULL;
}

static void *one_call(void *arg)
{
    struct holder *h = arg;
    h->c = db_conn(h->db);
    db_conn_put(h->c);
    return NULL;
}

static void *one_write(void *arg)
{
    struct holder *h = arg;
    h->c = NULL;
    if (db_conn_write(h->db, &h->c) == 0)
        db_conn_put(h->c);
    return NULL;
}

/*
 * Connections are lent per call, not per thread: a thread that comes after
 * another has returned gets its connection (one open, not one per thread);
 * calls held at once get one each, with data versions that never match
 * (a cache keyed by them must not take one connection's count for
 * another's); the pool lends the connection given back last first, and
 * keeps at most DB_IDLE_MAX idle.
 */
static void test_db__connections_pooled_last_in_first_out(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(test_db_open(&f->db, f->path), 0);
    int open, idle;
    struct conn *first = db_conn(f->db);
    assert_non_null(first);
    assert_ptr_equal(db_conn(f->db), first); /* nested: the same one */
    db_conn_put(first);
    db_conn_put(first);
    db_conn_stats(f->db, &open, &idle);
    assert_int_equal(open, 1);
    assert_int_equal(idle, 1);

    /* threads one after another: the same connection, none opened */
    for (int i = 0; i < 4; i++) {
        struct holder h = {.db = f->db};
        pthread_t t;
        pthread_create(&t, NULL, one_call, &h);
        pthread_join(t, NULL);
        assert_ptr_equal(h.c, first);
    }
    db_conn_stats(f->db, &open, &idle);
    assert_int_equal(open, 1);

    /* more calls at once than the pool keeps: one connection each, distinct data versions */
    enum { N = DB_IDLE_MAX + 4 };
    pthread_barrier_t held, release;
    pthread_barrier_init(&held, NULL, N + 1);
    pthread_barrier_init(&release, NULL, N + 1);
    struct holder h[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        h[i] = (struct holder){.db = f->db, .held = &held, .release = &release};
        pthread_create(&t[i], NULL, hold_conn, &h[i]);
    }
    pthread_barrier_wait(&held);
    db_conn_stats(f->db, &open, &idle);
    assert_int_equal(open, N);
    assert_int_equal(idle, 0);
    for (int i = 0; i < N; i++) {
        assert_int_not_equal(h[i].version, 0);
        for (int j = 0; j < i; j++) {
            assert_ptr_not_equal(h[i].c, h[j].c);
            assert_true(h[i].version != h[j].version);
        }
    }
    pthread_barrier_wait(&release);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    db_conn_stats(f->db, &open, &idle);
    assert_int_equal(open, DB_IDLE_MAX); /* the four given back first were closed */
    assert_int_equal(idle, DB_IDLE_MAX);
    pthread_barrier_destroy(&held);
    pthread_barrier_destroy(&release);

    /* last in, first out */
    struct conn *a = db_conn(f->db), *b = NULL;
    struct holder hb = {.db = f->db};
    pthread_t tb;
    pthread_create(&tb, NULL, one_call, &hb); /* takes one while `a` is held */
    pthread_join(tb, NULL);
    b = hb.c;
    assert_ptr_not_equal(a, b);
    db_conn_put(a); /* `a` given back after `b`: lent next */
    struct conn *next = db_conn(f->db);
    assert_ptr_equal(next, a);
    db_conn_put(next);
}

/*
 * A call that returned inside its transaction (a bug) does not lend the
 * transaction to the next caller: the connection is rolled back as it goes
 * back to the pool, and the next writer is not kept waiting on its lock.
 */
static void test_db__connection_given_back_in_a_transaction(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(test_db_open(&f->db, f->path), 0);
    struct conn *c = db_conn(f->db);
    assert_int_equal(db_tx_begin(c), 0);
    db_stmt *s = db_stmt(c, "INSERT INTO setting (name, value, updated_ms) VALUES (?1, 'x', 0)");
    db_bind_text(s, 1, "left-open");
    assert_int_equal(db_run(c, s), 0);
    db_conn_put(c);
    char v[8];
    assert_int_equal(wh_db_setting_get(f->db, "left-open", v, sizeof(v)), WH_ENOTFOUND);
    assert_int_equal(wh_db_setting_set(f->db, "after", "y", 1), 0);
    assert_int_equal(wh_db_setting_get(f->db, "after", v, sizeof(v)), 0);
    assert_string_equal(v, "y");
}

/*
 * Every write call of every thread runs on one connection (SQLite), whose
 * page cache no other connection's commit drops; reads take pooled ones.
 */
static void test_db__writes_on_one_connection(void **state)
{
    struct fixture *f = *state;
    if (test_db_pg())
        skip(); /* no writer connection: PostgreSQL keeps no cache per connection */
    assert_int_equal(test_db_open(&f->db, f->path), 0);
    struct conn *w = NULL, *again = NULL;
    assert_int_equal(db_conn_write(f->db, &w), 0);
    struct holder h = {.db = f->db};
    pthread_t t;
    pthread_create(&t, NULL, one_call, &h); /* a read meanwhile: a pooled connection */
    pthread_join(t, NULL);
    assert_ptr_not_equal(h.c, w);
    struct conn *nested = NULL;
    assert_int_equal(db_conn_write(f->db, &nested), 0); /* a call inside: the same */
    assert_ptr_equal(nested, w);
    db_conn_put(nested);
    db_conn_put(w);
    pthread_create(&t, NULL, one_write, &h); /* another thread's write: the same one */
    pthread_join(t, NULL);
    assert_ptr_equal(h.c, w);
    assert_int_equal(db_conn_write(f->db, &again), 0);
    assert_ptr_equal(again, w);
    db_conn_put(again);
    /* a write inside a read call stays on the read's connection (its transaction);
     * a background read takes a pooled one */
    wh_db_thread_background(true);
    struct conn *r = db_conn(f->db);
    assert_ptr_not_equal(r, w);
    assert_int_equal(db_conn_write(f->db, &nested), 0);
    assert_ptr_equal(nested, r);
    db_conn_put(nested);
    db_conn_put(r);
    wh_db_thread_background(false);
}

static void *one_background_call(void *arg)
{
    struct holder *h = arg;
    wh_db_thread_background(true);
    h->c = db_conn(h->db);
    db_conn_put(h->c);
    return NULL;
}

struct timed_write {
    wh_db *db;
    int rc;
    int64_t ms;
};

static void *timed_write(void *arg)
{
    struct timed_write *w = arg;
    int64_t t0 = wh_monotonic_ms();
    w->rc = wh_db_setting_set(w->db, "during-read", "y", 1);
    w->ms = wh_monotonic_ms() - t0;
    return NULL;
}

/*
 * A request thread's read takes the writer connection when it is free (its
 * page cache is the one no other commit drops), and a write that arrives
 * meanwhile does not wait for the read: it runs on a pooled connection at
 * once. Background reads (scans, the collector: long ones) never take it.
 */
static void test_db__reads_borrow_the_free_writer(void **state)
{
    struct fixture *f = *state;
    if (test_db_pg())
        skip();
    assert_int_equal(test_db_open(&f->db, f->path), 0);
    db_set_writer_wait(f->db, 5000);
    struct conn *w = NULL;
    assert_int_equal(db_conn_write(f->db, &w), 0); /* opens it */
    db_conn_put(w);
    struct conn *r = db_conn(f->db);
    assert_ptr_equal(r, w);
    struct holder h = {.db = f->db};
    pthread_t t;
    pthread_create(&t, NULL, one_write, &h); /* a write while the read holds it */
    pthread_join(t, NULL);
    assert_non_null(h.c);
    assert_ptr_not_equal(h.c, w);
    struct timed_write tw = {.db = f->db};
    pthread_create(&t, NULL, timed_write, &tw);
    pthread_join(t, NULL);
    assert_int_equal(tw.rc, 0);
    assert_true(tw.ms < 2000); /* not the 5 s wait for the writer */
    pthread_create(&t, NULL, one_call, &h); /* a second read: the pool */
    pthread_join(t, NULL);
    assert_ptr_not_equal(h.c, w);
    db_conn_put(r);
    pthread_create(&t, NULL, one_call, &h); /* free again: lent again */
    pthread_join(t, NULL);
    assert_ptr_equal(h.c, w);
    pthread_create(&t, NULL, one_background_call, &h);
    pthread_join(t, NULL);
    assert_ptr_not_equal(h.c, w);
    char v[8];
    assert_int_equal(wh_db_setting_get(f->db, "during-read", v, sizeof(v)), 0);
    assert_string_equal(v, "y");
}

struct late_write {
    wh_db *db;
    bool background;
    int rc;
    int64_t waited_ms;
    char msg[160];
};

static void *write_late(void *arg)
{
    struct late_write *w = arg;
    wh_db_thread_background(w->background);
    int64_t t0 = wh_monotonic_ms();
    w->rc = wh_db_setting_set(w->db, "late", "x", 1);
    w->waited_ms = wh_monotonic_ms() - t0;
    snprintf(w->msg, sizeof(w->msg), "%s", w->rc < 0 ? wh_error_msg() : "");
    return NULL;
}

/*
 * A write that cannot get the writer connection within the longest wait
 * (its holder stuck in a call) fails with WH_EBUSY and says why, on a
 * request thread and on a background one alike, and leaves no one counted
 * in the queue; once the holder returns, the same write goes through.
 */
static void test_db__writer_wait_ends_in_busy(void **state)
{
    struct fixture *f = *state;
    if (test_db_pg())
        skip();
    assert_int_equal(test_db_open(&f->db, f->path), 0);
    db_set_writer_wait(f->db, 200);
    struct conn *w = NULL;
    assert_int_equal(db_conn_write(f->db, &w), 0);
    long long waits0 = lock_waits();
    for (int bg = 0; bg < 2; bg++) {
        struct late_write lw = {.db = f->db, .background = bg};
        pthread_t t;
        pthread_create(&t, NULL, write_late, &lw);
        pthread_join(t, NULL);
        assert_int_equal(lw.rc, WH_EBUSY);
        assert_true(lw.waited_ms >= 190 && lw.waited_ms < 5000);
        assert_non_null(strstr(lw.msg, "stayed locked for 200 ms"));
    }
    assert_int_equal(lock_waits(), waits0 + 1); /* the request thread's wait */
    int fg = -1, bgq = -1;
    db_writer_queue(f->db, &fg, &bgq);
    assert_int_equal(fg, 0);
    assert_int_equal(bgq, 0);
    db_conn_put(w);
    struct late_write lw = {.db = f->db};
    pthread_t t;
    pthread_create(&t, NULL, write_late, &lw);
    pthread_join(t, NULL);
    assert_int_equal(lw.rc, 0);
    char v[8];
    assert_int_equal(wh_db_setting_get(f->db, "late", v, sizeof(v)), 0);
    assert_string_equal(v, "x");
}

/* Takes the writer connection, opens a transaction, writes, and ends. */
static void *write_and_end(void *arg)
{
    struct holder *h = arg;
    if (db_conn_write(h->db, &h->c) < 0 || db_tx_begin(h->c) < 0) {
        h->c = NULL;
        return NULL;
    }
    db_stmt *s = db_stmt(h->c, "INSERT INTO setting (name, value, updated_ms)"
                               " VALUES ('orphan', 'x', 0)");
    if (db_run(h->c, s) < 0)
        h->c = NULL;
    return NULL; /* neither committed nor given back */
}

/*
 * A thread that ends while it holds the writer connection, inside a
 * transaction, does not keep it: the connection is rolled back and given
 * back as the thread ends, and the next write takes it at once (without
 * that, every later write would wait for it and fail with WH_EBUSY).
 */
static void test_db__writer_given_back_when_its_thread_ends(void **state)
{
    struct fixture *f = *state;
    if (test_db_pg())
        skip();
    assert_int_equal(test_db_open(&f->db, f->path), 0);
    db_set_writer_wait(f->db, 2000);
    struct holder h = {.db = f->db};
    pthread_t t;
    pthread_create(&t, NULL, write_and_end, &h);
    pthread_join(t, NULL);
    assert_non_null(h.c);
    int64_t t0 = wh_monotonic_ms();
    assert_int_equal(wh_db_setting_set(f->db, "after", "y", 1), 0);
    assert_true(wh_monotonic_ms() - t0 < 1000);
    char v[8];
    assert_int_equal(wh_db_setting_get(f->db, "orphan", v, sizeof(v)), WH_ENOTFOUND);
    assert_int_equal(wh_db_setting_get(f->db, "after", v, sizeof(v)), 0);
    struct conn *w = NULL;
    assert_int_equal(db_conn_write(f->db, &w), 0);
    assert_ptr_equal(w, h.c); /* the same writer connection, free again */
    db_conn_put(w);
}

/*
 * The commit hook that wakes waiting writers replaces SQLite's automatic
 * checkpoint, so it checkpoints itself: thousands of commits leave a WAL
 * file of about the checkpoint size (1000 pages), not of everything written.
 */
static void test_db__wal_checkpointed(void **state)
{
    struct fixture *f = *state;
    if (test_db_pg())
        skip();
    assert_int_equal(test_db_open(&f->db, f->path), 0);
    char *value = malloc(4000);
    memset(value, 'x', 3999);
    value[3999] = '\0';
    for (int i = 0; i < 4000; i++) {
        char name[32];
        snprintf(name, sizeof(name), "wal-%d", i % 50);
        value[i % 3999] = (char)('a' + i % 26);
        assert_int_equal(wh_db_setting_set(f->db, name, value, i), 0);
    }
    free(value);
    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    struct stat st;
    assert_int_equal(stat(wal, &st), 0);
    /* 4000 commits of two pages or more each: over 30 MB without checkpoints */
    assert_true(st.st_size < 8 << 20);
}

/* The data version stays while nothing is written and moves with a commit from elsewhere. */
static void test_db__data_version(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(test_db_open(&f->db, f->path), 0);
    uint64_t a = wh_db_data_version(f->db), b = wh_db_data_version(f->db);
    assert_true(a != 0);
    assert_true(a == b);
    raw_exec(f->path, "UPDATE project SET updated_ms = updated_ms + 1");
    /* SQLite's counter moves once the connection reads again; PostgreSQL's at once */
    struct wh_project p;
    assert_int_equal(wh_db_project_get(f->db, "library", &p), 0);
    uint64_t c = wh_db_data_version(f->db);
    assert_true(c != 0 && c != b);
    assert_true(wh_db_data_version(f->db) == c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_db__migration_keeps_rows_and_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db__migration_18_keeps_queue_and_triggers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_db__ids_never_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db__list_plans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db__artifact_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db__listed_follows_tags_and_indexes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db__repo_and_project_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db__batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db__list_plans_pg, setup, teardown),
        cmocka_unit_test(test_db__drivers_know_every_version),
        cmocka_unit_test_setup_teardown(test_db__prepare_in_tx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db__dropped_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db__migrate_together, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db__writers_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db__pool_of_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db__data_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db__background_writer_gives_way, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db__writes_on_one_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db__reads_borrow_the_free_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db__writer_wait_ends_in_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db__writer_given_back_when_its_thread_ends, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_db__checkpoint_waits_for_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db__writers_storm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db__connections_pooled_last_in_first_out, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_db__connection_given_back_in_a_transaction, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_db__wal_checkpointed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
