/*
 * Tests of storage/s3.c, the S3 client. Two groups:
 *   - without WHARF_S3_TEST_ENDPOINT: encoding, canonical queries, the
 *     configuration checks, the XML answers, and misbehaving servers (a
 *     small HTTP server in a thread that cuts a body short, ignores a Range,
 *     sends a 206 from the wrong place, an <Error> after a 200, an answer
 *     over the cap);
 *   - with WHARF_S3_TEST_ENDPOINT, _BUCKET, _ACCESS_KEY, _SECRET_KEY (and
 *     optionally _REGION): every operation against a real S3 server that
 *     checks signatures (tests/run.sh starts Ceph radosgw with scripts/ceph.sh).
 *     Each case works under its own random key prefix.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "storage/s3.h"

/* ---- helpers -------------------------------------------------------------------------------- */

static char *encode(const char *s, bool keep_slash)
{
    struct wh_buf b;
    wh_buf_init(&b, 4096);
    assert_int_equal(wh_s3_encode(&b, s, strlen(s), keep_slash), 0);
    wh_buf_put(&b, "", 1);
    return wh_buf_detach(&b, NULL);
}

/* A sink collecting bytes in a wh_buf. */
static int to_buf(const void *p, size_t n, void *payload)
{
    return wh_buf_put(payload, p, n) < 0 ? WH_ETOOBIG : 0;
}

/* A source handing out `data` in pieces of at most `step` bytes, `stop_at` bytes at most. */
struct src {
    const unsigned char *data;
    size_t len, off, step, stop_at;
};
static int from_src(void *buf, size_t cap, size_t *n, void *payload)
{
    struct src *s = payload;
    size_t end = s->stop_at && s->stop_at < s->len ? s->stop_at : s->len;
    size_t m = end - s->off;
    if (m > cap)
        m = cap;
    if (s->step && m > s->step)
        m = s->step;
    memcpy(buf, s->data + s->off, m);
    s->off += m;
    *n = m;
    return 0;
}

static int refuse(const void *p, size_t n, void *payload)
{
    (void)p, (void)n, (void)payload;
    return wh_error_set(WH_ECONFLICT, "sink full");
}

static unsigned char *pattern(size_t len, unsigned seed)
{
    unsigned char *p = wh_malloc(len ? len : 1);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        p[i] = (unsigned char)x;
    }
    return p;
}

/* ---- encoding and queries ------------------------------------------------------------------- */

static void test_s3__encode(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        bool keep_slash;
        const char *out;
    } cases[] = {
        {"abcXYZ019-_.~", false, "abcXYZ019-_.~"},
        {"dir/sub/", true, "dir/sub/"},
        {"dir/sub/", false, "dir%2Fsub%2F"},
        {"a b+c%d&e=f?g#h", true, "a%20b%2Bc%25d%26e%3Df%3Fg%23h"},
        {"\xc3\xa9t\xc3\xa9", true, "%C3%A9t%C3%A9"},
        {"*'()!$,;:@", true, "%2A%27%28%29%21%24%2C%3B%3A%40"},
        {"", true, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = encode(cases[i].in, cases[i].keep_slash);
        assert_string_equal(got, cases[i].out);
        free(got);
    }
    struct wh_buf b;
    wh_buf_init(&b, 4);
    assert_int_equal(wh_s3_encode(&b, "a b", 3, false), WH_ETOOBIG);
    wh_buf_dispose(&b);
}

static void test_s3__canonical_query(void **state)
{
    (void)state;
    static const struct {
        const char *kv[8];
        size_t n;
        const char *out;
    } cases[] = {
        /* valueless parameters are written "k=" (curl 7.88 signs what it sends) */
        {{"uploads", NULL}, 1, "uploads="},
        {{"delete", NULL}, 1, "delete="},
        /* sorted by name; values encoded, '/' included */
        {{"prefix", "dir/", "list-type", "2"}, 2, "list-type=2&prefix=dir%2F"},
        {{"uploadId", "2~a/b+c=", "partNumber", "10"}, 2, "partNumber=10&uploadId=2~a%2Fb%2Bc%3D"},
        {{"prefix", "p", "list-type", "2", "continuation-token", "1/a==", "max-keys", "2"},
         4, "continuation-token=1%2Fa%3D%3D&list-type=2&max-keys=2&prefix=p"},
        {{"uploads", NULL, "max-uploads", "1", "key-marker", "k y"}, 3,
         "key-marker=k%20y&max-uploads=1&uploads="},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct wh_buf b;
        wh_buf_init(&b, 4096);
        assert_int_equal(wh_s3_query(&b, cases[i].kv, cases[i].n), 0);
        assert_string_equal(b.data, cases[i].out);
        wh_buf_dispose(&b);
    }
}

