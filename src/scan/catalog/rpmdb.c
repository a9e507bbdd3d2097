/*
 * rpm.c: the RPM package database in its three on-disk forms (bdb Packages,
 * ndb Packages.db, sqlite rpmdb.sqlite), each decoded down to the RPM header blobs it stores:
 *   - SQLite (rpmdb.sqlite, RHEL 9 / Fedora): table Packages(hnum, blob);
 *   - Berkeley DB hash (Packages, RHEL <= 8): blobs are off-page items of
 *     hash pages, read by following overflow page chains;
 *   - NDB (Packages.db, SUSE): a slot table of (pkgidx, blkoff, blkcnt)
 *     pointing at "BlbS" blobs.
 * A header blob (rpm docs/manual/format.md, "header structure" without the
 * 8-byte magic) is: be32 index count, be32 data length, 16-byte index entries
 * (tag, type, offset, count), then the data store. Only NAME, EPOCH,
 * VERSION, RELEASE, ARCH and SOURCERPM are read; gpg-pubkey entries are skipped.
 */
#include "scan/scan_int.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define TAG_NAME 1000
#define TAG_VERSION 1001
#define TAG_RELEASE 1002
#define TAG_EPOCH 1003
#define TAG_ARCH 1022
#define TAG_SOURCERPM 1044
#define TYPE_INT32 4
#define TYPE_STRING 6
#define TYPE_I18NSTRING 9
#define HDR_INDEX_MAX 0x10000
#define HDR_DATA_MAX (256u << 20)

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static uint16_t le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

/* A NUL-terminated string inside the data store, or NULL. */
static const char *hdr_string(const unsigned char *data, uint32_t dl, uint32_t off)
{
    if (off >= dl || !memchr(data + off, '\0', dl - off))
        return NULL;
    return (const char *)data + off;
}

int wh_rpm_header_parse(struct wh_layer_inv *li, struct wh_layer_rec *r, const unsigned char *blob,
                        size_t len)
{
    if (len < 8)
        return wh_error_set(WH_EINVALID, "rpm header blob too short");
    uint32_t il = be32(blob), dl = be32(blob + 4);
    if (il == 0 || il > HDR_INDEX_MAX || dl > HDR_DATA_MAX || 8 + (uint64_t)il * 16 + dl > len)
        return wh_error_set(WH_EINVALID, "rpm header blob has impossible sizes");
    const unsigned char *idx = blob + 8, *data = blob + 8 + (size_t)il * 16;
    const char *name = NULL, *version = NULL, *release = NULL, *arch = NULL, *srpm = NULL;
    int64_t epoch = -1;
    for (uint32_t i = 0; i < il; i++) {
        const unsigned char *e = idx + (size_t)i * 16;
        uint32_t tag = be32(e), type = be32(e + 4), off = be32(e + 8);
        bool str = type == TYPE_STRING || type == TYPE_I18NSTRING;
        switch (tag) {
        case TAG_NAME:
            name = str ? hdr_string(data, dl, off) : NULL;
            break;
        case TAG_VERSION:
            version = str ? hdr_string(data, dl, off) : NULL;
            break;
        case TAG_RELEASE:
            release = str ? hdr_string(data, dl, off) : NULL;
            break;
        case TAG_ARCH:
            arch = str ? hdr_string(data, dl, off) : NULL;
            break;
        case TAG_SOURCERPM:
            srpm = str ? hdr_string(data, dl, off) : NULL;
            break;
        case TAG_EPOCH:
            if (type == TYPE_INT32 && (uint64_t)off + 4 <= dl)
                epoch = be32(data + off);
            break;
        default:
            break;
        }
    }
    if (!name || !version || !release || strcmp(name, "gpg-pubkey") == 0)
        return 0;
    char evr[512], src[256], srcevr[512];
    if (epoch > 0)
        snprintf(evr, sizeof(evr), "%lld:%s-%s", (long long)epoch, version, release);
    else
        snprintf(evr, sizeof(evr), "%s-%s", version, release);
    src[0] = srcevr[0] = '\0';
    if (srpm) {
        /* name-version-release.src.rpm; the binary's epoch is the source's */
        char tmp[256];
        snprintf(tmp, sizeof(tmp), "%s", srpm);
        size_t n = strlen(tmp);
        if (n > 8 && strcmp(tmp + n - 8, ".src.rpm") == 0)
            tmp[n - 8] = '\0';
        else if (n > 10 && strcmp(tmp + n - 10, ".nosrc.rpm") == 0)
            tmp[n - 10] = '\0';
        char *d2 = strrchr(tmp, '-');
        if (d2) {
            *d2 = '\0';
            char *d1 = strrchr(tmp, '-');
            if (d1) {
                *d1 = '\0';
                snprintf(src, sizeof(src), "%s", tmp);
                if (epoch > 0)
                    snprintf(srcevr, sizeof(srcevr), "%lld:%s-%s", (long long)epoch, d1 + 1, d2 + 1);
                else
                    snprintf(srcevr, sizeof(srcevr), "%s-%s", d1 + 1, d2 + 1);
            }
        }
    }
    struct wh_pkg p = {
        .kind = WH_PKG_RPM,
        .name = name,
        .version = evr,
        .src_name = src[0] ? src : NULL,
        .src_version = srcevr[0] ? srcevr : NULL,
        .arch = arch,
    };
    wh_layer_rec_pkg(li, r, &p);
    return 0;
}

