/*
 * figures-speed.c - the figures of speed and cost: latency-P and memory-P (a line per
 * variant against N), speedup-P (against the baseline, with bootstrap intervals of the
 * ratio of medians), efficiency-P (efficiency lengths as bars, from run_metrics) and
 * pareto-P (accuracy against latency at one length, with the Pareto front). Each writes
 * NAME.dat, then NAME.gp from plots/KIND.gp (the sections it names below).
 *
 * Speed figures take one shape per pattern (the most common d, heads, kv_heads, batch), so
 * that lines compare like with like; cells that differ only in parameters are averaged
 * (latency, memory) or their samples pooled (speed-up).
 */
#include "plot-internal.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rounds.h"
#include "stats.h"

/* Bootstrap resamples for the interval of a speed-up: 2000 puts the 2.5% and 97.5%
 * quantiles 50 resamples from the ends, steady to about 1% of the ratio. */
#define SPEEDUP_ITERS 2000

/* Binds ?2 to the pattern and ?3..?6 to the figure's shape (d, heads, kv_heads, batch). */
static void bind_pattern_shape(sqlite3_stmt *st, const char *pattern, const int *shape)
{
	sqlite3_bind_text(st, 2, pattern, -1, SQLITE_STATIC);
	for (int k = 0; k < 4; k++)
		sqlite3_bind_int(st, 3 + k, shape[k]);
}

/*
 * Below the latency blocks, a comment when some interval of the figure reaches less than
 * 95% (fewer than 6 samples: [min, max], its level stored as latency_ci_level), with the
 * lowest level, so its error bars are not taken for 95% ones. 0 or -EIO.
 */
static int note_low_interval_levels(struct plot_ctx *c, FILE *f, const char *pattern,
				    const int *shape)
{
	sqlite3_stmt *st = plot_prepare(c,
		"SELECT count(*), min(m.value) FROM metrics m JOIN cells c ON c.id = m.cell_id"
		" WHERE c.run_id = ?1 AND c.task = 'speed' AND c.pattern = ?2 AND c.d = ?3"
		" AND c.heads = ?4 AND c.kv_heads = ?5 AND c.batch = ?6 AND c.status = 'ok'"
		" AND m.name = 'latency_ci_level' AND m.value < 0.95");
	int rc;

	if (!st)
		return -EIO;
	bind_pattern_shape(st, pattern, shape);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_int(st, 0) > 0)
		fprintf(f, "# %d cell(s) had too few samples for a 95%% interval: their"
			" [min, max] covers the median with %.4g%% at the least\n",
			sqlite3_column_int(st, 0), 100 * sqlite3_column_double(st, 1));
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : plot_read_failed(c);
}

/*
 * Below the latency blocks, a comment naming the cells marked unstable (no majority of
 * their measurement rounds agreed, rounds.h), which the figure rings; their count in
 * *count. 0 or -EIO.
 */
static int note_unstable(struct plot_ctx *c, FILE *f, const char *pattern, const int *shape,
			 int *count)
{
	sqlite3_stmt *st = plot_prepare(c,
		"SELECT variant, n FROM results WHERE run_id = ?1 AND task = 'speed'"
		" AND pattern = ?2 AND d = ?3 AND heads = ?4 AND kv_heads = ?5 AND batch = ?6"
		" AND status = 'ok' AND unstable > 0 ORDER BY variant, n");
	char safe[80];
	int rc;

	*count = 0;
	if (!st)
		return -EIO;
	bind_pattern_shape(st, pattern, shape);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!(*count)++)
			fprintf(f, "# unstable (ringed; column 5): the round medians of these cells"
				" disagreed beyond %.2fx even after extra rounds; their latency may"
				" be the machine's load, not the method's\n", ROUNDS_SPREAD_LIMIT);
		plot_comment_text((const char *)sqlite3_column_text(st, 0), safe, sizeof(safe));
		fprintf(f, "#   %s at N = %d\n", safe, sqlite3_column_int(st, 1));
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : plot_read_failed(c);
}

