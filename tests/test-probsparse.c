/*
 * test-probsparse.c - ProbSparse attention against a plain fp64 transcription of its
 * equations (VARIANTS.md section 13) on awkward shapes, and its catalogue properties:
 * every query active is vanilla, lazy rows are the mean of V, exactly u rows attend, ties
 * go to the smaller row, one sample shared by all slices, its KV-cache state, and cs / cc
 * refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "variant-test.h"
#include "random.h"

/* fp32 kernel against the fp64 transcription: the spec's bound. */
#define TOLERANCE 1e-5
/* A lazy row is one float rounding of the mean of V, far below this. */
#define MEAN_TOLERANCE 1e-6

/* The plan stream the variant documents for its sample matrix (one for all heads). */
#define SAMPLE_STREAM 0

static const struct variant_ops *probsparse(void)
{
	return variant_must_find("probsparse");
}

/* min(c ceil(ln len), len), ceil(ln 1) = 0 counted as 1 (the variant's stated rule). */
static int count_for(int c, int len)
{
	int l = (int)ceil(log((double)len));

	if (l < 1)
		l = 1;
	return c * l < len ? c * l : len;
}

/*
 * The variant's equations in double, by plain loops: the shared index matrix drawn as the
 * plan documents it, mu_i = max - sum / M over the U sampled unscaled dot products, the u
 * largest mu (ties: smaller i) attend over all keys, the rest get mean(V). active[] (if not
 * NULL) receives, per slice and row, whether the row was chosen.
 */
static void transcription(const struct attn_problem *p, int c, const float *q, const float *k,
			  const float *v, double *out, bool *active)
{
	int n = p->n, m = p->m, d = p->d;
	int samples = count_for(c, m), u = count_for(c, n);
	int *idx = malloc(sizeof(int) * n * samples);
	double *mu = malloc(sizeof(double) * n), *s = malloc(sizeof(double) * m);
	bool *chosen = malloc(sizeof(bool) * n);
	struct plan_rng g = plan_rng_make(p->seed, SAMPLE_STREAM);

	assert_non_null(idx);
	assert_non_null(mu);
	assert_non_null(s);
	assert_non_null(chosen);
	for (int i = 0; i < n; i++)
		for (int r = 0; r < samples; r++)
			idx[i * samples + r] = (int)plan_rng_below(&g, (uint64_t)m);

	for (int b = 0; b < p->batch; b++) {
		for (int h = 0; h < p->heads; h++) {
			const float *qh = q + problem_q_offset(p, b, h);
			const float *kh = k + problem_kv_offset(p, b, h);
			const float *vh = v + problem_kv_offset(p, b, h);
			double *oh = out + problem_q_offset(p, b, h);

			for (int i = 0; i < n; i++) {
				double max = -INFINITY, sum = 0;

				for (int r = 0; r < samples; r++) {
					int j = idx[i * samples + r];
					double x = 0;

					for (int e = 0; e < d; e++)
						x += (double)qh[i * d + e] * kh[j * d + e];
					max = fmax(max, x);
					sum += x;
				}
				mu[i] = max - sum / m;
				chosen[i] = false;
			}
			/* u times: the largest mu not yet chosen, the first such row on a tie */
			for (int t = 0; t < u; t++) {
				int best = -1;

				for (int i = 0; i < n; i++)
					if (!chosen[i] && (best < 0 || mu[i] > mu[best]))
						best = i;
				chosen[best] = true;
			}
			for (int i = 0; i < n; i++) {
				double *oi = oh + (size_t)i * d, max = -INFINITY, sum = 0;

				if (active)
					active[((size_t)b * p->heads + h) * n + i] = chosen[i];
				for (int e = 0; e < d; e++)
					oi[e] = 0;
				if (!chosen[i]) {
					for (int j = 0; j < m; j++)
						for (int e = 0; e < d; e++)
							oi[e] += vh[j * d + e];
					for (int e = 0; e < d; e++)
						oi[e] /= m;
					continue;
				}
				for (int j = 0; j < m; j++) {
					s[j] = 0;
					for (int e = 0; e < d; e++)
						s[j] += (double)qh[i * d + e] * kh[j * d + e];
					s[j] /= sqrt((double)d);
					max = fmax(max, s[j]);
				}
				for (int j = 0; j < m; j++) {
					double w = exp(s[j] - max);

					sum += w;
					for (int e = 0; e < d; e++)
						oi[e] += w * vh[j * d + e];
				}
				for (int e = 0; e < d; e++)
					oi[e] /= sum;
			}
		}
	}
	free(chosen);
	free(s);
	free(mu);
	free(idx);
}

