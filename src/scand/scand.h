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
#include "scan/scan.h"
#include "storage/storage.h"

typedef struct wh_scand wh_scand;

struct wh_scand_config {
    const char *data_dir; /* vulndb.sqlite and the layer cache scan-cache/ live here */
    unsigned workers;     /* scan threads (0: the number of online cores) */
    unsigned update_interval_s; /* background `vulndb update` every so often, 0: never */
    /*
     * Hands a job to another scanner (adapter.h: wh_adapter_delegate), NULL
     * for none: 0 the built-in scanner runs it; 1 done, with the report,
     * summary and severity; < 0 failed (the message is the scan's log);
     * WH_EDEFERRED the server is stopping (the job stays Running).
     */
    int (*delegate)(void *payload, const struct wh_scan_job *job, char **report, char **summary,
                    char *severity, size_t sevcap);
    void *delegate_payload;
};

/*
 * Puts jobs a crash left Running back in the queue and starts the workers.
 * `db` and `store` must outlive wh_scand_stop. 0 or WH_ERROR.
 */
int wh_scand_start(wh_scand **out, const struct wh_scand_config *cfg, wh_db *db, wh_store *store);
/* Wakes an idle worker (a job was queued). NULL is fine. */
void wh_scand_kick(wh_scand *s);
/* Wakes every idle thread of the pool (an export was queued). NULL is fine. */
void wh_scand_kick_all(wh_scand *s);
/* Lets the running scans finish, stops the workers and frees `s` (NULL is fine). */
void wh_scand_stop(wh_scand *s);

/*
 * Records the Success of the Running job `job` with the image's inventory
 * `inv` and its findings `f` (report, overview, findings, inventory; what a
 * worker does once it has read the layers). 0, WH_ENOTFOUND (the job is no
 * longer Running) or WH_ERROR.
 */
int wh_scand_record(wh_db *db, const struct wh_scan_job *job, const struct wh_inventory *inv,
                    const struct wh_findings *f);

/* What a re-match did. */
struct wh_rematch_stats {
    uint64_t inventories; /* stored inventories matched again */
    uint64_t artifacts;   /* artifacts with a successful scan of them */
    uint64_t changed;     /* artifacts whose findings changed (new report) */
    uint64_t failed;      /* inventories that could not be read (logged, skipped) */
    int64_t us;           /* time taken */
};
/*
 * Matches every stored inventory against `vdb` again (no layer is read) and
 * gives the artifacts whose findings changed a new report, overview and
 * findings, recording and logging what changed. `s` (may be NULL) stops it
 * early when the pool stops (WH_ECONFLICT then). 0 or WH_ERROR.
 */
int wh_scand_rematch(wh_db *db, wh_vulndb *vdb, wh_scand *s, struct wh_rematch_stats *st);

/* Path of the vulnerability database of a data directory (the caller frees it). */
char *wh_scand_vulndb_path(const char *data_dir);

#endif
