/*
 * validate.h - what a stored row may hold, private to the io room: the one check of a
 * value against its column's kind (csv-format.h) that import applies to every field of a
 * CSV file and merge to every row of an input database, so that nothing reaches the store
 * by one door that the other would refuse.
 */
#ifndef ATTNBENCH_VALIDATE_H
#define ATTNBENCH_VALIDATE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "csv-format.h"

/* A value as SQLite holds it: its type and the part that type uses (s is not owned). */
struct stored_value {
	int type;		/* SQLITE_NULL, _INTEGER, _FLOAT, _TEXT or _BLOB */
	int64_t i;
	double r;
	const char *s;
	size_t len;
};

/* The scratch :memory: SQLite that reads JSON and dates for the checks. */
struct validator;

/* Opens a validator into *out. Returns 0, -ENOMEM or -EIO. */
int validator_open(struct validator **out);
/* Closes it; accepts NULL. */
void validator_free(struct validator *v);
/* The scratch database, for callers' own JSON reading (run_metrics of a CSV file). */
sqlite3 *validator_scratch(struct validator *v);
/*
 * Runs a statement prepared on the scratch connection with text bound to ?1 (e.g. a JSON
 * check); its integer result, or -1.
 */
int validate_scratch_check(sqlite3_stmt *st, const char *text, size_t len);

/*
 * Checks value x of column c: NULL only where c is not required; text kinds only as
 * text, valid UTF-8 without NUL bytes, and what the kind accepts (csv-format.h); whole
 * numbers only as integers in the kind's range; other numbers as integers or reals.
 * Returns 0, or -EINVAL with why saying what is wrong and what is accepted, without the
 * place (the caller names file, row and column); -EIO when the scratch database fails.
 */
int validate_value(struct validator *v, const struct csv_column *c,
		   const struct stored_value *x, char *why, size_t why_len);

/*
 * Checks what involves more than one column of a cell (its values checked already):
 * m = n on self patterns, kv_heads divides heads. Returns 0, or -EINVAL with *column the
 * column blamed (C_M, C_KV_HEADS) and why set.
 */
int validate_cell_shape(const struct stored_value v[C_COUNT], int *column, char *why,
			size_t why_len);

/* Whether s[0..len) is valid UTF-8 without NUL bytes. */
bool validate_utf8(const char *s, size_t len);

/* Text for a message: at most 40 bytes, control characters as '?'. Returns out. */
const char *validate_shown(const char *text, size_t len, char *out, size_t out_len);

/*
 * The columns of the tables whose rows hang off a cell or a run, in table order, with
 * what each accepts; merge checks their rows with validate_value() as import checks the
 * same values of a file.
 */
enum metric_column { M_NAME, M_VALUE, M_UNIT, M_COUNT };
enum sample_column { S_IDX, S_SECONDS, S_ROUND, S_COUNT };
enum trial_column { T_IDX, T_CORRECT, T_COUNT };
enum run_metric_column { RM_VARIANT, RM_PATTERN, RM_BASELINE, RM_NAME, RM_VALUE, RM_UNIT,
			 RM_COUNT };
enum plugin_column { P_VARIANT, P_PATH, P_SHA256, P_COUNT };
enum input_column { I_NAME, I_TENSOR, I_PATH, I_SHA256, I_COUNT };
enum shard_column {
	SH_STARTED, SH_FINISHED, SH_STATUS, SH_HOSTNAME, SH_CPU_MODEL, SH_CORES, SH_THREADS,
	SH_SGEMM_GFLOPS, SH_LOAD_AVG, SH_WARNINGS, SH_COMMAND, SH_TRIAD_GBPS, SH_COUNT,
};

extern const struct csv_column validate_metric_columns[M_COUNT];
extern const struct csv_column validate_sample_columns[S_COUNT];
extern const struct csv_column validate_trial_columns[T_COUNT];
extern const struct csv_column validate_run_metric_columns[RM_COUNT];
extern const struct csv_column validate_plugin_columns[P_COUNT];
extern const struct csv_column validate_input_columns[I_COUNT];
extern const struct csv_column validate_shard_columns[SH_COUNT];

#endif
