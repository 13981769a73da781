/*
 * test-lightning.c - lightning attention against a double-precision transcription of its
 * catalogue equations (VARIANTS.md section 19), o_t = Σ_{s<=t} λ^{t-s} (q_t·k_s) v_s
 * then the per-row rms norm, written as the plain double loop; the ALiBi slopes
 * transcribed apart from the kernel; and the properties its entry lists: any block size
 * gives the same sum, λ = 1 with the raw norm is plain causal linear attention,
 * causality, GQA, decoding, the d x d state per query head, cs only.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "threads.h"
#include "variant-test.h"

/*
 * fp32 blocked products against fp64 loops. Outputs are sums of up to a few hundred
 * decayed terms of size ~d with random signs (no softmax keeps them convex), and the rms
 * norm divides by the row's own size, so a row that nearly cancels carries the
 * rounding of its terms relative to itself: at most 8.3e-7 measured on these shapes
 * (OpenBLAS, AVX2); 1e-5 leaves room for other BLAS kernels and summation orders.
 */
#define TOLERANCE 1e-5
/* Later rows may move earlier ones only by rounding (VARIANTS.md section 0). */
#define CAUSAL_TOLERANCE 1e-5

enum { BLOCK, NORM, SLOPE_SCALE, N_PARAMS };

/* The catalogue's rms guard: o (mean_c o_c² + 1e-6)^(-1/2). */
#define RMS_EPS 1e-6

/* lightning.norm values. */
#define RMS 0
#define RAW 1

/* ---- the ALiBi slopes, transcribed from the rule ---- */

/*
 * The slopes of n heads as ALiBi builds them: for a power of two n, the geometric
 * sequence that starts at 2^(-8/n) with that same ratio; otherwise the sequence of the
 * largest power of two P below n, then the sequence of 2P taken at every other place
 * from its first, cut to n - P. slopes has room for n.
 */
static void alibi_slopes(int n, double *slopes)
{
	int p = 1;

	while (2 * p <= n)
		p *= 2;
	if (p == n) {
		double start = pow(2.0, -pow(2.0, -(log2((double)n) - 3)));

		for (int i = 0; i < n; i++)
			slopes[i] = start * pow(start, i);
		return;
	}
	{
		double *twice = malloc(sizeof(double) * 2 * p);
		int at = p;

		assert_non_null(twice);
		alibi_slopes(p, slopes);
		alibi_slopes(2 * p, twice);
		for (int i = 0; i < 2 * p && at < n; i += 2)
			slopes[at++] = twice[i];
		free(twice);
	}
}

/* λ of query head h: exp(-slope_scale s_h). */
static double lambda_of(int h, int heads, double slope_scale)
{
	double slopes[64];

	assert_true(heads <= 64);
	alibi_slopes(heads, slopes);
	return exp(-slope_scale * slopes[h]);
}

/* ---- the fp64 transcription ---- */

/*
 * o_t = Σ_{s<=t} λ^{t-s} (q_t·k_s) v_s for every (batch, query head) slice, λ of the
 * query head (params as the variant's: block, norm, slope_scale; the block is not
 * looked at), then the rms norm per row unless raw.
 */
static void naive_lightning(const struct attn_problem *p, const double *params,
			    const float *q, const float *k, const float *v, double *out)
{
	int d = p->d;

	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			const float *qs = q + problem_q_offset(p, b, h);
			const float *ks = k + problem_kv_offset(p, b, h);
			const float *vs = v + problem_kv_offset(p, b, h);
			double *os = out + problem_q_offset(p, b, h);
			double lambda = lambda_of(h, p->heads, params[SLOPE_SCALE]);

			for (int t = 0; t < p->n; t++) {
				double *o = os + (size_t)t * d, sq = 0;

				for (int c = 0; c < d; c++)
					o[c] = 0;
				for (int s = 0; s <= t; s++) {
					double w = 0;

					for (int c = 0; c < d; c++)
						w += (double)qs[(size_t)t * d + c] *
						     ks[(size_t)s * d + c];
					w *= pow(lambda, t - s);
					for (int c = 0; c < d; c++)
						o[c] += w * vs[(size_t)s * d + c];
				}
				if (params[NORM] == RAW)
					continue;
				for (int c = 0; c < d; c++)
					sq += o[c] * o[c];
				for (int c = 0; c < d; c++)
					o[c] /= sqrt(sq / d + RMS_EPS);
			}
		}
}

