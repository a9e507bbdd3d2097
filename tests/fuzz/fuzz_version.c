/*
 * Fuzz target for scan/version: the input is split at '\n' into three version
 * strings a, b, c (missing ones are empty), and for every ecosystem the
 * comparison must be reflexive, antisymmetric and transitive, i.e. a total
 * preorder, whatever the bytes. Any violation aborts. Maven is the exception
 * for transitivity: ComparableVersion itself has cycles ("1.x.1" <
 * "1.0.beta.1" < "1" < "1.x.1", see src/scan/version/maven.c), so only
 * reflexivity and antisymmetry are checked for it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scan/version.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int sign(int x)
{
    return (x > 0) - (x < 0);
}

/* x <= y <= z (strictly where either step is) must give x <= z. */
static void check_chain(enum wh_eco eco, const char *x, const char *y, const char *z)
{
    int xy = sign(wh_version_cmp(eco, x, y));
    int yz = sign(wh_version_cmp(eco, y, z));
    int xz = sign(wh_version_cmp(eco, x, z));

    if (xy <= 0 && yz <= 0) {
        if (xz > 0)
            abort();
        if ((xy < 0 || yz < 0) && xz != -1)
            abort();
        if (xy == 0 && yz == 0 && xz != 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    const char *v[3] = {"", "", ""};
    int n = 0;

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    /* Split at newlines; an embedded NUL simply ends that string early. */
    char *p = buf;
    v[n++] = p;
    for (size_t i = 0; i < size && n < 3; i++) {
        if (buf[i] == '\n') {
            buf[i] = '\0';
            v[n++] = buf + i + 1;
        }
    }

    for (int e = WH_ECO_DPKG; e <= WH_ECO_NPM; e++) {
        enum wh_eco eco = (enum wh_eco)e;
        for (int i = 0; i < 3; i++) {
            (void)wh_version_valid(eco, v[i]);
            if (wh_version_cmp(eco, v[i], v[i]) != 0)
                abort(); /* reflexivity */
            for (int j = 0; j < 3; j++)
                if (sign(wh_version_cmp(eco, v[i], v[j])) != -sign(wh_version_cmp(eco, v[j], v[i])))
                    abort(); /* antisymmetry */
        }
        static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                        {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
        if (eco == WH_ECO_MAVEN)
            continue;
        for (int k = 0; k < 6; k++)
            check_chain(eco, v[perms[k][0]], v[perms[k][1]], v[perms[k][2]]);
    }
    free(buf);
    return 0;
}
