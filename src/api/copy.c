/*
 * copy.c: POST /projects/{project_name}/repositories/{repository_name}/artifacts
 * ?from=<project>/<repository>:<tag> or ...@<digest> — Harbor's artifact copy
 * (the portal's "Copy", and what replication tools call retag). The caller
 * needs push on the target (the route checks it) and pull on the source;
 * the copy is metadata only (db_copy.c), counted against the target
 * project's storage quota. Answers 201 with a Location naming the copy by
 * the reference it was asked for, as Harbor does.
 */
#include "api/api_int.h"

#include <string.h>

#include "registry/registry.h"

#define FROM_MAX 512 /* a repository name (255), a tag (128) or a digest (135) */

/* Splits `from` into repository and reference ("name:tag", "name@digest";
 * with both, the digest wins). 0 or WH_EINVALID. */
static int parse_from(struct call *c, const char *from, const char **repo, const char **ref,
                      bool *is_digest)
{
    size_t n = strlen(from);
    if (n == 0 || n > FROM_MAX)
        return WH_EINVALID;
    const char *at = strchr(from, '@');
    const char *end = at ? at : from + n;
    /* a tag follows the last ':' after the last '/' (a name holds no ':') */
    const char *slash = memrchr(from, '/', (size_t)(end - from));
    const char *colon = memrchr(slash ? slash : from, ':', (size_t)(end - (slash ? slash : from)));
    const char *name_end = colon ? colon : end;
    *repo = wh_pool_strndup(c->pool, from, (size_t)(name_end - from));
    if (!wh_ref_name_valid(*repo, strlen(*repo)))
        return WH_EINVALID;
    if (at) {
        struct wh_digest d;
        if (wh_digest_parse(&d, at + 1, strlen(at + 1)) < 0)
            return WH_EINVALID;
        *ref = wh_pool_strdup(c->pool, d.str);
        *is_digest = true;
        return 0;
    }
    if (!colon || !wh_ref_tag_valid(colon + 1, (size_t)(end - colon - 1)))
        return WH_EINVALID;
    *ref = wh_pool_strndup(c->pool, colon + 1, (size_t)(end - colon - 1));
    *is_digest = false;
    return 0;
}

int api_artifact_copy(struct call *c)
{
    const char *from = wh_req_query(c->r, "from");
    const char *src_repo, *ref;
    bool is_digest;
    if (!from)
        return api_error(c, 422, "UNPROCESSABLE_ENTITY", "from in query is required");
    if (parse_from(c, from, &src_repo, &ref, &is_digest) < 0)
        return api_error(c, 400, "BAD_REQUEST",
                         wh_pool_sprintf(c->pool, "invalid input: %.600s", from));
    const char *dst_repo = api_repo_name(c, c->param[1]);
    if (!wh_ref_name_valid(dst_repo, strlen(dst_repo)))
        return api_error(c, 400, "BAD_REQUEST",
                         wh_pool_sprintf(c->pool, "invalid repository name: %.300s", dst_repo));

    /* pull on the source; a project that does not exist grants nothing (Harbor: 403) */
    struct wh_project_info *sp = wh_pool_alloc(c->pool, sizeof(*sp));
    char pname[WH_NAME_MAX];
    size_t plen = wh_ref_project_len(src_repo);
    memcpy(pname, src_repo, plen);
    pname[plen] = '\0';
    int error = wh_db_project_info_name(c->api->db, pname, sp);
    if (error == WH_ENOTFOUND)
        return api_forbidden(c);
    if (error < 0)
        return api_fail(c, error);
    if (!wh_acl_can(c->api->acl, &c->who, &sp->p, WH_RBAC_RES_REPOSITORY, WH_RBAC_ACT_PULL))
        return api_forbidden(c);

    struct wh_repo_info *ri = wh_pool_alloc(c->pool, sizeof(*ri));
    struct wh_artifact_info *a = wh_pool_alloc(c->pool, sizeof(*a));
    error = wh_db_repo_info(c->api->db, src_repo, ri);
    if (error == WH_ENOTFOUND)
        return api_error(c, 404, "NOT_FOUND",
                         wh_pool_sprintf(c->pool, "repository %s not found", src_repo));
    if (error < 0)
        return api_fail(c, error);
    error = wh_db_artifact_get(c->api->db, ri->id, ref, is_digest, a);
    wh_artifact_info_dispose(a); /* its annotations are not needed */
    if (error == WH_ENOTFOUND)
        return api_error(c, 404, "NOT_FOUND",
                         wh_pool_sprintf(c->pool, "artifact %s%s%s not found", src_repo,
                                         is_digest ? "@" : ":", ref));
    if (error < 0)
        return api_fail(c, error);

    char msg[512] = "";
    error = wh_db_artifact_copy(c->api->db, a->id, c->proj->p.id, dst_repo, msg, sizeof(msg),
                                NULL);
    api_audit(c, c->proj->p.id, wh_pool_sprintf(c->pool, "%s@%s", dst_repo, a->digest),
              "artifact", "create", error == 0);
    if (error == WH_EDENIED)
        return api_error(c, 403, "DENIED", wh_pool_strdup(c->pool, msg));
    if (error < 0)
        return api_fail(c, error);
    const char *path = wh_req_path(c->r);
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    wh_resp_header(c->r, "Location", wh_pool_sprintf(c->pool, "%.*s/%s", (int)n, path, ref));
    return api_ok(c, 201);
}
