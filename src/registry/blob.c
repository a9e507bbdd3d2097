/*
 * blob.c: blobs and blob uploads (spec.md, "Pulling blobs", "Pushing blobs",
 * "Deleting blobs"). Uploads: POST starts a session (or mounts, or takes the
 * whole blob with ?digest=), PATCH appends a chunk at the offset its
 * Content-Range names, PUT ?digest= appends an optional last chunk and
 * commits, GET reports progress, DELETE cancels. Bytes are hashed while they
 * are written (one pass). Between requests a session is its database row
 * (accepted bytes, the store's writer state) and its staged data, nothing in
 * this process: each PATCH or PUT claims the row (a lease), resumes the
 * writer, and records the accepted chunk before answering, so that the next
 * chunk may go to any node sharing the database and the store.
 */
#include "registry/registry_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- sessions ---- */

/* Why acquire failed. */
enum { ACQ_UNKNOWN = -100, ACQ_BUSY = -101, ACQ_FAILED = -102 };

/*
 * The end of a request, however it ends: a session still held (the client
 * went away mid-chunk, or an error path) drops its pending chunk, closes
 * its writer and gives the lease back, so that the next request, on this
 * node or another, resumes from what was accepted.
 */
static void session_cleanup(void *arg)
{
    struct session *s = arg;
    if (s->w) {
        wh_upload_reject(s->w);
        wh_upload_close(s->w);
        s->w = NULL;
    }
    if (s->held) {
        s->held = false;
        wh_db_upload_release(s->reg->db, s->id, s->holder);
    }
    wh_store_upload_unlock(s->reg->store, s->lock);
    s->lock = NULL;
    free(s->state);
    s->state = NULL;
}

/*
 * Takes the session with the store's own lock (a flock of the staged file)
 * and then reads its row: no write to the database, and a writer that dies
 * gives the lock back with its process. WH_ENOTSUP when the store has no
 * such lock.
 */
static int session_lock(wh_registry *reg, struct session *s, struct wh_upload_session *us)
{
    int error = wh_store_upload_lock(reg->store, s->id, &s->lock);
    if (error < 0)
        return error;
    if ((error = wh_db_upload_peek(reg->db, s->id, us)) < 0) {
        wh_store_upload_unlock(reg->store, s->lock);
        s->lock = NULL;
    }
    return error;
}

/*
 * Claims session t->ref for this request: a lease on its database row.
 * Only the row is read; the writer is resumed by session_writer when bytes
 * come.
 */
static int session_acquire(wh_registry *reg, wh_req *r, const struct target *t,
                           struct session **out)
{
    struct wh_upload_session us;
    struct session *s = wh_pool_alloc(wh_req_pool(r), sizeof(*s));
    char hex[33];
    memset(s, 0, sizeof(*s));
    if (strlen(t->ref) >= sizeof(s->id))
        return ACQ_UNKNOWN;
    snprintf(s->id, sizeof(s->id), "%s", t->ref);
    s->reg = reg;
    int64_t now = wh_now_ms();
    int error = session_lock(reg, s, &us);
    if (error == WH_ENOTSUP) {
        wh_random_hex(hex, 16);
        snprintf(s->holder, sizeof(s->holder), "%s", hex);
        error = wh_db_upload_claim(reg->db, s->id, s->holder, now, now + UPLOAD_LEASE_MS, &us);
        s->held = error == 0;
    }
    if (error == WH_EBUSY)
        return ACQ_BUSY;
    if (error == WH_ENOTFOUND)
        return ACQ_UNKNOWN;
    if (error < 0)
        return ACQ_FAILED;
    s->renewed_ms = now;
    s->accepted = us.accepted;
    s->state = us.state;
    s->project_id = us.project_id;
    snprintf(s->repo, sizeof(s->repo), "%s", us.repo);
    wh_pool_cleanup(wh_req_pool(r), session_cleanup, s);
    if (strcmp(s->repo, t->name) != 0)
        return ACQ_UNKNOWN; /* another repository's id: as if unknown (the cleanup releases) */
    *out = s;
    return 0;
}

