/*
 * db_project.c: what the REST API needs to know about projects beyond the
 * registry core — settings (owner, metadata, CVE allowlist, storage limit),
 * filtered and paginated listing with repository counts, member counts by
 * role, deletion (refused while repositories remain), storage usage and the
 * quota check on push, system statistics and the search over projects and
 * repositories. A list's SQL is assembled for its filters and sort key so
 * that it walks one index.
 *
 * Storage usage is the sum of the sizes of the distinct blobs linked into the
 * project's repositories (manifests included), so a blob shared by several
 * repositories of one project counts once (Harbor's rule).
 */
#include "db/db_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Visibility filter shared by the listing queries: ?V is the caller's user id
 * (-1: everything, 0: public only), ?R a robot's project (0: none), ?N the
 * set of names a system robot's permissions cover (db_name_set; NULL: none). */
#define VISIBLE(V, R, N)                                                                           \
    " (" V " = -1 OR p.public = 1 OR p.id = " R " OR p.id IN"                                      \
    " (SELECT project_id FROM member WHERE user_id = " V ")"                                       \
    " OR" DB_IN_NAMES("p.name", N) ") "

#define INFO_COLS                                                                                  \
    "p.id, p.name, p.public, p.created_ms, coalesce(p.owner_id, 0), coalesce(u.username, ''),"     \
    " p.metadata, p.cve_allowlist, p.storage_limit, p.updated_ms,"                                 \
    " (SELECT count(*) FROM repository r WHERE r.project_id = p.id)"
#define INFO_FROM " FROM project p LEFT JOIN \"user\" u ON u.id = p.owner_id"

static void info_row(struct wh_project_info *o, db_stmt *s)
{
    memset(o, 0, sizeof(*o));
    o->p.id = db_col_i64(s, 0);
    db_copy_col(o->p.name, sizeof(o->p.name), s, 1);
    o->p.public = db_col_int(s, 2) != 0;
    o->p.created_ms = db_col_i64(s, 3);
    o->owner_id = db_col_i64(s, 4);
    db_copy_col(o->owner_name, sizeof(o->owner_name), s, 5);
    db_copy_col(o->metadata, sizeof(o->metadata), s, 6);
    db_copy_col(o->cve_allowlist, sizeof(o->cve_allowlist), s, 7);
    o->storage_limit = db_col_i64(s, 8);
    o->updated_ms = db_col_i64(s, 9);
    o->repo_count = db_col_i64(s, 10);
}

static int step_one(struct conn *c, db_stmt *s, struct wh_project_info *out, const char *what)
{
    int rc = db_step(s);
    int error = 0;
    if (rc == DB_ROW)
        info_row(out, s);
    else if (rc == DB_DONE)
        error = wh_error_set(WH_ENOTFOUND, "project %s not found", what);
    else
        error = db_fail(c);
    db_done(s);
    return error;
}

int wh_db_project_info(wh_db *db, int64_t id, struct wh_project_info *out)
{
    static const char sql[] = "SELECT " INFO_COLS INFO_FROM " WHERE p.id = ?1";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, id);
    char what[32];
    snprintf(what, sizeof(what), "%" PRId64, id);
    return step_one(c, s, out, what);
}

int wh_db_project_policy(wh_db *db, int64_t id, char *metadata, size_t mcap, char *allowlist,
                         size_t acap)
{
    /* the primary key and two columns: cheap enough for every manifest pull */
    static const char sql[] = "SELECT metadata, cve_allowlist FROM project WHERE id = ?1";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, id);
    char what[32];
    snprintf(what, sizeof(what), "project %" PRId64, id);
    int error = db_one_row(c, s, what);
    if (error < 0)
        return error;
    db_copy_col(metadata, mcap, s, 0);
    db_copy_col(allowlist, acap, s, 1);
    db_done(s);
    return 0;
}

