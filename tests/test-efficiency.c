/*
 * test-efficiency.c - efficiency lengths on synthetic cost curves whose crossings, fits and
 * slopes are known in closed form; the bootstrap interval around a known crossing; the
 * disagreement flag on a case like CAB's (a fit far from the measured crossing); and the
 * run_metrics rows computed from a database built here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "efficiency.h"
#include "store.h"
#include "store-test.h"

/* cmocka's assert_float_equal compares in single precision: this one in double. */
#define assert_close(a, b, eps) do { \
	double a_ = (a), b_ = (b); \
	if (!(fabs(a_ - b_) <= (eps))) \
		fail_msg("%s = %.17g, expected %.17g (+- %g)", #a, a_, b_, (double)(eps)); \
} while (0)

static const double lengths[6] = { 256, 512, 1024, 2048, 4096, 8192 };

static void test_power_laws_cross_where_known(void **state)
{
	/* base = 1e-9 N^2, variant = 7e-7 N: ratio 700 / N, a straight line in log-log */
	double base[6], var[6];
	struct eff_crossing c;

	(void)state;
	for (int i = 0; i < 6; i++) {
		base[i] = 1e-9 * lengths[i] * lengths[i];
		var[i] = 7e-7 * lengths[i];
	}
	assert_int_equal(efficiency_crossing(lengths, base, var, 6, &c), 0);
	assert_true(c.found);
	assert_false(c.below_range);
	assert_close(c.length, 700, 1e-9);
}

static void test_cheaper_everywhere_is_below_range(void **state)
{
	double base[6], var[6];
	struct eff_crossing c;

	(void)state;
	for (int i = 0; i < 6; i++) {
		base[i] = lengths[i] * lengths[i];
		var[i] = lengths[i];
	}
	assert_int_equal(efficiency_crossing(lengths, base, var, 6, &c), 0);
	assert_true(c.found);
	assert_true(c.below_range);
	assert_close(c.length, 256, 0);
}

static void test_curves_that_do_not_stay_crossed_give_none(void **state)
{
	double base[6] = { 1, 1, 1, 1, 1, 1 };
	double dearer[6] = { 2, 2, 2, 2, 2, 2 };
	double back[6] = { 2, 0.5, 0.5, 0.5, 0.5, 1.5 };	/* cheaper, then not at the end */
	double equal[6] = { 2, 0.5, 0.5, 0.5, 0.5, 1 };		/* equal is not cheaper */
	struct eff_crossing c;

	(void)state;
	assert_int_equal(efficiency_crossing(lengths, base, dearer, 6, &c), 0);
	assert_false(c.found);
	assert_true(isnan(c.length));
	assert_int_equal(efficiency_crossing(lengths, base, back, 6, &c), 0);
	assert_false(c.found);
	assert_int_equal(efficiency_crossing(lengths, base, equal, 6, &c), 0);
	assert_false(c.found);
}

static void test_the_last_crossing_counts(void **state)
{
	/* ratios 2, 0.5, 2, 0.5, 0.5, 0.5: the last upward-to-cheaper step is 1024 -> 2048,
	 * from ratio 2 to 1/2, halfway in log ratio: the geometric mean of the lengths */
	double base[6] = { 1, 1, 1, 1, 1, 1 }, var[6] = { 2, 0.5, 2, 0.5, 0.5, 0.5 };
	struct eff_crossing c;

	(void)state;
	assert_int_equal(efficiency_crossing(lengths, base, var, 6, &c), 0);
	assert_true(c.found);
	assert_false(c.below_range);
	assert_close(c.length, sqrt(1024.0 * 2048.0), 1e-9);
}

static void test_a_zero_cost_interpolates_the_difference(void **state)
{
	/* difference +100 at 100, -100 at 400: halfway in log N is 200 */
	double len[2] = { 100, 400 }, base[2] = { 50, 100 }, var[2] = { 150, 0 };
	struct eff_crossing c;

	(void)state;
	assert_int_equal(efficiency_crossing(len, base, var, 2, &c), 0);
	assert_true(c.found);
	assert_close(c.length, 200, 1e-9);
}

