/*
 * Private to db/: what the entity files (db_*.c) share. They speak SQL that
 * runs on every backend (see db_driver.h for the conventions) through the
 * generic core (db_core.c): the calling thread's connection, statements
 * prepared once per connection and cached (db_stmt, keyed by the SQL
 * string's address, so pass static strings; db_stmt_text, keyed by text),
 * transactions, and driver-neutral bind/column accessors. No file here but
 * the SQLite driver's own (db_sqlite.c, db_vfs.c, db_backup.c) sees SQLite.
 */
#ifndef WH_DB_INT_H
#define WH_DB_INT_H

#include "db/db.h"
#include "db/db_driver.h"

#include <stddef.h>

struct conn;

/*
 * A prepared statement of one connection, as the core caches it: the
 * driver's handle and the table to reach it through. The accessors below are
 * inline so that each costs the one indirect call into the driver.
 */
typedef struct db_stmt {
    struct db_dstmt *h;
    const struct db_driver *d;
    struct conn *c;
} db_stmt;

/* What db_step returns besides a (negative) WH_E* code. */
#define DB_ROW 1
#define DB_DONE 0

/*
 * The VFS SQLite connections are opened with (db_vfs.c): "wharf", the
 * default one behind the failpoint "db.write", or NULL (the default) when
 * failpoints are compiled out. The SQLite driver's only.
 */
const char *db_vfs_name(void);
/* SQLite's writers' queue now (db_sqlite.c): foreground writers waiting for the
 * lock, background writers letting them go first. For tests. */
void db_sqlite_writers(int *fg_waiting, int *bg_yielding);
/* SQLite's checkpoints (db_sqlite.c): those waiting for the write transactions of the
 * process to end, and those run since it started. For tests. */
void db_sqlite_checkpoints(int *waiting, uint64_t *run);
/*
 * A connection for the calling thread to use until it gives it back with
 * db_conn_put: the one it already holds (a call inside a call, and so inside
 * the same transaction), else the pool's idle connection given back last,
 * else a new one. NULL on failure. Entity functions take it with DB_CONN or
 * CONN_OR_FAIL, which give it back when the function returns.
 */
struct conn *db_conn(wh_db *db);
/*
 * Gives back what db_conn took (NULL: nothing). The outermost call's return
 * puts the connection in the pool, where another thread may take it: nothing
 * of the call may be left open on it (a transaction, a statement mid-rows).
 */
void db_conn_put(struct conn *c);
/*
 * For a call that writes: on a driver with one_writer (SQLite), the
 * database's one writer connection, waited for while another thread holds it
 * (request threads first; WH_EBUSY after 10 s); inside a call, or on other
 * drivers, as db_conn. 0 or a WH_E* code, `*out` NULL on failure.
 */
int db_conn_write(wh_db *db, struct conn **out);
/* The longest wait of db_conn_write before WH_EBUSY (10 s unless set). For tests. */
void db_set_writer_wait(wh_db *db, int ms);
/* Threads waiting for the writer connection now: request threads, and
 * background ones giving way to them. For tests. */
void db_writer_queue(wh_db *db, int *fg_waiting, int *bg_yielding);
/* Whether the calling thread writes for background work (wh_db_thread_background). */
bool db_thread_background(void);
/* The database's connections: open in all, and those idle in the pool. For tests. */
void db_conn_stats(wh_db *db, int *open, int *idle);
#define DB_IDLE_MAX 16 /* connections the pool keeps open while no call uses them */
/* A prepared statement for `sql` (a static string) on `c`. Reset it with db_done. */
db_stmt *db_stmt_get(struct conn *c, const char *sql);
/* The name the entity files call it by (the type db_stmt is not followed by '('). */
#define db_stmt(c, sql) db_stmt_get(c, sql)
/*
 * As db_stmt, in slot `slot` (0 .. DB_HOT_SLOTS - 1) of a per-connection
 * array, for the statements of the hot paths (a pull's manifest and blob
 * lookups): an index instead of a hash probe. One file owns the slots
 * (db_registry.c); `sql` must always be the same for a slot.
 */
