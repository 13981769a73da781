/*
 * test-efficient.c - Efficient Attention (variants/efficient.c) against an independent
 * fp64 transcription of its equations, for both normalisations and all four patterns on
 * awkward shapes; plus the catalogue's properties: convex combinations of V, the cs
 * prefix form equal to recomputing G from scratch per row (also past huge key spikes),
 * key permutation invariance, decoding for both norms, state bytes, refusals.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "variant-test.h"

/* fp32 kernel against fp64 loops: the spec's bound for every variant's transcription. */
#define TRANSCRIPTION_TOLERANCE 1e-5
/* Reordered float sums of the same terms (permutation, prefix vs scratch). */
#define REORDER_TOLERANCE 1e-5

#define SOFTMAX 0.0
#define SCALE 1.0

static const double norms[] = { SOFTMAX, SCALE };

static const struct variant_ops *efficient(void)
{
	return variant_must_find("efficient");
}

/* ---- the fp64 transcription ---- */

/* rq = ρ_q(q) in double: softmax over the d features, or q / sqrt(keys). */
static void rho_q(const float *q, int d, double norm, long keys, double *rq)
{
	double max = q[0], sum = 0;

	if (norm == SCALE) {
		for (int c = 0; c < d; c++)
			rq[c] = q[c] / sqrt((double)keys);
		return;
	}
	for (int c = 1; c < d; c++)
		max = q[c] > max ? q[c] : max;
	for (int c = 0; c < d; c++) {
		rq[c] = exp(q[c] - max);
		sum += rq[c];
	}
	for (int c = 0; c < d; c++)
		rq[c] /= sum;
}

/*
 * g (d x d) = ρ_k(K)ᵀ V over keys 0..keys-1, from scratch: each channel's softmax over
 * those keys (shifted by their own max), or K / sqrt(keys).
 */
static void context_from_scratch(const float *k, const float *v, int keys, int d, double norm,
				 double *g)
{
	for (int c = 0; c < d; c++) {
		double max = -INFINITY, sum = 0;

		for (int x = 0; x < d; x++)
			g[c * d + x] = 0;
		for (int j = 0; j < keys; j++)
			max = k[j * d + c] > max ? k[j * d + c] : max;
		for (int j = 0; j < keys; j++) {
			double w = norm == SCALE ? k[j * d + c] / sqrt((double)keys) :
				   exp(k[j * d + c] - max);

			sum += w;
			for (int x = 0; x < d; x++)
				g[c * d + x] += w * v[j * d + x];
		}
		if (norm == SOFTMAX)
			for (int x = 0; x < d; x++)
				g[c * d + x] /= sum;
	}
}

/* o = Σ_c ρ_q(q)_c g[c]. */
static void apply_row(const float *q, const double *g, int d, double norm, long keys, double *o)
{
	double rq[64];

	rho_q(q, d, norm, keys, rq);
	for (int x = 0; x < d; x++) {
		o[x] = 0;
		for (int c = 0; c < d; c++)
			o[x] += rq[c] * g[c * d + x];
	}
}

/*
 * The whole problem in double. ns, nc, cc: G over all m keys, then every row. cs: G_i by
 * running sums over j <= i, num[c] = Σ e^{k_jc - s_c} v_j and den[c] = Σ e^{k_jc - s_c},
 * shifted by s_c = the channel's max over the whole slice: in double the shift only
 * keeps exp in range and cancels in the ratio (the test inputs span far less than the
 * ~700 double allows). Scale: num = Σ k_j v_jᵀ, divided by (i + 1) keys.
 */
static void transcribe(const struct attn_problem *p, const float *q, const float *k,
		       const float *v, double norm, double *out)
{
	int d = p->d, n = p->n, m = p->m, group = p->heads / p->kv_heads;
	double *g = malloc(sizeof(double) * d * d), *den = malloc(sizeof(double) * d);
	double *shift = malloc(sizeof(double) * d);

	assert_non_null(g);
	assert_non_null(den);
	assert_non_null(shift);
	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			const float *qs = q + ((size_t)b * p->heads + h) * n * d;
			size_t kvo = ((size_t)b * p->kv_heads + h / group) * m * d;
			const float *ks = k + kvo, *vs = v + kvo;
			double *os = out + ((size_t)b * p->heads + h) * n * d;

			if (p->pattern != ATTN_CS) {
				context_from_scratch(ks, vs, m, d, norm, g);
				for (int i = 0; i < n; i++)
					apply_row(qs + i * d, g, d, norm, m, os + i * d);
				continue;
			}
			for (int c = 0; c < d; c++) {
				shift[c] = -INFINITY;
				den[c] = 0;
				for (int j = 0; j < m; j++)
					shift[c] = ks[j * d + c] > shift[c] ? ks[j * d + c] : shift[c];
				for (int x = 0; x < d; x++)
					g[c * d + x] = 0;
			}
			for (int i = 0; i < n; i++) {
				double rq[64];

				for (int c = 0; c < d; c++) {
					double w = norm == SCALE ? ks[i * d + c] :
						   exp(ks[i * d + c] - shift[c]);

					den[c] += w;
					for (int x = 0; x < d; x++)
						g[c * d + x] += w * vs[i * d + x];
				}
				rho_q(qs + i * d, d, norm, i + 1, rq);
				for (int x = 0; x < d; x++) {
					double o = 0;

					for (int c = 0; c < d; c++)
						o += rq[c] * g[c * d + x] /
						     (norm == SCALE ? sqrt(i + 1.0) : den[c]);
					os[i * d + x] = o;
				}
			}
		}
	free(g);
	free(den);
	free(shift);
}

