/*
 * test-radial.c - the Radial Attention variant against VARIANTS.md section 10, written
 * here as a per-(i, j) predicate straight from the catalogue's equations (frames of F,
 * t = |f(i) - f(j)|, P = 2^bitlen(F), omega = P / 2^bitlen(t) as a real number, the sink
 * frame, whole near frames, bands of omega or tau with subsampling; the decay rule when
 * df != 1; cs adds j <= i) and an fp64 softmax over the keys it allows (mask-oracle.h).
 * Checked: the
 * output on awkward shapes with masks that bite at small N, the declared spans against
 * the predicate for every (i, j), the catalogue's properties (F >= N is vanilla; band
 * width non-increasing in t; O(F log N) keys per row), the defaults F = 2^ceil(log2
 * sqrt N) and tau = max(1, F/32), hidden keys moving nothing, causality, decoding, FLOPs
 * and state bytes, the declaration.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "variant-test.h"
#include "mask-oracle.h"

enum { P_FRAME, P_TAU, P_BLOCKIFY, P_DECAY, P_COUNT };

/* {F, tau, blockify, df}: masks that bite at small N, odd frames, decay, the defaults. */
static const double settings[][P_COUNT] = {
	{ 4, 1, 0, 1 }, { 4, 2, 0, 1 }, { 8, 1, 0, 1 }, { 8, 3, 0, 1 }, { 5, 1, 0, 1 },
	{ 3, 2, 0, 1 }, { 8, 1, 0, 0.5 }, { 4, 2, 0, 0.3 }, { 6, 4, 0, 0.8 }, { 0, 0, 0, 1 },
};

static const enum attn_pattern self_patterns[] = { ATTN_NS, ATTN_CS };

static const struct variant_ops *variant(void)
{
	const struct variant_ops *v = variant_must_find("radial");

	assert_int_equal(v->n_params, P_COUNT);
	assert_int_equal(variant_param_index(v, "frame"), P_FRAME);
	assert_int_equal(variant_param_index(v, "tau"), P_TAU);
	assert_int_equal(variant_param_index(v, "blockify"), P_BLOCKIFY);
	assert_int_equal(variant_param_index(v, "decay"), P_DECAY);
	return v;
}

/* Bits needed to write x >= 0: 0 for 0, 1 for 1, 2 for 2 and 3, ... */
static int bitlen(long x)
{
	return x > 0 ? (int)floor(log2((double)x)) + 1 : 0;
}

/* The frame and tau a problem runs with: 0 means the catalogue's default. */
static double frame_of(const struct attn_problem *p)
{
	double f = p->params[P_FRAME];

	return f ? f : pow(2, ceil(log2(sqrt((double)p->n))));
}

static double tau_of(const struct attn_problem *p)
{
	double tau = p->params[P_TAU];

	return tau ? tau : fmax(1, floor(frame_of(p) / 32));
}

/*
 * The catalogue's mask, one (i, j) at a time, in real numbers where it writes them; every
 * head alike.
 */
static bool radial_allows(const struct attn_problem *p, int h, int i, int j)
{
	double f = frame_of(p), tau = tau_of(p), df = p->params[P_DECAY];
	long fi = (long)floor(i / f), fj = (long)floor(j / f);
	double ri = i - fi * f, rj = j - fj * f, dr = fabs(ri - rj);
	long t = labs(fi - fj);
	double big_p = pow(2, bitlen((long)f)), omega = big_p / pow(2, bitlen(t));

	(void)h;
	if (p->pattern == ATTN_CS && j > i)
		return false;
	if (fj == 0)
		return true;
	if (df == 1) {
		if (t <= 1)
			return true;
		if (omega >= tau)
			return dr <= omega;
		return t % (long)floor(tau / omega) == 0 && dr <= tau;
	}
	return (t <= 1 || dr <= fmax(df * omega, tau)) &&
	       (omega >= tau || t % (long)floor(tau / omega) == 0);
}

static void test_radial_matches_an_fp64_transcription(void **state)
{
	const struct variant_ops *v = variant();
	uint64_t seed = SEED;

	(void)state;
	for (int si = 0; si < COUNT(settings); si++) {
		char what[64];

		snprintf(what, sizeof(what), "F=%g tau=%g df=%g", settings[si][P_FRAME],
			 settings[si][P_TAU], settings[si][P_DECAY]);
		check_sizes_against_predicate(v, settings[si], si, radial_allows, &seed, what);
	}
}

/*
 * Every (i, j) of a few shapes: the declared spans hold exactly what the predicate
 * allows, at most one span per frame.
 */
