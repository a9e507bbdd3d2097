/*
 * java.c: Java archives (.jar .war .ear .par). Each archive
 * is a zip read from memory with libarchive; every
 * META-INF/maven/<groupId>/<artifactId>/pom.properties names one Maven
 * artifact (groupId:artifactId, version). Nested archives (Spring Boot
 * BOOT-INF/lib, WEB-INF/lib) are opened recursively up to a fixed depth and
 * size. MANIFEST.MF guesses and SHA-1 lookups are left out.
 */
#include "scan/scan_int.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define JAR_DEPTH_MAX 3
#define NESTED_MAX (64u << 20)
#define INFLATE_BUDGET (512u << 20) /* bytes inflated for one archive, nested ones included */
#define PROPS_MAX (64 * 1024)

static bool is_archive_name(const char *p)
{
    size_t n = strlen(p);
    return n > 4 && (strcasecmp(p + n - 4, ".jar") == 0 || strcasecmp(p + n - 4, ".war") == 0 ||
                     strcasecmp(p + n - 4, ".ear") == 0 || strcasecmp(p + n - 4, ".par") == 0);
}

static void prop(char *out, size_t cap, const char *line, size_t n, const char *key)
{
    size_t kl = strlen(key);
    if (n <= kl || memcmp(line, key, kl) != 0 || line[kl] != '=')
        return;
    const char *v = line + kl + 1;
    size_t vl = n - kl - 1;
    while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        vl--;
    if (vl >= cap)
        vl = cap - 1;
    memcpy(out, v, vl);
    out[vl] = '\0';
}

static void pom_properties(struct wh_layer_inv *li, struct wh_layer_rec **r, const char *path,
                           const char *data, size_t len)
{
    char g[256] = "", a[256] = "", v[128] = "", name[520];
    const char *p = data, *end = data + len, *line;
    size_t n;
    while (wh_next_line(&p, end, &line, &n)) {
        prop(g, sizeof(g), line, n, "groupId");
        prop(a, sizeof(a), line, n, "artifactId");
        prop(v, sizeof(v), line, n, "version");
    }
    if (!g[0] || !a[0] || !v[0])
        return;
    snprintf(name, sizeof(name), "%s:%s", g, a);
    if (!*r)
        *r = wh_layer_rec_add(li, path, WH_CAT_JAR);
    struct wh_pkg pk = {.kind = WH_PKG_MAVEN, .name = name, .version = v};
    wh_layer_rec_pkg(li, *r, &pk);
}

/* Reads one entry, charging what is inflated to *budget (zip bombs run dry, not wild). */
static int read_entry(struct wh_buf *b, struct archive *a, size_t cap, size_t *budget)
{
    char block[16384];
    for (;;) {
        la_ssize_t n = archive_read_data(a, block, sizeof(block));
        if (n < 0)
            return WH_EINVALID;
        if (n == 0)
            return 0;
        if ((size_t)n > *budget)
            return WH_ETOOBIG;
        *budget -= (size_t)n;
        if (wh_buf_put(b, block, (size_t)n) < 0 || b->len > cap)
            return WH_ETOOBIG;
    }
}

static int jar_walk(struct wh_layer_inv *li, struct wh_layer_rec **r, const char *path,
                    const char *data, size_t len, int depth, size_t *budget)
{
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    int error = 0;

    archive_read_support_format_zip(a);
    if (archive_read_open_memory(a, data, len) != ARCHIVE_OK) {
        error = wh_error_set(WH_EINVALID, "not a zip archive");
        goto out;
    }
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(e);
        if (!name || archive_entry_filetype(e) != AE_IFREG)
            continue;
        bool props = strncmp(name, "META-INF/maven/", 15) == 0 &&
                     strlen(name) > 15 + 15 && strcmp(name + strlen(name) - 15, "/pom.properties") == 0;
        bool nested = depth < JAR_DEPTH_MAX && is_archive_name(name);
        if (!props && !nested)
            continue;
        struct wh_buf b;
        wh_buf_init(&b, props ? PROPS_MAX : NESTED_MAX);
        int rc = read_entry(&b, a, props ? PROPS_MAX : NESTED_MAX, budget);
        if (rc == 0 && b.data) {
            if (props)
                pom_properties(li, r, path, b.data, b.len);
            else
                jar_walk(li, r, path, b.data, b.len, depth + 1, budget);
        }
        wh_buf_dispose(&b);
        if (*budget == 0 || (rc == WH_ETOOBIG && *budget < NESTED_MAX)) {
            wh_log_warn("scan: %s inflates past %u bytes: the rest is not cataloged", path, INFLATE_BUDGET);
            break;
        }
    }
out:
    archive_read_free(a);
    return error;
}

int wh_catalog_jar(struct wh_layer_inv *li, const char *path, const char *data, size_t len, int depth)
{
    struct wh_layer_rec *r = NULL;
    size_t budget = INFLATE_BUDGET;
    return jar_walk(li, &r, path, data, len, depth, &budget);
}
