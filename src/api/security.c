/*
 * security.c: what the stored findings answer (db_finding.c), without reading
 * a report: wharf's GET /vulnerabilities/changes (the artifacts a re-match
 * after a vulnerability database update changed, for the projects the caller
 * may read) and Harbor's security hub, GET /security/summary and GET
 * /security/vul (system administrators only, as in Harbor).
 */
#include "api/api_int.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "scan/scan.h"
#include "scand/scand.h"

/* ---- GET /vulnerabilities/changes?since= ---- */

/*
 * `since` as unix milliseconds (digits only) or RFC 3339
 * ("2026-12-03T01:00:00Z", fraction and offset allowed). 0 or WH_EINVALID.
 */
static int parse_since(const char *s, int64_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return WH_EINVALID;
    if (strspn(s, "0123456789") == n) {
        if (n > 15) /* beyond year 33000 */
            return WH_EINVALID;
        *out = strtoll(s, NULL, 10);
        return 0;
    }
    struct tm tm = {0};
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return WH_EINVALID;
    int64_t ms = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; isdigit((unsigned char)*p); p++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*p - '0');
        if (digits == 0)
            return WH_EINVALID;
        for (; digits < 3; digits++)
            ms *= 10;
    }
    int64_t offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) &&
               isdigit((unsigned char)p[2]) && p[3] == ':' && isdigit((unsigned char)p[4]) &&
               isdigit((unsigned char)p[5])) {
        offset = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 + ((p[4] - '0') * 10 + (p[5] - '0')) * 60;
        if (*p == '-')
            offset = -offset;
        p += 6;
    } else {
        return WH_EINVALID;
    }
    if (*p)
        return WH_EINVALID;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 && tm.tm_year != 69)
        return WH_EINVALID;
    *out = ((int64_t)t - offset) * 1000 + ms;
    if (*out < 0)
        *out = 0;
    return 0;
}

static int add_tag(const char *name, void *payload)
{
    json_array_append_new(payload, json_string(name));
    return 0;
}

/* The artifact's tags (new reference). */
static json_t *tags_of(struct call *c, int64_t artifact_id)
{
    json_t *tags = json_array();
    wh_db_artifact_tag_names(c->api->db, artifact_id, add_tag, tags);
    return tags;
}

static json_t *json_array_text(const char *text)
{
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    if (!json_is_array(j)) {
        json_decref(j);
        return json_array();
    }
    return j;
}

struct change_list {
    struct call *c;
    json_t *out;
};

static int add_change(const struct wh_vuln_change *ch, void *payload)
{
    struct change_list *l = payload;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(ch->id));
    json_object_set_new(o, "project_id", json_integer(ch->project_id));
    json_object_set_new(o, "repository_name", json_string(ch->repository));
    json_object_set_new(o, "digest", json_string(ch->digest));
    json_object_set_new(o, "tags", tags_of(l->c, ch->artifact_id));
    json_object_set_new(o, "added", json_array_text(ch->added));
    json_object_set_new(o, "removed", json_array_text(ch->removed));
    json_object_set_new(o, "time", json_string(api_time(l->c, ch->time_ms)));
    json_array_append_new(l->out, o);
    return 0;
}

int api_vuln_changes(struct call *c)
{
    struct wh_vuln_change_filter f = {0};
    int64_t offset, limit, total = 0;
    const char *since = api_query(c, "since");
    if (since && *since && parse_since(since, &f.since_ms) < 0)
        return api_error(c, 400, "BAD_REQUEST",
                         "since must be a time in RFC 3339 (2026-01-31T12:00:00Z) or unix "
                         "milliseconds");
    if (api_page(c, &offset, &limit) < 0)
        return -1;
    api_visibility_all(c, &f.visible_user, &f.visible_project, &f.visible_names);
    struct change_list l = {c, json_array()};
    int error = wh_db_vuln_changes(c->api->db, &f, offset, limit, add_change, &l, &total);
    if (error < 0) {
        json_decref(l.out);
        return api_fail(c, error);
    }
    return api_list(c, l.out, total, offset, limit);
}

/* ---- GET /security/summary ---- */

static const char *sev_name(int code)
{
    return wh_severity_name((enum wh_severity)(code < 0 || code > WH_SEV_CRITICAL ? 0 : code));
}