int figure_speed(struct plot_ctx *c, const char *pattern, bool memory)
{
	/* column 5: whether a cell at that length was marked unstable */
	static const char latency_sql[] =
		"SELECT n, avg(latency_ms), avg(latency_lo_ms), avg(latency_hi_ms),"
		" max(ifnull(unstable, 0)) FROM results"
		" WHERE run_id = ?1 AND task = 'speed' AND pattern = ?2 AND variant = ?3"
		" AND d = ?4 AND heads = ?5 AND kv_heads = ?6 AND batch = ?7 AND status = 'ok'"
		" AND latency_ms > 0 GROUP BY n ORDER BY n";
	static const char memory_sql[] =
		"SELECT n, avg(peak_bytes) FROM results"
		" WHERE run_id = ?1 AND task = 'speed' AND pattern = ?2 AND variant = ?3"
		" AND d = ?4 AND heads = ?5 AND kv_heads = ?6 AND batch = ?7 AND status = 'ok'"
		" AND peak_bytes > 0 GROUP BY n ORDER BY n";
	const struct run_variant *blocks[MAX_VARIANTS];
	struct figure g;
	char name[64];
	int shape[4], n, rc, unstable = 0;
	FILE *f;

	rc = plot_common_shape(c, "speed", pattern, NULL, shape);
	if (rc)
		return rc == -ENODATA ? 0 : rc;
	snprintf(name, sizeof(name), "%s-%s", memory ? "memory" : "latency", pattern);
	f = plot_open_out(c, name, "dat");
	if (!f)
		return -EIO;
	fprintf(f, "# %s, pattern %s, run %lld: d = %d, heads = %d, kv_heads = %d, batch = %d\n",
		memory ? "peak workspace" : "forward latency", pattern, (long long)c->o->run_id,
		shape[0], shape[1], shape[2], shape[3]);
	n = plot_write_variant_blocks(c, f, memory ? memory_sql : latency_sql, pattern, shape, 4,
				 memory ? "N\tpeak_bytes" :
				 "N\tmedian_ms\tci_lo_ms\tci_hi_ms (95% interval of the median,"
				 " or less below 6 samples: see the end)\tunstable",
				 blocks);
	if (n > 0 && !memory && (note_low_interval_levels(c, f, pattern, shape) ||
				 note_unstable(c, f, pattern, shape, &unstable)))
		n = -EIO;
	n = plot_close_dat(c, f, name, n);
	if (n <= 0)
		return n;
	figure_init(&g, c, name, memory ? "memory" : "latency");
	if (memory)
		g.ml = 0.8;	/* tick labels such as "512 KiB" */
	figure_variant_keys(&g, blocks, n, pattern, KEY_LINEPOINT);
	if (unstable)
		figure_key(&g, "unstable: rounds disagree", "ls_unstable", KEY_POINT);
	rc = figure_begin_one_panel(&g, memory ? "peak workspace vs sequence length" :
				    "forward latency vs sequence length", c->x_min, c->x_max,
				    TICK_PLAIN);
	if (rc)
		return rc;
	plot_log_axis(&g, "yaxis", 'y', c->y_min, c->y_max, g.panel_h,
		      memory ? TICK_BYTES : TICK_PLAIN, NULL);
	figure_block_list(&g, "lines", "line", blocks, NULL, n);
	figure_emit(&g, "body");
	return figure_end(&g);
}

/*
 * Speed-up over the baseline vs N: median(baseline samples) / median(variant samples) at
 * each length both have, with stats_median_ratio()'s percentile bootstrap interval
 * (seeded, so the same database gives the same figure).
 */
