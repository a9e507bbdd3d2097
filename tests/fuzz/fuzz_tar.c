/*
 * Fuzz target for the layer walker: the input is a layer (tar, possibly
 * compressed) read with small caps. It must never crash, never exceed the
 * caps, and when it is accepted its inventory must survive the per-layer
 * cache's JSON round trip unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scan/scan_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct mem {
    const uint8_t *p;
    size_t len, off;
};

static ssize_t mem_read(void *ctx, void *buf, size_t n)
{
    struct mem *m = ctx;
    size_t k = m->len - m->off < n ? m->len - m->off : n;
    memcpy(buf, m->p + m->off, k);
    m->off += k;
    return (ssize_t)k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mem m = {data, size, 0};
    struct wh_reader rd = {mem_read, &m, (int64_t)size, NULL};
    struct wh_scan_opts opts = {.max_entry = 1u << 20, .max_total = 16u << 20};
    struct wh_layer_inv *li = NULL, *back = NULL;
    uint64_t total = 0;
    wh_log_set_level(WH_LOG_ERROR);
    if (wh_layer_walk_tar(&li, &rd, &opts, &total) < 0)
        return 0;
    if (total > opts.max_total)
        abort();
    json_t *j = wh_layer_inv_to_json(li);
    if (wh_layer_inv_from_json(&back, j) < 0)
        abort();
    json_t *j2 = wh_layer_inv_to_json(back);
    if (!json_equal(j, j2))
        abort();
    json_decref(j);
    json_decref(j2);
    wh_layer_inv_free(li);
    wh_layer_inv_free(back);
    return 0;
}
