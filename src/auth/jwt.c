/*
 * auth/jwt: registry bearer tokens. Compact JWS (RFC 7515) over JWT claims
 * (RFC 7519) with ES256 only (RFC 7518 §3.4: ECDSA P-256 + SHA-256, signature
 * = raw r||s, 32 bytes each); claims and access entries as in the Docker token
 * authentication spec. Verification accepts exactly one algorithm and one key
 * id, so the classic confusions (alg "none", HS256 keyed with the public key)
 * have nothing to work with. No JWE, no JWK sets, no key rotation.
 */
#include <jansson.h>
#include <math.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth_int.h"

#define SIG_LEN 64
#define AUD_ARRAY_MAX 16
#define ACTIONS_ARRAY_MAX 16

/* ---------------------------------------------------------------- base64 */

static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int wh_auth_b64url_encode(char *out, size_t cap, const void *p, size_t n)
{
    const unsigned char *in = p;
    size_t need = n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0) + 1, o = 0, i = 0;

    if (n > SIZE_MAX / 2 || need > cap)
        return wh_error_set(WH_ETOOBIG, "base64url output needs %zu bytes", need);
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64_url[v >> 18];
        out[o++] = b64_url[(v >> 12) & 63];
        out[o++] = b64_url[(v >> 6) & 63];
        out[o++] = b64_url[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64_url[v >> 18];
        out[o++] = b64_url[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64_url[v >> 18];
        out[o++] = b64_url[(v >> 12) & 63];
        out[o++] = b64_url[(v >> 6) & 63];
    }
    out[o] = '\0';
    assert(o + 1 == need);
    return 0;
}

static int b64_value(unsigned char c, bool url)
{
    const char *alpha = url ? b64_url : b64_std;
    const char *hit = c ? memchr(alpha, c, 64) : NULL;
    return hit ? (int)(hit - alpha) : -1;
}

int wh_auth_b64_decode(void *out, size_t cap, size_t *outlen, const char *s, size_t len, bool url)
{
    unsigned char *o = out;
    size_t n = 0, i = 0;

    *outlen = 0;
    if (!url) {
        /* Padded form: a multiple of 4 with at most two '=' at the end. */
        if (len % 4)
            return wh_error_set(WH_EINVALID, "base64 length not a multiple of 4");
        if (len && s[len - 1] == '=')
            len -= (len >= 2 && s[len - 2] == '=') ? 2 : 1;
    }
    if (len % 4 == 1)
        return wh_error_set(WH_EINVALID, "base64 length impossible");
    size_t need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (need > cap)
        return wh_error_set(WH_ETOOBIG, "base64 decodes to more than %zu bytes", cap);
    while (i < len) {
        size_t left = len - i < 4 ? len - i : 4;
        uint32_t v = 0;
        for (size_t j = 0; j < 4; j++) {
            int d = j < left ? b64_value((unsigned char)s[i + j], url) : 0;
            if (d < 0)
                return wh_error_set(WH_EINVALID, "bad base64 character");
            v = v << 6 | (uint32_t)d;
        }
        o[n++] = (unsigned char)(v >> 16);
        if (left > 2)
            o[n++] = (unsigned char)(v >> 8);
        if (left > 3)
            o[n++] = (unsigned char)v;
        /* A partial group must leave its unused bits zero, so that every byte
         * string has exactly one encoding. */
        if ((left == 2 && (v & 0xffff)) || (left == 3 && (v & 0xff)))
            return wh_error_set(WH_EINVALID, "non-canonical base64");
        i += left;
    }
    assert(n == need);
    *outlen = n;
    return 0;
}

int wh_auth_b64url_decode(void *out, size_t cap, size_t *outlen, const char *s, size_t len)
{
    return wh_auth_b64_decode(out, cap, outlen, s, len, true);
}

/* ---------------------------------------------------------------- signing */

static bool terminated(const char *field, size_t size)
{
    return memchr(field, '\0', size) != NULL;
}

