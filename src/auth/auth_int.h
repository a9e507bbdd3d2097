/* auth: declarations shared by the module's files only. */
#ifndef WH_AUTH_INT_H
#define WH_AUTH_INT_H

#include <assert.h>
#include <openssl/evp.h>

#include "auth/auth.h"

struct wh_auth_keys {
    EVP_PKEY *pkey;            /* the P-256 private key (the public half is in it) */
    char kid[WH_AUTH_KID_MAX]; /* libtrust key id */
    char *pub_pem;             /* public key, PEM SubjectPublicKeyInfo */
};

/*
 * Strict base64 decoding (RFC 4648): `url` selects the "-_" alphabet without
 * padding, otherwise "+/" with the padding required. Unused trailing bits must
 * be zero. Returns 0, WH_EINVALID or WH_ETOOBIG; the length in `*outlen`.
 */
int wh_auth_b64_decode(void *out, size_t cap, size_t *outlen, const char *s, size_t len, bool url);

#endif
