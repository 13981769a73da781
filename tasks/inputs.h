/*
 * inputs.h - what tasks share: a seeded random generator, input regimes that mimic real
 * attention heads, and comparison of an output against the double reference.
 */
#ifndef ATTNBENCH_INPUTS_H
#define ATTNBENCH_INPUTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensors.h"
#include "variant.h"

/* xoshiro256** seeded through splitmix64: fast, and the same stream on every machine. */
struct rng {
	uint64_t s[4];
};

void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
/* Uniform in [0, 1). */
double rng_uniform(struct rng *r);
/* Standard normal (the ziggurat). */
double rng_normal(struct rng *r);
/* count standard normals times scale into x: the fast way to draw many. */
void rng_normals(struct rng *r, float *x, size_t count, double scale);
/* Uniform integer in [0, n). */
uint64_t rng_below(struct rng *r, uint64_t n);

/* A random unit vector of d values. */
void random_unit(struct rng *r, float *x, int d);
/* Makes x (d values) a unit vector orthogonal to the unit vector dir. */
void orthogonal_unit(struct rng *r, float *x, const float *dir, int d);
/* Index of the code (count rows of d) with the largest dot product with o. */
int nearest_code(const float *o, const float *codes, int count, int d);
/* The variant's analytic state bytes for p, or a negative number when it has none. */
double problem_state_bytes(const struct variant_ops *v, const struct attn_problem *p);

/* The fidelity input regimes, NULL-terminated. */
extern const char *const input_regimes[];

/*
 * Fills q [batch][heads][n][d], k and v [batch][kv_heads][m][d] with the named regime,
 * deterministically from seed. Returns 0 or -EINVAL for an unknown regime.
 */
int inputs_generate(const char *regime, const struct attn_problem *p, uint64_t seed,
		    float *q, float *k, float *v);

/* Tensor sizes in floats. */
size_t problem_q_count(const struct attn_problem *p);
size_t problem_kv_count(const struct attn_problem *p);

struct output_error {
	double rel_err;		/* ||o - ref||_F / ||ref||_F (0 when both are 0) */
	/*
	 * RMS(o - ref) / RMS(v): the error on the scale of the values attended over, which
	 * a reference of tiny norm (rows whose values nearly cancel) cannot inflate as it
	 * does rel_err. 0 for an exact output; an output of zeros scores RMS(ref) / RMS(v),
	 * at most about 1. RMS(o - ref) alone when v is all zero or not given.
	 */
	double scaled_err;
	double cosine;		/* mean over rows of cos(o_i, ref_i); 1 for two zero rows */
	double max_abs_err;
	size_t nonfinite;	/* entries of o that are NaN or infinite */
};

/*
 * Index of the first NaN or infinity among x[0..n), or -1 when every value is finite:
 * the one finiteness scan of task outputs (see result_check_finite() in task.h).
 */
ptrdiff_t inputs_first_nonfinite(const float *x, size_t n);

/*
 * Compares o (float) against ref (double), rows of length d; v (nv floats, or NULL and 0)
 * are the values the rows attend over, the scale of scaled_err.
 */
void output_compare(const float *o, const double *ref, size_t rows, int d, const float *v,
		    size_t nv, struct output_error *e);

/*
 * Calls the variant once and measures its workspace: *peak_bytes is the allocator's peak
 * above the live bytes before the call. Returns what forward() returned.
 */
int forward_measured(const struct variant_ops *v, const struct attn_problem *p,
		     const float *q, const float *k, const float *v_in, float *out,
		     size_t *peak_bytes);

#endif
