/*
 * gobin.c: Go binaries. Since Go 1.18 the linker embeds build information in
 * the .go.buildinfo section: a 32-byte header starting with "\xff Go buildinf:"
 * (byte 14 pointer size, byte 15 flags; flag 2 = strings stored inline), then
 * two varint-length strings, the toolchain version and the module info text
 * (`path`, `mod`, `dep`, `=>` replace lines, tab separated, framed by 16
 * sentinel bytes each side). The executable is streamed once, never kept:
 * only a bounded window after the magic is retained. Older pointer-based
 * headers (Go < 1.18) are not decoded.
 */
#include "scan/scan_int.h"

#include <string.h>

#define GO_MAGIC "\xff Go buildinf:"
#define GO_MAGIC_LEN 14
#define GO_INFO_MAX (512 * 1024)
#define BLOCK 65536

static bool uvarint(const unsigned char **p, const unsigned char *end, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        unsigned char b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

static void add_go(struct wh_layer_inv *li, struct wh_layer_rec **r, const char *path,
                   const char *mod, size_t ml, const char *ver, size_t vl)
{
    char name[512], version[128];
    if (ml == 0 || vl == 0 || ml >= sizeof(name) || vl >= sizeof(version))
        return;
    memcpy(name, mod, ml);
    name[ml] = '\0';
    memcpy(version, ver, vl);
    version[vl] = '\0';
    if (strcmp(version, "(devel)") == 0)
        return;
    if (!*r)
        *r = wh_layer_rec_add(li, path, WH_CAT_GOBIN);
    struct wh_pkg p = {.kind = WH_PKG_GO, .name = name, .version = version};
    wh_layer_rec_pkg(li, *r, &p);
}

/* Splits a line at tabs into up to 4 fields. */
static int split_tabs(const char *s, size_t n, const char **f, size_t *fl)
{
    int k = 0;
    const char *end = s + n;
    while (k < 4) {
        const char *t = memchr(s, '\t', (size_t)(end - s));
        f[k] = s;
        fl[k] = (size_t)((t ? t : end) - s);
        k++;
        if (!t)
            break;
        s = t + 1;
    }
    return k;
}

static int parse_info(struct wh_layer_inv *li, const char *path, const unsigned char *b, size_t n)
{
    if (n < 32 || memcmp(b, GO_MAGIC, GO_MAGIC_LEN) != 0)
        return 0;
    unsigned flags = b[15];
    if (!(flags & 2))
        return 0; /* pre-1.18 pointer layout */
    const unsigned char *p = b + 32, *end = b + n;
    uint64_t l1, l2;
    if (!uvarint(&p, end, &l1) || l1 > (uint64_t)(end - p))
        return 0;
    const char *gover = (const char *)p;
    p += l1;
    if (!uvarint(&p, end, &l2) || l2 > (uint64_t)(end - p))
        return 0;
    const char *mi = (const char *)p;
    size_t ml = (size_t)l2;
    if (ml >= 33 && mi[ml - 17] == '\n') {
        mi += 16;
        ml -= 32;
    }
    struct wh_layer_rec *r = NULL;
    if (l1 > 2 && memcmp(gover, "go", 2) == 0) {
        /* The toolchain is reported as the pseudo-module "stdlib", "v1.21.3". */
        char v[64];
        size_t vl = (size_t)l1 - 2;
        if (vl + 2 < sizeof(v)) {
            v[0] = 'v';
            memcpy(v + 1, gover + 2, vl);
            v[vl + 1] = '\0';
            vl = strcspn(v, " "); /* "go1.22.1 X:boringcrypto" */
            add_go(li, &r, path, "stdlib", 6, v, vl);
        }
    }
    const char *q = mi, *qend = mi + ml, *line;
    size_t ll;
    while (wh_next_line(&q, qend, &line, &ll)) {
        const char *f[4];
        size_t fl[4];
        int k = split_tabs(line, ll, f, fl);
        if (k < 3)
            continue;
        if ((fl[0] == 3 && (memcmp(f[0], "mod", 3) == 0 || memcmp(f[0], "dep", 3) == 0)) ||
            (fl[0] == 2 && memcmp(f[0], "=>", 2) == 0)) {
            if (fl[0] == 2 && r && r->npkgs > 0)
                r->npkgs--; /* a replace line supersedes the dep above it */
            add_go(li, &r, path, f[1], fl[1], f[2], fl[2]);
        }
    }
    return 0;
}

int wh_catalog_gobin(struct wh_layer_inv *li, const char *path, struct wh_reader *rd)
{
    unsigned char *win = wh_malloc(BLOCK + GO_MAGIC_LEN);
    struct wh_buf info;
    size_t carry = 0;
    bool first = true, found = false;
    int error = 0;

    wh_buf_init(&info, GO_INFO_MAX);
    for (;;) {
        ssize_t n = rd->read(rd->ctx, win + carry, BLOCK);
        if (n < 0) {
            error = wh_error_set(WH_EINVALID, "reading %s failed", path);
            goto out;
        }
        size_t have = carry + (size_t)n;
        if (first) {
            first = false;
            if (have < 4 || memcmp(win, "\x7f" "ELF", 4) != 0)
                goto out; /* not an ELF executable: leave the rest unread */
        }
        if (found) {
            size_t room = GO_INFO_MAX - info.len;
            wh_buf_put(&info, win, (size_t)n < room ? (size_t)n : room);
        } else {
            const unsigned char *m = memmem(win, have, GO_MAGIC, GO_MAGIC_LEN);
            if (m) {
                found = true;
                size_t off = (size_t)(m - win), take = have - off;
                wh_buf_put(&info, m, take < GO_INFO_MAX ? take : GO_INFO_MAX);
            } else if (have >= GO_MAGIC_LEN - 1) {
                memmove(win, win + have - (GO_MAGIC_LEN - 1), GO_MAGIC_LEN - 1);
                carry = GO_MAGIC_LEN - 1;
            } else {
                carry = have;
            }
        }
        if (n == 0 || (found && info.len >= GO_INFO_MAX))
            break;
        if (found)
            carry = 0;
    }
    if (found)
        error = parse_info(li, path, (const unsigned char *)info.data, info.len);
out:
    free(win);
    wh_buf_dispose(&info);
    return error;
}
