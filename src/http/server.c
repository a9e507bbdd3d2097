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

#include "common/busy.h"
#include "common/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/tcp.h> /* struct tcp_info with its byte counters */
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_ROUTES 16
/*
 * Body bytes read and dropped after an early answer (a 413, a 401): the
 * answer goes out once the request is read, so a client that sends a large
 * body still gets it; past this the connection is cut.
 */
#define DISCARD_MAX ((uint64_t)1 << 30)
#define REAP_INTERVAL_MS 100 /* how often the header deadline and sleeping requests are checked */
#define MAX_SLEEPERS 4096    /* requests held back at once (wh_req_sleep) */
#define PENDING_MAX 64       /* admitted connections not yet announced, tracked per address */
/* see answer_unparsed: only connections closed this soon (never by a timeout, >= 1 s) */
#define UNPARSED_ANSWER_US 500000

/*
 * One accepted connection, from MHD's "started" notification to its
 * "closed" one. The list lets the accept policy count connections per
 * address and lets the reaper thread enforce the header deadline: MHD's own
 * timeout is an idle timeout, which a client trickling one byte at a time
 * never reaches.
 */
struct conn {
    MHD_socket fd;
    char ip[INET6_ADDRSTRLEN];
    bool in_request; /* headers complete, request not finished */
    bool bad_url;    /* the request's URL decoded to a NUL byte */
    bool request_seen; /* a request line was parsed on this connection */
    unsigned requests; /* requests finished on this connection */
    int64_t since_us;  /* accepted, or last request finished */
    struct conn *prev, *next;
};
#define REQUEST_ID_MAX 64      /* longest client X-Request-Id echoed back */

struct route {
    char *prefix;
    size_t len;
    wh_handler_fn fn;
    void *payload;
};

/* A connection admitted by the accept policy, not yet announced by MHD. */
struct pending {
    char ip[INET6_ADDRSTRLEN];
    int64_t until_us; /* 0: free */
};

struct wh_http {
    struct wh_http_config cfg;
    struct MHD_Daemon *d;
    struct route routes[MAX_ROUTES];
    int nroutes;
    struct {
        char *prefix;
        size_t len;
        const struct wh_http_defaults *d;
    } defaults[MAX_ROUTES];
    int ndefaults;
    atomic_int inflight; /* requests between first callback and completion */
    atomic_bool access_log; /* cfg.access_log, changed by wh_http_set_access_log */
    atomic_bool draining;   /* stopping: new connections are closed at accept */
    int lfd;             /* listening socket until MHD takes it, else -1 */
    uint16_t port;
    pthread_mutex_t lock; /* guards conns and stopping */
    pthread_cond_t wake;
    struct conn *conns;
    unsigned nconns; /* connections in `conns` (metrics) */
    bool stopping;
    bool reaper_started;
    pthread_t reaper;
    /* deferred work (wh_req_defer): a bounded queue served by a few threads */
    pthread_mutex_t qlock;
    pthread_cond_t qcond;
    struct defer_job *qhead, *qtail;
    unsigned qused;   /* jobs queued or reserved, at most defer_queue */
    bool qstop;
    unsigned nworkers;
    pthread_t *workers;
    struct pending pending[PENDING_MAX]; /* guarded by lock */
    /* requests held back by wh_req_sleep, guarded by lock */
    struct sleeper *sleepers;
    unsigned nsleepers;
};

struct sleeper {
    wh_req *r;
    int64_t wake_us;
    void *ctx;
    struct sleeper *next;
};

struct defer_job {
    wh_req *r;
    void (*fn)(void *ctx);
    void *ctx;
    struct defer_job *next;
};

struct resp_hdr {
    const char *name, *value;
    struct resp_hdr *next;
};