int wh_db_project_info_name(wh_db *db, const char *name, struct wh_project_info *out)
{
    static const char sql[] = "SELECT " INFO_COLS INFO_FROM " WHERE p.name = ?1";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, name);
    return step_one(c, s, out, name);
}

int wh_db_project_insert(wh_db *db, const struct wh_project_info *in, int64_t *id_out)
{
    static const char sql_admin[] = "SELECT id FROM \"user\" WHERE sysadmin = 1 ORDER BY id LIMIT 1";
    static const char sql[] =
        "INSERT INTO project(name, public, created_ms, updated_ms, owner_id, metadata,"
        " cve_allowlist, storage_limit) VALUES(?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7) RETURNING id";
    static const char sql_member[] = "INSERT INTO member(project_id, user_id, role, created_ms,"
                                     " updated_ms) VALUES(?1, ?2, 1, ?3, ?3)";
    CONN_WRITE_OR_FAIL(c, db);
    int64_t now = wh_now_ms(), owner = in->owner_id, id = 0;
    db_stmt *s;
    int error, rc;
    /* The project, its owner and the owner's membership are one write: a
     * failure at any step leaves nothing behind. */
    if ((error = db_tx_begin(c)) < 0)
        return error;
    if (owner == WH_OWNER_FIRST_ADMIN) {
        s = db_stmt(c, sql_admin);
        if ((error = db_one_row(c, s, "system administrator")) == 0) {
            owner = db_col_i64(s, 0);
            db_done(s);
        } else if (error == WH_ENOTFOUND) {
            error = wh_error_set(WH_ERROR, "cannot create project as no system admin found");
        }
    }
    if (error == 0) {
        s = db_stmt(c, sql);
        db_bind_text(s, 1, in->p.name);
        db_bind_i64(s, 2, in->p.public);
        db_bind_i64(s, 3, now);
        if (owner > 0)
            db_bind_i64(s, 4, owner);
        else
            db_bind_null(s, 4);
        db_bind_text(s, 5, in->metadata[0] ? in->metadata : "{}");
        db_bind_text(s, 6, in->cve_allowlist[0] ? in->cve_allowlist : "{}");
        db_bind_i64(s, 7, in->storage_limit);
        rc = db_step(s);
        if (rc == DB_ROW)
            id = db_col_i64(s, 0);
        else if (rc == WH_EEXISTS)
            error = wh_error_set(WH_EEXISTS, "The project named %s already exists", in->p.name);
        else
            error = db_constraint(c, "project");
        db_done(s);
    }
    if (error == 0 && owner > 0) {
        s = db_stmt(c, sql_member);
        db_bind_i64(s, 1, id);
        db_bind_i64(s, 2, owner);
        db_bind_i64(s, 3, now);
        error = db_insert(c, s, "project member", NULL);
        if (error == WH_ENOTFOUND)
            error = wh_error_set(WH_ENOTFOUND, "user %" PRId64 " not found", owner);
    }
    if ((error = db_tx_end(c, error)) == 0 && id_out)
        *id_out = id;
    return error;
}

int wh_db_project_update(wh_db *db, const struct wh_project_info *in)
{
    static const char sql[] = "UPDATE project SET public = ?2, metadata = ?3, cve_allowlist = ?4,"
                              " storage_limit = ?5, updated_ms = ?6 WHERE id = ?1";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, in->p.id);
    db_bind_i64(s, 2, in->p.public);
    db_bind_text(s, 3, in->metadata[0] ? in->metadata : "{}");
    db_bind_text(s, 4, in->cve_allowlist[0] ? in->cve_allowlist : "{}");
    db_bind_i64(s, 5, in->storage_limit);
    db_bind_i64(s, 6, wh_now_ms());
    int error = db_run(c, s);
    if (error == 0 && db_changes(c) == 0)
        error = wh_error_set(WH_ENOTFOUND, "project %" PRId64 " not found", in->p.id);
    return error;
}

