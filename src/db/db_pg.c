/*
 * db_pg.c: the PostgreSQL driver of db_driver.h, on libpq.
 *
 * Connections. The core lends logical connections (struct db_dconn) from
 * its own pool, one call at a time; behind them, each target (connection
 * string) has one bounded pool of server connections (struct pg_server), at
 * most db.pool_size of them. A
 * logical connection leases a server connection for one statement and gives
 * it back as soon as the result is fetched, except inside a transaction (or
 * while the migration lock is held), when it keeps its lease until the end:
 * everything the thread runs in between goes through that one lease, so a
 * thread inside a transaction never waits for the pool, only threads that
 * hold nothing do (on a condition variable, up to DB_PG_WAIT_MS, then
 * WH_EBUSY). Session state is never left behind on a returned connection.
 *
 * Statements. SQL is written with SQLite's `?N` / `?` parameters and
 * rewritten once to `$N` (string literals, quoted names and comments are
 * copied as they are). Each server connection prepares a statement once
 * (PQprepare, named "w<n>") the first time it runs that SQL with those
 * parameter types: integers go as int8, doubles as float8, blobs as bytea
 * in binary format, text and NULL as untyped so the server infers them from
 * where they are used, as SQLite's loose typing lets the queries expect.
 * Numbers the SQL skips are declared text and sent NULL.
 *
 * Results are fetched whole (PQexecPrepared), in text format, and step()
 * walks the rows. Whole, not single-row mode: the core and the entity files
 * run other statements on the same connection while a caller still walks
 * rows (db_rows callbacks write), which single-row mode forbids until the
 * last row is read; and the server connection goes back to the pool at
 * once. The lists wharf runs are paged (LIMIT), so a result stays small.
 * Text, not binary: integers arrive as int4, int8 or numeric (sum()),
 * booleans as bool, and strtoll/strtod read them all without a case per
 * type; bytea comes hex-escaped and is decoded on demand (PQunescapeBytea).
 *
 * Writes. begin_write is BEGIN plus pg_advisory_xact_lock on the schema's
 * write key: the entity code checks and then writes inside one transaction
 * (a quota, "is this the last admin?", "does the tag exist?"), which is
 * only right if no other writer runs in between; SQLite gets that from
 * BEGIN IMMEDIATE, PostgreSQL's READ COMMITTED does not, so writers queue on
 * the lock, across all nodes, as they do on SQLite's one writer. Readers
 * never take it.
 *
 * Data version: a hash of pg_current_snapshot(). The snapshot (oldest
 * running transaction, next transaction id, the ones running) changes when
 * any transaction that wrote anything, on any node, starts or ends, so two
 * equal values mean nothing was committed in between. No table, no trigger,
 * no write serialised on a counter row; the price is that writes to other
 * databases of the same cluster change it too (a cache reads again).
 *
 * Two differences from SQLite a caller may meet. A statement is prepared on
 * the server when it first runs (its parameter types come from the first
 * bindings), so SQL PostgreSQL rejects fails at step(), as WH_ERROR, not at
 * prepare(). And a failed statement inside a transaction aborts the whole
 * transaction on PostgreSQL (SQLite undoes only that statement): code that
 * goes on writing after a WH_EEXISTS in one transaction must run the attempt
 * in a savepoint (the core's nested transactions are savepoints).
 *
 * Schema: wharf_schema holds the version; migrations run under a session
 * advisory lock on the schema's migration key so that nodes starting
 * together migrate one at a time (the second finds the work done).
 * Advisory keys are (class, hash of current_schema()), so two wharfs in two
 * schemas of one database (the tests) never wait on each other.
 */
#include "db/db.h"
#include "db/db_driver.h"
#include "db/db_pg.h"

#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/common.h"
#include "common/metrics.h"

/* PostgreSQL type OIDs (catalog/pg_type.h, stable across releases). */
#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_TEXT 25
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_NUMERIC 1700

/* Advisory lock classes (first key): "wh" + 'w' (writers) / 'm' (migrations). */
#define LOCK_WRITE 0x776877
#define LOCK_MIGRATE 0x77686d

#define DB_PG_WAIT_MS 30000 /* longest wait for a pooled connection */
#define DB_PG_PARAMS_MAX 100 /* numbered parameters one statement may use */

static _Atomic int pool_size_default = 8;

/* ---- pool ---- */

struct pg_prep {
    char *sql;          /* the translated text (owned) */
    char sig[DB_PG_PARAMS_MAX + 1]; /* parameter kinds it was prepared for */
    uint64_t hash;
    unsigned name;      /* "w<name>" */
};

struct pg_server {
    PGconn *h;
    int32_t key;          /* hash of current_schema(), the advisory locks' second key */
    struct pg_prep *prep; /* open addressing, `nprep` used of `cap` */
    size_t nprep, cap;
    unsigned next_name;
    struct pg_server *next; /* the pool's idle list */
};

