/*
 * test-variants.c - every registered variant against the reference and the properties
 * all attention must have: causality, GQA, slice independence, determinism, finite
 * output; plus the registry, the reference itself, and the checks specific to flash
 * (tile sizes, workspace), local (window mask) and hip (block-causal at its defaults).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flash.h"
#include "memory.h"
#include "threads.h"
#include "variant.h"
#include "variant-test.h"

/* fp32 kernels against the fp64 oracle: the spec's bound for exact variants. */
#define EXACT_TOLERANCE 1e-5
/* Rows the causal mask hides may move visible rows only by fp32 reordering (spec). */
#define CAUSAL_TOLERANCE 1e-5
/* GQA reads the same numbers as MHA with repeated heads; allow only rounding noise. */
#define GQA_TOLERANCE 1e-6

static const enum attn_pattern self_patterns[] = { ATTN_NS, ATTN_CS };


/* Runs v on a fresh draw and compares with the fp64 oracle. */
static void check_against_reference(const struct variant_ops *v, const struct attn_problem *p,
				    uint64_t seed)
{
	struct tensors t;
	double *ref = reference_make(&t, p, seed);

	reference_attention(p, t.q, t.k, t.v, ref);
	check_output(v, p, &t, ref, EXACT_TOLERANCE, "%s", "");
}

static bool supports(const struct variant_ops *v, enum attn_pattern pattern)
{
	return v->patterns & PATTERN_BIT(pattern);
}

/* ---- the registry ---- */

static void test_the_registry_finds_every_variant_by_name(void **state)
{
	(void)state;
	assert_true(variant_count() >= 3);
	for (int i = 0; i < variant_count(); i++) {
		const struct variant_ops *v = variant_at(i);

		assert_non_null(v);
		assert_non_null(v->name);
		assert_non_null(v->family);
		assert_non_null(v->summary);
		assert_non_null(v->citation);
		assert_non_null(v->forward);
		assert_true(v->patterns != 0);
		assert_true((v->patterns & ~PATTERNS_ALL) == 0);
		assert_true(v->n_params >= 0 && v->n_params <= VARIANT_MAX_PARAMS);
		assert_ptr_equal(variant_find(v->name), v);
		/* a block-causal variant names the integer block size that is strict at 1 */
		if (v->flags & VARIANT_BLOCK_CAUSAL) {
			int at = variant_param_index(v, v->strict_causal_param);

			assert_true(at >= 0);
			assert_true(v->params[at].integer && v->params[at].min <= 1);
		} else {
			assert_null(v->strict_causal_param);
		}
		for (int j = 0; j < i; j++)
			assert_string_not_equal(variant_at(j)->name, v->name);
	}
	assert_null(variant_find("no-such-variant"));
	assert_null(variant_at(-1));
	assert_null(variant_at(variant_count()));
	assert_non_null(variant_find("vanilla"));
	assert_non_null(variant_find("flash"));
	assert_non_null(variant_find("local"));
}

static void test_declared_parameters_are_found_and_defaulted(void **state)
{
	const struct variant_ops *flash = variant_find("flash");
	const struct variant_ops *local = variant_find("local");
	double values[VARIANT_MAX_PARAMS];

	(void)state;
	for (int i = 0; i < variant_count(); i++) {
		const struct variant_ops *v = variant_at(i);

		variant_default_params(v, values);
		for (int j = 0; j < v->n_params; j++) {
			const struct variant_param *decl = &v->params[j];

			assert_int_equal(variant_param_index(v, decl->name), j);
			assert_true(values[j] == decl->def);
			assert_true(decl->min <= decl->def && decl->def <= decl->max);
			assert_non_null(decl->help);
		}
		assert_int_equal(variant_param_index(v, "no-such-param"), -1);
	}
	assert_int_equal(variant_param_index(flash, "block_q"), 0);
	assert_int_equal(variant_param_index(flash, "block_k"), 1);
	assert_int_equal(variant_param_index(local, "window"), 0);
	variant_default_params(local, values);
	assert_true(values[0] == 15);
}

static void test_pattern_names_round_trip(void **state)
{
	(void)state;
	for (int p = 0; p < ATTN_PATTERN_COUNT; p++)
		assert_int_equal(pattern_parse(pattern_name(p)), p);
	assert_string_equal(pattern_name(ATTN_NS), "ns");
	assert_string_equal(pattern_name(ATTN_CS), "cs");
	assert_string_equal(pattern_name(ATTN_NC), "nc");
	assert_string_equal(pattern_name(ATTN_CC), "cc");
	assert_int_equal(pattern_parse("xx"), -1);
	assert_int_equal(pattern_parse(""), -1);
	assert_true(pattern_is_self(ATTN_NS) && pattern_is_self(ATTN_CS));
	assert_false(pattern_is_self(ATTN_NC) || pattern_is_self(ATTN_CC));
	assert_true(pattern_is_causal(ATTN_CS) && pattern_is_causal(ATTN_CC));
	assert_false(pattern_is_causal(ATTN_NS) || pattern_is_causal(ATTN_NC));
}

static void test_malformed_problems_are_rejected(void **state)
{
	const struct variant_ops *v = variant_find("vanilla");
	const struct variant_ops *flash = variant_find("flash");
	struct attn_problem p = problem(1, 4, 2, 8, 8, 16, ATTN_NS, NULL);
	double bad[2] = { 0, 64 }, half[2] = { 1.5, 64 }, good[2] = { 1, 65536 };

	(void)state;
	assert_int_equal(variant_check_problem(v, &p), 0);
	p.batch = 0;
	assert_int_equal(variant_check_problem(v, &p), -EINVAL);
	p = problem(1, 0, 1, 8, 8, 16, ATTN_NS, NULL);
	assert_int_equal(variant_check_problem(v, &p), -EINVAL);
	p = problem(1, 4, 0, 8, 8, 16, ATTN_NS, NULL);
	assert_int_equal(variant_check_problem(v, &p), -EINVAL);
	p = problem(1, 4, 3, 8, 8, 16, ATTN_NS, NULL);
	assert_int_equal(variant_check_problem(v, &p), -EINVAL);
	p = problem(1, 4, 4, -1, -1, 16, ATTN_NS, NULL);
	assert_int_equal(variant_check_problem(v, &p), -EINVAL);
	p = problem(1, 4, 4, 8, 8, 0, ATTN_NS, NULL);
	assert_int_equal(variant_check_problem(v, &p), -EINVAL);
	p = problem(1, 4, 4, 8, 9, 16, ATTN_NS, NULL);
	assert_int_equal(variant_check_problem(v, &p), -EINVAL);
	p = problem(1, 4, 4, 8, 9, 16, ATTN_CS, NULL);
	assert_int_equal(variant_check_problem(v, &p), -EINVAL);
	p = problem(1, 4, 4, 8, 9, 16, ATTN_NC, NULL);
	assert_int_equal(variant_check_problem(v, &p), 0);
	p = problem(1, 4, 4, 8, 9, 16, ATTN_CC, NULL);
	assert_int_equal(variant_check_problem(v, &p), 0);
	p = problem(1, 4, 4, 8, 8, 16, ATTN_NS, bad);
	assert_int_equal(variant_check_problem(flash, &p), -EINVAL);
	p.params = half;
	assert_int_equal(variant_check_problem(flash, &p), -EINVAL);
	p.params = good;
	assert_int_equal(variant_check_problem(flash, &p), 0);
}

