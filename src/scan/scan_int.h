/*
 * scan_int.h: declarations shared by the files of the scan module only. The
 * layer walkers hand every interesting file to a cataloger, which records what
 * it found in a per-layer inventory keyed by the declaring file's path; layers
 * are then merged bottom to top with whiteouts applied to those keys.
 */
#ifndef WH_SCAN_INT_H
#define WH_SCAN_INT_H

#include <sys/types.h>

#include "scan/scan.h"

struct archive_entry;

/* What a file is to the catalogers. */
enum wh_cat {
    WH_CAT_NONE = 0,
    WH_CAT_OSFILE,     /* etc/os-release and friends: content kept */
    WH_CAT_DPKG,       /* var/lib/dpkg/status, status.d/<pkg> */
    WH_CAT_APK,        /* lib/apk/db/installed */
    WH_CAT_RPM_SQLITE, /* rpmdb.sqlite */
    WH_CAT_RPM_BDB,    /* Packages (Berkeley DB hash) */
    WH_CAT_RPM_NDB,    /* Packages.db (NDB) */
    WH_CAT_NPM,        /* node_modules/<pkg>/package.json */
    WH_CAT_NPM_LOCK,   /* package-lock.json */
    WH_CAT_PYTHON,     /* *.dist-info/METADATA, *.egg-info[/PKG-INFO] */
    WH_CAT_PYEGG,      /* a zipped *.egg: EGG-INFO/PKG-INFO inside */
    WH_CAT_JAR,        /* .jar .war .ear .par */
    WH_CAT_GOBIN,      /* any executable: maybe a Go binary */
};

/* Results a layer's file declared: packages, or an OS file's content. */
struct wh_layer_rec {
    const char *path;   /* normalised, no leading '/' */
    enum wh_cat cat;
    const char *content; /* OS files only; NUL-terminated */
    struct wh_pkg *pkgs;
    size_t npkgs, cap;
};

/* The inventory of one layer before merging. */
struct wh_layer_inv {
    wh_pool *pool;
    struct wh_layer_rec *recs;
    size_t nrecs, cap;
    const char **whiteouts; /* paths a `.wh.` entry removes from lower layers */
    size_t nwh, capwh;
    const char **opaques; /* directories a `.wh..wh..opq` empties of lower content */
    size_t nop, capop;
};

struct wh_layer_inv *wh_layer_inv_new(void);
void wh_layer_inv_free(struct wh_layer_inv *li);
/* Starts a record for `path` (copied). Borrowed from `li`. */
struct wh_layer_rec *wh_layer_rec_add(struct wh_layer_inv *li, const char *path, enum wh_cat cat);
/* Adds a package to a record; strings are copied. NULL src_* = binary's. */
void wh_layer_rec_pkg(struct wh_layer_inv *li, struct wh_layer_rec *r, const struct wh_pkg *p);

/* Serialises a layer inventory for the per-layer cache, and back. */
json_t *wh_layer_inv_to_json(const struct wh_layer_inv *li);
int wh_layer_inv_from_json(struct wh_layer_inv **out, const json_t *j);

/* A stream a cataloger pulls bytes from: returns bytes read, 0 at end, <0 on error. */
struct wh_reader {
    ssize_t (*read)(void *ctx, void *buf, size_t n);
    void *ctx;
    int64_t size; /* declared size, -1 when unknown */
    /* optional: moves forward up to n bytes without reading them; returns how many (0: read instead) */
    int64_t (*skip)(void *ctx, int64_t n);
};

/*
 * A tar archive read from `rd` (tarstream.c): decompressed once when it is
 * gzip, zstd, xz or bzip2 (a tar compressed twice is refused), capped at
 * `max_out` decompressed bytes and, when `ratio` is not 0, at `ratio` times
 * the compressed bytes read plus 64 MiB. A tar without padding or the
 * end-of-archive blocks after its last entry is read like a complete one.
 * `what` ("docker-archive:FILE") starts every message and must outlive the
 * stream; NULL for a layer, which its caller names.
 * wh_tar_open returns 0, WH_EINVALID or WH_ETOOBIG; free with wh_tar_free.
 */
