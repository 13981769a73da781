/*
 * figures-accuracy.c - the figures of accuracy: fidelity-P (relative error against exact
 * attention, a panel per input regime), passkey-P (accuracy heatmaps by length and needle
 * depth, a panel per variant), recall-P and recall-packed-P (accuracy against the number
 * of pairs) and recall-state-P (accuracy against analytic state size). Each writes
 * NAME.dat, then NAME.gp from plots/KIND.gp (the sections it names below).
 */
#include "plot-internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Fidelity: relative Frobenius error of O against exact attention vs length (M, the keys
 * each query sees; = N on self patterns), log-log, a panel per input regime with a shared
 * y axis. An error of exactly 0 cannot be drawn on a log axis; the .dat says how many.
 */
int figure_fidelity(struct plot_ctx *c, const char *pattern, bool self)
{
	static const char regimes_sql[] =
		"SELECT DISTINCT regime FROM results WHERE run_id = ?1 AND task = 'fidelity'"
		" AND pattern = ?2 AND status = 'ok' AND rel_err > 0 AND regime IS NOT NULL"
		" ORDER BY CASE regime WHEN 'gaussian' THEN 0 WHEN 'peaked' THEN 1"
		" WHEN 'local' THEN 2 WHEN 'sink' THEN 3 WHEN 'lowrank' THEN 4 WHEN 'npy' THEN 5"
		" ELSE 6 END, regime";
	static const char rows_sql[] =
		"SELECT m, avg(rel_err), avg(cosine), avg(max_abs_err), avg(n) FROM results"
		" WHERE run_id = ?1 AND task = 'fidelity' AND pattern = ?2 AND variant = ?3"
		" AND regime = ?4 AND status = 'ok' AND rel_err > 0 GROUP BY m ORDER BY m";
	static const char range_sql[] =
		"SELECT min(rel_err), max(rel_err), min(m), max(m),"
		" (SELECT count(*) FROM results WHERE run_id = ?1 AND task = 'fidelity'"
		"  AND pattern = ?2 AND status = 'ok' AND rel_err = 0)"
		" FROM results WHERE run_id = ?1 AND task = 'fidelity' AND pattern = ?2"
		" AND status = 'ok' AND rel_err > 0";
	char regimes[MAX_REGIMES][256], name[64], title[400], ls[16];
	int index[MAX_REGIMES][MAX_VARIANTS], n_regimes = 0, blocks = 0, rc, zeros = 0;
	bool used[MAX_VARIANTS] = { false };
	double ymin = 0, ymax = 0, xmin = 0, xmax = 0;
	int lo_exp, hi_exp, step;
	sqlite3_stmt *st;
	struct figure g;
	FILE *f;

	st = plot_prepare(c, regimes_sql);
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 2, pattern, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n_regimes < MAX_REGIMES) {
		const char *regime = (const char *)sqlite3_column_text(st, 0);

		/* a regime cut short would match no cell: an empty panel */
		if (regime && strlen(regime) < sizeof(regimes[0]))
			snprintf(regimes[n_regimes++], sizeof(regimes[0]), "%s", regime);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return plot_read_failed(c);
	if (!n_regimes)
		return 0;
	st = plot_prepare(c, range_sql);
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 2, pattern, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		ymin = sqlite3_column_double(st, 0);
		ymax = sqlite3_column_double(st, 1);
		xmin = sqlite3_column_double(st, 2);
		xmax = sqlite3_column_double(st, 3);
		zeros = sqlite3_column_int(st, 4);
	}
	sqlite3_finalize(st);
	if (!(ymin > 0) || !(xmin > 0))
		return 0;

	snprintf(name, sizeof(name), "fidelity-%s", pattern);
	f = plot_open_out(c, name, "dat");
	if (!f)
		return -EIO;
	fprintf(f, "# fidelity against exact attention, pattern %s, run %lld: a block per"
		" regime and variant,\n# averaged over cells that differ only in shape or"
		" parameters; %d cells with an error of\n# exactly 0 are left out (log axis)\n",
		pattern, (long long)c->o->run_id, zeros);
	st = plot_prepare(c, rows_sql);
	if (!st) {
		fclose(f);
		return -EIO;
	}
	sqlite3_bind_text(st, 2, pattern, -1, SQLITE_STATIC);
	for (int r = 0; r < n_regimes; r++) {
		sqlite3_bind_text(st, 4, regimes[r], -1, SQLITE_STATIC);
		for (int i = 0; i < c->n_variants; i++) {
			int rows;

			sqlite3_bind_text(st, 3, c->variants[i].name, -1, SQLITE_STATIC);
			snprintf(title, sizeof(title), "regime %.255s, variant %.64s", regimes[r],
				 c->variants[i].name);
			rows = plot_write_block(c, f, st, blocks, title,
					   "M\trel_err\tcosine\tmax_abs_err\tN");
			if (rows < 0) {
				sqlite3_finalize(st);
				fclose(f);
				return rows;
			}
			index[r][i] = rows ? blocks++ : -1;
			used[i] |= rows > 0;
		}
	}
	sqlite3_finalize(st);
	rc = plot_close_out(c, f, name, "dat");
	if (rc)
		return rc;

	figure_init(&g, c, name, "fidelity");
	for (int i = 0; i < c->n_variants; i++)
		if (used[i]) {
			snprintf(ls, sizeof(ls), "%d", c->variants[i].style);
			plot_variant_title(c, &c->variants[i], pattern, title, sizeof(title));
			figure_key(&g, title, ls, KEY_LINEPOINT);
		}
	g.cols = n_regimes == 1 ? 1 : n_regimes < 3 ? 2 : c->o->size == PLOT_PAGE ? 3 : 2;
	g.rows = (n_regimes + g.cols - 1) / g.cols;
	g.mt = MT_IN + TITLE_IN;
	g.vgap = 0.3;
	if (n_regimes > 1)
		g.panel_h = c->o->size == PLOT_PAGE ? 1.45 : 1.15;
	rc = figure_begin(&g, "relative error against exact attention vs length", g.rows,
			  g.cols);
	if (rc)
		return rc;
	/* whole decades, at most ~5 labelled per panel */
	lo_exp = (int)floor(log10(ymin));
	hi_exp = (int)ceil(log10(ymax));
	if (hi_exp == lo_exp)
		hi_exp++;
	step = (hi_exp - lo_exp + 3) / 4;
	plot_log_axis(&g, "xaxis", 'x', xmin, xmax, g.panel_w, TICK_PLAIN, NULL);
	/* whole decades around the data, with a little room so no point sits on the border */
	figure_var(&g, "y_lo", "%g", pow(10, lo_exp) / 1.5);
	figure_var(&g, "y_hi", "%g", pow(10, hi_exp) * 1.5);
	figure_var(&g, "ytic_start", "1e%d", lo_exp);
	figure_var(&g, "ytic_step", "1e%d", step);
	figure_emit(&g, "body");
	for (int r = 0; r < n_regimes; r++) {
		const struct run_variant *blocks[MAX_VARIANTS];
		int n = 0, at[MAX_VARIANTS];

		for (int i = 0; i < c->n_variants; i++)
			if (index[r][i] >= 0) {
				blocks[n] = &c->variants[i];
				at[n++] = index[r][i];
			}
		figure_panel(&g, r);
		figure_var_string(&g, "regime", regimes[r]);
		figure_emit(&g, "regime");
		figure_emit(&g, r % g.cols == 0 ? "first-column" : "other-column");
		figure_emit(&g, !figure_lowest(&g, r, n_regimes) ? "not-lowest" :
			    self ? "lowest-self" : "lowest-cross");
		figure_block_list(&g, "lines", "line", blocks, at, n);
		figure_emit(&g, "plot");
	}
	return figure_end(&g);
}