struct wh_req {
    wh_http *h;
    struct MHD_Connection *conn;
    struct conn *cs; /* the connection's state (NULL if MHD gave none) */
    wh_pool *pool;
    enum wh_method method;
    const char *method_str;
    const char *path;
    const char *client_ip; /* resolved on first use */
    const char *peer_ip;   /* the direct peer's address, resolved on first use */
    int64_t start_us;
    const char *user;      /* who the handler identified (wh_req_set_user), else NULL */
    uint64_t acked_start;  /* the connection's tcpi_bytes_acked when the request began */
    bool acked_known;      /* acked_start was read */
    char request_id[REQUEST_ID_MAX + 1]; /* X-Request-Id: the client's if sane, else made here */
    /* body streaming */
    int (*on_data)(wh_req *r, const char *p, size_t n, void *ctx);
    int (*on_end)(wh_req *r, void *ctx);
    void *ctx;
    bool body_failed;
    bool started;      /* the request has been checked and routed */
    const struct route *route; /* where it goes (NULL: answered by the server) */
    const struct wh_http_defaults *defaults; /* of the path's prefix, or NULL */
    bool handled;      /* the route's handler has returned without deferring */
    struct defer_job *job; /* work the handler deferred, not yet queued */
    void *deferred_ctx;    /* the context of deferred work that has run */
    struct sleeper *sleep; /* a pause the handler asked for, not yet begun */
    uint64_t discarded; /* body bytes dropped after an early answer */
    /* response */
    struct MHD_Response *pending; /* answered, waiting for the end of the request */
    struct resp_hdr *hdrs, *hdrs_tail;
    bool sent;
    bool changing; /* an unsafe method: counted in common/busy.h while in flight */
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

void wh_req_set_user(wh_req *r, const char *name)
{
    r->user = name && *name ? wh_pool_strdup(r->pool, name) : NULL;
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
    return wh_addr_list_match(list, peer_ip(r));
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

/*
 * Whether `host` is a syntactically valid Host header: a name of letters,
 * digits, '-', '.' and '_' or a bracketed IPv6 literal, then an optional
 * numeric port. Anything else (quotes, spaces, slashes, control bytes)
 * could forge the URLs built from it.
 */
static bool host_valid(const char *host)
{
    size_t n = strlen(host), i = 0;
    if (n == 0 || n > 255)
        return false;
    if (host[0] == '[') {
        const char *close = strchr(host, ']');
        if (!close || close == host + 1)
            return false;
        for (const char *p = host + 1; p < close; p++)
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F') ||
                  *p == ':' || *p == '.'))
                return false;
        i = (size_t)(close - host) + 1;
    } else {
        for (; i < n && host[i] != ':'; i++) {
            char c = host[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '_'))
                return false;
        }
        if (i == 0)
            return false;
    }
    if (i == n)
        return true;
    if (host[i] != ':' || i + 1 == n || n - i - 1 > 5)
        return false;
    for (i++; i < n; i++)
        if (host[i] < '0' || host[i] > '9')
            return false;
    return true;
}

const char *wh_req_host(const wh_req *r)
{
    /* requests with an invalid Host never reach a handler (see on_access) */
    const char *host = wh_req_header(r, "Host");
    return host && host_valid(host) ? host : "localhost";
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

int wh_req_defer(wh_req *r, void (*fn)(void *ctx), void *ctx)
{
    wh_http *h = r->h;
    if (h->nworkers == 0 || r->job)
        return wh_error_set(WH_EBUSY, "no deferred-work capacity");
    pthread_mutex_lock(&h->qlock);
    bool room = !h->qstop && h->qused < h->cfg.defer_queue;
    if (room)
        h->qused++; /* reserved: queued by on_access once the connection is suspended */
    pthread_mutex_unlock(&h->qlock);
    if (!room)
        return wh_error_set(WH_EBUSY, "too many requests waiting for deferred work");
    struct defer_job *j = wh_pool_alloc(r->pool, sizeof(*j));
    *j = (struct defer_job){r, fn, ctx, NULL};
    r->job = j;
    return 0;
}

void *wh_req_deferred(const wh_req *r)
{
    return r->deferred_ctx;
}

int wh_req_sleep(wh_req *r, unsigned ms, void *ctx)
{
    wh_http *h = r->h;
    if (r->sleep || r->job || !h->reaper_started)
        return wh_error_set(WH_EBUSY, "cannot hold this request back");
    pthread_mutex_lock(&h->lock);
    bool room = !h->stopping && h->nsleepers < MAX_SLEEPERS;
    if (room)
        h->nsleepers++; /* reserved: listed by on_access once the connection is suspended */
    pthread_mutex_unlock(&h->lock);
    if (!room)
        return wh_error_set(WH_EBUSY, "too many requests held back");
    struct sleeper *z = wh_pool_alloc(r->pool, sizeof(*z));
    *z = (struct sleeper){r, wh_monotonic_us() + (int64_t)ms * 1000, ctx, NULL};
    r->sleep = z;
    return 0;
}

/* Resumes the sleepers whose time has come (all of them with `all`). */
static void wake_sleepers(wh_http *h, bool all)
{
    struct sleeper *due = NULL;
    int64_t now = wh_monotonic_us();
    pthread_mutex_lock(&h->lock);
    for (struct sleeper **pp = &h->sleepers; *pp;) {
        struct sleeper *z = *pp;
        if (all || z->wake_us <= now) {
            *pp = z->next;
            z->next = due;
            due = z;
            h->nsleepers--;
        } else {
            pp = &z->next;
        }
    }
    pthread_mutex_unlock(&h->lock);
    /* resumed outside our lock: MHD takes its own, and calls back into ours */
    while (due) {
        struct sleeper *z = due;
        due = z->next;
        z->r->deferred_ctx = z->ctx;
        MHD_resume_connection(z->r->conn);
    }
}

/* Queues the reserved job of a suspended request. */
static void defer_enqueue(wh_http *h, struct defer_job *j)
{
    pthread_mutex_lock(&h->qlock);
    if (h->qtail)
        h->qtail->next = j;
    else
        h->qhead = j;
    h->qtail = j;
    pthread_cond_signal(&h->qcond);
    pthread_mutex_unlock(&h->qlock);
}

/*
 * A deferred-work thread: runs jobs, then resumes their connection, on which
 * MHD calls on_access again and the handler runs once more. On stop it
 * drains the queue first: every suspended connection is resumed.
 */
static void *worker_main(void *arg)
{
    wh_http *h = arg;
    /*
     * Deferred work is slow on purpose (argon2id) and can be asked for by
     * anyone: it runs at the lowest CPU priority, so under a storm of
     * password checks the requests that need no check keep their share of
     * the CPU, while the checks still get whatever is left.
     */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19) != 0)
        wh_log_debug("http: cannot lower the priority of a deferred-work thread: %s",
                     strerror(errno));
    pthread_mutex_lock(&h->qlock);
    for (;;) {
        while (!h->qhead && !h->qstop)
            pthread_cond_wait(&h->qcond, &h->qlock);
        struct defer_job *j = h->qhead;
        if (!j)
            break; /* stopping and drained */
        h->qhead = j->next;
        if (!h->qhead)
            h->qtail = NULL;
        pthread_mutex_unlock(&h->qlock);
        j->fn(j->ctx);
        j->r->deferred_ctx = j->ctx; /* read after the resume, which orders it */
        struct MHD_Connection *conn = j->r->conn;
        pthread_mutex_lock(&h->qlock);
        h->qused--;
        pthread_mutex_unlock(&h->qlock);
        MHD_resume_connection(conn);
        pthread_mutex_lock(&h->qlock);
    }
    pthread_mutex_unlock(&h->qlock);
    return NULL;
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
    if (r->defaults && r->defaults->headers)
        for (const char *const *hv = r->defaults->headers; hv[0] && hv[1]; hv += 2)
            MHD_add_response_header(resp, hv[0], hv[1]);
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

