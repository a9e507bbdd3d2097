/*
 * db_core.c: the part of db.h that is the same on every backend.
 *
 * Connections are opened through the driver (db_driver.h) and pooled: a
 * call takes one for as long as it runs (db_conn, nested calls of the same
 * thread sharing it) and gives it back when it returns (db_conn_put), and the
 * pool hands out the one given back last. On SQLite that matters: each
 * connection keeps its own page cache and drops all of it when another
 * connection commits, so the fewer connections take turns, the more of their
 * caches survive (with one per thread, as many as the server has threads).
 * For the same reason, on a driver that says so (one_writer: SQLite), calls
 * that write take one connection kept for them (db_conn_write), so that the
 * pages writers touch stay cached from one write to the next.
 * Each connection prepares its statements once and keeps them in two caches:
 * by the address of a static SQL string (db_stmt) and by the text of an
 * assembled one (db_stmt_text).
 * Writers begin with the driver's begin_write, which takes the database's
 * one write lock, so two writers queue instead of failing on an upgrade;
 * inside wh_db_batch each call's own transaction is a savepoint. Migrations
 * are the driver's numbered scripts, applied at open.
 */
#include "db/db_int.h"

#include "common/metrics.h"

#include <assert.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH_WHOLE 2 /* conn.batch of wh_db_batch_whole */

#define ADHOC_SLOTS 512 /* statements of the entity files, cached by SQL pointer */
#define BUILT_SLOTS 128 /* statements assembled per filter combination, cached by text */
#define BUILT_PROBE 8   /* slots tried before one is reused */
#define WRITER_WAIT_MS 10000 /* longest wait for the writer connection (WH_EBUSY) */
#define WRITER_YIELD_MS 50   /* longest a background writer lets request threads go first */
#define WRITER_READ_WAIT_US 2000 /* longest a write waits for a read that borrowed the writer */

struct conn {
    struct db_dconn *h;
    const struct db_driver *d;
    int err; /* the code of the last failed step, until db_fail/db_constraint reads it */
    db_stmt hot[DB_HOT_SLOTS]; /* db_stmt_hot, by slot */
    struct {
        const char *sql;
        db_stmt s;
    } adhoc[ADHOC_SLOTS];
    struct {
        char *sql; /* owned copy of the text */
        uint64_t hash;
        db_stmt s;
    } built[BUILT_SLOTS];
    int batch;         /* inside wh_db_batch: transactions are savepoints of its one
                        * (BATCH_WHOLE: wh_db_batch_whole, nothing of them) */
    bool scan_queued;  /* the open transaction queued a scan job (db_note_scan_queued) */
    struct wh_db *db;  /* the handle it belongs to */
    struct conn *next; /* all connections of the db, for close */
    struct conn *idle_next; /* the pool's idle list, last given back first */
    int depth;              /* calls of the thread holding it that have not returned */
    uint32_t serial;        /* this connection among those the process opened */
    bool is_writer;         /* the db's writer connection (set before it is first lent) */
};

struct wh_db {
    const struct db_driver *d;
    char *target;    /* what the driver opens: a path, a connection string */
    pthread_key_t key;    /* the connection the calling thread holds, if any */
    pthread_mutex_t lock; /* guards `conns`, `idle` and `nidle` */
    struct conn *conns;
    struct conn *idle; /* not held by any thread, last given back first */
    int nidle;
    /* the writer connection (drivers with one_writer; see db_conn_write) */
    pthread_mutex_t wlock; /* guards the five below */
    pthread_cond_t wfree;  /* the writer connection was given back */
    struct conn *writer;   /* opened on first use */
    bool writer_held;
    bool writer_reading;      /* held by a read call (db_conn), not a write */
    int writer_fg, writer_bg; /* request threads waiting for it; background ones giving way */
    int writer_wait_ms;       /* longest wait for it (WRITER_WAIT_MS; db_set_writer_wait) */
    void (*on_scan_queued)(void *payload); /* wh_db_on_scan_queued */
    void *on_scan_queued_payload;
    int (*blob_check)(const char *digest, void *payload); /* wh_db_on_blob_recorded */
    void *blob_check_payload;
    char *node; /* wh_db_set_node; NULL: "" */
    int64_t scan_lease_ms; /* wh_db_set_scan_lease */
    int64_t scan_attempts, scan_retry_ms; /* wh_db_set_scan_retry */
};