struct pg_pool {
    char *target;
    int size;             /* most server connections */
    int open;             /* server connections made */
    int in_use;           /* leased now */
    int refs;             /* logical connections */
    uint64_t waits;       /* leases that had to wait */
    struct pg_server *idle;
    pthread_cond_t cv;
    struct pg_pool *next;
};

static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER; /* guards every pool */
static struct pg_pool *pools;

struct db_dconn {
    struct pg_pool *pool;
    struct pg_server *lease; /* held in a transaction or under the migration lock */
    bool tx;                 /* inside BEGIN .. COMMIT/ROLLBACK */
    bool pinned;             /* the migration lock is held */
    int64_t changes;
};

/* One statement: its SQL, its bindings and the fetched result being walked. */
enum pk { PK_NULL = 0, PK_TEXT, PK_INT, PK_DOUBLE, PK_BLOB };
struct pparam {
    enum pk kind;
    const char *v;       /* what is sent (borrowed, or `own`/`num`) */
    int len;
    char *own;           /* copy of text given with a length */
    char num[32];        /* an integer or double as text */
};
struct db_dstmt {
    struct db_dconn *c;
    char *sql;             /* translated */
    int nparams;           /* highest $N */
    unsigned char used[DB_PG_PARAMS_MAX + 1]; /* numbers the SQL names */
    struct pparam p[DB_PG_PARAMS_MAX + 1];    /* [1..nparams] */
    uint64_t hash;
    PGresult *res;
    int row, nrows, ncols;
    bool busy;
    unsigned char **dec; /* bytea columns of the current row, decoded */
    size_t *declen;
    int decrow;
};

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

void wh_db_pool_size_set(int n)
{
    if (n > 0)
        atomic_store(&pool_size_default, n);
}

int wh_db_pool_stats(struct wh_db_pool_stats *out)
{
    struct wh_db_pool_stats t = {0};
    bool any = false;
    pthread_mutex_lock(&pools_lock);
    for (struct pg_pool *p = pools; p; p = p->next) {
        any = true;
        t.size += p->size;
        t.open += p->open;
        t.in_use += p->in_use;
        t.waits += (int64_t)p->waits;
    }
    pthread_mutex_unlock(&pools_lock);
    *out = t;
    return any ? 0 : WH_ENOTFOUND;
}

static void notice_quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg; /* "relation already exists, skipping" and the like */
}

static void server_free(struct pg_server *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->cap; i++)
        free(s->prep[i].sql);
    free(s->prep);
    PQfinish(s->h);
    free(s);
}

/* Message of a failed command: the server's primary message, else libpq's. */
static const char *res_msg(PGconn *h, const PGresult *r)
{
    const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!m || !*m)
        m = PQerrorMessage(h);
    return m && *m ? m : "error";
}

/*
 * Sets a new session up. lock_timeout: a writer waits at most this long for
 * the write lock or a row, as SQLite's busy timeout; then WH_EBUSY. UTF-8,
 * messages at warning and above only. Reads the schema the advisory keys
 * are derived from.
 */
static int session_setup(struct pg_server *s)
{
    int error = 0;
    PQsetNoticeProcessor(s->h, notice_quiet, NULL);
    PGresult *r = PQexec(s->h, "SET client_min_messages = warning; SET client_encoding = 'UTF8';"
                               " SET lock_timeout = '30s'; SELECT current_schema()");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        error = wh_error_set(WH_ERROR, "postgres: session setup: %s", res_msg(s->h, r));
    else if (PQgetisnull(r, 0, 0))
        error = wh_error_set(WH_ERROR, "postgres: no schema to use (search_path is empty)");
    else
        s->key = (int32_t)(uint32_t)fnv(PQgetvalue(r, 0, 0));
    PQclear(r);
    return error;
}

/* Connects one server connection and sets the session up. */
static int server_open(struct pg_server **out, const char *target)
{
    struct pg_server *s = wh_calloc(1, sizeof(*s));
    int error = 0;
    s->h = PQconnectdb(target);
    if (!s->h || PQstatus(s->h) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", s->h ? PQerrorMessage(s->h) : "out of memory");
        msg[strcspn(msg, "\n")] = '\0';
        error = wh_error_set(WH_ERROR, "postgres: connect: %s", msg);
        goto out;
    }
    if ((error = session_setup(s)) < 0)
        goto out;
    *out = s;
    s = NULL;
out:
    server_free(s);
    return error;
}

/* Connects a dropped server connection again: a new session, no statement prepared. */
static int server_reconnect(struct pg_server *s)
{
    PQreset(s->h);
    for (size_t i = 0; i < s->cap; i++)
        free(s->prep[i].sql);
    if (s->prep)
        memset(s->prep, 0, s->cap * sizeof(*s->prep));
    s->nprep = 0;
    if (PQstatus(s->h) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(s->h));
        msg[strcspn(msg, "\n")] = '\0';
        return wh_error_set(WH_ERROR, "postgres: reconnect: %s", msg);
    }
    return session_setup(s);
}

/* Timed wait helper: the absolute time `ms` from now on CLOCK_REALTIME. */
static struct timespec deadline_in(int ms)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/*
 * Leases a server connection for `c`: the one it holds, an idle one, a new
 * one while the pool has room, else waits for one to come back.
 */
