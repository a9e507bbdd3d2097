/*
 * admin_cmd.c: what an operator does on the registry's host without the REST
 * API: projects (create with an owner, delete, list), their members and
 * roles, users (add, delete, administrator or not, password) and robot
 * accounts (create with permissions and an expiry, list, disable, delete).
 * The rules are the API's: the same project, user and robot name
 * rules, Harbor's roles and permission names, the last administrator kept.
 * Changes are written to the audit log as "cli:<login>". The server may be
 * running: SQLite serialises the writes.
 */
#include "cli/cli.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/auth.h"
#include "registry/registry.h"

#define ROBOT_PREFIX "robot$"
#define ROBOT_DEFAULT_DAYS 30 /* as POST /robots */
#define ROBOT_MAX_DAYS 36500

/* After a usage error: where the usage is. */
static int bad_usage(const char *family)
{
    fprintf(stderr, "  (`wharf %s --help` shows the usage)\n", family);
    return 2;
}

/* Dispatches `argv[1]` to one of `subs`; the usage error names it. */
struct sub {
    const char *name;
    int (*run)(const struct wh_config *cfg, int argc, char **argv);
};

static int dispatch(const char *family, const struct sub *subs, const char *list,
                    const struct wh_config *cfg, int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "wharf %s: missing subcommand (%s)\n", family, list);
        return bad_usage(family);
    }
    for (const struct sub *s = subs; s->name; s++)
        if (strcmp(argv[1], s->name) == 0)
            return s->run(cfg, argc - 1, argv + 1);
    fprintf(stderr, "wharf %s: unknown subcommand '%s' (%s)\n", family, argv[1], list);
    return bad_usage(family);
}

static void format_time(char *out, size_t cap, int64_t unix_s)
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    if (unix_s < 0)
        snprintf(out, cap, "never");
    else if (!gmtime_r(&t, &tm) || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "%" PRId64, unix_s);
}

/* Loads a project by name; prints why not. 0 or an error code. */
static int project_get(wh_db *db, const char *cmd, const char *name, struct wh_project_info *out)
{
    int error = wh_db_project_info_name(db, name, out);
    if (error == WH_ENOTFOUND)
        fprintf(stderr, "%s: project %s not found\n", cmd, name);
    else if (error < 0)
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
    return error;
}

static int user_get(wh_db *db, const char *cmd, const char *name, struct wh_user *out)
{
    int error = wh_db_user_get(db, name, out);
    if (error == WH_ENOTFOUND)
        fprintf(stderr, "%s: user %s not found\n", cmd, name);
    else if (error < 0)
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
    return error;
}

/* ================================ projects ================================ */

const char wh_cli_project_usage[] =
    "usage: wharf project create NAME [--public] [--owner USER]\n"
    "       wharf project delete NAME\n"
    "       wharf project list\n"
    "       wharf project show NAME\n"
    "       wharf project set NAME [--auto-scan on|off] [--prevent-vul on|off]\n"
    "                              [--severity critical|high|medium|low|none]\n"
    "                              [--reuse-sys-allowlist on|off]\n"
    "\n"
    "A project name is 1 to 255 characters: lower-case letters, digits and . _ - between\n"
    "them. The owner becomes the project's projectAdmin member. A project is deleted only\n"
    "when it holds no repository. show prints the security settings and the CVE\n"
    "allowlists; set changes them: --auto-scan scans each image pushed, --prevent-vul\n"
    "refuses pulls of images with a vulnerability at or above --severity (not scanned,\n"
    "or not scanned successfully, counts as refused), --reuse-sys-allowlist off makes the\n"
    "project's own allowlist apply instead of the system's (wharf allowlist).\n";

/* Harbor's checks and messages for a new project's name; 0 or -2 (printed). */
static int project_name_check(const char *cmd, const char *name)
{
    size_t n = strlen(name);
    if (n < 1 || n > 255) {
        fprintf(stderr,
                "%s: Project name %s is illegal in length. (greater than 255 or less than 1)\n",
                cmd, name);
        return -2;
    }
    if (!wh_ref_project_valid(name, n)) {
        fprintf(stderr,
                "%s: project name is not in lower case or contains illegal characters: %s\n"
                "  (lower-case letters and digits, with . _ - between them)\n",
                cmd, name);
        return -2;
    }
    return 0;
}

static int project_create(const struct wh_config *cfg, int argc, char **argv)
{
    static const char cmd[] = "wharf project create";
    const char *pos[8], *owner = NULL;
    bool public = false;
    const struct wh_cli_opt opts[] = {
        {"--public", 0, NULL, NULL, &public, NULL, NULL},
        {"--owner", 0, "USER", &owner, NULL, NULL, NULL},
        {0},
    };
    static const char *const names[] = {"NAME", NULL};
    wh_db *db = NULL;
    struct wh_user u;
    struct wh_project_info *in = NULL;
    int rc = 1, error;
    int64_t id = 0;

    if (wh_cli_parse(cmd, argc, argv, opts, pos, names, 1) < 0)
        return bad_usage("project");
    if (project_name_check(cmd, pos[0]) < 0)
        return bad_usage("project");
    if (wh_cli_registry_open(&db, cfg) < 0)
        return 1;
    in = wh_calloc(1, sizeof(*in));
    if (owner && user_get(db, cmd, owner, &u) < 0)
        goto out;
    snprintf(in->p.name, sizeof(in->p.name), "%s", pos[0]);
    in->p.public = public;
    in->storage_limit = -1;
    in->owner_id = owner ? u.id : 0;
    error = wh_db_project_insert(db, in, &id);
    if (error == 0 && owner)
        error = wh_db_member_set(db, id, u.id, WH_ROLE_PROJECT_ADMIN, NULL);
    wh_cli_audit(db, id, pos[0], "project", "create", error == 0);
    if (error < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        goto out;
    }
    printf("project %s created (%s%s%s)\n", pos[0], public ? "public" : "private",
           owner ? ", owner " : "", owner ? owner : "");
    rc = 0;
out:
    free(in);
    wh_db_close(db);
    return rc;
}

