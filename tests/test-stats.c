/*
 * test-stats.c - medians, quartiles, confidence intervals and Wilson intervals on
 * samples whose answers are known.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>

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
	/* ranks floor(50 - 9.8) = 40 and ceil(51 + 9.8) = 61 (Conover's approximation) */
	assert_float_equal(s.ci_lo, 40, 0);
	assert_float_equal(s.ci_hi, 61, 0);
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
	assert_int_equal(stats_summarise(&x, 0, &s), -EINVAL);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_summary_of_one_to_nine_is_known),
		cmocka_unit_test(test_quartiles_interpolate_like_numpy),
		cmocka_unit_test(test_median_ci_uses_the_order_statistic_ranks),
		cmocka_unit_test(test_single_sample_is_its_own_interval),
		cmocka_unit_test(test_median_ratio_finds_no_change_and_a_2x_slowdown),
		cmocka_unit_test(test_median_ratio_is_reproducible),
		cmocka_unit_test(test_median_ci_covers_the_true_median_about_95_percent),
		cmocka_unit_test(test_wilson_interval_matches_published_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
