#include "fmt.h"

void fmt_field(FILE *out, const char *name, double value) {
    fprintf(out, "%-6s %12.4f\n", name, value);
}

unsigned long fmt_checksum(const char *s) {
    unsigned long h = 5381;
    while (*s) h = h * 33u + (unsigned char)*s++;
    return h;
}
