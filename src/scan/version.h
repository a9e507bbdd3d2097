/*
 * version: ordering of package version strings, one comparator per ecosystem,
 * each exact to its reference implementation (dpkg verrevcmp, apk-tools
 * apk_version_compare, rpm rpmvercmp, semver 2.0.0, PEP 440, Maven
 * ComparableVersion). Used by the vulnerability matcher to test whether an
 * installed version falls inside an advisory's affected range.
 */
#ifndef WH_SCAN_VERSION_H
#define WH_SCAN_VERSION_H

#include <stdbool.h>

#include "common/common.h"

enum wh_eco { WH_ECO_DPKG, WH_ECO_APK, WH_ECO_RPM, WH_ECO_SEMVER, WH_ECO_PEP440, WH_ECO_MAVEN, WH_ECO_GO /* semver with a leading v */ , WH_ECO_NPM /* semver */ };

/* Compares two version strings of ecosystem `eco`: <0, 0, >0. Never fails: an
 * invalid string compares by the ecosystem's fallback rule (document it). */
int wh_version_cmp(enum wh_eco eco, const char *a, const char *b);

/* True if `v` is a well-formed version of `eco`. */
bool wh_version_valid(enum wh_eco eco, const char *v);

/* Ecosystem from an OSV ecosystem name ("Debian", "Debian:12", "Alpine:v3.18", "Ubuntu:22.04", "npm", "PyPI", "Go", "Maven", "crates.io", "RubyGems"...) -> 0 or WH_EINVALID */
int wh_version_eco_from_osv(enum wh_eco *out, const char *ecosystem);

#endif
