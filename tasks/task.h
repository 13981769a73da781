/*
 * task.h - the interface of a benchmark task, and the cell it runs.
 *
 * A cell is one unit of work: one variant on one task at one shape, pattern, input
 * regime and parameter setting. The harness runs each cell in a child process and
 * stores what the task reported into the cell's result.
 *
 * How to add a task:
 *   1. write tasks/<name>.c with one `const struct task_ops <name>_task` whose run()
 *      generates its inputs from the cell's seed, calls the variant and reports metrics
 *      with result_metric() (latency samples with result_sample(), and the outcome of
 *      each trial of an accuracy task, in order, with result_trial());
 *   2. add `&<name>_task` to tasks/registry.c and the file to tasks/meson.build;
 *   3. give it rows in the built-in suites (harness/run/suite.c).
 */
#ifndef ATTNBENCH_TASK_H
#define ATTNBENCH_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stats.h"
#include "timing.h"
#include "variant.h"

/*
 * Tensors a user supplied (run --inputs), in the shape of the cells that use them:
 * Q [batch][heads][n][d], K and V [batch][kv_heads][m][d], float32.
 */
struct tensor_set {
	const char *name;
	const float *q, *k, *v;
	int batch, heads, kv_heads, n, m, d;
};

struct cell {
	const struct variant_ops *variant;
	const struct task_ops *task;
	enum attn_pattern pattern;
	int batch, heads, kv_heads, n, m, d;
	double params[VARIANT_MAX_PARAMS];	/* the variant's params, in declared order */
	const char *regime;	/* input regime, NULL when the task has none */
	const struct tensor_set *inputs;	/* fidelity on these (regime "npy:NAME"), or NULL */
	uint64_t seed;
	int threads;
	struct measure_opts measure;
	const char *cache_dir;	/* the run's reference cache (reference-cache.h), or NULL */
};

/* The attention problem of a cell; its params point into c. */
struct attn_problem cell_problem(const struct cell *c);

/* What became of a cell (stored as text, see cell_status_name()). */
enum cell_status {
	CELL_OK,
	CELL_FAILED,		/* ran, but a check failed (e.g. causality) */
	CELL_CRASHED,
	CELL_TIMEOUT,
	CELL_OOM,
	CELL_UNSUPPORTED,
	CELL_NAN,		/* the variant produced NaN or infinity */
	CELL_CORRUPT,		/* the variant wrote outside the buffers it was given */
	CELL_STATUS_COUNT,
};

const char *cell_status_name(enum cell_status s);

#define RESULT_MAX_METRICS 32

struct metric {
	char name[32];
	double value;
	char unit[16];
};

struct cell_result {
	enum cell_status status;
	char reason[256];
	struct metric metrics[RESULT_MAX_METRICS];
	int n_metrics;
	double *samples;	/* latency samples in seconds, from malloc() */
	size_t n_samples, cap_samples;
	unsigned char *trials;	/* per-trial outcomes (1 right, 0 wrong) in scoring order */
	size_t n_trials, cap_trials;
};

/* Records a metric (replaces one of the same name); 0 or -ENOSPC. */
int result_metric(struct cell_result *r, const char *name, double value, const char *unit);
/* Appends a latency sample in seconds; 0 or -ENOMEM. */
int result_sample(struct cell_result *r, double seconds);
/*
 * Appends the outcome of the next trial of an accuracy task (trial i is the i-th scored;
 * inputs depend only on the seed and the shape, so trial i is the same question for
 * every variant, which lets compare pair them). 0 or -ENOMEM.
 */
int result_trial(struct cell_result *r, bool correct);
/*
 * Summarises the latency samples into s and records latency_median, latency_ci_lo,
 * latency_ci_hi, latency_q1, latency_q3 and latency_min (seconds), and latency_ci_level,
 * the exact coverage of [latency_ci_lo, latency_ci_hi] (a fraction: at least 0.95 from 6
 * samples on, less below; see stats_summarise()). 0, -EINVAL without samples, -ENOMEM.
 */
int result_latency(struct cell_result *r, struct sample_summary *s);
/* Sets the status and a printf-style reason. */
void result_status(struct cell_result *r, enum cell_status s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * Checks that every value of an output o of p is finite: o is [batch][heads][rows][d],
 * its rows are positions first_row.. (0 and p->n for a forward output; t and 1 for the
 * output of decode step t). True when all are; otherwise sets r's status to CELL_NAN with
 * a reason naming the first bad value, after `what`, e.g. "output row 5, column 3
 * (batch 0, head 1) is nan", and returns false. Every output a task gets goes through it.
 */
bool result_check_finite(struct cell_result *r, const char *what,
			 const struct attn_problem *p, const float *o, int first_row, int rows);
/* Frees the samples and trial outcomes; the result may be reused after. */
void result_release(struct cell_result *r);

struct task_ops {
	const char *name;	/* CLI and database key */
	const char *summary;	/* one line for `list tasks` */
	unsigned int patterns;	/* PATTERN_BIT()s the task is defined for */
	const char *const *regimes;	/* NULL-terminated input regimes, or NULL */
	const char *regime_kind;	/* what a regime is, for `list tasks` */

	/*
	 * Required: runs the cell and fills r (status CELL_OK unless a check failed).
	 * Runs in a child process with the cell's thread count already set.
	 * Returns 0; -ENOTSUP when the variant refuses the problem; -ENOMEM.
	 */
	int (*run)(const struct cell *c, struct cell_result *r);

	/*
	 * Set by a timed task: (re)computes from r's latency samples every metric derived
	 * from them (the median and its interval, rates). run() ends with it, and the harness
	 * calls it on the samples of several visits pooled together: a timed cell is measured
	 * in interleaved rounds, each a fresh child with a share of the cell's repeats and
	 * time (SPEC section 5). 0, or -EINVAL without samples.
	 */
	int (*summarise)(const struct cell *c, struct cell_result *r);

	/*
	 * Optional: the seconds the cell's passes take, estimated from `forward`, the seconds
	 * of one forward pass of its variant at its shape, when measured in `visits` visits
	 * (rounds; 1 for an untimed task), sharing the repeats and time as summarise() says.
	 * Only ratios between cells matter (run --shard balances by them). Without it: one
	 * forward pass per visit.
	 */
	double (*cost)(const struct cell *c, double forward, int visits);
};

/* The registry (tasks/registry.c). */
int task_count(void);
const struct task_ops *task_at(int i);
const struct task_ops *task_find(const char *name);
/* Index of a regime in t->regimes, or -1. */
int task_regime_index(const struct task_ops *t, const char *regime);

#endif