/* Unnormalised causal linear attention, identity features: Σ_{s<=t} (q_t·k_s) v_s. */
static void naive_causal_linear(const struct attn_problem *p, const float *q, const float *k,
				const float *v, double *out)
{
	int d = p->d;

	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			const float *qs = q + problem_q_offset(p, b, h);
			const float *ks = k + problem_kv_offset(p, b, h);
			const float *vs = v + problem_kv_offset(p, b, h);
			double *os = out + problem_q_offset(p, b, h);

			for (int t = 0; t < p->n; t++) {
				double *o = os + (size_t)t * d;

				for (int c = 0; c < d; c++)
					o[c] = 0;
				for (int s = 0; s <= t; s++) {
					double w = 0;

					for (int c = 0; c < d; c++)
						w += (double)qs[(size_t)t * d + c] *
						     ks[(size_t)s * d + c];
					for (int c = 0; c < d; c++)
						o[c] += w * vs[(size_t)s * d + c];
				}
			}
		}
}

static const struct variant_ops *lightning(void)
{
	return variant_must_find("lightning");
}

static void check_naive(const struct attn_problem *p, uint64_t seed)
{
	struct tensors t;
	double *ref = reference_make(&t, p, seed);

	naive_lightning(p, p->params, t.q, t.k, t.v, ref);
	check_output(lightning(), p, &t, ref, TOLERANCE, " B=%g norm=%g scale=%g",
		     p->params[BLOCK], p->params[NORM], p->params[SLOPE_SCALE]);
}

/* ---- the blocked kernel is the decayed sum ---- */

/*
 * The catalogue's test: blocked == naive for B = 1, 7, 64 (and 300, more rows than any
 * sequence here: one short block), both norms, on every awkward cs shape: odd lengths,
 * d = 8, 64, 12, 4 query heads over 4, 2 or 1 KV heads.
 */
static void test_lightning_matches_the_naive_decayed_sum_for_every_block(void **state)
{
	static const int blocks[] = { 1, 7, 64, 300 };
	uint64_t seed = VARIANT_TEST_SEED;
	int checked = 0;

	(void)state;
	for (int bi = 0; bi < COUNT(blocks); bi++)
		for (int norm = RMS; norm <= RAW; norm++) {
			double params[N_PARAMS] = { blocks[bi], norm, 1 };
			struct shape_walk w = { 0 };
			struct attn_problem p;

			while (shape_walk_next(&w, ATTN_CS, params, &p)) {
				check_naive(&p, seed++);
				checked++;
			}
		}
	assert_int_equal(checked, COUNT(blocks) * 2 * COUNT(sizes) * COUNT(dims) *
			 COUNT(kv_choices));
}

/*
 * Head counts whose slopes are not the 4-head ones: 8 (a power of two) and 6 and 3 (the
 * interleaving rule), grouped KV heads, both norms, blocks of 7 and 64.
 */
static void test_lightning_matches_the_naive_sum_for_other_head_counts(void **state)
{
	static const int groupings[][2] = { { 8, 2 }, { 6, 3 }, { 6, 1 }, { 3, 1 } };
	static const int blocks[] = { 7, 64 };
	uint64_t seed = VARIANT_TEST_SEED + 50;

	(void)state;
	for (int i = 0; i < COUNT(groupings); i++)
		for (int bi = 0; bi < COUNT(blocks); bi++)
			for (int norm = RMS; norm <= RAW; norm++) {
				double params[N_PARAMS] = { blocks[bi], norm, 1 };
				struct attn_problem p = problem(1, groupings[i][0],
								groupings[i][1], 151, 151, 12,
								ATTN_CS, params);

				check_naive(&p, seed++);
			}
}

