/*
 * gate.c: Harbor's vulnerability check on manifest pulls (its vulnerable
 * middleware): threshold, scannable or not, scan status, the report less
 * the effective allowlist. Also the allowlist's validation (Harbor's CVE
 * allowlist model), shared by the project and system lists.
 */
#include "policy/policy.h"

#include <assert.h>
#include <ctype.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MSG_MAX 2048
#define MEMO_SLOTS 64

/*
 * The verdicts on reports, remembered. A verdict is a function of the report,
 * the threshold and the effective allowlist's items (after its expiry is
 * judged), so it is kept under exactly that key: the artifact, its scan's
 * report_id and end time (each finished scan has a new one of them), and a
 * SHA-256 of the threshold and the items. A new report, a changed list or
 * setting, or a list that expires, gives another key: nothing has to be told
 * to forget. It saves reading and parsing the report on each pull.
 */
struct memo {
    int64_t artifact_id; /* 0: empty */
    char report_id[WH_SCAN_ID_MAX];
    int64_t end_ms;
    char key[WH_DIGEST_STR_MAX];
    char *msg; /* NULL: allowed */
};
static struct memo memos[MEMO_SLOTS];
static pthread_mutex_t memo_lock = PTHREAD_MUTEX_INITIALIZER;

/* The remembered verdict: true on a hit, with `*msg_out` a copy (NULL: allowed). */
static bool memo_get(const struct wh_scan_job *job, const char *key, char **msg_out)
{
    bool hit = false;
    pthread_mutex_lock(&memo_lock);
    struct memo *m = &memos[(uint64_t)job->artifact_id % MEMO_SLOTS];
    if (m->artifact_id == job->artifact_id && m->end_ms == job->end_ms &&
        strcmp(m->report_id, job->report_id) == 0 && strcmp(m->key, key) == 0) {
        *msg_out = m->msg ? wh_strdup(m->msg) : NULL;
        hit = true;
    }
    pthread_mutex_unlock(&memo_lock);
    return hit;
}

static void memo_put(const struct wh_scan_job *job, const char *key, const char *msg)
{
    pthread_mutex_lock(&memo_lock);
    struct memo *m = &memos[(uint64_t)job->artifact_id % MEMO_SLOTS];
    free(m->msg);
    m->artifact_id = job->artifact_id;
    snprintf(m->report_id, sizeof(m->report_id), "%s", job->report_id);
    m->end_ms = job->end_ms;
    snprintf(m->key, sizeof(m->key), "%s", key);
    m->msg = msg ? wh_strdup(msg) : NULL;
    pthread_mutex_unlock(&memo_lock);
}

/* SHA-256 of the threshold and the effective items (NULL: none) into `key`. */
static void memo_key(char *key, const char *sev, json_t *allow)
{
    char *items = allow ? json_dumps(allow, JSON_COMPACT) : NULL;
    size_t n = strlen(sev) + 2 + (items ? strlen(items) : 4);
    char *text = wh_malloc(n);
    snprintf(text, n, "%s\n%s", sev, items ? items : "null");
    struct wh_digest d;
    wh_digest_of(&d, WH_DIGEST_SHA256, text, strlen(text));
    snprintf(key, WH_DIGEST_STR_MAX, "%s", d.str);
    free(text);
    free(items);
}

