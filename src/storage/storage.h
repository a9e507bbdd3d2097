/*
 * storage: the content-addressed blob store. A blob is stored once, by
 * digest, whatever repositories reference it; which repository may see which
 * blob is metadata (db/), not storage. Writes go to a staging area and become
 * visible only by an atomic rename after the digest is verified and the data
 * fsynced. Drivers implement `struct wh_store_driver`; the filesystem driver
 * is the one shipped now (an S3 driver follows for multi-node set-ups).
 */
#ifndef WH_STORAGE_H
#define WH_STORAGE_H

#include <stdint.h>

#include "common/common.h"

typedef struct wh_store wh_store;
typedef struct wh_upload wh_upload;

/* Opens (creating if needed) a filesystem store rooted at `root`. */
int wh_store_open_fs(wh_store **out, const char *root);
void wh_store_free(wh_store *s);

/* Size of a stored blob: 0 or WH_ENOTFOUND. */
int wh_store_stat(wh_store *s, const struct wh_digest *d, uint64_t *size_out);
/*
 * Opens a blob for reading: `*fd_out` is the caller's (close it). Returns 0,
 * WH_ENOTFOUND or WH_ERROR.
 */
int wh_store_open_blob(wh_store *s, const struct wh_digest *d, int *fd_out, uint64_t *size_out);
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
 * Upload sessions. A session's staging data is named by its `id` (the
 * upload UUID). The writer hashes (sha256) as it writes, in one pass.
 */
/* Creates an empty staging area for `id`. */
int wh_store_upload_create(wh_store *s, const char *id, wh_upload **out);
/*
 * Reopens an existing session (after a restart the running hash is rebuilt by
 * reading the staged bytes once). 0, WH_ENOTFOUND or WH_ERROR.
 */
int wh_store_upload_open(wh_store *s, const char *id, wh_upload **out);
/*
 * Appends bytes at the staged size. 0, WH_ENOSPC (disk full) or WH_ERROR
 * (I/O error); after an error the staged bytes are as before the call.
 */
int wh_upload_write(wh_upload *u, const void *p, size_t n);
/* Bytes staged so far. */
uint64_t wh_upload_size(const wh_upload *u);
/*
 * Cuts the staged bytes back to `size` (at most the current size), so that
 * a refused chunk leaves the session as it was. The running hash is rebuilt
 * from the staged bytes. 0 or WH_ERROR.
 */
int wh_upload_truncate(wh_upload *u, uint64_t size);
/*
 * Verifies the staged bytes against `expected` (the file holds exactly the
 * bytes written, and their digest as read back from it is `expected`) and,
 * if they match, makes them visible as that blob (fsync, rename, fsync dir);
 * the staging area is removed either way. Returns 0, WH_EINVALID on a digest
 * mismatch, WH_ENOSPC (disk full) or WH_ERROR. `u` is consumed in every case.
 */
int wh_upload_commit(wh_upload *u, const struct wh_digest *expected);
/* Closes the writer, keeping the staged data for a later request. */
void wh_upload_close(wh_upload *u);
/* Removes a session's staging data (cancel, expiry). 0 or WH_ENOTFOUND. */
int wh_store_upload_remove(wh_store *s, const char *id);
/*
 * Calls `fn(id, mtime_ms, payload)` for every staged session (start-up
 * reconciliation). Stops early if `fn` returns non-zero.
 */
int wh_store_upload_each(wh_store *s, int (*fn)(const char *id, int64_t mtime_ms, void *payload),
                         void *payload);

/* The driver table, versioned so that out-of-tree drivers can be checked. */
#define WH_STORE_DRIVER_VERSION 2
struct wh_store_driver {
    int version;
    const char *name;
    void (*free)(wh_store *s);
    int (*stat)(wh_store *s, const struct wh_digest *d, uint64_t *size_out);
    int (*open_blob)(wh_store *s, const struct wh_digest *d, int *fd_out, uint64_t *size_out);
    int (*put_bytes)(wh_store *s, const struct wh_digest *d, const void *p, size_t len);
    int (*delete_blob)(wh_store *s, const struct wh_digest *d);
    int (*upload_create)(wh_store *s, const char *id, wh_upload **out);
    int (*upload_open)(wh_store *s, const char *id, wh_upload **out);
    int (*upload_remove)(wh_store *s, const char *id);
    int (*upload_each)(wh_store *s, int (*fn)(const char *, int64_t, void *), void *payload);
    /* version 2: space (NULL: the driver never runs out) */
    int (*check_space)(wh_store *s);
    bool (*note_full)(wh_store *s);
    int (*capacity)(wh_store *s, uint64_t *total, uint64_t *free_bytes); /* optional (NULL) */
};

#endif
