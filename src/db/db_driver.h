/*
 * Private to db/: the table a metadata backend implements (SQLite in
 * db_sqlite.c, PostgreSQL in db_pg.c). The generic core (db_core.c) owns
 * wh_db, the per-thread connections, the statement caches and the
 * transactions, and reaches the backend only through this table; the entity
 * files (db_*.c) see neither, only db_int.h.
 *
 * Conventions every driver keeps:
 * - Handles are opaque: `struct db_dconn` is one connection, used by one
 *   thread at a time; `struct db_dstmt` is one prepared statement of one
 *   connection, prepared once and reused (reset between uses).
 * - SQL is written once for every backend: parameters are SQLite-style
 *   numbered `?1`..`?N` (one number may appear several times) or plain `?`
 *   (numbered left to right); a driver whose server spells them differently
 *   rewrites them (PostgreSQL: `$N`), leaving `?` inside string literals
 *   alone.
 * - Parameters are 1-based, columns 0-based. Binding a number the SQL does
 *   not use is ignored (assembled lists bind every filter's parameter and
 *   the text names only some). An unbound parameter is NULL.
 * - Bound text and blobs are borrowed: the caller keeps them alive until the
 *   statement is reset; the driver copies nothing it does not need to.
 * - Failures return a negative WH_E* code with wh_error_set() already called
 *   (the message names the backend, e.g. "sqlite: ..."); success is 0.
 *   Preparing SQL of ours that does not compile is a bug: the core aborts.
 * - Integers are 64-bit, booleans 0/1 integers, times integers of
 *   milliseconds passed in from C (no server clock functions in queries).
 */
#ifndef WH_DB_DRIVER_H
#define WH_DB_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The layout of struct db_driver; a driver built for another is refused at open. */
#define DB_DRIVER_VERSION 2

struct db_dconn;
struct db_dstmt;

struct db_driver {
    /* DB_DRIVER_VERSION, as the driver was written against. */
    int version;
    /* "sqlite", "postgres": what configuration and messages call it. */
    const char *name;

    /* ---- connections ---- */

    /*
     * Opens one connection to `target` (SQLite: a file path; PostgreSQL: a
     * connection string), ready for statements: SQLite sets WAL, foreign
     * keys, its busy timeout. 0 or WH_ERROR (message set).
     */
    int (*open)(struct db_dconn **out, const char *target);
    /* Closes a connection and finalizes what is left of it. Accepts NULL. */
    void (*close)(struct db_dconn *c);
    /*
     * Runs SQL that returns no rows, possibly several statements separated
     * by ';' and without parameters (migrations, pragmas). 0 or a WH_E* code
     * classified as step() does.
     */
    int (*exec)(struct db_dconn *c, const char *sql);

    /* ---- statements ---- */

    /*
     * Prepares one statement (see the parameter convention above) to be kept
     * and reused for the connection's lifetime. 0 or WH_ERROR (message set).
     */
    int (*prepare)(struct db_dstmt **out, struct db_dconn *c, const char *sql);
    /* Frees a statement. Accepts NULL. */
    void (*finalize)(struct db_dstmt *s);
    /* Ends the statement's current run (if any) and clears its bindings. */
    void (*reset)(struct db_dstmt *s);
    /* True while the statement has been stepped and not yet reset or run to its end. */
    bool (*busy)(struct db_dstmt *s);

    /* Binds parameter `i` (1-based); numbers the SQL does not use are ignored. */
    void (*bind_i64)(struct db_dstmt *s, int i, int64_t v);
    /* Binds a double. */
    void (*bind_double)(struct db_dstmt *s, int i, double v);
    /* Binds text of `len` bytes (len < 0: up to the NUL), borrowed; NULL binds NULL. */
    void (*bind_text)(struct db_dstmt *s, int i, const char *v, ptrdiff_t len);
    /* Binds `len` bytes as a blob (bytea), borrowed; NULL binds NULL. */
    void (*bind_blob)(struct db_dstmt *s, int i, const void *v, size_t len);
    /* Binds NULL. */
    void (*bind_null)(struct db_dstmt *s, int i);

