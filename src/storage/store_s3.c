/*
 * store_s3.c: the S3 storage driver, on the client of s3.c.
 *
 *   blobs/<alg>/<first two hex>/<hex>    committed blobs
 *   uploads/<id>/data                     a session's multipart upload (completed at commit)
 *   uploads/<id>/tail-<offset>            the accepted bytes past the last full part
 *
 * every key behind the configured prefix (added by the client).
 *
 * Reading: with storage.s3.redirect a blob GET is answered with a presigned
 * URL (20 minutes) and the client reads from the store. Otherwise a reader GETs its range window by window (ranged GETs of 256 KiB
 * growing to 4 MiB), so a reader holds at most one window in memory, never
 * a whole blob, and a small blob costs one request.
 *
 * Uploads. S3 multipart parts must be at least 5 MiB but the last, while a
 * PATCH may carry any number of bytes, and the next PATCH may land on
 * another node. A writer keeps the bytes past the last full part in a
 * buffer of one part (S3_PART bytes); a full buffer goes out at once as the
 * next part of the session's multipart upload (created with the first part).
 * On accept, what the buffer holds is stored as the small object
 * tail-<offset>, which the next writer (on any node) reads back into its
 * buffer at resume. A blob that never fills a part is stored with one PUT at
 * commit and needs no multipart upload at all.
 *
 * The state text the registry keeps beside the offset:
 *
 *   s3v1 <saved sha256 | ->\n
 *   mpu <upload id>\n            (once the first part went out)
 *   prev <offset>\n              (a tail no longer named: deleted by the next accept)
 *   part <number> <size> <etag>\n   (one a part, numbers 1, 2, ...)
 *
 * Parts and tails written by a chunk that is then rejected (or whose state
 * the registry failed to save) are never named by a saved state: part
 * numbers above the saved list are written again by the next chunk, and
 * stray objects and multipart uploads under uploads/<id>/ are swept by the
 * commit or the cancel (which list the prefix). A tail is deleted only once
 * a saved state cannot name it any more (`prev`), so a failed save leaves
 * the session resumable from the state before.
 *
 * The running sha256 covers the bytes as they pass through the writer; its
 * state travels in the text (store_hash.c). When a state cannot be used
 * here (another OpenSSL), or the expected digest is not sha256, the commit
 * reads the assembled object back and hashes it instead.
 */
#include "storage/s3.h"
#include "storage/store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S3_PART (8u << 20)                    /* bytes of every part but the last */
#define S3_WIN_FIRST (256u << 10)             /* a reader's first window */
#define S3_WIN_MAX (4u << 20)                 /* ... doubled up to this */
#define S3_COPY_MAX (5ull << 30)              /* CopyObject's limit on AWS */
#define S3_COPY_PART (1ull << 30)             /* parts of a larger server-side copy */
#define S3_ID_MAX 64
#define S3_KEY_CAP 512
#define S3_STATE_PREFIX "s3v1 "
#define S3_PRESIGN_S (20 * 60) /* how long a redirect URL is valid (as distribution's) */

struct s3_store {
    struct wh_store base;
    wh_s3 *c;
    bool redirect; /* storage.s3.redirect */
};

struct s3_reader {
    struct wh_store_reader base;
    struct s3_store *s;
    char key[S3_KEY_CAP];
    char *buf;     /* the window: bytes [base.pos, base.pos + len - at) still to hand out */
    size_t len, at;
    size_t window; /* bytes of the next GET */
};

struct s3_part {
    unsigned number;
    uint64_t size;
    char etag[WH_S3_ETAG_MAX];
};

struct s3_upload {
    struct wh_upload base;
    struct s3_store *s;
    char id[S3_ID_MAX + 1];
    store_sha *accepted, *running;
    bool hash_lost;          /* the saved hash state was not usable: re-read at commit */
    char *mpu;               /* the multipart upload of the accepted parts (NULL: none yet) */
    char *mpu_new;           /* one made by the pending chunk (NULL: none) */
    struct s3_part *parts;   /* accepted parts, then the pending chunk's */
    size_t nparts_acc, nparts, parts_cap;
    uint64_t parts_bytes_acc, parts_bytes;
    char *buf;               /* bytes [parts_bytes, size): at most S3_PART */
    size_t buf_len;
    bool buf_valid;          /* false: reload the accepted tail before use */
    uint64_t prev;           /* a tail offset no saved state names any more (0: none) */
    bool failed;             /* a write of the pending chunk failed: only a reject helps */
    bool fresh;              /* nothing accepted, nothing staged: no listing at the end */
};

static const char *alg_name(enum wh_digest_alg a)
{
    return a == WH_DIGEST_SHA512 ? "sha512" : "sha256";
}

static void blob_key(char out[S3_KEY_CAP], const struct wh_digest *d)
{
    const char *hex = wh_digest_hex(d);
    snprintf(out, S3_KEY_CAP, "blobs/%s/%.2s/%s", alg_name(d->alg), hex, hex);
}

