/*
 * test-power.c - the PowerAttention variant against VARIANTS.md section 9, written here
 * as a per-(i, j) predicate straight from the catalogue's equations (beta(x) = floor(x/b),
 * Delta = beta(i) - beta(j); cs: j <= i and (Delta < W_b or Delta & (Delta - 1) = 0 or
 * j < b); ns: |Delta| in both tests, no causal term) and an fp64 softmax over the keys
 * it allows (mask-oracle.h). Checked: the output on awkward shapes with masks that bite at small N, the
 * declared spans against the predicate for every (i, j), the catalogue's properties
 * (short sequences are vanilla; the key blocks a query block sees), hidden keys moving
 * nothing, causality, decoding, FLOPs and state bytes by formula, the declaration.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "variant-test.h"
#include "mask-oracle.h"

enum { P_BLOCK, P_LOCAL, P_COUNT };

/* {b, W_b}: masks that bite at small N, the edge W_b = 0, token blocks, the defaults. */
static const double settings[][P_COUNT] = {
	{ 4, 2 }, { 3, 1 }, { 5, 0 }, { 8, 3 }, { 1, 2 }, { 64, 5 },
};

static const enum attn_pattern self_patterns[] = { ATTN_NS, ATTN_CS };

static const struct variant_ops *variant(void)
{
	const struct variant_ops *v = variant_must_find("power");

	assert_int_equal(v->n_params, P_COUNT);
	assert_int_equal(variant_param_index(v, "block"), P_BLOCK);
	assert_int_equal(variant_param_index(v, "local"), P_LOCAL);
	return v;
}

/* The catalogue's mask, one (i, j) at a time; every head alike. */
static bool power_allows(const struct attn_problem *p, int h, int i, int j)
{
	long b = (long)p->params[P_BLOCK], wb = (long)p->params[P_LOCAL];
	long delta = i / b - j / b;

	(void)h;
	if (p->pattern == ATTN_CS)
		return j <= i && (delta < wb || (delta & (delta - 1)) == 0 || j < b);
	delta = delta < 0 ? -delta : delta;
	return delta < wb || (delta & (delta - 1)) == 0 || j < b;
}

static void test_power_matches_an_fp64_transcription(void **state)
{
	const struct variant_ops *v = variant();
	uint64_t seed = SEED;

	(void)state;
	for (int si = 0; si < COUNT(settings); si++) {
		char what[48];

		snprintf(what, sizeof(what), "b=%g W_b=%g", settings[si][P_BLOCK],
			 settings[si][P_LOCAL]);
		check_sizes_against_predicate(v, settings[si], si, power_allows, &seed, what);
	}
}

static int bit_length(long x)
{
	int bits = 0;

	for (; x; x >>= 1)
		bits++;
	return bits;
}

/*
 * Every (i, j) of a few shapes: the declared spans hold exactly what the predicate
 * allows, in O(W_b + log(N / b)) merged spans (sink, far blocks on each side, one band).
 */
static void test_power_spans_are_the_catalogue_mask(void **state)
{
	static const int lengths[] = { 1, 17, 63, 257, 300 };
	const struct variant_ops *v = variant();

	(void)state;
	for (int si = 0; si < COUNT(settings); si++)
		for (int li = 0; li < COUNT(lengths); li++) {
			int n = lengths[li];
			long blocks = (n + (long)settings[si][P_BLOCK] - 1) /
				      (long)settings[si][P_BLOCK];
			int most = check_self_masks_are_predicate(v, 2, n, settings[si],
								  power_allows, MASK_MERGED);

			assert_true(most <= 3 + 2 * bit_length(blocks));
		}
}

