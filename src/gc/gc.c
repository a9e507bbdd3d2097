/*
 * gc.c: the collector's runs (see gc.h), their schedules and the server's
 * gc thread.
 *
 * A collection run starts `workers` threads. Each claims due reviews in
 * batches (manifests first, so that what an artifact's delete queues is
 * reviewed in the same run when it is already due), each batch one short
 * write transaction (db_gc.c; BATCH_MAX reviews or BATCH_MS) followed by a
 * pause as long, until nothing is due or a stop is asked for. The
 * run's own thread adds the counts and appends the log lines of the last
 * second or so to the run's and reads back whether a stop was asked for
 * (PUT /system/gc/{id}). Nothing is locked beyond one batch's transaction:
 * pushes, pulls and deletes go on beside a run. A dry run only reads
 * (wh_db_gc_preview).
 *
 * Several nodes: the gc thread of a node with no run of its own helps the
 * one another node's server holds (help()): the same workers on the same
 * queues, their counts added and their lines (named with the node)
 * appended to the run's, until nothing is due, the run stops or ends, or
 * its holder goes silent. Counts are increments, so a helper's last batch,
 * committed as the holder ends the run, still counts (just after the end).
 *
 * An audit-log purge deletes the entries older than the retention, of the
 * operations it names, in batches of PURGE_BATCH per transaction.
 */
#include "gc/gc.h"

#include "common/loop.h"
#include "common/metrics.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_MS 1000           /* longest sleep of the gc thread; progress interval of a run */
#define PURGE_BATCH 1000       /* audit entries per transaction */
#define LOG_ITEMS_MAX 1000     /* items named one by one in a log, then only counted */
#define SETTING_MAX 2048       /* a schedule's stored JSON incl. NUL */
#define RETENTION_MAX (100LL * 366 * 24) /* hours */
#define BATCH_MAX 64           /* reviews per transaction, at most */
#define BATCH_MS 10            /* ... and the time one transaction may hold the write lock */

/* ---- parameters ---- */

static bool op_ok(const char *s, size_t n)
{
    if (n == 0 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_' || s[i] == '-'))
            return false;
    return true;
}

/* Splits a comma list of operations into `ops` (pointers into `buf`): the count, or -1. */
static int split_ops(char *buf, const char **ops, int max)
{
    int n = 0;
    for (char *p = buf; *p;) {
        char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len && *p == ' ')
            p++, len--;
        while (len && p[len - 1] == ' ')
            len--;
        if (!op_ok(p, len) || n == max)
            return -1;
        p[len] = '\0';
        ops[n++] = p;
        if (!comma)
            break;
        p = comma + 1;
    }
    return n;
}

int wh_gc_params_parse(struct wh_gc_params *out, const char *kind, void *json_object)
{
    json_t *o = json_object;
    memset(out, 0, sizeof(*out));
    out->workers = 1;
    out->retention_hours = 24 * 30;
    if (!o || json_is_null(o))
        return 0;
    if (!json_is_object(o))
        return wh_error_set(WH_EINVALID, "parameters must be an object");
    bool gc = strcmp(kind, WH_GC_KIND_GC) == 0;
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (strcmp(key, "dry_run") == 0) {
            if (!json_is_boolean(v))
                return wh_error_set(WH_EINVALID, "dry_run must be a boolean");
            out->dry_run = json_is_true(v);
        } else if (gc && strcmp(key, "delete_untagged") == 0) {
            if (!json_is_boolean(v))
                return wh_error_set(WH_EINVALID, "delete_untagged must be a boolean");
            out->delete_untagged = json_is_true(v);
        } else if (gc && strcmp(key, "workers") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > WH_GC_WORKERS_MAX) {
                char shown[64] = "";
                if (json_is_integer(v))
                    snprintf(shown, sizeof(shown), "%lld", (long long)json_integer_value(v));
                return wh_error_set(WH_EINVALID,
                                    "Error: Invalid number of workers:%s. Workers must be greater "
                                    "than 0 and less than or equal to %d.",
                                    shown, WH_GC_WORKERS_MAX);
            }
            out->workers = (int)json_integer_value(v);
        } else if (!gc && strcmp(key, "audit_retention_hour") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) > RETENTION_MAX)
                return wh_error_set(WH_EINVALID,
                                    "audit_retention_hour must be a whole number of hours from 0 "
                                    "to %lld",
                                    RETENTION_MAX);
            out->retention_hours = json_integer_value(v);
        } else if (!gc && strcmp(key, "include_operations") == 0) {
            const char *ops[16];
            char buf[sizeof(out->operations)];
            if (!json_is_string(v) || strlen(json_string_value(v)) >= sizeof(buf))
                return wh_error_set(WH_EINVALID, "include_operations must be a short string");
            snprintf(buf, sizeof(buf), "%s", json_string_value(v));
            if (split_ops(buf, ops, 16) < 0)
                return wh_error_set(WH_EINVALID,
                                    "include_operations must list at most 16 operations "
                                    "separated by commas, such as \"create,delete,pull\"");
            snprintf(out->operations, sizeof(out->operations), "%s", json_string_value(v));
        }
        /* other keys: Harbor's clients send more (time_window, redis_url_reg...); ignored */
    }
    return 0;
}

