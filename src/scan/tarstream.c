/*
 * tarstream.c: a tar archive read from a stream of bytes, for layers and for
 * `docker save` tarballs. Two stages: the stream is decompressed once (gzip
 * by ISA-L's igzip, about twice as fast as zlib; zstd, xz and bzip2 by
 * libarchive; anything else is taken as an uncompressed tar -- the list
 * container runtimes detect), then read as tar by libarchive with no filter
 * of its own, so a layer compressed twice is refused instead of inflated
 * twice. Every byte the first stage produces is counted against a cap on the
 * total and a cap on the ratio to the compressed bytes read.
 *
 * A tar that stops after its last entry's data, without the padding and the
 * two zero blocks of the end-of-archive marker (POSIX ustar; umoci 0.4.7
 * `insert` writes such layers, and docker, podman and Go's archive/tar
 * accept them), is read like any other: zeros are supplied after the real
 * end, and an entry whose declared data runs past that end is still an error.
 */
#include "scan/scan_int.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <isa-l/igzip_lib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RAW_BLOCK 65536
#define INFLATE_BLOCK (256 * 1024)
/* bytes any stream may produce before the ratio cap applies (small layers, headers) */
#define RATIO_SLACK (64ull << 20)

enum unpack_mode { UNPACK_PLAIN, UNPACK_IGZIP, UNPACK_ARCHIVE };

/* What messages call the stream. */
#define NAME(t) ((t)->what ? (t)->what : "the layer")

struct wh_tar {
    struct archive *a; /* the tar reader (no filters) */
    struct wh_reader *rd;
    const char *what; /* "docker-archive:FILE" starts every message; NULL: a layer the caller names */
    enum unpack_mode mode;
    bool started;
    uint64_t raw;     /* compressed bytes read from rd */
    uint64_t out;     /* decompressed bytes produced (real ones, no padding) */
    uint64_t max_out; /* cap on out */
    uint64_t ratio;   /* out <= ratio * raw + RATIO_SLACK; 0 = no ratio cap */
    int error;        /* the first failure (WH_ETOOBIG, WH_EINVALID), 0 if none */
    char msg[400];
    /* the end of the real stream, and the zeros supplied after it */
    bool ended;
    size_t pad;
    uint64_t data_end; /* where the current entry's data ends, as its header declares */
    char entry[160];   /* its name, for messages */
    /* first stage */
    struct archive *dec; /* libarchive raw reader for zstd, xz and bzip2 */
    bool have_first;     /* `in` holds the first block, not yet handed on */
    size_t first_len;
    bool member_done; /* igzip: the current gzip member is complete */
    struct inflate_state st;
    unsigned char in[RAW_BLOCK];
    unsigned char obuf[INFLATE_BLOCK];
};

static const unsigned char zeros[1536];

/* Records the first failure; later ones are consequences of it. Returns -1 for callbacks. */
static int fail(struct wh_tar *t, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct wh_tar *t, int code, const char *fmt, ...)
{
    if (t->error)
        return -1;
    va_list ap;
    char m[300];
    va_start(ap, fmt);
    vsnprintf(m, sizeof(m), fmt, ap);
    va_end(ap);
    t->error = code;
    snprintf(t->msg, sizeof(t->msg), "%s %s", NAME(t), m);
    return -1;
}

/* Raw bytes from the source, counted. */
static ssize_t raw_read(struct wh_tar *t, void *buf, size_t n)
{
    ssize_t r = t->rd->read(t->rd->ctx, buf, n);
    if (r < 0)
        return fail(t, WH_EINVALID, "could not be read");
    t->raw += (uint64_t)r;
    return r;
}

static const char *compression_of(const unsigned char *p, size_t n)
{
    if (n >= 3 && p[0] == 0x1f && p[1] == 0x8b && p[2] == 8)
        return "gzip";
    if (n >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd)
        return "zstd";
    if (n >= 6 && memcmp(p, "\xfd" "7zXZ\0", 6) == 0)
        return "xz";
    if (n >= 4 && p[0] == 'B' && p[1] == 'Z' && p[2] == 'h' && p[3] >= '1' && p[3] <= '9')
        return "bzip2";
    return NULL;
}