/* Where the queries stand, as the .dat files say: [0] long range, [1] packed. */
static const char *const recall_gaps[2] = { "long range (gap > 0)", "packed (gap 0)" };

/*
 * What tells recall-P from recall-state-P; draw_recall() does the rest. Each has a long
 * range and a packed version (gap = 0: queries right after the pairs), apart, since filler
 * dilutes a fixed state in a way the pair count alone does not: [0] long range, [1] packed.
 */
struct recall_figure {
	const char *kind;	/* the template; NAME is KIND-P or KIND-packed-P */
	const char *sql[2];	/* a variant's rows, ?4.. the ints of binds */
	const char *columns;	/* the .dat's column names */
	const char *what[2];	/* the figure's caption */
	enum tick_unit x_unit;
	double mt;		/* room above the panel, inches */
	const char *var;	/* the placeholder of what the sweep held fixed (d, P) */
};

/*
 * A recall figure of pattern: NAME.dat (header, then a block per variant of r->sql with
 * binds), then one panel with a line per variant and chance, value in placeholder r->var.
 * Returns 0 (no figure when no variant has rows) or -errno.
 */
static int draw_recall(struct plot_ctx *c, const struct recall_figure *r, const char *pattern,
		       bool packed, const int *binds, int n_binds, const char *header,
		       const char *value)
{
	double chance = plot_mean_metric(c, "recall", pattern, "chance");
	const struct run_variant *blocks[MAX_VARIANTS];
	struct figure g;
	char name[64];
	int n, rc;
	FILE *f;

	snprintf(name, sizeof(name), "%s-%s%s", r->kind, packed ? "packed-" : "", pattern);
	f = plot_open_out(c, name, "dat");
	if (!f)
		return -EIO;
	fputs(header, f);
	n = plot_write_variant_blocks(c, f, r->sql[packed], pattern, binds, n_binds, r->columns,
				      blocks);
	n = plot_close_dat(c, f, name, n);
	if (n <= 0)
		return n;
	figure_init(&g, c, name, r->kind);
	figure_variant_keys(&g, blocks, n, pattern, KEY_LINEPOINT);
	if (chance > 0)
		figure_chance_key(&g, chance);
	g.mt = r->mt;
	rc = figure_begin_one_panel(&g, r->what[packed], c->x_min, c->x_max, r->x_unit);
	if (rc)
		return rc;
	figure_var(&g, r->var, "%s", value);
	figure_block_list(&g, "lines", "line", blocks, NULL, n);
	if (chance > 0) {
		figure_var(&g, "level", "%.9g", chance);
		figure_var_append(&g, "lines", ", \\\n\t     ", "chance");
	}
	figure_emit(&g, "body");
	return figure_end(&g);
}

