/*
 * s3.c: the S3 client (see s3.h). Requests go through libcurl, loaded with
 * dlopen on first use (fetch/curl_lib.h), and signed by its CURLOPT_AWS_SIGV4.
 * Debian's libcurl 7.88 signs the query string and the path as they are
 * sent and does not add x-amz-content-sha256, so this file sends both in
 * canonical form (SigV4: "Create a canonical request"; RFC 3986 section 2.3
 * for the unreserved characters) and sets the header itself: the body's
 * SHA-256 when it is in memory, UNSIGNED-PAYLOAD when it streams. One
 * request is signed here instead (wh_s3_sign_v4): UploadPartCopy, whose
 * headers curl 7.88 would sign in the wrong order. Answers are parsed with
 * expat (DOCTYPEs refused) from a capped buffer. Idle handles are kept per
 * client under a mutex, so connections are reused across requests and
 * threads. Not here: retries (the caller decides what is safe to repeat),
 * SigV4 chunked uploads, buckets, ACLs, versions.
 */
#include "storage/s3.h"

#include "fetch/curl_lib.h"

#include <ctype.h>
#include <curl/curl.h>
#include <expat.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define IDLE_MAX 8               /* idle libcurl handles kept per client */
#define ERROR_BODY_MAX 65536     /* bytes of an error answer kept (the rest is read, dropped) */
#define URL_MAX 8192
#define DOC_ITEMS_MAX 10000      /* items in one answer */
#define DOC_DEPTH_MAX 16
#define DOC_TEXT_MAX WH_S3_KEY_MAX

/* ---- libcurl, loaded on first use ---------------------------------------------------------- */

/* A copy of the loaded table (curl_lib.h), checked once for AWS SigV4. */
static struct wh_curl_lib lib;
static char lib_error[256]; /* why it is not usable */
static bool lib_ok;

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static void lib_load(void)
{
    const struct wh_curl_lib *t = wh_curl_lib();
    if (!t) {
        snprintf(lib_error, sizeof(lib_error), "%s", wh_error_msg());
        return;
    }
    const curl_version_info_data *v = t->version_info(CURLVERSION_NOW);
    if (!v || v->version_num < 0x074b00) { /* CURLOPT_AWS_SIGV4 came in 7.75.0 */
        snprintf(lib_error, sizeof(lib_error),
                 "libcurl %s cannot sign S3 requests (7.75 or later needed)",
                 v && v->version ? v->version : "?");
        return;
    }
    lib = *t;
    lib_ok = true;
}

/* ---- the client ----------------------------------------------------------------------------- */

struct wh_s3 {
    char *base;        /* URL up to the bucket: "http://h:p/bucket" or "http://bucket.h:p" */
    char *authority;   /* the Host header: "h:p" or "bucket.h:p" */
    char *path_base;   /* the path before a key: "/bucket" (path style) or "" */
    char *region;
    char *bucket;
    char *prefix;      /* "" when none */
    char *sigv4;       /* "aws:amz:REGION:s3" */
    char *access_key;
    char *secret_key;
    char *ca_file;     /* NULL: the system's */
    unsigned connect_timeout_s, timeout_s, stall_s;
    size_t max_response;
    pthread_mutex_t lock; /* guards idle[] */
    CURL *idle[IDLE_MAX];
    size_t n_idle;
};

static bool printable(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] <= 0x20 || s[n] == 0x7f || n >= max)
            return false;
    return n > 0;
}

static bool bucket_ok(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63 || b[0] == '.' || b[0] == '-' || b[n - 1] == '.' || b[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)b[i]) || isdigit((unsigned char)b[i]) || b[i] == '.' ||
              b[i] == '-'))
            return false;
    return true;
}

int wh_s3_new(wh_s3 **out, const struct wh_s3_config *cfg)
{
    const char *ep = cfg->endpoint, *host;
    const char *region = cfg->region && *cfg->region ? cfg->region : "us-east-1";
    const char *prefix = cfg->prefix ? cfg->prefix : "";

    *out = NULL;
    if (!ep || strncasecmp(ep, "http://", 7) == 0)
        host = ep ? ep + 7 : NULL;
    else if (strncasecmp(ep, "https://", 8) == 0)
        host = ep + 8;
    else
        host = NULL;
    size_t hostlen = host ? strlen(host) : 0;
    if (hostlen && host[hostlen - 1] == '/')
        hostlen--;
    if (!host || !hostlen || !printable(ep, 512) || memchr(host, '/', hostlen) ||
        memchr(host, '?', hostlen) || memchr(host, '#', hostlen) || memchr(host, '@', hostlen))
        return wh_error_set(WH_EINVALID, "s3 endpoint: not an http(s)://host[:port] URL");
    if (!cfg->bucket || !bucket_ok(cfg->bucket))
        return wh_error_set(WH_EINVALID,
                            "s3 bucket: 3 to 63 characters of a-z, 0-9, '.' and '-' needed");
    for (const char *p = region; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-') ||
            p - region >= 32)
            return wh_error_set(WH_EINVALID, "s3 region: a-z, 0-9 and '-' only (e.g. us-east-1)");
    if (!cfg->access_key || !printable(cfg->access_key, 256) || strchr(cfg->access_key, ':'))
        return wh_error_set(WH_EINVALID, "s3 access key: missing or not printable");
    if (!cfg->secret_key || !printable(cfg->secret_key, 256))
        return wh_error_set(WH_EINVALID, "s3 secret key: missing or not printable");
    if (strlen(prefix) > 512 || prefix[0] == '/' || (*prefix && !printable(prefix, 513)))
        return wh_error_set(WH_EINVALID,
                            "s3 prefix: at most 512 printable characters, not starting with '/'");
    if (cfg->ca_file && !*cfg->ca_file)
        return wh_error_set(WH_EINVALID, "s3 CA file: empty path");

    wh_s3 *s = wh_calloc(1, sizeof(*s));
    size_t schemelen = (size_t)(host - ep);
    if (cfg->path_style) {
        s->authority = wh_strndup(host, hostlen);
        s->path_base = wh_sprintf("/%s", cfg->bucket);
    } else {
        s->authority = wh_sprintf("%s.%.*s", cfg->bucket, (int)hostlen, host);
        s->path_base = wh_strdup("");
    }
    s->base = wh_sprintf("%.*s%s%s", (int)schemelen, ep, s->authority, s->path_base);
    s->region = wh_strdup(region);
    s->bucket = wh_strdup(cfg->bucket);
    s->prefix = wh_strdup(prefix);
    s->sigv4 = wh_sprintf("aws:amz:%s:s3", region);
    s->access_key = wh_strdup(cfg->access_key);
    s->secret_key = wh_strdup(cfg->secret_key);
    s->ca_file = cfg->ca_file ? wh_strdup(cfg->ca_file) : NULL;
    s->connect_timeout_s = cfg->connect_timeout_s ? cfg->connect_timeout_s : 10;
    s->timeout_s = cfg->timeout_s ? cfg->timeout_s : 60;
    s->stall_s = cfg->stall_s ? cfg->stall_s : 60;
    s->max_response = cfg->max_response ? cfg->max_response : 4u << 20;
    pthread_mutex_init(&s->lock, NULL);
    *out = s;
    return 0;
}

void wh_s3_free(wh_s3 *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_idle; i++)
        lib.easy_cleanup(s->idle[i]);
    pthread_mutex_destroy(&s->lock);
    if (s->secret_key)
        explicit_bzero(s->secret_key, strlen(s->secret_key));
    free(s->base);
    free(s->authority);
    free(s->path_base);
    free(s->region);
    free(s->bucket);
    free(s->prefix);
    free(s->sigv4);
    free(s->access_key);
    free(s->secret_key);
    free(s->ca_file);
    free(s);
}

static CURL *handle_take(wh_s3 *s)
{
    CURL *c = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->n_idle)
        c = s->idle[--s->n_idle];
    pthread_mutex_unlock(&s->lock);
    if (c) {
        lib.easy_reset(c); /* options go, live connections and caches stay */
        return c;
    }
    return lib.easy_init();
}

static void handle_give(wh_s3 *s, CURL *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&s->lock);
    if (s->n_idle < IDLE_MAX) {
        s->idle[s->n_idle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    if (c)
        lib.easy_cleanup(c);
}

/* ---- canonical encoding --------------------------------------------------------------------- */

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '~';
}

int wh_s3_encode(struct wh_buf *out, const char *s, size_t len, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int error;
        if (unreserved(c) || (keep_slash && c == '/'))
            error = wh_buf_put(out, &s[i], 1);
        else
            error = wh_buf_put(out, (char[]){'%', hex[c >> 4], hex[c & 15]}, 3);
        if (error < 0)
            return error;
    }
    return 0;
}

static int kv_cmp(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    int c = strcmp(x[0], y[0]);
    if (c)
        return c;
    return strcmp(x[1] ? x[1] : "", y[1] ? y[1] : "");
}

int wh_s3_query(struct wh_buf *out, const char *const *kv, size_t n)
{
    /* sort a copy of the pairs; SigV4 sorts by the encoded name, which orders
       like the raw name for the names used here (all unreserved) */
    const char **sorted = wh_malloc((n ? n : 1) * 2 * sizeof(*sorted));
    int error = 0;
    memcpy(sorted, kv, n * 2 * sizeof(*sorted));
    qsort(sorted, n, 2 * sizeof(*sorted), kv_cmp);
    for (size_t i = 0; i < n && error == 0; i++) {
        const char *k = sorted[2 * i], *v = sorted[2 * i + 1] ? sorted[2 * i + 1] : "";
        if ((i && (error = wh_buf_put(out, "&", 1)) < 0) ||
            (error = wh_s3_encode(out, k, strlen(k), false)) < 0 ||
            (error = wh_buf_put(out, "=", 1)) < 0)
            break;
        error = wh_s3_encode(out, v, strlen(v), false);
    }
    free(sorted);
    return error;
}

