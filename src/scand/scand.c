/*
 * scand.c: the scan worker pool (see scand.h). Each worker loops: take the
 * oldest Pending job (one UPDATE, so no two workers take the same), scan,
 * record Success or Error unless the job was stopped meanwhile. An idle
 * worker sleeps on a condition variable for at most WH_SCAND_POLL_MS, so a
 * job queued by a manifest commit (which does not know the pool) is taken
 * within that time, and one queued through the API at once.
 *
 * Each worker keeps its own handle on the vulnerability database and opens
 * it again when the file changes on disk (`wharf vulndb import|update`
 * rename a new file over it), checked before every job.
 *
 * A successful scan stores the image's merged inventory and its findings
 * with the report (db_finding.c). One more thread, the re-matcher, notices a
 * new database file the same way (once a second) and matches every stored
 * inventory again, without reading a layer: artifacts whose findings changed
 * get a new report, and the change is recorded and logged. With
 * scan.db_update_interval set, an updater thread runs `wharf vulndb update`'s
 * code in the background; the re-matcher then sees its new file.
 */
#include "scand/scand.h"

#include <fnmatch.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "scan/scan.h"
#include "common/busy.h"
#include "common/metrics.h"

#define WH_SCAND_POLL_MS 200
#define WH_SCAND_MAX_WORKERS 64
#define WH_SCAND_LOG_MAX 1024
/*
 * Before taking a job a worker waits for a pause in the requests that
 * change something (pushes), this long at most: a burst of pushes is not
 * slowed by the scans it queues, and under a steady stream of pushes every
 * job still starts within this time.
 */
#define WH_SCAND_YIELD_MS 100

struct wh_scand {
    wh_db *db;
    wh_store *store;
    char *vulndb_path;
    char *cache_dir;
    char *data_dir;
    unsigned update_interval_s; /* background database update, 0: never */
    int (*delegate)(void *payload, const struct wh_scan_job *job, char **report, char **summary,
                    char *severity, size_t sevcap);
    void *delegate_payload;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the re-matcher, the updater, the lease keeper: stop, requests */
    pthread_cond_t work; /* idle workers: a job was queued (wh_scand_kick), stop */
    bool stopping;
    unsigned nworkers;
    unsigned alive; /* workers started and not ended (__atomic_*): below nworkers, one died */
    pthread_t threads[WH_SCAND_MAX_WORKERS];
    bool rematcher, updater, keeper; /* threads started */
    pthread_t rematch_thread, update_thread, keep_thread;
    struct wh_vulndb_update_state update; /* under `lock` */
};

static bool stopping(wh_scand *s);
static void idle_wait(wh_scand *s, int ms);

/* One worker's vulnerability database and the identity of the file it came from. */
struct worker_db {
    wh_vulndb *db;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

char *wh_scand_vulndb_path(const char *data_dir)
{
    return wh_sprintf("%s/vulndb.sqlite", data_dir);
}

/*
 * The registry's store as the scanner's blob source: its readers, whatever
 * the driver. A job's source notes a failure of the store itself (not a
 * missing blob): the scanner sees a short or broken layer, the worker knows
 * the cause was storage (unreachable, failing) and tries the job again later.
 */
struct job_src {
    wh_store *store;
    int failed;    /* set once (__atomic_*), by any reading thread */
    char msg[256]; /* the store's message, written by the thread that set `failed` */
};

struct job_reader {
    wh_store_reader *rd;
    struct job_src *js;
};

static void store_failed(struct job_src *js)
{
    if (__atomic_exchange_n(&js->failed, 1, __ATOMIC_ACQ_REL) == 0)
        snprintf(js->msg, sizeof(js->msg), "%s", wh_error_msg());
}

static int store_open(void **handle, void *payload, const struct wh_digest *d)
{
    struct job_src *js = payload;
    wh_store_reader *rd = NULL;
    int error = wh_store_reader_open(&rd, js->store, d, 0, WH_STORE_TO_END);
    if (error < 0) {
        if (error != WH_ENOTFOUND)
            store_failed(js);
        return error;
    }
    struct job_reader *jr = wh_malloc(sizeof(*jr));
    jr->rd = rd;
    jr->js = js;
    *handle = jr;
    return 0;
}

static long store_read(void *handle, void *buf, size_t n)
{
    struct job_reader *jr = handle;
    size_t got = 0;
    if (wh_store_reader_read(jr->rd, buf, n, &got) < 0) {
        store_failed(jr->js);
        return -1;
    }
    return (long)got;
}

static void store_close(void *handle)
{
    struct job_reader *jr = handle;
    if (!jr)
        return;
    wh_store_reader_close(jr->rd);
    free(jr);
}

/* Opens the database again when the file is not the one open. */
static int vulndb_fresh(struct worker_db *w, const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        wh_vulndb_close(w->db);
        w->db = NULL;
        /* the message reaches API readers (the scan log): no server path in it */
        return wh_error_set(WH_ENOTFOUND,
                            "no vulnerability database in the data directory: load one with "
                            "`wharf vulndb import FILE...` or `wharf vulndb update`");
    }
    if (w->db && st.st_dev == w->dev && st.st_ino == w->ino && st.st_size == w->size &&
        st.st_mtim.tv_sec == w->mtime.tv_sec && st.st_mtim.tv_nsec == w->mtime.tv_nsec)
        return 0;
    wh_vulndb_close(w->db);
    w->db = NULL;
    int error = wh_vulndb_open(&w->db, path);
    if (error < 0) {
        wh_log_warn("scan: %s", wh_error_msg());
        return wh_error_set(error, "the vulnerability database cannot be opened (see the "
                                   "server log)");
    }
    w->dev = st.st_dev;
    w->ino = st.st_ino;
    w->size = st.st_size;
    w->mtime = st.st_mtim;
    if (wh_vulndb_count(w->db) == 0)
        return wh_error_set(WH_EINVALID,
                            "the vulnerability database is empty: load one with `wharf vulndb "
                            "import FILE...` or `wharf vulndb update`");
    return 0;
}

/* A scan's or a re-match's outcome in the form the database stores. */
struct result {
    json_t *sum;
    json_t *doc;        /* an external report parsed: the rows borrow its strings */
    char *report, *summary, *inventory;
    char **texts;       /* JSON texts the rows point at (links, CWE ids of an external report) */
    size_t ntexts;
    char severity[16];
    char fingerprint[WH_FINGERPRINT_MAX];
    struct wh_db_finding *rows;
    struct wh_scan_result r;
};

static void result_dispose(struct result *res)
{
    json_decref(res->sum);
    json_decref(res->doc);
    free(res->report);
    free(res->summary);
    free(res->inventory);
    for (size_t i = 0; i < res->ntexts; i++)
        free(res->texts[i]);
    free(res->texts);
    free(res->rows);
    memset(res, 0, sizeof(*res));
}

/*
 * Builds the report of `f` for the image `digest`, its overview summary and
 * finding rows, and (when `inv` is not NULL) the inventory to store. The
 * rows borrow strings from `f`. 0 or WH_ERROR.
 */
