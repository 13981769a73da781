/*
 * figures-roofline.c - roofline-P: each variant's forward pass against this machine's two
 * limits. A point per variant at (arithmetic intensity, achieved rate): the FLOPs of a
 * speed cell over the bytes it moves (FLOP/byte), and its GFLOP/s; under the compute roof
 * (the run's SGEMM rate) and the memory roof (its triad bandwidth times the intensity),
 * which meet at the ridge point. Drawn only for a run that measured both (no run from
 * before schema 7 has the bandwidth); a run merged from shards has the shards' means.
 * Written as NAME.dat, then NAME.gp from plots/roofline.gp.
 *
 * One point per variant, at the pattern's one speed shape (as latency-P) and the largest N
 * the variant has in it, cells differing only in parameters averaged. A roofline places a
 * kernel by its steady state, which the largest length comes nearest (small lengths add
 * per-call costs the model knows nothing of); and one point each is what names beside the
 * points can label legibly: a suite's thirty variants, each at every length, would be
 * thirty tangled paths. Each name is placed by a greedy search (place_names()) among spots
 * around its point, clear of the other points and names, the roof and its labels.
 */
#include "plot-internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The roof's labels and the names are placed in inches on the panel. A point's mark is
 * taken as a square of ROOF_MARK_IN half-width (a point of `ps 1.3` at the style's
 * pointsize); names keep ROOF_GAP_IN from it.
 */
#define ROOF_MARK_IN 0.045
#define ROOF_GAP_IN 0.03
/* The axes reach at least 4x each side of the ridge, so the kink shows. */
#define ROOF_RIDGE_SPAN 4.0

struct roof_point {
	const struct run_variant *v;
	double intensity, gflops;	/* the point: FLOP/byte, GFLOP/s */
	double flops, bytes, latency_ms;
	int n;
	double x, y;			/* its place on the panel, inches */
	char title[96];
};

/* A box on the panel, in inches from its lower left corner. */
struct box {
	double x0, y0, x1, y1;
};

/* What the panel shows: its size, the axes' ranges, and the roof. */
struct roof_panel {
	double w, h;			/* inches */
	double x_range[2], y_range[2];	/* FLOP/byte, GFLOP/s */
	double peak, bandwidth, ridge;	/* GFLOP/s, GB/s, FLOP/byte */
	char blas_core[32];		/* OpenBLAS's kernels for the SGEMM rate, or "" */
	struct box fixed[3];		/* the roof's labels */
	int n_fixed;
};

/*
 * The name of OpenBLAS's kernels in a stored blas_config ("... (core Haswell)") into core,
 * or "" when there is none: letters, digits and '_' only, so nothing else of a stored
 * string reaches the script.
 */
static void blas_core_of(const char *config, char *core, size_t len)
{
	const char *at = config ? strstr(config, "(core ") : NULL;
	size_t n = at ? strspn(at + 6, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			       "0123456789_") : 0;

	core[0] = '\0';
	if (n > 0 && n < len && at[6 + n] == ')')
		snprintf(core, len, "%.*s", (int)n, at + 6);
}

/*
 * The run's SGEMM rate, triad bandwidth and OpenBLAS kernels into rp. Returns 1 when both
 * rates were measured, 0 when not (no figure), -EIO.
 */
static int machine_limits(struct plot_ctx *c, struct roof_panel *rp)
{
	sqlite3_stmt *st = plot_prepare(c, "SELECT sgemm_gflops, triad_gbps, blas_config"
					" FROM runs WHERE id = ?1");
	int rc, known = 0;

	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		rp->peak = sqlite3_column_double(st, 0);
		rp->bandwidth = sqlite3_column_double(st, 1);
		known = rp->peak > 0 && rp->bandwidth > 0 && isfinite(rp->peak) &&
			isfinite(rp->bandwidth);
		blas_core_of((const char *)sqlite3_column_text(st, 2), rp->blas_core,
			     sizeof(rp->blas_core));
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? known : plot_read_failed(c);
}

