/*
 * compare.c - pairs of cells from the store, the latency ratio with its bootstrap
 * interval, exact tests for accuracy differences, and the verdicts (see compare.h).
 */
#include "compare.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queries.h"
#include "variant.h"
#include "why.h"

static const char *const verdict_names[] = {
	[COMPARE_NONE] = "-",
	[COMPARE_SAME] = "no significant change",
	[COMPARE_FASTER] = "faster",
	[COMPARE_SLOWER] = "slower",
	[COMPARE_BETTER] = "better",
	[COMPARE_WORSE] = "worse",
};

const char *compare_verdict_name(enum compare_verdict v)
{
	return verdict_names[v];
}

enum compare_verdict compare_latency_verdict(const struct ratio_interval *r,
					     double min_ratio, double threshold)
{
	if (r->hi < 1 - threshold && min_ratio < 1 - threshold)
		return COMPARE_FASTER;
	if (r->lo > 1 + threshold && min_ratio > 1 + threshold)
		return COMPARE_SLOWER;
	return COMPARE_SAME;
}

static double minimum(const double *x, size_t n)
{
	double m = x[0];

	for (size_t i = 1; i < n; i++)
		m = fmin(m, x[i]);
	return m;
}

int compare_latency(const double *base, size_t n_base, const double *var, size_t n_var,
		    double threshold, struct latency_comparison *out)
{
	int ret = stats_median_ratio(base, n_base, var, n_var, COMPARE_BOOTSTRAP_ITERS,
				     COMPARE_SEED, &out->ratio);

	if (ret)
		return ret;
	out->min_ratio = minimum(var, n_var) / minimum(base, n_base);
	out->verdict = compare_latency_verdict(&out->ratio, out->min_ratio, threshold);
	if (n_base < COMPARE_MIN_SAMPLES || n_var < COMPARE_MIN_SAMPLES)
		out->verdict = COMPARE_SAME;
	return 0;
}

static double log_choose(long n, long k)
{
	return lgamma((double)n + 1) - lgamma((double)k + 1) - lgamma((double)(n - k) + 1);
}

double compare_mcnemar_p(long lost, long gained)
{
	long n = lost + gained, k = lost < gained ? lost : gained;
	double tail = 0;

	if (n == 0)
		return 1;
	/* P(X <= k) for X ~ Binomial(n, 1/2), doubled for two sides */
	for (long i = 0; i <= k; i++)
		tail += exp(log_choose(n, i) - (double)n * M_LN2);
	return fmin(1.0, 2 * tail);
}

double compare_fisher_p(long a, long b, long c, long d)
{
	long total = b + d, right = a + c;
	long lo = b - (total - right) > 0 ? b - (total - right) : 0;
	long hi = right < b ? right : b;
	double denom = log_choose(total, b), observed, p = 0;

	/* X, the baseline's right answers given the margins, is hypergeometric */
	observed = log_choose(right, a) + log_choose(total - right, b - a) - denom;
	for (long x = lo; x <= hi; x++) {
		double lp = log_choose(right, x) + log_choose(total - right, b - x) - denom;

		/* tables as likely as the observed one count too (relative slack for rounding) */
		if (lp <= observed + 1e-7)
			p += exp(lp);
	}
	return fmin(1.0, p);
}

static void accuracy_finish(struct accuracy_comparison *a, double threshold)
{
	double base = (double)a->base_right / (double)a->base_trials;
	double var = (double)a->right / (double)a->trials;

	stats_wilson(a->base_right, a->base_trials, &a->base_lo, &a->base_hi);
	stats_wilson(a->right, a->trials, &a->lo, &a->hi);
	a->delta = var - base;
	/* the 1e-12 keeps a difference of exactly the threshold (1 of 50 at 2%) counted */
	if (a->p >= COMPARE_ALPHA || fabs(a->delta) < threshold - 1e-12)
		a->verdict = COMPARE_SAME;
	else
		a->verdict = a->delta > 0 ? COMPARE_BETTER : COMPARE_WORSE;
}

void compare_accuracy_paired(const unsigned char *base, const unsigned char *var,
			     size_t trials, double threshold, struct accuracy_comparison *out)
{
	*out = (struct accuracy_comparison){ .paired = true };
	for (size_t i = 0; i < trials; i++) {
		out->base_right += base[i] != 0;
		out->right += var[i] != 0;
		out->lost += base[i] && !var[i];
		out->gained += !base[i] && var[i];
	}
	out->base_trials = out->trials = (long)trials;
	out->p = compare_mcnemar_p(out->lost, out->gained);
	accuracy_finish(out, threshold);
}

