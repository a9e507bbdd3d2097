/*
 * s3: a small client for S3-compatible object stores (AWS S3, MinIO, Ceph
 * radosgw), private to storage/: the S3 storage driver is built on it. It
 * speaks path-style or virtual-host URLs over libcurl (loaded on first use),
 * signs with libcurl's SigV4 and does itself what Debian's libcurl 7.88 does
 * not: the x-amz-content-sha256 header and canonical query strings. Objects,
 * ranged reads, server-side copies, ListObjectsV2 and multipart uploads; not
 * buckets, ACLs, versions or presigned URLs. Every answer read into memory is
 * capped; object bodies stream through callbacks and are never buffered.
 */
#ifndef WH_S3_H
#define WH_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

typedef struct wh_s3 wh_s3;

struct wh_s3_config {
    const char *endpoint;       /* "http(s)://host[:port]", no path */
    const char *bucket;         /* 3-63 characters of [a-z0-9.-] */
    const char *region;         /* NULL or "": us-east-1 */
    const char *access_key;
    const char *secret_key;     /* copied; never logged nor put in a message */
    const char *prefix;         /* NULL or "": none; else put before every key verbatim */
    bool path_style;            /* http://host/bucket/key, else http://bucket.host/key */
    const char *ca_file;        /* NULL: the system's CAs */
    unsigned connect_timeout_s; /* connection set-up (0: 10 s) */
    unsigned timeout_s;         /* a whole request without a streamed body (0: 60 s) */
    unsigned stall_s;           /* a streamed transfer fails when no byte moved for this long
                                   (0: 60 s) */
    size_t max_response;        /* cap on an answer read into memory (XML; 0: 4 MiB) */
};

/*
 * Checks `cfg` and makes a client (nothing is sent). Returns 0 or WH_EINVALID
 * (the message names the field, never the secret). `*out` is the caller's:
 * free with wh_s3_free. A client is safe to use from several threads at once:
 * it keeps a few idle libcurl handles (with their connections) for reuse.
 */
int wh_s3_new(wh_s3 **out, const struct wh_s3_config *cfg);
/* Frees a client and its idle connections (NULL is ignored); no request may be running. */
void wh_s3_free(wh_s3 *s);

/*
 * Errors of every request function below: besides the codes listed with
 * each, WH_EDENIED (403: AccessDenied, SignatureDoesNotMatch, ...), WH_EBUSY
 * (503 SlowDown), WH_EINVALID (400), WH_ETOOBIG (an answer over the cap) and
 * WH_ERROR (no answer, a transfer cut short, anything else). The message
 * reads "s3 METHOD bucket/key: STATUS Code: Message" with the server's S3
 * error code.
 */

#define WH_S3_ETAG_MAX 80       /* an ETag as the server sent it, quotes included, + NUL */
#define WH_S3_KEY_MAX 1024      /* bytes of a key, the configured prefix included */
#define WH_S3_TO_END UINT64_MAX /* length of a read up to the end of the object */

struct wh_s3_object {
    uint64_t size;
    char etag[WH_S3_ETAG_MAX];
    int64_t mtime_ms; /* Last-Modified (0: not sent) */
};

/*
 * Body sources and sinks. A read function fills `buf` (at most `cap` bytes,
 * never more than what is left of the announced length) and sets `*n`; it
 * returns 0 or a negative WH_E* code, which ends the request with that code.
 * A write function takes the next `n` bytes of an object; a negative return
 * ends the request with that code. A failed request may have written part of
 * the bytes already: the caller discards them.
 */
typedef int (*wh_s3_read_fn)(void *buf, size_t cap, size_t *n, void *payload);
typedef int (*wh_s3_write_fn)(const void *p, size_t n, void *payload);

/* Stores `len` bytes at `key` (sent with their SHA-256, which the server checks). */
int wh_s3_put(wh_s3 *s, const char *key, const void *p, size_t len);
/*
 * Stores exactly `len` bytes read from `fn` at `key`, streamed (signed as
 * UNSIGNED-PAYLOAD). A source that ends early fails the request (WH_ERROR)
 * and nothing is stored.
 */
