/*
 * test-run-loop.c - the one run loop with real child processes and a store in memory:
 * cells interleaved into two runs, progress counts, broken cells stored and counted,
 * an interruption that keeps finished cells, a store that refuses a result, the
 * reference cache, the final status of a run; and timed cells measured in interleaved
 * rounds: their orders, shares and pooled samples, extra rounds for a disturbed cell,
 * the unstable mark, a crash in a later round; a run through every fault a variant can
 * have (fault-variants.h), which goes on and ends failed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fault-variants.h"
#include "rounds.h"
#include "run-loop.h"
#include "store-test.h"
#include "threads.h"
#include "timing.h"

/* Cell sizes the fake task treats specially. */
#define N_CRASHES 13
#define N_REFUSES 17

/* A task that needs no inputs: reports n, or crashes, or refuses, as n says. */
static int fake_run(const struct cell *c, struct cell_result *r)
{
	if (c->n == N_CRASHES)
		raise(SIGSEGV);
	if (c->n == N_REFUSES)
		return -ENOTSUP;
	return result_metric(r, "n", c->n, "");
}

static const struct task_ops fake_task = {
	.name	= "fake",
	.run	= fake_run,
};

/*
 * How slow the next child's calls are, and whether it crashes: set by the parent as a
 * visit starts (saw_start), inherited by the child at the fork. A load burst on demand.
 */
static double visit_factor = 1;
static bool visit_crashes;

/* A timed task: min_repeats samples of n milliseconds times visit_factor. */
static int fake_timed_summarise(const struct cell *c, struct cell_result *r)
{
	struct sample_summary s;

	(void)c;
	return result_latency(r, &s);
}

static int fake_timed_run(const struct cell *c, struct cell_result *r)
{
	if (visit_crashes)
		raise(SIGSEGV);
	for (int i = 0; i < c->measure.min_repeats; i++)
		if (result_sample(r, 1e-3 * c->n * visit_factor))
			return -ENOMEM;
	return fake_timed_summarise(c, r);
}

/* A task that takes 0.2 s and reports when it ran and on how many threads. */
static int slow_run(const struct cell *c, struct cell_result *r)
{
	double began = timing_now();

	(void)c;
	usleep(200000);
	if (result_metric(r, "began", began, "s") || result_metric(r, "ended", timing_now(), "s"))
		return -ENOMEM;
	return result_metric(r, "threads_seen", threads_get(), "");
}

static const struct task_ops slow_task = {
	.name	= "slow",
	.run	= slow_run,
};

static const struct task_ops fake_timed_task = {
	.name		= "fake_timed",
	.run		= fake_timed_run,
	.summarise	= fake_timed_summarise,
};

/* What the ops saw, in order. */
#define MAX_SEEN 32

struct seen {
	struct run_loop_step starts[MAX_SEEN];
	int n_starts;
	bool stored[MAX_SEEN];
	enum cell_status status[MAX_SEEN];
	int n_done;
	size_t interrupt_at;	/* raise SIGINT as this step starts; SIZE_MAX for never */
	/* optional: the visit_factor of a visit, and whether it crashes */
	double (*factor)(const struct run_loop_step *step);
	bool (*crashes)(const struct run_loop_step *step);
};

static void saw_start(void *data, const struct run_loop_step *step)
{
	struct seen *s = data;

	assert_true(s->n_starts < MAX_SEEN);
	s->starts[s->n_starts++] = *step;
	visit_factor = s->factor ? s->factor(step) : 1;
	visit_crashes = s->crashes && s->crashes(step);
	if (step->index == s->interrupt_at)
		raise(SIGINT);
}

static void saw_done(void *data, const struct run_loop_step *step,
		     const struct cell_result *r, bool stored)
{
	struct seen *s = data;

	int started = 0;

	assert_true(s->n_done < MAX_SEEN);
	/* a step that started (cells may run side by side: not always the last one) */
	for (int i = 0; i < s->n_starts; i++)
		started += s->starts[i].index == step->index;
	assert_int_equal(started, 1);
	s->stored[s->n_done] = stored;
	s->status[s->n_done++] = r->status;
}

static const struct run_loop_ops seeing_ops = {
	.cell_start	= saw_start,
	.cell_done	= saw_done,
};

/* A fixed provenance, so runs can be inserted without reading the machine. */
/* Cells of the fake task with the given sizes. */
static void make_cells(struct cell *cells, const int *n, size_t count)
{
	for (size_t i = 0; i < count; i++)
		cells[i] = (struct cell){
			.variant = variant_find("vanilla"),
			.task = &fake_task,
			.pattern = ATTN_NS,
			.batch = 1, .heads = 1, .kv_heads = 1, .n = n[i], .m = n[i], .d = 8,
			.threads = 1,
		};
}

/* A loop over cells into n_runs fresh runs of a store in memory. */
static void begin(struct run_loop *rl, struct cell *cells, size_t count, int n_runs,
		  struct seen *seen)
{
	struct provenance p;
	char why[256];

