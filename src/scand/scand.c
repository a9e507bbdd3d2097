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
 */
#include "scand/scand.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "scan/scan.h"
#include "common/metrics.h"

#define WH_SCAND_POLL_MS 200
#define WH_SCAND_MAX_WORKERS 64
#define WH_SCAND_LOG_MAX 1024

struct wh_scand {
    wh_db *db;
    wh_store *store;
    char *vulndb_path;
    char *cache_dir;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
    unsigned nworkers;
    pthread_t threads[WH_SCAND_MAX_WORKERS];
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

static int store_open(void *payload, const struct wh_digest *d)
{
    int fd = -1;
    uint64_t size = 0;
    int error = wh_store_open_blob(payload, d, &fd, &size);
    return error < 0 ? error : fd;
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

/* Scans the job's image: 0 with the report, summary and severity, or an error with a message. */
static int scan_job(wh_scand *s, struct worker_db *w, const struct wh_scan_job *job,
                    char **report, char **summary, char *severity, size_t sevcap)
{
    struct wh_inventory *inv = NULL;
    struct wh_findings *findings = NULL;
    json_t *rep = NULL, *sum = NULL;
    struct wh_blob_source src = {store_open, s->store};
    struct wh_scan_opts opts = {.cache_dir = s->cache_dir, .trusted_store = true, .threads = 1};
    int error;

    if ((error = vulndb_fresh(w, s->vulndb_path)) < 0 ||
        (error = wh_scan_image(&inv, &src, job->digest, &opts)) < 0 ||
        (error = wh_match(&findings, w->db, inv)) < 0)
        goto out;
    rep = wh_report_json(findings, job->digest);
    sum = wh_report_summary(findings);
    *report = json_dumps(rep, JSON_COMPACT);
    *summary = json_dumps(sum, JSON_COMPACT);
    if (!*report || !*summary) {
        error = wh_error_set(WH_ERROR, "json encoding failed");
        goto out;
    }
    const char *sev = json_string_value(json_object_get(rep, "severity"));
    snprintf(severity, sevcap, "%s", sev ? sev : "None");
    wh_log_info("scan %s: %s: %u layers read, %u from cache, %zu packages, %zu findings",
                job->report_id, job->digest, opts.layers_read, opts.layers_cached, inv->npkgs,
                findings->n);
out:
    json_decref(rep);
    json_decref(sum);
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

static void run_job(wh_scand *s, struct worker_db *w, const struct wh_scan_job *job)
{
    char *report = NULL, *summary = NULL, severity[16] = "";
    char log[WH_SCAND_LOG_MAX] = "";
    if (wh_failpoint("scan.hold") != 0) {
        hold(s, job);
        return;
    }
    int fp = wh_failpoint("scan.run");
    int64_t t0 = wh_monotonic_us();
    int error = fp != 0 ? wh_error_set(WH_ERROR, "failpoint scan.run: injected failure")
                        : scan_job(s, w, job, &report, &summary, severity, sizeof(severity));
    wh_metric_scan(wh_monotonic_us() - t0, error == 0);
    if (error < 0) {
        /* the log is served to the project's readers: an unexpected failure's
         * message (which may name server paths) stays in the server log, as the
         * API does with its 500s */
        wh_log_warn("scan %s of %s failed: %s", job->report_id, job->digest, wh_error_msg());
        snprintf(log, sizeof(log), "%s",
                 error == WH_ERROR ? "internal error (the server log has the details)"
                                   : wh_error_msg());
    }
    int ferr = wh_db_scan_finish(s->db, job->artifact_id, job->report_id,
                                 error < 0 ? WH_SCAN_ERROR : WH_SCAN_SUCCESS, severity, summary,
                                 report, log, wh_now_ms());
    if (ferr == WH_ENOTFOUND)
        wh_log_info("scan %s of %s was stopped or replaced: result dropped", job->report_id,
                    job->digest);
    else if (ferr < 0)
        wh_log_error("scan %s: cannot record the result: %s", job->report_id, wh_error_msg());
    free(report);
    free(summary);
}

static void idle_wait(wh_scand *s, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += (long)ms * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&s->lock);
    if (!s->stopping)
        pthread_cond_timedwait(&s->wake, &s->lock, &until);
    pthread_mutex_unlock(&s->lock);
}

static bool stopping(wh_scand *s)
{
    pthread_mutex_lock(&s->lock);
    bool v = s->stopping;
    pthread_mutex_unlock(&s->lock);
    return v;
}

static void *worker(void *arg)
{
    wh_scand *s = arg;
    struct worker_db w = {0};
    struct wh_scan_job *job = wh_malloc(sizeof(*job));
    while (!stopping(s)) {
        int error = wh_db_scan_claim(s->db, wh_now_ms(), job);
        if (error == WH_ENOTFOUND) {
            idle_wait(s, WH_SCAND_POLL_MS);
            continue;
        }
        if (error < 0) {
            wh_log_error("scan queue: %s", wh_error_msg());
            idle_wait(s, 1000);
            continue;
        }
        wh_log_info("scan %s of %s started (attempt %lld)", job->report_id, job->digest,
                    (long long)job->attempts);
        run_job(s, &w, job);
    }
    free(job);
    wh_vulndb_close(w.db);
    wh_db_thread_done(s->db);
    return NULL;
}

int wh_scand_start(wh_scand **out, const struct wh_scand_config *cfg, wh_db *db, wh_store *store)
{
    int64_t requeued = 0;
    *out = NULL;
    if (wh_db_scan_recover(db, &requeued) < 0)
        return WH_ERROR;
    if (requeued > 0)
        wh_log_info("scan: %lld job(s) cut off by a stop were queued again", (long long)requeued);
    wh_scand *s = wh_calloc(1, sizeof(*s));
    s->db = db;
    s->store = store;
    s->vulndb_path = wh_scand_vulndb_path(cfg->data_dir);
    s->cache_dir = wh_sprintf("%s/scan-cache", cfg->data_dir);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    unsigned n = cfg->workers;
    if (n == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (unsigned)cores : 1;
    }
    if (n > WH_SCAND_MAX_WORKERS)
        n = WH_SCAND_MAX_WORKERS;
    for (unsigned i = 0; i < n; i++) {
        if (pthread_create(&s->threads[i], NULL, worker, s) != 0) {
            wh_scand_stop(s);
            return wh_error_set(WH_ERROR, "cannot start scan worker %u", i + 1);
        }
        s->nworkers = i + 1;
    }
    wh_log_info("scan: %u worker(s), vulnerability database %s", n, s->vulndb_path);
    *out = s;
    return 0;
}

void wh_scand_kick(wh_scand *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
}

void wh_scand_stop(wh_scand *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
    for (unsigned i = 0; i < s->nworkers; i++)
        pthread_join(s->threads[i], NULL);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    free(s->vulndb_path);
    free(s->cache_dir);
    free(s);
}
