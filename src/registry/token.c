/*
 * token.c: the token service of the distribution token protocol
 * (distribution's spec/auth/token.md and oauth.md), at /service/token.
 *
 *   GET /service/token?service=wharf&scope=repository:team/app:pull,push[&scope=…]
 *   Authorization: Basic …   (or none, for anonymous pulls)
 *
 *   POST /service/token   (OAuth2, application/x-www-form-urlencoded)
 *   grant_type=password&username=…&password=…&service=…&client_id=…&scope=…
 *   grant_type=refresh_token&refresh_token=…&service=…&client_id=…&scope=…
 *
 * The answer is {"token","access_token","expires_in","issued_at"} with an
 * ES256 JWT whose `access` holds, for each scope asked, only the actions
 * the caller may do; POST adds the granted `scope`. A scope parameter may
 * hold several scopes separated by spaces (OAuth2's scope list). `service`
 * is wharf's own name or Harbor's ("harbor-registry"). A refresh token
 * (acl.c) comes with offline_token=true on GET and access_type=offline on
 * POST; the refresh grant returns the same one. Wrong credentials are
 * refused with 401 (that is how `docker login` learns a password is wrong);
 * no credentials get an anonymous token, which grants what anonymous
 * callers may do. Harbor itself answers POST with 405: containerd tries it
 * first and falls back to GET on 401/404.
 */
#include "registry/registry_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define FORM_MAX (32u << 10) /* POST body: a refresh token (8 KiB) and 16 scopes fit */

struct scopes {
    wh_registry *reg;
    const struct wh_principal *who;
    struct wh_token_claims *claims;
};