/* Resumes the session's writer at the accepted bytes. 0 or an error code. */
static int session_writer(wh_registry *reg, struct session *s)
{
    if (s->w)
        return 0;
    return wh_store_upload_resume(reg->store, s->id, s->accepted, s->state, &s->w);
}

/*
 * Extends the lease while a long chunk streams in (at most every third of
 * the lease). False when the lease was lost: the chunk cannot be kept.
 */
static bool session_renew(wh_registry *reg, struct session *s)
{
    int64_t now = wh_now_ms();
    if (s->lock || now - s->renewed_ms < UPLOAD_LEASE_MS / 3)
        return true;
    if (wh_db_upload_renew(reg->db, s->id, s->holder, now + UPLOAD_LEASE_MS) < 0)
        return false;
    s->renewed_ms = now;
    return true;
}

/*
 * Accepts the chunk just received and records the session's new offset and
 * state, ending the lease, before the answer goes out: the client may send
 * its next chunk, to any node, as soon as it reads the answer. On failure
 * the chunk is rejected (the session stays as it was).
 */
static int session_save(wh_registry *reg, struct session *s)
{
    int error = wh_upload_accept(s->w);
    if (error == 0)
        error = wh_db_upload_save(reg->db, s->id, s->lock ? NULL : s->holder,
                                  wh_upload_offset(s->w), wh_upload_state(s->w), wh_now_ms());
    if (error == 0)
        s->held = false;
    wh_upload_close(s->w); /* a failed accept or save rejects nothing the row records */
    s->w = NULL;
    wh_store_upload_unlock(reg->store, s->lock); /* the answer may bring the next chunk at once */
    s->lock = NULL;
    return error;
}

/*
 * Gives a session back unchanged before answering (a status request, a
 * refused chunk): the pending chunk is dropped and the lease ended.
 */
static void session_done(wh_registry *reg, struct session *s)
{
    if (s->w) {
        wh_upload_reject(s->w);
        wh_upload_close(s->w);
        s->w = NULL;
    }
    if (s->held) {
        s->held = false;
        wh_db_upload_release(reg->db, s->id, s->holder);
    }
    wh_store_upload_unlock(reg->store, s->lock);
    s->lock = NULL;
}

/* Ends a session the caller holds: its row goes (its writer was committed or cancelled). */
static void session_end(wh_registry *reg, struct session *s)
{
    wh_db_upload_delete(reg->db, s->id);
    s->held = false;
}

static int acquire_or_answer(wh_registry *reg, wh_req *r, const struct target *t,
                             struct session **out)
{
    int rc = session_acquire(reg, r, t, out);
    if (rc == ACQ_BUSY)
        return oci_error(r, E_RANGE_INVALID, "another request is writing to this upload");
    if (rc == ACQ_FAILED)
        return oci_error(r, E_INTERNAL, NULL);
    if (rc < 0)
        return oci_error(r, E_BLOB_UPLOAD_UNKNOWN, NULL);
    return 0;
}

/* ---- helpers ---- */

static void upload_headers(wh_req *r, const struct target *t, const char *id, uint64_t size)
{
    wh_pool *p = wh_req_pool(r);
    wh_resp_header(r, "Location", wh_pool_sprintf(p, "/v2/%s/blobs/uploads/%s", t->name, id));
    wh_resp_header(r, "Docker-Upload-UUID", id);
    wh_resp_header(r, "Range", wh_pool_sprintf(p, "0-%" PRIu64, size ? size - 1 : 0));
}

static int parse_digest_arg(wh_req *r, const char *s, struct wh_digest *out)
{
    if (!s || wh_digest_parse(out, s, strlen(s)) < 0) {
        if (s && strchr(s, ':') && strncmp(s, "sha256:", 7) != 0 && strncmp(s, "sha512:", 7) != 0)
            return oci_error(r, E_UNSUPPORTED, "unsupported digest algorithm");
        return oci_error(r, E_DIGEST_INVALID, "invalid digest");
    }
    return 0;
}

/* ---- blob GET / HEAD / DELETE ---- */