	*rl = (struct run_loop){
		.db = ":memory:", .cells = cells, .count = count, .n_runs = n_runs,
		.limits = { 20, 0 }, .ops = &seeing_ops, .data = seen,
	};
	*seen = (struct seen){ .interrupt_at = SIZE_MAX };
	assert_int_equal(store_open(":memory:", 0, &rl->store, why, sizeof(why)), 0);
	fake_provenance(&p, "x");
	assert_int_equal(run_loop_begin(rl, &p), 0);
	provenance_release(&p);
}

/* A loop over four cells of task, sized n, on 4 threads, into one run, with jobs. */
static void begin_four(struct run_loop *rl, struct cell *cells, const int *n,
		       const struct task_ops *task, int jobs, struct seen *seen)
{
	make_cells(cells, n, 4);
	for (int i = 0; i < 4; i++) {
		cells[i].task = task;
		cells[i].threads = 4;
	}
	begin(rl, cells, 4, 1, seen);
	rl->jobs = jobs;
}

static long long query_int(struct store *s, const char *sql, int64_t run)
{
	sqlite3_stmt *st;
	long long x;

	assert_int_equal(sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, run);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	x = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return x;
}

static const char *run_status(struct store *s, int64_t run, char *buf, size_t len)
{
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_prepare_v2(store_db(s), "SELECT status FROM runs WHERE id = ?",
					    -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, run);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return buf;
}

static void test_run_loop_interleaves_cells_into_two_runs(void **state)
{
	static const int n[] = { 4, 5, 6 };
	struct cell cells[3];
	struct run_loop rl;
	struct seen seen;
	char why[512], status[32];

	(void)state;
	make_cells(cells, n, 3);
	begin(&rl, cells, 3, 2, &seen);
	assert_true(rl.runs[0] != rl.runs[1]);
	run_loop_catch_signals(&rl);
	assert_int_equal(run_loop_run(&rl, why, sizeof(why)), 0);
	run_loop_restore_signals(&rl);

	assert_int_equal(seen.n_starts, 6);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(seen.starts[i].index, i);
		assert_int_equal(seen.starts[i].total, 6);
		assert_int_equal(seen.starts[i].side, i % 2);
		assert_ptr_equal(seen.starts[i].cell, &cells[i / 2]);
		assert_true(seen.starts[i].elapsed >= 0);
		assert_true(seen.stored[i]);
	}
	assert_int_equal(rl.done, 6);
	assert_int_equal(rl.by_status[CELL_OK], 6);
	for (int side = 0; side < 2; side++) {
		assert_int_equal(query_int(rl.store, "SELECT count(*) FROM cells WHERE run_id = ?",
					   rl.runs[side]), 3);
		assert_int_equal(query_int(rl.store, "SELECT group_concat(n, '') FROM (SELECT n "
					   "FROM cells WHERE run_id = ? ORDER BY id)",
					   rl.runs[side]), 456);
	}
	assert_false(run_loop_interrupted());
	assert_string_equal(run_loop_status(0, false), "complete");
	assert_int_equal(run_loop_finish(&rl, run_loop_status(0, false)), 0);
	assert_string_equal(run_status(rl.store, rl.runs[0], status, sizeof(status)),
			    "complete");
	assert_string_equal(run_status(rl.store, rl.runs[1], status, sizeof(status)),
			    "complete");
	store_close(rl.store);
}

static void test_run_loop_stores_and_counts_broken_cells(void **state)
{
	static const int n[] = { N_CRASHES, 4, N_REFUSES };
	struct cell cells[3];
	struct run_loop rl;
	struct seen seen;
	char why[512], status[32];

	(void)state;
	make_cells(cells, n, 3);
	begin(&rl, cells, 3, 1, &seen);
	assert_int_equal(run_loop_run(&rl, why, sizeof(why)), 0);
	assert_int_equal(seen.n_done, 3);
	assert_int_equal(seen.status[0], CELL_CRASHED);
	assert_int_equal(seen.status[1], CELL_OK);
	assert_int_equal(seen.status[2], CELL_UNSUPPORTED);
	assert_int_equal(rl.done, 3);
	assert_int_equal(rl.by_status[CELL_CRASHED], 1);
	assert_int_equal(rl.by_status[CELL_OK], 1);
	assert_int_equal(rl.by_status[CELL_UNSUPPORTED], 1);
	assert_int_equal(query_int(rl.store, "SELECT count(*) FROM cells WHERE run_id = ?",
				   rl.runs[0]), 3);
	assert_int_equal(run_loop_finish(&rl, run_loop_status(0, true)), 0);
	assert_string_equal(run_status(rl.store, rl.runs[0], status, sizeof(status)), "failed");
	store_close(rl.store);
}

/*
 * Real fidelity cells of every fault variant between two good ones: each is stored with
 * its own status, and the run ends failed, which `run` turns into exit status 1.
 */
