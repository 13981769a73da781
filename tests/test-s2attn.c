/*
 * test-s2attn.c - LongLoRA's shifted sparse attention against VARIANTS.md section 30
 * written as a per-(i, j) predicate (groups, shifted groups, the literal roll by -G/2,
 * sinks) and an fp64 softmax over the keys it allows: the declared spans are that
 * predicate for 1, 3 and 4 heads, the outputs match it on awkward shapes, the default
 * group is N/4, the rolled group joins the last and first tokens, G >= N leaves the
 * unshifted heads vanilla, the unshifted heads are chunk(C = G), cs is causal with wrap
 * off and visibly not with wrap = 1, sinks switch wrap off, hidden keys never reach a
 * row, decoding equals the causal pass, and state bytes follow the formula.
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
enum { P_GROUP, P_WRAP, P_SINKS, P_COUNT };

static const enum attn_pattern self_patterns[] = { ATTN_NS, ATTN_CS };

/* (G, wrap, S): the defaults, then settings that bite at n <= 257 (odd G, G = 1, G > n). */
static const int settings[][3] = {
	{ 0, 0, 0 }, { 0, 1, 0 }, { 4, 0, 0 }, { 5, 0, 0 }, { 5, 1, 0 }, { 8, 1, 0 },
	{ 1, 1, 0 }, { 6, 0, 3 }, { 5, 1, 2 }, { 300, 0, 0 }, { 300, 1, 0 }, { 16, 0, 20 },
};

static const struct variant_ops *s2attn(void)
{
	const struct variant_ops *v = variant_must_find("s2attn");

	assert_int_equal(v->n_params, P_COUNT);
	assert_int_equal(variant_param_index(v, "group"), P_GROUP);
	assert_int_equal(variant_param_index(v, "wrap"), P_WRAP);
	assert_int_equal(variant_param_index(v, "sinks"), P_SINKS);
	return v;
}

static void set(double *params, int group, int wrap, int sinks)
{
	for (int x = 0; x < VARIANT_MAX_PARAMS; x++)
		params[x] = 0;
	params[P_GROUP] = group;
	params[P_WRAP] = wrap;
	params[P_SINKS] = sinks;
}

/* G: as given, or N / 4 rounded down and at least 1 for 0 (the variant's documented rule). */
static int group_of(const struct attn_problem *p)
{
	int g = (int)p->params[P_GROUP];

	if (g == 0)
		g = p->n / 4 >= 1 ? p->n / 4 : 1;
	return g;
}

/* Where position x sits after torch.roll(seq, -s): rolled[t] = seq[(t + s) mod N]. */
static int rolled_position(int n, int s, int x)
{
	for (int t = 0; t < n; t++)
		if ((t + s) % n == x)
			return t;
	fail();
	return -1;
}

/*
 * Section 30. Heads h < floor(H / 2): groups [aG, (a + 1)G). The others: borders at
 * G/2 + aG with a first group [0, G/2) (wrap = 0), or, wrap = 1, groups [aG, (a + 1)G)
 * of the sequence rolled by -G/2, cs taken in rolled order. cs: j <= i. Sinks S: keys
 * j < S for every row (cs: j <= i), and wrap = 0. G/2 is G / 2 rounded down.
 */
static bool s2attn_allows(const struct attn_problem *p, int h, int i, int j)
{
	int g = group_of(p), half = g / 2, sinks = (int)p->params[P_SINKS];
	bool cs = p->pattern == ATTN_CS, wrap = p->params[P_WRAP] == 1 && sinks == 0;

	if (j < sinks && (!cs || j <= i))
		return true;
	if (h < p->heads / 2)
		return (!cs || j <= i) && i / g == j / g;
	if (!wrap) {
		/* group index: how many borders half + a g lie at or before the position */
		int gi = i < half ? 0 : 1 + (i - half) / g, gj = j < half ? 0 : 1 + (j - half) / g;

		return (!cs || j <= i) && gi == gj;
	}
	{
		int ti = rolled_position(p->n, half, i), tj = rolled_position(p->n, half, j);

		return (!cs || tj <= ti) && ti / g == tj / g;
	}
}

