/*
 * tarindex.c: random access to the entries of a tar file, for `docker save`
 * tarballs, whose manifest.json comes last and names the layers stored
 * before it. The archive is read once, under the image's caps, into an index
 * of entry names, types, link targets and data offsets; an uncompressed
 * archive (what docker and skopeo write) is then read entry by entry with
 * pread, from any thread. A compressed one (`docker save | gzip`) has no
 * offsets to seek to: it is decompressed again, forward only, to reach an
 * entry, and every such pass counts against one budget of decompressed bytes.
 *
 * Symbolic and hard links between entries (legacy `docker save` and
 * containers/image store a repeated layer as a link to the first copy) are
 * followed inside the archive only: a target is resolved against the
 * archive's root, where ".." stops, and never reaches the host's files.
 */
#include "scan/scan_int.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_CAP 4096
#define ENTRIES_MAX 65536
#define NAMES_BYTES_MAX (16u << 20)
#define LINK_HOPS 16

struct tx_entry {
    const char *name; /* cleaned, as a key */
    char type;        /* 'f' regular file, 'l' symbolic link, 'h' hard link, 'o' anything else */
    const char *link; /* link target as stored; NULL for others */
    uint64_t off;     /* data offset in the decompressed stream */
    uint64_t size;
    size_t seq; /* position among the archive's headers */
};

/* A file read from its current position, which can skip forward with lseek. */
struct fd_src {
    int fd;
    uint64_t pos, size;
};

struct wh_tarindex {
    char *what; /* "docker-archive:FILE", starts every message */
    char *file;
    int fd; /* the archive, for pread when it is uncompressed */
    bool compressed;
    uint64_t ratio;
    uint64_t budget; /* decompressed bytes left for passes over a compressed archive */
    wh_pool *pool;
    struct tx_entry *e;
    size_t n, cap;
    size_t name_bytes;
    json_t *names; /* cleaned name -> index of its last entry */
    /* compressed archives: one forward-only pass, positioned at header cur_seq */
    wh_tar *cur;
    struct fd_src cur_src;
    struct wh_reader cur_rd;
    size_t cur_count; /* headers it has read; the current entry is the last of them */
};

static ssize_t fd_src_read(void *ctx, void *buf, size_t n)
{
    struct fd_src *s = ctx;
    for (;;) {
        ssize_t r = read(s->fd, buf, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r > 0)
            s->pos += (uint64_t)r;
        return r;
    }
}

static int64_t fd_src_skip(void *ctx, int64_t n)
{
    struct fd_src *s = ctx;
    if (n <= 0 || s->pos >= s->size)
        return 0;
    uint64_t k = (uint64_t)n < s->size - s->pos ? (uint64_t)n : s->size - s->pos;
    if (lseek(s->fd, (off_t)k, SEEK_CUR) < 0)
        return 0;
    s->pos += k;
    return (int64_t)k;
}

