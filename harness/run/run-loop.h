/*
 * run-loop.h - the one run loop: runs planned cells, each in a child process, into one
 * or more runs of the store, stores each finished cell at once, and stops between cells
 * on SIGINT or SIGTERM, keeping what finished. `run` feeds one run; `compare --aa` feeds
 * two, interleaved (A, A', A, A', ...), so slow drift of the machine hits both alike.
 *
 * A command uses it in this order:
 *   struct run_loop rl = { .store, .db, .cells, .count, .n_runs, .limits, .ops, .data };
 *   run_loop_begin()                   the runs, status 'running'
 *   run_loop_measure_peak()            optional: the SGEMM rate, stored with each run
 *   run_loop_measure_bandwidth()       optional: the triad bandwidth, stored likewise
 *   run_loop_use_reference_cache()     optional: one fp64 reference per input set
 *   run_loop_catch_signals()           SIGINT and SIGTERM only set a flag from here on
 *   run_loop_run()                     the cells; progress through rl.ops
 *   run_loop_finish(run_loop_status()) final status of each run; the cache goes
 *   run_loop_restore_signals()
 * The command chooses when to catch and restore the signals (what a signal does outside
 * that window is its own business). Nothing here prints: the command hears of each cell
 * through struct run_loop_ops and prints what it likes.
 */
#ifndef ATTNBENCH_RUN_LOOP_H
#define ATTNBENCH_RUN_LOOP_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runner.h"
#include "store.h"

/* Runs one loop feeds at most: one, or the two sides of an A/A test. */
#define RUN_LOOP_MAX_RUNS 2

/* Where the loop stands when it tells the command of a cell. */
struct run_loop_step {
	const struct cell *cell;
	int side;		/* the run the cell goes into: rl->runs[side] */
	int round;		/* a timed cell's round (from 1), 0 for an untimed cell */
	int rounds;		/* planned rounds of the timed cells */
	size_t index;		/* steps before this one (visits of cells x runs) */
	size_t total;		/* steps planned: grows when extra rounds are needed */
	double elapsed;		/* seconds from the loop's start to this cell's start */
};

/* What the command hears of the loop; data is the loop's data member. */
struct run_loop_ops {
	/* Optional: the cell of step is about to start. */
	void (*cell_start)(void *data, const struct run_loop_step *step);
	/*
	 * Optional: the cell of step finished with result r. stored is false when a signal
	 * came while it ran: the result is then dropped and the loop stops after this call.
	 */
	void (*cell_done)(void *data, const struct run_loop_step *step,
			  const struct cell_result *r, bool stored);
};

struct run_loop {
	/* Set by the command; the rest starts zeroed (a designated initialiser does it). */
	struct store *store;
	const char *db;			/* the database's name, for reasons */
	struct cell *cells;		/* run_loop_use_reference_cache() sets their cache_dir */
	size_t count;
	int n_runs;			/* 1 .. RUN_LOOP_MAX_RUNS: each cell runs once into each */
	int rounds;			/* rounds of the timed cells (rounds.h); 0 is 1 */
	uint64_t seed;			/* the run's seed: orders the rounds */
	struct runner_limits limits;	/* of each cell's child */
	/*
	 * Untimed cells run this many at a time (0 is 1, at most RUNNER_MAX_CHILDREN),
	 * each on its share of the cell's threads and of limits.bytes; timed cells alone.
	 */
	int jobs;
	const struct run_loop_ops *ops;	/* NULL: no news of the cells */
	void *data;

	/* Filled by the loop. */
	int64_t runs[RUN_LOOP_MAX_RUNS];	/* run ids, by run_loop_begin() */
	size_t done;			/* cells stored, over all runs */
	size_t by_status[CELL_STATUS_COUNT];	/* cells stored, by status */
	char cache[PATH_MAX];		/* the reference cache's directory, or "" */
	struct sigaction old_int, old_term;	/* the handlers run_loop_catch_signals() replaced */
};

/* Inserts rl->n_runs runs with status 'running' and provenance p into rl->runs; 0 or -EIO. */
int run_loop_begin(struct run_loop *rl, const struct provenance *p);

/*
 * Measures this machine's SGEMM rate with `threads` threads into *gflops and records it
 * with each run; 0, or -errno when it could not be measured (nothing recorded).
 */
int run_loop_measure_peak(struct run_loop *rl, int threads, double *gflops);

/*
 * Measures this machine's memory bandwidth (runner_triad_bandwidth()) with `threads`
 * threads into *gbps and records it with each run; 0, or -errno (nothing recorded).
 */
int run_loop_measure_bandwidth(struct run_loop *rl, int threads, double *gbps);

/*
 * Makes a reference cache for the run and points every cell at it, so that cells seeing
 * the same inputs compute the fp64 reference once; 0 or -errno (the cells then compute
 * their own). run_loop_finish() deletes it.
 */
int run_loop_use_reference_cache(struct run_loop *rl);

/*
 * From here until run_loop_restore_signals(), SIGINT and SIGTERM only mark the loop
 * interrupted: the cell running finishes, is dropped, and the loop stops. Clears the mark.
 */
void run_loop_catch_signals(struct run_loop *rl);
/* Puts back the handlers run_loop_catch_signals() found. */
void run_loop_restore_signals(struct run_loop *rl);
/* Whether SIGINT or SIGTERM came since run_loop_catch_signals(). */
bool run_loop_interrupted(void);

/*
 * Runs every cell into each run through the runner with rl->limits: the untimed cells
 * once each, in order (rl->jobs at a time, stored as each finishes, with the threads each
 * ran on), then the timed ones in rl->rounds interleaved rounds and any
 * extra rounds (rounds.h), stored after each visit. A crashed, failed or refused cell
 * is stored and counted in rl->by_status (timed cells by their final status), not an
 * error. Stops early, returning 0, when interrupted: a visit a signal cut is dropped,
 * what was stored before stays.
 * Returns 0, or -errno with a reason in why when no child could be started or a result
 * could not be stored (the cells stored so far stay).
 */
int run_loop_run(struct run_loop *rl, char *why, size_t len);

/*
 * Whether a stored cell broke: any status but ok and unsupported (failed, crashed,
 * timeout, oom, nan, corrupt). `run` exits 1 then.
 */
bool run_loop_cells_failed(const struct run_loop *rl);

/*
 * The final status of the runs: 'failed' after a loop error (loop_ret != 0), else
 * 'interrupted' when a signal came, else 'failed' when cells_failed (the command's
 * judgement of rl->by_status), else 'complete'.
 */
const char *run_loop_status(int loop_ret, bool cells_failed);

/* Deletes the reference cache and gives each run its final status; 0 or -EIO. */
int run_loop_finish(struct run_loop *rl, const char *status);

/*
 * The address-space limit of a cell when the user gives none: nine tenths of the RAM,
 * or 0 (no limit) when the RAM is unknown.
 */
size_t run_loop_default_mem_limit(void);

#endif
