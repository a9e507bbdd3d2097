/*
 * config.c: settings from defaults, a YAML file (libyaml's event parser;
 * nested mappings become dotted keys, "limits: {max_uploads: 8}" is
 * "limits.max_uploads") and environment variables. One table lists every
 * key with its environment name, so the three sources cannot drift apart.
 */
#include "config/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "common/common.h"

enum kind { K_LISTEN, K_STR, K_UINT, K_SIZE, K_U64, K_BOOL, K_I64, K_ADDRS, K_DAYS };

static const struct key {
    const char *name;
    const char *env;
    enum kind kind;
    size_t off;
    size_t len; /* for K_STR */
} keys[] = {
    {"listen", "WHARF_LISTEN", K_LISTEN, 0, 0},
    {"data_dir", "WHARF_DATA_DIR", K_STR, offsetof(struct wh_config, data_dir), 1024},
    {"http.threads", "WHARF_THREADS", K_UINT, offsetof(struct wh_config, threads), 0},
    {"scan.workers", "WHARF_SCAN_WORKERS", K_UINT, offsetof(struct wh_config, scan_workers), 0},
    {"http.max_connections", "WHARF_MAX_CONNECTIONS", K_UINT,
     offsetof(struct wh_config, max_connections), 0},
    {"http.idle_timeout", "WHARF_IDLE_TIMEOUT", K_UINT, offsetof(struct wh_config, idle_timeout_s),
     0},
    {"http.header_timeout", "WHARF_HEADER_TIMEOUT", K_UINT,
     offsetof(struct wh_config, header_timeout_s), 0},
    {"http.max_connections_per_ip", "WHARF_MAX_CONNECTIONS_PER_IP", K_UINT,
     offsetof(struct wh_config, max_connections_per_ip), 0},
    {"http.shutdown_grace", "WHARF_SHUTDOWN_GRACE", K_UINT,
     offsetof(struct wh_config, shutdown_grace_s), 0},
    {"limits.max_header_bytes", "WHARF_MAX_HEADER_BYTES", K_SIZE,
     offsetof(struct wh_config, max_header_bytes), 0},
    {"limits.max_manifest_bytes", "WHARF_MAX_MANIFEST", K_SIZE,
     offsetof(struct wh_config, max_manifest_bytes), 0},
    {"limits.max_blob_bytes", "WHARF_MAX_BLOB", K_U64, offsetof(struct wh_config, max_blob_bytes),
     0},
    {"limits.max_uploads", "WHARF_MAX_UPLOADS", K_UINT, offsetof(struct wh_config, max_uploads), 0},
    {"limits.max_uploads_per_user", "WHARF_MAX_UPLOADS_PER_USER", K_UINT,
     offsetof(struct wh_config, max_uploads_per_user), 0},
    {"limits.max_uploads_per_project", "WHARF_MAX_UPLOADS_PER_PROJECT", K_UINT,
     offsetof(struct wh_config, max_uploads_per_project), 0},
    {"uploads.ttl", "WHARF_UPLOAD_TTL", K_UINT, offsetof(struct wh_config, upload_ttl_s), 0},
    {"uploads.idle_ttl", "WHARF_UPLOAD_IDLE_TTL", K_UINT,
     offsetof(struct wh_config, upload_idle_ttl_s), 0},
    {"tls.cert", "WHARF_TLS_CERT", K_STR, offsetof(struct wh_config, tls_cert), 1024},
    {"tls.key", "WHARF_TLS_KEY", K_STR, offsetof(struct wh_config, tls_key), 1024},
    {"http.trusted_proxies", "WHARF_TRUSTED_PROXIES", K_ADDRS,
     offsetof(struct wh_config, trusted_proxies), 1024},
    {"auth.token_ttl", "WHARF_TOKEN_TTL", K_I64, offsetof(struct wh_config, token_ttl_s), 0},
    {"auth.login_threads", "WHARF_LOGIN_THREADS", K_UINT, offsetof(struct wh_config, login_threads),
     0},
    {"auth.login_queue", "WHARF_LOGIN_QUEUE", K_UINT, offsetof(struct wh_config, login_queue), 0},
    {"audit.retention_days", "WHARF_AUDIT_RETENTION_DAYS", K_DAYS,
     offsetof(struct wh_config, audit_retention_days), 0},
    {"auth.refresh_token_ttl", "WHARF_REFRESH_TOKEN_TTL", K_I64,
     offsetof(struct wh_config, refresh_ttl_s), 0},
    {"log.access", "WHARF_ACCESS_LOG", K_BOOL, offsetof(struct wh_config, access_log), 0},
    {"log.level", "WHARF_LOG_LEVEL", K_STR, offsetof(struct wh_config, log_level), 16},
    {"registry.read_only", "WHARF_READ_ONLY", K_BOOL, offsetof(struct wh_config, read_only), 0},
    {"registry.delete_enabled", "WHARF_DELETE_ENABLED", K_BOOL,
     offsetof(struct wh_config, delete_enabled), 0},
};

