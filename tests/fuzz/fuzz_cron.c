/*
 * Fuzz target for common/cron.c: any bytes (cut at the first NUL) given to
 * wh_cron_parse either are refused or parse into bit sets within each
 * field's range; a parsed expression's next fire time, when there is one,
 * is later than the start and matches the expression again from one second
 * before it (the search is idempotent). Any violation aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[512];
    struct wh_cron c;
    size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
    memcpy(text, data, n);
    text[n] = '\0';
    if (wh_cron_parse(&c, text) < 0)
        return 0;
    if ((c.sec >> 60) || (c.min >> 60) || (c.hour >> 24) || (c.dom & 1) || (c.dom >> 32) ||
        (c.mon & 1) || (c.mon >> 13) || (c.dow >> 7))
        abort();
    int64_t start = 1796245484, next = 0, again = 0; /* 2026-12-02 */
    if (wh_cron_next(&next, &c, start) < 0)
        return 0;
    if (next <= start || wh_cron_next(&again, &c, next - 1) < 0 || again != next)
        abort();
    return 0;
}
