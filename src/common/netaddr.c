/*
 * netaddr.c: lists of addresses and CIDR blocks ("127.0.0.1, 10.0.0.0/8,
 * ::1, fd00::/8"), as the trusted-proxy setting holds them. Parsing is
 * strict: an entry that is not a numeric IPv4/IPv6 address, optionally
 * followed by a prefix length within the family's width, makes the whole
 * list invalid. Host names are not resolved.
 */
#include "common/common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

struct cidr {
    int family;            /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned bits;         /* prefix length */
};

/* Parses one entry of `len` bytes. 0 or WH_EINVALID. */
static int parse_entry(struct cidr *out, const char *s, size_t len)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (len == 0 || len >= sizeof(buf))
        return WH_EINVALID;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    uint64_t bits = 0;
    bool has_bits = false;
    if (slash) {
        *slash = '\0';
        if (wh_parse_u64(&bits, slash + 1, strlen(slash + 1)) < 0)
            return WH_EINVALID;
        has_bits = true;
    }
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        if (bits > 32)
            return WH_EINVALID;
        out->bits = has_bits ? (unsigned)bits : 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        if (bits > 128)
            return WH_EINVALID;
        out->bits = has_bits ? (unsigned)bits : 128;
    } else {
        return WH_EINVALID;
    }
    return 0;
}

/* Whether the first `bits` bits of a and b agree. */
static bool prefix_equal(const unsigned char *a, const unsigned char *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xffu << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

/* Calls `fn` for each entry; stops and returns its non-zero result. */
static int each_entry(const char *list, int (*fn)(const char *s, size_t n, void *payload),
                      void *payload)
{
    for (const char *p = list ? list : ""; *p;) {
        while (*p == ',' || *p == ' ' || *p == '\t')
            p++;
        size_t len = strcspn(p, ", \t");
        if (len) {
            int rc = fn(p, len, payload);
            if (rc)
                return rc;
        }
        p += len;
    }
    return 0;
}

struct check_ctx {
    const char **bad;
    size_t *badlen;
};

static int check_one(const char *s, size_t n, void *payload)
{
    struct check_ctx *c = payload;
    struct cidr e;
    if (parse_entry(&e, s, n) == 0)
        return 0;
    if (c->bad)
        *c->bad = s;
    if (c->badlen)
        *c->badlen = n;
    return WH_EINVALID;
}

int wh_addr_list_check(const char *list, const char **bad, size_t *badlen)
{
    struct check_ctx c = {bad, badlen};
    return each_entry(list, check_one, &c);
}

struct match_ctx {
    struct cidr ip;
};

static int match_one(const char *s, size_t n, void *payload)
{
    struct match_ctx *m = payload;
    struct cidr e;
    if (parse_entry(&e, s, n) < 0)
        return 0;
    if (e.family == m->ip.family)
        return prefix_equal(e.addr, m->ip.addr, e.bits) ? 1 : 0;
    /* an IPv4 entry also matches the IPv4-mapped IPv6 form of its addresses */
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (e.family == AF_INET && m->ip.family == AF_INET6 &&
        memcmp(m->ip.addr, mapped, sizeof(mapped)) == 0)
        return prefix_equal(e.addr, m->ip.addr + 12, e.bits) ? 1 : 0;
    return 0;
}

bool wh_addr_list_match(const char *list, const char *ip)
{
    struct match_ctx m;
    if (!ip || parse_entry(&m.ip, ip, strlen(ip)) < 0 || strchr(ip, '/'))
        return false;
    return each_entry(list, match_one, &m) == 1;
}
