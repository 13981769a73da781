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

/*
 * A sample prepared for resampling: its values sorted, and for each original index the
 * rank of its value, so that a resample with replacement is a count per rank and its
 * order statistics a running sum: O(n) per resample instead of a sort. The resampled
 * median is the same number as sorting the drawn values would give.
 */
struct resampler {
	const double *sorted;
	size_t *rank;
	size_t *count;
	size_t n;
};

struct ranked {
	double value;
	size_t index;
};

static int compare_ranked(const void *a, const void *b)
{
	return compare_doubles(&((const struct ranked *)a)->value,
			       &((const struct ranked *)b)->value);
}

/* Fills r for x[0..n); sorted (n values) is the caller's. 0 or -ENOMEM. */
static int resampler_init(struct resampler *r, const double *x, size_t n, double *sorted)
{
	struct ranked *tmp = malloc(n * sizeof(*tmp));

	r->rank = malloc(n * sizeof(*r->rank));
	r->count = malloc(n * sizeof(*r->count));
	if (!tmp || !r->rank || !r->count) {
		free(tmp);
		free(r->rank);
		free(r->count);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		tmp[i].value = x[i];
		tmp[i].index = i;
	}
	qsort(tmp, n, sizeof(*tmp), compare_ranked);
	for (size_t i = 0; i < n; i++) {
		sorted[i] = tmp[i].value;
		r->rank[tmp[i].index] = i;
	}
	free(tmp);
	r->sorted = sorted;
	r->n = n;
	return 0;
}

static void resampler_release(struct resampler *r)
{
	free(r->rank);
	free(r->count);
}

/* The value of order statistic k (0-based) of the resample counted in r. */
static double order_statistic(const struct resampler *r, size_t k, size_t *from, size_t *seen)
{
	while (*seen + r->count[*from] <= k)
		*seen += r->count[(*from)++];
	return r->sorted[*from];
}

/* Median (numpy's linear interpolation) of n values drawn with replacement. */
static double resampled_median(struct resampler *r, uint64_t *state)
{
	size_t n = r->n, from = 0, seen = 0, k;
	double pos = 0.5 * (double)(n - 1), lo, frac;

	memset(r->count, 0, n * sizeof(*r->count));
	for (size_t i = 0; i < n; i++)
		r->count[r->rank[(size_t)(((unsigned __int128)next_random(state) * n) >> 64)]]++;
	k = (size_t)floor(pos);
	frac = pos - (double)k;
	lo = order_statistic(r, k, &from, &seen);
	if (k + 1 >= n)
		return lo;
	return lo + frac * (order_statistic(r, k + 1, &from, &seen) - lo);
}

int stats_median_ratio(const double *a, size_t na, const double *b, size_t nb, int iters,
		       uint64_t seed, struct ratio_interval *r)
{
	double *ratios, *sorted_a, *sorted_b;
	struct resampler ra, rb;
	uint64_t state = seed;
	int ret = -ENOMEM;

	if (!na || !nb || iters < 100)
		return -EINVAL;
	ratios = malloc(sizeof(*ratios) * (size_t)iters);
	sorted_a = malloc(sizeof(*sorted_a) * na);
	sorted_b = malloc(sizeof(*sorted_b) * nb);
	if (!ratios || !sorted_a || !sorted_b)
		goto out_free;
	if (resampler_init(&ra, a, na, sorted_a))
		goto out_free;
	if (resampler_init(&rb, b, nb, sorted_b))
		goto out_release_a;
	r->ratio = stats_quantile_sorted(sorted_b, nb, 0.5) /
		   stats_quantile_sorted(sorted_a, na, 0.5);
	for (int i = 0; i < iters; i++) {
		double ma = resampled_median(&ra, &state);

		ratios[i] = resampled_median(&rb, &state) / ma;
	}
	qsort(ratios, (size_t)iters, sizeof(*ratios), compare_doubles);
	r->lo = stats_quantile_sorted(ratios, (size_t)iters, 0.025);
	r->hi = stats_quantile_sorted(ratios, (size_t)iters, 0.975);
	ret = 0;
	resampler_release(&rb);
out_release_a:
	resampler_release(&ra);
out_free:
	free(ratios);
	free(sorted_a);
	free(sorted_b);
	return ret;
}