static void test_unsupported_patterns_are_refused(void **state)
{
	double params[VARIANT_MAX_PARAMS];
	int refused = 0;

	(void)state;
	for (int i = 0; i < variant_count(); i++) {
		const struct variant_ops *v = variant_at(i);

		variant_default_params(v, params);
		for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
			int m = pattern_is_self(pat) ? 16 : 24;
			struct attn_problem p = problem(1, 2, 2, 16, m, 8, pat, params);
			int ret = variant_check_problem(v, &p);

			if (supports(v, pat)) {
				assert_int_equal(ret, 0);
			} else {
				assert_int_equal(ret, -ENOTSUP);
				refused++;
			}
		}
	}
	/* local refuses both cross patterns. */
	assert_true(refused >= 2);
	assert_false(supports(variant_find("local"), ATTN_NC));
	assert_false(supports(variant_find("local"), ATTN_CC));
}

/* ---- the reference ---- */

/*
 * d = 4, so scores are q.k / 2. Keys k0 = 0 and k1 = (2 ln 3, 0, 0, 0); values
 * v0 = (4, 0, 0, 0), v1 = (0, 8, 0, 0).
 *   Query (1, 0, 0, 0): scores 0 and ln 3, weights 1/4 and 3/4, output (1, 6, 0, 0).
 *   Query 0: scores 0 and 0, weights 1/2 each, output (2, 4, 0, 0).
 * In cs, row 0 sees only key 0 and outputs v0 = (4, 0, 0, 0) whatever its query.
 */
static void test_the_reference_matches_a_hand_worked_case(void **state)
{
	float q[2][4] = { { 0, 0, 0, 0 }, { 1, 0, 0, 0 } };
	float k[2][4] = { { 0, 0, 0, 0 }, { (float)(2 * log(3.0)), 0, 0, 0 } };
	float v[2][4] = { { 4, 0, 0, 0 }, { 0, 8, 0, 0 } };
	double out[2][4];
	struct attn_problem p = problem(1, 1, 1, 2, 2, 4, ATTN_NS, NULL);
	/* 2 ln 3 rounded to float moves the weights by about 1e-8. */
	const double tol = 1e-6;

	(void)state;
	reference_attention(&p, &q[0][0], &k[0][0], &v[0][0], &out[0][0]);
	assert_float_equal(out[0][0], 2, tol);
	assert_float_equal(out[0][1], 4, tol);
	assert_float_equal(out[1][0], 1, tol);
	assert_float_equal(out[1][1], 6, tol);
	assert_float_equal(out[1][2], 0, tol);
	assert_float_equal(out[1][3], 0, tol);

	p.pattern = ATTN_CS;
	q[0][0] = 5;
	reference_attention(&p, &q[0][0], &k[0][0], &v[0][0], &out[0][0]);
	assert_float_equal(out[0][0], 4, tol);
	assert_float_equal(out[0][1], 0, tol);
	assert_float_equal(out[1][0], 1, tol);
	assert_float_equal(out[1][1], 6, tol);

	/* cc: every key visible, as ns; rows are independent. */
	p.pattern = ATTN_CC;
	p.n = 1;
	reference_attention(&p, &q[1][0], &k[0][0], &v[0][0], &out[0][0]);
	assert_float_equal(out[0][0], 1, tol);
	assert_float_equal(out[0][1], 6, tol);
}

/* Query head h reads KV head h / (heads / kv_heads). */
static void test_the_reference_maps_query_heads_to_kv_heads(void **state)
{
	/* heads 4, kv 2, n = m = 1, d = 1: each output is its KV head's single value. */
	float q[4] = { 1, 2, 3, 4 }, k[2] = { 1, 1 }, v[2] = { 10, 20 };
	double out[4];
	struct attn_problem p = problem(1, 4, 2, 1, 1, 1, ATTN_NS, NULL);

	(void)state;
	reference_attention(&p, q, k, v, out);
	assert_true(out[0] == 10 && out[1] == 10 && out[2] == 20 && out[3] == 20);
}

/* ---- every exact variant ---- */

/* Every shape of the grid for one variant and pattern: self n = m, cross n != m. */
static int check_pattern_against_reference(const struct variant_ops *v,
					   enum attn_pattern pattern, const double *params,
					   uint64_t *seed)
{
	struct shape_walk w = { 0 };
	struct attn_problem p;
	int checked = 0;

	while (shape_walk_next(&w, pattern, params, &p)) {
		check_against_reference(v, &p, (*seed)++);
		checked++;
	}
	return checked;
}

static void test_every_exact_variant_matches_the_reference(void **state)
{
	double params[VARIANT_MAX_PARAMS];
	uint64_t seed = SEED;
	int checked = 0;

	(void)state;
	for (int i = 0; i < variant_count(); i++) {
		const struct variant_ops *v = variant_at(i);

		if (!(v->flags & VARIANT_EXACT))
			continue;
		variant_default_params(v, params);
		for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++)
			if (supports(v, pat))
				checked += check_pattern_against_reference(v, pat, params, &seed);
	}
	assert_true(checked > 0);
}

/* ---- masks: the declared mask, and the oracle under it ---- */

/* Every key the pattern lets row i see: the plain oracle's mask, declared as spans. */
static int pattern_mask(const struct attn_problem *p, int h, int i, struct key_span *spans,
			int max)
{
	(void)h;
	if (max >= 1)
		spans[0] = (struct key_span){ 0, p->pattern == ATTN_CS ? i + 1 : p->m };
	return 1;
}

