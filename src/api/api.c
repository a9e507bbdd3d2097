/*
 * api.c: the /api/v2.0/ entry point — the route table (method, path
 * template, handler, permission), matching, identifying the caller, the
 * permission check, reading JSON bodies — and the helpers the handlers share:
 * Harbor's error body, pagination with X-Total-Count and
 * Link, `q` and `sort` parsing, time formatting, audit entries.
 * Repository names arrive URL-encoded twice in paths (as in Harbor): the server
 * decodes once, this file decodes path parameters a second time.
 */
#include "api/api_int.h"

#include "registry/registry.h"

#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define P "/projects/{project_name_or_id}"
/* Harbor's repository, artifact and tag routes name the project: {project_name} */
#define PN "/projects/{project_name}"
#define R PN "/repositories/{repository_name}"
#define A R "/artifacts/{reference}"

static const struct route routes[] = {
    /* system */
    {"GET", "/health", api_health, S_NONE, 0, 0},
    {"GET", "/ping", api_ping, S_NONE, 0, 0},
    {"GET", "/systeminfo", api_systeminfo, S_NONE, 0, 0},
    {"GET", "/systeminfo/volumes", api_systeminfo_volumes, S_ADMIN, 0, 0},
    {"GET", "/statistics", api_statistics, S_AUTH, 0, 0},
    {"GET", "/search", api_search, S_NONE, 0, 0},
    {"GET", "/swagger.json", api_swagger_json, S_NONE, 0, 0},
    {"GET", "/audit-logs", api_audit_logs, S_ADMIN, 0, 0},
    {"GET", "/system/CVEAllowlist", api_system_allowlist_get, S_AUTH, 0, 0},
    {"PUT", "/system/CVEAllowlist", api_system_allowlist_put, S_ADMIN, 0, 0},
    /* findings: wharf's re-match changes (filtered per project in the handler), Harbor's
     * security hub (system administrators) and CVE export */
    {"GET", "/vulnerabilities/changes", api_vuln_changes, S_NONE, 0, 0},
    {"GET", "/security/summary", api_security_summary, S_ADMIN, 0, 0},
    {"GET", "/security/vul", api_security_vul, S_ADMIN, 0, 0},
    {"POST", "/export/cve", api_export_cve, S_AUTH, 0, 0},
    {"GET", "/export/cve/execution/{execution_id}", api_export_execution, S_AUTH, 0, 0},
    {"GET", "/export/cve/executions", api_export_executions, S_AUTH, 0, 0},
    {"GET", "/export/cve/download/{execution_id}", api_export_download, S_AUTH, 0, 0},
    /* scan all: system administrators (Harbor's system scan-all permission) */
    {"GET", "/system/scanAll/schedule", api_scanall_schedule_get, S_ADMIN, 0, 0},
    {"POST", "/system/scanAll/schedule", api_scanall_schedule_create, S_ADMIN, 0, 0},
    {"PUT", "/system/scanAll/schedule", api_scanall_schedule_update, S_ADMIN, 0, 0},
    {"POST", "/system/scanAll/stop", api_scanall_stop, S_ADMIN, 0, 0},
    /* garbage collection and audit-log purge (gc.c): the schedule routes before {gc_id} */
    {"GET", "/system/gc/schedule", api_gc_schedule_get, S_ADMIN, 0, 0},
    {"POST", "/system/gc/schedule", api_gc_schedule_create, S_ADMIN, 0, 0},
    {"PUT", "/system/gc/schedule", api_gc_schedule_update, S_ADMIN, 0, 0},
    {"GET", "/system/gc", api_gc_list, S_ADMIN, 0, 0},
    {"GET", "/system/gc/{gc_id}", api_gc_get, S_ADMIN, 0, 0},
    {"PUT", "/system/gc/{gc_id}", api_gc_stop, S_ADMIN, 0, 0},
    {"GET", "/system/gc/{gc_id}/log", api_gc_log, S_ADMIN, 0, 0},
    {"GET", "/system/purgeaudit/schedule", api_gc_schedule_get, S_ADMIN, 0, 0},
    {"POST", "/system/purgeaudit/schedule", api_gc_schedule_create, S_ADMIN, 0, 0},
    {"PUT", "/system/purgeaudit/schedule", api_gc_schedule_update, S_ADMIN, 0, 0},
    {"GET", "/system/purgeaudit", api_gc_list, S_ADMIN, 0, 0},
    {"GET", "/system/purgeaudit/{purge_id}", api_gc_get, S_ADMIN, 0, 0},
    {"PUT", "/system/purgeaudit/{purge_id}", api_gc_stop, S_ADMIN, 0, 0},
    {"GET", "/system/purgeaudit/{purge_id}/log", api_gc_log, S_ADMIN, 0, 0},
    {"GET", "/scans/all/metrics", api_scans_all_metrics, S_ADMIN, 0, 0},
    {"GET", "/scans/schedule/metrics", api_scans_schedule_metrics, S_ADMIN, 0, 0},
    /* wharf's own: the built-in scanner's vulnerability database (system administrators) */
    {"GET", "/vulndb/status", api_vulndb_status, S_ADMIN, 0, 0},
    {"POST", "/vulndb/update", api_vulndb_update, S_ADMIN, 0, 0},
    /* projects */
    {"GET", "/projects", api_projects_list, S_NONE, 0, 0},
    {"HEAD", "/projects", api_projects_head, S_AUTH, 0, 0},
    {"POST", "/projects", api_project_create, S_AUTH, 0, 0},
    {"GET", P, api_project_get, S_PROJECT, WH_RBAC_RES_PROJECT, WH_RBAC_ACT_READ},
    {"PUT", P, api_project_update, S_PROJECT, WH_RBAC_RES_PROJECT, WH_RBAC_ACT_UPDATE},
    {"DELETE", P, api_project_delete, S_PROJECT, WH_RBAC_RES_PROJECT, WH_RBAC_ACT_DELETE},
    {"GET", P "/_deletable", api_project_deletable, S_PROJECT, WH_RBAC_RES_PROJECT, WH_RBAC_ACT_DELETE},
    {"GET", P "/summary", api_project_summary, S_PROJECT, WH_RBAC_RES_PROJECT, WH_RBAC_ACT_READ},
    {"GET", P "/metadatas/", api_project_metadata_list, S_PROJECT, WH_RBAC_RES_METADATA, WH_RBAC_ACT_READ},
    {"POST", P "/metadatas/", api_project_metadata_add, S_PROJECT, WH_RBAC_RES_METADATA, WH_RBAC_ACT_CREATE},
    {"GET", P "/metadatas/{meta_name}", api_project_metadata_get, S_PROJECT, WH_RBAC_RES_METADATA,
     WH_RBAC_ACT_READ},
    {"PUT", P "/metadatas/{meta_name}", api_project_metadata_put, S_PROJECT, WH_RBAC_RES_METADATA,
     WH_RBAC_ACT_UPDATE},
    {"DELETE", P "/metadatas/{meta_name}", api_project_metadata_delete, S_PROJECT,
     WH_RBAC_RES_METADATA, WH_RBAC_ACT_DELETE},
    {"GET", PN "/logs", api_project_logs, S_PROJECT_NAME, WH_RBAC_RES_LOG, WH_RBAC_ACT_LIST},
    {"GET", P "/artifacts", api_project_artifacts, S_PROJECT, WH_RBAC_RES_ARTIFACT, WH_RBAC_ACT_LIST},
    /* members */
    {"GET", P "/members", api_members_list, S_PROJECT, WH_RBAC_RES_MEMBER, WH_RBAC_ACT_LIST},
    {"POST", P "/members", api_member_create, S_PROJECT, WH_RBAC_RES_MEMBER, WH_RBAC_ACT_CREATE},
    {"GET", P "/members/{mid}", api_member_get, S_PROJECT, WH_RBAC_RES_MEMBER, WH_RBAC_ACT_READ},
    {"PUT", P "/members/{mid}", api_member_update, S_PROJECT, WH_RBAC_RES_MEMBER, WH_RBAC_ACT_UPDATE},
    {"DELETE", P "/members/{mid}", api_member_delete, S_PROJECT, WH_RBAC_RES_MEMBER, WH_RBAC_ACT_DELETE},
    /* repositories */
    {"GET", "/repositories", api_repos_all, S_NONE, 0, 0},
    {"GET", PN "/repositories", api_repos_list, S_PROJECT_NAME, WH_RBAC_RES_REPOSITORY,
     WH_RBAC_ACT_LIST},
    {"GET", R, api_repo_get, S_PROJECT_NAME, WH_RBAC_RES_REPOSITORY, WH_RBAC_ACT_READ},
    {"PUT", R, api_repo_update, S_PROJECT_NAME, WH_RBAC_RES_REPOSITORY, WH_RBAC_ACT_UPDATE},
    {"DELETE", R, api_repo_delete, S_PROJECT_NAME, WH_RBAC_RES_REPOSITORY, WH_RBAC_ACT_DELETE},
    /* artifacts and tags */
    {"GET", R "/artifacts", api_artifacts_list, S_PROJECT_NAME, WH_RBAC_RES_ARTIFACT,
     WH_RBAC_ACT_LIST},
    /* copy: push on the target here, pull on the source in the handler */
    {"POST", R "/artifacts", api_artifact_copy, S_PROJECT_NAME, WH_RBAC_RES_REPOSITORY,
     WH_RBAC_ACT_PUSH},
    {"GET", A, api_artifact_get, S_PROJECT_NAME, WH_RBAC_RES_ARTIFACT, WH_RBAC_ACT_READ},
    {"DELETE", A, api_artifact_delete, S_PROJECT_NAME, WH_RBAC_RES_ARTIFACT, WH_RBAC_ACT_DELETE},
    {"GET", A "/additions/vulnerabilities", api_artifact_vulnerabilities, S_PROJECT_NAME,
     WH_RBAC_RES_ARTIFACT_ADDITION, WH_RBAC_ACT_READ},
    {"GET", A "/additions/{addition}", api_artifact_addition, S_PROJECT_NAME,
     WH_RBAC_RES_ARTIFACT_ADDITION, WH_RBAC_ACT_READ},
    {"POST", A "/scan", api_artifact_scan, S_PROJECT_NAME, WH_RBAC_RES_SCAN, WH_RBAC_ACT_CREATE},
    {"POST", A "/scan/stop", api_artifact_scan_stop, S_PROJECT_NAME, WH_RBAC_RES_SCAN,
     WH_RBAC_ACT_STOP},
    {"GET", A "/scan/{report_id}/log", api_artifact_scan_log, S_PROJECT_NAME, WH_RBAC_RES_SCAN,
     WH_RBAC_ACT_READ},
    {"POST", A "/labels", api_artifact_label_add, S_PROJECT_NAME, WH_RBAC_RES_ARTIFACT_LABEL,
     WH_RBAC_ACT_CREATE},
    {"DELETE", A "/labels/{label_id}", api_artifact_label_remove, S_PROJECT_NAME,
     WH_RBAC_RES_ARTIFACT_LABEL, WH_RBAC_ACT_DELETE},
    {"GET", A "/tags", api_tags_list, S_PROJECT_NAME, WH_RBAC_RES_TAG, WH_RBAC_ACT_LIST},
    {"POST", A "/tags", api_tag_create, S_PROJECT_NAME, WH_RBAC_RES_TAG, WH_RBAC_ACT_CREATE},
    {"GET", A "/tags/{tag_name}", api_tag_get, S_PROJECT_NAME, WH_RBAC_RES_TAG, WH_RBAC_ACT_LIST},
    {"DELETE", A "/tags/{tag_name}", api_tag_delete, S_PROJECT_NAME, WH_RBAC_RES_TAG,
     WH_RBAC_ACT_DELETE},
    /* labels: global ones are the administrators', project ones follow the
     * project's roles (checked in labels.c, which knows the label's scope) */
    {"GET", "/labels", api_labels_list, S_NONE, 0, 0},
    {"POST", "/labels", api_label_create, S_AUTH, 0, 0},
    {"GET", "/labels/{label_id}", api_label_get, S_NONE, 0, 0},
    {"PUT", "/labels/{label_id}", api_label_update, S_AUTH, 0, 0},
    {"DELETE", "/labels/{label_id}", api_label_delete, S_AUTH, 0, 0},
    /* quotas: one per project, administrators only (Harbor's system quota permission) */
    {"GET", "/quotas", api_quotas_list, S_ADMIN, 0, 0},
    {"GET", "/quotas/{id}", api_quota_get, S_ADMIN, 0, 0},
    {"PUT", "/quotas/{id}", api_quota_update, S_ADMIN, 0, 0},
    /* robots: project or system level, decided by the body or the robot */
    {"GET", "/robots", api_robots_list, S_AUTH, 0, 0},
    {"POST", "/robots", api_robot_create, S_AUTH, 0, 0},
    {"GET", "/robots/{robot_id}", api_robot_get, S_AUTH, 0, 0},
    {"PUT", "/robots/{robot_id}", api_robot_update, S_AUTH, 0, 0},
    {"PATCH", "/robots/{robot_id}", api_robot_refresh, S_AUTH, 0, 0},
    {"DELETE", "/robots/{robot_id}", api_robot_delete, S_AUTH, 0, 0},
    /* scanners: registrations are the administrators', a project's choice follows its
     * scanner permission (scanners.c) */
    {"GET", "/scanners", api_scanners_list, S_ADMIN, 0, 0},
    {"POST", "/scanners", api_scanner_create, S_ADMIN, 0, 0},
    {"POST", "/scanners/ping", api_scanner_ping, S_ADMIN, 0, 0},
    {"GET", "/scanners/{registration_id}", api_scanner_get, S_ADMIN, 0, 0},
    {"PUT", "/scanners/{registration_id}", api_scanner_update, S_ADMIN, 0, 0},
    {"DELETE", "/scanners/{registration_id}", api_scanner_delete, S_ADMIN, 0, 0},
    {"PATCH", "/scanners/{registration_id}", api_scanner_set_default, S_ADMIN, 0, 0},
    {"GET", "/scanners/{registration_id}/metadata", api_scanner_metadata, S_ADMIN, 0, 0},
    {"GET", P "/scanner", api_project_scanner_get, S_PROJECT, WH_RBAC_RES_SCANNER,
     WH_RBAC_ACT_READ},
    {"PUT", P "/scanner", api_project_scanner_set, S_PROJECT, WH_RBAC_RES_SCANNER,
     WH_RBAC_ACT_CREATE},
    {"GET", P "/scanner/candidates", api_project_scanner_candidates, S_PROJECT,
     WH_RBAC_RES_SCANNER, WH_RBAC_ACT_CREATE},
    /* users (literal paths before /users/{user_id}) */
    {"GET", "/users", api_users_list, S_ADMIN, 0, 0},
    {"POST", "/users", api_user_create, S_ADMIN, 0, 0},
    {"GET", "/users/current", api_user_current, S_AUTH, 0, 0},
    {"GET", "/users/current/permissions", api_user_permissions, S_AUTH, 0, 0},
    {"GET", "/users/search", api_users_search, S_AUTH, 0, 0},
    {"GET", "/users/{user_id}", api_user_get, S_AUTH, 0, 0},
    {"PUT", "/users/{user_id}", api_user_update, S_AUTH, 0, 0},
    {"DELETE", "/users/{user_id}", api_user_delete, S_ADMIN, 0, 0},
    {"PUT", "/users/{user_id}/sysadmin", api_user_sysadmin, S_ADMIN, 0, 0},
    {"PUT", "/users/{user_id}/password", api_user_password, S_AUTH, 0, 0},
};

