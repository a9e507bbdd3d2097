/*
 * apk.c: the Alpine package database lib/apk/db/installed:
 * blank-line separated stanzas of `X:value` lines. P: name, V: version, A:
 * arch, o: origin, which is the source package Alpine's secdb is keyed by.
 */
#include "scan/scan_int.h"

#include <string.h>

#define FIELD_MAX 256

struct stanza {
    char name[FIELD_MAX], version[FIELD_MAX], origin[FIELD_MAX], arch[64];
};

static void emit(struct wh_layer_inv *li, struct wh_layer_rec *r, const struct stanza *st)
{
    struct wh_pkg p = {
        .kind = WH_PKG_APK,
        .name = st->name,
        .version = st->version,
        .src_name = st->origin[0] ? st->origin : NULL,
        .src_version = st->version,
        .arch = st->arch[0] ? st->arch : NULL,
    };
    wh_layer_rec_pkg(li, r, &p);
}

static void field(char *out, size_t cap, const char *v, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(out, v, n);
    out[n] = '\0';
}

int wh_catalog_apk(struct wh_layer_inv *li, const char *path, const char *data, size_t len)
{
    const char *p = data, *end = data + len, *line;
    size_t n;
    struct stanza st;
    struct wh_layer_rec *r = wh_layer_rec_add(li, path, WH_CAT_APK);

    memset(&st, 0, sizeof(st));
    while (wh_next_line(&p, end, &line, &n)) {
        if (n == 0) {
            emit(li, r, &st);
            memset(&st, 0, sizeof(st));
            continue;
        }
        if (n < 2 || line[1] != ':')
            continue;
        switch (line[0]) {
        case 'P':
            field(st.name, sizeof(st.name), line + 2, n - 2);
            break;
        case 'V':
            field(st.version, sizeof(st.version), line + 2, n - 2);
            break;
        case 'o':
            field(st.origin, sizeof(st.origin), line + 2, n - 2);
            break;
        case 'A':
            field(st.arch, sizeof(st.arch), line + 2, n - 2);
            break;
        default:
            break;
        }
    }
    emit(li, r, &st);
    return 0;
}