int figure_speedup(struct plot_ctx *c, const char *pattern)
{
	static const char samples_sql[] =
		"SELECT s.seconds FROM samples s JOIN cells c ON c.id = s.cell_id"
		" WHERE c.run_id = ?1 AND c.task = 'speed' AND c.pattern = ?2 AND c.variant = ?3"
		" AND c.n = ?4 AND c.d = ?5 AND c.heads = ?6 AND c.kv_heads = ?7"
		" AND c.batch = ?8 AND c.status = 'ok' ORDER BY s.cell_id, s.idx";
	static const char lengths_sql[] =
		"SELECT DISTINCT n FROM cells WHERE run_id = ?1 AND task = 'speed'"
		" AND pattern = ?2 AND variant = ?3 AND d = ?4 AND heads = ?5 AND kv_heads = ?6"
		" AND batch = ?7 AND status = 'ok' ORDER BY n";
	const struct run_variant *blocks[MAX_VARIANTS];
	double *base = NULL, *var = NULL, ymin = 1, ymax = 1, xmin = 0, xmax = 0;
	size_t n_base, n_var, cap_base = 0, cap_var = 0;
	sqlite3_stmt *samples = NULL, *lengths = NULL;
	int shape[4], n = 0, rc, len[64], n_len = 0;
	char name[64], safe[80], safe_base[80];
	struct figure g;
	FILE *f = NULL;

	if (!c->have_baseline)
		return 0;
	rc = plot_common_shape(c, "speed", pattern, c->baseline, shape);
	if (rc)
		return rc == -ENODATA ? 0 : rc;
	lengths = plot_prepare(c, lengths_sql);
	samples = plot_prepare(c, samples_sql);
	if (!lengths || !samples) {
		rc = -EIO;
		goto out;
	}
	sqlite3_bind_text(lengths, 2, pattern, -1, SQLITE_STATIC);
	sqlite3_bind_text(lengths, 3, c->baseline, -1, SQLITE_STATIC);
	for (int k = 0; k < 4; k++)
		sqlite3_bind_int(lengths, 4 + k, shape[k]);
	while ((rc = sqlite3_step(lengths)) == SQLITE_ROW && n_len < 64)
		len[n_len++] = sqlite3_column_int(lengths, 0);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		rc = plot_read_failed(c);
		goto out;
	}
	rc = 0;
	if (!n_len)
		goto out;
	sqlite3_bind_text(samples, 2, pattern, -1, SQLITE_STATIC);
	for (int k = 0; k < 4; k++)
		sqlite3_bind_int(samples, 5 + k, shape[k]);
	snprintf(name, sizeof(name), "speedup-%s", pattern);
	f = plot_open_out(c, name, "dat");
	if (!f) {
		rc = -EIO;
		goto out;
	}
	plot_comment_text(c->baseline, safe_base, sizeof(safe_base));
	fprintf(f, "# speed-up over %s, pattern %s, run %lld: d = %d, heads = %d, kv_heads = %d,"
		" batch = %d\n# speedup = median(baseline samples) / median(variant samples);"
		" lo, hi: 95%% percentile bootstrap\n# interval (%d resamples of both samples,"
		" seeded by N)\n", safe_base, pattern, (long long)c->o->run_id, shape[0],
		shape[1], shape[2], shape[3], SPEEDUP_ITERS);
	for (int i = 0; i < c->n_variants; i++) {
		const struct run_variant *v = &c->variants[i];
		int rows = 0;

		if (!strcmp(v->name, c->baseline))
			continue;
		for (int j = 0; j < n_len; j++) {
			struct sample_summary sb, sv;
			struct ratio_interval r;

			sqlite3_bind_int(samples, 4, len[j]);
			sqlite3_bind_text(samples, 3, v->name, -1, SQLITE_STATIC);
			rc = plot_load_samples(c, samples, &var, &n_var, &cap_var);
			if (rc)
				goto out;
			if (!n_var)
				continue;
			sqlite3_bind_text(samples, 3, c->baseline, -1, SQLITE_STATIC);
			rc = plot_load_samples(c, samples, &base, &n_base, &cap_base);
			if (rc)
				goto out;
			if (!n_base)
				continue;
			/* a = variant, b = baseline: r.ratio = median(b) / median(a) */
			if (stats_median_ratio(var, n_var, base, n_base, SPEEDUP_ITERS,
					       (uint64_t)len[j], &r) ||
			    stats_summarise(base, n_base, &sb) || stats_summarise(var, n_var, &sv)) {
				rc = why_fail(-ENOMEM, c->why, c->why_len,
					      "out of memory in the bootstrap");
				goto out;
			}
			plot_comment_text(v->name, safe, sizeof(safe));
			if (!rows++)
				fprintf(f, "%s# variant %s\n# N\tspeedup\tlo\thi\tbaseline_ms\t"
					"variant_ms\tbaseline_samples\tvariant_samples\n",
					n ? "\n\n" : "", safe);
			fprintf(f, "%d\t%.9g\t%.9g\t%.9g\t%.9g\t%.9g\t%zu\t%zu\n", len[j], r.ratio,
				r.lo, r.hi, 1000 * sb.median, 1000 * sv.median, n_base, n_var);
			if (r.lo > 0 && r.lo < ymin)
				ymin = r.lo;
			if (r.hi > ymax)
				ymax = r.hi;
			if (!xmax || len[j] < xmin)
				xmin = len[j];
			if (len[j] > xmax)
				xmax = len[j];
		}
		if (rows)
			blocks[n++] = v;
	}
	rc = plot_close_dat(c, f, name, n);
	f = NULL;
	if (rc <= 0)
		goto out;
	figure_init(&g, c, name, "speedup");
	figure_variant_keys(&g, blocks, n, pattern, KEY_LINEPOINT);
	figure_key(&g, "no change (1\303\227)", STYLE_REFERENCE, KEY_LINE);
	rc = figure_begin_one_panel(&g, "speed-up over the baseline vs sequence length", xmin,
				    xmax, TICK_PLAIN);
	if (rc)
		goto out;
	plot_log_axis(&g, "yaxis", 'y', ymin, ymax, g.panel_h, TICK_PLAIN, NULL);
	figure_var_string(&g, "baseline", c->baseline);
	figure_block_list(&g, "lines", "line", blocks, NULL, n);
	figure_emit(&g, "body");
	rc = figure_end(&g);