char *wh_gc_params_text(const struct wh_gc_params *p, const char *kind)
{
    json_t *o;
    if (strcmp(kind, WH_GC_KIND_GC) == 0)
        o = json_pack("{s:b,s:b,s:i}", "delete_untagged", p->delete_untagged, "dry_run",
                      p->dry_run, "workers", p->workers);
    else
        o = json_pack("{s:I,s:s,s:b}", "audit_retention_hour", (json_int_t)p->retention_hours,
                      "include_operations", p->operations, "dry_run", p->dry_run);
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    if (!text)
        abort(); /* jansson fails only without memory; our allocators abort then too */
    return text;
}

/* The parameters stored with a run (text); bad text gives the defaults. */
static void params_of(struct wh_gc_params *out, const char *kind, const char *text)
{
    json_t *o = json_loads(text, 0, NULL);
    if (wh_gc_params_parse(out, kind, o) < 0)
        wh_gc_params_parse(out, kind, NULL);
    json_decref(o);
}

/* ---- a run ---- */

struct exec {
    wh_db *db;
    wh_store *store;
    struct wh_gc_run run;   /* counts in blobs, bytes, ...: done since the last flush */
    struct wh_gc_run total; /* the run's counts, all nodes, as the last flush read them */
    struct wh_gc_run own;   /* what this executor's flushes added */
    struct wh_gc_params p;
    const atomic_bool *abort; /* the server stops (may be NULL) */
    pthread_mutex_t lock;     /* guards run counts, log, items, active */
    pthread_cond_t changed;
    struct wh_buf log;        /* lines not yet flushed */
    int64_t items;            /* items named in the log */
    bool cut;                 /* the lines not yet flushed reached the log's cap */
    int active;               /* workers still going */
    bool broken;              /* a worker met a database error: the run ends as Error */
    bool helper;              /* helping a run another node holds (help()) */
    bool lost;                /* the run was taken over by another node meanwhile */
    int64_t lease_ms;         /* helper: the holder's progress older than this, it died */
    char prefix[160];         /* helper: "node: " before its lines */
    atomic_bool stop;
    FILE *echo;
};

