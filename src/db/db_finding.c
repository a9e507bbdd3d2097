/*
 * db_finding.c: what a successful scan leaves besides its report (schema 9):
 * the image's package inventory, stored once per distinct content and shared
 * by the artifacts that have it; one finding row per vulnerability x package,
 * indexed for the security hub's filters; the counts per severity on the
 * scan_job row. Re-matching after a vulnerability database update walks the
 * inventories, and rewrites the report, counts and findings of the artifacts
 * whose findings changed, recording the CVE ids added and removed
 * (vuln_change). Nothing here reads a layer.
 */
#include "db/db_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- writing a scan's findings ---- */

/* Severity code -> the scan_job count column it adds to (Negligible counts as None). */
static int count_slot(int severity)
{
    switch (severity) {
    case 5: return 0; /* critical */
    case 4: return 1; /* high */
    case 3: return 2; /* medium */
    case 2: return 3; /* low */
    case 1: return 4; /* negligible: none */
    default: return 5; /* unknown */
    }
}

/* A finding row the artifact has: its key (CVE, package, version) and values. */
struct old_row {
    int64_t id;
    char *key; /* "cve\npackage\nversion" */
    char *fixed;
    int severity;
    double cvss3;
    bool kept;
};

static int old_cmp(const void *a, const void *b)
{
    return strcmp(((const struct old_row *)a)->key, ((const struct old_row *)b)->key);
}

static int write_findings(struct conn *c, int64_t artifact_id, const struct wh_scan_result *r,
                          json_t *old_ids)
{
    static const char old[] =
        "SELECT id, cve_id, package, version, fixed_version, severity, coalesce(cvss3, 0)"
        " FROM finding WHERE artifact_id = ?1 ORDER BY cve_id";
    static const char del[] = "DELETE FROM finding WHERE id = ?1";
    static const char upd[] =
        "UPDATE finding SET fixed_version = ?2, severity = ?3, cvss3 = ?4 WHERE id = ?1";
    static const char ins[] =
        "INSERT INTO finding(artifact_id, project_id, repo_id, cve_id, package, version,"
        " fixed_version, severity, cvss3)"
        " SELECT id, project_id, repo_id, ?2, ?3, ?4, ?5, ?6, ?7 FROM artifact WHERE id = ?1";
    static const char text[] =
        "INSERT INTO finding_text(cve_id, description, links, cvss3_vector, cwe_ids)"
        " VALUES(?1, ?2, ?3, ?4, ?5)"
        " ON CONFLICT(cve_id) DO UPDATE SET description = excluded.description,"
        " links = excluded.links, cvss3_vector = excluded.cvss3_vector,"
        " cwe_ids = excluded.cwe_ids WHERE finding_text.description <> excluded.description"
        " OR finding_text.links <> excluded.links"
        " OR finding_text.cvss3_vector <> excluded.cvss3_vector"
        " OR finding_text.cwe_ids <> excluded.cwe_ids";
    static const char counts[] =
        "UPDATE scan_job SET critical_cnt = ?2, high_cnt = ?3, medium_cnt = ?4, low_cnt = ?5,"
        " none_cnt = ?6, unknown_cnt = ?7, fixable_cnt = ?8, fingerprint = ?9"
        " WHERE artifact_id = ?1";
    int64_t n[6] = {0}, fixable = 0;
    struct old_row *rows = NULL;
    size_t nrows = 0, cap = 0;
    struct wh_buf key;
    int error = 0, rc;
    wh_buf_init(&key, 1u << 20);
    db_stmt *s = db_stmt(c, old);
    db_bind_i64(s, 1, artifact_id);
    while ((rc = db_step(s)) == DB_ROW) {
        const char *cve = db_col_text(s, 1);
        if (nrows == cap) {
            cap = cap ? cap * 2 : 64;
            rows = wh_realloc(rows, cap * sizeof(*rows));
        }
        rows[nrows++] = (struct old_row){
            .id = db_col_i64(s, 0),
            .key = wh_sprintf("%s\n%s\n%s", cve, db_col_text(s, 2),
                              db_col_text(s, 3)),
            .fixed = wh_strdup(db_col_text(s, 4)),
            .severity = db_col_int(s, 5),
            .cvss3 = db_col_double(s, 6),
        };
        /* rows come ordered by CVE id: each id once */
        size_t k = json_array_size(old_ids);
        if (old_ids && (k == 0 || strcmp(json_string_value(json_array_get(old_ids, k - 1)), cve) != 0))
            json_array_append_new(old_ids, json_string(cve));
    }
    if (rc != DB_DONE)
        error = db_fail(c);
    db_done(s);
    if (nrows > 1)
        qsort(rows, nrows, sizeof(*rows), old_cmp);
    for (size_t i = 0; error == 0 && i < r->nfindings; i++) {
        const struct wh_db_finding *f = &r->findings[i];
        const char *fixed = f->fixed_version ? f->fixed_version : "";
        double score = f->cvss3 > 0 ? f->cvss3 : 0;
        n[count_slot(f->severity)]++;
        fixable += fixed[0] != '\0';
        key.len = 0;
        wh_buf_printf(&key, "%s\n%s\n%s", f->cve_id, f->package, f->version);
        struct old_row probe = {.key = key.data}, *h = NULL;
        if (nrows)
            h = bsearch(&probe, rows, nrows, sizeof(*rows), old_cmp);
        if (h && !h->kept) {
            h->kept = true;
            if (strcmp(h->fixed, fixed) == 0 && h->severity == f->severity && h->cvss3 == score)
                continue;
            s = db_stmt(c, upd);
            db_bind_i64(s, 1, h->id);
            db_bind_text(s, 2, fixed);
            db_bind_i64(s, 3, f->severity);
            if (score > 0)
                db_bind_double(s, 4, score);
            else
                db_bind_null(s, 4);
            error = db_run(c, s);
        } else {
            s = db_stmt(c, ins);
            db_bind_i64(s, 1, artifact_id);
            db_bind_text(s, 2, f->cve_id);
            db_bind_text(s, 3, f->package);
            db_bind_text(s, 4, f->version);
            db_bind_text(s, 5, fixed);
            db_bind_i64(s, 6, f->severity);
            if (score > 0)
                db_bind_double(s, 7, score);
            else
                db_bind_null(s, 7);
            if ((error = db_run(c, s)) < 0)
                break;
        }
        if (error == 0) {
            s = db_stmt(c, text);
            db_bind_text(s, 1, f->cve_id);
            db_bind_text(s, 2, f->description ? f->description : "");
            db_bind_text(s, 3, f->links && f->links[0] ? f->links : "[]");
            db_bind_text(s, 4, f->cvss3_vector ? f->cvss3_vector : "");
            db_bind_text(s, 5, f->cwe_ids && f->cwe_ids[0] ? f->cwe_ids : "[]");
            error = db_run(c, s);
        }
    }
    for (size_t i = 0; i < nrows; i++) {
        if (error == 0 && !rows[i].kept) {
            s = db_stmt(c, del);
            db_bind_i64(s, 1, rows[i].id);
            error = db_run(c, s);
        }
        free(rows[i].key);
        free(rows[i].fixed);
    }
    free(rows);
    wh_buf_dispose(&key);
    if (error < 0)
        return error;
    s = db_stmt(c, counts);
    db_bind_i64(s, 1, artifact_id);
    for (int i = 0; i < 6; i++)
        db_bind_i64(s, 2 + i, n[i]);
    db_bind_i64(s, 8, fixable);
    db_bind_text(s, 9, r->fingerprint ? r->fingerprint : "");
    return db_run(c, s);
}

