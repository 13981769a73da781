/*
 * layout.c - where things go on a figure: text widths, the legend's grid in its band above
 * the panels, the figure's height and its panels' margins, and the range and ticks of a
 * log axis. All in inches, for the font size of style.gp.
 *
 * Every script draws a multiplot whose panels have margins fixed in screen coordinates
 * computed here, and draws its legend itself (line samples, points and labels at fixed
 * places in a band above the panels). So a legend never covers data, whatever the number
 * of variants; it has the same layout in PDF, PNG and SVG (gnuplot's own key picks its
 * columns from per-terminal font estimates); and the figure grows by the legend's height
 * instead of the plot shrinking. Text widths come from the advance widths of DejaVu Sans,
 * which "Sans" is on Debian (a viewer that substitutes Helvetica or Arial in an SVG draws
 * narrower text, never wider).
 */
#include "plot-internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Geometry, in inches, for text of c->font_pt points. A line of text takes 1.2 times the
 * font size; a legend row 1.4 times, for the point symbols. Margins leave room for tick
 * labels and an axis label: ML left of a panel (y tick labels of up to ~6 characters and
 * the rotated label), MB below the lowest panels, MR right of a panel (half of the last x
 * tick label); MT_IN and TITLE_IN above a panel are in plot-internal.h.
 */
#define KEY_SAMPLE_IN 0.24	/* a line sample: long enough to show a dash pattern */
#define KEY_GAP_IN 0.05		/* between the sample and its text */
#define KEY_SEP_IN 0.14		/* between one entry's text and the next sample */
#define KEY_PAD_IN 0.05		/* above and below the legend */
#define ML_IN 0.62
#define MB_IN 0.44
#define MR_IN 0.16

/* Advance widths of DejaVu Sans for ' ' .. '~', in thousandths of an em. */
static const short glyph_width[95] = {
	318, 401, 460, 838, 636, 950, 780, 275, 390, 390, 500, 838, 318, 361, 318, 337,
	636, 636, 636, 636, 636, 636, 636, 636, 636, 636, 337, 337, 838, 838, 838, 531,
	1000, 684, 686, 698, 770, 632, 575, 775, 752, 295, 295, 656, 557, 863, 748, 787,
	603, 787, 695, 635, 611, 732, 684, 989, 685, 611, 685, 390, 337, 390, 838, 500,
	500, 613, 635, 550, 635, 615, 352, 635, 634, 278, 278, 579, 278, 974, 634, 612,
	635, 635, 411, 521, 392, 634, 592, 818, 592, 592, 525, 636, 337, 636, 838,
};

/* Width of s in inches at the style's font size; a character outside ASCII counts one em. */
double plot_text_in(const struct plot_ctx *c, const char *s)
{
	double em = 0;

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch >= 32 && ch < 127)
			em += glyph_width[ch - 32];
		else if (ch < 0x80 || ch >= 0xc0)
			em += 1000;	/* a control or the lead byte of a UTF-8 character */
	}
	return em / 1000 * c->font_pt / 72;
}

/* The height of a line of text, in inches. */
double plot_line_in(const struct plot_ctx *c)
{
	return 1.2 * c->font_pt / 72;
}

static double key_row_in(const struct plot_ctx *c)
{
	return 1.4 * c->font_pt / 72;
}

void figure_init(struct figure *g, struct plot_ctx *c, const char *name, const char *kind)
{
	memset(g, 0, sizeof(*g));
	g->c = c;
	snprintf(g->name, sizeof(g->name), "%s", name);
	snprintf(g->kind, sizeof(g->kind), "%s", kind);
	g->ml = ML_IN;
	g->mr = MR_IN;
	g->mt = MT_IN;
	g->mb = MB_IN;
	g->hgap = 0.12;
	g->vgap = 0.3;
	g->rows = g->cols = 1;
	g->panel_h = c->o->size == PLOT_COLUMN ? 1.9 : 2.3;
}

void figure_key(struct figure *g, const char *title, const char *ls, enum key_kind kind)
{
	struct key *k;

	if (g->n_keys >= MAX_KEYS)
		return;
	k = &g->keys[g->n_keys++];
	snprintf(k->title, sizeof(k->title), "%s", title);
	snprintf(k->ls, sizeof(k->ls), "%s", ls);
	k->kind = kind;
}

