/*
 * image.c: scan targets. "oci:DIR[:TAG]" is an OCI image layout (image-spec
 * image-layout.md: oci-layout, index.json, blobs/<alg>/<hex>), with a
 * multi-platform index resolved to linux/amd64 (else the first linux
 * manifest); "docker-archive:FILE" is a `docker save` tarball (manifest.json
 * naming the config and the layer tars inside the same archive, indexed once
 * by tarindex.c, links between its entries followed inside it);
 * "rootfs:DIR" is an unpacked root filesystem. Layers are read in order, each
 * once; their inventories are cached by the layer's content address (the
 * blob digest of an OCI layer, the diff_id of a docker archive layer), and a
 * cached inventory is used only once the layer has been hashed and found to
 * be that content, so a shared layer is never decompressed twice and a
 * mislabelled one never borrows another's inventory.
 */
#include "scan/scan_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define JSON_DOC_MAX (4u << 20)
#define LAYERS_MAX 1024
/* Bump when a cataloger changes what it records, so cached inventories are redone. */
#define CATALOG_VERSION 3

/* ---- small file helpers ---- */

static int slurp(struct wh_buf *b, const char *path, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return wh_error_set(errno == ENOENT ? WH_ENOTFOUND : WH_EINVALID, "%s: %s", path,
                            strerror(errno));
    wh_buf_init(b, cap);
    char block[65536];
    int error = 0;
    for (;;) {
        ssize_t n = read(fd, block, sizeof(block));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            error = wh_error_set(WH_EINVALID, "%s: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        if (wh_buf_put(b, block, (size_t)n) < 0) {
            error = wh_error_set(WH_ETOOBIG, "%s is over %zu bytes", path, cap);
            break;
        }
    }
    close(fd);
    if (!error && !b->data)
        wh_buf_put(b, "", 0);
    if (error)
        wh_buf_dispose(b);
    return error;
}

static int load_json(json_t **out, const char *data, size_t len, const char *what)
{
    json_error_t jerr;
    json_t *j = json_loadb(data, len, 0, &jerr);
    if (!json_is_object(j) && !json_is_array(j)) {
        json_decref(j);
        return wh_error_set(WH_EINVALID, "%s is not valid JSON: %s", what, jerr.text);
    }
    *out = j;
    return 0;
}

/* ---- the per-layer cache ---- */

static char *cache_path(const struct wh_scan_opts *opts, const char *digest)
{
    struct wh_digest d;
    if (!opts->cache_dir || !digest || wh_digest_parse(&d, digest, strlen(digest)) < 0)
        return NULL;
    return wh_sprintf("%s/layers/%s/%s.json", opts->cache_dir,
                      d.alg == WH_DIGEST_SHA256 ? "sha256" : "sha512", wh_digest_hex(&d));
}

static struct wh_layer_inv *cache_get(const struct wh_scan_opts *opts, const char *digest)
{
    char *path = cache_path(opts, digest);
    struct wh_layer_inv *li = NULL;
    json_t *j = NULL;
    struct wh_buf b;
    if (!path)
        return NULL;
    if (slurp(&b, path, 256u << 20) == 0) {
        if (load_json(&j, b.data, b.len, path) == 0 &&
            json_integer_value(json_object_get(j, "catalog_version")) == CATALOG_VERSION)
            wh_layer_inv_from_json(&li, json_object_get(j, "layer"));
        wh_buf_dispose(&b);
    }
    json_decref(j);
    free(path);
    wh_error_clear();
    return li;
}

static void cache_put(const struct wh_scan_opts *opts, const char *digest, const struct wh_layer_inv *li)
{
    char *path = cache_path(opts, digest);
    if (!path)
        return;
    char *dir = wh_strdup(path);
    *strrchr(dir, '/') = '\0';
    char rnd[17];
    wh_random_hex(rnd, 8);
    char *tmp = wh_sprintf("%s.tmp.%d.%s", path, (int)getpid(), rnd);
    json_t *j = json_pack("{s:i, s:o}", "catalog_version", CATALOG_VERSION, "layer",
                          wh_layer_inv_to_json(li));
    if (wh_mkdirs(dir, 0755) == 0 && json_dump_file(j, tmp, JSON_COMPACT) == 0) {
        if (rename(tmp, path) < 0)
            unlink(tmp);
    } else {
        wh_log_warn("scan: cannot write layer cache %s", path);
        unlink(tmp);
    }
    json_decref(j);
    free(tmp);
    free(dir);
    free(path);
}

/* ---- layer streams ---- */

struct file_reader {
    const struct wh_blob_source *src;
    void *handle; /* NULL when not open */
    wh_hasher *h; /* NULL when not verifying */
};

static ssize_t file_read(void *ctx, void *buf, size_t n)
{
    struct file_reader *f = ctx;
    long r = f->src->read(f->handle, buf, n);
    if (r > 0 && f->h)
        wh_hasher_update(f->h, buf, (size_t)r);
    return r < 0 ? -1 : (ssize_t)r;
}