/* ---- SigV4 by hand ------------------------------------------------------------------------ */

static void hmac256(unsigned char out[32], const void *key, size_t keylen, const char *msg)
{
    unsigned int n = 32;
    if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, strlen(msg), out, &n))
        abort(); /* only out of memory */
}

static void hex32(char out[65], const unsigned char in[32])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", in[i]);
}

struct sig_header {
    char name[64]; /* lower case */
    const char *value, *end;
};

static int sig_header_cmp(const void *a, const void *b)
{
    return strcmp(((const struct sig_header *)a)->name, ((const struct sig_header *)b)->name);
}

int wh_s3_sign_v4(struct wh_buf *out, const char *access_key, const char *secret_key,
                  const char *region, const char *method, const char *path, const char *query,
                  const char *const *headers, const char *payload_hash, const char *amz_date)
{
    struct sig_header h[16];
    struct wh_buf creq, sts, signed_names;
    size_t n = 0;
    int error = 0;

    for (; headers[n]; n++) {
        const char *colon = strchr(headers[n], ':');
        size_t nl = colon ? (size_t)(colon - headers[n]) : 0;
        if (n >= sizeof(h) / sizeof(h[0]) || !nl || nl >= sizeof(h[0].name))
            return wh_error_set(WH_EINVALID, "s3: a header to sign is malformed or one too many");
        for (size_t i = 0; i < nl; i++)
            h[n].name[i] = (char)tolower((unsigned char)headers[n][i]);
        h[n].name[nl] = '\0';
        h[n].value = colon + 1;
        while (*h[n].value == ' ' || *h[n].value == '\t')
            h[n].value++;
        h[n].end = h[n].value + strlen(h[n].value);
        while (h[n].end > h[n].value && (h[n].end[-1] == ' ' || h[n].end[-1] == '\t'))
            h[n].end--;
    }
    /* sorted by name alone: curl 7.88 sorts "name:value" lines, which puts
       x-amz-copy-source-range before x-amz-copy-source, and S3 disagrees */
    qsort(h, n, sizeof(h[0]), sig_header_cmp);
    wh_buf_init(&creq, 16384);
    wh_buf_init(&sts, 1024);
    wh_buf_init(&signed_names, 1024);
    wh_buf_printf(&creq, "%s\n%s\n%s\n", method, path, query ? query : "");
    for (size_t i = 0; i < n; i++) {
        wh_buf_printf(&creq, "%s:%.*s\n", h[i].name, (int)(h[i].end - h[i].value), h[i].value);
        wh_buf_printf(&signed_names, "%s%s", i ? ";" : "", h[i].name);
    }
    if (wh_buf_printf(&creq, "\n%s\n%s", signed_names.data ? signed_names.data : "",
                      payload_hash) < 0 || strlen(amz_date) != 16) {
        error = wh_error_set(WH_EINVALID, "s3: a request too large to sign");
        goto out;
    }
    struct wh_digest d;
    wh_digest_of(&d, WH_DIGEST_SHA256, creq.data, creq.len);
    wh_buf_printf(&sts, "AWS4-HMAC-SHA256\n%s\n%.8s/%s/s3/aws4_request\n%s", amz_date, amz_date,
                  region, wh_digest_hex(&d));
    /* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), "s3"), "aws4_request") */
    unsigned char k[32], k2[32];
    char date[9], sig[65], *ksecret = wh_sprintf("AWS4%s", secret_key);
    snprintf(date, sizeof(date), "%.8s", amz_date);
    hmac256(k, ksecret, strlen(ksecret), date);
    explicit_bzero(ksecret, strlen(ksecret));
    free(ksecret);
    hmac256(k2, k, 32, region);
    hmac256(k, k2, 32, "s3");
    hmac256(k2, k, 32, "aws4_request");
    hmac256(k, k2, 32, sts.data);
    explicit_bzero(k2, sizeof(k2));
    hex32(sig, k);
    if (wh_buf_printf(out,
                      "AWS4-HMAC-SHA256 Credential=%s/%s/%s/s3/aws4_request, SignedHeaders=%s, "
                      "Signature=%s",
                      access_key, date, region, signed_names.data ? signed_names.data : "",
                      sig) < 0)
        error = wh_error_set(WH_ETOOBIG, "s3: the Authorization header is too long");
out:
    wh_buf_dispose(&creq);
    wh_buf_dispose(&sts);
    wh_buf_dispose(&signed_names);
    return error;
}

int wh_s3_presign_get(wh_s3 *s, const char *key, unsigned expires_s, int64_t now_s, char **out)
{
    struct wh_buf path, full_path, q, auth, url, cred;
    char date[32], exp[16], host[600];
    int error = 0;
    *out = NULL;
    if (!key || !*key || strlen(s->prefix) + strlen(key) > WH_S3_KEY_MAX || expires_s < 1 ||
        expires_s > 604800)
        return wh_error_set(WH_EINVALID, "s3: presign: a bad key or lifetime");
    wh_buf_init(&path, URL_MAX);
    wh_buf_init(&full_path, URL_MAX);
    wh_buf_init(&q, URL_MAX);
    wh_buf_init(&auth, 2048);
    wh_buf_init(&url, URL_MAX);
    wh_buf_init(&cred, 512);
    time_t t = (time_t)now_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof(date), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(exp, sizeof(exp), "%u", expires_s);
    snprintf(host, sizeof(host), "host: %s", s->authority);
    wh_buf_printf(&cred, "%s/%.8s/%s/s3/aws4_request", s->access_key, date, s->region);
    const char *kv[] = {"X-Amz-Algorithm", "AWS4-HMAC-SHA256", "X-Amz-Credential", cred.data,
                        "X-Amz-Date", date, "X-Amz-Expires", exp, "X-Amz-SignedHeaders", "host"};
    const char *sign[] = {host, NULL};
    if (wh_buf_put(&path, "/", 1) < 0 ||
        wh_s3_encode(&path, s->prefix, strlen(s->prefix), true) < 0 ||
        wh_s3_encode(&path, key, strlen(key), true) < 0 ||
        wh_buf_printf(&full_path, "%s%s", s->path_base, path.data) < 0 ||
        wh_s3_query(&q, kv, 5) < 0) {
        error = wh_error_set(WH_ETOOBIG, "s3: a URL longer than %d bytes", URL_MAX);
        goto out;
    }
    if ((error = wh_s3_sign_v4(&auth, s->access_key, s->secret_key, s->region, "GET",
                               full_path.data, q.data, sign, "UNSIGNED-PAYLOAD", date)) < 0)
        goto out;
    const char *sig = strstr(auth.data, "Signature=");
    if (!sig || wh_buf_printf(&url, "%s%s?%s&X-Amz-Signature=%s", s->base, path.data, q.data,
                              sig + 10) < 0) {
        error = wh_error_set(WH_ETOOBIG, "s3: a URL longer than %d bytes", URL_MAX);
        goto out;
    }
    *out = wh_buf_detach(&url, NULL);
out:
    if (auth.data)
        explicit_bzero(auth.data, auth.len);
    wh_buf_dispose(&path);
    wh_buf_dispose(&full_path);
    wh_buf_dispose(&q);
    wh_buf_dispose(&auth);
    wh_buf_dispose(&url);
    wh_buf_dispose(&cred);
    return error;
}

/* ---- XML answers ---------------------------------------------------------------------------- */

int wh_s3_time_parse(int64_t *out, const char *s)
{
    struct tm tm = {0};
    int ms = 0;
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end)
        return wh_error_set(WH_EINVALID, "s3: bad time \"%.40s\"", s);
    if (*end == '.') {
        int digits = 0;
        for (end++; isdigit((unsigned char)*end); end++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*end - '0');
        if (!digits)
            return wh_error_set(WH_EINVALID, "s3: bad time \"%.40s\"", s);
        for (; digits < 3; digits++)
            ms *= 10;
    }
    if (strcmp(end, "Z") != 0 && strcmp(end, "+00:00") != 0)
        return wh_error_set(WH_EINVALID, "s3: bad time \"%.40s\"", s);
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return wh_error_set(WH_EINVALID, "s3: bad time \"%.40s\"", s);
    *out = (int64_t)t * 1000 + ms;
    return 0;
}

static const char *const root_names[] = {
    [WH_S3_DOC_ERROR] = "Error",
    [WH_S3_DOC_LIST] = "ListBucketResult",
    [WH_S3_DOC_INITIATE] = "InitiateMultipartUploadResult",
    [WH_S3_DOC_PARTS] = "ListPartsResult",
    [WH_S3_DOC_UPLOADS] = "ListMultipartUploadsResult",
    [WH_S3_DOC_COMPLETE] = "CompleteMultipartUploadResult",
    [WH_S3_DOC_COPY] = "CopyObjectResult",
    [WH_S3_DOC_COPY_PART] = "CopyPartResult",
    [WH_S3_DOC_DELETE] = "DeleteResult",
};