/* ---- connections and statements ---- */

static void conn_close(struct conn *c)
{
    for (int i = 0; i < DB_HOT_SLOTS; i++)
        c->d->finalize(c->hot[i].h);
    for (int i = 0; i < ADHOC_SLOTS; i++)
        c->d->finalize(c->adhoc[i].s.h);
    for (int i = 0; i < BUILT_SLOTS; i++) {
        c->d->finalize(c->built[i].s.h);
        free(c->built[i].sql);
    }
    c->d->close(c->h);
    free(c);
}

static int conn_open(struct conn **out, wh_db *db)
{
    static _Atomic uint32_t serials;
    struct conn *c = wh_calloc(1, sizeof(*c));
    c->d = db->d;
    c->db = db;
    c->serial = ++serials;
    int error = c->d->open(&c->h, db->target);
    if (error < 0) {
        free(c);
        return error;
    }
    *out = c;
    return 0;
}

/* Unlinks `c` from the list of the db's connections; under db->lock. */
static void conn_unlink(wh_db *db, struct conn *c)
{
    for (struct conn **pp = &db->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            return;
        }
    }
}

static _Thread_local bool tl_background;

/*
 * The writer connection for a read of a request thread, when it is free and
 * nobody waits for it (NULL otherwise): its page cache is the one no other
 * commit drops, where a pooled connection's is dropped by every commit of the
 * writer. A write that finds it lent to a read waits for the read a short
 * while only (WRITER_READ_WAIT_US), then writes on a pooled connection.
 */
static struct conn *writer_lend(wh_db *db)
{
    struct conn *c = NULL;
    if (!db->d->one_writer || tl_background || pthread_mutex_trylock(&db->wlock) != 0)
        return NULL;
    if (db->writer && !db->writer_held && db->writer_fg == 0 && db->writer_bg == 0) {
        db->writer_held = true;
        db->writer_reading = true;
        c = db->writer;
    }
    pthread_mutex_unlock(&db->wlock);
    return c;
}

/* A connection of the pool for the calling thread, which holds none: the idle
 * one given back last, else a new one. */
static struct conn *pool_take(wh_db *db)
{
    struct conn *c;
    pthread_mutex_lock(&db->lock);
    if ((c = db->idle) != NULL) {
        db->idle = c->idle_next;
        db->nidle--;
    }
    pthread_mutex_unlock(&db->lock);
    if (!c) {
        if (conn_open(&c, db) < 0)
            return NULL;
        pthread_mutex_lock(&db->lock);
        c->next = db->conns;
        db->conns = c;
        pthread_mutex_unlock(&db->lock);
    }
    c->idle_next = NULL;
    c->depth = 1;
    pthread_setspecific(db->key, c);
    return c;
}

struct conn *db_conn(wh_db *db)
{
    struct conn *c = pthread_getspecific(db->key);
    if (c) {
        assert(c->depth > 0);
        c->depth++; /* a call inside a call: the same connection (its transaction) */
        return c;
    }
    if ((c = writer_lend(db)) != NULL) {
        c->depth = 1;
        pthread_setspecific(db->key, c);
        return c;
    }
    return pool_take(db);
}

void wh_db_thread_background(bool on)
{
    tl_background = on;
}

bool db_thread_background(void)
{
    return tl_background;
}

/*
 * Marks the writer connection free and wakes who must know; under db->wlock.
 * One waiter when all waiting are of one kind (any of them may take it);
 * all of them when background threads wait beside request threads, since the
 * one a signal picked might be a background thread that must let the
 * request go first, and goes back to sleep without passing the signal on.
 */
static void writer_free(wh_db *db)
{
    db->writer_held = false;
    db->writer_reading = false;
    if (db->writer_fg > 0 && db->writer_bg > 0)
        pthread_cond_broadcast(&db->wfree);
    else if (db->writer_fg > 0 || db->writer_bg > 0)
        pthread_cond_signal(&db->wfree);
}

