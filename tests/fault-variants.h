/*
 * fault-variants.h - test-only "variants" that each break in one way a real one might:
 * segfault, abort, hang, allocate without bound, return NaN or infinity, write just or
 * far past the end of their output, before its start, into an input, or read far past an
 * input. All but the first four are exact attention (vanilla) and then do their harm. Not
 * in the registry: the runner must record each with its own status and the run go on.
 */
#ifndef ATTNBENCH_FAULT_VARIANTS_H
#define ATTNBENCH_FAULT_VARIANTS_H

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "memory.h"
#include "variant.h"

/* Floats in O: what a variant may write. */
static size_t fault_out_count(const struct attn_problem *p)
{
	return (size_t)p->batch * p->heads * p->n * p->d;
}

static int fault_exact(const struct attn_problem *p, const float *q, const float *k,
		       const float *v, float *out)
{
	return variant_find("vanilla")->forward(p, q, k, v, out);
}

static int segv_forward(const struct attn_problem *p, const float *q, const float *k,
			const float *v, float *out)
{
	/*
	 * volatile both: a store the compiler can neither drop nor turn into a trap; to an
	 * address in the first page, which is never mapped, but not NULL, whose store the
	 * sanitizer build would report as undefined behaviour before it faults
	 */
	volatile float *volatile nowhere = (volatile float *)(uintptr_t)64;

	(void)p, (void)q, (void)k, (void)v, (void)out;
	*nowhere = 1;
	return 0;
}

static int abort_forward(const struct attn_problem *p, const float *q, const float *k,
			 const float *v, float *out)
{
	(void)p, (void)q, (void)k, (void)v, (void)out;
	abort();
}

static int hang_forward(const struct attn_problem *p, const float *q, const float *k,
			const float *v, float *out)
{
	(void)p, (void)q, (void)k, (void)v, (void)out;
	for (;;)
		sleep(1);
	return 0;
}

/* Takes 16 MiB workspace blocks until the allocator says no, then gives up as variants do. */
static int alloc_forever_forward(const struct attn_problem *p, const float *q, const float *k,
				 const float *v, float *out)
{
	void **held = NULL, **block;

	(void)p, (void)q, (void)k, (void)v, (void)out;
	while ((block = attn_alloc((size_t)16 << 20))) {
		*block = held;	/* a chain through the blocks, to free them */
		held = block;
	}
	while (held) {
		block = *held;
		attn_free(held);
		held = block;
	}
	return -ENOMEM;
}

static int nan_forward(const struct attn_problem *p, const float *q, const float *k,
		       const float *v, float *out)
{
	int ret = fault_exact(p, q, k, v, out);

	out[0] = NAN;
	return ret;
}

static int inf_forward(const struct attn_problem *p, const float *q, const float *k,
		       const float *v, float *out)
{
	int ret = fault_exact(p, q, k, v, out);

	out[fault_out_count(p) - 1] = INFINITY;
	return ret;
}

/* One float past the end: a loop bound off by one. */
static int overrun_near_forward(const struct attn_problem *p, const float *q, const float *k,
				const float *v, float *out)
{
	int ret = fault_exact(p, q, k, v, out);

	out[fault_out_count(p)] = 1;
	return ret;
}

/* 4096 floats past the end: a wrong stride. */
static int overrun_far_forward(const struct attn_problem *p, const float *q, const float *k,
			       const float *v, float *out)
{
	int ret = fault_exact(p, q, k, v, out);

	out[fault_out_count(p) + 4096] = 1;
	return ret;
}

/* One float before the start: an index computed as -1. */
static int underrun_forward(const struct attn_problem *p, const float *q, const float *k,
			    const float *v, float *out)
{
	int ret = fault_exact(p, q, k, v, out);

	out[-1] = 1;
	return ret;
}

/* Scales Q in place, as a variant that forgets its inputs are the caller's might. */
static int write_input_forward(const struct attn_problem *p, const float *q, const float *k,
			       const float *v, float *out)
{
	((float *)q)[0] *= 0.5f;
	return fault_exact(p, q, k, v, out);
}

/* Reads 1024 floats past the end of K: an out-of-range gather. */
static int read_far_forward(const struct attn_problem *p, const float *q, const float *k,
			    const float *v, float *out)
{
	size_t kv = (size_t)p->batch * p->kv_heads * p->m * p->d;
	volatile const float *far = k + kv + 1024;
	int ret = fault_exact(p, q, k, v, out);

	out[0] = *far;
	return ret;
}

/* Incremental decoding as vanilla's, so the decode task reaches the faulty forward too. */
static int fault_decode_init(const struct attn_problem *p, void **state)
{
	return variant_find("vanilla")->decode_init(p, state);
}

static int fault_decode_step(void *state, const float *q, const float *k, const float *v,
			     float *out)
{
	return variant_find("vanilla")->decode_step(state, q, k, v, out);
}

static void fault_decode_free(void *state)
{
	variant_find("vanilla")->decode_free(state);
}

#define FAULT_VARIANT(id, label, fn, what) \
	/* unused: a test may take a few of them */ \
	static const struct variant_ops id##_variant __attribute__((unused)) = { \
		.name = label, \
		.family = "test", \
		.summary = what, \
		.citation = "none", \
		.patterns = PATTERNS_ALL, \
		.forward = fn, \
		.decode_init = fault_decode_init, \
		.decode_step = fault_decode_step, \
		.decode_free = fault_decode_free, \
	}

FAULT_VARIANT(segv, "segv", segv_forward, "writes through a NULL pointer");
FAULT_VARIANT(abort, "abort", abort_forward, "calls abort()");
FAULT_VARIANT(hang, "hang", hang_forward, "sleeps for ever");
FAULT_VARIANT(alloc_forever, "alloc-forever", alloc_forever_forward,
	      "allocates workspace until none is left");
FAULT_VARIANT(nan, "nan", nan_forward, "exact, but O[0] is NaN");
FAULT_VARIANT(inf, "inf", inf_forward, "exact, but O's last value is infinite");
FAULT_VARIANT(overrun_near, "overrun-near", overrun_near_forward,
	      "exact, and writes one float past the end of O");
FAULT_VARIANT(overrun_far, "overrun-far", overrun_far_forward,
	      "exact, and writes 4096 floats past the end of O");
FAULT_VARIANT(underrun, "underrun", underrun_forward,
	      "exact, and writes one float before the start of O");
FAULT_VARIANT(write_input, "write-into-input", write_input_forward,
	      "halves Q[0] in place, then exact");
FAULT_VARIANT(read_far, "read-far", read_far_forward,
	      "exact, and reads 1024 floats past the end of K");

#endif