/* Appends a line to the log (under e->lock). */
static void log_line(struct exec *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_line(struct exec *e, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n = snprintf(line, sizeof(line), "%s", e->prefix);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (e->echo) {
        fprintf(e->echo, "%s\n", line);
        fflush(e->echo);
    }
    if (e->cut)
        return;
    size_t room = e->log.cap - e->log.len;
    if (strlen(line) + 1 + 64 > room) {
        wh_buf_puts(&e->log, "... (the log is cut here; the counts go on)\n");
        e->cut = true;
        return;
    }
    wh_buf_printf(&e->log, "%s\n", line);
}

static void add_counts(struct wh_gc_run *to, const struct wh_gc_run *from)
{
    to->blobs += from->blobs;
    to->bytes += from->bytes;
    to->artifacts += from->artifacts;
    to->purged += from->purged;
    to->failures += from->failures;
}

/* The run's counts: as last read, plus what this executor did since (under e->lock). */
static struct wh_gc_run sum_of(struct exec *e)
{
    struct wh_gc_run t = e->total;
    add_counts(&t, &e->run);
    return t;
}

/*
 * Writes progress (status NULL) or the end: the counts done since the last
 * flush are added to the run's and the lines logged since are appended
 * (wh_db_gcrun_update, or wh_db_gcrun_help for a helper), so that nodes
 * working one run never overwrite one another. Picks up a stop asked for,
 * and for a helper the end of the run or the death of its holder.
 */
static int flush(struct exec *e, const char *status)
{
    /* a copy: the workers take e->lock inside their transactions, so waiting for the
     * database while holding it could keep both waiting */
    pthread_mutex_lock(&e->lock);
    struct wh_gc_run add = e->run;
    e->run.blobs = e->run.bytes = e->run.artifacts = e->run.purged = e->run.failures = 0;
    char *log = wh_strdup(e->log.data ? e->log.data : "");
    e->log.len = 0;
    if (e->log.data)
        e->log.data[0] = '\0';
    e->cut = false; /* the stored log has its own cap (wh_db_gcrun_update) */
    pthread_mutex_unlock(&e->lock);
    struct wh_gc_run now;
    bool lost = false;
    int error = e->helper ? wh_db_gcrun_help(e->db, add.id, &add, log, &now)
                          : wh_db_gcrun_update(e->db, add.id, &add, log, status, wh_now_ms(),
                                               &now);
    if (error == WH_ENOTFOUND && !e->helper) {
        lost = e->lost = true;
        /* taken back (this node wrote no progress for a lease) and another node goes
         * on with it: what was done here still counts; stop after the review in hand */
        wh_log_warn("gc run %lld: no longer this node's (taken over after a lease without "
                    "progress): stopping", (long long)add.id);
        atomic_store(&e->stop, true);
        error = wh_db_gcrun_help(e->db, add.id, &add, log, &now);
    }
    pthread_mutex_lock(&e->lock);
    if (error < 0) {
        /* kept for the next flush: the counts, and the lines before the newer ones */
        add_counts(&e->run, &add);
        struct wh_buf keep;
        wh_buf_init(&keep, WH_GC_LOG_MAX);
        if (wh_buf_puts(&keep, log) == 0 &&
            wh_buf_puts(&keep, e->log.data ? e->log.data : "") == 0) {
            wh_buf_dispose(&e->log);
            e->log = keep;
        } else {
            wh_buf_dispose(&keep); /* beyond the cap: the newer lines only */
        }
    } else {
        e->total = now;
        add_counts(&e->own, &add);
    }
    pthread_mutex_unlock(&e->lock);
    free(log);
    if (error == 0 && now.stop_requested)
        atomic_store(&e->stop, true);
    if (error == 0 && e->helper &&
        (strcmp(now.status, "Running") != 0 || now.updated_ms < wh_now_ms() - e->lease_ms))
        atomic_store(&e->stop, true);
    if (error == 0 && lost)
        return wh_error_set(WH_ENOTFOUND, "run %lld was taken over by another node",
                            (long long)add.id);
    return error;
}

static bool stopping(struct exec *e)
{
    return atomic_load(&e->stop) || (e->abort && atomic_load(e->abort));
}

static int delete_bytes(const char *digest, void *payload)
{
    struct wh_digest d;
    if (wh_digest_parse(&d, digest, strlen(digest)) < 0)
        return WH_ENOTFOUND; /* not a digest we could have stored: nothing to delete */
    return wh_store_delete_blob(payload, &d);
}

/* Counts and logs one review of a batch (called inside its transaction, under no lock). */
static void seen(const struct wh_gc_review *r, void *payload)
{
    struct exec *e = payload;
    pthread_mutex_lock(&e->lock);
    if (r->failed) {
        e->run.failures++;
        log_line(e, "cannot delete %s (retried later): %s", r->digest, wh_error_msg());
    } else if (r->deleted && r->repo[0]) {
        e->run.artifacts++;
        wh_metric_add(WH_METRIC_GC_ARTIFACTS_DELETED, 1);
        if (e->items++ < LOG_ITEMS_MAX)
            log_line(e, "deleted artifact %s@%s", r->repo, r->digest);
    } else if (r->deleted) {
        e->run.blobs++;
        e->run.bytes += (int64_t)r->size;
        wh_metric_add(WH_METRIC_GC_BLOBS_DELETED, 1);
        wh_metric_add(WH_METRIC_GC_BYTES_FREED, r->size);
        if (e->items++ < LOG_ITEMS_MAX)
            log_line(e, "deleted blob %s (%llu bytes%s)", r->digest,
                     (unsigned long long)r->size, r->size ? "" : ", or never recorded");
    }
    pthread_mutex_unlock(&e->lock);
}

static void *worker_main(void *arg)
{
    struct exec *e = arg;
    wh_db_thread_background(true);
    while (!stopping(e)) {
        int n = 0;
        int64_t t0 = wh_monotonic_us();
        int error = wh_db_gc_review_manifests(e->db, wh_now_ms(), e->p.delete_untagged,
                                              BATCH_MAX, BATCH_MS, seen, e, &n);
        if (error == 0 && n == 0)
            error = wh_db_gc_review_blobs(e->db, wh_now_ms(), BATCH_MAX, BATCH_MS, delete_bytes,
                                          e->store, seen, e, &n);
        if (error < 0) {
            pthread_mutex_lock(&e->lock);
            e->run.failures++;
            e->broken = true;
            log_line(e, "error: %s", wh_error_msg());
            pthread_mutex_unlock(&e->lock);
            break; /* the database is not answering: the run ends as Error */
        }
        if (n == 0)
            break; /* nothing is due */
        /*
         * Give the write lock away for as long as the batch held it: SQLite
         * has no queue of waiting writers (they poll with growing sleeps), so
         * a collector that took the lock again at once would starve pushes.
         * Half the time is theirs; an idle registry loses half the speed.
         */
        int64_t held = wh_monotonic_us() - t0;
        struct timespec pause = {.tv_sec = 0, .tv_nsec = (held < 50000 ? held : 50000) * 1000};
        nanosleep(&pause, NULL);
    }
    pthread_mutex_lock(&e->lock);
    e->active--;
    pthread_cond_signal(&e->changed);
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

/* Waits up to TICK_MS for the workers to change; true while some are active. */
static bool wait_workers(struct exec *e)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += (TICK_MS % 1000) * 1000000L;
    until.tv_sec += TICK_MS / 1000 + until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&e->lock);
    if (e->active > 0)
        pthread_cond_timedwait(&e->changed, &e->lock, &until);
    bool active = e->active > 0;
    pthread_mutex_unlock(&e->lock);
    return active;
}

