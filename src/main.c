/*
 * main.c: the wharf command line. Finds the command, answers --help and
 * version without reading anything, loads the one configuration every
 * command shares (defaults, --config/WHARF_CONFIG, WHARF_* variables,
 * --data-dir), and runs `serve` here; the other commands live in cli/.
 * `serve` checks everything it can (every value, the TLS files, the data
 * directory, the listening address) before it creates anything on disk.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acl/acl.h"
#include "adapter/adapter.h"
#include "api/api.h"
#include "auth/auth.h"
#include "cli/cli.h"
#include "common/common.h"
#include "config/config.h"
#include "scand/scand.h"
#include "db/db.h"
#include "gc/gc.h"
#include "http/http.h"
#include "registry/registry.h"
#include "storage/storage.h"
#include "web/web.h"
#include "wharf_version.h" /* WHARF_COMMIT, WHARF_BUILD, WHARF_CFLAGS: written by the Makefile */

#define WHARF_VERSION "0.1.0"

static const char usage_text[] =
    "usage: wharf <command> [options]\n"
    "\n"
    "commands:\n"
    "  serve [--listen ADDR]             run the registry (creates the data directory and\n"
    "                                    the registry at the first start)\n"
    "  config check [--listen ADDR]      validate the configuration, print it in effect\n"
    "  project create|delete|list|show|set   projects and their security settings\n"
    "  allowlist show|set|add|remove     CVE allowlists (system, or --project)\n"
    "  member add|role|remove|list       project members and their roles\n"
    "  user add|passwd|set-admin|unset-admin|delete|list   users\n"
    "  robot create|list|disable|enable|delete             robot accounts\n"
    "  scan TARGET                       scan an image for vulnerabilities\n"
    "  vulndb import|status|update       the vulnerability database\n"
    "  backup DIR                        back up the registry while it runs\n"
    "  restore DIR                       restore a backup into a new data directory\n"
    "  gc [--dry-run] [--delete-untagged]\n"
    "                                    collect unreferenced blobs now, online\n"
    "  version                           version, commit and build flags (also -V, --version)\n"
    "\n"
    "Every command but version reads the configuration: the YAML file given with\n"
    "--config FILE (or WHARF_CONFIG), WHARF_* environment variables, and --data-dir DIR\n"
    "(see docs/configuration.md). `wharf COMMAND --help` shows a command's options.\n"
    "Exit status: 0 done, 1 failed, 2 usage error.\n";

static const char serve_usage[] =
    "usage: wharf serve [--listen ADDR] [--data-dir DIR] [--config FILE]\n"
    "\n"
    "Runs the registry. --listen (as 127.0.0.1:5000 or [::1]:5000) and --data-dir override\n"
    "the configuration file and the environment. Every setting is checked before anything\n"
    "is created; the first start creates the data directory, the database, the token\n"
    "signing key, the project library and the administrator admin (password from\n"
    "WHARF_ADMIN_PASSWORD, else generated and printed once). SIGTERM or SIGINT stop it.\n";

static const char config_usage[] =
    "usage: wharf config check [--listen ADDR] [--data-dir DIR] [--config FILE]\n"
    "\n"
    "Checks the configuration as `wharf serve` would (every value, the TLS files, the data\n"
    "directory) without starting anything, and prints the configuration in effect as YAML,\n"
    "each value with where it came from, secrets masked. Exit status 0 when it is valid,\n"
    "1 when not (every problem is named).\n";

static const char version_usage[] = "usage: wharf version (or wharf -V, wharf --version)\n";

/* ---- checks before anything is created ---- */

/* Prints every collected configuration problem; returns 1. */
static int print_problems(const struct wh_config *cfg, const char *cmd)
{
    const char *p = cfg->problems;
    unsigned shown = 0;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        fprintf(stderr, "%s: %.*s\n", cmd, (int)n, p);
        p += n + (nl ? 1 : 0);
        shown++;
    }
    if (shown < cfg->nproblems)
        fprintf(stderr, "%s: ... %u problems in all\n", cmd, cfg->nproblems);
    return 1;
}

/* Checks log.level and log.format and, if `apply`, puts them in force. */
static int log_settings(const struct wh_config *cfg, bool apply)
{
    enum wh_log_level lvl;
    bool json = strcmp(cfg->log_format, "json") == 0;
    if (wh_log_level_parse(&lvl, cfg->log_level) < 0) {
        fprintf(stderr, "wharf: log.level must be debug, info, warn or error, not %s\n",
                cfg->log_level);
        return -1;
    }
    if (!json && strcmp(cfg->log_format, "text") != 0) {
        fprintf(stderr, "wharf: log.format must be text or json, not %s\n", cfg->log_format);
        return -1;
    }
    if (apply) {
        wh_log_set_level(lvl);
        wh_log_set_json(json);
    }
    return 0;
}

/*
 * The data directory exists as a writable directory, or can be made: its
 * nearest existing ancestor is a writable directory.
 */
