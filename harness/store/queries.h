/*
 * queries.h - the questions about stored runs that several commands ask, answered once:
 * which run is the latest (A/A runs aside), whether a run exists, which runs have cells and how many, and
 * the shape a figure or a statistic of a task should take on a pattern.
 */
#ifndef ATTNBENCH_QUERIES_H
#define ATTNBENCH_QUERIES_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

/*
 * The suite name of A/A runs (compare --aa). They measure the harness's own noise, not
 * variants, so "the latest run" leaves them out everywhere; they are read with --run.
 */
#define STORE_AA_SUITE "aa"

/*
 * The newest run that is not an A/A run. Returns 0; -ENOENT when there is none; -EIO on
 * trouble.
 */
int store_latest_run(sqlite3 *db, int64_t *run);

/*
 * The newest run of suite_id that ran shard `shard` of `shards` (run --shard), into *run.
 * Returns 0; -ENOENT when there is none; -EIO on trouble.
 */
int store_find_shard(sqlite3 *db, const char *suite_id, int shard, int shards, int64_t *run);

/*
 * The machines (CPU model and threads) the shards of a run merged from shards ran on,
 * "; "-separated into list; returns how many (0 for a run that was not sharded), or -EIO.
 * More than one: its latencies compare machines as well as variants.
 */
int store_run_machines(sqlite3 *db, int64_t run, char *list, size_t len);

/* 0 when the run is in the database; -ENOENT when not; -EIO on trouble. */
int store_find_run(sqlite3 *db, int64_t run);

/*
 * The run's status ('running', 'complete', 'failed', 'interrupted') into buf. Returns 0;
 * -ENOENT when there is no such run; -EIO on trouble.
 */
int store_run_status(sqlite3 *db, int64_t run, char *buf, size_t len);

/*
 * What a run (?1) loaded from files, for list runs and report: rows of (what, path,
 * sha256), what being "plugin VARIANT" or "input NAME.q" (.k, .v).
 */
#define STORE_LOADED_FILES_SQL \
	"SELECT 'plugin ' || variant, path, sha256 FROM plugins WHERE run_id = ?1" \
	" UNION ALL SELECT 'input ' || name || '.' || tensor, path, sha256 FROM inputs" \
	" WHERE run_id = ?1 ORDER BY 1"

/*
 * The shards a run was merged from (run --shard, then merge), one row each: shard, its
 * host, CPU model, threads, SGEMM rate, seconds from start to end, and triad bandwidth.
 */
#define STORE_SHARDS_SQL \
	"SELECT shard, hostname, cpu_model, threads, sgemm_gflops," \
	" (julianday(finished) - julianday(started)) * 86400, triad_gbps FROM shards" \
	" WHERE run_id = ?1 ORDER BY shard"

/*
 * The SHA-256 (hex) of the plugin that provided variant in run, into buf. Returns 0;
 * -ENOENT when the run had no such plugin; -EIO on trouble.
 */
int store_plugin_sha256(sqlite3 *db, int64_t run, const char *variant, char *buf, size_t len);

/* The same for tensor ("q", "k", "v") of the run's input set name; -ENOENT when none. */
int store_input_sha256(sqlite3 *db, int64_t run, const char *name, const char *tensor,
		       char *buf, size_t len);

/*
 * The runs that have cells, oldest first, in a new array (*runs, free() it; NULL when
 * *n is 0). Returns 0, -EIO or -ENOMEM.
 */
int store_runs_with_cells(sqlite3 *db, int64_t **runs, size_t *n);

/* The number of cells of the run into *n; 0 or -EIO. */
int store_count_cells(sqlite3 *db, int64_t run, int64_t *n);

/* A cell shape apart from its lengths. */
struct cell_shape {
	int d, heads, kv_heads, batch;
};

/*
 * The most common shape of the run's ok cells of task on pattern, counted in cells;
 * with with_variant, only among shapes that variant has an ok cell at (so a comparison
 * against it has both sides). Ties go to the smallest d, then heads, kv_heads, batch.
 * Returns 0; -ENODATA when no cell qualifies; -EIO on trouble.
 */
int store_common_shape(sqlite3 *db, int64_t run, const char *task, const char *pattern,
		       const char *with_variant, struct cell_shape *out);

#endif