static void test_s2attn_declares_its_parameters_and_patterns(void **state)
{
	const struct variant_ops *v = s2attn();
	double params[VARIANT_MAX_PARAMS];

	(void)state;
	variant_default_params(v, params);
	assert_true(params[P_GROUP] == 0);
	assert_true(params[P_WRAP] == 0);
	assert_true(params[P_SINKS] == 0);
	check_declares_a_self_mask(v, params);
	assert_true(v->extensions == PATTERN_BIT(ATTN_NS));
	{
		struct attn_problem p = problem(1, 2, 2, 16, 16, 8, ATTN_CS, params);

		set(params, 0, 2, 0);
		assert_int_equal(variant_check_problem(v, &p), -EINVAL);
		/* wrap = 1 runs in cs (documented non-causal; see the causality test) */
		set(params, 0, 1, 0);
		assert_int_equal(variant_check_problem(v, &p), 0);
	}
}

static void test_s2attn_mask_is_the_catalogue_predicate(void **state)
{
	static const int lengths[] = { 1, 2, 3, 17, 63 }, head_counts[] = { 1, 3, 4 };
	const struct variant_ops *v = s2attn();
	double params[VARIANT_MAX_PARAMS];

	(void)state;
	for (int si = 0; si < COUNT(settings); si++) {
		set(params, settings[si][0], settings[si][1], settings[si][2]);
		for (int li = 0; li < COUNT(lengths); li++)
			for (int hi = 0; hi < COUNT(head_counts); hi++)
				check_self_masks_are_predicate(v, head_counts[hi], lengths[li], params,
							       s2attn_allows, 0);
	}
}

static void test_s2attn_matches_an_fp64_transcription_on_awkward_shapes(void **state)
{
	static const int lengths[] = { 1, 17, 63, 130 };
	const struct variant_ops *v = s2attn();
	double params[VARIANT_MAX_PARAMS];
	uint64_t seed = SEED;
	int at = 0;

	(void)state;
	for (int si = 0; si < COUNT(settings); si++) {
		char what[48];

		set(params, settings[si][0], settings[si][1], settings[si][2]);
		snprintf(what, sizeof(what), "G=%d wrap=%d S=%d", settings[si][0],
			 settings[si][1], settings[si][2]);
		for (int li = 0; li < COUNT(lengths); li++)
			check_self_patterns_against_predicate(v, lengths[li], params, s2attn_allows,
							      &at, &seed, what);
	}
}

/* Row i of head h as its spans, for hand-worked cases. */
static void expect_spans(const struct variant_ops *v, const struct attn_problem *p, int h,
			 int i, int count, const struct key_span *want)
{
	struct key_span got[8];

	assert_int_equal(v->mask(p, h, i, got, COUNT(got)), count);
	for (int x = 0; x < count; x++) {
		assert_int_equal(got[x].lo, want[x].lo);
		assert_int_equal(got[x].hi, want[x].hi);
	}
}

/* G = 0 is floor(N / 4), at least 1: 2048 for 8192, 15 for 63, 1 for 3. */
static void test_s2attn_default_group_is_a_quarter_of_the_sequence(void **state)
{
	const struct variant_ops *v = s2attn();
	double params[VARIANT_MAX_PARAMS];
	struct attn_problem p = problem(1, 2, 1, 8192, 8192, 64, ATTN_NS, params);

	(void)state;
	set(params, 0, 0, 0);
	expect_spans(v, &p, 0, 0, 1, (struct key_span[]){ { 0, 2048 } });
	expect_spans(v, &p, 0, 5000, 1, (struct key_span[]){ { 4096, 6144 } });
	expect_spans(v, &p, 1, 0, 1, (struct key_span[]){ { 0, 1024 } });
	expect_spans(v, &p, 1, 5000, 1, (struct key_span[]){ { 3072, 5120 } });
	p.n = p.m = 63;
	expect_spans(v, &p, 0, 20, 1, (struct key_span[]){ { 15, 30 } });
	expect_spans(v, &p, 0, 62, 1, (struct key_span[]){ { 60, 63 } });
	/* G = 15 shifts by 7: groups [0, 7), [7, 22), ... [52, 63) */
	expect_spans(v, &p, 1, 6, 1, (struct key_span[]){ { 0, 7 } });
	expect_spans(v, &p, 1, 60, 1, (struct key_span[]){ { 52, 63 } });
	p.n = p.m = 3;
	expect_spans(v, &p, 0, 2, 1, (struct key_span[]){ { 2, 3 } });
	expect_spans(v, &p, 1, 2, 1, (struct key_span[]){ { 2, 3 } });
}

