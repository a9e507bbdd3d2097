/*
 * acl.c: identity and permissions for every request.
 *
 * Verifying a password with argon2id costs tens of milliseconds on purpose,
 * which a client sending Basic credentials on every request would pay each
 * time; so a successful verification is remembered for a minute, keyed by a
 * hash of (random per-process key, name, password, stored hash) — a changed
 * password or secret changes the stored hash and misses the cache.
 * Audit entries of pulls and failed logins are queued and written once a
 * second, so recording them never waits for the database, and folded: one
 * row per (minute, who, what, from where, outcome) with a count, so a load
 * of a million pulls costs rows per minute, not per request. Failed logins
 * from one address beyond FAILED_LOGIN_ROWS a minute fold into one row
 * whatever names they try. Other entries are written at once.
 */
#include "acl/acl.h"

#include <inttypes.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/metrics.h"

#define VERIFIED_SLOTS 256
#define VERIFIED_TTL_MS 60000
#define AUDIT_QUEUE 8192 /* pull entries waiting for the flusher */
#define TOKEN_SLOTS 64 /* verified tokens remembered (clients reuse one token for many requests) */
#define FAILED_LOGIN_ROWS 10 /* distinct failed-login rows per address and minute */
#define ADDR_SLOTS 256       /* addresses tracked for the failed-login row budget */
#define PURGE_INTERVAL_MS (3600 * 1000) /* how often expired audit rows are deleted */
#define TARPIT_MS 1000 /* a throttled login waits this long (at most) for its 429 */

/*
 * The two caches of verified secrets and tokens are set-associative: a key
 * (a hex digest) picks a set of CACHE_WAYS slots by its first digits and
 * takes a slot of that set that is free or expired, else its least recently
 * used one (an entry past its time is worth nothing, however recently it was
 * used). Two keys that share a set
 * both stay (a direct-mapped table made two clients whose keys collided pay
 * a password or signature check on every request, turn about).
 */
#define CACHE_WAYS 4

struct cache_tag {
    char key[WH_DIGEST_STR_MAX]; /* "" when free */
    uint64_t used;               /* the cache clock at the last use */
    int64_t until_ms;            /* wall clock: worthless from then on */
};

struct verified {
    struct cache_tag tag; /* digest of (salt, name, secret, stored hash) */
};

struct token_slot {
    struct cache_tag tag; /* sha256 of the token text */
    struct wh_token_claims claims;
};

struct audit_item {
    int64_t time_ms, project_id;
    int64_t count;
    bool result;
    char *username, *resource, *resource_type, *operation, *client_ip;
};

/* Failed-login rows written this minute from one address. */
struct addr_budget {
    char ip[64];
    int64_t minute;
    unsigned rows;
};

#define REVOKED_SLOTS 512 /* revoked tokens not yet expired, at most */
struct wh_acl {
    wh_db *db;
    wh_auth_keys *keys;
    wh_auth_throttle *throttle;
    int64_t token_ttl_s;
    int64_t refresh_ttl_s;
    char salt[33];
    pthread_mutex_t lock; /* guards verified[], tokens[] and the audit queue */
    uint64_t cache_clock; /* ticks at every use of a cache slot */
    struct verified verified[VERIFIED_SLOTS];
    struct token_slot tokens[TOKEN_SLOTS];
    struct audit_item queue[AUDIT_QUEUE];
    size_t nqueue;
    struct addr_budget budgets[ADDR_SLOTS]; /* guarded by lock */
    /* the flusher's own buffers (only the flusher thread touches them) */
    struct audit_item *batch;
    struct wh_audit *rows;
    int64_t retention_ms; /* 0: keep audit rows forever */
    int64_t next_purge_ms;
    pthread_t flusher;
    pthread_cond_t cond;          /* wakes the flusher */
    pthread_cond_t room;          /* the queue has room again */
    bool stopping;
    /* tokens revoked before their expiry (wh_acl_token_revoke), guarded by lock */
    struct revoked {
        char jti[40];
        int64_t exp_s; /* 0: free slot */
    } revoked[REVOKED_SLOTS];
    unsigned nrevoked;
    int64_t next_session_purge_ms; /* guarded by lock */
};

/* ---- verified-credentials cache ---- */

static void cred_key(struct wh_digest *out, const wh_acl *a, const char *name,
                     const char *secret, const char *stored)
{
    wh_hasher *h = wh_hasher_new(WH_DIGEST_SHA256);
    wh_hasher_update(h, a->salt, strlen(a->salt));
    wh_hasher_update(h, name, strlen(name) + 1);
    wh_hasher_update(h, secret, strlen(secret) + 1);
    wh_hasher_update(h, stored, strlen(stored));
    wh_hasher_final(out, h);
    wh_hasher_free(h);
}

/* Slot `i` of a cache whose slots are `stride` bytes apart, each starting with its tag. */
static struct cache_tag *cache_tag_at(void *slots, size_t stride, size_t i)
{
    return (struct cache_tag *)((char *)slots + i * stride);
}

/* One of `n` buckets for hex digest `key`, from its first three digits. */
static size_t digest_bucket(const struct wh_digest *key, size_t n)
{
    return strtoul((char[]){key->str[7], key->str[8], key->str[9], '\0'}, NULL, 16) % n;
}

/* The first slot of the set of hex digest `key` in a cache of `nslots`. */
static size_t cache_set(const struct wh_digest *key, size_t nslots)
{
    return digest_bucket(key, nslots / CACHE_WAYS) * CACHE_WAYS;
}

/*
 * The slot holding `key` (marked as just used), or -1. Keys are compared in
 * constant time: a cached secret's key must not leak through timing. Their
 * lengths are not secret (all are digests of one algorithm), so no hashing
 * first: this runs on every request that carries credentials. The caller
 * holds a->lock.
 */
static ptrdiff_t cache_find(wh_acl *a, void *slots, size_t stride, size_t nslots,
                            const struct wh_digest *key)
{
    size_t first = cache_set(key, nslots), klen = strlen(key->str);
    for (size_t i = first; i < first + CACHE_WAYS; i++) {
        struct cache_tag *t = cache_tag_at(slots, stride, i);
        if (t->key[0] && strlen(t->key) == klen && wh_auth_consttime_eq_n(t->key, key->str, klen)) {
            t->used = ++a->cache_clock;
            return (ptrdiff_t)i;
        }
    }
    return -1;
}

/*
 * The slot to store `key` in, good until `until_ms`: the one holding it
 * already, else a free or expired slot of its set, else its least recently
 * used one; its tag is set. The caller holds a->lock and fills the rest of
 * the slot.
 */
static size_t cache_put(wh_acl *a, void *slots, size_t stride, size_t nslots,
                        const struct wh_digest *key, int64_t until_ms)
{
    ptrdiff_t hit = cache_find(a, slots, stride, nslots, key);
    size_t victim = (size_t)hit;
    if (hit < 0) {
        int64_t now = wh_now_ms();
        size_t first = cache_set(key, nslots);
        victim = first;
        for (size_t i = first; i < first + CACHE_WAYS; i++) {
            const struct cache_tag *t = cache_tag_at(slots, stride, i);
            if (!t->key[0] || t->until_ms <= now) {
                victim = i;
                break;
            }
            if (t->used < cache_tag_at(slots, stride, victim)->used)
                victim = i;
        }
    }
    struct cache_tag *t = cache_tag_at(slots, stride, victim);
    snprintf(t->key, sizeof(t->key), "%s", key->str);
    t->used = ++a->cache_clock;
    t->until_ms = until_ms;
    return victim;
}

/* wh_auth_password_verify, counted in /metrics: the server's costliest check. */
static int hash_check(const char *stored, const char *secret)
{
    wh_metric_add(WH_METRIC_PASSWORD_CHECKS, 1);
    return wh_auth_password_verify(stored, secret);
}

/* Whether (name, secret) matched `stored` within the last VERIFIED_TTL_MS. */
static bool secret_cached(wh_acl *a, const char *name, const char *secret, const char *stored)
{
    struct wh_digest k;
    int64_t now = wh_now_ms();
    cred_key(&k, a, name, secret, stored);
    pthread_mutex_lock(&a->lock);
    ptrdiff_t i = cache_find(a, a->verified, sizeof(a->verified[0]), VERIFIED_SLOTS, &k);
    bool hit = i >= 0 && a->verified[i].tag.until_ms > now;
    pthread_mutex_unlock(&a->lock);
    return hit;
}

