/*
 * test_scan_layer.c: the image reader. Layers in order with whiteouts and
 * opaque directories, gzip/zstd/plain layers, OCI layouts and docker save
 * archives, hostile tars (.., absolute paths, links, size lies, bombs), the
 * caps and their messages, clear errors for bad targets, and the per-layer
 * cache (a layer read once is never decompressed again).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "scan/scan_int.h"
#include "scan_fixture.h"

static const char status_ab[] = "Package: a\nStatus: install ok installed\nVersion: 1.0\n\n"
                                "Package: b\nStatus: install ok installed\nVersion: 1.0\nSource: bsrc (0.9)\n";
static const char status_a11[] = "Package: a\nStatus: install ok installed\nVersion: 1.1\n";

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

static void test_scan__path_clean(void **state)
{
    (void)state;
    /* ".." resolves inside the image's root, as a runtime unpacks the layer: it never leaves it */
    static const struct {
        const char *in, *out; /* out NULL = rejected */
        bool climbed;
    } cases[] = {
        {"var/lib/dpkg/status", "var/lib/dpkg/status", false},
        {"/var/lib/dpkg/status", "var/lib/dpkg/status", false},
        {"./var//lib/./dpkg/status", "var/lib/dpkg/status", false},
        {"var/lib/dpkg/", "var/lib/dpkg", false},
        {"a/../var/lib/dpkg/status", "var/lib/dpkg/status", false},
        {"var/lib/x/y/../../dpkg/./status", "var/lib/dpkg/status", false},
        {"../etc/passwd", "etc/passwd", true},
        {"/../../etc/passwd", "etc/passwd", true},
        {"var/../../etc/passwd", "etc/passwd", true},
        {"a/..", NULL, false},
        {"/", NULL, false},
        {".", NULL, false},
        {"..foo/x", "..foo/x", false},
        {"x/...", "x/...", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[256];
        bool climbed = !cases[i].climbed;
        int rc = wh_path_clean(out, sizeof(out), cases[i].in, &climbed);
        if (cases[i].out) {
            assert_int_equal(rc, 0);
            assert_string_equal(out, cases[i].out);
            assert_int_equal(climbed, cases[i].climbed);
        } else {
            assert_int_equal(rc, WH_EINVALID);
        }
    }
    char small[8];
    assert_int_equal(wh_path_clean(small, sizeof(small), "abc/defgh", NULL), WH_EINVALID);
    assert_int_equal(wh_path_clean(small, sizeof(small), "abc/x/../d", NULL), 0);
    assert_string_equal(small, "abc/d");
}

/* Three layers: base, a whiteout + rewritten status, an opaque dir with a new file. */
static void build_layers(char paths[3][512])
{
    struct tf_entry l1[] = {
        {.path = "etc/debian_version", .data = "12.1\n"},
        {.path = "var/lib/dpkg/status", .data = status_ab},
        {.path = "usr/lib/node_modules/foo/package.json", .data = "{\"name\":\"foo\",\"version\":\"1.0.0\"}"},
        {.path = "usr/lib/node_modules/bar/package.json", .data = "{\"name\":\"bar\",\"version\":\"2.0.0\"}"},
        {.path = "opt/app/node_modules/baz/package.json", .data = "{\"name\":\"baz\",\"version\":\"1.0.0\"}"},
    };
    struct tf_entry l2[] = {
        {.path = "usr/lib/node_modules/.wh.foo", .data = ""},
        {.path = "var/lib/dpkg/status", .data = status_a11},
    };
    struct tf_entry l3[] = {
        {.path = "opt/app/.wh..wh..opq", .data = ""},
        {.path = "opt/app/node_modules/qux/package.json", .data = "{\"name\":\"qux\",\"version\":\"3.0.0\"}"},
    };
    snprintf(paths[0], 512, "%s/l1.tar.gz", tmp);
    snprintf(paths[1], 512, "%s/l2.tar.zst", tmp);
    snprintf(paths[2], 512, "%s/l3.tar", tmp);
    tf_tar(paths[0], l1, 5, "gzip");
    tf_tar(paths[1], l2, 2, "zstd");
    tf_tar(paths[2], l3, 2, NULL);
}

