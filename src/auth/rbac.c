/*
 * auth/rbac: Harbor's project roles and what each may do (Harbor's
 * rbac_role.go policies), plus the extra
 * permissions a public project gives everybody. Robot policies and system-level
 * permissions other than the admin flag belong to their callers.
 * Reading of the summary where it is terse: "CRUD" means create, read,
 * update, delete and list; "scanner set" is scanner create; "artifact label
 * add/remove" is artifact-label create/delete; artifact-addition read goes with
 * artifact read for every role (public projects grant it to everybody, so a
 * member can never have less).
 */
#include <string.h>

#include "auth/auth_int.h"

#define R(role) (1u << (role))
#define ALL5                                                                      \
    (R(WH_ROLE_PROJECT_ADMIN) | R(WH_ROLE_MAINTAINER) | R(WH_ROLE_DEVELOPER) | \
     R(WH_ROLE_GUEST) | R(WH_ROLE_LIMITED_GUEST))
#define AMDG (R(WH_ROLE_PROJECT_ADMIN) | R(WH_ROLE_MAINTAINER) | R(WH_ROLE_DEVELOPER) | R(WH_ROLE_GUEST))
#define AMD (R(WH_ROLE_PROJECT_ADMIN) | R(WH_ROLE_MAINTAINER) | R(WH_ROLE_DEVELOPER))
#define AM (R(WH_ROLE_PROJECT_ADMIN) | R(WH_ROLE_MAINTAINER))
#define A (R(WH_ROLE_PROJECT_ADMIN))
#define PUBLIC (1u << 31) /* granted to anybody on a public project */

#define ACT(a) (1u << WH_RBAC_ACT_##a)
#define CRUDL (ACT(CREATE) | ACT(READ) | ACT(UPDATE) | ACT(DELETE) | ACT(LIST))

/* One line of the matrix: these actions on this resource for these roles. */
static const struct rule {
    enum wh_rbac_res res;
    unsigned acts; /* ACT() bits */
    unsigned who;  /* R() bits, PUBLIC */
} rules[] = {
    /* every role */
    {WH_RBAC_RES_REPOSITORY, ACT(PULL) | ACT(READ) | ACT(LIST), ALL5},
    {WH_RBAC_RES_ARTIFACT, ACT(READ) | ACT(LIST), ALL5},
    {WH_RBAC_RES_ARTIFACT_ADDITION, ACT(READ), ALL5},
    {WH_RBAC_RES_TAG, ACT(LIST), ALL5},
    {WH_RBAC_RES_SCAN, ACT(READ), ALL5},
    {WH_RBAC_RES_SBOM, ACT(READ), ALL5},
    {WH_RBAC_RES_SCANNER, ACT(READ), ALL5},
    {WH_RBAC_RES_ACCESSORY, ACT(LIST), ALL5},
    {WH_RBAC_RES_QUOTA, ACT(READ), ALL5},
    {WH_RBAC_RES_PROJECT, ACT(READ), ALL5},
    /* guest and up */
    {WH_RBAC_RES_MEMBER, ACT(LIST) | ACT(READ), AMDG},
    {WH_RBAC_RES_LABEL, ACT(LIST) | ACT(READ), AMDG},
    {WH_RBAC_RES_ROBOT, ACT(LIST) | ACT(READ), AMDG},
    /* developer and up */
    {WH_RBAC_RES_REPOSITORY, ACT(PUSH) | ACT(UPDATE), AMD},
    {WH_RBAC_RES_ARTIFACT, ACT(CREATE), AMD},
    {WH_RBAC_RES_TAG, ACT(CREATE), AMD},
    {WH_RBAC_RES_ARTIFACT_LABEL, ACT(CREATE) | ACT(DELETE), AMD},
    {WH_RBAC_RES_TAG_RETENTION, CRUDL | ACT(OPERATE), AMD},
    {WH_RBAC_RES_CVE_EXPORT, ACT(CREATE) | ACT(LIST) | ACT(READ), AMD},
    /* maintainer and up */
    {WH_RBAC_RES_ARTIFACT, ACT(DELETE), AM},
    {WH_RBAC_RES_REPOSITORY, ACT(DELETE), AM},
    {WH_RBAC_RES_TAG, ACT(DELETE), AM},
    {WH_RBAC_RES_SCAN, ACT(CREATE) | ACT(STOP), AM},
    {WH_RBAC_RES_SBOM, ACT(CREATE) | ACT(STOP), AM},
    {WH_RBAC_RES_IMMUTABLE_TAG, CRUDL, AM},
    {WH_RBAC_RES_LABEL, CRUDL, AM},
    {WH_RBAC_RES_METADATA, ACT(READ), AM},
    {WH_RBAC_RES_WEBHOOK, ACT(LIST) | ACT(READ), AM},
    /* project admin only */
    {WH_RBAC_RES_MEMBER, ACT(CREATE) | ACT(UPDATE) | ACT(DELETE), A},
    {WH_RBAC_RES_METADATA, ACT(CREATE) | ACT(UPDATE) | ACT(DELETE), A},
    {WH_RBAC_RES_PROJECT, ACT(UPDATE) | ACT(DELETE), A},
    {WH_RBAC_RES_ROBOT, CRUDL, A},
    {WH_RBAC_RES_WEBHOOK, CRUDL, A},
    {WH_RBAC_RES_PREHEAT_POLICY, CRUDL, A},
    {WH_RBAC_RES_SCANNER, ACT(CREATE), A},
    {WH_RBAC_RES_LOG, ACT(LIST), A},
    {WH_RBAC_RES_CONFIGURATION, ACT(UPDATE), A},
    /* public projects, for everybody including anonymous callers */
    {WH_RBAC_RES_PROJECT, ACT(READ), PUBLIC},
    {WH_RBAC_RES_LABEL, ACT(READ) | ACT(LIST), PUBLIC},
    {WH_RBAC_RES_REPOSITORY, ACT(LIST) | ACT(PULL), PUBLIC},
    {WH_RBAC_RES_SCAN, ACT(READ), PUBLIC},
    {WH_RBAC_RES_SCANNER, ACT(READ), PUBLIC},
    {WH_RBAC_RES_TAG, ACT(LIST), PUBLIC},
    {WH_RBAC_RES_ARTIFACT, ACT(READ) | ACT(LIST), PUBLIC},
    {WH_RBAC_RES_ARTIFACT_ADDITION, ACT(READ), PUBLIC},
    {WH_RBAC_RES_ACCESSORY, ACT(LIST), PUBLIC},
};