/* Stores the inventory (once per content) and points the artifact's scan at it. */
static int write_inventory(struct conn *c, int64_t artifact_id, const struct wh_scan_result *r)
{
    static const char ins[] = "INSERT INTO scan_inventory(hash, body) VALUES(?1, ?2)"
                              " ON CONFLICT(hash) DO NOTHING";
    static const char link[] =
        "UPDATE scan_job SET inventory_id = (SELECT id FROM scan_inventory WHERE hash = ?2)"
        " WHERE artifact_id = ?1";
    static const char unlink_[] = "UPDATE scan_job SET inventory_id = NULL WHERE artifact_id = ?1";
    db_stmt *s;
    if (!r->inventory) {
        s = db_stmt(c, unlink_);
        db_bind_i64(s, 1, artifact_id);
        return db_run(c, s);
    }
    struct wh_digest d;
    wh_digest_of(&d, WH_DIGEST_SHA256, r->inventory, r->inventory_len);
    const char *hash = wh_digest_hex(&d);
    s = db_stmt(c, ins);
    db_bind_text(s, 1, hash);
    db_bind_blob(s, 2, r->inventory, r->inventory_len);
    int error = db_run(c, s);
    if (error < 0)
        return error;
    s = db_stmt(c, link);
    db_bind_i64(s, 1, artifact_id);
    db_bind_text(s, 2, hash);
    return db_run(c, s);
}

static int succeed_tx(struct conn *c, int64_t artifact_id, const char *report_id,
                      const struct wh_scan_result *r, int64_t now_ms)
{
    static const char sql[] =
        "UPDATE scan_job SET status = 'Success', end_ms = ?3, log = '', severity = ?4,"
        " summary = ?5, report = ?6"
        " WHERE artifact_id = ?1 AND report_id = ?2 AND status = 'Running'";
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, artifact_id);
    db_bind_text(s, 2, report_id);
    db_bind_i64(s, 3, now_ms);
    db_bind_text(s, 4, r->severity ? r->severity : "None");
    db_bind_text(s, 5, r->summary);
    db_bind_text(s, 6, r->report);
    int error = db_change(c, s, "running scan");
    if (error == 0)
        error = write_inventory(c, artifact_id, r);
    if (error == 0)
        error = write_findings(c, artifact_id, r, NULL);
    return error;
}

int wh_db_scan_succeed(wh_db *db, int64_t artifact_id, const char *report_id,
                       const struct wh_scan_result *r, int64_t now_ms)
{
    CONN_WRITE_OR_FAIL(c, db);
    int error = db_tx_begin(c);
    if (error < 0)
        return error;
    return db_tx_end(c, succeed_tx(c, artifact_id, report_id, r, now_ms));
}

/* ---- re-matching ---- */

int wh_db_inventory_walk(wh_db *db, int64_t after, int64_t limit,
                         int (*fn)(int64_t id, const void *body, size_t len, void *payload),
                         void *payload)
{
    static const char sql[] =
        "SELECT id, body FROM scan_inventory WHERE id > ?1 ORDER BY id LIMIT ?2";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, after);
    db_bind_i64(s, 2, limit);
    int rc, stop = 0;
    while ((rc = db_step(s)) == DB_ROW) {
        const void *body = db_col_blob(s, 1);
        size_t len = (size_t)db_col_bytes(s, 1);
        if ((stop = fn(db_col_i64(s, 0), body ? body : "", len, payload)) != 0)
            break;
    }
    int error = stop != 0 ? stop : rc == DB_DONE ? 0 : db_fail(c);
    db_done(s);
    return error;
}

int wh_db_inventory_artifacts(wh_db *db, int64_t inventory_id,
                              int (*fn)(const struct wh_rematch_target *t, void *payload),
                              void *payload)
{
    static const char sql[] =
        "SELECT j.artifact_id, a.digest, j.report_id, j.fingerprint, r.name FROM scan_job j"
        " JOIN artifact a ON a.id = j.artifact_id JOIN repository r ON r.id = a.repo_id"
        " WHERE j.inventory_id = ?1 AND j.status = 'Success'";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, inventory_id);
    struct wh_rematch_target t;
    int rc, stop = 0;
    while ((rc = db_step(s)) == DB_ROW) {
        memset(&t, 0, sizeof(t));
        t.artifact_id = db_col_i64(s, 0);
        db_copy_col(t.digest, sizeof(t.digest), s, 1);
        db_copy_col(t.report_id, sizeof(t.report_id), s, 2);
        db_copy_col(t.fingerprint, sizeof(t.fingerprint), s, 3);
        db_copy_col(t.repository, sizeof(t.repository), s, 4);
        if ((stop = fn(&t, payload)) != 0)
            break;
    }
    int error = stop != 0 ? stop : rc == DB_DONE ? 0 : db_fail(c);
    db_done(s);
    return error;
}