static int check_data_dir(struct wh_config *cfg)
{
    char path[sizeof(cfg->data_dir)], where[1100];
    struct stat st;
    bool exists = true;
    snprintf(path, sizeof(path), "%s", cfg->data_dir);
    wh_config_origin(where, sizeof(where), cfg, "data_dir");
    for (;;) {
        if (stat(path, &st) == 0)
            break;
        if (errno != ENOENT) {
            fprintf(stderr, "wharf: data_dir (%s): %s: %s\n", where, path, strerror(errno));
            return -1;
        }
        exists = false;
        char *slash = strrchr(path, '/');
        while (slash && slash > path && slash[1] == '\0') { /* trailing slashes */
            *slash = '\0';
            slash = strrchr(path, '/');
        }
        if (!slash)
            snprintf(path, sizeof(path), ".");
        else if (slash == path)
            path[1] = '\0'; /* "/" */
        else
            *slash = '\0';
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "wharf: data_dir (%s): %s is not a directory\n", where, path);
        return -1;
    }
    if (access(path, W_OK | X_OK) != 0) {
        fprintf(stderr, "wharf: data_dir (%s): %s %s not writable by this user%s\n", where,
                cfg->data_dir, exists ? "is" : "cannot be created:", exists ? "" : path);
        return -1;
    }
    return 0;
}

/*
 * SIGHUP: reopens the log file (after a rotation) and puts in force what
 * can change without a restart: log.level, log.format, log.file and
 * log.access. Every other key keeps the value the server started with; a
 * configuration that no longer loads changes nothing (`live` holds the
 * settings in force).
 */
static void reload(wh_http *http, struct wh_config *live)
{
    struct wh_config next;
    wh_config_defaults(&next);
    if (live->file[0])
        wh_config_load_file(&next, live->file);
    wh_config_load_env(&next);
    if (next.nproblems) {
        wh_log_error("SIGHUP: configuration not reloaded: %u problem%s (wharf config check "
                     "names them)", next.nproblems, next.nproblems == 1 ? "" : "s");
        next = *live;
    } else if (log_settings(&next, false) < 0) {
        wh_log_error("SIGHUP: configuration not reloaded: bad log.level or log.format");
        next = *live;
    }
    if (wh_log_open(next.log_file) < 0) {
        wh_log_error("SIGHUP: %s (logging where it did)", wh_error_msg());
        snprintf(next.log_file, sizeof(next.log_file), "%s", live->log_file);
    }
    log_settings(&next, true);
    wh_http_set_access_log(http, next.access_log);
    snprintf(live->log_level, sizeof(live->log_level), "%s", next.log_level);
    snprintf(live->log_format, sizeof(live->log_format), "%s", next.log_format);
    snprintf(live->log_file, sizeof(live->log_file), "%s", next.log_file);
    live->access_log = next.access_log;
    wh_log_info("SIGHUP: log reopened; log.level %s, log.format %s, log.access %s",
                next.log_level, next.log_format, next.access_log ? "on" : "off");
}

/* At the first start, WHARF_ADMIN_PASSWORD (when set) must pass the password rule. */
static int check_admin_password(const struct wh_config *cfg)
{
    const char *pw = getenv("WHARF_ADMIN_PASSWORD");
    char *db = wh_sprintf("%s/wharf.db", cfg->data_dir);
    bool first = access(db, F_OK) != 0;
    free(db);
    if (!pw || !first || wh_auth_password_policy(pw) == 0)
        return 0;
    fprintf(stderr, "wharf: WHARF_ADMIN_PASSWORD: %s\n", wh_error_msg());
    return -1;
}

/*
 * Binds the listening address once and lets it go: an address that is not
 * this host's, a port in use or a privileged port is named now, before the
 * data directory is made, rather than after.
 */
static int check_listen(const struct wh_config *cfg)
{
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons(cfg->port)};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(cfg->port)};
    bool is6 = strchr(cfg->listen_host, ':') != NULL;
    char where[1100];
    int one = 1, rc = 0;
    if (is6 ? inet_pton(AF_INET6, cfg->listen_host, &v6.sin6_addr) != 1
            : inet_pton(AF_INET, cfg->listen_host, &v4.sin_addr) != 1)
        return 0; /* config.c let nothing else through; wh_http_start would say */
    int fd = socket(is6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (is6 ? bind(fd, (struct sockaddr *)&v6, sizeof(v6)) : bind(fd, (struct sockaddr *)&v4, sizeof(v4))) {
        wh_config_origin(where, sizeof(where), cfg, "listen");
        fprintf(stderr, "wharf: listen (%s): cannot listen on %s%s%s:%u: %s\n", where,
                is6 ? "[" : "", cfg->listen_host, is6 ? "]" : "", (unsigned)cfg->port,
                strerror(errno));
        rc = -1;
    }
    close(fd);
    return rc;
}

/* --listen for serve and config check. 0, or 2 after a message. */
static int take_listen(struct wh_config *cfg, const char *cmd, int argc, char **argv,
                       const char **pos, const char *const *names)
{
    const char *listen = NULL;
    const struct wh_cli_opt opts[] = {{"--listen", 0, "ADDR", &listen, NULL, NULL, NULL}, {0}};
    if (wh_cli_parse(cmd, argc, argv, opts, pos, names, names ? 1 : 0) < 0)
        return 2;
    if (listen && wh_config_set(cfg, "listen", listen) < 0) {
        fprintf(stderr, "%s: --listen: %s\n", cmd, wh_error_msg());
        return 2;
    }
    return 0;
}

