/*
 * Unit tests for auth/: password hashes and rules, secrets, the signing key
 * and its libtrust kid, token signing and every way verification must refuse,
 * scopes, Basic credentials, the RBAC matrix (a table below that mirrors
 * Harbor's role policies line by line) and the login throttle on a fake clock.
 * Tokens the library would never produce are forged here with the test key,
 * read straight from its PEM file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>

#include "auth/auth.h"
#include "db/db.h"

#define NOW 1700000000

struct fixture {
    char dir[64];
    char keydir[96];
    char otherdir[96];
    wh_auth_keys *keys;
    wh_auth_keys *other;
    EVP_PKEY *priv; /* the same key as `keys`, for forging */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char path[160];
    FILE *fp;

    snprintf(f->dir, sizeof(f->dir), "/tmp/wharf-unit-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->keydir, sizeof(f->keydir), "%s/keys", f->dir);
    snprintf(f->otherdir, sizeof(f->otherdir), "%s/other", f->dir);
    if (wh_auth_keys_load_or_create(&f->keys, f->keydir) < 0 ||
        wh_auth_keys_load_or_create(&f->other, f->otherdir) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/token.key", f->keydir);
    if (!(fp = fopen(path, "r")))
        return -1;
    f->priv = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
    fclose(fp);
    if (!f->priv)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    wh_auth_keys_free(f->keys);
    wh_auth_keys_free(f->other);
    EVP_PKEY_free(f->priv);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* ------------------------------------------------------------ passwords */

static void test_auth__password_hash_verify(void **state)
{
    (void)state;
    char h1[WH_AUTH_HASH_MAX], h2[WH_AUTH_HASH_MAX], bad[WH_AUTH_HASH_MAX + 32];
    char small[40];

    assert_int_equal(wh_auth_password_hash(h1, sizeof(h1), "Harbor12345"), 0);
    assert_int_equal(wh_auth_password_hash(h2, sizeof(h2), "Harbor12345"), 0);
    assert_true(strncmp(h1, "$argon2id$v=19$m=7168,t=5,p=1$", 30) == 0);
    assert_string_not_equal(h1, h2); /* fresh salt each time */
    assert_int_equal(wh_auth_password_verify(h1, "Harbor12345"), 0);
    assert_int_equal(wh_auth_password_verify(h2, "Harbor12345"), 0);
    assert_int_equal(wh_auth_password_hash(small, sizeof(small), "x"), WH_ETOOBIG);

    static const char *const wrong[] = {"harbor12345", "Harbor1234", "Harbor123456", "", "Harbor12345 "};
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++)
        assert_int_equal(wh_auth_password_verify(h1, wrong[i]), WH_EDENIED);

    /* Tampered encodings: each must fail, none may crash or allocate wildly. */
    size_t n = strlen(h1);
    char *salt = strrchr(h1, '$');
    const char *cases[] = {
        "",
        "$argon2id$",
        "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$AAAA",
        "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$"
        "vfUzCGbtqvxoLDTgx3xjXG+9tXYO4jR7u6oZ0kqG8gk",
        "$argon2id$v=19$m=19456,t=100,p=1$c2FsdHNhbHRzYWx0c2FsdA$"
        "vfUzCGbtqvxoLDTgx3xjXG+9tXYO4jR7u6oZ0kqG8gk",
        "$argon2id$v=19$m=19456,t=2,p=0$c2FsdHNhbHRzYWx0c2FsdA$AAAA",
        "$argon2id$v=19$m=019456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAA",
        "$argon2id$v=19$m=19456,t=2,p=1$",
        "$argon2id$v=16$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAA",
        "plaintext",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(wh_auth_password_verify(cases[i], "Harbor12345"), WH_EDENIED);

    /* one character changed in the tag, in the salt; truncated tag */
    strcpy(bad, h1);
    bad[n - 2] = bad[n - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(wh_auth_password_verify(bad, "Harbor12345"), WH_EDENIED);
    strcpy(bad, h1);
    bad[(size_t)(salt - h1) - 3] ^= 1;
    assert_int_equal(wh_auth_password_verify(bad, "Harbor12345"), WH_EDENIED);
    strcpy(bad, h1);
    bad[n - 5] = '\0';
    assert_int_equal(wh_auth_password_verify(bad, "Harbor12345"), WH_EDENIED);

    /* unknown user: still refused (after a dummy hash) */
    assert_int_equal(wh_auth_password_verify(NULL, "Harbor12345"), WH_EDENIED);
}

static void test_auth__password_policy(void **state)
{
    (void)state;
    static const struct {
        const char *pw;
        int want;
    } cases[] = {
        {"Harbor12345", 0},
        {"Abcdefg1", 0},         /* exactly 8 */
        {"Abcdef1", WH_EINVALID}, /* 7 */
        {"harbor12345", WH_EINVALID},
        {"HARBOR12345", WH_EINVALID},
        {"HarborHarbor", WH_EINVALID},
        {"", WH_EINVALID},
        {"Pass word 1 with spaces", 0},
        {"Ünïcödé1aA", 0},
        {"12345678", WH_EINVALID},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = wh_auth_password_policy(cases[i].pw);
        if (rc != cases[i].want)
            fail_msg("policy(\"%s\") = %d, want %d", cases[i].pw, rc, cases[i].want);
        if (rc < 0)
            assert_string_equal(wh_error_msg(), WH_AUTH_PASSWORD_POLICY_MSG);
    }
    char longpw[200];
    memset(longpw, 'a', sizeof(longpw));
    memcpy(longpw, "A1", 2);
    longpw[128] = '\0';
    assert_int_equal(wh_auth_password_policy(longpw), 0);
    longpw[128] = 'a';
    longpw[129] = '\0';
    assert_int_equal(wh_auth_password_policy(longpw), WH_EINVALID);
}

static void test_auth__secrets(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int want;
    } cases[] = {
        {"Abcdefg1", 0},
        {"Abcdef1", WH_EINVALID},
        {"abcdefg1", WH_EINVALID},
        {"ABCDEFG1", WH_EINVALID},
        {"Abcdefgh", WH_EINVALID},
        {"", WH_EINVALID},
        {"Abc-def_1!", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(wh_auth_secret_policy(cases[i].s), cases[i].want);
    char big[140];
    memset(big, 'x', sizeof(big));
    memcpy(big, "A1", 2);
    big[128] = '\0';
    assert_int_equal(wh_auth_secret_policy(big), 0);
    big[128] = 'x';
    big[129] = '\0';
    assert_int_equal(wh_auth_secret_policy(big), WH_EINVALID);

    char prev[WH_AUTH_SECRET_LEN + 1] = "";
    for (int i = 0; i < 200; i++) {
        char s[WH_AUTH_SECRET_LEN + 1];
        wh_auth_secret_new(s);
        assert_int_equal(strlen(s), WH_AUTH_SECRET_LEN);
        assert_int_equal(strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"),
                         WH_AUTH_SECRET_LEN);
        assert_int_equal(wh_auth_secret_policy(s), 0);
        assert_string_not_equal(s, prev);
        strcpy(prev, s);
    }
}

static void test_auth__consttime_eq(void **state)
{
    (void)state;
    static const struct {
        const char *a, *b;
        bool eq;
    } cases[] = {
        {"", "", true},          {"abc", "abc", true}, {"abc", "abd", false},
        {"abc", "abcd", false},  {"", "a", false},     {"secret", "Secret", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(wh_auth_consttime_eq(cases[i].a, strlen(cases[i].a), cases[i].b,
                                              strlen(cases[i].b)),
                         cases[i].eq);
}

/* Lengths are explicit: bytes past a NUL count, a prefix is not equal, and a
 * difference anywhere in a long buffer (first, middle, last byte) is seen. */
static void test_auth__consttime_eq_bytes(void **state)
{
    (void)state;
    enum { N = 4096 };
    static unsigned char a[N], b[N];

    assert_true(wh_auth_consttime_eq("a\0b", 3, "a\0b", 3));
    assert_false(wh_auth_consttime_eq("a\0b", 3, "a\0c", 3));
    assert_false(wh_auth_consttime_eq("a\0b", 3, "a", 1));
    assert_false(wh_auth_consttime_eq("a", 1, "a\0", 2));
    assert_true(wh_auth_consttime_eq("", 0, "", 0));
    assert_true(wh_auth_consttime_eq_n("a\0b", "a\0b", 3));
    assert_false(wh_auth_consttime_eq_n("a\0b", "a\0c", 3));
    assert_true(wh_auth_consttime_eq_n("x", "y", 0));
    for (size_t i = 0; i < N; i++)
        a[i] = b[i] = (unsigned char)(i * 131 + 7);
    assert_true(wh_auth_consttime_eq(a, N, b, N));
    assert_false(wh_auth_consttime_eq(a, N, b, N - 1));
    assert_false(wh_auth_consttime_eq(a, N - 1, b, N));
    const size_t at[] = {0, 31, 32, N / 2, N - 1};
    for (size_t k = 0; k < sizeof(at) / sizeof(at[0]); k++) {
        b[at[k]] ^= 0x01;
        assert_false(wh_auth_consttime_eq(a, N, b, N));
        assert_false(wh_auth_consttime_eq(b, N, a, N));
        assert_false(wh_auth_consttime_eq_n(a, b, N));
        assert_false(wh_auth_consttime_eq_n(b, a, N));
        b[at[k]] ^= 0x01;
        assert_true(wh_auth_consttime_eq(a, N, b, N));
        assert_true(wh_auth_consttime_eq_n(a, b, N));
    }
    for (unsigned x = 0; x < 256; x++)
        for (unsigned y = 0; y < 256; y++) {
            unsigned char cx = (unsigned char)x, cy = (unsigned char)y;
            if (wh_auth_consttime_eq(&cx, 1, &cy, 1) != (x == y))
                fail_msg("consttime_eq(%02x, %02x) is wrong", x, y);
        }
}

/* ------------------------------------------------------------ keys */

/* A fixed key whose libtrust id was computed independently (openssl pkey
 * -pubout -outform DER | sha256, first 30 bytes, base32, groups of 4). */
static const char fixed_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg591PGthNyei0jSBO\n"
    "zwlGpqRZtb5sgrtPQyOwkR+dsu2hRANCAAT+ET71wzqFA+Wstp8k0EBAfu1sCT6N\n"
    "cDXSqfPNiHROq5mY4G6vLsR0eYybj+pwPyLinL4lMhi4/2QPJF71f5kx\n"
    "-----END PRIVATE KEY-----\n";
static const char fixed_kid[] = "NXC6:B6LR:AORF:BPSX:VF2C:HIEO:LI2W:D3HJ:6WGH:2LF6:J2CO:5DA4";

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(chmod(path, 0600), 0);
}

static void test_auth__keys_create_reload(void **state)
{
    struct fixture *f = *state;
    char path[200];
    struct stat st;
    wh_auth_keys *again = NULL;
    struct wh_token_claims c, v;
    char *tok = NULL;
    const char *kid = wh_auth_keys_kid(f->keys);

    /* format: 12 groups of 4 base32 characters */
    assert_int_equal(strlen(kid), 59);
    for (int i = 0; i < 59; i++) {
        if (i % 5 == 4)
            assert_int_equal(kid[i], ':');
        else
            assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", kid[i]));
    }
    assert_string_not_equal(kid, wh_auth_keys_kid(f->other));
    assert_non_null(strstr(wh_auth_keys_public_pem(f->keys), "BEGIN PUBLIC KEY"));

    snprintf(path, sizeof(path), "%s/token.key", f->keydir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    assert_int_equal(wh_auth_claims_init(&c, "admin", NOW, 1800), 0);
    assert_int_equal(wh_auth_token_sign(&tok, f->keys, &c), 0);
    assert_int_equal(wh_auth_keys_load_or_create(&again, f->keydir), 0);
    assert_string_equal(wh_auth_keys_kid(again), kid);
    assert_int_equal(
        wh_auth_token_verify(&v, again, tok, strlen(tok), WH_AUTH_ISSUER, WH_AUTH_SERVICE, NOW), 0);
    assert_string_equal(v.sub, "admin");
    wh_auth_keys_free(again);
    again = NULL;
    free(tok);

    /* the libtrust id of a known key */
    snprintf(path, sizeof(path), "%s/fixed", f->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/fixed/token.key", f->dir);
    write_file(path, fixed_pem);
    snprintf(path, sizeof(path), "%s/fixed", f->dir);
    assert_int_equal(wh_auth_keys_load_or_create(&again, path), 0);
    assert_string_equal(wh_auth_keys_kid(again), fixed_kid);
    wh_auth_keys_free(again);
    again = NULL;

    /* not a P-256 key */
    static const char *const junk[] = {
        "not a key\n",
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEICDgTeplBcZ1cxNhyKNOFrONCDRJN+0kiApH19kz8SF8\n"
        "-----END PRIVATE KEY-----\n", /* Ed25519 */
        "-----BEGIN PRIVATE KEY-----\n"
        "MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDCyUFWfZzRIILoxMlvp\n"
        "gvnMg72QNrv16NSxlnB4yoegZLeeRvgDun0fNKz4NiEADz2hZANiAARosNY1+qMT\n"
        "Qlx+4J4eVUfVEepfejIazBNwUsJs8c0jZemnSeOFq0NKcoQyOgPLPn0gzOChS62j\n"
        "3iBDL0Kbl7d84rbWgqKPBBM05R9l3WBVxfjNb2AsCFkL+UKQsh6LNkA=\n"
        "-----END PRIVATE KEY-----\n", /* ECDSA P-384 */
    };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        snprintf(path, sizeof(path), "%s/fixed/token.key", f->dir);
        write_file(path, junk[i]);
        snprintf(path, sizeof(path), "%s/fixed", f->dir);
        assert_int_equal(wh_auth_keys_load_or_create(&again, path), WH_EINVALID);
        assert_null(again);
        if (i > 0)
            assert_non_null(strstr(wh_error_msg(), "not an ECDSA P-256 key"));
    }
}

/* ------------------------------------------------------------ tokens */

static void sample_claims(struct wh_token_claims *c)
{
    assert_int_equal(wh_auth_claims_init(c, "alice", NOW, 1800), 0);
    strcpy(c->access[0].type, "repository");
    strcpy(c->access[0].name, "library/nginx");
    c->access[0].actions = WH_ACT_PULL | WH_ACT_PUSH;
    strcpy(c->access[1].type, "registry");
    strcpy(c->access[1].name, "catalog");
    c->access[1].actions = WH_ACT_ALL;
    strcpy(c->access[2].type, "repository");
    strcpy(c->access[2].name, "library/empty");
    c->access[2].actions = 0;
    c->naccess = 3;
}

static void test_auth__token_round_trip(void **state)
{
    struct fixture *f = *state;
    struct wh_token_claims c, v;
    char *tok = NULL;

    sample_claims(&c);
    assert_int_equal(wh_auth_token_sign(&tok, f->keys, &c), 0);
    assert_int_equal(
        wh_auth_token_verify(&v, f->keys, tok, strlen(tok), WH_AUTH_ISSUER, WH_AUTH_SERVICE, NOW),
        0);
    assert_string_equal(v.iss, WH_AUTH_ISSUER);
    assert_string_equal(v.aud, WH_AUTH_SERVICE);
    assert_string_equal(v.sub, "alice");
    assert_string_equal(v.jti, c.jti);
    assert_int_equal(strlen(v.jti), 16);
    assert_int_equal(v.iat, NOW);
    assert_int_equal(v.nbf, NOW);
    assert_int_equal(v.exp, NOW + 1800);
    assert_int_equal(v.naccess, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(v.access[i].type, c.access[i].type);
        assert_string_equal(v.access[i].name, c.access[i].name);
        assert_int_equal(v.access[i].actions, c.access[i].actions);
    }

    /* the whole time window, leeway included */
    static const struct {
        int64_t now;
        int want;
    } times[] = {
        {NOW - 30, 0}, {NOW - 31, WH_EDENIED}, {NOW + 1800 + 29, 0}, {NOW + 1800 + 30, WH_EDENIED},
    };
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++)
        assert_int_equal(wh_auth_token_verify(&v, f->keys, tok, strlen(tok), WH_AUTH_ISSUER,
                                              WH_AUTH_SERVICE, times[i].now),
                         times[i].want);

    static const struct {
        const char *type, *name;
        unsigned act;
        bool want;
    } allows[] = {
        {"repository", "library/nginx", WH_ACT_PULL, true},
        {"repository", "library/nginx", WH_ACT_PUSH, true},
        {"repository", "library/nginx", WH_ACT_PULL | WH_ACT_PUSH, true},
        {"repository", "library/nginx", WH_ACT_DELETE, false},
        {"repository", "library/nginx", WH_ACT_PULL | WH_ACT_DELETE, false},
        {"repository", "library/nginx", 0, false},
        {"repository", "library/ngin", WH_ACT_PULL, false},
        {"repository", "library/nginx/sub", WH_ACT_PULL, false},
        {"registry", "library/nginx", WH_ACT_PULL, false},
        {"registry", "catalog", WH_ACT_ALL, true},
        {"registry", "catalog", WH_ACT_PULL, true}, /* "*" grants any action */
        {"repository", "library/empty", WH_ACT_PULL, false},
    };
    for (size_t i = 0; i < sizeof(allows) / sizeof(allows[0]); i++)
        if (wh_auth_token_allows(&c, allows[i].type, allows[i].name, allows[i].act) !=
            allows[i].want)
            fail_msg("allows case %zu", i);
    free(tok);

    /* sign refuses what verify would refuse */
    sample_claims(&c);
    c.naccess = WH_TOKEN_ACCESS_MAX + 1;
    assert_int_equal(wh_auth_token_sign(&tok, f->keys, &c), WH_EINVALID);
    sample_claims(&c);
    strcpy(c.sub, "\xff\xfe");
    assert_int_equal(wh_auth_token_sign(&tok, f->keys, &c), WH_EINVALID);
    sample_claims(&c);
    c.naccess = WH_TOKEN_ACCESS_MAX;
    for (size_t i = 0; i < WH_TOKEN_ACCESS_MAX; i++) {
        strcpy(c.access[i].type, "repository");
        memset(c.access[i].name, '"', sizeof(c.access[i].name) - 1); /* escapes double it */
        c.access[i].name[sizeof(c.access[i].name) - 1] = '\0';
        c.access[i].actions = WH_ACT_PULL;
    }
    assert_int_equal(wh_auth_token_sign(&tok, f->keys, &c), WH_ETOOBIG);
    /* the largest plain token fits */
    for (size_t i = 0; i < WH_TOKEN_ACCESS_MAX; i++)
        memset(c.access[i].name, 'a', sizeof(c.access[i].name) - 1);
    assert_int_equal(wh_auth_token_sign(&tok, f->keys, &c), 0);
    assert_int_equal(
        wh_auth_token_verify(&v, f->keys, tok, strlen(tok), WH_AUTH_ISSUER, WH_AUTH_SERVICE, NOW),
        0);
    assert_int_equal(v.naccess, WH_TOKEN_ACCESS_MAX);
    free(tok);
}

/* Refresh tokens carry the account they are bound to (claim wharf_bind) and
 * their own audience, which an access-token check refuses. */
static void test_auth__token_bind(void **state)
{
    struct fixture *f = *state;
    struct wh_token_claims c, v;
    char *tok = NULL;

    assert_int_equal(wh_auth_claims_init(&c, "alice", NOW, 3600), 0);
    strcpy(c.aud, WH_AUTH_REFRESH_AUDIENCE);
    strcpy(c.bind, "user:42:0123456789abcdef");
    assert_int_equal(wh_auth_token_sign(&tok, f->keys, &c), 0);
    assert_int_equal(wh_auth_token_verify(&v, f->keys, tok, strlen(tok), WH_AUTH_ISSUER,
                                          WH_AUTH_REFRESH_AUDIENCE, NOW),
                     0);
    assert_string_equal(v.bind, "user:42:0123456789abcdef");
    assert_string_equal(v.aud, WH_AUTH_REFRESH_AUDIENCE);
    assert_int_equal(v.naccess, 0);
    /* not an access token */
    assert_int_equal(
        wh_auth_token_verify(&v, f->keys, tok, strlen(tok), WH_AUTH_ISSUER, WH_AUTH_SERVICE, NOW),
        WH_EDENIED);
    free(tok);
    /* an access token has no binding */
    sample_claims(&c);
    assert_int_equal(wh_auth_token_sign(&tok, f->keys, &c), 0);
    assert_int_equal(
        wh_auth_token_verify(&v, f->keys, tok, strlen(tok), WH_AUTH_ISSUER, WH_AUTH_SERVICE, NOW),
        0);
    assert_string_equal(v.bind, "");
    free(tok);
    /* sign refuses a binding that is not terminated or not UTF-8 */
    sample_claims(&c);
    memset(c.bind, 'x', sizeof(c.bind));
    assert_int_equal(wh_auth_token_sign(&tok, f->keys, &c), WH_EINVALID);
    sample_claims(&c);
    strcpy(c.bind, "\xff");
    assert_int_equal(wh_auth_token_sign(&tok, f->keys, &c), WH_EINVALID);
}

/* Builds "b64(hdr).b64(claims).b64(sig)" signed with `key` (ES256, raw r||s),
 * or with HMAC-SHA256 keyed by `hmac_key`, or unsigned (empty part) when both
 * are NULL. The caller frees the result. */
static char *forge(const char *hdr, const char *claims, EVP_PKEY *key, const char *hmac_key)
{
    char *out = malloc(3 * WH_TOKEN_MAX);
    unsigned char sig[64], der[80];
    size_t o, siglen = 0, derlen = sizeof(der);

    assert_int_equal(wh_auth_b64url_encode(out, WH_TOKEN_MAX, hdr, strlen(hdr)), 0);
    o = strlen(out);
    out[o++] = '.';
    assert_int_equal(wh_auth_b64url_encode(out + o, WH_TOKEN_MAX, claims, strlen(claims)), 0);
    o += strlen(out + o);
    if (key) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        const unsigned char *p = der;
        assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
        assert_int_equal(EVP_DigestSign(ctx, der, &derlen, (unsigned char *)out, o), 1);
        EVP_MD_CTX_free(ctx);
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
        assert_non_null(es);
        assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32), 32);
        assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32), 32);
        ECDSA_SIG_free(es);
        siglen = 64;
    } else if (hmac_key) {
        assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, hmac_key, strlen(hmac_key),
                                  (unsigned char *)out, o, sig, sizeof(sig), &siglen));
    }
    out[o++] = '.';
    assert_int_equal(wh_auth_b64url_encode(out + o, WH_TOKEN_MAX, sig, siglen), 0);
    return out;
}