/* Legend entries for the variants of blocks[0..n), on a pattern. */
void figure_variant_keys(struct figure *g, const struct run_variant *const *blocks, int n,
			 const char *pattern, enum key_kind kind)
{
	char title[96], ls[16];

	for (int k = 0; k < n; k++) {
		plot_variant_title(g->c, blocks[k], pattern, title, sizeof(title));
		snprintf(ls, sizeof(ls), "%d", blocks[k]->style);
		figure_key(g, title, ls, kind);
	}
}

/* The legend entry of the chance line: "chance (1/64)". */
void figure_chance_key(struct figure *g, double chance)
{
	char title[64];
	double k = 1 / chance;

	if (fabs(k - round(k)) < 1e-6)
		snprintf(title, sizeof(title), "chance (1/%.0f)", k);
	else
		snprintf(title, sizeof(title), "chance (%.3g)", chance);
	figure_key(g, title, STYLE_REFERENCE, KEY_LINE);
}

/*
 * The legend's grid: entries row by row, as many columns as fit the width with each
 * column as wide as its widest entry, then as few columns as give the same number of rows
 * (so a short last row does not leave a ragged gap).
 */
static void layout_keys(struct figure *g)
{
	double avail = g->c->width - 2 * KEY_PAD_IN, w[MAX_KEYS], total = 0;
	int n = g->n_keys;

	g->key_h = 0;
	if (!n)
		return;
	for (int k = 0; k < n; k++)
		w[k] = KEY_SAMPLE_IN + KEY_GAP_IN + plot_text_in(g->c, g->keys[k].title) +
		       KEY_SEP_IN;
	for (int cols = n; cols >= 1; cols--) {
		int rows = (n + cols - 1) / cols, used = (n + rows - 1) / rows;

		total = 0;
		for (int j = 0; j < used; j++) {
			g->key_col_w[j] = 0;
			for (int k = j; k < n; k += used)
				if (w[k] > g->key_col_w[j])
					g->key_col_w[j] = w[k];
			total += g->key_col_w[j];
		}
		g->key_cols = used;
		g->key_rows = rows;
		if (total - KEY_SEP_IN <= avail)
			break;
	}
	g->key_h = g->key_rows * key_row_in(g->c) + 2 * KEY_PAD_IN;
	g->key_x0 = (g->c->width - (total - KEY_SEP_IN)) / 2;
	if (g->key_x0 < KEY_PAD_IN)
		g->key_x0 = KEY_PAD_IN;
}

/*
 * The legend's layout, then the figure's height from its rows x cols panels of panel_h
 * (set before) and the panels' width.
 */
void figure_layout(struct figure *g, int rows, int cols)
{
	struct plot_ctx *c = g->c;

	g->rows = rows;
	g->cols = cols;
	layout_keys(g);
	g->panel_w = (c->width - g->ml - g->mr - (cols - 1) * g->hgap) / cols;
	g->height = g->key_h + rows * (g->mt + g->panel_h) + (rows - 1) * g->vgap + g->mb;
}

/* Screen fractions of panel i (row-major): left, right, top, bottom. */
void figure_panel_frac(const struct figure *g, int i, double frac[4])
{
	const struct plot_ctx *c = g->c;
	int r = i / g->cols, k = i % g->cols;
	double left = g->ml + k * (g->panel_w + g->hgap);
	double top = g->height - g->key_h - r * (g->mt + g->panel_h + g->vgap) - g->mt;

	frac[0] = left / c->width;
	frac[1] = (left + g->panel_w) / c->width;
	frac[2] = top / g->height;
	frac[3] = (top - g->panel_h) / g->height;
}

/* Whether panel i has no panel under it (its x axis label goes there). */
bool figure_lowest(const struct figure *g, int i, int n)
{
	return i + g->cols >= n;
}

/*
 * Places of legend entry k, as screen fractions: x, the sample's end x1 and middle xm, the
 * text's x xt, the row's y and a box's y0..y1 around it.
 */