static int lease(struct db_dconn *c, struct pg_server **out)
{
    if (c->lease) {
        *out = c->lease;
        return 0;
    }
    struct pg_pool *p = c->pool;
    struct pg_server *s = NULL;
    bool waited = false;
    int error = 0;
    struct timespec until = deadline_in(DB_PG_WAIT_MS);
    pthread_mutex_lock(&pools_lock);
    for (;;) {
        if (p->idle) {
            s = p->idle;
            p->idle = s->next;
            s->next = NULL;
            p->in_use++;
            break;
        }
        if (p->open < p->size) {
            p->open++;
            p->in_use++;
            pthread_mutex_unlock(&pools_lock);
            error = server_open(&s, p->target);
            pthread_mutex_lock(&pools_lock);
            if (error < 0) {
                p->open--;
                p->in_use--;
                pthread_cond_signal(&p->cv); /* its slot is free again */
            }
            break;
        }
        if (!waited) {
            waited = true;
            p->waits++;
            wh_metric_add(WH_METRIC_DB_POOL_WAITS, 1);
        }
        if (pthread_cond_timedwait(&p->cv, &pools_lock, &until) == ETIMEDOUT && !p->idle &&
            p->open >= p->size) {
            error = wh_error_set(WH_EBUSY, "postgres: all %d pooled connections stayed busy"
                                           " for %d s (db.pool_size)", p->size,
                                 DB_PG_WAIT_MS / 1000);
            break;
        }
    }
    pthread_mutex_unlock(&pools_lock);
    if (error < 0)
        return error;
    if (!s)
        abort(); /* server_open succeeded without a connection: our bug */
    /* A connection the server dropped is made again, with no statement prepared. */
    if (PQstatus(s->h) != CONNECTION_OK && (error = server_reconnect(s)) < 0) {
        pthread_mutex_lock(&pools_lock);
        p->in_use--;
        s->next = p->idle;
        p->idle = s;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&pools_lock);
        return error;
    }
    *out = s;
    return 0;
}

/* Gives `s` back unless `c` keeps it (transaction, migration lock). */
static void unlease(struct db_dconn *c, struct pg_server *s)
{
    if (c->lease == s)
        return;
    struct pg_pool *p = c->pool;
    pthread_mutex_lock(&pools_lock);
    p->in_use--;
    s->next = p->idle;
    p->idle = s;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&pools_lock);
}

/* Keeps or drops the lease as the session's state says (after each command). */
static void lease_update(struct db_dconn *c, struct pg_server *s)
{
    PGTransactionStatusType t = PQtransactionStatus(s->h);
    c->tx = t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
    if (c->tx || c->pinned) {
        c->lease = s;
        return;
    }
    c->lease = NULL;
    unlease(c, s);
}

static int pg_open(struct db_dconn **out, const char *target)
{
    struct pg_pool *p;
    pthread_mutex_lock(&pools_lock);
    for (p = pools; p; p = p->next)
        if (strcmp(p->target, target) == 0)
            break;
    if (!p) {
        p = wh_calloc(1, sizeof(*p));
        p->target = wh_strdup(target);
        p->size = atomic_load(&pool_size_default);
        pthread_cond_init(&p->cv, NULL);
        p->next = pools;
        pools = p;
    }
    p->refs++;
    bool first = p->open == 0;
    pthread_mutex_unlock(&pools_lock);
    struct db_dconn *c = wh_calloc(1, sizeof(*c));
    c->pool = p;
    if (!first) { /* the pool is up: a thread's connection costs nothing until it runs SQL */
        *out = c;
        return 0;
    }
    /* Connect once now, so that a wrong DSN fails the open, not the first query. */
    struct pg_server *s = NULL;
    int error = lease(c, &s);
    if (error < 0) {
        free(c);
        pthread_mutex_lock(&pools_lock);
        p->refs--;
        pthread_mutex_unlock(&pools_lock);
        return error;
    }
    unlease(c, s);
    *out = c;
    return 0;
}

static void pg_close(struct db_dconn *c)
{
    if (!c)
        return;
    struct pg_pool *p = c->pool, *dead = NULL;
    if (c->lease) {
        /* a transaction or the migration lock left open: the session is not fit to be
         * shared, so it ends here (the server rolls back and drops its locks) */
        pthread_mutex_lock(&pools_lock);
        p->in_use--;
        p->open--;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&pools_lock);
        server_free(c->lease);
        c->lease = NULL;
    }
    pthread_mutex_lock(&pools_lock);
    if (--p->refs == 0 && p->in_use == 0) {
        for (struct pg_pool **pp = &pools; *pp; pp = &(*pp)->next) {
            if (*pp == p) {
                *pp = p->next;
                break;
            }
        }
        dead = p;
    }
    pthread_mutex_unlock(&pools_lock);
    if (dead) {
        while (dead->idle) {
            struct pg_server *s = dead->idle;
            dead->idle = s->next;
            server_free(s);
        }
        pthread_cond_destroy(&dead->cv);
        free(dead->target);
        free(dead);
    }
    free(c);
}

