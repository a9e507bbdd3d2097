/*
 * Fuzz target for auth/: the input is tried as a bearer token, as one scope
 * string and as a Basic credential (bare and behind "Basic "). Properties, any
 * violation aborts:
 *  - verify accepts nothing but the tokens `sign` produced with the test key
 *    (listed below; any other accepted input is a forgery), and what it
 *    accepts re-signs and re-verifies to the same claims;
 *  - a scope that parses prints and re-parses to the same access, and a token
 *    signed with it verifies back to it;
 *  - Basic credentials that parse re-encode and re-parse to the same pair.
 * Inputs of the form "<header JSON>\n<claims JSON>" are also base64url-encoded
 * and signed here with the test key, so that the header checks and the claims
 * parser behind the signature see arbitrary JSON; what verifies must then
 * round-trip through sign.
 * The key is a fixed test key (the one in tests/unit/test_auth.c) written to a
 * temporary directory on the first call; time is frozen at 2023-11-14.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "auth/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1700000000

static const char test_key[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg591PGthNyei0jSBO\n"
    "zwlGpqRZtb5sgrtPQyOwkR+dsu2hRANCAAT+ET71wzqFA+Wstp8k0EBAfu1sCT6N\n"
    "cDXSqfPNiHROq5mY4G6vLsR0eYybj+pwPyLinL4lMhi4/2QPJF71f5kx\n"
    "-----END PRIVATE KEY-----\n";

/* Produced by wh_auth_token_sign with the test key (exp 2100-01-01). */
static const char *const known[] = {
    "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6Ik5YQzY6QjZMUjpBT1JGOkJQU1g6VkYyQzpISUVPOkxJ"
    "Mlc6RDNISjo2V0dIOjJMRjY6SjJDTzo1REE0In0.eyJpc3MiOiJ3aGFyZi10b2tlbi1pc3N1ZXIiLCJzdWIiOiJh"
    "bGljZSIsImF1ZCI6IndoYXJmIiwiZXhwIjo0MTAyNDQ0ODAwLCJuYmYiOjE3MDAwMDAwMDAsImlhdCI6MTcwMDAw"
    "MDAwMCwianRpIjoiMDEyMzQ1Njc4OWFiY2RlZiIsImFjY2VzcyI6W3sidHlwZSI6InJlcG9zaXRvcnkiLCJuYW1l"
    "IjoibGlicmFyeS9uZ2lueCIsImFjdGlvbnMiOlsicHVsbCIsInB1c2giXX0seyJ0eXBlIjoicmVnaXN0cnkiLCJu"
    "YW1lIjoiY2F0YWxvZyIsImFjdGlvbnMiOlsiKiJdfV19.bmCxkLnS1nMA0u2LwlcRs7hnNNrdcgyK3DdY3c4ktzl"
    "9ysWsQqHlopIUL76mbPzPXpBI_2NfPO8QKFjCMZZj6Q",
    "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6Ik5YQzY6QjZMUjpBT1JGOkJQU1g6VkYyQzpISUVPOkxJ"
    "Mlc6RDNISjo2V0dIOjJMRjY6SjJDTzo1REE0In0.eyJpc3MiOiJ3aGFyZi10b2tlbi1pc3N1ZXIiLCJzdWIiOiIi"
    "LCJhdWQiOiJ3aGFyZiIsImV4cCI6NDEwMjQ0NDgwMCwibmJmIjoxNzAwMDAwMDAwLCJpYXQiOjE3MDAwMDAwMDAs"
    "Imp0aSI6ImZlZGNiYTk4NzY1NDMyMTAiLCJhY2Nlc3MiOltdfQ.MU7GFz8MAD1FcIA-4z-hlspq9spPh4tpKXuwI"
    "lCNnXRg3y4YR2vn7ausWIuwBtlLJLaHusdPNIDpCWdt70oSQg",
    "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6Ik5YQzY6QjZMUjpBT1JGOkJQU1g6VkYyQzpISUVPOkxJ"
    "Mlc6RDNISjo2V0dIOjJMRjY6SjJDTzo1REE0In0.eyJpc3MiOiJ3aGFyZi10b2tlbi1pc3N1ZXIiLCJzdWIiOiJy"
    "b2JvdCRwK2NpIiwiYXVkIjoid2hhcmYiLCJleHAiOjQxMDI0NDQ4MDAsIm5iZiI6MTcwMDAwMDAwMCwiaWF0Ijox"
    "NzAwMDAwMDAwLCJqdGkiOiJyb2JvdGp0aTAwMDAwMDAwIiwiYWNjZXNzIjpbeyJ0eXBlIjoicmVwb3NpdG9yeSIs"
    "Im5hbWUiOiJwL2E6YlwiXFzDqSIsImFjdGlvbnMiOlsiZGVsZXRlIiwic2Nhbm5lci1wdWxsIl19XX0.7J_Lp4mM"
    "lWxQQVOtQN5AHjvTO2vW-pytxEVkRd6CSM8iqkXuzhh9J6WNxCxon_y1gaMeVlFn41CWVTbKBtwxGg",
};

static wh_auth_keys *keys;
static EVP_PKEY *priv;
static char dir[64], path[96];

static void cleanup(void)
{
    wh_auth_keys_free(keys);
    EVP_PKEY_free(priv);
    unlink(path);
    rmdir(dir);
}