static long reader_stream(void *payload, char *buf, size_t max)
{
    size_t got = 0;
    if (wh_store_reader_read(payload, buf, max, &got) < 0) {
        wh_log_warn("sending a blob: %s", wh_error_msg());
        return -1;
    }
    return (long)got;
}

static void reader_done(void *payload)
{
    wh_store_reader_close(payload);
}

int open_stored(wh_store_reader **out, wh_registry *reg, const struct wh_digest *d, uint64_t size,
                uint64_t first, uint64_t len)
{
    wh_store_reader *rd = NULL;
    int error = wh_store_reader_open(&rd, reg->store, d, first, len);
    if (error == WH_ERANGE) /* the range starts past the stored bytes: shorter than recorded */
        return wh_error_set(WH_ENOTFOUND, "blob %s: fewer bytes stored than recorded", d->str);
    if (error < 0)
        return error;
    if (wh_store_reader_blob_size(rd) != size || wh_store_reader_left(rd) != len) {
        wh_store_reader_close(rd);
        return wh_error_set(WH_ENOTFOUND, "blob %s: another size stored than recorded", d->str);
    }
    *out = rd;
    return 0;
}

void send_reader(wh_req *r, int status, const char *content_type, wh_store_reader *rd,
                 uint64_t len)
{
    uint64_t offset;
    /* the filesystem's fast path: the kernel copies the file to the socket (sendfile) */
    int fd = wh_store_reader_fd(rd, &offset);
    if (fd >= 0) {
        wh_store_reader_close(rd);
        wh_resp_send_fd(r, status, content_type, fd, offset, len);
        return;
    }
    wh_resp_send_stream(r, status, content_type, len, reader_stream, reader_done, rd);
}

/* The headers of a blob's answers (not of an error's: a cache would keep that a year). */
static void blob_headers(wh_req *r, const struct wh_digest *d)
{
    wh_resp_header(r, "Docker-Content-Digest", d->str);
    wh_resp_header(r, "Accept-Ranges", "bytes");
    wh_resp_header(r, "ETag", wh_pool_sprintf(wh_req_pool(r), "\"%s\"", d->str));
    wh_resp_header(r, "Cache-Control", "max-age=31536000");
}