static void test_radial_spans_are_the_catalogue_mask(void **state)
{
	static const int lengths[] = { 1, 17, 63, 257, 300 };
	const struct variant_ops *v = variant();

	(void)state;
	for (int si = 0; si < COUNT(settings); si++)
		for (int li = 0; li < COUNT(lengths); li++) {
			int n = lengths[li];
			/* the frame depends on n and the settings only, not on the pattern */
			struct attn_problem p = problem(1, 2, 1, n, n, 8, ATTN_NS, settings[si]);
			int frames = (int)ceil(n / frame_of(&p));

			assert_true(check_self_masks_are_predicate(v, 2, n, settings[si],
								   radial_allows, MASK_MERGED) <=
				    frames);
		}
}

/* F >= N: everything lies in the sink frame, so the mask is the pattern's own. */
static void test_radial_one_frame_is_vanilla(void **state)
{
	static const int lengths[] = { 1, 17, 63, 257 };
	const struct variant_ops *v = variant();
	uint64_t seed = SEED + 100;

	(void)state;
	for (int li = 0; li < COUNT(lengths); li++)
		for (int pi = 0; pi < COUNT(self_patterns); pi++)
			for (int scale = 1; scale <= 3; scale += 2) {
				int n = lengths[li];
				double one[P_COUNT] = { n * scale, scale, 0, scale == 1 ? 1 : 0.5 };
				struct attn_problem p = problem(2, 4, 2, n, n, li % 2 ? 64 : 12,
								self_patterns[pi], one);
				char what[32];

				/* one span a row, vanilla's own */
				assert_int_equal(check_mask_is_predicate(v, &p, vanilla_allows, 0), 1);
				snprintf(what, sizeof(what), "vanilla (F=%d)", n * scale);
				check_against_predicate(v, &p, vanilla_allows, seed++, what);
			}
}

/*
 * Going away from a query's frame (either way, past the whole frames t <= 1 and not
 * counting the sink frame), a frame the mask keeps never shows more keys than a kept
 * frame nearer to it; and the keys a far frame shows lie in one band around the
 * query's offset.
 */
static void test_radial_band_width_does_not_grow_with_frame_distance(void **state)
{
	static const double bands[][P_COUNT] = {
		{ 8, 1, 0, 1 }, { 16, 2, 0, 1 }, { 16, 5, 0, 1 }, { 6, 1, 0, 1 },
		{ 16, 1, 0, 0.6 }, { 32, 3, 0, 0.2 },
	};
	const struct variant_ops *v = variant();

	(void)state;
	for (int si = 0; si < COUNT(bands); si++) {
		int f = (int)bands[si][P_FRAME], frames = 40, n = f * frames;
		struct attn_problem p = problem(1, 1, 1, n, n, 8, ATTN_NS, bands[si]);
		bool *seen = malloc(sizeof(bool) * n);
		int kept_far = 0;

		assert_non_null(seen);
		for (int i = 0; i < n; i += 3) {
			int fi = i / f;

			mask_row_flags(v, &p, 0, i, MASK_MERGED, seen);
			for (int side = -1; side <= 1; side += 2) {
				int last = f + 1;

				for (int t = 2; t < frames; t++) {
					int c = fi + side * t, got = 0, first = -1, end = -1;

					if (c <= 0 || c >= frames)
						break;
					for (int j = c * f; j < (c + 1) * f; j++)
						if (seen[j]) {
							got++;
							first = first < 0 ? j : first;
							end = j + 1;
						}
					if (!got)
						continue;
					/* one band holding the query's offset when it fits */
					assert_int_equal(end - first, got);
					assert_true(first - c * f <= i % f && i % f < end - c * f);
					assert_true(got <= last);
					last = got;
					kept_far++;
				}
			}
		}
		/* the check had far frames to look at */
		assert_true(kept_far > 0);
		free(seen);
	}
}

/*
 * Keys per row are O(F log N): the sink and the three near frames (4F), and per doubling
 * of the frame distance (level g, 2^(g-1) distances) at most 6P per side, P <= 2F:
 * while omega >= tau, bands of min(2 omega + 1, F) keys over 2^(g-1) <= P / (2 tau)
 * frames, at most 1.5P; below, every s-th frame with s = floor(tau 2^g / P) > tau 2^g /
 * (2P), so at most P / tau + 1 frames of at most 3 tau keys (tau <= F). The decay factor
 * only narrows bands. The settings keep the bound well below N.
 */
