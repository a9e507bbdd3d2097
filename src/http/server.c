/*
 * server.c: the HTTP server on libmicrohttpd. MHD runs a pool of worker
 * threads, each with its own epoll loop; a request's handler runs on the
 * thread that owns its connection. Downloads from files go out with
 * sendfile(2) (MHD does this for fd responses without TLS), so blob bytes
 * never pass through user space.
 *
 * Caps: total header bytes (431), connection memory, idle timeout (a slow
 * client loses its connection, it never holds a thread), connection count.
 * Body size caps belong to the handlers, which know what they receive.
 */
#include "http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_ROUTES 16
#define DISCARD_MAX (8u << 20) /* body bytes read and dropped after an early answer */
#define REQUEST_ID_MAX 64      /* longest client X-Request-Id echoed back */

struct route {
    char *prefix;
    size_t len;
    wh_handler_fn fn;
    void *payload;
};

struct wh_http {
    struct wh_http_config cfg;
    struct MHD_Daemon *d;
    struct route routes[MAX_ROUTES];
    int nroutes;
    atomic_int inflight; /* requests between first callback and completion */
    uint16_t port;
};

struct resp_hdr {
    const char *name, *value;
    struct resp_hdr *next;
};

struct wh_req {
    wh_http *h;
    struct MHD_Connection *conn;
    wh_pool *pool;
    enum wh_method method;
    const char *method_str;
    const char *path;
    const char *client_ip; /* resolved on first use */
    const char *peer_ip;   /* the direct peer's address, resolved on first use */
    int64_t start_us;
    char request_id[REQUEST_ID_MAX + 1]; /* X-Request-Id: the client's if sane, else made here */
    /* body streaming */
    int (*on_data)(wh_req *r, const char *p, size_t n, void *ctx);
    int (*on_end)(wh_req *r, void *ctx);
    void *ctx;
    bool body_failed;
    bool started;      /* the handler has run */
    uint64_t discarded; /* body bytes dropped after an early answer */
    /* response */
    struct MHD_Response *pending; /* answered, waiting for the end of the request */
    struct resp_hdr *hdrs, *hdrs_tail;
    bool sent;
    int status;
    uint64_t bytes;
};

/* ---- request accessors ---- */

enum wh_method wh_req_method(const wh_req *r)
{
    return r->method;
}

const char *wh_req_method_str(const wh_req *r)
{
    return r->method_str;
}

const char *wh_req_path(const wh_req *r)
{
    return r->path;
}

const char *wh_req_id(const wh_req *r)
{
    return r->request_id;
}

const char *wh_req_header(const wh_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

struct each_ctx {
    const char *name;
    void (*fn)(const char *, void *);
    void *payload;
};

static enum MHD_Result header_each_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    struct each_ctx *e = cls;
    (void)kind;
    if (strcasecmp(key, e->name) == 0 && value)
        e->fn(value, e->payload);
    return MHD_YES;
}

void wh_req_header_each(const wh_req *r, const char *name,
                        void (*fn)(const char *value, void *payload), void *payload)
{
    struct each_ctx e = {name, fn, payload};
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, header_each_cb, &e);
}

const char *wh_req_query(const wh_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

void wh_req_query_each(const wh_req *r, const char *name,
                       void (*fn)(const char *value, void *payload), void *payload)
{
    struct each_ctx e = {name, fn, payload};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, header_each_cb, &e);
}

/* The direct peer's address. */
static const char *peer_ip(wh_req *r)
{
    if (r->peer_ip)
        return r->peer_ip;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char buf[INET6_ADDRSTRLEN] = "unknown";
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
                      sizeof(buf));
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf,
                      sizeof(buf));
    }
    r->peer_ip = wh_pool_strdup(r->pool, buf);
    return r->peer_ip;
}

/* Whether the direct peer is one of the configured trusted proxies. */
static bool from_trusted_proxy(wh_req *r)
{
    const char *list = r->h->cfg.trusted_proxies;
    if (!list || !*list)
        return false;
    const char *ip = peer_ip(r);
    size_t n = strlen(ip);
    for (const char *p = list; *p;) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t len = strcspn(p, ", ");
        if (len == n && memcmp(p, ip, n) == 0)
            return true;
        p += len;
    }
    return false;
}

const char *wh_req_client_ip(wh_req *r)
{
    if (r->client_ip)
        return r->client_ip;
    const char *fwd = from_trusted_proxy(r) ? wh_req_header(r, "X-Forwarded-For") : NULL;
    if (fwd && *fwd) {
        /* the proxy appends the address it saw: the last entry is the one it vouches for */
        const char *last = strrchr(fwd, ',');
        last = last ? last + 1 : fwd;
        while (*last == ' ')
            last++;
        size_t len = strcspn(last, " ");
        if (len > 0 && len < 64) {
            r->client_ip = wh_pool_strndup(r->pool, last, len);
            return r->client_ip;
        }
    }
    r->client_ip = peer_ip(r);
    return r->client_ip;
}

