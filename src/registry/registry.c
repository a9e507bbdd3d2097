/*
 * registry.c: the /v2/ entry point — splitting the target into repository
 * name and reference, checking them, dispatching by resource and method —
 * and the registry's background sweeper, which removes abandoned upload
 * sessions and writes pull statistics in batches (so a pull never waits on
 * a database write).
 */
#include "registry/registry_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int need_writable(wh_registry *reg, wh_req *r)
{
    if (reg->cfg.read_only)
        return oci_error(r, E_DENIED,
                         "The system is in read only mode. Any modification is prohibited.");
    return 0;
}

int quota_check(wh_registry *reg, wh_req *r, const struct target *t, const char *digest,
                uint64_t size)
{
    char msg[512];
    int error = wh_db_project_blob_admit(reg->db, t->project_id, digest, size, msg, sizeof(msg));
    if (error == WH_EDENIED)
        return oci_error(r, E_DENIED, wh_pool_strdup(wh_req_pool(r), msg));
    if (error < 0)
        return oci_error(r, E_INTERNAL, NULL);
    return 0;
}

void push_noted(wh_registry *reg, const struct target *t, const char *digest)
{
    const char *user = t->who ? t->who->name : "";
    int64_t now = wh_now_ms();
    pthread_mutex_lock(&reg->lock);
    struct pushed_blob *slot = &reg->pushed[0];
    for (size_t i = 0; i < PUSHED_MAX; i++) {
        struct pushed_blob *p = &reg->pushed[i];
        if (p->at_ms && strcmp(p->digest, digest) == 0 && strcmp(p->repo, t->name) == 0 &&
            strcmp(p->user, user) == 0) {
            slot = p; /* the same again: refreshed */
            break;
        }
        if (p->at_ms < slot->at_ms)
            slot = p; /* a free slot (0) or the oldest */
    }
    snprintf(slot->repo, sizeof(slot->repo), "%s", t->name);
    snprintf(slot->user, sizeof(slot->user), "%s", user);
    snprintf(slot->digest, sizeof(slot->digest), "%s", digest);
    slot->at_ms = now;
    pthread_mutex_unlock(&reg->lock);
}

void push_refused(wh_registry *reg, const struct target *t, const char *const *blobs,
                  size_t nblobs)
{
    const char *user = t->who ? t->who->name : "";
    int64_t since = wh_now_ms() - (int64_t)reg->cfg.upload_ttl_s * 1000;
    char (*mine)[WH_DIGEST_STR_MAX] = wh_malloc(PUSHED_MAX * sizeof(*mine));
    size_t n = 0, unlinked = 0;
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < PUSHED_MAX; i++) {
        struct pushed_blob *p = &reg->pushed[i];
        if (p->at_ms && p->at_ms >= since && strcmp(p->repo, t->name) == 0 &&
            strcmp(p->user, user) == 0) {
            memcpy(mine[n++], p->digest, sizeof(mine[0]));
            p->at_ms = 0;
        }
    }
    pthread_mutex_unlock(&reg->lock);
    /* a blob some manifest of the repository uses stays (WH_ECONFLICT) */
    for (size_t i = 0; i < n + nblobs; i++)
        if (wh_db_blob_unlink(reg->db, t->name, i < n ? mine[i] : blobs[i - n]) == 0)
            unlinked++;
    if (unlinked)
        wh_log_info("quota: a push to %s was refused; %zu blob(s) it had sent no longer count",
                    t->name, unlinked);
    free(mine);
}

static size_t mcache_slot(const char *digest)
{
    /* the digest is uniformly random: its first hex characters make a good index */
    return strtoul((char[]){digest[7], digest[8], digest[9], '\0'}, NULL, 16) % MCACHE_SLOTS;
}

bool mcache_get(wh_registry *reg, wh_pool *pool, const char *digest, const char **out, size_t len)
{
    struct mcache_item *it = &reg->mcache[mcache_slot(digest)];
    bool hit = false;
    pthread_mutex_lock(&reg->mcache_lock);
    if (it->bytes && it->len == len && strcmp(it->digest, digest) == 0) {
        char *copy = wh_pool_alloc(pool, len ? len : 1);
        memcpy(copy, it->bytes, len);
        *out = copy;
        hit = true;
    }
    pthread_mutex_unlock(&reg->mcache_lock);
    return hit;
}