static int result_build(struct result *res, const struct wh_findings *f,
                        const struct wh_inventory *inv, const char *digest)
{
    memset(res, 0, sizeof(*res));
    res->sum = wh_report_summary(f);
    res->report = wh_report_text(f, digest);
    res->summary = json_dumps(res->sum, JSON_COMPACT);
    size_t inv_len = 0;
    if (inv)
        res->inventory = wh_inventory_to_text(inv, &inv_len);
    if (!res->report || !res->summary)
        return wh_error_set(WH_ERROR, "json encoding failed");
    enum wh_severity top = WH_SEV_UNKNOWN;
    for (size_t i = 0; i < f->n; i++)
        if (f->items[i].severity > top)
            top = f->items[i].severity;
    /* Unknown has code 0: only Unknown findings make "None" overall */
    snprintf(res->severity, sizeof(res->severity), "%s",
             top == WH_SEV_UNKNOWN ? "None" : wh_severity_name(top));
    wh_findings_fingerprint(f, res->fingerprint, sizeof(res->fingerprint));
    res->rows = wh_calloc(f->n ? f->n : 1, sizeof(*res->rows));
    for (size_t i = 0; i < f->n; i++) {
        const struct wh_finding *x = &f->items[i];
        res->rows[i] = (struct wh_db_finding){
            .cve_id = x->id,
            .package = x->pkg->name,
            .version = x->pkg->version,
            .fixed_version = x->fixed,
            .severity = (int)x->severity,
            .cvss3 = x->cvss_score,
            .description = x->description && x->description[0] ? x->description
                           : x->title                            ? x->title
                                                                 : "",
            .links = x->links,
            .cvss3_vector = x->cvss_vector,
            .cwe_ids = x->cwes,
        };
    }
    res->r = (struct wh_scan_result){
        .severity = res->severity,
        .summary = res->summary,
        .report = res->report,
        .inventory = res->inventory,
        .inventory_len = inv_len,
        .fingerprint = res->fingerprint,
        .findings = res->rows,
        .nfindings = f->n,
    };
    return 0;
}

/* A JSON list of `v` as text the rows keep ("[]" when it is not a list). */
static const char *list_text(struct result *res, const json_t *v)
{
    char *t = json_is_array(v) ? json_dumps(v, JSON_COMPACT) : NULL;
    if (!t)
        t = wh_strdup("[]");
    return res->texts[res->ntexts++] = t;
}

/*
 * Builds the result of an external scanner's report (Harbor's format, as
 * wh_adapter_report_import left it): one finding row per item, borrowing its
 * strings from res->doc. 0 or WH_EINVALID.
 */
static int result_from_report(struct result *res, const char *report, const char *summary,
                              const char *severity)
{
    json_error_t jerr;
    memset(res, 0, sizeof(*res));
    res->report = wh_strdup(report);
    res->summary = wh_strdup(summary);
    snprintf(res->severity, sizeof(res->severity), "%s", severity);
    res->doc = json_loads(report, 0, &jerr);
    const json_t *items = json_object_get(res->doc, "vulnerabilities");
    if (!res->doc)
        return wh_error_set(WH_EINVALID, "the report cannot be read: %s", jerr.text);
    size_t n = json_array_size(items);
    res->rows = wh_calloc(n ? n : 1, sizeof(*res->rows));
    res->texts = wh_calloc(2 * n + 1, sizeof(*res->texts));
    size_t i;
    json_t *v;
    json_array_foreach(items, i, v) {
        enum wh_severity sev;
        const json_t *cvss = json_object_get(v, "preferred_cvss");
        const char *id = json_string_value(json_object_get(v, "id"));
        const char *pkg = json_string_value(json_object_get(v, "package"));
        const char *ver = json_string_value(json_object_get(v, "version"));
        const char *fix = json_string_value(json_object_get(v, "fix_version"));
        const char *desc = json_string_value(json_object_get(v, "description"));
        const char *title = json_string_value(json_object_get(v, "title"));
        const char *vector = json_string_value(json_object_get(cvss, "vector_v3"));
        double score = json_number_value(json_object_get(cvss, "score_v3"));
        if (!id || !pkg || !ver ||
            wh_severity_parse(&sev, json_string_value(json_object_get(v, "severity"))) < 0)
            return wh_error_set(WH_EINVALID, "vulnerability %zu of the report lacks id, package, "
                                             "version or severity", i);
        /* as the built-in scanner's rows (result_build): the description, else the title */
        res->rows[i] = (struct wh_db_finding){
            .cve_id = id,
            .package = pkg,
            .version = ver,
            .fixed_version = fix ? fix : "",
            .severity = (int)sev,
            .cvss3 = score > 0 && score <= 10 ? score : 0,
            .description = desc && desc[0] ? desc : title ? title : "",
            .links = list_text(res, json_object_get(v, "links")),
            .cvss3_vector = vector ? vector : "",
            .cwe_ids = list_text(res, json_object_get(v, "cwe_ids")),
        };
    }
    /* no inventory (inventory_id goes NULL: a re-match never sees the artifact) and no
     * fingerprint: only a new scan changes these findings */
    res->r = (struct wh_scan_result){
        .severity = res->severity,
        .summary = res->summary,
        .report = res->report,
        .fingerprint = "",
        .findings = res->rows,
        .nfindings = n,
    };
    return 0;
}

int wh_scand_record_report(wh_db *db, const struct wh_scan_job *job, const char *report,
                           const char *summary, const char *severity)
{
    struct result res;
    int error = result_from_report(&res, report, summary, severity);
    if (error == 0)
        error = wh_db_scan_succeed(db, job->artifact_id, job->report_id, &res.r, wh_now_ms());
    result_dispose(&res);
    return error;
}

int wh_scand_record(wh_db *db, const struct wh_scan_job *job, const struct wh_inventory *inv,
                    const struct wh_findings *f)
{
    struct result res;
    int error = result_build(&res, f, inv, job->digest);
    if (error == 0)
        error = wh_db_scan_succeed(db, job->artifact_id, job->report_id, &res.r, wh_now_ms());
    result_dispose(&res);
    return error;
}

/* Scans the job's image and records its Success: 1 then, or an error with a message. */
static int scan_job(wh_scand *s, struct worker_db *w, const struct wh_scan_job *job)
{
    struct wh_inventory *inv = NULL;
    struct wh_findings *findings = NULL;
    struct job_src js = {.store = s->store};
    struct wh_blob_source src = {store_open, store_read, store_close, &js};
    struct wh_scan_opts opts = {.cache_dir = s->cache_dir, .trusted_store = true, .threads = 1};
    int error;

    if ((error = vulndb_fresh(w, s->vulndb_path)) < 0)
        goto out;
    if ((error = wh_scan_image(&inv, &src, job->digest, &opts)) < 0) {
        /* what the scanner made of a broken read is not the cause: storage is */
        if (__atomic_load_n(&js.failed, __ATOMIC_ACQUIRE)) {
            wh_log_warn("scan %s of %s: reading from storage failed: %s", job->report_id,
                        job->digest, js.msg);
            error = wh_error_set(WH_EBUSY, "the image could not be read from storage (the "
                                           "server log has the details)");
        }
        goto out;
    }
    if ((error = wh_match(&findings, w->db, inv)) < 0)
        goto out;
    wh_log_info("scan %s: %s: %u layers read, %u from cache, %zu packages, %zu findings",
                job->report_id, job->digest, opts.layers_read, opts.layers_cached, inv->npkgs,
                findings->n);
    error = wh_scand_record(s->db, job, inv, findings);
    if (error == WH_ENOTFOUND) {
        wh_log_info("scan %s of %s was stopped or replaced: result dropped", job->report_id,
                    job->digest);
    } else if (error < 0) {
        /* the database refused or is away: the job is tried again (run_job) */
        wh_log_error("scan %s: cannot record the result: %s", job->report_id, wh_error_msg());
        error = wh_error_set(WH_EBUSY, "the result could not be recorded in the database (the "
                                       "server log has the details)");
        goto out;
    }
    error = 1; /* recorded or dropped: nothing is left for run_job to write */
out:
    wh_findings_free(findings);
    wh_inventory_free(inv);
    return error;
}