#undef P
#undef PN
#undef R
#undef A

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

size_t wh_api_route_count(void)
{
    return NROUTES;
}

void wh_api_route_get(size_t i, struct wh_api_route_info *out)
{
    if (i >= NROUTES) {
        out->method = out->path = NULL;
        return;
    }
    out->method = routes[i].method;
    out->path = routes[i].path;
}

int wh_api_new(wh_api **out, wh_db *db, wh_store *store, wh_acl *acl,
               const struct wh_api_config *cfg)
{
    wh_api *api = wh_calloc(1, sizeof(*api));
    api->db = db;
    api->store = store;
    api->acl = acl;
    api->cfg = *cfg;
    snprintf(api->version, sizeof(api->version), "%s", cfg->version ? cfg->version : "");
    api->cfg.version = api->version;
    *out = api;
    return 0;
}

void wh_api_free(wh_api *api)
{
    free(api);
}

/* ---- answers ---- */

int api_error(struct call *c, int status, const char *code, const char *message)
{
    json_t *err = json_object();
    json_object_set_new(err, "code", json_string(code));
    json_object_set_new(err, "message", json_string(message));
    json_t *body = json_object();
    json_t *arr = json_array();
    json_array_append_new(arr, err);
    json_object_set_new(body, "errors", arr);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    char *copy = wh_pool_sprintf(c->pool, "%s\n", text ? text : "{}");
    free(text);
    wh_resp_send(c->r, status, "application/json; charset=utf-8", copy, strlen(copy));
    return -1;
}

