/*
 * client.c: wharf as a client of external scanner adapters (see adapter.h).
 * Everything an adapter sends is capped (metadata and errors at
 * WH_ADAPTER_META_MAX; reports at WH_ADAPTER_REPORT_MAX bytes, weighed
 * before they are parsed, and each item's fields) and checked before it is
 * stored; the scan workers turn the report's items into finding rows as the
 * built-in scanner's (scand.c); every
 * exchange has a timeout and the whole job a deadline. The token handed to
 * the adapter grants pull and scanner-pull on the one repository, lives
 * until the deadline and is revoked when the job ends, however it ends.
 */
#include "adapter/adapter.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "fetch/fetch.h"
#include "scan/scan.h"

#define CALL_TIMEOUT_S 30   /* one exchange with an adapter (the report may take longer) */
#define REFRESH_DEFAULT_S 5 /* Harbor's retry when Refresh-After is missing */
#define REFRESH_MAX_S 60

/* ---- pure checks ---- */

static bool nonempty(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && *s;
}

static bool array_has(const json_t *arr, const char *want)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        const char *s = json_string_value(v);
        if (s && strcmp(s, want) == 0)
            return true;
    }
    return false;
}

int wh_adapter_metadata_check(const json_t *meta)
{
    const json_t *sc = json_object_get(meta, "scanner");
    if (!json_is_object(meta))
        return wh_error_set(WH_EINVALID, "the metadata is not a JSON object");
    if (!nonempty(sc, "name") || !nonempty(sc, "vendor") || !nonempty(sc, "version"))
        return wh_error_set(WH_EINVALID, "the metadata lacks scanner name, vendor or version");
    const json_t *caps = json_object_get(meta, "capabilities");
    if (!json_is_array(caps) || json_array_size(caps) == 0)
        return wh_error_set(WH_EINVALID, "the metadata lists no capability");
    size_t i;
    json_t *c;
    json_array_foreach(caps, i, c) {
        const json_t *consumes = json_object_get(c, "consumes_mime_types");
        const json_t *produces = json_object_get(c, "produces_mime_types");
        if (!array_has(consumes, WH_ADAPTER_MIME_DOCKER_MANIFEST))
            return wh_error_set(WH_EINVALID, "missing %s in consumes_mime_types",
                                WH_ADAPTER_MIME_DOCKER_MANIFEST);
        if (!array_has(produces, WH_REPORT_MIME) &&
            !array_has(produces, WH_ADAPTER_MIME_REPORT_NATIVE) &&
            !array_has(produces, "application/vnd.security.sbom.report+json; version=1.0"))
            return wh_error_set(WH_EINVALID, "missing a vulnerability report type in "
                                             "produces_mime_types");
    }
    return 0;
}

static int sev_rank(const char *name)
{
    enum wh_severity s;
    return name && wh_severity_parse(&s, name) == 0 ? (int)s : -1;
}

/* What weighing a report has seen so far (wh_adapter_report_weigh). */
struct weigh {
    char open[WH_ADAPTER_REPORT_DEPTH_MAX]; /* '{' or '[' per level */
    size_t depth;
    bool value_next;  /* the next token is a value (not an object's key) */
    bool vulns_key;   /* the last key of the top-level object may be "vulnerabilities" */
    bool in_vulns;    /* the level-2 array open is the top-level "vulnerabilities" */
    size_t values, items;
};

/* A value starts: counts it (and the item, in the vulnerabilities list). 0 or WH_ETOOBIG. */
static int weigh_value(struct weigh *w)
{
    if (++w->values > WH_ADAPTER_REPORT_VALUES_MAX)
        return wh_error_set(WH_ETOOBIG, "the report holds more than %u JSON values",
                            WH_ADAPTER_REPORT_VALUES_MAX);
    if (w->in_vulns && w->depth == 2 && ++w->items > WH_ADAPTER_REPORT_ITEMS_MAX)
        return wh_error_set(WH_ETOOBIG, "the report lists more than %u vulnerabilities",
                            WH_ADAPTER_REPORT_ITEMS_MAX);
    return 0;
}

