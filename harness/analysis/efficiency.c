/*
 * efficiency.c - efficiency lengths (measured crossing with a bootstrap interval, CAB's
 * quadratic-vs-linear fit), scaling exponents, and their rows in run_metrics.
 */
#include "efficiency.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queries.h"
#include "stats.h"

/* The names this module writes to run_metrics, with their units. */
static const struct {
	const char *name;
	const char *unit;
} metric_names[] = {
	{ "efficiency_length_time", "tokens" },
	{ "efficiency_length_time_lo", "tokens" },
	{ "efficiency_length_time_hi", "tokens" },
	{ "efficiency_below_range_time", "" },
	{ "efficiency_length_memory", "tokens" },
	{ "efficiency_below_range_memory", "" },
	{ "cab_efficiency_length_time", "tokens" },
	{ "cab_r2_baseline_time", "" },
	{ "cab_r2_variant_time", "" },
	{ "cab_efficiency_length_memory", "tokens" },
	{ "cab_r2_baseline_memory", "" },
	{ "cab_r2_variant_memory", "" },
	{ "efficiency_disagree_time", "" },
	{ "efficiency_disagree_memory", "" },
	{ "loglog_slope_time", "" },
	{ "loglog_slope_memory", "" },
};

#define METRIC_NAME_COUNT (sizeof(metric_names) / sizeof(metric_names[0]))

/* "name1", "name2", ... for an SQL IN list (the names are constants, not input). */
static void names_sql(char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < METRIC_NAME_COUNT && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s'%s'", i ? ", " : "",
					 metric_names[i].name);
}

static const char *unit_of(const char *name)
{
	for (size_t i = 0; i < METRIC_NAME_COUNT; i++)
		if (!strcmp(metric_names[i].name, name))
			return metric_names[i].unit;
	return "";
}

static bool lengths_valid(const double *length, size_t k)
{
	for (size_t i = 0; i < k; i++)
		if (!(length[i] > 0) || (i && !(length[i] > length[i - 1])))
			return false;
	return k > 0;
}

int efficiency_crossing(const double *length, const double *base, const double *variant,
			size_t k, struct eff_crossing *out)
{
	size_t j;
	double t, lo, hi;

	*out = (struct eff_crossing){ .length = NAN };
	if (!lengths_valid(length, k))
		return -EINVAL;
	if (!(variant[k - 1] < base[k - 1]))
		return 0;	/* not cheaper at the largest length: none */
	/* j: the first length of the final stretch where the variant is cheaper */
	for (j = k - 1; j > 0 && variant[j - 1] < base[j - 1]; j--)
		;
	out->found = true;
	if (j == 0) {
		out->below_range = true;
		out->length = length[0];
		return 0;
	}
	if (base[j - 1] > 0 && variant[j - 1] > 0 && variant[j] > 0) {
		/* log r goes from >= 0 at j - 1 to < 0 at j */
		hi = log(variant[j - 1] / base[j - 1]);
		lo = log(variant[j] / base[j]);
	} else {
		hi = variant[j - 1] - base[j - 1];
		lo = variant[j] - base[j];
	}
	t = hi / (hi - lo);
	out->length = exp(log(length[j - 1]) + t * (log(length[j]) - log(length[j - 1])));
	return 0;
}