/* ---- errors ---- */

/* Classifies a failed command (db_driver.h's step contract). */
static int classify(PGconn *h, const PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *m = res_msg(h, r);
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", m);
    msg[strcspn(msg, "\n")] = '\0';
    if (!state)
        return wh_error_set(WH_ERROR, "postgres: %s", msg);
    if (strcmp(state, "23505") == 0)
        return wh_error_set(WH_EEXISTS, "postgres: %s", msg);
    if (strcmp(state, "23503") == 0)
        return wh_error_set(WH_ENOTFOUND, "postgres: %s", msg);
    if (strcmp(state, "53100") == 0) /* disk_full */
        return wh_error_set(WH_ENOSPC, "postgres: %s", msg);
    /* serialization failure, deadlock, lock timeout: the caller may try again */
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
        strcmp(state, "55P03") == 0)
        return wh_error_set(WH_EBUSY, "postgres: %s", msg);
    return wh_error_set(WH_ERROR, "postgres: %s (SQLSTATE %s)", msg, state);
}

/* Runs parameterless SQL (one or several statements) on `c`. */
static int run_simple(struct db_dconn *c, const char *sql, PGresult **keep)
{
    struct pg_server *s = NULL;
    int error = lease(c, &s);
    if (error < 0)
        return error;
    PGresult *r = PQexec(s->h, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) {
        const char *n = PQcmdTuples(r);
        c->changes = n && *n ? strtoll(n, NULL, 10) : 0;
    } else {
        error = classify(s->h, r);
    }
    if (keep && error == 0)
        *keep = r;
    else
        PQclear(r);
    lease_update(c, s);
    return error;
}

static int pg_exec(struct db_dconn *c, const char *sql)
{
    return run_simple(c, sql, NULL);
}

/* ---- statements ---- */

static bool word_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

/* Whether `p` starts with "INDEXED BY <name>"; `*len` its length. */
static bool indexed_by(const char *p, size_t *len)
{
    size_t i = 0;
    if (strncasecmp(p, "INDEXED", 7) != 0 || !(p[7] == ' ' || p[7] == '\n'))
        return false;
    i = 7;
    while (p[i] == ' ' || p[i] == '\n')
        i++;
    if (strncasecmp(p + i, "BY", 2) != 0 || !(p[i + 2] == ' ' || p[i + 2] == '\n'))
        return false;
    i += 2;
    while (p[i] == ' ' || p[i] == '\n')
        i++;
    size_t name = i;
    while (word_char(p[i]))
        i++;
    if (i == name)
        return false;
    *len = i;
    return true;
}

/*
 * Rewrites `?N` and `?` to `$N` into a new string, copying string literals,
 * quoted names, dollar-quoted bodies and comments untouched. A plain `?`
 * takes the number after the largest so far (SQLite's rule). SQLite's
 * planner hint "INDEXED BY name" is dropped.
 */
static int translate(struct db_dstmt *st, const char *sql)
{
    size_t n = strlen(sql), skip = 0;
    char *out = wh_malloc(n * 2 + 1); /* "?" -> "$NN": at most 3 bytes for 1 */
    size_t o = 0;
    int max = 0;
    for (size_t i = 0; i < n;) {
        char ch = sql[i];
        if (ch == '\'' || ch == '"') { /* literal or quoted name; '' / "" escape themselves */
            size_t j = i + 1;
            while (j < n && !(sql[j] == ch && (j + 1 >= n || sql[j + 1] != ch)))
                j += (sql[j] == ch) ? 2 : 1;
            j = j < n ? j + 1 : n;
            memcpy(out + o, sql + i, j - i);
            o += j - i;
            i = j;
        } else if (ch == '-' && i + 1 < n && sql[i + 1] == '-') {
            size_t j = i;
            while (j < n && sql[j] != '\n')
                j++;
            memcpy(out + o, sql + i, j - i);
            o += j - i;
            i = j;
        } else if (ch == '/' && i + 1 < n && sql[i + 1] == '*') {
            const char *e = strstr(sql + i + 2, "*/");
            size_t j = e ? (size_t)(e - sql) + 2 : n;
            memcpy(out + o, sql + i, j - i);
            o += j - i;
            i = j;
        } else if (ch == '$' && i + 1 < n && sql[i + 1] == '$') {
            const char *e = strstr(sql + i + 2, "$$");
            size_t j = e ? (size_t)(e - sql) + 2 : n;
            memcpy(out + o, sql + i, j - i);
            o += j - i;
            i = j;
        } else if ((ch == 'I' || ch == 'i') && (i == 0 || !word_char(sql[i - 1])) &&
                   indexed_by(sql + i, &skip)) {
            i += skip; /* SQLite's planner hint: PostgreSQL plans on its own */
        } else if (ch == '?') {
            size_t j = i + 1;
            long num = 0;
            while (j < n && sql[j] >= '0' && sql[j] <= '9' && num <= DB_PG_PARAMS_MAX)
                num = num * 10 + (sql[j++] - '0');
            if (j == i + 1)
                num = max + 1;
            if (num < 1 || num > DB_PG_PARAMS_MAX) {
                free(out);
                return wh_error_set(WH_ERROR, "postgres: parameter number out of range in: %s",
                                    sql);
            }
            if (num > max)
                max = (int)num;
            st->used[num] = 1;
            o += (size_t)sprintf(out + o, "$%ld", num);
            i = j;
        } else {
            out[o++] = sql[i++];
        }
    }
    out[o] = '\0';
    st->sql = out;
    st->nparams = max;
    st->hash = fnv(out);
    return 0;
}

