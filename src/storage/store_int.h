/* Private to storage/: the base structs every driver embeds first. */
#ifndef WH_STORE_INT_H
#define WH_STORE_INT_H

#include "storage/storage.h"

struct wh_store {
    const struct wh_store_driver *drv;
};

struct wh_upload_ops {
    int (*write)(wh_upload *u, const void *p, size_t n);
    uint64_t (*size)(const wh_upload *u);
    int (*truncate)(wh_upload *u, uint64_t size);
    int (*commit)(wh_upload *u, const struct wh_digest *expected);
    void (*close)(wh_upload *u);
};

struct wh_upload {
    const struct wh_upload_ops *ops;
};

#endif
