/*
 * metrics.c: see metrics.h. Every counter is a slot in each of SHARDS
 * arrays of relaxed atomics; a thread picks its shard once (round robin)
 * and adds there, so an update is one uncontended atomic add in the common
 * case and never a lock. Histograms keep one counter per bucket (not
 * cumulative: an observation touches one bucket); the scrape accumulates.
 */
#include "common/metrics.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define SHARDS 8
#define STATUS_CLASSES 5 /* 1xx .. 5xx */

/* Bucket bounds in microseconds; the last bucket is +Inf. */
static const int64_t http_le_us[] = {500,    1000,   2500,   5000,    10000,   25000,   50000,
                                     100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
#define HTTP_BUCKETS (sizeof(http_le_us) / sizeof(http_le_us[0]) + 1)
static const int64_t scan_le_us[] = {1000000,   2500000,   5000000,   10000000,   30000000,
                                     60000000,  120000000, 300000000, 600000000, 1800000000};
#define SCAN_BUCKETS (sizeof(scan_le_us) / sizeof(scan_le_us[0]) + 1)

/* Slots of a shard. */
#define REQ(m, c) ((m) * STATUS_CLASSES + (c))
#define LAT0 (WH_METRICS_METHODS * STATUS_CLASSES)
#define LAT(m, b) (LAT0 + (m) * HTTP_BUCKETS + (b))
#define LATSUM0 (LAT0 + WH_METRICS_METHODS * HTTP_BUCKETS)
#define LATSUM(m) (LATSUM0 + (m))
#define PLAIN0 (LATSUM0 + WH_METRICS_METHODS)
#define SCAN0 (PLAIN0 + WH_METRIC_COUNT_)
#define SCANSUM (SCAN0 + SCAN_BUCKETS)
#define SCAN_OK (SCANSUM + 1)
#define SCAN_ERR (SCANSUM + 2)
#define SLOTS (SCANSUM + 3)

struct shard {
    _Alignas(64) _Atomic uint64_t v[SLOTS]; /* whole cache lines: shards never share one */
};

static struct shard shards[SHARDS];
static _Atomic unsigned next_shard;
static _Thread_local unsigned my_shard = UINT_MAX;

static const char *const method_names[WH_METRICS_METHODS] = {"GET",   "HEAD",   "PUT", "POST",
                                                             "PATCH", "DELETE", "OTHER"};

static inline struct shard *shard(void)
{
    if (__builtin_expect(my_shard == UINT_MAX, 0))
        my_shard = atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed) % SHARDS;
    return &shards[my_shard];
}

static inline void add(unsigned slot, uint64_t n)
{
    atomic_fetch_add_explicit(&shard()->v[slot], n, memory_order_relaxed);
}

static uint64_t total(unsigned slot)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < SHARDS; i++)
        sum += atomic_load_explicit(&shards[i].v[slot], memory_order_relaxed);
    return sum;
}

void wh_metric_add(enum wh_metric m, uint64_t n)
{
    add(PLAIN0 + (unsigned)m, n);
}

static unsigned bucket(const int64_t *le, unsigned n, int64_t us)
{
    unsigned b = 0;
    while (b < n && us > le[b])
        b++;
    return b; /* n: +Inf */
}