static int add_cve(const struct wh_vuln_item *v, void *payload)
{
    json_array_append_new(
        payload, json_pack("{s:s,s:s,s:f,s:s,s:s,s:s}", "cve_id", v->cve_id, "severity",
                           sev_name(v->severity), "cvss_score_v3", v->cvss3, "desc",
                           v->description, "package", v->package, "version", v->version));
    return 0;
}

static int add_artifact(const struct wh_dangerous_artifact *a, void *payload)
{
    json_array_append_new(payload,
                          json_pack("{s:I,s:s,s:s,s:I,s:I,s:I}", "project_id",
                                    (json_int_t)a->project_id, "repository_name", a->repository,
                                    "digest", a->digest, "critical_cnt",
                                    (json_int_t)a->critical_cnt, "high_cnt",
                                    (json_int_t)a->high_cnt, "medium_cnt",
                                    (json_int_t)a->medium_cnt));
    return 0;
}

int api_security_summary(struct call *c)
{
    struct wh_security_summary s;
    int error = wh_db_security_summary(c->api->db, &s);
    if (error < 0)
        return api_fail(c, error);
    json_t *o = json_object();
    json_object_set_new(o, "total_artifact", json_integer(s.total_artifact));
    json_object_set_new(o, "scanned_cnt", json_integer(s.scanned_cnt));
    json_object_set_new(o, "critical_cnt", json_integer(s.critical_cnt));
    json_object_set_new(o, "high_cnt", json_integer(s.high_cnt));
    json_object_set_new(o, "medium_cnt", json_integer(s.medium_cnt));
    json_object_set_new(o, "low_cnt", json_integer(s.low_cnt));
    json_object_set_new(o, "none_cnt", json_integer(s.none_cnt));
    json_object_set_new(o, "unknown_cnt", json_integer(s.unknown_cnt));
    json_object_set_new(o, "fixable_cnt", json_integer(s.fixable_cnt));
    json_object_set_new(o, "total_vuls",
                        json_integer(s.critical_cnt + s.high_cnt + s.medium_cnt + s.low_cnt +
                                     s.none_cnt + s.unknown_cnt));
    json_t *cves = json_array(), *arts = json_array();
    if (api_bool_query(c, "with_dangerous_cve", false) &&
        (error = wh_db_dangerous_cves(c->api->db, add_cve, cves)) < 0)
        goto fail;
    if (api_bool_query(c, "with_dangerous_artifact", false) &&
        (error = wh_db_dangerous_artifacts(c->api->db, add_artifact, arts)) < 0)
        goto fail;
    json_object_set_new(o, "dangerous_cves", cves);
    json_object_set_new(o, "dangerous_artifacts", arts);
    return api_json(c, 200, o);
fail:
    json_decref(cves);
    json_decref(arts);
    json_decref(o);
    return api_fail(c, error);
}

/* ---- GET /security/vul ---- */

/* The keys Harbor's q takes on this list. */
static const char *const vul_keys[] = {"cve_id", "severity", "cvss_score_v3", "project_id",
                                       "repository_name", "package", "tag", "digest", NULL};

/* Answers 400 for a q term whose key this list does not filter on. */
static int check_q_keys(struct call *c)
{
    const char *q = api_query(c, "q");
    if (!q)
        return 0;
    if (strlen(q) > 4096)
        return api_error(c, 400, "BAD_REQUEST", "q is too long");
    for (const char *p = q; *p;) {
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
        size_t klen = eq ? (size_t)(eq - p) : (size_t)(end - p);
        bool known = false;
        for (int i = 0; eq && vul_keys[i] && !known; i++)
            known = strlen(vul_keys[i]) == klen && strncasecmp(p, vul_keys[i], klen) == 0;
        if (!known)
            return api_error(c, 400, "BAD_REQUEST",
                             wh_pool_sprintf(c->pool, "keyword: %.*s is not allowed",
                                             (int)(klen > 64 ? 64 : klen), p));
        p = *end ? end + 1 : end;
    }
    return 0;
}