#define DB_HOT_SLOTS 64
db_stmt *db_stmt_hot(struct conn *c, int slot, const char *sql);
/*
 * A statement assembled from fixed fragments, for the lists whose WHERE and
 * ORDER BY follow the caller's filters: each combination gets SQL that names
 * only what it filters and sorts on, so the database can walk an index
 * instead of evaluating "match anything" terms over every row. Start with {0}.
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
db_stmt *db_stmt_text(struct conn *c, const char *sql);
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

/* ---- statements: bind (1-based), step, read columns (0-based) ---- */

/* Runs `s` to its next row: DB_ROW, DB_DONE, or a WH_E* code (see db_driver.h's step). */
int db_step(db_stmt *s);

static inline void db_bind_i64(db_stmt *s, int i, int64_t v)
{
    s->d->bind_i64(s->h, i, v);
}
static inline void db_bind_double(db_stmt *s, int i, double v)
{
    s->d->bind_double(s->h, i, v);
}
/* Binds text (NULL binds SQL NULL). The string must outlive the step. */
static inline void db_bind_text(db_stmt *s, int i, const char *v)
{
    s->d->bind_text(s->h, i, v, -1);
}
/* Binds `len` bytes of text (len < 0: up to the NUL), borrowed as db_bind_text. */
static inline void db_bind_textn(db_stmt *s, int i, const char *v, ptrdiff_t len)
{
    s->d->bind_text(s->h, i, v, len);
}
/* Binds `len` bytes as a blob, borrowed. */
static inline void db_bind_blob(db_stmt *s, int i, const void *v, size_t len)
{
    s->d->bind_blob(s->h, i, v, len);
}
static inline void db_bind_null(db_stmt *s, int i)
{
    s->d->bind_null(s->h, i);
}
static inline int64_t db_col_i64(db_stmt *s, int col)
{
    return s->d->col_i64(s->h, col);
}
static inline int db_col_int(db_stmt *s, int col)
{
    return (int)s->d->col_i64(s->h, col);
}
static inline double db_col_double(db_stmt *s, int col)
{
    return s->d->col_double(s->h, col);
}
/* Text, or NULL for SQL NULL; valid until the next step or reset. */
static inline const char *db_col_text(db_stmt *s, int col)
{
    return s->d->col_text(s->h, col);
}
static inline size_t db_col_bytes(db_stmt *s, int col)
{
    return s->d->col_bytes(s->h, col);
}
static inline const void *db_col_blob(db_stmt *s, int col)
{
    return s->d->col_blob(s->h, col);
}
static inline bool db_col_null(db_stmt *s, int col)
{
    return s->d->col_is_null(s->h, col);
}

/* Resets a statement and clears its bindings. */
void db_done(db_stmt *s);
/* Steps a statement that returns no rows (or ignores them), then resets it. */
int db_run(struct conn *c, db_stmt *s);
/*
 * The error of the connection's last failed step, for a caller that is not
 * asking about its own conflicts: WH_ENOSPC when the disk is full, else
 * WH_ERROR (a constraint a statement was not meant to meet is the
 * server's failure). The message is the driver's.
 */
int db_fail(struct conn *c);
/*
 * Classifies the failed write of a `what` row: WH_EEXISTS for a unique or
 * primary key conflict, WH_ENOTFOUND when a row it refers to is gone
 * (foreign key), else as db_fail, so that only the caller's own conflicts
 * are ever reported as such.
 */
int db_constraint(struct conn *c, const char *what);
/* Copies a text column into a fixed buffer ("" for NULL). */
void db_copy_col(char *dst, size_t cap, db_stmt *s, int col);
/* A text column as an owned string ("" for NULL), for the caller to free. */
char *db_dup_col(db_stmt *s, int col);
/*
 * Runs `sql`, an UPDATE that extends this node's leases: ?1 is the node
 * (db_node), ?2 the new end (now_ms plus the scan lease). 0 or an error code.
 */
