/*
 * test-chunk.c - block-diagonal chunked attention against VARIANTS.md section 6 written
 * as a per-(i, j) predicate and an fp64 softmax over the keys it allows: the declared
 * spans are that predicate, the outputs match it on awkward shapes with chunks that bite
 * at small N, C >= N is vanilla, a chunk's output ignores every other chunk, cs is causal,
 * decoding equals the causal pass, state bytes follow the formula, and cross patterns are
 * refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "variant-test.h"
#include "mask-oracle.h"

/* The variant's parameter order. */
enum { P_SIZE, P_COUNT };

static const enum attn_pattern self_patterns[] = { ATTN_NS, ATTN_CS };

/* Chunk sizes: the default, then sizes that bite at n <= 257, 1 and not dividing n. */
static const int chunk_sizes[] = { 128, 1, 2, 5, 16, 64 };

static const struct variant_ops *chunk(void)
{
	const struct variant_ops *v = variant_must_find("chunk");

	assert_int_equal(v->n_params, P_COUNT);
	assert_int_equal(variant_param_index(v, "size"), P_SIZE);
	return v;
}

static void set(double *params, int c)
{
	for (int x = 0; x < VARIANT_MAX_PARAMS; x++)
		params[x] = 0;
	params[P_SIZE] = c;
}

/* Section 6: floor(i / C) = floor(j / C), and in cs j <= i. */
static bool chunk_allows(const struct attn_problem *p, int h, int i, int j)
{
	int c = (int)p->params[P_SIZE];

	(void)h;
	if (p->pattern == ATTN_CS && j > i)
		return false;
	return i / c == j / c;
}

static void test_chunk_declares_its_parameters_and_patterns(void **state)
{
	const struct variant_ops *v = chunk();
	double params[VARIANT_MAX_PARAMS];

	(void)state;
	variant_default_params(v, params);
	assert_true(params[P_SIZE] == 128);
	check_declares_a_self_mask(v, params);
	assert_true(v->extensions == PATTERN_BIT(ATTN_NS));
	set(params, 0);
	{
		struct attn_problem p = problem(1, 2, 2, 16, 16, 8, ATTN_NS, params);

		assert_int_equal(variant_check_problem(v, &p), -EINVAL);
	}
}

static void test_chunk_mask_is_the_catalogue_predicate(void **state)
{
	static const int lengths[] = { 1, 2, 17, 63, 130 };
	const struct variant_ops *v = chunk();
	double params[VARIANT_MAX_PARAMS];

	(void)state;
	for (int ci = 0; ci < COUNT(chunk_sizes); ci++)
		for (int li = 0; li < COUNT(lengths); li++) {
			set(params, chunk_sizes[ci]);
			check_self_masks_are_predicate(v, 2, lengths[li], params, chunk_allows, 0);
		}
}

static void test_chunk_matches_an_fp64_transcription_on_awkward_shapes(void **state)
{
	static const int lengths[] = { 1, 17, 63, 257 };
	const struct variant_ops *v = chunk();
	double params[VARIANT_MAX_PARAMS];
	uint64_t seed = SEED;
	int at = 0;

	(void)state;
	for (int ci = 0; ci < COUNT(chunk_sizes); ci++) {
		char what[32];

		set(params, chunk_sizes[ci]);
		snprintf(what, sizeof(what), "C=%d", chunk_sizes[ci]);
		for (int li = 0; li < COUNT(lengths); li++)
			check_self_patterns_against_predicate(v, lengths[li], params, chunk_allows,
							      &at, &seed, what);
	}
}

/* C >= N: one chunk, vanilla's mask; C = N - 1 is not (the last row is alone). */
static void test_chunk_covering_the_sequence_equals_vanilla(void **state)
{
	static const int lengths[] = { 1, 17, 63, 257 };
	const struct variant_ops *v = chunk(), *vanilla = variant_must_find("vanilla");
	double params[VARIANT_MAX_PARAMS];

	(void)state;
	for (int li = 0; li < COUNT(lengths); li++)
		for (int pi = 0; pi < COUNT(self_patterns); pi++)
			for (int extra = 0; extra <= 100; extra += 100) {
				int n = lengths[li];
				struct attn_problem p = problem(2, 4, 2, n, n, 12, self_patterns[pi],
								params);

				set(params, n + extra);
				check_matches_variant(v, p, vanilla, NULL, SEED + li, MASK_TOLERANCE);
			}
	{
		struct attn_problem p = problem(1, 1, 1, 17, 17, 8, ATTN_NS, params);

		set(params, 16);
		assert_false(chunk_allows(&p, 0, 16, 0));
	}
}

/*
 * Redrawing Q, K and V outside one chunk leaves all of that chunk's rows bit-identical;
 * the rows of the other chunks do move (so the redraw is not a no-op).
 */
