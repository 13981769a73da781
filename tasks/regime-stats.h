/*
 * regime-stats.h - what the exact attention of an input set looks like: the measured
 * properties that say whether a fidelity regime is what its name claims (SPEC section 4).
 */
#ifndef ATTNBENCH_REGIME_STATS_H
#define ATTNBENCH_REGIME_STATS_H

#include "variant.h"

/* Query rows sampled per (batch, head), evenly spaced; every row when n is at most this. */
#define REGIME_STATS_ROWS 64
/* Keys sampled, evenly spaced, for the effective rank; every key when m is at most this. */
#define REGIME_STATS_KEYS 256
/* Half-width of the neighbourhood of near16: keys within 16 positions of the query's. */
#define REGIME_STATS_NEAR 16

/*
 * Means over the sampled rows of every (batch, head) of the exact softmax weights
 * softmax(q k^T / sqrt(d)), over the keys a row may see (cs: keys 0..i).
 */
struct regime_stats {
	double entropy;		/* row entropy, nats (log M for uniform rows) */
	double near16;		/* share of a row within +-16 positions of the query's own:
				 * position i for ns and cs, i * m / n for nc and cc */
	double sink;		/* weight of key 0 */
	double top1;		/* a row's largest weight */
	double erank;		/* effective rank of the sampled rows' unmasked scores against
				 * the sampled keys: exp of the entropy of the singular values
				 * normalised to sum 1 (Roy and Vetterli 2007), mean over heads */
};

/*
 * Measures the exact attention of q and k (layout of struct attn_problem) in double, on
 * REGIME_STATS_ROWS rows per (batch, head). Returns 0 or -ENOMEM.
 */
int regime_stats_measure(const struct attn_problem *p, const float *q, const float *k,
			 struct regime_stats *s);

#endif
