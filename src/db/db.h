/*
 * db: the metadata store, wharf's source of truth for projects, repositories,
 * blobs, artifacts, tags, references and upload sessions. Callers see plain
 * structs and callbacks, never the database. Behind this header a generic
 * core (db_core.c: a pool of connections lent per call, statements prepared
 * once per connection, transactions) drives a backend through its driver table
 * (db_driver.h): SQLite (db_sqlite.c, the embedded default) or PostgreSQL;
 * the entity files (db_*.c) hold SQL that runs on both.
 *
 * Strings in output structs are copied into fixed-size fields only where
 * their length is capped when they come in: names, digests and media types
 * by the validation of /v2/ and the API (WH_NAME_MAX, WH_DIGEST_STR_MAX,
 * WH_MEDIATYPE_MAX), and the other fixed fields by the API that accepts them
 * (it refuses or cuts what is longer, before it is stored). Text a client
 * controls without such a cap is an owned string released by the struct's
 * _dispose function (wh_artifact_info's annotations). Strings passed to
 * callbacks are borrowed for the duration of the call.
 */
#ifndef WH_DB_H
#define WH_DB_H

#include <stdbool.h>
#include <stdint.h>

#include "common/common.h"

typedef struct wh_db wh_db;

#define WH_NAME_MAX 256      /* repository name incl. NUL (the spec caps names at 255) */
#define WH_MEDIATYPE_MAX 256 /* media type incl. NUL */

struct wh_project {
    int64_t id;
    char name[WH_NAME_MAX];
    bool public;
    int64_t created_ms;
};

struct wh_repo {
    int64_t id;
    int64_t project_id;
    char name[WH_NAME_MAX];
};

/* What a manifest lookup returns: enough to answer HEAD without touching storage. */
struct wh_manifest_ref {
    int64_t artifact_id;
    int64_t repo_id;
    char digest[WH_DIGEST_STR_MAX];
    char media_type[WH_MEDIATYPE_MAX];
    uint64_t size;
};

/* A manifest being recorded, as parsed by registry/. */
struct wh_artifact_in {
    const char *repo;          /* full repository name */
    int64_t project_id;        /* owning project */
    const char *digest;        /* canonical digest of the manifest bytes */
    const char *media_type;    /* manifest media type */
    const char *artifact_type; /* artifactType, or config media type, or NULL */
    const char *subject;       /* subject digest or NULL */
    const char *annotations;   /* JSON object text or NULL */
    uint64_t size;             /* manifest byte length */
    const char **blobs;        /* config + layer digests that must be in the repo */
    size_t nblobs;
    const char **children;     /* child manifest digests that must be in the repo (index) */
    size_t nchildren;
    const char *tag;           /* tag to point at it, or NULL */
    /* what lists show of it (wh_db_manifest_summary_put), recorded in the same
     * transaction; NULL: none yet (made on its first listing) */
    const char *summary_extra, *summary_refs;
};

/* Opens (creating and migrating) the database at `path`. */
int wh_db_open(wh_db **out, const char *path);
/*
 * Opens (creating and migrating) the database `target` through the driver
 * named `driver` ("sqlite": a file path; "postgres" when built in: a
 * connection string). 0, WH_EINVALID (no such driver) or WH_ERROR.
 */
int wh_db_open_driver(wh_db **out, const char *driver, const char *target);
/* The PostgreSQL connection pools of this process, summed (wh_db_pool_stats). */
struct wh_db_pool_stats {
    int64_t size;   /* most server connections (db.pool_size per pool) */
    int64_t open;   /* server connections made */
    int64_t in_use; /* leased by a thread now */
    int64_t waits;  /* times a thread found every connection in use and waited */
};
/*
 * Fills `*out` from the connection pools the process has open: 0, or
 * WH_ENOTFOUND when it has none (SQLite's connections are the core's, not
 * counted here).
 */
int wh_db_pool_stats(struct wh_db_pool_stats *out);
/* Server connections each PostgreSQL pool opened from now on may make (> 0; default 8). */
void wh_db_pool_size_set(int n);
/* Closes every connection. Only after all threads using `db` are done. */
void wh_db_close(wh_db *db);
/*
 * Marks the calling thread as one writing for background work (scans,
 * re-matching, garbage collection): on SQLite, its write transactions give
 * way to those of request threads waiting for the write lock (for at most
 * 50 ms each), so background results do not queue ahead of a push.
 */
void wh_db_thread_background(bool on);
/* Process-wide database settings; first thing in main (later calls do nothing). */
void wh_db_setup(void);
/*
 * Runs `fn(db, payload)` in one transaction of the calling thread: the
 * writes of every wh_db_* call it makes become one commit (each call's own
 * transaction is a savepoint inside it), which is how a bulk import stays
 * fast. Committed when `fn` returns >= 0, rolled back otherwise; returns
 * fn's code or the commit's. Holds the database's write lock throughout.
 */
int wh_db_batch(wh_db *db, int (*fn)(wh_db *db, void *payload), void *payload);
/*
 * wh_db_batch for an `fn` that returns the first failure of any call it
 * makes: all or nothing, so the calls' own transactions take no savepoints
 * (each costs a statement to open and one to release). Never for an `fn`
 * that goes on after a failed call.
 */
int wh_db_batch_whole(wh_db *db, int (*fn)(wh_db *db, void *payload), void *payload);
/*
 * A number that changes whenever the database changes, through any
 * connection of any process (SQLite's data version of the calling thread's
 * connection), for caches of what was read from it; 0 when unknown.
 */
uint64_t wh_db_data_version(wh_db *db);
/*
 * `fn(payload)` is called, on the committing thread, after each commit that
 * queued a scan job on its own (a manifest pushed or a copy made into an
 * auto_scan project), so that the scan workers need not wait for their next
 * look at the queue. NULL: no call. Set while no other thread uses `db`.
 */
void wh_db_on_scan_queued(wh_db *db, void (*fn)(void *payload), void *payload);

/* Scan jobs waiting (Pending) and running now (db_metrics.c). 0 or WH_ERROR. */
int wh_db_scan_queue(wh_db *db, int64_t *pending, int64_t *running);

/* The scan queue as /api/v2.0/health reports it (db_health.c). */
struct wh_db_queue_state {
    int64_t pending, running;
    int64_t oldest_queued_ms; /* when the oldest Pending job was queued, 0: none waits */
};
/* Reads the scan queue's state into `out`. 0 or WH_ERROR. */
int wh_db_scan_queue_state(wh_db *db, struct wh_db_queue_state *out);

/* ---- database files, for backup and restore (db_backup.c) ---- */
/* The schema version this binary migrates databases to. */
int wh_db_schema_latest(void);
/*
 * Copies the database file `src` into the new file `dst` with SQLite's
 * online backup, in one read transaction (a consistent snapshot while a
 * server keeps writing). The copy is one file (journal mode DELETE),
 * fsynced. With `registry`, the copy drops what a restore cannot use:
 * upload sessions and blob rows no repository links. `*schema_out` is the
 * copy's schema version. 0, WH_ENOTFOUND (no `src`), WH_EEXISTS (`dst`
 * exists), WH_ENOSPC (the disk of `dst` is full) or WH_ERROR.
 */
int wh_db_backup_file(const char *src, const char *dst, bool registry, int *schema_out);
/*
 * Checks a database file without changing it: its schema version into
 * `*schema_out`, and SQLite's integrity check. 0, WH_ENOTFOUND,
 * WH_EINVALID (damaged) or WH_ERROR.
 */
int wh_db_file_check(const char *path, int *schema_out);
/*
 * Calls `fn(digest, size, payload)`, by digest, for every blob the registry
 * database file at `path` references: the blobs linked to a repository and
 * the manifests. Stops at fn's first non-zero return and returns it; else
 * 0, WH_ENOTFOUND or WH_ERROR.
 */
int wh_db_file_blobs(const char *path, int (*fn)(const char *digest, uint64_t size, void *payload),
                     void *payload);

/* ---- projects ---- */
/* Creates a project. 0, WH_EEXISTS or WH_ERROR; `*id_out` may be NULL. */
int wh_db_project_create(wh_db *db, const char *name, bool public, int64_t *id_out);
/* 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_project_get(wh_db *db, const char *name, struct wh_project *out);
/* Calls `fn` for each project by name. */
int wh_db_project_each(wh_db *db, int (*fn)(const struct wh_project *p, void *payload),
                       void *payload);

/* ---- repositories ---- */
/* 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_repo_get(wh_db *db, const char *name, struct wh_repo *out);
/*
 * Lists repository names after `last` (NULL: from the start), at most `n`;
 * `*more_out` tells whether more follow.
 */
int wh_db_repo_list(wh_db *db, const char *last, int64_t n,
                    int (*fn)(const char *name, void *payload), void *payload, bool *more_out);

/* ---- blobs ---- */
/*
 * Records a committed blob and links it into `repo` (created if needed),
 * charging it to the project's storage quota in the same transaction (a blob
 * the project holds already costs nothing). Returns 0, WH_EDENIED (it would
 * pass the quota: the message is Harbor's, fit for the client) or WH_ERROR.
 */
int wh_db_blob_link(wh_db *db, int64_t project_id, const char *repo, const char *digest,
                    uint64_t size);
/* Size of a blob linked into `repo`. 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_blob_get(wh_db *db, const char *repo, const char *digest, uint64_t *size_out);
/*
 * Unlinks a blob from `repo`, unless a manifest of the repository uses it
 * (as config or layer, or is that blob): checked and done in one
 * transaction. Returns 0, WH_ENOTFOUND, WH_ECONFLICT (the message names the
 * manifest and one of its tags) or WH_ERROR.
 */
int wh_db_blob_unlink(wh_db *db, const char *repo, const char *digest);

/* A repository holding a blob (db_blob.c). */
struct wh_blob_holder {
    struct wh_project project; /* the repository's project */
    const char *repo;          /* full repository name, borrowed for the call */
    uint64_t size;             /* the blob's size */
};
/*
 * Calls `fn` for the repositories holding blob `digest` — those of project
 * `first_project` first, then those of public projects, then the others;
 * rows of one project adjacent — at most `limit` of them, until `fn`
 * returns non-zero. 0 or WH_ERROR.
 */
int wh_db_blob_holders(wh_db *db, const char *digest, int64_t first_project, int64_t limit,
                       int (*fn)(const struct wh_blob_holder *h, void *payload), void *payload);

