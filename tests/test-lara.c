/*
 * test-lara.c - the LARA variant against a double-precision transcription of its
 * formulas (segment-mean proposals, ℓ_c, kv_c, the scores r_ci and their softmax over
 * proposals), and the catalogue's properties: outputs are convex combinations of the
 * kv_c, sampling is seeded per query head and never from the data, self attention
 * shorter than C uses every row, its state, and the problems it refuses.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "variant-test.h"
#include "random.h"

/* fp32 kernel against its own formulas in fp64: the spec's bound for a transcription. */
#define TRANSCRIPTION_TOLERANCE 1e-5

/* The variant's documented noise stream for query head h: 26 + 1000 h. */
#define NOISE_STREAM(h) (26 + 1000 * (uint64_t)(h))

static const struct variant_ops *lara(void)
{
	return variant_must_find("lara");
}

/* ---- the transcription ---- */

/* CAB's segmentation: the first (s + 1) count − n segments of s = n / count rows, then s + 1. */
static void ref_segment(int n, int count, int seg, int *lo, int *hi)
{
	int s = n / count, shorter = n % count ? (s + 1) * count - n : count, at = 0;

	for (int g = 0; g < seg; g++)
		at += g < shorter ? s : s + 1;
	*lo = at;
	*hi = at + (seg < shorter ? s : s + 1);
}

static double ref_dot(const double *a, const double *b, int d)
{
	double s = 0;

	for (int x = 0; x < d; x++)
		s += a[x] * b[x];
	return s;
}

/* ℓ_c(x) = s ω_c·x − s‖x‖²/2. */
static double ref_ell(const double *omega, const double *x, int d, double s)
{
	return s * ref_dot(omega, x, d) - s * ref_dot(x, x, d) / 2;
}

/* Proposals of one slice: μ = q̄ + k̄ and ω = μ (+ noise), c x d each. */
static void ref_proposals(const double *q, const double *k, int n, int m, int d, int c,
			  const double *noise, double *mu, double *omega)
{
	for (int seg = 0; seg < c; seg++) {
		int qlo, qhi, klo, khi;

		ref_segment(n, c, seg, &qlo, &qhi);
		ref_segment(m, c, seg, &klo, &khi);
		assert_true(qhi > qlo && khi > klo);
		for (int x = 0; x < d; x++) {
			double qs = 0, ks = 0;

			for (int i = qlo; i < qhi; i++)
				qs += q[(size_t)i * d + x];
			for (int j = klo; j < khi; j++)
				ks += k[(size_t)j * d + x];
			mu[(size_t)seg * d + x] = qs / (qhi - qlo) + ks / (khi - klo);
			omega[(size_t)seg * d + x] = mu[(size_t)seg * d + x] +
						     (noise ? noise[(size_t)seg * d + x] : 0);
		}
	}
}

/*
 * One slice, every formula as written: kv (c x d) and out (n x d). r_ci keeps the term
 * −s‖q_i‖²/2 of ℓ_c(q_i) that the variant leaves out.
 */
static void ref_lara_slice(const double *q, const double *k, const double *v, int n, int m,
			   int d, int c, const double *noise, double *kv, double *out)
{
	double s = 1 / sqrt((double)d);
	double *mu = malloc(sizeof(double) * c * d), *omega = malloc(sizeof(double) * c * d);
	double *lse = malloc(sizeof(double) * c), *shift = malloc(sizeof(double) * c);
	double *lk = malloc(sizeof(double) * m), *r = malloc(sizeof(double) * c);

	assert_true(mu && omega && lse && shift && lk && r);
	ref_proposals(q, k, n, m, d, c, noise, mu, omega);
	for (int l = 0; l < c; l++) {
		const double *wl = omega + (size_t)l * d;
		double max = -INFINITY, sum = 0;

		for (int j = 0; j < m; j++) {
			lk[j] = ref_ell(wl, k + (size_t)j * d, d, s);
			max = fmax(max, lk[j]);
		}
		for (int x = 0; x < d; x++)
			kv[(size_t)l * d + x] = 0;
		for (int j = 0; j < m; j++) {
			double e = exp(lk[j] - max);

			sum += e;
			for (int x = 0; x < d; x++)
				kv[(size_t)l * d + x] += e * v[(size_t)j * d + x];
		}
		for (int x = 0; x < d; x++)
			kv[(size_t)l * d + x] /= sum;
		lse[l] = max + log(sum);
		shift[l] = ref_ell(wl, mu + (size_t)l * d, d, s);
	}
	for (int i = 0; i < n; i++) {
		const double *qi = q + (size_t)i * d;
		double max = -INFINITY, sum = 0;

		for (int l = 0; l < c; l++) {
			r[l] = s * ref_dot(mu + (size_t)l * d, qi, d) +
			       ref_ell(omega + (size_t)l * d, qi, d, s) + lse[l] - shift[l];
			max = fmax(max, r[l]);
		}
		for (int x = 0; x < d; x++)
			out[(size_t)i * d + x] = 0;
		for (int l = 0; l < c; l++) {
			double w = exp(r[l] - max);

			sum += w;
			for (int x = 0; x < d; x++)
				out[(size_t)i * d + x] += w * kv[(size_t)l * d + x];
		}
		for (int x = 0; x < d; x++)
			out[(size_t)i * d + x] /= sum;
	}
	free(mu);
	free(omega);
	free(lse);
	free(shift);
	free(lk);
	free(r);
}