/*
 * Recall accuracy vs pairs at one head dimension d: long range (gap > 0: pairs first,
 * filler, queries last) or packed (gap = 0).
 */
int figure_recall(struct plot_ctx *c, const char *pattern, bool packed)
{
	static const struct recall_figure fig = {
		.kind = "recall",
		.sql = {
			"SELECT pairs, avg(accuracy) FROM results"
			" WHERE run_id = ?1 AND task = 'recall' AND pattern = ?2 AND variant = ?3"
			" AND d = ?4 AND status = 'ok' AND accuracy IS NOT NULL AND pairs > 0"
			" AND gap > 0 GROUP BY pairs ORDER BY pairs",
			"SELECT pairs, avg(accuracy) FROM results"
			" WHERE run_id = ?1 AND task = 'recall' AND pattern = ?2 AND variant = ?3"
			" AND d = ?4 AND status = 'ok' AND accuracy IS NOT NULL AND pairs > 0"
			" AND gap = 0 GROUP BY pairs ORDER BY pairs",
		},
		.columns = "pairs\taccuracy",
		.what = {
			"associative recall accuracy vs number of pairs, queries far from the pairs",
			"associative recall accuracy vs number of pairs, queries right after the"
			" pairs",
		},
		.x_unit = TICK_PLAIN,
		.mt = MT_IN,
		.var = "d",
	};
	int shape[4] = { 0 }, rc;
	char header[300], d[16];
	sqlite3_stmt *st;

	/* d = 64 when the run has it, else the most common d */
	rc = plot_common_shape(c, "recall", pattern, NULL, shape);
	if (rc)
		return rc == -ENODATA ? 0 : rc;
	st = plot_prepare(c, "SELECT 1 FROM results WHERE run_id = ?1 AND task = 'recall'"
		     " AND pattern = ?2 AND d = 64 AND status = 'ok' LIMIT 1");
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 2, pattern, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		shape[0] = 64;
	sqlite3_finalize(st);
	snprintf(header, sizeof(header), "# recall accuracy, pattern %s, run %lld, head dimension"
		 " d = %d, %s (averaged over lengths)\n", pattern, (long long)c->o->run_id,
		 shape[0], recall_gaps[packed]);
	snprintf(d, sizeof(d), "%d", shape[0]);
	return draw_recall(c, &fig, pattern, packed, shape, 1, header, d);
}

