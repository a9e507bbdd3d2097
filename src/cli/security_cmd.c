/*
 * security_cmd.c: a project's security settings and the CVE allowlists on
 * the command line: `wharf project set|show` (auto_scan, prevent_vul,
 * severity, reuse_sys_cve_allowlist) and `wharf allowlist show|set|add|remove`
 * for a project's list or the system's. The values are checked and stored as
 * the REST API stores them (policy/ validates, the db functions write the
 * same columns and setting), so the pull gate of a running server judges the
 * next pull by them: any write moves the database's data version, which the
 * gate's remembered verdicts are keyed by. Changes are audited as "cli:<login>".
 */
#include "cli/cli.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "policy/policy.h"

#define CVE_ARGS_MAX 1024 /* CVE ids on one command line */

static int usage_hint(const char *family)
{
    fprintf(stderr, "  (`wharf %s --help` shows the usage)\n", family);
    return 2;
}

static void format_time(char *out, size_t cap, int64_t unix_s)
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "%" PRId64, unix_s);
}

/* "on"/"off" (or true/false, any case) for option `what`; -2 after a message. */
static int parse_switch(bool *out, const char *cmd, const char *what, const char *v)
{
    if (strcasecmp(v, "on") == 0 || strcasecmp(v, "true") == 0) {
        *out = true;
        return 0;
    }
    if (strcasecmp(v, "off") == 0 || strcasecmp(v, "false") == 0) {
        *out = false;
        return 0;
    }
    fprintf(stderr, "%s: %s: '%s' is not on or off\n", cmd, what, v);
    return -2;
}

/* `n` decimal digits at `s` into `*out`. */
static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/*
 * An RFC 3339 time (2026-01-31T12:00:00Z, 2026-01-31T13:00:00+01:00, with
 * optional fractions of a second, which are dropped) as unix seconds, or
 * "never" (-1). -2 after a message naming the option.
 */
static int parse_expiry(int64_t *out, const char *cmd, const char *v)
{
    int Y, M, D, h, m, s, oh = 0, om = 0;
    const char *p = v;
    if (strcasecmp(v, "never") == 0) {
        *out = -1;
        return 0;
    }
    if (strlen(v) < 20 || !digits(p, 4, &Y) || p[4] != '-' || !digits(p + 5, 2, &M) ||
        p[7] != '-' || !digits(p + 8, 2, &D) || (p[10] != 'T' && p[10] != 't') ||
        !digits(p + 11, 2, &h) || p[13] != ':' || !digits(p + 14, 2, &m) || p[16] != ':' ||
        !digits(p + 17, 2, &s))
        goto bad;
    p += 19;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            goto bad;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    int sign = 0;
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        sign = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && digits(p + 1, 2, &oh) &&
               p[3] == ':' && digits(p + 4, 2, &om) && oh < 24 && om < 60) {
        sign = *p == '+' ? 1 : -1;
    } else {
        goto bad;
    }
    if (Y < 1970 || M < 1 || M > 12 || D < 1 || h > 23 || m > 59 || s > 60)
        goto bad;
    struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h,
                    .tm_min = m, .tm_sec = s > 59 ? 59 : s};
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mday != D || tm.tm_mon != M - 1) /* 31 February */
        goto bad;
    *out = (int64_t)t - sign * (int64_t)(oh * 3600 + om * 60);
    if (*out <= 0)
        goto bad;
    return 0;
bad:
    fprintf(stderr,
            "%s: --expires-at: '%s' is not an RFC 3339 time (as 2026-12-31T23:59:59Z) or never\n",
            cmd, v);
    return -2;
}

/* A project by name; prints why not. */
static int project_load(wh_db *db, const char *cmd, const char *name, struct wh_project_info *out)
{
    int error = wh_db_project_info_name(db, name, out);
    if (error == WH_ENOTFOUND)
        fprintf(stderr, "%s: project %s not found\n", cmd, name);
    else if (error < 0)
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
    return error;
}

static json_t *object_of(const char *text)
{
    json_t *o = json_loads(text ? text : "", 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        o = json_object();
    }
    return o;
}

/* A boolean metadata key as the registry reads it ("true" or "1", any case); `dflt` when absent. */
static bool meta_on(json_t *meta, const char *key, bool dflt)
{
    const char *v = json_string_value(json_object_get(meta, key));
    if (!v)
        return dflt;
    return strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0;
}

