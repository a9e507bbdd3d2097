/*
 * scan: the vulnerability scanner as a library. It reads an image (OCI layout,
 * `docker save` tarball or a root filesystem directory) layer by layer, finds
 * the OS and the installed packages, keeps one inventory per layer, merges them
 * with whiteouts applied, and matches the result against a SQLite
 * vulnerability database imported from public feeds (Debian tracker, Alpine
 * secdb, OSV, NVD). It has no HTTP in it; the registry and the CLI call it.
 * Version ordering lives in scan/version.h.
 */
#ifndef WH_SCAN_H
#define WH_SCAN_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/common.h"

/* ---- inventory ---- */

enum wh_pkg_kind {
    WH_PKG_DPKG,
    WH_PKG_APK,
    WH_PKG_RPM,
    WH_PKG_NPM,
    WH_PKG_PYPI,
    WH_PKG_GO,
    WH_PKG_MAVEN,
    WH_PKG_KIND_COUNT
};

/* One installed package. Strings belong to the inventory's pool. */
struct wh_pkg {
    enum wh_pkg_kind kind;
    const char *name;        /* binary package, module path, groupId:artifactId */
    const char *version;     /* installed version, as the package manager writes it */
    const char *src_name;    /* source package (dpkg Source:, apk origin, rpm SOURCERPM) */
    const char *src_version; /* source version (epoch kept) */
    const char *arch;        /* may be NULL */
    const char *path;        /* file that declared the package, no leading '/' */
};

/* What the OS detectors found. Empty strings when unknown. */
struct wh_os {
    char family[32];   /* "debian", "ubuntu", "alpine", "rhel", "rocky", "fedora", ... */
    char version[64];  /* "12.11", "22.04", "3.18.4", "9.3" */
    char codename[32]; /* "bookworm", "jammy"; may be empty */
    char name[128];    /* PRETTY_NAME when known */
};

struct wh_inventory {
    struct wh_os os;
    struct wh_pkg *pkgs; /* sorted by kind, name, version */
    size_t npkgs;
    size_t cap;
    wh_pool *pool; /* owns every string above */
};

/* An empty inventory; free with wh_inventory_free (which accepts NULL). */
struct wh_inventory *wh_inventory_new(void);
void wh_inventory_free(struct wh_inventory *inv);
/* Adds a package; strings are copied into the inventory's pool. NULL src_* mean "same as binary". */
void wh_inventory_add(struct wh_inventory *inv, const struct wh_pkg *p);
/* Sorts and drops exact duplicates (same kind, name, version, path). */
void wh_inventory_sort(struct wh_inventory *inv);

/* ---- reading images ---- */

/* Limits applied while reading layers (0 = default). */
struct wh_scan_opts {
    uint64_t max_entry;     /* largest file a cataloger may read (default 256 MiB) */
    uint64_t max_total;     /* decompressed bytes over the whole image (default 32 GiB) */
    unsigned max_ratio;     /* a layer may decompress to this many times its compressed size,
                               plus 64 MiB (default 2048; deflate's own limit is about 1032) */
    const char *cache_dir;  /* per-layer inventories by layer digest; NULL = no cache */
    bool trusted_store;     /* blob names are digests verified on upload (the registry's
                               store): a cached layer is used without hashing it again */
    unsigned threads;       /* layers read at the same time (0 = 2; 1 = one after another) */
    const char *platform;   /* image picked from an index: "os/arch[/variant]", NULL = linux/amd64;
                               set, a single image must be of it (WH_ENOTFOUND otherwise) */
    unsigned layers_read;   /* out: layers actually decompressed (not served from cache) */
    unsigned layers_cached; /* out: layers whose inventory came from the cache */
    char image_digest[WH_DIGEST_STR_MAX]; /* out: manifest digest when the target has one */
};

