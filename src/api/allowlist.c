/*
 * allowlist.c: the system CVE allowlist, GET|PUT /system/CVEAllowlist.
 * Any signed-in caller reads it,
 * system administrators replace it. Projects that reuse the system list
 * (reuse_sys_cve_allowlist absent or true) are judged against it at pull time.
 */
#include "api/api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

int api_system_allowlist_get(struct call *c)
{
    char *text = wh_pool_alloc(c->pool, WH_PROJECT_META_MAX);
    int error = wh_db_setting_get(c->api->db, WH_SETTING_CVE_ALLOWLIST, text, WH_PROJECT_META_MAX);
    if (error == WH_ENOTFOUND)
        snprintf(text, WH_PROJECT_META_MAX, "{}");
    else if (error < 0)
        return api_error(c, 500, "INTERNAL_SERVER_ERROR", "the system allowlist cannot be read");
    json_t *o = json_loads(text, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        o = json_object();
    }
    if (!json_is_array(json_object_get(o, "items")))
        json_object_set_new(o, "items", json_array());
    json_object_set_new(o, "id", json_integer(1));
    json_object_set_new(o, "project_id", json_integer(0));
    if (!json_object_get(o, "expires_at"))
        json_object_set_new(o, "expires_at", json_null());
    return api_json(c, 200, o);
}

int api_system_allowlist_put(struct call *c)
{
    json_t *b = api_body(c);
    char msg[256];
    char *text = NULL;
    int rc;
    if (!b)
        return -1;
    if (wh_policy_allowlist_text(&text, b, msg, sizeof(msg)) < 0) {
        rc = api_error(c, 400, "BAD_REQUEST", wh_pool_strdup(c->pool, msg));
        goto out;
    }
    if (wh_db_setting_set(c->api->db, WH_SETTING_CVE_ALLOWLIST, text, wh_now_ms()) < 0) {
        api_audit(c, 0, "system CVE allowlist", "configuration", "update", false);
        rc = api_error(c, 500, "INTERNAL_SERVER_ERROR", "the system allowlist cannot be saved");
        goto out;
    }
    api_audit(c, 0, "system CVE allowlist", "configuration", "update", true);
    rc = api_ok(c, 200);
out:
    free(text);
    return rc;
}
