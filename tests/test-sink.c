/*
 * test-sink.c - StreamingLLM's sinks + window against VARIANTS.md section 4 written as a
 * per-(i, j) predicate and an fp64 softmax over the keys it allows: the declared spans
 * are that predicate, the outputs match it on awkward shapes with sinks and windows that
 * bite at small N, W >= N is vanilla, S = 0 is local's causal window, keys between the
 * sinks and the window never reach a row, cs is causal, decoding equals the causal pass,
 * state bytes follow the formula, and cross patterns are refused.
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
enum { P_SINKS, P_WINDOW, P_COUNT };

static const enum attn_pattern self_patterns[] = { ATTN_NS, ATTN_CS };

/* (S, W): the defaults, then settings whose mask bites at n <= 257. */
static const int settings[][2] = {
	{ 4, 1020 }, { 4, 5 }, { 0, 3 }, { 3, 1 }, { 7, 9 }, { 20, 4 }, { 1, 16 },
};

static const struct variant_ops *sink(void)
{
	const struct variant_ops *v = variant_must_find("sink");

	assert_int_equal(v->n_params, P_COUNT);
	assert_int_equal(variant_param_index(v, "sinks"), P_SINKS);
	assert_int_equal(variant_param_index(v, "window"), P_WINDOW);
	return v;
}

static void set(double *params, int s, int w)
{
	for (int x = 0; x < VARIANT_MAX_PARAMS; x++)
		params[x] = 0;
	params[P_SINKS] = s;
	params[P_WINDOW] = w;
}

/*
 * Section 4: cs allows j <= i with j < S or j >= i - W + 1; ns [harness] allows j < S or
 * |i - j| < W.
 */
static bool sink_allows(const struct attn_problem *p, int h, int i, int j)
{
	int s = (int)p->params[P_SINKS], w = (int)p->params[P_WINDOW];

	(void)h;
	if (p->pattern == ATTN_CS)
		return j <= i && (j < s || j >= i - w + 1);
	return j < s || abs(i - j) < w;
}

static void test_sink_declares_its_parameters_and_patterns(void **state)
{
	const struct variant_ops *v = sink();
	double params[VARIANT_MAX_PARAMS];

	(void)state;
	variant_default_params(v, params);
	assert_true(params[P_SINKS] == 4);
	assert_true(params[P_WINDOW] == 1020);
	check_declares_a_self_mask(v, params);
	assert_true(v->extensions == PATTERN_BIT(ATTN_NS));
	assert_non_null(strstr(v->summary, "re-index"));
	set(params, 0, 0);
	{
		struct attn_problem p = problem(1, 2, 2, 16, 16, 8, ATTN_CS, params);

		/* a window of no key would hide the row itself: refused by range */
		assert_int_equal(variant_check_problem(v, &p), -EINVAL);
	}
}

static void test_sink_mask_is_the_catalogue_predicate(void **state)
{
	static const int lengths[] = { 1, 2, 17, 63 };
	const struct variant_ops *v = sink();
	double params[VARIANT_MAX_PARAMS];

	(void)state;
	for (int si = 0; si < COUNT(settings); si++)
		for (int li = 0; li < COUNT(lengths); li++) {
			set(params, settings[si][0], settings[si][1]);
			check_self_masks_are_predicate(v, 2, lengths[li], params, sink_allows, 0);
		}
}

static void test_sink_matches_an_fp64_transcription_on_awkward_shapes(void **state)
{
	static const int lengths[] = { 1, 17, 63, 130 };
	const struct variant_ops *v = sink();
	double params[VARIANT_MAX_PARAMS];
	uint64_t seed = SEED;
	int at = 0;

	(void)state;
	for (int si = 0; si < COUNT(settings); si++) {
		char what[64];

		set(params, settings[si][0], settings[si][1]);
		snprintf(what, sizeof(what), "S=%d W=%d", settings[si][0], settings[si][1]);
		for (int li = 0; li < COUNT(lengths); li++)
			check_self_patterns_against_predicate(v, lengths[li], params, sink_allows,
							      &at, &seed, what);
	}
}

/* W >= N: every row sees what vanilla's row sees, whatever S. */
static void test_sink_with_a_window_covering_the_sequence_equals_vanilla(void **state)
{
	static const int lengths[] = { 1, 17, 63 };
	const struct variant_ops *v = sink(), *vanilla = variant_must_find("vanilla");
	double params[VARIANT_MAX_PARAMS];

	(void)state;
	for (int li = 0; li < COUNT(lengths); li++)
		for (int pi = 0; pi < COUNT(self_patterns); pi++)
			for (int s = 0; s <= 5; s += 5) {
				int n = lengths[li];
				struct attn_problem p = problem(2, 4, 2, n, n, 12, self_patterns[pi],
								params);

				set(params, s, n);
				check_matches_variant(v, p, vanilla, NULL, SEED + li, MASK_TOLERANCE);
			}
	/* and W = N - 1 in ns is not: row 0 then misses key N - 1 */
	{
		struct attn_problem p = problem(1, 1, 1, 17, 17, 8, ATTN_NS, params);

		set(params, 0, 16);
		assert_false(sink_allows(&p, 0, 0, 16));
	}
}

