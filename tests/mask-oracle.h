/*
 * mask-oracle.h - what the tests of mask-exact variants (sink, chunk, s2attn) share: the
 * fp64 oracle under a mask given as a per-(i, j) predicate written from the catalogue,
 * the check that a variant's declared spans hold exactly the keys the predicate allows,
 * the check that keys a row may not see do not move it, and the causality measure.
 * Included after variant-test.h.
 */
#ifndef ATTNBENCH_MASK_ORACLE_H
#define ATTNBENCH_MASK_ORACLE_H

#include "variant-test.h"

/* fp32 kernels against the fp64 oracle: the catalogue's bound for exact attention. */
#define MASK_TOLERANCE 1e-5
/* Rows the causal mask hides may move visible rows only by fp32 reordering (spec). */
#define MASK_CAUSAL_TOLERANCE 1e-5

/* Whether query row i of query head h may see key j: the catalogue's mask, as written. */
typedef bool (*mask_predicate)(const struct attn_problem *p, int h, int i, int j);

/*
 * out = softmax over the keys allowed(p, h, i, j) of s_ij = q_i.k_j / sqrt(d), times V,
 * all in double by plain loops over every (i, j); a row with no key gets 0.
 */
static inline void mask_oracle(const struct attn_problem *p, mask_predicate allowed,
			       const float *q, const float *k, const float *v, double *out)
{
	double *s = malloc(sizeof(double) * p->m), scale = 1 / sqrt((double)p->d);

	assert_non_null(s);
	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);

			for (int i = 0; i < p->n; i++) {
				const float *qi = q + qo + (size_t)i * p->d;
				double *o = out + qo + (size_t)i * p->d, max = -INFINITY, sum = 0;

				for (int j = 0; j < p->m; j++) {
					s[j] = -INFINITY;
					if (!allowed(p, h, i, j))
						continue;
					s[j] = 0;
					for (int c = 0; c < p->d; c++)
						s[j] += (double)qi[c] * k[kvo + (size_t)j * p->d + c];
					s[j] *= scale;
					max = fmax(max, s[j]);
				}
				for (int c = 0; c < p->d; c++)
					o[c] = 0;
				for (int j = 0; j < p->m; j++) {
					double e;

					if (s[j] == -INFINITY)
						continue;
					e = exp(s[j] - max);
					sum += e;
					for (int c = 0; c < p->d; c++)
						o[c] += e * v[kvo + (size_t)j * p->d + c];
				}
				for (int c = 0; c < p->d && sum > 0; c++)
					o[c] /= sum;
			}
		}
	free(s);
}

/* Runs v on a fresh draw and holds it to the oracle under allowed; what names the case. */
static inline void check_against_predicate(const struct variant_ops *v,
					   const struct attn_problem *p,
					   mask_predicate allowed, uint64_t seed,
					   const char *what)
{
	struct tensors t;
	double *ref = reference_make(&t, p, seed);

	mask_oracle(p, allowed, t.q, t.k, t.v, ref);
	check_output(v, p, &t, ref, MASK_TOLERANCE, " %s", what);
}

/*
 * The spans v->mask declares for every (h, i) are ascending, disjoint, non-empty, inside
 * [0, m), counted alike with no room, and hold exactly the keys j with allowed(p, h, i, j).
 */
static inline void check_mask_is_predicate(const struct variant_ops *v,
					   const struct attn_problem *p,
					   mask_predicate allowed)
{
	struct key_span spans[64];

	for (int h = 0; h < p->heads; h++)
		for (int i = 0; i < p->n; i++) {
			int count = v->mask(p, h, i, spans, COUNT(spans)), x = 0, end = 0;

			assert_int_equal(v->mask(p, h, i, NULL, 0), count);
			assert_true(count >= 0 && count <= COUNT(spans));
			for (int s = 0; s < count; s++) {
				assert_true(spans[s].lo >= end);
				assert_true(spans[s].hi > spans[s].lo);
				end = spans[s].hi;
			}
			assert_true(end <= p->m);
			for (int j = 0; j < p->m; j++) {
				bool in;

				while (x < count && spans[x].hi <= j)
					x++;
				in = x < count && spans[x].lo <= j;
				if (in != allowed(p, h, i, j))
					print_error("%s %s n=%d h=%d i=%d j=%d: spans %s, catalogue %s\n",
						    v->name, pattern_name(p->pattern), p->n, h, i, j,
						    in ? "keep" : "drop",
						    in ? "drops" : "keeps");
				assert_int_equal(in, allowed(p, h, i, j));
			}
		}
}

