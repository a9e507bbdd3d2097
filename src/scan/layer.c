/*
 * layer.c: reads one layer (a tar stream, see tarstream.c, or a root
 * filesystem directory) exactly once, hands the files catalogers want to
 * them, and records whiteouts (OCI image-spec layer.md: `.wh.<name>` hides
 * <name>, `.wh..wh..opq` hides a directory's lower content). Paths are
 * resolved inside the image's root as a runtime would ("a/../b" is "b", and
 * ".." never leaves the root); nothing is written to disk and no link is
 * followed, so hostile paths cannot escape; caps bound every read and the
 * total decompressed size. Also: per-layer inventories, their JSON form for
 * the cache, and the merge.
 */
#include "scan/scan_int.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
    r->path = wh_utf8_escape(li->pool, path, strlen(path));
    r->cat = cat;
    return r;
}

/* Strings from a layer are kept as UTF-8, odd bytes escaped (never dropped). */
static const char *pdup(wh_pool *p, const char *s)
{
    return s ? wh_utf8_escape(p, s, strlen(s)) : NULL;
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
    (*arr)[(*n)++] = wh_utf8_escape(pool, s, strlen(s));
}

/* ---- paths ---- */

int wh_path_clean(char *out, size_t cap, const char *in, bool *climbed)
{
    size_t o = 0;
    const char *p = in;
    if (climbed)
        *climbed = false;
    while (*p) {
        while (*p == '/')
            p++;
        const char *s = p;
        while (*p && *p != '/')
            p++;
        size_t n = (size_t)(p - s);
        if (n == 0 || (n == 1 && s[0] == '.'))
            continue;
        if (n == 2 && s[0] == '.' && s[1] == '.') {
            /* drop the last component; at the root ".." stays at the root */
            if (o == 0) {
                if (climbed)
                    *climbed = true;
                continue;
            }
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--; /* the separator before it */
            continue;
        }
        if (o + n + 2 > cap)
            return wh_error_set(WH_EINVALID, "path too long");
        if (o)
            out[o++] = '/';
        memcpy(out + o, s, n);
        o += n;
    }
    if (o == 0)
        return wh_error_set(WH_EINVALID, "path %.200s names the root", in);
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
    size_t before = li->nrecs;
    error = wh_catalog_parse(li, cat, path, b.data, b.len, opts);
    if (error == WH_EINVALID) {
        /* A damaged package database in one file must not fail the image; what it yielded is kept. */
        size_t kept = 0;
        for (size_t i = before; i < li->nrecs; i++)
            kept += li->recs[i].npkgs;
        if (kept)
            wh_log_warn("scan: %s: %s (the %zu packages read are kept)", path, wh_error_msg(), kept);
        else
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
    if (wh_path_clean(target, sizeof(target), raw_target, NULL) < 0)
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

/* A package database behind a symbolic link is not read; say so (release files often are links). */
static void warn_db_link(const char *path)
{
    enum wh_cat c = wh_catalog_classify(path, 0644);
    if (c >= WH_CAT_DPKG && c <= WH_CAT_RPM_NDB)
        wh_log_warn("scan: %s is a symbolic link: not cataloged (links are never followed)", path);
}

/* ---- tar layers ---- */

int wh_layer_walk_tar(struct wh_layer_inv **out, struct wh_reader *rd, const struct wh_scan_opts *opts,
                      uint64_t *total)
{
    struct wh_layer_inv *li = NULL;
    wh_tar *t = NULL;
    struct archive_entry *e;
    char path[PATH_CAP];
    uint64_t start = *total;
    int error = 0, r;

    if (start > opts->max_total)
        return wh_error_set(WH_ETOOBIG, "image is over the cap of %llu decompressed bytes",
                            (unsigned long long)opts->max_total);
    if ((error = wh_tar_open(&t, rd, NULL, opts->max_total - start,
                             opts->max_ratio ? opts->max_ratio : WH_SCAN_RATIO_DEFAULT)) < 0)
        goto out;
    li = wh_layer_inv_new();
    while ((r = wh_tar_next(t, &e)) == 0) {
        const char *raw = archive_entry_pathname(e);
        bool climbed = false;
        if (!raw || wh_path_clean(path, sizeof(path), raw, &climbed) < 0)
            continue; /* empty, the root itself, or absurdly long: nothing to catalog */
        if (climbed)
            wh_log_warn("scan: layer entry %.200s climbs above the root; read as %.200s (as containerd "
                        "unpacks it)", raw, path);
        if (note_whiteout(li, path))
            continue;
        /* Only regular files carry content; links are never followed. */
        if (archive_entry_hardlink(e)) {
            note_hardlink(li, path, archive_entry_hardlink(e));
            continue;
        }
        if (archive_entry_filetype(e) != AE_IFREG) {
            /* A package database behind a link is worth a word (release files often are links). */
            if (archive_entry_filetype(e) == AE_IFLNK)
                warn_db_link(path);
            continue;
        }
        struct wh_reader er = {wh_tar_read, t, archive_entry_size(e), NULL};
        if ((error = catalog_entry(li, path, (unsigned)archive_entry_perm(e), &er, opts)) < 0) {
            int te = wh_tar_error(t); /* a cap or damaged data under the file, not the file itself */
            if (te < 0)
                error = te;
            goto out;
        }
    }
    if (r < 0) {
        error = r;
        goto out;
    }
    *total = start + wh_tar_bytes(t);
    *out = li;
    li = NULL;
out:
    if (error == WH_ETOOBIG && strstr(wh_error_msg(), "decompressed bytes")) {
        /* the cap is the image's: say so */
        wh_error_set(WH_ETOOBIG, "image is over the cap of %llu decompressed bytes",
                     (unsigned long long)opts->max_total);
    }
    wh_tar_free(t);
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
    if (S_ISLNK(st.st_mode))
        warn_db_link(path);
    if (!S_ISREG(st.st_mode) || wh_catalog_classify(path, (unsigned)st.st_mode) == WH_CAT_NONE)
        return 0;
    int fd = openat(dirfd(d), name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct fd_reader fr = {fd};
    struct wh_reader rd = {fd_read, &fr, (int64_t)st.st_size, NULL};
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
        json_object_set_new(o, "path", wh_json_text(r->path));
        json_object_set_new(o, "cat", json_integer(r->cat));
        if (r->content)
            json_object_set_new(o, "content", wh_json_text(r->content));
        for (size_t k = 0; k < r->npkgs; k++) {
            const struct wh_pkg *p = &r->pkgs[k];
            json_array_append_new(pk, json_pack("[iooooo]", (int)p->kind, wh_json_text(p->name),
                                                wh_json_text(p->version), wh_json_text(p->src_name),
                                                wh_json_text(p->src_version), wh_json_text(p->arch)));
        }
        json_object_set_new(o, "pkgs", pk);
        json_array_append_new(recs, o);
    }
    for (size_t i = 0; i < li->nwh; i++)
        json_array_append_new(wh, wh_json_text(li->whiteouts[i]));
    for (size_t i = 0; i < li->nop; i++)
        json_array_append_new(op, wh_json_text(li->opaques[i]));
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
