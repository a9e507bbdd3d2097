/*
 * swagger.c: the OpenAPI (swagger 2.0) document of the REST API, kept in
 * src/api/swagger.json and embedded in the binary as it is (the assembler's
 * .incbin, run from the top of the tree as the Makefile does). The unit test
 * tests/unit/test_api.c checks that it lists exactly the routes of api.c.
 */
#include "api/api_int.h"

#include <string.h>

__asm__(".section .rodata\n"
        ".balign 16\n"
        "wh_api_swagger_bytes:\n"
        ".incbin \"src/api/swagger.json\"\n"
        ".byte 0\n"
        "wh_api_swagger_bytes_end:\n"
        ".previous\n");

/* Defined by the block above (local symbols reached through these declarations). */
extern const char wh_api_swagger_bytes[] __asm__("wh_api_swagger_bytes");
extern const char wh_api_swagger_bytes_end[] __asm__("wh_api_swagger_bytes_end");

const char *wh_api_swagger(size_t *len)
{
    if (len)
        *len = (size_t)(wh_api_swagger_bytes_end - wh_api_swagger_bytes) - 1;
    return wh_api_swagger_bytes;
}