static bool truthy(const char *v)
{
    return v && (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

static const char *meta_get(json_t *meta, const char *key)
{
    return json_string_value(json_object_get(meta, key));
}

bool wh_policy_prevent_vul(const char *metadata)
{
    json_t *meta = json_loads(metadata ? metadata : "", 0, NULL);
    bool on = truthy(meta_get(meta, "prevent_vul"));
    json_decref(meta);
    return on;
}

/* Harbor's severity codes: None and Unknown 0 … Critical 5, anything else 99. */
static int sev_code(const char *s)
{
    static const struct {
        const char *name;
        int code;
    } codes[] = {{"None", 0},   {"Unknown", 0}, {"Negligible", 1}, {"Low", 2},
                 {"Medium", 3}, {"High", 4},    {"Critical", 5}};
    for (size_t i = 0; s && i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strcasecmp(codes[i].name, s) == 0)
            return codes[i].code;
    return 99;
}

/* The threshold's title-cased name: None..Critical as they are, Negligible is None, else Unknown. */
static const char *threshold_name(const char *v)
{
    static const char *const names[] = {"None", "Low", "Medium", "High", "Critical"};
    for (size_t i = 0; v && i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(names[i], v) == 0)
            return names[i];
    if (v && strcasecmp(v, "negligible") == 0)
        return "None";
    return "Unknown";
}

static char *policy_msg(const char *head, const char *sev, const char *tail)
{
    char *m = malloc(MSG_MAX);
    if (m)
        snprintf(m, MSG_MAX,
                 "%s cannot be pulled due to configured policy in 'Prevent images with "
                 "vulnerability severity of \"%s\" or higher from running.' To continue with "
                 "pull, please contact your project administrator %s",
                 head, sev, tail);
    return m;
}

static int blocked_unscanned(char **msg_out, const char *sev)
{
    *msg_out = policy_msg("current image without vulnerability scanning", sev, "for help.");
    return *msg_out ? WH_EDENIED : WH_ERROR;
}

/* The effective allowlist's ids (a JSON array of {"cve_id"}), or NULL when none or expired. */
static json_t *effective_items(wh_db *db, json_t *meta, const char *project_list, int64_t now_s,
                               json_t **holder)
{
    const char *reuse = meta_get(meta, "reuse_sys_cve_allowlist");
    *holder = NULL;
    if (!reuse || truthy(reuse)) {
        char *sys = malloc(WH_PROJECT_META_MAX);
        if (sys && wh_db_setting_get(db, WH_SETTING_CVE_ALLOWLIST, sys, WH_PROJECT_META_MAX) == 0)
            *holder = json_loads(sys, 0, NULL);
        free(sys);
    } else {
        *holder = json_loads(project_list ? project_list : "", 0, NULL);
    }
    json_t *exp = json_object_get(*holder, "expires_at");
    if (json_is_integer(exp) && json_integer_value(exp) > 0 && now_s >= json_integer_value(exp))
        return NULL; /* an expired list is ignored as a whole */
    return json_object_get(*holder, "items");
}

static bool listed(json_t *items, const char *id)
{
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
        const char *c = json_string_value(json_object_get(it, "cve_id"));
        if (c && strcmp(c, id) == 0)
            return true;
    }
    return false;
}

/* Steps 8 and 9 over the report text: 0 or WH_EDENIED with the message. */
static int judge_report(char **msg_out, const char *report, json_t *allow, const char *sev)
{
    int threshold = sev_code(sev);
    json_t *rep = json_loads(report, 0, NULL);
    json_t *seen = json_object(), *blocking = json_array();
    json_t *vulns = json_object_get(rep, "vulnerabilities");
    int64_t count = 0;
    int max = -1;
    int error = 0;
    size_t i;
    json_t *v;
    json_array_foreach(vulns, i, v) {
        const char *id = json_string_value(json_object_get(v, "id"));
        const char *pkg = json_string_value(json_object_get(v, "package"));
        const char *ver = json_string_value(json_object_get(v, "version"));
        if (!id)
            continue;
        char key[1024];
        snprintf(key, sizeof(key), "%s\x1f%s\x1f%s", id, pkg ? pkg : "", ver ? ver : "");
        if (json_object_get(seen, key))
            continue;
        json_object_set_new(seen, key, json_true());
        if (allow && listed(allow, id))
            continue;
        count++;
        int code = sev_code(json_string_value(json_object_get(v, "severity")));
        if (code > max)
            max = code;
        if (code >= threshold) {
            /* each blocking id once, in the report's order */
            bool dup = false;
            size_t j;
            json_t *b;
            json_array_foreach(blocking, j, b)
                dup = dup || strcmp(json_string_value(b), id) == 0;
            if (!dup)
                json_array_append_new(blocking, json_string(id));
        }
    }
    if (max >= 0 && max >= threshold) {
        char head[64], tail[MSG_MAX / 2];
        snprintf(head, sizeof(head), "current image with %lld %s", (long long)count,
                 count == 1 ? "vulnerability" : "vulnerabilities");
        size_t n = json_array_size(blocking), used = 0;
        used += (size_t)snprintf(tail, sizeof(tail),
                                 "to exempt matched vulnerabilities through configuring the CVE "
                                 "allowlist. Blocking vulnerabilities: ");
        for (size_t k = 0; k < n && k < WH_POLICY_NAMED_MAX && used < sizeof(tail); k++)
            used += (size_t)snprintf(tail + used, sizeof(tail) - used, "%s%s", k ? ", " : "",
                                     json_string_value(json_array_get(blocking, k)));
        if (n > WH_POLICY_NAMED_MAX && used < sizeof(tail))
            used += (size_t)snprintf(tail + used, sizeof(tail) - used, " and %zu more",
                                     n - WH_POLICY_NAMED_MAX);
        if (used < sizeof(tail))
            snprintf(tail + used, sizeof(tail) - used, ".");
        *msg_out = policy_msg(head, sev, tail);
        error = *msg_out ? WH_EDENIED : WH_ERROR;
    }
    json_decref(blocking);
    json_decref(seen);
    json_decref(rep);
    return error;
}

static int policy_gate(char **msg_out, wh_db *db, const char *metadata,
                       const char *cve_allowlist, int64_t artifact_id, int64_t now_s);

/*
 * Allowed verdicts remembered per thread: an artifact allowed while the
 * database stood at one data version is allowed again while it still stands
 * there (any change anywhere, a scan, a setting, an allowlist, moves it) and
 * for at most a second (an allowlist may expire). Refusals are not kept:
 * they are not the path that must be fast.
 */
#define ALLOWED_SLOTS 64
struct allowed {
    int64_t artifact_id;
    uint64_t version;
    uint64_t inputs; /* hash of the settings and allowlist texts judged with */
    int64_t until_s;
};

/* FNV-1a over the gate's text inputs (a cache key, not a security boundary). */
static uint64_t inputs_hash(const char *metadata, const char *allowlist)
{
    uint64_t h = 14695981039346656037ull;
    for (const char *t = metadata ? metadata : ""; *t; t++)
        h = (h ^ (unsigned char)*t) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull; /* separator */
    for (const char *t = allowlist ? allowlist : ""; *t; t++)
        h = (h ^ (unsigned char)*t) * 1099511628211ull;
    return h;
}
static _Thread_local struct allowed allowed_cache[ALLOWED_SLOTS];

int wh_policy_gate(char **msg_out, wh_db *db, const char *metadata, const char *cve_allowlist,
                   int64_t artifact_id, int64_t now_s)
{
    uint64_t version = wh_db_data_version(db);
    uint64_t inputs = inputs_hash(metadata, cve_allowlist);
    struct allowed *slot = &allowed_cache[(uint64_t)artifact_id % ALLOWED_SLOTS];
    *msg_out = NULL;
    if (version && slot->artifact_id == artifact_id && slot->version == version &&
        slot->inputs == inputs && now_s >= slot->until_s - 1 && now_s < slot->until_s)
        return 0;
    int error = policy_gate(msg_out, db, metadata, cve_allowlist, artifact_id, now_s);
    if (error == 0 && !*msg_out && version)
        *slot = (struct allowed){artifact_id, version, inputs, now_s + 1};
    return error;
}

static int policy_gate(char **msg_out, wh_db *db, const char *metadata, const char *cve_allowlist,
                       int64_t artifact_id, int64_t now_s)
{
    json_t *meta = json_loads(metadata ? metadata : "", 0, NULL), *holder = NULL;
    struct wh_gate_artifact a;
    struct wh_scan_job *job = NULL;
    char *report = NULL;
    int error;

    *msg_out = NULL;
    const char *sev = threshold_name(meta_get(meta, "severity"));
    if ((error = wh_db_gate_artifact(db, artifact_id, &a)) < 0)
        goto out;
    if (a.signature)
        goto out; /* signatures are read by the tools that check them */
    if (a.index) {
        /* no child scanned: the index has no report, blocked when an image
         * child could have one; otherwise each child is checked when pulled */
        if (a.scanned_children == 0 && a.image_children > 0)
            error = blocked_unscanned(msg_out, sev);
        goto out;
    }
    job = malloc(sizeof(*job));
    if (!job) {
        error = WH_ERROR;
        goto out;
    }
    error = wh_db_scan_get(db, artifact_id, job);
    if (error == WH_ENOTFOUND) {
        error = a.image ? blocked_unscanned(msg_out, sev) : 0;
        goto out;
    }
    if (error < 0)
        goto out;
    if (strcmp(job->status, WH_SCAN_SUCCESS) != 0) {
        char head[96];
        snprintf(head, sizeof(head), "current image with \"%s\" status of vulnerability scanning",
                 job->status);
        *msg_out = policy_msg(head, sev, "for help.");
        error = *msg_out ? WH_EDENIED : WH_ERROR;
        goto out;
    }
    json_t *allow = effective_items(db, meta, cve_allowlist, now_s, &holder);
    char key[WH_DIGEST_STR_MAX];
    memo_key(key, sev, allow);
    if (memo_get(job, key, msg_out)) {
        error = *msg_out ? WH_EDENIED : 0;
        goto out;
    }
    if ((error = wh_db_scan_report(db, artifact_id, &report)) < 0)
        goto out;
    error = judge_report(msg_out, report, allow, sev);
    if (error == 0 || error == WH_EDENIED)
        memo_put(job, key, *msg_out);
out:
    free(report);
    free(job);
    json_decref(holder);
    json_decref(meta);
    return error;
}

int wh_policy_allowlist_parse(json_t **out, json_t *in, char *msg, size_t cap)
{
    json_t *items = json_object_get(in, "items");
    json_t *res = json_object(), *arr = json_array();
    json_object_set_new(res, "items", arr);
    *out = res;
    if (items && !json_is_array(items) && !json_is_null(items)) {
        snprintf(msg, cap, "cve_allowlist.items must be an array");
        return WH_EINVALID;
    }
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
        const char *id = json_string_value(json_object_get(it, "cve_id"));
        const char *p = id ? id : "";
        while (*p && isspace((unsigned char)*p))
            p++;
        if (!*p) {
            snprintf(msg, cap, "empty or whitespace-only CVE ID in allowlist");
            return WH_EINVALID;
        }
        if (strlen(id) > 128) {
            snprintf(msg, cap, "CVE ID in allowlist longer than 128 characters");
            return WH_EINVALID;
        }
        size_t j;
        json_t *seen;
        json_array_foreach(arr, j, seen) {
            if (strcmp(json_string_value(json_object_get(seen, "cve_id")), id) == 0) {
                snprintf(msg, cap, "duplicate CVE ID in allowlist: %s", id);
                return WH_EINVALID;
            }
        }
        json_array_append_new(arr, json_pack("{s:s}", "cve_id", id));
    }
    json_t *exp = json_object_get(in, "expires_at");
    if (exp && !json_is_null(exp) && !json_is_integer(exp)) {
        snprintf(msg, cap, "cve_allowlist.expires_at must be an integer (unix seconds) or null");
        return WH_EINVALID;
    }
    if (json_is_integer(exp) && json_integer_value(exp) > 0)
        json_object_set_new(res, "expires_at", json_integer(json_integer_value(exp)));
    return 0;
}

int wh_policy_allowlist_text(char **out, json_t *in, char *msg, size_t cap)
{
    json_t *al = NULL;
    char *text = NULL;
    int error;

    *out = NULL;
    if ((error = wh_policy_allowlist_parse(&al, in, msg, cap)) < 0)
        goto out;
    text = json_dumps(al, JSON_COMPACT);
    if (!text) {
        snprintf(msg, cap, "out of memory");
        error = WH_ERROR;
        goto out;
    }
    if (strlen(text) >= WH_PROJECT_META_MAX) {
        snprintf(msg, cap, "cve_allowlist exceeds %d bytes", WH_PROJECT_META_MAX - 1);
        error = WH_EINVALID;
        goto out;
    }
    *out = text;
    text = NULL;
out:
    free(text);
    json_decref(al);
    return error;
}

int wh_policy_severity_norm(char *out, size_t cap, const char *in)
{
    static const char *const names[] = {"none", "low", "medium", "high", "critical"};
    assert(cap >= 16);
    out[0] = '\0';
    size_t n = in ? strlen(in) : 0;
    if (n == 0 || n >= cap)
        return WH_EINVALID;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[n] = '\0';
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(names[i], out) == 0)
            return 0;
    out[0] = '\0';
    return WH_EINVALID;
}