/* Runs efficient on a fresh draw and compares with the transcription. */
static void check_transcription(const struct attn_problem *p, double norm, uint64_t seed)
{
	struct tensors t;
	double *ref = reference_make(&t, p, seed);

	transcribe(p, t.q, t.k, t.v, norm, ref);
	check_output(efficient(), p, &t, ref, TRANSCRIPTION_TOLERANCE, " norm=%g", norm);
}

static void test_efficient_self_patterns_match_the_fp64_transcription(void **state)
{
	static const enum attn_pattern self[] = { ATTN_NS, ATTN_CS };
	uint64_t seed = VARIANT_TEST_SEED;

	(void)state;
	for (int ni = 0; ni < COUNT(norms); ni++)
		for (int pi = 0; pi < COUNT(self); pi++) {
			struct shape_walk w = { 0 };
			struct attn_problem p;

			while (shape_walk_next(&w, self[pi], &norms[ni], &p))
				check_transcription(&p, norms[ni], seed++);
		}
}

static void test_efficient_cross_patterns_match_the_fp64_transcription(void **state)
{
	static const enum attn_pattern crossing[] = { ATTN_NC, ATTN_CC };
	uint64_t seed = VARIANT_TEST_SEED + 1000;

	(void)state;
	for (int ni = 0; ni < COUNT(norms); ni++)
		for (int pi = 0; pi < COUNT(crossing); pi++)
			for (int si = 0; si < COUNT(cross); si++)
				for (int di = 0; di < COUNT(dims); di++)
					for (int kv = 0; kv < COUNT(kv_choices); kv++) {
						struct attn_problem p = problem(2, 4, kv_choices[kv],
							cross[si][0], cross[si][1], dims[di],
							crossing[pi], &norms[ni]);

						check_transcription(&p, norms[ni], seed++);
					}
}

/* ---- convex combinations of V ---- */

/*
 * With the softmax norm every output coordinate lies between the smallest and largest
 * value of that coordinate over the keys the row sees; the weights are rounded floats
 * summing to 1 within a few ulps, hence a margin of 1e-5 of the largest |v|.
 */
static void check_convex(enum attn_pattern pattern, int n, int m, uint64_t seed)
{
	const double norm = SOFTMAX;
	struct attn_problem p = problem(2, 4, 2, n, m, 16, pattern, &norm);
	int group = p.heads / p.kv_heads;
	struct tensors t;
	double vmax = 0;

	/* scale 2: sharp softmaxes, so some outputs sit near a bound */
	tensors_make(&t, &p, seed, 2.0);
	run(efficient(), &p, &t);
	for (size_t x = 0; x < t.nkv; x++)
		vmax = fmax(vmax, fabs(t.v[x]));
	for (int b = 0; b < p.batch; b++)
		for (int h = 0; h < p.heads; h++) {
			const float *vs = t.v + ((size_t)b * p.kv_heads + h / group) * m * p.d;
			const float *os = t.o + ((size_t)b * p.heads + h) * n * p.d;

			for (int i = 0; i < n; i++) {
				int keys = pattern == ATTN_CS ? i + 1 : m;

				for (int c = 0; c < p.d; c++) {
					double lo = INFINITY, hi = -INFINITY;
					double o = os[i * p.d + c];

					for (int j = 0; j < keys; j++) {
						lo = fmin(lo, vs[j * p.d + c]);
						hi = fmax(hi, vs[j * p.d + c]);
					}
					assert_true(o >= lo - 1e-5 * vmax);
					assert_true(o <= hi + 1e-5 * vmax);
				}
			}
		}
	tensors_release(&t);
}

