/*
 * pull.c: an image pulled from a registry for a scan (see adapter.h). The
 * Authorization value of the scan request is sent as is; when the registry
 * answers 401 with a Bearer challenge and the value was Basic credentials,
 * they are exchanged for a token at the challenge's realm (the distribution
 * token protocol), as every registry client does. Every answer is capped:
 * the manifest at WH_ADAPTER_MANIFEST_MAX, the blobs together at
 * `max_bytes` (their declared sizes are checked first, then each download
 * at its declared size), the layers at WH_ADAPTER_LAYERS_MAX, and the whole
 * pull at `timeout_s`. The blobs are not trusted: the scanner hashes each.
 */
#include "adapter/adapter.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "fetch/fetch.h"

#define TOKEN_MAX (64u << 10) /* token service answer */

struct puller {
    const struct wh_adapter_pull *p;
    char *authz;     /* current Authorization header line (malloc) or NULL */
    bool exchanged;  /* Basic credentials were swapped for a token already */
    int64_t deadline_ms;
};

static unsigned remaining_s(const struct puller *pl)
{
    int64_t left = pl->deadline_ms - wh_now_ms();
    return left <= 1000 ? 1 : (unsigned)(left / 1000);
}

static void url_escape(struct wh_buf *b, const char *s)
{
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
        if ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
            *q == '-' || *q == '_' || *q == '.' || *q == '~')
            wh_buf_put(b, q, 1);
        else
            wh_buf_printf(b, "%%%02X", *q);
    }
}

/* Value of `key` in a challenge's `key="value"` list (into `out`), or false. */
static bool challenge_param(const char *ch, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    for (const char *p = ch; (p = strcasestr(p, key)) != NULL; p += kl) {
        if ((p != ch && p[-1] != ' ' && p[-1] != ',') || p[kl] != '=')
            continue;
        const char *v = p + kl + 1;
        bool quoted = *v == '"';
        v += quoted;
        size_t n = quoted ? strcspn(v, "\"") : strcspn(v, ", ");
        if (n >= cap)
            return false;
        memcpy(out, v, n);
        out[n] = '\0';
        return true;
    }
    return false;
}

/* Swaps Basic credentials for a token at the realm of a Bearer challenge. */
static int exchange(struct puller *pl, const char *challenge)
{
    char realm[1024], service[256] = "";
    struct wh_buf url;
    struct wh_fetch_resp resp;
    json_t *doc = NULL;
    int error;

    if (strncasecmp(challenge, "Bearer ", 7) != 0 ||
        !challenge_param(challenge + 7, "realm", realm, sizeof(realm)))
        return wh_error_set(WH_EINVALID, "the registry refused the credentials (401)");
    if (!wh_fetch_url_ok(realm))
        return wh_error_set(WH_EINVALID, "the registry's token realm is not an http(s) URL");
    challenge_param(challenge + 7, "service", service, sizeof(service));
    wh_buf_init(&url, 4096);
    wh_buf_puts(&url, realm);
    wh_buf_puts(&url, strchr(realm, '?') ? "&service=" : "?service=");
    url_escape(&url, service);
    wh_buf_puts(&url, "&scope=");
    char *scope = wh_sprintf("repository:%s:pull", pl->p->repository);
    url_escape(&url, scope);
    free(scope);
    wh_buf_put(&url, "", 1);
    struct wh_fetch_req req = {.url = url.data,
                               .timeout_s = remaining_s(pl),
                               .max_body = TOKEN_MAX,
                               .fd = -1,
                               .insecure = pl->p->insecure,
                               .cancel = pl->p->cancel};
    req.headers[0] = pl->authz;
    error = wh_fetch(&resp, &req);
    wh_buf_dispose(&url);
    if (error < 0)
        goto out;
    if (resp.status != 200) {
        error = wh_error_set(WH_EINVALID, "the registry's token service answered %ld",
                             resp.status);
        goto out;
    }
    doc = json_loadb(resp.body, resp.len, 0, NULL);
    const char *tok = json_string_value(json_object_get(doc, "token"));
    if (!tok)
        tok = json_string_value(json_object_get(doc, "access_token"));
    if (!tok || !*tok || strlen(tok) > 16384 || strpbrk(tok, "\r\n")) {
        error = wh_error_set(WH_EINVALID, "the registry's token service answered no token");
        goto out;
    }
    free(pl->authz);
    pl->authz = wh_sprintf("Authorization: Bearer %s", tok);
    pl->exchanged = true;
out:
    json_decref(doc);
    wh_fetch_resp_dispose(&resp);
    return error;
}

