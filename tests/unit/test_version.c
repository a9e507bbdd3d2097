/*
 * Unit tests for scan/version: every line of tests/data/version/<eco>.txt is
 * checked in both directions (cmp(a,b) and -cmp(b,a)), validity lines with
 * wh_version_valid(). Data format, one case a line, '#' starts a comment:
 *   a <op> b    op is <, = or >
 *   v           v is a well-formed version
 *   !v          v is not ("!" alone: the empty string)
 * Tests run from the repository root.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "scan/version.h"

#define DATA_DIR "tests/data/version"

static const struct {
    const char *file;
    enum wh_eco eco;
} data_files[] = {
    {"dpkg.txt", WH_ECO_DPKG},     {"apk.txt", WH_ECO_APK},     {"rpm.txt", WH_ECO_RPM},
    {"semver.txt", WH_ECO_SEMVER}, {"pep440.txt", WH_ECO_PEP440}, {"maven.txt", WH_ECO_MAVEN},
    {"go.txt", WH_ECO_GO},         {"npm.txt", WH_ECO_NPM},
};

static int sign(int x)
{
    return (x > 0) - (x < 0);
}

/* Splits `line` into at most 3 blank-separated words; returns the count. */
static int split_words(char *line, char *words[3])
{
    int n = 0;
    char *save = NULL;
    for (char *w = strtok_r(line, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
        if (n == 3)
            return 4;
        words[n++] = w;
    }
    return n;
}

/* Runs one data file; returns the number of cases checked, fails on errors. */
static int run_file(const char *name, enum wh_eco eco)
{
    char path[512], line[4096];
    int cases = 0, failures = 0, lineno = 0;

    snprintf(path, sizeof(path), DATA_DIR "/%s", name);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s (tests run from the repository root)", path);
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *w[3];
        int n = split_words(line, w);
        if (n == 0)
            continue;
        cases++;
        if (n == 1) {
            bool want = w[0][0] != '!';
            const char *v = want ? w[0] : w[0] + 1;
            if (wh_version_valid(eco, v) != want) {
                print_error("%s:%d: '%s' should be %s\n", path, lineno, v, want ? "valid" : "invalid");
                failures++;
            }
            continue;
        }
        if (n != 3 || strlen(w[1]) != 1 || !strchr("<=>", w[1][0])) {
            print_error("%s:%d: malformed line\n", path, lineno);
            failures++;
            continue;
        }
        int want = w[1][0] == '<' ? -1 : w[1][0] == '=' ? 0 : 1;
        int ab = sign(wh_version_cmp(eco, w[0], w[2]));
        int ba = sign(wh_version_cmp(eco, w[2], w[0]));
        if (ab != want || -ba != want) {
            print_error("%s:%d: %s %s %s: cmp(a,b)=%d cmp(b,a)=%d\n", path, lineno, w[0], w[1], w[2],
                        ab, ba);
            failures++;
        }
        if (wh_version_cmp(eco, w[0], w[0]) != 0 || wh_version_cmp(eco, w[2], w[2]) != 0) {
            print_error("%s:%d: not reflexive\n", path, lineno);
            failures++;
        }
    }
    fclose(f);
    if (failures)
        fail_msg("%s: %d of %d cases failed", path, failures, cases);
    assert_true(cases > 0);
    return cases;
}

static void test_version__dpkg(void **state)
{
    (void)state;
    run_file("dpkg.txt", WH_ECO_DPKG);
}

static void test_version__apk(void **state)
{
    (void)state;
    run_file("apk.txt", WH_ECO_APK);
}

static void test_version__rpm(void **state)
{
    (void)state;
    run_file("rpm.txt", WH_ECO_RPM);
}

static void test_version__semver(void **state)
{
    (void)state;
    run_file("semver.txt", WH_ECO_SEMVER);
}

static void test_version__pep440(void **state)
{
    (void)state;
    run_file("pep440.txt", WH_ECO_PEP440);
}

static void test_version__maven(void **state)
{
    (void)state;
    run_file("maven.txt", WH_ECO_MAVEN);
}

static void test_version__go(void **state)
{
    (void)state;
    run_file("go.txt", WH_ECO_GO);
}

static void test_version__npm(void **state)
{
    (void)state;
    run_file("npm.txt", WH_ECO_NPM);
}

