/* Private to api/: the per-request call context, the route table's types and
 * the helpers every handler file uses (errors, pagination, JSON views). */
#ifndef WH_API_INT_H
#define WH_API_INT_H

#include <jansson.h>

#include "api/api.h"

#define API_PREFIX "/api/v2.0"
#define API_BODY_MAX (1u << 20)   /* request JSON bodies */
#define API_PAGE_SIZE_MAX 100     /* Harbor's swagger maximum */
#define API_PARAMS_MAX 4          /* {…} segments in one path template */
#define ROBOT_PREFIX "robot$"

struct wh_api {
    wh_db *db;
    wh_store *store;
    wh_acl *acl;
    struct wh_api_config cfg;
    char version[64];
};

/* Where a route's permission is checked. */
enum scope {
    S_NONE,    /* anyone, anonymous included; the handler filters */
    S_AUTH,    /* authenticated callers; the handler checks the rest */
    S_ADMIN,   /* system administrators (users with the sysadmin flag) */
    S_PROJECT, /* the {project_name_or_id} project, then wh_acl_can on it */
    S_PROJECT_NAME, /* the {project_name} project (always a name, as in Harbor), then wh_acl_can */
};

struct call;
typedef int (*api_fn)(struct call *c);

struct route {
    const char *method;
    const char *path; /* template relative to /api/v2.0 */
    api_fn fn;
    enum scope scope;
    enum wh_rbac_res res;
    enum wh_rbac_act act;
};

/* One API request in flight (pool memory). */
struct call {
    wh_api *api;
    wh_req *r;
    wh_pool *pool;
    const struct route *route;
    struct wh_principal who;
    const char *param[API_PARAMS_MAX]; /* decoded path parameters, in template order */
    struct wh_project_info *proj;      /* the route's project (S_PROJECT) */
    struct wh_buf body;                /* request bytes */
    json_t *json;                      /* parsed body (decref'd by the pool) */
};

/* api.c: answers. Each returns -1 so that handlers can `return api_error(…)`. */
int api_error(struct call *c, int status, const char *code, const char *message);
/* Answers for a wharf error code (message from wh_error_msg() for the
 * expected codes; 500 hides it and logs it). */
int api_fail(struct call *c, int error);
int api_unauthorized(struct call *c);
/* 401 for anonymous callers, else 403 FORBIDDEN. */
int api_forbidden(struct call *c);
/* Sends `v` (stolen) as JSON with `status`. Returns 0. */
int api_json(struct call *c, int status, json_t *v);
/* Sends an empty answer (200/201/…). Returns 0. */
int api_ok(struct call *c, int status);

/* Parses page/page_size (answers 400/422 itself and returns < 0). */
int api_page(struct call *c, int64_t *offset, int64_t *limit);
/* Sends a list: X-Total-Count, Link (prev/next) and the array (stolen). */
int api_list(struct call *c, json_t *arr, int64_t total, int64_t offset, int64_t limit);
/* A query argument, URL-decoded once more for `q` (clients double-encode it). */
const char *api_query(struct call *c, const char *name);
/* Value of term `key` in a Harbor `q` ("k=v,k2=~v2"): copies into the pool;
 * `*fuzzy` tells "=~". NULL when absent. */
const char *api_q(struct call *c, const char *key, bool *fuzzy);
/* A query boolean: absent → `dflt`. */
bool api_bool_query(struct call *c, const char *name, bool dflt);
/* Parses a `sort` value "field" or "-field": returns the index of field in
 * `fields` (NULL-terminated) or `dflt` when absent; -2 for an unknown field. */
int api_sort(struct call *c, const char *const *fields, int dflt, bool *desc);
/* Harbor's time format: "2006-01-02T15:04:05.000Z" (pool). */
const char *api_time(struct call *c, int64_t ms);
/* A pull time: api_time, or Harbor's zero time "0001-01-01T00:00:00.000Z"
 * for never (0). */