/*
 * Under /api/ the errors the HTTP layer gives by itself carry Harbor's body,
 * which is the OCI one ({"errors":[{"code","message"}]}), without the
 * registry's version header.
 */
const struct wh_http_defaults wh_api_http_defaults = {.headers = NULL,
                                                      .error_body = wh_registry_error_body};

int api_fail(struct call *c, int error)
{
    const char *msg = wh_error_msg();
    switch (error) {
    case WH_ENOTFOUND:
        return api_error(c, 404, "NOT_FOUND", *msg ? msg : "resource not found");
    case WH_EEXISTS:
        return api_error(c, 409, "CONFLICT", *msg ? msg : "resource conflict");
    case WH_EINVALID:
        return api_error(c, 400, "BAD_REQUEST", *msg ? msg : "bad request");
    case WH_EDENIED:
        return api_error(c, 403, "FORBIDDEN", *msg ? msg : "forbidden");
    case WH_ECONFLICT:
        return api_error(c, 412, "PRECONDITION", *msg ? msg : "precondition failed");
    case WH_ETOOBIG:
        return api_error(c, 413, "REQUEST_ENTITY_TOO_LARGE", "request entity too large");
    case WH_EBUSY:
        return api_error(c, 429, "TOO_MANY_REQUEST", "too many requests");
    case WH_ENOSPC: /* as on /v2/: 507 with DENIED (docs/security.md) */
        return api_error(c, 507, "DENIED",
                         "storage is full: the registry cannot store more data until space is "
                         "freed");
    default:
        wh_log_error("api %s %s (rid %s): %s",
                     c->route ? c->route->method : wh_req_method_str(c->r), wh_req_path(c->r),
                     wh_req_id(c->r), msg);
        return api_error(c, 500, "UNKNOWN", "internal server error");
    }
}

