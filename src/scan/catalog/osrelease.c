/*
 * osrelease.c: OS detection from the merged image's release files:
 * os-release(5) key=value files, /etc/debian_version,
 * /etc/alpine-release, /etc/lsb-release and the RHEL-family
 * "<Name> release <version> (<codename>)" files. Ubuntu wins over Debian
 * because Ubuntu ships a debian_version too ("bookworm/sid").
 */
#include "scan/scan_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct kv {
    char id[32], version_id[64], codename[32], pretty[128];
};

static void copy_trim(char *out, size_t cap, const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n >= 2 && (s[0] == '"' || s[0] == '\'') && s[n - 1] == s[0])
        s++, n -= 2;
    n = wh_utf8_cut(s, n, cap - 1); /* the text is UTF-8 (escaped when read): never cut a character */
    memcpy(out, s, n);
    out[n] = '\0';
}

/* Parses KEY=value lines (os-release and lsb-release use the same syntax). */
static void parse_kv(struct kv *o, const char *text, const char *id_key, const char *ver_key,
                     const char *code_key, const char *pretty_key)
{
    const char *p = text, *end = text + strlen(text), *line;
    size_t len;
    memset(o, 0, sizeof(*o));
    while (wh_next_line(&p, end, &line, &len)) {
        const char *eq = memchr(line, '=', len);
        if (!eq)
            continue;
        size_t kl = (size_t)(eq - line);
        const char *v = eq + 1;
        size_t vl = len - kl - 1;
#define KEY_IS(k) (kl == strlen(k) && memcmp(line, k, kl) == 0)
        if (KEY_IS(id_key))
            copy_trim(o->id, sizeof(o->id), v, vl);
        else if (KEY_IS(ver_key))
            copy_trim(o->version_id, sizeof(o->version_id), v, vl);
        else if (KEY_IS(code_key))
            copy_trim(o->codename, sizeof(o->codename), v, vl);
        else if (KEY_IS(pretty_key))
            copy_trim(o->pretty, sizeof(o->pretty), v, vl);
#undef KEY_IS
    }
    for (char *c = o->id; *c; c++)
        *c = (char)tolower((unsigned char)*c);
}

static const char *debian_codename(int major)
{
    static const char *const names[] = {[7] = "wheezy",    [8] = "jessie",  [9] = "stretch",
                                        [10] = "buster",   [11] = "bullseye", [12] = "bookworm",
                                        [13] = "trixie",   [14] = "forky"};
    if (major >= 7 && major <= 14)
        return names[major];
    return "";
}

static void set(char *dst, size_t cap, const char *src)
{
    size_t n = src ? wh_utf8_cut(src, strlen(src), cap - 1) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

static void first_line(char *out, size_t cap, const char *s)
{
    size_t n = strcspn(s, "\r\n");
    copy_trim(out, cap, s, n);
}

/* "Rocky Linux release 9.3 (Blue Onyx)" -> family, version. */
static bool redhat_like(struct wh_os *o, const char *text)
{
    static const struct {
        const char *prefix, *family;
    } names[] = {
        {"Red Hat Enterprise Linux", "rhel"}, {"CentOS Stream", "centos"}, {"CentOS", "centos"},
        {"Rocky Linux", "rocky"},            {"AlmaLinux", "almalinux"},  {"Fedora", "fedora"},
        {"Oracle Linux", "ol"},              {"Amazon Linux", "amzn"},
    };
    char line[160];
    first_line(line, sizeof(line), text);
    const char *rel = strstr(line, " release ");
    if (!rel)
        return false;
    const char *family = NULL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strncmp(line, names[i].prefix, strlen(names[i].prefix)) == 0) {
            family = names[i].family;
            break;
        }
    if (!family)
        return false;
    set(o->family, sizeof(o->family), family);
    const char *v = rel + 9;
    size_t n = strcspn(v, " (");
    copy_trim(o->version, sizeof(o->version), v, n);
    copy_trim(o->name, sizeof(o->name), line, strlen(line));
    return true;
}

void wh_os_detect(struct wh_os *out, const char *(*get)(void *ctx, const char *path), void *ctx)
{
    struct kv osr = {0}, lsb = {0};
    const char *s;
    memset(out, 0, sizeof(*out));

    if ((s = get(ctx, "etc/os-release")) || (s = get(ctx, "usr/lib/os-release")))
        parse_kv(&osr, s, "ID", "VERSION_ID", "VERSION_CODENAME", "PRETTY_NAME");
    if ((s = get(ctx, "etc/lsb-release")))
        parse_kv(&lsb, s, "DISTRIB_ID", "DISTRIB_RELEASE", "DISTRIB_CODENAME", "DISTRIB_DESCRIPTION");

    /* Ubuntu first: it also carries a debian_version. */
    if (strcmp(lsb.id, "ubuntu") == 0 || strcmp(osr.id, "ubuntu") == 0) {
        const struct kv *k = strcmp(osr.id, "ubuntu") == 0 ? &osr : &lsb;
        set(out->family, sizeof(out->family), "ubuntu");
        set(out->version, sizeof(out->version), k->version_id[0] ? k->version_id : lsb.version_id);
        set(out->codename, sizeof(out->codename), k->codename[0] ? k->codename : lsb.codename);
        set(out->name, sizeof(out->name), k->pretty);
        return;
    }
    if ((s = get(ctx, "etc/alpine-release"))) {
        set(out->family, sizeof(out->family), "alpine");
        first_line(out->version, sizeof(out->version), s);
        set(out->name, sizeof(out->name), osr.pretty);
        return;
    }
    if ((s = get(ctx, "etc/debian_version"))) {
        char v[64];
        first_line(v, sizeof(v), s);
        set(out->family, sizeof(out->family), "debian");
        const char *slash = strchr(v, '/');
        if (slash) {
            /* testing/unstable: "trixie/sid" */
            copy_trim(out->codename, sizeof(out->codename), v, (size_t)(slash - v));
            set(out->version, sizeof(out->version), v);
        } else {
            set(out->version, sizeof(out->version), v);
            if (strcmp(osr.id, "debian") == 0 && osr.codename[0])
                set(out->codename, sizeof(out->codename), osr.codename);
            else
                set(out->codename, sizeof(out->codename), debian_codename(atoi(v)));
        }
        set(out->name, sizeof(out->name), osr.pretty);
        return;
    }
    static const char *const rh_files[] = {"etc/redhat-release", "etc/centos-release",
                                           "etc/rocky-release",  "etc/almalinux-release",
                                           "etc/fedora-release", "etc/oracle-release",
                                           "etc/system-release", "usr/lib/system-release"};
    if (osr.id[0]) {
        set(out->family, sizeof(out->family), osr.id);
        set(out->version, sizeof(out->version), osr.version_id);
        set(out->codename, sizeof(out->codename), osr.codename);
        set(out->name, sizeof(out->name), osr.pretty);
        /* A release file has the full minor version ("9.3") when os-release says "9". */
        for (size_t i = 0; i < sizeof(rh_files) / sizeof(rh_files[0]); i++) {
            struct wh_os t = {0};
            if ((s = get(ctx, rh_files[i])) && redhat_like(&t, s) && strcmp(t.family, out->family) == 0 &&
                strncmp(t.version, out->version, strlen(out->version)) == 0)
                set(out->version, sizeof(out->version), t.version);
        }
        return;
    }
    for (size_t i = 0; i < sizeof(rh_files) / sizeof(rh_files[0]); i++)
        if ((s = get(ctx, rh_files[i])) && redhat_like(out, s))
            return;
}
