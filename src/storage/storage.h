/*
 * storage: the content-addressed blob store. A blob is stored once, by
 * digest, whatever repositories reference it; which repository may see which
 * blob is metadata (db/), not storage. Writes go to a staging area and become
 * visible only by an atomic rename after the digest is verified and the data
 * fsynced. Drivers implement `struct wh_store_driver`, modelled on the
 * distribution registry's storage driver: ranged stream readers, append-only
 * upload writers whose state the caller persists (so that any node resumes
 * a session), an optional redirect URL for downloads. The filesystem driver
 * is the one shipped now, with sendfile as its fast path; an object-store
 * driver (S3) maps readers to ranged GETs and sessions to multipart uploads.
 */
#ifndef WH_STORAGE_H
#define WH_STORAGE_H

#include <stdint.h>

#include "common/common.h"

typedef struct wh_store wh_store;
typedef struct wh_upload wh_upload;
typedef struct wh_upload_lock wh_upload_lock;

/* Opens (creating if needed) a filesystem store rooted at `root`. */
int wh_store_open_fs(wh_store **out, const char *root);
/* Where an S3 store (store_s3.c) keeps its blobs: see docs/configuration.md. */
struct wh_store_s3_config {
    const char *endpoint;   /* "http(s)://host[:port]" */
    const char *bucket;
    const char *region;     /* "" or NULL: us-east-1 */
    const char *access_key;
    const char *secret_key;
    const char *prefix;     /* "" or NULL: none; put before every key */
    bool path_style;        /* http://host/bucket/key, else http://bucket.host/key */
    bool redirect;          /* blob GETs answered 307 to a presigned URL of the object */
};
/*
 * Opens an S3 store and checks that the bucket answers and the keys are
 * accepted (one listing). 0, WH_EINVALID (a bad setting), WH_EDENIED (the
 * keys are refused), WH_ENOTFOUND (no such bucket) or WH_ERROR, with a
 * message naming the bucket and endpoint, never the secret.
 */
int wh_store_open_s3(wh_store **out, const struct wh_store_s3_config *cfg);
/* The driver's name: "filesystem" or "s3". */
const char *wh_store_driver_name(const wh_store *s);
void wh_store_free(wh_store *s);

/* Size of a stored blob: 0 or WH_ENOTFOUND. */
int wh_store_stat(wh_store *s, const struct wh_digest *d, uint64_t *size_out);

/*
 * Reading. A reader streams `length` bytes of a blob from `offset` into the
 * caller's buffers (an S3 driver maps it to a ranged GET). The filesystem
 * driver also offers its file descriptor, so that the HTTP layer can send
 * the bytes with sendfile(2) instead of copying them through user space.
 */
typedef struct wh_store_reader wh_store_reader;
#define WH_STORE_TO_END UINT64_MAX
/*
 * Opens blob `d` for reading `length` bytes from `offset` (WH_STORE_TO_END:
 * up to its end; a range past the end is cut to it). Returns 0, WH_ENOTFOUND,
 * WH_ERANGE (offset beyond the end) or WH_ERROR. Close with
 * wh_store_reader_close.
 */
int wh_store_reader_open(wh_store_reader **out, wh_store *s, const struct wh_digest *d,
                         uint64_t offset, uint64_t length);
/* The whole blob's size. */
uint64_t wh_store_reader_blob_size(const wh_store_reader *rd);
/* Bytes of the range not read yet. */
uint64_t wh_store_reader_left(const wh_store_reader *rd);
/*
 * Reads up to `cap` bytes of the range into `buf`: `*got` is 0 at the end
 * of the range. Returns 0 or WH_ERROR (also when the blob ends early).
 */
int wh_store_reader_read(wh_store_reader *rd, void *buf, size_t cap, size_t *got);
/*
 * The fast path: the reader's file descriptor, handed over to the caller
 * (who closes it), with `*offset_out` where the unread part of the range
 * starts in it; -1 when the driver has no file to give (read instead). The
 * reader is still to be closed; once the fd is taken it reads nothing more.
 */
int wh_store_reader_fd(wh_store_reader *rd, uint64_t *offset_out);
/* Closes a reader (accepts NULL). */
void wh_store_reader_close(wh_store_reader *rd);
/*
 * Where a client may fetch blob `d` directly (a presigned object-store URL),
 * as a malloc'd string in `*out`; WH_ENOTFOUND when the driver serves blobs
 * only through wharf (the filesystem driver).
 */