static void check_merged(const struct wh_inventory *inv)
{
    assert_string_equal(inv->os.family, "debian");
    const struct wh_pkg *a = tf_pkg(inv, WH_PKG_DPKG, "a");
    assert_non_null(a);
    assert_string_equal(a ? a->version : "", "1.1");
    assert_null(tf_pkg(inv, WH_PKG_DPKG, "b"));            /* status replaced whole */
    assert_null(tf_pkg(inv, WH_PKG_NPM, "foo"));           /* .wh.foo */
    assert_non_null(tf_pkg(inv, WH_PKG_NPM, "bar"));
    assert_null(tf_pkg(inv, WH_PKG_NPM, "baz"));           /* opaque opt/app */
    assert_non_null(tf_pkg(inv, WH_PKG_NPM, "qux"));       /* added in the opaque layer */
    assert_int_equal(inv->npkgs, 3);
}

static void test_scan__whiteouts_oci(void **state)
{
    (void)state;
    char paths[3][512];
    build_layers(paths);
    const char *layers[] = {paths[0], paths[1], paths[2]};
    char *dir = wh_sprintf("%s/oci", tmp);
    tf_oci(dir, layers, 3, "v1", false);
    char *target = wh_sprintf("oci:%s:v1", dir);
    struct wh_inventory *inv = NULL;
    struct wh_scan_opts opts = {0};
    assert_int_equal(wh_scan_inventory(&inv, target, &opts), 0);
    check_merged(inv);
    assert_int_equal(opts.layers_read, 3);
    assert_true(strncmp(opts.image_digest, "sha256:", 7) == 0);
    wh_inventory_free(inv);
    /* the only image in the layout may be named without a tag */
    free(target);
    target = wh_sprintf("oci:%s", dir);
    assert_int_equal(wh_scan_inventory(&inv, target, &opts), 0);
    check_merged(inv);
    wh_inventory_free(inv);
    free(target);
    free(dir);
}

static void test_scan__whiteouts_docker_archive(void **state)
{
    (void)state;
    char paths[3][512];
    build_layers(paths);
    const char *layers[] = {paths[0], paths[1], paths[2]};
    char *file = wh_sprintf("%s/image.tar", tmp);
    tf_docker_archive(file, layers, 3);
    char *target = wh_sprintf("docker-archive:%s", file);
    struct wh_inventory *inv = NULL;
    struct wh_scan_opts opts = {0};
    assert_int_equal(wh_scan_inventory(&inv, target, &opts), 0);
    check_merged(inv);
    wh_inventory_free(inv);
    free(target);
    free(file);
}

static int scan_one_layer(struct wh_inventory **inv, struct tf_entry *e, size_t n, const char *filter,
                          struct wh_scan_opts *opts)
{
    char *layer = wh_sprintf("%s/layer.tar", tmp);
    char *dir = wh_sprintf("%s/oci-one", tmp);
    tf_rmrf(dir);
    tf_tar(layer, e, n, filter);
    const char *layers[] = {layer};
    tf_oci(dir, layers, 1, "t", false);
    char *target = wh_sprintf("oci:%s:t", dir);
    int rc = wh_scan_inventory(inv, target, opts);
    free(target);
    free(dir);
    free(layer);
    return rc;
}