static int project_delete(const struct wh_config *cfg, int argc, char **argv)
{
    static const char cmd[] = "wharf project delete";
    const char *pos[8];
    static const char *const names[] = {"NAME", NULL};
    const struct wh_cli_opt opts[] = {{0}};
    wh_db *db = NULL;
    struct wh_project_info *p = NULL;
    int rc = 1, error;

    if (wh_cli_parse(cmd, argc, argv, opts, pos, names, 1) < 0)
        return bad_usage("project");
    if (wh_cli_registry_open(&db, cfg) < 0)
        return 1;
    p = wh_malloc(sizeof(*p));
    if (project_get(db, cmd, pos[0], p) < 0)
        goto out;
    error = wh_db_project_delete(db, p->p.id);
    wh_cli_audit(db, p->p.id, p->p.name, "project", "delete", error == 0);
    if (error == WH_ECONFLICT) {
        fprintf(stderr, "%s: project %s holds %" PRId64 " repositories: delete them first\n", cmd,
                p->p.name, p->repo_count);
        goto out;
    }
    if (error < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        goto out;
    }
    printf("project %s deleted\n", p->p.name);
    rc = 0;
out:
    free(p);
    wh_db_close(db);
    return rc;
}

static int print_project(const struct wh_project_info *p, void *payload)
{
    (void)payload;
    printf("%-40s %-8s %-20s %" PRId64 "\n", p->p.name, p->p.public ? "public" : "private",
           p->owner_name[0] ? p->owner_name : "-", p->repo_count);
    return 0;
}

static int project_list(const struct wh_config *cfg, int argc, char **argv)
{
    static const char cmd[] = "wharf project list";
    const char *pos[8];
    const struct wh_cli_opt opts[] = {{0}};
    struct wh_project_filter f = {.public = -1, .visible_user = -1};
    wh_db *db = NULL;
    int rc = 0;

    if (wh_cli_parse(cmd, argc, argv, opts, pos, NULL, 0) < 0)
        return bad_usage("project");
    if (wh_cli_registry_open(&db, cfg) < 0)
        return 1;
    printf("%-40s %-8s %-20s %s\n", "NAME", "ACCESS", "OWNER", "REPOSITORIES");
    if (wh_db_project_list(db, &f, 0, INT64_MAX, print_project, NULL, NULL) < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        rc = 1;
    }
    wh_db_close(db);
    return rc;
}

int wh_cli_project(const struct wh_config *cfg, int argc, char **argv)
{
    static const struct sub subs[] = {{"create", project_create}, {"delete", project_delete},
                                      {"list", project_list},     {"show", wh_cli_project_show},
                                      {"set", wh_cli_project_set}, {0}};
    return dispatch("project", subs, "create, delete, list, show, set", cfg, argc, argv);
}

/* ================================ members ================================ */

const char wh_cli_member_usage[] =
    "usage: wharf member add PROJECT USER ROLE\n"
    "       wharf member role PROJECT USER ROLE\n"
    "       wharf member remove PROJECT USER\n"
    "       wharf member list PROJECT\n"
    "\n"
    "ROLE is one of Harbor's project roles: projectAdmin, maintainer, developer, guest,\n"
    "limitedGuest (see docs/security.md for what each may do).\n";

/* A role by Harbor's name, case-insensitively; 0 or -2 (printed). */
static int role_parse(enum wh_role *out, const char *cmd, const char *s)
{
    for (int r = WH_ROLE_PROJECT_ADMIN; r <= WH_ROLE_LIMITED_GUEST; r++) {
        const char *n = wh_rbac_role_name((enum wh_role)r);
        if (n && strcasecmp(n, s) == 0) {
            *out = (enum wh_role)r;
            return 0;
        }
    }
    fprintf(stderr,
            "%s: ROLE '%s' is not one of projectAdmin, maintainer, developer, guest, "
            "limitedGuest\n",
            cmd, s);
    return -2;
}

struct member_find {
    const char *username;
    struct wh_member found;
    bool ok;
};

static int find_member(const struct wh_member *m, void *payload)
{
    struct member_find *f = payload;
    if (strcmp(m->username, f->username) == 0) {
        f->found = *m;
        f->ok = true;
    }
    return 0;
}

