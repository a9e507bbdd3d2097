/*
 * Unit tests for acl/'s choice of a blob source for an automatic
 * cross-mount (wh_acl_blob_source over db/'s wh_db_blob_holders): the caller
 * gets a repository it may pull from, the preferred project first, then
 * public ones; never one it cannot read; a token caller only what its token
 * grants. And for what a caller may give away: robot permission lists
 * (validated, and never more than the grantor holds) and member roles; and
 * the all-or-nothing writes under them (a project with its owner's
 * membership, a member added once).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "db_fixture.h"
#include "acl/acl.h"
#include "common/metrics.h"
#include "db/db.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"
#define D4 "sha256:4444444444444444444444444444444444444444444444444444444444444444"

struct world {
    char dir[64];
    wh_db *db;
    wh_acl *acl;
    int64_t secret, other, mine, pub; /* project ids */
    int64_t bob, carol;               /* user ids */
};

static int64_t user(wh_db *db, const char *name)
{
    struct wh_user u;
    int64_t id = 0;
    memset(&u, 0, sizeof(u));
    snprintf(u.username, sizeof(u.username), "%s", name);
    snprintf(u.password, sizeof(u.password), "not-a-hash");
    assert_int_equal(wh_db_user_create(db, &u, &id), 0);
    return id;
}

