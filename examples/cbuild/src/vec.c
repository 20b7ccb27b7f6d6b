#include <stdlib.h>
#include "vec.h"

void vec_init(vec *v) { v->items = NULL; v->len = v->cap = 0; }

int vec_push(vec *v, double x) {
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        double *items = realloc(v->items, cap * sizeof *items);
        if (!items) return -1;
        v->items = items;
        v->cap = cap;
    }
    v->items[v->len++] = x;
    return 0;
}

void vec_free(vec *v) { free(v->items); vec_init(v); }