/* Under the pattern's own mask the masked oracle is the oracle: the same numbers. */
static void test_the_masked_reference_under_the_pattern_mask_is_the_reference(void **state)
{
	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		struct attn_problem p = pattern_is_self(pat) ? problem(2, 4, 2, 63, 63, 12, pat, NULL) :
							       problem(2, 4, 2, 17, 63, 12, pat, NULL);
		size_t count = (size_t)p.batch * p.heads * p.n * p.d;
		double *masked = malloc(sizeof(double) * count);
		struct tensors t;
		double *ref = reference_make(&t, &p, SEED + pat);

		assert_non_null(masked);
		reference_attention(&p, t.q, t.k, t.v, ref);
		assert_int_equal(reference_attention_masked(&p, pattern_mask, t.q, t.k, t.v, masked),
				 0);
		for (size_t x = 0; x < count; x++)
			assert_true(fabs(masked[x] - ref[x]) <= 1e-12 * (1 + fabs(ref[x])));
		free(masked);
		free(ref);
		tensors_release(&t);
	}
}

/*
 * Every declared mask is well formed on every shape: spans ascending, disjoint and
 * non-empty inside [0, m), none past row i in cs, and the same count asked with no room.
 */
static void check_mask_shape(const struct variant_ops *v, const struct attn_problem *p)
{
	struct key_span spans[4096];

	for (int h = 0; h < p->heads; h++)
		for (int i = 0; i < p->n; i++) {
			int count = v->mask(p, h, i, spans, 4096), end = 0;

			assert_int_equal(v->mask(p, h, i, NULL, 0), count);
			assert_true(count >= 0 && count <= 4096);
			for (int x = 0; x < count; x++) {
				assert_true(spans[x].lo >= end);
				assert_true(spans[x].hi > spans[x].lo);
				end = spans[x].hi;
			}
			assert_true(end <= (p->pattern == ATTN_CS ? i + 1 : p->m));
		}
}

/*
 * Every mask-exact variant declares its mask, is well formed, and equals the fp64
 * oracle restricted to that mask, at its defaults, on the awkward shapes.
 */
static void test_every_mask_exact_variant_matches_the_reference_under_its_mask(void **state)
{
	double params[VARIANT_MAX_PARAMS];
	uint64_t seed = SEED;
	int checked = 0;

	(void)state;
	for (int i = 0; i < variant_count(); i++) {
		const struct variant_ops *v = variant_at(i);

		assert_int_equal(!!(v->flags & VARIANT_MASK_EXACT), v->mask != NULL);
		if (!v->mask)
			continue;
		variant_default_params(v, params);
		for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
			struct shape_walk w = { 0 };
			struct attn_problem p;

			if (!supports(v, pat))
				continue;
			while (shape_walk_next(&w, pat, params, &p)) {
				struct tensors t;
				double *ref = reference_make(&t, &p, seed++);

				check_mask_shape(v, &p);
				assert_int_equal(reference_attention_masked(&p, v->mask, t.q, t.k,
									    t.v, ref), 0);
				check_output(v, &p, &t, ref, EXACT_TOLERANCE, "%s", " under its mask");
				checked++;
			}
		}
	}
	assert_true(checked > 0);
}

/* ---- flash ---- */

static void test_flash_matches_the_reference_for_every_tile_size(void **state)
{
	const struct variant_ops *v = variant_find("flash");
	/* 1, an odd size, a power of two, and more than any sequence here. */
	static const int blocks[] = { 1, 7, 64, 300 };
	static const int shapes[][2] = { { 17, 17 }, { 257, 257 }, { 63, 17 }, { 17, 257 } };
	uint64_t seed = SEED + 1000;

	(void)state;
	assert_non_null(v);
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		for (int s = 0; s < COUNT(shapes); s++) {
			int n = shapes[s][0], m = shapes[s][1];

			if (pattern_is_self(pat) != (n == m))
				continue;
			for (int tile = 0; tile < COUNT(blocks) * COUNT(blocks); tile++) {
				double params[2] = {
					blocks[tile / COUNT(blocks)],
					blocks[tile % COUNT(blocks)],
				};

				for (int di = 0; di < COUNT(dims); di++) {
					struct attn_problem p = problem(1, 2, 1, n, m, dims[di],
									pat, params);

					check_against_reference(v, &p, seed++);
				}
			}
		}
	}
}

/* Tiles are sized by block_q and block_k, never by the sequence. */
static void test_flash_workspace_does_not_grow_with_the_sequence(void **state)
{
	const struct variant_ops *v = variant_find("flash");
	double params[2] = { 64, 64 };
	size_t peak[2];
	int lengths[2] = { 128, 1024 };

	(void)state;
	for (int i = 0; i < 2; i++) {
		struct attn_problem p = problem(1, 2, 2, lengths[i], lengths[i], 64, ATTN_NS,
						params);
		struct tensors t;
		size_t before;

		tensors_make(&t, &p, SEED, 1.0);
		before = memory_live_bytes();
		memory_reset_peak();
		run(v, &p, &t);
		peak[i] = memory_peak_bytes() - before;
		tensors_release(&t);
	}
	assert_true(peak[0] > 0);
	assert_int_equal(peak[0], peak[1]);
	/* Far below one n x m score matrix at the longer length. */
	assert_true(peak[1] < sizeof(float) * 1024 * 1024 / 4);
}

/* The vanilla score matrix is what makes it O(n m) in memory; the peak shows it. */
static void test_vanilla_workspace_holds_the_score_matrix(void **state)
{
	const struct variant_ops *v = variant_find("vanilla");
	struct attn_problem p = problem(1, 2, 2, 100, 100, 16, ATTN_NS, NULL);
	struct tensors t;
	size_t before;

	(void)state;
	tensors_make(&t, &p, SEED, 1.0);
	before = memory_live_bytes();
	memory_reset_peak();
	run(v, &p, &t);
	assert_true(memory_peak_bytes() - before >= sizeof(float) * 100 * 100);
	tensors_release(&t);
}

/* ---- local ---- */

static bool local_allows(enum attn_pattern pattern, int w, int i, int j)
{
	if (pattern == ATTN_CS)
		return j <= i && i - j < w;
	return abs(i - j) <= w;
}