/* ============================== the allowlists ============================== */

/*
 * One list as stored: its items and expiry, printed under `title`; `note`
 * says whether it is the one the gate uses.
 */
static void print_list(const char *title, const char *text, const char *note)
{
    json_t *al = object_of(text);
    json_t *items = json_object_get(al, "items");
    json_t *exp = json_object_get(al, "expires_at");
    char when[64] = "never";
    bool expired = false;
    if (json_is_integer(exp) && json_integer_value(exp) > 0) {
        format_time(when, sizeof(when), json_integer_value(exp));
        expired = (int64_t)time(NULL) >= json_integer_value(exp);
    }
    size_t n = json_is_array(items) ? json_array_size(items) : 0;
    printf("%s%s\n", title, note ? note : "");
    printf("  expires: %s%s\n", when, expired ? " (expired: the list is ignored)" : "");
    printf("  CVEs: %zu\n", n);
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_object_get(json_array_get(items, i), "cve_id"));
        printf("    %s\n", id ? id : "?");
    }
    json_decref(al);
}

/* The system list's stored text ("{}" when never set); prints why not. */
static int system_list(wh_db *db, const char *cmd, char *out, size_t cap)
{
    int error = wh_db_setting_get(db, WH_SETTING_CVE_ALLOWLIST, out, cap);
    if (error == WH_ENOTFOUND) {
        snprintf(out, cap, "{}");
        return 0;
    }
    if (error < 0)
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
    return error;
}

/* The allowlists of a project: which applies, then both. */
static void print_project_lists(const struct wh_project_info *p, const char *system_text)
{
    json_t *meta = object_of(p->metadata);
    bool reuse = meta_on(meta, "reuse_sys_cve_allowlist", true);
    json_decref(meta);
    printf("allowlist in effect: %s\n", reuse ? "system (reuse_sys_allowlist on)"
                                                : "the project's (reuse_sys_allowlist off)");
    print_list("project allowlist", p->cve_allowlist, reuse ? " (not used)" : NULL);
    print_list("system allowlist", system_text, reuse ? NULL : " (not used)");
}

const char wh_cli_allowlist_usage[] =
    "usage: wharf allowlist show [--project NAME]\n"
    "       wharf allowlist set [--project NAME] [--expires-at TIME|never] [CVE...]\n"
    "       wharf allowlist add [--project NAME] [--expires-at TIME|never] CVE...\n"
    "       wharf allowlist remove [--project NAME] CVE...\n"
    "\n"
    "The CVE allowlist of a project (--project) or the system's (without it). The pull\n"
    "gate ignores the CVEs of the list in effect: the system's while the project's\n"
    "reuse_sys_allowlist is on (wharf project set), else the project's. set replaces the\n"
    "list (no CVE: an empty list), add and remove change it. --expires-at takes an RFC 3339\n"
    "time (2026-12-31T23:59:59Z); from then the whole list is ignored. set without it makes\n"
    "a list that never expires; add keeps the list's expiry unless given.\n";

/* The CVE ids of a command line, checked with the API's rules; -2 after a message. */
static int cve_args(json_t **out, const char *cmd, const char **ids, int n)
{
    json_t *body = json_object(), *items = json_array(), *parsed = NULL;
    char msg[256];
    json_object_set_new(body, "items", items);
    for (int i = 0; i < n; i++)
        json_array_append_new(items, json_pack("{s:s}", "cve_id", ids[i]));
    int error = wh_policy_allowlist_parse(&parsed, body, msg, sizeof(msg));
    json_decref(body);
    if (error < 0) {
        fprintf(stderr, "%s: CVE: %s\n", cmd, msg);
        json_decref(parsed);
        return -2;
    }
    *out = json_incref(json_object_get(parsed, "items"));
    json_decref(parsed);
    return 0;
}

static bool has_cve(json_t *items, const char *id)
{
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
        const char *x = json_string_value(json_object_get(it, "cve_id"));
        if (x && strcmp(x, id) == 0)
            return true;
    }
    return false;
}

enum list_op { LIST_SET, LIST_ADD, LIST_REMOVE };