/* Proposals used for a problem: C, or N for self attention shorter than C. */
static int ref_count(const struct attn_problem *p, int c)
{
	return p->pattern == ATTN_NS && p->n < c ? p->n : c;
}

/* Query head h's noise: c x d normals from the plan generator, row by row. */
static void ref_noise(const struct attn_problem *p, int h, int c, double *noise)
{
	struct plan_rng g = plan_rng_make(p->seed, NOISE_STREAM(h));

	for (size_t x = 0; x < (size_t)c * p->d; x++)
		noise[x] = plan_rng_normal(&g);
}

/*
 * The whole problem in double, laid out like O; kv_all (batch x heads x c x d) gets
 * every slice's kv_c when not NULL.
 */
static void lara_reference(const struct attn_problem *p, int landmarks, bool sample,
			   const float *q, const float *k, const float *v, double *out,
			   double *kv_all)
{
	int c = ref_count(p, landmarks), n = p->n, m = p->m, d = p->d;
	double *qd = malloc(sizeof(double) * n * d), *kd = malloc(sizeof(double) * m * d);
	double *vd = malloc(sizeof(double) * m * d), *kv = malloc(sizeof(double) * c * d);
	double *noise = malloc(sizeof(double) * c * d);

	assert_true(qd && kd && vd && kv && noise);
	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);

			for (size_t x = 0; x < (size_t)n * d; x++)
				qd[x] = q[qo + x];
			for (size_t x = 0; x < (size_t)m * d; x++) {
				kd[x] = k[kvo + x];
				vd[x] = v[kvo + x];
			}
			if (sample)
				ref_noise(p, h, c, noise);
			ref_lara_slice(qd, kd, vd, n, m, d, c, sample ? noise : NULL, kv,
				       out + qo);
			if (kv_all)
				memcpy(kv_all + ((size_t)b * p->heads + h) * c * d, kv,
				       sizeof(double) * c * d);
		}
	free(qd);
	free(kd);
	free(vd);
	free(kv);
	free(noise);
}

/* ---- helpers ---- */

static void check_transcription(const struct attn_problem *p, int landmarks, bool sample,
				uint64_t seed)
{
	struct tensors t;
	double *ref = reference_make(&t, p, seed);

	lara_reference(p, landmarks, sample, t.q, t.k, t.v, ref, NULL);
	check_output(lara(), p, &t, ref, TRANSCRIPTION_TOLERANCE, " C=%d sample=%d", landmarks,
		     sample);
}

/* Every awkward shape of both patterns; cross shapes shorter than C are refused, skipped. */
static void check_every_shape(int landmarks, bool sample, uint64_t seed)
{
	double params[2] = { landmarks, sample };
	struct shape_walk w = { 0 };
	struct attn_problem p;

	while (landmark_walk_next(&w, params, &p)) {
		if (p.pattern == ATTN_NC && variant_check_problem(lara(), &p) == -ENOTSUP)
			continue;
		check_transcription(&p, landmarks, sample, seed++);
	}
}

/* ---- tests ---- */

static void test_lara_matches_an_fp64_transcription(void **state)
{
	(void)state;
	check_every_shape(16, false, SEED);
}

/* One proposal, a count that divides nothing, more proposals than most sequences. */
static void test_lara_matches_the_transcription_for_other_landmark_counts(void **state)
{
	static const int counts[] = { 1, 7, 32 };

	(void)state;
	for (int i = 0; i < COUNT(counts); i++)
		check_every_shape(counts[i], false, SEED + 100 * (i + 1));
}