/* The item element of each list kind (depth 1), NULL for the others. */
static const char *item_name(enum wh_s3_doc_kind k)
{
    switch (k) {
    case WH_S3_DOC_LIST:
        return "Contents";
    case WH_S3_DOC_PARTS:
        return "Part";
    case WH_S3_DOC_UPLOADS:
        return "Upload";
    case WH_S3_DOC_DELETE:
        return "Error"; /* a key not deleted (quiet mode lists only those) */
    default:
        return NULL;
    }
}

struct xp {
    XML_Parser p;
    struct wh_s3_doc *doc;
    enum wh_s3_doc_kind expect;
    const char *strip;
    size_t strip_len;
    int depth;
    char names[3][40];     /* element names at depths 0..2 ("" when longer) */
    struct wh_buf text;    /* text of the current element */
    char why[160];         /* the first failure ("" none) */
    size_t n_items, cap_items;
    struct wh_s3_entry entry; /* the item being read */
    struct wh_s3_part part;
    struct wh_s3_upload upload;
    char *del_key;         /* DELETE: the failed key being read */
    char del_code[64], del_message[256];
    bool have_key, have_number;
};

static void xp_fail(struct xp *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void xp_fail(struct xp *x, const char *fmt, ...)
{
    if (!x->why[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->why, sizeof(x->why), fmt, ap);
        va_end(ap);
    }
    XML_StopParser(x->p, XML_FALSE);
}

static void xp_doctype(void *ctx, const XML_Char *name, const XML_Char *sysid,
                       const XML_Char *pubid, int has_internal)
{
    (void)name, (void)sysid, (void)pubid, (void)has_internal;
    xp_fail(ctx, "a DOCTYPE is not accepted");
}

static void xp_start(void *ctx, const XML_Char *name, const XML_Char **attrs)
{
    struct xp *x = ctx;
    (void)attrs;
    if (x->why[0])
        return;
    if (x->depth >= DOC_DEPTH_MAX) {
        xp_fail(x, "nested deeper than %d", DOC_DEPTH_MAX);
        return;
    }
    if (x->depth == 0) {
        if (strcmp(name, root_names[WH_S3_DOC_ERROR]) == 0)
            x->doc->kind = WH_S3_DOC_ERROR;
        else if (strcmp(name, root_names[x->expect]) == 0)
            x->doc->kind = x->expect;
        else {
            xp_fail(x, "<%.40s> where <%s> was expected", name, root_names[x->expect]);
            return;
        }
    }
    if (x->depth < 3)
        snprintf(x->names[x->depth], sizeof(x->names[0]), "%s",
                 strlen(name) < sizeof(x->names[0]) ? name : "");
    const char *item = item_name(x->doc->kind);
    if (x->depth == 1 && item && strcmp(name, item) == 0) {
        free(x->entry.key);
        free(x->upload.key);
        free(x->upload.upload_id);
        free(x->del_key);
        x->del_key = NULL;
        x->del_code[0] = x->del_message[0] = '\0';
        memset(&x->entry, 0, sizeof(x->entry));
        memset(&x->part, 0, sizeof(x->part));
        memset(&x->upload, 0, sizeof(x->upload));
        x->have_key = x->have_number = false;
    }
    x->depth++;
    x->text.len = 0;
    if (x->text.data)
        x->text.data[0] = '\0';
}

static void xp_text(void *ctx, const XML_Char *s, int len)
{
    struct xp *x = ctx;
    if (x->why[0] || x->depth == 0)
        return;
    if (wh_buf_put(&x->text, s, (size_t)len) < 0)
        xp_fail(x, "a text longer than %d bytes", DOC_TEXT_MAX);
}

/* An ETag may be empty (rgw 16 completes an upload with <ETag></ETag>); a part's may not. */
static void copy_etag(struct xp *x, char dst[WH_S3_ETAG_MAX], const char *v)
{
    if (strlen(v) >= WH_S3_ETAG_MAX)
        xp_fail(x, "an ETag of %zu bytes", strlen(v));
    else
        memcpy(dst, v, strlen(v) + 1);
}

static void parse_num(struct xp *x, uint64_t *out, const char *v, const char *what)
{
    if (wh_parse_u64(out, v, strlen(v)) < 0)
        xp_fail(x, "%s is not a number", what);
}

static void parse_time(struct xp *x, int64_t *out, const char *v, const char *what)
{
    if (wh_s3_time_parse(out, v) < 0)
        xp_fail(x, "%s is not a time", what);
}

static void parse_bool(struct xp *x, bool *out, const char *v)
{
    if (strcmp(v, "true") == 0)
        *out = true;
    else if (strcmp(v, "false") == 0)
        *out = false;
    else
        xp_fail(x, "IsTruncated is neither true nor false");
}

/* A key without the configured prefix (NULL after a failure). */
static char *take_key(struct xp *x, const char *v)
{
    if (strncmp(v, x->strip, x->strip_len) != 0) {
        xp_fail(x, "a key outside the prefix");
        return NULL;
    }
    return wh_strdup(v + x->strip_len);
}

/* Makes room for one more item of `size` bytes in `*items`. */
static bool grow(struct xp *x, void **items, size_t size)
{
    if (x->n_items >= DOC_ITEMS_MAX) {
        xp_fail(x, "more than %d items", DOC_ITEMS_MAX);
        return false;
    }
    if (x->n_items == x->cap_items) {
        x->cap_items = x->cap_items ? x->cap_items * 2 : 16;
        *items = wh_realloc(*items, x->cap_items * size);
    }
    return true;
}

static void end_item(struct xp *x)
{
    struct wh_s3_doc *d = x->doc;
    switch (d->kind) {
    case WH_S3_DOC_LIST:
        if (!x->have_key) {
            xp_fail(x, "a <Contents> without <Key>");
            return;
        }
        if (!grow(x, (void **)&d->list.items, sizeof(*d->list.items)))
            return;
        d->list.items[d->list.n++] = x->entry;
        memset(&x->entry, 0, sizeof(x->entry));
        break;
    case WH_S3_DOC_PARTS:
        if (!x->have_number || !x->part.etag[0]) {
            xp_fail(x, "a <Part> without <PartNumber> or <ETag>");
            return;
        }
        if (!grow(x, (void **)&d->parts, sizeof(*d->parts)))
            return;
        d->parts[d->n_parts++] = x->part;
        break;
    case WH_S3_DOC_UPLOADS:
        if (!x->upload.key || !x->upload.upload_id) {
            xp_fail(x, "an <Upload> without <Key> or <UploadId>");
            return;
        }
        if (!grow(x, (void **)&d->uploads.items, sizeof(*d->uploads.items)))
            return;
        d->uploads.items[d->uploads.n++] = x->upload;
        memset(&x->upload, 0, sizeof(x->upload));
        break;
    case WH_S3_DOC_DELETE:
        if (!x->del_key || !x->del_code[0]) {
            xp_fail(x, "an <Error> without <Key> or <Code>");
            return;
        }
        if (x->n_items >= DOC_ITEMS_MAX) {
            xp_fail(x, "more than %d items", DOC_ITEMS_MAX);
            return;
        }
        if (d->n_failed++ == 0) { /* the first one tells why */
            d->failed_key = x->del_key;
            x->del_key = NULL;
            memcpy(d->code, x->del_code, sizeof(d->code));
            memcpy(d->message, x->del_message, sizeof(d->message));
        }
        break;
    default:
        break;
    }
    x->n_items++;
}

/* A field of an item (depth 2). */
static void item_field(struct xp *x, const char *name, const char *v)
{
    switch (x->doc->kind) {
    case WH_S3_DOC_LIST:
        if (strcmp(name, "Key") == 0 && !x->have_key) {
            x->entry.key = take_key(x, v);
            x->have_key = x->entry.key != NULL;
        } else if (strcmp(name, "Size") == 0)
            parse_num(x, &x->entry.size, v, "Size");
        else if (strcmp(name, "ETag") == 0)
            copy_etag(x, x->entry.etag, v);
        else if (strcmp(name, "LastModified") == 0)
            parse_time(x, &x->entry.mtime_ms, v, "LastModified");
        break;
    case WH_S3_DOC_PARTS:
        if (strcmp(name, "PartNumber") == 0) {
            uint64_t n = 0;
            parse_num(x, &n, v, "PartNumber");
            if (!x->why[0] && (n < 1 || n > WH_S3_PARTS_MAX))
                xp_fail(x, "PartNumber %llu out of range", (unsigned long long)n);
            x->part.number = (unsigned)n;
            x->have_number = true;
        } else if (strcmp(name, "Size") == 0)
            parse_num(x, &x->part.size, v, "Size");
        else if (strcmp(name, "ETag") == 0)
            copy_etag(x, x->part.etag, v);
        break;
    case WH_S3_DOC_UPLOADS:
        if (strcmp(name, "Key") == 0 && !x->upload.key)
            x->upload.key = take_key(x, v);
        else if (strcmp(name, "UploadId") == 0 && !x->upload.upload_id)
            x->upload.upload_id = wh_strdup(v);
        else if (strcmp(name, "Initiated") == 0)
            parse_time(x, &x->upload.initiated_ms, v, "Initiated");
        break;
    case WH_S3_DOC_DELETE:
        if (strcmp(name, "Key") == 0 && !x->del_key)
            x->del_key = take_key(x, v);
        else if (strcmp(name, "Code") == 0)
            snprintf(x->del_code, sizeof(x->del_code), "%s", v);
        else if (strcmp(name, "Message") == 0)
            snprintf(x->del_message, sizeof(x->del_message), "%s", v);
        break;
    default:
        break;
    }
}

/* A field of the root (depth 1). */
static void root_field(struct xp *x, const char *name, const char *v)
{
    struct wh_s3_doc *d = x->doc;
    switch (d->kind) {
    case WH_S3_DOC_ERROR:
        if (strcmp(name, "Code") == 0)
            snprintf(d->code, sizeof(d->code), "%s", v);
        else if (strcmp(name, "Message") == 0)
            snprintf(d->message, sizeof(d->message), "%s", v);
        break;
    case WH_S3_DOC_LIST:
        if (strcmp(name, "IsTruncated") == 0)
            parse_bool(x, &d->list.truncated, v);
        else if (strcmp(name, "NextContinuationToken") == 0 && !d->list.next_token)
            d->list.next_token = wh_strdup(v);
        break;
    case WH_S3_DOC_INITIATE:
        if (strcmp(name, "UploadId") == 0 && !d->upload_id) {
            if (!*v || strlen(v) > WH_S3_UPLOAD_ID_MAX)
                xp_fail(x, "an UploadId of %zu bytes", strlen(v));
            else
                d->upload_id = wh_strdup(v);
        }
        break;
    case WH_S3_DOC_PARTS:
        if (strcmp(name, "IsTruncated") == 0)
            parse_bool(x, &d->parts_truncated, v);
        else if (strcmp(name, "NextPartNumberMarker") == 0) {
            uint64_t n = 0;
            parse_num(x, &n, v, "NextPartNumberMarker");
            if (!x->why[0] && n > WH_S3_PARTS_MAX)
                xp_fail(x, "NextPartNumberMarker %llu out of range", (unsigned long long)n);
            d->next_part_marker = (unsigned)n;
        }
        break;
    case WH_S3_DOC_UPLOADS:
        if (strcmp(name, "IsTruncated") == 0)
            parse_bool(x, &d->uploads.truncated, v);
        else if (strcmp(name, "NextKeyMarker") == 0 && !d->uploads.next_key_marker)
            d->uploads.next_key_marker = wh_strdup(v);
        else if (strcmp(name, "NextUploadIdMarker") == 0 && !d->uploads.next_upload_id_marker)
            d->uploads.next_upload_id_marker = wh_strdup(v);
        break;
    case WH_S3_DOC_COMPLETE:
    case WH_S3_DOC_COPY:
    case WH_S3_DOC_COPY_PART:
        if (strcmp(name, "ETag") == 0)
            copy_etag(x, d->etag, v);
        break;
    case WH_S3_DOC_DELETE: /* <Deleted> (not in quiet mode) and <Error> are items */
        break;
    }
}

static void xp_end(void *ctx, const XML_Char *name)
{
    struct xp *x = ctx;
    if (x->why[0])
        return;
    x->depth--;
    const char *v = x->text.data ? x->text.data : "";
    const char *item = item_name(x->doc->kind);
    if (x->depth == 1) {
        if (item && strcmp(name, item) == 0)
            end_item(x);
        else
            root_field(x, name, v);
    } else if (x->depth == 2 && item && strcmp(x->names[1], item) == 0)
        item_field(x, name, v);
    x->text.len = 0;
    if (x->text.data)
        x->text.data[0] = '\0';
}

int wh_s3_doc_parse(struct wh_s3_doc *doc, enum wh_s3_doc_kind expect, const char *xml,
                    size_t len, const char *strip)
{
    struct xp x = {.doc = doc, .expect = expect, .strip = strip ? strip : ""};
    int error = 0;

    memset(doc, 0, sizeof(*doc));
    doc->kind = expect;
    x.strip_len = strlen(x.strip);
    if (len > INT32_MAX)
        return wh_error_set(WH_EINVALID, "s3: an answer of %zu bytes", len);
    wh_buf_init(&x.text, DOC_TEXT_MAX);
    if (!(x.p = XML_ParserCreate("UTF-8")))
        abort(); /* out of memory, as wh_malloc */
    XML_SetUserData(x.p, &x);
    XML_SetElementHandler(x.p, xp_start, xp_end);
    XML_SetCharacterDataHandler(x.p, xp_text);
    XML_SetStartDoctypeDeclHandler(x.p, xp_doctype);
    if (XML_Parse(x.p, xml, (int)len, XML_TRUE) != XML_STATUS_OK && !x.why[0])
        snprintf(x.why, sizeof(x.why), "%s at line %lu",
                 XML_ErrorString(XML_GetErrorCode(x.p)),
                 (unsigned long)XML_GetCurrentLineNumber(x.p));
    if (!x.why[0] && doc->kind == WH_S3_DOC_INITIATE && !doc->upload_id)
        snprintf(x.why, sizeof(x.why), "no UploadId");
    if (!x.why[0] && doc->kind == WH_S3_DOC_ERROR && !doc->code[0])
        snprintf(x.why, sizeof(x.why), "an <Error> without <Code>");
    if (x.why[0])
        error = wh_error_set(WH_EINVALID, "s3: unreadable answer: %s", x.why);
    free(x.entry.key);
    free(x.upload.key);
    free(x.upload.upload_id);
    free(x.del_key);
    XML_ParserFree(x.p);
    wh_buf_dispose(&x.text);
    return error;
}

void wh_s3_list_dispose(struct wh_s3_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i].key);
    free(l->items);
    free(l->next_token);
    memset(l, 0, sizeof(*l));
}