#define HDR_OK "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}"
#define CLAIMS_OK                                                                              \
    "{\"iss\":\"wharf-token-issuer\",\"sub\":\"alice\",\"aud\":\"wharf\",\"exp\":%d,\"nbf\":%d," \
    "\"iat\":%d,\"jti\":\"0123456789abcdef\",\"access\":[{\"type\":\"repository\","          \
    "\"name\":\"p/r\",\"actions\":[\"pull\"]}]}"

enum signer { ES_TEST_KEY, ES_OTHER_KEY, HS_PUBLIC_PEM, UNSIGNED };

static void test_auth__token_rejections(void **state)
{
    struct fixture *f = *state;
    EVP_PKEY *other_priv = NULL;
    char path[200], ok_claims[512], ok_hdr[160];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/token.key", f->otherdir);
    assert_non_null(fp = fopen(path, "r"));
    other_priv = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(other_priv);
    snprintf(ok_hdr, sizeof(ok_hdr), HDR_OK, wh_auth_keys_kid(f->keys));
    snprintf(ok_claims, sizeof(ok_claims), CLAIMS_OK, NOW + 300, NOW, NOW);

    /* hdr/claims NULL: the good ones. want 0 or WH_EDENIED with `why` in the message. */
    static const struct {
        const char *name;
        const char *hdr, *claims;
        enum signer signer;
        const char *why;
    } cases[] = {
        {"control: forged with the test key verifies", NULL, NULL, ES_TEST_KEY, NULL},
        {"another key", NULL, NULL, ES_OTHER_KEY, "bad signature"},
        {"alg none", "{\"alg\":\"none\",\"typ\":\"JWT\"}", NULL, UNSIGNED, "alg none"},
        {"alg None", "{\"alg\":\"None\"}", NULL, UNSIGNED, "alg none"},
        {"alg none with our kid", "{\"alg\":\"none\",\"kid\":\"@KID@\"}", NULL, UNSIGNED,
         "alg none"},
        {"HS256 keyed with the public key", "{\"alg\":\"HS256\",\"kid\":\"@KID@\"}", NULL,
         HS_PUBLIC_PEM, "HS256 refused"},
        {"RS256", "{\"alg\":\"RS256\",\"kid\":\"@KID@\"}", NULL, ES_TEST_KEY, "RS256 refused"},
        {"ES384", "{\"alg\":\"ES384\",\"kid\":\"@KID@\"}", NULL, ES_TEST_KEY, "not ES256"},
        {"alg not a string", "{\"alg\":1,\"kid\":\"@KID@\"}", NULL, ES_TEST_KEY, "no alg"},
        {"no kid", "{\"alg\":\"ES256\"}", NULL, ES_TEST_KEY, "unknown kid"},
        {"wrong kid", "{\"alg\":\"ES256\",\"kid\":\"AAAA:BBBB\"}", NULL, ES_TEST_KEY,
         "unknown kid"},
        {"crit", "{\"alg\":\"ES256\",\"kid\":\"@KID@\",\"crit\":[\"b64\"]}", NULL, ES_TEST_KEY,
         "crit"},
        {"header array", "[\"ES256\"]", NULL, ES_TEST_KEY, "header is not a JSON object"},
        {"header duplicate alg", "{\"alg\":\"none\",\"alg\":\"ES256\",\"kid\":\"@KID@\"}", NULL,
         ES_TEST_KEY, "header is not a JSON object"},
        {"claims not JSON", NULL, "{\"iss\":", ES_TEST_KEY, "claims is not a JSON object"},
        {"expired", NULL,
         "{\"iss\":\"wharf-token-issuer\",\"aud\":\"wharf\",\"exp\":1699999970}", ES_TEST_KEY,
         "expired"},
        {"expired long ago", NULL, "{\"iss\":\"wharf-token-issuer\",\"aud\":\"wharf\",\"exp\":0}",
         ES_TEST_KEY, "expired"},
        {"no exp", NULL, "{\"iss\":\"wharf-token-issuer\",\"aud\":\"wharf\"}", ES_TEST_KEY,
         "no exp"},
        {"exp a string", NULL,
         "{\"iss\":\"wharf-token-issuer\",\"aud\":\"wharf\",\"exp\":\"1800000000\"}", ES_TEST_KEY,
         "bad exp"},
        {"exp fractional", NULL,
         "{\"iss\":\"wharf-token-issuer\",\"aud\":\"wharf\",\"exp\":1800000000.5}", ES_TEST_KEY,
         NULL},
        {"nbf in the future", NULL,
         "{\"iss\":\"wharf-token-issuer\",\"aud\":\"wharf\",\"exp\":1800000000,"
         "\"nbf\":1700000031}",
         ES_TEST_KEY, "not yet valid"},
        {"nbf within leeway", NULL,
         "{\"iss\":\"wharf-token-issuer\",\"aud\":\"wharf\",\"exp\":1800000000,"
         "\"nbf\":1700000030}",
         ES_TEST_KEY, NULL},
        {"wrong aud", NULL,
         "{\"iss\":\"wharf-token-issuer\",\"aud\":\"harbor-registry\",\"exp\":1800000000}",
         ES_TEST_KEY, "audience mismatch"},
        {"aud array with ours", NULL,
         "{\"iss\":\"wharf-token-issuer\",\"aud\":[\"x\",\"wharf\"],\"exp\":1800000000}",
         ES_TEST_KEY, NULL},
        {"aud array without ours", NULL,
         "{\"iss\":\"wharf-token-issuer\",\"aud\":[\"x\",\"wharfx\"],\"exp\":1800000000}",
         ES_TEST_KEY, "audience mismatch"},
        {"aud array with a number", NULL,
         "{\"iss\":\"wharf-token-issuer\",\"aud\":[\"wharf\",1],\"exp\":1800000000}", ES_TEST_KEY,
         "bad aud"},
        {"no aud", NULL, "{\"iss\":\"wharf-token-issuer\",\"exp\":1800000000}", ES_TEST_KEY,
         "no aud"},
        {"wrong iss", NULL, "{\"iss\":\"harbor-token-issuer\",\"aud\":\"wharf\",\"exp\":1800000000}",
         ES_TEST_KEY, "issuer mismatch"},
        {"no iss", NULL, "{\"aud\":\"wharf\",\"exp\":1800000000}", ES_TEST_KEY, "no iss"},
        {"sub too long", NULL,
         "{\"iss\":\"wharf-token-issuer\",\"aud\":\"wharf\",\"exp\":1800000000,\"sub\":\""
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
         ES_TEST_KEY, "bad sub"},
        {"wharf_bind not a string", NULL,
         "{\"iss\":\"wharf-token-issuer\",\"aud\":\"wharf\",\"exp\":1800000000,\"wharf_bind\":7}",
         ES_TEST_KEY, "bad wharf_bind"},
        {"wharf_bind too long", NULL,
         "{\"iss\":\"wharf-token-issuer\",\"aud\":\"wharf\",\"exp\":1800000000,\"wharf_bind\":\""
         "user:1:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef01"
         "0123456789abcdef0123456789abcdef\"}",
         ES_TEST_KEY, "bad wharf_bind"},
        {"NUL inside a string", NULL,
         "{\"iss\":\"wharf-token-issuer\\u0000x\",\"aud\":\"wharf\",\"exp\":1800000000}",
         ES_TEST_KEY, "claims is not a JSON object"},
        {"access not an array", NULL,
         "{\"iss\":\"wharf-token-issuer\",\"aud\":\"wharf\",\"exp\":1800000000,\"access\":{}}",
         ES_TEST_KEY, "bad access"},
        {"access entry without name", NULL,
         "{\"iss\":\"wharf-token-issuer\",\"aud\":\"wharf\",\"exp\":1800000000,"
         "\"access\":[{\"type\":\"repository\",\"actions\":[]}]}",
         ES_TEST_KEY, "no name"},
        {"unknown actions dropped", NULL,
         "{\"iss\":\"wharf-token-issuer\",\"aud\":\"wharf\",\"exp\":1800000000,"
         "\"access\":[{\"type\":\"repository\",\"name\":\"p/r\",\"actions\":[\"fly\",\"pull\"]}]}",
         ES_TEST_KEY, NULL},
        {"action not a string", NULL,
         "{\"iss\":\"wharf-token-issuer\",\"aud\":\"wharf\",\"exp\":1800000000,"
         "\"access\":[{\"type\":\"repository\",\"name\":\"p/r\",\"actions\":[1]}]}",
         ES_TEST_KEY, "bad action"},
        {"too many access entries", NULL, "@17@", ES_TEST_KEY, "too many access entries"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char hdr[512], claims[4096];
        const char *h = cases[i].hdr ? cases[i].hdr : ok_hdr;
        const char *kidat = strstr(h, "@KID@");
        struct wh_token_claims v;
        EVP_PKEY *key = NULL;
        const char *hmac = NULL;

        if (kidat)
            snprintf(hdr, sizeof(hdr), "%.*s%s%s", (int)(kidat - h), h, wh_auth_keys_kid(f->keys),
                     kidat + 5);
        else
            snprintf(hdr, sizeof(hdr), "%s", h);
        if (!cases[i].claims) {
            snprintf(claims, sizeof(claims), "%s", ok_claims);
        } else if (strcmp(cases[i].claims, "@17@") == 0) {
            size_t o = (size_t)snprintf(claims, sizeof(claims),
                                        "{\"iss\":\"wharf-token-issuer\",\"aud\":\"wharf\","
                                        "\"exp\":1800000000,\"access\":[");
            for (int j = 0; j < 17; j++)
                o += (size_t)snprintf(claims + o, sizeof(claims) - o,
                                      "%s{\"type\":\"repository\",\"name\":\"p/r%d\","
                                      "\"actions\":[\"pull\"]}",
                                      j ? "," : "", j);
            snprintf(claims + o, sizeof(claims) - o, "]}");
        } else {
            snprintf(claims, sizeof(claims), "%s", cases[i].claims);
        }
        switch (cases[i].signer) {
        case ES_TEST_KEY: key = f->priv; break;
        case ES_OTHER_KEY: key = other_priv; break;
        case HS_PUBLIC_PEM: hmac = wh_auth_keys_public_pem(f->keys); break;
        case UNSIGNED: break;
        }
        char *tok = forge(hdr, claims, key, hmac);
        int rc = wh_auth_token_verify(&v, f->keys, tok, strlen(tok), WH_AUTH_ISSUER,
                                      WH_AUTH_SERVICE, NOW);
        int want = cases[i].why ? WH_EDENIED : 0;
        if (rc != want || (cases[i].why && !strstr(wh_error_msg(), cases[i].why)))
            fail_msg("case \"%s\": got %d (%s), want %d (%s)", cases[i].name, rc, wh_error_msg(),
                     want, cases[i].why ? cases[i].why : "");
        if (strcmp(cases[i].name, "unknown actions dropped") == 0)
            assert_int_equal(v.access[0].actions, WH_ACT_PULL);
        free(tok);
    }
    EVP_PKEY_free(other_priv);
}

/* Tokens damaged after signing, and byte strings that are no tokens at all. */
static void test_auth__token_tampering_and_garbage(void **state)
{
    struct fixture *f = *state;
    struct wh_token_claims c, v;
    char *tok = NULL, *copy;
    size_t n;

    sample_claims(&c);
    assert_int_equal(wh_auth_token_sign(&tok, f->keys, &c), 0);
    n = strlen(tok);
    const char *dot1 = strchr(tok, '.'), *dot2 = strrchr(tok, '.');

    /* Every single-character change anywhere must be refused. */
    copy = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        static const char repl[] = "AQgw-_.=";
        for (const char *r = repl; *r; r++) {
            if (tok[i] == *r)
                continue;
            memcpy(copy, tok, n + 1);
            copy[i] = *r;
            if (wh_auth_token_verify(&v, f->keys, copy, n, WH_AUTH_ISSUER, WH_AUTH_SERVICE, NOW) !=
                WH_EDENIED)
                fail_msg("changing byte %zu to '%c' was accepted", i, *r);
        }
    }
    /* flipping one bit of the signature */
    memcpy(copy, tok, n + 1);
    copy[(size_t)(dot2 - tok) + 5] ^= 1;
    assert_int_equal(wh_auth_token_verify(&v, f->keys, copy, n, WH_AUTH_ISSUER, WH_AUTH_SERVICE,
                                          NOW),
                     WH_EDENIED);
    /* truncated, and a prefix of the right length for its header only */
    for (size_t len = 0; len < n; len += 7)
        assert_int_equal(wh_auth_token_verify(&v, f->keys, tok, len, WH_AUTH_ISSUER,
                                              WH_AUTH_SERVICE, NOW),
                         WH_EDENIED);
    assert_int_equal(wh_auth_token_verify(&v, f->keys, tok, (size_t)(dot1 - tok), WH_AUTH_ISSUER,
                                          WH_AUTH_SERVICE, NOW),
                     WH_EDENIED);
    /* the right token for another issuer or audience */
    assert_int_equal(wh_auth_token_verify(&v, f->keys, tok, n, "someone", WH_AUTH_SERVICE, NOW),
                     WH_EDENIED);
    assert_int_equal(wh_auth_token_verify(&v, f->keys, tok, n, WH_AUTH_ISSUER, "harbor-registry",
                                          NOW),
                     WH_EDENIED);
    /* verified against the other key */
    assert_int_equal(wh_auth_token_verify(&v, f->other, tok, n, WH_AUTH_ISSUER, WH_AUTH_SERVICE,
                                          NOW),
                     WH_EDENIED);
    free(copy);

    static const char *const garbage[] = {
        "", ".", "..", "...", "a.b", "a.b.c", "a.b.c.d", "!!!.@@@.###", "eyJ9.e30.AAAA",
        "e30.e30.", "e30.e30.AAAA", "=.=.=", "Bearer x.y.z",
    };
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++)
        assert_int_equal(wh_auth_token_verify(&v, f->keys, garbage[i], strlen(garbage[i]),
                                              WH_AUTH_ISSUER, WH_AUTH_SERVICE, NOW),
                         WH_EDENIED);

    /* oversized: the good token padded past the cap, refused before parsing */
    char *big = malloc(WH_TOKEN_MAX + 2);
    memset(big, 'A', WH_TOKEN_MAX + 1);
    memcpy(big, tok, n);
    big[WH_TOKEN_MAX + 1] = '\0';
    assert_int_equal(wh_auth_token_verify(&v, f->keys, big, WH_TOKEN_MAX + 1, WH_AUTH_ISSUER,
                                          WH_AUTH_SERVICE, NOW),
                     WH_EDENIED);
    assert_non_null(strstr(wh_error_msg(), "too large"));
    free(big);
    free(tok);
}

