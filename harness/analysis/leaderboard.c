/*
 * leaderboard.c - per-pattern leaderboards of a run in CAB's style: each variant's
 * metrics averaged over the cells every variant completed, z-normalised across
 * variants, signed, averaged per task and then into the compositional index.
 */
#include "leaderboard.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const task_names[REPORT_TASKS] = {
	"fidelity", "passkey", "recall", "speed", "causality",
};

static const struct {
	enum report_task task;
	int sign;
} metric_info[REPORT_METRICS] = {
	[REPORT_REL_ERR] = { REPORT_FIDELITY, -1 },
	[REPORT_COSINE] = { REPORT_FIDELITY, +1 },
	[REPORT_PASSKEY_ACC] = { REPORT_PASSKEY, +1 },
	[REPORT_RECALL_ACC] = { REPORT_RECALL, +1 },
	[REPORT_LOG_LATENCY] = { REPORT_SPEED, -1 },
	[REPORT_LOG_MEMORY] = { REPORT_SPEED, -1 },
	[REPORT_CAUSAL_PASS] = { REPORT_CAUSALITY, +1 },
};

enum report_task report_metric_task(enum report_metric m)
{
	return metric_info[m].task;
}

int report_metric_sign(enum report_metric m)
{
	return metric_info[m].sign;
}

const char *report_task_name(enum report_task t)
{
	return task_names[t];
}

/*
 * The cells of a pattern that enter the leaderboard: ok cells of the ranked tasks, plus
 * causality cells that failed the test (a fail is a result there), restricted to the cell
 * keys (task, shape, regime) that every variant having the task completed.
 */
static const char common_cte[] =
	"WITH c AS (SELECT variant, task, status, n, m, d, heads, kv_heads, batch,"
	"  ifnull(regime, '') AS regime, rel_err, cosine, accuracy, latency_ms, peak_bytes"
	"  FROM results WHERE run_id = ?1 AND pattern = ?2"
	"  AND task IN ('fidelity', 'passkey', 'recall', 'speed', 'causality')"
	"  AND (status = 'ok' OR (task = 'causality' AND status = 'failed'))),"
	" nv AS (SELECT task, count(DISTINCT variant) AS k FROM c GROUP BY task),"
	" common AS (SELECT task, n, m, d, heads, kv_heads, batch, regime FROM c"
	"  GROUP BY task, n, m, d, heads, kv_heads, batch, regime"
	"  HAVING count(DISTINCT variant) = (SELECT k FROM nv WHERE nv.task = c.task))";

static sqlite3_stmt *prepare(sqlite3 *db, const char *head, const char *tail,
			     int64_t run_id, const char *pattern)
{
	char sql[2048];
	sqlite3_stmt *st;

	snprintf(sql, sizeof(sql), "%s%s", head, tail);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return NULL;
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_text(st, 2, pattern, -1, SQLITE_TRANSIENT);
	return st;
}

static int task_index(const char *name)
{
	for (int t = 0; t < REPORT_TASKS; t++)
		if (!strcmp(task_names[t], name))
			return t;
	return -1;
}

static struct report_row *row_find(struct leaderboard *lb, const char *variant)
{
	for (int i = 0; i < lb->count; i++)
		if (!strcmp(lb->rows[i].variant, variant))
			return &lb->rows[i];
	return NULL;
}

static struct report_row *row_add(struct leaderboard *lb, const char *variant)
{
	struct report_row *grown = realloc(lb->rows, (size_t)(lb->count + 1) * sizeof(*grown));
	struct report_row *r;

	if (!grown)
		return NULL;
	lb->rows = grown;
	r = &lb->rows[lb->count++];
	memset(r, 0, sizeof(*r));
	snprintf(r->variant, sizeof(r->variant), "%s", variant);
	return r;
}

/*
 * Every variant with a result on the pattern, its failed cells, causality tally and
 * unstable speed cells.
 */
