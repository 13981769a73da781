/*
 * rounds.c - interleaved measurement rounds (rounds.h): orders, shares, pooling, spread.
 */
#include "rounds.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inputs.h"
#include "stats.h"

bool rounds_timed(const struct cell *c)
{
	return c->task->summarise != NULL;
}

void rounds_order(uint64_t seed, int round, size_t *order, size_t n)
{
	struct rng g;

	/* a stream of its own per round, apart from the inputs' streams of the same seed */
	rng_seed(&g, seed ^ (0x726f756e64ull + 0x9e3779b97f4a7c15ull * (uint64_t)round));
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)rng_below(&g, i), t = order[i - 1];

		order[i - 1] = order[j];
		order[j] = t;
	}
}

struct measure_opts rounds_share(const struct measure_opts *m, int rounds)
{
	struct measure_opts share = *m;

	share.min_repeats = (m->min_repeats + rounds - 1) / rounds;
	share.max_repeats = (m->max_repeats + rounds - 1) / rounds;
	share.min_seconds = m->min_seconds / rounds;
	return share;
}

double rounds_spread(const double *x, int n)
{
	double lo = x[0], hi = x[0];

	for (int i = 1; i < n; i++) {
		lo = fmin(lo, x[i]);
		hi = fmax(hi, x[i]);
	}
	return hi / lo;
}

double rounds_majority_spread(const double *x, int n)
{
	double sorted[ROUNDS_MAX_PLANNED + ROUNDS_MAX_EXTRA], best = INFINITY;
	int k = n / 2 + 1;

	memcpy(sorted, x, sizeof(*x) * (size_t)n);
	stats_sort(sorted, (size_t)n);
	/* the narrowest majority is a run of k neighbours in sorted order */
	for (int i = 0; i + k <= n; i++)
		best = fmin(best, sorted[i + k - 1] / sorted[i]);
	return best;
}

/* The value of metric `name` in r, or NAN. */
static double metric_value(const struct cell_result *r, const char *name)
{
	for (int i = 0; i < r->n_metrics; i++)
		if (!strcmp(r->metrics[i].name, name))
			return r->metrics[i].value;
	return NAN;
}

/* Appends the visit's samples, tagged with their round, to the pool. */
static int pool_samples(struct round_pool *pool, int round, const struct cell_result *visit)
{
	size_t need = pool->pooled.n_samples + visit->n_samples;

	if (need > pool->cap_rounds) {
		size_t cap = need * 2;
		int *grown = realloc(pool->sample_rounds, sizeof(*grown) * cap);

		if (!grown)
			return -ENOMEM;
		pool->sample_rounds = grown;
		pool->cap_rounds = cap;
	}
	for (size_t i = 0; i < visit->n_samples; i++) {
		pool->sample_rounds[pool->pooled.n_samples] = round;
		if (result_sample(&pool->pooled, visit->samples[i]))
			return -ENOMEM;
	}
	return 0;
}

/* The metrics of the pool's rounds: their count, spreads and the unstable mark. */
static void record_spread(struct round_pool *pool)
{
	struct cell_result *r = &pool->pooled;
	double majority;

	result_metric(r, "rounds", pool->n_rounds, "");
	if (pool->n_rounds < 2)
		return;	/* one round says nothing of how rounds differ */
	majority = rounds_majority_spread(pool->medians, pool->n_rounds);
	result_metric(r, "latency_round_spread", rounds_spread(pool->medians, pool->n_rounds),
		      "");
	result_metric(r, "latency_majority_spread", majority, "");
	result_metric(r, "unstable", majority > ROUNDS_SPREAD_LIMIT ? 1 : 0, "");
}

int round_pool_add(struct round_pool *pool, const struct cell *c, int round,
		   const struct cell_result *visit, const struct runner_outcome *out)
{
	struct cell_result *r = &pool->pooled;
	double kept_rss_at_start = metric_value(r, "rss_at_start_bytes"), scratch[64], *tmp;
	bool first = pool->visits++ == 0, larger = first || out->rss_bytes > pool->rss_bytes;

	pool->wall_seconds += out->wall_seconds;
	if (larger)
		pool->rss_bytes = out->rss_bytes;
	for (int i = 0; i < visit->n_metrics; i++)
		if (result_metric(r, visit->metrics[i].name, visit->metrics[i].value,
				  visit->metrics[i].unit))
			return -ENOMEM;
	/* the resident set at the start goes with the visit whose peak is kept */
	if (!larger && !isnan(kept_rss_at_start))
		result_metric(r, "rss_at_start_bytes", kept_rss_at_start, "B");

	/* a visit's samples are real timings even when a check failed after them */
	if (visit->n_samples) {
		if (pool_samples(pool, round, visit))
			return -ENOMEM;
		tmp = visit->n_samples <= 64 ? scratch : malloc(sizeof(*tmp) * visit->n_samples);
		if (!tmp)
			return -ENOMEM;
		pool->medians[pool->n_rounds++] = stats_median(visit->samples, visit->n_samples,
							       tmp);
		if (tmp != scratch)
			free(tmp);
		if (c->task->summarise(c, r))
			return -ENOMEM;	/* there are samples: only memory can fail */
	}
	r->status = visit->status;
	if (first || visit->status == CELL_OK)
		snprintf(r->reason, sizeof(r->reason), "%s", visit->reason);
	else
		snprintf(r->reason, sizeof(r->reason), "round %d: %.*s", round,
			 (int)sizeof(r->reason) - 16, visit->reason);
	pool->closed = visit->status != CELL_OK || !visit->n_samples ||
		       pool->n_rounds == ROUNDS_MAX_PLANNED + ROUNDS_MAX_EXTRA;
	record_spread(pool);
	return 0;
}

bool round_pool_wants_more(const struct round_pool *pool)
{
	return !pool->closed && pool->n_rounds >= 2 &&
	       rounds_majority_spread(pool->medians, pool->n_rounds) > ROUNDS_SPREAD_LIMIT;
}

void round_pool_release(struct round_pool *pool)
{
	result_release(&pool->pooled);
	free(pool->sample_rounds);
	memset(pool, 0, sizeof(*pool));
}
