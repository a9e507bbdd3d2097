/*
 * config.c: settings from defaults, a YAML file (libyaml's event parser;
 * nested mappings become dotted keys, "limits: {max_uploads: 8}" is
 * "limits.max_uploads"), environment variables and command-line flags. One
 * table lists every key with its environment name, type and accepted range,
 * so the sources cannot drift apart and adding a key is one line there (plus
 * its field and default). Values are checked as they are read; a bad one is
 * reported with where it came from (file:line, variable, flag) and the key.
 */
#include "config/config.h"
#include "common/common.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

enum kind {
    K_LISTEN, /* host:port, numeric host */
    K_STR,    /* text (a path); `min` is the least length */
    K_NUM,    /* whole number in [min, max] */
    K_BYTES,  /* byte count with optional K/M/G/T suffix, in [min, max] */
    K_BOOL,
    K_ENUM,   /* one of `choices` (case-insensitive; stored as written there) */
    K_ADDRS,  /* addresses and CIDR blocks (wh_addr_list_check); a YAML list too */
    K_ENDPOINT, /* "" or host:port as `listen` accepts it, kept as text */
};

struct key {
    const char *name;   /* dotted YAML key */
    const char *env;    /* environment variable */
    enum kind kind;
    size_t off, size;   /* the field in struct wh_config */
    uint64_t min, max;  /* K_NUM, K_BYTES: accepted range; K_STR: least length */
    const char *const *choices; /* K_ENUM: NULL-terminated */
    bool secret;        /* masked by wh_config_print */
};

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const log_formats[] = {"text", "json", NULL};
static const char *const db_drivers[] = {"sqlite", "postgres", NULL};
static const char *const storage_drivers[] = {"filesystem", "s3", NULL};

#define FIELD(f) offsetof(struct wh_config, f), sizeof(((struct wh_config *)0)->f)
#define NUM(name, env, f, lo, hi) {name, env, K_NUM, FIELD(f), lo, hi, NULL, false}
#define BYTES(name, env, f, lo, hi) {name, env, K_BYTES, FIELD(f), lo, hi, NULL, false}
#define BOOL(name, env, f) {name, env, K_BOOL, FIELD(f), 0, 1, NULL, false}
#define STR(name, env, f, minlen) {name, env, K_STR, FIELD(f), minlen, 0, NULL, false}
#define ENUM(name, env, f, list) {name, env, K_ENUM, FIELD(f), 0, 0, list, false}
#define ADDRS(name, env, f) {name, env, K_ADDRS, FIELD(f), 0, 0, NULL, false}

#define KIB 1024ull
#define MIB (1024ull * 1024)
#define GIB (1024ull * 1024 * 1024)
#define DAY 86400ull