static int allowlist_change(const struct wh_config *cfg, int argc, char **argv, enum list_op op)
{
    static const char *const cmds[] = {"wharf allowlist set", "wharf allowlist add",
                                       "wharf allowlist remove"};
    const char *cmd = cmds[op];
    const char **pos = wh_calloc((size_t)argc + 1, sizeof(*pos));
    const char *project = NULL, *expires = NULL;
    struct wh_cli_opt opts[] = {
        {"--project", 0, "NAME", &project, NULL, NULL, NULL},
        {"--expires-at", 0, "TIME", &expires, NULL, NULL, NULL},
        {0},
    };
    static const char *const names[] = {"CVE...", NULL};
    wh_db *db = NULL;
    struct wh_project_info *p = NULL;
    json_t *args = NULL, *cur = NULL, *items = NULL;
    char *text = NULL, *stored = NULL;
    char msg[256];
    int64_t exp = 0;
    int rc = 1, error, n;

    if (op == LIST_REMOVE)
        opts[1] = (struct wh_cli_opt){0};
    n = wh_cli_parse(cmd, argc, argv, opts, pos, names, op == LIST_SET ? 0 : 1);
    if (n > CVE_ARGS_MAX) {
        fprintf(stderr, "%s: more than %d CVEs\n", cmd, CVE_ARGS_MAX);
        n = -2;
    }
    if (n < 0 || (expires && parse_expiry(&exp, cmd, expires) < 0) ||
        cve_args(&args, cmd, pos, n) < 0) {
        rc = usage_hint("allowlist");
        goto out;
    }
    if (wh_cli_registry_open(&db, cfg) < 0)
        goto out;
    stored = wh_malloc(WH_PROJECT_META_MAX);
    if (project) {
        p = wh_malloc(sizeof(*p));
        if (project_load(db, cmd, project, p) < 0)
            goto out;
        snprintf(stored, WH_PROJECT_META_MAX, "%s", p->cve_allowlist);
    } else if (system_list(db, cmd, stored, WH_PROJECT_META_MAX) < 0) {
        goto out;
    }
    cur = object_of(stored);
    json_t *old = json_object_get(cur, "items");
    items = json_array();
    if (op == LIST_SET) {
        json_array_extend(items, args);
    } else {
        size_t i;
        json_t *it;
        if (json_is_array(old))
            json_array_extend(items, old);
        json_array_foreach(args, i, it) {
            const char *id = json_string_value(json_object_get(it, "cve_id"));
            bool there = has_cve(items, id);
            if (op == LIST_ADD && there) {
                printf("%s is already on the list\n", id);
            } else if (op == LIST_ADD) {
                json_array_append(items, it);
            } else if (!there) {
                fprintf(stderr, "%s: %s is not on the %s allowlist (nothing changed)\n", cmd, id,
                        project ? "project's" : "system");
                goto out;
            } else {
                size_t j = 0;
                while (j < json_array_size(items)) {
                    const char *x =
                        json_string_value(json_object_get(json_array_get(items, j), "cve_id"));
                    if (x && strcmp(x, id) == 0)
                        json_array_remove(items, j);
                    else
                        j++;
                }
            }
        }
    }
    /* the expiry: given, or the list's own unless the list is replaced */
    json_t *body = json_object();
    json_object_set(body, "items", items);
    json_t *oldexp = json_object_get(cur, "expires_at");
    if (expires && exp > 0)
        json_object_set_new(body, "expires_at", json_integer(exp));
    else if (!expires && op != LIST_SET && json_is_integer(oldexp))
        json_object_set(body, "expires_at", oldexp);
    error = wh_policy_allowlist_text(&text, body, msg, sizeof(msg));
    json_decref(body);
    if (error < 0) {
        fprintf(stderr, "%s: %s\n", cmd, msg);
        goto out;
    }
    if (p) {
        snprintf(p->cve_allowlist, sizeof(p->cve_allowlist), "%s", text);
        error = wh_db_project_update(db, p);
        wh_cli_audit(db, p->p.id, p->p.name, "project", "update", error == 0);
    } else {
        error = wh_db_setting_set(db, WH_SETTING_CVE_ALLOWLIST, text, wh_now_ms());
        wh_cli_audit(db, 0, "system CVE allowlist", "configuration", "update", error == 0);
    }
    if (error < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        goto out;
    }
    if (p) {
        char title[WH_NAME_MAX + 32];
        json_t *meta = object_of(p->metadata);
        bool reuse = meta_on(meta, "reuse_sys_cve_allowlist", true);
        json_decref(meta);
        snprintf(title, sizeof(title), "project %s allowlist", p->p.name);
        print_list(title, text,
                   reuse ? " (not used while the project's reuse_sys_allowlist is on)" : NULL);
    } else {
        print_list("system allowlist", text, NULL);
    }
    rc = 0;
out:
    free(text);
    free(stored);
    free(p);
    free(pos);
    json_decref(items);
    json_decref(cur);
    json_decref(args);
    wh_db_close(db);
    return rc;
}