/* An exact q value: "=~" (fuzzy) is not one this list takes. */
static int q_exact(struct call *c, const char *key, const char **out)
{
    bool fuzzy = false;
    *out = api_q(c, key, &fuzzy);
    if (*out && (fuzzy || **out == '{' || **out == '(' || **out == '['))
        return api_error(c, 400, "BAD_REQUEST",
                         wh_pool_sprintf(c->pool, "keyword: %s, the query type is not allowed",
                                         key));
    return 0;
}

static int parse_score(const char *s, size_t n, double *out)
{
    char buf[32];
    if (n == 0 || n >= sizeof(buf))
        return WH_EINVALID;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end = NULL;
    errno = 0;
    double v = strtod(buf, &end);
    if (errno || *end || !isfinite(v) || v < 0 || v > 10)
        return WH_EINVALID;
    *out = v;
    return 0;
}

struct vul_list {
    struct call *c;
    bool with_tag;
    json_t *out;
};

static int add_vul(const struct wh_vuln_item *v, void *payload)
{
    struct vul_list *l = payload;
    json_t *o = json_object();
    json_object_set_new(o, "project_id", json_integer(v->project_id));
    json_object_set_new(o, "repository_name", json_string(v->repository));
    json_object_set_new(o, "digest", json_string(v->digest));
    json_object_set_new(o, "tags", l->with_tag ? tags_of(l->c, v->artifact_id) : json_array());
    json_object_set_new(o, "cve_id", json_string(v->cve_id));
    json_object_set_new(o, "severity", json_string(sev_name(v->severity)));
    json_object_set_new(o, "cvss_v3_score", json_real(v->cvss3));
    json_object_set_new(o, "package", json_string(v->package));
    json_object_set_new(o, "version", json_string(v->version));
    json_object_set_new(o, "fixed_version", json_string(v->fixed_version));
    json_object_set_new(o, "desc", json_string(v->description));
    json_object_set_new(o, "links", json_array_text(v->links));
    json_array_append_new(l->out, o);
    return 0;
}

int api_security_vul(struct call *c)
{
    struct wh_vuln_filter f = {.severity = -1};
    const char *sev = NULL, *project = NULL, *repo = NULL, *range = NULL;
    int64_t offset, limit, total = 0;
    if (api_page(c, &offset, &limit) < 0 || check_q_keys(c) < 0 ||
        q_exact(c, "cve_id", &f.cve_id) < 0 || q_exact(c, "package", &f.package) < 0 ||
        q_exact(c, "digest", &f.digest) < 0 || q_exact(c, "tag", &f.tag) < 0 ||
        q_exact(c, "severity", &sev) < 0 || q_exact(c, "project_id", &project) < 0 ||
        q_exact(c, "repository_name", &repo) < 0)
        return -1;
    if (sev) {
        enum wh_severity s;
        if (wh_severity_parse(&s, sev) < 0)
            return api_error(c, 400, "BAD_REQUEST",
                             "severity must be one of Critical, High, Medium, Low, Negligible, "
                             "Unknown");
        f.severity = (int)s;
    }
    if (project && (api_id(project, &f.project_id) < 0))
        return api_error(c, 400, "BAD_REQUEST", "project_id must be a positive integer");
    if (repo) {
        struct wh_repo r;
        int e = wh_db_repo_get(c->api->db, repo, &r);
        if (e < 0 && e != WH_ENOTFOUND)
            return api_fail(c, e);
        f.repo_id = e == 0 ? r.id : -1; /* an unknown repository has no findings */
    }
    bool fuzzy = false;
    range = api_q(c, "cvss_score_v3", &fuzzy);
    if (range) {
        size_t n = strlen(range);
        const char *tilde = n >= 2 && range[0] == '[' && range[n - 1] == ']'
                                ? memchr(range, '~', n)
                                : NULL;
        if (fuzzy || !tilde ||
            parse_score(range + 1, (size_t)(tilde - range - 1), &f.cvss_from) < 0 ||
            parse_score(tilde + 1, (size_t)(range + n - 1 - tilde - 1), &f.cvss_to) < 0 ||
            f.cvss_from > f.cvss_to)
            return api_error(c, 400, "BAD_REQUEST",
                             "cvss_score_v3 takes a range of scores from 0 to 10: "
                             "cvss_score_v3=[min~max]");
        f.cvss_range = true;
    }
    struct vul_list l = {c, api_bool_query(c, "with_tag", false), json_array()};
    int error = wh_db_vuln_list(c->api->db, &f, offset, limit, add_vul, &l, &total);
    if (error < 0) {
        json_decref(l.out);
        return api_fail(c, error);
    }
    return api_list(c, l.out, total, offset, limit);
}

