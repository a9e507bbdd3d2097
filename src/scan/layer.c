/*
 * layer.c: reads one layer (a tar stream in any compression libarchive
 * understands, or a root filesystem directory) exactly once, hands the files
 * catalogers want to them, and records whiteouts (OCI image-spec layer.md:
 * `.wh.<name>` hides <name>, `.wh..wh..opq` hides a directory's lower
 * content). Nothing is written to disk and no link is followed, so hostile
 * paths cannot escape; caps bound every read and the total decompressed size.
 * Also: per-layer inventories, their JSON form for the cache, and the merge.
 */
#include "scan/scan_int.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <isa-l/igzip_lib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_CAP 4096
#define DIR_DEPTH_MAX 128
#define READ_BLOCK 65536

/* ---- per-layer inventory ---- */

struct wh_layer_inv *wh_layer_inv_new(void)
{
    struct wh_layer_inv *li = wh_calloc(1, sizeof(*li));
    li->pool = wh_pool_new();
    return li;
}

void wh_layer_inv_free(struct wh_layer_inv *li)
{
    if (!li)
        return;
    for (size_t i = 0; i < li->nrecs; i++)
        free(li->recs[i].pkgs);
    free(li->recs);
    free(li->whiteouts);
    free(li->opaques);
    wh_pool_free(li->pool);
    free(li);
}

struct wh_layer_rec *wh_layer_rec_add(struct wh_layer_inv *li, const char *path, enum wh_cat cat)
{
    if (li->nrecs == li->cap) {
        li->cap = li->cap ? li->cap * 2 : 16;
        li->recs = wh_realloc(li->recs, li->cap * sizeof(*li->recs));
    }
    struct wh_layer_rec *r = &li->recs[li->nrecs++];
    memset(r, 0, sizeof(*r));
    r->path = wh_pool_strdup(li->pool, path);
    r->cat = cat;
    return r;
}

static const char *pdup(wh_pool *p, const char *s)
{
    return s ? wh_pool_strdup(p, s) : NULL;
}

void wh_layer_rec_pkg(struct wh_layer_inv *li, struct wh_layer_rec *r, const struct wh_pkg *p)
{
    if (!p->name || !*p->name || !p->version || !*p->version)
        return;
    if (r->npkgs == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->pkgs = wh_realloc(r->pkgs, r->cap * sizeof(*r->pkgs));
    }
    struct wh_pkg *q = &r->pkgs[r->npkgs++];
    q->kind = p->kind;
    q->name = pdup(li->pool, p->name);
    q->version = pdup(li->pool, p->version);
    q->src_name = p->src_name && *p->src_name ? pdup(li->pool, p->src_name) : q->name;
    q->src_version = p->src_version && *p->src_version ? pdup(li->pool, p->src_version) : q->version;
    q->arch = pdup(li->pool, p->arch);
    q->path = r->path;
}

static void push_str(wh_pool *pool, const char ***arr, size_t *n, size_t *cap, const char *s)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *arr = wh_realloc(*arr, *cap * sizeof(**arr));
    }
    (*arr)[(*n)++] = wh_pool_strdup(pool, s);
}

/* ---- paths ---- */

int wh_path_clean(char *out, size_t cap, const char *in)
{
    size_t o = 0;
    const char *p = in;
    while (*p) {
        while (*p == '/')
            p++;
        const char *s = p;
        while (*p && *p != '/')
            p++;
        size_t n = (size_t)(p - s);
        if (n == 0 || (n == 1 && s[0] == '.'))
            continue;
        if (n == 2 && s[0] == '.' && s[1] == '.')
            return wh_error_set(WH_EINVALID, "path %.200s has a '..' component", in);
        if (o + n + 2 > cap)
            return wh_error_set(WH_EINVALID, "path too long");
        if (o)
            out[o++] = '/';
        memcpy(out + o, s, n);
        o += n;
    }
    if (o == 0)
        return wh_error_set(WH_EINVALID, "empty path");
    out[o] = '\0';
    return 0;
}

/* ---- reading one file for a cataloger ---- */