/* add (`adding`) or role change: both set a role */
static int member_set(const struct wh_config *cfg, int argc, char **argv, bool adding)
{
    const char *cmd = adding ? "wharf member add" : "wharf member role";
    const char *pos[8];
    static const char *const names[] = {"PROJECT", "USER", "ROLE", NULL};
    const struct wh_cli_opt opts[] = {{0}};
    wh_db *db = NULL;
    struct wh_project_info *p = NULL;
    struct wh_user u;
    enum wh_role role;
    int rc = 1, error;

    if (wh_cli_parse(cmd, argc, argv, opts, pos, names, 3) < 0 ||
        role_parse(&role, cmd, pos[2]) < 0)
        return bad_usage("member");
    if (wh_cli_registry_open(&db, cfg) < 0)
        return 1;
    p = wh_malloc(sizeof(*p));
    if (project_get(db, cmd, pos[0], p) < 0 || user_get(db, cmd, pos[1], &u) < 0)
        goto out;
    struct member_find f = {.username = u.username};
    if ((error = wh_db_member_list(db, p->p.id, u.username, find_member, &f)) < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        goto out;
    }
    if (adding && f.ok) {
        fprintf(stderr,
                "%s: The user %s is already a member of the project %s (as %s; change it with "
                "wharf member role)\n",
                cmd, u.username, p->p.name, wh_rbac_role_name((enum wh_role)f.found.role));
        goto out;
    }
    if (!adding && !f.ok) {
        fprintf(stderr, "%s: %s is not a member of the project %s (wharf member add)\n", cmd,
                u.username, p->p.name);
        goto out;
    }
    error = wh_db_member_set(db, p->p.id, u.id, (int)role, NULL);
    char *res = wh_sprintf("%s/%s", p->p.name, u.username);
    wh_cli_audit(db, p->p.id, res, "member", adding ? "create" : "update", error == 0);
    free(res);
    if (error < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        goto out;
    }
    printf("%s is %s of %s\n", u.username, wh_rbac_role_name(role), p->p.name);
    rc = 0;
out:
    free(p);
    wh_db_close(db);
    return rc;
}

static int member_add(const struct wh_config *cfg, int argc, char **argv)
{
    return member_set(cfg, argc, argv, true);
}

static int member_role(const struct wh_config *cfg, int argc, char **argv)
{
    return member_set(cfg, argc, argv, false);
}

static int member_remove(const struct wh_config *cfg, int argc, char **argv)
{
    static const char cmd[] = "wharf member remove";
    const char *pos[8];
    static const char *const names[] = {"PROJECT", "USER", NULL};
    const struct wh_cli_opt opts[] = {{0}};
    wh_db *db = NULL;
    struct wh_project_info *p = NULL;
    int rc = 1, error;

    if (wh_cli_parse(cmd, argc, argv, opts, pos, names, 2) < 0)
        return bad_usage("member");
    if (wh_cli_registry_open(&db, cfg) < 0)
        return 1;
    p = wh_malloc(sizeof(*p));
    if (project_get(db, cmd, pos[0], p) < 0)
        goto out;
    struct member_find f = {.username = pos[1]};
    if ((error = wh_db_member_list(db, p->p.id, pos[1], find_member, &f)) < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        goto out;
    }
    if (!f.ok) {
        fprintf(stderr, "%s: %s is not a member of the project %s\n", cmd, pos[1], p->p.name);
        goto out;
    }
    error = wh_db_member_delete(db, p->p.id, f.found.id);
    char *res = wh_sprintf("%s/%s", p->p.name, pos[1]);
    wh_cli_audit(db, p->p.id, res, "member", "delete", error == 0);
    free(res);
    if (error < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        goto out;
    }
    printf("%s is no longer a member of %s\n", pos[1], p->p.name);
    rc = 0;
out:
    free(p);
    wh_db_close(db);
    return rc;
}

static int print_member(const struct wh_member *m, void *payload)
{
    (void)payload;
    const char *role = wh_rbac_role_name((enum wh_role)m->role);
    printf("%-32s %s\n", m->username, role ? role : "?");
    return 0;
}

static int member_list(const struct wh_config *cfg, int argc, char **argv)
{
    static const char cmd[] = "wharf member list";
    const char *pos[8];
    static const char *const names[] = {"PROJECT", NULL};
    const struct wh_cli_opt opts[] = {{0}};
    wh_db *db = NULL;
    struct wh_project_info *p = NULL;
    int rc = 1;

    if (wh_cli_parse(cmd, argc, argv, opts, pos, names, 1) < 0)
        return bad_usage("member");
    if (wh_cli_registry_open(&db, cfg) < 0)
        return 1;
    p = wh_malloc(sizeof(*p));
    if (project_get(db, cmd, pos[0], p) < 0)
        goto out;
    printf("%-32s %s\n", "USER", "ROLE");
    if (wh_db_member_list(db, p->p.id, NULL, print_member, NULL) < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        goto out;
    }
    rc = 0;
out:
    free(p);
    wh_db_close(db);
    return rc;
}

int wh_cli_member(const struct wh_config *cfg, int argc, char **argv)
{
    static const struct sub subs[] = {{"add", member_add},
                                      {"role", member_role},
                                      {"remove", member_remove},
                                      {"list", member_list},
                                      {0}};
    return dispatch("member", subs, "add, role, remove, list", cfg, argc, argv);
}

/* ================================= users ================================= */

