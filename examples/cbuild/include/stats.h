/* Summary statistics over a vec. */
#ifndef CB_STATS_H
#define CB_STATS_H
#include "vec.h"

double stats_mean(const vec *v);
double stats_min(const vec *v);
double stats_max(const vec *v);
#endif