/* Verifies `secret` against the stored argon2id string, through the cache. */
static bool secret_ok(wh_acl *a, const char *name, const char *secret, const char *stored)
{
    struct wh_digest k;
    if (secret_cached(a, name, secret, stored))
        return true;
    if (hash_check(stored, secret) != 0)
        return false;
    cred_key(&k, a, name, secret, stored);
    pthread_mutex_lock(&a->lock);
    cache_put(a, a->verified, sizeof(a->verified[0]), VERIFIED_SLOTS, &k,
              wh_now_ms() + VERIFIED_TTL_MS);
    pthread_mutex_unlock(&a->lock);
    return true;
}

/* ---- audit queue ---- */

static void audit_item_free(struct audit_item *it)
{
    free(it->username); /* the block holding all five strings */
}

/* Orders queued items by the key they fold on (minute, then the fields). */
static int item_cmp(const void *pa, const void *pb)
{
    const struct audit_item *x = pa, *y = pb;
    int64_t mx = x->time_ms / 60000, my = y->time_ms / 60000;
    if (mx != my)
        return mx < my ? -1 : 1;
    if (x->project_id != y->project_id)
        return x->project_id < y->project_id ? -1 : 1;
    if (x->result != y->result)
        return x->result ? 1 : -1;
    int c;
    if ((c = strcmp(x->operation, y->operation)) || (c = strcmp(x->username, y->username)) ||
        (c = strcmp(x->resource, y->resource)) || (c = strcmp(x->client_ip, y->client_ip)) ||
        (c = strcmp(x->resource_type, y->resource_type)))
        return c;
    return x->time_ms < y->time_ms ? -1 : x->time_ms > y->time_ms;
}

static void audit_flush(wh_acl *a)
{
    struct audit_item *batch = a->batch;
    struct wh_audit *rows = a->rows;
    size_t n, nrows = 0;
    pthread_mutex_lock(&a->lock);
    n = a->nqueue;
    memcpy(batch, a->queue, n * sizeof(batch[0]));
    a->nqueue = 0;
    pthread_cond_broadcast(&a->room);
    pthread_mutex_unlock(&a->lock);
    /* fold identical entries of the same minute: sorted, equal keys are adjacent */
    qsort(batch, n, sizeof(batch[0]), item_cmp);
    for (size_t i = 0; i < n; i++) {
        if (nrows && batch[i].time_ms / 60000 == rows[nrows - 1].op_time_ms / 60000 &&
            batch[i].project_id == rows[nrows - 1].project_id &&
            batch[i].result == rows[nrows - 1].result &&
            strcmp(batch[i].operation, rows[nrows - 1].operation) == 0 &&
            strcmp(batch[i].username, rows[nrows - 1].username) == 0 &&
            strcmp(batch[i].resource, rows[nrows - 1].resource) == 0 &&
            strcmp(batch[i].client_ip, rows[nrows - 1].client_ip) == 0 &&
            strcmp(batch[i].resource_type, rows[nrows - 1].resource_type) == 0) {
            rows[nrows - 1].count += batch[i].count;
            continue;
        }
        rows[nrows++] = (struct wh_audit){
            .op_time_ms = batch[i].time_ms,
            .username = batch[i].username,
            .resource = batch[i].resource,
            .resource_type = batch[i].resource_type,
            .operation = batch[i].operation,
            .result = batch[i].result,
            .project_id = batch[i].project_id,
            .client_ip = batch[i].client_ip,
            .count = batch[i].count,
            .folded = true,
        };
    }
    /* one transaction for the batch: thousands of rows cost one commit */
    if (nrows && wh_db_audit_add_many(a->db, rows, nrows) < 0)
        wh_log_error("audit log write failed (%zu entries lost): %s", n, wh_error_msg());
    for (size_t i = 0; i < n; i++)
        audit_item_free(&batch[i]);
}

/* Deletes audit rows older than the retention period, at most once an interval. */
static void audit_purge(wh_acl *a)
{
    int64_t now = wh_now_ms(), deleted = 0;
    if (a->retention_ms <= 0 || now < a->next_purge_ms)
        return;
    a->next_purge_ms = now + PURGE_INTERVAL_MS;
    if (wh_db_audit_purge(a->db, now - a->retention_ms, &deleted) < 0)
        wh_log_error("audit log purge failed: %s", wh_error_msg());
    else if (deleted)
        wh_log_info("audit log: %lld entries older than the retention period deleted",
                    (long long)deleted);
}

static void *flusher_main(void *arg)
{
    wh_acl *a = arg;
    pthread_mutex_lock(&a->lock);
    while (!a->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&a->cond, &a->lock, &ts);
        pthread_mutex_unlock(&a->lock);
        audit_flush(a);
        audit_purge(a);
        pthread_mutex_lock(&a->lock);
    }
    pthread_mutex_unlock(&a->lock);
    audit_flush(a);
    return NULL;
}

/*
 * Whether a failed login from `ip` at `now_ms` is past the address's row
 * budget for the minute (then its name and resource fold into "*").
 */
static bool failed_login_over_budget(wh_acl *a, const char *ip, int64_t now_ms)
{
    struct wh_digest k;
    wh_digest_of(&k, WH_DIGEST_SHA256, ip, strlen(ip));
    int64_t minute = now_ms / 60000;
    pthread_mutex_lock(&a->lock);
    struct addr_budget *b = &a->budgets[digest_bucket(&k, ADDR_SLOTS)];
    if (b->minute != minute || strcmp(b->ip, ip) != 0) {
        snprintf(b->ip, sizeof(b->ip), "%s", ip);
        b->minute = minute;
        b->rows = 0;
    }
    bool over = ++b->rows > FAILED_LOGIN_ROWS;
    pthread_mutex_unlock(&a->lock);
    return over;
}

void wh_acl_audit(wh_acl *a, const struct wh_principal *p, const char *client_ip,
                  int64_t project_id, const char *resource, const char *resource_type,
                  const char *operation, bool result)
{
    int64_t now = wh_now_ms();
    if (!client_ip)
        client_ip = "";
    if (!operation)
        operation = "";
    bool failed_login = !result && strcmp(operation, "login") == 0;
    bool fold_names = failed_login && failed_login_over_budget(a, client_ip, now);
    /* the five strings of an entry in one allocation, freed through `username` */
    const char *parts[5] = {fold_names ? "*" : p ? p->name : "anonymous",
                            fold_names ? "*" : resource ? resource : "",
                            resource_type ? resource_type : "", operation, client_ip};
    size_t lens[5], total = 0;
    for (int i = 0; i < 5; i++)
        total += (lens[i] = strlen(parts[i]) + 1);
    char *block = wh_malloc(total), *w = block;
    char *fields[5] = {NULL}; /* all set below; gcc 12's analyzer does not see the loop through */
    for (int i = 0; i < 5; i++) {
        memcpy(w, parts[i], lens[i]);
        fields[i] = w;
        w += lens[i];
    }
    struct audit_item it = {
        .time_ms = now,
        .project_id = project_id,
        .count = 1,
        .result = result,
        .username = fields[0],
        .resource = fields[1],
        .resource_type = fields[2],
        .operation = fields[3],
        .client_ip = fields[4],
    };
    /*
     * Pulls and failed logins are queued (the hot path and what an attack
     * multiplies); everything else is written before the answer, so what a
     * client did is in the log by the time it hears back.
     */
    bool queued = false;
    if (strcmp(it.operation, "pull") == 0 || failed_login) {
        pthread_mutex_lock(&a->lock);
        /*
         * A full queue waits for the flusher (which writes a batch in one
         * transaction) rather than writing here: row-by-row writes from many
         * threads would queue on the database's write lock and its busy
         * back-off, which is far slower.
         */
        while (a->nqueue >= AUDIT_QUEUE && !a->stopping) {
            pthread_cond_signal(&a->cond);
            pthread_cond_wait(&a->room, &a->lock);
        }
        queued = a->nqueue < AUDIT_QUEUE;
        if (queued)
            a->queue[a->nqueue++] = it;
        if (a->nqueue == AUDIT_QUEUE / 8)
            pthread_cond_signal(&a->cond); /* a burst: flush now rather than at the second */
        pthread_mutex_unlock(&a->lock);
    }
    if (!queued) {
        struct wh_audit e = {.op_time_ms = it.time_ms, .username = it.username,
                             .resource = it.resource, .resource_type = it.resource_type,
                             .operation = it.operation, .result = it.result,
                             .project_id = it.project_id, .client_ip = it.client_ip,
                             .count = 1};
        /* the action has happened; the entry must at least reach the log */
        if (wh_db_audit_add(a->db, &e) < 0)
            wh_log_error("audit entry not written (%s %s %s by %s from %s): %s", e.operation,
                         e.resource_type, e.resource, e.username, e.client_ip, wh_error_msg());
        audit_item_free(&it);
    }
}