    /*
     * Runs the statement to its next row: 1 with a row to read, 0 when done
     * (and for statements that return no rows), or a negative code already
     * classified, with wh_error_set() called:
     *   WH_EEXISTS    a unique or primary key violation,
     *   WH_ENOTFOUND  a foreign key violation (a row it refers to is gone),
     *   WH_ENOSPC     the disk (or quota) is full,
     *   WH_EBUSY      a lock could not be had in time (or a serialization
     *                 failure the caller may retry),
     *   WH_ERROR      anything else.
     * A failed step leaves the statement to be reset by the caller.
     */
    int (*step)(struct db_dstmt *s);

    /* Column `col` (0-based) of the current row; NULL reads as 0. */
    int64_t (*col_i64)(struct db_dstmt *s, int col);
    /* As a double; NULL reads as 0. */
    double (*col_double)(struct db_dstmt *s, int col);
    /*
     * As NUL-terminated text, or NULL for SQL NULL; valid until the next
     * step or reset of `s`.
     */
    const char *(*col_text)(struct db_dstmt *s, int col);
    /* Length in bytes of the text or blob in the column (0 for NULL). */
    size_t (*col_bytes)(struct db_dstmt *s, int col);
    /* A blob column's bytes (NULL for NULL or empty), valid as col_text's. */
    const void *(*col_blob)(struct db_dstmt *s, int col);
    /* True when the column is SQL NULL. */
    bool (*col_is_null)(struct db_dstmt *s, int col);

    /* Rows inserted, updated or deleted by the connection's last statement. */
    int64_t (*changes)(struct db_dconn *c);

    /* ---- transactions ---- */

    /* True while the connection is inside a transaction (begun and not ended). */
    bool (*in_tx)(struct db_dconn *c);
    /*
     * Begins a write transaction that holds the database's one write lock
     * until it ends (SQLite: BEGIN IMMEDIATE; PostgreSQL: BEGIN and
     * pg_advisory_xact_lock), so writers queue instead of failing later.
     */
    int (*begin_write)(struct db_dconn *c);
    /* Commits; on failure the transaction may still be open (see in_tx). */
    int (*commit)(struct db_dconn *c);
    /* Rolls back the open transaction (a no-op when there is none). */
    int (*rollback)(struct db_dconn *c);
    /* Opens the one nested savepoint the core uses inside a transaction. */
    int (*savepoint)(struct db_dconn *c);
    /* Releases (keeps) the savepoint's work. */
    int (*release)(struct db_dconn *c);
    /* Undoes the work since the savepoint (the savepoint stays; release follows). */
    int (*rollback_to)(struct db_dconn *c);

    /*
     * A number that changes whenever any connection of any process or node
     * commits a change to the database, for caches of what was read from
     * it; 0 when it cannot be read. Cheap: called per request by caches.
     */
    uint64_t (*data_version)(struct db_dconn *c);

    /* ---- schema ---- */

    /*
     * The schema version the database is at (0: empty). Version N means the
     * same logical schema on every driver.
     */
    int (*schema_version_get)(struct db_dconn *c, int *out);
    /*
     * Records version `v`, inside the migration's transaction; a driver may
     * verify the migrated schema here and fail (SQLite checks foreign keys).
     */
    int (*schema_version_set)(struct db_dconn *c, int v);
    /*
     * The driver's migrations: migrations[N - 1] takes the schema from
     * version N - 1 to N, run by exec() in one write transaction each.
     */
    const char *const *migrations;
    /* How many (the newest schema version this driver knows). */
    int nmigrations;
    /*
     * Optional (NULL: nothing to do). Called with `enter` true before the
     * core reads the schema version to migrate, and false after the last
     * migration (whatever happened): PostgreSQL takes and drops a session
     * advisory lock so that nodes starting together migrate one at a time;
     * SQLite turns foreign keys off for the rebuilds of tables and on again.
     */
    int (*migrate_lock)(struct db_dconn *c, bool enter);

    /*
     * True when each connection keeps its own cache of the database that
     * another connection's commit throws away (SQLite's page cache): the
     * core then runs every write call on one connection of its own, so the
     * pages writers use stay cached (db_int.h, CONN_WRITE_OR_FAIL).
     */
    bool one_writer;
};

/* The drivers built in. */
extern const struct db_driver db_sqlite_driver;
#ifdef WH_HAVE_PG
extern const struct db_driver db_pg_driver;
#endif

#endif