int wh_store_redirect_url(wh_store *s, const struct wh_digest *d, char **out);
/* Reads a whole blob into `out` (initialised by the caller with its cap). */
int wh_store_read_blob(wh_store *s, const struct wh_digest *d, struct wh_buf *out);
/*
 * Stores `len` bytes whose digest the caller has computed as `d` (checked
 * against the bytes read back). Idempotent. 0, WH_ENOSPC or WH_ERROR.
 */
int wh_store_put_bytes(wh_store *s, const struct wh_digest *d, const void *p, size_t len);
/* Removes a blob (garbage collection). 0 or WH_ENOTFOUND. */
int wh_store_delete_blob(wh_store *s, const struct wh_digest *d);
/*
 * Capacity of the storage holding the blobs, in bytes: its total size and
 * what is still free for wharf to write. 0, WH_ENOTFOUND (the driver cannot
 * tell) or WH_ERROR.
 */
int wh_store_capacity(wh_store *s, uint64_t *total, uint64_t *free_bytes);

/*
 * Space. Every write that meets a full disk (ENOSPC, EDQUOT) returns
 * WH_ENOSPC and puts the store in the full state: new uploads and further
 * writes of blob data are refused at once with WH_ENOSPC, and the space the
 * store held in reserve is given back so that deletes and the database's
 * writes can proceed. The state ends by itself once space is free again.
 */
/*
 * Checks the free space now (a statvfs): leaves the full state when there is
 * room again, enters it when nearly nothing is left. Returns 0 or WH_ENOSPC
 * (the message says how much is free). Cheap enough for every upload start
 * and health check.
 */
int wh_store_check_space(wh_store *s);
/*
 * Reports that the disk is full elsewhere (SQLite's SQLITE_FULL on the same
 * disk): enters the full state. Returns true when this call freed space
 * (the reserve), so that retrying the failed write once may succeed.
 */
bool wh_store_note_full(wh_store *s);

/*
 * Upload sessions: append-only writers. A session is named by its `id` (the
 * upload UUID). Bytes arrive in chunks (a PATCH each): wh_upload_write
 * appends to the pending chunk, and wh_upload_accept makes it part of the
 * session, or wh_upload_reject drops it, leaving the session exactly as at
 * the last accept (nothing is ever cut back through this interface).
 *
 * A session does not live in one process. After each accept, the writer's
 * state is its accepted `offset` and a text `state` (wh_upload_state: the
 * running sha256 and whatever the driver needs, such as an object store's
 * multipart upload id and part list). The caller keeps both (the database's
 * upload row) and any process sharing the store resumes the session from
 * them with wh_store_upload_resume; bytes a dead writer staged past the
 * offset are discarded by the resume. Only one writer may hold a session at
 * a time: the caller arranges that (a lease on the row).
 *
 * For an object-store driver: a chunk maps to one or more multipart parts
 * uploaded as it streams and listed in the state on accept; a rejected
 * chunk's parts are simply not listed (they are overwritten or dropped by
 * the commit's CompleteMultipartUpload, which names only listed parts). S3
 * wants every part but the last to be at least 5 MiB, so a driver holds a
 * short tail back (in a small object of its own, named in the state) and
 * sends it with the next chunk's bytes, or copies it server-side
 * (UploadPartCopy). The running hash is taken over the bytes as they are
 * sent; commit compares it with `expected` before completing the upload.
 */
/* Longest state text a driver produces (an object store's part list). */
#define WH_UPLOAD_STATE_MAX (1u << 20)
/* Starts a new, empty session `id`. 0, WH_EEXISTS, WH_EINVALID (bad id), WH_ENOSPC, WH_ERROR. */
int wh_store_upload_create(wh_store *s, const char *id, wh_upload **out);
/*
 * Resumes session `id` at `offset` accepted bytes with the `state` saved at
 * that accept ("" or NULL for a session with nothing accepted yet). A state
 * this process cannot use (another OpenSSL, damaged) costs a re-read of the
 * staged bytes, never correctness. 0, WH_ENOTFOUND (no such session, or its
 * staged bytes are shorter than `offset`) or WH_ERROR.
 */
int wh_store_upload_resume(wh_store *s, const char *id, uint64_t offset, const char *state,
                           wh_upload **out);
/*
 * Appends bytes to the pending chunk. 0, WH_ENOSPC (disk full), WH_ETOOBIG
 * or WH_ERROR; after an error only wh_upload_reject (or close) is of use.
 */