struct stream {
    long (*read)(void *payload, char *buf, size_t max);
    void (*done)(void *payload);
    void *payload;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *st = cls;
    (void)pos; /* MHD asks for the bytes in order */
    long n = st->read(st->payload, buf, max);
    if (n <= 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    struct stream *st = cls;
    if (st->done)
        st->done(st->payload);
    free(st);
}

void wh_resp_send_stream(wh_req *r, int status, const char *content_type, uint64_t len,
                         long (*read)(void *payload, char *buf, size_t max),
                         void (*done)(void *payload), void *payload)
{
    struct stream *st = wh_calloc(1, sizeof(*st));
    st->read = read;
    st->done = done;
    st->payload = payload;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(len, 65536, stream_read, st, stream_free);
    if (!resp) {
        stream_free(st);
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
 * libmicrohttpd (0.9.75) drops a connection without a word when its first
 * line holds no space. A TLS ClientHello sent to the plain-text port often is
 * such a line (random bytes with a line feed before any space), and clients
 * that try HTTPS first and fall back to HTTP when the server answers in HTTP
 * (the docker CLI with --insecure) then see a bare EOF and give up. So a
 * connection that closes having received bytes but never a request line, and
 * having sent nothing, is answered 400 first, as a malformed request line
 * deserves (RFC 9112, section 3).
 */
static const char bad_line_answer[] = "HTTP/1.1 400 Bad Request\r\n"
                                      "Content-Type: text/plain\r\n"
                                      "Content-Length: 24\r\n"
                                      "Connection: close\r\n\r\n"
                                      "malformed request line\r\n";

/* The connection's count of bytes the peer acknowledged (Linux 4.1+). */
static bool bytes_acked(struct MHD_Connection *conn, uint64_t *out)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    if (!ci)
        return false;
    memset(&ti, 0, sizeof(ti));
    if (getsockopt(ci->connect_fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(ti.tcpi_bytes_acked))
        return false;
    *out = ti.tcpi_bytes_acked;
    return true;
}

static void answer_unparsed(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_sent) + sizeof(ti.tcpi_bytes_sent))
        return; /* a kernel without the counters: as libmicrohttpd does */
    if (ti.tcpi_bytes_received == 0 || ti.tcpi_bytes_sent != 0)
        return; /* nothing came (an idle close), or something was answered */
    char sink[4096];
    for (int i = 0; i < 16 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
        ; /* unread bytes would turn the close into a reset that loses the answer */
    if (send(fd, bad_line_answer, sizeof(bad_line_answer) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) > 0)
        shutdown(fd, SHUT_WR);
}

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

/* The defaults of `path`'s longest prefix, or NULL. */
static const struct wh_http_defaults *find_defaults(const wh_http *h, const char *path)
{
    const struct wh_http_defaults *best = NULL;
    size_t best_len = 0;
    for (int i = 0; i < h->ndefaults; i++)
        if (strncmp(path, h->defaults[i].prefix, h->defaults[i].len) == 0 &&
            (!best || h->defaults[i].len > best_len)) {
            best = h->defaults[i].d;
            best_len = h->defaults[i].len;
        }
    return best;
}

/* An error the server answers by itself, in the body the path's defaults give. */
static void answer_error(wh_req *r, int status, const char *code, const char *message)
{
    const char *ct = "text/plain; charset=utf-8", *body = NULL;
    if (r->defaults && r->defaults->error_body)
        body = r->defaults->error_body(r->pool, status, code, message, &ct);
    if (!body)
        body = wh_pool_sprintf(r->pool, "%s\n", message);
    wh_resp_send(r, status, ct, body, strlen(body));
}

static void answer_internal(wh_req *r)
{
    answer_error(r, 500, "UNKNOWN", "internal server error");
}

/* Counts the values of one header. */
struct count_ctx {
    const char *name;
    unsigned n;
};

static enum MHD_Result count_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    struct count_ctx *c = cls;
    (void)kind, (void)value;
    if (strcasecmp(key, c->name) == 0)
        c->n++;
    return MHD_YES;
}

static unsigned header_count(struct MHD_Connection *conn, const char *name)
{
    struct count_ctx c = {name, 0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_cb, &c);
    return c.n;
}

/*
 * Framing and URL checks that come before any handler: a request that two
 * parties could read differently (two Content-Length headers, or one beside
 * Transfer-Encoding: the classic smuggling set-ups), a URL with an encoded
 * NUL (which would silently cut `v1%00evil` to `v1`) or a Host header that
 * is not a host. Returns the reason, or NULL when the request is sound.
 */
static const char *request_malformed(wh_req *r)
{
    if (r->cs && r->cs->bad_url)
        return "the URL contains an encoded NUL byte";
    unsigned cl = header_count(r->conn, "Content-Length");
    if (cl > 1)
        return "more than one Content-Length header";
    if (cl == 1 && header_count(r->conn, "Transfer-Encoding") > 0)
        return "both Content-Length and Transfer-Encoding";
    unsigned hosts = header_count(r->conn, "Host");
    const char *host = wh_req_header(r, "Host");
    if (hosts > 1 || (host && !host_valid(host)))
        return "invalid Host header";
    return NULL;
}

static void answer_bad_request(wh_req *r, const char *why)
{
    /* the framing may be ambiguous: nothing more is read from this connection */
    wh_resp_header(r, "Connection", "close");
    answer_error(r, 400, "BAD_REQUEST", wh_pool_sprintf(r->pool, "malformed request: %s", why));
}

/*
 * After a handler or on_end returned: when it asked for deferred work
 * (wh_req_defer) or a pause (wh_req_sleep) and has not answered, suspends
 * the connection and hands the request over; MHD calls on_access again once
 * it is resumed, with any unread body still unread. Returns whether it did.
 * A reservation the step did not use (it answered after all) is given back.
 */
static bool park(wh_http *h, wh_req *r, struct MHD_Connection *conn)
{
    if (r->job && !r->sent) {
        struct defer_job *j = r->job;
        r->job = NULL;
        MHD_suspend_connection(conn);
        defer_enqueue(h, j);
        return true;
    }
    if (r->sleep && !r->sent) {
        struct sleeper *z = r->sleep;
        r->sleep = NULL;
        MHD_suspend_connection(conn);
        pthread_mutex_lock(&h->lock);
        z->next = h->sleepers;
        h->sleepers = z;
        pthread_mutex_unlock(&h->lock);
        return true;
    }
    if (r->sleep) {
        r->sleep = NULL;
        pthread_mutex_lock(&h->lock);
        h->nsleepers--;
        pthread_mutex_unlock(&h->lock);
    }
    if (r->job) {
        r->job = NULL;
        pthread_mutex_lock(&h->qlock);
        h->qused--;
        pthread_mutex_unlock(&h->qlock);
    }
    return false;
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
        r->defaults = find_defaults(h, url);
        r->start_us = wh_monotonic_us();
        r->acked_known = bytes_acked(conn, &r->acked_start);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        r->cs = ci ? ci->socket_context : NULL;
        if (r->cs) {
            pthread_mutex_lock(&h->lock);
            r->cs->in_request = true;
            r->cs->request_seen = true;
            pthread_mutex_unlock(&h->lock);
        }
        request_id_init(r);
        *con_cls = r;
        atomic_fetch_add(&h->inflight, 1);
        r->changing = r->method == WH_HTTP_PUT || r->method == WH_HTTP_POST ||
                      r->method == WH_HTTP_PATCH || r->method == WH_HTTP_DELETE;
        if (r->changing)
            wh_busy_enter();

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
        const char *malformed = request_malformed(r);
        if (malformed) {
            answer_bad_request(r, malformed);
        } else if (hbytes > h->cfg.max_header_bytes) {
            answer_error(r, 431, "SIZE_INVALID", "request headers too large");
        } else {
            r->route = find_route(h, url);
            if (!r->route)
                answer_error(r, 404, "NOT_FOUND", "resource not found");
        }
    }
    if (r->route && !r->handled && !r->sent) {
        r->route->fn(r, r->route->payload);
        if (park(h, r, conn))
            return MHD_YES; /* this call repeats when the connection is resumed */
        r->handled = true;
        if (!r->sent && !r->on_end) {
            wh_log_error("%s %s: handler gave no response", method, url);
            answer_internal(r);
        }
    }

    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        wh_metric_add(WH_METRIC_BYTES_IN, n);
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