static int world_setup(void **state)
{
    struct world *w = calloc(1, sizeof(*w));
    snprintf(w->dir, sizeof(w->dir), "/tmp/wharf-acl-XXXXXX");
    assert_non_null(mkdtemp(w->dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/wharf.db", w->dir);
    assert_int_equal(test_db_open(&w->db, path), 0);
    setenv("WHARF_ADMIN_PASSWORD", "Unit-Admin-Passw0rd", 1);
    struct wh_acl_config cfg = {.data_dir = w->dir, .token_ttl_s = 60};
    assert_int_equal(wh_acl_new(&w->acl, w->db, &cfg), 0);
    /* "other" is made before "mine": without a preference it comes first */
    assert_int_equal(wh_db_project_create(w->db, "secret", false, &w->secret), 0);
    assert_int_equal(wh_db_project_create(w->db, "other", false, &w->other), 0);
    assert_int_equal(wh_db_project_create(w->db, "mine", false, &w->mine), 0);
    assert_int_equal(wh_db_project_create(w->db, "pub", true, &w->pub), 0);
    w->bob = user(w->db, "bob");
    w->carol = user(w->db, "carol");
    assert_int_equal(wh_db_member_set(w->db, w->mine, w->bob, WH_ROLE_DEVELOPER, NULL), 0);
    assert_int_equal(wh_db_member_set(w->db, w->secret, w->carol, WH_ROLE_GUEST, NULL), 0);
    /* D1 only in the secret project; D2 there and in the public one; D3 in
     * two private projects; D4 nowhere */
    assert_int_equal(wh_db_blob_link(w->db, w->secret, "secret/a", D1, 10), 0);
    assert_int_equal(wh_db_blob_link(w->db, w->secret, "secret/a", D2, 20), 0);
    assert_int_equal(wh_db_blob_link(w->db, w->pub, "pub/x", D2, 20), 0);
    assert_int_equal(wh_db_blob_link(w->db, w->other, "other/b", D3, 30), 0);
    assert_int_equal(wh_db_blob_link(w->db, w->mine, "mine/c", D3, 30), 0);
    *state = w;
    return 0;
}

static int world_teardown(void **state)
{
    struct world *w = *state;
    wh_acl_free(w->acl);
    wh_db_close(w->db);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", w->dir);
    assert_int_equal(system(cmd), 0);
    free(w);
    return 0;
}

static struct wh_principal person(int64_t id, const char *name, bool sysadmin)
{
    struct wh_principal p;
    memset(&p, 0, sizeof(p));
    p.kind = id ? WH_PRINCIPAL_USER : WH_PRINCIPAL_ANONYMOUS;
    p.id = id;
    snprintf(p.name, sizeof(p.name), "%s", name);
    p.sysadmin = sysadmin;
    return p;
}

/* The source found for `p` ("" when none), checking the size that comes with it. */
static const char *source(struct world *w, const struct wh_principal *p, const char *digest,
                          int64_t prefer, uint64_t want_size)
{
    static char repo[WH_NAME_MAX];
    uint64_t size = 0;
    snprintf(repo, sizeof(repo), "untouched");
    int error = wh_acl_blob_source(w->acl, p, digest, prefer, repo, &size);
    if (error == WH_ENOTFOUND) {
        assert_string_equal(repo, "untouched"); /* nothing of a closed holder leaks out */
        return "";
    }
    assert_int_equal(error, 0);
    assert_int_equal(size, want_size);
    return repo;
}

static void test_acl__blob_source_by_role(void **state)
{
    struct world *w = *state;
    struct wh_principal admin = person(1, "admin", true);
    struct wh_principal bob = person(w->bob, "bob", false);
    struct wh_principal carol = person(w->carol, "carol", false);
    struct wh_principal anon = person(0, "anonymous", false);
    const struct {
        const struct wh_principal *who;
        const char *digest;
        int prefer; /* 0 none, 1 "mine" */
        const char *want;
        uint64_t size;
    } cases[] = {
        {&bob, D1, 1, "", 0},            /* held only where bob cannot read */
        {&carol, D1, 1, "secret/a", 10}, /* a guest may pull */
        {&admin, D1, 0, "secret/a", 10},
        {&anon, D1, 0, "", 0},
        {&bob, D2, 1, "pub/x", 20},      /* the public copy, never the secret one */
        {&anon, D2, 0, "pub/x", 20},
        {&carol, D2, 1, "pub/x", 20},    /* public before other projects */
        {&admin, D3, 0, "other/b", 30},  /* by project id without a preference */
        {&admin, D3, 1, "mine/c", 30},   /* the preferred project first */
        {&bob, D3, 0, "mine/c", 30},     /* past the project bob cannot read */
        {&carol, D3, 1, "", 0},
        {&admin, D4, 1, "", 0},          /* nowhere */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = source(w, cases[i].who, cases[i].digest,
                                 cases[i].prefer ? w->mine : 0, cases[i].size);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("case %zu (%s, %.10s): got \"%s\", want \"%s\"", i, cases[i].who->name,
                     cases[i].digest, got, cases[i].want);
    }
}

static void test_acl__blob_source_by_token(void **state)
{
    struct world *w = *state;
    struct wh_principal bob = person(w->bob, "bob", false);
    bob.has_token = true;
    /* a token for bob's own repository only: the public copy is not granted */
    bob.token.naccess = 1;
    snprintf(bob.token.access[0].type, sizeof(bob.token.access[0].type), "repository");
    snprintf(bob.token.access[0].name, sizeof(bob.token.access[0].name), "mine/c");
    bob.token.access[0].actions = WH_ACT_PULL | WH_ACT_PUSH;
    assert_string_equal(source(w, &bob, D2, w->mine, 0), "");
    assert_string_equal(source(w, &bob, D3, w->mine, 30), "mine/c");
    /* granting pull on the public repository opens it */
    bob.token.naccess = 2;
    snprintf(bob.token.access[1].type, sizeof(bob.token.access[1].type), "repository");
    snprintf(bob.token.access[1].name, sizeof(bob.token.access[1].name), "pub/x");
    bob.token.access[1].actions = WH_ACT_PULL;
    assert_string_equal(source(w, &bob, D2, w->mine, 20), "pub/x");
}

/* A token revoked before its expiry is refused at once; others still pass. */
static void test_acl__token_revoked(void **state)
{
    struct world *w = *state;
    struct wh_token_claims c, d;
    char *tok = NULL, *other = NULL, *hdr;
    struct wh_principal p;
    int64_t now = wh_now_ms() / 1000;
    assert_int_equal(wh_auth_claims_init(&c, "robot$tester", now, 600), 0);
    c.naccess = 1;
    snprintf(c.access[0].type, sizeof(c.access[0].type), "repository");
    snprintf(c.access[0].name, sizeof(c.access[0].name), "mine/c");
    c.access[0].actions = WH_ACT_PULL | WH_ACT_SCANNER_PULL;
    assert_int_equal(wh_auth_token_sign(&tok, wh_acl_keys(w->acl), &c), 0);
    assert_int_equal(wh_auth_claims_init(&d, "bob", now, 600), 0);
    assert_int_equal(wh_auth_token_sign(&other, wh_acl_keys(w->acl), &d), 0);
    hdr = wh_sprintf("Bearer %s", tok);
    assert_int_equal(wh_acl_identify(w->acl, hdr, "127.0.0.1", &p), 0);
    assert_true(p.has_token && !p.bad_credentials);
    assert_true(wh_auth_token_allows(&p.token, "repository", "mine/c", WH_ACT_SCANNER_PULL));
    assert_int_equal(wh_acl_token_revoke(w->acl, c.jti, c.exp), 0);
    assert_int_equal(wh_acl_identify(w->acl, hdr, "127.0.0.1", &p), 0);
    assert_false(p.has_token);
    assert_true(p.bad_credentials);
    free(hdr);
    hdr = wh_sprintf("Bearer %s", other);
    assert_int_equal(wh_acl_identify(w->acl, hdr, "127.0.0.1", &p), 0);
    assert_true(p.has_token && !p.bad_credentials);
    assert_int_equal(wh_acl_token_revoke(w->acl, "", c.exp), WH_EINVALID);
    free(hdr);
    free(tok);
    /* a scanner's token is good only while its scan job runs: none here */
    assert_int_equal(wh_auth_claims_init(&c, WH_ACL_SCANNER_SUBJECT "0123456789abcdef0123456789abcdef",
                                         now, 600), 0);
    assert_int_equal(wh_auth_token_sign(&tok, wh_acl_keys(w->acl), &c), 0);
    hdr = wh_sprintf("Bearer %s", tok);
    assert_int_equal(wh_acl_identify(w->acl, hdr, "127.0.0.1", &p), 0);
    assert_false(p.has_token);
    assert_true(p.bad_credentials);
    free(hdr);
    free(tok);
    free(other);
}

/* A counter of /metrics, by its sample name. */
static long long metric(const char *name)
{
    struct wh_buf b;
    wh_buf_init(&b, 1 << 20);
    assert_int_equal(wh_metrics_render(&b, NULL, 0), 0);
    wh_buf_put(&b, "", 1);
    char *key = wh_sprintf("\n%s ", name);
    const char *at = strstr(b.data, key);
    assert_non_null(at);
    long long v = atoll(at + strlen(key));
    free(key);
    wh_buf_dispose(&b);
    return v;
}

/*
 * Clients whose tokens fall in the same slots of the verified-token cache
 * keep them all: each signature is checked once, not once per request in
 * turn. The tokens are picked so that all four share the cache's set (it is
 * chosen by the first digits of the token's sha256): they agree on those
 * digits modulo the cache's 64 slots, so they would share one slot of a
 * direct-mapped cache as well.
 */
static void test_acl__token_cache_keeps_colliding_clients(void **state)
{
    struct world *w = *state;
    enum { WANT = 4, TRIES = 2000, SLOTS = 64 };
    char *hdr[WANT] = {0};
    size_t have = 0;
    int64_t now = wh_now_ms() / 1000;
    unsigned set = 0;
    char *seen[TRIES] = {0};
    unsigned seen_set[TRIES];
    for (size_t i = 0; i < TRIES && have < WANT; i++) {
        struct wh_token_claims c;
        char *tok = NULL;
        assert_int_equal(wh_auth_claims_init(&c, "bob", now, 600), 0);
        assert_int_equal(wh_auth_token_sign(&tok, wh_acl_keys(w->acl), &c), 0);
        struct wh_digest d;
        wh_digest_of(&d, WH_DIGEST_SHA256, tok, strlen(tok));
        seen_set[i] = (unsigned)(strtoul((char[]){d.str[7], d.str[8], d.str[9], '\0'}, NULL, 16) % SLOTS);
        seen[i] = tok;
        /* the first set that gathers WANT tokens */
        size_t same = 0;
        for (size_t j = 0; j <= i; j++)
            same += seen_set[j] == seen_set[i];
        if (same == WANT) {
            set = seen_set[i];
            for (size_t j = 0; j <= i; j++)
                if (seen_set[j] == set)
                    hdr[have++] = wh_sprintf("Bearer %s", seen[j]);
        }
    }
    assert_int_equal(have, WANT);
    long long before = metric("wharf_auth_token_signature_checks_total");
    for (int round = 0; round < 3; round++) {
        for (size_t k = 0; k < WANT; k++) {
            struct wh_principal p;
            assert_int_equal(wh_acl_identify(w->acl, hdr[k], "127.0.0.1", &p), 0);
            assert_true(p.has_token && !p.bad_credentials);
            assert_string_equal(p.token.sub, "bob");
        }
    }
    assert_int_equal(metric("wharf_auth_token_signature_checks_total") - before, WANT);
    for (size_t k = 0; k < WANT; k++)
        free(hdr[k]);
    for (size_t i = 0; i < TRIES; i++)
        free(seen[i]);
}

/* The set of the verified-token cache (16 sets of 4) a token falls in. */
static unsigned token_set(const char *tok)
{
    struct wh_digest d;
    wh_digest_of(&d, WH_DIGEST_SHA256, tok, strlen(tok));
    return (unsigned)(strtoul((char[]){d.str[7], d.str[8], d.str[9], '\0'}, NULL, 16) % 16);
}

/* Whether `hdr` is taken as a good token now. */
static bool token_good(struct world *w, const char *hdr)
{
    struct wh_principal p;
    assert_int_equal(wh_acl_identify(w->acl, hdr, "127.0.0.1", &p), 0);
    return p.has_token && !p.bad_credentials;
}

/*
 * A token past its time is the first to go from the cache, however recently
 * it was used: a new token of the same set takes its slot, and the three
 * good tokens beside it stay (no signature checked again). Taking the least
 * recently used slot instead would evict a good token, and each of them
 * would then evict the next.
 */
static void test_acl__token_cache_evicts_expired_first(void **state)
{
    struct world *w = *state;
    enum { TRIES = 4000 };
    int64_t now = wh_now_ms() / 1000;
    struct wh_token_claims c;
    char *tok = NULL, *good[4] = {0}, *brief = NULL;
    unsigned set = 0;
    size_t have = 0;
    for (size_t i = 0; i < TRIES && have < 4; i++) {
        assert_int_equal(wh_auth_claims_init(&c, "bob", now, 600), 0);
        assert_int_equal(wh_auth_token_sign(&tok, wh_acl_keys(w->acl), &c), 0);
        if (have == 0)
            set = token_set(tok);
        if (token_set(tok) == set)
            good[have++] = wh_sprintf("Bearer %s", tok);
        free(tok);
    }
    assert_int_equal(have, 4);
    for (size_t k = 0; k < 3; k++)
        assert_true(token_good(w, good[k]));
    /* a token of the same set good for one or two seconds more: its exp
     * plus the leeway just ahead of now */
    for (size_t i = 0; i < TRIES && !brief; i++) {
        now = wh_now_ms() / 1000;
        assert_int_equal(wh_auth_claims_init(&c, "bob", now - 100,
                                             100 - WH_TOKEN_LEEWAY_S + 2), 0);
        assert_int_equal(wh_auth_token_sign(&tok, wh_acl_keys(w->acl), &c), 0);
        if (token_set(tok) == set)
            brief = wh_sprintf("Bearer %s", tok);
        free(tok);
    }
    assert_non_null(brief);
    assert_true(token_good(w, brief)); /* the set is full; `brief` used last */
    int64_t deadline = wh_monotonic_ms() + 5000;
    bool expired = false;
    while (!expired && wh_monotonic_ms() < deadline) {
        expired = !token_good(w, brief);
        if (!expired)
            usleep(20000);
    }
    assert_true(expired);
    long long before = metric("wharf_auth_token_signature_checks_total");
    assert_true(token_good(w, good[3]));
    for (size_t k = 0; k < 3; k++)
        assert_true(token_good(w, good[k]));
    assert_int_equal(metric("wharf_auth_token_signature_checks_total") - before, 1);
    for (size_t k = 0; k < 4; k++)
        free(good[k]);
    free(brief);
}

struct collect {
    char names[8][WH_NAME_MAX];
    size_t n, stop_after;
};

static int collect_one(const struct wh_blob_holder *h, void *payload)
{
    struct collect *c = payload;
    snprintf(c->names[c->n++], WH_NAME_MAX, "%s", h->repo);
    return c->n == c->stop_after;
}

static void test_acl__holders_order_and_limits(void **state)
{
    struct world *w = *state;
    struct collect c = {.stop_after = 0};
    assert_int_equal(wh_db_blob_holders(w->db, D2, 0, 100, collect_one, &c), 0);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.names[0], "pub/x"); /* public first */
    assert_string_equal(c.names[1], "secret/a");
    memset(&c, 0, sizeof(c));
    assert_int_equal(wh_db_blob_holders(w->db, D2, w->secret, 100, collect_one, &c), 0);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.names[0], "secret/a"); /* the preferred project before public */
    memset(&c, 0, sizeof(c));
    assert_int_equal(wh_db_blob_holders(w->db, D2, 0, 1, collect_one, &c), 0);
    assert_int_equal(c.n, 1); /* the limit */
    memset(&c, 0, sizeof(c));
    c.stop_after = 1;
    assert_int_equal(wh_db_blob_holders(w->db, D3, 0, 100, collect_one, &c), 0);
    assert_int_equal(c.n, 1); /* the callback stops it */
    memset(&c, 0, sizeof(c));
    assert_int_equal(wh_db_blob_holders(w->db, D4, 0, 100, collect_one, &c), 0);
    assert_int_equal(c.n, 0);
}