int handle_blob(wh_registry *reg, wh_req *r, struct target *t)
{
    struct wh_digest d;
    uint64_t size, first, last;
    enum wh_method m = wh_req_method(r);
    int error;

    if (m != WH_HTTP_GET && m != WH_HTTP_HEAD && m != WH_HTTP_DELETE)
        return oci_not_allowed(r, E_METHOD, reg->cfg.delete_enabled ? "GET, HEAD, DELETE"
                                                                    : "GET, HEAD", NULL);
    if (parse_digest_arg(r, t->ref, &d) < 0)
        return -1;
    if (m == WH_HTTP_DELETE) {
        if (need_writable(reg, r) < 0)
            return -1;
        if (!reg->cfg.delete_enabled)
            return oci_not_allowed(r, E_METHOD, "GET, HEAD",
                                   "deletes are disabled on this registry");
        error = wh_db_blob_unlink(reg->db, t->name, d.str);
        if (retry_on_full(reg, error)) /* a full disk: the reserve was just freed */
            error = wh_db_blob_unlink(reg->db, t->name, d.str);
        if (error == WH_ENOTFOUND)
            return oci_error(r, E_BLOB_UNKNOWN, NULL);
        if (error == WH_ECONFLICT) /* a manifest uses it: deleting it would break an image */
            return oci_error(r, E_IN_USE, wh_pool_strdup(wh_req_pool(r), wh_error_msg()));
        if (error < 0)
            return oci_fail(reg, r, error, "delete blob");
        wh_resp_send_empty(r, 202);
        return 0;
    }
    error = wh_db_blob_get(reg->db, t->name, d.str, &size);
    if (error == WH_ENOTFOUND)
        return oci_error(r, E_BLOB_UNKNOWN, NULL);
    if (error < 0)
        return oci_error(r, E_INTERNAL, NULL);
    /* a push asking whether to upload: a collection due soon waits (GitLab's remedy) */
    if (m == WH_HTTP_HEAD && wh_db_gc_blob_touch(reg->db, d.str, wh_now_ms()) < 0)
        wh_log_warn("blob %s: review not postponed: %s", d.str, wh_error_msg());

    int status = 200;
    first = 0;
    last = size ? size - 1 : 0;
    error = wh_range_parse(wh_req_header(r, "Range"), size, &first, &last);
    if (error == WH_ERANGE) {
        blob_headers(r, &d);
        wh_resp_header(r, "Content-Range", wh_pool_sprintf(wh_req_pool(r), "bytes */%" PRIu64,
                                                           size));
        wh_resp_send_empty(r, 416);
        return 0;
    }
    if (error == 0)
        status = 206;
    uint64_t len = size ? last - first + 1 : 0;
    char *url = NULL;
    wh_store_reader *rd = NULL;
    if (m == WH_HTTP_GET && wh_store_redirect_url(reg->store, &d, &url) == 0 && url) {
        /* the object store serves the bytes itself (the client follows, as for S3 in distribution) */
        blob_headers(r, &d);
        wh_resp_header(r, "Location", url);
        free(url);
        wh_resp_send_empty(r, 307);
        return 0;
    }
    if (m == WH_HTTP_GET &&
        (error = open_stored(&rd, reg, &d, size, first, len)) < 0) {
        if (error == WH_ENOTFOUND) {
            wh_log_error("blob %s is recorded but missing or truncated in storage: %s", d.str,
                         wh_error_msg());
            return oci_error(r, E_BLOB_UNKNOWN, NULL);
        }
        /* the store failed (unreachable, say): the blob is not unknown, the client may retry */
        wh_log_error("blob %s: storage: %s", d.str, wh_error_msg());
        return oci_error(r, E_INTERNAL, NULL);
    }
    blob_headers(r, &d);
    if (status == 206)
        wh_resp_header(r, "Content-Range",
                       wh_pool_sprintf(wh_req_pool(r), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64,
                                       first, last, size));
    if (m == WH_HTTP_HEAD) {
        wh_resp_send_head(r, status, "application/octet-stream", len);
        return 0;
    }
    send_reader(r, status, "application/octet-stream", rd, len);
    return 0;
}

/* ---- uploads ---- */

struct chunk_ctx {
    wh_registry *reg;
    struct target *t;
    struct session *s;      /* the session being written (NULL: monolithic) */
    wh_upload *w;           /* the writer */
    char id[64];
    uint64_t start;         /* size before this request */
    bool has_range;
    uint64_t range_last;    /* expected last offset from Content-Range */
    const char *digest;     /* PUT/POST ?digest= */
    bool commit;            /* finish with a commit (PUT, monolithic POST) */
    bool monolithic;
};

/*
 * Refuses a chunk: the session goes back to the size it had before this
 * request (so the client may retry the chunk) and the answer says where it
 * stands.
 */
static int refuse_chunk(wh_req *r, struct chunk_ctx *c, enum oci_err e, const char *msg)
{
    if (c->s) {
        session_done(c->reg, c->s);
        upload_headers(r, c->t, c->id, c->start);
    } else if (c->w) {
        wh_upload_reject(c->w);
    }
    return oci_error(r, e, msg);
}

static int chunk_data(wh_req *r, const char *p, size_t n, void *arg)
{
    struct chunk_ctx *c = arg;
    uint64_t total;
    if (__builtin_add_overflow(wh_upload_size(c->w), (uint64_t)n, &total) ||
        total > c->reg->cfg.max_blob_bytes)
        return refuse_chunk(r, c, E_BLOB_TOO_BIG,
                            wh_pool_sprintf(wh_req_pool(r), "blob exceeds the limit of %" PRIu64
                                                            " bytes", c->reg->cfg.max_blob_bytes));
    if (c->has_range && total > c->range_last + 1)
        return refuse_chunk(r, c, E_RANGE_INVALID, "chunk is longer than its Content-Range");
    if (c->s && !session_renew(c->reg, c->s))
        return refuse_chunk(r, c, E_RANGE_INVALID, "the upload was taken over by another request");
    int error = wh_upload_write(c->w, p, n);
    if (error < 0) {
        /* the chunk is dropped, the session is as before it: the chunk can be sent again */
        if (error != WH_ENOSPC)
            wh_log_error("upload %s: %s", c->id, wh_error_msg());
        return refuse_chunk(r, c, error == WH_ENOSPC ? E_STORAGE_FULL : E_INTERNAL, NULL);
    }
    return 0;
}