/* Each variant's point at its largest N of the shape into pts; their number or -EIO. */
static int load_points(struct plot_ctx *c, const char *pattern, const int *shape,
		       struct roof_point *pts)
{
	static const char sql[] =
		"SELECT n, avg(intensity), avg(gflops), avg(intensity * bytes), avg(bytes),"
		" avg(latency_ms)"
		" FROM results WHERE run_id = ?1 AND task = 'speed' AND pattern = ?2"
		" AND variant = ?3 AND d = ?4 AND heads = ?5 AND kv_heads = ?6 AND batch = ?7"
		" AND status = 'ok' AND gflops > 0 AND intensity > 0"
		" GROUP BY n ORDER BY n DESC LIMIT 1";
	sqlite3_stmt *st = plot_prepare(c, sql);
	int n = 0, rc;

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 2, pattern, -1, SQLITE_STATIC);
	for (int k = 0; k < 4; k++)
		sqlite3_bind_int(st, 4 + k, shape[k]);
	for (int i = 0; i < c->n_variants; i++) {
		struct roof_point *p = &pts[n];

		sqlite3_bind_text(st, 3, c->variants[i].name, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			p->v = &c->variants[i];
			p->n = sqlite3_column_int(st, 0);
			p->intensity = sqlite3_column_double(st, 1);
			p->gflops = sqlite3_column_double(st, 2);
			p->flops = sqlite3_column_double(st, 3);
			p->bytes = sqlite3_column_double(st, 4);
			p->latency_ms = sqlite3_column_double(st, 5);
			plot_variant_title(c, p->v, pattern, p->title, sizeof(p->title));
			n++;
		}
		sqlite3_reset(st);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			sqlite3_finalize(st);
			return plot_read_failed(c);
		}
	}
	sqlite3_finalize(st);
	return n;
}

/* A rate as a label shows it: 212, 72.1, 8.39. */
static void rate_text(double v, char *buf, size_t len)
{
	snprintf(buf, len, v >= 100 ? "%.0f" : "%.3g", v);
}

/*
 * The data: a block per variant (its point), then the roof's block: the memory roof from
 * x_lo to the ridge, then the compute roof to x_hi (gnuplot clips it to the axes).
 */
static int write_dat(struct plot_ctx *c, const char *name, const char *pattern,
		     const int *shape, const struct roof_point *pts, int n,
		     const struct roof_panel *rp, double x_lo, double x_hi)
{
	FILE *f = plot_open_out(c, name, "dat");
	char safe[80];

	if (!f)
		return -EIO;
	fprintf(f, "# roofline, pattern %s, run %lld: speed cells at d = %d, heads = %d,"
		" kv_heads = %d, batch = %d,\n# each variant at its largest N there; intensity ="
		" flops / bytes (FLOP/byte)\n# compute roof: sgemm_gflops = %.9g GFLOP/s (the"
		" run's SGEMM rate%s%s)\n# memory roof: triad_gbps = %.9g GB/s (GFLOP/s = triad_gbps"
		" x FLOP/byte)\n# ridge point: %.9g FLOP/byte\n", pattern, (long long)c->o->run_id,
		shape[0], shape[1], shape[2], shape[3], rp->peak, rp->blas_core[0] ?
		", OpenBLAS core " : "", rp->blas_core, rp->bandwidth, rp->ridge);
	for (int i = 0; i < n; i++) {
		plot_comment_text(pts[i].v->name, safe, sizeof(safe));
		fprintf(f, "%s# variant %s\n# intensity\tgflops\tN\tflops\tbytes\tlatency_ms\n"
			"%.9g\t%.9g\t%d\t%.9g\t%.9g\t%.9g\n", i ? "\n\n" : "", safe, pts[i].intensity,
			pts[i].gflops, pts[i].n, pts[i].flops, pts[i].bytes, pts[i].latency_ms);
	}
	fprintf(f, "\n\n# roof: the memory roof up to the ridge point, then the compute roof\n"
		"# intensity\tgflops\n%.9g\t%.9g\n%.9g\t%.9g\n%.9g\t%.9g\n", x_lo,
		rp->bandwidth * x_lo, rp->ridge, rp->peak, x_hi, rp->peak);
	return plot_close_out(c, f, name, "dat");
}

/* Where value lies along an axis of length inches over range (log). */
static double axis_in(double value, const double range[2], double length)
{
	return length * log(value / range[0]) / log(range[1] / range[0]);
}