const char *api_pull_time(struct call *c, int64_t ms);
/* Parses a positive integer path or query parameter (ids): 0 or WH_EINVALID. */
int api_id(const char *s, int64_t *out);
/* True for a user with the sysadmin flag. */
bool api_admin(const struct call *c);
/* True when the caller's Authorization resolved to a user or robot. */
bool api_authenticated(const struct call *c);
/*
 * Caller's visibility for listings (wh_project_filter.visible_*): users see
 * the public projects and those they are members of (administrators all), a
 * project robot the public ones and its own, a system robot the public ones
 * and those its permissions name (all with namespace "*" or project:list).
 * Without `names` a system robot's named projects are left out (public only).
 */
void api_visibility(const struct call *c, int64_t *user, int64_t *project);
/* api_visibility with the names (`*names`: JSON array text in the pool, or NULL). */
void api_visibility_all(const struct call *c, int64_t *user, int64_t *project, const char **names);
/* Writes an audit entry for the caller. */
void api_audit(struct call *c, int64_t project_id, const char *resource, const char *type,
               const char *operation, bool ok);
/* Answers 403 DENIED in read-only mode (returns < 0 then). */
int api_writable(struct call *c);
/* Looks a project up by name or id per Harbor's rule (an integer is an id
 * unless X-Is-Resource-Name: true). 0, WH_ENOTFOUND or WH_EINVALID (answered). */
int api_project_lookup(struct call *c, const char *name_or_id, struct wh_project_info *out);
/* Full repository name "<project>/<repository_name>" (pool). */
const char *api_repo_name(struct call *c, const char *repository_param);
/* Required body object (answers 400 when missing or not an object). */
json_t *api_body(struct call *c);

/* scanners.c */
/* gc.c: /system/gc and /system/purgeaudit (the kind follows the route's path) */
int api_gc_schedule_get(struct call *c);
int api_gc_schedule_create(struct call *c);
int api_gc_schedule_update(struct call *c);
int api_gc_list(struct call *c);
int api_gc_get(struct call *c);
int api_gc_stop(struct call *c);
int api_gc_log(struct call *c);
int api_scanners_list(struct call *c);
int api_scanner_create(struct call *c);
int api_scanner_ping(struct call *c);
int api_scanner_get(struct call *c);
int api_scanner_update(struct call *c);
int api_scanner_delete(struct call *c);
int api_scanner_set_default(struct call *c);
int api_scanner_metadata(struct call *c);
int api_project_scanner_get(struct call *c);
int api_project_scanner_set(struct call *c);
int api_project_scanner_candidates(struct call *c);
/* projects.c */
json_t *api_project_view(struct call *c, const struct wh_project_info *p);
int api_projects_list(struct call *c);
int api_projects_head(struct call *c);
int api_project_create(struct call *c);
int api_project_get(struct call *c);
int api_project_update(struct call *c);
int api_project_delete(struct call *c);
int api_project_deletable(struct call *c);
int api_project_summary(struct call *c);
int api_project_metadata_list(struct call *c);
int api_project_metadata_add(struct call *c);
int api_project_metadata_get(struct call *c);
int api_project_metadata_put(struct call *c);
int api_project_metadata_delete(struct call *c);
int api_project_logs(struct call *c);
/* repositories.c */
int api_repos_all(struct call *c);
int api_repos_list(struct call *c);
int api_repo_get(struct call *c);
int api_repo_update(struct call *c);
int api_repo_delete(struct call *c);
/* artifacts.c */
/* Loads the route's repository ({repository_name}, param 1) and artifact
 * ({reference}, param 2) or answers 400/404 itself (returns < 0 then). */