int wh_auth_claims_init(struct wh_token_claims *c, const char *sub, int64_t now_s, int64_t ttl_s)
{
    memset(c, 0, sizeof(*c));
    if (strlen(sub) >= sizeof(c->sub))
        return wh_error_set(WH_EINVALID, "subject too long");
    strcpy(c->iss, WH_AUTH_ISSUER);
    strcpy(c->aud, WH_AUTH_SERVICE);
    strcpy(c->sub, sub);
    c->iat = c->nbf = now_s;
    c->exp = now_s + ttl_s;
    wh_random_hex(c->jti, 8);
    return 0;
}

/* Adds `key: s` to `obj`; WH_EINVALID if `s` is not UTF-8 (jansson refuses). */
static int set_str(json_t *obj, const char *key, const char *s)
{
    json_t *v = json_string(s);
    if (!v)
        return wh_error_set(WH_EINVALID, "claim %s is not UTF-8", key);
    json_object_set_new(obj, key, v);
    return 0;
}

static json_t *actions_json(unsigned actions)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{WH_ACT_PULL, "pull"},
                 {WH_ACT_PUSH, "push"},
                 {WH_ACT_DELETE, "delete"},
                 {WH_ACT_SCANNER_PULL, "scanner-pull"},
                 {WH_ACT_ALL, "*"}};
    json_t *a = json_array();
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (actions & names[i].bit)
            json_array_append_new(a, json_string(names[i].name));
    return a;
}

static int claims_json(json_t **out, const struct wh_token_claims *c)
{
    json_t *obj = json_object(), *acc = json_array();
    int error = 0;

    if (!terminated(c->iss, sizeof(c->iss)) || !terminated(c->sub, sizeof(c->sub)) ||
        !terminated(c->aud, sizeof(c->aud)) || !terminated(c->jti, sizeof(c->jti)) ||
        !terminated(c->bind, sizeof(c->bind))) {
        error = wh_error_set(WH_EINVALID, "claim string not terminated");
        goto out;
    }
    if (c->naccess > WH_TOKEN_ACCESS_MAX) {
        error = wh_error_set(WH_EINVALID, "%zu access entries (max %d)", c->naccess,
                             WH_TOKEN_ACCESS_MAX);
        goto out;
    }
    if ((error = set_str(obj, "iss", c->iss)) < 0 || (error = set_str(obj, "sub", c->sub)) < 0 ||
        (error = set_str(obj, "aud", c->aud)) < 0)
        goto out;
    json_object_set_new(obj, "exp", json_integer(c->exp));
    json_object_set_new(obj, "nbf", json_integer(c->nbf));
    json_object_set_new(obj, "iat", json_integer(c->iat));
    if ((error = set_str(obj, "jti", c->jti)) < 0)
        goto out;
    if (c->bind[0] && (error = set_str(obj, "wharf_bind", c->bind)) < 0)
        goto out;
    for (size_t i = 0; i < c->naccess; i++) {
        const struct wh_access *a = &c->access[i];
        json_t *e = json_object();
        json_array_append_new(acc, e);
        if (!terminated(a->type, sizeof(a->type)) || !terminated(a->name, sizeof(a->name))) {
            error = wh_error_set(WH_EINVALID, "access entry string not terminated");
            goto out;
        }
        if ((error = set_str(e, "type", a->type)) < 0 || (error = set_str(e, "name", a->name)) < 0)
            goto out;
        json_object_set_new(e, "actions", actions_json(a->actions));
    }
    json_object_set_new(obj, "access", acc);
    acc = NULL;
    *out = obj;
    obj = NULL;
out:
    json_decref(acc);
    json_decref(obj);
    return error;
}

/* Appends the base64url form of `text` to `b`. */
static int put_b64(struct wh_buf *b, const char *text)
{
    size_t n = strlen(text);
    char *enc = wh_malloc(n / 3 * 4 + 5);
    int error = wh_auth_b64url_encode(enc, n / 3 * 4 + 5, text, n);
    if (error == 0)
        error = wh_buf_puts(b, enc);
    free(enc);
    return error;
}