/*
 * Recall vs state: a point per variant and head dimension d, x the variant's analytic
 * state at that d (the largest over the cells: packed cells grow N with P), y the mean
 * accuracy over the pair counts of the sweep; long range and packed apart, as recall-P.
 */
int figure_recall_state(struct plot_ctx *c, const char *pattern, bool packed)
{
	static const struct recall_figure fig = {
		.kind = "recall-state",
		.sql = {
			"SELECT max(state_bytes), avg(accuracy), d, count(*) FROM results"
			" WHERE run_id = ?1 AND task = 'recall' AND pattern = ?2 AND variant = ?3"
			" AND status = 'ok' AND accuracy IS NOT NULL AND state_bytes > 0"
			" AND pairs > 0 AND gap > 0 GROUP BY d ORDER BY 1",
			"SELECT max(state_bytes), avg(accuracy), d, count(*) FROM results"
			" WHERE run_id = ?1 AND task = 'recall' AND pattern = ?2 AND variant = ?3"
			" AND status = 'ok' AND accuracy IS NOT NULL AND state_bytes > 0"
			" AND pairs > 0 AND gap = 0 GROUP BY d ORDER BY 1",
		},
		.columns = "state_bytes\taccuracy\td\tcells",
		.what = {
			"recall accuracy vs analytic state size, queries far from the pairs",
			"recall accuracy vs analytic state size, queries right after the pairs",
		},
		.x_unit = TICK_BYTES,
		.mt = MT_IN + TITLE_IN,
		.var = "pairs",
	};
	char header[300], pairs[32];
	int p_lo = 0, p_hi = 0;
	sqlite3_stmt *st;

	st = plot_prepare(c, packed ?
		     "SELECT min(pairs), max(pairs) FROM results WHERE run_id = ?1 AND"
		     " task = 'recall' AND pattern = ?2 AND status = 'ok' AND gap = 0"
		     " AND state_bytes > 0 AND pairs > 0" :
		     "SELECT min(pairs), max(pairs) FROM results WHERE run_id = ?1 AND"
		     " task = 'recall' AND pattern = ?2 AND status = 'ok' AND gap > 0"
		     " AND state_bytes > 0 AND pairs > 0");
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 2, pattern, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		p_lo = sqlite3_column_int(st, 0);
		p_hi = sqlite3_column_int(st, 1);
	}
	sqlite3_finalize(st);
	if (!p_hi)
		return 0;
	if (p_lo == p_hi)
		snprintf(pairs, sizeof(pairs), "%d", p_lo);
	else
		snprintf(pairs, sizeof(pairs), "%d..%d", p_lo, p_hi);
	snprintf(header, sizeof(header), "# recall accuracy vs analytic state size, pattern %s,"
		 " run %lld, %s:\n# a row per head dimension d; accuracy averaged over the cells"
		 " (P = %s)\n", pattern, (long long)c->o->run_id, recall_gaps[packed], pairs);
	return draw_recall(c, &fig, pattern, packed, NULL, 0, header, pairs);
}

/*
 * Passkey heatmaps: a panel per variant in a grid (5 across a page, 3 across a column),
 * length up, needle depth across, one colour scale for all.
 */