/*
 * Reads the target and builds its merged inventory. `target` is
 * "oci:DIR[:TAG]", "docker-archive:FILE", "rootfs:DIR" or "inventory:FILE"
 * (an inventory saved as JSON: nothing is read but that file). Returns 0,
 * WH_ENOTFOUND (no such target or tag), WH_EINVALID (unreadable layout or
 * layer), WH_ETOOBIG (a cap was hit) or WH_ERROR. `*out` is the caller's; free
 * with wh_inventory_free.
 */
int wh_scan_inventory(struct wh_inventory **out, const char *target, struct wh_scan_opts *opts);

/*
 * Where an image's blobs come from: an OCI layout, a directory of pulled
 * blobs, or the registry's store (whatever its driver: files or an object
 * store). Blobs are streams; the scanner never needs a file descriptor.
 */
struct wh_blob_source {
    /* Opens the blob named `digest` for reading into `*handle`: 0, or
     * WH_ENOTFOUND / WH_ERROR (with wh_error_set). */
    int (*open)(void **handle, void *payload, const struct wh_digest *digest);
    /* Reads up to `n` bytes: how many, 0 at the end, < 0 on an error. */
    long (*read)(void *handle, void *buf, size_t n);
    /* Closes what open gave. */
    void (*close)(void *handle);
    void *payload;
};

/*
 * For sources whose blobs are files: a handle reading the open file `fd`
 * (taken over), and the read and close functions of such handles.
 */
void *wh_blob_file_handle(int fd);
long wh_blob_file_read(void *handle, void *buf, size_t n);
void wh_blob_file_close(void *handle);

/*
 * Reads the image whose manifest (or image index: linux/amd64 is picked) has
 * `manifest_digest` in `src`, layer by layer, and builds its merged inventory.
 * Returns as wh_scan_inventory; `*out` is the caller's.
 */
int wh_scan_image(struct wh_inventory **out, const struct wh_blob_source *src,
                  const char *manifest_digest, struct wh_scan_opts *opts);

/*
 * The merged inventory as JSON and back, so a scan can store it and match it
 * again after a database update without reading any layer. from_json returns
 * 0 or WH_EINVALID; `*out` is the caller's.
 */
json_t *wh_inventory_to_json(const struct wh_inventory *inv);
int wh_inventory_from_json(struct wh_inventory **out, const json_t *j);

/*
 * The compact line form the registry stores for re-matching (about a third
 * of the JSON's size, read without a JSON parser). to_text returns malloc'ed
 * bytes (length in `*len`); from_text returns 0 or WH_EINVALID, `*out` the
 * caller's.
 */
char *wh_inventory_to_text(const struct wh_inventory *inv, size_t *len);
int wh_inventory_from_text(struct wh_inventory **out, const char *text, size_t len);

/* ---- vulnerability database ---- */

typedef struct wh_vulndb wh_vulndb;

/* Opens an existing database read-only. WH_ENOTFOUND when the file is missing. */
int wh_vulndb_open(wh_vulndb **out, const char *path);
/* Closes the database (NULL is fine). One open database may serve several threads' matchers. */
void wh_vulndb_close(wh_vulndb *db);
/* Number of advisories (0 = empty database). */
int64_t wh_vulndb_count(wh_vulndb *db);
/*
 * The digest of what matching reads from the database (advisories,
 * vulnerability records, NVD records), in an order of their content: two
 * databases that hold the same records have the same digest, whatever their
 * files' bytes or import times. It reads every row (seconds for the full
 * public feeds). 0 or WH_ERROR.
 */
int wh_vulndb_digest(wh_vulndb *db, struct wh_digest *out);

struct wh_vulndb_stats {
    uint64_t files;      /* input files read */
    uint64_t advisories; /* advisory rows written */
    uint64_t vulns;      /* vulnerability records (titles, CVSS) written */
};

/*
 * Imports the given files or directories (Debian tracker JSON, Alpine secdb
 * JSON, OSV JSON records, directories or .zip of them, NVD CVE API 2.0 JSON)
 * into the database at `dbpath`: the current content is copied to a new file,
 * the imports are applied there and the new file is renamed over the old one,
 * so readers see the old or the new database, never half of one. Returns 0,
 * WH_ENOTFOUND, WH_EINVALID (a file in no known format) or WH_ERROR; on failure
 * the old database is untouched.
 */