/* The defaults (params NULL) are B = 64, rms, slope_scale 1. */
static void test_lightning_defaults_are_the_catalogue_ones(void **state)
{
	const struct variant_ops *v = lightning();
	double params[N_PARAMS] = { 64, RMS, 1 };
	struct attn_problem p = problem(2, 4, 2, 200, 200, 16, ATTN_CS, NULL);
	struct tensors t;
	double *ref = reference_make(&t, &p, VARIANT_TEST_SEED + 1);

	(void)state;
	assert_int_equal(v->n_params, N_PARAMS);
	assert_int_equal(variant_param_index(v, "block"), BLOCK);
	assert_int_equal(variant_param_index(v, "norm"), NORM);
	assert_int_equal(variant_param_index(v, "slope_scale"), SLOPE_SCALE);
	for (int i = 0; i < N_PARAMS; i++)
		assert_true(v->params[i].def == params[i]);
	assert_true(v->params[BLOCK].min == 1 && v->params[BLOCK].max == 4096);
	assert_true(v->params[SLOPE_SCALE].min == 0 && v->params[SLOPE_SCALE].max == 1);
	naive_lightning(&p, params, t.q, t.k, t.v, ref);
	check_output(v, &p, &t, ref, TOLERANCE, "%s", " at its defaults");
}

/* Long sequences: many block edges, the state carried across dozens of blocks. */
static void test_lightning_carries_its_state_across_many_blocks(void **state)
{
	static const int lengths[] = { 64, 65, 128, 129, 1000 };

	(void)state;
	for (int i = 0; i < COUNT(lengths); i++)
		for (int norm = RMS; norm <= RAW; norm++) {
			double params[N_PARAMS] = { i % 2 ? 7 : 64, norm, 1 };
			struct attn_problem p = problem(1, 3, 1, lengths[i], lengths[i], 12,
							ATTN_CS, params);

			check_naive(&p, VARIANT_TEST_SEED + 100 + i);
		}
}

/*
 * The catalogue's other test: λ = 1 (slope_scale = 0) with the raw norm is unnormalised
 * causal linear attention with identity features, an fp64 loop without λ.
 */
static void test_lightning_without_decay_or_norm_is_causal_linear_attention(void **state)
{
	static const int blocks[] = { 1, 7, 64 };
	static const int shapes[][3] = { { 17, 8, 2 }, { 63, 12, 1 }, { 257, 64, 4 } };
	uint64_t seed = VARIANT_TEST_SEED + 200;

	(void)state;
	for (int bi = 0; bi < COUNT(blocks); bi++)
		for (int s = 0; s < COUNT(shapes); s++) {
			double params[N_PARAMS] = { blocks[bi], RAW, 0 };
			struct attn_problem p = problem(2, 4, shapes[s][2], shapes[s][0],
							shapes[s][0], shapes[s][1], ATTN_CS,
							params);
			struct tensors t;
			double *ref = reference_make(&t, &p, seed++);

			naive_causal_linear(&p, t.q, t.k, t.v, ref);
			check_output(lightning(), &p, &t, ref, TOLERANCE, " B=%d lambda=1 raw",
				     blocks[bi]);
		}
}

/* ---- the slopes ---- */

/*
 * ALiBi's slopes written out by hand: 8 heads, 2^-1 .. 2^-8; 6 heads, the 4-head
 * sequence 2^-2, 2^-4, 2^-6, 2^-8, then the 8-head one at places 0 and 2: 2^-1, 2^-3.
 */
static void test_the_transcribed_slopes_are_alibi_for_8_and_6_heads(void **state)
{
	static const double eight[8] = { 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625,
					  0.0078125, 0.00390625 };
	static const double six[6] = { 0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125 };
	double slopes[8];

	(void)state;
	alibi_slopes(8, slopes);
	for (int h = 0; h < 8; h++)
		assert_float_equal(slopes[h], eight[h], 1e-15);
	alibi_slopes(6, slopes);
	for (int h = 0; h < 6; h++)
		assert_float_equal(slopes[h], six[h], 1e-15);
}

/*
 * The kernel's λ per head, read off its output: d = 1, q = k = 1, v = 1 at position 0
 * and 0 after it, raw norm, so o_t = λ^t. Head counts 1 to 12 (powers of two and
 * others, 6 among them), slope_scale 1 and 0.37, blocks of 7 so the powers cross blocks.
 */
