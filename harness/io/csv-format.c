/*
 * csv-format.c - the CSV format's tables and small rules (csv-format.h): the columns of
 * runs and cells and what import accepts in each, their SQL lists, the run_metrics keys,
 * metric column order and the spreadsheet rule.
 */
#include "csv-format.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const struct csv_column csv_run_columns[R_COUNT] = {
	[R_STARTED] = { "started", K_TIME, true },
	[R_FINISHED] = { "finished", K_TIME, false },
	[R_STATUS] = { "status", K_RUN_STATUS, true },
	[R_SGEMM_GFLOPS] = { "sgemm_gflops", K_REAL, false },
	[R_HARNESS_VERSION] = { "harness_version", K_TEXT, false },
	[R_GIT_COMMIT] = { "git_commit", K_TEXT, false },
	[R_COMPILER] = { "compiler", K_TEXT, false },
	[R_CFLAGS] = { "cflags", K_TEXT, false },
	[R_CPU_MODEL] = { "cpu_model", K_TEXT, false },
	[R_CPU_FLAGS] = { "cpu_flags", K_TEXT, false },
	[R_CORES] = { "cores", K_SIZE, false },
	[R_THREADS] = { "threads", K_SIZE, false },
	[R_BLAS_CONFIG] = { "blas_config", K_TEXT, false },
	[R_SQLITE_VERSION] = { "sqlite_version", K_TEXT, false },
	[R_KERNEL] = { "kernel", K_TEXT, false },
	[R_HOSTNAME] = { "hostname", K_TEXT, false },
	[R_GOVERNOR] = { "governor", K_TEXT, false },
	[R_LOAD_AVG] = { "load_avg", K_REAL, false },
	[R_SMT] = { "smt", K_TEXT, false },
	[R_ASLR] = { "aslr", K_TEXT, false },
	[R_WARNINGS] = { "warnings", K_TEXT, false },
	[R_SEED] = { "seed", K_COUNT, false },
	[R_SUITE] = { "suite", K_TEXT, false },
	[R_COMMAND] = { "command", K_TEXT, false },
	[R_ROUNDS] = { "rounds", K_SIZE, false },
	[R_OMP_WAIT_POLICY] = { "omp_wait_policy", K_TEXT, false },
	[R_DRIVER] = { "driver", K_TEXT, false },
	[R_ARGUMENTS] = { "arguments", K_TEXT, false },
	[R_SUITE_ID] = { "suite_id", K_NAME, false },
	[R_SHARD] = { "shard", K_SIZE, false },
	[R_SHARDS] = { "shards", K_SIZE, false },
	[R_TRIAD_GBPS] = { "triad_gbps", K_REAL, false },
};

const struct csv_column csv_cell_columns[C_COUNT] = {
	[C_VARIANT] = { "variant", K_NAME, true },
	[C_TASK] = { "task", K_NAME, true },
	[C_PATTERN] = { "pattern", K_PATTERN, true },
	[C_REGIME] = { "regime", K_TEXT, false },
	[C_N] = { "n", K_SIZE, true },
	[C_M] = { "m", K_SIZE, true },
	[C_D] = { "d", K_SIZE, true },
	[C_HEADS] = { "heads", K_SIZE, true },
	[C_KV_HEADS] = { "kv_heads", K_SIZE, true },
	[C_BATCH] = { "batch", K_SIZE, true },
	[C_PARAMS] = { "params", K_JSON, true },
	[C_SEED] = { "seed", K_INT, true },
	[C_THREADS] = { "threads", K_SIZE, true },
	[C_STATUS] = { "status", K_CELL_STATUS, true },
	[C_REASON] = { "reason", K_TEXT, false },
	[C_WALL_SECONDS] = { "wall_seconds", K_REAL, false },
	[C_RSS_BYTES] = { "rss_bytes", K_COUNT, false },
	[C_FINISHED] = { "finished", K_TIME, true },
	[C_SHARD] = { "shard", K_SIZE, false },
};

const char *const csv_run_metric_keys[CSV_RM_KEYS] = { "variant", "pattern", "baseline",
						       "name", "unit" };

int csv_column_list(struct buf *b, const struct csv_column *cols, int n, bool marks)
{
	int ret = 0;

	for (int c = 0; c < n && !ret; c++)
		ret = buf_str(b, c ? ", " : "") || buf_str(b, marks ? "?" : cols[c].name) ?
		      -ENOMEM : 0;
	return ret;
}

bool csv_is_text_kind(enum csv_kind k)
{
	return k <= K_JSON;
}

int csv_metric_column_compare(const void *a, const void *b)
{
	const struct csv_metric_column *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->unit, y->unit);
}

void csv_metric_columns_free(struct csv_metric_column *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(m[i].name);
		free(m[i].unit);
	}
	free(m);
}

bool csv_looks_like_formula(const char *text, size_t len)
{
	return len > 0 && strchr("=+-@\t\r'", text[0]) && text[0] != '\0';
}

bool csv_has_formula_guard(const char *text, size_t len)
{
	return len >= 2 && text[0] == '\'' && csv_looks_like_formula(text + 1, len - 1);
}