static const struct key keys[] = {
    {"listen", "WHARF_LISTEN", K_LISTEN, FIELD(listen_host), 0, 0, NULL, false},
    STR("data_dir", "WHARF_DATA_DIR", data_dir, 1),
    ENUM("db.driver", "WHARF_DB_DRIVER", db_driver, db_drivers),
    /* a connection string may carry a password */
    {"db.dsn", "WHARF_DB_DSN", K_STR, FIELD(db_dsn), 0, 0, NULL, true},
    NUM("db.pool_size", "WHARF_DB_POOL_SIZE", db_pool_size, 1, 1024),
    NUM("http.threads", "WHARF_THREADS", threads, 1, 1024),
    NUM("scan.workers", "WHARF_SCAN_WORKERS", scan_workers, 0, 64),
    NUM("scan.lease", "WHARF_SCAN_LEASE", scan_lease_s, 1, 3600),
    NUM("scan.max_attempts", "WHARF_SCAN_MAX_ATTEMPTS", scan_max_attempts, 1, 20),
    NUM("scan.retry_delay", "WHARF_SCAN_RETRY_DELAY", scan_retry_delay_s, 1, 3600),
    NUM("scan.db_update_interval", "WHARF_SCAN_DB_UPDATE_INTERVAL", scan_db_update_interval_s, 0,
        366 * DAY),
    BOOL("scan.adapter.enabled", "WHARF_SCAN_ADAPTER_ENABLED", adapter_enabled),
    {"scan.adapter.token", "WHARF_SCAN_ADAPTER_TOKEN", K_STR, FIELD(adapter_token), 0, 0, NULL,
     true},
    NUM("scan.adapter.max_concurrent", "WHARF_SCAN_ADAPTER_MAX_CONCURRENT",
        adapter_max_concurrent, 1, 64),
    BYTES("scan.adapter.max_image_bytes", "WHARF_SCAN_ADAPTER_MAX_IMAGE_BYTES",
          adapter_max_image_bytes, MIB, 1024 * GIB),
    NUM("scan.adapter.timeout", "WHARF_SCAN_ADAPTER_TIMEOUT", adapter_timeout_s, 5, DAY),
    STR("scan.registry_url", "WHARF_SCAN_REGISTRY_URL", scan_registry_url, 0),
    NUM("scan.external_timeout", "WHARF_SCAN_EXTERNAL_TIMEOUT", scan_external_timeout_s, 2, DAY),
    NUM("http.max_connections", "WHARF_MAX_CONNECTIONS", max_connections, 1, 1000000),
    NUM("http.idle_timeout", "WHARF_IDLE_TIMEOUT", idle_timeout_s, 1, DAY),
    NUM("http.header_timeout", "WHARF_HEADER_TIMEOUT", header_timeout_s, 1, 3600),
    NUM("http.max_connections_per_ip", "WHARF_MAX_CONNECTIONS_PER_IP", max_connections_per_ip, 0,
        1000000),
    NUM("http.shutdown_grace", "WHARF_SHUTDOWN_GRACE", shutdown_grace_s, 0, 3600),
    ADDRS("http.trusted_proxies", "WHARF_TRUSTED_PROXIES", trusted_proxies),
    BYTES("limits.max_header_bytes", "WHARF_MAX_HEADER_BYTES", max_header_bytes, 2 * KIB, MIB),
    BYTES("limits.max_manifest_bytes", "WHARF_MAX_MANIFEST", max_manifest_bytes, KIB, 256 * MIB),
    BYTES("limits.max_blob_bytes", "WHARF_MAX_BLOB", max_blob_bytes, KIB, 1024 * 1024 * GIB),
    NUM("limits.max_uploads", "WHARF_MAX_UPLOADS", max_uploads, 1, 1000000),
    NUM("limits.max_uploads_per_user", "WHARF_MAX_UPLOADS_PER_USER", max_uploads_per_user, 0,
        1000000),
    NUM("limits.max_uploads_per_project", "WHARF_MAX_UPLOADS_PER_PROJECT", max_uploads_per_project,
        0, 1000000),
    NUM("uploads.ttl", "WHARF_UPLOAD_TTL", upload_ttl_s, 1, 366 * DAY),
    NUM("uploads.idle_ttl", "WHARF_UPLOAD_IDLE_TTL", upload_idle_ttl_s, 1, 366 * DAY),
    STR("tls.cert", "WHARF_TLS_CERT", tls_cert, 0),
    STR("tls.key", "WHARF_TLS_KEY", tls_key, 0),
    NUM("auth.token_ttl", "WHARF_TOKEN_TTL", token_ttl_s, 1, 366 * DAY),
    NUM("auth.refresh_token_ttl", "WHARF_REFRESH_TOKEN_TTL", refresh_ttl_s, 1, 366 * DAY),
    NUM("auth.login_threads", "WHARF_LOGIN_THREADS", login_threads, 1, 64),
    NUM("auth.login_queue", "WHARF_LOGIN_QUEUE", login_queue, 1, 100000),
    NUM("gc.review_delay", "WHARF_GC_REVIEW_DELAY", gc_review_delay_s, 0, 366 * DAY),
    NUM("audit.retention_days", "WHARF_AUDIT_RETENTION_DAYS", audit_retention_days, 0, 36600),
    BOOL("log.access", "WHARF_ACCESS_LOG", access_log),
    ENUM("log.level", "WHARF_LOG_LEVEL", log_level, log_levels),
    ENUM("log.format", "WHARF_LOG_FORMAT", log_format, log_formats),
    STR("log.file", "WHARF_LOG_FILE", log_file, 0),
    STR("auth.token_key", "WHARF_TOKEN_KEY", token_key, 0),
    BOOL("registry.read_only", "WHARF_READ_ONLY", read_only),
    BOOL("registry.delete_enabled", "WHARF_DELETE_ENABLED", delete_enabled),
    BOOL("metrics.enabled", "WHARF_METRICS", metrics_enabled),
    {"metrics.listen", "WHARF_METRICS_LISTEN", K_ENDPOINT, FIELD(metrics_listen), 0, 0, NULL,
     false},
    ENUM("storage.driver", "WHARF_STORAGE_DRIVER", storage_driver, storage_drivers),
    STR("storage.s3.endpoint", "WHARF_S3_ENDPOINT", s3_endpoint, 0),
    STR("storage.s3.bucket", "WHARF_S3_BUCKET", s3_bucket, 0),
    STR("storage.s3.region", "WHARF_S3_REGION", s3_region, 0),
    STR("storage.s3.access_key", "WHARF_S3_ACCESS_KEY", s3_access_key, 0),
    {"storage.s3.secret_key", "WHARF_S3_SECRET_KEY", K_STR, FIELD(s3_secret_key), 0, 0, NULL,
     true},
    BOOL("storage.s3.path_style", "WHARF_S3_PATH_STYLE", s3_path_style),
    STR("storage.s3.prefix", "WHARF_S3_PREFIX", s3_prefix, 0),
    BOOL("storage.s3.redirect", "WHARF_S3_REDIRECT", s3_redirect),
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))
_Static_assert(NKEYS <= WH_CONFIG_KEYS_MAX, "raise WH_CONFIG_KEYS_MAX");