/* ---- serve ---- */

static int open_db(wh_db **db, const struct wh_config *cfg)
{
    /*
     * The data directory holds the password hashes, the token signing key
     * and every private image: what wharf creates there is its own alone
     * (directories 0700, files 0600), whatever umask it was started with.
     */
    umask(077);
    if (wh_mkdirs(cfg->data_dir, 0700) < 0) {
        fprintf(stderr, "wharf: cannot create %s: %s\n", cfg->data_dir, wh_error_msg());
        return -1;
    }
    char *path = wh_sprintf("%s/wharf.db", cfg->data_dir);
    struct stat st;
    if (access(path, F_OK) != 0) {
        /* a new registry: its directory becomes private even if it was made beforehand */
        if (chmod(cfg->data_dir, 0700) != 0)
            wh_log_warn("cannot make %s private (chmod 0700): %s", cfg->data_dir, strerror(errno));
    } else if (stat(cfg->data_dir, &st) == 0 && (st.st_mode & 077)) {
        wh_log_warn("the data directory %s is readable by other users (mode %03o); "
                    "chmod 700 it", cfg->data_dir, (unsigned)(st.st_mode & 0777));
    }
    int rc;
    if (strcmp(cfg->db_driver, "postgres") == 0) { /* the metadata elsewhere; blobs stay here */
        wh_db_pool_size_set((int)cfg->db_pool_size);
        rc = wh_db_open_driver(db, "postgres", cfg->db_dsn);
    } else {
        rc = wh_db_open(db, path);
    }
    if (rc < 0)
        fprintf(stderr, "wharf: %s\n", wh_error_msg());
    free(path);
    return rc;
}

/* Reads a whole (small) file into `out`. */
static int read_file(struct wh_buf *out, const char *path)
{
    FILE *f = fopen(path, "rb");
    char chunk[4096];
    size_t n;
    int rc = 0;
    if (!f)
        return wh_error_set(WH_ERROR, "%s: %s", path, strerror(errno));
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = wh_buf_put(out, chunk, n);
    if (ferror(f))
        rc = wh_error_set(WH_ERROR, "%s: read error", path);
    fclose(f);
    return rc;
}

/*
 * A setting refused by a check that reads more than its own value, named as
 * every bad value is (docs/configuration.md): "wharf: KEY (ORIGIN): 'VALUE': WHY";
 * `value` NULL leaves the value out, `secret` masks it.
 */
__attribute__((format(printf, 5, 6))) static void setting_refused(const struct wh_config *cfg,
                                                                  const char *key,
                                                                  const char *value, bool secret,
                                                                  const char *fmt, ...)
{
    char where[1100], why[512], shown[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    wh_config_origin(where, sizeof(where), cfg, key);
    if (!value) {
        fprintf(stderr, "wharf: %s (%s): %s\n", key, where, why);
        return;
    }
    wh_log_escape(shown, sizeof(shown), secret ? "********" : value);
    fprintf(stderr, "wharf: %s (%s): '%s': %s\n", key, where, shown, why);
}

/* The scanner settings one value cannot check alone. */
static int check_scan_settings(const struct wh_config *cfg)
{
    for (const char *p = cfg->adapter_token; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            setting_refused(cfg, "scan.adapter.token", cfg->adapter_token, true,
                            "must be printable ASCII without spaces");
            return -1;
        }
    if (cfg->adapter_enabled && strlen(cfg->adapter_token) < 16) {
        setting_refused(cfg, "scan.adapter.enabled", NULL, false,
                        "the adapter API is on: scan.adapter.token must be set to a secret of "
                        "at least 16 characters (the adapter API fetches the URLs it is given, "
                        "so it is never open to anyone)");
        return -1;
    }
    const char *u = cfg->scan_registry_url;
    if (*u && strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0) {
        setting_refused(cfg, "scan.registry_url", u, false,
                        "must be an http:// or https:// URL");
        return -1;
    }
    return 0;
}

/* The S3 settings a store of storage.driver s3 cannot do without. */
static int check_storage(const struct wh_config *cfg)
{
    if (strcmp(cfg->storage_driver, "s3") != 0)
        return 0;
    const char *e = cfg->s3_endpoint;
    if (!*e || (strncmp(e, "http://", 7) != 0 && strncmp(e, "https://", 8) != 0)) {
        setting_refused(cfg, "storage.s3.endpoint", e, false,
                        "storage.driver is s3: must be the object store's http:// or https:// "
                        "URL (no path)");
        return -1;
    }
    static const struct {
        const char *key;
        size_t off;
    } needed[] = {
        {"storage.s3.bucket", offsetof(struct wh_config, s3_bucket)},
        {"storage.s3.access_key", offsetof(struct wh_config, s3_access_key)},
        {"storage.s3.secret_key", offsetof(struct wh_config, s3_secret_key)},
    };
    for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
        if (!*((const char *)cfg + needed[i].off)) {
            setting_refused(cfg, needed[i].key, NULL, false,
                            "storage.driver is s3: this setting is needed");
            return -1;
        }
    }
    return 0;
}

