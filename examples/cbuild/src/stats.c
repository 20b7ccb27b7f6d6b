#include "stats.h"

double stats_mean(const vec *v) {
    double sum = 0;
    for (size_t i = 0; i < v->len; i++) sum += v->items[i];
    return v->len ? sum / (double)v->len : 0.0;
}

double stats_min(const vec *v) {
    double m = v->len ? v->items[0] : 0.0;
    for (size_t i = 1; i < v->len; i++) if (v->items[i] < m) m = v->items[i];
    return m;
}

double stats_max(const vec *v) {
    double m = v->len ? v->items[0] : 0.0;
    for (size_t i = 1; i < v->len; i++) if (v->items[i] > m) m = v->items[i];
    return m;
}