/* A blob's row, and the end of the upload session that brought it (if any). */
struct recording {
    const struct target *t;
    const char *digest;
    uint64_t size;
    const char *upload_id; /* NULL: a monolithic upload, no session */
    int link_error;
};

static int record_blob(wh_db *db, void *payload)
{
    struct recording *rec = payload;
    int error = wh_db_blob_link(db, rec->t->project_id, rec->t->name, rec->digest, rec->size);
    rec->link_error = error;
    if (error == 0 && rec->upload_id)
        error = wh_db_upload_delete(db, rec->upload_id);
    return error;
}

/* Commits the staged bytes as blob `digest` and answers 201. */
static int commit(wh_req *r, struct chunk_ctx *c)
{
    struct wh_digest d;
    wh_registry *reg = c->reg;
    uint64_t size = wh_upload_size(c->w);
    int error;

    if (wh_digest_parse(&d, c->digest, strlen(c->digest)) < 0) {
        /* checked before the body was read; unreachable unless that changes */
        return oci_error(r, E_DIGEST_INVALID, NULL);
    }
    if (quota_check(reg, r, c->t, d.str, size) < 0) {
        /* refused: nothing of it is kept, nor what the push sent before */
        push_refused(reg, c->t, NULL, 0);
        wh_upload *w = c->w;
        c->w = NULL;
        if (c->s) {
            c->s->w = NULL;
            session_end(reg, c->s);
            c->s = NULL;
        }
        wh_upload_cancel(w);
        return -1;
    }
    wh_upload *w = c->w;
    c->w = NULL;
    if (c->s)
        c->s->w = NULL;
    error = wh_upload_commit(w, &d); /* consumes w, removes the staged data */
    if (error < 0 && c->s) {
        session_end(reg, c->s);
        c->s = NULL;
    }
    if (error == WH_EINVALID)
        return oci_error(r, E_DIGEST_INVALID, NULL);
    if (error < 0)
        return oci_fail(reg, r, error, wh_pool_sprintf(wh_req_pool(r), "commit %s", d.str));
    /* the quota is reserved here, atomically; the check above only saves the copy.
     * A blob committed but not recorded is served by nobody; a retry records it. The
     * session's row goes in the same transaction (or alone, when the recording fails). */
    struct recording rec = {.t = c->t, .digest = d.str, .size = size,
                            .upload_id = c->s ? c->s->id : NULL};
    int berr = wh_db_batch_whole(reg->db, record_blob, &rec);
    error = rec.link_error < 0 ? rec.link_error : berr;
    if (c->s) {
        if (berr < 0)
            session_end(reg, c->s);
        c->s->held = false;
        c->s = NULL;
    }
    if (error < 0)
        gc_enqueue(reg, d.str, error);
    if (error == WH_EDENIED) {
        char *msg = wh_pool_strdup(wh_req_pool(r), wh_error_msg());
        push_refused(reg, c->t, NULL, 0);
        return oci_error(r, E_DENIED, msg);
    }
    if (error == WH_EBUSY) /* the collector took the bytes meanwhile: the client sends them again */
        return oci_error(r, E_BLOB_UPLOAD_INVALID,
                         "the blob was garbage-collected while it was stored: push it again");
    if (error < 0)
        return oci_fail(reg, r, error, wh_pool_sprintf(wh_req_pool(r), "record blob %s", d.str));
    push_noted(reg, c->t, d.str);
    wh_resp_header(r, "Location", wh_pool_sprintf(wh_req_pool(r), "/v2/%s/blobs/%s", c->t->name,
                                                  d.str));
    wh_resp_header(r, "Docker-Content-Digest", d.str);
    wh_resp_send_empty(r, 201);
    return 0;
}

static void monolithic_cleanup(void *arg)
{
    struct chunk_ctx *c = arg;
    if (c->w) { /* the request ended before the commit */
        wh_upload_cancel(c->w);
        c->w = NULL;
    }
}

