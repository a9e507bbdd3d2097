/*
 * web.c: the portal's pages and files (compiled in by scripts/embed-web.sh),
 * Harbor's page addresses as the single-page application, and sign-in and
 * sign-out with a session cookie (docs/portal.md, docs/security.md).
 */
#include "web/web.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "registry/registry.h"

struct wh_web {
    wh_acl *acl;
};

/*
 * The portal's policy: scripts, styles, images and API calls from this
 * origin only (no inline script or style attribute), no plug-ins, no
 * framing by anybody, forms posted here only, no <base> rewriting.
 */
#define CSP                                                                                      \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "          \
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; form-action 'self'; "           \
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

static const char not_found_body[] =
    "{\"errors\":[{\"code\":\"NOT_FOUND\",\"message\":\"resource not found\"}]}\n";
#define JSON_TYPE "application/json; charset=utf-8"

int wh_web_new(wh_web **out, wh_acl *acl)
{
    wh_web *w = wh_calloc(1, sizeof(*w));
    w->acl = acl;
    *out = w;
    return 0;
}

void wh_web_free(wh_web *w)
{
    free(w);
}

const struct wh_web_asset *wh_web_asset_find(const char *path)
{
    size_t lo = 0, hi = wh_web_asset_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(path, wh_web_assets[mid].path);
        if (c == 0)
            return &wh_web_assets[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static void security_headers(wh_req *r)
{
    wh_resp_header(r, "Content-Security-Policy", CSP);
    wh_resp_header(r, "X-Content-Type-Options", "nosniff");
    wh_resp_header(r, "X-Frame-Options", "DENY");
    wh_resp_header(r, "Referrer-Policy", "no-referrer");
    wh_resp_header(r, "Cross-Origin-Opener-Policy", "same-origin");
    wh_resp_header(r, "Cross-Origin-Resource-Policy", "same-origin");
}

static int web_error(wh_req *r, int status, const char *code, const char *message)
{
    char *body = wh_pool_sprintf(wh_req_pool(r),
                                 "{\"errors\":[{\"code\":\"%s\",\"message\":\"%s\"}]}\n", code,
                                 message); /* both are literals of this file: nothing to escape */
    wh_resp_header(r, "Cache-Control", "no-store");
    wh_resp_send(r, status, JSON_TYPE, body, strlen(body));
    return -1;
}

static int method_not_allowed(wh_req *r, const char *allow)
{
    wh_resp_header(r, "Allow", allow);
    return web_error(r, 405, "METHOD_NOT_ALLOWED", "method not allowed");
}

/* Whether an If-None-Match value names `etag` (or is "*"). */
static bool etag_matches(const char *inm, const char *etag)
{
    size_t n = strlen(etag);
    for (const char *p = inm; p && *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        if (*p == '*' || strncmp(p, etag, n) == 0)
            return true;
        p = strchr(p, ',');
    }
    return false;
}

/*
 * Whether an Accept-Encoding value takes gzip: a `gzip`, `x-gzip` or `*`
 * coding whose q is not 0 (RFC 9110 §12.5.3). Anything unparsable: no.
 */
static bool accepts_gzip(const char *ae)
{
    for (const char *p = ae; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t n = strcspn(p, ",; \t");
        bool named = (n == 4 && strncasecmp(p, "gzip", 4) == 0) ||
                     (n == 6 && strncasecmp(p, "x-gzip", 6) == 0) || (n == 1 && *p == '*');
        const char *end = p + strcspn(p, ",");
        const char *q = strstr(p, "q=");
        bool zero = false;
        if (q && q < end) {
            char *stop;
            double v = strtod(q + 2, &stop);
            zero = stop == q + 2 || v <= 0.0;
        }
        if (named && !zero)
            return true;
        p = end;
    }
    return false;
}

static int send_asset(wh_req *r, const struct wh_web_asset *a)
{
    bool gz = a->gz_data && accepts_gzip(wh_req_header(r, "Accept-Encoding"));
    const char *etag = gz ? a->gz_etag : a->etag;
    wh_resp_header(r, "ETag", etag);
    /* names carry no version: a browser asks again each time and gets 304 */
    wh_resp_header(r, "Cache-Control", "no-cache");
    if (a->gz_data)
        wh_resp_header(r, "Vary", "Accept-Encoding");
    const char *inm = wh_req_header(r, "If-None-Match");
    if (inm && etag_matches(inm, etag)) {
        wh_resp_send_empty(r, 304);
        return 0;
    }
    if (gz) {
        wh_resp_header(r, "Content-Encoding", "gzip");
        wh_resp_send(r, 200, a->content_type, a->gz_data, a->gz_len);
    } else {
        wh_resp_send(r, 200, a->content_type, a->data, a->len);
    }
    return 0;
}

/* Harbor's page addresses and the portal's root: the application's page. */
static bool is_page(const char *path)
{
    return strcmp(path, "/") == 0 || strcmp(path, "/harbor") == 0 ||
           strncmp(path, "/harbor/", 8) == 0;
}

/*
 * Whether the request comes from a page of this origin, as far as the
 * browser says: an Origin header, when sent, must be this server's
 * scheme://host (a sign-in posted by another site is refused: login CSRF).
 */
static bool same_origin(wh_req *r)
{
    const char *origin = wh_req_header(r, "Origin");
    if (!origin)
        return true;
    const char *want = wh_pool_sprintf(wh_req_pool(r), "%s://%s", wh_req_scheme(r),
                                       wh_req_host(r));
    return strcmp(origin, want) == 0;
}

static void set_session_cookie(wh_req *r, const char *sid, long max_age)
{
    bool tls = strcmp(wh_req_scheme(r), "https") == 0;
    wh_resp_header(r, "Set-Cookie",
                   wh_pool_sprintf(wh_req_pool(r),
                                   "sid=%s; Path=/; Max-Age=%ld; HttpOnly; SameSite=Strict%s",
                                   sid, max_age, tls ? "; Secure" : ""));
}

/* ---- POST /c/login ---- */

struct login {
    wh_web *w;
    struct wh_buf body;
};

static void login_release(void *p)
{
    struct login *l = p;
    if (l->body.data)
        OPENSSL_cleanse(l->body.data, l->body.len);
    wh_buf_dispose(&l->body);
}

static int login_data(wh_req *r, const char *p, size_t n, void *ctx)
{
    struct login *l = ctx;
    if (wh_buf_put(&l->body, p, n) < 0)
        return web_error(r, 413, "REQUEST_ENTITY_TOO_LARGE", "the sign-in form is too large");
    return 0;
}

static int login_end(wh_req *r, void *ctx)
{
    struct login *l = ctx;
    wh_pool *pool = wh_req_pool(r);
    static const char *const names[] = {"principal", "password"};
    const char *values[2] = {NULL, NULL};
    struct wh_principal *who = wh_pool_alloc(pool, sizeof(*who));
    char sid[WH_ACL_SESSION_HEX + 1], csrf[WH_ACL_SESSION_HEX + 1], old[WH_ACL_SESSION_HEX + 2];

    if (wh_token_form_parse(pool, l->body.data ? l->body.data : "", l->body.len, names, 2,
                            values) < 0)
        return web_error(r, 400, "BAD_REQUEST", "the sign-in form is malformed");
    const char *user = values[0], *pass = values[1];
    if (!user || !*user || !pass || !*pass)
        return web_error(r, 400, "BAD_REQUEST", "principal and password are required");
    if (strlen(user) >= WH_NAME_MAX || strlen(pass) > WH_AUTH_PASSWORD_MAX)
        return web_error(r, 401, "UNAUTHORIZED", "Invalid user name or password.");
    int error = wh_acl_login_req(l->w->acl, r, user, pass, who);
    if (error == WH_EDEFERRED)
        return 0; /* called again once the password check is done */
    if (error == WH_EBUSY) {
        wh_resp_header(r, "Retry-After", wh_pool_sprintf(pool, "%u", who->retry_after_s));
        return web_error(r, 429, "TOO_MANY_REQUEST",
                         "Too many failed sign-ins: wait a moment and try again.");
    }
    if (error < 0)
        return web_error(r, 401, "UNAUTHORIZED", "Invalid user name or password.");
    if (who->kind != WH_PRINCIPAL_USER)
        return web_error(r, 403, "FORBIDDEN", "Robot accounts cannot sign in to the portal.");
    /* a session id the browser brought is never reused (fixation): it ends here */
    for (unsigned i = 0; i < WH_ACL_COOKIES_MAX; i++)
        if (wh_acl_cookie(wh_req_header(r, "Cookie"), "sid", i, old, sizeof(old)))
            wh_acl_session_end(l->w->acl, old);
    if (wh_acl_session_start(l->w->acl, who, sid, csrf) < 0)
        return web_error(r, 500, "UNKNOWN", "internal server error");
    set_session_cookie(r, sid, WH_ACL_SESSION_MAX_S);
    wh_resp_header(r, "X-Harbor-CSRF-Token", csrf);
    wh_resp_header(r, "Cache-Control", "no-store");
    OPENSSL_cleanse(sid, sizeof(sid));
    json_t *v = json_pack("{s:s}", "username", who->name);
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    const char *body = text ? wh_pool_sprintf(pool, "%s\n", text) : "{}\n";
    free(text);
    wh_resp_send(r, 200, JSON_TYPE, body, strlen(body));
    return 0;
}

static int login(wh_web *w, wh_req *r)
{
    if (wh_req_method(r) != WH_HTTP_POST)
        return method_not_allowed(r, "POST");
    if (!same_origin(r))
        return web_error(r, 403, "FORBIDDEN", "sign-in from another origin refused");
    const char *ct = wh_req_header(r, "Content-Type");
    if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0 ||
        (ct[33] && ct[33] != ';' && ct[33] != ' '))
        return web_error(r, 415, "UNSUPPORTED_MEDIA_TYPE",
                         "the sign-in form must be application/x-www-form-urlencoded");
    const char *cl = wh_req_header(r, "Content-Length");
    uint64_t len;
    if (cl && wh_parse_u64(&len, cl, strlen(cl)) == 0 && len > WH_WEB_LOGIN_BODY_MAX)
        return web_error(r, 413, "REQUEST_ENTITY_TOO_LARGE", "the sign-in form is too large");
    struct login *l = wh_pool_alloc(wh_req_pool(r), sizeof(*l));
    memset(l, 0, sizeof(*l));
    l->w = w;
    wh_buf_init(&l->body, WH_WEB_LOGIN_BODY_MAX);
    wh_pool_cleanup(wh_req_pool(r), login_release, l);
    if (!wh_req_has_body(r))
        return login_end(r, l);
    wh_req_read_body(r, login_data, login_end, l);
    return 0;
}

/* ---- GET /c/log_out ---- */

static int log_out(wh_web *w, wh_req *r)
{
    char sid[WH_ACL_SESSION_HEX + 2];
    enum wh_method m = wh_req_method(r);
    if (m != WH_HTTP_GET && m != WH_HTTP_POST)
        return method_not_allowed(r, "GET, POST");
    for (unsigned i = 0; i < WH_ACL_COOKIES_MAX; i++)
        if (wh_acl_cookie(wh_req_header(r, "Cookie"), "sid", i, sid, sizeof(sid)))
            wh_acl_session_end(w->acl, sid);
    set_session_cookie(r, "", 0);
    wh_resp_header(r, "Cache-Control", "no-store");
    wh_resp_send_empty(r, 200);
    return 0;
}

int wh_web_handle(wh_req *r, void *payload)
{
    wh_web *w = payload;
    const char *path = wh_req_path(r);
    security_headers(r);
    if (strcmp(path, "/c/login") == 0)
        return login(w, r);
    if (strcmp(path, "/c/log_out") == 0)
        return log_out(w, r);

    const struct wh_web_asset *a = is_page(path) ? wh_web_asset_find("/index.html")
                                                 : wh_web_asset_find(path);
    if (!a) {
        wh_resp_send(r, 404, JSON_TYPE, not_found_body, sizeof(not_found_body) - 1);
        return 0;
    }
    enum wh_method m = wh_req_method(r);
    if (m != WH_HTTP_GET && m != WH_HTTP_HEAD)
        return method_not_allowed(r, "GET, HEAD");
    return send_asset(r, a);
}
