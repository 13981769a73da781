/*
 * csvio.c - the CSV interchange format (export with RFC 4180 quoting; import through
 * libcsv, every row validated before anything is written, then one transaction) and
 * merging whole databases with ATTACH and INSERT ... SELECT.
 */
#include "csvio.h"

#include <csv.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "task.h"
#include "variant.h"
#include "why.h"

/* What import accepts in a column. */
enum kind {
	K_TEXT,		/* any UTF-8 text */
	K_NAME,		/* 1..64 of letters, digits, '_', '-', '.' */
	K_TIME,		/* YYYY-MM-DD..., a date and time SQLite's julianday() reads */
	K_RUN_STATUS,	/* running, complete, failed, interrupted */
	K_CELL_STATUS,	/* ok, failed, crashed, timeout, oom, unsupported, nan */
	K_PATTERN,	/* ns, cs, nc, cc */
	K_JSON,		/* a JSON object */
	K_INT,		/* a 64-bit whole number */
	K_COUNT,	/* a whole number >= 0 */
	K_SIZE,		/* a whole number in 1..INT_MAX */
	K_REAL,		/* a finite number >= 0 */
};

struct column {
	const char *name;	/* the table's column */
	enum kind kind;
	bool required;		/* NOT NULL: the CSV must have the column and a value */
};

/* Every column of table runs but id (tests/test-csvio.c checks this against the schema). */
enum run_column {
	R_STARTED, R_FINISHED, R_STATUS, R_SGEMM_GFLOPS, R_HARNESS_VERSION, R_GIT_COMMIT,
	R_COMPILER, R_CFLAGS, R_CPU_MODEL, R_CPU_FLAGS, R_CORES, R_THREADS, R_BLAS_CONFIG,
	R_SQLITE_VERSION, R_KERNEL, R_HOSTNAME, R_GOVERNOR, R_LOAD_AVG, R_SMT, R_ASLR,
	R_WARNINGS, R_SEED, R_SUITE, R_COMMAND, R_COUNT,
};

static const struct column run_columns[R_COUNT] = {
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
};

/* The columns of table cells but id and run_id. */
enum cell_column {
	C_VARIANT, C_TASK, C_PATTERN, C_REGIME, C_N, C_M, C_D, C_HEADS, C_KV_HEADS, C_BATCH,
	C_PARAMS, C_SEED, C_THREADS, C_STATUS, C_REASON, C_WALL_SECONDS, C_RSS_BYTES,
	C_FINISHED, C_COUNT,
};

static const struct column cell_columns[C_COUNT] = {
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
};

static const char *const run_statuses[] = { "running", "complete", "failed", "interrupted" };

/* The fields of a run_metrics row besides run_id and value, in table order. */
static const char *const run_metric_keys[] = { "variant", "pattern", "baseline", "name",
					       "unit" };
#define RM_KEYS 5

#define METRIC_PREFIX "metric:"

/* ---------------------------------------------------------------- small helpers */

/* A growing byte buffer. */
struct buf {
	char *p;
	size_t len, cap;
};

static int buf_add(struct buf *b, const char *text, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		size_t cap = 2 * b->cap + len + 64;
		char *p = realloc(b->p, cap);

		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, text, len);
	b->len += len;
	b->p[b->len] = '\0';
	return 0;
}

static int buf_str(struct buf *b, const char *text)
{
	return buf_add(b, text, strlen(text));
}

/* The shortest %g text that reads back as exactly x; inf, -inf and nan spelled so. */
static void format_real(double x, char *out, size_t len)
{
	if (isnan(x)) {
		snprintf(out, len, "nan");
		return;
	}
	if (isinf(x)) {
		snprintf(out, len, x > 0 ? "inf" : "-inf");
		return;
	}
	for (int digits = 15; digits <= 17; digits++) {
		snprintf(out, len, "%.*g", digits, x);
		if (strtod(out, NULL) == x)
			return;
	}
}

void csvio_run_key(const char *started, const char *hostname, const char *command,
		   char key[17])
{
	const char *parts[3] = { started, hostname, command };
	uint64_t h = 14695981039346656037ULL;	/* FNV-1a 64 offset basis */

	for (int i = 0; i < 3; i++) {
		const unsigned char *s = (const unsigned char *)parts[i];

		if (!s) {
			h = (h ^ 0x00) * 1099511628211ULL;	/* FNV-1a 64 prime */
			continue;
		}
		for (; *s; s++)
			h = (h ^ *s) * 1099511628211ULL;
		h = (h ^ 0x1f) * 1099511628211ULL;
	}
	snprintf(key, 17, "%016" PRIx64, h);
}

/* ---------------------------------------------------------------- writing */

/* Spreadsheets run a cell that starts with one of these as a formula. */
static bool looks_like_formula(const char *text, size_t len)
{
	return len > 0 && strchr("=+-@\t\r'", text[0]) && text[0] != '\0';
}

/* The extra ' of the spreadsheet rule: a ' before what the rule protects (or a '). */
static bool has_formula_guard(const char *text, size_t len)
{
	return len >= 2 && text[0] == '\'' && looks_like_formula(text + 1, len - 1);
}

int csvio_write_field(FILE *out, const char *text, size_t len, bool escape)
{
	bool prefix = escape && looks_like_formula(text, len);
	bool quote = len == 0 || memchr(text, ',', len) || memchr(text, '"', len) ||
		     memchr(text, '\r', len) || memchr(text, '\n', len) ||
		     text[0] == ' ' || text[0] == '\t' || text[len - 1] == ' ' ||
		     text[len - 1] == '\t';

	if (quote)
		fputc('"', out);
	if (prefix)
		fputc('\'', out);
	if (!quote) {
		fwrite(text, 1, len, out);
	} else {
		for (size_t i = 0; i < len; i++) {
			if (text[i] == '"')
				fputc('"', out);
			fputc(text[i], out);
		}
		fputc('"', out);
	}
	return ferror(out) ? -EIO : 0;
}

/* A column's value as CSV text (malloc()ed), or NULL for SQL NULL; *len its length. */
static char *column_text(sqlite3_stmt *st, int col, size_t *len, int *err)
{
	char number[64], *text;
	const void *bytes;

	*err = 0;
	switch (sqlite3_column_type(st, col)) {
	case SQLITE_NULL:
		*len = 0;
		return NULL;
	case SQLITE_INTEGER:
		snprintf(number, sizeof(number), "%lld", (long long)sqlite3_column_int64(st, col));
		bytes = number;
		*len = strlen(number);
		break;
	case SQLITE_FLOAT:
		format_real(sqlite3_column_double(st, col), number, sizeof(number));
		bytes = number;
		*len = strlen(number);
		break;
	default:
		bytes = sqlite3_column_text(st, col);
		*len = (size_t)sqlite3_column_bytes(st, col);
		break;
	}
	text = malloc(*len + 1);
	if (!text) {
		*err = -ENOMEM;
		return NULL;
	}
	memcpy(text, bytes ? bytes : "", *len);
	text[*len] = '\0';
	return text;
}

static bool is_text_kind(enum kind k)
{
	return k <= K_JSON;
}

struct metric_column {
	char *name, *unit;
};

static int compare_metric_columns(const void *a, const void *b)
{
	const struct metric_column *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->unit, y->unit);
}

static void free_metric_columns(struct metric_column *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(m[i].name);
		free(m[i].unit);
	}
	free(m);
}

/* The distinct (name, unit) of the metrics of the runs, sorted. */
static int collect_metric_columns(sqlite3 *db, const int64_t *runs, size_t n_runs,
				  struct metric_column **out, size_t *count)
{
	static const char sql[] =
		"SELECT DISTINCT m.name, m.unit FROM metrics m JOIN cells c ON c.id = m.cell_id"
		" WHERE c.run_id = ?1";
	struct metric_column *m = NULL;
	size_t n = 0, cap = 0, kept = 0;
	sqlite3_stmt *st;
	int rc = SQLITE_DONE;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	for (size_t r = 0; r < n_runs && rc == SQLITE_DONE; r++) {
		sqlite3_bind_int64(st, 1, runs[r]);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			const char *name = (const char *)sqlite3_column_text(st, 0);
			const char *unit = (const char *)sqlite3_column_text(st, 1);

			if (n == cap) {
				struct metric_column *grown = realloc(m, (cap = 2 * cap + 32) *
								     sizeof(*m));

				if (!grown) {
					rc = SQLITE_NOMEM;
					break;
				}
				m = grown;
			}
			m[n].name = strdup(name ? name : "");
			m[n].unit = strdup(unit ? unit : "");
			n++;
			if (!m[n - 1].name || !m[n - 1].unit) {
				rc = SQLITE_NOMEM;
				break;
			}
		}
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free_metric_columns(m, n);
		return rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
	}
	if (n)
		qsort(m, n, sizeof(*m), compare_metric_columns);
	for (size_t i = 0; i < n; i++) {
		if (kept && !compare_metric_columns(&m[kept - 1], &m[i])) {
			free(m[i].name);
			free(m[i].unit);
			continue;
		}
		m[kept++] = m[i];
	}
	*out = m;
	*count = kept;
	return 0;
}

static int write_header(FILE *out, const struct metric_column *m, size_t n_metrics)
{
	struct buf b = { 0 };
	int ret = 0;

	fputs("run_key", out);
	for (int c = 0; c < R_COUNT; c++)
		fprintf(out, ",run_%s", run_columns[c].name);
	for (int c = 0; c < C_COUNT; c++)
		fprintf(out, ",%s", cell_columns[c].name);
	for (size_t i = 0; i < n_metrics && !ret; i++) {
		b.len = 0;
		ret = buf_str(&b, METRIC_PREFIX) || buf_str(&b, m[i].name) || buf_str(&b, "[") ||
		      buf_str(&b, m[i].unit) || buf_str(&b, "]") ? -ENOMEM : 0;
		fputc(',', out);
		if (!ret)
			ret = csvio_write_field(out, b.p, b.len, false);
	}
	fputs(",samples_s,trials,run_metrics\r\n", out);
	free(b.p);
	return ret ? ret : ferror(out) ? -EIO : 0;
}