static void file_close(struct file_reader *f)
{
    if (f->handle)
        f->src->close(f->handle);
    f->handle = NULL;
}

void *wh_blob_file_handle(int fd)
{
    int *h = wh_malloc(sizeof(*h));
    *h = fd;
    return h;
}

long wh_blob_file_read(void *handle, void *buf, size_t n)
{
    int *fd = handle;
    for (;;) {
        ssize_t r = read(*fd, buf, n);
        if (r < 0 && errno == EINTR)
            continue;
        return (long)r;
    }
}

void wh_blob_file_close(void *handle)
{
    int *fd = handle;
    if (fd) {
        close(*fd);
        free(fd);
    }
}

/* A reader that hashes what passes through it. */
struct hashing_reader {
    struct wh_reader *inner;
    wh_hasher *h;
};

static ssize_t hashing_read(void *ctx, void *buf, size_t n)
{
    struct hashing_reader *hr = ctx;
    ssize_t r = hr->inner->read(hr->inner->ctx, buf, n);
    if (r > 0)
        wh_hasher_update(hr->h, buf, (size_t)r);
    return r;
}

/* Opens a blob by digest through the source into `f`. */
static int blob_open(struct file_reader *f, const struct wh_blob_source *src, const char *digest,
                     struct wh_digest *d)
{
    f->src = src;
    f->handle = NULL;
    if (!digest || wh_digest_parse(d, digest, strlen(digest)) < 0)
        return wh_error_set(WH_EINVALID, "malformed digest %s", digest ? digest : "(none)");
    int error = src->open(&f->handle, src->payload, d);
    if (error == WH_ENOTFOUND)
        return wh_error_set(WH_EINVALID, "blob %s is missing", digest);
    if (error < 0)
        f->handle = NULL;
    return error;
}

/*
 * The digest check of a layer blob, run beside the inflating thread when a
 * core would otherwise idle (an image of fewer layers than reading threads):
 * on a machine without SHA extensions hashing a layer costs a fifth of
 * inflating it, and the two need not wait for each other. The blob is read
 * a second time, from the page cache.
 */
struct side_hash {
    struct file_reader fr; /* its own handle on the blob */
    enum wh_digest_alg alg;
    struct wh_digest got;
    atomic_int stop; /* set when the walk failed: the result is not needed */
    int error;
};

static void *side_hash_main(void *arg)
{
    struct side_hash *sh = arg;
    struct file_reader fr = sh->fr;
    fr.h = wh_hasher_new(sh->alg);
    char *block = wh_malloc(1 << 20);
    ssize_t r = 0;
    while (!atomic_load(&sh->stop) && (r = file_read(&fr, block, 1 << 20)) > 0)
        ;
    if (r < 0)
        sh->error = WH_ERROR;
    wh_hasher_final(&sh->got, fr.h);
    wh_hasher_free(fr.h);
    free(block);
    return NULL;
}

/* Reads one layer blob, verifying its digest as it streams (or beside it). */
static int layer_from_blob(struct wh_layer_inv **out, const struct wh_blob_source *src, const char *digest,
                           const struct wh_scan_opts *opts, bool side_hash, uint64_t *total)
{
    struct wh_digest want, got;
    struct file_reader fr = {NULL, NULL, NULL};
    struct side_hash sh = {.fr = {NULL, NULL, NULL}};
    pthread_t side;
    bool beside = false;
    int error = 0;

    if ((error = blob_open(&fr, src, digest, &want)) < 0)
        return error;
    if (side_hash && blob_open(&sh.fr, src, digest, &want) == 0) {
        sh.alg = want.alg;
        beside = pthread_create(&side, NULL, side_hash_main, &sh) == 0;
        if (!beside)
            file_close(&sh.fr);
    }
    if (!beside)
        fr.h = wh_hasher_new(want.alg);
    struct wh_reader rd = {file_read, &fr, -1, NULL};
    error = wh_layer_walk_tar(out, &rd, opts, total);
    if (beside) {
        if (error == WH_ETOOBIG)
            atomic_store(&sh.stop, 1);
        pthread_join(side, NULL);
        file_close(&sh.fr);
        got = sh.got;
        if (sh.error < 0 && error == 0)
            error = wh_error_set(WH_ERROR, "layer %s could not be read", digest);
    } else if (error != WH_ETOOBIG) {
        /* Hash the rest (the tar may end before the compressed stream does). */
        char block[65536];
        while (file_read(&fr, block, sizeof(block)) > 0)
            ;
        wh_hasher_final(&got, fr.h);
    }
    /* A damaged blob is reported as such rather than as a broken tar. */
    if (error != WH_ETOOBIG && strcmp(got.str, want.str) != 0) {
        if (error == 0) {
            wh_layer_inv_free(*out);
            *out = NULL;
        }
        error = wh_error_set(WH_EINVALID, "layer %s does not match its digest", digest);
    }
    wh_hasher_free(fr.h);
    file_close(&fr);
    return error;
}