int wh_db_project_delete(wh_db *db, int64_t id)
{
    static const char sql_has[] = "SELECT 1 FROM repository WHERE project_id = ?1 LIMIT 1";
    static const char sql[] = "DELETE FROM project WHERE id = ?1";
    CONN_WRITE_OR_FAIL(c, db);
    int error;
    if ((error = db_tx_begin(c)) < 0)
        return error;
    db_stmt *s = db_stmt(c, sql_has);
    db_bind_i64(s, 1, id);
    int rc = db_step(s);
    if (rc == DB_ROW)
        error = wh_error_set(WH_ECONFLICT, "the project contains repositories, can not be deleted");
    else if (rc != DB_DONE)
        error = db_fail(c);
    db_done(s);
    if (error == 0) {
        s = db_stmt(c, sql);
        db_bind_i64(s, 1, id);
        error = db_run(c, s);
        if (error == 0 && db_changes(c) == 0)
            error = wh_error_set(WH_ENOTFOUND, "project %" PRId64 " not found", id);
    }
    return db_tx_end(c, error);
}

struct list_each {
    int (*fn)(const struct wh_project_info *row, void *payload);
    void *payload;
    struct wh_project_info *row;
};

static int list_each(db_stmt *s, void *payload)
{
    struct list_each *e = payload;
    info_row(e->row, s);
    return e->fn(e->row, e->payload);
}

void db_project_list_sql(struct db_sql *q, const struct wh_project_filter *f, bool count)
{
    /* ?1 exact name, ?2 name substring, ?3 public, ?4 owner name, ?5/?6/?9 visibility
     * (?9: the project names a system robot's permissions cover), ?7 offset, ?8 limit */
    static const char *const keys[] = {NULL, "p.created_ms", "p.id", "p.updated_ms"};
    const char *dir = f->desc ? " DESC" : "";
    if (!count)
        db_sql_add(q, "SELECT " INFO_COLS INFO_FROM " WHERE 1 = 1");
    else
        db_sql_add(q, "SELECT count(*) FROM project p WHERE 1 = 1");
    if (f->name)
        db_sql_add(q, " AND p.name = ?1");
    if (f->name_like)
        db_sql_add(q, " AND" DB_CONTAINS("p.name", "?2"));
    if (f->public >= 0)
        db_sql_add(q, " AND p.public = ?3");
    if (f->owner)
        db_sql_add(q, " AND p.owner_id = (SELECT id FROM \"user\" WHERE username = ?4)");
    if (f->visible_user != -1)
        db_sql_add(q, f->visible_names
                          ? " AND (p.public = 1 OR p.id = ?6"
                            " OR p.id IN (SELECT project_id FROM member WHERE user_id = ?5)"
                            " OR" DB_IN_NAMES("p.name", "?9") ")"
                          : " AND (p.public = 1 OR p.id = ?6"
                            " OR p.id IN (SELECT project_id FROM member WHERE user_id = ?5))");
    if (count)
        return;
    if (f->name) {
        /* names are unique: one row at most, nothing to sort */
        db_sql_add(q, " LIMIT ?8 OFFSET ?7");
        return;
    }
    int k = f->sort >= 0 && f->sort < 4 ? f->sort : 0;
    db_sql_add(q, " ORDER BY ");
    if (keys[k]) {
        db_sql_add(q, keys[k]);
        db_sql_add(q, dir);
    }
    if (k != 2) {
        db_sql_add(q, keys[k] ? ", p.name" : "p.name");
        db_sql_add(q, dir);
    }
    db_sql_add(q, " LIMIT ?8 OFFSET ?7");
}