/*
 * wrap = 1 on N = 16, G = 4: the shifted head's wrapped group is {14, 15, 0, 1}, the
 * others [2, 6), [6, 10), [10, 14); the unshifted head is not rolled; with H = 1 the only
 * head is the shifted one. In cs the rolled order makes key 14 visible to row 0.
 */
static void test_s2attn_wrapped_group_joins_the_last_and_first_tokens(void **state)
{
	const struct key_span wrapped[] = { { 0, 2 }, { 14, 16 } };
	const struct variant_ops *v = s2attn();
	double params[VARIANT_MAX_PARAMS];
	struct attn_problem p = problem(1, 2, 1, 16, 16, 8, ATTN_NS, params);

	(void)state;
	set(params, 4, 1, 0);
	expect_spans(v, &p, 1, 0, 2, wrapped);
	expect_spans(v, &p, 1, 1, 2, wrapped);
	expect_spans(v, &p, 1, 15, 2, wrapped);
	expect_spans(v, &p, 1, 2, 1, (struct key_span[]){ { 2, 6 } });
	expect_spans(v, &p, 1, 13, 1, (struct key_span[]){ { 10, 14 } });
	expect_spans(v, &p, 0, 0, 1, (struct key_span[]){ { 0, 4 } });
	expect_spans(v, &p, 0, 15, 1, (struct key_span[]){ { 12, 16 } });
	p.heads = 1;
	expect_spans(v, &p, 0, 15, 2, wrapped);
	/* wrap = 0: first group [0, 2), last [14, 16) */
	set(params, 4, 0, 0);
	expect_spans(v, &p, 0, 0, 1, (struct key_span[]){ { 0, 2 } });
	expect_spans(v, &p, 0, 15, 1, (struct key_span[]){ { 14, 16 } });
	/* cs, wrap = 1: row 0 is rolled to 14, after 14 and 15 (rolled 12 and 13) */
	set(params, 4, 1, 0);
	p.pattern = ATTN_CS;
	expect_spans(v, &p, 0, 0, 2, (struct key_span[]){ { 0, 1 }, { 14, 16 } });
	expect_spans(v, &p, 0, 14, 1, (struct key_span[]){ { 14, 15 } });
}

/*
 * G >= N without wrap: the unshifted heads (h < H/2) see every key vanilla sees; the
 * shifted heads do not (their first group [0, G/2) is cut off).
 */
static void test_s2attn_whole_sequence_group_leaves_unshifted_heads_vanilla(void **state)
{
	static const int lengths[] = { 17, 63 };
	const struct variant_ops *v = s2attn(), *vanilla = variant_must_find("vanilla");
	double params[VARIANT_MAX_PARAMS];

	(void)state;
	for (int li = 0; li < COUNT(lengths); li++)
		for (int pi = 0; pi < COUNT(self_patterns); pi++)
			for (int extra = 0; extra <= 50; extra += 50) {
				int n = lengths[li], d = 12;
				struct attn_problem p = problem(2, 4, 2, n, n, d, self_patterns[pi],
								params);
				size_t slice = (size_t)n * d;
				struct tensors a, b;

				set(params, n + extra, 0, 0);
				tensors_make(&a, &p, SEED + li, 1.0);
				tensors_copy(&b, &a);
				run(v, &p, &a);
				p.params = NULL;
				run(vanilla, &p, &b);
				for (int bi = 0; bi < 2; bi++) {
					size_t at = (size_t)bi * 4 * slice;

					/* heads 0 and 1: vanilla; heads 2 and 3 not, while G/2 < N */
					assert_true(error_vs_float(a.o + at, b.o + at, 2 * slice) <=
						    MASK_TOLERANCE);
					if ((n + extra) / 2 < n)
						assert_true(error_vs_float(a.o + at + 2 * slice,
									   b.o + at + 2 * slice,
									   2 * slice) > 1e-3);
				}
				tensors_release(&a);
				tensors_release(&b);
			}
}

