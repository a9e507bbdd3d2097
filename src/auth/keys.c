/*
 * auth/keys: the token signing key. One ECDSA P-256 key in <dir>/token.key
 * (PKCS#8 PEM, mode 0600), created on first start, and its libtrust key id
 * (the `kid` header of the tokens; distribution's token verifier matches it
 * against its trusted keys). No rotation: replacing the file and restarting
 * invalidates outstanding tokens, which live 30 minutes.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/auth_int.h"

#define KEY_FILE "token.key"
#define KEY_FILE_MAX (16 * 1024)

void wh_auth_keys_free(wh_auth_keys *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey);
    free(k->pub_pem);
    free(k);
}

const char *wh_auth_keys_kid(const wh_auth_keys *k)
{
    return k->kid;
}

const char *wh_auth_keys_public_pem(const wh_auth_keys *k)
{
    return k->pub_pem;
}

/* libtrust's fingerprint: base32 (RFC 4648 alphabet, no padding) of the first
 * 240 bits of SHA-256(DER SPKI), in twelve groups of four joined by ':'. */
static int make_kid(char out[WH_AUTH_KID_MAX], EVP_PKEY *pkey)
{
    static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    unsigned char *der = NULL, md[32];
    unsigned int mdlen = 0;
    int derlen = i2d_PUBKEY(pkey, &der);

    if (derlen <= 0)
        return wh_error_set(WH_ERROR, "cannot encode the public key");
    int ok = EVP_Digest(der, (size_t)derlen, md, &mdlen, EVP_sha256(), NULL);
    OPENSSL_free(der);
    if (ok != 1)
        return wh_error_set(WH_ERROR, "sha256 failed");

    /* 30 bytes = 240 bits = 48 symbols, no partial group. */
    size_t o = 0, sym = 0;
    for (size_t i = 0; i < 30; i += 5) {
        uint64_t v = 0;
        for (size_t j = 0; j < 5; j++)
            v = v << 8 | md[i + j];
        for (int s = 35; s >= 0; s -= 5) {
            if (sym && sym % 4 == 0)
                out[o++] = ':';
            out[o++] = b32[(v >> s) & 31];
            sym++;
        }
    }
    out[o] = '\0';
    assert(o == 59);
    return 0;
}

/* Loads and checks the P-256 key at `path`; WH_ENOTFOUND if there is none. */
static int load_key(EVP_PKEY **out, const char *path)
{
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;
    char group[32] = "";
    struct stat st;
    int error = 0;

    if (stat(path, &st) < 0) {
        if (errno == ENOENT)
            return WH_ENOTFOUND;
        return wh_error_set(WH_ERROR, "stat %s: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode) || st.st_size > KEY_FILE_MAX) {
        error = wh_error_set(WH_EINVALID, "%s: not a key file", path);
        goto out;
    }
    if (st.st_mode & 077)
        wh_log_warn("auth: %s is accessible to group or others (mode %03o)", path,
                    (unsigned)(st.st_mode & 0777));
    if (!(bio = BIO_new_file(path, "r"))) {
        error = wh_error_set(WH_ERROR, "cannot open %s", path);
        goto out;
    }
    if (!(pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL))) {
        error = wh_error_set(WH_EINVALID, "%s: not a PEM private key", path);
        goto out;
    }
    if (!EVP_PKEY_is_a(pkey, "EC") ||
        !EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                        NULL) ||
        strcmp(group, "prime256v1") != 0) {
        error = wh_error_set(WH_EINVALID, "%s: not an ECDSA P-256 key", path);
        goto out;
    }
    *out = pkey;
    pkey = NULL;
out:
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    return error;
}

/* Writes a fresh key to a temporary file and links it to `path` without
 * replacing an existing file (link(2) fails with EEXIST where rename(2) would
 * overwrite), so two processes starting together agree on one key. */
static int create_key(const char *dir, const char *path)
{
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;
    char *tmp = wh_sprintf("%s/.token.key.XXXXXX", dir);
    int fd = -1, error = 0;
    bool linked = false;

    if (!(pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"))) {
        error = wh_error_set(WH_ERROR, "cannot generate a P-256 key");
        goto out;
    }
    if ((fd = mkstemp(tmp)) < 0) { /* mode 0600 */
        error = wh_error_set(WH_ERROR, "mkstemp %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (!(bio = BIO_new_fd(fd, BIO_NOCLOSE)) ||
        PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
        BIO_flush(bio) != 1) {
        error = wh_error_set(WH_ERROR, "cannot write %s", tmp);
        goto out;
    }
    if (fsync(fd) < 0) {
        error = wh_error_set(WH_ERROR, "fsync %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (link(tmp, path) < 0) {
        if (errno != EEXIST)
            error = wh_error_set(WH_ERROR, "link %s: %s", path, strerror(errno));
        goto out; /* EEXIST: someone else's key won; the caller loads it */
    }
    linked = true;
out:
    BIO_free(bio);
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    if (!error && linked && (error = wh_fsync_dir(dir)) == 0)
        wh_log_info("auth: created token signing key %s", path);
    EVP_PKEY_free(pkey);
    free(tmp);
    return error;
}

/* The keys of `pkey` (taken over, freed on failure). */
static int keys_from(wh_auth_keys **out, EVP_PKEY *pkey)
{
    wh_auth_keys *k = wh_calloc(1, sizeof(*k));
    BIO *mem = NULL;
    int error;
    if ((error = make_kid(k->kid, pkey)) < 0)
        goto out;
    char *pem;
    long pemlen;
    if (!(mem = BIO_new(BIO_s_mem())) || PEM_write_bio_PUBKEY(mem, pkey) != 1 ||
        (pemlen = BIO_get_mem_data(mem, &pem)) <= 0) {
        error = wh_error_set(WH_ERROR, "cannot encode the public key");
        goto out;
    }
    k->pub_pem = wh_strndup(pem, (size_t)pemlen);
    k->pkey = pkey;
    pkey = NULL;
    *out = k;
    k = NULL;
out:
    BIO_free(mem);
    EVP_PKEY_free(pkey);
    wh_auth_keys_free(k);
    return error;
}

int wh_auth_keys_load(wh_auth_keys **out, const char *path)
{
    EVP_PKEY *pkey = NULL;
    int error = load_key(&pkey, path);
    if (error == WH_ENOTFOUND)
        return wh_error_set(WH_ENOTFOUND, "%s: no such file", path);
    if (error < 0)
        return error;
    return keys_from(out, pkey);
}

int wh_auth_keys_load_or_create(wh_auth_keys **out, const char *dir)
{
    EVP_PKEY *pkey = NULL;
    char *path = wh_sprintf("%s/" KEY_FILE, dir);
    int error;

    if ((error = load_key(&pkey, path)) == WH_ENOTFOUND) {
        if ((error = wh_mkdirs(dir, 0700)) < 0 || (error = create_key(dir, path)) < 0)
            goto out;
        error = load_key(&pkey, path);
    }
    if (error == 0)
        error = keys_from(out, pkey);
out:
    free(path);
    return error;
}