int wh_db_project_list(wh_db *db, const struct wh_project_filter *f, int64_t offset,
                       int64_t limit, int (*fn)(const struct wh_project_info *p, void *payload),
                       void *payload, int64_t *total_out)
{
    CONN_OR_FAIL(c, db);
    int error = 0;
    struct db_sql *q = wh_malloc(sizeof(*q));
    char *names = db_name_set(f->visible_names);
    for (int pass = total_out ? 0 : 1; pass < 2 && error == 0; pass++) {
        q->len = 0;
        db_project_list_sql(q, f, pass == 0);
        db_stmt *s = db_stmt_text(c, q->text);
        /* A parameter the text does not use is ignored (db_driver.h). */
        db_bind_text(s, 1, f->name);
        db_bind_text(s, 2, f->name_like);
        db_bind_i64(s, 3, f->public);
        db_bind_text(s, 4, f->owner);
        db_bind_i64(s, 5, f->visible_user);
        db_bind_i64(s, 6, f->visible_project);
        db_bind_text(s, 9, names);
        if (pass == 0) {
            error = db_count(c, s, total_out);
            continue;
        }
        db_bind_i64(s, 7, offset);
        db_bind_i64(s, 8, limit);
        struct list_each e = {fn, payload, wh_malloc(sizeof(struct wh_project_info))};
        error = db_rows(c, s, list_each, &e);
        free(e.row);
    }
    free(names);
    free(q);
    return error;
}

int wh_db_project_member_counts(wh_db *db, int64_t id, int64_t counts[6])
{
    static const char sql[] = "SELECT role, count(*) FROM member WHERE project_id = ?1 GROUP BY role";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, id);
    memset(counts, 0, 6 * sizeof(counts[0]));
    int rc, error = 0;
    while ((rc = db_step(s)) == DB_ROW) {
        int role = db_col_int(s, 0);
        if (role >= 1 && role <= 5)
            counts[role] = db_col_i64(s, 1);
    }
    if (rc != DB_DONE)
        error = db_fail(c);
    db_done(s);
    return error;
}

/* ---- storage quota ---- */

int wh_db_project_usage(wh_db *db, int64_t id, uint64_t *out)
{
    static const char sql[] =
        "SELECT coalesce(sum(b.size), 0) FROM blob b WHERE b.digest IN"
        " (SELECT rb.digest FROM repo_blob rb JOIN repository r ON r.id = rb.repo_id"
        "  WHERE r.project_id = ?1)";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, id);
    int rc = db_step(s);
    int error = 0;
    if (rc == DB_ROW)
        *out = (uint64_t)db_col_i64(s, 0);
    else
        error = db_fail(c);
    db_done(s);
    return error;
}

void wh_db_size_format(char *out, size_t cap, uint64_t v)
{
    /* Harbor's storage display: bytes below 1 KiB, else one decimal in binary units. */
    static const char units[] = "KMGTPE";
    if (v < 1024) {
        snprintf(out, cap, "%" PRIu64 " B", v);
        return;
    }
    uint64_t div = 1024;
    int exp = 0;
    for (uint64_t n = v / 1024; n >= 1024; n /= 1024) {
        div *= 1024;
        exp++;
    }
    snprintf(out, cap, "%.1f %ciB", (double)v / (double)div, units[exp]);
}

/* The project's storage limit (-1: none): 0 or WH_ENOTFOUND / WH_ERROR. */
static int project_limit(wh_db *db, int64_t project_id, int64_t *limit)
{
    static const char sql[] = "SELECT storage_limit FROM project WHERE id = ?1";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, project_id);
    int rc = db_step(s);
    int error = 0;
    if (rc == DB_ROW)
        *limit = db_col_i64(s, 0);
    else if (rc == DB_DONE)
        error = wh_error_set(WH_ENOTFOUND, "project %" PRId64 " not found", project_id);
    else
        error = db_fail(c);
    db_done(s);
    return error;
}

