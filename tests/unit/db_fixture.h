/*
 * The database a db unit test runs against: by default the SQLite file the
 * test names; with WHARF_TEST_PG_DSN set (a libpq connection string or URI,
 * as scripts/pg-up.sh prints), a fresh schema of that PostgreSQL database
 * instead, one per file path (so per test case: each has its own temp
 * directory), opened through the postgres driver. The same cases then run on
 * both backends; `make unit-pg` does that against a throwaway server.
 *
 * test_db_exec / test_db_int run raw SQL beside the driver (a connection of
 * their own) for what the tests set up or check directly. A case whose SQL
 * only SQLite speaks (PRAGMA, EXPLAIN QUERY PLAN, migrating old files) skips
 * itself on PostgreSQL with test_db_sqlite_only().
 */
#ifndef WH_TEST_DB_FIXTURE_H
#define WH_TEST_DB_FIXTURE_H

#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db.h"

static inline const char *test_db_pg_dsn(void)
{
    const char *dsn = getenv("WHARF_TEST_PG_DSN");
    return dsn && *dsn ? dsn : NULL;
}

/* True when the tests run against PostgreSQL. */
static inline bool test_db_pg(void)
{
    return test_db_pg_dsn() != NULL;
}

#define TEST_DB_SCHEMAS_MAX 256
static char test_db_schemas[TEST_DB_SCHEMAS_MAX][64];
static int test_db_nschemas;
static pthread_mutex_t test_db_lock = PTHREAD_MUTEX_INITIALIZER; /* the two above */

/* The schema that stands for the SQLite file `path`. */
static inline void test_db_schema(char *out, size_t cap, const char *path)
{
    uint64_t h = 1469598103934665603u;
    for (const char *s = path; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    snprintf(out, cap, "wt_%ld_%016llx", (long)getpid(), (unsigned long long)h);
}

/* The connection string of `path`'s schema (search_path set to it). Caller frees. */
static inline char *test_db_target(const char *path)
{
    const char *dsn = test_db_pg_dsn();
    char schema[64];
    test_db_schema(schema, sizeof(schema), path);
    size_t cap = strlen(dsn) + 128;
    char *t = malloc(cap);
    if (!t)
        abort();
    if (strncmp(dsn, "postgresql://", 13) == 0 || strncmp(dsn, "postgres://", 11) == 0)
        snprintf(t, cap, "%s%coptions=-csearch_path%%3D%s", dsn, strchr(dsn, '?') ? '&' : '?',
                 schema);
    else
        snprintf(t, cap, "%s options='-csearch_path=%s'", dsn, schema);
    return t;
}

static inline PGconn *test_db_pg_connect(const char *target)
{
    PGconn *h = PQconnectdb(target);
    if (PQstatus(h) != CONNECTION_OK) {
        fprintf(stderr, "test db: connect %s: %s", target, PQerrorMessage(h));
        abort();
    }
    PQclear(PQexec(h, "SET client_min_messages = warning"));
    return h;
}

static void test_db_drop_schemas(void)
{
    if (test_db_nschemas == 0)
        return;
    PGconn *h = test_db_pg_connect(test_db_pg_dsn());
    /* a failed case may have left a connection holding a lock: never hang the exit on it */
    PQclear(PQexec(h, "SET lock_timeout = '5s'"));
    for (int i = 0; i < test_db_nschemas; i++) {
        char sql[96];
        snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", test_db_schemas[i]);
        PQclear(PQexec(h, sql));
    }
    PQfinish(h);
}

/*
 * Opens the database of the test: the SQLite file `path`, or `path`'s own
 * schema on PostgreSQL (created empty the first time, dropped when the test
 * program exits). As wh_db_open.
 */
static inline int test_db_open(wh_db **out, const char *path)
{
    if (!test_db_pg())
        return wh_db_open(out, path);
    char schema[64], sql[128];
    test_db_schema(schema, sizeof(schema), path);
    pthread_mutex_lock(&test_db_lock); /* tests open one schema from several threads */
    bool known = false;
    for (int i = 0; i < test_db_nschemas; i++)
        known = known || strcmp(test_db_schemas[i], schema) == 0;
    if (!known) {
        PGconn *h = test_db_pg_connect(test_db_pg_dsn());
        snprintf(sql, sizeof(sql), "CREATE SCHEMA IF NOT EXISTS %s", schema);
        PGresult *r = PQexec(h, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            fprintf(stderr, "test db: %s: %s", sql, PQerrorMessage(h));
            abort();
        }
        PQclear(r);
        PQfinish(h);
        if (test_db_nschemas == 0)
            atexit(test_db_drop_schemas);
        if (test_db_nschemas < TEST_DB_SCHEMAS_MAX)
            snprintf(test_db_schemas[test_db_nschemas++], sizeof(test_db_schemas[0]), "%s",
                     schema);
    }
    pthread_mutex_unlock(&test_db_lock);
    char *target = test_db_target(path);
    int rc = wh_db_open_driver(out, "postgres", target);
    free(target);
    return rc;
}

/* Runs SQL (no rows) on the test's database through a connection of its own; aborts on failure. */
static inline void test_db_exec(const char *path, const char *sql)
{
    if (test_db_pg()) {
        char *target = test_db_target(path);
        PGconn *h = test_db_pg_connect(target);
        PGresult *r = PQexec(h, sql);
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            fprintf(stderr, "test db: %s: %s", sql, PQerrorMessage(h));
            abort();
        }
        PQclear(r);
        PQfinish(h);
        free(target);
        return;
    }
    sqlite3 *h = NULL;
    char *msg = NULL;
    if (sqlite3_open(path, &h) != SQLITE_OK || sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "test db: %s: %s\n", sql, msg ? msg : sqlite3_errmsg(h));
        abort();
    }
    sqlite3_close(h);
}

/* The first column of the first row of `sql` as an integer (-1: no row). */
static inline int64_t test_db_int(const char *path, const char *sql)
{
    int64_t v = -1;
    if (test_db_pg()) {
        char *target = test_db_target(path);
        PGconn *h = test_db_pg_connect(target);
        PGresult *r = PQexec(h, sql);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            fprintf(stderr, "test db: %s: %s", sql, PQerrorMessage(h));
            abort();
        }
        if (PQntuples(r) > 0) {
            const char *s = PQgetvalue(r, 0, 0);
            v = PQgetisnull(r, 0, 0) ? 0 : s[0] == 't' ? 1 : s[0] == 'f' ? 0 : strtoll(s, NULL, 10);
        }
        PQclear(r);
        PQfinish(h);
        free(target);
        return v;
    }
    sqlite3 *h = NULL;
    sqlite3_stmt *s = NULL;
    if (sqlite3_open(path, &h) != SQLITE_OK ||
        sqlite3_prepare_v2(h, sql, -1, &s, NULL) != SQLITE_OK) {
        fprintf(stderr, "test db: %s: %s\n", sql, sqlite3_errmsg(h));
        abort();
    }
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(h);
    return v;
}

/* Skips the calling test case on PostgreSQL (SQL only SQLite speaks). */
#define test_db_sqlite_only()                                                                      \
    do {                                                                                           \
        if (test_db_pg())                                                                          \
            skip();                                                                                \
    } while (0)

#endif
