/*
 * version: dispatch from an ecosystem to its comparator, and OSV ecosystem
 * names to ecosystems (OSV schema, "Affected package" ecosystems). The
 * comparators themselves live in src/scan/version/<scheme>.c.
 */
#include <string.h>

#include "scan/version.h"
#include "scan/version/version_int.h"

int wh_version_numcmp(const char *a, size_t alen, const char *b, size_t blen)
{
    while (alen > 0 && *a == '0')
        a++, alen--;
    while (blen > 0 && *b == '0')
        b++, blen--;
    if (alen != blen)
        return alen < blen ? -1 : 1;
    return alen ? memcmp(a, b, alen) : 0;
}

int wh_version_bytecmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int r = memcmp(a, b, alen < blen ? alen : blen);
    if (r != 0)
        return r;
    return (alen > blen) - (alen < blen);
}

int wh_version_cmp(enum wh_eco eco, const char *a, const char *b)
{
    switch (eco) {
    case WH_ECO_DPKG:
        return wh_version_dpkg_cmp(a, b);
    case WH_ECO_APK:
        return wh_version_apk_cmp(a, b);
    case WH_ECO_RPM:
        return wh_version_rpm_cmp(a, b);
    case WH_ECO_SEMVER:
        return wh_version_semver_cmp(WH_SEMVER_STRICT, a, b);
    case WH_ECO_PEP440:
        return wh_version_pep440_cmp(a, b);
    case WH_ECO_MAVEN:
        return wh_version_maven_cmp(a, b);
    case WH_ECO_GO:
        return wh_version_semver_cmp(WH_SEMVER_GO, a, b);
    case WH_ECO_NPM:
        return wh_version_semver_cmp(WH_SEMVER_NPM, a, b);
    }
    return wh_version_sign(strcmp(a, b)); /* not reached for a valid enum */
}

bool wh_version_valid(enum wh_eco eco, const char *v)
{
    switch (eco) {
    case WH_ECO_DPKG:
        return wh_version_dpkg_valid(v);
    case WH_ECO_APK:
        return wh_version_apk_valid(v);
    case WH_ECO_RPM:
        return wh_version_rpm_valid(v);
    case WH_ECO_SEMVER:
        return wh_version_semver_valid(WH_SEMVER_STRICT, v);
    case WH_ECO_PEP440:
        return wh_version_pep440_valid(v);
    case WH_ECO_MAVEN:
        return wh_version_maven_valid(v);
    case WH_ECO_GO:
        return wh_version_semver_valid(WH_SEMVER_GO, v);
    case WH_ECO_NPM:
        return wh_version_semver_valid(WH_SEMVER_NPM, v);
    }
    return false;
}

/*
 * OSV ecosystem names, matched on the part before the first ':' (the rest is a
 * release: "Debian:12", "Alpine:v3.18", "Ubuntu:Pro:18.04:LTS"). crates.io,
 * Hex and Pub use SemVer; RubyGems, NuGet and Packagist have schemes of
 * their own that are not implemented, so they are refused.
 */
int wh_version_eco_from_osv(enum wh_eco *out, const char *ecosystem)
{
    static const struct {
        const char *name;
        enum wh_eco eco;
    } names[] = {
        {"Debian", WH_ECO_DPKG},      {"Ubuntu", WH_ECO_DPKG},     {"Alpine", WH_ECO_APK},
        {"Wolfi", WH_ECO_APK},        {"Chainguard", WH_ECO_APK},  {"Red Hat", WH_ECO_RPM},
        {"Rocky Linux", WH_ECO_RPM},  {"AlmaLinux", WH_ECO_RPM},   {"SUSE", WH_ECO_RPM},
        {"openSUSE", WH_ECO_RPM},     {"Photon OS", WH_ECO_RPM},   {"Mageia", WH_ECO_RPM},
        {"Azure Linux", WH_ECO_RPM},  {"openEuler", WH_ECO_RPM},   {"npm", WH_ECO_NPM},
        {"PyPI", WH_ECO_PEP440},      {"Go", WH_ECO_GO},           {"Maven", WH_ECO_MAVEN},
        {"crates.io", WH_ECO_SEMVER}, {"Hex", WH_ECO_SEMVER},      {"Pub", WH_ECO_SEMVER},
    };
    const char *colon = strchr(ecosystem, ':');
    size_t n = colon ? (size_t)(colon - ecosystem) : strlen(ecosystem);

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strlen(names[i].name) == n && memcmp(names[i].name, ecosystem, n) == 0) {
            *out = names[i].eco;
            return 0;
        }
    }
    return wh_error_set(WH_EINVALID, "unsupported OSV ecosystem '%s'", ecosystem);
}