void compare_accuracy_unpaired(long base_right, long base_trials, long right, long trials,
			       double threshold, struct accuracy_comparison *out)
{
	*out = (struct accuracy_comparison){
		.base_right = base_right, .base_trials = base_trials,
		.right = right, .trials = trials,
	};
	out->p = compare_fisher_p(base_right, base_trials, right, trials);
	accuracy_finish(out, threshold);
}

/* ---- the store side ---- */

#define CELL_COLUMNS \
	"c.id, c.run_id, c.seed, c.variant, c.status, c.rss_bytes, c.task, c.pattern," \
	" coalesce(c.regime, ''), c.n, c.m, c.d, c.heads, c.kv_heads, c.batch," \
	" (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'accuracy')," \
	" (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'trials')," \
	" (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'latency_median')," \
	" (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'peak_bytes')," \
	" (SELECT count(*) FROM samples WHERE cell_id = c.id)," \
	" (SELECT count(*) FROM trials WHERE cell_id = c.id)," \
	" ifnull((SELECT value FROM metrics WHERE cell_id = c.id AND name = 'unstable'), 0)"

/* Earlier cells of the same variant and problem in the run (a suite can repeat one). */
#define CELL_ORDINAL \
	" (SELECT count(*) FROM cells e WHERE e.run_id = c.run_id AND e.variant = c.variant" \
	"  AND e.task = c.task AND e.pattern = c.pattern AND e.regime IS c.regime" \
	"  AND e.n = c.n AND e.m = c.m AND e.d = c.d AND e.heads = c.heads" \
	"  AND e.kv_heads = c.kv_heads AND e.batch = c.batch AND e.id < c.id)"

struct gather {
	struct store *store;
	const struct compare_request *q;
	sqlite3_stmt *var_cells, *base_cell, *samples, *outcomes;
	struct compare_row *rows;
	size_t count, cap;
	char *why;
	size_t why_len;
};

/* The reason when a query on the store fails. */
static int read_failed(struct gather *g)
{
	return why_fail(-EIO, g->why, g->why_len, "cannot read the database: %s",
			store_errmsg(g->store));
}

static double column_or_nan(sqlite3_stmt *st, int col)
{
	return sqlite3_column_type(st, col) == SQLITE_NULL ? NAN :
	       sqlite3_column_double(st, col);
}

static void copy_text(char *dst, size_t len, sqlite3_stmt *st, int col)
{
	const unsigned char *text = sqlite3_column_text(st, col);

	snprintf(dst, len, "%s", text ? (const char *)text : "");
}

/* Reads a row of CELL_COLUMNS into the cell, and the key into row when not NULL. */
static void read_cell(sqlite3_stmt *st, struct compare_cell *c, struct compare_row *row)
{
	c->id = sqlite3_column_int64(st, 0);
	c->run_id = sqlite3_column_int64(st, 1);
	c->seed = sqlite3_column_int64(st, 2);
	copy_text(c->variant, sizeof(c->variant), st, 3);
	copy_text(c->status, sizeof(c->status), st, 4);
	c->rss_bytes = column_or_nan(st, 5);
	c->accuracy = column_or_nan(st, 15);
	c->trials = column_or_nan(st, 16);
	c->latency_median = column_or_nan(st, 17);
	c->peak_bytes = column_or_nan(st, 18);
	c->n_samples = sqlite3_column_int(st, 19);
	c->n_outcomes = sqlite3_column_int(st, 20);
	c->unstable = sqlite3_column_double(st, 21) > 0;
	if (!row)
		return;
	copy_text(row->task, sizeof(row->task), st, 6);
	copy_text(row->pattern, sizeof(row->pattern), st, 7);
	copy_text(row->regime, sizeof(row->regime), st, 8);
	row->n = sqlite3_column_int(st, 9);
	row->m = sqlite3_column_int(st, 10);
	row->d = sqlite3_column_int(st, 11);
	row->heads = sqlite3_column_int(st, 12);
	row->kv_heads = sqlite3_column_int(st, 13);
	row->batch = sqlite3_column_int(st, 14);
}