/* Hashes a blob and checks it is the one its digest names. */
static int blob_verify(const struct wh_blob_source *src, const char *digest)
{
    struct wh_digest want, got;
    struct file_reader fr = {NULL, NULL, NULL};
    char block[65536];
    ssize_t n;
    int error;
    if ((error = blob_open(&fr, src, digest, &want)) < 0)
        return error;
    fr.h = wh_hasher_new(want.alg);
    while ((n = file_read(&fr, block, sizeof(block))) > 0)
        ;
    wh_hasher_final(&got, fr.h);
    wh_hasher_free(fr.h);
    file_close(&fr);
    if (n < 0)
        return wh_error_set(WH_EINVALID, "blob %s cannot be read", digest);
    if (strcmp(got.str, want.str) != 0)
        return wh_error_set(WH_EINVALID, "layer %s does not match its digest", digest);
    return 0;
}

/* ---- OCI image layout ---- */

/* Reads a small blob (manifest, index, config) whole, capped, and verifies it. */
static int blob_read(struct wh_buf *b, const struct wh_blob_source *src, const char *digest, size_t cap)
{
    struct wh_digest d, got;
    struct file_reader fr = {NULL, NULL, NULL};
    char block[65536];
    ssize_t n;
    int error = 0;
    if ((error = blob_open(&fr, src, digest, &d)) < 0)
        return error;
    wh_buf_init(b, cap);
    while ((n = file_read(&fr, block, sizeof(block))) != 0) {
        if (n < 0) {
            error = wh_error_set(WH_EINVALID, "blob %s cannot be read", digest);
            break;
        }
        if (wh_buf_put(b, block, (size_t)n) < 0) {
            error = wh_error_set(WH_ETOOBIG, "blob %s is over %zu bytes", digest, cap);
            break;
        }
    }
    file_close(&fr);
    if (!error && !b->data)
        wh_buf_put(b, "", 0);
    if (!error) {
        wh_digest_of(&got, d.alg, b->data, b->len);
        if (strcmp(got.str, d.str) != 0)
            error = wh_error_set(WH_EINVALID, "blob %s does not match its digest", digest);
    }
    if (error)
        wh_buf_dispose(b);
    return error;
}

/* The blob source of an OCI image layout: DIR/blobs/<alg>/<hex>. */
static int layout_open(void **handle, void *payload, const struct wh_digest *d)
{
    char *path = wh_sprintf("%s/blobs/%s/%s", (const char *)payload,
                            d->alg == WH_DIGEST_SHA256 ? "sha256" : "sha512", wh_digest_hex(d));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int err = errno, error = 0;
    if (fd < 0)
        error = err == ENOENT ? WH_ENOTFOUND
                              : wh_error_set(WH_ERROR, "%s: %s", path, strerror(err));
    else
        *handle = wh_blob_file_handle(fd);
    free(path);
    return error;
}

static bool is_index(const json_t *desc_or_doc)
{
    const char *mt = json_string_value(json_object_get(desc_or_doc, "mediaType"));
    return mt && (strcmp(mt, "application/vnd.oci.image.index.v1+json") == 0 ||
                  strcmp(mt, "application/vnd.docker.distribution.manifest.list.v2+json") == 0);
}

/*
 * Picks the manifest for `platform` ("os/arch[/variant]", default linux/amd64)
 * from an index's manifests. Without an exact match: for the default, the
 * first linux manifest, else the first; for an explicit platform, NULL.
 */
static json_t *pick_platform(json_t *manifests, const char *platform)
{
    char os[32] = "linux", arch[32] = "amd64", variant[32] = "";
    if (platform && *platform) {
        os[0] = arch[0] = '\0';
        sscanf(platform, "%31[^/]/%31[^/]/%31s", os, arch, variant);
    }
    size_t i;
    json_t *m, *linux_any = NULL;
    json_array_foreach(manifests, i, m) {
        json_t *pf = json_object_get(m, "platform");
        const char *mos = json_string_value(json_object_get(pf, "os"));
        const char *march = json_string_value(json_object_get(pf, "architecture"));
        const char *mvar = json_string_value(json_object_get(pf, "variant"));
        if (mos && strcmp(mos, os) == 0 && march && strcmp(march, arch) == 0 &&
            (!variant[0] || (mvar && strcmp(mvar, variant) == 0)))
            return m;
        if (mos && strcmp(mos, "linux") == 0 && !linux_any)
            linux_any = m;
    }
    if (platform && *platform)
        return NULL;
    return linux_any ? linux_any : json_array_get(manifests, 0);
}

/*
 * With an explicit platform ("os/arch[/variant]"), checks that a single
 * image's config is for it: a one-platform image is not silently scanned in
 * place of the platform asked for. The variant counts only when both name
 * one. 0, or WH_ENOTFOUND naming both platforms.
 */
