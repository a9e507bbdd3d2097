/*
 * config: wharf's settings — defaults, then a YAML file, then WHARF_*
 * environment variables, each overriding the one before. See
 * docs/configuration.md for every key.
 */
#ifndef WH_CONFIG_H
#define WH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wh_config {
    char listen_host[64];      /* listen: host part */
    uint16_t port;             /* listen: port part */
    char data_dir[1024];       /* data_dir */
    unsigned threads;          /* http.threads */
    unsigned max_connections;  /* http.max_connections */
    unsigned idle_timeout_s;   /* http.idle_timeout */
    unsigned header_timeout_s; /* http.header_timeout */
    unsigned max_connections_per_ip; /* http.max_connections_per_ip */
    size_t max_header_bytes;   /* limits.max_header_bytes */
    size_t max_manifest_bytes; /* limits.max_manifest_bytes */
    uint64_t max_blob_bytes;   /* limits.max_blob_bytes */
    unsigned max_uploads;      /* limits.max_uploads */
    unsigned max_uploads_per_user;    /* limits.max_uploads_per_user (0: no cap) */
    unsigned max_uploads_per_project; /* limits.max_uploads_per_project (0: no cap) */
    unsigned upload_ttl_s;     /* uploads.ttl: a session's whole life */
    unsigned upload_idle_ttl_s; /* uploads.idle_ttl: time without PATCH/PUT */
    bool access_log;           /* log.access */
    char log_level[16];        /* log.level */
    bool read_only;            /* registry.read_only */
    bool delete_enabled;       /* registry.delete_enabled */
    unsigned shutdown_grace_s; /* http.shutdown_grace */
    int64_t token_ttl_s;       /* auth.token_ttl */
    unsigned login_threads;    /* auth.login_threads */
    unsigned login_queue;      /* auth.login_queue */
    int64_t audit_retention_days; /* audit.retention_days (0: keep forever) */
    int64_t refresh_ttl_s;     /* auth.refresh_token_ttl */
    char tls_cert[1024];       /* tls.cert: PEM certificate chain file ("" = plain HTTP) */
    char tls_key[1024];        /* tls.key: PEM private key file */
    char trusted_proxies[1024]; /* http.trusted_proxies: addresses whose X-Forwarded-* count */
    unsigned scan_workers;     /* scan.workers: scan threads (0: one per core) */
};

/* Fills `c` with the built-in defaults. */
void wh_config_defaults(struct wh_config *c);
/* Applies a YAML file. 0, WH_ENOTFOUND or WH_EINVALID (message names the key/line). */
int wh_config_load_file(struct wh_config *c, const char *path);
/* Applies WHARF_* environment variables. 0 or WH_EINVALID. */
int wh_config_load_env(struct wh_config *c);
/* Sets one dotted key ("limits.max_uploads") from text. 0 or WH_EINVALID. */
int wh_config_set(struct wh_config *c, const char *key, const char *value);

#endif