/* Opens the blob store that storage.driver names. */
static int open_store(wh_store **out, const struct wh_config *cfg)
{
    if (strcmp(cfg->storage_driver, "s3") != 0)
        return wh_store_open_fs(out, cfg->data_dir);
    struct wh_store_s3_config sc = {
        .endpoint = cfg->s3_endpoint,
        .bucket = cfg->s3_bucket,
        .region = cfg->s3_region,
        .access_key = cfg->s3_access_key,
        .secret_key = cfg->s3_secret_key,
        .prefix = cfg->s3_prefix,
        .path_style = cfg->s3_path_style,
        .redirect = cfg->s3_redirect,
    };
    return wh_store_open_s3(out, &sc);
}

/*
 * log.file as `wharf serve` will open it (appending, creating it), checked
 * without creating it: the file is writable, or its directory is.
 */
/* auth.token_key names a key every node shares: it must be there, readable, before start. */
static int check_token_key(const struct wh_config *cfg)
{
    if (!cfg->token_key[0])
        return 0;
    wh_auth_keys *k = NULL;
    if (wh_auth_keys_load(&k, cfg->token_key) < 0) {
        setting_refused(cfg, "auth.token_key", NULL, false, "%s (copy one node's "
                        "DATA_DIR/token.key to every node, or make one with `openssl genpkey "
                        "-algorithm EC -pkeyopt ec_paramgen_curve:P-256`)", wh_error_msg());
        return -1;
    }
    wh_auth_keys_free(k);
    return 0;
}

static int check_log_file(const struct wh_config *cfg)
{
    const char *f = cfg->log_file;
    if (!*f)
        return 0;
    if (access(f, F_OK) == 0) {
        if (access(f, W_OK) == 0)
            return 0;
        setting_refused(cfg, "log.file", NULL, false, "%s: %s", f, strerror(errno));
        return -1;
    }
    if (errno != ENOENT) {
        setting_refused(cfg, "log.file", NULL, false, "%s: %s", f, strerror(errno));
        return -1;
    }
    char dir[sizeof(cfg->log_file)];
    snprintf(dir, sizeof(dir), "%s", f);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (access(dir, W_OK | X_OK) != 0) {
        setting_refused(cfg, "log.file", NULL, false, "%s: cannot be created: %s: %s", f, dir,
                        strerror(errno));
        return -1;
    }
    return 0;
}

/*
 * metrics.listen: /metrics on a listener of its own (plain HTTP, one
 * thread), bound now so that a busy address stops the start early.
 */
static int open_metrics_listener(wh_http **out, const struct wh_config *cfg)
{
    char host[64];
    uint16_t port = 0;
    if (wh_config_endpoint(host, &port, cfg->metrics_listen) < 0) {
        wh_log_error("metrics.listen: %s", wh_error_msg());
        return -1;
    }
    struct wh_http_config mc = {
        .listen_host = host, /* copied by wh_http_new */
        .port = port,
        .threads = 1,
        .max_connections = 64,
        .idle_timeout_s = cfg->idle_timeout_s,
        .header_timeout_s = cfg->header_timeout_s,
        .max_connections_per_ip = 0,
        .max_header_bytes = cfg->max_header_bytes,
        .access_log = false, /* a scrape every few seconds would drown the log */
    };
    *out = wh_http_new(&mc);
    if (wh_http_listen(*out) < 0) {
        wh_log_error("metrics.listen: %s", wh_error_msg());
        return -1;
    }
    return 0;
}

/*
 * The URL external scanners pull from: scan.registry_url, else the listen
 * address (a wildcard one as the loopback address).
 */