/* ---- identification ---- */

static void anonymous(struct wh_principal *p)
{
    memset(p, 0, offsetof(struct wh_principal, token));
    p->kind = WH_PRINCIPAL_ANONYMOUS;
    snprintf(p->name, sizeof(p->name), "anonymous");
}

static bool robot_usable(const struct wh_robot *r, int64_t now_s)
{
    return !r->disabled && (r->expires_at < 0 || r->expires_at > now_s);
}

int wh_acl_login(wh_acl *a, const char *user, const char *password, const char *addr,
                 struct wh_principal *out)
{
    const char *client_ip = addr;
    int64_t now = wh_now_ms();
    bool ok = false;

    anonymous(out);
    /*
     * Throttle keys: the (user, address) pair, and the address whatever the
     * name (one source guessing many names). The name alone is not a key:
     * anyone could then keep an account locked from anywhere; a user whose
     * account is under attack still logs in from their own address.
     * Addresses get a larger allowance (users behind one NAT or proxy).
     */
    char pair[WH_NAME_MAX + 64];
    snprintf(pair, sizeof(pair), "%s@%s", user, client_ip ? client_ip : "");
    struct wh_auth_throttle_seen seen;
    int64_t delay = wh_auth_throttle_delay_ms(a->throttle, pair, client_ip, now, &seen);
    if (delay > 0) {
        wh_auth_throttle_hold(a->throttle, pair, client_ip, now, &seen);
        out->retry_after_s = (unsigned)((delay + 999) / 1000);
        return wh_error_set(WH_EBUSY, "too many failed logins, retry later");
    }
    if (strncmp(user, "robot$", 6) == 0) {
        struct wh_robot *r = wh_malloc(sizeof(*r));
        bool known = wh_db_robot_get(a->db, user, r) == 0;
        if (!known)
            hash_check(NULL, password); /* the same cost as a known name */
        /* the secret is checked even for a disabled robot: the answer takes as long */
        if (known && secret_ok(a, r->name, password, r->secret) && robot_usable(r, now / 1000)) {
            ok = true;
            out->kind = WH_PRINCIPAL_ROBOT;
            out->id = r->id;
            snprintf(out->name, sizeof(out->name), "%s", r->name);
        }
        free(r);
    } else {
        struct wh_user u;
        bool known = wh_db_user_get(a->db, user, &u) == 0;
        if (!known)
            hash_check(NULL, password); /* the same cost as a known name */
        if (known && secret_ok(a, u.username, password, u.password)) {
            ok = true;
            out->kind = WH_PRINCIPAL_USER;
            out->id = u.id;
            out->sysadmin = u.sysadmin;
            snprintf(out->name, sizeof(out->name), "%s", u.username);
        }
    }
    if (!ok) {
        wh_metric_add(WH_METRIC_LOGIN_FAILED, 1);
        wh_auth_throttle_fail(a->throttle, pair, client_ip, now, &seen);
        struct wh_principal who;
        anonymous(&who);
        snprintf(who.name, sizeof(who.name), "%s", user);
        wh_acl_audit(a, &who, addr, 0, user, "user", "login", false);
        out->bad_credentials = true;
        return wh_error_set(WH_EDENIED, "invalid credentials");
    }
    wh_auth_throttle_ok(a->throttle, pair, client_ip, now, &seen);
    return 0;
}

/* Whether token `jti` was revoked (lock held). */
static bool revoked_locked(const wh_acl *a, const char *jti)
{
    if (a->nrevoked == 0 || !*jti)
        return false;
    for (size_t i = 0; i < REVOKED_SLOTS; i++)
        if (a->revoked[i].exp_s && strcmp(a->revoked[i].jti, jti) == 0)
            return true;
    return false;
}

int wh_acl_token_revoke(wh_acl *a, const char *jti, int64_t exp_s)
{
    int64_t now_s = wh_now_ms() / 1000;
    struct revoked *free_slot = NULL;
    if (!*jti || strlen(jti) >= sizeof(a->revoked[0].jti))
        return wh_error_set(WH_EINVALID, "not a token id");
    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; i < REVOKED_SLOTS; i++) {
        struct revoked *r = &a->revoked[i];
        if (r->exp_s && r->exp_s + WH_TOKEN_LEEWAY_S < now_s) { /* expired: no longer needed */
            r->exp_s = 0;
            __atomic_store_n(&a->nrevoked, a->nrevoked - 1, __ATOMIC_RELAXED);
        }
        if (!r->exp_s && !free_slot)
            free_slot = r;
    }
    int error = 0;
    if (!free_slot) /* full of live entries: the caller's token stays valid until it expires */
        error = wh_error_set(WH_EBUSY, "too many revoked tokens");
    else {
        snprintf(free_slot->jti, sizeof(free_slot->jti), "%s", jti);
        free_slot->exp_s = exp_s;
        __atomic_store_n(&a->nrevoked, a->nrevoked + 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&a->lock);
    return error;
}

static int token_verify_sig(wh_acl *a, const char *token, int64_t now_s,
                            struct wh_token_claims *out);

/*
 * Verifies a token, remembering verified ones: an ECDSA verification costs
 * more than the rest of a HEAD request, and clients send one token many
 * times. A remembered token is still checked for expiry on every use, and
 * against the revoked ones when there are any.
 */
static int token_verify(wh_acl *a, const char *token, int64_t now_s, struct wh_token_claims *out)
{
    int rc = token_verify_sig(a, token, now_s, out);
    if (rc < 0 || __atomic_load_n(&a->nrevoked, __ATOMIC_RELAXED) == 0)
        return rc;
    pthread_mutex_lock(&a->lock);
    bool gone = revoked_locked(a, out->jti);
    pthread_mutex_unlock(&a->lock);
    return gone ? WH_EDENIED : 0;
}

/* Checks a token's signature and times (remembered per token). */
static int token_verify_sig(wh_acl *a, const char *token, int64_t now_s,
                            struct wh_token_claims *out)
{
    size_t len = strlen(token);
    if (len > WH_TOKEN_MAX)
        return WH_EDENIED;
    struct wh_digest k;
    wh_digest_of(&k, WH_DIGEST_SHA256, token, len);
    pthread_mutex_lock(&a->lock);
    ptrdiff_t i = cache_find(a, a->tokens, sizeof(a->tokens[0]), TOKEN_SLOTS, &k);
    if (i >= 0)
        *out = a->tokens[i].claims;
    pthread_mutex_unlock(&a->lock);
    if (i >= 0)
        return out->exp + WH_TOKEN_LEEWAY_S > now_s ? 0 : WH_EDENIED;
    wh_metric_add(WH_METRIC_TOKEN_CHECKS, 1);
    int rc = wh_auth_token_verify(out, a->keys, token, len, WH_AUTH_ISSUER, WH_AUTH_SERVICE, now_s);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&a->lock);
    size_t slot = cache_put(a, a->tokens, sizeof(a->tokens[0]), TOKEN_SLOTS, &k,
                            (out->exp + WH_TOKEN_LEEWAY_S) * 1000);
    a->tokens[slot].claims = *out;
    pthread_mutex_unlock(&a->lock);
    return 0;
}