static int platform_check(const json_t *config, const char *platform)
{
    char os[32] = "", arch[32] = "", variant[32] = "";
    if (!platform || !*platform)
        return 0;
    sscanf(platform, "%31[^/]/%31[^/]/%31s", os, arch, variant);
    const char *cos = json_string_value(json_object_get(config, "os"));
    const char *carch = json_string_value(json_object_get(config, "architecture"));
    const char *cvar = json_string_value(json_object_get(config, "variant"));
    if (!cos || !carch)
        return wh_error_set(WH_ENOTFOUND,
                            "the image's config names no platform, so it cannot be checked "
                            "against --platform %s",
                            platform);
    if (strcmp(cos, os) != 0 || strcmp(carch, arch) != 0 ||
        (variant[0] && cvar && strcmp(cvar, variant) != 0))
        return wh_error_set(WH_ENOTFOUND, "the image is %s/%s%s%s, not %s", cos, carch,
                            cvar ? "/" : "", cvar ? cvar : "", platform);
    return 0;
}

struct layer_list {
    char *paths[LAYERS_MAX];   /* file to read, or entry name in a docker archive */
    char *digests[LAYERS_MAX]; /* compressed digest to verify; NULL if none */
    char *keys[LAYERS_MAX];    /* cache key: diff_id */
    size_t entries[LAYERS_MAX]; /* docker archive: the layer's entry in the archive's index */
    size_t n;
};

static void layer_list_free(struct layer_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->paths[i]);
        free(l->digests[i]);
        free(l->keys[i]);
    }
    l->n = 0;
}

static const char *diff_id(json_t *config, size_t i)
{
    return json_string_value(json_array_get(json_object_get(json_object_get(config, "rootfs"), "diff_ids"), i));
}

/*
 * From a manifest digest to the list of layers: follows up to two levels of
 * image index (picking linux/amd64), records the image manifest's digest.
 */
static int manifest_resolve(struct layer_list *ll, const struct wh_blob_source *src, const char *digest,
                            struct wh_scan_opts *opts)
{
    struct wh_buf b = {0};
    json_t *man = NULL;
    char dg[WH_DIGEST_STR_MAX];
    int error = 0;

    snprintf(dg, sizeof(dg), "%s", digest ? digest : "");
    for (int hop = 0;; hop++) {
        wh_buf_dispose(&b);
        if ((error = blob_read(&b, src, dg, JSON_DOC_MAX)) < 0)
            goto out;
        json_decref(man);
        man = NULL;
        if ((error = load_json(&man, b.data, b.len, "manifest")) < 0)
            goto out;
        if (!is_index(man) && !json_object_get(man, "manifests")) {
            snprintf(opts->image_digest, sizeof(opts->image_digest), "%s", dg);
            /* not reached through an index that picked the platform: check its config */
            if (hop == 0 && opts->platform && *opts->platform) {
                const char *cd = json_string_value(json_object_get(json_object_get(man, "config"), "digest"));
                struct wh_buf cb = {0};
                json_t *config = NULL;
                if (!cd)
                    error = wh_error_set(WH_EINVALID, "manifest %s names no config", dg);
                else if ((error = blob_read(&cb, src, cd, JSON_DOC_MAX)) == 0 &&
                         (error = load_json(&config, cb.data, cb.len, "config")) == 0)
                    error = platform_check(config, opts->platform);
                json_decref(config);
                wh_buf_dispose(&cb);
                if (error < 0)
                    goto out;
            }
            break;
        }
        if (hop >= 2) {
            error = wh_error_set(WH_EINVALID, "image index nesting too deep");
            goto out;
        }
        json_t *desc = pick_platform(json_object_get(man, "manifests"), opts->platform);
        const char *d = json_string_value(json_object_get(desc, "digest"));
        if (!d) {
            error = opts->platform ? wh_error_set(WH_ENOTFOUND, "the image index has no %s image", opts->platform)
                                   : wh_error_set(WH_EINVALID, "empty image index");
            goto out;
        }
        /* `desc` lives inside the document replaced next round: keep its digest. */
        snprintf(dg, sizeof(dg), "%s", d);
    }
    json_t *layers = json_object_get(man, "layers");
    if (!json_is_array(layers) || json_array_size(layers) > LAYERS_MAX) {
        error = wh_error_set(WH_EINVALID, "manifest %s has no usable layers list", dg);
        goto out;
    }
    size_t i;
    json_t *l;
    json_array_foreach(layers, i, l) {
        const char *ld = json_string_value(json_object_get(l, "digest"));
        struct wh_digest d;
        if (!ld || wh_digest_parse(&d, ld, strlen(ld)) < 0) {
            error = wh_error_set(WH_EINVALID, "manifest %s: layer %zu has a malformed digest", dg, i + 1);
            goto out;
        }
        /* The cache key is the blob's own content address, checked whenever it is used:
         * a diff_id in the config is only a claim by whoever built the image. */
        ll->paths[ll->n] = NULL;
        ll->digests[ll->n] = wh_strdup(ld);
        ll->keys[ll->n] = wh_strdup(ld);
        ll->n++;
    }
out:
    wh_buf_dispose(&b);
    json_decref(man);
    return error;
}

