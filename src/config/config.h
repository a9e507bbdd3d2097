/*
 * config: wharf's settings — defaults, then a YAML file, then WHARF_*
 * environment variables, then command-line flags, each overriding the one
 * before. Every value is checked as it is read (type, range, choices), so a
 * configuration that loads is one the server can run with; what one value
 * cannot tell (the TLS files) is checked by wh_config_check_tls. See
 * docs/configuration.md for every key.
 */
#ifndef WH_CONFIG_H
#define WH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/common.h"

#define WH_CONFIG_KEYS_MAX 80      /* room in `origin` for every key of the table */
#define WH_CONFIG_PROBLEMS_MAX 4096 /* bytes of collected problem messages */

/* Where a value came from: a line of the file (> 0) or one of these. */
enum {
    WH_CONFIG_FROM_DEFAULT = 0,
    WH_CONFIG_FROM_ENV = -1,
    WH_CONFIG_FROM_FLAG = -2,
};

struct wh_config {
    char listen_host[64];      /* listen: host part (numeric IPv4 or IPv6) */
    uint16_t port;             /* listen: port part */
    char data_dir[1024];       /* data_dir */
    char db_driver[16];        /* db.driver: "sqlite" (in data_dir) or "postgres" */
    char db_dsn[1024];         /* db.dsn: PostgreSQL connection string (libpq) */
    unsigned db_pool_size;     /* db.pool_size: PostgreSQL connections per process */
    unsigned threads;          /* http.threads */
    unsigned max_connections;  /* http.max_connections */
    unsigned idle_timeout_s;   /* http.idle_timeout */
    unsigned header_timeout_s; /* http.header_timeout */
    unsigned max_connections_per_ip; /* http.max_connections_per_ip (0: no cap) */
    size_t max_header_bytes;   /* limits.max_header_bytes */
    size_t max_manifest_bytes; /* limits.max_manifest_bytes */
    uint64_t max_blob_bytes;   /* limits.max_blob_bytes */
    unsigned max_uploads;      /* limits.max_uploads */
    unsigned max_uploads_per_user;    /* limits.max_uploads_per_user (0: no cap) */
    unsigned max_uploads_per_project; /* limits.max_uploads_per_project (0: no cap) */
    unsigned upload_ttl_s;     /* uploads.ttl: a session's whole life */
    unsigned upload_idle_ttl_s; /* uploads.idle_ttl: time without PATCH/PUT */
    bool access_log;           /* log.access */
    char log_level[16];        /* log.level: debug, info, warn or error */
    char log_format[8];        /* log.format: "text" or "json" */
    char log_file[1024];       /* log.file ("" = stderr) */
    char token_key[1024];      /* auth.token_key: the token signing key file ("" = data_dir's) */
    bool read_only;            /* registry.read_only */
    bool delete_enabled;       /* registry.delete_enabled */
    unsigned shutdown_grace_s; /* http.shutdown_grace */
    int64_t token_ttl_s;       /* auth.token_ttl */
    unsigned login_threads;    /* auth.login_threads */
    unsigned login_queue;      /* auth.login_queue */
    int64_t audit_retention_days; /* audit.retention_days (0: keep forever) */
    unsigned gc_review_delay_s;   /* gc.review_delay: grace before a queued GC review is due */
    int64_t refresh_ttl_s;     /* auth.refresh_token_ttl */
    char tls_cert[1024];       /* tls.cert: PEM certificate chain file ("" = plain HTTP) */
    char tls_key[1024];        /* tls.key: PEM private key file */
    char trusted_proxies[1024]; /* http.trusted_proxies: addresses whose X-Forwarded-* count */
    unsigned scan_workers;     /* scan.workers: scan threads (0: one per core) */
    unsigned scan_lease_s;     /* scan.lease: a scan job's lease (s): how long a dead node's
                                  job waits before another node takes it back */
    unsigned scan_max_attempts; /* scan.max_attempts: attempts at a scan job before Error */
    unsigned scan_retry_delay_s; /* scan.retry_delay: wait before a failed job's 2nd attempt
                                    (s), doubled for each later one */
    unsigned scan_db_update_interval_s; /* scan.db_update_interval: background vulndb update
                                           (0: never) */
    bool adapter_enabled;      /* scan.adapter.enabled: serve the scanner adapter API */
    char adapter_token[256];   /* scan.adapter.token: bearer its callers present */
    unsigned adapter_max_concurrent; /* scan.adapter.max_concurrent */
    uint64_t adapter_max_image_bytes; /* scan.adapter.max_image_bytes */
    unsigned adapter_timeout_s; /* scan.adapter.timeout: pull and scan of one image */
    char scan_registry_url[1024]; /* scan.registry_url: this registry as external scanners
                                     reach it ("" = from the listen address) */
    unsigned scan_external_timeout_s; /* scan.external_timeout: one external scan job */
    bool metrics_enabled;      /* metrics.enabled: serve GET /metrics */
    char metrics_listen[80];   /* metrics.listen: host:port of its own listener ("" = listen) */
    char storage_driver[16];   /* storage.driver: "filesystem" or "s3" */
    char s3_endpoint[512];     /* storage.s3.endpoint: http(s)://host[:port] */
    char s3_bucket[64];        /* storage.s3.bucket */
    char s3_region[64];        /* storage.s3.region */
    char s3_access_key[256];   /* storage.s3.access_key */
    char s3_secret_key[256];   /* storage.s3.secret_key (masked when printed) */
    bool s3_path_style;        /* storage.s3.path_style: http://host/bucket/key */
    char s3_prefix[256];       /* storage.s3.prefix: put before every key */
    bool s3_redirect;          /* storage.s3.redirect: blob GETs answered 307 to the store */