static double overlap(const struct box *a, const struct box *b)
{
	double w = fmin(a->x1, b->x1) - fmax(a->x0, b->x0);
	double h = fmin(a->y1, b->y1) - fmax(a->y0, b->y0);

	return w > 0 && h > 0 ? w * h : 0;
}

/* The box a point's mark covers. */
static struct box mark_box(const struct roof_point *p)
{
	return (struct box){ p->x - ROOF_MARK_IN, p->y - ROOF_MARK_IN, p->x + ROOF_MARK_IN,
			     p->y + ROOF_MARK_IN };
}

/* How much of b lies outside the panel. */
static double outside(const struct roof_panel *rp, const struct box *b)
{
	struct box panel = { 0, 0, rp->w, rp->h };

	return (b->x1 - b->x0) * (b->y1 - b->y0) - overlap(b, &panel);
}

/* Whether the roof's line crosses b: tested at 1001 points along it. */
static bool crosses_roof(const struct roof_panel *rp, const struct box *b)
{
	double l0 = log(rp->x_range[0]), l1 = log(rp->x_range[1]);

	for (int k = 0; k <= 1000; k++) {
		double x = exp(l0 + (l1 - l0) * k / 1000);
		double y = fmin(rp->bandwidth * x, rp->peak);
		double xi = axis_in(x, rp->x_range, rp->w), yi;

		if (!(y > rp->y_range[0]) || !(y < rp->y_range[1]))
			continue;
		yi = axis_in(y, rp->y_range, rp->h);
		if (xi >= b->x0 && xi <= b->x1 && yi >= b->y0 && yi <= b->y1)
			return true;
	}
	return false;
}

/* How far (x, y) lies from box b, in inches; 0 inside it. */
static double box_distance(const struct box *b, double x, double y)
{
	return hypot(fmax(fmax(b->x0 - x, x - b->x1), 0), fmax(fmax(b->y0 - y, y - b->y1), 0));
}

/*
 * What placing point i's name in box b costs: overlap with other points, names placed so
 * far and the roof's labels (names over names worst), the part off the panel; a little
 * for crossing the roof, and for lying as near another point as its own (the reader
 * would not know whose it is). 0 is a clean spot.
 */
static double spot_cost(const struct roof_panel *rp, const struct roof_point *pts, int n,
			int i, const struct box *b, const struct box *placed, const bool *done)
{
	double cost = 10 * outside(rp, b), own = box_distance(b, pts[i].x, pts[i].y);

	for (int j = 0; j < n; j++) {
		struct box mark = mark_box(&pts[j]);

		cost += overlap(b, &mark) * (j == i ? 10 : 4);
		if (done[j])
			cost += 10 * overlap(b, &placed[j]);
		if (j != i && box_distance(b, pts[j].x, pts[j].y) < own + ROOF_GAP_IN)
			cost += 0.005;
	}
	for (int k = 0; k < rp->n_fixed; k++)
		cost += 10 * overlap(b, &rp->fixed[k]);
	if (crosses_roof(rp, b))
		cost += 0.01;
	return cost;
}

/*
 * Spot k of the name of a point (x, y), w x h inches: right, left, above, below, then the
 * four diagonals; then the same in three rings further out (with a leader); false past
 * the last.
 */
static bool spot(int k, double x, double y, double w, double h, struct box *b)
{
	static const signed char dir[8][2] = {
		{ 1, 0 }, { -1, 0 }, { 0, 1 }, { 0, -1 }, { 1, 1 }, { 1, -1 }, { -1, 1 }, { -1, -1 },
	};
	int ring = k / 8, dx = dir[k % 8][0], dy = dir[k % 8][1];
	double r = ROOF_MARK_IN + ROOF_GAP_IN + ring * 0.12;

	if (ring > 3)
		return false;
	b->x0 = dx > 0 ? x + r * (dy ? 0.7 : 1) : dx < 0 ? x - r * (dy ? 0.7 : 1) - w : x - w / 2;
	b->y0 = dy > 0 ? y + r * (dx ? 0.5 : 0.7) : dy < 0 ? y - r * (dx ? 0.5 : 0.7) - h :
		y - h / 2;
	b->x1 = b->x0 + w;
	b->y1 = b->y0 + h;
	return true;
}