/* Newer `docker save`: an OCI layout inside the tar, layers named blobs/sha256/<hex>, maybe compressed. */
static void test_scan__docker_archive_oci_style(void **state)
{
    (void)state;
    char paths[3][512];
    build_layers(paths);
    struct tf_entry e[5];
    char *bufs[3], *names[3];
    json_t *layers = json_array();
    for (int i = 0; i < 3; i++) {
        size_t len;
        bufs[i] = tf_slurp(paths[i], &len);
        char *dg = tf_digest_file(paths[i]);
        names[i] = wh_sprintf("blobs/sha256/%s", dg + 7);
        e[i] = (struct tf_entry){.path = names[i], .data = bufs[i], .len = len};
        json_array_append_new(layers, json_string(names[i]));
        free(dg);
    }
    /* the config's diff_ids would be of the uncompressed tars: deliberately absent here */
    json_t *man = json_pack("[{s:s, s:o}]", "Config", "blobs/sha256/cfg", "Layers", layers);
    char *mans = json_dumps(man, JSON_COMPACT);
    e[3] = (struct tf_entry){.path = "blobs/sha256/cfg", .data = "{}"};
    e[4] = (struct tf_entry){.path = "manifest.json", .data = mans};
    char *file = wh_sprintf("%s/new-save.tar", tmp), *cache = wh_sprintf("%s/cache", tmp);
    tf_tar(file, e, 5, NULL);
    char *target = wh_sprintf("docker-archive:%s", file);
    struct wh_inventory *inv = NULL;
    struct wh_scan_opts opts = {.cache_dir = cache};
    assert_int_equal(wh_scan_inventory(&inv, target, &opts), 0);
    check_merged(inv);
    wh_inventory_free(inv);
    assert_int_equal(wh_scan_inventory(&inv, target, &opts), 0);
    assert_int_equal(opts.layers_cached, 3);
    check_merged(inv);
    wh_inventory_free(inv);
    for (int i = 0; i < 3; i++) {
        free(bufs[i]);
        free(names[i]);
    }
    json_decref(man);
    free(mans);
    free(target);
    free(cache);
    free(file);
}

static void test_scan__hostile_paths(void **state)
{
    (void)state;
    static const char apk[] = "P:evil\nV:1.0-r0\no:evil\n";
    struct tf_entry e[] = {
        /* ".." stops at the root: these name files inside the image, never outside */
        {.path = "../../../var/lib/dpkg/status", .data = "Package: climbed\nVersion: 6.6\n"},
        {.path = "var/../../var/lib/dpkg/status.d/x", .data = "Package: climbed2\nVersion: 6.6\n"},
        /* absolute: only ever a key inside the image (and it replaces the first status) */
        {.path = "/var/lib/dpkg/status", .data = "Package: abs\nStatus: install ok installed\nVersion: 1.0\n"},
        /* links are never followed, whatever they point at */
        {.path = "lib/apk/db/installed", .type = 'l', .link = "/etc/shadow"},
        {.path = "usr/lib/apk/db/installed", .type = 'h', .link = "/etc/shadow"},
        {.path = "etc/os-release", .type = 'l', .link = "../../../../etc/os-release"},
        {.path = "opt/evil/installed", .data = apk},
    };
    struct wh_inventory *inv = NULL;
    struct wh_scan_opts opts = {0};
    assert_int_equal(scan_one_layer(&inv, e, sizeof(e) / sizeof(e[0]), NULL, &opts), 0);
    assert_int_equal(inv->npkgs, 2);
    assert_string_equal(inv->pkgs[0].name, "abs");
    assert_string_equal(inv->pkgs[0].path, "var/lib/dpkg/status");
    assert_string_equal(inv->pkgs[1].name, "climbed2");
    assert_string_equal(inv->pkgs[1].path, "var/lib/dpkg/status.d/x");
    assert_string_equal(inv->os.family, "");
    wh_inventory_free(inv);
}

