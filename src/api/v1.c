/*
 * v1.c: the pluggable scanner API that wharf serves at /api/v1 when
 * scan.adapter.enabled is on, so that a Harbor (or another
 * wharf) can register wharf as its scanner:
 *
 *   GET  /api/v1/metadata                  200 the scanner's metadata
 *   POST /api/v1/scan                      202 {"id"}; 400 bad JSON; 422 bad field; 429 full
 *   GET  /api/v1/scan/{id}/report          302 + Refresh-After while it runs; 200 the report;
 *                                          404 unknown id; 500 the scan failed
 *
 * Every call presents scan.adapter.token, as `Authorization: Bearer <token>`
 * or `X-ScannerAdapter-API-Key: <token>` (two of the registration auth
 * types Harbor offers): the API makes wharf fetch URLs it is given, which
 * must not be anybody's to ask (docs/security.md). Errors are the spec's
 * {"error":{"message"}}.
 */
#include "api/api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "adapter/adapter.h"
#include "scan/scan.h"

#define V1_PREFIX "/api/v1"
#define V1_BODY_MAX (64u << 10) /* a scan request */

struct v1 {
    wh_adapter *a;
    wh_req *r;
    struct wh_buf body;
};

static int v1_error(wh_req *r, int status, const char *message)
{
    json_t *doc = json_pack("{s:{s:s}}", "error", "message", message);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    wh_resp_send_copy(r, status, WH_ADAPTER_MIME_ERROR, text ? text : "{}",
                      text ? strlen(text) : 2);
    free(text);
    return -1;
}

static int v1_json(wh_req *r, int status, const char *content_type, json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (!text)
        return v1_error(r, 500, "json encoding failed");
    wh_resp_send_copy(r, status, content_type, text, strlen(text));
    free(text);
    return 0;
}

/* Whether the client takes `mime` (no Accept, any type, or one naming it). */
static bool accepts(wh_req *r, const char *mime)
{
    const char *h = wh_req_header(r, "Accept");
    if (!h || !*h || strstr(h, "*/*"))
        return true;
    /* compare the type and its version, ignoring spaces after ';' */
    const char *semi = strchr(mime, ';');
    size_t tl = semi ? (size_t)(semi - mime) : strlen(mime);
    for (const char *p = h; (p = strstr(p, "application/")) != NULL; p++) {
        if (strncmp(p, mime, tl) != 0)
            continue;
        if (!semi)
            return true;
        const char *ver = strstr(mime, "version=");
        const char *end = p + tl;
        size_t plen = strcspn(end, ",");
        const char *hv = strstr(end, "version=");
        if (ver && hv && hv < end + plen && strncmp(hv, ver, strlen(ver)) == 0)
            return true;
    }
    return false;
}

static int report(struct v1 *v, const char *id)
{
    wh_req *r = v->r;
    const char *mime = NULL;
    if (accepts(r, WH_REPORT_MIME))
        mime = WH_REPORT_MIME;
    else if (accepts(r, WH_ADAPTER_MIME_REPORT_NATIVE))
        mime = WH_ADAPTER_MIME_REPORT_NATIVE;
    else
        return v1_error(r, 501, "unsupported report mime type: this scanner produces "
                                WH_ADAPTER_MIME_REPORT_NATIVE " and " WH_REPORT_MIME);
    char *text = NULL;
    unsigned refresh = 0;
    int error = wh_adapter_report(v->a, id, &text, &refresh);
    if (error == WH_EDEFERRED) {
        char h[16];
        snprintf(h, sizeof(h), "%u", refresh);
        wh_resp_header(r, "Refresh-After", h);
        /* no Location: HTTP clients that follow redirects (Go's, Harbor's) would then
         * ask again at once instead of handing the 302 to the caller */
        wh_resp_send_empty(r, 302);
        return 0;
    }
    if (error == WH_ENOTFOUND)
        return v1_error(r, 404, wh_error_msg());
    if (error < 0)
        return v1_error(r, 500, wh_error_msg());
    wh_resp_send_copy(r, 200, mime, text, strlen(text));
    free(text);
    return 0;
}

