/*
 * metrics.c: GET /metrics, the server's metrics in Prometheus' text format
 * (common/metrics.h has the counters; this adds the gauges read at scrape
 * time: connections, requests in flight, upload sessions, the scan queue
 * and free storage). Served without authentication, on the main listener or
 * on metrics.listen alone (docs/security.md says what it shows).
 */
#include "api/api.h"

#include <string.h>

#include "common/metrics.h"

#define METRICS_MAX (1 << 20) /* the text is about 30 KiB */

static const char json_type[] = "application/json; charset=utf-8";

int wh_api_metrics_handle(wh_req *r, void *payload)
{
    static const char not_found[] =
        "{\"errors\":[{\"code\":\"NOT_FOUND\",\"message\":\"resource not found\"}]}\n";
    static const char not_allowed[] = "{\"errors\":[{\"code\":\"METHOD_NOT_ALLOWED\","
                                      "\"message\":\"/metrics answers GET and HEAD\"}]}\n";
    const struct wh_metrics_source *src = payload;
    enum wh_method m = wh_req_method(r);
    struct wh_buf out;
    unsigned inflight = 0, conns = 0;
    int64_t uploads = -1, pending = -1, running = -1;
    uint64_t total = 0, free_bytes = 0;
    bool have_space = false;
    struct wh_gc_queue gcq = {-1, -1, -1, -1, -1};

    if (strcmp(wh_req_path(r), "/metrics") != 0) {
        wh_resp_send(r, 404, json_type, not_found, sizeof(not_found) - 1);
        return 0;
    }
    if (m != WH_HTTP_GET && m != WH_HTTP_HEAD) {
        wh_resp_header(r, "Allow", "GET, HEAD");
        wh_resp_send(r, 405, json_type, not_allowed, sizeof(not_allowed) - 1);
        return 0;
    }
    wh_http_stats(src->http, &inflight, &conns);
    if (src->db) {
        if (wh_db_upload_count(src->db, &uploads) < 0)
            uploads = -1;
        if (wh_db_scan_queue(src->db, &pending, &running) < 0)
            pending = running = -1;
        if (wh_db_gc_queue(src->db, wh_now_ms(), &gcq) < 0)
            gcq = (struct wh_gc_queue){-1, -1, -1, -1, -1};
    }
    /* PostgreSQL's connection pool; SQLite has none and the samples are left out */
    struct wh_db_pool_stats pool = {.size = -1, .in_use = -1};
    if (wh_db_pool_stats(&pool) < 0)
        pool.size = pool.in_use = -1;
    if (src->store)
        have_space = wh_store_capacity(src->store, &total, &free_bytes) == 0;
    const struct wh_metrics_extra extra[] = {
        {"wharf_http_open_connections", "Client connections open now.", conns},
        /* this scrape is one of them */
        {"wharf_http_requests_in_flight", "Requests being answered now.", inflight},
        {"wharf_registry_uploads_in_progress",
         "Blob upload sessions begun and not yet finished, cancelled or expired.", uploads},
        {"wharf_scan_queue_depth", "Scan jobs waiting for a worker.", pending},
        {"wharf_scans_running", "Scan jobs being run now.", running},
        {"wharf_gc_blob_reviews_queued", "Blobs queued for a garbage collection review.",
         gcq.blobs},
        {"wharf_gc_blob_reviews_due", "Queued blob reviews whose grace delay has passed.",
         gcq.blobs_due},
        {"wharf_gc_manifest_reviews_queued",
         "Artifacts queued for a garbage collection review.", gcq.manifests},
        {"wharf_gc_manifest_reviews_due",
         "Queued artifact reviews whose grace delay has passed.", gcq.manifests_due},
        {"wharf_gc_review_retries_max",
         "Most failed attempts of any queued review (a blob storage cannot delete).",
         gcq.max_review_count},
        {"wharf_db_pool_connections", "Database connections the pool may open (db.pool_size).",
         pool.size},
        {"wharf_db_pool_connections_in_use", "Pooled database connections leased by a thread now.",
         pool.in_use},
        {"wharf_storage_capacity_bytes", "Size of the file system holding the blobs.",
         have_space ? (int64_t)total : -1},
        {"wharf_storage_free_bytes", "Bytes the blob store may still write.",
         have_space ? (int64_t)free_bytes : -1},
    };
    wh_buf_init(&out, METRICS_MAX);
    if (wh_metrics_render(&out, extra, sizeof(extra) / sizeof(extra[0])) < 0) {
        wh_buf_dispose(&out);
        return -1; /* the server answers 500 */
    }
    static const char type[] = "text/plain; version=0.0.4; charset=utf-8";
    wh_resp_send_copy(r, 200, type, out.data ? out.data : "", out.len); /* HEAD: headers only */
    wh_buf_dispose(&out);
    return 0;
}