void mcache_put(wh_registry *reg, const char *digest, const char *bytes, size_t len)
{
    if (len > MCACHE_ITEM_MAX || strlen(digest) >= WH_DIGEST_STR_MAX)
        return;
    char *copy = wh_malloc(len ? len : 1), *old;
    memcpy(copy, bytes, len);
    struct mcache_item *it = &reg->mcache[mcache_slot(digest)];
    pthread_mutex_lock(&reg->mcache_lock);
    old = it->bytes;
    it->bytes = copy;
    it->len = len;
    memcpy(it->digest, digest, strlen(digest) + 1);
    pthread_mutex_unlock(&reg->mcache_lock);
    free(old);
}

void pull_note(wh_registry *reg, int64_t artifact_id)
{
    pthread_mutex_lock(&reg->lock);
    size_t i;
    for (i = 0; i < reg->npulls; i++)
        if (reg->pulls[i].artifact_id == artifact_id)
            break;
    if (i < reg->npulls) {
        reg->pulls[i].count++;
    } else if (reg->npulls < PULL_SLOTS) {
        reg->pulls[reg->npulls].artifact_id = artifact_id;
        reg->pulls[reg->npulls].count = 1;
        reg->npulls++;
    } /* else: a burst over PULL_SLOTS distinct artifacts in one second loses counts */
    pthread_mutex_unlock(&reg->lock);
}

static void pulls_flush(wh_registry *reg)
{
    int64_t ids[PULL_SLOTS], counts[PULL_SLOTS];
    size_t n;
    pthread_mutex_lock(&reg->lock);
    n = reg->npulls;
    for (size_t i = 0; i < n; i++) {
        ids[i] = reg->pulls[i].artifact_id;
        counts[i] = reg->pulls[i].count;
    }
    reg->npulls = 0;
    pthread_mutex_unlock(&reg->lock);
    if (n && wh_db_pulls_record(reg->db, ids, counts, n, wh_now_ms()) < 0)
        wh_log_warn("recording pull statistics failed: %s", wh_error_msg());
}

/* ---- upload expiry ---- */

struct sweep_ctx {
    wh_registry *reg;
    int64_t before_ms;
    unsigned removed;
};

/* Drops a session unless a request (of any node) holds it right now. */
static int expire_one(const char *id, void *payload)
{
    struct sweep_ctx *sc = payload;
    wh_registry *reg = sc->reg;
    struct wh_upload_session us;
    char holder[40], hex[33];
    int64_t now = wh_now_ms();
    wh_upload_lock *lock = NULL;
    int error = wh_store_upload_lock(reg->store, id, &lock);
    if (error == WH_ENOTSUP) {
        wh_random_hex(hex, 16);
        snprintf(holder, sizeof(holder), "sweep-%s", hex);
        error = wh_db_upload_claim(reg->db, id, holder, now, now + UPLOAD_LEASE_MS, &us);
    } else if (error == 0) {
        error = wh_db_upload_peek(reg->db, id, &us);
    } else if (error == WH_ENOTFOUND) {
        /* a row whose staged data is gone (a crash between the two): only the row goes */
        wh_db_upload_delete(reg->db, id);
        sc->removed++;
        return 0;
    }
    if (error < 0) {
        wh_store_upload_unlock(reg->store, lock);
        return 0; /* in use, or gone already */
    }
    wh_store_upload_remove(reg->store, id, us.state);
    wh_db_upload_delete(reg->db, id);
    wh_store_upload_unlock(reg->store, lock);
    free(us.state);
    sc->removed++;
    return 0;
}

/*
 * At start: staged files whose session row is gone (monolithic pushes cut
 * short). Another node sharing the store may be writing one right now (a
 * monolithic push has no row): only files idle for the idle timeout go.
 */
static int orphan_one(const char *id, int64_t mtime_ms, void *payload)
{
    struct sweep_ctx *sc = payload;
    char repo[WH_NAME_MAX];
    if (mtime_ms >= sc->before_ms)
        return 0;
    if (wh_db_upload_get(sc->reg->db, id, repo) == WH_ENOTFOUND) {
        wh_store_upload_remove(sc->reg->store, id, NULL);
        sc->removed++;
    }
    return 0;
}