void wh_config_defaults(struct wh_config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->listen_host, sizeof(c->listen_host), "127.0.0.1");
    c->port = 5000;
    snprintf(c->data_dir, sizeof(c->data_dir), "./data");
    c->threads = 4;
    c->max_connections = 1024;
    c->idle_timeout_s = 60;
    c->header_timeout_s = 10;
    c->max_connections_per_ip = 64;
    c->shutdown_grace_s = 30;
    c->max_header_bytes = 16 * 1024;
    c->max_manifest_bytes = 4 * 1024 * 1024;
    c->max_blob_bytes = (uint64_t)64 << 30;
    c->max_uploads = 256;
    c->max_uploads_per_user = 64;
    c->max_uploads_per_project = 128;
    c->upload_ttl_s = 24 * 3600;
    c->upload_idle_ttl_s = 15 * 60;
    c->access_log = true;
    snprintf(c->log_level, sizeof(c->log_level), "info");
    c->delete_enabled = true;
    c->token_ttl_s = 1800;
    c->login_threads = 2;
    c->login_queue = 64;
    c->refresh_ttl_s = 30 * 24 * 3600;
}

/* Accepts a plain number or one with a K/M/G suffix (binary units). */
static int parse_size(uint64_t *out, const char *v)
{
    size_t n = strlen(v);
    uint64_t mult = 1, x;
    if (n && (v[n - 1] == 'K' || v[n - 1] == 'k'))
        mult = 1024, n--;
    else if (n && (v[n - 1] == 'M' || v[n - 1] == 'm'))
        mult = 1024 * 1024, n--;
    else if (n && (v[n - 1] == 'G' || v[n - 1] == 'g'))
        mult = 1024 * 1024 * 1024, n--;
    if (wh_parse_u64(&x, v, n) < 0 || __builtin_mul_overflow(x, mult, out))
        return WH_EINVALID;
    return 0;
}

static int set_listen(struct wh_config *c, const char *v)
{
    const char *colon = strrchr(v, ':');
    uint64_t port;
    if (!colon || wh_parse_u64(&port, colon + 1, strlen(colon + 1)) < 0 || port > 65535)
        return WH_EINVALID;
    size_t hl = (size_t)(colon - v);
    if (hl >= 2 && v[0] == '[' && v[hl - 1] == ']') { /* [::1]:5000 */
        v++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof(c->listen_host))
        return WH_EINVALID;
    memcpy(c->listen_host, v, hl);
    c->listen_host[hl] = '\0';
    c->port = (uint16_t)port;
    return 0;
}

static int apply(struct wh_config *c, const struct key *k, const char *v)
{
    char *base = (char *)c;
    uint64_t x;
    switch (k->kind) {
    case K_LISTEN:
        return set_listen(c, v);
    case K_ADDRS:
        if (wh_addr_list_check(v, NULL, NULL) < 0)
            return WH_EINVALID;
        /* fall through */
    case K_STR:
        if (strlen(v) >= k->len)
            return WH_EINVALID;
        memcpy(base + k->off, v, strlen(v) + 1);
        return 0;
    case K_UINT:
        if (wh_parse_u64(&x, v, strlen(v)) < 0 || x > 0xffffffffu)
            return WH_EINVALID;
        *(unsigned *)(void *)(base + k->off) = (unsigned)x;
        return 0;
    case K_SIZE:
        if (parse_size(&x, v) < 0 || x > SIZE_MAX)
            return WH_EINVALID;
        *(size_t *)(void *)(base + k->off) = (size_t)x;
        return 0;
    case K_I64:
        if (wh_parse_u64(&x, v, strlen(v)) < 0 || x == 0 || x > 366 * 86400)
            return WH_EINVALID;
        *(int64_t *)(void *)(base + k->off) = (int64_t)x;
        return 0;
    case K_DAYS:
        if (wh_parse_u64(&x, v, strlen(v)) < 0 || x > 100 * 366)
            return WH_EINVALID;
        *(int64_t *)(void *)(base + k->off) = (int64_t)x;
        return 0;
    case K_U64:
        if (parse_size(&x, v) < 0)
            return WH_EINVALID;
        *(uint64_t *)(void *)(base + k->off) = x;
        return 0;
    case K_BOOL:
        if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on") ||
            !strcmp(v, "1"))
            *(bool *)(base + k->off) = true;
        else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off") ||
                 !strcmp(v, "0"))
            *(bool *)(base + k->off) = false;
        else
            return WH_EINVALID;
        return 0;
    }
    return WH_EINVALID;
}

