/*
 * efficiency.h - efficiency length (SPEC section 4, speed): from which sequence length a
 * variant is cheaper than a baseline, in time and in memory, computed two ways, and each
 * variant's scaling exponent.
 *
 * 1. Measured crossing. At the sampled lengths N_1 < ... < N_k where both have a cell, the
 *    ratio r_i = cost_variant / cost_baseline (cost: the median of the latency samples, or
 *    the peak workspace). The efficiency length is the smallest length from which the
 *    variant is cheaper and stays so: the last j with r_{j-1} >= 1 > r_j, interpolated
 *    linearly in (log N, log r) between N_{j-1} and N_j (costs scale as powers of N, so
 *    log r is close to straight in log N; where a cost is 0, the difference of the costs
 *    is interpolated instead).
 *    None (NULL) when r_k >= 1; "below range" when r_i < 1 at every sampled length (the
 *    length stored is then N_1, an upper bound). Time gets a 95% percentile bootstrap
 *    interval: each cell's samples are resampled with replacement, medians and crossing
 *    recomputed (2000 times, seeded); a resample without a crossing counts as beyond the
 *    range, so an interval can be open above (hi stored as NULL). Memory (peak bytes)
 *    has no samples and no interval.
 * 2. CAB's method (Zhang et al., ICML 2023): least-squares quadratic a N^2 + b N + c of the
 *    baseline's cost, least-squares line d N + e of the variant's, over the same lengths;
 *    the efficiency length is the larger root of (a N^2 + b N + c) - (d N + e), extrapolated
 *    beyond the range when it lies there; 0 when the fitted baseline is above the line at
 *    every N > 0; none when a <= 0 (the fitted baseline never pulls away). R^2 of both fits
 *    (1 - SS_res / SS_tot; a constant cost fitted exactly has R^2 = 1). Needs 3 lengths.
 *    Unlike CAB's script, every sampled length enters the variant's time fit (CAB drops
 *    the shortest).
 * 3. The two disagree when both exist and differ by more than a factor 1.5, or when one
 *    exists and the other not, with two exceptions that are not contradictions: a fit
 *    crossing beyond the largest sampled length where the measured curves do not cross,
 *    and a fit crossing at or below 1.5 x N_1 where the measured crossing is below range.
 * 4. Scaling exponent: least-squares slope of log cost against log N over the variant's
 *    own sampled lengths (positive costs only).
 *
 * Results are stored in run_metrics (one row per variant, pattern, baseline and name):
 * efficiency_length_time (+ _lo, _hi), efficiency_below_range_time,
 * efficiency_length_memory, efficiency_below_range_memory, cab_efficiency_length_{time,
 * memory}, cab_r2_{baseline,variant}_{time,memory}, efficiency_disagree_{time,memory},
 * loglog_slope_{time,memory}; lengths in "tokens", the rest unitless. A NULL value means
 * "none" (for _hi: open above), a missing row "not computable" (too few lengths, no
 * samples). The baseline gets only its slopes.
 */
#ifndef ATTNBENCH_EFFICIENCY_H
#define ATTNBENCH_EFFICIENCY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

/* The baseline unless --baseline says otherwise. */
#define EFFICIENCY_DEFAULT_BASELINE "vanilla"

/* Two efficiency lengths further apart than this factor disagree. */
#define EFFICIENCY_DISAGREE_FACTOR 1.5

/* Bootstrap resamples of the measured crossing: 2000 keep the 2.5% and 97.5% quantiles
 * stable to a few tokens while a run's whole table takes well under a second. */
#define EFFICIENCY_BOOTSTRAP_ITERS 2000

/* The crossing of two measured cost curves. */
struct eff_crossing {
	bool found;		/* the variant is cheaper from some sampled length on */
	bool below_range;	/* cheaper at every sampled length; length = the smallest */
	double length;		/* the efficiency length (tokens) when found */
};

/*
 * Where variant[] becomes cheaper than base[] for good, over length[0..k) ascending and
 * distinct, costs >= 0 (method 1 above). Returns 0, or -EINVAL when k == 0 or a length is
 * not positive and increasing.
 */