int wh_adapter_report_weigh(const char *body, size_t len)
{
    static const char key[] = "vulnerabilities";
    struct weigh w = {.value_next = true};
    int error;
    for (size_t i = 0; i < len; i++) {
        char ch = body[i];
        if (ch == '"') {
            /* a string: skip to its closing quote (escapes skip the next byte) */
            size_t start = ++i;
            bool escaped = false;
            while (i < len && body[i] != '"') {
                escaped |= body[i] == '\\';
                i += body[i] == '\\' ? 2 : 1;
            }
            if (w.value_next) {
                if ((error = weigh_value(&w)) < 0)
                    return error;
                w.value_next = false;
            } else if (w.depth == 1) {
                /* a top-level key; one written with escapes may spell the name too */
                size_t n = (i < len ? i : len) - start;
                w.vulns_key = escaped || (n == sizeof(key) - 1 && memcmp(body + start, key, n) == 0);
            }
            continue;
        }
        switch (ch) {
        case '{':
        case '[':
            if ((error = weigh_value(&w)) < 0)
                return error;
            if (w.depth == WH_ADAPTER_REPORT_DEPTH_MAX)
                return wh_error_set(WH_ETOOBIG, "the report is nested deeper than %u levels",
                                    WH_ADAPTER_REPORT_DEPTH_MAX);
            w.open[w.depth++] = ch;
            if (w.depth == 2)
                w.in_vulns = ch == '[' && w.open[0] == '{' && w.vulns_key;
            w.value_next = ch == '[';
            break;
        case '}':
        case ']':
            if (w.depth > 0)
                w.depth--;
            w.value_next = false;
            break;
        case ':':
            w.value_next = true;
            break;
        case ',':
            w.value_next = w.depth > 0 && w.open[w.depth - 1] == '[';
            break;
        case ' ': case '\t': case '\n': case '\r':
            break;
        default:
            /* a number or literal (anything else is for the parser to refuse) */
            if ((error = weigh_value(&w)) < 0)
                return error;
            while (i + 1 < len && strchr("{}[]:,\" \t\n\r", body[i + 1]) == NULL)
                i++;
            w.value_next = false;
            break;
        }
    }
    return 0;
}

/* The fields of a report item that are kept as they come, with their JSON types. */
static const struct {
    const char *key;
    json_type type;
} item_fields[] = {
    {"fix_version", JSON_STRING}, {"status", JSON_STRING}, {"vendor_attributes", JSON_OBJECT},
};

/* A refused item field: its name and cap in the message (`list`: a count of entries). */
static int too_big(size_t i, const char *field, size_t cap, bool list)
{
    return wh_error_set(WH_ETOOBIG, "vulnerability %zu of the report: %s %s %zu %s", i, field,
                        list ? "has more than" : "is longer than", cap,
                        list ? "entries" : "bytes");
}

/* `s` cut at `cap` bytes, on a UTF-8 character boundary (jansson's strings are UTF-8). */
static json_t *cut(const json_t *s, size_t cap)
{
    const char *t = json_string_value(s);
    size_t n = json_string_length(s);
    if (n > cap) {
        n = cap;
        while (n > 0 && ((unsigned char)t[n] & 0xC0) == 0x80)
            n--;
    }
    return json_stringn(t, n);
}

/* A list of strings (links, CWE ids) within its caps, into `o`; other entries are left out. */
static int copy_list(json_t *o, const json_t *v, const char *key, size_t i)
{
    const json_t *in = json_object_get(v, key);
    if (!json_is_array(in))
        return 0;
    if (json_array_size(in) > WH_ADAPTER_ITEM_LIST_MAX)
        return too_big(i, key, WH_ADAPTER_ITEM_LIST_MAX, true);
    json_t *out = json_array();
    size_t k;
    json_t *x;
    json_array_foreach(in, k, x) {
        if (!json_is_string(x))
            continue;
        if (json_string_length(x) > WH_ADAPTER_ITEM_STR_MAX) {
            json_decref(out);
            return too_big(i, key, WH_ADAPTER_ITEM_STR_MAX, false);
        }
        json_array_append(out, x);
    }
    json_object_set_new(o, key, out);
    return 0;
}