out:
	if (f)
		fclose(f);
	sqlite3_finalize(lengths);
	sqlite3_finalize(samples);
	free(base);
	free(var);
	return rc;
}

/* run_metrics names the efficiency figure reads (see harness/store/store.c, schema 2). */
enum {
	EFF_TIME, EFF_TIME_LO, EFF_TIME_HI, EFF_TIME_CAB,
	EFF_MEM, EFF_MEM_LO, EFF_MEM_HI, EFF_MEM_CAB,
	EFF_SLOPE, EFF_TIME_BELOW, EFF_MEM_BELOW, EFF_COUNT,
};

static const char *const eff_names[EFF_COUNT] = {
	"efficiency_length_time", "efficiency_length_time_lo", "efficiency_length_time_hi",
	"cab_efficiency_length_time",
	"efficiency_length_memory", "efficiency_length_memory_lo",
	"efficiency_length_memory_hi", "cab_efficiency_length_memory",
	"loglog_slope_time",
	"efficiency_below_range_time", "efficiency_below_range_memory",
};

struct eff_row {
	const struct run_variant *v;
	double val[EFF_COUNT];
	unsigned int have;	/* bit k: a row named eff_names[k] exists */
	unsigned int null;	/* bit k: and its value is NULL ("none") */
};

/* s with each '%' doubled: gnuplot reads an explicit tic label as a format. */
static void tic_label_text(const char *s, char *buf, size_t len)
{
	size_t n = 0;

	for (; *s && n + 2 < len; s++) {
		if (*s == '%')
			buf[n++] = '%';
		buf[n++] = *s;
	}
	if (len)
		buf[n < len ? n : len - 1] = '\0';
}

/* Whether a row named eff_names[k] exists and holds a number (not NULL: "none"). */
static bool eff_known(const struct eff_row *r, int k)
{
	return (r->have >> k & 1) && !(r->null >> k & 1) && isfinite(r->val[k]);
}

/*
 * Whether the variant is cheaper at every measured length in k (EFF_TIME or EFF_MEM): the
 * stored length is then the smallest length, an upper bound, not a crossing.
 */
static bool eff_below(const struct eff_row *r, int k)
{
	int flag = k == EFF_TIME ? EFF_TIME_BELOW : EFF_MEM_BELOW;

	return eff_known(r, k) && eff_known(r, flag) && r->val[flag] == 1;
}

/* A value of the .dat: the number, or NaN when missing or NULL. */
static void put_value(FILE *f, const struct eff_row *r, int k)
{
	if (eff_known(r, k))
		fprintf(f, "\t%.9g", r->val[k]);
	else
		fputs("\tNaN", f);
}

/*
 * Efficiency lengths against the baseline, from run_metrics: horizontal bars (a row per
 * variant) in a time panel and a memory panel; the measured crossing as the bar with its
 * interval, CAB's fitted crossing as a mark; a value stored as NULL (no crossing in the
 * measured range) as a hatched bar over that range, labelled "none"; a variant cheaper at
 * every measured length (below range) as an arrow from its smallest length N_1 to the
 * left edge, labelled "< N_1", with a legend entry of its own (a bar there would read as a
 * crossing at N_1). At the page size a third panel shows the fitted log-log slope of
 * latency.
 */