/* One row of the window mask written out directly, in double; s has m entries. */
static void local_reference_row(const struct attn_problem *p, int w, int i, const float *q,
				const float *k, const float *v, double *s, double *out)
{
	double scale = 1 / sqrt((double)p->d), max = -INFINITY, sum = 0;

	for (int j = 0; j < p->m; j++) {
		s[j] = -INFINITY;
		if (!local_allows(p->pattern, w, i, j))
			continue;
		s[j] = 0;
		for (int c = 0; c < p->d; c++)
			s[j] += (double)q[c] * k[(size_t)j * p->d + c];
		s[j] *= scale;
		max = fmax(max, s[j]);
	}
	for (int c = 0; c < p->d; c++)
		out[c] = 0;
	for (int j = 0; j < p->m; j++) {
		double e;

		if (s[j] == -INFINITY)
			continue;
		e = exp(s[j] - max);
		sum += e;
		for (int c = 0; c < p->d; c++)
			out[c] += e * v[(size_t)j * p->d + c];
	}
	for (int c = 0; c < p->d && sum > 0; c++)
		out[c] /= sum;
}

static void local_reference(const struct attn_problem *p, int w, const float *q,
			    const float *k, const float *v, double *out)
{
	double *s = malloc(sizeof(double) * p->m);

	assert_non_null(s);
	for (int b = 0; b < p->batch; b++) {
		for (int h = 0; h < p->heads; h++) {
			size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);

			for (int i = 0; i < p->n; i++)
				local_reference_row(p, w, i, q + qo + (size_t)i * p->d, k + kvo,
						    v + kvo, s, out + qo + (size_t)i * p->d);
		}
	}
	free(s);
}

static void check_local(const struct attn_problem *p, int w, uint64_t seed)
{
	const struct variant_ops *v = variant_find("local");
	struct tensors t;
	double *ref, err;

	tensors_make(&t, p, seed, 1.0);
	ref = malloc(sizeof(double) * t.nq);
	assert_non_null(ref);
	local_reference(p, w, t.q, t.k, t.v, ref);
	run(v, p, &t);
	err = error_vs_double(t.o, ref, t.nq);
	if (!(err <= EXACT_TOLERANCE))
		print_error("local %s w=%d n=%d d=%d: error %g\n", pattern_name(p->pattern), w,
			    p->n, p->d, err);
	assert_true(err <= EXACT_TOLERANCE);
	free(ref);
	tensors_release(&t);
}

static void test_local_matches_an_independent_window_reference(void **state)
{
	static const int windows[] = { 1, 2, 5, 15, 300 };
	uint64_t seed = SEED + 2000;

	(void)state;
	assert_non_null(variant_find("local"));
	for (int pi = 0; pi < COUNT(self_patterns); pi++) {
		enum attn_pattern pat = self_patterns[pi];

		for (int wi = 0; wi < COUNT(windows); wi++) {
			for (int si = 0; si < COUNT(sizes); si++) {
				for (int di = 0; di < COUNT(dims); di++) {
					int kv = kv_choices[(si + di) % COUNT(kv_choices)];
					double params[1] = { windows[wi] };
					struct attn_problem p = problem(2, 4, kv, sizes[si],
									sizes[si], dims[di],
									pat, params);

					check_local(&p, windows[wi], seed++);
				}
			}
		}
	}
}

/* ns with w >= n - 1 and cs with w >= n see every key vanilla sees. */
static void test_local_with_a_whole_sequence_window_equals_vanilla(void **state)
{
	const struct variant_ops *local = variant_find("local");
	const struct variant_ops *vanilla = variant_find("vanilla");

	(void)state;
	for (int si = 0; si < COUNT(sizes); si++)
		for (int pi = 0; pi < COUNT(self_patterns); pi++) {
			enum attn_pattern pat = self_patterns[pi];
			int n = sizes[si];
			double params[1] = { pat == ATTN_CS ? n : (n > 1 ? n - 1 : 1) };
			struct attn_problem p = problem(2, 4, 2, n, n, 64, pat, params);
			struct tensors a, b;
			double err;

			tensors_make(&a, &p, SEED + si, 1.0);
			tensors_copy(&b, &a);
			run(local, &p, &a);
			p.params = NULL;
			run(vanilla, &p, &b);
			err = error_vs_float(a.o, b.o, a.nq);
			assert_true(err <= EXACT_TOLERANCE);
			tensors_release(&a);
			tensors_release(&b);
		}
}

/* Keys and values outside row i's window are never read for row i. */
static void test_local_ignores_keys_outside_the_window(void **state)
{
	const struct variant_ops *v = variant_find("local");
	const int n = 63, w = 5, d = 16, row = 30;

	(void)state;
	for (int pi = 0; pi < COUNT(self_patterns); pi++) {
		enum attn_pattern pat = self_patterns[pi];
		double params[1] = { w };
		struct attn_problem p = problem(1, 1, 1, n, n, d, pat, params);
		struct tensors a, b;
		struct rng g = { SEED };

		tensors_make(&a, &p, SEED, 1.0);
		tensors_copy(&b, &a);
		for (int j = 0; j < n; j++) {
			if (local_allows(pat, w, row, j))
				continue;
			fill_normal(&g, b.k + (size_t)j * d, d, 3.0);
			fill_normal(&g, b.v + (size_t)j * d, d, 3.0);
		}
		run(v, &p, &a);
		run(v, &p, &b);
		assert_memory_equal(a.o + (size_t)row * d, b.o + (size_t)row * d,
				    sizeof(float) * d);
		tensors_release(&a);
		tensors_release(&b);
	}
}

/* ---- properties every variant must have ---- */

/*
 * At its defaults at these sizes (N <= 257) a windowed or selecting variant keeps every
 * key and is vanilla, which proves little; a second setting per such variant makes the
 * generic checks bite: windows, blocks, selections and groups smaller than the shapes.
 */
static const struct {
	const char *variant, *param;
	double value;
} biting[] = {
	{ "local", "window", 3 },
	{ "sink", "sinks", 2 }, { "sink", "window", 8 },
	{ "topk", "k", 5 },
	{ "chunk", "size", 7 },
	{ "landmark", "block", 8 }, { "landmark", "topk", 2 },
	{ "power", "block", 4 }, { "power", "local", 2 },
	{ "hip", "k", 8 }, { "hip", "block_k", 2 }, { "hip", "block_q", 4 },
	{ "sea", "bin", 4 }, { "sea", "select", 2 },
	{ "cca", "group", 4 }, { "cca", "window", 8 },
	{ "s2attn", "group", 6 }, { "s2attn", "sinks", 2 },
	{ "based", "window", 8 },
	{ "lightning", "block", 7 },
	{ "agent", "agents", 5 },
};

/*
 * Fills params with setting s of v (0: its defaults, 1: defaults and its biting values)
 * and returns true; false when v has no such setting.
 */