/* Harbor's preferred_cvss: the two scores (numbers) and vectors (strings within the cap). */
static int copy_cvss(json_t *o, const json_t *v, size_t i)
{
    const json_t *in = json_object_get(v, "preferred_cvss");
    if (!json_is_object(in))
        return 0;
    json_t *out = json_object();
    static const char *const scores[] = {"score_v3", "score_v2"};
    static const char *const vectors[] = {"vector_v3", "vector_v2"};
    for (size_t k = 0; k < 2; k++) {
        json_t *sc = json_object_get(in, scores[k]), *ve = json_object_get(in, vectors[k]);
        json_object_set_new(out, scores[k], json_is_number(sc) ? json_copy(sc) : json_null());
        if (json_is_string(ve) && json_string_length(ve) > WH_ADAPTER_ITEM_STR_MAX) {
            json_decref(out);
            return too_big(i, "preferred_cvss", WH_ADAPTER_ITEM_STR_MAX, false);
        }
        json_object_set_new(out, vectors[k], json_string(json_is_string(ve)
                                                             ? json_string_value(ve) : ""));
    }
    json_object_set_new(o, "preferred_cvss", out);
    return 0;
}

/* One item of a report checked and reduced to Harbor's fields (`*out`, new reference). */
static int import_item(json_t **out, const json_t *v, size_t i, const char *digest, int *rank_out)
{
    const char *id = json_string_value(json_object_get(v, "id"));
    const char *pkg = json_string_value(json_object_get(v, "package"));
    const char *ver = json_string_value(json_object_get(v, "version"));
    const char *sev = json_string_value(json_object_get(v, "severity"));
    int rank = sev_rank(sev);
    int error = 0;
    *out = NULL;
    if (!id || !*id || !pkg || !ver || rank < 0)
        return wh_error_set(WH_EINVALID,
                            "vulnerability %zu of the report lacks id, package, version or a "
                            "known severity",
                            i);
    static const char *const keys[] = {"id", "package", "version"};
    for (size_t k = 0; k < 3; k++)
        if (json_string_length(json_object_get(v, keys[k])) > WH_ADAPTER_ITEM_STR_MAX)
            return too_big(i, keys[k], WH_ADAPTER_ITEM_STR_MAX, false);
    /* fix_version first as "" (a report without one is fixable in no version), so that
     * the fields come in one order whatever the adapter's was */
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", id, "package", pkg, "version", ver,
                          "fix_version", "", "severity", wh_severity_name((enum wh_severity)rank));
    for (size_t f = 0; f < sizeof(item_fields) / sizeof(item_fields[0]); f++) {
        json_t *x = json_object_get(v, item_fields[f].key);
        if (!x || json_typeof(x) != item_fields[f].type)
            continue;
        if (json_is_string(x) && json_string_length(x) > WH_ADAPTER_ITEM_STR_MAX) {
            error = too_big(i, item_fields[f].key, WH_ADAPTER_ITEM_STR_MAX, false);
            goto out;
        }
        json_object_set(o, item_fields[f].key, x);
    }
    const json_t *title = json_object_get(v, "title"), *desc = json_object_get(v, "description");
    if (json_is_string(title))
        json_object_set_new(o, "title", cut(title, WH_ADAPTER_TITLE_MAX));
    if (json_is_string(desc))
        json_object_set_new(o, "description", cut(desc, WH_ADAPTER_DESC_MAX));
    if ((error = copy_list(o, v, "links", i)) < 0 || (error = copy_list(o, v, "cwe_ids", i)) < 0 ||
        (error = copy_cvss(o, v, i)) < 0)
        goto out;
    json_object_set_new(o, "artifact_digests", json_pack("[s]", digest));
    *rank_out = rank;
    *out = o;
    o = NULL;