/* Picks the image of an OCI layout's index.json (by tag, or the only one) and resolves it. */
static int oci_resolve(struct layer_list *ll, const char *dir, const char *tag, struct wh_scan_opts *opts)
{
    struct wh_buf b = {0};
    json_t *index = NULL, *desc = NULL;
    struct stat st;
    int error = 0;

    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return wh_error_set(WH_ENOTFOUND, "oci:%s: no such directory", dir);
    char *ip = wh_sprintf("%s/index.json", dir);
    error = slurp(&b, ip, JSON_DOC_MAX);
    free(ip);
    if (error == WH_ENOTFOUND)
        return wh_error_set(WH_EINVALID, "oci:%s is not an OCI image layout (no index.json)", dir);
    if (error < 0)
        return error;
    if ((error = load_json(&index, b.data, b.len, "index.json")) < 0)
        goto out;
    json_t *ms = json_object_get(index, "manifests");
    if (!json_is_array(ms) || json_array_size(ms) == 0) {
        error = wh_error_set(WH_EINVALID, "oci:%s: index.json lists no manifests", dir);
        goto out;
    }
    if (tag) {
        size_t i;
        json_t *m;
        json_array_foreach(ms, i, m) {
            const char *rn = json_string_value(
                json_object_get(json_object_get(m, "annotations"), "org.opencontainers.image.ref.name"));
            if (rn && strcmp(rn, tag) == 0) {
                desc = m;
                break;
            }
        }
        if (!desc) {
            error = wh_error_set(WH_ENOTFOUND, "oci:%s: no image tagged %s", dir, tag);
            goto out;
        }
    } else if (json_array_size(ms) == 1) {
        desc = json_array_get(ms, 0);
    } else {
        error = wh_error_set(WH_EINVALID, "oci:%s holds %zu images: name one as oci:DIR:TAG", dir,
                             json_array_size(ms));
        goto out;
    }
    struct wh_blob_source src = {layout_open, wh_blob_file_read, wh_blob_file_close,
                                 (void *)(uintptr_t)dir};
    error = manifest_resolve(ll, &src, json_string_value(json_object_get(desc, "digest")), opts);
out:
    wh_buf_dispose(&b);
    json_decref(index);
    return error;
}

/* ---- docker save tarballs ---- */

/* Reads a small entry of the archive (manifest.json, the config) as JSON. */
static int outer_json(json_t **out, wh_tarindex *x, const char *file, const char *name)
{
    struct wh_tarindex_entry ent;
    struct wh_reader rd;
    struct wh_buf b;
    size_t idx;
    int error;
    wh_buf_init(&b, JSON_DOC_MAX);
    if ((error = wh_tarindex_find(x, name, &idx)) < 0)
        goto out;
    if (wh_tarindex_size(x, idx) > JSON_DOC_MAX) {
        error = wh_error_set(WH_ETOOBIG, "docker-archive:%s: %s is too large", file, name);
        goto out;
    }
    if ((error = wh_tarindex_open_entry(x, idx, &ent, &rd)) < 0)
        goto out;
    char block[65536];
    ssize_t n;
    while ((n = rd.read(rd.ctx, block, sizeof(block))) > 0)
        if (wh_buf_put(&b, block, (size_t)n) < 0) {
            error = wh_error_set(WH_ETOOBIG, "docker-archive:%s: %s is too large", file, name);
            goto out;
        }
    if (n < 0) {
        error = wh_error_set(WH_EINVALID, "docker-archive:%s: cannot read %s", file, name);
        goto out;
    }
    error = load_json(out, b.data ? b.data : "", b.len, name);
out:
    wh_buf_dispose(&b);
    return error;
}

/*
 * Indexes the archive once (under the image's caps) and lists its layers:
 * each Layers name of manifest.json is found in the index, links followed.
 */
