/*
 * scan_cmd.c: `wharf scan` and `wharf vulndb`, thin command-line shells over
 * the scan library. Exit status: 0 on success, the --exit-code value when
 * findings at the selected severities exist, 1 on errors, 2 on usage errors.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "scan/scan.h"

/* The default database, in the data directory; NULL (message printed) when there is none. */
static char *default_db(const struct wh_config *cfg, const char *cmd)
{
    if (!wh_cli_data_dir_exists(cfg, cmd)) {
        fprintf(stderr, "  (or name the database with --db PATH)\n");
        return NULL;
    }
    return wh_sprintf("%s/vulndb.sqlite", cfg->data_dir);
}

const char wh_cli_scan_usage[] =
    "usage: wharf scan [options] TARGET\n"
    "targets:\n"
    "  oci:DIR[:TAG]           an OCI image layout\n"
    "  docker-archive:FILE     a `docker save` tarball\n"
    "  rootfs:DIR              an unpacked root filesystem\n"
    "  inventory:FILE          an inventory saved with --format inventory (reads no layer)\n"
    "options:\n"
    "  --db PATH               vulnerability database (default DATA_DIR/vulndb.sqlite)\n"
    "  --format FMT            table (default), json (vulnerability report 1.1), cyclonedx,\n"
    "                          inventory (the packages found, to match again later)\n"
    "  --severity LIST         only these severities, e.g. HIGH,CRITICAL\n"
    "  --exit-code N           exit with N (0 to 255) when findings remain after --severity\n"
    "  --cache-dir DIR         per-layer inventory cache (default DATA_DIR/scan-cache when\n"
    "                          the data directory exists)\n"
    "  --no-cache              do not read or write the layer cache\n"
    "  --output FILE           write the report to FILE instead of stdout\n"
    "  --max-file SIZE         largest package database read from a layer (default 256M)\n"
    "  --max-total SIZE        cap on decompressed bytes for the whole image (default 32G)\n"
    "                          (SIZE: bytes, or with K, M, G or T: 1K is 1024)\n"
    "  --threads N             layers read at the same time, 1 to 8 (default 2)\n"
    "  --platform OS/ARCH[/VARIANT]  the image to scan: picked from a multi-platform index\n"
    "                          (default linux/amd64), checked against a single image\n"
    "  -v, --verbose           print a summary line (layers read, cached, packages, time) to stderr\n"
    "DATA_DIR is data_dir of the configuration (--config, WHARF_CONFIG, WHARF_DATA_DIR,\n"
    "--data-dir). Exit status: 0, or N of --exit-code when findings remain; 1 on errors;\n"
    "2 on usage errors.\n";

static int parse_severities(unsigned *mask, const char *list)
{
    char *copy = wh_strdup(list), *save = NULL;
    int rc = 0;
    *mask = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        enum wh_severity s;
        if (wh_severity_parse(&s, t) < 0) {
            fprintf(stderr, "wharf scan: --severity: unknown severity %s (use UNKNOWN,NEGLIGIBLE,LOW,MEDIUM,HIGH,CRITICAL)\n", t);
            rc = -1;
            break;
        }
        *mask |= 1u << s;
    }
    if (rc == 0 && *mask == 0) {
        fprintf(stderr, "wharf scan: --severity: '%s' names no severity\n", list);
        rc = -1;
    }
    free(copy);
    return rc;
}

