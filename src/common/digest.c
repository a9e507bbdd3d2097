/*
 * digest.c: content digests as the OCI image spec defines them
 * (descriptor.md, "Digests"): `algorithm ":" encoded`, here sha256 and sha512
 * with lower-case hex. Hashing goes through OpenSSL's EVP interface, which
 * uses SHA-NI / AVX2 where the CPU has them.
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct wh_hasher {
    EVP_MD_CTX *ctx;
    enum wh_digest_alg alg;
};

static bool is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

int wh_digest_parse(struct wh_digest *out, const char *s, size_t len)
{
    size_t hexlen;
    enum wh_digest_alg alg;

    if (len > 7 && memcmp(s, "sha256:", 7) == 0) {
        alg = WH_DIGEST_SHA256;
        hexlen = 64;
        s += 7, len -= 7;
    } else if (len > 7 && memcmp(s, "sha512:", 7) == 0) {
        alg = WH_DIGEST_SHA512;
        hexlen = 128;
        s += 7, len -= 7;
    } else {
        return wh_error_set(WH_EINVALID, "unsupported or malformed digest");
    }
    if (len != hexlen || !is_lower_hex(s, len))
        return wh_error_set(WH_EINVALID, "malformed digest");
    out->alg = alg;
    snprintf(out->str, sizeof(out->str), "%s:%.*s", alg == WH_DIGEST_SHA256 ? "sha256" : "sha512",
             (int)len, s);
    return 0;
}

const char *wh_digest_hex(const struct wh_digest *d)
{
    return d->str + 7;
}

wh_hasher *wh_hasher_new(enum wh_digest_alg alg)
{
    wh_hasher *h = wh_malloc(sizeof(*h));
    h->alg = alg;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, alg == WH_DIGEST_SHA512 ? EVP_sha512() : EVP_sha256(),
                                     NULL) != 1)
        abort();
    return h;
}

void wh_hasher_free(wh_hasher *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

void wh_hasher_update(wh_hasher *h, const void *p, size_t n)
{
    if (n && EVP_DigestUpdate(h->ctx, p, n) != 1)
        abort();
}

void wh_hasher_final(struct wh_digest *out, wh_hasher *h)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(h->ctx, md, &n) != 1)
        abort();
    out->alg = h->alg;
    char *w = out->str;
    memcpy(w, h->alg == WH_DIGEST_SHA512 ? "sha512:" : "sha256:", 7);
    w += 7;
    for (unsigned i = 0; i < n; i++) {
        *w++ = hex[md[i] >> 4];
        *w++ = hex[md[i] & 15];
    }
    *w = '\0';
}

void wh_digest_of(struct wh_digest *out, enum wh_digest_alg alg, const void *p, size_t n)
{
    wh_hasher *h = wh_hasher_new(alg);
    wh_hasher_update(h, p, n);
    wh_hasher_final(out, h);
    wh_hasher_free(h);
}

int wh_digest_file(struct wh_digest *out, enum wh_digest_alg alg, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return wh_error_set(errno == ENOENT ? WH_ENOTFOUND : WH_ERROR, "open %s: %s", path,
                            strerror(errno));
    wh_hasher *h = wh_hasher_new(alg);
    char *buf = wh_malloc(1 << 20);
    int rc = 0;
    for (;;) {
        ssize_t r = read(fd, buf, 1 << 20);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = wh_error_set(WH_ERROR, "read %s: %s", path, strerror(errno));
            break;
        }
        if (r == 0)
            break;
        wh_hasher_update(h, buf, (size_t)r);
    }
    if (rc == 0)
        wh_hasher_final(out, h);
    free(buf);
    wh_hasher_free(h);
    close(fd);
    return rc;
}
