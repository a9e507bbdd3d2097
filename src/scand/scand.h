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
     * summary and severity; < 0 failed (the message is the scan's log):
     * WH_EBUSY for a cause that may pass (the job is tried again later,
     * wh_db_scan_retry), any other code for good; WH_EDEFERRED the server is
     * stopping (the job stays Running).
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
/*
 * The worker threads started and those still taking jobs (fewer: one ended
 * before the pool stopped). NULL: none.
 */
void wh_scand_workers(const wh_scand *s, unsigned *started, unsigned *alive);
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

/*
 * Records the Success of the Running job `job` with the report of an external
 * scanner (Harbor's format, as wh_adapter_report_import left it: items
 * checked and capped), its overview `summary` and overall `severity`: the
 * report, and one finding row per item with the counts per severity, as
 * wh_scand_record does for the built-in scanner's findings (the previous
 * scan's rows are replaced). No inventory is stored (the artifact's is
 * dropped): a re-match after a vulnerability database update never
 * re-evaluates such a report, only a new scan does. 0, WH_EINVALID (the
 * report cannot be read), WH_ENOTFOUND (the job is no longer Running) or
 * WH_ERROR; nothing is written unless 0.
 */
int wh_scand_record_report(wh_db *db, const struct wh_scan_job *job, const char *report,
                           const char *summary, const char *severity);

/* What a re-match did. */
struct wh_rematch_stats {
    uint64_t inventories; /* stored inventories matched again */
    uint64_t artifacts;   /* artifacts with a successful scan of them */
    uint64_t changed;     /* artifacts whose findings changed (new report) */
    uint64_t failed;      /* inventories that could not be read (logged, skipped) */
    uint64_t skipped;     /* artifacts with a report but no inventory (external scanners',
                             or stored before schema 9): not re-matched, a new scan refreshes */
    int64_t us;           /* time taken */
};
/*
 * Matches every stored inventory against `vdb` again (no layer is read) and
 * gives the artifacts whose findings changed a new report, overview and
 * findings, recording and logging what changed; counts the reports it cannot
 * re-evaluate (st->skipped). `s` (may be NULL) stops it
 * early when the pool stops (WH_ECONFLICT then). 0 or WH_ERROR.
 */
int wh_scand_rematch(wh_db *db, wh_vulndb *vdb, wh_scand *s, struct wh_rematch_stats *st);
/*
 * The same for the re-match run `run`, claimed by this node
 * (wh_db_rematch_claim): from its cursor on, each page's results written
 * with the run's new cursor and counts in one transaction; `st` counts this
 * call's part. The run is not ended here (wh_db_rematch_finish). 0,
 * WH_ECONFLICT (the pool stops, or the failpoint rematch.hold held it until
 * then), WH_ENOTFOUND (the run was taken over by another node: the page in
 * hand is not written) or WH_ERROR.
 */
int wh_scand_rematch_run(wh_db *db, wh_vulndb *vdb, wh_scand *s, const struct wh_rematch_run *run,
                         struct wh_rematch_stats *st);

/* The vulnerability database updater: what it did last and what it does next. */
struct wh_vulndb_update_state {
    unsigned interval_s;   /* scan.db_update_interval (0: only when asked) */
    bool running;          /* an update is downloading or importing now */
    bool requested;        /* asked for (wh_scand_update_now), not started yet */
    char trigger[16];      /* of the running or last update: "Manual" or "Schedule" ("" none) */
    int64_t started_ms;    /* the running or last update's start (0: none since the start) */
    int64_t finished_ms;   /* the last update's end (0: none) */
    char status[16];       /* the last update: "Success", "Error" ("" none since the start) */
    char message[256];     /* its outcome: counts, or why it failed */
    int64_t next_ms;       /* the next background update (0: none planned) */
};
/* Copies the updater's state into `out`; `s` NULL gives an idle state. */
void wh_scand_update_state(wh_scand *s, struct wh_vulndb_update_state *out);
/*
 * Asks the updater to run `vulndb update`'s code now (the configured feeds),
 * whatever scan.db_update_interval says. 0, or WH_ECONFLICT when an update
 * is running or already asked for (WH_ERROR for `s` NULL).
 */
int wh_scand_update_now(wh_scand *s);

/* The data directory the pool was started with (NULL for `s` NULL). */
const char *wh_scand_data_dir(const wh_scand *s);

/* Path of the vulnerability database of a data directory (the caller frees it). */
char *wh_scand_vulndb_path(const char *data_dir);

/*
 * ---- scan all (scanall.c) ----
 * Harbor's scan-all: runs of wh_db_scanrun_* started
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