const char wh_cli_user_usage[] =
    "usage: wharf user add NAME [--admin] [--email EMAIL] [--realname TEXT]\n"
    "       wharf user passwd NAME\n"
    "       wharf user set-admin NAME\n"
    "       wharf user unset-admin NAME\n"
    "       wharf user delete NAME\n"
    "       wharf user list\n"
    "\n"
    "Passwords are read from the terminal without echo, twice; or, when standard input\n"
    "is not a terminal, as one line of it (echo 'S3cret-pass' | wharf user add alice).\n"
    "They need 8 to 128 characters with an upper-case letter, a lower-case letter and a\n"
    "digit. User names are those the REST API accepts: 1 to 255 characters, none of\n"
    ", \" ~ # % $ : / or spaces (robot$ names belong to robot accounts).\n"
    "The last system administrator can be neither deleted nor demoted.\n";

static int count_admins(const struct wh_user *u, void *payload)
{
    if (u->sysadmin)
        ++*(int64_t *)payload;
    return 0;
}

/* Refuses to leave the registry without an administrator; 0 or 1 (printed). */
static int keep_an_admin(wh_db *db, const char *cmd, const struct wh_user *u)
{
    int64_t n = 0;
    if (!u->sysadmin)
        return 0;
    if (wh_db_user_list(db, NULL, 0, INT64_MAX, count_admins, &n, NULL) < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        return 1;
    }
    if (n <= 1) {
        fprintf(stderr,
                "%s: %s is the last system administrator: make another one first "
                "(wharf user set-admin NAME)\n",
                cmd, u->username);
        return 1;
    }
    return 0;
}

/* Reads, checks and hashes a new password into u->password; 0 or 1 (printed). */
static int new_password(struct wh_user *u, const char *cmd)
{
    char pw[WH_AUTH_PASSWORD_MAX + 2];
    char what[WH_NAME_MAX + 32];
    int error;
    snprintf(what, sizeof(what), "password for %s", u->username);
    if ((error = wh_cli_read_password(pw, sizeof(pw), what, true)) == 0 &&
        (error = wh_auth_password_policy(pw)) == 0)
        error = wh_auth_password_hash(u->password, sizeof(u->password), pw);
    explicit_bzero(pw, sizeof(pw));
    if (error < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        return 1;
    }
    return 0;
}

static int user_add(const struct wh_config *cfg, int argc, char **argv)
{
    static const char cmd[] = "wharf user add";
    const char *pos[8], *email = NULL, *realname = NULL;
    bool admin = false;
    const struct wh_cli_opt opts[] = {
        {"--admin", 0, NULL, NULL, &admin, NULL, NULL},
        {"--email", 0, "EMAIL", &email, NULL, NULL, NULL},
        {"--realname", 0, "TEXT", &realname, NULL, NULL, NULL},
        {0},
    };
    static const char *const names[] = {"NAME", NULL};
    wh_db *db = NULL;
    struct wh_user u, existing;
    int rc = 1, error;

    if (wh_cli_parse(cmd, argc, argv, opts, pos, names, 1) < 0)
        return bad_usage("user");
    if (wh_auth_username_check(pos[0]) < 0) {
        fprintf(stderr, "%s: '%s': %s\n", cmd, pos[0], wh_error_msg());
        return bad_usage("user");
    }
    if (email && *email && !strchr(email, '@')) {
        fprintf(stderr, "%s: --email: '%s': email format is illegal\n", cmd, email);
        return bad_usage("user");
    }
    memset(&u, 0, sizeof(u));
    snprintf(u.username, sizeof(u.username), "%s", pos[0]);
    snprintf(u.email, sizeof(u.email), "%s", email ? email : "");
    snprintf(u.realname, sizeof(u.realname), "%s", realname ? realname : "");
    snprintf(u.comment, sizeof(u.comment), "added on the command line");
    u.sysadmin = admin;
    if (wh_cli_registry_open(&db, cfg) < 0)
        return 1;
    if (wh_db_user_get(db, u.username, &existing) == 0) {
        fprintf(stderr, "%s: username %s already exists\n", cmd, u.username);
        goto out;
    }
    if (new_password(&u, cmd) != 0)
        goto out;
    error = wh_db_user_create(db, &u, NULL);
    wh_cli_audit(db, 0, u.username, "user", "create", error == 0);
    if (error < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        goto out;
    }
    printf("user %s created%s\n", u.username, admin ? " (system administrator)" : "");
    rc = 0;
out:
    explicit_bzero(u.password, sizeof(u.password));
    wh_db_close(db);
    return rc;
}

/* The commands on one existing user: NAME and nothing else. */
static int user_one(const struct wh_config *cfg, int argc, char **argv, const char *cmd,
                    wh_db **db, struct wh_user *u)
{
    const char *pos[8];
    static const char *const names[] = {"NAME", NULL};
    const struct wh_cli_opt opts[] = {{0}};
    if (wh_cli_parse(cmd, argc, argv, opts, pos, names, 1) < 0)
        return bad_usage("user");
    if (wh_cli_registry_open(db, cfg) < 0)
        return 1;
    return user_get(*db, cmd, pos[0], u) < 0 ? 1 : 0;
}

static int user_passwd(const struct wh_config *cfg, int argc, char **argv)
{
    static const char cmd[] = "wharf user passwd";
    wh_db *db = NULL;
    struct wh_user u;
    int rc = user_one(cfg, argc, argv, cmd, &db, &u), error;
    if (rc != 0 || (rc = new_password(&u, cmd)) != 0)
        goto out;
    error = wh_db_user_set_password(db, u.id, u.password);
    wh_cli_audit(db, 0, u.username, "user", "update", error == 0);
    if (error < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        rc = 1;
        goto out;
    }
    printf("password of %s changed\n", u.username);
out:
    explicit_bzero(u.password, sizeof(u.password));
    wh_db_close(db);
    return rc;
}