/*
 * GET <registry>/v2/<repository>/<kind>/<digest>, once more after a token
 * exchange. To memory (fd < 0, at most `max`) or to `fd`.
 */
static int get(struct puller *pl, const char *kind, const char *digest, const char *accept,
               int fd, uint64_t max, struct wh_fetch_resp *resp)
{
    const char *base = pl->p->registry_url;
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    char *url = wh_sprintf("%.*s/v2/%s/%s/%s", (int)bl, base, pl->p->repository, kind, digest);
    int error;
    for (int attempt = 0;; attempt++) {
        struct wh_fetch_req req = {.url = url,
                                   .timeout_s = remaining_s(pl),
                                   .max_body = max,
                                   .fd = fd,
                                   .insecure = pl->p->insecure,
                                   .follow = true,
                                   .cancel = pl->p->cancel};
        size_t nh = 0; /* the list ends at its first NULL */
        if (accept)
            req.headers[nh++] = accept;
        req.headers[nh] = pl->authz;
        if (fd >= 0 && (lseek(fd, 0, SEEK_SET) < 0 || ftruncate(fd, 0) < 0)) {
            error = wh_error_set(WH_ERROR, "cannot reset a scratch file");
            break;
        }
        error = wh_fetch(resp, &req);
        if (error < 0)
            break;
        if (resp->status == 401 && attempt == 0 && !pl->exchanged && pl->authz &&
            strncasecmp(pl->authz, "Authorization: Basic ", 21) == 0) {
            char challenge[sizeof(resp->www_authenticate)];
            snprintf(challenge, sizeof(challenge), "%s", resp->www_authenticate);
            wh_fetch_resp_dispose(resp);
            if ((error = exchange(pl, challenge)) < 0)
                break;
            continue;
        }
        if (resp->status != 200)
            error = wh_error_set(WH_EINVALID, "GET %s: the registry answered %ld%s", url,
                                 resp->status,
                                 resp->status == 401 || resp->status == 403
                                     ? " (the authorization of the scan request was refused)"
                                     : "");
        break;
    }
    free(url);
    return error;
}

static int write_file(const char *path, const char *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return wh_error_set(WH_ERROR, "cannot create a scratch file");
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, p + done, n - done);
        if (w <= 0) {
            close(fd);
            return wh_error_set(WH_ERROR, "cannot write a scratch file");
        }
        done += (size_t)w;
    }
    return close(fd) == 0 ? 0 : wh_error_set(WH_ERROR, "cannot write a scratch file");
}

/* The blob file of a digest in the scratch directory (malloc), or NULL when not a digest. */
static char *blob_path(const char *dir, const char *digest)
{
    struct wh_digest d;
    if (!digest || wh_digest_parse(&d, digest, strlen(digest)) < 0)
        return NULL;
    return wh_sprintf("%s/%s", dir, wh_digest_hex(&d));
}

/* A descriptor's digest and declared size, checked. */
static int descriptor(const json_t *desc, const char **digest, uint64_t *size)
{
    json_t *sz = json_object_get(desc, "size");
    *digest = json_string_value(json_object_get(desc, "digest"));
    struct wh_digest d;
    if (!*digest || wh_digest_parse(&d, *digest, strlen(*digest)) < 0)
        return wh_error_set(WH_EINVALID, "the manifest has a descriptor without a valid digest");
    if (!json_is_integer(sz) || json_integer_value(sz) < 0)
        return wh_error_set(WH_EINVALID, "the manifest has a descriptor without a valid size");
    *size = (uint64_t)json_integer_value(sz);
    return 0;
}