const char *wh_req_scheme(wh_req *r)
{
    if (r->h->cfg.tls_cert_pem)
        return "https";
    const char *proto = from_trusted_proxy(r) ? wh_req_header(r, "X-Forwarded-Proto") : NULL;
    if (proto && strcasecmp(proto, "https") == 0)
        return "https";
    return "http";
}

const char *wh_req_host(const wh_req *r)
{
    const char *host = wh_req_header(r, "Host");
    return host ? host : "localhost";
}

wh_pool *wh_req_pool(wh_req *r)
{
    return r->pool;
}

bool wh_req_has_body(const wh_req *r)
{
    const char *cl = wh_req_header(r, "Content-Length");
    const char *te = wh_req_header(r, "Transfer-Encoding");
    if (te && strcasecmp(te, "identity") != 0)
        return true;
    return cl && strcmp(cl, "0") != 0;
}

void wh_req_read_body(wh_req *r, int (*on_data)(wh_req *r, const char *p, size_t n, void *ctx),
                      int (*on_end)(wh_req *r, void *ctx), void *ctx)
{
    r->on_data = on_data;
    r->on_end = on_end;
    r->ctx = ctx;
}

/* ---- responses ---- */

void wh_resp_header(wh_req *r, const char *name, const char *value)
{
    struct resp_hdr *h = wh_pool_alloc(r->pool, sizeof(*h));
    h->name = wh_pool_strdup(r->pool, name);
    h->value = wh_pool_strdup(r->pool, value);
    h->next = NULL;
    if (r->hdrs_tail)
        r->hdrs_tail->next = h;
    else
        r->hdrs = h;
    r->hdrs_tail = h;
}

bool wh_resp_sent(const wh_req *r)
{
    return r->sent;
}

static void queue(wh_req *r, int status, const char *content_type, struct MHD_Response *resp,
                  uint64_t bytes)
{
    if (r->sent) {
        /* A second answer is a handler bug; keep the first. */
        wh_log_error("%s %s: response sent twice", r->method_str, r->path);
        MHD_destroy_response(resp);
        return;
    }
    MHD_add_response_header(resp, "Docker-Distribution-API-Version", "registry/2.0");
    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    for (struct resp_hdr *h = r->hdrs; h; h = h->next)
        MHD_add_response_header(resp, h->name, h->value);
    r->sent = true;
    r->status = status;
    r->bytes = r->method == WH_HTTP_HEAD ? 0 : bytes;
    r->pending = resp; /* queued by on_access once MHD can take it */
}

/* Hands the response to MHD; only valid once the whole request is read. */
static void flush_response(wh_req *r)
{
    if (!r->pending)
        return;
    if (MHD_queue_response(r->conn, (unsigned)r->status, r->pending) != MHD_YES)
        wh_log_warn("%s %s: could not queue the response", r->method_str, r->path);
    MHD_destroy_response(r->pending);
    r->pending = NULL;
}

void wh_resp_send(wh_req *r, int status, const char *content_type, const void *p, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)(uintptr_t)p, MHD_RESPMEM_PERSISTENT);
    queue(r, status, content_type, resp, len);
}

void wh_resp_send_copy(wh_req *r, int status, const char *content_type, const void *p, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)(uintptr_t)p, MHD_RESPMEM_MUST_COPY);
    queue(r, status, content_type, resp, len);
}

void wh_resp_send_fd(wh_req *r, int status, const char *content_type, int fd, uint64_t offset,
                     uint64_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_fd_at_offset64(len, fd, offset);
    if (!resp) {
        close(fd);
        wh_resp_send_empty(r, 500);
        return;
    }
    queue(r, status, content_type, resp, len);
}

static ssize_t no_body(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls, (void)pos, (void)buf, (void)max;
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

void wh_resp_send_head(wh_req *r, int status, const char *content_type, uint64_t len)
{
    /* MHD never calls the reader for HEAD, but announces `len` bytes. */
    struct MHD_Response *resp = MHD_create_response_from_callback(len, 4096, no_body, NULL, NULL);
    queue(r, status, content_type, resp, 0);
}

void wh_resp_send_empty(wh_req *r, int status)
{
    wh_resp_send(r, status, NULL, "", 0);
}

char *wh_http_query_escape(wh_pool *p, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = wh_pool_alloc(p, 3 * n + 1), *w = out;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~' || c == '/' || c == ':') {
            *w++ = (char)c;
        } else {
            *w++ = '%';
            *w++ = hex[c >> 4];
            *w++ = hex[c & 15];
        }
    }
    *w = '\0';
    return out;
}

/* ---- MHD callbacks ---- */

