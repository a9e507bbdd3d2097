/*
 * test_scan_catalog.c: OS detection and the catalogers on real-format
 * inputs: dpkg status and distroless status.d, apk installed, the three rpm
 * database forms (fixtures from tests/data/rpm), npm package.json and
 * lockfiles, Python metadata, Go build info (a real Go binary from the system
 * when one is installed, and a hand-built one crossing a read boundary) and
 * Java archives with nested jars.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

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
    tf_rmrf(tmp);
    free(tmp);
    return 0;
}

/* ---- OS detection ---- */

struct files {
    const char *path[4], *content[4];
};

static const char *files_get(void *ctx, const char *path)
{
    const struct files *f = ctx;
    for (int i = 0; i < 4 && f->path[i]; i++)
        if (strcmp(f->path[i], path) == 0)
            return f->content[i];
    return NULL;
}

static void test_scan__os_detect(void **state)
{
    (void)state;
    static const struct {
        struct files f;
        const char *family, *version, *codename;
    } cases[] = {
        {{{"etc/debian_version", "etc/os-release"},
          {"12.11\n", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n"}},
         "debian", "12.11", "bookworm"},
        {{{"etc/debian_version"}, {"11.9\n"}}, "debian", "11.9", "bullseye"},
        {{{"etc/debian_version"}, {"trixie/sid\n"}}, "debian", "trixie/sid", "trixie"},
        /* Ubuntu ships a debian_version too and must win */
        {{{"etc/debian_version", "etc/os-release", "etc/lsb-release"},
          {"bookworm/sid\n", "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"22.04\"\nVERSION_CODENAME=jammy\n",
           "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=22.04\nDISTRIB_CODENAME=jammy\n"}},
         "ubuntu", "22.04", "jammy"},
        {{{"etc/lsb-release", "etc/debian_version"},
          {"DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=20.04\nDISTRIB_CODENAME=focal\n", "bullseye/sid\n"}},
         "ubuntu", "20.04", "focal"},
        {{{"etc/alpine-release", "etc/os-release"}, {"3.18.4\n", "ID=alpine\nVERSION_ID=3.18.4\n"}},
         "alpine", "3.18.4", ""},
        {{{"etc/os-release", "etc/redhat-release"},
          {"ID=\"rocky\"\nVERSION_ID=\"9\"\nPRETTY_NAME=\"Rocky Linux 9.3 (Blue Onyx)\"\n",
           "Rocky Linux release 9.3 (Blue Onyx)\n"}},
         "rocky", "9.3", ""},
        {{{"etc/redhat-release"}, {"CentOS Linux release 7.9.2009 (Core)\n"}}, "centos", "7.9.2009", ""},
        {{{"usr/lib/os-release"}, {"NAME=Fedora\nID=fedora\nVERSION_ID=39\n"}}, "fedora", "39", ""},
        {{{"etc/hostname"}, {"x\n"}}, "", "", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct wh_os os;
        wh_os_detect(&os, files_get, (void *)(uintptr_t)&cases[i].f);
        assert_string_equal(os.family, cases[i].family);
        assert_string_equal(os.version, cases[i].version);
        assert_string_equal(os.codename, cases[i].codename);
    }
}

/* ---- package databases through a rootfs ---- */

static struct wh_inventory *scan_root(const char *root)
{
    struct wh_inventory *inv = NULL;
    struct wh_scan_opts opts = {0};
    char *t = wh_sprintf("rootfs:%s", root);
    assert_int_equal(wh_scan_inventory(&inv, t, &opts), 0);
    free(t);
    return inv;
}

static void expect(const struct wh_inventory *inv, enum wh_pkg_kind k, const char *name,
                   const char *version, const char *src, const char *srcver)
{
    const struct wh_pkg *p = tf_pkg(inv, k, name);
    if (!p)
        fail_msg("package %s not found", name);
    assert_string_equal(p ? p->version : "", version);
    if (src)
        assert_string_equal(p ? p->src_name : "", src);
    if (srcver)
        assert_string_equal(p ? p->src_version : "", srcver);
}

static void test_scan__dpkg(void **state)
{
    (void)state;
    static const char status[] =
        "Package: bash\nEssential: yes\nStatus: install ok installed\nPriority: required\n"
        "Architecture: amd64\nSource: bash (5.2.15-2)\nVersion: 5.2.15-2+b8\n"
        "Description: GNU Bourne Again SHell\n Bash is an sh-compatible command language.\n .\n more\n\n"
        "Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nSource: zlib\n"
        "Version: 1:1.2.13.dfsg-1\n\n"
        "Package: libcap2\nStatus: install ok installed\nSource: libcap2 (1:2.66-4+deb12u2)\n"
        "Version: 1:2.66-4+deb12u2+b2\n\n"
        "Package: removed\nStatus: deinstall ok config-files\nVersion: 1.0\n\n"
        "Package: purged\nStatus: purge ok not-installed\nVersion: 1.0\n\n"
        "Package: half\nStatus: install ok half-configured\nVersion: 2.0\n\n"
        "Package: tar\r\nStatus: install ok installed\r\nVersion: 1.34+dfsg-1.2+deb12u1\r\n";
    char *root = wh_sprintf("%s/root", tmp);
    tf_write(root, "var/lib/dpkg/status", status, 0, 0644);
    /* distroless: one stanza per file, md5sums ignored */
    tf_write(root, "var/lib/dpkg/status.d/base-files",
             "Package: base-files\nStatus: install ok installed\nVersion: 12.4+deb12u5\n", 0, 0644);
    tf_write(root, "var/lib/dpkg/status.d/base-files.md5sums", "abc  etc/issue\n", 0, 0644);
    struct wh_inventory *inv = scan_root(root);
    expect(inv, WH_PKG_DPKG, "bash", "5.2.15-2+b8", "bash", "5.2.15-2");
    expect(inv, WH_PKG_DPKG, "zlib1g", "1:1.2.13.dfsg-1", "zlib", "1:1.2.13.dfsg-1");
    expect(inv, WH_PKG_DPKG, "libcap2", "1:2.66-4+deb12u2+b2", "libcap2", "1:2.66-4+deb12u2");
    expect(inv, WH_PKG_DPKG, "half", "2.0", "half", "2.0");
    expect(inv, WH_PKG_DPKG, "tar", "1.34+dfsg-1.2+deb12u1", "tar", NULL);
    expect(inv, WH_PKG_DPKG, "base-files", "12.4+deb12u5", NULL, NULL);
    assert_null(tf_pkg(inv, WH_PKG_DPKG, "removed"));
    assert_null(tf_pkg(inv, WH_PKG_DPKG, "purged"));
    assert_int_equal(inv->npkgs, 6);
    const struct wh_pkg *bash = tf_pkg(inv, WH_PKG_DPKG, "bash");
    assert_string_equal(bash && bash->arch ? bash->arch : "", "amd64");
    wh_inventory_free(inv);
    free(root);
}

static void test_scan__apk(void **state)
{
    (void)state;
    static const char installed[] =
        "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nS:383152\nI:622592\nT:the musl c library\n"
        "U:https://musl.libc.org/\nL:MIT\no:musl\nm:Timo\nt:1\nc:abc\nF:lib\nR:ld-musl-x86_64.so.1\n\n"
        "P:libcrypto3\nV:3.1.4-r2\nA:x86_64\no:openssl\n\n"
        "P:ssl_client\nV:1.36.1-r5\no:busybox\n";
    char *root = wh_sprintf("%s/root", tmp);
    tf_write(root, "lib/apk/db/installed", installed, 0, 0644);
    tf_write(root, "etc/alpine-release", "3.18.4\n", 0, 0644);
    struct wh_inventory *inv = scan_root(root);
    assert_string_equal(inv->os.family, "alpine");
    expect(inv, WH_PKG_APK, "musl", "1.2.4-r2", "musl", "1.2.4-r2");
    expect(inv, WH_PKG_APK, "libcrypto3", "3.1.4-r2", "openssl", "3.1.4-r2");
    expect(inv, WH_PKG_APK, "ssl_client", "1.36.1-r5", "busybox", NULL);
    assert_int_equal(inv->npkgs, 3);
    wh_inventory_free(inv);
    free(root);
}

static void rpm_case(const char *fixture, const char *dest)
{
    size_t len;
    char *src = wh_sprintf("tests/data/rpm/%s", fixture);
    char *data = tf_slurp(src, &len);
    char *root = wh_sprintf("%s/root-%s", tmp, fixture);
    tf_write(root, dest, data, len, 0644);
    tf_write(root, "etc/os-release", "ID=\"rocky\"\nVERSION_ID=\"9.3\"\n", 0, 0644);
    struct wh_inventory *inv = scan_root(root);
    assert_int_equal(inv->npkgs, 2);
    expect(inv, WH_PKG_RPM, "demo", "1:2.3-4.el9", "demo", "1:2.3-4.el9");
    expect(inv, WH_PKG_RPM, "demo-libs", "1:2.3-4.el9", "demo", "1:2.3-4.el9");
    const struct wh_pkg *demo = tf_pkg(inv, WH_PKG_RPM, "demo");
    assert_string_equal(demo && demo->arch ? demo->arch : "", "noarch");
    wh_inventory_free(inv);
    free(root);
    free(data);
    free(src);
}

static void test_scan__rpm_sqlite(void **state)
{
    (void)state;
    rpm_case("rpmdb.sqlite", "var/lib/rpm/rpmdb.sqlite");
}

static void test_scan__rpm_bdb(void **state)
{
    (void)state;
    rpm_case("Packages", "var/lib/rpm/Packages");
}

static void test_scan__rpm_ndb(void **state)
{
    (void)state;
    rpm_case("Packages.db", "usr/lib/sysimage/rpm/Packages.db");
}

static void test_scan__rpm_garbage(void **state)
{
    (void)state;
    /* damaged databases are skipped with a warning, never fatal, never out of bounds */
    char *root = wh_sprintf("%s/root", tmp);
    tf_write(root, "var/lib/rpm/Packages", "\x00\x00\x00\x00 not berkeley", 18, 0644);
    tf_write(root, "var/lib/rpm/rpmdb.sqlite", "SQLite format 3\0garbage", 24, 0644);
    tf_write(root, "usr/lib/sysimage/rpm/Packages.db", "RpmP\0\0\0\0", 8, 0644);
    struct wh_inventory *inv = scan_root(root);
    assert_int_equal(inv->npkgs, 0);
    wh_inventory_free(inv);
    free(root);
}

static void test_scan__npm_python(void **state)
{
    (void)state;
    char *root = wh_sprintf("%s/root", tmp);
    tf_write(root, "app/node_modules/lodash/package.json",
             "{\"name\":\"lodash\",\"version\":\"4.17.11\",\"license\":\"MIT\"}", 0, 0644);
    tf_write(root, "app/node_modules/@babel/core/package.json",
             "{\"name\":\"@babel/core\",\"version\":\"7.22.0\"}", 0, 0644);
    tf_write(root, "app/node_modules/x/node_modules/minimist/package.json",
             "{\"name\":\"minimist\",\"version\":\"0.0.8\"}", 0, 0644);
    /* sub-path helper files are not packages */
    tf_write(root, "app/node_modules/rxjs/ajax/package.json", "{\"main\":\"x.js\"}", 0, 0644);
    tf_write(root, "app/node_modules/rxjs/package.json", "{\"name\":\"rxjs\",\"version\":\"7.8.1\"}", 0, 0644);
    tf_write(root, "srv/package-lock.json",
             "{\"lockfileVersion\":3,\"packages\":{\"\":{\"name\":\"srv\"},"
             "\"node_modules/minimist\":{\"version\":\"1.2.5\"},"
             "\"node_modules/a/node_modules/lodash-es\":{\"version\":\"4.17.13\"},"
             "\"node_modules/linked\":{\"link\":true}}}", 0, 0644);
    tf_write(root, "old/package-lock.json",
             "{\"lockfileVersion\":1,\"dependencies\":{\"qs\":{\"version\":\"6.5.2\","
             "\"dependencies\":{\"side\":{\"version\":\"1.0.0\"}}}}}", 0, 0644);
    tf_write(root, "usr/lib/python3/dist-packages/requests-2.30.0.dist-info/METADATA",
             "Metadata-Version: 2.1\nName: requests\nVersion: 2.30.0\nSummary: HTTP\n\nName: body\n", 0, 0644);
    tf_write(root, "usr/lib/python3/site-packages/Old_Pkg.egg-info/PKG-INFO",
             "Metadata-Version: 1.0\nName: Old_Pkg\nVersion: 0.9\n", 0, 0644);
    tf_write(root, "usr/lib/python3/site-packages/single-1.0.egg-info",
             "Metadata-Version: 1.0\nName: single\nVersion: 1.0\n", 0, 0644);
    struct wh_inventory *inv = scan_root(root);
    expect(inv, WH_PKG_NPM, "lodash", "4.17.11", NULL, NULL);
    expect(inv, WH_PKG_NPM, "@babel/core", "7.22.0", NULL, NULL);
    expect(inv, WH_PKG_NPM, "rxjs", "7.8.1", NULL, NULL);
    expect(inv, WH_PKG_NPM, "lodash-es", "4.17.13", NULL, NULL);
    expect(inv, WH_PKG_NPM, "qs", "6.5.2", NULL, NULL);
    expect(inv, WH_PKG_NPM, "side", "1.0.0", NULL, NULL);
    assert_null(tf_pkg(inv, WH_PKG_NPM, "linked"));
    assert_null(tf_pkg(inv, WH_PKG_NPM, "srv"));
    size_t minimist = 0;
    for (size_t i = 0; i < inv->npkgs; i++)
        minimist += strcmp(inv->pkgs[i].name, "minimist") == 0;
    assert_int_equal(minimist, 2); /* 0.0.8 nested and 1.2.5 from the lockfile */
    expect(inv, WH_PKG_PYPI, "requests", "2.30.0", NULL, NULL);
    expect(inv, WH_PKG_PYPI, "Old_Pkg", "0.9", NULL, NULL);
    expect(inv, WH_PKG_PYPI, "single", "1.0", NULL, NULL);
    assert_string_equal(wh_pkg_purl(inv, tf_pkg(inv, WH_PKG_NPM, "@babel/core")), "pkg:npm/%40babel/core@7.22.0");
    assert_string_equal(wh_pkg_purl(inv, tf_pkg(inv, WH_PKG_PYPI, "Old_Pkg")), "pkg:pypi/old-pkg@0.9");
    wh_inventory_free(inv);
    free(root);
}

static size_t put_uvarint(unsigned char *p, size_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (unsigned char)v;
    return n;
}

/* An ELF-looking file with Go 1.18+ inline build info placed across a 64 KiB read boundary. */
static void test_scan__gobin_synthetic(void **state)
{
    (void)state;
    static const char modinfo[] =
        "path\texample.com/app\nmod\texample.com/app\t(devel)\t\n"
        "dep\tgolang.org/x/net\tv0.16.0\th1:abc=\n"
        "dep\tgithub.com/old/mod\tv1.0.0\th1:x=\n=>\tgithub.com/new/mod\tv1.2.0\th1:y=\n"
        "build\t-compiler=gc\n";
    size_t size = 200000, off = 65536 - 5;
    unsigned char *bin = wh_calloc(1, size);
    memcpy(bin, "\x7f" "ELF", 4);
    unsigned char *p = bin + off;
    memcpy(p, "\xff Go buildinf:", 14);
    p[14] = 8;
    p[15] = 2;
    p += 32;
    p += put_uvarint(p, 8);
    memcpy(p, "go1.21.3", 8);
    p += 8;
    size_t ml = strlen(modinfo) + 32;
    p += put_uvarint(p, ml);
    memset(p, 0x30, 16);
    memcpy(p + 16, modinfo, strlen(modinfo));
    memset(p + 16 + strlen(modinfo), 0xf9, 16);
    char *root = wh_sprintf("%s/root", tmp);
    tf_write(root, "usr/local/bin/app", (const char *)bin, size, 0755);
    /* the same bytes without an exec bit are not looked at */
    tf_write(root, "usr/share/data.bin", (const char *)bin, size, 0644);
    struct wh_inventory *inv = scan_root(root);
    expect(inv, WH_PKG_GO, "stdlib", "v1.21.3", NULL, NULL);
    expect(inv, WH_PKG_GO, "golang.org/x/net", "v0.16.0", NULL, NULL);
    expect(inv, WH_PKG_GO, "github.com/new/mod", "v1.2.0", NULL, NULL);
    assert_null(tf_pkg(inv, WH_PKG_GO, "github.com/old/mod"));
    assert_null(tf_pkg(inv, WH_PKG_GO, "example.com/app"));
    assert_int_equal(inv->npkgs, 3);
    const struct wh_pkg *std = tf_pkg(inv, WH_PKG_GO, "stdlib");
    assert_string_equal(std ? std->path : "", "usr/local/bin/app");
    wh_inventory_free(inv);
    free(root);
    free(bin);
}

static void test_scan__gobin_real(void **state)
{
    (void)state;
    static const char *const candidates[] = {"/usr/bin/umoci", "/usr/bin/skopeo", "/usr/bin/podman"};
    const char *found = NULL;
    for (size_t i = 0; i < 3 && !found; i++)
        if (access(candidates[i], R_OK) == 0)
            found = candidates[i];
    if (!found)
        skip();
    size_t len;
    char *data = tf_slurp(found, &len);
    char *root = wh_sprintf("%s/root", tmp);
    tf_write(root, "usr/bin/tool", data, len, 0755);
    struct wh_inventory *inv = scan_root(root);
    const struct wh_pkg *std = tf_pkg(inv, WH_PKG_GO, "stdlib");
    assert_non_null(std);
    assert_true(std && strncmp(std->version, "v1.", 3) == 0);
    /* Debian builds Go in GOPATH mode: no module lines, only the toolchain */
    for (size_t i = 0; i < inv->npkgs; i++)
        assert_int_equal(inv->pkgs[i].kind, WH_PKG_GO);
    wh_inventory_free(inv);
    free(root);
    free(data);
}

static char *zip_bytes(const char *const *names, const char *const *contents, const size_t *lens, size_t n,
                       size_t *len_out)
{
    struct archive *a = archive_write_new();
    size_t cap = 1 << 20, used = 0;
    char *buf = wh_malloc(cap);
    archive_write_set_format_zip(a);
    archive_write_open_memory(a, buf, cap, &used);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, names[i]);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (int64_t)lens[i]);
        archive_write_header(a, e);
        archive_write_data(a, contents[i], lens[i]);
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    *len_out = used;
    return buf;
}

static void test_scan__java(void **state)
{
    (void)state;
    static const char inner_props[] = "groupId=com.fasterxml.jackson.core\nartifactId=jackson-databind\nversion=2.9.10\n";
    static const char outer_props[] = "#Generated by Maven\ngroupId=org.apache.logging.log4j\n"
                                      "artifactId=log4j-core\nversion=2.14.1\n";
    const char *in_names[] = {"META-INF/maven/com.fasterxml.jackson.core/jackson-databind/pom.properties"};
    const char *in_data[] = {inner_props};
    size_t in_lens[] = {strlen(inner_props)}, inner_len;
    char *inner = zip_bytes(in_names, in_data, in_lens, 1, &inner_len);
    const char *names[] = {"META-INF/MANIFEST.MF",
                           "META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties",
                           "BOOT-INF/lib/jackson-databind-2.9.10.jar"};
    const char *data[] = {"Manifest-Version: 1.0\n", outer_props, inner};
    size_t lens[] = {22, strlen(outer_props), inner_len}, jar_len;
    char *jar = zip_bytes(names, data, lens, 3, &jar_len);
    char *root = wh_sprintf("%s/root", tmp);
    tf_write(root, "opt/app/app.jar", jar, jar_len, 0644);
    tf_write(root, "opt/app/broken.jar", "PK not really", 0, 0644);
    struct wh_inventory *inv = scan_root(root);
    expect(inv, WH_PKG_MAVEN, "org.apache.logging.log4j:log4j-core", "2.14.1", NULL, NULL);
    expect(inv, WH_PKG_MAVEN, "com.fasterxml.jackson.core:jackson-databind", "2.9.10", NULL, NULL);
    assert_int_equal(inv->npkgs, 2);
    assert_string_equal(wh_pkg_purl(inv, tf_pkg(inv, WH_PKG_MAVEN, "org.apache.logging.log4j:log4j-core")),
                        "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1");
    wh_inventory_free(inv);
    free(root);
    free(jar);
    free(inner);
}

static void test_scan__python_zipped_egg(void **state)
{
    (void)state;
    static const char pkginfo[] = "Metadata-Version: 1.1\nName: setuptools\nVersion: 39.0.1\n";
    const char *names[] = {"setuptools/__init__.py", "EGG-INFO/PKG-INFO"};
    const char *data[] = {"", pkginfo};
    size_t lens[] = {0, strlen(pkginfo)}, len;
    char *egg = zip_bytes(names, data, lens, 2, &len);
    char *root = wh_sprintf("%s/root", tmp);
    tf_write(root, "usr/lib/python3/site-packages/setuptools-39.0.1-py3.6.egg", egg, len, 0644);
    struct wh_inventory *inv = scan_root(root);
    expect(inv, WH_PKG_PYPI, "setuptools", "39.0.1", NULL, NULL);
    assert_int_equal(inv->npkgs, 1);
    wh_inventory_free(inv);
    free(root);
    free(egg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan__os_detect),
        cmocka_unit_test_setup_teardown(test_scan__dpkg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__apk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__rpm_sqlite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__rpm_bdb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__rpm_ndb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__rpm_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__npm_python, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__gobin_synthetic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__gobin_real, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__java, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__python_zipped_egg, setup, teardown),
    };
    wh_log_set_level(WH_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
