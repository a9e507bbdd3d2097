/*
 * Unit tests of the S3 storage driver (store_s3.c) through the storage
 * contract, against a real radosgw: tests/run.sh runs this binary in the
 * Ceph window with WHARF_S3_TEST_* set (see test_s3.c); without them only
 * the cases that need no server run. Each live test keeps its keys under a
 * prefix of its own and inspects the bucket with the S3 client. These are
 * the paths a registry flow rarely takes: a chunk rejected after it sent
 * parts, a state the caller failed to save, a hash state from another
 * OpenSSL, sha512 digests, damaged states, the sweep's listing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "storage/s3.h"
#include "storage/storage.h"

#define MIB (1024u * 1024u)

struct live {
    char prefix[40];
    wh_store *store;
    wh_s3 *s3;
};

static int live_setup(void **state)
{
    struct live *l = wh_calloc(1, sizeof(*l));
    char hex[17];
    wh_random_hex(hex, 8);
    snprintf(l->prefix, sizeof(l->prefix), "st-%s/", hex);
    struct wh_store_s3_config sc = {
        .endpoint = getenv("WHARF_S3_TEST_ENDPOINT"),
        .bucket = getenv("WHARF_S3_TEST_BUCKET"),
        .region = getenv("WHARF_S3_TEST_REGION"),
        .access_key = getenv("WHARF_S3_TEST_ACCESS_KEY"),
        .secret_key = getenv("WHARF_S3_TEST_SECRET_KEY"),
        .prefix = l->prefix,
        .path_style = true,
    };
    struct wh_s3_config c = {
        .endpoint = sc.endpoint, .bucket = sc.bucket, .region = sc.region,
        .access_key = sc.access_key, .secret_key = sc.secret_key, .prefix = l->prefix,
        .path_style = true,
    };
    if (wh_store_open_s3(&l->store, &sc) < 0 || wh_s3_new(&l->s3, &c) < 0) {
        fprintf(stderr, "test_store_s3: %s\n", wh_error_msg());
        wh_store_free(l->store);
        free(l);
        return -1;
    }
    *state = l;
    return 0;
}

static int live_teardown(void **state)
{
    struct live *l = *state;
    /* the test's keys go (radosgw on memstore keeps them in RAM) */
    for (int page = 0; page < 100; page++) {
        struct wh_s3_list li;
        if (wh_s3_list(l->s3, &li, "", NULL, 0) < 0)
            break;
        const char **keys = wh_calloc(li.n ? li.n : 1, sizeof(*keys));
        for (size_t i = 0; i < li.n; i++)
            keys[i] = li.items[i].key;
        int rc = li.n ? wh_s3_delete_many(l->s3, keys, li.n, NULL) : -1;
        free(keys);
        wh_s3_list_dispose(&li);
        if (rc < 0)
            break;
    }
    struct wh_s3_uploads u;
    if (wh_s3_mpu_list(l->s3, &u, "", NULL, NULL, 0) == 0) {
        for (size_t i = 0; i < u.n; i++)
            wh_s3_mpu_abort(l->s3, u.items[i].key, u.items[i].upload_id);
        wh_s3_uploads_dispose(&u);
    }
    wh_store_free(l->store);
    wh_s3_free(l->s3);
    free(l);
    return 0;
}

static unsigned char *random_bytes(size_t n)
{
    unsigned char *p = wh_malloc(n ? n : 1);
    uint64_t x = (uint64_t)n * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (unsigned char)x;
    }
    return p;
}

/* Objects under `sub` (below the prefix) and multipart uploads under it. */
static size_t count_objects(struct live *l, const char *sub)
{
    struct wh_s3_list li;
    assert_int_equal(wh_s3_list(l->s3, &li, sub, NULL, 0), 0);
    size_t n = li.n;
    wh_s3_list_dispose(&li);
    return n;
}

static size_t count_mpus(struct live *l, const char *sub)
{
    struct wh_s3_uploads u;
    assert_int_equal(wh_s3_mpu_list(l->s3, &u, sub, NULL, NULL, 0), 0);
    size_t n = u.n;
    wh_s3_uploads_dispose(&u);
    return n;
}

