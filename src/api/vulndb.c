/*
 * vulndb.c: wharf's own routes for the vulnerability database the built-in
 * scanner matches against (Harbor has none: its scanners report only an
 * update time in their metadata). GET /vulndb/status tells what the database
 * holds (sources, record counts, last update), where updates come from and
 * what the updater did last; POST /vulndb/update asks the updater (scand.c)
 * to run `wharf vulndb update`'s code now. System administrators only.
 */
#include "api/api_int.h"

#include <stdlib.h>
#include <string.h>

#include "scan/scan.h"
#include "scand/scand.h"

#define FEEDS_SHOWN_MAX 256
#define FEED_URL_MAX 2048

/* A time of the vulnerability database ("2026-12-03T05:00:00Z"), or JSON null. */
static json_t *db_time(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

static json_t *ms_time(struct call *c, int64_t ms)
{
    return ms > 0 ? json_string(api_time(c, ms)) : json_null();
}

/* A feed URL as shown: any user:password@ taken out, at most FEED_URL_MAX bytes. */
static json_t *feed_url(const char *url)
{
    char out[FEED_URL_MAX];
    const char *scheme = strstr(url, "://");
    size_t n = 0;
    if (scheme) {
        const char *host = scheme + 3;
        size_t hostlen = strcspn(host, "/?#");
        const char *at = memchr(host, '@', hostlen);
        if (at) {
            n = (size_t)(host - url);
            if (n >= sizeof(out))
                n = sizeof(out) - 1;
            memcpy(out, url, n);
            url = at + 1;
        }
    }
    snprintf(out + n, sizeof(out) - n, "%s", url);
    return json_string(out);
}

static json_t *feeds(const char *data_dir, const char **from)
{
    json_t *arr = json_array();
    const char *env = getenv("WHARF_VULNDB_FEEDS");
    char *list = wh_vulndb_feed_list(data_dir), *save = NULL;
    size_t n = 0;
    if (list) {
        *from = env && *env ? "WHARF_VULNDB_FEEDS" : "vulndb-feeds.txt";
        for (char *t = strtok_r(list, " \t\r\n", &save); t && n < FEEDS_SHOWN_MAX;
             t = strtok_r(NULL, " \t\r\n", &save), n++)
            json_array_append_new(arr, feed_url(t));
        free(list);
    }
    if (n == 0) { /* what `vulndb update` does with an empty list too */
        size_t nd = 0;
        const char *const *d = wh_vulndb_default_feeds(&nd);
        *from = "built-in";
        for (size_t i = 0; i < nd; i++)
            json_array_append_new(arr, json_string(d[i]));
    }
    return arr;
}

int api_vulndb_status(struct call *c)
{
    wh_scand *scand = c->api->cfg.scand;
    const char *data_dir = wh_scand_data_dir(scand);
    if (!data_dir)
        return api_error(c, 503, "UNAVAILABLE", "the scanner is not running");
    struct wh_vulndb_info *info = wh_calloc(1, sizeof(*info));
    char *path = wh_scand_vulndb_path(data_dir);
    int error = wh_vulndb_info(path, info);
    free(path);
    if (error < 0 && error != WH_ENOTFOUND) {
        free(info);
        return api_fail(c, error);
    }
    json_t *o = json_object();
    json_object_set_new(o, "present", json_boolean(error == 0));
    json_object_set_new(o, "updated_at", db_time(info->updated_at));
    json_object_set_new(o, "advisories", json_integer(info->advisories));
    json_object_set_new(o, "nvd_records", json_integer(info->nvd_records));
    json_t *srcs = json_array();
    for (size_t i = 0; i < info->nsources; i++) {
        const struct wh_vulndb_source *s = &info->sources[i];
        json_array_append_new(srcs, json_pack("{s:s, s:I, s:I, s:o}", "name", s->name, "files",
                                              (json_int_t)s->files, "records",
                                              (json_int_t)s->records, "imported_at",
                                              db_time(s->imported_at)));
    }
    json_object_set_new(o, "sources", srcs);
    free(info);
    const char *from = "built-in";
    json_object_set_new(o, "feeds", feeds(data_dir, &from));
    json_object_set_new(o, "feeds_from", json_string(from));

    struct wh_vulndb_update_state st;
    wh_scand_update_state(scand, &st);
    const char *status = st.running ? "Running" : st.requested ? "Pending" : st.status;
    json_t *u = json_object();
    json_object_set_new(u, "interval_seconds", json_integer(st.interval_s));
    json_object_set_new(u, "status", json_string(status));
    json_object_set_new(u, "trigger", json_string(st.trigger));
    json_object_set_new(u, "start_time", ms_time(c, st.started_ms));
    json_object_set_new(u, "end_time", st.running ? json_null() : ms_time(c, st.finished_ms));
    json_object_set_new(u, "message", json_string(st.running ? "" : st.message));
    json_object_set_new(u, "next_scheduled_time", ms_time(c, st.next_ms));
    json_object_set_new(o, "update", u);
    return api_json(c, 200, o);
}

int api_vulndb_update(struct call *c)
{
    if (api_writable(c) < 0)
        return -1;
    int error = wh_scand_update_now(c->api->cfg.scand);
    if (error == WH_ECONFLICT)
        return api_error(c, 409, "CONFLICT", wh_error_msg());
    api_audit(c, 0, "vulnerability database", "vulndb", "update", error == 0);
    if (error < 0)
        return api_error(c, 503, "UNAVAILABLE", "the scanner is not running");
    wh_log_info("vulndb: update asked for by %s", c->who.name);
    return api_ok(c, 202);
}