static int user_admin(const struct wh_config *cfg, int argc, char **argv, bool admin)
{
    const char *cmd = admin ? "wharf user set-admin" : "wharf user unset-admin";
    wh_db *db = NULL;
    struct wh_user u;
    int rc = user_one(cfg, argc, argv, cmd, &db, &u), error;
    if (rc != 0)
        goto out;
    if (u.sysadmin == admin) {
        printf("%s is %s a system administrator\n", u.username, admin ? "already" : "not");
        goto out;
    }
    if (!admin && (rc = keep_an_admin(db, cmd, &u)) != 0)
        goto out;
    error = wh_db_user_set_sysadmin(db, u.id, admin);
    wh_cli_audit(db, 0, u.username, "user", "update", error == 0);
    if (error < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        rc = 1;
        goto out;
    }
    printf("%s is %s a system administrator\n", u.username, admin ? "now" : "no longer");
out:
    wh_db_close(db);
    return rc;
}

static int user_set_admin(const struct wh_config *cfg, int argc, char **argv)
{
    return user_admin(cfg, argc, argv, true);
}

static int user_unset_admin(const struct wh_config *cfg, int argc, char **argv)
{
    return user_admin(cfg, argc, argv, false);
}

static int user_delete(const struct wh_config *cfg, int argc, char **argv)
{
    static const char cmd[] = "wharf user delete";
    wh_db *db = NULL;
    struct wh_user u;
    int rc = user_one(cfg, argc, argv, cmd, &db, &u), error;
    if (rc != 0 || (rc = keep_an_admin(db, cmd, &u)) != 0)
        goto out;
    error = wh_db_user_delete(db, u.id);
    wh_cli_audit(db, 0, u.username, "user", "delete", error == 0);
    if (error < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        rc = 1;
        goto out;
    }
    printf("user %s deleted\n", u.username);
out:
    wh_db_close(db);
    return rc;
}

static int print_user(const struct wh_user *u, void *payload)
{
    (void)payload;
    printf("%-32s %-32s %s\n", u->username, u->email[0] ? u->email : "-",
           u->sysadmin ? "admin" : "user");
    return 0;
}

static int user_list(const struct wh_config *cfg, int argc, char **argv)
{
    static const char cmd[] = "wharf user list";
    const char *pos[8];
    const struct wh_cli_opt opts[] = {{0}};
    wh_db *db = NULL;
    int rc = 0;
    if (wh_cli_parse(cmd, argc, argv, opts, pos, NULL, 0) < 0)
        return bad_usage("user");
    if (wh_cli_registry_open(&db, cfg) < 0)
        return 1;
    printf("%-32s %-32s %s\n", "USERNAME", "EMAIL", "ROLE");
    if (wh_db_user_list(db, NULL, 0, INT64_MAX, print_user, NULL, NULL) < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        rc = 1;
    }
    wh_db_close(db);
    return rc;
}

int wh_cli_user(const struct wh_config *cfg, int argc, char **argv)
{
    static const struct sub subs[] = {{"add", user_add},
                                      {"passwd", user_passwd},
                                      {"set-admin", user_set_admin},
                                      {"unset-admin", user_unset_admin},
                                      {"delete", user_delete},
                                      {"list", user_list},
                                      {0}};
    return dispatch("user", subs, "add, passwd, set-admin, unset-admin, delete, list", cfg, argc,
                    argv);
}

/* ================================= robots ================================= */

const char wh_cli_robot_usage[] =
    "usage: wharf robot create NAME --project PROJECT --permission ACCESS [options]\n"
    "       wharf robot create NAME --system --permission NAMESPACE=ACCESS... [options]\n"
    "       wharf robot list [--project PROJECT]\n"
    "       wharf robot disable NAME\n"
    "       wharf robot enable NAME\n"
    "       wharf robot delete NAME\n"
    "\n"
    "create options:\n"
    "  --project PROJECT        a project robot, robot$PROJECT+NAME, for that project only\n"
    "  --system                 a system robot, robot$NAME, for the namespaces it is given\n"
    "  --permission [NS=]ACCESS what it may do (repeatable): ACCESS is a comma-separated list\n"
    "                           of [RESOURCE:]ACTION, RESOURCE repository when left out\n"
    "                           (pull,push  repository:pull,artifact:delete  *:*); NS is a\n"
    "                           project name or * (every project); a project robot's is its\n"
    "                           project\n"
    "  --duration DAYS          days until it expires, 1 to 36500, or never (default 30)\n"
    "  --description TEXT\n"
    "  --disabled               create it disabled\n"
    "\n"
    "NAME is lower-case letters, digits and . _ -; other commands take the full name\n"
    "(robot$team+ci; quote the $ in a shell) or the name without robot$ (team+ci).\n"
    "The secret is generated, printed once on standard output and stored only as a hash.\n";

struct perm_ctx {
    const char *cmd;
    json_t *perms; /* [{"kind":"project","namespace":NS,"access":[...]}] */
};