/* ---- manifests, tags, referrers ---- */
/*
 * Records a manifest (and its tag) in one transaction, checking that every
 * blob and child it references is in the repository and charging its bytes
 * to the project's quota. Returns 0, WH_ENOTFOUND (a reference is missing:
 * the message names it), WH_EDENIED (over the quota: Harbor's message) or
 * WH_ERROR.
 */
int wh_db_manifest_put(wh_db *db, const struct wh_artifact_in *a);
/* Looks a manifest up by tag or digest (`is_digest`). 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_manifest_get(wh_db *db, const char *repo, const char *ref, bool is_digest,
                       struct wh_manifest_ref *out);
/*
 * Deletes a manifest by digest together with its tags, unless an index of
 * the repository lists it (checked and done in one transaction). Returns 0,
 * WH_ENOTFOUND, WH_ECONFLICT (the message names the index and one of its
 * tags) or WH_ERROR.
 */
int wh_db_manifest_delete(wh_db *db, const char *repo, const char *digest);
/* Deletes one tag. 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_tag_delete(wh_db *db, const char *repo, const char *tag);
/* Lists tags after `last`, at most `n` (lexical order). */
int wh_db_tag_list(wh_db *db, const char *repo, const char *last, int64_t n,
                   int (*fn)(const char *tag, void *payload), void *payload, bool *more_out);
/* A referrer as the referrers API reports it. */
struct wh_referrer {
    const char *digest;
    const char *media_type;
    const char *artifact_type; /* may be NULL */
    const char *annotations;   /* JSON object text, may be NULL */
    uint64_t size;
};
/* Manifests in `repo` whose subject is `subject`, optionally of one artifact type. */
int wh_db_referrers(wh_db *db, const char *repo, const char *subject, const char *artifact_type,
                    int (*fn)(const struct wh_referrer *r, void *payload), void *payload);
/* Adds pulls: artifact pull time and repository pull count (batched by callers). */
int wh_db_pulls_record(wh_db *db, const int64_t *artifact_ids, const int64_t *counts, size_t n,
                       int64_t when_ms);

/* ---- upload sessions ---- */
/* Caps on open upload sessions; 0 is no cap. */
struct wh_upload_caps {
    int64_t total;       /* sessions of the whole server */
    int64_t per_project; /* sessions in one project */
    int64_t per_owner;   /* sessions of one principal (user or robot) */
};
enum wh_upload_scope { WH_UPLOAD_OWNER, WH_UPLOAD_PROJECT, WH_UPLOAD_SERVER };
/* Which cap refused a new session. */
struct wh_upload_refusal {
    enum wh_upload_scope scope;
    int64_t limit;     /* the cap */
    int64_t oldest_ms; /* last activity of the most idle session counted against it */
};
/*
 * Records upload session `id` of principal `owner` in repository `repo` of
 * project `project_id`, unless that would pass one of `caps` (checked per
 * owner, then per project, then in total). The counts and the insert are one
 * transaction, so concurrent starts never overshoot a cap. Returns 0,
 * WH_EBUSY (a cap is reached: `*refused` says which) or WH_ERROR.
 */
int wh_db_upload_create(wh_db *db, const char *id, const char *repo, int64_t project_id,
                        const char *owner, int64_t now_ms, const struct wh_upload_caps *caps,
                        struct wh_upload_refusal *refused);
/* Repository of an upload session: copies into `repo_out` (WH_NAME_MAX). */
int wh_db_upload_get(wh_db *db, const char *id, char *repo_out);
int wh_db_upload_touch(wh_db *db, const char *id, int64_t now_ms);
int wh_db_upload_delete(wh_db *db, const char *id);
int wh_db_upload_count(wh_db *db, int64_t *out);
/*
 * Calls `fn` for sessions (up to 1000 a call) idle since before
 * `idle_before_ms` or started before `started_before_ms`, until it returns
 * non-zero; `fn` may delete them. 0 or WH_ERROR.
 */
int wh_db_upload_expired(wh_db *db, int64_t idle_before_ms, int64_t started_before_ms,
                         int (*fn)(const char *id, void *payload), void *payload);

/*
 * Upload sessions any node can resume (db_upload_state.c). A request that
 * writes to a session first claims it: a lease naming `holder` (a random
 * token of the request) until `until_ms`, so that two requests, on one node
 * or two, never write to one session at once, while the lease of a node
 * that died runs out by itself.
 */
struct wh_upload_session {
    char repo[WH_NAME_MAX];
    int64_t project_id;
    uint64_t accepted;  /* bytes accepted so far */
    char *state;        /* the storage driver's state at that point (malloc'd, never NULL) */
};
/*
 * Claims session `id` for `holder` until `until_ms` and reads it into `out`
 * (free out->state). 0, WH_ENOTFOUND (no such session), WH_EBUSY (another
 * holder's lease runs past `now_ms`) or WH_ERROR.
 */
int wh_db_upload_claim(wh_db *db, const char *id, const char *holder, int64_t now_ms,
                       int64_t until_ms, struct wh_upload_session *out);
/* Reads session `id` without claiming it (a status request). 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_upload_peek(wh_db *db, const char *id, struct wh_upload_session *out);
/* Extends `holder`'s lease on `id`. 0, WH_ENOTFOUND (the lease was lost) or WH_ERROR. */
int wh_db_upload_renew(wh_db *db, const char *id, const char *holder, int64_t until_ms);
/*
 * Records that session `id` now holds `accepted` bytes with driver state
 * `state`, marks it active at `now_ms` and ends `holder`'s lease (`holder`
 * NULL: the caller holds the store's lock on the session instead). 0,
 * WH_ENOTFOUND (the lease was lost, or the session is gone: the chunk must be
 * refused), WH_ENOSPC or WH_ERROR.
 */
int wh_db_upload_save(wh_db *db, const char *id, const char *holder, uint64_t accepted,
                      const char *state, int64_t now_ms);
/* Ends `holder`'s lease on `id` without changing it. 0 or WH_ERROR. */
int wh_db_upload_release(wh_db *db, const char *id, const char *holder);

/*
 * What artifact lists show of a manifest, recorded at push time so that a
 * list never reads blob storage (db_manifest_summary.c): `extra_attrs` and
 * `references` are JSON texts (see wh_manifest_summary in registry.h). The
 * summary is of the content, so it is keyed by the manifest's digest.
 */
int wh_db_manifest_summary_put(wh_db *db, const char *digest, const char *extra_attrs,
                               const char *references);
/* The recorded texts (malloc'd, the caller's). 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_manifest_summary_get(wh_db *db, const char *digest, char **extra_attrs,
                               char **references);

/* ---- users (db_access.c) ---- */
struct wh_user {
    int64_t id;
    char username[WH_NAME_MAX];
    char email[WH_NAME_MAX];
    char realname[WH_NAME_MAX];
    char comment[WH_NAME_MAX];
    char password[WH_NAME_MAX]; /* argon2id PHC string; never leaves the server */
    bool sysadmin;
    int64_t created_ms, updated_ms;
};
/* Creates a user from `u` (id and times are ignored). 0, WH_EEXISTS or WH_ERROR. */
int wh_db_user_create(wh_db *db, const struct wh_user *u, int64_t *id_out);
/* 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_user_get(wh_db *db, const char *username, struct wh_user *out);
int wh_db_user_get_id(wh_db *db, int64_t id, struct wh_user *out);
/* Sets a user's password hash and ends the user's portal sessions. 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_user_set_password(wh_db *db, int64_t id, const char *password_hash);
/*
 * Gives or takes the system administrator role. Taking it from the last
 * administrator is refused (checked in the transaction that writes).
 * 0, WH_ENOTFOUND, WH_ECONFLICT (the last administrator) or WH_ERROR.
 */
int wh_db_user_set_sysadmin(wh_db *db, int64_t id, bool sysadmin);
/* Updates email, realname and comment. */
int wh_db_user_update(wh_db *db, const struct wh_user *u);
/* Deletes a user, never the last system administrator (as above). 0, WH_ENOTFOUND,
 * WH_ECONFLICT or WH_ERROR. */
int wh_db_user_delete(wh_db *db, int64_t id);
/*
 * Lists users whose name contains `like` (NULL: all) by name, skipping
 * `offset`, at most `limit`; `*total_out` counts every match.
 */
int wh_db_user_list(wh_db *db, const char *like, int64_t offset, int64_t limit,
                    int (*fn)(const struct wh_user *u, void *payload), void *payload,
                    int64_t *total_out);
int wh_db_user_count(wh_db *db, int64_t *out);

/* ---- project members (db_access.c) ---- */
struct wh_member {
    int64_t id;
    int64_t project_id;
    int64_t user_id;
    char username[WH_NAME_MAX];
    int role; /* Harbor role id: 1 projectAdmin, 2 developer, 3 guest, 4 maintainer, 5 limitedGuest */
};
/* Adds or changes a member's role. 0 or WH_ERROR; `*id_out` may be NULL. */
int wh_db_member_set(wh_db *db, int64_t project_id, int64_t user_id, int role, int64_t *id_out);
/*
 * Adds a user to a project with `role`, in one statement: 0, WH_EEXISTS (the
 * user is a member already: nothing changes), WH_ENOTFOUND (the project or
 * the user is gone) or WH_ERROR. `*id_out` (may be NULL) gets the member id.
 */
int wh_db_member_add(wh_db *db, int64_t project_id, int64_t user_id, int role, int64_t *id_out);
/* Changes the role of member `member_id` of the project. 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_member_set_role(wh_db *db, int64_t project_id, int64_t member_id, int role);
/* The user's role in the project: 0, WH_ENOTFOUND (not a member) or WH_ERROR. */
int wh_db_member_role(wh_db *db, int64_t project_id, int64_t user_id, int *role_out);
int wh_db_member_get(wh_db *db, int64_t project_id, int64_t member_id, struct wh_member *out);
int wh_db_member_delete(wh_db *db, int64_t project_id, int64_t member_id);
int wh_db_member_list(wh_db *db, int64_t project_id, const char *like,
                      int (*fn)(const struct wh_member *m, void *payload), void *payload);