void wh_s3_uploads_dispose(struct wh_s3_uploads *u)
{
    if (!u)
        return;
    for (size_t i = 0; i < u->n; i++) {
        free(u->items[i].key);
        free(u->items[i].upload_id);
    }
    free(u->items);
    free(u->next_key_marker);
    free(u->next_upload_id_marker);
    memset(u, 0, sizeof(*u));
}

void wh_s3_doc_dispose(struct wh_s3_doc *doc)
{
    if (!doc)
        return;
    free(doc->upload_id);
    free(doc->failed_key);
    wh_s3_list_dispose(&doc->list);
    free(doc->parts);
    wh_s3_uploads_dispose(&doc->uploads);
    memset(doc, 0, sizeof(*doc));
}

/* ---- requests ------------------------------------------------------------------------------- */

struct xfer {
    wh_s3 *s;
    const char *method;
    const char *key;         /* for messages (NULL: the bucket) */
    /* request body: in memory or from a source */
    const char *mem;
    size_t mem_len, mem_off;
    wh_s3_read_fn read;
    void *read_payload;
    uint64_t up_len, up_sent;
    int read_error;
    bool read_short;
    /* answer body: to a sink (2xx only) or into `body` */
    wh_s3_write_fn write;
    void *write_payload;
    int write_error;
    bool self_sign;          /* signed by wh_s3_sign_v4, not by curl */
    bool ranged;             /* a Range was asked for */
    uint64_t offset, want;   /* the range asked for (want: WH_S3_TO_END or bytes) */
    uint64_t skip;           /* bytes to drop (a 200 to a ranged request) */
    uint64_t delivered;
    bool sink_ready, got_enough, range_bad;
    long status;
    struct wh_buf body;
    bool toobig;
    char etag[WH_S3_ETAG_MAX];
    char content_range[128];
    char length[32];         /* Content-Length */
    char modified[64];       /* Last-Modified */
};

static void header_value(const char *line, size_t n, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return;
    const char *v = line + nl + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    if ((size_t)(end - v) >= cap)
        return; /* too long to be one we sent or expect: treated as absent */
    memcpy(out, v, (size_t)(end - v));
    out[end - v] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
    struct xfer *x = ctx;
    size_t len = size * n;
    /* a 100 Continue's headers come before the final answer's: start again at each status */
    if (len > 9 && strncmp(p, "HTTP/", 5) == 0) {
        const char *sp = memchr(p, ' ', len);
        x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        x->etag[0] = x->content_range[0] = x->length[0] = x->modified[0] = '\0';
        return len;
    }
    header_value(p, len, "ETag", x->etag, sizeof(x->etag));
    header_value(p, len, "Content-Length", x->length, sizeof(x->length));
    header_value(p, len, "Last-Modified", x->modified, sizeof(x->modified));
    header_value(p, len, "Content-Range", x->content_range, sizeof(x->content_range));
    return len;
}

/* The first byte of a 2xx body to a ranged GET: a 206 must start where asked. */
static bool sink_start(struct xfer *x)
{
    x->sink_ready = true;
    if (!x->ranged)
        return true;
    if (x->status == 200) { /* the server ignored the Range: skip to it ourselves */
        x->skip = x->offset;
        return true;
    }
    unsigned long long a = 0;
    if (x->status != 206 || sscanf(x->content_range, "bytes %llu-", &a) != 1 || a != x->offset) {
        x->range_bad = true;
        return false;
    }
    return true;
}

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    struct xfer *x = ctx;
    size_t len = size * n;
    if (x->status >= 200 && x->status < 300 && x->write) {
        if (!x->sink_ready && !sink_start(x))
            return 0;
        const char *q = p;
        size_t m = len;
        if (x->skip) {
            size_t k = x->skip < m ? (size_t)x->skip : m;
            q += k, m -= k, x->skip -= k;
        }
        if (x->want != WH_S3_TO_END && m > x->want - x->delivered) {
            m = (size_t)(x->want - x->delivered);
            x->got_enough = true; /* the rest is beyond the range (a 200): stop here */
        }
        if (m) {
            int error = x->write(q, m, x->write_payload);
            if (error < 0) {
                x->write_error = error;
                return 0;
            }
            x->delivered += m;
        }
        return x->got_enough ? 0 : len;
    }
    if (x->status < 200 || x->status >= 300) { /* an error's body: keep the start of it */
        size_t cap = x->body.cap < ERROR_BODY_MAX ? x->body.cap : ERROR_BODY_MAX;
        if (x->body.len < cap)
            wh_buf_put(&x->body, p, len < cap - x->body.len ? len : cap - x->body.len);
        return len;
    }
    if (wh_buf_put(&x->body, p, len) < 0) {
        x->toobig = true;
        return 0;
    }
    return len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *ctx)
{
    struct xfer *x = ctx;
    size_t cap = size * n;
    if (!x->read) {
        size_t m = x->mem_len - x->mem_off < cap ? x->mem_len - x->mem_off : cap;
        memcpy(buf, x->mem + x->mem_off, m);
        x->mem_off += m;
        return m;
    }
    uint64_t left = x->up_len - x->up_sent;
    if (left == 0)
        return 0;
    if (cap > left)
        cap = (size_t)left;
    size_t got = 0;
    int error = x->read(buf, cap, &got, x->read_payload);
    if (error < 0) {
        x->read_error = error;
        return CURL_READFUNC_ABORT;
    }
    if (got == 0 || got > cap) {
        x->read_short = true;
        return CURL_READFUNC_ABORT;
    }
    x->up_sent += got;
    return got;
}