#define WH_SCAN_RATIO_DEFAULT 2048
typedef struct wh_tar wh_tar;
int wh_tar_open(wh_tar **out, struct wh_reader *rd, const char *what, uint64_t max_out, uint64_t ratio);
void wh_tar_free(wh_tar *t);
/* The next entry header: 0, 1 at the end of the archive, or WH_EINVALID / WH_ETOOBIG (message set). */
int wh_tar_next(wh_tar *t, struct archive_entry **e);
/* Where the current entry's data starts in the decompressed stream. */
uint64_t wh_tar_offset(const wh_tar *t);
/* Decompressed bytes produced so far. */
uint64_t wh_tar_bytes(const wh_tar *t);
/* True when the stream was compressed. */
bool wh_tar_compressed(const wh_tar *t);
/* Reads the current entry's data (a wh_reader read function; ctx is the wh_tar). -1 with the message set. */
ssize_t wh_tar_read(void *ctx, void *buf, size_t n);
/* The failure that stopped the stream (a cap, damaged compressed data), re-set as the message; 0 if none. */
int wh_tar_error(const wh_tar *t);

/*
 * An index of a tar file's entries (tarindex.c), built by reading it once
 * under the caps (`max_out` decompressed bytes, `ratio` as for wh_tar_open,
 * also the budget of every later pass over a compressed archive). `what`
 * ("docker-archive:FILE") starts every message. Returns 0, WH_ENOTFOUND (no
 * file), WH_EINVALID or WH_ETOOBIG; free with wh_tarindex_free (NULL is fine).
 */
typedef struct wh_tarindex wh_tarindex;
int wh_tarindex_open(wh_tarindex **out, const char *file, const char *what, uint64_t max_out, uint64_t ratio);
void wh_tarindex_free(wh_tarindex *x);
/*
 * Finds the regular file `name`, following symbolic and hard links inside the
 * archive (resolved against its root, never outside it). Returns 0 with *idx,
 * WH_ENOTFOUND, or WH_EINVALID (not a file, a dangling link, a loop).
 */
int wh_tarindex_find(const wh_tarindex *x, const char *name, size_t *idx);
/* Declared size of entry idx. */
uint64_t wh_tarindex_size(const wh_tarindex *x, size_t idx);
/* True when entries can only be read one at a time (a compressed archive). */
bool wh_tarindex_serial(const wh_tarindex *x);
/* Where an open entry is read from (the caller's storage, valid while `rd` is used). */
struct wh_tarindex_entry {
    int fd;
    uint64_t pos, end;
};
/*
 * Opens entry idx for reading through `rd`: a byte range of an uncompressed
 * archive (any thread), or a new pass over a compressed one (one caller at a
 * time, the previous entry's reader becomes invalid). Returns 0, WH_ETOOBIG
 * (the budget of decompressed bytes is spent) or WH_EINVALID.
 */
int wh_tarindex_open_entry(wh_tarindex *x, size_t idx, struct wh_tarindex_entry *r, struct wh_reader *rd);

/*
 * Normalises a path from a layer as a container runtime resolves it inside
 * the image's root: strips leading "/" and "./", drops "." components and
 * repeated slashes, and resolves ".." lexically ("a/../b" is "b"); a ".." at
 * the root stays at the root, so the result never leaves it ("../etc/x" is
 * "etc/x", with *climbed set when `climbed` is not NULL). Returns 0, or
 * WH_EINVALID when the path is empty, names the root itself or does not fit
 * in `cap` bytes (`out`).
 */
int wh_path_clean(char *out, size_t cap, const char *in, bool *climbed);

/* Which cataloger wants `path` (normalised), given its mode bits. */
enum wh_cat wh_catalog_classify(const char *path, unsigned mode);
/* What happens to a file longer than its cap. */
enum wh_cap_mode {
    WH_CAP_ERROR,    /* the scan fails with WH_ETOOBIG (package databases) */
    WH_CAP_TRUNCATE, /* the first `cap` bytes are enough (headers) */
    WH_CAP_SKIP,     /* the file is ignored with a warning */
};
/* How many bytes of such a file are read, and what a longer one means. */
size_t wh_catalog_cap(enum wh_cat cat, const struct wh_scan_opts *opts, enum wh_cap_mode *mode);

/*
 * Parses one file already read into memory (`len` bytes, NUL-terminated) and
 * records its results in `li`. Returns 0; malformed package databases are
 * reported as WH_EINVALID only when nothing at all can be read from them.
 */
