/*
 * shard.h - a suite's identity, and the slice of its cells one shard runs (run --shard K/N).
 *
 * The cells of a plan are cut into N shards balanced by estimated cost (seconds, from each
 * cell's FLOPs and its task's cost model), not by count. The unit of assignment is a cell,
 * except that the timed cells of one shape (every variant's speed cell at one task,
 * pattern, length, d, heads, batch and regime) go together, so that the latency ratios
 * between them are drawn on one machine in one run's interleaved rounds — unless together
 * they cost more than a shard's share; then they are cut into consecutive pieces that fit.
 * Units are handed out longest first, each to the shard with the least estimated cost so
 * far (ties to the lower shard), so the slices depend only on the plan, and every cell is
 * in exactly one shard.
 *
 * Every run stores its suite identity, the SHA-256 of its whole plan (each cell's key,
 * the seed and rounds, each plugin's hash), whether sharded or not: the shards of one
 * suite share it with each other and with an unsharded run of the same command, which is
 * how merge tells they belong together.
 */
#ifndef ATTNBENCH_SHARD_H
#define ATTNBENCH_SHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "task.h"

/* The most shards of one suite. */
#define SHARD_MAX 4096

/* Shard k (1..n) of n; n = 0 means the whole suite. */
struct shard {
	int k, n;
};

/* Parses "K/N" (1 <= K <= N <= SHARD_MAX); 0, or -EINVAL with a reason in why. */
int shard_parse(const char *text, struct shard *s, char *why, size_t why_len);

/*
 * The estimated seconds of a cell measured in `rounds` rounds (when its task is timed),
 * on a nominal machine: only ratios between cells matter.
 */
double shard_cell_cost(const struct cell *c, int rounds);

/*
 * Keeps in cells[0..*count) the cells of shard s, in plan order. cost, when not NULL,
 * gets the estimated seconds of every shard (s.n entries) and *total of the whole plan.
 * 0, or -ENOMEM.
 */
int shard_select(struct cell *cells, size_t *count, struct shard s, int rounds,
		 double *cost);

/*
 * The suite identity of the plan cells[0..count) run with seed and rounds, the plugins'
 * hashes included: lowercase hex SHA-256. 0, or -ENOMEM.
 */
int shard_suite_id(const struct cell *cells, size_t count, uint64_t seed, int rounds,
		   char id[SHA256_HEX_LEN]);

#endif