static void test_bad_lengths_are_rejected(void **state)
{
	double unsorted[3] = { 512, 256, 1024 }, zero[3] = { 0, 256, 512 }, y[3] = { 1, 1, 1 };
	struct eff_crossing c;
	struct eff_cab cab;

	(void)state;
	assert_int_equal(efficiency_crossing(unsorted, y, y, 3, &c), -EINVAL);
	assert_int_equal(efficiency_crossing(zero, y, y, 3, &c), -EINVAL);
	assert_int_equal(efficiency_crossing(lengths, y, y, 0, &c), -EINVAL);
	assert_int_equal(efficiency_cab(lengths, y, y, 2, &cab), -EINVAL);
	assert_int_equal(efficiency_cab(unsorted, y, y, 3, &cab), -EINVAL);
}

static void test_cab_recovers_a_known_quadratic_and_line(void **state)
{
	const double a = 2e-6, b = 1e-3, c = 0.5, d = 0.01, e = 2;
	double base[6], var[6];
	long double root, disc;
	struct eff_cab cab;

	(void)state;
	for (int i = 0; i < 6; i++) {
		base[i] = (a * lengths[i] + b) * lengths[i] + c;
		var[i] = d * lengths[i] + e;
	}
	assert_int_equal(efficiency_cab(lengths, base, var, 6, &cab), 0);
	assert_close(cab.a, a, 1e-9 * a);
	assert_close(cab.b, b, 1e-7 * b);
	assert_close(cab.c, c, 1e-6 * c);
	assert_close(cab.d, d, 1e-9 * d);
	assert_close(cab.e, e, 1e-9 * e);
	assert_close(cab.r2_base, 1, 1e-12);
	assert_close(cab.r2_variant, 1, 1e-12);
	/* a N^2 + (b - d) N + (c - e) = 0, the larger root by the schoolbook formula */
	disc = (long double)(b - d) * (b - d) - 4.0L * a * (c - e);
	root = (-(long double)(b - d) + sqrtl(disc)) / (2.0L * a);
	assert_close(cab.length, (double)root, 1e-6 * (double)root);
	/* about 4660.9 tokens, and the two fitted curves meet there */
	assert_close(cab.length, 4660.9, 0.1);
	assert_close((a * cab.length + b) * cab.length + c, d * cab.length + e, 1e-6);
}

static void test_cab_takes_the_larger_root_when_b_exceeds_d(void **state)
{
	/* base = 1e-6 N^2 + 0.01 N, variant = 0.001 N + 3: b - d > 0, c - e < 0 */
	double base[6], var[6];
	long double root;
	struct eff_cab cab;

	(void)state;
	for (int i = 0; i < 6; i++) {
		base[i] = (1e-6 * lengths[i] + 0.01) * lengths[i];
		var[i] = 0.001 * lengths[i] + 3;
	}
	root = (-0.009L + sqrtl(0.009L * 0.009L + 4 * 1e-6L * 3)) / (2 * 1e-6L);
	assert_int_equal(efficiency_cab(lengths, base, var, 6, &cab), 0);
	assert_close(cab.length, (double)root, 1e-6 * (double)root);
	assert_close(cab.length, 321.8, 0.1);
}

static void test_cab_without_a_crossing_is_zero_or_none(void **state)
{
	double base[6], line[6], concave[6];
	struct eff_cab cab;

	(void)state;
	for (int i = 0; i < 6; i++) {
		base[i] = 1e-6 * lengths[i] * lengths[i] + 5;
		line[i] = 1e-3 * lengths[i];		/* below the baseline everywhere */
		concave[i] = -1e-6 * lengths[i] * lengths[i] + 20;
	}
	assert_int_equal(efficiency_cab(lengths, base, line, 6, &cab), 0);
	assert_close(cab.length, 0, 0);
	/* a baseline that bends down never pulls away from a line for good */
	assert_int_equal(efficiency_cab(lengths, concave, line, 6, &cab), 0);
	assert_true(isnan(cab.length));
}

static void test_cab_r2_of_a_bent_line_is_known(void **state)
{
	/* y = 0, 1, 0 at x = 1, 2, 3 (scaled): the least-squares line is flat at 1/3, SS_tot =
	 * 2/3, SS_res = 2/3 as well: R^2 = 0. A quadratic fits three points exactly. */
	double len[3] = { 1000, 2000, 3000 }, y[3] = { 0, 1, 0 };
	struct eff_cab cab;

	(void)state;
	assert_int_equal(efficiency_cab(len, y, y, 3, &cab), 0);
	assert_close(cab.r2_variant, 0, 1e-12);
	assert_close(cab.r2_base, 1, 1e-12);
	assert_close(cab.d, 0, 1e-15);
	assert_close(cab.e, 1.0 / 3, 1e-12);
}

