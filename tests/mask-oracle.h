/*
 * mask-oracle.h - what the tests of mask-exact variants (sink, chunk, s2attn, power,
 * radial) share: the fp64 oracle under a mask given as a per-(h, i, j) predicate written
 * from the catalogue (vanilla's own mask among them), the walks that hold a variant to it
 * on awkward shapes, the check that a variant's declared spans hold exactly the keys the
 * predicate allows, the checks that keys a row may not see do not move it and that one it
 * sees does, the count of allowed pairs, comparison with another variant, the
 * declaration they share, decoding walks and the causality measure. Included after
 * variant-test.h.
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

/* The self-attention patterns, in the order the walks below take them. */
static const enum attn_pattern mask_self_patterns[] = { ATTN_NS, ATTN_CS };

/* Vanilla's own mask on self attention: every key in ns, every key j <= i in cs. */
static inline bool vanilla_allows(const struct attn_problem *p, int h, int i, int j)
{
	(void)h;
	return p->pattern != ATTN_CS || j <= i;
}

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
 * check_against_predicate() on n x n self attention, ns then cs, batch 2 and 4 query
 * heads; the case number *at picks d (dims in turn) and the KV heads (kv_choices, one
 * step per round of dims), *seed the draw; both advance per case.
 */
static inline void check_self_patterns_against_predicate(const struct variant_ops *v, int n,
							 const double *params,
							 mask_predicate allowed, int *at,
							 uint64_t *seed, const char *what)
{
	for (int pi = 0; pi < COUNT(mask_self_patterns); pi++, (*at)++) {
		int d = dims[*at % COUNT(dims)], kv = kv_choices[*at / COUNT(dims) % COUNT(kv_choices)];
		struct attn_problem p = problem(2, 4, kv, n, n, d, mask_self_patterns[pi], params);

		check_against_predicate(v, &p, allowed, (*seed)++, what);
	}
}

/*
 * check_against_predicate() on every awkward size n x n (sizes), ns then cs, every d of
 * dims, batch 2 and 4 query heads, the KV heads kv_choices[(x + size + setting) % 3] for
 * the x-th d; *seed advances per case.
 */
static inline void check_sizes_against_predicate(const struct variant_ops *v,
						 const double *params, int setting,
						 mask_predicate allowed, uint64_t *seed,
						 const char *what)
{
	for (int pi = 0; pi < COUNT(mask_self_patterns); pi++)
		for (int n = 0; n < COUNT(sizes); n++)
			for (int x = 0; x < COUNT(dims); x++) {
				int kv = kv_choices[(x + n + setting) % COUNT(kv_choices)];
				struct attn_problem p = problem(2, 4, kv, sizes[n], sizes[n], dims[x],
								mask_self_patterns[pi], params);

				check_against_predicate(v, &p, allowed, (*seed)++, what);
			}
}

/* What check_mask_is_predicate() asks of the spans beyond the interface. */
enum mask_span_rules {
	MASK_MERGED = 1 << 0,	/* a key lies between neighbours: touching spans are one */
};

/*
 * The keys the spans v->mask declares for row i of query head h hold, as flags over
 * [0, m) in seen. Fails unless the spans are ascending, disjoint, non-empty, inside
 * [0, m) and counted alike with no room, and, with MASK_MERGED in rules, no two touch.
 * Returns how many spans the row has.
 */
static inline int mask_row_flags(const struct variant_ops *v, const struct attn_problem *p,
				 int h, int i, unsigned int rules, bool *seen)
{
	/* non-empty and disjoint in [0, m): never more than m spans */
	struct key_span *spans = malloc(sizeof(*spans) * ((size_t)p->m + 1));
	int count, end = 0;

	assert_non_null(spans);
	count = v->mask(p, h, i, spans, p->m + 1);
	assert_int_equal(v->mask(p, h, i, NULL, 0), count);
	assert_true(count >= 0 && count <= p->m);
	memset(seen, 0, sizeof(bool) * p->m);
	for (int s = 0; s < count; s++) {
		assert_true(spans[s].lo >= end);
		if (rules & MASK_MERGED)
			assert_true(s == 0 || spans[s].lo > end);
		assert_true(spans[s].hi > spans[s].lo);
		end = spans[s].hi;
		assert_true(end <= p->m);
		for (int j = spans[s].lo; j < spans[s].hi; j++)
			seen[j] = true;
	}
	free(spans);
	return count;
}

