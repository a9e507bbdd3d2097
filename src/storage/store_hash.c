/*
 * store_hash.c: a sha256 whose running state can be saved and resumed in
 * another process.
 *
 * Why the low-level SHA256_CTX: an upload session's bytes arrive in chunks,
 * possibly on different nodes, and each chunk must be hashed once, as it is
 * staged. OpenSSL 3's EVP interface offers no way to export a digest's
 * internal state, so either the state is taken from the (deprecated but
 * still shipped and maintained) SHA256_* functions, whose context is a plain
 * struct of integers, or every resume re-reads all the staged bytes, which
 * turns a push of N chunks into O(N^2) reading and, on an object store, a
 * download of the whole upload per PATCH. We take the context, and guard it:
 * the saved text names OpenSSL's major version and the context's size, and
 * a restored context must agree with the byte count the caller recorded
 * (its bit length, its partial-block fill, its digest length). When any of
 * that does not hold, store_sha_load refuses the text and the driver falls
 * back to re-hashing the staged bytes: slower, never wrong. The deprecation
 * warnings are silenced for this file only.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "storage/store_int.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

struct store_sha {
    SHA256_CTX ctx;
};

_Static_assert(2 * sizeof(SHA256_CTX) + 64 < STORE_SHA_TEXT_MAX, "the saved state fits");

store_sha *store_sha_new(void)
{
    store_sha *h = wh_calloc(1, sizeof(*h));
    SHA256_Init(&h->ctx);
    return h;
}

void store_sha_free(store_sha *h)
{
    free(h);
}

void store_sha_update(store_sha *h, const void *p, size_t n)
{
    SHA256_Update(&h->ctx, p, n);
}

void store_sha_copy(store_sha *dst, const store_sha *src)
{
    dst->ctx = src->ctx;
}

void store_sha_digest(const store_sha *h, struct wh_digest *out)
{
    SHA256_CTX c = h->ctx;
    unsigned char md[SHA256_DIGEST_LENGTH];
    static const char hex[] = "0123456789abcdef";
    char text[8 + 2 * SHA256_DIGEST_LENGTH];
    SHA256_Final(md, &c);
    memcpy(text, "sha256:", 7);
    for (size_t i = 0; i < sizeof(md); i++) {
        text[7 + 2 * i] = hex[md[i] >> 4];
        text[8 + 2 * i] = hex[md[i] & 15];
    }
    text[7 + 2 * SHA256_DIGEST_LENGTH] = '\0';
    wh_digest_parse(out, text, strlen(text));
}

/* "sha256-ossl<major>-<context size>:", the saved text's tag, built once. */
static char sha_tag[64];
static size_t sha_tag_len;
static pthread_once_t sha_tag_once = PTHREAD_ONCE_INIT;

static void sha_tag_build(void)
{
    int n = snprintf(sha_tag, sizeof(sha_tag), "sha256-ossl%u-%zu:",
                     (unsigned)(OpenSSL_version_num() >> 28), sizeof(SHA256_CTX));
    sha_tag_len = n > 0 && (size_t)n < sizeof(sha_tag) ? (size_t)n : 0;
}

static const char *sha_tag_get(size_t *len)
{
    pthread_once(&sha_tag_once, sha_tag_build);
    *len = sha_tag_len;
    return sha_tag;
}

void store_sha_save(const store_sha *h, char out[STORE_SHA_TEXT_MAX])
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *b = (const unsigned char *)&h->ctx;
    size_t n;
    const char *tag = sha_tag_get(&n);
    memcpy(out, tag, n);
    for (size_t i = 0; i < sizeof(SHA256_CTX); i++) {
        out[n++] = hex[b[i] >> 4];
        out[n++] = hex[b[i] & 15];
    }
    out[n] = '\0';
}

static int unhex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int store_sha_load(store_sha *h, const char *text, uint64_t bytes)
{
    SHA256_CTX c;
    unsigned char *b = (unsigned char *)&c;
    size_t plen;
    const char *prefix = sha_tag_get(&plen);
    if (!text || plen == 0 || strncmp(text, prefix, plen) != 0 ||
        strlen(text + plen) != 2 * sizeof(SHA256_CTX))
        return wh_error_set(WH_EINVALID, "saved hash state is not of this OpenSSL");
    for (size_t i = 0; i < sizeof(SHA256_CTX); i++) {
        int hi = unhex(text[plen + 2 * i]), lo = unhex(text[plen + 2 * i + 1]);
        if (hi < 0 || lo < 0)
            return wh_error_set(WH_EINVALID, "saved hash state is damaged");
        b[i] = (unsigned char)(hi << 4 | lo);
    }
    /* the context must describe exactly `bytes` bytes hashed by SHA-256 */
    uint64_t bits = ((uint64_t)c.Nh << 32) | c.Nl;
    if (bytes > UINT64_MAX / 8 || bits != bytes * 8 || c.num != bytes % SHA256_CBLOCK ||
        c.md_len != SHA256_DIGEST_LENGTH)
        return wh_error_set(WH_EINVALID, "saved hash state does not cover %" PRIu64 " bytes",
                            bytes);
    h->ctx = c;
    return 0;
}

#pragma GCC diagnostic pop