/*
 * The request's id: the client's X-Request-Id when it is short printable
 * ASCII without spaces (it goes into headers and the log line as it is),
 * else a new random UUID (version 4), as Harbor makes one.
 */
static void request_id_init(wh_req *r)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Request-Id");
    size_t n = v ? strlen(v) : 0;
    bool sane = n > 0 && n <= REQUEST_ID_MAX;
    for (size_t i = 0; sane && i < n; i++)
        sane = v[i] > 0x20 && v[i] < 0x7f;
    if (sane) {
        memcpy(r->request_id, v, n + 1);
        return;
    }
    char hex[33];
    wh_random_hex(hex, 16);
    hex[12] = '4';                          /* version 4: random */
    hex[16] = "89ab"[hex[16] % 4];          /* RFC 4122 variant */
    snprintf(r->request_id, sizeof(r->request_id), "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8,
             hex + 12, hex + 16, hex + 20);
}

static enum wh_method parse_method(const char *m)
{
    static const struct {
        const char *s;
        enum wh_method m;
    } tab[] = {{"GET", WH_HTTP_GET},     {"HEAD", WH_HTTP_HEAD},   {"PUT", WH_HTTP_PUT},
               {"POST", WH_HTTP_POST},   {"PATCH", WH_HTTP_PATCH}, {"DELETE", WH_HTTP_DELETE}};
    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
        if (strcmp(m, tab[i].s) == 0)
            return tab[i].m;
    return WH_HTTP_OTHER;
}

static enum MHD_Result header_size_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    size_t *total = cls;
    (void)kind;
    *total += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

static const struct route *find_route(const wh_http *h, const char *path)
{
    const struct route *best = NULL;
    for (int i = 0; i < h->nroutes; i++) {
        const struct route *rt = &h->routes[i];
        if (strncmp(path, rt->prefix, rt->len) == 0 && (!best || rt->len > best->len))
            best = rt;
    }
    return best;
}

static const char not_found_body[] =
    "{\"errors\":[{\"code\":\"NOT_FOUND\",\"message\":\"resource not found\"}]}\n";
static const char internal_body[] =
    "{\"errors\":[{\"code\":\"UNKNOWN\",\"message\":\"internal server error\"}]}\n";
static const char headers_body[] =
    "{\"errors\":[{\"code\":\"SIZE_INVALID\",\"message\":\"request headers too large\"}]}\n";

static void answer_internal(wh_req *r)
{
    wh_resp_send(r, 500, "application/json; charset=utf-8", internal_body,
                 sizeof(internal_body) - 1);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    wh_http *h = cls;
    wh_req *r = *con_cls;
    (void)version;

    if (!r) {
        wh_pool *pool = wh_pool_new();
        r = wh_pool_alloc(pool, sizeof(*r));
        memset(r, 0, sizeof(*r));
        r->h = h;
        r->conn = conn;
        r->pool = pool;
        r->method_str = method;
        r->method = parse_method(method);
        r->path = url;
        r->start_us = wh_monotonic_us();
        request_id_init(r);
        *con_cls = r;
        atomic_fetch_add(&h->inflight, 1);

        /*
         * Nothing is answered on this first call: MHD keeps the connection
         * alive only for responses queued once the request is fully parsed
         * (it reads a possible body first), so the handler runs on the next
         * call, which is the first body chunk or the end of the request.
         */
        return MHD_YES;
    }

    if (!r->started) {
        r->started = true;
        size_t hbytes = 0;
        MHD_get_connection_values(conn, MHD_HEADER_KIND, header_size_cb, &hbytes);
        if (hbytes > h->cfg.max_header_bytes) {
            wh_resp_send(r, 431, "application/json; charset=utf-8", headers_body,
                         sizeof(headers_body) - 1);
        } else {
            const struct route *rt = find_route(h, url);
            if (!rt) {
                wh_resp_send(r, 404, "application/json; charset=utf-8", not_found_body,
                             sizeof(not_found_body) - 1);
            } else {
                rt->fn(r, rt->payload);
                if (!r->sent && !r->on_end) {
                    wh_log_error("%s %s: handler gave no response", method, url);
                    answer_internal(r);
                }
            }
        }
    }

    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->sent || r->body_failed || !r->on_data) {
            /*
             * Answered already: MHD sends the answer once the request is
             * read, so the rest of the body is read and dropped — up to a
             * limit, past which the connection is cut.
             */
            r->discarded += n;
            return r->discarded > DISCARD_MAX ? MHD_NO : MHD_YES;
        }
        if (r->on_data(r, upload_data, n, r->ctx) < 0) {
            r->body_failed = true;
            if (!r->sent)
                answer_internal(r);
        }
        return MHD_YES;
    }

    if (!r->sent && r->on_end && !r->body_failed)
        r->on_end(r, r->ctx);
    if (!r->sent)
        answer_internal(r);
    flush_response(r);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    wh_http *h = cls;
    wh_req *r = *con_cls;
    (void)conn;
    if (!r)
        return;
    *con_cls = NULL;
    if (r->pending)
        MHD_destroy_response(r->pending);
    if (h->cfg.access_log) {
        char line[1200];
        int64_t us = wh_monotonic_us() - r->start_us;
        int n = snprintf(line, sizeof(line), "access %s %.900s %d %llu %lld.%03lldms rid=%s%s\n",
                         r->method_str, r->path, r->sent ? r->status : 499,
                         (unsigned long long)r->bytes, (long long)(us / 1000),
                         (long long)(us % 1000), r->request_id,
                         toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted");
        if (n > 0)
            wh_log_line(line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    }
    wh_pool_free(r->pool); /* runs the handlers' cleanups (open files, sessions) */
    atomic_fetch_sub(&h->inflight, 1);
}

/*
 * libmicrohttpd's own messages (a TLS hello sent to the plain-text port, a
 * malformed request line) concern one client each: debug level.
 */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    wh_log_debug("http: %s", msg);
}

