/*
 * names.c: the rule user names follow, in one place so that the REST API
 * (POST /users) and `wharf user add` accept and refuse the same names
 * (Harbor refuses , " ~ # % $ : / and spaces, 1..255 bytes).
 */
#include <string.h>

#include "auth/auth.h"

int wh_auth_username_check(const char *name)
{
    size_t n = strlen(name);
    if (n < 1 || n > 255)
        return wh_error_set(WH_EINVALID, "a user name has 1 to 255 characters");
    if (strncmp(name, "robot$", 6) == 0)
        return wh_error_set(WH_EINVALID, "names starting with robot$ belong to robot accounts");
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f || strchr(",\"~#%$:/ ", *p))
            return wh_error_set(WH_EINVALID,
                                "username contains illegal characters (none of , \" ~ # %% $ : / "
                                "space or control characters)");
    return 0;
}