/* "bucket/key" for messages, escaped for a log line. */
static void target(const struct xfer *x, char *out, size_t n)
{
    char k[300];
    wh_log_escape(k, sizeof(k), x->key ? x->key : "");
    snprintf(out, n, "%s/%s", x->s->bucket, k);
}

static int code_error(const char *code, long status)
{
    static const struct {
        const char *code;
        int error;
    } map[] = {
        {"NoSuchKey", WH_ENOTFOUND},
        {"NoSuchUpload", WH_ENOTFOUND},
        {"NotFound", WH_ENOTFOUND},
        {"NoSuchBucket", WH_ERROR}, /* the configuration is wrong, not the object missing */
        {"AccessDenied", WH_EDENIED},
        {"SignatureDoesNotMatch", WH_EDENIED},
        {"InvalidAccessKeyId", WH_EDENIED},
        {"AuthorizationHeaderMalformed", WH_EDENIED},
        {"RequestTimeTooSkewed", WH_EDENIED},
        {"InvalidRange", WH_ERANGE},
        {"EntityTooLarge", WH_ETOOBIG},
        {"QuotaExceeded", WH_ENOSPC},
        {"EntityTooSmall", WH_EINVALID},
        {"InvalidPart", WH_EINVALID},
        {"InvalidPartOrder", WH_EINVALID},
        {"PreconditionFailed", WH_ECONFLICT},
        {"OperationAborted", WH_ECONFLICT},
        {"SlowDown", WH_EBUSY},
        {"ServiceUnavailable", WH_EBUSY},
        {"InternalError", WH_ERROR},
    };
    for (size_t i = 0; code && i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(code, map[i].code) == 0)
            return map[i].error;
    switch (status) {
    case 400:
        return WH_EINVALID;
    case 401:
    case 403:
        return WH_EDENIED;
    case 404:
        return WH_ENOTFOUND;
    case 409:
    case 412:
        return WH_ECONFLICT;
    case 413:
        return WH_ETOOBIG;
    case 416:
        return WH_ERANGE;
    case 503:
        return WH_EBUSY;
    default:
        return WH_ERROR;
    }
}

/* Sets the message for an S3 error (`code` may be ""), returns its WH_E* code. */
static int s3_error(const struct xfer *x, long status, const char *code, const char *message)
{
    char t[400], m[300];
    target(x, t, sizeof(t));
    wh_log_escape(m, sizeof(m), message ? message : "");
    return wh_error_set(code_error(*code ? code : NULL, status), "s3 %s %s: %ld %s%s%s", x->method,
                        t, status, *code ? code : "(no S3 error code)", *m ? ": " : "", m);
}

/* Maps a non-2xx answer to an error, reading its <Error> body when there is one. */
static int status_error(const struct xfer *x)
{
    struct wh_s3_doc doc = {0};
    char code[64] = "", message[256] = "";
    if (x->body.len &&
        wh_s3_doc_parse(&doc, WH_S3_DOC_ERROR, x->body.data, x->body.len, NULL) == 0) {
        snprintf(code, sizeof(code), "%s", doc.code);
        snprintf(message, sizeof(message), "%s", doc.message);
    }
    wh_s3_doc_dispose(&doc);
    wh_error_clear();
    return s3_error(x, x->status, code, message);
}

/*
 * Sends one request: `method` on `key` (NULL: the bucket) with the canonical
 * query `query` (may be NULL) and extra headers (NULL-terminated, may be
 * NULL). The body and sink are set in `x` by the caller. Returns 0 for a 2xx
 * answer (its body in x->body unless it went to x->write), else an error.
 */
static int perform(struct xfer *x, const char *method, const char *key, const char *query,
                   const char *const *headers)
{
    wh_s3 *s = x->s;
    struct curl_slist *hdrs = NULL;
    struct wh_buf url, h, path, full_path, host, amzdate, auth;
    CURL *c = NULL;
    char errbuf[CURL_ERROR_SIZE] = "", t[400];
    int error = 0;

    x->method = method;
    x->key = key;
    wh_buf_init(&x->body, x->write ? ERROR_BODY_MAX : s->max_response);
    wh_buf_init(&url, URL_MAX);
    wh_buf_init(&h, 256);
    wh_buf_init(&path, URL_MAX);
    wh_buf_init(&full_path, URL_MAX);
    wh_buf_init(&host, 512);
    wh_buf_init(&amzdate, 64);
    wh_buf_init(&auth, 2048);
    pthread_once(&lib_once, lib_load);
    if (!lib_ok) {
        error = wh_error_set(WH_ERROR, "s3: %s", lib_error);
        goto out;
    }
    if (key && (!*key || strlen(s->prefix) + strlen(key) > WH_S3_KEY_MAX)) {
        error = wh_error_set(WH_EINVALID, "s3: a key must have 1 to %d bytes, prefix included",
                             WH_S3_KEY_MAX);
        goto out;
    }
    /* the path after the bucket, encoded as S3 canonicalises it (so signed as sent) */
    if (wh_buf_put(&path, "/", 1) < 0 ||
        (key && (wh_s3_encode(&path, s->prefix, strlen(s->prefix), true) < 0 ||
                 wh_s3_encode(&path, key, strlen(key), true) < 0)) ||
        wh_buf_puts(&url, s->base) < 0 || wh_buf_puts(&url, path.data) < 0 ||
        (query && *query && (wh_buf_put(&url, "?", 1) < 0 || wh_buf_puts(&url, query) < 0))) {
        error = wh_error_set(WH_ETOOBIG, "s3: a URL longer than %d bytes", URL_MAX);
        goto out;
    }

    /* the payload's hash, which curl signs but does not compute (SCALEOUT: curl 7.88) */
    if (x->read)
        wh_buf_puts(&h, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    else {
        struct wh_digest d;
        wh_digest_of(&d, WH_DIGEST_SHA256, x->mem ? x->mem : "", x->mem ? x->mem_len : 0);
        wh_buf_printf(&h, "x-amz-content-sha256: %s", wh_digest_hex(&d));
    }
    /* every header of this list is signed by curl 7.88, even an empty one that only removes
       a header curl would add ("Expect:"): the server, not seeing it, would compute another
       signature. So curl's own "Expect: 100-continue" (unsigned) stays on large uploads. */
    hdrs = lib.slist_append(hdrs, h.data);
    for (size_t i = 0; headers && headers[i]; i++)
        hdrs = lib.slist_append(hdrs, headers[i]);
    if (x->self_sign) {
        /* signed here, not by curl (see wh_s3_sign_v4): Host and x-amz-date set by us too */
        const char *sign[20];
        size_t n = 0;
        char date[32];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(date, sizeof(date), "%Y%m%dT%H%M%SZ", &tm);
        wh_buf_printf(&host, "Host: %s", s->authority);
        wh_buf_printf(&amzdate, "x-amz-date: %s", date);
        sign[n++] = host.data;
        sign[n++] = amzdate.data;
        sign[n++] = h.data;
        for (size_t i = 0; headers && headers[i] && n < 19; i++)
            sign[n++] = headers[i];
        sign[n] = NULL;
        wh_buf_puts(&auth, "Authorization: ");
        char *hash = strchr(h.data, ':') + 2;
        wh_buf_printf(&full_path, "%s%s", s->path_base, path.data);
        if ((error = wh_s3_sign_v4(&auth, s->access_key, s->secret_key, s->region, method,
                                   full_path.data, query, sign, hash, date)) < 0)
            goto out;
        hdrs = lib.slist_append(hdrs, host.data);
        hdrs = lib.slist_append(hdrs, amzdate.data);
        hdrs = lib.slist_append(hdrs, auth.data);
    }
    if (!hdrs) {
        error = wh_error_set(WH_ERROR, "s3: out of memory");
        goto out;
    }
    if (!(c = handle_take(s))) {
        error = wh_error_set(WH_ERROR, "s3: libcurl cannot create a handle");
        goto out;
    }
    lib.easy_setopt(c, CURLOPT_URL, url.data);
    lib.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    lib.easy_setopt(c, CURLOPT_PATH_AS_IS, 1L); /* "a/../b" is a key, not a path to tidy */
    lib.easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (!x->self_sign) {
        lib.easy_setopt(c, CURLOPT_AWS_SIGV4, s->sigv4);
        lib.easy_setopt(c, CURLOPT_USERNAME, s->access_key);
        lib.easy_setopt(c, CURLOPT_PASSWORD, s->secret_key);
    }
    lib.easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    lib.easy_setopt(c, CURLOPT_USERAGENT, "wharf");
    lib.easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)s->connect_timeout_s);
    lib.easy_setopt(c, CURLOPT_FILETIME, 1L);
    lib.easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    lib.easy_setopt(c, CURLOPT_HEADERDATA, x);
    lib.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    lib.easy_setopt(c, CURLOPT_WRITEDATA, x);
