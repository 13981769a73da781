/*
 * merge.h - whole attnbench databases into one: every run of the inputs, with its
 * provenance, cells, metrics, samples, trials and run metrics, gets new ids in the
 * output. A run whose identity (started, hostname, command) is already in the output
 * or in another input is refused, and then nothing is written; so are two runs of one
 * shard of a suite, or shards of one suite cut in two ways (run --shard, shard.h).
 */
#ifndef ATTNBENCH_MERGE_H
#define ATTNBENCH_MERGE_H

#include <stdint.h>

#include "store.h"

/*
 * Checks, without writing anything, that the databases at inputs[0..n) can be merged
 * into out_path (which may not exist yet): each input is an attnbench database of this
 * schema version or older, every row of every input table holds what import would
 * accept (validate.h), no run identity occurs twice among the output's runs and the
 * inputs', nor a shard of a suite, and a suite's shards are cut one way. Returns 0;
 * -ENOENT for a missing input; -EPROTO for a file that is not SQLite, not an attnbench
 * database or newer; -EINVAL for a refused row (why names input, table, row, column and
 * what it accepts), an input that is the output under any name (the same device and
 * inode) or shard counts that differ; -EEXIST for a duplicate run or shard; -EIO for
 * SQLite trouble.
 */
int merge_check(const char *out_path, const char *const *inputs, int n,
		char *why, size_t why_len);

/*
 * Copies every run of inputs[0..n), with its cells, metrics, samples, trials and run
 * metrics and new ids, into the open database db (ATTACH read-only, INSERT ... SELECT).
 * Inputs are attached up to SQLite's limit of attached databases at once, each group in
 * one transaction; if a later group fails, the runs added by earlier ones are deleted
 * again. Needs URI filenames enabled (sqlite3_config(SQLITE_CONFIG_URI, 1) before the
 * connection was opened, or a library built with SQLITE_USE_URI). runs and cells get
 * the numbers copied. Every row of a group's inputs is checked again inside its
 * transaction before any is copied. Returns 0; -EINVAL for a refused row and -EEXIST for
 * a duplicate run (both re-checked in the transaction); -EIO for SQLite trouble.
 */
int merge_databases(sqlite3 *db, const char *const *inputs, int n, int64_t *runs,
		    int64_t *cells, char *why, size_t why_len);

/*
 * Makes the shards of each suite (run --shard) that are all in db, each once and finished,
 * one run: a new run with the first shard's provenance (times spanning all, status failed
 * if one failed, hosts, CPU models and warnings listed, the mean SGEMM rate, no command
 * line to resume), every shard's times and machine in the table shards, their cells moved
 * to it with their shard, plugins and inputs with them; the shard runs are deleted. One
 * transaction. what gets a line per suite made one. Returns their number; -EIO with
 * SQLite's reason in why.
 */
int merge_fold_shards(sqlite3 *db, char *what, size_t len, char *why, size_t why_len);

/*
 * The suites of db whose shards (run --shard) are not all there and finished: one line
 * per such suite in what ("suite 1a2b3c4d5e6f: 14 of 16 shards, missing 3, 9,
 * unfinished 12"), as much as fits. Returns their number, or -EIO.
 */
int merge_shards_missing(sqlite3 *db, char *what, size_t len);

#endif
