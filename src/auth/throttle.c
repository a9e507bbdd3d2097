/*
 * auth/throttle: backoff after repeated failed logins, per (name, address)
 * pair and per client address (policy in auth.h). The counts live in a store
 * the caller provides (wharf's: the database, shared by every node), found by
 * a hash of the key; this file decides what to read and write and computes
 * the delays. The hot path, a login with no failures on record, is one read.
 */
#include <stdlib.h>
#include <string.h>

#include "auth/auth_int.h"

struct wh_auth_throttle {
    const struct wh_auth_throttle_store *store;
    void *payload;
};

wh_auth_throttle *wh_auth_throttle_new(const struct wh_auth_throttle_store *store, void *payload)
{
    wh_auth_throttle *t = wh_calloc(1, sizeof(*t));
    t->store = store;
    t->payload = payload;
    return t;
}

void wh_auth_throttle_free(wh_auth_throttle *t)
{
    free(t);
}

void wh_auth_throttle_id(char *out, char kind, const char *key)
{
    /* a domain tag and the kind, so that a name cannot pose as an address */
    static const char tag[] = "wharf login throttle";
    struct wh_digest d;
    wh_hasher *h = wh_hasher_new(WH_DIGEST_SHA256);
    wh_hasher_update(h, tag, sizeof(tag));
    wh_hasher_update(h, (const char[]){kind, '\0'}, 2);
    wh_hasher_update(h, key, strlen(key));
    wh_hasher_final(&d, h);
    wh_hasher_free(h);
    memcpy(out, wh_digest_hex(&d), WH_AUTH_THROTTLE_ID_HEX);
    out[WH_AUTH_THROTTLE_ID_HEX] = '\0';
}

static bool window_over(const struct wh_auth_fail_count *c, int64_t now_ms)
{
    return now_ms - c->first_ms > WH_AUTH_THROTTLE_WINDOW_MS;
}

static int64_t key_delay(const struct wh_auth_fail_count *c, int64_t free_fails, int64_t now_ms)
{
    if (c->fails <= free_fails || window_over(c, now_ms))
        return 0;
    int64_t over = c->fails - free_fails; /* >= 1 */
    int64_t d = over > 16 ? WH_AUTH_THROTTLE_CAP_MS : (int64_t)WH_AUTH_THROTTLE_BASE_MS
                                                          << (over - 1);
    if (d > WH_AUTH_THROTTLE_CAP_MS)
        d = WH_AUTH_THROTTLE_CAP_MS;
    int64_t since = now_ms - c->last_ms;
    if (since < 0)
        since = 0; /* the clock went back (or another node's runs ahead): the full delay, no more */
    return since >= d ? 0 : d - since;
}

int64_t wh_auth_throttle_delay_of(const struct wh_auth_throttle_seen *seen, int64_t now_ms)
{
    int64_t d = key_delay(&seen->user, WH_AUTH_THROTTLE_FREE, now_ms);
    int64_t a = key_delay(&seen->addr, WH_AUTH_THROTTLE_ADDR_FREE, now_ms);
    return a > d ? a : d;
}

int64_t wh_auth_throttle_delay_ms(wh_auth_throttle *t, const char *user, const char *addr,
                                  int64_t now_ms, struct wh_auth_throttle_seen *seen)
{
    char ids[2][WH_AUTH_THROTTLE_ID_HEX + 1];
    const char *list[2];
    struct wh_auth_fail_count got[2];
    struct wh_auth_throttle_seen local;
    size_t n = 0;

    if (!seen)
        seen = &local;
    memset(seen, 0, sizeof(*seen));
    if (user) {
        wh_auth_throttle_id(ids[n], 'u', user);
        list[n] = ids[n];
        n++;
    }
    if (addr) {
        wh_auth_throttle_id(ids[n], 'a', addr);
        list[n] = ids[n];
        n++;
    }
    if (n == 0) {
        seen->valid = true;
        return 0;
    }
    if (t->store->get(t->payload, list, n, got) < 0) {
        wh_log_error("login throttle: counts not read: %s", wh_error_msg());
        return 0;
    }
    if (user)
        seen->user = got[0];
    if (addr)
        seen->addr = got[n - 1];
    seen->valid = true;
    return wh_auth_throttle_delay_of(seen, now_ms);
}

void wh_auth_throttle_fail(wh_auth_throttle *t, const char *user, const char *addr,
                           int64_t now_ms, const struct wh_auth_throttle_seen *seen)
{
    char ids[2][WH_AUTH_THROTTLE_ID_HEX + 1];
    const char *list[2];
    size_t n = 0;

    /*
     * An address past its key budget: a name it has not failed with yet is
     * counted for the address only (which throttles it anyway), so no
     * address can make rows without bound.
     */
    bool addr_full = seen && seen->valid && addr && seen->user.fails == 0 &&
                     !window_over(&seen->addr, now_ms) &&
                     seen->addr.fails >= WH_AUTH_THROTTLE_ADDR_KEYS;
    if (user && !addr_full) {
        wh_auth_throttle_id(ids[n], 'u', user);
        list[n] = ids[n];
        n++;
    }
    if (addr) {
        wh_auth_throttle_id(ids[n], 'a', addr);
        list[n] = ids[n];
        n++;
    }
    if (n && t->store->fail(t->payload, list, n, now_ms, WH_AUTH_THROTTLE_WINDOW_MS) < 0)
        wh_log_error("login throttle: failure not counted: %s", wh_error_msg());
}

/* Holds one key when it is throttled and was not held within WH_AUTH_THROTTLE_HOLD_MS. */
static void hold_key(wh_auth_throttle *t, char kind, const char *key,
                     const struct wh_auth_fail_count *c, int64_t free_fails, int64_t now_ms)
{
    char id[WH_AUTH_THROTTLE_ID_HEX + 1];
    if (!key || key_delay(c, free_fails, now_ms) == 0 ||
        now_ms - c->last_ms < WH_AUTH_THROTTLE_HOLD_MS)
        return;
    wh_auth_throttle_id(id, kind, key);
    if (t->store->hold(t->payload, id, now_ms) < 0)
        wh_log_error("login throttle: refused attempt not recorded: %s", wh_error_msg());
}

void wh_auth_throttle_hold(wh_auth_throttle *t, const char *user, const char *addr,
                           int64_t now_ms, const struct wh_auth_throttle_seen *seen)
{
    struct wh_auth_throttle_seen local;
    if (!seen || !seen->valid) {
        wh_auth_throttle_delay_ms(t, user, addr, now_ms, &local);
        seen = &local;
    }
    hold_key(t, 'u', user, &seen->user, WH_AUTH_THROTTLE_FREE, now_ms);
    hold_key(t, 'a', addr, &seen->addr, WH_AUTH_THROTTLE_ADDR_FREE, now_ms);
}

void wh_auth_throttle_ok(wh_auth_throttle *t, const char *user, const char *addr, int64_t now_ms,
                         const struct wh_auth_throttle_seen *seen)
{
    char id[WH_AUTH_THROTTLE_ID_HEX + 1];

    (void)addr; /* deliberately: see the policy in auth.h */
    (void)now_ms;
    if (!user || (seen && seen->valid && seen->user.fails == 0))
        return; /* nothing on record: no write */
    wh_auth_throttle_id(id, 'u', user);
    if (t->store->clear(t->payload, id) < 0)
        wh_log_error("login throttle: count not cleared: %s", wh_error_msg());
}
