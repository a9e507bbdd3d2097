/*
 * Fuzz target for the dpkg status parser: any bytes parse without a crash,
 * every package found has a name and a version, and writing the packages back
 * out as a status file and parsing that gives the same list (parse, print,
 * parse).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scan/scan_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void print(struct wh_buf *b, const struct wh_layer_rec *r)
{
    for (size_t i = 0; i < r->npkgs; i++) {
        const struct wh_pkg *p = &r->pkgs[i];
        wh_buf_printf(b, "Package: %s\nVersion: %s\n", p->name, p->version);
        if (strcmp(p->src_name, p->name) != 0 || strcmp(p->src_version, p->version) != 0)
            wh_buf_printf(b, "Source: %s (%s)\n", p->src_name, p->src_version);
        if (p->arch)
            wh_buf_printf(b, "Architecture: %s\n", p->arch);
        wh_buf_puts(b, "\n");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wh_layer_inv *a = wh_layer_inv_new(), *b = wh_layer_inv_new();
    struct wh_buf out;
    wh_buf_init(&out, 1u << 26);
    if (wh_catalog_dpkg(a, "var/lib/dpkg/status", (const char *)data, size) != 0)
        abort();
    const struct wh_layer_rec *ra = &a->recs[0];
    for (size_t i = 0; i < ra->npkgs; i++)
        if (!ra->pkgs[i].name[0] || !ra->pkgs[i].version[0])
            abort();
    print(&out, ra);
    wh_catalog_dpkg(b, "var/lib/dpkg/status", out.data ? out.data : "", out.len);
    const struct wh_layer_rec *rb = &b->recs[0];
    /* Fields with embedded newlines or odd spacing cannot survive printing; only compare clean ones. */
    bool clean = true;
    for (size_t i = 0; i < ra->npkgs && clean; i++) {
        const struct wh_pkg *p = &ra->pkgs[i];
        const char *f[] = {p->name, p->version, p->src_name, p->src_version};
        for (int k = 0; k < 4; k++)
            if (strpbrk(f[k], "\r\n()") || f[k][0] == ' ' || f[k][strlen(f[k]) - 1] == ' ')
                clean = false;
    }
    if (clean) {
        if (ra->npkgs != rb->npkgs)
            abort();
        for (size_t i = 0; i < ra->npkgs; i++)
            if (strcmp(ra->pkgs[i].name, rb->pkgs[i].name) != 0 ||
                strcmp(ra->pkgs[i].version, rb->pkgs[i].version) != 0 ||
                strcmp(ra->pkgs[i].src_name, rb->pkgs[i].src_name) != 0 ||
                strcmp(ra->pkgs[i].src_version, rb->pkgs[i].src_version) != 0)
                abort();
    }
    wh_buf_dispose(&out);
    wh_layer_inv_free(a);
    wh_layer_inv_free(b);
    return 0;
}