static int read_capped(struct wh_buf *b, struct wh_reader *rd, const char *path, size_t cap,
                       bool truncate_ok)
{
    char block[READ_BLOCK];
    if (rd->size >= 0 && (uint64_t)rd->size > cap && !truncate_ok)
        return wh_error_set(WH_ETOOBIG, "%s is %lld bytes, over the %zu-byte cap for that file",
                            path, (long long)rd->size, cap);
    for (;;) {
        size_t want = sizeof(block);
        if (b->len >= cap)
            break;
        if (cap - b->len < want)
            want = cap - b->len;
        ssize_t n = rd->read(rd->ctx, block, want);
        if (n < 0)
            return wh_error_set(WH_EINVALID, "reading %s failed", path);
        if (n == 0)
            return 0;
        if (wh_buf_put(b, block, (size_t)n) < 0)
            return WH_ETOOBIG;
    }
    if (!truncate_ok) {
        /* A stream longer than announced: refuse rather than parse half. */
        ssize_t n = rd->read(rd->ctx, block, 1);
        if (n > 0)
            return wh_error_set(WH_ETOOBIG, "%s is over the %zu-byte cap for that file", path, cap);
    }
    return 0;
}

static int catalog_entry(struct wh_layer_inv *li, const char *path, unsigned mode,
                         struct wh_reader *rd, const struct wh_scan_opts *opts)
{
    enum wh_cat cat = wh_catalog_classify(path, mode);
    struct wh_buf b;
    int error = 0;

    if (cat == WH_CAT_NONE)
        return 0;
    if (cat == WH_CAT_GOBIN)
        return wh_catalog_gobin(li, path, rd);
    enum wh_cap_mode cmode = WH_CAP_ERROR;
    size_t cap = wh_catalog_cap(cat, opts, &cmode);
    wh_buf_init(&b, cap);
    if (cmode == WH_CAP_SKIP && rd->size >= 0 && (uint64_t)rd->size > cap) {
        wh_log_warn("scan: %s is %lld bytes, over the %zu-byte cap: not cataloged", path,
                    (long long)rd->size, cap);
        goto out;
    }
    if ((error = read_capped(&b, rd, path, cap, cmode == WH_CAP_TRUNCATE)) < 0)
        goto out;
    if (!b.data && wh_buf_put(&b, "", 0) < 0) {
        error = WH_ERROR;
        goto out;
    }
    error = wh_catalog_parse(li, cat, path, b.data, b.len, opts);
    if (error == WH_EINVALID) {
        /* A damaged package database in one file must not fail the image. */
        wh_log_warn("scan: %s: %s (skipped)", path, wh_error_msg());
        error = 0;
    }
out:
    wh_buf_dispose(&b);
    return error;
}

/* Records a whiteout entry; returns true when `path` was one. */
static bool note_whiteout(struct wh_layer_inv *li, const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (strncmp(base, ".wh.", 4) != 0)
        return false;
    char dir[PATH_CAP];
    size_t dl = slash ? (size_t)(slash - path) : 0;
    memcpy(dir, path, dl);
    dir[dl] = '\0';
    if (strcmp(base, ".wh..wh..opq") == 0) {
        push_str(li->pool, &li->opaques, &li->nop, &li->capop, dir);
        return true;
    }
    if (base[4] == '\0')
        return true;
    char *target = wh_sprintf("%s%s%s", dir, dl ? "/" : "", base + 4);
    push_str(li->pool, &li->whiteouts, &li->nwh, &li->capwh, target);
    free(target);
    return true;
}

/*
 * A hard link shares the content of an earlier entry of the same layer. When
 * that entry was cataloged, the link declares the same packages; otherwise the
 * content was never kept (each layer is read once) and the link is reported.
 */
static void note_hardlink(struct wh_layer_inv *li, const char *path, const char *raw_target)
{
    char target[PATH_CAP];
    enum wh_cat cat = wh_catalog_classify(path, 0644);
    if (cat == WH_CAT_NONE || cat == WH_CAT_GOBIN)
        return;
    if (wh_path_clean(target, sizeof(target), raw_target) < 0)
        return;
    for (size_t i = li->nrecs; i-- > 0;) {
        if (strcmp(li->recs[i].path, target) != 0)
            continue;
        struct wh_layer_rec *src = &li->recs[i];
        struct wh_layer_rec *r = wh_layer_rec_add(li, path, src->cat);
        src = &li->recs[i]; /* the array may have moved */
        r->content = src->content;
        for (size_t k = 0; k < src->npkgs; k++)
            wh_layer_rec_pkg(li, r, &src->pkgs[k]);
        return;
    }
    wh_log_warn("scan: %s is a hard link to %s, which was not cataloged: its packages are not seen",
                path, target);
}