/* Whether `adding_bytes` more fit under `limit` (>= 0) beside the project's usage. */
static int quota_against(wh_db *db, int64_t project_id, int64_t limit, uint64_t adding_bytes,
                         char *msg, size_t msgcap)
{
    uint64_t used = 0, total;
    int error;
    if ((error = wh_db_project_usage(db, project_id, &used)) < 0)
        return error;
    if (!__builtin_add_overflow(used, adding_bytes, &total) && total <= (uint64_t)limit)
        return 0;
    char a[32], u[32], l[32];
    wh_db_size_format(a, sizeof(a), adding_bytes);
    wh_db_size_format(u, sizeof(u), used);
    wh_db_size_format(l, sizeof(l), (uint64_t)limit);
    snprintf(msg, msgcap,
             "adding %s of storage resource, which when updated to current usage of %s will "
             "exceed the configured upper limit of %s.",
             a, u, l);
    return wh_error_set(WH_EDENIED, "%s", msg);
}

int wh_db_project_quota_check(wh_db *db, int64_t project_id, uint64_t adding_bytes, char *msg,
                              size_t msgcap)
{
    int64_t limit = -1;
    int error = project_limit(db, project_id, &limit);
    if (error < 0 || limit < 0)
        return error;
    return quota_against(db, project_id, limit, adding_bytes, msg, msgcap);
}

/* Whether a repository of the project holds blob `digest` (it then counts once already). */
static int project_has_blob(wh_db *db, int64_t project_id, const char *digest, bool *out)
{
    static const char sql[] = "SELECT 1 FROM repo_blob rb JOIN repository r ON r.id = rb.repo_id"
                              " WHERE r.project_id = ?1 AND rb.digest = ?2 LIMIT 1";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, project_id);
    db_bind_text(s, 2, digest);
    return db_exists(c, s, out);
}

int wh_db_project_blob_admit(wh_db *db, int64_t project_id, const char *digest, uint64_t size,
                             char *msg, size_t msgcap)
{
    int64_t limit = -1;
    bool have = false;
    int error = project_limit(db, project_id, &limit);
    /* no limit: nothing to count (the usual case, and one lookup instead of three) */
    if (error < 0 || limit < 0)
        return error;
    if ((error = project_has_blob(db, project_id, digest, &have)) < 0 || have)
        return error;
    return quota_against(db, project_id, limit, size, msg, msgcap);
}

/* ---- statistics and search ---- */

int wh_db_statistics(wh_db *db, const struct wh_project_filter *f, struct wh_statistics *out)
{
    static const char sql[] =
        "SELECT coalesce(sum(CASE WHEN p.public = 0 THEN 1 ELSE 0 END), 0),"
        " coalesce(sum(CASE WHEN p.public = 1 THEN 1 ELSE 0 END), 0),"
        " coalesce(sum(CASE WHEN p.public = 0 THEN (SELECT count(*) FROM repository r"
        "   WHERE r.project_id = p.id) END), 0),"
        " coalesce(sum(CASE WHEN p.public = 1 THEN (SELECT count(*) FROM repository r"
        "   WHERE r.project_id = p.id) END), 0)"
        " FROM project p WHERE" VISIBLE("?1", "?2", "?3");
    static const char sql_storage[] = "SELECT coalesce(sum(size), 0) FROM blob";
    CONN_OR_FAIL(c, db);
    char *names = db_name_set(f->visible_names);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, f->visible_user);
    db_bind_i64(s, 2, f->visible_project);
    db_bind_text(s, 3, names);
    int rc = db_step(s);
    int error = 0;
    memset(out, 0, sizeof(*out));
    if (rc == DB_ROW) {
        out->private_projects = db_col_i64(s, 0);
        out->public_projects = db_col_i64(s, 1);
        out->private_repos = db_col_i64(s, 2);
        out->public_repos = db_col_i64(s, 3);
    } else {
        error = db_fail(c);
    }
    db_done(s);
    free(names);
    if (error < 0)
        return error;
    s = db_stmt(c, sql_storage);
    rc = db_step(s);
    if (rc == DB_ROW)
        out->storage_bytes = (uint64_t)db_col_i64(s, 0);
    else
        error = db_fail(c);
    db_done(s);
    return error;
}