int api_unauthorized(struct call *c)
{
    return api_error(c, 401, "UNAUTHORIZED", "unauthorized");
}

int api_forbidden(struct call *c)
{
    if (!api_authenticated(c))
        return api_unauthorized(c);
    return api_error(c, 403, "FORBIDDEN", "forbidden");
}

int api_json(struct call *c, int status, json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    if (!text)
        return api_fail(c, wh_error_set(WH_ERROR, "json encoding failed"));
    wh_resp_send_copy(c->r, status, "application/json", text, strlen(text));
    free(text);
    return 0;
}

int api_ok(struct call *c, int status)
{
    wh_resp_send_empty(c->r, status);
    return 0;
}

/* ---- query helpers ---- */

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* Percent-decodes `s` into the pool ('+' stays as is, as in paths). */
static char *unescape(wh_pool *p, const char *s)
{
    size_t n = strlen(s);
    char *out = wh_pool_alloc(p, n + 1), *w = out;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            *w++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *w++ = s[i];
        }
    }
    *w = '\0';
    return out;
}

const char *api_query(struct call *c, const char *name)
{
    const char *v = wh_req_query(c->r, name);
    if (v && strcmp(name, "q") == 0)
        return unescape(c->pool, v);
    return v;
}

bool api_bool_query(struct call *c, const char *name, bool dflt)
{
    const char *v = wh_req_query(c->r, name);
    if (!v || !*v)
        return dflt;
    return strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0;
}