/* The unshifted heads run chunk's mask with C = G (the same spans: the same numbers). */
static void test_s2attn_unshifted_heads_equal_chunk(void **state)
{
	static const int groups[] = { 1, 4, 5, 16, 100 };
	const struct variant_ops *v = s2attn(), *chunk = variant_must_find("chunk");
	double params[VARIANT_MAX_PARAMS], chunk_params[VARIANT_MAX_PARAMS] = { 0 };

	(void)state;
	for (int gi = 0; gi < COUNT(groups); gi++)
		for (int pi = 0; pi < COUNT(self_patterns); pi++) {
				int n = 63, d = 64;
				struct attn_problem p = problem(2, 4, 1, n, n, d, self_patterns[pi],
								params);
				size_t slice = (size_t)n * d;
				struct tensors a, b;

				set(params, groups[gi], gi % 2, 0);
				chunk_params[0] = groups[gi];
				tensors_make(&a, &p, SEED + gi, 1.0);
				tensors_copy(&b, &a);
				run(v, &p, &a);
				p.params = chunk_params;
				run(chunk, &p, &b);
				for (int bi = 0; bi < 2; bi++) {
					size_t at = (size_t)bi * 4 * slice;

					assert_true(error_vs_float(a.o + at, b.o + at, 2 * slice) <=
						    1e-6);
				}
				tensors_release(&a);
				tensors_release(&b);
			}
}

/* wrap off: causal for every group size, shift and sinks. */
static void test_s2attn_is_causal_in_cs_with_wrap_off(void **state)
{
	const struct variant_ops *v = s2attn();
	double params[VARIANT_MAX_PARAMS];

	(void)state;
	for (int si = 0; si < COUNT(settings); si++) {
		struct attn_problem p = problem(2, 4, 2, 63, 63, 16, ATTN_CS, params);

		if (settings[si][1] && !settings[si][2] && settings[si][0] != 1)
			continue;
		set(params, settings[si][0], settings[si][1], settings[si][2]);
		check_causal(v, &p, SEED + si);
	}
}

/*
 * wrap = 1 forced onto cs lets the first tokens see the last ones: the same perturbation
 * check that passes above moves rows <= t by far more than its bound. With H = 1 too.
 */
static void test_s2attn_wrap_forced_onto_cs_fails_the_causality_check(void **state)
{
	static const int groups[] = { 0, 4, 8, 9 };
	const struct variant_ops *v = s2attn();
	double params[VARIANT_MAX_PARAMS];

	(void)state;
	for (int gi = 0; gi < COUNT(groups); gi++)
		for (int heads = 1; heads <= 4; heads += 3) {
			struct attn_problem p = problem(2, heads, 1, 63, 63, 16, ATTN_CS, params);
			double change;

			set(params, groups[gi], 1, 0);
			change = causal_change(v, &p, SEED + gi);
			assert_true(change > 100 * MASK_CAUSAL_TOLERANCE);
			set(params, groups[gi], 0, 0);
			assert_true(causal_change(v, &p, SEED + gi) <= MASK_CAUSAL_TOLERANCE);
		}
}

/* sinks > 0 implies wrap = 0: setting wrap changes nothing, bit for bit. */
static void test_s2attn_sinks_switch_wrap_off(void **state)
{
	const struct variant_ops *v = s2attn();
	double params[VARIANT_MAX_PARAMS];

	(void)state;
	for (int pi = 0; pi < COUNT(self_patterns); pi++) {
		struct attn_problem p = problem(2, 4, 2, 63, 63, 12, self_patterns[pi], params);
		struct tensors a, b;

		tensors_make(&a, &p, SEED + pi, 1.0);
		tensors_copy(&b, &a);
		set(params, 8, 1, 3);
		run(v, &p, &a);
		set(params, 8, 0, 3);
		run(v, &p, &b);
		assert_memory_equal(a.o, b.o, sizeof(float) * a.nq);
		tensors_release(&a);
		tensors_release(&b);
	}
}

/*
 * Keys outside row i's group and sinks are never read for it; one inside is. Rows with
 * nothing hidden (a group as long as the sequence) are passed over.
 */
static void test_s2attn_hides_keys_outside_the_group(void **state)
{
	static const int rows[] = { 0, 3, 30, 62 };
	const struct variant_ops *v = s2attn();
	double params[VARIANT_MAX_PARAMS];
	int checked = 0;

	(void)state;
	for (int si = 0; si < COUNT(settings); si++)
		for (int ri = 0; ri < COUNT(rows); ri++)
			for (int h = 0; h < 4; h += 3) {
				enum attn_pattern pat = self_patterns[(si + ri) % 2];
				struct attn_problem p = problem(1, 4, 2, 63, 63, 8, pat, params);
				int hidden = 0;

				set(params, settings[si][0], settings[si][1], settings[si][2]);
				for (int j = 0; j < p.m; j++)
					hidden += !s2attn_allows(&p, h, rows[ri], j);
				if (!hidden)
					continue;
				check_hidden_keys_do_not_move(v, &p, s2attn_allows, h, rows[ri],
							      SEED + 10 * si + ri);
				checked++;
			}
	assert_true(checked >= 60);
}