static int pg_prepare(struct db_dstmt **out, struct db_dconn *c, const char *sql)
{
    struct db_dstmt *st = wh_calloc(1, sizeof(*st));
    st->c = c;
    st->decrow = -1;
    int error = translate(st, sql);
    if (error < 0) {
        free(st);
        return error;
    }
    *out = st;
    return 0;
}

static void clear_decoded(struct db_dstmt *st)
{
    if (!st->dec)
        return;
    for (int i = 0; i < st->ncols; i++) {
        free(st->dec[i]);
        st->dec[i] = NULL;
    }
    st->decrow = -1;
}

static void clear_params(struct db_dstmt *st)
{
    for (int i = 1; i <= st->nparams; i++) {
        free(st->p[i].own);
        memset(&st->p[i], 0, sizeof(st->p[i]));
    }
}

/* Drops the fetched result (the bindings stay). */
static void pg_reset_result(struct db_dstmt *st)
{
    clear_decoded(st);
    free(st->dec);
    free(st->declen);
    st->dec = NULL;
    st->declen = NULL;
    PQclear(st->res);
    st->res = NULL;
    st->row = st->nrows = st->ncols = 0;
    st->busy = false;
}

static void pg_reset(struct db_dstmt *st)
{
    pg_reset_result(st);
    clear_params(st);
}

static void pg_finalize(struct db_dstmt *st)
{
    if (!st)
        return;
    pg_reset(st);
    free(st->sql);
    free(st);
}

static bool pg_busy(struct db_dstmt *st)
{
    return st->busy;
}

static struct pparam *param(struct db_dstmt *st, int i)
{
    if (i < 1 || i > st->nparams || !st->used[i])
        return NULL; /* a number the SQL does not use */
    struct pparam *p = &st->p[i];
    free(p->own);
    memset(p, 0, sizeof(*p));
    return p;
}

static void pg_bind_i64(struct db_dstmt *st, int i, int64_t v)
{
    struct pparam *p = param(st, i);
    if (!p)
        return;
    p->kind = PK_INT;
    snprintf(p->num, sizeof(p->num), "%lld", (long long)v);
    p->v = p->num;
}

static void pg_bind_double(struct db_dstmt *st, int i, double v)
{
    struct pparam *p = param(st, i);
    if (!p)
        return;
    p->kind = PK_DOUBLE;
    snprintf(p->num, sizeof(p->num), "%.17g", v);
    p->v = p->num;
}

static void pg_bind_text(struct db_dstmt *st, int i, const char *v, ptrdiff_t len)
{
    struct pparam *p = param(st, i);
    if (!p || !v)
        return; /* NULL */
    p->kind = PK_TEXT;
    if (len < 0) {
        p->v = v; /* borrowed, NUL-terminated */
    } else {
        /* the text protocol reads up to a NUL: a counted string needs its own copy */
        p->own = wh_malloc((size_t)len + 1);
        memcpy(p->own, v, (size_t)len);
        p->own[len] = '\0';
        p->v = p->own;
    }
}

static void pg_bind_blob(struct db_dstmt *st, int i, const void *v, size_t len)
{
    struct pparam *p = param(st, i);
    if (!p || !v)
        return;
    p->kind = PK_BLOB;
    p->v = len ? v : "";
    p->len = (int)len; /* blobs wharf stores are far below 2 GiB */
}

static void pg_bind_null(struct db_dstmt *st, int i)
{
    (void)param(st, i);
}

/*
 * How the parameters are declared to the server, tier by tier: 0 as bound
 * (int8, float8, bytea; text and NULL untyped), 1 everything untyped (an
 * integer bound where the SQL compares text), 2 untyped ones as text (a
 * parameter only ever tested with IS NULL).
 */
static Oid param_type(const struct db_dstmt *st, int i, int tier)
{
    if (!st->used[i])
        return OID_TEXT;
    switch (st->p[i].kind) {
    case PK_INT:
        return tier == 1 ? 0 : OID_INT8;
    case PK_DOUBLE:
        return tier == 1 ? 0 : OID_FLOAT8;
    case PK_BLOB:
        return OID_BYTEA;
    default:
        return tier == 2 ? OID_TEXT : 0;
    }
}

static void sig_of(const struct db_dstmt *st, char *sig)
{
    static const char kinds[] = "ntidb";
    for (int i = 1; i <= st->nparams; i++)
        sig[i - 1] = st->used[i] ? kinds[st->p[i].kind] : '-';
    sig[st->nparams] = '\0';
}

