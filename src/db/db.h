/*
 * db: the metadata store, wharf's source of truth for projects, repositories,
 * blobs, artifacts, tags, references and upload sessions. Callers see plain
 * structs and callbacks; SQLite (WAL, one connection per thread, statements
 * prepared once per connection) stays inside db_sqlite.c so that a
 * PostgreSQL implementation can sit behind the same interface.
 *
 * Strings in output structs are copied into fixed-size fields; strings passed
 * to callbacks are borrowed for the duration of the call.
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
};

/* Opens (creating and migrating) the database at `path`. */
int wh_db_open(wh_db **out, const char *path);
/* Closes every connection. Only after all threads using `db` are done. */
void wh_db_close(wh_db *db);
/* Releases the calling thread's connection (worker threads call this on exit). */
void wh_db_thread_done(wh_db *db);

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
/* Records a committed blob and links it into `repo` (created if needed). */
int wh_db_blob_link(wh_db *db, int64_t project_id, const char *repo, const char *digest,
                    uint64_t size);
/* Size of a blob linked into `repo`. 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_blob_get(wh_db *db, const char *repo, const char *digest, uint64_t *size_out);
/* Unlinks a blob from `repo`. 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_blob_unlink(wh_db *db, const char *repo, const char *digest);

/* ---- manifests, tags, referrers ---- */
/*
 * Records a manifest (and its tag) in one transaction, checking that every
 * blob and child it references is in the repository. Returns 0,
 * WH_ENOTFOUND (a reference is missing: the message names it) or WH_ERROR.
 */
int wh_db_manifest_put(wh_db *db, const struct wh_artifact_in *a);
/* Looks a manifest up by tag or digest (`is_digest`). 0, WH_ENOTFOUND or WH_ERROR. */
int wh_db_manifest_get(wh_db *db, const char *repo, const char *ref, bool is_digest,
                       struct wh_manifest_ref *out);
/* Deletes a manifest by digest together with its tags. 0, WH_ENOTFOUND, WH_ERROR. */
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
int wh_db_upload_create(wh_db *db, const char *id, const char *repo, int64_t now_ms);
/* Repository of an upload session: copies into `repo_out` (WH_NAME_MAX). */
int wh_db_upload_get(wh_db *db, const char *id, char *repo_out);
int wh_db_upload_touch(wh_db *db, const char *id, int64_t now_ms);
int wh_db_upload_delete(wh_db *db, const char *id);
int wh_db_upload_count(wh_db *db, int64_t *out);
/* Calls `fn` for sessions idle since before `before_ms`. */
int wh_db_upload_expired(wh_db *db, int64_t before_ms, int (*fn)(const char *id, void *payload),
                         void *payload);

#endif
