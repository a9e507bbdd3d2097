/*
 * test_scan_hostile.c: the scanner against layers built to hurt it, each
 * generated here: rpm databases whose work grows without bound (a recursive
 * SQLite view, a zeroblob view, Berkeley DB entries sharing one overflow
 * chain, NDB slots sharing one blob), text that is not UTF-8, ".." inside
 * paths, tars without their end-of-archive blocks, layers compressed twice or
 * at absurd ratios, docker archives that store a layer as a link to another
 * or hide gigabytes of zeros before manifest.json, the package database cap,
 * and the warning for a package database behind a symbolic link. Every test
 * runs under alarm(): a hang kills the binary, which fails the suite.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>

#include "scan/scan_int.h"
#include "scan_fixture.h"

static char *tmp;

static int setup(void **state)
{
    (void)state;
    tmp = tf_tmpdir();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    alarm(0);
    tf_rmrf(tmp);
    free(tmp);
    return 0;
}

static double seconds_since(int64_t t0)
{
    return (double)(wh_monotonic_us() - t0) / 1e6;
}

/* ---- builders ---- */

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static void put_le16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

/* An RPM header blob with NAME, VERSION, RELEASE (as rpmdb stores it, without the magic). */
static unsigned char *rpm_header(size_t *len, const char *name, const char *ver, const char *rel)
{
    const char *s[3] = {name, ver, rel};
    size_t dl = strlen(name) + strlen(ver) + strlen(rel) + 3;
    *len = 8 + 3 * 16 + dl;
    unsigned char *b = wh_calloc(1, *len), *data = b + 8 + 48;
    put_be32(b, 3);
    put_be32(b + 4, (uint32_t)dl);
    uint32_t off = 0;
    for (int i = 0; i < 3; i++) {
        unsigned char *e = b + 8 + i * 16;
        put_be32(e, 1000 + (uint32_t)i);
        put_be32(e + 4, 6); /* STRING */
        put_be32(e + 8, off);
        put_be32(e + 12, 1);
        memcpy(data + off, s[i], strlen(s[i]) + 1);
        off += (uint32_t)strlen(s[i]) + 1;
    }
    return b;
}