/* ---- robot accounts (db_access.c) ---- */
#define WH_ROBOT_PERMS_MAX 16384
struct wh_robot {
    int64_t id;
    char name[WH_NAME_MAX];        /* full name, robot$… */
    char description[1024];
    char level[16];                /* "system" or "project" */
    int64_t project_id;            /* project-level robots; 0 otherwise */
    char secret[WH_NAME_MAX];      /* argon2id PHC string of the secret */
    bool disabled;
    int64_t duration;              /* days; -1 never expires */
    int64_t expires_at;            /* unix seconds; -1 never */
    char permissions[WH_ROBOT_PERMS_MAX]; /* JSON array in Harbor's shape */
    int64_t created_ms, updated_ms;
};
int wh_db_robot_create(wh_db *db, const struct wh_robot *r, int64_t *id_out);
int wh_db_robot_get(wh_db *db, const char *name, struct wh_robot *out);
int wh_db_robot_get_id(wh_db *db, int64_t id, struct wh_robot *out);
/* Writes description, disabled, duration, expires_at, permissions and secret of `r`. */
int wh_db_robot_update(wh_db *db, const struct wh_robot *r);
int wh_db_robot_delete(wh_db *db, int64_t id);
/* Robots of one project (`project_id` > 0) or system robots (0), by name. */
int wh_db_robot_list(wh_db *db, int64_t project_id, int64_t offset, int64_t limit,
                     int (*fn)(const struct wh_robot *r, void *payload), void *payload,
                     int64_t *total_out);

/* ---- audit log (db_access.c) ---- */
struct wh_audit {
    int64_t id;
    int64_t op_time_ms;
    const char *username;
    const char *resource;      /* e.g. "library/app:1.4", "team", "robot$team+ci" */
    const char *resource_type; /* "artifact", "project", "member", "robot", "user", … */
    const char *operation;     /* "create", "delete", "pull", "update", "login", … */
    const char *description;
    bool result;               /* succeeded */
    int64_t project_id;        /* 0 when not about a project */
    const char *client_ip;
    int64_t count;             /* events the row stands for (0 is taken as 1) */
    bool folded;               /* fold into the row of the same minute and fields */
};
/* Appends an entry (id and, when 0, op_time_ms are filled in). 0 or WH_ERROR. */
int wh_db_audit_add(wh_db *db, const struct wh_audit *a);
/*
 * Appends `n` entries in one transaction; a `folded` entry adds its count to
 * the row of the same minute and fields when there is one. 0 or WH_ERROR
 * (nothing written).
 */
int wh_db_audit_add_many(wh_db *db, const struct wh_audit *a, size_t n);
/*
 * Deletes entries older than `before_ms`, in small transactions so writers
 * never wait long; `*deleted` (may be NULL) gets the count. 0 or WH_ERROR.
 */
int wh_db_audit_purge(wh_db *db, int64_t before_ms, int64_t *deleted);
/* Lists entries, newest first, of one project (`project_id` > 0) or all (0). */
int wh_db_audit_list(wh_db *db, int64_t project_id, const char *username, const char *operation,
                     int64_t offset, int64_t limit,
                     int (*fn)(const struct wh_audit *a, void *payload), void *payload,
                     int64_t *total_out);

/* ---- REST API views (db_project.c, db_repository.c, db_artifact.c) ---- */
#define WH_PROJECT_META_MAX 4096  /* metadata / CVE allowlist JSON text incl. NUL */

/* A project with its settings and repository count. */
struct wh_project_info {
    struct wh_project p;
    int64_t owner_id;                          /* 0 when unknown */
    char owner_name[WH_NAME_MAX];
    char metadata[WH_PROJECT_META_MAX];        /* JSON object, string values; "public" excluded */
    char cve_allowlist[WH_PROJECT_META_MAX];   /* JSON object */
    int64_t storage_limit;                     /* bytes; -1 unlimited */
    int64_t updated_ms;
    int64_t repo_count;
};
/* Which projects a listing returns. Strings may be NULL (no filter). */
struct wh_project_filter {
    const char *name;        /* exact name */
    const char *name_like;   /* substring of the name */
    int public;              /* -1 any, 0 private, 1 public */
    const char *owner;       /* owner's username */
    int64_t visible_user;    /* -1 all projects; 0 public only; else public + member of */
    int64_t visible_project; /* also this project (a project robot's), 0 none */
    const char *visible_names; /* also these: JSON array of project names (a system
                                * robot's namespaces), NULL none */
    int sort;                /* 0 name, 1 creation time, 2 id, 3 update time */
    bool desc;
};
/* 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_project_info(wh_db *db, int64_t id, struct wh_project_info *out);
/*
 * A project's metadata and CVE allowlist JSON texts (what the pull gate
 * needs), by id, into `metadata` (`mcap` bytes) and `allowlist` (`acap`).
 * 0, WH_ENOTFOUND or WH_ERROR.
 */
int wh_db_project_policy(wh_db *db, int64_t id, char *metadata, size_t mcap, char *allowlist,
                         size_t acap);
int wh_db_project_info_name(wh_db *db, const char *name, struct wh_project_info *out);
/* wh_project_info.owner_id for "the system administrator with the lowest id". */
#define WH_OWNER_FIRST_ADMIN (-1)
/*
 * Creates a project from `in` (name, public, owner, metadata, allowlist,
 * limit) and makes its owner its projectAdmin, in one transaction: on any
 * error nothing is written. The owner is in->owner_id; WH_OWNER_FIRST_ADMIN
 * (a robot's project, as Harbor does) the system administrator with the
 * lowest id; 0 none. 0, WH_EEXISTS (message: Harbor's), WH_ENOTFOUND (the
 * owner is gone) or WH_ERROR; `*id_out` may be NULL.
 */
int wh_db_project_insert(wh_db *db, const struct wh_project_info *in, int64_t *id_out);
/* Writes public, metadata, cve_allowlist and storage_limit of in->p.id. */
int wh_db_project_update(wh_db *db, const struct wh_project_info *in);
/* Deletes an empty project (members and robots go with it). 0, WH_ENOTFOUND,
 * WH_ECONFLICT (it still holds repositories) or WH_ERROR. */
int wh_db_project_delete(wh_db *db, int64_t id);
/* Lists projects matching `f`, skipping `offset`, at most `limit`. */
int wh_db_project_list(wh_db *db, const struct wh_project_filter *f, int64_t offset,
                       int64_t limit, int (*fn)(const struct wh_project_info *p, void *payload),
                       void *payload, int64_t *total_out);
/* Members per role id: counts[1..5]. */
int wh_db_project_member_counts(wh_db *db, int64_t id, int64_t counts[6]);
/* Bytes used: distinct blobs over the project's repositories. */
int wh_db_project_usage(wh_db *db, int64_t id, uint64_t *out);
/*
 * May `adding_bytes` more be stored in the project? 0 when within its storage
 * limit (or unlimited); WH_EDENIED with Harbor's message in `msg` ("adding
 * <X> of storage resource, which when updated to current usage of <Y> will
 * exceed the configured upper limit of <Z>."); WH_ENOTFOUND or WH_ERROR.
 */
int wh_db_project_quota_check(wh_db *db, int64_t project_id, uint64_t adding_bytes, char *msg,
                              size_t msgcap);
/*
 * May blob `digest` of `size` bytes be linked into the project? 0 when the
 * project has no storage limit, holds the blob already (it counts once) or
 * has room for it; else as wh_db_project_quota_check.
 */
int wh_db_project_blob_admit(wh_db *db, int64_t project_id, const char *digest, uint64_t size,
                             char *msg, size_t msgcap);
/* Harbor's size display: "<n> B" below 1 KiB, else "%.1f KiB/MiB/GiB…". */
void wh_db_size_format(char *out, size_t cap, uint64_t bytes);

struct wh_statistics {
    int64_t private_projects, public_projects, private_repos, public_repos;
    uint64_t storage_bytes; /* every blob stored */
};
/* Counts over the projects visible per `f` (visibility fields only). */
int wh_db_statistics(wh_db *db, const struct wh_project_filter *f, struct wh_statistics *out);

struct wh_repo_info {
    int64_t id;
    int64_t project_id;
    char name[WH_NAME_MAX];           /* full name */
    char description[1024];
    int64_t pull_count, artifact_count;
    int64_t created_ms, updated_ms;
    char project_name[WH_NAME_MAX];
    bool project_public;
};
struct wh_repo_filter {
    int64_t project_id;      /* 0 any */
    const char *name;        /* exact full name or NULL */
    const char *name_like;   /* substring or NULL */
    int64_t visible_user;    /* as in wh_project_filter */
    int64_t visible_project;
    const char *visible_names;
    int sort;                /* 0 name, 1 creation, 2 update, 3 pull count, 4 id */
    bool desc;
};
int wh_db_repo_info(wh_db *db, const char *name, struct wh_repo_info *out);
int wh_db_repo_page(wh_db *db, const struct wh_repo_filter *f, int64_t offset, int64_t limit,
                    int (*fn)(const struct wh_repo_info *r, void *payload), void *payload,
                    int64_t *total_out);
int wh_db_repo_set_description(wh_db *db, int64_t id, const char *description);
/* Deletes a repository with its artifacts and tags. 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_repo_delete(wh_db *db, int64_t id);

struct wh_artifact_info {
    int64_t id, repo_id, project_id;
    char repo_name[WH_NAME_MAX];
    char digest[WH_DIGEST_STR_MAX];
    char media_type[WH_MEDIATYPE_MAX];    /* manifest media type */
    char artifact_type[WH_MEDIATYPE_MAX]; /* artifactType or config media type ("" none) */
    uint64_t size;
    int64_t push_ms, pull_ms;             /* pull_ms 0: never pulled */
    /* JSON object text or "", any length (the client's): owned, released by
     * wh_artifact_info_dispose, except in a list's callback, where it is
     * borrowed for the call */
    char *annotations;
};
/* Frees what wh_db_artifact_get allocated in `a` (its annotations). Accepts NULL. */
void wh_artifact_info_dispose(struct wh_artifact_info *a);
struct wh_artifact_filter {
    int64_t repo_id, project_id; /* 0: any */
    const char *digest, *tag, *media_type; /* NULL: any */
    int tagged;                  /* -1 any, 0 untagged only, 1 tagged only */
    bool all;                    /* q=base=*: also the untagged children of an index, which
                                    Harbor's base collection (the default) leaves out */
    int sort;                    /* 0 push time, 1 pull time, 2 size, 3 id */
    bool desc;
};
/* By digest or by tag, into `out` (then wh_artifact_info_dispose it, which
 * is safe whatever this returned). 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_artifact_get(wh_db *db, int64_t repo_id, const char *ref, bool is_digest,
                       struct wh_artifact_info *out);
int wh_db_artifact_list(wh_db *db, const struct wh_artifact_filter *f, int64_t offset,
                        int64_t limit, int (*fn)(const struct wh_artifact_info *a, void *payload),
                        void *payload, int64_t *total_out);
/* Children of an index: digest and, when present in the repository, id (else 0). */
int wh_db_artifact_children(wh_db *db, int64_t artifact_id,
                            int (*fn)(const char *digest, int64_t child_id, void *payload),
                            void *payload);