int wh_catalog_parse(struct wh_layer_inv *li, enum wh_cat cat, const char *path, const char *data,
                     size_t len, const struct wh_scan_opts *opts);
/* Streams an executable looking for Go build information. */
int wh_catalog_gobin(struct wh_layer_inv *li, const char *path, struct wh_reader *rd);

/* Catalogers (files under catalog/). Each returns 0, or WH_EINVALID for garbage. */
int wh_catalog_dpkg(struct wh_layer_inv *li, const char *path, const char *data, size_t len);
int wh_catalog_apk(struct wh_layer_inv *li, const char *path, const char *data, size_t len);
int wh_catalog_rpm(struct wh_layer_inv *li, enum wh_cat cat, const char *path, const char *data,
                   size_t len);
int wh_catalog_npm(struct wh_layer_inv *li, const char *path, const char *data, size_t len,
                   bool lockfile);
int wh_catalog_python(struct wh_layer_inv *li, const char *path, const char *data, size_t len);
int wh_catalog_pyegg(struct wh_layer_inv *li, const char *path, const char *data, size_t len);
int wh_catalog_jar(struct wh_layer_inv *li, const char *path, const char *data, size_t len,
                   int depth);
/* Decodes one RPM header blob (as stored in an rpmdb) into a package. */
int wh_rpm_header_parse(struct wh_layer_inv *li, struct wh_layer_rec *r, const unsigned char *blob,
                        size_t len);

/* OS detection over the merged OS files: `get(path)` returns content or NULL. */
void wh_os_detect(struct wh_os *out, const char *(*get)(void *ctx, const char *path), void *ctx);

/*
 * Walks one layer tar (uncompressed, gzip, zstd, xz or bzip2; see wh_tar_open)
 * and catalogs it.
 * `rd` supplies the layer's bytes. `*total` accumulates decompressed bytes and
 * is checked against opts->max_total. Returns 0, WH_EINVALID, WH_ETOOBIG.
 */
int wh_layer_walk_tar(struct wh_layer_inv **out, struct wh_reader *rd, const struct wh_scan_opts *opts,
                      uint64_t *total);
/* Same for a root filesystem directory (symlinks are never followed). */
int wh_layer_walk_dir(struct wh_layer_inv **out, const char *root, const struct wh_scan_opts *opts,
                      uint64_t *total);
/* Merges layers bottom to top into `inv` (whiteouts applied) and detects the OS. */
void wh_layers_merge(struct wh_inventory *inv, struct wh_layer_inv *const *layers, size_t n);

/* The SQLite handle behind an open database (scan module only). */
typedef struct sqlite3 sqlite3;
sqlite3 *wh_vulndb_handle(wh_vulndb *db);
/* PEP 503 name normalisation: lower case, runs of "-_." become one '-'. */
void wh_pypi_normalize(char *out, size_t cap, const char *name);
/* Debian codename -> release number as the tracker's platforms use it ("bookworm" -> "12"), NULL if unknown. */
const char *wh_debian_release_version(const char *codename);
/* OSV ecosystem -> the platform key advisories are stored under ("Debian:12" -> "debian:12"). */
void wh_osv_platform(char *out, size_t cap, const char *ecosystem);

/*
 * Text read from a layer is kept as valid UTF-8 so every JSON form of it
 * (inventory, cache, reports) can be written: wh_utf8_escape copies s[0..n)
 * (up to a NUL) into `pool`, writing each byte that is not part of a valid
 * UTF-8 sequence as the four characters \xNN. Valid text is copied as is.
 */
const char *wh_utf8_escape(wh_pool *pool, const char *s, size_t n);
/* Largest length <= max at which valid UTF-8 text s[0..len) can be cut without splitting a character. */
size_t wh_utf8_cut(const char *s, size_t len, size_t max);
/* A JSON string of `s` (NULL is ""); bytes that are not UTF-8 are escaped as above. Never NULL. */
json_t *wh_json_text(const char *s);

/* Small parsing helpers shared by the catalogers. */
/* Next line of [*p, end): sets line/len, advances *p past the newline; false at end. */
bool wh_next_line(const char **p, const char *end, const char **line, size_t *len);

#endif