/*
 * Work a database file may cost: header bytes decoded are bounded to a
 * multiple of the file's size. In a sound database every stored header is
 * read once; a hostile one can make many entries share one long chain of
 * pages (Berkeley DB overflow pages, NDB blobs, SQLite overflow pages), so
 * that a few MB would cost minutes.
 */
#define READ_FACTOR 4
#define READ_SLACK (1u << 20)

static uint64_t read_budget(size_t len)
{
    return (uint64_t)len * READ_FACTOR + READ_SLACK;
}

/* SQLite's progress handler: stops the statement when the budget of VM steps is spent. */
static int sqlite_progress(void *p)
{
    uint64_t *left = p;
    if (*left == 0)
        return 1;
    (*left)--;
    return 0;
}

#define SQLITE_STEPS_PER_CALL 1000

/*
 * A hostile rpmdb.sqlite is SQL someone else wrote: `Packages` may be a view
 * (a recursive one never ends; one returning zeroblob(1e9) takes a GB), a
 * virtual table, a table whose `blob` column is generated or defaults to an
 * expression. So the file is opened from memory, read-only (no journal, no
 * WAL, no file at all), with views, triggers and extensions disabled,
 * untrusted-schema rules on, no value longer than the file itself, a bounded
 * number of VM steps, and only a plain table with a stored `blob` column is
 * read.
 */
static int rpm_sqlite(struct wh_layer_inv *li, struct wh_layer_rec *r, const char *data, size_t len)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    uint64_t steps = (READ_SLACK + (uint64_t)len) / SQLITE_STEPS_PER_CALL;
    uint64_t bytes_left = read_budget(len);
    int error = 0, rc;

    if (len < 100 || memcmp(data, "SQLite format 3", 16) != 0)
        return wh_error_set(WH_EINVALID, "not an SQLite database");
    if (len > (size_t)INT32_MAX)
        return wh_error_set(WH_EINVALID, "rpmdb.sqlite is too large");
    unsigned char *copy = sqlite3_malloc64(len);
    if (!copy)
        return wh_error_set(WH_ERROR, "out of memory");
    memcpy(copy, data, len);
    /* In-memory databases cannot be in WAL mode: mark the copy as rollback-journal. */
    if (copy[18] == 2)
        copy[18] = 1;
    if (copy[19] == 2)
        copy[19] = 1;
    if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        sqlite3_free(copy);
        error = wh_error_set(WH_ERROR, "cannot open an in-memory database");
        goto out;
    }
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_VIEW, 0, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, (int *)NULL);
    sqlite3_limit(db, SQLITE_LIMIT_LENGTH, (int)len); /* no stored value is longer than the file */
    sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
    sqlite3_progress_handler(db, SQLITE_STEPS_PER_CALL, sqlite_progress, &steps);
    if (sqlite3_deserialize(db, "main", copy, (sqlite3_int64)len, (sqlite3_int64)len,
                            SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_READONLY) != SQLITE_OK) {
        error = wh_error_set(WH_EINVALID, "rpmdb.sqlite cannot be opened");
        goto out;
    }
    /* Only a real table: not a view, not a virtual table, `blob` stored, not computed. */
    rc = sqlite3_prepare_v2(db,
                            "SELECT s.type, s.sql LIKE 'CREATE VIRTUAL%', "
                            "(SELECT count(*) FROM pragma_table_xinfo('Packages') x "
                            " WHERE x.name = 'blob' COLLATE NOCASE AND x.hidden = 0 AND x.dflt_value IS NULL) "
                            "FROM sqlite_schema s WHERE s.name = 'Packages' COLLATE NOCASE",
                            -1, &st, NULL);
    if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
        error = wh_error_set(WH_EINVALID, "rpmdb.sqlite has no Packages table%s%s", rc != SQLITE_OK ? ": " : "",
                             rc != SQLITE_OK ? sqlite3_errmsg(db) : "");
        goto out;
    }
    const char *type = (const char *)sqlite3_column_text(st, 0);
    if (!type || strcmp(type, "table") != 0 || sqlite3_column_int(st, 1) != 0 || sqlite3_column_int(st, 2) != 1) {
        error = wh_error_set(WH_EINVALID, "rpmdb.sqlite: Packages is a %s%s, not a table with a stored blob "
                             "column (refused)", type ? type : "?", sqlite3_column_int(st, 1) ? " (virtual)" : "");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT blob FROM Packages", -1, &st, NULL) != SQLITE_OK) {
        error = wh_error_set(WH_EINVALID, "rpmdb.sqlite: Packages cannot be read: %s", sqlite3_errmsg(db));
        goto out;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *b = sqlite3_column_blob(st, 0);
        int n = sqlite3_column_bytes(st, 0);
        if (n <= 0 || !b)
            continue;
        if ((uint64_t)n > bytes_left) {
            rc = SQLITE_TOOBIG;
            break;
        }
        bytes_left -= (uint64_t)n;
        wh_rpm_header_parse(li, r, b, (size_t)n);
    }
    if (rc != SQLITE_DONE) {
        /* what was read stays; the rest of a database this costly is not worth reading */
        const char *why = rc == SQLITE_INTERRUPT ? "took too many steps"
                          : rc == SQLITE_TOOBIG   ? "holds more data than its size allows"
                                                  : sqlite3_errmsg(db);
        error = wh_error_set(WH_EINVALID, "rpmdb.sqlite: reading Packages stopped (%s) after %zu packages",
                             why, r->npkgs);
    }
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return error;
}