static int from_token(wh_acl *a, const char *token, struct wh_principal *out)
{
    int64_t now_s = wh_now_ms() / 1000;
    anonymous(out);
    if (token_verify(a, token, now_s, &out->token) < 0) {
        out->bad_credentials = true;
        return 0;
    }
    const char *job = out->token.sub;
    if (strncmp(job, WH_ACL_SCANNER_SUBJECT, strlen(WH_ACL_SCANNER_SUBJECT)) == 0) {
        bool running = false;
        job += strlen(WH_ACL_SCANNER_SUBJECT);
        if (wh_db_scan_running(a->db, job, &running) < 0 || !running) {
            anonymous(out);
            out->bad_credentials = true; /* the scan it was made for has ended */
            return 0;
        }
    }
    out->has_token = true;
    /*
     * The token's grants are all a token caller has: they were computed from
     * the caller's rights when it was issued, and last its lifetime
     * (wh_acl_token_ttl), as with the distribution token protocol.
     */
    const char *sub = out->token.sub;
    if (*sub) {
        out->kind = strncmp(sub, "robot$", 6) == 0 ? WH_PRINCIPAL_ROBOT : WH_PRINCIPAL_USER;
        snprintf(out->name, sizeof(out->name), "%s", sub);
    }
    return 0;
}

int wh_acl_identify(wh_acl *a, const char *authorization, const char *client_ip,
                    struct wh_principal *out)
{
    anonymous(out);
    if (!authorization || !*authorization)
        return 0;
    if (strncasecmp(authorization, "Bearer ", 7) == 0)
        return from_token(a, authorization + 7, out);
    char user[WH_NAME_MAX], pass[WH_AUTH_PASSWORD_MAX + 1];
    if (wh_auth_basic_parse(user, sizeof(user), pass, sizeof(pass), authorization) < 0) {
        out->bad_credentials = true;
        return 0;
    }
    int rc = wh_acl_login(a, user, pass, client_ip, out);
    memset(pass, 0, sizeof(pass));
    return rc == WH_EBUSY ? rc : 0;
}

/*
 * Whether Basic credentials were verified within the last minute (then the
 * check is a hash and a table lookup, cheap enough for a request thread).
 */
static bool basic_cached(wh_acl *a, const char *authorization)
{
    char user[WH_NAME_MAX], pass[WH_AUTH_PASSWORD_MAX + 1];
    bool hit = false;
    if (wh_auth_basic_parse(user, sizeof(user), pass, sizeof(pass), authorization) < 0)
        return true; /* malformed: nothing to verify */
    if (strncmp(user, "robot$", 6) == 0) {
        struct wh_robot *r = wh_malloc(sizeof(*r));
        if (wh_db_robot_get(a->db, user, r) == 0)
            hit = secret_cached(a, r->name, pass, r->secret);
        free(r);
    } else {
        struct wh_user u;
        if (wh_db_user_get(a->db, user, &u) == 0)
            hit = secret_cached(a, u.username, pass, u.password);
    }
    memset(pass, 0, sizeof(pass));
    return hit;
}

struct identify_job {
    wh_acl *a;
    const char *authorization, *client_ip; /* request memory */
    struct wh_principal who;
    int rc;
};

static void identify_run(void *ctx)
{
    struct identify_job *j = ctx;
    j->rc = wh_acl_identify(j->a, j->authorization, j->client_ip, &j->who);
}

static int identify_req_raw(wh_acl *a, wh_req *r, const char *authz, struct wh_principal *out)
{
    struct identify_job *j = wh_req_deferred(r);
    if (j) {
        *out = j->who;
        if (j->rc == WH_EBUSY)
            return wh_error_set(WH_EBUSY, "too many failed logins, retry later");
        return j->rc;
    }
    const char *ip = wh_req_client_ip(r);
    if (!authz || strncasecmp(authz, "Basic ", 6) != 0 || basic_cached(a, authz))
        return wh_acl_identify(a, authz, ip, out);
    /* a throttled caller is answered at once, without a password check */
    char user[WH_NAME_MAX], pass[WH_AUTH_PASSWORD_MAX + 1];
    if (wh_auth_basic_parse(user, sizeof(user), pass, sizeof(pass), authz) == 0) {
        memset(pass, 0, sizeof(pass));
        char pair[WH_NAME_MAX + 64];
        snprintf(pair, sizeof(pair), "%s@%s", user, ip);
        struct wh_auth_throttle_seen seen;
        int64_t delay = wh_auth_throttle_delay_ms(a->throttle, pair, ip, wh_now_ms(), &seen);
        if (delay > 0) {
            /*
             * Answered 429 without a password check, after a pause that
             * holds no thread (a tarpit): a client that ignores Retry-After
             * and hammers gets one answer a second per connection, not
             * thousands, and costs the others nothing.
             */
            j = wh_pool_alloc(wh_req_pool(r), sizeof(*j));
            memset(j, 0, sizeof(*j));
            anonymous(&j->who);
            j->who.retry_after_s = (unsigned)((delay + 999) / 1000);
            j->rc = WH_EBUSY;
            wh_error_set(WH_EBUSY, "too many failed logins, retry later");
            /* the delay starts again now; the pause is shorter, so a client that
             * retries at once meets it again and one that waits gets through */
            wh_auth_throttle_hold(a->throttle, pair, ip, wh_now_ms(), &seen);
            int64_t pause = delay / 2 < TARPIT_MS ? delay / 2 : TARPIT_MS;
            if (wh_req_sleep(r, (unsigned)pause, j) == 0)
                return WH_EDEFERRED;
            *out = j->who;
            return wh_error_set(WH_EBUSY, "too many failed logins, retry later");
        }
    }
    j = wh_pool_alloc(wh_req_pool(r), sizeof(*j));
    memset(j, 0, sizeof(*j));
    j->a = a;
    j->authorization = authz;
    j->client_ip = ip;
    if (wh_req_defer(r, identify_run, j) < 0) {
        anonymous(out);
        out->retry_after_s = 1;
        return wh_error_set(WH_EBUSY, "too many logins being checked, retry shortly");
    }
    return WH_EDEFERRED;
}

/* Identifies the request's caller and names it for the access log. */
static int identify_req_with(wh_acl *a, wh_req *r, const char *authz, struct wh_principal *out)
{
    int rc = identify_req_raw(a, r, authz, out);
    if (rc == 0 && out->kind != WH_PRINCIPAL_ANONYMOUS && !out->bad_credentials)
        wh_req_set_user(r, out->name);
    return rc;
}

int wh_acl_identify_req(wh_acl *a, wh_req *r, struct wh_principal *out)
{
    return identify_req_with(a, r, wh_req_header(r, "Authorization"), out);
}

int wh_acl_login_req(wh_acl *a, wh_req *r, const char *user, const char *password,
                     struct wh_principal *out)
{
    /* the same path as Basic credentials: cache, throttle, tarpit, deferred check */
    char *pair = wh_pool_sprintf(wh_req_pool(r), "%s:%s", user, password);
    size_t n = strlen(pair), cap = 6 + 4 * ((n + 2) / 3) + 1;
    char *authz = wh_pool_alloc(wh_req_pool(r), cap);
    memcpy(authz, "Basic ", 6);
    EVP_EncodeBlock((unsigned char *)authz + 6, (const unsigned char *)pair, (int)n);
    OPENSSL_cleanse(pair, n);
    int rc = identify_req_with(a, r, authz, out);
    if (rc == 0 && (out->bad_credentials || out->kind == WH_PRINCIPAL_ANONYMOUS))
        return wh_error_set(WH_EDENIED, "invalid credentials");
    return rc;
}

/* ---- refresh tokens ---- */

/* A fingerprint of a stored password or secret hash (16 hex digits of its
 * SHA-256): it changes with the password, and tells nothing about it. */
static void credential_stamp(char out[17], const char *stored)
{
    struct wh_digest d;
    wh_digest_of(&d, WH_DIGEST_SHA256, stored, strlen(stored));
    memcpy(out, wh_digest_hex(&d), 16);
    out[16] = '\0';
}