/* Least squares of y on (1, x, x^2) by Cramer's rule in long double: an independent fit. */
static void quadratic_fit(const double *x, const double *y, int n, long double *a,
			  long double *b, long double *c)
{
	long double s[5] = { 0 }, t[3] = { 0 }, m[3][3], det, mm[3][3];
	long double sol[3];

	for (int i = 0; i < n; i++) {
		long double p = 1;

		for (int k = 0; k < 5; k++, p *= x[i])
			s[k] += p;
		for (int k = 0; k < 3; k++)
			t[k] += powl(x[i], k) * y[i];
	}
	for (int r = 0; r < 3; r++)
		for (int q = 0; q < 3; q++)
			m[r][q] = s[r + q];
#define DET3(M) ((M)[0][0] * ((M)[1][1] * (M)[2][2] - (M)[1][2] * (M)[2][1]) - \
		 (M)[0][1] * ((M)[1][0] * (M)[2][2] - (M)[1][2] * (M)[2][0]) + \
		 (M)[0][2] * ((M)[1][0] * (M)[2][1] - (M)[1][1] * (M)[2][0]))
	det = DET3(m);
	for (int k = 0; k < 3; k++) {
		memcpy(mm, m, sizeof(m));
		for (int r = 0; r < 3; r++)
			mm[r][k] = t[r];
		sol[k] = DET3(mm) / det;
	}
	*c = sol[0];
	*b = sol[1];
	*a = sol[2];
}

static void test_superquadratic_baseline_makes_fit_and_crossing_disagree(void **state)
{
	/*
	 * As in CAB's timings, where the fit says 1,877 for ABC while the measured curves
	 * cross near 512: a baseline that grows faster than N^2 over the range (N^2.6 here)
	 * is fitted by a quadratic that runs below it at mid lengths, so the fitted crossing
	 * with a linear variant lands far beyond the measured one.
	 */
	double base[6], var[6];
	long double a, b, c, d, e, sx = 0, sy = 0, sxx = 0, sxy = 0, root, t, measured;
	struct eff_crossing m;
	struct eff_cab cab;

	(void)state;
	for (int i = 0; i < 6; i++) {
		base[i] = 1e-6 * 256 * 256 * pow(lengths[i] / 256, 2.6);
		var[i] = 1e-3 * lengths[i];
		sx += lengths[i];
		sy += var[i];
		sxx += (long double)lengths[i] * lengths[i];
		sxy += (long double)lengths[i] * var[i];
	}
	/* measured: ratio 1.29 at 512, 0.43 at 1024 (var / base), log-interpolated */
	t = logl((long double)var[1] / base[1]) /
	    (logl((long double)var[1] / base[1]) - logl((long double)var[2] / base[2]));
	measured = expl(logl(512) + t * (logl(1024) - logl(512)));
	assert_int_equal(efficiency_crossing(lengths, base, var, 6, &m), 0);
	assert_true(m.found);
	assert_close(m.length, (double)measured, 1e-9 * (double)measured);
	assert_close(m.length, 600, 1);

	quadratic_fit(lengths, base, 6, &a, &b, &c);
	d = (6 * sxy - sx * sy) / (6 * sxx - sx * sx);
	e = (sy - d * sx) / 6;
	root = (-(b - d) + sqrtl((b - d) * (b - d) - 4 * a * (c - e))) / (2 * a);
	assert_int_equal(efficiency_cab(lengths, base, var, 6, &cab), 0);
	assert_close(cab.length, (double)root, 1e-6 * (double)root);
	assert_close(cab.length, 1672, 1);
	assert_true(cab.r2_base < 1 && cab.r2_base > 0.99);
	assert_int_equal(efficiency_disagree(&m, cab.length, 8192), 1);
}

static void test_exact_quadratic_baseline_agrees(void **state)
{
	/* base = 1e-6 N^2, variant = 1e-3 N: both methods give N = 1000 */
	double base[6], var[6];
	struct eff_crossing m;
	struct eff_cab cab;

	(void)state;
	for (int i = 0; i < 6; i++) {
		base[i] = 1e-6 * lengths[i] * lengths[i];
		var[i] = 1e-3 * lengths[i];
	}
	assert_int_equal(efficiency_crossing(lengths, base, var, 6, &m), 0);
	assert_int_equal(efficiency_cab(lengths, base, var, 6, &cab), 0);
	assert_close(m.length, 1000, 1e-9);
	assert_close(cab.length, 1000, 1e-6);
	assert_int_equal(efficiency_disagree(&m, cab.length, 8192), 0);
}