unsigned upload_idle_s(const wh_registry *reg)
{
    /* a session never outlives uploads.ttl, idle or not */
    return reg->cfg.upload_idle_ttl_s < reg->cfg.upload_ttl_s ? reg->cfg.upload_idle_ttl_s
                                                              : reg->cfg.upload_ttl_s;
}

int64_t upload_sweep_ms(const wh_registry *reg)
{
    unsigned ttl = upload_idle_s(reg);
    return (int64_t)(ttl < 30 ? (ttl ? ttl : 1) : 30) * 1000 / 2;
}

int wh_registry_sweep_uploads(wh_registry *reg, bool at_start)
{
    int64_t now = wh_now_ms();
    struct sweep_ctx sc = {reg, now - (int64_t)upload_idle_s(reg) * 1000, 0};
    int error = wh_db_upload_expired(reg->db, sc.before_ms,
                                     now - (int64_t)reg->cfg.upload_ttl_s * 1000, expire_one, &sc);
    if (at_start)
        wh_store_upload_each(reg->store, orphan_one, &sc);
    if (sc.removed)
        wh_log_info("removed %u abandoned upload session(s)", sc.removed);
    return error;
}

static void *sweeper_main(void *arg)
{
    wh_registry *reg = arg;
    int64_t sweep_every_ms = upload_sweep_ms(reg);
    int64_t next_sweep = wh_now_ms() + sweep_every_ms;
    pthread_mutex_lock(&reg->stop_lock);
    while (!reg->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&reg->stop_cond, &reg->stop_lock, &ts);
        pthread_mutex_unlock(&reg->stop_lock);
        pulls_flush(reg);
        /* a disk filled by someone else: refuse uploads and free the reserve within a second */
        wh_store_check_space(reg->store);
        if (wh_now_ms() >= next_sweep) {
            wh_registry_sweep_uploads(reg, false);
            next_sweep = wh_now_ms() + sweep_every_ms;
        }
        pthread_mutex_lock(&reg->stop_lock);
    }
    pthread_mutex_unlock(&reg->stop_lock);
    pulls_flush(reg);
    return NULL;
}

int wh_registry_new(wh_registry **out, const struct wh_registry_config *cfg, wh_db *db,
                    wh_store *store, wh_acl *acl)
{
    wh_registry *reg = wh_calloc(1, sizeof(*reg));
    reg->cfg = *cfg;
    reg->db = db;
    reg->store = store;
    reg->acl = acl;
    pthread_mutex_init(&reg->lock, NULL);
    reg->pushed = wh_calloc(PUSHED_MAX, sizeof(*reg->pushed));
    pthread_mutex_init(&reg->mcache_lock, NULL);
    pthread_mutex_init(&reg->stop_lock, NULL);
    pthread_cond_init(&reg->stop_cond, NULL);
    wh_registry_sweep_uploads(reg, true);
    if (pthread_create(&reg->sweeper, NULL, sweeper_main, reg) != 0) {
        free(reg->pushed);
        free(reg);
        return wh_error_set(WH_ERROR, "cannot start the sweeper thread");
    }
    *out = reg;
    return 0;
}

void wh_registry_free(wh_registry *reg)
{
    if (!reg)
        return;
    pthread_mutex_lock(&reg->stop_lock);
    reg->stopping = true;
    pthread_cond_signal(&reg->stop_cond);
    pthread_mutex_unlock(&reg->stop_lock);
    pthread_join(reg->sweeper, NULL);
    for (size_t i = 0; i < MCACHE_SLOTS; i++)
        free(reg->mcache[i].bytes);
    pthread_mutex_destroy(&reg->lock);
    pthread_mutex_destroy(&reg->mcache_lock);
    pthread_mutex_destroy(&reg->stop_lock);
    pthread_cond_destroy(&reg->stop_cond);
    free(reg->pushed);
    free(reg);
}

/* ---- authorization (distribution token protocol, Harbor's rules) ---- */