/* Waits on db->wfree until monotonic time `until_us` at the latest. */
static void writer_wait_until(wh_db *db, int64_t now_us, int64_t until_us)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t us = until_us - now_us;
    ts.tv_sec += us / 1000000;
    ts.tv_nsec += (us % 1000000) * 1000;
    ts.tv_sec += ts.tv_nsec / 1000000000;
    ts.tv_nsec %= 1000000000;
    pthread_cond_timedwait(&db->wfree, &db->wlock, &ts);
}

/*
 * Takes the writer connection for the calling thread: at once when it is
 * free, else after the thread holding it gives it back. Request threads go
 * first: a background thread (wh_db_thread_background) does not take it
 * while one waits, for at most WRITER_YIELD_MS. When a read has borrowed it
 * (writer_lend), the wait for that read is WRITER_READ_WAIT_US at most: 1
 * then, the caller writes on a pooled connection instead. WH_EBUSY after
 * db->writer_wait_ms. Under db->wlock.
 */
static int writer_take(wh_db *db)
{
    bool bg = tl_background;
    int64_t start = wh_monotonic_us(), now = start;
    const int64_t wait_end = start + (int64_t)db->writer_wait_ms * 1000;
    const int64_t yield_end = start + WRITER_YIELD_MS * 1000;
    const int64_t read_end = start + WRITER_READ_WAIT_US;
    if (!db->writer_held && (bg ? db->writer_fg == 0 : true)) {
        db->writer_held = true;
        return 0;
    }
    if (bg)
        db->writer_bg++;
    else
        db->writer_fg++;
    int rc = 0;
    while (db->writer_held || (bg && db->writer_fg > 0 && now < yield_end)) {
        if (now >= wait_end) {
            rc = wh_error_set(WH_EBUSY, "%s: the database stayed locked for %d ms",
                              db->d->name, db->writer_wait_ms);
            break;
        }
        if (db->writer_held && db->writer_reading && now >= read_end) {
            rc = 1;
            break;
        }
        int64_t until = wait_end;
        if (bg && db->writer_fg > 0 && now < yield_end && yield_end < until)
            until = yield_end;
        if (db->writer_held && db->writer_reading && read_end < until)
            until = read_end;
        writer_wait_until(db, now, until);
        now = wh_monotonic_us();
    }
    if (bg) {
        db->writer_bg--;
    } else {
        db->writer_fg--;
        /* what /metrics reports as waits for the write lock: this is where they happen */
        wh_metric_add(WH_METRIC_DB_LOCK_WAITS, 1);
        wh_metric_add(WH_METRIC_DB_LOCK_WAIT_US, (uint64_t)(now - start));
    }
    if (rc == 0)
        db->writer_held = true;
    else if (!bg && db->writer_fg == 0 && db->writer_bg > 0)
        pthread_cond_broadcast(&db->wfree); /* background writers giving way go on */
    return rc;
}

void db_set_writer_wait(wh_db *db, int ms)
{
    pthread_mutex_lock(&db->wlock);
    db->writer_wait_ms = ms;
    pthread_mutex_unlock(&db->wlock);
}

int db_conn_write(wh_db *db, struct conn **out)
{
    struct conn *c = pthread_getspecific(db->key);
    if (c || !db->d->one_writer) {
        /* a write inside a call (its caller's connection) or a driver without one */
        *out = db_conn(db);
        return *out ? 0 : WH_ERROR;
    }
    *out = NULL;
    pthread_mutex_lock(&db->wlock);
    int error = writer_take(db);
    if (error == 1) {
        /* lent to a read that outlasted the short wait: a pooled connection,
         * through SQLite's own lock, rather than a wait as long as the read */
        pthread_mutex_unlock(&db->wlock);
        *out = pool_take(db);
        return *out ? 0 : WH_ERROR;
    }
    c = db->writer;
    pthread_mutex_unlock(&db->wlock);
    if (error < 0)
        return error;
    if (!c) {
        /* first use: opened outside wlock (opening runs statements that take the
         * checkpoint gate), by this thread alone, which holds the writer already */
        if (conn_open(&c, db) < 0) {
            pthread_mutex_lock(&db->wlock);
            writer_free(db);
            pthread_mutex_unlock(&db->wlock);
            return WH_ERROR;
        }
        c->is_writer = true;
        pthread_mutex_lock(&db->lock);
        c->next = db->conns;
        db->conns = c;
        pthread_mutex_unlock(&db->lock);
        pthread_mutex_lock(&db->wlock);
        db->writer = c;
        pthread_mutex_unlock(&db->wlock);
    }
    assert(c->is_writer && c->depth == 0);
    c->depth = 1;
    pthread_setspecific(db->key, c);
    *out = c;
    return 0;
}