static int submit(struct v1 *v)
{
    wh_req *r = v->r;
    json_error_t jerr;
    json_t *doc = v->body.len ? json_loadb(v->body.data, v->body.len, 0, &jerr) : NULL;
    if (!doc)
        return v1_error(r, 400, v->body.len ? "the scan request is not JSON"
                                            : "the scan request has no body");
    char id[WH_ADAPTER_ID_MAX];
    int error = wh_adapter_submit(v->a, doc, id);
    json_decref(doc);
    if (error == WH_EINVALID)
        return v1_error(r, 422, wh_error_msg());
    if (error == WH_EBUSY) {
        wh_resp_header(r, "Retry-After", "5");
        return v1_error(r, 429, wh_error_msg());
    }
    if (error < 0) {
        wh_log_error("scanner adapter: %s", wh_error_msg());
        return v1_error(r, 500, "internal error");
    }
    wh_log_info("scanner adapter: scan request %s accepted", id);
    return v1_json(r, 202, WH_ADAPTER_MIME_SCAN_RESP, json_pack("{s:s}", "id", id));
}

static int on_body(wh_req *r, const char *p, size_t n, void *ctx)
{
    struct v1 *v = ctx;
    if (wh_buf_put(&v->body, p, n) < 0) {
        v1_error(r, 413, "the scan request is too large");
        return -1;
    }
    return 0;
}

static int on_body_end(wh_req *r, void *ctx)
{
    (void)r;
    return submit(ctx);
}

static void buf_release(void *p)
{
    wh_buf_dispose(p);
}

int wh_api_v1_handle(wh_req *r, void *payload)
{
    wh_adapter *a = payload;
    const char *path = wh_req_path(r);
    const char *method = wh_req_method_str(r);
    wh_error_clear();
    if (!wh_adapter_enabled(a))
        return v1_error(r, 404, "this registry does not serve the scanner adapter API "
                                "(scan.adapter.enabled is off)");
    if (!wh_adapter_authorized(a, wh_req_header(r, "Authorization"),
                               wh_req_header(r, "X-ScannerAdapter-API-Key"))) {
        wh_resp_header(r, "WWW-Authenticate", "Bearer realm=\"wharf scanner adapter\"");
        return v1_error(r, 401, "unauthorized: present scan.adapter.token as a Bearer token or "
                                "in X-ScannerAdapter-API-Key");
    }
    if (strncmp(path, V1_PREFIX, strlen(V1_PREFIX)) != 0)
        return v1_error(r, 404, "not found");
    path += strlen(V1_PREFIX);
    if (strcmp(path, "/metadata") == 0) {
        if (strcmp(method, "GET") != 0)
            return v1_error(r, 405, "method not allowed");
        return v1_json(r, 200, WH_ADAPTER_MIME_META, wh_adapter_metadata(a));
    }
    if (strcmp(path, "/scan") == 0) {
        if (strcmp(method, "POST") != 0)
            return v1_error(r, 405, "method not allowed");
        struct v1 *v = wh_pool_alloc(wh_req_pool(r), sizeof(*v));
        memset(v, 0, sizeof(*v));
        v->a = a;
        v->r = r;
        wh_buf_init(&v->body, V1_BODY_MAX);
        wh_pool_cleanup(wh_req_pool(r), buf_release, &v->body);
        if (!wh_req_has_body(r))
            return submit(v);
        wh_req_read_body(r, on_body, on_body_end, v);
        return 0;
    }
    static const char scan[] = "/scan/", tail[] = "/report";
    size_t n = strlen(path);
    if (strncmp(path, scan, sizeof(scan) - 1) == 0 && n > sizeof(scan) - 1 + sizeof(tail) - 1 &&
        strcmp(path + n - (sizeof(tail) - 1), tail) == 0) {
        if (strcmp(method, "GET") != 0)
            return v1_error(r, 405, "method not allowed");
        const char *id = path + sizeof(scan) - 1;
        size_t idl = n - (sizeof(scan) - 1) - (sizeof(tail) - 1);
        if (idl >= WH_ADAPTER_ID_MAX || memchr(id, '/', idl))
            return v1_error(r, 404, "scan request not found");
        struct v1 v = {.a = a, .r = r};
        return report(&v, wh_pool_strndup(wh_req_pool(r), id, idl));
    }
    return v1_error(r, 404, "not found");
}