/* ---- tar layers ---- */

/*
 * Where libarchive's tar reader gets its bytes. A gzip layer (the common
 * case) is inflated here with ISA-L's igzip, which is about twice as fast as
 * zlib on the same data — decompression is what a cold scan costs, so this is
 * the floor it lowers. Anything else (zstd, plain tar) goes to libarchive as
 * read, and libarchive's own filters decode it.
 */
#define INFLATE_BLOCK (256 * 1024)

struct tar_src {
    struct wh_reader *rd;
    bool started;                /* the first block has been looked at */
    bool gzip;                   /* inflating here */
    bool member_done;            /* the current gzip member is complete */
    struct inflate_state st;
    unsigned char in[READ_BLOCK];
    unsigned char out[INFLATE_BLOCK];
};

static bool gzip_magic(const unsigned char *p, size_t n)
{
    return n >= 3 && p[0] == 0x1f && p[1] == 0x8b && p[2] == 8; /* deflate */
}

/* Refills the input; returns bytes read, 0 at the end, < 0 on error. */
static ssize_t src_fill(struct tar_src *s)
{
    ssize_t n = s->rd->read(s->rd->ctx, s->in, sizeof(s->in));
    if (n > 0) {
        s->st.next_in = s->in;
        s->st.avail_in = (uint32_t)n;
    }
    return n;
}

static la_ssize_t gzip_read(struct archive *a, struct tar_src *s, const void **out)
{
    for (;;) {
        if (s->member_done) {
            /* another member may follow (concatenated gzip); anything else ends the stream */
            if (s->st.avail_in < 3 && s->st.avail_in > 0) {
                /* too few bytes to tell: keep them and read on */
                unsigned char keep[3];
                size_t k = s->st.avail_in;
                memcpy(keep, s->st.next_in, k);
                ssize_t n = s->rd->read(s->rd->ctx, s->in + k, sizeof(s->in) - k);
                if (n < 0)
                    goto fail;
                memcpy(s->in, keep, k);
                s->st.next_in = s->in;
                s->st.avail_in = (uint32_t)(k + (size_t)n);
            } else if (s->st.avail_in == 0) {
                ssize_t n = src_fill(s);
                if (n < 0)
                    goto fail;
                if (n == 0)
                    return 0;
            }
            if (!gzip_magic(s->st.next_in, s->st.avail_in))
                return 0; /* trailing padding after the last member */
            unsigned char *next = s->st.next_in;
            uint32_t avail = s->st.avail_in;
            isal_inflate_reset(&s->st);
            s->st.crc_flag = ISAL_GZIP;
            s->st.next_in = next;
            s->st.avail_in = avail;
            s->member_done = false;
        }
        if (s->st.avail_in == 0) {
            ssize_t n = src_fill(s);
            if (n < 0)
                goto fail;
            if (n == 0) {
                archive_set_error(a, EINVAL, "gzip data ends before its last block");
                return -1;
            }
        }
        s->st.next_out = s->out;
        s->st.avail_out = sizeof(s->out);
        int rc = isal_inflate(&s->st);
        if (rc < 0) {
            archive_set_error(a, EINVAL, "gzip data is damaged (igzip error %d)", rc);
            return -1;
        }
        if (s->st.block_state == ISAL_BLOCK_FINISH)
            s->member_done = true;
        size_t produced = sizeof(s->out) - s->st.avail_out;
        if (produced) {
            *out = s->out;
            return (la_ssize_t)produced;
        }
    }
fail:
    archive_set_error(a, EIO, "layer read failed");
    return -1;
}

static la_ssize_t tar_read_cb(struct archive *a, void *ctx, const void **out)
{
    struct tar_src *s = ctx;
    if (s->gzip)
        return gzip_read(a, s, out);
    ssize_t n = s->rd->read(s->rd->ctx, s->in, sizeof(s->in));
    if (n < 0) {
        archive_set_error(a, EIO, "layer read failed");
        return -1;
    }
    if (!s->started) {
        s->started = true;
        if (gzip_magic(s->in, (size_t)n)) {
            s->gzip = true;
            isal_inflate_init(&s->st);
            s->st.crc_flag = ISAL_GZIP; /* parse the header, check CRC32 and size at the end */
            s->st.next_in = s->in;
            s->st.avail_in = (uint32_t)n;
            return gzip_read(a, s, out);
        }
    }
    *out = s->in;
    return n;
}

