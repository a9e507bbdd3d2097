/*
 * rematch.c: the re-match benchmark (docs/benchmarks.md). Fills a wharf data
 * directory through the db layer with N scanned images, each with an
 * inventory of its own, as the scan workers store them: the pinned bookworm
 * minbase package set (tests/data/images/bookworm-minbase) less one package
 * and plus one package of the image's own, so no two inventories are equal
 * and none is shared. They are matched with the fixture vulnerability
 * database (tests/data/vulndb: Debian tracker, NVD, Alpine, OSV); then the
 * database is replaced by the "update" fixture (tests/data/vulndb/rematch),
 * which removes two CVEs and adds one, and every stored inventory is matched
 * again with wh_scand_rematch, the re-matcher's own code: that is what is
 * timed. No layer is read (there are none: the images exist as database rows
 * only). A second re-match against the same database, where nothing changes,
 * is timed too.
 *
 * usage: rematch DATA_DIR [IMAGES]   (run from the repository's root; IMAGES
 *        defaults to 10000; DATA_DIR must not hold a database yet and is
 *        kept, so bench/hub.py can serve it)
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/common.h"
#include "db/db.h"
#include "scan/scan.h"
#include "scand/scand.h"

#define LAYER "sha256:1111111111111111111111111111111111111111111111111111111111111111"

static void die(const char *what)
{
    fprintf(stderr, "rematch: %s: %s\n", what, wh_error_msg());
    exit(1);
}

static void import(const char *path, const char *const *feeds, size_t n)
{
    struct wh_vulndb_stats st = {0};
    if (wh_vulndb_import(path, feeds, n, &st) < 0)
        die(path);
}

/* The base inventory less package `drop`, plus a package of image `i`'s own. */
static struct wh_inventory *variant(const struct wh_inventory *base, size_t drop, unsigned i)
{
    struct wh_inventory *v = wh_inventory_new();
    v->os = base->os;
    for (size_t k = 0; k < base->npkgs; k++)
        if (k != drop)
            wh_inventory_add(v, &base->pkgs[k]);
    char name[64];
    snprintf(name, sizeof(name), "bench-app-%u", i);
    struct wh_pkg own = {.kind = WH_PKG_DPKG, .name = name, .version = "1.0-1",
                         .path = "var/lib/dpkg/status"};
    wh_inventory_add(v, &own);
    wh_inventory_sort(v);
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: rematch DATA_DIR [IMAGES]\n");
        return 2;
    }
    const char *dir = argv[1];
    unsigned n = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 10000;
    /* "again": the directory is filled already; match back and forth */
    bool again = argc > 3 && strcmp(argv[3], "again") == 0;
    mkdir(dir, 0755);
    char *dbpath = wh_sprintf("%s/wharf.db", dir);
    char *vdb_a = wh_sprintf("%s/vulndb-before.sqlite", dir);
    char *vdb_b = wh_sprintf("%s/vulndb.sqlite", dir);
    static const char *const before[] = {"tests/data/vulndb/debian", "tests/data/vulndb/nvd",
                                         "tests/data/vulndb/alpine", "tests/data/vulndb/osv"};
    static const char *const after[] = {"tests/data/vulndb/rematch"};
    if (!again) {
        import(vdb_a, before, 4);
        /* the update: the same database with the Debian tracker replaced */
        char *cmd = wh_sprintf("cp %s %s", vdb_a, vdb_b);
        if (system(cmd) != 0)
            die("cp");
        free(cmd);
        import(vdb_b, after, 1);
    }

    struct wh_scan_opts opts = {0};
    struct wh_inventory *base = NULL;
    if (wh_scan_inventory(&base, "rootfs:tests/data/images/bookworm-minbase/rootfs", &opts) < 0)
        die("bookworm inventory");
    wh_db *db = NULL;
    wh_vulndb *va = NULL, *vb = NULL;
    if (wh_db_open(&db, dbpath) < 0 || wh_vulndb_open(&va, vdb_a) < 0 ||
        wh_vulndb_open(&vb, vdb_b) < 0)
        die("open");
    struct wh_rematch_stats st;
    if (again) {
        for (int round = 0; round < 2; round++) {
            if (wh_scand_rematch(db, round ? vb : va, NULL, &st) < 0)
                die("re-match");
            printf("re-match to the %s database: %llu inventories, %llu changed: %.2f s\n",
                   round ? "updated" : "first", (unsigned long long)st.inventories,
                   (unsigned long long)st.changed, (double)st.us / 1e6);
        }
        return 0;
    }
    int64_t pid = 0;
    if (wh_db_project_create(db, "bench", true, &pid) < 0)
        die("project");

    int64_t t0 = wh_monotonic_us();
    for (unsigned i = 0; i < n; i++) {
        char repo[64], tag[32], text[64];
        struct wh_digest d;
        snprintf(repo, sizeof(repo), "bench/app%03u", i % 100);
        snprintf(tag, sizeof(tag), "v%u", i);
        snprintf(text, sizeof(text), "bench image %u", i);
        wh_digest_of(&d, WH_DIGEST_SHA256, text, strlen(text));
        char digest[WH_DIGEST_STR_MAX];
        snprintf(digest, sizeof(digest), "sha256:%s", wh_digest_hex(&d));
        const char *blobs[] = {LAYER};
        struct wh_artifact_in a = {.repo = repo, .project_id = pid, .digest = digest,
                                   .media_type = "application/vnd.oci.image.manifest.v1+json",
                                   .artifact_type = "application/vnd.oci.image.config.v1+json",
                                   .size = 1000, .blobs = blobs, .nblobs = 1, .tag = tag};
        struct wh_manifest_ref ref;
        struct wh_scan_job job;
        char rid[WH_SCAN_ID_MAX];
        wh_random_hex(rid, 16);
        if (wh_db_blob_link(db, pid, repo, LAYER, 10) < 0 || wh_db_manifest_put(db, &a) < 0 ||
            wh_db_manifest_get(db, repo, digest, true, &ref) < 0 ||
            wh_db_scan_request(db, ref.artifact_id, rid, wh_now_ms(), NULL) < 0 ||
            wh_db_scan_claim(db, wh_now_ms(), &job) < 0)
            die("fill");
        struct wh_inventory *inv = variant(base, i % base->npkgs, i);
        struct wh_findings *f = NULL;
        if (wh_match(&f, va, inv) < 0 || wh_scand_record(db, &job, inv, f) < 0)
            die("scan");
        wh_findings_free(f);
        wh_inventory_free(inv);
    }
    printf("filled %u scanned images (%zu packages each) in %.1f s\n", n, base->npkgs,
           (double)(wh_monotonic_us() - t0) / 1e6);

    if (wh_scand_rematch(db, vb, NULL, &st) < 0)
        die("re-match");
    printf("re-match after the update: %llu inventories, %llu artifacts, %llu changed: %.2f s\n",
           (unsigned long long)st.inventories, (unsigned long long)st.artifacts,
           (unsigned long long)st.changed, (double)st.us / 1e6);
    if (wh_scand_rematch(db, vb, NULL, &st) < 0)
        die("re-match");
    printf("re-match, nothing changed:  %llu inventories, %llu artifacts, %llu changed: %.2f s\n",
           (unsigned long long)st.inventories, (unsigned long long)st.artifacts,
           (unsigned long long)st.changed, (double)st.us / 1e6);
    wh_vulndb_close(va);
    wh_vulndb_close(vb);
    wh_inventory_free(base);
    wh_db_close(db);
    free(dbpath);
    free(vdb_a);
    free(vdb_b);
    return 0;
}