static int src_open(struct fd_src *s, struct wh_reader *rd, const char *file, const char *what)
{
    struct stat st;
    s->fd = open(file, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0)
        return wh_error_set(errno == ENOENT ? WH_ENOTFOUND : WH_EINVALID, "%s: %s", what, strerror(errno));
    if (fstat(s->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(s->fd);
        s->fd = -1;
        return wh_error_set(WH_EINVALID, "%s is not a regular file", what);
    }
    s->pos = 0;
    s->size = (uint64_t)st.st_size;
    *rd = (struct wh_reader){fd_src_read, s, (int64_t)st.st_size, fd_src_skip};
    return 0;
}

static char entry_type(struct archive_entry *e)
{
    if (archive_entry_hardlink(e))
        return 'h';
    if (archive_entry_filetype(e) == AE_IFLNK)
        return 'l';
    /* data split into sparse regions has no single offset to read from */
    if (archive_entry_filetype(e) == AE_IFREG && archive_entry_sparse_count(e) == 0)
        return 'f';
    return 'o';
}

static int add_entry(wh_tarindex *x, struct archive_entry *e, size_t seq, uint64_t off)
{
    char name[NAME_CAP];
    const char *raw = archive_entry_pathname(e);
    char type = entry_type(e);
    if (!raw || wh_path_clean(name, sizeof(name), raw, NULL) < 0)
        return 0; /* the root, or a name no lookup can ask for */
    if (archive_entry_filetype(e) == AE_IFDIR && !archive_entry_hardlink(e))
        return 0;
    const char *link = type == 'h' ? archive_entry_hardlink(e) : type == 'l' ? archive_entry_symlink(e) : NULL;
    size_t bytes = strlen(name) + (link ? strlen(link) : 0) + 2;
    if (x->n == ENTRIES_MAX || x->name_bytes + bytes > NAMES_BYTES_MAX)
        return wh_error_set(WH_ETOOBIG, "%s has over %d entries or %u bytes of names: not a docker save "
                            "tarball", x->what, ENTRIES_MAX, NAMES_BYTES_MAX);
    x->name_bytes += bytes;
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 64;
        x->e = wh_realloc(x->e, x->cap * sizeof(*x->e));
    }
    struct tx_entry *t = &x->e[x->n];
    t->name = wh_pool_strdup(x->pool, name);
    t->type = type;
    t->link = link ? wh_pool_strdup(x->pool, link) : NULL;
    t->off = off;
    t->size = archive_entry_size_is_set(e) ? (uint64_t)archive_entry_size(e) : 0;
    t->seq = seq;
    json_object_set_new(x->names, t->name, json_integer((json_int_t)x->n));
    x->n++;
    return 0;
}

int wh_tarindex_open(wh_tarindex **out, const char *file, const char *what, uint64_t max_out, uint64_t ratio)
{
    wh_tarindex *x = wh_calloc(1, sizeof(*x));
    struct fd_src src = {-1, 0, 0};
    struct wh_reader rd;
    struct archive_entry *e;
    wh_tar *t = NULL;
    size_t seq = 0;
    int error, r;

    x->what = wh_strdup(what);
    x->file = wh_strdup(file);
    x->fd = -1;
    x->cur_src.fd = -1;
    x->ratio = ratio;
    x->budget = max_out;
    x->pool = wh_pool_new();
    x->names = json_object();
    if ((error = src_open(&src, &rd, file, x->what)) < 0)
        goto out;
    if ((error = wh_tar_open(&t, &rd, x->what, max_out, ratio)) < 0)
        goto out;
    while ((r = wh_tar_next(t, &e)) == 0) {
        if ((error = add_entry(x, e, seq++, wh_tar_offset(t))) < 0)
            goto out;
    }
    if (r < 0) {
        error = r;
        goto out;
    }
    x->compressed = wh_tar_compressed(t);
    x->budget -= wh_tar_bytes(t) < x->budget ? wh_tar_bytes(t) : x->budget;
    if (!x->compressed) {
        x->fd = src.fd; /* kept for pread */
        src.fd = -1;
    }
    *out = x;
    x = NULL;
out:
    wh_tar_free(t);
    if (src.fd >= 0)
        close(src.fd);
    wh_tarindex_free(x);
    return error;
}

static void cursor_close(wh_tarindex *x)
{
    if (!x->cur)
        return;
    uint64_t used = wh_tar_bytes(x->cur);
    x->budget -= used < x->budget ? used : x->budget;
    wh_tar_free(x->cur);
    x->cur = NULL;
    close(x->cur_src.fd);
    x->cur_src.fd = -1;
}

void wh_tarindex_free(wh_tarindex *x)
{
    if (!x)
        return;
    cursor_close(x);
    if (x->fd >= 0)
        close(x->fd);
    json_decref(x->names);
    wh_pool_free(x->pool);
    free(x->e);
    free(x->what);
    free(x->file);
    free(x);
}

bool wh_tarindex_serial(const wh_tarindex *x)
{
    return x->compressed;
}

