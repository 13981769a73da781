/*
 * test-agent.c - agent attention against a double-precision transcription of the
 * catalogue's equations (segment means of Q as agents, the aggregation softmax over the
 * keys, the broadcast softmax over the agents), and the catalogue's properties: vanilla
 * when every query row is the same, outputs that are convex combinations of V, the
 * queries themselves as agents when N <= n, GQA as MHA, the patterns it refuses and why,
 * its state and FLOPs by formula, and a workspace that does not grow with the sequence.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "variant-test.h"

/* fp32 kernel against its own equations in fp64: the spec's bound for a transcription. */
#define TRANSCRIPTION_TOLERANCE 1e-5

/* The catalogue's default n. */
#define DEFAULT_AGENTS 64

static const struct variant_ops *agent(void)
{
	return variant_must_find("agent");
}

/* ---- the transcription (VARIANTS.md sections 21 and 24) ---- */

/*
 * Segment seg of count over n rows, as the catalogue states CAB's segmentation:
 * s = floor(n / count); if count divides n every segment has s rows, otherwise the first
 * a = (s + 1) count - n segments have s rows and the other count - a have s + 1, in order.
 */
static void ref_segment(int n, int count, int seg, int *lo, int *hi)
{
	int s = n / count, a = n % count ? (s + 1) * count - n : count, at = 0;

	for (int g = 0; g < seg; g++)
		at += g < a ? s : s + 1;
	*lo = at;
	*hi = at + (seg < a ? s : s + 1);
}

/* out (rows x d) = softmax over the cols columns of (x yᵀ)/√d, times z (cols x d). */
static void ref_softmax_attention(const double *x, int rows, const double *y, const double *z,
				  int cols, int d, double *out)
{
	double *w = malloc(sizeof(double) * cols);

	assert_non_null(w);
	for (int i = 0; i < rows; i++) {
		double max = -INFINITY, sum = 0;

		for (int j = 0; j < cols; j++) {
			double dotp = 0;

			for (int c = 0; c < d; c++)
				dotp += x[(size_t)i * d + c] * y[(size_t)j * d + c];
			w[j] = dotp / sqrt((double)d);
			max = fmax(max, w[j]);
		}
		for (int j = 0; j < cols; j++) {
			w[j] = exp(w[j] - max);
			sum += w[j];
		}
		for (int c = 0; c < d; c++) {
			double acc = 0;

			for (int j = 0; j < cols; j++)
				acc += w[j] * z[(size_t)j * d + c];
			out[(size_t)i * d + c] = acc / sum;
		}
	}
	free(w);
}

/* x (rows x d) in double from rows of float at from. */
static double *to_double(const float *from, int rows, int d)
{
	double *x = malloc(sizeof(double) * rows * d);

	assert_non_null(x);
	for (size_t i = 0; i < (size_t)rows * d; i++)
		x[i] = from[i];
	return x;
}

/*
 * Agent attention of the whole problem with n agents, laid out like O: per slice
 * A = segment means of Q into min(n, N) agents, V_A = softmax(σ A Kᵀ) V,
 * O = softmax(σ Q Aᵀ) V_A.
 */
static void agent_reference(const struct attn_problem *p, int n, const float *q,
			    const float *k, const float *v, double *out)
{
	int count = n < p->n ? n : p->n, d = p->d;

	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);
			double *qs = to_double(q + qo, p->n, d);
			double *ks = to_double(k + kvo, p->m, d);
			double *vs = to_double(v + kvo, p->m, d);
			double *a = calloc((size_t)count * d, sizeof(double));
			double *va = malloc(sizeof(double) * count * d);
			int end = 0;

			assert_true(a && va);
			for (int g = 0; g < count; g++) {
				int lo, hi;

				ref_segment(p->n, count, g, &lo, &hi);
				/* the segments are non-empty and tile the rows in order */
				assert_int_equal(lo, end);
				assert_true(hi > lo);
				end = hi;
				for (int i = lo; i < hi; i++)
					for (int c = 0; c < d; c++)
						a[(size_t)g * d + c] += qs[(size_t)i * d + c];
				for (int c = 0; c < d; c++)
					a[(size_t)g * d + c] /= hi - lo;
			}
			assert_int_equal(end, p->n);
			ref_softmax_attention(a, count, ks, vs, p->m, d, va);
			ref_softmax_attention(qs, p->n, a, va, count, d, out + qo);
			free(qs);
			free(ks);
			free(vs);
			free(a);
			free(va);
		}
}

/* ---- helpers ---- */