static int collect(struct exec *e)
{
    pthread_t threads[WH_GC_WORKERS_MAX];
    int n = 0, error = 0;
    for (int i = 0; i < e->p.workers && i < WH_GC_WORKERS_MAX; i++) {
        pthread_mutex_lock(&e->lock);
        e->active++;
        pthread_mutex_unlock(&e->lock);
        if (pthread_create(&threads[n], NULL, worker_main, e) != 0) {
            pthread_mutex_lock(&e->lock);
            e->active--;
            pthread_mutex_unlock(&e->lock);
            break;
        }
        n++;
    }
    if (n == 0)
        return wh_error_set(WH_ERROR, "cannot start a gc worker");
    while (wait_workers(e))
        if (flush(e, NULL) < 0)
            wh_log_warn("gc run %lld: progress not written: %s", (long long)e->run.id,
                        wh_error_msg());
    for (int i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    if (e->broken)
        error = wh_error_set(WH_ERROR, "a review failed in the database (see the log)");
    return error;
}

static int preview_item(const struct wh_gc_review *r, void *payload)
{
    struct exec *e = payload;
    if (r->repo[0]) {
        e->run.artifacts++;
        if (e->items++ < LOG_ITEMS_MAX)
            log_line(e, "would delete artifact %s@%s", r->repo, r->digest);
    } else {
        e->run.blobs++;
        e->run.bytes += (int64_t)r->size;
        if (e->items++ < LOG_ITEMS_MAX)
            log_line(e, "would delete blob %s (%llu bytes)", r->digest,
                     (unsigned long long)r->size);
    }
    return stopping(e) ? 1 : 0;
}

static int preview(struct exec *e)
{
    pthread_mutex_lock(&e->lock);
    int error = wh_db_gc_preview(e->db, wh_now_ms(), e->p.delete_untagged, preview_item, e);
    if (error == 0 && e->p.delete_untagged && e->run.artifacts > 0)
        log_line(e, "the blobs only those artifacts use are queued when they go, and are "
                    "collected once their review is due (gc.review_delay)");
    pthread_mutex_unlock(&e->lock);
    return error;
}

static int purge(struct exec *e)
{
    char buf[sizeof(e->p.operations)];
    const char *ops[16];
    snprintf(buf, sizeof(buf), "%s", e->p.operations);
    int nops = split_ops(buf, ops, 16);
    if (nops < 0)
        return wh_error_set(WH_EINVALID, "bad operation list %s", e->p.operations);
    int64_t before = wh_now_ms() - e->p.retention_hours * 3600 * 1000;
    int64_t last_flush = wh_now_ms();
    for (;;) {
        int64_t n = 0;
        int error = wh_db_audit_purge_ops(e->db, before, ops, (size_t)nops, e->p.dry_run,
                                          e->p.dry_run ? INT64_MAX : PURGE_BATCH, &n);
        if (error < 0)
            return error;
        pthread_mutex_lock(&e->lock);
        e->run.purged += n;
        pthread_mutex_unlock(&e->lock);
        if (!e->p.dry_run)
            wh_metric_add(WH_METRIC_AUDIT_PURGED, (uint64_t)n);
        if (e->p.dry_run || n == 0 || stopping(e))
            break;
        if (wh_now_ms() - last_flush >= TICK_MS) {
            last_flush = wh_now_ms();
            flush(e, NULL);
        }
    }
    if (!e->p.dry_run)
        flush(e, NULL); /* the count as it stands */
    pthread_mutex_lock(&e->lock);
    log_line(e, "%s %lld audit entries older than %lld hours (operations: %s)",
             e->p.dry_run ? "would purge" : "purged", (long long)sum_of(e).purged,
             (long long)e->p.retention_hours, nops ? e->p.operations : "all");
    pthread_mutex_unlock(&e->lock);
    return 0;
}

static int execute(wh_db *db, wh_store *store, const struct wh_gc_run *run,
                   struct wh_gc_summary *out, FILE *echo, const atomic_bool *abort_flag)
{
    /* a run taken back after its node died goes on from its log and counts so far (what
     * the dead node's last progress write recorded): flushes add to them */
    struct exec e = {.db = db, .store = store, .run = *run, .total = *run, .echo = echo,
                     .abort = abort_flag};
    bool gc = strcmp(run->kind, WH_GC_KIND_GC) == 0;
    int error;
    pthread_mutex_init(&e.lock, NULL);
    pthread_cond_init(&e.changed, NULL);
    wh_buf_init(&e.log, WH_GC_LOG_MAX);
    atomic_init(&e.stop, false);
    params_of(&e.p, run->kind, run->params);
    e.run.blobs = e.run.bytes = e.run.artifacts = e.run.purged = e.run.failures = 0;
    pthread_mutex_lock(&e.lock);
    if (run->attempts > 1)
        log_line(&e, "attempt %lld: taken over%s%s", (long long)run->attempts,
                 wh_db_node(db)[0] ? " by " : "", wh_db_node(db));
    else if (gc)
        log_line(&e, "garbage collection %lld started (%s): delete_untagged=%s dry_run=%s "
                     "workers=%d",
                 (long long)run->id, run->trigger, e.p.delete_untagged ? "true" : "false",
                 e.p.dry_run ? "true" : "false", e.p.workers);
    else
        log_line(&e, "audit log purge %lld started (%s): audit_retention_hour=%lld "
                     "include_operations=%s dry_run=%s",
                 (long long)run->id, run->trigger, (long long)e.p.retention_hours,
                 e.p.operations[0] ? e.p.operations : "(all)", e.p.dry_run ? "true" : "false");
    pthread_mutex_unlock(&e.lock);
    flush(&e, NULL);

    if (!gc)
        error = purge(&e);
    else if (e.p.dry_run)
        error = preview(&e);
    else
        error = collect(&e);

    bool stopped = stopping(&e);
    char msg[512] = "";
    if (error < 0)
        snprintf(msg, sizeof(msg), "%s", wh_error_msg());
    /* the counts as they stand, the helpers' included (what a helper's last batch adds
     * after this still counts: wh_db_gcrun_help) */
    if (!e.p.dry_run)
        flush(&e, NULL);
    pthread_mutex_lock(&e.lock);
    if (error < 0 && !e.lost)
        log_line(&e, "error: %s", msg);
    struct wh_gc_run t = sum_of(&e);
    if (gc && !e.lost) /* else the node that took it over ends it */
        log_line(&e, "%s: %lld blobs (%lld bytes) %s, %lld artifacts %s, %lld failures",
                 stopped ? "stopped" : error < 0 ? "failed" : "done", (long long)t.blobs,
                 (long long)t.bytes, e.p.dry_run ? "would be freed" : "freed",
                 (long long)t.artifacts, e.p.dry_run ? "would be deleted" : "deleted",
                 (long long)t.failures);
    pthread_mutex_unlock(&e.lock);
    const char *status = error < 0 ? "Error" : stopped ? "Stopped" : "Success";
    int werr = flush(&e, status);
    pthread_mutex_lock(&e.lock);
    t = sum_of(&e);
    pthread_mutex_unlock(&e.lock);
    if (out) {
        *out = (struct wh_gc_summary){.blobs = t.blobs, .bytes = t.bytes,
                                      .artifacts = t.artifacts, .purged = t.purged,
                                      .failures = t.failures, .stopped = stopped};
    }
    wh_buf_dispose(&e.log);
    pthread_cond_destroy(&e.changed);
    pthread_mutex_destroy(&e.lock);
    if (error < 0 || werr < 0)
        return WH_ERROR;
    return 0;
}

int wh_gc_execute(wh_db *db, wh_store *store, const struct wh_gc_run *run,
                  struct wh_gc_summary *out, FILE *echo)
{
    return execute(db, store, run, out, echo, NULL);
}

int wh_gc_blob_present(const char *digest, void *payload)
{
    struct wh_digest d;
    uint64_t size;
    if (wh_digest_parse(&d, digest, strlen(digest)) < 0)
        return WH_EINVALID;
    return wh_store_stat(payload, &d, &size);
}

/* ---- schedules ---- */

static const char *const types[] = {"Hourly", "Daily", "Weekly", "Custom", "Schedule", NULL};

bool wh_gc_schedule_type_valid(const char *type)
{
    for (int i = 0; types[i]; i++)
        if (strcmp(type, types[i]) == 0)
            return true;
    return false;
}

static const char *setting_name(const char *kind)
{
    return strcmp(kind, WH_GC_KIND_GC) == 0 ? "gc_schedule" : "purgeaudit_schedule";
}

/* Harbor's presets when a request names the type but no expression. */
static const char *preset(const char *type)
{
    if (strcmp(type, "Hourly") == 0)
        return "0 0 * * * *";
    if (strcmp(type, "Daily") == 0)
        return "0 0 0 * * *";
    if (strcmp(type, "Weekly") == 0)
        return "0 0 0 * * 0";
    return NULL;
}

static void schedule_parse(struct wh_gc_schedule *out, const char *text)
{
    json_t *doc = json_loads(text, 0, NULL);
    memset(out, 0, sizeof(*out));
    const char *type = json_string_value(json_object_get(doc, "type"));
    const char *cron = json_string_value(json_object_get(doc, "cron"));
    if (type && cron) {
        snprintf(out->type, sizeof(out->type), "%s", type);
        snprintf(out->cron, sizeof(out->cron), "%s", cron);
        char *p = json_dumps(json_object_get(doc, "parameters"), JSON_COMPACT | JSON_SORT_KEYS);
        snprintf(out->params, sizeof(out->params), "%s", p ? p : "{}");
        free(p);
        out->created_ms = json_integer_value(json_object_get(doc, "created_ms"));
        out->updated_ms = json_integer_value(json_object_get(doc, "updated_ms"));
        out->next_ms = json_integer_value(json_object_get(doc, "next_ms"));
    }
    json_decref(doc);
}

static char *schedule_text(const struct wh_gc_schedule *s)
{
    if (!s->type[0])
        return wh_strdup("{}");
    json_t *params = json_loads(s->params, 0, NULL);
    json_t *o = json_pack("{s:s,s:s,s:o,s:I,s:I,s:I}", "type", s->type, "cron", s->cron,
                          "parameters", params ? params : json_object(), "created_ms",
                          (json_int_t)s->created_ms, "updated_ms", (json_int_t)s->updated_ms,
                          "next_ms", (json_int_t)s->next_ms);
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    if (!text)
        abort(); /* jansson fails only without memory */
    return text;
}

static int schedule_read(wh_db *db, const char *kind, struct wh_gc_schedule *out, char *raw)
{
    int error = wh_db_setting_get(db, setting_name(kind), raw, SETTING_MAX);
    if (error == WH_ENOTFOUND) {
        memset(out, 0, sizeof(*out));
        raw[0] = '\0';
        return 0;
    }
    if (error == 0)
        schedule_parse(out, raw);
    return error;
}

int wh_gc_schedule_get(wh_db *db, const char *kind, struct wh_gc_schedule *out)
{
    char *raw = wh_malloc(SETTING_MAX);
    int error = schedule_read(db, kind, out, raw);
    free(raw);
    return error;
}

static int next_fire(int64_t *out, const char *cron, int64_t now_ms)
{
    struct wh_cron c;
    int64_t next = 0;
    int error = wh_cron_parse(&c, cron);
    if (error < 0)
        return error;
    if (wh_cron_next(&next, &c, now_ms / 1000) < 0)
        return wh_error_set(WH_EINVALID, "the expression matches no time in the next five years");
    *out = next * 1000;
    return 0;
}

int wh_gc_schedule_set(wh_db *db, const char *kind, const char *type, const char *cron,
                       const char *params, int64_t now_ms, struct wh_gc_schedule *out)
{
    struct wh_gc_schedule cur, s;
    memset(&s, 0, sizeof(s));
    int error = wh_gc_schedule_get(db, kind, &cur);
    if (error < 0)
        return error;
    if (type && strcmp(type, "None") != 0) {
        if (!wh_gc_schedule_type_valid(type))
            return wh_error_set(WH_EINVALID, "unknown schedule type %s", type);
        if ((!cron || !*cron) && preset(type))
            cron = preset(type);
        if (!cron || !*cron)
            return wh_error_set(WH_EINVALID, "a cron expression is required");
        if (strlen(cron) >= sizeof(s.cron))
            return wh_error_set(WH_EINVALID, "longer than %d characters", WH_CRON_MAX - 1);
        if (strlen(params ? params : "{}") >= sizeof(s.params))
            return wh_error_set(WH_EINVALID, "parameters too long");
        snprintf(s.type, sizeof(s.type), "%s", type);
        snprintf(s.cron, sizeof(s.cron), "%s", cron);
        snprintf(s.params, sizeof(s.params), "%s", params ? params : "{}");
        if (cur.type[0] && strcmp(cur.cron, s.cron) == 0)
            s.next_ms = cur.next_ms; /* the same times: keep the next one */
        else if ((error = next_fire(&s.next_ms, s.cron, now_ms)) < 0)
            return error;
        s.created_ms = cur.type[0] ? cur.created_ms : now_ms;
        s.updated_ms = now_ms;
    }
    char *text = schedule_text(&s);
    error = wh_db_setting_set(db, setting_name(kind), text, now_ms);
    free(text);
    if (error == 0 && out)
        *out = s;
    return error;
}

/* ---- the thread ---- */

struct wh_gc {
    wh_db *db;
    wh_store *store;
    wh_loop *loop;
    bool started;   /* the first turn took back this node's own runs */
    int64_t helped; /* the last run of another node this one helped */
};

/* Fires the schedule of `kind` when due (a Pending run, unless one is going on). */
static void fire(wh_gc *g, const char *kind)
{
    struct wh_gc_schedule s;
    char *raw = wh_malloc(SETTING_MAX);
    char *text = NULL;
    int64_t now = wh_now_ms(), id = 0;
    if (schedule_read(g->db, kind, &s, raw) < 0) {
        wh_log_error("%s: cannot read the schedule: %s", kind, wh_error_msg());
        goto out;
    }
    if (!s.type[0] || s.next_ms > now)
        goto out;
    if (next_fire(&s.next_ms, s.cron, now) < 0) {
        wh_log_error("%s: the stored schedule \"%s\" is unusable: %s", kind, s.cron,
                     wh_error_msg());
        s.next_ms = INT64_MAX;
    }
    text = schedule_text(&s);
    int error = wh_db_gcrun_fire(g->db, setting_name(kind), raw, text, kind, s.params, now, &id);
    if (error < 0 && error != WH_ECONFLICT)
        wh_log_error("%s: the schedule cannot fire: %s", kind, wh_error_msg());
    else if (error == 0 && id > 0)
        wh_log_info("%s: scheduled run %lld queued", kind, (long long)id);
    else if (error == 0)
        wh_log_info("%s: a run is going on, the scheduled one due now is skipped", kind);
out:
    free(text);
    free(raw);
}

/*
 * Helps run `run`, which another node holds (several nodes, one database):
 * as many workers as the run has, claiming batches of the shared review
 * queues exactly as the holder's do (each batch one write transaction, so
 * no review is decided twice), adding their counts and log lines (named
 * with this node) to the run's. Until nothing is due, a stop is asked for,
 * the run ends, its holder's progress is older than a lease (it died: the
 * next turn takes the run back), or this server stops.
 */
static void help(wh_gc *g, const struct wh_gc_run *run, const struct wh_gc_params *p)
{
    struct exec e = {.db = g->db, .store = g->store, .run = *run, .total = *run, .p = *p,
                     .abort = wh_loop_stopping(g->loop), .helper = true,
                     .lease_ms = wh_db_scan_lease(g->db)};
    pthread_mutex_init(&e.lock, NULL);
    pthread_cond_init(&e.changed, NULL);
    wh_buf_init(&e.log, WH_GC_LOG_MAX);
    atomic_init(&e.stop, false);
    e.run.blobs = e.run.bytes = e.run.artifacts = e.run.purged = e.run.failures = 0;
    snprintf(e.prefix, sizeof(e.prefix), "%s: ", wh_db_node(g->db));
    if (g->helped != run->id) {
        wh_log_info("gc: helping run %lld (workers=%d)", (long long)run->id, p->workers);
        pthread_mutex_lock(&e.lock);
        log_line(&e, "helping this run: workers=%d", p->workers);
        pthread_mutex_unlock(&e.lock);
        g->helped = run->id;
    }
    int error = collect(&e);
    pthread_mutex_lock(&e.lock);
    if (error < 0)
        log_line(&e, "error: %s", wh_error_msg());
    struct wh_gc_run t = e.own;
    add_counts(&t, &e.run);
    if (t.blobs || t.artifacts || t.failures)
        log_line(&e, "helped: %lld blobs (%lld bytes) freed, %lld artifacts deleted, "
                     "%lld failures",
                 (long long)t.blobs, (long long)t.bytes, (long long)t.artifacts,
                 (long long)t.failures);
    pthread_mutex_unlock(&e.lock);
    if (flush(&e, NULL) < 0)
        wh_log_warn("gc run %lld: progress not written: %s", (long long)run->id,
                    wh_error_msg());
    wh_buf_dispose(&e.log);
    pthread_cond_destroy(&e.changed);
    pthread_mutex_destroy(&e.lock);
}

/* Helps the run another node holds, if any can be helped (not a dry run: a preview reads
 * only, on the node that holds it; nor an audit-log purge). */
static void help_any(wh_gc *g)
{
    struct wh_gc_run run;
    int64_t now = wh_now_ms();
    int error = wh_db_gcrun_helpable(g->db, WH_GC_KIND_GC, now - wh_db_scan_lease(g->db), now,
                                     &run);
    if (error == WH_ENOTFOUND)
        return;
    if (error < 0) {
        wh_log_error("gc: cannot look for a run to help: %s", wh_error_msg());
        return;
    }
    struct wh_gc_params p;
    params_of(&p, run.kind, run.params);
    if (!p.dry_run)
        help(g, &run, &p);
}

/* One turn of the collector's thread: fires due schedules, runs one pending run or helps
 * the one another node runs. */
static int64_t gc_turn(void *arg)
{
    wh_gc *g = arg;
    int64_t now = wh_now_ms(), requeued = 0;
    /* a run is held as a scan job is (scan.lease): not updated for a lease, its node died */
    if (wh_db_gcrun_recover(g->db, now - wh_db_scan_lease(g->db), now, !g->started,
                            &requeued) < 0)
        wh_log_error("gc: %s", wh_error_msg());
    else if (requeued > 0)
        wh_log_info("gc: %lld run(s) cut off by a node's death queued again", (long long)requeued);
    g->started = true;
    fire(g, WH_GC_KIND_GC);
    fire(g, WH_GC_KIND_PURGE);
    struct wh_gc_run run;
    int error = wh_db_gcrun_claim(g->db, wh_now_ms(), &run);
    if (error == WH_ENOTFOUND) {
        help_any(g);
        return TICK_MS;
    }
    if (error < 0) {
        wh_log_error("gc: cannot take a run: %s", wh_error_msg());
        return TICK_MS;
    }
    struct wh_gc_summary sum;
    wh_log_info("%s: run %lld started", run.kind, (long long)run.id);
    if (execute(g->db, g->store, &run, &sum, NULL, wh_loop_stopping(g->loop)) < 0)
        wh_log_error("%s: run %lld failed: %s", run.kind, (long long)run.id, wh_error_msg());
    else
        wh_log_info("%s: run %lld ended: %lld blobs (%lld bytes), %lld artifacts, "
                    "%lld audit entries",
                    run.kind, (long long)run.id, (long long)sum.blobs, (long long)sum.bytes,
                    (long long)sum.artifacts, (long long)sum.purged);
    return 0; /* another may be pending */
}

int wh_gc_start(wh_gc **out, wh_db *db, wh_store *store)
{
    wh_gc *g = wh_calloc(1, sizeof(*g));
    g->db = db;
    g->store = store;
    *out = NULL;
    if (wh_loop_start(&g->loop, "gc", gc_turn, g) < 0) {
        free(g);
        return WH_ERROR;
    }
    *out = g;
    return 0;
}

void wh_gc_kick(wh_gc *g)
{
    if (g)
        wh_loop_kick(g->loop);
}

void wh_gc_stop(wh_gc *g)
{
    if (!g)
        return;
    wh_loop_stop(g->loop);
    free(g);
}
