/*
 * test-s4d.c - the S4D layer against an independent fp64 transcription of its convolution
 * form, and the properties of VARIANTS.md section 28: Q and K are ignored, ns equals cs,
 * causality, the linear output without the activation, refused patterns, decoding.
 *
 * The reference rebuilds the plan from the description in variants/s4d.c (the streams of
 * variants/random.h are the plan, not the computation), then builds each channel's
 * kernel K[l] = 2 Re sum_k C_k (e^{dt A_k} - 1) / A_k e^{l dt A_k} explicitly with
 * complex exponentials and convolves directly, O(n^2): the catalogue's "FFT ==
 * recurrence" check with the direct convolution in place of the FFT.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <complex.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "random.h"
#include "variant-test.h"

/* The variant sums in double and rounds once to float; 1e-5 is the spec's bound. */
#define TOLERANCE 1e-5
/* Scaling by 2 is exact in binary arithmetic; allow only a rounding's worth. */
#define LINEAR_TOLERANCE 1e-6
/* Rows the convolution cannot see may move rows <= t only by rounding (spec). */
#define CAUSAL_TOLERANCE 1e-5

#define MAX_MODES 128

static const enum attn_pattern self_patterns[] = { ATTN_NS, ATTN_CS };

static const struct variant_ops *s4d(void)
{
	return variant_must_find("s4d");
}

/* ---- the fp64 transcription ---- */

/* One channel's continuous parameters, as section 28 defines them. */
struct ref_channel {
	double complex c[MAX_MODES];
	double dt, d;
};

struct ref_plan {
	int modes;
	double complex a[MAX_MODES], b[MAX_MODES];
};

/* A_k ('inverse' init) and B_k ~ CN(0, 1) normalised, from stream 0. */
static void ref_plan_make(struct ref_plan *pl, uint64_t seed, int d_state)
{
	const double pi = 3.14159265358979323846;
	struct plan_rng r = plan_rng_make(seed, 0);
	double sum = 0;

	pl->modes = d_state / 2;
	for (int k = 0; k < pl->modes; k++) {
		double re = plan_rng_normal(&r) * sqrt(0.5);
		double im = plan_rng_normal(&r) * sqrt(0.5);

		pl->a[k] = -0.5 + I * (d_state / pi * ((double)d_state / (2 * k + 1) - 1));
		pl->b[k] = re + I * im;
	}
	for (int k = 0; k < pl->modes; k++)
		sum += cabs(pl->b[k] / pl->a[k]) * cabs(pl->b[k] / pl->a[k]);
	for (int k = 0; k < pl->modes; k++)
		pl->b[k] /= sqrt(2 * sum);
}

/* C_k = CN(0, 1) B_k, dt log-uniform in [0.001, 0.1], D ~ N(0, 1); stream (h+1) 2^32 + c. */
static void ref_channel_make(struct ref_channel *ch, const struct ref_plan *pl,
			     uint64_t seed, int h, int c)
{
	struct plan_rng r = plan_rng_make(seed, ((uint64_t)(h + 1) << 32) + (uint64_t)c);
	double lo = log(0.001), hi = log(0.1);

	for (int k = 0; k < pl->modes; k++) {
		double re = plan_rng_normal(&r) * sqrt(0.5);
		double im = plan_rng_normal(&r) * sqrt(0.5);

		ch->c[k] = (re + I * im) * pl->b[k];
	}
	ch->dt = exp(lo + plan_rng_uniform(&r) * (hi - lo));
	ch->d = plan_rng_normal(&r);
}

static double ref_gelu(double y)
{
	return 0.5 * y * (1 + erf(y / sqrt(2.0)));
}

