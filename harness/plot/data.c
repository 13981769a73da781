/*
 * data.c - the queries plot makes on the store: the run's variants in registry order and
 * their titles, the common shape of a task, blocks of rows written to .dat files, latency
 * samples, means of metrics, distinct values, and the checks made before anything is
 * written (the run exists and has cells to plot; the baseline and Pareto length).
 */
#include "plot-internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queries.h"
#include "variant.h"

/* Prepares sql and binds the run id to ?1; NULL on trouble (why is set). */
sqlite3_stmt *plot_prepare(struct plot_ctx *c, const char *sql)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
		why_set(c->why, c->why_len, "cannot read results: %s", sqlite3_errmsg(c->db));
		return NULL;
	}
	sqlite3_bind_int64(st, 1, c->o->run_id);
	return st;
}

/* The failure of a statement that stopped stepping early. */
int plot_read_failed(struct plot_ctx *c)
{
	return why_fail(-EIO, c->why, c->why_len, "cannot read results: %s",
			sqlite3_errmsg(c->db));
}

/* The variants of the run in registry order; unknown names after the known ones. */
int plot_load_variants(struct plot_ctx *c)
{
	sqlite3_stmt *st = plot_prepare(c, "SELECT DISTINCT variant FROM results"
					 " WHERE run_id = ?1");
	int extra = 0, rc;

	if (!st)
		return -EIO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && c->n_variants < MAX_VARIANTS) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		const struct variant_ops *v;
		struct run_variant *rv = &c->variants[c->n_variants++];

		snprintf(rv->name, sizeof(rv->name), "%s", name ? name : "?");
		v = variant_find(rv->name);
		rv->style = -1;
		for (int i = 0; v && i < variant_count(); i++)
			if (variant_at(i) == v)
				rv->style = i + 1;
		if (rv->style < 0)
			rv->style = variant_count() + ++extra;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return plot_read_failed(c);
	/* insertion sort by style: a handful of entries */
	for (int i = 1; i < c->n_variants; i++)
		for (int j = i; j > 0 && c->variants[j - 1].style > c->variants[j].style; j--) {
			struct run_variant t = c->variants[j];

			c->variants[j] = c->variants[j - 1];
			c->variants[j - 1] = t;
		}
	return 0;
}

/*
 * A variant's name as figures show it on a pattern: with " (acausal)" when it failed the
 * causality test there (SPEC section 4: flagged in every table and plot).
 */
void plot_variant_title(struct plot_ctx *c, const struct run_variant *v, const char *pattern,
			  char *buf, size_t len)
{
	sqlite3_stmt *st = plot_prepare(c, "SELECT 1 FROM cells WHERE run_id = ?1 AND variant = ?2"
				   " AND pattern = ?3 AND task = 'causality' AND status = 'failed'"
				   " LIMIT 1");
	bool acausal = false;

	if (st) {
		sqlite3_bind_text(st, 2, v->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, pattern, -1, SQLITE_STATIC);
		acausal = sqlite3_step(st) == SQLITE_ROW;
		sqlite3_finalize(st);
	}
	snprintf(buf, len, "%s%s", v->name, acausal ? " (acausal)" : "");
}

int plot_common_shape(struct plot_ctx *c, const char *task, const char *pattern,
		      const char *with_variant, int shape[4])
{
	struct cell_shape at;
	int rc = store_common_shape(c->db, c->o->run_id, task, pattern, with_variant, &at);

	if (rc)
		return rc == -EIO ? plot_read_failed(c) : rc;
	shape[0] = at.d;
	shape[1] = at.heads;
	shape[2] = at.kv_heads;
	shape[3] = at.batch;
	return 0;
}

/*
 * Steps st (bound), writing each row as a line of numbers (NaN for NULL) under a block
 * header "# TITLE" and "# COLUMNS"; blocks after the first are preceded by two blank
 * lines, as gnuplot's `index` wants. Widens c->x_min..x_max by the first column and
 * c->y_min..y_max by the positive values of the others. Returns the number of rows, or
 * -EIO.
 */