/* The permission entry for namespace `ns`, made when missing. */
static json_t *perm_for(json_t *perms, const char *ns)
{
    size_t i;
    json_t *p;
    json_array_foreach(perms, i, p)
    {
        if (strcmp(json_string_value(json_object_get(p, "namespace")), ns) == 0)
            return p;
    }
    p = json_pack("{s:s, s:s, s:[]}", "kind", "project", "namespace", ns, "access");
    json_array_append_new(perms, p);
    return p;
}

/* One --permission: "[NS=]ITEM,ITEM..." with ITEM "[RESOURCE:]ACTION". */
static int add_permission(const char *value, void *payload)
{
    struct perm_ctx *pc = payload;
    char *copy = wh_strdup(value), *save = NULL;
    char *eq = strchr(copy, '=');
    const char *ns = "", *list = copy;
    int rc = 0;
    if (eq) {
        *eq = '\0';
        ns = copy;
        list = eq + 1;
        if (strcmp(ns, "*") != 0 && !wh_ref_project_valid(ns, strlen(ns))) {
            fprintf(stderr, "%s: --permission: '%s' is neither a project name nor *\n", pc->cmd,
                    ns);
            rc = -1;
            goto out;
        }
    }
    json_t *access = json_object_get(perm_for(pc->perms, ns), "access");
    char *work = wh_strdup(list);
    bool any = false;
    for (char *t = strtok_r(work, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(t, ':');
        const char *res = colon ? t : "repository", *act = colon ? colon + 1 : t;
        enum wh_rbac_res r;
        enum wh_rbac_act a;
        if (colon)
            *colon = '\0';
        if (strcmp(res, "*") != 0 && wh_rbac_res_parse(&r, res) < 0) {
            fprintf(stderr, "%s: --permission: unknown resource '%s' (repository, artifact, tag, "
                            "...: Harbor's names)\n",
                    pc->cmd, res);
            rc = -1;
            break;
        }
        if (strcmp(act, "*") != 0 && wh_rbac_act_parse(&a, act) < 0) {
            fprintf(stderr, "%s: --permission: unknown action '%s' (pull, push, read, list, "
                            "create, update, delete, operate, stop, scanner-pull or *)\n",
                    pc->cmd, act);
            rc = -1;
            break;
        }
        json_array_append_new(access, json_pack("{s:s, s:s}", "resource", res, "action", act));
        any = true;
    }
    free(work);
    if (rc == 0 && !any) {
        fprintf(stderr, "%s: --permission: '%s' names no action\n", pc->cmd, value);
        rc = -1;
    }
out:
    free(copy);
    return rc;
}

static int robot_create(const struct wh_config *cfg, int argc, char **argv)
{
    static const char cmd[] = "wharf robot create";
    const char *pos[8], *project = NULL, *duration = NULL, *description = NULL;
    bool system = false, disabled = false;
    struct perm_ctx pc = {cmd, json_array()};
    const struct wh_cli_opt opts[] = {
        {"--project", 0, "PROJECT", &project, NULL, NULL, NULL},
        {"--system", 0, NULL, NULL, &system, NULL, NULL},
        {"--permission", 0, "[NS=]ACCESS", NULL, NULL, add_permission, &pc},
        {"--duration", 0, "DAYS", &duration, NULL, NULL, NULL},
        {"--description", 0, "TEXT", &description, NULL, NULL, NULL},
        {"--disabled", 0, NULL, NULL, &disabled, NULL, NULL},
        {0},
    };
    static const char *const names[] = {"NAME", NULL};
    wh_db *db = NULL;
    struct wh_project_info *p = NULL;
    struct wh_robot *r = NULL;
    char secret[WH_AUTH_SECRET_LEN + 1] = "", *ptext = NULL;
    long long days = ROBOT_DEFAULT_DAYS;
    int rc = 2, error;

    if (wh_cli_parse(cmd, argc, argv, opts, pos, names, 1) < 0)
        goto usage;
    if (strncmp(pos[0], ROBOT_PREFIX, strlen(ROBOT_PREFIX)) == 0) {
        fprintf(stderr, "%s: give the name without %s: wharf adds it\n", cmd, ROBOT_PREFIX);
        goto usage;
    }
    if (!wh_ref_project_valid(pos[0], strlen(pos[0]))) {
        fprintf(stderr,
                "%s: robot name is not in lower case or contains illegal characters: %s\n", cmd,
                pos[0]);
        goto usage;
    }
    if (!project == !system) {
        fprintf(stderr, "%s: give either --project PROJECT or --system\n", cmd);
        goto usage;
    }
    if (json_array_size(pc.perms) == 0) {
        fprintf(stderr, "%s: give at least one --permission (e.g. --permission pull,push)\n",
                cmd);
        goto usage;
    }
    if (duration) {
        uint64_t n = 0;
        /* "never", or -1 as the API spells it; else whole days (the help's words) */
        if (strcmp(duration, "never") == 0 || strcmp(duration, "-1") == 0) {
            days = -1;
        } else if (wh_parse_u64(&n, duration, strlen(duration)) < 0 || n > ROBOT_MAX_DAYS) {
            fprintf(stderr, "%s: --duration: '%s' is not a number of days from 1 to %d, or never\n",
                    cmd, duration, ROBOT_MAX_DAYS);
            goto usage;
        } else if (n == 0) {
            fprintf(stderr, "%s: --duration: 0 days would expire at once: give 1 to %d or never\n",
                    cmd, ROBOT_MAX_DAYS);
            goto usage;
        } else {
            days = (long long)n;
        }
    }
    /* a project robot has one permission, its project's; a system robot names each one */
    size_t i;
    json_t *perm;
    json_array_foreach(pc.perms, i, perm)
    {
        const char *ns = json_string_value(json_object_get(perm, "namespace"));
        if (system && !*ns) {
            fprintf(stderr, "%s: --permission: a system robot's permission names its project: "
                            "NS=ACCESS (NS a project or *)\n",
                    cmd);
            goto usage;
        }
        if (project && *ns && strcmp(ns, project) != 0) {
            fprintf(stderr, "%s: --permission: a robot of project %s has permissions in %s "
                            "only, not in %s\n",
                    cmd, project, project, ns);
            goto usage;
        }
    }
    if (project) {
        /* fold "team=pull" and "pull" into the one permission of the project */
        json_t *one = json_pack("{s:s, s:s, s:[]}", "kind", "project", "namespace", project,
                                "access");
        json_array_foreach(pc.perms, i, perm)
            json_array_extend(json_object_get(one, "access"), json_object_get(perm, "access"));
        json_decref(pc.perms);
        pc.perms = json_pack("[o]", one);
    }

    rc = 1;
    if (wh_cli_registry_open(&db, cfg) < 0)
        goto out;
    r = wh_calloc(1, sizeof(*r));
    p = wh_calloc(1, sizeof(*p));
    if (project) {
        if (project_get(db, cmd, project, p) < 0)
            goto out;
        r->project_id = p->p.id;
        snprintf(r->name, sizeof(r->name), ROBOT_PREFIX "%s+%s", project, pos[0]);
        snprintf(r->level, sizeof(r->level), "project");
    } else {
        /* every namespace named is a project (or *) */
        json_array_foreach(pc.perms, i, perm)
        {
            const char *ns = json_string_value(json_object_get(perm, "namespace"));
            if (strcmp(ns, "*") != 0 && project_get(db, cmd, ns, p) < 0)
                goto out;
        }
        snprintf(r->name, sizeof(r->name), ROBOT_PREFIX "%s", pos[0]);
        snprintf(r->level, sizeof(r->level), "system");
    }
    snprintf(r->description, sizeof(r->description), "%s", description ? description : "");
    r->disabled = disabled;
    r->duration = days;
    r->expires_at = days < 0 ? -1 : wh_now_ms() / 1000 + days * 86400;
    ptext = json_dumps(pc.perms, JSON_COMPACT);
    if (!ptext || strlen(ptext) >= sizeof(r->permissions)) {
        fprintf(stderr, "%s: the permissions are too large\n", cmd);
        goto out;
    }
    memcpy(r->permissions, ptext, strlen(ptext) + 1);
    wh_auth_secret_new(secret);
    if ((error = wh_auth_password_hash(r->secret, sizeof(r->secret), secret)) == 0)
        error = wh_db_robot_create(db, r, NULL);
    wh_cli_audit(db, r->project_id, r->name, "robot", "create", error == 0);
    if (error == WH_EEXISTS) {
        fprintf(stderr, "%s: robot account %s already exists\n", cmd, r->name);
        goto out;
    }
    if (error < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        goto out;
    }
    char when[64];
    format_time(when, sizeof(when), r->expires_at);
    printf("name: %s\nsecret: %s\nexpires: %s\n", r->name, secret, when);
    fprintf(stderr, "wharf: the secret is shown only now; a new one replaces it through the API "
                    "(PATCH /robots/ID)\n");
    rc = 0;
    goto out;
usage:
    rc = bad_usage("robot");
out:
    explicit_bzero(secret, sizeof(secret));
    free(ptext);
    json_decref(pc.perms);
    free(r);
    free(p);
    wh_db_close(db);
    return rc;
}

/* Summary of a robot's permissions: "team=pull,push *=repository:pull" (the caller frees). */
static char *perms_text(const char *json)
{
    json_t *perms = json_loads(json, 0, NULL), *perm, *acc;
    struct wh_buf b;
    size_t i, j;
    wh_buf_init(&b, WH_ROBOT_PERMS_MAX);
    json_array_foreach(perms, i, perm)
    {
        const char *ns = json_string_value(json_object_get(perm, "namespace"));
        wh_buf_printf(&b, "%s%s=", i ? " " : "", ns ? ns : "?");
        json_array_foreach(json_object_get(perm, "access"), j, acc)
        {
            const char *res = json_string_value(json_object_get(acc, "resource"));
            const char *act = json_string_value(json_object_get(acc, "action"));
            if (res && strcmp(res, "repository") == 0)
                wh_buf_printf(&b, "%s%s", j ? "," : "", act ? act : "?");
            else
                wh_buf_printf(&b, "%s%s:%s", j ? "," : "", res ? res : "?", act ? act : "?");
        }
    }
    json_decref(perms);
    return wh_buf_detach(&b, NULL);
}

static int print_robot(const struct wh_robot *r, void *payload)
{
    (void)payload;
    char when[64];
    const char *state = r->disabled ? "disabled" : "enabled";
    if (!r->disabled && r->expires_at >= 0 && r->expires_at <= wh_now_ms() / 1000)
        state = "expired";
    format_time(when, sizeof(when), r->expires_at);
    char *perms = perms_text(r->permissions);
    printf("%-40s %-8s %-9s %-21s %s\n", r->name, r->level, state, when, perms);
    free(perms);
    return 0;
}

static int print_project_robots(const struct wh_project_info *p, void *payload)
{
    return wh_db_robot_list(payload, p->p.id, 0, INT64_MAX, print_robot, NULL, NULL);
}

static int robot_list(const struct wh_config *cfg, int argc, char **argv)
{
    static const char cmd[] = "wharf robot list";
    const char *pos[8], *project = NULL;
    const struct wh_cli_opt opts[] = {{"--project", 0, "PROJECT", &project, NULL, NULL, NULL},
                                      {0}};
    struct wh_project_filter f = {.public = -1, .visible_user = -1};
    wh_db *db = NULL;
    struct wh_project_info *p = NULL;
    int rc = 1;

    if (wh_cli_parse(cmd, argc, argv, opts, pos, NULL, 0) < 0)
        return bad_usage("robot");
    if (wh_cli_registry_open(&db, cfg) < 0)
        return 1;
    p = wh_malloc(sizeof(*p));
    if (project && project_get(db, cmd, project, p) < 0)
        goto out;
    printf("%-40s %-8s %-9s %-21s %s\n", "NAME", "LEVEL", "STATE", "EXPIRES", "PERMISSIONS");
    if (project ? wh_db_robot_list(db, p->p.id, 0, INT64_MAX, print_robot, NULL, NULL) < 0
                : (wh_db_robot_list(db, 0, 0, INT64_MAX, print_robot, NULL, NULL) < 0 ||
                   wh_db_project_list(db, &f, 0, INT64_MAX, print_project_robots, db, NULL) <
                       0)) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        goto out;
    }
    rc = 0;
out:
    free(p);
    wh_db_close(db);
    return rc;
}