/* ---- lifecycle ---- */

wh_http *wh_http_new(const struct wh_http_config *cfg)
{
    wh_http *h = wh_calloc(1, sizeof(*h));
    h->cfg = *cfg;
    h->cfg.listen_host = wh_strdup(cfg->listen_host ? cfg->listen_host : "127.0.0.1");
    atomic_init(&h->inflight, 0);
    return h;
}

void wh_http_route(wh_http *h, const char *prefix, wh_handler_fn fn, void *payload)
{
    if (h->nroutes == MAX_ROUTES)
        abort();
    struct route *rt = &h->routes[h->nroutes++];
    rt->prefix = wh_strdup(prefix);
    rt->len = strlen(prefix);
    rt->fn = fn;
    rt->payload = payload;
}

int wh_http_start(wh_http *h)
{
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    const struct sockaddr *sa;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                     MHD_USE_TURBO | MHD_USE_ERROR_LOG;

    memset(&a4, 0, sizeof(a4));
    memset(&a6, 0, sizeof(a6));
    if (inet_pton(AF_INET, h->cfg.listen_host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons(h->cfg.port);
        sa = (const struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, h->cfg.listen_host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons(h->cfg.port);
        sa = (const struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        return wh_error_set(WH_EINVALID, "listen address %s is not a numeric IP address",
                            h->cfg.listen_host);
    }
    unsigned threads = h->cfg.threads ? h->cfg.threads : 4;
    /* TLS options go first; with no certificate they are skipped by MHD_OPTION_END early. */
    struct MHD_OptionItem tls[3] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)(uintptr_t)h->cfg.tls_cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)(uintptr_t)h->cfg.tls_key_pem},
        {MHD_OPTION_END, 0, NULL},
    };
    if (h->cfg.tls_cert_pem) {
        if (!h->cfg.tls_key_pem)
            return wh_error_set(WH_EINVALID, "a TLS certificate needs its key");
        flags |= MHD_USE_TLS;
    } else {
        tls[0].option = MHD_OPTION_END;
    }
    h->d = MHD_start_daemon(
        flags, h->cfg.port, NULL, NULL, on_access, h, MHD_OPTION_ARRAY, tls, MHD_OPTION_SOCK_ADDR, sa,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)h->cfg.idle_timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)h->cfg.max_connections,
        /*
         * A connection's memory holds its request headers and read buffer;
         * libmicrohttpd zeroes it between requests of a kept-alive
         * connection (a memset per request) and it stays resident while the
         * connection lives: keep it just above the header cap.
         */
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(h->cfg.max_header_bytes + 16384),
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    if (!h->d)
        return wh_error_set(WH_ERROR, "cannot listen on %s:%u: %s", h->cfg.listen_host,
                            (unsigned)h->cfg.port, strerror(errno));
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : h->cfg.port;
    return 0;
}

uint16_t wh_http_port(const wh_http *h)
{
    return h->port;
}

void wh_http_stop(wh_http *h, int grace_ms)
{
    if (!h->d)
        return;
    MHD_socket s = MHD_quiesce_daemon(h->d);
    if (s != MHD_INVALID_SOCKET)
        close(s);
    int64_t deadline = wh_monotonic_us() + (int64_t)grace_ms * 1000;
    while (atomic_load(&h->inflight) > 0 && wh_monotonic_us() < deadline)
        usleep(10000);
    MHD_stop_daemon(h->d);
    h->d = NULL;
}

void wh_http_free(wh_http *h)
{
    if (!h)
        return;
    if (h->d)
        wh_http_stop(h, 0);
    for (int i = 0; i < h->nroutes; i++)
        free(h->routes[i].prefix);
    free((char *)(uintptr_t)h->cfg.listen_host);
    free(h);
}