/* Counts `n` produced bytes against the caps; -1 when one is hit. */
static int account(struct wh_tar *t, size_t n, const unsigned char *p)
{
    if (p && t->out == 0 && n > 0 && t->mode != UNPACK_PLAIN) {
        const char *inner = compression_of(p, n);
        if (inner)
            return fail(t, WH_EINVALID, "is compressed twice (%s data inside the compressed stream): "
                        "not a tar that a container runtime would unpack", inner);
    }
    t->out += n;
    if (t->out > t->max_out)
        return fail(t, WH_ETOOBIG, "is over the cap of %llu decompressed bytes", (unsigned long long)t->max_out);
    uint64_t allowed;
    if (__builtin_mul_overflow(t->ratio, t->raw, &allowed))
        allowed = UINT64_MAX;
    if (t->ratio && t->mode != UNPACK_PLAIN && t->out > RATIO_SLACK && t->out - RATIO_SLACK > allowed)
        return fail(t, WH_ETOOBIG, "decompresses to over %llu times its compressed size "
                    "(%llu bytes from %llu): refused as a decompression bomb",
                    (unsigned long long)t->ratio, (unsigned long long)t->out,
                    (unsigned long long)t->raw);
    return 0;
}

/* igzip: inflates the next block of a (possibly multi-member) gzip stream. */
static ssize_t gzip_block(struct wh_tar *t, const void **out)
{
    for (;;) {
        if (t->member_done) {
            /* another member may follow (concatenated gzip); anything else ends the stream */
            if (t->st.avail_in < 3 && t->st.avail_in > 0) {
                /* too few bytes to tell: keep them and read on */
                unsigned char keep[3];
                size_t k = t->st.avail_in;
                memcpy(keep, t->st.next_in, k);
                ssize_t n = raw_read(t, t->in + k, sizeof(t->in) - k);
                if (n < 0)
                    return -1;
                memcpy(t->in, keep, k);
                t->st.next_in = t->in;
                t->st.avail_in = (uint32_t)(k + (size_t)n);
            } else if (t->st.avail_in == 0) {
                ssize_t n = raw_read(t, t->in, sizeof(t->in));
                if (n <= 0)
                    return n;
                t->st.next_in = t->in;
                t->st.avail_in = (uint32_t)n;
            }
            const char *next_kind = compression_of(t->st.next_in, t->st.avail_in);
            if (!next_kind || strcmp(next_kind, "gzip") != 0)
                return 0; /* trailing padding after the last member */
            unsigned char *next = t->st.next_in;
            uint32_t avail = t->st.avail_in;
            isal_inflate_reset(&t->st);
            t->st.crc_flag = ISAL_GZIP;
            t->st.next_in = next;
            t->st.avail_in = avail;
            t->member_done = false;
        }
        if (t->st.avail_in == 0) {
            ssize_t n = raw_read(t, t->in, sizeof(t->in));
            if (n < 0)
                return -1;
            if (n == 0)
                return fail(t, WH_EINVALID, "has gzip data that ends before its last block");
            t->st.next_in = t->in;
            t->st.avail_in = (uint32_t)n;
        }
        t->st.next_out = t->obuf;
        t->st.avail_out = sizeof(t->obuf);
        int rc = isal_inflate(&t->st);
        if (rc < 0)
            return fail(t, WH_EINVALID, "has damaged gzip data (igzip error %d)", rc);
        if (t->st.block_state == ISAL_BLOCK_FINISH)
            t->member_done = true;
        size_t produced = sizeof(t->obuf) - t->st.avail_out;
        if (produced) {
            *out = t->obuf;
            return (ssize_t)produced;
        }
    }
}

/* libarchive's raw reader pulls compressed bytes from here: the first block, then the source. */
static la_ssize_t dec_read_cb(struct archive *a, void *ctx, const void **out)
{
    struct wh_tar *t = ctx;
    (void)a;
    if (t->have_first) {
        t->have_first = false;
        *out = t->in;
        return (la_ssize_t)t->first_len;
    }
    ssize_t n = raw_read(t, t->in, sizeof(t->in));
    *out = t->in;
    return n < 0 ? ARCHIVE_FATAL : n;
}