/* Creates a robot with `perms`; returns a principal for it. */
static struct wh_principal robot(struct world *w, const char *name, int64_t project_id,
                                 const char *perms)
{
    struct wh_robot *r = calloc(1, sizeof(*r));
    int64_t id = 0;
    snprintf(r->name, sizeof(r->name), "%s", name);
    snprintf(r->level, sizeof(r->level), "%s", project_id ? "project" : "system");
    r->project_id = project_id;
    snprintf(r->secret, sizeof(r->secret), "not-a-hash");
    r->expires_at = -1;
    snprintf(r->permissions, sizeof(r->permissions), "%s", perms);
    assert_int_equal(wh_db_robot_create(w->db, r, &id), 0);
    free(r);
    struct wh_principal p;
    memset(&p, 0, sizeof(p));
    p.kind = WH_PRINCIPAL_ROBOT;
    p.id = id;
    snprintf(p.name, sizeof(p.name), "%s", name);
    return p;
}

#define ACC(r, a) "{\"resource\":\"" r "\",\"action\":\"" a "\"}"
/* `acc`: access entries joined with "," */
#define PERM(ns, acc) "{\"kind\":\"project\",\"namespace\":\"" ns "\",\"access\":[" acc "]}"
#define SYS(acc) "{\"kind\":\"system\",\"namespace\":\"/\",\"access\":[" acc "]}"