void db_writer_queue(wh_db *db, int *fg_waiting, int *bg_yielding)
{
    pthread_mutex_lock(&db->wlock);
    *fg_waiting = db->writer_fg;
    *bg_yielding = db->writer_bg;
    pthread_mutex_unlock(&db->wlock);
}

void db_conn_put(struct conn *c)
{
    if (!c || --c->depth > 0)
        return;
    wh_db *db = c->db;
    if (c->batch || c->d->in_tx(c->h)) {
        /* a call returned inside its transaction: our bug; never lend it open */
        wh_log_error("database connection given back inside a transaction: rolled back");
        c->batch = 0;
        c->scan_queued = false;
        c->d->rollback(c->h);
    }
    pthread_setspecific(db->key, NULL);
    if (c->is_writer) {
        pthread_mutex_lock(&db->wlock);
        writer_free(db);
        pthread_mutex_unlock(&db->wlock);
        return;
    }
    struct conn *drop = NULL;
    pthread_mutex_lock(&db->lock);
    c->idle_next = db->idle;
    db->idle = c;
    if (++db->nidle > DB_IDLE_MAX) {
        /* past the cap, the one given back longest ago is closed */
        struct conn **pp = &db->idle;
        while ((*pp)->idle_next)
            pp = &(*pp)->idle_next;
        drop = *pp;
        *pp = NULL;
        db->nidle--;
        conn_unlink(db, drop);
    }
    pthread_mutex_unlock(&db->lock);
    if (drop)
        conn_close(drop);
}

/*
 * The key's destructor: a thread ended while it held a connection (no path
 * of ours ends a thread inside a call, but a thread cancelled or exited in
 * one would otherwise keep the writer connection, and every later write
 * would wait for it until WH_EBUSY). Given back, rolled back if need be.
 */
static void conn_orphaned(void *p)
{
    struct conn *c = p;
    wh_log_error("a thread ended holding a database connection: given back");
    c->depth = 1;
    db_conn_put(c);
}

void db_conn_stats(wh_db *db, int *open, int *idle)
{
    int n = 0;
    pthread_mutex_lock(&db->lock);
    for (struct conn *c = db->conns; c; c = c->next)
        n++;
    *open = n;
    *idle = db->nidle;
    pthread_mutex_unlock(&db->lock);
}

/* Prepares `sql` into `s`; SQL of ours that does not compile is a bug. */
static void prepare(struct conn *c, db_stmt *s, const char *sql)
{
    if (c->d->prepare(&s->h, c->h, sql) < 0) {
        wh_log_error("%s prepare failed: %s (%s)", c->d->name, wh_error_msg(), sql);
        abort();
    }
    s->d = c->d;
    s->c = c;
}

db_stmt *db_stmt_get(struct conn *c, const char *sql)
{
    size_t h = ((uintptr_t)sql >> 4) % ADHOC_SLOTS;
    for (size_t i = 0; i < ADHOC_SLOTS; i++) {
        size_t k = (h + i) % ADHOC_SLOTS;
        if (c->adhoc[k].sql == sql)
            return &c->adhoc[k].s;
        if (!c->adhoc[k].sql) {
            prepare(c, &c->adhoc[k].s, sql);
            c->adhoc[k].sql = sql;
            return &c->adhoc[k].s;
        }
    }
    abort(); /* more distinct statements than slots: raise ADHOC_SLOTS */
}

db_stmt *db_stmt_hot(struct conn *c, int slot, const char *sql)
{
    db_stmt *s = &c->hot[slot];
    if (!s->h)
        prepare(c, s, sql);
    return s;
}

static uint64_t text_hash(const char *s)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