out:
    json_decref(o);
    return error;
}

int wh_adapter_report_import(const json_t *rep, const char *digest, char **report_out,
                             char **summary_out, char *severity, size_t sevcap)
{
    json_t *items = json_object_get(rep, "vulnerabilities");
    size_t counts[WH_SEV_CRITICAL + 1] = {0}, fixable = 0;
    int top = WH_SEV_UNKNOWN;
    if (!json_is_object(rep))
        return wh_error_set(WH_EINVALID, "the report is not a JSON object");
    if (!json_is_array(items) && !json_is_null(items) && items)
        return wh_error_set(WH_EINVALID, "the report's vulnerabilities are not a list");
    if (json_array_size(items) > WH_ADAPTER_REPORT_ITEMS_MAX)
        return wh_error_set(WH_ETOOBIG, "the report lists more than %u vulnerabilities",
                            WH_ADAPTER_REPORT_ITEMS_MAX);
    json_t *vulns = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(items, i, v) {
        json_t *o = NULL;
        int rank = 0;
        int error = import_item(&o, v, i, digest, &rank);
        if (error < 0) {
            json_decref(vulns);
            return error;
        }
        const char *fix = json_string_value(json_object_get(o, "fix_version"));
        fixable += fix && *fix;
        counts[rank]++;
        if (rank > top)
            top = rank;
        json_array_append_new(vulns, o);
    }
    /* as the built-in report: Unknown findings only make the overall "None" */
    const char *overall = top == WH_SEV_UNKNOWN ? "None" : wh_severity_name((enum wh_severity)top);
    json_t *out = json_pack("{s:s, s:o}", "severity", overall, "vulnerabilities", vulns);
    const char *gen = json_string_value(json_object_get(rep, "generated_at"));
    if (gen && strlen(gen) < 64)
        json_object_set_new(out, "generated_at", json_string(gen));
    else {
        char now[32];
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
        json_object_set_new(out, "generated_at", json_string(now));
    }
    const json_t *sc = json_object_get(rep, "scanner");
    if (nonempty(sc, "name"))
        json_object_set_new(out, "scanner",
                            json_pack("{s:s, s:s, s:s}", "name",
                                      json_string_value(json_object_get(sc, "name")), "vendor",
                                      nonempty(sc, "vendor")
                                          ? json_string_value(json_object_get(sc, "vendor"))
                                          : "",
                                      "version",
                                      nonempty(sc, "version")
                                          ? json_string_value(json_object_get(sc, "version"))
                                          : ""));
    json_t *sum = json_object();
    for (int s = WH_SEV_CRITICAL; s >= WH_SEV_UNKNOWN; s--)
        if (counts[s])
            json_object_set_new(sum, wh_severity_name((enum wh_severity)s),
                                json_integer((json_int_t)counts[s]));
    json_t *summary = json_pack("{s:I, s:I, s:o}", "total", (json_int_t)json_array_size(vulns),
                                "fixable", (json_int_t)fixable, "summary", sum);
    *report_out = json_dumps(out, JSON_COMPACT);
    *summary_out = json_dumps(summary, JSON_COMPACT);
    json_decref(out);
    json_decref(summary);
    snprintf(severity, sevcap, "%s", overall);
    if (!*report_out || !*summary_out || strlen(*summary_out) >= WH_SCAN_SUMMARY_MAX) {
        free(*report_out);
        free(*summary_out);
        *report_out = *summary_out = NULL;
        return wh_error_set(WH_ERROR, "json encoding failed");
    }
    return 0;
}

/* ---- talking to an adapter ---- */

