/*
 * test_scan_match.c: the vulnerability database and the matcher on real
 * records (tests/data/vulndb). The centre piece scans the Debian bookworm
 * minbase image pinned in tests/data/images/bookworm-minbase (the files the
 * scanner reads, packed here into a one-layer OCI layout) against the
 * bookworm tracker fixture and asserts exactly its expected findings; then
 * the expectations for Alpine and OSV language packages, glibc versions
 * around the DSA fixes, atomic imports, reports, CVSS and an update without
 * network.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <glob.h>
#include <pthread.h>
#include <sys/wait.h>

#include "scan/scan_int.h"
#include "scan_fixture.h"

#define PINNED_BOOKWORM "tests/data/images/bookworm-minbase/rootfs"

static char *tmp;

/* Entries of `dir` whose name starts with `prefix`. */
static int count_entries(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d)
        closedir(d);
    return n;
}

static int setup(void **state)
{
    (void)state;
    tmp = tf_tmpdir();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tf_rmrf(tmp);
    free(tmp);
    return 0;
}

static wh_vulndb *load_db(const char *const *paths, size_t n)
{
    char *dbp = wh_sprintf("%s/vulndb.sqlite", tmp);
    struct wh_vulndb_stats st;
    wh_vulndb *db = NULL;
    if (wh_vulndb_import(dbp, paths, n, &st) < 0)
        fail_msg("import: %s", wh_error_msg());
    assert_int_equal(wh_vulndb_open(&db, dbp), 0);
    free(dbp);
    return db;
}

static const struct wh_finding *find(const struct wh_findings *f, const char *pkg, const char *version,
                                     const char *id)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->items[i].pkg->name, pkg) == 0 && strcmp(f->items[i].id, id) == 0 &&
            (!version || strcmp(f->items[i].pkg->version, version) == 0))
            return &f->items[i];
    return NULL;
}

static void expect_finding(const struct wh_findings *f, const char *pkg, const char *version, const char *id,
                           const char *status, const char *fixed, enum wh_severity sev)
{
    const struct wh_finding *x = find(f, pkg, version, id);
    if (!x)
        fail_msg("%s %s: %s not reported", pkg, version ? version : "", id);
    assert_string_equal(x ? x->status : "", status);
    assert_string_equal(x ? x->fixed : "", fixed);
    assert_string_equal(wh_severity_name(x ? x->severity : WH_SEV_UNKNOWN), wh_severity_name(sev));
}

/* ---- expected findings of a real bookworm minbase image ---- */

static const struct f1 {
    const char *src, *id, *status;
    enum wh_severity sev;
} f1_rows[] = {
    {"apt", "CVE-2011-3374", "affected", WH_SEV_NEGLIGIBLE},
    {"coreutils", "CVE-2016-2781", "will_not_fix", WH_SEV_LOW},
    {"coreutils", "CVE-2017-18018", "affected", WH_SEV_NEGLIGIBLE},
    {"coreutils", "CVE-2025-5278", "affected", WH_SEV_UNKNOWN},
    {"glibc", "CVE-2018-20796", "affected", WH_SEV_NEGLIGIBLE},
    {"glibc", "CVE-2019-1010022", "affected", WH_SEV_NEGLIGIBLE},
    {"glibc", "CVE-2010-4756", "affected", WH_SEV_NEGLIGIBLE},
    {"gnutls28", "CVE-2011-3389", "affected", WH_SEV_NEGLIGIBLE},
    {"libgcrypt20", "CVE-2018-6829", "affected", WH_SEV_NEGLIGIBLE},
    {"libgcrypt20", "CVE-2024-2236", "affected", WH_SEV_UNKNOWN},
    {"ncurses", "CVE-2023-50495", "affected", WH_SEV_UNKNOWN},
    {"perl", "CVE-2011-4116", "affected", WH_SEV_NEGLIGIBLE},
    {"perl", "CVE-2023-31486", "affected", WH_SEV_NEGLIGIBLE},
    {"shadow", "CVE-2007-5686", "affected", WH_SEV_NEGLIGIBLE},
    {"shadow", "CVE-2023-4641", "affected", WH_SEV_UNKNOWN},
    {"systemd", "CVE-2013-4392", "affected", WH_SEV_NEGLIGIBLE},
    {"systemd", "CVE-2023-31437", "affected", WH_SEV_NEGLIGIBLE},
    {"tar", "CVE-2005-2541", "affected", WH_SEV_NEGLIGIBLE},
    {"util-linux", "CVE-2022-0563", "affected", WH_SEV_NEGLIGIBLE},
    {"util-linux", "CVE-2024-28085", "affected", WH_SEV_UNKNOWN},
    {"zlib", "CVE-2023-45853", "affected", WH_SEV_CRITICAL},
    {"gcc-12", "CVE-2022-27943", "affected", WH_SEV_NEGLIGIBLE},
};

/* A one-layer tar of the pinned bookworm files (tests/data/images/bookworm-minbase/PROVENANCE.md). */
static void pinned_bookworm_layer(const char *out)
{
    static const char *const files[] = {"etc/debian_version", "usr/lib/os-release", "var/lib/dpkg/status"};
    char *data[3];
    size_t len[3];
    for (size_t i = 0; i < 3; i++) {
        char *path = wh_sprintf("%s/%s", PINNED_BOOKWORM, files[i]);
        data[i] = tf_slurp(path, &len[i]);
        free(path);
    }
    const struct tf_entry e[] = {
        {.path = "etc", .type = 'd'},
        {.path = "etc/debian_version", .data = data[0], .len = len[0]},
        {.path = "etc/os-release", .type = 'l', .link = "../usr/lib/os-release"},
        {.path = "usr", .type = 'd'},
        {.path = "usr/lib", .type = 'd'},
        {.path = "usr/lib/os-release", .data = data[1], .len = len[1]},
        {.path = "var", .type = 'd'},
        {.path = "var/lib", .type = 'd'},
        {.path = "var/lib/dpkg", .type = 'd'},
        {.path = "var/lib/dpkg/status", .data = data[2], .len = len[2]},
    };
    tf_tar(out, e, sizeof(e) / sizeof(e[0]), "gzip");
    for (size_t i = 0; i < 3; i++)
        free(data[i]);
}

