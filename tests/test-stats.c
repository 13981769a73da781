/*
 * test-stats.c - medians, quartiles, confidence intervals and Wilson intervals on
 * samples whose answers are known; the normal generator against the normal distribution.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "inputs.h"
#include "stats.h"

static void test_summary_of_one_to_nine_is_known(void **state)
{
	double x[] = { 9, 1, 8, 2, 7, 3, 6, 4, 5 };
	struct sample_summary s;

	(void)state;
	assert_int_equal(stats_summarise(x, 9, &s), 0);
	assert_int_equal(s.count, 9);
	assert_float_equal(s.median, 5, 0);
	/* numpy.percentile([1..9], 25) == 3, 75 -> 7 */
	assert_float_equal(s.q1, 3, 0);
	assert_float_equal(s.q3, 7, 0);
	assert_float_equal(s.min, 1, 0);
	assert_float_equal(s.max, 9, 0);
	assert_float_equal(s.mean, 5, 1e-12);
	assert_true(s.ci_lo <= s.median && s.median <= s.ci_hi);
	assert_float_equal(x[0], 9, 0);	/* the input is not sorted in place */
}

static void test_quartiles_interpolate_like_numpy(void **state)
{
	double x[] = { 4, 1, 3, 2 };
	struct sample_summary s;

	(void)state;
	assert_int_equal(stats_summarise(x, 4, &s), 0);
	/* numpy.percentile([1, 2, 3, 4], [25, 50, 75]) == [1.75, 2.5, 3.25] */
	assert_float_equal(s.median, 2.5, 1e-12);
	assert_float_equal(s.q1, 1.75, 1e-12);
	assert_float_equal(s.q3, 3.25, 1e-12);
}

static void test_median_ci_uses_the_order_statistic_ranks(void **state)
{
	double x[100];
	struct sample_summary s;

	(void)state;
	for (int i = 0; i < 100; i++)
		x[i] = 100 - i;	/* 100 .. 1 */
	assert_int_equal(stats_summarise(x, 100, &s), 0);
	/*
	 * B ~ Binomial(100, 1/2): P(B <= 39) = 0.0176 <= 0.025 < P(B <= 40) = 0.0284 (from
	 * the binomial table), so the narrowest 95% pair is x_(40), x_(61), covering
	 * 1 - 2 * 0.0176 = 0.9648.
	 */
	assert_float_equal(s.ci_lo, 40, 0);
	assert_float_equal(s.ci_hi, 61, 0);
	assert_float_equal(s.ci_level, 0.9648, 1e-4);
}

static void test_single_sample_is_its_own_interval(void **state)
{
	double x = 0.25;
	struct sample_summary s;

	(void)state;
	assert_int_equal(stats_summarise(&x, 1, &s), 0);
	assert_float_equal(s.median, 0.25, 0);
	assert_float_equal(s.ci_lo, 0.25, 0);
	assert_float_equal(s.ci_hi, 0.25, 0);
	/* one sample is below the median or above it: [x, x] never covers it */
	assert_true(s.ci_level == 0);
	assert_int_equal(stats_summarise(&x, 0, &s), -EINVAL);
}

/*
 * Summarises n..1 (values equal to their ranks, given in reverse order) and returns the
 * lower rank of the interval of the median, checking the pair is symmetric.
 */
static size_t summarise_ranks(size_t n, struct sample_summary *s)
{
	double *x = malloc(n * sizeof(*x));

	assert_non_null(x);
	for (size_t i = 0; i < n; i++)
		x[i] = (double)(n - i);
	assert_int_equal(stats_summarise(x, n, s), 0);
	free(x);
	assert_float_equal(s->ci_lo + s->ci_hi, (double)n + 1, 0);
	return (size_t)s->ci_lo;
}

/*
 * The reference, from the definition alone: x_(l) <= median <= x_(n+1-l) exactly when
 * l <= B <= n - l, B ~ Binomial(n, 1/2) the count below the median, so the coverage is
 * inside(l) / 2^n with inside(l) the sum of C(n, k) over k = l..n-l, by Pascal's triangle
 * in exact integers (2^60 * 20 < 2^66 fits 128 bits). At least 95% is
 * 20 * inside >= 19 * 2^n, with no rounding anywhere.
 */
