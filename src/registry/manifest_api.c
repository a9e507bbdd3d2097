/*
 * manifest_api.c: manifests by tag or digest (spec.md, "Pulling manifests",
 * "Pushing manifests", "Deleting manifests", "Deleting tags"). HEAD is
 * answered from the database alone; GET sends the stored bytes with
 * sendfile. A PUT is buffered up to the manifest cap, hashed over the exact
 * bytes received, validated, stored as a blob and recorded with its tag in
 * one transaction that also checks every referenced blob and child manifest.
 */
#include "registry/registry_int.h"

#include "policy/policy.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct accept_ctx {
    const char *media_type;
    bool any;      /* some Accept header was present */
    bool matched;  /* it names the stored type or a wildcard */
};

static void accept_one(const char *value, void *payload)
{
    struct accept_ctx *a = payload;
    const char *p = value;
    a->any = true;
    size_t mtlen = strlen(a->media_type);
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',' && *end != ';')
            end++;
        size_t n = (size_t)(end - p);
        while (n && p[n - 1] == ' ')
            n--;
        /* parameters: only q matters, and q=0 means "not acceptable" (RFC 9110 §12.4.2) */
        bool refused = false;
        while (*end == ';') {
            end++;
            while (*end == ' ')
                end++;
            if ((end[0] == 'q' || end[0] == 'Q') && end[1] == '=') {
                const char *q = end + 2;
                refused = q[0] == '0' && (q[1] != '.' || strspn(q + 2, "0") == strcspn(q + 2, ",; "));
            }
            while (*end && *end != ',' && *end != ';')
                end++;
        }
        /* media types compare case-insensitively (RFC 9110 §8.3.1) */
        if (!refused && ((n == mtlen && strncasecmp(p, a->media_type, n) == 0) ||
                         (n == 3 && memcmp(p, "*/*", 3) == 0) ||
                         (n == 13 && strncasecmp(p, "application/*", 13) == 0)))
            a->matched = true;
        while (*end && *end != ',')
            end++;
        p = end;
    }
}

/*
 * Reads a small stored manifest into pool memory (`*bytes`) and caches it.
 * A large one is left where it is: `*rd` is its open reader (send it with
 * send_reader). Returns 0; WH_ENOTFOUND when the stored bytes are missing or
 * truncated; another code when the store failed (unreachable, say).
 */
static int load_manifest(wh_registry *reg, wh_req *r, const struct wh_manifest_ref *ref,
                         const char **bytes, wh_store_reader **large)
{
    struct wh_digest d;
    wh_store_reader *rd = NULL;
    int error = 0;
    if (wh_digest_parse(&d, ref->digest, strlen(ref->digest)) < 0) {
        wh_log_error("manifest %s: a recorded digest that does not parse", ref->digest);
        return WH_ENOTFOUND;
    }
    if ((error = open_stored(&rd, reg, &d, ref->size, 0, ref->size)) < 0) {
        if (error == WH_ENOTFOUND)
            wh_log_error("manifest %s is recorded but missing in storage: %s", ref->digest,
                         wh_error_msg());
        else
            wh_log_error("manifest %s: storage: %s", ref->digest, wh_error_msg());
        return error;
    }
    if (ref->size > MCACHE_ITEM_MAX) {
        *large = rd;
        return 0;
    }
    char *buf = wh_pool_alloc(wh_req_pool(r), ref->size ? ref->size : 1);
    size_t got = 0, n = 0;
    while (got < ref->size &&
           (error = wh_store_reader_read(rd, buf + got, ref->size - got, &n)) == 0 && n)
        got += n;
    if (got != ref->size) {
        wh_log_error("manifest %s: short read", ref->digest);
        error = WH_ERROR;
        goto out;
    }
    mcache_put(reg, ref->digest, buf, ref->size);
    *bytes = buf;
out:
    wh_store_reader_close(rd);
    return error;
}

/* True when the caller's token grants `act` on the repository by name ("*" does not count). */
static bool token_grants(const struct wh_principal *who, const char *repo, unsigned act)
{
    if (!who->has_token)
        return false;
    for (size_t i = 0; i < who->token.naccess; i++) {
        const struct wh_access *ac = &who->token.access[i];
        if (strcmp(ac->type, "repository") == 0 && strcmp(ac->name, repo) == 0 &&
            (ac->actions & act))
            return true;
    }
    return false;
}

/*
 * The vulnerability gate on manifest GET and HEAD: with the
 * project's prevent_vul on, answers 412 PROJECTPOLICYVIOLATION and returns
 * < 0 when policy/ refuses the artifact. Bypassed by a token granting
 * scanner-pull (the scanner's), and by a push token of a signing tool
 * (cosign, notation), which must read what it signs; administrators are
 * judged as anyone else.
 */