static void test_lightning_decays_each_head_by_its_alibi_slope(void **state)
{
	static const double scales[] = { 1, 0.37 };
	const int n = 40;

	(void)state;
	for (int heads = 1; heads <= 12; heads++)
		for (int si = 0; si < COUNT(scales); si++) {
			double params[N_PARAMS] = { 7, RAW, scales[si] };
			struct attn_problem p = problem(1, heads, 1, n, n, 1, ATTN_CS, params);
			struct tensors t;

			tensors_make(&t, &p, VARIANT_TEST_SEED, 1.0);
			for (size_t x = 0; x < t.nq; x++)
				t.q[x] = 1;
			for (int s = 0; s < n; s++) {
				t.k[s] = 1;
				t.v[s] = s == 0;
			}
			run(lightning(), &p, &t);
			for (int h = 0; h < heads; h++) {
				double lambda = lambda_of(h, heads, scales[si]);

				for (int s = 0; s < n; s++) {
					double want = pow(lambda, s);
					double got = t.o[(size_t)h * n + s];

					/* float powers from one table, a few roundings */
					if (fabs(got - want) > 1e-6 * want)
						print_error("H=%d h=%d t=%d: %.9g, want %.9g\n",
							    heads, h, s, got, want);
					assert_true(fabs(got - want) <= 1e-6 * want);
				}
			}
			tensors_release(&t);
		}
}

/* ---- causality, GQA ---- */

/*
 * cs by perturbation: Q, K, V rows after t redrawn (and three times larger) must not
 * move rows <= t, for cuts at and around block edges, both norms, several blocks.
 */
static void test_lightning_ignores_later_rows(void **state)
{
	static const int blocks[] = { 1, 7, 64 };
	static const int cuts[] = { 0, 6, 7, 20, 63, 64, 100 };

	(void)state;
	for (int bi = 0; bi < COUNT(blocks); bi++)
		for (int norm = RMS; norm <= RAW; norm++) {
			double params[N_PARAMS] = { blocks[bi], norm, 1 };
			struct attn_problem p = problem(2, 4, 2, 129, 129, 12, ATTN_CS, params);
			struct tensors a;

			tensors_make(&a, &p, VARIANT_TEST_SEED + 300 + bi, 1.0);
			run(lightning(), &p, &a);
			for (int ci = 0; ci < COUNT(cuts); ci++) {
				struct rng g = { VARIANT_TEST_SEED + cuts[ci] };
				struct tensors b;
				double change;

				tensors_copy(&b, &a);
				perturb_rows_after(&g, b.q, (size_t)p.batch * p.heads, p.n, p.d,
						   cuts[ci]);
				perturb_rows_after(&g, b.k, (size_t)p.batch * p.kv_heads, p.m, p.d,
						   cuts[ci]);
				perturb_rows_after(&g, b.v, (size_t)p.batch * p.kv_heads, p.m, p.d,
						   cuts[ci]);
				run(lightning(), &p, &b);
				change = change_up_to(&p, a.o, b.o, cuts[ci]);
				if (!(change <= CAUSAL_TOLERANCE))
					print_error("B=%d norm=%d t=%d: rows <= t moved by %g\n",
						    blocks[bi], norm, cuts[ci], change);
				assert_true(change <= CAUSAL_TOLERANCE);
				/* and the rows after the cut did move: the perturbation is real */
				assert_true(change_up_to(&p, a.o, b.o, p.n - 1) > 1e-3);
				tensors_release(&b);
			}
			tensors_release(&a);
		}
}

/*
 * A query head reads its KV head's rows with its own λ: grouped KV heads give, bit for
 * bit, what MHA gives with each KV head repeated; 4 heads over 2 and 1, 6 over 3, 2, 1.
 */
static void test_lightning_gives_gqa_as_mha_with_repeated_kv(void **state)
{
	static const int groupings[][2] = { { 4, 2 }, { 4, 1 }, { 6, 3 }, { 6, 2 }, { 6, 1 } };
	double params[N_PARAMS] = { 7, RMS, 1 };

	(void)state;
	for (int i = 0; i < COUNT(groupings); i++) {
		struct attn_problem p = problem(2, groupings[i][0], groupings[i][1], 33, 33, 12,
						ATTN_CS, params);

		check_gqa_is_mha_bit_for_bit(lightning(), &p, VARIANT_TEST_SEED + 400 + i);
	}
}