/* The header that authenticates wharf to the adapter (malloc), or NULL for none. */
static char *adapter_auth(const struct wh_scanner_reg *r)
{
    const char *cred = r->access_credential;
    if (strcasecmp(r->auth, "Basic") == 0) {
        size_t n = strlen(cred);
        char *b64 = wh_malloc(4 * ((n + 2) / 3) + 1);
        EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)cred, (int)n);
        char *h = wh_sprintf("Authorization: Basic %s", b64);
        free(b64);
        return h;
    }
    if (strcasecmp(r->auth, "Bearer") == 0)
        return wh_sprintf("Authorization: Bearer %s", cred);
    if (strcasecmp(r->auth, "X-ScannerAdapter-API-Key") == 0)
        return wh_sprintf("X-ScannerAdapter-API-Key: %s", cred);
    return NULL;
}

static void wipe_free(char *s)
{
    if (s)
        memset(s, 0, strlen(s));
    free(s);
}

/* What an adapter said besides the status: its {"error":{"message"}} when it sent one. */
static const char *said(const struct wh_fetch_resp *resp, char *buf, size_t cap)
{
    json_t *doc = resp->body ? json_loadb(resp->body, resp->len, 0, NULL) : NULL;
    const char *m = json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
    snprintf(buf, cap, "%s%.300s", m ? ": " : "", m ? m : "");
    json_decref(doc);
    return buf;
}

/* What a failed wh_fetch means for the job: no answer may pass (WH_EBUSY), too big an
 * answer will not (WH_EINVALID). */
static int passing(int fetch_error)
{
    return fetch_error == WH_ETOOBIG ? WH_EINVALID : WH_EBUSY;
}

/*
 * An answer other than `want`: WH_EBUSY when the adapter may answer later
 * (5xx: it is failing or overloaded, 429: too many requests; the scan queue
 * tries the job again), else WH_EINVALID.
 */
static int unexpected(const struct wh_fetch_resp *resp, const char *what, long want)
{
    char buf[400];
    bool later = resp->status >= 500 || resp->status == 429;
    return wh_error_set(later ? WH_EBUSY : WH_EINVALID,
                        "%s: unexpected status code: %ld, expected: %ld%s", what, resp->status,
                        want, said(resp, buf, sizeof(buf)));
}

static char *api_url(const struct wh_scanner_reg *r, const char *path)
{
    size_t n = strlen(r->url);
    while (n > 0 && r->url[n - 1] == '/')
        n--;
    return wh_sprintf("%.*s/api/v1%s", (int)n, r->url, path);
}

int wh_adapter_fetch_metadata(json_t **out, const struct wh_scanner_reg *reg, unsigned timeout_s)
{
    struct wh_fetch_resp resp;
    char *url = api_url(reg, "/metadata");
    char *auth = adapter_auth(reg);
    json_t *meta = NULL;
    struct wh_fetch_req req = {.url = url,
                               .timeout_s = timeout_s ? timeout_s : CALL_TIMEOUT_S,
                               .connect_timeout_s = 5,
                               .max_body = WH_ADAPTER_META_MAX,
                               .fd = -1,
                               .insecure = reg->skip_cert_verify};
    req.headers[0] = "Accept: " WH_ADAPTER_MIME_META;
    req.headers[1] = auth;
    *out = NULL;
    int error = wh_fetch(&resp, &req);
    if (error < 0) {
        /* no answer (refused, unreachable, timed out): it may answer later */
        error = wh_error_set(passing(error), "%s", wh_error_msg());
        goto out;
    }
    if (resp.status != 200) {
        error = unexpected(&resp, "get metadata", 200);
        goto out;
    }
    json_error_t jerr;
    meta = json_loadb(resp.body, resp.len, 0, &jerr);
    if (!meta) {
        error = wh_error_set(WH_EINVALID, "get metadata: the answer is not JSON: %s", jerr.text);
        goto out;
    }
    if ((error = wh_adapter_metadata_check(meta)) < 0)
        goto out;
    *out = meta;
    meta = NULL;
out:
    json_decref(meta);
    wh_fetch_resp_dispose(&resp);
    wipe_free(auth);
    free(url);
    return error;
}