/* A hard link to a cataloged file declares the same packages; a link to anything else declares none. */
static void test_scan__hardlinks(void **state)
{
    (void)state;
    struct tf_entry l1[] = {
        {.path = "var/lib/dpkg/status.d/foo", .data = "Package: foo\nVersion: 1.0\n"},
        {.path = "var/lib/dpkg/status.d/bar", .type = 'h', .link = "var/lib/dpkg/status.d/foo"},
        {.path = "var/lib/dpkg/real", .data = "Package: hidden\nVersion: 1.0\n"},
        {.path = "var/lib/dpkg/status", .type = 'h', .link = "var/lib/dpkg/real"},
    };
    struct tf_entry l2[] = {{.path = "var/lib/dpkg/status.d/.wh.foo", .data = ""}};
    char *p1 = wh_sprintf("%s/h1.tar", tmp), *p2 = wh_sprintf("%s/h2.tar", tmp), *dir = wh_sprintf("%s/oci-h", tmp);
    tf_tar(p1, l1, 4, NULL);
    tf_tar(p2, l2, 1, NULL);
    const char *layers[] = {p1, p2};
    tf_oci(dir, layers, 2, "t", false);
    char *t = wh_sprintf("oci:%s:t", dir);
    struct wh_inventory *inv = NULL;
    struct wh_scan_opts opts = {0};
    assert_int_equal(wh_scan_inventory(&inv, t, &opts), 0);
    assert_int_equal(inv->npkgs, 1);
    assert_string_equal(inv->pkgs[0].name, "foo");
    assert_string_equal(inv->pkgs[0].path, "var/lib/dpkg/status.d/bar");
    wh_inventory_free(inv);
    free(t);
    free(dir);
    free(p1);
    free(p2);
}

static void test_scan__entry_cap(void **state)
{
    (void)state;
    struct tf_entry e[] = {{.path = "var/lib/dpkg/status", .fake_size = 3 << 20}};
    struct wh_inventory *inv = NULL;
    struct wh_scan_opts opts = {.max_entry = 1 << 20};
    assert_int_equal(scan_one_layer(&inv, e, 1, "gzip", &opts), WH_ETOOBIG);
    assert_non_null(strstr(wh_error_msg(), "var/lib/dpkg/status"));
    assert_non_null(strstr(wh_error_msg(), "cap"));
    assert_null(inv);
}

static void test_scan__total_cap(void **state)
{
    (void)state;
    /* 16 MiB of zeros compress to a few KiB: a small bomb */
    struct tf_entry e[] = {{.path = "big.bin", .fake_size = 16 << 20},
                           {.path = "var/lib/dpkg/status", .data = status_a11}};
    struct wh_inventory *inv = NULL;
    struct wh_scan_opts opts = {.max_total = 1 << 20};
    assert_int_equal(scan_one_layer(&inv, e, 2, "gzip", &opts), WH_ETOOBIG);
    assert_non_null(strstr(wh_error_msg(), "decompressed"));
    /* the same layer under a large enough cap is fine */
    opts.max_total = 64 << 20;
    assert_int_equal(scan_one_layer(&inv, e, 2, "gzip", &opts), 0);
    assert_int_equal(inv->npkgs, 1);
    wh_inventory_free(inv);
}