db_stmt *db_stmt_text(struct conn *c, const char *sql)
{
    uint64_t h = text_hash(sql);
    size_t home = (size_t)(h % BUILT_SLOTS), victim = BUILT_SLOTS;
    for (size_t i = 0; i < BUILT_PROBE; i++) {
        size_t k = (home + i) % BUILT_SLOTS;
        if (!c->built[k].sql) {
            victim = k;
            break;
        }
        if (c->built[k].hash == h && strcmp(c->built[k].sql, sql) == 0)
            return &c->built[k].s;
        /* A statement still stepping (a caller's row loop) is never replaced. */
        if (victim == BUILT_SLOTS && !c->d->busy(c->built[k].s.h))
            victim = k;
    }
    if (victim == BUILT_SLOTS)
        abort(); /* BUILT_PROBE statements stepping at once: our bug */
    db_stmt s = {0};
    prepare(c, &s, sql);
    c->d->finalize(c->built[victim].s.h);
    free(c->built[victim].sql);
    c->built[victim].sql = wh_strdup(sql);
    c->built[victim].hash = h;
    c->built[victim].s = s;
    return &c->built[victim].s;
}

void db_sql_add(struct db_sql *q, const char *fragment)
{
    size_t n = strlen(fragment);
    if (n >= sizeof(q->text) - q->len) {
        wh_log_error("assembled statement longer than %zu bytes", sizeof(q->text));
        abort(); /* fragments are ours: raise DB_SQL_MAX */
    }
    memcpy(q->text + q->len, fragment, n + 1);
    q->len += n;
}

const char *db_driver_name(struct conn *c)
{
    return c->d->name;
}

int db_step(db_stmt *s)
{
    int rc = s->d->step(s->h);
    s->c->err = rc < 0 ? rc : 0;
    return rc;
}

void db_done(db_stmt *s)
{
    s->d->reset(s->h);
}

int db_fail(struct conn *c)
{
    int err = c->err;
    c->err = 0;
    wh_metric_add(WH_METRIC_DB_WRITE_FAILED, 1);
    if (err == 0) /* no step failed: a statement that had to return a row returned none */
        return wh_error_set(WH_ERROR, "%s: statement returned no row", c->d->name);
    /* the driver's message stays; a full disk is an answer of its own (507 on /v2/) */
    return err == WH_ENOSPC ? WH_ENOSPC : WH_ERROR;
}

int db_constraint(struct conn *c, const char *what)
{
    switch (c->err) {
    case WH_EEXISTS:
        c->err = 0;
        return wh_error_set(WH_EEXISTS, "%s already exists", what);
    case WH_ENOTFOUND:
        c->err = 0;
        return wh_error_set(WH_ENOTFOUND, "%s: a row it refers to does not exist", what);
    default:
        return db_fail(c); /* any other failure is the server's, not the caller's */
    }
}

void db_copy_col(char *dst, size_t cap, db_stmt *s, int col)
{
    const char *t = db_col_text(s, col);
    snprintf(dst, cap, "%s", t ? t : "");
}

int db_collect_id(db_stmt *s, void *payload)
{
    struct db_ids *ids = payload;
    if (ids->n == ids->cap) {
        ids->cap = ids->cap ? 2 * ids->cap : 64;
        ids->v = wh_realloc(ids->v, ids->cap * sizeof(*ids->v));
    }
    ids->v[ids->n++] = db_col_i64(s, 0);
    return 0;
}

char *db_dup_col(db_stmt *s, int col)
{
    const char *t = db_col_text(s, col);
    return wh_strdup(t ? t : "");
}

int db_run(struct conn *c, db_stmt *s)
{
    int rc = db_step(s);
    int error = rc >= 0 ? 0 : db_fail(c);
    db_done(s);
    return error;
}

int db_changes(struct conn *c)
{
    return (int)c->d->changes(c->h);
}

int db_one_row(struct conn *c, db_stmt *s, const char *what)
{
    int rc = db_step(s);
    if (rc == DB_ROW)
        return 0;
    int error = rc == DB_DONE ? wh_error_set(WH_ENOTFOUND, "%s not found", what) : db_fail(c);
    db_done(s);
    return error;
}