static unsigned __int128 inside(const unsigned __int128 *row, size_t n, size_t l)
{
	unsigned __int128 sum = 0;

	for (size_t k = l; k + l <= n; k++)
		sum += row[k];
	return sum;
}

static void test_median_ci_ranks_match_exact_binomial_up_to_60(void **state)
{
	unsigned __int128 row[61] = { 1 };	/* row n of Pascal's triangle, C(n, k) */

	(void)state;
	for (size_t n = 1; n <= 60; n++) {
		unsigned __int128 all = (unsigned __int128)1 << n;
		struct sample_summary s;
		size_t want = 1, l;

		for (size_t k = n; k > 0; k--)
			row[k] += row[k - 1];
		/* the largest symmetric rank still at 95%; l = 1 ([min, max]) when none is */
		for (size_t r = 1; 2 * r <= n + 1; r++)
			if (20 * inside(row, n, r) >= 19 * all)
				want = r;
		l = summarise_ranks(n, &s);
		assert_int_equal(l, want);
		/*
		 * 1e-12: the level is a double sum of at most 30 terms, each to ~1e-16; fabs,
		 * as cmocka's assert_float_equal compares in float
		 */
		assert_true(fabs(s.ci_level - (double)inside(row, n, l) / (double)all) <= 1e-12);
		if (n >= 6) {
			assert_true(s.ci_level >= 0.95);
			/* narrowest: the next pair inward, while there is one, is below 95% */
			if (2 * (l + 1) <= n + 1)
				assert_true(20 * inside(row, n, l + 1) < 19 * all);
		} else {
			/* no pair reaches 95%: [min, max], 1 - 2 / 2^n */
			assert_int_equal(l, 1);
			assert_true(s.ci_level < 0.95);
			assert_true(s.ci_level == 1 - 2.0 / (double)all);
		}
	}
}

/*
 * Large samples: the Binomial(n, 1/2) probabilities by Pascal's triangle with each row
 * halved, in long double (no binomial coefficient is ever formed, so nothing overflows),
 * and the same largest-rank rule by a plain sum. At these n the chosen pair and the next
 * one inward cover at least 0.0007 away from 95%, so rounding cannot flip a choice.
 */
#define LARGE_N_MAX 3000

static void test_median_ci_ranks_match_binomial_for_large_samples(void **state)
{
	static const size_t sizes[] = { 200, 1000, LARGE_N_MAX };
	long double *pmf = calloc(LARGE_N_MAX + 1, sizeof(*pmf));

	(void)state;
	assert_non_null(pmf);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i], want = 1, l;
		struct sample_summary s;
		long double cover = 0, next = 0;

		memset(pmf, 0, (LARGE_N_MAX + 1) * sizeof(*pmf));
		pmf[0] = 1;
		for (size_t m = 1; m <= n; m++) {
			for (size_t k = m; k > 0; k--)
				pmf[k] = (pmf[k] + pmf[k - 1]) / 2;
			pmf[0] /= 2;
		}
		for (size_t r = 1; 2 * r <= n + 1; r++) {
			long double c = 0;

			for (size_t k = r; k + r <= n; k++)
				c += pmf[k];
			if (c >= 0.95L)
				want = r;
		}
		l = summarise_ranks(n, &s);
		assert_int_equal(l, want);
		for (size_t k = l; k + l <= n; k++)
			cover += pmf[k];
		for (size_t k = l + 1; k + l + 1 <= n; k++)
			next += pmf[k];
		/* 1e-10: both sides sum ~n/2 terms good to ~1e-13 relative each */
		assert_true(fabs(s.ci_level - (double)cover) <= 1e-10);
		assert_true(s.ci_level >= 0.95);
		assert_true(next < 0.95L);
	}
	free(pmf);
}

/*
 * The levels README quotes for short runs, exact in binary (and exactly what is stored,
 * as [min, max] covers 1 - 2 * 2^-n); beyond, to the last bits.
 */