/* ---- Berkeley DB hash ---- */

#define BDB_HASH_MAGIC 0x061561
#define P_HASH_UNSORTED 2
#define P_OVERFLOW 7
#define P_HASH 13
#define H_OFFPAGE 3
#define PAGE_HDR 26

struct bdb {
    const unsigned char *d;
    size_t len;
    uint32_t pagesize, npages;
    bool swap; /* written on a big-endian machine */
};

static uint32_t b32(const struct bdb *b, const unsigned char *p)
{
    return b->swap ? be32(p) : le32(p);
}

static uint16_t b16(const struct bdb *b, const unsigned char *p)
{
    return b->swap ? (uint16_t)(p[0] << 8 | p[1]) : le16(p);
}

static const unsigned char *bdb_page(const struct bdb *b, uint32_t pg)
{
    if (pg >= b->npages)
        return NULL;
    return b->d + (size_t)pg * b->pagesize;
}

/*
 * Follows an overflow chain into `out` (tlen bytes expected), counting each
 * page against `*pages_left`: WH_ETOOBIG once the budget is spent.
 */
static int bdb_overflow(const struct bdb *b, uint32_t pg, uint32_t tlen, struct wh_buf *out,
                        uint64_t *pages_left)
{
    uint32_t hops = 0;
    while (pg && out->len < tlen) {
        const unsigned char *p = bdb_page(b, pg);
        if (!p || p[25] != P_OVERFLOW || ++hops > b->npages)
            return WH_EINVALID;
        if (*pages_left == 0)
            return WH_ETOOBIG;
        (*pages_left)--;
        uint16_t used = b16(b, p + 22);
        if (used > b->pagesize - PAGE_HDR)
            return WH_EINVALID;
        if (wh_buf_put(out, p + PAGE_HDR, used) < 0)
            return WH_ETOOBIG;
        pg = b32(b, p + 16);
    }
    return out->len == tlen ? 0 : WH_EINVALID;
}