int db_insert(struct conn *c, db_stmt *s, const char *what, int64_t *id_out)
{
    int rc = db_step(s);
    int error = 0;
    if (rc < 0)
        error = db_constraint(c, what);
    else if (id_out)
        *id_out = rc == DB_ROW ? db_col_i64(s, 0) : 0;
    db_done(s);
    return error;
}

int db_step_id(struct conn *c, db_stmt *s, int64_t *id_out)
{
    int rc = db_step(s);
    int error = 0;
    *id_out = 0;
    if (rc == DB_ROW)
        *id_out = db_col_i64(s, 0);
    else if (rc < 0)
        error = db_fail(c);
    db_done(s);
    return error;
}

int db_change(struct conn *c, db_stmt *s, const char *what)
{
    int error = db_run(c, s);
    if (error == 0 && db_changes(c) == 0)
        error = wh_error_set(WH_ENOTFOUND, "%s not found", what);
    return error;
}

int db_count(struct conn *c, db_stmt *s, int64_t *out)
{
    int rc = db_step(s);
    int error = 0;
    if (rc == DB_ROW)
        *out = db_col_i64(s, 0);
    else
        error = db_fail(c);
    db_done(s);
    return error;
}

int db_count_pending(struct conn *c, db_stmt *s, int64_t *pending)
{
    int64_t n = 0;
    int rc;
    while ((rc = db_step(s)) == DB_ROW) {
        const char *st = db_col_text(s, 0);
        n += st && strcmp(st, "Pending") == 0; /* the word of scan jobs and GC runs alike */
    }
    int error = rc == DB_DONE ? 0 : db_fail(c);
    db_done(s);
    if (pending)
        *pending = n;
    return error;
}

int db_rows(struct conn *c, db_stmt *s, int (*row)(db_stmt *s, void *payload), void *payload)
{
    int rc, error = 0;
    while ((rc = db_step(s)) == DB_ROW)
        if (row(s, payload) != 0)
            break;
    if (rc < 0)
        error = db_fail(c);
    db_done(s);
    return error;
}

int db_exists(struct conn *c, db_stmt *s, bool *out)
{
    int rc = db_step(s);
    int error = 0;
    if (rc >= 0)
        *out = rc == DB_ROW;
    else
        error = db_fail(c);
    db_done(s);
    return error;
}

/* ---- transactions ---- */

/* A driver's transaction call, with the failure counted as a step's. */
static int tx_call(struct conn *c, int (*fn)(struct db_dconn *h))
{
    int error = fn(c->h);
    if (error < 0) {
        c->err = error;
        error = db_fail(c);
    }
    return error;
}

int db_tx_begin(struct conn *c)
{
    if (c->batch == BATCH_WHOLE)
        return 0;
    return tx_call(c, c->batch ? c->d->savepoint : c->d->begin_write);
}

void db_note_scan_queued(struct conn *c)
{
    if (!c->db->on_scan_queued)
        return;
    if (!c->d->in_tx(c->h))
        c->db->on_scan_queued(c->db->on_scan_queued_payload); /* already committed */
    else
        c->scan_queued = true; /* told by db_tx_end once committed */
}

void wh_db_on_blob_recorded(wh_db *db, int (*fn)(const char *digest, void *payload),
                            void *payload)
{
    db->blob_check = fn;
    db->blob_check_payload = payload;
}

void wh_db_set_node(wh_db *db, const char *node)
{
    free(db->node);
    db->node = node ? wh_strdup(node) : NULL;
}

void wh_db_set_scan_lease(wh_db *db, int64_t ms)
{
    db->scan_lease_ms = ms > 0 ? ms : WH_SCAN_LEASE_MS;
}

int64_t wh_db_scan_lease(const wh_db *db)
{
    return db->scan_lease_ms;
}

void wh_db_set_scan_retry(wh_db *db, int64_t attempts, int64_t delay_ms)
{
    db->scan_attempts = attempts > 0 ? (attempts < WH_SCAN_ATTEMPTS_CAP ? attempts
                                                                        : WH_SCAN_ATTEMPTS_CAP)
                                     : WH_SCAN_ATTEMPTS_MAX;
    db->scan_retry_ms = delay_ms > 0 ? delay_ms : WH_SCAN_RETRY_MS;
}