/* Whether an index of the repository lists `digest` as a child. */
int wh_db_artifact_referenced(wh_db *db, int64_t repo_id, const char *digest, bool *out);

struct wh_tag_info {
    int64_t id, repo_id, artifact_id;
    char name[WH_NAME_MAX];
    int64_t push_ms, pull_ms;
};
/* Tags of an artifact, newest first, optionally by exact name or substring. */
int wh_db_tag_page(wh_db *db, int64_t artifact_id, const char *name, const char *name_like,
                   int64_t offset, int64_t limit,
                   int (*fn)(const struct wh_tag_info *t, void *payload), void *payload,
                   int64_t *total_out);
/* Adds a tag. 0, WH_EEXISTS (the repository has it already) or WH_ERROR. */
int wh_db_tag_create(wh_db *db, int64_t repo_id, int64_t artifact_id, const char *name);

/* ---- copying an artifact (db_copy.c) ---- */
/*
 * Copies artifact `src_artifact_id` into repository `dst_repo` (full name,
 * created when missing) of project `dst_project_id`, in one transaction:
 * the artifact with everything it pulls along in its own repository — the
 * children of an index and the artifacts whose subject it is, recursively —
 * their blob links (no bytes are copied: blobs are content-addressed), the
 * index children and every tag of the source artifact (a tag the
 * destination repository has on another artifact moves). What exists in
 * the destination already is kept. The destination project's storage quota
 * is checked for the blobs it does not hold yet; when it would be exceeded
 * Harbor's message is copied into `msg` (`msgcap` bytes) and nothing is
 * written. `*dst_artifact_id` (may be NULL) receives the copy's id.
 * Returns 0, WH_ENOTFOUND (the source is gone, or a child of an index is
 * missing from the source repository), WH_EDENIED (quota) or WH_ERROR.
 */
int wh_db_artifact_copy(wh_db *db, int64_t src_artifact_id, int64_t dst_project_id,
                        const char *dst_repo, char *msg, size_t msgcap, int64_t *dst_artifact_id);

/* ---- labels (db_label.c) ---- */
#define WH_LABEL_NAME_MAX 128   /* Harbor's limit on a label name, in bytes */
#define WH_LABEL_DESC_MAX 1024  /* description incl. NUL */
#define WH_LABEL_COLOR_MAX 32   /* color ("#FF0000") incl. NUL */

struct wh_label {
    int64_t id;
    char name[WH_LABEL_NAME_MAX + 1];
    char description[WH_LABEL_DESC_MAX];
    char color[WH_LABEL_COLOR_MAX];
    char scope[2];          /* "g" global or "p" project */
    int64_t project_id;     /* the project of a "p" label; 0 for global ones */
    int64_t created_ms, updated_ms;
};
/* Which labels a listing returns (NULL strings: no filter). */
struct wh_label_filter {
    const char *scope;      /* "g" or "p" (required) */
    int64_t project_id;     /* "p": the project */
    const char *name;       /* exact name */
    const char *name_like;  /* substring of the name */
    int sort;               /* 0 id, 1 name, 2 creation time, 3 update time */
    bool desc;
};
/* Creates a label from name, description, color, scope and project_id of
 * `l`. 0, WH_EEXISTS ("label <name> already exists") or WH_ERROR. */
int wh_db_label_create(wh_db *db, const struct wh_label *l, int64_t *id_out);
/* 0, WH_ENOTFOUND ("label <id> not found") or WH_ERROR. */
int wh_db_label_get(wh_db *db, int64_t id, struct wh_label *out);
/* Writes name, description and color of l->id. 0, WH_ENOTFOUND, WH_EEXISTS or WH_ERROR. */
int wh_db_label_update(wh_db *db, const struct wh_label *l);
/* Deletes a label; artifacts lose it. 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_label_delete(wh_db *db, int64_t id);
/* Lists labels matching `f`, skipping `offset`, at most `limit`; `*total_out` (may be NULL)
 * counts every match. */
int wh_db_label_list(wh_db *db, const struct wh_label_filter *f, int64_t offset, int64_t limit,
                     int (*fn)(const struct wh_label *l, void *payload), void *payload,
                     int64_t *total_out);
/* Puts a label on an artifact. 0, WH_EEXISTS ("label <l> is already added to the
 * artifact <a>"), WH_ENOTFOUND (no such label or artifact) or WH_ERROR. */
int wh_db_artifact_label_add(wh_db *db, int64_t artifact_id, int64_t label_id);
/* Takes a label off an artifact. 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_artifact_label_remove(wh_db *db, int64_t artifact_id, int64_t label_id);
/* The labels of an artifact, by id. */
int wh_db_artifact_labels(wh_db *db, int64_t artifact_id,
                          int (*fn)(const struct wh_label *l, void *payload), void *payload);

/* ---- quotas (db_quota.c): one storage quota per project, its id the project's ---- */
struct wh_quota {
    int64_t id;                       /* the project id */
    char project_name[WH_NAME_MAX];
    char owner_name[WH_NAME_MAX];     /* "" when the owner is gone */
    int64_t hard;                     /* storage limit in bytes; -1 unlimited */
    uint64_t used;                    /* bytes of the distinct blobs of the project */
    int64_t created_ms, updated_ms;
};
struct wh_quota_filter {
    int64_t project_id;               /* 0: every project */
    int sort;                         /* 0 id, 1 used, 2 hard, 3 creation time, 4 update time */
    bool desc;
};
/* 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_quota_get(wh_db *db, int64_t id, struct wh_quota *out);
/* Lists quotas matching `f`, skipping `offset`, at most `limit`. */
int wh_db_quota_list(wh_db *db, const struct wh_quota_filter *f, int64_t offset, int64_t limit,
                     int (*fn)(const struct wh_quota *q, void *payload), void *payload,
                     int64_t *total_out);
/* Sets the storage limit of quota (project) `id`. 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_quota_set_hard(wh_db *db, int64_t id, int64_t hard);

/* ---- scan jobs (db_scan.c) ---- */
/*
 * One row per artifact: its latest scan, queued, running or finished. The
 * queue is durable: a job Running when the server died goes back to Pending
 * at the next start (wh_db_scan_recover). Statuses are Harbor's words.
 */
#define WH_SCAN_PENDING "Pending"
#define WH_SCAN_RUNNING "Running"
#define WH_SCAN_SUCCESS "Success"
#define WH_SCAN_ERROR "Error"
#define WH_SCAN_STOPPED "Stopped"
#define WH_SCAN_ID_MAX 40        /* report id (32 hex) incl. NUL */
#define WH_SCAN_SUMMARY_MAX 1024 /* overview summary JSON incl. NUL */
#define WH_SCAN_ATTEMPTS_MAX 5   /* attempts at a job before it is an Error (the default) */
#define WH_SCAN_ATTEMPTS_CAP 20  /* ... at most (scan.max_attempts) */
#define WH_SCAN_RETRY_MS 30000   /* wait before the 2nd attempt, doubled each time (default) */
#define WH_SCAN_RETRY_CAP_MS (3600LL * 1000) /* longest wait between two attempts */
#define WH_SCAN_LOG_LINE_MAX 1024 /* what one attempt adds to a job's log, incl. NUL */
#define WH_SCANNER_VIEW_MAX 512  /* scanner JSON of a scan incl. NUL */
struct wh_scan_job {
    int64_t artifact_id;
    char report_id[WH_SCAN_ID_MAX];
    char status[16];
    char digest[WH_DIGEST_STR_MAX]; /* the artifact's manifest digest */
    int64_t queued_ms, start_ms, end_ms; /* start/end 0 until known */
    int64_t attempts;                    /* times a worker took it */
    int64_t due_ms;                      /* Pending: when it may be taken (a retry's backoff) */
    char severity[16];                   /* overall severity ("" until a Success) */
    char summary[WH_SCAN_SUMMARY_MAX];   /* {"total","fixable","summary"} JSON or "" */
    char scanner[WH_SCANNER_VIEW_MAX];   /* external scanner's {"name","vendor","version"}
                                            JSON, "" for the built-in scanner */
};
/*
 * Queues a scan of artifact `artifact_id` with a new `report_id`. 0;
 * WH_ECONFLICT when one is Pending or Running already (its status copied to
 * `status_out`, 16 bytes, may be NULL); WH_ENOTFOUND when the artifact is gone.
 */
int wh_db_scan_request(wh_db *db, int64_t artifact_id, const char *report_id, int64_t now_ms,
                       char *status_out);
/*
 * wh_db_scan_request on behalf of `operator` (a user or robot name, named
 * in the scan's audit entry; NULL or "": wharf itself). The job leaves any
 * scan-all run it belonged to.
 */
int wh_db_scan_request_by(wh_db *db, int64_t artifact_id, const char *report_id, int64_t now_ms,
                          const char *operator, char *status_out);
/*
 * Takes the Pending job due first (due at or before `now_ms`: a job waiting
 * for its retry is left alone until then) and marks it Running, one more
 * attempt. 0, WH_ENOTFOUND (none due) or WH_ERROR.
 */
int wh_db_scan_claim(wh_db *db, int64_t now_ms, struct wh_scan_job *out);
/*
 * Records the end of the Running job `report_id` of the artifact: status
 * Success (with severity, summary and report JSON text) or Error (with `log`).
 * WH_ENOTFOUND when that job is no longer Running (stopped, or replaced).
 */
int wh_db_scan_finish(wh_db *db, int64_t artifact_id, const char *report_id, const char *status,
                      const char *severity, const char *summary, const char *report,
                      const char *log, int64_t now_ms);
