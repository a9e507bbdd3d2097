/*
 * main.c: the wharf command line. Subcommands parse their arguments here and
 * call into the modules:
 *   wharf serve [--config FILE]
 *   wharf project create NAME [--public] | project list
 *   wharf version
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acl/acl.h"
#include "api/api.h"
#include "auth/auth.h"
#include "cli/cli.h"
#include "common/common.h"
#include "config/config.h"
#include "scand/scand.h"
#include "db/db.h"
#include "http/http.h"
#include "registry/registry.h"
#include "storage/storage.h"

#define WHARF_VERSION "0.1.0"

static int usage(FILE *f)
{
    fprintf(f, "usage: wharf <command> [options]\n"
               "\n"
               "commands:\n"
               "  serve [--config FILE]             run the registry\n"
               "  project create NAME [--public]    create a project\n"
               "  project list                      list projects\n"
               "  user add NAME [--admin] [--email E] add a user (password read from stdin)\n"
               "  user passwd NAME                  set a user's password (read from stdin)\n"
               "  user list                         list users\n"
               "  scan TARGET                       scan an image for vulnerabilities (scan --help)\n"
               "  vulndb CMD                        import, update, inspect the vulnerability database\n"
               "  version                           print the version\n"
               "\n"
               "Every command reads the configuration file given with --config (or\n"
               "WHARF_CONFIG) and WHARF_* environment variables; see docs/configuration.md.\n");
    return f == stderr ? 2 : 0;
}

/* Loads the configuration: defaults, then --config/WHARF_CONFIG, then env. */
static int load_config(struct wh_config *cfg, int *argc, char **argv)
{
    const char *file = getenv("WHARF_CONFIG");
    int w = 0;
    for (int i = 0; i < *argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < *argc) {
            file = argv[++i];
            continue;
        }
        if (strncmp(argv[i], "--config=", 9) == 0) {
            file = argv[i] + 9;
            continue;
        }
        argv[w++] = argv[i];
    }
    *argc = w;
    wh_config_defaults(cfg);
    if (file && wh_config_load_file(cfg, file) < 0) {
        fprintf(stderr, "wharf: %s\n", wh_error_msg());
        return -1;
    }
    if (wh_config_load_env(cfg) < 0) {
        fprintf(stderr, "wharf: %s\n", wh_error_msg());
        return -1;
    }
    static const char *levels[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(cfg->log_level, levels[i]) == 0)
            wh_log_set_level((enum wh_log_level)i);
    return 0;
}

/* Ends the calling thread's database connection; `payload` is a `wh_db **`. */
static void db_thread_exit(void *payload)
{
    wh_db **db = payload;
    if (*db)
        wh_db_thread_done(*db);
}

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
    int rc = wh_db_open(db, path);
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