/* An SQLite file made by running `sql`, returned as bytes (`blob` bound as ?1 when given). */
static char *sqlite_file(size_t *len, const char *sql, const void *blob, size_t bloblen)
{
    char *path = wh_sprintf("%s/rpmdb-%d.sqlite", tmp, rand());
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (blob) {
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_exec(db, "CREATE TABLE Packages(hnum INTEGER PRIMARY KEY, blob BLOB NOT NULL)",
                                      NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO Packages(blob) VALUES (?1)", -1, &st, NULL), SQLITE_OK);
        sqlite3_bind_blob(st, 1, blob, (int)bloblen, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_finalize(st);
    }
    char *err = NULL;
    if (sql && sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err);
    sqlite3_close(db);
    char *bytes = tf_slurp(path, len);
    free(path);
    return bytes;
}

/* ustar header for `name` with `size` bytes of data (type '0', '1' hard link or '2' symlink). */
static void ustar(unsigned char h[512], const char *name, uint64_t size, char type, const char *link)
{
    memset(h, 0, 512);
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", type == '2' ? 0777 : 0644);
    snprintf((char *)h + 108, 8, "%07o", 0);
    snprintf((char *)h + 116, 8, "%07o", 0);
    snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
    snprintf((char *)h + 136, 12, "%011o", 0);
    h[156] = (unsigned char)type;
    if (link)
        snprintf((char *)h + 157, 100, "%s", link);
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
}

/* Appends one entry to a tar being built in `b`; padding to 512 unless `pad` is false. */
static void tar_add(struct wh_buf *b, const char *name, const char *data, size_t len, char type,
                    const char *link, bool pad)
{
    unsigned char h[512];
    ustar(h, name, type == '0' ? len : 0, type, link);
    wh_buf_put(b, h, 512);
    if (type == '0' && len)
        wh_buf_put(b, data, len);
    if (pad && len % 512 && type == '0')
        wh_buf_put(b, (const char[512]){0}, 512 - len % 512);
}

/* Compresses bytes with libarchive's raw writer ("gzip", "zstd", "xz"). */
static char *compress_bytes(size_t *out_len, const void *data, size_t len, const char *filter)
{
    char *path = wh_sprintf("%s/compress-%d", tmp, rand());
    struct archive *a = archive_write_new();
    archive_write_set_format_raw(a);
    if (strcmp(filter, "gzip") == 0)
        archive_write_add_filter_gzip(a);
    else if (strcmp(filter, "zstd") == 0)
        archive_write_add_filter_zstd(a);
    else
        archive_write_add_filter_xz(a);
    archive_write_set_bytes_in_last_block(a, 1);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "data");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_size(e, (la_int64_t)len);
    assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
    for (size_t o = 0; o < len;) {
        size_t k = len - o < (1u << 20) ? len - o : (1u << 20);
        assert_true(archive_write_data(a, (const char *)data + o, k) == (la_ssize_t)k);
        o += k;
    }
    archive_entry_free(e);
    archive_write_close(a);
    archive_write_free(a);
    char *bytes = tf_slurp(path, out_len);
    unlink(path);
    free(path);
    return bytes;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* An OCI layout with the given layer files, scanned. */
static int scan_layers(struct wh_inventory **inv, const char *const *layers, size_t n, struct wh_scan_opts *opts)
{
    char *dir = wh_sprintf("%s/oci-%d", tmp, rand());
    tf_oci(dir, layers, n, "t", false);
    char *target = wh_sprintf("oci:%s:t", dir);
    int rc = wh_scan_inventory(inv, target, opts);
    free(target);
    free(dir);
    return rc;
}

static int scan_layer_bytes(struct wh_inventory **inv, const void *data, size_t len, struct wh_scan_opts *opts)
{
    char *path = wh_sprintf("%s/layer-%d", tmp, rand());
    write_file(path, data, len);
    const char *layers[] = {path};
    int rc = scan_layers(inv, layers, 1, opts);
    free(path);
    return rc;
}

/* Runs fn with stderr captured into a string (the caller frees it). */
static char *capture_stderr(int (*fn)(void *), void *arg, int *rc)
{
    char *path = wh_sprintf("%s/stderr-%d", tmp, rand());
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    *rc = fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    size_t len;
    char *text = tf_slurp(path, &len);
    free(path);
    return text;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* ---- rpm databases ---- */

static int rpm_parse(struct wh_layer_inv **li, enum wh_cat cat, const char *data, size_t len)
{
    *li = wh_layer_inv_new();
    return wh_catalog_rpm(*li, cat, "var/lib/rpm/x", data, len);
}

static size_t rec_pkgs(const struct wh_layer_inv *li)
{
    return li->nrecs ? li->recs[0].npkgs : 0;
}

static void test_hostile__rpm_sqlite_views(void **state)
{
    (void)state;
    alarm(60);
    size_t hl;
    unsigned char *hdr = rpm_header(&hl, "bash", "5.1.8", "6.el9");
    static const char *const refused[] = {
        /* a recursive view never ends */
        "DROP TABLE Packages; CREATE VIEW Packages AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
        "SELECT x + 1 FROM c) SELECT x AS hnum, x AS blob FROM c",
        /* a view returning one huge value */
        "DROP TABLE Packages; CREATE VIEW Packages AS SELECT 1 AS hnum, zeroblob(890000000) AS blob",
        /* a generated column computes the same */
        "DROP TABLE Packages; CREATE TABLE Packages(hnum INTEGER, blob BLOB GENERATED ALWAYS AS "
        "(zeroblob(890000000)))",
        /* a default stands in for the value of every row stored without one (schema written by hand) */
        "DROP TABLE Packages; CREATE TABLE Packages(hnum INTEGER); INSERT INTO Packages VALUES (1);"
        "PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = 'CREATE TABLE Packages(hnum INTEGER, "
        "blob BLOB DEFAULT (zeroblob(890000000)))' WHERE name = 'Packages'",
        /* a virtual table runs a module's code */
        "DROP TABLE Packages; CREATE VIRTUAL TABLE Packages USING fts5(blob)",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        size_t len;
        char *db = sqlite_file(&len, refused[i], hdr, hl);
        struct wh_layer_inv *li = NULL;
        long rss0 = peak_rss_kb();
        int64_t t0 = wh_monotonic_us();
        int rc = rpm_parse(&li, WH_CAT_RPM_SQLITE, db, len);
        double took = seconds_since(t0);
        if (rc != WH_EINVALID || took > 5 || peak_rss_kb() - rss0 > 200 * 1024)
            fail_msg("case %zu: rc %d after %.1f s, peak memory +%ld KiB (%s)", i, rc, took,
                     peak_rss_kb() - rss0, wh_error_msg());
        assert_int_equal(rec_pkgs(li), 0);
        wh_layer_inv_free(li);
        free(db);
    }
    /* the plain table rpm writes is read as before */
    size_t len;
    char *db = sqlite_file(&len, NULL, hdr, hl);
    struct wh_layer_inv *li = NULL;
    assert_int_equal(rpm_parse(&li, WH_CAT_RPM_SQLITE, db, len), 0);
    assert_int_equal(rec_pkgs(li), 1);
    assert_string_equal(li->recs[0].pkgs[0].version, "5.1.8-6.el9");
    wh_layer_inv_free(li);
    free(db);
    free(hdr);
}

/* Many hash entries of a Berkeley DB Packages file all pointing at one long overflow chain. */
static void test_hostile__bdb_shared_overflow_chain(void **state)
{
    (void)state;
    alarm(60);
    enum { PS = 4096, NPAGES = 1700, HASH_PAGES = 100, ITEM = 4000 };
    size_t len = (size_t)PS * NPAGES;
    unsigned char *d = wh_calloc(1, len);
    put_le32(d + 12, 0x061561);
    put_le32(d + 20, PS);
    uint32_t chain = HASH_PAGES + 1, chain_len = NPAGES - chain;
    uint16_t used = PS - 26;
    for (uint32_t pg = 1; pg <= HASH_PAGES; pg++) {
        unsigned char *p = d + (size_t)pg * PS;
        uint16_t n = (ITEM - 26) / 2;
        p[25] = 13; /* P_HASH */
        put_le16(p + 20, n);
        for (uint16_t i = 0; i < n; i++)
            put_le16(p + 26 + i * 2, ITEM);
        p[ITEM] = 3; /* H_OFFPAGE */
        put_le32(p + ITEM + 4, chain);
        put_le32(p + ITEM + 8, (uint32_t)used * chain_len);
    }
    for (uint32_t pg = chain; pg < NPAGES; pg++) {
        unsigned char *p = d + (size_t)pg * PS;
        p[25] = 7; /* P_OVERFLOW */
        put_le16(p + 22, used);
        put_le32(p + 16, pg + 1 < NPAGES ? pg + 1 : 0);
    }
    struct wh_layer_inv *li = NULL;
    int64_t t0 = wh_monotonic_us();
    int rc = rpm_parse(&li, WH_CAT_RPM_BDB, (const char *)d, len);
    double took = seconds_since(t0);
    if (rc != WH_EINVALID || took > 5)
        fail_msg("rc %d after %.1f s (%s)", rc, took, wh_error_msg());
    assert_non_null(strstr(wh_error_msg(), "share overflow pages"));
    wh_layer_inv_free(li);
    free(d);
}

/* NDB slots all naming one blob whose header has the most index entries allowed. */
static void test_hostile__ndb_shared_blob(void **state)
{
    (void)state;
    alarm(60);
    enum { SLOT_PAGES = 400, IL = 0x10000 };
    size_t bloblen = 8 + (size_t)IL * 16, blob_at = (size_t)SLOT_PAGES * 4096;
    size_t len = blob_at + (16 + bloblen + 15) / 16 * 16;
    unsigned char *d = wh_calloc(1, len);
    put_le32(d, 0x506d7052);
    put_le32(d + 12, SLOT_PAGES);
    for (size_t o = 32; o < blob_at; o += 16) {
        put_le32(d + o, 0x746f6c53);
        put_le32(d + o + 4, 1);
        put_le32(d + o + 8, (uint32_t)(blob_at / 16));
        put_le32(d + o + 12, (uint32_t)((16 + bloblen + 15) / 16));
    }
    unsigned char *bh = d + blob_at;
    put_le32(bh, 0x53626c42);
    put_le32(bh + 4, 1);
    put_le32(bh + 12, (uint32_t)bloblen);
    put_be32(bh + 16, IL);
    put_be32(bh + 20, 0);
    struct wh_layer_inv *li = NULL;
    int64_t t0 = wh_monotonic_us();
    int rc = rpm_parse(&li, WH_CAT_RPM_NDB, (const char *)d, len);
    double took = seconds_since(t0);
    if (rc != WH_EINVALID || took > 3)
        fail_msg("rc %d after %.1f s (%s)", rc, took, wh_error_msg());
    assert_non_null(strstr(wh_error_msg(), "share blobs"));
    wh_layer_inv_free(li);
    free(d);
}

/* ---- text that is not UTF-8 ---- */

static const struct wh_finding *find_finding(const struct wh_findings *f, const char *pkg, const char *id)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->items[i].pkg->name, pkg) == 0 && strcmp(f->items[i].id, id) == 0)
            return &f->items[i];
    return NULL;
}