/* Runs the variant with factor c (NULL params when c is the default) against the above. */
static void check_transcription(const struct attn_problem *p, int c, uint64_t seed)
{
	struct tensors t;
	double *ref = reference_make(&t, p, seed);

	transcription(p, c, t.q, t.k, t.v, ref, NULL);
	check_output(probsparse(), p, &t, ref, TOLERANCE, " c=%d", c);
}

/* Every ns and nc shape of the grid, for the default factor and two others. */
static void test_probsparse_matches_an_fp64_transcription_on_awkward_shapes(void **state)
{
	static const enum attn_pattern patterns[] = { ATTN_NS, ATTN_NC };
	/* 1: fewest samples and rows; 5: the default (params NULL); 2: in between */
	static const int factors[] = { 5, 1, 2 };
	uint64_t seed = SEED;
	int checked = 0;

	(void)state;
	for (int fi = 0; fi < COUNT(factors); fi++) {
		double params[1] = { factors[fi] };

		for (int pi = 0; pi < COUNT(patterns); pi++) {
			struct shape_walk w = { 0 };
			struct attn_problem p;

			while (shape_walk_next(&w, patterns[pi], fi ? params : NULL, &p)) {
				check_transcription(&p, factors[fi], seed++);
				checked++;
			}
		}
	}
	assert_int_equal(checked, 3 * (4 + 12) * 3 * 3);
}

/* c = max(n, m) makes u = N (and U = M): every row attends, which is exact attention. */
static void test_probsparse_with_every_query_active_equals_vanilla(void **state)
{
	uint64_t seed = SEED + 1000;

	(void)state;
	for (int a = 0; a < COUNT(sizes); a++)
		for (int b = 0; b < COUNT(sizes); b++)
			for (int di = 0; di < COUNT(dims); di++) {
				int n = sizes[a], m = sizes[b];
				double params[1] = { n > m ? n : m };
				struct attn_problem p = problem(2, 4, 2, n, m, dims[di],
								n == m ? ATTN_NS : ATTN_NC,
								params);
				struct tensors t;
				double *ref, err;

				assert_int_equal(count_for((int)params[0], n), n);
				tensors_make(&t, &p, seed++, 1.0);
				ref = malloc(sizeof(double) * t.nq);
				assert_non_null(ref);
				reference_attention(&p, t.q, t.k, t.v, ref);
				run(probsparse(), &p, &t);
				err = error_vs_double(t.o, ref, t.nq);
				if (!(err <= TOLERANCE))
					print_error("n=%d m=%d d=%d: error %g\n", n, m, dims[di],
						    err);
				assert_true(err <= TOLERANCE);
				free(ref);
				tensors_release(&t);
			}
}

/* The shapes where u < N: some rows are lazy. */
static const int lazy_shapes[][2] = { { 17, 17 }, { 63, 63 }, { 257, 257 }, { 257, 17 },
				      { 63, 257 }, { 17, 63 } };

/* Largest |o_c - mean_c| relative to the largest |mean_c| (mean in double). */
static double off_mean(const float *o, const float *v, int m, int d)
{
	double diff = 0, scale = 0;

	for (int c = 0; c < d; c++) {
		double mean = 0;

		for (int j = 0; j < m; j++)
			mean += v[(size_t)j * d + c];
		mean /= m;
		diff = fmax(diff, fabs(o[c] - mean));
		scale = fmax(scale, fabs(mean));
	}
	return scale > 0 ? diff / scale : diff;
}