const char *api_q(struct call *c, const char *key, bool *fuzzy)
{
    const char *q = api_query(c, "q");
    size_t klen = strlen(key);
    if (fuzzy)
        *fuzzy = false;
    if (!q)
        return NULL;
    /* Terms are comma-separated; values may be quoted, braces hold lists. */
    const char *p = q;
    while (*p) {
        const char *end = p;
        int depth = 0;
        bool quoted = false;
        for (; *end && (quoted || depth || *end != ','); end++) {
            if (*end == '"')
                quoted = !quoted;
            else if (!quoted && (*end == '{' || *end == '(' || *end == '['))
                depth++;
            else if (!quoted && (*end == '}' || *end == ')' || *end == ']') && depth)
                depth--;
        }
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq && (size_t)(eq - p) == klen && strncasecmp(p, key, klen) == 0) {
            const char *v = eq + 1;
            if (*v == '~') {
                v++;
                if (fuzzy)
                    *fuzzy = true;
            }
            size_t vlen = (size_t)(end - v);
            if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
                v++;
                vlen -= 2;
            }
            return wh_pool_strndup(c->pool, v, vlen);
        }
        p = *end ? end + 1 : end;
    }
    return NULL;
}

int api_sort(struct call *c, const char *const *fields, int dflt, bool *desc)
{
    const char *s = wh_req_query(c->r, "sort");
    *desc = false;
    if (!s || !*s)
        return dflt;
    if (*s == '-') {
        *desc = true;
        s++;
    }
    /* Only the first key decides; later keys are ignored. */
    size_t n = strcspn(s, ",");
    for (int i = 0; fields[i]; i++)
        if (strlen(fields[i]) == n && strncmp(fields[i], s, n) == 0)
            return i;
    return -2;
}

static int parse_pos(const char *s, int64_t *out)
{
    uint64_t v;
    if (wh_parse_u64(&v, s, strlen(s)) < 0 || v > INT32_MAX)
        return WH_EINVALID;
    *out = (int64_t)v;
    return 0;
}

int api_page(struct call *c, int64_t *offset, int64_t *limit)
{
    const char *ps = wh_req_query(c->r, "page");
    const char *ss = wh_req_query(c->r, "page_size");
    int64_t page = 1, size = 10;
    if (ps && *ps && (parse_pos(ps, &page) < 0 || page < 1))
        return api_error(c, 400, "BAD_REQUEST", "page must be a positive integer");
    if (ss && *ss && parse_pos(ss, &size) < 0)
        return api_error(c, 400, "BAD_REQUEST", "page_size must be a positive integer");
    if (page < 1)
        page = 1;
    if (size > API_PAGE_SIZE_MAX)
        return api_error(c, 422, "UNPROCESSABLE_ENTITY",
                         "page_size in query should be less than or equal to 100");
    if (size < 1)
        size = 10;
    *offset = (page - 1) * size;
    *limit = size;
    return 0;
}

/* Query arguments carried into Link URLs (every list filter of the table). */
static const char *const link_args[] = {
    "q", "sort", "name", "public", "owner", "with_detail", "with_tag", "with_label",
    "with_scan_overview", "with_immutable_status", "with_accessory", "username", "entityname",
    "operation", "scope", "project_id", "reference", "reference_id", "since", "tune_count", NULL,
};

/* Percent-encodes what must not appear raw in a Link URL path. */
static const char *path_escape(wh_pool *p, const char *s)
{
    struct wh_buf b;
    wh_buf_init(&b, 8 * strlen(s) + 16);
    for (const char *q = s; *q; q++) {
        unsigned char ch = (unsigned char)*q;
        if (ch == '%' || ch <= 0x20 || ch >= 0x7f || ch == '?' || ch == '#' || ch == '>' ||
            ch == '<')
            wh_buf_printf(&b, "%%%02X", ch);
        else
            wh_buf_put(&b, q, 1);
    }
    char *out = wh_pool_strdup(p, b.data ? b.data : "");
    wh_buf_dispose(&b);
    return out;
}