static void test_hostile__invalid_utf8(void **state)
{
    (void)state;
    alarm(60);
    /* Latin-1 bytes where UTF-8 belongs, and a long UTF-8 name that must be cut between characters */
    char pretty[400] = "PRETTY_NAME=\"";
    for (int i = 0; i < 100; i++)
        strcat(pretty, "\xc3\xa9");
    strcat(pretty, "\"\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nNAME=\"D\xe9" "bian\"\n");
    static const char status[] =
        "Package: zlib1g\nStatus: install ok installed\nSource: zlib\nVersion: 1:1.2.13.dfsg-1\xff\n\n"
        "Package: caf\xe9\nStatus: install ok installed\nVersion: 1.0\n";
    struct tf_entry e[] = {
        {.path = "etc/os-release", .data = pretty},
        {.path = "etc/debian_version", .data = "12.4\xff\n"},
        {.path = "var/lib/dpkg/status", .data = status},
    };
    char *layer = wh_sprintf("%s/u8.tar", tmp);
    tf_tar(layer, e, 3, "gzip");
    const char *layers[] = {layer};
    struct wh_inventory *inv = NULL, *back = NULL;
    struct wh_scan_opts opts = {0};
    assert_int_equal(scan_layers(&inv, layers, 1, &opts), 0);
    assert_int_equal(inv->npkgs, 2);

    /* the inventory is written whole, the odd bytes escaped, and reads back the same */
    json_t *j = wh_inventory_to_json(inv);
    assert_non_null(j);
    char *text = json_dumps(j, JSON_COMPACT);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"version\":\"1:1.2.13.dfsg-1\\\\xff\""));
    assert_non_null(strstr(text, "\"name\":\"caf\\\\xe9\""));
    assert_non_null(strstr(text, "\"version\":\"12.4\\\\xff\""));
    json_t *os = json_object_get(j, "os");
    assert_true(strlen(json_string_value(json_object_get(os, "name"))) > 100);
    assert_int_equal(wh_inventory_from_json(&back, j), 0);
    assert_int_equal(back->npkgs, 2);

    /* matching the saved inventory finds the zlib CVE, and the JSON report keeps the package */
    char *dbp = wh_sprintf("%s/vulndb.sqlite", tmp);
    const char *data[] = {"tests/data/vulndb/debian/tracker-bookworm-fixture.json", "tests/data/vulndb/nvd"};
    struct wh_vulndb_stats st;
    assert_int_equal(wh_vulndb_import(dbp, data, 2, &st), 0);
    wh_vulndb *db = NULL;
    assert_int_equal(wh_vulndb_open(&db, dbp), 0);
    struct wh_findings *f = NULL;
    assert_int_equal(wh_match(&f, db, back), 0);
    const struct wh_finding *x = find_finding(f, "zlib1g", "CVE-2023-45853");
    assert_non_null(x);
    json_t *rep = wh_report_json(f, "");
    json_t *v, *vulns = json_object_get(rep, "vulnerabilities");
    size_t i;
    bool seen = false;
    json_array_foreach(vulns, i, v) {
        if (strcmp(json_string_value(json_object_get(v, "id")), "CVE-2023-45853") == 0) {
            assert_string_equal(json_string_value(json_object_get(v, "version")), "1:1.2.13.dfsg-1\\xff");
            seen = true;
        }
    }
    assert_true(seen);
    json_t *bom = wh_report_cyclonedx(back, "oci:\xff");
    assert_non_null(bom);
    assert_int_equal(json_array_size(json_object_get(bom, "components")), 3);
    json_decref(bom);
    json_decref(rep);
    wh_findings_free(f);
    wh_vulndb_close(db);
    free(dbp);
    free(text);
    json_decref(j);
    wh_inventory_free(back);
    wh_inventory_free(inv);
    free(layer);
}