int wh_acl_refresh_issue(wh_acl *a, const struct wh_principal *p, char **out)
{
    struct wh_token_claims *c = NULL;
    struct wh_user *u = NULL;
    struct wh_robot *r = NULL;
    char stamp[17];
    int error;

    *out = NULL;
    if (p->has_token || (p->kind != WH_PRINCIPAL_USER && p->kind != WH_PRINCIPAL_ROBOT))
        return wh_error_set(WH_EINVALID, "refresh tokens are for users and robots that log in");
    c = wh_malloc(sizeof(*c));
    if (p->kind == WH_PRINCIPAL_USER) {
        u = wh_malloc(sizeof(*u));
        if ((error = wh_db_user_get_id(a->db, p->id, u)) < 0)
            goto out;
        credential_stamp(stamp, u->password);
    } else {
        r = wh_malloc(sizeof(*r));
        if ((error = wh_db_robot_get_id(a->db, p->id, r)) < 0)
            goto out;
        credential_stamp(stamp, r->secret);
    }
    if ((error = wh_auth_claims_init(c, p->name, wh_now_ms() / 1000, a->refresh_ttl_s)) < 0)
        goto out;
    snprintf(c->aud, sizeof(c->aud), "%s", WH_AUTH_REFRESH_AUDIENCE);
    snprintf(c->bind, sizeof(c->bind), "%s:%" PRId64 ":%s",
             p->kind == WH_PRINCIPAL_USER ? "user" : "robot", p->id, stamp);
    error = wh_auth_token_sign(out, a->keys, c);
out:
    free(c);
    free(u);
    free(r);
    return error < 0 ? WH_ERROR : 0;
}

int wh_acl_refresh_redeem(wh_acl *a, const char *token, struct wh_principal *out)
{
    struct wh_token_claims *c = wh_malloc(sizeof(*c));
    struct wh_user *u = NULL;
    struct wh_robot *r = NULL;
    int64_t now = wh_now_ms() / 1000;
    char kind[8], stamp[17], have[17];
    long long id = 0;
    int n = 0, error;

    anonymous(out);
    if ((error = wh_auth_token_verify(c, a->keys, token, strlen(token), WH_AUTH_ISSUER,
                                      WH_AUTH_REFRESH_AUDIENCE, now)) < 0)
        goto out;
    if (c->exp <= now) {
        error = wh_error_set(WH_EDENIED, "invalid token: expired");
        goto out;
    }
    if (sscanf(c->bind, "%7[a-z]:%lld:%16[0-9a-f]%n", kind, &id, stamp, &n) != 3 ||
        (size_t)n != strlen(c->bind) || strlen(stamp) != 16 || id <= 0) {
        error = wh_error_set(WH_EDENIED, "invalid token: not bound to an account");
        goto out;
    }
    error = wh_error_set(WH_EDENIED, "the account of the refresh token is gone or changed");
    if (strcmp(kind, "user") == 0) {
        u = wh_malloc(sizeof(*u));
        if (wh_db_user_get_id(a->db, (int64_t)id, u) < 0 || strcmp(u->username, c->sub) != 0)
            goto out;
        credential_stamp(have, u->password);
        if (!wh_auth_consttime_eq_n(have, stamp, 16))
            goto out;
        out->kind = WH_PRINCIPAL_USER;
        out->sysadmin = u->sysadmin;
    } else if (strcmp(kind, "robot") == 0) {
        r = wh_malloc(sizeof(*r));
        if (wh_db_robot_get_id(a->db, (int64_t)id, r) < 0 || strcmp(r->name, c->sub) != 0)
            goto out;
        credential_stamp(have, r->secret);
        if (!wh_auth_consttime_eq_n(have, stamp, 16) || !robot_usable(r, now))
            goto out;
        out->kind = WH_PRINCIPAL_ROBOT;
    } else {
        goto out;
    }
    out->id = (int64_t)id;
    snprintf(out->name, sizeof(out->name), "%s", c->sub);
    error = 0;
out:
    if (error < 0)
        anonymous(out);
    free(c);
    free(u);
    free(r);
    return error < 0 ? WH_EDENIED : 0;
}

/* ---- permissions ---- */

/*
 * Robot permissions are Harbor's list [{"kind","namespace","access":[{"resource",
 * "action"}]}]: kind "project" with a project's name or "*" (every project) as
 * namespace, kind "system" with namespace "/" (system robots only). An entry
 * without a kind, written before kinds were checked, counts as "project".
 */

static bool is_system_kind(json_t *perm)
{
    const char *kind = json_string_value(json_object_get(perm, "kind"));
    return kind && strcmp(kind, "system") == 0;
}

/* Whether one access entry covers (res, act); "*" stands for any. */
static bool access_covers(json_t *acc, const char *res, const char *act)
{
    const char *pr = json_string_value(json_object_get(acc, "resource"));
    const char *pa = json_string_value(json_object_get(acc, "action"));
    return pr && pa && (strcmp(pr, res) == 0 || strcmp(pr, "*") == 0) &&
           (strcmp(pa, act) == 0 || strcmp(pa, "*") == 0);
}

/*
 * Whether the list grants `act` on `res`: at system level (`ns` NULL), in
 * every project (`ns` "*": only entries of namespace "*" count), or in the
 * project named `ns` (its entries and those of namespace "*"). `any_access`
 * asks whether an entry names the scope at all, whatever its access.
 */
static bool perms_grant(json_t *perms, const char *ns, const char *res, const char *act,
                        bool any_access)
{
    size_t i, j;
    json_t *perm, *acc;
    json_array_foreach(perms, i, perm)
    {
        const char *pns = json_string_value(json_object_get(perm, "namespace"));
        if (!ns) {
            if (!is_system_kind(perm))
                continue;
        } else if (is_system_kind(perm) || !pns ||
                   (strcmp(pns, "*") != 0 && strcmp(pns, ns) != 0)) {
            continue;
        }
        if (any_access)
            return true;
        json_array_foreach(json_object_get(perm, "access"), j, acc)
        {
            if (access_covers(acc, res, act))
                return true;
        }
    }
    return false;
}

/* A robot's record and parsed permissions; `perms` NULL when it has none readable. */
struct robot_perms {
    struct wh_robot *r;
    json_t *perms;
};

static int robot_perms_load(wh_acl *a, int64_t id, struct robot_perms *out)
{
    out->r = wh_malloc(sizeof(*out->r));
    out->perms = NULL;
    int error = wh_db_robot_get_id(a->db, id, out->r);
    if (error == 0)
        out->perms = json_loads(out->r->permissions, 0, NULL);
    return error;
}

static void robot_perms_dispose(struct robot_perms *rp)
{
    json_decref(rp->perms);
    free(rp->r);
}

/*
 * What a robot's permissions allow in `project` (NULL: at system level). A
 * project robot has nothing outside its project and nothing at system level.
 */
static bool robot_perms_allow(const struct robot_perms *rp, const struct wh_project *project,
                              const char *res, const char *act)
{
    bool system_robot = strcmp(rp->r->level, "system") == 0;
    if (!project)
        return system_robot && perms_grant(rp->perms, NULL, res, act, false);
    if (!system_robot && rp->r->project_id != project->id)
        return false;
    /* a robot may always see the project it has permissions in */
    if (strcmp(res, "project") == 0 && strcmp(act, "read") == 0)
        return perms_grant(rp->perms, project->name, res, act, true);
    return perms_grant(rp->perms, project->name, res, act, false);
}

static bool robot_allows(wh_acl *a, const struct wh_principal *p, const struct wh_project *project,
                         const char *res, const char *act)
{
    struct robot_perms rp;
    bool ok = robot_perms_load(a, p->id, &rp) == 0 && robot_perms_allow(&rp, project, res, act);
    robot_perms_dispose(&rp);
    return ok;
}

enum wh_role wh_acl_role(wh_acl *a, const struct wh_principal *p, int64_t project_id)
{
    int role = 0;
    if (p->kind != WH_PRINCIPAL_USER || p->has_token ||
        wh_db_member_role(a->db, project_id, p->id, &role) < 0)
        return WH_ROLE_NONE;
    return (enum wh_role)role;
}

