/*
 * Private to db/: the SQLite connection helpers shared by the db_*.c files.
 * Each file keeps its SQL next to the functions that use it and prepares it
 * through db_stmt(), which caches one prepared statement per connection and
 * SQL string (keyed by the string's address, so pass static strings).
 */
#ifndef WH_DB_INT_H
#define WH_DB_INT_H

#include <sqlite3.h>

#include "db/db.h"

struct conn;

/*
 * The VFS connections are opened with (db_vfs.c): "wharf", the default one
 * behind the failpoint "db.write", or NULL (the default) when failpoints are
 * compiled out.
 */
const char *db_vfs_name(void);
/* The calling thread's connection (opened on first use), or NULL on failure. */
struct conn *db_conn(wh_db *db);
/* A prepared statement for `sql` (a static string) on `c`. Reset it with db_done. */
sqlite3_stmt *db_stmt(struct conn *c, const char *sql);
/*
 * A statement assembled from fixed fragments, for the lists whose WHERE and
 * ORDER BY follow the caller's filters: each combination gets SQL that names
 * only what it filters and sorts on, so SQLite can walk an index instead of
 * evaluating "match anything" terms over every row. Start with {0}.
 */
#define DB_SQL_MAX 4096
struct db_sql {
    char text[DB_SQL_MAX];
    size_t len;
};
/* Appends a fragment (ours, never client bytes); aborts past DB_SQL_MAX. */
void db_sql_add(struct db_sql *q, const char *fragment);
/* A prepared statement for assembled `sql` on `c`, cached per connection by
 * its text (the text is copied). Reset it with db_done. */
sqlite3_stmt *db_stmt_text(struct conn *c, const char *sql);
/* The SQL of a list, its page or (`count`) its total; exposed for the plan tests. */
void db_artifact_list_sql(struct db_sql *q, const struct wh_artifact_filter *f, bool count);
void db_repo_page_sql(struct db_sql *q, const struct wh_repo_filter *f, bool count);
void db_project_list_sql(struct db_sql *q, const struct wh_project_filter *f, bool count);
/* The security hub's vulnerability list and the re-match changes (db_finding.c). */
void db_vuln_list_sql(struct db_sql *q, const struct wh_vuln_filter *f, bool count);
void db_vuln_changes_sql(struct db_sql *q, const struct wh_vuln_change_filter *f, bool count);
/* Opens `path` migrated to schema `version` only (-1: the newest), for tests of
 * the migrations themselves. As wh_db_open otherwise. */
int db_open_at(wh_db **out, const char *path, int version);
/* Resets a statement and clears its bindings. */
void db_done(sqlite3_stmt *s);
/* Steps a statement that returns no rows (or ignores them), then resets it. */
int db_run(struct conn *c, sqlite3_stmt *s);
/*
 * Sets the error message from the connection and returns WH_ENOSPC when the
 * disk is full (SQLITE_FULL), else WH_ERROR.
 */
int db_fail(struct conn *c);
/*
 * Classifies the failed write of a `what` row: WH_EEXISTS for a unique or
 * primary key conflict, WH_ENOTFOUND when a row it refers to is gone
 * (foreign key), else WH_ERROR (db_fail), so that only the caller's own
 * conflicts are ever reported as such.
 */
int db_constraint(struct conn *c, const char *what);
/* Binds text (NULL binds SQL NULL). The string must outlive the step. */
void db_bind_text(sqlite3_stmt *s, int i, const char *v);
/* Copies a text column into a fixed buffer ("" for NULL). */
void db_copy_col(char *dst, size_t cap, sqlite3_stmt *s, int col);
/* BEGIN IMMEDIATE. */
int db_tx_begin(struct conn *c);
/* COMMIT when `error` is 0, else ROLLBACK; returns the final code. */
int db_tx_end(struct conn *c, int error);
/*
 * The one row of a bound SELECT: 0 with the row ready to read (then reset it
 * with db_done), or WH_ENOTFOUND ("<what> not found") / WH_ERROR with the
 * statement already reset.
 */
int db_one_row(struct conn *c, sqlite3_stmt *s, const char *what);
/* Steps a bound INSERT: 0, WH_EEXISTS ("<what> already exists"), WH_ENOTFOUND
 * (a row it refers to is gone) or WH_ERROR (db_constraint); the new rowid in
 * `*id_out` (may be NULL). Resets `s`. */
int db_insert(struct conn *c, sqlite3_stmt *s, const char *what, int64_t *id_out);
/* Steps a bound UPDATE/DELETE: WH_ENOTFOUND when it changed no row. Resets `s`. */
int db_change(struct conn *c, sqlite3_stmt *s, const char *what);
/* Steps a bound SELECT: `*out` tells whether it returned a row. Resets `s`. */
int db_exists(struct conn *c, sqlite3_stmt *s, bool *out);
/* Steps a bound "SELECT count(*)" into `*out`. Resets `s`. */
int db_count(struct conn *c, sqlite3_stmt *s, int64_t *out);
/* Steps a bound SELECT through its rows, calling `row(s, payload)` for each
 * until one returns non-zero. Resets `s`. */
int db_rows(struct conn *c, sqlite3_stmt *s, int (*row)(sqlite3_stmt *s, void *payload),
            void *payload);
/* Rows changed by the last statement. */
int db_changes(struct conn *c);
/*
 * Notes that the statement just run queued a scan job: wh_db_on_scan_queued's
 * callback is called once the transaction commits (at once outside one).
 */
void db_note_scan_queued(struct conn *c);
/* Rowid of the last insert. */
int64_t db_last_id(struct conn *c);

/* Inside a manifest's transaction: queues a scan of the new artifact when it is
 * an image and its project has auto_scan on (db_scan.c). */
int db_scan_autoqueue(struct conn *c, int64_t artifact_id, const struct wh_artifact_in *a,
                      int64_t now_ms);

/* Inside a write transaction: postpones the collector's review of blob `digest`
 * to `now_ms` plus the review delay, when one is queued sooner (db_gc.c). */
int db_gc_postpone_blob(struct conn *c, const char *digest, int64_t now_ms);

#define CONN_OR_FAIL(c, db)                                                                        \
    struct conn *c = db_conn(db);                                                                  \
    if (!c)                                                                                        \
    return WH_ERROR

#endif