int db_lease_renew(wh_db *db, const char *sql, int64_t now_ms);
/*
 * Runs `sql`, an UPDATE ... RETURNING status that hands back the Running
 * jobs of a dead node (lease ended) or, `at_start`, of this node: ?1 the
 * attempts allowed, ?2 now, ?3 at_start, ?4 this node, ?5 a newline.
 * `*requeued` (may be NULL): how many became Pending again.
 */
int db_lease_recover(wh_db *db, const char *sql, int64_t now_ms, bool at_start,
                     int64_t *requeued);
/*
 * What follows a failed attempt of a queued job (a scan, a re-match run):
 * its log `line` (the reason cut to 700 bytes; then when it is retried, or
 * that it was given up) and the time it is due again (0 when given up).
 * True when that was the last attempt (scan.max_attempts).
 */
bool db_retry_plan(wh_db *db, int64_t attempts, const char *why, int64_t now_ms, char *line,
                   size_t cap, int64_t *due_out);
/* Begins a write transaction (a savepoint inside wh_db_batch's). */
int db_tx_begin(struct conn *c);
/* COMMIT when `error` is 0, else ROLLBACK; returns the final code. */
int db_tx_end(struct conn *c, int error);
/*
 * The one row of a bound SELECT: 0 with the row ready to read (then reset it
 * with db_done), or WH_ENOTFOUND ("<what> not found") / WH_ERROR with the
 * statement already reset.
 */
int db_one_row(struct conn *c, db_stmt *s, const char *what);
/* Steps a bound INSERT: 0, WH_EEXISTS ("<what> already exists"), WH_ENOTFOUND
 * (a row it refers to is gone) or WH_ERROR (db_constraint). When `id_out` is
 * not NULL the INSERT ends in "RETURNING id" and the new id lands there.
 * Resets `s`. */
int db_insert(struct conn *c, db_stmt *s, const char *what, int64_t *id_out);
/* Steps a bound UPDATE/DELETE: WH_ENOTFOUND when it changed no row. Resets `s`. */
int db_change(struct conn *c, db_stmt *s, const char *what);
/* Steps a bound SELECT: `*out` tells whether it returned a row. Resets `s`. */
int db_exists(struct conn *c, db_stmt *s, bool *out);
/* Steps a bound "SELECT count(*)" (any one integer) into `*out`. Resets `s`. */
int db_count(struct conn *c, db_stmt *s, int64_t *out);
/*
 * Steps a bound statement whose rows' first column is a status (a recovery's
 * "UPDATE ... RETURNING status"), counting into `*pending` (when not NULL) the
 * rows that came back "Pending". Resets `s`.
 */
int db_count_pending(struct conn *c, db_stmt *s, int64_t *pending);
/* Steps a bound SELECT through its rows, calling `row(s, payload)` for each
 * until one returns non-zero. Resets `s`. */
int db_rows(struct conn *c, db_stmt *s, int (*row)(db_stmt *s, void *payload), void *payload);
/*
 * Steps a statement that returns an id (RETURNING): `*id_out` is 0 when it
 * returned no row. Resets `s`.
 */
int db_step_id(struct conn *c, db_stmt *s, int64_t *id_out);
/*
 * Inside the write transaction that recorded a new blob row: 0 when the
 * blob's bytes are in storage (wh_db_on_blob_recorded's check), else
 * WH_EBUSY (the collector took them meanwhile: the push retries).
 */
int db_blob_check(struct conn *c, const char *digest);
/* This process's node name for the scan queue's leases ("" unless set). */
const char *db_node(struct conn *c);
/* A growing array of ids, filled by db_collect_id (free `v` when done). */
struct db_ids {
    int64_t *v;
    size_t n, cap;
};
/* A db_rows callback: appends column 0 of each row to the struct db_ids `payload`. */
int db_collect_id(db_stmt *s, void *payload);
/* Rows changed by the last statement. */
int db_changes(struct conn *c);
/*
 * Notes that the statement just run queued a scan job: wh_db_on_scan_queued's
 * callback is called once the transaction commits (at once outside one).
 */