bool wh_acl_can(wh_acl *a, const struct wh_principal *p, const struct wh_project *project,
                enum wh_rbac_res res, enum wh_rbac_act act)
{
    if (p->has_token)
        return false; /* a token's grants are in the token (wh_acl_repo_actions), nowhere else */
    if (p->sysadmin)
        return true;
    bool anon = p->kind == WH_PRINCIPAL_ANONYMOUS;
    if (p->kind == WH_PRINCIPAL_ROBOT) {
        if (project && wh_rbac_allowed(WH_ROLE_NONE, project->public, false, true, res, act))
            return true; /* what anyone may do on a public project */
        return robot_allows(a, p, project, wh_rbac_res_name(res), wh_rbac_act_name(act));
    }
    if (!project)
        return false; /* system-level resources are for administrators (and robots given them) */
    enum wh_role role = anon ? WH_ROLE_NONE : wh_acl_role(a, p, project->id);
    return wh_rbac_allowed(role, project->public, false, anon, res, act);
}

/* ---- what a caller may give away ---- */

/* The pairs a permission may name at system level: the system rights wharf checks. */
static bool system_pair(enum wh_rbac_res res, enum wh_rbac_act act)
{
    if (res == WH_RBAC_RES_PROJECT)
        return act == WH_RBAC_ACT_CREATE || act == WH_RBAC_ACT_LIST;
    if (res == WH_RBAC_RES_ROBOT)
        return act == WH_RBAC_ACT_CREATE || act == WH_RBAC_ACT_READ ||
               act == WH_RBAC_ACT_UPDATE || act == WH_RBAC_ACT_DELETE || act == WH_RBAC_ACT_LIST;
    return false;
}

/* The pairs a permission may name in a project: Harbor's matrix, and scanner-pull. */
static bool project_pair(enum wh_rbac_res res, enum wh_rbac_act act)
{
    if (res == WH_RBAC_RES_REPOSITORY && act == WH_RBAC_ACT_SCANNER_PULL)
        return true;
    /* the project administrator's row holds every other role's */
    return wh_rbac_allowed(WH_ROLE_PROJECT_ADMIN, false, false, false, res, act);
}

/* Who is giving permissions away, with a robot's permissions read once. */
struct grantor {
    wh_acl *a;
    const struct wh_principal *p;
    struct robot_perms rp; /* robots only */
    bool robot_loaded;
};

/*
 * Does the grantor hold `act` on `res` at system level (`project` NULL and
 * `every` false), in every project (`every`), or in `project`?
 */
static bool grantor_holds(struct grantor *g, const struct wh_project *project, bool every,
                          enum wh_rbac_res res, enum wh_rbac_act act)
{
    const struct wh_principal *p = g->p;
    if (p->has_token || p->kind == WH_PRINCIPAL_ANONYMOUS)
        return false;
    if (p->sysadmin)
        return true;
    const char *rn = wh_rbac_res_name(res), *an = wh_rbac_act_name(act);
    if (p->kind == WH_PRINCIPAL_ROBOT) {
        if (!g->robot_loaded)
            return false;
        if (every)
            return strcmp(g->rp.r->level, "system") == 0 &&
                   perms_grant(g->rp.perms, "*", rn, an, false);
        if (project && wh_rbac_allowed(WH_ROLE_NONE, project->public, false, true, res, act))
            return true;
        return robot_perms_allow(&g->rp, project, rn, an);
    }
    if (every || !project)
        return false; /* a user's rights are per project; system rights are the admins' */
    /* who may switch a project's pull policies off may let a scanner past them */
    if (res == WH_RBAC_RES_REPOSITORY && act == WH_RBAC_ACT_SCANNER_PULL)
        return wh_acl_can(g->a, p, project, WH_RBAC_RES_METADATA, WH_RBAC_ACT_UPDATE);
    return wh_acl_can(g->a, p, project, res, act);
}

static void grantor_init(struct grantor *g, wh_acl *a, const struct wh_principal *p)
{
    memset(g, 0, sizeof(*g));
    g->a = a;
    g->p = p;
    if (p->kind == WH_PRINCIPAL_ROBOT && !p->has_token)
        g->robot_loaded = robot_perms_load(a, p->id, &g->rp) == 0;
}

static void grantor_dispose(struct grantor *g)
{
    if (g->p->kind == WH_PRINCIPAL_ROBOT && !g->p->has_token)
        robot_perms_dispose(&g->rp);
}

/*
 * Checks one access entry of a permission: every pair it stands for (a "*"
 * expands over the pairs meaningful at its level) must be meaningful, and
 * held by the grantor when `g` is given. Returns 0, or WH_EINVALID (a pair
 * that means nothing there) / WH_EDENIED (one the grantor lacks), naming it.
 */
static int access_check(struct grantor *g, bool system, const char *ns,
                        const struct wh_project *project, json_t *acc)
{
    const char *rs = json_string_value(json_object_get(acc, "resource"));
    const char *as = json_string_value(json_object_get(acc, "action"));
    enum wh_rbac_res r0;
    enum wh_rbac_act a0;
    bool rall = rs && strcmp(rs, "*") == 0, aall = as && strcmp(as, "*") == 0;
    if (!rs || !as || (!rall && wh_rbac_res_parse(&r0, rs) < 0) ||
        (!aall && wh_rbac_act_parse(&a0, as) < 0))
        return wh_error_set(WH_EINVALID, "bad request permission: %s:%s", rs ? rs : "",
                            as ? as : "");
    bool meaningful = false;
    for (int r = 0; r < WH_RBAC_RES_COUNT; r++) {
        if (!rall && (enum wh_rbac_res)r != r0)
            continue;
        for (int x = 0; x < WH_RBAC_ACT_COUNT; x++) {
            if (!aall && (enum wh_rbac_act)x != a0)
                continue;
            if (!(system ? system_pair : project_pair)((enum wh_rbac_res)r, (enum wh_rbac_act)x))
                continue;
            meaningful = true;
            if (g && !grantor_holds(g, project, !system && !project, (enum wh_rbac_res)r,
                                    (enum wh_rbac_act)x))
                return wh_error_set(WH_EDENIED, "%s lacks %s:%s %s%s", g->p->name,
                                    wh_rbac_res_name((enum wh_rbac_res)r),
                                    wh_rbac_act_name((enum wh_rbac_act)x),
                                    system ? "at system level" : "in project ",
                                    system ? "" : ns);
        }
    }
    if (!meaningful)
        return wh_error_set(WH_EINVALID, "bad request permission: %s:%s", rs, as);
    return 0;
}

int wh_acl_robot_perms_check(wh_acl *a, const struct wh_principal *p, const char *perms,
                             bool system_robot)
{
    json_t *list = json_loads(perms, 0, NULL);
    struct grantor g = {0};
    struct wh_project *project = wh_malloc(sizeof(*project));
    int error = 0;
    size_t i, j;
    json_t *perm, *acc;
    if (p)
        grantor_init(&g, a, p);
    if (!json_is_array(list) || json_array_size(list) == 0) {
        error = wh_error_set(WH_EINVALID, "bad request empty permission");
        goto out;
    }
    json_array_foreach(list, i, perm)
    {
        const char *kind = json_string_value(json_object_get(perm, "kind"));
        const char *ns = json_string_value(json_object_get(perm, "namespace"));
        json_t *access = json_object_get(perm, "access");
        bool system = kind && strcmp(kind, "system") == 0;
        if (!kind || (!system && strcmp(kind, "project") != 0)) {
            error = wh_error_set(WH_EINVALID, "bad request permission level: %s",
                                 kind ? kind : "");
            goto out;
        }
        if (!ns || (system && (strcmp(ns, "/") != 0 || !system_robot))) {
            error = wh_error_set(WH_EINVALID, "bad request permission namespace: %s",
                                 ns ? ns : "");
            goto out;
        }
        if (!json_is_array(access) || json_array_size(access) == 0) {
            error = wh_error_set(WH_EINVALID, "bad request empty access");
            goto out;
        }
        bool every = !system && strcmp(ns, "*") == 0;
        if (!system && !every && (error = wh_db_project_get(a->db, ns, project)) < 0) {
            if (error == WH_ENOTFOUND)
                wh_error_set(WH_ENOTFOUND, "project %s not found", ns);
            goto out;
        }
        json_array_foreach(access, j, acc)
        {
            if ((error = access_check(p ? &g : NULL, system, ns,
                                      system || every ? NULL : project, acc)) < 0)
                goto out;
        }
    }
out:
    if (p)
        grantor_dispose(&g);
    free(project);
    json_decref(list);
    return error;
}