int wh_config_set(struct wh_config *c, const char *key, const char *value)
{
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (strcmp(keys[i].name, key) == 0) {
            if (apply(c, &keys[i], value) < 0)
                return wh_error_set(WH_EINVALID, "invalid value for %s: %s", key, value);
            return 0;
        }
    }
    return wh_error_set(WH_EINVALID, "unknown configuration key %s", key);
}

int wh_config_load_env(struct wh_config *c)
{
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *v = getenv(keys[i].env);
        if (v && apply(c, &keys[i], v) < 0)
            return wh_error_set(WH_EINVALID, "invalid value for %s: %s", keys[i].env, v);
    }
    return 0;
}

int wh_config_load_file(struct wh_config *c, const char *path)
{
    FILE *f = fopen(path, "rb");
    yaml_parser_t parser;
    yaml_event_t ev;
    char prefix[4][64];     /* the mapping keys above the current one */
    int depth = 0;          /* mapping nesting */
    char key[64] = "";      /* pending key at this depth, "" when a key is expected */
    int error = 0;

    if (!f)
        return wh_error_set(errno == ENOENT ? WH_ENOTFOUND : WH_ERROR, "%s: %s", path,
                            strerror(errno));
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    for (bool done = false; !done && error == 0;) {
        if (!yaml_parser_parse(&parser, &ev)) {
            error = wh_error_set(WH_EINVALID, "%s:%zu: %s", path, parser.problem_mark.line + 1,
                                 parser.problem ? parser.problem : "parse error");
            break;
        }
        size_t line = ev.start_mark.line + 1;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_MAPPING_START_EVENT:
            if (depth > 0) {
                if (!key[0] || depth > 3) {
                    error = wh_error_set(WH_EINVALID, "%s:%zu: unexpected mapping", path, line);
                    break;
                }
                snprintf(prefix[depth], sizeof(prefix[depth]), "%s", key);
                key[0] = '\0';
            }
            depth++;
            break;
        case YAML_MAPPING_END_EVENT:
            depth--;
            key[0] = '\0';
            break;
        case YAML_SCALAR_EVENT: {
            const char *v = (const char *)ev.data.scalar.value;
            if (depth == 0) {
                error = wh_error_set(WH_EINVALID, "%s:%zu: expected a mapping", path, line);
            } else if (!key[0]) {
                if (strlen(v) >= sizeof(key) || !*v)
                    error = wh_error_set(WH_EINVALID, "%s:%zu: bad key", path, line);
                else
                    snprintf(key, sizeof(key), "%s", v);
            } else {
                char full[300] = "";
                for (int i = 1; i < depth; i++) {
                    strncat(full, prefix[i], sizeof(full) - strlen(full) - 1);
                    strncat(full, ".", sizeof(full) - strlen(full) - 1);
                }
                strncat(full, key, sizeof(full) - strlen(full) - 1);
                if (wh_config_set(c, full, v) < 0)
                    error = wh_error_set(WH_EINVALID, "%s:%zu: %s", path, line, wh_error_msg());
                key[0] = '\0';
            }
            break;
        }
        case YAML_SEQUENCE_START_EVENT:
        case YAML_ALIAS_EVENT:
            error = wh_error_set(WH_EINVALID, "%s:%zu: lists and aliases are not used here", path,
                                 line);
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return error;
}