static bool has_id(const json_t *arr, const char *id)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (strcmp(json_string_value(v), id) == 0) return true;
    return false;
}

static int rematch_tx(struct conn *c, const struct wh_rematch_target *t,
                      const char *new_report_id, const struct wh_scan_result *r, int64_t now_ms,
                      json_t *added, json_t *removed)
{
    static const char sql[] =
        "UPDATE scan_job SET report_id = ?3, start_ms = ?4, end_ms = ?4, severity = ?5,"
        " summary = ?6, report = ?7, log = 're-matched after a vulnerability database update'"
        " WHERE artifact_id = ?1 AND report_id = ?2 AND status = 'Success'";
    static const char change[] =
        "INSERT INTO vuln_change(time_ms, artifact_id, project_id, added, removed)"
        " SELECT ?2, id, project_id, ?3, ?4 FROM artifact WHERE id = ?1";
    json_t *before = json_array();
    int error;
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, t->artifact_id);
    db_bind_text(s, 2, t->report_id);
    db_bind_text(s, 3, new_report_id);
    db_bind_i64(s, 4, now_ms);
    db_bind_text(s, 5, r->severity ? r->severity : "None");
    db_bind_text(s, 6, r->summary);
    db_bind_text(s, 7, r->report);
    if ((error = db_change(c, s, "successful scan")) < 0 ||
        (error = write_findings(c, t->artifact_id, r, before)) < 0)
        goto out;
    for (size_t i = 0; i < r->nfindings; i++) {
        const char *id = r->findings[i].cve_id;
        if (!has_id(before, id) && !has_id(added, id))
            json_array_append_new(added, json_string(id));
    }
    size_t i;
    json_t *v;
    json_array_foreach(before, i, v) {
        bool still = false;
        for (size_t k = 0; k < r->nfindings && !still; k++)
            still = strcmp(r->findings[k].cve_id, json_string_value(v)) == 0;
        if (!still)
            json_array_append(removed, v);
    }
    if (json_array_size(added) == 0 && json_array_size(removed) == 0)
        goto out;
    char *a = json_dumps(added, JSON_COMPACT), *d = json_dumps(removed, JSON_COMPACT);
    s = db_stmt(c, change);
    db_bind_i64(s, 1, t->artifact_id);
    db_bind_i64(s, 2, now_ms);
    db_bind_text(s, 3, a);
    db_bind_text(s, 4, d);
    error = db_run(c, s);
    free(a);
    free(d);
out:
    json_decref(before);
    return error;
}

int wh_db_rematch_apply(wh_db *db, const struct wh_rematch_target *t, const char *new_report_id,
                        const struct wh_scan_result *r, int64_t now_ms, char **added,
                        char **removed)
{
    json_t *add = json_array(), *rem = json_array();
    if (added)
        *added = NULL;
    if (removed)
        *removed = NULL;
    struct conn *c __attribute__((cleanup(db_conn_release))) = NULL;
    int error = db_conn_write(db, &c);
    if (error == 0)
        error = db_tx_begin(c);
    if (error == 0)
        error = db_tx_end(c, rematch_tx(c, t, new_report_id, r, now_ms, add, rem));
    if (error == 0 && added)
        *added = json_dumps(add, JSON_COMPACT);
    if (error == 0 && removed)
        *removed = json_dumps(rem, JSON_COMPACT);
    json_decref(add);
    json_decref(rem);
    return error;
}

int wh_db_vuln_change_prune(wh_db *db, int64_t before_ms)
{
    static const char sql[] = "DELETE FROM vuln_change WHERE time_ms < ?1";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, before_ms);
    return db_run(c, s);
}

int wh_db_finding_text_gc(wh_db *db)
{
    static const char sql[] = "DELETE FROM finding_text WHERE NOT EXISTS"
                              " (SELECT 1 FROM finding f WHERE f.cve_id = finding_text.cve_id)";
    CONN_WRITE_OR_FAIL(c, db);
    return db_run(c, db_stmt(c, sql));
}

/* ---- the changes a re-match recorded ---- */

void db_vuln_changes_sql(struct db_sql *q, const struct wh_vuln_change_filter *f, bool count)
{
    db_sql_add(q, count ? "SELECT count(*) FROM vuln_change v"
                        : "SELECT v.id, v.time_ms, v.artifact_id, v.project_id, a.digest,"
                          " r.name, v.added, v.removed FROM vuln_change v"
                          " JOIN artifact a ON a.id = v.artifact_id"
                          " JOIN repository r ON r.id = a.repo_id");
    db_sql_add(q, " WHERE v.time_ms >= ?1");
    if (f->visible_user != -1)
        db_sql_add(q, f->visible_names
                          ? " AND v.project_id IN (SELECT id FROM project WHERE public = 1"
                            " OR id = ?3 OR id IN (SELECT project_id FROM member WHERE user_id = ?2)"
                            " OR" DB_IN_NAMES("name", "?4") ")"
                          : " AND v.project_id IN (SELECT id FROM project WHERE public = 1"
                            " OR id = ?3 OR id IN (SELECT project_id FROM member"
                            " WHERE user_id = ?2))");
    if (!count)
        db_sql_add(q, " ORDER BY v.time_ms, v.id LIMIT ?6 OFFSET ?5");
}

/* `names`: f->visible_names as db_name_set made it. */
static void bind_changes(db_stmt *s, const struct wh_vuln_change_filter *f, const char *names)
{
    db_bind_i64(s, 1, f->since_ms);
    if (f->visible_user != -1) {
        db_bind_i64(s, 2, f->visible_user);
        db_bind_i64(s, 3, f->visible_project);
        if (names)
            db_bind_text(s, 4, names);
    }
}