#if LIBCURL_VERSION_NUM >= 0x075500
    lib.easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    if (s->ca_file)
        lib.easy_setopt(c, CURLOPT_CAINFO, s->ca_file);
    if (x->read || x->write) { /* streamed: no deadline for the whole, but no stall */
        lib.easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        lib.easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)s->stall_s);
    } else
        lib.easy_setopt(c, CURLOPT_TIMEOUT, (long)s->timeout_s);
    if (strcmp(method, "HEAD") == 0)
        lib.easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "PUT") == 0) {
        lib.easy_setopt(c, CURLOPT_UPLOAD, 1L);
        lib.easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        lib.easy_setopt(c, CURLOPT_READDATA, x);
        lib.easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
                        (curl_off_t)(x->read ? x->up_len : x->mem_len));
    } else if (strcmp(method, "POST") == 0) {
        lib.easy_setopt(c, CURLOPT_POST, 1L);
        lib.easy_setopt(c, CURLOPT_POSTFIELDS, x->mem ? x->mem : "");
        lib.easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(x->mem ? x->mem_len : 0));
    } else if (strcmp(method, "GET") != 0)
        lib.easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);

    CURLcode rc = lib.easy_perform(c);
    target(x, t, sizeof(t));
    if (x->read_error) {
        error = x->read_error; /* the source set the message */
        goto out;
    }
    if (x->write_error) {
        error = x->write_error;
        goto out;
    }
    if (x->read_short) {
        error = wh_error_set(WH_ERROR, "s3 %s %s: the body ended after %llu of %llu bytes",
                             method, t, (unsigned long long)x->up_sent,
                             (unsigned long long)x->up_len);
        goto out;
    }
    if (x->toobig) {
        error = wh_error_set(WH_ETOOBIG, "s3 %s %s: the answer is larger than %zu bytes", method,
                             t, s->max_response);
        goto out;
    }
    if (x->range_bad) {
        error = wh_error_set(WH_ERROR, "s3 %s %s: %ld with Content-Range \"%s\" to a read from %llu",
                             method, t, x->status, x->content_range,
                             (unsigned long long)x->offset);
        goto out;
    }
    if (rc == CURLE_WRITE_ERROR && x->got_enough)
        rc = CURLE_OK;
    if (rc == CURLE_PARTIAL_FILE) {
        error = wh_error_set(WH_ERROR, "s3 %s %s: the connection closed after %llu bytes of the body",
                             method, t,
                             (unsigned long long)(x->write ? x->delivered : x->body.len));
        goto out;
    }
    if (rc != CURLE_OK) {
        error = wh_error_set(WH_ERROR, "s3 %s %s: %s", method, t,
                             errbuf[0] ? errbuf : lib.easy_strerror(rc));
        goto out;
    }
    if (x->status < 200 || x->status >= 300) {
        error = status_error(x);
        goto out;
    }
out:
    handle_give(s, c);
    if (hdrs)
        lib.slist_free_all(hdrs);
    wh_buf_dispose(&url);
    wh_buf_dispose(&h);
    wh_buf_dispose(&path);
    wh_buf_dispose(&full_path);
    wh_buf_dispose(&host);
    wh_buf_dispose(&amzdate);
    wh_buf_dispose(&auth);
    return error;
}

static void xfer_dispose(struct xfer *x)
{
    wh_buf_dispose(&x->body);
}

/* Parses a 2xx answer's body as `kind`; an <Error> inside a 200 becomes its error. */
static int answer_doc(struct xfer *x, struct wh_s3_doc *doc, enum wh_s3_doc_kind kind)
{
    char t[400];
    int error = wh_s3_doc_parse(doc, kind, x->body.data ? x->body.data : "", x->body.len,
                                x->s->prefix);
    if (error < 0) {
        char why[200];
        snprintf(why, sizeof(why), "%s", wh_error_msg());
        target(x, t, sizeof(t));
        return wh_error_set(WH_ERROR, "s3 %s %s: %s", x->method, t, why);
    }
    if (doc->kind == WH_S3_DOC_ERROR)
        return s3_error(x, x->status, doc->code, doc->message);
    return 0;
}

/* ---- operations ----------------------------------------------------------------------------- */

int wh_s3_put(wh_s3 *s, const char *key, const void *p, size_t len)
{
    struct xfer x = {.s = s, .mem = p ? p : "", .mem_len = len};
    static const char *const hdrs[] = {"Content-Type: application/octet-stream", NULL};
    int error = perform(&x, "PUT", key, NULL, hdrs);
    xfer_dispose(&x);
    return error;
}

int wh_s3_put_stream(wh_s3 *s, const char *key, uint64_t len, wh_s3_read_fn fn, void *payload)
{
    struct xfer x = {.s = s, .read = fn, .read_payload = payload, .up_len = len};
    static const char *const hdrs[] = {"Content-Type: application/octet-stream", NULL};
    int error = perform(&x, "PUT", key, NULL, hdrs);
    xfer_dispose(&x);
    return error;
}

/* Fills `info` from the answer's headers: `total` is the object's size. */
static void object_info(struct wh_s3_object *info, const struct xfer *x, uint64_t total)
{
    struct tm tm = {0};
    memset(info, 0, sizeof(*info));
    info->size = total;
    snprintf(info->etag, sizeof(info->etag), "%s", x->etag);
    if (x->modified[0] && strptime(x->modified, "%a, %d %b %Y %H:%M:%S GMT", &tm)) {
        time_t t = timegm(&tm);
        info->mtime_ms = t == (time_t)-1 ? 0 : (int64_t)t * 1000;
    }
}

int wh_s3_get(wh_s3 *s, const char *key, uint64_t offset, uint64_t length, wh_s3_write_fn fn,
              void *payload, struct wh_s3_object *info)
{
    struct xfer x = {.s = s, .write = fn, .write_payload = payload, .offset = offset,
                     .want = length};
    char range[80];
    const char *hdrs[2] = {NULL, NULL};
    int error;

    if (length == 0)
        return wh_error_set(WH_EINVALID, "s3 GET: a read of 0 bytes");
    if (length != WH_S3_TO_END && length - 1 > UINT64_MAX - offset)
        return wh_error_set(WH_EINVALID, "s3 GET: the range overflows");
    if (offset || length != WH_S3_TO_END) {
        x.ranged = true;
        if (length == WH_S3_TO_END)
            snprintf(range, sizeof(range), "Range: bytes=%llu-", (unsigned long long)offset);
        else
            snprintf(range, sizeof(range), "Range: bytes=%llu-%llu", (unsigned long long)offset,
                     (unsigned long long)(offset + length - 1));
        hdrs[0] = range;
    }
    error = perform(&x, "GET", key, NULL, hdrs);
    if (error == 0 && x.ranged && x.status == 200 && x.delivered == 0) {
        /* the server ignored the Range and the object ends before the offset: S3's 416 */
        char t[400];
        target(&x, t, sizeof(t));
        error = wh_error_set(WH_ERANGE, "s3 GET %s: offset %llu is past the end", t,
                             (unsigned long long)offset);
    }
    if (error == 0 && info) {
        unsigned long long a, b, total = 0;
        uint64_t cl = 0;
        if (x.status == 206) {
            if (sscanf(x.content_range, "bytes %llu-%llu/%llu", &a, &b, &total) != 3)
                total = 0;
        } else if (wh_parse_u64(&cl, x.length, strlen(x.length)) == 0)
            total = cl;
        object_info(info, &x, total);
    }
    xfer_dispose(&x);
    return error;
}

int wh_s3_head(wh_s3 *s, const char *key, struct wh_s3_object *out)
{
    struct xfer x = {.s = s};
    uint64_t size = 0;
    char t[400];
    int error = perform(&x, "HEAD", key, NULL, NULL);
    if (error == 0 && wh_parse_u64(&size, x.length, strlen(x.length)) < 0) {
        target(&x, t, sizeof(t));
        error = wh_error_set(WH_ERROR, "s3 HEAD %s: no Content-Length in the answer", t);
    }
    if (error == 0)
        object_info(out, &x, size);
    xfer_dispose(&x);
    return error;
}

int wh_s3_delete(wh_s3 *s, const char *key)
{
    struct xfer x = {.s = s};
    int error = perform(&x, "DELETE", key, NULL, NULL);
    /* a missing key is what a delete wants (S3 answers 204; some servers 404 NoSuchKey) */
    if (error == WH_ENOTFOUND)
        error = 0;
    xfer_dispose(&x);
    return error;
}

/* Writes "x-amz-copy-source: /bucket/key" (the key URL-encoded, '/' kept) into `out`. */
static int copy_source(struct wh_buf *out, const wh_s3 *s, const char *src_key)
{
    if (!src_key || !*src_key || strlen(s->prefix) + strlen(src_key) > WH_S3_KEY_MAX)
        return wh_error_set(WH_EINVALID, "s3: a key must have 1 to %d bytes, prefix included",
                            WH_S3_KEY_MAX);
    if (wh_buf_printf(out, "x-amz-copy-source: /%s/", s->bucket) < 0 ||
        wh_s3_encode(out, s->prefix, strlen(s->prefix), true) < 0 ||
        wh_s3_encode(out, src_key, strlen(src_key), true) < 0)
        return wh_error_set(WH_ETOOBIG, "s3: a copy source longer than %d bytes", URL_MAX);
    return 0;
}