static void test_scan__bookworm_f1(void **state)
{
    (void)state;
    char *dir = wh_sprintf("%s/oci", tmp);
    char *layer = wh_sprintf("%s/layer.tar.gz", tmp);
    pinned_bookworm_layer(layer);
    const char *layers[] = {layer};
    tf_oci(dir, layers, 1, "bookworm", true);
    const char *data[] = {"tests/data/vulndb/debian/tracker-bookworm-fixture.json", "tests/data/vulndb/nvd"};
    wh_vulndb *db = load_db(data, 2);
    char *target = wh_sprintf("oci:%s:bookworm", dir);
    struct wh_inventory *inv = NULL;
    struct wh_scan_opts opts = {0};
    assert_int_equal(wh_scan_inventory(&inv, target, &opts), 0);
    assert_string_equal(inv->os.family, "debian");
    assert_string_equal(inv->os.codename, "bookworm");
    assert_string_equal(inv->os.version, "12.15");
    assert_int_equal(inv->npkgs, 96);
    struct wh_findings *f = NULL;
    assert_int_equal(wh_match(&f, db, inv), 0);

    /* Every installed binary of each source in the table gets each of its rows, and nothing else. */
    size_t expected = 0;
    for (size_t i = 0; i < inv->npkgs; i++) {
        const struct wh_pkg *p = &inv->pkgs[i];
        for (size_t r = 0; r < sizeof(f1_rows) / sizeof(f1_rows[0]); r++) {
            if (strcmp(p->src_name, f1_rows[r].src) != 0)
                continue;
            expect_finding(f, p->name, p->version, f1_rows[r].id, f1_rows[r].status, "", f1_rows[r].sev);
            const struct wh_finding *x = find(f, p->name, p->version, f1_rows[r].id);
            assert_string_equal(x ? x->pkg->src_name : "", f1_rows[r].src);
            expected++;
        }
    }
    assert_int_equal(f->n, expected);
    assert_int_equal(f->n, 54); /* as tests/e2e/debian_oracle.py computes for the pinned files */
    /* all 22 report rows are present; the fixed and not-affected cases are not */
    json_t *ids = json_object();
    for (size_t i = 0; i < f->n; i++) {
        json_object_set_new(ids, f->items[i].id, json_true());
        assert_string_not_equal(f->items[i].id, "CVE-2023-4911");
        assert_string_not_equal(f->items[i].id, "CVE-2024-2961");
        assert_string_not_equal(f->items[i].id, "CVE-2024-3094");
        assert_string_not_equal(f->items[i].id, "CVE-2022-1664");
    }
    assert_int_equal(json_object_size(ids), 22);
    json_decref(ids);
    /* one finding per installed binary: glibc's rows on libc6 and libc-bin */
    assert_non_null(find(f, "libc6", NULL, "CVE-2018-20796"));
    assert_non_null(find(f, "libc-bin", NULL, "CVE-2018-20796"));
    const struct wh_finding *z = find(f, "zlib1g", NULL, "CVE-2023-45853");
    assert_non_null(z);
    assert_true(z && z->cvss_score > 9.7 && z->cvss_score < 9.9);
    assert_string_equal(z ? z->cvss_vector : "", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H");
    assert_string_equal(z ? z->cvss_source : "", "nvd");

    /* the report in Harbor's shape */
    json_t *rep = wh_report_json(f, opts.image_digest);
    assert_string_equal(json_string_value(json_object_get(rep, "severity")), "Critical");
    assert_int_equal(json_array_size(json_object_get(rep, "vulnerabilities")), f->n);
    json_t *v0 = json_array_get(json_object_get(rep, "vulnerabilities"), 0);
    assert_string_equal(json_string_value(json_object_get(v0, "id")), "CVE-2023-45853");
    assert_string_equal(json_string_value(json_object_get(v0, "package")), "zlib1g");
    assert_string_equal(json_string_value(json_object_get(v0, "fix_version")), "");
    assert_true(json_number_value(json_object_get(json_object_get(v0, "preferred_cvss"), "score_v3")) > 9.7);
    assert_string_equal(json_string_value(json_array_get(json_object_get(v0, "artifact_digests"), 0)),
                        opts.image_digest);
    json_decref(rep);
    wh_findings_free(f);
    wh_inventory_free(inv);
    wh_vulndb_close(db);
    free(target);
    free(layer);
    free(dir);
}

/* glibc around the DSA fixes, dpkg below its sid fix: the "fixed" cases. */
static void test_scan__bookworm_fixed_rows(void **state)
{
    (void)state;
    const char *data[] = {"tests/data/vulndb/debian/tracker-bookworm-fixture.json"};
    wh_vulndb *db = load_db(data, 1);
    struct wh_inventory *inv = wh_inventory_new();
    snprintf(inv->os.family, sizeof(inv->os.family), "debian");
    snprintf(inv->os.version, sizeof(inv->os.version), "12.0");
    struct wh_pkg pk[] = {
        {WH_PKG_DPKG, "libc6", "2.36-9", "glibc", "2.36-9", NULL, "var/lib/dpkg/status"},
        /* the same package declared again by a distroless stanza: reported once */
        {WH_PKG_DPKG, "libc6", "2.36-9", "glibc", "2.36-9", NULL, "var/lib/dpkg/status.d/libc6"},
        {WH_PKG_DPKG, "libc-bin", "2.36-9+deb12u4", "glibc", "2.36-9+deb12u4", NULL, "x"},
        {WH_PKG_DPKG, "libc-dev-bin", "2.36-9+deb12u14", "glibc", "2.36-9+deb12u14", NULL, "y"},
        {WH_PKG_DPKG, "dpkg", "1.21.7", "dpkg", "1.21.7", NULL, "var/lib/dpkg/status"},
        {WH_PKG_DPKG, "liblzma5", "5.2.5-2", "xz-utils", "5.2.5-2", NULL, "var/lib/dpkg/status"},
    };
    for (size_t i = 0; i < sizeof(pk) / sizeof(pk[0]); i++)
        wh_inventory_add(inv, &pk[i]);
    struct wh_findings *f = NULL;
    assert_int_equal(wh_match(&f, db, inv), 0);
    expect_finding(f, "libc6", NULL, "CVE-2023-4911", "fixed", "2.36-9+deb12u3", WH_SEV_UNKNOWN);
    size_t libc6_4911 = 0;
    for (size_t i = 0; i < f->n; i++)
        libc6_4911 += strcmp(f->items[i].pkg->name, "libc6") == 0 && strcmp(f->items[i].id, "CVE-2023-4911") == 0;
    assert_int_equal(libc6_4911, 1);
    expect_finding(f, "libc6", NULL, "CVE-2024-2961", "fixed", "2.36-9+deb12u6", WH_SEV_UNKNOWN);
    assert_null(find(f, "libc-bin", NULL, "CVE-2023-4911"));
    expect_finding(f, "libc-bin", NULL, "CVE-2024-2961", "fixed", "2.36-9+deb12u6", WH_SEV_UNKNOWN);
    /* u14 > u3 numerically: a string compare would report these */
    assert_null(find(f, "libc-dev-bin", NULL, "CVE-2023-4911"));
    assert_null(find(f, "libc-dev-bin", NULL, "CVE-2024-2961"));
    expect_finding(f, "dpkg", NULL, "CVE-2022-1664", "fixed", "1.21.8", WH_SEV_UNKNOWN);
    assert_null(find(f, "liblzma5", NULL, "CVE-2024-3094"));
    /* the scan overview counts (Harbor's scan_overview) */
    json_t *sum = wh_report_summary(f);
    assert_int_equal(json_integer_value(json_object_get(sum, "total")), f->n);
    assert_int_equal(json_integer_value(json_object_get(sum, "fixable")), 4);
    assert_null(json_object_get(json_object_get(sum, "summary"), "Critical"));
    json_decref(sum);
    wh_findings_free(f);
    wh_inventory_free(inv);
    wh_vulndb_close(db);
}

/* ---- Alpine, OSV language packages, glibc versions ---- */

static struct wh_inventory *os_inv(const char *family, const char *version)
{
    struct wh_inventory *inv = wh_inventory_new();
    snprintf(inv->os.family, sizeof(inv->os.family), "%s", family);
    snprintf(inv->os.version, sizeof(inv->os.version), "%s", version);
    return inv;
}

static void add(struct wh_inventory *inv, enum wh_pkg_kind k, const char *name, const char *version,
                const char *src)
{
    struct wh_pkg p = {k, name, version, src, NULL, NULL, "lib/apk/db/installed"};
    wh_inventory_add(inv, &p);
}

static void test_scan__alpine_318(void **state)
{
    (void)state;
    const char *data[] = {"tests/data/vulndb/alpine/3.18"};
    wh_vulndb *db = load_db(data, 1);
    struct wh_inventory *inv = os_inv("alpine", "3.18.4");
    add(inv, WH_PKG_APK, "busybox", "1.36.1-r5", "busybox");
    add(inv, WH_PKG_APK, "ssl_client", "1.36.1-r7", "busybox");
    add(inv, WH_PKG_APK, "musl", "1.2.4-r2", "musl");
    add(inv, WH_PKG_APK, "libcrypto3", "3.1.4-r2", "openssl");
    add(inv, WH_PKG_APK, "libssl3", "3.1.4-r5", "openssl");
    add(inv, WH_PKG_APK, "zlib", "1.2.13-r1", "zlib");
    struct wh_findings *f = NULL;
    assert_int_equal(wh_match(&f, db, inv), 0);
    expect_finding(f, "busybox", NULL, "CVE-2023-42366", "fixed", "1.36.1-r6", WH_SEV_UNKNOWN);
    expect_finding(f, "busybox", NULL, "CVE-2023-42363", "fixed", "1.36.1-r7", WH_SEV_UNKNOWN);
    expect_finding(f, "busybox", NULL, "CVE-2023-42364", "fixed", "1.36.1-r7", WH_SEV_UNKNOWN);
    expect_finding(f, "busybox", NULL, "CVE-2023-42365", "fixed", "1.36.1-r7", WH_SEV_UNKNOWN);
    expect_finding(f, "musl", NULL, "CVE-2025-26519", "fixed", "1.2.4-r3", WH_SEV_UNKNOWN);
    expect_finding(f, "libcrypto3", NULL, "CVE-2023-6129", "fixed", "3.1.4-r3", WH_SEV_UNKNOWN);
    expect_finding(f, "libcrypto3", NULL, "CVE-2023-6237", "fixed", "3.1.4-r4", WH_SEV_UNKNOWN);
    size_t busybox = 0;
    for (size_t i = 0; i < f->n; i++) {
        const struct wh_finding *x = &f->items[i];
        /* r7 / r5 carry every fix; "0" entries are never reported */
        assert_string_not_equal(x->pkg->name, "ssl_client");
        assert_string_not_equal(x->pkg->name, "libssl3");
        assert_string_not_equal(x->pkg->name, "zlib");
        busybox += strcmp(x->pkg->name, "busybox") == 0;
    }
    assert_int_equal(busybox, 4);
    wh_findings_free(f);
    wh_inventory_free(inv);
    wh_vulndb_close(db);
}

static void test_scan__alpine_311(void **state)
{
    (void)state;
    const char *data[] = {"tests/data/vulndb/alpine/3.11/main-busybox-musl.json"};
    wh_vulndb *db = load_db(data, 1);
    struct wh_inventory *inv = os_inv("alpine", "3.11.13");
    add(inv, WH_PKG_APK, "musl", "1.1.24-r0", "musl");
    add(inv, WH_PKG_APK, "busybox", "1.31.1-r9", "busybox");
    add(inv, WH_PKG_APK, "ssl_client", "1.30.1-r1", "busybox");
    struct wh_findings *f = NULL;
    assert_int_equal(wh_match(&f, db, inv), 0);
    /* CVE-2019-5747 is listed under 1.29.3-r10 and 1.30.1-r2: the highest fix counts */
    expect_finding(f, "ssl_client", NULL, "CVE-2019-5747", "fixed", "1.30.1-r2", WH_SEV_UNKNOWN);
    assert_int_equal(f->n, 1);
    wh_findings_free(f);
    wh_inventory_free(inv);
    wh_vulndb_close(db);
}

static void test_scan__osv_languages(void **state)
{
    (void)state;
    const char *data[] = {"tests/data/vulndb/osv"};
    wh_vulndb *db = load_db(data, 1);
    struct wh_inventory *inv = os_inv("", "");
    add(inv, WH_PKG_NPM, "lodash", "4.17.11", NULL);
    add(inv, WH_PKG_NPM, "lodash", "4.17.12", NULL);
    add(inv, WH_PKG_NPM, "lodash-es", "4.17.13", NULL);
    add(inv, WH_PKG_NPM, "minimist", "1.2.5", NULL);
    add(inv, WH_PKG_NPM, "minimist", "0.2.4", NULL);
    add(inv, WH_PKG_NPM, "minimist", "1.2.6", NULL);
    add(inv, WH_PKG_NPM, "minimist", "0.0.8", NULL);
    add(inv, WH_PKG_PYPI, "Requests", "2.30.0", NULL);
    add(inv, WH_PKG_PYPI, "requests", "2.2.1", NULL);
    add(inv, WH_PKG_PYPI, "requests", "2.31.0", NULL);
    add(inv, WH_PKG_GO, "golang.org/x/net", "v0.16.0", NULL);
    add(inv, WH_PKG_GO, "golang.org/x/net", "v0.17.0", NULL);
    add(inv, WH_PKG_GO, "golang.org/x/net", "v0.0.0-20231010170000-abcdef123456", NULL);
    struct wh_findings *f = NULL;
    assert_int_equal(wh_match(&f, db, inv), 0);
    expect_finding(f, "lodash", "4.17.11", "GHSA-jf85-cpcp-j695", "fixed", "4.17.12", WH_SEV_CRITICAL);
    assert_null(find(f, "lodash", "4.17.12", "GHSA-jf85-cpcp-j695"));
    expect_finding(f, "lodash-es", "4.17.13", "GHSA-jf85-cpcp-j695", "fixed", "4.17.14", WH_SEV_CRITICAL);
    assert_non_null(find(f, "minimist", "1.2.5", "GHSA-xvch-5gv4-984h"));
    assert_non_null(find(f, "minimist", "0.0.8", "GHSA-xvch-5gv4-984h"));
    assert_null(find(f, "minimist", "0.2.4", "GHSA-xvch-5gv4-984h"));
    assert_null(find(f, "minimist", "1.2.6", "GHSA-xvch-5gv4-984h"));
    expect_finding(f, "Requests", "2.30.0", "GHSA-j8r2-6x86-q33q", "fixed", "2.31.0", WH_SEV_MEDIUM);
    assert_null(find(f, "requests", "2.2.1", "GHSA-j8r2-6x86-q33q"));
    assert_null(find(f, "requests", "2.31.0", "GHSA-j8r2-6x86-q33q"));
    expect_finding(f, "golang.org/x/net", "v0.16.0", "GHSA-4374-p667-p6c8", "fixed", "0.17.0", WH_SEV_HIGH);
    assert_null(find(f, "golang.org/x/net", "v0.17.0", "GHSA-4374-p667-p6c8"));
    assert_non_null(find(f, "golang.org/x/net", "v0.0.0-20231010170000-abcdef123456", "GHSA-4374-p667-p6c8"));
    assert_int_equal(f->n, 7);
    const struct wh_finding *l = find(f, "lodash", "4.17.11", "GHSA-jf85-cpcp-j695");
    assert_non_null(l && strstr(l->aliases, "CVE-2019-10744"));
    assert_string_equal(l ? l->cvss_source : "", "ghsa");
    assert_true(l && l->cvss_score > 9.0); /* the advisory's own CVSS:3.1 vector, scored here */
    wh_findings_free(f);
    wh_inventory_free(inv);
    wh_vulndb_close(db);
}

/*
 * Distro records in OSV form (shaped like osv.dev's Debian and Ubuntu records;
 * written here, not copied) and a testing-release tracker entry.
 */
static const char osv_debian[] =
    "{\"id\":\"DEBIAN-CVE-2023-45853\",\"modified\":\"2024-01-01T00:00:00Z\","
    "\"upstream\":[\"CVE-2023-45853\"],\"affected\":[{\"package\":{\"ecosystem\":\"Debian:12\","
    "\"name\":\"zlib\"},\"ranges\":[{\"type\":\"ECOSYSTEM\",\"events\":[{\"introduced\":\"0\"}]}],"
    "\"versions\":[\"1:1.2.13.dfsg-1\"],\"ecosystem_specific\":{\"urgency\":\"not yet assigned\"}}]}";
static const char osv_ubuntu[] =
    "{\"id\":\"UBUNTU-CVE-2023-45853\",\"modified\":\"2024-01-01T00:00:00Z\","
    "\"upstream\":[\"CVE-2023-45853\"],\"severity\":[{\"type\":\"Ubuntu\",\"score\":\"low\"}],"
    "\"affected\":[{\"package\":{\"ecosystem\":\"Ubuntu:22.04:LTS\",\"name\":\"zlib\"},"
    "\"ranges\":[{\"type\":\"ECOSYSTEM\",\"events\":[{\"introduced\":\"0\"},"
    "{\"fixed\":\"1:1.2.11.dfsg-2ubuntu9.2\"}]}]}]}";
static const char osv_rocky[] =
    "{\"id\":\"RLSA-2099:0001\",\"modified\":\"2024-01-01T00:00:00Z\",\"upstream\":[\"CVE-2099-0002\"],"
    "\"affected\":[{\"package\":{\"ecosystem\":\"Rocky Linux:9\",\"name\":\"demo-libs\"},"
    "\"ranges\":[{\"type\":\"ECOSYSTEM\",\"events\":[{\"introduced\":\"0\"},{\"fixed\":\"1:2.3-5.el9\"}]}]}],"
    "\"database_specific\":{\"severity\":\"HIGH\"}}";
static const char osv_wolfi[] =
    "{\"id\":\"CGA-0000-0000-0001\",\"modified\":\"2024-01-01T00:00:00Z\",\"aliases\":[\"CVE-2099-0003\"],"
    "\"affected\":[{\"package\":{\"ecosystem\":\"Wolfi\",\"name\":\"busybox\"},"
    "\"ranges\":[{\"type\":\"ECOSYSTEM\",\"events\":[{\"introduced\":\"0\"},{\"fixed\":\"1.36.1-r7\"}]}]}]}";
static const char tracker_trixie[] =
    "{\"foo\":{\"CVE-2099-0001\":{\"description\":\"x\",\"releases\":{\"trixie\":"
    "{\"status\":\"open\",\"urgency\":\"medium\"}}}}}";

static void test_scan__osv_distros(void **state)
{
    (void)state;
    tf_write(tmp, "osv/debian.json", osv_debian, 0, 0644);
    tf_write(tmp, "osv/ubuntu.json", osv_ubuntu, 0, 0644);
    tf_write(tmp, "trixie.json", tracker_trixie, 0, 0644);
    tf_write(tmp, "osv/rocky.json", osv_rocky, 0, 0644);
    tf_write(tmp, "osv/wolfi.json", osv_wolfi, 0, 0644);
    char *osv = wh_sprintf("%s/osv", tmp), *trixie = wh_sprintf("%s/trixie.json", tmp);
    struct wh_findings *f = NULL;

    /* OSV alone: the Debian record matches by source package, severity from NVD via upstream */
    const char *only_osv[] = {osv, "tests/data/vulndb/nvd", trixie};
    wh_vulndb *db = load_db(only_osv, 3);
    struct wh_inventory *deb = os_inv("debian", "12.11");
    add(deb, WH_PKG_DPKG, "zlib1g", "1:1.2.13.dfsg-1", "zlib");
    assert_int_equal(wh_match(&f, db, deb), 0);
    assert_int_equal(f->n, 1);
    expect_finding(f, "zlib1g", NULL, "DEBIAN-CVE-2023-45853", "affected", "", WH_SEV_CRITICAL);
    wh_findings_free(f);
    struct wh_inventory *ubu = os_inv("ubuntu", "22.04");
    add(ubu, WH_PKG_DPKG, "zlib1g", "1:1.2.11.dfsg-2ubuntu9", "zlib");
    add(ubu, WH_PKG_DPKG, "zlib1g-dev", "1:1.2.11.dfsg-2ubuntu9.2", "zlib");
    assert_int_equal(wh_match(&f, db, ubu), 0);
    assert_int_equal(f->n, 1);
    expect_finding(f, "zlib1g", NULL, "UBUNTU-CVE-2023-45853", "fixed", "1:1.2.11.dfsg-2ubuntu9.2", WH_SEV_LOW);
    wh_findings_free(f);
    struct wh_inventory *testing = os_inv("debian", "trixie/sid");
    snprintf(testing->os.codename, sizeof(testing->os.codename), "trixie");
    add(testing, WH_PKG_DPKG, "foo", "1.0", "foo");
    assert_int_equal(wh_match(&f, db, testing), 0);
    expect_finding(f, "foo", NULL, "CVE-2099-0001", "affected", "", WH_SEV_MEDIUM);
    wh_findings_free(f);
    /* rpm distributions: OSV names binary packages, compared with the full EVR */
    struct wh_inventory *rocky = os_inv("rocky", "9.3");
    struct wh_pkg rp[] = {
        {WH_PKG_RPM, "demo-libs", "1:2.3-4.el9", "demo", "1:2.3-4.el9", "x86_64", "var/lib/rpm/rpmdb.sqlite"},
        {WH_PKG_RPM, "demo", "1:2.3-4.el9", "demo", "1:2.3-4.el9", "x86_64", "var/lib/rpm/rpmdb.sqlite"},
    };
    wh_inventory_add(rocky, &rp[0]);
    wh_inventory_add(rocky, &rp[1]);
    assert_int_equal(wh_match(&f, db, rocky), 0);
    assert_int_equal(f->n, 1);
    expect_finding(f, "demo-libs", NULL, "RLSA-2099:0001", "fixed", "1:2.3-5.el9", WH_SEV_HIGH);
    wh_findings_free(f);
    wh_inventory_free(rocky);
    /* a rolling distribution: Wolfi's OSV ecosystem has no release */
    struct wh_inventory *wolfi = os_inv("wolfi", "20230201");
    add(wolfi, WH_PKG_APK, "busybox", "1.36.1-r6", "busybox");
    add(wolfi, WH_PKG_APK, "ssl_client", "1.36.1-r10", "busybox");
    assert_int_equal(wh_match(&f, db, wolfi), 0);
    assert_int_equal(f->n, 1);
    expect_finding(f, "busybox", NULL, "CGA-0000-0000-0001", "fixed", "1.36.1-r7", WH_SEV_UNKNOWN);
    wh_findings_free(f);
    wh_inventory_free(wolfi);
    wh_vulndb_close(db);

    /* with the tracker too: the same issue is reported once, under the tracker's id */
    const char *both[] = {"tests/data/vulndb/debian/tracker-bookworm-fixture.json", osv};
    db = load_db(both, 2);
    assert_int_equal(wh_match(&f, db, deb), 0);
    assert_int_equal(f->n, 1);
    assert_string_equal(f->items[0].id, "CVE-2023-45853");
    wh_findings_free(f);
    wh_vulndb_close(db);
    wh_inventory_free(deb);
    wh_inventory_free(ubu);
    wh_inventory_free(testing);
    free(osv);
    free(trixie);
}

/* The registry matches from worker threads: one open database, many matchers at once. */
struct match_job {
    wh_vulndb *db;
    const struct wh_inventory *inv;
    size_t n;
    int rc;
};

static void *match_worker(void *arg)
{
    struct match_job *j = arg;
    for (int k = 0; k < 20; k++) {
        struct wh_findings *f = NULL;
        j->rc = wh_match(&f, j->db, j->inv);
        if (j->rc < 0)
            return NULL;
        j->n = f->n;
        wh_findings_free(f);
    }
    return NULL;
}

static void test_scan__match_concurrently(void **state)
{
    (void)state;
    const char *data[] = {"tests/data/vulndb/osv", "tests/data/vulndb/alpine/3.18"};
    wh_vulndb *db = load_db(data, 2);
    struct wh_inventory *inv = os_inv("alpine", "3.18.4");
    add(inv, WH_PKG_APK, "busybox", "1.36.1-r5", "busybox");
    add(inv, WH_PKG_NPM, "minimist", "0.0.8", NULL);
    add(inv, WH_PKG_GO, "golang.org/x/net", "v0.16.0", NULL);
    pthread_t t[4];
    struct match_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct match_job){db, inv, 0, 0};
        assert_int_equal(pthread_create(&t[i], NULL, match_worker, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(jobs[i].rc, 0);
        assert_int_equal(jobs[i].n, 6);
    }
    wh_inventory_free(inv);
    wh_vulndb_close(db);
}

/*
 * Re-matching's fast paths give what the plain ones give: the stored line form of
 * an inventory reads back the same packages (fields with tabs, newlines and
 * backslashes included, malformed text refused); wh_match_memoized finds what
 * wh_match finds, for the first inventory and for a second one that hits the
 * memo; wh_report_text is wh_report_json's report.
 */
static void test_scan__rematch_paths_equal_plain(void **state)
{
    (void)state;
    char *dir = wh_sprintf("%s/oci", tmp);
    char *layer = wh_sprintf("%s/layer.tar.gz", tmp);
    pinned_bookworm_layer(layer);
    const char *layers[] = {layer};
    tf_oci(dir, layers, 1, "bookworm", true);
    const char *data[] = {"tests/data/vulndb/debian/tracker-bookworm-fixture.json", "tests/data/vulndb/nvd"};
    wh_vulndb *db = load_db(data, 2);
    char *target = wh_sprintf("oci:%s:bookworm", dir);
    struct wh_inventory *inv = NULL, *back = NULL;
    struct wh_scan_opts opts = {0};
    assert_int_equal(wh_scan_inventory(&inv, target, &opts), 0);
    struct wh_pkg odd = {.kind = WH_PKG_NPM, .name = "a\tb\\c", .version = "1\n2", .path = "x y"};
    wh_inventory_add(inv, &odd);
    wh_inventory_sort(inv);
    size_t len = 0;
    char *text = wh_inventory_to_text(inv, &len);
    assert_int_equal(wh_inventory_from_text(&back, text, len), 0);
    assert_int_equal(back->npkgs, inv->npkgs);
    assert_string_equal(back->os.codename, inv->os.codename);
    for (size_t i = 0; i < inv->npkgs; i++) {
        assert_int_equal(back->pkgs[i].kind, inv->pkgs[i].kind);
        assert_string_equal(back->pkgs[i].name, inv->pkgs[i].name);
        assert_string_equal(back->pkgs[i].version, inv->pkgs[i].version);
        assert_string_equal(back->pkgs[i].src_name, inv->pkgs[i].src_name);
        assert_string_equal(back->pkgs[i].src_version, inv->pkgs[i].src_version);
        assert_string_equal(back->pkgs[i].path, inv->pkgs[i].path);
    }
    static const char *const bad[] = {"", "wharf-inventory 2\n", "wharf-inventory 1\nos\tx\n",
                                      "wharf-inventory 1\nos\ta\tb\tc\td\nrpm\tonly\n",
                                      "wharf-inventory 1\nos\ta\tb\tc\td\nnope\ta\tb\t\t\t-\tp\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct wh_inventory *x = NULL;
        assert_int_equal(wh_inventory_from_text(&x, bad[i], strlen(bad[i])), WH_EINVALID);
        assert_null(x);
    }

    struct wh_findings *plain = NULL, *m1 = NULL, *m2 = NULL;
    wh_match_memo *mm = NULL;
    assert_int_equal(wh_match(&plain, db, back), 0);
    assert_int_equal(wh_match_memo_new(&mm, db), 0);
    assert_int_equal(wh_match_memoized(&m1, mm, back), 0);
    assert_int_equal(wh_match_memoized(&m2, mm, inv), 0); /* every package from the memo */
    assert_true(plain->n > 0);
    char fp0[40], fp1[40], fp2[40];
    wh_findings_fingerprint(plain, fp0, sizeof(fp0));
    wh_findings_fingerprint(m1, fp1, sizeof(fp1));
    wh_findings_fingerprint(m2, fp2, sizeof(fp2));
    assert_string_equal(fp0, fp1);
    assert_string_equal(fp0, fp2);
    const char *dg = "sha256:0123456789012345678901234567890123456789012345678901234567890123";
    json_t *want = wh_report_json(plain, dg);
    for (int k = 0; k < 2; k++) {
        char *t = wh_report_text(k ? m2 : plain, dg);
        json_t *got = json_loads(t, 0, NULL);
        assert_non_null(got);
        json_object_del(got, "generated_at");
        json_object_del(want, "generated_at");
        assert_true(json_equal(got, want));
        json_decref(got);
        free(t);
    }
    json_decref(want);
    wh_findings_free(plain);
    wh_findings_free(m1);
    wh_findings_free(m2);
    wh_match_memo_free(mm);
    free(text);
    wh_inventory_free(back);
    wh_inventory_free(inv);
    wh_vulndb_close(db);
    free(target);
    free(layer);
    free(dir);
}

/* ---- database ---- */

static void test_scan__import_atomic(void **state)
{
    (void)state;
    char *dbp = wh_sprintf("%s/vulndb.sqlite", tmp), *bad = wh_sprintf("%s/bad.json", tmp),
         *odd = wh_sprintf("%s/odd.json", tmp), *zip = wh_sprintf("%s/osv.zip", tmp);
    const char *good[] = {"tests/data/vulndb/alpine/3.18"};
    struct wh_vulndb_stats st;
    wh_vulndb *db = NULL;
    /* no database yet / an empty one */
    assert_int_equal(wh_vulndb_open(&db, dbp), WH_ENOTFOUND);
    assert_int_equal(wh_vulndb_import(dbp, NULL, 0, &st), 0);
    assert_int_equal(wh_vulndb_open(&db, dbp), 0);
    assert_int_equal(wh_vulndb_count(db), 0);
    wh_vulndb_close(db);
    assert_int_equal(wh_vulndb_import(dbp, good, 1, &st), 0);
    assert_int_equal(st.files, 4);
    assert_int_equal(wh_vulndb_open(&db, dbp), 0);
    int64_t n = wh_vulndb_count(db);
    assert_true(n > 50);
    /* a copy that cannot reach the disk, or be renamed into place, is an error and
     * leaves the old database and no stray file */
#ifndef WH_NO_FAILPOINTS
    const char *osv[] = {"tests/data/vulndb/osv"};
    static const char *const fps[] = {"vulndb.fsync=EIO", "vulndb.rename=ENOSPC"};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(wh_failpoint_set(fps[i]), 0);
        assert_int_equal(wh_vulndb_import(dbp, osv, 1, &st), WH_ERROR);
        assert_int_equal(wh_failpoint_set(NULL), 0);
        wh_vulndb *again = NULL;
        assert_int_equal(wh_vulndb_open(&again, dbp), 0);
        assert_int_equal(wh_vulndb_count(again), n);
        wh_vulndb_close(again);
        assert_int_equal(count_entries(tmp, "vulndb.sqlite.new."), 0);
    }
#endif
    /* a failing import leaves the old file in place, readers keep working */
    tf_write(tmp, "bad.json", "{\"truncated\": ", 0, 0644);
    const char *both[] = {"tests/data/vulndb/osv", bad};
    assert_int_equal(wh_vulndb_import(dbp, both, 2, &st), WH_EINVALID);
    assert_non_null(strstr(wh_error_msg(), "bad.json"));
    tf_write(tmp, "odd.json", "{\"hello\": \"world\"}", 0, 0644);
    const char *one[] = {odd};
    assert_int_equal(wh_vulndb_import(dbp, one, 1, &st), WH_EINVALID);
    assert_non_null(strstr(wh_error_msg(), "no format"));
    assert_int_equal(wh_vulndb_count(db), n);
    wh_vulndb_close(db);
    assert_int_equal(wh_vulndb_open(&db, dbp), 0);
    assert_int_equal(wh_vulndb_count(db), n);
    wh_vulndb_close(db);
    char *leftover = wh_sprintf("%s.new.*", dbp);
    glob_t g;
    assert_int_equal(glob(leftover, 0, NULL, &g), GLOB_NOMATCH);
    /* OSV from a .zip adds to what is there; re-importing the same records replaces them */
    const char *names[] = {"a/GHSA-jf85-cpcp-j695.json", "b/GHSA-xvch-5gv4-984h.json"};
    size_t l1, l2;
    char *d1 = tf_slurp("tests/data/vulndb/osv/GHSA-jf85-cpcp-j695.json", &l1);
    char *d2 = tf_slurp("tests/data/vulndb/osv/GHSA-xvch-5gv4-984h.json", &l2);
    struct tf_entry ze[] = {{.path = names[0], .data = d1, .len = l1}, {.path = names[1], .data = d2, .len = l2}};
    struct archive *a = archive_write_new();
    archive_write_set_format_zip(a);
    archive_write_open_filename(a, zip);
    for (int i = 0; i < 2; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, ze[i].path);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (int64_t)ze[i].len);
        archive_write_header(a, e);
        archive_write_data(a, ze[i].data, ze[i].len);
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    const char *z[] = {zip};
    assert_int_equal(wh_vulndb_import(dbp, z, 1, &st), 0);
    assert_int_equal(st.files, 2);
    assert_int_equal(wh_vulndb_open(&db, dbp), 0);
    int64_t n2 = wh_vulndb_count(db);
    assert_true(n2 > n);
    wh_vulndb_close(db);
    assert_int_equal(wh_vulndb_import(dbp, z, 1, &st), 0);
    assert_int_equal(wh_vulndb_open(&db, dbp), 0);
    assert_int_equal(wh_vulndb_count(db), n2);
    wh_vulndb_close(db);
    /* status names the sources */
    char *status = wh_sprintf("%s/status.txt", tmp);
    FILE *sf = fopen(status, "w");
    assert_int_equal(wh_vulndb_status(dbp, sf), 0);
    fclose(sf);
    size_t sl;
    char *stext = tf_slurp(status, &sl);
    assert_non_null(strstr(stext, "alpine-secdb"));
    assert_non_null(strstr(stext, "osv"));
    assert_non_null(strstr(stext, "alpine:3.18"));
    /* wh_vulndb_info: the same as data */
    struct wh_vulndb_info info;
    assert_int_equal(wh_vulndb_info(dbp, &info), 0);
    assert_int_equal(info.advisories, n2);
    assert_int_equal(info.nvd_records, 0);
    assert_int_equal(info.nsources, 2);
    assert_string_equal(info.sources[0].name, "alpine-secdb");
    assert_int_equal(info.sources[0].files, 4);
    assert_string_equal(info.sources[1].name, "osv");
    assert_int_equal(info.sources[1].files, 2);
    assert_int_equal(info.sources[0].records + info.sources[1].records, n2);
    assert_int_equal(strlen(info.updated_at), 20); /* 2026-12-03T05:57:42Z */
    assert_non_null(strstr(stext, info.updated_at));
    assert_string_equal(info.sources[1].imported_at, info.updated_at);
    char *missing = wh_sprintf("%s/none.sqlite", tmp);
    assert_int_equal(wh_vulndb_info(missing, &info), WH_ENOTFOUND);
    assert_int_equal(info.nsources, 0);
    free(missing);
    free(stext);
    free(status);
    free(d1);
    free(d2);
    free(leftover);
    free(zip);
    free(odd);
    free(bad);
    free(dbp);
}

