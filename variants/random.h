/*
 * random.h - the generator variants draw their plan-time random objects from (projection
 * matrices, sampled indices, initial weights). Seeded from the problem's seed and a
 * stream number (e.g. seed + 1000 * head, as CAB offsets Performer's heads), never from
 * the data, so a variant's random objects are the same on every machine and every call.
 */
#ifndef ATTNBENCH_VARIANTS_RANDOM_H
#define ATTNBENCH_VARIANTS_RANDOM_H

#include <math.h>
#include <stdint.h>

/* splitmix64: one 64-bit word of state, good enough for weights, trivially reproducible. */
struct plan_rng {
	uint64_t state;
};

static inline struct plan_rng plan_rng_make(uint64_t seed, uint64_t stream)
{
	struct plan_rng r = { seed * 0x9e3779b97f4a7c15ull ^ (stream + 0x632be59bd9b4e019ull) };

	return r;
}

static inline uint64_t plan_rng_next(struct plan_rng *r)
{
	uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in (0, 1): never exactly 0, so log() of it is finite. */
static inline double plan_rng_uniform(struct plan_rng *r)
{
	return ((plan_rng_next(r) >> 11) + 0.5) / 9007199254740992.0;
}

/* Standard normal by Box-Muller (one of the pair; plan time is not hot). */
static inline double plan_rng_normal(struct plan_rng *r)
{
	double u = plan_rng_uniform(r), v = plan_rng_uniform(r);

	return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

/* Uniform integer in [0, n), n >= 1 (multiply-shift; the bias is below 2^-32 here). */
static inline uint64_t plan_rng_below(struct plan_rng *r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)plan_rng_next(r) * n) >> 64);
}

#endif