static int chunk_end(wh_req *r, void *arg)
{
    struct chunk_ctx *c = arg;
    uint64_t size = wh_upload_size(c->w);
    if (c->has_range && size != c->range_last + 1)
        return refuse_chunk(r, c, E_RANGE_INVALID, "chunk is shorter than its Content-Range");
    if (c->commit)
        return commit(r, c);
    int error = session_save(c->reg, c->s);
    if (error < 0) {
        upload_headers(r, c->t, c->id, c->start);
        if (error == WH_ENOTFOUND) /* the lease ran out and another request took the session */
            return oci_error(r, E_RANGE_INVALID, "the upload was taken over by another request");
        return oci_fail(c->reg, r, error, "save upload");
    }
    upload_headers(r, c->t, c->id, size);
    wh_resp_send_empty(r, 202);
    return 0;
}

/*
 * Answers 429 for a session refused by a cap: the message names the cap, and
 * Retry-After is when the most idle session counted against it expires
 * (sooner if its owner finishes one; for the server's cap, others' pushes
 * end all the time, so at most 5 s).
 */
static int refuse_session(wh_registry *reg, wh_req *r, const struct target *t,
                          const struct wh_upload_refusal *why)
{
    wh_pool *p = wh_req_pool(r);
    const char *msg;
    int64_t retry_s = (why->oldest_ms + (int64_t)upload_idle_s(reg) * 1000 - wh_now_ms() + 999) /
                          1000 + (int64_t)upload_sweep_ms(reg) / 1000;
    switch (why->scope) {
    case WH_UPLOAD_OWNER:
        msg = wh_pool_sprintf(p, "too many open upload sessions for %s (%" PRId64 " per user)",
                              t->who->name, why->limit);
        break;
    case WH_UPLOAD_PROJECT:
        msg = wh_pool_sprintf(p, "too many open upload sessions in project %.*s (%" PRId64
                                 " per project)",
                              (int)wh_ref_project_len(t->name), t->name, why->limit);
        break;
    default:
        msg = wh_pool_sprintf(p, "too many open upload sessions on this server (%" PRId64 ")",
                              why->limit);
        if (retry_s > 5)
            retry_s = 5;
        break;
    }
    msg = wh_pool_sprintf(p, "%s: finish or cancel one, or retry once an idle one has expired",
                          msg);
    wh_resp_header(r, "Retry-After",
                   wh_pool_sprintf(p, "%" PRId64, retry_s < 1 ? (int64_t)1 : retry_s));
    return oci_error(r, E_TOO_MANY_REQUESTS, msg);
}

