/*
 * acl: who is calling and what they may do. Turns a request's credentials
 * (HTTP Basic for users and robot accounts, a Bearer token issued by the
 * token service — on /v2/ only) into a principal, and answers permission
 * questions with Harbor's role matrix (auth/'s RBAC): system administrators
 * may do everything; project members per their role; robots per their
 * permission list; anyone, anonymous included, may read public projects.
 * Also decides what a caller may give away (robot permissions, member roles).
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
#include "http/http.h"

typedef struct wh_acl wh_acl;

enum wh_principal_kind { WH_PRINCIPAL_ANONYMOUS, WH_PRINCIPAL_USER, WH_PRINCIPAL_ROBOT };

struct wh_principal {
    enum wh_principal_kind kind;
    int64_t id;                   /* user id or robot id; 0 for anonymous */
    char name[WH_NAME_MAX];       /* username, robot full name, or "anonymous" */
    bool sysadmin;                /* users only */
    bool bad_credentials;         /* credentials were sent but did not match */
    bool has_token;               /* identified by a Bearer token: `token` holds its grants */
    unsigned retry_after_s;       /* with WH_EBUSY: seconds until an attempt is considered */
    struct wh_token_claims token;
};

struct wh_acl_config {
    const char *data_dir; /* where the token signing key lives (unless token_key) */
    const char *token_key; /* the token signing key file shared by nodes (NULL, "": data_dir's) */
    int64_t token_ttl_s;  /* lifetime of issued tokens (default 1800) */
    int64_t audit_retention_days; /* audit rows older than this are purged (0: kept) */
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
/*
 * wh_acl_identify for a request, with any password check off the request
 * thread: Basic credentials not verified in the last minute are checked on
 * the server's deferred-work threads (wh_req_defer). Returns what
 * wh_acl_identify returns, or WH_EDEFERRED: the handler must return at once
 * and will be called again, when this returns the result. When the
 * verification queue is full it returns WH_EBUSY at once (retry_after_s 1).
 */
int wh_acl_identify_req(wh_acl *a, wh_req *r, struct wh_principal *out);
/*
 * wh_acl_login for a request (the token service's password grant), through
 * the same path as wh_acl_identify_req: 0, WH_EDENIED, WH_EBUSY or
 * WH_EDEFERRED (return, and the caller is called again).
 */
int wh_acl_login_req(wh_acl *a, wh_req *r, const char *user, const char *password,
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

/*
 * May `p` do `act` on `res` in `project` (NULL: a system-level resource)?
 * System administrators may do everything; robots what their permissions
 * list (system-level ones only with a "system" entry), plus what a public
 * project gives everybody. A caller identified by a token holds nothing here:
 * its grants are in its token (wh_acl_repo_actions).
 */
bool wh_acl_can(wh_acl *a, const struct wh_principal *p, const struct wh_project *project,
                enum wh_rbac_res res, enum wh_rbac_act act);
/*
 * Checks a robot permission list (Harbor's JSON array text) before it is
 * stored: each entry of kind "project" (namespace an existing project or "*")
 * or "system" (namespace "/", `system_robot` only), with at least one access
 * whose resource and action mean something at that level ("*" for any).
 * With `p` (NULL: no such check), `p` must also hold every permission the
 * list grants — a robot cannot be given more than its creator has (Harbor
 * checks this for robot creators; wharf for every caller: what a user holds
 * is its role, and only administrators hold "*" namespaces or system rights).
 * Returns 0; WH_EINVALID (a malformed entry) or WH_ENOTFOUND (a namespace
 * names no project) with Harbor's message; WH_EDENIED naming the first
 * permission `p` lacks.
 */
int wh_acl_robot_perms_check(wh_acl *a, const struct wh_principal *p, const char *perms,
                             bool system_robot);
/*
 * Whether `p` holds in `project` everything role `role` (1..5) may do, as a
 * caller that adds a member with that role or promotes one to it must: 0, or
 * WH_EDENIED naming the first permission it lacks.
 */
int wh_acl_role_grant_check(wh_acl *a, const struct wh_principal *p,
                            const struct wh_project *project, enum wh_role role);
/*
 * The WH_ACT_* bits `p` holds on repository `repo` of `project`: from the
 * token for token callers, else from the role (or robot permissions).
 */
unsigned wh_acl_repo_actions(wh_acl *a, const struct wh_principal *p,
                             const struct wh_project *project, const char *repo);
/*
 * Revokes the token whose `jti` claim is `jti` before its expiry `exp_s`
 * (the tokens wharf hands to external scanners, revoked when the scan
 * ends). 0; WH_EBUSY when too many revoked tokens are still unexpired (the
 * token then lasts until `exp_s`); WH_EINVALID for an empty id.
 */
int wh_acl_token_revoke(wh_acl *a, const char *jti, int64_t exp_s);
/*
 * Subject of the tokens handed to external scanners: this prefix and the
 * report id of the scan job. Such a token is accepted only while that job is
 * Running (checked in the database on each use, so a restart does not bring
 * back a token whose job ended).
 */
#define WH_ACL_SCANNER_SUBJECT "robot$scanner-"
/* Holders of a blob looked at by wh_acl_blob_source before it gives up. */
#define WH_ACL_SOURCE_SCAN_MAX 10000
/*
 * Finds a repository holding blob `digest` that `p` may pull from (the
 * source of an automatic cross-mount): those of project `prefer_project`
 * first, then public ones, then the rest, among at most
 * WH_ACL_SOURCE_SCAN_MAX holders. Copies its name into `repo_out`
 * (WH_NAME_MAX bytes) and the blob's size into `*size_out`. Returns 0,
 * WH_ENOTFOUND (no holder the caller may read) or WH_ERROR. Repositories the
 * caller cannot read are never named, whatever the answer.
 */
int wh_acl_blob_source(wh_acl *a, const struct wh_principal *p, const char *digest,
                       int64_t prefer_project, char *repo_out, uint64_t *size_out);
/* The caller's role in a project (WH_ROLE_NONE when not a member). */
enum wh_role wh_acl_role(wh_acl *a, const struct wh_principal *p, int64_t project_id);

/* Records an audit entry on behalf of `p`. */
void wh_acl_audit(wh_acl *a, const struct wh_principal *p, const char *client_ip,
                  int64_t project_id, const char *resource, const char *resource_type,
                  const char *operation, bool result);

/* ---- portal sessions (POST /c/login) ---- */

/* A session id and a CSRF token: 64 hex digits (32 random bytes) each. */
#define WH_ACL_SESSION_HEX 64
/* Sessions one user holds at once; past it the least recently used one ends. */
#define WH_ACL_SESSIONS_PER_USER 100
/* A session unused this long ends (Harbor's default session timeout). */
#define WH_ACL_SESSION_IDLE_S (60 * 60)
/* A session ends this long after the sign-in, used or not. */
#define WH_ACL_SESSION_MAX_S (12 * 60 * 60)
/* A session's last use is written at most this often (so a session ends
 * idle up to this much earlier than WH_ACL_SESSION_IDLE_S after its last use). */
#define WH_ACL_SESSION_TOUCH_S 60
/* Ended sessions and old failed-login counts are deleted this often (at a sign-in). */
#define WH_ACL_SESSION_PURGE_S 60

/*
 * Starts a session for `p` (a user that has just proved its password):
 * writes a fresh random session id and its CSRF token (WH_ACL_SESSION_HEX
 * digits + NUL each). Sessions live in the database, so every node sharing
 * it knows them and a restart ends none; only the SHA-256 of the id is
 * stored, and the CSRF token is derived from the id (not stored). Returns
 * 0, WH_EINVALID (not a user), WH_ENOTFOUND (the user is gone) or WH_ERROR.
 */
int wh_acl_session_start(wh_acl *a, const struct wh_principal *p, char *sid_out,
                         char *csrf_out);
/*
 * Identifies the caller of a session id: the session must exist, be within
 * its idle and total lifetimes, and its user must still exist under the
 * same name and id with the same password (a change or a delete ends it).
 * Fills `out` (the user, its administrator flag read now) and `csrf_out`
 * (WH_ACL_SESSION_HEX + 1 bytes). Returns 0, WH_ENOTFOUND (no such live
 * session; an ended one is deleted) or WH_ERROR (the database failed).
 */
int wh_acl_session_get(wh_acl *a, const char *sid, struct wh_principal *out, char *csrf_out);
/* Ends a session (sign-out) on every node; unknown ids are ignored. */
void wh_acl_session_end(wh_acl *a, const char *sid);
/*
 * The value of the `nth` (from 0) cookie named `name` in a Cookie header
 * value (a browser may send several of one name: other paths or domains),
 * copied into `out` (`cap` bytes); false when absent, empty or too long.
 */
#define WH_ACL_COOKIES_MAX 4 /* cookies of one name looked at */
bool wh_acl_cookie(const char *cookie_header, const char *name, unsigned nth, char *out,
                   size_t cap);

#endif