/* The noise is the plan generator's, from (seed, query head) only. */
static void test_lara_sampling_matches_a_transcription_with_the_plan_noise(void **state)
{
	(void)state;
	check_every_shape(16, true, SEED + 1000);
}

/*
 * o_i = Σ_c softmax_c(r_ci) kv_c: every output coordinate lies between the smallest and
 * largest of that coordinate over the kv_c, recomputed in fp64.
 */
static void test_lara_outputs_are_convex_combinations_of_the_kv_c(void **state)
{
	static const int shapes[][2] = { { 257, 257 }, { 17, 17 }, { 5, 5 }, { 63, 257 },
					 { 257, 17 } };
	/* fp32 rounding of outputs of size about 1 */
	const double slack = 1e-5;

	(void)state;
	for (int sample = 0; sample <= 1; sample++)
		for (int si = 0; si < COUNT(shapes); si++) {
			int n = shapes[si][0], m = shapes[si][1];
			enum attn_pattern pat = n == m ? ATTN_NS : ATTN_NC;
			double params[2] = { 16, sample };
			struct attn_problem p = problem(2, 4, 2, n, m, 12, pat, params);
			int c = ref_count(&p, 16), inside = 0;
			struct tensors t;
			double *ref, *kv;

			tensors_make(&t, &p, SEED + 2000 + si, 1.0);
			ref = malloc(sizeof(double) * t.nq);
			kv = malloc(sizeof(double) * p.batch * p.heads * c * p.d);
			assert_true(ref && kv);
			lara_reference(&p, 16, sample, t.q, t.k, t.v, ref, kv);
			run(lara(), &p, &t);
			for (int sl = 0; sl < p.batch * p.heads; sl++)
				for (int i = 0; i < n; i++)
					for (int x = 0; x < p.d; x++) {
						const double *kvs = kv + (size_t)sl * c * p.d;
						double lo = INFINITY, hi = -INFINITY;
						float o = t.o[((size_t)sl * n + i) * p.d + x];

						for (int l = 0; l < c; l++) {
							lo = fmin(lo, kvs[(size_t)l * p.d + x]);
							hi = fmax(hi, kvs[(size_t)l * p.d + x]);
						}
						assert_true(o >= lo - slack && o <= hi + slack);
						/* inside, unless one proposal takes all */
						inside += o > lo + slack && o < hi - slack;
					}
			/* the property is not vacuous: outputs are mixtures, not single kv_c */
			assert_true(inside > 0);
			free(ref);
			free(kv);
			tensors_release(&t);
		}
}

/*
 * lara.sample=1 draws ω_c around μ_c from the plan generator: two runs agree bit for bit,
 * the result differs from the mean proposals and changes with the seed.
 */
static void test_lara_sampling_is_deterministic_and_differs_from_the_means(void **state)
{
	double sampled[2] = { 16, 1 }, mean[2] = { 16, 0 };
	struct attn_problem p = problem(2, 4, 2, 257, 257, 64, ATTN_NS, sampled);
	struct tensors a, b, c, e;

	(void)state;
	tensors_make(&a, &p, SEED + 3000, 1.0);
	tensors_copy(&b, &a);
	tensors_copy(&c, &a);
	tensors_copy(&e, &a);
	run(lara(), &p, &a);
	run(lara(), &p, &b);
	assert_memory_equal(a.o, b.o, sizeof(float) * a.nq);
	p.params = mean;
	run(lara(), &p, &c);
	assert_true(error_vs_float(a.o, c.o, a.nq) > 1e-2);
	p.params = sampled;
	p.seed = SEED + 1;
	run(lara(), &p, &e);
	assert_true(error_vs_float(a.o, e.o, a.nq) > 1e-2);
	tensors_release(&a);
	tensors_release(&b);
	tensors_release(&c);
	tensors_release(&e);
}

/* Noise indexed by the query head: GQA equals MHA with K/V repeated when sampling too. */
static void test_lara_sampled_gqa_equals_mha_with_repeated_kv(void **state)
{
	double params[2] = { 16, 1 };
	struct attn_problem gqa = problem(2, 4, 1, 63, 63, 16, ATTN_NS, params);
	struct attn_problem mha = problem(2, 4, 4, 63, 63, 16, ATTN_NS, params);
	size_t slice = (size_t)63 * 16;
	struct tensors g, h;

	(void)state;
	tensors_make(&g, &gqa, SEED + 4000, 1.0);
	tensors_make(&h, &mha, SEED + 4000, 1.0);
	memcpy(h.q, g.q, sizeof(float) * g.nq);
	for (int b = 0; b < 2; b++)
		for (int hd = 0; hd < 4; hd++) {
			memcpy(h.k + problem_kv_offset(&mha, b, hd),
			       g.k + problem_kv_offset(&gqa, b, hd), sizeof(float) * slice);
			memcpy(h.v + problem_kv_offset(&mha, b, hd),
			       g.v + problem_kv_offset(&gqa, b, hd), sizeof(float) * slice);
		}
	run(lara(), &gqa, &g);
	run(lara(), &mha, &h);
	/* the same numbers through the same code: rounding noise only */
	assert_true(error_vs_float(g.o, h.o, g.nq) <= 1e-6);
	tensors_release(&g);
	tensors_release(&h);
}