static void test_efficient_outputs_are_convex_combinations_of_visible_values(void **state)
{
	(void)state;
	check_convex(ATTN_NS, 70, 70, 11);
	check_convex(ATTN_CS, 150, 150, 12);
	check_convex(ATTN_NC, 40, 90, 13);
	check_convex(ATTN_CC, 90, 40, 14);
}

/*
 * Weights that sum to one give back a value row shared by every key. Values up to 6.5
 * and float weights summing to 1 within a few ulps: 1e-5 absolute is about 1.5e-6 of
 * the largest value.
 */
static void test_efficient_returns_a_value_shared_by_every_key(void **state)
{
	const double norm = SOFTMAX;

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		int m = pattern_is_self(pat) ? 100 : 37;
		struct attn_problem p = problem(1, 2, 1, 100, m, 12, pat, &norm);
		struct tensors t;

		tensors_make(&t, &p, 21 + pat, 1.5);
		for (size_t x = 0; x < t.nkv; x++)
			t.v[x] = (float)(x % p.d) - 4.5f;
		run(efficient(), &p, &t);
		for (size_t x = 0; x < t.nq; x++)
			assert_true(fabs(t.o[x] - ((float)(x % p.d) - 4.5f)) <= 1e-5);
		tensors_release(&t);
	}
}

/* ---- the cs prefix form ---- */

/* Every cs row against G_i built from scratch over keys 0..i, in double. */
static void check_prefix_against_scratch(const struct attn_problem *p, const struct tensors *t,
					 double norm)
{
	int d = p->d, n = p->n, group = p->heads / p->kv_heads;
	double *ref = malloc(sizeof(double) * t->nq), *g = malloc(sizeof(double) * d * d);
	double err;

	assert_non_null(ref);
	assert_non_null(g);
	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			size_t qo = ((size_t)b * p->heads + h) * n * d;
			size_t kvo = ((size_t)b * p->kv_heads + h / group) * n * d;

			for (int i = 0; i < n; i++) {
				context_from_scratch(t->k + kvo, t->v + kvo, i + 1, d, norm, g);
				apply_row(t->q + qo + i * d, g, d, norm, i + 1, ref + qo + i * d);
			}
		}
	err = error_vs_double(t->o, ref, t->nq);
	if (!(err <= REORDER_TOLERANCE))
		print_error("cs n=%d d=%d norm=%g: prefix differs from scratch by %g\n", n, d,
			    norm, err);
	assert_true(err <= REORDER_TOLERANCE);
	free(g);
	free(ref);
}

/* 130 rows: two full chunks and a short one; larger keys move the running max often. */
static void test_efficient_causal_rows_equal_recomputing_g_from_scratch(void **state)
{
	static const double key_scales[] = { 1.0, 4.0 };

	(void)state;
	for (int ni = 0; ni < COUNT(norms); ni++)
		for (int ki = 0; ki < COUNT(key_scales); ki++) {
			struct attn_problem p = problem(2, 4, 2, 130, 130, 16, ATTN_CS, &norms[ni]);
			struct tensors t;

			tensors_make(&t, &p, 31 + ki, 1.0);
			for (size_t x = 0; x < t.nkv; x++)
				t.k[x] *= (float)key_scales[ki];
			run(efficient(), &p, &t);
			check_prefix_against_scratch(&p, &t, norms[ni]);
			tensors_release(&t);
		}
}

/*
 * Keys that jump by far more than float's exp range (e^-88 underflows) after earlier rows
 * of the same chunk, and one far below: rows before the jump must not lose their
 * denominators to the later maximum.
 */
static void spike_keys(const struct attn_problem *p, struct tensors *t)
{
	for (int s = 0; s < p->batch * p->kv_heads; s++) {
		float *ks = t->k + (size_t)s * p->m * p->d;

		ks[40 * p->d + 3] = 120;
		ks[41 * p->d + 3] = -150;
		ks[70 * p->d + 0] = 95;
		ks[71 * p->d + 0] = 200;
		ks[5 * p->d + 7] = -300;
		ks[100 * p->d + 7] = 90;
	}
}

static void test_efficient_causal_rows_survive_keys_far_beyond_float_exp_range(void **state)
{
	const double norm = SOFTMAX;
	struct attn_problem p = problem(2, 4, 2, 130, 130, 16, ATTN_CS, &norm);
	struct tensors t;

	(void)state;
	tensors_make(&t, &p, 41, 1.0);
	spike_keys(&p, &t);
	run(efficient(), &p, &t);
	for (size_t x = 0; x < t.nq; x++)
		assert_true(isfinite(t.o[x]));
	check_prefix_against_scratch(&p, &t, norm);
	tensors_release(&t);
}