void db_note_scan_queued(struct conn *c);

/* ---- shared between entity files ---- */

/*
 * A JSON array of names (a filter's visible_names) as one text the portable
 * test of DB_IN_NAMES reads: "/a/b/", names with a '/' dropped (no project is
 * named so). NULL for NULL or what is not an array of strings; free it.
 */
char *db_name_set(const char *json_names);
/*
 * SQL: whether the text `col` is one of the names in the set parameter
 * `param` (made by db_name_set), in functions every backend has.
 */
#define DB_IN_NAMES(col, param) " (replace(" param ", '/' || " col " || '/', '') <> " param ")"
/*
 * SQL: whether the text `col` contains the text parameter `param` (every
 * text contains ''), in functions every backend has (not instr/strpos).
 */
#define DB_CONTAINS(col, param)                                                                    \
    " (" param " = '' OR replace(" col ", " param ", '') <> " col ")"
/*
 * SQL: whether the tag name `col` is a cosign signature's, "sha256-*.sig",
 * case-sensitive on every backend (SQLite's LIKE ignores ASCII case, hence
 * the exact prefix and suffix; '_' is not in the pattern).
 */
#define DB_COSIGN_TAG(col)                                                                         \
    " (" col " LIKE 'sha256-%.sig' AND substr(" col ", 1, 7) = 'sha256-'"                          \
    " AND substr(" col ", length(" col ") - 3) = '.sig')"
/* Whether a project's metadata JSON has auto_scan on (Harbor: "true" or "1", any case). */
bool db_auto_scan(const char *metadata);
/*
 * Inside a manifest's transaction: queues a scan of the new artifact when it is
 * an image and its project has auto_scan on (db_scan.c).
 */
int db_scan_autoqueue(struct conn *c, int64_t artifact_id, const struct wh_artifact_in *a,
                      int64_t now_ms);
/*
 * Queues (or queues again, unless pending or running) a scan of artifact
 * `artifact_id` with a fresh random report id (db_scan.c). `run_id` 0: not a
 * scan-all's; `requeue` false: an existing job is left alone.
 */
int db_scan_enqueue(struct conn *c, int64_t artifact_id, int64_t now_ms, int64_t run_id,
                    const char *operator, bool requeue);

/* Inside a write transaction: postpones the collector's review of blob `digest`
 * to `now_ms` plus the review delay, when one is queued sooner (db_gc.c). */
int db_gc_postpone_blob(struct conn *c, const char *digest, int64_t now_ms);
/* The driver behind `c` ("sqlite", "postgres"), for the few statements a backend
 * spells its own way (a queue claim with PostgreSQL's SKIP LOCKED). */
const char *db_driver_name(struct conn *c);

/* For the cleanup attribute of DB_CONN. */
static inline void db_conn_release(struct conn **c)
{
    db_conn_put(*c);
}
/* Declares `c`, a connection of `db` (db_conn; may be NULL) given back when it goes
 * out of scope, whichever way the function returns. */
#define DB_CONN(c, db) struct conn *c __attribute__((cleanup(db_conn_release))) = db_conn(db)
/* As DB_CONN, returning WH_ERROR from the function when there is none. */
#define CONN_OR_FAIL(c, db)                                                                        \
    DB_CONN(c, db);                                                                                \
    if (!c)                                                                                        \
    return WH_ERROR
/*
 * As CONN_OR_FAIL for a function that writes (db_conn_write), returning its
 * error. Reads may use it too: a function that reads and then writes takes
 * the writer connection from its start.
 */
#define CONN_WRITE_OR_FAIL(c, db)                                                                  \
    struct conn *c __attribute__((cleanup(db_conn_release))) = NULL;                               \
    do {                                                                                           \
        int conn_error_ = db_conn_write(db, &c);                                                   \
        if (conn_error_ < 0)                                                                       \
            return conn_error_;                                                                    \
    } while (0)

#endif