int wh_s3_put_stream(wh_s3 *s, const char *key, uint64_t len, wh_s3_read_fn fn, void *payload);
/*
 * Streams `length` bytes of `key` from `offset` (WH_S3_TO_END: up to the end)
 * to `fn`; fewer when the object ends first. `info` (may be NULL) receives
 * the object's ETag, modification time and total size. 0, WH_ENOTFOUND,
 * WH_ERANGE (offset at or past the end of a non-empty object, or any offset
 * of an empty one but 0 with WH_S3_TO_END) or WH_EINVALID (length 0).
 */
int wh_s3_get(wh_s3 *s, const char *key, uint64_t offset, uint64_t length, wh_s3_write_fn fn,
              void *payload, struct wh_s3_object *info);
/* Size, ETag and time of `key`: 0 or WH_ENOTFOUND. */
int wh_s3_head(wh_s3 *s, const char *key, struct wh_s3_object *out);
/* Deletes `key`; deleting a missing key succeeds too (S3 answers 204 either way). */
int wh_s3_delete(wh_s3 *s, const char *key);
/*
 * Deletes up to WH_S3_LIST_MAX keys in one request (DeleteObjects; missing
 * keys count as deleted). 0 when every key is gone; else WH_EDENIED or
 * WH_ERROR naming the first key the server kept and its S3 code, with
 * `*n_failed` (may be NULL) set to how many it kept. WH_EINVALID for a key
 * with a control byte XML cannot carry.
 */
int wh_s3_delete_many(wh_s3 *s, const char *const *keys, size_t n, size_t *n_failed);
/*
 * Copies `src_key` to `dst_key` on the server (an object of up to 5 GiB in
 * one request on AWS; larger ones part by part, wh_s3_mpu_copy_part). 0 or WH_ENOTFOUND (no `src_key`). An error the server
 * sends after its 200 is recognised.
 */
int wh_s3_copy(wh_s3 *s, const char *dst_key, const char *src_key);

/* One page of ListObjectsV2. Keys are without the configured prefix. */
struct wh_s3_entry {
    char *key;
    uint64_t size;
    char etag[WH_S3_ETAG_MAX];
    int64_t mtime_ms;
};
struct wh_s3_list {
    struct wh_s3_entry *items;
    size_t n;
    bool truncated;   /* more pages follow */
    char *next_token; /* continuation token of the next page (NULL at the end) */
};
#define WH_S3_LIST_MAX 1000 /* keys per page (S3's limit) */
/*
 * Lists the keys starting with `prefix` (may be NULL or ""), from
 * `token` (NULL: the first page; else a next_token), at most `max_keys`
 * (0 or more than WH_S3_LIST_MAX: WH_S3_LIST_MAX). `*out` is the caller's
 * (wh_s3_list_dispose) on success; on failure it is empty.
 */
int wh_s3_list(wh_s3 *s, struct wh_s3_list *out, const char *prefix, const char *token,
               unsigned max_keys);
void wh_s3_list_dispose(struct wh_s3_list *l);

/*
 * Multipart uploads: parts are numbered from 1 to 10000; every part but the
 * last must be at least 5 MiB on AWS (rgw: rgw_multipart_min_part_size).
 */
#define WH_S3_UPLOAD_ID_MAX 1024 /* bytes of an upload id */
#define WH_S3_PARTS_MAX 10000
/* Starts an upload of `key`: 0 with `*upload_id` set (the caller's: free()). */
int wh_s3_mpu_create(wh_s3 *s, const char *key, char **upload_id);
/*
 * Sends part `number` (`len` bytes from `fn`, streamed) and copies its ETag
 * into `etag` (needed by wh_s3_mpu_complete). 0, WH_ENOTFOUND (no such
 * upload) or WH_EINVALID (a number out of range).
 */