/* ---- key permutation ---- */

/* Permuting the keys and values alike leaves every noncausal output unchanged. */
static void test_efficient_noncausal_output_ignores_the_order_of_keys(void **state)
{
	static const enum attn_pattern noncausal[] = { ATTN_NS, ATTN_NC };

	(void)state;
	for (int ni = 0; ni < COUNT(norms); ni++)
		for (int pi = 0; pi < COUNT(noncausal); pi++) {
			int m = noncausal[pi] == ATTN_NS ? 150 : 77;
			struct attn_problem p = problem(2, 4, 2, 150, m, 16, noncausal[pi],
							&norms[ni]);
			struct tensors a, b;
			struct rng g = { 51 };
			int *perm = malloc(sizeof(int) * m);
			double err;

			assert_non_null(perm);
			for (int j = 0; j < m; j++)
				perm[j] = j;
			for (int j = m - 1; j > 0; j--) {
				int r = (int)(rng_next(&g) % (uint64_t)(j + 1)), x = perm[j];

				perm[j] = perm[r];
				perm[r] = x;
			}
			tensors_make(&a, &p, 52 + pi, 1.0);
			tensors_copy(&b, &a);
			for (int s = 0; s < p.batch * p.kv_heads; s++)
				for (int j = 0; j < m; j++) {
					size_t to = ((size_t)s * m + j) * p.d;
					size_t from = ((size_t)s * m + perm[j]) * p.d;

					memcpy(b.k + to, a.k + from, sizeof(float) * p.d);
					memcpy(b.v + to, a.v + from, sizeof(float) * p.d);
				}
			run(efficient(), &p, &a);
			run(efficient(), &p, &b);
			err = error_vs_float(b.o, a.o, a.nq);
			assert_true(err <= REORDER_TOLERANCE);
			tensors_release(&a);
			tensors_release(&b);
			free(perm);
		}
}

/* ---- decoding ---- */

static const int decode_sizes[] = { 1, 17, 63, 130 };
static const int decode_dims[] = { 8, 64 };

static void test_efficient_decoding_matches_its_forward_for_both_norms(void **state)
{
	uint64_t seed = VARIANT_TEST_SEED + 5000;

	(void)state;
	for (int ni = 0; ni < COUNT(norms); ni++)
		for (int si = 0; si < COUNT(decode_sizes); si++)
			for (int di = 0; di < COUNT(decode_dims); di++)
				for (int kv = 0; kv < COUNT(kv_choices); kv++) {
					int n = decode_sizes[si];
					struct attn_problem p = problem(2, 4, kv_choices[kv], n, n,
									decode_dims[di], ATTN_CS,
									&norms[ni]);

					check_decode(efficient(), &p, seed++);
				}
}

/* The decoder's running max meets the same spikes as the forward pass's chunks. */
static void test_efficient_decoding_follows_keys_far_beyond_float_exp_range(void **state)
{
	const double norm = SOFTMAX;
	const struct variant_ops *v = efficient();
	struct attn_problem p = problem(2, 4, 2, 130, 130, 16, ATTN_CS, &norm);
	size_t live = memory_live_bytes();
	struct step_rows r;
	struct tensors t;
	void *dec = NULL;

	(void)state;
	tensors_make(&t, &p, 61, 1.0);
	spike_keys(&p, &t);
	step_rows_make(&r, &p);
	run(v, &p, &t);
	assert_int_equal(v->decode_init(&p, &dec), 0);
	for (int i = 0; i < p.n; i++) {
		gather_step(&r, &p, &t, i);
		assert_int_equal(v->decode_step(dec, r.q, r.k, r.v, r.o), 0);
		assert_true(step_error(&p, r.o, t.o, i) <= DECODE_TOLERANCE);
	}
	v->decode_free(dec);
	assert_int_equal(memory_live_bytes(), live);
	step_rows_release(&r);
	tensors_release(&t);
}

/* Decoding is causal self attention; other patterns have no step-by-step form here. */
static void test_efficient_decoding_refuses_other_patterns(void **state)
{
	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		struct attn_problem p = problem(1, 2, 2, 16, 16, 8, pat, NULL);
		void *dec = &dec;

		if (pat == ATTN_CS)
			continue;
		assert_int_equal(efficient()->decode_init(&p, &dec), -ENOTSUP);
		assert_null(dec);
	}
}

/* ---- declarations ---- */

/*
 * Per KV head, float32: softmax keeps the d x d numerator and d denominators, cs also
 * the d channel maxima; scale keeps the d x d sum only.
 */