static int vuln_gate(wh_registry *reg, wh_req *r, struct target *t, int64_t artifact_id)
{
    struct policy_texts {
        char metadata[WH_PROJECT_META_MAX], allowlist[WH_PROJECT_META_MAX];
    } *p = wh_malloc(sizeof(*p));
    char *msg = NULL;
    int error = wh_db_project_policy(reg->db, t->project_id, p->metadata, sizeof(p->metadata),
                                     p->allowlist, sizeof(p->allowlist));
    if (error < 0) {
        error = oci_error(r, E_INTERNAL, NULL);
        goto out;
    }
    if (!wh_policy_prevent_vul(p->metadata))
        goto out;
    if (token_grants(t->who, t->name, WH_ACT_SCANNER_PULL))
        goto out;
    const char *ua = wh_req_header(r, "User-Agent");
    if (ua && (strstr(ua, "cosign") || strstr(ua, "notation")) &&
        token_grants(t->who, t->name, WH_ACT_PUSH))
        goto out;
    error = wh_policy_gate(&msg, reg->db, p->metadata, p->allowlist, artifact_id,
                           wh_now_ms() / 1000);
    if (error == WH_EDENIED)
        error = oci_error(r, E_POLICY, wh_pool_strdup(wh_req_pool(r), msg));
    else if (error < 0)
        error = oci_fail(reg, r, error, "check the vulnerability policy");
out:
    free(msg);
    free(p);
    return error;
}

static int get_manifest(wh_registry *reg, wh_req *r, struct target *t, bool is_digest)
{
    struct wh_manifest_ref ref;
    int error = wh_db_manifest_get(reg->db, t->name, t->ref, is_digest, &ref);
    if (error == WH_ENOTFOUND)
        return oci_error(r, E_MANIFEST_UNKNOWN, NULL);
    if (error < 0)
        return oci_error(r, E_INTERNAL, NULL);
    if (vuln_gate(reg, r, t, ref.artifact_id) < 0)
        return -1;

    struct accept_ctx a = {ref.media_type, false, false};
    wh_req_header_each(r, "Accept", accept_one, &a);
    if (a.any && !a.matched) {
        char *msg = wh_pool_sprintf(wh_req_pool(r),
                                    "manifest is %s, which the Accept header does not allow",
                                    ref.media_type);
        return oci_error(r, E_MANIFEST_UNKNOWN, msg);
    }
    char *ct = wh_pool_strdup(wh_req_pool(r), ref.media_type);
    if (wh_req_method(r) == WH_HTTP_HEAD) {
        wh_resp_header(r, "Docker-Content-Digest", ref.digest);
        wh_resp_header(r, "ETag", wh_pool_sprintf(wh_req_pool(r), "\"%s\"", ref.digest));
        wh_resp_send_head(r, 200, ct, ref.size);
        return 0;
    }
    /* small manifests come from memory; others, and the first pull, from the store */
    const char *bytes = NULL;
    wh_store_reader *large = NULL;
    if (!mcache_get(reg, wh_req_pool(r), ref.digest, &bytes, ref.size) &&
        (error = load_manifest(reg, r, &ref, &bytes, &large)) < 0)
        /* a store that failed does not make the manifest unknown: the client may retry */
        return oci_error(r, error == WH_ENOTFOUND ? E_MANIFEST_UNKNOWN : E_INTERNAL, NULL);
    wh_resp_header(r, "Docker-Content-Digest", ref.digest);
    wh_resp_header(r, "ETag", wh_pool_sprintf(wh_req_pool(r), "\"%s\"", ref.digest));
    pull_note(reg, ref.artifact_id);
    audit(reg, r, t, wh_pool_sprintf(wh_req_pool(r), "%s%s%s", t->name, is_digest ? "@" : ":",
                                     t->ref),
          "pull", true);
    if (bytes)
        wh_resp_send(r, 200, ct, bytes, ref.size);
    else
        send_reader(r, 200, ct, large, ref.size);
    return 0;
}

struct put_ctx {
    wh_registry *reg;
    struct target *t;
    bool is_digest;
    struct wh_buf body;
};

static void put_cleanup(void *arg)
{
    struct put_ctx *c = arg;
    wh_buf_dispose(&c->body);
}