static const char *link_url(struct call *c, int64_t page, int64_t size)
{
    struct wh_buf b;
    wh_buf_init(&b, 16384);
    wh_buf_puts(&b, path_escape(c->pool, wh_req_path(c->r)));
    wh_buf_printf(&b, "?page=%" PRId64 "&page_size=%" PRId64, page, size);
    for (int i = 0; link_args[i]; i++) {
        const char *v = wh_req_query(c->r, link_args[i]);
        if (v)
            wh_buf_printf(&b, "&%s=%s", link_args[i], wh_http_query_escape(c->pool, v));
    }
    char *out = wh_pool_strdup(c->pool, b.data ? b.data : "");
    wh_buf_dispose(&b);
    return out;
}

int api_list(struct call *c, json_t *arr, int64_t total, int64_t offset, int64_t limit)
{
    int64_t page = offset / limit + 1;
    char n[32];
    snprintf(n, sizeof(n), "%" PRId64, total);
    wh_resp_header(c->r, "X-Total-Count", n);
    const char *prev = NULL, *next = NULL;
    if (page > 1 && (page - 1) * limit < total)
        prev = link_url(c, page - 1, limit);
    if (page * limit < total)
        next = link_url(c, page + 1, limit);
    if (prev && next)
        wh_resp_header(c->r, "Link",
                       wh_pool_sprintf(c->pool, "<%s>; rel=\"prev\" , <%s>; rel=\"next\"", prev,
                                       next));
    else if (prev || next)
        wh_resp_header(c->r, "Link",
                       wh_pool_sprintf(c->pool, "<%s>; rel=\"%s\"", prev ? prev : next,
                                       prev ? "prev" : "next"));
    return api_json(c, 200, arr);
}

const char *api_time(struct call *c, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char buf[40];
    gmtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    return wh_pool_sprintf(c->pool, "%s.%03dZ", buf, (int)(ms % 1000));
}

const char *api_pull_time(struct call *c, int64_t ms)
{
    /* Harbor's zero time.Time, as its API prints a never-pulled artifact */
    return ms > 0 ? api_time(c, ms) : "0001-01-01T00:00:00.000Z";
}

int api_id(const char *s, int64_t *out)
{
    uint64_t v;
    if (!s || wh_parse_u64(&v, s, strlen(s)) < 0 || v == 0 || v > INT64_MAX)
        return WH_EINVALID;
    *out = (int64_t)v;
    return 0;
}

bool api_admin(const struct call *c)
{
    return c->who.kind == WH_PRINCIPAL_USER && c->who.sysadmin;
}

bool api_authenticated(const struct call *c)
{
    return c->who.kind != WH_PRINCIPAL_ANONYMOUS;
}

/*
 * A system robot's view: everything with namespace "*" or the system
 * permission project:list (Harbor's ListProjects), else the projects its
 * permissions name, returned as a JSON array text (pool) when `names` is given.
 */
static int64_t robot_view(const struct call *c, const struct wh_robot *rb, const char **names)
{
    json_t *perms = json_loads(rb->permissions, 0, NULL), *list = json_array(), *perm;
    int64_t user = 0;
    size_t i;
    if (wh_acl_can(c->api->acl, &c->who, NULL, WH_RBAC_RES_PROJECT, WH_RBAC_ACT_LIST))
        user = -1;
    json_array_foreach(perms, i, perm)
    {
        const char *kind = json_string_value(json_object_get(perm, "kind"));
        const char *ns = json_string_value(json_object_get(perm, "namespace"));
        if (!ns || (kind && strcmp(kind, "system") == 0))
            continue;
        if (strcmp(ns, "*") == 0)
            user = -1;
        else
            json_array_append_new(list, json_string(ns));
    }
    if (names && user == 0) {
        char *text = json_dumps(list, JSON_COMPACT);
        *names = text ? wh_pool_strdup(c->pool, text) : NULL;
        free(text);
    }
    json_decref(list);
    json_decref(perms);
    return user;
}

void api_visibility(const struct call *c, int64_t *user, int64_t *project)
{
    api_visibility_all(c, user, project, NULL);
}

void api_visibility_all(const struct call *c, int64_t *user, int64_t *project, const char **names)
{
    *project = 0;
    if (names)
        *names = NULL;
    if (c->who.kind == WH_PRINCIPAL_USER) {
        *user = c->who.sysadmin ? -1 : c->who.id;
    } else if (c->who.kind == WH_PRINCIPAL_ROBOT) {
        struct wh_robot *rb = wh_pool_alloc(c->pool, sizeof(*rb));
        *user = 0;
        if (wh_db_robot_get_id(c->api->db, c->who.id, rb) == 0) {
            if (strcmp(rb->level, "system") == 0)
                *user = robot_view(c, rb, names);
            else
                *project = rb->project_id;
        }
    } else {
        *user = 0;
    }
}