/* Reads blob `d` whole through a reader and compares it with `p`. */
static void assert_blob(struct live *l, const struct wh_digest *d, const void *p, size_t n)
{
    struct wh_buf b;
    wh_buf_init(&b, n + 1);
    assert_int_equal(wh_store_read_blob(l->store, d, &b), 0);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data ? b.data : "", p, n);
    wh_buf_dispose(&b);
}

/* Resumes session `id` from `offset` and `state` (copied: the writer replaces its own). */
static wh_upload *resume(struct live *l, const char *id, uint64_t offset, const char *state)
{
    wh_upload *u = NULL;
    char *copy = wh_strdup(state);
    assert_int_equal(wh_store_upload_resume(l->store, id, offset, copy, &u), 0);
    free(copy);
    assert_int_equal(wh_upload_offset(u), offset);
    return u;
}

/* A chunk rejected after it sent a part: the session goes on as before it. */
static void test_store_s3__reject_after_parts(void **state)
{
    struct live *l = *state;
    size_t n = 21 * MIB + 77;
    unsigned char *data = random_bytes(n), *junk = random_bytes(12 * MIB);
    struct wh_digest d;
    wh_digest_of(&d, WH_DIGEST_SHA256, data, n);
    wh_upload *u = NULL;

    assert_int_equal(wh_store_upload_create(l->store, "rej", &u), 0);
    assert_int_equal(wh_upload_write(u, data, 3 * MIB), 0);
    assert_int_equal(wh_upload_accept(u), 0);
    char *saved = wh_strdup(wh_upload_state(u));
    wh_upload_close(u);

    /* 12 MiB of a chunk that is dropped: one part went out */
    u = resume(l, "rej", 3 * MIB, saved);
    assert_int_equal(wh_upload_write(u, junk, 12 * MIB), 0);
    assert_int_equal(count_mpus(l, "uploads/rej/"), 1);
    wh_upload_reject(u);
    assert_int_equal(wh_upload_size(u), 3 * MIB);
    assert_int_equal(count_mpus(l, "uploads/rej/"), 0); /* made for the dropped chunk */
    assert_string_equal(wh_upload_state(u), saved);
    /* the same writer goes on: its tail is read back */
    assert_int_equal(wh_upload_write(u, data + 3 * MIB, 10 * MIB), 0);
    assert_int_equal(wh_upload_accept(u), 0);
    free(saved);
    saved = wh_strdup(wh_upload_state(u));
    assert_non_null(strstr(saved, "\npart 1 "));
    wh_upload_close(u);

    u = resume(l, "rej", 13 * MIB, saved);
    assert_int_equal(wh_upload_write(u, data + 13 * MIB, n - 13 * MIB), 0);
    assert_int_equal(wh_upload_commit(u, &d), 0);
    assert_blob(l, &d, data, n);
    assert_int_equal(count_objects(l, "uploads/"), 0);
    assert_int_equal(count_mpus(l, "uploads/"), 0);
    free(saved);
    free(data);
    free(junk);
}

/* An accept whose state the caller never saved: the session resumes from the one before. */
static void test_store_s3__unsaved_accept(void **state)
{
    struct live *l = *state;
    size_t n = 19 * MIB + 5;
    unsigned char *data = random_bytes(n), *other = random_bytes(9 * MIB + 3);
    struct wh_digest d;
    wh_digest_of(&d, WH_DIGEST_SHA256, data, n);
    wh_upload *u = NULL;
    assert_int_equal(wh_store_upload_create(l->store, "uns", &u), 0);
    assert_int_equal(wh_upload_write(u, data, 2 * MIB), 0);
    assert_int_equal(wh_upload_accept(u), 0);
    wh_upload_close(u);
    /* the state at 2 MiB is never saved: resume from nothing... */
    u = resume(l, "uns", 0, "");
    assert_int_equal(wh_upload_write(u, data, 5 * MIB), 0);
    assert_int_equal(wh_upload_accept(u), 0);
    char *s5 = wh_strdup(wh_upload_state(u));
    wh_upload_close(u);
    /* ... accepted at 14 MiB + 3 (other bytes), and that state lost too */
    u = resume(l, "uns", 5 * MIB, s5);
    assert_int_equal(wh_upload_write(u, other, 9 * MIB + 3), 0);
    assert_int_equal(wh_upload_accept(u), 0);
    wh_upload_close(u);
    /* twice from the 5 MiB state: its tail is still there */
    for (int i = 0; i < 2; i++) {
        u = resume(l, "uns", 5 * MIB, s5);
        assert_int_equal(wh_upload_write(u, data + 5 * MIB, 7 * MIB), 0);
        assert_int_equal(wh_upload_accept(u), 0);
        if (i == 0)
            wh_upload_close(u);
    }
    assert_int_equal(wh_upload_write(u, data + 12 * MIB, n - 12 * MIB), 0);
    assert_int_equal(wh_upload_commit(u, &d), 0);
    assert_blob(l, &d, data, n);
    assert_int_equal(count_objects(l, "uploads/"), 0);
    assert_int_equal(count_mpus(l, "uploads/"), 0);
    free(s5);
    free(data);
    free(other);
}

