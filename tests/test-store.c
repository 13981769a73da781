/*
 * test-store.c - the results database: schema, migrations, round trips, the results
 * view, and paths that cannot be opened.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queries.h"
#include "store.h"
#include "store-test.h"

static char tmpdir[] = "/tmp/attnbench-store-XXXXXX";

static int make_tmpdir(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
	(void)state;
	return remove_dir(tmpdir);
}

/* A fixed provenance, so runs can be inserted without reading the machine. */
static struct cell test_cell(void)
{
	struct cell c = {
		.variant = variant_find("local"),
		.task = task_find("speed"),
		.pattern = ATTN_CS,
		.batch = 1, .heads = 8, .kv_heads = 2, .n = 1024, .m = 1024, .d = 64,
		.seed = 7, .threads = 2,
	};

	c.params[0] = 15;
	return c;
}

static double query_double(struct store *s, const char *sql)
{
	sqlite3_stmt *st;
	double x;

	assert_int_equal(sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	x = sqlite3_column_type(st, 0) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 0);
	sqlite3_finalize(st);
	return x;
}

static void test_store_roundtrips_one_result(void **state)
{
	struct cell c = test_cell();
	struct cell_result r = { 0 };
	struct cell_record rec = { &c, &r, 1.5, 123456789, NULL };
	struct provenance p;
	struct store *s;
	int64_t run;
	char why[256];
	sqlite3_stmt *st;

	(void)state;
	assert_int_equal(store_open(":memory:", 0, &s, why, sizeof(why)), 0);
	fake_provenance(&p, "x");
	assert_int_equal(store_begin_run(s, &p, &run), 0);
	provenance_release(&p);
	assert_int_equal(store_set_run_peak(s, run, 100.0), 0);

	result_metric(&r, "latency_median", 0.004, "s");
	result_metric(&r, "latency_ci_lo", 0.003, "s");
	result_metric(&r, "latency_ci_hi", 0.005, "s");
	result_metric(&r, "gflops", 40.0, "GFLOP/s");
	result_metric(&r, "peak_bytes", 4096, "B");
	for (int i = 0; i < 5; i++)
		result_sample(&r, 0.001 * (i + 1));
	assert_int_equal(store_add_cell(s, run, &rec), 0);
	assert_int_equal(store_finish_run(s, run, "complete"), 0);

	assert_int_equal(sqlite3_prepare_v2(store_db(s),
		"SELECT variant, task, pattern, n, heads, kv_heads, params, status, latency_ms,"
		" latency_lo_ms, latency_hi_ms, peak_bytes, rss_bytes, gflops, peak_fraction,"
		" accuracy, rel_err FROM results", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal(sqlite3_column_text(st, 0), "local");
	assert_string_equal(sqlite3_column_text(st, 1), "speed");
	assert_string_equal(sqlite3_column_text(st, 2), "cs");
	assert_int_equal(sqlite3_column_int(st, 3), 1024);
	assert_int_equal(sqlite3_column_int(st, 4), 8);
	assert_int_equal(sqlite3_column_int(st, 5), 2);
	assert_string_equal(sqlite3_column_text(st, 6), "{\"window\":15}");
	assert_string_equal(sqlite3_column_text(st, 7), "ok");
	assert_float_equal(sqlite3_column_double(st, 8), 4.0, 1e-12);
	assert_float_equal(sqlite3_column_double(st, 9), 3.0, 1e-12);
	assert_float_equal(sqlite3_column_double(st, 10), 5.0, 1e-12);
	assert_int_equal(sqlite3_column_int64(st, 11), 4096);
	assert_int_equal(sqlite3_column_int64(st, 12), 123456789);
	assert_float_equal(sqlite3_column_double(st, 13), 40.0, 1e-12);
	assert_float_equal(sqlite3_column_double(st, 14), 0.4, 1e-12);
	assert_int_equal(sqlite3_column_type(st, 15), SQLITE_NULL);	/* no accuracy */
	assert_int_equal(sqlite3_column_type(st, 16), SQLITE_NULL);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);

	assert_float_equal(query_double(s, "SELECT count(*) FROM samples"), 5, 0);
	assert_float_equal(query_double(s, "SELECT sum(seconds) FROM samples"), 0.015, 1e-15);
	assert_float_equal(query_double(s, "SELECT json_extract(params, '$.window') FROM cells"),
			   15, 0);
	result_release(&r);
	store_close(s);
}

static void test_store_roundtrips_trial_outcomes_in_order(void **state)
{
	static const unsigned char outcomes[] = { 1, 0, 0, 1, 1, 1, 0, 1, 0, 0, 1 };
	size_t count = sizeof(outcomes);
	struct cell c = test_cell();
	struct cell_result r = { 0 }, other = { 0 };
	struct cell_record rec = { &c, &r, 0.5, -1, NULL }, rec2 = { &c, &other, 0.5, -1, NULL };
	struct provenance p;
	struct store *s;
	sqlite3_stmt *st;
	int64_t run;
	char why[256];
	size_t i = 0;

	(void)state;
	c.task = task_find("passkey");
	c.regime = "0.5";
	assert_int_equal(store_open(":memory:", 0, &s, why, sizeof(why)), 0);
	fake_provenance(&p, "x");
	assert_int_equal(store_begin_run(s, &p, &run), 0);
	provenance_release(&p);
	for (i = 0; i < count; i++)
		assert_int_equal(result_trial(&r, outcomes[i]), 0);
	result_metric(&r, "accuracy", 6.0 / 11, "");
	result_metric(&r, "trials", 11, "");
	assert_int_equal(store_add_cell(s, run, &rec), 0);
	/* a second cell's trials are its own, with indices from 0 again */
	for (i = 0; i < 3; i++)
		assert_int_equal(result_trial(&other, true), 0);
	assert_int_equal(store_add_cell(s, run, &rec2), 0);

	assert_int_equal(sqlite3_prepare_v2(store_db(s),
		"SELECT idx, correct FROM trials WHERE cell_id = (SELECT min(id) FROM cells)"
		" ORDER BY idx", -1, &st, NULL), SQLITE_OK);
	for (i = 0; sqlite3_step(st) == SQLITE_ROW; i++) {
		assert_int_equal(sqlite3_column_int(st, 0), i);
		assert_int_equal(sqlite3_column_int(st, 1), outcomes[i]);
	}
	sqlite3_finalize(st);
	assert_int_equal(i, count);
	assert_float_equal(query_double(s, "SELECT count(*) FROM trials"), 14, 0);
	assert_float_equal(query_double(s, "SELECT sum(correct) FROM trials WHERE cell_id = "
				       "(SELECT max(id) FROM cells)"), 3, 0);
	/* the accuracy metric and the outcomes tell the same story */
	assert_float_equal(query_double(s, "SELECT r.accuracy * r.trials - sum(t.correct) FROM "
				       "results r JOIN trials t USING (cell_id) "
				       "WHERE r.cell_id = 1"), 0, 1e-9);
	result_release(&r);
	result_release(&other);
	store_close(s);
}

static void test_store_keeps_results_across_reopen_in_wal_mode(void **state)
{
	struct cell c = test_cell();
	struct cell_result r = { .status = CELL_CRASHED };
	struct cell_record rec = { &c, &r, 0.1, -1, NULL };
	struct provenance p;
	struct store *s;
	char path[256], why[256];
	int64_t run;

	(void)state;
	snprintf(path, sizeof(path), "%s/keep.db", tmpdir);
	snprintf(r.reason, sizeof(r.reason), "killed by signal 11");
	assert_int_equal(store_open(path, 0, &s, why, sizeof(why)), 0);
	fake_provenance(&p, "x");
	assert_int_equal(store_begin_run(s, &p, &run), 0);
	provenance_release(&p);
	assert_int_equal(store_add_cell(s, run, &rec), 0);
	store_close(s);

	assert_int_equal(store_open(path, STORE_READONLY, &s, why, sizeof(why)), 0);
	assert_float_equal(query_double(s, "SELECT count(*) FROM results WHERE status = "
				       "'crashed' AND reason = 'killed by signal 11' AND rss_bytes IS NULL"),
			   1, 0);
	assert_float_equal(query_double(s, "PRAGMA user_version"), STORE_SCHEMA_VERSION, 0);
	store_close(s);

	assert_int_equal(store_open(path, 0, &s, why, sizeof(why)), 0);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(store_db(s), "PRAGMA journal_mode", -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal(sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	store_close(s);
}

static void test_store_refuses_paths_it_cannot_open(void **state)
{
	struct store *s;
	char why[256] = "";

	(void)state;
	assert_int_equal(store_open("/nonexistent-dir/x/results.db", 0, &s, why, sizeof(why)),
			 -EIO);
	assert_null(s);
	assert_true(strlen(why) > 0);
	assert_int_equal(store_open("/nonexistent-dir/results.db", STORE_READONLY, &s, why,
				    sizeof(why)), -ENOENT);
}

static void test_store_refuses_a_newer_schema_and_foreign_files(void **state)
{
	char path[256], why[256];
	struct store *s;
	sqlite3 *db;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/future.db", tmpdir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), 0);
	sqlite3_close(db);
	assert_int_equal(store_open(path, 0, &s, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "99"));

	snprintf(path, sizeof(path), "%s/text.db", tmpdir);
	f = fopen(path, "w");
	fputs("this is not a database, just some text that is long enough\n", f);
	fclose(f);
	assert_int_not_equal(store_open(path, 0, &s, why, sizeof(why)), 0);
	assert_int_not_equal(store_open(path, STORE_READONLY, &s, why, sizeof(why)), 0);
}

static void test_store_migrates_an_empty_file_to_the_current_version(void **state)
{
	char path[256], why[256];
	struct store *s;

	(void)state;
	snprintf(path, sizeof(path), "%s/empty.db", tmpdir);
	fclose(fopen(path, "w"));
	/* read-only refuses to migrate */
	assert_int_equal(store_open(path, STORE_READONLY, &s, why, sizeof(why)), -EPROTO);
	assert_int_equal(store_open(path, 0, &s, why, sizeof(why)), 0);
	assert_float_equal(query_double(s, "PRAGMA user_version"), STORE_SCHEMA_VERSION, 0);
	assert_float_equal(query_double(s, "SELECT count(*) FROM sqlite_master WHERE name IN "
				       "('runs', 'cells', 'metrics', 'samples', 'results', "
				       "'trials', 'run_metrics')"), 7, 0);
	store_close(s);
}

/*
 * Back to version 2 by hand: the columns and the view versions 3 and 4 added, taken out
 * (version 4's CHECK on cells.status stays: it only allows one status more).
 */
/* Back to version 6: the triad bandwidth of runs and shards gone, and the view reading it. */
#define UNDO_VERSION_7 \
	"DROP VIEW results;" \
	"ALTER TABLE shards DROP COLUMN triad_gbps;" \
	"ALTER TABLE runs DROP COLUMN triad_gbps;" \
	"CREATE VIEW results AS SELECT c.id AS cell_id FROM cells c;"

/* Back to version 5: the suite identity of runs and the shards of cells gone. */
#define UNDO_VERSION_6 \
	UNDO_VERSION_7 \
	"DROP VIEW results;" \
	"DROP TABLE shards;" \
	"ALTER TABLE cells DROP COLUMN shard;" \
	"CREATE VIEW results AS SELECT c.id AS cell_id FROM cells c;" \
	"ALTER TABLE runs DROP COLUMN suite_id;" \
	"ALTER TABLE runs DROP COLUMN shard;" \
	"ALTER TABLE runs DROP COLUMN shards;"

/* Back to version 4: the tables version 5 added gone, and its view (which reads them). */
#define UNDO_VERSION_5 \
	UNDO_VERSION_6 \
	"DROP VIEW results;" \
	"CREATE VIEW results AS SELECT c.id AS cell_id FROM cells c;" \
	"DROP TABLE plugins;" \
	"DROP TABLE inputs;"

#define UNDO_VERSION_3 \
	UNDO_VERSION_5 \
	"ALTER TABLE runs DROP COLUMN driver;" \
	"ALTER TABLE runs DROP COLUMN arguments;" \
	"DROP VIEW results;" \
	"ALTER TABLE samples DROP COLUMN round;" \
	"ALTER TABLE runs DROP COLUMN rounds;" \
	"ALTER TABLE runs DROP COLUMN omp_wait_policy;" \
	"CREATE VIEW results AS SELECT c.id AS cell_id FROM cells c;"

/* A version 1 file (no trials, no run_metrics) gains them and keeps its runs. */
static void test_store_migrates_version_1_keeping_its_data(void **state)
{
	char path[256], why[256];
	struct store *s;

	(void)state;
	snprintf(path, sizeof(path), "%s/v1.db", tmpdir);
	assert_int_equal(store_open(path, 0, &s, why, sizeof(why)), 0);
	assert_int_equal(sqlite3_exec(store_db(s),
		UNDO_VERSION_3
		"INSERT INTO runs (started, status) VALUES ('then', 'complete');"
		"DROP TABLE trials; DROP TABLE run_metrics; PRAGMA user_version = 1",
		NULL, NULL, NULL), SQLITE_OK);
	store_close(s);
	assert_int_equal(store_open(path, 0, &s, why, sizeof(why)), 0);
	assert_float_equal(query_double(s, "PRAGMA user_version"), STORE_SCHEMA_VERSION, 0);
	assert_float_equal(query_double(s, "SELECT count(*) FROM runs WHERE started = 'then'"),
			   1, 0);
	assert_float_equal(query_double(s, "SELECT count(*) FROM trials"), 0, 0);
	assert_float_equal(query_double(s, "SELECT count(*) FROM run_metrics"), 0, 0);
	store_close(s);
}

/*
 * A version 2 file (samples without rounds) gains the rounds: its samples were one round
 * each, its runs say nothing of rounds, and the view gains the round columns.
 */
static void test_store_migrates_version_2_to_rounds(void **state)
{
	char path[256], why[256];
	struct store *s;

	(void)state;
	snprintf(path, sizeof(path), "%s/v2.db", tmpdir);
	assert_int_equal(store_open(path, 0, &s, why, sizeof(why)), 0);
	assert_int_equal(sqlite3_exec(store_db(s),
		UNDO_VERSION_3
		"INSERT INTO runs (id, started, status) VALUES (7, 'then', 'complete');"
		"INSERT INTO cells (id, run_id, variant, task, pattern, n, m, d, heads, kv_heads,"
		" batch, params, seed, threads, status, finished) VALUES (9, 7, 'vanilla',"
		" 'speed', 'ns', 8, 8, 4, 1, 1, 1, '{}', 0, 1, 'ok', 'then');"
		"INSERT INTO samples (cell_id, idx, seconds) VALUES (9, 0, 0.5), (9, 1, 0.25);"
		"PRAGMA user_version = 2", NULL, NULL, NULL), SQLITE_OK);
	store_close(s);
	assert_int_equal(store_open(path, 0, &s, why, sizeof(why)), 0);
	assert_float_equal(query_double(s, "PRAGMA user_version"), STORE_SCHEMA_VERSION, 0);
	assert_float_equal(query_double(s, "SELECT sum(round) FROM samples WHERE cell_id = 9"),
			   2, 0);
	assert_float_equal(query_double(s, "SELECT sum(seconds) FROM samples"), 0.75, 0);
	assert_float_equal(query_double(s, "SELECT count(*) FROM runs WHERE rounds IS NULL"
				       " AND omp_wait_policy IS NULL"), 1, 0);
	assert_float_equal(query_double(s, "SELECT count(*) FROM results WHERE cell_id = 9"
				       " AND unstable IS NULL AND rounds IS NULL"
				       " AND latency_round_spread IS NULL"), 1, 0);
	store_close(s);
}

/*
 * A version 3 file gains the driver column and the corrupt status: cells is rebuilt, and
 * its metrics and samples, which point at it, stay.
 */
static void test_store_migrates_version_3_keeping_cells_and_their_rows(void **state)
{
	char path[256], why[256];
	struct store *s;

	(void)state;
	snprintf(path, sizeof(path), "%s/v3.db", tmpdir);
	assert_int_equal(store_open(path, 0, &s, why, sizeof(why)), 0);
	assert_int_equal(sqlite3_exec(store_db(s),
		UNDO_VERSION_5
		"ALTER TABLE runs DROP COLUMN driver;"
		"ALTER TABLE runs DROP COLUMN arguments;"
		"INSERT INTO runs (id, started, status) VALUES (7, 'then', 'complete');"
		"INSERT INTO cells (id, run_id, variant, task, pattern, n, m, d, heads, kv_heads,"
		" batch, params, seed, threads, status, finished) VALUES (9, 7, 'vanilla',"
		" 'speed', 'ns', 8, 8, 4, 1, 1, 1, '{}', 0, 1, 'ok', 'then');"
		"INSERT INTO metrics VALUES (9, 'latency_median', 0.25, 's');"
		"INSERT INTO samples (cell_id, idx, seconds, round) VALUES (9, 0, 0.25, 2);"
		"PRAGMA user_version = 3", NULL, NULL, NULL), SQLITE_OK);
	store_close(s);
	assert_int_equal(store_open(path, 0, &s, why, sizeof(why)), 0);
	assert_float_equal(query_double(s, "PRAGMA user_version"), STORE_SCHEMA_VERSION, 0);
	assert_float_equal(query_double(s, "SELECT count(*) FROM runs WHERE driver IS NULL"), 1,
			   0);
	assert_float_equal(query_double(s, "SELECT latency_ms FROM results WHERE cell_id = 9"),
			   250, 1e-9);
	assert_float_equal(query_double(s, "SELECT round FROM samples WHERE cell_id = 9"), 2, 0);
	assert_float_equal(query_double(s, "SELECT count(*) FROM pragma_foreign_key_check"), 0,
			   0);
	/* the new status is accepted, an unknown one still refused */
	assert_int_equal(sqlite3_exec(store_db(s), "UPDATE cells SET status = 'corrupt'", NULL,
				      NULL, NULL), SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(store_db(s), "UPDATE cells SET status = 'odd'", NULL,
					  NULL, NULL), SQLITE_OK);
	/* foreign keys are on again: deleting the run takes its cell's rows with it */
	assert_int_equal(sqlite3_exec(store_db(s), "DELETE FROM runs WHERE id = 7", NULL, NULL,
				      NULL), SQLITE_OK);
	assert_float_equal(query_double(s, "SELECT count(*) FROM samples"), 0, 0);
	store_close(s);
}

/*
 * A version 4 file gains the tables of what runs load (plugins, inputs) and the view its
 * plugin columns; its cells stay, with the new columns NULL.
 */
static void test_store_migrates_version_4_to_loaded_files(void **state)
{
	char path[256], why[256];
	struct store *s;

	(void)state;
	snprintf(path, sizeof(path), "%s/v4.db", tmpdir);
	assert_int_equal(store_open(path, 0, &s, why, sizeof(why)), 0);
	assert_int_equal(sqlite3_exec(store_db(s),
		UNDO_VERSION_5
		"INSERT INTO runs (id, started, status) VALUES (7, 'then', 'complete');"
		"INSERT INTO cells (id, run_id, variant, task, pattern, n, m, d, heads, kv_heads,"
		" batch, params, seed, threads, status, finished) VALUES (9, 7, 'vanilla',"
		" 'speed', 'ns', 8, 8, 4, 1, 1, 1, '{}', 0, 1, 'ok', 'then');"
		"PRAGMA user_version = 4", NULL, NULL, NULL), SQLITE_OK);
	store_close(s);
	assert_int_equal(store_open(path, 0, &s, why, sizeof(why)), 0);
	assert_float_equal(query_double(s, "PRAGMA user_version"), STORE_SCHEMA_VERSION, 0);
	assert_float_equal(query_double(s, "SELECT count(*) FROM results WHERE cell_id = 9 AND"
					" plugin_path IS NULL AND plugin_sha256 IS NULL"), 1, 0);
	assert_int_equal(store_add_plugin(s, 7, "mine", "/x/libmine.so", "ab12"), 0);
	assert_int_equal(store_add_input(s, 7, "layer0", "q", "/x/q.npy", "cd34"), 0);
	assert_int_not_equal(store_add_input(s, 7, "layer0", "w", "/x/w.npy", "ef56"), 0);
	assert_float_equal(query_double(s, "SELECT count(*) FROM plugins"), 1, 0);
	/* the run's rows go with it */
	assert_int_equal(sqlite3_exec(store_db(s), "DELETE FROM runs WHERE id = 7", NULL, NULL,
				      NULL), SQLITE_OK);
	assert_float_equal(query_double(s, "SELECT count(*) FROM plugins"), 0, 0);
	assert_float_equal(query_double(s, "SELECT count(*) FROM inputs"), 0, 0);
	store_close(s);
}

/* A version 5 file gains the suite identity of runs: empty for its runs, then settable. */
static void test_store_migrates_version_5_to_suite_identity(void **state)
{
	char path[256], why[256];
	struct store *s;
	int64_t run = 0;

	(void)state;
	snprintf(path, sizeof(path), "%s/v5.db", tmpdir);
	assert_int_equal(store_open(path, 0, &s, why, sizeof(why)), 0);
	assert_int_equal(sqlite3_exec(store_db(s),
		UNDO_VERSION_6
		"INSERT INTO runs (id, started, status) VALUES (7, 'then', 'complete');"
		"PRAGMA user_version = 5", NULL, NULL, NULL), SQLITE_OK);
	store_close(s);
	assert_int_equal(store_open(path, 0, &s, why, sizeof(why)), 0);
	assert_float_equal(query_double(s, "PRAGMA user_version"), STORE_SCHEMA_VERSION, 0);
	assert_float_equal(query_double(s, "SELECT count(*) FROM runs WHERE id = 7 AND"
					" suite_id IS NULL AND shard IS NULL"), 1, 0);
	assert_int_equal(store_find_shard(store_db(s), "ab12", 2, 4, &run), -ENOENT);
	assert_int_equal(store_set_run_suite(s, 7, "ab12", 2, 4), 0);
	assert_int_equal(store_find_shard(store_db(s), "ab12", 2, 4, &run), 0);
	assert_int_equal(run, 7);
	assert_int_equal(store_find_shard(store_db(s), "ab12", 1, 4, &run), -ENOENT);
	/* unsharded: the identity alone */
	assert_int_equal(store_set_run_suite(s, 7, "ab12", 0, 0), 0);
	assert_float_equal(query_double(s, "SELECT count(*) FROM runs WHERE suite_id = 'ab12'"
					" AND shard IS NULL AND shards IS NULL"), 1, 0);
	store_close(s);
}

/*
 * A version 6 file gains the triad bandwidth of runs and shards (empty until measured)
 * and the view its memory columns: gbps and bytes as stored, intensity = flops / bytes,
 * bandwidth_fraction against the run's triad or, for a cell of a shard, the shard's.
 */
static void test_store_migrates_version_6_to_the_triad_bandwidth(void **state)
{
	static const char *const added[] = { "gbps", "bandwidth_fraction", "bytes", "intensity" };
	char path[256], why[256], sql[160];
	struct store *s;
	int columns;

	(void)state;
	snprintf(path, sizeof(path), "%s/v6.db", tmpdir);
	assert_int_equal(store_open(path, 0, &s, why, sizeof(why)), 0);
	columns = (int)query_double(s, "SELECT count(*) FROM pragma_table_info('results')");
	assert_int_equal(sqlite3_exec(store_db(s),
		UNDO_VERSION_7
		"INSERT INTO runs (id, started, status, sgemm_gflops) VALUES"
		" (7, 'then', 'complete', 200);"
		"INSERT INTO shards (run_id, shard, sgemm_gflops) VALUES (7, 2, 100);"
		"INSERT INTO cells (id, run_id, variant, task, pattern, n, m, d, heads, kv_heads,"
		" batch, params, seed, threads, status, finished, shard) VALUES"
		" (9, 7, 'vanilla', 'decode', 'cs', 8, 8, 4, 1, 1, 1, '{}', 0, 1, 'ok', 'then', NULL),"
		" (10, 7, 'vanilla', 'speed', 'ns', 8, 8, 4, 1, 1, 1, '{}', 0, 1, 'ok', 'then', NULL),"
		" (11, 7, 'vanilla', 'decode', 'cs', 16, 16, 4, 1, 1, 1, '{}', 0, 1, 'ok', 'then', 2);"
		"INSERT INTO metrics VALUES (9, 'gbps', 5, 'GB/s'), (9, 'bytes', 1e6, 'B'),"
		" (10, 'flops', 4e6, 'FLOP'), (10, 'bytes', 1e6, 'B'), (10, 'gflops', 50, 'GFLOP/s'),"
		" (11, 'gbps', 6, 'GB/s');"
		"PRAGMA user_version = 6", NULL, NULL, NULL), SQLITE_OK);
	store_close(s);
	assert_int_equal(store_open(path, 0, &s, why, sizeof(why)), 0);
	assert_float_equal(query_double(s, "PRAGMA user_version"), STORE_SCHEMA_VERSION, 0);
	assert_float_equal(query_double(s, "SELECT count(*) FROM runs WHERE id = 7 AND"
					" triad_gbps IS NULL"), 1, 0);
	assert_float_equal(query_double(s, "SELECT count(*) FROM shards WHERE triad_gbps IS NULL"),
			   1, 0);
	/* the view's columns: all the old ones, in their places, then the four new ones */
	assert_float_equal(query_double(s, "SELECT count(*) FROM pragma_table_info('results')"),
			   columns, 0);
	for (int i = 0; i < 4; i++) {
		snprintf(sql, sizeof(sql), "SELECT cid FROM pragma_table_info('results')"
			 " WHERE name = '%s'", added[i]);
		assert_float_equal(query_double(s, sql), columns - 4 + i, 0);
	}
	assert_float_equal(query_double(s, "SELECT cid FROM pragma_table_info('results')"
					" WHERE name = 'shard'"), columns - 5, 0);
	/* computed from the metrics; no bandwidth measured yet: no fraction */
	assert_float_equal(query_double(s, "SELECT gbps FROM results WHERE cell_id = 9"), 5, 0);
	assert_float_equal(query_double(s, "SELECT bytes FROM results WHERE cell_id = 9"), 1e6, 0);
	assert_float_equal(query_double(s, "SELECT intensity FROM results WHERE cell_id = 10"), 4,
			   0);
	assert_float_equal(query_double(s, "SELECT peak_fraction FROM results WHERE cell_id = 10"),
			   0.25, 0);
	assert_float_equal(query_double(s, "SELECT count(*) FROM results WHERE"
					" bandwidth_fraction IS NOT NULL OR (cell_id = 9 AND"
					" intensity IS NOT NULL)"), 0, 0);
	/* the run's triad, and the shard's for the cell that shard ran */
	assert_int_equal(store_set_run_bandwidth(s, 7, 20), 0);
	assert_int_equal(sqlite3_exec(store_db(s), "UPDATE shards SET triad_gbps = 30", NULL,
				      NULL, NULL), SQLITE_OK);
	assert_float_equal(query_double(s, "SELECT bandwidth_fraction FROM results"
					" WHERE cell_id = 9"), 0.25, 1e-12);
	assert_float_equal(query_double(s, "SELECT bandwidth_fraction FROM results"
					" WHERE cell_id = 11"), 0.2, 1e-12);
	store_close(s);
}

static void test_params_json_lists_every_declared_param(void **state)
{
	struct cell c = test_cell();
	char buf[64], tiny[8];

	(void)state;
	c.variant = variant_find("flash");
	c.params[0] = 32;
	c.params[1] = 128;
	assert_int_equal(store_params_json(&c, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "{\"block_q\":32,\"block_k\":128}");
	assert_int_equal(store_params_json(&c, tiny, sizeof(tiny)), -ENOSPC);
	c.variant = variant_find("vanilla");
	assert_int_equal(store_params_json(&c, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "{}");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_store_roundtrips_one_result),
		cmocka_unit_test(test_store_roundtrips_trial_outcomes_in_order),
		cmocka_unit_test(test_store_keeps_results_across_reopen_in_wal_mode),
		cmocka_unit_test(test_store_refuses_paths_it_cannot_open),
		cmocka_unit_test(test_store_refuses_a_newer_schema_and_foreign_files),
		cmocka_unit_test(test_store_migrates_an_empty_file_to_the_current_version),
		cmocka_unit_test(test_store_migrates_version_1_keeping_its_data),
		cmocka_unit_test(test_store_migrates_version_2_to_rounds),
		cmocka_unit_test(test_store_migrates_version_3_keeping_cells_and_their_rows),
		cmocka_unit_test(test_store_migrates_version_4_to_loaded_files),
		cmocka_unit_test(test_store_migrates_version_5_to_suite_identity),
		cmocka_unit_test(test_store_migrates_version_6_to_the_triad_bandwidth),
		cmocka_unit_test(test_params_json_lists_every_declared_param),
	};

	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
