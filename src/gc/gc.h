/*
 * gc: online garbage collection and the audit-log purge, Harbor's
 * /system/gc and /system/purgeaudit jobs. The database tracks references
 * and queues reviews as artifacts, tags and blobs change (db_gc.c); a run
 * claims the due reviews in short transactions and deletes what
 * nothing references, while pushes and pulls go on: no stop-the-world, no
 * read-only window. Runs are started through the API (now or by a cron
 * schedule, executed by the server's gc thread) or by `wharf gc` (executed
 * in that process, with or without a server on the same data directory).
 */
#ifndef WH_GC_H
#define WH_GC_H

#include <stdio.h>

#include "common/common.h"
#include "db/db.h"
#include "storage/storage.h"

#define WH_GC_WORKERS_MAX 10 /* Harbor's bound on a collection's workers */

/* A run's parameters (Harbor's job_parameters). */
struct wh_gc_params {
    bool dry_run;              /* report what would go, delete nothing */
    bool delete_untagged;      /* gc: also untagged artifacts */
    int workers;               /* gc: reviews claimed side by side, 1..WH_GC_WORKERS_MAX */
    int64_t retention_hours;   /* purgeaudit: keep entries younger than this */
    char operations[256];      /* purgeaudit: comma list of operations purged ("": all) */
};
/*
 * Reads the parameters of a run of `kind` (WH_GC_KIND_*) from a JSON
 * object (NULL: the defaults). 0, or WH_EINVALID with a message for the
 * client (Harbor's for a bad worker count).
 */
int wh_gc_params_parse(struct wh_gc_params *out, const char *kind, void *json_object);
/* The parameters as JSON text (malloc'ed), as stored with a run or schedule. */
char *wh_gc_params_text(const struct wh_gc_params *p, const char *kind);

/* What a run did (also written into its gc_run row as it goes). */
struct wh_gc_summary {
    int64_t blobs, bytes, artifacts, purged, failures;
    bool stopped;
};
/*
 * Executes `run` (recorded Running by the caller) to its end: reviews (or,
 * dry, lists) what is due, or purges the audit log; writes progress and the
 * log into the run about once a second and ends it with Success, Stopped
 * (a stop was asked for) or Error. Lines of the log also go to `echo` when
 * not NULL (the CLI). 0 or WH_ERROR (the run then ended as Error).
 */
int wh_gc_execute(wh_db *db, wh_store *store, const struct wh_gc_run *run,
                  struct wh_gc_summary *out, FILE *echo);

/* The schedule of a kind: Harbor's {"schedule":{type,cron},"parameters":{...}}. */
struct wh_gc_schedule {
    char type[16];                 /* Hourly, Daily, Weekly, Custom; "" none */
    char cron[WH_CRON_MAX];
    char params[WH_GC_PARAMS_MAX]; /* JSON text of the runs it starts */
    int64_t created_ms, updated_ms, next_ms;
};
/* Whether `type` is a schedule type (not Manual or None). */
bool wh_gc_schedule_type_valid(const char *type);
/* Reads the schedule of `kind` (type "" when none). 0 or WH_ERROR. */
int wh_gc_schedule_get(wh_db *db, const char *kind, struct wh_gc_schedule *out);
/*
 * Sets the schedule of `kind` (Hourly, Daily, Weekly take Harbor's
 * expression when `cron` is empty) with the parameters `params` (JSON
 * text), or removes it (`type` NULL or "None"). 0, WH_EINVALID with a
 * message, or WH_ERROR.
 */
int wh_gc_schedule_set(wh_db *db, const char *kind, const char *type, const char *cron,
                       const char *params, int64_t now_ms, struct wh_gc_schedule *out);

/* The server's gc thread: fires the schedules, executes Pending runs. */
typedef struct wh_gc wh_gc;
/* Starts it; `db` and `store` must outlive it. 0 or WH_ERROR. */
int wh_gc_start(wh_gc **out, wh_db *db, wh_store *store);
/* Wakes it (a run was asked for, a schedule changed). NULL is fine. */
void wh_gc_kick(wh_gc *g);
/* Stops it (a run going on ends as Stopped) and frees `g` (NULL is fine). */
void wh_gc_stop(wh_gc *g);

/*
 * The check wh_db_on_blob_recorded wants (payload: the wh_store): 0 when
 * blob `digest` is in storage.
 */
int wh_gc_blob_present(const char *digest, void *payload);

#endif
