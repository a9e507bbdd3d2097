/*
 * scanners.c: Harbor's scanner registrations:
 * GET|POST /scanners, POST /scanners/ping, GET|PUT|DELETE|PATCH
 * /scanners/{registration_id}, GET /scanners/{registration_id}/metadata,
 * GET|PUT /projects/{p}/scanner and GET /projects/{p}/scanner/candidates.
 * The built-in scanner is listed first, under a fixed id, and cannot be
 * edited or deleted (as Harbor's bundled Trivy); it is the default until a
 * registration is made default. Registrations are the administrators'; a
 * project's choice follows the project's scanner permission. The
 * access_credential of a registration is never sent back.
 */
#include "api/api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "adapter/adapter.h"
#include "fetch/fetch.h"
#include "scan/scan.h"

static bool builtin(const char *uuid)
{
    return strcmp(uuid, WH_ADAPTER_BUILTIN_UUID) == 0;
}

/* Whether a registration is the default (none marked: the built-in scanner is). */
static int default_uuid_fn(const struct wh_scanner_reg *r, void *payload)
{
    if (r->is_default)
        snprintf(payload, WH_SCANNER_UUID_MAX, "%s", r->uuid);
    return 0;
}

static const char *default_uuid(struct call *c)
{
    char *out = wh_pool_alloc(c->pool, WH_SCANNER_UUID_MAX);
    snprintf(out, WH_SCANNER_UUID_MAX, "%s", WH_ADAPTER_BUILTIN_UUID);
    wh_db_scanner_list(c->api->db, default_uuid_fn, out);
    return out;
}

static json_t *builtin_view(struct call *c, bool is_default)
{
    json_t *v = json_object();
    json_object_set_new(v, "uuid", json_string(WH_ADAPTER_BUILTIN_UUID));
    json_object_set_new(v, "name", json_string(WH_SCANNER_NAME));
    json_object_set_new(v, "description", json_string("the scanner built into wharf"));
    json_object_set_new(v, "url", json_string("builtin://wharf"));
    json_object_set_new(v, "auth", json_string(""));
    json_object_set_new(v, "skip_certVerify", json_false());
    json_object_set_new(v, "use_internal_addr", json_true());
    json_object_set_new(v, "disabled", json_false());
    json_object_set_new(v, "is_default", json_boolean(is_default));
    json_object_set_new(v, "adapter", json_string(WH_SCANNER_NAME));
    json_object_set_new(v, "vendor", json_string(WH_SCANNER_NAME));
    json_object_set_new(v, "version", json_string(WH_SCANNER_VERSION));
    json_object_set_new(v, "health", json_string("healthy"));
    json_object_set_new(v, "capabilities", json_pack("{s:b, s:b}", "support_vulnerability", 1,
                                                     "support_sbom", 0));
    json_object_set_new(v, "create_time", json_string(api_time(c, 0)));
    json_object_set_new(v, "update_time", json_string(api_time(c, 0)));
    return v;
}

/*
 * A registration's view. With `health`, the adapter's metadata is read
 * (a short timeout) for adapter, vendor, version, health and capabilities.
 */