static void test_s3__sign_v4(void **state)
{
    (void)state;
    /* the GET Object example of Amazon S3's SigV4 documentation (header-based auth) */
    const char *const hdrs[] = {
        "Host: examplebucket.s3.amazonaws.com", "Range: bytes=0-9",
        "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "x-amz-date: 20130524T000000Z", NULL};
    struct wh_buf b;
    wh_buf_init(&b, 4096);
    assert_int_equal(wh_s3_sign_v4(&b, "AKIAIOSFODNN7EXAMPLE",
                                   "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1", "GET",
                                   "/test.txt", NULL, hdrs,
                                   "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                                   "20130524T000000Z"),
                     0);
    assert_string_equal(b.data, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/"
                                "us-east-1/s3/aws4_request, SignedHeaders=host;range;"
                                "x-amz-content-sha256;x-amz-date, Signature="
                                "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    /* a name that starts another sorts first (curl 7.88 gets this wrong) */
    const char *const copy[] = {"x-amz-copy-source-range: bytes=0-9", "Host: h",
                                "x-amz-copy-source: /b/k", NULL};
    b.len = 0;
    assert_int_equal(wh_s3_sign_v4(&b, "AK", "SK", "us-east-1", "PUT", "/b/k2",
                                   "partNumber=1&uploadId=u", copy, "UNSIGNED-PAYLOAD",
                                   "20261203T000000Z"),
                     0);
    assert_non_null(strstr(b.data, "SignedHeaders=host;x-amz-copy-source;x-amz-copy-source-range,"));
    wh_buf_dispose(&b);
}

/* ---- configuration -------------------------------------------------------------------------- */

static void test_s3__config_checked(void **state)
{
    (void)state;
    const struct wh_s3_config good = {.endpoint = "http://127.0.0.1:9", .bucket = "wharf-blobs",
                                      .access_key = "AK", .secret_key = "top-secret-value",
                                      .path_style = true};
    wh_s3 *s = NULL;
    assert_int_equal(wh_s3_new(&s, &good), 0);
    wh_s3_free(s);
    static const struct {
        const char *field, *value, *msg;
    } bad[] = {
        {"endpoint", "ftp://host", "endpoint"},
        {"endpoint", "http://", "endpoint"},
        {"endpoint", "http://host/path", "endpoint"},
        {"endpoint", "http://user@host", "endpoint"},
        {"endpoint", NULL, "endpoint"},
        {"bucket", "bs", "bucket"}, /* rgw answers 400 to a bucket this short */
        {"bucket", "Upper", "bucket"},
        {"bucket", "-dash", "bucket"},
        {"region", "US EAST", "region"},
        {"access_key", "", "access key"},
        {"access_key", "a:b", "access key"},
        {"secret_key", "", "secret key"},
        {"secret_key", "has space", "secret key"},
        {"prefix", "/abs", "prefix"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct wh_s3_config c = good;
        if (strcmp(bad[i].field, "endpoint") == 0)
            c.endpoint = bad[i].value;
        else if (strcmp(bad[i].field, "bucket") == 0)
            c.bucket = bad[i].value;
        else if (strcmp(bad[i].field, "region") == 0)
            c.region = bad[i].value;
        else if (strcmp(bad[i].field, "access_key") == 0)
            c.access_key = bad[i].value;
        else if (strcmp(bad[i].field, "secret_key") == 0)
            c.secret_key = bad[i].value;
        else
            c.prefix = bad[i].value;
        s = (wh_s3 *)&c; /* must be reset to NULL */
        assert_int_equal(wh_s3_new(&s, &c), WH_EINVALID);
        assert_null(s);
        assert_non_null(strstr(wh_error_msg(), bad[i].msg));
        assert_null(strstr(wh_error_msg(), "top-secret-value"));
        assert_null(strstr(wh_error_msg(), "has space"));
    }
}

/* ---- XML answers ---------------------------------------------------------------------------- */

static void test_s3__doc_list(void **state)
{
    (void)state;
    static const char xml[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Name>b</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>"
        "<IsTruncated>true</IsTruncated><NextContinuationToken>tok/en==</NextContinuationToken>"
        "<Contents><Key>p/a &amp; b</Key><LastModified>2026-12-03T05:57:10.123Z</LastModified>"
        "<ETag>&quot;0123&quot;</ETag><Size>42</Size><StorageClass>STANDARD</StorageClass>"
        "<Owner><ID>x</ID><DisplayName>y</DisplayName></Owner></Contents>"
        "<Contents><Key>p/\xc3\xa9</Key><Size>0</Size><ETag>\"e\"</ETag>"
        "<LastModified>2026-12-03T05:57:10Z</LastModified></Contents>"
        "</ListBucketResult>";
    struct wh_s3_doc d;
    assert_int_equal(wh_s3_doc_parse(&d, WH_S3_DOC_LIST, xml, strlen(xml), "p/"), 0);
    assert_int_equal(d.kind, WH_S3_DOC_LIST);
    assert_true(d.list.truncated);
    assert_string_equal(d.list.next_token, "tok/en==");
    assert_int_equal(d.list.n, 2);
    assert_string_equal(d.list.items[0].key, "a & b");
    assert_int_equal(d.list.items[0].size, 42);
    assert_string_equal(d.list.items[0].etag, "\"0123\"");
    assert_int_equal(d.list.items[0].mtime_ms, 1796277430123LL);
    assert_string_equal(d.list.items[1].key, "\xc3\xa9");
    assert_int_equal(d.list.items[1].mtime_ms, 1796277430000LL);
    wh_s3_doc_dispose(&d);

    /* a key outside the prefix is refused */
    assert_int_equal(wh_s3_doc_parse(&d, WH_S3_DOC_LIST, xml, strlen(xml), "q/"), WH_EINVALID);
    assert_non_null(strstr(wh_error_msg(), "prefix"));
    wh_s3_doc_dispose(&d);
}

static void test_s3__doc_other_kinds(void **state)
{
    (void)state;
    struct wh_s3_doc d;
    static const char err[] = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code>"
                              "<Message>no</Message><RequestId>r</RequestId></Error>";
    /* any answer may be an <Error> */
    assert_int_equal(wh_s3_doc_parse(&d, WH_S3_DOC_COMPLETE, err, strlen(err), NULL), 0);
    assert_int_equal(d.kind, WH_S3_DOC_ERROR);
    assert_string_equal(d.code, "SignatureDoesNotMatch");
    assert_string_equal(d.message, "no");
    wh_s3_doc_dispose(&d);

    static const char init[] = "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                               "<UploadId>2~abc</UploadId></InitiateMultipartUploadResult>";
    assert_int_equal(wh_s3_doc_parse(&d, WH_S3_DOC_INITIATE, init, strlen(init), NULL), 0);
    assert_string_equal(d.upload_id, "2~abc");
    wh_s3_doc_dispose(&d);

    static const char parts[] =
        "<ListPartsResult><IsTruncated>true</IsTruncated>"
        "<NextPartNumberMarker>2</NextPartNumberMarker>"
        "<Part><PartNumber>1</PartNumber><ETag>\"a\"</ETag><Size>5242880</Size></Part>"
        "<Part><PartNumber>2</PartNumber><ETag>\"b\"</ETag><Size>7</Size></Part>"
        "</ListPartsResult>";
    assert_int_equal(wh_s3_doc_parse(&d, WH_S3_DOC_PARTS, parts, strlen(parts), NULL), 0);
    assert_int_equal(d.n_parts, 2);
    assert_true(d.parts_truncated);
    assert_int_equal(d.next_part_marker, 2);
    assert_int_equal(d.parts[1].number, 2);
    assert_int_equal(d.parts[0].size, 5242880);
    assert_string_equal(d.parts[1].etag, "\"b\"");
    wh_s3_doc_dispose(&d);

    static const char ups[] =
        "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>"
        "<NextKeyMarker>x/k</NextKeyMarker><NextUploadIdMarker>u</NextUploadIdMarker>"
        "<Upload><Key>x/k</Key><UploadId>u</UploadId>"
        "<Initiated>2026-12-03T05:57:10.000Z</Initiated></Upload></ListMultipartUploadsResult>";
    assert_int_equal(wh_s3_doc_parse(&d, WH_S3_DOC_UPLOADS, ups, strlen(ups), "x/"), 0);
    assert_int_equal(d.uploads.n, 1);
    assert_string_equal(d.uploads.items[0].key, "k");
    assert_string_equal(d.uploads.items[0].upload_id, "u");
    assert_int_equal(d.uploads.items[0].initiated_ms, 1796277430000LL);
    wh_s3_doc_dispose(&d);

    /* rgw 16 completes with an empty ETag */
    static const char done[] = "<CompleteMultipartUploadResult><Key>k</Key><ETag></ETag>"
                               "</CompleteMultipartUploadResult>";
    assert_int_equal(wh_s3_doc_parse(&d, WH_S3_DOC_COMPLETE, done, strlen(done), NULL), 0);
    assert_int_equal(d.kind, WH_S3_DOC_COMPLETE);
    assert_string_equal(d.etag, "");
    wh_s3_doc_dispose(&d);

    static const char del[] =
        "<DeleteResult><Deleted><Key>x/a</Key></Deleted>"
        "<Error><Key>x/b &amp; c</Key><Code>AccessDenied</Code><Message>no</Message></Error>"
        "<Error><Key>x/d</Key><Code>InternalError</Code></Error></DeleteResult>";
    assert_int_equal(wh_s3_doc_parse(&d, WH_S3_DOC_DELETE, del, strlen(del), "x/"), 0);
    assert_int_equal(d.n_failed, 2);
    assert_string_equal(d.failed_key, "b & c");
    assert_string_equal(d.code, "AccessDenied");
    assert_string_equal(d.message, "no");
    wh_s3_doc_dispose(&d);

    static const char part[] = "<CopyPartResult><LastModified>2026-12-03T05:57:10Z"
                               "</LastModified><ETag>\"p\"</ETag></CopyPartResult>";
    assert_int_equal(wh_s3_doc_parse(&d, WH_S3_DOC_COPY_PART, part, strlen(part), NULL), 0);
    assert_string_equal(d.etag, "\"p\"");
    wh_s3_doc_dispose(&d);

    static const char copy[] = "<CopyObjectResult><LastModified>2026-12-03T05:57:10Z"
                               "</LastModified><ETag>\"c\"</ETag></CopyObjectResult>";
    assert_int_equal(wh_s3_doc_parse(&d, WH_S3_DOC_COPY, copy, strlen(copy), NULL), 0);
    assert_string_equal(d.etag, "\"c\"");
    wh_s3_doc_dispose(&d);
}

static void test_s3__doc_hostile(void **state)
{
    (void)state;
    char deep[1024] = "", big[4096];
    for (int i = 0; i < 20; i++)
        strcat(deep, "<a>");
    memcpy(big, "<ListBucketResult><Contents><Key>", 33);
    memset(big + 33, 'k', 2000);
    strcpy(big + 2033, "</Key></Contents></ListBucketResult>");
    const struct {
        enum wh_s3_doc_kind kind;
        const char *xml, *why;
    } cases[] = {
        {WH_S3_DOC_LIST, "<!DOCTYPE x [<!ENTITY e \"a\">]><ListBucketResult>&e;</ListBucketResult>",
         "DOCTYPE"},
        {WH_S3_DOC_LIST,
         "<!DOCTYPE x SYSTEM \"file:///etc/passwd\"><ListBucketResult/>", "DOCTYPE"},
        {WH_S3_DOC_LIST, "<ListBucketResult><Contents><Key>a</Key>", "no element found"},
        {WH_S3_DOC_LIST, "<CopyObjectResult/>", "expected"},
        {WH_S3_DOC_LIST, "", "no element found"},
        {WH_S3_DOC_LIST, "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
         "without <Key>"},
        {WH_S3_DOC_LIST,
         "<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents></ListBucketResult>",
         "Size"},
        {WH_S3_DOC_LIST, "<ListBucketResult><IsTruncated>maybe</IsTruncated></ListBucketResult>",
         "IsTruncated"},
        {WH_S3_DOC_PARTS,
         "<ListPartsResult><Part><PartNumber>10001</PartNumber><ETag>e</ETag></Part>"
         "</ListPartsResult>", "out of range"},
        {WH_S3_DOC_INITIATE, "<InitiateMultipartUploadResult/>", "UploadId"},
        {WH_S3_DOC_ERROR, "<Error><Message>m</Message></Error>", "Code"},
        {WH_S3_DOC_COPY, "<CopyObjectResult><ETag>\"0123456789012345678901234567890123456789"
                         "0123456789012345678901234567890123456789\"</ETag></CopyObjectResult>",
         "ETag"},
        {WH_S3_DOC_LIST, deep, "ListBucketResult"},
        {WH_S3_DOC_LIST, big, "longer"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct wh_s3_doc d;
        assert_int_equal(wh_s3_doc_parse(&d, cases[i].kind, cases[i].xml, strlen(cases[i].xml),
                                         NULL),
                         WH_EINVALID);
        if (!strstr(wh_error_msg(), cases[i].why))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, wh_error_msg(), cases[i].why);
        wh_s3_doc_dispose(&d);
    }
    /* more items than a page may hold */
    struct wh_buf many;
    wh_buf_init(&many, 1 << 20);
    wh_buf_puts(&many, "<ListBucketResult>");
    for (int i = 0; i < 10001; i++)
        wh_buf_puts(&many, "<Contents><Key>k</Key></Contents>");
    wh_buf_puts(&many, "</ListBucketResult>");
    struct wh_s3_doc dm;
    assert_int_equal(wh_s3_doc_parse(&dm, WH_S3_DOC_LIST, many.data, many.len, NULL), WH_EINVALID);
    assert_non_null(strstr(wh_error_msg(), "more than 10000 items"));
    wh_s3_doc_dispose(&dm);
    wh_buf_dispose(&many);
    /* too deep, with the right root */
    char deeper[1024] = "<ListBucketResult>";
    for (int i = 0; i < 20; i++)
        strcat(deeper, "<a>");
    struct wh_s3_doc d;
    assert_int_equal(wh_s3_doc_parse(&d, WH_S3_DOC_LIST, deeper, strlen(deeper), NULL),
                     WH_EINVALID);
    assert_non_null(strstr(wh_error_msg(), "deeper"));
    wh_s3_doc_dispose(&d);
}

static void test_s3__time_parse(void **state)
{
    (void)state;
    int64_t t = 0;
    assert_int_equal(wh_s3_time_parse(&t, "1970-01-01T00:00:01.5Z"), 0);
    assert_int_equal(t, 1500);
    assert_int_equal(wh_s3_time_parse(&t, "2026-12-03T05:57:10.123456Z"), 0);
    assert_int_equal(t, 1796277430123LL);
    assert_int_equal(wh_s3_time_parse(&t, "2026-12-03T05:57:10"), WH_EINVALID);
    assert_int_equal(wh_s3_time_parse(&t, "2026-12-03T05:57:10.Z"), WH_EINVALID);
    assert_int_equal(wh_s3_time_parse(&t, "yesterday"), WH_EINVALID);
}

/* ---- misbehaving servers -------------------------------------------------------------------- */

/* A one-connection-at-a-time HTTP server answering every request with `answer`, then closing. */
struct fake {
    int fd;
    int port;
    const char *answer;
    size_t answer_len;
    int requests;        /* how many to serve */
    char last_request[4096];
    pthread_t thread;
};

static void *fake_run(void *arg)
{
    struct fake *f = arg;
    for (int i = 0; i < f->requests; i++) {
        int c = accept(f->fd, NULL, NULL);
        if (c < 0)
            break;
        size_t got = 0;
        /* read the head (and a small body, if any, without parsing it) */
        while (got < sizeof(f->last_request) - 1) {
            ssize_t r = recv(c, f->last_request + got, sizeof(f->last_request) - 1 - got, 0);
            if (r <= 0)
                break;
            got += (size_t)r;
            f->last_request[got] = '\0';
            if (strstr(f->last_request, "\r\n\r\n"))
                break;
        }
        size_t done = 0;
        while (done < f->answer_len) {
            ssize_t w = send(c, f->answer + done, f->answer_len - done, MSG_NOSIGNAL);
            if (w <= 0)
                break;
            done += (size_t)w;
        }
        shutdown(c, SHUT_RDWR);
        close(c);
    }
    return NULL;
}

static void fake_start(struct fake *f, const char *answer, size_t len, int requests)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    memset(f, 0, sizeof(*f));
    f->answer = answer;
    f->answer_len = len;
    f->requests = requests;
    f->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->fd >= 0);
    assert_int_equal(bind(f->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->fd, 4), 0);
    assert_int_equal(getsockname(f->fd, (struct sockaddr *)&a, &al), 0);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_run, f), 0);
}

static void fake_stop(struct fake *f)
{
    shutdown(f->fd, SHUT_RDWR);
    pthread_join(f->thread, NULL);
    close(f->fd);
}

static wh_s3 *fake_client(const struct fake *f, size_t max_response)
{
    char ep[64];
    wh_s3 *s = NULL;
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", f->port);
    struct wh_s3_config c = {.endpoint = ep, .bucket = "wharf-test", .access_key = "AK",
                             .secret_key = "SK-never-shown", .path_style = true,
                             .timeout_s = 10, .stall_s = 10, .max_response = max_response};
    assert_int_equal(wh_s3_new(&s, &c), 0);
    return s;
}

static void test_s3__server_closes_mid_body(void **state)
{
    (void)state;
    static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n"
                                 "ETag: \"x\"\r\n\r\n0123456789";
    struct fake f;
    struct wh_buf got;
    fake_start(&f, answer, sizeof(answer) - 1, 1);
    wh_s3 *s = fake_client(&f, 0);
    wh_buf_init(&got, 1 << 20);
    int error = wh_s3_get(s, "k", 0, WH_S3_TO_END, to_buf, &got, NULL);
    assert_int_equal(error, WH_ERROR);
    assert_non_null(strstr(wh_error_msg(), "closed after 10 bytes"));
    /* the request was signed as curl 7.88 needs: our payload hash, signed with the rest */
    assert_non_null(strstr(f.last_request, "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996f"));
    assert_non_null(strstr(f.last_request, "SignedHeaders=host;x-amz-content-sha256;x-amz-date"));
    assert_non_null(strstr(f.last_request, "GET /wharf-test/k HTTP/1.1"));
    assert_null(strstr(f.last_request, "SK-never-shown"));
    assert_null(strstr(f.last_request, "xpect"));
    wh_buf_dispose(&got);
    wh_s3_free(s);
    fake_stop(&f);
}

static void test_s3__answer_over_cap(void **state)
{
    (void)state;
    char *answer = wh_malloc(70000);
    int n = snprintf(answer, 70000, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n<ListBucketResult>",
                     65536 + 18);
    memset(answer + n, ' ', 65536);
    struct fake f;
    fake_start(&f, answer, (size_t)n + 65536, 1);
    wh_s3 *s = fake_client(&f, 4096);
    struct wh_s3_list l;
    assert_int_equal(wh_s3_list(s, &l, "p/", NULL, 10), WH_ETOOBIG);
    assert_non_null(strstr(wh_error_msg(), "larger than 4096 bytes"));
    assert_int_equal(l.n, 0);
    /* the query went out in canonical form */
    assert_non_null(strstr(f.last_request, "GET /wharf-test/?list-type=2&max-keys=10&prefix=p%2F "));
    wh_s3_free(s);
    fake_stop(&f);
    free(answer);
}

static void test_s3__server_ignores_range(void **state)
{
    (void)state;
    static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 26\r\n\r\n"
                                 "abcdefghijklmnopqrstuvwxyz";
    struct fake f;
    struct wh_buf got;
    struct wh_s3_object info;
    fake_start(&f, answer, sizeof(answer) - 1, 3);
    wh_s3 *s = fake_client(&f, 0);
    wh_buf_init(&got, 1 << 20);
    /* a 200 to a ranged read: the client cuts the range out itself */
    assert_int_equal(wh_s3_get(s, "k", 3, 4, to_buf, &got, &info), 0);
    assert_int_equal(got.len, 4);
    assert_memory_equal(got.data, "defg", 4);
    assert_non_null(strstr(f.last_request, "Range: bytes=3-6"));
    assert_int_equal(info.size, 26);
    got.len = 0;
    assert_int_equal(wh_s3_get(s, "k", 20, WH_S3_TO_END, to_buf, &got, NULL), 0);
    assert_int_equal(got.len, 6);
    assert_memory_equal(got.data, "uvwxyz", 6);
    /* ... and past its end: a range error, as S3's 416 */
    got.len = 0;
    assert_int_equal(wh_s3_get(s, "k", 26, 10, to_buf, &got, NULL), WH_ERANGE);
    assert_int_equal(got.len, 0);
    wh_buf_dispose(&got);
    wh_s3_free(s);
    fake_stop(&f);
}

static void test_s3__wrong_content_range(void **state)
{
    (void)state;
    static const char answer[] = "HTTP/1.1 206 Partial Content\r\nContent-Length: 4\r\n"
                                 "Content-Range: bytes 0-3/26\r\n\r\nabcd";
    struct fake f;
    struct wh_buf got;
    fake_start(&f, answer, sizeof(answer) - 1, 1);
    wh_s3 *s = fake_client(&f, 0);
    wh_buf_init(&got, 1 << 20);
    assert_int_equal(wh_s3_get(s, "k", 3, 4, to_buf, &got, NULL), WH_ERROR);
    assert_non_null(strstr(wh_error_msg(), "Content-Range"));
    assert_int_equal(got.len, 0); /* nothing from the wrong place reached the sink */
    wh_buf_dispose(&got);
    wh_s3_free(s);
    fake_stop(&f);
}

static void test_s3__error_after_200(void **state)
{
    (void)state;
    static const char body[] = "<?xml version=\"1.0\"?>\n<Error><Code>InvalidPart</Code>"
                               "<Message>One or more of the specified parts could not be found."
                               "</Message></Error>";
    char answer[512];
    int n = snprintf(answer, sizeof(answer), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    struct fake f;
    fake_start(&f, answer, (size_t)n, 1);
    wh_s3 *s = fake_client(&f, 0);
    struct wh_s3_part p = {.number = 1, .etag = "\"a&b\""};
    assert_int_equal(wh_s3_mpu_complete(s, "k", "up/1", &p, 1), WH_EINVALID);
    assert_non_null(strstr(wh_error_msg(), "200 InvalidPart: One or more"));
    assert_non_null(strstr(f.last_request, "POST /wharf-test/k?uploadId=up%2F1 "));
    wh_s3_free(s);
    fake_stop(&f);
}

static void test_s3__batch_delete_failures(void **state)
{
    (void)state;
    static const char body[] =
        "<DeleteResult><Error><Key>p/b</Key><Code>AccessDenied</Code><Message>Access Denied"
        "</Message></Error></DeleteResult>";
    char answer[512];
    int n = snprintf(answer, sizeof(answer), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    struct fake f;
    fake_start(&f, answer, (size_t)n, 1);
    char ep[64];
    wh_s3 *s = NULL;
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", f.port);
    struct wh_s3_config c = {.endpoint = ep, .bucket = "wharf-test", .access_key = "AK",
                             .secret_key = "SK", .path_style = true, .prefix = "p/",
                             .timeout_s = 10};
    assert_int_equal(wh_s3_new(&s, &c), 0);
    const char *keys[] = {"a", "b", "c"};
    size_t failed = 0;
    assert_int_equal(wh_s3_delete_many(s, keys, 3, &failed), WH_EDENIED);
    assert_int_equal(failed, 1);
    assert_non_null(strstr(wh_error_msg(), "1 of 3 keys not deleted; b: AccessDenied"));
    assert_non_null(strstr(f.last_request, "POST /wharf-test/?delete= HTTP/1.1"));
    assert_non_null(strstr(f.last_request, "Content-MD5: "));
    /* a key XML cannot carry is refused before anything is sent */
    const char *bad[] = {"a\x01b"};
    assert_int_equal(wh_s3_delete_many(s, bad, 1, NULL), WH_EINVALID);
    assert_int_equal(wh_s3_delete_many(s, keys, 0, NULL), 0);
    wh_s3_free(s);
    fake_stop(&f);
}

static void test_s3__virtual_host_url(void **state)
{
    (void)state;
    static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    struct fake f;
    struct wh_buf got;
    char ep[64], host[96];
    wh_s3 *s = NULL;
    fake_start(&f, answer, sizeof(answer) - 1, 1);
    /* libcurl resolves *.localhost to the loopback address itself */
    snprintf(ep, sizeof(ep), "http://localhost:%d/", f.port);
    struct wh_s3_config c = {.endpoint = ep, .bucket = "wharf-test", .region = "eu-west-3",
                             .access_key = "AK", .secret_key = "SK", .prefix = "reg/",
                             .timeout_s = 10};
    assert_int_equal(wh_s3_new(&s, &c), 0);
    wh_buf_init(&got, 64);
    assert_int_equal(wh_s3_get(s, "a b", 0, WH_S3_TO_END, to_buf, &got, NULL), 0);
    assert_int_equal(got.len, 2);
    snprintf(host, sizeof(host), "Host: wharf-test.localhost:%d\r\n", f.port);
    assert_non_null(strstr(f.last_request, "GET /reg/a%20b HTTP/1.1\r\n"));
    assert_non_null(strstr(f.last_request, host));
    assert_non_null(strstr(f.last_request, "/eu-west-3/s3/aws4_request"));
    wh_buf_dispose(&got);
    wh_s3_free(s);
    fake_stop(&f);
}

static void test_s3__no_server(void **state)
{
    (void)state;
    struct fake f;
    fake_start(&f, "", 0, 0); /* bound, then closed: nothing listens on the port */
    fake_stop(&f);
    wh_s3 *s = fake_client(&f, 0);
    struct wh_s3_object o;
    assert_int_equal(wh_s3_head(s, "k", &o), WH_ERROR);
    assert_non_null(strstr(wh_error_msg(), "s3 HEAD wharf-test/k: "));
    wh_s3_free(s);
}

/* ---- against a real server ------------------------------------------------------------------ */

struct live {
    wh_s3 *s;
    char prefix[64];
    struct wh_s3_config cfg;
};

static int live_setup(void **state)
{
    struct live *l = wh_calloc(1, sizeof(*l));
    char hex[17];
    wh_random_hex(hex, 8);
    snprintf(l->prefix, sizeof(l->prefix), "t-%s/", hex);
    l->cfg = (struct wh_s3_config){
        .endpoint = getenv("WHARF_S3_TEST_ENDPOINT"),
        .bucket = getenv("WHARF_S3_TEST_BUCKET"),
        .region = getenv("WHARF_S3_TEST_REGION"),
        .access_key = getenv("WHARF_S3_TEST_ACCESS_KEY"),
        .secret_key = getenv("WHARF_S3_TEST_SECRET_KEY"),
        .prefix = l->prefix,
        .path_style = true,
        .timeout_s = 30,
        .stall_s = 30,
    };
    if (wh_s3_new(&l->s, &l->cfg) < 0) {
        fprintf(stderr, "test_s3: %s\n", wh_error_msg());
        free(l);
        return -1;
    }
    *state = l;
    return 0;
}

static int live_teardown(void **state)
{
    struct live *l = *state;
    wh_s3_free(l->s);
    free(l);
    return 0;
}

static void test_s3__put_get_head_delete(void **state)
{
    struct live *l = *state;
    struct wh_s3_object o;
    struct wh_buf got;
    static const char data[] = "hello, radosgw";
    wh_buf_init(&got, 1 << 20);

    assert_int_equal(wh_s3_head(l->s, "obj", &o), WH_ENOTFOUND);
    assert_int_equal(wh_s3_get(l->s, "obj", 0, WH_S3_TO_END, to_buf, &got, NULL), WH_ENOTFOUND);
    assert_non_null(strstr(wh_error_msg(), "404 NoSuchKey"));
    assert_int_equal(got.len, 0); /* the error's body never reaches the sink */

    assert_int_equal(wh_s3_put(l->s, "obj", data, strlen(data)), 0);
    assert_int_equal(wh_s3_head(l->s, "obj", &o), 0);
    assert_int_equal(o.size, strlen(data));
    assert_string_equal(o.etag, "\"a65da92d6b43c734ee5e11f8a3c4ec31\""); /* md5 of the bytes */
    assert_true(o.mtime_ms > 1700000000000LL);
    struct wh_s3_object info;
    assert_int_equal(wh_s3_get(l->s, "obj", 0, WH_S3_TO_END, to_buf, &got, &info), 0);
    assert_int_equal(got.len, strlen(data));
    assert_memory_equal(got.data, data, got.len);
    assert_int_equal(info.size, strlen(data));
    assert_string_equal(info.etag, o.etag);

    /* overwrite, then an empty object */
    assert_int_equal(wh_s3_put(l->s, "obj", "x", 1), 0);
    assert_int_equal(wh_s3_head(l->s, "obj", &o), 0);
    assert_int_equal(o.size, 1);
    assert_int_equal(wh_s3_put(l->s, "empty", NULL, 0), 0);
    assert_int_equal(wh_s3_head(l->s, "empty", &o), 0);
    assert_int_equal(o.size, 0);
    got.len = 0;
    assert_int_equal(wh_s3_get(l->s, "empty", 0, WH_S3_TO_END, to_buf, &got, NULL), 0);
    assert_int_equal(got.len, 0);

    assert_int_equal(wh_s3_delete(l->s, "obj"), 0);
    assert_int_equal(wh_s3_delete(l->s, "obj"), 0); /* idempotent */
    assert_int_equal(wh_s3_delete(l->s, "empty"), 0);
    assert_int_equal(wh_s3_head(l->s, "obj", &o), WH_ENOTFOUND);
    assert_int_equal(wh_s3_get(l->s, "obj", 0, 0, to_buf, &got, NULL), WH_EINVALID);
    wh_buf_dispose(&got);
}

static void test_s3__stream_and_ranges(void **state)
{
    struct live *l = *state;
    const size_t len = 3 * 1024 * 1024 + 17;
    unsigned char *data = pattern(len, 1);
    struct src src = {.data = data, .len = len, .step = 70001};
    struct wh_buf got;
    struct wh_s3_object info;
    wh_buf_init(&got, 8 << 20);

    assert_int_equal(wh_s3_put_stream(l->s, "big", len, from_src, &src), 0);
    assert_int_equal(src.off, len);
    assert_int_equal(wh_s3_get(l->s, "big", 0, WH_S3_TO_END, to_buf, &got, &info), 0);
    assert_int_equal(got.len, len);
    assert_memory_equal(got.data, data, len);
    assert_int_equal(info.size, len);

    static const struct {
        uint64_t off, len, want;
    } ranges[] = {
        {0, 1, 1}, {1, 100, 100}, {1048576 - 3, 10, 10}, {3 * 1024 * 1024, WH_S3_TO_END, 17},
        {3 * 1024 * 1024 + 10, 1000, 7}, /* past the end: cut to what there is */
    };
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        got.len = 0;
        assert_int_equal(wh_s3_get(l->s, "big", ranges[i].off, ranges[i].len, to_buf, &got, &info),
                         0);
        assert_int_equal(got.len, ranges[i].want);
        assert_memory_equal(got.data, data + ranges[i].off, ranges[i].want);
        assert_int_equal(info.size, len); /* the object's size, from Content-Range */
    }
    got.len = 0;
    assert_int_equal(wh_s3_get(l->s, "big", len, 10, to_buf, &got, NULL), WH_ERANGE);
    assert_non_null(strstr(wh_error_msg(), "416 InvalidRange"));

    /* a source that ends early: an error, and nothing stored */
    struct src short_src = {.data = data, .len = len, .stop_at = 1000};
    assert_int_equal(wh_s3_put_stream(l->s, "short", len, from_src, &short_src), WH_ERROR);
    assert_non_null(strstr(wh_error_msg(), "ended after 1000 of"));
    struct wh_s3_object o;
    assert_int_equal(wh_s3_head(l->s, "short", &o), WH_ENOTFOUND);

    /* a sink that refuses: its code comes back */
    assert_int_equal(wh_s3_get(l->s, "big", 0, WH_S3_TO_END, refuse, NULL, NULL), WH_ECONFLICT);
    assert_string_equal(wh_error_msg(), "sink full");
    assert_int_equal(wh_s3_delete(l->s, "big"), 0);
    wh_buf_dispose(&got);
    free(data);
}

static void test_s3__keys_needing_encoding(void **state)
{
    struct live *l = *state;
    static const char *const keys[] = {
        "dir/a b+c%d&e=f",
        "dir/q?x#y",
        "dir/\xc3\xa9t\xc3\xa9 \xe2\x82\xac",
        "dir/*'()!$,;:@~",
        "dir/../dot/./seg",
        "dir//double",
    };
    const size_t n = sizeof(keys) / sizeof(keys[0]);
    for (size_t i = 0; i < n; i++) {
        if (wh_s3_put(l->s, keys[i], keys[i], strlen(keys[i])) < 0)
            fail_msg("PUT %s: %s", keys[i], wh_error_msg());
        struct wh_s3_object o;
        assert_int_equal(wh_s3_head(l->s, keys[i], &o), 0);
        assert_int_equal(o.size, strlen(keys[i]));
    }
    /* listed back exactly (sorted bytewise), the prefix with a space in the query */
    struct wh_s3_list list;
    assert_int_equal(wh_s3_list(l->s, &list, "dir/", NULL, 0), 0);
    assert_int_equal(list.n, n);
    for (size_t i = 0; i < list.n; i++) {
        bool found = false;
        for (size_t j = 0; j < n; j++)
            found |= strcmp(list.items[i].key, keys[j]) == 0;
        if (!found)
            fail_msg("listed an unknown key \"%s\"", list.items[i].key);
        if (i)
            assert_true(strcmp(list.items[i - 1].key, list.items[i].key) < 0);
    }
    wh_s3_list_dispose(&list);
    assert_int_equal(wh_s3_list(l->s, &list, "dir/a b", NULL, 0), 0);
    assert_int_equal(list.n, 1);
    wh_s3_list_dispose(&list);
    /* copied to another odd key, with the source encoded in x-amz-copy-source */
    assert_int_equal(wh_s3_copy(l->s, "copy/\xe2\x82\xac %", keys[0]), 0);
    struct wh_buf got;
    wh_buf_init(&got, 4096);
    assert_int_equal(wh_s3_get(l->s, "copy/\xe2\x82\xac %", 0, WH_S3_TO_END, to_buf, &got, NULL),
                     0);
    assert_int_equal(got.len, strlen(keys[0]));
    assert_memory_equal(got.data, keys[0], got.len);
    wh_buf_dispose(&got);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(wh_s3_delete(l->s, keys[i]), 0);
    assert_int_equal(wh_s3_delete(l->s, "copy/\xe2\x82\xac %"), 0);
}

static void test_s3__copy_commit_by_rename(void **state)
{
    struct live *l = *state;
    struct wh_s3_object a, b;
    struct wh_buf got;
    unsigned char *data = pattern(100000, 2);
    wh_buf_init(&got, 1 << 20);
    assert_int_equal(wh_s3_put(l->s, "_uploads/u1/data", data, 100000), 0);
    assert_int_equal(wh_s3_copy(l->s, "blobs/sha256/ab/abcd", "_uploads/u1/data"), 0);
    assert_int_equal(wh_s3_delete(l->s, "_uploads/u1/data"), 0);
    assert_int_equal(wh_s3_head(l->s, "_uploads/u1/data", &a), WH_ENOTFOUND);
    assert_int_equal(wh_s3_head(l->s, "blobs/sha256/ab/abcd", &b), 0);
    assert_int_equal(b.size, 100000);
    assert_int_equal(wh_s3_get(l->s, "blobs/sha256/ab/abcd", 0, WH_S3_TO_END, to_buf, &got, NULL),
                     0);
    assert_memory_equal(got.data, data, 100000);
    /* a missing source */
    assert_int_equal(wh_s3_copy(l->s, "blobs/x", "_uploads/none"), WH_ENOTFOUND);
    assert_non_null(strstr(wh_error_msg(), "404 NoSuchKey"));
    assert_int_equal(wh_s3_delete(l->s, "blobs/sha256/ab/abcd"), 0);
    wh_buf_dispose(&got);
    free(data);
}

static void test_s3__list_pages(void **state)
{
    struct live *l = *state;
    char key[64];
    for (int i = 0; i < 7; i++) {
        snprintf(key, sizeof(key), "ls/k%02d", i);
        assert_int_equal(wh_s3_put(l->s, key, key, strlen(key)), 0);
    }
    assert_int_equal(wh_s3_put(l->s, "other/k", "x", 1), 0);
    char *token = NULL;
    int seen = 0, pages = 0;
    do {
        struct wh_s3_list list;
        assert_int_equal(wh_s3_list(l->s, &list, "ls/", token, 3), 0);
        free(token);
        token = list.next_token ? wh_strdup(list.next_token) : NULL;
        assert_true(list.n <= 3);
        for (size_t i = 0; i < list.n; i++) {
            snprintf(key, sizeof(key), "ls/k%02d", seen++);
            assert_string_equal(list.items[i].key, key);
            assert_int_equal(list.items[i].size, strlen(key));
            assert_true(list.items[i].etag[0] == '"');
            assert_true(list.items[i].mtime_ms > 1700000000000LL);
        }
        assert_true(list.truncated == (token != NULL));
        wh_s3_list_dispose(&list);
        pages++;
    } while (token);
    assert_int_equal(seen, 7);
    assert_int_equal(pages, 3);
    /* an empty listing */
    struct wh_s3_list none;
    assert_int_equal(wh_s3_list(l->s, &none, "nothing-here/", NULL, 0), 0);
    assert_int_equal(none.n, 0);
    assert_false(none.truncated);
    wh_s3_list_dispose(&none);
    for (int i = 0; i < 7; i++) {
        snprintf(key, sizeof(key), "ls/k%02d", i);
        assert_int_equal(wh_s3_delete(l->s, key), 0);
    }
    assert_int_equal(wh_s3_delete(l->s, "other/k"), 0);
}

static void test_s3__batch_delete(void **state)
{
    struct live *l = *state;
    const char *keys[] = {"bd/1", "bd/two words", "bd/\xc3\xa9 & <x>", "bd/tab\there",
                          "bd/never-written"};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(wh_s3_put(l->s, keys[i], "x", 1), 0);
    size_t failed = 99;
    if (wh_s3_delete_many(l->s, keys, 5, &failed) < 0)
        fail_msg("%s", wh_error_msg());
    assert_int_equal(failed, 0);
    struct wh_s3_list list;
    assert_int_equal(wh_s3_list(l->s, &list, "bd/", NULL, 0), 0);
    assert_int_equal(list.n, 0);
    wh_s3_list_dispose(&list);
    /* with a wrong secret the whole request is refused */
    struct wh_s3_config c = l->cfg;
    wh_s3 *bad = NULL;
    c.secret_key = "not-it";
    assert_int_equal(wh_s3_new(&bad, &c), 0);
    assert_int_equal(wh_s3_delete_many(bad, keys, 1, NULL), WH_EDENIED);
    wh_s3_free(bad);
}

#define MIB (1024 * 1024)

static void test_s3__multipart(void **state)
{
    struct live *l = *state;
    const size_t p1 = 5 * MIB, p2 = MIB + 123, len = p1 + p2;
    unsigned char *data = pattern(len, 3);
    char *id = NULL;
    struct wh_s3_part parts[2] = {{.number = 1, .size = p1}, {.number = 2, .size = p2}};
    const char *key = "mp/blob \xc3\xa9";

    assert_int_equal(wh_s3_mpu_create(l->s, key, &id), 0);
    assert_non_null(id);
    struct src s1 = {.data = data, .len = p1, .step = 65536};
    struct src s2 = {.data = data + p1, .len = p2};
    assert_int_equal(wh_s3_mpu_put_part(l->s, key, id, 1, p1, from_src, &s1, parts[0].etag), 0);
    assert_int_equal(wh_s3_mpu_put_part(l->s, key, id, 2, p2, from_src, &s2, parts[1].etag), 0);
    assert_true(parts[0].etag[0] == '"');

    struct wh_s3_part *listed = NULL;
    size_t n = 0;
    assert_int_equal(wh_s3_mpu_list_parts(l->s, key, id, &listed, &n), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(listed[i].number, i + 1);
        assert_int_equal(listed[i].size, parts[i].size);
        assert_string_equal(listed[i].etag, parts[i].etag);
    }
    free(listed);

    /* parts out of order are refused before anything is sent (rgw 16 would accept them) */
    struct wh_s3_part swapped[2] = {parts[1], parts[0]};
    assert_int_equal(wh_s3_mpu_complete(l->s, key, id, swapped, 2), WH_EINVALID);
    assert_non_null(strstr(wh_error_msg(), "ascending order"));
    /* a wrong ETag is refused by the server, and the upload stays */
    struct wh_s3_part wrong = parts[0];
    memcpy(wrong.etag, "\"00000000000000000000000000000000\"", 35);
    int error = wh_s3_mpu_complete(l->s, key, id, &wrong, 1);
    if (error != WH_EINVALID || !strstr(wh_error_msg(), "400 InvalidPart"))
        fail_msg("complete, wrong ETag: %d %s", error, wh_error_msg());

    assert_int_equal(wh_s3_mpu_complete(l->s, key, id, parts, 2), 0);
    struct wh_s3_object o;
    assert_int_equal(wh_s3_head(l->s, key, &o), 0);
    assert_int_equal(o.size, len);
    assert_non_null(strstr(o.etag, "-2\"")); /* S3's multipart ETag: md5 of md5s, "-N" */

    struct wh_buf got;
    wh_buf_init(&got, 8 * MIB);
    assert_int_equal(wh_s3_get(l->s, key, 0, WH_S3_TO_END, to_buf, &got, NULL), 0);
    assert_int_equal(got.len, len);
    assert_memory_equal(got.data, data, len);
    /* a ranged read across the part boundary */
    got.len = 0;
    assert_int_equal(wh_s3_get(l->s, key, p1 - 1000, 3000, to_buf, &got, NULL), 0);
    assert_int_equal(got.len, 3000);
    assert_memory_equal(got.data, data + p1 - 1000, 3000);

    /* the upload is gone once complete */
    assert_int_equal(wh_s3_mpu_abort(l->s, key, id), WH_ENOTFOUND);
    assert_int_equal(wh_s3_delete(l->s, key), 0);
    wh_buf_dispose(&got);
    free(id);
    free(data);
}

static void test_s3__multipart_copy(void **state)
{
    struct live *l = *state;
    const size_t len = 5 * MIB + 4096;
    unsigned char *data = pattern(len, 6);
    struct wh_s3_part parts[2] = {{.number = 1}, {.number = 2}};
    char *id = NULL;
    struct wh_buf got;

    assert_int_equal(wh_s3_put(l->s, "staging/x", data, len), 0);
    /* a large object copied part by part, as CopyObject cannot past 5 GiB on AWS */
    assert_int_equal(wh_s3_mpu_create(l->s, "final/x y", &id), 0);
    assert_int_equal(wh_s3_mpu_copy_part(l->s, "final/x y", id, 1, "staging/x", 0, 5 * MIB,
                                         parts[0].etag),
                     0);
    assert_int_equal(wh_s3_mpu_copy_part(l->s, "final/x y", id, 2, "staging/x", 5 * MIB, 4096,
                                         parts[1].etag),
                     0);
    assert_true(parts[0].etag[0] && parts[1].etag[0]); /* rgw 16 sends them without quotes */
    /* a missing source, a range past its end, a length of 0 */
    char etag[WH_S3_ETAG_MAX];
    assert_int_equal(wh_s3_mpu_copy_part(l->s, "final/x y", id, 3, "staging/none", 0, 10, etag),
                     WH_ENOTFOUND);
    int error = wh_s3_mpu_copy_part(l->s, "final/x y", id, 3, "staging/x", len, 10, etag);
    if (error != WH_ERANGE || !strstr(wh_error_msg(), "416 InvalidRange")) /* AWS: 400 */
        fail_msg("copy of a range past the end: %d %s", error, wh_error_msg());
    assert_int_equal(wh_s3_mpu_copy_part(l->s, "final/x y", id, 3, "staging/x", 0, 0, etag),
                     WH_EINVALID);
    assert_int_equal(wh_s3_mpu_complete(l->s, "final/x y", id, parts, 2), 0);
    wh_buf_init(&got, 8 * MIB);
    assert_int_equal(wh_s3_get(l->s, "final/x y", 0, WH_S3_TO_END, to_buf, &got, NULL), 0);
    assert_int_equal(got.len, len);
    assert_memory_equal(got.data, data, len);
    assert_int_equal(wh_s3_delete(l->s, "staging/x"), 0);
    assert_int_equal(wh_s3_delete(l->s, "final/x y"), 0);
    wh_buf_dispose(&got);
    free(id);
    free(data);
}

static void test_s3__multipart_abort_and_list(void **state)
{
    struct live *l = *state;
    char *id1 = NULL, *id2 = NULL, etag[WH_S3_ETAG_MAX];
    unsigned char *data = pattern(1000, 4);
    struct src src = {.data = data, .len = 1000};

    assert_int_equal(wh_s3_mpu_create(l->s, "gc/a", &id1), 0);
    assert_int_equal(wh_s3_mpu_create(l->s, "gc/b", &id2), 0);
    assert_int_equal(wh_s3_mpu_put_part(l->s, "gc/a", id1, 1, 1000, from_src, &src, etag), 0);
    assert_int_equal(wh_s3_mpu_put_part(l->s, "gc/a", id1, 0, 1000, from_src, &src, etag),
                     WH_EINVALID);

    /* listed one page at a time */
    struct wh_s3_uploads page;
    assert_int_equal(wh_s3_mpu_list(l->s, &page, "gc/", NULL, NULL, 1), 0);
    assert_int_equal(page.n, 1);
    assert_true(page.truncated);
    assert_string_equal(page.items[0].key, "gc/a");
    assert_string_equal(page.items[0].upload_id, id1);
    assert_true(page.items[0].initiated_ms > 1700000000000LL);
    assert_string_equal(page.next_key_marker, "gc/a");
    char *km = wh_strdup(page.next_key_marker), *um = wh_strdup(page.next_upload_id_marker);
    wh_s3_uploads_dispose(&page);
    assert_int_equal(wh_s3_mpu_list(l->s, &page, "gc/", km, um, 1), 0);
    assert_int_equal(page.n, 1);
    assert_string_equal(page.items[0].key, "gc/b");
    assert_string_equal(page.items[0].upload_id, id2);
    wh_s3_uploads_dispose(&page);
    free(km);
    free(um);

    assert_int_equal(wh_s3_mpu_abort(l->s, "gc/a", id1), 0);
    assert_int_equal(wh_s3_mpu_abort(l->s, "gc/b", id2), 0);
    assert_int_equal(wh_s3_mpu_abort(l->s, "gc/b", id2), WH_ENOTFOUND);
    assert_non_null(strstr(wh_error_msg(), "NoSuchUpload"));
    src.off = 0;
    assert_int_equal(wh_s3_mpu_put_part(l->s, "gc/a", id1, 2, 1000, from_src, &src, etag),
                     WH_ENOTFOUND);
    struct wh_s3_part *parts = NULL;
    size_t n = 0;
    assert_int_equal(wh_s3_mpu_list_parts(l->s, "gc/a", id1, &parts, &n), WH_ENOTFOUND);
    assert_int_equal(wh_s3_mpu_list(l->s, &page, "gc/", NULL, NULL, 0), 0);
    assert_int_equal(page.n, 0);
    wh_s3_uploads_dispose(&page);
    struct wh_s3_object o;
    assert_int_equal(wh_s3_head(l->s, "gc/a", &o), WH_ENOTFOUND);
    free(id1);
    free(id2);
    free(data);
}

static void test_s3__wrong_secret(void **state)
{
    struct live *l = *state;
    struct wh_s3_config c = l->cfg;
    wh_s3 *bad = NULL;
    struct wh_buf got;
    c.secret_key = "definitely-not-the-secret";
    assert_int_equal(wh_s3_new(&bad, &c), 0);
    assert_int_equal(wh_s3_put(l->s, "auth", "x", 1), 0);
    wh_buf_init(&got, 4096);
    assert_int_equal(wh_s3_get(bad, "auth", 0, WH_S3_TO_END, to_buf, &got, NULL), WH_EDENIED);
    assert_non_null(strstr(wh_error_msg(), "403 SignatureDoesNotMatch"));
    assert_null(strstr(wh_error_msg(), "definitely-not-the-secret"));
    assert_null(strstr(wh_error_msg(), l->cfg.secret_key));
    assert_int_equal(got.len, 0);
    assert_int_equal(wh_s3_put(bad, "auth2", "x", 1), WH_EDENIED);
    assert_non_null(strstr(wh_error_msg(), "SignatureDoesNotMatch"));
    struct wh_s3_list list;
    assert_int_equal(wh_s3_list(bad, &list, NULL, NULL, 0), WH_EDENIED);
    /* an unknown access key */
    wh_s3_free(bad);
    c = l->cfg;
    c.access_key = "NOSUCHKEY";
    assert_int_equal(wh_s3_new(&bad, &c), 0);
    assert_int_equal(wh_s3_put(bad, "auth2", "x", 1), WH_EDENIED);
    assert_non_null(strstr(wh_error_msg(), "403 InvalidAccessKeyId"));
    wh_s3_free(bad);
    assert_int_equal(wh_s3_delete(l->s, "auth"), 0);
    wh_buf_dispose(&got);
}

static void test_s3__answer_cap_live(void **state)
{
    struct live *l = *state;
    struct wh_s3_config c = l->cfg;
    wh_s3 *small = NULL;
    char key[32];
    c.max_response = 600;
    assert_int_equal(wh_s3_new(&small, &c), 0);
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "cap/%d", i);
        assert_int_equal(wh_s3_put(l->s, key, "x", 1), 0);
    }
    struct wh_s3_list list;
    assert_int_equal(wh_s3_list(small, &list, "cap/", NULL, 0), WH_ETOOBIG);
    assert_non_null(strstr(wh_error_msg(), "larger than 600 bytes"));
    /* object bodies are not capped: they stream */
    struct wh_buf got;
    unsigned char *data = pattern(4096, 5);
    wh_buf_init(&got, 8192);
    assert_int_equal(wh_s3_put(small, "cap/big", data, 4096), 0);
    assert_int_equal(wh_s3_get(small, "cap/big", 0, WH_S3_TO_END, to_buf, &got, NULL), 0);
    assert_int_equal(got.len, 4096);
    assert_int_equal(wh_s3_delete(l->s, "cap/big"), 0);
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "cap/%d", i);
        assert_int_equal(wh_s3_delete(l->s, key), 0);
    }
    wh_buf_dispose(&got);
    free(data);
    wh_s3_free(small);
}

