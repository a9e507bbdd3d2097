/* Private to registry/: shared state and helpers of the /v2/ handlers. */
#ifndef WH_REGISTRY_INT_H
#define WH_REGISTRY_INT_H

#include <pthread.h>

#include "registry/registry.h"

/* OCI error codes (spec.md, "Error Codes") plus the few wharf adds. */
enum oci_err {
    E_BLOB_UNKNOWN,
    E_BLOB_UPLOAD_INVALID,
    E_BLOB_UPLOAD_UNKNOWN,
    E_DIGEST_INVALID,
    E_MANIFEST_BLOB_UNKNOWN,
    E_MANIFEST_INVALID,
    E_MANIFEST_UNKNOWN,
    E_NAME_INVALID,
    E_NAME_UNKNOWN,
    E_SIZE_INVALID,
    E_UNAUTHORIZED,
    E_DENIED,
    E_UNSUPPORTED,
    E_TOO_MANY_REQUESTS,
    E_RANGE_INVALID,        /* 416 on uploads: BLOB_UPLOAD_INVALID with status 416 */
    E_MANIFEST_TOO_BIG,     /* 413: MANIFEST_INVALID with status 413 */
    E_BLOB_TOO_BIG,         /* 413: SIZE_INVALID with status 413 */
    E_PAGINATION_INVALID,
    E_NOT_FOUND,
    E_METHOD,
    E_IN_USE,               /* 405: a delete of content a manifest or index still uses */
    E_INTERNAL,
    E_STORAGE_FULL,         /* 507: DENIED with status 507, the disk is full */
    E_POLICY,               /* 412 PROJECTPOLICYVIOLATION: the project's pull policy */
};

/*
 * An upload session as one request holds it. Sessions live in the database
 * (the upload row: accepted bytes, the storage driver's state, a lease) and
 * in the store, never in this process between requests, so that any node
 * sharing both takes the next chunk.
 */
struct session {
    char id[64];
    char repo[WH_NAME_MAX];
    int64_t project_id;
    uint64_t accepted;  /* bytes accepted before this request */
    char *state;        /* the driver's state as of those bytes (malloc'd) */
    char holder[40];    /* this request's lease token */
    int64_t renewed_ms; /* when the lease was last extended */
    wh_upload *w;       /* the writer, once resumed (NULL before) */
    bool held;          /* the lease is still ours (released or saved: false) */
    wh_upload_lock *lock; /* the store's lock on the session, when it has one (no lease then) */
    wh_registry *reg;
};
/* How long a request's claim on a session lasts unless renewed while writing. */
#define UPLOAD_LEASE_MS 10000

#define PULL_SLOTS 1024
#define MCACHE_SLOTS 128            /* manifests kept in memory */
#define MCACHE_ITEM_MAX (16 * 1024) /* larger manifests are sent from the file */

/* A manifest's bytes, cached by digest (content never changes under a digest). */
struct mcache_item {
    char digest[WH_DIGEST_STR_MAX];
    char *bytes;
    size_t len;
};

/*
 * A blob a push linked into a repository (upload or mount), remembered so
 * that, when the same caller's push of that repository is refused for the
 * quota, the layers it already sent stop counting against it.
 */
#define PUSHED_MAX 256
struct pushed_blob {
    char repo[256];
    char user[WH_NAME_MAX];
    char digest[WH_DIGEST_STR_MAX];
    int64_t at_ms; /* 0: a free slot */
};

struct wh_registry {
    struct wh_registry_config cfg;
    wh_db *db;
    wh_store *store;
    wh_acl *acl;
    pthread_mutex_t lock;     /* guards pulls and pushed */
    struct pushed_blob *pushed; /* PUSHED_MAX entries, the oldest replaced first */
    struct {
        int64_t artifact_id, count;
    } pulls[PULL_SLOTS];      /* pending pull statistics, flushed by the sweeper */
    size_t npulls;
    pthread_mutex_t mcache_lock;
    struct mcache_item mcache[MCACHE_SLOTS];
    pthread_t sweeper;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    bool stopping;
};

/* A parsed /v2/ request target. */
struct target {
    const char *name;  /* repository name (pool) */
    const char *ref;   /* tag, digest or upload id (pool), may be "" */
    int64_t project_id;
    struct wh_principal *who; /* the caller (pool) */
};

/* errors.c */
/*
 * Answers with the OCI error body; `message` may be NULL for the default,
 * `detail_json` (compact JSON text) may be NULL for none.
 */
void oci_answer(wh_req *r, enum oci_err e, const char *message, const char *detail_json);
/*
 * oci_answer for `return oci_error(...)` in handlers: always -1. Inline so that
 * the compiler and gcc's static analyzer see the -1 and do not follow a
 * success path after an error answer.
 */
static inline int oci_error(wh_req *r, enum oci_err e, const char *message)
{
    oci_answer(r, e, message, NULL);
    return -1;
}
/*
 * A 405 (E_METHOD, or E_IN_USE) with the `Allow` header listing the methods
 * the resource takes (RFC 9110, section 15.5.6). `message` may be NULL.
 */
