/*
 * compare.h - a variant against a baseline, or a run against an earlier run (SPEC
 * section 7, `compare`): pairs of stored cells that measured the same problem, the
 * statistics that tell a change from noise, and the verdicts.
 *
 * Latency: the ratio median(variant) / median(baseline) of the stored samples, with a
 * 95% percentile bootstrap interval (stats_median_ratio()). "faster" when the whole
 * interval lies below 1 - threshold, "slower" when it lies above 1 + threshold,
 * otherwise "no significant change": a change must be both real (outside the interval)
 * and large enough to matter (beyond the noise threshold). And the fastest calls must
 * agree: the ratio of the two minima must lie beyond the threshold on the same side.
 * Other work on the machine only ever adds time, and rarely to every call of a cell, so
 * a change that does not show in the fastest calls is interference, not the code; the
 * A/A test (compare --aa) showed the median alone calling such cells (see README).
 *
 * Accuracy: a Wilson 95% interval per side. Where both cells saw the same inputs (the
 * same seed and number of trials, with per-trial outcomes stored), the difference is
 * tested trial by trial with the exact McNemar test (a two-sided binomial test of the
 * discordant pairs); otherwise with Fisher's exact test on the two proportions. "better"
 * or "worse" when p < 0.05 and the difference is at least the accuracy threshold.
 */
#ifndef ATTNBENCH_COMPARE_H
#define ATTNBENCH_COMPARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stats.h"
#include "store.h"

/*
 * The default noise threshold of latency: a relative change smaller than this is no
 * change. 5%, not 2%: two cells of the same code differ by more than their samples show
 * (each process has its own memory layout and meets other load), and on the 2-core
 * development machine A/A tests (README, "Compare") had the median at 2% call 25% of 80
 * cells faster or slower, the rule above at 2% 16%, at 5% none.
 */
#define COMPARE_THRESHOLD 0.05
/*
 * The default smallest accuracy difference that counts (2 points). Accuracy has no
 * machine noise: the same inputs give the same answers; sampling noise is the test's.
 */
#define COMPARE_ACCURACY_THRESHOLD 0.02
/* Significance level of the accuracy tests (and 1 - coverage of the latency interval). */
#define COMPARE_ALPHA 0.05
/* Bootstrap resamples: enough that the 2.5% and 97.5% quantiles move by well under 1%. */
#define COMPARE_BOOTSTRAP_ITERS 2000
/* Fewer samples than this on a side: the bootstrap cannot tell, no change is called. */
#define COMPARE_MIN_SAMPLES 3
/* The bootstrap's seed: the same samples always give the same interval and verdict. */
#define COMPARE_SEED 0x636f6d70617265ull

enum compare_verdict {
	COMPARE_NONE,		/* nothing to judge on this side (no samples, no accuracy) */
	COMPARE_SAME,		/* no significant change */
	COMPARE_FASTER,
	COMPARE_SLOWER,
	COMPARE_BETTER,
	COMPARE_WORSE,
};

/* "faster", "no significant change", ...; "-" for COMPARE_NONE. */
const char *compare_verdict_name(enum compare_verdict v);

struct latency_comparison {
	struct ratio_interval ratio;	/* median(variant) / median(baseline), 95% interval */
	double min_ratio;		/* min(variant) / min(baseline): the fastest calls */
	enum compare_verdict verdict;
};

/* The latency verdict of a ratio interval and the ratio of minima (see the top). */
enum compare_verdict compare_latency_verdict(const struct ratio_interval *r,
					     double min_ratio, double threshold);

/*
 * Compares latency samples (seconds) of a variant with a baseline's (no significant
 * change with fewer than COMPARE_MIN_SAMPLES on a side). Returns 0, -EINVAL for an
 * empty side, -ENOMEM.
 */
int compare_latency(const double *base, size_t n_base, const double *var, size_t n_var,
		    double threshold, struct latency_comparison *out);

struct accuracy_comparison {
	long base_right, base_trials, right, trials;
	double base_lo, base_hi;	/* Wilson 95% interval of the baseline's accuracy */
	double lo, hi;			/* and of the variant's */
	double delta;			/* variant's accuracy minus the baseline's */
	bool paired;			/* tested trial by trial (McNemar), else Fisher */
	long lost, gained;		/* paired: right only for the baseline / the variant */
	double p;			/* two-sided p-value of the difference */
	enum compare_verdict verdict;
};

/* Exact two-sided McNemar p-value: binomial(lost + gained, 1/2) on the discordant pairs. */
double compare_mcnemar_p(long lost, long gained);
/* Fisher's exact two-sided p-value for a right of b trials against c right of d trials. */
double compare_fisher_p(long a, long b, long c, long d);