static ssize_t entry_read(void *ctx, void *buf, size_t n)
{
    la_ssize_t r = archive_read_data(ctx, buf, n);
    return r < 0 ? -1 : (ssize_t)r;
}

int wh_layer_walk_tar(struct wh_layer_inv **out, struct wh_reader *rd, const struct wh_scan_opts *opts,
                      uint64_t *total)
{
    struct archive *a = archive_read_new();
    struct wh_layer_inv *li = wh_layer_inv_new();
    struct tar_src *src = wh_calloc(1, sizeof(*src));
    struct archive_entry *e;
    char path[PATH_CAP];
    uint64_t start = *total;
    int error = 0, r;

    src->rd = rd;
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    archive_read_support_format_empty(a);
    if (archive_read_open(a, src, NULL, tar_read_cb, NULL) != ARCHIVE_OK) {
        error = wh_error_set(WH_EINVALID, "layer is not a readable tar: %s", archive_error_string(a));
        goto out;
    }
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        uint64_t pos = (uint64_t)archive_filter_bytes(a, 0);
        int64_t size = archive_entry_size(e);
        if (start + pos > opts->max_total ||
            (size > 0 && start + pos + (uint64_t)size > opts->max_total)) {
            error = wh_error_set(WH_ETOOBIG,
                                 "image is over the cap of %llu decompressed bytes",
                                 (unsigned long long)opts->max_total);
            goto out;
        }
        const char *raw = archive_entry_pathname(e);
        if (!raw || wh_path_clean(path, sizeof(path), raw) < 0)
            continue; /* "..", empty or absurd paths are never cataloged */
        if (note_whiteout(li, path))
            continue;
        /* Only regular files carry content; links are never followed. */
        if (archive_entry_hardlink(e)) {
            note_hardlink(li, path, archive_entry_hardlink(e));
            continue;
        }
        if (archive_entry_filetype(e) != AE_IFREG) {
            /* A package database behind a link is worth a word (release files often are links). */
            enum wh_cat lc = archive_entry_filetype(e) == AE_IFLNK ? wh_catalog_classify(path, 0644)
                                                                   : WH_CAT_NONE;
            if (lc >= WH_CAT_DPKG && lc <= WH_CAT_RPM_NDB)
                wh_log_warn("scan: %s is a symbolic link: not cataloged", path);
            continue;
        }
        struct wh_reader er = {entry_read, a, size};
        if ((error = catalog_entry(li, path, (unsigned)archive_entry_perm(e), &er, opts)) < 0)
            goto out;
    }
    if (r != ARCHIVE_EOF) {
        error = wh_error_set(WH_EINVALID, "layer tar is damaged: %s", archive_error_string(a));
        goto out;
    }
    *total = start + (uint64_t)archive_filter_bytes(a, 0);
    if (*total > opts->max_total) {
        error = wh_error_set(WH_ETOOBIG, "image is over the cap of %llu decompressed bytes",
                             (unsigned long long)opts->max_total);
        goto out;
    }
    *out = li;
    li = NULL;
out:
    archive_read_free(a);
    free(src);
    wh_layer_inv_free(li);
    return error;
}

/* ---- directories ---- */

struct fd_reader {
    int fd;
};

static ssize_t fd_read(void *ctx, void *buf, size_t n)
{
    struct fd_reader *f = ctx;
    for (;;) {
        ssize_t r = read(f->fd, buf, n);
        if (r < 0 && errno == EINTR)
            continue;
        return r;
    }
}

static int walk_dir(struct wh_layer_inv *li, int dfd, char *path, size_t plen, int depth,
                    const struct wh_scan_opts *opts, uint64_t *total);