static inline int oci_not_allowed(wh_req *r, enum oci_err e, const char *allow,
                                  const char *message)
{
    wh_resp_header(r, "Allow", allow);
    oci_answer(r, e, message, NULL);
    return -1;
}
/* The same with a JSON `detail` value (compact JSON text). */
static inline int oci_error_detail(wh_req *r, enum oci_err e, const char *message,
                                   const char *detail_json)
{
    oci_answer(r, e, message, detail_json);
    return -1;
}

/*
 * Answers a failed storage or database write `error` of the operation
 * `what`: 507 DENIED "storage is full" for WH_ENOSPC (and the store enters
 * its full state), 500 otherwise. Returns -1.
 */
int oci_fail(wh_registry *reg, wh_req *r, int error, const char *what);
/*
 * For deletes on a full disk: true when `error` is WH_ENOSPC and the store
 * just freed its reserve, so that running the failed write once more may
 * succeed.
 */
bool retry_on_full(wh_registry *reg, int error);
/*
 * Bytes of blob `digest` were stored but could not be recorded (`error`):
 * queues them for the garbage collector, which deletes them once their
 * review is due unless a push records them meanwhile. Keeps the error
 * message of `error` for the caller's answer.
 */
void gc_enqueue(wh_registry *reg, const char *digest, int error);

/* Answers DENIED when the registry is read-only; returns < 0 then. */
int need_writable(wh_registry *reg, wh_req *r);
/* May the caller read repository `repo` (for mounts)? */
bool can_pull(wh_registry *reg, const struct wh_principal *who, const char *repo);
/* Records an audit entry of the caller about `resource` in t's project. */
void audit(wh_registry *reg, wh_req *r, const struct target *t, const char *resource,
           const char *operation, bool result);
/*
 * Checks the project's storage quota for adding blob `digest` of `size`
 * bytes (nothing when the project holds it already). Answers 403 DENIED
 * with Harbor's message and returns < 0 when it would be exceeded.
 */
int quota_check(wh_registry *reg, wh_req *r, const struct target *t, const char *digest,
                uint64_t size);
/* Remembers that the caller's push linked `digest` into t->name. */
void push_noted(wh_registry *reg, const struct target *t, const char *digest);
/*
 * The caller's push of t->name was refused for the quota: unlinks from the
 * repository the blobs that push linked (push_noted, within uploads.ttl) and
 * `blobs` (a refused manifest's), except those a manifest of the repository
 * uses, so that they no longer count against the quota.
 */
void push_refused(wh_registry *reg, const struct target *t, const char *const *blobs,
                  size_t nblobs);
/*
 * The manifest cache: whether the registry serves a pulled manifest from
 * memory (small manifests, the hot path of every pull) and the functions
 * that fill it. Whether a manifest exists is always the database's answer;
 * the cache only saves reading bytes that cannot change.
 */
/* Copies the cached bytes of `digest` into pool memory: true on a hit. */
bool mcache_get(wh_registry *reg, wh_pool *pool, const char *digest, const char **out,
                size_t len);
void mcache_put(wh_registry *reg, const char *digest, const char *bytes, size_t len);
/* Seconds without a PATCH/PUT after which an upload session is removed. */
unsigned upload_idle_s(const wh_registry *reg);
/* How often the sweeper looks for expired upload sessions. */
int64_t upload_sweep_ms(const wh_registry *reg);
/* Queues one pull of an artifact for the statistics. */
void pull_note(wh_registry *reg, int64_t artifact_id);

/* blob.c */
/*
 * Opens a reader of `len` bytes from `first` of stored blob `d`, recorded
 * as `size` bytes. WH_ENOTFOUND when the store lacks the blob or holds
 * another size; another code when the store failed (it may be unreachable
 * for a while: the blob is not unknown then).
 */
int open_stored(wh_store_reader **out, wh_registry *reg, const struct wh_digest *d, uint64_t size,
                uint64_t first, uint64_t len);
/*
 * Sends the `len` bytes `rd` holds (consumed): with sendfile when the store
 * hands out a file, else streamed from the reader.
 */
void send_reader(wh_req *r, int status, const char *content_type, wh_store_reader *rd,
                 uint64_t len);
int handle_blob(wh_registry *reg, wh_req *r, struct target *t);
int handle_upload(wh_registry *reg, wh_req *r, struct target *t);
/* manifest_api.c */
int handle_manifest(wh_registry *reg, wh_req *r, struct target *t);
/* listing.c */
int handle_tags(wh_registry *reg, wh_req *r, struct target *t);
int handle_catalog(wh_registry *reg, wh_req *r);
int handle_referrers(wh_registry *reg, wh_req *r, struct target *t);
/* Parses ?n= (absent: `dflt`), answering 400 on junk; returns < 0 then. */
int page_size(wh_req *r, int64_t dflt, int64_t *out);

#endif
