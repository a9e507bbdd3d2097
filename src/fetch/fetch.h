/*
 * fetch: wharf as an HTTP client — one request at a time over libcurl,
 * loaded on first use (as vulndb.c loads it), with a cap on every answer,
 * timeouts on every transfer, http and https only. The scanner adapter uses
 * it to pull images from registries and wharf to call external scanners.
 */
#ifndef WH_FETCH_H
#define WH_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

#define WH_FETCH_HEADERS_MAX 8 /* request headers in one request */

struct wh_fetch_req {
    const char *method;         /* NULL: GET */
    const char *url;            /* http:// or https:// only */
    const char *headers[WH_FETCH_HEADERS_MAX + 1]; /* "Name: value", NULL-terminated */
    const char *body;           /* request body (POST, PUT), may be NULL */
    size_t body_len;
    unsigned timeout_s;         /* whole exchange (0: 60 s) */
    unsigned connect_timeout_s; /* connection set-up (0: 10 s) */
    uint64_t max_body;          /* answer bytes kept at most; more fails with WH_ETOOBIG */
    int fd;                     /* >= 0: the answer's body goes there, not to memory */
    bool insecure;              /* no TLS certificate check */
    bool follow;                /* follow up to 3 redirects (authorization is not forwarded
                                   to another host) */
    const int *cancel;          /* non-zero (read atomically): abort the transfer (may be NULL) */
};

struct wh_fetch_resp {
    long status;
    char *body;                  /* NUL-terminated copy of the answer (fd < 0), malloc'ed */
    size_t len;
    uint64_t written;            /* bytes written to `fd` */
    char content_type[256];
    char refresh_after[32];      /* Refresh-After header ("" absent) */
    char www_authenticate[1024]; /* WWW-Authenticate header ("" absent) */
};

/*
 * Sends the request and reads the answer (any status). 0; WH_ETOOBIG when
 * the answer is larger than req->max_body; WH_ERROR when no answer came
 * (connection refused, timeout, TLS failure, libcurl missing), the message
 * naming the URL and the cause. `out` is disposed of by the caller either way.
 */
int wh_fetch(struct wh_fetch_resp *out, const struct wh_fetch_req *req);
/* Frees the body of an answer (the struct itself is the caller's). */
void wh_fetch_resp_dispose(struct wh_fetch_resp *r);
/* Whether `url` is an absolute http:// or https:// URL with a host. */
bool wh_fetch_url_ok(const char *url);

#endif
