/*
 * csv-import-store.c - the second half of import (csv-import.h): the runs of a parsed,
 * validated file, with their cells, metrics, samples, trials and run metrics, into the
 * database in one transaction; a run already there refuses the whole import.
 */
#include "csv-import.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "buf.h"
#include "csv-format.h"
#include "why.h"

static void bind_value(sqlite3_stmt *st, int at, const struct csv_value *v)
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

/* A number that may be missing (NULL), as metrics and run metrics hold it. */
static void bind_number(sqlite3_stmt *st, int at, bool null, double value)
{
	if (null)
		sqlite3_bind_null(st, at);
	else
		sqlite3_bind_double(st, at, value);
}

/*
 * The rows (cell, idx, value) of a list column: samples (reals, with their rounds; round 1
 * when rounds is NULL) or trials (ints).
 */
static int insert_list(sqlite3_stmt *st, int64_t cell, const int64_t *idx,
		       const double *reals, const int *rounds, const int *ints, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		sqlite3_bind_int64(st, 1, cell);
		sqlite3_bind_int64(st, 2, idx[k]);
		if (reals) {
			sqlite3_bind_double(st, 3, reals[k]);
			sqlite3_bind_int(st, 4, rounds ? rounds[k] : 1);
		} else {
			sqlite3_bind_int(st, 3, ints[k]);
		}
		if (step_reset(st))
			return -EIO;
	}
	return 0;
}

enum import_stmt { I_FIND, I_RUN, I_RUN_METRIC, I_CELL, I_METRIC, I_SAMPLE, I_TRIAL,
		   I_COUNT };

static int insert_all(sqlite3 *db, const struct csv_import_data *d, sqlite3_stmt **st,
		      int64_t *run_ids, char *why, size_t why_len)
{
	for (size_t r = 0; r < d->n_runs; r++) {
		const struct csv_run *run = &d->runs[r];
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
			for (int k = 0; k < CSV_RM_KEYS; k++)
				sqlite3_bind_text(s, 2 + k, run->rm[i].keys[k], -1, SQLITE_STATIC);
			bind_number(s, 2 + CSV_RM_KEYS, run->rm[i].null, run->rm[i].value);
			if (step_reset(s))
				return -EIO;
		}
	}
	for (size_t i = 0; i < d->n_cells; i++) {
		const struct csv_cell *c = &d->cells[i];
		int64_t cell;

		sqlite3_bind_int64(st[I_CELL], 1, run_ids[c->run]);
		for (int k = 0; k < C_COUNT; k++)
			bind_value(st[I_CELL], k + 2, &c->v[k]);
		if (step_reset(st[I_CELL]))
			return -EIO;
		cell = sqlite3_last_insert_rowid(db);
		for (size_t k = 0; k < c->n_metrics; k++) {
			const struct csv_metric_column *m = &d->metrics[c->metrics[k].column];

			sqlite3_bind_int64(st[I_METRIC], 1, cell);
			sqlite3_bind_text(st[I_METRIC], 2, m->name, -1, SQLITE_STATIC);
			bind_number(st[I_METRIC], 3, c->metrics[k].null, c->metrics[k].value);
			sqlite3_bind_text(st[I_METRIC], 4, m->unit, -1, SQLITE_STATIC);
			if (step_reset(st[I_METRIC]))
				return -EIO;
		}
		if (insert_list(st[I_SAMPLE], cell, c->sample_idx, c->samples, c->rounds, NULL,
				c->n_samples) ||
		    insert_list(st[I_TRIAL], cell, c->trial_idx, NULL, NULL, c->trials,
				c->n_trials))
			return -EIO;
	}
	return 0;
}

int csv_import_store(sqlite3 *db, const struct csv_import_data *d, int64_t *first_run, char *why,
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
		[I_SAMPLE] = "INSERT INTO samples (cell_id, idx, seconds, round)"
				" VALUES (?, ?, ?, ?)",
		[I_TRIAL] = "INSERT INTO trials (cell_id, idx, correct) VALUES (?, ?, ?)",
	};
	sqlite3_stmt *st[I_COUNT] = { NULL };
	int64_t *run_ids = calloc(d->n_runs ? d->n_runs : 1, sizeof(*run_ids));
	int ret = 0;

	if (buf_str(&run_sql, "INSERT INTO runs (") ||
	    csv_column_list(&run_sql, csv_run_columns, R_COUNT, false) ||
	    buf_str(&run_sql, ") VALUES (") ||
	    csv_column_list(&run_sql, csv_run_columns, R_COUNT, true) ||
	    buf_str(&run_sql, ")") ||
	    buf_str(&cell_sql, "INSERT INTO cells (run_id, ") ||
	    csv_column_list(&cell_sql, csv_cell_columns, C_COUNT, false) ||
	    buf_str(&cell_sql, ") VALUES (?, ") ||
	    csv_column_list(&cell_sql, csv_cell_columns, C_COUNT, true) ||
	    buf_str(&cell_sql, ")") || !run_ids) {
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