static void test_small_samples_report_the_level_they_reach(void **state)
{
	struct sample_summary s;

	(void)state;
	assert_int_equal(summarise_ranks(2, &s), 1);
	assert_true(s.ci_level == 0.5);		/* 1 - 2/4 */
	assert_int_equal(summarise_ranks(3, &s), 1);
	assert_true(s.ci_level == 0.75);	/* 1 - 2/8 */
	assert_int_equal(summarise_ranks(5, &s), 1);
	assert_true(s.ci_level == 0.9375);	/* 1 - 2/32 */
	assert_int_equal(summarise_ranks(6, &s), 1);
	assert_true(s.ci_level == 0.96875);	/* 1 - 2/64 */
	/* 9: [x_(2), x_(8)] leaves out B in {0, 1, 8, 9}: 1 - 2 * (1 + 9) / 512 */
	assert_int_equal(summarise_ranks(9, &s), 2);
	assert_true(fabs(s.ci_level - (1 - 20.0 / 512)) <= 1e-15);
	/* 20: x_(6), x_(15), 1 - 2 * (1 + 20 + 190 + 1140 + 4845 + 15504) / 2^20 */
	assert_int_equal(summarise_ranks(20, &s), 6);
	assert_true(fabs(s.ci_level - (1 - 2 * 21700.0 / 1048576)) <= 1e-15);
}

static void test_median_ci_covers_the_true_median_about_95_percent(void **state)
{
	/* Exponential(1) has median ln 2; 2000 intervals from samples of 30. */
	int covered = 0, trials = 2000;
	double x[30];
	struct rng r;

	(void)state;
	rng_seed(&r, 42);
	for (int t = 0; t < trials; t++) {
		struct sample_summary s;

		for (int i = 0; i < 30; i++)
			x[i] = -log(1.0 - rng_uniform(&r));
		assert_int_equal(stats_summarise(x, 30, &s), 0);
		covered += s.ci_lo <= M_LN2 && M_LN2 <= s.ci_hi;
	}
	/* Order-statistic intervals are conservative: at least nominal, not absurdly wide. */
	assert_true(covered >= 0.93 * trials);
	assert_true(covered <= 0.995 * trials);
}

/* Equal samples give ratio 1 inside its interval; a 2x slower one sits near 2. */
static void test_median_ratio_finds_no_change_and_a_2x_slowdown(void **state)
{
	double a[25], b[25], slow[25];
	struct ratio_interval r;
	struct rng g;

	(void)state;
	rng_seed(&g, 7);
	for (int i = 0; i < 25; i++) {
		a[i] = 1.0 + 0.05 * rng_normal(&g);
		b[i] = 1.0 + 0.05 * rng_normal(&g);
		slow[i] = 2.0 * (1.0 + 0.05 * rng_normal(&g));
	}
	assert_int_equal(stats_median_ratio(a, 25, b, 25, 2000, 1, &r), 0);
	assert_true(r.lo <= 1.0 && 1.0 <= r.hi);
	assert_true(r.lo < r.ratio && r.ratio < r.hi);
	assert_true(r.hi - r.lo < 0.2);
	assert_int_equal(stats_median_ratio(a, 25, slow, 25, 2000, 1, &r), 0);
	assert_true(r.lo > 1.8 && r.hi < 2.2);
	assert_int_equal(stats_median_ratio(a, 0, slow, 25, 2000, 1, &r), -EINVAL);
	assert_int_equal(stats_median_ratio(a, 25, slow, 25, 10, 1, &r), -EINVAL);
}

/* Same samples and seed, same interval; a one-point sample has no spread. */
static void test_median_ratio_is_reproducible(void **state)
{
	double a[5] = { 1, 2, 3, 4, 5 }, b[1] = { 6 };
	struct ratio_interval r1, r2;

	(void)state;
	assert_int_equal(stats_median_ratio(a, 5, a, 5, 500, 9, &r1), 0);
	assert_int_equal(stats_median_ratio(a, 5, a, 5, 500, 9, &r2), 0);
	assert_memory_equal(&r1, &r2, sizeof(r1));
	assert_float_equal(r1.ratio, 1, 0);
	assert_int_equal(stats_median_ratio(b, 1, b, 1, 500, 9, &r1), 0);
	assert_true(r1.ratio == 1 && r1.lo == 1 && r1.hi == 1);
}

