/*
 * Private interface of the version comparators: one compare/valid pair per
 * scheme, plus the digit-run helpers they share. Only src/scan/version/ and
 * the tests include this.
 */
#ifndef WH_SCAN_VERSION_INT_H
#define WH_SCAN_VERSION_INT_H

#include <stdbool.h>
#include <stddef.h>

/* Which flavour of semver a string is read as (see semver.c). */
enum wh_semver_mode {
    WH_SEMVER_STRICT, /* SemVer 2.0.0, no prefix (OSV SEMVER ranges) */
    WH_SEMVER_GO,     /* Go modules: optional "v", "v1"/"v1.2" shorthands */
    WH_SEMVER_NPM,    /* node-semver: optional "v" or "=" */
};

int wh_version_dpkg_cmp(const char *a, const char *b);
bool wh_version_dpkg_valid(const char *v);
int wh_version_apk_cmp(const char *a, const char *b);
bool wh_version_apk_valid(const char *v);
int wh_version_rpm_cmp(const char *a, const char *b);
bool wh_version_rpm_valid(const char *v);
int wh_version_semver_cmp(enum wh_semver_mode mode, const char *a, const char *b);
bool wh_version_semver_valid(enum wh_semver_mode mode, const char *v);
int wh_version_pep440_cmp(const char *a, const char *b);
bool wh_version_pep440_valid(const char *v);
int wh_version_maven_cmp(const char *a, const char *b);
bool wh_version_maven_valid(const char *v);

/*
 * Compares two runs of ASCII digits as unbounded unsigned integers: leading
 * zeros are skipped, then the longer run is larger, then memcmp decides. An
 * empty run is zero. Returns <0, 0 or >0. Never overflows.
 */
int wh_version_numcmp(const char *a, size_t alen, const char *b, size_t blen);

/* Lexicographic byte comparison, a shorter prefix sorting first: <0, 0, >0. */
int wh_version_bytecmp(const char *a, size_t alen, const char *b, size_t blen);

/* -1, 0 or 1 for the sign of `x`. */
static inline int wh_version_sign(int x)
{
    return (x > 0) - (x < 0);
}

static inline bool wh_version_isdigit(int c)
{
    return c >= '0' && c <= '9';
}

static inline bool wh_version_isalpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

#endif