int64_t wh_db_scan_attempts(const wh_db *db)
{
    return db->scan_attempts;
}

int64_t wh_db_scan_retry_delay(const wh_db *db, int64_t attempts)
{
    int64_t ms = db->scan_retry_ms;
    for (int64_t i = 1; i < attempts && ms < WH_SCAN_RETRY_CAP_MS; i++)
        ms *= 2;
    return ms < WH_SCAN_RETRY_CAP_MS ? ms : WH_SCAN_RETRY_CAP_MS;
}

const char *wh_db_node(const wh_db *db)
{
    return db->node ? db->node : "";
}

const char *db_node(struct conn *c)
{
    return c->db->node ? c->db->node : "";
}

int db_blob_check(struct conn *c, const char *digest)
{
    if (!c->db->blob_check || c->db->blob_check(digest, c->db->blob_check_payload) == 0)
        return 0;
    return wh_error_set(WH_EBUSY, "blob %s was collected while it was stored: retry", digest);
}

void wh_db_on_scan_queued(wh_db *db, void (*fn)(void *payload), void *payload)
{
    db->on_scan_queued = fn;
    db->on_scan_queued_payload = payload;
}

int db_tx_end(struct conn *c, int error)
{
    if (c->batch == BATCH_WHOLE)
        return error; /* the batch ends it, whole */
    if (error < 0) {
        if (c->batch) {
            tx_call(c, c->d->rollback_to);
            tx_call(c, c->d->release);
        } else {
            c->scan_queued = false;
            if (c->d->in_tx(c->h)) /* the database may have rolled back already */
                tx_call(c, c->d->rollback);
        }
        return error;
    }
    if (c->batch)
        return tx_call(c, c->d->release);
    error = tx_call(c, c->d->commit);
    if (error == 0 && c->scan_queued && c->db->on_scan_queued)
        c->db->on_scan_queued(c->db->on_scan_queued_payload);
    c->scan_queued = false;
    /*
     * A COMMIT that fails (a full disk) may leave the transaction open; this
     * connection would then hold the write lock and every later begin on it
     * would fail. Roll back what is left.
     */
    if (error < 0 && c->d->in_tx(c->h)) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", wh_error_msg());
        tx_call(c, c->d->rollback);
        wh_error_set(error, "%s", msg);
    }
    return error;
}

uint64_t wh_db_data_version(wh_db *db)
{
    DB_CONN(c, db);
    uint64_t v = c ? c->d->data_version(c->h) : 0;
    if (v == 0)
        return 0;
    /*
     * The connection's serial too: a driver may count per connection
     * (SQLite does), and the pool lends a thread a different one from call
     * to call; two connections (of one database, of two, or of one reopened)
     * never share a value.
     */
    uint64_t r = wh_mix64(wh_mix64(c->serial) ^ v);
    return r ? r : 1;
}

static int batch_run(wh_db *db, int (*fn)(wh_db *db, void *payload), void *payload, int kind)
{
    CONN_WRITE_OR_FAIL(c, db);
    if (c->batch)
        return fn(db, payload); /* already in one */
    int error;
    if ((error = db_tx_begin(c)) < 0)
        return error;
    c->batch = kind;
    error = fn(db, payload);
    c->batch = 0;
    return db_tx_end(c, error);
}

int wh_db_batch(wh_db *db, int (*fn)(wh_db *db, void *payload), void *payload)
{
    return batch_run(db, fn, payload, 1);
}

int wh_db_batch_whole(wh_db *db, int (*fn)(wh_db *db, void *payload), void *payload)
{
    return batch_run(db, fn, payload, BATCH_WHOLE);
}

/* ---- open / close ---- */

/*
 * Applies the driver's migrations after the database's schema version, up
 * to `upto` (-1: all), each in one write transaction, under the driver's
 * migration lock when it has one (nodes starting together).
 */
