/*
 * scan_fixture.h: helpers the scan tests share to build what they scan: temp
 * directories, files, layer tars (libarchive writer, optionally gzip or
 * zstd), OCI image layouts and `docker save` archives. Everything is built
 * in the test itself so hostile inputs never live in the tree.
 */
#ifndef WH_SCAN_FIXTURE_H
#define WH_SCAN_FIXTURE_H

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "scan/scan.h"

struct tf_entry {
    const char *path;
    char type;         /* 'f' file (default), 'd' dir, 'l' symlink, 'h' hard link */
    const char *data;  /* file content (NUL-terminated unless len) */
    size_t len;        /* 0 = strlen(data) */
    unsigned mode;     /* 0 = 0644 / 0755 */
    const char *link;  /* symlink or hard link target */
    int64_t fake_size; /* >0: header declares this size and that many zero bytes follow */
};

static int tf_rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

static inline void tf_rmrf(const char *path)
{
    nftw(path, tf_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static inline char *tf_tmpdir(void)
{
    char tmpl[] = "/tmp/wharf-test-XXXXXX";
    if (!mkdtemp(tmpl))
        abort();
    return wh_strdup(tmpl);
}

static inline void tf_write(const char *root, const char *rel, const char *data, size_t len, unsigned mode)
{
    char *path = wh_sprintf("%s/%s", root, rel);
    char *dir = wh_strdup(path);
    *strrchr(dir, '/') = '\0';
    wh_mkdirs(dir, 0755);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode ? mode : 0644);
    if (fd < 0)
        abort();
    size_t n = len ? len : strlen(data);
    if (write(fd, data, n) != (ssize_t)n)
        abort();
    close(fd);
    free(dir);
    free(path);
}

/* Writes a layer tar; filter is NULL, "gzip" or "zstd". */
static inline void tf_tar(const char *out, const struct tf_entry *e, size_t n, const char *filter)
{
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (filter && strcmp(filter, "gzip") == 0)
        archive_write_add_filter_gzip(a);
    else if (filter && strcmp(filter, "zstd") == 0)
        archive_write_add_filter_zstd(a);
    if (archive_write_open_filename(a, out) != ARCHIVE_OK)
        abort();
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *ae = archive_entry_new();
        char type = e[i].type ? e[i].type : 'f';
        archive_entry_set_pathname(ae, e[i].path);
        if (type == 'd') {
            archive_entry_set_filetype(ae, AE_IFDIR);
            archive_entry_set_perm(ae, 0755);
        } else if (type == 'l') {
            archive_entry_set_filetype(ae, AE_IFLNK);
            archive_entry_set_symlink(ae, e[i].link);
            archive_entry_set_perm(ae, 0777);
        } else if (type == 'h') {
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_hardlink(ae, e[i].link);
            archive_entry_set_perm(ae, 0644);
        } else {
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_perm(ae, e[i].mode ? e[i].mode : 0644);
            size_t len = e[i].data ? (e[i].len ? e[i].len : strlen(e[i].data)) : 0;
            archive_entry_set_size(ae, e[i].fake_size > 0 ? e[i].fake_size : (int64_t)len);
        }
        if (archive_write_header(a, ae) != ARCHIVE_OK)
            abort();
        if (type == 'f') {
            if (e[i].fake_size > 0) {
                static char zeros[65536];
                for (int64_t left = e[i].fake_size; left > 0;) {
                    size_t k = left > (int64_t)sizeof(zeros) ? sizeof(zeros) : (size_t)left;
                    archive_write_data(a, zeros, k);
                    left -= (int64_t)k;
                }
            } else if (e[i].data) {
                archive_write_data(a, e[i].data, e[i].len ? e[i].len : strlen(e[i].data));
            }
        }
        archive_entry_free(ae);
    }
    archive_write_close(a);
    archive_write_free(a);
}

static inline char *tf_digest_file(const char *path)
{
    struct wh_digest d;
    if (wh_digest_file(&d, WH_DIGEST_SHA256, path) < 0)
        abort();
    return wh_strdup(d.str);
}

static inline char *tf_blob_put(const char *dir, const char *data, size_t len)
{
    struct wh_digest d;
    wh_digest_of(&d, WH_DIGEST_SHA256, data, len);
    char *rel = wh_sprintf("blobs/sha256/%s", wh_digest_hex(&d));
    tf_write(dir, rel, data, len, 0644);
    free(rel);
    return wh_strdup(d.str);
}

/*
 * Builds an OCI image layout in `dir` from layer tar files (copied, or
 * symlinked when `link` is set). `tag` names the image in index.json. The
 * config's diff_ids are the layer digests (a test shortcut; for uncompressed
 * layers they are the real diff_ids).
 */