static int prepare(struct gather *g, const char *sql, sqlite3_stmt **st)
{
	if (sqlite3_prepare_v2(store_db(g->store), sql, -1, st, NULL) != SQLITE_OK)
		return read_failed(g);
	return 0;
}

/* An integer from a one-row query with up to two bound values; -EIO on trouble. */
static int query_count(struct gather *g, const char *sql, int64_t a, const char *text,
		       long *out)
{
	sqlite3_stmt *st;
	int ret = prepare(g, sql, &st);

	if (ret)
		return ret;
	sqlite3_bind_int64(st, 1, a);
	if (text)
		sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(st) == SQLITE_ROW)
		*out = (long)sqlite3_column_int64(st, 0);
	else
		ret = read_failed(g);
	sqlite3_finalize(st);
	return ret;
}

static int check_run(struct gather *g, int64_t run)
{
	int ret = store_find_run(store_db(g->store), run);

	if (ret == -ENOENT)
		return why_fail(-ENOENT, g->why, g->why_len, "no run %lld in the database (see "
				"'attnbench list runs')", (long long)run);
	return ret ? read_failed(g) : 0;
}

static int check_variant(struct gather *g, int64_t run, const char *variant, const char *role)
{
	long cells = 0;
	int ret = query_count(g, "SELECT count(*) FROM cells WHERE run_id = ?1 AND variant = ?2",
			      run, variant, &cells);

	if (ret)
		return ret;
	if (cells)
		return 0;
	return why_fail(-EINVAL, g->why, g->why_len, "%s '%s' has no cells in run %lld", role,
			variant, (long long)run);
}

/* The variants to compare: the request's, or every one of the run (and base run). */
static int list_variants(struct gather *g, char ***names, int *count)
{
	const struct compare_request *q = g->q;
	bool against = !q->baseline;
	sqlite3_stmt *st;
	int ret, n = 0;

	*names = NULL;
	*count = 0;
	if (q->n_variants > 0) {
		*names = calloc((size_t)q->n_variants, sizeof(**names));
		if (!*names)
			return why_fail(-ENOMEM, g->why, g->why_len, "out of memory");
		for (int i = 0; i < q->n_variants; i++) {
			ret = check_variant(g, q->run_id, q->variants[i], "variant");
			if (!ret && against)
				ret = check_variant(g, q->base_run_id, q->variants[i], "variant");
			if (!ret && !((*names)[i] = strdup(q->variants[i])))
				ret = why_fail(-ENOMEM, g->why, g->why_len, "out of memory");
			if (ret)
				return ret;
			*count = i + 1;
		}
		return 0;
	}
	ret = prepare(g, against ?
		      "SELECT variant FROM cells WHERE run_id = ?1 AND variant IN"
		      " (SELECT variant FROM cells WHERE run_id = ?2)"
		      " GROUP BY variant ORDER BY min(id)" :
		      "SELECT variant FROM cells WHERE run_id = ?1 AND variant <> ?3"
		      " GROUP BY variant ORDER BY min(id)", &st);
	if (ret)
		return ret;
	sqlite3_bind_int64(st, 1, q->run_id);
	if (against)
		sqlite3_bind_int64(st, 2, q->base_run_id);
	else
		sqlite3_bind_text(st, 3, q->baseline, -1, SQLITE_STATIC);
	while (!ret && sqlite3_step(st) == SQLITE_ROW) {
		char **grown = realloc(*names, sizeof(**names) * (size_t)(n + 1));

		if (!grown || !(grown[n] = strdup((const char *)sqlite3_column_text(st, 0)))) {
			if (grown)
				*names = grown;
			ret = why_fail(-ENOMEM, g->why, g->why_len, "out of memory");
			break;
		}
		*names = grown;
		*count = ++n;
	}
	sqlite3_finalize(st);
	if (!ret && n == 0)
		ret = against ?
		      why_fail(-ENODATA, g->why, g->why_len, "runs %lld and %lld have no "
			       "variant in common", (long long)q->run_id, (long long)q->base_run_id) :
		      why_fail(-ENODATA, g->why, g->why_len, "run %lld has no variant besides the "
			       "baseline '%s'", (long long)q->run_id, q->baseline);
	return ret;
}

