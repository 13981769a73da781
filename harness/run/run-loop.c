/*
 * run-loop.c - the one run loop (run-loop.h): begin the runs, run each cell in a child
 * into each run, store it at once, stop between cells on a signal, finish the runs.
 */
#include "run-loop.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "reference-cache.h"
#include "timing.h"
#include "why.h"

/* Set by the handler; a handler can reach nothing but a global of this type. */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

int run_loop_begin(struct run_loop *rl, const struct provenance *p)
{
	for (int i = 0; i < rl->n_runs; i++)
		if (store_begin_run(rl->store, p, &rl->runs[i]))
			return -EIO;
	return 0;
}

int run_loop_measure_peak(struct run_loop *rl, int threads, double *gflops)
{
	int ret = runner_sgemm_peak(threads, gflops);

	if (ret)
		return ret;
	for (int i = 0; i < rl->n_runs; i++)
		store_set_run_peak(rl->store, rl->runs[i], *gflops);
	return 0;
}

int run_loop_use_reference_cache(struct run_loop *rl)
{
	int ret = reference_cache_create(rl->cache, sizeof(rl->cache));

	if (ret) {
		rl->cache[0] = '\0';
		return ret;
	}
	for (size_t i = 0; i < rl->count; i++)
		rl->cells[i].cache_dir = rl->cache;
	return 0;
}

void run_loop_catch_signals(struct run_loop *rl)
{
	struct sigaction sa = { .sa_handler = on_interrupt };

	interrupted = 0;
	sigaction(SIGINT, &sa, &rl->old_int);
	sigaction(SIGTERM, &sa, &rl->old_term);
}

void run_loop_restore_signals(struct run_loop *rl)
{
	sigaction(SIGINT, &rl->old_int, NULL);
	sigaction(SIGTERM, &rl->old_term, NULL);
}

bool run_loop_interrupted(void)
{
	return interrupted;
}

/* Runs the cell of step into its run and stores it unless a signal came meanwhile. */
static int run_one(struct run_loop *rl, const struct run_loop_step *step, char *why,
		   size_t len)
{
	const struct run_loop_ops *ops = rl->ops;
	struct runner_outcome out;
	struct cell_result r;
	struct cell_record rec = { step->cell, &r, 0, -1 };
	bool stored = false;
	int ret;

	if (ops && ops->cell_start)
		ops->cell_start(rl->data, step);
	ret = runner_run_cell(step->cell, &rl->limits, &r, &out);
	if (ret)
		return why_fail(ret, why, len, "cannot start a child process: %s", strerror(-ret));
	if (!interrupted) {
		rec.wall_seconds = out.wall_seconds;
		rec.rss_bytes = out.rss_bytes;
		if (store_add_cell(rl->store, rl->runs[step->side], &rec)) {
			why_set(why, len, "cannot store a result in '%s': %s", rl->db,
				store_errmsg(rl->store));
			result_release(&r);
			return -EIO;
		}
		rl->by_status[r.status]++;
		rl->done++;
		stored = true;
	}
	if (ops && ops->cell_done)
		ops->cell_done(rl->data, step, &r, stored);
	result_release(&r);
	return 0;
}

int run_loop_run(struct run_loop *rl, char *why, size_t len)
{
	struct run_loop_step step = { .total = rl->count * (size_t)rl->n_runs };
	double started = timing_now();
	int ret;

	for (size_t i = 0; i < rl->count; i++)
		for (int side = 0; side < rl->n_runs; side++) {
			if (interrupted)
				return 0;
			step.cell = &rl->cells[i];
			step.side = side;
			step.index = i * (size_t)rl->n_runs + (size_t)side;
			step.elapsed = timing_now() - started;
			ret = run_one(rl, &step, why, len);
			if (ret)
				return ret;
		}
	return 0;
}

const char *run_loop_status(int loop_ret, bool cells_failed)
{
	if (loop_ret)
		return "failed";
	if (interrupted)
		return "interrupted";
	return cells_failed ? "failed" : "complete";
}

int run_loop_finish(struct run_loop *rl, const char *status)
{
	int ret = 0;

	if (rl->cache[0]) {
		reference_cache_remove(rl->cache);
		rl->cache[0] = '\0';
		for (size_t i = 0; i < rl->count; i++)
			rl->cells[i].cache_dir = NULL;
	}
	for (int i = 0; i < rl->n_runs; i++)
		if (store_finish_run(rl->store, rl->runs[i], status))
			ret = -EIO;
	return ret;
}

size_t run_loop_default_mem_limit(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);

	/* Leave a tenth for the parent and the system, so a runaway cell dies alone. */
	return pages > 0 && size > 0 ? (size_t)pages * (size_t)size / 10 * 9 : 0;
}