/* ---- paths and tar framing ---- */

static void test_hostile__dotdot_inside_paths(void **state)
{
    (void)state;
    alarm(60);
    struct tf_entry e[] = {
        {.path = "a/../var/lib/dpkg/status", .data = "Package: p\nStatus: install ok installed\nVersion: 1\n"},
        {.path = "../../etc/alpine-release", .data = "3.18.4\n"},
    };
    char *layer = wh_sprintf("%s/dd.tar", tmp);
    tf_tar(layer, e, 2, NULL);
    const char *layers[] = {layer};
    struct wh_inventory *inv = NULL;
    struct wh_scan_opts opts = {0};
    assert_int_equal(scan_layers(&inv, layers, 1, &opts), 0);
    assert_int_equal(inv->npkgs, 1);
    assert_string_equal(inv->pkgs[0].path, "var/lib/dpkg/status");
    assert_string_equal(inv->os.family, "alpine"); /* ".." at the root stays at the root */
    wh_inventory_free(inv);
    free(layer);
}

static void test_hostile__tar_without_end_blocks(void **state)
{
    (void)state;
    alarm(60);
    static const char status[] = "Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13.dfsg-1\n";
    struct wh_buf b;
    wh_buf_init(&b, 1u << 20);
    tar_add(&b, "etc/debian_version", "12.4\n", 5, '0', NULL, true);
    tar_add(&b, "var/lib/dpkg/status", status, strlen(status), '0', NULL, false); /* no padding, no end */
    struct wh_inventory *inv = NULL;
    struct wh_scan_opts opts = {0};
    /* plain, and gzip (umoci's layers) */
    for (int gz = 0; gz < 2; gz++) {
        size_t len = b.len;
        char *data = gz ? compress_bytes(&len, b.data, b.len, "gzip") : wh_strndup(b.data, b.len);
        if (scan_layer_bytes(&inv, data, len, &opts) != 0)
            fail_msg("%s: %s", gz ? "gzip" : "plain", wh_error_msg());
        assert_int_equal(inv->npkgs, 1);
        assert_string_equal(inv->os.family, "debian");
        wh_inventory_free(inv);
        inv = NULL;
        free(data);
    }
    /* padded but without the two zero blocks */
    wh_buf_put(&b, (const char[512]){0}, 512 - strlen(status) % 512);
    assert_int_equal(scan_layer_bytes(&inv, b.data, b.len, &opts), 0);
    assert_int_equal(inv->npkgs, 1);
    wh_inventory_free(inv);
    inv = NULL;
    /* data cut short is still an error: the zeros stand in for the end, never for data */
    assert_int_equal(scan_layer_bytes(&inv, b.data, 512 + 512 + 512 + 20, &opts), WH_EINVALID);
    assert_non_null(strstr(wh_error_msg(), "truncated"));
    assert_null(inv);
    wh_buf_dispose(&b);
}