/* S = 0 leaves local's causal window of W keys, row i seeing i - W + 1 .. i. */
static void test_sink_without_sinks_equals_local_in_cs(void **state)
{
	static const int windows[] = { 1, 2, 5, 16, 300 };
	const struct variant_ops *v = sink(), *local = variant_must_find("local");
	double params[VARIANT_MAX_PARAMS], local_params[VARIANT_MAX_PARAMS] = { 0 };

	(void)state;
	for (int wi = 0; wi < COUNT(windows); wi++)
		for (int li = 0; li < COUNT(sizes); li++) {
			int n = sizes[li];
			struct attn_problem p = problem(2, 4, 1, n, n, 64, ATTN_CS, params);

			set(params, 0, windows[wi]);
			local_params[0] = windows[wi];
			check_matches_variant(v, p, local, local_params, SEED + 100 * wi + li, 1e-6);
		}
}

/* Keys in [S, i - W] (and ns: past i + W - 1) never reach row i; a visible one does. */
static void test_sink_keys_between_sinks_and_window_do_not_influence_a_row(void **state)
{
	static const int rows[] = { 20, 40, 62 };
	const struct variant_ops *v = sink();
	double params[VARIANT_MAX_PARAMS];

	(void)state;
	set(params, 4, 7);
	for (int pi = 0; pi < COUNT(self_patterns); pi++)
		for (int ri = 0; ri < COUNT(rows); ri++) {
			struct attn_problem p = problem(1, 4, 2, 63, 63, 16, self_patterns[pi],
							params);

			check_hidden_keys_do_not_move(v, &p, sink_allows, 3, rows[ri],
						      SEED + 10 * ri + pi);
		}
}

static void test_sink_is_causal_in_cs(void **state)
{
	const struct variant_ops *v = sink();
	double params[VARIANT_MAX_PARAMS];

	(void)state;
	for (int si = 0; si < COUNT(settings); si++) {
		struct attn_problem p = problem(2, 4, 2, 63, 63, 16, ATTN_CS, params);

		set(params, settings[si][0], settings[si][1]);
		check_causal(v, &p, SEED + si);
	}
}

static void test_sink_decoding_matches_its_causal_forward(void **state)
{
	const struct variant_ops *v = sink();
	double params[VARIANT_MAX_PARAMS];
	uint64_t seed = SEED + 500;

	(void)state;
	for (int si = 0; si < COUNT(settings); si++) {
		set(params, settings[si][0], settings[si][1]);
		check_decode_at_short_lengths(v, params, si, &seed);
	}
}

/* K and V of S + W (cs) or S + 2W - 1 (ns) positions, at most the sequence, float32. */
static void test_sink_state_bytes_follow_the_formula(void **state)
{
	const struct variant_ops *v = sink();
	double params[VARIANT_MAX_PARAMS];
	struct attn_problem p;

	(void)state;
	set(params, 4, 1020);
	p = problem(2, 8, 2, 4096, 4096, 64, ATTN_CS, params);
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 2 * 1024 * 64 * 4);
	p.pattern = ATTN_NS;
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 2 * 2043 * 64 * 4);
	p = problem(1, 4, 4, 500, 500, 8, ATTN_CS, params);
	assert_true(v->state_bytes(&p) == 2.0 * 1 * 4 * 500 * 8 * 4);
	set(params, 3, 5);
	p = problem(1, 4, 1, 500, 500, 8, ATTN_NS, params);
	assert_true(v->state_bytes(&p) == 2.0 * 1 * 1 * 12 * 8 * 4);
}

/* FLOPs are 4d per kept pair: sinks plus window, counted once where they overlap. */
static void test_sink_flops_count_the_kept_pairs(void **state)
{
	const struct variant_ops *v = sink();
	double params[VARIANT_MAX_PARAMS];
	struct attn_problem p = problem(2, 3, 1, 50, 50, 8, ATTN_CS, params);

	(void)state;
	set(params, 4, 10);
	assert_true(v->flops(&p) == 4.0 * 2 * 3 * 8 * mask_pairs(&p, sink_allows, 0, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sink_declares_its_parameters_and_patterns),
		cmocka_unit_test(test_sink_mask_is_the_catalogue_predicate),
		cmocka_unit_test(test_sink_matches_an_fp64_transcription_on_awkward_shapes),
		cmocka_unit_test(test_sink_with_a_window_covering_the_sequence_equals_vanilla),
		cmocka_unit_test(test_sink_without_sinks_equals_local_in_cs),
		cmocka_unit_test(test_sink_keys_between_sinks_and_window_do_not_influence_a_row),
		cmocka_unit_test(test_sink_is_causal_in_cs),
		cmocka_unit_test(test_sink_decoding_matches_its_causal_forward),
		cmocka_unit_test(test_sink_state_bytes_follow_the_formula),
		cmocka_unit_test(test_sink_flops_count_the_kept_pairs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