static void test_disagreement_rules(void **state)
{
	struct eff_crossing none = { .found = false, .length = NAN };
	struct eff_crossing at600 = { .found = true, .length = 600 };
	struct eff_crossing below = { .found = true, .below_range = true, .length = 256 };

	(void)state;
	assert_int_equal(efficiency_disagree(&at600, 890, 8192), 0);	/* 1.48x */
	assert_int_equal(efficiency_disagree(&at600, 910, 8192), 1);	/* 1.52x */
	assert_int_equal(efficiency_disagree(&at600, 395, 8192), 1);	/* 1.52x below */
	assert_int_equal(efficiency_disagree(&at600, NAN, 8192), 1);	/* one, not the other */
	assert_int_equal(efficiency_disagree(&at600, 0, 8192), 1);
	assert_int_equal(efficiency_disagree(&none, NAN, 8192), 0);
	/* a fitted crossing in range contradicts "none"; one beyond the range does not */
	assert_int_equal(efficiency_disagree(&none, 4000, 8192), 1);
	assert_int_equal(efficiency_disagree(&none, 20000, 8192), 0);
	assert_int_equal(efficiency_disagree(&below, 0, 8192), 0);	/* an upper bound */
	assert_int_equal(efficiency_disagree(&below, 380, 8192), 0);
	assert_int_equal(efficiency_disagree(&below, 390, 8192), 1);
}

static void test_loglog_slopes_of_power_laws(void **state)
{
	double quad[6], lin[6], flat[6], zeros[6] = { 0, 0, 0, 0, 0, 7 }, slope;

	(void)state;
	for (int i = 0; i < 6; i++) {
		quad[i] = 3e-9 * lengths[i] * lengths[i];
		lin[i] = 5e-4 * lengths[i];
		flat[i] = 129024;
	}
	assert_int_equal(efficiency_loglog_slope(lengths, quad, 6, &slope), 0);
	assert_close(slope, 2, 1e-12);
	assert_int_equal(efficiency_loglog_slope(lengths, lin, 6, &slope), 0);
	assert_close(slope, 1, 1e-12);
	assert_int_equal(efficiency_loglog_slope(lengths, flat, 6, &slope), 0);
	assert_close(slope, 0, 1e-12);
	/* zero costs have no logarithm: one point left is not a slope */
	assert_int_equal(efficiency_loglog_slope(lengths, zeros, 6, &slope), -EINVAL);
}

/* The test's own generator (xorshift64*), so noise does not come from the code under test. */
static double uniform(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return (double)((*s * 0x2545f4914f6cdd1dull) >> 11) / 9007199254740992.0;
}

#define NOISY_SAMPLES 31

struct noisy {
	double data[2][6][NOISY_SAMPLES];
	const double *ptr[2][6];
	size_t n[2][6];
};

/* base = 1e-9 N^2, variant = 1e-9 * cross * N, each sample times (1 +- spread). */
static void make_noisy(struct noisy *z, double cross, double spread, uint64_t seed)
{
	for (int i = 0; i < 6; i++)
		for (int s = 0; s < NOISY_SAMPLES; s++) {
			z->data[0][i][s] = 1e-9 * lengths[i] * lengths[i] *
					   (1 + spread * (2 * uniform(&seed) - 1));
			z->data[1][i][s] = 1e-9 * cross * lengths[i] *
					   (1 + spread * (2 * uniform(&seed) - 1));
		}
	for (int v = 0; v < 2; v++)
		for (int i = 0; i < 6; i++) {
			z->ptr[v][i] = z->data[v][i];
			z->n[v][i] = NOISY_SAMPLES;
		}
}

static void test_bootstrap_interval_contains_the_true_crossing(void **state)
{
	struct noisy *z = malloc(sizeof(*z));
	struct eff_series base, var;
	double lo, hi, lo2, hi2;

	(void)state;
	assert_non_null(z);
	make_noisy(z, 700, 0.05, 42);
	base = (struct eff_series){ 6, lengths, z->ptr[0], z->n[0] };
	var = (struct eff_series){ 6, lengths, z->ptr[1], z->n[1] };
	assert_int_equal(efficiency_bootstrap(&base, &var, 2000, 7, &lo, &hi), 0);
	assert_true(lo <= 700 && 700 <= hi);
	assert_true(lo > 512 && hi < 1024);
	/* 5% noise on medians of 31 samples: the interval is tight */
	assert_true(hi / lo < 1.2);
	/* seeded: the same seed gives the same interval */
	assert_int_equal(efficiency_bootstrap(&base, &var, 2000, 7, &lo2, &hi2), 0);
	assert_close(lo, lo2, 0);
	assert_close(hi, hi2, 0);
	assert_int_equal(efficiency_bootstrap(&base, &var, 99, 7, &lo2, &hi2), -EINVAL);
	free(z);
}