/* ---- decompression ---- */

/*
 * A gzip (or zstd) stream of a tar whose first file is `zeros` bytes of
 * zeros, then the entries of `tail` (a tar with its end blocks), made of
 * concatenated members: one member of 64 MiB of zeros repeated, so building
 * a GiB takes a fraction of a second.
 */
static char *zero_bomb(size_t *out_len, const char *filter, uint64_t zeros, const struct wh_buf *tail)
{
    enum { CHUNK = 64 << 20 };
    assert_true(zeros % CHUNK == 0);
    struct wh_buf out;
    wh_buf_init(&out, 1u << 30);
    unsigned char h[512];
    ustar(h, "zeros.bin", zeros, '0', NULL);
    size_t n;
    char *m = compress_bytes(&n, h, 512, filter);
    wh_buf_put(&out, m, n);
    free(m);
    char *z = wh_calloc(1, CHUNK);
    char *zm = compress_bytes(&n, z, CHUNK, filter);
    for (uint64_t k = 0; k < zeros / CHUNK; k++)
        wh_buf_put(&out, zm, n);
    free(zm);
    free(z);
    m = compress_bytes(&n, tail->data, tail->len, filter);
    wh_buf_put(&out, m, n);
    free(m);
    return wh_buf_detach(&out, out_len);
}

/* A tar (with end blocks) holding one dpkg status. */
static void status_tar(struct wh_buf *b)
{
    static const char status[] = "Package: p\nStatus: install ok installed\nVersion: 1\n";
    wh_buf_init(b, 1u << 20);
    tar_add(b, "var/lib/dpkg/status", status, strlen(status), '0', NULL, true);
    wh_buf_put(b, (const char[1024]){0}, 1024);
}

