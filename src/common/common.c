/*
 * common.c: errors, allocation, buffers, the arena, logging and small helpers.
 * Digests live in digest.c. Nothing here knows about HTTP, SQL or files beyond
 * the two filesystem helpers at the end.
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- errors ---- */

static _Thread_local char err_msg[512];

void wh_error_vmsg(const char *fmt, va_list ap)
{
    /* Format aside first: the arguments may include wh_error_msg() itself. */
    char tmp[sizeof(err_msg)];
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    memcpy(err_msg, tmp, sizeof(tmp));
}

const char *wh_error_msg(void)
{
    return err_msg;
}

void wh_error_clear(void)
{
    err_msg[0] = '\0';
}

/* ---- allocation ---- */

__attribute__((noreturn)) static void oom(size_t n)
{
    fprintf(stderr, "wharf: out of memory allocating %zu bytes\n", n);
    abort();
}

void *wh_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *wh_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *wh_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *wh_strdup(const char *s)
{
    return wh_strndup(s, strlen(s));
}

char *wh_strndup(const char *s, size_t n)
{
    char *p = wh_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *wh_sprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    char *p = wh_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

/* ---- buffers ---- */

void wh_buf_init(struct wh_buf *b, size_t cap)
{
    b->data = NULL;
    b->len = 0;
    b->size = 0;
    b->cap = cap;
}

void wh_buf_dispose(struct wh_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->size = 0;
}

int wh_buf_put(struct wh_buf *b, const void *p, size_t n)
{
    size_t need;
    if (__builtin_add_overflow(b->len, n, &need) || need > b->cap)
        return wh_error_set(WH_ETOOBIG, "buffer limit of %zu bytes exceeded", b->cap);
    if (need + 1 > b->size) {
        size_t sz = b->size ? b->size : 256;
        while (sz < need + 1)
            sz *= 2;
        b->data = wh_realloc(b->data, sz);
        b->size = sz;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len = need;
    b->data[b->len] = '\0';
    return 0;
}

int wh_buf_puts(struct wh_buf *b, const char *s)
{
    return wh_buf_put(b, s, strlen(s));
}

int wh_buf_printf(struct wh_buf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return WH_ERROR;
    if ((size_t)n < sizeof(small))
        return wh_buf_put(b, small, (size_t)n);
    char *big = wh_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = wh_buf_put(b, big, (size_t)n);
    free(big);
    return rc;
}

char *wh_buf_detach(struct wh_buf *b, size_t *len_out)
{
    char *p = b->data ? b->data : wh_strdup("");
    if (len_out)
        *len_out = b->len;
    b->data = NULL;
    b->len = b->size = 0;
    return p;
}

/* ---- arena ---- */

struct pool_chunk {
    struct pool_chunk *next;
    size_t used, size;
    max_align_t data[]; /* aligned storage */
};

struct pool_cleanup {
    struct pool_cleanup *next;
    void (*fn)(void *);
    void *arg;
};

struct wh_pool {
    struct pool_chunk *chunks;
    struct pool_cleanup *cleanups;
};

#define POOL_CHUNK 4096

wh_pool *wh_pool_new(void)
{
    return wh_calloc(1, sizeof(wh_pool));
}

void wh_pool_free(wh_pool *p)
{
    if (!p)
        return;
    while (p->cleanups) {
        struct pool_cleanup *c = p->cleanups;
        p->cleanups = c->next;
        c->fn(c->arg);
    }
    while (p->chunks) {
        struct pool_chunk *c = p->chunks;
        p->chunks = c->next;
        free(c);
    }
    free(p);
}

void *wh_pool_alloc(wh_pool *p, size_t n)
{
    size_t al = sizeof(max_align_t);
    n = (n + al - 1) / al * al;
    struct pool_chunk *c = p->chunks;
    if (!c || c->size - c->used < n) {
        size_t sz = n > POOL_CHUNK ? n : POOL_CHUNK;
        c = wh_malloc(sizeof(*c) + sz);
        c->used = 0;
        c->size = sz;
        /* keep the roomier chunk at the head */
        if (p->chunks && n > POOL_CHUNK) {
            c->next = p->chunks->next;
            p->chunks->next = c;
        } else {
            c->next = p->chunks;
            p->chunks = c;
        }
    }
    void *r = (char *)c->data + c->used;
    c->used += n;
    return r;
}

char *wh_pool_strndup(wh_pool *p, const char *s, size_t n)
{
    char *r = wh_pool_alloc(p, n + 1);
    memcpy(r, s, n);
    r[n] = '\0';
    return r;
}

char *wh_pool_strdup(wh_pool *p, const char *s)
{
    return s ? wh_pool_strndup(p, s, strlen(s)) : NULL;
}

char *wh_pool_sprintf(wh_pool *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    char *r = wh_pool_alloc(p, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(r, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return r;
}

void wh_pool_cleanup(wh_pool *p, void (*fn)(void *), void *arg)
{
    struct pool_cleanup *c = wh_pool_alloc(p, sizeof(*c));
    c->fn = fn;
    c->arg = arg;
    c->next = p->cleanups;
    p->cleanups = c;
}

/* ---- logging ---- */

static _Atomic int log_level = WH_LOG_INFO;
static _Atomic bool log_as_json;
static _Atomic int log_fd = STDERR_FILENO;
static pthread_mutex_t log_open_lock = PTHREAD_MUTEX_INITIALIZER;

void wh_log_set_level(enum wh_log_level lvl)
{
    atomic_store(&log_level, (int)lvl);
}

int wh_log_level_parse(enum wh_log_level *out, const char *name)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (enum wh_log_level)i;
            return 0;
        }
    }
    return WH_EINVALID;
}

void wh_log_set_json(bool json)
{
    atomic_store(&log_as_json, json);
}

bool wh_log_json(void)
{
    return atomic_load(&log_as_json);
}

int wh_log_open(const char *path)
{
    int fd = STDERR_FILENO, error = 0;
    pthread_mutex_lock(&log_open_lock); /* orders concurrent reopens */
    int cur = atomic_load(&log_fd);
    if (path && *path) {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            error = wh_error_set(WH_ERROR, "log file %s: %s", path, strerror(errno));
            goto out;
        }
    }
    if (cur == STDERR_FILENO) {
        atomic_store(&log_fd, fd); /* the first file (or stderr still) */
    } else {
        /*
         * Writers may hold the current descriptor's number: dup3 makes that
         * number point to the new file in one step, so no line goes to a
         * closed descriptor, nor to one the number was reused for.
         */
        if (dup3(fd, cur, O_CLOEXEC) < 0)
            error = wh_error_set(WH_ERROR, "log file %s: %s", path ? path : "", strerror(errno));
        if (fd != STDERR_FILENO)
            close(fd);
    }
out:
    pthread_mutex_unlock(&log_open_lock);
    return error;
}

