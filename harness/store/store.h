/*
 * store.h - the results database (SPEC section 6): SQLite on disk, WAL, one transaction
 * per finished cell, schema versioned by PRAGMA user_version with forward migrations.
 *
 * Tables runs, cells, metrics, samples (each with its measurement round), trials
 * (per-trial outcomes), run_metrics (results about a whole run: efficiency lengths,
 * scaling slopes); the view `results` (one row per cell) is the stable contract for
 * users' queries.
 */
#ifndef ATTNBENCH_STORE_H
#define ATTNBENCH_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "provenance.h"
#include "task.h"

/* The schema version this build writes and reads. */
#define STORE_SCHEMA_VERSION 7

enum store_flags {
	STORE_READONLY = 1 << 0,	/* open an existing database for reading only */
};

struct store;

/*
 * Opens (and for writing, creates and migrates) the database at path; ":memory:" works.
 * Returns 0; -ENOENT when a read-only open finds no file; -EIO for SQLite trouble;
 * -EPROTO when the file's schema is newer than this build. why gets a one-line reason.
 */
int store_open(const char *path, int flags, struct store **out, char *why, size_t why_len);
/* Closes; accepts NULL. */
void store_close(struct store *s);
/* The connection, for read-only queries. */
sqlite3 *store_db(struct store *s);
/* The last SQLite error message. */
const char *store_errmsg(struct store *s);

/* Inserts a run with status 'running'; 0 or -EIO. */
int store_begin_run(struct store *s, const struct provenance *p, int64_t *run_id);
/* Records the machine's measured SGEMM rate for the run (GFLOP/s). */
int store_set_run_peak(struct store *s, int64_t run_id, double sgemm_gflops);
/* Records the machine's measured triad bandwidth for the run (GB/s). */
int store_set_run_bandwidth(struct store *s, int64_t run_id, double triad_gbps);
/*
 * Records the run's suite identity (shard.h) and, when shards > 0, that it runs shard
 * `shard` of them (run --shard); 0 or -EIO.
 */
int store_set_run_suite(struct store *s, int64_t run_id, const char *suite_id, int shard,
			int shards);
/* Records that the run's variant came from the plugin at path with that SHA-256 (hex). */
int store_add_plugin(struct store *s, int64_t run_id, const char *variant, const char *path,
		     const char *sha256);
/* Records tensor ("q", "k" or "v") of the run's input set name (--inputs): file, SHA-256. */
int store_add_input(struct store *s, int64_t run_id, const char *name, const char *tensor,
		    const char *path, const char *sha256);
/* Sets the final status ('complete', 'failed', 'interrupted') and end time. */
int store_finish_run(struct store *s, int64_t run_id, const char *status);

/* What the parent saw of a cell besides the task's result. */
struct cell_record {
	const struct cell *cell;
	const struct cell_result *result;
	double wall_seconds;	/* fork to reap */
	long long rss_bytes;	/* child's peak resident set; < 0 when unknown */
	const int *sample_rounds;	/* the round (from 1) of each sample; NULL: all 1 */
};

/* Writes a cell with its metrics, samples and trial outcomes in one transaction; 0 or -EIO. */
int store_add_cell(struct store *s, int64_t run_id, const struct cell_record *rec);
/*
 * As store_add_cell() when *cell_id is 0, setting it to the new cell's id; otherwise
 * replaces that cell's outcome (status, reason, wall time, resident set, finish time) and
 * all its metrics, samples and trials with rec's, in one transaction: a cell measured in
 * rounds is stored after each round. 0 or -EIO.
 */
int store_put_cell(struct store *s, int64_t run_id, const struct cell_record *rec,
		   int64_t *cell_id);

/* Formats a cell's params as a JSON object ({"window":15}) into buf; 0 or -ENOSPC. */
int store_params_json(const struct cell *c, char *buf, size_t len);

#endif