int plot_write_block(struct plot_ctx *c, FILE *f, sqlite3_stmt *st, int block,
		       const char *title, const char *columns)
{
	int rows = 0, rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		double x = sqlite3_column_double(st, 0);

		if (!rows++) {
			char safe[200];

			plot_comment_text(title, safe, sizeof(safe));
			fprintf(f, "%s# %s\n# %s\n", block ? "\n\n" : "", safe, columns);
		}
		if (x > 0 && (!c->x_max || x < c->x_min))
			c->x_min = x;
		if (x > c->x_max)
			c->x_max = x;
		for (int k = 0; k < sqlite3_column_count(st); k++) {
			fputs(k ? "\t" : "", f);
			double y = sqlite3_column_double(st, k);

			if (sqlite3_column_type(st, k) == SQLITE_NULL) {
				fputs("NaN", f);
				continue;
			}
			fprintf(f, "%.9g", y);
			if (k && y > 0 && (!c->y_max || y < c->y_min))
				c->y_min = y;
			if (k && y > c->y_max)
				c->y_max = y;
		}
		fputc('\n', f);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? rows : plot_read_failed(c);
}

/*
 * One block per variant of the run: the rows of sql with ?1 the run, ?2 the pattern, ?3
 * the variant and ?4.. the ints in binds. blocks gets the variants that had rows. Returns
 * their number, or -errno.
 */
int plot_write_variant_blocks(struct plot_ctx *c, FILE *f, const char *sql,
				const char *pattern, const int *binds, int n_binds,
				const char *columns, const struct run_variant **blocks)
{
	sqlite3_stmt *st = plot_prepare(c, sql);
	char title[96];
	int n = 0;

	if (!st)
		return -EIO;
	c->x_min = c->x_max = c->y_min = c->y_max = 0;
	sqlite3_bind_text(st, 2, pattern, -1, SQLITE_STATIC);
	for (int k = 0; k < n_binds; k++)
		sqlite3_bind_int(st, 4 + k, binds[k]);
	for (int i = 0; i < c->n_variants; i++) {
		int rows;

		sqlite3_bind_text(st, 3, c->variants[i].name, -1, SQLITE_STATIC);
		snprintf(title, sizeof(title), "variant %s", c->variants[i].name);
		rows = plot_write_block(c, f, st, n, title, columns);
		if (rows < 0) {
			sqlite3_finalize(st);
			return rows;
		}
		if (rows)
			blocks[n++] = &c->variants[i];
	}
	sqlite3_finalize(st);
	return n;
}