static void test_hostile__gzip_of_gzip(void **state)
{
    (void)state;
    alarm(60);
    struct wh_buf tail;
    status_tar(&tail);
    size_t inner_len, outer_len;
    char *inner = zero_bomb(&inner_len, "gzip", 1ull << 30, &tail);
    char *outer = compress_bytes(&outer_len, inner, inner_len, "gzip");
    struct wh_inventory *inv = NULL;
    struct wh_scan_opts opts = {0};
    int64_t t0 = wh_monotonic_us();
    int rc = scan_layer_bytes(&inv, outer, outer_len, &opts);
    double took = seconds_since(t0);
    if (rc != WH_EINVALID || took > 3)
        fail_msg("rc %d after %.1f s (%s)", rc, took, wh_error_msg());
    assert_non_null(strstr(wh_error_msg(), "compressed twice"));
    /* the same inner layer on its own (one gzip) is a layer like any other */
    rc = scan_layer_bytes(&inv, inner, inner_len, &opts);
    if (rc != 0)
        fail_msg("%s", wh_error_msg());
    assert_int_equal(inv->npkgs, 1);
    wh_inventory_free(inv);
    wh_buf_dispose(&tail);
    free(inner);
    free(outer);
}

static void test_hostile__decompression_ratio(void **state)
{
    (void)state;
    alarm(60);
    struct wh_buf tail;
    status_tar(&tail);
    size_t len;
    /* 1 GiB of zeros in a few KB of zstd */
    char *bomb = zero_bomb(&len, "zstd", 1ull << 30, &tail);
    struct wh_inventory *inv = NULL;
    struct wh_scan_opts opts = {0};
    int64_t t0 = wh_monotonic_us();
    int rc = scan_layer_bytes(&inv, bomb, len, &opts);
    double took = seconds_since(t0);
    if (rc != WH_ETOOBIG || took > 3)
        fail_msg("rc %d after %.1f s (%s)", rc, took, wh_error_msg());
    assert_non_null(strstr(wh_error_msg(), "times its compressed size"));
    /* a caller that expects such layers raises the ratio */
    opts.max_ratio = 1u << 20;
    rc = scan_layer_bytes(&inv, bomb, len, &opts);
    if (rc != 0)
        fail_msg("%s", wh_error_msg());
    assert_int_equal(inv->npkgs, 1);
    wh_inventory_free(inv);
    wh_buf_dispose(&tail);
    free(bomb);
}

/* ---- docker archives ---- */

/* A legacy `docker save` archive: <id>/layer.tar entries, the second layer stored as a link to the first. */
static char *legacy_archive(const char *layer_tar, char link_type, const char *link_target,
                            const char *extra_name, char extra_type, const char *extra_link)
{
    size_t len;
    char *layer = tf_slurp(layer_tar, &len);
    char *dg = tf_digest_file(layer_tar);
    char *cfg = wh_sprintf("{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
                           "\"diff_ids\":[\"%s\",\"%s\",\"%s\"]}}", dg, dg, dg);
    char *man = wh_sprintf("[{\"Config\":\"cfg.json\",\"RepoTags\":[\"t:1\"],\"Layers\":[\"aaa/layer.tar\","
                           "\"bbb/layer.tar\"%s%s%s]}]", extra_name ? ",\"" : "", extra_name ? extra_name : "",
                           extra_name ? "\"" : "");
    struct wh_buf b;
    wh_buf_init(&b, 64u << 20);
    tar_add(&b, "aaa/layer.tar", layer, len, '0', NULL, true);
    tar_add(&b, "bbb/layer.tar", NULL, 0, link_type, link_target, true);
    if (extra_name)
        tar_add(&b, extra_name, NULL, 0, extra_type, extra_link, true);
    tar_add(&b, "cfg.json", cfg, strlen(cfg), '0', NULL, true);
    tar_add(&b, "manifest.json", man, strlen(man), '0', NULL, true);
    wh_buf_put(&b, (const char[1024]){0}, 1024);
    char *path = wh_sprintf("%s/archive-%d.tar", tmp, rand());
    write_file(path, b.data, b.len);
    wh_buf_dispose(&b);
    free(man);
    free(cfg);
    free(dg);
    free(layer);
    return path;
}