/* Answers 401 with a challenge that sends the client to the token service. */
static int challenge(wh_req *r, const char *scope, const char *message)
{
    wh_pool *p = wh_req_pool(r);
    char *v = wh_pool_sprintf(p, "Bearer realm=\"%s://%s/service/token\",service=\"%s\"",
                              wh_req_scheme(r), wh_req_host(r), WH_AUTH_SERVICE);
    if (scope)
        v = wh_pool_sprintf(p, "%s,scope=\"%s\"", v, scope);
    wh_resp_header(r, "WWW-Authenticate", v);
    return oci_error(r, E_UNAUTHORIZED, message);
}

bool can_pull(wh_registry *reg, const struct wh_principal *who, const char *repo)
{
    struct wh_project p;
    char project[WH_NAME_MAX];
    snprintf(project, sizeof(project), "%.*s", (int)wh_ref_project_len(repo), repo);
    if (wh_db_project_get(reg->db, project, &p) < 0)
        return false;
    return (wh_acl_repo_actions(reg->acl, who, &p, repo) & WH_ACT_PULL) != 0;
}

void audit(wh_registry *reg, wh_req *r, const struct target *t, const char *resource,
           const char *operation, bool result)
{
    wh_acl_audit(reg->acl, t->who, wh_req_client_ip(r), t->project_id, resource, "artifact",
                 operation, result);
}

/*
 * Checks that the caller may do what the method needs on the repository.
 * Anonymous callers and token holders whose token lacks the action get 401
 * with a challenge naming the scope (so the client fetches a token that
 * covers it); a caller who logged in with Basic credentials and is not
 * allowed gets 403 DENIED.
 */
static int authorize(wh_registry *reg, wh_req *r, struct target *t, const struct wh_project *p)
{
    enum wh_method m = wh_req_method(r);
    unsigned need;
    const char *act;
    if (m == WH_HTTP_GET || m == WH_HTTP_HEAD) {
        need = WH_ACT_PULL, act = "pull";
    } else if (m == WH_HTTP_DELETE) {
        need = WH_ACT_DELETE, act = "delete";
    } else {
        need = WH_ACT_PUSH, act = "push";
    }
    unsigned have = wh_acl_repo_actions(reg->acl, t->who, p, t->name);
    if ((have & need) == need)
        return 0;
    wh_pool *pool = wh_req_pool(r);
    char *msg = wh_pool_sprintf(pool, "unauthorized to access repository: %s, action: %s",
                                t->name, act);
    if (t->who->kind == WH_PRINCIPAL_ANONYMOUS || t->who->has_token) {
        const char *scope_acts = need == WH_ACT_PUSH ? "pull,push" : act;
        return challenge(r, wh_pool_sprintf(pool, "repository:%s:%s", t->name, scope_acts), msg);
    }
    return oci_error(r, E_DENIED, msg);
}

/* ---- dispatch ---- */

static bool ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

enum resource { R_NONE, R_MANIFEST, R_BLOB, R_UPLOAD, R_TAGS, R_REFERRERS };

/*
 * Splits "<name>/<kind>/<ref>" from the right: the reference never holds a
 * slash, so the rightmost match is the resource even when a repository
 * component is itself called "manifests" or "blobs".
 */
static enum resource split(const char *path, const char **name, size_t *name_len,
                           const char **ref)
{
    size_t len = strlen(path);
    if (ends_with(path, len, "/tags/list")) {
        *name = path;
        *name_len = len - 10;
        *ref = "";
        return R_TAGS;
    }
    if (ends_with(path, len, "/blobs/uploads")) {
        *name = path;
        *name_len = len - 14;
        *ref = "";
        return R_UPLOAD;
    }
    const char *slash = strrchr(path, '/');
    if (!slash)
        return R_NONE;
    size_t head = (size_t)(slash - path);
    *ref = slash + 1;
    static const struct {
        const char *suffix;
        enum resource res;
    } kinds[] = {{"/manifests", R_MANIFEST},
                 {"/blobs/uploads", R_UPLOAD},
                 {"/blobs", R_BLOB},
                 {"/referrers", R_REFERRERS}};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (ends_with(path, head, kinds[i].suffix)) {
            *name = path;
            *name_len = head - strlen(kinds[i].suffix);
            return kinds[i].res;
        }
    }
    return R_NONE;
}

