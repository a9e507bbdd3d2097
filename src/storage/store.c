/*
 * store.c: dispatch from the public storage interface to the driver table.
 * Drivers live in store_<name>.c.
 */
#include "storage/store_int.h"

#include <inttypes.h>
#include <stdlib.h>

void wh_store_free(wh_store *s)
{
    if (s)
        s->drv->free(s);
}

const char *wh_store_driver_name(const wh_store *s)
{
    return s->drv->name;
}

int wh_store_stat(wh_store *s, const struct wh_digest *d, uint64_t *size_out)
{
    return s->drv->stat(s, d, size_out);
}

int wh_store_reader_open(wh_store_reader **out, wh_store *s, const struct wh_digest *d,
                         uint64_t offset, uint64_t length)
{
    return s->drv->reader_open(out, s, d, offset, length);
}

uint64_t wh_store_reader_blob_size(const wh_store_reader *rd)
{
    return rd->blob_size;
}

uint64_t wh_store_reader_left(const wh_store_reader *rd)
{
    return rd->left;
}

int wh_store_reader_read(wh_store_reader *rd, void *buf, size_t cap, size_t *got)
{
    *got = 0;
    if (rd->detached)
        return wh_error_set(WH_ERROR, "the reader's file was handed over");
    if (rd->left == 0 || cap == 0)
        return 0;
    if (cap > rd->left)
        cap = (size_t)rd->left;
    int error = rd->ops->read(rd, buf, cap, got);
    if (error < 0)
        return error;
    if (*got == 0)
        return wh_error_set(WH_ERROR, "blob ends %" PRIu64 " bytes early", rd->left);
    rd->pos += *got;
    rd->left -= *got;
    return 0;
}

int wh_store_reader_fd(wh_store_reader *rd, uint64_t *offset_out)
{
    if (rd->detached || !rd->ops->take_fd)
        return -1;
    int fd = rd->ops->take_fd(rd);
    if (fd >= 0) {
        rd->detached = true;
        *offset_out = rd->pos;
    }
    return fd;
}

void wh_store_reader_close(wh_store_reader *rd)
{
    if (rd)
        rd->ops->close(rd);
}

int wh_store_redirect_url(wh_store *s, const struct wh_digest *d, char **out)
{
    *out = NULL;
    if (!s->drv->redirect_url)
        return WH_ENOTFOUND;
    return s->drv->redirect_url(s, d, out);
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

int wh_store_upload_resume(wh_store *s, const char *id, uint64_t offset, const char *state,
                           wh_upload **out)
{
    return s->drv->upload_resume(s, id, offset, state ? state : "", out);
}

int wh_store_upload_remove(wh_store *s, const char *id, const char *state)
{
    return s->drv->upload_remove(s, id, state);
}

int wh_store_upload_lock(wh_store *s, const char *id, wh_upload_lock **out)
{
    *out = NULL;
    if (!s->drv->upload_lock)
        return WH_ENOTSUP;
    return s->drv->upload_lock(s, id, out);
}

void wh_store_upload_unlock(wh_store *s, wh_upload_lock *lock)
{
    if (lock)
        s->drv->upload_unlock(s, lock);
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
    return u->size;
}

uint64_t wh_upload_offset(const wh_upload *u)
{
    return u->offset;
}

int wh_upload_accept(wh_upload *u)
{
    return u->ops->accept(u);
}

void wh_upload_reject(wh_upload *u)
{
    u->ops->reject(u);
}

const char *wh_upload_state(const wh_upload *u)
{
    return u->state;
}

int wh_upload_commit(wh_upload *u, const struct wh_digest *expected)
{
    return u->ops->commit(u, expected);
}

void wh_upload_cancel(wh_upload *u)
{
    if (u)
        u->ops->cancel(u);
}

void wh_upload_close(wh_upload *u)
{
    if (u)
        u->ops->close(u);
}

int wh_store_read_blob(wh_store *s, const struct wh_digest *d, struct wh_buf *out)
{
    wh_store_reader *rd = NULL;
    char chunk[65536];
    size_t got;
    int error;
    if ((error = wh_store_reader_open(&rd, s, d, 0, WH_STORE_TO_END)) < 0)
        return error;
    if (wh_store_reader_blob_size(rd) > out->cap) {
        error = wh_error_set(WH_ETOOBIG, "blob %s is larger than %zu bytes", d->str, out->cap);
        goto out;
    }
    for (;;) {
        if ((error = wh_store_reader_read(rd, chunk, sizeof(chunk), &got)) < 0 || got == 0)
            break;
        if ((error = wh_buf_put(out, chunk, got)) < 0)
            break;
    }
out:
    wh_store_reader_close(rd);
    return error;
}
