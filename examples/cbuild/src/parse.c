#include <stdlib.h>
#include "parse.h"

size_t parse_numbers(const char *text, vec *out) {
    size_t n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        double x = strtod(p, &end);
        if (end == p) { p++; continue; }
        if (vec_push(out, x) == 0) n++;
        p = end;
    }
    return n;
}