/* Replaces the saved sha256 of a state with `with`. */
static char *swap_hash(const char *state, const char *with)
{
    const char *nl = strchr(state, '\n');
    assert_non_null(nl);
    return wh_sprintf("s3v1 %s%s", with, nl);
}

/* A hash state this process cannot use, and sha512 digests: the commit reads the data. */
static void test_store_s3__rehash_at_commit(void **state)
{
    struct live *l = *state;
    static const size_t sizes[] = {100, 9 * MIB + 1};
    for (size_t k = 0; k < 2; k++) {
        size_t n = sizes[k];
        unsigned char *data = random_bytes(n);
        struct wh_digest d256, d512, bad;
        wh_digest_of(&d256, WH_DIGEST_SHA256, data, n);
        wh_digest_of(&d512, WH_DIGEST_SHA512, data, n);
        wh_digest_of(&bad, WH_DIGEST_SHA256, data, n - 1);
        for (int round = 0; round < 3; round++) {
            char id[32];
            snprintf(id, sizeof(id), "rh-%zu-%d", k, round);
            wh_upload *u = NULL;
            assert_int_equal(wh_store_upload_create(l->store, id, &u), 0);
            assert_int_equal(wh_upload_write(u, data, n / 2), 0);
            assert_int_equal(wh_upload_accept(u), 0);
            char *st = swap_hash(wh_upload_state(u), round == 2 ? "-" : "sha256-ossl9-1:00");
            wh_upload_close(u);
            u = resume(l, id, n / 2, st);
            assert_int_equal(wh_upload_write(u, data + n / 2, n - n / 2), 0);
            const struct wh_digest *want = round == 0 ? &bad : round == 1 ? &d256 : &d512;
            int rc = wh_upload_commit(u, want);
            if (round == 0) {
                assert_int_equal(rc, WH_EINVALID);
                assert_non_null(strstr(wh_error_msg(), d256.str));
                uint64_t size;
                assert_int_equal(wh_store_stat(l->store, &bad, &size), WH_ENOTFOUND);
            } else {
                assert_int_equal(rc, 0);
                assert_blob(l, want, data, n);
            }
            free(st);
        }
        /* sha512 with a usable hash state too */
        wh_upload *u = NULL;
        assert_int_equal(wh_store_upload_create(l->store, "s512", &u), 0);
        assert_int_equal(wh_upload_write(u, data, n), 0);
        assert_int_equal(wh_upload_commit(u, &d512), 0);
        free(data);
    }
    assert_int_equal(count_objects(l, "uploads/"), 0);
    assert_int_equal(count_mpus(l, "uploads/"), 0);
}

static int each(const char *id, int64_t mtime, void *p)
{
    int *found = p;
    assert_string_equal(id, "dmg");
    assert_true(mtime > wh_now_ms() - 600000);
    (*found)++;
    return 0;
}