/* ---- Harbor's CVE export: POST /export/cve, executions, download ---- */

#define EXPORTS_PER_USER_MAX 10

static json_t *export_view(struct call *c, const struct wh_cve_export *e)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(e->id));
    json_object_set_new(o, "user_id", json_integer(e->user_id));
    json_object_set_new(o, "user_name", json_string(e->username));
    json_object_set_new(o, "job_name", json_string(e->job_name));
    json_object_set_new(o, "status", json_string(e->status));
    json_object_set_new(o, "status_text", json_string(e->status_text));
    json_object_set_new(o, "trigger", json_string("MANUAL"));
    json_object_set_new(o, "start_time", json_string(api_time(c, e->start_ms)));
    json_object_set_new(o, "end_time", json_string(e->end_ms ? api_time(c, e->end_ms)
                                                             : "0001-01-01T00:00:00.000Z"));
    json_object_set_new(o, "file_present", json_boolean(e->file_present));
    return o;
}

/* Copies a comma-separated filter of the body: 0, or answers 400 (returns < 0). */
static int export_filter(struct call *c, json_t *body, const char *key, char *out, size_t cap)
{
    json_t *v = json_object_get(body, key);
    out[0] = '\0';
    if (!v || json_is_null(v))
        return 0;
    const char *s = json_string_value(v);
    if (!s)
        return api_error(c, 400, "BAD_REQUEST", wh_pool_sprintf(c->pool, "%s must be a string", key));
    if (strlen(s) >= cap)
        return api_error(c, 400, "BAD_REQUEST",
                         wh_pool_sprintf(c->pool, "%s is longer than %zu characters", key, cap - 1));
    if (strchr(s, ' '))
        return api_error(c, 400, "BAD_REQUEST",
                         wh_pool_sprintf(c->pool, "invalid criteria value, please remove "
                                                  "additional spaces for input: %s", s));
    snprintf(out, cap, "%s", s);
    return 0;
}

int api_export_cve(struct call *c)
{
    const char *type = wh_req_header(c->r, "X-Scan-Data-Type");
    if (!type || strcmp(type, WH_REPORT_MIME) != 0)
        return api_error(c, 400, "BAD_REQUEST",
                         wh_pool_sprintf(c->pool, "Unsupported MIME type : %.100s",
                                         type ? type : ""));
    if (c->who.kind != WH_PRINCIPAL_USER)
        return api_error(c, 403, "FORBIDDEN",
                         wh_pool_sprintf(c->pool, "User : %s not found", c->who.name));
    if (api_writable(c) < 0)
        return -1;
    json_t *body = api_body(c);
    if (!body)
        return -1;
    json_t *projects = json_object_get(body, "projects");
    if (!json_is_array(projects) || json_array_size(projects) != 1 ||
        !json_is_integer(json_array_get(projects, 0)) ||
        json_integer_value(json_array_get(projects, 0)) <= 0)
        return api_error(c, 400, "BAD_REQUEST",
                         "only support export single project: projects must hold one project id");
    struct wh_cve_export *e = wh_pool_alloc(c->pool, sizeof(*e));
    memset(e, 0, sizeof(*e));
    e->project_id = json_integer_value(json_array_get(projects, 0));
    const char *job = json_string_value(json_object_get(body, "job_name"));
    if (job && strlen(job) >= sizeof(e->job_name))
        return api_error(c, 400, "BAD_REQUEST", "job_name is too long");
    snprintf(e->job_name, sizeof(e->job_name), "%s", job ? job : "");
    if (export_filter(c, body, "repositories", e->repositories, sizeof(e->repositories)) < 0 ||
        export_filter(c, body, "tags", e->tags, sizeof(e->tags)) < 0 ||
        export_filter(c, body, "cveIds", e->cve_ids, sizeof(e->cve_ids)) < 0)
        return -1;
    struct wh_project_info *p = wh_pool_alloc(c->pool, sizeof(*p));
    int error = wh_db_project_info(c->api->db, e->project_id, p);
    if (error == WH_ENOTFOUND)
        return api_error(c, 404, "NOT_FOUND",
                         wh_pool_sprintf(c->pool, "project %lld not found",
                                         (long long)e->project_id));
    if (error < 0)
        return api_fail(c, error);
    if (!wh_acl_can(c->api->acl, &c->who, &p->p, WH_RBAC_RES_CVE_EXPORT, WH_RBAC_ACT_CREATE))
        return api_forbidden(c);
    e->user_id = c->who.id;
    snprintf(e->username, sizeof(e->username), "%s", c->who.name);
    int64_t id = 0, kept = 0;
    /* each export keeps its file (up to 64 MiB) until downloaded or a week old */
    if ((error = wh_db_export_count(c->api->db, e->username, &kept)) < 0)
        return api_fail(c, error);
    if (kept >= EXPORTS_PER_USER_MAX)
        return api_error(c, 429, "TOO_MANY_REQUEST",
                         wh_pool_sprintf(c->pool, "at most %d exports are kept per user: "
                                                  "download the finished ones first",
                                         EXPORTS_PER_USER_MAX));
    if ((error = wh_db_export_create(c->api->db, e, wh_now_ms(), &id)) < 0)
        return api_fail(c, error);
    wh_scand_kick_all(c->api->cfg.scand);
    return api_json(c, 200, json_pack("{s:I}", "id", (json_int_t)id));
}