static int cmd_serve(const struct wh_config *cfg)
{
    wh_db *db = NULL;
    wh_store *store = NULL;
    wh_acl *acl = NULL;
    wh_registry *reg = NULL;
    wh_api *api = NULL;
    wh_scand *scand = NULL;
    wh_http *http = NULL;
    char *tls_cert = NULL, *tls_key = NULL;
    int rc = 1, sig = 0, lock_fd = -1;
    sigset_t set;
    /* fault injection for the test suites (docs/testing.md) */
    const char *failpoints = getenv("WHARF_FAILPOINTS");

    /* Block the stop signals in every thread; the main thread waits for them. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

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
        .thread_exit = db_thread_exit,
        .thread_exit_payload = &db, /* opened below, before the threads start */
    };
    http = wh_http_new(&hc);
    /* the port next: a busy one ends the start before anything but the lock is touched */
    if (wh_http_listen(http) < 0) {
        wh_log_error("%s", wh_error_msg());
        goto out;
    }
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
    if (wh_store_open_fs(&store, cfg->data_dir) < 0) {
        wh_log_error("storage: %s", wh_error_msg());
        goto out;
    }
    if (open_db(&db, cfg) < 0)
        goto out;
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
    struct wh_scand_config scand_cfg = {.data_dir = cfg->data_dir, .workers = cfg->scan_workers};
    if (wh_scand_start(&scand, &scand_cfg, db, store) < 0) {
        wh_log_error("scan: %s", wh_error_msg());
        goto out;
    }
    struct wh_api_config api_cfg = {.version = WHARF_VERSION, .read_only = cfg->read_only,
                                    .scand = scand};
    if (wh_api_new(&api, db, store, acl, &api_cfg) < 0) {
        wh_log_error("api: %s", wh_error_msg());
        goto out;
    }
    wh_http_route(http, "/v2/", wh_registry_handle, reg);
    wh_http_route(http, "/service/token", wh_registry_token_handle, reg);
    wh_http_route(http, "/api/v2.0/", wh_api_handle, api);
    if (wh_http_start(http) < 0) {
        wh_log_error("%s", wh_error_msg());
        goto out;
    }
    wh_log_info("wharf %s listening on %s://%s:%u, data in %s", WHARF_VERSION,
                tls_cert ? "https" : "http", cfg->listen_host, (unsigned)wh_http_port(http),
                cfg->data_dir);
    sigwait(&set, &sig);
    wh_log_info("signal %d: finishing in-flight requests (up to %u s)", sig,
                cfg->shutdown_grace_s);
    wh_http_stop(http, (int)cfg->shutdown_grace_s * 1000);
    rc = 0;
out:
    wh_http_free(http);
    wh_scand_stop(scand);
    wh_api_free(api);
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

static int print_project(const struct wh_project *p, void *payload)
{
    (void)payload;
    printf("%-40s %s\n", p->name, p->public ? "public" : "private");
    return 0;
}

static int cmd_project(const struct wh_config *cfg, int argc, char **argv)
{
    wh_db *db = NULL;
    int rc = 2;
    if (argc < 1)
        return usage(stderr);
    if (open_db(&db, cfg) < 0)
        return 1;
    if (strcmp(argv[0], "list") == 0 && argc == 1) {
        printf("%-40s %s\n", "NAME", "ACCESS");
        rc = wh_db_project_each(db, print_project, NULL) < 0 ? 1 : 0;
    } else if (strcmp(argv[0], "create") == 0 && argc >= 2) {
        const char *name = NULL;
        bool public = false;
        for (int i = 1; i < argc; i++) {
            if (strcmp(argv[i], "--public") == 0)
                public = true;
            else if (!name && argv[i][0] != '-')
                name = argv[i];
            else
                name = NULL, i = argc;
        }
        if (!name) {
            rc = usage(stderr);
        } else if (!wh_ref_project_valid(name, strlen(name))) {
            fprintf(stderr, "wharf: project name is not in lower case or contains illegal "
                            "characters: %s\n",
                    name);
            rc = 1;
        } else if (wh_db_project_create(db, name, public, NULL) < 0) {
            fprintf(stderr, "wharf: %s\n", wh_error_msg());
            rc = 1;
        } else {
            printf("project %s created (%s)\n", name, public ? "public" : "private");
            rc = 0;
        }
    } else {
        rc = usage(stderr);
    }
    wh_db_close(db);
    return rc;
}