struct ext_job {
    struct wh_adapter_client *cl;
    const struct wh_scan_job *job;
    struct wh_scan_target *t;
    int64_t deadline_ms;
    char *auth;       /* header authenticating wharf to the adapter (malloc) or NULL */
    char *token;      /* the registry token handed over (malloc) */
    char jti[40];
    int64_t token_exp;
    char scan_id[WH_ADAPTER_ID_MAX * 4];
};

static bool stopping(const struct ext_job *x)
{
    return __atomic_load_n(&x->cl->stop, __ATOMIC_RELAXED) != 0;
}

static unsigned left_s(const struct ext_job *x, unsigned cap)
{
    int64_t left = (x->deadline_ms - wh_now_ms()) / 1000;
    if (left < 1)
        left = 1;
    return left < cap ? (unsigned)left : cap;
}

/* Signs the registry token: pull and scanner-pull on the artifact's repository only. */
static int mint(struct ext_job *x)
{
    struct wh_token_claims *c = wh_malloc(sizeof(*c));
    int64_t now_s = wh_now_ms() / 1000;
    char sub[96];
    snprintf(sub, sizeof(sub), WH_ACL_SCANNER_SUBJECT "%s", x->job->report_id);
    int error = wh_auth_claims_init(c, sub, now_s, (int64_t)x->cl->timeout_s + 60);
    if (error == 0) {
        snprintf(c->access[0].type, sizeof(c->access[0].type), "repository");
        snprintf(c->access[0].name, sizeof(c->access[0].name), "%s", x->t->repo_name);
        c->access[0].actions = WH_ACT_PULL | WH_ACT_SCANNER_PULL;
        c->naccess = 1;
        snprintf(x->jti, sizeof(x->jti), "%s", c->jti);
        x->token_exp = c->exp;
        error = wh_auth_token_sign(&x->token, wh_acl_keys(x->cl->acl), c);
    }
    free(c);
    return error;
}

static int post_scan(struct ext_job *x)
{
    struct wh_fetch_resp resp;
    char *url = api_url(&x->t->reg, "/scan");
    char *authz = wh_sprintf("Bearer %s", x->token);
    json_t *body = json_pack(
        "{s:{s:s, s:s, s:b}, s:{s:I, s:s, s:s, s:s, s:I}}", "registry", "url",
        x->cl->registry_url, "authorization", authz, "insecure", 0, "artifact", "namespace_id",
        (json_int_t)x->t->project_id, "repository", x->t->repo_name, "digest", x->job->digest,
        "mime_type", x->t->media_type, "size", (json_int_t)x->t->size);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    wipe_free(authz);
    struct wh_fetch_req req = {.method = "POST",
                               .url = url,
                               .body = text,
                               .body_len = text ? strlen(text) : 0,
                               .timeout_s = left_s(x, CALL_TIMEOUT_S),
                               .connect_timeout_s = 5,
                               .max_body = WH_ADAPTER_META_MAX,
                               .fd = -1,
                               .insecure = x->t->reg.skip_cert_verify,
                               .cancel = &x->cl->stop};
    req.headers[0] = "Content-Type: " WH_ADAPTER_MIME_SCAN_REQ;
    req.headers[1] = "Accept: " WH_ADAPTER_MIME_SCAN_RESP;
    req.headers[2] = x->auth;
    int error = wh_fetch(&resp, &req);
    wipe_free(text);
    free(url);
    if (error < 0) {
        error = wh_error_set(passing(error), "submit scan: %s", wh_error_msg());
        goto out;
    }
    if (resp.status != 202) {
        error = unexpected(&resp, "submit scan", 202);
        goto out;
    }
    json_t *doc = json_loadb(resp.body, resp.len, 0, NULL);
    const char *id = json_string_value(json_object_get(doc, "id"));
    size_t n = id ? strlen(id) : 0;
    bool ok = n > 0 && n < 128 && strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                              "0123456789-_.") == n;
    if (ok)
        snprintf(x->scan_id, sizeof(x->scan_id), "%s", id);
    json_decref(doc);
    if (!ok)
        error = wh_error_set(WH_EINVALID, "submit scan: the adapter answered no usable scan id");