/* How many other points lie within half an inch of point i: how crowded it sits. */
static int neighbours(const struct roof_point *pts, int n, int i)
{
	int count = 0;

	for (int j = 0; j < n; j++)
		count += j != i && hypot(pts[j].x - pts[i].x, pts[j].y - pts[i].y) < 0.5;
	return count;
}

/*
 * Places every name, the most crowded points first (they have the fewest clean spots),
 * each at its first spot of least cost: placed[i] gets the box of point i's name.
 */
static void place_names(struct plot_ctx *c, const struct roof_panel *rp,
			const struct roof_point *pts, int n, struct box *placed)
{
	bool done[MAX_VARIANTS] = { false };
	int order[MAX_VARIANTS], crowd[MAX_VARIANTS];

	for (int i = 0; i < n; i++) {
		order[i] = i;
		crowd[i] = neighbours(pts, n, i);
	}
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && crowd[order[j - 1]] < crowd[order[j]]; j--) {
			int t = order[j];

			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	for (int o = 0; o < n; o++) {
		int i = order[o];
		double w = plot_text_in(c, pts[i].title), h = plot_line_in(c), best = INFINITY;
		struct box b;

		for (int k = 0; best > 0 && spot(k, pts[i].x, pts[i].y, w, h, &b); k++) {
			double cost = spot_cost(rp, pts, n, i, &b, placed, done);

			if (cost < best) {
				best = cost;
				placed[i] = b;
			}
		}
		done[i] = true;
	}
}

/* The box of a label w inches wide whose left end is at x, centred on y. */
static struct box label_box(double x, double y, double w, double h)
{
	return (struct box){ x, y - h / 2, x + w, y + h / 2 };
}

/*
 * The first of boxes[0..k) on the panel and clear of every point and of the roof's labels
 * placed so far; when none is, the one that covers least of them.
 */
static int first_clear(const struct roof_panel *rp, const struct roof_point *pts, int n,
		       const struct box *boxes, int k)
{
	double best = INFINITY;
	int chosen = 0;

	for (int c = 0; c < k && best > 0; c++) {
		double cost = outside(rp, &boxes[c]);

		for (int j = 0; j < n; j++) {
			struct box mark = mark_box(&pts[j]);

			cost += overlap(&boxes[c], &mark);
		}
		for (int f = 0; f < rp->n_fixed; f++)
			cost += overlap(&boxes[c], &rp->fixed[f]);
		if (cost < best) {
			best = cost;
			chosen = c;
		}
	}
	return chosen;
}

/*
 * One of the roof's labels: its text (printf-style) into placeholder var_label, the first
 * clear of boxes[0..k) into var_x and var_y (its left end and middle, graph coordinates)
 * and into rp->fixed, which later labels keep clear of.
 */
static void roof_label(struct figure *g, struct roof_panel *rp, const struct roof_point *pts,
		       int n, const char *var, const char *text, const struct box *boxes, int k)
{
	const struct box *b = &boxes[first_clear(rp, pts, n, boxes, k)];
	char name[32], quoted[200];

	plot_gp_string(text, quoted, sizeof(quoted));
	snprintf(name, sizeof(name), "%s_label", var);
	figure_var(g, name, "%s", quoted);
	snprintf(name, sizeof(name), "%s_x", var);
	figure_var(g, name, "%.4f", b->x0 / rp->w);
	snprintf(name, sizeof(name), "%s_y", var);
	figure_var(g, name, "%.4f", (b->y0 + b->y1) / 2 / rp->h);
	rp->fixed[rp->n_fixed++] = *b;
}

/*
 * The memory roof's label: along its slope, half way (in log) from where it enters the
 * panel to the ridge, just above it; its middle into bandwidth_x and bandwidth_y, the
 * slope on the page into angle, and its bounding box into rp->fixed.
 */