static void test_auth__b64url(void **state)
{
    (void)state;
    static const struct {
        const char *plain, *enc;
    } vec[] = {
        /* RFC 4648 §10 vectors, unpadded; and the two url-only symbols */
        {"", ""},           {"f", "Zg"},         {"fo", "Zm8"},        {"foo", "Zm9v"},
        {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}, {"\xfb\xff", "-_8"},
    };
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        char enc[32], dec[32];
        size_t n;
        assert_int_equal(wh_auth_b64url_encode(enc, sizeof(enc), vec[i].plain, strlen(vec[i].plain)),
                         0);
        assert_string_equal(enc, vec[i].enc);
        assert_int_equal(wh_auth_b64url_decode(dec, sizeof(dec), &n, enc, strlen(enc)), 0);
        assert_int_equal(n, strlen(vec[i].plain));
        assert_memory_equal(dec, vec[i].plain, n);
    }
    static const char *const bad[] = {"Z", "Zg=", "Zm8=", "Zh", "Zm9", "+/8", "Zm 9", "Zm9v\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char dec[32];
        size_t n;
        assert_int_equal(wh_auth_b64url_decode(dec, sizeof(dec), &n, bad[i], strlen(bad[i])),
                         WH_EINVALID);
    }
    char small[4];
    size_t n;
    assert_int_equal(wh_auth_b64url_encode(small, sizeof(small), "foo", 3), WH_ETOOBIG);
    assert_int_equal(wh_auth_b64url_decode(small, 2, &n, "Zm9v", 4), WH_ETOOBIG);
}