/* The variant with n agents against the transcription on a fresh N(0, 1) draw. */
static void check_transcription(struct attn_problem *p, int n, uint64_t seed)
{
	double params[1] = { n };
	struct tensors t;
	double *ref;

	p->params = params;
	ref = reference_make(&t, p, seed);
	agent_reference(p, n, t.q, t.k, t.v, ref);
	check_output(agent(), p, &t, ref, TRANSCRIPTION_TOLERANCE, " n=%d", n);
	p->params = NULL;
}

/* Every awkward shape: ns over sizes, nc over the cross pairs, each d and KV grouping. */
static void check_every_shape(int n, uint64_t seed)
{
	struct shape_walk w = { 0 };
	struct attn_problem p;

	while (landmark_walk_next(&w, NULL, &p))
		check_transcription(&p, n, seed++);
}

/* Output rows of p (slices x n rows x d) against an fp64 expectation; relative Frobenius. */
static void check_against(const struct attn_problem *p, const float *o, const double *want,
			  double tolerance, const char *what)
{
	size_t count = (size_t)p->batch * p->heads * p->n * p->d;

	check_error(agent(), p, error_vs_double(o, want, count), tolerance, " %s", what);
}

/* ---- tests ---- */

static void test_agent_matches_an_fp64_transcription(void **state)
{
	(void)state;
	check_every_shape(DEFAULT_AGENTS, SEED);
}

/*
 * One agent (the mean of all queries), few, more than the rows of most shapes, and past
 * a tile of agents; then longer sequences where both softmaxes run over several tiles of
 * keys (or agents) and the online rescaling is exercised.
 */
static void test_agent_matches_the_transcription_for_other_agent_counts(void **state)
{
	static const int counts[] = { 1, 7, 16, 65, 300 };
	static const struct {
		int n, m, d, kv, agents;
	} longer[] = {
		{ 1000, 1000, 64, 2, 130 },
		{ 1000, 1000, 12, 1, 300 },
		{ 600, 600, 8, 4, 600 },
		{ 300, 700, 12, 2, 257 },
		{ 777, 129, 64, 1, 64 },
	};
	uint64_t seed = SEED + 100;

	(void)state;
	for (int i = 0; i < COUNT(counts); i++)
		check_every_shape(counts[i], SEED + 1000 * (i + 1));
	for (int i = 0; i < COUNT(longer); i++) {
		enum attn_pattern pat = longer[i].n == longer[i].m ? ATTN_NS : ATTN_NC;
		struct attn_problem p = problem(1, 4, longer[i].kv, longer[i].n, longer[i].m,
						longer[i].d, pat, NULL);

		check_transcription(&p, longer[i].agents, seed++);
	}
}

/*
 * With every query row of a slice equal to one q, every agent is q, every V_A row is
 * vanilla's output for q, and each output is a convex combination of equal rows: vanilla.
 */
static void test_agent_with_identical_query_rows_equals_vanilla(void **state)
{
	static const int shapes[][2] = { { 17, 17 }, { 257, 257 }, { 600, 600 }, { 17, 63 },
					 { 257, 17 }, { 63, 700 } };
	uint64_t seed = SEED + 2000;

	(void)state;
	for (int si = 0; si < COUNT(shapes); si++)
		for (int di = 0; di < COUNT(dims); di++) {
			int n = shapes[si][0], m = shapes[si][1], d = dims[di];
			struct attn_problem p = problem(2, 4, 2, n, m, d,
							n == m ? ATTN_NS : ATTN_NC, NULL);
			struct tensors t;
			double *ref;

			tensors_make(&t, &p, seed++, 1.0);
			for (int s = 0; s < p.batch * p.heads; s++)
				for (int i = 1; i < n; i++)
					memcpy(t.q + ((size_t)s * n + i) * d,
					       t.q + (size_t)s * n * d, sizeof(float) * d);
			ref = malloc(sizeof(double) * t.nq);
			assert_non_null(ref);
			reference_attention(&p, t.q, t.k, t.v, ref);
			run(agent(), &p, &t);
			check_against(&p, t.o, ref, TRANSCRIPTION_TOLERANCE, "identical queries");
			free(ref);
			tensors_release(&t);
		}
}

/*
 * Both softmaxes give convex weights, so each output coordinate lies within the range of
 * that coordinate over the slice's values: checked on large, spread inputs; and when
 * every value row of a KV head is one row u, every output row of its query heads is u.
 */