static bool variant_setting(const struct variant_ops *v, int s, double *params)
{
	bool bites = false;

	variant_default_params(v, params);
	for (int b = 0; b < COUNT(biting) && s == 1; b++)
		if (!strcmp(biting[b].variant, v->name)) {
			int at = variant_param_index(v, biting[b].param);

			assert_true(at >= 0);
			params[at] = biting[b].value;
			bites = true;
		}
	return s == 0 || bites;
}

/* One perturbation at cut t: rows <= t of the output must stay within tolerance. */
static void check_cut(const struct variant_ops *v, const struct attn_problem *p,
		      const struct tensors *a, int t)
{
	struct tensors b;
	struct rng g = { SEED + 7 * (uint64_t)t };
	double change;

	tensors_copy(&b, a);
	perturb_rows_after(&g, b.q, (size_t)p->batch * p->heads, p->n, p->d, t);
	if (p->pattern == ATTN_CS) {
		perturb_rows_after(&g, b.k, (size_t)p->batch * p->kv_heads, p->m, p->d, t);
		perturb_rows_after(&g, b.v, (size_t)p->batch * p->kv_heads, p->m, p->d, t);
	}
	run(v, p, &b);
	change = change_up_to(p, a->o, b.o, t);
	if (!(change <= CAUSAL_TOLERANCE))
		print_error("%s %s t=%d: rows <= t moved by %g\n", v->name,
			    pattern_name(p->pattern), t, change);
	assert_true(change <= CAUSAL_TOLERANCE);
	tensors_release(&b);
}

/*
 * cs: changing Q, K, V rows after t must not move rows <= t. cc: all keys stay visible,
 * so only Q rows after t change.
 */
static void check_ignores_later_rows(const struct variant_ops *v, enum attn_pattern pattern,
				     const double *params)
{
	static const int cuts[] = { 0, 6, 20, 41 };
	struct attn_problem p = problem(2, 4, 2, 63, pattern == ATTN_CS ? 63 : 40, 16,
					pattern, params);
	struct tensors a;

	tensors_make(&a, &p, SEED + pattern, 1.0);
	run(v, &p, &a);
	for (int ci = 0; ci < COUNT(cuts); ci++)
		check_cut(v, &p, &a, cuts[ci]);
	tensors_release(&a);
}

/*
 * Every variant in each of its settings, a block-causal one (VARIANT_BLOCK_CAUSAL) at its
 * strict setting: rows <= t ignore every later row.
 */
static void test_every_causal_variant_ignores_later_rows(void **state)
{
	static const enum attn_pattern causal[] = { ATTN_CS, ATTN_CC };
	double params[VARIANT_MAX_PARAMS];
	int checked = 0;

	(void)state;
	for (int i = 0; i < variant_count(); i++) {
		const struct variant_ops *v = variant_at(i);

		for (int s = 0; variant_setting(v, s, params); s++) {
			variant_strict_causal_params(v, params);
			for (int pi = 0; pi < COUNT(causal); pi++) {
				if (!supports(v, causal[pi]))
					continue;
				check_ignores_later_rows(v, causal[pi], params);
				checked++;
			}
		}
	}
	assert_true(checked > 0);
}

/*
 * hip at its defaults (b_q = 32) on a sequence past k = 512 keys, where its search runs:
 * rows after t inside t's query block move rows <= t, which is why it is declared
 * VARIANT_BLOCK_CAUSAL; rows after the block do not; with hip.block_q = 1 neither does.
 */
static void test_hip_at_its_defaults_leaks_inside_a_query_block_only(void **state)
{
	const struct variant_ops *v = variant_find("hip");
	double params[VARIANT_MAX_PARAMS];
	/* 1200 rows: blocks of 32 from row 512 on search; t = 1000 in block [992, 1024) */
	struct attn_problem p = problem(1, 2, 1, 1200, 1200, 16, ATTN_CS, params);
	struct tensors a, b;
	struct rng g = { SEED + 11 };
	int t = 1000, block_end = 1023, strict;

	(void)state;
	assert_non_null(v);
	assert_true(v->flags & VARIANT_BLOCK_CAUSAL);
	variant_default_params(v, params);
	assert_true(params[variant_param_index(v, v->strict_causal_param)] == 32);
	tensors_make(&a, &p, SEED, 1.0);
	run(v, &p, &a);

	tensors_copy(&b, &a);
	perturb_rows_after(&g, b.q, 2, p.n, p.d, t);
	perturb_rows_after(&g, b.k, 1, p.m, p.d, t);
	perturb_rows_after(&g, b.v, 1, p.m, p.d, t);
	run(v, &p, &b);
	/* a changed selection moves a row by far more than rounding */
	assert_true(change_up_to(&p, a.o, b.o, t) > 1e-3);
	tensors_release(&b);

	tensors_copy(&b, &a);
	perturb_rows_after(&g, b.q, 2, p.n, p.d, block_end);
	perturb_rows_after(&g, b.k, 1, p.m, p.d, block_end);
	perturb_rows_after(&g, b.v, 1, p.m, p.d, block_end);
	run(v, &p, &b);
	assert_true(change_up_to(&p, a.o, b.o, block_end) <= CAUSAL_TOLERANCE);
	tensors_release(&b);

	strict = variant_strict_causal_params(v, params);
	assert_int_equal(strict, variant_param_index(v, "block_q"));
	assert_true(params[strict] == 1);
	run(v, &p, &a);
	tensors_copy(&b, &a);
	perturb_rows_after(&g, b.q, 2, p.n, p.d, t);
	perturb_rows_after(&g, b.k, 1, p.m, p.d, t);
	perturb_rows_after(&g, b.v, 1, p.m, p.d, t);
	run(v, &p, &b);
	assert_true(change_up_to(&p, a.o, b.o, t) <= CAUSAL_TOLERANCE);
	tensors_release(&b);
	tensors_release(&a);
}

/* Small tiles, so the cut falls inside, on and between tiles that get skipped. */
static void test_flash_with_small_tiles_ignores_later_rows(void **state)
{
	static const double tiles[][2] = { { 7, 5 }, { 5, 7 }, { 1, 16 }, { 16, 1 } };

	(void)state;
	for (int i = 0; i < COUNT(tiles); i++) {
		check_ignores_later_rows(variant_find("flash"), ATTN_CS, tiles[i]);
		check_ignores_later_rows(variant_find("flash"), ATTN_CC, tiles[i]);
	}
}

/* Every entry of the biting table names a registered variant and one of its parameters. */
static void test_every_biting_setting_names_a_declared_parameter(void **state)
{
	(void)state;
	for (int b = 0; b < COUNT(biting); b++) {
		const struct variant_ops *v = variant_find(biting[b].variant);

		assert_non_null(v);
		assert_true(variant_param_index(v, biting[b].param) >= 0);
	}
}