void wh_config_defaults(struct wh_config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->listen_host, sizeof(c->listen_host), "127.0.0.1");
    c->port = 5000;
    snprintf(c->data_dir, sizeof(c->data_dir), "./data");
    snprintf(c->db_driver, sizeof(c->db_driver), "sqlite");
    c->db_pool_size = 8;
    c->threads = 4;
    c->max_connections = 1024;
    c->idle_timeout_s = 60;
    c->header_timeout_s = 10;
    c->max_connections_per_ip = 64;
    c->shutdown_grace_s = 30;
    c->max_header_bytes = 16 * KIB;
    c->max_manifest_bytes = 4 * MIB;
    c->max_blob_bytes = 64 * GIB;
    c->max_uploads = 256;
    c->max_uploads_per_user = 64;
    c->max_uploads_per_project = 128;
    c->upload_ttl_s = 24 * 3600;
    c->gc_review_delay_s = 24 * 3600;
    c->scan_db_update_interval_s = 24 * 3600;
    c->scan_lease_s = 60;
    c->scan_max_attempts = 5;
    c->scan_retry_delay_s = 30;
    c->upload_idle_ttl_s = 15 * 60;
    c->access_log = true;
    snprintf(c->log_level, sizeof(c->log_level), "info");
    snprintf(c->log_format, sizeof(c->log_format), "text");
    c->delete_enabled = true;
    c->metrics_enabled = true;
    c->token_ttl_s = 1800;
    c->login_threads = 2;
    c->login_queue = 64;
    c->refresh_ttl_s = 30 * 24 * 3600;
    c->adapter_max_concurrent = 2;
    c->adapter_max_image_bytes = 8 * GIB;
    c->adapter_timeout_s = 600;
    c->scan_external_timeout_s = 600;
    snprintf(c->storage_driver, sizeof(c->storage_driver), "filesystem");
    snprintf(c->s3_region, sizeof(c->s3_region), "us-east-1");
    c->s3_path_style = true;
}

/* ---- values ---- */

int wh_config_parse_size(uint64_t *out, const char *v)
{
    static const char units[] = "KMGT";
    size_t n = strlen(v);
    uint64_t mult = 1, x;
    bool unit = false;
    if (n >= 3 && strcmp(v + n - 2, "iB") == 0) /* 16KiB */
        n -= 2, unit = true;
    for (int i = 0; n > 0 && units[i]; i++) {
        if (v[n - 1] == units[i] || v[n - 1] == units[i] + ('a' - 'A')) {
            mult = 1024ull << (10 * i);
            n--;
            unit = false;
            break;
        }
    }
    if (unit) /* "iB" without K, M, G or T */
        return WH_EINVALID;
    if (n == 0 || wh_parse_u64(&x, v, n) < 0 || __builtin_mul_overflow(x, mult, out))
        return WH_EINVALID;
    return 0;
}

void wh_config_format_size(char *out, size_t cap, uint64_t n)
{
    static const char units[] = "KMGT";
    int u = -1;
    while (n != 0 && u < 3 && n % 1024 == 0) {
        n /= 1024;
        u++;
    }
    if (u < 0)
        snprintf(out, cap, "%llu", (unsigned long long)n);
    else
        snprintf(out, cap, "%llu%c", (unsigned long long)n, units[u]);
}

static void store_num(struct wh_config *c, const struct key *k, uint64_t v)
{
    char *field = (char *)c + k->off;
    if (k->size == sizeof(uint32_t)) {
        uint32_t x = (uint32_t)v;
        memcpy(field, &x, sizeof(x));
    } else {
        assert(k->size == sizeof(uint64_t));
        memcpy(field, &v, sizeof(v));
    }
}