static int put_data(wh_req *r, const char *p, size_t n, void *arg)
{
    struct put_ctx *c = arg;
    if (wh_buf_put(&c->body, p, n) < 0)
        return oci_error(r, E_MANIFEST_TOO_BIG,
                         wh_pool_sprintf(wh_req_pool(r), "manifest exceeds the limit of %zu bytes",
                                         c->reg->cfg.max_manifest_bytes));
    return 0;
}

static int put_end(wh_req *r, void *arg)
{
    struct put_ctx *c = arg;
    wh_registry *reg = c->reg;
    struct target *t = c->t;
    struct wh_digest d, want;
    struct wh_manifest *m = NULL;
    char *extra = NULL, *refs = NULL; /* the summary for lists */
    int error;

    if (c->is_digest) {
        wh_digest_parse(&want, t->ref, strlen(t->ref)); /* validated before */
        wh_digest_of(&d, want.alg, c->body.data, c->body.len);
        if (strcmp(d.str, want.str) != 0)
            return oci_error(r, E_DIGEST_INVALID,
                             wh_pool_sprintf(wh_req_pool(r), "manifest digest is %s, not %s",
                                             d.str, want.str));
    } else {
        wh_digest_of(&d, WH_DIGEST_SHA256, c->body.data, c->body.len);
    }
    if (wh_manifest_parse(&m, c->body.data ? c->body.data : "", c->body.len,
                          wh_req_header(r, "Content-Type")) < 0)
        return oci_error(r, E_MANIFEST_INVALID, wh_pool_strdup(wh_req_pool(r), wh_error_msg()));

    if (quota_check(reg, r, t, d.str, c->body.len) < 0) {
        push_refused(reg, t, m->blobs, m->nblobs);
        error = -1;
        goto out;
    }
    struct wh_artifact_in a = {
        .repo = t->name,
        .project_id = t->project_id,
        .digest = d.str,
        .media_type = m->media_type,
        .artifact_type = m->artifact_type,
        .subject = m->subject,
        .annotations = m->annotations,
        .size = c->body.len,
        .blobs = m->blobs,
        .nblobs = m->nblobs,
        .children = m->children,
        .nchildren = m->nchildren,
        .tag = c->is_digest ? NULL : t->ref,
    };
    /* what lists show of it, recorded with it, so that no list reads blobs (a config
     * that cannot be read now only defers it to the first listing) */
    if (wh_registry_summary_make(&extra, &refs, reg->store, m) < 0)
        wh_log_warn("manifest %s: no summary for listings yet: %s", d.str, wh_error_msg());
    a.summary_extra = extra;
    a.summary_refs = refs;
    /*
     * The bytes, then the rows. A collection that deletes these bytes in
     * between (a manifest pushed again just as its old copy is collected)
     * makes the recording fail with WH_EBUSY: store them again.
     */
    for (int attempt = 0;; attempt++) {
        if ((error = wh_store_put_bytes(reg->store, &d, c->body.data, c->body.len)) < 0) {
            error = oci_fail(reg, r, error, "store manifest");
            goto out;
        }
        error = wh_db_manifest_put(reg->db, &a);
        if (error != WH_EBUSY || attempt == 2)
            break;
    }
    if (error < 0)
        gc_enqueue(reg, d.str, error);
    if (error == WH_ENOTFOUND) {
        json_t *detail = json_pack("{s:s}", "digest", wh_error_msg());
        char *dj = json_dumps(detail, JSON_COMPACT);
        char *msg = wh_pool_sprintf(wh_req_pool(r), "manifest references an unknown %s",
                                    wh_error_msg());
        error = oci_error_detail(r, E_MANIFEST_BLOB_UNKNOWN, msg, dj);
        free(dj);
        json_decref(detail);
        goto out;
    }
    if (error == WH_EDENIED) { /* over the quota, found in the recording transaction */
        char *msg = wh_pool_strdup(wh_req_pool(r), wh_error_msg());
        push_refused(reg, t, m->blobs, m->nblobs);
        error = oci_error(r, E_DENIED, msg);
        goto out;
    }
    if (error < 0) {
        error = oci_fail(reg, r, error, "record manifest");
        goto out;
    }
    mcache_put(reg, d.str, c->body.data ? c->body.data : "", c->body.len);
    audit(reg, r, t, wh_pool_sprintf(wh_req_pool(r), "%s@%s", t->name, d.str), "create", true);
    wh_resp_header(r, "Location", wh_pool_sprintf(wh_req_pool(r), "/v2/%s/manifests/%s", t->name,
                                                  d.str));
    wh_resp_header(r, "Docker-Content-Digest", d.str);
    if (m->subject)
        wh_resp_header(r, "OCI-Subject", m->subject);
    wh_resp_send_empty(r, 201);
out:
    free(extra);
    free(refs);
    wh_manifest_free(m);
    return error;
}

