/*
 * main.c: the wharf command line. Subcommands are dispatched to the modules;
 * nothing but argument handling lives here.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/common.h"

#define WHARF_VERSION "0.1.0"

static int usage(FILE *f)
{
    fprintf(f, "usage: wharf <command> [options]\n"
               "commands:\n"
               "  serve                 run the registry\n"
               "  scan TARGET           scan an image for vulnerabilities (wharf scan --help)\n"
               "  vulndb CMD            import, update, inspect the vulnerability database\n"
               "  version               print the version\n");
    return f == stderr ? 2 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    if (strcmp(argv[1], "version") == 0) {
        printf("wharf %s\n", WHARF_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "scan") == 0)
        return wh_cli_scan(argc - 1, argv + 1);
    if (strcmp(argv[1], "vulndb") == 0)
        return wh_cli_vulndb(argc - 1, argv + 1);
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)
        return usage(stdout);
    return usage(stderr);
}
