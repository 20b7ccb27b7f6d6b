/* cbuild: reads numbers from a file (or a built-in sample) and prints
   their summary and a checksum of that summary. */
#include <stdio.h>
#include <string.h>
#include "fmt.h"
#include "parse.h"
#include "stats.h"

static const char SAMPLE[] = "3 1 4 1 5 9 2 6 5 3 5 8 9 7 9";

int main(int argc, char **argv) {
    char text[65536];
    const char *src = SAMPLE;
    if (argc > 1) {
        FILE *f = fopen(argv[1], "r");
        if (!f) { perror(argv[1]); return 1; }
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = '\0';
        src = text;
    }
    vec v;
    vec_init(&v);
    size_t n = parse_numbers(src, &v);
    char summary[256];
    snprintf(summary, sizeof summary, "n=%zu mean=%.4f min=%.4f max=%.4f",
             n, stats_mean(&v), stats_min(&v), stats_max(&v));
    fmt_field(stdout, "count", (double)n);
    fmt_field(stdout, "mean", stats_mean(&v));
    fmt_field(stdout, "min", stats_min(&v));
    fmt_field(stdout, "max", stats_max(&v));
    printf("checksum %lu\n", fmt_checksum(summary));
    vec_free(&v);
    return 0;
}