static void test_acl__robot_perms_valid(void **state)
{
    struct world *w = *state;
    const struct {
        const char *perms;
        bool system_robot;
        int want;
    } cases[] = {
        {"[" PERM("mine", ACC("repository", "pull")) "]", false, 0},
        {"[" PERM("*", ACC("*", "*")) "," SYS(ACC("project", "create")) "]", true, 0},
        {"[" PERM("mine", ACC("repository", "scanner-pull") "," ACC("member", "create")) "]", false,
         0},
        {"[" PERM("mine", ACC("webhook", "list")) "]", false, 0}, /* Harbor's alias */
        {"[]", true, WH_EINVALID},
        {"{}", true, WH_EINVALID},
        {"not json", true, WH_EINVALID},
        {"[{\"namespace\":\"mine\",\"access\":[" ACC("repository", "pull") "]}]", true,
         WH_EINVALID}, /* no kind */
        {"[{\"kind\":\"bogus\",\"namespace\":\"mine\",\"access\":[" ACC("repository", "pull") "]}]",
         true, WH_EINVALID},
        {"[" SYS(ACC("project", "create")) "]", false, WH_EINVALID}, /* not for project robots */
        {"[{\"kind\":\"system\",\"namespace\":\"mine\",\"access\":[" ACC("project", "create") "]}]",
         true, WH_EINVALID},
        {"[" PERM("mine", "") "]", true, WH_EINVALID},                          /* empty access */
        {"[" PERM("mine", ACC("helm-chart", "read")) "]", true, WH_EINVALID}, /* unknown */
        {"[" PERM("mine", ACC("repository", "fly")) "]", true, WH_EINVALID},
        {"[" PERM("mine", ACC("project", "pull")) "]", true, WH_EINVALID},  /* means nothing */
        {"[" PERM("mine", ACC("project", "create")) "]", true, WH_EINVALID}, /* system only */
        {"[" SYS(ACC("repository", "pull")) "]", true, WH_EINVALID},
        {"[" PERM("nosuch", ACC("repository", "pull")) "]", true, WH_ENOTFOUND},
        {"[{\"kind\":\"project\",\"access\":[" ACC("repository", "pull") "]}]", true, WH_EINVALID},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = wh_acl_robot_perms_check(w->acl, NULL, cases[i].perms, cases[i].system_robot);
        if (got != cases[i].want)
            fail_msg("case %zu (%s): got %d, want %d (%s)", i, cases[i].perms, got, cases[i].want,
                     wh_error_msg());
    }
}