    if (!r->sent && r->on_end && !r->body_failed) {
        r->on_end(r, r->ctx);
        if (park(h, r, conn))
            return MHD_YES; /* on_end runs again when the connection is resumed */
    }
    if (!r->sent)
        answer_internal(r);
    flush_response(r);
    return MHD_YES;
}

/*
 * What this request delivered. A response MHD finished went entirely to
 * the kernel: its body length. For one cut short (the client went away
 * mid-download) MHD tells nothing, with sendfile least of all, so the
 * count comes from the socket: the bytes the client's TCP stack
 * acknowledged since the request began, capped at the body length. That
 * includes the response headers (and TLS framing on HTTPS), so it may
 * overstate the body by a few hundred bytes; 0 when the kernel gives no
 * counter.
 */
static uint64_t bytes_delivered(wh_req *r, bool completed)
{
    uint64_t now = 0;
    if (completed || r->bytes == 0)
        return r->bytes;
    if (!r->acked_known || !bytes_acked(r->conn, &now) || now < r->acked_start)
        return 0;
    return now - r->acked_start < r->bytes ? now - r->acked_start : r->bytes;
}

/* Writes the request's access-log line, as text or as a JSON object. */
static void access_log(wh_req *r, bool completed)
{
    char line[8800], path[3700], method[40], user[400], ip[200], rid[400], ts[32];
    int64_t us = wh_monotonic_us() - r->start_us;
    int status = r->sent ? r->status : 499;
    unsigned long long bytes = (unsigned long long)bytes_delivered(r, completed);
    const char *client = wh_req_client_ip(r);
    int n;
    wh_log_time(ts);
    if (wh_log_json()) {
        wh_log_json_escape(path, sizeof(path), r->path);
        wh_log_json_escape(method, sizeof(method), r->method_str);
        wh_log_json_escape(ip, sizeof(ip), client);
        wh_log_json_escape(rid, sizeof(rid), r->request_id);
        wh_log_json_escape(user, sizeof(user), r->user);
        n = snprintf(line, sizeof(line),
                     "{\"ts\":\"%s\",\"level\":\"info\",\"msg\":\"access\",\"client\":\"%s\","
                     "\"user\":%s%s%s,\"rid\":\"%s\",\"method\":\"%s\",\"path\":\"%s\","
                     "\"status\":%d,\"bytes\":%llu,\"duration_ms\":%lld.%03lld,"
                     "\"aborted\":%s}\n",
                     ts, ip, r->user ? "\"" : "", r->user ? user : "null", r->user ? "\"" : "",
                     rid, method, path, status, bytes, (long long)(us / 1000),
                     (long long)(us % 1000), completed ? "false" : "true");
    } else {
        wh_log_escape(path, sizeof(path), r->path);
        wh_log_escape(method, sizeof(method), r->method_str);
        wh_log_escape(ip, sizeof(ip), client);
        wh_log_escape(user, sizeof(user), r->user ? r->user : "-");
        n = snprintf(line, sizeof(line),
                     "%s access %s %s %d %llu %lld.%03lldms client=%s user=%s rid=%s%s\n", ts,
                     method, path, status, bytes, (long long)(us / 1000), (long long)(us % 1000),
                     ip, user, r->request_id, completed ? "" : " aborted");
    }
    if (n > 0)
        wh_log_line(line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

_Static_assert(WH_HTTP_OTHER + 1 == WH_METRICS_METHODS, "metrics count every method class");

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
    if (r->cs) {
        pthread_mutex_lock(&h->lock);
        r->cs->in_request = false;
        r->cs->bad_url = false;
        r->cs->requests++;
        r->cs->since_us = wh_monotonic_us();
        pthread_mutex_unlock(&h->lock);
    }
    bool completed = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;
    wh_metric_request((unsigned)r->method, r->sent ? r->status : 499,
                      wh_monotonic_us() - r->start_us);
    wh_metric_add(WH_METRIC_BYTES_OUT, bytes_delivered(r, completed));
    if (atomic_load(&h->access_log))
        access_log(r, completed);
    bool changing = r->changing;
    wh_pool_free(r->pool); /* runs the handlers' cleanups (open files, sessions) */
    atomic_fetch_sub(&h->inflight, 1);
    if (changing)
        wh_busy_leave();
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

/* ---- connections: per-address cap, header deadline, NUL in URLs ---- */

static void sockaddr_text(char *out, size_t n, const struct sockaddr *sa)
{
    snprintf(out, n, "unknown");
    if (!sa)
        return;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)n);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)n);
}