static void bandwidth_label(struct figure *g, struct roof_panel *rp, const char *text)
{
	double h = plot_line_in(g->c), half = plot_text_in(g->c, text) / 2;
	double angle, x_enter, at, x, y;
	char quoted[200];

	/* slope 1 on log-log: as steep on the page as an octave of y is tall against x's */
	angle = atan2(rp->h / log2(rp->y_range[1] / rp->y_range[0]),
		      rp->w / log2(rp->x_range[1] / rp->x_range[0]));
	x_enter = fmax(rp->x_range[0], rp->y_range[0] / rp->bandwidth);
	at = sqrt(x_enter * rp->ridge);
	x = axis_in(at, rp->x_range, rp->w) - 0.8 * h * sin(angle);
	y = axis_in(rp->bandwidth * at, rp->y_range, rp->h) + 0.8 * h * cos(angle);
	plot_gp_string(text, quoted, sizeof(quoted));
	figure_var(g, "bandwidth_label", "%s", quoted);
	figure_var(g, "bandwidth_x", "%.4f", x / rp->w);
	figure_var(g, "bandwidth_y", "%.4f", y / rp->h);
	figure_var(g, "angle", "%.2f", angle * 180 / M_PI);
	rp->fixed[rp->n_fixed++] = (struct box){
		x - half * cos(angle) - h / 2 * sin(angle), y - half * sin(angle) - h / 2 * cos(angle),
		x + half * cos(angle) + h / 2 * sin(angle), y + half * sin(angle) + h / 2 * cos(angle),
	};
}

/*
 * The roof's three labels, which the names keep clear of. They go above the roof where
 * they can, away from the points under it, else below it or higher up: the compute
 * roof's value at its right end or half way along it; the memory roof's along its slope;
 * the ridge's over the ridge point, or beside it.
 */
static void roof_labels(struct figure *g, struct roof_panel *rp, const struct roof_point *pts,
			int n)
{
	double h = plot_line_in(g->c), w, ridge = axis_in(rp->ridge, rp->x_range, rp->w);
	double up = axis_in(rp->peak, rp->y_range, rp->h) + 0.75 * h, down = up - 1.5 * h;
	char value[32], text[96];
	struct box boxes[6];

	rp->n_fixed = 0;
	rate_text(rp->bandwidth, value, sizeof(value));
	snprintf(text, sizeof(text), "triad %s GB/s", value);
	bandwidth_label(g, rp, text);

	rate_text(rp->peak, value, sizeof(value));
	if (rp->blas_core[0])
		snprintf(text, sizeof(text), "SGEMM %s GFLOP/s (OpenBLAS %s)", value,
			 rp->blas_core);
	else
		snprintf(text, sizeof(text), "SGEMM %s GFLOP/s", value);
	w = plot_text_in(g->c, text);
	boxes[0] = label_box(rp->w - 0.05 - w, up, w, h);
	boxes[1] = label_box(rp->w - 0.05 - w, down, w, h);
	boxes[2] = label_box((ridge + rp->w - w) / 2, up, w, h);
	boxes[3] = label_box((ridge + rp->w - w) / 2, down, w, h);
	boxes[4] = label_box(rp->w - 0.05 - w, up + h, w, h);
	boxes[5] = label_box((ridge + rp->w - w) / 2, up + h, w, h);
	roof_label(g, rp, pts, n, "peak", text, boxes, 6);

	rate_text(rp->ridge, value, sizeof(value));
	snprintf(text, sizeof(text), "ridge %s FLOP/byte", value);
	w = plot_text_in(g->c, text);
	boxes[0] = label_box(ridge - w / 2, up, w, h);
	boxes[1] = label_box(ridge - 0.08 - w, up, w, h);
	boxes[2] = label_box(ridge + 0.08, down, w, h);
	boxes[3] = label_box(ridge + 0.08, up, w, h);
	roof_label(g, rp, pts, n, "ridge", text, boxes, 4);
}

/*
 * A name that could not sit right beside its point gets a leader to it: from the edge of
 * the point's mark to the nearest spot of the name's box, section "leader" into the
 * placeholder leaders.
 */
static void leader(struct figure *g, const struct roof_panel *rp, const struct roof_point *p,
		   const struct box *b)
{
	double cx = fmin(fmax(p->x, b->x0), b->x1), cy = fmin(fmax(p->y, b->y0), b->y1);
	double dx = cx - p->x, dy = cy - p->y, dist = hypot(dx, dy), from = ROOF_MARK_IN + 0.01;

	if (dist < ROOF_MARK_IN + ROOF_GAP_IN + 0.03)
		return;
	figure_var(g, "x0", "%.4f", (p->x + dx / dist * from) / rp->w);
	figure_var(g, "y0", "%.4f", (p->y + dy / dist * from) / rp->h);
	figure_var(g, "x1", "%.4f", (cx - dx / dist * 0.01) / rp->w);
	figure_var(g, "y1", "%.4f", (cy - dy / dist * 0.01) / rp->h);
	figure_var_append(g, "leaders", "\n", "leader");
}

