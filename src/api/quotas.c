/*
 * quotas.c: Harbor's quota API — GET /quotas, GET and PUT
 * /quotas/{id} — over wharf's one storage limit per project (db_quota.c:
 * a quota's id is its project's), and GET /systeminfo/volumes, the capacity
 * of the blob storage. Both are for administrators, as in Harbor (system
 * quota and system-volumes permissions).
 */
#include "api/api_int.h"

#include <inttypes.h>
#include <string.h>

static json_t *quota_view(struct call *c, const struct wh_quota *q)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(q->id));
    json_object_set_new(o, "ref", json_pack("{s:I,s:s,s:s}", "id", (json_int_t)q->id, "name",
                                            q->project_name, "owner_name", q->owner_name));
    json_object_set_new(o, "hard", json_pack("{s:I}", "storage", (json_int_t)q->hard));
    json_object_set_new(o, "used", json_pack("{s:I}", "storage", (json_int_t)q->used));
    json_object_set_new(o, "creation_time", json_string(api_time(c, q->created_ms)));
    json_object_set_new(o, "update_time", json_string(api_time(c, q->updated_ms)));
    return o;
}

struct list_ctx {
    struct call *c;
    json_t *arr;
};

static int add_quota(const struct wh_quota *q, void *payload)
{
    struct list_ctx *l = payload;
    json_array_append_new(l->arr, quota_view(l->c, q));
    return 0;
}

int api_quotas_list(struct call *c)
{
    /* wh_quota_filter.sort order */
    static const char *const sorts[] = {"id", "used.storage", "hard.storage", "creation_time",
                                        "update_time", NULL};
    struct wh_quota_filter f = {0};
    int64_t offset, limit, total = 0;
    if (api_page(c, &offset, &limit) < 0)
        return -1;
    if ((f.sort = api_sort(c, sorts, 0, &f.desc)) < 0)
        return api_error(c, 400, "BAD_REQUEST", "unsupported sort key");
    const char *ref = wh_req_query(c->r, "reference");
    const char *ref_id = wh_req_query(c->r, "reference_id");
    /* quotas are about projects only: another reference, or an id that
     * names no project, matches nothing */
    bool none = (ref && *ref && strcmp(ref, "project") != 0) ||
                (ref_id && *ref_id && api_id(ref_id, &f.project_id) < 0);
    if (none)
        return api_list(c, json_array(), 0, offset, limit);
    struct list_ctx l = {c, json_array()};
    int error = wh_db_quota_list(c->api->db, &f, offset, limit, add_quota, &l, &total);
    if (error < 0) {
        json_decref(l.arr);
        return api_fail(c, error);
    }
    return api_list(c, l.arr, total, offset, limit);
}

/* Loads the quota of path parameter 0, or answers 400/404. */
static int load(struct call *c, struct wh_quota *out)
{
    int64_t id;
    if (api_id(c->param[0], &id) < 0)
        return api_error(c, 400, "BAD_REQUEST", "the quota id must be a positive integer");
    int error = wh_db_quota_get(c->api->db, id, out);
    return error < 0 ? api_fail(c, error) : 0;
}

int api_quota_get(struct call *c)
{
    struct wh_quota *q = wh_pool_alloc(c->pool, sizeof(*q));
    if (load(c, q) < 0)
        return -1;
    return api_json(c, 200, quota_view(c, q));
}

int api_quota_update(struct call *c)
{
    struct wh_quota *q = wh_pool_alloc(c->pool, sizeof(*q));
    json_t *b = api_body(c);
    if (!b)
        return -1;
    json_t *hard = json_object_get(b, "hard");
    if (!json_is_object(hard) || json_object_size(hard) == 0)
        return api_error(c, 400, "BAD_REQUEST", "hard required in body");
    if (load(c, q) < 0)
        return -1;
    /* Harbor's project quota driver: storage only, -1 (unlimited) or positive */
    const char *key;
    json_t *v;
    json_object_foreach(hard, key, v) {
        if (strcmp(key, "storage") != 0)
            return api_error(c, 400, "BAD_REQUEST",
                             wh_pool_sprintf(c->pool, "resource %.64s not support", key));
        if (!json_is_integer(v) || (json_integer_value(v) <= 0 && json_integer_value(v) != -1))
            return api_error(c, 400, "BAD_REQUEST", "invalid value for resource storage");
    }
    int64_t limit = (int64_t)json_integer_value(json_object_get(hard, "storage"));
    int error = wh_db_quota_set_hard(c->api->db, q->id, limit);
    api_audit(c, q->id, q->project_name, "quota", "update", error == 0);
    if (error < 0)
        return api_fail(c, error);
    return api_ok(c, 200);
}

int api_systeminfo_volumes(struct call *c)
{
    uint64_t total = 0, avail = 0;
    int error = wh_store_capacity(c->api->store, &total, &avail);
    if (error == WH_ENOTFOUND) /* an object store has no size to report: no volume */
        return api_json(c, 200, json_pack("{s:[]}", "storage"));
    if (error < 0)
        return api_fail(c, error);
    json_t *o = json_pack("{s:[{s:I,s:I}]}", "storage", "total", (json_int_t)total, "free",
                          (json_int_t)avail);
    return api_json(c, 200, o);
}
