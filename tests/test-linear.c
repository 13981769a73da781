/*
 * test-linear.c - linear attention against a double-precision transcription of its
 * naive quadratic form, and the properties its catalogue entry lists: outputs are
 * convex combinations of the visible values, and its state is d x d whatever the length.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>


#include "variant-test.h"

/* fp32 chunked products against fp64 loops: the catalogue's bound for approximations. */
#define TOLERANCE 1e-5

static double phi(float x)
{
	return x > 0 ? (double)x + 1 : exp((double)x);
}

/*
 * o_i = Σ_j (φ(q_i)·φ(k_j)) v_j / (Σ_j φ(q_i)·φ(k_j) + 1e-6) over j <= i (cs) or all j:
 * the quadratic form the chunked kernel reorders.
 */
static void naive_linear(const struct attn_problem *p, const float *q, const float *k,
			 const float *v, double *out)
{
	int d = p->d;

	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			const float *qs = q + problem_q_offset(p, b, h);
			const float *ks = k + problem_kv_offset(p, b, h);
			const float *vs = v + problem_kv_offset(p, b, h);
			double *os = out + problem_q_offset(p, b, h);

			for (int i = 0; i < p->n; i++) {
				int keys = p->pattern == ATTN_CS ? i + 1 : p->m;
				double den = 0;

				for (int c = 0; c < d; c++)
					os[(size_t)i * d + c] = 0;
				for (int j = 0; j < keys; j++) {
					double w = 0;

					for (int c = 0; c < d; c++)
						w += phi(qs[(size_t)i * d + c]) *
						     phi(ks[(size_t)j * d + c]);
					den += w;
					for (int c = 0; c < d; c++)
						os[(size_t)i * d + c] += w * vs[(size_t)j * d + c];
				}
				for (int c = 0; c < d; c++)
					os[(size_t)i * d + c] /= den + 1e-6;
			}
		}
}

static void check_shape(const struct attn_problem *p, uint64_t seed)
{
	struct tensors t;
	double *ref = reference_make(&t, p, seed);

	naive_linear(p, t.q, t.k, t.v, ref);
	check_output(variant_must_find("linear"), p, &t, ref, TOLERANCE, "%s", "");
}

static void test_linear_matches_its_naive_quadratic_form(void **state)
{
	uint64_t seed = VARIANT_TEST_SEED;
	int checked = 0;

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		struct shape_walk w = { 0 };
		struct attn_problem p;

		while (shape_walk_next(&w, pat, NULL, &p)) {
			check_shape(&p, seed++);
			checked++;
		}
	}
	assert_true(checked > 0);
}

/* The weights are positive and sum to (almost) one: each output lies in the values' hull. */
static void test_linear_outputs_are_convex_combinations_of_visible_values(void **state)
{
	const struct variant_ops *v = variant_find("linear");
	static const enum attn_pattern patterns[] = { ATTN_NS, ATTN_CS };

	(void)state;
	for (int pi = 0; pi < COUNT(patterns); pi++) {
		struct attn_problem p = problem(1, 2, 2, 150, 150, 16, patterns[pi], NULL);
		struct tensors t;

		tensors_make(&t, &p, VARIANT_TEST_SEED + pi, 2.0);
		run(v, &p, &t);
		for (int h = 0; h < 2; h++) {
			const float *vs = t.v + problem_kv_offset(&p, 0, h);
			const float *os = t.o + problem_q_offset(&p, 0, h);

			for (int i = 0; i < p.n; i++) {
				int keys = patterns[pi] == ATTN_CS ? i + 1 : p.m;

				for (int c = 0; c < p.d; c++) {
					double lo = INFINITY, hi = -INFINITY;

					for (int j = 0; j < keys; j++) {
						lo = fmin(lo, vs[(size_t)j * p.d + c]);
						hi = fmax(hi, vs[(size_t)j * p.d + c]);
					}
					/* rounding of a few hundred fp32 terms */
					assert_true(os[(size_t)i * p.d + c] >= lo - 1e-4);
					assert_true(os[(size_t)i * p.d + c] <= hi + 1e-4);
				}
			}
		}
		tensors_release(&t);
	}
}

/* The chunk edge (64 rows) must not show: cs rows either side of it, long sequences. */
static void test_linear_causal_chunks_join_without_a_seam(void **state)
{
	static const int lengths[] = { 63, 64, 65, 128, 129, 1000 };

	(void)state;
	for (int i = 0; i < COUNT(lengths); i++) {
		struct attn_problem p = problem(1, 2, 1, lengths[i], lengths[i], 16, ATTN_CS,
						NULL);

		check_shape(&p, VARIANT_TEST_SEED + 100 + i);
	}
}

/* S is d x d and z is d per KV head: independent of the length, shared by a GQA group. */
static void test_linear_state_is_d_squared_per_kv_head(void **state)
{
	const struct variant_ops *v = variant_find("linear");
	struct attn_problem shortp = problem(2, 8, 2, 64, 64, 32, ATTN_CS, NULL);
	struct attn_problem longp = problem(2, 8, 2, 8192, 8192, 32, ATTN_NS, NULL);

	(void)state;
	assert_non_null(v->state_bytes);
	assert_true(v->state_bytes(&shortp) == 2.0 * 2 * (32 * 32 + 32) * 4);
	assert_true(v->state_bytes(&longp) == v->state_bytes(&shortp));
}

/* Decoding over long runs of positions stays on the chunked forward's rows. */
static void test_linear_decoding_matches_its_forward_past_many_chunks(void **state)
{
	struct attn_problem p = problem(1, 4, 2, 300, 300, 16, ATTN_CS, NULL);

	(void)state;
	check_decode(variant_find("linear"), &p, VARIANT_TEST_SEED + 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_linear_matches_its_naive_quadratic_form),
		cmocka_unit_test(test_linear_outputs_are_convex_combinations_of_visible_values),
		cmocka_unit_test(test_linear_causal_chunks_join_without_a_seam),
		cmocka_unit_test(test_linear_state_is_d_squared_per_kv_head),
		cmocka_unit_test(test_linear_decoding_matches_its_forward_past_many_chunks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