/* ------------------------------------------------------------ scopes and Basic */

static void test_auth__scope_parse(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int rc;
        const char *type, *name;
        unsigned actions;
    } cases[] = {
        {"repository:library/nginx:pull", 0, "repository", "library/nginx", WH_ACT_PULL},
        {"repository:library/nginx:pull,push", 0, "repository", "library/nginx",
         WH_ACT_PULL | WH_ACT_PUSH},
        {"repository:p/r:push,pull,delete,scanner-pull", 0, "repository", "p/r",
         WH_ACT_PULL | WH_ACT_PUSH | WH_ACT_DELETE | WH_ACT_SCANNER_PULL},
        {"registry:catalog:*", 0, "registry", "catalog", WH_ACT_ALL},
        {"repository(plugin):p/r:pull", 0, "repository(plugin)", "p/r", WH_ACT_PULL},
        {"repository:host:5000/p/r:pull", 0, "repository", "host:5000/p/r", WH_ACT_PULL},
        {"repository:p/r:fly,pull,,PUSH", 0, "repository", "p/r", WH_ACT_PULL},
        {"repository:p/r:", 0, "repository", "p/r", 0},
        {"repository:p/r:pull,", 0, "repository", "p/r", WH_ACT_PULL},
        {"repository:p/r", WH_EINVALID, "", "", 0},
        {"repository", WH_EINVALID, "", "", 0},
        {"", WH_EINVALID, "", "", 0},
        {"::pull", WH_EINVALID, "", "", 0},
        {":p/r:pull", WH_EINVALID, "", "", 0},
        {"repository::pull", WH_EINVALID, "", "", 0},
        {"repository:p r:pull", WH_EINVALID, "", "", 0},
        {"repository:p/r:pull\n", WH_EINVALID, "", "", 0},
        {"repositoryrepositoryrepositoryrep:p/r:pull", WH_EINVALID, "", "", 0}, /* type 33 */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct wh_access a;
        int rc = wh_auth_scope_parse(&a, cases[i].in);
        if (rc != cases[i].rc)
            fail_msg("scope \"%s\": %d, want %d", cases[i].in, rc, cases[i].rc);
        if (rc == 0) {
            assert_string_equal(a.type, cases[i].type);
            assert_string_equal(a.name, cases[i].name);
            assert_int_equal(a.actions, cases[i].actions);
        }
    }
    char longname[WH_AUTH_SCOPE_MAX + 40];
    struct wh_access a;
    snprintf(longname, sizeof(longname), "repository:%0256d:pull", 0); /* name of 256 */
    assert_int_equal(wh_auth_scope_parse(&a, longname), WH_EINVALID);
    snprintf(longname, sizeof(longname), "repository:%0255d:pull", 0);
    assert_int_equal(wh_auth_scope_parse(&a, longname), 0);
    assert_int_equal(strlen(a.name), 255);
}

