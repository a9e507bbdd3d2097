/* Unit tests for common/: digests, the capped buffer, number parsing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/busy.h"
#include "common/common.h"

#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

/* Tests of failure paths need the failpoints (compiled out with -DWH_NO_FAILPOINTS). */
#ifdef WH_NO_FAILPOINTS
#define NEED_FAILPOINTS() skip()
#else
#define NEED_FAILPOINTS() ((void)0)
#endif

static const struct {
    const char *in;
    bool ok;
} digest_cases[] = {
    {"sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", true},
    {"sha512:9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043", true},
    {"sha256:2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824", false}, /* upper hex */
    {"sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b982", false},  /* short */
    {"sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b98245", false}, /* long */
    {"sha256:zcf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", false},
    {"md5:5d41402abc4b2a76b9719d911017c592", false},
    {"sha256", false},
    {"sha256:", false},
    {"", false},
    {":abc", false},
};

static void test_common__digest_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(digest_cases) / sizeof(digest_cases[0]); i++) {
        struct wh_digest d;
        int rc = wh_digest_parse(&d, digest_cases[i].in, strlen(digest_cases[i].in));
        if (digest_cases[i].ok) {
            assert_int_equal(rc, 0);
            assert_string_equal(d.str, digest_cases[i].in);
        } else {
            assert_int_equal(rc, WH_EINVALID);
        }
    }
}

