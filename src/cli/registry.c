/*
 * registry.c: what the commands share about the registry on disk. A command
 * works on the registry `wharf serve` made and never makes one itself: a
 * mistyped data_dir must not become a new, empty registry (with no
 * administrator) that the next start would serve.
 */
#include "cli/cli.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void where_hint(void)
{
    fprintf(stderr, "  (the data directory is data_dir in the configuration file, WHARF_DATA_DIR "
                    "or --data-dir; `wharf serve` creates the registry at its first start)\n");
}

bool wh_cli_data_dir_exists(const struct wh_config *cfg, const char *cmd)
{
    struct stat st;
    if (stat(cfg->data_dir, &st) != 0) {
        int e = errno;
        if (e == ENOENT)
            fprintf(stderr, "%s: there is no data directory %s\n", cmd, cfg->data_dir);
        else
            fprintf(stderr, "%s: %s: %s\n", cmd, cfg->data_dir, strerror(e));
    } else if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "%s: the data directory %s is not a directory\n", cmd, cfg->data_dir);
    } else {
        return true;
    }
    where_hint();
    return false;
}

int wh_cli_registry_open(wh_db **out, const struct wh_config *cfg)
{
    struct stat st;
    if (!wh_cli_data_dir_exists(cfg, "wharf"))
        return WH_ENOTFOUND;
    if (strcmp(cfg->db_driver, "postgres") == 0) {
        wh_db_pool_size_set((int)cfg->db_pool_size);
        int rc = wh_db_open_driver(out, "postgres", cfg->db_dsn);
        if (rc < 0)
            fprintf(stderr, "wharf: %s\n", wh_error_msg());
        return rc;
    }
    char *path = wh_sprintf("%s/wharf.db", cfg->data_dir);
    int error = 0;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) {
            fprintf(stderr, "wharf: %s holds no registry (no wharf.db)\n", cfg->data_dir);
            where_hint();
            error = WH_ENOTFOUND;
        } else {
            fprintf(stderr, "wharf: %s: %s\n", path, strerror(errno));
            error = WH_ERROR;
        }
        goto out;
    }
    /* what a command adds (the -wal and -shm files) is as private as the rest */
    umask(077);
    if ((error = wh_db_open(out, path)) < 0)
        fprintf(stderr, "wharf: %s\n", wh_error_msg());
out:
    free(path);
    return error;
}

void wh_cli_audit(wh_db *db, int64_t project_id, const char *resource, const char *type,
                  const char *operation, bool result)
{
    char who[WH_NAME_MAX];
    struct passwd *pw = getpwuid(geteuid());
    if (pw && pw->pw_name)
        snprintf(who, sizeof(who), "cli:%s", pw->pw_name);
    else
        snprintf(who, sizeof(who), "cli:%u", (unsigned)geteuid());
    struct wh_audit a = {
        .username = who,
        .resource = resource,
        .resource_type = type,
        .operation = operation,
        .description = "",
        .result = result,
        .project_id = project_id,
        .client_ip = "",
    };
    if (wh_db_audit_add(db, &a) < 0)
        fprintf(stderr, "wharf: warning: the audit log was not written: %s\n", wh_error_msg());
}