/* Rows the transcription leaves lazy are mean(V) up to one float rounding. */
static void test_probsparse_gives_unselected_rows_the_mean_of_v(void **state)
{
	uint64_t seed = SEED + 2000;

	(void)state;
	for (int si = 0; si < COUNT(lazy_shapes); si++) {
		int n = lazy_shapes[si][0], m = lazy_shapes[si][1], lazy = 0;
		struct attn_problem p = problem(2, 4, 2, n, m, 16, n == m ? ATTN_NS : ATTN_NC,
						NULL);
		struct tensors t;
		double *ref = malloc(sizeof(double) * (size_t)2 * 4 * n * 16);
		bool *active = malloc(sizeof(bool) * 2 * 4 * n);

		assert_non_null(ref);
		assert_non_null(active);
		tensors_make(&t, &p, seed++, 1.0);
		transcription(&p, 5, t.q, t.k, t.v, ref, active);
		run(probsparse(), &p, &t);
		for (int b = 0; b < 2; b++)
			for (int h = 0; h < 4; h++)
				for (int i = 0; i < n; i++) {
					const float *o = t.o + problem_q_offset(&p, b, h) +
							 (size_t)i * 16;

					if (active[(b * 4 + h) * n + i])
						continue;
					lazy++;
					assert_true(off_mean(o, t.v + problem_kv_offset(&p, b, h),
							     m, 16) <= MEAN_TOLERANCE);
				}
		assert_int_equal(lazy, 2 * 4 * (n - count_for(5, n)));
		free(active);
		free(ref);
		tensors_release(&t);
	}
}

/*
 * Counted from the output alone: in every slice exactly u = min(5 ceil(ln N), N) rows are
 * away from mean(V) (random inputs: no attended row lands on the mean).
 */
static void test_probsparse_leaves_exactly_u_rows_off_the_mean(void **state)
{
	uint64_t seed = SEED + 3000;

	(void)state;
	for (int si = 0; si < COUNT(lazy_shapes); si++) {
		int n = lazy_shapes[si][0], m = lazy_shapes[si][1];
		struct attn_problem p = problem(2, 4, 1, n, m, 12, n == m ? ATTN_NS : ATTN_NC,
						NULL);
		struct tensors t;

		tensors_make(&t, &p, seed++, 1.0);
		run(probsparse(), &p, &t);
		for (int b = 0; b < 2; b++)
			for (int h = 0; h < 4; h++) {
				int off = 0;

				for (int i = 0; i < n; i++)
					if (off_mean(t.o + problem_q_offset(&p, b, h) +
						     (size_t)i * 12,
						     t.v + problem_kv_offset(&p, b, h), m, 12) >
					    MEAN_TOLERANCE)
						off++;
				assert_int_equal(off, count_for(5, n));
			}
		tensors_release(&t);
	}
}

/*
 * Ties: every query row of a slice is the same and M = 2, so rows fall into a few groups
 * of exactly equal mu (by which of the two keys they sampled), and the last places go to
 * the smaller rows of a tied group. The rows off mean(V) must be the transcription's.
 */
static void test_probsparse_breaks_ties_towards_the_smaller_row(void **state)
{
	/* { n, c }: c = 2 samples both keys (U = 2), c = 1 one key (U = 1) */
	static const int cases[][2] = { { 17, 2 }, { 63, 1 }, { 257, 2 } };
	const int m = 2, d = 8;

	(void)state;
	for (int ci = 0; ci < COUNT(cases); ci++) {
		int n = cases[ci][0];
		double params[1] = { cases[ci][1] };
		struct attn_problem p = problem(2, 4, 2, n, m, d, ATTN_NC, params);
		struct tensors t;
		double *ref = malloc(sizeof(double) * (size_t)8 * n * d), err;
		bool *active = malloc(sizeof(bool) * 8 * n);

		assert_non_null(ref);
		assert_non_null(active);
		tensors_make(&t, &p, SEED + 6000 + ci, 1.0);
		for (int s = 0; s < 8; s++)
			for (int i = 1; i < n; i++)
				memcpy(t.q + ((size_t)s * n + i) * d, t.q + (size_t)s * n * d,
				       sizeof(float) * d);
		transcription(&p, cases[ci][1], t.q, t.k, t.v, ref, active);
		run(probsparse(), &p, &t);
		err = error_vs_double(t.o, ref, t.nq);
		assert_true(err <= TOLERANCE);
		for (int b = 0; b < 2; b++)
			for (int h = 0; h < 4; h++)
				for (int i = 0; i < n; i++) {
					double off = off_mean(t.o + problem_q_offset(&p, b, h) +
							      (size_t)i * d,
							      t.v + problem_kv_offset(&p, b, h),
							      m, d);

					assert_int_equal(off > MEAN_TOLERANCE,
							 active[(b * 4 + h) * n + i]);
				}
		free(active);
		free(ref);
		tensors_release(&t);
	}
}

/*
 * N = 1: ceil(ln 1) = 0 would make no row active; the variant counts it as 1, so the one
 * query attends over every key (as does the one key of M = 1).
 */