static json_t *reg_view(struct call *c, const struct wh_scanner_reg *r, bool health)
{
    json_t *v = json_object();
    json_object_set_new(v, "uuid", json_string(r->uuid));
    json_object_set_new(v, "name", json_string(r->name));
    json_object_set_new(v, "description", json_string(r->description));
    json_object_set_new(v, "url", json_string(r->url));
    json_object_set_new(v, "auth", json_string(r->auth));
    json_object_set_new(v, "skip_certVerify", json_boolean(r->skip_cert_verify));
    json_object_set_new(v, "use_internal_addr", json_boolean(r->use_internal_addr));
    json_object_set_new(v, "disabled", json_boolean(r->disabled));
    json_object_set_new(v, "is_default", json_boolean(r->is_default));
    json_object_set_new(v, "create_time", json_string(api_time(c, r->created_ms)));
    json_object_set_new(v, "update_time", json_string(api_time(c, r->updated_ms)));
    if (!health)
        return v;
    json_t *meta = NULL;
    if (wh_adapter_fetch_metadata(&meta, r, 5) == 0) {
        json_t *sc = json_object_get(meta, "scanner");
        json_object_set(v, "adapter", json_object_get(sc, "name"));
        json_object_set(v, "vendor", json_object_get(sc, "vendor"));
        json_object_set(v, "version", json_object_get(sc, "version"));
        json_object_set_new(v, "health", json_string("healthy"));
        bool sbom = false;
        size_t i;
        json_t *cap;
        json_array_foreach(json_object_get(meta, "capabilities"), i, cap) {
            const char *t = json_string_value(json_object_get(cap, "type"));
            sbom |= t && strcmp(t, "sbom") == 0;
        }
        json_object_set_new(v, "capabilities", json_pack("{s:b, s:b}", "support_vulnerability", 1,
                                                         "support_sbom", sbom));
        json_decref(meta);
    } else {
        json_object_set_new(v, "health", json_string("unhealthy"));
    }
    return v;
}

/* ---- the request body ---- */

static int text_field(struct call *c, json_t *body, const char *key, char *out, size_t cap,
                      bool required, bool keep)
{
    json_t *v = json_object_get(body, key);
    if (!v && keep)
        return 0;
    if (v && !json_is_string(v) && !json_is_null(v))
        return api_error(c, 400, "BAD_REQUEST", wh_pool_sprintf(c->pool, "%s must be a string", key));
    const char *s = v ? json_string_value(v) : NULL;
    if (!s)
        s = "";
    if (required && !*s)
        return api_error(c, 400, "BAD_REQUEST", wh_pool_sprintf(c->pool, "%s is required", key));
    if (strlen(s) >= cap)
        return api_error(c, 400, "BAD_REQUEST",
                         wh_pool_sprintf(c->pool, "%s is longer than %zu bytes", key, cap - 1));
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return api_error(c, 400, "BAD_REQUEST",
                             wh_pool_sprintf(c->pool, "%s holds a control character", key));
    snprintf(out, cap, "%s", s);
    return 0;
}