/*
 * The spans v->mask declares for every (h, i) pass mask_row_flags() under rules and hold
 * exactly the keys j with allowed(p, h, i, j). Returns the most spans any row declared.
 */
static inline int check_mask_is_predicate(const struct variant_ops *v,
					  const struct attn_problem *p,
					  mask_predicate allowed, unsigned int rules)
{
	bool *seen = malloc(sizeof(bool) * ((size_t)p->m + 1));
	int most = 0;

	assert_non_null(seen);
	for (int h = 0; h < p->heads; h++)
		for (int i = 0; i < p->n; i++) {
			int count = mask_row_flags(v, p, h, i, rules, seen);

			most = count > most ? count : most;
			for (int j = 0; j < p->m; j++) {
				if (seen[j] != allowed(p, h, i, j))
					print_error("%s %s n=%d h=%d i=%d j=%d: spans %s, catalogue %s\n",
						    v->name, pattern_name(p->pattern), p->n, h, i, j,
						    seen[j] ? "keep" : "drop",
						    seen[j] ? "drops" : "keeps");
				assert_int_equal(seen[j], allowed(p, h, i, j));
			}
		}
	free(seen);
	return most;
}

/*
 * check_mask_is_predicate() on n x n self attention, ns and cs, batch 1, `heads` query
 * heads over one KV head, d = 8. Returns the most spans any row of either declared.
 */
static inline int check_self_masks_are_predicate(const struct variant_ops *v, int heads, int n,
						 const double *params, mask_predicate allowed,
						 unsigned int rules)
{
	int most = 0;

	for (int pi = 0; pi < COUNT(mask_self_patterns); pi++) {
		struct attn_problem p = problem(1, heads, 1, n, n, 8, mask_self_patterns[pi], params);
		int count = check_mask_is_predicate(v, &p, allowed, rules);

		most = count > most ? count : most;
	}
	return most;
}

/*
 * The keys allowed(p, h, i, j) allows over every row i of query head h (the pairs a
 * kernel computes for that head); *most, when not NULL, gets the most keys of one row.
 */
static inline double mask_pairs(const struct attn_problem *p, mask_predicate allowed, int h,
				long *most)
{
	double pairs = 0;
	long top = 0;

	for (int i = 0; i < p->n; i++) {
		long keys = 0;

		for (int j = 0; j < p->m; j++)
			keys += allowed(p, h, i, j);
		top = keys > top ? keys : top;
		pairs += keys;
	}
	if (most)
		*most = top;
	return pairs;
}

/*
 * Redraws K and V of key j in the KV head of query head h (batch 0): row `row` of head h
 * must move by more than rounding, i.e. it reads key j. Fresh inputs from seed.
 */
static inline void check_key_moves_row(const struct variant_ops *v, const struct attn_problem *p,
				       int h, int row, int j, uint64_t seed)
{
	struct tensors a, b;
	struct rng g = { seed + 2 };
	size_t kvo = problem_kv_offset(p, 0, h) + (size_t)j * p->d;
	size_t o = problem_q_offset(p, 0, h) + (size_t)row * p->d;

	tensors_make(&a, p, seed, 1.0);
	tensors_copy(&b, &a);
	fill_normal(&g, b.k + kvo, p->d, 3.0);
	fill_normal(&g, b.v + kvo, p->d, 3.0);
	run(v, p, &a);
	run(v, p, &b);
	/* far above fp32 rounding: the key is read, not merely near */
	assert_true(error_vs_float(b.o + o, a.o + o, p->d) > 1e-3);
	tensors_release(&a);
	tensors_release(&b);
}

/*
 * Perturbs the keys and values that row `row` of query head h may not see, in its KV head
 * and every batch: the row stays bit-identical in every batch. Then the last key it may
 * see (if any) must move it (check_key_moves_row()), so that the first half is not
 * passing for want of a change.
 */