/*
 * Perturbs the keys and values that row `row` of query head h (batch 0) may not see, in
 * its KV head: the row stays bit-identical. Then perturbs one key it may see (if any):
 * the row must move, so that the first half is not passing for want of a change.
 */
static inline void check_hidden_keys_do_not_move(const struct variant_ops *v,
						 const struct attn_problem *p,
						 mask_predicate allowed, int h, int row,
						 uint64_t seed)
{
	struct tensors a, b;
	struct rng g = { seed + 1 };
	size_t kvo = problem_kv_offset(p, 0, h), o = problem_q_offset(p, 0, h) +
						     (size_t)row * p->d;
	int hidden = 0, seen = -1;

	tensors_make(&a, p, seed, 1.0);
	tensors_copy(&b, &a);
	for (int j = 0; j < p->m; j++) {
		if (allowed(p, h, row, j)) {
			seen = j;
			continue;
		}
		fill_normal(&g, b.k + kvo + (size_t)j * p->d, p->d, 3.0);
		fill_normal(&g, b.v + kvo + (size_t)j * p->d, p->d, 3.0);
		hidden++;
	}
	assert_true(hidden > 0);
	run(v, p, &a);
	run(v, p, &b);
	assert_memory_equal(a.o + o, b.o + o, sizeof(float) * p->d);
	if (seen >= 0) {
		fill_normal(&g, b.v + kvo + (size_t)seen * p->d, p->d, 3.0);
		run(v, p, &b);
		assert_true(error_vs_float(b.o + o, a.o + o, p->d) > 1e-3);
	}
	tensors_release(&a);
	tensors_release(&b);
}

/*
 * Causality by perturbation (cs): the largest relative change of rows <= t over the cuts
 * when Q, K, V rows after t are redrawn, forward() called directly (whatever the
 * parameters).
 */
static inline double causal_change(const struct variant_ops *v, const struct attn_problem *p,
				   uint64_t seed)
{
	static const int cuts[] = { 0, 3, 6, 20, 41 };
	double worst = 0;
	struct tensors a;

	tensors_make(&a, p, seed, 1.0);
	assert_int_equal(v->forward(p, a.q, a.k, a.v, a.o), 0);
	for (int ci = 0; ci < COUNT(cuts); ci++) {
		int t = cuts[ci];
		struct rng g = { seed + 7 * (uint64_t)t };
		struct tensors b;

		if (t >= p->n)
			continue;
		tensors_copy(&b, &a);
		perturb_rows_after(&g, b.q, (size_t)p->batch * p->heads, p->n, p->d, t);
		perturb_rows_after(&g, b.k, (size_t)p->batch * p->kv_heads, p->m, p->d, t);
		perturb_rows_after(&g, b.v, (size_t)p->batch * p->kv_heads, p->m, p->d, t);
		assert_int_equal(v->forward(p, b.q, b.k, b.v, b.o), 0);
		worst = fmax(worst, change_up_to(p, a.o, b.o, t));
		tensors_release(&b);
	}
	tensors_release(&a);
	return worst;
}

/* Fails unless cs rows <= t ignore every later row, for the cuts of causal_change(). */
static inline void check_causal(const struct variant_ops *v, const struct attn_problem *p,
				uint64_t seed)
{
	double change = causal_change(v, p, seed);

	if (!(change <= MASK_CAUSAL_TOLERANCE))
		print_error("%s n=%d: rows <= t moved by %g\n", v->name, p->n, change);
	assert_true(change <= MASK_CAUSAL_TOLERANCE);
}

#endif