int figure_efficiency(struct plot_ctx *c, const char *pattern)
{
	static const char rows_sql[] =
		"SELECT variant, name, value FROM run_metrics WHERE run_id = ?1 AND pattern = ?2"
		" AND baseline = ?3";
	static const char range_sql[] =
		"SELECT min(n), max(n) FROM results WHERE run_id = ?1 AND task = 'speed'"
		" AND pattern = ?2 AND status = 'ok'";
	const char *baseline = c->baseline;
	struct eff_row rows[MAX_VARIANTS] = { 0 };
	const struct run_variant *variants[MAX_VARIANTS];
	double lo = INFINITY, hi = 0, rlo = 0, rhi = 0, ml = 0, slope_max = 2.4, range[2];
	double below_lo = INFINITY, below_hi = 0;
	bool slope = false, bars = false;
	int n = 0, rc, panels;
	char name[64], title[96], label[192], quoted[800], safe[80], safe_base[80];
	struct figure g;
	sqlite3_stmt *st;
	FILE *f;

	st = plot_prepare(c, rows_sql);
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 2, pattern, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, baseline, -1, SQLITE_STATIC);
	for (int i = 0; i < c->n_variants; i++)
		rows[i].v = &c->variants[i];
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *variant = (const char *)sqlite3_column_text(st, 0);
		const char *metric = (const char *)sqlite3_column_text(st, 1);

		for (int i = 0; variant && metric && i < c->n_variants; i++) {
			if (strcmp(variant, c->variants[i].name) || !strcmp(variant, baseline))
				continue;
			for (int k = 0; k < EFF_COUNT; k++) {
				if (strcmp(metric, eff_names[k]))
					continue;
				rows[i].have |= 1u << k;
				if (sqlite3_column_type(st, 2) == SQLITE_NULL)
					rows[i].null |= 1u << k;
				else
					rows[i].val[k] = sqlite3_column_double(st, 2);
			}
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return plot_read_failed(c);
	/* keep the variants with a bar to draw, in registry order */
	for (int i = 0; i < c->n_variants; i++) {
		if (!(rows[i].have & (1u << EFF_TIME | 1u << EFF_MEM | 1u << EFF_SLOPE)))
			continue;
		rows[n++] = rows[i];
	}
	for (int i = 0; i < n; i++) {
		bars |= rows[i].have & (1u << EFF_TIME | 1u << EFF_MEM);
		if ((rows[i].have >> EFF_SLOPE & 1) && !(rows[i].null >> EFF_SLOPE & 1)) {
			slope = true;
			if (rows[i].val[EFF_SLOPE] + 0.3 > slope_max)
				slope_max = rows[i].val[EFF_SLOPE] + 0.3;
		}
		for (int k = EFF_TIME; k <= EFF_MEM; k += EFF_MEM - EFF_TIME) {
			if (!eff_below(&rows[i], k))
				continue;
			below_lo = fmin(below_lo, rows[i].val[k]);
			below_hi = fmax(below_hi, rows[i].val[k]);
		}
		for (int k = 0; k < EFF_SLOPE; k++) {
			double v = rows[i].val[k];

			if (!eff_known(&rows[i], k) || !(v > 0))
				continue;
			if (v < lo)
				lo = v;
			if (v > hi)
				hi = v;
		}
	}
	if (!bars)
		return 0;
	/* the measured range: where "none" was looked for */
	st = plot_prepare(c, range_sql);
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 2, pattern, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		rlo = sqlite3_column_double(st, 0);
		rhi = sqlite3_column_double(st, 1);
	}
	sqlite3_finalize(st);
	if (!(rlo > 0)) {
		rlo = hi > 0 ? lo : 1;
		rhi = hi > 0 ? hi : 2;
	}
	if (rlo < lo)
		lo = rlo;
	if (rhi > hi)
		hi = rhi;
	/* an octave left of the smallest length, for the arrows of "below range" */
	if (below_lo < INFINITY && below_lo / 2 < lo)
		lo = below_lo / 2;

	snprintf(name, sizeof(name), "efficiency-%s", pattern);
	f = plot_open_out(c, name, "dat");
	if (!f)
		return -EIO;
	plot_comment_text(baseline, safe_base, sizeof(safe_base));
	fprintf(f, "# efficiency length against %s, pattern %s, run %lld, from run_metrics:\n"
		"# the length N from which a variant is cheaper than the baseline, measured\n"
		"# (crossing of the medians, with its interval) and by CAB's fit; NaN = not\n"
		"# stored; none = 1: stored as NULL, no crossing in the measured range %g..%g;\n"
		"# below = 1: cheaper at every measured length, the length is then the smallest\n"
		"# one (the crossing lies below it)\n",
		safe_base, pattern, (long long)c->o->run_id, rlo, rhi);
	for (int i = 0; i < n; i++) {
		const struct eff_row *r = &rows[i];

		plot_comment_text(r->v->name, safe, sizeof(safe));
		fprintf(f, "%s# variant %s\n# row\ttime\ttime_lo\ttime_hi\tcab_time\ttime_none\t"
			"memory\tmemory_lo\tmemory_hi\tcab_memory\tmemory_none\tloglog_slope_time\t"
			"time_below\tmemory_below\n%d", i ? "\n\n" : "", safe, n - 1 - i);
		for (int k = EFF_TIME; k <= EFF_TIME_CAB; k++)
			put_value(f, r, k);
		fprintf(f, "\t%d", (r->null >> EFF_TIME & 1) && (r->have >> EFF_TIME & 1));
		for (int k = EFF_MEM; k <= EFF_MEM_CAB; k++)
			put_value(f, r, k);
		fprintf(f, "\t%d", (r->null >> EFF_MEM & 1) && (r->have >> EFF_MEM & 1));
		put_value(f, r, EFF_SLOPE);
		fprintf(f, "\t%d\t%d\n", eff_below(r, EFF_TIME), eff_below(r, EFF_MEM));
		plot_variant_title(c, r->v, pattern, title, sizeof(title));
		if (plot_text_in(c, title) > ml)
			ml = plot_text_in(c, title);
	}
	rc = plot_close_out(c, f, name, "dat");
	if (rc)
		return rc;

	figure_init(&g, c, name, "efficiency");
	figure_key(&g, "efficiency length (measured)", "0", KEY_BAR);
	figure_key(&g, "95% interval", "0", KEY_INTERVAL);
	figure_key(&g, "CAB's fit", STYLE_MARK, KEY_POINT);
	figure_key(&g, "none: no crossing in range", "0", KEY_HATCH);
	if (below_lo < INFINITY) {
		if (below_lo == below_hi)
			snprintf(title, sizeof(title), "cheaper at every measured length (< %.0f)",
				 below_lo);
		else
			snprintf(title, sizeof(title), "cheaper at every measured length"
				 " (< the smallest)");
		figure_key(&g, title, STYLE_BELOW, KEY_ARROW);
	}
	g.ml = ml + 0.14;
	g.mt = MT_IN + TITLE_IN;
	g.hgap = 0.36;	/* room for the end tick labels of two neighbours */
	g.panel_h = 0.2 * n + 0.15;
	if (g.panel_h < 0.9)
		g.panel_h = 0.9;
	panels = slope && c->o->size == PLOT_PAGE ? 3 : 2;
	rc = figure_begin(&g, "efficiency length against the baseline", 1, panels);
	if (rc)
		return rc;
	for (int i = 0; i < n; i++)
		variants[i] = rows[i].v;
	figure_var(&g, "rows_top", "%d.6", n - 1);
	figure_var(&g, "last", "%d", n - 1);
	figure_emit(&g, "body");
	for (int p = 0; p < panels; p++) {
		const char *measure = p == 0 ? "time" : "memory";
		const struct run_variant *bar_rows[MAX_VARIANTS];
		int bar_index[MAX_VARIANTS], n_bars = 0;
		char bar[16];

		figure_panel(&g, p);
		if (p == 0) {
			/* the rows' names, top to bottom, as y tick labels */
			figure_var(&g, "row_names", "%s", "");
			for (int i = 0; i < n; i++) {
				plot_variant_title(c, rows[i].v, pattern, title, sizeof(title));
				tic_label_text(title, label, sizeof(label));
				plot_gp_string(label, quoted, sizeof(quoted));
				figure_var(&g, "row_name", "%s", quoted);
				figure_var(&g, "row", "%d", n - 1 - i);
				figure_var_append(&g, "row_names", ", ", "row-name");
			}
			figure_emit(&g, "row-names");
		} else {
			figure_emit(&g, "no-row-names");
		}
		if (p == 2) {
			figure_var(&g, "slope_max", "%g", slope_max);
			figure_block_list(&g, "slopes", "slope-point", variants, NULL, n);
			figure_emit(&g, "slope");
			continue;
		}
		plot_log_axis(&g, "xaxis", 'x', lo, hi, g.panel_w, TICK_PLAIN, range);
		/* "none": a hatched box over the measured range, labelled */
		figure_var(&g, "nones", "%s", "");
		for (int i = 0; i < n; i++) {
			int k = p == 0 ? EFF_TIME : EFF_MEM;

			if (!(rows[i].have >> k & 1) || !(rows[i].null >> k & 1))
				continue;
			figure_var(&g, "tag", "%d", i + 1);
			figure_var(&g, "x0", "%g", rlo);
			figure_var(&g, "x1", "%g", rhi);
			figure_var(&g, "y0", "%g", n - 1 - i - 0.32);
			figure_var(&g, "y1", "%g", n - 1 - i + 0.32);
			figure_var(&g, "xc", "%g", sqrt(rlo * rhi));
			figure_var(&g, "row", "%d", n - 1 - i);
			figure_var_append(&g, "nones", "\n", "none");
		}
		/* below range: an arrow from N_1 to the left edge, labelled */
		figure_var(&g, "belows", "%s", "");
		for (int i = 0; i < n; i++) {
			int k = p == 0 ? EFF_TIME : EFF_MEM;
			char text[32];

			if (!eff_below(&rows[i], k)) {
				bar_rows[n_bars] = rows[i].v;
				bar_index[n_bars++] = i;
				continue;
			}
			snprintf(text, sizeof(text), "< %.0f", rows[i].val[k]);
			plot_gp_string(text, quoted, sizeof(quoted));
			figure_var(&g, "tag", "%d", i + 1);
			figure_var(&g, "label_tag", "%d", MAX_VARIANTS + i + 1);
			figure_var(&g, "x0", "%g", range[0]);
			figure_var(&g, "x1", "%g", rows[i].val[k]);
			figure_var(&g, "row", "%d", n - 1 - i);
			figure_var(&g, "text", "%s", quoted);
			figure_var_append(&g, "belows", "\n", "below");
		}
		figure_var(&g, "start", "%g", range[0]);
		snprintf(bar, sizeof(bar), "bar-%s", measure);
		figure_block_list(&g, "bars", bar, bar_rows, bar_index, n_bars);
		if (!n_bars)	/* every row below range: the plot command needs an element */
			figure_var_append(&g, "bars", "", "no-bars");
		figure_emit(&g, measure);
	}
	return figure_end(&g);
}