int figure_passkey(struct plot_ctx *c, const char *pattern, bool self)
{
	/* depth and length as grid indices, so every cell is one square */
	static const char sql[] =
		"SELECT (SELECT count(DISTINCT p.depth) FROM results p WHERE p.run_id = ?1"
		"        AND p.task = 'passkey' AND p.pattern = ?2 AND p.status = 'ok'"
		"        AND p.accuracy IS NOT NULL AND p.depth < r.depth),"
		" (SELECT count(DISTINCT p.m) FROM results p WHERE p.run_id = ?1"
		"        AND p.task = 'passkey' AND p.pattern = ?2 AND p.status = 'ok'"
		"        AND p.accuracy IS NOT NULL AND p.m < r.m),"
		" avg(r.accuracy), r.depth, r.m FROM results r"
		" WHERE r.run_id = ?1 AND r.task = 'passkey' AND r.pattern = ?2"
		" AND r.variant = ?3 AND r.status = 'ok' AND r.accuracy IS NOT NULL"
		" AND r.depth IS NOT NULL GROUP BY r.m, r.depth ORDER BY r.m, r.depth";
	const struct run_variant *blocks[MAX_VARIANTS];
	double depths[64], lengths[64], region_top, region_h;
	int n_depths, n_lengths, n, rc, cols;
	char *text = NULL;
	size_t text_len = 0;
	FILE *tics;
	char name[64], title[96];
	struct figure g;
	FILE *f;

	n_depths = plot_distinct_values(c, "depth", pattern, depths, 64);
	n_lengths = plot_distinct_values(c, "m", pattern, lengths, 64);
	if (n_depths < 0 || n_lengths < 0)
		return -EIO;
	if (!n_depths || !n_lengths)
		return 0;
	snprintf(name, sizeof(name), "passkey-%s", pattern);
	f = plot_open_out(c, name, "dat");
	if (!f)
		return -EIO;
	fprintf(f, "# passkey accuracy, pattern %s, run %lld (cells: depth_index, length_index)\n",
		pattern, (long long)c->o->run_id);
	n = plot_write_variant_blocks(c, f, sql, pattern, NULL, 0,
				 "depth_index\tlength_index\taccuracy\tdepth\tkeys_M", blocks);
	n = plot_close_dat(c, f, name, n);
	if (n <= 0)
		return n;
	figure_init(&g, c, name, "passkey");
	cols = c->o->size == PLOT_PAGE ? 5 : 3;
	if (cols > n)
		cols = n;
	g.ml = 0.66;	/* length tick labels of 5 digits and the axis label */
	g.mr = 0.8;
	g.mt = MT_IN + TITLE_IN;
	g.vgap = 0.26;
	g.hgap = 0.1;
	g.panel_h = 0.16 * n_lengths + 0.06;
	if (g.panel_h < 0.34)
		g.panel_h = 0.34;
	rc = figure_begin(&g, "passkey retrieval accuracy by length and needle depth",
			  (n + cols - 1) / cols, cols);
	if (rc)
		return rc;
	region_top = g.height - g.key_h - g.mt;
	region_h = region_top - g.mb;
	figure_var(&g, "depth_top", "%d.5", n_depths - 1);
	figure_var(&g, "length_top", "%d.5", n_lengths - 1);
	figure_var(&g, "cb_x", "%.4f", (c->width - g.mr + 0.1) / c->width);
	figure_var(&g, "cb_y", "%.4f", g.mb / g.height);
	figure_var(&g, "cb_w", "%.4f", 0.1 / c->width);
	figure_var(&g, "cb_h", "%.4f", region_h / g.height);
	figure_var(&g, "ylabel_x", "%.4f", 0.1 / c->width);
	figure_var(&g, "ylabel_y", "%.4f", (g.mb + region_h / 2) / g.height);
	figure_var(&g, "xlabel_x", "%.4f", (g.ml + (c->width - g.ml - g.mr) / 2) / c->width);
	figure_var(&g, "xlabel_y", "%.4f", 0.1 / g.height);
	/* tick labels: the needle depths across, the lengths up */
	tics = open_memstream(&text, &text_len);
	if (!tics)
		return why_fail(-ENOMEM, c->why, c->why_len, "out of memory writing '%s.gp'", name);
	for (int i = 0, first = 1; i < n_depths; i++) {
		/* label the ends and the middle when more would crowd a small panel */
		if (n_depths > 5 && i && i != n_depths - 1 && i != (n_depths - 1) / 2)
			continue;
		fprintf(tics, "%s\"%g\" %d", first ? "" : ", ", depths[i], i);
		first = 0;
	}
	fputc('\0', tics);
	for (int i = 0; i < n_lengths; i++)
		fprintf(tics, "%s\"%.0f\" %d", i ? ", " : "", lengths[i], i);
	fclose(tics);
	figure_var(&g, "depth_tics", "%s", text);
	figure_var(&g, "length_tics", "%s", text + strlen(text) + 1);
	free(text);
	figure_emit(&g, "body");
	figure_emit(&g, self ? "self" : "cross");
	for (int k = 0; k < n; k++) {
		figure_panel(&g, k);
		plot_variant_title(c, blocks[k], pattern, title, sizeof(title));
		figure_var_string(&g, "variant", title);
		figure_var(&g, "index", "%d", k);
		figure_emit(&g, "variant");
		figure_emit(&g, k % cols ? "other-column" : "first-column");
		if (k == 1)
			figure_emit(&g, "second");
		figure_emit(&g, "plot");
	}
	return figure_end(&g);
}