static bool ref_is_digest(const char *ref)
{
    return strchr(ref, ':') != NULL;
}

int handle_manifest(wh_registry *reg, wh_req *r, struct target *t)
{
    enum wh_method m = wh_req_method(r);
    bool is_digest = ref_is_digest(t->ref);
    bool bad_tag = false;
    struct wh_digest d;

    if (is_digest) {
        if (wh_digest_parse(&d, t->ref, strlen(t->ref)) < 0) {
            if (strncmp(t->ref, "sha256:", 7) != 0 && strncmp(t->ref, "sha512:", 7) != 0)
                return oci_error(r, E_UNSUPPORTED, "unsupported digest algorithm");
            return oci_error(r, E_DIGEST_INVALID, "invalid digest");
        }
        t->ref = wh_pool_strdup(wh_req_pool(r), d.str);
    } else {
        /*
         * A reference that is neither a digest nor a tag names no manifest:
         * reading or deleting it answers 404 MANIFEST_UNKNOWN, as for any
         * unknown tag (the distribution registry does the same, and the
         * conformance suite reads ".INVALID_MANIFEST_NAME" expecting 404).
         * Only a push is told that the tag is invalid.
         */
        bad_tag = !wh_ref_tag_valid(t->ref, strlen(t->ref));
    }

    switch (m) {
    case WH_HTTP_GET:
    case WH_HTTP_HEAD:
        if (bad_tag)
            return oci_error(r, E_MANIFEST_UNKNOWN, NULL);
        return get_manifest(reg, r, t, is_digest);
    case WH_HTTP_PUT: {
        if (need_writable(reg, r) < 0)
            return -1;
        if (bad_tag)
            return oci_error(r, E_MANIFEST_INVALID, "invalid tag");
        /* a full disk refuses every push, tag moves too, before the body is sent */
        int error = wh_store_check_space(reg->store);
        if (error < 0)
            return oci_fail(reg, r, error, "push manifest");
        const char *cl = wh_req_header(r, "Content-Length");
        uint64_t len;
        if (cl && wh_parse_u64(&len, cl, strlen(cl)) == 0 && len > reg->cfg.max_manifest_bytes)
            return oci_error(r, E_MANIFEST_TOO_BIG,
                             wh_pool_sprintf(wh_req_pool(r),
                                             "manifest exceeds the limit of %zu bytes",
                                             reg->cfg.max_manifest_bytes));
        struct put_ctx *c = wh_pool_alloc(wh_req_pool(r), sizeof(*c));
        c->reg = reg;
        c->t = t;
        c->is_digest = is_digest;
        wh_buf_init(&c->body, reg->cfg.max_manifest_bytes);
        wh_pool_cleanup(wh_req_pool(r), put_cleanup, c);
        wh_req_read_body(r, put_data, put_end, c);
        return 0;
    }
    case WH_HTTP_DELETE: {
        if (need_writable(reg, r) < 0)
            return -1;
        if (!reg->cfg.delete_enabled)
            return oci_not_allowed(r, E_METHOD, "GET, HEAD, PUT",
                                   "deletes are disabled on this registry");
        if (bad_tag)
            return oci_error(r, E_MANIFEST_UNKNOWN, NULL);
        int error, tries = 0;
        do /* once more on a full disk when that freed the store's reserve */
            error = is_digest ? wh_db_manifest_delete(reg->db, t->name, t->ref)
                              : wh_db_tag_delete(reg->db, t->name, t->ref);
        while (tries++ == 0 && retry_on_full(reg, error));
        if (error == WH_ENOTFOUND)
            return oci_error(r, E_MANIFEST_UNKNOWN, NULL);
        if (error == WH_ECONFLICT) /* an index lists it: the REST API's 412, in OCI's terms */
            return oci_not_allowed(r, E_IN_USE, "GET, HEAD, PUT, DELETE",
                                   wh_pool_strdup(wh_req_pool(r), wh_error_msg()));
        if (error < 0)
            return oci_fail(reg, r, error, "delete manifest");
        audit(reg, r, t, wh_pool_sprintf(wh_req_pool(r), "%s%s%s", t->name,
                                         is_digest ? "@" : ":", t->ref),
              "delete", true);
        wh_resp_send_empty(r, 202);
        return 0;
    }
    default:
        return oci_not_allowed(r, E_METHOD, reg->cfg.delete_enabled ? "GET, HEAD, PUT, DELETE"
                                                                    : "GET, HEAD, PUT", NULL);
    }
}