int wh_acl_role_grant_check(wh_acl *a, const struct wh_principal *p,
                            const struct wh_project *project, enum wh_role role)
{
    struct grantor g;
    int error = 0;
    grantor_init(&g, a, p);
    for (int r = 0; r < WH_RBAC_RES_COUNT && error == 0; r++) {
        for (int x = 0; x < WH_RBAC_ACT_COUNT; x++) {
            if (!wh_rbac_allowed(role, false, false, false, (enum wh_rbac_res)r,
                                 (enum wh_rbac_act)x) ||
                grantor_holds(&g, project, false, (enum wh_rbac_res)r, (enum wh_rbac_act)x))
                continue;
            error = wh_error_set(WH_EDENIED, "%s cannot grant the role %s: it lacks %s:%s",
                                 p->name, wh_rbac_role_name(role),
                                 wh_rbac_res_name((enum wh_rbac_res)r),
                                 wh_rbac_act_name((enum wh_rbac_act)x));
            break;
        }
    }
    grantor_dispose(&g);
    return error;
}

unsigned wh_acl_repo_actions(wh_acl *a, const struct wh_principal *p,
                             const struct wh_project *project, const char *repo)
{
    unsigned acts = 0;
    if (p->has_token) {
        static const unsigned bits[] = {WH_ACT_PULL, WH_ACT_PUSH, WH_ACT_DELETE,
                                        WH_ACT_SCANNER_PULL};
        for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
            if (wh_auth_token_allows(&p->token, "repository", repo, bits[i]))
                acts |= bits[i];
        return acts;
    }
    if (p->kind == WH_PRINCIPAL_ROBOT) {
        if (wh_acl_can(a, p, project, WH_RBAC_RES_REPOSITORY, WH_RBAC_ACT_PULL))
            acts |= WH_ACT_PULL;
        if (wh_acl_can(a, p, project, WH_RBAC_RES_REPOSITORY, WH_RBAC_ACT_PUSH))
            acts |= WH_ACT_PUSH;
        if (wh_acl_can(a, p, project, WH_RBAC_RES_ARTIFACT, WH_RBAC_ACT_DELETE) ||
            wh_acl_can(a, p, project, WH_RBAC_RES_REPOSITORY, WH_RBAC_ACT_DELETE))
            acts |= WH_ACT_DELETE;
        if (robot_allows(a, p, project, "repository", "scanner-pull"))
            acts |= WH_ACT_SCANNER_PULL;
        return acts;
    }
    bool anon = p->kind == WH_PRINCIPAL_ANONYMOUS;
    enum wh_role role = anon ? WH_ROLE_NONE : wh_acl_role(a, p, project->id);
    return wh_rbac_repo_actions(role, project->public, p->sysadmin, anon);
}

/* ---- blob sources (automatic cross-mount) ---- */

struct source_ctx {
    wh_acl *a;
    const struct wh_principal *p;
    int64_t unreadable_project; /* the last project found closed to the caller, 0 none */
    char *repo_out;
    uint64_t *size_out;
    bool found;
};

static int source_one(const struct wh_blob_holder *h, void *payload)
{
    struct source_ctx *c = payload;
    /* Without a token, what a caller may do depends on the project alone
     * (roles, robot permissions, public): one check per project. A token
     * grants per repository, so each of its rows is looked at. */
    if (!c->p->has_token && h->project.id == c->unreadable_project)
        return 0;
    if ((wh_acl_repo_actions(c->a, c->p, &h->project, h->repo) & WH_ACT_PULL) == 0) {
        c->unreadable_project = h->project.id;
        return 0;
    }
    snprintf(c->repo_out, WH_NAME_MAX, "%s", h->repo);
    *c->size_out = h->size;
    c->found = true;
    return 1;
}

int wh_acl_blob_source(wh_acl *a, const struct wh_principal *p, const char *digest,
                       int64_t prefer_project, char *repo_out, uint64_t *size_out)
{
    struct source_ctx c = {a, p, 0, repo_out, size_out, false};
    int error = wh_db_blob_holders(a->db, digest, prefer_project, WH_ACL_SOURCE_SCAN_MAX,
                                   source_one, &c);
    if (error < 0)
        return error;
    if (!c.found)
        return wh_error_set(WH_ENOTFOUND, "no readable repository holds %s", digest);
    return 0;
}

/* ---- lifecycle ---- */

static int count_admin(const struct wh_user *u, void *payload)
{
    if (u->sysadmin)
        ++*(int64_t *)payload;
    return 0;
}

/*
 * Creates the administrator "admin" when the registry has no system
 * administrator: at the first start, and also when users were added on the
 * command line before it (they are not administrators of the registry).
 */
static int bootstrap_admin(wh_acl *a)
{
    int64_t n = 0;
    int error;
    if ((error = wh_db_user_list(a->db, NULL, 0, INT64_MAX, count_admin, &n, NULL)) < 0 || n > 0)
        return error;
    struct wh_user taken;
    if (wh_db_user_get(a->db, "admin", &taken) == 0) {
        wh_log_warn("there is no system administrator, and the user \"admin\" exists without "
                    "that role: make one with `wharf user set-admin NAME`");
        return 0;
    }
    const char *env = getenv("WHARF_ADMIN_PASSWORD");
    char generated[WH_AUTH_SECRET_LEN + 1];
    const char *pw = env;
    if (env && wh_auth_password_policy(env) < 0)
        return wh_error_set(WH_EINVALID, "WHARF_ADMIN_PASSWORD: %s", wh_error_msg());
    if (!env) {
        wh_auth_secret_new(generated);
        pw = generated;
    }
    struct wh_user u;
    memset(&u, 0, sizeof(u));
    snprintf(u.username, sizeof(u.username), "admin");
    snprintf(u.realname, sizeof(u.realname), "system admin");
    snprintf(u.comment, sizeof(u.comment), "created at first start");
    u.sysadmin = true;
    if ((error = wh_auth_password_hash(u.password, sizeof(u.password), pw)) < 0 ||
        (error = wh_db_user_create(a->db, &u, NULL)) < 0)
        return error;
    if (!env) {
        /* The one time this password is shown: the console of the first start. */
        char line[256];
        int len = snprintf(line, sizeof(line),
                           "wharf: created the administrator \"admin\" with password %s\n"
                           "wharf: it is not shown again; change it with: wharf user passwd admin\n",
                           pw);
        wh_log_line(line, (size_t)len);
    } else {
        wh_log_info("created the administrator \"admin\" (password from WHARF_ADMIN_PASSWORD)");
    }
    memset(generated, 0, sizeof(generated));
    return 0;
}

/* ---- the throttle's counts: in the database, the same for every node ---- */

static int store_get(void *payload, const char *const ids[], size_t n,
                     struct wh_auth_fail_count *out)
{
    struct wh_db_login_failure got[WH_DB_LOGIN_KEYS_MAX];
    int error = wh_db_login_failures(payload, ids, n, got);
    for (size_t i = 0; error == 0 && i < n; i++)
        out[i] = (struct wh_auth_fail_count){got[i].fails, got[i].first_ms, got[i].last_ms};
    return error;
}

static int store_fail(void *payload, const char *const ids[], size_t n, int64_t now_ms,
                      int64_t window_ms)
{
    return wh_db_login_fail(payload, ids, n, now_ms, window_ms);
}

static int store_hold(void *payload, const char *id, int64_t now_ms)
{
    return wh_db_login_hold(payload, id, now_ms);
}

static int store_clear(void *payload, const char *id)
{
    return wh_db_login_clear(payload, id);
}

static const struct wh_auth_throttle_store throttle_store = {
    .get = store_get, .fail = store_fail, .hold = store_hold, .clear = store_clear};

