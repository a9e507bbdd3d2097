/*
 * auth/throttle: backoff after repeated failed logins, per (name, address)
 * pair and per client address (policy in auth.h). A fixed table of WH_AUTH_THROTTLE_SLOTS
 * entries in 8-way buckets: lookups touch one bucket, memory never grows, and a
 * flood of new keys only evicts the least recently touched entries. Entries
 * hold a keyed hash of the key, never the name or address itself. Nothing is
 * persisted; a restart forgets every count.
 */
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_int.h"

#define WAYS 8
#define BUCKETS (WH_AUTH_THROTTLE_SLOTS / WAYS)
#define ID_LEN 16

struct slot {
    unsigned char id[ID_LEN]; /* keyed hash of "u\0<user>" or "a\0<addr>" */
    bool used;
    uint32_t fails;       /* failures counted in the current window */
    int64_t first_ms;     /* first failure of the window */
    int64_t last_fail_ms; /* latest failure */
    int64_t touched_ms;   /* latest use, for eviction */
};

struct wh_auth_throttle {
    pthread_mutex_t mu;
    unsigned char salt[32];
    struct slot slots[WH_AUTH_THROTTLE_SLOTS];
};

wh_auth_throttle *wh_auth_throttle_new(void)
{
    wh_auth_throttle *t = wh_calloc(1, sizeof(*t));

    if (RAND_bytes(t->salt, sizeof(t->salt)) != 1)
        abort();
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

void wh_auth_throttle_free(wh_auth_throttle *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static void key_id(unsigned char id[ID_LEN], const wh_auth_throttle *t, char kind, const char *key)
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    const char tag[2] = {kind, '\0'};

    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, t->salt, sizeof(t->salt)) != 1 ||
        EVP_DigestUpdate(ctx, tag, sizeof(tag)) != 1 ||
        EVP_DigestUpdate(ctx, key, strlen(key)) != 1 || EVP_DigestFinal_ex(ctx, md, &n) != 1)
        abort();
    EVP_MD_CTX_free(ctx);
    memcpy(id, md, ID_LEN);
}

static struct slot *bucket_of(wh_auth_throttle *t, const unsigned char id[ID_LEN])
{
    uint32_t h = (uint32_t)id[0] | (uint32_t)id[1] << 8 | (uint32_t)id[2] << 16 |
                 (uint32_t)id[3] << 24;
    return &t->slots[(h % BUCKETS) * WAYS];
}

/* The slot of `key`, or NULL; with `create`, a fresh one replacing the least
 * recently touched slot of the bucket if the key is not there. */
static struct slot *find(wh_auth_throttle *t, char kind, const char *key, bool create,
                         int64_t now_ms)
{
    unsigned char id[ID_LEN];
    struct slot *b, *victim = NULL;

    key_id(id, t, kind, key);
    b = bucket_of(t, id);
    for (int i = 0; i < WAYS; i++)
        if (b[i].used && memcmp(b[i].id, id, ID_LEN) == 0)
            return &b[i];
    if (!create)
        return NULL;
    for (int i = 0; i < WAYS; i++) {
        if (!b[i].used) {
            victim = &b[i];
            break;
        }
        if (!victim || b[i].touched_ms < victim->touched_ms)
            victim = &b[i];
    }
    memset(victim, 0, sizeof(*victim));
    memcpy(victim->id, id, ID_LEN);
    victim->used = true;
    victim->first_ms = now_ms;
    victim->touched_ms = now_ms;
    return victim;
}

static bool window_over(const struct slot *s, int64_t now_ms)
{
    return now_ms - s->first_ms > WH_AUTH_THROTTLE_WINDOW_MS;
}

static int64_t slot_delay(const struct slot *s, uint32_t free_fails, int64_t now_ms)
{
    if (!s || s->fails <= free_fails || window_over(s, now_ms))
        return 0;
    uint32_t over = s->fails - free_fails; /* >= 1 */
    int64_t d = over > 16 ? WH_AUTH_THROTTLE_CAP_MS
                          : (int64_t)WH_AUTH_THROTTLE_BASE_MS << (over - 1);
    if (d > WH_AUTH_THROTTLE_CAP_MS)
        d = WH_AUTH_THROTTLE_CAP_MS;
    int64_t since = now_ms - s->last_fail_ms;
    if (since < 0)
        since = 0; /* the clock went back: wait the full delay, no more */
    return since >= d ? 0 : d - since;
}

int64_t wh_auth_throttle_delay_ms(wh_auth_throttle *t, const char *user, const char *addr,
                                  int64_t now_ms)
{
    int64_t d = 0, a;

    pthread_mutex_lock(&t->mu);
    if (user)
        d = slot_delay(find(t, 'u', user, false, now_ms), WH_AUTH_THROTTLE_FREE, now_ms);
    if (addr && (a = slot_delay(find(t, 'a', addr, false, now_ms), WH_AUTH_THROTTLE_ADDR_FREE,
                                now_ms)) > d)
        d = a;
    pthread_mutex_unlock(&t->mu);
    return d;
}

static void record_fail(wh_auth_throttle *t, char kind, const char *key, int64_t now_ms)
{
    struct slot *s = find(t, kind, key, true, now_ms);

    if (window_over(s, now_ms)) {
        s->fails = 0;
        s->first_ms = now_ms;
    }
    if (s->fails < UINT32_MAX)
        s->fails++;
    s->last_fail_ms = now_ms;
    s->touched_ms = now_ms;
}

void wh_auth_throttle_fail(wh_auth_throttle *t, const char *user, const char *addr,
                           int64_t now_ms)
{
    pthread_mutex_lock(&t->mu);
    if (user)
        record_fail(t, 'u', user, now_ms);
    if (addr)
        record_fail(t, 'a', addr, now_ms);
    pthread_mutex_unlock(&t->mu);
}

void wh_auth_throttle_hold(wh_auth_throttle *t, const char *user, const char *addr,
                           int64_t now_ms)
{
    struct slot *s;
    pthread_mutex_lock(&t->mu);
    if (user && (s = find(t, 'u', user, false, now_ms)) &&
        slot_delay(s, WH_AUTH_THROTTLE_FREE, now_ms) > 0)
        s->last_fail_ms = s->touched_ms = now_ms;
    if (addr && (s = find(t, 'a', addr, false, now_ms)) &&
        slot_delay(s, WH_AUTH_THROTTLE_ADDR_FREE, now_ms) > 0)
        s->last_fail_ms = s->touched_ms = now_ms;
    pthread_mutex_unlock(&t->mu);
}

void wh_auth_throttle_ok(wh_auth_throttle *t, const char *user, const char *addr, int64_t now_ms)
{
    struct slot *s;

    (void)addr; /* deliberately: see the policy in auth.h */
    (void)now_ms;
    if (!user)
        return;
    pthread_mutex_lock(&t->mu);
    if ((s = find(t, 'u', user, false, 0)))
        memset(s, 0, sizeof(*s));
    pthread_mutex_unlock(&t->mu);
}