/* ECDSA over SHA-256 of `msg`, as raw r||s. */
static int es256_sign(unsigned char sig[SIG_LEN], EVP_PKEY *pkey, const void *msg, size_t n)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ECDSA_SIG *es = NULL;
    unsigned char der[80];
    size_t derlen = sizeof(der);
    const unsigned char *p = der;
    const BIGNUM *r, *s;
    int error = 0;

    if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey) != 1 ||
        EVP_DigestSign(ctx, der, &derlen, msg, n) != 1 ||
        !(es = d2i_ECDSA_SIG(NULL, &p, (long)derlen))) {
        error = wh_error_set(WH_ERROR, "ES256 signing failed");
        goto out;
    }
    ECDSA_SIG_get0(es, &r, &s);
    if (BN_bn2binpad(r, sig, 32) != 32 || BN_bn2binpad(s, sig + 32, 32) != 32)
        error = wh_error_set(WH_ERROR, "ES256 signature does not fit");
out:
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(ctx);
    return error;
}

int wh_auth_token_sign(char **out, const wh_auth_keys *k, const struct wh_token_claims *c)
{
    json_t *hdr = NULL, *claims = NULL;
    char *htext = NULL, *ctext = NULL;
    unsigned char sig[SIG_LEN];
    char sigtext[90];
    struct wh_buf b;
    int error;

    wh_buf_init(&b, WH_TOKEN_MAX);
    if ((error = claims_json(&claims, c)) < 0)
        goto out;
    hdr = json_pack("{s:s,s:s,s:s}", "alg", "ES256", "typ", "JWT", "kid", k->kid);
    if (!hdr || !(htext = json_dumps(hdr, JSON_COMPACT)) ||
        !(ctext = json_dumps(claims, JSON_COMPACT))) {
        error = wh_error_set(WH_ERROR, "cannot encode the token");
        goto out;
    }
    if ((error = put_b64(&b, htext)) < 0 || (error = wh_buf_puts(&b, ".")) < 0 ||
        (error = put_b64(&b, ctext)) < 0)
        goto toobig;
    if ((error = es256_sign(sig, k->pkey, b.data, b.len)) < 0)
        goto out;
    if ((error = wh_auth_b64url_encode(sigtext, sizeof(sigtext), sig, sizeof(sig))) < 0)
        goto out;
    if ((error = wh_buf_puts(&b, ".")) < 0 || (error = wh_buf_puts(&b, sigtext)) < 0)
        goto toobig;
    *out = wh_buf_detach(&b, NULL);
    goto out;
toobig:
    error = wh_error_set(WH_ETOOBIG, "token longer than %d bytes", WH_TOKEN_MAX);
out:
    wh_buf_dispose(&b);
    free(htext);
    free(ctext);
    json_decref(hdr);
    json_decref(claims);
    return error;
}

/* ---------------------------------------------------------------- verifying */

static int denied(const char *why)
{
    return wh_error_set(WH_EDENIED, "invalid token: %s", why);
}

/* Decodes one base64url part holding a JSON object. */
static int part_json(json_t **out, const char *s, size_t len, const char *what)
{
    char buf[WH_TOKEN_MAX];
    size_t n;
    json_t *v;

    if (wh_auth_b64url_decode(buf, sizeof(buf), &n, s, len) < 0)
        return wh_error_set(WH_EDENIED, "invalid token: %s is not base64url", what);
    if (!(v = json_loadb(buf, n, JSON_REJECT_DUPLICATES, NULL)) || !json_is_object(v)) {
        json_decref(v);
        return wh_error_set(WH_EDENIED, "invalid token: %s is not a JSON object", what);
    }
    *out = v;
    return 0;
}

static int check_header(const json_t *hdr, const char *kid)
{
    const json_t *alg = json_object_get(hdr, "alg"), *hkid = json_object_get(hdr, "kid");
    const char *a = json_string_value(alg);

    if (!a)
        return denied("no alg");
    if (strcmp(a, "ES256") != 0) {
        if (strcasecmp(a, "none") == 0)
            return denied("alg none refused");
        if (!strncmp(a, "HS", 2) || !strncmp(a, "RS", 2) || !strncmp(a, "PS", 2))
            return wh_error_set(WH_EDENIED, "invalid token: alg %.8s refused, only ES256", a);
        return denied("alg not ES256");
    }
    if (json_object_get(hdr, "crit"))
        return denied("crit header not understood");
    if (!json_is_string(hkid) || strcmp(json_string_value(hkid), kid) != 0)
        return denied("unknown kid");
    return 0;
}