/* Several threads share one client (its idle handles and connections). */
struct worker {
    wh_s3 *s;
    int id;
    int failures;
};
static void *worker_run(void *arg)
{
    struct worker *w = arg;
    char key[32], val[32];
    for (int i = 0; i < 20; i++) {
        struct wh_buf got;
        snprintf(key, sizeof(key), "mt/%d/%d", w->id, i);
        snprintf(val, sizeof(val), "v%d.%d", w->id, i);
        wh_buf_init(&got, 64);
        if (wh_s3_put(w->s, key, val, strlen(val)) < 0 ||
            wh_s3_get(w->s, key, 0, WH_S3_TO_END, to_buf, &got, NULL) < 0 ||
            got.len != strlen(val) || memcmp(got.data, val, got.len) != 0 ||
            wh_s3_delete(w->s, key) < 0)
            w->failures++;
        wh_buf_dispose(&got);
    }
    return NULL;
}

static void test_s3__threads_share_a_client(void **state)
{
    struct live *l = *state;
    struct worker w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.s = l->s, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
}

int main(void)
{
    const struct CMUnitTest offline[] = {
        cmocka_unit_test(test_s3__encode),
        cmocka_unit_test(test_s3__canonical_query),
        cmocka_unit_test(test_s3__sign_v4),
        cmocka_unit_test(test_s3__config_checked),
        cmocka_unit_test(test_s3__doc_list),
        cmocka_unit_test(test_s3__doc_other_kinds),
        cmocka_unit_test(test_s3__doc_hostile),
        cmocka_unit_test(test_s3__time_parse),
        cmocka_unit_test(test_s3__server_closes_mid_body),
        cmocka_unit_test(test_s3__answer_over_cap),
        cmocka_unit_test(test_s3__server_ignores_range),
        cmocka_unit_test(test_s3__wrong_content_range),
        cmocka_unit_test(test_s3__error_after_200),
        cmocka_unit_test(test_s3__batch_delete_failures),
        cmocka_unit_test(test_s3__virtual_host_url),
        cmocka_unit_test(test_s3__no_server),
    };
#define LIVE(t) cmocka_unit_test_setup_teardown(t, live_setup, live_teardown)
    const struct CMUnitTest live[] = {
        LIVE(test_s3__put_get_head_delete),
        LIVE(test_s3__stream_and_ranges),
        LIVE(test_s3__keys_needing_encoding),
        LIVE(test_s3__copy_commit_by_rename),
        LIVE(test_s3__list_pages),
        LIVE(test_s3__batch_delete),
        LIVE(test_s3__multipart),
        LIVE(test_s3__multipart_copy),
        LIVE(test_s3__multipart_abort_and_list),
        LIVE(test_s3__wrong_secret),
        LIVE(test_s3__answer_cap_live),
        LIVE(test_s3__threads_share_a_client),
    };
    if (getenv("WHARF_S3_TEST_ENDPOINT") && *getenv("WHARF_S3_TEST_ENDPOINT"))
        return cmocka_run_group_tests_name("s3 (live server)", live, NULL, NULL);
    return cmocka_run_group_tests_name("s3", offline, NULL, NULL);
}