void wh_log_time(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ts.tv_nsec / 1000000) % 1000);
}

void wh_log_json_escape(char *out, size_t n, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t w = 0;
    if (n == 0)
        return;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        char tmp[8];
        size_t need;
        if (*p == '"' || *p == '\\') {
            tmp[0] = '\\', tmp[1] = (char)*p, need = 2;
        } else if (*p >= 0x20 && *p < 0x7f) {
            tmp[0] = (char)*p, need = 1;
        } else {
            memcpy(tmp, "\\u00", 4);
            tmp[4] = hex[*p >> 4], tmp[5] = hex[*p & 15], need = 6;
        }
        if (w + need + 4 > n) { /* keep room for "..." and the NUL */
            if (w + 4 <= n) {
                memcpy(out + w, "...", 3);
                w += 3;
            }
            break;
        }
        memcpy(out + w, tmp, need);
        w += need;
    }
    out[w < n ? w : n - 1] = '\0';
}

void wh_log_escape(char *out, size_t n, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t w = 0;
    if (n == 0)
        return;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        bool plain = *p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\';
        size_t need = plain ? 1 : 4;
        if (w + need + 4 > n) { /* keep room for "..." and the NUL */
            if (w + 4 <= n) {
                memcpy(out + w, "...", 3);
                w += 3;
            }
            break;
        }
        if (plain) {
            out[w++] = (char)*p;
        } else {
            out[w++] = '\\';
            out[w++] = 'x';
            out[w++] = hex[*p >> 4];
            out[w++] = hex[*p & 15];
        }
    }
    out[w < n ? w : n - 1] = '\0';
}