/* Quantile q of sorted[0..n) by linear interpolation; infinite when it touches one. */
static double quantile_with_inf(const double *sorted, size_t n, double q)
{
	double pos = q * (double)(n - 1), frac;
	size_t lo = (size_t)floor(pos);

	frac = pos - (double)lo;
	if (lo + 1 >= n || frac == 0)
		return sorted[lo];
	if (isinf(sorted[lo + 1]))
		return INFINITY;
	return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

int efficiency_bootstrap(const struct eff_series *base, const struct eff_series *var,
			 int iters, uint64_t seed, double *lo, double *hi)
{
	struct stats_resampler *rb, *rv;
	size_t k = base->k, ready = 0;
	uint64_t state = seed;
	struct eff_crossing c;
	double *values, *b, *v;
	int ret = -ENOMEM;

	if (k == 0 || var->k != k || iters < 100)
		return -EINVAL;
	for (size_t i = 0; i < k; i++)
		if (base->length[i] != var->length[i] || !base->n_samples[i] ||
		    !var->n_samples[i])
			return -EINVAL;
	values = malloc(sizeof(*values) * (size_t)iters);
	rb = calloc(k, sizeof(*rb));
	rv = calloc(k, sizeof(*rv));
	b = malloc(sizeof(*b) * k);
	v = malloc(sizeof(*v) * k);
	if (!values || !rb || !rv || !b || !v)
		goto out_free;
	for (; ready < k; ready++) {
		if (stats_resampler_init(&rb[ready], base->samples[ready], base->n_samples[ready]))
			goto out_release;
		if (stats_resampler_init(&rv[ready], var->samples[ready], var->n_samples[ready])) {
			stats_resampler_release(&rb[ready]);
			goto out_release;
		}
	}
	for (int it = 0; it < iters; it++) {
		for (size_t i = 0; i < k; i++) {
			b[i] = stats_resampled_median(&rb[i], &state);
			v[i] = stats_resampled_median(&rv[i], &state);
		}
		ret = efficiency_crossing(base->length, b, v, k, &c);
		if (ret)
			goto out_release;
		values[it] = c.found ? c.length : INFINITY;
	}
	stats_sort(values, (size_t)iters);
	*lo = quantile_with_inf(values, (size_t)iters, 0.025);
	*hi = quantile_with_inf(values, (size_t)iters, 0.975);
	ret = 0;
out_release:
	while (ready--) {
		stats_resampler_release(&rb[ready]);
		stats_resampler_release(&rv[ready]);
	}
out_free:
	free(values);
	free(rb);
	free(rv);
	free(b);
	free(v);
	return ret;
}

/* Solves the 3 x 3 system m x = r by elimination with partial pivoting; -EDOM if singular. */
static int solve3(double m[3][3], double r[3], double x[3])
{
	for (int col = 0; col < 3; col++) {
		int pivot = col;

		for (int row = col + 1; row < 3; row++)
			if (fabs(m[row][col]) > fabs(m[pivot][col]))
				pivot = row;
		if (m[pivot][col] == 0)
			return -EDOM;
		if (pivot != col) {
			for (int c = 0; c < 3; c++) {
				double t = m[col][c];

				m[col][c] = m[pivot][c];
				m[pivot][c] = t;
			}
			double t = r[col];

			r[col] = r[pivot];
			r[pivot] = t;
		}
		for (int row = col + 1; row < 3; row++) {
			double f = m[row][col] / m[col][col];

			for (int c = col; c < 3; c++)
				m[row][c] -= f * m[col][c];
			r[row] -= f * r[col];
		}
	}
	for (int row = 2; row >= 0; row--) {
		double s = r[row];

		for (int c = row + 1; c < 3; c++)
			s -= m[row][c] * x[c];
		x[row] = s / m[row][row];
	}
	return 0;
}

/* 1 - SS_res / SS_tot of predictions fit[] for y[]; 1 for a constant fitted exactly. */
static double r_squared(const double *y, const double *fit, size_t k)
{
	double mean = 0, ss_res = 0, ss_tot = 0, scale = 0;

	for (size_t i = 0; i < k; i++)
		mean += y[i] / (double)k;
	for (size_t i = 0; i < k; i++) {
		ss_res += (y[i] - fit[i]) * (y[i] - fit[i]);
		ss_tot += (y[i] - mean) * (y[i] - mean);
		scale += y[i] * y[i];
	}
	/* a constant curve: as scikit-learn, 1 when the fit is exact (to rounding), else 0 */
	if (ss_tot <= 1e-24 * scale)
		return ss_res <= 1e-20 * scale ? 1.0 : 0.0;
	return 1 - ss_res / ss_tot;
}

int efficiency_cab(const double *length, const double *base, const double *variant,
		   size_t k, struct eff_cab *out)
{
	double m[3][3] = { { 0 } }, r[3] = { 0 }, coef[3], s, *fit;
	double sx = 0, sy = 0, sxx = 0, sxy = 0, A, B, C, D, E, disc, q, root;

	*out = (struct eff_cab){ .length = NAN, .r2_base = NAN, .r2_variant = NAN };
	if (k < 3 || !lengths_valid(length, k))
		return -EINVAL;
	fit = malloc(sizeof(*fit) * k);
	if (!fit)
		return -ENOMEM;
	/* x = N / s keeps the normal equations well conditioned (N^4 would reach 1e17) */
	s = length[k - 1];
	for (size_t i = 0; i < k; i++) {
		double x = length[i] / s, p[5] = { 1, x, x * x, x * x * x, x * x * x * x };

		for (int a = 0; a < 3; a++) {
			for (int b = 0; b < 3; b++)
				m[a][b] += p[a + b];
			r[a] += p[a] * base[i];
		}
		sx += x;
		sy += variant[i];
		sxx += x * x;
		sxy += x * variant[i];
	}
	if (solve3(m, r, coef)) {
		free(fit);
		return -EINVAL;
	}
	C = coef[0];
	B = coef[1];
	A = coef[2];
	D = ((double)k * sxy - sx * sy) / ((double)k * sxx - sx * sx);
	E = (sy - D * sx) / (double)k;
	out->a = A / (s * s);
	out->b = B / s;
	out->c = C;
	out->d = D / s;
	out->e = E;
	for (size_t i = 0; i < k; i++) {
		double x = length[i] / s;

		fit[i] = (A * x + B) * x + C;
	}
	out->r2_base = r_squared(base, fit, k);
	for (size_t i = 0; i < k; i++)
		fit[i] = D * length[i] / s + E;
	out->r2_variant = r_squared(variant, fit, k);
	free(fit);

	/* baseline - variant = A x^2 + B' x + C' in x = N / s */
	B -= D;
	C -= E;
	if (!(A > 0))
		return 0;	/* the fitted baseline never pulls away for good: none */
	disc = B * B - 4 * A * C;
	if (disc < 0) {
		out->length = 0;	/* the fitted baseline is above the line everywhere */
		return 0;
	}
	/* the larger root, without cancellation */
	q = -0.5 * (B + copysign(sqrt(disc), B));
	if (B >= 0)
		root = q != 0 ? C / q : 0;
	else
		root = q / A;
	out->length = root > 0 ? root * s : 0;
	return 0;
}

int efficiency_loglog_slope(const double *length, const double *cost, size_t k,
			    double *slope)
{
	double sx = 0, sy = 0, sxx = 0, sxy = 0, first = 0, n = 0;
	bool distinct = false;

	for (size_t i = 0; i < k; i++) {
		double x, y;

		if (!(cost[i] > 0) || !(length[i] > 0))
			continue;
		x = log(length[i]);
		y = log(cost[i]);
		if (n == 0)
			first = x;
		else if (x != first)
			distinct = true;
		sx += x;
		sy += y;
		sxx += x * x;
		sxy += x * y;
		n++;
	}
	if (!distinct)
		return -EINVAL;
	/* + 0.0 turns the -0 of a flat curve into 0 */
	*slope = (n * sxy - sx * sy) / (n * sxx - sx * sx) + 0.0;
	return 0;
}

int efficiency_disagree(const struct eff_crossing *m, double cab, double max_length)
{
	if (!m->found)
		/* a fitted crossing beyond the range does not contradict "none in range" */
		return !isnan(cab) && cab <= max_length;
	if (isnan(cab))
		return 1;
	if (m->below_range)
		/* the measured length is an upper bound */
		return cab > EFFICIENCY_DISAGREE_FACTOR * m->length;
	if (cab <= 0)
		return 1;
	return fmax(cab, m->length) / fmin(cab, m->length) > EFFICIENCY_DISAGREE_FACTOR;
}

void efficiency_list_release(struct eff_list *l)
{
	free(l->items);
	*l = (struct eff_list){ 0 };
}

static int list_add(struct eff_list *l, const char *variant, const char *pattern,
		    const char *name, double value)
{
	struct eff_metric *m;

	if (l->count == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct eff_metric *grown = realloc(l->items, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		l->items = grown;
		l->cap = cap;
	}
	m = &l->items[l->count++];
	snprintf(m->variant, sizeof(m->variant), "%s", variant);
	snprintf(m->pattern, sizeof(m->pattern), "%s", pattern);
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->value = value;
	m->unit = unit_of(name);
	return 0;
}

const struct eff_metric *efficiency_find(const struct eff_list *l, const char *variant,
					 const char *pattern, const char *name)
{
	for (size_t i = 0; i < l->count; i++)
		if (!strcmp(l->items[i].variant, variant) &&
		    !strcmp(l->items[i].pattern, pattern) && !strcmp(l->items[i].name, name))
			return &l->items[i];
	return NULL;
}

/* One variant's speed curve on a pattern: a point per distinct length. */
struct curve {
	char variant[64];
	size_t k;
	double *length;
	double *time;		/* median latency (s); NAN when unknown */
	double *memory;		/* peak workspace (bytes); NAN when unknown */
	double **samples;	/* pooled latency samples at each length */
	size_t *n_samples;
};

static void curve_release(struct curve *c)
{
	for (size_t i = 0; i < c->k; i++)
		free(c->samples[i]);
	free(c->length);
	free(c->time);
	free(c->memory);
	free(c->samples);
	free(c->n_samples);
	memset(c, 0, sizeof(*c));
}

/* Appends the samples of cell id to c's point i. */
static int add_samples(sqlite3 *db, int64_t cell_id, struct curve *c, size_t i)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT seconds FROM samples WHERE cell_id = ? ORDER BY idx",
			       -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, cell_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		double *grown = realloc(c->samples[i], (c->n_samples[i] + 1) * sizeof(*grown));

		if (!grown) {
			sqlite3_finalize(st);
			return -ENOMEM;
		}
		c->samples[i] = grown;
		grown[c->n_samples[i]++] = sqlite3_column_double(st, 0);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Grows every array of c to cap points; 0 or -ENOMEM (c stays valid either way). */
static int curve_grow(struct curve *c, size_t cap)
{
	void *p;

	if (!(p = realloc(c->length, cap * sizeof(double))))
		return -ENOMEM;
	c->length = p;
	if (!(p = realloc(c->time, cap * sizeof(double))))
		return -ENOMEM;
	c->time = p;
	if (!(p = realloc(c->memory, cap * sizeof(double))))
		return -ENOMEM;
	c->memory = p;
	if (!(p = realloc(c->samples, cap * sizeof(double *))))
		return -ENOMEM;
	c->samples = p;
	if (!(p = realloc(c->n_samples, cap * sizeof(size_t))))
		return -ENOMEM;
	c->n_samples = p;
	return 0;
}

struct speed_shape {
	const char *pattern;
	struct cell_shape at;
};

/*
 * Reads a variant's ok speed cells at the shape and parameter setting into c; cells at the
 * same length are pooled (samples joined, the stored medians and peaks averaged).
 */
static int load_curve(sqlite3 *db, int64_t run_id, const struct speed_shape *sh,
		      const char *variant, const char *params, struct curve *c)
{
	static const char sql[] =
		"SELECT c.id, c.n,"
		" (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'latency_median'),"
		" (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'peak_bytes')"
		" FROM cells c WHERE c.run_id = ?1 AND c.task = 'speed' AND c.status = 'ok'"
		" AND c.pattern = ?2 AND c.variant = ?3 AND c.params = ?4 AND c.d = ?5"
		" AND c.heads = ?6 AND c.kv_heads = ?7 AND c.batch = ?8 ORDER BY c.n, c.id";
	double time_sum = 0, mem_sum = 0, *scratch;
	int time_count = 0, mem_count = 0, rc, ret = 0;
	size_t cap = 0;
	sqlite3_stmt *st;

	memset(c, 0, sizeof(*c));
	snprintf(c->variant, sizeof(c->variant), "%s", variant);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_text(st, 2, sh->pattern, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, variant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, params, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, sh->at.d);
	sqlite3_bind_int(st, 6, sh->at.heads);
	sqlite3_bind_int(st, 7, sh->at.kv_heads);
	sqlite3_bind_int(st, 8, sh->at.batch);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		double n = sqlite3_column_double(st, 1);
		size_t i;

		if (!c->k || c->length[c->k - 1] != n) {
			if (c->k == cap) {
				cap = cap ? 2 * cap : 16;
				ret = curve_grow(c, cap);
				if (ret)
					break;
			}
			i = c->k++;
			c->length[i] = n;
			c->time[i] = c->memory[i] = NAN;
			c->samples[i] = NULL;
			c->n_samples[i] = 0;
			time_sum = mem_sum = 0;
			time_count = mem_count = 0;
		}
		i = c->k - 1;
		if (sqlite3_column_type(st, 2) != SQLITE_NULL) {
			time_sum += sqlite3_column_double(st, 2);
			c->time[i] = time_sum / ++time_count;
		}
		if (sqlite3_column_type(st, 3) != SQLITE_NULL) {
			mem_sum += sqlite3_column_double(st, 3);
			c->memory[i] = mem_sum / ++mem_count;
		}
		ret = add_samples(db, sqlite3_column_int64(st, 0), c, i);
		if (ret)
			break;
	}
	sqlite3_finalize(st);
	if (!ret && rc != SQLITE_DONE)
		ret = -EIO;
	/* the median of the pooled samples is the measured cost, as the bootstrap sees it */
	for (size_t i = 0; !ret && i < c->k; i++) {
		if (!c->n_samples[i])
			continue;
		scratch = malloc(c->n_samples[i] * sizeof(*scratch));
		if (!scratch) {
			ret = -ENOMEM;
			break;
		}
		c->time[i] = stats_median(c->samples[i], c->n_samples[i], scratch);
		free(scratch);
	}
	if (ret)
		curve_release(c);
	return ret;
}

/* FNV-1a of the names: each variant and pattern gets its own, reproducible, stream. */
static uint64_t seed_of(const char *a, const char *b, const char *c)
{
	const char *parts[3] = { a, b, c };
	uint64_t h = 0xcbf29ce484222325ull;

	for (int i = 0; i < 3; i++) {
		for (const char *p = parts[i]; *p; p++)
			h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
		h = (h ^ 0xff) * 0x100000001b3ull;
	}
	return h;
}

/* Scratch arrays of a pairing of two curves at their common lengths. */
struct pairing {
	size_t k;
	double *length, *base, *var;
	const double **base_samples, **var_samples;
	size_t *base_n, *var_n;
	bool all_samples;
};

static void pairing_release(struct pairing *p)
{
	free(p->length);
	free(p->base);
	free(p->var);
	free(p->base_samples);
	free(p->var_samples);
	free(p->base_n);
	free(p->var_n);
	memset(p, 0, sizeof(*p));
}

/* The lengths where both curves have a known cost (time or memory). */
static int pair_curves(const struct curve *b, const struct curve *v, bool memory,
		       struct pairing *p)
{
	size_t most = b->k < v->k ? b->k : v->k, i = 0, j = 0;

	memset(p, 0, sizeof(*p));
	p->length = malloc(sizeof(double) * (most + 1));
	p->base = malloc(sizeof(double) * (most + 1));
	p->var = malloc(sizeof(double) * (most + 1));
	p->base_samples = malloc(sizeof(double *) * (most + 1));
	p->var_samples = malloc(sizeof(double *) * (most + 1));
	p->base_n = malloc(sizeof(size_t) * (most + 1));
	p->var_n = malloc(sizeof(size_t) * (most + 1));
	if (!p->length || !p->base || !p->var || !p->base_samples || !p->var_samples ||
	    !p->base_n || !p->var_n) {
		pairing_release(p);
		return -ENOMEM;
	}
	p->all_samples = true;
	while (i < b->k && j < v->k) {
		double bc, vc;

		if (b->length[i] < v->length[j]) {
			i++;
			continue;
		}
		if (b->length[i] > v->length[j]) {
			j++;
			continue;
		}
		bc = memory ? b->memory[i] : b->time[i];
		vc = memory ? v->memory[j] : v->time[j];
		if (!isnan(bc) && !isnan(vc)) {
			p->length[p->k] = b->length[i];
			p->base[p->k] = bc;
			p->var[p->k] = vc;
			p->base_samples[p->k] = b->samples[i];
			p->var_samples[p->k] = v->samples[j];
			p->base_n[p->k] = b->n_samples[i];
			p->var_n[p->k] = v->n_samples[j];
			if (!b->n_samples[i] || !v->n_samples[j])
				p->all_samples = false;
			p->k++;
		}
		i++;
		j++;
	}
	return 0;
}

/* The efficiency metrics of one variant against the baseline, in time or memory. */
static int compare_curves(const struct curve *b, const struct curve *v, const char *pattern,
			  const char *baseline, bool memory, struct eff_list *out)
{
	const char *what = memory ? "memory" : "time";
	struct eff_crossing m;
	struct eff_cab cab;
	struct pairing p;
	char name[40];
	bool have_cab;
	int ret;

	ret = pair_curves(b, v, memory, &p);
	if (ret)
		return ret;
	if (!p.k)
		goto out;
	ret = efficiency_crossing(p.length, p.base, p.var, p.k, &m);
	if (ret)
		goto out;
	snprintf(name, sizeof(name), "efficiency_length_%s", what);
	ret = list_add(out, v->variant, pattern, name, m.found ? m.length : NAN);
	snprintf(name, sizeof(name), "efficiency_below_range_%s", what);
	ret = ret ? ret : list_add(out, v->variant, pattern, name, m.below_range);
	if (!ret && !memory && m.found && p.all_samples) {
		struct eff_series bs = { p.k, p.length, p.base_samples, p.base_n };
		struct eff_series vs = { p.k, p.length, p.var_samples, p.var_n };
		double lo, hi;

		ret = efficiency_bootstrap(&bs, &vs, EFFICIENCY_BOOTSTRAP_ITERS,
					   seed_of(v->variant, pattern, baseline), &lo, &hi);
		if (!ret)
			ret = list_add(out, v->variant, pattern, "efficiency_length_time_lo", lo);
		if (!ret)
			ret = list_add(out, v->variant, pattern, "efficiency_length_time_hi",
				       isinf(hi) ? NAN : hi);
	}
	have_cab = !ret && !efficiency_cab(p.length, p.base, p.var, p.k, &cab);
	if (have_cab) {
		snprintf(name, sizeof(name), "cab_efficiency_length_%s", what);
		ret = list_add(out, v->variant, pattern, name, cab.length);
		snprintf(name, sizeof(name), "cab_r2_baseline_%s", what);
		ret = ret ? ret : list_add(out, v->variant, pattern, name, cab.r2_base);
		snprintf(name, sizeof(name), "cab_r2_variant_%s", what);
		ret = ret ? ret : list_add(out, v->variant, pattern, name, cab.r2_variant);
		snprintf(name, sizeof(name), "efficiency_disagree_%s", what);
		ret = ret ? ret : list_add(out, v->variant, pattern, name,
					   efficiency_disagree(&m, cab.length, p.length[p.k - 1]));
	}
out:
	pairing_release(&p);
	return ret;
}

static int add_slopes(const struct curve *c, const char *pattern, struct eff_list *out)
{
	double slope;
	int ret = 0;

	if (!efficiency_loglog_slope(c->length, c->time, c->k, &slope))
		ret = list_add(out, c->variant, pattern, "loglog_slope_time", slope);
	if (!ret && !efficiency_loglog_slope(c->length, c->memory, c->k, &slope))
		ret = list_add(out, c->variant, pattern, "loglog_slope_memory", slope);
	return ret;
}

static int compute_pattern(sqlite3 *db, int64_t run_id, const char *baseline,
			   struct speed_shape *sh, struct eff_list *out)
{
	/* each variant at its most common parameter setting (ties: the first by text) */
	static const char sql[] =
		"SELECT variant, params FROM cells"
		" WHERE run_id = ?1 AND task = 'speed' AND pattern = ?2 AND status = 'ok'"
		" AND d = ?3 AND heads = ?4 AND kv_heads = ?5 AND batch = ?6"
		" GROUP BY variant, params ORDER BY variant = ?7 DESC, variant, count(*) DESC,"
		" params";
	struct curve base = { .k = 0 }, c;
	char last[64] = "";
	sqlite3_stmt *st;
	int rc = SQLITE_DONE, ret;

	/* the shape must be one the baseline ran at, or nothing compares */
	ret = store_common_shape(db, run_id, "speed", sh->pattern, baseline, &sh->at);
	if (ret)
		return ret == -ENODATA ? 0 : ret;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_text(st, 2, sh->pattern, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, sh->at.d);
	sqlite3_bind_int(st, 4, sh->at.heads);
	sqlite3_bind_int(st, 5, sh->at.kv_heads);
	sqlite3_bind_int(st, 6, sh->at.batch);
	sqlite3_bind_text(st, 7, baseline, -1, SQLITE_STATIC);
	/* the baseline's row comes first */
	while (!ret && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *variant = (const char *)sqlite3_column_text(st, 0);
		const char *params = (const char *)sqlite3_column_text(st, 1);
		bool is_base = !strcmp(variant, baseline);

		if (!strcmp(variant, last))
			continue;
		snprintf(last, sizeof(last), "%s", variant);
		ret = load_curve(db, run_id, sh, variant, params, is_base ? &base : &c);
		if (ret)
			break;
		if (is_base) {
			ret = add_slopes(&base, sh->pattern, out);
			continue;
		}
		ret = add_slopes(&c, sh->pattern, out);
		if (!ret)
			ret = compare_curves(&base, &c, sh->pattern, baseline, false, out);
		if (!ret)
			ret = compare_curves(&base, &c, sh->pattern, baseline, true, out);
		curve_release(&c);
	}
	if (!ret && rc != SQLITE_DONE)
		ret = -EIO;
	sqlite3_finalize(st);
	curve_release(&base);
	return ret;
}

int efficiency_compute(sqlite3 *db, int64_t run_id, const char *baseline,
		       struct eff_list *out)
{
	static const char sql[] =
		"SELECT DISTINCT pattern FROM cells WHERE run_id = ?1 AND task = 'speed'"
		" AND status = 'ok' AND variant = ?2 ORDER BY pattern";
	char patterns[16][8];
	int n = 0, rc, ret = 0;
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_text(st, 2, baseline, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < 16)
		snprintf(patterns[n++], sizeof(patterns[0]), "%s", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return -EIO;
	if (!n)
		return -ENODATA;
	for (int i = 0; !ret && i < n; i++) {
		struct speed_shape sh = { .pattern = patterns[i] };

		ret = compute_pattern(db, run_id, baseline, &sh, out);
	}
	if (ret)
		efficiency_list_release(out);
	return ret;
}

int efficiency_save(sqlite3 *db, int64_t run_id, const char *baseline,
		    const struct eff_list *l)
{
	char names[1024], sql[1200];
	sqlite3_stmt *del = NULL, *ins = NULL;
	int ret = -EIO;

	names_sql(names, sizeof(names));
	snprintf(sql, sizeof(sql), "DELETE FROM run_metrics WHERE run_id = ?1 AND baseline = ?2"
		 " AND name IN (%s)", names);
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return -EIO;
	if (sqlite3_prepare_v2(db, sql, -1, &del, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT INTO run_metrics (run_id, variant, pattern, baseline,"
			       " name, value, unit) VALUES (?, ?, ?, ?, ?, ?, ?)", -1, &ins,
			       NULL) != SQLITE_OK)
		goto out_rollback;
	sqlite3_bind_int64(del, 1, run_id);
	sqlite3_bind_text(del, 2, baseline, -1, SQLITE_STATIC);
	if (sqlite3_step(del) != SQLITE_DONE)
		goto out_rollback;
	for (size_t i = 0; i < l->count; i++) {
		const struct eff_metric *m = &l->items[i];

		sqlite3_bind_int64(ins, 1, run_id);
		sqlite3_bind_text(ins, 2, m->variant, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 3, m->pattern, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 4, baseline, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 5, m->name, -1, SQLITE_STATIC);
		if (isnan(m->value))
			sqlite3_bind_null(ins, 6);
		else
			sqlite3_bind_double(ins, 6, m->value);
		sqlite3_bind_text(ins, 7, m->unit, -1, SQLITE_STATIC);
		if (sqlite3_step(ins) != SQLITE_DONE)
			goto out_rollback;
		sqlite3_reset(ins);
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
		ret = 0;
out_rollback:
	if (ret)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_finalize(del);
	sqlite3_finalize(ins);
	return ret;
}

int efficiency_load(sqlite3 *db, int64_t run_id, const char *baseline,
		    struct eff_list *out)
{
	char names[1024], sql[1200];
	sqlite3_stmt *st;
	int rc, ret = 0;

	names_sql(names, sizeof(names));
	snprintf(sql, sizeof(sql), "SELECT variant, pattern, name, value FROM run_metrics"
		 " WHERE run_id = ?1 AND baseline = ?2 AND name IN (%s)"
		 " ORDER BY pattern, variant, name", names);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_text(st, 2, baseline, -1, SQLITE_STATIC);
	while (!ret && (rc = sqlite3_step(st)) == SQLITE_ROW)
		ret = list_add(out, (const char *)sqlite3_column_text(st, 0),
			       (const char *)sqlite3_column_text(st, 1),
			       (const char *)sqlite3_column_text(st, 2),
			       sqlite3_column_type(st, 3) == SQLITE_NULL ? NAN :
			       sqlite3_column_double(st, 3));
	sqlite3_finalize(st);
	if (!ret && rc != SQLITE_DONE)
		ret = -EIO;
	if (ret)
		efficiency_list_release(out);
	return ret;
}

int efficiency_update_run(sqlite3 *db, int64_t run_id, const char *baseline)
{
	struct eff_list l = { 0 };
	int ret = efficiency_compute(db, run_id, baseline, &l);

	if (!ret)
		ret = efficiency_save(db, run_id, baseline, &l);
	efficiency_list_release(&l);
	return ret;
}
