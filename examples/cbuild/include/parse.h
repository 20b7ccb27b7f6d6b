/* Numbers out of text. */
#ifndef CB_PARSE_H
#define CB_PARSE_H
#include "vec.h"

/* Appends every number found in `text` to `out`; returns how many. */
size_t parse_numbers(const char *text, vec *out);
#endif