/*
 * MHD's accept policy: refuses a connection from an address that already
 * holds max_connections_per_ip of them, unless it is a trusted proxy (every
 * client behind a proxy shares its address).
 */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    wh_http *h = cls;
    char ip[INET6_ADDRSTRLEN];
    (void)addrlen;
    if (atomic_load(&h->draining))
        return MHD_NO;
    if (h->cfg.max_connections_per_ip == 0)
        return MHD_YES;
    sockaddr_text(ip, sizeof(ip), addr);
    if (h->cfg.trusted_proxies && wh_addr_list_match(h->cfg.trusted_proxies, ip))
        return MHD_YES;
    unsigned n = 0;
    int64_t now = wh_monotonic_us();
    pthread_mutex_lock(&h->lock);
    for (struct conn *c = h->conns; c; c = c->next)
        if (strcmp(c->ip, ip) == 0)
            n++;
    /*
     * Connections accepted by other worker threads but not yet announced
     * (MHD's "started" notification comes later) count too, or threads
     * accepting at once would each let one more in. A reservation MHD never
     * announces (it failed to set the connection up) lapses after a second.
     */
    struct pending *free_slot = NULL;
    for (size_t i = 0; i < PENDING_MAX; i++) {
        struct pending *pd = &h->pending[i];
        if (pd->until_us > now && strcmp(pd->ip, ip) == 0)
            n++;
        else if (pd->until_us <= now && !free_slot)
            free_slot = pd;
    }
    bool ok = n < h->cfg.max_connections_per_ip;
    if (ok && free_slot) {
        snprintf(free_slot->ip, sizeof(free_slot->ip), "%s", ip);
        free_slot->until_us = now + 1000000;
    }
    pthread_mutex_unlock(&h->lock);
    if (ok)
        return MHD_YES;
    wh_log_debug("http: refused a connection from %s: %u open (http.max_connections_per_ip)", ip,
                 n);
    return MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    wh_http *h = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        struct conn *c = wh_calloc(1, sizeof(*c));
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        c->fd = ci ? ci->connect_fd : MHD_INVALID_SOCKET;
        ci = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        sockaddr_text(c->ip, sizeof(c->ip), ci ? ci->client_addr : NULL);
        c->since_us = wh_monotonic_us();
        pthread_mutex_lock(&h->lock);
        for (size_t i = 0; i < PENDING_MAX; i++) {
            struct pending *pd = &h->pending[i];
            if (pd->until_us > c->since_us && strcmp(pd->ip, c->ip) == 0) {
                pd->until_us = 0; /* announced: counted in the list from now on */
                break;
            }
        }
        c->next = h->conns;
        if (h->conns)
            h->conns->prev = c;
        h->conns = c;
        h->nconns++;
        pthread_mutex_unlock(&h->lock);
        *socket_context = c;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        /* MHD closes the socket after this returns: the reaper never sees a stale fd */
        struct conn *c = *socket_context;
        if (!c)
            return;
        /*
         * Only a connection closed soon after it came (a TLS hello is refused
         * at once) is answered: one cut by the header deadline (fd cleared by
         * the reaper) or by the idle timeout just goes.
         */
        if (!c->request_seen && !h->cfg.tls_cert_pem && c->fd != MHD_INVALID_SOCKET &&
            wh_monotonic_us() - c->since_us < UNPARSED_ANSWER_US) {
            const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
            if (ci)
                answer_unparsed(ci->connect_fd);
        }
        pthread_mutex_lock(&h->lock);
        if (c->prev)
            c->prev->next = c->next;
        else
            h->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        h->nconns--;
        pthread_mutex_unlock(&h->lock);
        free(c);
        *socket_context = NULL;
    }
}