static void test_acl__robot_perms_granted(void **state)
{
    struct world *w = *state;
    struct wh_principal admin = person(1, "admin", true);
    struct wh_principal bob = person(w->bob, "bob", false); /* developer of "mine" */
    struct wh_principal bobtok = bob;
    bobtok.has_token = true;
    struct wh_principal pr = robot(w, "robot$mine+r", w->mine,
                                   "[" PERM("mine", ACC("repository", "pull") ","
                                                    ACC("robot", "create")) "]");
    struct wh_principal sr = robot(w, "robot$s", 0,
                                   "[" PERM("*", ACC("repository", "pull")) ","
                                   PERM("other", ACC("repository", "*")) ","
                                   SYS(ACC("project", "create")) "]");
    const struct {
        const struct wh_principal *who;
        const char *perms;
        bool system_robot;
        int want;
    } cases[] = {
        {&admin, "[" PERM("*", ACC("*", "*")) "," SYS(ACC("*", "*")) "]", true, 0},
        {&bob, "[" PERM("mine", ACC("repository", "pull") "," ACC("repository", "push")) "]", false,
         0},
        {&bob, "[" PERM("mine", ACC("repository", "delete")) "]", false, WH_EDENIED},
        {&bob, "[" PERM("mine", ACC("repository", "scanner-pull")) "]", false, WH_EDENIED},
        {&bob, "[" PERM("secret", ACC("repository", "pull")) "]", false, WH_EDENIED},
        {&bob, "[" PERM("*", ACC("repository", "pull")) "]", true, WH_EDENIED},
        {&bob, "[" SYS(ACC("project", "create")) "]", true, WH_EDENIED},
        {&bobtok, "[" PERM("mine", ACC("repository", "pull")) "]", false, WH_EDENIED},
        {&pr, "[" PERM("mine", ACC("repository", "pull") "," ACC("robot", "create")) "]", false,
         0},
        {&pr, "[" PERM("mine", ACC("repository", "push")) "]", false, WH_EDENIED},
        {&pr, "[" PERM("mine", ACC("repository", "*")) "]", false, WH_EDENIED},
        {&pr, "[" PERM("mine", ACC("*", "pull")) "]", false, 0}, /* pull means repository pull */
        {&pr, "[" PERM("other", ACC("repository", "pull")) "]", false, WH_EDENIED},
        {&pr, "[" PERM("pub", ACC("repository", "pull")) "]", false, 0}, /* everybody's */
        {&sr, "[" PERM("secret", ACC("repository", "pull")) "]", true, 0},
        {&sr, "[" PERM("*", ACC("repository", "pull")) "]", true, 0},
        {&sr, "[" PERM("*", ACC("repository", "push")) "]", true, WH_EDENIED},
        {&sr, "[" PERM("other", ACC("repository", "*")) "]", true, 0},
        {&sr, "[" PERM("other", ACC("*", "*")) "]", true, WH_EDENIED},
        {&sr, "[" SYS(ACC("project", "create")) "]", true, 0},
        {&sr, "[" SYS(ACC("robot", "create")) "]", true, WH_EDENIED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = wh_acl_robot_perms_check(w->acl, cases[i].who, cases[i].perms,
                                           cases[i].system_robot);
        if (got != cases[i].want)
            fail_msg("case %zu (%s: %s): got %d, want %d (%s)", i, cases[i].who->name,
                     cases[i].perms, got, cases[i].want, wh_error_msg());
    }
    /* the system robot's rights at system level are what its "system" entry lists */
    assert_true(wh_acl_can(w->acl, &sr, NULL, WH_RBAC_RES_PROJECT, WH_RBAC_ACT_CREATE));
    assert_false(wh_acl_can(w->acl, &sr, NULL, WH_RBAC_RES_ROBOT, WH_RBAC_ACT_CREATE));
    assert_false(wh_acl_can(w->acl, &pr, NULL, WH_RBAC_RES_PROJECT, WH_RBAC_ACT_CREATE));
    assert_false(wh_acl_can(w->acl, &bobtok, NULL, WH_RBAC_RES_PROJECT, WH_RBAC_ACT_READ));
}

static void test_acl__role_grants(void **state)
{
    struct world *w = *state;
    struct wh_project mine;
    assert_int_equal(wh_db_project_get(w->db, "mine", &mine), 0);
    struct wh_principal admin = person(1, "admin", true);
    struct wh_principal bob = person(w->bob, "bob", false); /* developer */
    struct wh_principal hr = robot(w, "robot$mine+hr", w->mine,
                                   "[" PERM("mine", ACC("member", "create") ","
                                                    ACC("repository", "pull")) "]");
    struct wh_principal lg = robot(w, "robot$mine+lg", w->mine,
                                   "[" PERM("mine", ACC("member", "create") ","
                                            ACC("repository", "pull") "," ACC("repository", "read") ","
                                            ACC("repository", "list") "," ACC("artifact", "read") ","
                                            ACC("artifact", "list") ","
                                            ACC("artifact-addition", "read") "," ACC("tag", "list") ","
                                            ACC("scan", "read") "," ACC("sbom", "read") ","
                                            ACC("scanner", "read") "," ACC("accessory", "list") ","
                                            ACC("quota", "read")) "]");
    const struct {
        const struct wh_principal *who;
        enum wh_role role;
        int want;
    } cases[] = {
        {&admin, WH_ROLE_PROJECT_ADMIN, 0},
        {&bob, WH_ROLE_DEVELOPER, 0},
        {&bob, WH_ROLE_LIMITED_GUEST, 0},
        {&bob, WH_ROLE_MAINTAINER, WH_EDENIED},
        {&bob, WH_ROLE_PROJECT_ADMIN, WH_EDENIED},
        {&hr, WH_ROLE_LIMITED_GUEST, WH_EDENIED},
        {&hr, WH_ROLE_PROJECT_ADMIN, WH_EDENIED},
        {&lg, WH_ROLE_LIMITED_GUEST, 0}, /* project read comes with any permission in it */
        {&lg, WH_ROLE_GUEST, WH_EDENIED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = wh_acl_role_grant_check(w->acl, cases[i].who, &mine, cases[i].role);
        if (got != cases[i].want)
            fail_msg("case %zu (%s, role %d): got %d, want %d (%s)", i, cases[i].who->name,
                     (int)cases[i].role, got, cases[i].want, wh_error_msg());
    }
}

static int member_role(struct world *w, int64_t project, int64_t user)
{
    int role = 0;
    return wh_db_member_role(w->db, project, user, &role) == 0 ? role : 0;
}

static void test_acl__writes_all_or_nothing(void **state)
{
    struct world *w = *state;
    struct wh_project_info *in = calloc(1, sizeof(*in));
    struct wh_project p;
    int64_t id = 0;
    in->storage_limit = -1;
    /* an owner who does not exist: no project either */
    snprintf(in->p.name, sizeof(in->p.name), "orphan");
    in->owner_id = 999999;
    assert_int_equal(wh_db_project_insert(w->db, in, &id), WH_ENOTFOUND);
    assert_int_equal(wh_db_project_get(w->db, "orphan", &p), WH_ENOTFOUND);
    /* a user's project: the user is its projectAdmin */
    in->owner_id = w->bob;
    assert_int_equal(wh_db_project_insert(w->db, in, &id), 0);
    assert_int_equal(member_role(w, id, w->bob), WH_ROLE_PROJECT_ADMIN);
    /* a duplicate: refused, the first one untouched */
    in->owner_id = w->carol;
    assert_int_equal(wh_db_project_insert(w->db, in, NULL), WH_EEXISTS);
    assert_string_equal(wh_error_msg(), "The project named orphan already exists");
    assert_int_equal(member_role(w, id, w->carol), 0);
    /* a robot's project: the first administrator's */
    snprintf(in->p.name, sizeof(in->p.name), "byrobot");
    in->owner_id = WH_OWNER_FIRST_ADMIN;
    assert_int_equal(wh_db_project_insert(w->db, in, &id), 0);
    struct wh_project_info *got = calloc(1, sizeof(*got));
    assert_int_equal(wh_db_project_info(w->db, id, got), 0);
    assert_string_equal(got->owner_name, "admin");
    assert_int_equal(member_role(w, id, got->owner_id), WH_ROLE_PROJECT_ADMIN);
    /* no owner (as the command line makes them): no member either */
    snprintf(in->p.name, sizeof(in->p.name), "ownerless");
    in->owner_id = 0;
    int64_t oid = 0, counts[6];
    assert_int_equal(wh_db_project_insert(w->db, in, &oid), 0);
    assert_int_equal(wh_db_project_member_counts(w->db, oid, counts), 0);
    assert_int_equal(counts[WH_ROLE_PROJECT_ADMIN], 0);
    /* members: added once; a second add changes nothing */
    int64_t mid = 0;
    assert_int_equal(wh_db_member_add(w->db, id, w->carol, WH_ROLE_GUEST, &mid), 0);
    assert_int_equal(wh_db_member_add(w->db, id, w->carol, WH_ROLE_PROJECT_ADMIN, NULL), WH_EEXISTS);
    assert_int_equal(member_role(w, id, w->carol), WH_ROLE_GUEST);
    assert_int_equal(wh_db_member_add(w->db, id, 999999, WH_ROLE_GUEST, NULL), WH_ENOTFOUND);
    assert_int_equal(wh_db_member_set_role(w->db, id, mid, WH_ROLE_DEVELOPER), 0);
    assert_int_equal(member_role(w, id, w->carol), WH_ROLE_DEVELOPER);
    assert_int_equal(wh_db_member_set_role(w->db, id, mid + 1000, WH_ROLE_DEVELOPER), WH_ENOTFOUND);
    free(got);
    free(in);
}

/* Portal sessions: an id and a CSRF token per sign-in, the user as it is now,
 * known to every wh_acl on the database, ended by sign-out, a password change
 * and a delete. */
static void test_acl__sessions(void **state)
{
    struct world *w = *state;
    struct wh_principal bob = person(w->bob, "bob", false), who;
    char sid[WH_ACL_SESSION_HEX + 1], csrf[WH_ACL_SESSION_HEX + 1], got[WH_ACL_SESSION_HEX + 1];
    char sid2[WH_ACL_SESSION_HEX + 1], csrf2[WH_ACL_SESSION_HEX + 1];

    assert_int_equal(wh_acl_session_start(w->acl, &bob, sid, csrf), 0);
    assert_int_equal(strlen(sid), WH_ACL_SESSION_HEX);
    assert_int_equal(strlen(csrf), WH_ACL_SESSION_HEX);
    assert_string_not_equal(sid, csrf);
    assert_int_equal(wh_acl_session_get(w->acl, sid, &who, got), 0);
    assert_int_equal(who.kind, WH_PRINCIPAL_USER);
    assert_int_equal(who.id, w->bob);
    assert_string_equal(who.name, "bob");
    assert_false(who.sysadmin);
    assert_string_equal(got, csrf);
    /* another node on the same database (or this one restarted) knows it, token included */
    wh_acl *node2 = NULL;
    struct wh_acl_config cfg = {.data_dir = w->dir, .token_ttl_s = 60};
    assert_int_equal(wh_acl_new(&node2, w->db, &cfg), 0);
    memset(got, 0, sizeof(got));
    assert_int_equal(wh_acl_session_get(node2, sid, &who, got), 0);
    assert_string_equal(who.name, "bob");
    assert_string_equal(got, csrf);
    wh_acl_free(node2);
    /* the administrator flag is read at each request */
    assert_int_equal(wh_db_user_set_sysadmin(w->db, w->bob, true), 0);
    assert_int_equal(wh_acl_session_get(w->acl, sid, &who, got), 0);
    assert_true(who.sysadmin);
    /* a second sign-in is another session */
    assert_int_equal(wh_acl_session_start(w->acl, &bob, sid2, csrf2), 0);
    assert_string_not_equal(sid, sid2);
    assert_string_not_equal(csrf, csrf2);
    /* unknown, short, long and altered ids */
    char bad[WH_ACL_SESSION_HEX + 2];
    memcpy(bad, sid, sizeof(sid));
    bad[0] = bad[0] == 'a' ? 'b' : 'a';
    assert_int_equal(wh_acl_session_get(w->acl, bad, &who, got), WH_ENOTFOUND);
    assert_int_equal(who.kind, WH_PRINCIPAL_ANONYMOUS);
    assert_int_equal(wh_acl_session_get(w->acl, "", &who, got), WH_ENOTFOUND);
    assert_int_equal(wh_acl_session_get(w->acl, "abc", &who, got), WH_ENOTFOUND);
    snprintf(bad, sizeof(bad), "%s0", sid);
    assert_int_equal(wh_acl_session_get(w->acl, bad, &who, got), WH_ENOTFOUND);
    /* sign-out ends one session only */
    wh_acl_session_end(w->acl, sid);
    wh_acl_session_end(w->acl, "nonsense");
    assert_int_equal(wh_acl_session_get(w->acl, sid, &who, got), WH_ENOTFOUND);
    assert_int_equal(wh_acl_session_get(w->acl, sid2, &who, got), 0);
    /* a password change ends every session of the user */
    assert_int_equal(wh_db_user_set_password(w->db, w->bob, "another-hash"), 0);
    assert_int_equal(wh_acl_session_get(w->acl, sid2, &who, got), WH_ENOTFOUND);
    /* so does a delete, and a user made again under the name is not the old one */
    struct wh_principal carol = person(w->carol, "carol", false);
    assert_int_equal(wh_acl_session_start(w->acl, &carol, sid, csrf), 0);
    assert_int_equal(wh_db_user_delete(w->db, w->carol), 0);
    int64_t again = user(w->db, "carol");
    assert_true(again != w->carol);
    assert_int_equal(wh_acl_session_get(w->acl, sid, &who, got), WH_ENOTFOUND);
    /* robots, anonymous callers and unknown users get none */
    struct wh_principal robot = person(w->bob, "robot$x", false);
    robot.kind = WH_PRINCIPAL_ROBOT;
    assert_int_equal(wh_acl_session_start(w->acl, &robot, sid, csrf), WH_EINVALID);
    struct wh_principal anon = person(0, "anonymous", false);
    assert_int_equal(wh_acl_session_start(w->acl, &anon, sid, csrf), WH_EINVALID);
    struct wh_principal ghost = person(w->carol, "carol", false);
    assert_int_equal(wh_acl_session_start(w->acl, &ghost, sid, csrf), WH_ENOTFOUND);
}

/*
 * A user holds WH_ACL_SESSIONS_PER_USER sessions at most: past it the least
 * recently used ones end, the new one never; other users' are untouched.
 */
static void test_acl__sessions_capped_per_user(void **state)
{
    struct world *w = *state;
    struct wh_principal bob = person(w->bob, "bob", false), who;
    struct wh_principal carol = person(w->carol, "carol", false);
    char hers[WH_ACL_SESSION_HEX + 1], sid[WH_ACL_SESSION_HEX + 1];
    char csrf[WH_ACL_SESSION_HEX + 1];
    int64_t n = 0;

    assert_int_equal(wh_acl_session_start(w->acl, &carol, hers, csrf), 0);
    for (int i = 0; i < WH_ACL_SESSIONS_PER_USER + 5; i++) {
        assert_int_equal(wh_acl_session_start(w->acl, &bob, sid, csrf), 0);
        assert_int_equal(wh_acl_session_get(w->acl, sid, &who, csrf), 0);
    }
    assert_int_equal(wh_db_session_count(w->db, &n), 0);
    assert_int_equal(n, WH_ACL_SESSIONS_PER_USER + 1);
    assert_int_equal(wh_acl_session_get(w->acl, hers, &who, csrf), 0);
    assert_string_equal(who.name, "carol");
}

/*
 * Lifetimes as the rows say (any node may have written them): idle past
 * WH_ACL_SESSION_IDLE_S or past the absolute end, a session is refused and
 * its row deleted; a use after WH_ACL_SESSION_TOUCH_S writes the last use,
 * a use sooner does not.
 */
static void test_acl__session_lifetimes(void **state)
{
    struct world *w = *state;
    struct wh_principal who;
    struct wh_user u;
    struct wh_db_session row;
    struct wh_digest d;
    char csrf[WH_ACL_SESSION_HEX + 1], stamp[17], keys[4][WH_ACL_SESSION_HEX + 1];
    static const char *const sids[4] = {
        "1111111111111111111111111111111111111111111111111111111111111111",
        "2222222222222222222222222222222222222222222222222222222222222222",
        "3333333333333333333333333333333333333333333333333333333333333333",
        "4444444444444444444444444444444444444444444444444444444444444444",
    };
    int64_t now = wh_now_ms(), idle = (int64_t)WH_ACL_SESSION_IDLE_S * 1000;
    /* signed in at, last used at, ends at */
    const int64_t times[4][3] = {
        {now - 2 * idle, now - idle - 1000, now + idle},     /* idle too long */
        {now - 2 * idle, now - 1000, now - 1},               /* past its end */
        {now - 2 * idle, now - idle + 60000, now + idle},    /* used 59 minutes ago */
        {now - 1000, now - 1000, now + idle},                /* used a second ago */
    };

    assert_int_equal(wh_db_user_get_id(w->db, w->bob, &u), 0);
    wh_digest_of(&d, WH_DIGEST_SHA256, u.password, strlen(u.password));
    memcpy(stamp, wh_digest_hex(&d), 16);
    stamp[16] = '\0';
    for (int i = 0; i < 4; i++) {
        wh_digest_of(&d, WH_DIGEST_SHA256, sids[i], strlen(sids[i]));
        snprintf(keys[i], sizeof(keys[i]), "%s", wh_digest_hex(&d));
        assert_int_equal(wh_db_session_add(w->db, keys[i], w->bob, stamp, times[i][0],
                                           times[i][2], 0), 0);
        if (times[i][1] != times[i][0])
            assert_int_equal(wh_db_session_touch(w->db, keys[i], times[i][1]), 0);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(wh_acl_session_get(w->acl, sids[i], &who, csrf), WH_ENOTFOUND);
        assert_int_equal(wh_db_session_get(w->db, keys[i], &row), WH_ENOTFOUND);
    }
    assert_int_equal(wh_acl_session_get(w->acl, sids[2], &who, csrf), 0);
    assert_string_equal(who.name, "bob");
    assert_int_equal(wh_db_session_get(w->db, keys[2], &row), 0);
    assert_true(row.seen_ms >= now);
    assert_int_equal(wh_acl_session_get(w->acl, sids[3], &who, csrf), 0);
    assert_int_equal(wh_db_session_get(w->db, keys[3], &row), 0);
    assert_int_equal(row.seen_ms, now - 1000);
}

/* Cookie values by name and occurrence. */
static void test_acl__cookie(void **state)
{
    char v[16];
    (void)state;
    assert_true(wh_acl_cookie("sid=abc", "sid", 0, v, sizeof(v)));
    assert_string_equal(v, "abc");
    assert_true(wh_acl_cookie("a=1; sid=x2 ;b=3", "sid", 0, v, sizeof(v)));
    assert_string_equal(v, "x2");
    assert_true(wh_acl_cookie("xsid=1; sid=2; sid=3", "sid", 0, v, sizeof(v)));
    assert_string_equal(v, "2");
    assert_true(wh_acl_cookie("xsid=1; sid=2; sid=3", "sid", 1, v, sizeof(v)));
    assert_string_equal(v, "3");
    assert_false(wh_acl_cookie("xsid=1; sid=2; sid=3", "sid", 2, v, sizeof(v)));
    assert_false(wh_acl_cookie("sid=", "sid", 0, v, sizeof(v)));
    assert_false(wh_acl_cookie("sid", "sid", 0, v, sizeof(v)));
    assert_false(wh_acl_cookie("sidx=1", "sid", 0, v, sizeof(v)));
    assert_false(wh_acl_cookie("sid=0123456789abcdef", "sid", 0, v, sizeof(v)));
    assert_false(wh_acl_cookie(NULL, "sid", 0, v, sizeof(v)));
    assert_false(wh_acl_cookie("", "sid", 0, v, sizeof(v)));
    assert_false(wh_acl_cookie(";;; ;", "sid", 0, v, sizeof(v)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_acl__sessions, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_acl__session_lifetimes, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_acl__sessions_capped_per_user, world_setup,
                                        world_teardown),
        cmocka_unit_test(test_acl__cookie),
        cmocka_unit_test_setup_teardown(test_acl__blob_source_by_role, world_setup,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(test_acl__blob_source_by_token, world_setup,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(test_acl__token_revoked, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_acl__token_cache_keeps_colliding_clients, world_setup,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(test_acl__token_cache_evicts_expired_first, world_setup,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(test_acl__holders_order_and_limits, world_setup,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(test_acl__robot_perms_valid, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_acl__robot_perms_granted, world_setup,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(test_acl__role_grants, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_acl__writes_all_or_nothing, world_setup,
                                        world_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