int wh_registry_handle(wh_req *r, void *payload)
{
    wh_registry *reg = payload;
    const char *path = wh_req_path(r) + 4; /* after "/v2/" */
    enum wh_method m = wh_req_method(r);
    const char *name = NULL, *ref = NULL;
    size_t name_len = 0;

    struct wh_principal *who = wh_pool_alloc(wh_req_pool(r), sizeof(*who));
    int idrc = wh_acl_identify_req(reg->acl, r, who);
    if (idrc == WH_EDEFERRED)
        return 0; /* called again once the password check is done */
    if (idrc == WH_EBUSY) {
        wh_resp_header(r, "Retry-After", wh_pool_sprintf(wh_req_pool(r), "%u", who->retry_after_s));
        return oci_error(r, E_TOO_MANY_REQUESTS, wh_error_msg());
    }
    /* credentials that do not match are refused, even where anonymous
     * callers are welcome: a typo must not pass as a silent anonymous pull */
    if (who->bad_credentials)
        return challenge(r, NULL, "invalid credentials");
    if (*path == '\0') {
        if (m != WH_HTTP_GET && m != WH_HTTP_HEAD)
            return oci_not_allowed(r, E_METHOD, "GET, HEAD", NULL);
        /* the login check of docker/podman: credentials must be valid */
        if (who->kind == WH_PRINCIPAL_ANONYMOUS && !who->has_token)
            return challenge(r, NULL, "authentication required");
        wh_resp_send(r, 200, "application/json", "{}", 2);
        return 0;
    }
    if (strcmp(path, "_catalog") == 0) {
        if (m != WH_HTTP_GET)
            return oci_not_allowed(r, E_METHOD, "GET", NULL);
        bool admin = who->sysadmin || (who->has_token && wh_auth_token_allows(&who->token,
                                                                              "registry", "catalog",
                                                                              WH_ACT_ALL));
        if (!admin) {
            if (who->kind == WH_PRINCIPAL_ANONYMOUS || who->has_token)
                return challenge(r, "registry:catalog:*", "unauthorized to list catalog");
            return oci_error(r, E_DENIED, "unauthorized to list catalog");
        }
        return handle_catalog(reg, r);
    }
    enum resource res = split(path, &name, &name_len, &ref);
    if (res == R_NONE)
        return oci_error(r, E_NOT_FOUND, NULL);
    if (!wh_ref_name_valid(name, name_len)) {
        char *msg = wh_pool_sprintf(wh_req_pool(r), "invalid repository name: %.*s",
                                    (int)(name_len > 300 ? 300 : name_len), name);
        return oci_error(r, E_NAME_INVALID, msg);
    }
    /* In the pool: body handlers use it after this function has returned. */
    struct target *t = wh_pool_alloc(wh_req_pool(r), sizeof(*t));
    t->name = wh_pool_strndup(wh_req_pool(r), name, name_len);
    t->ref = ref;
    t->project_id = 0;
    t->who = who;
    struct wh_project project;
    char *pname = wh_pool_strndup(wh_req_pool(r), t->name, wh_ref_project_len(t->name));
    int error = wh_db_project_get(reg->db, pname, &project);
    if (error == WH_ENOTFOUND) {
        if (who->kind == WH_PRINCIPAL_ANONYMOUS && !who->has_token)
            return challenge(r, wh_pool_sprintf(wh_req_pool(r), "repository:%s:pull", t->name),
                             "authentication required");
        return oci_error(r, E_NAME_UNKNOWN,
                         wh_pool_sprintf(wh_req_pool(r), "project %s not found", pname));
    }
    if (error < 0)
        return oci_error(r, E_INTERNAL, NULL);
    t->project_id = project.id;
    if (authorize(reg, r, t, &project) < 0)
        return -1;
    switch (res) {
    case R_MANIFEST:
        return handle_manifest(reg, r, t);
    case R_BLOB:
        return handle_blob(reg, r, t);
    case R_UPLOAD:
        return handle_upload(reg, r, t);
    case R_TAGS:
        return m == WH_HTTP_GET ? handle_tags(reg, r, t) : oci_not_allowed(r, E_METHOD, "GET", NULL);
    case R_REFERRERS:
        return m == WH_HTTP_GET ? handle_referrers(reg, r, t)
                                : oci_not_allowed(r, E_METHOD, "GET", NULL);
    default:
        return oci_error(r, E_NOT_FOUND, NULL);
    }
}