/* Keeps a job Running until the server stops (the failpoint scan.hold: crash tests). */
static void hold(wh_scand *s, const struct wh_scan_job *job)
{
    wh_log_warn("failpoint scan.hold: scan %s of %s held Running until the server stops",
                job->report_id, job->digest);
    while (!stopping(s))
        idle_wait(s, WH_SCAND_POLL_MS);
}

/*
 * A failed attempt whose cause may pass (WH_EBUSY: storage or the database
 * unreachable, an external scanner down or failing): the job goes back to
 * Pending with a backoff, or ends in Error after its last attempt
 * (wh_db_scan_retry). While the database itself does not answer, the worker
 * keeps trying to record that (the job stays Running under this node's
 * lease meanwhile); a stop leaves it Running for the next start.
 */
static void retry_later(wh_scand *s, const struct wh_scan_job *job, const char *why_in)
{
    char why[WH_SCAND_LOG_MAX], status[16] = "";
    int64_t due = 0;
    snprintf(why, sizeof(why), "%s", why_in);
    for (;;) {
        int error = wh_db_scan_retry(s->db, job->artifact_id, job->report_id, why, wh_now_ms(),
                                     status, &due);
        if (error == WH_ENOTFOUND) {
            wh_log_info("scan %s of %s was stopped or replaced: result dropped", job->report_id,
                        job->digest);
            return;
        }
        if (error == 0)
            break;
        wh_log_error("scan %s: cannot record the failed attempt: %s", job->report_id,
                     wh_error_msg());
        if (stopping(s))
            return;
        idle_wait(s, 1000);
    }
    if (strcmp(status, WH_SCAN_PENDING) == 0)
        wh_log_warn("scan %s of %s: attempt %lld failed: %s; tried again in %lld s",
                    job->report_id, job->digest, (long long)job->attempts, why,
                    (long long)((due - wh_now_ms() + 999) / 1000));
    else
        wh_log_warn("scan %s of %s failed after %lld attempts: %s", job->report_id, job->digest,
                    (long long)job->attempts, why);
}

static void run_job(wh_scand *s, struct worker_db *w, const struct wh_scan_job *job)
{
    char log[WH_SCAND_LOG_MAX] = "";
    if (wh_failpoint("scan.hold") != 0) {
        hold(s, job);
        return;
    }
    int fp = wh_failpoint("scan.run");
    /* an external scanner's job (adapter.h) runs there; 0: the built-in scanner's */
    char *report = NULL, *summary = NULL, severity[16] = "";
    int ext = fp == 0 && s->delegate ? s->delegate(s->delegate_payload, job, &report, &summary,
                                                   severity, sizeof(severity))
                                     : 0;
    if (ext == WH_EDEFERRED)
        return; /* the server stops: left Running, queued again at the next start */
    if (ext > 0) {
        /* an external report: its items become finding rows as the built-in scanner's
         * do, in the same transaction as the report (no inventory: see
         * wh_scand_result_from_report); a report that cannot be read is an Error */
        int rerr = wh_scand_record_report(s->db, job, report, summary, severity);
        free(report);
        free(summary);
        if (rerr == WH_ENOTFOUND)
            wh_log_info("scan %s of %s was stopped or replaced: result dropped", job->report_id,
                        job->digest);
        else if (rerr < 0 && rerr != WH_EINVALID) {
            /* the database refused or is away: the job is tried again */
            wh_log_error("scan %s: cannot record the result: %s", job->report_id,
                         wh_error_msg());
            retry_later(s, job, "the result could not be recorded in the database (the server "
                                "log has the details)");
        }
        if (rerr != WH_EINVALID)
            return;
        /* the adapter client checked the report: one the workers cannot read is a bug
         * of ours, an Error whose cause stays in the server log */
        report = summary = NULL;
        ext = WH_ERROR;
    }
    free(report);
    free(summary);
    int64_t t0 = wh_monotonic_us();
    int error = fp != 0    ? wh_error_set(WH_ERROR, "failpoint scan.run: injected failure")
                : ext < 0  ? ext
                           : scan_job(s, w, job);
    wh_metric_scan(wh_monotonic_us() - t0, error > 0);
    if (error > 0)
        return;
    if (error == WH_EBUSY) {
        retry_later(s, job, wh_error_msg());
        return;
    }
    /* the log is served to the project's readers: an unexpected failure's
     * message (which may name server paths) stays in the server log, as the
     * API does with its 500s */
    wh_log_warn("scan %s of %s failed: %s", job->report_id, job->digest, wh_error_msg());
    snprintf(log, sizeof(log), "%s",
             error == WH_ERROR ? "internal error (the server log has the details)"
                               : wh_error_msg());
    int ferr = wh_db_scan_finish(s->db, job->artifact_id, job->report_id, WH_SCAN_ERROR, "", NULL,
                                 NULL, log, wh_now_ms());
    if (ferr == WH_ENOTFOUND)
        wh_log_info("scan %s of %s was stopped or replaced: result dropped", job->report_id,
                    job->digest);
    else if (ferr < 0)
        wh_log_error("scan %s: cannot record the result: %s", job->report_id, wh_error_msg());
}

/* Waits on `cond` (under s->lock) for `ms` at most, or until stopping. */
static void wait_on(wh_scand *s, pthread_cond_t *cond, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += (long)ms * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&s->lock);
    if (!s->stopping)
        pthread_cond_timedwait(cond, &s->lock, &until);
    pthread_mutex_unlock(&s->lock);
}

static void idle_wait(wh_scand *s, int ms)
{
    wait_on(s, &s->wake, ms);
}

/*
 * An idle worker waits on a condition of the workers' own, so that the one
 * wake-up a queued job sends (wh_scand_kick) always reaches a worker, never
 * one of the other threads that sleep on s->wake.
 */
static void worker_wait(wh_scand *s, int ms)
{
    wait_on(s, &s->work, ms);
}

static bool stopping(wh_scand *s)
{
    pthread_mutex_lock(&s->lock);
    bool v = s->stopping;
    pthread_mutex_unlock(&s->lock);
    return v;
}

/*
 * A worker is background work: named "wharf-scan" (top, perf) and scheduled
 * SCHED_BATCH, so that when a push wakes it, it does not preempt the request
 * thread that woke it before that thread has answered. With the normal policy
 * the woken worker ran first on the same core and a manifest PUT into an
 * auto_scan project took about 0.5-1 ms longer (median of sequential pushes,
 * bench/scan_push.py with BENCH_CLIENTS=1); as a batch thread it takes its
 * fair share of the CPU all the same, so the queue still drains.
 */
static void worker_identity(void)
{
    struct sched_param sp = {0};
    pthread_setname_np(pthread_self(), "wharf-scan");
    wh_db_thread_background(true);
    int rc = pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    if (rc != 0)
        wh_log_warn("scan: a worker keeps the normal scheduling policy: %s", strerror(rc));
}