/* A list column: values in idx order, "idx:value" where idx is not the previous + 1. */
static int list_text(sqlite3_stmt *st, int64_t cell, bool integer, struct buf *b)
{
	int64_t expect = 0;
	char item[96], number[64];
	int rc;

	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
	sqlite3_bind_int64(st, 1, cell);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t idx = sqlite3_column_int64(st, 0);

		if (integer)
			snprintf(number, sizeof(number), "%lld",
				 (long long)sqlite3_column_int64(st, 1));
		else
			format_real(sqlite3_column_double(st, 1), number, sizeof(number));
		if (idx == expect)
			snprintf(item, sizeof(item), "%s%s", b->len ? " " : "", number);
		else
			snprintf(item, sizeof(item), "%s%lld:%s", b->len ? " " : "",
				 (long long)idx, number);
		expect = idx + 1;
		if (buf_str(b, item)) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
}

static int json_string(struct buf *b, const unsigned char *s, size_t len)
{
	char esc[8];
	int ret = buf_str(b, "\"");

	for (size_t i = 0; i < len && !ret; i++) {
		if (s[i] == '"' || s[i] == '\\') {
			esc[0] = '\\';
			esc[1] = (char)s[i];
			ret = buf_add(b, esc, 2);
		} else if (s[i] < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", s[i]);
			ret = buf_str(b, esc);
		} else {
			ret = buf_add(b, (const char *)&s[i], 1);
		}
	}
	return ret ? ret : buf_str(b, "\"");
}

/* The run's run_metrics rows as a JSON array in b; empty when it has none. */
static int run_metrics_json(sqlite3 *db, int64_t run, struct buf *b)
{
	static const char sql[] =
		"SELECT variant, pattern, baseline, name, unit, value FROM run_metrics"
		" WHERE run_id = ?1 ORDER BY variant, pattern, baseline, name";
	sqlite3_stmt *st;
	char number[64];
	int rc = SQLITE_DONE, ret = 0, rows = 0;

	b->len = 0;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, run);
	while (!ret && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		ret = buf_str(b, rows++ ? ",{" : "[{");
		for (int k = 0; k < RM_KEYS && !ret; k++) {
			char key[32];

			snprintf(key, sizeof(key), "%s\"%s\":", k ? "," : "", run_metric_keys[k]);
			ret = buf_str(b, key) ||
			      json_string(b, sqlite3_column_text(st, k),
					  (size_t)sqlite3_column_bytes(st, k)) ? -ENOMEM : 0;
		}
		if (ret)
			break;
		if (sqlite3_column_type(st, 5) == SQLITE_NULL) {
			snprintf(number, sizeof(number), "null");
		} else {
			double x = sqlite3_column_double(st, 5);

			/* JSON has no infinity; 9e999 reads back as one. */
			if (isinf(x))
				snprintf(number, sizeof(number), x > 0 ? "9e999" : "-9e999");
			else
				format_real(x, number, sizeof(number));
		}
		ret = buf_str(b, ",\"value\":") || buf_str(b, number) || buf_str(b, "}") ?
		      -ENOMEM : 0;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = -EIO;
	if (!ret && rows)
		ret = buf_str(b, "]");
	sqlite3_finalize(st);
	return ret;
}

/* The export of one run: its row values, formatted once. */
struct run_text {
	char *values[R_COUNT];
	size_t lens[R_COUNT];
	char key[17];
};

static void run_text_release(struct run_text *t)
{
	for (int c = 0; c < R_COUNT; c++)
		free(t->values[c]);
	memset(t, 0, sizeof(*t));
}

static int load_run(sqlite3 *db, int64_t run, struct run_text *t, char *why, size_t why_len)
{
	struct buf sql = { 0 };
	sqlite3_stmt *st;
	int rc, ret = 0;

	memset(t, 0, sizeof(*t));
	buf_str(&sql, "SELECT ");
	for (int c = 0; c < R_COUNT; c++) {
		buf_str(&sql, c ? ", " : "");
		buf_str(&sql, run_columns[c].name);
	}
	if (buf_str(&sql, " FROM runs WHERE id = ?1"))
		return -ENOMEM;
	rc = sqlite3_prepare_v2(db, sql.p, -1, &st, NULL);
	free(sql.p);
	if (rc != SQLITE_OK)
		return why_fail(-EIO, why, why_len, "cannot read runs: %s", sqlite3_errmsg(db));
	sqlite3_bind_int64(st, 1, run);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		for (int c = 0; c < R_COUNT && !ret; c++)
			t->values[c] = column_text(st, c, &t->lens[c], &ret);
		csvio_run_key(t->values[R_STARTED], t->values[R_HOSTNAME], t->values[R_COMMAND],
			      t->key);
	} else if (rc == SQLITE_DONE) {
		ret = why_fail(-ENOENT, why, why_len, "no run %lld in the database",
			       (long long)run);
	} else {
		ret = why_fail(-EIO, why, why_len, "cannot read run %lld: %s", (long long)run,
			       sqlite3_errmsg(db));
	}
	sqlite3_finalize(st);
	if (ret)
		run_text_release(t);
	return ret;
}

struct export_ctx {
	sqlite3 *db;
	FILE *out;
	sqlite3_stmt *cells, *metrics, *samples, *trials;
	struct metric_column *mcols;
	size_t n_mcols;
	char (*mvalues)[64];	/* the current cell's metric fields, "" when absent */
	struct buf list, json;
};

static int write_cell(struct export_ctx *x, const struct run_text *run)
{
	sqlite3_stmt *st = x->cells;
	int64_t cell = sqlite3_column_int64(st, 0);
	int rc, ret = 0;
	FILE *out = x->out;

	fputs(run->key, out);
	for (int c = 0; c < R_COUNT && !ret; c++) {
		fputc(',', out);
		if (run->values[c])
			ret = csvio_write_field(out, run->values[c], run->lens[c],
						is_text_kind(run_columns[c].kind));
	}
	for (int c = 0; c < C_COUNT && !ret; c++) {
		size_t len;
		char *text = column_text(st, c + 1, &len, &ret);

		fputc(',', out);
		if (text)
			ret = csvio_write_field(out, text, len, is_text_kind(cell_columns[c].kind));
		free(text);
	}
	if (ret)
		return ret;

	for (size_t i = 0; i < x->n_mcols; i++)
		x->mvalues[i][0] = '\0';
	sqlite3_bind_int64(x->metrics, 1, cell);
	while ((rc = sqlite3_step(x->metrics)) == SQLITE_ROW) {
		struct metric_column key = {
			(char *)sqlite3_column_text(x->metrics, 0),
			(char *)sqlite3_column_text(x->metrics, 1),
		};
		struct metric_column *at;

		if (!key.name || !key.unit)
			continue;
		at = bsearch(&key, x->mcols, x->n_mcols, sizeof(key), compare_metric_columns);
		if (!at)
			continue;
		/* A NULL value (SQLite stores NaN as NULL) is written as nan. */
		format_real(sqlite3_column_type(x->metrics, 2) == SQLITE_NULL ? NAN :
			    sqlite3_column_double(x->metrics, 2),
			    x->mvalues[at - x->mcols], sizeof(x->mvalues[0]));
	}
	sqlite3_reset(x->metrics);
	if (rc != SQLITE_DONE)
		return -EIO;
	for (size_t i = 0; i < x->n_mcols; i++) {
		fputc(',', out);
		fputs(x->mvalues[i], out);
	}

	ret = list_text(x->samples, cell, false, &x->list);
	fputc(',', out);
	if (!ret && x->list.len)
		ret = csvio_write_field(out, x->list.p, x->list.len, false);
	if (!ret)
		ret = list_text(x->trials, cell, true, &x->list);
	fputc(',', out);
	if (!ret && x->list.len)
		ret = csvio_write_field(out, x->list.p, x->list.len, false);
	fputc(',', out);
	if (!ret && x->json.len)
		ret = csvio_write_field(out, x->json.p, x->json.len, true);
	fputs("\r\n", out);
	return ret ? ret : ferror(out) ? -EIO : 0;
}

int csvio_export(sqlite3 *db, const int64_t *runs, size_t n_runs, FILE *out,
		 size_t *cells, char *why, size_t why_len)
{
	struct export_ctx x = { .db = db, .out = out };
	struct buf sql = { 0 };
	size_t written = 0;
	int ret;

	buf_str(&sql, "SELECT id");
	for (int c = 0; c < C_COUNT; c++) {
		buf_str(&sql, ", ");
		buf_str(&sql, cell_columns[c].name);
	}
	if (buf_str(&sql, " FROM cells WHERE run_id = ?1 ORDER BY id"))
		return why_fail(-ENOMEM, why, why_len, "out of memory");
	if (sqlite3_prepare_v2(db, sql.p, -1, &x.cells, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT name, unit, value FROM metrics WHERE cell_id = ?1",
			       -1, &x.metrics, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT idx, seconds FROM samples WHERE cell_id = ?1"
			       " ORDER BY idx", -1, &x.samples, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT idx, correct FROM trials WHERE cell_id = ?1"
			       " ORDER BY idx", -1, &x.trials, NULL) != SQLITE_OK) {
		ret = why_fail(-EIO, why, why_len, "cannot read the database: %s",
			       sqlite3_errmsg(db));
		goto out;
	}
	/* Every run must exist before anything is written. */
	for (size_t r = 0; r < n_runs; r++) {
		struct run_text t;

		ret = load_run(db, runs[r], &t, why, why_len);
		if (ret)
			goto out;
		run_text_release(&t);
	}
	ret = collect_metric_columns(db, runs, n_runs, &x.mcols, &x.n_mcols);
	if (!ret && x.n_mcols && !(x.mvalues = calloc(x.n_mcols, sizeof(*x.mvalues))))
		ret = -ENOMEM;
	if (!ret)
		ret = write_header(out, x.mcols, x.n_mcols);
	for (size_t r = 0; r < n_runs && !ret; r++) {
		struct run_text t;
		int rc = SQLITE_DONE;

		ret = load_run(db, runs[r], &t, why, why_len);
		if (ret)
			break;
		ret = run_metrics_json(db, runs[r], &x.json);
		sqlite3_bind_int64(x.cells, 1, runs[r]);
		while (!ret && (rc = sqlite3_step(x.cells)) == SQLITE_ROW) {
			ret = write_cell(&x, &t);
			written++;
		}
		if (!ret && rc != SQLITE_DONE)
			ret = -EIO;
		sqlite3_reset(x.cells);
		run_text_release(&t);
	}
	if (ret == -ENOMEM)
		why_set(why, why_len, "out of memory");
	else if (ret == -EIO && ferror(out))
		why_set(why, why_len, "cannot write: %s", strerror(errno));
	else if (ret == -EIO)
		why_set(why, why_len, "cannot read the database: %s", sqlite3_errmsg(db));
out:
	if (cells)
		*cells = written;
	free(sql.p);
	free(x.list.p);
	free(x.json.p);
	free(x.mvalues);
	free_metric_columns(x.mcols, x.n_mcols);
	sqlite3_finalize(x.cells);
	sqlite3_finalize(x.metrics);
	sqlite3_finalize(x.samples);
	sqlite3_finalize(x.trials);
	return ret;
}