static void test_radial_keys_per_row_grow_as_f_log_n(void **state)
{
	static const double bounds[][P_COUNT] = {
		{ 8, 1, 0, 1 }, { 8, 3, 0, 1 }, { 16, 4, 0, 1 }, { 4, 1, 0, 1 }, { 8, 2, 0, 0.5 },
	};
	const struct variant_ops *v = variant();
	int n = 16384;
	bool *seen = malloc(sizeof(bool) * n);

	(void)state;
	assert_non_null(seen);
	for (int si = 0; si < COUNT(bounds); si++)
		for (int pi = 0; pi < COUNT(self_patterns); pi++) {
			struct attn_problem p = problem(1, 1, 1, n, n, 8, self_patterns[pi],
							bounds[si]);
			double f = frame_of(&p), big_p = pow(2, bitlen((long)f));
			double levels = bitlen((long)ceil(n / f));
			double bound = 4 * f + 2 * 6 * big_p * levels;
			int most = 0;

			/* meaningful: far below N */
			assert_true(bound < n / 2);
			for (int i = 0; i < n; i += 7) {
				int keys = 0;

				mask_row_flags(v, &p, 0, i, MASK_MERGED, seen);
				for (int j = 0; j < n; j++)
					keys += seen[j];
				most = keys > most ? keys : most;
			}
			if (!(most <= bound))
				print_error("F=%g tau=%g: %d keys in a row, bound %g\n", f,
					    tau_of(&p), most, bound);
			assert_true(most <= bound);
		}
	free(seen);
}

/* frame 0 and tau 0 mean F = 2^ceil(log2 sqrt N) and tau = max(1, floor(F / 32)). */
static void test_radial_defaults_follow_the_sequence_length(void **state)
{
	static const int lengths[] = { 1, 2, 17, 63, 64, 65, 257, 1025, 4096, 5000 };
	static const int frames[] = { 1, 2, 8, 8, 8, 16, 32, 64, 64, 128 };
	static const int taus[] = { 1, 1, 1, 1, 1, 1, 1, 2, 2, 4 };
	const struct variant_ops *v = variant();
	double defaults[P_COUNT];

	(void)state;
	variant_default_params(v, defaults);
	for (int li = 0; li < COUNT(lengths); li++)
		for (int pi = 0; pi < COUNT(self_patterns); pi++) {
			int n = lengths[li];
			double given[P_COUNT] = { frames[li], taus[li], 0, 1 };
			struct attn_problem a = problem(1, 1, 1, n, n, 8, self_patterns[pi], defaults);
			struct attn_problem b = problem(1, 1, 1, n, n, 8, self_patterns[pi], given);
			bool *seen_a = malloc(sizeof(bool) * n), *seen_b = malloc(sizeof(bool) * n);

			assert_non_null(seen_a);
			assert_non_null(seen_b);
			assert_true(frame_of(&a) == frames[li]);
			assert_true(tau_of(&a) == taus[li]);
			for (int i = 0; i < n; i += n > 300 ? 37 : 1) {
				mask_row_flags(v, &a, 0, i, MASK_MERGED, seen_a);
				mask_row_flags(v, &b, 0, i, MASK_MERGED, seen_b);
				assert_memory_equal(seen_a, seen_b, n);
			}
			free(seen_a);
			free(seen_b);
		}
}

/*
 * Every key the predicate hides from row i changed at once, in every head and batch: row i
 * stays put. The converse proves the check can fail: one key of a far band moves it.
 */
static void test_radial_ignores_keys_its_mask_hides(void **state)
{
	static const int rows[] = { 0, 13, 33, 47, 62 };
	static const double bite[P_COUNT] = { 4, 1, 0, 1 };
	const struct variant_ops *v = variant();

	(void)state;
	for (int pi = 0; pi < COUNT(self_patterns); pi++) {
		struct attn_problem p = problem(2, 4, 2, 63, 63, 16, self_patterns[pi], bite);

		for (int ri = 0; ri < COUNT(rows); ri++)
			for (int h = 0; h < p.heads; h++)
				check_hidden_keys_do_not_move(v, &p, radial_allows, h, rows[ri],
							      SEED + 201 + 10 * ri + pi);
		/*
		 * row 47 (frame 11, offset 3) sees frame 7 (t = 4, omega = 1) at offsets 2..3
		 * only: key 31 moves it, key 28 is hidden.
		 */
		assert_true(radial_allows(&p, 0, 47, 31));
		assert_false(radial_allows(&p, 0, 47, 28));
		check_key_moves_row(v, &p, 0, 47, 31, SEED + 200 + pi);
	}
}

/* cs: changing Q, K, V rows after t leaves rows <= t as they were. */
static void test_radial_cs_ignores_later_rows(void **state)
{
	static const double bites[][P_COUNT] = {
		{ 4, 1, 0, 1 }, { 5, 2, 0, 0.5 }, { 0, 0, 0, 1 },
	};
	const struct variant_ops *v = variant();

	(void)state;
	for (int si = 0; si < COUNT(bites); si++) {
		struct attn_problem p = problem(2, 4, 2, 63, 63, 16, ATTN_CS, bites[si]);

		/* cuts 0, 3, 6, 20, 41; masked keys weigh exactly 0, so only fp32 reordering */
		check_causal(v, &p, SEED + 301 + si);
	}
}