/* The mean of a per-cell metric over the task's ok cells on a pattern; NAN when none. */
double plot_mean_metric(struct plot_ctx *c, const char *task, const char *pattern,
			  const char *metric)
{
	sqlite3_stmt *st = plot_prepare(c,
		"SELECT avg(m.value) FROM metrics m JOIN cells c ON c.id = m.cell_id"
		" WHERE c.run_id = ?1 AND c.task = ?2 AND c.pattern = ?3 AND m.name = ?4"
		" AND c.status = 'ok'");
	double v = NAN;

	if (!st)
		return NAN;
	sqlite3_bind_text(st, 2, task, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, pattern, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, metric, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_double(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Appends the stored latency samples (seconds) that st yields to *x. 0 or -errno. */
int plot_load_samples(struct plot_ctx *c, sqlite3_stmt *st, double **x, size_t *n,
			size_t *cap)
{
	int rc;

	*n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == *cap) {
			size_t grow = *cap ? 2 * *cap : 256;
			double *p = realloc(*x, grow * sizeof(*p));

			if (!p) {
				sqlite3_reset(st);
				return why_fail(-ENOMEM, c->why, c->why_len,
						"out of memory reading samples");
			}
			*x = p;
			*cap = grow;
		}
		(*x)[(*n)++] = sqlite3_column_double(st, 0);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : plot_read_failed(c);
}

/* Distinct values of a column of the task's ok cells on a pattern, ascending. */
int plot_distinct_values(struct plot_ctx *c, const char *column, const char *pattern,
			   double *out, int max)
{
	char sql[256];
	sqlite3_stmt *st;
	int n = 0;

	snprintf(sql, sizeof(sql),
		 "SELECT DISTINCT %s FROM results WHERE run_id = ?1 AND task = 'passkey'"
		 " AND pattern = ?2 AND status = 'ok' AND accuracy IS NOT NULL"
		 " AND %s IS NOT NULL ORDER BY 1", column, column);
	st = plot_prepare(c, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 2, pattern, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW && n < max)
		out[n++] = sqlite3_column_double(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* Whether the run exists, and whether it has anything to plot. */
int plot_check_run(struct plot_ctx *c)
{
	sqlite3_stmt *st;
	int rc = store_find_run(c->db, c->o->run_id);

	if (rc == -ENOENT)
		return why_fail(-ENOENT, c->why, c->why_len, "no run %lld in the database",
				(long long)c->o->run_id);
	if (rc)
		return plot_read_failed(c);
	st = plot_prepare(c, "SELECT count(*) FROM results WHERE run_id = ?1 AND status = 'ok'"
		     " AND ((task = 'speed' AND (latency_ms > 0 OR peak_bytes > 0))"
		     " OR (task = 'fidelity' AND rel_err > 0)"
		     " OR (task IN ('passkey', 'recall') AND accuracy IS NOT NULL))");
	if (!st)
		return -EIO;
	rc = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_finalize(st);
	if (rc < 0)
		return plot_read_failed(c);
	if (!rc)
		return why_fail(-ENODATA, c->why, c->why_len, "run %lld has no successful speed, "
				"fidelity, passkey or recall cells to plot",
				(long long)c->o->run_id);
	return 0;
}

/* The speed lengths of the run, "256, 1024", for messages. */
static void speed_lengths(struct plot_ctx *c, char *buf, size_t len)
{
	sqlite3_stmt *st = plot_prepare(c, "SELECT group_concat(n, ', ') FROM (SELECT DISTINCT n"
				   " FROM results WHERE run_id = ?1 AND task = 'speed'"
				   " AND status = 'ok' AND latency_ms > 0 ORDER BY n)");

	snprintf(buf, len, "none");
	if (!st)
		return;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
}

/*
 * The baseline (whether it has speed cells) and the Pareto length (the largest speed N
 * unless given); an explicit choice that the run cannot honour is an error (-EINVAL).
 */
int plot_resolve_choices(struct plot_ctx *c)
{
	sqlite3_stmt *st;
	char lengths[256];
	int rc;

	c->baseline = c->o->baseline ? c->o->baseline : PLOT_DEFAULT_BASELINE;
	st = plot_prepare(c, "SELECT 1 FROM results WHERE run_id = ?1 AND task = 'speed'"
		     " AND variant = ?2 AND status = 'ok' AND latency_ms > 0 LIMIT 1");
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 2, c->baseline, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return plot_read_failed(c);
	c->have_baseline = rc == SQLITE_ROW;
	if (c->o->baseline && !c->have_baseline)
		return why_fail(-EINVAL, c->why, c->why_len, "baseline '%s' has no successful "
				"speed cells in run %lld", c->baseline, (long long)c->o->run_id);

	st = plot_prepare(c, c->o->pareto_length ?
		     "SELECT ?2 FROM results WHERE run_id = ?1 AND task = 'speed'"
		     " AND status = 'ok' AND latency_ms > 0 AND n = ?2 LIMIT 1" :
		     "SELECT max(n) FROM results WHERE run_id = ?1 AND task = 'speed'"
		     " AND status = 'ok' AND latency_ms > 0");
	if (!st)
		return -EIO;
	if (c->o->pareto_length)
		sqlite3_bind_int64(st, 2, c->o->pareto_length);
	rc = sqlite3_step(st);
	c->pareto_length = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return plot_read_failed(c);
	if (c->o->pareto_length && !c->pareto_length) {
		speed_lengths(c, lengths, sizeof(lengths));
		return why_fail(-EINVAL, c->why, c->why_len, "no speed cells at N = %ld in run %lld"
				" for the Pareto front (speed lengths: %s)", c->o->pareto_length,
				(long long)c->o->run_id, lengths);
	}
	return 0;
}