static int vuln_changes(struct conn *c, const struct wh_vuln_change_filter *f, const char *names,
                        int64_t offset, int64_t limit,
                        int (*fn)(const struct wh_vuln_change *ch, void *payload), void *payload,
                        int64_t *total_out)
{
    struct db_sql q = {0};
    db_vuln_changes_sql(&q, f, true);
    db_stmt *s = db_stmt_text(c, q.text);
    bind_changes(s, f, names);
    int error = db_count(c, s, total_out);
    if (error < 0)
        return error;
    memset(&q, 0, sizeof(q));
    db_vuln_changes_sql(&q, f, false);
    s = db_stmt_text(c, q.text);
    bind_changes(s, f, names);
    db_bind_i64(s, 5, offset);
    db_bind_i64(s, 6, limit);
    struct wh_vuln_change ch;
    int rc, stop = 0;
    while ((rc = db_step(s)) == DB_ROW) {
        memset(&ch, 0, sizeof(ch));
        ch.id = db_col_i64(s, 0);
        ch.time_ms = db_col_i64(s, 1);
        ch.artifact_id = db_col_i64(s, 2);
        ch.project_id = db_col_i64(s, 3);
        db_copy_col(ch.digest, sizeof(ch.digest), s, 4);
        db_copy_col(ch.repository, sizeof(ch.repository), s, 5);
        ch.added = db_col_text(s, 6);
        ch.removed = db_col_text(s, 7);
        if ((stop = fn(&ch, payload)) != 0)
            break;
    }
    error = stop != 0 ? stop : rc == DB_DONE ? 0 : db_fail(c);
    db_done(s);
    return error;
}

int wh_db_vuln_changes(wh_db *db, const struct wh_vuln_change_filter *f, int64_t offset,
                       int64_t limit, int (*fn)(const struct wh_vuln_change *ch, void *payload),
                       void *payload, int64_t *total_out)
{
    CONN_OR_FAIL(c, db);
    char *names = db_name_set(f->visible_names);
    int error = vuln_changes(c, f, names, offset, limit, fn, payload, total_out);
    free(names);
    return error;
}

/* ---- the security hub ---- */

int wh_db_security_summary(wh_db *db, struct wh_security_summary *out)
{
    static const char total[] = "SELECT count(*) FROM artifact";
    static const char sums[] =
        "SELECT count(*), coalesce(sum(critical_cnt), 0), coalesce(sum(high_cnt), 0),"
        " coalesce(sum(medium_cnt), 0), coalesce(sum(low_cnt), 0), coalesce(sum(none_cnt), 0),"
        " coalesce(sum(unknown_cnt), 0), coalesce(sum(fixable_cnt), 0)"
        " FROM scan_job WHERE report IS NOT NULL";
    CONN_OR_FAIL(c, db);
    memset(out, 0, sizeof(*out));
    int error = db_count(c, db_stmt(c, total), &out->total_artifact);
    if (error < 0)
        return error;
    db_stmt *s = db_stmt(c, sums);
    if ((error = db_one_row(c, s, "summary")) < 0)
        return error;
    int64_t *v[] = {&out->scanned_cnt, &out->critical_cnt, &out->high_cnt, &out->medium_cnt,
                    &out->low_cnt, &out->none_cnt, &out->unknown_cnt, &out->fixable_cnt};
    for (int i = 0; i < 8; i++)
        *v[i] = db_col_i64(s, i);
    db_done(s);
    return 0;
}

#define ITEM_COLS                                                                                  \
    "f.artifact_id, f.project_id, f.repo_id, r.name, a.digest, f.cve_id, f.package, f.version,"  \
    " f.fixed_version, coalesce(t.description, ''), coalesce(t.links, '[]'), f.severity,"         \
    " coalesce(f.cvss3, 0), coalesce(t.cvss3_vector, ''), coalesce(t.cwe_ids, '[]')"
#define ITEM_FROM                                                                                  \
    " FROM finding f JOIN artifact a ON a.id = f.artifact_id"                                     \
    " JOIN repository r ON r.id = f.repo_id"                                                      \
    " LEFT JOIN finding_text t ON t.cve_id = f.cve_id"

static void item_row(db_stmt *s, struct wh_vuln_item *v)
{
    memset(v, 0, sizeof(*v));
    v->artifact_id = db_col_i64(s, 0);
    v->project_id = db_col_i64(s, 1);
    v->repo_id = db_col_i64(s, 2);
    v->repository = db_col_text(s, 3);
    v->digest = db_col_text(s, 4);
    v->cve_id = db_col_text(s, 5);
    v->package = db_col_text(s, 6);
    v->version = db_col_text(s, 7);
    v->fixed_version = db_col_text(s, 8);
    v->description = db_col_text(s, 9);
    v->links = db_col_text(s, 10);
    v->severity = db_col_int(s, 11);
    v->cvss3 = db_col_double(s, 12);
    v->cvss3_vector = db_col_text(s, 13);
    v->cwe_ids = db_col_text(s, 14);
}

int wh_db_dangerous_cves(wh_db *db, int (*fn)(const struct wh_vuln_item *v, void *payload),
                         void *payload)
{
    /* finding_vuln holds each CVE x package x version once (kept by triggers on finding):
     * the same CVE in many images counts once, and nothing is walked twice */
    static const char sql[] =
        "SELECT v.cve_id, v.package, v.version, v.severity, coalesce(v.cvss3, 0),"
        " coalesce(t.description, '') FROM finding_vuln v"
        " LEFT JOIN finding_text t ON t.cve_id = v.cve_id"
        " WHERE v.cvss3 IS NOT NULL ORDER BY v.cvss3 DESC NULLS LAST LIMIT 5";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    struct wh_vuln_item v;
    int rc, stop = 0;
    while ((rc = db_step(s)) == DB_ROW) {
        memset(&v, 0, sizeof(v));
        v.cve_id = db_col_text(s, 0);
        v.package = db_col_text(s, 1);
        v.version = db_col_text(s, 2);
        v.severity = db_col_int(s, 3);
        v.cvss3 = db_col_double(s, 4);
        v.description = db_col_text(s, 5);
        v.fixed_version = v.repository = v.digest = "";
        v.links = "[]";
        if ((stop = fn(&v, payload)) != 0)
            break;
    }
    int error = stop != 0 ? stop : rc == DB_DONE ? 0 : db_fail(c);
    db_done(s);
    return error;
}