/* The whole problem: kernel per (head, channel), then the direct causal convolution. */
static void s4d_reference(const struct attn_problem *p, int d_state, bool act,
			  const float *v, double *out)
{
	struct ref_plan pl;
	struct ref_channel ch;
	int n = p->n, group = p->heads / p->kv_heads;
	double *kernel = malloc(sizeof(double) * n), *u = malloc(sizeof(double) * n);

	assert_non_null(kernel);
	assert_non_null(u);
	ref_plan_make(&pl, p->seed, d_state);
	for (int h = 0; h < p->heads; h++) {
		for (int c = 0; c < p->d; c++) {
			ref_channel_make(&ch, &pl, p->seed, h, c);
			for (int l = 0; l < n; l++) {
				double complex sum = 0;

				for (int k = 0; k < pl.modes; k++) {
					double complex da = ch.dt * pl.a[k];

					sum += ch.c[k] * (cexp(da) - 1) / pl.a[k] * cexp(l * da);
				}
				kernel[l] = 2 * creal(sum);
			}
			for (int b = 0; b < p->batch; b++) {
				const float *vs = v + ((size_t)b * p->kv_heads + h / group) * n * p->d;
				double *os = out + ((size_t)b * p->heads + h) * n * p->d;

				for (int s = 0; s < n; s++)
					u[s] = vs[(size_t)s * p->d + c];
				for (int t = 0; t < n; t++) {
					double y = ch.d * u[t];

					for (int s = 0; s <= t; s++)
						y += kernel[t - s] * u[s];
					os[(size_t)t * p->d + c] = act ? ref_gelu(y) : y;
				}
			}
		}
	}
	free(kernel);
	free(u);
}

/* Runs the variant on a fresh draw and compares it with the transcription. */
static void check_against_reference(const struct attn_problem *p, int d_state, bool act,
				    uint64_t seed)
{
	struct tensors t;
	double *ref = reference_make(&t, p, seed);

	s4d_reference(p, d_state, act, t.v, ref);
	check_output(s4d(), p, &t, ref, TOLERANCE, " state=%d act=%d", d_state, act);
}

static void test_s4d_matches_a_direct_convolution_on_awkward_shapes(void **state)
{
	uint64_t seed = SEED;
	int checked = 0;

	(void)state;
	for (int pi = 0; pi < COUNT(self_patterns); pi++) {
		struct shape_walk w = { 0 };
		struct attn_problem p;

		/* NULL params: the declared defaults, d_state 16, GELU */
		while (shape_walk_next(&w, self_patterns[pi], NULL, &p)) {
			check_against_reference(&p, 16, true, seed++);
			checked++;
		}
	}
	assert_int_equal(checked, 72);
}

static void test_s4d_matches_a_direct_convolution_for_every_state_and_activation(void **state)
{
	static const int states[] = { 2, 4, 16, 64, 256 };
	uint64_t seed = SEED + 100;

	(void)state;
	for (int si = 0; si < COUNT(states); si++)
		for (int act = 0; act <= 1; act++)
			for (int pi = 0; pi < COUNT(self_patterns); pi++) {
				double params[2] = { states[si], act };
				struct attn_problem p = problem(2, 4, 2, 63, 63, 12,
								self_patterns[pi], params);

				check_against_reference(&p, states[si], act, seed++);
			}
}

/* dt = 0.001 decays over thousands of steps: the recurrence must not drift over them. */
static void test_s4d_stays_accurate_over_long_sequences(void **state)
{
	double params[2] = { 64, 0 };
	struct attn_problem p = problem(1, 2, 1, 4096, 4096, 8, ATTN_CS, params);

	(void)state;
	check_against_reference(&p, 64, false, SEED + 200);
}

/* ---- properties ---- */

static void test_s4d_ignores_queries_and_keys(void **state)
{
	(void)state;
	for (int pi = 0; pi < COUNT(self_patterns); pi++) {
		struct attn_problem p = problem(2, 4, 2, 40, 40, 12, self_patterns[pi], NULL);
		struct tensors a, b;
		struct rng g = { SEED + 300 };

		tensors_make(&a, &p, SEED + pi, 1.0);
		tensors_copy(&b, &a);
		fill_normal(&g, b.q, b.nq, 5.0);
		fill_normal(&g, b.k, b.nkv, 5.0);
		run(s4d(), &p, &a);
		run(s4d(), &p, &b);
		assert_memory_equal(a.o, b.o, sizeof(float) * a.nq);
		tensors_release(&a);
		tensors_release(&b);
	}
}

