/*
 * adapter: the pluggable scanner API, both ways.
 *
 * As a scanner (serve.c, pull.c): wharf answers a registry that hands it
 * images to scan. A scan request names a registry URL, an Authorization
 * value and an image; a bounded set of threads pulls the image from that
 * registry over HTTP(S) into a private directory (manifest, config and
 * layers, each capped), scans it with the scanner library and keeps the
 * report for a while under the request's id.
 *
 * As a client (client.c): wharf registers external adapters and, when the
 * scanner in charge of an artifact is one of them, its scan workers hand the
 * job over: a short-lived registry token with pull and scanner-pull on the
 * one repository, a scan request with wharf's own registry URL, then the
 * report polled (honouring Refresh-After) until it comes or a deadline
 * passes. The report and its overview are stored as the built-in scanner's.
 */
#ifndef WH_ADAPTER_H
#define WH_ADAPTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "acl/acl.h"
#include "common/common.h"
#include "db/db.h"

#define WH_ADAPTER_ID_MAX 40          /* scan request id (32 hex) incl. NUL */
#define WH_ADAPTER_JOBS_MAX 64        /* scan requests remembered (running or finished) */
#define WH_ADAPTER_KEEP_S 3600        /* a finished request's report is kept this long */
#define WH_ADAPTER_LAYERS_MAX 128     /* layers of one image pulled at most */
#define WH_ADAPTER_MANIFEST_MAX (4u << 20) /* manifest bytes pulled at most */
#define WH_ADAPTER_REPORT_MAX (64u << 20)  /* report bytes read from an external adapter */
#define WH_ADAPTER_META_MAX (1u << 20)     /* metadata and small answers of an adapter */
#define WH_ADAPTER_REPORT_ITEMS_MAX 100000 /* vulnerabilities in one imported report */
#define WH_ADAPTER_REPORT_VALUES_MAX 2000000 /* JSON values in one report (weighed before parsing) */
#define WH_ADAPTER_REPORT_DEPTH_MAX 32     /* nesting of one report */
#define WH_ADAPTER_ITEM_STR_MAX 1024       /* bytes of an item's id, package, version, fix_version,
                                              status, each link, CWE id and CVSS vector */
#define WH_ADAPTER_ITEM_LIST_MAX 64        /* links, and CWE ids, of one item */
#define WH_ADAPTER_TITLE_MAX (4u << 10)    /* an item's title: cut beyond */
#define WH_ADAPTER_DESC_MAX (64u << 10)    /* an item's description: cut beyond */

#define WH_ADAPTER_MIME_META "application/vnd.scanner.adapter.metadata+json; version=1.0"
#define WH_ADAPTER_MIME_SCAN_REQ "application/vnd.scanner.adapter.scan.request+json; version=1.0"
#define WH_ADAPTER_MIME_SCAN_RESP "application/vnd.scanner.adapter.scan.response+json; version=1.0"
#define WH_ADAPTER_MIME_ERROR "application/vnd.scanner.adapter.error; version=1.0"
#define WH_ADAPTER_MIME_REPORT_NATIVE                                                              \
    "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0"
#define WH_ADAPTER_MIME_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define WH_ADAPTER_MIME_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"

/* The built-in scanner's registration id (it has no row; see db_scanner.c). */
#define WH_ADAPTER_BUILTIN_UUID "77686172-6600-4000-8000-000000000001"

/* ---- pulling an image from a registry (pull.c) ---- */

struct wh_adapter_pull {
    const char *registry_url;  /* e.g. "https://core.example:8443" */
    const char *authorization; /* "Basic …", "Bearer …" or NULL */
    const char *repository;    /* "library/nginx" */
    const char *digest;        /* manifest digest */
    const char *dir;           /* blobs are written to <dir>/<hex of the digest> */
    bool insecure;             /* no TLS certificate check */
    uint64_t max_bytes;        /* config and layers together, at most */
    unsigned timeout_s;        /* the whole pull */
    const int *cancel;         /* non-zero (read atomically): give up (may be NULL) */
};
/*
 * Downloads the manifest, its config and its layers. 0; WH_EINVALID (the
 * registry refused, answered garbage, or the image is not one manifest);
 * WH_ETOOBIG (a cap); WH_ERROR (no answer: connection, timeout). The message
 * is for the scan's requester and names the registry's answer.
 */
int wh_adapter_pull(const struct wh_adapter_pull *p);

/* ---- wharf as a scanner (serve.c) ---- */

typedef struct wh_adapter wh_adapter;

struct wh_adapter_config {
    bool enabled;            /* scan.adapter.enabled */
    const char *token;       /* scan.adapter.token: the bearer callers present */
    unsigned max_concurrent; /* scan.adapter.max_concurrent: scans at the same time */
    uint64_t max_image_bytes; /* scan.adapter.max_image_bytes: config and layers of one image */
    unsigned timeout_s;      /* scan.adapter.timeout: pull and scan of one image */
    const char *data_dir;    /* vulnerability database, layer cache, scratch directory */
};