static int pull_blob(struct puller *pl, const char *digest, uint64_t size)
{
    struct wh_fetch_resp resp;
    char *path = blob_path(pl->p->dir, digest);
    int error;
    if (!path)
        return wh_error_set(WH_EINVALID, "invalid digest %s", digest);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    free(path);
    if (fd < 0)
        return wh_error_set(WH_ERROR, "cannot create a scratch file");
    error = get(pl, "blobs", digest, NULL, fd, size, &resp);
    if (error == 0 && resp.written != size)
        error = wh_error_set(WH_EINVALID, "blob %s: %llu bytes received, %llu declared", digest,
                             (unsigned long long)resp.written, (unsigned long long)size);
    wh_fetch_resp_dispose(&resp);
    close(fd);
    return error;
}

int wh_adapter_pull(const struct wh_adapter_pull *p)
{
    struct puller pl = {.p = p, .deadline_ms = wh_now_ms() + (int64_t)p->timeout_s * 1000};
    struct wh_fetch_resp resp = {0};
    json_t *m = NULL;
    char *path = NULL;
    int error;

    if (p->authorization && *p->authorization)
        pl.authz = wh_sprintf("Authorization: %s", p->authorization);
    error = get(&pl, "manifests", p->digest,
                "Accept: " WH_ADAPTER_MIME_OCI_MANIFEST ", " WH_ADAPTER_MIME_DOCKER_MANIFEST, -1,
                WH_ADAPTER_MANIFEST_MAX, &resp);
    if (error < 0)
        goto out;
    struct wh_digest want, got;
    if (wh_digest_parse(&want, p->digest, strlen(p->digest)) < 0) {
        error = wh_error_set(WH_EINVALID, "invalid digest %s", p->digest);
        goto out;
    }
    wh_digest_of(&got, want.alg, resp.body, resp.len);
    if (strcmp(wh_digest_hex(&got), wh_digest_hex(&want)) != 0) {
        error = wh_error_set(WH_EINVALID, "the manifest the registry sent is not %s", p->digest);
        goto out;
    }
    m = json_loadb(resp.body, resp.len, 0, NULL);
    json_t *layers = json_object_get(m, "layers");
    if (!json_is_object(m) || !json_is_object(json_object_get(m, "config")) ||
        !json_is_array(layers)) {
        error = wh_error_set(WH_EINVALID, "%s is not an image manifest", p->digest);
        goto out;
    }
    if (json_array_size(layers) > WH_ADAPTER_LAYERS_MAX) {
        error = wh_error_set(WH_ETOOBIG, "the image has %zu layers, more than %u",
                             json_array_size(layers), WH_ADAPTER_LAYERS_MAX);
        goto out;
    }
    /* the declared sizes first: a giant image is refused before a byte of it is read */
    const char *cd;
    uint64_t csize, total = 0;
    if ((error = descriptor(json_object_get(m, "config"), &cd, &csize)) < 0)
        goto out;
    total = csize;
    size_t i;
    json_t *l;
    json_array_foreach(layers, i, l) {
        const char *ld;
        uint64_t lsize;
        if ((error = descriptor(l, &ld, &lsize)) < 0)
            goto out;
        if (__builtin_add_overflow(total, lsize, &total))
            total = UINT64_MAX;
    }
    if (total > p->max_bytes) {
        error = wh_error_set(WH_ETOOBIG,
                             "the image's config and layers declare %llu bytes, more than the "
                             "%llu this scanner pulls (scan.adapter.max_image_bytes)",
                             (unsigned long long)total, (unsigned long long)p->max_bytes);
        goto out;
    }
    path = blob_path(p->dir, p->digest);
    if (!path) {
        error = wh_error_set(WH_EINVALID, "invalid digest %s", p->digest);
        goto out;
    }
    if ((error = write_file(path, resp.body, resp.len)) < 0)
        goto out;
    if ((error = pull_blob(&pl, cd, csize)) < 0)
        goto out;
    json_array_foreach(layers, i, l) {
        const char *ld;
        uint64_t lsize;
        descriptor(l, &ld, &lsize);
        if ((error = pull_blob(&pl, ld, lsize)) < 0)
            goto out;
    }
out:
    free(path);
    json_decref(m);
    wh_fetch_resp_dispose(&resp);
    if (pl.authz)
        memset(pl.authz, 0, strlen(pl.authz));
    free(pl.authz);
    return error;
}