static void test_probsparse_lets_a_single_query_attend(void **state)
{
	static const int keys[] = { 1, 17, 257 };

	(void)state;
	for (int ki = 0; ki < COUNT(keys); ki++) {
		int m = keys[ki];
		struct attn_problem p = problem(2, 4, 2, 1, m, 16, m == 1 ? ATTN_NS : ATTN_NC,
						NULL);
		struct tensors t;
		double *ref;

		tensors_make(&t, &p, SEED + 4000 + ki, 1.0);
		ref = malloc(sizeof(double) * t.nq);
		assert_non_null(ref);
		reference_attention(&p, t.q, t.k, t.v, ref);
		run(probsparse(), &p, &t);
		assert_true(error_vs_double(t.o, ref, t.nq) <= TOLERANCE);
		free(ref);
		tensors_release(&t);
	}
}

/*
 * One index matrix for every batch entry and head (as CAB): slices with the same Q, K and
 * V choose the same rows and give bit-identical outputs.
 */
static void test_probsparse_shares_one_sample_across_batch_and_heads(void **state)
{
	const int n = 257, m = 63, d = 16;
	struct attn_problem p = problem(2, 4, 4, n, m, d, ATTN_NC, NULL);
	size_t qs = (size_t)n * d, kvs = (size_t)m * d;
	struct tensors t;

	(void)state;
	tensors_make(&t, &p, SEED + 5000, 1.0);
	for (int s = 1; s < 8; s++) {
		memcpy(t.q + s * qs, t.q, sizeof(float) * qs);
		memcpy(t.k + s * kvs, t.k, sizeof(float) * kvs);
		memcpy(t.v + s * kvs, t.v, sizeof(float) * kvs);
	}
	run(probsparse(), &p, &t);
	for (int s = 1; s < 8; s++)
		assert_memory_equal(t.o + s * qs, t.o, sizeof(float) * qs);
	tensors_release(&t);
}

/* Every key and value of every KV head, float32: 2 B Hkv M d 4 bytes, whatever c. */
static void test_probsparse_state_bytes_hold_every_key_and_value(void **state)
{
	const struct variant_ops *v = probsparse();
	double params[1] = { 1 };
	struct attn_problem p = problem(2, 8, 2, 300, 300, 64, ATTN_NS, NULL);

	(void)state;
	assert_non_null(v->state_bytes);
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 2 * 300 * 64 * 4);
	p = problem(1, 4, 4, 17, 33, 8, ATTN_NC, params);
	assert_true(v->state_bytes(&p) == 2.0 * 1 * 4 * 33 * 8 * 4);
}

/* Selection ranks all queries, so no causal pattern can be served. */
static void test_probsparse_refuses_causal_patterns(void **state)
{
	const struct variant_ops *v = probsparse();
	struct attn_problem cs = problem(1, 2, 2, 16, 16, 8, ATTN_CS, NULL);
	struct attn_problem cc = problem(1, 2, 2, 16, 24, 8, ATTN_CC, NULL);
	struct attn_problem ns = problem(1, 2, 2, 16, 16, 8, ATTN_NS, NULL);
	struct attn_problem nc = problem(1, 2, 2, 16, 24, 8, ATTN_NC, NULL);

	(void)state;
	assert_int_equal(variant_check_problem(v, &cs), -ENOTSUP);
	assert_int_equal(variant_check_problem(v, &cc), -ENOTSUP);
	assert_int_equal(variant_check_problem(v, &ns), 0);
	assert_int_equal(variant_check_problem(v, &nc), 0);
	assert_true(v->extensions == PATTERN_BIT(ATTN_NC));
	assert_null(v->decode_init);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probsparse_matches_an_fp64_transcription_on_awkward_shapes),
		cmocka_unit_test(test_probsparse_with_every_query_active_equals_vanilla),
		cmocka_unit_test(test_probsparse_gives_unselected_rows_the_mean_of_v),
		cmocka_unit_test(test_probsparse_leaves_exactly_u_rows_off_the_mean),
		cmocka_unit_test(test_probsparse_breaks_ties_towards_the_smaller_row),
		cmocka_unit_test(test_probsparse_lets_a_single_query_attend),
		cmocka_unit_test(test_probsparse_shares_one_sample_across_batch_and_heads),
		cmocka_unit_test(test_probsparse_state_bytes_hold_every_key_and_value),
		cmocka_unit_test(test_probsparse_refuses_causal_patterns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
