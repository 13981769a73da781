/*
 * common.h - small helpers the variant kernels share: the work and cache size of exact
 * attention, the checks and kept problem of incremental decoders, per-thread workspace
 * slots, and a dot product that vectorises yet sums in a fixed order; and CAB's
 * segmentation of a sequence for landmarks.
 */
#ifndef ATTNBENCH_VARIANTS_COMMON_H
#define ATTNBENCH_VARIANTS_COMMON_H

#include <errno.h>
#include <stdbool.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "variant.h"

/*
 * FLOPs of exact softmax attention: two multiply-adds of length d (4d) per visible
 * (query, key) pair, all n * m of them, or n(n + 1)/2 in cs.
 */
static inline double exact_attention_flops(const struct attn_problem *p)
{
	double pairs = (double)p->n * p->m;

	if (p->pattern == ATTN_CS)
		pairs = (double)p->n * (p->n + 1) / 2;
	return 4.0 * p->batch * p->heads * p->d * pairs;
}

/* Bytes of a float32 cache of `positions` keys and values per KV head. */
static inline double kv_cache_bytes(const struct attn_problem *p, long positions)
{
	return 2.0 * p->batch * p->kv_heads * positions * p->d * sizeof(float);
}

/* The state of exact attention: the KV cache of every position. */
static inline double exact_attention_state_bytes(const struct attn_problem *p)
{
	return kv_cache_bytes(p, p->m);
}

/*
 * True when batch, heads, kv_heads, n and d are positive and kv_heads divides heads.
 * m is left to the caller: a decoder has none of its own (it takes m = n).
 */
static inline bool problem_sizes_ok(const struct attn_problem *p)
{
	return p->batch > 0 && p->heads > 0 && p->kv_heads > 0 && p->n > 0 && p->d > 0 &&
	       p->heads % p->kv_heads == 0;
}

/*
 * Whether an incremental decoder can take p, whose n is its capacity: 0, -ENOTSUP for a
 * pattern other than cs, -EINVAL for bad sizes (problem_sizes_ok()). m is not looked at.
 */
static inline int decode_check_problem(const struct attn_problem *p)
{
	if (p->pattern != ATTN_CS)
		return -ENOTSUP;
	return problem_sizes_ok(p) ? 0 : -EINVAL;
}

/*
 * The problem a decoder keeps: p with m = n, the capacity in positions, and without the
 * caller's params array, which need not outlive decode_init(). A decoder that reads its
 * params later keeps a copy of them in its state and points params there.
 */
static inline struct attn_problem decode_problem(const struct attn_problem *p)
{
	struct attn_problem kept = *p;

	kept.m = p->n;
	kept.params = NULL;
	return kept;
}

/* How many threads a parallel region may run: the number of workspace slots to take. */
static inline int max_threads(void)
{
#ifdef _OPENMP
	return omp_get_max_threads();
#else
	return 1;
#endif
}

/* This thread's slot inside a parallel region. */
static inline int thread_id(void)
{
#ifdef _OPENMP
	return omp_get_thread_num();
#else
	return 0;
#endif
}

/* Dot product in eight fixed partial sums, so it vectorises and stays deterministic. */
static inline float dot(const float *a, const float *b, int d)
{
	float part[8] = { 0 }, s = 0;
	int c = 0;

	for (; c + 8 <= d; c += 8)
		for (int l = 0; l < 8; l++)
			part[l] += a[c + l] * b[c + l];
	for (; c < d; c++)
		s += a[c] * b[c];
	for (int l = 0; l < 8; l++)
		s += part[l];
	return s;
}

/*
 * Rows lo..hi-1 of segment `seg` of `count` segments over n >= count rows, as CAB
 * segments for landmarks (Nystrom, LARA): s = n / count rows each when count divides n;
 * otherwise the first (s + 1) * count - n segments have s rows and the rest s + 1.
 */
static inline void segment_bounds(int n, int count, int seg, int *lo, int *hi)
{
	int s = n / count, short_segs = n % count ? (s + 1) * count - n : count;

	if (seg < short_segs) {
		*lo = seg * s;
		*hi = *lo + s;
	} else {
		*lo = short_segs * s + (seg - short_segs) * (s + 1);
		*hi = *lo + s + 1;
	}
}

/*
 * out (count x d) += the means of the `count` CAB segments of x (n >= count rows of d):
 * Nystrom's and LARA's landmarks.
 */
static inline void segment_means_add(const float *x, int n, int d, int count, float *out)
{
	for (int seg = 0; seg < count; seg++) {
		float *o = out + (size_t)seg * d;
		int lo, hi;

		segment_bounds(n, count, seg, &lo, &hi);
		for (int i = lo; i < hi; i++) {
			const float *r = x + (size_t)i * d;
			float inv = 1.0f / (float)(hi - lo);

			for (int c = 0; c < d; c++)
				o[c] += inv * r[c];
		}
	}
}

#endif