static void test_s2attn_decoding_matches_its_causal_forward(void **state)
{
	const struct variant_ops *v = s2attn();
	double params[VARIANT_MAX_PARAMS];
	uint64_t seed = SEED + 500;

	(void)state;
	for (int si = 0; si < COUNT(settings); si++) {
		/* wrap = 1 without sinks is refused by the decoder (the test below) */
		if (settings[si][1] && !settings[si][2])
			continue;
		set(params, settings[si][0], settings[si][1], settings[si][2]);
		check_decode_at_short_lengths(v, params, si, &seed);
	}
}

/* A decoder cannot give a row keys that come later: wrap = 1 (without sinks) is refused. */
static void test_s2attn_decoding_refuses_the_wrapped_layout(void **state)
{
	const struct variant_ops *v = s2attn();
	double params[VARIANT_MAX_PARAMS];
	struct attn_problem p = problem(1, 4, 2, 32, 32, 8, ATTN_CS, params);
	size_t live = memory_live_bytes();
	void *dec = &dec;

	(void)state;
	set(params, 8, 1, 0);
	assert_int_equal(v->decode_init(&p, &dec), -ENOTSUP);
	assert_null(dec);
	assert_int_equal(memory_live_bytes(), live);
}

/* K and V of a group and the sinks (at most the sequence), float32, per KV head. */
static void test_s2attn_state_bytes_follow_the_formula(void **state)
{
	const struct variant_ops *v = s2attn();
	double params[VARIANT_MAX_PARAMS];
	struct attn_problem p;

	(void)state;
	set(params, 0, 0, 0);
	p = problem(2, 8, 2, 8192, 8192, 64, ATTN_CS, params);
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 2 * 2048 * 64 * 4);
	set(params, 0, 0, 4);
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 2 * 2052 * 64 * 4);
	set(params, 100, 1, 0);
	p = problem(1, 4, 4, 63, 63, 8, ATTN_NS, params);
	assert_true(v->state_bytes(&p) == 2.0 * 1 * 4 * 63 * 8 * 4);
	set(params, 0, 0, 0);
	p = problem(1, 4, 1, 3, 3, 8, ATTN_NS, params);
	assert_true(v->state_bytes(&p) == 2.0 * 1 * 1 * 1 * 8 * 4);
}

/* FLOPs are 4d per kept pair, counted from the predicate. */
static void test_s2attn_flops_count_the_kept_pairs(void **state)
{
	const struct variant_ops *v = s2attn();
	double params[VARIANT_MAX_PARAMS];
	struct attn_problem p = problem(2, 3, 1, 50, 50, 8, ATTN_CS, params);

	(void)state;
	for (int si = 0; si < COUNT(settings); si++) {
		double pairs = 0;

		set(params, settings[si][0], settings[si][1], settings[si][2]);
		for (int h = 0; h < p.heads; h++)
			pairs += mask_pairs(&p, s2attn_allows, h, NULL);
		assert_true(v->flops(&p) == 4.0 * 2 * 8 * pairs);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_s2attn_declares_its_parameters_and_patterns),
		cmocka_unit_test(test_s2attn_mask_is_the_catalogue_predicate),
		cmocka_unit_test(test_s2attn_matches_an_fp64_transcription_on_awkward_shapes),
		cmocka_unit_test(test_s2attn_default_group_is_a_quarter_of_the_sequence),
		cmocka_unit_test(test_s2attn_wrapped_group_joins_the_last_and_first_tokens),
		cmocka_unit_test(test_s2attn_whole_sequence_group_leaves_unshifted_heads_vanilla),
		cmocka_unit_test(test_s2attn_unshifted_heads_equal_chunk),
		cmocka_unit_test(test_s2attn_is_causal_in_cs_with_wrap_off),
		cmocka_unit_test(test_s2attn_wrap_forced_onto_cs_fails_the_causality_check),
		cmocka_unit_test(test_s2attn_sinks_switch_wrap_off),
		cmocka_unit_test(test_s2attn_hides_keys_outside_the_group),
		cmocka_unit_test(test_s2attn_decoding_matches_its_causal_forward),
		cmocka_unit_test(test_s2attn_decoding_refuses_the_wrapped_layout),
		cmocka_unit_test(test_s2attn_state_bytes_follow_the_formula),
		cmocka_unit_test(test_s2attn_flops_count_the_kept_pairs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
