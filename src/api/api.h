/*
 * api: the REST API at /api/v2.0/, in Harbor's shape:
 * projects and their metadata, repositories, artifacts and tags (with
 * additions, copies and labels), members, robot accounts, users, labels,
 * quotas, audit logs, system information, health, statistics and search.
 * JSON in and out, `page`/`page_size` pagination with `X-Total-Count` and
 * `Link`, errors as {"errors":[{"code","message"}]}.
 * Every route sits in one table with the permission it needs; the OpenAPI
 * document served at /api/v2.0/swagger.json describes the same routes.
 */
#ifndef WH_API_H
#define WH_API_H

#include <stdbool.h>
#include <stddef.h>

#include "acl/acl.h"
#include "db/db.h"
#include "http/http.h"
#include "storage/storage.h"

typedef struct wh_api wh_api;

struct wh_api_config {
    const char *version;        /* reported as harbor_version in /systeminfo */
    bool read_only;             /* refuse every change (403 DENIED) */
    bool deletes_disabled;      /* registry.delete_enabled: false: no repository, artifact
                                 * or tag is deleted (403 DENIED) */
    bool admin_only_creation;   /* project_creation_restriction = adminonly */
    struct wh_scand *scand;     /* scan workers woken when a scan is queued (may be NULL) */
    unsigned scanner_timeout_s; /* answer time allowed to an external scanner (ping, metadata) */
    struct wh_adapter *adapter; /* the built-in scanner's adapter (its metadata), may be NULL */
    struct wh_scanall *scanall; /* scan-all thread woken by a run or schedule (may be NULL) */
    struct wh_gc *gc;           /* gc thread woken by a run or schedule (may be NULL) */
};

/*
 * Creates the API over `db`, `store` and `acl` (all borrowed; they must
 * outlive it). Returns 0; `*out` is the caller's, free with wh_api_free.
 */
int wh_api_new(wh_api **out, wh_db *db, wh_store *store, wh_acl *acl,
               const struct wh_api_config *cfg);
void wh_api_free(wh_api *api);
/* The answers' defaults of /api/ (wh_http_defaults): Harbor's error body on
 * the errors the HTTP layer gives by itself. */
extern const struct wh_http_defaults wh_api_http_defaults;
/* The route handler for the "/api/v2.0/" prefix (payload: the wh_api). */
int wh_api_handle(wh_req *req, void *payload);
/* The route handler for the "/api/v1/" prefix: the scanner adapter API (payload: the
 * wh_adapter, see adapter.h and v1.c). */
int wh_api_v1_handle(wh_req *req, void *payload);

/* What GET /metrics reads besides the counters (all borrowed; db and store may be NULL). */
struct wh_metrics_source {
    wh_http *http; /* the registry's listener: its connections and requests in flight */
    wh_db *db;     /* upload sessions, the scan queue */
    wh_store *store; /* free space */
};
/*
 * The route handler for "/metrics" (payload: a struct wh_metrics_source):
 * GET and HEAD of exactly /metrics, in Prometheus' text format (metrics.c).
 */
int wh_api_metrics_handle(wh_req *req, void *payload);

/* One route of the table: method ("GET") and path template relative to
 * /api/v2.0 ("/projects/{project_name_or_id}"). */
struct wh_api_route_info {
    const char *method;
    const char *path;
};
/* Number of routes in the table. */
size_t wh_api_route_count(void);
/* Route `i` (< wh_api_route_count()); strings are static. */
void wh_api_route_get(size_t i, struct wh_api_route_info *out);
/* The OpenAPI (swagger 2.0) document served at /api/v2.0/swagger.json
 * (static storage, NUL-terminated); `*len` may be NULL. */
const char *wh_api_swagger(size_t *len);

#endif