/* The name `s` prepared `st`'s SQL under for these parameter kinds, preparing it first. */
static int prepared(struct pg_server *s, struct db_dstmt *st, char *name, size_t cap)
{
    char sig[DB_PG_PARAMS_MAX + 1];
    sig_of(st, sig);
    uint64_t h = st->hash ^ fnv(sig);
    size_t k = 0;
    if (s->cap) {
        for (k = h % s->cap; s->prep[k].sql; k = (k + 1) % s->cap) {
            if (s->prep[k].hash == h && strcmp(s->prep[k].sql, st->sql) == 0 &&
                strcmp(s->prep[k].sig, sig) == 0) {
                snprintf(name, cap, "w%u", s->prep[k].name);
                return 0;
            }
        }
    }
    if ((s->nprep + 1) * 2 > s->cap) { /* grow: at most half full */
        size_t ncap = s->cap ? s->cap * 2 : 64;
        struct pg_prep *n = wh_calloc(ncap, sizeof(*n));
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->prep[i].sql)
                continue;
            size_t j = s->prep[i].hash % ncap;
            while (n[j].sql)
                j = (j + 1) % ncap;
            n[j] = s->prep[i];
        }
        free(s->prep);
        s->prep = n;
        s->cap = ncap;
        for (k = h % s->cap; s->prep[k].sql; k = (k + 1) % s->cap)
            ;
    }
    unsigned id = ++s->next_name;
    snprintf(name, cap, "w%u", id);
    Oid types[DB_PG_PARAMS_MAX];
    PGresult *r = NULL;
    int error = 0;
    /*
     * A failed Parse aborts the transaction it happens in: inside one, each
     * try runs under a savepoint, rolled back to when the try fails.
     */
    bool in_tx = PQtransactionStatus(s->h) == PQTRANS_INTRANS;
    for (int tier = 0; tier < 3; tier++) {
        for (int i = 1; i <= st->nparams; i++)
            types[i - 1] = param_type(st, i, tier);
        PQclear(r);
        if (in_tx)
            PQclear(PQexec(s->h, "SAVEPOINT wh_prepare"));
        r = PQprepare(s->h, name, st->sql, st->nparams, types);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (in_tx)
            PQclear(PQexec(s->h, ok ? "RELEASE wh_prepare"
                                    : "ROLLBACK TO wh_prepare; RELEASE wh_prepare"));
        if (ok)
            break;
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        /* undefined function / datatype mismatch, then indeterminate or ambiguous types */
        bool untyped = state && (strcmp(state, "42P18") == 0 || strcmp(state, "42P08") == 0);
        bool retry = state && ((tier == 0 && (untyped || strcmp(state, "42883") == 0 ||
                                              strcmp(state, "42804") == 0)) ||
                               (tier == 1 && untyped));
        if (!retry)
            break;
    }
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        error = classify(s->h, r);
        wh_log_error("postgres prepare failed: %s (%s)", wh_error_msg(), st->sql);
    } else {
        s->prep[k].sql = wh_strdup(st->sql);
        memcpy(s->prep[k].sig, sig, sizeof(sig));
        s->prep[k].hash = h;
        s->prep[k].name = id;
        s->nprep++;
    }
    PQclear(r);
    return error;
}

/* Runs the statement on the server and keeps the whole result. */
static int execute(struct db_dstmt *st)
{
    struct db_dconn *c = st->c;
    struct pg_server *s = NULL;
    char name[16];
    const char *values[DB_PG_PARAMS_MAX];
    int lengths[DB_PG_PARAMS_MAX], formats[DB_PG_PARAMS_MAX];
    int error = lease(c, &s);
    if (error < 0)
        return error;
    if ((error = prepared(s, st, name, sizeof(name))) < 0) {
        lease_update(c, s);
        return error;
    }
    for (int i = 1; i <= st->nparams; i++) {
        const struct pparam *p = &st->p[i];
        values[i - 1] = p->kind == PK_NULL ? NULL : p->v;
        lengths[i - 1] = p->kind == PK_BLOB ? p->len : 0;
        formats[i - 1] = p->kind == PK_BLOB ? 1 : 0;
    }
    bool idle = PQtransactionStatus(s->h) == PQTRANS_IDLE;
    PGresult *r = PQexecPrepared(s->h, name, st->nparams, values, lengths, formats, 0);
    ExecStatusType t = PQresultStatus(r);
    /*
     * The server dropped the connection while it sat in the pool (a restart, a
     * failover, an idle timeout): outside a transaction nothing is lost, so the
     * statement runs again once on a new session.
     */
    if (t == PGRES_FATAL_ERROR && idle && PQstatus(s->h) == CONNECTION_BAD &&
        server_reconnect(s) == 0 && prepared(s, st, name, sizeof(name)) == 0) {
        PQclear(r);
        r = PQexecPrepared(s->h, name, st->nparams, values, lengths, formats, 0);
        t = PQresultStatus(r);
    }
    if (t == PGRES_TUPLES_OK || t == PGRES_COMMAND_OK) {
        const char *n = PQcmdTuples(r);
        c->changes = n && *n ? strtoll(n, NULL, 10) : 0;
        st->res = r;
        st->nrows = t == PGRES_TUPLES_OK ? PQntuples(r) : 0;
        st->ncols = PQnfields(r);
        st->row = -1;
    } else {
        error = classify(s->h, r);
        PQclear(r);
    }
    lease_update(c, s);
    return error;
}