static void test_wilson_interval_matches_published_values(void **state)
{
	double lo, hi;

	(void)state;
	/* 5 of 10: [0.2366, 0.7634]; 0 of 10: [0, 0.2775]; 10 of 10: [0.7225, 1] */
	stats_wilson(5, 10, &lo, &hi);
	assert_float_equal(lo, 0.2366, 1e-4);
	assert_float_equal(hi, 0.7634, 1e-4);
	stats_wilson(0, 10, &lo, &hi);
	assert_float_equal(lo, 0, 1e-12);
	assert_float_equal(hi, 0.2775, 1e-4);
	stats_wilson(10, 10, &lo, &hi);
	assert_float_equal(lo, 0.7225, 1e-4);
	assert_float_equal(hi, 1, 1e-12);
}

/*
 * Two million normals against Phi (from erfc, not from the generator's tables): a
 * chi-square over 0.25-wide bins from -5 to 5 and the two tails, including the ziggurat's
 * tail beyond 3.654 and the wedges of every layer; the bulk and one-at-a-time draws give
 * the same stream.
 */
static void test_normals_follow_the_normal_distribution(void **state)
{
	enum { COUNT = 2000000, BINS = 40 };
	static float x[COUNT];
	double count[BINS + 2] = { 0 }, chi2 = 0, beyond = 0;
	struct rng a, b;

	(void)state;
	rng_seed(&a, 11);
	rng_seed(&b, 11);
	rng_normals(&a, x, COUNT, 1.0);
	for (int i = 0; i < 1000; i++)
		assert_true(x[i] == (float)rng_normal(&b));
	for (int i = 0; i < COUNT; i++) {
		double v = x[i];
		int bin = v < -5 ? 0 : v >= 5 ? BINS + 1 : 1 + (int)floor((v + 5) / 0.25);

		count[bin < BINS + 1 ? bin : BINS]++;
		beyond += fabs(v) > 3.6541528853610088;
	}
	for (int k = 0; k < BINS + 2; k++) {
		double lo = k == 0 ? -INFINITY : -5 + 0.25 * (k - 1);
		double hi = k == BINS + 1 ? INFINITY : -5 + 0.25 * k;
		double p = 0.5 * (erfc(-hi / M_SQRT2) - erfc(-lo / M_SQRT2));
		double want = p * COUNT;

		chi2 += (count[k] - want) * (count[k] - want) / want;
	}
	/* 41 degrees of freedom: 100 is beyond the 1e-7 quantile */
	assert_true(chi2 < 100);
	/* the tail path: 2 (1 - Phi(R)) = 2.58e-4, 516 of 2e6, sd 23 */
	assert_true(fabs(beyond - COUNT * erfc(3.6541528853610088 / M_SQRT2)) < 120);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_summary_of_one_to_nine_is_known),
		cmocka_unit_test(test_quartiles_interpolate_like_numpy),
		cmocka_unit_test(test_median_ci_uses_the_order_statistic_ranks),
		cmocka_unit_test(test_single_sample_is_its_own_interval),
		cmocka_unit_test(test_median_ci_ranks_match_exact_binomial_up_to_60),
		cmocka_unit_test(test_median_ci_ranks_match_binomial_for_large_samples),
		cmocka_unit_test(test_small_samples_report_the_level_they_reach),
		cmocka_unit_test(test_median_ratio_finds_no_change_and_a_2x_slowdown),
		cmocka_unit_test(test_median_ratio_is_reproducible),
		cmocka_unit_test(test_median_ci_covers_the_true_median_about_95_percent),
		cmocka_unit_test(test_wilson_interval_matches_published_values),
		cmocka_unit_test(test_normals_follow_the_normal_distribution),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