static void own_registry_url(const struct wh_config *cfg, bool tls, char *out, size_t cap)
{
    if (cfg->scan_registry_url[0]) {
        snprintf(out, cap, "%s", cfg->scan_registry_url);
        return;
    }
    const char *host = cfg->listen_host;
    bool v6 = strchr(host, ':') != NULL;
    if (strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        host = "::1";
    snprintf(out, cap, "%s://%s%s%s:%u", tls ? "https" : "http", v6 ? "[" : "", host,
             v6 ? "]" : "", (unsigned)cfg->port);
}

/* wh_db_on_scan_queued's callback: wake an idle scan worker. */
static void scan_kick(void *payload)
{
    wh_scand_kick(payload);
}

static int cmd_serve(struct wh_config *cfg, int argc, char **argv)
{
    wh_db *db = NULL;
    wh_store *store = NULL;
    wh_acl *acl = NULL;
    wh_registry *reg = NULL;
    wh_api *api = NULL;
    wh_web *web = NULL;
    wh_scand *scand = NULL;
    wh_adapter *adapter = NULL;
    struct wh_adapter_client *scan_client = NULL;
    wh_scanall *scanall = NULL;
    wh_gc *gc = NULL;
    wh_http *http = NULL, *metrics_http = NULL;
    struct wh_metrics_source metrics_src = {0};
    char *tls_cert = NULL, *tls_key = NULL;
    int rc, sig = 0, lock_fd = -1;
    sigset_t set;
    /* fault injection for the test suites (docs/testing.md) */
    const char *failpoints = getenv("WHARF_FAILPOINTS");

    if ((rc = take_listen(cfg, "wharf serve", argc, argv, NULL, NULL)) != 0) {
        fprintf(stderr, "  (`wharf serve --help` shows the usage)\n");
        return rc;
    }
    /* Everything that can be known wrong is, before the first file is made. */
    if (wh_config_check_tls(cfg) < 0 || wh_config_check_db(cfg) < 0)
        return print_problems(cfg, "wharf");
    if (check_data_dir(cfg) < 0 || check_admin_password(cfg) < 0 || check_listen(cfg) < 0 ||
        check_scan_settings(cfg) < 0 || check_log_file(cfg) < 0 || check_token_key(cfg) < 0 ||
        check_storage(cfg) < 0)
        return 1;
    rc = 1;

    /* Block the stop signals in every thread; the main thread waits for them. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP); /* reload (see reload) */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (cfg->log_file[0] && wh_log_open(cfg->log_file) < 0) {
        fprintf(stderr, "wharf: log.file: %s\n", wh_error_msg());
        goto out;
    }

    /*
     * One server per data directory: its start-up clean-ups and sweepers
     * would remove another's staged files. The lock is taken before anything
     * in the directory is touched; CLI commands do not take it.
     */
    umask(077); /* what wharf creates in its data directory is its own (see open_db) */
    if (wh_mkdirs(cfg->data_dir, 0700) < 0) {
        wh_log_error("cannot create %s: %s", cfg->data_dir, wh_error_msg());
        goto out;
    }
    char *lock_path = wh_sprintf("%s/wharf.lock", cfg->data_dir);
    long holder = 0;
    int lrc = wh_lockfile_acquire(&lock_fd, &holder, lock_path);
    if (lrc == WH_EBUSY) {
        char pid[48] = "";
        if (holder > 0)
            snprintf(pid, sizeof(pid), " (PID %ld)", holder);
        wh_log_error("data directory %s is in use by another wharf server%s: stop it first or "
                     "give this one another data directory",
                     cfg->data_dir, pid);
    } else if (lrc < 0) {
        wh_log_error("cannot lock the data directory: %s", wh_error_msg());
    }
    free(lock_path);
    if (lrc < 0)
        goto out;
    if (cfg->tls_cert[0] || cfg->tls_key[0]) {
        struct wh_buf cert, key;
        wh_buf_init(&cert, 1 << 20);
        wh_buf_init(&key, 1 << 20);
        if (read_file(&cert, cfg->tls_cert) < 0 || read_file(&key, cfg->tls_key) < 0) {
            wh_log_error("tls: %s", wh_error_msg());
            wh_buf_dispose(&cert);
            wh_buf_dispose(&key);
            goto out;
        }
        tls_cert = wh_buf_detach(&cert, NULL);
        tls_key = wh_buf_detach(&key, NULL);
    }
    struct wh_http_config hc = {
        .listen_host = cfg->listen_host,
        .port = cfg->port,
        .threads = cfg->threads,
        .max_connections = cfg->max_connections,
        .idle_timeout_s = cfg->idle_timeout_s,
        .header_timeout_s = cfg->header_timeout_s,
        .max_connections_per_ip = cfg->max_connections_per_ip,
        .max_header_bytes = cfg->max_header_bytes,
        .access_log = cfg->access_log,
        .tls_cert_pem = tls_cert,
        .tls_key_pem = tls_key,
        .trusted_proxies = cfg->trusted_proxies,
        /* password checks (argon2id) run here, never on the request threads */
        .defer_threads = cfg->login_threads,
        .defer_queue = cfg->login_queue,
    };
    http = wh_http_new(&hc);
    /* the port next: a busy one ends the start before anything but the lock is touched */
    if (wh_http_listen(http) < 0) {
        wh_log_error("%s", wh_error_msg());
        goto out;
    }
    if (cfg->metrics_enabled && cfg->metrics_listen[0] &&
        open_metrics_listener(&metrics_http, cfg) < 0)
        goto out;
    if (failpoints && *failpoints) {
        if (wh_failpoint_set(failpoints) < 0) {
            wh_log_error("WHARF_FAILPOINTS: %s", wh_error_msg());
            goto out;
        }
        wh_log_warn("fault injection is armed (WHARF_FAILPOINTS=%s): this server will fail "
                    "writes on purpose",
                    failpoints);
    }
    /* the store first: on a full disk it frees its reserve, which SQLite's WAL may need */
    if (open_store(&store, cfg) < 0) {
        wh_log_error("storage (%s): %s", cfg->storage_driver, wh_error_msg());
        goto out;
    }
    if (strcmp(cfg->storage_driver, "s3") == 0)
        wh_log_info("storage: blobs in bucket %s at %s%s%s%s", cfg->s3_bucket, cfg->s3_endpoint,
                    cfg->s3_prefix[0] ? " under " : "", cfg->s3_prefix,
                    cfg->s3_redirect ? "; blob downloads redirected to presigned URLs" : "");
    if (open_db(&db, cfg) < 0)
        goto out;
    /* garbage collection: the grace delay of new reviews, and a blob row recorded only
     * while its bytes are in storage (a collection may have just deleted them) */
    if (wh_db_gc_set_delay(db, (int64_t)cfg->gc_review_delay_s * 1000) < 0) {
        wh_log_error("gc: %s", wh_error_msg());
        goto out;
    }
    wh_db_on_blob_recorded(db, wh_gc_blob_present, store);
    struct wh_registry_config rc_cfg = {
        .max_manifest_bytes = cfg->max_manifest_bytes,
        .max_blob_bytes = cfg->max_blob_bytes,
        .max_uploads = cfg->max_uploads,
        .max_uploads_per_user = cfg->max_uploads_per_user,
        .max_uploads_per_project = cfg->max_uploads_per_project,
        .upload_ttl_s = cfg->upload_ttl_s,
        .upload_idle_ttl_s = cfg->upload_idle_ttl_s,
        .read_only = cfg->read_only,
        .delete_enabled = cfg->delete_enabled,
    };
    struct wh_acl_config acl_cfg = {.data_dir = cfg->data_dir,
                                    .token_key = cfg->token_key,
                                    .token_ttl_s = cfg->token_ttl_s,
                                    .refresh_ttl_s = cfg->refresh_ttl_s,
                                    .audit_retention_days = cfg->audit_retention_days};
    if (wh_acl_new(&acl, db, &acl_cfg) < 0) {
        wh_log_error("access control: %s", wh_error_msg());
        goto out;
    }
    if (wh_registry_new(&reg, &rc_cfg, db, store, acl) < 0) {
        wh_log_error("registry: %s", wh_error_msg());
        goto out;
    }
    scan_client = wh_calloc(1, sizeof(*scan_client));
    scan_client->db = db;
    scan_client->acl = acl;
    scan_client->timeout_s = cfg->scan_external_timeout_s;
    own_registry_url(cfg, tls_cert != NULL, scan_client->registry_url,
                     sizeof(scan_client->registry_url));
    struct wh_scand_config scand_cfg = {.data_dir = cfg->data_dir,
                                        .workers = cfg->scan_workers,
                                        .update_interval_s = cfg->scan_db_update_interval_s,
                                        .delegate = wh_adapter_delegate,
                                        .delegate_payload = scan_client};
    /* this node in the scan queue's leases: the same across its restarts, its own among
     * the nodes sharing a database (hosts, or processes of one host on other ports) */
    char host[256] = "", node[400];
    if (gethostname(host, sizeof(host) - 1) != 0)
        snprintf(host, sizeof(host), "localhost");
    snprintf(node, sizeof(node), "%s:[%s]:%u", host, cfg->listen_host, (unsigned)cfg->port);
    wh_db_set_node(db, node);
    wh_db_set_scan_lease(db, (int64_t)cfg->scan_lease_s * 1000);
    wh_db_set_scan_retry(db, cfg->scan_max_attempts, (int64_t)cfg->scan_retry_delay_s * 1000);
    if (wh_scand_start(&scand, &scand_cfg, db, store) < 0) {
        wh_log_error("scan: %s", wh_error_msg());
        goto out;
    }
    struct wh_adapter_config adapter_cfg = {.enabled = cfg->adapter_enabled,
                                            .token = cfg->adapter_token,
                                            .max_concurrent = cfg->adapter_max_concurrent,
                                            .max_image_bytes = cfg->adapter_max_image_bytes,
                                            .timeout_s = cfg->adapter_timeout_s,
                                            .data_dir = cfg->data_dir};
    if (wh_adapter_new(&adapter, &adapter_cfg) < 0) {
        wh_log_error("scanner adapter: %s", wh_error_msg());
        goto out;
    }
    if (wh_scanall_start(&scanall, db, scand) < 0) {
        wh_log_error("scan all: %s", wh_error_msg());
        goto out;
    }
    if (wh_gc_start(&gc, db, store) < 0) {
        wh_log_error("gc: %s", wh_error_msg());
        goto out;
    }
    /* a push into an auto_scan project wakes a worker once its job is committed */
    wh_db_on_scan_queued(db, scan_kick, scand);
    struct wh_api_config api_cfg = {.version = WHARF_VERSION,
                                    .adapter = adapter,
                                    .scanner_timeout_s = 10,
                                    .read_only = cfg->read_only,
                                    .deletes_disabled = !cfg->delete_enabled,
                                    .scand = scand,
                                    .scanall = scanall,
                                    .gc = gc};
    if (wh_api_new(&api, db, store, acl, &api_cfg) < 0) {
        wh_log_error("api: %s", wh_error_msg());
        goto out;
    }
    wh_http_route(http, "/v2/", wh_registry_handle, reg);
    wh_http_route(http, "/service/token", wh_registry_token_handle, reg);
    wh_http_route(http, "/api/v2.0/", wh_api_handle, api);
    /* what each protocol puts on every answer, the HTTP layer's own errors included */
    wh_http_defaults(http, "/v2/", &wh_registry_http_defaults);
    wh_http_defaults(http, "/service/token", &wh_registry_http_defaults);
    wh_http_defaults(http, "/api/", &wh_api_http_defaults);
    wh_http_route(http, "/api/v1/", wh_api_v1_handle, adapter);
    /* the portal: its pages, files and sign-in; any other path answers 404 */
    wh_web_new(&web, acl);
    wh_http_route(http, "/", wh_web_handle, web);
    metrics_src = (struct wh_metrics_source){.http = http, .db = db, .store = store};
    if (cfg->metrics_enabled)
        wh_http_route(metrics_http ? metrics_http : http, "/metrics", wh_api_metrics_handle,
                      &metrics_src);
    if (wh_http_start(http) < 0 || (metrics_http && wh_http_start(metrics_http) < 0)) {
        wh_log_error("%s", wh_error_msg());
        goto out;
    }
    if (metrics_http)
        wh_log_info("metrics on http://%s/metrics", cfg->metrics_listen);
    wh_log_info("wharf %s listening on %s://%s:%u, data in %s", WHARF_VERSION,
                tls_cert ? "https" : "http", cfg->listen_host, (unsigned)wh_http_port(http),
                cfg->data_dir);
    struct wh_config live = *cfg;
    while (sigwait(&set, &sig) == 0 && sig == SIGHUP)
        reload(http, &live);
    wh_log_info("signal %d: finishing in-flight requests (up to %u s)", sig,
                cfg->shutdown_grace_s);
    if (metrics_http)
        wh_http_stop(metrics_http, 0);
    wh_http_stop(http, (int)cfg->shutdown_grace_s * 1000);
    rc = 0;
out:
    wh_http_free(metrics_http);
    wh_http_free(http);
    if (scan_client) /* a job handed to an external scanner stops waiting for it */
        __atomic_store_n(&scan_client->stop, 1, __ATOMIC_RELAXED);
    wh_scanall_stop(scanall);
    wh_gc_stop(gc);
    if (db)
        wh_db_on_blob_recorded(db, NULL, NULL);
    if (db)
        wh_db_on_scan_queued(db, NULL, NULL);
    wh_scand_stop(scand);
    free(scan_client);
    wh_adapter_free(adapter);
    wh_api_free(api);
    wh_web_free(web);
    wh_registry_free(reg);
    wh_acl_free(acl);
    wh_store_free(store);
    wh_db_close(db);
    wh_lockfile_release(lock_fd);
    free(tls_cert);
    if (tls_key)
        memset(tls_key, 0, strlen(tls_key));
    free(tls_key);
    if (rc == 0)
        wh_log_info("stopped");
    return rc;
}

/* ---- config check ---- */

static int cmd_config(struct wh_config *cfg, int argc, char **argv)
{
    static const char cmd[] = "wharf config check";
    if (argc < 2) {
        fprintf(stderr, "wharf config: missing subcommand (check)\n");
        return 2;
    }
    if (strcmp(argv[1], "check") != 0) {
        fprintf(stderr, "wharf config: unknown subcommand '%s' (check)\n", argv[1]);
        return 2;
    }
    if (take_listen(cfg, cmd, argc - 1, argv + 1, NULL, NULL) != 0) {
        fprintf(stderr, "  (`wharf config --help` shows the usage)\n");
        return 2;
    }
    int bad = wh_config_check_tls(cfg) < 0 || wh_config_check_db(cfg) < 0
                  ? print_problems(cfg, cmd)
                  : 0;
    if (check_data_dir(cfg) < 0 || check_admin_password(cfg) < 0 ||
        check_scan_settings(cfg) < 0 || check_log_file(cfg) < 0 || check_token_key(cfg) < 0 ||
        check_storage(cfg) < 0)
        bad = 1;
    if (bad) {
        fprintf(stderr, "%s: the configuration is not valid\n", cmd);
        return 1;
    }
    wh_config_print(cfg, stdout);
    fprintf(stderr, "%s: the configuration is valid\n", cmd);
    return 0;
}

/* ---- dispatch ---- */

static int cmd_version(struct wh_config *cfg, int argc, char **argv)
{
    (void)cfg;
    if (argc > 1) {
        fprintf(stderr, "wharf version: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    printf("wharf %s\ncommit: %s\nbuild: %s, %s, cc %s\n", WHARF_VERSION, WHARF_COMMIT,
           WHARF_BUILD, WHARF_CFLAGS, __VERSION__);
    return 0;
}

/* Adapters: the cli/ commands do not change the configuration. */
#define ADAPT(fn)                                                                                  \
    static int run_##fn(struct wh_config *cfg, int argc, char **argv)                             \
    {                                                                                              \
        return wh_cli_##fn(cfg, argc, argv);                                                       \
    }
ADAPT(project)
ADAPT(member)
ADAPT(user)
ADAPT(robot)
ADAPT(scan)
ADAPT(vulndb)
ADAPT(allowlist)
ADAPT(backup)
ADAPT(restore)
ADAPT(gc)

static const struct command {
    const char *name;
    const char *usage;
    int (*run)(struct wh_config *cfg, int argc, char **argv);
    bool config; /* reads the configuration */
} commands[] = {
    {"serve", serve_usage, cmd_serve, true},
    {"config", config_usage, cmd_config, true},
    {"project", wh_cli_project_usage, run_project, true},
    {"member", wh_cli_member_usage, run_member, true},
    {"user", wh_cli_user_usage, run_user, true},
    {"robot", wh_cli_robot_usage, run_robot, true},
    {"scan", wh_cli_scan_usage, run_scan, true},
    {"vulndb", wh_cli_vulndb_usage, run_vulndb, true},
    {"allowlist", wh_cli_allowlist_usage, run_allowlist, true},
    {"backup", wh_cli_backup_usage, run_backup, true},
    {"restore", wh_cli_restore_usage, run_restore, true},
    {"gc", wh_cli_gc_usage, run_gc, true},
    {"version", version_usage, cmd_version, false},
};

static const struct command *find_command(const char *name)
{
    if (strcmp(name, "-V") == 0 || strcmp(name, "--version") == 0)
        name = "version";
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/*
 * Takes --config FILE and --data-dir DIR (either form, anywhere before `--`)
 * out of argv: every command that reads the configuration accepts them.
 * 0, or 2 after a message.
 */
static int take_globals(int *argc, char **argv, const char **file, const char **data_dir,
                        const char *cmd)
{
    int w = 1;
    bool options = true;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i], **slot = NULL, *v = NULL;
        if (options && strcmp(a, "--") == 0)
            options = false;
        if (options && (strcmp(a, "--config") == 0 || strncmp(a, "--config=", 9) == 0))
            slot = file;
        else if (options && (strcmp(a, "--data-dir") == 0 || strncmp(a, "--data-dir=", 11) == 0))
            slot = data_dir;
        if (!slot) {
            argv[w++] = argv[i];
            continue;
        }
        const char *eq = strchr(a, '=');
        if (eq) {
            v = eq + 1;
        } else if (i + 1 < *argc) {
            v = argv[++i];
        } else {
            fprintf(stderr, "wharf %s: %s needs a value\n", cmd, a);
            return 2;
        }
        if (!*v) {
            fprintf(stderr, "wharf %s: %.*s: no value given\n", cmd,
                    (int)(eq ? (size_t)(eq - a) : strlen(a)), a);
            return 2;
        }
        *slot = v;
    }
    *argc = w;
    argv[w] = NULL;
    return 0;
}

int main(int argc, char **argv)
{
    struct wh_config cfg;
    const char *file = getenv("WHARF_CONFIG"), *data_dir = NULL;
    /*
     * Large buffers (password hashing, layer reads) always come from mmap, so
     * freeing them gives the memory back at once instead of leaving it in a
     * thread's arena; and few arenas for few threads.
     */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_ARENA_MAX, 2);
    wh_db_setup();
    if (argc < 2) {
        fputs(usage_text, stderr);
        return 2;
    }
    /* --config and --data-dir may also come before the command: wharf --config F serve */
    while (argc >= 3 && (strcmp(argv[1], "--config") == 0 || strcmp(argv[1], "--data-dir") == 0 ||
                         strncmp(argv[1], "--config=", 9) == 0 ||
                         strncmp(argv[1], "--data-dir=", 11) == 0)) {
        const char **slot = argv[1][2] == 'c' ? &file : &data_dir;
        const char *eq = strchr(argv[1], '=');
        int used = eq ? 1 : 2;
        *slot = eq ? eq + 1 : argv[2];
        argv[used] = argv[0];
        argv += used;
        argc -= used;
    }
    if (argc == 2 && (strcmp(argv[1], "--config") == 0 || strcmp(argv[1], "--data-dir") == 0)) {
        fprintf(stderr, "wharf: %s needs a value, and a command after it\n", argv[1]);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
        const struct command *c = argc > 2 ? find_command(argv[2]) : NULL;
        if (argc > 3 || (argc == 3 && !c)) {
            fprintf(stderr, "wharf help: unexpected argument '%s'\n", argv[argc == 3 ? 2 : 3]);
            return 2;
        }
        fputs(c ? c->usage : usage_text, stdout);
        return 0;
    }
    const struct command *c = find_command(name);
    if (!c) {
        fprintf(stderr, "wharf: unknown command '%s'\n  (`wharf --help` lists the commands)\n",
                name);
        return 2;
    }
    int cargc = argc - 1;
    char **cargv = argv + 1;
    if (wh_cli_wants_help(cargc, cargv)) {
        fputs(c->usage, stdout);
        return 0;
    }
    if (!c->config)
        return c->run(NULL, cargc, cargv);
    int rc = take_globals(&cargc, cargv, &file, &data_dir, c->name);
    if (rc != 0)
        return rc;
    wh_config_defaults(&cfg);
    if (file && *file)
        wh_config_load_file(&cfg, file);
    wh_config_load_env(&cfg);
    if (data_dir)
        wh_config_set(&cfg, "data_dir", data_dir);
    if (cfg.nproblems) {
        print_problems(&cfg, "wharf");
        if (strcmp(c->name, "config") == 0)
            fprintf(stderr, "wharf config check: the configuration is not valid\n");
        return 1;
    }
    wh_log_set_level(wh_config_log_level(&cfg));
    wh_log_set_json(strcmp(cfg.log_format, "json") == 0);
    return c->run(&cfg, cargc, cargv);
}
