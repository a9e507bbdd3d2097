/*
 * args.c: one argument parser for every wharf command, so that they all
 * accept `--opt value`, `--opt=value`, short flags and `--`, and all refuse
 * the same way: an unknown option, a missing value or an extra argument is
 * named in the message and the command exits 2.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool wh_cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return true;
    }
    return false;
}

static const struct wh_cli_opt *find_long(const struct wh_cli_opt *opts, const char *arg,
                                          size_t len)
{
    for (const struct wh_cli_opt *o = opts; o && o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, arg, len) == 0)
            return o;
    return NULL;
}

static const struct wh_cli_opt *find_short(const struct wh_cli_opt *opts, char c)
{
    for (const struct wh_cli_opt *o = opts; o && o->name; o++)
        if (o->short_name && o->short_name == c)
            return o;
    return NULL;
}

/* Stores the value of `o`; -2 when its callback refused it. */
static int give(const struct wh_cli_opt *o, const char *v)
{
    if (o->each)
        return o->each(v, o->payload) == 0 ? 0 : -2;
    if (o->value)
        *o->value = v;
    if (o->flag)
        *o->flag = true;
    return 0;
}

int wh_cli_parse(const char *cmd, int argc, char **argv, const struct wh_cli_opt *opts,
                 const char **pos, const char *const *posnames, int min_pos)
{
    int npos = 0, maxpos = 0;
    bool rest = false, options = true;
    for (const char *const *p = posnames; p && *p; p++) {
        maxpos++;
        size_t l = strlen(*p);
        if (l >= 3 && strcmp(*p + l - 3, "...") == 0)
            rest = true;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options && strcmp(a, "--") == 0) {
            options = false;
            continue;
        }
        if (options && a[0] == '-' && a[1] == '-') {
            const char *eq = strchr(a, '=');
            size_t len = eq ? (size_t)(eq - a) : strlen(a);
            const struct wh_cli_opt *o = find_long(opts, a, len);
            if (!o) {
                fprintf(stderr, "%s: unknown option %.*s\n", cmd, (int)len, a);
                return -2;
            }
            if (!o->metavar) {
                if (eq) {
                    fprintf(stderr, "%s: %s takes no value\n", cmd, o->name);
                    return -2;
                }
                if (give(o, NULL) < 0)
                    return -2;
                continue;
            }
            const char *v = eq ? eq + 1 : NULL;
            if (!v) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "%s: %s needs a value (%s %s)\n", cmd, o->name, o->name,
                            o->metavar);
                    return -2;
                }
                v = argv[++i];
            }
            if (give(o, v) < 0)
                return -2;
            continue;
        }
        if (options && a[0] == '-' && a[1] != '\0') {
            /* short options: -v, or -x VALUE for one that takes a value */
            const struct wh_cli_opt *o = a[2] == '\0' ? find_short(opts, a[1]) : NULL;
            if (!o) {
                fprintf(stderr, "%s: unknown option %s\n", cmd, a);
                return -2;
            }
            const char *v = NULL;
            if (o->metavar) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "%s: %s needs a value (%s %s)\n", cmd, a, a, o->metavar);
                    return -2;
                }
                v = argv[++i];
            }
            if (give(o, v) < 0)
                return -2;
            continue;
        }
        if (npos >= maxpos && !rest) {
            fprintf(stderr, "%s: unexpected argument '%s'\n", cmd, a);
            return -2;
        }
        pos[npos++] = a;
    }
    if (npos < min_pos) {
        fprintf(stderr, "%s: missing %s\n", cmd,
                posnames && npos < maxpos ? posnames[npos] : "an argument");
        return -2;
    }
    return npos;
}

int wh_cli_number(long long *out, const char *cmd, const char *what, const char *text,
                  long long lo, long long hi)
{
    long long v;
    const char *t = text;
    bool neg = *t == '-';
    uint64_t u;
    if (neg)
        t++;
    if (wh_parse_u64(&u, t, strlen(t)) < 0 || u > (uint64_t)INT64_MAX)
        goto bad;
    v = neg ? -(long long)u : (long long)u;
    if (v < lo || v > hi)
        goto bad;
    *out = v;
    return 0;
bad:
    fprintf(stderr, "%s: %s: '%s' is not a number from %lld to %lld\n", cmd, what, text, lo, hi);
    return -2;
}

int wh_cli_bytes(uint64_t *out, const char *cmd, const char *what, const char *text)
{
    if (wh_config_parse_size(out, text) < 0 || *out == 0) {
        fprintf(stderr,
                "%s: %s: '%s' is not a byte count (a positive number, optionally with K, M, G "
                "or T: 1K is 1024)\n",
                cmd, what, text);
        return -2;
    }
    return 0;
}