/* Starts the adapter (nothing runs until a request comes). 0 or WH_ERROR. */
int wh_adapter_new(wh_adapter **out, const struct wh_adapter_config *cfg);
/* Waits for the running scans (telling them to give up) and frees `a` (NULL is fine). */
void wh_adapter_free(wh_adapter *a);
/* Whether the API is served. */
bool wh_adapter_enabled(const wh_adapter *a);
/* Whether `authorization` / `api_key` (either may be NULL) carry the configured token. */
bool wh_adapter_authorized(const wh_adapter *a, const char *authorization, const char *api_key);
/* The adapter's metadata (new reference). */
json_t *wh_adapter_metadata(wh_adapter *a);
/*
 * Accepts a ScanRequest and starts its scan. 0 with the id;
 * WH_EINVALID (a field is missing or wrong: the message says which);
 * WH_EBUSY (max_concurrent scans are running).
 */
int wh_adapter_submit(wh_adapter *a, const json_t *request, char *id_out);
/*
 * The report of request `id`: 0 with the JSON text (malloc'ed); WH_EDEFERRED
 * while it runs (`*refresh_s` seconds to wait); WH_ENOTFOUND (unknown or
 * expired id); WH_EINVALID (the scan failed: the message says why).
 */
int wh_adapter_report(wh_adapter *a, const char *id, char **out, unsigned *refresh_s);

/* ---- wharf as a client of external adapters (client.c) ---- */

/*
 * Checks adapter metadata as Harbor does when it registers or pings a
 * scanner: scanner name, vendor and version present; at least one
 * capability; each consumes the Docker v2 manifest type and produces one of
 * the vulnerability report types. 0 or WH_EINVALID with the reason.
 */
int wh_adapter_metadata_check(const json_t *meta);
/*
 * Reads GET <url>/api/v1/metadata of a registration and checks it. 0 with
 * the metadata (new reference); WH_EBUSY (no answer, or a 5xx or 429: it
 * may answer later) or WH_EINVALID, with a readable reason.
 */
int wh_adapter_fetch_metadata(json_t **out, const struct wh_scanner_reg *reg, unsigned timeout_s);
/*
 * Weighs the bytes of an adapter's report before they are parsed: a parse
 * costs far more memory than the bytes (a million tiny items in 60 MB take
 * about 900 MB as a tree), so the items of its top-level `vulnerabilities`
 * list, all its JSON values and its nesting are counted first, in one pass
 * that allocates nothing. 0 (within WH_ADAPTER_REPORT_ITEMS_MAX,
 * WH_ADAPTER_REPORT_VALUES_MAX and WH_ADAPTER_REPORT_DEPTH_MAX: the parser
 * still judges whether it is JSON) or WH_ETOOBIG with a message naming the cap.
 */
int wh_adapter_report_weigh(const char *body, size_t len);
/*
 * Turns an adapter's report into what the scan queue stores: the report
 * text (items checked, `artifact_digests` set to `digest`), the overview
 * summary and the overall severity. Each item keeps Harbor's fields only,
 * each within its cap: an id, package, version, fix_version, status, link,
 * CWE id or CVSS vector longer than WH_ADAPTER_ITEM_STR_MAX, or more than
 * WH_ADAPTER_ITEM_LIST_MAX links or CWE ids, refuse the report (WH_ETOOBIG);
 * a longer title or description is cut at its cap (on a character boundary).
 * 0, WH_EINVALID (not a report) or WH_ETOOBIG, with a message naming the item.
 */
int wh_adapter_report_import(const json_t *rep, const char *digest, char **report_out,
                             char **summary_out, char *severity, size_t sevcap);

/* What the scan workers need to hand a job to an external adapter. */
struct wh_adapter_client {
    wh_db *db;
    wh_acl *acl;              /* signs (and revokes) the registry token */
    char registry_url[1024];  /* scan.registry_url: how adapters reach this registry */
    unsigned timeout_s;       /* scan.external_timeout: the whole job */
    int stop;                 /* set (atomically) when the server stops */
};
/*
 * The scan workers' delegate (scand.h): runs `job` on the external adapter
 * in charge of its artifact. 0 when the built-in scanner is in charge; 1
 * with the report, summary and severity when the adapter produced them;
 * WH_EBUSY with a readable message when the adapter could not be reached or
 * answered 5xx or 429 (the job is worth another attempt later), WH_EINVALID
 * when it failed otherwise; WH_EDEFERRED
 * when the server is stopping (the job is left Running for the next start).
 */
int wh_adapter_delegate(void *payload, const struct wh_scan_job *job, char **report,
                        char **summary, char *severity, size_t sevcap);

#endif