static bool task_wanted(const struct compare_request *q, const char *task)
{
	for (int i = 0; i < q->n_tasks; i++)
		if (!strcmp(q->tasks[i], task))
			return true;
	return q->n_tasks <= 0;
}

static bool pattern_wanted(const struct compare_request *q, const char *pattern)
{
	int p = pattern_parse(pattern);

	return !q->patterns || (p >= 0 && (q->patterns & PATTERN_BIT(p)));
}

/* Loads a cell's samples (or outcomes) into a malloc()ed array of count entries. */
static int load_samples(struct gather *g, int64_t cell, long count, double **out)
{
	sqlite3_stmt *st = g->samples;
	long n = 0;

	*out = malloc(sizeof(**out) * (size_t)(count > 0 ? count : 1));
	if (!*out)
		return why_fail(-ENOMEM, g->why, g->why_len, "out of memory");
	sqlite3_bind_int64(st, 1, cell);
	while (n < count && sqlite3_step(st) == SQLITE_ROW)
		(*out)[n++] = sqlite3_column_double(st, 0);
	sqlite3_reset(st);
	if (n == count)
		return 0;
	return why_fail(-EIO, g->why, g->why_len, "cannot read the samples of cell %lld",
			(long long)cell);
}

static int load_outcomes(struct gather *g, int64_t cell, long count, unsigned char **out)
{
	sqlite3_stmt *st = g->outcomes;
	long n = 0;

	*out = malloc((size_t)(count > 0 ? count : 1));
	if (!*out)
		return why_fail(-ENOMEM, g->why, g->why_len, "out of memory");
	sqlite3_bind_int64(st, 1, cell);
	while (n < count && sqlite3_step(st) == SQLITE_ROW)
		(*out)[n++] = (unsigned char)sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	if (n == count)
		return 0;
	return why_fail(-EIO, g->why, g->why_len, "cannot read the trials of cell %lld",
			(long long)cell);
}

static bool is_ok(const struct compare_cell *c)
{
	return !strcmp(c->status, "ok");
}

/* A cell that ran and broke: failed, crashed, timeout, oom, nan, corrupt (not unsupported). */
static bool is_broken(const struct compare_cell *c)
{
	return !is_ok(c) && strcmp(c->status, "unsupported");
}

static bool has_accuracy(const struct compare_cell *c)
{
	return isfinite(c->accuracy) && isfinite(c->trials) && c->trials >= 1;
}

static double ratio_of(double var, double base)
{
	return isfinite(var) && isfinite(base) && base > 0 ? var / base : NAN;
}

static int compare_latencies(struct gather *g, struct compare_row *row)
{
	double *base = NULL, *var = NULL;
	int ret = load_samples(g, row->base.id, row->base.n_samples, &base);

	if (!ret)
		ret = load_samples(g, row->var.id, row->var.n_samples, &var);
	if (!ret && compare_latency(base, (size_t)row->base.n_samples, var,
				    (size_t)row->var.n_samples, g->q->threshold, &row->latency))
		ret = why_fail(-ENOMEM, g->why, g->why_len, "out of memory");
	free(base);
	free(var);
	return ret;
}

static int compare_accuracies(struct gather *g, struct compare_row *row)
{
	const struct compare_cell *b = &row->base, *v = &row->var;
	long trials = lround(b->trials);
	unsigned char *base = NULL, *var = NULL;
	int ret = 0;

	/* Same seed and shape: trial i asked both the same question. */
	if (b->seed == v->seed && b->n_outcomes == trials && v->n_outcomes == trials &&
	    lround(v->trials) == trials) {
		ret = load_outcomes(g, b->id, trials, &base);
		if (!ret)
			ret = load_outcomes(g, v->id, trials, &var);
		if (!ret)
			compare_accuracy_paired(base, var, (size_t)trials,
						g->q->accuracy_threshold, &row->accuracy);
		free(base);
		free(var);
		return ret;
	}
	compare_accuracy_unpaired(lround(b->accuracy * b->trials), trials,
				  lround(v->accuracy * v->trials), lround(v->trials),
				  g->q->accuracy_threshold, &row->accuracy);
	return 0;
}

static int add_row(struct gather *g, const struct compare_row *row)
{
	if (g->count == g->cap) {
		size_t cap = g->cap ? 2 * g->cap : 64;
		struct compare_row *grown = realloc(g->rows, cap * sizeof(*grown));

		if (!grown)
			return why_fail(-ENOMEM, g->why, g->why_len, "out of memory");
		g->rows = grown;
		g->cap = cap;
	}
	g->rows[g->count++] = *row;
	return 0;
}