static int docker_resolve(struct layer_list *ll, wh_tarindex **xout, const char *file,
                          const struct wh_scan_opts *opts)
{
    json_t *man = NULL, *config = NULL;
    wh_tarindex *x = NULL;
    char *what = wh_sprintf("docker-archive:%s", file);
    int error;
    if ((error = wh_tarindex_open(&x, file, what, opts->max_total,
                                  opts->max_ratio ? opts->max_ratio : WH_SCAN_RATIO_DEFAULT)) < 0) {
        if (error == WH_ENOTFOUND)
            error = wh_error_set(WH_ENOTFOUND, "docker-archive:%s: no such file", file);
        goto out;
    }
    if ((error = outer_json(&man, x, file, "manifest.json")) < 0) {
        if (error == WH_ENOTFOUND)
            error = wh_error_set(WH_EINVALID, "docker-archive:%s has no manifest.json (not a docker save tarball)", file);
        goto out;
    }
    json_t *img = json_array_get(man, 0);
    json_t *layers = json_object_get(img, "Layers");
    if (!json_is_array(layers) || json_array_size(layers) > LAYERS_MAX) {
        error = wh_error_set(WH_EINVALID, "docker-archive:%s: manifest.json has no Layers", file);
        goto out;
    }
    const char *cfg = json_string_value(json_object_get(img, "Config"));
    if (cfg && outer_json(&config, x, file, cfg) < 0)
        config = NULL;
    wh_error_clear();
    if (opts->platform && (error = platform_check(config, opts->platform)) < 0)
        goto out;
    size_t i;
    json_t *l;
    json_array_foreach(layers, i, l) {
        const char *p = json_string_value(l);
        size_t idx;
        if (!p) {
            error = wh_error_set(WH_EINVALID, "docker-archive:%s: bad layer entry", file);
            goto out;
        }
        if ((error = wh_tarindex_find(x, p, &idx)) < 0) {
            if (error == WH_ENOTFOUND)
                error = WH_EINVALID; /* the archive is incomplete, the target itself exists */
            goto out;
        }
        /*
         * What the layer's bytes must hash to, checked while reading and before a
         * cached inventory is used: newer `docker save` output is an OCI layout
         * inside the tar ("blobs/sha256/<hex>", possibly compressed), whose name is
         * its digest; the classic "<id>/layer.tar" is an uncompressed tar whose
         * sha256 is the config's diff_id.
         */
        char named[WH_DIGEST_STR_MAX] = "";
        struct wh_digest d;
        if (strncmp(p, "blobs/", 6) == 0 && strchr(p + 6, '/')) {
            char *alg = wh_strndup(p + 6, (size_t)(strchr(p + 6, '/') - p - 6));
            snprintf(named, sizeof(named), "%s:%s", alg, strchr(p + 6, '/') + 1);
            free(alg);
            if (wh_digest_parse(&d, named, strlen(named)) < 0)
                named[0] = '\0';
        }
        const char *key = named[0] ? named : config ? diff_id(config, i) : NULL;
        ll->paths[ll->n] = wh_strdup(p);
        ll->digests[ll->n] = key ? wh_strdup(key) : NULL;
        ll->keys[ll->n] = key ? wh_strdup(key) : NULL;
        ll->entries[ll->n] = idx;
        ll->n++;
    }
    *xout = x;
    x = NULL;
out:
    wh_tarindex_free(x);
    json_decref(man);
    json_decref(config);
    free(what);
    return error;
}

/*
 * Reads (out != NULL) or only hashes (out == NULL) one layer of a docker
 * archive, checking the tar's sha256 against its diff_id when one is known.
 */
static int docker_layer(struct wh_layer_inv **out, wh_tarindex *x, size_t idx, const char *name,
                        const char *diff, const struct wh_scan_opts *opts, uint64_t *total)
{
    struct wh_tarindex_entry ent;
    struct wh_digest want, got;
    struct hashing_reader hr = {NULL, NULL};
    struct wh_reader rd;
    int error = 0;
    if (diff && wh_digest_parse(&want, diff, strlen(diff)) < 0)
        return wh_error_set(WH_EINVALID, "diff_id %s is malformed", diff);
    if ((error = wh_tarindex_open_entry(x, idx, &ent, &rd)) < 0)
        return error;
    struct wh_reader hashed = {hashing_read, &hr, rd.size, NULL};
    hr.inner = &rd;
    if (diff)
        hr.h = wh_hasher_new(want.alg);
    struct wh_reader *src = diff ? &hashed : &rd;
    char block[65536];
    if (out)
        error = wh_layer_walk_tar(out, src, opts, total);
    if (diff && error != WH_ETOOBIG) {
        ssize_t n;
        while ((n = src->read(src->ctx, block, sizeof(block))) > 0)
            ;
        wh_hasher_final(&got, hr.h);
        if (n < 0 || strcmp(got.str, want.str) != 0) {
            if (out && error == 0) {
                wh_layer_inv_free(*out);
                *out = NULL;
            }
            error = wh_error_set(WH_EINVALID, "layer %s does not match its digest (diff_id) %s", name, diff);
        }
    }
    wh_hasher_free(hr.h);
    return error;
}

/* Before a cached inventory stands for a layer, the layer must be the one named. */
static int verify_cached(const struct wh_blob_source *src, wh_tarindex *archive, const struct layer_list *ll,
                         size_t i, const struct wh_scan_opts *opts)
{
    if (opts->trusted_store || !ll->digests[i])
        return 0;
    if (src)
        return blob_verify(src, ll->digests[i]);
    return docker_layer(NULL, archive, ll->entries[i], ll->paths[i], ll->digests[i], opts, NULL);
}

/* The layers of one image, read by a few threads; results land in per-layer slots. */
struct layer_job {
    const struct layer_list *ll;
    const struct wh_blob_source *src; /* NULL: layers come from the docker archive */
    wh_tarindex *archive;
    const struct wh_scan_opts *opts;
    struct wh_layer_inv **layers;
    int *errors;
    char (*msgs)[400];
    bool *cached;
    uint64_t *totals; /* decompressed bytes per layer */
    size_t next;      /* next layer to take, under lock */
    bool failed;      /* stop taking layers once one failed */
    bool side_hash;   /* fewer layers than threads: hash each beside its inflation */
    pthread_mutex_t lock;
};