/* Every .txt in the data directory belongs to an ecosystem tested above. */
static void test_version__every_data_file_is_known(void **state)
{
    (void)state;
    DIR *d = opendir(DATA_DIR);
    assert_non_null(d);
    int seen = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 4, ".txt") != 0)
            continue;
        bool known = false;
        for (size_t i = 0; i < sizeof(data_files) / sizeof(data_files[0]); i++)
            known = known || strcmp(data_files[i].file, e->d_name) == 0;
        if (!known)
            fail_msg("%s/%s has no ecosystem in test_version.c", DATA_DIR, e->d_name);
        seen++;
    }
    closedir(d);
    assert_int_equal(seen, (int)(sizeof(data_files) / sizeof(data_files[0])));
}

static void test_version__eco_from_osv(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int rc;
        enum wh_eco eco;
    } cases[] = {
        {"Debian", 0, WH_ECO_DPKG},       {"Debian:12", 0, WH_ECO_DPKG},
        {"Debian:sid", 0, WH_ECO_DPKG},   {"Ubuntu:22.04", 0, WH_ECO_DPKG},
        {"Ubuntu:Pro:18.04:LTS", 0, WH_ECO_DPKG}, {"Alpine:v3.18", 0, WH_ECO_APK},
        {"Wolfi", 0, WH_ECO_APK},         {"Rocky Linux:9", 0, WH_ECO_RPM},
        {"Red Hat:rhel_aus:8.4::appstream", 0, WH_ECO_RPM}, {"npm", 0, WH_ECO_NPM},
        {"PyPI", 0, WH_ECO_PEP440},       {"Go", 0, WH_ECO_GO},
        {"Maven", 0, WH_ECO_MAVEN},       {"crates.io", 0, WH_ECO_SEMVER},
        {"RubyGems", WH_EINVALID, 0},     {"NuGet", WH_EINVALID, 0},
        {"debian", WH_EINVALID, 0},       {"", WH_EINVALID, 0},
        {"Debia", WH_EINVALID, 0},        {"Debiann:12", WH_EINVALID, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum wh_eco eco = WH_ECO_MAVEN;
        int rc = wh_version_eco_from_osv(&eco, cases[i].name);
        if (rc != cases[i].rc)
            fail_msg("'%s': rc %d, want %d", cases[i].name, rc, cases[i].rc);
        if (rc == 0 && eco != cases[i].eco)
            fail_msg("'%s': ecosystem %d, want %d", cases[i].name, (int)eco, (int)cases[i].eco);
    }
}

/* Odd inputs for every ecosystem: no crash, reflexive, antisymmetric. */
static void test_version__odd_inputs(void **state)
{
    (void)state;
    static const char *const odd[] = {
        "", " ", "-", ":", "~", "^", "_", ".", "+", "!", "0", "00", "~~", "^^", "-r", "1-", "1:",
        "1.", "1..", "v", "=", "1!", "1+", "1-r", "1_", "1~", "a:b:c-d-e", "\xff\xfe",
        "1.0-r1-r2", "99999999999999999999999999999999999999:1",
        "1-------------------------------------------------------------------a",
        "1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a",
    };
    for (int e = WH_ECO_DPKG; e <= WH_ECO_NPM; e++) {
        for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
            (void)wh_version_valid((enum wh_eco)e, odd[i]);
            assert_int_equal(wh_version_cmp((enum wh_eco)e, odd[i], odd[i]), 0);
            for (size_t j = 0; j < sizeof(odd) / sizeof(odd[0]); j++) {
                int ab = sign(wh_version_cmp((enum wh_eco)e, odd[i], odd[j]));
                int ba = sign(wh_version_cmp((enum wh_eco)e, odd[j], odd[i]));
                if (ab != -ba)
                    fail_msg("eco %d: '%s' vs '%s' not antisymmetric", e, odd[i], odd[j]);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version__dpkg),
        cmocka_unit_test(test_version__apk),
        cmocka_unit_test(test_version__rpm),
        cmocka_unit_test(test_version__semver),
        cmocka_unit_test(test_version__pep440),
        cmocka_unit_test(test_version__maven),
        cmocka_unit_test(test_version__go),
        cmocka_unit_test(test_version__npm),
        cmocka_unit_test(test_version__every_data_file_is_known),
        cmocka_unit_test(test_version__eco_from_osv),
        cmocka_unit_test(test_version__odd_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