int wh_upload_write(wh_upload *u, const void *p, size_t n);
/* Bytes accepted plus pending. */
uint64_t wh_upload_size(const wh_upload *u);
/* Bytes accepted (the offset to save beside the state). */
uint64_t wh_upload_offset(const wh_upload *u);
/*
 * Makes the pending chunk part of the session and updates the state. 0,
 * WH_ENOSPC or WH_ERROR (the chunk is then rejected).
 */
int wh_upload_accept(wh_upload *u);
/* Drops the pending chunk: the session is as at the last accept. */
void wh_upload_reject(wh_upload *u);
/* The state as of the last accept (owned by `u`, valid until its next call). */
const char *wh_upload_state(const wh_upload *u);
/*
 * Accepts the pending chunk, verifies all the session's bytes against
 * `expected` and, if they match, makes them visible as that blob; the
 * staged data is removed either way. Returns 0, WH_EINVALID on a digest
 * mismatch, WH_ENOSPC (disk full) or WH_ERROR. `u` is consumed in every case.
 */
int wh_upload_commit(wh_upload *u, const struct wh_digest *expected);
/* Cancels the session: its staged data is removed. Consumes `u` (accepts NULL). */
void wh_upload_cancel(wh_upload *u);
/* Closes the writer, keeping what was accepted for a later resume (accepts NULL). */
void wh_upload_close(wh_upload *u);
/*
 * Removes a session's staged data without a writer (expiry), given its
 * saved `state` (may be NULL). 0 or WH_ENOTFOUND.
 */
int wh_store_upload_remove(wh_store *s, const char *id, const char *state);
/*
 * Makes this caller the only writer of session `id` until
 * wh_store_upload_unlock, where the driver can say so itself: the
 * filesystem driver locks the staged file (flock), which every process
 * sharing the directory sees and which ends with the process that holds it.
 * Taken before the session's row is read, so that the row read is the one
 * the previous writer saved. 0 (`*out` set), WH_EBUSY (another writer has
 * it), WH_ENOTFOUND (no staged data) or WH_ENOTSUP: the driver has no such
 * lock (an object store) and the caller leases the session in the database.
 */
int wh_store_upload_lock(wh_store *s, const char *id, wh_upload_lock **out);
/* Ends a lock of wh_store_upload_lock (accepts NULL). */
void wh_store_upload_unlock(wh_store *s, wh_upload_lock *lock);
/*
 * Calls `fn(id, mtime_ms, payload)` for every staged session (start-up
 * reconciliation). Stops early if `fn` returns non-zero.
 */
int wh_store_upload_each(wh_store *s, int (*fn)(const char *id, int64_t mtime_ms, void *payload),
                         void *payload);

/* The driver table, versioned so that out-of-tree drivers can be checked. */
#define WH_STORE_DRIVER_VERSION 3
struct wh_store_driver {
    int version;
    const char *name;
    void (*free)(wh_store *s);
    int (*stat)(wh_store *s, const struct wh_digest *d, uint64_t *size_out);
    /* version 3: readers (see store_int.h for the reader's own operations) */
    int (*reader_open)(wh_store_reader **out, wh_store *s, const struct wh_digest *d,
                       uint64_t offset, uint64_t length);
    int (*redirect_url)(wh_store *s, const struct wh_digest *d, char **out); /* optional */
    int (*put_bytes)(wh_store *s, const struct wh_digest *d, const void *p, size_t len);
    int (*delete_blob)(wh_store *s, const struct wh_digest *d);
    int (*upload_create)(wh_store *s, const char *id, wh_upload **out);
    int (*upload_resume)(wh_store *s, const char *id, uint64_t offset, const char *state,
                         wh_upload **out);
    int (*upload_remove)(wh_store *s, const char *id, const char *state);
    int (*upload_each)(wh_store *s, int (*fn)(const char *, int64_t, void *), void *payload);
    /* version 2: space (NULL: the driver never runs out) */
    int (*check_space)(wh_store *s);
    bool (*note_full)(wh_store *s);
    int (*capacity)(wh_store *s, uint64_t *total, uint64_t *free_bytes); /* optional (NULL) */
    /* optional (NULL: sessions are leased in the database) */
    int (*upload_lock)(wh_store *s, const char *id, wh_upload_lock **out);
    void (*upload_unlock)(wh_store *s, wh_upload_lock *lock);
};

#endif