int api_load_artifact(struct call *c, struct wh_repo_info *ri, struct wh_artifact_info *out);
/* Whether a manifest media type is an index (OCI or Docker list). */
bool api_is_index(const char *media_type);
/* Reads a JSON blob of the store (at most 4 MiB); NULL when absent or not JSON. */
json_t *api_read_json(struct call *c, const char *digest);
int api_artifacts_list(struct call *c);
int api_project_artifacts(struct call *c);
int api_artifact_get(struct call *c);
int api_artifact_delete(struct call *c);
int api_tags_list(struct call *c);
int api_tag_create(struct call *c);
int api_tag_delete(struct call *c);
int api_tag_get(struct call *c);
/* additions.c */
/* The `addition_links` object of an artifact, as Harbor sets it (new reference). */
json_t *api_addition_links(struct call *c, const struct wh_artifact_info *a);
int api_artifact_addition(struct call *c);
/* scans.c */
/* An image manifest with an image config: what the built-in scanner reads. */
bool api_scannable(const struct wh_artifact_info *a);
/* What the API offers scans of: a scannable image, or an index with a scannable child. */
bool api_scan_target(struct call *c, const struct wh_artifact_info *a);
/* `scan_overview` of an artifact keyed by report mime type, or NULL (never scanned,
 * not scannable, or a report type the client does not accept). New reference. */
json_t *api_scan_overview(struct call *c, const struct wh_artifact_info *a);
int api_artifact_vulnerabilities(struct call *c);
int api_artifact_scan(struct call *c);
int api_artifact_scan_stop(struct call *c);
int api_artifact_scan_log(struct call *c);
/* security.c */
int api_vuln_changes(struct call *c);
int api_security_summary(struct call *c);
int api_security_vul(struct call *c);
int api_export_cve(struct call *c);
int api_export_execution(struct call *c);
int api_export_executions(struct call *c);
int api_export_download(struct call *c);
/* copy.c */
int api_artifact_copy(struct call *c);
/* labels.c */
/* The labels of an artifact as a JSON array (new reference). */
json_t *api_artifact_labels_view(struct call *c, int64_t artifact_id);
int api_labels_list(struct call *c);
int api_label_create(struct call *c);
int api_label_get(struct call *c);
int api_label_update(struct call *c);
int api_label_delete(struct call *c);
int api_artifact_label_add(struct call *c);
int api_artifact_label_remove(struct call *c);
/* quotas.c */
int api_quotas_list(struct call *c);
int api_quota_get(struct call *c);
int api_quota_update(struct call *c);
int api_systeminfo_volumes(struct call *c);
/* members.c */
int api_members_list(struct call *c);
int api_member_create(struct call *c);
int api_member_get(struct call *c);
int api_member_update(struct call *c);
int api_member_delete(struct call *c);
/* robots.c */
int api_robots_list(struct call *c);
int api_robot_create(struct call *c);
int api_robot_get(struct call *c);
int api_robot_update(struct call *c);
int api_robot_refresh(struct call *c);
int api_robot_delete(struct call *c);
/* users.c */
int api_users_list(struct call *c);
int api_user_create(struct call *c);
int api_user_current(struct call *c);
int api_user_permissions(struct call *c);
int api_users_search(struct call *c);
int api_user_get(struct call *c);
int api_user_update(struct call *c);
int api_user_delete(struct call *c);
int api_user_sysadmin(struct call *c);
int api_user_password(struct call *c);
/* vulndb.c: wharf's /vulndb/status and /vulndb/update (system administrators) */
int api_vulndb_status(struct call *c);
int api_vulndb_update(struct call *c);
/* scanall.c: /system/scanAll/schedule, /system/scanAll/stop, /scans/{all,schedule}/metrics */
int api_scanall_schedule_get(struct call *c);
int api_scanall_schedule_create(struct call *c);
int api_scanall_schedule_update(struct call *c);
int api_scanall_stop(struct call *c);
int api_scans_all_metrics(struct call *c);
int api_scans_schedule_metrics(struct call *c);

/* allowlist.c: GET|PUT /system/CVEAllowlist */
int api_system_allowlist_get(struct call *c);
int api_system_allowlist_put(struct call *c);
/* system.c */
int api_health(struct call *c);
int api_ping(struct call *c);
int api_systeminfo(struct call *c);
int api_statistics(struct call *c);
int api_search(struct call *c);
int api_audit_logs(struct call *c);
int api_swagger_json(struct call *c);
/* Appends the audit entries view of one row (shared with projects.c). */
json_t *api_audit_view(struct call *c, const struct wh_audit *a);

#endif