/*
 * Finds the baseline's cell for row's key: the ordinal-th of them when a suite repeats a
 * problem (so repeats pair in order), else the first. 1 when found, 0 when not, -EIO.
 */
static int find_base(struct gather *g, const char *variant, struct compare_row *row,
		     int ordinal)
{
	sqlite3_stmt *st = g->base_cell;
	int i = 1, rc;

	sqlite3_bind_int64(st, i++, g->q->base_run_id);
	sqlite3_bind_text(st, i++, variant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, row->task, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, row->pattern, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, row->regime, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, i++, row->n);
	sqlite3_bind_int(st, i++, row->m);
	sqlite3_bind_int(st, i++, row->d);
	sqlite3_bind_int(st, i++, row->heads);
	sqlite3_bind_int(st, i++, row->kv_heads);
	sqlite3_bind_int(st, i++, row->batch);
	sqlite3_bind_int(st, i++, ordinal);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		read_cell(st, &row->base, NULL);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return read_failed(g);
	if (rc == SQLITE_DONE && ordinal > 0)
		return find_base(g, variant, row, 0);
	return rc == SQLITE_ROW;
}

/* Pairs every cell of one variant with its baseline and compares them. */
static int gather_variant(struct gather *g, const char *variant, int index)
{
	const char *baseline = g->q->baseline ? g->q->baseline : variant;
	sqlite3_stmt *st = g->var_cells;
	int ret = 0, rc = SQLITE_DONE;

	sqlite3_bind_int64(st, 1, g->q->run_id);
	sqlite3_bind_text(st, 2, variant, -1, SQLITE_STATIC);
	while (!ret && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct compare_row row = { .variant_index = index };
		const struct compare_cell *b = &row.base, *v = &row.var;
		bool both_ok;

		read_cell(st, &row.var, &row);
		if (!task_wanted(g->q, row.task) || !pattern_wanted(g->q, row.pattern))
			continue;
		ret = find_base(g, baseline, &row, sqlite3_column_int(st, 22));
		if (ret <= 0)
			continue;	/* no baseline for this problem (or -EIO, which ends it) */
		ret = 0;
		/* Only tasks with something to compare: latency samples or an accuracy. */
		if (!b->n_samples && !v->n_samples && !has_accuracy(b) && !has_accuracy(v))
			continue;
		both_ok = is_ok(b) && is_ok(v);
		row.has_latency = both_ok && b->n_samples > 0 && v->n_samples > 0;
		row.has_accuracy = both_ok && has_accuracy(b) && has_accuracy(v);
		row.peak_ratio = both_ok ? ratio_of(v->peak_bytes, b->peak_bytes) : NAN;
		row.rss_ratio = both_ok ? ratio_of(v->rss_bytes, b->rss_bytes) : NAN;
		row.unstable = row.has_latency && (b->unstable || v->unstable);
		if (row.has_latency)
			ret = compare_latencies(g, &row);
		if (!ret && row.has_accuracy)
			ret = compare_accuracies(g, &row);
		row.regression = (row.has_latency && row.latency.verdict == COMPARE_SLOWER) ||
				 (row.has_accuracy && row.accuracy.verdict == COMPARE_WORSE) ||
				 (is_ok(b) && is_broken(v));
		if (!ret)
			ret = add_row(g, &row);
	}
	sqlite3_reset(st);
	if (!ret && rc != SQLITE_DONE)
		ret = read_failed(g);
	return ret;
}

static int pattern_order(const char *name)
{
	int p = pattern_parse(name);

	return p < 0 ? ATTN_PATTERN_COUNT : p;
}

static int compare_rows(const void *pa, const void *pb)
{
	const struct compare_row *a = pa, *b = pb;
	int c = strcmp(a->task, b->task);
	double ra, rb;

	if (c)
		return c;
	if (pattern_order(a->pattern) != pattern_order(b->pattern))
		return pattern_order(a->pattern) - pattern_order(b->pattern);
#define BY(field) if (a->field != b->field) return a->field < b->field ? -1 : 1
	BY(n);
	BY(m);
	BY(d);
	BY(heads);
	BY(kv_heads);
	BY(batch);
	/* regimes are numbers (depths, pair counts) for the tasks compare covers */
	ra = atof(a->regime);
	rb = atof(b->regime);
	if (ra != rb)
		return ra < rb ? -1 : 1;
	if ((c = strcmp(a->regime, b->regime)))
		return c;
	BY(variant_index);
	BY(var.id);
#undef BY
	return 0;
}