static ssize_t archive_block(struct wh_tar *t, const void **out)
{
    const void *buf;
    size_t size;
    la_int64_t off;
    int r = archive_read_data_block(t->dec, &buf, &size, &off);
    if (r == ARCHIVE_EOF)
        return 0;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
        return fail(t, WH_EINVALID, "has damaged compressed data: %s", archive_error_string(t->dec));
    *out = buf;
    return (ssize_t)size;
}

/* Looks at the first block and sets up the first stage. Returns bytes ready (plain) or 0. */
static ssize_t start(struct wh_tar *t, const void **out)
{
    ssize_t n = raw_read(t, t->in, sizeof(t->in));
    t->started = true;
    if (n <= 0)
        return n;
    const char *comp = compression_of(t->in, (size_t)n);
    if (!comp) {
        *out = t->in;
        return n; /* an uncompressed tar */
    }
    if (strcmp(comp, "gzip") == 0) {
        t->mode = UNPACK_IGZIP;
        isal_inflate_init(&t->st);
        t->st.crc_flag = ISAL_GZIP; /* parse the header, check CRC32 and size at the end */
        t->st.next_in = t->in;
        t->st.avail_in = (uint32_t)n;
        return gzip_block(t, out);
    }
    t->mode = UNPACK_ARCHIVE;
    t->dec = archive_read_new();
    archive_read_support_filter_zstd(t->dec);
    archive_read_support_filter_xz(t->dec);
    archive_read_support_filter_bzip2(t->dec);
    archive_read_support_format_raw(t->dec);
    t->have_first = true;
    t->first_len = (size_t)n;
    struct archive_entry *e;
    if (archive_read_open(t->dec, t, NULL, dec_read_cb, NULL) != ARCHIVE_OK ||
        archive_read_next_header(t->dec, &e) != ARCHIVE_OK)
        return fail(t, WH_EINVALID, "has %s data that cannot be read: %s", comp, archive_error_string(t->dec));
    return archive_block(t, out);
}

/* The next block of decompressed bytes: > 0, 0 at the end of the stream, -1 on failure. */
static ssize_t unpack_block(struct wh_tar *t, const void **out)
{
    ssize_t n;
    if (t->error)
        return -1;
    if (!t->started)
        n = start(t, out);
    else if (t->mode == UNPACK_IGZIP)
        n = gzip_block(t, out);
    else if (t->mode == UNPACK_ARCHIVE)
        n = archive_block(t, out);
    else {
        n = raw_read(t, t->in, sizeof(t->in));
        *out = t->in;
    }
    if (n > 0 && account(t, (size_t)n, *out) < 0)
        return -1;
    return n;
}

static la_ssize_t tar_read_cb(struct archive *a, void *ctx, const void **out)
{
    struct wh_tar *t = ctx;
    if (!t->ended) {
        ssize_t n = unpack_block(t, out);
        if (n < 0) {
            archive_set_error(a, EINVAL, "%s", t->msg);
            return ARCHIVE_FATAL;
        }
        if (n > 0)
            return n;
        /* the real end: round up to a block and add the end-of-archive marker */
        t->ended = true;
        t->pad = (size_t)((512 - t->out % 512) % 512) + 1024;
    }
    size_t k = t->pad < sizeof(zeros) ? t->pad : sizeof(zeros);
    t->pad -= k;
    *out = zeros;
    return (la_ssize_t)k;
}

/* Skips forward without reading, when the source can (an uncompressed tar in a file). */
static la_int64_t tar_skip_cb(struct archive *a, void *ctx, la_int64_t request)
{
    struct wh_tar *t = ctx;
    (void)a;
    if (t->mode != UNPACK_PLAIN || !t->started || t->ended || !t->rd->skip || request <= 0 || t->error)
        return 0;
    int64_t n = t->rd->skip(t->rd->ctx, request);
    if (n <= 0)
        return 0;
    t->raw += (uint64_t)n;
    if (account(t, (size_t)n, NULL) < 0) {
        archive_set_error(a, EINVAL, "%s", t->msg);
        return ARCHIVE_FATAL;
    }
    return n;
}