static int start_session(wh_registry *reg, wh_req *r, struct target *t)
{
    char id[40];
    wh_upload *w = NULL;
    struct wh_upload_refusal why;
    const struct wh_upload_caps caps = {
        .total = reg->cfg.max_uploads,
        .per_project = reg->cfg.max_uploads_per_project,
        .per_owner = reg->cfg.max_uploads_per_user,
    };

    char hex[33];
    wh_random_hex(hex, 16);
    snprintf(id, sizeof(id), "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
    /* the row first: a refused session never touches the disk */
    int error = wh_db_upload_create(reg->db, id, t->name, t->project_id, t->who->name,
                                    wh_now_ms(), &caps, &why);
    if (error == WH_EBUSY)
        return refuse_session(reg, r, t, &why);
    if (error == 0)
        error = wh_store_upload_create(reg->store, id, &w);
    if (error < 0) {
        if (w) {
            wh_upload_cancel(w);
            w = NULL;
        } else {
            wh_store_upload_remove(reg->store, id, NULL);
        }
        wh_db_upload_delete(reg->db, id);
        return oci_fail(reg, r, error, "create upload");
    }
    /* nothing accepted yet: the row's empty state resumes it (the writer is not kept) */
    wh_upload_close(w);
    upload_headers(r, t, id, 0);
    wh_resp_header(r, "OCI-Chunk-Min-Length", "0");
    wh_resp_send_empty(r, 202);
    return 0;
}

/*
 * Whether `from` can serve as the explicit source of a mount: a valid name
 * of an existing repository the caller may pull from. Any other `from` is
 * treated as absent, so that the answer says nothing about repositories the
 * caller cannot read (or whether they exist).
 */
static bool usable_from(wh_registry *reg, const struct target *t, const char *from)
{
    struct wh_repo repo;
    return from && wh_ref_name_valid(from, strlen(from)) && can_pull(reg, t->who, from) &&
           wh_db_repo_get(reg->db, from, &repo) == 0;
}

/*
 * A cross-repository mount (spec.md, "Mounting a blob from another
 * repository"). With a usable `from`, the blob comes from there or not at
 * all. Without one — no `from`, or one the caller cannot read — OCI 1.1
 * lets the registry find the blob itself: it is mounted from any repository
 * that holds it and the caller may pull from (acl/ picks it). Returns 0 when
 * mounted (201 sent), 1 to fall back to a new upload session, < 0 when an
 * error was sent.
 */
static int try_mount(wh_registry *reg, wh_req *r, struct target *t, const char *mount,
                     const char *from)
{
    struct wh_digest d;
    uint64_t size;
    char source[WH_NAME_MAX];
    if (wh_digest_parse(&d, mount, strlen(mount)) < 0)
        return 1;
    if (usable_from(reg, t, from)) {
        if (wh_db_blob_get(reg->db, from, d.str, &size) < 0)
            return 1; /* not there: a new upload, as the spec says */
        snprintf(source, sizeof(source), "%s", from);
    } else {
        int error = wh_acl_blob_source(reg->acl, t->who, d.str, t->project_id, source, &size);
        if (error == WH_ENOTFOUND)
            return 1;
        if (error < 0) {
            wh_log_warn("mount %s: %s", d.str, wh_error_msg());
            return 1; /* an upload session still lets the client go on */
        }
    }
    int error = wh_db_blob_link(reg->db, t->project_id, t->name, d.str, size);
    if (error == WH_EBUSY)
        return 1; /* collected since it was found: a new upload, as if it had not been */
    if (error == WH_EDENIED) { /* over the quota: reserved atomically with the link */
        char *msg = wh_pool_strdup(wh_req_pool(r), wh_error_msg());
        push_refused(reg, t, NULL, 0);
        return oci_error(r, E_DENIED, msg);
    }
    if (error < 0)
        return oci_error(r, E_INTERNAL, NULL);
    push_noted(reg, t, d.str);
    wh_log_debug("mounted %s into %s from %s", d.str, t->name, source);
    wh_resp_header(r, "Location", wh_pool_sprintf(wh_req_pool(r), "/v2/%s/blobs/%s", t->name,
                                                  d.str));
    wh_resp_header(r, "Docker-Content-Digest", d.str);
    wh_resp_send_empty(r, 201);
    return 0;
}

static int post_upload(wh_registry *reg, wh_req *r, struct target *t)
{
    const char *mount = wh_req_query(r, "mount");
    const char *digest = wh_req_query(r, "digest");
    struct wh_digest d;

    /* a full disk refuses every push, mounts too, before the client sends a byte */
    int error = wh_store_check_space(reg->store);
    if (error < 0)
        return oci_fail(reg, r, error, "start upload");
    if (mount) {
        int rc = try_mount(reg, r, t, mount, wh_req_query(r, "from"));
        if (rc <= 0)
            return rc;
    }
    if (!digest)
        return start_session(reg, r, t);

    /* Monolithic upload: the body is the whole blob. */
    if (parse_digest_arg(r, digest, &d) < 0)
        return -1;
    struct chunk_ctx *c = wh_pool_alloc(wh_req_pool(r), sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->reg = reg;
    c->t = t;
    c->digest = wh_pool_strdup(wh_req_pool(r), d.str);
    c->commit = true;
    c->monolithic = true;
    char hex[33];
    wh_random_hex(hex, 16);
    snprintf(c->id, sizeof(c->id), "mono-%s", hex);
    if ((error = wh_store_upload_create(reg->store, c->id, &c->w)) < 0)
        return oci_fail(reg, r, error, "create upload");
    wh_pool_cleanup(wh_req_pool(r), monolithic_cleanup, c);
    wh_req_read_body(r, chunk_data, chunk_end, c);
    return 0;
}

int handle_upload(wh_registry *reg, wh_req *r, struct target *t)
{
    enum wh_method m = wh_req_method(r);
    struct session *s = NULL;

    if (m != WH_HTTP_GET && m != WH_HTTP_HEAD && need_writable(reg, r) < 0)
        return -1;
    if (*t->ref == '\0') {
        if (m != WH_HTTP_POST)
            return oci_not_allowed(r, E_METHOD, "POST", NULL);
        return post_upload(reg, r, t);
    }
    switch (m) {
    case WH_HTTP_GET:
    case WH_HTTP_HEAD: {
        /* a status: read without claiming, so it answers even while a chunk streams in */
        struct wh_upload_session us;
        int error = wh_db_upload_peek(reg->db, t->ref, &us);
        if (error == 0) {
            free(us.state);
            if (strcmp(us.repo, t->name) != 0)
                error = WH_ENOTFOUND;
        }
        if (error == WH_ENOTFOUND)
            return oci_error(r, E_BLOB_UPLOAD_UNKNOWN, NULL);
        if (error < 0)
            return oci_error(r, E_INTERNAL, NULL);
        upload_headers(r, t, t->ref, us.accepted);
        wh_resp_send_empty(r, 204);
        return 0;
    }
    case WH_HTTP_DELETE:
        if (acquire_or_answer(reg, r, t, &s) < 0)
            return -1;
        wh_store_upload_remove(reg->store, s->id, s->state);
        session_end(reg, s);
        wh_resp_send_empty(r, 204);
        return 0;
    case WH_HTTP_PATCH:
    case WH_HTTP_PUT:
        break;
    default:
        return oci_not_allowed(r, E_METHOD, "GET, HEAD, PATCH, PUT, DELETE", NULL);
    }

    const char *digest = NULL;
    struct wh_digest d;
    if (m == WH_HTTP_PUT) {
        digest = wh_req_query(r, "digest");
        if (parse_digest_arg(r, digest, &d) < 0)
            return -1;
    }
    if (acquire_or_answer(reg, r, t, &s) < 0)
        return -1;
    int error = session_writer(reg, s);
    if (error < 0) {
        /* the row names bytes the store no longer holds (a machine crash lost them) */
        wh_log_warn("upload %s: %s", s->id, wh_error_msg());
        session_done(reg, s);
        return oci_error(r, error == WH_ENOTFOUND ? E_BLOB_UPLOAD_UNKNOWN : E_INTERNAL, NULL);
    }
    struct chunk_ctx *c = wh_pool_alloc(wh_req_pool(r), sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->reg = reg;
    c->t = t;
    c->s = s;
    c->w = s->w;
    snprintf(c->id, sizeof(c->id), "%s", s->id);
    c->start = wh_upload_offset(s->w);
    c->commit = m == WH_HTTP_PUT;
    c->digest = digest ? wh_pool_strdup(wh_req_pool(r), d.str) : NULL;
    const char *cr = wh_req_header(r, "Content-Range");
    if (cr && m == WH_HTTP_PATCH) {
        uint64_t first, last;
        if (wh_content_range_parse(cr, &first, &last) < 0 || first != c->start) {
            session_done(reg, s);
            upload_headers(r, t, s->id, c->start);
            return oci_error(r, E_RANGE_INVALID,
                             wh_pool_sprintf(wh_req_pool(r),
                                             "Content-Range must start at offset %" PRIu64,
                                             c->start));
        }
        c->has_range = true;
        c->range_last = last;
        /* a Content-Length that disagrees with the range is refused before any byte is taken */
        const char *cl = wh_req_header(r, "Content-Length");
        uint64_t len;
        if (cl && (wh_parse_u64(&len, cl, strlen(cl)) < 0 || len != last - first + 1))
            return refuse_chunk(r, c, E_RANGE_INVALID,
                                "Content-Length does not match the Content-Range");
    }
    wh_req_read_body(r, chunk_data, chunk_end, c);
    return 0;
}
