/*
 * errors.c: the OCI error body (spec.md, "Error Codes"):
 *   {"errors":[{"code":"…","message":"…","detail":…}]}
 * with the status codes of the distribution spec's table, and the one place
 * where wharf's error codes become HTTP statuses for /v2/.
 */
#include "registry/registry_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    int status;
    const char *code;
    const char *message;
} errs[] = {
    [E_BLOB_UNKNOWN] = {404, "BLOB_UNKNOWN", "blob unknown to registry"},
    [E_BLOB_UPLOAD_INVALID] = {400, "BLOB_UPLOAD_INVALID", "blob upload invalid"},
    [E_BLOB_UPLOAD_UNKNOWN] = {404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry"},
    [E_DIGEST_INVALID] = {400, "DIGEST_INVALID", "provided digest did not match uploaded content"},
    [E_MANIFEST_BLOB_UNKNOWN] = {400, "MANIFEST_BLOB_UNKNOWN",
                                 "manifest references a manifest or blob unknown to registry"},
    [E_MANIFEST_INVALID] = {400, "MANIFEST_INVALID", "manifest invalid"},
    [E_MANIFEST_UNKNOWN] = {404, "MANIFEST_UNKNOWN", "manifest unknown to registry"},
    [E_NAME_INVALID] = {400, "NAME_INVALID", "invalid repository name"},
    [E_NAME_UNKNOWN] = {404, "NAME_UNKNOWN", "repository name not known to registry"},
    [E_SIZE_INVALID] = {400, "SIZE_INVALID", "provided length did not match content length"},
    [E_UNAUTHORIZED] = {401, "UNAUTHORIZED", "authentication required"},
    [E_DENIED] = {403, "DENIED", "requested access to the resource is denied"},
    [E_UNSUPPORTED] = {400, "UNSUPPORTED", "the operation is unsupported"},
    [E_TOO_MANY_REQUESTS] = {429, "TOO_MANY_REQUESTS", "too many requests"},
    [E_RANGE_INVALID] = {416, "BLOB_UPLOAD_INVALID", "requested range not satisfiable"},
    [E_MANIFEST_TOO_BIG] = {413, "MANIFEST_INVALID", "manifest too large"},
    [E_BLOB_TOO_BIG] = {413, "SIZE_INVALID", "blob too large"},
    [E_PAGINATION_INVALID] = {400, "PAGINATION_NUMBER_INVALID", "invalid number of results requested"},
    [E_NOT_FOUND] = {404, "NOT_FOUND", "resource not found"},
    [E_METHOD] = {405, "UNSUPPORTED", "the method is not allowed for this resource"},
    [E_IN_USE] = {405, "UNSUPPORTED", "the content is in use and cannot be deleted"},
    [E_INTERNAL] = {500, "UNKNOWN", "internal server error"},
    /*
     * A full disk: 507 Insufficient Storage (RFC 4918), which docker and
     * containers/image print as such (they read the body of 4xx answers
     * only), with DENIED, which clients that read every error body (crane,
     * oras) print with the message and do not retry, unlike UNKNOWN; a
     * project over its quota gets DENIED too.
     */
    [E_POLICY] = {412, "PROJECTPOLICYVIOLATION", "the project's policy refuses this pull"},
    [E_STORAGE_FULL] = {507, "DENIED",
                        "storage is full: the registry cannot store more data until space is "
                        "freed"},
};

void oci_answer(wh_req *r, enum oci_err e, const char *message, const char *detail_json)
{
    json_t *err = json_object();
    json_object_set_new(err, "code", json_string(errs[e].code));
    json_object_set_new(err, "message", json_string(message ? message : errs[e].message));
    if (detail_json) {
        json_t *d = json_loads(detail_json, JSON_DECODE_ANY, NULL);
        if (d)
            json_object_set_new(err, "detail", d);
    }
    json_t *body = json_pack("{s:[o]}", "errors", err);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    size_t n = strlen(text);
    char *copy = wh_pool_alloc(wh_req_pool(r), n + 2);
    memcpy(copy, text, n);
    copy[n++] = '\n';
    copy[n] = '\0';
    free(text);
    wh_resp_send(r, errs[e].status, "application/json; charset=utf-8", copy, n);
}

int oci_fail(wh_registry *reg, wh_req *r, int error, const char *what)
{
    if (error == WH_ENOSPC) {
        /* the store logs the change of state once; each refusal is routine */
        wh_store_note_full(reg->store);
        wh_log_debug("%s: %s", what, wh_error_msg());
        return oci_error(r, E_STORAGE_FULL, NULL);
    }
    wh_log_error("%s: %s", what, wh_error_msg());
    return oci_error(r, E_INTERNAL, NULL);
}

void gc_enqueue(wh_registry *reg, const char *digest, int error)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", wh_error_msg());
    if (wh_db_gc_blob_enqueue(reg->db, digest, wh_now_ms()) < 0)
        wh_log_warn("%s: not queued for garbage collection: %s", digest, wh_error_msg());
    wh_error_set(error, "%s", msg);
}

bool retry_on_full(wh_registry *reg, int error)
{
    return error == WH_ENOSPC && wh_store_note_full(reg->store);
}

/*
 * What the HTTP layer puts on every /v2/ answer, its own errors included
 * (a malformed request, headers too large, no answer): the API version
 * header distribution clients look for, and the OCI error body.
 */
const char *wh_registry_error_body(wh_pool *pool, int status, const char *code,
                                   const char *message, const char **content_type)
{
    (void)status;
    json_t *doc = json_pack("{s:[{s:s, s:s}]}", "errors", "code", code, "message", message);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text)
        return NULL;
    char *body = wh_pool_sprintf(pool, "%s\n", text);
    free(text);
    *content_type = "application/json; charset=utf-8";
    return body;
}

static const char *const oci_headers[] = {"Docker-Distribution-API-Version", "registry/2.0", NULL};

const struct wh_http_defaults wh_registry_http_defaults = {
    .headers = oci_headers,
    .error_body = wh_registry_error_body,
};