int wh_acl_new(wh_acl **out, wh_db *db, const struct wh_acl_config *cfg)
{
    wh_acl *a = wh_calloc(1, sizeof(*a));
    int error;
    a->db = db;
    a->token_ttl_s = cfg->token_ttl_s > 0 ? cfg->token_ttl_s : 1800;
    a->refresh_ttl_s = cfg->refresh_ttl_s > 0 ? cfg->refresh_ttl_s : 30 * 24 * 3600;
    wh_random_hex(a->salt, 16);
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->cond, NULL);
    pthread_cond_init(&a->room, NULL);
    a->throttle = wh_auth_throttle_new(&throttle_store, db);
    a->batch = wh_calloc(AUDIT_QUEUE, sizeof(*a->batch));
    a->rows = wh_calloc(AUDIT_QUEUE, sizeof(*a->rows));
    a->retention_ms = cfg->audit_retention_days * 86400 * 1000;
    if ((error = cfg->token_key && *cfg->token_key
                     ? wh_auth_keys_load(&a->keys, cfg->token_key)
                     : wh_auth_keys_load_or_create(&a->keys, cfg->data_dir)) < 0 ||
        (error = bootstrap_admin(a)) < 0) {
        wh_auth_throttle_free(a->throttle);
        wh_auth_keys_free(a->keys);
        free(a->batch);
        free(a->rows);
        free(a);
        return error;
    }
    if (pthread_create(&a->flusher, NULL, flusher_main, a) != 0)
        abort();
    *out = a;
    return 0;
}

void wh_acl_free(wh_acl *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    a->stopping = true;
    pthread_cond_signal(&a->cond);
    pthread_cond_broadcast(&a->room);
    pthread_mutex_unlock(&a->lock);
    pthread_join(a->flusher, NULL);
    wh_auth_throttle_free(a->throttle);
    wh_auth_keys_free(a->keys);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->cond);
    pthread_cond_destroy(&a->room);
    free(a->batch);
    free(a->rows);
    free(a);
}

const wh_auth_keys *wh_acl_keys(const wh_acl *a)
{
    return a->keys;
}

int64_t wh_acl_token_ttl(const wh_acl *a)
{
    return a->token_ttl_s;
}

/* ---- portal sessions ---- */

/*
 * Sessions live in the database (db_session.c), so that any node answers
 * any of them and a restart ends none. The database holds the SHA-256 of
 * the session id, never the id; the CSRF token is derived from the id under
 * another tag, so it is neither stored nor computable from what is.
 */
static void session_hash(char out[WH_ACL_SESSION_HEX + 1], const char *tag, const char *sid)
{
    struct wh_digest d;
    wh_hasher *h = wh_hasher_new(WH_DIGEST_SHA256);
    if (tag)
        wh_hasher_update(h, tag, strlen(tag) + 1);
    wh_hasher_update(h, sid, strlen(sid));
    wh_hasher_final(&d, h);
    wh_hasher_free(h);
    memcpy(out, wh_digest_hex(&d), WH_ACL_SESSION_HEX);
    out[WH_ACL_SESSION_HEX] = '\0';
}

static void session_csrf(char out[WH_ACL_SESSION_HEX + 1], const char *sid)
{
    session_hash(out, "wharf portal csrf", sid);
}

/* Deletes ended sessions and old throttle counts, at most once an interval per process. */
static void session_purge(wh_acl *a, int64_t now)
{
    pthread_mutex_lock(&a->lock);
    bool due = now >= a->next_session_purge_ms;
    if (due)
        a->next_session_purge_ms = now + WH_ACL_SESSION_PURGE_S * 1000;
    pthread_mutex_unlock(&a->lock);
    if (!due)
        return;
    if (wh_db_session_purge(a->db, now, now - (int64_t)WH_ACL_SESSION_IDLE_S * 1000, NULL) < 0)
        wh_log_error("ended portal sessions not purged: %s", wh_error_msg());
    if (wh_db_login_purge(a->db, now - WH_AUTH_THROTTLE_WINDOW_MS, NULL) < 0)
        wh_log_error("old failed-login counts not purged: %s", wh_error_msg());
}

int wh_acl_session_start(wh_acl *a, const struct wh_principal *p, char *sid_out,
                         char *csrf_out)
{
    struct wh_user *u = NULL;
    char key[WH_ACL_SESSION_HEX + 1], stamp[17];
    int64_t now = wh_now_ms();
    int error = 0;

    if (p->kind != WH_PRINCIPAL_USER || p->has_token || p->id <= 0)
        return wh_error_set(WH_EINVALID, "only users sign in to the portal");
    session_purge(a, now);
    u = wh_malloc(sizeof(*u));
    if ((error = wh_db_user_get_id(a->db, p->id, u)) < 0)
        goto out;
    wh_random_hex(sid_out, WH_ACL_SESSION_HEX / 2);
    session_hash(key, NULL, sid_out);
    credential_stamp(stamp, u->password);
    if ((error = wh_db_session_add(a->db, key, u->id, stamp, now,
                                   now + (int64_t)WH_ACL_SESSION_MAX_S * 1000,
                                   WH_ACL_SESSIONS_PER_USER)) < 0) {
        OPENSSL_cleanse(sid_out, WH_ACL_SESSION_HEX + 1);
        goto out;
    }
    session_csrf(csrf_out, sid_out);
out:
    free(u);
    return error < 0 ? error : 0;
}

int wh_acl_session_get(wh_acl *a, const char *sid, struct wh_principal *out, char *csrf_out)
{
    char key[WH_ACL_SESSION_HEX + 1], have[17];
    struct wh_db_session s;
    struct wh_user *u = NULL;
    int64_t now = wh_now_ms();
    int error;

    anonymous(out);
    if (strlen(sid) != WH_ACL_SESSION_HEX)
        return wh_error_set(WH_ENOTFOUND, "no such session");
    session_hash(key, NULL, sid);
    if ((error = wh_db_session_get(a->db, key, &s)) < 0)
        return error;
    bool live = now < s.expires_ms && now - s.seen_ms < (int64_t)WH_ACL_SESSION_IDLE_S * 1000;
    /* the account must be the one that signed in, with the same password */
    u = wh_malloc(sizeof(*u));
    bool same = live && wh_db_user_get_id(a->db, s.user_id, u) == 0;
    if (same) {
        credential_stamp(have, u->password);
        same = wh_auth_consttime_eq_n(have, s.stamp, 16);
    }
    if (!same) {
        wh_db_session_end(a->db, key); /* ended: the row goes now */
        error = wh_error_set(WH_ENOTFOUND, "no such session");
        goto out;
    }
    /* a page load makes many calls: the last use is written once a minute at most */
    if (now - s.seen_ms >= WH_ACL_SESSION_TOUCH_S * 1000 &&
        wh_db_session_touch(a->db, key, now) < 0)
        wh_log_error("portal session use not recorded: %s", wh_error_msg());
    out->kind = WH_PRINCIPAL_USER;
    out->id = u->id;
    out->sysadmin = u->sysadmin;
    snprintf(out->name, sizeof(out->name), "%s", u->username);
    session_csrf(csrf_out, sid);
    error = 0;
out:
    free(u);
    return error;
}

void wh_acl_session_end(wh_acl *a, const char *sid)
{
    char key[WH_ACL_SESSION_HEX + 1];
    if (strlen(sid) != WH_ACL_SESSION_HEX)
        return;
    session_hash(key, NULL, sid);
    if (wh_db_session_end(a->db, key) < 0)
        wh_log_error("portal session not ended: %s", wh_error_msg());
}

bool wh_acl_cookie(const char *cookie_header, const char *name, unsigned nth, char *out,
                   size_t cap)
{
    size_t nlen = strlen(name);
    const char *p = cookie_header;
    if (!p || cap == 0)
        return false;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            if (nth-- > 0) {
                p += len;
                continue;
            }
            size_t vlen = len - nlen - 1;
            while (vlen && (p[nlen + 1 + vlen - 1] == ' ' || p[nlen + 1 + vlen - 1] == '\t'))
                vlen--;
            if (vlen == 0 || vlen >= cap)
                return false;
            memcpy(out, p + nlen + 1, vlen);
            out[vlen] = '\0';
            return true;
        }
        p += len;
    }
    return false;
}