int wh_db_dangerous_artifacts(wh_db *db,
                              int (*fn)(const struct wh_dangerous_artifact *a, void *payload),
                              void *payload)
{
    static const char sql[] =
        "SELECT j.artifact_id, a.project_id, r.name, a.digest, j.critical_cnt, j.high_cnt,"
        " j.medium_cnt, j.low_cnt FROM scan_job j INDEXED BY scan_job_danger"
        " JOIN artifact a ON a.id = j.artifact_id JOIN repository r ON r.id = a.repo_id"
        " WHERE j.report IS NOT NULL"
        " AND j.critical_cnt + j.high_cnt + j.medium_cnt + j.low_cnt > 0"
        " ORDER BY j.critical_cnt DESC, j.high_cnt DESC, j.medium_cnt DESC, j.low_cnt DESC"
        " LIMIT 5";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    struct wh_dangerous_artifact d;
    int rc, stop = 0;
    while ((rc = db_step(s)) == DB_ROW) {
        memset(&d, 0, sizeof(d));
        d.artifact_id = db_col_i64(s, 0);
        d.project_id = db_col_i64(s, 1);
        db_copy_col(d.repository, sizeof(d.repository), s, 2);
        db_copy_col(d.digest, sizeof(d.digest), s, 3);
        d.critical_cnt = db_col_i64(s, 4);
        d.high_cnt = db_col_i64(s, 5);
        d.medium_cnt = db_col_i64(s, 6);
        d.low_cnt = db_col_i64(s, 7);
        if ((stop = fn(&d, payload)) != 0)
            break;
    }
    int error = stop != 0 ? stop : rc == DB_DONE ? 0 : db_fail(c);
    db_done(s);
    return error;
}

void db_vuln_list_sql(struct db_sql *q, const struct wh_vuln_filter *f, bool count)
{
    db_sql_add(q, count ? "SELECT count(*) FROM finding f" : "SELECT " ITEM_COLS ITEM_FROM);
    db_sql_add(q, " WHERE 1 = 1");
    if (f->cve_id)
        db_sql_add(q, " AND f.cve_id = ?1");
    if (f->package)
        db_sql_add(q, " AND f.package = ?2");
    if (f->severity >= 0)
        db_sql_add(q, " AND f.severity = ?3");
    if (f->project_id)
        db_sql_add(q, " AND f.project_id = ?4");
    if (f->repo_id)
        db_sql_add(q, " AND f.repo_id = ?5");
    if (f->cvss_range)
        db_sql_add(q, " AND f.cvss3 BETWEEN ?6 AND ?7");
    if (f->digest)
        db_sql_add(q, " AND f.artifact_id IN (SELECT id FROM artifact WHERE digest = ?8)");
    if (f->tag)
        db_sql_add(q, " AND f.artifact_id IN (SELECT artifact_id FROM tag WHERE name = ?9)");
    if (!count)
        db_sql_add(q, " ORDER BY f.cvss3 DESC NULLS LAST LIMIT ?11 OFFSET ?10");
}

static void bind_vuln(db_stmt *s, const struct wh_vuln_filter *f)
{
    if (f->cve_id)
        db_bind_text(s, 1, f->cve_id);
    if (f->package)
        db_bind_text(s, 2, f->package);
    if (f->severity >= 0)
        db_bind_i64(s, 3, f->severity);
    if (f->project_id)
        db_bind_i64(s, 4, f->project_id);
    if (f->repo_id)
        db_bind_i64(s, 5, f->repo_id);
    if (f->cvss_range) {
        db_bind_double(s, 6, f->cvss_from);
        db_bind_double(s, 7, f->cvss_to);
    }
    if (f->digest)
        db_bind_text(s, 8, f->digest);
    if (f->tag)
        db_bind_text(s, 9, f->tag);
}

int wh_db_vuln_list(wh_db *db, const struct wh_vuln_filter *f, int64_t offset, int64_t limit,
                    int (*fn)(const struct wh_vuln_item *v, void *payload), void *payload,
                    int64_t *total_out)
{
    CONN_OR_FAIL(c, db);
    struct db_sql q = {0};
    db_vuln_list_sql(&q, f, true);
    db_stmt *s = db_stmt_text(c, q.text);
    bind_vuln(s, f);
    int error = db_count(c, s, total_out);
    if (error < 0)
        return error;
    memset(&q, 0, sizeof(q));
    db_vuln_list_sql(&q, f, false);
    s = db_stmt_text(c, q.text);
    bind_vuln(s, f);
    db_bind_i64(s, 10, offset);
    db_bind_i64(s, 11, limit);
    struct wh_vuln_item v;
    int rc, stop = 0;
    while ((rc = db_step(s)) == DB_ROW) {
        item_row(s, &v);
        if ((stop = fn(&v, payload)) != 0)
            break;
    }
    error = stop != 0 ? stop : rc == DB_DONE ? 0 : db_fail(c);
    db_done(s);
    return error;
}

int wh_db_artifact_tag_names(wh_db *db, int64_t artifact_id,
                             int (*fn)(const char *name, void *payload), void *payload)
{
    static const char sql[] = "SELECT name FROM tag WHERE artifact_id = ?1 ORDER BY push_ms DESC";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, artifact_id);
    int rc, stop = 0;
    while ((rc = db_step(s)) == DB_ROW)
        if ((stop = fn(db_col_text(s, 0), payload)) != 0)
            break;
    int error = stop != 0 ? stop : rc == DB_DONE ? 0 : db_fail(c);
    db_done(s);
    return error;
}

/* ---- CVE export jobs ---- */

