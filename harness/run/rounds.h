/*
 * rounds.h - interleaved measurement rounds of the timed cells (SPEC section 5).
 *
 * A run measures each timed cell (a task with summarise(), e.g. speed and decode) in
 * several rounds. Each round visits every timed cell once, in its own random order,
 * each visit a fresh child with the round's share of the cell's repeats and time; the
 * samples of all visits are pooled into the cell's distribution, each keeping its round.
 * A load burst then lands on a few visits of many cells instead of every visit of a few,
 * and the pooled median, which needs half the samples to move, stays where the quiet
 * rounds put it.
 *
 * Per cell, after each round:
 *   round medians   the median of each round's samples;
 *   spread          the largest round median over the smallest (latency_round_spread);
 *   majority spread the narrowest largest-over-smallest ratio of any majority of the
 *                   rounds (floor(R / 2) + 1 of R; latency_majority_spread).
 * One disturbed round is outvoted: the other rounds agree, and the pooled median lies
 * among their samples. A cell whose majority spread exceeds ROUNDS_SPREAD_LIMIT after the
 * planned rounds (no majority agrees) is measured again, in extra rounds (at most
 * ROUNDS_MAX_EXTRA, again in random order), until a majority agrees; if none does, it is
 * marked unstable (metric unstable = 1): no median it could report is the machine's.
 * (Extra rounds for every cell whose plain spread exceeds the limit cost a third more time
 * on a quiet 2-core VM, where half the cells' rounds differ by more than 1.25x, and moved
 * the medians no closer to a quiet run's: README, Rounds.)
 */
#ifndef ATTNBENCH_ROUNDS_H
#define ATTNBENCH_ROUNDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runner.h"
#include "task.h"

/* Rounds of a run unless --rounds says otherwise. */
#define ROUNDS_DEFAULT 3
/* Planned rounds at most (--rounds). */
#define ROUNDS_MAX_PLANNED 20
/* Extra rounds a high-spread cell gets at most. */
#define ROUNDS_MAX_EXTRA 2
/* The agreement asked of a majority of a cell's rounds (largest over smallest median):
 * above the 1.21x two quiet processes were seen to differ by, below a loaded round's 1.5x. */
#define ROUNDS_SPREAD_LIMIT 1.25

/* Whether a cell is measured in rounds: its task is timed. */
bool rounds_timed(const struct cell *c);

/*
 * The order of round `round` (from 1) over n cells: a permutation of 0..n-1 drawn by
 * Fisher-Yates from splitmix64 seeded with the run's seed and the round, so a run's
 * orders are reproducible from its stored seed.
 */
void rounds_order(uint64_t seed, int round, size_t *order, size_t n);

/*
 * One visit's share of a cell's measurement over `rounds` rounds: the warm-up as it is
 * (each visit is a fresh process), the repeats and the time divided (rounded up).
 */
struct measure_opts rounds_share(const struct measure_opts *m, int rounds);

/* One timed cell of one run, over its rounds. */
struct round_pool {
	int64_t cell_id;		/* in the store; 0 until first stored */
	struct cell_result pooled;	/* the last visit's metrics, every visit's samples */
	int *sample_rounds;		/* the round of each pooled sample */
	size_t cap_rounds;
	double medians[ROUNDS_MAX_PLANNED + ROUNDS_MAX_EXTRA];	/* per round with samples */
	int n_rounds;
	int visits;
	bool closed;			/* a visit did not end ok (or no room): no more visits */
	double wall_seconds;		/* of all visits */
	long long rss_bytes;		/* the largest of the visits', -1 when none known */
};

/*
 * Adds visit (of round `round`, with out what the parent saw of it) to the pool: its
 * samples join the pooled ones, its other metrics replace theirs, and c's task summarises
 * the pooled samples; then rounds, latency_round_spread, latency_majority_spread and
 * unstable are recorded. The visit's status becomes the cell's; one that is not ok
 * closes the pool (its reason names the round unless it was the first visit), the
 * samples so far stay. The pool starts zeroed. 0 or -ENOMEM.
 */
int round_pool_add(struct round_pool *pool, const struct cell *c, int round,
		   const struct cell_result *visit, const struct runner_outcome *out);

/* Whether the pool is open and no majority of its rounds agrees: measure it again. */
bool round_pool_wants_more(const struct round_pool *pool);

/* Frees the pooled result; the pool may be reused after (zeroed). */
void round_pool_release(struct round_pool *pool);

/* The largest of x[0..n) over the smallest (n >= 1; positive values). */
double rounds_spread(const double *x, int n);
/* The narrowest largest-over-smallest ratio of any floor(n / 2) + 1 of x[0..n). */
double rounds_majority_spread(const double *x, int n);

#endif