static void test_agent_outputs_are_convex_combinations_of_values(void **state)
{
	static const int shapes[][2] = { { 1, 1 }, { 63, 63 }, { 257, 257 }, { 17, 63 },
					 { 257, 17 }, { 300, 1 } };
	/* fp32 rounding of weights that sum to 1, on values of magnitude <= 10s */
	const double slack = 1e-5;
	uint64_t seed = SEED + 3000;

	(void)state;
	for (int si = 0; si < COUNT(shapes); si++)
		for (int di = 0; di < COUNT(dims); di++) {
			int n = shapes[si][0], m = shapes[si][1], d = dims[di];
			struct attn_problem p = problem(2, 4, 2, n, m, d,
							n == m ? ATTN_NS : ATTN_NC, NULL);
			struct tensors t;

			tensors_make(&t, &p, seed++, 3.0);
			run(agent(), &p, &t);
			for (int b = 0; b < p.batch; b++)
				for (int h = 0; h < p.heads; h++) {
					const float *vs = t.v + problem_kv_offset(&p, b, h);
					const float *os = t.o + problem_q_offset(&p, b, h);

					for (int c = 0; c < d; c++) {
						double lo = INFINITY, hi = -INFINITY, mag;

						for (int j = 0; j < m; j++) {
							lo = fmin(lo, vs[(size_t)j * d + c]);
							hi = fmax(hi, vs[(size_t)j * d + c]);
						}
						mag = fmax(fabs(lo), fabs(hi));
						for (int i = 0; i < n; i++) {
							double x = os[(size_t)i * d + c];

							assert_true(x >= lo - slack * mag);
							assert_true(x <= hi + slack * mag);
						}
					}
				}
			/* constant value rows: the output is that row */
			for (int s = 0; s < p.batch * p.kv_heads; s++)
				for (int j = 1; j < m; j++)
					memcpy(t.v + ((size_t)s * m + j) * d, t.v + (size_t)s * m * d,
					       sizeof(float) * d);
			run(agent(), &p, &t);
			for (int b = 0; b < p.batch; b++)
				for (int h = 0; h < p.heads; h++) {
					const float *u = t.v + problem_kv_offset(&p, b, h);
					const float *os = t.o + problem_q_offset(&p, b, h);

					for (int i = 0; i < n; i++)
						for (int c = 0; c < d; c++)
							assert_true(fabs(os[(size_t)i * d + c] - u[c]) <=
								    slack * fmax(1, fabs(u[c])));
				}
			tensors_release(&t);
		}
}

/*
 * With N <= n every segment is one row, so A = Q: V_A is vanilla attention (the fp64
 * oracle) and O = softmax(σ Q Qᵀ) · vanilla. Any n >= N gives bit for bit the same output.
 */
static void test_agent_with_at_most_n_rows_takes_the_queries_as_agents(void **state)
{
	static const int shapes[][2] = { { 1, 1 }, { 17, 17 }, { 64, 64 }, { 17, 257 },
					 { 63, 5 } };
	uint64_t seed = SEED + 4000;

	(void)state;
	for (int si = 0; si < COUNT(shapes); si++)
		for (int di = 0; di < COUNT(dims); di++) {
			int n = shapes[si][0], m = shapes[si][1], d = dims[di];
			struct attn_problem p = problem(2, 4, 1, n, m, d,
							n == m ? ATTN_NS : ATTN_NC, NULL);
			double exact_n[1] = { n }, more[1] = { n + 100 };
			struct tensors t;
			double *vanilla, *want;
			float *first;

			tensors_make(&t, &p, seed++, 1.0);
			vanilla = malloc(sizeof(double) * t.nq);
			want = malloc(sizeof(double) * t.nq);
			first = malloc(sizeof(float) * t.nq);
			assert_true(vanilla && want && first);
			reference_attention(&p, t.q, t.k, t.v, vanilla);
			for (int s = 0; s < p.batch * p.heads; s++) {
				double *qs = to_double(t.q + (size_t)s * n * d, n, d);

				ref_softmax_attention(qs, n, qs, vanilla + (size_t)s * n * d, n, d,
						      want + (size_t)s * n * d);
				free(qs);
			}
			run(agent(), &p, &t);
			check_against(&p, t.o, want, TRANSCRIPTION_TOLERANCE, "A = Q");
			memcpy(first, t.o, sizeof(float) * t.nq);
			p.params = exact_n;
			run(agent(), &p, &t);
			assert_memory_equal(first, t.o, sizeof(float) * t.nq);
			p.params = more;
			run(agent(), &p, &t);
			assert_memory_equal(first, t.o, sizeof(float) * t.nq);
			free(vanilla);
			free(want);
			free(first);
			tensors_release(&t);
		}
}

/*
 * Nothing is shared across a query group, so grouped heads do MHA's very arithmetic:
 * the same output bit for bit as MHA with each KV head repeated, also over several tiles.
 */