/*
 * Records a failed attempt of the Running job `report_id` whose cause may
 * pass (`why`: storage or database unreachable, an external scanner down):
 * the job goes back to Pending, due after a backoff (wh_db_scan_retry_delay
 * of its attempts), or, once it was attempted wh_db_scan_attempts times, to
 * Error. Each attempt adds a line to the job's log, so that the Error's log
 * tells how many attempts were made and why each failed. `status_out` (16
 * bytes, may be NULL) gets the new status, `due_out` (may be NULL) when the
 * next attempt is due (0 for an Error). 0, WH_ENOTFOUND (no longer Running:
 * stopped or replaced) or WH_ERROR.
 */
int wh_db_scan_retry(wh_db *db, int64_t artifact_id, const char *report_id, const char *why,
                     int64_t now_ms, char *status_out, int64_t *due_out);
/*
 * Sets the retry policy of this handle's scan jobs (scan.max_attempts and
 * scan.retry_delay): `attempts` takes at most (1..WH_SCAN_ATTEMPTS_CAP; 0 or
 * less: WH_SCAN_ATTEMPTS_MAX), and the wait before the second attempt
 * (`delay_ms`, doubled for each later one up to WH_SCAN_RETRY_CAP_MS; 0 or
 * less: WH_SCAN_RETRY_MS). Call before the scan workers start.
 */
void wh_db_set_scan_retry(wh_db *db, int64_t attempts, int64_t delay_ms);
/* The attempts a job gets at most (wh_db_set_scan_retry). */
int64_t wh_db_scan_attempts(const wh_db *db);
/* The wait after a job's `attempts`-th failed attempt (ms). */
int64_t wh_db_scan_retry_delay(const wh_db *db, int64_t attempts);
/* Stops a Pending or Running scan. 0, WH_ENOTFOUND (never scanned) or WH_ECONFLICT (not
 * pending or running; status copied to `status_out`, 16 bytes, may be NULL). */
int wh_db_scan_stop(wh_db *db, int64_t artifact_id, int64_t now_ms, char *status_out);
/* The artifact's latest scan. 0, WH_ENOTFOUND (never scanned) or WH_ERROR. */
int wh_db_scan_get(wh_db *db, int64_t artifact_id, struct wh_scan_job *out);
/* The report JSON text of the artifact's last successful scan (malloc'ed, the caller's).
 * 0, WH_ENOTFOUND (none) or WH_ERROR. */
int wh_db_scan_report(wh_db *db, int64_t artifact_id, char **out);
/* The log of the scan `report_id` of the artifact (malloc'ed). 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_scan_log(wh_db *db, int64_t artifact_id, const char *report_id, char **out);
/*
 * Leases. A claimed job is held by the claiming node (wh_db_set_node) until
 * its lease ends, the handle's lease (wh_db_set_scan_lease; default
 * WH_SCAN_LEASE_MS) after the claim or the node's last
 * renewal: a node renews its jobs' leases while it runs them, and a job
 * whose lease ended belongs to a node that died.
 */
#define WH_SCAN_LEASE_MS 60000
/*
 * Sets the length of the leases this handle's claims and renewals give (ms, the
 * configuration's scan.lease; 0 or less: WH_SCAN_LEASE_MS). Every node sharing a
 * database should use the same. Call before the scan workers start.
 */
void wh_db_set_scan_lease(wh_db *db, int64_t ms);
/* The length of the leases this handle gives (ms). */
int64_t wh_db_scan_lease(const wh_db *db);
/*
 * Names this process as a node of the scan queue (its jobs' holder), e.g.
 * "host:listen-address": stable across restarts of the same node, distinct
 * between nodes sharing the database. Set before the first claim; "" (the
 * default) for a process that runs no scans.
 */
void wh_db_set_node(wh_db *db, const char *node);
/* This process's node name (wh_db_set_node; "" when unset). */
const char *wh_db_node(const wh_db *db);
/* Extends the leases of the jobs this node runs to `now_ms` + the lease (wh_db_scan_lease). */
int wh_db_scan_renew(wh_db *db, int64_t now_ms);
/*
 * Jobs left Running by a node that died go back to Pending (due at once: the
 * lease already made them wait), or to Error once taken wh_db_scan_attempts
 * times (a scan that kills every node that runs it is not retried forever);
 * each adds a line to the job's log. Those whose lease ended before `now_ms`, and with
 * `at_start` (this node starting) also this node's own, which its previous
 * run left. `*requeued` (may be NULL) counts the Pending ones.
 */
int wh_db_scan_recover(wh_db *db, int64_t now_ms, bool at_start, int64_t *requeued);

/* ---- external scanners (db_scanner.c) ---- */
/*
 * Registrations of scanner adapters (the pluggable scanner
 * API) and the scanner each project uses. The built-in scanner has no row: it
 * is the default unless a registration is marked default, and a project
 * without a choice uses the default.
 */
#define WH_SCANNER_UUID_MAX 40
#define WH_SCANNER_NAME_MAX 128
#define WH_SCANNER_DESC_MAX 1024
#define WH_SCANNER_URL_MAX 1024
#define WH_SCANNER_CRED_MAX 1024
struct wh_scanner_reg {
    char uuid[WH_SCANNER_UUID_MAX];
    char name[WH_SCANNER_NAME_MAX];
    char description[WH_SCANNER_DESC_MAX];
    char url[WH_SCANNER_URL_MAX]; /* base URL; the API is under /api/v1 */
    char auth[32];                /* "", "Basic", "Bearer" or "X-ScannerAdapter-API-Key" */
    char access_credential[WH_SCANNER_CRED_MAX];
    bool skip_cert_verify, use_internal_addr, disabled, is_default;
    int64_t created_ms, updated_ms;
};
/* Adds a registration. 0, WH_EEXISTS (name or URL taken; message says which) or WH_ERROR. */
int wh_db_scanner_create(wh_db *db, const struct wh_scanner_reg *r);
/* 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_scanner_get(wh_db *db, const char *uuid, struct wh_scanner_reg *out);
/* Every registration in creation order; `fn` returning < 0 stops the walk with that code. */
int wh_db_scanner_list(wh_db *db, int (*fn)(const struct wh_scanner_reg *r, void *payload),
                       void *payload);
/* Replaces the editable fields of registration r->uuid. 0, WH_ENOTFOUND, WH_EEXISTS or WH_ERROR. */
int wh_db_scanner_update(wh_db *db, const struct wh_scanner_reg *r, int64_t now_ms);
/* Deletes a registration and the projects' choices of it. 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_scanner_delete(wh_db *db, const char *uuid);
/* Makes registration `uuid` the default (NULL: the built-in scanner). 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_scanner_set_default(wh_db *db, const char *uuid);
/* The scanner project `project_id` chose (`out` WH_SCANNER_UUID_MAX bytes). 0, WH_ENOTFOUND
 * (none: the default applies) or WH_ERROR. */
int wh_db_project_scanner_get(wh_db *db, int64_t project_id, char *out);
/* Sets a project's scanner (NULL: back to the default). 0 or WH_ERROR. */
int wh_db_project_scanner_set(wh_db *db, int64_t project_id, const char *uuid);
/* What a scan job needs to run on an external scanner. */
struct wh_scan_target {
    int64_t project_id;
    char repo_name[WH_NAME_MAX];
    char media_type[WH_MEDIATYPE_MAX];
    uint64_t size;
    bool external;              /* the scanner in charge is a registration */
    struct wh_scanner_reg reg;  /* it, when `external` */
};
/*
 * The artifact's repository and the scanner in charge of it: the project's
 * choice when that registration still exists, else the default. 0,
 * WH_ENOTFOUND (no such artifact) or WH_ERROR.
 */
int wh_db_scan_target(wh_db *db, int64_t artifact_id, struct wh_scan_target *out);
/* Whether the scan job `report_id` is Running (`*out`). 0 or WH_ERROR. */
int wh_db_scan_running(wh_db *db, const char *report_id, bool *out);
/* Records which scanner runs the Running job `report_id` (JSON text, "" built-in). */
int wh_db_scan_set_scanner(wh_db *db, int64_t artifact_id, const char *report_id,
                           const char *scanner_json);
/* ---- scan-all runs (db_scanall.c) ---- */
#define WH_SCAN_RUN_MANUAL "Manual"     /* started through the API */
#define WH_SCAN_RUN_SCHEDULE "Schedule" /* started by the scan-all schedule */
struct wh_scan_run {
    int64_t id;
    char trigger[16];              /* WH_SCAN_RUN_MANUAL or WH_SCAN_RUN_SCHEDULE */
    char operator[WH_NAME_MAX];    /* who started it ("" for the schedule) */
    char status[16];               /* Running, Success, Error (some scan failed) or Stopped */
    int64_t start_ms, end_ms;      /* end 0 while Running */
    int64_t total;                 /* scans it queued (so far) */
    int64_t pending, running, success, error, stopped; /* its scans by status */
    bool ongoing;                  /* still queueing, or scans pending or running */
};
/*
 * Starts a scan-all run: 0 with its id; WH_ECONFLICT when a run is going
 * on. The run queues nothing yet: wh_db_scanrun_step does, in batches.
 */
int wh_db_scanrun_start(wh_db *db, const char *trigger, const char *operator, int64_t now_ms,
                        int64_t *id_out);
/*
 * A scheduled start: in one transaction, replaces setting `name` (which
 * must still read `expect`, else WH_ECONFLICT and nothing changes) with
 * `value` and starts a WH_SCAN_RUN_SCHEDULE run, unless one is going on
 * (then `*id_out` is 0). 0, WH_ECONFLICT, WH_ENOTFOUND (no such setting)
 * or WH_ERROR.
 */
int wh_db_scanrun_fire(wh_db *db, const char *name, const char *expect, const char *value,
                       int64_t now_ms, int64_t *id_out);
/*
 * Queues the next batch (artifact ids looked at: at most `batch`) of the
 * oldest run still queueing, in one transaction; artifacts whose scan is
 * Pending or Running are left as they are. `*queued_out` counts the scans
 * queued, `*more` tells whether to call again. 0 or WH_ERROR.
 */
int wh_db_scanrun_step(wh_db *db, int64_t batch, int64_t now_ms, int64_t *queued_out,
                       bool *more);
/* Ends the runs that queued everything and whose scans all finished. 0 or WH_ERROR. */
int wh_db_scanrun_settle(wh_db *db, int64_t now_ms);
/*
 * Stops the latest run: its Pending and Running scans become Stopped and
 * it queues no more (a run that ended is left alone). `*id_out` gets its
 * id. 0, WH_ENOTFOUND (no run ever) or WH_ERROR.
 */