static void test_efficient_state_bytes_follow_the_formula(void **state)
{
	static const int shapes[][4] = { { 1, 4, 4, 8 }, { 2, 4, 2, 64 }, { 3, 8, 1, 12 } };

	(void)state;
	for (int si = 0; si < COUNT(shapes); si++)
		for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++)
			for (int ni = 0; ni <= COUNT(norms); ni++) {
				const double *params = ni < COUNT(norms) ? &norms[ni] : NULL;
				bool soft = !params || *params == SOFTMAX;
				double b = shapes[si][0], kv = shapes[si][2], d = shapes[si][3];
				double per = d * d + (soft ? d : 0) +
					     (soft && pat == ATTN_CS ? d : 0);
				struct attn_problem p = problem(shapes[si][0], shapes[si][1],
								shapes[si][2], 50, 50,
								shapes[si][3], pat, params);

				assert_true(efficient()->state_bytes(&p) == 4 * per * b * kv);
			}
}

static void test_efficient_runs_all_four_patterns_and_refuses_a_bad_norm(void **state)
{
	static const double bad[] = { 2, 0.5, -1 };
	const struct variant_ops *v = efficient();

	(void)state;
	assert_int_equal(v->patterns, PATTERNS_ALL);
	assert_int_equal(v->extensions, PATTERN_BIT(ATTN_CS));
	assert_int_equal(v->n_params, 1);
	assert_string_equal(v->params[0].name, "norm");
	assert_true(v->params[0].def == SOFTMAX);
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		struct attn_problem p = problem(1, 2, 1, 9, pattern_is_self(pat) ? 9 : 5, 8,
						pat, NULL);

		assert_int_equal(variant_check_problem(v, &p), 0);
		for (int i = 0; i < COUNT(bad); i++) {
			p.params = &bad[i];
			assert_int_equal(variant_check_problem(v, &p), -EINVAL);
		}
	}
}

/* The defaults (params NULL) are the softmax norm. */
static void test_efficient_without_params_uses_the_softmax_norm(void **state)
{
	const double norm = SOFTMAX;
	struct attn_problem with = problem(1, 2, 2, 40, 40, 8, ATTN_CS, &norm);
	struct attn_problem without = problem(1, 2, 2, 40, 40, 8, ATTN_CS, NULL);
	struct tensors a, b;

	(void)state;
	tensors_make(&a, &with, 71, 1.0);
	tensors_copy(&b, &a);
	run(efficient(), &with, &a);
	run(efficient(), &without, &b);
	assert_memory_equal(a.o, b.o, sizeof(float) * a.nq);
	tensors_release(&a);
	tensors_release(&b);
}

/* The state is d x d per slice and the rest chunks: peak memory is flat in n. */
static void test_efficient_workspace_does_not_grow_with_the_sequence(void **state)
{
	size_t peaks[2];

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++)
		for (int i = 0; i < 2; i++) {
			int n = i ? 2048 : 128;
			struct attn_problem p = problem(1, 2, 1, n, n, 16, pat, NULL);
			struct tensors t;
			size_t live;

			tensors_make(&t, &p, 81, 1.0);
			live = memory_live_bytes();
			memory_reset_peak();
			run(efficient(), &p, &t);
			peaks[i] = memory_peak_bytes() - live;
			if (i)
				assert_true(peaks[1] == peaks[0]);
			tensors_release(&t);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_efficient_self_patterns_match_the_fp64_transcription),
		cmocka_unit_test(test_efficient_cross_patterns_match_the_fp64_transcription),
		cmocka_unit_test(test_efficient_outputs_are_convex_combinations_of_visible_values),
		cmocka_unit_test(test_efficient_returns_a_value_shared_by_every_key),
		cmocka_unit_test(test_efficient_causal_rows_equal_recomputing_g_from_scratch),
		cmocka_unit_test(test_efficient_causal_rows_survive_keys_far_beyond_float_exp_range),
		cmocka_unit_test(test_efficient_noncausal_output_ignores_the_order_of_keys),
		cmocka_unit_test(test_efficient_decoding_matches_its_forward_for_both_norms),
		cmocka_unit_test(test_efficient_decoding_follows_keys_far_beyond_float_exp_range),
		cmocka_unit_test(test_efficient_decoding_refuses_other_patterns),
		cmocka_unit_test(test_efficient_state_bytes_follow_the_formula),
		cmocka_unit_test(test_efficient_runs_all_four_patterns_and_refuses_a_bad_norm),
		cmocka_unit_test(test_efficient_without_params_uses_the_softmax_norm),
		cmocka_unit_test(test_efficient_workspace_does_not_grow_with_the_sequence),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