/* Decoding under masks that bite: each step is the forward pass's row. */
static void test_radial_decoding_matches_its_causal_forward(void **state)
{
	static const double bites[][P_COUNT] = {
		{ 4, 1, 0, 1 }, { 3, 2, 0, 1 }, { 8, 1, 0, 0.5 },
	};
	const struct variant_ops *v = variant();
	uint64_t seed = SEED + 400;

	(void)state;
	for (int si = 0; si < COUNT(bites); si++)
		check_decode_at_biting_lengths(v, bites[si], &seed);
}

/*
 * FLOPs: 4d per allowed pair of every head. state_bytes: never below the K and V of the
 * most keys a row sees, and exactly those in ns when N is a multiple of F and every band
 * fits around the middle offset (tau <= F / 2).
 */
static void test_radial_state_bytes_and_flops_follow_their_formulas(void **state)
{
	static const double exact[][P_COUNT] = {
		{ 8, 1, 0, 1 }, { 8, 3, 0, 1 }, { 16, 2, 0, 1 }, { 6, 1, 0, 1 }, { 8, 2, 0, 0.5 },
	};
	static const int lengths[] = { 1, 17, 130, 257 };
	const struct variant_ops *v = variant();

	(void)state;
	for (int si = 0; si < COUNT(settings); si++)
		for (int pi = 0; pi < COUNT(self_patterns); pi++)
			for (int li = 0; li < COUNT(lengths); li++) {
				int n = lengths[li];
				struct attn_problem p = problem(2, 8, 2, n, n, 16, self_patterns[pi],
								settings[si]);
				long most;
				double pairs = mask_pairs(&p, radial_allows, 0, &most);

				assert_true(v->state_bytes(&p) >= 2.0 * 2 * 2 * most * 16 * 4);
				assert_true(v->state_bytes(&p) <= 2.0 * 2 * 2 * n * 16 * 4);
				assert_true(v->flops(&p) == 4.0 * 2 * 8 * 16 * pairs);
			}
	for (int si = 0; si < COUNT(exact); si++) {
		int n = (int)exact[si][P_FRAME] * 23;
		struct attn_problem p = problem(1, 4, 1, n, n, 8, ATTN_NS, exact[si]);
		long most;

		mask_pairs(&p, radial_allows, 0, &most);
		assert_true(most < n);
		assert_true(v->state_bytes(&p) == 2.0 * 1 * 1 * most * 8 * 4);
	}
}

static void test_radial_declares_its_parameters_and_patterns(void **state)
{
	const struct variant_ops *v = variant();
	double defaults[P_COUNT];

	(void)state;
	variant_default_params(v, defaults);
	assert_true(defaults[P_FRAME] == 0);
	assert_true(defaults[P_TAU] == 0);
	assert_true(defaults[P_BLOCKIFY] == 0);
	assert_true(defaults[P_DECAY] == 1);
	check_declares_a_self_mask(v, defaults);
	assert_int_equal(v->extensions, PATTERN_BIT(ATTN_CS));
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		int m = pattern_is_self(pat) ? 40 : 24;
		struct attn_problem p = problem(1, 2, 1, 40, m, 8, pat, defaults);

		assert_int_equal(variant_check_problem(v, &p), pattern_is_self(pat) ? 0 : -ENOTSUP);
	}
	/* the block coarsening is not implemented: only the token mask is accepted */
	{
		double blocks[P_COUNT] = { 0, 0, 1, 1 };
		struct attn_problem p = problem(1, 2, 1, 40, 40, 8, ATTN_NS, blocks);

		assert_int_equal(variant_check_problem(v, &p), -EINVAL);
	}
	assert_non_null(v->decode_init);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_radial_matches_an_fp64_transcription),
		cmocka_unit_test(test_radial_spans_are_the_catalogue_mask),
		cmocka_unit_test(test_radial_one_frame_is_vanilla),
		cmocka_unit_test(test_radial_band_width_does_not_grow_with_frame_distance),
		cmocka_unit_test(test_radial_keys_per_row_grow_as_f_log_n),
		cmocka_unit_test(test_radial_defaults_follow_the_sequence_length),
		cmocka_unit_test(test_radial_ignores_keys_its_mask_hides),
		cmocka_unit_test(test_radial_cs_ignores_later_rows),
		cmocka_unit_test(test_radial_decoding_matches_its_causal_forward),
		cmocka_unit_test(test_radial_state_bytes_and_flops_follow_their_formulas),
		cmocka_unit_test(test_radial_declares_its_parameters_and_patterns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
