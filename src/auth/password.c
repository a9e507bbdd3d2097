/*
 * auth/password: argon2id password hashes in the PHC string format (RFC 9106,
 * through libargon2), Harbor's password and robot-secret rules, robot secret
 * generation and a constant-time comparison. Storing the hashes is the db
 * module's business; counting failed attempts is throttle.c's.
 */
#include <argon2.h>
#include <pthread.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"

#define ARGON2ID_PREFIX "$argon2id$v=19$"

/* One argon2 computation at a time: each holds m KiB of memory. */
static pthread_mutex_t argon2_lock = PTHREAD_MUTEX_INITIALIZER;

int wh_auth_password_hash(char *out, size_t cap, const char *password)
{
    unsigned char salt[WH_AUTH_ARGON2_SALT_LEN];
    size_t pwlen = strlen(password);
    int rc;

    if (cap)
        out[0] = '\0';
    if (pwlen > WH_AUTH_PASSWORD_MAX)
        return wh_error_set(WH_EINVALID, "password longer than %d bytes", WH_AUTH_PASSWORD_MAX);
    size_t need = argon2_encodedlen(WH_AUTH_ARGON2_T, WH_AUTH_ARGON2_M_KIB, WH_AUTH_ARGON2_P,
                                    WH_AUTH_ARGON2_SALT_LEN, WH_AUTH_ARGON2_HASH_LEN, Argon2_id);
    if (need > cap)
        return wh_error_set(WH_ETOOBIG, "password hash needs %zu bytes", need);
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return wh_error_set(WH_ERROR, "RAND_bytes failed");
    pthread_mutex_lock(&argon2_lock);
    rc = argon2id_hash_encoded(WH_AUTH_ARGON2_T, WH_AUTH_ARGON2_M_KIB, WH_AUTH_ARGON2_P, password,
                               pwlen, salt, sizeof(salt), WH_AUTH_ARGON2_HASH_LEN, out, cap);
    pthread_mutex_unlock(&argon2_lock);
    OPENSSL_cleanse(salt, sizeof(salt));
    if (rc != ARGON2_OK)
        return wh_error_set(WH_ERROR, "argon2id: %s", argon2_error_message(rc));
    return 0;
}

/* Reads a decimal number of at most 9 digits at *p, advancing it. */
static bool read_uint(const char **p, unsigned *out)
{
    const char *s = *p;
    unsigned v = 0;
    size_t n = 0;

    while (s[n] >= '0' && s[n] <= '9' && n < 9)
        v = v * 10 + (unsigned)(s[n++] - '0');
    if (n == 0 || (s[n] >= '0' && s[n] <= '9') || (n > 1 && s[0] == '0'))
        return false;
    *out = v;
    *p = s + n;
    return true;
}

/* Checks that `enc` is "$argon2id$v=19$m=M,t=T,p=P$..." with a cost we are
 * willing to pay: a corrupt or hostile row must not make us allocate 4 GiB. */
static int check_encoded(const char *enc)
{
    const char *p = enc;
    unsigned m, t, par;

    if (strncmp(p, ARGON2ID_PREFIX, strlen(ARGON2ID_PREFIX)) != 0)
        return wh_error_set(WH_EDENIED, "stored hash is not argon2id v19");
    p += strlen(ARGON2ID_PREFIX);
    if (strncmp(p, "m=", 2) != 0 || (p += 2, !read_uint(&p, &m)) || strncmp(p, ",t=", 3) != 0 ||
        (p += 3, !read_uint(&p, &t)) || strncmp(p, ",p=", 3) != 0 ||
        (p += 3, !read_uint(&p, &par)) || *p != '$')
        return wh_error_set(WH_EDENIED, "stored hash has malformed parameters");
    if (m > WH_AUTH_ARGON2_M_KIB_MAX || t == 0 || t > WH_AUTH_ARGON2_T_MAX || par == 0 ||
        par > WH_AUTH_ARGON2_P_MAX)
        return wh_error_set(WH_EDENIED, "stored hash parameters out of bounds");
    if (strlen(enc) >= WH_AUTH_HASH_MAX)
        return wh_error_set(WH_EDENIED, "stored hash too long");
    return 0;
}