static int pg_step(struct db_dstmt *st)
{
    int error;
    if (!st->res) {
        if ((error = execute(st)) < 0)
            return error;
        st->busy = true;
    } else if (!st->busy) {
        /* stepped again after its end: run again, as SQLite's step does */
        pg_reset_result(st);
        if ((error = execute(st)) < 0)
            return error;
        st->busy = true;
    }
    clear_decoded(st);
    if (++st->row < st->nrows)
        return 1;
    st->busy = false;
    return 0;
}

static bool in_row(const struct db_dstmt *st, int col)
{
    return st->res && st->row >= 0 && st->row < st->nrows && col >= 0 && col < st->ncols;
}

static bool pg_col_is_null(struct db_dstmt *st, int col)
{
    return !in_row(st, col) || PQgetisnull(st->res, st->row, col);
}

/* The decoded bytes of a bytea column of the current row. */
static const unsigned char *bytea(struct db_dstmt *st, int col, size_t *len)
{
    if (!st->dec) {
        st->dec = wh_calloc((size_t)st->ncols, sizeof(*st->dec));
        st->declen = wh_calloc((size_t)st->ncols, sizeof(*st->declen));
    }
    if (!st->dec[col]) {
        size_t n = 0;
        unsigned char *b =
            PQunescapeBytea((const unsigned char *)PQgetvalue(st->res, st->row, col), &n);
        if (!b)
            abort(); /* out of memory, as wh_malloc */
        /* a copy one byte longer, so that col_text hands it out NUL-terminated */
        unsigned char *copy = wh_malloc(n + 1);
        memcpy(copy, b, n);
        copy[n] = '\0';
        PQfreemem(b);
        st->dec[col] = copy;
        st->declen[col] = n;
    }
    *len = st->declen[col];
    return st->dec[col];
}

static int64_t pg_col_i64(struct db_dstmt *st, int col)
{
    if (pg_col_is_null(st, col))
        return 0;
    const char *v = PQgetvalue(st->res, st->row, col);
    switch (PQftype(st->res, col)) {
    case OID_BOOL:
        return v[0] == 't';
    case OID_FLOAT4:
    case OID_FLOAT8:
    case OID_NUMERIC:
        return (int64_t)strtod(v, NULL); /* truncated, as SQLite's CAST */
    default:
        return strtoll(v, NULL, 10);
    }
}

static double pg_col_double(struct db_dstmt *st, int col)
{
    if (pg_col_is_null(st, col))
        return 0;
    const char *v = PQgetvalue(st->res, st->row, col);
    if (PQftype(st->res, col) == OID_BOOL)
        return v[0] == 't';
    return strtod(v, NULL);
}

static const char *pg_col_text(struct db_dstmt *st, int col)
{
    if (pg_col_is_null(st, col))
        return NULL;
    if (PQftype(st->res, col) == OID_BYTEA) {
        size_t n;
        return (const char *)bytea(st, col, &n);
    }
    if (PQftype(st->res, col) == OID_BOOL) /* SQLite's booleans read as 1 / 0 */
        return PQgetvalue(st->res, st->row, col)[0] == 't' ? "1" : "0";
    return PQgetvalue(st->res, st->row, col);
}

static size_t pg_col_bytes(struct db_dstmt *st, int col)
{
    if (pg_col_is_null(st, col))
        return 0;
    if (PQftype(st->res, col) == OID_BYTEA) {
        size_t n;
        bytea(st, col, &n);
        return n;
    }
    if (PQftype(st->res, col) == OID_BOOL)
        return 1;
    return (size_t)PQgetlength(st->res, st->row, col);
}

static const void *pg_col_blob(struct db_dstmt *st, int col)
{
    if (pg_col_is_null(st, col))
        return NULL;
    size_t n;
    const void *b;
    if (PQftype(st->res, col) == OID_BYTEA) {
        b = bytea(st, col, &n);
    } else { /* text read as bytes, as SQLite's blob accessor does */
        b = pg_col_text(st, col);
        n = pg_col_bytes(st, col);
    }
    return n ? b : NULL;
}

static int64_t pg_changes(struct db_dconn *c)
{
    return c->changes;
}

/* ---- transactions ---- */

static bool pg_in_tx(struct db_dconn *c)
{
    return c->tx;
}