/*
 * ns with N < C: each row its own segment (C = N). Any C >= N gives the same result; one
 * row outputs its own value, whatever the query.
 */
static void test_lara_self_attention_shorter_than_c_uses_every_row(void **state)
{
	static const int short_sizes[] = { 1, 5, 15 };
	double sixteen[2] = { 16, 0 }, forty[2] = { 40, 0 };

	(void)state;
	for (int si = 0; si < COUNT(short_sizes); si++)
		for (int di = 0; di < COUNT(dims); di++) {
			int n = short_sizes[si];
			struct attn_problem p = problem(2, 4, 2, n, n, dims[di], ATTN_NS,
							sixteen);
			struct tensors a, b;

			for (int sample = 0; sample <= 1; sample++) {
				double params[2] = { 16, sample };
				struct attn_problem ps = p;

				ps.params = params;
				check_transcription(&ps, 16, sample, SEED + 5000 + si);
			}
			tensors_make(&a, &p, SEED + 5200 + si, 1.0);
			tensors_copy(&b, &a);
			run(lara(), &p, &a);
			p.params = forty;
			run(lara(), &p, &b);
			assert_memory_equal(a.o, b.o, sizeof(float) * a.nq);
			if (n == 1)
				for (int sl = 0; sl < p.batch * p.heads; sl++) {
					const float *vs = a.v + problem_kv_offset(&p, sl / p.heads,
										  sl % p.heads);

					for (int x = 0; x < p.d; x++)
						assert_float_equal(a.o[(size_t)sl * p.d + x], vs[x],
								   1e-6 * (1 + fabs(vs[x])));
				}
			assert_true(lara()->state_bytes(&p) == 2.0 * 2 * 4 * n * dims[di] * 4);
			tensors_release(&a);
			tensors_release(&b);
		}
}

/* Per query head C kv_c vectors and C proposal vectors of d floats. */
static void test_lara_state_bytes_follow_the_formula(void **state)
{
	double params[2] = { 32, 1 };
	struct attn_problem p = problem(2, 8, 2, 257, 257, 64, ATTN_NS, NULL);

	(void)state;
	assert_non_null(lara()->state_bytes);
	assert_true(lara()->state_bytes(&p) == 2.0 * 2 * 8 * 16 * 64 * 4);
	p.params = params;
	assert_true(lara()->state_bytes(&p) == 2.0 * 2 * 8 * 32 * 64 * 4);
	p = problem(1, 4, 1, 63, 257, 12, ATTN_NC, NULL);
	assert_true(lara()->state_bytes(&p) == 2.0 * 1 * 4 * 16 * 12 * 4);
}

/* cs and cc are not offered; nc needs C rows of queries and of keys. */
static void test_lara_refuses_causal_and_short_cross_problems(void **state)
{
	double params[2] = { 8, 0 };

	(void)state;
	assert_int_equal(lara()->extensions, PATTERN_BIT(ATTN_NC));
	assert_null(lara()->decode_init);
	check_landmark_refusals(lara(), params);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lara_matches_an_fp64_transcription),
		cmocka_unit_test(test_lara_matches_the_transcription_for_other_landmark_counts),
		cmocka_unit_test(test_lara_sampling_matches_a_transcription_with_the_plan_noise),
		cmocka_unit_test(test_lara_outputs_are_convex_combinations_of_the_kv_c),
		cmocka_unit_test(test_lara_sampling_is_deterministic_and_differs_from_the_means),
		cmocka_unit_test(test_lara_sampled_gqa_equals_mha_with_repeated_kv),
		cmocka_unit_test(test_lara_self_attention_shorter_than_c_uses_every_row),
		cmocka_unit_test(test_lara_state_bytes_follow_the_formula),
		cmocka_unit_test(test_lara_refuses_causal_and_short_cross_problems),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