static void test_agent_gives_gqa_as_mha_bit_for_bit(void **state)
{
	static const int shapes[][2] = { { 63, 63 }, { 257, 257 }, { 17, 63 }, { 257, 17 },
					 { 300, 700 } };
	uint64_t seed = SEED + 5000;

	(void)state;
	for (int si = 0; si < COUNT(shapes); si++)
		for (int di = 0; di < COUNT(dims); di++)
			for (int kv = 1; kv <= 2; kv++) {
				int n = shapes[si][0], m = shapes[si][1];
				struct attn_problem p = problem(2, 4, kv, n, m, dims[di],
								n == m ? ATTN_NS : ATTN_NC, NULL);

				check_gqa_is_mha_bit_for_bit(agent(), &p, seed++);
			}
}

/*
 * Why cs and cc are refused: every agent averages query rows from the whole sequence, so
 * changing only later query rows moves the earlier output rows (by far more than
 * rounding), with segments of several rows (N > n) and with A = Q (N <= n) alike.
 */
static void test_agent_depends_on_later_query_rows(void **state)
{
	static const int shapes[][2] = { { 257, 257 }, { 63, 63 }, { 257, 40 } };

	(void)state;
	for (int si = 0; si < COUNT(shapes); si++) {
		int n = shapes[si][0], m = shapes[si][1], t = 20;
		struct attn_problem p = problem(2, 4, 2, n, m, 16, n == m ? ATTN_NS : ATTN_NC,
						NULL);
		struct rng g = { SEED + 6000 + si };
		struct tensors a, b;

		tensors_make(&a, &p, SEED + 6000 + si, 1.0);
		tensors_copy(&b, &a);
		perturb_rows_after(&g, b.q, (size_t)p.batch * p.heads, p.n, p.d, t);
		run(agent(), &p, &a);
		run(agent(), &p, &b);
		assert_true(change_up_to(&p, a.o, b.o, t) > 1e-3);
		tensors_release(&a);
		tensors_release(&b);
	}
}

/*
 * ns and nc of any size (n_eff = min(n, N), so never too few rows); cs and cc refused
 * with -ENOTSUP; nc is the harness extension; not exact, no decoder.
 */
static void test_agent_refuses_causal_patterns_only(void **state)
{
	static const struct {
		int n, m;
		enum attn_pattern pattern;
		int ret;
	} cases[] = {
		{ 63, 63, ATTN_CS, -ENOTSUP },
		{ 63, 41, ATTN_CC, -ENOTSUP },
		{ 1, 1, ATTN_CS, -ENOTSUP },
		{ 1, 1, ATTN_NS, 0 },
		{ 3, 3, ATTN_NS, 0 },
		{ 1, 300, ATTN_NC, 0 },
		{ 300, 1, ATTN_NC, 0 },
		{ 15, 63, ATTN_NC, 0 },
	};
	double zero[1] = { 0 }, half[1] = { 2.5 }, one[1] = { 1 };

	(void)state;
	assert_int_equal(agent()->patterns, PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_NC));
	assert_int_equal(agent()->extensions, PATTERN_BIT(ATTN_NC));
	assert_int_equal(agent()->flags, 0);
	assert_string_equal(agent()->family, "lowrank");
	assert_null(agent()->decode_init);
	assert_null(agent()->decode_step);
	assert_null(agent()->decode_free);
	assert_int_equal(agent()->n_params, 1);
	assert_int_equal(variant_param_index(agent(), "agents"), 0);
	assert_true(agent()->params[0].def == DEFAULT_AGENTS);
	for (int i = 0; i < COUNT(cases); i++) {
		struct attn_problem p = problem(1, 2, 2, cases[i].n, cases[i].m, 16,
						cases[i].pattern, NULL);
		struct tensors t;

		assert_int_equal(variant_check_problem(agent(), &p), cases[i].ret);
		if (cases[i].ret)
			continue;
		tensors_make(&t, &p, SEED + i, 1.0);
		run(agent(), &p, &t);
		tensors_release(&t);
	}
	{
		struct attn_problem p = problem(1, 2, 2, 8, 8, 16, ATTN_CS, NULL);
		float x[2 * 8 * 16] = { 0 }, o[2 * 8 * 16];

		/* forward() itself refuses a causal pattern */
		assert_int_equal(agent()->forward(&p, x, x, x, o), -ENOTSUP);
		p.pattern = ATTN_NS;
		p.params = zero;
		assert_int_equal(variant_check_problem(agent(), &p), -EINVAL);
		p.params = half;
		assert_int_equal(variant_check_problem(agent(), &p), -EINVAL);
		p.params = one;
		assert_int_equal(variant_check_problem(agent(), &p), 0);
	}
}

