/*
 * cli: the subcommands of the wharf command line, apart from `serve` (main.c).
 * Each takes the effective configuration and the arguments after its name
 * (argv[0] is the command's name, "user", for messages) and returns the
 * process exit status: 0 done, 1 failed (the message says why), 2 a usage
 * error (the message names the argument). Nothing here creates a data
 * directory or a registry: only `wharf serve` does (wh_cli_registry_open).
 */
#ifndef WH_CLI_H
#define WH_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "db/db.h"

/* ---- the commands (admin_cmd.c, scan_cmd.c) ---- */

/* `wharf project create|delete|list`. */
int wh_cli_project(const struct wh_config *cfg, int argc, char **argv);
/* `wharf project set NAME --auto-scan|--prevent-vul|--severity|--reuse-sys-allowlist ...`
 * (security_cmd.c; dispatched by wh_cli_project). */
int wh_cli_project_set(const struct wh_config *cfg, int argc, char **argv);
/* `wharf project show NAME`: the project, its security settings and allowlists. */
int wh_cli_project_show(const struct wh_config *cfg, int argc, char **argv);
/* `wharf allowlist show|set|add|remove [--project NAME] CVE...`: the CVE allowlists. */
int wh_cli_allowlist(const struct wh_config *cfg, int argc, char **argv);
/* `wharf member add|role|remove|list`: project members and their roles. */
int wh_cli_member(const struct wh_config *cfg, int argc, char **argv);
/* `wharf user add|delete|set-admin|unset-admin|passwd|list`. */
int wh_cli_user(const struct wh_config *cfg, int argc, char **argv);
/* `wharf robot create|list|disable|enable|delete`: robot accounts. */
int wh_cli_robot(const struct wh_config *cfg, int argc, char **argv);
/* `wharf scan [options] TARGET`: inventory an image and report its vulnerabilities. */
int wh_cli_scan(const struct wh_config *cfg, int argc, char **argv);
/* `wharf vulndb import|status|update ...`: manage the vulnerability database. */
int wh_cli_vulndb(const struct wh_config *cfg, int argc, char **argv);

/* `wharf backup DIR`: an online backup of the registry (backup_cmd.c). */
int wh_cli_backup(const struct wh_config *cfg, int argc, char **argv);
/* `wharf restore DIR`: a backup into a new or empty data directory (backup_cmd.c). */
int wh_cli_restore(const struct wh_config *cfg, int argc, char **argv);
extern const char wh_cli_backup_usage[], wh_cli_restore_usage[];

/* `wharf gc [--dry-run] [--delete-untagged]`: a garbage collection now (gc_cmd.c). */
int wh_cli_gc(const struct wh_config *cfg, int argc, char **argv);
extern const char wh_cli_gc_usage[];

/* Usage texts of the commands above (printed by --help and after usage errors). */
extern const char wh_cli_project_usage[], wh_cli_member_usage[], wh_cli_user_usage[],
    wh_cli_robot_usage[], wh_cli_scan_usage[], wh_cli_vulndb_usage[], wh_cli_allowlist_usage[];

/* ---- argument parsing (args.c) ---- */

/* One option a command accepts. */
struct wh_cli_opt {
    const char *name;     /* "--email" */
    char short_name;      /* 'v' for -v, or 0 */
    const char *metavar;  /* "EMAIL" when it takes a value, NULL for a flag */
    const char **value;   /* where the value goes (the last one given wins), or NULL */
    bool *flag;           /* set to true when a flag is given, or NULL */
    /* called for each occurrence instead of `value` (repeatable options); returns
     * 0, or non-zero after printing why the value is refused (then exit 2) */
    int (*each)(const char *value, void *payload);
    void *payload;
};

/*
 * Parses `argv[1..argc-1]` for command `cmd` ("wharf user add"): options
 * from `opts` (terminated by a zeroed entry) anywhere, as `--name value`,
 * `--name=value` or `-x`; `--` ends them. Positional arguments go to `pos`
 * in order, named by `posnames` (NULL-terminated; a name ending in "..."
 * takes the rest); fewer than `min_pos` is an error. Returns the number of
 * positionals, or -2 after printing a message naming the bad argument on
 * stderr (the caller exits 2). `pos` holds one entry per name (argc
 * entries when the last name takes the rest).
 */
int wh_cli_parse(const char *cmd, int argc, char **argv, const struct wh_cli_opt *opts,
                 const char **pos, const char *const *posnames, int min_pos);
/* Whether any argument before `--` is -h or --help. */
bool wh_cli_wants_help(int argc, char **argv);
/*
 * Parses a whole number in [lo, hi] for option `what`; prints
 * "CMD: WHAT: 'TEXT' is not a number from LO to HI" and returns -2 otherwise.
 */
int wh_cli_number(long long *out, const char *cmd, const char *what, const char *text,
                  long long lo, long long hi);
/*
 * Parses a byte count with an optional K, M, G or T suffix, at least 1; prints
 * why and returns -2 otherwise.
 */
int wh_cli_bytes(uint64_t *out, const char *cmd, const char *what, const char *text);

/* ---- shared helpers (registry.c, secret.c) ---- */

/*
 * Opens the registry in cfg->data_dir for a command. It must exist: when
 * there is no data directory, or no wharf.db in it, prints that `wharf serve`
 * creates it and returns WH_ENOTFOUND; nothing is created. 0, WH_ENOTFOUND or
 * WH_ERROR (message printed). `*out` is the caller's (wh_db_close).
 */
int wh_cli_registry_open(wh_db **out, const struct wh_config *cfg);
/*
 * Whether cfg->data_dir exists as a directory; otherwise prints, for
 * command `cmd`, that it does not and how it comes to be, and returns false.
 */
bool wh_cli_data_dir_exists(const struct wh_config *cfg, const char *cmd);
/*
 * Reads a password for `what` ("the password of alice") into `out` (`cap`
 * bytes): on a terminal, prompted on stderr and read without echo, twice
 * when `confirm` (they must match); otherwise one line of standard input,
 * its newline removed. A line that does not fit is refused, never cut.
 * Returns 0 or WH_EINVALID (message set: nothing given, too long, the two
 * differ). The caller wipes `out` (explicit_bzero) when done.
 */
int wh_cli_read_password(char *out, size_t cap, const char *what, bool confirm);
/*
 * Records an audit entry for a change made on the command line (username
 * "cli:<login>", so it cannot be mistaken for a registry user). Best effort.
 */
void wh_cli_audit(wh_db *db, int64_t project_id, const char *resource, const char *type,
                  const char *operation, bool result);

#endif