/* ---------------------------------------------------------------- parsing */

/* A value bound as is: SQLITE_NULL, SQLITE_INTEGER, SQLITE_FLOAT or SQLITE_TEXT. */
struct value {
	int type;
	int64_t i;
	double r;
	char *s;		/* malloc()ed, NUL-terminated */
	size_t len;
};

struct run_metric {
	char *keys[RM_KEYS];	/* variant, pattern, baseline, name, unit */
	bool null;
	double value;
};

struct parsed_run {
	char key[17];
	struct value v[R_COUNT];
	char *run_metrics;	/* the JSON text as given, NULL when absent */
	struct run_metric *rm;
	size_t n_rm;
	int line;		/* the first row of the run */
};

struct cell_metric {
	size_t column;		/* index into csvio_data.metrics */
	bool null;
	double value;
};

struct parsed_cell {
	size_t run;		/* index into csvio_data.runs */
	struct value v[C_COUNT];
	struct cell_metric *metrics;
	size_t n_metrics;
	int64_t *sample_idx, *trial_idx;
	double *samples;
	int *trials;
	size_t n_samples, n_trials;
};

struct csvio_data {
	struct metric_column *metrics;
	size_t n_metrics;
	struct parsed_run *runs;
	size_t n_runs, cap_runs;
	struct parsed_cell *cells;
	size_t n_cells, cap_cells;
};

enum role { ROLE_RUN_KEY, ROLE_RUN, ROLE_CELL, ROLE_METRIC, ROLE_SAMPLES, ROLE_TRIALS,
	    ROLE_RUN_METRICS };

struct header_column {
	enum role role;
	size_t index;		/* into run_columns, cell_columns or the metrics */
	char *name;		/* as the header spells it */
};

struct field {
	char *text;		/* NULL for an unquoted empty field */
	size_t len;
};

struct parser {
	struct csvio_data *d;
	sqlite3 *scratch;	/* :memory:, for JSON and date checks */
	sqlite3_stmt *is_object, *is_time, *rm_check, *rm_rows;
	struct header_column *cols;
	size_t n_cols;
	struct field *fields;
	size_t n_fields, cap_fields;
	int line;		/* the physical line being read */
	int row_line;		/* where the current row began */
	bool row_pending;	/* a row has begun and not ended */
	bool header_done;
	int ret;
	char *why;
	size_t why_len;
};

static void value_release(struct value *v)
{
	free(v->s);
	memset(v, 0, sizeof(*v));
	v->type = SQLITE_NULL;
}

static void run_release(struct parsed_run *r)
{
	for (int c = 0; c < R_COUNT; c++)
		value_release(&r->v[c]);
	free(r->run_metrics);
	for (size_t i = 0; i < r->n_rm; i++)
		for (int k = 0; k < RM_KEYS; k++)
			free(r->rm[i].keys[k]);
	free(r->rm);
}

static void cell_release(struct parsed_cell *c)
{
	for (int i = 0; i < C_COUNT; i++)
		value_release(&c->v[i]);
	free(c->metrics);
	free(c->sample_idx);
	free(c->samples);
	free(c->trial_idx);
	free(c->trials);
}

void csvio_free(struct csvio_data *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n_runs; i++)
		run_release(&d->runs[i]);
	for (size_t i = 0; i < d->n_cells; i++)
		cell_release(&d->cells[i]);
	free(d->runs);
	free(d->cells);
	free_metric_columns(d->metrics, d->n_metrics);
	free(d);
}

size_t csvio_run_count(const struct csvio_data *d)
{
	return d->n_runs;
}

size_t csvio_cell_count(const struct csvio_data *d)
{
	return d->n_cells;
}

/* Field text for a message: at most 40 bytes, control characters as '?'. */
static const char *shown(const char *text, size_t len, char *out, size_t out_len)
{
	size_t n = len > 40 ? 40 : len, at = 0;

	if (!text)
		return "";
	/* do not cut a UTF-8 sequence */
	while (n < len && n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80)
		n--;
	for (size_t i = 0; i < n && at + 4 < out_len; i++)
		out[at++] = (unsigned char)text[i] < 0x20 || text[i] == 0x7f ? '?' : text[i];
	if (n < len && at + 4 < out_len) {
		memcpy(out + at, "...", 3);
		at += 3;
	}
	out[at] = '\0';
	return out;
}

static void fail(struct parser *p, const char *column, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Records the first error: "line L[, column 'C']: message". */
static void fail(struct parser *p, const char *column, const char *fmt, ...)
{
	char message[512];
	va_list ap;

	if (p->ret)
		return;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (column)
		why_set(p->why, p->why_len, "line %d, column '%s': %s", p->row_line, column,
			message);
	else
		why_set(p->why, p->why_len, "line %d: %s", p->row_line, message);
	p->ret = -EINVAL;
}

static void fail_nomem(struct parser *p)
{
	if (!p->ret)
		p->ret = why_fail(-ENOMEM, p->why, p->why_len, "out of memory");
}

static bool valid_utf8(const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len; ) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			n = 1, cp = c & 0x1f;
		else if ((c & 0xf0) == 0xe0)
			n = 2, cp = c & 0x0f;
		else if ((c & 0xf8) == 0xf0)
			n = 3, cp = c & 0x07;
		else
			return false;
		if (i + n >= len)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		/* overlong forms, surrogates and code points past U+10FFFF */
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		i += n + 1;
	}
	return true;
}

/* Strict numbers: the whole field, no spaces. */
static bool parse_real(const char *s, double *x)
{
	char *end;

	if (!*s || *s == ' ' || *s == '\t')
		return false;
	errno = 0;
	*x = strtod(s, &end);
	return !*end && !(errno == ERANGE && fabs(*x) > 1);
}

static bool parse_int(const char *s, int64_t *x)
{
	char *end;
	long long v;

	if (!*s || *s == ' ' || *s == '\t')
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end || errno)
		return false;
	*x = v;
	return true;
}

static bool one_of(const char *s, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(s, names[i]))
			return true;
	return false;
}