static void test_hostile__docker_archive_links(void **state)
{
    (void)state;
    alarm(60);
    struct tf_entry e[] = {{.path = "var/lib/dpkg/status", .data = "Package: p\nStatus: install ok installed\nVersion: 1\n"}};
    char *layer = wh_sprintf("%s/l.tar", tmp);
    tf_tar(layer, e, 1, NULL);
    struct {
        char type;
        const char *target;
    } ok[] = {{'2', "../aaa/layer.tar"}, {'2', "/aaa/layer.tar"}, {'1', "aaa/layer.tar"}};
    struct wh_scan_opts opts = {0};
    struct wh_inventory *inv = NULL;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char *arch = legacy_archive(layer, ok[i].type, ok[i].target, NULL, 0, NULL);
        char *t = wh_sprintf("docker-archive:%s", arch);
        for (unsigned th = 1; th <= 2; th++) {
            opts.threads = th;
            if (wh_scan_inventory(&inv, t, &opts) != 0)
                fail_msg("link %c %s: %s", ok[i].type, ok[i].target, wh_error_msg());
            assert_int_equal(inv->npkgs, 1);
            wh_inventory_free(inv);
        }
        free(t);
        free(arch);
    }
    /* links resolve inside the archive only: out of it, in a loop, or nowhere, they are errors */
    struct {
        const char *name;
        char type;
        const char *target, *msg;
    } bad[] = {
        {"ccc/layer.tar", '2', "../../../../../../etc/passwd", "has no etc/passwd"},
        {"ccc/layer.tar", '2', "../ccc/layer.tar", "more than 16 links"},
        {"ccc/layer.tar", '1', "/etc/hostname", "has no etc/hostname"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *arch = legacy_archive(layer, '2', "../aaa/layer.tar", bad[i].name, bad[i].type, bad[i].target);
        char *t = wh_sprintf("docker-archive:%s", arch);
        assert_int_equal(wh_scan_inventory(&inv, t, &opts), WH_EINVALID);
        if (!strstr(wh_error_msg(), bad[i].msg))
            fail_msg("%s -> %s: %s", bad[i].name, bad[i].target, wh_error_msg());
        free(t);
        free(arch);
    }
    free(layer);
}

/* A compressed docker archive hiding 512 MiB of zeros before its layer, config and manifest.json. */
static void test_hostile__docker_archive_caps(void **state)
{
    (void)state;
    alarm(120);
    struct tf_entry e[] = {{.path = "var/lib/dpkg/status", .data = "Package: p\nStatus: install ok installed\nVersion: 1\n"}};
    char *layer = wh_sprintf("%s/l.tar", tmp);
    tf_tar(layer, e, 1, NULL);
    size_t llen;
    char *ltar = tf_slurp(layer, &llen);
    char *dg = tf_digest_file(layer);
    char *cfg = wh_sprintf("{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}", dg);
    static const char man[] = "[{\"Config\":\"cfg.json\",\"Layers\":[\"l/layer.tar\"]}]";
    struct wh_buf tail;
    wh_buf_init(&tail, 64u << 20);
    tar_add(&tail, "l/layer.tar", ltar, llen, '0', NULL, true);
    tar_add(&tail, "cfg.json", cfg, strlen(cfg), '0', NULL, true);
    tar_add(&tail, "manifest.json", man, strlen(man), '0', NULL, true);
    wh_buf_put(&tail, (const char[1024]){0}, 1024);
    size_t len;
    char *bomb = zero_bomb(&len, "gzip", 512ull << 20, &tail);
    char *path = wh_sprintf("%s/bomb.tar.gz", tmp);
    write_file(path, bomb, len);
    char *t = wh_sprintf("docker-archive:%s", path);

    struct wh_inventory *inv = NULL;
    struct wh_scan_opts opts = {.max_total = 256ull << 20};
    int64_t t0 = wh_monotonic_us();
    int rc = wh_scan_inventory(&inv, t, &opts);
    double took = seconds_since(t0);
    if (rc != WH_ETOOBIG || took > 10)
        fail_msg("rc %d after %.1f s (%s)", rc, took, wh_error_msg());
    assert_non_null(strstr(wh_error_msg(), "decompressed bytes"));
    /* under a cap it fits, it is read: once to index it, then again to reach each entry */
    opts.max_total = 4ull << 30;
    rc = wh_scan_inventory(&inv, t, &opts);
    if (rc != 0)
        fail_msg("%s", wh_error_msg());
    assert_int_equal(inv->npkgs, 1);
    wh_inventory_free(inv);
    /* and all those passes count against one budget */
    opts.max_total = 1200ull << 20;
    assert_int_equal(wh_scan_inventory(&inv, t, &opts), WH_ETOOBIG);
    assert_non_null(strstr(wh_error_msg(), "decompress it first"));

    /* uncompressed, 4 GiB of zeros (a hole in a sparse file) are skipped, not read, and still counted */
    char *plain = wh_sprintf("%s/bomb.tar", tmp);
    unsigned char h[512];
    ustar(h, "zeros.bin", 4ull << 30, '0', NULL);
    int fd = open(plain, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, h, 512), 512);
    assert_true(pwrite(fd, tail.data, tail.len, (off_t)(512 + (4ull << 30))) == (ssize_t)tail.len);
    close(fd);
    char *tp = wh_sprintf("docker-archive:%s", plain);
    opts.max_total = 1ull << 30;
    t0 = wh_monotonic_us();
    rc = wh_scan_inventory(&inv, tp, &opts);
    if (rc != WH_ETOOBIG || seconds_since(t0) > 5)
        fail_msg("rc %d after %.1f s (%s)", rc, seconds_since(t0), wh_error_msg());
    opts.max_total = 0; /* the default, 32 GiB */
    t0 = wh_monotonic_us();
    rc = wh_scan_inventory(&inv, tp, &opts);
    if (rc != 0 || seconds_since(t0) > 5)
        fail_msg("rc %d after %.1f s (%s)", rc, seconds_since(t0), wh_error_msg());
    assert_int_equal(inv->npkgs, 1);
    wh_inventory_free(inv);
    free(tp);
    free(plain);
    free(t);
    free(path);
    wh_buf_dispose(&tail);
    free(bomb);
    free(cfg);
    free(dg);
    free(ltar);
    free(layer);
}