/* NAME, "robot$NAME" or "PROJECT+NAME" to the robot. */
static int robot_one(const struct wh_config *cfg, int argc, char **argv, const char *cmd,
                     wh_db **db, struct wh_robot *r)
{
    const char *pos[8];
    static const char *const names[] = {"NAME", NULL};
    const struct wh_cli_opt opts[] = {{0}};
    if (wh_cli_parse(cmd, argc, argv, opts, pos, names, 1) < 0)
        return bad_usage("robot");
    if (wh_cli_registry_open(db, cfg) < 0)
        return 1;
    char *full = strncmp(pos[0], ROBOT_PREFIX, strlen(ROBOT_PREFIX)) == 0
                     ? wh_strdup(pos[0])
                     : wh_sprintf(ROBOT_PREFIX "%s", pos[0]);
    int error = wh_db_robot_get(*db, full, r);
    if (error == WH_ENOTFOUND)
        fprintf(stderr, "%s: robot account %s not found\n", cmd, full);
    else if (error < 0)
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
    free(full);
    return error < 0 ? 1 : 0;
}

static int robot_enable(const struct wh_config *cfg, int argc, char **argv, bool enable)
{
    const char *cmd = enable ? "wharf robot enable" : "wharf robot disable";
    wh_db *db = NULL;
    struct wh_robot *r = wh_calloc(1, sizeof(*r));
    int rc = robot_one(cfg, argc, argv, cmd, &db, r), error;
    if (rc != 0)
        goto out;
    if (r->disabled == !enable) {
        printf("%s is already %s\n", r->name, enable ? "enabled" : "disabled");
        goto out;
    }
    r->disabled = !enable;
    error = wh_db_robot_update(db, r);
    wh_cli_audit(db, r->project_id, r->name, "robot", "update", error == 0);
    if (error < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        rc = 1;
        goto out;
    }
    printf("%s %s\n", r->name, enable ? "enabled" : "disabled");
out:
    free(r);
    wh_db_close(db);
    return rc;
}

