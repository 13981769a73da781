/*
 * csv-export.c - runs as CSV (csv-export.h): the header with one column per metric
 * present, then one row per cell with RFC 4180 quoting and the spreadsheet rule, the
 * latency samples and trial outcomes as lists and the run metrics as JSON; and the run
 * key, which import checks.
 */
#include "csv-export.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "csv-format.h"
#include "why.h"

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

void csv_run_key(const char *started, const char *hostname, const char *command,
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

int csv_export_field(FILE *out, const char *text, size_t len, bool escape)
{
	bool prefix = escape && csv_looks_like_formula(text, len);
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

/* The distinct (name, unit) of the metrics of the runs, sorted. */
static int collect_metric_columns(sqlite3 *db, const int64_t *runs, size_t n_runs,
				  struct csv_metric_column **out, size_t *count)
{
	static const char sql[] =
		"SELECT DISTINCT m.name, m.unit FROM metrics m JOIN cells c ON c.id = m.cell_id"
		" WHERE c.run_id = ?1";
	struct csv_metric_column *m = NULL;
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

			if (buf_grow(&m, n, &cap, sizeof(*m))) {
				rc = SQLITE_NOMEM;
				break;
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
		csv_metric_columns_free(m, n);
		return rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
	}
	if (n)
		qsort(m, n, sizeof(*m), csv_metric_column_compare);
	for (size_t i = 0; i < n; i++) {
		if (kept && !csv_metric_column_compare(&m[kept - 1], &m[i])) {
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

static int write_header(FILE *out, const struct csv_metric_column *m, size_t n_metrics)
{
	struct buf b = { 0 };
	int ret = 0;

	fputs("run_key", out);
	for (int c = 0; c < R_COUNT; c++)
		fprintf(out, ",run_%s", csv_run_columns[c].name);
	for (int c = 0; c < C_COUNT; c++)
		fprintf(out, ",%s", csv_cell_columns[c].name);
	for (size_t i = 0; i < n_metrics && !ret; i++) {
		b.len = 0;
		ret = buf_str(&b, CSV_METRIC_PREFIX) || buf_str(&b, m[i].name) ||
		      buf_str(&b, "[") || buf_str(&b, m[i].unit) || buf_str(&b, "]") ?
		      -ENOMEM : 0;
		fputc(',', out);
		if (!ret)
			ret = csv_export_field(out, b.p, b.len, false);
	}
	fputs(",samples_s,sample_rounds,trials,run_metrics\r\n", out);
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
		for (int k = 0; k < CSV_RM_KEYS && !ret; k++) {
			char key[32];

			snprintf(key, sizeof(key), "%s\"%s\":", k ? "," : "",
				 csv_run_metric_keys[k]);
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
	if (buf_str(&sql, "SELECT ") || csv_column_list(&sql, csv_run_columns, R_COUNT, false) ||
	    buf_str(&sql, " FROM runs WHERE id = ?1")) {
		free(sql.p);
		return -ENOMEM;
	}
	rc = sqlite3_prepare_v2(db, sql.p, -1, &st, NULL);
	free(sql.p);
	if (rc != SQLITE_OK)
		return why_fail(-EIO, why, why_len, "cannot read runs: %s", sqlite3_errmsg(db));
	sqlite3_bind_int64(st, 1, run);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		for (int c = 0; c < R_COUNT && !ret; c++)
			t->values[c] = column_text(st, c, &t->lens[c], &ret);
		csv_run_key(t->values[R_STARTED], t->values[R_HOSTNAME], t->values[R_COMMAND],
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
	sqlite3_stmt *cells, *metrics, *samples, *rounds, *trials;
	struct csv_metric_column *mcols;
	size_t n_mcols;
	char (*mvalues)[64];	/* the current cell's metric fields, "" when absent */
	struct buf list, json;
};

/* A comma, then text as a field (nothing for NULL); only the comma once ret is set. */
static int write_next_field(FILE *out, const char *text, size_t len, bool escape, int ret)
{
	fputc(',', out);
	return ret || !text ? ret : csv_export_field(out, text, len, escape);
}

static int write_cell(struct export_ctx *x, const struct run_text *run)
{
	sqlite3_stmt *st = x->cells;
	int64_t cell = sqlite3_column_int64(st, 0);
	int rc, ret = 0;
	FILE *out = x->out;

	fputs(run->key, out);
	for (int c = 0; c < R_COUNT && !ret; c++)
		ret = write_next_field(out, run->values[c], run->lens[c],
				       csv_is_text_kind(csv_run_columns[c].kind), 0);
	for (int c = 0; c < C_COUNT && !ret; c++) {
		size_t len;
		char *text = column_text(st, c + 1, &len, &ret);

		ret = write_next_field(out, text, len, csv_is_text_kind(csv_cell_columns[c].kind),
				       ret);
		free(text);
	}
	if (ret)
		return ret;

	for (size_t i = 0; i < x->n_mcols; i++)
		x->mvalues[i][0] = '\0';
	sqlite3_bind_int64(x->metrics, 1, cell);
	while ((rc = sqlite3_step(x->metrics)) == SQLITE_ROW) {
		struct csv_metric_column key = {
			(char *)sqlite3_column_text(x->metrics, 0),
			(char *)sqlite3_column_text(x->metrics, 1),
		};
		struct csv_metric_column *at;

		if (!key.name || !key.unit)
			continue;
		at = bsearch(&key, x->mcols, x->n_mcols, sizeof(key), csv_metric_column_compare);
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
	ret = write_next_field(out, x->list.len ? x->list.p : NULL, x->list.len, false, ret);
	if (!ret)
		ret = list_text(x->rounds, cell, true, &x->list);
	ret = write_next_field(out, x->list.len ? x->list.p : NULL, x->list.len, false, ret);
	if (!ret)
		ret = list_text(x->trials, cell, true, &x->list);
	ret = write_next_field(out, x->list.len ? x->list.p : NULL, x->list.len, false, ret);
	ret = write_next_field(out, x->json.len ? x->json.p : NULL, x->json.len, true, ret);
	fputs("\r\n", out);
	return ret ? ret : ferror(out) ? -EIO : 0;
}

int csv_export_runs(sqlite3 *db, const int64_t *runs, size_t n_runs, FILE *out,
		    size_t *cells, char *why, size_t why_len)
{
	struct export_ctx x = { .db = db, .out = out };
	struct buf sql = { 0 };
	size_t written = 0;
	int ret;

	if (buf_str(&sql, "SELECT id, ") ||
	    csv_column_list(&sql, csv_cell_columns, C_COUNT, false) ||
	    buf_str(&sql, " FROM cells WHERE run_id = ?1 ORDER BY id")) {
		free(sql.p);
		return why_fail(-ENOMEM, why, why_len, "out of memory");
	}
	if (sqlite3_prepare_v2(db, sql.p, -1, &x.cells, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT name, unit, value FROM metrics WHERE cell_id = ?1",
			       -1, &x.metrics, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT idx, seconds FROM samples WHERE cell_id = ?1"
			       " ORDER BY idx", -1, &x.samples, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT idx, round FROM samples WHERE cell_id = ?1"
			       " ORDER BY idx", -1, &x.rounds, NULL) != SQLITE_OK ||
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
	csv_metric_columns_free(x.mcols, x.n_mcols);
	sqlite3_finalize(x.cells);
	sqlite3_finalize(x.metrics);
	sqlite3_finalize(x.samples);
	sqlite3_finalize(x.rounds);
	sqlite3_finalize(x.trials);
	return ret;
}