static int rpm_bdb(struct wh_layer_inv *li, struct wh_layer_rec *r, const char *data, size_t len)
{
    struct bdb b = {(const unsigned char *)data, len, 0, 0, false};
    if (len < 512)
        return wh_error_set(WH_EINVALID, "Packages is too short for Berkeley DB");
    if (le32(b.d + 12) == BDB_HASH_MAGIC)
        b.swap = false;
    else if (be32(b.d + 12) == BDB_HASH_MAGIC)
        b.swap = true;
    else
        return wh_error_set(WH_EINVALID, "Packages is not a Berkeley DB hash database");
    b.pagesize = b32(&b, b.d + 20);
    if (b.pagesize < 512 || b.pagesize > 65536 || (b.pagesize & (b.pagesize - 1)))
        return wh_error_set(WH_EINVALID, "Berkeley DB page size %u is invalid", b.pagesize);
    b.npages = (uint32_t)(len / b.pagesize);
    /* overflow pages read, all chains together: each belongs to one chain in a sound file */
    uint64_t pages_left = read_budget(len) / b.pagesize;
    for (uint32_t pg = 1; pg < b.npages; pg++) {
        const unsigned char *p = bdb_page(&b, pg);
        if (p[25] != P_HASH && p[25] != P_HASH_UNSORTED)
            continue;
        uint16_t n = b16(&b, p + 20);
        if ((size_t)PAGE_HDR + (size_t)n * 2 > b.pagesize)
            continue;
        /* Index entries alternate key, value; values of rpm headers live off-page. */
        for (uint16_t i = 1; i < n; i += 2) {
            uint16_t off = b16(&b, p + PAGE_HDR + (size_t)i * 2);
            if ((size_t)off + 12 > b.pagesize || p[off] != H_OFFPAGE)
                continue;
            uint32_t opg = b32(&b, p + off + 4), tlen = b32(&b, p + off + 8);
            if (tlen > HDR_DATA_MAX)
                continue;
            struct wh_buf blob;
            wh_buf_init(&blob, tlen);
            int rc = bdb_overflow(&b, opg, tlen, &blob, &pages_left);
            if (rc == 0)
                wh_rpm_header_parse(li, r, (const unsigned char *)blob.data, blob.len);
            wh_buf_dispose(&blob);
            if (rc == WH_ETOOBIG)
                return wh_error_set(WH_EINVALID, "Berkeley DB Packages: its entries share overflow pages "
                                    "(over %llu pages read from a %u-page file); reading stopped after "
                                    "%zu packages", (unsigned long long)(read_budget(len) / b.pagesize),
                                    b.npages, r->npkgs);
        }
    }
    return 0;
}

/* ---- NDB ---- */

#define NDB_MAGIC 0x506d7052  /* "RpmP" little-endian */
#define NDB_SLOT_MAGIC 0x746f6c53 /* "Slot" */
#define NDB_BLOB_MAGIC 0x53626c42 /* "BlbS" */
#define NDB_PAGE 4096
#define NDB_SLOT 16
#define NDB_BLK 16

static int rpm_ndb(struct wh_layer_inv *li, struct wh_layer_rec *r, const char *data, size_t len)
{
    const unsigned char *d = (const unsigned char *)data;
    if (len < NDB_PAGE || le32(d) != NDB_MAGIC || le32(d + 4) != 0)
        return wh_error_set(WH_EINVALID, "Packages.db is not an NDB database");
    uint32_t npages = le32(d + 12);
    uint64_t bytes_left = read_budget(len); /* blob bytes decoded: slots may share one blob */
    if (npages == 0 || (uint64_t)npages * NDB_PAGE > len)
        return wh_error_set(WH_EINVALID, "NDB slot pages out of range");
    for (size_t o = 32; o < (size_t)npages * NDB_PAGE; o += NDB_SLOT) {
        const unsigned char *s = d + o;
        if (le32(s) != NDB_SLOT_MAGIC)
            return wh_error_set(WH_EINVALID, "NDB slot table is damaged");
        uint32_t pkgidx = le32(s + 4), blkoff = le32(s + 8), blkcnt = le32(s + 12);
        if (!blkoff)
            continue;
        uint64_t start = (uint64_t)blkoff * NDB_BLK, size = (uint64_t)blkcnt * NDB_BLK;
        if (start + size > len || size < 16)
            continue;
        const unsigned char *bh = d + start;
        uint32_t bloblen = le32(bh + 12);
        if (le32(bh) != NDB_BLOB_MAGIC || le32(bh + 4) != pkgidx || 16 + (uint64_t)bloblen > size)
            continue;
        if (bloblen > bytes_left)
            return wh_error_set(WH_EINVALID, "NDB Packages.db: its slots share blobs (over %llu bytes "
                                "decoded from a %zu-byte file); reading stopped after %zu packages",
                                (unsigned long long)read_budget(len), len, r->npkgs);
        bytes_left -= bloblen;
        wh_rpm_header_parse(li, r, bh + 16, bloblen);
    }
    return 0;
}

int wh_catalog_rpm(struct wh_layer_inv *li, enum wh_cat cat, const char *path, const char *data,
                   size_t len)
{
    struct wh_layer_rec *r = wh_layer_rec_add(li, path, cat);
    switch (cat) {
    case WH_CAT_RPM_SQLITE:
        return rpm_sqlite(li, r, data, len);
    case WH_CAT_RPM_BDB:
        return rpm_bdb(li, r, data, len);
    case WH_CAT_RPM_NDB:
        return rpm_ndb(li, r, data, len);
    default:
        return 0;
    }
}
