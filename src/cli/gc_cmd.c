/*
 * gc_cmd.c: `wharf gc`, a garbage collection run in this process, on the
 * data directory a server may be serving at the same time (the reviews are
 * short SQLite write transactions, like the server's own; the run is
 * recorded in the history that GET /api/v2.0/system/gc lists, trigger CLI).
 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gc/gc.h"
#include "storage/storage.h"

const char wh_cli_gc_usage[] =
    "usage: wharf gc [--dry-run] [--delete-untagged] [--workers N] [--data-dir DATA]\n"
    "                [--config FILE]\n"
    "\n"
    "Collects garbage in the data directory now, while a server may keep serving it:\n"
    "deletes from storage and from the metadata every blob no artifact uses any more\n"
    "(its manifest, config or layers), once its review is due (gc.review_delay after the\n"
    "last change that concerned it). A child of a deleted index, or an accessory whose\n"
    "subject was deleted, goes too. Prints what it freed; the run is recorded in the\n"
    "history of /api/v2.0/system/gc.\n"
    "\n"
    "  --dry-run          report what would be freed, delete nothing\n"
    "  --delete-untagged  also delete artifacts that have no tag (and are neither listed\n"
    "                     by an index nor attached to an existing subject)\n"
    "  --workers N        reviews in parallel, 1 to 10 (default 1)\n";

int wh_cli_gc(const struct wh_config *cfg, int argc, char **argv)
{
    const char *cmd = "wharf gc", *workers = NULL;
    bool dry = false, untagged = false;
    const struct wh_cli_opt opts[] = {
        {"--dry-run", 0, NULL, NULL, &dry, NULL, NULL},
        {"--delete-untagged", 0, NULL, NULL, &untagged, NULL, NULL},
        {"--workers", 0, "N", &workers, NULL, NULL, NULL},
        {0},
    };
    const char *pos[1];
    const char *const names[] = {NULL};
    if (wh_cli_parse(cmd, argc, argv, opts, pos, names, 0) < 0)
        return 2;
    struct wh_gc_params p;
    wh_gc_params_parse(&p, WH_GC_KIND_GC, NULL);
    p.dry_run = dry;
    p.delete_untagged = untagged;
    if (workers) {
        long long n = 0;
        if (wh_cli_number(&n, cmd, "--workers", workers, 1, WH_GC_WORKERS_MAX) < 0)
            return 2;
        p.workers = (int)n;
    }

    wh_db *db = NULL;
    wh_store *store = NULL;
    char *params = NULL;
    int rc = 1;
    if (wh_cli_registry_open(&db, cfg) < 0)
        goto out;
    if (wh_store_open_fs(&store, cfg->data_dir) < 0) {
        fprintf(stderr, "%s: storage: %s\n", cmd, wh_error_msg());
        goto out;
    }
    /* the same grace delay as the server's, for what this run's deletes queue */
    if (wh_db_gc_set_delay(db, (int64_t)cfg->gc_review_delay_s * 1000) < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        goto out;
    }
    params = wh_gc_params_text(&p, WH_GC_KIND_GC);
    int64_t id = 0;
    int error = wh_db_gcrun_create(db, WH_GC_KIND_GC, "CLI", getenv("USER") ? getenv("USER") : "",
                                   params, true, wh_now_ms(), &id);
    if (error == WH_ECONFLICT) {
        fprintf(stderr, "%s: a garbage collection is already pending or running (see GET "
                        "/api/v2.0/system/gc)\n",
                cmd);
        goto out;
    }
    if (error < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        goto out;
    }
    struct wh_gc_run run;
    if (wh_db_gcrun_get(db, WH_GC_KIND_GC, id, &run) < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        goto out;
    }
    struct wh_gc_summary sum;
    if (wh_gc_execute(db, store, &run, &sum, stdout) < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        goto out;
    }
    printf("%s: %lld blobs, %lld bytes, %lld artifacts (run %lld)\n",
           dry ? "would free" : "freed", (long long)sum.blobs, (long long)sum.bytes,
           (long long)sum.artifacts, (long long)id);
    rc = sum.failures ? 1 : 0;
out:
    free(params);
    wh_store_free(store);
    wh_db_close(db);
    return rc;
}
