/*
 * leaderboard.h - leaderboards of a run in CAB's style (SPEC section 7, `report`).
 *
 * Per pattern, each variant's metrics enter as averages over the task's cells that every
 * variant with that task completed (status ok) on the pattern, so that all are compared
 * on the same cells:
 *   fidelity   rel_err (lower is better), cosine (higher)
 *   passkey    accuracy (higher)
 *   recall     accuracy (higher)
 *   speed      log10 of the median latency (lower), log10 of peak_bytes (lower; 0 counts
 *              as 1 byte): geometric means, since costs spread by factors
 *   causality  share of cells that pass (status ok rather than failed; higher)
 * `decode` does not enter. Each metric is z-normalised across the variants that have it,
 * (x - mean) / sd with the population sd, and signed so that higher is better; a metric on
 * which every variant is equal (sd 0) or that only one variant has gives 0 to all. A task's
 * score is the mean of its metrics' z; the compositional index (CI) is the mean over the
 * tasks the variant has (a task it lacks does not count against it), and delta is its CI
 * minus the baseline's. Rows are sorted by CI, then by name; equal CIs share a rank.
 */
#ifndef ATTNBENCH_LEADERBOARD_H
#define ATTNBENCH_LEADERBOARD_H

#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

enum report_task {
	REPORT_FIDELITY, REPORT_PASSKEY, REPORT_RECALL, REPORT_SPEED, REPORT_CAUSALITY,
	REPORT_TASKS
};

enum report_metric {
	REPORT_REL_ERR, REPORT_COSINE, REPORT_PASSKEY_ACC, REPORT_RECALL_ACC,
	REPORT_LOG_LATENCY, REPORT_LOG_MEMORY, REPORT_CAUSAL_PASS, REPORT_METRICS
};

/* The task a metric belongs to, and its sign (+1 higher is better, -1 lower). */
enum report_task report_metric_task(enum report_metric m);
int report_metric_sign(enum report_metric m);
/* The task's name as stored ("fidelity", ...). */
const char *report_task_name(enum report_task t);

struct report_row {
	char variant[64];
	double raw[REPORT_METRICS];	/* averages entering the z-scores; NAN: missing */
	double z[REPORT_METRICS];	/* signed z-scores; NAN: missing */
	double task[REPORT_TASKS];	/* task scores; NAN: the variant lacks the task */
	double ci;			/* compositional index; NAN: no task at all */
	double delta;			/* ci minus the baseline's; NAN without one */
	int rank;			/* 1-based; equal CIs share a rank */
	/* crashed, timeout, oom, nan, corrupt or failed, causality aside */
	int failed_cells;
	int causal_pass, causal_total;	/* causality cells passed, run */
	int unstable_cells;		/* speed cells whose rounds disagreed (rounds.h) */
};

struct leaderboard {
	char pattern[8];
	struct report_row *rows;	/* sorted by CI, best first */
	int count;
	int common_cells[REPORT_TASKS];	/* cells every variant with the task completed */
	bool has_baseline;		/* the baseline has a CI on this pattern */
};

/*
 * Builds the leaderboard of a run on one pattern against baseline. Returns 0 (count may be
 * 0 when the pattern has no cells), -EIO on SQLite trouble, -ENOMEM.
 */
int report_leaderboard(sqlite3 *db, int64_t run_id, const char *pattern,
		       const char *baseline, struct leaderboard *lb);
void report_leaderboard_release(struct leaderboard *lb);

#endif