void api_audit(struct call *c, int64_t project_id, const char *resource, const char *type,
               const char *operation, bool ok)
{
    wh_acl_audit(c->api->acl, &c->who, wh_req_client_ip(c->r), project_id, resource, type,
                 operation, ok);
}

int api_writable(struct call *c)
{
    if (c->api->cfg.read_only)
        return api_error(c, 403, "DENIED",
                         "The system is in read only mode. Any modification is prohibited.");
    return 0;
}

int api_project_lookup(struct call *c, const char *name_or_id, struct wh_project_info *out)
{
    const char *hdr = wh_req_header(c->r, "X-Is-Resource-Name");
    bool by_name = hdr && strcasecmp(hdr, "true") == 0;
    uint64_t id;
    if (!by_name && wh_parse_u64(&id, name_or_id, strlen(name_or_id)) == 0 && id <= INT64_MAX)
        return wh_db_project_info(c->api->db, (int64_t)id, out);
    if (strchr(name_or_id, ' '))
        return wh_error_set(WH_EINVALID, "invalid project name: '%s'", name_or_id);
    return wh_db_project_info_name(c->api->db, name_or_id, out);
}

const char *api_repo_name(struct call *c, const char *repository_param)
{
    return wh_pool_sprintf(c->pool, "%s/%s", c->proj->p.name, repository_param);
}

json_t *api_body(struct call *c)
{
    if (!c->json || !json_is_object(c->json)) {
        api_error(c, 400, "BAD_REQUEST", "invalid request body: a JSON object is required");
        return NULL;
    }
    return c->json;
}

/* ---- routing ---- */

/* Matches `path` (relative to the prefix, trailing '/' ignored) against a
 * template, collecting the {…} segments decoded once more. */
static bool match(struct call *c, const char *tmpl, const char *path)
{
    int np = 0;
    const char *t = tmpl, *p = path;
    for (;;) {
        while (*t == '/')
            t++;
        while (*p == '/')
            p++;
        if (!*t || !*p)
            return !*t && !*p;
        size_t tl = strcspn(t, "/"), pl = strcspn(p, "/");
        if (*t == '{') {
            if (np == API_PARAMS_MAX)
                return false;
            c->param[np++] = unescape(c->pool, wh_pool_strndup(c->pool, p, pl));
        } else if (tl != pl || strncmp(t, p, tl) != 0) {
            return false;
        }
        t += tl;
        p += pl;
    }
}

static void json_release(void *p)
{
    json_decref(p);
}

static void buf_release(void *p)
{
    wh_buf_dispose(p);
}

/* Checks permissions, then runs the handler. */
static int dispatch(struct call *c)
{
    const struct route *rt = c->route;
    assert(!c->who.has_token); /* wh_api_handle refuses tokens */
    if (rt->scope == S_AUTH && !api_authenticated(c))
        return api_unauthorized(c);
    if (rt->scope == S_ADMIN && !api_admin(c))
        return api_forbidden(c);
    if (rt->scope == S_PROJECT || rt->scope == S_PROJECT_NAME) {
        c->proj = wh_pool_alloc(c->pool, sizeof(*c->proj));
        int error = rt->scope == S_PROJECT
                        ? api_project_lookup(c, c->param[0], c->proj)
                        : wh_db_project_info_name(c->api->db, c->param[0], c->proj);
        if (error < 0)
            return api_fail(c, error);
        if (!wh_acl_can(c->api->acl, &c->who, &c->proj->p, rt->res, rt->act))
            return api_forbidden(c);
    }
    if (strcmp(rt->method, "GET") != 0 && strcmp(rt->method, "HEAD") != 0 &&
        api_writable(c) < 0)
        return -1;
    if (c->api->cfg.deletes_disabled && strcmp(rt->method, "DELETE") == 0 &&
        (rt->res == WH_RBAC_RES_REPOSITORY || rt->res == WH_RBAC_RES_ARTIFACT ||
         rt->res == WH_RBAC_RES_TAG))
        return api_error(c, 403, "DENIED",
                         "deletes are disabled on this registry (registry.delete_enabled)");
    return rt->fn(c);
}

static int on_body(wh_req *r, const char *p, size_t n, void *ctx)
{
    struct call *c = ctx;
    if (wh_buf_put(&c->body, p, n) < 0) {
        api_error(c, 413, "REQUEST_ENTITY_TOO_LARGE", "request body too large");
        return -1;
    }
    (void)r;
    return 0;
}

static int on_body_end(wh_req *r, void *ctx)
{
    struct call *c = ctx;
    (void)r;
    if (c->body.len) {
        json_error_t jerr;
        c->json = json_loadb(c->body.data, c->body.len, JSON_DECODE_ANY, &jerr);
        if (!c->json)
            return api_error(c, 400, "BAD_REQUEST",
                             wh_pool_sprintf(c->pool, "invalid JSON body: %s", jerr.text));
        wh_pool_cleanup(c->pool, json_release, c->json);
    }
    return dispatch(c);
}

