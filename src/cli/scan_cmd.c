/*
 * scan_cmd.c: `wharf scan` and `wharf vulndb`, thin command-line shells over
 * the scan library. Exit status: 0 on success, the --exit-code value when
 * findings at the selected severities exist, 1 on errors, 2 on usage errors.
 */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scan/scan.h"

static const char *data_dir(void)
{
    const char *d = getenv("WHARF_DATA_DIR");
    return d && *d ? d : "./data";
}

static char *default_db(void)
{
    return wh_sprintf("%s/vulndb.sqlite", data_dir());
}

static int scan_usage(FILE *f)
{
    fprintf(f,
            "usage: wharf scan [options] TARGET\n"
            "targets:\n"
            "  oci:DIR[:TAG]           an OCI image layout\n"
            "  docker-archive:FILE     a `docker save` tarball\n"
            "  rootfs:DIR              an unpacked root filesystem\n"
            "  inventory:FILE          an inventory saved with --format inventory (reads no layer)\n"
            "options:\n"
            "  --db PATH               vulnerability database (default $WHARF_DATA_DIR/vulndb.sqlite)\n"
            "  --format FMT            table (default), json (vulnerability report 1.1), cyclonedx,\n"
            "                          inventory (the packages found, to match again later)\n"
            "  --severity LIST         only these severities, e.g. HIGH,CRITICAL\n"
            "  --exit-code N           exit with N when findings remain after --severity\n"
            "  --cache-dir DIR         per-layer inventory cache (default $WHARF_DATA_DIR/scan-cache)\n"
            "  --no-cache              do not read or write the layer cache\n"
            "  --output FILE           write the report to FILE instead of stdout\n"
            "  --max-file BYTES        largest package database read from a layer\n"
            "  --max-total BYTES       cap on decompressed bytes for the whole image\n"
            "  --threads N             layers read at the same time (default 2)\n"
            "  --platform OS/ARCH      image to take from a multi-platform index (default linux/amd64)\n"
            "  -v, --verbose           print a summary line (layers read, cached, packages, time) to stderr\n");
    return f == stderr ? 2 : 0;
}

static int parse_severities(unsigned *mask, const char *list)
{
    char *copy = wh_strdup(list), *save = NULL;
    int rc = 0;
    *mask = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        enum wh_severity s;
        if (wh_severity_parse(&s, t) < 0) {
            fprintf(stderr, "wharf scan: unknown severity %s (use UNKNOWN,NEGLIGIBLE,LOW,MEDIUM,HIGH,CRITICAL)\n", t);
            rc = -1;
            break;
        }
        *mask |= 1u << s;
    }
    free(copy);
    return rc;
}

static int parse_bytes(uint64_t *out, const char *s)
{
    return wh_parse_u64(out, s, strlen(s)) < 0 || *out == 0 ? -1 : 0;
}