static int bool_field(struct call *c, json_t *body, const char *key, bool *out)
{
    json_t *v = json_object_get(body, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return api_error(c, 400, "BAD_REQUEST", wh_pool_sprintf(c->pool, "%s must be a boolean", key));
    *out = json_is_true(v);
    return 0;
}

/* Reads ScannerRegistrationReq into `r` (`update`: absent fields keep their value). */
static int reg_from_body(struct call *c, json_t *body, struct wh_scanner_reg *r, bool update)
{
    if (text_field(c, body, "name", r->name, sizeof(r->name), !update, update) < 0 ||
        text_field(c, body, "description", r->description, sizeof(r->description), false,
                   update) < 0 ||
        text_field(c, body, "url", r->url, sizeof(r->url), !update, update) < 0 ||
        text_field(c, body, "auth", r->auth, sizeof(r->auth), false, update) < 0 ||
        text_field(c, body, "access_credential", r->access_credential,
                   sizeof(r->access_credential), false, update) < 0 ||
        bool_field(c, body, "skip_certVerify", &r->skip_cert_verify) < 0 ||
        bool_field(c, body, "use_internal_addr", &r->use_internal_addr) < 0 ||
        bool_field(c, body, "disabled", &r->disabled) < 0)
        return -1;
    if (!*r->name)
        return api_error(c, 400, "BAD_REQUEST", "name is required");
    if (!wh_fetch_url_ok(r->url))
        return api_error(c, 400, "BAD_REQUEST",
                         "url must be an absolute http:// or https:// URL of the adapter");
    static const char *const auths[] = {"", "Basic", "Bearer", "X-ScannerAdapter-API-Key", NULL};
    bool known = false;
    for (int i = 0; auths[i]; i++)
        if (strcmp(r->auth, auths[i]) == 0)
            known = true;
    if (!known)
        return api_error(c, 400, "BAD_REQUEST",
                         wh_pool_sprintf(c->pool, "auth %s is not one of \"\", Basic, Bearer, "
                                                  "X-ScannerAdapter-API-Key",
                                         r->auth));
    if (*r->auth && !*r->access_credential)
        return api_error(c, 400, "BAD_REQUEST",
                         wh_pool_sprintf(c->pool, "access_credential is required with auth %s",
                                         r->auth));
    if (strcmp(r->auth, "Basic") == 0 && !strchr(r->access_credential, ':'))
        return api_error(c, 400, "BAD_REQUEST",
                         "access_credential must be user:password with auth Basic");
    if (!*r->auth)
        r->access_credential[0] = '\0';
    return 0;
}

static void new_uuid(char *out)
{
    unsigned char b[16];
    char hex[33];
    wh_random_hex(hex, 16);
    for (int i = 0; i < 16; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        b[i] = (unsigned char)v;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, WH_SCANNER_UUID_MAX,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

/* ---- /scanners ---- */

struct list_ctx {
    struct call *c;
    json_t *arr;
};

static int list_fn(const struct wh_scanner_reg *r, void *payload)
{
    struct list_ctx *l = payload;
    json_array_append_new(l->arr, reg_view(l->c, r, false));
    return 0;
}

/* Every scanner, the built-in one first. */
static json_t *all_scanners(struct call *c)
{
    struct list_ctx l = {c, json_array()};
    const char *dflt = default_uuid(c);
    json_array_append_new(l.arr, builtin_view(c, builtin(dflt)));
    if (wh_db_scanner_list(c->api->db, list_fn, &l) < 0) {
        json_decref(l.arr);
        return NULL;
    }
    return l.arr;
}

/* Answers a page of `all` (stolen). */
static int page_of(struct call *c, json_t *all)
{
    int64_t offset, limit;
    if (api_page(c, &offset, &limit) < 0) {
        json_decref(all);
        return -1;
    }
    int64_t total = (int64_t)json_array_size(all);
    json_t *page = json_array();
    for (int64_t i = offset; i < total && i < offset + limit; i++)
        json_array_append(page, json_array_get(all, (size_t)i));
    json_decref(all);
    return api_list(c, page, total, offset, limit);
}

int api_scanners_list(struct call *c)
{
    json_t *all = all_scanners(c);
    if (!all)
        return api_fail(c, WH_ERROR);
    return page_of(c, all);
}

int api_scanner_create(struct call *c)
{
    json_t *body = api_body(c);
    if (!body)
        return -1;
    struct wh_scanner_reg *r = wh_pool_alloc(c->pool, sizeof(*r));
    memset(r, 0, sizeof(*r));
    if (reg_from_body(c, body, r, false) < 0)
        return -1;
    if (strcasecmp(r->name, WH_SCANNER_NAME) == 0)
        return api_error(c, 409, "CONFLICT",
                         wh_pool_sprintf(c->pool, "scanner registration name %s already exists",
                                         r->name));
    new_uuid(r->uuid);
    r->created_ms = r->updated_ms = wh_now_ms();
    int error = wh_db_scanner_create(c->api->db, r);
    if (error < 0)
        return api_fail(c, error);
    api_audit(c, 0, r->name, "scanner", "create", true);
    const char *path = wh_req_path(c->r);
    size_t n = strlen(path);
    while (n > 0 && path[n - 1] == '/')
        n--;
    wh_resp_header(c->r, "Location", wh_pool_sprintf(c->pool, "%.*s/%s", (int)n, path, r->uuid));
    return api_ok(c, 201);
}

/* Loads registration param[0] (not the built-in one), or answers 404. */
static int load(struct call *c, struct wh_scanner_reg *r)
{
    int error = wh_db_scanner_get(c->api->db, c->param[0], r);
    if (error == WH_ENOTFOUND)
        return api_error(c, 404, "NOT_FOUND",
                         wh_pool_sprintf(c->pool, "scanner registration %s not found",
                                         c->param[0]));
    return error < 0 ? api_fail(c, error) : 0;
}

static int immutable(struct call *c)
{
    return api_error(c, 403, "FORBIDDEN",
                     "the built-in scanner's registration is immutable");
}

int api_scanner_get(struct call *c)
{
    if (builtin(c->param[0]))
        return api_json(c, 200, builtin_view(c, builtin(default_uuid(c))));
    struct wh_scanner_reg *r = wh_pool_alloc(c->pool, sizeof(*r));
    if (load(c, r) < 0)
        return -1;
    return api_json(c, 200, reg_view(c, r, true));
}

int api_scanner_update(struct call *c)
{
    if (builtin(c->param[0]))
        return immutable(c);
    json_t *body = api_body(c);
    if (!body)
        return -1;
    struct wh_scanner_reg *r = wh_pool_alloc(c->pool, sizeof(*r));
    if (load(c, r) < 0 || reg_from_body(c, body, r, true) < 0)
        return -1;
    if (strcasecmp(r->name, WH_SCANNER_NAME) == 0)
        return api_error(c, 409, "CONFLICT",
                         wh_pool_sprintf(c->pool, "scanner registration name %s already exists",
                                         r->name));
    int error = wh_db_scanner_update(c->api->db, r, wh_now_ms());
    if (error < 0)
        return api_fail(c, error);
    api_audit(c, 0, r->name, "scanner", "update", true);
    return api_ok(c, 200);
}

int api_scanner_delete(struct call *c)
{
    if (builtin(c->param[0]))
        return immutable(c);
    struct wh_scanner_reg *r = wh_pool_alloc(c->pool, sizeof(*r));
    if (load(c, r) < 0)
        return -1;
    if (r->is_default)
        return api_error(c, 403, "FORBIDDEN",
                         "the default scanner cannot be deleted: make another one the default "
                         "first");
    int error = wh_db_scanner_delete(c->api->db, r->uuid);
    if (error < 0)
        return api_fail(c, error);
    api_audit(c, 0, r->name, "scanner", "delete", true);
    return api_json(c, 200, reg_view(c, r, false));
}

int api_scanner_set_default(struct call *c)
{
    json_t *body = api_body(c);
    if (!body)
        return -1;
    json_t *d = json_object_get(body, "is_default");
    if (!json_is_boolean(d))
        return api_error(c, 400, "BAD_REQUEST", "is_default must be a boolean");
    if (!json_is_true(d))
        return api_ok(c, 200); /* as Harbor: only setting a default does something */
    const char *uuid = builtin(c->param[0]) ? NULL : c->param[0];
    if (uuid) {
        struct wh_scanner_reg *r = wh_pool_alloc(c->pool, sizeof(*r));
        if (load(c, r) < 0)
            return -1;
        if (r->disabled)
            return api_error(c, 400, "BAD_REQUEST", "a disabled scanner cannot be the default");
    }
    int error = wh_db_scanner_set_default(c->api->db, uuid);
    if (error < 0)
        return api_fail(c, error);
    api_audit(c, 0, uuid ? uuid : WH_SCANNER_NAME, "scanner", "update", true);
    return api_ok(c, 200);
}

int api_scanner_ping(struct call *c)
{
    json_t *body = api_body(c);
    if (!body)
        return -1;
    struct wh_scanner_reg *r = wh_pool_alloc(c->pool, sizeof(*r));
    memset(r, 0, sizeof(*r));
    if (!json_object_get(body, "name"))
        snprintf(r->name, sizeof(r->name), "ping");
    if (reg_from_body(c, body, r, !json_object_get(body, "name")) < 0)
        return -1;
    json_t *meta = NULL;
    if (wh_adapter_fetch_metadata(&meta, r, c->api->cfg.scanner_timeout_s) < 0)
        return api_error(c, 400, "BAD_REQUEST",
                         wh_pool_sprintf(c->pool, "the scanner %s does not answer as an adapter: "
                                                  "%s",
                                         r->url, wh_error_msg()));
    json_decref(meta);
    return api_ok(c, 200);
}

int api_scanner_metadata(struct call *c)
{
    if (builtin(c->param[0])) {
        if (!c->api->cfg.adapter)
            return api_fail(c, wh_error_set(WH_ERROR, "no adapter configured"));
        return api_json(c, 200, wh_adapter_metadata(c->api->cfg.adapter));
    }
    struct wh_scanner_reg *r = wh_pool_alloc(c->pool, sizeof(*r));
    if (load(c, r) < 0)
        return -1;
    json_t *meta = NULL;
    if (wh_adapter_fetch_metadata(&meta, r, c->api->cfg.scanner_timeout_s) < 0)
        return api_error(c, 500, "UNKNOWN",
                         wh_pool_sprintf(c->pool, "scanner %s: %s", r->name, wh_error_msg()));
    return api_json(c, 200, meta);
}

/* ---- a project's scanner ---- */

/* The uuid of the scanner in charge of the route's project. */
static const char *project_uuid(struct call *c)
{
    char *uuid = wh_pool_alloc(c->pool, WH_SCANNER_UUID_MAX);
    struct wh_scanner_reg *r = wh_pool_alloc(c->pool, sizeof(*r));
    if (wh_db_project_scanner_get(c->api->db, c->proj->p.id, uuid) == 0 &&
        (builtin(uuid) || wh_db_scanner_get(c->api->db, uuid, r) == 0))
        return uuid;
    return default_uuid(c);
}

int api_project_scanner_get(struct call *c)
{
    const char *uuid = project_uuid(c);
    if (builtin(uuid))
        return api_json(c, 200, builtin_view(c, builtin(default_uuid(c))));
    struct wh_scanner_reg *r = wh_pool_alloc(c->pool, sizeof(*r));
    int error = wh_db_scanner_get(c->api->db, uuid, r);
    if (error < 0)
        return api_fail(c, error);
    /* the adapter's health costs a call to it on this request thread: only for those who
     * may change the project's scanner, not for every reader of the project */
    bool health = wh_acl_can(c->api->acl, &c->who, &c->proj->p, WH_RBAC_RES_SCANNER,
                             WH_RBAC_ACT_CREATE);
    return api_json(c, 200, reg_view(c, r, health));
}

int api_project_scanner_set(struct call *c)
{
    json_t *body = api_body(c);
    if (!body)
        return -1;
    const char *uuid = json_string_value(json_object_get(body, "uuid"));
    if (!uuid || !*uuid || strlen(uuid) >= WH_SCANNER_UUID_MAX)
        return api_error(c, 400, "BAD_REQUEST", "uuid is required");
    if (!builtin(uuid)) {
        struct wh_scanner_reg *r = wh_pool_alloc(c->pool, sizeof(*r));
        int error = wh_db_scanner_get(c->api->db, uuid, r);
        if (error == WH_ENOTFOUND)
            return api_error(c, 404, "NOT_FOUND",
                             wh_pool_sprintf(c->pool, "scanner registration %s not found", uuid));
        if (error < 0)
            return api_fail(c, error);
        if (r->disabled)
            return api_error(c, 400, "BAD_REQUEST",
                             wh_pool_sprintf(c->pool, "the scanner %s is disabled", r->name));
    }
    int error = wh_db_project_scanner_set(c->api->db, c->proj->p.id, uuid);
    if (error < 0)
        return api_fail(c, error);
    api_audit(c, c->proj->p.id, c->proj->p.name, "project", "update", true);
    return api_ok(c, 200);
}

int api_project_scanner_candidates(struct call *c)
{
    json_t *all = all_scanners(c);
    if (!all)
        return api_fail(c, WH_ERROR);
    /* the disabled ones cannot be chosen */
    json_t *ok = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(all, i, v) {
        if (!json_is_true(json_object_get(v, "disabled")))
            json_array_append(ok, v);
    }
    json_decref(all);
    return page_of(c, ok);
}