/*
 * Paired comparison of per-trial outcomes (1 right, 0 wrong) where trial i of both is
 * the same question; trials >= 1.
 */
void compare_accuracy_paired(const unsigned char *base, const unsigned char *var,
			     size_t trials, double threshold, struct accuracy_comparison *out);
/* Unpaired comparison of two proportions; both trial counts >= 1. */
void compare_accuracy_unpaired(long base_right, long base_trials, long right, long trials,
			       double threshold, struct accuracy_comparison *out);

/* One stored cell of a pair. */
struct compare_cell {
	int64_t id, run_id, seed;
	char variant[64];
	char status[16];		/* as stored: ok, failed, crashed, ... */
	double accuracy, trials;	/* NAN when the task has none */
	double latency_median;		/* seconds; NAN when none */
	double peak_bytes, rss_bytes;	/* NAN when unknown */
	long n_samples, n_outcomes;	/* stored latency samples and trial outcomes */
	bool unstable;			/* its measurement rounds disagreed (rounds.h) */
};

/* A pair of cells that measured the same problem, and what compare makes of it. */
struct compare_row {
	char task[32], pattern[8], regime[32];	/* regime "" when the task has none */
	int n, m, d, heads, kv_heads, batch;
	int variant_index;		/* the variant's place in the request (for sorting) */
	struct compare_cell base, var;
	bool has_latency, has_accuracy;	/* both cells are ok and have samples / accuracy */
	struct latency_comparison latency;
	struct accuracy_comparison accuracy;
	double peak_ratio, rss_ratio;	/* variant over baseline; NAN when unknown */
	bool regression;		/* slower, worse, or broke where the baseline ran */
	bool unstable;			/* has latency, and a cell of it is unstable: its
					   latency verdict may be the machine's load */
};

struct compare_request {
	int64_t run_id;			/* the variants' cells */
	int64_t base_run_id;		/* the baseline's cells (== run_id for a baseline) */
	const char *baseline;		/* baseline variant; NULL: each variant against
					   itself in base_run_id */
	const char *const *variants;	/* NULL or n_variants == 0: every variant of the
					   run (of both runs without a baseline) but it */
	int n_variants;
	const char *const *tasks;	/* NULL or n_tasks == 0: every task */
	int n_tasks;
	unsigned int patterns;		/* PATTERN_BIT()s; 0: every pattern */
	double threshold;		/* latency noise threshold (relative) */
	double accuracy_threshold;	/* smallest accuracy difference that counts */
};

/*
 * Finds every pair of cells (same task, pattern, regime and shape) between the request's
 * variants and their baseline, on tasks with latency samples or an accuracy, and compares
 * them. rows (malloc()ed, sorted by task, pattern, regime, shape, then variant) must be
 * freed with free(). Returns 0; -ENOENT when a run does not exist; -EINVAL when a
 * variant or the baseline has no cells in its run; -ENODATA when no pair is left; -EIO,
 * -ENOMEM. why gets a one-line reason.
 */
int compare_gather(struct store *s, const struct compare_request *q,
		   struct compare_row **rows, size_t *count, char *why, size_t why_len);

/*
 * For a comparison of two runs (no baseline): the cells of base_run_id, among the
 * request's variants, tasks and patterns, that have no cell with the same task, pattern,
 * regime and shape in run_id, so a comparison cannot see them. *missing gets their
 * number, first (when not NULL) a description of the first ("speed flash cs n=4096 ...").
 * Returns 0, -EIO.
 */
int compare_missing_cells(struct store *s, const struct compare_request *q, long *missing,
			  char *first, size_t first_len);

/*
 * The smallest noise threshold at which at most `share` of the rows with latency would
 * be called faster or slower: for an A/A comparison, the threshold this machine needs
 * for that false-positive rate. 0 when no row has latency.
 */
double compare_threshold_needed(const struct compare_row *rows, size_t count, double share);

/* The load average a run started with; 0, -ENOENT (no such run or not recorded), -EIO. */
int compare_run_load(struct store *s, int64_t run, double *load);

/*
 * Whether two runs come from the same machine and build: cpu_model, cores, threads,
 * blas_config, compiler and cflags must be equal. Returns 0 when they are; 1 when not,
 * with why naming the first field that differs and both values; -ENOENT when a run does
 * not exist; -EIO.
 */
int compare_provenance(struct store *s, int64_t run_a, int64_t run_b, char *why,
		       size_t why_len);

#endif