/*
 * Accuracy against latency at one length: a point per variant, x its median latency at
 * N = pareto_length (speed task, the pattern's common shape), y its mean recall accuracy
 * over every recall cell of the pattern (all P, d and gaps, each cell weighing the same),
 * or, when the run has no recall on the pattern, its mean passkey accuracy over the depths
 * at the largest passkey length. The Pareto-optimal points (no other point is at least as
 * fast and more accurate) are joined by a step line.
 */
int figure_pareto(struct plot_ctx *c, const char *pattern)
{
	static const char latency_sql[] =
		"SELECT avg(latency_ms) FROM results WHERE run_id = ?1 AND task = 'speed'"
		" AND pattern = ?2 AND variant = ?3 AND n = ?4 AND d = ?5 AND heads = ?6"
		" AND kv_heads = ?7 AND batch = ?8 AND status = 'ok' AND latency_ms > 0";
	static const char recall_sql[] =
		"SELECT avg(accuracy) FROM results WHERE run_id = ?1 AND task = 'recall'"
		" AND pattern = ?2 AND variant = ?3 AND status = 'ok' AND accuracy IS NOT NULL";
	static const char passkey_sql[] =
		"SELECT avg(accuracy) FROM results WHERE run_id = ?1 AND task = 'passkey'"
		" AND pattern = ?2 AND variant = ?3 AND m = ?4 AND status = 'ok'"
		" AND accuracy IS NOT NULL";
	struct point {
		const struct run_variant *v;
		double latency, accuracy;
	} pts[MAX_VARIANTS];
	const struct run_variant *blocks[MAX_VARIANTS];
	int shape[4], n = 0, order[MAX_VARIANTS], rc, passkey_m = 0;
	sqlite3_stmt *lat = NULL, *acc = NULL, *st;
	double xmin = INFINITY, xmax = 0, best = -1;
	char name[64], safe[80];
	struct figure g;
	FILE *f;

	if (!c->pareto_length)
		return 0;
	rc = plot_common_shape(c, "speed", pattern, NULL, shape);
	if (rc)
		return rc == -ENODATA ? 0 : rc;
	/* recall when the pattern has it, else passkey at its largest length */
	if (isnan(plot_mean_metric(c, "recall", pattern, "accuracy"))) {
		st = plot_prepare(c, "SELECT max(m) FROM results WHERE run_id = ?1 AND task = 'passkey'"
			     " AND pattern = ?2 AND status = 'ok' AND accuracy IS NOT NULL");
		if (!st)
			return -EIO;
		sqlite3_bind_text(st, 2, pattern, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			passkey_m = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
		if (!passkey_m)
			return 0;
	}
	lat = plot_prepare(c, latency_sql);
	acc = plot_prepare(c, passkey_m ? passkey_sql : recall_sql);
	if (!lat || !acc) {
		rc = -EIO;
		goto out;
	}
	sqlite3_bind_text(lat, 2, pattern, -1, SQLITE_STATIC);
	sqlite3_bind_int64(lat, 4, c->pareto_length);
	for (int k = 0; k < 4; k++)
		sqlite3_bind_int(lat, 5 + k, shape[k]);
	sqlite3_bind_text(acc, 2, pattern, -1, SQLITE_STATIC);
	if (passkey_m)
		sqlite3_bind_int(acc, 4, passkey_m);
	for (int i = 0; i < c->n_variants; i++) {
		const struct run_variant *v = &c->variants[i];
		bool ok;

		sqlite3_bind_text(lat, 3, v->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(acc, 3, v->name, -1, SQLITE_STATIC);
		ok = sqlite3_step(lat) == SQLITE_ROW && sqlite3_column_type(lat, 0) != SQLITE_NULL &&
		     sqlite3_step(acc) == SQLITE_ROW && sqlite3_column_type(acc, 0) != SQLITE_NULL;
		if (ok) {
			pts[n].v = v;
			pts[n].latency = sqlite3_column_double(lat, 0);
			pts[n].accuracy = sqlite3_column_double(acc, 0);
			if (pts[n].latency < xmin)
				xmin = pts[n].latency;
			if (pts[n].latency > xmax)
				xmax = pts[n].latency;
			order[n] = n;
			blocks[n] = v;
			n++;
		}
		sqlite3_reset(lat);
		sqlite3_reset(acc);
	}
	rc = 0;
	if (!n)
		goto out;
	/* by latency, then the more accurate first; the front keeps each new best accuracy */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0; j--) {
			const struct point *a = &pts[order[j - 1]], *b = &pts[order[j]];
			int t;

			if (a->latency < b->latency ||
			    (a->latency == b->latency && a->accuracy >= b->accuracy))
				break;
			t = order[j];
			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	snprintf(name, sizeof(name), "pareto-%s", pattern);
	f = plot_open_out(c, name, "dat");
	if (!f) {
		rc = -EIO;
		goto out;
	}
	fprintf(f, "# accuracy vs latency, pattern %s, run %lld: median latency at N = %ld"
		" (speed, d = %d, heads = %d,\n# kv_heads = %d, batch = %d); %s\n",
		pattern, (long long)c->o->run_id, c->pareto_length, shape[0], shape[1], shape[2],
		shape[3], passkey_m ? "passkey accuracy at the largest length, mean over depths" :
		"recall accuracy, mean over all recall cells (every P, d and gap)");
	for (int i = 0; i < n; i++) {
		plot_comment_text(pts[i].v->name, safe, sizeof(safe));
		fprintf(f, "%s# variant %s\n# latency_ms\taccuracy\n%.9g\t%.9g\n", i ? "\n\n" : "",
			safe, pts[i].latency, pts[i].accuracy);
	}
	fprintf(f, "\n\n# Pareto front (no other variant is as fast and more accurate)\n"
		"# latency_ms\taccuracy\tvariant\n");
	for (int i = 0; i < n; i++) {
		const struct point *p = &pts[order[i]];

		if (p->accuracy <= best)
			continue;
		best = p->accuracy;
		/* the name is the last column, never read by the script: one field all the same */
		plot_data_word(p->v->name, safe, sizeof(safe));
		fprintf(f, "%.9g\t%.9g\t%s\n", p->latency, p->accuracy, safe);
	}
	rc = plot_close_out(c, f, name, "dat");
	if (rc)
		goto out;
	figure_init(&g, c, name, "pareto");
	figure_variant_keys(&g, blocks, n, pattern, KEY_POINT);
	figure_key(&g, "Pareto front", STYLE_FRONT, KEY_LINE);
	rc = figure_begin_one_panel(&g, "accuracy against latency, with the Pareto front", xmin,
				    xmax, TICK_PLAIN);
	if (rc)
		goto out;
	figure_var(&g, "length", "%ld", c->pareto_length);
	figure_var(&g, "passkey_m", "%d", passkey_m);
	figure_var(&g, "front", "%d", n);
	figure_block_list(&g, "points", "point", blocks, NULL, n);
	figure_emit(&g, "body");
	figure_emit(&g, passkey_m ? "passkey" : "recall");
	figure_emit(&g, "plot");
	rc = figure_end(&g);
out:
	sqlite3_finalize(lat);
	sqlite3_finalize(acc);
	return rc;
}