/* ---- caps and warnings ---- */

/* The documented cap for package databases (--max-file, 256 MiB) is the one applied to dpkg status. */
static void test_hostile__package_database_cap(void **state)
{
    (void)state;
    alarm(120);
    struct tf_entry e[] = {{.path = "var/lib/dpkg/status", .fake_size = 65 << 20}};
    char *layer = wh_sprintf("%s/big.tar.gz", tmp);
    tf_tar(layer, e, 1, "gzip");
    const char *layers[] = {layer};
    struct wh_inventory *inv = NULL;
    struct wh_scan_opts opts = {0};
    if (scan_layers(&inv, layers, 1, &opts) != 0)
        fail_msg("%s", wh_error_msg());
    wh_inventory_free(inv);
    opts.max_entry = 64 << 20;
    assert_int_equal(scan_layers(&inv, layers, 1, &opts), WH_ETOOBIG);
    assert_non_null(strstr(wh_error_msg(), "67108864-byte cap"));
    free(layer);
}

struct rootfs_scan {
    const char *target;
    struct wh_inventory *inv;
};

static int do_rootfs_scan(void *arg)
{
    struct rootfs_scan *s = arg;
    struct wh_scan_opts opts = {0};
    return wh_scan_inventory(&s->inv, s->target, &opts);
}

static void test_hostile__rootfs_database_symlink_warns(void **state)
{
    (void)state;
    alarm(60);
    char *root = wh_sprintf("%s/root", tmp);
    tf_write(root, "var/lib/dpkg/real-status", "Package: p\nVersion: 1\n", 0, 0644);
    char *link = wh_sprintf("%s/var/lib/dpkg/status", root);
    assert_int_equal(symlink("real-status", link), 0);
    char *target = wh_sprintf("rootfs:%s", root);
    struct rootfs_scan s = {target, NULL};
    int rc;
    wh_log_set_level(WH_LOG_WARN);
    char *err = capture_stderr(do_rootfs_scan, &s, &rc);
    wh_log_set_level(WH_LOG_ERROR);
    assert_int_equal(rc, 0);
    assert_int_equal(s.inv->npkgs, 0);
    if (!strstr(err, "var/lib/dpkg/status is a symbolic link"))
        fail_msg("no warning in: %s", err);
    wh_inventory_free(s.inv);
    free(err);
    free(target);
    free(link);
    free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hostile__rpm_sqlite_views, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile__bdb_shared_overflow_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile__ndb_shared_blob, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile__invalid_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile__dotdot_inside_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile__tar_without_end_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile__gzip_of_gzip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile__decompression_ratio, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile__docker_archive_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile__docker_archive_caps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile__package_database_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile__rootfs_database_symlink_warns, setup, teardown),
    };
    wh_log_set_level(WH_LOG_ERROR);
    if (getenv("WH_TEST_FILTER")) /* one case: WH_TEST_FILTER=test_hostile__gzip_of_gzip */
        cmocka_set_test_filter(getenv("WH_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