/* Damaged states and lost staged bytes: the session is unknown, never wrong. */
static void test_store_s3__damaged_states(void **state)
{
    struct live *l = *state;
    unsigned char *data = random_bytes(10 * MIB);
    wh_upload *u = NULL;
    assert_int_equal(wh_store_upload_create(l->store, "dmg", &u), 0);
    assert_int_equal(wh_upload_write(u, data, 10 * MIB), 0);
    assert_int_equal(wh_upload_accept(u), 0);
    char *st = wh_strdup(wh_upload_state(u));
    wh_upload_close(u);
    const char *bad[] = {"fs1 sha256-x", "s3v1 -", "s3v1 -\npart 1 8388608 \"e\"\n",
                         "s3v1 -\nmpu x\npart 2 8388608 \"e\"\n", "s3v1 -\nmpu x\nbogus\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        u = NULL;
        assert_int_equal(wh_store_upload_resume(l->store, "dmg", 10 * MIB, bad[i], &u),
                         WH_ENOTFOUND);
        assert_null(u);
    }
    /* the right state at the wrong offset */
    assert_int_equal(wh_store_upload_resume(l->store, "dmg", 10 * MIB - 1, st, &u), WH_ENOTFOUND);
    assert_int_equal(wh_store_upload_resume(l->store, "../x", 0, "", &u), WH_ENOTFOUND);
    assert_int_equal(wh_store_upload_create(l->store, "a/b", &u), WH_EINVALID);
    /* the sweep finds the session; removing it leaves nothing, twice is not found */
    int found = 0;
    assert_int_equal(wh_store_upload_each(l->store, each, &found), 0);
    assert_int_equal(found, 1);
    assert_int_equal(wh_store_upload_remove(l->store, "dmg", st), 0);
    assert_int_equal(count_objects(l, "uploads/"), 0);
    assert_int_equal(count_mpus(l, "uploads/"), 0);
    assert_int_equal(wh_store_upload_remove(l->store, "dmg", st), WH_ENOTFOUND);
    /* its tail is gone: the session cannot be resumed */
    assert_int_equal(wh_store_upload_resume(l->store, "dmg", 10 * MIB, st, &u), WH_ENOTFOUND);
    free(st);
    free(data);
}

/* Readers: ranges, the end, past it, empty blobs, missing blobs; put and delete. */
static void test_store_s3__readers_and_blobs(void **state)
{
    struct live *l = *state;
    size_t n = 6 * MIB + 11;
    unsigned char *data = random_bytes(n);
    struct wh_digest d, e, missing;
    wh_digest_of(&d, WH_DIGEST_SHA256, data, n);
    wh_digest_of(&e, WH_DIGEST_SHA256, "", 0);
    wh_digest_of(&missing, WH_DIGEST_SHA256, "nope", 4);
    assert_int_equal(wh_store_put_bytes(l->store, &d, data, n), 0);
    assert_int_equal(wh_store_put_bytes(l->store, &d, data, n), 0); /* idempotent */
    assert_int_equal(wh_store_put_bytes(l->store, &e, "", 0), 0);
    assert_int_equal(wh_store_put_bytes(l->store, &missing, "other", 5), WH_ERROR);
    uint64_t size;
    assert_int_equal(wh_store_stat(l->store, &d, &size), 0);
    assert_int_equal(size, n);
    assert_int_equal(wh_store_stat(l->store, &missing, &size), WH_ENOTFOUND);

    static const uint64_t ranges[][2] = {{0, 1}, {5, 300000}, {1000, WH_STORE_TO_END},
                                         {6 * MIB, 100}, {6 * MIB + 11, WH_STORE_TO_END},
                                         {0, 0}, {17, 99 * MIB}};
    unsigned char *buf = wh_malloc(n);
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        wh_store_reader *rd = NULL;
        uint64_t off = ranges[i][0], len = ranges[i][1];
        assert_int_equal(wh_store_reader_open(&rd, l->store, &d, off, len), 0);
        uint64_t want = n - off < len ? n - off : len;
        assert_int_equal(wh_store_reader_blob_size(rd), n);
        assert_int_equal(wh_store_reader_left(rd), want);
        uint64_t fdoff;
        assert_int_equal(wh_store_reader_fd(rd, &fdoff), -1);
        size_t got = 0, at = 0;
        do {
            /* odd-sized reads across the windows */
            assert_int_equal(wh_store_reader_read(rd, buf + at, 70001, &got), 0);
            at += got;
        } while (got);
        assert_int_equal(at, want);
        assert_memory_equal(buf, data + off, want);
        wh_store_reader_close(rd);
    }
    wh_store_reader *rd = NULL;
    assert_int_equal(wh_store_reader_open(&rd, l->store, &d, n + 1, 5), WH_ERANGE);
    assert_int_equal(wh_store_reader_open(&rd, l->store, &missing, 0, 5), WH_ENOTFOUND);
    assert_int_equal(wh_store_reader_open(&rd, l->store, &e, 0, WH_STORE_TO_END), 0);
    assert_int_equal(wh_store_reader_left(rd), 0);
    wh_store_reader_close(rd);
    assert_int_equal(wh_store_reader_open(&rd, l->store, &e, 1, WH_STORE_TO_END), WH_ERANGE);
    char *url = NULL;
    assert_int_equal(wh_store_redirect_url(l->store, &d, &url), WH_ENOTFOUND);
    uint64_t total, free_bytes;
    assert_int_equal(wh_store_capacity(l->store, &total, &free_bytes), WH_ENOTFOUND);
    assert_int_equal(wh_store_check_space(l->store), 0);

    assert_int_equal(wh_store_delete_blob(l->store, &d), 0);
    assert_int_equal(wh_store_delete_blob(l->store, &d), WH_ENOTFOUND);
    assert_int_equal(wh_store_delete_blob(l->store, &e), 0);
    assert_int_equal(count_objects(l, ""), 0);
    free(buf);
    free(data);
}