int wh_vulndb_import(const char *dbpath, const char *const *paths, size_t npaths,
                     struct wh_vulndb_stats *stats);

/* Writes a human-readable status (sources, counts, last import) to `f`. */
int wh_vulndb_status(const char *dbpath, FILE *f);

#define WH_VULNDB_SOURCES_MAX 16
#define WH_VULNDB_TIME_MAX 40
/* One feed format imported into the database (debian-tracker, alpine-secdb, osv, nvd). */
struct wh_vulndb_source {
    char name[32];
    int64_t files;                        /* files read by its last import */
    int64_t records;                      /* rows it holds (advisories, or NVD records) */
    char imported_at[WH_VULNDB_TIME_MAX]; /* its last import, UTC ISO 8601 */
};
/* What `wharf vulndb status` shows, as data. */
struct wh_vulndb_info {
    char updated_at[WH_VULNDB_TIME_MAX]; /* the last import or update, UTC ISO 8601 ("" unknown) */
    int64_t advisories;                  /* package advisories */
    int64_t nvd_records;                 /* NVD CVE records (descriptions, CVSS) */
    size_t nsources;                     /* at most WH_VULNDB_SOURCES_MAX, by name */
    struct wh_vulndb_source sources[WH_VULNDB_SOURCES_MAX];
};
/*
 * Reads the status of the database at `dbpath` into `out` (what an older
 * database does not record counts as empty). 0, WH_ENOTFOUND (no database
 * yet) or WH_ERROR (it cannot be opened).
 */
int wh_vulndb_info(const char *dbpath, struct wh_vulndb_info *out);
/* The built-in public feed list that `vulndb update` uses when none is configured. */
const char *const *wh_vulndb_default_feeds(size_t *n);

/*
 * Downloads each feed URL (libcurl, bounded size and time) into a temp dir and
 * imports them all atomically. NULL/0 feeds = the built-in public feed list.
 * Returns 0, or WH_ERROR with a message naming the feed that failed and why.
 */
int wh_vulndb_update(const char *dbpath, const char *const *urls, size_t nurls,
                     struct wh_vulndb_stats *stats);

/*
 * The feed URLs used when none are named: WHARF_VULNDB_FEEDS, else the lines
 * of DATA_DIR/vulndb-feeds.txt ('#' starts a comment); whitespace-separated,
 * malloc'ed (the caller's). NULL when neither is set (the built-in list).
 */
char *wh_vulndb_feed_list(const char *data_dir);
/*
 * wh_vulndb_update with the feeds of wh_vulndb_feed_list (what `wharf vulndb
 * update` and the server's background update both run). Returns as
 * wh_vulndb_update.
 */
int wh_vulndb_update_configured(const char *dbpath, const char *data_dir,
                                struct wh_vulndb_stats *stats);

/* ---- matching ---- */

enum wh_severity {
    WH_SEV_UNKNOWN = 0,
    WH_SEV_NEGLIGIBLE,
    WH_SEV_LOW,
    WH_SEV_MEDIUM,
    WH_SEV_HIGH,
    WH_SEV_CRITICAL,
};
const char *wh_severity_name(enum wh_severity s); /* "Unknown", "Negligible", ... */
/* Case-insensitive name -> severity; WH_EINVALID when unknown. */
int wh_severity_parse(enum wh_severity *out, const char *s);
/* NVD buckets: >=9 Critical, >=7 High, >=4 Medium, >0 Low, else Unknown. */
enum wh_severity wh_severity_from_score(double score);

/* CVSS v3.x base score of a vector ("CVSS:3.1/AV:N/..."); WH_EINVALID if malformed. */
int wh_cvss3_score(double *out, const char *vector);