/* A tracker document over the streaming threshold is imported one source package at a time. */
static void test_scan__import_large_tracker(void **state)
{
    (void)state;
    char *path = wh_sprintf("%s/tracker.json", tmp), *dbp = wh_sprintf("%s/vulndb.sqlite", tmp);
    char pad[1200];
    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    FILE *f = fopen(path, "w");
    fputs("{", f);
    for (int i = 0; i < 2000; i++) {
        fprintf(f, "%s\n \"pkg%04d\": {", i ? "," : "", i);
        for (int k = 0; k < 4; k++)
            fprintf(f, "%s\"CVE-2020-%04d%d\": {\"description\": \"escaped \\\" quote {[ %s\","
                       " \"releases\": {\"bookworm\": {\"status\": \"open\", \"urgency\": \"low\"},"
                       " \"bullseye\": {\"status\": \"resolved\", \"fixed_version\": \"1.%d\"}}}",
                    k ? ", " : "", i, k, pad, k);
        fputs("}", f);
    }
    fputs("\n}\n", f);
    fclose(f);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > (8 << 20));
    const char *paths[] = {path};
    struct wh_vulndb_stats vs;
    assert_int_equal(wh_vulndb_import(dbp, paths, 1, &vs), 0);
    assert_int_equal(vs.files, 1);
    assert_int_equal(vs.advisories, 2000 * 4 * 2);
    wh_vulndb *db = NULL;
    assert_int_equal(wh_vulndb_open(&db, dbp), 0);
    struct wh_inventory *inv = os_inv("debian", "11.9");
    add(inv, WH_PKG_DPKG, "bin1999", "1.1", "pkg1999");
    struct wh_findings *fs = NULL;
    assert_int_equal(wh_match(&fs, db, inv), 0);
    /* bullseye: fixed in 1.0..1.3; 1.1 is below 1.2 and 1.3 */
    assert_int_equal(fs->n, 2);
    expect_finding(fs, "bin1999", NULL, "CVE-2020-19992", "fixed", "1.2", WH_SEV_UNKNOWN);
    assert_non_null(strstr(fs->items[0].title, "escaped \" quote {["));
    wh_findings_free(fs);
    wh_inventory_free(inv);
    wh_vulndb_close(db);
    /* a truncated large document is refused and changes nothing */
    assert_int_equal(truncate(path, st.st_size / 2), 0);
    assert_int_equal(wh_vulndb_import(dbp, paths, 1, &vs), WH_EINVALID);
    assert_int_equal(wh_vulndb_open(&db, dbp), 0);
    assert_int_equal(wh_vulndb_count(db), 2000 * 4 * 2);
    wh_vulndb_close(db);
    free(dbp);
    free(path);
}