int wh_db_scanrun_stop(wh_db *db, int64_t now_ms, int64_t *id_out);
/* The latest run (of `trigger`; NULL: any) with its counts. 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_scanrun_latest(wh_db *db, const char *trigger, struct wh_scan_run *out);

/* ---- settings and the pull gate (db_gate.c) ---- */
#define WH_SETTING_CVE_ALLOWLIST "cve_allowlist" /* the system CVE allowlist (JSON) */
/* Copies setting `name` into `out` (`cap` bytes, cut to fit). 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_setting_get(wh_db *db, const char *name, char *out, size_t cap);
/* Creates or replaces setting `name`. 0 or WH_ERROR. */
int wh_db_setting_set(wh_db *db, const char *name, const char *value, int64_t now_ms);
/* What decides whether the vulnerability policy applies to an artifact. */
struct wh_gate_artifact {
    bool image;               /* an image manifest with an image configuration */
    bool signature;           /* a signature (notation, cosign) */
    bool index;               /* it lists child manifests */
    int64_t image_children;   /* children that are images */
    int64_t scanned_children; /* children with a scan (any status) */
};
/* 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_gate_artifact(wh_db *db, int64_t artifact_id, struct wh_gate_artifact *out);

/* ---- findings, stored inventories, re-matching, the security hub (db_finding.c) ---- */
/*
 * A successful scan stores, in one transaction with its report: the image's
 * merged package inventory (once per distinct content, so that a database
 * update can match it again without reading a layer), one finding row per
 * vulnerability x package (the security hub's index), the counts per
 * severity and a fingerprint of the findings. A rescan replaces them; they go
 * with the artifact.
 */
#define WH_FINGERPRINT_MAX 40 /* findings fingerprint (hex) incl. NUL */
struct wh_db_finding {
    const char *cve_id;
    const char *package;
    const char *version;
    const char *fixed_version; /* "" when no fix */
    int severity;              /* 0 Unknown, 1 Negligible, 2 Low, 3 Medium, 4 High, 5 Critical */
    double cvss3;              /* CVSS v3 base score, 0 when unknown */
    const char *description;
    const char *links;         /* JSON array text */
    const char *cvss3_vector;  /* "" when unknown */
    const char *cwe_ids;       /* JSON array text */
};
struct wh_scan_result {
    const char *severity;     /* overall: "None", "Low" ... */
    const char *summary;      /* overview summary JSON */
    const char *report;       /* report JSON */
    const char *inventory;    /* inventory JSON bytes, NULL when the scanner gives none */
    size_t inventory_len;
    const char *fingerprint;  /* identifies the findings (wh_scan_fingerprint) */
    const struct wh_db_finding *findings;
    size_t nfindings;
};
/*
 * Records the Success of the Running job `report_id` with everything above.
 * WH_ENOTFOUND when that job is no longer Running (stopped or replaced);
 * WH_ERROR.
 */
int wh_db_scan_succeed(wh_db *db, int64_t artifact_id, const char *report_id,
                       const struct wh_scan_result *r, int64_t now_ms);
/*
 * Calls `fn` for the stored inventories with an id above `after`, in id
 * order, at most `limit` of them; `body` is borrowed for the call. A non-zero
 * return from `fn` stops the walk and is returned. 0 or WH_ERROR.
 */
int wh_db_inventory_walk(wh_db *db, int64_t after, int64_t limit,
                         int (*fn)(int64_t id, const void *body, size_t len, void *payload),
                         void *payload);
/* An artifact whose last successful scan has a stored inventory. */
struct wh_rematch_target {
    int64_t artifact_id;
    char digest[WH_DIGEST_STR_MAX];
    char repository[WH_NAME_MAX]; /* full name */
    char report_id[WH_SCAN_ID_MAX];
    char fingerprint[WH_FINGERPRINT_MAX];
};
/* Calls `fn` for each artifact with a Success scan of inventory `inventory_id`. 0 or WH_ERROR. */
int wh_db_inventory_artifacts(wh_db *db, int64_t inventory_id,
                              int (*fn)(const struct wh_rematch_target *t, void *payload),
                              void *payload);
/*
 * Replaces the report, overview and findings of `t` by those of a re-match
 * (a new report id `new_report_id`, start and end `now_ms`), if its scan is
 * still the Success `t->report_id`; records the CVE ids added and removed in
 * vuln_change when there are any. `*added` / `*removed` (may be NULL) get the
 * JSON arrays (malloc'ed, the caller's). 0, WH_ENOTFOUND (the scan changed
 * meanwhile: nothing written) or WH_ERROR.
 */
int wh_db_rematch_apply(wh_db *db, const struct wh_rematch_target *t, const char *new_report_id,
                        const struct wh_scan_result *r, int64_t now_ms, char **added,
                        char **removed);
/* Deletes the recorded changes older than `before_ms`. 0 or WH_ERROR. */
int wh_db_vuln_change_prune(wh_db *db, int64_t before_ms);

/*
 * ---- re-match runs (db_finding.c, schema 17) ----
 * One run per vulnerability database content (`vulndb`, its digest: see
 * wh_vulndb_digest): queued by any node that loads that database, claimed by
 * one node that has it loaded, under the scan queue's lease (held by
 * wh_db_set_node's name, renewed by wh_db_rematch_renew). Its cursor
 * `after_id` is the last stored inventory done: each page's results and the
 * cursor are written in one transaction (wh_db_rematch_progress inside
 * wh_db_batch), so a node that takes the run over goes on from there. A run
 * that ended (Success, or Error after wh_db_scan_attempts attempts) is not
 * run again.
 */
struct wh_rematch_run {
    char vulndb[WH_DIGEST_STR_MAX];
    char status[16];                  /* Pending, Running, Success, Error */
    char holder[128];                 /* the node running it ("" when not Running) */
    int64_t after_id;                 /* inventories with an id up to it are done */
    int64_t lease_ms, attempts, due_ms, created_ms, start_ms, end_ms;
    int64_t inventories, artifacts, changed, failed; /* the counts of every attempt */
    char log[1024];                   /* a line per failed or cut-off attempt (the start) */
};
/* What one page of a run did (added to the run's counts). */
struct wh_rematch_counts {
    int64_t inventories, artifacts, changed, failed;
};
/*
 * Queues the run of `vulndb` unless there is one (whatever its state);
 * `*created` (may be NULL) tells whether this call queued it. 0 or WH_ERROR.
 */
int wh_db_rematch_queue(wh_db *db, const char *vulndb, int64_t now_ms, bool *created);
/* The run of `vulndb`. 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_rematch_get(wh_db *db, const char *vulndb, struct wh_rematch_run *out);
/*
 * Takes the run of `vulndb` if it is Pending and due: Running, held by this
 * node until `now_ms` + the lease, one more attempt. 0 (`*out` the run, its
 * cursor where to go on), WH_ENOTFOUND (none, not due, or taken) or WH_ERROR.
 */
int wh_db_rematch_claim(wh_db *db, const char *vulndb, int64_t now_ms,
                        struct wh_rematch_run *out);
/*
 * Moves the cursor of this node's Running run of `vulndb` to `after_id`, adds
 * `n` to its counts and renews its lease; to be called in the transaction
 * that writes the page's results. 0, WH_ENOTFOUND (the run is not this
 * node's any more) or WH_ERROR.
 */
int wh_db_rematch_progress(wh_db *db, const char *vulndb, int64_t after_id,
                           const struct wh_rematch_counts *n, int64_t now_ms);
/* Ends this node's Running run of `vulndb` in Success, `log` added to its log.
 * 0, WH_ENOTFOUND (not this node's) or WH_ERROR. */
int wh_db_rematch_finish(wh_db *db, const char *vulndb, const char *log, int64_t now_ms);
/* Gives this node's Running run back (Pending, due at once, the attempt not counted):
 * the server stops. 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_rematch_release(wh_db *db, const char *vulndb);
/*
 * A failed attempt of this node's Running run: Pending again after the
 * backoff of wh_db_scan_retry_delay, or Error after wh_db_scan_attempts
 * attempts; `why` goes to its log. The new status to `status_out` (16 bytes,
 * may be NULL), when it is due to `*due_out` (may be NULL). 0, WH_ENOTFOUND or
 * WH_ERROR.
 */
int wh_db_rematch_retry(wh_db *db, const char *vulndb, const char *why, int64_t now_ms,
                        char *status_out, int64_t *due_out);
/* Extends the leases of the runs this node runs to `now_ms` + the lease. 0 or WH_ERROR. */
int wh_db_rematch_renew(wh_db *db, int64_t now_ms);
/*
 * Runs left Running by a node that died go back to Pending (due at once, the
 * cursor kept), or to Error after wh_db_scan_attempts attempts, with a log
 * line: those whose lease ended before `now_ms`, and with `at_start` this
 * node's own. `*requeued` (may be NULL) counts the Pending ones. 0 or WH_ERROR.
 */
int wh_db_rematch_recover(wh_db *db, int64_t now_ms, bool at_start, int64_t *requeued);
/* Deletes the runs not Running queued before `before_ms`. 0 or WH_ERROR. */
int wh_db_rematch_prune(wh_db *db, int64_t before_ms);
/*
 * How many artifacts have a report but no stored inventory (`*out`): reports
 * of external scanners, and scans stored before schema 9, which a re-match
 * cannot evaluate again (db_extreport.c). 0 or WH_ERROR.
 */
int wh_db_reports_without_inventory(wh_db *db, int64_t *out);
/* Drops CVE texts no finding refers to any more (after a re-match). 0 or WH_ERROR. */
int wh_db_finding_text_gc(wh_db *db);

/* One recorded change of an artifact's findings (GET /vulnerabilities/changes). */
struct wh_vuln_change {
    int64_t id, time_ms, artifact_id, project_id;
    char digest[WH_DIGEST_STR_MAX];
    char repository[WH_NAME_MAX];  /* full name */
    const char *added, *removed;   /* JSON arrays, borrowed for the callback */
};
struct wh_vuln_change_filter {
    int64_t since_ms;          /* changes at or after */
    int64_t visible_user;      /* as in wh_project_filter */
    int64_t visible_project;
    const char *visible_names;
};
/* Changes in time order (oldest first), `offset`/`limit`, total in `*total_out`. 0 or WH_ERROR. */
int wh_db_vuln_changes(wh_db *db, const struct wh_vuln_change_filter *f, int64_t offset,
                       int64_t limit, int (*fn)(const struct wh_vuln_change *ch, void *payload),
                       void *payload, int64_t *total_out);