void wh_log_line(const char *line, size_t len)
{
    int fd = atomic_load(&log_fd);
    while (len) {
        ssize_t w = write(fd, line, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        line += w;
        len -= (size_t)w;
    }
}

void wh_log(enum wh_log_level lvl, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if ((int)lvl < atomic_load(&log_level))
        return;
    /* a JSON message is escaped into at most 4 KiB (longer ones end in "...") */
    char msg[2048], line[4096 + 128], ts[32];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (m < 0)
        msg[0] = '\0';
    wh_log_time(ts);
    int n;
    if (atomic_load(&log_as_json)) {
        char esc[4096];
        wh_log_json_escape(esc, sizeof(esc), msg);
        n = snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n", ts,
                     names[lvl], esc);
    } else {
        n = snprintf(line, sizeof(line), "%s %s %s\n", ts, names[lvl], msg);
    }
    if (n < 0)
        return;
    size_t len = (size_t)n;
    if (len > sizeof(line) - 1) {
        len = sizeof(line) - 1;
        line[len - 1] = '\n';
    }
    wh_log_line(line, len);
}

/* ---- misc ---- */

int64_t wh_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t wh_monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t wh_monotonic_ms(void)
{
    return wh_monotonic_us() / 1000;
}

/*
 * Random bytes come from OpenSSL's generator RANDOM_POOL at a time, into a
 * pool of each thread: one RAND_bytes call costs several thousand
 * instructions whatever its length, and every request takes 16 bytes for its
 * id. Bytes are wiped from the pool as they are handed out, and a child of
 * fork() forgets the pool it inherited, so that parent and child never hand
 * out the same bytes.
 */
#define RANDOM_POOL 256
static _Thread_local unsigned char random_pool[RANDOM_POOL];
static _Thread_local size_t random_left;
static pthread_once_t random_once = PTHREAD_ONCE_INIT;

static void random_forget(void)
{
    explicit_bzero(random_pool, sizeof(random_pool));
    random_left = 0;
}

static void random_setup(void)
{
    if (pthread_atfork(NULL, NULL, random_forget) != 0)
        abort();
}

void wh_random_bytes(void *out, size_t n)
{
    unsigned char *o = out;
    pthread_once(&random_once, random_setup);
    while (n) {
        if (random_left == 0) {
            if (RAND_bytes(random_pool, RANDOM_POOL) != 1)
                abort();
            random_left = RANDOM_POOL;
        }
        size_t k = n < random_left ? n : random_left;
        unsigned char *src = random_pool + (RANDOM_POOL - random_left);
        memcpy(o, src, k);
        explicit_bzero(src, k);
        random_left -= k;
        o += k;
        n -= k;
    }
}

void wh_random_hex(char *out, size_t nbytes)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[64];
    if (nbytes > sizeof(raw))
        nbytes = sizeof(raw);
    wh_random_bytes(raw, nbytes);
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * nbytes] = '\0';
    explicit_bzero(raw, nbytes);
}

int wh_parse_u64(uint64_t *out, const char *s, size_t len)
{
    uint64_t v = 0;
    if (len == 0 || len > 20)
        return WH_EINVALID;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return WH_EINVALID;
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
            return WH_EINVALID;
    }
    *out = v;
    return 0;
}

int wh_mkdirs(const char *path, unsigned mode)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp))
        return wh_error_set(WH_ERROR, "path too long");
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) < 0 && errno != EEXIST)
            return wh_error_set(WH_ERROR, "mkdir %s: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST)
        return wh_error_set(WH_ERROR, "mkdir %s: %s", tmp, strerror(errno));
    return 0;
}

int wh_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return wh_error_set(WH_ERROR, "open %s: %s", path, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    return rc < 0 ? wh_error_set(WH_ERROR, "fsync %s: %s", path, strerror(errno)) : 0;
}

int wh_lockfile_acquire(int *fd_out, long *holder_out, const char *path)
{
    char text[32];
    *holder_out = 0;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return wh_error_set(WH_ERROR, "open %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int err = errno;
        if (err == EWOULDBLOCK) {
            ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
            uint64_t pid = 0;
            if (n > 0) {
                text[n] = '\0';
                if (wh_parse_u64(&pid, text, strcspn(text, "\n")) == 0 && pid <= INT32_MAX)
                    *holder_out = (long)pid;
            }
        }
        close(fd);
        if (err == EWOULDBLOCK)
            return wh_error_set(WH_EBUSY, "%s is locked by another process", path);
        return wh_error_set(WH_ERROR, "lock %s: %s", path, strerror(err));
    }
    /* Ours now: record our PID for whoever tries next (best effort). */
    int n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, text, (size_t)n, 0) != n)
        wh_log_warn("lock file %s: cannot record the PID: %s", path, strerror(errno));
    *fd_out = fd;
    return 0;
}

void wh_lockfile_release(int fd)
{
    if (fd >= 0)
        close(fd); /* closing the last descriptor drops the flock */
}
