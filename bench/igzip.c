/*
 * The decompression floor of a gzip layer with ISA-L's igzip, as the scanner
 * inflates it: reads the file named on the command line, inflates every
 * member, discards the output and prints the number of bytes produced.
 */
#include <isa-l/igzip_lib.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    static unsigned char in[1 << 16], out[1 << 18];
    struct inflate_state st;
    size_t total = 0;
    FILE *f;

    if (argc != 2 || !(f = fopen(argv[1], "rb"))) {
        fprintf(stderr, "usage: igzip FILE.gz\n");
        return 2;
    }
    isal_inflate_init(&st);
    st.crc_flag = ISAL_GZIP;
    for (;;) {
        if (st.avail_in == 0) {
            size_t n = fread(in, 1, sizeof(in), f);
            if (n == 0)
                break;
            st.next_in = in;
            st.avail_in = (uint32_t)n;
        }
        st.next_out = out;
        st.avail_out = sizeof(out);
        if (isal_inflate(&st) < 0) {
            fprintf(stderr, "igzip: damaged data\n");
            return 1;
        }
        total += sizeof(out) - st.avail_out;
        if (st.block_state == ISAL_BLOCK_FINISH && st.avail_in == 0)
            break;
    }
    fclose(f);
    printf("%zu\n", total);
    return 0;
}