int wh_s3_mpu_put_part(wh_s3 *s, const char *key, const char *upload_id, unsigned number,
                       uint64_t len, wh_s3_read_fn fn, void *payload,
                       char etag[WH_S3_ETAG_MAX]);
/*
 * Fills part `number` with `length` bytes of `src_key` from `offset`, copied
 * on the server (UploadPartCopy: how an object over CopyObject's 5 GiB is
 * copied on AWS), and copies the part's ETag into `etag` (rgw 16 sends it
 * without quotes). 0, WH_ENOTFOUND (no such upload or source), WH_ERANGE or
 * WH_EINVALID (the range is not within the source: rgw answers 416, AWS 400;
 * or a number or length of 0 out of range). Signed by wh_s3_sign_v4, not curl.
 */
int wh_s3_mpu_copy_part(wh_s3 *s, const char *key, const char *upload_id, unsigned number,
                        const char *src_key, uint64_t offset, uint64_t length,
                        char etag[WH_S3_ETAG_MAX]);
struct wh_s3_part {
    unsigned number;
    uint64_t size;
    char etag[WH_S3_ETAG_MAX];
};
/*
 * Lists the parts the server holds for an upload, in order, following every
 * page. `*out` (`*n` items) is the caller's: free(). 0 or WH_ENOTFOUND.
 */
int wh_s3_mpu_list_parts(wh_s3 *s, const char *key, const char *upload_id,
                         struct wh_s3_part **out, size_t *n);
/*
 * Completes an upload from `n` parts in ascending number order (their ETags
 * as returned by put_part or list_parts). The object appears at `key`.
 * 0, WH_ENOTFOUND (no such upload) or WH_EINVALID (a part missing, out of
 * order or too small), also when the server reports the error after its 200.
 */
int wh_s3_mpu_complete(wh_s3 *s, const char *key, const char *upload_id,
                       const struct wh_s3_part *parts, size_t n);
/* Aborts an upload and frees its parts. 0 or WH_ENOTFOUND (no such upload). */
int wh_s3_mpu_abort(wh_s3 *s, const char *key, const char *upload_id);

/* One page of ListMultipartUploads (uploads started and neither completed nor aborted). */
struct wh_s3_upload {
    char *key; /* without the configured prefix */
    char *upload_id;
    int64_t initiated_ms;
};
struct wh_s3_uploads {
    struct wh_s3_upload *items;
    size_t n;
    bool truncated;
    char *next_key_marker; /* with next_upload_id_marker: where the next page starts */
    char *next_upload_id_marker;
};
/*
 * Lists uploads of keys starting with `prefix` (may be NULL), from the
 * markers of the previous page (both NULL: the first page), at most
 * `max_uploads` (0 or over 1000: 1000). `*out` is the caller's
 * (wh_s3_uploads_dispose) on success.
 */
int wh_s3_mpu_list(wh_s3 *s, struct wh_s3_uploads *out, const char *prefix,
                   const char *key_marker, const char *upload_id_marker, unsigned max_uploads);
void wh_s3_uploads_dispose(struct wh_s3_uploads *u);

/*
 * Helpers, exposed for the tests and the fuzz target.
 */
/*
 * Appends `s` (`len` bytes) percent-encoded as SigV4 wants it: every byte
 * but A-Z a-z 0-9 - _ . ~ as %XX (upper-case hex), and '/' too unless
 * `keep_slash`. 0 or WH_ETOOBIG (the buffer's cap).
 */
int wh_s3_encode(struct wh_buf *out, const char *s, size_t len, bool keep_slash);
/*
 * Builds a canonical query string from `n` name/value pairs (`kv[2*i]`,
 * `kv[2*i+1]`; a NULL value is written "name="): names sorted (bytewise, then
 * values), both encoded, joined by '&'. 0 or WH_ETOOBIG.
 */
int wh_s3_query(struct wh_buf *out, const char *const *kv, size_t n);