/*
 * Enforces http.header_timeout: a new connection must deliver its first
 * request's headers within header_timeout; a kept-alive one, its next
 * request's headers within idle_timeout + header_timeout of the previous
 * answer. Late connections are shut down (MHD notices and closes them).
 */
static void *reaper_main(void *arg)
{
    wh_http *h = arg;
    pthread_mutex_lock(&h->lock);
    while (!h->stopping) {
        if (h->sleepers) {
            pthread_mutex_unlock(&h->lock);
            wake_sleepers(h, false);
            pthread_mutex_lock(&h->lock);
        }
        int64_t now = wh_monotonic_us();
        int64_t first = (int64_t)h->cfg.header_timeout_s * 1000000;
        int64_t later = first + (int64_t)h->cfg.idle_timeout_s * 1000000;
        for (struct conn *c = h->conns; c && h->cfg.header_timeout_s; c = c->next) {
            if (c->in_request || c->fd == MHD_INVALID_SOCKET)
                continue;
            if (now - c->since_us > (c->requests ? later : first)) {
                shutdown(c->fd, SHUT_RDWR);
                c->fd = MHD_INVALID_SOCKET; /* once */
            }
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)REAP_INTERVAL_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->wake, &h->lock, &ts);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Percent-decoding of URLs and query arguments, in place (MHD's own
 * decoder turns %00 into a NUL that silently ends the string). An encoded
 * NUL stays encoded and marks the connection's request as malformed.
 */
static size_t unescape(void *cls, struct MHD_Connection *connection, char *s)
{
    char *w = s;
    bool nul = false;
    (void)cls;
    for (const char *p = s; *p;) {
        int hi, lo;
        if (p[0] == '%' && (hi = hexval(p[1])) >= 0 && (lo = hexval(p[2])) >= 0) {
            int v = hi * 16 + lo;
            if (v == 0) {
                nul = true;
                memmove(w, p, 3);
                w += 3;
            } else {
                *w++ = (char)v;
            }
            p += 3;
        } else {
            *w++ = *p++;
        }
    }
    *w = '\0';
    if (nul) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        struct conn *c = ci ? ci->socket_context : NULL;
        if (c)
            c->bad_url = true; /* only this connection's thread touches the flag here */
    }
    return (size_t)(w - s);
}