/* ---- split runs ---- */

/*
 * Fewer slices than threads: each slice's blocks are split into runs whose starting
 * states are chained; the outputs are still the decayed sum. Three threads give uneven
 * runs; one slice and two slices; blocks of 7 and 64.
 */
static void test_lightning_split_into_runs_matches_the_naive_sum(void **state)
{
	static const int blocks[] = { 7, 64 };
	int saved = threads_get();
	uint64_t seed = VARIANT_TEST_SEED + 500;

	(void)state;
	threads_set(3);
	for (int bi = 0; bi < COUNT(blocks); bi++)
		for (int heads = 1; heads <= 2; heads++)
			for (int norm = RMS; norm <= RAW; norm++) {
				double params[N_PARAMS] = { blocks[bi], norm, 1 };
				struct attn_problem p = problem(1, heads, 1, 1000, 1000, 64,
								ATTN_CS, params);

				check_naive(&p, seed++);
			}
	threads_set(saved);
}

/* ---- decoding, state, patterns ---- */

/*
 * Each step's output is row t of forward() in cs: blocks 1, 7, 64, both norms, λ from
 * the slopes and λ = 1, odd lengths, d = 8, 12, 64, grouped heads.
 */
static void test_lightning_decoding_matches_its_forward(void **state)
{
	static const int blocks[] = { 1, 7, 64 };
	static const int shapes[][3] = { { 1, 8, 4 }, { 63, 12, 2 }, { 200, 64, 1 } };
	uint64_t seed = VARIANT_TEST_SEED + 600;

	(void)state;
	for (int bi = 0; bi < COUNT(blocks); bi++)
		for (int norm = RMS; norm <= RAW; norm++)
			for (int s = 0; s < COUNT(shapes); s++)
				for (int scale = 0; scale <= 1; scale++) {
					double params[N_PARAMS] = { blocks[bi], norm, scale };
					struct attn_problem p = problem(2, 4, shapes[s][2],
									shapes[s][0], shapes[s][0],
									shapes[s][1], ATTN_CS,
									params);

					check_decode(lightning(), &p, seed++);
				}
}

/*
 * The state is KV (d x d float) per (batch, query head): batch * heads * d² * 4 bytes,
 * the same for any length, GQA or not (λ is per query head); decoding holds that much
 * and does not grow with the positions fed.
 */
static void test_lightning_state_is_d_squared_per_query_head(void **state)
{
	const struct variant_ops *v = lightning();
	struct attn_problem shortp = problem(2, 8, 2, 64, 64, 32, ATTN_CS, NULL);
	struct attn_problem longp = problem(2, 8, 8, 8192, 8192, 32, ATTN_CS, NULL);
	struct attn_problem a = problem(1, 4, 1, 16, 16, 16, ATTN_CS, NULL);
	struct attn_problem b = problem(1, 4, 1, 512, 512, 16, ATTN_CS, NULL);
	size_t peak_a, peak_b;

	(void)state;
	assert_non_null(v->state_bytes);
	assert_true(v->state_bytes(&shortp) == 2.0 * 8 * 32 * 32 * 4);
	assert_true(v->state_bytes(&longp) == v->state_bytes(&shortp));
	peak_a = decode_peak(v, &a);
	peak_b = decode_peak(v, &b);
	assert_int_equal(peak_a, peak_b);
	assert_true((double)peak_a >= v->state_bytes(&a));
	/* the state plus λ per head and the bookkeeping, nothing that grows */
	assert_true((double)peak_a <= v->state_bytes(&a) + 4096);
}

