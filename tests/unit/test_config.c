/*
 * Unit tests for config/ and the command-line argument parser: every key's
 * accepted and refused values, sizes, where a problem is reported (file line,
 * variable), duplicate and unknown keys, YAML lists, all problems collected
 * at once, and the printed configuration loading back to the same values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "cli/cli.h"
#include "config/config.h"

static const struct {
    const char *key, *value;
    bool ok;
} set_cases[] = {
    {"listen", "127.0.0.1:5000", true},
    {"listen", "0.0.0.0:0", true},
    {"listen", "[::1]:5000", true},
    {"listen", "[::]:443", true},
    {"listen", "localhost:5601", false},
    {"listen", "::1:5000", false},   /* IPv6 without brackets */
    {"listen", "127.0.0.1", false},  /* no port */
    {"listen", "127.0.0.1:65536", false},
    {"listen", ":5000", false},
    {"listen", "", false},
    {"data_dir", "/srv/wharf", true},
    {"data_dir", "", false},
    {"http.threads", "1", true},
    {"http.threads", "0", false},
    {"http.threads", "1025", false},
    {"http.threads", "-1", false},
    {"http.threads", "four", false},
    {"scan.lease", "1", true},
    {"scan.lease", "3600", true},
    {"scan.lease", "0", false},
    {"scan.lease", "3601", false},
    {"scan.lease", "1m", false},
    {"http.max_connections", "0", false},
    {"http.max_connections", "10", true},
    {"http.idle_timeout", "0", false},
    {"http.header_timeout", "0", false},
    {"http.header_timeout", "3", true},
    {"http.max_connections_per_ip", "0", true}, /* no cap */
    {"http.max_connections_per_ip", "abc", false},
    {"http.shutdown_grace", "0", true},
    {"http.trusted_proxies", "", true},
    {"http.trusted_proxies", "127.0.0.1, 10.0.0.0/8 fd00::/8", true},
    {"http.trusted_proxies", "not-an-ip", false},
    {"http.trusted_proxies", "10.0.0.0/33", false},
    {"limits.max_header_bytes", "0", false},
    {"limits.max_header_bytes", "1K", false},
    {"limits.max_header_bytes", "16K", true},
    {"limits.max_header_bytes", "2M", false},
    {"limits.max_manifest_bytes", "0", false},
    {"limits.max_manifest_bytes", "1K", true},
    {"limits.max_blob_bytes", "0", false},
    {"limits.max_blob_bytes", "64K", true},
    {"limits.max_blob_bytes", "64KiB", true},
    {"limits.max_blob_bytes", "1T", true},
    {"limits.max_blob_bytes", "64X", false},
    {"limits.max_blob_bytes", "KiB", false},
    {"limits.max_uploads", "0", false},
    {"limits.max_uploads", "3", true},
    {"uploads.ttl", "0", false},
    {"uploads.ttl", "2", true},
    {"uploads.ttl", "soon", false},
    {"tls.cert", "", true},
    {"auth.token_ttl", "0", false},
    {"auth.token_ttl", "90", true},
    {"auth.login_threads", "0", false},
    {"auth.login_threads", "65", false},
    {"auth.login_queue", "0", false},
    {"auth.login_queue", "8", true},
    {"audit.retention_days", "0", true},
    {"audit.retention_days", "-1", false},
    {"log.access", "off", true},
    {"log.access", "maybe", false},
    {"log.level", "debug", true},
    {"log.level", "DEBUG", true},
    {"log.level", "verbose", false},
    {"log.level", "", false},
    {"registry.read_only", "yes", true},
    {"registry.delete_enabled", "nope", false},
    {"no.such_key", "1", false},
};

