/*
 * csv-format.h - what the CSV files of the io room share, private to them: the columns
 * of runs and cells with what import accepts in each (and their SQL lists), the
 * run_metrics keys, metric columns, the spreadsheet rule, and the parsed file that
 * csv-import.c validates and csv-import-store.c inserts. The format itself is described
 * in csv-export.h.
 */
#ifndef ATTNBENCH_CSV_FORMAT_H
#define ATTNBENCH_CSV_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/*
 * What import and merge accept in a column (validate.h checks it); the text kinds come
 * first, up to K_JSON.
 */
enum csv_kind {
	K_TEXT,		/* any UTF-8 text */
	K_LABEL,	/* non-empty UTF-8 text */
	K_NAME,		/* 1..64 of letters, digits, '_', '-', '.' */
	K_TIME,		/* YYYY-MM-DD..., a date and time SQLite's julianday() reads */
	K_RUN_STATUS,	/* running, complete, failed, interrupted */
	K_CELL_STATUS,	/* ok, failed, crashed, timeout, oom, unsupported, nan, corrupt */
	K_PATTERN,	/* ns, cs, nc, cc */
	K_JSON,		/* a JSON object */
	K_INT,		/* a 64-bit whole number */
	K_COUNT,	/* a whole number >= 0 */
	K_SIZE,		/* a whole number in 1..INT_MAX */
	K_REAL,		/* a finite number >= 0 */
	K_BIT,		/* 0 or 1 */
	K_NUMBER,	/* any number */
};

struct csv_column {
	const char *name;	/* the table's column */
	enum csv_kind kind;
	bool required;		/* NOT NULL: the CSV must have the column and a value */
};

/* Every column of table runs but id (tests/test-csvio.c checks this against the schema). */
enum run_column {
	R_STARTED, R_FINISHED, R_STATUS, R_SGEMM_GFLOPS, R_HARNESS_VERSION, R_GIT_COMMIT,
	R_COMPILER, R_CFLAGS, R_CPU_MODEL, R_CPU_FLAGS, R_CORES, R_THREADS, R_BLAS_CONFIG,
	R_SQLITE_VERSION, R_KERNEL, R_HOSTNAME, R_GOVERNOR, R_LOAD_AVG, R_SMT, R_ASLR,
	R_WARNINGS, R_SEED, R_SUITE, R_COMMAND, R_ROUNDS, R_OMP_WAIT_POLICY, R_DRIVER,
	R_ARGUMENTS, R_SUITE_ID, R_SHARD, R_SHARDS, R_TRIAD_GBPS, R_COUNT,
};

extern const struct csv_column csv_run_columns[R_COUNT];

/* The columns of table cells but id and run_id. */
enum cell_column {
	C_VARIANT, C_TASK, C_PATTERN, C_REGIME, C_N, C_M, C_D, C_HEADS, C_KV_HEADS, C_BATCH,
	C_PARAMS, C_SEED, C_THREADS, C_STATUS, C_REASON, C_WALL_SECONDS, C_RSS_BYTES,
	C_FINISHED, C_SHARD, C_COUNT,
};

extern const struct csv_column csv_cell_columns[C_COUNT];

/*
 * Appends "a, b, c" to the SQL in b: the names of cols[0..n), or as many ? placeholders
 * when marks is set. Returns 0 or -ENOMEM.
 */
int csv_column_list(struct buf *b, const struct csv_column *cols, int n, bool marks);

/* The fields of a run_metrics row besides run_id and value, in table order. */
extern const char *const csv_run_metric_keys[];
#define CSV_RM_KEYS 5

#define CSV_METRIC_PREFIX "metric:"

/* Whether values of the kind are text (and so written with the spreadsheet rule). */
bool csv_is_text_kind(enum csv_kind k);

/* A metric column of the file, CSV_METRIC_PREFIX NAME[UNIT]. */
struct csv_metric_column {
	char *name, *unit;
};

/* Orders metric columns by name, then unit; for qsort() and bsearch(). */
int csv_metric_column_compare(const void *a, const void *b);
/* Frees m[0..n) and m; accepts NULL. */
void csv_metric_columns_free(struct csv_metric_column *m, size_t n);

/* Spreadsheets run a cell that starts with = + - @ tab, CR or ' as a formula. */
bool csv_looks_like_formula(const char *text, size_t len);
/* The extra ' of the spreadsheet rule: a ' before what the rule protects (or a '). */
bool csv_has_formula_guard(const char *text, size_t len);

/* ---- the parsed file: csv-import.c fills it, csv-import-store.c inserts it */

/* A value bound as is: SQLITE_NULL, SQLITE_INTEGER, SQLITE_FLOAT or SQLITE_TEXT. */
struct csv_value {
	int type;
	int64_t i;
	double r;
	char *s;		/* malloc()ed, NUL-terminated */
	size_t len;
};

struct csv_run_metric {
	char *keys[CSV_RM_KEYS];	/* variant, pattern, baseline, name, unit */
	bool null;
	double value;
};

struct csv_run {
	char key[17];
	struct csv_value v[R_COUNT];
	char *run_metrics;	/* the JSON text as given, NULL when absent */
	struct csv_run_metric *rm;
	size_t n_rm;
	int line;		/* the first row of the run */
};

struct csv_cell_metric {
	size_t column;		/* index into csv_import_data.metrics */
	bool null;
	double value;
};

struct csv_cell {
	size_t run;		/* index into csv_import_data.runs */
	struct csv_value v[C_COUNT];
	struct csv_cell_metric *metrics;
	size_t n_metrics;
	int64_t *sample_idx, *round_idx, *trial_idx;
	double *samples;
	int *rounds, *trials;	/* rounds: of each sample, or NULL (all round 1) */
	size_t n_samples, n_rounds, n_trials;
};

struct csv_import_data {
	struct csv_metric_column *metrics;
	size_t n_metrics;
	struct csv_run *runs;
	size_t n_runs, cap_runs;
	struct csv_cell *cells;
	size_t n_cells, cap_cells;
};

#endif