struct wh_finding {
    const char *id;          /* CVE-…, GHSA-…, DEBIAN-CVE-… */
    const char *aliases;     /* JSON array text, "[]" when none */
    const struct wh_pkg *pkg; /* borrowed from the inventory */
    const char *fixed;       /* "" when no fix */
    const char *status;      /* fixed, affected, will_not_fix, fix_deferred, end_of_life */
    enum wh_severity severity;
    const char *cvss_vector; /* "" when unknown */
    double cvss_score;       /* 0 when unknown */
    const char *cvss_source; /* who rated it: "nvd", "ghsa", "osv"; "" when unknown */
    const char *title;
    const char *description;
    const char *links;       /* JSON array text */
    const char *cwes;        /* JSON array text */
    const char *source;      /* data source: debian, alpine, osv */
    const char *item_json;   /* the report item without artifact_digests, as compact JSON
                                text missing its closing brace (wh_match_memoized keeps it;
                                NULL otherwise) */
};

struct wh_findings {
    struct wh_finding *items;
    size_t n, cap;
    wh_pool *pool;
};
/* Frees findings (NULL is fine); the packages they point at belong to the inventory. */
void wh_findings_free(struct wh_findings *f);

/*
 * Matches an inventory against the database. Returns 0 or WH_ERROR; `*out` is
 * the caller's (free with wh_findings_free) and borrows packages from `inv`.
 */
int wh_match(struct wh_findings **out, wh_vulndb *db, const struct wh_inventory *inv);

/*
 * Matching many inventories against one database (re-matching): the findings
 * of each distinct package (with its platform) are looked up once and
 * remembered. wh_match_memo_new returns 0 or WH_ERROR; the memo is the
 * caller's (wh_match_memo_free, NULL is fine), used by one thread at a time,
 * and must outlive the findings wh_match_memoized gives (they share its strings).
 * wh_match_memoized returns as wh_match.
 */
typedef struct wh_match_memo wh_match_memo;
int wh_match_memo_new(wh_match_memo **out, wh_vulndb *db);
void wh_match_memo_free(wh_match_memo *mm);
int wh_match_memoized(struct wh_findings **out, wh_match_memo *mm, const struct wh_inventory *inv);

/* ---- reports ---- */

#define WH_REPORT_MIME "application/vnd.security.vulnerability.report; version=1.1"
#define WH_SCANNER_NAME "wharf"
#define WH_SCANNER_VERSION "0.1.0"

/* Keeps only findings whose severity bit (1 << sev) is set in `mask`. */
void wh_findings_filter(struct wh_findings *f, unsigned mask);

/* Vulnerability report (Harbor's generic 1.1 shape, without the mime key). New reference. */
json_t *wh_report_json(const struct wh_findings *f, const char *artifact_digest);
/* The same report as JSON text (malloc'ed), built from the findings' item_json when
 * they have it: what a re-match writes for thousands of images. */
char *wh_report_text(const struct wh_findings *f, const char *artifact_digest);
/* A finding's report item without artifact_digests and without its closing brace
 * (see item_json); malloc'ed. */
char *wh_report_item_json(const struct wh_finding *x);
/* Scan overview summary (Harbor's scan_overview): {"total", "fixable", "summary": {"Critical": n, ...}}
 * with a key only for severities that occur. New reference. */
json_t *wh_report_summary(const struct wh_findings *f);
/* A hash of the findings (ids, packages, versions, fixes, severities, scores) as hex,
 * cut to `cap` - 1 characters (32 at most): equal findings, equal fingerprints. */
void wh_findings_fingerprint(const struct wh_findings *f, char *out, size_t cap);
/* CycloneDX 1.5 JSON SBOM of the inventory. New reference. */
json_t *wh_report_cyclonedx(const struct wh_inventory *inv, const char *target);
/* Plain-text table, one line per finding. */
void wh_report_table(FILE *out, const struct wh_findings *f, const struct wh_inventory *inv);
/* Package URL of a package (pool-allocated from `inv`). */
const char *wh_pkg_purl(const struct wh_inventory *inv, const struct wh_pkg *p);

#endif