/* Reads one line (a password) from stdin without its newline. */
static int read_secret(char *buf, size_t cap)
{
    if (!fgets(buf, (int)cap, stdin))
        return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

static int print_user(const struct wh_user *u, void *payload)
{
    (void)payload;
    printf("%-32s %-32s %s\n", u->username, u->email, u->sysadmin ? "admin" : "");
    return 0;
}

static int set_password(struct wh_user *u, const char *verb)
{
    char pw[WH_AUTH_PASSWORD_MAX + 2];
    if (isatty(STDIN_FILENO))
        fprintf(stderr, "password for %s: ", u->username);
    if (read_secret(pw, sizeof(pw)) < 0) {
        fprintf(stderr, "wharf: no password given on stdin\n");
        return -1;
    }
    int rc = wh_auth_password_policy(pw);
    if (rc == 0)
        rc = wh_auth_password_hash(u->password, sizeof(u->password), pw);
    memset(pw, 0, sizeof(pw));
    if (rc < 0)
        fprintf(stderr, "wharf: cannot %s %s: %s\n", verb, u->username, wh_error_msg());
    return rc;
}

static int cmd_user(const struct wh_config *cfg, int argc, char **argv)
{
    wh_db *db = NULL;
    struct wh_user u;
    int rc = 1;
    if (argc < 1)
        return usage(stderr);
    if (open_db(&db, cfg) < 0)
        return 1;
    memset(&u, 0, sizeof(u));
    if (strcmp(argv[0], "list") == 0 && argc == 1) {
        printf("%-32s %-32s %s\n", "USERNAME", "EMAIL", "ROLE");
        rc = wh_db_user_list(db, NULL, 0, INT64_MAX, print_user, NULL, NULL) < 0 ? 1 : 0;
    } else if (strcmp(argv[0], "add") == 0 && argc >= 2) {
        snprintf(u.username, sizeof(u.username), "%s", argv[1]);
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--admin") == 0)
                u.sysadmin = true;
            else if (strcmp(argv[i], "--email") == 0 && i + 1 < argc)
                snprintf(u.email, sizeof(u.email), "%s", argv[++i]);
            else
                goto usage;
        }
        if (!wh_ref_project_valid(u.username, strlen(u.username)) &&
            strncmp(u.username, "robot$", 6) != 0) {
            /* user names: the same characters as project names keep URLs simple */
            fprintf(stderr, "wharf: user name must be lower case letters, digits and ._-\n");
        } else if (set_password(&u, "add") == 0) {
            if (wh_db_user_create(db, &u, NULL) < 0)
                fprintf(stderr, "wharf: %s\n", wh_error_msg());
            else
                printf("user %s created%s\n", u.username, u.sysadmin ? " (administrator)" : ""), rc = 0;
        }
    } else if (strcmp(argv[0], "passwd") == 0 && argc == 2) {
        if (wh_db_user_get(db, argv[1], &u) < 0)
            fprintf(stderr, "wharf: user %s not found\n", argv[1]);
        else if (set_password(&u, "change the password of") == 0 &&
                 wh_db_user_set_password(db, u.id, u.password) == 0)
            printf("password of %s changed\n", u.username), rc = 0;
    } else {
        goto usage;
    }
    wh_db_close(db);
    return rc;
usage:
    wh_db_close(db);
    return usage(stderr);
}

int main(int argc, char **argv)
{
    struct wh_config cfg;
    /*
     * Large buffers (password hashing, layer reads) always come from mmap, so
     * freeing them gives the memory back at once instead of leaving it in a
     * thread's arena; and few arenas for few threads.
     */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_ARENA_MAX, 2);
    if (argc < 2)
        return usage(stderr);
    const char *cmd = argv[1];
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("wharf %s\n", WHARF_VERSION);
        return 0;
    }
    if (strcmp(cmd, "scan") == 0)
        return wh_cli_scan(argc - 1, argv + 1);
    if (strcmp(cmd, "vulndb") == 0)
        return wh_cli_vulndb(argc - 1, argv + 1);
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0)
        return usage(stdout);
    int rest = argc - 2;
    char **args = argv + 2;
    if (load_config(&cfg, &rest, args) < 0)
        return 2;
    if (strcmp(cmd, "serve") == 0)
        return rest == 0 ? cmd_serve(&cfg) : usage(stderr);
    if (strcmp(cmd, "project") == 0)
        return cmd_project(&cfg, rest, args);
    if (strcmp(cmd, "user") == 0)
        return cmd_user(&cfg, rest, args);
    return usage(stderr);
}