static void test_auth__actions_str(void **state)
{
    (void)state;
    static const struct {
        unsigned actions;
        const char *want;
    } cases[] = {
        {0, ""},
        {WH_ACT_PULL, "pull"},
        {WH_ACT_PUSH | WH_ACT_PULL, "pull,push"},
        {WH_ACT_DELETE, "delete"},
        {WH_ACT_ALL, "*"},
        {WH_ACT_PULL | WH_ACT_PUSH | WH_ACT_DELETE | WH_ACT_SCANNER_PULL | WH_ACT_ALL,
         "pull,push,delete,scanner-pull,*"},
        {1u << 20, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[WH_AUTH_ACTIONS_STR_MAX];
        struct wh_access a;
        char scope[64];
        assert_int_equal(wh_auth_actions_str(buf, sizeof(buf), cases[i].actions), 0);
        assert_string_equal(buf, cases[i].want);
        /* and back */
        snprintf(scope, sizeof(scope), "repository:p/r:%s", buf);
        assert_int_equal(wh_auth_scope_parse(&a, scope), 0);
        assert_int_equal(a.actions, cases[i].actions & 31u);
    }
    char tiny[5];
    assert_int_equal(wh_auth_actions_str(tiny, sizeof(tiny), WH_ACT_PULL), 0);
    assert_int_equal(wh_auth_actions_str(tiny, sizeof(tiny), WH_ACT_PULL | WH_ACT_PUSH),
                     WH_ETOOBIG);
}

static void test_auth__basic_parse(void **state)
{
    (void)state;
    static const struct {
        const char *scheme; /* prefix written before the base64 */
        const char *plain;  /* encoded with the standard alphabet; NULL: use `raw` */
        const char *raw;
        int rc;
        const char *user, *pass;
    } cases[] = {
        {"Basic ", "admin:Harbor12345", NULL, 0, "admin", "Harbor12345"},
        {"basic ", "admin:Harbor12345", NULL, 0, "admin", "Harbor12345"},
        {"BASIC   ", "admin:Harbor12345", NULL, 0, "admin", "Harbor12345"},
        {"Basic ", "robot$proj+ci:s3cr:et:", NULL, 0, "robot$proj+ci", "s3cr:et:"},
        {"Basic ", "u:", NULL, 0, "u", ""},
        {"Basic ", "admin", NULL, WH_EINVALID, NULL, NULL},
        {"Basic ", ":pass", NULL, WH_EINVALID, NULL, NULL},
        {"Basic ", "a\x01" "b:pass", NULL, WH_EINVALID, NULL, NULL},
        {"Basic ", "", NULL, WH_EINVALID, NULL, NULL},
        {"Bearer ", "admin:x", NULL, WH_EINVALID, NULL, NULL},
        {"Basicx ", "admin:x", NULL, WH_EINVALID, NULL, NULL},
        {"", NULL, "Basic", WH_EINVALID, NULL, NULL},
        {"", NULL, "Basic YWRtaW46eA", WH_EINVALID, NULL, NULL},   /* padding missing */
        {"", NULL, "Basic YWRtaW46eA==", 0, "admin", "x"},
        {"", NULL, "Basic YWRtaW46eA== ", 0, "admin", "x"},
        {"", NULL, "Basic YWRta W46eA==", WH_EINVALID, NULL, NULL},
        {"", NULL, "Basic YWRtaW46eB==", WH_EINVALID, NULL, NULL}, /* non-canonical */
        {"", NULL, "Basic !!!!", WH_EINVALID, NULL, NULL},
        {"", NULL, "Basic YTpiAGM=", WH_EINVALID, NULL, NULL},     /* "a:b\0c" */
        {"", NULL, "", WH_EINVALID, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char hdr[512], user[64], pass[64];
        if (cases[i].plain) {
            int o = snprintf(hdr, sizeof(hdr), "%s", cases[i].scheme);
            EVP_EncodeBlock((unsigned char *)hdr + o, (const unsigned char *)cases[i].plain,
                            (int)strlen(cases[i].plain));
        } else {
            snprintf(hdr, sizeof(hdr), "%s", cases[i].raw);
        }
        int rc = wh_auth_basic_parse(user, sizeof(user), pass, sizeof(pass), hdr);
        if (rc != cases[i].rc)
            fail_msg("basic case %zu \"%s\": %d, want %d", i, hdr, rc, cases[i].rc);
        if (rc == 0) {
            assert_string_equal(user, cases[i].user);
            assert_string_equal(pass, cases[i].pass);
        } else {
            assert_string_equal(user, "");
            assert_string_equal(pass, "");
        }
    }
    /* caps: the user and password must fit with their NUL */
    char hdr[128], user[6], pass[4];
    snprintf(hdr, sizeof(hdr), "Basic ");
    EVP_EncodeBlock((unsigned char *)hdr + 6, (const unsigned char *)"12345:123", 9);
    assert_int_equal(wh_auth_basic_parse(user, sizeof(user), pass, sizeof(pass), hdr), 0);
    EVP_EncodeBlock((unsigned char *)hdr + 6, (const unsigned char *)"123456:123", 10);
    assert_int_equal(wh_auth_basic_parse(user, sizeof(user), pass, sizeof(pass), hdr), WH_EINVALID);
    EVP_EncodeBlock((unsigned char *)hdr + 6, (const unsigned char *)"12345:1234", 10);
    assert_int_equal(wh_auth_basic_parse(user, sizeof(user), pass, sizeof(pass), hdr), WH_EINVALID);
    assert_int_equal(wh_auth_basic_parse(user, sizeof(user), pass, sizeof(pass), NULL), WH_EINVALID);
    /* a header far over the internal cap */
    char *huge = malloc(8192);
    memcpy(huge, "Basic ", 6);
    memset(huge + 6, 'Q', 8180);
    huge[8186] = '\0';
    assert_int_equal(wh_auth_basic_parse(user, sizeof(user), pass, sizeof(pass), huge),
                     WH_EINVALID);
    free(huge);
}

/* ------------------------------------------------------------ RBAC */

/*
 * Harbor's rbac_role.go, one entry per policy row: resource, actions, the roles that
 * have them (A projectAdmin, M maintainer, D developer, G guest, L
 * limitedGuest). Everything not listed is denied to every role. The reading of
 * terse cells ("CRUD", "scanner set", "label add/remove") is the one
 * documented in src/auth/rbac.c.
 */
static const struct {
    const char *res;
    const char *acts; /* space-separated */
    const char *roles;
} matrix[] = {
    /* row 1 */
    {"repository", "pull read list", "AMDGL"},
    {"artifact", "read list", "AMDGL"},
    {"tag", "list", "AMDGL"},
    {"scan", "read", "AMDGL"},
    {"sbom", "read", "AMDGL"},
    {"scanner", "read", "AMDGL"},
    {"accessory", "list", "AMDGL"},
    {"quota", "read", "AMDGL"},
    {"project", "read", "AMDGL"},
    {"artifact-addition", "read", "AMDGL"},
    /* row 2 */
    {"repository", "push update", "AMD"},
    {"artifact", "create", "AMD"},
    {"tag", "create", "AMD"},
    {"artifact-label", "create delete", "AMD"},
    /* row 3 */
    {"tag-retention", "create read update delete list operate", "AMD"},
    /* row 4 */
    {"export-cve", "create list read", "AMD"},
    /* row 5 */
    {"member", "list read", "AMDG"},
    {"label", "list read", "AMDG"},
    {"robot", "list read", "AMDG"},
    /* row 6 */
    {"artifact", "delete", "AM"},
    {"repository", "delete", "AM"},
    {"tag", "delete", "AM"},
    /* row 7 */
    {"scan", "create stop", "AM"},
    {"sbom", "create stop", "AM"},
    /* row 8 */
    {"immutable-tag", "create read update delete list", "AM"},
    {"label", "create update delete", "AM"},
    /* row 9 */
    {"metadata", "read", "AM"},
    {"notification-policy", "list read", "AM"},
    /* row 10 */
    {"member", "create update delete", "A"},
    {"metadata", "create update delete", "A"},
    {"project", "update delete", "A"},
    {"robot", "create update delete", "A"},
    {"notification-policy", "create update delete", "A"},
    {"preheat-policy", "create read update delete list", "A"},
    {"scanner", "create", "A"},
    {"log", "list", "A"},
    {"configuration", "update", "A"},
};

/* What a public project gives every caller. */
static const struct {
    const char *res, *acts;
} public_set[] = {
    {"project", "read"},        {"label", "read list"}, {"repository", "list pull"},
    {"scan", "read"},           {"scanner", "read"},    {"tag", "list"},
    {"artifact", "read list"},  {"artifact-addition", "read"}, {"accessory", "list"},
};

static bool words_contain(const char *words, const char *w)
{
    size_t n = strlen(w);
    for (const char *p = words; (p = strstr(p, w)); p += n)
        if ((p == words || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return true;
    return false;
}

static bool doc_allows(char role_letter, const char *res, const char *act)
{
    for (size_t i = 0; i < sizeof(matrix) / sizeof(matrix[0]); i++)
        if (strcmp(matrix[i].res, res) == 0 && words_contain(matrix[i].acts, act) &&
            strchr(matrix[i].roles, role_letter))
            return true;
    return false;
}

static bool doc_public(const char *res, const char *act)
{
    for (size_t i = 0; i < sizeof(public_set) / sizeof(public_set[0]); i++)
        if (strcmp(public_set[i].res, res) == 0 && words_contain(public_set[i].acts, act))
            return true;
    return false;
}

static void test_auth__rbac_matrix(void **state)
{
    (void)state;
    static const struct {
        enum wh_role role;
        char letter;
    } roles[] = {{WH_ROLE_PROJECT_ADMIN, 'A'},
                 {WH_ROLE_MAINTAINER, 'M'},
                 {WH_ROLE_DEVELOPER, 'D'},
                 {WH_ROLE_GUEST, 'G'},
                 {WH_ROLE_LIMITED_GUEST, 'L'}};
    size_t checked = 0;

    /* every table entry names a real resource and actions */
    for (size_t i = 0; i < sizeof(matrix) / sizeof(matrix[0]); i++) {
        enum wh_rbac_res r;
        assert_int_equal(wh_rbac_res_parse(&r, matrix[i].res), 0);
    }
    for (unsigned r = 0; r < WH_RBAC_RES_COUNT; r++) {
        const char *rn = wh_rbac_res_name((enum wh_rbac_res)r);
        assert_non_null(rn);
        for (unsigned a = 0; a < WH_RBAC_ACT_COUNT; a++) {
            const char *an = wh_rbac_act_name((enum wh_rbac_act)a);
            enum wh_rbac_res er = (enum wh_rbac_res)r;
            enum wh_rbac_act ea = (enum wh_rbac_act)a;
            bool pub = doc_public(rn, an);
            for (size_t k = 0; k < sizeof(roles) / sizeof(roles[0]); k++) {
                bool want = doc_allows(roles[k].letter, rn, an);
                if (wh_rbac_allowed(roles[k].role, false, false, false, er, ea) != want)
                    fail_msg("%s on private project: %s %s should be %s",
                             wh_rbac_role_name(roles[k].role), rn, an, want ? "allowed" : "denied");
                /* a member of a public project: the role plus the public set */
                if (wh_rbac_allowed(roles[k].role, true, false, false, er, ea) != (want || pub))
                    fail_msg("%s on public project: %s %s", wh_rbac_role_name(roles[k].role), rn,
                             an);
                /* anonymous: the role is ignored */
                assert_int_equal(wh_rbac_allowed(roles[k].role, false, false, true, er, ea), false);
                checked++;
            }
            /* non-members and anonymous callers */
            assert_int_equal(wh_rbac_allowed(WH_ROLE_NONE, false, false, false, er, ea), false);
            assert_int_equal(wh_rbac_allowed(WH_ROLE_NONE, false, false, true, er, ea), false);
            if (wh_rbac_allowed(WH_ROLE_NONE, true, false, true, er, ea) != pub)
                fail_msg("anonymous on public project: %s %s", rn, an);
            assert_int_equal(wh_rbac_allowed(WH_ROLE_NONE, true, false, false, er, ea), pub);
            /* the system admin, member or not */
            assert_true(wh_rbac_allowed(WH_ROLE_NONE, false, true, false, er, ea));
            assert_true(wh_rbac_allowed(WH_ROLE_GUEST, false, true, false, er, ea));
        }
    }
    assert_int_equal(checked, 5 * WH_RBAC_RES_COUNT * WH_RBAC_ACT_COUNT);
    /* out-of-range values are denied */
    assert_false(wh_rbac_allowed(WH_ROLE_PROJECT_ADMIN, true, false, false, WH_RBAC_RES_COUNT,
                                 WH_RBAC_ACT_READ));
    assert_false(wh_rbac_allowed((enum wh_role)9, true, false, false, WH_RBAC_RES_TAG,
                                 WH_RBAC_ACT_CREATE));
}

/* The policies Harbor defines for a project are those some role (or the
 * public-project set) holds: the union of the documented table. */
static void test_auth__rbac_policy_defined(void **state)
{
    (void)state;
    static const char letters[] = "AMDGL";
    for (unsigned r = 0; r < WH_RBAC_RES_COUNT; r++) {
        for (unsigned a = 0; a < WH_RBAC_ACT_COUNT; a++) {
            const char *rn = wh_rbac_res_name((enum wh_rbac_res)r);
            const char *an = wh_rbac_act_name((enum wh_rbac_act)a);
            bool want = doc_public(rn, an);
            for (const char *l = letters; *l; l++)
                want = want || doc_allows(*l, rn, an);
            if (wh_rbac_policy_defined((enum wh_rbac_res)r, (enum wh_rbac_act)a) != want)
                fail_msg("%s %s should %sbe a defined policy", rn, an, want ? "" : "not ");
        }
    }
    assert_false(wh_rbac_policy_defined(WH_RBAC_RES_COUNT, WH_RBAC_ACT_READ));
    assert_false(wh_rbac_policy_defined(WH_RBAC_RES_PROJECT, WH_RBAC_ACT_COUNT));
}

static void test_auth__rbac_repo_actions(void **state)
{
    (void)state;
    static const struct {
        enum wh_role role;
        bool pub, sysadmin, anon;
        unsigned want;
    } cases[] = {
        {WH_ROLE_PROJECT_ADMIN, false, false, false, WH_ACT_PULL | WH_ACT_PUSH | WH_ACT_DELETE},
        {WH_ROLE_MAINTAINER, false, false, false, WH_ACT_PULL | WH_ACT_PUSH | WH_ACT_DELETE},
        {WH_ROLE_DEVELOPER, false, false, false, WH_ACT_PULL | WH_ACT_PUSH},
        {WH_ROLE_GUEST, false, false, false, WH_ACT_PULL},
        {WH_ROLE_LIMITED_GUEST, false, false, false, WH_ACT_PULL},
        {WH_ROLE_NONE, false, false, false, 0},
        {WH_ROLE_NONE, true, false, false, WH_ACT_PULL},
        {WH_ROLE_NONE, true, false, true, WH_ACT_PULL},
        {WH_ROLE_NONE, false, false, true, 0},
        {WH_ROLE_DEVELOPER, false, false, true, 0},
        {WH_ROLE_NONE, false, true, false,
         WH_ACT_PULL | WH_ACT_PUSH | WH_ACT_DELETE | WH_ACT_SCANNER_PULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(
            wh_rbac_repo_actions(cases[i].role, cases[i].pub, cases[i].sysadmin, cases[i].anon),
            cases[i].want);
}

static void test_auth__rbac_names(void **state)
{
    (void)state;
    static const struct {
        enum wh_role role;
        const char *name;
    } roles[] = {{WH_ROLE_PROJECT_ADMIN, "projectAdmin"}, {WH_ROLE_DEVELOPER, "developer"},
                 {WH_ROLE_GUEST, "guest"},                {WH_ROLE_MAINTAINER, "maintainer"},
                 {WH_ROLE_LIMITED_GUEST, "limitedGuest"}};
    enum wh_role r;
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        assert_string_equal(wh_rbac_role_name(roles[i].role), roles[i].name);
        assert_int_equal(wh_rbac_role_parse(&r, roles[i].name), 0);
        assert_int_equal(r, roles[i].role);
    }
    assert_int_equal(roles[0].role, 1);
    assert_int_equal(WH_ROLE_MAINTAINER, 4);
    assert_null(wh_rbac_role_name(WH_ROLE_NONE));
    assert_null(wh_rbac_role_name((enum wh_role)6));
    assert_int_equal(wh_rbac_role_parse(&r, "ProjectAdmin"), WH_EINVALID);
    assert_int_equal(wh_rbac_role_parse(&r, ""), WH_EINVALID);

    for (unsigned i = 0; i < WH_RBAC_RES_COUNT; i++) {
        enum wh_rbac_res res;
        assert_int_equal(wh_rbac_res_parse(&res, wh_rbac_res_name((enum wh_rbac_res)i)), 0);
        assert_int_equal(res, i);
    }
    for (unsigned i = 0; i < WH_RBAC_ACT_COUNT; i++) {
        enum wh_rbac_act act;
        assert_int_equal(wh_rbac_act_parse(&act, wh_rbac_act_name((enum wh_rbac_act)i)), 0);
        assert_int_equal(act, i);
    }
    enum wh_rbac_res res;
    enum wh_rbac_act act;
    assert_int_equal(wh_rbac_res_parse(&res, "webhook"), 0);
    assert_int_equal(res, WH_RBAC_RES_WEBHOOK);
    assert_int_equal(wh_rbac_res_parse(&res, "cve-export"), 0);
    assert_int_equal(res, WH_RBAC_RES_CVE_EXPORT);
    assert_int_equal(wh_rbac_res_parse(&res, "repositories"), WH_EINVALID);
    assert_int_equal(wh_rbac_act_parse(&act, "scanner-pull"), 0);
    assert_int_equal(act, WH_RBAC_ACT_SCANNER_PULL);
    assert_int_equal(wh_rbac_act_parse(&act, "*"), WH_EINVALID);
    assert_null(wh_rbac_res_name(WH_RBAC_RES_COUNT));
    assert_null(wh_rbac_act_name(WH_RBAC_ACT_COUNT));
}

/* ------------------------------------------------------------ throttle */

/*
 * The throttle over the store wharf uses (the database, as acl.c wires it),
 * in a fresh SQLite file per test: what one node counts, every node sees.
 */
struct tdb {
    char dir[64];
    char path[96];
    wh_db *db;
    wh_auth_throttle *t;
};

static int tdb_get(void *payload, const char *const ids[], size_t n,
                   struct wh_auth_fail_count *out)
{
    struct wh_db_login_failure got[WH_DB_LOGIN_KEYS_MAX];
    int error = wh_db_login_failures(payload, ids, n, got);
    for (size_t i = 0; error == 0 && i < n; i++)
        out[i] = (struct wh_auth_fail_count){got[i].fails, got[i].first_ms, got[i].last_ms};
    return error;
}

static int tdb_fail(void *payload, const char *const ids[], size_t n, int64_t now_ms,
                    int64_t window_ms)
{
    return wh_db_login_fail(payload, ids, n, now_ms, window_ms);
}

static int tdb_hold(void *payload, const char *id, int64_t now_ms)
{
    return wh_db_login_hold(payload, id, now_ms);
}

static int tdb_clear(void *payload, const char *id)
{
    return wh_db_login_clear(payload, id);
}

static const struct wh_auth_throttle_store tdb_store = {tdb_get, tdb_fail, tdb_hold, tdb_clear};

static void tdb_open(struct tdb *f)
{
    snprintf(f->dir, sizeof(f->dir), "/tmp/wharf-throttle-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
    assert_int_equal(wh_db_open(&f->db, f->path), 0);
    f->t = wh_auth_throttle_new(&tdb_store, f->db);
}

static void tdb_close(struct tdb *f)
{
    char p[128];
    wh_auth_throttle_free(f->t);
    wh_db_close(f->db);
    static const char *const files[] = {"t.db", "t.db-wal", "t.db-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/%s", f->dir, files[i]);
        unlink(p);
    }
    rmdir(f->dir);
}

static int64_t rows(struct tdb *f)
{
    int64_t n = -1;
    assert_int_equal(wh_db_login_count(f->db, &n), 0);
    return n;
}

static void test_auth__throttle_backoff(void **state)
{
    (void)state;
    struct tdb f;
    tdb_open(&f);
    wh_auth_throttle *t = f.t;
    int64_t now = 1000000;
    /* wharf's keys: the (name, address) pair and the address */
    const char *pair = "alice@10.0.0.1", *addr = "10.0.0.1";

    /* the free failures */
    for (int i = 0; i < WH_AUTH_THROTTLE_FREE; i++) {
        assert_int_equal(wh_auth_throttle_delay_ms(t, pair, addr, now, NULL), 0);
        wh_auth_throttle_fail(t, pair, addr, now, NULL);
        now += 10;
    }
    assert_int_equal(wh_auth_throttle_delay_ms(t, pair, addr, now, NULL), 0);

    /* then 1 s, 2 s, 4 s … from the latest failure, capped at 30 s */
    static const int64_t want[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        wh_auth_throttle_fail(t, pair, addr, now, NULL);
        assert_int_equal(wh_auth_throttle_delay_ms(t, pair, addr, now, NULL), want[i]);
        assert_int_equal(wh_auth_throttle_delay_ms(t, pair, addr, now + 400, NULL),
                         want[i] - 400);
        assert_int_equal(wh_auth_throttle_delay_ms(t, pair, addr, now + want[i], NULL), 0);
        /* the same name from another address is not slowed: nobody can lock an account */
        assert_int_equal(
            wh_auth_throttle_delay_ms(t, "alice@10.9.9.9", "10.9.9.9", now, NULL), 0);
        now += want[i];
    }
    /* 13 failures so far: the address is still within its larger allowance */
    assert_int_equal(wh_auth_throttle_delay_ms(t, "bob@10.0.0.1", addr, now, NULL), 0);
    /* a clock that goes back never asks for more than the delay itself */
    assert_int_equal(wh_auth_throttle_delay_ms(t, pair, NULL, now - 100000, NULL), 30000);

    /* an attempt made while throttled starts the delay again (the count stays) */
    wh_auth_throttle_fail(t, pair, addr, now, NULL);
    wh_auth_throttle_hold(t, pair, addr, now + 20000, NULL);
    assert_int_equal(wh_auth_throttle_delay_ms(t, pair, addr, now + 20000, NULL), 30000);
    /* ... written once per WH_AUTH_THROTTLE_HOLD_MS at most: a storm of refusals is reads */
    wh_auth_throttle_hold(t, pair, addr, now + 20000 + WH_AUTH_THROTTLE_HOLD_MS - 1, NULL);
    assert_int_equal(wh_auth_throttle_delay_ms(t, pair, addr, now + 20000 + 1000, NULL), 29000);
    wh_auth_throttle_hold(t, pair, addr, now + 20000 + WH_AUTH_THROTTLE_HOLD_MS, NULL);
    assert_int_equal(wh_auth_throttle_delay_ms(t, pair, addr, now + 20000 + 1000, NULL),
                     29000 + WH_AUTH_THROTTLE_HOLD_MS);
    int64_t before = rows(&f);
    wh_auth_throttle_hold(t, "nobody@10.0.0.9", "10.0.0.9", now, NULL); /* unknown keys: nothing */
    assert_int_equal(wh_auth_throttle_delay_ms(t, "nobody@10.0.0.9", "10.0.0.9", now, NULL), 0);
    assert_int_equal(rows(&f), before);
    now += 20000 + 30000;

    /* success clears the pair, not the address */
    struct wh_auth_throttle_seen seen;
    wh_auth_throttle_fail(t, pair, addr, now, NULL);
    assert_int_not_equal(wh_auth_throttle_delay_ms(t, pair, addr, now, &seen), 0);
    wh_auth_throttle_ok(t, pair, addr, now, &seen);
    assert_int_equal(wh_auth_throttle_delay_ms(t, pair, NULL, now, NULL), 0);
    assert_int_equal(wh_auth_throttle_delay_ms(t, NULL, addr, now, &seen), 0);
    assert_int_equal(seen.addr.fails, WH_AUTH_THROTTLE_FREE + 10);

    /* one address guessing many names: throttled past WH_AUTH_THROTTLE_ADDR_FREE */
    const char *guesser = "192.0.2.7";
    for (int i = 0; i < WH_AUTH_THROTTLE_ADDR_FREE; i++) {
        char name[32];
        snprintf(name, sizeof(name), "n%d@%s", i, guesser);
        assert_int_equal(wh_auth_throttle_delay_ms(t, name, guesser, now, NULL), 0);
        wh_auth_throttle_fail(t, name, guesser, now, NULL);
    }
    assert_int_equal(wh_auth_throttle_delay_ms(t, "fresh@192.0.2.7", guesser, now, NULL), 0);
    wh_auth_throttle_fail(t, "fresh@192.0.2.7", guesser, now, NULL);
    assert_int_equal(wh_auth_throttle_delay_ms(t, "other@192.0.2.7", guesser, now, NULL), 1000);
    assert_int_equal(wh_auth_throttle_delay_ms(t, NULL, guesser, now, NULL), 1000);
    /* …while everyone elsewhere goes on */
    assert_int_equal(
        wh_auth_throttle_delay_ms(t, "other@198.51.100.1", "198.51.100.1", now, NULL), 0);

    /* the window: after 15 minutes without a new failure the count starts over */
    int64_t later = now + WH_AUTH_THROTTLE_WINDOW_MS + 1;
    assert_int_equal(wh_auth_throttle_delay_ms(t, NULL, guesser, later, NULL), 0);
    wh_auth_throttle_fail(t, NULL, guesser, later, NULL);
    assert_int_equal(wh_auth_throttle_delay_ms(t, NULL, guesser, later, &seen), 0);
    assert_int_equal(seen.addr.fails, 1);
    assert_int_equal(wh_auth_throttle_delay_ms(t, NULL, NULL, later, NULL), 0);

    /* spread failures (one per user, one address each) never throttle anyone */
    for (int i = 0; i < 100; i++) {
        char u[16], a[16];
        snprintf(u, sizeof(u), "u%d", i);
        snprintf(a, sizeof(a), "a%d", i);
        wh_auth_throttle_fail(t, u, a, later, NULL);
        assert_int_equal(wh_auth_throttle_delay_ms(t, u, a, later, NULL), 0);
    }
    /* counts whose window is over are purged */
    int64_t deleted = 0;
    assert_int_equal(wh_db_login_purge(f.db, later - WH_AUTH_THROTTLE_WINDOW_MS + 1, &deleted), 0);
    assert_true(deleted > 20);
    assert_int_equal(wh_db_login_purge(f.db, later + 1, &deleted), 0);
    assert_int_equal(rows(&f), 0);
    tdb_close(&f);
    wh_auth_throttle_free(NULL);
}

/* Keys are hashes: neither names nor addresses reach the store, and kinds never collide. */
static void test_auth__throttle_ids(void **state)
{
    (void)state;
    char u[WH_AUTH_THROTTLE_ID_HEX + 1], a[WH_AUTH_THROTTLE_ID_HEX + 1];
    wh_auth_throttle_id(u, 'u', "10.0.0.1");
    wh_auth_throttle_id(a, 'a', "10.0.0.1");
    assert_int_equal(strlen(u), WH_AUTH_THROTTLE_ID_HEX);
    assert_string_not_equal(u, a);
    assert_null(strstr(u, "10"));
    wh_auth_throttle_id(a, 'u', "10.0.0.1");
    assert_string_equal(u, a); /* stable: every node finds the same row */
}

static void test_auth__throttle_bounded(void **state)
{
    (void)state;
    struct tdb f;
    tdb_open(&f);
    int64_t now = 5000;
    struct wh_auth_throttle_seen seen;

    /*
     * One address failing with ever new names (as a burst of parallel
     * attempts would, all checked before any failure is counted): past
     * WH_AUTH_THROTTLE_ADDR_KEYS failures, new names add no rows.
     */
    for (int i = 0; i < 3 * WH_AUTH_THROTTLE_ADDR_KEYS; i++) {
        char u[32];
        snprintf(u, sizeof(u), "flood%d@192.0.2.9", i);
        (void)wh_auth_throttle_delay_ms(f.t, u, "192.0.2.9", now, &seen);
        wh_auth_throttle_fail(f.t, u, "192.0.2.9", now, &seen);
    }
    assert_int_equal(rows(&f), WH_AUTH_THROTTLE_ADDR_KEYS + 1);
    assert_int_equal(wh_auth_throttle_delay_ms(f.t, NULL, "192.0.2.9", now, &seen),
                     WH_AUTH_THROTTLE_CAP_MS);
    assert_int_equal(seen.addr.fails, 3 * WH_AUTH_THROTTLE_ADDR_KEYS);
    /* a name that failed before is still counted (its own delay keeps growing) */
    (void)wh_auth_throttle_delay_ms(f.t, "flood0@192.0.2.9", "192.0.2.9", now, &seen);
    for (int i = 0; i < WH_AUTH_THROTTLE_FREE; i++)
        wh_auth_throttle_fail(f.t, "flood0@192.0.2.9", "192.0.2.9", now, &seen);
    assert_int_equal(wh_auth_throttle_delay_ms(f.t, "flood0@192.0.2.9", NULL, now, NULL), 1000);
    /* a fresh address still works normally */
    for (int i = 0; i < WH_AUTH_THROTTLE_FREE + 1; i++)
        wh_auth_throttle_fail(f.t, "fresh", "198.51.100.3", now + 2, NULL);
    assert_int_equal(wh_auth_throttle_delay_ms(f.t, "fresh", NULL, now + 2, NULL), 1000);
    tdb_close(&f);
}

struct thread_arg {
    struct tdb *f;
    int id;
};

static void *hammer(void *p)
{
    struct thread_arg *a = p;
    char u[16];
    for (int i = 0; i < 200; i++) {
        snprintf(u, sizeof(u), "t%d-%d", a->id, i % 50);
        wh_auth_throttle_fail(a->f->t, u, "shared", i, NULL);
        (void)wh_auth_throttle_delay_ms(a->f->t, u, "shared", i, NULL);
        if (i % 7 == 0)
            wh_auth_throttle_ok(a->f->t, u, "shared", i, NULL);
    }
    return NULL;
}

static void test_auth__throttle_threads(void **state)
{
    (void)state;
    struct tdb f;
    pthread_t th[4];
    struct thread_arg args[4];

    tdb_open(&f);
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){&f, i};
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    /* 800 failures from one address inside the window: every one counted, capped */
    struct wh_auth_throttle_seen seen;
    assert_int_equal(wh_auth_throttle_delay_ms(f.t, NULL, "shared", 199, &seen),
                     WH_AUTH_THROTTLE_CAP_MS);
    assert_int_equal(seen.addr.fails, 800);
    tdb_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth__password_hash_verify),
        cmocka_unit_test(test_auth__password_policy),
        cmocka_unit_test(test_auth__secrets),
        cmocka_unit_test(test_auth__consttime_eq),
        cmocka_unit_test(test_auth__consttime_eq_bytes),
        cmocka_unit_test_setup_teardown(test_auth__keys_create_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth__token_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth__token_rejections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth__token_bind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth__token_tampering_and_garbage, setup, teardown),
        cmocka_unit_test(test_auth__b64url),
        cmocka_unit_test(test_auth__scope_parse),
        cmocka_unit_test(test_auth__actions_str),
        cmocka_unit_test(test_auth__basic_parse),
        cmocka_unit_test(test_auth__rbac_matrix),
        cmocka_unit_test(test_auth__rbac_repo_actions),
        cmocka_unit_test(test_auth__rbac_policy_defined),
        cmocka_unit_test(test_auth__rbac_names),
        cmocka_unit_test(test_auth__throttle_backoff),
        cmocka_unit_test(test_auth__throttle_ids),
        cmocka_unit_test(test_auth__throttle_bounded),
        cmocka_unit_test(test_auth__throttle_threads),
    };
    return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