int wh_s3_copy(wh_s3 *s, const char *dst_key, const char *src_key)
{
    struct xfer x = {.s = s, .mem = "", .mem_len = 0};
    struct wh_s3_doc doc = {0};
    struct wh_buf src;
    int error;

    wh_buf_init(&src, URL_MAX);
    if ((error = copy_source(&src, s, src_key)) < 0)
        goto out;
    const char *hdrs[] = {src.data, NULL};
    /* on a 404 the message names the destination, though the source is what is missing */
    if ((error = perform(&x, "PUT", dst_key, NULL, hdrs)) < 0)
        goto out;
    error = answer_doc(&x, &doc, WH_S3_DOC_COPY);
out:
    wh_s3_doc_dispose(&doc);
    wh_buf_dispose(&src);
    xfer_dispose(&x);
    return error;
}

int wh_s3_list(wh_s3 *s, struct wh_s3_list *out, const char *prefix, const char *token,
               unsigned max_keys)
{
    struct xfer x = {.s = s};
    struct wh_s3_doc doc = {0};
    struct wh_buf q;
    char max[16], *full = wh_sprintf("%s%s", s->prefix, prefix ? prefix : "");
    const char *kv[8];
    size_t n = 0;
    int error;

    memset(out, 0, sizeof(*out));
    wh_buf_init(&q, URL_MAX);
    snprintf(max, sizeof(max), "%u", max_keys && max_keys <= WH_S3_LIST_MAX ? max_keys
                                                                           : WH_S3_LIST_MAX);
    kv[n++] = "list-type", kv[n++] = "2";
    kv[n++] = "max-keys", kv[n++] = max;
    if (*full)
        kv[n++] = "prefix", kv[n++] = full;
    if (token)
        kv[n++] = "continuation-token", kv[n++] = token;
    if (wh_s3_query(&q, kv, n / 2) < 0) {
        error = wh_error_set(WH_ETOOBIG, "s3: a query longer than %d bytes", URL_MAX);
        goto out;
    }
    if ((error = perform(&x, "GET", NULL, q.data, NULL)) < 0 ||
        (error = answer_doc(&x, &doc, WH_S3_DOC_LIST)) < 0)
        goto out;
    if (doc.list.truncated && !doc.list.next_token) {
        error = wh_error_set(WH_ERROR, "s3 GET %s: a truncated list without a continuation token",
                             s->bucket);
        goto out;
    }
    *out = doc.list;
    memset(&doc.list, 0, sizeof(doc.list));
out:
    wh_s3_doc_dispose(&doc);
    wh_buf_dispose(&q);
    xfer_dispose(&x);
    free(full);
    return error;
}

int wh_s3_mpu_create(wh_s3 *s, const char *key, char **upload_id)
{
    struct xfer x = {.s = s};
    struct wh_s3_doc doc = {0};
    static const char *const hdrs[] = {"Content-Type: application/octet-stream", NULL};
    int error;

    *upload_id = NULL;
    if ((error = perform(&x, "POST", key, "uploads=", hdrs)) < 0 ||
        (error = answer_doc(&x, &doc, WH_S3_DOC_INITIATE)) < 0)
        goto out;
    *upload_id = doc.upload_id;
    doc.upload_id = NULL;
out:
    wh_s3_doc_dispose(&doc);
    xfer_dispose(&x);
    return error;
}

/* "partNumber=N&uploadId=ID" and the like, into `q`. */
static int upload_query(struct wh_buf *q, const char *upload_id, const char *k1, const char *v1,
                        const char *k2, const char *v2)
{
    const char *kv[6] = {"uploadId", upload_id, k1, v1, k2, v2};
    size_t n = k2 ? 3 : k1 ? 2 : 1;
    if (!upload_id || !*upload_id || strlen(upload_id) > WH_S3_UPLOAD_ID_MAX)
        return wh_error_set(WH_EINVALID, "s3: an upload id must have 1 to %d bytes",
                            WH_S3_UPLOAD_ID_MAX);
    if (wh_s3_query(q, kv, n) < 0)
        return wh_error_set(WH_ETOOBIG, "s3: a query longer than %d bytes", URL_MAX);
    return 0;
}

int wh_s3_mpu_put_part(wh_s3 *s, const char *key, const char *upload_id, unsigned number,
                       uint64_t len, wh_s3_read_fn fn, void *payload, char etag[WH_S3_ETAG_MAX])
{
    struct xfer x = {.s = s, .read = fn, .read_payload = payload, .up_len = len};
    struct wh_buf q;
    char num[16], t[400];
    int error;

    etag[0] = '\0';
    if (number < 1 || number > WH_S3_PARTS_MAX)
        return wh_error_set(WH_EINVALID, "s3: part number %u is not within 1..%d", number,
                            WH_S3_PARTS_MAX);
    snprintf(num, sizeof(num), "%u", number);
    wh_buf_init(&q, URL_MAX);
    if ((error = upload_query(&q, upload_id, "partNumber", num, NULL, NULL)) < 0 ||
        (error = perform(&x, "PUT", key, q.data, NULL)) < 0)
        goto out;
    if (!x.etag[0]) {
        target(&x, t, sizeof(t));
        error = wh_error_set(WH_ERROR, "s3 PUT %s: part %u stored without an ETag", t, number);
        goto out;
    }
    memcpy(etag, x.etag, sizeof(x.etag));
out:
    wh_buf_dispose(&q);
    xfer_dispose(&x);
    return error;
}

int wh_s3_mpu_copy_part(wh_s3 *s, const char *key, const char *upload_id, unsigned number,
                        const char *src_key, uint64_t offset, uint64_t length,
                        char etag[WH_S3_ETAG_MAX])
{
    /* curl 7.88 would sign x-amz-copy-source-range before x-amz-copy-source */
    struct xfer x = {.s = s, .mem = "", .mem_len = 0, .self_sign = true};
    struct wh_s3_doc doc = {0};
    struct wh_buf q, src;
    char num[16], range[96];
    int error;

    etag[0] = '\0';
    wh_buf_init(&q, URL_MAX);
    wh_buf_init(&src, URL_MAX);
    if (number < 1 || number > WH_S3_PARTS_MAX || length == 0 || length - 1 > UINT64_MAX - offset) {
        error = wh_error_set(WH_EINVALID, "s3: part %u of %llu bytes from %llu: out of range",
                             number, (unsigned long long)length, (unsigned long long)offset);
        goto out;
    }
    snprintf(num, sizeof(num), "%u", number);
    snprintf(range, sizeof(range), "x-amz-copy-source-range: bytes=%llu-%llu",
             (unsigned long long)offset, (unsigned long long)(offset + length - 1));
    if ((error = copy_source(&src, s, src_key)) < 0 ||
        (error = upload_query(&q, upload_id, "partNumber", num, NULL, NULL)) < 0)
        goto out;
    const char *hdrs[] = {src.data, range, NULL};
    if ((error = perform(&x, "PUT", key, q.data, hdrs)) < 0 ||
        (error = answer_doc(&x, &doc, WH_S3_DOC_COPY_PART)) < 0)
        goto out;
    if (!doc.etag[0]) {
        char t[400];
        target(&x, t, sizeof(t));
        error = wh_error_set(WH_ERROR, "s3 PUT %s: part %u copied without an ETag", t, number);
        goto out;
    }
    memcpy(etag, doc.etag, sizeof(doc.etag));
out:
    wh_s3_doc_dispose(&doc);
    wh_buf_dispose(&q);
    wh_buf_dispose(&src);
    xfer_dispose(&x);
    return error;
}

int wh_s3_mpu_list_parts(wh_s3 *s, const char *key, const char *upload_id,
                         struct wh_s3_part **out, size_t *n)
{
    struct wh_s3_part *all = NULL;
    size_t count = 0;
    unsigned marker = 0;
    int error = 0;

    *out = NULL;
    *n = 0;
    for (;;) {
        struct xfer x = {.s = s};
        struct wh_s3_doc doc = {0};
        struct wh_buf q;
        char m[16];
        snprintf(m, sizeof(m), "%u", marker);
        wh_buf_init(&q, URL_MAX);
        if ((error = upload_query(&q, upload_id, "max-parts", "1000", "part-number-marker",
                                  m)) == 0 &&
            (error = perform(&x, "GET", key, q.data, NULL)) == 0)
            error = answer_doc(&x, &doc, WH_S3_DOC_PARTS);
        wh_buf_dispose(&q);
        xfer_dispose(&x);
        if (error == 0 && count + doc.n_parts > WH_S3_PARTS_MAX)
            error = wh_error_set(WH_ERROR, "s3: more than %d parts listed", WH_S3_PARTS_MAX);
        if (error == 0 && doc.parts_truncated && doc.next_part_marker <= marker)
            error = wh_error_set(WH_ERROR, "s3: ListParts does not advance (marker %u)", marker);
        if (error == 0 && doc.n_parts) {
            all = wh_realloc(all, (count + doc.n_parts) * sizeof(*all));
            memcpy(all + count, doc.parts, doc.n_parts * sizeof(*all));
            count += doc.n_parts;
        }
        bool more = doc.parts_truncated;
        marker = doc.next_part_marker;
        wh_s3_doc_dispose(&doc);
        if (error < 0) {
            free(all);
            return error;
        }
        if (!more)
            break;
    }
    *out = all;
    *n = count;
    return 0;
}

