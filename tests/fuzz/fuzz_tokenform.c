/*
 * Fuzz target for the token service's OAuth2 form parser
 * (wh_token_form_parse): any bytes as a POST body. Properties beyond "no
 * crash": an accepted form yields values no longer than the body, without
 * control bytes, and parsing the same bytes twice gives the same values.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {"grant_type", "service", "client_id", "scope", "access_type",
                                    "username", "password", "refresh_token"};
#define NNAMES (sizeof(names) / sizeof(names[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    wh_pool *pool = wh_pool_new();
    const char *v1[NNAMES], *v2[NNAMES];
    int rc = wh_token_form_parse(pool, (const char *)data, size, names, NNAMES, v1);
    if (rc != 0 && rc != WH_EINVALID)
        abort();
    if (rc == 0) {
        if (wh_token_form_parse(pool, (const char *)data, size, names, NNAMES, v2) != 0)
            abort();
        for (size_t i = 0; i < NNAMES; i++) {
            if (!v1[i] != !v2[i] || (v1[i] && strcmp(v1[i], v2[i]) != 0))
                abort();
            if (!v1[i])
                continue;
            size_t n = strlen(v1[i]);
            if (n > size)
                abort();
            for (size_t k = 0; k < n; k++)
                if ((unsigned char)v1[i][k] < 0x20 || v1[i][k] == 0x7f)
                    abort();
        }
    }
    wh_pool_free(pool);
    return 0;
}
