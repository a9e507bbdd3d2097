/*
 * catalog.c: decides which files of a layer the catalogers need (by path, the
 * locations Syft and Trivy read), how much of each may be read, and hands
 * the bytes to the right parser. Everything else in a layer is skipped
 * unread, so memory holds only package databases and small metadata files.
 */
#include "scan/scan_int.h"

#include <string.h>
#include <strings.h>

static const char *const os_files[] = {
    "etc/os-release",     "usr/lib/os-release", "etc/debian_version", "etc/alpine-release",
    "etc/redhat-release", "etc/centos-release", "etc/rocky-release",  "etc/almalinux-release",
    "etc/fedora-release", "etc/system-release", "usr/lib/system-release", "etc/lsb-release",
    "etc/oracle-release", "etc/SuSE-release",
};

static const char *const rpm_dirs[] = {"var/lib/rpm/", "usr/lib/sysimage/rpm/", "usr/share/rpm/"};

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* The path component `k` levels above the basename (1 = parent), as (ptr, len). */
static bool component(const char *path, int k, const char **out, size_t *len)
{
    const char *end = path + strlen(path);
    const char *p = end;
    for (int i = 0; i <= k; i++) {
        end = p;
        while (p > path && p[-1] != '/')
            p--;
        if (i < k) {
            if (p == path)
                return false;
            p--; /* step over '/' */
        }
    }
    *out = p;
    *len = (size_t)(end - p);
    return true;
}

static bool comp_is(const char *path, int k, const char *want)
{
    const char *c;
    size_t n;
    return component(path, k, &c, &n) && n == strlen(want) && memcmp(c, want, n) == 0;
}

enum wh_cat wh_catalog_classify(const char *path, unsigned mode)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;

    for (size_t i = 0; i < sizeof(os_files) / sizeof(os_files[0]); i++)
        if (strcmp(path, os_files[i]) == 0)
            return WH_CAT_OSFILE;
    if (strcmp(path, "var/lib/dpkg/status") == 0)
        return WH_CAT_DPKG;
    if (strncmp(path, "var/lib/dpkg/status.d/", 22) == 0 && !strchr(path + 22, '/') &&
        !ends_with(path, ".md5sums"))
        return WH_CAT_DPKG;
    if (strcmp(path, "lib/apk/db/installed") == 0 || strcmp(path, "usr/lib/apk/db/installed") == 0)
        return WH_CAT_APK;
    for (size_t i = 0; i < sizeof(rpm_dirs) / sizeof(rpm_dirs[0]); i++) {
        size_t n = strlen(rpm_dirs[i]);
        if (strncmp(path, rpm_dirs[i], n) != 0 || strchr(path + n, '/'))
            continue;
        if (strcmp(base, "rpmdb.sqlite") == 0)
            return WH_CAT_RPM_SQLITE;
        if (strcmp(base, "Packages") == 0)
            return WH_CAT_RPM_BDB;
        if (strcmp(base, "Packages.db") == 0)
            return WH_CAT_RPM_NDB;
    }
    if (strcmp(base, "package.json") == 0) {
        /* node_modules/<name>/package.json or node_modules/@scope/<name>/package.json */
        const char *c;
        size_t n;
        if (comp_is(path, 2, "node_modules"))
            return WH_CAT_NPM;
        if (component(path, 2, &c, &n) && n > 1 && c[0] == '@' && comp_is(path, 3, "node_modules"))
            return WH_CAT_NPM;
        return WH_CAT_NONE;
    }
    if (strcmp(base, "package-lock.json") == 0 && !strstr(path, "node_modules/"))
        return WH_CAT_NPM_LOCK;
    if (strcmp(base, "METADATA") == 0) {
        const char *c;
        size_t n;
        if (component(path, 1, &c, &n) && n > 10 && memcmp(c + n - 10, ".dist-info", 10) == 0)
            return WH_CAT_PYTHON;
    }
    if (strcmp(base, "PKG-INFO") == 0) {
        const char *c;
        size_t n;
        if (component(path, 1, &c, &n) &&
            ((n > 9 && memcmp(c + n - 9, ".egg-info", 9) == 0) || (n == 8 && memcmp(c, "EGG-INFO", 8) == 0)))
            return WH_CAT_PYTHON;
    }
    if (ends_with(base, ".egg-info"))
        return WH_CAT_PYTHON;
    if (ends_with(base, ".egg"))
        return WH_CAT_PYEGG;
    if (ends_with_ci(base, ".jar") || ends_with_ci(base, ".war") || ends_with_ci(base, ".ear") ||
        ends_with_ci(base, ".par"))
        return WH_CAT_JAR;
    if (mode & 0111)
        return WH_CAT_GOBIN;
    return WH_CAT_NONE;
}

size_t wh_catalog_cap(enum wh_cat cat, const struct wh_scan_opts *opts, enum wh_cap_mode *mode)
{
    size_t big = (size_t)opts->max_entry;
    *mode = WH_CAP_ERROR;
    switch (cat) {
    case WH_CAT_OSFILE:
        *mode = WH_CAP_TRUNCATE;
        return 64 * 1024;
    case WH_CAT_DPKG: /* package databases: --max-file (docs/scanning.md, "Caps") */
    case WH_CAT_APK:
    case WH_CAT_NPM_LOCK:
    case WH_CAT_RPM_SQLITE:
    case WH_CAT_RPM_BDB:
    case WH_CAT_RPM_NDB:
        return big;
    case WH_CAT_NPM:
        *mode = WH_CAP_SKIP;
        return 4u << 20;
    case WH_CAT_PYTHON:
        *mode = WH_CAP_TRUNCATE; /* the headers come first */
        return 256 * 1024;
    case WH_CAT_JAR:
        *mode = WH_CAP_SKIP;
        return big;
    case WH_CAT_PYEGG:
        *mode = WH_CAP_SKIP;
        return big < (64u << 20) ? big : (64u << 20);
    case WH_CAT_GOBIN:
    case WH_CAT_NONE:
        break;
    }
    return 0;
}

int wh_catalog_parse(struct wh_layer_inv *li, enum wh_cat cat, const char *path, const char *data,
                     size_t len, const struct wh_scan_opts *opts)
{
    (void)opts;
    switch (cat) {
    case WH_CAT_OSFILE: {
        struct wh_layer_rec *r = wh_layer_rec_add(li, path, cat);
        r->content = wh_utf8_escape(li->pool, data, len);
        return 0;
    }
    case WH_CAT_DPKG:
        return wh_catalog_dpkg(li, path, data, len);
    case WH_CAT_APK:
        return wh_catalog_apk(li, path, data, len);
    case WH_CAT_RPM_SQLITE:
    case WH_CAT_RPM_BDB:
    case WH_CAT_RPM_NDB:
        return wh_catalog_rpm(li, cat, path, data, len);
    case WH_CAT_NPM:
        return wh_catalog_npm(li, path, data, len, false);
    case WH_CAT_NPM_LOCK:
        return wh_catalog_npm(li, path, data, len, true);
    case WH_CAT_PYTHON:
        return wh_catalog_python(li, path, data, len);
    case WH_CAT_JAR:
        return wh_catalog_jar(li, path, data, len, 0);
    case WH_CAT_PYEGG:
        return wh_catalog_pyegg(li, path, data, len);
    case WH_CAT_GOBIN:
    case WH_CAT_NONE:
        break;
    }
    return 0;
}