/* Reads the JSON body if there is one, then dispatches. */
static int api_body_then_dispatch(struct call *c)
{
    if (wh_req_has_body(c->r)) {
        wh_buf_init(&c->body, API_BODY_MAX);
        wh_pool_cleanup(c->pool, buf_release, &c->body);
        wh_req_read_body(c->r, on_body, on_body_end, c);
        return 0;
    }
    return dispatch(c);
}

/* Whether an Authorization value uses the Basic scheme (case-insensitive). */
static bool basic_scheme(const char *authz)
{
    return strncasecmp(authz, "Basic", 5) == 0 && (authz[5] == ' ' || authz[5] == '\0');
}

int wh_api_handle(wh_req *r, void *payload)
{
    wh_api *api = payload;
    struct call *c = wh_pool_alloc(wh_req_pool(r), sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->api = api;
    c->r = r;
    c->pool = wh_req_pool(r);
    wh_error_clear();

    const char *path = wh_req_path(r);
    if (strncmp(path, API_PREFIX, strlen(API_PREFIX)) != 0)
        return api_error(c, 404, "NOT_FOUND", "resource not found");
    path += strlen(API_PREFIX);
    const char *method = wh_req_method_str(r);
    bool path_known = false;
    for (size_t i = 0; i < NROUTES; i++) {
        if (!match(c, routes[i].path, path))
            continue;
        path_known = true;
        if (strcmp(routes[i].method, method) == 0) {
            c->route = &routes[i];
            break;
        }
    }
    if (!c->route) {
        if (path_known) {
            /* RFC 9110: a 405 lists the methods the resource takes */
            char allow[64] = "";
            for (size_t i = 0; i < NROUTES; i++) {
                if (!match(c, routes[i].path, path) || strstr(allow, routes[i].method))
                    continue;
                if (strlen(allow) + strlen(routes[i].method) + 3 > sizeof(allow))
                    break;
                if (*allow)
                    strcat(allow, ", ");
                strcat(allow, routes[i].method);
            }
            wh_resp_header(r, "Allow", allow);
            return api_error(c, 405, "METHOD_NOT_ALLOWED", "method not allowed");
        }
        return api_error(c, 404, "NOT_FOUND",
                         wh_pool_sprintf(c->pool, "no route for %s %s", method,
                                         wh_req_path(r)));
    }

    /*
     * Basic credentials (users, robots) and nothing else identify a REST API
     * caller: a registry token is a grant of repository actions on /v2/, not an
     * identity, so it is refused here rather than taken for its subject.
     */
    const char *authz = wh_req_header(r, "Authorization");
    if (authz && *authz && !basic_scheme(authz))
        return api_error(c, 401, "UNAUTHORIZED",
                         "unauthorized: the REST API takes Basic credentials, not tokens");
    /*
     * Without Authorization, the portal's session cookie:
     * a state-changing request on a session must carry the session's CSRF
     * token in X-Harbor-CSRF-Token, which every answer on a session sends.
     * Basic credentials are never checked for CSRF (a browser does not add
     * them by itself: wharf never asks it to with a Basic challenge here).
     */
    char sid[WH_ACL_SESSION_HEX + 2], csrf[WH_ACL_SESSION_HEX + 1];
    bool session = false;
    for (unsigned i = 0; !session && (!authz || !*authz) && i < WH_ACL_COOKIES_MAX; i++)
        session = wh_acl_cookie(wh_req_header(r, "Cookie"), "sid", i, sid, sizeof(sid)) &&
                  wh_acl_session_get(api->acl, sid, &c->who, csrf) == 0;
    if (session) {
        wh_req_set_user(r, c->who.name);
        wh_resp_header(r, "X-Harbor-CSRF-Token", csrf);
        enum wh_method m = wh_req_method(r);
        if (m != WH_HTTP_GET && m != WH_HTTP_HEAD) {
            const char *token = wh_req_header(r, "X-Harbor-CSRF-Token");
            if (!token || !*token)
                return api_error(c, 403, "FORBIDDEN", "CSRF token not found in request");
            if (!wh_auth_consttime_eq(token, strlen(token), csrf, strlen(csrf)))
                return api_error(c, 403, "FORBIDDEN", "CSRF token invalid");
        }
        return api_body_then_dispatch(c);
    }
    wh_error_clear();
    int error = wh_acl_identify_req(api->acl, r, &c->who);
    if (error == WH_EDEFERRED)
        return 0; /* called again once the password check is done */
    if (error == WH_EBUSY) {
        wh_resp_header(r, "Retry-After", wh_pool_sprintf(c->pool, "%u", c->who.retry_after_s));
        return api_error(c, 429, "TOO_MANY_REQUEST", wh_error_msg());
    }
    if (error < 0)
        return api_fail(c, error);
    return api_body_then_dispatch(c);
}