/*
 * Runs check on every registered variant, in each of its settings, for each pattern
 * it supports.
 */
static void for_each_supported_pattern(void (*check)(const struct variant_ops *v,
						     enum attn_pattern pat, const double *params))
{
	double params[VARIANT_MAX_PARAMS];

	for (int i = 0; i < variant_count(); i++) {
		const struct variant_ops *v = variant_at(i);

		for (int s = 0; variant_setting(v, s, params); s++)
			for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++)
				if (supports(v, pat))
					check(v, pat, params);
	}
}

static void check_gqa_as_mha(const struct variant_ops *v, enum attn_pattern pat,
			     const double *params)
{
	for (int kv = 1; kv <= 2; kv++) {
		int m = pattern_is_self(pat) ? 33 : 20;
		struct attn_problem gqa = problem(2, 4, kv, 33, m, 16, pat, params);
		struct attn_problem mha = problem(2, 4, 4, 33, m, 16, pat, params);
		struct tensors g, h;
		size_t slice = (size_t)m * 16;
		double err;

		tensors_make(&g, &gqa, SEED + kv, 1.0);
		tensors_make(&h, &mha, SEED, 1.0);
		memcpy(h.q, g.q, sizeof(float) * g.nq);
		for (int b = 0; b < 2; b++)
			for (int hd = 0; hd < 4; hd++) {
				size_t from = problem_kv_offset(&gqa, b, hd);
				size_t to = problem_kv_offset(&mha, b, hd);

				memcpy(h.k + to, g.k + from, sizeof(float) * slice);
				memcpy(h.v + to, g.v + from, sizeof(float) * slice);
			}
		run(v, &gqa, &g);
		run(v, &mha, &h);
		err = error_vs_float(g.o, h.o, g.nq);
		if (!(err <= GQA_TOLERANCE))
			print_error("%s %s kv=%d: GQA differs by %g\n", v->name,
				    pattern_name(pat), kv, err);
		assert_true(err <= GQA_TOLERANCE);
		tensors_release(&g);
		tensors_release(&h);
	}
}

/* Grouped KV heads give what MHA gives with each KV head repeated for its group. */
static void test_every_variant_gives_gqa_as_mha_with_repeated_kv(void **state)
{
	(void)state;
	for_each_supported_pattern(check_gqa_as_mha);
}

static void check_slices_independent(const struct variant_ops *v, enum attn_pattern pat,
				     const double *params)
{
	int m = pattern_is_self(pat) ? 40 : 29;
	struct attn_problem p = problem(2, 4, 4, 40, m, 16, pat, params);
	size_t qslice = (size_t)p.n * p.d, kvslice = (size_t)p.m * p.d;
	size_t qo = problem_q_offset(&p, 1, 2), kvo = problem_kv_offset(&p, 1, 2);
	struct tensors a, b;
	struct rng g = { SEED + 99 };

	tensors_make(&a, &p, SEED + pat, 1.0);
	tensors_copy(&b, &a);
	fill_normal(&g, b.q + qo, qslice, 2.0);
	fill_normal(&g, b.k + kvo, kvslice, 2.0);
	fill_normal(&g, b.v + kvo, kvslice, 2.0);
	run(v, &p, &a);
	run(v, &p, &b);
	assert_memory_equal(a.o, b.o, sizeof(float) * qo);
	assert_memory_equal(a.o + qo + qslice, b.o + qo + qslice,
			    sizeof(float) * (a.nq - qo - qslice));
	assert_memory_not_equal(a.o + qo, b.o + qo, sizeof(float) * qslice);
	tensors_release(&a);
	tensors_release(&b);
}

/* Changing one (batch, head) slice leaves every other slice bit-identical. */
static void test_every_variant_keeps_slices_independent(void **state)
{
	(void)state;
	for_each_supported_pattern(check_slices_independent);
}

static void check_deterministic(const struct variant_ops *v, enum attn_pattern pat,
				const double *params)
{
	int m = pattern_is_self(pat) ? 130 : 77;
	struct attn_problem p = problem(2, 4, 2, 130, m, 64, pat, params);
	struct tensors a, b;

	tensors_make(&a, &p, SEED, 1.0);
	tensors_copy(&b, &a);
	run(v, &p, &a);
	run(v, &p, &b);
	assert_memory_equal(a.o, b.o, sizeof(float) * a.nq);
	tensors_release(&a);
	tensors_release(&b);
}

static void test_every_variant_is_deterministic(void **state)
{
	(void)state;
	for_each_supported_pattern(check_deterministic);
}

static void check_finite_for_large_inputs(const struct variant_ops *v, enum attn_pattern pat,
					  const double *params)
{
	int m = pattern_is_self(pat) ? 70 : 45;
	struct attn_problem p = problem(1, 2, 2, 70, m, 64, pat, params);
	struct tensors t;
	struct rng g = { SEED };

	tensors_make(&t, &p, SEED, 1.0);
	/* Uniform on [-10, 10], the extremes included. */
	for (size_t x = 0; x < t.nq; x++)
		t.q[x] = (float)(20 * rng_uniform(&g) - 10);
	for (size_t x = 0; x < t.nkv; x++) {
		t.k[x] = (float)(20 * rng_uniform(&g) - 10);
		t.v[x] = (float)(20 * rng_uniform(&g) - 10);
	}
	t.q[0] = 10;
	t.k[0] = -10;
	run(v, &p, &t);
	for (size_t x = 0; x < t.nq; x++)
		assert_true(isfinite(t.o[x]));
	tensors_release(&t);
}

/* Inputs up to |x| = 10 give scores in the hundreds; the max shift keeps them finite. */
static void test_every_variant_gives_finite_output_for_large_inputs(void **state)
{
	(void)state;
	for_each_supported_pattern(check_finite_for_large_inputs);
}


/* ---- incremental decoding ---- */

static const int decode_sizes[] = { 1, 17, 63, 130 };
static const int decode_dims[] = { 8, 64 };

/* All three decode hooks, or none (variant.h). */
static bool decodes(const struct variant_ops *v)
{
	assert_true(!v->decode_init == !v->decode_step);
	assert_true(!v->decode_init == !v->decode_free);
	return v->decode_init != NULL;
}

