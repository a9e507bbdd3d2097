/*
 * acl: who is calling and what they may do. Turns a request's credentials
 * (HTTP Basic for users and robot accounts, a Bearer token issued by the
 * token service) into a principal, and answers permission questions with
 * Harbor's role matrix (auth/'s RBAC): system administrators may do
 * everything; project members per their role; robots per their permission
 * list; anyone, anonymous included, may read public projects.
 *
 * Used by registry/ (the /v2/ API), api/ (the REST API) and the token
 * service, for which it also issues and redeems refresh tokens (OAuth2).
 * No HTTP inside: callers pass header values. Also creates the first
 * administrator at first start.
 */
#ifndef WH_ACL_H
#define WH_ACL_H

#include <stdbool.h>
#include <stdint.h>

#include "auth/auth.h"
#include "db/db.h"

typedef struct wh_acl wh_acl;

enum wh_principal_kind { WH_PRINCIPAL_ANONYMOUS, WH_PRINCIPAL_USER, WH_PRINCIPAL_ROBOT };

struct wh_principal {
    enum wh_principal_kind kind;
    int64_t id;                   /* user id or robot id; 0 for anonymous */
    char name[WH_NAME_MAX];       /* username, robot full name, or "anonymous" */
    bool sysadmin;                /* users only */
    bool bad_credentials;         /* credentials were sent but did not match */
    bool has_token;               /* identified by a Bearer token: `token` holds its grants */
    struct wh_token_claims token;
};

struct wh_acl_config {
    const char *data_dir;  /* where the token signing key lives */
    int64_t token_ttl_s;   /* lifetime of issued tokens (default 1800) */
    int64_t refresh_ttl_s; /* lifetime of refresh tokens (default 30 days) */
};

/*
 * Opens the access layer: loads (or creates) the token key, and creates the
 * administrator "admin" when there are no users yet — password from
 * WHARF_ADMIN_PASSWORD, else generated and printed once on stderr.
 */
int wh_acl_new(wh_acl **out, wh_db *db, const struct wh_acl_config *cfg);
void wh_acl_free(wh_acl *a);
/* The token signing keys (borrowed). */
const wh_auth_keys *wh_acl_keys(const wh_acl *a);
int64_t wh_acl_token_ttl(const wh_acl *a);

/*
 * Identifies the caller from an Authorization header value (NULL: none):
 * Basic credentials of a user or of an enabled, unexpired robot, or a Bearer
 * token of ours. Wrong credentials give an anonymous principal with
 * `bad_credentials` set, after a failed login is counted (throttling) and
 * audited. Returns 0, or WH_EBUSY while the user or address is throttled.
 */
int wh_acl_identify(wh_acl *a, const char *authorization, const char *client_ip,
                    struct wh_principal *out);
/* Checks a user name and password (the token service). 0, WH_EDENIED or WH_EBUSY. */
int wh_acl_login(wh_acl *a, const char *user, const char *password, const char *client_ip,
                 struct wh_principal *out);

/*
 * Issues a refresh token (OAuth2, for the token service) for `p`, a user or
 * robot that proved its password or secret: an ES256 JWT of the token key
 * with audience WH_AUTH_REFRESH_AUDIENCE (so it never passes as an access
 * token), subject p's name, lifetime refresh_ttl_s and a `wharf_bind` claim
 * naming the account (kind and id) and a fingerprint of its stored password
 * or secret hash. `*out` is the caller's (free()). Returns 0, WH_EINVALID
 * (anonymous, or identified by a token) or WH_ERROR.
 */
int wh_acl_refresh_issue(wh_acl *a, const struct wh_principal *p, char **out);
/*
 * Redeems a refresh token: its signature, issuer, audience and expiry (no
 * clock leeway: issuer and checker are this process) must hold, and the
 * account it is bound to must still exist under that name and id, with the
 * same password or secret (a change retires its refresh tokens); a robot
 * must be enabled and unexpired. `*out` is then that account, as if it had
 * logged in. Returns 0 or WH_EDENIED (the reason as error message).
 */
int wh_acl_refresh_redeem(wh_acl *a, const char *token, struct wh_principal *out);

/* May `p` do `act` on `res` in `project` (NULL: a system-level resource)? */
bool wh_acl_can(wh_acl *a, const struct wh_principal *p, const struct wh_project *project,
                enum wh_rbac_res res, enum wh_rbac_act act);
/*
 * The WH_ACT_* bits `p` holds on repository `repo` of `project`: from the
 * token for token callers, else from the role (or robot permissions).
 */
unsigned wh_acl_repo_actions(wh_acl *a, const struct wh_principal *p,
                             const struct wh_project *project, const char *repo);
/* The caller's role in a project (WH_ROLE_NONE when not a member). */
enum wh_role wh_acl_role(wh_acl *a, const struct wh_principal *p, int64_t project_id);

/* Records an audit entry on behalf of `p`. */
void wh_acl_audit(wh_acl *a, const struct wh_principal *p, const char *client_ip,
                  int64_t project_id, const char *resource, const char *resource_type,
                  const char *operation, bool result);

#endif
