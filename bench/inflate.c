/*
 * inflate.c: the decompression floor for bench/scan.sh. Inflates a gzip file
 * with zlib into a reused buffer and discards the bytes: no tar parsing, no
 * cataloging, nothing kept. Prints the number of bytes produced.
 */
#include <stdio.h>
#include <zlib.h>

int main(int argc, char **argv)
{
    static char buf[1 << 16];
    unsigned long long total = 0;
    int n;
    if (argc != 2)
        return 2;
    gzFile f = gzopen(argv[1], "rb");
    if (!f)
        return 1;
    gzbuffer(f, 1 << 17);
    while ((n = gzread(f, buf, sizeof(buf))) > 0)
        total += (unsigned long long)n;
    gzclose(f);
    printf("%llu\n", total);
    return n < 0;
}