static bool id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > S3_ID_MAX || id[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

/* ---- memory sources and sinks for the client ---- */

struct mem_src {
    const char *p;
    size_t left;
};

static int mem_read(void *buf, size_t cap, size_t *n, void *payload)
{
    struct mem_src *m = payload;
    size_t k = cap < m->left ? cap : m->left;
    memcpy(buf, m->p, k);
    m->p += k;
    m->left -= k;
    *n = k;
    return 0;
}

struct mem_sink {
    char *p;
    size_t len, cap;
};

static int mem_write(const void *p, size_t n, void *payload)
{
    struct mem_sink *m = payload;
    if (n > m->cap - m->len)
        return wh_error_set(WH_ETOOBIG, "the object is longer than its recorded size");
    memcpy(m->p + m->len, p, n);
    m->len += n;
    return 0;
}

static int hash_write(const void *p, size_t n, void *payload)
{
    wh_hasher_update(payload, p, n);
    return 0;
}

/* ---- blobs ---- */

static void s3_free(wh_store *base)
{
    struct s3_store *s = (struct s3_store *)base;
    wh_s3_free(s->c);
    free(s);
}

static int s3_stat(wh_store *base, const struct wh_digest *d, uint64_t *size_out)
{
    struct s3_store *s = (struct s3_store *)base;
    char key[S3_KEY_CAP];
    struct wh_s3_object o;
    blob_key(key, d);
    int error = wh_s3_head(s->c, key, &o);
    if (error == 0)
        *size_out = o.size;
    return error;
}

/* Fetches the next window of the range into the reader's buffer. */
static int reader_fill(struct s3_reader *rd, uint64_t at, uint64_t want,
                       struct wh_s3_object *info)
{
    struct mem_sink k = {rd->buf, 0, rd->window};
    if (want > rd->window)
        want = rd->window;
    int error = wh_s3_get(rd->s->c, rd->key, at, want, mem_write, &k, info);
    rd->len = k.len;
    rd->at = 0;
    if (error == 0 && rd->window < S3_WIN_MAX) {
        size_t next = rd->window * 2 > S3_WIN_MAX ? S3_WIN_MAX : rd->window * 2;
        char *nb = realloc(rd->buf, next);
        if (nb) {
            /* the bytes just read stay where they are: realloc keeps them */
            rd->buf = nb;
            rd->window = next;
        }
    }
    return error;
}

static int s3_reader_read(wh_store_reader *base, void *buf, size_t cap, size_t *got)
{
    struct s3_reader *rd = (struct s3_reader *)base;
    if (rd->at == rd->len) {
        int error = reader_fill(rd, base->pos, base->left, NULL);
        if (error == WH_ERANGE) /* the object is shorter than it was: store.c reports it */
            return 0;
        if (error < 0)
            return error;
    }
    size_t k = rd->len - rd->at < cap ? rd->len - rd->at : cap;
    memcpy(buf, rd->buf + rd->at, k);
    rd->at += k;
    *got = k;
    return 0;
}

static void s3_reader_close(wh_store_reader *base)
{
    struct s3_reader *rd = (struct s3_reader *)base;
    free(rd->buf);
    free(rd);
}

static const struct wh_store_reader_ops s3_reader_ops = {
    .read = s3_reader_read,
    .take_fd = NULL, /* no file: the HTTP layer reads */
    .close = s3_reader_close,
};

static int s3_reader_open(wh_store_reader **out, wh_store *base, const struct wh_digest *d,
                          uint64_t offset, uint64_t length)
{
    struct s3_store *s = (struct s3_store *)base;
    struct s3_reader *rd = wh_calloc(1, sizeof(*rd));
    struct wh_s3_object o = {0};
    int error = 0;
    rd->base.ops = &s3_reader_ops;
    rd->s = s;
    rd->window = S3_WIN_FIRST;
    rd->buf = wh_malloc(rd->window);
    blob_key(rd->key, d);
    /* the first window comes with the object's size; an empty range or object needs a HEAD */
    if (length > 0)
        error = reader_fill(rd, offset, length, &o);
    if (length == 0 || error == WH_ERANGE)
        error = wh_s3_head(s->c, rd->key, &o);
    if (error < 0)
        goto out;
    if (offset > o.size) {
        error = wh_error_set(WH_ERANGE, "offset %" PRIu64 " is past the end of %s (%" PRIu64
                                        " bytes)", offset, d->str, o.size);
        goto out;
    }
    rd->base.blob_size = o.size;
    rd->base.pos = offset;
    rd->base.left = o.size - offset < length ? o.size - offset : length;
    if (rd->len > rd->base.left) /* never more than the range */
        rd->len = (size_t)rd->base.left;
    *out = &rd->base;
    rd = NULL;
out:
    if (rd)
        s3_reader_close(&rd->base);
    return error;
}

/*
 * With storage.s3.redirect: a presigned URL of the blob, so that the client
 * reads it from the object store directly. Not found when off.
 */
static int s3_redirect_url(wh_store *base, const struct wh_digest *d, char **out)
{
    struct s3_store *s = (struct s3_store *)base;
    char key[S3_KEY_CAP];
    if (!s->redirect)
        return WH_ENOTFOUND;
    blob_key(key, d);
    return wh_s3_presign_get(s->c, key, S3_PRESIGN_S, wh_now_ms() / 1000, out);
}

static int s3_put_bytes(wh_store *base, const struct wh_digest *d, const void *p, size_t len)
{
    struct s3_store *s = (struct s3_store *)base;
    char key[S3_KEY_CAP];
    struct wh_digest got;
    wh_digest_of(&got, d->alg, p, len);
    if (strcmp(got.str, d->str) != 0)
        return wh_error_set(WH_ERROR, "put %s: the bytes are %s", d->str, got.str);
    blob_key(key, d);
    /* sent with their SHA-256, which the server checks against what it received */
    return wh_s3_put(s->c, key, p, len);
}

static int s3_delete_blob(wh_store *base, const struct wh_digest *d)
{
    struct s3_store *s = (struct s3_store *)base;
    char key[S3_KEY_CAP];
    struct wh_s3_object o;
    blob_key(key, d);
    int error = wh_s3_head(s->c, key, &o); /* S3's DELETE succeeds on a missing key too */
    if (error == 0)
        error = wh_s3_delete(s->c, key);
    return error;
}

/* Copies `src` (of `size` bytes) to `dst` on the server. */
static int copy_object(struct s3_store *s, const char *dst, const char *src, uint64_t size)
{
    if (size <= S3_COPY_MAX)
        return wh_s3_copy(s->c, dst, src);
    /* larger than one CopyObject may be: a multipart upload of server-side copied parts */
    char *mpu = NULL;
    struct s3_part *parts = NULL;
    size_t n = 0;
    int error = wh_s3_mpu_create(s->c, dst, &mpu);
    if (error < 0)
        return error;
    size_t cap = (size_t)((size + S3_COPY_PART - 1) / S3_COPY_PART);
    parts = wh_calloc(cap, sizeof(*parts));
    for (uint64_t off = 0; off < size && error == 0; off += S3_COPY_PART, n++) {
        uint64_t len = size - off < S3_COPY_PART ? size - off : S3_COPY_PART;
        parts[n].number = (unsigned)n + 1;
        parts[n].size = len;
        error = wh_s3_mpu_copy_part(s->c, dst, mpu, parts[n].number, src, off, len,
                                    parts[n].etag);
    }
    if (error == 0) {
        struct wh_s3_part *list = wh_calloc(n, sizeof(*list));
        for (size_t i = 0; i < n; i++) {
            list[i].number = parts[i].number;
            list[i].size = parts[i].size;
            memcpy(list[i].etag, parts[i].etag, sizeof(list[i].etag));
        }
        error = wh_s3_mpu_complete(s->c, dst, mpu, list, n);
        free(list);
    }
    if (error < 0)
        wh_s3_mpu_abort(s->c, dst, mpu);
    free(parts);
    free(mpu);
    return error;
}

/* ---- uploads ---- */

static const struct wh_upload_ops s3_upload_ops;

static void data_key(char out[S3_KEY_CAP], const char *id)
{
    snprintf(out, S3_KEY_CAP, "uploads/%s/data", id);
}

static void tail_key(char out[S3_KEY_CAP], const char *id, uint64_t offset)
{
    snprintf(out, S3_KEY_CAP, "uploads/%s/tail-%" PRIu64, id, offset);
}

static void save_state(struct s3_upload *u)
{
    struct wh_buf b;
    char sha[STORE_SHA_TEXT_MAX];
    wh_buf_init(&b, WH_UPLOAD_STATE_MAX);
    if (u->hash_lost)
        snprintf(sha, sizeof(sha), "-");
    else
        store_sha_save(u->accepted, sha);
    wh_buf_printf(&b, S3_STATE_PREFIX "%s\n", sha);
    if (u->mpu)
        wh_buf_printf(&b, "mpu %s\n", u->mpu);
    if (u->prev)
        wh_buf_printf(&b, "prev %" PRIu64 "\n", u->prev);
    for (size_t i = 0; i < u->nparts_acc; i++)
        wh_buf_printf(&b, "part %u %" PRIu64 " %s\n", u->parts[i].number, u->parts[i].size,
                      u->parts[i].etag);
    free(u->base.state);
    u->base.state = wh_buf_detach(&b, NULL);
    if (!u->base.state)
        u->base.state = wh_strdup("");
}

static struct s3_upload *upload_new(struct s3_store *s, const char *id)
{
    struct s3_upload *u = wh_calloc(1, sizeof(*u));
    u->base.ops = &s3_upload_ops;
    u->s = s;
    snprintf(u->id, sizeof(u->id), "%s", id);
    u->accepted = store_sha_new();
    u->running = store_sha_new();
    u->buf = wh_malloc(S3_PART);
    u->buf_valid = true;
    save_state(u);
    return u;
}

static void upload_free(struct s3_upload *u)
{
    store_sha_free(u->accepted);
    store_sha_free(u->running);
    free(u->mpu);
    free(u->mpu_new);
    free(u->parts);
    free(u->buf);
    free(u->base.state);
    free(u);
}

/* Whether an S3 token (an upload id, an ETag) can sit in the state text. */
static bool token_ok(const char *t)
{
    if (!*t)
        return false;
    for (; *t; t++)
        if ((unsigned char)*t <= ' ' || *t == 0x7f)
            return false;
    return true;
}

static int part_add(struct s3_upload *u, unsigned number, uint64_t size, const char *etag)
{
    if (u->nparts == u->parts_cap) {
        size_t cap = u->parts_cap ? u->parts_cap * 2 : 16;
        u->parts = wh_realloc(u->parts, cap * sizeof(*u->parts));
        u->parts_cap = cap;
    }
    struct s3_part *p = &u->parts[u->nparts++];
    p->number = number;
    p->size = size;
    snprintf(p->etag, sizeof(p->etag), "%s", etag);
    return 0;
}

/* Parses a saved state into `u` (at `offset` accepted bytes). 0 or WH_EINVALID. */
static int state_load(struct s3_upload *u, const char *state, uint64_t offset)
{
    size_t plen = strlen(S3_STATE_PREFIX);
    if (strncmp(state, S3_STATE_PREFIX, plen) != 0)
        return wh_error_set(WH_EINVALID, "not a state of the s3 driver");
    const char *line = state + plen;
    const char *nl = strchr(line, '\n');
    if (!nl)
        return wh_error_set(WH_EINVALID, "the state is cut short");
    char sha[STORE_SHA_TEXT_MAX];
    size_t n = (size_t)(nl - line);
    if (n >= sizeof(sha))
        return wh_error_set(WH_EINVALID, "the state's hash is too long");
    memcpy(sha, line, n);
    sha[n] = '\0';
    if (offset == 0) {
        /* nothing hashed yet: the fresh state is the right one */
    } else if (strcmp(sha, "-") == 0 || store_sha_load(u->accepted, sha, offset) < 0) {
        wh_log_debug("upload %s: hash state not usable here (%s); the commit re-reads the data",
                     u->id, wh_error_msg());
        u->hash_lost = true;
    }
    store_sha_copy(u->running, u->accepted);
    for (line = nl + 1; *line; line = nl + 1) {
        char tok[WH_S3_UPLOAD_ID_MAX + 1];
        unsigned number;
        uint64_t size;
        nl = strchr(line, '\n');
        if (!nl || (size_t)(nl - line) >= WH_S3_UPLOAD_ID_MAX + 16)
            return wh_error_set(WH_EINVALID, "the state has a damaged line");
        char text[WH_S3_UPLOAD_ID_MAX + 16];
        memcpy(text, line, (size_t)(nl - line));
        text[nl - line] = '\0';
        if (strncmp(text, "mpu ", 4) == 0 && !u->mpu && token_ok(text + 4) &&
            strlen(text + 4) <= WH_S3_UPLOAD_ID_MAX) {
            u->mpu = wh_strdup(text + 4);
        } else if (sscanf(text, "prev %" SCNu64, &size) == 1 && size > 0) {
            u->prev = size;
        } else if (sscanf(text, "part %u %" SCNu64 " %80s", &number, &size, tok) == 3 &&
                   number == u->nparts + 1 && number <= WH_S3_PARTS_MAX && size > 0 &&
                   strlen(tok) < WH_S3_ETAG_MAX && token_ok(tok)) {
            part_add(u, number, size, tok);
            if (__builtin_add_overflow(u->parts_bytes, size, &u->parts_bytes))
                return wh_error_set(WH_EINVALID, "the state's parts overflow");
        } else {
            return wh_error_set(WH_EINVALID, "the state has a damaged line");
        }
    }
    if (u->nparts && !u->mpu)
        return wh_error_set(WH_EINVALID, "the state lists parts but no multipart upload");
    if (u->parts_bytes > offset || offset - u->parts_bytes >= S3_PART)
        return wh_error_set(WH_EINVALID, "the state's parts do not match offset %" PRIu64,
                            offset);
    u->nparts_acc = u->nparts;
    u->parts_bytes_acc = u->parts_bytes;
    return 0;
}

/* Makes the buffer hold the accepted tail again (after a rejected chunk that sent parts). */
static int tail_load(struct s3_upload *u)
{
    if (u->buf_valid)
        return 0;
    uint64_t want = u->base.offset - u->parts_bytes_acc;
    u->buf_len = 0;
    if (want > 0) {
        char key[S3_KEY_CAP];
        struct mem_sink k = {u->buf, 0, (size_t)want};
        tail_key(key, u->id, u->base.offset);
        int error = wh_s3_get(u->s->c, key, 0, WH_S3_TO_END, mem_write, &k, NULL);
        if (error == 0 && k.len != want)
            error = wh_error_set(WH_ENOTFOUND, "upload %s: its staged tail holds %zu bytes, "
                                               "not %" PRIu64, u->id, k.len, want);
        if (error < 0)
            return error == WH_ENOTFOUND || error == WH_ETOOBIG ? WH_ENOTFOUND : error;
        u->buf_len = k.len;
    }
    u->buf_valid = true;
    return 0;
}

static int s3_upload_create(wh_store *base, const char *id, wh_upload **out)
{
    struct s3_store *s = (struct s3_store *)base;
    if (!id_ok(id))
        return wh_error_set(WH_EINVALID, "bad upload id");
    /* nothing is stored until bytes are: a session id is random, never reused */
    struct s3_upload *u = upload_new(s, id);
    u->fresh = true;
    *out = &u->base;
    return 0;
}

static int s3_upload_resume(wh_store *base, const char *id, uint64_t offset, const char *state,
                            wh_upload **out)
{
    struct s3_store *s = (struct s3_store *)base;
    struct s3_upload *u = NULL;
    int error = 0;
    if (!id_ok(id))
        return wh_error_set(WH_ENOTFOUND, "no such upload");
    u = upload_new(s, id);
    if (offset == 0 && !*state) {
        /* a session with nothing accepted yet */
    } else if ((error = state_load(u, state, offset)) < 0) {
        error = wh_error_set(WH_ENOTFOUND, "upload %s: %s", id, wh_error_msg());
        goto out;
    }
    u->base.offset = u->base.size = offset;
    u->buf_valid = false;
    if ((error = tail_load(u)) < 0)
        goto out;
    /*
     * Nothing accepted and nothing named: the commit lists nothing (a POST then
     * a PUT with the body costs no listing). What a writer that died before
     * any accept left is removed by the start-up sweep once the row is gone.
     */
    u->fresh = offset == 0 && !u->mpu && !u->prev;
    save_state(u);
    *out = &u->base;
    u = NULL;
out:
    if (u)
        upload_free(u);
    return error;
}

/* Sends the full buffer as the next part. */
static int part_flush(struct s3_upload *u)
{
    char key[S3_KEY_CAP], etag[WH_S3_ETAG_MAX];
    int error;
    data_key(key, u->id);
    if (u->nparts >= WH_S3_PARTS_MAX)
        return wh_error_set(WH_ETOOBIG, "upload %s: more than %u parts of %u bytes", u->id,
                            WH_S3_PARTS_MAX, S3_PART);
    const char *mpu = u->mpu_new ? u->mpu_new : u->mpu;
    if (!mpu) {
        if ((error = wh_s3_mpu_create(u->s->c, key, &u->mpu_new)) < 0)
            return error;
        mpu = u->mpu_new;
        if (!token_ok(mpu) || strlen(mpu) > WH_S3_UPLOAD_ID_MAX)
            return wh_error_set(WH_ERROR, "upload %s: the server's upload id is unusable", u->id);
    }
    u->fresh = false;
    struct mem_src src = {u->buf, u->buf_len};
    unsigned number = (unsigned)u->nparts + 1;
    if ((error = wh_s3_mpu_put_part(u->s->c, key, mpu, number, u->buf_len, mem_read, &src,
                                    etag)) < 0)
        return error;
    if (!token_ok(etag))
        return wh_error_set(WH_ERROR, "upload %s: the server's part ETag is unusable", u->id);
    part_add(u, number, u->buf_len, etag);
    u->parts_bytes += u->buf_len;
    u->buf_len = 0;
    return 0;
}

static int s3_upload_write(wh_upload *base, const void *p, size_t n)
{
    struct s3_upload *u = (struct s3_upload *)base;
    uint64_t end;
    int error;
    if (u->failed)
        return wh_error_set(WH_ERROR, "upload %s: the chunk failed already", u->id);
    if (__builtin_add_overflow(base->size, (uint64_t)n, &end) || end > INT64_MAX)
        return wh_error_set(WH_ETOOBIG, "upload %s too large", u->id);
    if ((error = tail_load(u)) < 0) {
        u->failed = true;
        return error;
    }
    if (!u->hash_lost)
        store_sha_update(u->running, p, n);
    const char *q = p;
    while (n) {
        size_t k = S3_PART - u->buf_len < n ? S3_PART - u->buf_len : n;
        memcpy(u->buf + u->buf_len, q, k);
        u->buf_len += k;
        q += k;
        n -= k;
        base->size += k;
        if (u->buf_len == S3_PART && (error = part_flush(u)) < 0) {
            u->failed = true;
            return error;
        }
    }
    return 0;
}

static void s3_upload_reject(wh_upload *base)
{
    struct s3_upload *u = (struct s3_upload *)base;
    store_sha_copy(u->running, u->accepted);
    if (u->mpu_new) {
        /* made for the chunk just dropped: nothing names it */
        char key[S3_KEY_CAP];
        data_key(key, u->id);
        if (wh_s3_mpu_abort(u->s->c, key, u->mpu_new) < 0)
            wh_log_warn("upload %s: %s", u->id, wh_error_msg());
        free(u->mpu_new);
        u->mpu_new = NULL;
    }
    if (u->nparts != u->nparts_acc)
        u->buf_valid = false; /* the tail went out in a part: read it back when needed */
    else
        u->buf_len = (size_t)(base->offset - u->parts_bytes_acc);
    u->nparts = u->nparts_acc;
    u->parts_bytes = u->parts_bytes_acc;
    base->size = base->offset;
    u->failed = false;
}

static int s3_upload_accept(wh_upload *base)
{
    struct s3_upload *u = (struct s3_upload *)base;
    char key[S3_KEY_CAP];
    int error;
    if (u->failed) {
        s3_upload_reject(base);
        return wh_error_set(WH_ERROR, "upload %s: the chunk failed", u->id);
    }
    if (base->size == base->offset)
        return 0;
    /* the bytes past the last part, kept for whichever node takes the next chunk */
    if (u->buf_len > 0) {
        tail_key(key, u->id, base->size);
        if ((error = wh_s3_put(u->s->c, key, u->buf, u->buf_len)) < 0) {
            s3_upload_reject(base);
            return error;
        }
    }
    u->fresh = false;
    /* a tail two accepts old: no saved state can name it any more */
    if (u->prev) {
        tail_key(key, u->id, u->prev);
        if (wh_s3_delete(u->s->c, key) < 0)
            wh_log_warn("upload %s: %s", u->id, wh_error_msg());
    }
    u->prev = base->offset > u->parts_bytes_acc ? base->offset : 0;
    if (u->mpu_new) {
        free(u->mpu);
        u->mpu = u->mpu_new;
        u->mpu_new = NULL;
    }
    u->nparts_acc = u->nparts;
    u->parts_bytes_acc = u->parts_bytes;
    store_sha_copy(u->accepted, u->running);
    base->offset = base->size;
    save_state(u);
    return 0;
}

/*
 * Removes everything staged under uploads/<id>/: the multipart upload named
 * by `mpu` (may be NULL), any other one found, every object. 0 when
 * something was removed, WH_ENOTFOUND when nothing was there, or an error.
 */
static int staging_remove(struct s3_store *s, const char *id, const char *mpu)
{
    char prefix[S3_KEY_CAP], key[S3_KEY_CAP];
    bool found = false;
    int error = 0;
    snprintf(prefix, sizeof(prefix), "uploads/%s/", id);
    data_key(key, id);
    if (mpu && wh_s3_mpu_abort(s->c, key, mpu) == 0)
        found = true;
    /* multipart uploads made by chunks that were rejected, or by a writer that died */
    char *km = NULL, *um = NULL;
    for (;;) {
        struct wh_s3_uploads l;
        if ((error = wh_s3_mpu_list(s->c, &l, prefix, km, um, 0)) < 0)
            break;
        for (size_t i = 0; i < l.n; i++) {
            if (wh_s3_mpu_abort(s->c, l.items[i].key, l.items[i].upload_id) == 0)
                found = true;
        }
        free(km);
        free(um);
        km = um = NULL;
        bool more = l.truncated && l.next_key_marker && l.next_upload_id_marker;
        if (more) {
            km = wh_strdup(l.next_key_marker);
            um = wh_strdup(l.next_upload_id_marker);
        }
        wh_s3_uploads_dispose(&l);
        if (!more)
            break;
    }
    free(km);
    free(um);
    if (error < 0)
        return error;
    /* the data object, tails */
    char *token = NULL;
    for (;;) {
        struct wh_s3_list l;
        if ((error = wh_s3_list(s->c, &l, prefix, token, 0)) < 0)
            break;
        free(token);
        token = NULL;
        if (l.n) {
            const char **keys = wh_calloc(l.n, sizeof(*keys));
            for (size_t i = 0; i < l.n; i++)
                keys[i] = l.items[i].key;
            error = wh_s3_delete_many(s->c, keys, l.n, NULL);
            free(keys);
            found = true;
        }
        if (error == 0 && l.truncated && l.next_token)
            token = wh_strdup(l.next_token);
        wh_s3_list_dispose(&l);
        if (error < 0 || !token)
            break;
    }
    free(token);
    if (error < 0)
        return error;
    return found ? 0 : WH_ENOTFOUND;
}

static void upload_cleanup(struct s3_upload *u)
{
    if (u->fresh && !u->mpu_new)
        return; /* nothing of it ever reached the store */
    int error = staging_remove(u->s, u->id, u->mpu_new ? u->mpu_new : u->mpu);
    if (error < 0 && error != WH_ENOTFOUND)
        wh_log_warn("upload %s: removing its staged data: %s", u->id, wh_error_msg());
}

static void s3_upload_close(wh_upload *base)
{
    upload_free((struct s3_upload *)base);
}

static void s3_upload_cancel(wh_upload *base)
{
    struct s3_upload *u = (struct s3_upload *)base;
    upload_cleanup(u);
    upload_free(u);
}

/* Hashes object `key` as stored. */
static int hash_object(struct s3_store *s, const char *key, enum wh_digest_alg alg,
                       struct wh_digest *out)
{
    wh_hasher *h = wh_hasher_new(alg);
    int error = wh_s3_get(s->c, key, 0, WH_S3_TO_END, hash_write, h, NULL);
    if (error == WH_ERANGE) /* an empty object */
        error = 0;
    if (error == 0)
        wh_hasher_final(out, h);
    wh_hasher_free(h);
    return error;
}

static int s3_upload_commit(wh_upload *base, const struct wh_digest *expected)
{
    struct s3_upload *u = (struct s3_upload *)base;
    struct s3_store *s = u->s;
    char key[S3_KEY_CAP], final[S3_KEY_CAP];
    struct wh_digest got;
    struct wh_s3_object o;
    bool hashed = !u->hash_lost && expected->alg == WH_DIGEST_SHA256;
    int error;

    blob_key(final, expected);
    if (u->failed) {
        error = wh_error_set(WH_ERROR, "upload %s: the last chunk failed", u->id);
        goto out;
    }
    if ((error = tail_load(u)) < 0)
        goto out;
    if (hashed) {
        store_sha_digest(u->running, &got);
        if (strcmp(got.str, expected->str) != 0) {
            error = wh_error_set(WH_EINVALID, "digest mismatch: content is %s", got.str);
            goto out;
        }
    }
    if (u->nparts == 0) {
        /* a blob smaller than a part: all of it is in the buffer */
        if (!hashed) {
            wh_digest_of(&got, expected->alg, u->buf, u->buf_len);
            if (strcmp(got.str, expected->str) != 0) {
                error = wh_error_set(WH_EINVALID, "digest mismatch: content is %s", got.str);
                goto out;
            }
        }
        error = wh_s3_put(s->c, final, u->buf, u->buf_len);
        goto out;
    }
    /* the last part, then the whole as uploads/<id>/data, then its copy under its digest */
    if (u->buf_len > 0 && (error = part_flush(u)) < 0)
        goto out;
    const char *mpu = u->mpu_new ? u->mpu_new : u->mpu;
    struct wh_s3_part *list = wh_calloc(u->nparts, sizeof(*list));
    for (size_t i = 0; i < u->nparts; i++) {
        list[i].number = u->parts[i].number;
        list[i].size = u->parts[i].size;
        memcpy(list[i].etag, u->parts[i].etag, sizeof(list[i].etag));
    }
    data_key(key, u->id);
    error = wh_s3_mpu_complete(s->c, key, mpu, list, u->nparts);
    free(list);
    if (error < 0)
        goto out;
    free(u->mpu_new);
    free(u->mpu);
    u->mpu = u->mpu_new = NULL; /* completed: nothing to abort */
    if ((error = wh_s3_head(s->c, key, &o)) < 0)
        goto out;
    if (o.size != base->size) {
        error = wh_error_set(WH_ERROR, "upload %s: the server assembled %" PRIu64 " bytes, %"
                                       PRIu64 " were sent", u->id, o.size, base->size);
        goto out;
    }
    if (!hashed) {
        if ((error = hash_object(s, key, expected->alg, &got)) < 0)
            goto out;
        if (strcmp(got.str, expected->str) != 0) {
            error = wh_error_set(WH_EINVALID, "digest mismatch: content is %s", got.str);
            goto out;
        }
    }
    /* the same blob pushed before: the copy is there already */
    if (wh_s3_head(s->c, final, &o) == 0 && o.size == base->size)
        goto out;
    error = copy_object(s, final, key, base->size);
out:
    {
        int saved = error;
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", error < 0 ? wh_error_msg() : "");
        upload_cleanup(u);
        if (saved < 0)
            error = wh_error_set(saved, "%s", msg);
    }
    upload_free(u);
    return error;
}

static int s3_upload_remove(wh_store *base, const char *id, const char *state)
{
    struct s3_store *s = (struct s3_store *)base;
    char mpu[WH_S3_UPLOAD_ID_MAX + 1] = "";
    if (!id_ok(id))
        return wh_error_set(WH_ENOTFOUND, "no such upload");
    /* the state names the multipart upload; the listing finds it too, and any other */
    const char *m = state ? strstr(state, "\nmpu ") : NULL;
    if (m) {
        m += 5;
        size_t n = strcspn(m, "\n");
        if (n < sizeof(mpu)) {
            memcpy(mpu, m, n);
            mpu[n] = '\0';
        }
    }
    return staging_remove(s, id, mpu[0] ? mpu : NULL);
}

struct seen {
    char id[S3_ID_MAX + 1];
    int64_t mtime_ms;
};

static int seen_cmp(const void *a, const void *b)
{
    return strcmp(((const struct seen *)a)->id, ((const struct seen *)b)->id);
}

/* Adds the session of key uploads/<id>/... to the list. */
static void seen_add(struct seen **v, size_t *n, size_t *cap, const char *key, int64_t mtime)
{
    if (strncmp(key, "uploads/", 8) != 0)
        return;
    const char *id = key + 8;
    size_t len = strcspn(id, "/");
    if (len == 0 || len > S3_ID_MAX || id[len] != '/')
        return;
    if (*n && strncmp((*v)[*n - 1].id, id, len) == 0 && (*v)[*n - 1].id[len] == '\0') {
        if (mtime > (*v)[*n - 1].mtime_ms)
            (*v)[*n - 1].mtime_ms = mtime;
        return;
    }
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *v = wh_realloc(*v, *cap * sizeof(**v));
    }
    memcpy((*v)[*n].id, id, len);
    (*v)[*n].id[len] = '\0';
    (*v)[*n].mtime_ms = mtime;
    (*n)++;
}

