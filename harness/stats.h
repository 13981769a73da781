/*
 * stats.h - summary statistics for latency samples and accuracy proportions.
 */
#ifndef ATTNBENCH_STATS_H
#define ATTNBENCH_STATS_H

#include <stddef.h>

struct sample_summary {
	size_t count;
	double median;
	double ci_lo, ci_hi;	/* distribution-free 95% CI of the median (order statistics) */
	double q1, q3;		/* quartiles (linear interpolation, as numpy's default) */
	double min, max;
	double mean;
};

/*
 * Summarises x[0..n) (n >= 1; x is not modified). The confidence interval of the median
 * uses the order statistics at ranks n/2 -+ 1.96*sqrt(n)/2 (clamped to the sample), so it
 * needs no distributional assumption. Returns 0 or -EINVAL when n == 0, -ENOMEM.
 */
int stats_summarise(const double *x, size_t n, struct sample_summary *s);

/* Quantile q in [0, 1] of sorted[0..n) by linear interpolation (numpy's "linear"). */
double stats_quantile_sorted(const double *sorted, size_t n, double q);

/* Wilson score 95% interval for `successes` out of `trials` (trials > 0). */
void stats_wilson(long successes, long trials, double *lo, double *hi);

#endif