static void *worker(void *arg)
{
    wh_scand *s = arg;
    struct worker_db w = {0};
    struct wh_scan_job *job = wh_malloc(sizeof(*job));
    worker_identity();
    /* the failpoint scan.worker stands for a worker that never got going (health tests) */
    if (wh_failpoint("scan.worker") != 0) {
        wh_log_error("scan: a worker stopped at its start (failpoint scan.worker)");
        __atomic_sub_fetch(&s->alive, 1, __ATOMIC_RELAXED);
        free(job);
        return NULL;
    }
    while (!stopping(s)) {
        /* pushes in flight go first: their CPU and the write lock are theirs for a moment */
        wh_busy_pause(WH_SCAND_YIELD_MS);
        int error = wh_db_scan_claim(s->db, wh_now_ms(), job);
        if (error == WH_ENOTFOUND) {
            worker_wait(s, WH_SCAND_POLL_MS);
            continue;
        }
        if (error < 0) {
            wh_log_error("scan queue: %s", wh_error_msg());
            worker_wait(s, 1000);
            continue;
        }
        wh_log_info("scan %s of %s started (attempt %lld)", job->report_id, job->digest,
                    (long long)job->attempts);
        run_job(s, &w, job);
    }
    __atomic_sub_fetch(&s->alive, 1, __ATOMIC_RELAXED);
    free(job);
    wh_vulndb_close(w.db);
    return NULL;
}

/* ---- re-matching stored inventories ---- */

#define REMATCH_PAGE 64
#define UPDATE_RETRY_S 3600              /* a failed background update is tried again after */
#define CHANGES_KEEP_MS (90LL * 24 * 3600 * 1000) /* recorded changes are kept 90 days */

struct inv_page {
    int64_t id[REMATCH_PAGE];
    char *body[REMATCH_PAGE];
    size_t len[REMATCH_PAGE];
    size_t n;
};

static int take_inventory(int64_t id, const void *body, size_t len, void *payload)
{
    struct inv_page *p = payload;
    p->id[p->n] = id;
    p->body[p->n] = wh_malloc(len + 1);
    memcpy(p->body[p->n], body, len);
    p->body[p->n][len] = '\0';
    p->len[p->n++] = len;
    return 0;
}

struct targets {
    struct wh_rematch_target *v;
    size_t n, cap;
};

static int take_target(const struct wh_rematch_target *t, void *payload)
{
    struct targets *ts = payload;
    if (ts->n == ts->cap) {
        ts->cap = ts->cap ? ts->cap * 2 : 16;
        ts->v = wh_realloc(ts->v, ts->cap * sizeof(*ts->v));
    }
    ts->v[ts->n++] = *t;
    return 0;
}

/* A re-matched artifact whose findings changed, waiting for its write. */
struct pending {
    struct wh_rematch_target t;
    char report_id[WH_SCAN_ID_MAX];
    struct result res;
};

/* One page of inventories matched again: what the writes borrow, and the writes. */
struct rematch_page {
    struct wh_inventory *inv[REMATCH_PAGE];
    struct wh_findings *f[REMATCH_PAGE];
    struct pending *w;
    size_t nw, capw;
    struct wh_rematch_counts n; /* this page's */
    const char *run;            /* the run's database digest (NULL: no run, no cursor) */
    int64_t last;               /* the last inventory of the page done: the run's cursor */
    bool lost;                  /* the run is not this node's any more */
};

/* Matches one stored inventory again and queues the artifacts whose findings changed. */
static int rematch_one(wh_db *db, wh_match_memo *mm, const char *body, size_t len,
                       int64_t inv_id, struct rematch_page *pg, size_t slot)
{
    struct targets ts = {0};
    char fp[WH_FINGERPRINT_MAX];
    int error;
    if (wh_inventory_from_text(&pg->inv[slot], body, len) < 0) {
        error = wh_error_set(WH_EINVALID, "stored inventory %lld is not readable: %s",
                             (long long)inv_id, wh_error_msg());
        goto out;
    }
    if ((error = wh_match_memoized(&pg->f[slot], mm, pg->inv[slot])) < 0 ||
        (error = wh_db_inventory_artifacts(db, inv_id, take_target, &ts)) < 0)
        goto out;
    wh_findings_fingerprint(pg->f[slot], fp, sizeof(fp));
    for (size_t i = 0; i < ts.n; i++) {
        pg->n.artifacts++;
        if (strcmp(ts.v[i].fingerprint, fp) == 0)
            continue;
        if (pg->nw == pg->capw) {
            pg->capw = pg->capw ? pg->capw * 2 : 64;
            pg->w = wh_realloc(pg->w, pg->capw * sizeof(*pg->w));
        }
        struct pending *w = &pg->w[pg->nw];
        w->t = ts.v[i];
        wh_random_hex(w->report_id, 16);
        if ((error = result_build(&w->res, pg->f[slot], NULL, w->t.digest)) < 0) {
            result_dispose(&w->res);
            goto out;
        }
        pg->nw++;
    }
out:
    free(ts.v);
    return error;
}

/*
 * Writes a page's changed artifacts and, in a run, its cursor: one
 * transaction (wh_db_batch), so that a node taking the run over goes on
 * after the last page whose results are in. Logs each change.
 */
static int rematch_write(wh_db *db, void *payload)
{
    struct rematch_page *pg = payload;
    pg->n.changed = 0;
    for (size_t i = 0; i < pg->nw; i++) {
        struct pending *w = &pg->w[i];
        char *added = NULL, *removed = NULL;
        int error = wh_db_rematch_apply(db, &w->t, w->report_id, &w->res.r, wh_now_ms(), &added,
                                        &removed);
        if (error == WH_ENOTFOUND)
            continue; /* scanned again meanwhile: that scan has its own result */
        if (error < 0)
            return error;
        pg->n.changed++;
        if (strcmp(added, "[]") != 0 || strcmp(removed, "[]") != 0)
            wh_log_info("re-match: %s@%s: vulnerabilities added %s, removed %s",
                        w->t.repository, w->t.digest, added, removed);
        else
            wh_log_info("re-match: %s@%s: findings changed (fixes, severities or scores)",
                        w->t.repository, w->t.digest);
        free(added);
        free(removed);
    }
    if (!pg->run)
        return 0;
    int error = wh_db_rematch_progress(db, pg->run, pg->last, &pg->n, wh_now_ms());
    if (error == WH_ENOTFOUND) {
        pg->lost = true; /* taken over: this page's writes are rolled back */
        return wh_error_set(WH_ECONFLICT, "the re-match run was taken over by another node");
    }
    return error;
}

static void page_dispose(struct rematch_page *pg)
{
    for (size_t i = 0; i < pg->nw; i++)
        result_dispose(&pg->w[i].res);
    free(pg->w);
    for (size_t i = 0; i < REMATCH_PAGE; i++) {
        wh_findings_free(pg->f[i]);
        wh_inventory_free(pg->inv[i]);
    }
}

/* Keeps a re-match from going on until the server stops (the failpoint rematch.hold). */
static void rematch_hold(wh_scand *s, int64_t after)
{
    wh_log_warn("failpoint rematch.hold: re-match held after inventory %lld until the server "
                "stops", (long long)after);
    while (s && !stopping(s))
        idle_wait(s, WH_SCAND_POLL_MS);
}

/*
 * Matches the stored inventories with an id above `after` against `vdb`,
 * page by page; with `run` (a run of this node's, its database digest) each
 * page's results go with the run's cursor in one transaction. 0, WH_ECONFLICT
 * (the pool stops), WH_ENOTFOUND (the run was taken over) or WH_ERROR.
 */
