/*
 * stats.h - summary statistics for latency samples and accuracy proportions.
 */
#ifndef ATTNBENCH_STATS_H
#define ATTNBENCH_STATS_H

#include <stddef.h>
#include <stdint.h>

struct sample_summary {
	size_t count;
	double median;
	double ci_lo, ci_hi;	/* distribution-free CI of the median (order statistics) */
	double ci_level;	/* its exact coverage: >= 0.95 from 6 samples, less below */
	double q1, q3;		/* quartiles (linear interpolation, as numpy's default) */
	double min, max;
	double mean;
};

/*
 * Summarises x[0..n) (n >= 1; x is not modified). The confidence interval of the median
 * is [x_(l), x_(n+1-l)] (1-based order statistics), which needs no distributional
 * assumption: l is the largest rank whose exact coverage, 1 - 2 * P(B <= l - 1) with
 * B ~ Binomial(n, 1/2), is still at least 95%, so it is the narrowest such symmetric
 * pair. Below 6 samples no pair reaches 95%; the interval is then [min, max] and ci_level
 * says what it reaches (1 - 2 / 2^n: 0.75 for 3 samples, 0.9375 for 5, 0 for one).
 * Returns 0 or -EINVAL when n == 0, -ENOMEM.
 */
int stats_summarise(const double *x, size_t n, struct sample_summary *s);

/* Sorts x[0..n) ascending. */
void stats_sort(double *x, size_t n);

/*
 * Median of x[0..n) (n >= 1) as the harness reports it (linear interpolation between the
 * middle two for even n). scratch holds n doubles. x is not modified.
 */
double stats_median(const double *x, size_t n, double *scratch);

/* Quantile q in [0, 1] of sorted[0..n) by linear interpolation (numpy's "linear"). */
double stats_quantile_sorted(const double *sorted, size_t n, double q);

/* Wilson score 95% interval for `successes` out of `trials` (trials > 0). */
void stats_wilson(long successes, long trials, double *lo, double *hi);

/*
 * A sample prepared for bootstrap resampling: its values sorted, and for each original
 * index the rank of its value, so that a resample with replacement is a count per rank
 * and its order statistics a running sum: O(n) per resample instead of a sort. The
 * resampled median is the same number as sorting the drawn values would give.
 */
struct stats_resampler {
	double *sorted;		/* the sample, ascending */
	size_t *rank;		/* rank[i]: where x[i] stands in sorted */
	size_t *count;		/* per rank, how often the current resample drew it */
	size_t n;
};

/* Prepares r for x[0..n) (n >= 1; x is not kept). 0 or -ENOMEM (r is then released). */
int stats_resampler_init(struct stats_resampler *r, const double *x, size_t n);
/* Frees what init allocated. */
void stats_resampler_release(struct stats_resampler *r);
/*
 * The median of n values drawn with replacement (splitmix64 from *state, advanced by n
 * draws), so a seed gives the same resamples on every machine.
 */
double stats_resampled_median(struct stats_resampler *r, uint64_t *state);

/* A ratio of medians with its 95% bootstrap interval. */
struct ratio_interval {
	double ratio;		/* median(b) / median(a) of the samples as given */
	double lo, hi;		/* 2.5% and 97.5% quantiles of the resampled ratios */
};

/*
 * median(b) / median(a) (e.g. a variant's latency over the baseline's) with a percentile
 * bootstrap interval: `iters` times, each sample is resampled with replacement and the
 * ratio of the resampled medians taken. Seeded, so the same samples give the same
 * interval. Returns 0, -EINVAL for an empty sample or iters < 100, -ENOMEM.
 */
int stats_median_ratio(const double *a, size_t na, const double *b, size_t nb, int iters,
		       uint64_t seed, struct ratio_interval *r);

#endif