/* The awkward decode shapes: every size, head dimension and KV grouping. */
static int check_decode_shapes(const struct variant_ops *v, const double *params,
			       uint64_t *seed)
{
	int checked = 0;

	for (int si = 0; si < COUNT(decode_sizes); si++)
		for (int di = 0; di < COUNT(decode_dims); di++)
			for (int kv = 0; kv < COUNT(kv_choices); kv++) {
				int n = decode_sizes[si], d = decode_dims[di];
				struct attn_problem p = problem(2, 4, kv_choices[kv], n, n, d,
								ATTN_CS, params);

				check_decode(v, &p, (*seed)++);
				checked++;
			}
	return checked;
}

static void test_every_decoding_variant_matches_its_causal_forward(void **state)
{
	double params[VARIANT_MAX_PARAMS];
	uint64_t seed = SEED + 3000;
	int checked = 0;

	(void)state;
	for (int i = 0; i < variant_count(); i++) {
		const struct variant_ops *v = variant_at(i);

		if (!decodes(v))
			continue;
		assert_true(supports(v, ATTN_CS));
		for (int s = 0; variant_setting(v, s, params); s++)
			checked += check_decode_shapes(v, params, &seed);
	}
	assert_true(checked > 0);
}

/* Windows of one key, a few, and at least every position (then it is vanilla's). */
static void test_local_decoding_matches_its_forward_for_every_window(void **state)
{
	static const int windows[] = { 1, 5, 130, 1000 };
	const struct variant_ops *v = variant_find("local");
	uint64_t seed = SEED + 4000;

	(void)state;
	assert_true(decodes(v));
	for (int wi = 0; wi < COUNT(windows); wi++) {
		double params[1] = { windows[wi] };

		check_decode_shapes(v, params, &seed);
	}
}

/* Blocks of one key, an odd size, and more than the cache: block edges fall everywhere. */
static void test_flash_decoding_matches_its_forward_for_every_block_size(void **state)
{
	static const int blocks[] = { 1, 7, 64, 300 };
	const struct variant_ops *v = variant_find("flash");
	uint64_t seed = SEED + 5000;

	(void)state;
	assert_true(decodes(v));
	for (int bi = 0; bi < COUNT(blocks); bi++) {
		double params[2] = { 64, blocks[bi] };

		check_decode_shapes(v, params, &seed);
		/* 12 takes the portable path; 40 = 32 + 8 both vector widths */
		for (int d = 12; d <= 40; d += 28) {
			struct attn_problem p = problem(2, 4, 2, 63, 63, d, ATTN_CS,
							params);

			check_decode(v, &p, seed++);
		}
	}
}

/*
 * Fewer slices than threads: flash splits each slice's cache into runs of blocks walked
 * apart and merges them. Three threads give uneven runs.
 */
static void test_flash_decoding_splits_the_cache_across_threads(void **state)
{
	static const int blocks[] = { 1, 7, 64 };
	const struct variant_ops *v = variant_find("flash");
	int saved = threads_get();
	uint64_t seed = SEED + 6000;

	(void)state;
	threads_set(3);
	for (int bi = 0; bi < COUNT(blocks); bi++)
		for (int si = 0; si < COUNT(decode_sizes); si++) {
			double params[2] = { 64, blocks[bi] };
			int n = decode_sizes[si];
			struct attn_problem p = problem(1, 2, 1, n, n, 64, ATTN_CS, params);

			check_decode(v, &p, seed++);
		}
	threads_set(saved);
}

/* Decoding is cs only for the window; the ns window would need keys not yet fed. */
static void test_local_decoding_refuses_other_patterns(void **state)
{
	const struct variant_ops *v = variant_find("local");
	double params[1] = { 5 };
	struct attn_problem p = problem(1, 2, 2, 16, 16, 8, ATTN_NS, params);
	void *dec = &dec;

	(void)state;
	assert_int_equal(v->decode_init(&p, &dec), -ENOTSUP);
	assert_null(dec);
}

/* The ring holds w positions whatever the length; a KV cache grows with it. */
static void test_local_decoding_state_does_not_grow_with_the_sequence(void **state)
{
	double params[1] = { 8 };
	struct attn_problem shortp = problem(1, 4, 2, 64, 64, 16, ATTN_CS, params);
	struct attn_problem longp = problem(1, 4, 2, 1024, 1024, 16, ATTN_CS, params);
	size_t short_peak, long_peak;

	(void)state;
	short_peak = decode_peak(variant_find("local"), &shortp);
	long_peak = decode_peak(variant_find("local"), &longp);
	assert_true(short_peak > 0);
	assert_int_equal(short_peak, long_peak);
	/* At least the ring of keys and values, 2 x 2 KV heads x 8 x 16 floats. */
	assert_true(short_peak >= 2 * 2 * 8 * 16 * sizeof(float));

	shortp.params = longp.params = NULL;
	short_peak = decode_peak(variant_find("vanilla"), &shortp);
	long_peak = decode_peak(variant_find("vanilla"), &longp);
	assert_true(long_peak >= 2 * 2 * 1024 * 16 * sizeof(float));
	assert_true(long_peak > short_peak);
}

/* The KV cache of exact attention; local's window does not grow with the keys. */
static void test_state_bytes_follow_their_formulas(void **state)
{
	static const char *const exact[] = { "vanilla", "flash" };
	const struct variant_ops *local = variant_find("local");
	double window[1] = { 8 };

	(void)state;
	for (int i = 0; i < COUNT(exact); i++) {
		const struct variant_ops *v = variant_find(exact[i]);
		double params[VARIANT_MAX_PARAMS];
		struct attn_problem p = problem(2, 8, 2, 300, 300, 64, ATTN_CS, params);

		variant_default_params(v, params);
		assert_non_null(v->state_bytes);
		assert_true(v->state_bytes(&p) == 2.0 * 2 * 2 * 300 * 64 * 4);
		p = problem(1, 4, 4, 17, 33, 8, ATTN_NC, params);
		assert_true(v->state_bytes(&p) == 2.0 * 1 * 4 * 33 * 8 * 4);
	}
	assert_non_null(local->state_bytes);
	for (int pi = 0; pi < COUNT(self_patterns); pi++) {
		enum attn_pattern pat = self_patterns[pi];
		/* cs sees w keys, ns 2w + 1 */
		double span = pat == ATTN_CS ? 8 : 17;
		struct attn_problem shortp = problem(2, 4, 2, 64, 64, 16, pat, window);
		struct attn_problem longp = problem(2, 4, 2, 1024, 1024, 16, pat, window);
		struct attn_problem tiny = problem(2, 4, 2, 5, 5, 16, pat, window);

		assert_true(local->state_bytes(&shortp) == local->state_bytes(&longp));
		assert_true(local->state_bytes(&shortp) == 2.0 * 2 * 2 * span * 16 * 4);
		/* a window longer than the sequence holds only the sequence */
		assert_true(local->state_bytes(&tiny) == 2.0 * 2 * 2 * 5 * 16 * 4);
	}
}