#define EXPORT_COLS                                                                                \
    "id, user_id, project_id, start_ms, end_ms, username, job_name, repositories, tags,"          \
    " cve_ids, status, status_text, csv IS NOT NULL"

static void export_row(db_stmt *s, struct wh_cve_export *e)
{
    memset(e, 0, sizeof(*e));
    e->id = db_col_i64(s, 0);
    e->user_id = db_col_i64(s, 1);
    e->project_id = db_col_i64(s, 2);
    e->start_ms = db_col_i64(s, 3);
    e->end_ms = db_col_i64(s, 4);
    db_copy_col(e->username, sizeof(e->username), s, 5);
    db_copy_col(e->job_name, sizeof(e->job_name), s, 6);
    db_copy_col(e->repositories, sizeof(e->repositories), s, 7);
    db_copy_col(e->tags, sizeof(e->tags), s, 8);
    db_copy_col(e->cve_ids, sizeof(e->cve_ids), s, 9);
    db_copy_col(e->status, sizeof(e->status), s, 10);
    db_copy_col(e->status_text, sizeof(e->status_text), s, 11);
    e->file_present = db_col_int(s, 12) != 0;
}

int wh_db_export_create(wh_db *db, const struct wh_cve_export *in, int64_t now_ms,
                        int64_t *id_out)
{
    static const char sql[] =
        "INSERT INTO cve_export(user_id, username, job_name, project_id, repositories, tags,"
        " cve_ids, status, start_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, 'Pending', ?8)"
        " RETURNING id";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, in->user_id);
    db_bind_text(s, 2, in->username);
    db_bind_text(s, 3, in->job_name);
    db_bind_i64(s, 4, in->project_id);
    db_bind_text(s, 5, in->repositories);
    db_bind_text(s, 6, in->tags);
    db_bind_text(s, 7, in->cve_ids);
    db_bind_i64(s, 8, now_ms);
    return db_insert(c, s, "export", id_out);
}

int wh_db_export_get(wh_db *db, int64_t id, struct wh_cve_export *out)
{
    static const char sql[] = "SELECT " EXPORT_COLS " FROM cve_export WHERE id = ?1";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, id);
    int error = db_one_row(c, s, "export");
    if (error < 0)
        return error;
    export_row(s, out);
    db_done(s);
    return 0;
}

int wh_db_export_list(wh_db *db, const char *username,
                      int (*fn)(const struct wh_cve_export *e, void *payload), void *payload)
{
    static const char sql[] =
        "SELECT " EXPORT_COLS " FROM cve_export WHERE username = ?1 ORDER BY id DESC LIMIT 1000";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, username);
    struct wh_cve_export *e = wh_malloc(sizeof(*e));
    int rc, stop = 0;
    while ((rc = db_step(s)) == DB_ROW) {
        export_row(s, e);
        if ((stop = fn(e, payload)) != 0)
            break;
    }
    int error = stop != 0 ? stop : rc == DB_DONE ? 0 : db_fail(c);
    db_done(s);
    free(e);
    return error;
}

int wh_db_export_claim(wh_db *db, int64_t now_ms, struct wh_cve_export *out)
{
    static const char peek[] = "SELECT 1 FROM cve_export WHERE status = 'Pending' LIMIT 1";
    static const char take[] =
        "UPDATE cve_export SET status = 'Running', start_ms = ?1, holder = ?2, lease_ms = ?3"
        " WHERE id = (SELECT id FROM cve_export WHERE status = 'Pending' ORDER BY id LIMIT 1)"
        " AND status = 'Pending' RETURNING id";
    /* PostgreSQL, several nodes: an export another node's claim has locked is skipped */
    static const char take_skip_locked[] =
        "UPDATE cve_export SET status = 'Running', start_ms = ?1, holder = ?2, lease_ms = ?3"
        " WHERE id = (SELECT id FROM cve_export WHERE status = 'Pending' ORDER BY id LIMIT 1"
        " FOR UPDATE SKIP LOCKED) AND status = 'Pending' RETURNING id";
    CONN_WRITE_OR_FAIL(c, db);
    bool any = false;
    int error = db_exists(c, db_stmt(c, peek), &any);
    if (error < 0 || !any)
        return error < 0 ? error : WH_ENOTFOUND;
    bool pg = strcmp(db_driver_name(c), "postgres") == 0;
    db_stmt *s = db_stmt(c, pg ? take_skip_locked : take);
    db_bind_i64(s, 1, now_ms);
    db_bind_text(s, 2, db_node(c));
    db_bind_i64(s, 3, now_ms + wh_db_scan_lease(db));
    int rc = db_step(s);
    int64_t id = rc == DB_ROW ? db_col_i64(s, 0) : 0;
    error = rc >= 0 ? 0 : db_fail(c);
    db_done(s);
    if (error < 0)
        return error;
    return id ? wh_db_export_get(db, id, out) : WH_ENOTFOUND;
}

int wh_db_export_finish(wh_db *db, int64_t id, const char *status, const char *text,
                        const void *csv, size_t len, int64_t now_ms)
{
    /* the holder's own export only: one taken back meanwhile is another node's */
    static const char sql[] = "UPDATE cve_export SET status = ?2, status_text = ?3, csv = ?4,"
                              " end_ms = ?5, holder = '' WHERE id = ?1 AND status = 'Running'"
                              " AND holder = ?6";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, id);
    db_bind_text(s, 2, status);
    db_bind_text(s, 3, text ? text : "");
    if (csv)
        db_bind_blob(s, 4, csv, len);
    else
        db_bind_null(s, 4);
    db_bind_i64(s, 5, now_ms);
    db_bind_text(s, 6, db_node(c));
    return db_change(c, s, "running export");
}

int wh_db_export_csv(wh_db *db, int64_t id, char **out, size_t *len)
{
    static const char sql[] = "SELECT csv FROM cve_export WHERE id = ?1 AND csv IS NOT NULL";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, id);
    int error = db_one_row(c, s, "export file");
    if (error < 0)
        return error;
    size_t n = (size_t)db_col_bytes(s, 0);
    const void *b = db_col_blob(s, 0);
    *out = wh_malloc(n + 1);
    if (n)
        memcpy(*out, b, n);
    (*out)[n] = '\0';
    *len = n;
    db_done(s);
    return 0;
}