    /* bookkeeping, not settings */
    char file[1024];                 /* the configuration file read ("" none) */
    int origin[WH_CONFIG_KEYS_MAX];  /* per key (table order): WH_CONFIG_FROM_* or file line */
    unsigned nproblems;              /* invalid values met while loading */
    char problems[WH_CONFIG_PROBLEMS_MAX]; /* their messages, one a line (truncated when full) */
};

/*
 * Splits an address written as `listen` is ("127.0.0.1:9100", "[::1]:9100")
 * into its numeric host and port. 0 or WH_EINVALID (message set).
 */
int wh_config_endpoint(char host[64], uint16_t *port, const char *v);
/* Fills `c` with the built-in defaults (and clears the bookkeeping). */
void wh_config_defaults(struct wh_config *c);
/*
 * Applies a YAML file. Every bad value is collected in c->problems (with the
 * file, line and key) and loading goes on, so that one run names them all; a
 * YAML syntax error stops it. Returns 0, WH_ENOTFOUND (no such file; message
 * names it), WH_EINVALID (c->problems says why; the error message is the
 * first of them) or
 * WH_ERROR (unreadable).
 */
int wh_config_load_file(struct wh_config *c, const char *path);
/* Applies WHARF_* environment variables. 0 or WH_EINVALID (problems collected as above). */
int wh_config_load_env(struct wh_config *c);
/*
 * Sets one dotted key ("limits.max_uploads") from text, as a command-line
 * flag would (`origin` WH_CONFIG_FROM_FLAG). 0 or WH_EINVALID (unknown key or
 * bad value: the message names both; also collected in c->problems).
 */
int wh_config_set(struct wh_config *c, const char *key, const char *value);
/*
 * Checks the TLS settings: both of tls.cert and tls.key or neither, each a
 * readable PEM file, the certificate parsable and the key its own (not
 * encrypted). Nothing is kept. 0 or WH_EINVALID (collected in c->problems).
 */
int wh_config_check_tls(struct wh_config *c);
/*
 * Checks that the database keys agree: db.driver postgres needs db.dsn, and
 * db.dsn means nothing to sqlite. 0, or WH_EINVALID with the problem
 * recorded as wh_config_check_tls does.
 */
int wh_config_check_db(struct wh_config *c);
/*
 * Writes the effective configuration to `f` as YAML that loads back to the
 * same values, every key with its origin as a comment, secrets masked.
 */
void wh_config_print(const struct wh_config *c, FILE *f);
/*
 * Writes where key `key`'s value came from into `out`: "wharf.yaml:3",
 * "WHARF_LISTEN", "command line" or "default".
 */
void wh_config_origin(char *out, size_t cap, const struct wh_config *c, const char *key);
/* The log level of c->log_level (validated when set). */
enum wh_log_level wh_config_log_level(const struct wh_config *c);
/*
 * Parses a byte count: a whole number with an optional K, M, G or T suffix
 * (binary units; "KiB" and "KB" spellings too). 0 or WH_EINVALID.
 */
int wh_config_parse_size(uint64_t *out, const char *text);
/* Writes `n` with the largest suffix that divides it exactly ("16K", "64G", "1000"). */
void wh_config_format_size(char *out, size_t cap, uint64_t n);

#endif