int wh_tar_open(struct wh_tar **out, struct wh_reader *rd, const char *what, uint64_t max_out,
                uint64_t ratio)
{
    struct wh_tar *t = wh_calloc(1, sizeof(*t));
    t->rd = rd;
    t->what = what;
    t->max_out = max_out;
    t->ratio = ratio;
    t->a = archive_read_new();
    archive_read_support_format_tar(t->a);
    archive_read_support_format_gnutar(t->a);
    archive_read_set_read_callback(t->a, tar_read_cb);
    archive_read_set_skip_callback(t->a, tar_skip_cb);
    archive_read_set_callback_data(t->a, t);
    if (archive_read_open1(t->a) != ARCHIVE_OK) {
        int error = t->error ? wh_error_set(t->error, "%s", t->msg)
                             : wh_error_set(WH_EINVALID, "%s is not a readable tar: %s", NAME(t),
                                            archive_error_string(t->a));
        wh_tar_free(t);
        return error;
    }
    *out = t;
    return 0;
}

void wh_tar_free(struct wh_tar *t)
{
    if (!t)
        return;
    archive_read_free(t->a);
    archive_read_free(t->dec);
    free(t);
}

int wh_tar_next(struct wh_tar *t, struct archive_entry **e)
{
    int r = archive_read_next_header(t->a, e);
    if (t->error)
        return wh_error_set(t->error, "%s", t->msg);
    if (r == ARCHIVE_EOF) {
        /* the zeros after the real end stand in for padding and the end marker, never for data */
        if (t->ended && t->data_end > t->out)
            return wh_error_set(WH_EINVALID, "%s is truncated: %s needs %llu bytes more than there are",
                                NAME(t), t->entry, (unsigned long long)(t->data_end - t->out));
        return 1;
    }
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
        return wh_error_set(WH_EINVALID, "%s is a damaged tar: %s", NAME(t), archive_error_string(t->a));
    if (archive_entry_size_is_set(*e) && archive_entry_size(*e) < 0)
        return wh_error_set(WH_EINVALID, "%s has an entry of negative size", NAME(t));
    uint64_t pos = wh_tar_offset(t);
    uint64_t size = archive_entry_size_is_set(*e) ? (uint64_t)archive_entry_size(*e) : 0;
    /* refuse before inflating what a header announces beyond the cap */
    if (pos > t->max_out || size > t->max_out - pos)
        return wh_error_set(WH_ETOOBIG, "%s is over the cap of %llu decompressed bytes", NAME(t),
                            (unsigned long long)t->max_out);
    t->data_end = pos + size;
    const char *name = archive_entry_pathname(*e);
    snprintf(t->entry, sizeof(t->entry), "%s", name ? name : "an entry");
    return 0;
}

uint64_t wh_tar_offset(const struct wh_tar *t)
{
    la_int64_t pos = archive_filter_bytes(t->a, 0);
    return pos > 0 ? (uint64_t)pos : 0;
}

uint64_t wh_tar_bytes(const struct wh_tar *t)
{
    return t->out;
}

bool wh_tar_compressed(const struct wh_tar *t)
{
    return t->mode != UNPACK_PLAIN;
}

ssize_t wh_tar_read(void *ctx, void *buf, size_t n)
{
    struct wh_tar *t = ctx;
    la_ssize_t r = archive_read_data(t->a, buf, n);
    if (r < 0) {
        if (t->error)
            wh_error_set(t->error, "%s", t->msg);
        else
            wh_error_set(WH_EINVALID, "%s: %s", NAME(t), archive_error_string(t->a));
        return -1;
    }
    return (ssize_t)r;
}

int wh_tar_error(const struct wh_tar *t)
{
    return t->error ? wh_error_set(t->error, "%s", t->msg) : 0;
}