void figure_key_place(const struct figure *g, int k, double place[7])
{
	const struct plot_ctx *c = g->c;
	double row_h = key_row_in(c) / g->height;
	int r = k / g->key_cols, col = k % g->key_cols;
	double x = g->key_x0, y = 1 - (KEY_PAD_IN / g->height + (r + 0.5) * row_h);
	double bh = 0.3 * row_h;

	for (int j = 0; j < col; j++)
		x += g->key_col_w[j];
	place[0] = x / c->width;
	place[1] = (x + KEY_SAMPLE_IN) / c->width;
	place[2] = (x + KEY_SAMPLE_IN / 2) / c->width;
	place[3] = place[0] + (KEY_SAMPLE_IN + KEY_GAP_IN) / c->width;
	place[4] = y;
	place[5] = y - bh;
	place[6] = y + bh;
}

static void tick_label(double v, enum tick_unit unit, char *buf, size_t len)
{
	static const char *const prefixes[] = { "", "Ki", "Mi", "Gi", "Ti" };
	int p = 0;

	if (unit == TICK_PLAIN) {
		snprintf(buf, len, v >= 1 ? "%.0f" : "%g", v);
		return;
	}
	while (v >= 1024 && p < 4) {
		v /= 1024;
		p++;
	}
	snprintf(buf, len, "%g %sB", v, prefixes[p]);
}

/*
 * A log axis (x or y) over the data range lo..hi on length_in inches, as the gnuplot
 * commands of the placeholder var: base 2, ticks at powers of 2 labelled here (every 2nd,
 * 4th, ... power when the labels would crowd), the range padded a little so no point sits
 * on the border, and a factor of 2 each way for a single value, which gnuplot cannot
 * scale. A range inside one octave gets a linear axis.
 */
void plot_log_axis(struct figure *g, const char *var, char axis, double lo, double hi,
		   double length_in, enum tick_unit unit, double range[2])
{
	double pad = pow(hi / lo, 0.05), r0, r1, room;
	char label[32], *text = NULL;
	int e0, e1, step = 1, ticks;
	size_t text_len = 0;
	FILE *f = open_memstream(&text, &text_len);

	if (!f) {
		g->err = g->err ? g->err : why_fail(-ENOMEM, g->c->why, g->c->why_len,
						    "out of memory writing '%s.gp'", g->name);
		return;
	}
	if (!(lo > 0) || !(hi >= lo) || !isfinite(hi)) {
		fprintf(f, "\tset autoscale %c\n", axis);
		if (range)
			range[0] = range[1] = NAN;
		goto out;
	}
	if (pad < 1.08)
		pad = 1.08;
	r0 = lo == hi ? lo / 2 : lo / pad;
	r1 = lo == hi ? hi * 2 : hi * pad;
	if (range) {
		range[0] = r0;
		range[1] = r1;
	}
	if (lo == hi) {
		tick_label(lo, unit, label, sizeof(label));
		fprintf(f, "\tset logscale %c 2\n\tset %crange [%g:%g]\n\tset %ctics (\"%s\" %g)\n",
			axis, axis, r0, r1, axis, label, lo);
		goto out;
	}
	e0 = (int)ceil(log2(r0) - 1e-9);
	e1 = (int)floor(log2(r1) + 1e-9);
	if (e1 - e0 < 1) {
		fprintf(f, "\tset %crange [%g:%g]\n\tset format %c \"%%g\"\n", axis, r0, r1, axis);
		goto out;
	}
	/* room per label: its text across an x axis, a line and a half up a y axis */
	tick_label(pow(2, e1), unit, label, sizeof(label));
	room = axis == 'x' ? plot_text_in(g->c, label) + 0.18 : 1.5 * plot_line_in(g->c);
	do {
		ticks = (e1 - e0) / step + 1;
	} while (ticks * room > length_in && (step *= 2) < 64);
	fprintf(f, "\tset logscale %c 2\n\tset %crange [%g:%g]\n\tset %ctics (", axis, axis, r0,
		r1, axis);
	for (int e = e0; e <= e1; e += step) {
		tick_label(pow(2, e), unit, label, sizeof(label));
		fprintf(f, "%s\"%s\" %g", e == e0 ? "" : ", ", label, pow(2, e));
	}
	fprintf(f, ")\n");
out:
	fclose(f);
	/* the placeholder stands on a line of its own: no final newline */
	if (text_len && text[text_len - 1] == '\n')
		text[text_len - 1] = '\0';
	figure_var(g, var, "%s", text ? text : "");
	free(text);
}