/* Without a server: the settings are checked, an endpoint that does not answer is named. */
static void test_store_s3__open_refusals(void **state)
{
    (void)state;
    wh_store *s = NULL;
    struct wh_store_s3_config sc = {.endpoint = "http://127.0.0.1:1", .bucket = "wharf-x",
                                    .access_key = "AK", .secret_key = "very-secret-value"};
    assert_int_not_equal(wh_store_open_s3(&s, &sc), 0);
    assert_null(s);
    assert_non_null(strstr(wh_error_msg(), "bucket wharf-x at http://127.0.0.1:1"));
    assert_null(strstr(wh_error_msg(), "very-secret-value"));
    sc.bucket = "x";
    assert_int_equal(wh_store_open_s3(&s, &sc), WH_EINVALID);
    assert_null(s);
}

/* Query signing, against the presigned URL of Amazon's SigV4 documentation. */
static void test_store_s3__presign_example(void **state)
{
    (void)state;
    wh_s3 *s = NULL;
    char *url = NULL;
    struct wh_s3_config c = {.endpoint = "https://s3.amazonaws.com", .bucket = "examplebucket",
                             .region = "us-east-1", .access_key = "AKIAIOSFODNN7EXAMPLE",
                             .secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"};
    assert_int_equal(wh_s3_new(&s, &c), 0);
    /* 2013-05-24T00:00:00Z, 86400 s */
    assert_int_equal(wh_s3_presign_get(s, "test.txt", 86400, 1369353600, &url), 0);
    assert_string_equal(url,
                        "https://examplebucket.s3.amazonaws.com/test.txt"
                        "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2F"
                        "aws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400"
                        "&X-Amz-SignedHeaders=host&X-Amz-Signature="
                        "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    free(url);
    assert_int_equal(wh_s3_presign_get(s, "test.txt", 0, 1369353600, &url), WH_EINVALID);
    assert_int_equal(wh_s3_presign_get(s, "", 60, 1369353600, &url), WH_EINVALID);
    assert_null(url);
    wh_s3_free(s);
}

int main(void)
{
    const struct CMUnitTest offline[] = {
        cmocka_unit_test(test_store_s3__open_refusals),
        cmocka_unit_test(test_store_s3__presign_example),
    };
#define LIVE(t) cmocka_unit_test_setup_teardown(t, live_setup, live_teardown)
    const struct CMUnitTest live[] = {
        cmocka_unit_test(test_store_s3__open_refusals),
        cmocka_unit_test(test_store_s3__presign_example),
        LIVE(test_store_s3__readers_and_blobs),
        LIVE(test_store_s3__reject_after_parts),
        LIVE(test_store_s3__unsaved_accept),
        LIVE(test_store_s3__rehash_at_commit),
        LIVE(test_store_s3__damaged_states),
    };
    if (getenv("WHARF_S3_TEST_ENDPOINT") && *getenv("WHARF_S3_TEST_ENDPOINT"))
        return cmocka_run_group_tests_name("store_s3 (live server)", live, NULL, NULL);
    return cmocka_run_group_tests_name("store_s3", offline, NULL, NULL);
}