/* CAB's S4D is not bidirectional: ns is the same causal convolution as cs. */
static void test_s4d_gives_the_same_output_in_ns_and_cs(void **state)
{
	(void)state;
	for (int di = 0; di < COUNT(dims); di++) {
		struct attn_problem ns = problem(2, 4, 1, 63, 63, dims[di], ATTN_NS, NULL);
		struct attn_problem cs = problem(2, 4, 1, 63, 63, dims[di], ATTN_CS, NULL);
		struct tensors a, b;

		tensors_make(&a, &ns, SEED + 400 + di, 1.0);
		tensors_copy(&b, &a);
		run(s4d(), &ns, &a);
		run(s4d(), &cs, &b);
		assert_memory_equal(a.o, b.o, sizeof(float) * a.nq);
		tensors_release(&a);
		tensors_release(&b);
	}
}

/* Both patterns: changing V rows after t moves no row <= t; a change at t moves row t. */
static void test_s4d_ignores_later_values_in_both_patterns(void **state)
{
	static const int cuts[] = { 0, 6, 20, 41, 61 };

	(void)state;
	for (int pi = 0; pi < COUNT(self_patterns); pi++) {
		struct attn_problem p = problem(2, 4, 2, 63, 63, 12, self_patterns[pi], NULL);
		struct tensors a;

		tensors_make(&a, &p, SEED + 500 + pi, 1.0);
		run(s4d(), &p, &a);
		for (int ci = 0; ci < COUNT(cuts); ci++) {
			int t = cuts[ci];
			struct rng g = { SEED + 7 * (uint64_t)t };
			struct tensors b;

			tensors_copy(&b, &a);
			for (size_t s = 0; s < (size_t)p.batch * p.kv_heads; s++)
				fill_normal(&g, b.v + (s * p.n + t + 1) * p.d,
					    (size_t)(p.n - t - 1) * p.d, 3.0);
			run(s4d(), &p, &b);
			assert_true(change_up_to(&p, a.o, b.o, t) <= CAUSAL_TOLERANCE);
			/* and the test can see a change: row t + 1 moved */
			assert_true(change_up_to(&p, a.o, b.o, t + 1) > 1e-3);
			tensors_release(&b);
		}
		tensors_release(&a);
	}
}

/* act = 0: out(2V) = 2 out(V) and out(V1 + V2) = out(V1) + out(V2). */
static void test_s4d_without_activation_is_linear_in_v(void **state)
{
	double params[2] = { 16, 0 };

	(void)state;
	for (int pi = 0; pi < COUNT(self_patterns); pi++) {
		struct attn_problem p = problem(2, 4, 2, 63, 63, 12, self_patterns[pi], params);
		struct tensors a, b, c;
		struct rng g = { SEED + 600 };
		float *sum = malloc(sizeof(float) * 2 * 4 * 63 * 12);

		assert_non_null(sum);
		tensors_make(&a, &p, SEED + 601, 1.0);
		tensors_copy(&b, &a);
		tensors_copy(&c, &a);
		for (size_t i = 0; i < a.nkv; i++)
			b.v[i] = 2 * a.v[i];
		fill_normal(&g, c.v, c.nkv, 1.0);
		run(s4d(), &p, &a);
		run(s4d(), &p, &b);
		run(s4d(), &p, &c);
		for (size_t i = 0; i < a.nq; i++)
			sum[i] = 2 * a.o[i];
		assert_true(error_vs_float(b.o, sum, a.nq) <= LINEAR_TOLERANCE);

		for (size_t i = 0; i < a.nq; i++)
			sum[i] = a.o[i] + c.o[i];
		for (size_t i = 0; i < a.nkv; i++)
			b.v[i] = a.v[i] + c.v[i];
		run(s4d(), &p, &b);
		/* V1 + V2 is rounded to float once: a few ulps of the inputs */
		assert_true(error_vs_float(b.o, sum, a.nq) <= TOLERANCE);
		free(sum);
		tensors_release(&a);
		tensors_release(&b);
		tensors_release(&c);
	}
}