/* The forward workspace is a few blocks and a state per thread, whatever the length. */
static void test_lightning_workspace_does_not_grow_with_the_sequence(void **state)
{
	static const int lengths[] = { 256, 4096 };
	double params[N_PARAMS] = { 64, RMS, 1 };
	size_t peak[2];

	(void)state;
	for (int i = 0; i < 2; i++) {
		struct attn_problem p = problem(1, 4, 2, lengths[i], lengths[i], 64, ATTN_CS,
						params);
		struct tensors t;
		size_t before;

		tensors_make(&t, &p, VARIANT_TEST_SEED, 1.0);
		before = memory_live_bytes();
		memory_reset_peak();
		run(lightning(), &p, &t);
		peak[i] = memory_peak_bytes() - before;
		tensors_release(&t);
	}
	assert_true(peak[0] > 0);
	assert_int_equal(peak[0], peak[1]);
	/* far below one n x d slice at the longer length */
	assert_true(peak[1] < sizeof(float) * 4096 * 64);
}

/*
 * cs only: ns, nc and cc are refused by the check, by forward() and by the decoder
 * (a decay between query and key positions means nothing unless they are aligned).
 */
static void test_lightning_refuses_every_pattern_but_cs(void **state)
{
	static const enum attn_pattern refused[] = { ATTN_NS, ATTN_NC, ATTN_CC };
	const struct variant_ops *v = lightning();

	(void)state;
	assert_int_equal(v->patterns, PATTERN_BIT(ATTN_CS));
	assert_int_equal(v->extensions, 0);
	for (int i = 0; i < COUNT(refused); i++) {
		int m = pattern_is_self(refused[i]) ? 16 : 24;
		struct attn_problem p = problem(1, 2, 2, 16, m, 8, refused[i], NULL);
		struct tensors t;
		void *dec = &dec;

		tensors_make(&t, &p, VARIANT_TEST_SEED, 1.0);
		assert_int_equal(variant_check_problem(v, &p), -ENOTSUP);
		assert_int_equal(v->forward(&p, t.q, t.k, t.v, t.o), -ENOTSUP);
		assert_int_equal(v->decode_init(&p, &dec), -ENOTSUP);
		assert_null(dec);
		tensors_release(&t);
	}
	{
		struct attn_problem p = problem(1, 2, 2, 16, 16, 8, ATTN_CS, NULL);

		assert_int_equal(variant_check_problem(v, &p), 0);
	}
}

/*
 * The FLOPs of the default blocks on a long sequence: per row about 4Bd (scores and
 * their product with V) + 4d² (the inter-block product and the state update).
 */
static void test_lightning_counts_its_flops(void **state)
{
	const struct variant_ops *v = lightning();
	struct attn_problem p = problem(1, 8, 8, 65536, 65536, 64, ATTN_CS, NULL);
	double per_row = 4.0 * 64 * 64 + 4.0 * 64 * 64, want = 8 * 65536 * per_row;
	int saved = threads_get();

	(void)state;
	threads_set(1);
	assert_non_null(v->flops);
	/* the elementwise terms add a few per cent */
	assert_true(v->flops(&p) >= want && v->flops(&p) <= 1.05 * want);
	threads_set(saved);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lightning_matches_the_naive_decayed_sum_for_every_block),
		cmocka_unit_test(test_lightning_matches_the_naive_sum_for_other_head_counts),
		cmocka_unit_test(test_lightning_defaults_are_the_catalogue_ones),
		cmocka_unit_test(test_lightning_carries_its_state_across_many_blocks),
		cmocka_unit_test(test_lightning_without_decay_or_norm_is_causal_linear_attention),
		cmocka_unit_test(test_the_transcribed_slopes_are_alibi_for_8_and_6_heads),
		cmocka_unit_test(test_lightning_decays_each_head_by_its_alibi_slope),
		cmocka_unit_test(test_lightning_ignores_later_rows),
		cmocka_unit_test(test_lightning_gives_gqa_as_mha_with_repeated_kv),
		cmocka_unit_test(test_lightning_split_into_runs_matches_the_naive_sum),
		cmocka_unit_test(test_lightning_decoding_matches_its_forward),
		cmocka_unit_test(test_lightning_state_is_d_squared_per_query_head),
		cmocka_unit_test(test_lightning_workspace_does_not_grow_with_the_sequence),
		cmocka_unit_test(test_lightning_refuses_every_pattern_but_cs),
		cmocka_unit_test(test_lightning_counts_its_flops),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
