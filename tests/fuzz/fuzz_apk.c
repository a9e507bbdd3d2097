/*
 * Fuzz target for the apk installed-database parser: any bytes parse without
 * a crash, every package has a name and a version, and printing the packages
 * as P:/V:/o:/A: stanzas and parsing again gives the same list.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scan/scan_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wh_layer_inv *a = wh_layer_inv_new(), *b = wh_layer_inv_new();
    struct wh_buf out;
    wh_buf_init(&out, 1u << 26);
    if (wh_catalog_apk(a, "lib/apk/db/installed", (const char *)data, size) != 0)
        abort();
    const struct wh_layer_rec *ra = &a->recs[0];
    bool clean = true;
    for (size_t i = 0; i < ra->npkgs; i++) {
        const struct wh_pkg *p = &ra->pkgs[i];
        if (!p->name[0] || !p->version[0])
            abort();
        if (strpbrk(p->name, "\r\n") || strpbrk(p->version, "\r\n") || strpbrk(p->src_name, "\r\n"))
            clean = false;
        wh_buf_printf(&out, "P:%s\nV:%s\no:%s\n", p->name, p->version, p->src_name);
        if (p->arch)
            wh_buf_printf(&out, "A:%s\n", p->arch);
        wh_buf_puts(&out, "\n");
    }
    wh_catalog_apk(b, "lib/apk/db/installed", out.data ? out.data : "", out.len);
    const struct wh_layer_rec *rb = &b->recs[0];
    if (clean) {
        if (ra->npkgs != rb->npkgs)
            abort();
        for (size_t i = 0; i < ra->npkgs; i++)
            if (strcmp(ra->pkgs[i].name, rb->pkgs[i].name) != 0 ||
                strcmp(ra->pkgs[i].version, rb->pkgs[i].version) != 0 ||
                strcmp(ra->pkgs[i].src_name, rb->pkgs[i].src_name) != 0)
                abort();
    }
    wh_buf_dispose(&out);
    wh_layer_inv_free(a);
    wh_layer_inv_free(b);
    return 0;
}