int efficiency_crossing(const double *length, const double *base, const double *variant,
			size_t k, struct eff_crossing *out);

/* One cost curve with its raw samples: samples[i][0..n_samples[i]) at length[i]. */
struct eff_series {
	size_t k;
	const double *length;
	const double *const *samples;
	const size_t *n_samples;
};

/*
 * The 95% percentile bootstrap interval of the measured crossing of var against base
 * (same lengths, every n_samples[i] >= 1): iters resamples, seeded. *hi is INFINITY when
 * more than 2.5% of the resamples do not cross within the range. Returns 0, -EINVAL for
 * mismatched series, iters < 100 or an empty sample, -ENOMEM.
 */
int efficiency_bootstrap(const struct eff_series *base, const struct eff_series *var,
			 int iters, uint64_t seed, double *lo, double *hi);

/* CAB's fitted efficiency length (method 2 above). */
struct eff_cab {
	double length;		/* NAN: none */
	double a, b, c;		/* baseline fit a N^2 + b N + c */
	double d, e;		/* variant fit d N + e */
	double r2_base, r2_variant;
};

/*
 * Fits both curves over length[0..k) and intersects them. Returns 0, or -EINVAL when there
 * are fewer than 3 distinct positive lengths.
 */
int efficiency_cab(const double *length, const double *base, const double *variant,
		   size_t k, struct eff_cab *out);

/*
 * Least-squares slope of log(cost) against log(length) over the points with cost > 0.
 * Returns 0, or -EINVAL when fewer than 2 distinct lengths have a positive cost.
 */
int efficiency_loglog_slope(const double *length, const double *cost, size_t k,
			    double *slope);

/*
 * Whether the measured crossing m and CAB's fitted length cab disagree (rule 3 above);
 * max_length is the largest sampled length. Returns 1 or 0.
 */
int efficiency_disagree(const struct eff_crossing *m, double cab, double max_length);

/* One result, as a row of run_metrics. */
struct eff_metric {
	char variant[64];
	char pattern[8];
	char name[40];
	double value;		/* NAN is stored as NULL */
	const char *unit;	/* "tokens" for lengths, "" otherwise */
};

struct eff_list {
	struct eff_metric *items;
	size_t count, cap;
};

/* Frees the list's contents. */
void efficiency_list_release(struct eff_list *l);

/*
 * The value of a metric in l, or NULL when l has no such row.
 */
const struct eff_metric *efficiency_find(const struct eff_list *l, const char *variant,
					 const char *pattern, const char *name);

/*
 * Computes every efficiency metric of a run against baseline from the run's ok `speed`
 * cells: per pattern, at the pattern's most common shape (d, heads, kv_heads, batch), each
 * variant at its most common parameter setting; cells at the same length are pooled.
 * Appends to out (which starts empty or zeroed). Returns 0; -ENODATA when the run has no
 * ok speed cell of the baseline (out is then empty); -EIO on SQLite trouble; -ENOMEM.
 */
int efficiency_compute(sqlite3 *db, int64_t run_id, const char *baseline,
		       struct eff_list *out);

/*
 * Replaces the run's stored efficiency metrics against baseline by l, in one transaction.
 * Returns 0 or -EIO (nothing changed then).
 */
int efficiency_save(sqlite3 *db, int64_t run_id, const char *baseline,
		    const struct eff_list *l);

/*
 * Reads the run's stored efficiency metrics against baseline into out (empty or zeroed).
 * Returns 0 (out may stay empty), -EIO, -ENOMEM.
 */
int efficiency_load(sqlite3 *db, int64_t run_id, const char *baseline,
		    struct eff_list *out);

/*
 * efficiency_compute() then efficiency_save(): what `run` does at its end. Returns 0,
 * -ENODATA (no baseline speed cells: nothing stored), -EIO, -ENOMEM.
 */
int efficiency_update_run(sqlite3 *db, int64_t run_id, const char *baseline);

#endif