static void test_run_loop_goes_on_past_every_fault(void **state)
{
	static const struct {
		const struct variant_ops *variant;
		const char *status;
	} want[] = {
		{ NULL, "ok" },	/* vanilla */
		{ &segv_variant, "crashed" },
		{ &abort_variant, "crashed" },
		{ &hang_variant, "timeout" },
#if RUNNER_LIMITS_ADDRESS_SPACE
		/* without an address-space limit (a sanitizer build) it would only time out */
		{ &alloc_forever_variant, "oom" },
#endif
		{ &nan_variant, "nan" },
		{ &inf_variant, "nan" },
		{ &overrun_near_variant, "corrupt" },
		{ &overrun_far_variant, "corrupt" },
		{ &underrun_variant, "corrupt" },
		{ &write_input_variant, "corrupt" },
		{ NULL, "ok" },	/* vanilla */
	};
	enum { COUNT = sizeof(want) / sizeof(want[0]) };
	struct cell cells[COUNT];
	struct run_loop rl;
	struct seen seen;
	char why[512], status[32];
	sqlite3_stmt *st;
	int i = 0;

	(void)state;
	for (int c = 0; c < COUNT; c++)
		cells[c] = (struct cell){
			.variant = want[c].variant ? want[c].variant : variant_find("vanilla"),
			.task = task_find("fidelity"),
			.pattern = ATTN_NS, .regime = "gaussian", .seed = 5,
			.batch = 1, .heads = 2, .kv_heads = 1, .n = 16, .m = 16, .d = 16,
			.threads = 1,
		};
	begin(&rl, cells, COUNT, 1, &seen);
	/* the hang's 5 s leave the other cells (some 20 ms each) room on a busy machine */
	rl.limits = (struct runner_limits){ 5, (size_t)512 << 20 };
	assert_int_equal(run_loop_run(&rl, why, sizeof(why)), 0);
	assert_int_equal(rl.done, COUNT);
	assert_int_equal(rl.by_status[CELL_OK], 2);
	assert_int_equal(rl.by_status[CELL_CRASHED], 2);
	assert_int_equal(rl.by_status[CELL_TIMEOUT], 1);
	assert_int_equal(rl.by_status[CELL_OOM], RUNNER_LIMITS_ADDRESS_SPACE);
	assert_int_equal(rl.by_status[CELL_NAN], 2);
	assert_int_equal(rl.by_status[CELL_CORRUPT], 4);

	assert_int_equal(sqlite3_prepare_v2(store_db(rl.store), "SELECT variant, status, reason"
					    " FROM cells WHERE run_id = ? ORDER BY id", -1, &st,
					    NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, rl.runs[0]);
	for (; sqlite3_step(st) == SQLITE_ROW; i++) {
		assert_true(i < COUNT);
		assert_string_equal(sqlite3_column_text(st, 0), cells[i].variant->name);
		assert_string_equal(sqlite3_column_text(st, 1), want[i].status);
		/* every broken cell says why */
		assert_true(!strcmp(want[i].status, "ok") || sqlite3_column_bytes(st, 2) > 0);
	}
	sqlite3_finalize(st);
	assert_int_equal(i, COUNT);

	assert_true(run_loop_cells_failed(&rl));
	assert_string_equal(run_loop_status(0, run_loop_cells_failed(&rl)), "failed");
	assert_int_equal(run_loop_finish(&rl, run_loop_status(0, run_loop_cells_failed(&rl))), 0);
	assert_string_equal(run_status(rl.store, rl.runs[0], status, sizeof(status)), "failed");
	store_close(rl.store);
}

/* Only ok and unsupported cells leave a run complete. */
static void test_run_loop_cells_failed_is_any_status_but_ok_and_unsupported(void **state)
{
	struct run_loop rl = { 0 };

	(void)state;
	rl.by_status[CELL_OK] = 3;
	rl.by_status[CELL_UNSUPPORTED] = 2;
	assert_false(run_loop_cells_failed(&rl));
	for (int s = 0; s < CELL_STATUS_COUNT; s++) {
		if (s == CELL_OK || s == CELL_UNSUPPORTED)
			continue;
		rl.by_status[s] = 1;
		assert_true(run_loop_cells_failed(&rl));
		rl.by_status[s] = 0;
	}
}

static void test_run_loop_interrupted_keeps_finished_cells(void **state)
{
	static const int n[] = { 4, 5, 6, 7 };
	struct sigaction before, after;
	struct cell cells[4];
	struct run_loop rl;
	struct seen seen;
	char why[512], status[32];

	(void)state;
	make_cells(cells, n, 4);
	begin(&rl, cells, 4, 1, &seen);
	seen.interrupt_at = 2;
	sigaction(SIGINT, NULL, &before);
	run_loop_catch_signals(&rl);
	assert_false(run_loop_interrupted());
	assert_int_equal(run_loop_run(&rl, why, sizeof(why)), 0);
	assert_true(run_loop_interrupted());

	/* the cell running when the signal came ran, was dropped, and nothing came after */
	assert_int_equal(seen.n_starts, 3);
	assert_int_equal(seen.n_done, 3);
	assert_true(seen.stored[0] && seen.stored[1]);
	assert_false(seen.stored[2]);
	assert_int_equal(rl.done, 2);
	assert_int_equal(query_int(rl.store, "SELECT count(*) FROM cells WHERE run_id = ?",
				   rl.runs[0]), 2);
	assert_string_equal(run_loop_status(0, false), "interrupted");
	assert_string_equal(run_loop_status(-EIO, false), "failed");
	assert_int_equal(run_loop_finish(&rl, run_loop_status(0, false)), 0);
	run_loop_restore_signals(&rl);
	assert_string_equal(run_status(rl.store, rl.runs[0], status, sizeof(status)),
			    "interrupted");
	sigaction(SIGINT, NULL, &after);
	assert_ptr_equal(after.sa_handler, before.sa_handler);

	/* catching again starts a loop that is not interrupted */
	run_loop_catch_signals(&rl);
	assert_false(run_loop_interrupted());
	run_loop_restore_signals(&rl);
	store_close(rl.store);
}

static void test_run_loop_reports_a_result_it_cannot_store(void **state)
{
	static const int n[] = { 4, 5 };
	struct cell cells[2];
	struct run_loop rl;
	struct seen seen;
	char why[512];

	(void)state;
	make_cells(cells, n, 2);
	begin(&rl, cells, 2, 1, &seen);
	assert_int_equal(sqlite3_exec(store_db(rl.store), "PRAGMA query_only = 1", NULL, NULL,
				      NULL), SQLITE_OK);
	assert_int_equal(run_loop_run(&rl, why, sizeof(why)), -EIO);
	assert_non_null(strstr(why, "cannot store a result in ':memory:': "));
	assert_int_equal(seen.n_starts, 1);
	assert_int_equal(seen.n_done, 0);
	assert_int_equal(rl.done, 0);
	assert_string_equal(run_loop_status(-EIO, false), "failed");
	store_close(rl.store);
}

/* A metric of the stored cell of size n of run. */
static double stored_metric(struct store *s, int64_t run, int n, const char *name)
{
	sqlite3_stmt *st;
	double x;

	assert_int_equal(sqlite3_prepare_v2(store_db(s), "SELECT value FROM metrics JOIN cells c "
					    "ON c.id = cell_id WHERE c.run_id = ?1 AND c.n = ?2 "
					    "AND name = ?3", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, run);
	sqlite3_bind_int(st, 2, n);
	sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	x = sqlite3_column_double(st, 0);
	sqlite3_finalize(st);
	return x;
}

/* A cell of this size needs more time or memory than the tests below allow, alone or not. */
#define N_TOO_MUCH 99

/*
 * A task bound by its threads: 1.2 s over the threads it has (0.3 s on 4, 0.6 s on 2),
 * or 2 s for N_TOO_MUCH.
 */
static int threads_bound_run(const struct cell *c, struct cell_result *r)
{
	usleep(c->n == N_TOO_MUCH ? 2000000 : 1200000 / (useconds_t)threads_get());
	return result_metric(r, "threads_seen", threads_get(), "");
}

static const struct task_ops threads_bound_task = {
	.name	= "threads_bound",
	.run	= threads_bound_run,
};

/* The address space a greedy cell asks for: set by the test, inherited at the fork. */
static size_t greedy_bytes;

/* A task that needs greedy_bytes of address space at once, or twice that for N_TOO_MUCH. */
static int greedy_run(const struct cell *c, struct cell_result *r)
{
	char *block = malloc(c->n == N_TOO_MUCH ? 2 * greedy_bytes : greedy_bytes);

	if (!block)
		return -ENOMEM;
	free(block);
	return result_metric(r, "threads_seen", threads_get(), "");
}

static const struct task_ops greedy_task = {
	.name	= "greedy",
	.run	= greedy_run,
};

/*
 * Runs four cells of task on 4 threads with two jobs under limits: three that fail on
 * their share of the threads and the limit but not alone, and one of N_TOO_MUCH, which
 * fails alone too, with status too_much. Each must be stored once, as run alone.
 */
static void assert_solo_runs(const struct task_ops *task, struct runner_limits limits,
			     enum cell_status too_much)
{
	const int n[] = { 4, 5, 6, N_TOO_MUCH };
	char sql[160];
	struct cell cells[4];
	struct run_loop rl;
	struct seen seen;
	char why[512];

	begin_four(&rl, cells, n, task, 2, &seen);
	rl.limits = limits;
	assert_int_equal(run_loop_run(&rl, why, sizeof(why)), 0);
	/* four starts side by side, then four alone; one result each, the solo one */
	assert_int_equal(seen.n_starts, 8);
	assert_int_equal(seen.n_done, 4);
	assert_int_equal(rl.done, 4);
	for (int i = 4; i < 8; i++) {
		assert_int_equal(seen.starts[i].index, i);
		assert_int_equal(seen.starts[i].total, 8);
	}
	assert_int_equal(query_int(rl.store, "SELECT count(*) FROM cells WHERE run_id = ?",
				   rl.runs[0]), 4);
	assert_int_equal(query_int(rl.store, "SELECT count(*) FROM cells WHERE run_id = ? AND "
				   "status = 'ok' AND threads = 4", rl.runs[0]), 3);
	for (int i = 0; i < 3; i++)
		assert_true(stored_metric(rl.store, rl.runs[0], n[i], "threads_seen") == 4);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM cells WHERE run_id = ? AND n = %d AND "
		 "threads = 4 AND status = '%s'", N_TOO_MUCH, cell_status_name(too_much));
	assert_int_equal(query_int(rl.store, sql, rl.runs[0]), 1);
	for (int i = 0; i < seen.n_done; i++)
		assert_true(seen.status[i] == CELL_OK || seen.status[i] == too_much);
	store_close(rl.store);
}

/*
 * A cell that runs out of time on its share of the threads beside another cell runs
 * again alone on all of them, and only that result is stored: ok if it then fits, a
 * timeout if it does not fit alone either. With one job nothing runs twice.
 */
static void test_run_loop_runs_a_cell_out_of_time_beside_others_again_alone(void **state)
{
	(void)state;
	assert_solo_runs(&threads_bound_task, (struct runner_limits){ 0.45, 0 }, CELL_TIMEOUT);
}

/*
 * The same for memory: a cell out of memory under its half of the address-space limit
 * runs again alone under all of it (not under AddressSanitizer, which takes no limit).
 */
static void test_run_loop_runs_a_cell_out_of_memory_beside_others_again_alone(void **state)
{
	(void)state;
	if (!RUNNER_LIMITS_ADDRESS_SPACE)
		skip();
	greedy_bytes = (size_t)3 << 30;
	assert_solo_runs(&greedy_task, (struct runner_limits){ 20, (size_t)4 << 30 }, CELL_OOM);
	greedy_bytes = 0;
}

/*
 * Two jobs: untimed cells run two at a time, each on half the threads, and each is
 * stored with the threads it ran on; one job: one after the other, on all of them.
 */
static void test_run_loop_runs_untimed_cells_side_by_side_with_jobs(void **state)
{
	static const int n[] = { 4, 5, 6, 7 };

	(void)state;
	for (int jobs = 1; jobs <= 2; jobs++) {
		struct cell cells[4];
		struct run_loop rl;
		struct seen seen;
		char why[512];
		int overlaps = 0;

		begin_four(&rl, cells, n, &slow_task, jobs, &seen);
		assert_int_equal(run_loop_run(&rl, why, sizeof(why)), 0);
		assert_int_equal(rl.done, 4);
		assert_int_equal(seen.n_starts, 4);
		assert_int_equal(seen.n_done, 4);
		for (int i = 0; i < 4; i++) {
			assert_int_equal(seen.starts[i].index, i);
			assert_ptr_equal(seen.starts[i].cell, &cells[i]);
			assert_true(seen.stored[i]);
			assert_true(stored_metric(rl.store, rl.runs[0], n[i], "threads_seen") ==
				    4 / jobs);
		}
		assert_int_equal(query_int(rl.store, "SELECT count(*) FROM cells WHERE run_id = ?"
					   " AND threads = 2", rl.runs[0]), jobs == 2 ? 4 : 0);
		for (int i = 0; i < 4; i++)
			for (int j = i + 1; j < 4; j++)
				overlaps += stored_metric(rl.store, rl.runs[0], n[j], "began") <
					    stored_metric(rl.store, rl.runs[0], n[i], "ended");
		if (jobs == 1)
			assert_int_equal(overlaps, 0);
		else
			assert_true(overlaps >= 2);
		store_close(rl.store);
	}
}

static void test_run_loop_points_cells_at_one_reference_cache(void **state)
{
	static const int n[] = { 4, 5 };
	struct cell cells[2];
	struct run_loop rl;
	struct seen seen;
	struct stat sb;
	char dir[PATH_MAX];

	(void)state;
	make_cells(cells, n, 2);
	begin(&rl, cells, 2, 1, &seen);
	assert_int_equal(run_loop_use_reference_cache(&rl), 0);
	assert_non_null(cells[0].cache_dir);
	assert_ptr_equal(cells[0].cache_dir, cells[1].cache_dir);
	snprintf(dir, sizeof(dir), "%s", cells[0].cache_dir);
	assert_int_equal(stat(dir, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(run_loop_finish(&rl, "complete"), 0);
	assert_int_equal(stat(dir, &sb), -1);
	assert_null(cells[0].cache_dir);
	store_close(rl.store);
}

/* The value of a query with ?1 bound to cell_id, as a double. */
static double cell_query(struct store *s, const char *sql, int64_t cell_id)
{
	sqlite3_stmt *st;
	double x;

	assert_int_equal(sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, cell_id);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	x = sqlite3_column_double(st, 0);
	sqlite3_finalize(st);
	return x;
}

/* The stored cell of size n in run (its id). */
static int64_t cell_of(struct store *s, int64_t run, int n)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT id FROM cells WHERE run_id = ?1 AND n = %d", n);
	return (int64_t)cell_query(s, sql, run);
}

static double metric(struct store *s, int64_t cell_id, const char *name)
{
	char sql[160];

	snprintf(sql, sizeof(sql), "SELECT value FROM metrics WHERE cell_id = ?1 AND name = '%s'",
		 name);
	return cell_query(s, sql, cell_id);
}

/* Cells 0..count-1 of sizes n: the fake timed task with 6 repeats, but cell 0 untimed. */
static void make_timed_cells(struct cell *cells, const int *n, size_t count)
{
	make_cells(cells, n, count);
	for (size_t i = 1; i < count; i++) {
		cells[i].task = &fake_timed_task;
		cells[i].measure = (struct measure_opts){ 0, 6, 0, 1000, 0 };
	}
}

static void test_rounds_order_is_a_seeded_permutation_per_round(void **state)
{
	struct measure_opts m = { 1, 20, 0.5, 10000, 0 }, share;
	size_t a[20], b[20], again[20];
	bool seen[20] = { false }, differ = false;

	(void)state;
	rounds_order(7, 1, a, 20);
	rounds_order(7, 2, b, 20);
	rounds_order(7, 1, again, 20);
	for (size_t i = 0; i < 20; i++) {
		assert_true(a[i] < 20);
		assert_false(seen[a[i]]);
		seen[a[i]] = true;
		assert_int_equal(a[i], again[i]);
		differ |= a[i] != b[i];
	}
	assert_true(differ);
	/* a share of 20 repeats and 0.5 s over 3 rounds: 7 repeats and a third each */
	share = rounds_share(&m, 3);
	assert_int_equal(share.warmup, 1);
	assert_int_equal(share.min_repeats, 7);
	assert_int_equal(share.max_repeats, 3334);
	assert_float_equal(share.min_seconds * 3, 0.5, 1e-12);
}

static void test_rounds_spreads(void **state)
{
	static const double calm[] = { 1.0, 1.1, 1.05 }, one_off[] = { 1.0, 2.0, 1.1 };
	static const double split[] = { 1.0, 2.0, 3.0, 1.6, 2.5 };

	(void)state;
	assert_float_equal(rounds_spread(calm, 3), 1.1, 1e-12);
	assert_float_equal(rounds_spread(one_off, 3), 2.0, 1e-12);
	/* two of three agree: the disturbed round is outvoted */
	assert_float_equal(rounds_majority_spread(one_off, 3), 1.1, 1e-12);
	/* no three of five within 1.5 of each other: sorted 1 1.6 2 2.5 3 */
	assert_float_equal(rounds_majority_spread(split, 5), 1.5, 1e-12);
	assert_float_equal(rounds_majority_spread(calm, 1), 1.0, 1e-12);
}

/*
 * Untimed cells first, in plan order; then every round visits each timed cell once, in
 * the round's own order, each visit with a third of the repeats; the samples are pooled
 * into one stored cell, each with its round.
 */
static void test_run_loop_measures_timed_cells_in_interleaved_rounds(void **state)
{
	static const int n[] = { 4, 5, 6, 7, 8 };
	struct cell cells[5];
	struct run_loop rl;
	struct seen seen;
	size_t order[4];
	char why[512];

	(void)state;
	make_timed_cells(cells, n, 5);
	begin(&rl, cells, 5, 1, &seen);
	rl.rounds = 3;
	rl.seed = 11;
	assert_int_equal(run_loop_run(&rl, why, sizeof(why)), 0);

	assert_int_equal(seen.n_starts, 1 + 4 * 3);
	assert_ptr_equal(seen.starts[0].cell, &cells[0]);
	assert_int_equal(seen.starts[0].round, 0);
	for (int round = 1; round <= 3; round++) {
		rounds_order(11, round, order, 4);
		for (int k = 0; k < 4; k++) {
			const struct run_loop_step *st = &seen.starts[1 + (round - 1) * 4 + k];

			assert_int_equal(st->round, round);
			assert_ptr_equal(st->cell, &cells[1 + order[k]]);
			assert_int_equal(st->total, 13);
		}
	}
	assert_int_equal(rl.done, 5);
	assert_int_equal(rl.by_status[CELL_OK], 5);
	assert_int_equal(query_int(rl.store, "SELECT count(*) FROM cells WHERE run_id = ?",
				   rl.runs[0]), 5);
	for (int i = 1; i < 5; i++) {
		int64_t id = cell_of(rl.store, rl.runs[0], n[i]);

		/* ceil(6 / 3) = 2 samples a visit, rounds 1, 2, 3 */
		assert_float_equal(cell_query(rl.store, "SELECT count(*) FROM samples WHERE "
					      "cell_id = ?1", id), 6, 0);
		assert_float_equal(cell_query(rl.store, "SELECT group_concat(round, '') FROM "
					      "(SELECT round FROM samples WHERE cell_id = ?1 "
					      "ORDER BY idx)", id), 112233, 0);
		assert_float_equal(metric(rl.store, id, "rounds"), 3, 0);
		assert_float_equal(metric(rl.store, id, "latency_round_spread"), 1, 1e-12);
		assert_float_equal(metric(rl.store, id, "unstable"), 0, 0);
		assert_float_equal(metric(rl.store, id, "latency_median"), 1e-3 * n[i], 1e-12);
	}
	/* the untimed cell has no rounds */
	assert_float_equal(cell_query(rl.store, "SELECT count(*) FROM metrics WHERE cell_id = "
				      "?1 AND name = 'rounds'", cell_of(rl.store, rl.runs[0], 4)),
			   0, 0);
	store_close(rl.store);
}

/* Cell n = 6 is twice as slow in round 2: a load burst on one visit. */
static double burst_in_round_2(const struct run_loop_step *step)
{
	return step->cell->n == 6 && step->round == 2 ? 2.0 : 1.0;
}

/* Cell n = 6 is slower in rounds 2 and 3, by different factors: no two rounds agree. */
static double bursts_in_rounds_2_and_3(const struct run_loop_step *step)
{
	static const double by_round[] = { 1, 1, 2.0, 3.0, 1, 1 };

	return step->cell->n == 6 ? by_round[step->round] : 1.0;
}

/* Cell n = 6 is slower in every round from 2 on, by a different factor each time. */
static double drifting(const struct run_loop_step *step)
{
	static const double by_round[] = { 1, 1, 2.0, 3.0, 1.6, 2.5 };

	return step->cell->n == 6 ? by_round[step->round] : 1.0;
}

/* Runs cells of sizes n (cell 0 untimed) in three rounds, visits slowed by factor. */
static void run_three_rounds(struct run_loop *rl, struct seen *seen, struct cell *cells,
			     const int *n, size_t count,
			     double (*factor)(const struct run_loop_step *step))
{
	char why[512];

	make_timed_cells(cells, n, count);
	begin(rl, cells, count, 1, seen);
	seen->factor = factor;
	rl->rounds = 3;
	assert_int_equal(run_loop_run(rl, why, sizeof(why)), 0);
}

/* The round metrics of the stored cell id. */
static void assert_rounds(struct store *s, int64_t id, int rounds, double spread,
			  double majority, int unstable)
{
	assert_float_equal(metric(s, id, "rounds"), rounds, 0);
	assert_float_equal(metric(s, id, "latency_round_spread"), spread, 1e-12);
	assert_float_equal(metric(s, id, "latency_majority_spread"), majority, 1e-12);
	assert_float_equal(metric(s, id, "unstable"), unstable, 0);
}

/*
 * One disturbed round is outvoted: no extra round, the pooled median is the quiet one
 * (four of six samples), the spread says what happened, and the cell is not unstable.
 */
static void test_run_loop_outvotes_one_disturbed_round(void **state)
{
	static const int n[] = { 4, 5, 6, 7 };
	struct cell cells[4];
	struct run_loop rl;
	struct seen seen;
	int64_t id;

	(void)state;
	run_three_rounds(&rl, &seen, cells, n, 4, burst_in_round_2);
	assert_int_equal(seen.n_starts, 1 + 9);
	id = cell_of(rl.store, rl.runs[0], 6);
	assert_rounds(rl.store, id, 3, 2.0, 1.0, 0);
	assert_float_equal(metric(rl.store, id, "latency_median"), 6e-3, 1e-12);
	store_close(rl.store);
}

/*
 * Rounds with no majority in agreement are measured again, for that cell only, in extra
 * rounds: once a majority agrees, the pooled median is the quiet one and the cell is not
 * unstable.
 */
static void test_run_loop_measures_a_disturbed_cell_again(void **state)
{
	static const int n[] = { 4, 5, 6, 7 };
	struct cell cells[4];
	struct run_loop rl;
	struct seen seen;
	int64_t id;

	(void)state;
	run_three_rounds(&rl, &seen, cells, n, 4, bursts_in_rounds_2_and_3);

	/* 1 untimed, 3 x 3 timed, then rounds 4 and 5 for n = 6 alone */
	assert_int_equal(seen.n_starts, 1 + 9 + ROUNDS_MAX_EXTRA);
	for (int k = 0; k < ROUNDS_MAX_EXTRA; k++) {
		assert_int_equal(seen.starts[10 + k].cell->n, 6);
		assert_int_equal(seen.starts[10 + k].round, 4 + k);
	}
	assert_int_equal(seen.starts[10 + ROUNDS_MAX_EXTRA - 1].total, 1 + 9 + ROUNDS_MAX_EXTRA);
	id = cell_of(rl.store, rl.runs[0], 6);
	assert_rounds(rl.store, id, 3 + ROUNDS_MAX_EXTRA, 3.0, 1.0, 0);
	assert_float_equal(metric(rl.store, id, "latency_median"), 6e-3, 1e-12);
	assert_float_equal(cell_query(rl.store, "SELECT count(*) FROM samples WHERE cell_id = "
				      "?1", id), 2 * (3 + ROUNDS_MAX_EXTRA), 0);
	/* its neighbours were measured three times only */
	assert_float_equal(metric(rl.store, cell_of(rl.store, rl.runs[0], 5), "rounds"), 3, 0);
	store_close(rl.store);
}

/* Rounds that never agree, even after the extra ones, mark the cell unstable. */
static void test_run_loop_marks_a_cell_whose_rounds_never_agree(void **state)
{
	static const int n[] = { 4, 5, 6 };
	struct cell cells[3];
	struct run_loop rl;
	struct seen seen;
	int64_t id;

	(void)state;
	run_three_rounds(&rl, &seen, cells, n, 3, drifting);
	id = cell_of(rl.store, rl.runs[0], 6);
	assert_rounds(rl.store, id, 5, 3.0, 1.5, 1);
	assert_float_equal(cell_query(rl.store, "SELECT unstable FROM results WHERE cell_id = ?1",
				      id), 1, 0);
	assert_float_equal(metric(rl.store, cell_of(rl.store, rl.runs[0], 5), "unstable"), 0,
			   0);
	store_close(rl.store);
}

static bool crash_in_round_2(const struct run_loop_step *step)
{
	return step->cell->n == 5 && step->round == 2;
}

/* A crash in a later round makes the cell crashed, says the round, keeps the samples. */
static void test_run_loop_a_crash_in_a_later_round_is_the_cells(void **state)
{
	static const int n[] = { 4, 5, 6 };
	struct cell cells[3];
	struct run_loop rl;
	struct seen seen;
	char why[512];
	int64_t id;
	int visits = 0;

	(void)state;
	make_timed_cells(cells, n, 3);
	begin(&rl, cells, 3, 1, &seen);
	seen.crashes = crash_in_round_2;
	rl.rounds = 3;
	assert_int_equal(run_loop_run(&rl, why, sizeof(why)), 0);
	for (int i = 0; i < seen.n_starts; i++)
		visits += seen.starts[i].cell->n == 5;
	assert_int_equal(visits, 2);	/* not visited again after the crash */
	assert_int_equal(rl.by_status[CELL_CRASHED], 1);
	assert_int_equal(rl.by_status[CELL_OK], 2);
	id = cell_of(rl.store, rl.runs[0], 5);
	assert_float_equal(cell_query(rl.store, "SELECT status = 'crashed' AND reason LIKE "
				      "'round 2: killed by signal%' FROM cells WHERE id = ?1", id),
			   1, 0);
	assert_float_equal(cell_query(rl.store, "SELECT count(*) FROM samples WHERE cell_id = "
				      "?1", id), 2, 0);
	store_close(rl.store);
}

/* Interrupted in round 2: what round 1 stored stays, and says it is one round. */
static void test_run_loop_interrupted_between_rounds_keeps_the_first(void **state)
{
	static const int n[] = { 4, 5, 6 };
	struct cell cells[3];
	struct run_loop rl;
	struct seen seen;
	char why[512];

	(void)state;
	make_timed_cells(cells, n, 3);
	begin(&rl, cells, 3, 1, &seen);
	rl.rounds = 3;
	seen.interrupt_at = 1 + 2 + 1;	/* the second visit of round 2 */
	run_loop_catch_signals(&rl);
	assert_int_equal(run_loop_run(&rl, why, sizeof(why)), 0);
	run_loop_restore_signals(&rl);
	assert_int_equal(seen.n_starts, 5);
	assert_int_equal(rl.done, 3);
	for (int i = 1; i < 3; i++) {
		int64_t id = cell_of(rl.store, rl.runs[0], n[i]);
		bool second_visited = seen.starts[3].cell->n == n[i];

		assert_float_equal(metric(rl.store, id, "rounds"), second_visited ? 2 : 1, 0);
	}
	store_close(rl.store);
}

static void test_run_loop_default_mem_limit_leaves_room(void **state)
{
	size_t limit = run_loop_default_mem_limit();

	(void)state;
	/* Linux reports its RAM, so there is a limit, below all of it */
	assert_true(limit > 0);
	assert_true(limit < (size_t)sysconf(_SC_PHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_run_loop_interleaves_cells_into_two_runs),
		cmocka_unit_test(test_run_loop_stores_and_counts_broken_cells),
		cmocka_unit_test(test_run_loop_goes_on_past_every_fault),
		cmocka_unit_test(test_run_loop_cells_failed_is_any_status_but_ok_and_unsupported),
		cmocka_unit_test(test_run_loop_interrupted_keeps_finished_cells),
		cmocka_unit_test(test_run_loop_reports_a_result_it_cannot_store),
		cmocka_unit_test(test_run_loop_runs_untimed_cells_side_by_side_with_jobs),
		cmocka_unit_test(test_run_loop_runs_a_cell_out_of_time_beside_others_again_alone),
		cmocka_unit_test(test_run_loop_runs_a_cell_out_of_memory_beside_others_again_alone),
		cmocka_unit_test(test_run_loop_points_cells_at_one_reference_cache),
		cmocka_unit_test(test_run_loop_default_mem_limit_leaves_room),
		cmocka_unit_test(test_rounds_order_is_a_seeded_permutation_per_round),
		cmocka_unit_test(test_rounds_spreads),
		cmocka_unit_test(test_run_loop_measures_timed_cells_in_interleaved_rounds),
		cmocka_unit_test(test_run_loop_outvotes_one_disturbed_round),
		cmocka_unit_test(test_run_loop_measures_a_disturbed_cell_again),
		cmocka_unit_test(test_run_loop_marks_a_cell_whose_rounds_never_agree),
		cmocka_unit_test(test_run_loop_a_crash_in_a_later_round_is_the_cells),
		cmocka_unit_test(test_run_loop_interrupted_between_rounds_keeps_the_first),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
