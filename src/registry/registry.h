/*
 * registry: the OCI Distribution Specification v1.1 at /v2/ — pull, push
 * (monolithic, chunked, cross-repository mount), manifests with content
 * negotiation, tags and catalog listing, the referrers API, deletes, and the
 * spec's error bodies. Repository names are `<project>/<path…>`; the project
 * must exist. The pure parsers (names, references, ranges, manifests) are
 * exposed here for tests and fuzzing.
 */
#ifndef WH_REGISTRY_H
#define WH_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "acl/acl.h"
#include "common/common.h"
#include "db/db.h"
#include "http/http.h"
#include "storage/storage.h"

typedef struct wh_registry wh_registry;

/*
 * The answers' defaults of /v2/ and the token service, for wh_http_defaults:
 * the Docker-Distribution-API-Version header and the OCI error body on the
 * errors the HTTP layer gives by itself.
 */
extern const struct wh_http_defaults wh_registry_http_defaults;
/* The OCI error body {"errors":[{"code","message"}]} (JSON, from `pool`) for
 * an error the HTTP layer answers by itself; its wh_http_defaults hook. */
const char *wh_registry_error_body(wh_pool *pool, int status, const char *code,
                                   const char *message, const char **content_type);

struct wh_registry_config {
    size_t max_manifest_bytes; /* manifest PUT body cap (default 4 MiB) */
    uint64_t max_blob_bytes;   /* one blob's size cap */
    unsigned max_uploads;      /* open upload sessions of the server (429 beyond) */
    unsigned max_uploads_per_user;    /* ... of one user or robot (0: no cap) */
    unsigned max_uploads_per_project; /* ... in one project (0: no cap) */
    unsigned upload_ttl_s;      /* a session is removed this long after it started */
    unsigned upload_idle_ttl_s; /* ... or this long after its last PATCH/PUT */
    bool read_only;            /* refuse every write with DENIED */
    bool delete_enabled;       /* allow DELETE of manifests, tags and blobs */
};

/* Creates the registry over `db`, `store` and `acl` (all borrowed) and starts
 * its background sweeper (expired uploads, batched pull statistics). */
int wh_registry_new(wh_registry **out, const struct wh_registry_config *cfg, wh_db *db,
                    wh_store *store, wh_acl *acl);
/* Stops the sweeper, flushes pull statistics. */
void wh_registry_free(wh_registry *reg);
/* The /v2/ route handler (payload: the wh_registry). */
int wh_registry_handle(wh_req *req, void *payload);
/*
 * The token service at /service/token (payload: the wh_registry): Docker's
 * token protocol — GET with Basic credentials or none, `scope` parameters
 * (each may list several scopes), an ES256 JWT granting the intersection of
 * what was asked and what is allowed — and OAuth2's POST with the password
 * and refresh_token grants; refresh tokens with offline_token/access_type.
 */
int wh_registry_token_handle(wh_req *req, void *payload);
/*
 * The token service's POST body (application/x-www-form-urlencoded, as
 * OAuth2 sends it): for each of the `nnames` names, `values[i]` receives its
 * decoded value ('+' and %XX decoded; pool memory) or NULL when absent;
 * other names are skipped. Returns 0 or WH_EINVALID with the reason as
 * message: a NUL or control byte (decoded or not), a bad %-escape, a name
 * given twice, more than WH_TOKEN_FORM_FIELDS_MAX pairs.
 */
#define WH_TOKEN_FORM_FIELDS_MAX 64
int wh_token_form_parse(wh_pool *pool, const char *body, size_t len, const char *const *names,
                        size_t nnames, const char **values);
/* Removes expired upload sessions and staged files without a session. */
int wh_registry_sweep_uploads(wh_registry *reg, bool at_start);

/* ---- names and references (reference.c) ---- */
#define WH_REPO_NAME_MAX 255
#define WH_TAG_MAX 128
/* True if `name` is a valid repository name (distribution grammar, with a
 * project component per Harbor's project-name rule and at least one more). */
bool wh_ref_name_valid(const char *name, size_t len);
/* True if `s` matches the distribution spec's tag grammar. */
bool wh_ref_tag_valid(const char *s, size_t len);
/* True if `s` matches Harbor's project-name rule (and length 1..255). */
bool wh_ref_project_valid(const char *s, size_t len);
/* Length of the project part of a valid repository name. */
size_t wh_ref_project_len(const char *name);

/* ---- byte ranges (range.c) ---- */
/*
 * Parses a `Range` request header ("bytes=a-b", "bytes=a-", "bytes=-n") for a
 * resource of `size` bytes into [*first, *last]. Returns 0, WH_ENOTFOUND when
 * the header is not a single byte range (serve the whole thing), or WH_ERANGE
 * when it cannot be satisfied (416).
 */
int wh_range_parse(const char *hdr, uint64_t size, uint64_t *first, uint64_t *last);
/* Parses an upload `Content-Range` ("a-b", optionally "bytes a-b/total").
 * 0 or WH_EINVALID. */
int wh_content_range_parse(const char *hdr, uint64_t *first, uint64_t *last);

/* ---- manifests (manifest.c) ---- */
#define WH_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define WH_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define WH_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define WH_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define WH_MANIFEST_REFS_MAX 10000 /* descriptors in one manifest */

struct wh_manifest {
    const char *media_type;    /* resolved media type (one of WH_MT_*) */
    bool is_index;
    const char *artifact_type; /* artifactType, else config media type (image), or NULL */
    const char *subject;       /* subject digest or NULL */
    char *annotations;         /* compact JSON text of "annotations" or NULL */
    const char **blobs;        /* config + layers that must exist (foreign layers skipped) */
    size_t nblobs;
    const char **children;     /* index: child manifests */
    size_t nchildren;
    void *doc;                 /* the parsed JSON (owns the strings above) */
};
/*
 * Parses and validates manifest bytes. `content_type` is the request's
 * Content-Type (may be NULL). Returns 0 or WH_EINVALID with a message fit
 * for the client. Free `*out` with wh_manifest_free.
 */
int wh_manifest_parse(struct wh_manifest **out, const char *p, size_t len,
                      const char *content_type);
void wh_manifest_free(struct wh_manifest *m);

/*
 * What artifact lists show of a manifest (summary.c), as compact JSON texts
 * (malloc'd): `*extra_attrs` holds the architecture, os, config, created,
 * author, variant and os.version of the image config `config` ({} without
 * one), `*references` the children of an index, each with its digest and
 * any platform, annotations and urls ([] for a manifest). 0, WH_EINVALID
 * (not a JSON object) or WH_ERROR.
 */
int wh_manifest_summary(char **extra_attrs, char **references, const char *manifest, size_t len,
                        const char *config, size_t config_len);
/*
 * Computes the summary of the parsed manifest `m` (wh_manifest_summary),
 * reading its image config from `store`: 0 (`*extra_attrs` and `*references`
 * are the caller's, to free) or an error code (a config that cannot be read
 * makes no summary).
 */
int wh_registry_summary_make(char **extra_attrs, char **references, wh_store *store,
                             const struct wh_manifest *m);
/*
 * Computes and records (wh_db_manifest_summary_put) the summary of manifest
 * `digest`, whose bytes are `manifest`/`len` (NULL: read from `store`),
 * reading its image config from `store`. 0 or an error code.
 */
int wh_registry_summarize(wh_db *db, wh_store *store, const char *digest, const char *manifest,
                          size_t len);

#endif