static void test_scan__target_errors(void **state)
{
    (void)state;
    struct wh_inventory *inv = NULL;
    struct wh_scan_opts opts = {0};
    assert_int_equal(wh_scan_inventory(&inv, "oci:/nonexistent/wharf", &opts), WH_ENOTFOUND);
    assert_non_null(strstr(wh_error_msg(), "no such directory"));
    assert_int_equal(wh_scan_inventory(&inv, "docker-archive:/nonexistent.tar", &opts), WH_ENOTFOUND);
    assert_int_equal(wh_scan_inventory(&inv, "rootfs:/nonexistent/wharf", &opts), WH_ENOTFOUND);
    assert_int_equal(wh_scan_inventory(&inv, "nginx:latest", &opts), WH_EINVALID);
    assert_non_null(strstr(wh_error_msg(), "oci:DIR"));

    /* a directory that is not a layout */
    char *t = wh_sprintf("oci:%s", tmp);
    assert_int_equal(wh_scan_inventory(&inv, t, &opts), WH_EINVALID);
    assert_non_null(strstr(wh_error_msg(), "not an OCI image layout"));
    free(t);

    /* a layout whose layer blob was damaged */
    char paths[3][512];
    build_layers(paths);
    const char *layers[] = {paths[2]};
    char *dir = wh_sprintf("%s/oci-bad", tmp);
    tf_oci(dir, layers, 1, "x", false);
    char *dg = tf_digest_file(paths[2]);
    char *blob = wh_sprintf("%s/blobs/sha256/%s", dir, dg + 7);
    FILE *f = fopen(blob, "r+b");
    fseek(f, 600, SEEK_SET);
    fputc('!', f);
    fclose(f);
    t = wh_sprintf("oci:%s:x", dir);
    assert_int_equal(wh_scan_inventory(&inv, t, &opts), WH_EINVALID);
    assert_non_null(strstr(wh_error_msg(), "does not match its digest"));
    free(t);
    t = wh_sprintf("oci:%s:nope", dir);
    assert_int_equal(wh_scan_inventory(&inv, t, &opts), WH_ENOTFOUND);
    assert_non_null(strstr(wh_error_msg(), "no image tagged nope"));
    free(t);

    /* in a multi-layer image (read by several threads) the damaged layer is the one named */
    const char *three[] = {paths[0], paths[1], paths[2]};
    char *dir3 = wh_sprintf("%s/oci-bad3", tmp);
    tf_oci(dir3, three, 3, "x", false);
    char *blob3 = wh_sprintf("%s/blobs/sha256/%s", dir3, dg + 7);
    f = fopen(blob3, "r+b");
    fseek(f, 600, SEEK_SET);
    fputc('!', f);
    fclose(f);
    t = wh_sprintf("oci:%s:x", dir3);
    for (unsigned th = 1; th <= 3; th++) {
        opts.threads = th;
        assert_int_equal(wh_scan_inventory(&inv, t, &opts), WH_EINVALID);
        assert_true(strncmp(wh_error_msg(), "layer 3 (", 9) == 0);
    }
    opts.threads = 0;
    free(t);
    free(blob3);
    free(dir3);

    /* a tarball that is not from docker save */
    t = wh_sprintf("docker-archive:%s", paths[2]);
    assert_int_equal(wh_scan_inventory(&inv, t, &opts), WH_EINVALID);
    assert_non_null(strstr(wh_error_msg(), "manifest.json"));
    free(t);
    free(blob);
    free(dg);
    free(dir);
}

static void test_scan__layer_cache(void **state)
{
    (void)state;
    char paths[3][512];
    build_layers(paths);
    const char *layers[] = {paths[0], paths[1], paths[2]};
    char *dir = wh_sprintf("%s/oci", tmp), *cache = wh_sprintf("%s/cache", tmp);
    tf_oci(dir, layers, 3, "v1", false);
    char *target = wh_sprintf("oci:%s:v1", dir);
    struct wh_inventory *inv = NULL;
    struct wh_scan_opts opts = {.cache_dir = cache};
    assert_int_equal(wh_scan_inventory(&inv, target, &opts), 0);
    assert_int_equal(opts.layers_read, 3);
    assert_int_equal(opts.layers_cached, 0);
    wh_inventory_free(inv);
    /* second scan: no layer is decompressed, the result is the same */
    assert_int_equal(wh_scan_inventory(&inv, target, &opts), 0);
    assert_int_equal(opts.layers_read, 0);
    assert_int_equal(opts.layers_cached, 3);
    check_merged(inv);
    wh_inventory_free(inv);
    /* another image sharing the base layer reads only its own layer */
    const char *layers2[] = {paths[0]};
    char *dir2 = wh_sprintf("%s/oci2", tmp);
    tf_oci(dir2, layers2, 1, "base", false);
    char *target2 = wh_sprintf("oci:%s:base", dir2);
    assert_int_equal(wh_scan_inventory(&inv, target2, &opts), 0);
    assert_int_equal(opts.layers_read, 0);
    assert_int_equal(opts.layers_cached, 1);
    assert_non_null(tf_pkg(inv, WH_PKG_NPM, "foo"));
    wh_inventory_free(inv);
    free(target2);
    free(dir2);
    free(target);
    free(dir);
    free(cache);
}