bool wh_rbac_allowed(enum wh_role role, bool project_public, bool sysadmin, bool anonymous,
                     enum wh_rbac_res res, enum wh_rbac_act act)
{
    unsigned who = 0;

    if ((unsigned)res >= WH_RBAC_RES_COUNT || (unsigned)act >= WH_RBAC_ACT_COUNT)
        return false;
    if (sysadmin && !anonymous)
        return true;
    if (!anonymous && role >= WH_ROLE_PROJECT_ADMIN && role <= WH_ROLE_LIMITED_GUEST)
        who |= R(role);
    if (project_public)
        who |= PUBLIC;
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
        if (rules[i].res == res && (rules[i].acts & (1u << act)) && (rules[i].who & who))
            return true;
    return false;
}

bool wh_rbac_policy_defined(enum wh_rbac_res res, enum wh_rbac_act act)
{
    if ((unsigned)res >= WH_RBAC_RES_COUNT || (unsigned)act >= WH_RBAC_ACT_COUNT)
        return false;
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
        if (rules[i].res == res && (rules[i].acts & (1u << act)))
            return true;
    return false;
}

unsigned wh_rbac_repo_actions(enum wh_role role, bool project_public, bool sysadmin,
                              bool anonymous)
{
    static const struct {
        enum wh_rbac_act act;
        unsigned bit;
    } map[] = {{WH_RBAC_ACT_PULL, WH_ACT_PULL},
               {WH_RBAC_ACT_PUSH, WH_ACT_PUSH},
               {WH_RBAC_ACT_DELETE, WH_ACT_DELETE},
               {WH_RBAC_ACT_SCANNER_PULL, WH_ACT_SCANNER_PULL}};
    unsigned bits = 0;

    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (wh_rbac_allowed(role, project_public, sysadmin, anonymous, WH_RBAC_RES_REPOSITORY,
                            map[i].act))
            bits |= map[i].bit;
    return bits;
}

/* ---------------------------------------------------------------- names */

static const char *const role_names[] = {
    [WH_ROLE_PROJECT_ADMIN] = "projectAdmin", [WH_ROLE_DEVELOPER] = "developer",
    [WH_ROLE_GUEST] = "guest",                [WH_ROLE_MAINTAINER] = "maintainer",
    [WH_ROLE_LIMITED_GUEST] = "limitedGuest",
};

