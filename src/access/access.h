/*
 * access: who is calling and what they may do. Turns a request's
 * credentials (HTTP Basic for users and robot accounts, a Bearer token
 * issued by the token service) into a principal, and answers permission
 * questions with Harbor's role matrix (see docs/security.md): system
 * administrators may do everything; project members per their role;
 * anyone, anonymous included, may read public projects.
 *
 * Used by registry/ (the /v2/ API), api/ (the REST API) and the token
 * service. No HTTP inside: callers pass header values.
 */
#ifndef WH_ACCESS_H
#define WH_ACCESS_H

#include <stdbool.h>
#include <stdint.h>

#include "db/db.h"

typedef struct wh_access wh_access;

enum wh_principal_kind { WH_PRINCIPAL_ANONYMOUS, WH_PRINCIPAL_USER, WH_PRINCIPAL_ROBOT };

struct wh_principal {
    enum wh_principal_kind kind;
    int64_t id;              /* user id or robot id; 0 for anonymous */
    char name[WH_NAME_MAX];  /* username, robot full name, or "anonymous" */
    bool sysadmin;           /* users only */
    bool bad_credentials;    /* credentials were sent but did not match (treated as anonymous) */
};

/* Resources and actions of Harbor's permission matrix. */
enum wh_res {
    WH_RES_PROJECT, WH_RES_METADATA, WH_RES_MEMBER, WH_RES_REPOSITORY, WH_RES_ARTIFACT,
    WH_RES_TAG, WH_RES_SCAN, WH_RES_ROBOT, WH_RES_LOG, WH_RES_QUOTA, WH_RES_LABEL,
    WH_RES_ARTIFACT_ADDITION, WH_RES_ACCESSORY, WH_RES_IMMUTABLE_TAG, WH_RES_WEBHOOK,
    WH_RES_SCANNER, WH_RES_CONFIGURATION, WH_RES_USER, WH_RES_CATALOG, WH_RES_AUDIT_LOG,
    WH_RES_SBOM, WH_RES_TAG_RETENTION, WH_RES_CVE_EXPORT,
};
enum wh_do {
    WH_DO_READ, WH_DO_LIST, WH_DO_CREATE, WH_DO_UPDATE, WH_DO_DELETE, WH_DO_PULL, WH_DO_PUSH,
    WH_DO_OPERATE, WH_DO_STOP,
};

struct wh_access_config {
    const char *data_dir;    /* where the token signing key lives */
    int64_t token_ttl_s;     /* lifetime of issued tokens (default 1800) */
};

int wh_access_new(wh_access **out, wh_db *db, const struct wh_access_config *cfg);
void wh_access_free(wh_access *a);

/*
 * Identifies the caller from an Authorization header value (NULL: none).
 * Basic credentials of a user or an enabled, unexpired robot; or a Bearer
 * token from the token service. Wrong credentials yield an anonymous
 * principal with `bad_credentials` set (Harbor's API treats them so), after
 * counting a failed login for throttling and the audit log. Returns 0, or
 * WH_EBUSY when `client_ip`/the user is throttled (answer 429).
 */
int wh_access_identify(wh_access *a, const char *authorization, const char *client_ip,
                       struct wh_principal *out);

/* May `p` do `act` on `res` in project `project` (NULL for system-level resources)? */
bool wh_access_can(wh_access *a, const struct wh_principal *p, const struct wh_project *project,
                   enum wh_res res, enum wh_do act);
/* The caller's role id in a project (0 when none; robots and admins report 0). */
int wh_access_role(wh_access *a, const struct wh_principal *p, int64_t project_id);

/* Records an audit entry for `p` (resource strings as in wh_db_audit_add). */
void wh_access_audit(wh_access *a, const struct wh_principal *p, const char *client_ip,
                     int64_t project_id, const char *resource, const char *resource_type,
                     const char *operation, bool result);

#endif
