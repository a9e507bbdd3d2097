/*
 * store.c: dispatch from the public storage interface to the driver table.
 * Drivers live in store_<name>.c.
 */
#include "storage/store_int.h"

#include <stdlib.h>
#include <unistd.h>

void wh_store_free(wh_store *s)
{
    if (s)
        s->drv->free(s);
}

int wh_store_stat(wh_store *s, const struct wh_digest *d, uint64_t *size_out)
{
    return s->drv->stat(s, d, size_out);
}

int wh_store_open_blob(wh_store *s, const struct wh_digest *d, int *fd_out, uint64_t *size_out)
{
    return s->drv->open_blob(s, d, fd_out, size_out);
}

int wh_store_put_bytes(wh_store *s, const struct wh_digest *d, const void *p, size_t len)
{
    return s->drv->put_bytes(s, d, p, len);
}

int wh_store_delete_blob(wh_store *s, const struct wh_digest *d)
{
    return s->drv->delete_blob(s, d);
}

int wh_store_check_space(wh_store *s)
{
    return s->drv->check_space ? s->drv->check_space(s) : 0;
}

bool wh_store_note_full(wh_store *s)
{
    return s->drv->note_full ? s->drv->note_full(s) : false;
}

int wh_store_capacity(wh_store *s, uint64_t *total, uint64_t *free_bytes)
{
    if (!s->drv->capacity)
        return wh_error_set(WH_ENOTFOUND, "the %s storage does not report its capacity",
                            s->drv->name);
    return s->drv->capacity(s, total, free_bytes);
}

int wh_store_upload_create(wh_store *s, const char *id, wh_upload **out)
{
    return s->drv->upload_create(s, id, out);
}

int wh_store_upload_open(wh_store *s, const char *id, wh_upload **out)
{
    return s->drv->upload_open(s, id, out);
}

int wh_store_upload_remove(wh_store *s, const char *id)
{
    return s->drv->upload_remove(s, id);
}

int wh_store_upload_each(wh_store *s, int (*fn)(const char *id, int64_t mtime_ms, void *payload),
                         void *payload)
{
    return s->drv->upload_each(s, fn, payload);
}

int wh_upload_write(wh_upload *u, const void *p, size_t n)
{
    return u->ops->write(u, p, n);
}

uint64_t wh_upload_size(const wh_upload *u)
{
    return u->ops->size(u);
}

int wh_upload_truncate(wh_upload *u, uint64_t size)
{
    return u->ops->truncate(u, size);
}

int wh_upload_commit(wh_upload *u, const struct wh_digest *expected)
{
    return u->ops->commit(u, expected);
}

void wh_upload_close(wh_upload *u)
{
    if (u)
        u->ops->close(u);
}

int wh_store_read_blob(wh_store *s, const struct wh_digest *d, struct wh_buf *out)
{
    int fd = -1;
    uint64_t size = 0;
    int error;
    if ((error = wh_store_open_blob(s, d, &fd, &size)) < 0)
        return error;
    if (size > out->cap) {
        error = wh_error_set(WH_ETOOBIG, "blob %s is larger than %zu bytes", d->str, out->cap);
        goto out;
    }
    char chunk[65536];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r < 0) {
            error = wh_error_set(WH_ERROR, "read %s failed", d->str);
            goto out;
        }
        if (r == 0)
            break;
        if ((error = wh_buf_put(out, chunk, (size_t)r)) < 0)
            goto out;
    }
out:
    close(fd);
    return error;
}
