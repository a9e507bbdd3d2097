/*
 * fetch.c: HTTP requests over libcurl (see fetch.h). libcurl is loaded the
 * first time a request is made (curl_lib.h), so that processes which never
 * make one (most servers) do not map it.
 */
#include "fetch/fetch.h"

#include "fetch/curl_lib.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

bool wh_fetch_url_ok(const char *url)
{
    const char *rest = NULL;
    if (!url)
        return false;
    if (strncasecmp(url, "http://", 7) == 0)
        rest = url + 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        rest = url + 8;
    if (!rest || !*rest || *rest == '/' || strlen(url) >= 1024)
        return false;
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return false;
    return true;
}

struct sink {
    struct wh_fetch_resp *out;
    const struct wh_fetch_req *req;
    struct wh_buf buf;
    bool toobig, write_failed;
};

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    struct sink *s = ctx;
    size_t len = size * n;
    uint64_t have = s->req->fd >= 0 ? s->out->written : s->buf.len;
    if (have + len > s->req->max_body) {
        s->toobig = true;
        return 0; /* ends the transfer */
    }
    if (s->req->fd >= 0) {
        size_t done = 0;
        while (done < len) {
            ssize_t w = write(s->req->fd, p + done, len - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                s->write_failed = true;
                return 0;
            }
            done += (size_t)w;
        }
        s->out->written += len;
        return len;
    }
    if (wh_buf_put(&s->buf, p, len) < 0) {
        s->toobig = true;
        return 0;
    }
    return len;
}

/* Copies the value of header line `line` into `out` when its name is `name`. */
static void header_value(const char *line, size_t n, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return;
    const char *v = line + nl + 1;
    const char *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    snprintf(out, cap, "%.*s", (int)(end - v), v);
}

static int on_progress(void *ctx, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    const int *cancel = ctx;
    (void)dt, (void)dn, (void)ut, (void)un;
    return cancel && __atomic_load_n(cancel, __ATOMIC_RELAXED) ? 1 : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
    struct sink *s = ctx;
    size_t len = size * n;
    /* a redirect's or a 100's headers are followed by the final answer's: start again */
    if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {
        s->out->content_type[0] = s->out->refresh_after[0] = s->out->www_authenticate[0] = '\0';
        return len;
    }
    header_value(p, len, "Content-Type", s->out->content_type, sizeof(s->out->content_type));
    header_value(p, len, "Refresh-After", s->out->refresh_after, sizeof(s->out->refresh_after));
    header_value(p, len, "WWW-Authenticate", s->out->www_authenticate,
                 sizeof(s->out->www_authenticate));
    return len;
}

int wh_fetch(struct wh_fetch_resp *out, const struct wh_fetch_req *req)
{
    struct curl_slist *hdrs = NULL;
    CURL *c = NULL;
    struct sink s = {.out = out, .req = req};
    char errbuf[CURL_ERROR_SIZE] = "";
    int error = 0;

    memset(out, 0, sizeof(*out));
    if (!wh_fetch_url_ok(req->url))
        return wh_error_set(WH_EINVALID, "not an http(s) URL: %.200s", req->url ? req->url : "");
    const struct wh_curl_lib *lib = wh_curl_lib();
    if (!lib)
        return WH_ERROR; /* the reason is set */
    if (!(c = lib->easy_init()))
        return wh_error_set(WH_ERROR, "libcurl: cannot create a handle");
    wh_buf_init(&s.buf, req->max_body > SIZE_MAX - 1 ? SIZE_MAX - 1 : (size_t)req->max_body + 1);
    for (size_t i = 0; i < WH_FETCH_HEADERS_MAX && req->headers[i]; i++)
        hdrs = lib->slist_append(hdrs, req->headers[i]);
    hdrs = lib->slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
    lib->easy_setopt(c, CURLOPT_URL, req->url);
    lib->easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    lib->easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    lib->easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    lib->easy_setopt(c, CURLOPT_WRITEDATA, &s);
    lib->easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    lib->easy_setopt(c, CURLOPT_HEADERDATA, &s);
    lib->easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    lib->easy_setopt(c, CURLOPT_TIMEOUT, (long)(req->timeout_s ? req->timeout_s : 60));
    lib->easy_setopt(c, CURLOPT_CONNECTTIMEOUT,
                    (long)(req->connect_timeout_s ? req->connect_timeout_s : 10));
    lib->easy_setopt(c, CURLOPT_USERAGENT, "wharf");
    lib->easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max_body);
#if LIBCURL_VERSION_NUM >= 0x075500
    lib->easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    lib->easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
    if (req->cancel) {
        lib->easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        lib->easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        lib->easy_setopt(c, CURLOPT_XFERINFODATA, (void *)(uintptr_t)req->cancel);
    }
    if (req->follow) {
        lib->easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        lib->easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
    }
    if (req->insecure) {
        lib->easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        lib->easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (req->method && strcmp(req->method, "GET") != 0) {
        if (strcmp(req->method, "HEAD") == 0)
            lib->easy_setopt(c, CURLOPT_NOBODY, 1L);
        else
            lib->easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    }
    if (req->body) {
        lib->easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
        lib->easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    }
    CURLcode rc = lib->easy_perform(c);
    lib->easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    if (s.toobig || rc == CURLE_FILESIZE_EXCEEDED) {
        error = wh_error_set(WH_ETOOBIG, "%.200s: the answer is larger than %llu bytes", req->url,
                             (unsigned long long)req->max_body);
        goto out;
    }
    if (s.write_failed) {
        error = wh_error_set(WH_ERROR, "%.200s: cannot write the answer: %s", req->url,
                             strerror(errno));
        goto out;
    }
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
        error = wh_error_set(WH_ERROR, "%.200s: cancelled: the server is stopping", req->url);
        goto out;
    }
    if (rc != CURLE_OK) {
        error = wh_error_set(WH_ERROR, "%.200s: %s", req->url,
                             errbuf[0] ? errbuf : lib->easy_strerror(rc));
        goto out;
    }
    if (req->fd < 0) {
        wh_buf_put(&s.buf, "", 1);
        out->len = s.buf.len - 1;
        out->body = wh_buf_detach(&s.buf, NULL);
    }
out:
    wh_buf_dispose(&s.buf);
    lib->slist_free_all(hdrs);
    lib->easy_cleanup(c);
    return error;
}

void wh_fetch_resp_dispose(struct wh_fetch_resp *r)
{
    if (!r)
        return;
    free(r->body);
    r->body = NULL;
    r->len = 0;
}
