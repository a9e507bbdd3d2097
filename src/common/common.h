/*
 * common: the small shared toolbox every other module may use and which itself
 * depends on nothing but libc and OpenSSL. Error codes and the per-thread error
 * message, aborting allocators, a capped growable buffer, a request arena,
 * digests (sha256/sha512, streaming), logging and a few string helpers.
 */
#ifndef WH_COMMON_H
#define WH_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Expected failures are negative codes; WH_ERROR is everything else. */
enum {
    WH_OK = 0,
    WH_ERROR = -1,
    WH_ENOTFOUND = -2,
    WH_EEXISTS = -3,
    WH_EINVALID = -4,
    WH_ETOOBIG = -5,
    WH_EDENIED = -6,
    WH_ECONFLICT = -7,
    WH_ERANGE = -8,
    WH_EBUSY = -9,
    WH_ENOSPC = -10, /* the disk (or the database on it) is full */
    WH_EDEFERRED = -11, /* the work goes on elsewhere; the caller returns and is called again */
    WH_ENOTSUP = -12,   /* the driver or backend has no such operation */
};

/* Records a message for the current thread's last failure (see wh_error_set). */
void wh_error_vmsg(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
/*
 * Records a message for the current thread's last failure; returns `code`.
 * Defined here rather than in common.c so that the compiler and gcc's static
 * analyzer see that `return wh_error_set(WH_EINVALID, ...)` returns a negative
 * code, and do not follow impossible paths in the callers.
 */
static inline int wh_error_set(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline int wh_error_set(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    wh_error_vmsg(fmt, ap);
    va_end(ap);
    return code;
}
/* The current thread's last message ("" when none). Borrowed until the next set. */
const char *wh_error_msg(void);
void wh_error_clear(void);

/*
 * Allocators that abort on out-of-memory, as redis and h2o do: they never
 * return NULL, and what they return is freed with free(). WH_ATTR_ALLOC says
 * the first to the compiler and to gcc's static analyzer. (Naming free() as
 * the deallocator, gcc 11's malloc(free), would have the analyzer check leaks
 * too, but gcc 12 loses blocks stored through a pointer to their first member,
 * the store and upload drivers' `&s->base`, and reports leaks that are not.)
 */
#define WH_ATTR_ALLOC __attribute__((malloc, returns_nonnull))
WH_ATTR_ALLOC void *wh_malloc(size_t n);
WH_ATTR_ALLOC void *wh_calloc(size_t n, size_t size);
__attribute__((returns_nonnull)) void *wh_realloc(void *p, size_t n);
WH_ATTR_ALLOC char *wh_strdup(const char *s);
WH_ATTR_ALLOC char *wh_strndup(const char *s, size_t n);
WH_ATTR_ALLOC char *wh_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A growable byte buffer that refuses to grow past `cap` (WH_ETOOBIG). */
struct wh_buf {
    char *data;  /* always NUL-terminated when non-NULL */
    size_t len;  /* bytes used, excluding the terminator */
    size_t size; /* bytes allocated */
    size_t cap;  /* hard limit on len */
};
void wh_buf_init(struct wh_buf *b, size_t cap);
void wh_buf_dispose(struct wh_buf *b);
/* Appends; returns 0 or WH_ETOOBIG (the buffer is unchanged then). */
int wh_buf_put(struct wh_buf *b, const void *p, size_t n);
int wh_buf_puts(struct wh_buf *b, const char *s);
int wh_buf_printf(struct wh_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the bytes to the caller (free with free()) and resets the buffer. */
char *wh_buf_detach(struct wh_buf *b, size_t *len_out);

/* An arena: many small allocations freed at once, plus cleanup callbacks. */
typedef struct wh_pool wh_pool;
wh_pool *wh_pool_new(void);
void wh_pool_free(wh_pool *p);
void *wh_pool_alloc(wh_pool *p, size_t n);
char *wh_pool_strdup(wh_pool *p, const char *s);
char *wh_pool_strndup(wh_pool *p, const char *s, size_t n);
char *wh_pool_sprintf(wh_pool *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Runs `fn(arg)` when the pool is freed, last registered first. */
void wh_pool_cleanup(wh_pool *p, void (*fn)(void *), void *arg);

/* Digests: "sha256:<64 hex>" or "sha512:<128 hex>", lower case. */
enum wh_digest_alg { WH_DIGEST_SHA256 = 1, WH_DIGEST_SHA512 = 2 };
#define WH_DIGEST_STR_MAX 136 /* "sha512:" + 128 hex + NUL, rounded */
struct wh_digest {
    enum wh_digest_alg alg;
    char str[WH_DIGEST_STR_MAX]; /* canonical text form */
};
/*
 * Parses a digest string of `len` bytes. Returns 0 or WH_EINVALID (malformed,
 * or an algorithm wharf cannot verify). The canonical form is copied to `out`.
 */
int wh_digest_parse(struct wh_digest *out, const char *s, size_t len);
/* Hex part of the digest (borrowed from `d`). */
const char *wh_digest_hex(const struct wh_digest *d);

/* Streaming hash. */
typedef struct wh_hasher wh_hasher;
wh_hasher *wh_hasher_new(enum wh_digest_alg alg);
void wh_hasher_free(wh_hasher *h);
void wh_hasher_update(wh_hasher *h, const void *p, size_t n);
/* Finishes into `out` (the hasher cannot be updated afterwards). */
void wh_hasher_final(struct wh_digest *out, wh_hasher *h);
/* One-shot hash of a buffer. */
void wh_digest_of(struct wh_digest *out, enum wh_digest_alg alg, const void *p, size_t n);
/* Hashes the file at `path` (WH_ENOTFOUND or WH_ERROR on I/O failure). */
int wh_digest_file(struct wh_digest *out, enum wh_digest_alg alg, const char *path);

/*
 * Logging to stderr or a file (wh_log_open): one write(2) per line so lines
 * never interleave. Lines are text ("TIME LEVEL message") or, with
 * wh_log_set_json, one JSON object each ({"ts":..,"level":..,"msg":..}).
 */
enum wh_log_level { WH_LOG_DEBUG, WH_LOG_INFO, WH_LOG_WARN, WH_LOG_ERROR };
void wh_log_set_level(enum wh_log_level lvl);
/* Parses "debug", "info", "warn" or "error". 0 or WH_EINVALID. */
int wh_log_level_parse(enum wh_log_level *out, const char *name);
/* Whether lines are written as JSON objects (safe to change at any time). */
void wh_log_set_json(bool json);
bool wh_log_json(void);
/*
 * Logs to `path` (appended, created 0600) instead of stderr, or back to
 * stderr when `path` is NULL or "". Called again with the same path it
 * reopens the file (after a rotation); lines written meanwhile go to the old
 * file or the new one, never elsewhere. 0 or WH_ERROR (message set; the
 * previous destination stays).
 */
int wh_log_open(const char *path);
/* Writes the current time as "2026-01-02T03:04:05.678Z" (needs 25 bytes). */
void wh_log_time(char out[32]);
/*
 * Copies `s` into `out` (`n` bytes, NUL-terminated) as the inside of a JSON
 * string: '"', '\\' and control bytes escaped, bytes >= 0x80 as \u00XX (so
 * the line stays valid UTF-8 whatever the input). Ends in "..." if cut.
 */
void wh_log_json_escape(char *out, size_t n, const char *s);
void wh_log(enum wh_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define wh_log_info(...) wh_log(WH_LOG_INFO, __VA_ARGS__)
#define wh_log_warn(...) wh_log(WH_LOG_WARN, __VA_ARGS__)
#define wh_log_error(...) wh_log(WH_LOG_ERROR, __VA_ARGS__)
#define wh_log_debug(...) wh_log(WH_LOG_DEBUG, __VA_ARGS__)
/*
 * Copies `s` into `out` (`n` bytes, always NUL-terminated) for a log line:
 * control bytes, DEL, bytes >= 0x80, '"' and '\\' become \xHH, so no input
 * can forge a line or a field. A value that does not fit ends in "...".
 */
void wh_log_escape(char *out, size_t n, const char *s);
/* Writes one pre-formatted line (the access log). */
void wh_log_line(const char *line, size_t len);

/*
 * Address lists: comma- or space-separated numeric IPv4/IPv6 addresses and
 * CIDR blocks ("127.0.0.1, 10.0.0.0/8, ::1"). wh_addr_list_check returns 0
 * or WH_EINVALID and then points `*bad` (`*badlen` bytes) at the first entry
 * that is neither; wh_addr_list_match tells whether the numeric address `ip`
 * falls in one of the entries (invalid entries never match).
 */
int wh_addr_list_check(const char *list, const char **bad, size_t *badlen);
bool wh_addr_list_match(const char *list, const char *ip);

/* Misc. */
int64_t wh_now_ms(void);          /* wall clock, milliseconds since the epoch */
/* A 64-bit mix of `x` (splitmix64's finaliser), for keys made of several numbers. */
static inline uint64_t wh_mix64(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}
int64_t wh_monotonic_us(void);    /* monotonic clock, microseconds */
int64_t wh_monotonic_ms(void);    /* monotonic clock, milliseconds */
/* Cryptographically strong random bytes (OpenSSL's generator, pooled per thread; aborts on failure). */
void wh_random_bytes(void *out, size_t n);
void wh_random_hex(char *out, size_t nbytes); /* writes 2*nbytes hex + NUL */
/* Parses a non-negative decimal integer of `len` bytes; WH_EINVALID on junk or overflow. */
int wh_parse_u64(uint64_t *out, const char *s, size_t len);
/* mkdir -p; returns 0 or WH_ERROR. */
int wh_mkdirs(const char *path, unsigned mode);
/* fsync a directory by path. */
int wh_fsync_dir(const char *path);

/*
 * An exclusive lock on a file (flock), held until `wh_lockfile_release`: one
 * process at a time per data directory. The file is created if needed and
 * holds the owner's PID (for the message of the next one). Returns 0 with
 * `*fd_out` set, WH_EBUSY when another process holds it (`*holder_out` is its
 * PID, 0 if unknown), or WH_ERROR.
 */
int wh_lockfile_acquire(int *fd_out, long *holder_out, const char *path);
/* Releases a lock taken by wh_lockfile_acquire (closes `fd`; -1 is ignored). */
void wh_lockfile_release(int fd);

/*
 * Cron expressions in Harbor's six-field form (cron.c): "seconds minutes
 * hours day-of-month month day-of-week", e.g. "0 0 0 * * *" (daily at
 * midnight). Each field is a comma-separated list of `*`, `?`, `N`, `N-M`,
 * each optionally with `/step` (`N/step` runs from N to the field's
 * maximum); months and days of the week also take English names (jan, mon).
 * Day-of-week is 0-6, Sunday 0. When both day fields are restricted, a day
 * matching either matches (Vixie cron's rule, kept by Harbor's parser).
 * Times are UTC.
 */
#define WH_CRON_MAX 128 /* expression text incl. NUL */
struct wh_cron {
    uint64_t sec, min, hour, dom, mon, dow; /* bit v set: value v matches */
    bool dom_any, dow_any;                  /* the day field was `*` or `?` (unrestricted) */
};
/*
 * Parses `text`. 0, or WH_EINVALID with a message (wh_error_msg) saying
 * which field is wrong and why.
 */
int wh_cron_parse(struct wh_cron *out, const char *text);
/*
 * The first second after `after_s` (Unix seconds) that `c` matches, in
 * `*out`: 0, or WH_ENOTFOUND when none falls within the next five years
 * (an expression such as "0 0 0 30 2 *" never fires).
 */
int wh_cron_next(int64_t *out, const struct wh_cron *c, int64_t after_s);

/*
 * Fault injection (failpoint.c): named points in the I/O paths (storage:
 * "store.create", "store.write", "store.truncate", "store.fsync",
 * "store.rename", "store.fsyncdir", "store.space"; SQLite: "db.write";
 * vulnerability database import: "vulndb.fsync", "vulndb.rename"; scan
 * workers: "scan.run" fails a scan, "scan.hold" keeps it Running until the
 * server stops, whatever the action; re-matcher: "rematch.hold" (before each
 * inventory of a run) writes what is done and holds the run until the stop; see
 * docs/testing.md) that tests can make fail. A spec is a comma-separated list of rules
 *     name=[N[+]:]action
 * where the rule fires on the Nth hit of `name` (default 1), or on every hit
 * from the Nth with "N+", and `action` is an errno name (ENOSPC, EIO, EDQUOT,
 * EROFS, ENOMEM) or "short" (a write moves fewer bytes than asked) or
 * "corrupt" (a write stores one flipped bit). Compiled in unless
 * WH_NO_FAILPOINTS is defined: when nothing is armed a hit costs one relaxed
 * atomic load.
 */
enum { WH_FAILPOINT_SHORT = -1, WH_FAILPOINT_CORRUPT = -2 };
/*
 * Arms the rules of `spec` (NULL or "" disarms all) and resets the hit
 * counters. Returns 0 or WH_EINVALID (nothing is armed then).
 */
int wh_failpoint_set(const char *spec);
/* How many times `name` was hit since the last wh_failpoint_set (tests). */
unsigned wh_failpoint_hits(const char *name);
/*
 * Counts a hit of `name` and returns what to do: 0 (nothing), an errno value
 * to fail with, WH_FAILPOINT_SHORT or WH_FAILPOINT_CORRUPT. Use through
 * wh_failpoint(), which skips the call when nothing is armed.
 */
int wh_failpoint_eval(const char *name);
#ifdef WH_NO_FAILPOINTS
#define wh_failpoint(name) ((void)(name), 0)
#else
extern bool wh_failpoints_armed_; /* read with __atomic_load_n only */
static inline int wh_failpoint(const char *name)
{
    if (__builtin_expect(__atomic_load_n(&wh_failpoints_armed_, __ATOMIC_RELAXED), 0))
        return wh_failpoint_eval(name);
    return 0;
}
#endif

#endif