static inline void check_hidden_keys_do_not_move(const struct variant_ops *v,
						 const struct attn_problem *p,
						 mask_predicate allowed, int h, int row,
						 uint64_t seed)
{
	struct tensors a, b;
	struct rng g = { seed + 1 };
	int hidden = 0, seen = -1;

	tensors_make(&a, p, seed, 1.0);
	tensors_copy(&b, &a);
	for (int bi = 0; bi < p->batch; bi++) {
		size_t kvo = problem_kv_offset(p, bi, h);

		for (int j = 0; j < p->m; j++) {
			if (allowed(p, h, row, j)) {
				seen = j;
				continue;
			}
			fill_normal(&g, b.k + kvo + (size_t)j * p->d, p->d, 3.0);
			fill_normal(&g, b.v + kvo + (size_t)j * p->d, p->d, 3.0);
			hidden++;
		}
	}
	assert_true(hidden > 0);
	run(v, p, &a);
	run(v, p, &b);
	for (int bi = 0; bi < p->batch; bi++) {
		size_t o = problem_q_offset(p, bi, h) + (size_t)row * p->d;

		assert_memory_equal(a.o + o, b.o + o, sizeof(float) * p->d);
	}
	tensors_release(&a);
	tensors_release(&b);
	if (seen >= 0)
		check_key_moves_row(v, p, h, row, seen, seed);
}

/*
 * Runs v on p and other on the same draw from seed, other with other_params (NULL: its
 * defaults); fails unless the outputs agree within tolerance (relative, all of O).
 */
static inline void check_matches_variant(const struct variant_ops *v, struct attn_problem p,
					 const struct variant_ops *other,
					 const double *other_params, uint64_t seed,
					 double tolerance)
{
	struct tensors a, b;

	tensors_make(&a, &p, seed, 1.0);
	tensors_copy(&b, &a);
	run(v, &p, &a);
	p.params = other_params;
	run(other, &p, &b);
	check_error(v, &p, error_vs_float(a.o, b.o, a.nq), tolerance, " against %s",
		    other->name);
	tensors_release(&a);
	tensors_release(&b);
}

/*
 * What a mask-exact variant on self attention declares: ns and cs, VARIANT_MASK_EXACT with
 * a mask, and every cross pattern refused (-ENOTSUP, on 16 x 24 with params).
 */
static inline void check_declares_a_self_mask(const struct variant_ops *v, const double *params)
{
	assert_true(v->patterns == (PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_CS)));
	assert_true(v->flags & VARIANT_MASK_EXACT);
	assert_non_null(v->mask);
	for (int pat = ATTN_NC; pat <= ATTN_CC; pat++) {
		struct attn_problem p = problem(1, 2, 2, 16, 24, 8, pat, params);

		assert_int_equal(variant_check_problem(v, &p), -ENOTSUP);
	}
}

/*
 * check_decode() in cs at n = 1, 17 and 63, batch 2 and 4 query heads, the KV heads and d
 * picked by setting + the length's index (kv_choices, dims); *seed advances per case.
 */
static inline void check_decode_at_short_lengths(const struct variant_ops *v,
						 const double *params, int setting,
						 uint64_t *seed)
{
	static const int lengths[] = { 1, 17, 63 };

	for (int li = 0; li < COUNT(lengths); li++) {
		int n = lengths[li], x = (setting + li) % 3;
		struct attn_problem p = problem(2, 4, kv_choices[x], n, n, dims[x], ATTN_CS,
						params);

		check_decode(v, &p, (*seed)++);
	}
}

/*
 * check_decode() in cs at n = 17, 63 and 130, batch 2 and 4 query heads: 2 KV heads and
 * d = 8 at 17 and 130, MQA and d = 64 at 63; *seed advances per case.
 */
static inline void check_decode_at_biting_lengths(const struct variant_ops *v,
						  const double *params, uint64_t *seed)
{
	static const int lengths[] = { 17, 63, 130 };

	for (int li = 0; li < COUNT(lengths); li++) {
		struct attn_problem p = problem(2, 4, li % 2 ? 1 : 2, lengths[li], lengths[li],
						li % 2 ? 64 : 8, ATTN_CS, params);

		check_decode(v, &p, (*seed)++);
	}
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