static void test_chunk_output_ignores_every_other_chunk(void **state)
{
	const struct variant_ops *v = chunk();
	double params[VARIANT_MAX_PARAMS];
	const int n = 63, d = 16, c = 10;

	(void)state;
	set(params, c);
	for (int pi = 0; pi < COUNT(self_patterns); pi++)
		for (int lo = 0; lo < n; lo += c) {
			struct attn_problem p = problem(2, 4, 2, n, n, d, self_patterns[pi], params);
			int hi = lo + c < n ? lo + c : n;
			struct rng g = { SEED + lo };
			struct tensors a, b;
			bool others_moved = false;

			tensors_make(&a, &p, SEED + lo + pi, 1.0);
			tensors_copy(&b, &a);
			for (size_t s = 0; s < (size_t)p.batch * p.heads; s++)
				for (int i = 0; i < n; i++)
					if (i < lo || i >= hi)
						fill_normal(&g, b.q + (s * n + i) * d, d, 3.0);
			for (size_t s = 0; s < (size_t)p.batch * p.kv_heads; s++)
				for (int j = 0; j < n; j++)
					if (j < lo || j >= hi) {
						fill_normal(&g, b.k + (s * n + j) * d, d, 3.0);
						fill_normal(&g, b.v + (s * n + j) * d, d, 3.0);
					}
			run(v, &p, &a);
			run(v, &p, &b);
			for (size_t s = 0; s < (size_t)p.batch * p.heads; s++) {
				size_t at = (s * n + lo) * d;

				assert_memory_equal(a.o + at, b.o + at, sizeof(float) * (hi - lo) * d);
				if (lo > 0)
					others_moved |= a.o[s * n * d] != b.o[s * n * d];
			}
			assert_true(lo == 0 || others_moved);
			tensors_release(&a);
			tensors_release(&b);
		}
}

/* Keys outside row i's chunk are never read for it; one inside is. */
static void test_chunk_hides_keys_outside_the_chunk(void **state)
{
	static const int rows[] = { 0, 20, 40, 62 };
	const struct variant_ops *v = chunk();
	double params[VARIANT_MAX_PARAMS];

	(void)state;
	set(params, 16);
	for (int pi = 0; pi < COUNT(self_patterns); pi++)
		for (int ri = 0; ri < COUNT(rows); ri++) {
			struct attn_problem p = problem(1, 4, 1, 63, 63, 12, self_patterns[pi],
							params);

			check_hidden_keys_do_not_move(v, &p, chunk_allows, 1, rows[ri],
						      SEED + 10 * ri + pi);
		}
}

static void test_chunk_is_causal_in_cs(void **state)
{
	const struct variant_ops *v = chunk();
	double params[VARIANT_MAX_PARAMS];

	(void)state;
	for (int ci = 0; ci < COUNT(chunk_sizes); ci++) {
		struct attn_problem p = problem(2, 4, 2, 63, 63, 16, ATTN_CS, params);

		set(params, chunk_sizes[ci]);
		check_causal(v, &p, SEED + ci);
	}
}

static void test_chunk_decoding_matches_its_causal_forward(void **state)
{
	const struct variant_ops *v = chunk();
	double params[VARIANT_MAX_PARAMS];
	uint64_t seed = SEED + 500;

	(void)state;
	for (int ci = 0; ci < COUNT(chunk_sizes); ci++) {
		set(params, chunk_sizes[ci]);
		check_decode_at_short_lengths(v, params, ci, &seed);
	}
}

/* K and V of one chunk (at most the sequence), float32, per KV head. */
static void test_chunk_state_bytes_follow_the_formula(void **state)
{
	const struct variant_ops *v = chunk();
	double params[VARIANT_MAX_PARAMS];
	struct attn_problem p;

	(void)state;
	set(params, 128);
	p = problem(2, 8, 2, 4096, 4096, 64, ATTN_CS, params);
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 2 * 128 * 64 * 4);
	p.pattern = ATTN_NS;
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 2 * 128 * 64 * 4);
	p = problem(1, 4, 4, 100, 100, 8, ATTN_NS, params);
	assert_true(v->state_bytes(&p) == 2.0 * 1 * 4 * 100 * 8 * 4);
}

/*
 * FLOPs are 4d per kept pair: ns n/C full chunks of C^2 pairs, cs C(C + 1)/2 each; a
 * short last chunk counts its own.
 */
static void test_chunk_flops_count_the_kept_pairs(void **state)
{
	const struct variant_ops *v = chunk();
	double params[VARIANT_MAX_PARAMS];
	struct attn_problem p = problem(2, 3, 1, 50, 50, 8, ATTN_NS, params);

	(void)state;
	set(params, 16);
	/* chunks of 16, 16, 16 and 2 */
	assert_true(v->flops(&p) == 4.0 * 2 * 3 * 8 * (3 * 256 + 4));
	p.pattern = ATTN_CS;
	assert_true(v->flops(&p) == 4.0 * 2 * 3 * 8 * (3 * 136 + 3));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chunk_declares_its_parameters_and_patterns),
		cmocka_unit_test(test_chunk_mask_is_the_catalogue_predicate),
		cmocka_unit_test(test_chunk_matches_an_fp64_transcription_on_awkward_shapes),
		cmocka_unit_test(test_chunk_covering_the_sequence_equals_vanilla),
		cmocka_unit_test(test_chunk_output_ignores_every_other_chunk),
		cmocka_unit_test(test_chunk_hides_keys_outside_the_chunk),
		cmocka_unit_test(test_chunk_is_causal_in_cs),
		cmocka_unit_test(test_chunk_decoding_matches_its_causal_forward),
		cmocka_unit_test(test_chunk_state_bytes_follow_the_formula),
		cmocka_unit_test(test_chunk_flops_count_the_kept_pairs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