static void test_bootstrap_is_open_above_when_the_last_point_barely_crosses(void **state)
{
	/* the true crossing sits at 8000, just under the largest length, with 20% noise:
	 * many resamples do not cross in range */
	struct noisy *z = malloc(sizeof(*z));
	struct eff_series base, var;
	double lo, hi;

	(void)state;
	assert_non_null(z);
	make_noisy(z, 8000, 0.2, 3);
	base = (struct eff_series){ 6, lengths, z->ptr[0], z->n[0] };
	var = (struct eff_series){ 6, lengths, z->ptr[1], z->n[1] };
	assert_int_equal(efficiency_bootstrap(&base, &var, 1000, 1, &lo, &hi), 0);
	assert_true(isinf(hi));
	assert_true(lo > 4096 && lo < 8192);
	free(z);
}

/* ---- run_metrics from a database ---- */

/* One ok speed cell with `count` equal samples of `seconds` and a peak workspace. */
static void add_speed_cell(sqlite3 *db, const char *variant, const char *pattern, int n,
			   int heads, const char *params, double seconds, double peak, int count)
{
	char sql[1024];
	sqlite3_int64 id;

	snprintf(sql, sizeof(sql), "INSERT INTO cells (run_id, variant, task, pattern, n, m, d,"
		 " heads, kv_heads, batch, params, seed, threads, status, finished) VALUES"
		 " (1, '%s', 'speed', '%s', %d, %d, 64, %d, %d, 1, '%s', 0, 1, 'ok', 'now')",
		 variant, pattern, n, n, heads, heads, params);
	exec_ok(db, sql);
	id = sqlite3_last_insert_rowid(db);
	snprintf(sql, sizeof(sql), "INSERT INTO metrics VALUES (%lld, 'latency_median', %.17g,"
		 " 's'), (%lld, 'peak_bytes', %.17g, 'B')", (long long)id, seconds,
		 (long long)id, peak);
	exec_ok(db, sql);
	for (int s = 0; s < count; s++) {
		snprintf(sql, sizeof(sql), "INSERT INTO samples (cell_id, idx, seconds) VALUES (%lld, %d, %.17g)",
			 (long long)id, s, seconds);
		exec_ok(db, sql);
	}
}