/* ---- lifecycle ---- */

wh_http *wh_http_new(const struct wh_http_config *cfg)
{
    wh_http *h = wh_calloc(1, sizeof(*h));
    h->cfg = *cfg;
    h->cfg.listen_host = wh_strdup(cfg->listen_host ? cfg->listen_host : "127.0.0.1");
    h->lfd = -1;
    atomic_init(&h->inflight, 0);
    atomic_init(&h->access_log, cfg->access_log);
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->wake, NULL);
    pthread_mutex_init(&h->qlock, NULL);
    pthread_cond_init(&h->qcond, NULL);
    return h;
}

void wh_http_stats(wh_http *h, unsigned *inflight, unsigned *connections)
{
    int n = atomic_load(&h->inflight);
    *inflight = n > 0 ? (unsigned)n : 0;
    pthread_mutex_lock(&h->lock);
    *connections = h->nconns;
    pthread_mutex_unlock(&h->lock);
}

void wh_http_set_access_log(wh_http *h, bool on)
{
    atomic_store(&h->access_log, on);
}

void wh_http_defaults(wh_http *h, const char *prefix, const struct wh_http_defaults *d)
{
    if (h->ndefaults == MAX_ROUTES)
        abort();
    h->defaults[h->ndefaults].prefix = wh_strdup(prefix);
    h->defaults[h->ndefaults].len = strlen(prefix);
    h->defaults[h->ndefaults].d = d;
    h->ndefaults++;
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

/*
 * Opens the listening socket: SO_REUSEADDR (a restart may bind while old
 * connections sit in TIME_WAIT) but never SO_REUSEPORT, so that a second
 * server on a busy port fails here instead of silently sharing the port's
 * connections with the first. Returns the socket, or -1 with the message set.
 */
static int open_listener(const struct sockaddr *sa, socklen_t len, const char *host,
                         uint16_t port, uint16_t *port_out)
{
    int one = 1;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return wh_error_set(WH_ERROR, "cannot listen on %s:%u: socket: %s", host,
                            (unsigned)port, strerror(errno));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        goto fail;
    if (sa->sa_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
        goto fail;
    if (bind(fd, sa, len) < 0) {
        int err = errno;
        close(fd);
        if (err == EADDRINUSE)
            return wh_error_set(WH_ERROR, "cannot listen on %s:%u: address already in use "
                                          "(another server, perhaps another wharf, has it)",
                                host, (unsigned)port);
        return wh_error_set(WH_ERROR, "cannot listen on %s:%u: %s", host, (unsigned)port,
                            strerror(err));
    }
    if (listen(fd, 1024) < 0)
        goto fail;
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) < 0)
        goto fail;
    *port_out = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
    return fd;
fail : {
    int err = errno;
    close(fd);
    return wh_error_set(WH_ERROR, "cannot listen on %s:%u: %s", host, (unsigned)port,
                        strerror(err));
}
}

