/*
 * scand: the scans the registry runs on its own images. A pool of worker
 * threads takes jobs from the durable queue in the metadata database
 * (db_scan.c), reads the image's layers from wharf's blob store through the
 * scanner library (scan/), matches the inventory against the vulnerability
 * database in the data directory and stores the report and its overview.
 * No request thread ever scans: the API and the manifest commit only queue.
 */
#ifndef WH_SCAND_H
#define WH_SCAND_H

#include "db/db.h"
#include "storage/storage.h"

typedef struct wh_scand wh_scand;

struct wh_scand_config {
    const char *data_dir; /* vulndb.sqlite and the layer cache scan-cache/ live here */
    unsigned workers;     /* scan threads (0: the number of online cores) */
};

/*
 * Puts jobs a crash left Running back in the queue and starts the workers.
 * `db` and `store` must outlive wh_scand_stop. 0 or WH_ERROR.
 */
int wh_scand_start(wh_scand **out, const struct wh_scand_config *cfg, wh_db *db, wh_store *store);
/* Wakes an idle worker (a job was queued). NULL is fine. */
void wh_scand_kick(wh_scand *s);
/* Lets the running scans finish, stops the workers and frees `s` (NULL is fine). */
void wh_scand_stop(wh_scand *s);

/* Path of the vulnerability database of a data directory (the caller frees it). */
char *wh_scand_vulndb_path(const char *data_dir);

/*
 * ---- scan all (scanall.c) ----
 * Harbor's scan-all (HARBOR.md §3.6): runs of wh_db_scanrun_* started
 * through the API or by a cron schedule, fed into the scan queue by one
 * thread in batches. The schedule is the setting WH_SCANALL_SETTING.
 */
typedef struct wh_scanall wh_scanall;
#define WH_SCANALL_SETTING "scan_all_schedule"
struct wh_scanall_schedule {
    char type[16];                     /* Hourly, Daily, Weekly, Custom, Schedule; "" none */
    char cron[WH_CRON_MAX];            /* six-field expression (common.h) */
    int64_t created_ms, updated_ms;
    int64_t next_ms;                   /* next fire time */
};
/* Reads the schedule (type "" when there is none). 0 or WH_ERROR. */
int wh_scanall_schedule_get(wh_db *db, struct wh_scanall_schedule *out);
/* Whether `type` is a schedule type (not Manual or None). */
bool wh_scanall_type_valid(const char *type);
/*
 * Sets the schedule of `type` with `cron` (Hourly, Daily and Weekly take
 * Harbor's expression when `cron` is empty), or removes it (`type` NULL or
 * "None"). The same type and expression as stored keep the schedule as it
 * is. 0 (`*out`, may be NULL, gets the schedule now in effect),
 * WH_EINVALID with a message (bad type, bad expression, or one that never
 * fires) or WH_ERROR.
 */
int wh_scanall_schedule_set(wh_db *db, const char *type, const char *cron, int64_t now_ms,
                            struct wh_scanall_schedule *out);
/* Starts the scan-all thread. `db` and `scand` (may be NULL) must outlive it. 0 or WH_ERROR. */
int wh_scanall_start(wh_scanall **out, wh_db *db, wh_scand *scand);
/* Wakes the thread (a run was started or the schedule changed). NULL is fine. */
void wh_scanall_kick(wh_scanall *sa);
/* Stops the thread and frees `sa` (NULL is fine). */
void wh_scanall_stop(wh_scanall *sa);

#endif
