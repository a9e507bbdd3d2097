/*
 * blob.c: blobs and blob uploads (spec.md, "Pulling blobs", "Pushing blobs",
 * "Deleting blobs"). Uploads: POST starts a session (or mounts, or takes the
 * whole blob with ?digest=), PATCH appends a chunk at the offset its
 * Content-Range names, PUT ?digest= appends an optional last chunk and
 * commits, GET reports progress, DELETE cancels. Bytes are hashed while they
 * are written (one pass); the session's writer stays open between requests.
 */
#include "registry/registry_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- session table ---- */

/* Why acquire failed. */
enum { ACQ_UNKNOWN = -100, ACQ_BUSY = -101 };

/*
 * Takes a session for the duration of a request: from memory, or reloaded
 * from the database and staged bytes after a restart. The pool cleanup
 * gives it back, whatever way the request ends.
 */
static void session_release(void *arg);

struct held {
    wh_registry *reg;
    struct session *s;
};

static int session_acquire(wh_registry *reg, wh_req *r, const struct target *t,
                           struct session **out)
{
    struct session *s;
    pthread_mutex_lock(&reg->lock);
    for (s = reg->sessions; s; s = s->next)
        if (strcmp(s->id, t->ref) == 0)
            break;
    if (s) {
        if (s->busy || strcmp(s->repo, t->name) != 0) {
            bool busy = s->busy;
            pthread_mutex_unlock(&reg->lock);
            return busy ? ACQ_BUSY : ACQ_UNKNOWN;
        }
        s->busy = true;
        pthread_mutex_unlock(&reg->lock);
    } else {
        pthread_mutex_unlock(&reg->lock);
        char repo[WH_NAME_MAX];
        if (strlen(t->ref) >= sizeof(s->id) || wh_db_upload_get(reg->db, t->ref, repo) < 0 ||
            strcmp(repo, t->name) != 0)
            return ACQ_UNKNOWN;
        wh_upload *w = NULL;
        if (wh_store_upload_open(reg->store, t->ref, &w) < 0)
            return ACQ_UNKNOWN;
        s = wh_calloc(1, sizeof(*s));
        snprintf(s->id, sizeof(s->id), "%s", t->ref);
        snprintf(s->repo, sizeof(s->repo), "%s", t->name);
        s->project_id = t->project_id;
        s->w = w;
        s->busy = true;
        pthread_mutex_lock(&reg->lock);
        struct session *other;
        for (other = reg->sessions; other; other = other->next)
            if (strcmp(other->id, s->id) == 0)
                break;
        if (other) { /* another request reloaded it first */
            pthread_mutex_unlock(&reg->lock);
            wh_upload_close(s->w);
            free(s);
            return ACQ_BUSY;
        }
        s->next = reg->sessions;
        reg->sessions = s;
        reg->nsessions++;
        pthread_mutex_unlock(&reg->lock);
    }
    struct held *h = wh_pool_alloc(wh_req_pool(r), sizeof(*h));
    h->reg = reg;
    h->s = s;
    s->holder = h;
    wh_pool_cleanup(wh_req_pool(r), session_release, h);
    *out = s;
    return 0;
}

static void session_release(void *arg)
{
    struct held *h = arg;
    if (!h->s)
        return; /* the request ended the session itself */
    pthread_mutex_lock(&h->reg->lock);
    h->s->busy = false;
    h->s->holder = NULL;
    pthread_mutex_unlock(&h->reg->lock);
}

/*
 * Gives a session back before answering: the client may send its next
 * request on another connection as soon as it reads the answer, before the
 * server has finished with this one.
 */
static void session_done(wh_registry *reg, struct session *s)
{
    pthread_mutex_lock(&reg->lock);
    if (s->holder)
        s->holder->s = NULL;
    s->holder = NULL;
    s->busy = false;
    pthread_mutex_unlock(&reg->lock);
}

/* Ends a session the caller holds: forgets it everywhere and frees it. */
static void session_end(wh_registry *reg, struct session *s)
{
    pthread_mutex_lock(&reg->lock);
    for (struct session **pp = &reg->sessions; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            reg->nsessions--;
            break;
        }
    }
    pthread_mutex_unlock(&reg->lock);
    wh_db_upload_delete(reg->db, s->id);
    if (s->holder)
        s->holder->s = NULL;
    wh_upload_close(s->w);
    free(s);
}

static int acquire_or_answer(wh_registry *reg, wh_req *r, const struct target *t,
                             struct session **out)
{
    int rc = session_acquire(reg, r, t, out);
    if (rc == ACQ_BUSY)
        return oci_error(r, E_RANGE_INVALID, "another request is writing to this upload");
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

