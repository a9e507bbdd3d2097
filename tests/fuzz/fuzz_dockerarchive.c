/*
 * Fuzz target for `docker save` tarballs: the input is written to a temp file and
 * scanned as docker-archive:FILE with small caps, one thread and no cache,
 * which runs the archive index (tarindex.c), links between entries,
 * manifest.json and the config, and the layers inside. It must never crash
 * or hang, and an accepted archive's inventory must be writable as JSON.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scan/scan_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64] = "/tmp/wharf-fuzz-dockerarchive-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        abort();
    for (size_t off = 0; off < size;) {
        ssize_t n = write(fd, data + off, size - off);
        if (n <= 0)
            abort();
        off += (size_t)n;
    }
    close(fd);
    wh_log_set_level(WH_LOG_ERROR);
    char *target = wh_sprintf("docker-archive:%s", path);
    struct wh_scan_opts opts = {.max_entry = 1u << 20, .max_total = 16u << 20, .threads = 1};
    struct wh_inventory *inv = NULL;
    if (wh_scan_inventory(&inv, target, &opts) == 0) {
        json_t *j = wh_inventory_to_json(inv);
        if (!j || !json_is_array(json_object_get(j, "packages")))
            abort();
        char *text = json_dumps(j, 0);
        if (!text)
            abort(); /* every string in it is UTF-8 */
        free(text);
        json_decref(j);
        wh_inventory_free(inv);
    }
    unlink(path); /* nothing is left behind */
    free(target);
    return 0;
}