/*
 * Each variant's name beside its point, section "name" into the placeholder names, with
 * its leader when it sits apart.
 */
static void name_labels(struct figure *g, const struct roof_panel *rp,
			const struct roof_point *pts, int n)
{
	struct box placed[MAX_VARIANTS];
	char quoted[300];

	place_names(g->c, rp, pts, n, placed);
	figure_var(g, "names", "%s", "");
	figure_var(g, "leaders", "%s", "");
	for (int i = 0; i < n; i++) {
		plot_gp_string(pts[i].title, quoted, sizeof(quoted));
		figure_var(g, "text", "%s", quoted);
		figure_var(g, "x", "%.4f", placed[i].x0 / rp->w);
		figure_var(g, "y", "%.4f", (placed[i].y0 + placed[i].y1) / 2 / rp->h);
		figure_var_append(g, "names", "\n", "name");
		leader(g, rp, &pts[i], &placed[i]);
	}
}

int figure_roofline(struct plot_ctx *c, const char *pattern)
{
	struct roof_point pts[MAX_VARIANTS];
	const struct run_variant *blocks[MAX_VARIANTS];
	struct roof_panel rp = { 0 };
	double x_lo, x_hi, y_lo, y_hi;
	int shape[4], n, rc;
	char name[64];
	struct figure g;

	rc = machine_limits(c, &rp);
	if (rc <= 0)
		return rc;
	rc = plot_common_shape(c, "speed", pattern, NULL, shape);
	if (rc)
		return rc == -ENODATA ? 0 : rc;
	n = load_points(c, pattern, shape, pts);
	if (n <= 0)
		return n;
	rp.ridge = rp.peak / rp.bandwidth;
	x_lo = rp.ridge / ROOF_RIDGE_SPAN;
	x_hi = rp.ridge * ROOF_RIDGE_SPAN;
	/* room above the compute roof for the roof's labels */
	y_hi = rp.peak * 1.5;
	for (int i = 0; i < n; i++) {
		x_lo = fmin(x_lo, pts[i].intensity);
		x_hi = fmax(x_hi, pts[i].intensity);
		y_hi = fmax(y_hi, pts[i].gflops);
		blocks[i] = pts[i].v;
	}
	/* down to where the memory roof enters, so its slope shows */
	y_lo = rp.bandwidth * x_lo;
	for (int i = 0; i < n; i++)
		y_lo = fmin(y_lo, pts[i].gflops);
	snprintf(name, sizeof(name), "roofline-%s", pattern);
	rc = write_dat(c, name, pattern, shape, pts, n, &rp, x_lo / 4, x_hi * 4);
	if (rc)
		return rc;
	figure_init(&g, c, name, "roofline");
	g.panel_h = c->o->size == PLOT_COLUMN ? 2.6 : 3.4;
	rc = figure_begin(&g, "achieved GFLOP/s against arithmetic intensity, with the roofline",
			  1, 1);
	if (rc)
		return rc;
	figure_panel(&g, 0);
	rp.w = g.panel_w;
	rp.h = g.panel_h;
	plot_log_axis(&g, "xaxis", 'x', x_lo, x_hi, rp.w, TICK_PLAIN, rp.x_range);
	plot_log_axis(&g, "yaxis", 'y', y_lo, y_hi, rp.h, TICK_PLAIN, rp.y_range);
	figure_var(&g, "peak", "%.9g", rp.peak);
	figure_var(&g, "bandwidth", "%.9g", rp.bandwidth);
	figure_var(&g, "ridge", "%.9g", rp.ridge);
	figure_var(&g, "roof", "%d", n);
	for (int i = 0; i < n; i++) {
		pts[i].x = axis_in(pts[i].intensity, rp.x_range, rp.w);
		pts[i].y = axis_in(pts[i].gflops, rp.y_range, rp.h);
	}
	roof_labels(&g, &rp, pts, n);
	name_labels(&g, &rp, pts, n);
	figure_block_list(&g, "points", "point", blocks, NULL, n);
	figure_emit(&g, "body");
	return figure_end(&g);
}