/*
 * Signs a request with SigV4 as S3 wants it (the headers sorted by name; curl
 * 7.88 sorts "name:value" lines, which breaks when one header's name starts
 * another's: x-amz-copy-source and x-amz-copy-source-range). `path` is the
 * encoded path as sent, `query` the canonical query (may be NULL),
 * `headers` the "Name: value" lines to sign (NULL-terminated, at most 16;
 * host and x-amz-date included), `amz_date` "YYYYMMDDTHHMMSSZ". Appends
 * the Authorization header's value to `out`. 0, WH_EINVALID or WH_ETOOBIG.
 */
int wh_s3_sign_v4(struct wh_buf *out, const char *access_key, const char *secret_key,
                  const char *region, const char *method, const char *path, const char *query,
                  const char *const *headers, const char *payload_hash, const char *amz_date);

/*
 * A presigned GET URL of `key` (SigV4 query signing, UNSIGNED-PAYLOAD, only
 * the Host header signed), valid `expires_s` seconds (1 to 604800) from
 * `now_s` (seconds since the epoch): whoever holds it may read the object
 * without the keys. `*out` is the caller's (free()). 0, WH_EINVALID or
 * WH_ETOOBIG.
 */
int wh_s3_presign_get(wh_s3 *s, const char *key, unsigned expires_s, int64_t now_s, char **out);

/* The parts of an answer the XML parsers keep. */
enum wh_s3_doc_kind {
    WH_S3_DOC_ERROR,     /* <Error>: code and message (any answer may be one) */
    WH_S3_DOC_LIST,      /* <ListBucketResult> (ListObjectsV2) */
    WH_S3_DOC_INITIATE,  /* <InitiateMultipartUploadResult> */
    WH_S3_DOC_PARTS,     /* <ListPartsResult> */
    WH_S3_DOC_UPLOADS,   /* <ListMultipartUploadsResult> */
    WH_S3_DOC_COMPLETE,  /* <CompleteMultipartUploadResult> */
    WH_S3_DOC_COPY,      /* <CopyObjectResult> */
    WH_S3_DOC_COPY_PART, /* <CopyPartResult> */
    WH_S3_DOC_DELETE,    /* <DeleteResult> (DeleteObjects, quiet: only the failures) */
};
#define WH_S3_DOC_KINDS 9
struct wh_s3_doc {
    enum wh_s3_doc_kind kind; /* the root element found */
    char code[64];            /* <Error>: Code */
    char message[256];        /* <Error>: Message (cut to fit) */
    char etag[WH_S3_ETAG_MAX]; /* COMPLETE, COPY, COPY_PART */
    char *upload_id;          /* INITIATE */
    struct wh_s3_list list;   /* LIST */
    struct wh_s3_part *parts; /* PARTS */
    size_t n_parts;
    bool parts_truncated;
    unsigned next_part_marker;
    struct wh_s3_uploads uploads; /* UPLOADS */
    size_t n_failed;          /* DELETE: keys not deleted; the first in failed_key, with */
    char *failed_key;         /* its reason in code and message */
};
/*
 * Parses an S3 answer of `len` bytes. `expect` is the root element wanted;
 * an <Error> document is accepted too (then doc->kind is WH_S3_DOC_ERROR).
 * `strip` bytes (the configured prefix) are taken off the front of every key,
 * and a key that does not start with them is refused. Refuses DOCTYPEs
 * (so no entity of any kind), depth over 16, a text over WH_S3_KEY_MAX bytes,
 * more items than a page holds (10000). 0 or WH_EINVALID (with why).
 * `*doc` is the caller's either way (wh_s3_doc_dispose).
 */
int wh_s3_doc_parse(struct wh_s3_doc *doc, enum wh_s3_doc_kind expect, const char *xml,
                    size_t len, const char *strip);
void wh_s3_doc_dispose(struct wh_s3_doc *doc);
/* Parses "2026-12-03T05:57:10.123Z" (fraction optional) into ms since the epoch; 0 or WH_EINVALID. */
int wh_s3_time_parse(int64_t *out, const char *s);

#endif