int wh_http_listen(wh_http *h)
{
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    const struct sockaddr *sa;
    socklen_t salen;

    if (h->lfd >= 0 || h->d)
        return 0;
    memset(&a4, 0, sizeof(a4));
    memset(&a6, 0, sizeof(a6));
    if (inet_pton(AF_INET, h->cfg.listen_host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons(h->cfg.port);
        sa = (const struct sockaddr *)&a4;
        salen = sizeof(a4);
    } else if (inet_pton(AF_INET6, h->cfg.listen_host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons(h->cfg.port);
        sa = (const struct sockaddr *)&a6;
        salen = sizeof(a6);
    } else {
        return wh_error_set(WH_EINVALID, "listen address %s is not a numeric IP address",
                            h->cfg.listen_host);
    }
    h->lfd = open_listener(sa, salen, h->cfg.listen_host, h->cfg.port, &h->port);
    return h->lfd < 0 ? WH_ERROR : 0;
}

/*
 * Ends the deferred-work threads (they drain their queue, resuming every
 * suspended connection) and the reaper, and resumes every request still held
 * back: MHD must not be stopped with suspended connections.
 */
static void stop_helpers(wh_http *h)
{
    pthread_mutex_lock(&h->qlock);
    h->qstop = true;
    pthread_cond_broadcast(&h->qcond);
    pthread_mutex_unlock(&h->qlock);
    for (unsigned i = 0; i < h->nworkers; i++)
        pthread_join(h->workers[i], NULL);
    h->nworkers = 0;
    if (h->reaper_started) {
        pthread_mutex_lock(&h->lock);
        h->stopping = true;
        pthread_cond_signal(&h->wake);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->reaper, NULL);
        h->reaper_started = false;
    }
    wake_sleepers(h, true);
}

/* The deferred-work threads and the connection reaper. 0 or WH_ERROR. */
static int start_helpers(wh_http *h)
{
    if (h->cfg.defer_threads && h->cfg.defer_queue) {
        h->workers = wh_calloc(h->cfg.defer_threads, sizeof(*h->workers));
        for (unsigned i = 0; i < h->cfg.defer_threads; i++) {
            if (pthread_create(&h->workers[i], NULL, worker_main, h) != 0)
                break;
            h->nworkers++;
        }
    }
    if (pthread_create(&h->reaper, NULL, reaper_main, h) != 0) {
        stop_helpers(h);
        return wh_error_set(WH_ERROR, "cannot start the connection reaper thread");
    }
    h->reaper_started = true;
    return 0;
}

int wh_http_start(wh_http *h)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                     MHD_USE_TURBO | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    int error;

    if ((error = wh_http_listen(h)) < 0)
        return error;
    if (strchr(h->cfg.listen_host, ':'))
        flags |= MHD_USE_IPv6;
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
    /*
     * The deferred-work threads and the reaper first: MHD's threads answer
     * the connections already waiting on the socket as soon as they start,
     * and a login among them must find the password checkers there (it was
     * answered 429 otherwise).
     */
    if ((error = start_helpers(h)) < 0) {
        close(h->lfd);
        h->lfd = -1;
        return error;
    }
    /* MHD takes the socket: it closes it when it stops, or when it fails to start */
    int lfd = h->lfd;
    h->lfd = -1;
    h->d = MHD_start_daemon(
        flags, h->port, accept_policy, h, on_access, h, MHD_OPTION_ARRAY, tls,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)lfd, MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, h, MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)h->cfg.idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)h->cfg.max_connections,
        /*
         * A connection's memory holds its request headers and read buffer;
         * libmicrohttpd zeroes it between requests of a kept-alive
         * connection (a memset per request) and it stays resident while the
         * connection lives: keep it just above the header cap.
         */
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(h->cfg.max_header_bytes + 16384),
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    if (!h->d) {
        int err = errno;
        stop_helpers(h);
        return wh_error_set(WH_ERROR, "cannot serve on %s:%u: %s", h->cfg.listen_host,
                            (unsigned)h->port, strerror(err));
    }
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
    /*
     * New connections are closed as soon as they are accepted. Not
     * MHD_quiesce_daemon: with epoll and a thread pool it races the worker
     * threads that take the listening socket out of their epoll sets too,
     * and the loser aborts the process ("Failed to remove listen FD from
     * epoll set", libmicrohttpd 0.9.75). The socket itself is closed by
     * MHD_stop_daemon.
     */
    atomic_store(&h->draining, true);
    int64_t deadline = wh_monotonic_us() + (int64_t)grace_ms * 1000;
    while (atomic_load(&h->inflight) > 0 && wh_monotonic_us() < deadline)
        usleep(10000);
    stop_helpers(h);
    MHD_stop_daemon(h->d);
    h->d = NULL;
}

void wh_http_free(wh_http *h)
{
    if (!h)
        return;
    if (h->d)
        wh_http_stop(h, 0);
    if (h->lfd >= 0)
        close(h->lfd); /* bound, never served */
    for (int i = 0; i < h->nroutes; i++)
        free(h->routes[i].prefix);
    for (int i = 0; i < h->ndefaults; i++)
        free(h->defaults[i].prefix);
    free((char *)(uintptr_t)h->cfg.listen_host);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->qlock);
    pthread_cond_destroy(&h->qcond);
    free(h->workers);
    free(h);
}