/* A layer that is not what its name says never gets another layer's cached inventory. */
static void test_scan__cache_not_poisoned(void **state)
{
    (void)state;
    char paths[3][512];
    build_layers(paths);
    char *cache = wh_sprintf("%s/cache", tmp), *a = wh_sprintf("%s/oci-a", tmp), *b = wh_sprintf("%s/oci-b", tmp);
    const char *good[] = {paths[0]};
    tf_oci(a, good, 1, "t", false);
    char *ta = wh_sprintf("oci:%s:t", a);
    struct wh_inventory *inv = NULL;
    struct wh_scan_opts opts = {.cache_dir = cache};
    assert_int_equal(wh_scan_inventory(&inv, ta, &opts), 0);
    assert_int_equal(opts.layers_read, 1);
    wh_inventory_free(inv);

    /* layout B: same manifest, but the blob under the good layer's name holds another tar */
    tf_oci(b, good, 1, "t", false);
    char *dg = tf_digest_file(paths[0]);
    char *blob = wh_sprintf("%s/blobs/sha256/%s", b, dg + 7);
    size_t len;
    char *other = tf_slurp(paths[2], &len);
    tf_write(b, strstr(blob, "blobs/"), other, len, 0644);
    char *tb = wh_sprintf("oci:%s:t", b);
    assert_int_equal(wh_scan_inventory(&inv, tb, &opts), WH_EINVALID);
    assert_non_null(strstr(wh_error_msg(), "does not match its digest"));
    /* a registry store that verified digests on upload may skip the re-hash */
    opts.trusted_store = true;
    assert_int_equal(wh_scan_inventory(&inv, tb, &opts), 0);
    assert_int_equal(opts.layers_cached, 1);
    wh_inventory_free(inv);
    opts.trusted_store = false;

    /* a docker archive whose config claims another layer's diff_id */
    char *arch = wh_sprintf("%s/liar.tar", tmp), *lt = wh_sprintf("%s/lie", tmp);
    const char *lie[] = {paths[2]};
    tf_docker_archive(arch, lie, 1);
    /* rewrite the archive with config.json naming the good layer's digest as diff_id */
    char *cfg = wh_sprintf("{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}", dg);
    struct tf_entry e[] = {
        {.path = "0/layer.tar", .data = other, .len = len},
        {.path = "config.json", .data = cfg},
        {.path = "manifest.json", .data = "[{\"Config\":\"config.json\",\"Layers\":[\"0/layer.tar\"]}]"},
    };
    tf_tar(arch, e, 3, NULL);
    char *td = wh_sprintf("docker-archive:%s", arch);
    assert_int_equal(wh_scan_inventory(&inv, td, &opts), WH_EINVALID);
    assert_non_null(strstr(wh_error_msg(), "does not match its digest (diff_id)"));
    struct wh_scan_opts nocache = {0};
    assert_int_equal(wh_scan_inventory(&inv, td, &nocache), WH_EINVALID);
    free(td);
    free(cfg);
    free(lt);
    free(arch);
    free(tb);
    free(other);
    free(blob);
    free(dg);
    free(ta);
    free(a);
    free(b);
    free(cache);
}

static char *index_digest(const char *dir)
{
    size_t len;
    char *ip = wh_sprintf("%s/index.json", dir);
    char *text = tf_slurp(ip, &len);
    json_t *j = json_loads(text, 0, NULL);
    char *d = wh_strdup(json_string_value(json_object_get(json_array_get(json_object_get(j, "manifests"), 0), "digest")));
    json_decref(j);
    free(text);
    free(ip);
    return d;
}