int wh_db_export_delete(wh_db *db, int64_t id)
{
    static const char sql[] = "DELETE FROM cve_export WHERE id = ?1";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, id);
    return db_change(c, s, "export");
}

int wh_db_export_count(wh_db *db, const char *username, int64_t *out)
{
    static const char sql[] = "SELECT count(*) FROM cve_export WHERE username = ?1";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, username);
    return db_count(c, s, out);
}

int wh_db_export_prune(wh_db *db, int64_t before_ms)
{
    static const char sql[] = "DELETE FROM cve_export WHERE end_ms > 0 AND end_ms < ?1";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, before_ms);
    return db_run(c, s);
}

int wh_db_export_renew(wh_db *db, int64_t now_ms)
{
    static const char sql[] = "UPDATE cve_export SET lease_ms = ?2"
                              " WHERE status = 'Running' AND holder = ?1";
    return db_lease_renew(db, sql, now_ms);
}

int wh_db_export_recover(wh_db *db, int64_t now_ms, bool at_start, int64_t *requeued)
{
    static const char sql[] =
        "UPDATE cve_export SET status = 'Pending', holder = '', lease_ms = 0"
        " WHERE status = 'Running' AND (lease_ms < ?1 OR (?2 = 1 AND holder = ?3))";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, now_ms);
    db_bind_i64(s, 2, at_start ? 1 : 0);
    db_bind_text(s, 3, db_node(c));
    int error = db_run(c, s);
    if (requeued)
        *requeued = error == 0 ? db_changes(c) : 0;
    return error;
}

int wh_db_project_findings(wh_db *db, int64_t project_id,
                           int (*fn)(const struct wh_vuln_item *v, void *payload), void *payload)
{
    static const char sql[] = "SELECT " ITEM_COLS ITEM_FROM
                              " WHERE f.project_id = ?1 ORDER BY f.cvss3 DESC NULLS LAST";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, project_id);
    struct wh_vuln_item v;
    int rc, stop = 0;
    while ((rc = db_step(s)) == DB_ROW) {
        item_row(s, &v);
        if ((stop = fn(&v, payload)) != 0)
            break;
    }
    int error = stop != 0 ? stop : rc == DB_DONE ? 0 : db_fail(c);
    db_done(s);
    return error;
}

/* ---- re-match runs (schema 17) ---- */

#define RUN_COLS                                                                                   \
    "vulndb, status, after_id, holder, lease_ms, attempts, due_ms, created_ms, start_ms, end_ms," \
    " inventories, artifacts, changed, failed, log"

static void run_row(db_stmt *s, struct wh_rematch_run *out)
{
    memset(out, 0, sizeof(*out));
    db_copy_col(out->vulndb, sizeof(out->vulndb), s, 0);
    db_copy_col(out->status, sizeof(out->status), s, 1);
    out->after_id = db_col_i64(s, 2);
    db_copy_col(out->holder, sizeof(out->holder), s, 3);
    out->lease_ms = db_col_i64(s, 4);
    out->attempts = db_col_i64(s, 5);
    out->due_ms = db_col_i64(s, 6);
    out->created_ms = db_col_i64(s, 7);
    out->start_ms = db_col_i64(s, 8);
    out->end_ms = db_col_i64(s, 9);
    out->inventories = db_col_i64(s, 10);
    out->artifacts = db_col_i64(s, 11);
    out->changed = db_col_i64(s, 12);
    out->failed = db_col_i64(s, 13);
    db_copy_col(out->log, sizeof(out->log), s, 14);
}

int wh_db_rematch_queue(wh_db *db, const char *vulndb, int64_t now_ms, bool *created)
{
    static const char sql[] =
        "INSERT INTO rematch_run(vulndb, status, due_ms, created_ms) VALUES(?1, 'Pending', ?2, ?2)"
        " ON CONFLICT(vulndb) DO NOTHING";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, vulndb);
    db_bind_i64(s, 2, now_ms);
    int error = db_run(c, s);
    if (created)
        *created = error == 0 && db_changes(c) > 0;
    return error;
}

int wh_db_rematch_get(wh_db *db, const char *vulndb, struct wh_rematch_run *out)
{
    static const char sql[] = "SELECT " RUN_COLS " FROM rematch_run WHERE vulndb = ?1";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, vulndb);
    int error = db_one_row(c, s, "re-match run");
    if (error < 0)
        return error;
    run_row(s, out);
    db_done(s);
    return 0;
}

int wh_db_rematch_claim(wh_db *db, const char *vulndb, int64_t now_ms, struct wh_rematch_run *out)
{
    /* the start of the first attempt stays: the run's duration counts from there */
    static const char take[] =
        "UPDATE rematch_run SET status = 'Running', holder = ?3, lease_ms = ?4,"
        " attempts = attempts + 1, start_ms = CASE WHEN start_ms = 0 THEN ?2 ELSE start_ms END"
        " WHERE vulndb = ?1 AND status = 'Pending' AND due_ms <= ?2 RETURNING " RUN_COLS;
    /* PostgreSQL: a row another node's claim has locked is skipped, not waited for */
    static const char take_skip_locked[] =
        "UPDATE rematch_run SET status = 'Running', holder = ?3, lease_ms = ?4,"
        " attempts = attempts + 1, start_ms = CASE WHEN start_ms = 0 THEN ?2 ELSE start_ms END"
        " WHERE status = 'Pending' AND vulndb = (SELECT vulndb FROM rematch_run WHERE vulndb = ?1"
        " AND status = 'Pending' AND due_ms <= ?2 FOR UPDATE SKIP LOCKED) RETURNING " RUN_COLS;
    CONN_WRITE_OR_FAIL(c, db);
    bool pg = strcmp(db_driver_name(c), "postgres") == 0;
    db_stmt *s = db_stmt(c, pg ? take_skip_locked : take);
    db_bind_text(s, 1, vulndb);
    db_bind_i64(s, 2, now_ms);
    db_bind_text(s, 3, db_node(c));
    db_bind_i64(s, 4, now_ms + wh_db_scan_lease(db));
    int rc = db_step(s);
    if (rc == DB_ROW)
        run_row(s, out);
    int error = rc == DB_ROW ? 0 : rc == DB_DONE ? WH_ENOTFOUND : db_fail(c);
    db_done(s);
    return error;
}