/* Grants the intersection of one asked scope and the caller's rights. */
static void grant_one(struct scopes *sc, const char *scope)
{
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

/* One `scope` value: a scope, or several separated by spaces (OAuth2's
 * scope list; '+' of form encoding is a space already). */
static void grant(const char *value, void *payload)
{
    struct scopes *sc = payload;
    char one[WH_AUTH_SCOPE_MAX + 1];
    for (const char *p = value; *p && sc->claims->naccess < WH_TOKEN_ACCESS_MAX;) {
        p += strspn(p, " ");
        size_t n = strcspn(p, " ");
        if (n > 0 && n <= WH_AUTH_SCOPE_MAX) {
            memcpy(one, p, n);
            one[n] = '\0';
            grant_one(sc, one);
        }
        p += n;
    }
}

/* Answers an error: Harbor's body, plus OAuth2's `error` and
 * `error_description` (RFC 6749 §5.2) when `oauth` names the error. */
static int token_error(wh_req *r, int status, const char *code, const char *oauth,
                       const char *message)
{
    json_t *body = json_pack("{s:[{s:s,s:s}]}", "errors", "code", code, "message", message);
    if (oauth) {
        json_object_set_new(body, "error", json_string(oauth));
        json_object_set_new(body, "error_description", json_string(message));
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    wh_resp_header(r, "Cache-Control", "no-store");
    wh_resp_send_copy(r, status, "application/json; charset=utf-8", text, strlen(text));
    free(text);
    return -1;
}

static bool service_ok(const char *service)
{
    return strcmp(service, WH_AUTH_SERVICE) == 0 || strcmp(service, WH_AUTH_SERVICE_HARBOR) == 0;
}

/* The granted scopes as OAuth2 returns them: "type:name:actions" separated
 * by spaces, entries that grant nothing left out (pool memory). */
static const char *granted_scope(wh_pool *pool, const struct wh_token_claims *c)
{
    struct wh_buf b;
    wh_buf_init(&b, WH_TOKEN_ACCESS_MAX * (WH_AUTH_SCOPE_MAX + 1) + 1);
    for (size_t i = 0; i < c->naccess; i++) {
        char acts[WH_AUTH_ACTIONS_STR_MAX];
        if (!c->access[i].actions ||
            wh_auth_actions_str(acts, sizeof(acts), c->access[i].actions) < 0)
            continue;
        wh_buf_printf(&b, "%s%s:%s:%s", b.len ? " " : "", c->access[i].type, c->access[i].name,
                      acts);
    }
    const char *out = wh_pool_strdup(pool, b.data ? b.data : "");
    wh_buf_dispose(&b);
    return out;
}

/*
 * Signs an access token for `who` with the scopes of `scope_each` (called
 * with the scopes callback) and sends the answer; `refresh` (may be NULL) is
 * added as refresh_token, `with_scope` adds OAuth2's granted scope.
 */
static int issue(wh_registry *reg, wh_req *r, const struct wh_principal *who,
                 void (*scope_each)(wh_req *r, void *ctx, struct scopes *sc), void *ctx,
                 const char *refresh, bool with_scope)
{
    struct wh_token_claims *claims = wh_pool_alloc(wh_req_pool(r), sizeof(*claims));
    int64_t now = wh_now_ms() / 1000, ttl = wh_acl_token_ttl(reg->acl);
    const char *sub = who->kind == WH_PRINCIPAL_ANONYMOUS ? "" : who->name;
    if (wh_auth_claims_init(claims, sub, now, ttl) < 0)
        return token_error(r, 500, "UNKNOWN", NULL, "internal server error");
    struct scopes sc = {reg, who, claims};
    scope_each(r, ctx, &sc);

    char *token = NULL;
    if (wh_auth_token_sign(&token, wh_acl_keys(reg->acl), claims) < 0) {
        wh_log_error("token signing failed: %s", wh_error_msg());
        return token_error(r, 500, "UNKNOWN", NULL, "internal server error");
    }
    if (who->kind != WH_PRINCIPAL_ANONYMOUS)
        wh_acl_audit(reg->acl, who, wh_req_client_ip(r), 0, who->name, "user", "login", true);
    char issued[32];
    time_t t = (time_t)now;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(issued, sizeof(issued), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *body = json_pack("{s:s,s:s,s:I,s:s}", "token", token, "access_token", token,
                             "expires_in", (json_int_t)ttl, "issued_at", issued);
    free(token);
    if (with_scope)
        json_object_set_new(body, "scope", json_string(granted_scope(wh_req_pool(r), claims)));
    if (refresh)
        json_object_set_new(body, "refresh_token", json_string(refresh));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    wh_resp_header(r, "Cache-Control", "no-store");
    wh_resp_send_copy(r, 200, "application/json", text, strlen(text));
    free(text);
    return 0;
}

/* A refresh token for `who` in pool memory, or NULL (logged) when none can be made. */
static const char *new_refresh(wh_registry *reg, wh_req *r, const struct wh_principal *who)
{
    char *rt = NULL;
    if (wh_acl_refresh_issue(reg->acl, who, &rt) < 0) {
        wh_log_error("refresh token for %s: %s", who->name, wh_error_msg());
        return NULL;
    }
    const char *out = wh_pool_strdup(wh_req_pool(r), rt);
    free(rt);
    return out;
}

/* ---- GET ---- */

static void query_scopes(wh_req *r, void *ctx, struct scopes *sc)
{
    (void)ctx;
    wh_req_query_each(r, "scope", grant, sc);
}

static int token_get(wh_registry *reg, wh_req *r)
{
    struct wh_principal *who = wh_pool_alloc(wh_req_pool(r), sizeof(*who));
    const char *service = wh_req_query(r, "service");
    if (service && !service_ok(service))
        return token_error(r, 400, "BAD_REQUEST", NULL,
                           wh_pool_sprintf(wh_req_pool(r), "Unable to handle service: %.200s",
                                           service));
    const char *authz = wh_req_header(r, "Authorization");
    if (authz && strncasecmp(authz, "Basic ", 6) != 0)
        return token_error(r, 401, "UNAUTHORIZED", NULL,
                           "the token service takes Basic credentials");
    int idrc = wh_acl_identify_req(reg->acl, r, who);
    if (idrc == WH_EDEFERRED)
        return 0; /* called again once the password check is done */
    if (idrc == WH_EBUSY) {
        wh_resp_header(r, "Retry-After", wh_pool_sprintf(wh_req_pool(r), "%u", who->retry_after_s));
        return token_error(r, 429, "TOO_MANY_REQUEST", NULL, wh_error_msg());
    }
    if (who->bad_credentials) {
        wh_resp_header(r, "WWW-Authenticate", "Basic realm=\"wharf\"");
        return token_error(r, 401, "UNAUTHORIZED", NULL, "invalid credentials");
    }
    const char *offline = wh_req_query(r, "offline_token");
    const char *refresh = NULL;
    if (offline && (strcasecmp(offline, "true") == 0 || strcmp(offline, "1") == 0) &&
        who->kind != WH_PRINCIPAL_ANONYMOUS)
        refresh = new_refresh(reg, r, who);
    return issue(reg, r, who, query_scopes, NULL, refresh, false);
}

/* ---- POST (OAuth2) ---- */

enum { F_GRANT, F_SERVICE, F_CLIENT, F_SCOPE, F_ACCESS, F_USER, F_PASSWORD, F_REFRESH, F_COUNT };
static const char *const field_names[F_COUNT] = {
    "grant_type", "service", "client_id", "scope", "access_type", "username", "password",
    "refresh_token",
};

struct form {
    wh_registry *reg;
    struct wh_buf body;
    const char *field[F_COUNT]; /* decoded values (pool), NULL when absent */
};

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Decodes one form-urlencoded component ('+' is a space) into the pool.
 * NULL for a bad escape or a control character (NUL included). */
static char *form_decode(wh_pool *pool, const char *p, size_t n)
{
    char *out = wh_pool_alloc(pool, n + 1), *w = out;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%') {
            int hi, lo;
            if (i + 2 >= n || (hi = hexval(p[i + 1])) < 0 || (lo = hexval(p[i + 2])) < 0)
                return NULL;
            ch = (unsigned char)(hi * 16 + lo);
            i += 2;
        }
        if (ch < 0x20 || ch == 0x7f)
            return NULL;
        *w++ = (char)ch;
    }
    *w = '\0';
    return out;
}

int wh_token_form_parse(wh_pool *pool, const char *body, size_t len, const char *const *names,
                        size_t nnames, const char **values)
{
    size_t nfields = 0;
    for (size_t k = 0; k < nnames; k++)
        values[k] = NULL;
    if (memchr(body, '\0', len))
        return wh_error_set(WH_EINVALID, "the form holds a NUL byte");
    for (size_t i = 0; i < len;) {
        size_t n = 0;
        while (i + n < len && body[i + n] != '&')
            n++;
        const char *pair = body + i;
        i += n + 1;
        if (n == 0)
            continue;
        if (++nfields > WH_TOKEN_FORM_FIELDS_MAX)
            return wh_error_set(WH_EINVALID, "too many form fields");
        const char *eq = memchr(pair, '=', n);
        size_t klen = eq ? (size_t)(eq - pair) : n;
        char *key = form_decode(pool, pair, klen);
        char *val = eq ? form_decode(pool, eq + 1, n - klen - 1) : wh_pool_strdup(pool, "");
        if (!key || !val)
            return wh_error_set(WH_EINVALID,
                                "the form is not valid application/x-www-form-urlencoded");
        for (size_t k = 0; k < nnames; k++) {
            if (strcmp(key, names[k]) != 0)
                continue;
            /* RFC 6749 §3.1: a parameter must not be sent more than once */
            if (values[k])
                return wh_error_set(WH_EINVALID, "%s is repeated", names[k]);
            values[k] = val;
        }
    }
    return 0;
}

/* Parses the body into f->field. 0, or an answered 400 (< 0). */
static int form_parse(wh_req *r, struct form *f)
{
    if (wh_token_form_parse(wh_req_pool(r), f->body.data ? f->body.data : "", f->body.len,
                            field_names, F_COUNT, f->field) < 0)
        return token_error(r, 400, "BAD_REQUEST", "invalid_request",
                           wh_pool_strdup(wh_req_pool(r), wh_error_msg()));
    return 0;
}

static void form_scopes(wh_req *r, void *ctx, struct scopes *sc)
{
    struct form *f = ctx;
    (void)r;
    if (f->field[F_SCOPE])
        grant(f->field[F_SCOPE], sc);
}

static int token_post_end(wh_req *r, void *ctx)
{
    struct form *f = ctx;
    wh_registry *reg = f->reg;
    wh_pool *pool = wh_req_pool(r);
    struct wh_principal *who = wh_pool_alloc(pool, sizeof(*who));
    const char *refresh = NULL;

    if (form_parse(r, f) < 0)
        return -1;
    const char *grant_type = f->field[F_GRANT], *service = f->field[F_SERVICE];
    if (!grant_type || !*grant_type)
        return token_error(r, 400, "BAD_REQUEST", "invalid_request", "grant_type is required");
    if (!service || !*service)
        return token_error(r, 400, "BAD_REQUEST", "invalid_request", "service is required");
    if (!service_ok(service))
        return token_error(r, 400, "BAD_REQUEST", "invalid_request",
                           wh_pool_sprintf(pool, "Unable to handle service: %.200s", service));
    if (strcmp(grant_type, "password") == 0) {
        const char *user = f->field[F_USER], *pass = f->field[F_PASSWORD];
        if (!user || !*user || !pass || !*pass)
            return token_error(r, 400, "BAD_REQUEST", "invalid_request",
                               "username and password are required");
        if (strlen(user) >= WH_NAME_MAX || strlen(pass) > WH_AUTH_PASSWORD_MAX)
            return token_error(r, 400, "BAD_REQUEST", "invalid_request",
                               "username or password too long");
        int error = wh_acl_login_req(reg->acl, r, user, pass, who);
        if (error == WH_EDEFERRED)
            return 0; /* called again once the password check is done */
        if (error == WH_EBUSY) {
            wh_resp_header(r, "Retry-After", wh_pool_sprintf(pool, "%u", who->retry_after_s));
            return token_error(r, 429, "TOO_MANY_REQUEST", "invalid_grant", wh_error_msg());
        }
        if (error < 0)
            return token_error(r, 401, "UNAUTHORIZED", "invalid_grant", "invalid credentials");
        const char *access = f->field[F_ACCESS];
        if (access && strcmp(access, "offline") == 0)
            refresh = new_refresh(reg, r, who);
    } else if (strcmp(grant_type, "refresh_token") == 0) {
        refresh = f->field[F_REFRESH];
        if (!refresh || !*refresh)
            return token_error(r, 400, "BAD_REQUEST", "invalid_request",
                               "refresh_token is required");
        if (wh_acl_refresh_redeem(reg->acl, refresh, who) < 0)
            return token_error(r, 401, "UNAUTHORIZED", "invalid_grant",
                               "invalid or expired refresh token");
    } else {
        return token_error(r, 400, "BAD_REQUEST", "unsupported_grant_type",
                           wh_pool_sprintf(pool, "unsupported grant_type: %.64s", grant_type));
    }
    return issue(reg, r, who, form_scopes, f, refresh, true);
}

static int token_post_data(wh_req *r, const char *p, size_t n, void *ctx)
{
    struct form *f = ctx;
    if (wh_buf_put(&f->body, p, n) < 0)
        return token_error(r, 413, "REQUEST_ENTITY_TOO_LARGE", "invalid_request",
                           "the form is too large");
    return 0;
}

static void form_release(void *p)
{
    struct form *f = p;
    wh_buf_dispose(&f->body);
}

static int token_post(wh_registry *reg, wh_req *r)
{
    const char *ct = wh_req_header(r, "Content-Type");
    const char *cl = wh_req_header(r, "Content-Length");
    uint64_t len;
    if (cl && wh_parse_u64(&len, cl, strlen(cl)) == 0 && len > FORM_MAX)
        return token_error(r, 413, "REQUEST_ENTITY_TOO_LARGE", "invalid_request",
                           "the form is too large");
    if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0 ||
        (ct[33] && ct[33] != ';' && ct[33] != ' '))
        return token_error(r, 400, "BAD_REQUEST", "invalid_request",
                           "the body must be application/x-www-form-urlencoded");
    struct form *f = wh_pool_alloc(wh_req_pool(r), sizeof(*f));
    memset(f, 0, sizeof(*f));
    f->reg = reg;
    wh_buf_init(&f->body, FORM_MAX);
    wh_pool_cleanup(wh_req_pool(r), form_release, f);
    if (!wh_req_has_body(r))
        return token_post_end(r, f);
    wh_req_read_body(r, token_post_data, token_post_end, f);
    return 0;
}

int wh_registry_token_handle(wh_req *r, void *payload)
{
    wh_registry *reg = payload;
    switch (wh_req_method(r)) {
    case WH_HTTP_GET:
        return token_get(reg, r);
    case WH_HTTP_POST:
        return token_post(reg, r);
    default:
        wh_resp_header(r, "Allow", "GET, POST");
        return token_error(r, 405, "METHOD_NOT_ALLOWED", NULL, "method not allowed");
    }
}