static int rematch_walk(wh_db *db, wh_vulndb *vdb, wh_scand *s, const char *run, int64_t after,
                        struct wh_rematch_stats *st)
{
    struct inv_page page;
    wh_match_memo *mm = NULL;
    int64_t t0 = wh_monotonic_us();
    bool held = false;
    memset(st, 0, sizeof(*st));
    int error = wh_match_memo_new(&mm, vdb);
    while (error == 0 && !held) {
        struct rematch_page pg = {.run = run, .last = after};
        memset(&page, 0, sizeof(page));
        error = wh_db_inventory_walk(db, after, REMATCH_PAGE, take_inventory, &page);
        for (size_t i = 0; i < page.n; i++) {
            if (error == 0 && s && stopping(s))
                error = WH_ECONFLICT;
            /* the failpoint stands for a node that dies mid-way: what is done so far is
             * written with its cursor, then nothing more */
            if (error == 0 && !held && wh_failpoint("rematch.hold") != 0)
                held = true;
            if (error == 0 && !held) {
                pg.n.inventories++;
                int e = rematch_one(db, mm, page.body[i], page.len[i], page.id[i], &pg, i);
                if (e == WH_EINVALID) {
                    wh_log_warn("re-match: %s", wh_error_msg());
                    pg.n.failed++;
                } else {
                    error = e;
                }
                after = pg.last = page.id[i];
            }
            free(page.body[i]);
        }
        if (error == 0 && (pg.nw > 0 || (run && pg.n.inventories > 0)))
            error = wh_db_batch(db, rematch_write, &pg);
        if (error == 0) {
            st->inventories += (uint64_t)pg.n.inventories;
            st->artifacts += (uint64_t)pg.n.artifacts;
            st->changed += (uint64_t)pg.n.changed;
            st->failed += (uint64_t)pg.n.failed;
        } else if (pg.lost) {
            error = WH_ENOTFOUND;
        }
        page_dispose(&pg);
        if (page.n < REMATCH_PAGE)
            break;
    }
    wh_match_memo_free(mm);
    if (error == 0 && held) {
        rematch_hold(s, after);
        error = WH_ECONFLICT;
    }
    if (error == 0)
        error = wh_db_finding_text_gc(db);
    /* what it could not re-evaluate, for the log: a failure to count is no failure */
    int64_t skipped = 0;
    if (error == 0 && wh_db_reports_without_inventory(db, &skipped) < 0)
        wh_log_warn("re-match: %s", wh_error_msg());
    st->skipped = (uint64_t)skipped;
    st->us = wh_monotonic_us() - t0;
    if (error == WH_ECONFLICT)
        return wh_error_set(WH_ECONFLICT, "stopped");
    if (error == WH_ENOTFOUND)
        return wh_error_set(WH_ENOTFOUND, "the re-match run was taken over by another node");
    return error;
}

int wh_scand_rematch(wh_db *db, wh_vulndb *vdb, wh_scand *s, struct wh_rematch_stats *st)
{
    return rematch_walk(db, vdb, s, NULL, 0, st);
}

int wh_scand_rematch_run(wh_db *db, wh_vulndb *vdb, wh_scand *s, const struct wh_rematch_run *run,
                         struct wh_rematch_stats *st)
{
    return rematch_walk(db, vdb, s, run->vulndb, run->after_id, st);
}