/* act = 1 is the exact erf GELU of the act = 0 output (the tanh form is ~1e-4 off). */
static void test_s4d_activation_is_the_exact_gelu_of_the_linear_output(void **state)
{
	double linear[2] = { 16, 0 }, gelu[2] = { 16, 1 };
	struct attn_problem p = problem(2, 4, 2, 63, 63, 12, ATTN_CS, linear);
	struct tensors a, b;
	double *want, err;

	(void)state;
	tensors_make(&a, &p, SEED + 700, 2.0);
	tensors_copy(&b, &a);
	run(s4d(), &p, &a);
	p.params = gelu;
	run(s4d(), &p, &b);
	want = malloc(sizeof(double) * a.nq);
	assert_non_null(want);
	for (size_t i = 0; i < a.nq; i++)
		want[i] = ref_gelu(a.o[i]);
	err = error_vs_double(b.o, want, a.nq);
	/* the linear output was rounded to float before the GELU: ~1e-7 */
	assert_true(err <= LINEAR_TOLERANCE);
	tensors_release(&a);
	tensors_release(&b);
	free(want);
}

static void test_s4d_refuses_cross_patterns(void **state)
{
	static const enum attn_pattern crossing[] = { ATTN_NC, ATTN_CC };

	(void)state;
	for (int pi = 0; pi < COUNT(crossing); pi++) {
		struct attn_problem p = problem(1, 2, 2, 17, 63, 8, crossing[pi], NULL);
		struct tensors t;

		assert_int_equal(variant_check_problem(s4d(), &p), -ENOTSUP);
		tensors_make(&t, &p, SEED, 1.0);
		assert_int_equal(s4d()->forward(&p, t.q, t.k, t.v, t.o), -ENOTSUP);
		tensors_release(&t);
	}
}

/* n = d_state / 2 complex modes: an odd d_state is not a layer; bounds are declared. */
static void test_s4d_refuses_odd_and_out_of_range_state_sizes(void **state)
{
	static const double bad[] = { 1, 3, 15, 255, 0, 258, 16.5 };
	struct attn_problem p = problem(1, 2, 2, 17, 17, 8, ATTN_CS, NULL);
	void *dec = &dec;

	(void)state;
	for (int i = 0; i < COUNT(bad); i++) {
		double params[2] = { bad[i], 1 };

		p.params = params;
		assert_int_not_equal(variant_check_problem(s4d(), &p), 0);
	}
	{
		double params[2] = { 15, 1 };
		struct tensors t;

		p.params = params;
		tensors_make(&t, &p, SEED, 1.0);
		assert_int_equal(s4d()->forward(&p, t.q, t.k, t.v, t.o), -EINVAL);
		assert_int_equal(s4d()->decode_init(&p, &dec), -EINVAL);
		assert_null(dec);
		tensors_release(&t);
	}
	for (int s = 2; s <= 256; s += 2) {
		double params[2] = { s, 0 };

		p.params = params;
		assert_int_equal(variant_check_problem(s4d(), &p), 0);
	}
}

