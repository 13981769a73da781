/*
 * test-run-loop.c - the one run loop with real child processes and a store in memory:
 * cells interleaved into two runs, progress counts, broken cells stored and counted,
 * an interruption that keeps finished cells, a store that refuses a result, the
 * reference cache, and the final status of a run.
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

#include "run-loop.h"
#include "store-test.h"

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

/* What the ops saw, in order. */
#define MAX_SEEN 16

struct seen {
	struct run_loop_step starts[MAX_SEEN];
	int n_starts;
	bool stored[MAX_SEEN];
	enum cell_status status[MAX_SEEN];
	int n_done;
	size_t interrupt_at;	/* raise SIGINT as this step starts; SIZE_MAX for never */
};

static void saw_start(void *data, const struct run_loop_step *step)
{
	struct seen *s = data;

	assert_true(s->n_starts < MAX_SEEN);
	s->starts[s->n_starts++] = *step;
	if (step->index == s->interrupt_at)
		raise(SIGINT);
}

static void saw_done(void *data, const struct run_loop_step *step,
		     const struct cell_result *r, bool stored)
{
	struct seen *s = data;

	assert_true(s->n_done < MAX_SEEN);
	assert_int_equal(step->index, s->starts[s->n_starts - 1].index);
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
		cmocka_unit_test(test_run_loop_interrupted_keeps_finished_cells),
		cmocka_unit_test(test_run_loop_reports_a_result_it_cannot_store),
		cmocka_unit_test(test_run_loop_points_cells_at_one_reference_cache),
		cmocka_unit_test(test_run_loop_default_mem_limit_leaves_room),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
