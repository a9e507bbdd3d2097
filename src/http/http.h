/*
 * http: sockets, HTTP parsing, routing by path prefix, streamed request
 * bodies and zero-copy responses, on libmicrohttpd (thread pool + epoll).
 * Handlers never touch a socket: they read the request through wh_req_*,
 * optionally stream its body, and answer with one wh_resp_send_* call.
 *
 * Lifecycle of a request: the route's handler is called once the headers
 * are in. It either answers at once, or calls wh_req_read_body() and
 * answers from its `on_end` (or from `on_data`, which then returns < 0 to
 * stop reading). Memory from wh_req_pool() lives until the response is sent.
 */
#ifndef WH_HTTP_H
#define WH_HTTP_H

#include <stdbool.h>
#include <stdint.h>

#include "common/common.h"

typedef struct wh_req wh_req;
typedef struct wh_http wh_http;

enum wh_method { WH_HTTP_GET, WH_HTTP_HEAD, WH_HTTP_PUT, WH_HTTP_POST, WH_HTTP_PATCH,
                 WH_HTTP_DELETE, WH_HTTP_OTHER };

struct wh_http_config {
    const char *listen_host;      /* numeric IPv4/IPv6 address */
    uint16_t port;                /* 0: any free port (see wh_http_port) */
    unsigned threads;             /* worker threads */
    unsigned max_connections;     /* concurrent connections */
    unsigned idle_timeout_s;      /* a connection idle this long is closed */
    unsigned header_timeout_s;    /* a request's headers must arrive within this (0: no limit) */
    unsigned max_connections_per_ip; /* per client address, trusted proxies exempt (0: none) */
    size_t max_header_bytes;      /* total size of request headers */
    bool access_log;              /* one line per request in the log (wh_http_set_access_log) */
    const char *tls_cert_pem;     /* PEM certificate chain: serve HTTPS (NULL: plain HTTP) */
    const char *tls_key_pem;      /* PEM private key of that certificate */
    const char *trusted_proxies;  /* addresses and CIDR blocks whose X-Forwarded-* are believed */
    unsigned defer_threads;       /* threads running deferred work (wh_req_defer; 0: none) */
    unsigned defer_queue;         /* requests that may wait for them */
};

typedef int (*wh_handler_fn)(wh_req *req, void *payload);

/* Creates a server (not yet listening). */
wh_http *wh_http_new(const struct wh_http_config *cfg);
/* Routes requests whose path starts with `prefix` (longest prefix wins). */
void wh_http_route(wh_http *h, const char *prefix, wh_handler_fn fn, void *payload);
/*
 * What the answers under a path prefix carry (longest prefix wins, as for
 * routes), so that the protocol spoken there is the route's business and not
 * this layer's: `headers` (name, value, name, value, ..., NULL) go on every
 * answer, and `error_body` writes the body of the errors the server gives by
 * itself (400 for a malformed request, 404 where no route is, 431 for headers
 * too large, 500 when a handler gave no answer) from `status`, a short
 * upper-case `code` ("BAD_REQUEST", "NOT_FOUND", "SIZE_INVALID", "UNKNOWN")
 * and `message`, in pool memory, setting `*content_type`; NULL keeps the
 * default. Without defaults those errors are plain text. `d` must outlive
 * the server.
 */
struct wh_http_defaults {
    const char *const *headers;
    const char *(*error_body)(wh_pool *pool, int status, const char *code, const char *message,
                              const char **content_type);
};
void wh_http_defaults(wh_http *h, const char *prefix, const struct wh_http_defaults *d);
/*
 * Binds and listens on the configured address (SO_REUSEADDR, never
 * SO_REUSEPORT: a busy port is an error, "address already in use"), without
 * serving yet, so that a server can fail on its port before it touches
 * anything else. Returns 0, WH_EINVALID (not a numeric address) or WH_ERROR
 * (message set). Called by wh_http_start when not called before.
 */
int wh_http_listen(wh_http *h);
/* Starts listening (if not yet) and serving. 0 or WH_ERROR (message set). */
int wh_http_start(wh_http *h);
/* The bound port (useful with port 0). */
uint16_t wh_http_port(const wh_http *h);
/*
 * Stops accepting, lets in-flight requests finish (at most `grace_ms`), then
 * closes every connection. Safe to call once.
 */
void wh_http_stop(wh_http *h, int grace_ms);
/* Requests being answered and connections open now (for /metrics). */
void wh_http_stats(wh_http *h, unsigned *inflight, unsigned *connections);
/* Turns the access log on or off while serving (a configuration reload). */
void wh_http_set_access_log(wh_http *h, bool on);
void wh_http_free(wh_http *h);

/* ---- the request ---- */
enum wh_method wh_req_method(const wh_req *r);
const char *wh_req_method_str(const wh_req *r);
/* Decoded path, without the query. Borrowed until the request completes. */
const char *wh_req_path(const wh_req *r);
/* The request's id (X-Request-Id): the client's when it is at most 64 bytes
 * of printable ASCII without spaces, else a random UUID. Sent back on every
 * answer and written in the access log. Borrowed until completion. */
