/*
 * Fuzz target for the vulnerability database importer: the input is one feed
 * document (any of the formats, or garbage). Importing it must either fail
 * cleanly, leaving no database behind, or produce a database that opens and
 * reports its status. Runs against real files in a private temp directory.
 */
#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scan/scan_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[] = "/tmp/wharf-fuzz-vulndb-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    char *doc = wh_sprintf("%s/feed.json", dir), *db = wh_sprintf("%s/db.sqlite", dir);
    FILE *f = fopen(doc, "wb");
    if (!f || fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);
    const char *paths[] = {doc};
    struct wh_vulndb_stats st;
    int rc = wh_vulndb_import(db, paths, 1, &st);
    if (rc == 0) {
        FILE *null = fopen("/dev/null", "w");
        if (wh_vulndb_status(db, null) != 0)
            abort();
        fclose(null);
    } else if (access(db, F_OK) == 0) {
        abort(); /* a failed first import must not leave a database */
    }
    char *tmp = wh_sprintf("%s.new.*", db);
    glob_t g;
    if (glob(tmp, 0, NULL, &g) != GLOB_NOMATCH)
        abort();
    unlink(db);
    unlink(doc);
    rmdir(dir);
    free(tmp);
    free(doc);
    free(db);
    return 0;
}