static int migrate(struct conn *c, int upto)
{
    const struct db_driver *d = c->d;
    int version = 0, error;
    if (d->migrate_lock && (error = d->migrate_lock(c->h, true)) < 0)
        return error;
    if ((error = d->schema_version_get(c->h, &version)) < 0)
        goto out;
    int n = d->nmigrations;
    if (upto >= 0 && upto < n)
        n = upto;
    for (int v = version; v < n && error == 0; v++) {
        if ((error = d->begin_write(c->h)) < 0)
            break;
        if ((error = d->exec(c->h, d->migrations[v])) < 0 ||
            (error = d->schema_version_set(c->h, v + 1)) < 0) {
            char msg[512];
            snprintf(msg, sizeof(msg), "%s", wh_error_msg());
            d->rollback(c->h);
            wh_error_set(error, "migration %d: %s", v + 1, msg);
            break;
        }
        if ((error = d->commit(c->h)) < 0)
            break;
        wh_log_info("database migrated to schema version %d", v + 1);
    }
out:
    if (d->migrate_lock) {
        int unlock = d->migrate_lock(c->h, false);
        if (error == 0)
            error = unlock;
    }
    return error;
}

static const struct db_driver *const drivers[] = {
    &db_sqlite_driver,
#ifdef WH_HAVE_PG
    &db_pg_driver,
#endif
};

static int open_with(wh_db **out, const struct db_driver *d, const char *target, int version)
{
    if (d->version != DB_DRIVER_VERSION)
        return wh_error_set(WH_ERROR, "database driver %s: table version %d, not %d", d->name,
                            d->version, DB_DRIVER_VERSION);
    wh_db *db = wh_calloc(1, sizeof(*db));
    db->d = d;
    db->scan_lease_ms = WH_SCAN_LEASE_MS;
    db->scan_attempts = WH_SCAN_ATTEMPTS_MAX;
    db->scan_retry_ms = WH_SCAN_RETRY_MS;
    db->target = wh_strdup(target);
    pthread_mutex_init(&db->lock, NULL);
    pthread_mutex_init(&db->wlock, NULL);
    pthread_cond_init(&db->wfree, NULL);
    db->writer_wait_ms = WRITER_WAIT_MS;
    pthread_key_create(&db->key, conn_orphaned);
    struct conn *c = db_conn(db);
    int error = c ? migrate(c, version) : WH_ERROR;
    db_conn_put(c);
    if (error < 0) {
        int rc = wh_error_set(WH_ERROR, "database %s: %s", d->name, wh_error_msg());
        wh_db_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

int db_open_at(wh_db **out, const char *path, int version)
{
    return open_with(out, &db_sqlite_driver, path, version);
}

int wh_db_open(wh_db **out, const char *path)
{
    return open_with(out, &db_sqlite_driver, path, -1);
}

int wh_db_open_driver(wh_db **out, const char *driver, const char *target)
{
    for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++)
        if (strcmp(drivers[i]->name, driver) == 0)
            return open_with(out, drivers[i], target, -1);
    return wh_error_set(WH_EINVALID, "unknown database driver \"%s\"", driver);
}

int wh_db_schema_latest(void)
{
    return db_sqlite_driver.nmigrations;
}

void wh_db_close(wh_db *db)
{
    if (!db)
        return;
    while (db->conns) {
        struct conn *c = db->conns;
        db->conns = c->next;
        conn_close(c);
    }
    pthread_key_delete(db->key);
    pthread_mutex_destroy(&db->lock);
    pthread_mutex_destroy(&db->wlock);
    pthread_cond_destroy(&db->wfree);
    free(db->target);
    free(db->node);
    free(db);
}

/* ---- shared helpers ---- */

char *db_name_set(const char *json_names)
{
    if (!json_names)
        return NULL;
    json_t *arr = json_loads(json_names, 0, NULL);
    if (!json_is_array(arr)) {
        json_decref(arr);
        return NULL;
    }
    size_t len = 2, i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        const char *s = json_string_value(v);
        if (s && *s && !strchr(s, '/'))
            len += strlen(s) + 1;
    }
    char *out = wh_malloc(len), *p = out;
    *p++ = '/';
    json_array_foreach(arr, i, v) {
        const char *s = json_string_value(v);
        if (s && *s && !strchr(s, '/')) {
            size_t n = strlen(s);
            memcpy(p, s, n);
            p += n;
            *p++ = '/';
        }
    }
    *p = '\0';
    json_decref(arr);
    return out;
}