static void init(void)
{
    FILE *f;

    snprintf(dir, sizeof(dir), "/tmp/wharf-fuzz-auth-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof(path), "%s/token.key", dir);
    if (!(f = fopen(path, "w")) || fputs(test_key, f) < 0 || fclose(f) != 0 ||
        chmod(path, 0600) != 0)
        abort();
    if (wh_auth_keys_load_or_create(&keys, dir) < 0)
        abort();
    BIO *bio = BIO_new_mem_buf(test_key, -1);
    if (!bio || !(priv = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)))
        abort();
    BIO_free(bio);
    atexit(cleanup);
}

static bool claims_equal(const struct wh_token_claims *a, const struct wh_token_claims *b)
{
    if (strcmp(a->iss, b->iss) || strcmp(a->sub, b->sub) || strcmp(a->aud, b->aud) ||
        strcmp(a->jti, b->jti) || a->iat != b->iat || a->nbf != b->nbf || a->exp != b->exp ||
        a->naccess != b->naccess)
        return false;
    for (size_t i = 0; i < a->naccess; i++)
        if (strcmp(a->access[i].type, b->access[i].type) ||
            strcmp(a->access[i].name, b->access[i].name) ||
            a->access[i].actions != b->access[i].actions)
            return false;
    return true;
}

/* Signs `c`, verifies the result, and checks the claims survive. */
static void resign(const struct wh_token_claims *c)
{
    struct wh_token_claims back;
    char *tok = NULL;

    if (wh_auth_token_sign(&tok, keys, c) < 0)
        return; /* not UTF-8, or too big: sign refuses, fine */
    if (wh_auth_token_verify(&back, keys, tok, strlen(tok), WH_AUTH_ISSUER, WH_AUTH_SERVICE,
                             NOW) != 0 ||
        !claims_equal(c, &back))
        abort();
    free(tok);
}

static void check_token(const char *p, size_t n)
{
    struct wh_token_claims c;
    bool is_known = false;

    if (wh_auth_token_verify(&c, keys, p, n, WH_AUTH_ISSUER, WH_AUTH_SERVICE, NOW) != 0)
        return;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        is_known |= strlen(known[i]) == n && memcmp(known[i], p, n) == 0;
    if (!is_known)
        abort(); /* accepted a token the key never signed */
    resign(&c);
}

/* "<header>\n<claims>": encode both, sign with the test key, verify. */
static void check_signed_json(const char *p, size_t n)
{
    const char *nl = memchr(p, '\n', n);
    char *tok = malloc(3 * WH_TOKEN_MAX);
    unsigned char sig[64], der[80];
    size_t o, derlen = sizeof(der);
    struct wh_token_claims c;

    if (!nl || n > WH_TOKEN_MAX / 2)
        goto out;
    if (wh_auth_b64url_encode(tok, WH_TOKEN_MAX, p, (size_t)(nl - p)) < 0)
        abort();
    o = strlen(tok);
    tok[o++] = '.';
    if (wh_auth_b64url_encode(tok + o, WH_TOKEN_MAX, nl + 1, n - (size_t)(nl + 1 - p)) < 0)
        abort();
    o += strlen(tok + o);

    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    const unsigned char *d = der;
    if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, priv) != 1 ||
        EVP_DigestSign(ctx, der, &derlen, (unsigned char *)tok, o) != 1)
        abort();
    EVP_MD_CTX_free(ctx);
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &d, (long)derlen);
    if (!es || BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32) != 32 ||
        BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32) != 32)
        abort();
    ECDSA_SIG_free(es);
    tok[o++] = '.';
    if (wh_auth_b64url_encode(tok + o, WH_TOKEN_MAX, sig, sizeof(sig)) < 0)
        abort();
    if (wh_auth_token_verify(&c, keys, tok, strlen(tok), WH_AUTH_ISSUER, WH_AUTH_SERVICE, NOW) ==
        0)
        resign(&c);
out:
    free(tok);
}

static void check_scope(const char *s)
{
    struct wh_access a, b;
    struct wh_token_claims c;
    char acts[WH_AUTH_ACTIONS_STR_MAX], again[WH_AUTH_SCOPE_MAX + 64];

    if (wh_auth_scope_parse(&a, s) != 0)
        return;
    if (wh_auth_actions_str(acts, sizeof(acts), a.actions) != 0)
        abort();
    snprintf(again, sizeof(again), "%s:%s:%s", a.type, a.name, acts);
    if (wh_auth_scope_parse(&b, again) != 0 || strcmp(a.type, b.type) ||
        strcmp(a.name, b.name) || a.actions != b.actions)
        abort();
    if (wh_auth_claims_init(&c, a.name, NOW, 60) != 0)
        abort();
    c.access[0] = a;
    c.naccess = 1;
    resign(&c);
}

static void check_basic(const char *hdr)
{
    char user[256], pass[256], u2[256], p2[256], plain[520], again[800];

    if (wh_auth_basic_parse(user, sizeof(user), pass, sizeof(pass), hdr) != 0)
        return;
    int n = snprintf(plain, sizeof(plain), "%s:%s", user, pass);
    memcpy(again, "Basic ", 6);
    EVP_EncodeBlock((unsigned char *)again + 6, (const unsigned char *)plain, n);
    if (wh_auth_basic_parse(u2, sizeof(u2), p2, sizeof(p2), again) != 0 || strcmp(user, u2) ||
        strcmp(pass, p2))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    char *s, *basic;

    if (!ready) {
        init();
        ready = true;
    }
    if (size > 2 * WH_TOKEN_MAX)
        return 0;
    check_token((const char *)data, size);
    check_signed_json((const char *)data, size);

    s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    check_scope(s);
    check_basic(s);
    basic = malloc(size + 7);
    memcpy(basic, "Basic ", 6);
    memcpy(basic + 6, s, size + 1);
    check_basic(basic);
    free(basic);
    free(s);
    return 0;
}
