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
/* Lets the running scans finish, stops the workers and frees `s` (NULL is fine). */
void wh_scand_stop(wh_scand *s);

/* Path of the vulnerability database of a data directory (the caller frees it). */
char *wh_scand_vulndb_path(const char *data_dir);

#endif