/* B * H * d channels of d_state / 2 complex doubles, whatever the length and KV heads. */
static void test_s4d_state_bytes_follow_their_formula(void **state)
{
	double small[2] = { 2, 1 }, big[2] = { 64, 0 };
	struct attn_problem p = problem(2, 8, 2, 300, 300, 64, ATTN_CS, NULL);
	struct attn_problem q = problem(2, 8, 8, 5000, 5000, 64, ATTN_NS, NULL);

	(void)state;
	assert_non_null(s4d()->state_bytes);
	assert_true(s4d()->state_bytes(&p) == 2.0 * 8 * 64 * 8 * 16);
	assert_true(s4d()->state_bytes(&q) == s4d()->state_bytes(&p));
	p.params = small;
	assert_true(s4d()->state_bytes(&p) == 2.0 * 8 * 64 * 1 * 16);
	p.params = big;
	assert_true(s4d()->state_bytes(&p) == 2.0 * 8 * 64 * 32 * 16);
}

/* ---- decoding ---- */

static void test_s4d_decoding_matches_its_causal_forward_for_every_state_size(void **state)
{
	static const int states[] = { 2, 16, 64 };
	static const int lengths[] = { 1, 17, 130 };
	static const int decode_dims[] = { 8, 12, 40 };
	uint64_t seed = SEED + 800;

	(void)state;
	for (int si = 0; si < COUNT(states); si++)
		for (int act = 0; act <= 1; act++)
			for (int li = 0; li < COUNT(lengths); li++)
				for (int di = 0; di < COUNT(decode_dims); di++) {
					double params[2] = { states[si], act };
					int n = lengths[li], kv = kv_choices[(li + di) % 3];
					struct attn_problem p = problem(2, 4, kv, n, n,
									decode_dims[di],
									ATTN_CS, params);

					check_decode(s4d(), &p, seed++);
				}
}

static void test_s4d_decoding_refuses_other_patterns(void **state)
{
	static const enum attn_pattern others[] = { ATTN_NS, ATTN_NC, ATTN_CC };

	(void)state;
	for (int i = 0; i < COUNT(others); i++) {
		struct attn_problem p = problem(1, 2, 2, 16, 16, 8, others[i], NULL);
		void *dec = &dec;

		assert_int_equal(s4d()->decode_init(&p, &dec), -ENOTSUP);
		assert_null(dec);
	}
}

/* The recurrent state is n modes per channel, whatever the number of positions. */
static void test_s4d_decoding_state_does_not_grow_with_the_sequence(void **state)
{
	struct attn_problem shortp = problem(1, 4, 2, 64, 64, 16, ATTN_CS, NULL);
	struct attn_problem longp = problem(1, 4, 2, 2048, 2048, 16, ATTN_CS, NULL);
	size_t short_peak = decode_peak(s4d(), &shortp), long_peak = decode_peak(s4d(), &longp);

	(void)state;
	assert_int_equal(short_peak, long_peak);
	assert_true(short_peak >= s4d()->state_bytes(&shortp));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_s4d_matches_a_direct_convolution_on_awkward_shapes),
		cmocka_unit_test(test_s4d_matches_a_direct_convolution_for_every_state_and_activation),
		cmocka_unit_test(test_s4d_stays_accurate_over_long_sequences),
		cmocka_unit_test(test_s4d_ignores_queries_and_keys),
		cmocka_unit_test(test_s4d_gives_the_same_output_in_ns_and_cs),
		cmocka_unit_test(test_s4d_ignores_later_values_in_both_patterns),
		cmocka_unit_test(test_s4d_without_activation_is_linear_in_v),
		cmocka_unit_test(test_s4d_activation_is_the_exact_gelu_of_the_linear_output),
		cmocka_unit_test(test_s4d_refuses_cross_patterns),
		cmocka_unit_test(test_s4d_refuses_odd_and_out_of_range_state_sizes),
		cmocka_unit_test(test_s4d_state_bytes_follow_their_formula),
		cmocka_unit_test(test_s4d_decoding_matches_its_causal_forward_for_every_state_size),
		cmocka_unit_test(test_s4d_decoding_refuses_other_patterns),
		cmocka_unit_test(test_s4d_decoding_state_does_not_grow_with_the_sequence),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