/* A and V_A per query head: 2 · batch · heads · min(n, N) · d floats. */
static void test_agent_state_bytes_follow_the_formula(void **state)
{
	double params[1] = { 32 };
	struct attn_problem p = problem(2, 8, 2, 257, 257, 64, ATTN_NS, NULL);

	(void)state;
	assert_non_null(agent()->state_bytes);
	assert_true(agent()->state_bytes(&p) == 2.0 * 2 * 8 * 64 * 64 * 4);
	p.params = params;
	assert_true(agent()->state_bytes(&p) == 2.0 * 2 * 8 * 32 * 64 * 4);
	p = problem(2, 8, 2, 63, 257, 12, ATTN_NC, NULL);
	assert_true(agent()->state_bytes(&p) == 2.0 * 2 * 8 * 63 * 12 * 4);
	p = problem(1, 4, 1, 10, 10, 8, ATTN_NS, NULL);
	assert_true(agent()->state_bytes(&p) == 2.0 * 1 * 4 * 10 * 8 * 4);
	/* not the KV cache: it does not grow with M */
	p = problem(1, 4, 1, 100, 100000, 8, ATTN_NC, NULL);
	assert_true(agent()->state_bytes(&p) == 2.0 * 1 * 4 * 64 * 8 * 4);
}

/* N d for the means, then 4 d per (agent, key) and per (query, agent) pair. */
static void test_agent_flops_follow_the_formula(void **state)
{
	struct attn_problem p = problem(2, 8, 2, 257, 100, 64, ATTN_NC, NULL);
	double want = 2.0 * 8 * (257.0 * 64 + 4.0 * 64 * 64 * (100 + 257));

	(void)state;
	assert_non_null(agent()->flops);
	assert_true(fabs(agent()->flops(&p) - want) <= 1e-9 * want);
	p = problem(1, 1, 1, 10, 10, 8, ATTN_NS, NULL);
	want = 10.0 * 8 + 4.0 * 10 * 8 * 20;
	assert_true(fabs(agent()->flops(&p) - want) <= 1e-9 * want);
}

/* Allocator peak of one forward pass on t (returns what it needed beyond the live bytes). */
static size_t forward_peak(const struct attn_problem *p, struct tensors *t)
{
	size_t live = memory_live_bytes(), peak;

	memory_reset_peak();
	run(agent(), p, t);
	peak = memory_peak_bytes() - live;
	return peak;
}

/*
 * The workspace is the agents' state plus fixed tiles per thread: the same at N = M = 512
 * as at 4096, never anything like the N x M score matrix.
 */
static void test_agent_workspace_does_not_grow_with_the_sequence(void **state)
{
	struct attn_problem small = problem(1, 2, 1, 512, 512, 16, ATTN_NS, NULL);
	struct attn_problem large = problem(1, 2, 1, 4096, 4096, 16, ATTN_NS, NULL);
	struct attn_problem cross = problem(1, 2, 1, 700, 4096, 16, ATTN_NC, NULL);
	struct tensors a, b, c;
	size_t pa, pb, pc;

	(void)state;
	tensors_make(&a, &small, SEED, 1.0);
	tensors_make(&b, &large, SEED, 1.0);
	tensors_make(&c, &cross, SEED, 1.0);
	pa = forward_peak(&small, &a);
	pb = forward_peak(&large, &b);
	pc = forward_peak(&cross, &c);
	assert_true(pa == pb && pb == pc);
	assert_true(pb >= agent()->state_bytes(&large));
	/* a sixteenth of the score matrix: room for dozens of threads' tiles */
	assert_true(pb < (size_t)4096 * 4096 * sizeof(float) / 16);
	tensors_release(&a);
	tensors_release(&b);
	tensors_release(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_agent_matches_an_fp64_transcription),
		cmocka_unit_test(test_agent_matches_the_transcription_for_other_agent_counts),
		cmocka_unit_test(test_agent_with_identical_query_rows_equals_vanilla),
		cmocka_unit_test(test_agent_outputs_are_convex_combinations_of_values),
		cmocka_unit_test(test_agent_with_at_most_n_rows_takes_the_queries_as_agents),
		cmocka_unit_test(test_agent_gives_gqa_as_mha_bit_for_bit),
		cmocka_unit_test(test_agent_depends_on_later_query_rows),
		cmocka_unit_test(test_agent_refuses_causal_patterns_only),
		cmocka_unit_test(test_agent_state_bytes_follow_the_formula),
		cmocka_unit_test(test_agent_flops_follow_the_formula),
		cmocka_unit_test(test_agent_workspace_does_not_grow_with_the_sequence),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
