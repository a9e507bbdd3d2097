/*
 * Fuzz target for registry/'s untrusted-input parsers: repository names,
 * tags, digests, Range and Content-Range headers, and manifests. The first
 * byte picks the parser; properties checked beyond "no crash":
 *   - a valid name is also valid after a round trip through its parts,
 *     and never contains "..", "//" or upper case;
 *   - a satisfiable range lies inside the resource;
 *   - an accepted manifest's references are all valid digests.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_name(const char *s, size_t n)
{
    if (!wh_ref_name_valid(s, n))
        return;
    if (memmem(s, n, "..", 2) || memmem(s, n, "//", 2) || s[0] == '/' || s[n - 1] == '/')
        abort();
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            abort();
    if (!wh_ref_project_valid(s, wh_ref_project_len(s)))
        abort();
}

static void check_range(const char *s, size_t n)
{
    uint64_t size = n * 977u, first, last;
    if (wh_range_parse(s, size, &first, &last) == 0 && (first > last || last >= size))
        abort();
    if (wh_content_range_parse(s, &first, &last) == 0 && first > last)
        abort();
}

static void check_manifest(const char *s, size_t n)
{
    struct wh_manifest *m = NULL;
    static const char *const cts[] = {NULL, WH_MT_OCI_MANIFEST, WH_MT_OCI_INDEX,
                                      WH_MT_DOCKER_MANIFEST, WH_MT_DOCKER_LIST};
    if (wh_manifest_parse(&m, s, n, cts[n % 5]) != 0)
        return;
    struct wh_digest d;
    for (size_t i = 0; i < m->nblobs; i++)
        if (wh_digest_parse(&d, m->blobs[i], strlen(m->blobs[i])) != 0)
            abort();
    for (size_t i = 0; i < m->nchildren; i++)
        if (wh_digest_parse(&d, m->children[i], strlen(m->children[i])) != 0)
            abort();
    if (m->subject && wh_digest_parse(&d, m->subject, strlen(m->subject)) != 0)
        abort();
    wh_manifest_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 20)
        return 0;
    char *s = malloc(size);
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    size_t n = strlen(s); /* the text parsers take C strings */
    struct wh_digest d;
    switch (data[0] % 5) {
    case 0:
        check_name(s, n);
        break;
    case 1:
        wh_ref_tag_valid(s, n);
        wh_digest_parse(&d, s, n);
        break;
    case 2:
        check_range(s, n);
        break;
    default:
        check_manifest((const char *)data + 1, size - 1);
        break;
    }
    free(s);
    return 0;
}