static uint64_t load_num(const struct wh_config *c, const struct key *k)
{
    const char *field = (const char *)c + k->off;
    if (k->size == sizeof(uint32_t)) {
        uint32_t x;
        memcpy(&x, field, sizeof(x));
        return x;
    }
    uint64_t v;
    memcpy(&v, field, sizeof(v));
    return v;
}

/* Splits "host:port" / "[v6]:port"; the host must be a numeric address. */
static int set_listen(struct wh_config *c, const char *v, char *why, size_t wcap)
{
    const char *colon = strrchr(v, ':');
    uint64_t port;
    char host[64];
    unsigned char bin[16];
    if (!colon || colon == v) {
        snprintf(why, wcap, "give an address and a port, as 127.0.0.1:5000 or [::1]:5000");
        return WH_EINVALID;
    }
    if (wh_parse_u64(&port, colon + 1, strlen(colon + 1)) < 0 || port > 65535) {
        snprintf(why, wcap, "the port must be a number from 0 to 65535");
        return WH_EINVALID;
    }
    size_t hl = (size_t)(colon - v);
    bool bracketed = hl >= 2 && v[0] == '[' && v[hl - 1] == ']';
    if (bracketed) { /* [::1]:5000 */
        v++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof(host)) {
        snprintf(why, wcap, "give an address and a port, as 127.0.0.1:5000 or [::1]:5000");
        return WH_EINVALID;
    }
    memcpy(host, v, hl);
    host[hl] = '\0';
    bool v4 = inet_pton(AF_INET, host, bin) == 1, v6 = inet_pton(AF_INET6, host, bin) == 1;
    if (!v4 && !v6) {
        snprintf(why, wcap,
                 "the address must be numeric (127.0.0.1, 0.0.0.0, [::1], [::]); host names "
                 "such as localhost are not looked up");
        return WH_EINVALID;
    }
    if (v6 && !bracketed) {
        snprintf(why, wcap, "write an IPv6 address in brackets: [%s]:%llu", host,
                 (unsigned long long)port);
        return WH_EINVALID;
    }
    memcpy(c->listen_host, host, hl + 1);
    c->port = (uint16_t)port;
    return 0;
}

/* set_listen's checks for another address: its host and port, or why not. */
static int split_endpoint(char host[64], uint16_t *port, const char *v, char *why, size_t wcap)
{
    struct wh_config *scratch = wh_calloc(1, sizeof(*scratch));
    int rc = set_listen(scratch, v, why, wcap);
    if (rc == 0) {
        memcpy(host, scratch->listen_host, sizeof(scratch->listen_host));
        *port = scratch->port;
    }
    free(scratch);
    return rc;
}

int wh_config_endpoint(char host[64], uint16_t *port, const char *v)
{
    char why[256];
    if (split_endpoint(host, port, v, why, sizeof(why)) < 0)
        return wh_error_set(WH_EINVALID, "%s", why);
    return 0;
}

static void range_text(char *out, size_t cap, const struct key *k)
{
    char lo[32], hi[32];
    if (k->kind == K_BYTES) {
        wh_config_format_size(lo, sizeof(lo), k->min);
        wh_config_format_size(hi, sizeof(hi), k->max);
    } else {
        snprintf(lo, sizeof(lo), "%llu", (unsigned long long)k->min);
        snprintf(hi, sizeof(hi), "%llu", (unsigned long long)k->max);
    }
    snprintf(out, cap, "%s to %s", lo, hi);
}

