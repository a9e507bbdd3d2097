/*
 * metrics: the server's counters, gauges and histograms, rendered in
 * Prometheus' text format (version 0.0.4) for GET /metrics. Updating one is
 * lock-free and cheap enough for every request: counters live in a few
 * shards of relaxed atomics, each padded to its own cache lines, and a
 * thread always adds to the same shard, so threads on different cores
 * rarely touch the same line. A scrape sums the shards; it sees each counter
 * as of some moment during the scrape (counters never go down).
 *
 * A second header of common/ (beside common.h) so that the modules that
 * count (http, registry, acl, db, scand) need not grow common.h.
 */
#ifndef WH_METRICS_H
#define WH_METRICS_H

#include <stdint.h>

#include "common/common.h"

/* Method classes of wharf_http_requests_total, in http.h's enum wh_method order. */
#define WH_METRICS_METHODS 7
/* Plain counters. */
enum wh_metric {
    WH_METRIC_BYTES_IN,          /* request body bytes received */
    WH_METRIC_BYTES_OUT,         /* response body bytes delivered */
    WH_METRIC_LOGIN_FAILED,      /* logins refused for bad credentials */
    WH_METRIC_DB_WRITE_FAILED,   /* database statements that failed (full disk, I/O, lock) */
    WH_METRIC_GC_BLOBS_DELETED,  /* blobs the garbage collector deleted */
    WH_METRIC_GC_BYTES_FREED,    /* their bytes */
    WH_METRIC_GC_ARTIFACTS_DELETED, /* untagged or orphaned artifacts it deleted */
    WH_METRIC_AUDIT_PURGED,      /* audit entries purged by /system/purgeaudit runs */
    WH_METRIC_DB_POOL_WAITS,     /* times a thread waited for a pooled database connection */
    WH_METRIC_DB_LOCK_WAITS,     /* times a request thread found SQLite's writer taken */
    WH_METRIC_DB_LOCK_WAIT_US,   /* microseconds request threads waited for it */
    WH_METRIC_PASSWORD_CHECKS,   /* password or robot secret hashes computed (cache misses) */
    WH_METRIC_TOKEN_CHECKS,      /* token signatures verified (cache misses) */
    WH_METRIC_COUNT_
};
/* Adds `n` to a counter. */
void wh_metric_add(enum wh_metric m, uint64_t n);
/*
 * Counts one finished request: its method class (0..WH_METRICS_METHODS-1,
 * http.h's enum wh_method), its status (its class: 1xx..5xx) and its
 * duration in microseconds (the latency histogram of its method class).
 */
void wh_metric_request(unsigned method, int status, int64_t us);
/* Counts one finished scan and its duration in microseconds; `ok`: Success. */
void wh_metric_scan(int64_t us, bool ok);

/*
 * Gauges a scrape reads from elsewhere (the HTTP server, the database): a
 * sample's name, its HELP text and its value, or a negative value when it
 * could not be read (the sample is then left out, never reported as 0).
 */
struct wh_metrics_extra {
    const char *name; /* "wharf_scan_queue_depth" */
    const char *help;
    int64_t value;
};
/*
 * Appends every metric to `out` in Prometheus' text format, then the gauges
 * in `extra` (`nextra` of them). 0, or WH_ETOOBIG when `out`'s cap is met.
 */
int wh_metrics_render(struct wh_buf *out, const struct wh_metrics_extra *extra, size_t nextra);

#endif