static int es256_verify(EVP_PKEY *pkey, const unsigned char sig[SIG_LEN], const void *msg,
                        size_t n)
{
    EVP_MD_CTX *ctx = NULL;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
    unsigned char *der = NULL;
    int derlen, error = 0;

    if (!es || !r || !s || ECDSA_SIG_set0(es, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        error = wh_error_set(WH_ERROR, "out of memory");
        goto out;
    }
    if ((derlen = i2d_ECDSA_SIG(es, &der)) <= 0 || !(ctx = EVP_MD_CTX_new()) ||
        EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey) != 1) {
        error = wh_error_set(WH_ERROR, "ES256 verification setup failed");
        goto out;
    }
    if (EVP_DigestVerify(ctx, der, (size_t)derlen, msg, n) != 1)
        error = denied("bad signature");
out:
    OPENSSL_free(der);
    EVP_MD_CTX_free(ctx);
    ECDSA_SIG_free(es);
    return error;
}

/* Copies string member `key` into `dst`; absent is fine unless `required`. */
static int get_str(char *dst, size_t cap, const json_t *obj, const char *key, bool required)
{
    const json_t *v = json_object_get(obj, key);

    dst[0] = '\0';
    if (!v) {
        if (required)
            return wh_error_set(WH_EDENIED, "invalid token: no %s", key);
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) >= cap)
        return wh_error_set(WH_EDENIED, "invalid token: bad %s", key);
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

/* NumericDate member `key` (RFC 7519 §2: may be fractional; truncated). */
static int get_time(int64_t *dst, const json_t *obj, const char *key, bool required)
{
    const json_t *v = json_object_get(obj, key);

    *dst = 0;
    if (!v) {
        if (required)
            return wh_error_set(WH_EDENIED, "invalid token: no %s", key);
        return 0;
    }
    if (json_is_integer(v)) {
        *dst = json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (isfinite(d) && d > -9.0e15 && d < 9.0e15) {
            *dst = (int64_t)d;
            return 0;
        }
    }
    return wh_error_set(WH_EDENIED, "invalid token: bad %s", key);
}

static int get_aud(char dst[64], const json_t *claims, const char *audience)
{
    const json_t *aud = json_object_get(claims, "aud");

    if (json_is_string(aud)) {
        if (strcmp(json_string_value(aud), audience) != 0)
            return denied("audience mismatch");
    } else if (json_is_array(aud)) {
        size_t i, n = json_array_size(aud);
        bool found = false;
        if (n > AUD_ARRAY_MAX)
            return denied("too many audiences");
        for (i = 0; i < n; i++) {
            const char *s = json_string_value(json_array_get(aud, i));
            if (!s)
                return denied("bad aud");
            found |= strcmp(s, audience) == 0;
        }
        if (!found)
            return denied("audience mismatch");
    } else {
        return denied(aud ? "bad aud" : "no aud");
    }
    if (strlen(audience) >= 64)
        return denied("audience too long");
    strcpy(dst, audience);
    return 0;
}