static int s3_upload_each(wh_store *base, int (*fn)(const char *, int64_t, void *), void *payload)
{
    struct s3_store *s = (struct s3_store *)base;
    struct seen *v = NULL;
    size_t n = 0, cap = 0;
    char *token = NULL, *km = NULL, *um = NULL;
    int error = 0;
    /* staged objects (in key order, so a session's keys are adjacent) */
    for (;;) {
        struct wh_s3_list l;
        if ((error = wh_s3_list(s->c, &l, "uploads/", token, 0)) < 0)
            break;
        free(token);
        token = NULL;
        for (size_t i = 0; i < l.n; i++)
            seen_add(&v, &n, &cap, l.items[i].key, l.items[i].mtime_ms);
        if (l.truncated && l.next_token)
            token = wh_strdup(l.next_token);
        wh_s3_list_dispose(&l);
        if (!token)
            break;
    }
    /* multipart uploads (a session whose parts went out but no tail yet) */
    for (; error == 0;) {
        struct wh_s3_uploads l;
        if ((error = wh_s3_mpu_list(s->c, &l, "uploads/", km, um, 0)) < 0)
            break;
        free(km);
        free(um);
        km = um = NULL;
        for (size_t i = 0; i < l.n; i++)
            seen_add(&v, &n, &cap, l.items[i].key, l.items[i].initiated_ms);
        bool more = l.truncated && l.next_key_marker && l.next_upload_id_marker;
        if (more) {
            km = wh_strdup(l.next_key_marker);
            um = wh_strdup(l.next_upload_id_marker);
        }
        wh_s3_uploads_dispose(&l);
        if (!more)
            break;
    }
    if (error == 0 && n) {
        /* one call per session, with its latest time */
        qsort(v, n, sizeof(*v), seen_cmp);
        size_t w = 0;
        for (size_t i = 0; i < n; i++) {
            if (w && strcmp(v[w - 1].id, v[i].id) == 0) {
                if (v[i].mtime_ms > v[w - 1].mtime_ms)
                    v[w - 1].mtime_ms = v[i].mtime_ms;
                continue;
            }
            v[w++] = v[i];
        }
        for (size_t i = 0; i < w; i++)
            if (fn(v[i].id, v[i].mtime_ms, payload) != 0)
                break;
    }
    free(token);
    free(km);
    free(um);
    free(v);
    return error;
}