const char *wh_req_id(const wh_req *r);
/* Names who made the request (a user's or robot's name, once identified),
 * for the access log; NULL or "" for nobody. The name is copied. */
void wh_req_set_user(wh_req *r, const char *name);
/* A header value (case-insensitive name) or NULL. */
const char *wh_req_header(const wh_req *r, const char *name);
/* Calls fn for every value of a header that may repeat (Accept). */
void wh_req_header_each(const wh_req *r, const char *name,
                        void (*fn)(const char *value, void *payload), void *payload);
/* A decoded query argument or NULL ("" for `?flag`). */
const char *wh_req_query(const wh_req *r, const char *name);
/* Calls fn for every value of a query argument that may repeat (?scope=a&scope=b). */
void wh_req_query_each(const wh_req *r, const char *name,
                       void (*fn)(const char *value, void *payload), void *payload);
/* The client's address as text ("127.0.0.1", "::1"). Borrowed until completion. */
const char *wh_req_client_ip(wh_req *r);
/* Scheme and host the client used, for absolute URLs. The scheme is
 * "https" on a TLS listener, X-Forwarded-Proto from a trusted proxy, else
 * "http"; the client address likewise follows X-Forwarded-For only when
 * the peer is a trusted proxy. */
const char *wh_req_host(const wh_req *r);
const char *wh_req_scheme(wh_req *r);
/* The request's arena. */
wh_pool *wh_req_pool(wh_req *r);
/* Whether the request carries a body (Content-Length > 0 or chunked). */
bool wh_req_has_body(const wh_req *r);
/*
 * Streams the body to `on_data` (which returns 0 to go on, < 0 after having
 * answered) and then calls `on_end`, which must answer.
 */
void wh_req_read_body(wh_req *r, int (*on_data)(wh_req *r, const char *p, size_t n, void *ctx),
                      int (*on_end)(wh_req *r, void *ctx), void *ctx);

/*
 * Runs `fn(ctx)` on a deferred-work thread instead of this request thread,
 * for slow work such as a password check: once the handler returns (without
 * answering), the connection is suspended; when `fn` is done, the handler is
 * called again with the same request and must find the result in `ctx`
 * (pool memory). Returns 0, or WH_EBUSY at once when the queue is full (the
 * handler should answer, e.g. 429) — a handler runs at most once deferred.
 */
int wh_req_defer(wh_req *r, void (*fn)(void *ctx), void *ctx);
/*
 * Holds the request back for about `ms` milliseconds without a thread (the
 * connection is suspended), then calls the handler again, when
 * wh_req_deferred() returns `ctx`. For tarpits: a client refused for
 * hammering waits before it hears so. 0, or WH_EBUSY (answer now).
 */
int wh_req_sleep(wh_req *r, unsigned ms, void *ctx);
/* The `ctx` of this request's deferred work or pause once over, else NULL. */
void *wh_req_deferred(const wh_req *r);

/* ---- the response (exactly one send per request) ---- */
/* Adds a response header; both strings are copied. */
void wh_resp_header(wh_req *r, const char *name, const char *value);
/* Sends `len` bytes from memory that lives at least until the request completes
 * (pool memory or static data). For HEAD only the headers go out. */
void wh_resp_send(wh_req *r, int status, const char *content_type, const void *p, size_t len);
/* Sends bytes that are copied first. */
void wh_resp_send_copy(wh_req *r, int status, const char *content_type, const void *p, size_t len);
/* Sends `len` bytes of `fd` from `offset` with sendfile; takes ownership of `fd`. */
void wh_resp_send_fd(wh_req *r, int status, const char *content_type, int fd, uint64_t offset,
                     uint64_t len);
/*
 * Streams a body of `len` bytes produced by `read(payload, buf, max)`, which
 * fills `buf` with 1 to `max` bytes and returns how many, or < 0 when it
 * cannot go on (the connection is then cut: the status is already out).
 * `done(payload)` is called once when the response is over, sent or not
 * (NULL: nothing to do). Bodies in memory or a file have the cheaper calls
 * above; this one is for bodies that come from elsewhere (an object store).
 */
void wh_resp_send_stream(wh_req *r, int status, const char *content_type, uint64_t len,
                         long (*read)(void *payload, char *buf, size_t max),
                         void (*done)(void *payload), void *payload);
/* Sends headers announcing `len` bytes with no body (HEAD). */
void wh_resp_send_head(wh_req *r, int status, const char *content_type, uint64_t len);
/* Sends no body at all. */
void wh_resp_send_empty(wh_req *r, int status);
/* True once a response has been queued. */
bool wh_resp_sent(const wh_req *r);

/* ---- helpers ---- */
/* Percent-encodes `s` for a URL query value into the pool. */
char *wh_http_query_escape(wh_pool *p, const char *s);

#endif