/* Harbor's own resource names; webhooks are "notification-policy" and CVE
 * exports "export-cve" there (the parser also takes "webhook", "cve-export"). */
static const char *const res_names[WH_RBAC_RES_COUNT] = {
    [WH_RBAC_RES_PROJECT] = "project",
    [WH_RBAC_RES_METADATA] = "metadata",
    [WH_RBAC_RES_MEMBER] = "member",
    [WH_RBAC_RES_REPOSITORY] = "repository",
    [WH_RBAC_RES_ARTIFACT] = "artifact",
    [WH_RBAC_RES_TAG] = "tag",
    [WH_RBAC_RES_SCAN] = "scan",
    [WH_RBAC_RES_SBOM] = "sbom",
    [WH_RBAC_RES_ROBOT] = "robot",
    [WH_RBAC_RES_LOG] = "log",
    [WH_RBAC_RES_QUOTA] = "quota",
    [WH_RBAC_RES_LABEL] = "label",
    [WH_RBAC_RES_TAG_RETENTION] = "tag-retention",
    [WH_RBAC_RES_IMMUTABLE_TAG] = "immutable-tag",
    [WH_RBAC_RES_WEBHOOK] = "notification-policy",
    [WH_RBAC_RES_SCANNER] = "scanner",
    [WH_RBAC_RES_PREHEAT_POLICY] = "preheat-policy",
    [WH_RBAC_RES_CVE_EXPORT] = "export-cve",
    [WH_RBAC_RES_ACCESSORY] = "accessory",
    [WH_RBAC_RES_ARTIFACT_ADDITION] = "artifact-addition",
    [WH_RBAC_RES_ARTIFACT_LABEL] = "artifact-label",
    [WH_RBAC_RES_CONFIGURATION] = "configuration",
};

static const char *const act_names[WH_RBAC_ACT_COUNT] = {
    [WH_RBAC_ACT_READ] = "read",       [WH_RBAC_ACT_LIST] = "list",
    [WH_RBAC_ACT_CREATE] = "create",   [WH_RBAC_ACT_UPDATE] = "update",
    [WH_RBAC_ACT_DELETE] = "delete",   [WH_RBAC_ACT_PULL] = "pull",
    [WH_RBAC_ACT_PUSH] = "push",       [WH_RBAC_ACT_OPERATE] = "operate",
    [WH_RBAC_ACT_STOP] = "stop",       [WH_RBAC_ACT_SCANNER_PULL] = "scanner-pull",
};

const char *wh_rbac_role_name(enum wh_role role)
{
    if ((unsigned)role >= sizeof(role_names) / sizeof(role_names[0]))
        return NULL;
    return role_names[role];
}

int wh_rbac_role_parse(enum wh_role *out, const char *s)
{
    for (unsigned i = 0; i < sizeof(role_names) / sizeof(role_names[0]); i++)
        if (role_names[i] && strcmp(role_names[i], s) == 0) {
            *out = (enum wh_role)i;
            return 0;
        }
    return wh_error_set(WH_EINVALID, "unknown role");
}

const char *wh_rbac_res_name(enum wh_rbac_res res)
{
    return (unsigned)res < WH_RBAC_RES_COUNT ? res_names[res] : NULL;
}

const char *wh_rbac_act_name(enum wh_rbac_act act)
{
    return (unsigned)act < WH_RBAC_ACT_COUNT ? act_names[act] : NULL;
}

int wh_rbac_res_parse(enum wh_rbac_res *out, const char *s)
{
    for (unsigned i = 0; i < WH_RBAC_RES_COUNT; i++)
        if (strcmp(res_names[i], s) == 0) {
            *out = (enum wh_rbac_res)i;
            return 0;
        }
    if (strcmp(s, "webhook") == 0) {
        *out = WH_RBAC_RES_WEBHOOK;
        return 0;
    }
    if (strcmp(s, "cve-export") == 0) {
        *out = WH_RBAC_RES_CVE_EXPORT;
        return 0;
    }
    return wh_error_set(WH_EINVALID, "unknown resource");
}

int wh_rbac_act_parse(enum wh_rbac_act *out, const char *s)
{
    for (unsigned i = 0; i < WH_RBAC_ACT_COUNT; i++)
        if (strcmp(act_names[i], s) == 0) {
            *out = (enum wh_rbac_act)i;
            return 0;
        }
    return wh_error_set(WH_EINVALID, "unknown action");
}