static const struct wh_upload_ops s3_upload_ops = {
    .write = s3_upload_write,
    .accept = s3_upload_accept,
    .reject = s3_upload_reject,
    .commit = s3_upload_commit,
    .cancel = s3_upload_cancel,
    .close = s3_upload_close,
};

static const struct wh_store_driver s3_driver = {
    .version = WH_STORE_DRIVER_VERSION,
    .name = "s3",
    .free = s3_free,
    .stat = s3_stat,
    .reader_open = s3_reader_open,
    .redirect_url = s3_redirect_url,
    .put_bytes = s3_put_bytes,
    .delete_blob = s3_delete_blob,
    .upload_create = s3_upload_create,
    .upload_resume = s3_upload_resume,
    .upload_remove = s3_upload_remove,
    .upload_each = s3_upload_each,
    .check_space = NULL, /* an object store does not fill up as a disk does */
    .note_full = NULL,
    .capacity = NULL,    /* nor does it say how large it is */
};

int wh_store_open_s3(wh_store **out, const struct wh_store_s3_config *cfg)
{
    struct wh_s3_config c = {
        .endpoint = cfg->endpoint,
        .bucket = cfg->bucket,
        .region = cfg->region,
        .access_key = cfg->access_key,
        .secret_key = cfg->secret_key,
        .prefix = cfg->prefix,
        .path_style = cfg->path_style,
    };
    struct s3_store *s = wh_calloc(1, sizeof(*s));
    struct wh_s3_list l;
    s->base.drv = &s3_driver;
    s->redirect = cfg->redirect;
    int error = wh_s3_new(&s->c, &c);
    if (error < 0)
        goto out;
    /* the bucket is there and the credentials work: one listing of a single key */
    if ((error = wh_s3_list(s->c, &l, "blobs/", NULL, 1)) < 0) {
        const char *why = error == WH_EDENIED ? "the access key or secret key is refused"
                          : error == WH_ENOTFOUND || strstr(wh_error_msg(), "NoSuchBucket")
                              ? "there is no such bucket"
                              : "the object store does not answer as S3";
        error = wh_error_set(error, "bucket %s at %s: %s (%s)", cfg->bucket, cfg->endpoint, why,
                             wh_error_msg());
        goto out;
    }
    wh_s3_list_dispose(&l);
    *out = &s->base;
    s = NULL;
out:
    if (s)
        s3_free(&s->base);
    return error;
}
