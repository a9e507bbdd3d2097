/*
 * Fuzz target for the rpm database decoders: the same bytes are read as an
 * RPM header blob, a Berkeley DB hash file, an NDB file and an SQLite
 * rpmdb.sqlite. Nothing may read out of bounds, crash or run away (the
 * work each decoder may do is bounded by the input's size); every package
 * found has a name and a version.
 */
#include <stdint.h>
#include <stdlib.h>

#include "scan/scan_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum wh_cat cats[] = {WH_CAT_RPM_BDB, WH_CAT_RPM_NDB, WH_CAT_RPM_SQLITE};
    struct wh_layer_inv *li = wh_layer_inv_new();
    struct wh_layer_rec *r = wh_layer_rec_add(li, "blob", WH_CAT_RPM_BDB);
    wh_rpm_header_parse(li, r, data, size);
    for (size_t i = 0; i < sizeof(cats) / sizeof(cats[0]); i++)
        wh_catalog_rpm(li, cats[i], "db", (const char *)data, size);
    for (size_t i = 0; i < li->nrecs; i++)
        for (size_t k = 0; k < li->recs[i].npkgs; k++)
            if (!li->recs[i].pkgs[k].name[0] || !li->recs[i].pkgs[k].version[0])
                abort();
    wh_layer_inv_free(li);
    return 0;
}
