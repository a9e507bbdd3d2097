/*
 * web: the portal. Serves the single-page application whose files under
 * web/ are compiled into the binary (scripts/embed-web.sh writes them as
 * byte arrays with their content types and ETags), Harbor's page
 * addresses (/harbor/...) as that application, and the portal's sign-in
 * and sign-out (POST /c/login, GET /c/log_out) with a session cookie.
 * Every answer carries the portal's security headers (a Content-Security-
 * Policy without inline script, no framing, no sniffing, no referrer).
 * Paths are looked up in the compiled table only: nothing is read from disk.
 */
#ifndef WH_WEB_H
#define WH_WEB_H

#include <stddef.h>

#include "acl/acl.h"
#include "http/http.h"

/* One compiled file: its URL path ("/index.html", "/static/app.js"). */
struct wh_web_asset {
    const char *path;
    const char *content_type;
    const unsigned char *data;
    size_t len;
    const char *etag; /* quoted strong validator: a digest of the bytes */
    const unsigned char *gz_data; /* the same bytes gzipped (text only), or NULL */
    size_t gz_len;
    const char *gz_etag; /* the gzipped representation's own validator */
};

/* The table written by scripts/embed-web.sh (sorted by path). */
extern const struct wh_web_asset wh_web_assets[];
extern const size_t wh_web_asset_count;

/* The compiled file at URL path `path` or NULL. */
const struct wh_web_asset *wh_web_asset_find(const char *path);

/* The form fields of POST /c/login, and its body cap. */
#define WH_WEB_LOGIN_BODY_MAX 4096

typedef struct wh_web wh_web;

/* Creates the portal over `acl` (borrowed: it must outlive it). */
int wh_web_new(wh_web **out, wh_acl *acl);
void wh_web_free(wh_web *w);
/* The route handler for the "/" prefix (payload: the wh_web): pages,
 * files, /c/login and /c/log_out; other paths answer 404 as before. */
int wh_web_handle(wh_req *r, void *payload);

#endif