static void test_common__digest_known_vectors(void **state)
{
    (void)state;
    struct wh_digest d;
    wh_digest_of(&d, WH_DIGEST_SHA256, "hello", 5);
    assert_string_equal(d.str,
                        "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    wh_digest_of(&d, WH_DIGEST_SHA512, "hello", 5);
    assert_string_equal(d.str, "sha512:9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca7"
                               "2323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043");
    wh_digest_of(&d, WH_DIGEST_SHA256, "", 0);
    assert_string_equal(d.str,
                        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_common__hasher_streaming_equals_oneshot(void **state)
{
    (void)state;
    char buf[10000];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (char)(i * 31 + 7);
    struct wh_digest a, b;
    wh_digest_of(&a, WH_DIGEST_SHA256, buf, sizeof(buf));
    wh_hasher *h = wh_hasher_new(WH_DIGEST_SHA256);
    for (size_t off = 0; off < sizeof(buf); off += 333)
        wh_hasher_update(h, buf + off, off + 333 > sizeof(buf) ? sizeof(buf) - off : 333);
    wh_hasher_final(&b, h);
    wh_hasher_free(h);
    assert_string_equal(a.str, b.str);
}

static void test_common__buf_cap(void **state)
{
    (void)state;
    struct wh_buf b;
    wh_buf_init(&b, 10);
    assert_int_equal(wh_buf_put(&b, "12345", 5), 0);
    assert_int_equal(wh_buf_put(&b, "67890", 5), 0);
    assert_int_equal(wh_buf_put(&b, "x", 1), WH_ETOOBIG);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "1234567890");
    assert_int_equal(wh_buf_put(&b, "x", SIZE_MAX), WH_ETOOBIG); /* overflow-safe */
    wh_buf_dispose(&b);
}

static void test_common__parse_u64(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int rc;
        uint64_t v;
    } cases[] = {
        {"0", 0, 0},
        {"42", 0, 42},
        {"18446744073709551615", 0, UINT64_MAX},
        {"18446744073709551616", WH_EINVALID, 0},
        {"", WH_EINVALID, 0},
        {"-1", WH_EINVALID, 0},
        {"1x", WH_EINVALID, 0},
        {" 1", WH_EINVALID, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t v = 12345;
        assert_int_equal(wh_parse_u64(&v, cases[i].s, strlen(cases[i].s)), cases[i].rc);
        if (cases[i].rc == 0)
            assert_true(v == cases[i].v);
    }
}

static void test_common__pool(void **state)
{
    (void)state;
    wh_pool *p = wh_pool_new();
    char *big = wh_pool_alloc(p, 100000);
    memset(big, 1, 100000);
    for (int i = 0; i < 1000; i++) {
        char *s = wh_pool_sprintf(p, "item-%d", i);
        assert_string_equal(s, wh_pool_sprintf(p, "item-%d", i));
    }
    wh_pool_free(p);
    wh_pool_free(NULL);
}

/* The failpoint spec: what is accepted, what is refused, when a rule fires. */
static void test_common__failpoints(void **state)
{
    NEED_FAILPOINTS();
    (void)state;
    static const struct {
        const char *spec;
        bool ok;
    } cases[] = {
        {"", true},
        {"store.write=ENOSPC", true},
        {"store.write=3:EIO", true},
        {"store.write=2+:EDQUOT,store.fsync=1:EIO", true},
        {"store.write=1:short,store.write=2:corrupt", true},
        {"db.write=1+:ENOSPC,", true},          /* empty rules are skipped */
        {"store.write", false},                  /* no action */
        {"store.write=", false},
        {"store.write=0:EIO", false},            /* counts start at 1 */
        {"store.write=x:EIO", false},
        {"store.write=+:EIO", false},
        {"store.write=1:EFOO", false},
        {"Store.write=EIO", false},              /* names are lower case */
        {"=EIO", false},
        {"store/write=EIO", false},
        {"store.write=1:eio", false},
        {"a=EIO,b=EIO,c=EIO,d=EIO,e=EIO,f=EIO,g=EIO,h=EIO,i=EIO,j=EIO,k=EIO,l=EIO,m=EIO,n=EIO,"
         "o=EIO,p=EIO,q=EIO", false},            /* more than 16 rules */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = wh_failpoint_set(cases[i].spec);
        if ((rc == 0) != cases[i].ok)
            fail_msg("spec '%s': got %d", cases[i].spec, rc);
    }
    /* the Nth hit, every hit from the Nth, several rules on one name */
    assert_int_equal(wh_failpoint_set("t.a=2:EIO,t.b=2+:ENOSPC,t.c=1:short,t.c=2:corrupt"), 0);
    assert_int_equal(wh_failpoint("t.a"), 0);
    assert_int_equal(wh_failpoint("t.a"), EIO);
    assert_int_equal(wh_failpoint("t.a"), 0);
    assert_int_equal(wh_failpoint("t.b"), 0);
    assert_int_equal(wh_failpoint("t.b"), ENOSPC);
    assert_int_equal(wh_failpoint("t.b"), ENOSPC);
    assert_int_equal(wh_failpoint("t.c"), WH_FAILPOINT_SHORT);
    assert_int_equal(wh_failpoint("t.c"), WH_FAILPOINT_CORRUPT);
    assert_int_equal(wh_failpoint("t.c"), 0);
    assert_int_equal(wh_failpoint("t.other"), 0);
    assert_int_equal(wh_failpoint_hits("t.a"), 3);
    assert_int_equal(wh_failpoint_hits("t.c"), 3);
    /* a refused spec leaves the armed rules alone; setting again resets the counts */
    assert_int_equal(wh_failpoint_set("t.a=bogus"), WH_EINVALID);
    assert_int_equal(wh_failpoint_hits("t.a"), 3);
    assert_int_equal(wh_failpoint_set("t.a=1:EIO"), 0);
    assert_int_equal(wh_failpoint_hits("t.a"), 0);
    assert_int_equal(wh_failpoint("t.a"), EIO);
    assert_int_equal(wh_failpoint_set(NULL), 0);
    assert_int_equal(wh_failpoint("t.a"), 0);
}

/* JSON log strings: quotes, backslashes and every byte outside printable ASCII escaped,
 * the result cut with "..." at the cap and always terminated. */
static void test_common__log_json_escape(void **state)
{
    (void)state;
    char out[64];
    wh_log_json_escape(out, sizeof(out), "a\"b\\c\n\x01\xc3\xa9");
    assert_string_equal(out, "a\\\"b\\\\c\\u000a\\u0001\\u00c3\\u00a9");
    wh_log_json_escape(out, sizeof(out), NULL);
    assert_string_equal(out, "");
    char small[12];
    wh_log_json_escape(small, sizeof(small), "abcdefghijklmnop");
    assert_string_equal(small, "abcdefgh...");
    wh_log_json_escape(small, sizeof(small), "ab\x01\x01\x01");
    assert_string_equal(small, "ab\\u0001...");
    enum wh_log_level lvl;
    assert_int_equal(wh_log_level_parse(&lvl, "warn"), 0);
    assert_int_equal(lvl, WH_LOG_WARN);
    assert_int_equal(wh_log_level_parse(&lvl, "verbose"), WH_EINVALID);
    assert_int_equal(wh_log_level_parse(&lvl, "DEBUG"), WH_EINVALID);
}

static void *leave_soon(void *arg)
{
    (void)arg;
    while (wh_busy_count() != 1) /* the test itself: the other request already left */
        usleep(100);
    usleep(20000);
    wh_busy_leave();
    return NULL;
}

/* A pause is waited for while a changing request is in flight: until it leaves, or the cap. */
static void test_common__busy_pause(void **state)
{
    (void)state;
    assert_int_equal(wh_busy_count(), 0);
    assert_int_equal(wh_busy_pause(10000), 0); /* nothing in flight: no wait */
    wh_busy_enter();
    wh_busy_enter();
    assert_int_equal(wh_busy_count(), 2);
    int64_t waited = wh_busy_pause(30); /* never a pause: the cap ends the wait */
    assert_true(waited >= 29 && waited < 5000);
    wh_busy_leave();
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, leave_soon, NULL), 0);
    waited = wh_busy_pause(60000); /* ended by the last request leaving, not the cap */
    assert_true(waited < 30000);
    assert_int_equal(wh_busy_count(), 0);
    pthread_join(t, NULL);
}

