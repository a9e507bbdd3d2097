/*
 * scans.c: Harbor's scan API over the registry's own scan queue
 * (HARBOR.md §3, §5): POST .../artifacts/{reference}/scan (202, 409 while a
 * scan is pending or running), POST .../scan/stop, GET
 * .../scan/{report_id}/log, the vulnerabilities addition (the stored report
 * keyed by its mime type) and the `scan_overview` of the artifact views.
 * The scans themselves run in scand/, never on a request thread.
 */
#include "api/api_int.h"

#include <stdlib.h>
#include <string.h>

#include "scan/scan.h"
#include "scand/scand.h"

bool api_scannable(const struct wh_artifact_info *a)
{
    bool manifest = strcmp(a->media_type, "application/vnd.oci.image.manifest.v1+json") == 0 ||
                    strcmp(a->media_type,
                           "application/vnd.docker.distribution.manifest.v2+json") == 0;
    bool image = strcmp(a->artifact_type, "application/vnd.oci.image.config.v1+json") == 0 ||
                 strcmp(a->artifact_type, "application/vnd.docker.container.image.v1+json") == 0;
    return manifest && image;
}

/* Whether the client takes the 1.1 report: no X-Accept-Vulnerabilities, or one naming it. */
static bool accepts_report(struct call *c)
{
    const char *h = wh_req_header(c->r, "X-Accept-Vulnerabilities");
    return !h || strstr(h, WH_REPORT_MIME) != NULL;
}

json_t *api_scan_overview(struct call *c, const struct wh_artifact_info *a)
{
    struct wh_scan_job *j = wh_pool_alloc(c->pool, sizeof(*j));
    if (!api_scannable(a) || !accepts_report(c) || wh_db_scan_get(c->api->db, a->id, j) < 0)
        return NULL;
    json_t *o = json_object();
    json_object_set_new(o, "report_id", json_string(j->report_id));
    json_object_set_new(o, "scan_status", json_string(j->status));
    if (j->severity[0])
        json_object_set_new(o, "severity", json_string(j->severity));
    int64_t duration = j->start_ms && j->end_ms >= j->start_ms ? (j->end_ms - j->start_ms) / 1000 : 0;
    json_object_set_new(o, "duration", json_integer(duration));
    json_t *summary = j->summary[0] ? json_loads(j->summary, 0, NULL) : NULL;
    if (summary)
        json_object_set_new(o, "summary", summary);
    if (j->start_ms)
        json_object_set_new(o, "start_time", json_string(api_time(c, j->start_ms)));
    if (j->end_ms)
        json_object_set_new(o, "end_time", json_string(api_time(c, j->end_ms)));
    json_object_set_new(o, "scanner", json_pack("{s:s,s:s,s:s}", "name", WH_SCANNER_NAME, "vendor",
                                                WH_SCANNER_NAME, "version", WH_SCANNER_VERSION));
    bool done = strcmp(j->status, WH_SCAN_SUCCESS) == 0;
    json_object_set_new(o, "complete_percent", json_integer(done ? 100 : 0));
    json_t *keyed = json_object();
    json_object_set_new(keyed, WH_REPORT_MIME, o);
    return keyed;
}

static int unsupported(struct call *c, const struct wh_artifact_info *a)
{
    const char *mt = a->artifact_type[0] && !api_is_index(a->media_type) ? a->artifact_type
                                                                         : a->media_type;
    return api_error(c, 400, "BAD_REQUEST",
                     wh_pool_sprintf(c->pool,
                                     "the configured scanner %s does not support scanning "
                                     "artifact with mime type %s",
                                     WH_SCANNER_NAME, mt));
}