static void test_config__set_values(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(set_cases) / sizeof(set_cases[0]); i++) {
        struct wh_config c;
        wh_config_defaults(&c);
        int rc = wh_config_set(&c, set_cases[i].key, set_cases[i].value);
        if (set_cases[i].ok != (rc == 0))
            fail_msg("%s = '%s': %s", set_cases[i].key, set_cases[i].value,
                     rc == 0 ? "accepted" : wh_error_msg());
        if (!set_cases[i].ok) {
            /* the message names the key and the value */
            assert_non_null(strstr(wh_error_msg(), set_cases[i].key));
            assert_int_equal(c.nproblems, 1);
        }
    }
}

static void test_config__stored_values(void **state)
{
    (void)state;
    struct wh_config c;
    wh_config_defaults(&c);
    assert_int_equal(wh_config_set(&c, "listen", "[::1]:5601"), 0);
    assert_string_equal(c.listen_host, "::1");
    assert_int_equal(c.port, 5601);
    assert_int_equal(wh_config_set(&c, "log.level", "WARN"), 0);
    assert_string_equal(c.log_level, "warn");
    assert_int_equal(wh_config_log_level(&c), WH_LOG_WARN);
    assert_int_equal(wh_config_set(&c, "limits.max_blob_bytes", "3G"), 0);
    assert_true(c.max_blob_bytes == 3ull << 30);
    assert_int_equal(wh_config_set(&c, "audit.retention_days", "7"), 0);
    assert_true(c.audit_retention_days == 7);
    assert_int_equal(wh_config_set(&c, "http.max_connections_per_ip", "0"), 0);
    assert_int_equal(c.max_connections_per_ip, 0);
}

static const struct {
    const char *in;
    uint64_t out;
    bool ok;
} size_cases[] = {
    {"0", 0, true},       {"1024", 1024, true},       {"16K", 16384, true},
    {"16k", 16384, true}, {"4M", 4 << 20, true},      {"1G", 1ull << 30, true},
    {"2T", 2ull << 40, true}, {"8KiB", 8192, true},   {"8iB", 0, false},
    {"K", 0, false},      {"", 0, false},             {"1.5M", 0, false},
    {"-1", 0, false},     {"1 K", 0, false},          {"99999999999999999999T", 0, false},
    {"17179869184G", 0, false}, /* 2^34 G overflows */
};

static void test_config__sizes(void **state)
{
    (void)state;
    char text[32];
    for (size_t i = 0; i < sizeof(size_cases) / sizeof(size_cases[0]); i++) {
        uint64_t v = 0;
        int rc = wh_config_parse_size(&v, size_cases[i].in);
        if (size_cases[i].ok != (rc == 0))
            fail_msg("size '%s' %s", size_cases[i].in, rc == 0 ? "accepted" : "refused");
        if (rc == 0) {
            assert_true(v == size_cases[i].out);
            /* formatting gives a text that parses back to the same number */
            wh_config_format_size(text, sizeof(text), v);
            uint64_t back = 1;
            assert_int_equal(wh_config_parse_size(&back, text), 0);
            assert_true(back == v);
        }
    }
    wh_config_format_size(text, sizeof(text), 16384);
    assert_string_equal(text, "16K");
    wh_config_format_size(text, sizeof(text), 1000);
    assert_string_equal(text, "1000");
}