static bool is_name(const char *s, size_t len)
{
	if (len < 1 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-' || s[i] == '.'))
			return false;
	return true;
}

/* Runs a scratch statement with text bound to ?1; its integer result, or -1. */
static int scratch_check(sqlite3_stmt *st, const char *text, size_t len)
{
	int rc, result = -1;

	sqlite3_bind_text(st, 1, text, (int)len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		result = sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return result;
}

static bool is_time(struct parser *p, const char *s, size_t len)
{
	/* YYYY-MM-DD first: julianday() alone also takes 'now' and bare numbers */
	for (int i = 0; i < 10; i++) {
		bool dash = i == 4 || i == 7;

		if ((size_t)i >= len || (dash ? s[i] != '-' : (s[i] < '0' || s[i] > '9')))
			return false;
	}
	return scratch_check(p->is_time, s, len) == 1;
}

/*
 * Turns a field into the value of a column of the given kind; text kinds lose the
 * leading ' of the spreadsheet rule. Returns false (with the error recorded) when the
 * field is not acceptable.
 */
static bool field_value(struct parser *p, struct field *f, const struct column *c,
			const char *header, struct value *v)
{
	char show[64];
	const char *s = f->text;
	size_t len = f->len;

	value_release(v);
	if (is_text_kind(c->kind)) {
		if (!s) {
			if (c->required)
				fail(p, header, "is empty, but a value is required");
			return !c->required;
		}
		if (has_formula_guard(s, len)) {
			s++;
			len--;
		}
	} else if (!s || !len) {
		if (c->required)
			fail(p, header, "is empty, but a value is required");
		return !c->required;
	}
	shown(s, len, show, sizeof(show));
	switch (c->kind) {
	case K_TEXT:
		break;
	case K_NAME:
		if (!is_name(s, len)) {
			fail(p, header, "'%s' is not a name (1 to 64 letters, digits, '_', '-' "
			     "or '.')", show);
			return false;
		}
		break;
	case K_TIME:
		if (!is_time(p, s, len)) {
			fail(p, header, "'%s' is not a date and time (like "
			     "2025-01-31T12:00:00.000Z)", show);
			return false;
		}
		break;
	case K_RUN_STATUS:
		if (!one_of(s, run_statuses, 4)) {
			fail(p, header, "unknown run status '%s' (accepted: running, complete, "
			     "failed, interrupted)", show);
			return false;
		}
		break;
	case K_CELL_STATUS: {
		bool known = false;

		for (int i = 0; i <= CELL_NAN; i++)
			known |= !strcmp(s, cell_status_name((enum cell_status)i));
		if (!known) {
			fail(p, header, "unknown status '%s' (accepted: ok, failed, crashed, "
			     "timeout, oom, unsupported, nan)", show);
			return false;
		}
		break;
	}
	case K_PATTERN:
		if (pattern_parse(s) < 0) {
			fail(p, header, "unknown pattern '%s' (accepted: ns, cs, nc, cc)", show);
			return false;
		}
		break;
	case K_JSON:
		if (scratch_check(p->is_object, s, len) != 1) {
			fail(p, header, "'%s' is not a JSON object", show);
			return false;
		}
		break;
	case K_INT:
	case K_COUNT:
	case K_SIZE:
		if (!parse_int(s, &v->i) || (c->kind == K_COUNT && v->i < 0) ||
		    (c->kind == K_SIZE && (v->i < 1 || v->i > INT_MAX))) {
			fail(p, header, "'%s' is not a whole number%s", show,
			     c->kind == K_COUNT ? " >= 0" :
			     c->kind == K_SIZE ? " in 1..2147483647" : "");
			return false;
		}
		v->type = SQLITE_INTEGER;
		return true;
	case K_REAL:
		if (!parse_real(s, &v->r) || !isfinite(v->r) || v->r < 0) {
			fail(p, header, "'%s' is not a finite number >= 0", show);
			return false;
		}
		v->type = SQLITE_FLOAT;
		return true;
	}
	v->s = malloc(len + 1);
	if (!v->s) {
		fail_nomem(p);
		return false;
	}
	memcpy(v->s, s, len);
	v->s[len] = '\0';
	v->len = len;
	v->type = SQLITE_TEXT;
	return true;
}

static bool values_equal(const struct value *a, const struct value *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case SQLITE_INTEGER:
		return a->i == b->i;
	case SQLITE_FLOAT:
		return a->r == b->r;
	case SQLITE_TEXT:
		return a->len == b->len && !memcmp(a->s, b->s, a->len);
	default:
		return true;
	}
}

/*
 * Parses a list column: items separated by spaces, each "value" or "idx:value"; indexes
 * rise strictly from 0. Samples are finite seconds >= 0, trials 0 or 1.
 */
static bool parse_list(struct parser *p, const char *header, struct field *f, bool trials,
		       int64_t **idx_out, double **real_out, int **int_out, size_t *count)
{
	char *s = f->text, *item, *save = NULL, show[64];
	size_t n = 0, cap = 0;
	int64_t next = 0, *idx = NULL;
	double *reals = NULL;
	int *ints = NULL;
	bool ok = true;

	*count = 0;
	if (!s || !f->len)
		return true;
	for (item = strtok_r(s, " \t", &save); item && ok; item = strtok_r(NULL, " \t", &save)) {
		char *colon = strchr(item, ':'), *value = item;
		int64_t at = next, bit = 0;
		double x = 0;

		shown(item, strlen(item), show, sizeof(show));
		if (colon) {
			*colon = '\0';
			value = colon + 1;
			if (!parse_int(item, &at) || at < next) {
				fail(p, header, "item %zu: index '%s' is not a whole number above the "
				     "previous one", n + 1, item);
				ok = false;
				break;
			}
		}
		if (trials ? !parse_int(value, &bit) || (bit != 0 && bit != 1) :
			     !parse_real(value, &x) || !isfinite(x) || x < 0) {
			fail(p, header, "item %zu: '%s' is not %s", n + 1, show,
			     trials ? "0 or 1" : "a finite number of seconds >= 0");
			ok = false;
			break;
		}
		if (n == cap) {
			int64_t *i2 = realloc(idx, (cap = 2 * cap + 16) * sizeof(*idx));

			if (i2)
				idx = i2;
			if (trials) {
				int *t2 = realloc(ints, cap * sizeof(*ints));

				if (t2)
					ints = t2;
				ok = i2 && t2;
			} else {
				double *r2 = realloc(reals, cap * sizeof(*reals));

				if (r2)
					reals = r2;
				ok = i2 && r2;
			}
			if (!ok) {
				fail_nomem(p);
				break;
			}
		}
		idx[n] = at;
		if (trials)
			ints[n] = (int)bit;
		else
			reals[n] = x;
		n++;
		next = at + 1;
	}
	if (!ok) {
		free(idx);
		free(reals);
		free(ints);
		return false;
	}
	*idx_out = idx;
	if (trials)
		*int_out = ints;
	else
		*real_out = reals;
	*count = n;
	return true;
}

/* Text of a scratch result column as a malloc()ed string; NULL when not text. */
static char *result_text(sqlite3_stmt *st, int col, bool *bad)
{
	const unsigned char *s = sqlite3_column_text(st, col);
	size_t len = (size_t)sqlite3_column_bytes(st, col);
	char *copy;

	if (sqlite3_column_type(st, col) != SQLITE_TEXT || !s || memchr(s, '\0', len) ||
	    !valid_utf8(s, len)) {
		*bad = true;
		return NULL;
	}
	copy = malloc(len + 1);
	if (copy) {
		memcpy(copy, s, len);
		copy[len] = '\0';
	}
	return copy;
}

/* Parses the run_metrics JSON of a new run into r->rm. */
static bool parse_run_metrics(struct parser *p, const char *header, struct parsed_run *r)
{
	sqlite3_stmt *st = p->rm_rows;
	size_t cap = 0;
	int rc;

	if (!r->run_metrics)
		return true;
	if (scratch_check(p->rm_check, r->run_metrics, strlen(r->run_metrics)) != 1) {
		fail(p, header, "is not a JSON array of objects");
		return false;
	}
	sqlite3_bind_text(st, 1, r->run_metrics, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct run_metric m = { 0 };
		bool bad = sqlite3_column_int(st, 0) != RM_KEYS + 1;
		const char *vtype = (const char *)sqlite3_column_text(st, 1 + 2 * RM_KEYS);

		for (int k = 0; k < RM_KEYS && !bad; k++) {
			const char *type = (const char *)sqlite3_column_text(st, 1 + 2 * k);

			bad = !type || strcmp(type, "text");
			if (!bad)
				m.keys[k] = result_text(st, 2 + 2 * k, &bad);
			if (!bad && !m.keys[k]) {
				fail_nomem(p);
				bad = true;
			}
			/* all but unit must be non-empty */
			if (!bad && k < RM_KEYS - 1 && !m.keys[k][0])
				bad = true;
		}
		if (!bad && (!vtype || (strcmp(vtype, "integer") && strcmp(vtype, "real") &&
					strcmp(vtype, "null"))))
			bad = true;
		if (!bad) {
			m.null = !strcmp(vtype, "null");
			m.value = m.null ? 0 : sqlite3_column_double(st, 2 + 2 * RM_KEYS);
		}
		for (size_t i = 0; i < r->n_rm && !bad; i++) {
			bool same = true;

			for (int k = 0; k < RM_KEYS - 1; k++)
				same &= !strcmp(r->rm[i].keys[k], m.keys[k]);
			if (same) {
				fail(p, header, "item %zu repeats variant, pattern, baseline and "
				     "name of item %zu", r->n_rm + 1, i + 1);
				bad = true;
			}
		}
		if (!bad && r->n_rm == cap) {
			struct run_metric *grown = realloc(r->rm, (cap = 2 * cap + 8) *
							   sizeof(*grown));

			if (grown) {
				r->rm = grown;
			} else {
				fail_nomem(p);
				bad = true;
			}
		}
		if (bad) {
			fail(p, header, "item %zu needs exactly the keys variant, pattern, "
			     "baseline, name (non-empty strings), unit (a string) and value (a "
			     "number or null)", r->n_rm + 1);
			for (int k = 0; k < RM_KEYS; k++)
				free(m.keys[k]);
			break;
		}
		r->rm[r->n_rm++] = m;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (!p->ret && rc != SQLITE_DONE)
		fail(p, header, "is not a JSON array of objects");
	return !p->ret;
}

static int header_find(const struct parser *p, enum role role, size_t index)
{
	for (size_t i = 0; i < p->n_cols; i++)
		if (p->cols[i].role == role && (role == ROLE_RUN_KEY || role == ROLE_SAMPLES ||
						role == ROLE_TRIALS || role == ROLE_RUN_METRICS ||
						p->cols[i].index == index))
			return (int)i;
	return -1;
}

/* Reads the header row: known names only, each once, every required column present. */
static void parse_header(struct parser *p)
{
	struct csvio_data *d = p->d;
	char show[64];

	p->cols = calloc(p->n_fields ? p->n_fields : 1, sizeof(*p->cols));
	if (!p->cols) {
		fail_nomem(p);
		return;
	}
	for (size_t i = 0; i < p->n_fields && !p->ret; i++) {
		struct field *f = &p->fields[i];
		struct header_column *h = &p->cols[i];
		const char *s = f->text ? f->text : "";
		bool known = true;

		shown(s, f->len, show, sizeof(show));
		if (!f->text || !f->len || memchr(s, '\0', f->len) ||
		    !valid_utf8((const unsigned char *)s, f->len)) {
			fail(p, NULL, "column %zu of the header has no name", i + 1);
			break;
		}
		h->name = strdup(s);
		if (!h->name) {
			fail_nomem(p);
			break;
		}
		p->n_cols = i + 1;
		if (!strcmp(s, "run_key")) {
			h->role = ROLE_RUN_KEY;
		} else if (!strcmp(s, "samples_s")) {
			h->role = ROLE_SAMPLES;
		} else if (!strcmp(s, "trials")) {
			h->role = ROLE_TRIALS;
		} else if (!strcmp(s, "run_metrics")) {
			h->role = ROLE_RUN_METRICS;
		} else if (!strncmp(s, METRIC_PREFIX, strlen(METRIC_PREFIX))) {
			const char *name = s + strlen(METRIC_PREFIX), *open = strchr(name, '[');
			struct metric_column m;

			if (!open || s[f->len - 1] != ']' || !is_name(name, (size_t)(open - name))) {
				fail(p, NULL, "header column '%s' is not metric:NAME[UNIT]", show);
				break;
			}
			m.name = strndup(name, (size_t)(open - name));
			m.unit = strndup(open + 1, (size_t)(s + f->len - 1 - (open + 1)));
			if (!m.name || !m.unit) {
				free(m.name);
				free(m.unit);
				fail_nomem(p);
				break;
			}
			for (size_t k = 0; k < d->n_metrics; k++)
				if (!compare_metric_columns(&d->metrics[k], &m)) {
					fail(p, NULL, "header column '%s' appears twice", show);
					break;
				}
			if (!p->ret) {
				struct metric_column *grown = realloc(d->metrics, (d->n_metrics + 1) *
								     sizeof(*grown));

				if (!grown)
					fail_nomem(p);
				else
					d->metrics = grown;
			}
			if (p->ret) {
				free(m.name);
				free(m.unit);
				break;
			}
			h->role = ROLE_METRIC;
			h->index = d->n_metrics;
			d->metrics[d->n_metrics++] = m;
			continue;
		} else {
			known = false;
			for (int c = 0; c < R_COUNT && !known; c++)
				if (!strncmp(s, "run_", 4) && !strcmp(s + 4, run_columns[c].name)) {
					h->role = ROLE_RUN;
					h->index = (size_t)c;
					known = true;
				}
			for (int c = 0; c < C_COUNT && !known; c++)
				if (!strcmp(s, cell_columns[c].name)) {
					h->role = ROLE_CELL;
					h->index = (size_t)c;
					known = true;
				}
		}
		if (!known) {
			fail(p, NULL, "unknown column '%s' in the header (see 'Export, import, "
			     "merge' in README.md)", show);
			break;
		}
		for (size_t k = 0; k < i; k++)
			if (!strcmp(p->cols[k].name, h->name)) {
				fail(p, NULL, "header column '%s' appears twice", show);
				break;
			}
	}
	for (int c = 0; c < R_COUNT && !p->ret; c++)
		if (run_columns[c].required && header_find(p, ROLE_RUN, (size_t)c) < 0)
			fail(p, NULL, "the header lacks the required column 'run_%s'",
			     run_columns[c].name);
	for (int c = 0; c < C_COUNT && !p->ret; c++)
		if (cell_columns[c].required && header_find(p, ROLE_CELL, (size_t)c) < 0)
			fail(p, NULL, "the header lacks the required column '%s'",
			     cell_columns[c].name);
}

static struct parsed_run *find_run(struct csvio_data *d, const char *key)
{
	for (size_t i = d->n_runs; i-- > 0; )
		if (!strcmp(d->runs[i].key, key))
			return &d->runs[i];
	return NULL;
}

/* Validates one data row and adds its cell (and its run when new). */
static void parse_row(struct parser *p)
{
	struct csvio_data *d = p->d;
	struct parsed_cell cell = { 0 };
	struct parsed_run run = { 0 };
	struct parsed_run *known;
	const char *key_text = NULL, *rm_header = "run_metrics";
	char key[17], show[64];
	bool ok = true;

	for (int c = 0; c < R_COUNT; c++)
		run.v[c].type = SQLITE_NULL;
	for (int c = 0; c < C_COUNT; c++)
		cell.v[c].type = SQLITE_NULL;
	if (p->n_fields != p->n_cols) {
		fail(p, NULL, "%zu fields, but the header has %zu columns", p->n_fields,
		     p->n_cols);
		return;
	}
	/* text first: no NUL bytes, valid UTF-8 */
	for (size_t i = 0; i < p->n_fields; i++) {
		struct field *f = &p->fields[i];

		if (f->text && (memchr(f->text, '\0', f->len) ||
				!valid_utf8((const unsigned char *)f->text, f->len))) {
			fail(p, p->cols[i].name, "holds a NUL byte or is not valid UTF-8");
			return;
		}
	}
	for (size_t i = 0; i < p->n_fields && ok; i++) {
		struct header_column *h = &p->cols[i];
		struct field *f = &p->fields[i];

		switch (h->role) {
		case ROLE_RUN_KEY:
			key_text = f->text && f->len ?
				   f->text + has_formula_guard(f->text, f->len) : NULL;
			break;
		case ROLE_RUN:
			ok = field_value(p, f, &run_columns[h->index], h->name, &run.v[h->index]);
			break;
		case ROLE_CELL:
			ok = field_value(p, f, &cell_columns[h->index], h->name,
					 &cell.v[h->index]);
			break;
		case ROLE_METRIC: {
			struct cell_metric m = { .column = h->index };
			struct cell_metric *grown;

			if (!f->text || !f->len)
				break;
			if (!parse_real(f->text, &m.value)) {
				fail(p, h->name, "'%s' is not a number (nan for a missing value)",
				     shown(f->text, f->len, show, sizeof(show)));
				ok = false;
				break;
			}
			m.null = isnan(m.value);
			for (size_t k = 0; k < cell.n_metrics; k++)
				if (!strcmp(d->metrics[cell.metrics[k].column].name,
					    d->metrics[h->index].name)) {
					fail(p, h->name, "a second value for metric '%s' (in another "
					     "unit)", d->metrics[h->index].name);
					ok = false;
				}
			if (!ok)
				break;
			grown = realloc(cell.metrics, (cell.n_metrics + 1) * sizeof(*grown));
			if (!grown) {
				fail_nomem(p);
				ok = false;
				break;
			}
			cell.metrics = grown;
			cell.metrics[cell.n_metrics++] = m;
			break;
		}
		case ROLE_SAMPLES:
			ok = parse_list(p, h->name, f, false, &cell.sample_idx, &cell.samples, NULL,
					&cell.n_samples);
			break;
		case ROLE_TRIALS:
			ok = parse_list(p, h->name, f, true, &cell.trial_idx, NULL, &cell.trials,
					&cell.n_trials);
			break;
		case ROLE_RUN_METRICS:
			rm_header = h->name;
			if (f->text && f->len) {
				const char *s = f->text + has_formula_guard(f->text, f->len);

				run.run_metrics = strdup(s);
				if (!run.run_metrics) {
					fail_nomem(p);
					ok = false;
				}
			}
			break;
		}
	}
	if (!ok)
		goto fail;

	/* the shape: self patterns have n = m; kv_heads divides heads */
	if (pattern_is_self((enum attn_pattern)pattern_parse(cell.v[C_PATTERN].s)) &&
	    cell.v[C_N].i != cell.v[C_M].i) {
		fail(p, "m", "m = %lld, but pattern '%s' needs m = n (%lld)",
		     (long long)cell.v[C_M].i, cell.v[C_PATTERN].s, (long long)cell.v[C_N].i);
		goto fail;
	}
	if (cell.v[C_HEADS].i % cell.v[C_KV_HEADS].i) {
		fail(p, "kv_heads", "kv_heads = %lld does not divide heads = %lld",
		     (long long)cell.v[C_KV_HEADS].i, (long long)cell.v[C_HEADS].i);
		goto fail;
	}

	csvio_run_key(run.v[R_STARTED].s, run.v[R_HOSTNAME].s, run.v[R_COMMAND].s, key);
	if (key_text && strcasecmp(key_text, key)) {
		fail(p, "run_key", "'%s' is not the key of this row's run_started, run_hostname "
		     "and run_command (%s); leave it empty to have it computed",
		     shown(key_text, strlen(key_text), show, sizeof(show)), key);
		goto fail;
	}
	known = find_run(d, key);
	if (known) {
		for (int c = 0; c < R_COUNT; c++)
			if (!values_equal(&known->v[c], &run.v[c])) {
				char column[32];

				snprintf(column, sizeof(column), "run_%s", run_columns[c].name);
				fail(p, column, "differs from line %d, an earlier row of the same run",
				     known->line);
				goto fail;
			}
		if ((known->run_metrics == NULL) != (run.run_metrics == NULL) ||
		    (run.run_metrics && strcmp(known->run_metrics, run.run_metrics))) {
			fail(p, rm_header, "differs from line %d, an earlier row of the same run",
			     known->line);
			goto fail;
		}
		run_release(&run);
		cell.run = (size_t)(known - d->runs);
	} else {
		if (!parse_run_metrics(p, rm_header, &run))
			goto fail;
		if (d->n_runs == d->cap_runs) {
			struct parsed_run *grown = realloc(d->runs, (d->cap_runs = 2 * d->cap_runs + 4) *
							   sizeof(*grown));

			if (!grown) {
				fail_nomem(p);
				goto fail;
			}
			d->runs = grown;
		}
		memcpy(run.key, key, sizeof(key));
		run.line = p->row_line;
		cell.run = d->n_runs;
		d->runs[d->n_runs++] = run;
	}
	if (d->n_cells == d->cap_cells) {
		struct parsed_cell *grown = realloc(d->cells, (d->cap_cells = 2 * d->cap_cells + 64) *
						    sizeof(*grown));

		if (!grown) {
			fail_nomem(p);
			/* the run, if new, is owned by d now */
			cell_release(&cell);
			return;
		}
		d->cells = grown;
	}
	d->cells[d->n_cells++] = cell;
	return;
fail:
	run_release(&run);
	cell_release(&cell);
}

static void clear_fields(struct parser *p)
{
	for (size_t i = 0; i < p->n_fields; i++)
		free(p->fields[i].text);
	p->n_fields = 0;
}

static void on_field(void *data, size_t len, void *arg)
{
	struct parser *p = arg;
	struct field *f;

	if (!p->row_pending) {
		/* rows that end with a bare CR share a line with the next one */
		p->row_pending = true;
		p->row_line = p->line;
	}
	if (p->ret)
		return;
	if (p->n_fields == p->cap_fields) {
		struct field *grown = realloc(p->fields, (p->cap_fields = 2 * p->cap_fields + 64) *
					      sizeof(*grown));

		if (!grown) {
			fail_nomem(p);
			return;
		}
		p->fields = grown;
	}
	f = &p->fields[p->n_fields++];
	f->len = len;
	f->text = NULL;
	if (data) {
		f->text = malloc(len + 1);
		if (!f->text) {
			p->n_fields--;
			fail_nomem(p);
			return;
		}
		memcpy(f->text, data, len);
		f->text[len] = '\0';
	}
}

static void on_row(int terminator, void *arg)
{
	struct parser *p = arg;

	(void)terminator;
	if (!p->ret) {
		if (!p->header_done) {
			parse_header(p);
			p->header_done = true;
		} else {
			parse_row(p);
		}
	}
	clear_fields(p);
	p->row_pending = false;
}

/* libcsv trims spaces around unquoted fields unless told that nothing is a space. */
static int no_space(unsigned char c)
{
	(void)c;
	return 0;
}

static int open_scratch(struct parser *p)
{
	static const char is_object[] =
		"SELECT CASE WHEN json_valid(?1) THEN json_type(?1) = 'object' ELSE 0 END";
	static const char is_time[] = "SELECT julianday(?1) IS NOT NULL";
	static const char rm_check[] =
		"SELECT CASE WHEN NOT json_valid(?1) THEN 0"
		" WHEN json_type(?1) != 'array' THEN 0"
		" WHEN EXISTS (SELECT 1 FROM json_each(?1) WHERE type != 'object') THEN 0"
		" ELSE 1 END";
	static const char rm_rows[] =
		"SELECT (SELECT count(*) FROM json_each(e.value)),"
		" json_type(e.value, '$.variant'), json_extract(e.value, '$.variant'),"
		" json_type(e.value, '$.pattern'), json_extract(e.value, '$.pattern'),"
		" json_type(e.value, '$.baseline'), json_extract(e.value, '$.baseline'),"
		" json_type(e.value, '$.name'), json_extract(e.value, '$.name'),"
		" json_type(e.value, '$.unit'), json_extract(e.value, '$.unit'),"
		" json_type(e.value, '$.value'), json_extract(e.value, '$.value')"
		" FROM json_each(?1) AS e ORDER BY e.key";

	if (sqlite3_open_v2(":memory:", &p->scratch, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(p->scratch, is_object, -1, &p->is_object, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(p->scratch, is_time, -1, &p->is_time, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(p->scratch, rm_check, -1, &p->rm_check, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(p->scratch, rm_rows, -1, &p->rm_rows, NULL) != SQLITE_OK)
		return -EIO;
	return 0;
}

static void close_scratch(struct parser *p)
{
	sqlite3_finalize(p->is_object);
	sqlite3_finalize(p->is_time);
	sqlite3_finalize(p->rm_check);
	sqlite3_finalize(p->rm_rows);
	sqlite3_close(p->scratch);
}

static bool blank_line(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != '\r' && s[i] != '\n')
			return false;
	return true;
}

int csvio_parse(const char *text, size_t len, struct csvio_data **out, char *why,
		size_t why_len)
{
	struct parser p = { .why = why, .why_len = why_len };
	struct csv_parser csv;
	size_t at = 0;
	int ret;

	*out = NULL;
	p.d = calloc(1, sizeof(*p.d));
	if (!p.d || csv_init(&csv, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL |
				   CSV_EMPTY_IS_NULL)) {
		free(p.d);
		return why_fail(-ENOMEM, why, why_len, "out of memory");
	}
	csv_set_space_func(&csv, no_space);
	if (open_scratch(&p)) {
		p.ret = why_fail(-EIO, why, why_len, "cannot open a scratch SQLite database");
		goto out;
	}
	if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
		at = 3;		/* a UTF-8 byte-order mark, as spreadsheets write */
	/* Fed a line at a time, so that an error can name its line. */
	while (at < len && !p.ret) {
		const char *nl = memchr(text + at, '\n', len - at);
		size_t chunk = nl ? (size_t)(nl - (text + at)) + 1 : len - at;

		p.line++;
		if (!p.row_pending && !blank_line(text + at, chunk)) {
			p.row_pending = true;
			p.row_line = p.line;
		}
		if (csv_parse(&csv, text + at, chunk, on_field, on_row, &p) != chunk && !p.ret) {
			p.row_line = p.line;
			fail(&p, NULL, "a quote inside an unquoted field, or text after a closing "
			     "quote (quote the field and double its quotes)");
		}
		at += chunk;
	}
	if (!p.ret && csv_fini(&csv, on_field, on_row, &p) && !p.ret)
		fail(&p, NULL, "a quoted field is not closed before the end of the file");
	if (!p.ret && !p.header_done)
		p.ret = why_fail(-EINVAL, why, why_len, "the file is empty (no header row)");
	else if (!p.ret && p.d->n_cells == 0)
		p.ret = why_fail(-EINVAL, why, why_len, "no rows after the header");
out:
	csv_free(&csv);
	clear_fields(&p);
	free(p.fields);
	for (size_t i = 0; i < p.n_cols; i++)
		free(p.cols[i].name);
	free(p.cols);
	close_scratch(&p);
	ret = p.ret;
	if (ret)
		csvio_free(p.d);
	else
		*out = p.d;
	return ret;
}

/* ---------------------------------------------------------------- import */

static void bind_value(sqlite3_stmt *st, int at, const struct value *v)
{
	switch (v->type) {
	case SQLITE_INTEGER:
		sqlite3_bind_int64(st, at, v->i);
		break;
	case SQLITE_FLOAT:
		sqlite3_bind_double(st, at, v->r);
		break;
	case SQLITE_TEXT:
		sqlite3_bind_text(st, at, v->s, (int)v->len, SQLITE_STATIC);
		break;
	default:
		sqlite3_bind_null(st, at);
		break;
	}
}

static int step_reset(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

enum import_stmt { I_FIND, I_RUN, I_RUN_METRIC, I_CELL, I_METRIC, I_SAMPLE, I_TRIAL,
		   I_COUNT };

static int insert_all(sqlite3 *db, const struct csvio_data *d, sqlite3_stmt **st,
		      int64_t *run_ids, char *why, size_t why_len)
{
	for (size_t r = 0; r < d->n_runs; r++) {
		const struct parsed_run *run = &d->runs[r];
		int rc;

		bind_value(st[I_FIND], 1, &run->v[R_STARTED]);
		bind_value(st[I_FIND], 2, &run->v[R_HOSTNAME]);
		bind_value(st[I_FIND], 3, &run->v[R_COMMAND]);
		rc = sqlite3_step(st[I_FIND]);
		if (rc == SQLITE_ROW) {
			why_set(why, why_len, "the run of line %d (started %s on %s) is already "
				"in the database as run %lld", run->line, run->v[R_STARTED].s,
				run->v[R_HOSTNAME].s ? run->v[R_HOSTNAME].s : "an unnamed host",
				(long long)sqlite3_column_int64(st[I_FIND], 0));
			sqlite3_reset(st[I_FIND]);
			return -EEXIST;
		}
		sqlite3_reset(st[I_FIND]);
		if (rc != SQLITE_DONE)
			return -EIO;
		for (int c = 0; c < R_COUNT; c++)
			bind_value(st[I_RUN], c + 1, &run->v[c]);
		if (step_reset(st[I_RUN]))
			return -EIO;
		run_ids[r] = sqlite3_last_insert_rowid(db);
		for (size_t i = 0; i < run->n_rm; i++) {
			sqlite3_stmt *s = st[I_RUN_METRIC];

			sqlite3_bind_int64(s, 1, run_ids[r]);
			for (int k = 0; k < RM_KEYS; k++)
				sqlite3_bind_text(s, 2 + k, run->rm[i].keys[k], -1, SQLITE_STATIC);
			if (run->rm[i].null)
				sqlite3_bind_null(s, 2 + RM_KEYS);
			else
				sqlite3_bind_double(s, 2 + RM_KEYS, run->rm[i].value);
			if (step_reset(s))
				return -EIO;
		}
	}
	for (size_t i = 0; i < d->n_cells; i++) {
		const struct parsed_cell *c = &d->cells[i];
		int64_t cell;

		sqlite3_bind_int64(st[I_CELL], 1, run_ids[c->run]);
		for (int k = 0; k < C_COUNT; k++)
			bind_value(st[I_CELL], k + 2, &c->v[k]);
		if (step_reset(st[I_CELL]))
			return -EIO;
		cell = sqlite3_last_insert_rowid(db);
		for (size_t k = 0; k < c->n_metrics; k++) {
			const struct metric_column *m = &d->metrics[c->metrics[k].column];

			sqlite3_bind_int64(st[I_METRIC], 1, cell);
			sqlite3_bind_text(st[I_METRIC], 2, m->name, -1, SQLITE_STATIC);
			if (c->metrics[k].null)
				sqlite3_bind_null(st[I_METRIC], 3);
			else
				sqlite3_bind_double(st[I_METRIC], 3, c->metrics[k].value);
			sqlite3_bind_text(st[I_METRIC], 4, m->unit, -1, SQLITE_STATIC);
			if (step_reset(st[I_METRIC]))
				return -EIO;
		}
		for (size_t k = 0; k < c->n_samples; k++) {
			sqlite3_bind_int64(st[I_SAMPLE], 1, cell);
			sqlite3_bind_int64(st[I_SAMPLE], 2, c->sample_idx[k]);
			sqlite3_bind_double(st[I_SAMPLE], 3, c->samples[k]);
			if (step_reset(st[I_SAMPLE]))
				return -EIO;
		}
		for (size_t k = 0; k < c->n_trials; k++) {
			sqlite3_bind_int64(st[I_TRIAL], 1, cell);
			sqlite3_bind_int64(st[I_TRIAL], 2, c->trial_idx[k]);
			sqlite3_bind_int(st[I_TRIAL], 3, c->trials[k]);
			if (step_reset(st[I_TRIAL]))
				return -EIO;
		}
	}
	return 0;
}

int csvio_import(sqlite3 *db, const struct csvio_data *d, int64_t *first_run, char *why,
		 size_t why_len)
{
	struct buf run_sql = { 0 }, cell_sql = { 0 };
	const char *sql[I_COUNT] = {
		[I_FIND] = "SELECT id FROM runs WHERE started IS ?1 AND hostname IS ?2"
			   " AND command IS ?3",
		[I_RUN_METRIC] = "INSERT INTO run_metrics (run_id, variant, pattern, baseline,"
				 " name, unit, value) VALUES (?, ?, ?, ?, ?, ?, ?)",
		[I_METRIC] = "INSERT INTO metrics (cell_id, name, value, unit) VALUES"
			     " (?, ?, ?, ?)",
		[I_SAMPLE] = "INSERT INTO samples (cell_id, idx, seconds) VALUES (?, ?, ?)",
		[I_TRIAL] = "INSERT INTO trials (cell_id, idx, correct) VALUES (?, ?, ?)",
	};
	sqlite3_stmt *st[I_COUNT] = { NULL };
	int64_t *run_ids = calloc(d->n_runs ? d->n_runs : 1, sizeof(*run_ids));
	int ret = 0;

	buf_str(&run_sql, "INSERT INTO runs (");
	for (int c = 0; c < R_COUNT; c++) {
		buf_str(&run_sql, c ? ", " : "");
		buf_str(&run_sql, run_columns[c].name);
	}
	buf_str(&run_sql, ") VALUES (?");
	for (int c = 1; c < R_COUNT; c++)
		buf_str(&run_sql, ", ?");
	buf_str(&run_sql, ")");
	buf_str(&cell_sql, "INSERT INTO cells (run_id");
	for (int c = 0; c < C_COUNT; c++) {
		buf_str(&cell_sql, ", ");
		buf_str(&cell_sql, cell_columns[c].name);
	}
	buf_str(&cell_sql, ") VALUES (?");
	for (int c = 0; c < C_COUNT; c++)
		buf_str(&cell_sql, ", ?");
	if (buf_str(&cell_sql, ")") || !run_sql.p || !run_ids) {
		ret = why_fail(-ENOMEM, why, why_len, "out of memory");
		goto out;
	}
	sql[I_RUN] = run_sql.p;
	sql[I_CELL] = cell_sql.p;
	for (int i = 0; i < I_COUNT; i++)
		if (sqlite3_prepare_v2(db, sql[i], -1, &st[i], NULL) != SQLITE_OK) {
			ret = why_fail(-EIO, why, why_len, "cannot prepare the import: %s",
				       sqlite3_errmsg(db));
			goto out;
		}
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		ret = why_fail(-EIO, why, why_len, "cannot begin a transaction: %s",
			       sqlite3_errmsg(db));
		goto out;
	}
	ret = insert_all(db, d, st, run_ids, why, why_len);
	if (ret == -EIO)
		why_set(why, why_len, "cannot insert: %s", sqlite3_errmsg(db));
	if (!ret && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		ret = why_fail(-EIO, why, why_len, "cannot commit: %s", sqlite3_errmsg(db));
	if (ret)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	else if (first_run)
		*first_run = d->n_runs ? run_ids[0] : 0;
out:
	for (int i = 0; i < I_COUNT; i++)
		sqlite3_finalize(st[i]);
	free(run_sql.p);
	free(cell_sql.p);
	free(run_ids);
	return ret;
}

/* ---------------------------------------------------------------- merge */

struct run_identity {
	char *started, *hostname, *command;
	int source;		/* -1: the output; else the input's index */
	int64_t id;
};

static int compare_text(const char *a, const char *b)
{
	if (!a || !b)
		return (a != NULL) - (b != NULL);
	return strcmp(a, b);
}

static int compare_identities(const void *x, const void *y)
{
	const struct run_identity *a = x, *b = y;
	int c = compare_text(a->started, b->started);

	if (!c)
		c = compare_text(a->hostname, b->hostname);
	if (!c)
		c = compare_text(a->command, b->command);
	if (!c)
		c = (a->source > b->source) - (a->source < b->source);
	return c;
}

static char *column_strdup(sqlite3_stmt *st, int col, bool *nomem)
{
	const unsigned char *s = sqlite3_column_text(st, col);
	char *copy;

	if (sqlite3_column_type(st, col) == SQLITE_NULL || !s)
		return NULL;
	copy = strdup((const char *)s);
	if (!copy)
		*nomem = true;
	return copy;
}

/*
 * Reads the run identities of the database at path (opened read-only) into ids.
 * may_be_new: a file with no tables at all is accepted as empty.
 */
static int read_identities(const char *path, int source, bool may_be_new,
			   struct run_identity **ids, size_t *n, size_t *cap, char *why,
			   size_t why_len)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int version = -1, tables = 0, rc, ret = 0;
	bool nomem = false;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		goto sqlite_trouble;
	sqlite3_busy_timeout(db, 10000);
	if (sqlite3_prepare_v2(db, "SELECT (SELECT user_version FROM pragma_user_version),"
			       " (SELECT count(*) FROM sqlite_master)", -1, &st, NULL) !=
	    SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
		goto sqlite_trouble;
	version = sqlite3_column_int(st, 0);
	tables = sqlite3_column_int(st, 1);
	sqlite3_finalize(st);
	st = NULL;
	if (version > STORE_SCHEMA_VERSION) {
		ret = why_fail(-EPROTO, why, why_len,
			       "'%s' has schema version %d, newer than this build's %d", path,
			       version, STORE_SCHEMA_VERSION);
		goto out;
	}
	if (version == 0) {
		if (may_be_new && tables == 0)
			goto out;
		ret = why_fail(-EPROTO, why, why_len, "'%s' is not an attnbench database", path);
		goto out;
	}
	if (sqlite3_prepare_v2(db, "SELECT id, started, hostname, command FROM runs", -1, &st,
			       NULL) != SQLITE_OK)
		goto sqlite_trouble;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct run_identity *r;

		if (*n == *cap) {
			struct run_identity *grown = realloc(*ids, (*cap = 2 * *cap + 64) *
							     sizeof(*grown));

			if (!grown) {
				nomem = true;
				break;
			}
			*ids = grown;
		}
		r = &(*ids)[(*n)++];
		r->id = sqlite3_column_int64(st, 0);
		r->source = source;
		r->started = column_strdup(st, 1, &nomem);
		r->hostname = column_strdup(st, 2, &nomem);
		r->command = column_strdup(st, 3, &nomem);
		if (nomem)
			break;
	}
	if (nomem) {
		ret = why_fail(-ENOMEM, why, why_len, "out of memory");
	} else if (rc != SQLITE_DONE) {
		goto sqlite_trouble;
	}
	goto out;
sqlite_trouble:
	why_set(why, why_len, "cannot read '%s': %s", path,
		db ? sqlite3_errmsg(db) : "out of memory");
	ret = version < 0 ? -EPROTO : -EIO;
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return ret;
}

int csvio_merge_check(const char *out_path, const char *const *inputs, int n,
		      char *why, size_t why_len)
{
	struct run_identity *ids = NULL;
	size_t count = 0, cap = 0;
	char out_real[PATH_MAX], in_real[PATH_MAX];
	bool out_exists = !access(out_path, F_OK);
	struct stat st;
	int ret = 0;

	if (out_exists && !realpath(out_path, out_real))
		out_real[0] = '\0';
	for (int i = 0; i < n && !ret; i++) {
		if (stat(inputs[i], &st)) {
			ret = why_fail(-ENOENT, why, why_len, "cannot open input '%s': %s",
				       inputs[i], strerror(errno));
		} else if (out_exists && realpath(inputs[i], in_real) && out_real[0] &&
			   !strcmp(in_real, out_real)) {
			ret = why_fail(-EINVAL, why, why_len, "input '%s' is the output",
				       inputs[i]);
		}
	}
	if (!ret && out_exists)
		ret = read_identities(out_path, -1, true, &ids, &count, &cap, why, why_len);
	for (int i = 0; i < n && !ret; i++)
		ret = read_identities(inputs[i], i, false, &ids, &count, &cap, why, why_len);
	if (!ret && count > 1) {
		qsort(ids, count, sizeof(*ids), compare_identities);
		for (size_t i = 1; i < count && !ret; i++) {
			const struct run_identity *a = &ids[i - 1], *b = &ids[i];

			if (compare_text(a->started, b->started) ||
			    compare_text(a->hostname, b->hostname) ||
			    compare_text(a->command, b->command))
				continue;
			ret = -EEXIST;
			if (a->source < 0)
				why_set(why, why_len, "run %lld of '%s' (started %s on %s) is already "
					"in '%s' as run %lld", (long long)b->id, inputs[b->source],
					b->started ? b->started : "?",
					b->hostname ? b->hostname : "?", out_path, (long long)a->id);
			else
				why_set(why, why_len, "run %lld of '%s' (started %s on %s) is also "
					"run %lld of '%s'", (long long)b->id, inputs[b->source],
					b->started ? b->started : "?",
					b->hostname ? b->hostname : "?", (long long)a->id,
					inputs[a->source]);
		}
	}
	for (size_t i = 0; i < count; i++) {
		free(ids[i].started);
		free(ids[i].hostname);
		free(ids[i].command);
	}
	free(ids);
	return ret;
}

/* "file:<path>?mode=ro" with the characters URIs reserve percent-encoded. */
static char *read_only_uri(const char *path)
{
	char real[PATH_MAX], hex[4];
	struct buf b = { 0 };
	int ret;

	if (!realpath(path, real))
		return NULL;
	ret = buf_str(&b, "file:");
	for (const unsigned char *s = (const unsigned char *)real; *s && !ret; s++) {
		if (*s == '%' || *s == '?' || *s == '#' || *s <= ' ' || *s >= 0x7f) {
			snprintf(hex, sizeof(hex), "%%%02X", *s);
			ret = buf_str(&b, hex);
		} else {
			ret = buf_add(&b, (const char *)s, 1);
		}
	}
	if (ret || buf_str(&b, "?mode=ro")) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

static int query_int64(sqlite3 *db, const char *sql, int64_t *value, bool *null)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*value = sqlite3_column_int64(st, 0);
		if (null)
			*null = sqlite3_column_type(st, 0) == SQLITE_NULL;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -EIO;
}

/* What is copied, in an order that satisfies the foreign keys. */
static const struct {
	const char *table;
	const char *where;	/* %s: the attached schema */
} copied_tables[] = {
	{ "runs", "" },
	{ "cells", " WHERE run_id IN (SELECT id FROM %s.runs)" },
	{ "metrics", " WHERE cell_id IN (SELECT id FROM %s.cells WHERE run_id IN"
		     " (SELECT id FROM %s.runs))" },
	{ "samples", " WHERE cell_id IN (SELECT id FROM %s.cells WHERE run_id IN"
		     " (SELECT id FROM %s.runs))" },
	{ "trials", " WHERE cell_id IN (SELECT id FROM %s.cells WHERE run_id IN"
		    " (SELECT id FROM %s.runs))" },
	{ "run_metrics", " WHERE run_id IN (SELECT id FROM %s.runs)" },
};

static int append_quoted(struct buf *b, const char *name)
{
	int ret = buf_str(b, "\"");

	for (; *name && !ret; name++)
		ret = buf_add(b, name, 1) || (*name == '"' && buf_add(b, "\"", 1)) ? -ENOMEM : 0;
	return ret ? ret : buf_str(b, "\"");
}

/*
 * INSERT INTO main.T (columns both have) SELECT ... FROM schema.T, with ids shifted by
 * the run (?1) and cell (?2) offsets. Skips a table the input does not have.
 */
static int copy_table(sqlite3 *db, const char *schema, int t, int64_t run_off,
		      int64_t cell_off, int64_t *copied)
{
	const char *table = copied_tables[t].table;
	struct buf cols = { 0 }, exprs = { 0 }, sql = { 0 };
	sqlite3_stmt *st = NULL;
	char where[512];
	int ret = 0, rc, n = 0;
	bool present = false;

	*copied = 0;
	if (sqlite3_prepare_v2(db, "SELECT m.name FROM pragma_table_info(?1, 'main') m"
			       " WHERE m.name IN (SELECT s.name FROM pragma_table_info(?1, ?2) s)"
			       " ORDER BY m.cid", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, schema, -1, SQLITE_STATIC);
	while (!ret && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		const char *shift =
			!strcmp(name, "id") ? (!strcmp(table, "runs") ? " + ?1" : " + ?2") :
			!strcmp(name, "run_id") ? " + ?1" : !strcmp(name, "cell_id") ? " + ?2" : "";

		present = true;
		ret = buf_str(&cols, n ? ", " : "") || append_quoted(&cols, name) ||
		      buf_str(&exprs, n ? ", " : "") || append_quoted(&exprs, name) ||
		      buf_str(&exprs, shift) ? -ENOMEM : 0;
		n++;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = -EIO;
	sqlite3_finalize(st);
	st = NULL;
	if (ret || !present)
		goto out;
	snprintf(where, sizeof(where), copied_tables[t].where, schema, schema);
	if (buf_str(&sql, "INSERT INTO main.") || append_quoted(&sql, table) ||
	    buf_str(&sql, " (") || buf_str(&sql, cols.p) || buf_str(&sql, ") SELECT ") ||
	    buf_str(&sql, exprs.p) || buf_str(&sql, " FROM ") || buf_str(&sql, schema) ||
	    buf_str(&sql, ".") || append_quoted(&sql, table) || buf_str(&sql, where)) {
		ret = -ENOMEM;
		goto out;
	}
	if (sqlite3_prepare_v2(db, sql.p, -1, &st, NULL) != SQLITE_OK) {
		ret = -EIO;
		goto out;
	}
	sqlite3_bind_int64(st, 1, run_off);
	sqlite3_bind_int64(st, 2, cell_off);
	if (sqlite3_step(st) != SQLITE_DONE)
		ret = -EIO;
	else
		*copied = sqlite3_changes(db);
out:
	sqlite3_finalize(st);
	free(cols.p);
	free(exprs.p);
	free(sql.p);
	return ret;
}

/* Copies the attached input schema into main; called inside a transaction. */
static int copy_input(sqlite3 *db, const char *schema, const char *path, int64_t *runs,
		      int64_t *cells, char *why, size_t why_len)
{
	char sql[512];
	int64_t max_run, min_run, max_cell, min_cell, copied, dup_src = 0, dup_main = 0;
	bool no_runs, no_cells;
	sqlite3_stmt *st;
	int ret = 0, rc;

	/* the check before the transaction, again: nothing else may have added the run */
	snprintf(sql, sizeof(sql), "SELECT s.id, r.id FROM %s.runs s JOIN main.runs r"
		 " ON r.started IS s.started AND r.hostname IS s.hostname"
		 " AND r.command IS s.command LIMIT 1", schema);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		dup_src = sqlite3_column_int64(st, 0);
		dup_main = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return why_fail(-EEXIST, why, why_len,
				"run %lld of '%s' is already in the output as run %lld",
				(long long)dup_src, path, (long long)dup_main);
	if (rc != SQLITE_DONE)
		return -EIO;

	/* new ids: every id of the input shifted past the largest id in main */
	snprintf(sql, sizeof(sql), "SELECT min(id) FROM %s.runs", schema);
	if (query_int64(db, "SELECT coalesce(max(id), 0) FROM main.runs", &max_run, NULL) ||
	    query_int64(db, sql, &min_run, &no_runs))
		return -EIO;
	if (no_runs)
		return 0;
	snprintf(sql, sizeof(sql), "SELECT min(id) FROM %s.cells", schema);
	if (query_int64(db, "SELECT coalesce(max(id), 0) FROM main.cells", &max_cell, NULL) ||
	    query_int64(db, sql, &min_cell, &no_cells))
		return -EIO;
	if (no_cells)
		min_cell = 1;
	for (int t = 0; t < (int)(sizeof(copied_tables) / sizeof(copied_tables[0])) && !ret;
	     t++) {
		ret = copy_table(db, schema, t, max_run - min_run + 1, max_cell - min_cell + 1,
				 &copied);
		if (t == 0)
			*runs += copied;
		else if (t == 1)
			*cells += copied;
	}
	return ret;
}

int csvio_merge(sqlite3 *db, const char *const *inputs, int n, int64_t *runs,
		int64_t *cells, char *why, size_t why_len)
{
	int limit = sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, -1), ret = 0, attached = 0;
	int64_t first_max;
	char schema[32], attach[64];

	*runs = *cells = 0;
	if (limit < 1)
		return why_fail(-EIO, why, why_len, "SQLite allows no attached databases");
	if (query_int64(db, "SELECT coalesce(max(id), 0) FROM main.runs", &first_max, NULL))
		return why_fail(-EIO, why, why_len, "cannot read the output: %s",
				sqlite3_errmsg(db));
	for (int g = 0; g < n && !ret; g += limit) {
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
			ret = why_fail(-EIO, why, why_len, "cannot begin a transaction: %s",
				       sqlite3_errmsg(db));
			break;
		}
		for (int i = g; i < n && i < g + limit && !ret; i++) {
			char *uri = read_only_uri(inputs[i]);
			sqlite3_stmt *st;
			int rc;

			snprintf(schema, sizeof(schema), "src%d", i - g);
			if (!uri) {
				ret = why_fail(-EIO, why, why_len, "cannot open input '%s': %s",
					       inputs[i], strerror(errno));
				break;
			}
			snprintf(attach, sizeof(attach), "ATTACH DATABASE ?1 AS %s", schema);
			rc = sqlite3_prepare_v2(db, attach, -1, &st, NULL);
			if (rc == SQLITE_OK) {
				sqlite3_bind_text(st, 1, uri, -1, SQLITE_STATIC);
				rc = sqlite3_step(st);
				sqlite3_finalize(st);
			}
			free(uri);
			if (rc != SQLITE_DONE) {
				ret = why_fail(-EIO, why, why_len, "cannot attach '%s': %s",
					       inputs[i], sqlite3_errmsg(db));
				break;
			}
			attached++;
			if (sqlite3_db_readonly(db, schema) != 1) {
				ret = why_fail(-EIO, why, why_len, "input '%s' did not open "
					       "read-only (SQLite needs URI filenames enabled)",
					       inputs[i]);
				break;
			}
			ret = copy_input(db, schema, inputs[i], runs, cells, why, why_len);
			if (ret == -EIO || ret == -ENOMEM)
				why_set(why, why_len, "cannot copy '%s': %s", inputs[i],
					ret == -ENOMEM ? "out of memory" : sqlite3_errmsg(db));
		}
		if (!ret && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			ret = why_fail(-EIO, why, why_len, "cannot commit: %s", sqlite3_errmsg(db));
		if (ret)
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		for (int k = 0; k < attached; k++) {
			char detach[64];

			snprintf(detach, sizeof(detach), "DETACH DATABASE src%d", k);
			sqlite3_exec(db, detach, NULL, NULL, NULL);
		}
		attached = 0;
	}
	if (ret && n > limit) {
		/* earlier groups were committed: take their runs out again (cascades) */
		sqlite3_stmt *st;

		if (sqlite3_prepare_v2(db, "DELETE FROM runs WHERE id > ?1", -1, &st, NULL) ==
		    SQLITE_OK) {
			sqlite3_bind_int64(st, 1, first_max);
			sqlite3_step(st);
			sqlite3_finalize(st);
		}
		*runs = *cells = 0;
	}
	return ret;
}
