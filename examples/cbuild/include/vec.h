/* A growable array of doubles. */
#ifndef CB_VEC_H
#define CB_VEC_H
#include <stddef.h>

typedef struct {
    double *items;
    size_t len, cap;
} vec;

void vec_init(vec *v);
int vec_push(vec *v, double x);
void vec_free(vec *v);
#endif