/* N <= W_b b: every block distance is below W_b, so the mask is the pattern's own. */
static void test_power_short_sequences_are_vanilla(void **state)
{
	static const double small[][P_COUNT] = { { 4, 3 }, { 64, 5 }, { 1, 40 }, { 7, 2 } };
	const struct variant_ops *v = variant();
	uint64_t seed = SEED + 100;

	(void)state;
	for (int si = 0; si < COUNT(small); si++)
		for (int pi = 0; pi < COUNT(self_patterns); pi++) {
			int longest = (int)(small[si][P_BLOCK] * small[si][P_LOCAL]);
			int lengths[] = { 1, longest / 2 + 1, longest };

			for (int li = 0; li < COUNT(lengths); li++) {
				struct attn_problem p = problem(2, 4, 2, lengths[li], lengths[li],
								12, self_patterns[pi], small[si]);
				char what[48];

				/* one span a row, vanilla's own */
				assert_int_equal(check_mask_is_predicate(v, &p, vanilla_allows, 0), 1);
				snprintf(what, sizeof(what), "vanilla (b=%g W_b=%g)", small[si][P_BLOCK],
					 small[si][P_LOCAL]);
				check_against_predicate(v, &p, vanilla_allows, seed++, what);
			}
		}
	/* one block more and the mask bites: row N - 1 no longer sees everything */
	{
		struct attn_problem p = problem(1, 1, 1, 24, 24, 8, ATTN_CS,
						(const double[]){ 4, 3 });
		struct key_span span[4];

		assert_int_equal(v->mask(&p, 0, p.n - 1, span, 4), 2);
	}
}

/*
 * The key blocks query block B sees are B - Delta for Delta in {0..W_b-1} and the powers
 * of two, Delta <= B, plus block 0 (ns: B + Delta too, inside the sequence); each of
 * them whole, but the own block, which cs cuts at the row.
 */
static void test_power_query_blocks_see_near_and_power_of_two_blocks(void **state)
{
	static const double wide[][P_COUNT] = { { 8, 0 }, { 8, 1 }, { 8, 2 }, { 8, 5 },
						{ 3, 4 } };
	const struct variant_ops *v = variant();
	int n = 700;
	bool *seen = malloc(sizeof(bool) * n);

	(void)state;
	assert_non_null(seen);
	for (int si = 0; si < COUNT(wide); si++)
		for (int pi = 0; pi < COUNT(self_patterns); pi++) {
			int b = (int)wide[si][P_BLOCK], wb = (int)wide[si][P_LOCAL];
			int blocks = (n + b - 1) / b;
			struct attn_problem p = problem(1, 1, 1, n, n, 8, self_patterns[pi],
							wide[si]);
			bool cs = p.pattern == ATTN_CS;

			for (int i = 0; i < n; i++) {
				int row = i / b;
				bool *want = calloc(blocks, sizeof(bool));

				assert_non_null(want);
				mask_row_flags(v, &p, 0, i, MASK_MERGED, seen);
				want[0] = true;
				for (int delta = 0; delta <= blocks; delta++) {
					bool near = delta < wb;
					bool power = delta >= 1 && !(delta & (delta - 1));

					if (!near && !power && delta)
						continue;
					if (delta <= row)
						want[row - delta] = true;
					if (!cs && row + delta < blocks)
						want[row + delta] = true;
				}
				for (int c = 0; c < blocks; c++) {
					int lo = c * b, hi = lo + b < n ? lo + b : n, got = 0;

					if (cs && c == row)
						hi = i + 1;
					for (int j = lo; j < hi; j++)
						got += seen[j];
					assert_int_equal(got, want[c] && (!cs || c <= row) ? hi - lo : 0);
				}
				/* nothing past the row in cs */
				for (int j = i + 1; cs && j < n; j++)
					assert_false(seen[j]);
				free(want);
			}
		}
	free(seen);
}

/*
 * Every key the predicate hides from row i changed at once, in every head and batch: row i
 * stays put. The converse proves the check can fail: one key of a power-of-two block
 * moves it.
 */
static void test_power_ignores_keys_its_mask_hides(void **state)
{
	static const int rows[] = { 0, 13, 33, 47, 62 };
	static const double bite[P_COUNT] = { 4, 2 };
	const struct variant_ops *v = variant();

	(void)state;
	for (int pi = 0; pi < COUNT(self_patterns); pi++) {
		struct attn_problem p = problem(2, 4, 2, 63, 63, 16, self_patterns[pi], bite);

		for (int ri = 0; ri < COUNT(rows); ri++)
			for (int h = 0; h < p.heads; h++)
				check_hidden_keys_do_not_move(v, &p, power_allows, h, rows[ri],
							      SEED + 201 + 10 * ri + pi);
		/* row 47 (block 11) sees block 3 at distance 8: a key there moves it */
		assert_true(power_allows(&p, 0, 47, 13));
		check_key_moves_row(v, &p, 0, 47, 13, SEED + 200 + pi);
	}
}