void wh_metric_request(unsigned method, int status, int64_t us)
{
    if (method >= WH_METRICS_METHODS)
        method = WH_METRICS_METHODS - 1;
    int c = status / 100 - 1;
    if (c < 0 || c >= STATUS_CLASSES)
        c = STATUS_CLASSES - 1;
    if (us < 0)
        us = 0;
    struct shard *s = shard();
    atomic_fetch_add_explicit(&s->v[REQ(method, (unsigned)c)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->v[LAT(method, bucket(http_le_us, HTTP_BUCKETS - 1, us))], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&s->v[LATSUM(method)], (uint64_t)us, memory_order_relaxed);
}

void wh_metric_scan(int64_t us, bool ok)
{
    if (us < 0)
        us = 0;
    add(SCAN0 + bucket(scan_le_us, SCAN_BUCKETS - 1, us), 1);
    add(SCANSUM, (uint64_t)us);
    add(ok ? SCAN_OK : SCAN_ERR, 1);
}

/* ---- rendering ---- */

static int head(struct wh_buf *out, const char *name, const char *type, const char *help)
{
    return wh_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int seconds(struct wh_buf *out, uint64_t us)
{
    return wh_buf_printf(out, "%llu.%06llu", (unsigned long long)(us / 1000000),
                         (unsigned long long)(us % 1000000));
}

/* One histogram: `labels` ("method=\"GET\"," or ""), `n` buckets from `slot0`. */
static int histogram(struct wh_buf *out, const char *name, const char *labels,
                     const int64_t *le, unsigned n, unsigned slot0, unsigned sum_slot)
{
    uint64_t cum = 0;
    int e = 0;
    for (unsigned b = 0; b < n && e == 0; b++) {
        cum += total(slot0 + b);
        if (b + 1 < n)
            e = wh_buf_printf(out, "%s_bucket{%sle=\"", name, labels);
        else
            e = wh_buf_printf(out, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels,
                              (unsigned long long)cum);
        if (e == 0 && b + 1 < n) {
            /* the bound in seconds, without trailing zeros: 0.0005, 0.25, 1, 10 */
            char text[32];
            snprintf(text, sizeof(text), "%.6f", (double)le[b] / 1e6);
            char *end = text + strlen(text) - 1;
            while (*end == '0')
                *end-- = '\0';
            if (*end == '.')
                *end = '\0';
            e = wh_buf_printf(out, "%s\"} %llu\n", text, (unsigned long long)cum);
        }
    }
    size_t nl = strlen(labels);
    if (e == 0)
        e = wh_buf_printf(out, "%s_sum%s%.*s%s ", name, nl ? "{" : "", (int)(nl ? nl - 1 : 0),
                          labels, nl ? "}" : "");
    if (e == 0)
        e = seconds(out, total(sum_slot));
    if (e == 0)
        e = wh_buf_printf(out, "\n%s_count%s%.*s%s %llu\n", name, nl ? "{" : "",
                          (int)(nl ? nl - 1 : 0), labels, nl ? "}" : "",
                          (unsigned long long)cum);
    return e;
}

int wh_metrics_render(struct wh_buf *out, const struct wh_metrics_extra *extra, size_t nextra)
{
    static const char *const classes[STATUS_CLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    static const struct {
        enum wh_metric m;
        const char *name, *help;
    } plain[] = {
        {WH_METRIC_BYTES_IN, "wharf_http_request_bytes_total",
         "Request body bytes received."},
        {WH_METRIC_BYTES_OUT, "wharf_http_response_bytes_total",
         "Response body bytes delivered to clients."},
        {WH_METRIC_LOGIN_FAILED, "wharf_auth_failed_logins_total",
         "Logins refused for a wrong name, password or robot secret."},
        {WH_METRIC_DB_WRITE_FAILED, "wharf_db_failures_total",
         "Database statements that failed (a full disk, an I/O error, a lock timeout)."},
        {WH_METRIC_GC_BLOBS_DELETED, "wharf_gc_blobs_deleted_total",
         "Blobs the garbage collector deleted from storage."},
        {WH_METRIC_GC_BYTES_FREED, "wharf_gc_bytes_freed_total",
         "Bytes of the blobs the garbage collector deleted."},
        {WH_METRIC_GC_ARTIFACTS_DELETED, "wharf_gc_artifacts_deleted_total",
         "Untagged or orphaned artifacts the garbage collector deleted."},
        {WH_METRIC_AUDIT_PURGED, "wharf_audit_purged_total",
         "Audit log entries deleted by purge runs."},
        {WH_METRIC_DB_POOL_WAITS, "wharf_db_pool_waits_total",
         "Times a thread found every pooled database connection in use and waited (PostgreSQL)."},
        {WH_METRIC_DB_LOCK_WAITS, "wharf_db_lock_waits_total",
         "Times a request found the database's write lock taken and waited (SQLite)."},
        {WH_METRIC_DB_LOCK_WAIT_US, "wharf_db_lock_wait_seconds_total",
         "Time requests waited for the database's write lock (SQLite)."},
        {WH_METRIC_PASSWORD_CHECKS, "wharf_auth_password_checks_total",
         "Passwords and robot secrets checked against their stored hash (not found among "
         "the recently verified ones)."},
        {WH_METRIC_TOKEN_CHECKS, "wharf_auth_token_signature_checks_total",
         "Bearer token signatures verified (not found among the recently verified tokens)."},
    };
    int e = head(out, "wharf_http_requests_total", "counter",
                 "HTTP requests answered, by method and status class (4xx includes clients "
                 "that went away before the answer).");
    for (unsigned m = 0; m < WH_METRICS_METHODS && e == 0; m++)
        for (unsigned c = 0; c < STATUS_CLASSES && e == 0; c++)
            e = wh_buf_printf(out, "wharf_http_requests_total{method=\"%s\",code=\"%s\"} %llu\n",
                              method_names[m], classes[c], (unsigned long long)total(REQ(m, c)));
    if (e == 0)
        e = head(out, "wharf_http_request_duration_seconds", "histogram",
                 "Time from a request's headers to its completion, by method.");
    for (unsigned m = 0; m < WH_METRICS_METHODS && e == 0; m++) {
        char labels[32];
        snprintf(labels, sizeof(labels), "method=\"%s\",", method_names[m]);
        e = histogram(out, "wharf_http_request_duration_seconds", labels, http_le_us,
                      HTTP_BUCKETS, LAT(m, 0), LATSUM(m));
    }
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]) && e == 0; i++) {
        e = head(out, plain[i].name, "counter", plain[i].help);
        uint64_t v = total(PLAIN0 + (unsigned)plain[i].m);
        if (e == 0 && plain[i].m == WH_METRIC_DB_LOCK_WAIT_US) /* kept in us, shown in s */
            e = wh_buf_printf(out, "%s %llu.%06llu\n", plain[i].name,
                              (unsigned long long)(v / 1000000), (unsigned long long)(v % 1000000));
        else if (e == 0)
            e = wh_buf_printf(out, "%s %llu\n", plain[i].name, (unsigned long long)v);
    }
    if (e == 0)
        e = head(out, "wharf_scan_duration_seconds", "histogram",
                 "Time a vulnerability scan took, from its start to its result.");
    if (e == 0)
        e = histogram(out, "wharf_scan_duration_seconds", "", scan_le_us, SCAN_BUCKETS, SCAN0,
                      SCANSUM);
    if (e == 0)
        e = head(out, "wharf_scans_total", "counter", "Vulnerability scans finished, by result.");
    if (e == 0)
        e = wh_buf_printf(out, "wharf_scans_total{result=\"success\"} %llu\n"
                               "wharf_scans_total{result=\"error\"} %llu\n",
                          (unsigned long long)total(SCAN_OK), (unsigned long long)total(SCAN_ERR));
    for (size_t i = 0; i < nextra && e == 0; i++) {
        if (extra[i].value < 0)
            continue;
        e = head(out, extra[i].name, "gauge", extra[i].help);
        if (e == 0)
            e = wh_buf_printf(out, "%s %lld\n", extra[i].name, (long long)extra[i].value);
    }
    return e < 0 ? WH_ETOOBIG : 0;
}