/* Checks `v` for key `k` and stores it; on failure `why` says what is wrong. */
static int apply(struct wh_config *c, const struct key *k, const char *v, char *why, size_t wcap)
{
    char *field = (char *)c + k->off;
    char range[80];
    uint64_t x;
    int bad;
    if (!*v && (k->kind != K_STR || k->min > 0) && k->kind != K_ADDRS && k->kind != K_ENDPOINT) {
        snprintf(why, wcap, "no value given");
        return WH_EINVALID;
    }
    switch (k->kind) {
    case K_LISTEN:
        return set_listen(c, v, why, wcap);
    case K_ENDPOINT:
        if (*v) {
            char host[64];
            uint16_t port;
            if (split_endpoint(host, &port, v, why, wcap) < 0)
                return WH_EINVALID;
        }
        goto text;
    case K_ADDRS: {
        const char *badp = NULL;
        size_t badlen = 0;
        if (wh_addr_list_check(v, &badp, &badlen) < 0) {
            char ent[80];
            snprintf(ent, sizeof(ent), "%.*s", (int)(badlen < 64 ? badlen : 64), badp ? badp : "");
            snprintf(why, wcap,
                     "'%s' is neither an IP address nor a CIDR block (as 10.0.0.0/8, fd00::/8)",
                     ent);
            return WH_EINVALID;
        }
    }
        /* fall through */
    case K_STR:
    text:
        if (strlen(v) >= k->size) {
            snprintf(why, wcap, "longer than %zu bytes", k->size - 1);
            return WH_EINVALID;
        }
        memcpy(field, v, strlen(v) + 1);
        return 0;
    case K_NUM:
    case K_BYTES:
        bad = k->kind == K_NUM ? wh_parse_u64(&x, v, strlen(v)) : wh_config_parse_size(&x, v);
        range_text(range, sizeof(range), k);
        if (bad < 0) {
            snprintf(why, wcap, "not a %s from %s",
                     k->kind == K_NUM ? "whole number" : "size (a number with K, M, G or T)",
                     range);
            return WH_EINVALID;
        }
        if (x < k->min || x > k->max) {
            snprintf(why, wcap, "out of range: use %s", range);
            return WH_EINVALID;
        }
        store_num(c, k, x);
        return 0;
    case K_BOOL:
        if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on") ||
            !strcmp(v, "1"))
            *(bool *)field = true;
        else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off") ||
                 !strcmp(v, "0"))
            *(bool *)field = false;
        else {
            snprintf(why, wcap, "not a boolean (true/false, yes/no, on/off, 1/0)");
            return WH_EINVALID;
        }
        return 0;
    case K_ENUM:
        for (const char *const *ch = k->choices; *ch; ch++) {
            if (strcasecmp(v, *ch) == 0) {
                snprintf(field, k->size, "%s", *ch);
                return 0;
            }
        }
        {
            size_t used = (size_t)snprintf(why, wcap, "not one of");
            for (const char *const *ch = k->choices; *ch && used < wcap; ch++)
                used += (size_t)snprintf(why + used, wcap - used, "%s %s",
                                         ch == k->choices ? "" : ",", *ch);
        }
        return WH_EINVALID;
    }
    snprintf(why, wcap, "unsupported");
    return WH_EINVALID;
}

/* Appends one message to c->problems and makes it the error message. */
__attribute__((format(printf, 2, 3))) static int problem(struct wh_config *c, const char *fmt,
                                                         ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t used = strlen(c->problems), n = strlen(msg);
    if (used + n + 2 <= sizeof(c->problems)) {
        memcpy(c->problems + used, msg, n);
        c->problems[used + n] = '\n';
        c->problems[used + n + 1] = '\0';
    }
    c->nproblems++;
    return wh_error_set(WH_EINVALID, "%s", msg);
}

/* After loading: the first problem found since `mark` (an offset in c->problems) becomes
 * the error message, as the header promises. Returns 0 or WH_EINVALID. */
static int first_problem(struct wh_config *c, unsigned before, size_t mark)
{
    if (c->nproblems == before)
        return 0;
    const char *first = c->problems + mark;
    const char *nl = strchr(first, '\n');
    if (*first)
        wh_error_set(WH_EINVALID, "%.*s", (int)(nl ? (size_t)(nl - first) : strlen(first)), first);
    return WH_EINVALID;
}

