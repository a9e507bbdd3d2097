/*
 * scans.c: Harbor's scan API over the registry's own scan queue:
 * POST .../artifacts/{reference}/scan (202, 409 while a
 * scan is pending or running), POST .../scan/stop, GET
 * .../scan/{report_id}/log, the vulnerabilities addition (the stored report
 * keyed by its mime type) and the `scan_overview` of the artifact views. An
 * index is scanned through its image children: a scan request queues each,
 * its overview and report merge theirs.
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

/* ---- an index: its image children ---- */

#define INDEX_CHILDREN_MAX 128 /* children of an index looked at for its overview */

struct children {
    struct call *c;
    int64_t repo_id;
    struct wh_artifact_info *kids; /* pool */
    size_t n;
};

static int add_child(const char *digest, int64_t child_id, void *payload)
{
    struct children *ch = payload;
    struct wh_artifact_info *k = &ch->kids[ch->n];
    if (child_id <= 0 || ch->n >= INDEX_CHILDREN_MAX)
        return 0;
    if (wh_db_artifact_get(ch->c->api->db, ch->repo_id, digest, true, k) == 0) {
        wh_artifact_info_dispose(k); /* its annotations are not needed */
        if (api_scannable(k))
            ch->n++;
    }
    return 0;
}

/* The scannable children of index `a` present in its repository. */
static int index_children(struct call *c, const struct wh_artifact_info *a, struct children *out)
{
    out->c = c;
    out->repo_id = a->repo_id;
    out->n = 0;
    out->kids = wh_pool_alloc(c->pool, INDEX_CHILDREN_MAX * sizeof(*out->kids));
    return wh_db_artifact_children(c->api->db, a->id, add_child, out);
}

bool api_scan_target(struct call *c, const struct wh_artifact_info *a)
{
    if (!api_is_index(a->media_type))
        return api_scannable(a);
    struct children ch;
    return index_children(c, a, &ch) == 0 && ch.n > 0;
}

static int severity_rank(const char *name)
{
    enum wh_severity s;
    return name && wh_severity_parse(&s, name) == 0 ? (int)s : -1;
}

/*
 * The children's reports merged as Harbor merges them: items
 * deduplicated on id, package and version with the children's digests in
 * `artifact_digests`, the highest severity, `generated_at` and `scanner` of
 * the newest report. NULL when no child has a report. New reference.
 */
static json_t *merged_report(struct call *c, const struct children *ch)
{
    json_t *out = NULL, *vulns = json_array(), *seen = json_object();
    const char *overall = "None";
    for (size_t i = 0; i < ch->n; i++) {
        char *text = NULL;
        if (wh_db_scan_report(c->api->db, ch->kids[i].id, &text) < 0)
            continue;
        json_t *rep = json_loads(text, 0, NULL);
        free(text);
        if (!json_is_object(rep)) {
            json_decref(rep);
            continue;
        }
        if (!out)
            out = json_object();
        const char *gen = json_string_value(json_object_get(rep, "generated_at"));
        const char *cur = json_string_value(json_object_get(out, "generated_at"));
        if (gen && (!cur || strcmp(gen, cur) > 0)) {
            json_object_set(out, "generated_at", json_object_get(rep, "generated_at"));
            json_object_set(out, "scanner", json_object_get(rep, "scanner"));
        }
        const char *sev = json_string_value(json_object_get(rep, "severity"));
        if (severity_rank(sev) > severity_rank(overall))
            overall = wh_pool_strdup(c->pool, sev);
        size_t k;
        json_t *v;
        json_array_foreach(json_object_get(rep, "vulnerabilities"), k, v) {
            const char *key = wh_pool_sprintf(
                c->pool, "%s\n%s\n%s", json_string_value(json_object_get(v, "id")),
                json_string_value(json_object_get(v, "package")),
                json_string_value(json_object_get(v, "version")));
            json_t *have = json_object_get(seen, key);
            if (!have) {
                have = json_deep_copy(v);
                json_object_set_new(have, "artifact_digests", json_array());
                json_object_set(seen, key, have);
                json_array_append_new(vulns, have);
            }
            json_array_append_new(json_object_get(have, "artifact_digests"),
                                  json_string(ch->kids[i].digest));
        }
        json_decref(rep);
    }
    json_decref(seen);
    if (!out) {
        json_decref(vulns);
        return NULL;
    }
    json_object_set_new(out, "severity", json_string(overall));
    json_object_set_new(out, "vulnerabilities", vulns);
    return out;
}

/* Harbor's overview summary of a report: total, fixable and a count per severity present. */
static json_t *report_summary(json_t *rep)
{
    json_t *counts = json_object();
    json_int_t total = 0, fixable = 0;
    size_t k;
    json_t *v;
    json_array_foreach(json_object_get(rep, "vulnerabilities"), k, v) {
        const char *sev = json_string_value(json_object_get(v, "severity"));
        const char *fix = json_string_value(json_object_get(v, "fix_version"));
        total++;
        fixable += fix && *fix;
        if (sev)
            json_object_set_new(counts, sev,
                                json_integer(json_integer_value(json_object_get(counts, sev)) + 1));
    }
    return json_pack("{s:I,s:I,s:o}", "total", total, "fixable", fixable, "summary", counts);
}

/* Status of an index from its children's: Harbor shows the least advanced. */
static const char *index_status(const struct wh_scan_job *jobs, size_t n)
{
    static const char *const order[] = {WH_SCAN_RUNNING, WH_SCAN_PENDING, WH_SCAN_ERROR,
                                        WH_SCAN_STOPPED, NULL};
    for (int o = 0; order[o]; o++)
        for (size_t i = 0; i < n; i++)
            if (strcmp(jobs[i].status, order[o]) == 0)
                return order[o];
    return WH_SCAN_SUCCESS;
}