/* The identity of the database file ("" when there is none). */
static void vulndb_identity(const char *path, char *out, size_t cap)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        out[0] = '\0';
        return;
    }
    snprintf(out, cap, "%llu:%llu:%lld:%lld.%09ld", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino, (long long)st.st_size,
             (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

/* The database the re-matcher has loaded, and what its run needs from this node. */
struct loaded {
    char ident[256];                /* the file's identity (vulndb_identity) */
    wh_vulndb *vdb;                 /* open while its run may need this node */
    char digest[WH_DIGEST_STR_MAX]; /* its content (wh_vulndb_digest) */
    bool queued;                    /* its run is known to exist */
    char seen[256];                 /* the other node's state last logged (logged once) */
};

static void loaded_drop(struct loaded *l)
{
    wh_vulndb_close(l->vdb);
    l->vdb = NULL;
    l->queued = false;
    l->seen[0] = '\0';
}

/* Opens the database at `id` (its identity) and names its content; false: try again later. */
static bool rematch_load(wh_scand *s, struct loaded *l, const char *id, bool first)
{
    struct wh_digest d;
    loaded_drop(l);
    snprintf(l->ident, sizeof(l->ident), "%s", id);
    l->digest[0] = '\0';
    if (!id[0])
        return true; /* no database: nothing to match against */
    if (wh_vulndb_open(&l->vdb, s->vulndb_path) < 0) {
        wh_log_warn("re-match: %s", wh_error_msg());
        return false;
    }
    if (wh_vulndb_count(l->vdb) == 0) {
        /* an empty database would clear every report: keep them */
        wh_log_warn("re-match: the new vulnerability database is empty; reports are kept");
        loaded_drop(l);
        return true;
    }
    if (wh_vulndb_digest(l->vdb, &d) < 0) {
        wh_log_warn("re-match: %s", wh_error_msg());
        loaded_drop(l);
        return false;
    }
    snprintf(l->digest, sizeof(l->digest), "%s", d.str);
    if (first)
        wh_log_info("re-match: vulnerability database content %.19s", l->digest);
    else
        wh_log_info("re-match: the vulnerability database changed (content %.19s)", l->digest);
    return true;
}

/* Logs `line` unless it is the one logged last for this database. */
static void rematch_note(struct loaded *l, const char *line)
{
    if (strcmp(l->seen, line) == 0)
        return;
    snprintf(l->seen, sizeof(l->seen), "%s", line);
    wh_log_info("%s", line);
}

/* Runs the claimed run `run` from its cursor to its end (or a stop, or its loss). */
static void rematch_take(wh_scand *s, struct loaded *l, const struct wh_rematch_run *run)
{
    struct wh_rematch_stats st;
    struct wh_rematch_run done;
    if (run->after_id > 0)
        wh_log_info("re-match: going on from inventory %lld (attempt %lld of the run)",
                    (long long)run->after_id, (long long)run->attempts);
    else
        wh_log_info("re-match: matching the stored inventories again");
    int error = wh_scand_rematch_run(s->db, l->vdb, s, run, &st);
    if (error == WH_ECONFLICT) {
        if (wh_db_rematch_release(s->db, run->vulndb) < 0)
            wh_log_warn("re-match: %s", wh_error_msg());
        return;
    }
    if (error == WH_ENOTFOUND) {
        wh_log_warn("re-match: %s", wh_error_msg());
        return;
    }
    if (error == 0)
        error = wh_db_rematch_finish(s->db, run->vulndb, "", wh_now_ms());
    if (error < 0) {
        char why[WH_SCAND_LOG_MAX], status[16] = "";
        int64_t due = 0;
        snprintf(why, sizeof(why), "%s", wh_error_msg());
        if (wh_db_rematch_retry(s->db, run->vulndb, why, wh_now_ms(), status, &due) < 0)
            wh_log_error("re-match: %s (and its failure could not be recorded: %s)", why,
                         wh_error_msg());
        else if (strcmp(status, "Pending") == 0)
            wh_log_warn("re-match: attempt %lld failed: %s; tried again in %lld s",
                        (long long)run->attempts, why, (long long)((due - wh_now_ms() + 999) / 1000));
        else
            wh_log_warn("re-match: failed after %lld attempts: %s", (long long)run->attempts, why);
        return;
    }
    /* the counts of the whole run, whichever nodes did its pages */
    if (wh_db_rematch_get(s->db, run->vulndb, &done) < 0) {
        wh_log_warn("re-match: %s", wh_error_msg());
        done.inventories = (int64_t)st.inventories;
        done.artifacts = (int64_t)st.artifacts;
        done.changed = (int64_t)st.changed;
    }
    wh_log_info("re-match: %lld inventories of %lld artifacts matched again in %.2f s: "
                "%lld artifacts changed",
                (long long)done.inventories, (long long)done.artifacts, (double)st.us / 1e6,
                (long long)done.changed);
    if (st.skipped > 0)
        wh_log_info("re-match: %llu scanned artifacts have no stored package inventory "
                    "(reports of external scanners, or scans stored before schema 9) and "
                    "were not matched again: scan them again (scan all) to refresh them",
                    (unsigned long long)st.skipped);
    if (wh_db_vuln_change_prune(s->db, wh_now_ms() - CHANGES_KEEP_MS) < 0 ||
        wh_db_rematch_prune(s->db, wh_now_ms() - CHANGES_KEEP_MS) < 0)
        wh_log_warn("re-match: %s", wh_error_msg());
    loaded_drop(l);
}

/*
 * One look at the run of the loaded database: queue it if no node did, take
 * it if it is due, else note what another node does with it; a run that
 * ended needs nothing more from this node.
 */
static void rematch_step(wh_scand *s, struct loaded *l)
{
    struct wh_rematch_run run;
    char line[256];
    bool created = false;
    if (!l->queued) {
        if (wh_db_rematch_queue(s->db, l->digest, wh_now_ms(), &created) < 0) {
            wh_log_warn("re-match: %s", wh_error_msg());
            return;
        }
        l->queued = true;
        if (created)
            wh_log_info("re-match: run of %.19s queued", l->digest);
    }
    int error = wh_db_rematch_claim(s->db, l->digest, wh_now_ms(), &run);
    if (error == 0) {
        rematch_take(s, l, &run);
        return;
    }
    if (error == WH_ENOTFOUND)
        error = wh_db_rematch_get(s->db, l->digest, &run);
    if (error == WH_ENOTFOUND) {
        l->queued = false; /* pruned meanwhile: queued again next time */
        return;
    }
    if (error < 0) {
        wh_log_warn("re-match: %s", wh_error_msg());
        return;
    }
    if (strcmp(run.status, "Success") == 0 || strcmp(run.status, "Error") == 0) {
        wh_log_info("re-match: the run of %.19s ended already (%s, node %s: %lld inventories, "
                    "%lld artifacts changed): nothing to do", l->digest, run.status,
                    run.holder[0] ? run.holder : "unnamed", (long long)run.inventories,
                    (long long)run.changed);
        loaded_drop(l);
        return;
    }
    if (strcmp(run.status, "Running") == 0)
        snprintf(line, sizeof(line), "re-match: node %s runs the re-match of this database; "
                 "waiting", run.holder[0] ? run.holder : "unnamed");
    else if (run.due_ms > wh_now_ms())
        snprintf(line, sizeof(line), "re-match: the run of this database waits for its "
                 "retry (attempt %lld failed)", (long long)run.attempts);
    else
        return; /* being claimed by another node, or due this instant: the next look */
    rematch_note(l, line);
}

/* ---- CVE export jobs (Harbor's /export/cve) ---- */

#define EXPORT_CSV_MAX (64u << 20)
#define EXPORT_SCANNER_SLOTS 64 /* artifacts whose scanner an export remembers */
#define EXPORT_KEEP_MS (7LL * 24 * 3600 * 1000) /* an export never downloaded is deleted after */

/* True when `value` matches one of the comma-separated patterns of `list` ('*' any run). */
static bool list_match(const char *list, const char *value)
{
    char pat[WH_EXPORT_FILTER_MAX];
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (n > 0 && n < sizeof(pat)) {
            memcpy(pat, p, n);
            pat[n] = '\0';
            if (fnmatch(pat, value, 0) == 0)
                return true;
        }
        p += n + (p[n] == ',');
    }
    return false;
}

struct export_run {
    const struct wh_cve_export *e;
    wh_db *db;
    struct wh_buf csv;
    int64_t rows;
    int64_t tag_artifact; /* artifact whose tags `tag_ok` answers for, 0 none */
    bool tag_ok;
    /* the scanner of recent artifacts (rows come by score, artifacts interleaved) */
    struct {
        int64_t artifact_id; /* 0: empty */
        char name[WH_SCANNER_NAME_MAX];
    } scanners[EXPORT_SCANNER_SLOTS];
    struct wh_scan_job *job; /* scratch for a lookup */
};

/* The name of the scanner whose findings `artifact_id` has: an external one's, else ours. */
static const char *scanner_of(struct export_run *r, int64_t artifact_id)
{
    size_t slot = (size_t)((uint64_t)artifact_id % EXPORT_SCANNER_SLOTS);
    char *name = r->scanners[slot].name;
    if (r->scanners[slot].artifact_id == artifact_id)
        return name;
    r->scanners[slot].artifact_id = artifact_id;
    snprintf(name, WH_SCANNER_NAME_MAX, "%s", WH_SCANNER_NAME);
    if (wh_db_scan_get(r->db, artifact_id, r->job) == 0 && r->job->scanner[0]) {
        json_t *sc = json_loads(r->job->scanner, 0, NULL);
        const char *n = json_string_value(json_object_get(sc, "name"));
        if (n && *n)
            snprintf(name, WH_SCANNER_NAME_MAX, "%s", n);
        json_decref(sc);
    }
    return name;
}

static int tag_matches(const char *name, void *payload)
{
    struct export_run *r = payload;
    if (list_match(r->e->tags, name)) {
        r->tag_ok = true;
        return 1;
    }
    return 0;
}

/* A CSV cell: quoted, quotes doubled; a cell a spreadsheet would read as a formula gets a ' first. */
static void csv_cell(struct wh_buf *b, const char *s, bool last)
{
    wh_buf_puts(b, "\"");
    if (s[0] && strchr("=+-@\t\r", s[0]))
        wh_buf_puts(b, "'");
    for (const char *p = s; *p; p++) {
        wh_buf_put(b, p, 1);
        if (*p == '"')
            wh_buf_put(b, p, 1);
    }
    wh_buf_puts(b, last ? "\"\r\n" : "\",");
}

static int export_row(const struct wh_vuln_item *v, void *payload)
{
    struct export_run *r = payload;
    const struct wh_cve_export *e = r->e;
    if (e->cve_ids[0] && !list_match(e->cve_ids, v->cve_id))
        return 0;
    if (e->repositories[0]) {
        const char *slash = strchr(v->repository, '/');
        if (!list_match(e->repositories, v->repository) &&
            !(slash && list_match(e->repositories, slash + 1)))
            return 0;
    }
    if (e->tags[0]) {
        if (r->tag_artifact != v->artifact_id) {
            r->tag_artifact = v->artifact_id;
            r->tag_ok = false;
            if (wh_db_artifact_tag_names(r->db, v->artifact_id, tag_matches, r) < 0)
                return WH_ERROR;
        }
        if (!r->tag_ok)
            return 0;
    }
    char id[32], score[32], cwes[512] = "";
    snprintf(id, sizeof(id), "%lld", (long long)++r->rows);
    /* Harbor's column: the ids comma-separated */
    json_t *cw = v->cwe_ids ? json_loads(v->cwe_ids, 0, NULL) : NULL;
    size_t k, used = 0;
    json_t *one;
    json_array_foreach(cw, k, one) {
        const char *t = json_string_value(one);
        int n = t ? snprintf(cwes + used, sizeof(cwes) - used, "%s%s", used ? "," : "", t) : 0;
        if (n < 0 || (size_t)n >= sizeof(cwes) - used)
            break;
        used += (size_t)n;
    }
    json_decref(cw);
    if (v->cvss3 > 0)
        snprintf(score, sizeof(score), "%.1f", v->cvss3);
    else
        score[0] = '\0';
    csv_cell(&r->csv, id, false);
    csv_cell(&r->csv, scanner_of(r, v->artifact_id), false);
    csv_cell(&r->csv, v->repository, false);
    csv_cell(&r->csv, v->digest, false);
    csv_cell(&r->csv, v->cve_id, false);
    csv_cell(&r->csv, v->package, false);
    csv_cell(&r->csv, v->version, false);
    csv_cell(&r->csv, v->fixed_version, false);
    csv_cell(&r->csv, wh_severity_name((enum wh_severity)v->severity), false);
    csv_cell(&r->csv, score, false);
    csv_cell(&r->csv, "", false);
    csv_cell(&r->csv, v->cvss3_vector ? v->cvss3_vector : "", false);
    csv_cell(&r->csv, "", false);
    csv_cell(&r->csv, cwes, true);
    if (r->csv.len > EXPORT_CSV_MAX)
        return wh_error_set(WH_ETOOBIG, "the export is larger than %u MiB: narrow its filters",
                            EXPORT_CSV_MAX >> 20);
    return 0;
}

/* Runs the queued exports, one after another. */
static void run_exports(wh_scand *s)
{
    struct wh_cve_export e;
    while (!stopping(s) && wh_db_export_claim(s->db, wh_now_ms(), &e) == 0) {
        struct export_run r = {.e = &e, .db = s->db};
        r.job = wh_malloc(sizeof(*r.job));
        wh_buf_init(&r.csv, EXPORT_CSV_MAX + (1u << 20));
        wh_buf_puts(&r.csv, "RowId,Scanner,Repository,Artifact Digest,CVE,Package,Current Version,"
                            "Fixed in version,Severity,CVSS V3 Score,CVSS V2 Score,CVSS V3 Vector,"
                            "CVSS V2 Vector,CWE Ids\r\n");
        int error = wh_db_project_findings(s->db, e.project_id, export_row, &r);
        int ferr;
        if (error < 0) {
            wh_log_warn("export %lld: %s", (long long)e.id, wh_error_msg());
            ferr = wh_db_export_finish(s->db, e.id, "Error",
                                       error == WH_ETOOBIG ? wh_error_msg()
                                                           : "internal error (see the server log)",
                                       NULL, 0, wh_now_ms());
        } else {
            wh_log_info("export %lld of %s: %lld findings, %zu bytes", (long long)e.id,
                        e.username, (long long)r.rows, r.csv.len);
            ferr = wh_db_export_finish(s->db, e.id, "Success", "", r.csv.data, r.csv.len,
                                       wh_now_ms());
        }
        if (ferr < 0 && ferr != WH_ENOTFOUND)
            wh_log_error("export %lld: %s", (long long)e.id, wh_error_msg());
        wh_buf_dispose(&r.csv);
        free(r.job);
    }
}

static void *rematcher(void *arg)
{
    wh_scand *s = arg;
    struct loaded l = {0};
    char id[256];
    int64_t pruned_ms = 0;
    bool known = false, first = true; /* the first look loads whatever file there is */
    wh_db_thread_background(true);
    while (!stopping(s)) {
        vulndb_identity(s->vulndb_path, id, sizeof(id));
        if (!known || strcmp(id, l.ident) != 0) {
            known = rematch_load(s, &l, id, first);
            first = first && !known;
        }
        if (l.vdb)
            rematch_step(s, &l);
        run_exports(s);
        if (wh_now_ms() - pruned_ms > 3600 * 1000) { /* hourly */
            pruned_ms = wh_now_ms();
            if (wh_db_export_prune(s->db, pruned_ms - EXPORT_KEEP_MS) < 0)
                wh_log_warn("export: %s", wh_error_msg());
        }
        idle_wait(s, 1000);
    }
    loaded_drop(&l);
    return NULL;
}

/* ---- the background database update ---- */

/* Records the start of an update of `trigger` (under no lock). */
static void update_begin(wh_scand *s, const char *trigger)
{
    pthread_mutex_lock(&s->lock);
    s->update.running = true;
    s->update.requested = false;
    snprintf(s->update.trigger, sizeof(s->update.trigger), "%s", trigger);
    s->update.started_ms = wh_now_ms();
    pthread_mutex_unlock(&s->lock);
}

static void update_end(wh_scand *s, bool ok, const char *message, int64_t next_ms)
{
    pthread_mutex_lock(&s->lock);
    s->update.running = false;
    s->update.finished_ms = wh_now_ms();
    snprintf(s->update.status, sizeof(s->update.status), "%s", ok ? "Success" : "Error");
    snprintf(s->update.message, sizeof(s->update.message), "%s", message);
    s->update.next_ms = next_ms;
    pthread_mutex_unlock(&s->lock);
}

/*
 * The updater: every scan.db_update_interval (counted from the database
 * file's age at the start, then from the last attempt; a failure is tried
 * again within UPDATE_RETRY_S), and whenever wh_scand_update_now asks.
 */
static void *updater(void *arg)
{
    wh_scand *s = arg;
    int64_t next = 0; /* when to try by schedule (unix seconds), 0: from the file's age */
    while (!stopping(s)) {
        int64_t now = wh_now_ms() / 1000;
        if (next == 0 && s->update_interval_s > 0) {
            struct stat st;
            next = stat(s->vulndb_path, &st) == 0 ? (int64_t)st.st_mtim.tv_sec + s->update_interval_s
                                                   : now;
            pthread_mutex_lock(&s->lock);
            s->update.next_ms = next * 1000;
            pthread_mutex_unlock(&s->lock);
        }
        pthread_mutex_lock(&s->lock);
        bool asked = s->update.requested;
        pthread_mutex_unlock(&s->lock);
        bool due = s->update_interval_s > 0 && now >= next;
        if (asked || due) {
            struct wh_vulndb_stats vst = {0};
            char msg[256];
            const char *what = asked ? "manual" : "background";
            update_begin(s, asked ? "Manual" : "Schedule");
            if (asked)
                wh_log_info("vulndb: manual update");
            else
                wh_log_info("vulndb: background update (scan.db_update_interval %u s)",
                            s->update_interval_s);
            if (wh_vulndb_update_configured(s->vulndb_path, s->data_dir, &vst) < 0) {
                unsigned retry = s->update_interval_s < UPDATE_RETRY_S ? s->update_interval_s
                                                                       : UPDATE_RETRY_S;
                snprintf(msg, sizeof(msg), "%s", wh_error_msg());
                if (s->update_interval_s > 0) {
                    wh_log_warn("vulndb: %s update failed: %s (next attempt in %u s)", what, msg,
                                retry);
                    next = now + retry;
                } else {
                    wh_log_warn("vulndb: %s update failed: %s", what, msg);
                }
                update_end(s, false, msg, s->update_interval_s > 0 ? next * 1000 : 0);
            } else {
                snprintf(msg, sizeof(msg), "%llu files, %llu advisories",
                         (unsigned long long)vst.files, (unsigned long long)vst.advisories);
                wh_log_info("vulndb: %s update done: %s", what, msg);
                if (s->update_interval_s > 0)
                    next = now + s->update_interval_s;
                update_end(s, true, msg, s->update_interval_s > 0 ? next * 1000 : 0);
            }
        }
        idle_wait(s, 1000);
    }
    return NULL;
}

void wh_scand_update_state(wh_scand *s, struct wh_vulndb_update_state *out)
{
    memset(out, 0, sizeof(*out));
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    *out = s->update;
    pthread_mutex_unlock(&s->lock);
    out->interval_s = s->update_interval_s;
}

const char *wh_scand_data_dir(const wh_scand *s)
{
    return s ? s->data_dir : NULL;
}

int wh_scand_update_now(wh_scand *s)
{
    if (!s || !s->updater)
        return wh_error_set(WH_ERROR, "the vulnerability database updater is not running");
    int error = 0;
    pthread_mutex_lock(&s->lock);
    if (s->update.running || s->update.requested)
        error = wh_error_set(WH_ECONFLICT, "a vulnerability database update is %s",
                             s->update.running ? "running" : "already asked for");
    else
        s->update.requested = true;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
    return error;
}

/*
 * The lease keeper: renews the leases of the jobs this node runs, and takes
 * back the jobs of nodes whose leases ended (a node that died mid-scan), a
 * few times per lease.
 */
static void *keeper(void *arg)
{
    wh_scand *s = arg;
    pthread_setname_np(pthread_self(), "wharf-lease");
    while (!stopping(s)) {
        int64_t requeued = 0;
        int64_t runs = 0, exports = 0;
        if (wh_db_scan_renew(s->db, wh_now_ms()) < 0 ||
            wh_db_scan_recover(s->db, wh_now_ms(), false, &requeued) < 0)
            wh_log_error("scan queue leases: %s", wh_error_msg());
        else if (requeued > 0)
            wh_log_info("scan: %lld job(s) of a node whose lease ended were queued again",
                        (long long)requeued);
        if (wh_db_rematch_renew(s->db, wh_now_ms()) < 0 ||
            wh_db_export_renew(s->db, wh_now_ms()) < 0 ||
            wh_db_rematch_recover(s->db, wh_now_ms(), false, &runs) < 0 ||
            wh_db_export_recover(s->db, wh_now_ms(), false, &exports) < 0)
            wh_log_error("re-match and export leases: %s", wh_error_msg());
        if (runs > 0)
            wh_log_info("re-match: the run of a node whose lease ended was queued again");
        if (exports > 0)
            wh_log_info("export: %lld export(s) of a node whose lease ended were queued again",
                        (long long)exports);
        idle_wait(s, wh_db_scan_lease(s->db) / 4);
    }
    return NULL;
}

int wh_scand_start(wh_scand **out, const struct wh_scand_config *cfg, wh_db *db, wh_store *store)
{
    int64_t requeued = 0;
    *out = NULL;
    if (wh_db_scan_recover(db, wh_now_ms(), true, &requeued) < 0)
        return WH_ERROR;
    if (requeued > 0)
        wh_log_info("scan: %lld job(s) cut off by a stop were queued again", (long long)requeued);
    /* this node's own runs and exports, which its previous run left, and any whose
     * node died: a live node's are left to it */
    int64_t runs = 0, exports = 0;
    if (wh_db_rematch_recover(db, wh_now_ms(), true, &runs) < 0 ||
        wh_db_export_recover(db, wh_now_ms(), true, &exports) < 0)
        return WH_ERROR;
    if (runs > 0)
        wh_log_info("re-match: a run cut off by a stop was queued again");
    if (exports > 0)
        wh_log_info("export: %lld export(s) cut off by a stop were queued again",
                    (long long)exports);
    wh_scand *s = wh_calloc(1, sizeof(*s));
    s->db = db;
    s->store = store;
    s->vulndb_path = wh_scand_vulndb_path(cfg->data_dir);
    s->cache_dir = wh_sprintf("%s/scan-cache", cfg->data_dir);
    s->data_dir = wh_strdup(cfg->data_dir);
    s->update_interval_s = cfg->update_interval_s;
    s->delegate = cfg->delegate;
    s->delegate_payload = cfg->delegate_payload;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    pthread_cond_init(&s->work, NULL);
    unsigned n = cfg->workers;
    if (n == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (unsigned)cores : 1;
    }
    if (n > WH_SCAND_MAX_WORKERS)
        n = WH_SCAND_MAX_WORKERS;
    for (unsigned i = 0; i < n; i++) {
        __atomic_add_fetch(&s->alive, 1, __ATOMIC_RELAXED); /* counted before it runs */
        if (pthread_create(&s->threads[i], NULL, worker, s) != 0) {
            __atomic_sub_fetch(&s->alive, 1, __ATOMIC_RELAXED);
            wh_scand_stop(s);
            return wh_error_set(WH_ERROR, "cannot start scan worker %u", i + 1);
        }
        s->nworkers = i + 1;
    }
    if (pthread_create(&s->rematch_thread, NULL, rematcher, s) != 0) {
        wh_scand_stop(s);
        return wh_error_set(WH_ERROR, "cannot start the re-matcher");
    }
    s->rematcher = true;
    /* with scan.db_update_interval 0 the updater only runs updates asked for */
    if (pthread_create(&s->update_thread, NULL, updater, s) != 0) {
        wh_scand_stop(s);
        return wh_error_set(WH_ERROR, "cannot start the vulnerability database updater");
    }
    s->updater = true;
    if (pthread_create(&s->keep_thread, NULL, keeper, s) != 0) {
        wh_scand_stop(s);
        return wh_error_set(WH_ERROR, "cannot start the scan lease keeper");
    }
    s->keeper = true;
    wh_log_info("scan: %u worker(s), vulnerability database %s, background update %s", n,
                s->vulndb_path, s->update_interval_s ? "on" : "off (scan.db_update_interval 0)");
    *out = s;
    return 0;
}

void wh_scand_workers(const wh_scand *s, unsigned *started, unsigned *alive)
{
    *started = s ? s->nworkers : 0;
    *alive = s ? __atomic_load_n(&s->alive, __ATOMIC_RELAXED) : 0;
}

void wh_scand_kick(wh_scand *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->lock);
}

void wh_scand_kick_all(wh_scand *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    pthread_cond_broadcast(&s->work);
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
}

void wh_scand_stop(wh_scand *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->wake);
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->lock);
    for (unsigned i = 0; i < s->nworkers; i++)
        pthread_join(s->threads[i], NULL);
    if (s->rematcher)
        pthread_join(s->rematch_thread, NULL);
    if (s->updater)
        pthread_join(s->update_thread, NULL);
    if (s->keeper)
        pthread_join(s->keep_thread, NULL);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->work);
    pthread_mutex_destroy(&s->lock);
    free(s->vulndb_path);
    free(s->cache_dir);
    free(s->data_dir);
    free(s);
}