int wh_s3_mpu_complete(wh_s3 *s, const char *key, const char *upload_id,
                       const struct wh_s3_part *parts, size_t n)
{
    struct xfer x = {.s = s};
    struct wh_s3_doc doc = {0};
    struct wh_buf q, body;
    static const char *const hdrs[] = {"Content-Type: application/xml", NULL};
    int error;

    wh_buf_init(&q, URL_MAX);
    wh_buf_init(&body, (size_t)WH_S3_PARTS_MAX * 160 + 128);
    if (n == 0 || n > WH_S3_PARTS_MAX) {
        error = wh_error_set(WH_EINVALID, "s3: an upload completes from 1 to %d parts",
                             WH_S3_PARTS_MAX);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (parts[i].number < 1 || parts[i].number > WH_S3_PARTS_MAX ||
            (i && parts[i].number <= parts[i - 1].number) || !parts[i].etag[0]) {
            /* S3 wants them ascending (InvalidPartOrder); rgw 16 would sort them silently */
            error = wh_error_set(WH_EINVALID,
                                 "s3: parts must be numbered 1 to %d, in ascending order, "
                                 "each with its ETag (part %zu is %u)",
                                 WH_S3_PARTS_MAX, i + 1, parts[i].number);
            goto out;
        }
    if ((error = upload_query(&q, upload_id, NULL, NULL, NULL, NULL)) < 0)
        goto out;
    wh_buf_puts(&body, "<CompleteMultipartUpload>");
    for (size_t i = 0; i < n; i++) {
        wh_buf_printf(&body, "<Part><PartNumber>%u</PartNumber><ETag>", parts[i].number);
        /* ETags come from the server; escape what XML needs escaped all the same */
        for (const char *p = parts[i].etag; *p && p < parts[i].etag + WH_S3_ETAG_MAX; p++) {
            if (*p == '&')
                wh_buf_puts(&body, "&amp;");
            else if (*p == '<')
                wh_buf_puts(&body, "&lt;");
            else if (*p == '>')
                wh_buf_puts(&body, "&gt;");
            else
                wh_buf_put(&body, p, 1);
        }
        wh_buf_puts(&body, "</ETag></Part>");
    }
    if (wh_buf_puts(&body, "</CompleteMultipartUpload>") < 0) {
        error = wh_error_set(WH_ETOOBIG, "s3: the completion document is too large");
        goto out;
    }
    x.mem = body.data;
    x.mem_len = body.len;
    if ((error = perform(&x, "POST", key, q.data, hdrs)) < 0)
        goto out;
    /* S3 may send its 200 early and an <Error> after it */
    error = answer_doc(&x, &doc, WH_S3_DOC_COMPLETE);
out:
    wh_s3_doc_dispose(&doc);
    wh_buf_dispose(&q);
    wh_buf_dispose(&body);
    xfer_dispose(&x);
    return error;
}

int wh_s3_mpu_abort(wh_s3 *s, const char *key, const char *upload_id)
{
    struct xfer x = {.s = s};
    struct wh_buf q;
    int error;
    wh_buf_init(&q, URL_MAX);
    if ((error = upload_query(&q, upload_id, NULL, NULL, NULL, NULL)) == 0)
        error = perform(&x, "DELETE", key, q.data, NULL);
    wh_buf_dispose(&q);
    xfer_dispose(&x);
    return error;
}

int wh_s3_mpu_list(wh_s3 *s, struct wh_s3_uploads *out, const char *prefix,
                   const char *key_marker, const char *upload_id_marker, unsigned max_uploads)
{
    struct xfer x = {.s = s};
    struct wh_s3_doc doc = {0};
    struct wh_buf q;
    char max[16], *full = wh_sprintf("%s%s", s->prefix, prefix ? prefix : "");
    char *km = key_marker ? wh_sprintf("%s%s", s->prefix, key_marker) : NULL;
    const char *kv[12];
    size_t n = 0;
    int error;

    memset(out, 0, sizeof(*out));
    wh_buf_init(&q, URL_MAX);
    snprintf(max, sizeof(max), "%u", max_uploads && max_uploads <= 1000 ? max_uploads : 1000);
    kv[n++] = "uploads", kv[n++] = NULL;
    kv[n++] = "max-uploads", kv[n++] = max;
    if (*full)
        kv[n++] = "prefix", kv[n++] = full;
    if (km)
        kv[n++] = "key-marker", kv[n++] = km;
    if (upload_id_marker)
        kv[n++] = "upload-id-marker", kv[n++] = upload_id_marker;
    if (wh_s3_query(&q, kv, n / 2) < 0) {
        error = wh_error_set(WH_ETOOBIG, "s3: a query longer than %d bytes", URL_MAX);
        goto out;
    }
    if ((error = perform(&x, "GET", NULL, q.data, NULL)) < 0 ||
        (error = answer_doc(&x, &doc, WH_S3_DOC_UPLOADS)) < 0)
        goto out;
    *out = doc.uploads;
    memset(&doc.uploads, 0, sizeof(doc.uploads));
    /* the markers are keys too: hand them back without the prefix */
    if (out->next_key_marker && *s->prefix) {
        size_t pl = strlen(s->prefix);
        if (strncmp(out->next_key_marker, s->prefix, pl) == 0)
            memmove(out->next_key_marker, out->next_key_marker + pl,
                    strlen(out->next_key_marker) - pl + 1);
    }
out:
    wh_s3_doc_dispose(&doc);
    wh_buf_dispose(&q);
    xfer_dispose(&x);
    free(full);
    free(km);
    return error;
}

/* Appends `s` as XML text; 0, or WH_EINVALID for a byte XML 1.0 cannot carry. */
static int put_xml_text(struct wh_buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '&')
            wh_buf_puts(b, "&amp;");
        else if (c == '<')
            wh_buf_puts(b, "&lt;");
        else if (c == '>')
            wh_buf_puts(b, "&gt;");
        else if (c == '\t' || c == '\n' || c == '\r')
            wh_buf_printf(b, "&#%u;", c); /* kept as they are, not normalised */
        else if (c < 0x20)
            return wh_error_set(WH_EINVALID, "s3: a key with control byte 0x%02x", c);
        else
            wh_buf_put(b, s, 1);
    }
    return 0;
}

int wh_s3_delete_many(wh_s3 *s, const char *const *keys, size_t n, size_t *n_failed)
{
    struct xfer x = {.s = s};
    struct wh_s3_doc doc = {0};
    struct wh_buf body, md5h;
    unsigned char md5[EVP_MAX_MD_SIZE];
    unsigned int md5len = 0;
    char b64[64];
    int error = 0;

    if (n_failed)
        *n_failed = 0;
    if (n == 0)
        return 0;
    if (n > WH_S3_LIST_MAX)
        return wh_error_set(WH_EINVALID, "s3: at most %d keys per batch delete", WH_S3_LIST_MAX);
    wh_buf_init(&body, (size_t)WH_S3_LIST_MAX * (WH_S3_KEY_MAX * 6 + 64));
    wh_buf_init(&md5h, 128);
    wh_buf_puts(&body, "<Delete><Quiet>true</Quiet>");
    for (size_t i = 0; i < n; i++) {
        if (!keys[i] || !*keys[i] || strlen(s->prefix) + strlen(keys[i]) > WH_S3_KEY_MAX) {
            error = wh_error_set(WH_EINVALID,
                                 "s3: a key must have 1 to %d bytes, prefix included",
                                 WH_S3_KEY_MAX);
            goto out;
        }
        wh_buf_puts(&body, "<Object><Key>");
        if ((error = put_xml_text(&body, s->prefix)) < 0 ||
            (error = put_xml_text(&body, keys[i])) < 0)
            goto out;
        wh_buf_puts(&body, "</Key></Object>");
    }
    wh_buf_puts(&body, "</Delete>");
    /* S3 wants the body's MD5 with DeleteObjects */
    if (!EVP_Digest(body.data, body.len, md5, &md5len, EVP_md5(), NULL))
        abort();
    EVP_EncodeBlock((unsigned char *)b64, md5, (int)md5len);
    wh_buf_printf(&md5h, "Content-MD5: %s", b64);
    const char *hdrs[] = {"Content-Type: application/xml", md5h.data, NULL};
    x.mem = body.data;
    x.mem_len = body.len;
    if ((error = perform(&x, "POST", NULL, "delete=", hdrs)) < 0 ||
        (error = answer_doc(&x, &doc, WH_S3_DOC_DELETE)) < 0)
        goto out;
    if (doc.n_failed) {
        char k[300], m[300];
        if (n_failed)
            *n_failed = doc.n_failed;
        wh_log_escape(k, sizeof(k), doc.failed_key ? doc.failed_key : "");
        wh_log_escape(m, sizeof(m), doc.message);
        error = wh_error_set(code_error(doc.code, 0) == WH_EDENIED ? WH_EDENIED : WH_ERROR,
                             "s3 POST %s/?delete: %zu of %zu keys not deleted; %s: %s%s%s",
                             s->bucket, doc.n_failed, n, k, doc.code, *m ? ": " : "", m);
    }
out:
    wh_s3_doc_dispose(&doc);
    wh_buf_dispose(&body);
    wh_buf_dispose(&md5h);
    xfer_dispose(&x);
    return error;
}