static int allowlist_set(const struct wh_config *cfg, int argc, char **argv)
{
    return allowlist_change(cfg, argc, argv, LIST_SET);
}

static int allowlist_add(const struct wh_config *cfg, int argc, char **argv)
{
    return allowlist_change(cfg, argc, argv, LIST_ADD);
}

static int allowlist_remove(const struct wh_config *cfg, int argc, char **argv)
{
    return allowlist_change(cfg, argc, argv, LIST_REMOVE);
}

static int allowlist_show(const struct wh_config *cfg, int argc, char **argv)
{
    static const char cmd[] = "wharf allowlist show";
    const char *pos[1], *project = NULL;
    const struct wh_cli_opt opts[] = {{"--project", 0, "NAME", &project, NULL, NULL, NULL}, {0}};
    wh_db *db = NULL;
    struct wh_project_info *p = NULL;
    char *sys = NULL;
    int rc = 1;

    if (wh_cli_parse(cmd, argc, argv, opts, pos, NULL, 0) < 0)
        return usage_hint("allowlist");
    if (wh_cli_registry_open(&db, cfg) < 0)
        return 1;
    sys = wh_malloc(WH_PROJECT_META_MAX);
    if (system_list(db, cmd, sys, WH_PROJECT_META_MAX) < 0)
        goto out;
    if (project) {
        p = wh_malloc(sizeof(*p));
        if (project_load(db, cmd, project, p) < 0)
            goto out;
        printf("project: %s\n", p->p.name);
        print_project_lists(p, sys);
    } else {
        print_list("system allowlist", sys, NULL);
    }
    rc = 0;
out:
    free(sys);
    free(p);
    wh_db_close(db);
    return rc;
}

int wh_cli_allowlist(const struct wh_config *cfg, int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(const struct wh_config *cfg, int argc, char **argv);
    } subs[] = {{"show", allowlist_show},
                {"set", allowlist_set},
                {"add", allowlist_add},
                {"remove", allowlist_remove}};
    if (argc < 2) {
        fprintf(stderr, "wharf allowlist: missing subcommand (show, set, add, remove)\n");
        return usage_hint("allowlist");
    }
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
        if (strcmp(argv[1], subs[i].name) == 0)
            return subs[i].run(cfg, argc - 1, argv + 1);
    fprintf(stderr, "wharf allowlist: unknown subcommand '%s' (show, set, add, remove)\n",
            argv[1]);
    return usage_hint("allowlist");
}

/* ============================ project settings ============================ */

/* A project's settings, one per line (`project show` and `project set`). */
static void print_settings(const struct wh_project_info *p)
{
    json_t *meta = object_of(p->metadata);
    const char *sev = json_string_value(json_object_get(meta, "severity"));
    printf("project:              %s\n", p->p.name);
    printf("access:               %s\n", p->p.public ? "public" : "private");
    printf("owner:                %s\n", p->owner_name[0] ? p->owner_name : "-");
    printf("repositories:         %" PRId64 "\n", p->repo_count);
    printf("auto_scan:            %s\n", meta_on(meta, "auto_scan", false) ? "on" : "off");
    printf("prevent_vul:          %s\n", meta_on(meta, "prevent_vul", false) ? "on" : "off");
    if (sev && *sev)
        printf("severity:             %s\n", sev);
    else
        printf("severity:             (not set: any vulnerability blocks)\n");
    printf("reuse_sys_allowlist:  %s\n",
           meta_on(meta, "reuse_sys_cve_allowlist", true) ? "on" : "off");
    json_decref(meta);
}