/* Writes `text` to a temp file; the path is the caller's to unlink. */
static void write_tmp(char *path, size_t cap, const char *text)
{
    snprintf(path, cap, "/tmp/wharf-test-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_true(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
}

static void test_config__file_problems_named_with_lines(void **state)
{
    (void)state;
    char path[64], want[128];
    struct wh_config c;
    write_tmp(path, sizeof(path),
              "listen: localhost:5601\n"             /* 1 */
              "http:\n"                              /* 2 */
              "  threads: 0\n"                       /* 3 */
              "  trusted_proxies: [127.0.0.1, not-an-ip]\n" /* 4 */
              "  bogus: 1\n"                         /* 5 */
              "limits:\n"                            /* 6 */
              "  max_uploads: [1, 2]\n"              /* 7 */
              "log:\n"                               /* 8 */
              "  level: verbose\n"                   /* 9 */
              "uploads: 5\n"                         /* 10 */
              "registry:\n"                          /* 11 */
              "  read_only: true\n"                  /* 12 */
              "  read_only: false\n");               /* 13 */
    wh_config_defaults(&c);
    assert_int_equal(wh_config_load_file(&c, path), WH_EINVALID);
    static const struct {
        int line;
        const char *what;
    } expect[] = {
        {1, "listen"}, {3, "http.threads"}, {4, "not-an-ip"}, {5, "unknown key http.bogus"},
        {7, "one value, not a list"}, {9, "log.level"}, {10, "uploads is a section"},
        {13, "already set on line 12"},
    };
    assert_int_equal(c.nproblems, sizeof(expect) / sizeof(expect[0]));
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        snprintf(want, sizeof(want), "%s:%d: ", path, expect[i].line);
        const char *at = strstr(c.problems, want);
        if (!at || !strstr(at, expect[i].what))
            fail_msg("no problem '%s' at line %d in:\n%s", expect[i].what, expect[i].line,
                     c.problems);
    }
    /* the first one is the error message */
    snprintf(want, sizeof(want), "%s:1: listen", path);
    assert_non_null(strstr(wh_error_msg(), want));
    unlink(path);
}

static void test_config__file_good_and_lists(void **state)
{
    (void)state;
    char path[64];
    struct wh_config c;
    write_tmp(path, sizeof(path),
              "# comment\n"
              "listen: \"[::1]:5601\"\n"
              "http:\n"
              "  trusted_proxies:\n"
              "    - 127.0.0.1\n"
              "    - 10.0.0.0/8\n"
              "tls:\n"
              "  cert: ~\n"
              "log: {level: Error, access: no}\n");
    wh_config_defaults(&c);
    assert_int_equal(wh_config_load_file(&c, path), 0);
    assert_int_equal(c.nproblems, 0);
    assert_string_equal(c.trusted_proxies, "127.0.0.1,10.0.0.0/8");
    assert_string_equal(c.log_level, "error");
    assert_false(c.access_log);
    assert_int_equal(c.port, 5601);
    char where[128];
    wh_config_origin(where, sizeof(where), &c, "http.trusted_proxies");
    assert_non_null(strstr(where, ":4"));
    wh_config_origin(where, sizeof(where), &c, "http.threads");
    assert_string_equal(where, "default");
    unlink(path);
    wh_config_defaults(&c);
    assert_int_equal(wh_config_load_file(&c, "/nonexistent/wharf.yaml"), WH_ENOTFOUND);
    assert_non_null(strstr(wh_error_msg(), "/nonexistent/wharf.yaml"));
}

static void test_config__env_named(void **state)
{
    (void)state;
    struct wh_config c;
    setenv("WHARF_MAX_UPLOADS", "0", 1);
    setenv("WHARF_LOG_LEVEL", "DEBUG", 1);
    wh_config_defaults(&c);
    assert_int_equal(wh_config_load_env(&c), WH_EINVALID);
    assert_int_equal(c.nproblems, 1);
    assert_non_null(strstr(c.problems, "WHARF_MAX_UPLOADS (limits.max_uploads)"));
    assert_string_equal(c.log_level, "debug");
    char where[64];
    wh_config_origin(where, sizeof(where), &c, "log.level");
    assert_string_equal(where, "WHARF_LOG_LEVEL");
    unsetenv("WHARF_MAX_UPLOADS");
    unsetenv("WHARF_LOG_LEVEL");
}