/*
 * The bytes a forward moves: the compulsory traffic by default (Q, K, V read and O written
 * once), never less than it; vanilla's four passes over the scores, block by block in cs;
 * flash's K and V once per query tile, up to the tile's last row in cs.
 */
static void test_bytes_follow_their_formulas(void **state)
{
	const struct variant_ops *vanilla = variant_find("vanilla");
	const struct variant_ops *flash = variant_find("flash");
	double params[VARIANT_MAX_PARAMS], block_q[2] = { 100, 96 }, whole[2] = { 512, 96 };
	struct attn_problem nc = problem(2, 8, 2, 300, 200, 64, ATTN_NC, NULL);
	struct attn_problem ns = problem(1, 2, 2, 300, 300, 64, ATTN_NS, NULL);
	struct attn_problem cs = problem(1, 2, 2, 512, 512, 64, ATTN_CS, NULL);
	struct attn_problem cs_tiles = problem(1, 2, 2, 300, 300, 64, ATTN_CS, block_q);
	struct attn_problem one_tile = problem(1, 2, 2, 300, 300, 64, ATTN_NS, whole);
	struct attn_problem long_ns = problem(1, 8, 8, 4096, 4096, 64, ATTN_NS, NULL);
	double d = 64;
	int saved, groups;

	(void)state;
	assert_true(attn_compulsory_bytes(&nc) == 4.0 * (2 * 2 * 8 * 300 * 64 +
							 2 * 2 * 2 * 200 * 64));
	for (int i = 0; i < variant_count(); i++) {
		const struct variant_ops *v = variant_at(i);

		for (int pi = 0; pi < ATTN_PATTERN_COUNT; pi++) {
			struct attn_problem p = problem(1, 4, 2, 96, 96, 16, pi, params);

			variant_default_params(v, params);
			if (!supports(v, pi))
				continue;
			assert_true(variant_bytes(v, &p) >= attn_compulsory_bytes(&p));
			if (!v->bytes)
				assert_true(variant_bytes(v, &p) == attn_compulsory_bytes(&p));
		}
	}
	/* vanilla ns: Q, K, V once, the scores four times, O three times, the sums twice */
	assert_true(vanilla->bytes(&ns) == 4.0 * 2 * (6 * 300 * d + 4 * 300 * 300 + 2 * 300));
	/* cs in blocks of 256 rows: the first sees 256 keys, the second 512 */
	assert_true(vanilla->bytes(&cs) == 4.0 * 2 * (4 * 256 * d + 2 * 256 * d + 4 * 256 * 256 +
						      2 * 256 + 4 * 256 * d + 2 * 512 * d +
						      4 * 256 * 512 + 2 * 256));
	/* flash ns at block_q 96: 4 tiles (96, 96, 96, 12), each reading all of K and V */
	assert_true(flash->bytes(&ns) == 4.0 * 2 * (2 * 300 * d + 4 * 2 * 300 * d));
	/* cs at block_q 100: the tiles see 100, 200 and 300 keys */
	assert_true(flash->bytes(&cs_tiles) == 4.0 * 2 * (2 * 300 * d + 2 * 600 * d));
	/* one tile over every row: the compulsory traffic */
	assert_true(flash->bytes(&one_tile) == attn_compulsory_bytes(&one_tile));
	/*
	 * ns at 4096 on 2 threads: 43 tiles of 96 rows; on a vector engine they walk K and V
	 * four at a time (11 groups: 8 heads x 11 items are work enough for 2 threads)
	 */
	saved = threads_get();
	threads_set(2);
	groups = flash_engine_for(64) == FLASH_ENGINE_BLAS ? 43 : 11;
	assert_true(flash->bytes(&long_ns) == 4.0 * 8 * (2 * 4096 * d + groups * 2 * 4096 * d));
	threads_set(saved);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_registry_finds_every_variant_by_name),
		cmocka_unit_test(test_declared_parameters_are_found_and_defaulted),
		cmocka_unit_test(test_pattern_names_round_trip),
		cmocka_unit_test(test_malformed_problems_are_rejected),
		cmocka_unit_test(test_unsupported_patterns_are_refused),
		cmocka_unit_test(test_the_reference_matches_a_hand_worked_case),
		cmocka_unit_test(test_the_reference_maps_query_heads_to_kv_heads),
		cmocka_unit_test(test_every_exact_variant_matches_the_reference),
		cmocka_unit_test(test_the_masked_reference_under_the_pattern_mask_is_the_reference),
		cmocka_unit_test(test_every_mask_exact_variant_matches_the_reference_under_its_mask),
		cmocka_unit_test(test_flash_matches_the_reference_for_every_tile_size),
		cmocka_unit_test(test_flash_workspace_does_not_grow_with_the_sequence),
		cmocka_unit_test(test_vanilla_workspace_holds_the_score_matrix),
		cmocka_unit_test(test_local_matches_an_independent_window_reference),
		cmocka_unit_test(test_local_with_a_whole_sequence_window_equals_vanilla),
		cmocka_unit_test(test_local_ignores_keys_outside_the_window),
		cmocka_unit_test(test_every_biting_setting_names_a_declared_parameter),
		cmocka_unit_test(test_every_causal_variant_ignores_later_rows),
		cmocka_unit_test(test_hip_at_its_defaults_leaks_inside_a_query_block_only),
		cmocka_unit_test(test_flash_with_small_tiles_ignores_later_rows),
		cmocka_unit_test(test_every_variant_gives_gqa_as_mha_with_repeated_kv),
		cmocka_unit_test(test_every_variant_keeps_slices_independent),
		cmocka_unit_test(test_every_variant_is_deterministic),
		cmocka_unit_test(test_every_variant_gives_finite_output_for_large_inputs),
		cmocka_unit_test(test_every_decoding_variant_matches_its_causal_forward),
		cmocka_unit_test(test_local_decoding_matches_its_forward_for_every_window),
		cmocka_unit_test(test_flash_decoding_matches_its_forward_for_every_block_size),
		cmocka_unit_test(test_flash_decoding_splits_the_cache_across_threads),
		cmocka_unit_test(test_local_decoding_refuses_other_patterns),
		cmocka_unit_test(test_local_decoding_state_does_not_grow_with_the_sequence),
		cmocka_unit_test(test_state_bytes_follow_their_formulas),
		cmocka_unit_test(test_bytes_follow_their_formulas),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