int compare_gather(struct store *s, const struct compare_request *q,
		   struct compare_row **rows, size_t *count, char *why, size_t why_len)
{
	struct gather g = { .store = s, .q = q, .why = why, .why_len = why_len };
	char **names = NULL;
	int n_names = 0, ret;

	*rows = NULL;
	*count = 0;
	ret = check_run(&g, q->run_id);
	if (!ret && q->base_run_id != q->run_id)
		ret = check_run(&g, q->base_run_id);
	if (!ret && q->baseline)
		ret = check_variant(&g, q->base_run_id, q->baseline, "baseline");
	if (!ret)
		ret = list_variants(&g, &names, &n_names);
	if (!ret)
		ret = prepare(&g, "SELECT " CELL_COLUMNS "," CELL_ORDINAL " FROM cells c"
			      " WHERE c.run_id = ?1 AND c.variant = ?2 ORDER BY c.id",
			      &g.var_cells);
	if (!ret)
		ret = prepare(&g, "SELECT " CELL_COLUMNS " FROM cells c"
			      " WHERE c.run_id = ?1 AND c.variant = ?2 AND c.task = ?3"
			      " AND c.pattern = ?4 AND coalesce(c.regime, '') = ?5 AND c.n = ?6"
			      " AND c.m = ?7 AND c.d = ?8 AND c.heads = ?9 AND c.kv_heads = ?10"
			      " AND c.batch = ?11 ORDER BY c.id LIMIT 1 OFFSET ?12", &g.base_cell);
	if (!ret)
		ret = prepare(&g, "SELECT seconds FROM samples WHERE cell_id = ?1 ORDER BY idx",
			      &g.samples);
	if (!ret)
		ret = prepare(&g, "SELECT correct FROM trials WHERE cell_id = ?1 ORDER BY idx",
			      &g.outcomes);
	for (int i = 0; !ret && i < n_names; i++)
		ret = gather_variant(&g, names[i], i);
	if (!ret && g.count == 0)
		ret = why_fail(-ENODATA, g.why, g.why_len, "nothing to compare: no cell of run "
			       "%lld with latency samples or an accuracy has a matching cell of %s "
			       "in run %lld", (long long)q->run_id,
			       q->baseline ? q->baseline : "the same variant",
			       (long long)q->base_run_id);
	sqlite3_finalize(g.var_cells);
	sqlite3_finalize(g.base_cell);
	sqlite3_finalize(g.samples);
	sqlite3_finalize(g.outcomes);
	for (int i = 0; i < n_names; i++)
		free(names[i]);
	free(names);
	if (ret) {
		free(g.rows);
		return ret;
	}
	qsort(g.rows, g.count, sizeof(*g.rows), compare_rows);
	*rows = g.rows;
	*count = g.count;
	return 0;
}

static int compare_descending(const void *pa, const void *pb)
{
	double a = *(const double *)pa, b = *(const double *)pb;

	return (a < b) - (a > b);
}

double compare_threshold_needed(const struct compare_row *rows, size_t count, double share)
{
	double *need = malloc(sizeof(*need) * (count ? count : 1)), out = 0;
	size_t n = 0;

	if (!need)
		return NAN;
	for (size_t i = 0; i < count; i++) {
		const struct latency_comparison *l = &rows[i].latency;

		if (!rows[i].has_latency)
			continue;
		/* called slower while T < min(lo, min ratio) - 1, faster while T < 1 - max(...) */
		need[n++] = fmax(0, fmax(fmin(l->ratio.lo, l->min_ratio) - 1,
					 1 - fmax(l->ratio.hi, l->min_ratio)));
	}
	qsort(need, n, sizeof(*need), compare_descending);
	/* the rows whose need exceeds the answer are called: allow share of them */
	if (n)
		out = need[(size_t)floor(share * (double)n)];
	free(need);
	return out;
}

static bool variant_wanted(const struct compare_request *q, const char *variant)
{
	for (int i = 0; i < q->n_variants; i++)
		if (!strcmp(q->variants[i], variant))
			return true;
	return q->n_variants <= 0;
}

