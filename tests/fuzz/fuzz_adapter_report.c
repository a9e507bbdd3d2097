/*
 * Fuzz target for an external scanner's report as the adapter client reads
 * it (adapter/client.c): any bytes are weighed (wh_adapter_report_weigh
 * answers 0 or WH_ETOOBIG, never reads past the input), and what passes and
 * parses is imported. An imported report keeps the caps it promises (items,
 * identifying strings, lists, texts), its summary counts its items, and it
 * imports again to the same text (the import is idempotent). Any violation
 * aborts.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapter/adapter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_item(const json_t *v)
{
    static const char *const keys[] = {"id", "package", "version", "fix_version"};
    for (size_t k = 0; k < 4; k++) {
        const json_t *s = json_object_get(v, keys[k]);
        if (!json_is_string(s) || json_string_length(s) > WH_ADAPTER_ITEM_STR_MAX)
            abort();
    }
    const json_t *d = json_object_get(v, "description"), *t = json_object_get(v, "title");
    if ((d && json_string_length(d) > WH_ADAPTER_DESC_MAX) ||
        (t && json_string_length(t) > WH_ADAPTER_TITLE_MAX))
        abort();
    static const char *const lists[] = {"links", "cwe_ids"};
    for (size_t k = 0; k < 2; k++) {
        const json_t *l = json_object_get(v, lists[k]);
        if (l && json_array_size(l) > WH_ADAPTER_ITEM_LIST_MAX)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    int rc = wh_adapter_report_weigh(body, size);
    if (rc != 0 && rc != WH_ETOOBIG)
        abort();
    if (rc < 0)
        return 0;
    json_t *rep = json_loadb(body, size, 0, NULL);
    char *text = NULL, *sum = NULL, sev[16];
    if (!rep || wh_adapter_report_import(rep, "sha256:abc", &text, &sum, sev, sizeof(sev)) < 0) {
        json_decref(rep);
        return 0;
    }
    json_t *out = json_loads(text, 0, NULL), *s = json_loads(sum, 0, NULL);
    const json_t *items = json_object_get(out, "vulnerabilities");
    if (!json_is_array(items) || json_array_size(items) > WH_ADAPTER_REPORT_ITEMS_MAX ||
        json_integer_value(json_object_get(s, "total")) != (json_int_t)json_array_size(items))
        abort();
    size_t i;
    json_t *v;
    json_array_foreach(items, i, v) check_item(v);
    /* importing the imported report gives it back (generated_at and scanner are kept) */
    char *again = NULL, *sum2 = NULL, sev2[16];
    if (wh_adapter_report_import(out, "sha256:abc", &again, &sum2, sev2, sizeof(sev2)) < 0 ||
        strcmp(again, text) != 0 || strcmp(sum2, sum) != 0 || strcmp(sev2, sev) != 0)
        abort();
    free(again);
    free(sum2);
    json_decref(out);
    json_decref(s);
    json_decref(rep);
    free(text);
    free(sum);
    return 0;
}