/* The route's export, owned by the caller: 0, or answers 400/403/404 (returns < 0). */
static int own_export(struct call *c, struct wh_cve_export *e)
{
    int64_t id;
    if (api_id(c->param[0], &id) < 0)
        return api_error(c, 400, "BAD_REQUEST", "execution_id must be a positive integer");
    int error = wh_db_export_get(c->api->db, id, e);
    if (error == WH_ENOTFOUND)
        return api_error(c, 404, "NOT_FOUND",
                         wh_pool_sprintf(c->pool, "execution with id: %lld not found",
                                         (long long)id));
    if (error < 0)
        return api_fail(c, error);
    /* only the user who asked for it sees it, administrators included (as Harbor) */
    if (c->who.kind != WH_PRINCIPAL_USER || strcmp(c->who.name, e->username) != 0)
        return api_error(c, 403, "FORBIDDEN", "forbidden");
    return 0;
}

int api_export_execution(struct call *c)
{
    struct wh_cve_export *e = wh_pool_alloc(c->pool, sizeof(*e));
    if (own_export(c, e) < 0)
        return -1;
    return api_json(c, 200, export_view(c, e));
}

struct export_list {
    struct call *c;
    json_t *items;
};

static int add_export(const struct wh_cve_export *e, void *payload)
{
    struct export_list *l = payload;
    json_array_append_new(l->items, export_view(l->c, e));
    return 0;
}

int api_export_executions(struct call *c)
{
    struct export_list l = {c, json_array()};
    int error = c->who.kind == WH_PRINCIPAL_USER
                    ? wh_db_export_list(c->api->db, c->who.name, add_export, &l)
                    : 0;
    if (error < 0) {
        json_decref(l.items);
        return api_fail(c, error);
    }
    return api_json(c, 200, json_pack("{s:o}", "items", l.items));
}

int api_export_download(struct call *c)
{
    struct wh_cve_export *e = wh_pool_alloc(c->pool, sizeof(*e));
    char *csv = NULL;
    size_t len = 0;
    if (own_export(c, e) < 0)
        return -1;
    if (!e->file_present)
        return api_error(c, 404, "NOT_FOUND", "the export has no file (yet)");
    int error = wh_db_export_csv(c->api->db, e->id, &csv, &len);
    if (error < 0)
        return api_fail(c, error);
    wh_resp_header(c->r, "Content-Disposition",
                   wh_pool_sprintf(c->pool, "attachment; filename=\"scandata_export_%lld.csv\"",
                                   (long long)e->id));
    wh_resp_send_copy(c->r, 200, "text/csv", csv, len);
    free(csv);
    /* as Harbor: a downloaded export is gone */
    if (wh_db_export_delete(c->api->db, e->id) < 0)
        wh_log_warn("export %lld: %s", (long long)e->id, wh_error_msg());
    return 0;
}