/* What wh_config_print writes loads back to the same settings. */
static void test_config__print_loads_back(void **state)
{
    (void)state;
    struct wh_config a, b;
    char path[64];
    wh_config_defaults(&a);
    assert_int_equal(wh_config_set(&a, "listen", "[::1]:7000"), 0);
    assert_int_equal(wh_config_set(&a, "data_dir", "/srv/with \"quotes\" and \\"), 0);
    assert_int_equal(wh_config_set(&a, "limits.max_blob_bytes", "3000"), 0);
    assert_int_equal(wh_config_set(&a, "http.trusted_proxies", "127.0.0.1 10.0.0.0/8"), 0);
    assert_int_equal(wh_config_set(&a, "log.access", "false"), 0);
    snprintf(path, sizeof(path), "/tmp/wharf-test-print-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    wh_config_print(&a, f);
    fclose(f);
    wh_config_defaults(&b);
    if (wh_config_load_file(&b, path) != 0)
        fail_msg("%s", b.problems);
    unlink(path);
    /* settings equal; bookkeeping differs */
    assert_memory_equal(&a, &b, offsetof(struct wh_config, file));
}

/* The database keys: a driver from the list, its DSN with postgres only, a bounded pool. */
static void test_config__db_keys(void **state)
{
    (void)state;
    struct wh_config c;
    wh_config_defaults(&c);
    assert_string_equal(c.db_driver, "sqlite");
    assert_int_equal(c.db_pool_size, 8);
    assert_int_equal(wh_config_check_db(&c), 0);
    assert_int_equal(wh_config_set(&c, "db.driver", "mysql"), WH_EINVALID);
    assert_int_equal(wh_config_set(&c, "db.pool_size", "0"), WH_EINVALID);
    assert_int_equal(wh_config_set(&c, "db.pool_size", "1025"), WH_EINVALID);
    setenv("WHARF_DB_DRIVER", "Postgres", 1);
    setenv("WHARF_DB_POOL_SIZE", "16", 1);
    wh_config_defaults(&c);
    assert_int_equal(wh_config_load_env(&c), 0);
    unsetenv("WHARF_DB_DRIVER");
    unsetenv("WHARF_DB_POOL_SIZE");
    assert_string_equal(c.db_driver, "postgres");
    assert_int_equal(c.db_pool_size, 16);
    assert_int_equal(wh_config_check_db(&c), WH_EINVALID); /* no DSN */
    assert_non_null(strstr(c.problems, "db.dsn is not set"));
    assert_int_equal(wh_config_set(&c, "db.dsn", "postgresql://wharf:pw@db/wharf"), 0);
    c.nproblems = 0;
    assert_int_equal(wh_config_check_db(&c), 0);
    assert_int_equal(wh_config_set(&c, "db.driver", "sqlite"), 0);
    assert_int_equal(wh_config_check_db(&c), WH_EINVALID); /* a DSN sqlite would ignore */
    /* the DSN may hold a password: never printed */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    wh_config_print(&c, f);
    fclose(f);
    assert_null(strstr(text, "pw@db"));
    free(text);
}

static void test_config__tls_pairs(void **state)
{
    (void)state;
    struct wh_config c;
    wh_config_defaults(&c);
    assert_int_equal(wh_config_check_tls(&c), 0); /* plain HTTP */
    assert_int_equal(wh_config_set(&c, "tls.cert", "/nonexistent/cert.pem"), 0);
    assert_int_equal(wh_config_check_tls(&c), WH_EINVALID);
    assert_non_null(strstr(wh_error_msg(), "tls.key is not"));
    wh_config_defaults(&c);
    assert_int_equal(wh_config_set(&c, "tls.key", "/nonexistent/key.pem"), 0);
    assert_int_equal(wh_config_check_tls(&c), WH_EINVALID);
    assert_non_null(strstr(wh_error_msg(), "tls.cert is not"));
    assert_int_equal(wh_config_set(&c, "tls.cert", "/nonexistent/cert.pem"), 0);
    assert_int_equal(wh_config_check_tls(&c), WH_EINVALID);
    assert_non_null(strstr(c.problems, "cannot read /nonexistent/cert.pem"));
}

/* ---- the argument parser ---- */

/* A writable argv from string literals (the parser takes char **, as main gets). */
static char **argv_of(const char *const *list, int *argc)
{
    int n = 0;
    while (list[n])
        n++;
    char **v = calloc((size_t)n + 1, sizeof(*v));
    for (int i = 0; i < n; i++)
        v[i] = strdup(list[i]);
    *argc = n;
    return v;
}

static void argv_free(char **v)
{
    for (int i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static int count_each(const char *v, void *payload)
{
    (void)v;
    ++*(int *)payload;
    return 0;
}

static void test_config__cli_parse(void **state)
{
    (void)state;
    const char *email = NULL, *pos[3];
    bool admin = false, verbose = false;
    int seen = 0;
    const struct wh_cli_opt opts[] = {
        {"--email", 0, "EMAIL", &email, NULL, NULL, NULL},
        {"--admin", 0, NULL, NULL, &admin, NULL, NULL},
        {"--verbose", 'v', NULL, NULL, &verbose, NULL, NULL},
        {"--feed", 0, "URL", NULL, NULL, count_each, &seen},
        {0},
    };
    static const char *const names[] = {"NAME", "ROLE", NULL};
    static const char *const ok_args[] = {"add", "bob", "--email=b@x", "-v", "--feed", "a",
                                          "--feed", "b", "--admin", "--", "--role", NULL};
    int argc;
    char **argv = argv_of(ok_args, &argc);
    assert_int_equal(wh_cli_parse("t", argc, argv, opts, pos, names, 1), 2);
    assert_string_equal(pos[0], "bob");
    assert_string_equal(pos[1], "--role"); /* after -- */
    assert_string_equal(email, "b@x");
    assert_true(admin && verbose);
    assert_int_equal(seen, 2);
    argv_free(argv);

    static const char *const bad[][5] = {
        {"x", "bob", "--bogus", NULL},     /* unknown option */
        {"x", "bob", "--email", NULL},     /* no value */
        {"x", "bob", "--admin=yes", NULL}, /* a flag with a value */
        {"x", "a", "b", "extra", NULL},    /* too many */
        {"x", NULL},                       /* missing NAME */
        {"x", "bob", "-q", NULL},          /* unknown short option */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        argv = argv_of(bad[i], &argc);
        assert_int_equal(wh_cli_parse("t", argc, argv, opts, pos, names, 1), -2);
        argv_free(argv);
    }

    static const char *const help[] = {"x", "a", "--help", NULL};
    static const char *const nohelp[] = {"x", "--", "--help", NULL};
    argv = argv_of(help, &argc);
    assert_true(wh_cli_wants_help(argc, argv));
    argv_free(argv);
    argv = argv_of(nohelp, &argc);
    assert_false(wh_cli_wants_help(argc, argv));
    argv_free(argv);

    long long n;
    uint64_t b;
    assert_int_equal(wh_cli_number(&n, "t", "--exit-code", "5", 0, 255), 0);
    assert_int_equal(n, 5);
    assert_int_equal(wh_cli_number(&n, "t", "--exit-code", "abc", 0, 255), -2);
    assert_int_equal(wh_cli_number(&n, "t", "--exit-code", "256", 0, 255), -2);
    assert_int_equal(wh_cli_number(&n, "t", "--duration", "-1", -1, 10), 0);
    assert_int_equal(n, -1);
    assert_int_equal(wh_cli_bytes(&b, "t", "--max-file", "1K"), 0);
    assert_true(b == 1024);
    assert_int_equal(wh_cli_bytes(&b, "t", "--max-file", "0"), -2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config__set_values),
        cmocka_unit_test(test_config__stored_values),
        cmocka_unit_test(test_config__sizes),
        cmocka_unit_test(test_config__file_problems_named_with_lines),
        cmocka_unit_test(test_config__file_good_and_lists),
        cmocka_unit_test(test_config__env_named),
        cmocka_unit_test(test_config__print_loads_back),
        cmocka_unit_test(test_config__tls_pairs),
        cmocka_unit_test(test_config__db_keys),
        cmocka_unit_test(test_config__cli_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