/* "os/arch" or "os/arch/variant", each part non-empty. */
static bool platform_ok(const char *p)
{
    const char *s1 = strchr(p, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    if (!s1 || s1 == p || s1[1] == '\0' || s1[1] == '/')
        return false;
    return !s2 || (s2[1] != '\0' && !strchr(s2 + 1, '/'));
}

int wh_cli_scan(const struct wh_config *cfg, int argc, char **argv)
{
    static const char cmd[] = "wharf scan";
    const char *dbopt = NULL, *format = "table", *outpath = NULL, *severity = NULL,
               *exit_s = NULL, *cache_opt = NULL, *max_file = NULL, *max_total = NULL,
               *threads = NULL, *platform = NULL, *pos[1];
    bool no_cache = false, verbose = false;
    const struct wh_cli_opt options[] = {
        {"--db", 0, "PATH", &dbopt, NULL, NULL, NULL},
        {"--format", 0, "FMT", &format, NULL, NULL, NULL},
        {"--severity", 0, "LIST", &severity, NULL, NULL, NULL},
        {"--exit-code", 0, "N", &exit_s, NULL, NULL, NULL},
        {"--cache-dir", 0, "DIR", &cache_opt, NULL, NULL, NULL},
        {"--no-cache", 0, NULL, NULL, &no_cache, NULL, NULL},
        {"--output", 0, "FILE", &outpath, NULL, NULL, NULL},
        {"--max-file", 0, "SIZE", &max_file, NULL, NULL, NULL},
        {"--max-total", 0, "SIZE", &max_total, NULL, NULL, NULL},
        {"--threads", 0, "N", &threads, NULL, NULL, NULL},
        {"--platform", 0, "OS/ARCH", &platform, NULL, NULL, NULL},
        {"--verbose", 'v', NULL, NULL, &verbose, NULL, NULL},
        {0},
    };
    static const char *const names[] = {"TARGET", NULL};
    char *dbpath = NULL, *cache = NULL;
    unsigned mask = ~0u;
    long long exit_code = 0, nthreads = 0;
    int rc = 2;
    int64_t t0 = wh_monotonic_us();
    struct wh_scan_opts opts = {0};
    struct wh_inventory *inv = NULL;
    struct wh_findings *findings = NULL;
    wh_vulndb *db = NULL;
    FILE *out = stdout;

    if (wh_cli_parse(cmd, argc, argv, options, pos, names, 1) < 0)
        goto usage;
    if (severity && parse_severities(&mask, severity) < 0)
        goto usage;
    if (exit_s && wh_cli_number(&exit_code, cmd, "--exit-code", exit_s, 0, 255) < 0)
        goto usage;
    if (max_file && wh_cli_bytes(&opts.max_entry, cmd, "--max-file", max_file) < 0)
        goto usage;
    if (max_total && wh_cli_bytes(&opts.max_total, cmd, "--max-total", max_total) < 0)
        goto usage;
    if (threads && wh_cli_number(&nthreads, cmd, "--threads", threads, 1, 8) < 0)
        goto usage;
    opts.threads = (unsigned)nthreads;
    if (no_cache && cache_opt) {
        fprintf(stderr, "%s: --no-cache and --cache-dir contradict each other\n", cmd);
        goto usage;
    }
    if (platform) {
        if (!platform_ok(platform)) {
            fprintf(stderr, "%s: --platform: '%s' is not OS/ARCH or OS/ARCH/VARIANT (linux/arm64)\n",
                    cmd, platform);
            goto usage;
        }
        if (strncmp(pos[0], "oci:", 4) != 0 && strncmp(pos[0], "docker-archive:", 15) != 0) {
            fprintf(stderr, "%s: --platform applies to images (oci:, docker-archive:), not to %s\n",
                    cmd, pos[0]);
            goto usage;
        }
        opts.platform = platform;
    }
    rc = 1;
    const char *target = pos[0];
    bool sbom = strcmp(format, "cyclonedx") == 0, save = strcmp(format, "inventory") == 0;
    if (!sbom && !save && strcmp(format, "table") != 0 && strcmp(format, "json") != 0) {
        fprintf(stderr, "wharf scan: --format: unknown format %s (table, json, cyclonedx, inventory)\n", format);
        goto usage;
    }
    if (!sbom && !save) {
        if (dbopt)
            dbpath = wh_strdup(dbopt);
        else if (!(dbpath = default_db(cfg, cmd)))
            goto out;
        /* Check the database before reading any layer. */
        if (wh_vulndb_open(&db, dbpath) < 0) {
            fprintf(stderr,
                    "wharf scan: %s\n  load one with `wharf vulndb import FILE...` or `wharf vulndb update`\n",
                    wh_error_msg());
            goto out;
        }
        if (wh_vulndb_count(db) == 0) {
            fprintf(stderr,
                    "wharf scan: vulnerability database %s is empty\n"
                    "  load one with `wharf vulndb import FILE...` or `wharf vulndb update`\n",
                    dbpath);
            goto out;
        }
    }
    if (cache_opt) {
        cache = wh_strdup(cache_opt);
    } else if (!no_cache) {
        /* the cache lives in the data directory; without one, scans go uncached */
        struct stat st;
        if (stat(cfg->data_dir, &st) == 0 && S_ISDIR(st.st_mode))
            cache = wh_sprintf("%s/scan-cache", cfg->data_dir);
        else if (verbose)
            fprintf(stderr, "wharf scan: no data directory %s: layers are not cached\n",
                    cfg->data_dir);
    }
    opts.cache_dir = cache;
    /* a cache in the data directory is as private as the rest (it lists what private
     * images hold); the report (--output) keeps the caller's umask */
    mode_t caller_mask = umask(077);
    if (cache_opt || !cache)
        umask(caller_mask);
    int scanned = wh_scan_inventory(&inv, target, &opts);
    umask(caller_mask);
    if (scanned < 0) {
        fprintf(stderr, "wharf scan: %s\n", wh_error_msg());
        goto out;
    }
    if (verbose)
        fprintf(stderr, "wharf scan: %s: %u layers read, %u from cache, %zu packages (%s %s) in %.2f s\n",
                target, opts.layers_read, opts.layers_cached, inv->npkgs,
                inv->os.family[0] ? inv->os.family : "unknown OS", inv->os.version,
                (double)(wh_monotonic_us() - t0) / 1e6);
    if (outpath && !(out = fopen(outpath, "w"))) {
        perror(outpath);
        out = stdout;
        goto out;
    }
    if (save) {
        json_t *j = wh_inventory_to_json(inv);
        if (opts.image_digest[0])
            json_object_set_new(j, "image_digest", json_string(opts.image_digest));
        json_dumpf(j, out, JSON_INDENT(1));
        fputc('\n', out);
        json_decref(j);
        rc = 0;
        goto out;
    }
    if (sbom) {
        json_t *bom = wh_report_cyclonedx(inv, target);
        json_dumpf(bom, out, JSON_INDENT(2));
        fputc('\n', out);
        json_decref(bom);
        rc = 0;
        goto out;
    }
    if (wh_match(&findings, db, inv) < 0) {
        fprintf(stderr, "wharf scan: %s\n", wh_error_msg());
        goto out;
    }
    wh_findings_filter(findings, mask);
    if (strcmp(format, "json") == 0) {
        json_t *doc = json_object();
        json_object_set_new(doc, WH_REPORT_MIME, wh_report_json(findings, opts.image_digest));
        json_dumpf(doc, out, JSON_INDENT(2));
        fputc('\n', out);
        json_decref(doc);
    } else {
        wh_report_table(out, findings, inv);
    }
    rc = findings->n > 0 && exit_code ? (int)exit_code : 0;
    goto out;
usage:
    fprintf(stderr, "  (`wharf scan --help` shows the usage)\n");
    rc = 2;
out:
    if (out != stdout && fclose(out) != 0 && rc == 0)
        rc = 1;
    wh_findings_free(findings);
    wh_inventory_free(inv);
    wh_vulndb_close(db);
    free(dbpath);
    free(cache);
    return rc;
}

const char wh_cli_vulndb_usage[] =
    "usage: wharf vulndb [--db PATH] import PATH...   load Debian tracker, Alpine secdb, OSV (file,\n"
    "                                                 dir, .zip), NVD JSON\n"
    "       wharf vulndb [--db PATH] status           show what the database holds\n"
    "       wharf vulndb [--db PATH] update [--feed URL]...  download public feeds and import them\n"
    "\n"
    "The database is --db PATH, else DATA_DIR/vulndb.sqlite (data_dir of the configuration).\n"
    "update's feeds: --feed, else $WHARF_VULNDB_FEEDS (space separated), else\n"
    "DATA_DIR/vulndb-feeds.txt (one URL a line, # comments), else the Debian tracker, Alpine\n"
    "secdb and OSV (Go, PyPI, npm, Maven, crates.io, Ubuntu, AlmaLinux, Rocky Linux, Wolfi,\n"
    "Chainguard) public feeds.\n";

#define FEEDS_MAX 64

struct feeds {
    const char *url[FEEDS_MAX];
    size_t n;
};

static int add_feed(const char *value, void *payload)
{
    struct feeds *f = payload;
    if (f->n >= FEEDS_MAX) {
        fprintf(stderr, "wharf vulndb: --feed: at most %d feeds\n", FEEDS_MAX);
        return -1;
    }
    f->url[f->n++] = value;
    return 0;
}

/* Feeds from $WHARF_VULNDB_FEEDS, else DATA_DIR/vulndb-feeds.txt; the text `*keep` holds them. */
static void default_feeds(struct feeds *f, char **keep, const struct wh_config *cfg)
{
    /* the same list the server's background update reads (scan/vulndb.c) */
    *keep = wh_vulndb_feed_list(cfg->data_dir);
    char *save = NULL;
    for (char *t = *keep ? strtok_r(*keep, " \t\r\n", &save) : NULL; t && f->n < FEEDS_MAX;
         t = strtok_r(NULL, " \t\r\n", &save))
        f->url[f->n++] = t;
}

int wh_cli_vulndb(const struct wh_config *cfg, int argc, char **argv)
{
    static const char *const names[] = {"SUBCOMMAND", "PATH...", NULL};
    const char *dbopt = NULL, **pos = wh_calloc((size_t)argc + 1, sizeof(*pos));
    struct feeds feeds = {.n = 0};
    const struct wh_cli_opt opts[] = {
        {"--db", 0, "PATH", &dbopt, NULL, NULL, NULL},
        {"--feed", 0, "URL", NULL, NULL, add_feed, &feeds},
        {0},
    };
    char *dbpath = NULL, *keep = NULL;
    int rc = 2, npos;
    struct wh_vulndb_stats st;

    if ((npos = wh_cli_parse("wharf vulndb", argc, argv, opts, pos, names, 1)) < 0)
        goto usage;
    const char *sub = pos[0];
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "wharf vulndb %s", sub);
    bool import = strcmp(sub, "import") == 0, status = strcmp(sub, "status") == 0,
         update = strcmp(sub, "update") == 0;
    if (!import && !status && !update) {
        fprintf(stderr, "wharf vulndb: unknown subcommand '%s' (import, status, update)\n", sub);
        goto usage;
    }
    if (import && npos < 2) {
        fprintf(stderr, "%s: name at least one file or directory\n", cmd);
        goto usage;
    }
    if (!import && npos > 1) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", cmd, pos[1]);
        goto usage;
    }
    if (!update && feeds.n) {
        fprintf(stderr, "%s: --feed applies to wharf vulndb update\n", cmd);
        goto usage;
    }
    rc = 1;
    if (dbopt)
        dbpath = wh_strdup(dbopt);
    else if (!(dbpath = default_db(cfg, cmd)))
        goto out;
    else
        umask(077); /* the database in the data directory is as private as the rest */
    if (import) {
        int64_t t0 = wh_monotonic_us();
        if (wh_vulndb_import(dbpath, pos + 1, (size_t)(npos - 1), &st) < 0) {
            fprintf(stderr, "%s: %s (database unchanged)\n", cmd, wh_error_msg());
            goto out;
        }
        printf("imported %llu files: %llu advisories, %llu vulnerability records into %s in %.2f s\n",
               (unsigned long long)st.files, (unsigned long long)st.advisories,
               (unsigned long long)st.vulns, dbpath, (double)(wh_monotonic_us() - t0) / 1e6);
    } else if (status) {
        if (wh_vulndb_status(dbpath, stdout) < 0) {
            fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
            goto out;
        }
    } else {
        if (feeds.n == 0)
            default_feeds(&feeds, &keep, cfg);
        if (wh_vulndb_update(dbpath, feeds.url, feeds.n, &st) < 0) {
            fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
            goto out;
        }
        printf("updated %s: %llu files, %llu advisories\n", dbpath, (unsigned long long)st.files,
               (unsigned long long)st.advisories);
    }
    rc = 0;
    goto out;
usage:
    fprintf(stderr, "  (`wharf vulndb --help` shows the usage)\n");
    rc = 2;
out:
    free(keep);
    free(pos);
    free(dbpath);
    return rc;
}