/* Inventories layer i: from the cache once the layer is verified, else by reading it. */
static void do_layer(struct layer_job *j, size_t i)
{
    const struct layer_list *ll = j->ll;
    int error;
    uint64_t total = 0;
    /* A layer already inventoried (this image or another) is not decompressed again. */
    if ((j->layers[i] = cache_get(j->opts, ll->keys[i]))) {
        j->cached[i] = true;
        error = verify_cached(j->src, j->archive, ll, i, j->opts);
    } else {
        if (j->src)
            error = layer_from_blob(&j->layers[i], j->src, ll->digests[i], j->opts, j->side_hash,
                                    &total);
        else
            error = docker_layer(&j->layers[i], j->archive, ll->entries[i], ll->paths[i], ll->digests[i],
                                 j->opts, &total);
        if (error == 0)
            cache_put(j->opts, ll->keys[i], j->layers[i]);
    }
    j->totals[i] = total;
    j->errors[i] = error;
    if (error < 0)
        snprintf(j->msgs[i], sizeof(j->msgs[i]), "%s", wh_error_msg()); /* messages are per thread */
}

static void *layer_worker(void *arg)
{
    struct layer_job *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->lock);
        size_t i = j->failed ? j->ll->n : j->next++;
        pthread_mutex_unlock(&j->lock);
        if (i >= j->ll->n)
            return NULL;
        do_layer(j, i);
        if (j->errors[i] < 0) {
            pthread_mutex_lock(&j->lock);
            j->failed = true;
            pthread_mutex_unlock(&j->lock);
        }
    }
}

/*
 * Reads every layer of the list (from `src`, or from the docker archive
 * `archive`) into layers[], or takes its inventory from the cache. Layers are
 * independent until the merge, so a few threads read them at once; each layer
 * is capped at max_total on its own and the sum is checked at the end. The
 * first failing layer in image order is the one reported.
 */
