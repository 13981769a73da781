/*
 * reference-cache.h - the double-precision reference of an input set and the measured
 * properties of its attention, computed once per run and shared by every variant that
 * sees those inputs.
 *
 * Inputs depend only on the regime, pattern, shape and seed of a cell, never on the
 * variant, so the O(n m d) oracle need not run once per variant. Cells run in separate
 * processes: the cache is a directory of files, each written whole under a temporary
 * name and renamed into place, so a reader sees a complete file or none.
 */
#ifndef ATTNBENCH_REFERENCE_CACHE_H
#define ATTNBENCH_REFERENCE_CACHE_H

#include <stddef.h>

#include "regime-stats.h"
#include "task.h"

/* Files kept at most: enough for every regime of one shape, a bounded use of disk. */
#define REFERENCE_CACHE_FILES 16

/* Makes a fresh private directory for a run's cache into dir; 0 or -errno. */
int reference_cache_create(char *dir, size_t len);
/* Deletes the cache's files and the directory; accepts NULL. */
void reference_cache_remove(const char *dir);
/*
 * Deletes the caches whose run is gone (a driver killed before it could delete its own:
 * the folder names its pid, and no such process exists). Returns how many.
 */
int reference_cache_sweep(void);

/*
 * ref = reference_attention() of c's inputs q, k, v (problem p) and *st =
 * regime_stats_measure() of them: read from c->cache_dir when an earlier cell stored
 * them, else computed (and stored when c->cache_dir is set). Returns 0 or -ENOMEM; a
 * cache that cannot be read or written only costs the computation.
 */
int reference_cached(const struct cell *c, const struct attn_problem *p, const float *q,
		     const float *k, const float *v, double *ref, struct regime_stats *st);

#endif