int wh_cli_scan(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"db", required_argument, NULL, 'd'},        {"format", required_argument, NULL, 'f'},
        {"severity", required_argument, NULL, 's'},  {"exit-code", required_argument, NULL, 'e'},
        {"cache-dir", required_argument, NULL, 'c'}, {"no-cache", no_argument, NULL, 'n'},
        {"output", required_argument, NULL, 'o'},    {"max-file", required_argument, NULL, 'M'},
        {"max-total", required_argument, NULL, 'T'}, {"help", no_argument, NULL, 'h'},
        {"verbose", no_argument, NULL, 'v'},         {"threads", required_argument, NULL, 'j'},
        {"platform", required_argument, NULL, 'p'},  {NULL, 0, NULL, 0},
    };
    char *dbpath = NULL, *cache = NULL;
    const char *format = "table", *outpath = NULL;
    unsigned mask = ~0u;
    int exit_code = 0, rc = 1, c;
    bool no_cache = false, verbose = false;
    int64_t t0 = wh_monotonic_us();
    struct wh_scan_opts opts = {0};
    struct wh_inventory *inv = NULL;
    struct wh_findings *findings = NULL;
    wh_vulndb *db = NULL;
    FILE *out = stdout;

    optind = 1;
    while ((c = getopt_long(argc, argv, "hv", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            free(dbpath);
            dbpath = wh_strdup(optarg);
            break;
        case 'f':
            format = optarg;
            break;
        case 's':
            if (parse_severities(&mask, optarg) < 0) {
                rc = 2;
                goto out;
            }
            break;
        case 'e':
            exit_code = atoi(optarg);
            if (exit_code < 0 || exit_code > 255) {
                fprintf(stderr, "wharf scan: --exit-code must be 0-255\n");
                rc = 2;
                goto out;
            }
            break;
        case 'c':
            free(cache);
            cache = wh_strdup(optarg);
            break;
        case 'n':
            no_cache = true;
            break;
        case 'o':
            outpath = optarg;
            break;
        case 'M':
        case 'T':
            if (parse_bytes(c == 'M' ? &opts.max_entry : &opts.max_total, optarg) < 0) {
                fprintf(stderr, "wharf scan: --%s needs a positive byte count\n",
                        c == 'M' ? "max-file" : "max-total");
                rc = 2;
                goto out;
            }
            break;
        case 'v':
            verbose = true;
            break;
        case 'p':
            opts.platform = optarg;
            break;
        case 'j': {
            uint64_t t;
            if (wh_parse_u64(&t, optarg, strlen(optarg)) < 0 || t == 0 || t > 8) {
                fprintf(stderr, "wharf scan: --threads takes 1 to 8\n");
                rc = 2;
                goto out;
            }
            opts.threads = (unsigned)t;
            break;
        }
        case 'h':
            rc = scan_usage(stdout);
            goto out;
        default:
            rc = scan_usage(stderr);
            goto out;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "wharf scan: %s\n", optind >= argc ? "no TARGET given" : "one TARGET only");
        rc = scan_usage(stderr);
        goto out;
    }
    const char *target = argv[optind];
    bool sbom = strcmp(format, "cyclonedx") == 0, save = strcmp(format, "inventory") == 0;
    if (!sbom && !save && strcmp(format, "table") != 0 && strcmp(format, "json") != 0) {
        fprintf(stderr, "wharf scan: unknown format %s (table, json, cyclonedx, inventory)\n", format);
        rc = 2;
        goto out;
    }
    if (!dbpath)
        dbpath = default_db();
    if (!sbom && !save) {
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
    if (!no_cache) {
        if (!cache)
            cache = wh_sprintf("%s/scan-cache", data_dir());
        opts.cache_dir = cache;
    }
    if (wh_scan_inventory(&inv, target, &opts) < 0) {
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
    rc = findings->n > 0 && exit_code ? exit_code : 0;
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

static int vulndb_usage(FILE *f)
{
    fprintf(f, "usage: wharf vulndb [--db PATH] import PATH...   load Debian tracker, Alpine secdb, OSV (file, dir, .zip), NVD JSON\n"
               "       wharf vulndb [--db PATH] status           show what the database holds\n"
               "       wharf vulndb [--db PATH] update [--feed URL]...  download public feeds and import them\n"
               "                                  feeds: --feed, else $WHARF_VULNDB_FEEDS (space separated),\n"
               "                                  else $WHARF_DATA_DIR/vulndb-feeds.txt (one URL a line),\n"
               "                                  else the Debian tracker, Alpine secdb and OSV (Go, PyPI,\n"
               "                                  npm, Maven, crates.io, Ubuntu, AlmaLinux, Rocky Linux,\n"
               "                                  Wolfi, Chainguard)\n"
               "                                  public feeds\n");
    return f == stderr ? 2 : 0;
}

int wh_cli_vulndb(int argc, char **argv)
{
    char *dbpath = NULL;
    const char **feeds = NULL;
    size_t nfeeds = 0;
    int i = 1, rc = 1;
    struct wh_vulndb_stats st;

    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) {
            free(dbpath);
            dbpath = wh_strdup(argv[++i]);
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            rc = vulndb_usage(stdout);
            goto out;
        } else {
            rc = vulndb_usage(stderr);
            goto out;
        }
    }
    if (i >= argc) {
        rc = vulndb_usage(stderr);
        goto out;
    }
    const char *cmd = argv[i++];
    /* --db is also accepted after the subcommand */
    if (i + 1 < argc && strcmp(argv[i], "--db") == 0) {
        free(dbpath);
        dbpath = wh_strdup(argv[i + 1]);
        i += 2;
    }
    if (!dbpath)
        dbpath = default_db();
    if (strcmp(cmd, "import") == 0) {
        if (i >= argc) {
            fprintf(stderr, "wharf vulndb import: name at least one file or directory\n");
            rc = 2;
            goto out;
        }
        int64_t t0 = wh_monotonic_us();
        if (wh_vulndb_import(dbpath, (const char *const *)argv + i, (size_t)(argc - i), &st) < 0) {
            fprintf(stderr, "wharf vulndb import: %s (database unchanged)\n", wh_error_msg());
            goto out;
        }
        printf("imported %llu files: %llu advisories, %llu vulnerability records into %s in %.2f s\n",
               (unsigned long long)st.files, (unsigned long long)st.advisories,
               (unsigned long long)st.vulns, dbpath, (double)(wh_monotonic_us() - t0) / 1e6);
        rc = 0;
    } else if (strcmp(cmd, "status") == 0) {
        if (wh_vulndb_status(dbpath, stdout) < 0) {
            fprintf(stderr, "wharf vulndb status: %s\n", wh_error_msg());
            goto out;
        }
        rc = 0;
    } else if (strcmp(cmd, "update") == 0) {
        feeds = wh_calloc((size_t)argc + 64, sizeof(*feeds));
        for (; i < argc; i++) {
            if (strcmp(argv[i], "--feed") == 0 && i + 1 < argc)
                feeds[nfeeds++] = argv[++i];
            else {
                rc = vulndb_usage(stderr);
                goto out;
            }
        }
        /* Feeds: --feed, else $WHARF_VULNDB_FEEDS, else $WHARF_DATA_DIR/vulndb-feeds.txt
         * (one URL a line, # comments), else the built-in public list. */
        char *envcopy = NULL;
        const char *env = getenv("WHARF_VULNDB_FEEDS");
        if (nfeeds == 0 && env && *env) {
            envcopy = wh_strdup(env);
        } else if (nfeeds == 0) {
            char *listpath = wh_sprintf("%s/vulndb-feeds.txt", data_dir());
            FILE *lf = fopen(listpath, "r");
            if (lf) {
                struct wh_buf lb;
                char line[4096];
                wh_buf_init(&lb, 1u << 20);
                while (fgets(line, sizeof(line), lf)) {
                    char *hash = strchr(line, '#');
                    if (hash)
                        *hash = '\0';
                    wh_buf_printf(&lb, "%s\n", line);
                }
                fclose(lf);
                envcopy = wh_buf_detach(&lb, NULL);
            }
            free(listpath);
        }
        if (envcopy) {
            char *save = NULL;
            for (char *t = strtok_r(envcopy, " \t\r\n", &save); t && nfeeds < 64;
                 t = strtok_r(NULL, " \t\r\n", &save))
                feeds[nfeeds++] = t;
        }
        int err = wh_vulndb_update(dbpath, feeds, nfeeds, &st);
        free(envcopy);
        if (err < 0) {
            fprintf(stderr, "wharf vulndb update: %s\n", wh_error_msg());
            goto out;
        }
        printf("updated %s: %llu files, %llu advisories\n", dbpath, (unsigned long long)st.files,
               (unsigned long long)st.advisories);
        rc = 0;
    } else {
        fprintf(stderr, "wharf vulndb: unknown subcommand %s\n", cmd);
        rc = vulndb_usage(stderr);
    }
out:
    free(feeds);
    free(dbpath);
    return rc;
}
