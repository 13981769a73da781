/*
 * run-loop.c - the one run loop (run-loop.h): begin the runs, run each cell in a child
 * into each run, store it at once, stop between cells on a signal, finish the runs.
 */
#include "run-loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin.h"
#include "reference-cache.h"
#include "rounds.h"
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
	for (int i = 0; i < rl->n_runs; i++) {
		if (store_begin_run(rl->store, p, &rl->runs[i]))
			return -EIO;
		for (int j = 0; j < plugin_count(); j++)
			if (store_add_plugin(rl->store, rl->runs[i], plugin_at(j)->variant->name,
					     plugin_at(j)->path, plugin_at(j)->sha256))
				return -EIO;
	}
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

int run_loop_measure_bandwidth(struct run_loop *rl, int threads, double *gbps)
{
	int ret = runner_triad_bandwidth(threads, gbps);

	if (ret)
		return ret;
	for (int i = 0; i < rl->n_runs; i++)
		store_set_run_bandwidth(rl->store, rl->runs[i], *gbps);
	return 0;
}

int run_loop_use_reference_cache(struct run_loop *rl)
{
	int ret;

	reference_cache_sweep();	/* what a killed run left behind */
	ret = reference_cache_create(rl->cache, sizeof(rl->cache));

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

/* Stores rec into the run of step, as a new cell or over *cell_id; 0 or -EIO with a reason. */
static int store_visit(struct run_loop *rl, const struct run_loop_step *step,
		       const struct cell_record *rec, int64_t *cell_id, char *why, size_t len)
{
	if (!store_put_cell(rl->store, rl->runs[step->side], rec, cell_id))
		return 0;
	why_set(why, len, "cannot store a result in '%s': %s", rl->db, store_errmsg(rl->store));
	return -EIO;
}

/*
 * Runs step's cell in a child, as `measured` says (the cell itself, or a copy with one
 * round's share of its measurement), into r and out. 0, or -errno with a reason.
 */
static int run_child(struct run_loop *rl, const struct run_loop_step *step,
		     const struct cell *measured, struct cell_result *r,
		     struct runner_outcome *out, char *why, size_t len)
{
	int ret;

	if (rl->ops && rl->ops->cell_start)
		rl->ops->cell_start(rl->data, step);
	ret = runner_run_cell(measured, &rl->limits, r, out);
	if (ret)
		return why_fail(ret, why, len, "cannot start a child process: %s", strerror(-ret));
	return 0;
}

static void tell_done(struct run_loop *rl, const struct run_loop_step *step,
		      const struct cell_result *r, bool stored)
{
	if (rl->ops && rl->ops->cell_done)
		rl->ops->cell_done(rl->data, step, r, stored);
}

/*
 * An untimed cell running in a child: what the loop told of it (the planned cell) and
 * the cell as it runs and is stored, with its share of the threads.
 */
struct untimed_visit {
	struct run_loop_step step;
	struct cell cell;
};

/* Untimed visits that must run again alone (needs_solo_run), in the order they ended. */
struct solo_visits {
	struct untimed_visit *visits;
	size_t count, cap;
};

/*
 * Out of memory under its share of the address space, or out of time on its share of the
 * threads: beside other cells, that is a verdict of --jobs, not of the variant. Such a
 * cell runs again alone, on all its threads and the whole limit, once the others are
 * done, and only that result is stored.
 */
static bool needs_solo_run(const struct cell_result *r)
{
	return r->status == CELL_OOM || r->status == CELL_TIMEOUT;
}

/* Appends v to solo; 0 or -ENOMEM. */
static int solo_add(struct solo_visits *solo, const struct untimed_visit *v)
{
	if (solo->count == solo->cap) {
		size_t cap = solo->cap ? 2 * solo->cap : 8;
		struct untimed_visit *grown = realloc(solo->visits, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		solo->visits = grown;
		solo->cap = cap;
	}
	solo->visits[solo->count++] = *v;
	return 0;
}

/*
 * Reaps the finished child of visit v and stores its result into its run unless a
 * signal came while it ran, or keeps the visit in solo (when not NULL) if it must run
 * again alone; 0, or -EIO or -ENOMEM with a reason.
 */
static int finish_untimed(struct run_loop *rl, struct untimed_visit *v,
			  struct runner_child *child, const struct runner_limits *limits,
			  struct solo_visits *solo, char *why, size_t len)
{
	struct runner_outcome out;
	struct cell_result r;
	struct cell_record rec = { &v->cell, &r, 0, -1, NULL };
	int64_t cell_id = 0;
	int ret = 0;

	runner_reap(child, limits, &r, &out);
	if (solo && !interrupted && needs_solo_run(&r)) {
		result_release(&r);
		if (solo_add(solo, v))
			return why_fail(-ENOMEM, why, len, "out of memory planning the cells");
		return 0;
	}
	if (!interrupted) {
		rec.wall_seconds = out.wall_seconds;
		rec.rss_bytes = out.rss_bytes;
		ret = store_visit(rl, &v->step, &rec, &cell_id, why, len);
		if (!ret) {
			rl->by_status[r.status]++;
			rl->done++;
		}
	}
	if (!ret)
		tell_done(rl, &v->step, &r, !interrupted);
	result_release(&r);
	return ret;
}

/*
 * Runs the visits of solo one at a time, each cell on all its threads under rl->limits,
 * and stores them; the steps they take are added to the plan's. 0, or -errno with a
 * reason; stops at a signal.
 */
static int run_solo(struct run_loop *rl, struct run_loop_step *step,
		    const struct solo_visits *solo, double started, char *why, size_t len)
{
	int ret = 0;

	step->total += solo->count;
	for (size_t i = 0; i < solo->count && !ret && !interrupted; i++) {
		struct untimed_visit *v = &solo->visits[i];
		struct runner_child child = { 0 };

		v->cell = *v->step.cell;
		v->step.index = step->index++;
		v->step.total = step->total;
		v->step.elapsed = timing_now() - started;
		if (rl->ops && rl->ops->cell_start)
			rl->ops->cell_start(rl->data, &v->step);
		ret = runner_start_cell(&v->cell, &rl->limits, &child);
		if (ret)
			return why_fail(ret, why, len, "cannot start a child process: %s",
					strerror(-ret));
		if (runner_wait_any(&child, 1, &rl->limits) == 0)
			ret = finish_untimed(rl, v, &child, &rl->limits, NULL, why, len);
	}
	return ret;
}

/*
 * The untimed cells in plan order, into each run, up to rl->jobs at a time: each child
 * gets its share of the cell's threads and of the address-space limit. Stops starting
 * cells on a signal or an error, and waits for the ones running. A cell that ran out of
 * its share of memory or time then runs again alone (needs_solo_run).
 */
static int run_untimed(struct run_loop *rl, struct run_loop_step *step, double started,
		       char *why, size_t len)
{
	int jobs = rl->jobs < 1 ? 1 : rl->jobs > RUNNER_MAX_CHILDREN ? RUNNER_MAX_CHILDREN :
		   rl->jobs;
	struct untimed_visit *visits = calloc((size_t)jobs, sizeof(*visits));
	struct runner_child *children = calloc((size_t)jobs, sizeof(*children));
	struct runner_limits limits = rl->limits;
	struct solo_visits solo = { 0 };
	int side = 0, running = 0, ret = 0;
	size_t i = 0;

	if (!visits || !children) {
		ret = why_fail(-ENOMEM, why, len, "out of memory planning the cells");
		goto out;
	}
	limits.bytes /= (size_t)jobs;
	for (;;) {
		int k;

		/* the free slots take the next untimed cells */
		for (k = 0; k < jobs && !ret && !interrupted; k++) {
			struct untimed_visit *v = &visits[k];

			if (children[k].pid)
				continue;
			while (i < rl->count && rounds_timed(&rl->cells[i]))
				i++;
			if (i == rl->count)
				break;
			v->cell = rl->cells[i];
			v->cell.threads = v->cell.threads / jobs > 0 ? v->cell.threads / jobs : 1;
			v->step = *step;
			v->step.cell = &rl->cells[i];
			v->step.side = side;
			v->step.elapsed = timing_now() - started;
			if (rl->ops && rl->ops->cell_start)
				rl->ops->cell_start(rl->data, &v->step);
			ret = runner_start_cell(&v->cell, &limits, &children[k]);
			if (ret) {
				ret = why_fail(ret, why, len, "cannot start a child process: %s",
					       strerror(-ret));
				break;
			}
			running++;
			step->index++;
			if (++side == rl->n_runs) {
				side = 0;
				i++;
			}
		}
		if (!running)
			break;
		k = runner_wait_any(children, jobs, &limits);
		if (k < 0)
			break;
		running--;
		if (finish_untimed(rl, &visits[k], &children[k], &limits, jobs > 1 ? &solo : NULL,
				   why, len) && !ret)
			ret = -EIO;
	}
	if (!ret)
		ret = run_solo(rl, step, &solo, started, why, len);
out:
	free(solo.visits);
	free(visits);
	free(children);
	return ret;
}

/*
 * Visits a timed cell in one round: a child measures the round's share, the visit joins
 * the cell's pool, and the pool is stored over what the earlier rounds stored.
 */
static int run_visit(struct run_loop *rl, const struct run_loop_step *step,
		     struct round_pool *pool, char *why, size_t len)
{
	struct cell share = *step->cell;
	struct runner_outcome out;
	struct cell_result r;
	struct cell_record rec = { step->cell, &pool->pooled, 0, -1, NULL };
	int ret;

	share.measure = rounds_share(&step->cell->measure, rl->rounds);
	ret = run_child(rl, step, &share, &r, &out, why, len);
	if (ret)
		return ret;
	if (!interrupted) {
		ret = round_pool_add(pool, step->cell, step->round, &r, &out);
		if (ret)
			why_set(why, len, "out of memory pooling the rounds of a cell");
	}
	if (!ret && !interrupted) {
		rec.wall_seconds = pool->wall_seconds;
		rec.rss_bytes = pool->rss_bytes;
		rec.sample_rounds = pool->sample_rounds;
		ret = store_visit(rl, step, &rec, &pool->cell_id, why, len);
	}
	if (!ret)
		tell_done(rl, step, &r, !interrupted);
	result_release(&r);
	return ret;
}

/*
 * Visits, in round `round`, the cells timed[pick[k]] for k < n (in that order) on every
 * side whose pool wants a visit (open; in an extra round, also above the spread limit).
 */
static int run_round(struct run_loop *rl, struct run_loop_step *step, int round, bool extra,
		     const size_t *timed, const size_t *pick, size_t n, struct round_pool *pools,
		     double started, char *why, size_t len)
{
	for (size_t k = 0; k < n; k++)
		for (int side = 0; side < rl->n_runs; side++) {
			struct round_pool *pool = &pools[pick[k] * RUN_LOOP_MAX_RUNS + side];
			int ret;

			if (pool->closed || (extra && !round_pool_wants_more(pool)))
				continue;
			if (interrupted)
				return 0;
			step->cell = &rl->cells[timed[pick[k]]];
			step->side = side;
			step->round = round;
			step->elapsed = timing_now() - started;
			ret = run_visit(rl, step, pool, why, len);
			if (ret)
				return ret;
			step->index++;
		}
	return 0;
}

/* The planned rounds over the timed cells, then extra rounds for high-spread ones. */
static int run_rounds(struct run_loop *rl, struct run_loop_step *step, const size_t *timed,
		      size_t n, double started, char *why, size_t len)
{
	struct round_pool *pools = calloc(n * RUN_LOOP_MAX_RUNS + 1, sizeof(*pools));
	size_t *order = malloc(sizeof(*order) * (n + 1)), *wanted = malloc(sizeof(*wanted) *
									  (n + 1));
	int ret = 0;

	if (!pools || !order || !wanted) {
		ret = why_fail(-ENOMEM, why, len, "out of memory planning the rounds");
		goto out;
	}
	for (int round = 1; !ret && round <= rl->rounds; round++) {
		rounds_order(rl->seed, round, order, n);
		ret = run_round(rl, step, round, false, timed, order, n, pools, started, why, len);
	}
	for (int extra = 1; !ret && extra <= ROUNDS_MAX_EXTRA; extra++) {
		size_t n_wanted = 0, visits = 0;

		for (size_t i = 0; i < n; i++) {
			size_t sides = 0;

			for (int side = 0; side < rl->n_runs; side++)
				sides += round_pool_wants_more(&pools[i * RUN_LOOP_MAX_RUNS + side]);
			if (sides)
				wanted[n_wanted++] = i;
			visits += sides;
		}
		if (!n_wanted)
			break;
		step->total += visits;
		rounds_order(rl->seed, rl->rounds + extra, order, n_wanted);
		for (size_t k = 0; k < n_wanted; k++)
			order[k] = wanted[order[k]];
		ret = run_round(rl, step, rl->rounds + extra, true, timed, order, n_wanted, pools,
				started, why, len);
	}
out:
	for (size_t i = 0; pools && i < n * RUN_LOOP_MAX_RUNS; i++) {
		if (pools[i].cell_id) {
			rl->by_status[pools[i].pooled.status]++;
			rl->done++;
		}
		round_pool_release(&pools[i]);
	}
	free(pools);
	free(order);
	free(wanted);
	return ret;
}

int run_loop_run(struct run_loop *rl, char *why, size_t len)
{
	struct run_loop_step step = { .rounds = rl->rounds };
	double started = timing_now();
	size_t *timed = malloc(sizeof(*timed) * (rl->count + 1)), n_timed = 0;
	int ret = 0;

	if (!timed)
		return why_fail(-ENOMEM, why, len, "out of memory planning the rounds");
	if (rl->rounds < 1)
		rl->rounds = 1;
	for (size_t i = 0; i < rl->count; i++)
		if (rounds_timed(&rl->cells[i]))
			timed[n_timed++] = i;
	step.total = (rl->count - n_timed + n_timed * (size_t)rl->rounds) * (size_t)rl->n_runs;

	/* the untimed cells in plan order, then the timed ones round by round */
	ret = run_untimed(rl, &step, started, why, len);
	if (!ret && !interrupted && n_timed)
		ret = run_rounds(rl, &step, timed, n_timed, started, why, len);
	free(timed);
	return ret;
}

bool run_loop_cells_failed(const struct run_loop *rl)
{
	for (int s = 0; s < CELL_STATUS_COUNT; s++)
		if (s != CELL_OK && s != CELL_UNSUPPORTED && rl->by_status[s])
			return true;
	return false;
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