static const struct key *find_key(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

/* Where `origin` points, for messages and comments. */
static void origin_text(char *out, size_t cap, const struct wh_config *c, const struct key *k,
                        int origin)
{
    if (origin > 0)
        snprintf(out, cap, "%s:%d", c->file, origin);
    else if (origin == WH_CONFIG_FROM_ENV)
        snprintf(out, cap, "%s", k ? k->env : "the environment");
    else if (origin == WH_CONFIG_FROM_FLAG)
        snprintf(out, cap, "command line");
    else
        snprintf(out, cap, "default");
}

void wh_config_origin(char *out, size_t cap, const struct wh_config *c, const char *key)
{
    const struct key *k = find_key(key);
    if (!k)
        snprintf(out, cap, "?");
    else
        origin_text(out, cap, c, k, c->origin[k - keys]);
}

/* Sets key `k` from `v` coming from `origin`; a bad value becomes a problem naming both. */
static int set_key(struct wh_config *c, const struct key *k, const char *v, int origin)
{
    char why[512], shown[96];
    if (apply(c, k, v, why, sizeof(why)) < 0) {
        wh_log_escape(shown, sizeof(shown), v);
        if (origin > 0)
            return problem(c, "%s:%d: %s: '%s': %s", c->file, origin, k->name, shown, why);
        if (origin == WH_CONFIG_FROM_ENV)
            return problem(c, "%s (%s): '%s': %s", k->env, k->name, shown, why);
        return problem(c, "%s (command line): '%s': %s", k->name, shown, why);
    }
    c->origin[k - keys] = origin;
    return 0;
}

int wh_config_set(struct wh_config *c, const char *key, const char *value)
{
    const struct key *k = find_key(key);
    if (!k)
        return problem(c, "unknown configuration key %s", key);
    return set_key(c, k, value, WH_CONFIG_FROM_FLAG);
}

int wh_config_load_env(struct wh_config *c)
{
    unsigned before = c->nproblems;
    size_t mark = strlen(c->problems);
    for (size_t i = 0; i < NKEYS; i++) {
        const char *v = getenv(keys[i].env);
        if (v)
            set_key(c, &keys[i], v, WH_CONFIG_FROM_ENV);
    }
    return first_problem(c, before, mark);
}

enum wh_log_level wh_config_log_level(const struct wh_config *c)
{
    for (int i = 0; log_levels[i]; i++)
        if (strcmp(c->log_level, log_levels[i]) == 0)
            return (enum wh_log_level)i;
    return WH_LOG_INFO;
}

/* ---- the YAML file ---- */

struct yaml_state {
    struct wh_config *c;
    const char *path;
    char prefix[4][64];  /* the mapping keys above the current one */
    int depth;           /* mapping nesting */
    char key[64];        /* pending key at this depth, "" when a key is expected */
    int key_line;        /* its line */
    bool in_list;        /* collecting a sequence of scalars for `key` */
    struct wh_buf list;  /* the items so far, comma-separated */
};

/* The dotted name of the pending key. */
static void full_name(char *out, size_t cap, const struct yaml_state *s)
{
    out[0] = '\0';
    for (int i = 1; i < s->depth; i++) {
        strncat(out, s->prefix[i], cap - strlen(out) - 1);
        strncat(out, ".", cap - strlen(out) - 1);
    }
    strncat(out, s->key, cap - strlen(out) - 1);
}

/* A value for the pending key from the file. */
static void file_value(struct yaml_state *s, const char *v, bool is_list)
{
    char name[300];
    full_name(name, sizeof(name), s);
    const struct key *k = find_key(name);
    struct wh_config *c = s->c;
    if (!k) {
        bool section = false;
        size_t n = strlen(name);
        for (size_t i = 0; i < NKEYS; i++)
            if (strncmp(keys[i].name, name, n) == 0 && keys[i].name[n] == '.')
                section = true;
        if (section)
            problem(c, "%s:%d: %s is a section: give its keys (%s.…) under it", s->path,
                    s->key_line, name, name);
        else
            problem(c, "%s:%d: unknown key %s (docs/configuration.md lists them)", s->path,
                    s->key_line, name);
        return;
    }
    int *origin = &c->origin[k - keys];
    if (*origin > 0) {
        problem(c, "%s:%d: %s is already set on line %d", s->path, s->key_line, name, *origin);
        return;
    }
    if (is_list && k->kind != K_ADDRS) {
        problem(c, "%s:%d: %s takes one value, not a list", s->path, s->key_line, name);
        return;
    }
    if (set_key(c, k, v, s->key_line) < 0)
        *origin = s->key_line; /* a second line for the key is still a duplicate */
}

int wh_config_load_file(struct wh_config *c, const char *path)
{
    FILE *f = fopen(path, "rb");
    yaml_parser_t parser;
    yaml_event_t ev;
    struct yaml_state s = {.c = c, .path = c->file};
    unsigned before = c->nproblems;
    size_t mark = strlen(c->problems);
    int error = 0;

    if (!f) {
        int e = errno;
        problem(c, "%s: %s", path, strerror(e));
        return e == ENOENT ? WH_ENOTFOUND : WH_ERROR;
    }
    snprintf(c->file, sizeof(c->file), "%s", path);
    wh_buf_init(&s.list, sizeof(c->trusted_proxies));
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    for (bool done = false; !done && error == 0;) {
        if (!yaml_parser_parse(&parser, &ev)) {
            error = problem(c, "%s:%zu: %s", path, parser.problem_mark.line + 1,
                            parser.problem ? parser.problem : "YAML syntax error");
            break;
        }
        int line = (int)ev.start_mark.line + 1;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_MAPPING_START_EVENT:
            if (s.in_list) {
                error = problem(c, "%s:%d: a list of %s holds plain values only", path, line,
                                s.key);
                break;
            }
            if (s.depth > 0) {
                if (!s.key[0] || s.depth > 3) {
                    error = problem(c, "%s:%d: unexpected mapping", path, line);
                    break;
                }
                snprintf(s.prefix[s.depth], sizeof(s.prefix[s.depth]), "%s", s.key);
                s.key[0] = '\0';
            }
            s.depth++;
            break;
        case YAML_MAPPING_END_EVENT:
            s.depth--;
            s.key[0] = '\0';
            break;
        case YAML_SEQUENCE_START_EVENT:
            if (s.depth == 0 || !s.key[0] || s.in_list) {
                error = problem(c, "%s:%d: unexpected list", path, line);
                break;
            }
            s.in_list = true;
            s.list.len = 0;
            if (s.list.data)
                s.list.data[0] = '\0';
            break;
        case YAML_SEQUENCE_END_EVENT:
            s.in_list = false;
            file_value(&s, s.list.data ? s.list.data : "", true);
            s.key[0] = '\0';
            break;
        case YAML_SCALAR_EVENT: {
            const char *v = (const char *)ev.data.scalar.value;
            bool plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
            if (plain && (strcmp(v, "~") == 0 || strcmp(v, "null") == 0))
                v = ""; /* YAML's null: no value */
            if (s.depth == 0) {
                error = problem(c, "%s:%d: expected a mapping of keys to values", path, line);
            } else if (s.in_list) {
                if ((s.list.len && wh_buf_puts(&s.list, ",") < 0) || wh_buf_puts(&s.list, v) < 0)
                    error = problem(c, "%s:%d: the list of %s is too long", path, line, s.key);
            } else if (!s.key[0]) {
                if (strlen(v) >= sizeof(s.key) || !*v)
                    error = problem(c, "%s:%d: bad key", path, line);
                else
                    snprintf(s.key, sizeof(s.key), "%s", v);
                s.key_line = line;
            } else {
                file_value(&s, v, false);
                s.key[0] = '\0';
            }
            break;
        }
        case YAML_ALIAS_EVENT:
            error = problem(c, "%s:%d: aliases are not used here", path, line);
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    wh_buf_dispose(&s.list);
    fclose(f);
    return first_problem(c, before, mark);
}

/* ---- TLS files ---- */

static int no_passphrase(char *buf, int size, int rwflag, void *payload)
{
    (void)buf, (void)size, (void)rwflag, (void)payload;
    return -1; /* never prompt: an encrypted key is refused */
}

/* Whether the file holds an encrypted PEM block (for a clearer message). */
static bool pem_encrypted(const char *path)
{
    FILE *f = fopen(path, "rb");
    char line[256];
    bool enc = false;
    for (int i = 0; f && !enc && i < 64 && fgets(line, sizeof(line), f); i++)
        enc = strstr(line, "ENCRYPTED") != NULL;
    if (f)
        fclose(f);
    return enc;
}

int wh_config_check_db(struct wh_config *c)
{
    const struct key *kd = find_key("db.driver"), *ks = find_key("db.dsn");
    char od[1100], os[1100];
    origin_text(od, sizeof(od), c, kd, c->origin[kd - keys]);
    origin_text(os, sizeof(os), c, ks, c->origin[ks - keys]);
    if (strcmp(c->db_driver, "postgres") == 0 && !c->db_dsn[0]) {
        problem(c, "db.driver is postgres (%s) but db.dsn is not set: give the PostgreSQL "
                   "connection string (postgresql://user@host:5432/wharf)",
                od);
        return WH_EINVALID;
    }
    if (strcmp(c->db_driver, "sqlite") == 0 && c->db_dsn[0]) {
        problem(c, "db.dsn is set (%s) but db.driver is sqlite (%s), which keeps its database "
                   "in data_dir: set db.driver to postgres, or leave db.dsn out",
                os, od);
        return WH_EINVALID;
    }
    return 0;
}

int wh_config_check_tls(struct wh_config *c)
{
    const struct key *kc = find_key("tls.cert"), *kk = find_key("tls.key");
    char oc[1100], ok[1100];
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    FILE *f = NULL;
    unsigned before = c->nproblems;

    origin_text(oc, sizeof(oc), c, kc, c->origin[kc - keys]);
    origin_text(ok, sizeof(ok), c, kk, c->origin[kk - keys]);
    if (!c->tls_cert[0] && !c->tls_key[0])
        return 0;
    if (!c->tls_key[0]) {
        problem(c, "tls.cert is set (%s) but tls.key is not: HTTPS needs the certificate's "
                   "private key too",
                oc);
        goto out;
    }
    if (!c->tls_cert[0]) {
        problem(c, "tls.key is set (%s) but tls.cert is not: HTTPS needs the certificate too", ok);
        goto out;
    }
    if (!(f = fopen(c->tls_cert, "rb"))) {
        problem(c, "tls.cert (%s): cannot read %s: %s", oc, c->tls_cert, strerror(errno));
        goto out;
    }
    cert = PEM_read_X509(f, NULL, no_passphrase, NULL);
    fclose(f);
    if (!cert) {
        problem(c, "tls.cert (%s): %s holds no PEM certificate", oc, c->tls_cert);
        goto out;
    }
    if (!(f = fopen(c->tls_key, "rb"))) {
        problem(c, "tls.key (%s): cannot read %s: %s", ok, c->tls_key, strerror(errno));
        goto out;
    }
    key = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
    fclose(f);
    if (!key) {
        if (pem_encrypted(c->tls_key))
            problem(c, "tls.key (%s): %s is encrypted; give wharf an unencrypted key (0600)", ok,
                    c->tls_key);
        else
            problem(c, "tls.key (%s): %s holds no PEM private key", ok, c->tls_key);
        goto out;
    }
    if (X509_check_private_key(cert, key) != 1) {
        problem(c, "tls.key (%s): %s is not the private key of the certificate in %s", ok,
                c->tls_key, c->tls_cert);
        goto out;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0)
        wh_log_warn("tls.cert: the certificate in %s has expired; clients will refuse it",
                    c->tls_cert);
out:
    X509_free(cert);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return c->nproblems > before ? WH_EINVALID : 0; /* one problem at most: it is the message */
}

/* ---- printing ---- */

/* Writes `s` as a YAML double-quoted scalar. */
static void put_quoted(struct wh_buf *b, const char *s)
{
    wh_buf_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            wh_buf_printf(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            wh_buf_printf(b, "\\x%02x", *p);
        else
            wh_buf_put(b, p, 1);
    }
    wh_buf_puts(b, "\"");
}

static void put_value(struct wh_buf *b, const struct wh_config *c, const struct key *k)
{
    const char *field = (const char *)c + k->off;
    char tmp[128];
    switch (k->kind) {
    case K_LISTEN:
        snprintf(tmp, sizeof(tmp), strchr(c->listen_host, ':') ? "[%s]:%u" : "%s:%u",
                 c->listen_host, (unsigned)c->port);
        put_quoted(b, tmp);
        break;
    case K_STR:
    case K_ADDRS:
    case K_ENUM:
    case K_ENDPOINT:
        put_quoted(b, k->secret && *field ? "********" : field);
        break;
    case K_NUM:
        wh_buf_printf(b, "%llu", (unsigned long long)load_num(c, k));
        break;
    case K_BYTES:
        wh_config_format_size(tmp, sizeof(tmp), load_num(c, k));
        wh_buf_puts(b, tmp);
        break;
    case K_BOOL:
        wh_buf_puts(b, *(const bool *)field ? "true" : "false");
        break;
    }
}

void wh_config_print(const struct wh_config *c, FILE *f)
{
    struct wh_buf b;
    bool done[NKEYS] = {false};
    wh_buf_init(&b, 1 << 20);
    wh_buf_printf(&b, "# wharf's configuration in effect (file: %s); each value's origin is "
                      "on its right\n",
                  c->file[0] ? c->file : "none");
    for (size_t i = 0; i < NKEYS; i++) {
        if (done[i])
            continue;
        const char *dot = strchr(keys[i].name, '.');
        size_t slen = dot ? (size_t)(dot - keys[i].name) : 0;
        if (dot)
            wh_buf_printf(&b, "%.*s:\n", (int)slen, keys[i].name);
        /* this key and, for a section, every later key of the same section */
        for (size_t j = i; j < NKEYS; j++) {
            if (done[j] || (j != i && (!dot || strncmp(keys[j].name, keys[i].name, slen + 1) != 0)))
                continue;
            done[j] = true;
            size_t start = b.len;
            wh_buf_printf(&b, "%s%s: ", dot ? "  " : "", keys[j].name + (dot ? slen + 1 : 0));
            put_value(&b, c, &keys[j]);
            char where[1100];
            origin_text(where, sizeof(where), c, &keys[j], c->origin[j]);
            size_t width = b.len - start;
            wh_buf_printf(&b, "%*s# %s\n", width < 40 ? (int)(40 - width) : 1, "", where);
        }
    }
    if (getenv("WHARF_ADMIN_PASSWORD"))
        wh_buf_puts(&b, "# WHARF_ADMIN_PASSWORD is set (********): the password of the "
                        "administrator created at the first start\n");
    if (b.data)
        fwrite(b.data, 1, b.len, f);
    wh_buf_dispose(&b);
}