int wh_db_rematch_progress(wh_db *db, const char *vulndb, int64_t after_id,
                           const struct wh_rematch_counts *n, int64_t now_ms)
{
    /* the holder's own run only: one taken over meanwhile is the other node's */
    static const char sql[] =
        "UPDATE rematch_run SET after_id = ?3, inventories = inventories + ?4,"
        " artifacts = artifacts + ?5, changed = changed + ?6, failed = failed + ?7, lease_ms = ?8"
        " WHERE vulndb = ?1 AND holder = ?2 AND status = 'Running' AND after_id <= ?3";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, vulndb);
    db_bind_text(s, 2, db_node(c));
    db_bind_i64(s, 3, after_id);
    db_bind_i64(s, 4, n->inventories);
    db_bind_i64(s, 5, n->artifacts);
    db_bind_i64(s, 6, n->changed);
    db_bind_i64(s, 7, n->failed);
    db_bind_i64(s, 8, now_ms + wh_db_scan_lease(db));
    return db_change(c, s, "re-match run held by this node");
}

int wh_db_rematch_finish(wh_db *db, const char *vulndb, const char *log, int64_t now_ms)
{
    static const char sql[] =
        "UPDATE rematch_run SET status = 'Success', end_ms = ?3, holder = '', log = log || ?4"
        " WHERE vulndb = ?1 AND holder = ?2 AND status = 'Running'";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, vulndb);
    db_bind_text(s, 2, db_node(c));
    db_bind_i64(s, 3, now_ms);
    db_bind_text(s, 4, log ? log : "");
    return db_change(c, s, "re-match run held by this node");
}

int wh_db_rematch_release(wh_db *db, const char *vulndb)
{
    /* a stop is not a failed attempt: it is not counted */
    static const char sql[] =
        "UPDATE rematch_run SET status = 'Pending', holder = '', lease_ms = 0,"
        " attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END"
        " WHERE vulndb = ?1 AND holder = ?2 AND status = 'Running'";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, vulndb);
    db_bind_text(s, 2, db_node(c));
    return db_change(c, s, "re-match run held by this node");
}

int wh_db_rematch_retry(wh_db *db, const char *vulndb, const char *why, int64_t now_ms,
                        char *status_out, int64_t *due_out)
{
    static const char look[] = "SELECT attempts FROM rematch_run"
                               " WHERE vulndb = ?1 AND holder = ?2 AND status = 'Running'";
    static const char again[] =
        "UPDATE rematch_run SET status = ?4, due_ms = ?5, end_ms = ?6, holder = '', lease_ms = 0,"
        " log = log || ?7 WHERE vulndb = ?1 AND holder = ?2 AND status = 'Running'"
        " AND attempts = ?3";
    char line[1024];
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, look);
    db_bind_text(s, 1, vulndb);
    db_bind_text(s, 2, db_node(c));
    int error = db_one_row(c, s, "re-match run held by this node");
    if (error < 0)
        return error;
    int64_t attempts = db_col_i64(s, 0), due;
    db_done(s);
    bool last = db_retry_plan(db, attempts, why, now_ms, line, sizeof(line), &due);
    s = db_stmt(c, again);
    db_bind_text(s, 1, vulndb);
    db_bind_text(s, 2, db_node(c));
    db_bind_i64(s, 3, attempts);
    db_bind_text(s, 4, last ? "Error" : "Pending");
    db_bind_i64(s, 5, due);
    db_bind_i64(s, 6, last ? now_ms : 0);
    db_bind_text(s, 7, line);
    if ((error = db_change(c, s, "re-match run held by this node")) < 0)
        return error;
    if (status_out)
        snprintf(status_out, 16, "%s", last ? "Error" : "Pending");
    if (due_out)
        *due_out = due;
    return 0;
}

int wh_db_rematch_renew(wh_db *db, int64_t now_ms)
{
    static const char sql[] = "UPDATE rematch_run SET lease_ms = ?2"
                              " WHERE status = 'Running' AND holder = ?1";
    return db_lease_renew(db, sql, now_ms);
}

int wh_db_rematch_recover(wh_db *db, int64_t now_ms, bool at_start, int64_t *requeued)
{
    /* as wh_db_scan_recover: a line per attempt cut off; Error after the last */
    static const char sql[] =
        "UPDATE rematch_run SET"
        " status = CASE WHEN attempts >= ?1 THEN 'Error' ELSE 'Pending' END,"
        " log = log || 'attempt ' || attempts || ' of ' || ?1 || ' was cut off at inventory '"
        " || after_id || ': the node running it stopped (' || CASE WHEN holder = ''"
        " THEN 'unnamed' ELSE holder END || ')' || ?5 ||"
        " CASE WHEN attempts >= ?1 THEN 'gave up after ' || attempts || ' attempts' || ?5"
        " ELSE '' END,"
        " end_ms = CASE WHEN attempts >= ?1 THEN ?2 ELSE 0 END, due_ms = ?2, holder = '',"
        " lease_ms = 0"
        " WHERE status = 'Running' AND (lease_ms < ?2 OR (?3 = 1 AND holder = ?4))"
        " RETURNING status";
    return db_lease_recover(db, sql, now_ms, at_start, requeued);
}

int wh_db_rematch_prune(wh_db *db, int64_t before_ms)
{
    static const char sql[] =
        "DELETE FROM rematch_run WHERE status <> 'Running' AND created_ms < ?1";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, before_ms);
    return db_run(c, s);
}