/* Catalogs one directory entry (`path` holds its full relative name). */
static int walk_entry(struct wh_layer_inv *li, DIR *d, const char *name, char *path, size_t plen, int depth,
                      const struct wh_scan_opts *opts, uint64_t *total)
{
    struct stat st;
    int error = 0;
    if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return 0;
    if (S_ISDIR(st.st_mode)) {
        int sub = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        return sub >= 0 ? walk_dir(li, sub, path, plen, depth + 1, opts, total) : 0;
    }
    if (!S_ISREG(st.st_mode) || wh_catalog_classify(path, (unsigned)st.st_mode) == WH_CAT_NONE)
        return 0;
    int fd = openat(dirfd(d), name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct fd_reader fr = {fd};
    struct wh_reader rd = {fd_read, &fr, (int64_t)st.st_size};
    *total += (uint64_t)st.st_size;
    error = catalog_entry(li, path, (unsigned)st.st_mode, &rd, opts);
    close(fd);
    return error;
}

static int walk_dir(struct wh_layer_inv *li, int dfd, char *path, size_t plen, int depth,
                    const struct wh_scan_opts *opts, uint64_t *total)
{
    DIR *d = NULL;
    struct dirent *de;
    int error = 0;

    if (depth > DIR_DEPTH_MAX) {
        close(dfd);
        return 0;
    }
    if (!(d = fdopendir(dfd))) {
        close(dfd);
        return 0;
    }
    while (!error && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        size_t nl = strlen(de->d_name);
        if (plen + nl + 2 > PATH_CAP)
            continue;
        size_t np = plen;
        if (np)
            path[np++] = '/';
        memcpy(path + np, de->d_name, nl + 1);
        error = walk_entry(li, d, de->d_name, path, np + nl, depth, opts, total);
        path[plen] = '\0';
    }
    closedir(d);
    return error;
}

int wh_layer_walk_dir(struct wh_layer_inv **out, const char *root, const struct wh_scan_opts *opts,
                      uint64_t *total)
{
    char path[PATH_CAP] = "";
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return wh_error_set(errno == ENOENT ? WH_ENOTFOUND : WH_EINVALID, "%s: %s", root,
                            strerror(errno));
    struct wh_layer_inv *li = wh_layer_inv_new();
    int error = walk_dir(li, fd, path, 0, 0, opts, total);
    if (error < 0) {
        wh_layer_inv_free(li);
        return error;
    }
    *out = li;
    return 0;
}

/* ---- merging ---- */

struct merged {
    const struct wh_layer_rec **recs; /* NULL once hidden or replaced */
    size_t n, cap;
};

static const char *merged_get(void *ctx, const char *path)
{
    struct merged *m = ctx;
    for (size_t i = m->n; i-- > 0;)
        if (m->recs[i] && m->recs[i]->cat == WH_CAT_OSFILE && strcmp(m->recs[i]->path, path) == 0)
            return m->recs[i]->content;
    return NULL;
}

/*
 * True when a whiteout in `wh` names `path` or one of its parent directories,
 * or an opaque directory in `op` is a proper parent of it ("" = the root).
 * Both sets are hash tables, so this costs one lookup per path component.
 */
static bool hidden(const char *path, const json_t *wh, const json_t *op)
{
    char buf[PATH_CAP];
    size_t n = strlen(path);
    if (n >= sizeof(buf))
        return false;
    memcpy(buf, path, n + 1);
    if (json_object_get(wh, buf))
        return true;
    if (json_object_get(op, ""))
        return true;
    for (size_t i = n; i-- > 0;) {
        if (buf[i] != '/')
            continue;
        buf[i] = '\0';
        if (json_object_get(wh, buf) || json_object_get(op, buf))
            return true;
    }
    return false;
}

void wh_layers_merge(struct wh_inventory *inv, struct wh_layer_inv *const *layers, size_t n)
{
    struct merged m = {0};
    json_t *index = json_object(); /* path -> position in m.recs of its live record */
    for (size_t l = 0; l < n; l++) {
        const struct wh_layer_inv *li = layers[l];
        /* Whiteouts and opaque dirs of this layer hide what lower layers declared. */
        if (li->nwh || li->nop) {
            json_t *wh = json_object(), *op = json_object();
            for (size_t w = 0; w < li->nwh; w++)
                json_object_set_new(wh, li->whiteouts[w], json_true());
            for (size_t o = 0; o < li->nop; o++)
                json_object_set_new(op, li->opaques[o], json_true());
            for (size_t i = 0; i < m.n; i++)
                if (m.recs[i] && hidden(m.recs[i]->path, wh, op)) {
                    json_object_del(index, m.recs[i]->path);
                    m.recs[i] = NULL;
                }
            json_decref(wh);
            json_decref(op);
        }
        /* A file declared again replaces the lower copy (dpkg rewrites status whole). */
        for (size_t r = 0; r < li->nrecs; r++) {
            json_t *pos = json_object_get(index, li->recs[r].path);
            if (pos)
                m.recs[json_integer_value(pos)] = NULL;
            if (m.n == m.cap) {
                m.cap = m.cap ? m.cap * 2 : 32;
                m.recs = wh_realloc(m.recs, m.cap * sizeof(*m.recs));
            }
            json_object_set_new(index, li->recs[r].path, json_integer((json_int_t)m.n));
            m.recs[m.n++] = &li->recs[r];
        }
    }
    for (size_t i = 0; i < m.n; i++) {
        if (!m.recs[i])
            continue;
        for (size_t k = 0; k < m.recs[i]->npkgs; k++)
            wh_inventory_add(inv, &m.recs[i]->pkgs[k]);
    }
    wh_os_detect(&inv->os, merged_get, &m);
    wh_inventory_sort(inv);
    json_decref(index);
    free(m.recs);
}

/* ---- cache form ---- */

json_t *wh_layer_inv_to_json(const struct wh_layer_inv *li)
{
    json_t *root = json_object(), *recs = json_array(), *wh = json_array(), *op = json_array();
    for (size_t i = 0; i < li->nrecs; i++) {
        const struct wh_layer_rec *r = &li->recs[i];
        json_t *o = json_object(), *pk = json_array();
        json_object_set_new(o, "path", json_string(r->path));
        json_object_set_new(o, "cat", json_integer(r->cat));
        if (r->content)
            json_object_set_new(o, "content", json_string(r->content));
        for (size_t k = 0; k < r->npkgs; k++) {
            const struct wh_pkg *p = &r->pkgs[k];
            json_array_append_new(pk, json_pack("[isssss]", (int)p->kind, p->name, p->version,
                                                p->src_name, p->src_version, p->arch ? p->arch : ""));
        }
        json_object_set_new(o, "pkgs", pk);
        json_array_append_new(recs, o);
    }
    for (size_t i = 0; i < li->nwh; i++)
        json_array_append_new(wh, json_string(li->whiteouts[i]));
    for (size_t i = 0; i < li->nop; i++)
        json_array_append_new(op, json_string(li->opaques[i]));
    json_object_set_new(root, "records", recs);
    json_object_set_new(root, "whiteouts", wh);
    json_object_set_new(root, "opaques", op);
    return root;
}

int wh_layer_inv_from_json(struct wh_layer_inv **out, const json_t *j)
{
    struct wh_layer_inv *li = wh_layer_inv_new();
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "records"), i, v) {
        const char *path = json_string_value(json_object_get(v, "path"));
        json_int_t cat = json_integer_value(json_object_get(v, "cat"));
        if (!path || cat <= WH_CAT_NONE || cat > WH_CAT_GOBIN)
            goto bad;
        struct wh_layer_rec *r = wh_layer_rec_add(li, path, (enum wh_cat)cat);
        const char *content = json_string_value(json_object_get(v, "content"));
        if (content)
            r->content = wh_pool_strdup(li->pool, content);
        size_t k;
        json_t *p;
        json_array_foreach(json_object_get(v, "pkgs"), k, p) {
            struct wh_pkg pkg = {0};
            json_int_t kind = json_integer_value(json_array_get(p, 0));
            if (kind < 0 || kind >= WH_PKG_KIND_COUNT)
                goto bad;
            pkg.kind = (enum wh_pkg_kind)kind;
            pkg.name = json_string_value(json_array_get(p, 1));
            pkg.version = json_string_value(json_array_get(p, 2));
            pkg.src_name = json_string_value(json_array_get(p, 3));
            pkg.src_version = json_string_value(json_array_get(p, 4));
            pkg.arch = json_string_value(json_array_get(p, 5));
            if (pkg.arch && !*pkg.arch)
                pkg.arch = NULL;
            wh_layer_rec_pkg(li, r, &pkg);
        }
    }
    json_array_foreach(json_object_get(j, "whiteouts"), i, v)
        if (json_is_string(v))
            push_str(li->pool, &li->whiteouts, &li->nwh, &li->capwh, json_string_value(v));
    json_array_foreach(json_object_get(j, "opaques"), i, v)
        if (json_is_string(v))
            push_str(li->pool, &li->opaques, &li->nop, &li->capop, json_string_value(v));
    *out = li;
    return 0;
bad:
    wh_layer_inv_free(li);
    return wh_error_set(WH_EINVALID, "cached layer inventory is malformed");
}