static int read_layers(struct wh_layer_inv **layers, size_t *nl, const struct layer_list *ll,
                       const struct wh_blob_source *src, wh_tarindex *archive, struct wh_scan_opts *opts,
                       uint64_t *total)
{
    size_t n = ll->n;
    struct layer_job j = {.ll = ll, .src = src, .archive = archive, .opts = opts, .layers = layers};
    unsigned threads = opts->threads ? opts->threads : 2;
    pthread_t tid[8];
    size_t started = 0;
    int error = 0;

    if (n == 0)
        return 0;
    j.errors = wh_calloc(n, sizeof(*j.errors));
    j.msgs = wh_calloc(n, sizeof(*j.msgs));
    j.cached = wh_calloc(n, sizeof(*j.cached));
    j.totals = wh_calloc(n, sizeof(*j.totals));
    pthread_mutex_init(&j.lock, NULL);
    if (threads > 8)
        threads = 8;
    if (archive && wh_tarindex_serial(archive))
        threads = 1; /* a compressed archive is read by one forward pass at a time */
    /* with a core to spare (fewer layers than threads), each layer's digest is checked
     * by a thread of its own beside the one inflating it */
    j.side_hash = n < threads;
    for (unsigned t = 1; t < threads && t < n; t++)
        if (pthread_create(&tid[started], NULL, layer_worker, &j) == 0)
            started++;
    layer_worker(&j);
    for (size_t t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    pthread_mutex_destroy(&j.lock);

    for (size_t i = 0; i < n && !error; i++)
        if (j.errors[i] < 0)
            error = wh_error_set(j.errors[i], "layer %zu (%s): %s", i + 1,
                                 ll->paths[i] ? ll->paths[i] : ll->digests[i], j.msgs[i]);
    for (size_t i = 0; i < n; i++) {
        *total += j.totals[i];
        if (layers[i] && j.errors[i] == 0) {
            if (j.cached[i])
                opts->layers_cached++;
            else
                opts->layers_read++;
        }
    }
    if (!error && *total > opts->max_total)
        error = wh_error_set(WH_ETOOBIG, "image is over the cap of %llu decompressed bytes",
                             (unsigned long long)opts->max_total);
    if (!error)
        *nl = n;
    free(j.errors);
    free(j.msgs);
    free(j.cached);
    free(j.totals);
    return error;
}

static void scan_defaults(struct wh_scan_opts *opts)
{
    if (!opts->max_entry)
        opts->max_entry = 256u << 20;
    if (!opts->max_total)
        opts->max_total = 32ull << 30;
    opts->layers_read = opts->layers_cached = 0;
    opts->image_digest[0] = '\0';
}

int wh_scan_image(struct wh_inventory **out, const struct wh_blob_source *src, const char *manifest_digest,
                  struct wh_scan_opts *opts)
{
    struct layer_list *ll = wh_calloc(1, sizeof(*ll));
    struct wh_layer_inv **layers = NULL;
    uint64_t total = 0;
    size_t nl = 0;
    int error;

    scan_defaults(opts);
    if ((error = manifest_resolve(ll, src, manifest_digest, opts)) < 0)
        goto out;
    layers = wh_calloc(ll->n ? ll->n : 1, sizeof(*layers));
    if ((error = read_layers(layers, &nl, ll, src, NULL, opts, &total)) < 0)
        goto out;
    *out = wh_inventory_new();
    wh_layers_merge(*out, layers, nl);
out:
    for (size_t i = 0; layers && i < ll->n; i++)
        wh_layer_inv_free(layers[i]);
    free(layers);
    layer_list_free(ll);
    free(ll);
    return error;
}

/* ---- entry point ---- */

int wh_scan_inventory(struct wh_inventory **out, const char *target, struct wh_scan_opts *opts)
{
    struct layer_list *ll = wh_calloc(1, sizeof(*ll));
    struct wh_layer_inv **layers = NULL;
    struct wh_inventory *inv = NULL;
    uint64_t total = 0;
    size_t nl = 0;
    char *spec = wh_strdup(target);
    wh_tarindex *archive = NULL;
    int error = 0;

    scan_defaults(opts);
    enum { T_OCI, T_DOCKER, T_ROOTFS, T_INVENTORY } kind;
    char *arg;
    if (strncmp(spec, "oci:", 4) == 0) {
        kind = T_OCI;
        arg = spec + 4;
    } else if (strncmp(spec, "docker-archive:", 15) == 0) {
        kind = T_DOCKER;
        arg = spec + 15;
    } else if (strncmp(spec, "rootfs:", 7) == 0) {
        kind = T_ROOTFS;
        arg = spec + 7;
    } else if (strncmp(spec, "inventory:", 10) == 0) {
        kind = T_INVENTORY;
        arg = spec + 10;
    } else {
        error = wh_error_set(WH_EINVALID,
                             "unknown target %s: use oci:DIR[:TAG], docker-archive:FILE, rootfs:DIR "
                             "or inventory:FILE", target);
        goto out;
    }
    if (!*arg) {
        error = wh_error_set(WH_EINVALID, "target %s names no path", target);
        goto out;
    }
    if (kind == T_INVENTORY) {
        /* A saved inventory: matching it again reads no layer at all. */
        struct wh_buf b;
        json_t *j = NULL;
        if ((error = slurp(&b, arg, 256u << 20)) < 0) {
            if (error == WH_ENOTFOUND)
                wh_error_set(error, "inventory:%s: no such file", arg);
            goto out;
        }
        if ((error = load_json(&j, b.data, b.len, arg)) == 0)
            error = wh_inventory_from_json(&inv, j);
        const char *dg = json_string_value(json_object_get(j, "image_digest"));
        snprintf(opts->image_digest, sizeof(opts->image_digest), "%s", dg ? dg : "");
        json_decref(j);
        wh_buf_dispose(&b);
        if (error < 0)
            goto out;
        *out = inv;
        inv = NULL;
        goto out;
    }
    if (kind == T_ROOTFS) {
        struct stat st;
        if (stat(arg, &st) < 0 || !S_ISDIR(st.st_mode)) {
            error = wh_error_set(WH_ENOTFOUND, "rootfs:%s: no such directory", arg);
            goto out;
        }
        layers = wh_calloc(1, sizeof(*layers));
        if ((error = wh_layer_walk_dir(&layers[0], arg, opts, &total)) < 0)
            goto out;
        nl = 1;
        opts->layers_read = 1;
    } else {
        char *dir = arg;
        if (kind == T_OCI) {
            /* oci:DIR:TAG -- the tag is after the last ':' unless that leaves a missing dir. */
            char *tag = NULL, *colon = strrchr(arg, ':');
            struct stat st;
            if (colon && stat(arg, &st) < 0) {
                *colon = '\0';
                tag = colon + 1;
            }
            error = oci_resolve(ll, dir, tag && *tag ? tag : NULL, opts);
        } else {
            error = docker_resolve(ll, &archive, arg, opts);
        }
        if (error < 0) {
            /* Every message names the target it is about. */
            if (strncmp(wh_error_msg(), kind == T_OCI ? "oci:" : "docker-archive:",
                        kind == T_OCI ? 4 : 15) != 0) {
                char msg[400];
                snprintf(msg, sizeof(msg), "%s", wh_error_msg());
                wh_error_set(error, "%s: %s", target, msg);
            }
            goto out;
        }
        layers = wh_calloc(ll->n ? ll->n : 1, sizeof(*layers));
        struct wh_blob_source src = {layout_open, wh_blob_file_read, wh_blob_file_close, dir};
        if ((error = read_layers(layers, &nl, ll, kind == T_OCI ? &src : NULL, archive, opts, &total)) < 0)
            goto out;
    }
    inv = wh_inventory_new();
    wh_layers_merge(inv, layers, nl);
    *out = inv;
    inv = NULL;
out:
    for (size_t i = 0; layers && i < (ll->n ? ll->n : 1); i++)
        wh_layer_inv_free(layers[i]);
    free(layers);
    layer_list_free(ll);
    free(ll);
    free(spec);
    wh_tarindex_free(archive);
    wh_inventory_free(inv);
    return error;
}