/* The security hub's totals (security hub). */
struct wh_security_summary {
    int64_t total_artifact, scanned_cnt;
    int64_t critical_cnt, high_cnt, medium_cnt, low_cnt, none_cnt, unknown_cnt, fixable_cnt;
};
int wh_db_security_summary(wh_db *db, struct wh_security_summary *out);
/* One finding with its artifact, as the hub lists it. Strings borrowed for the callback. */
struct wh_vuln_item {
    int64_t artifact_id, project_id, repo_id;
    const char *repository, *digest, *cve_id, *package, *version, *fixed_version;
    const char *description, *links, *cvss3_vector, *cwe_ids;
    int severity;
    double cvss3; /* 0 when unknown */
};
/* The five findings of highest CVSS v3 score, one per CVE x package x version. */
int wh_db_dangerous_cves(wh_db *db, int (*fn)(const struct wh_vuln_item *v, void *payload),
                         void *payload);
/* The five artifacts with most critical, then high, medium, low findings. */
struct wh_dangerous_artifact {
    int64_t artifact_id, project_id;
    char repository[WH_NAME_MAX];
    char digest[WH_DIGEST_STR_MAX];
    int64_t critical_cnt, high_cnt, medium_cnt, low_cnt;
};
int wh_db_dangerous_artifacts(wh_db *db,
                              int (*fn)(const struct wh_dangerous_artifact *a, void *payload),
                              void *payload);
/* Filters of GET /security/vul (NULL / -1 / false: not filtered). */
struct wh_vuln_filter {
    const char *cve_id, *package, *digest, *tag;
    int severity;          /* -1 any */
    int64_t project_id;    /* 0 any */
    int64_t repo_id;       /* 0 any; -1 matches nothing (an unknown repository) */
    bool cvss_range;
    double cvss_from, cvss_to;
};
int wh_db_vuln_list(wh_db *db, const struct wh_vuln_filter *f, int64_t offset, int64_t limit,
                    int (*fn)(const struct wh_vuln_item *v, void *payload), void *payload,
                    int64_t *total_out);
/* Harbor's CVE export jobs (POST /export/cve): one project's findings as CSV. */
#define WH_EXPORT_FILTER_MAX 1024 /* repositories, tags, CVE ids: comma-separated, incl. NUL */
struct wh_cve_export {
    int64_t id, user_id, project_id, start_ms, end_ms;
    char username[WH_NAME_MAX];
    char job_name[WH_NAME_MAX];
    char repositories[WH_EXPORT_FILTER_MAX]; /* names without the project; '*' matches */
    char tags[WH_EXPORT_FILTER_MAX];
    char cve_ids[WH_EXPORT_FILTER_MAX];
    char status[16];                         /* Pending, Running, Success, Error */
    char status_text[512];
    bool file_present;
};
/* Queues an export (`in`'s filters, user, project); its id in `*id_out`. 0, WH_ENOTFOUND
 * (no such project) or WH_ERROR. */
int wh_db_export_create(wh_db *db, const struct wh_cve_export *in, int64_t now_ms,
                        int64_t *id_out);
/* 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_export_get(wh_db *db, int64_t id, struct wh_cve_export *out);
/* The exports of user `username`, newest first. 0 or WH_ERROR. */
int wh_db_export_list(wh_db *db, const char *username,
                      int (*fn)(const struct wh_cve_export *e, void *payload), void *payload);
/*
 * Takes the oldest Pending export and marks it Running, held by this node
 * (wh_db_set_node) under a lease (wh_db_scan_lease) the scan lease keeper
 * renews (wh_db_export_renew); on PostgreSQL an export another node is
 * claiming is skipped. 0, WH_ENOTFOUND or WH_ERROR.
 */
int wh_db_export_claim(wh_db *db, int64_t now_ms, struct wh_cve_export *out);
/*
 * Ends export `id`, Running and held by this node, with `status` (Success
 * with the CSV, or Error with `text`). 0, WH_ENOTFOUND (not this node's any
 * more: taken back after its lease ended, or deleted) or WH_ERROR.
 */
int wh_db_export_finish(wh_db *db, int64_t id, const char *status, const char *text,
                        const void *csv, size_t len, int64_t now_ms);
/* Extends the leases of the exports this node runs to `now_ms` + the lease. 0 or WH_ERROR. */
int wh_db_export_renew(wh_db *db, int64_t now_ms);
/* The CSV of a finished export (malloc'ed, `*len`). 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_export_csv(wh_db *db, int64_t id, char **out, size_t *len);
/* Deletes an export. 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_export_delete(wh_db *db, int64_t id);
/* Exports of `username` kept (any status). 0 or WH_ERROR. */
int wh_db_export_count(wh_db *db, const char *username, int64_t *out);
/* Deletes the exports that ended before `before_ms` (never downloaded). 0 or WH_ERROR. */
int wh_db_export_prune(wh_db *db, int64_t before_ms);
/*
 * Exports left Running by a node that died go back to Pending: those whose
 * lease ended before `now_ms`, and with `at_start` (this node starting) also
 * this node's own; never a live node's. `*requeued` (may be NULL) counts
 * them. 0 or WH_ERROR.
 */
int wh_db_export_recover(wh_db *db, int64_t now_ms, bool at_start, int64_t *requeued);
/* The findings of project `project_id` by repository and artifact, with the CVSS
 * vector-less fields of wh_vuln_item. 0 or WH_ERROR. */
int wh_db_project_findings(wh_db *db, int64_t project_id,
                           int (*fn)(const struct wh_vuln_item *v, void *payload), void *payload);

/*
 * ---- garbage collection (db_gc.c, schema 12) ----
 * Triggers queue a blob digest or an artifact for review whenever a write
 * may have left it unreferenced (see the migration); the collector claims
 * due reviews one at a time, each in its own short write transaction.
 */
/*
 * Called inside the transaction that records a blob row that did not
 * exist (an upload, a mount, a manifest's own bytes): `fn(digest)` must
 * answer 0 when the blob's bytes are in storage, < 0 when not (the
 * collector deleted them meanwhile; the write then fails with WH_EBUSY and
 * the caller may store the bytes again). NULL: no check. Set while no other
 * thread uses `db`.
 */
void wh_db_on_blob_recorded(wh_db *db, int (*fn)(const char *digest, void *payload),
                            void *payload);
/* Sets the delay before a queued review is due (gc.review_delay). 0 or WH_ERROR. */
int wh_db_gc_set_delay(wh_db *db, int64_t delay_ms);
/*
 * A push looked at blob `digest` (HEAD): when its review is due within the
 * review delay, it is postponed to `now_ms` + the delay (GitLab's answer to
 * a push that skips an upload because the blob exists). Reads only when
 * nothing is due soon. 0 or WH_ERROR.
 */
int wh_db_gc_blob_touch(wh_db *db, const char *digest, int64_t now_ms);
/*
 * Queues blob `digest` for review (`now_ms` + the delay): bytes a push
 * stored and then could not record (a refused manifest, an upload over the
 * quota) are collected once due. 0 or WH_ERROR.
 */
int wh_db_gc_blob_enqueue(wh_db *db, const char *digest, int64_t now_ms);
/* What one review did. */
struct wh_gc_review {
    bool claimed;                   /* a due review was found (else the queue has none) */
    bool deleted;                   /* the blob or artifact was deleted (dry run: would be) */
    bool failed;                    /* deleting failed: retried later (wh_error_msg says why) */
    char digest[WH_DIGEST_STR_MAX]; /* the blob, or the artifact's manifest */
    char repo[WH_NAME_MAX];         /* the artifact's repository ("" for a blob) */
    uint64_t size;                  /* the blob's bytes */
};
/*
 * Claims the due blob review (review_after <= `now_ms`) that is due first
 * and, in the same write transaction: drops it when a manifest, config or
 * layer of any artifact uses the digest; else deletes, through `del(digest,
 * payload)`, its bytes from storage, then its rows (if any). A failed `del`
 * changes no row and retries the review later with a backoff (`failed`).
 * 0 (see `out`) or WH_ERROR.
 */
int wh_db_gc_review_blob(wh_db *db, int64_t now_ms,
                         int (*del)(const char *digest, void *payload), void *payload,
                         struct wh_gc_review *out);
/*
 * Claims the due manifest review that is due first, of any event when
 * `delete_untagged`, else only of artifacts whose index or subject was
 * deleted. An artifact with a tag, an index of its repository listing it,
 * or a subject that still exists is kept (the review is dropped); any other
 * is deleted, which queues its blobs, children and referrers. 0 or WH_ERROR.
 */
int wh_db_gc_review_manifest(wh_db *db, int64_t now_ms, bool delete_untagged,
                             struct wh_gc_review *out);
/*
 * Batches of the reviews above in one write transaction each, so that a
 * run of many reviews commits (and takes the write lock) seldom: claims
 * until none is due, `max` were claimed, or `budget_ms` has passed since the
 * first; `seen(review, payload)` is called for each (inside the
 * transaction: it must not use `db`). A failed storage delete is retried
 * later and reported as `failed`; a database error rolls the whole batch
 * back. `*claimed_out` counts the reviews. 0 or WH_ERROR.
 */
int wh_db_gc_review_blobs(wh_db *db, int64_t now_ms, int max, int64_t budget_ms,
                          int (*del)(const char *digest, void *payload), void *del_payload,
                          void (*seen)(const struct wh_gc_review *r, void *payload),
                          void *payload, int *claimed_out);
int wh_db_gc_review_manifests(wh_db *db, int64_t now_ms, bool delete_untagged, int max,
                              int64_t budget_ms,
                              void (*seen)(const struct wh_gc_review *r, void *payload),
                              void *payload, int *claimed_out);
/*
 * A dry run: calls `fn` for each artifact (repo set) a review due at
 * `now_ms` would delete, then for each blob (repo "") whose review is due
 * and that nothing references; nothing changes. `fn` returning non-zero
 * stops. 0 or WH_ERROR.
 */
int wh_db_gc_preview(wh_db *db, int64_t now_ms, bool delete_untagged,
                     int (*fn)(const struct wh_gc_review *r, void *payload), void *payload);
/* The review queues, for /metrics. */
struct wh_gc_queue {
    int64_t blobs, blobs_due;         /* blob reviews queued, due now */
    int64_t manifests, manifests_due; /* manifest reviews queued, due now */
    int64_t max_review_count;         /* the most retried review (failed deletes) */
};
int wh_db_gc_queue(wh_db *db, int64_t now_ms, struct wh_gc_queue *out);