static int load_variants(sqlite3 *db, int64_t run_id, struct leaderboard *lb)
{
	sqlite3_stmt *st = prepare(db,
		"SELECT variant,"
		" sum(status IN ('failed', 'crashed', 'timeout', 'oom', 'nan', 'corrupt')"
		"     AND task <> 'causality'),"
		" sum(task = 'causality' AND status = 'ok'),"
		" sum(task = 'causality' AND status IN ('ok', 'failed')),"
		" sum(task = 'speed' AND status = 'ok' AND EXISTS (SELECT 1 FROM metrics m"
		"     WHERE m.cell_id = cells.id AND m.name = 'unstable' AND m.value > 0))"
		" FROM cells WHERE run_id = ?1 AND pattern = ?2 AND status <> 'unsupported'",
		" GROUP BY variant ORDER BY variant", run_id, lb->pattern);
	int rc;

	if (!st)
		return -EIO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct report_row *r = row_add(lb, (const char *)sqlite3_column_text(st, 0));

		if (!r) {
			sqlite3_finalize(st);
			return -ENOMEM;
		}
		r->failed_cells = sqlite3_column_int(st, 1);
		r->causal_pass = sqlite3_column_int(st, 2);
		r->causal_total = sqlite3_column_int(st, 3);
		r->unstable_cells = sqlite3_column_int(st, 4);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

static int load_common_counts(sqlite3 *db, int64_t run_id, struct leaderboard *lb)
{
	sqlite3_stmt *st = prepare(db, common_cte, " SELECT task, count(*) FROM common"
				   " GROUP BY task", run_id, lb->pattern);
	int rc;

	if (!st)
		return -EIO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int t = task_index((const char *)sqlite3_column_text(st, 0));

		if (t >= 0)
			lb->common_cells[t] = sqlite3_column_int(st, 1);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Sums of each metric over the common cells into the rows (raw[] = sum, then mean). */
static int load_metrics(sqlite3 *db, int64_t run_id, struct leaderboard *lb)
{
	sqlite3_stmt *st = prepare(db, common_cte,
		" SELECT c.variant, c.task, c.status, c.rel_err, c.cosine, c.accuracy,"
		" c.latency_ms, c.peak_bytes FROM c"
		" JOIN common USING (task, n, m, d, heads, kv_heads, batch, regime)",
		run_id, lb->pattern);
	double (*count)[REPORT_METRICS];
	int rc, ret = 0;

	if (!st)
		return -EIO;
	count = calloc((size_t)lb->count + 1, sizeof(*count));
	if (!count) {
		sqlite3_finalize(st);
		return -ENOMEM;
	}
	for (int i = 0; i < lb->count; i++)
		for (int m = 0; m < REPORT_METRICS; m++)
			lb->rows[i].raw[m] = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct report_row *r = row_find(lb, (const char *)sqlite3_column_text(st, 0));
		int t = task_index((const char *)sqlite3_column_text(st, 1));
		double value[REPORT_METRICS];
		bool has[REPORT_METRICS] = { false };

		if (!r || t < 0)
			continue;
		switch (t) {
		case REPORT_FIDELITY:
			has[REPORT_REL_ERR] = sqlite3_column_type(st, 3) != SQLITE_NULL;
			value[REPORT_REL_ERR] = sqlite3_column_double(st, 3);
			has[REPORT_COSINE] = sqlite3_column_type(st, 4) != SQLITE_NULL;
			value[REPORT_COSINE] = sqlite3_column_double(st, 4);
			break;
		case REPORT_PASSKEY:
		case REPORT_RECALL: {
			int m = t == REPORT_PASSKEY ? REPORT_PASSKEY_ACC : REPORT_RECALL_ACC;

			has[m] = sqlite3_column_type(st, 5) != SQLITE_NULL;
			value[m] = sqlite3_column_double(st, 5);
			break;
		}
		case REPORT_SPEED:
			has[REPORT_LOG_LATENCY] = sqlite3_column_type(st, 6) != SQLITE_NULL &&
						  sqlite3_column_double(st, 6) > 0;
			if (has[REPORT_LOG_LATENCY])
				value[REPORT_LOG_LATENCY] = log10(sqlite3_column_double(st, 6));
			has[REPORT_LOG_MEMORY] = sqlite3_column_type(st, 7) != SQLITE_NULL;
			/* no workspace at all counts as one byte, so the log stays finite */
			value[REPORT_LOG_MEMORY] = log10(fmax(sqlite3_column_double(st, 7), 1));
			break;
		case REPORT_CAUSALITY:
			has[REPORT_CAUSAL_PASS] = true;
			value[REPORT_CAUSAL_PASS] =
				!strcmp((const char *)sqlite3_column_text(st, 2), "ok");
			break;
		}
		for (int m = 0; m < REPORT_METRICS; m++)
			if (has[m]) {
				r->raw[m] += value[m];
				count[r - lb->rows][m]++;
			}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		ret = -EIO;
	for (int i = 0; i < lb->count; i++)
		for (int m = 0; m < REPORT_METRICS; m++)
			lb->rows[i].raw[m] = count[i][m] ? lb->rows[i].raw[m] / count[i][m] : NAN;
	free(count);
	return ret;
}

/* z-scores, task scores, CI, ranks and deltas from raw[]. */
static void score(struct leaderboard *lb)
{
	for (int m = 0; m < REPORT_METRICS; m++) {
		double mean = 0, var = 0, n = 0, sd;

		for (int i = 0; i < lb->count; i++)
			if (!isnan(lb->rows[i].raw[m])) {
				mean += lb->rows[i].raw[m];
				n++;
			}
		mean /= n ? n : 1;
		for (int i = 0; i < lb->count; i++)
			if (!isnan(lb->rows[i].raw[m]))
				var += (lb->rows[i].raw[m] - mean) * (lb->rows[i].raw[m] - mean);
		sd = n ? sqrt(var / n) : 0;
		/* equal values (to rounding) carry no ranking: z = 0 for all */
		if (!(sd > 1e-12 * fmax(fabs(mean), 1e-300)))
			sd = 0;
		for (int i = 0; i < lb->count; i++) {
			double x = lb->rows[i].raw[m];

			lb->rows[i].z[m] = isnan(x) ? NAN :
					   sd ? metric_info[m].sign * (x - mean) / sd : 0;
		}
	}
	for (int i = 0; i < lb->count; i++) {
		struct report_row *r = &lb->rows[i];
		double ci = 0, tasks = 0;

		for (int t = 0; t < REPORT_TASKS; t++) {
			double sum = 0, n = 0;

			for (int m = 0; m < REPORT_METRICS; m++)
				if (metric_info[m].task == (enum report_task)t && !isnan(r->z[m])) {
					sum += r->z[m];
					n++;
				}
			r->task[t] = n ? sum / n : NAN;
			if (n) {
				ci += r->task[t];
				tasks++;
			}
		}
		r->ci = tasks ? ci / tasks : NAN;
	}
}

static int compare_rows(const void *a, const void *b)
{
	const struct report_row *x = a, *y = b;

	if (isnan(x->ci) != isnan(y->ci))
		return isnan(x->ci) ? 1 : -1;
	if (!isnan(x->ci) && x->ci != y->ci)
		return x->ci > y->ci ? -1 : 1;
	return strcmp(x->variant, y->variant);
}

/* CIs closer than this are a tie: they differ only by rounding of the same inputs. */
#define CI_TIE 1e-9

static void rank(struct leaderboard *lb, const char *baseline)
{
	const struct report_row *base;

	/* rows is NULL for a pattern without rows, and qsort() may not be passed NULL */
	if (lb->count)
		qsort(lb->rows, (size_t)lb->count, sizeof(*lb->rows), compare_rows);
	for (int i = 0; i < lb->count; i++) {
		struct report_row *r = &lb->rows[i];

		if (isnan(r->ci))
			r->rank = 0;
		else if (i && fabs(r->ci - lb->rows[i - 1].ci) < CI_TIE)
			r->rank = lb->rows[i - 1].rank;
		else
			r->rank = i + 1;
	}
	base = row_find(lb, baseline);
	lb->has_baseline = base && !isnan(base->ci);
	for (int i = 0; i < lb->count; i++)
		lb->rows[i].delta = lb->has_baseline ? lb->rows[i].ci - base->ci : NAN;
}

int report_leaderboard(sqlite3 *db, int64_t run_id, const char *pattern,
		       const char *baseline, struct leaderboard *lb)
{
	int ret;

	memset(lb, 0, sizeof(*lb));
	snprintf(lb->pattern, sizeof(lb->pattern), "%s", pattern);
	ret = load_variants(db, run_id, lb);
	if (!ret)
		ret = load_common_counts(db, run_id, lb);
	if (!ret)
		ret = load_metrics(db, run_id, lb);
	if (ret) {
		report_leaderboard_release(lb);
		return ret;
	}
	score(lb);
	/* a variant with no ranked task is left out, unless its cells failed: then it shows */
	for (int i = 0; i < lb->count; )
		if (isnan(lb->rows[i].ci) && !lb->rows[i].failed_cells)
			lb->rows[i] = lb->rows[--lb->count];
		else
			i++;
	rank(lb, baseline);
	return 0;
}

void report_leaderboard_release(struct leaderboard *lb)
{
	free(lb->rows);
	lb->rows = NULL;
	lb->count = 0;
}
