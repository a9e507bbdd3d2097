/*
 * db_scanner.c: registrations of external scanners (schema 10), the scanner
 * each project chose, and what a scan job needs to hand an image to one of
 * them. The built-in scanner has no row (it cannot be edited or deleted):
 * it is the default while no registration is marked default.
 */
#include "db/db_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REG_COLS                                                                                   \
    "uuid, name, description, url, auth, access_credential, skip_cert_verify,"                    \
    " use_internal_addr, disabled, is_default, created_ms, updated_ms"

static void reg_row(db_stmt *s, int col, struct wh_scanner_reg *out)
{
    memset(out, 0, sizeof(*out));
    db_copy_col(out->uuid, sizeof(out->uuid), s, col + 0);
    db_copy_col(out->name, sizeof(out->name), s, col + 1);
    db_copy_col(out->description, sizeof(out->description), s, col + 2);
    db_copy_col(out->url, sizeof(out->url), s, col + 3);
    db_copy_col(out->auth, sizeof(out->auth), s, col + 4);
    db_copy_col(out->access_credential, sizeof(out->access_credential), s, col + 5);
    out->skip_cert_verify = db_col_int(s, col + 6) != 0;
    out->use_internal_addr = db_col_int(s, col + 7) != 0;
    out->disabled = db_col_int(s, col + 8) != 0;
    out->is_default = db_col_int(s, col + 9) != 0;
    out->created_ms = db_col_i64(s, col + 10);
    out->updated_ms = db_col_i64(s, col + 11);
}

/* Which unique column a conflicting registration repeats (for the message). */
static int taken(struct conn *c, const struct wh_scanner_reg *r)
{
    static const char sql[] =
        "SELECT name = ?1 FROM scanner_registration WHERE (name = ?1 OR url = ?2) AND uuid <> ?3";
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, r->name);
    db_bind_text(s, 2, r->url);
    db_bind_text(s, 3, r->uuid);
    int rc = db_step(s);
    int by_name = rc == DB_ROW ? db_col_int(s, 0) : -1;
    db_done(s);
    if (by_name == 1)
        return wh_error_set(WH_EEXISTS, "scanner registration name %s already exists", r->name);
    if (by_name == 0)
        return wh_error_set(WH_EEXISTS, "scanner registration URL %s already exists", r->url);
    return 0;
}

int wh_db_scanner_create(wh_db *db, const struct wh_scanner_reg *r)
{
    static const char sql[] =
        "INSERT INTO scanner_registration(" REG_COLS ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
        " ?9, 0, ?10, ?10)";
    CONN_WRITE_OR_FAIL(c, db);
    int error = taken(c, r);
    if (error < 0)
        return error;
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, r->uuid);
    db_bind_text(s, 2, r->name);
    db_bind_text(s, 3, r->description);
    db_bind_text(s, 4, r->url);
    db_bind_text(s, 5, r->auth);
    db_bind_text(s, 6, r->access_credential);
    db_bind_i64(s, 7, r->skip_cert_verify);
    db_bind_i64(s, 8, r->use_internal_addr);
    db_bind_i64(s, 9, r->disabled);
    db_bind_i64(s, 10, r->created_ms);
    return db_insert(c, s, "scanner registration", NULL);
}

int wh_db_scanner_get(wh_db *db, const char *uuid, struct wh_scanner_reg *out)
{
    static const char sql[] = "SELECT " REG_COLS " FROM scanner_registration WHERE uuid = ?1";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, uuid);
    int error = db_one_row(c, s, "scanner registration");
    if (error < 0)
        return error;
    reg_row(s, 0, out);
    db_done(s);
    return 0;
}

struct walk {
    int (*fn)(const struct wh_scanner_reg *r, void *payload);
    void *payload;
    struct wh_scanner_reg reg;
    int rc;
};

static int walk_row(db_stmt *s, void *payload)
{
    struct walk *w = payload;
    reg_row(s, 0, &w->reg);
    w->rc = w->fn(&w->reg, w->payload);
    return w->rc < 0;
}

int wh_db_scanner_list(wh_db *db, int (*fn)(const struct wh_scanner_reg *r, void *payload),
                       void *payload)
{
    static const char sql[] =
        "SELECT " REG_COLS " FROM scanner_registration ORDER BY created_ms, uuid";
    CONN_OR_FAIL(c, db);
    struct walk *w = wh_malloc(sizeof(*w));
    w->fn = fn;
    w->payload = payload;
    w->rc = 0;
    int error = db_rows(c, db_stmt(c, sql), walk_row, w);
    if (error == 0 && w->rc < 0)
        error = w->rc;
    free(w);
    return error;
}

int wh_db_scanner_update(wh_db *db, const struct wh_scanner_reg *r, int64_t now_ms)
{
    static const char sql[] =
        "UPDATE scanner_registration SET name = ?2, description = ?3, url = ?4, auth = ?5,"
        " access_credential = ?6, skip_cert_verify = ?7, use_internal_addr = ?8, disabled = ?9,"
        " updated_ms = ?10 WHERE uuid = ?1";
    CONN_WRITE_OR_FAIL(c, db);
    int error = taken(c, r);
    if (error < 0)
        return error;
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, r->uuid);
    db_bind_text(s, 2, r->name);
    db_bind_text(s, 3, r->description);
    db_bind_text(s, 4, r->url);
    db_bind_text(s, 5, r->auth);
    db_bind_text(s, 6, r->access_credential);
    db_bind_i64(s, 7, r->skip_cert_verify);
    db_bind_i64(s, 8, r->use_internal_addr);
    db_bind_i64(s, 9, r->disabled);
    db_bind_i64(s, 10, now_ms);
    int rc = db_step(s);
    error = rc == DB_DONE ? 0 : db_constraint(c, "scanner registration");
    db_done(s);
    if (error == 0 && db_changes(c) == 0)
        error = wh_error_set(WH_ENOTFOUND, "scanner registration not found");
    return error;
}