int compare_missing_cells(struct store *s, const struct compare_request *q, long *missing,
			  char *first, size_t first_len)
{
	static const char sql[] =
		"SELECT b.variant, b.task, b.pattern, coalesce(b.regime, ''), b.n, b.m, b.d,"
		" b.heads, b.kv_heads, b.batch FROM cells b WHERE b.run_id = ?2"
		" AND NOT EXISTS (SELECT 1 FROM cells c WHERE c.run_id = ?1"
		"  AND c.variant = b.variant AND c.task = b.task AND c.pattern = b.pattern"
		"  AND c.regime IS b.regime AND c.n = b.n AND c.m = b.m AND c.d = b.d"
		"  AND c.heads = b.heads AND c.kv_heads = b.kv_heads AND c.batch = b.batch)"
		" ORDER BY b.id";
	sqlite3_stmt *st;
	int rc;

	*missing = 0;
	if (sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, q->run_id);
	sqlite3_bind_int64(st, 2, q->base_run_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *variant = (const char *)sqlite3_column_text(st, 0);
		const char *task = (const char *)sqlite3_column_text(st, 1);
		const char *pattern = (const char *)sqlite3_column_text(st, 2);
		const char *regime = (const char *)sqlite3_column_text(st, 3);

		if (!variant_wanted(q, variant) || !task_wanted(q, task) ||
		    !pattern_wanted(q, pattern))
			continue;
		if (!(*missing)++ && first)
			snprintf(first, first_len, "%s %s %s%s%s n=%d m=%d d=%d heads=%d "
				 "kv_heads=%d batch=%d", task, variant, pattern, *regime ? " " : "",
				 regime, sqlite3_column_int(st, 4), sqlite3_column_int(st, 5),
				 sqlite3_column_int(st, 6), sqlite3_column_int(st, 7),
				 sqlite3_column_int(st, 8), sqlite3_column_int(st, 9));
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

int compare_run_load(struct store *s, int64_t run, double *load)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(store_db(s), "SELECT CAST(load_avg AS REAL) FROM runs WHERE id = ?1"
			       " AND load_avg IS NOT NULL", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, run);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*load = sqlite3_column_double(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : -EIO;
}

/* The provenance that decides whether timings of two runs can be compared. */
static const char *const machine_fields[] = {
	"cpu_model", "cores", "threads", "blas_config", "compiler", "cflags",
};

#define MACHINE_FIELDS (sizeof(machine_fields) / sizeof(machine_fields[0]))

int compare_provenance(struct store *s, int64_t run_a, int64_t run_b, char *why,
		       size_t why_len)
{
	char values[2][MACHINE_FIELDS][256];
	const int64_t runs[2] = { run_a, run_b };
	sqlite3_stmt *st;
	int ret = 0;

	if (sqlite3_prepare_v2(store_db(s), "SELECT cpu_model, cores, threads, blas_config,"
			       " compiler, cflags FROM runs WHERE id = ?1", -1, &st, NULL) !=
	    SQLITE_OK) {
		snprintf(why, why_len, "cannot read runs: %s", store_errmsg(s));
		return -EIO;
	}
	for (int r = 0; r < 2 && !ret; r++) {
		int rc;

		sqlite3_bind_int64(st, 1, runs[r]);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			for (size_t f = 0; f < MACHINE_FIELDS; f++) {
				const unsigned char *t = sqlite3_column_text(st, (int)f);

				snprintf(values[r][f], sizeof(values[r][f]), "%s",
					 t ? (const char *)t : "(unknown)");
			}
		} else if (rc == SQLITE_DONE) {
			snprintf(why, why_len, "no run %lld in the database", (long long)runs[r]);
			ret = -ENOENT;
		} else {
			snprintf(why, why_len, "cannot read runs: %s", store_errmsg(s));
			ret = -EIO;
		}
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	for (size_t f = 0; f < MACHINE_FIELDS && !ret; f++)
		if (strcmp(values[0][f], values[1][f])) {
			snprintf(why, why_len, "runs %lld and %lld differ in %s: '%.80s' vs "
				 "'%.80s'", (long long)run_a, (long long)run_b, machine_fields[f],
				 values[0][f], values[1][f]);
			ret = 1;
		}
	return ret;
}