/* cs: changing Q, K, V rows after t leaves rows <= t as they were. */
static void test_power_cs_ignores_later_rows(void **state)
{
	static const double bites[][P_COUNT] = { { 4, 2 }, { 5, 0 }, { 1, 1 } };
	const struct variant_ops *v = variant();

	(void)state;
	for (int si = 0; si < COUNT(bites); si++) {
		struct attn_problem p = problem(2, 4, 2, 63, 63, 16, ATTN_CS, bites[si]);

		/* cuts 0, 3, 6, 20, 41; masked keys weigh exactly 0, so only fp32 reordering */
		check_causal(v, &p, SEED + 301 + si);
	}
}

/* Decoding under masks that bite: each step is the forward pass's row. */
static void test_power_decoding_matches_its_causal_forward(void **state)
{
	static const double bites[][P_COUNT] = { { 4, 2 }, { 3, 0 }, { 8, 1 } };
	const struct variant_ops *v = variant();
	uint64_t seed = SEED + 400;

	(void)state;
	for (int si = 0; si < COUNT(bites); si++)
		check_decode_at_biting_lengths(v, bites[si], &seed);
}

/*
 * state_bytes: the float32 K and V of the most keys any row sees, per KV head; FLOPs:
 * 4d per allowed pair of every head.
 */
static void test_power_state_bytes_and_flops_follow_their_formulas(void **state)
{
	static const int lengths[] = { 1, 17, 130, 257, 4096 };
	const struct variant_ops *v = variant();

	(void)state;
	for (int si = 0; si < COUNT(settings); si++)
		for (int pi = 0; pi < COUNT(self_patterns); pi++)
			for (int li = 0; li < COUNT(lengths); li++) {
				int n = lengths[li];
				struct attn_problem p = problem(2, 8, 2, n, n, 16, self_patterns[pi],
								settings[si]);
				long most;
				double pairs;

				/* the long case only at the defaults: its predicate walk is N^2 */
				if (n > 300 && settings[si][P_BLOCK] != 64)
					continue;
				pairs = mask_pairs(&p, power_allows, 0, &most);
				assert_true(v->state_bytes(&p) == 2.0 * 2 * 2 * most * 16 * 4);
				assert_true(v->flops(&p) == 4.0 * 2 * 8 * 16 * pairs);
			}
	/*
	 * Defaults at 4096 in cs: the last row sees blocks 63 - {0..4, 8, 16, 32} and the
	 * sink, 9 blocks of 64.
	 */
	{
		struct attn_problem p = problem(1, 1, 1, 4096, 4096, 8, ATTN_CS, settings[5]);

		assert_true(v->state_bytes(&p) == 2.0 * 9 * 64 * 8 * 4);
	}
}

static void test_power_declares_its_parameters_and_patterns(void **state)
{
	const struct variant_ops *v = variant();
	double defaults[P_COUNT];

	(void)state;
	variant_default_params(v, defaults);
	assert_true(defaults[P_BLOCK] == 64);
	assert_true(defaults[P_LOCAL] == 5);
	check_declares_a_self_mask(v, defaults);
	assert_int_equal(v->extensions, PATTERN_BIT(ATTN_NS));
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		int m = pattern_is_self(pat) ? 40 : 24;
		struct attn_problem p = problem(1, 2, 1, 40, m, 8, pat, defaults);

		assert_int_equal(variant_check_problem(v, &p), pattern_is_self(pat) ? 0 : -ENOTSUP);
	}
	/* a block of 0 is outside the range */
	{
		double zero[P_COUNT] = { 0, 5 };
		struct attn_problem p = problem(1, 2, 1, 40, 40, 8, ATTN_CS, zero);

		assert_int_equal(variant_check_problem(v, &p), -EINVAL);
	}
	assert_non_null(v->decode_init);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_power_matches_an_fp64_transcription),
		cmocka_unit_test(test_power_spans_are_the_catalogue_mask),
		cmocka_unit_test(test_power_short_sequences_are_vanilla),
		cmocka_unit_test(test_power_query_blocks_see_near_and_power_of_two_blocks),
		cmocka_unit_test(test_power_ignores_keys_its_mask_hides),
		cmocka_unit_test(test_power_cs_ignores_later_rows),
		cmocka_unit_test(test_power_decoding_matches_its_causal_forward),
		cmocka_unit_test(test_power_state_bytes_and_flops_follow_their_formulas),
		cmocka_unit_test(test_power_declares_its_parameters_and_patterns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