/* The scanner of a scan: an external one's as recorded, else the built-in one. */
static json_t *scanner_view(const struct wh_scan_job *j)
{
    json_t *ext = j && j->scanner[0] ? json_loads(j->scanner, 0, NULL) : NULL;
    if (json_is_object(ext))
        return ext;
    json_decref(ext);
    return json_pack("{s:s,s:s,s:s}", "name", WH_SCANNER_NAME, "vendor", WH_SCANNER_NAME,
                     "version", WH_SCANNER_VERSION);
}

static json_t *keyed(json_t *o)
{
    json_t *k = json_object();
    json_object_set_new(k, WH_REPORT_MIME, o);
    return k;
}

/*
 * An index's overview: its image children's scans together. Status the
 * least advanced of theirs, times from the first start to the last end,
 * summary and severity of the merged report, complete_percent the share of
 * children whose scan ended, report_id the newest child's.
 */
static json_t *index_overview(struct call *c, const struct wh_artifact_info *a)
{
    struct children ch;
    if (index_children(c, a, &ch) < 0 || ch.n == 0)
        return NULL;
    struct wh_scan_job *jobs = wh_pool_alloc(c->pool, ch.n * sizeof(*jobs));
    size_t nj = 0, done = 0;
    int64_t start = 0, end = 0, newest = -1;
    for (size_t i = 0; i < ch.n; i++) {
        if (wh_db_scan_get(c->api->db, ch.kids[i].id, &jobs[nj]) < 0)
            continue;
        struct wh_scan_job *j = &jobs[nj++];
        bool finished = strcmp(j->status, WH_SCAN_PENDING) != 0 &&
                        strcmp(j->status, WH_SCAN_RUNNING) != 0;
        done += finished;
        if (j->start_ms && (!start || j->start_ms < start))
            start = j->start_ms;
        if (j->end_ms > end)
            end = j->end_ms;
        if (newest < 0 || j->queued_ms > jobs[newest].queued_ms)
            newest = (int64_t)(nj - 1);
    }
    if (nj == 0)
        return NULL;
    const char *status = index_status(jobs, nj);
    json_t *o = json_object();
    json_object_set_new(o, "report_id", json_string(jobs[newest].report_id));
    json_object_set_new(o, "scan_status", json_string(status));
    json_t *rep = merged_report(c, &ch);
    if (rep) {
        json_object_set(o, "severity", json_object_get(rep, "severity"));
        json_object_set_new(o, "summary", report_summary(rep));
        json_decref(rep);
    }
    bool all_done = done == nj;
    json_object_set_new(o, "duration",
                        json_integer(all_done && start && end >= start ? (end - start) / 1000 : 0));
    if (start)
        json_object_set_new(o, "start_time", json_string(api_time(c, start)));
    if (all_done && end)
        json_object_set_new(o, "end_time", json_string(api_time(c, end)));
    json_object_set_new(o, "scanner", scanner_view(&jobs[newest]));
    json_object_set_new(o, "complete_percent", json_integer((json_int_t)(100 * done / ch.n)));
    return keyed(o);
}

json_t *api_scan_overview(struct call *c, const struct wh_artifact_info *a)
{
    struct wh_scan_job *j = wh_pool_alloc(c->pool, sizeof(*j));
    if (!accepts_report(c))
        return NULL;
    if (api_is_index(a->media_type))
        return index_overview(c, a);
    if (!api_scannable(a) || wh_db_scan_get(c->api->db, a->id, j) < 0)
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
    json_object_set_new(o, "scanner", scanner_view(j));
    bool done = strcmp(j->status, WH_SCAN_SUCCESS) == 0;
    json_object_set_new(o, "complete_percent", json_integer(done ? 100 : 0));
    return keyed(o);
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

/* An index: a scan of each image child (those already pending or running keep theirs). */
static int scan_index(struct call *c, const struct wh_artifact_info *a)
{
    struct children ch;
    int error = index_children(c, a, &ch);
    if (error < 0)
        return api_fail(c, error);
    if (ch.n == 0)
        return unsupported(c, a);
    size_t queued = 0;
    char status[16] = "";
    for (size_t i = 0; i < ch.n; i++) {
        char id[WH_SCAN_ID_MAX];
        wh_random_hex(id, 16);
        error = wh_db_scan_request_by(c->api->db, ch.kids[i].id, id, wh_now_ms(), c->who.name,
                                      status);
        if (error == 0)
            queued++;
        else if (error != WH_ECONFLICT)
            return api_fail(c, error);
    }
    if (queued == 0)
        return api_error(c, 409, "CONFLICT",
                         wh_pool_sprintf(c->pool, "a previous scan process is %s", status));
    wh_scand_kick(c->api->cfg.scand);
    return api_ok(c, 202);
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
    if (api_is_index(a->media_type))
        return scan_index(c, a);
    if (!api_scannable(a))
        return unsupported(c, a);
    wh_random_hex(id, 16);
    int error =
        wh_db_scan_request_by(c->api->db, a->id, id, wh_now_ms(), c->who.name, status);
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
    if (!accepts_report(c))
        return api_json(c, 200, json_object());
    if (api_is_index(a->media_type)) {
        struct children ch;
        int e = index_children(c, a, &ch);
        if (e < 0)
            return api_fail(c, e);
        json_t *merged = merged_report(c, &ch);
        return api_json(c, 200, merged ? keyed(merged) : json_object());
    }
    if (!api_scannable(a))
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