static int robot_disable_cmd(const struct wh_config *cfg, int argc, char **argv)
{
    return robot_enable(cfg, argc, argv, false);
}

static int robot_enable_cmd(const struct wh_config *cfg, int argc, char **argv)
{
    return robot_enable(cfg, argc, argv, true);
}

static int robot_delete(const struct wh_config *cfg, int argc, char **argv)
{
    static const char cmd[] = "wharf robot delete";
    wh_db *db = NULL;
    struct wh_robot *r = wh_calloc(1, sizeof(*r));
    int rc = robot_one(cfg, argc, argv, cmd, &db, r), error;
    if (rc != 0)
        goto out;
    error = wh_db_robot_delete(db, r->id);
    wh_cli_audit(db, r->project_id, r->name, "robot", "delete", error == 0);
    if (error < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        rc = 1;
        goto out;
    }
    printf("%s deleted\n", r->name);
out:
    free(r);
    wh_db_close(db);
    return rc;
}

int wh_cli_robot(const struct wh_config *cfg, int argc, char **argv)
{
    static const struct sub subs[] = {{"create", robot_create},
                                      {"list", robot_list},
                                      {"disable", robot_disable_cmd},
                                      {"enable", robot_enable_cmd},
                                      {"delete", robot_delete},
                                      {0}};
    return dispatch("robot", subs, "create, list, disable, enable, delete", cfg, argc, argv);
}
