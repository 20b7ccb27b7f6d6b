/* Fixed-format output, so the checksum below is stable across libcs. */
#ifndef CB_FMT_H
#define CB_FMT_H
#include <stdio.h>

void fmt_field(FILE *out, const char *name, double value);
unsigned long fmt_checksum(const char *s);
#endif
