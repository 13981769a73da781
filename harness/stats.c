/*
 * stats.c - medians with distribution-free confidence intervals, quartiles, Wilson
 * intervals for proportions.
 */
#include "stats.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define Z95 1.959963984540054	/* two-sided 95% normal quantile */

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double stats_quantile_sorted(const double *sorted, size_t n, double q)
{
	double pos = q * (double)(n - 1);
	size_t lo = (size_t)floor(pos);
	double frac = pos - (double)lo;

	if (lo + 1 >= n)
		return sorted[n - 1];
	return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

int stats_summarise(const double *x, size_t n, struct sample_summary *s)
{
	double *sorted, sum = 0, half_width;
	long lo, hi;

	if (n == 0)
		return -EINVAL;
	sorted = malloc(n * sizeof(*sorted));
	if (!sorted)
		return -ENOMEM;
	memcpy(sorted, x, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), compare_doubles);
	for (size_t i = 0; i < n; i++)
		sum += sorted[i];

	s->count = n;
	s->median = stats_quantile_sorted(sorted, n, 0.5);
	s->q1 = stats_quantile_sorted(sorted, n, 0.25);
	s->q3 = stats_quantile_sorted(sorted, n, 0.75);
	s->min = sorted[0];
	s->max = sorted[n - 1];
	s->mean = sum / (double)n;

	/*
	 * The number of samples below the median is Binomial(n, 1/2); the 1-based ranks
	 * n/2 -+ z*sqrt(n)/2 bracket the median with about 95% coverage.
	 */
	half_width = Z95 * sqrt((double)n) / 2;
	lo = (long)floor((double)n / 2 - half_width);
	hi = (long)ceil((double)n / 2 + 1 + half_width);
	if (lo < 1)
		lo = 1;
	if (hi > (long)n)
		hi = (long)n;
	s->ci_lo = sorted[lo - 1];
	s->ci_hi = sorted[hi - 1];
	free(sorted);
	return 0;
}

void stats_wilson(long successes, long trials, double *lo, double *hi)
{
	double n = (double)trials, p = (double)successes / n, z2 = Z95 * Z95;
	double centre = (p + z2 / (2 * n)) / (1 + z2 / n);
	double half = Z95 * sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n);

	*lo = fmax(0.0, centre - half);
	*hi = fmin(1.0, centre + half);
}

/* splitmix64: the bootstrap's resampling, reproducible from its seed. */
static uint64_t next_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Median of n values drawn with replacement from x into scratch (n values). */
static double resampled_median(const double *x, size_t n, double *scratch, uint64_t *state)
{
	for (size_t i = 0; i < n; i++)
		scratch[i] = x[(size_t)(((unsigned __int128)next_random(state) * n) >> 64)];
	qsort(scratch, n, sizeof(*scratch), compare_doubles);
	return stats_quantile_sorted(scratch, n, 0.5);
}

static double median_of(const double *x, size_t n, double *scratch)
{
	memcpy(scratch, x, n * sizeof(*scratch));
	qsort(scratch, n, sizeof(*scratch), compare_doubles);
	return stats_quantile_sorted(scratch, n, 0.5);
}

int stats_median_ratio(const double *a, size_t na, const double *b, size_t nb, int iters,
		       uint64_t seed, struct ratio_interval *r)
{
	double *ratios, *scratch;
	uint64_t state = seed;

	if (!na || !nb || iters < 100)
		return -EINVAL;
	ratios = malloc(sizeof(*ratios) * (size_t)iters);
	scratch = malloc(sizeof(*scratch) * (na > nb ? na : nb));
	if (!ratios || !scratch) {
		free(ratios);
		free(scratch);
		return -ENOMEM;
	}
	r->ratio = median_of(b, nb, scratch) / median_of(a, na, scratch);
	for (int i = 0; i < iters; i++) {
		double ma = resampled_median(a, na, scratch, &state);

		ratios[i] = resampled_median(b, nb, scratch, &state) / ma;
	}
	qsort(ratios, (size_t)iters, sizeof(*ratios), compare_doubles);
	r->lo = stats_quantile_sorted(ratios, (size_t)iters, 0.025);
	r->hi = stats_quantile_sorted(ratios, (size_t)iters, 0.975);
	free(ratios);
	free(scratch);
	return 0;
}