int wh_auth_password_verify(const char *encoded, const char *password)
{
    /* The hash of a random password nobody knows, with the current parameters,
     * so that unknown users cost what known ones do. */
    static const char dummy[] = "$argon2id$v=19$m=7168,t=5,p=1$"
                                "d2hhcmYtZHVtbXktc2FsdA$"
                                "wVBfZHZaQ0kIkDa/MK0sjqvk7okPMAjEAvBghkD5dEc";
    size_t pwlen = strlen(password);
    int rc;

    if (pwlen > WH_AUTH_PASSWORD_MAX)
        return wh_error_set(WH_EDENIED, "password too long");
    if (!encoded) {
        pthread_mutex_lock(&argon2_lock);
        (void)argon2id_verify(dummy, password, pwlen);
        pthread_mutex_unlock(&argon2_lock);
        return wh_error_set(WH_EDENIED, "no such user");
    }
    if ((rc = check_encoded(encoded)) < 0)
        return rc;
    pthread_mutex_lock(&argon2_lock);
    rc = argon2id_verify(encoded, password, pwlen);
    pthread_mutex_unlock(&argon2_lock);
    if (rc == ARGON2_OK)
        return 0;
    if (rc == ARGON2_VERIFY_MISMATCH)
        return wh_error_set(WH_EDENIED, "wrong password");
    return wh_error_set(WH_EDENIED, "stored hash unusable: %s", argon2_error_message(rc));
}

/* Counts the classes present in `s`; returns its length. */
static size_t classes(const char *s, bool *lower, bool *upper, bool *digit)
{
    size_t n = 0;

    *lower = *upper = *digit = false;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (c >= 'a' && c <= 'z')
            *lower = true;
        else if (c >= 'A' && c <= 'Z')
            *upper = true;
        else if (c >= '0' && c <= '9')
            *digit = true;
    }
    return n;
}

int wh_auth_password_policy(const char *pw)
{
    bool lower, upper, digit;
    size_t n = classes(pw, &lower, &upper, &digit);

    if (n < WH_AUTH_PASSWORD_POLICY_MIN || n > WH_AUTH_PASSWORD_POLICY_MAX || !lower || !upper ||
        !digit)
        return wh_error_set(WH_EINVALID, "%s", WH_AUTH_PASSWORD_POLICY_MSG);
    return 0;
}

int wh_auth_secret_policy(const char *s)
{
    bool lower, upper, digit;
    size_t n = classes(s, &lower, &upper, &digit);

    if (n < 8 || n > 128)
        return wh_error_set(WH_EINVALID, "the secret must be 8 to 128 characters long");
    if (!lower || !upper || !digit)
        return wh_error_set(WH_EINVALID, "the secret must contain at least one lower-case "
                                         "letter, one upper-case letter and one digit");
    return 0;
}

void wh_auth_secret_new(char out[WH_AUTH_SECRET_LEN + 1])
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char raw[64];

    /* Rejection sampling keeps the 62 symbols uniform (248 = 4 * 62); a secret
     * that misses a class (about 1 in 2000) is drawn again. */
    do {
        size_t n = 0, used = sizeof(raw);
        while (n < WH_AUTH_SECRET_LEN) {
            if (used == sizeof(raw)) {
                if (RAND_bytes(raw, sizeof(raw)) != 1)
                    abort();
                used = 0;
            }
            unsigned char b = raw[used++];
            if (b < 248)
                out[n++] = alphabet[b % 62];
        }
        out[n] = '\0';
    } while (wh_auth_secret_policy(out) < 0);
    OPENSSL_cleanse(raw, sizeof(raw));
    wh_error_clear();
}

bool wh_auth_consttime_eq(const void *a, size_t alen, const void *b, size_t blen)
{
    unsigned char da[32], db[32];
    unsigned int n = 0;

    /* Hashing first makes the comparison independent of the lengths too, up to
     * the hashing time itself. */
    if (EVP_Digest(a, alen, da, &n, EVP_sha256(), NULL) != 1 ||
        EVP_Digest(b, blen, db, &n, EVP_sha256(), NULL) != 1)
        abort();
    return (CRYPTO_memcmp(da, db, sizeof(da)) == 0) & (alen == blen);
}

bool wh_auth_consttime_eq_n(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}