/* A multi-platform image index resolves to linux/amd64; unreadable layouts say what is wrong. */
static void test_scan__oci_index_and_bad_layouts(void **state)
{
    (void)state;
    char paths[3][512];
    build_layers(paths);
    char *dir = wh_sprintf("%s/multi", tmp), *other = wh_sprintf("%s/other", tmp);
    const char *amd[] = {paths[0]}, *arm[] = {paths[2]};
    tf_oci(other, arm, 1, "arm", false);
    char *m_arm = index_digest(other);
    tf_oci(dir, amd, 1, "amd", false);
    char *m_amd = index_digest(dir);
    /* bring the arm64 image's blobs into the same layout */
    char *cmd = wh_sprintf("cp -n %s/blobs/sha256/* %s/blobs/sha256/", other, dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    char *idx = wh_sprintf("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
                           "\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                           "\"digest\":\"%s\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}},"
                           "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"%s\","
                           "\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}",
                           m_arm, m_amd);
    char *idg = tf_blob_put(dir, idx, strlen(idx));
    char *top = wh_sprintf("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"
                           "\"application/vnd.oci.image.index.v1+json\",\"digest\":\"%s\",\"size\":%zu,"
                           "\"annotations\":{\"org.opencontainers.image.ref.name\":\"multi\"}}]}",
                           idg, strlen(idx));
    tf_write(dir, "index.json", top, 0, 0644);
    char *t = wh_sprintf("oci:%s:multi", dir);
    struct wh_inventory *inv = NULL;
    struct wh_scan_opts opts = {0};
    assert_int_equal(wh_scan_inventory(&inv, t, &opts), 0);
    assert_string_equal(opts.image_digest, m_amd);
    assert_non_null(tf_pkg(inv, WH_PKG_NPM, "foo")); /* the amd64 image's layer */
    assert_null(tf_pkg(inv, WH_PKG_NPM, "qux"));
    wh_inventory_free(inv);
    /* another platform on request; one the index does not have is an error */
    opts.platform = "linux/arm64";
    assert_int_equal(wh_scan_inventory(&inv, t, &opts), 0);
    assert_string_equal(opts.image_digest, m_arm);
    assert_non_null(tf_pkg(inv, WH_PKG_NPM, "qux"));
    wh_inventory_free(inv);
    opts.platform = "linux/s390x";
    assert_int_equal(wh_scan_inventory(&inv, t, &opts), WH_ENOTFOUND);
    assert_non_null(strstr(wh_error_msg(), "no linux/s390x image"));
    opts.platform = NULL;

    /* a manifest blob gone missing, and an index.json that is not JSON */
    char *mblob = wh_sprintf("%s/blobs/sha256/%s", dir, idg + 7);
    unlink(mblob);
    assert_int_equal(wh_scan_inventory(&inv, t, &opts), WH_EINVALID);
    assert_non_null(strstr(wh_error_msg(), "is missing"));
    assert_true(strncmp(wh_error_msg(), t, strlen(t)) == 0 || strncmp(wh_error_msg(), "oci:", 4) == 0);
    tf_write(dir, "index.json", "{not json", 0, 0644);
    assert_int_equal(wh_scan_inventory(&inv, t, &opts), WH_EINVALID);
    assert_non_null(strstr(wh_error_msg(), "index.json is not valid JSON"));
    free(mblob);
    free(t);
    free(top);
    free(idg);
    free(idx);
    free(m_amd);
    free(m_arm);
    free(other);
    free(dir);
}

/* A registry-style blob store: files named by bare hex in one directory, opened through a callback. */
static int flat_open(void **handle, void *payload, const struct wh_digest *d)
{
    char *path = wh_sprintf("%s/%s", (const char *)payload, wh_digest_hex(d));
    int fd = open(path, O_RDONLY);
    free(path);
    if (fd < 0)
        return WH_ENOTFOUND;
    *handle = wh_blob_file_handle(fd);
    return 0;
}

static void test_scan__blob_source_and_saved_inventory(void **state)
{
    (void)state;
    char paths[3][512];
    build_layers(paths);
    const char *layers[] = {paths[0], paths[1], paths[2]};
    char *dir = wh_sprintf("%s/oci", tmp), *flat = wh_sprintf("%s/store", tmp);
    tf_oci(dir, layers, 3, "v1", false);
    wh_mkdirs(flat, 0755);
    char *cmd = wh_sprintf("cp %s/blobs/sha256/* %s/", dir, flat);
    assert_int_equal(system(cmd), 0);
    char *mdg = index_digest(dir);
    struct wh_blob_source src = {flat_open, wh_blob_file_read, wh_blob_file_close, flat};
    struct wh_inventory *inv = NULL, *back = NULL;
    struct wh_scan_opts opts = {0};
    assert_int_equal(wh_scan_image(&inv, &src, mdg, &opts), 0);
    check_merged(inv);
    assert_string_equal(opts.image_digest, mdg);
    assert_int_equal(wh_scan_image(&back, &src, "sha256:0000000000000000000000000000000000000000000000000000000000000000", &opts), WH_EINVALID);
    assert_non_null(strstr(wh_error_msg(), "is missing"));

    /* the inventory saved as JSON comes back the same, and as a target reads no layer */
    json_t *j = wh_inventory_to_json(inv);
    assert_int_equal(wh_inventory_from_json(&back, j), 0);
    json_t *j2 = wh_inventory_to_json(back);
    assert_true(json_equal(j, j2));
    char *saved = wh_sprintf("%s/inv.json", tmp);
    json_dump_file(j, saved, 0);
    char *t = wh_sprintf("inventory:%s", saved);
    struct wh_inventory *again = NULL;
    assert_int_equal(wh_scan_inventory(&again, t, &opts), 0);
    assert_int_equal(opts.layers_read, 0);
    check_merged(again);
    json_t *bad = json_pack("{s:i, s:[{s:s}]}", "inventory_version", 1, "packages", "type", "cobol");
    struct wh_inventory *none = NULL;
    assert_int_equal(wh_inventory_from_json(&none, bad), WH_EINVALID);
    assert_null(none);
    json_decref(bad);
    wh_inventory_free(again);
    wh_inventory_free(back);
    wh_inventory_free(inv);
    json_decref(j);
    json_decref(j2);
    free(t);
    free(saved);
    free(mdg);
    free(cmd);
    free(flat);
    free(dir);
}

static void test_scan__rootfs_symlinks(void **state)
{
    (void)state;
    char *root = wh_sprintf("%s/root", tmp), *outside = wh_sprintf("%s/outside", tmp);
    tf_write(outside, "status", "Package: outside\nVersion: 1\n", 0, 0644);
    tf_write(root, "etc/alpine-release", "3.18.4\n", 0, 0644);
    tf_write(root, "lib/apk/db/installed", "P:musl\nV:1.2.4-r2\no:musl\n\nP:busybox\nV:1.36.1-r5\no:busybox\n", 0, 0644);
    char *dp = wh_sprintf("%s/var/lib/dpkg", root);
    wh_mkdirs(dp, 0755);
    char *link = wh_sprintf("%s/status", dp), *to = wh_sprintf("%s/status", outside);
    assert_int_equal(symlink(to, link), 0);
    char *target = wh_sprintf("rootfs:%s", root);
    struct wh_inventory *inv = NULL;
    struct wh_scan_opts opts = {0};
    assert_int_equal(wh_scan_inventory(&inv, target, &opts), 0);
    assert_string_equal(inv->os.family, "alpine");
    assert_string_equal(inv->os.version, "3.18.4");
    assert_int_equal(inv->npkgs, 2);
    assert_null(tf_pkg(inv, WH_PKG_DPKG, "outside"));
    wh_inventory_free(inv);
    free(target);
    free(link);
    free(to);
    free(dp);
    free(root);
    free(outside);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan__path_clean),
        cmocka_unit_test_setup_teardown(test_scan__whiteouts_oci, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__whiteouts_docker_archive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__docker_archive_oci_style, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__hostile_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__hardlinks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__entry_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__total_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__target_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__layer_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__cache_not_poisoned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__oci_index_and_bad_layouts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__blob_source_and_saved_inventory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan__rootfs_symlinks, setup, teardown),
    };
    wh_log_set_level(WH_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
