/*
 * token.c: the token service of the distribution token protocol
 * (distribution's spec/auth/token.md), at /service/token.
 *
 *   GET /service/token?service=wharf&scope=repository:team/app:pull,push[&scope=…]
 *   Authorization: Basic …   (or none, for anonymous pulls)
 *
 * The answer is {"token","access_token","expires_in","issued_at"} with an
 * ES256 JWT whose `access` holds, for each scope asked, only the actions
 * the caller may do. Wrong credentials are refused with 401 (that is how
 * `docker login` learns a password is wrong); no credentials get an
 * anonymous token, which grants what anonymous callers may do.
 */
#include "registry/registry_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct scopes {
    wh_registry *reg;
    const struct wh_principal *who;
    struct wh_token_claims *claims;
};

/* Grants the intersection of one asked scope and the caller's rights. */
static void grant(const char *scope, void *payload)
{
    struct scopes *sc = payload;
    struct wh_access want;
    struct wh_token_claims *c = sc->claims;
    if (c->naccess >= WH_TOKEN_ACCESS_MAX || wh_auth_scope_parse(&want, scope) < 0)
        return;
    unsigned have = 0;
    if (strcmp(want.type, "repository") == 0 && wh_ref_name_valid(want.name, strlen(want.name))) {
        struct wh_project p;
        char project[WH_NAME_MAX];
        snprintf(project, sizeof(project), "%.*s", (int)wh_ref_project_len(want.name), want.name);
        if (wh_db_project_get(sc->reg->db, project, &p) == 0)
            have = wh_acl_repo_actions(sc->reg->acl, sc->who, &p, want.name);
        if (have & WH_ACT_ALL)
            have = WH_ACT_PULL | WH_ACT_PUSH | WH_ACT_DELETE | WH_ACT_SCANNER_PULL;
    } else if (strcmp(want.type, "registry") == 0 && strcmp(want.name, "catalog") == 0) {
        have = sc->who->sysadmin ? WH_ACT_ALL : 0;
    }
    /* "*" asks for every action (containers/image does so to delete) */
    unsigned asked = want.actions;
    if (asked & WH_ACT_ALL)
        asked = have & WH_ACT_ALL ? WH_ACT_ALL : (asked & ~WH_ACT_ALL) | WH_ACT_PULL |
                                                     WH_ACT_PUSH | WH_ACT_DELETE;
    struct wh_access *a = &c->access[c->naccess++];
    *a = want;
    a->actions = asked & have;
}

static int token_error(wh_req *r, int status, const char *code, const char *message)
{
    json_t *body = json_pack("{s:[{s:s,s:s}]}", "errors", "code", code, "message", message);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    wh_resp_send_copy(r, status, "application/json; charset=utf-8", text, strlen(text));
    free(text);
    return -1;
}

int wh_registry_token_handle(wh_req *r, void *payload)
{
    wh_registry *reg = payload;
    struct wh_principal *who = wh_pool_alloc(wh_req_pool(r), sizeof(*who));
    struct wh_token_claims *claims = wh_pool_alloc(wh_req_pool(r), sizeof(*claims));
    const char *ip = wh_req_client_ip(r);

    if (wh_req_method(r) != WH_HTTP_GET)
        return token_error(r, 405, "METHOD_NOT_ALLOWED", "method not allowed");
    const char *service = wh_req_query(r, "service");
    if (service && strcmp(service, WH_AUTH_SERVICE) != 0)
        return token_error(r, 400, "BAD_REQUEST",
                           wh_pool_sprintf(wh_req_pool(r), "Unable to handle service: %.200s",
                                           service));
    const char *authz = wh_req_header(r, "Authorization");
    if (authz && strncasecmp(authz, "Basic ", 6) != 0)
        return token_error(r, 401, "UNAUTHORIZED", "the token service takes Basic credentials");
    int idrc = wh_acl_identify_req(reg->acl, r, who);
    if (idrc == WH_EDEFERRED)
        return 0; /* called again once the password check is done */
    if (idrc == WH_EBUSY) {
        wh_resp_header(r, "Retry-After", wh_pool_sprintf(wh_req_pool(r), "%u", who->retry_after_s));
        return token_error(r, 429, "TOO_MANY_REQUEST", wh_error_msg());
    }
    if (who->bad_credentials) {
        wh_resp_header(r, "WWW-Authenticate", "Basic realm=\"wharf\"");
        return token_error(r, 401, "UNAUTHORIZED", "invalid credentials");
    }
    int64_t now = wh_now_ms() / 1000, ttl = wh_acl_token_ttl(reg->acl);
    const char *sub = who->kind == WH_PRINCIPAL_ANONYMOUS ? "" : who->name;
    if (wh_auth_claims_init(claims, sub, now, ttl) < 0)
        return token_error(r, 500, "UNKNOWN", "internal server error");
    struct scopes sc = {reg, who, claims};
    wh_req_query_each(r, "scope", grant, &sc);

    char *token = NULL;
    if (wh_auth_token_sign(&token, wh_acl_keys(reg->acl), claims) < 0) {
        wh_log_error("token signing failed: %s", wh_error_msg());
        return token_error(r, 500, "UNKNOWN", "internal server error");
    }
    if (who->kind != WH_PRINCIPAL_ANONYMOUS)
        wh_acl_audit(reg->acl, who, ip, 0, who->name, "user", "login", true);
    char issued[32];
    time_t t = (time_t)now;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(issued, sizeof(issued), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *body = json_pack("{s:s,s:s,s:I,s:s}", "token", token, "access_token", token,
                             "expires_in", (json_int_t)ttl, "issued_at", issued);
    free(token);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    wh_resp_header(r, "Cache-Control", "no-store");
    wh_resp_send_copy(r, 200, "application/json", text, strlen(text));
    free(text);
    return 0;
}