static int pg_begin_write(struct db_dconn *c)
{
    struct pg_server *s = NULL;
    int error = lease(c, &s);
    if (error < 0)
        return error;
    char sql[128];
    /* one round trip: the lock is taken as the transaction's first act */
    snprintf(sql, sizeof(sql), "BEGIN; SELECT pg_advisory_xact_lock(%d, %d)", LOCK_WRITE,
             (int)s->key);
    c->lease = s; /* held from here: run_simple leases the same one */
    error = run_simple(c, sql, NULL);
    if (error < 0 && c->tx) { /* BEGIN went through, the lock did not */
        run_simple(c, "ROLLBACK", NULL);
    }
    return error;
}

static int pg_commit(struct db_dconn *c)
{
    if (!c->lease)
        return 0;
    return run_simple(c, "COMMIT", NULL);
}

static int pg_rollback(struct db_dconn *c)
{
    if (!c->lease || !c->tx)
        return 0;
    return run_simple(c, "ROLLBACK", NULL);
}

static int pg_savepoint(struct db_dconn *c)
{
    return run_simple(c, "SAVEPOINT wh_inner", NULL);
}

static int pg_release(struct db_dconn *c)
{
    return run_simple(c, "RELEASE wh_inner", NULL);
}

static int pg_rollback_to(struct db_dconn *c)
{
    return run_simple(c, "ROLLBACK TO wh_inner", NULL);
}

static uint64_t pg_data_version(struct db_dconn *c)
{
    PGresult *r = NULL;
    if (run_simple(c, "SELECT pg_current_snapshot()::text", &r) < 0)
        return 0;
    uint64_t v = 0;
    if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        v = fnv(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v ? v : 1; /* 0 means unknown */
}

/* ---- schema ---- */

static int pg_schema_version_get(struct db_dconn *c, int *out)
{
    PGresult *r = NULL;
    int error;
    /* a new database has no wharf_schema yet: version 0 */
    if ((error = run_simple(c, "SELECT to_regclass('wharf_schema') IS NOT NULL", &r)) < 0)
        return error;
    bool have = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    r = NULL;
    *out = 0;
    if (!have)
        return 0;
    if ((error = run_simple(c, "SELECT coalesce(max(version), 0) FROM wharf_schema", &r)) < 0)
        return error;
    if (PQntuples(r) == 1)
        *out = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

static int pg_schema_version_set(struct db_dconn *c, int v)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "UPDATE wharf_schema SET version = %d", v);
    return run_simple(c, sql, NULL);
}

static int pg_migrate_lock(struct db_dconn *c, bool enter)
{
    struct pg_server *s = NULL;
    int error;
    char sql[256];
    if (enter) {
        if ((error = lease(c, &s)) < 0)
            return error;
        c->lease = s;
        c->pinned = true;
        snprintf(sql, sizeof(sql),
                 "SELECT pg_advisory_lock(%d, %d);"
                 " CREATE TABLE IF NOT EXISTS wharf_schema(version INTEGER NOT NULL);"
                 " INSERT INTO wharf_schema(version) SELECT 0"
                 "  WHERE NOT EXISTS (SELECT 1 FROM wharf_schema)",
                 LOCK_MIGRATE, (int)s->key);
        /* lock_timeout does not stop a migration wait: another node may take its time */
        if ((error = run_simple(c, "SET lock_timeout = 0", NULL)) == 0)
            error = run_simple(c, sql, NULL);
        if (error < 0) {
            run_simple(c, "SELECT pg_advisory_unlock_all(); SET lock_timeout = '30s'", NULL);
            c->pinned = false;
            c->lease = NULL;
            lease_update(c, s);
        }
        return error;
    }
    if (!c->pinned)
        return 0;
    s = c->lease;
    if (c->tx)
        run_simple(c, "ROLLBACK", NULL);
    error = run_simple(c, "SELECT pg_advisory_unlock_all(); SET lock_timeout = '30s'", NULL);
    c->pinned = false;
    c->lease = NULL;
    lease_update(c, s);
    return error;
}

const struct db_driver db_pg_driver = {
    .version = DB_DRIVER_VERSION,
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .exec = pg_exec,
    .prepare = pg_prepare,
    .finalize = pg_finalize,
    .reset = pg_reset,
    .busy = pg_busy,
    .bind_i64 = pg_bind_i64,
    .bind_double = pg_bind_double,
    .bind_text = pg_bind_text,
    .bind_blob = pg_bind_blob,
    .bind_null = pg_bind_null,
    .step = pg_step,
    .col_i64 = pg_col_i64,
    .col_double = pg_col_double,
    .col_text = pg_col_text,
    .col_bytes = pg_col_bytes,
    .col_blob = pg_col_blob,
    .col_is_null = pg_col_is_null,
    .changes = pg_changes,
    .in_tx = pg_in_tx,
    .begin_write = pg_begin_write,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .savepoint = pg_savepoint,
    .release = pg_release,
    .rollback_to = pg_rollback_to,
    .data_version = pg_data_version,
    .schema_version_get = pg_schema_version_get,
    .schema_version_set = pg_schema_version_set,
    .migrations = db_pg_migrations,
    .nmigrations = DB_PG_SCHEMA_VERSION,
    .migrate_lock = pg_migrate_lock,
};