static int get_access(struct wh_token_claims *out, const json_t *claims)
{
    const json_t *acc = json_object_get(claims, "access");
    size_t n;
    int error;

    out->naccess = 0;
    if (!acc || json_is_null(acc))
        return 0;
    if (!json_is_array(acc))
        return denied("bad access");
    if ((n = json_array_size(acc)) > WH_TOKEN_ACCESS_MAX)
        return denied("too many access entries");
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(acc, i), *acts;
        struct wh_access *a = &out->access[i];
        if (!json_is_object(e))
            return denied("bad access entry");
        if ((error = get_str(a->type, sizeof(a->type), e, "type", true)) < 0 ||
            (error = get_str(a->name, sizeof(a->name), e, "name", true)) < 0)
            return error;
        a->actions = 0;
        acts = json_object_get(e, "actions");
        if (acts && !json_is_null(acts)) {
            if (!json_is_array(acts) || json_array_size(acts) > ACTIONS_ARRAY_MAX)
                return denied("bad actions");
            for (size_t j = 0; j < json_array_size(acts); j++) {
                const json_t *v = json_array_get(acts, j);
                if (!json_is_string(v))
                    return denied("bad action");
                a->actions |= wh_auth_action_parse(json_string_value(v), json_string_length(v));
            }
        }
        out->naccess = i + 1;
    }
    return 0;
}

int wh_auth_token_verify(struct wh_token_claims *out, const wh_auth_keys *k, const char *token,
                         size_t len, const char *issuer, const char *audience, int64_t now_s)
{
    json_t *hdr = NULL, *claims = NULL;
    unsigned char sig[SIG_LEN];
    const char *dot1, *dot2;
    size_t siglen;
    int error;

    assert(issuer && audience);
    memset(out, 0, sizeof(*out));
    if (len > WH_TOKEN_MAX) {
        error = denied("too large");
        goto out;
    }
    if (!(dot1 = memchr(token, '.', len)) ||
        !(dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token))) ||
        memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token))) {
        error = denied("not three parts");
        goto out;
    }
    if ((error = part_json(&hdr, token, (size_t)(dot1 - token), "header")) < 0 ||
        (error = check_header(hdr, k->kid)) < 0)
        goto out;
    if (wh_auth_b64url_decode(sig, sizeof(sig), &siglen, dot2 + 1,
                              len - (size_t)(dot2 + 1 - token)) < 0 ||
        siglen != SIG_LEN) {
        error = denied("signature is not 64 bytes of base64url");
        goto out;
    }
    /* Nothing in the claims is looked at before the signature holds. */
    if ((error = es256_verify(k->pkey, sig, token, (size_t)(dot2 - token))) < 0)
        goto out;
    if ((error = part_json(&claims, dot1 + 1, (size_t)(dot2 - dot1 - 1), "claims")) < 0)
        goto out;
    if ((error = get_str(out->iss, sizeof(out->iss), claims, "iss", true)) < 0 ||
        (error = get_str(out->sub, sizeof(out->sub), claims, "sub", false)) < 0 ||
        (error = get_str(out->jti, sizeof(out->jti), claims, "jti", false)) < 0 ||
        (error = get_str(out->bind, sizeof(out->bind), claims, "wharf_bind", false)) < 0 ||
        (error = get_time(&out->exp, claims, "exp", true)) < 0 ||
        (error = get_time(&out->nbf, claims, "nbf", false)) < 0 ||
        (error = get_time(&out->iat, claims, "iat", false)) < 0)
        goto out;
    if (strcmp(out->iss, issuer) != 0) {
        error = denied("issuer mismatch");
        goto out;
    }
    if ((error = get_aud(out->aud, claims, audience)) < 0)
        goto out;
    if (out->exp <= now_s - WH_TOKEN_LEEWAY_S) {
        error = denied("expired");
        goto out;
    }
    if (out->nbf > now_s + WH_TOKEN_LEEWAY_S) {
        error = denied("not yet valid");
        goto out;
    }
    error = get_access(out, claims);
out:
    if (error < 0)
        out->naccess = 0;
    json_decref(hdr);
    json_decref(claims);
    return error;
}

bool wh_auth_token_allows(const struct wh_token_claims *c, const char *type, const char *name,
                          unsigned actions)
{
    unsigned granted = 0;

    for (size_t i = 0; i < c->naccess && i < WH_TOKEN_ACCESS_MAX; i++)
        if (strcmp(c->access[i].type, type) == 0 && strcmp(c->access[i].name, name) == 0)
            granted |= c->access[i].actions;
    if (actions == 0)
        return false;
    return (granted & WH_ACT_ALL) || (granted & actions) == actions;
}