/* Runs of the collector and of the audit-log purge (gc_run). */
#define WH_GC_KIND_GC "gc"
#define WH_GC_KIND_PURGE "purgeaudit"
#define WH_GC_PARAMS_MAX 1024
#define WH_GC_LOG_MAX (256u << 10) /* a run's log is cut beyond this (characters) */
struct wh_gc_run {
    int64_t id;
    char kind[16];               /* WH_GC_KIND_* */
    char trigger[16];            /* Manual, Schedule or CLI */
    char operator[WH_NAME_MAX];  /* who asked ("" for the schedule) */
    char status[16];             /* Pending, Running, Success, Error, Stopped */
    char params[WH_GC_PARAMS_MAX]; /* JSON text */
    int64_t created_ms, start_ms, end_ms, updated_ms;
    bool stop_requested;
    int64_t blobs, bytes, artifacts, purged, failures;
    int64_t attempts;            /* times a node took it (more than 1: taken back) */
};
#define WH_GC_ATTEMPTS_MAX 3     /* a run cut off by its node's death this often is an Error */
/*
 * Records a run of `kind`, Pending (for the server's thread) or, with
 * `running`, already Running (the caller executes it). WH_ECONFLICT when a
 * run of that kind is Pending or Running. 0 with `*id_out`, or WH_ERROR.
 */
int wh_db_gcrun_create(wh_db *db, const char *kind, const char *trigger, const char *operator,
                       const char *params, bool running, int64_t now_ms, int64_t *id_out);
/*
 * A scheduled start: in one transaction, replaces setting `name` (which
 * must still read `expect`, else WH_ECONFLICT) with `value` and records a
 * Pending run of `kind` unless one is Pending or Running (`*id_out` 0).
 */
int wh_db_gcrun_fire(wh_db *db, const char *name, const char *expect, const char *value,
                     const char *kind, const char *params, int64_t now_ms, int64_t *id_out);
/* Takes the oldest Pending run and marks it Running. 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_gcrun_claim(wh_db *db, int64_t now_ms, struct wh_gc_run *out);
/*
 * Progress of a Running run held by this node: adds the counts of `add`
 * (blobs, bytes, artifacts, purged, failures: what was done since the last
 * call; NULL adds nothing) and appends `log` (lines ending in a newline) to
 * the stored log, which stops at WH_GC_LOG_MAX characters with a line
 * saying so. `status` non-NULL ends the run with it. Increments, so that
 * the nodes helping the run (wh_db_gcrun_help) and its holder never
 * overwrite one another. `*out` (may be NULL) gets the run as it is then
 * (the totals, stop_requested). 0, WH_ENOTFOUND (not Running, or no longer
 * this node's: taken back after a lease without progress, so the caller
 * must stop) or WH_ERROR.
 */
int wh_db_gcrun_update(wh_db *db, int64_t id, const struct wh_gc_run *add, const char *log,
                       const char *status, int64_t now_ms, struct wh_gc_run *out);
/*
 * Progress of a node helping run `id` (another node holds it): adds `add`
 * and appends `log` as wh_db_gcrun_update does, whatever the run's status
 * (what a helper's last batch did still counts when the holder has ended
 * the run meanwhile), and changes neither the status nor updated_ms (the
 * holder's lease). `*out` (may be NULL) gets the run as it is then: the
 * helper stops once it is no longer Running, a stop was asked for, or its
 * holder's progress is older than a lease. 0, WH_ENOTFOUND or WH_ERROR.
 */
int wh_db_gcrun_help(wh_db *db, int64_t id, const struct wh_gc_run *add, const char *log,
                     struct wh_gc_run *out);
/*
 * A run of `kind` this node can help (reads only): Running, held by another
 * node's server (not `wharf gc`, holder ""), no stop asked for, progress
 * written at or after `fresh_after_ms`, and reviews due at `now_ms`. The
 * oldest such into `out`. 0, WH_ENOTFOUND or WH_ERROR.
 */
int wh_db_gcrun_helpable(wh_db *db, const char *kind, int64_t fresh_after_ms, int64_t now_ms,
                         struct wh_gc_run *out);
/* Run `id` of `kind`. 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_gcrun_get(wh_db *db, const char *kind, int64_t id, struct wh_gc_run *out);
/* Runs of `kind`, newest first, `limit` from `offset`; `*total` counts them all. */
int wh_db_gcrun_list(wh_db *db, const char *kind, int64_t offset, int64_t limit,
                     int (*fn)(const struct wh_gc_run *r, void *payload), void *payload,
                     int64_t *total);
/* The log of run `id` of `kind` (malloc'ed). 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_gcrun_log(wh_db *db, const char *kind, int64_t id, char **out);
/*
 * Stops run `id` of `kind`: a Pending run becomes Stopped, a Running one is
 * asked to stop (its executor ends it). A run that ended is left alone.
 * 0, WH_ENOTFOUND or WH_ERROR.
 */
int wh_db_gcrun_stop(wh_db *db, const char *kind, int64_t id, int64_t now_ms);
/*
 * Takes back runs cut off by the death of the node (or `wharf gc`) running
 * them: Running runs not updated since `stale_before_ms` (the runner writes
 * its progress about once a second), and with `at_start` (this node
 * starting) also this node's own (wh_db_set_node). Each goes back to Pending
 * for any node's gc thread to take over (wh_db_gcrun_claim), or ends as
 * Stopped when a stop was asked for, or as Error once taken
 * WH_GC_ATTEMPTS_MAX times; its log says so. The review queues lose
 * nothing meanwhile: a review is removed in the transaction that decides it.
 * `*requeued` (may be NULL) counts those queued again. 0 or WH_ERROR.
 */
int wh_db_gcrun_recover(wh_db *db, int64_t stale_before_ms, int64_t now_ms, bool at_start,
                        int64_t *requeued);
/*
 * Deletes (or with `dry`, counts) at most `limit` audit entries older than
 * `before_ms` whose operation is one of `ops` (`nops` <= 16; 0: any), in
 * one transaction; `*n_out` gets how many. 0 or WH_ERROR.
 */
int wh_db_audit_purge_ops(wh_db *db, int64_t before_ms, const char *const *ops, size_t nops,
                      bool dry, int64_t limit, int64_t *n_out);

/* The tags of an artifact, for list views: `fn` per name. 0 or WH_ERROR. */
int wh_db_artifact_tag_names(wh_db *db, int64_t artifact_id,
                             int (*fn)(const char *name, void *payload), void *payload);

/*
 * Portal sessions and failed-login counts (db_session.c): what every node of
 * a cluster must see alike, so they live here and not in a process.
 */
struct wh_db_session {
    int64_t user_id;
    char stamp[17];     /* fingerprint of the user's password hash at sign-in */
    int64_t created_ms; /* sign-in */
    int64_t seen_ms;    /* last use, as last written (at most once a minute) */
    int64_t expires_ms; /* the absolute end */
};
/*
 * Records a session: `id_hash` (64 hex digits, the SHA-256 of the session
 * id), its user and password fingerprint `stamp`, signed in at `now_ms`,
 * ending at `expires_ms` at the latest. Then keeps the user's `per_user_max`
 * most recently used sessions only (older ones end). 0, WH_ENOTFOUND (no
 * such user) or WH_ERROR.
 */
int wh_db_session_add(wh_db *db, const char *id_hash, int64_t user_id, const char *stamp,
                      int64_t now_ms, int64_t expires_ms, int per_user_max);
/* Reads session `id_hash` into `out`. 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_session_get(wh_db *db, const char *id_hash, struct wh_db_session *out);
/* Sets a session's last use to `now_ms` (never backwards). 0 (also when gone) or WH_ERROR. */
int wh_db_session_touch(wh_db *db, const char *id_hash, int64_t now_ms);
/* Ends session `id_hash`. 0 (also when there was none) or WH_ERROR. */
int wh_db_session_end(wh_db *db, const char *id_hash);
/* Ends every session of user `user_id`. 0 or WH_ERROR. */
int wh_db_session_end_user(wh_db *db, int64_t user_id);
/*
 * Deletes the sessions past their absolute end at `now_ms` or unused since
 * before `idle_before_ms`; `*deleted` (may be NULL) counts them. 0 or WH_ERROR.
 */
int wh_db_session_purge(wh_db *db, int64_t now_ms, int64_t idle_before_ms, int64_t *deleted);
/* Sessions recorded (live or not yet purged). 0 or WH_ERROR. */
int wh_db_session_count(wh_db *db, int64_t *out);

/* The failed logins counted for one throttle key (all 0: none). */
struct wh_db_login_failure {
    int64_t fails;    /* failures in the window */
    int64_t first_ms; /* the window's first failure */
    int64_t last_ms;  /* the latest failure (or refused attempt: wh_db_login_hold) */
};
#define WH_DB_LOGIN_KEYS_MAX 2
/*
 * Reads the counts of throttle keys `ids[0..n)` (n <= WH_DB_LOGIN_KEYS_MAX;
 * an id is a hash, never a name or an address) in one statement into
 * `out[0..n)`, zeros for a key with none. 0 or WH_ERROR.
 */
int wh_db_login_failures(wh_db *db, const char *const ids[], size_t n,
                         struct wh_db_login_failure *out);
/*
 * Counts a failed login at `now_ms` against each of `ids[0..n)`, in one
 * transaction: a key whose window (`window_ms` from its first failure) is
 * over starts again at 1. 0 or WH_ERROR.
 */
int wh_db_login_fail(wh_db *db, const char *const ids[], size_t n, int64_t now_ms,
                     int64_t window_ms);
/* Sets key `id`'s latest failure to `now_ms` (a refused attempt; never backwards). 0 or WH_ERROR. */
int wh_db_login_hold(wh_db *db, const char *id, int64_t now_ms);
/* Forgets key `id`'s failures (a successful login). 0 or WH_ERROR. */
int wh_db_login_clear(wh_db *db, const char *id);
/* Deletes the counts whose window began before `before_ms`. 0 or WH_ERROR. */
int wh_db_login_purge(wh_db *db, int64_t before_ms, int64_t *deleted);
/* Throttle keys recorded. 0 or WH_ERROR. */
int wh_db_login_count(wh_db *db, int64_t *out);

#endif
