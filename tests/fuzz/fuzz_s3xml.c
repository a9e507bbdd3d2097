/*
 * Fuzz target for the S3 client's answer parser (storage/s3.c,
 * wh_s3_doc_parse): the first byte picks the document kind expected (its
 * value modulo WH_S3_DOC_KINDS) and whether keys carry the prefix "p/" (its top bit), the
 * rest is the answer. A parse either fails with WH_EINVALID or yields the
 * kind asked for or an <Error> with a code, within the caps (items, part
 * numbers, ETag and key lengths, every key inside the prefix). A parsed
 * listing printed back as XML parses to the same keys, sizes and ETags.
 * Any violation aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Appends `s` as XML text: markup characters and control bytes as references. */
static void put_text(struct wh_buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '&')
            wh_buf_puts(b, "&amp;");
        else if (c == '<')
            wh_buf_puts(b, "&lt;");
        else if (c == '>')
            wh_buf_puts(b, "&gt;");
        else if (c < 0x20)
            wh_buf_printf(b, "&#%u;", c);
        else
            wh_buf_put(b, s, 1);
    }
}

static void check_list(const struct wh_s3_list *l, const char *strip)
{
    struct wh_buf b;
    struct wh_s3_doc again;
    if (l->n > 10000 || (l->n && !l->items))
        abort();
    wh_buf_init(&b, SIZE_MAX / 2);
    wh_buf_puts(&b, "<ListBucketResult>");
    for (size_t i = 0; i < l->n; i++) {
        if (!l->items[i].key || strlen(l->items[i].etag) >= WH_S3_ETAG_MAX ||
            strlen(l->items[i].key) > WH_S3_KEY_MAX)
            abort();
        wh_buf_puts(&b, "<Contents><Key>");
        put_text(&b, strip ? strip : "");
        put_text(&b, l->items[i].key);
        wh_buf_printf(&b, "</Key><Size>%llu</Size><ETag>", (unsigned long long)l->items[i].size);
        put_text(&b, l->items[i].etag);
        wh_buf_puts(&b, "</ETag></Contents>");
    }
    wh_buf_puts(&b, "</ListBucketResult>");
    if (wh_s3_doc_parse(&again, WH_S3_DOC_LIST, b.data, b.len, strip) < 0 ||
        again.kind != WH_S3_DOC_LIST || again.list.n != l->n)
        abort();
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(again.list.items[i].key, l->items[i].key) != 0 ||
            again.list.items[i].size != l->items[i].size ||
            strcmp(again.list.items[i].etag, l->items[i].etag) != 0)
            abort();
    wh_s3_doc_dispose(&again);
    wh_buf_dispose(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wh_s3_doc d;
    if (size < 1)
        return 0;
    enum wh_s3_doc_kind kind = (enum wh_s3_doc_kind)(data[0] % WH_S3_DOC_KINDS);
    const char *strip = data[0] & 0x80 ? "p/" : NULL;
    int error = wh_s3_doc_parse(&d, kind, (const char *)data + 1, size - 1, strip);
    if (error < 0) {
        if (error != WH_EINVALID)
            abort();
        wh_s3_doc_dispose(&d);
        return 0;
    }
    if (d.kind != kind && d.kind != WH_S3_DOC_ERROR)
        abort();
    switch (d.kind) {
    case WH_S3_DOC_ERROR:
        if (!d.code[0] || strlen(d.code) >= sizeof(d.code))
            abort();
        break;
    case WH_S3_DOC_LIST:
        check_list(&d.list, strip);
        break;
    case WH_S3_DOC_INITIATE:
        if (!d.upload_id || !*d.upload_id || strlen(d.upload_id) > WH_S3_UPLOAD_ID_MAX)
            abort();
        break;
    case WH_S3_DOC_PARTS:
        if (d.n_parts > 10000 || d.next_part_marker > WH_S3_PARTS_MAX)
            abort();
        for (size_t i = 0; i < d.n_parts; i++)
            if (d.parts[i].number < 1 || d.parts[i].number > WH_S3_PARTS_MAX ||
                !d.parts[i].etag[0] || strlen(d.parts[i].etag) >= WH_S3_ETAG_MAX)
                abort();
        break;
    case WH_S3_DOC_UPLOADS:
        if (d.uploads.n > 10000)
            abort();
        for (size_t i = 0; i < d.uploads.n; i++)
            if (!d.uploads.items[i].key || !d.uploads.items[i].upload_id)
                abort();
        break;
    case WH_S3_DOC_DELETE:
        if ((d.n_failed == 0) != (d.failed_key == NULL) || (d.n_failed && !d.code[0]))
            abort();
        break;
    case WH_S3_DOC_COMPLETE:
    case WH_S3_DOC_COPY:
    case WH_S3_DOC_COPY_PART:
        if (strlen(d.etag) >= WH_S3_ETAG_MAX)
            abort();
        break;
    }
    wh_s3_doc_dispose(&d);
    return 0;
}