out:
    wh_fetch_resp_dispose(&resp);
    return error;
}

/* Sleeps `s` seconds in short steps; false when the server stops meanwhile. */
static bool nap(const struct ext_job *x, unsigned s)
{
    int64_t until = wh_now_ms() + (int64_t)s * 1000;
    while (wh_now_ms() < until) {
        if (stopping(x))
            return false;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return !stopping(x);
}

/* Polls the report until it comes, the deadline passes or the server stops. */
static int poll_report(struct ext_job *x, json_t **out)
{
    char *url = wh_sprintf("/scan/%s/report", x->scan_id);
    char *full = api_url(&x->t->reg, url);
    free(url);
    int error;
    for (;;) {
        struct wh_fetch_resp resp;
        struct wh_fetch_req req = {.url = full,
                                   .timeout_s = left_s(x, 300),
                                   .connect_timeout_s = 5,
                                   .max_body = WH_ADAPTER_REPORT_MAX,
                                   .fd = -1,
                                   .insecure = x->t->reg.skip_cert_verify,
                                   .cancel = &x->cl->stop};
        req.headers[0] = "Accept: " WH_REPORT_MIME;
        req.headers[1] = x->auth;
        error = wh_fetch(&resp, &req);
        if (error < 0 && stopping(x)) {
            error = WH_EDEFERRED;
            break;
        }
        if (error < 0) {
            error = wh_error_set(passing(error), "get report: %s", wh_error_msg());
            break;
        }
        if (resp.status == 200) {
            json_error_t jerr;
            /* weighed first: the parse of a report costs many times its bytes */
            if ((error = wh_adapter_report_weigh(resp.body, resp.len)) < 0) {
                error = wh_error_set(error, "get report: %s", wh_error_msg());
                wh_fetch_resp_dispose(&resp);
                break;
            }
            *out = json_loadb(resp.body, resp.len, 0, &jerr);
            if (!*out)
                error = wh_error_set(WH_EINVALID, "get report: the answer is not JSON: %s",
                                     jerr.text);
            wh_fetch_resp_dispose(&resp);
            break;
        }
        if (resp.status != 302) {
            error = unexpected(&resp, "get report", 200);
            wh_fetch_resp_dispose(&resp);
            break;
        }
        unsigned wait = REFRESH_DEFAULT_S;
        uint64_t v;
        if (resp.refresh_after[0] &&
            wh_parse_u64(&v, resp.refresh_after, strlen(resp.refresh_after)) == 0)
            wait = v < 1 ? 1 : v > REFRESH_MAX_S ? REFRESH_MAX_S : (unsigned)v;
        wh_fetch_resp_dispose(&resp);
        if (wh_now_ms() + (int64_t)wait * 1000 > x->deadline_ms) {
            error = wh_error_set(WH_EINVALID,
                                 "get report: not ready within %u s (scan.external_timeout)",
                                 x->cl->timeout_s);
            break;
        }
        if (!nap(x, wait)) {
            error = WH_EDEFERRED;
            break;
        }
    }
    free(full);
    return error;
}

int wh_adapter_delegate(void *payload, const struct wh_scan_job *job, char **report,
                        char **summary, char *severity, size_t sevcap)
{
    struct wh_adapter_client *cl = payload;
    struct ext_job x = {.cl = cl, .job = job};
    json_t *meta = NULL, *rep = NULL;
    char *scanner = NULL;
    int error;

    if (!cl)
        return 0;
    x.t = wh_malloc(sizeof(*x.t));
    int terr = wh_db_scan_target(cl->db, job->artifact_id, x.t);
    if (terr < 0 && terr != WH_ENOTFOUND) {
        /* which scanner is in charge is unknown: not the built-in one by default */
        wh_log_error("scan %s: %s", job->report_id, wh_error_msg());
        free(x.t);
        return wh_error_set(WH_EBUSY, "the scanner in charge could not be read from the "
                                      "database (the server log has the details)");
    }
    if (terr < 0 || !x.t->external) {
        free(x.t);
        return 0; /* the built-in scanner's job (or gone: it reports that) */
    }
    const struct wh_scanner_reg *reg = &x.t->reg;
    x.deadline_ms = wh_now_ms() + (int64_t)cl->timeout_s * 1000;
    x.auth = adapter_auth(reg);
    if (reg->disabled) {
        error = wh_error_set(WH_EINVALID, "the scanner %s is disabled", reg->name);
        goto out;
    }
    if ((error = wh_adapter_fetch_metadata(&meta, reg, left_s(&x, CALL_TIMEOUT_S))) < 0)
        goto fail;
    json_t *sc = json_object_get(meta, "scanner");
    json_t *who = json_pack("{s:O, s:O, s:O}", "name", json_object_get(sc, "name"), "vendor",
                            json_object_get(sc, "vendor"), "version",
                            json_object_get(sc, "version"));
    scanner = who ? json_dumps(who, JSON_COMPACT) : NULL;
    json_decref(who);
    if (scanner && strlen(scanner) >= WH_SCANNER_VIEW_MAX) {
        error = wh_error_set(WH_EINVALID, "the scanner's name, vendor and version are too long");
        goto fail;
    }
    if ((error = mint(&x)) < 0) {
        wh_log_error("scan %s: cannot sign the scanner's token: %s", job->report_id,
                     wh_error_msg());
        error = wh_error_set(WH_EINVALID, "the registry could not sign a token for the scanner");
        goto out;
    }
    if ((error = post_scan(&x)) < 0)
        goto fail;
    wh_log_info("scan %s of %s: submitted to scanner %s as %s", job->report_id, job->digest,
                reg->name, x.scan_id);
    if ((error = poll_report(&x, &rep)) < 0)
        goto fail;
    if ((error = wh_adapter_report_import(rep, job->digest, report, summary, severity, sevcap)) <
        0)
        goto fail;
    /* the report's scanner, when it names one, else the metadata's */
    json_t *parsed = json_loads(*report, 0, NULL);
    json_t *rs = json_object_get(parsed, "scanner");
    if (rs) {
        char *t = json_dumps(rs, JSON_COMPACT);
        if (t && strlen(t) < WH_SCANNER_VIEW_MAX) {
            free(scanner);
            scanner = t;
        } else {
            free(t);
        }
    } else if (scanner) {
        json_object_set_new(parsed, "scanner", json_loads(scanner, 0, NULL));
        char *t = json_dumps(parsed, JSON_COMPACT);
        if (t) {
            free(*report);
            *report = t;
        }
    }
    json_decref(parsed);
    wh_db_scan_set_scanner(cl->db, job->artifact_id, job->report_id, scanner ? scanner : "");
    wh_log_info("scan %s of %s: report from scanner %s (%s)", job->report_id, job->digest,
                reg->name, severity);
    error = 1;
    goto out;
fail:
    if (error != WH_EDEFERRED)
        error = wh_error_set(error == WH_EBUSY ? WH_EBUSY : WH_EINVALID, "scanner %s: %s",
                             reg->name, wh_error_msg());
out:
    if (x.jti[0] && wh_acl_token_revoke(cl->acl, x.jti, x.token_exp) < 0)
        wh_log_warn("scan %s: the scanner's token could not be revoked: it expires on its own",
                    job->report_id);
    if (error < 0 && *report) {
        free(*report);
        free(*summary);
        *report = *summary = NULL;
    }
    json_decref(meta);
    json_decref(rep);
    free(scanner);
    wipe_free(x.token);
    wipe_free(x.auth);
    free(x.t);
    return error;
}