/* NVD in the API 2.0 response shape: {"vulnerabilities":[{"cve":{...}}]} */
static void test_scan__nvd_api_page(void **state)
{
    (void)state;
    size_t l1, l2;
    char *a = tf_slurp("tests/data/vulndb/nvd/CVE-2023-45853.json", &l1);
    char *b = tf_slurp("tests/data/vulndb/nvd/CVE-2011-3374.json", &l2);
    char *page = wh_sprintf("{\"resultsPerPage\":2,\"startIndex\":0,\"totalResults\":2,"
                            "\"format\":\"NVD_CVE\",\"version\":\"2.0\",\"vulnerabilities\":"
                            "[{\"cve\":%s},{\"cve\":%s}]}", a, b);
    tf_write(tmp, "page.json", page, 0, 0644);
    char *pp = wh_sprintf("%s/page.json", tmp);
    const char *data[] = {"tests/data/vulndb/debian/tracker-bookworm-fixture.json", pp};
    wh_vulndb *db = load_db(data, 2);
    struct wh_inventory *inv = os_inv("debian", "12.11");
    add(inv, WH_PKG_DPKG, "zlib1g", "1:1.2.13.dfsg-1", "zlib");
    add(inv, WH_PKG_DPKG, "apt", "2.6.1", "apt");
    struct wh_findings *f = NULL;
    assert_int_equal(wh_match(&f, db, inv), 0);
    /* Debian's word wins where it has one (apt: unimportant), NVD's score where not (zlib) */
    expect_finding(f, "zlib1g", NULL, "CVE-2023-45853", "affected", "", WH_SEV_CRITICAL);
    expect_finding(f, "apt", NULL, "CVE-2011-3374", "affected", "", WH_SEV_NEGLIGIBLE);
    const struct wh_finding *x = find(f, "apt", NULL, "CVE-2011-3374");
    assert_true(x && x->cvss_score > 3.6 && x->cvss_score < 3.8);
    assert_non_null(x && strstr(x->description, "apt-key"));
    wh_findings_free(f);
    wh_inventory_free(inv);
    wh_vulndb_close(db);
    free(pp);
    free(page);
    free(a);
    free(b);
}