/* Pooled random bytes: no repeats across pool refills, and a forked child
 * does not hand out the bytes its parent will. */
static void test_common__random_pool(void **state)
{
    (void)state;
    enum { N = 200 };
    static char ids[N][33];
    for (int i = 0; i < N; i++) {
        wh_random_hex(ids[i], 16);
        assert_int_equal(strlen(ids[i]), 32);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(ids[i], ids[j]);
    }
    unsigned char big[1000]; /* longer than the pool: several refills in one call */
    memset(big, 0, sizeof(big));
    wh_random_bytes(big, sizeof(big));
    size_t zeros = 0;
    for (size_t i = 0; i < sizeof(big); i++)
        zeros += big[i] == 0;
    assert_true(zeros < 30); /* about 4 expected */

    wh_random_hex(ids[0], 4); /* the pool is now partly used */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char child[33];
        wh_random_hex(child, 16);
        ssize_t w = write(fds[1], child, 32);
        _exit(w == 32 ? 0 : 1);
    }
    close(fds[1]);
    char parent[33], child[33];
    wh_random_hex(parent, 16);
    ssize_t got = 0;
    while (got < 32) {
        ssize_t r = read(fds[0], child + got, (size_t)(32 - got));
        assert_true(r > 0);
        got += r;
    }
    child[32] = '\0';
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_string_not_equal(parent, child);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common__failpoints),
        cmocka_unit_test(test_common__digest_parse),
        cmocka_unit_test(test_common__digest_known_vectors),
        cmocka_unit_test(test_common__hasher_streaming_equals_oneshot),
        cmocka_unit_test(test_common__buf_cap),
        cmocka_unit_test(test_common__parse_u64),
        cmocka_unit_test(test_common__pool),
        cmocka_unit_test(test_common__log_json_escape),
        cmocka_unit_test(test_common__busy_pause),
        cmocka_unit_test(test_common__random_pool),
    };
    return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