int wh_cli_project_show(const struct wh_config *cfg, int argc, char **argv)
{
    static const char cmd[] = "wharf project show";
    const char *pos[1];
    static const char *const names[] = {"NAME", NULL};
    const struct wh_cli_opt opts[] = {{0}};
    wh_db *db = NULL;
    struct wh_project_info *p = NULL;
    char *sys = NULL;
    int rc = 1;

    if (wh_cli_parse(cmd, argc, argv, opts, pos, names, 1) < 0)
        return usage_hint("project");
    if (wh_cli_registry_open(&db, cfg) < 0)
        return 1;
    p = wh_malloc(sizeof(*p));
    sys = wh_malloc(WH_PROJECT_META_MAX);
    if (project_load(db, cmd, pos[0], p) < 0 || system_list(db, cmd, sys, WH_PROJECT_META_MAX) < 0)
        goto out;
    print_settings(p);
    print_project_lists(p, sys);
    rc = 0;
out:
    free(sys);
    free(p);
    wh_db_close(db);
    return rc;
}

int wh_cli_project_set(const struct wh_config *cfg, int argc, char **argv)
{
    static const char cmd[] = "wharf project set";
    const char *pos[1];
    const char *auto_scan = NULL, *prevent = NULL, *severity = NULL, *reuse = NULL;
    const struct wh_cli_opt opts[] = {
        {"--auto-scan", 0, "on|off", &auto_scan, NULL, NULL, NULL},
        {"--prevent-vul", 0, "on|off", &prevent, NULL, NULL, NULL},
        {"--severity", 0, "LEVEL", &severity, NULL, NULL, NULL},
        {"--reuse-sys-allowlist", 0, "on|off", &reuse, NULL, NULL, NULL},
        {0},
    };
    static const char *const names[] = {"NAME", NULL};
    struct {
        const char *opt, *key, *value;
        bool on;
    } sw[] = {{"--auto-scan", "auto_scan", NULL, false},
              {"--prevent-vul", "prevent_vul", NULL, false},
              {"--reuse-sys-allowlist", "reuse_sys_cve_allowlist", NULL, false}};
    char sev[16] = "";
    wh_db *db = NULL;
    struct wh_project_info *p = NULL;
    json_t *meta = NULL;
    char *text = NULL;
    int rc = 1, error;

    if (wh_cli_parse(cmd, argc, argv, opts, pos, names, 1) < 0)
        return usage_hint("project");
    sw[0].value = auto_scan;
    sw[1].value = prevent;
    sw[2].value = reuse;
    for (size_t i = 0; i < sizeof(sw) / sizeof(sw[0]); i++)
        if (sw[i].value && parse_switch(&sw[i].on, cmd, sw[i].opt, sw[i].value) < 0)
            return usage_hint("project");
    if (severity && wh_policy_severity_norm(sev, sizeof(sev), severity) < 0) {
        fprintf(stderr, "%s: --severity: '%s' is not one of critical, high, medium, low, none\n",
                cmd, severity);
        return usage_hint("project");
    }
    if (!auto_scan && !prevent && !severity && !reuse) {
        fprintf(stderr,
                "%s: nothing to set (--auto-scan, --prevent-vul, --severity, "
                "--reuse-sys-allowlist)\n",
                cmd);
        return usage_hint("project");
    }
    if (wh_cli_registry_open(&db, cfg) < 0)
        return 1;
    p = wh_malloc(sizeof(*p));
    if (project_load(db, cmd, pos[0], p) < 0)
        goto out;
    meta = object_of(p->metadata);
    for (size_t i = 0; i < sizeof(sw) / sizeof(sw[0]); i++)
        if (sw[i].value)
            json_object_set_new(meta, sw[i].key, json_string(sw[i].on ? "true" : "false"));
    if (severity)
        json_object_set_new(meta, "severity", json_string(sev));
    text = json_dumps(meta, JSON_COMPACT);
    if (!text || strlen(text) >= sizeof(p->metadata)) {
        fprintf(stderr, "%s: the project's metadata would exceed %zu bytes\n", cmd,
                sizeof(p->metadata) - 1);
        goto out;
    }
    snprintf(p->metadata, sizeof(p->metadata), "%s", text);
    error = wh_db_project_update(db, p);
    wh_cli_audit(db, p->p.id, p->p.name, "project", "update", error == 0);
    if (error < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        goto out;
    }
    print_settings(p);
    rc = 0;
out:
    free(text);
    json_decref(meta);
    free(p);
    wh_db_close(db);
    return rc;
}