int wh_tarindex_find(const wh_tarindex *x, const char *name, size_t *idx)
{
    char cur[NAME_CAP], target[2 * NAME_CAP + 2];
    if (wh_path_clean(cur, sizeof(cur), name, NULL) < 0)
        return wh_error_set(WH_EINVALID, "%s: bad entry name %.200s", x->what, name);
    for (int hop = 0; hop <= LINK_HOPS; hop++) {
        json_t *v = json_object_get(x->names, cur);
        if (!v)
            return wh_error_set(WH_ENOTFOUND, "%s has no %.200s%s", x->what, cur,
                                hop ? " (a link points there)" : "");
        const struct tx_entry *en = &x->e[json_integer_value(v)];
        if (en->type == 'f') {
            *idx = (size_t)json_integer_value(v);
            return 0;
        }
        if (en->type == 'o')
            return wh_error_set(WH_EINVALID, "%s: %.200s is not a regular file", x->what, cur);
        if (en->type == 'h' || en->link[0] == '/') {
            /* hard links name an entry of the archive; absolute symlinks start at its root */
            snprintf(target, sizeof(target), "%s", en->link);
        } else {
            /* relative to the link's directory; ".." stops at the archive's root */
            const char *slash = strrchr(cur, '/');
            snprintf(target, sizeof(target), "%.*s/%s", slash ? (int)(slash - cur) : 0, cur, en->link);
        }
        if (wh_path_clean(cur, sizeof(cur), target, NULL) < 0)
            return wh_error_set(WH_EINVALID, "%s: link %.200s points at no entry", x->what, en->name);
    }
    return wh_error_set(WH_EINVALID, "%s: more than %d links lead from %.200s (a loop?)", x->what,
                        LINK_HOPS, name);
}

uint64_t wh_tarindex_size(const wh_tarindex *x, size_t idx)
{
    return x->e[idx].size;
}

/* Uncompressed archives: an entry is a byte range of the file. */
static ssize_t range_read(void *ctx, void *buf, size_t n)
{
    struct wh_tarindex_entry *r = ctx;
    if (r->pos >= r->end)
        return 0;
    if (n > r->end - r->pos)
        n = (size_t)(r->end - r->pos);
    for (;;) {
        ssize_t k = pread(r->fd, buf, n, (off_t)r->pos);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            wh_error_set(WH_EINVALID, "archive read failed (%s)", k < 0 ? strerror(errno) : "short file");
            return -1;
        }
        r->pos += (uint64_t)k;
        return k;
    }
}

/* Compressed archives: moves the forward-only pass to header `seq`, opening a new pass if it is past it. */
static int cursor_seek(wh_tarindex *x, size_t seq)
{
    struct archive_entry *e;
    int r;
    if (x->cur && x->cur_count > seq)
        cursor_close(x); /* that entry's data was read already: start again */
    if (!x->cur) {
        if (x->budget == 0)
            return wh_error_set(WH_ETOOBIG, "%s: reading this compressed archive again would go over the "
                                "cap of decompressed bytes (decompress it first)", x->what);
        if ((r = src_open(&x->cur_src, &x->cur_rd, x->file, x->what)) < 0)
            return r;
        if ((r = wh_tar_open(&x->cur, &x->cur_rd, x->what, x->budget, x->ratio)) < 0) {
            close(x->cur_src.fd);
            x->cur_src.fd = -1;
            return r;
        }
        x->cur_count = 0;
    }
    while (x->cur_count <= seq) {
        if ((r = wh_tar_next(x->cur, &e)) != 0) {
            int error = r < 0 ? r : wh_error_set(WH_EINVALID, "%s changed while it was read", x->what);
            if (error == WH_ETOOBIG)
                error = wh_error_set(WH_ETOOBIG, "%s: reading this compressed archive again went over the "
                                     "cap of decompressed bytes (decompress it first)", x->what);
            cursor_close(x);
            return error;
        }
        x->cur_count++;
    }
    return 0;
}

int wh_tarindex_open_entry(wh_tarindex *x, size_t idx, struct wh_tarindex_entry *r, struct wh_reader *rd)
{
    const struct tx_entry *en = &x->e[idx];
    int error;
    if (!x->compressed) {
        *r = (struct wh_tarindex_entry){x->fd, en->off, en->off + en->size};
        *rd = (struct wh_reader){range_read, r, (int64_t)en->size, NULL};
        return 0;
    }
    if ((error = cursor_seek(x, en->seq)) < 0)
        return error;
    *rd = (struct wh_reader){wh_tar_read, x->cur, (int64_t)en->size, NULL};
    return 0;
}
