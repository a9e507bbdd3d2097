/*
 * additions.c: an artifact's "additions": the
 * `addition_links` object of the artifact view, and
 * GET .../artifacts/{reference}/additions/{addition}. Harbor's image
 * processor offers one addition, the build history, read from the image
 * config's `history` (image-spec config.md); indexes and other artifact
 * types offer none. Scannable images, and indexes with a scannable child,
 * also link their vulnerabilities addition, answered by scans.c.
 */
#include "api/api_int.h"

#include <stdlib.h>
#include <string.h>

#include "registry/registry.h"

/* Harbor's swagger enum of the {addition} path parameter. */
static const char *const known_additions[] = {"build_history", "values.yaml", "readme.md",
                                              "dependencies", NULL};

/* An image manifest (not an index) whose config is an image config: what
 * Harbor's image processor handles, and so has a build history. */
static bool has_build_history(const struct wh_artifact_info *a)
{
    if (api_is_index(a->media_type))
        return false;
    return strcmp(a->artifact_type, "application/vnd.oci.image.config.v1+json") == 0 ||
           strcmp(a->artifact_type, "application/vnd.docker.container.image.v1+json") == 0;
}

/* The repository part of a full name, '/' encoded as %252F (what Harbor
 * puts in links: a name whose slashes survive two decodings). */
static const char *link_repo(struct call *c, const char *full)
{
    const char *repo = strchr(full, '/');
    repo = repo ? repo + 1 : full;
    struct wh_buf b;
    wh_buf_init(&b, 5 * strlen(repo) + 1);
    for (const char *p = repo; *p; p++) {
        if (*p == '/')
            wh_buf_puts(&b, "%252F");
        else
            wh_buf_put(&b, p, 1);
    }
    const char *out = wh_pool_strdup(c->pool, b.data ? b.data : "");
    wh_buf_dispose(&b);
    return out;
}

json_t *api_addition_links(struct call *c, const struct wh_artifact_info *a)
{
    json_t *links = json_object();
    if (has_build_history(a)) {
        size_t plen = strcspn(a->repo_name, "/");
        const char *href = wh_pool_sprintf(
            c->pool,
            API_PREFIX "/projects/%.*s/repositories/%s/artifacts/%s/additions/build_history",
            (int)plen, a->repo_name, link_repo(c, a->repo_name), a->digest);
        json_object_set_new(links, "build_history",
                            json_pack("{s:s,s:b}", "href", href, "absolute", 0));
    }
    if (api_scan_target(c, a)) {
        size_t plen = strcspn(a->repo_name, "/");
        const char *href = wh_pool_sprintf(
            c->pool,
            API_PREFIX "/projects/%.*s/repositories/%s/artifacts/%s/additions/vulnerabilities",
            (int)plen, a->repo_name, link_repo(c, a->repo_name), a->digest);
        json_object_set_new(links, "vulnerabilities",
                            json_pack("{s:s,s:b}", "href", href, "absolute", 0));
    }
    return links;
}

/*
 * The build history: the config's `history` entries with the fields Harbor
 * returns (created, created_by, author, comment, empty_layer), empty ones
 * left out as Harbor's encoder does; [] when the config has none.
 */
static int build_history(struct call *c, const struct wh_artifact_info *a)
{
    static const char *const text_keys[] = {"created", "created_by", "author", "comment", NULL};
    json_t *manifest = api_read_json(c, a->digest), *config = NULL, *out = NULL;
    int error = 0;
    const char *cfg = json_string_value(json_object_get(json_object_get(manifest, "config"),
                                                        "digest"));
    /* json_is_object() evaluates its argument twice: read the config once, first */
    if (cfg)
        config = api_read_json(c, cfg);
    if (!cfg || !json_is_object(config)) {
        error = api_fail(c, wh_error_set(WH_ERROR, "the config of %s@%s is unreadable",
                                         a->repo_name, a->digest));
        goto out;
    }
    out = json_array();
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(config, "history"), i, h) {
        json_t *e = json_object();
        for (int k = 0; text_keys[k]; k++) {
            const char *v = json_string_value(json_object_get(h, text_keys[k]));
            if (v && *v)
                json_object_set_new(e, text_keys[k], json_string(v));
        }
        if (json_is_true(json_object_get(h, "empty_layer")))
            json_object_set_new(e, "empty_layer", json_true());
        json_array_append_new(out, e);
    }
    char *text = json_dumps(out, JSON_COMPACT);
    if (!text) {
        error = api_fail(c, wh_error_set(WH_ERROR, "json encoding failed"));
        goto out;
    }
    wh_resp_send_copy(c->r, 200, "application/json; charset=utf-8", text, strlen(text));
    free(text);
out:
    json_decref(out);
    json_decref(config);
    json_decref(manifest);
    return error;
}

int api_artifact_addition(struct call *c)
{
    struct wh_repo_info *ri = wh_pool_alloc(c->pool, sizeof(*ri));
    struct wh_artifact_info *a = wh_pool_alloc(c->pool, sizeof(*a));
    const char *addition = c->param[3];
    bool known = false;
    for (int i = 0; known_additions[i] && !known; i++)
        known = strcmp(known_additions[i], addition) == 0;
    if (!known)
        return api_error(c, 422, "UNPROCESSABLE_ENTITY",
                         "addition in path should be one of [build_history values.yaml "
                         "readme.md dependencies]");
    if (api_load_artifact(c, ri, a) < 0)
        return -1;
    if (strcmp(addition, "build_history") == 0 && has_build_history(a))
        return build_history(c, a);
    const char *kind = a->artifact_type[0] ? a->artifact_type : a->media_type;
    if (api_is_index(a->media_type))
        kind = "an image index";
    return api_error(c, 400, "BAD_REQUEST",
                     wh_pool_sprintf(c->pool, "addition %s isn't supported for %s", addition,
                                     kind));
}