static double stored(sqlite3 *db, const char *variant, const char *name, bool *is_null,
		     char *unit)
{
	sqlite3_stmt *st;
	double v = NAN;

	assert_int_equal(sqlite3_prepare_v2(db, "SELECT value, unit FROM run_metrics WHERE"
					    " run_id = 1 AND variant = ? AND pattern = 'ns'"
					    " AND baseline = 'vanilla' AND name = ?", -1, &st,
					    NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, variant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW)
		fail_msg("no run_metrics row %s %s", variant, name);
	*is_null = sqlite3_column_type(st, 0) == SQLITE_NULL;
	v = sqlite3_column_double(st, 0);
	if (unit)
		snprintf(unit, 16, "%s", sqlite3_column_text(st, 1));
	sqlite3_finalize(st);
	return v;
}

static void test_run_metrics_are_computed_and_stored(void **state)
{
	struct store *s;
	sqlite3 *db;
	struct eff_list l = { 0 };
	char why[128], unit[16];
	bool null;

	(void)state;
	assert_int_equal(store_open(":memory:", 0, &s, why, sizeof(why)), 0);
	db = store_db(s);
	exec_ok(db, "INSERT INTO runs (id, started, status) VALUES (1, 'now', 'complete')");
	assert_int_equal(efficiency_update_run(db, 1, "vanilla"), -ENODATA);
	for (int i = 0; i < 6; i++) {
		double n = lengths[i];

		add_speed_cell(db, "vanilla", "ns", (int)n, 8, "{}", 1e-9 * n * n, 4 * n * n, 5);
		/* linear: crosses at 700 in time; memory 4 * 3000 N crosses 4 N^2 at 3000 */
		add_speed_cell(db, "linear", "ns", (int)n, 8, "{}", 7e-7 * n, 12000 * n, 5);
		/* a rarer parameter setting that would cross elsewhere: not used */
		if (i < 2)
			add_speed_cell(db, "linear", "ns", (int)n, 8, "{\"x\":1}", 1e-3 * n, 1, 5);
		/* a rarer shape (4 heads): not used */
		if (i < 3)
			add_speed_cell(db, "vanilla", "ns", (int)n, 4, "{}", 1, 1, 5);
		/* dearer everywhere: none */
		add_speed_cell(db, "slow", "ns", (int)n, 8, "{}", 2e-9 * n * n, 8 * n * n, 5);
	}
	assert_int_equal(efficiency_update_run(db, 1, "vanilla"), 0);

	assert_close(stored(db, "linear", "efficiency_length_time", &null, unit), 700,
			   1e-6);
	assert_false(null);
	assert_string_equal(unit, "tokens");
	/* every sample equal: every resample gives the same crossing */
	assert_close(stored(db, "linear", "efficiency_length_time_lo", &null, NULL), 700,
			   1e-6);
	assert_close(stored(db, "linear", "efficiency_length_time_hi", &null, NULL), 700,
			   1e-6);
	assert_close(stored(db, "linear", "efficiency_below_range_time", &null, NULL), 0,
			   0);
	assert_close(stored(db, "linear", "efficiency_length_memory", &null, NULL), 3000,
			   1e-6);
	assert_close(stored(db, "linear", "cab_efficiency_length_time", &null, NULL), 700,
			   1e-3);
	assert_close(stored(db, "linear", "cab_r2_baseline_time", &null, NULL), 1, 1e-9);
	assert_close(stored(db, "linear", "cab_r2_variant_memory", &null, NULL), 1, 1e-9);
	assert_close(stored(db, "linear", "efficiency_disagree_time", &null, NULL), 0, 0);
	assert_close(stored(db, "linear", "loglog_slope_time", &null, NULL), 1, 1e-9);
	assert_close(stored(db, "vanilla", "loglog_slope_time", &null, NULL), 2, 1e-9);
	assert_close(stored(db, "vanilla", "loglog_slope_memory", &null, NULL), 2, 1e-9);
	stored(db, "slow", "efficiency_length_time", &null, NULL);
	assert_true(null);	/* none */
	assert_close(stored(db, "slow", "efficiency_disagree_time", &null, NULL), 0, 0);

	/* read back as stored; storing again replaces rather than duplicates */
	assert_int_equal(efficiency_load(db, 1, "vanilla", &l), 0);
	assert_non_null(efficiency_find(&l, "linear", "ns", "efficiency_length_time"));
	assert_null(efficiency_find(&l, "vanilla", "ns", "efficiency_length_time"));
	size_t count = l.count;

	efficiency_list_release(&l);
	assert_int_equal(efficiency_update_run(db, 1, "vanilla"), 0);
	assert_int_equal(efficiency_load(db, 1, "vanilla", &l), 0);
	assert_int_equal(l.count, count);
	efficiency_list_release(&l);
	store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_power_laws_cross_where_known),
		cmocka_unit_test(test_cheaper_everywhere_is_below_range),
		cmocka_unit_test(test_curves_that_do_not_stay_crossed_give_none),
		cmocka_unit_test(test_the_last_crossing_counts),
		cmocka_unit_test(test_a_zero_cost_interpolates_the_difference),
		cmocka_unit_test(test_bad_lengths_are_rejected),
		cmocka_unit_test(test_cab_recovers_a_known_quadratic_and_line),
		cmocka_unit_test(test_cab_takes_the_larger_root_when_b_exceeds_d),
		cmocka_unit_test(test_cab_without_a_crossing_is_zero_or_none),
		cmocka_unit_test(test_cab_r2_of_a_bent_line_is_known),
		cmocka_unit_test(test_superquadratic_baseline_makes_fit_and_crossing_disagree),
		cmocka_unit_test(test_exact_quadratic_baseline_agrees),
		cmocka_unit_test(test_disagreement_rules),
		cmocka_unit_test(test_loglog_slopes_of_power_laws),
		cmocka_unit_test(test_bootstrap_interval_contains_the_true_crossing),
		cmocka_unit_test(test_bootstrap_is_open_above_when_the_last_point_barely_crosses),
		cmocka_unit_test(test_run_metrics_are_computed_and_stored),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