static int delete_tx(struct conn *c, const char *uuid)
{
    static const char del[] = "DELETE FROM scanner_registration WHERE uuid = ?1";
    static const char choices[] = "DELETE FROM project_scanner WHERE uuid = ?1";
    db_stmt *s = db_stmt(c, del);
    db_bind_text(s, 1, uuid);
    int error = db_change(c, s, "scanner registration");
    if (error < 0)
        return error;
    s = db_stmt(c, choices);
    db_bind_text(s, 1, uuid);
    return db_run(c, s);
}

int wh_db_scanner_delete(wh_db *db, const char *uuid)
{
    CONN_WRITE_OR_FAIL(c, db);
    int error = db_tx_begin(c);
    if (error < 0)
        return error;
    return db_tx_end(c, delete_tx(c, uuid));
}

static int default_tx(struct conn *c, const char *uuid)
{
    static const char clear[] = "UPDATE scanner_registration SET is_default = 0 WHERE is_default = 1";
    static const char set[] = "UPDATE scanner_registration SET is_default = 1 WHERE uuid = ?1";
    int error = db_run(c, db_stmt(c, clear));
    if (error < 0 || !uuid)
        return error;
    db_stmt *s = db_stmt(c, set);
    db_bind_text(s, 1, uuid);
    return db_change(c, s, "scanner registration");
}

int wh_db_scanner_set_default(wh_db *db, const char *uuid)
{
    CONN_WRITE_OR_FAIL(c, db);
    int error = db_tx_begin(c);
    if (error < 0)
        return error;
    return db_tx_end(c, default_tx(c, uuid));
}

int wh_db_project_scanner_get(wh_db *db, int64_t project_id, char *out)
{
    static const char sql[] = "SELECT uuid FROM project_scanner WHERE project_id = ?1";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, project_id);
    int error = db_one_row(c, s, "project scanner");
    if (error < 0)
        return error;
    db_copy_col(out, WH_SCANNER_UUID_MAX, s, 0);
    db_done(s);
    return 0;
}

int wh_db_project_scanner_set(wh_db *db, int64_t project_id, const char *uuid)
{
    static const char set[] =
        "INSERT INTO project_scanner(project_id, uuid) VALUES(?1, ?2)"
        " ON CONFLICT(project_id) DO UPDATE SET uuid = ?2";
    static const char clear[] = "DELETE FROM project_scanner WHERE project_id = ?1";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, uuid ? set : clear);
    db_bind_i64(s, 1, project_id);
    if (uuid)
        db_bind_text(s, 2, uuid);
    int rc = db_step(s);
    int error = rc == DB_DONE ? 0 : db_constraint(c, "project scanner");
    db_done(s);
    return error;
}

int wh_db_scan_target(wh_db *db, int64_t artifact_id, struct wh_scan_target *out)
{
    /* the project's choice (a uuid without a registration: the built-in
     * scanner; deleting a registration deletes the choices of it), else the
     * default registration, else the built-in scanner */
    static const char sql[] =
        "SELECT r.project_id, r.name, a.media_type, a.size, g.uuid, g.name, g.description,"
        " g.url, g.auth, g.access_credential, g.skip_cert_verify, g.use_internal_addr,"
        " g.disabled, g.is_default, g.created_ms, g.updated_ms"
        " FROM artifact a JOIN repository r ON r.id = a.repo_id"
        " LEFT JOIN scanner_registration g ON g.uuid = CASE WHEN EXISTS"
        "   (SELECT 1 FROM project_scanner s WHERE s.project_id = r.project_id)"
        "   THEN (SELECT s.uuid FROM project_scanner s WHERE s.project_id = r.project_id)"
        "   ELSE (SELECT uuid FROM scanner_registration WHERE is_default = 1 LIMIT 1) END"
        " WHERE a.id = ?1";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, artifact_id);
    int error = db_one_row(c, s, "artifact");
    if (error < 0)
        return error;
    memset(out, 0, sizeof(*out));
    out->project_id = db_col_i64(s, 0);
    db_copy_col(out->repo_name, sizeof(out->repo_name), s, 1);
    db_copy_col(out->media_type, sizeof(out->media_type), s, 2);
    out->size = (uint64_t)db_col_i64(s, 3);
    out->external = !db_col_null(s, 4);
    if (out->external)
        reg_row(s, 4, &out->reg);
    db_done(s);
    return 0;
}

int wh_db_scan_set_scanner(wh_db *db, int64_t artifact_id, const char *report_id,
                           const char *scanner_json)
{
    static const char sql[] = "UPDATE scan_job SET scanner = ?3"
                              " WHERE artifact_id = ?1 AND report_id = ?2 AND status = 'Running'";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, artifact_id);
    db_bind_text(s, 2, report_id);
    db_bind_text(s, 3, scanner_json ? scanner_json : "");
    return db_change(c, s, "running scan");
}

int wh_db_scan_running(wh_db *db, const char *report_id, bool *out)
{
    static const char sql[] =
        "SELECT 1 FROM scan_job WHERE report_id = ?1 AND status = 'Running' LIMIT 1";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, report_id);
    return db_exists(c, s, out);
}