static void test_scan__update_without_network(void **state)
{
    (void)state;
    char *dbp = wh_sprintf("%s/vulndb.sqlite", tmp);
    const char *feeds[] = {"http://127.0.0.1:9/tracker.json"};
    struct wh_vulndb_stats st;
    assert_int_equal(wh_vulndb_update(dbp, feeds, 1, &st), WH_ERROR);
    assert_non_null(strstr(wh_error_msg(), "127.0.0.1:9/tracker.json"));
    assert_non_null(strstr(wh_error_msg(), "no network"));
    assert_non_null(strstr(wh_error_msg(), "not changed"));
    assert_int_not_equal(access(dbp, F_OK), 0);
    free(dbp);
}

/* ---- reports ---- */

static void test_scan__cvss(void **state)
{
    (void)state;
    static const struct {
        const char *v;
        double score;
    } cases[] = {
        {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8},
        {"CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:L/A:N", 3.7},
        {"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1},
        {"CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8},
        {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0},
        {"CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:N", 0.0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double s = -1;
        assert_int_equal(wh_cvss3_score(&s, cases[i].v), 0);
        assert_float_equal(s, cases[i].score, 0.001);
    }
    double s;
    assert_int_equal(wh_cvss3_score(&s, "CVSS:2.0/AV:N"), WH_EINVALID);
    assert_int_equal(wh_cvss3_score(&s, "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"), WH_EINVALID);
    assert_int_equal(wh_severity_from_score(9.0), WH_SEV_CRITICAL);
    assert_int_equal(wh_severity_from_score(6.9), WH_SEV_MEDIUM);
    assert_int_equal(wh_severity_from_score(0), WH_SEV_UNKNOWN);
}

static void test_scan__reports_empty(void **state)
{
    (void)state;
    struct wh_findings f = {0};
    json_t *r = wh_report_json(&f, "");
    assert_true(json_is_array(json_object_get(r, "vulnerabilities")));
    assert_string_equal(json_string_value(json_object_get(r, "severity")), "None");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "scanner"), "name")), "wharf");
    json_decref(r);
    struct wh_inventory *inv = os_inv("debian", "12.11");
    add(inv, WH_PKG_DPKG, "zlib1g", "1:1.2.13.dfsg-1", "zlib");
    add(inv, WH_PKG_NPM, "lodash", "4.17.11", NULL);
    json_t *bom = wh_report_cyclonedx(inv, "oci:x");
    assert_string_equal(json_string_value(json_object_get(bom, "bomFormat")), "CycloneDX");
    assert_string_equal(json_string_value(json_object_get(bom, "specVersion")), "1.5");
    assert_true(strncmp(json_string_value(json_object_get(bom, "serialNumber")), "urn:uuid:", 9) == 0);
    json_t *comps = json_object_get(bom, "components");
    assert_int_equal(json_array_size(comps), 3); /* the OS and two packages */
    assert_string_equal(json_string_value(json_object_get(json_array_get(comps, 1), "purl")),
                        "pkg:deb/debian/zlib1g@1.2.13.dfsg-1?epoch=1&distro=debian-12.11");
    json_decref(bom);
    wh_inventory_free(inv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_scan__bookworm_f1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__rematch_paths_equal_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__bookworm_fixed_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__alpine_318, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__alpine_311, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__osv_languages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__osv_distros, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__match_concurrently, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__import_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__import_large_tracker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__nvd_api_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__update_without_network, setup, teardown),
        cmocka_unit_test(test_scan__cvss),
        cmocka_unit_test(test_scan__reports_empty),
    };
    wh_log_set_level(WH_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
