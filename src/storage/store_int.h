/* Private to storage/: the base structs every driver embeds first. */
#ifndef WH_STORE_INT_H
#define WH_STORE_INT_H

#include "storage/storage.h"

struct wh_store {
    const struct wh_store_driver *drv;
};

struct wh_store_reader_ops {
    /* Reads up to `cap` bytes at the reader's position (never past `left`). */
    int (*read)(wh_store_reader *rd, void *buf, size_t cap, size_t *got);
    /* Gives up the file descriptor (optional: NULL, no fast path). */
    int (*take_fd)(wh_store_reader *rd);
    void (*close)(wh_store_reader *rd);
};

/* A reader's range bookkeeping, kept by store.c; drivers fill it at open. */
struct wh_store_reader {
    const struct wh_store_reader_ops *ops;
    uint64_t blob_size; /* the whole blob */
    uint64_t pos;       /* absolute offset of the next byte to read */
    uint64_t left;      /* bytes of the range not read yet */
    bool detached;      /* the fd was handed over: nothing more is read */
};

struct wh_upload_ops {
    int (*write)(wh_upload *u, const void *p, size_t n);
    int (*accept)(wh_upload *u);
    void (*reject)(wh_upload *u);
    int (*commit)(wh_upload *u, const struct wh_digest *expected);
    void (*cancel)(wh_upload *u);
    void (*close)(wh_upload *u);
};

/* An upload's bookkeeping, kept by the driver. */
struct wh_upload {
    const struct wh_upload_ops *ops;
    uint64_t offset; /* bytes accepted */
    uint64_t size;   /* accepted plus pending */
    char *state;     /* the state text as of the last accept (the driver's; never NULL) */
};

/*
 * The running sha256 of an upload, whose state can be saved as text and
 * restored in another process (store_hash.c). See there for why it is
 * OpenSSL's low-level SHA256_CTX and what happens when a saved state is not
 * usable here.
 */
typedef struct store_sha store_sha;
store_sha *store_sha_new(void);
void store_sha_free(store_sha *h);
void store_sha_update(store_sha *h, const void *p, size_t n);
/* `dst` becomes a copy of `src`. */
void store_sha_copy(store_sha *dst, const store_sha *src);
/* The digest of what was fed so far (`h` stays usable). */
void store_sha_digest(const store_sha *h, struct wh_digest *out);
/* Longest text of store_sha_save, NUL included. */
#define STORE_SHA_TEXT_MAX 512
/* The state as text, e.g. "sha256-ossl3-112:<hex>". */
void store_sha_save(const store_sha *h, char out[STORE_SHA_TEXT_MAX]);
/*
 * Restores a saved state that covers exactly `bytes` bytes. WH_EINVALID when
 * the text cannot be used in this process (another OpenSSL major version or
 * context layout, a damaged or foreign text, another byte count): the caller
 * re-hashes the bytes instead.
 */
int store_sha_load(store_sha *h, const char *text, uint64_t bytes);

#endif