int api_artifact_scan(struct call *c)
{
    struct wh_repo_info *ri = wh_pool_alloc(c->pool, sizeof(*ri));
    struct wh_artifact_info *a = wh_pool_alloc(c->pool, sizeof(*a));
    char id[WH_SCAN_ID_MAX], status[16] = "";
    if (api_writable(c) < 0 || api_load_artifact(c, ri, a) < 0)
        return -1;
    if (c->json) {
        const char *type = json_string_value(json_object_get(c->json, "scan_type"));
        if (type && strcmp(type, "vulnerability") != 0)
            return api_error(c, 400, "BAD_REQUEST",
                             wh_pool_sprintf(c->pool, "scan type %s is not supported", type));
    }
    if (!api_scannable(a))
        return unsupported(c, a);
    wh_random_hex(id, 16);
    int error = wh_db_scan_request(c->api->db, a->id, id, wh_now_ms(), status);
    if (error == WH_ECONFLICT)
        return api_error(c, 409, "CONFLICT",
                         wh_pool_sprintf(c->pool, "a previous scan process is %s", status));
    if (error < 0)
        return api_fail(c, error);
    wh_scand_kick(c->api->cfg.scand);
    return api_ok(c, 202);
}

int api_artifact_scan_stop(struct call *c)
{
    struct wh_repo_info *ri = wh_pool_alloc(c->pool, sizeof(*ri));
    struct wh_artifact_info *a = wh_pool_alloc(c->pool, sizeof(*a));
    char status[16] = "";
    if (api_writable(c) < 0 || api_load_artifact(c, ri, a) < 0)
        return -1;
    int error = wh_db_scan_stop(c->api->db, a->id, wh_now_ms(), status);
    if (error == WH_ENOTFOUND)
        return api_error(c, 404, "NOT_FOUND",
                         wh_pool_sprintf(c->pool, "no scan of %s@%s to stop", ri->name, a->digest));
    if (error == WH_ECONFLICT)
        return api_error(c, 409, "CONFLICT",
                         wh_pool_sprintf(c->pool, "the scan is %s: only a pending or running "
                                                  "scan can be stopped",
                                         status));
    if (error < 0)
        return api_fail(c, error);
    return api_ok(c, 202);
}

int api_artifact_scan_log(struct call *c)
{
    struct wh_repo_info *ri = wh_pool_alloc(c->pool, sizeof(*ri));
    struct wh_artifact_info *a = wh_pool_alloc(c->pool, sizeof(*a));
    char *log = NULL;
    if (api_load_artifact(c, ri, a) < 0)
        return -1;
    int error = wh_db_scan_log(c->api->db, a->id, c->param[3], &log);
    if (error == WH_ENOTFOUND)
        return api_error(c, 404, "NOT_FOUND",
                         wh_pool_sprintf(c->pool, "report %s of %s@%s not found", c->param[3],
                                         ri->name, a->digest));
    if (error < 0)
        return api_fail(c, error);
    wh_resp_send_copy(c->r, 200, "text/plain; charset=utf-8", log, strlen(log));
    free(log);
    return 0;
}

int api_artifact_vulnerabilities(struct call *c)
{
    struct wh_repo_info *ri = wh_pool_alloc(c->pool, sizeof(*ri));
    struct wh_artifact_info *a = wh_pool_alloc(c->pool, sizeof(*a));
    char *text = NULL;
    if (api_load_artifact(c, ri, a) < 0)
        return -1;
    /* no report (never scanned, or not of a type the client accepts): Harbor's {} */
    if (!api_scannable(a) || !accepts_report(c))
        return api_json(c, 200, json_object());
    int error = wh_db_scan_report(c->api->db, a->id, &text);
    if (error == WH_ENOTFOUND)
        return api_json(c, 200, json_object());
    if (error < 0)
        return api_fail(c, error);
    json_t *report = json_loads(text, 0, NULL);
    free(text);
    if (!report)
        return api_fail(c, wh_error_set(WH_ERROR, "the stored report of %s@%s is unreadable",
                                        ri->name, a->digest));
    json_t *out = json_object();
    json_object_set_new(out, WH_REPORT_MIME, report);
    return api_json(c, 200, out);
}
