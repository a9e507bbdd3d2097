/*
 * auth/scope: the text forms a client sends. Token scopes
 * ("repository:library/nginx:pull,push", Docker token spec §Requesting a
 * Token and the resource scope grammar) and `Authorization: Basic` values
 * (RFC 7617). Both are untrusted bytes with fixed caps; splitting the scope
 * query parameter into its scopes is the token handler's job.
 */
#include <openssl/crypto.h>
#include <string.h>
#include <strings.h>

#include "auth/auth_int.h"

static const struct {
    unsigned bit;
    const char *name;
} action_names[] = {
    {WH_ACT_PULL, "pull"},
    {WH_ACT_PUSH, "push"},
    {WH_ACT_DELETE, "delete"},
    {WH_ACT_SCANNER_PULL, "scanner-pull"},
    {WH_ACT_ALL, "*"},
};
#define NACTIONS (sizeof(action_names) / sizeof(action_names[0]))

unsigned wh_auth_action_parse(const char *s, size_t len)
{
    for (size_t i = 0; i < NACTIONS; i++)
        if (strlen(action_names[i].name) == len && memcmp(action_names[i].name, s, len) == 0)
            return action_names[i].bit;
    return 0;
}

int wh_auth_actions_str(char *out, size_t cap, unsigned actions)
{
    size_t o = 0;

    if (cap == 0)
        return wh_error_set(WH_ETOOBIG, "no room for actions");
    out[0] = '\0';
    for (size_t i = 0; i < NACTIONS; i++) {
        if (!(actions & action_names[i].bit))
            continue;
        size_t n = strlen(action_names[i].name);
        if (o + (o > 0) + n + 1 > cap) {
            out[0] = '\0';
            return wh_error_set(WH_ETOOBIG, "actions do not fit in %zu bytes", cap);
        }
        if (o > 0)
            out[o++] = ',';
        memcpy(out + o, action_names[i].name, n + 1);
        o += n;
    }
    return 0;
}

int wh_auth_scope_parse(struct wh_access *out, const char *scope)
{
    size_t len = strnlen(scope, WH_AUTH_SCOPE_MAX + 1);
    const char *first, *last;

    memset(out, 0, sizeof(*out));
    if (len > WH_AUTH_SCOPE_MAX)
        return wh_error_set(WH_EINVALID, "scope longer than %d bytes", WH_AUTH_SCOPE_MAX);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)scope[i] <= ' ' || scope[i] == 0x7f)
            return wh_error_set(WH_EINVALID, "scope contains a space or control character");
    first = memchr(scope, ':', len);
    last = memrchr(scope, ':', len);
    if (!first || first == last)
        return wh_error_set(WH_EINVALID, "scope is not type:name:actions");

    size_t tlen = (size_t)(first - scope), nlen = (size_t)(last - first - 1);
    if (tlen == 0 || nlen == 0)
        return wh_error_set(WH_EINVALID, "scope has an empty type or name");
    if (tlen >= sizeof(out->type) || nlen >= sizeof(out->name))
        return wh_error_set(WH_EINVALID, "scope type or name too long");
    memcpy(out->type, scope, tlen);
    memcpy(out->name, first + 1, nlen);

    /* Actions: comma-separated, unknown (and empty) ones ignored. */
    for (const char *p = last + 1, *end = scope + len; p < end;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        out->actions |= wh_auth_action_parse(p, (size_t)(stop - p));
        p = stop + 1;
    }
    return 0;
}

int wh_auth_basic_parse(char *user, size_t ucap, char *pass, size_t pcap,
                        const char *authorization_header)
{
    const char *h = authorization_header;
    char buf[1024];
    size_t n, len;
    const char *colon;
    int error = 0;

    if (ucap)
        user[0] = '\0';
    if (pcap)
        pass[0] = '\0';
    if (!h || strncasecmp(h, "Basic", 5) != 0 || (h[5] != ' ' && h[5] != '\t'))
        return wh_error_set(WH_EINVALID, "not a Basic authorization");
    for (h += 5; *h == ' ' || *h == '\t'; h++)
        ;
    len = strlen(h);
    while (len && (h[len - 1] == ' ' || h[len - 1] == '\t'))
        len--;
    if (wh_auth_b64_decode(buf, sizeof(buf), &n, h, len, false) < 0) {
        error = wh_error_set(WH_EINVALID, "Basic credentials are not base64 or too long");
        goto out;
    }
    if (!(colon = memchr(buf, ':', n))) {
        error = wh_error_set(WH_EINVALID, "Basic credentials without ':'");
        goto out;
    }
    size_t ulen = (size_t)(colon - buf), plen = n - ulen - 1;
    if (ulen == 0) {
        error = wh_error_set(WH_EINVALID, "Basic credentials with an empty user");
        goto out;
    }
    for (size_t i = 0; i < ulen; i++)
        if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) {
            error = wh_error_set(WH_EINVALID, "control character in the user name");
            goto out;
        }
    if (memchr(colon + 1, '\0', plen)) {
        error = wh_error_set(WH_EINVALID, "NUL in the password");
        goto out;
    }
    if (ulen >= ucap || plen >= pcap) {
        error = wh_error_set(WH_EINVALID, "Basic user or password too long");
        goto out;
    }
    memcpy(user, buf, ulen);
    user[ulen] = '\0';
    memcpy(pass, colon + 1, plen);
    pass[plen] = '\0';
out:
    OPENSSL_cleanse(buf, sizeof(buf));
    return error;
}