    wh_resp_header(r, "Docker-Content-Digest", d.str);
    wh_resp_header(r, "Accept-Ranges", "bytes");
    wh_resp_header(r, "ETag", wh_pool_sprintf(wh_req_pool(r), "\"%s\"", d.str));
    wh_resp_header(r, "Cache-Control", "max-age=31536000");
    int status = 200;
    first = 0;
    last = size ? size - 1 : 0;
    error = wh_range_parse(wh_req_header(r, "Range"), size, &first, &last);
    if (error == WH_ERANGE) {
        wh_resp_header(r, "Content-Range", wh_pool_sprintf(wh_req_pool(r), "bytes */%" PRIu64,
                                                           size));
        wh_resp_send_empty(r, 416);
        return 0;
    }
    if (error == 0) {
        status = 206;
        wh_resp_header(r, "Content-Range",
                       wh_pool_sprintf(wh_req_pool(r), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64,
                                       first, last, size));
    }
    uint64_t len = size ? last - first + 1 : 0;
    if (m == WH_HTTP_HEAD) {
        wh_resp_send_head(r, status, "application/octet-stream", len);
        return 0;
    }
    int fd = -1;
    uint64_t stored;
    if (wh_store_open_blob(reg->store, &d, &fd, &stored) < 0 || stored != size) {
        if (fd >= 0)
            close(fd);
        wh_log_error("blob %s is recorded but missing or truncated in storage", d.str);
        return oci_error(r, E_BLOB_UNKNOWN, NULL);
    }
    wh_resp_send_fd(r, status, "application/octet-stream", fd, first, len);
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
        if (wh_upload_truncate(c->w, c->start) < 0)
            wh_log_error("upload %s: %s", c->id, wh_error_msg());
        upload_headers(r, c->t, c->id, wh_upload_size(c->w));
        session_done(c->reg, c->s);
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
    int error = wh_upload_write(c->w, p, n);
    if (error < 0) {
        /* the staged bytes are as before the failed write: the chunk can be sent again */
        if (error != WH_ENOSPC)
            wh_log_error("upload %s: %s", c->id, wh_error_msg());
        return refuse_chunk(r, c, error == WH_ENOSPC ? E_STORAGE_FULL : E_INTERNAL, NULL);
    }
    return 0;
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
        if (c->s) {
            wh_store_upload_remove(reg->store, c->id);
            session_end(reg, c->s);
            c->s = NULL;
            c->w = NULL;
        }
        return -1;
    }
    wh_upload *w = c->w;
    c->w = NULL;
    if (c->s)
        c->s->w = NULL;
    error = wh_upload_commit(w, &d); /* consumes w, removes the staged file */
    if (c->s) {
        session_end(reg, c->s);
        c->s = NULL;
    }
    if (error == WH_EINVALID)
        return oci_error(r, E_DIGEST_INVALID, NULL);
    if (error < 0)
        return oci_fail(reg, r, error, wh_pool_sprintf(wh_req_pool(r), "commit %s", d.str));
    /* the quota is reserved here, atomically; the check above only saves the copy.
     * A blob committed but not recorded is served by nobody; a retry records it. */
    error = wh_db_blob_link(reg->db, c->t->project_id, c->t->name, d.str, size);
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
        wh_upload_close(c->w);
        wh_store_upload_remove(c->reg->store, c->id);
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
    wh_db_upload_touch(c->reg->db, c->id, wh_now_ms());
    session_done(c->reg, c->s);
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
            wh_upload_close(w);
            w = NULL;
        }
        wh_store_upload_remove(reg->store, id);
        wh_db_upload_delete(reg->db, id);
        return oci_fail(reg, r, error, "create upload");
    }
    struct session *s = wh_calloc(1, sizeof(*s));
    snprintf(s->id, sizeof(s->id), "%s", id);
    snprintf(s->repo, sizeof(s->repo), "%s", t->name);
    s->project_id = t->project_id;
    s->w = w;
    pthread_mutex_lock(&reg->lock);
    s->next = reg->sessions;
    reg->sessions = s;
    reg->nsessions++;
    pthread_mutex_unlock(&reg->lock);
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
    case WH_HTTP_HEAD:
        if (acquire_or_answer(reg, r, t, &s) < 0)
            return -1;
        upload_headers(r, t, s->id, wh_upload_size(s->w));
        session_done(reg, s);
        wh_resp_send_empty(r, 204);
        return 0;
    case WH_HTTP_DELETE:
        if (acquire_or_answer(reg, r, t, &s) < 0)
            return -1;
        wh_upload_close(s->w);
        s->w = NULL;
        wh_store_upload_remove(reg->store, s->id);
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
    struct chunk_ctx *c = wh_pool_alloc(wh_req_pool(r), sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->reg = reg;
    c->t = t;
    c->s = s;
    c->w = s->w;
    snprintf(c->id, sizeof(c->id), "%s", s->id);
    c->start = wh_upload_size(s->w);
    c->commit = m == WH_HTTP_PUT;
    c->digest = digest ? wh_pool_strdup(wh_req_pool(r), d.str) : NULL;
    const char *cr = wh_req_header(r, "Content-Range");
    if (cr && m == WH_HTTP_PATCH) {
        uint64_t first, last;
        if (wh_content_range_parse(cr, &first, &last) < 0 || first != c->start) {
            upload_headers(r, t, s->id, c->start);
            session_done(reg, s);
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
