/*
 * stats.c - medians with distribution-free confidence intervals, quartiles, Wilson
 * intervals for proportions, and the one bootstrap of medians every interval uses.
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

void stats_sort(double *x, size_t n)
{
	qsort(x, n, sizeof(*x), compare_doubles);
}

double stats_median(const double *x, size_t n, double *scratch)
{
	memcpy(scratch, x, n * sizeof(*scratch));
	stats_sort(scratch, n);
	return stats_quantile_sorted(scratch, n, 0.5);
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

/*
 * Coverage wanted of the interval of the median. Its ranks are chosen from the exact
 * Binomial(n, 1/2) tail, not a normal approximation, so a run of 20 gets 95.9% and
 * not 99%, and a run of 3 says it reached 75%.
 */
#define MEDIAN_CI_LEVEL 0.95

/*
 * The distribution-free interval of the median of n samples. With B the number of
 * samples below the population median, B ~ Binomial(n, 1/2) for a continuous
 * distribution, and x_(l) <= median <= x_(u) (1-based ranks) exactly when l <= B <= u - 1.
 * For the symmetric pair u = n + 1 - l the coverage is therefore
 *
 *	sum_{k=l}^{n-l} C(n, k) / 2^n = 1 - 2 * P(B <= l - 1),
 *
 * since P(B >= n + 1 - l) = P(B <= l - 1). It falls as l grows; the narrowest pair that
 * still covers 95% is the largest l <= (n + 1) / 2 with 2 * P(B <= l - 1) <= 0.05. When
 * even l = 1, [min, max], covers less (1 - 2 / 2^n: n <= 5), l is 1 all the same.
 * Returns l and stores the coverage of [x_(l), x_(n+1-l)] in *level. P(B = 0) = 2^-n is
 * exact (so are the levels of [min, max], up to 8 samples); the other terms C(n, k) / 2^n
 * come from lgamma in log space, so a sample of thousands neither overflows C(n, k) nor
 * loses the tail (a term below the smallest double is 0, far below 0.025).
 */
static size_t median_ci_rank(size_t n, double *level)
{
	double log_n_fact = lgamma((double)n + 1), log_half_n = (double)n * log(0.5);
	double tail = n < 2000 ? ldexp(1.0, -(int)n) : 0;	/* P(B <= 0) = 2^-n, exact */
	size_t l = 1;

	while (l + 1 <= (n + 1) / 2) {
		/* P(B = l), to make the tail P(B <= l) of the next pair */
		double term = exp(log_n_fact - lgamma((double)l + 1) -
				  lgamma((double)(n - l) + 1) + log_half_n);

		if (2 * (tail + term) > 1 - MEDIAN_CI_LEVEL)
			break;
		tail += term;
		l++;
	}
	*level = 1 - 2 * tail;
	return l;
}

int stats_summarise(const double *x, size_t n, struct sample_summary *s)
{
	double *sorted, sum = 0;
	size_t l;

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

	l = median_ci_rank(n, &s->ci_level);
	s->ci_lo = sorted[l - 1];
	s->ci_hi = sorted[n - l];
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

struct ranked {
	double value;
	size_t index;
};

static int compare_ranked(const void *a, const void *b)
{
	return compare_doubles(&((const struct ranked *)a)->value,
			       &((const struct ranked *)b)->value);
}

int stats_resampler_init(struct stats_resampler *r, const double *x, size_t n)
{
	struct ranked *tmp = malloc(n * sizeof(*tmp));

	r->sorted = malloc(n * sizeof(*r->sorted));
	r->rank = malloc(n * sizeof(*r->rank));
	r->count = malloc(n * sizeof(*r->count));
	r->n = n;
	if (!tmp || !r->sorted || !r->rank || !r->count) {
		free(tmp);
		stats_resampler_release(r);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		tmp[i].value = x[i];
		tmp[i].index = i;
	}
	qsort(tmp, n, sizeof(*tmp), compare_ranked);
	for (size_t i = 0; i < n; i++) {
		r->sorted[i] = tmp[i].value;
		r->rank[tmp[i].index] = i;
	}
	free(tmp);
	return 0;
}

void stats_resampler_release(struct stats_resampler *r)
{
	free(r->sorted);
	free(r->rank);
	free(r->count);
	r->sorted = NULL;
	r->rank = r->count = NULL;
}

/* The value of order statistic k (0-based) of the resample counted in r. */
static double order_statistic(const struct stats_resampler *r, size_t k, size_t *from,
			      size_t *seen)
{
	while (*seen + r->count[*from] <= k)
		*seen += r->count[(*from)++];
	return r->sorted[*from];
}

double stats_resampled_median(struct stats_resampler *r, uint64_t *state)
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
	struct stats_resampler ra, rb;
	uint64_t state = seed;
	double *ratios;
	int ret = -ENOMEM;

	if (!na || !nb || iters < 100)
		return -EINVAL;
	ratios = malloc(sizeof(*ratios) * (size_t)iters);
	if (!ratios)
		return -ENOMEM;
	if (stats_resampler_init(&ra, a, na))
		goto out_free;
	if (stats_resampler_init(&rb, b, nb))
		goto out_release_a;
	r->ratio = stats_quantile_sorted(rb.sorted, nb, 0.5) /
		   stats_quantile_sorted(ra.sorted, na, 0.5);
	for (int i = 0; i < iters; i++) {
		double ma = stats_resampled_median(&ra, &state);

		ratios[i] = stats_resampled_median(&rb, &state) / ma;
	}
	stats_sort(ratios, (size_t)iters);
	r->lo = stats_quantile_sorted(ratios, (size_t)iters, 0.025);
	r->hi = stats_quantile_sorted(ratios, (size_t)iters, 0.975);
	ret = 0;
	stats_resampler_release(&rb);
out_release_a:
	stats_resampler_release(&ra);
out_free:
	free(ratios);
	return ret;
}