static inline void tf_oci(const char *dir, const char *const *layers, size_t n, const char *tag, bool link)
{
    json_t *diff = json_array(), *jl = json_array();
    wh_mkdirs(dir, 0755);
    char *bdir = wh_sprintf("%s/blobs/sha256", dir);
    wh_mkdirs(bdir, 0755);
    for (size_t i = 0; i < n; i++) {
        char *dg = tf_digest_file(layers[i]);
        char *dst = wh_sprintf("%s/%s", bdir, dg + 7);
        if (link) {
            char *abs = realpath(layers[i], NULL);
            unlink(dst);
            if (symlink(abs, dst) < 0)
                abort();
            free(abs);
        } else {
            FILE *in = fopen(layers[i], "rb"), *out = fopen(dst, "wb");
            char buf[65536];
            size_t k;
            while ((k = fread(buf, 1, sizeof(buf), in)) > 0)
                fwrite(buf, 1, k, out);
            fclose(in);
            fclose(out);
        }
        struct stat st;
        stat(layers[i], &st);
        unsigned char magic[2] = {0};
        FILE *f = fopen(layers[i], "rb");
        if (fread(magic, 1, 2, f) != 2)
            magic[0] = 0;
        fclose(f);
        const char *mt = magic[0] == 0x1f && magic[1] == 0x8b ? "application/vnd.oci.image.layer.v1.tar+gzip"
                         : magic[0] == 0x28                  ? "application/vnd.oci.image.layer.v1.tar+zstd"
                                                             : "application/vnd.oci.image.layer.v1.tar";
        json_array_append_new(jl, json_pack("{s:s, s:s, s:I}", "mediaType", mt, "digest", dg, "size",
                                            (json_int_t)st.st_size));
        json_array_append_new(diff, json_string(dg));
        free(dst);
        free(dg);
    }
    json_t *cfg = json_pack("{s:s, s:s, s:{s:s, s:o}}", "architecture", "amd64", "os", "linux", "rootfs",
                            "type", "layers", "diff_ids", diff);
    char *cfgs = json_dumps(cfg, JSON_COMPACT);
    char *cdg = tf_blob_put(dir, cfgs, strlen(cfgs));
    json_t *man = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:o}", "schemaVersion", 2, "mediaType",
                            "application/vnd.oci.image.manifest.v1+json", "config", "mediaType",
                            "application/vnd.oci.image.config.v1+json", "digest", cdg, "size",
                            (json_int_t)strlen(cfgs), "layers", jl);
    char *mans = json_dumps(man, JSON_COMPACT);
    char *mdg = tf_blob_put(dir, mans, strlen(mans));
    json_t *index = json_pack("{s:i, s:[{s:s, s:s, s:I, s:{s:s}}]}", "schemaVersion", 2, "manifests",
                              "mediaType", "application/vnd.oci.image.manifest.v1+json", "digest", mdg,
                              "size", (json_int_t)strlen(mans), "annotations",
                              "org.opencontainers.image.ref.name", tag ? tag : "latest");
    char *is = json_dumps(index, JSON_COMPACT);
    tf_write(dir, "index.json", is, 0, 0644);
    tf_write(dir, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}", 0, 0644);
    free(is);
    json_decref(index);
    free(mans);
    free(mdg);
    json_decref(man);
    free(cdg);
    free(cfgs);
    json_decref(cfg);
    free(bdir);
}

static inline char *tf_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        abort();
    struct wh_buf b;
    wh_buf_init(&b, 1u << 30);
    char buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof(buf), f)) > 0)
        wh_buf_put(&b, buf, k);
    fclose(f);
    if (!b.data)
        wh_buf_put(&b, "", 0);
    return wh_buf_detach(&b, len);
}

/* A `docker save` archive at `out` with the given layer tars as <i>/layer.tar. */
static inline void tf_docker_archive(const char *out, const char *const *layers, size_t n)
{
    struct tf_entry *e = wh_calloc(n + 2, sizeof(*e));
    char **bufs = wh_calloc(n, sizeof(*bufs)), **names_s = wh_calloc(n, sizeof(*names_s));
    json_t *names = json_array(), *diff = json_array();
    for (size_t i = 0; i < n; i++) {
        size_t len;
        bufs[i] = tf_slurp(layers[i], &len);
        names_s[i] = wh_sprintf("%zu/layer.tar", i);
        e[i].path = names_s[i];
        e[i].data = bufs[i];
        e[i].len = len;
        json_array_append_new(names, json_string(e[i].path));
        char *dg = tf_digest_file(layers[i]);
        json_array_append_new(diff, json_string(dg));
        free(dg);
    }
    json_t *cfg = json_pack("{s:s, s:s, s:{s:s, s:o}}", "architecture", "amd64", "os", "linux", "rootfs",
                            "type", "layers", "diff_ids", diff);
    char *cfgs = json_dumps(cfg, JSON_COMPACT);
    json_t *man = json_pack("[{s:s, s:[s], s:o}]", "Config", "config.json", "RepoTags", "test:latest",
                            "Layers", names);
    char *mans = json_dumps(man, JSON_COMPACT);
    e[n] = (struct tf_entry){.path = "config.json", .data = cfgs};
    e[n + 1] = (struct tf_entry){.path = "manifest.json", .data = mans};
    tf_tar(out, e, n + 2, NULL);
    for (size_t i = 0; i < n; i++) {
        free(names_s[i]);
        free(bufs[i]);
    }
    free(names_s);
    free(bufs);
    free(e);
    free(cfgs);
    free(mans);
    json_decref(cfg);
    json_decref(man);
}

/* Finds a package by kind and name in an inventory. */
static inline const struct wh_pkg *tf_pkg(const struct wh_inventory *inv, enum wh_pkg_kind k, const char *name)
{
    for (size_t i = 0; i < inv->npkgs; i++)
        if (inv->pkgs[i].kind == k && strcmp(inv->pkgs[i].name, name) == 0)
            return &inv->pkgs[i];
    return NULL;
}

#endif
