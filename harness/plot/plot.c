/*
 * plot.c - figures of a run: queries on the store, gnuplot data files and scripts written
 * side by side, then gnuplot run once per figure (fork/exec, status checked). The figures
 * are listed in plot.h.
 *
 * Layout. Every script draws a multiplot whose panels have margins fixed in screen
 * coordinates computed here, and draws its legend itself (line samples, points and labels
 * at fixed places in a band above the panels). So a legend never covers data, whatever
 * the number of variants; it has the same layout in PDF, PNG and SVG (gnuplot's own key
 * picks its columns from per-terminal font estimates); and the figure grows by the
 * legend's height instead of the plot shrinking. Text widths for that layout come from the
 * advance widths of DejaVu Sans, which "Sans" is on Debian (a viewer that substitutes
 * Helvetica or Arial in an SVG draws narrower text, never wider).
 *
 * Speed figures take one shape per pattern (the most common d, heads, kv_heads, batch), so
 * that lines compare like with like; cells that differ only in parameters are averaged
 * (latency, memory) or their samples pooled (speed-up).
 */
#include "plot.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stats.h"
#include "variant.h"

/* Okabe & Ito's colour-blind-safe palette, black last. */
static const char *const palette[] = {
	"#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
	"#000000",
};
#define PALETTE_SIZE (sizeof(palette) / sizeof(palette[0]))

/*
 * Filled and open point types in turn, so that a variant drawn over another with the same
 * values (two exact variants) still shows both marks.
 */
static const int point_types[] = { 7, 4, 9, 6, 13, 8, 5, 12 };
#define POINT_TYPES (sizeof(point_types) / sizeof(point_types[0]))

/* Line styles that are not variants: references (chance, 1x), fronts, CAB's marker. */
#define STYLE_REFERENCE 100
#define STYLE_FRONT 101
#define STYLE_MARK 102

#define MAX_VARIANTS 64
#define MAX_KEYS (MAX_VARIANTS + 8)
#define MAX_REGIMES 16

/*
 * Geometry, in inches, for FONT_PT text. A line of text takes LINE_IN; a legend row a
 * little more, for the point symbols. Margins leave room for tick labels and an axis
 * label: ML left of a panel (y tick labels of up to ~6 characters and the rotated label),
 * MB below the lowest panels, MR right of a panel (half of the last x tick label), MT
 * above a panel (half a tick label; a panel with a title needs TITLE_IN more).
 */
#define FONT_PT 8.0
#define WIDTH_PAGE_IN 7.0
#define WIDTH_COLUMN_IN 3.5
#define LINE_IN (1.2 * FONT_PT / 72)
#define KEY_ROW_IN (1.4 * FONT_PT / 72)
#define KEY_SAMPLE_IN 0.24	/* a line sample: long enough to show a dash pattern */
#define KEY_GAP_IN 0.05		/* between the sample and its text */
#define KEY_SEP_IN 0.14		/* between one entry's text and the next sample */
#define KEY_PAD_IN 0.05		/* above and below the legend */
#define ML_IN 0.62
#define MB_IN 0.44
#define MR_IN 0.16
#define MT_IN 0.08
#define TITLE_IN 0.16

/* Bootstrap resamples for the interval of a speed-up: 2000 puts the 2.5% and 97.5%
 * quantiles 50 resamples from the ends, steady to about 1% of the ratio. */
#define SPEEDUP_ITERS 2000

/* Advance widths of DejaVu Sans for ' ' .. '~', in thousandths of an em. */
static const short glyph_width[95] = {
	318, 401, 460, 838, 636, 950, 780, 275, 390, 390, 500, 838, 318, 361, 318, 337,
	636, 636, 636, 636, 636, 636, 636, 636, 636, 636, 337, 337, 838, 838, 838, 531,
	1000, 684, 686, 698, 770, 632, 575, 775, 752, 295, 295, 656, 557, 863, 748, 787,
	603, 787, 695, 635, 611, 732, 684, 989, 685, 611, 685, 390, 337, 390, 838, 500,
	500, 613, 635, 550, 635, 615, 352, 635, 634, 278, 278, 579, 278, 974, 634, 612,
	635, 635, 411, 521, 392, 634, 592, 818, 592, 592, 525, 636, 337, 636, 838,
};

struct run_variant {
	char name[64];
	int style;		/* line style number: registry index + 1 */
};

struct plot_ctx {
	sqlite3 *db;
	const struct plot_options *o;
	struct run_variant variants[MAX_VARIANTS];
	int n_variants;
	int figures;
	double width;		/* inches, from the size */
	const char *baseline;
	bool have_baseline;	/* the baseline has speed cells in the run */
	long pareto_length;	/* resolved: 0 when the run has no speed cells */
	double x_min, x_max;	/* first column of the blocks written since reset */
	double y_min, y_max;	/* their other columns (positive values) */
	char *why;
	size_t why_len;
};

static int fail(struct plot_ctx *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct plot_ctx *c, int err, const char *fmt, ...)
{
	va_list ap;

	if (c->why && c->why_len) {
		va_start(ap, fmt);
		vsnprintf(c->why, c->why_len, fmt, ap);
		va_end(ap);
	}
	return err;
}

/* Width of s in inches at FONT_PT; a character outside ASCII (UTF-8) counts one em. */
static double text_in(const char *s)
{
	double em = 0;

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch >= 32 && ch < 127)
			em += glyph_width[ch - 32];
		else if (ch < 0x80 || ch >= 0xc0)
			em += 1000;	/* a control or the lead byte of a UTF-8 character */
	}
	return em / 1000 * FONT_PT / 72;
}

int plot_parse_formats(const char *list, unsigned int *formats, char *bad, size_t bad_len)
{
	static const struct {
		const char *name;
		unsigned int bit;
	} names[] = {
		{ "pdf", PLOT_PDF }, { "png", PLOT_PNG }, { "svg", PLOT_SVG },
	};
	unsigned int bits = 0;
	const char *p = list;

	for (;;) {
		size_t len = strcspn(p, ",");
		unsigned int bit = 0;

		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (len == strlen(names[i].name) && !strncmp(p, names[i].name, len))
				bit = names[i].bit;
		if (!bit) {
			if (bad && bad_len)
				snprintf(bad, bad_len, "%.*s", (int)len, p);
			return -EINVAL;
		}
		bits |= bit;
		if (!p[len])
			break;
		p += len + 1;
	}
	*formats = bits;
	return 0;
}

int plot_parse_size(const char *word, enum plot_size *size)
{
	if (!strcmp(word, "page"))
		*size = PLOT_PAGE;
	else if (!strcmp(word, "column"))
		*size = PLOT_COLUMN;
	else
		return -EINVAL;
	return 0;
}

int plot_find_gnuplot(char *buf, size_t len)
{
	const char *path = getenv("PATH");

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t dir = strcspn(path, ":");
		int n;

		if (dir) {
			n = snprintf(buf, len, "%.*s/gnuplot", (int)dir, path);
			if (n > 0 && (size_t)n < len && !access(buf, X_OK))
				return 0;
		}
		path += dir + (path[dir] == ':');
	}
	return -ENOENT;
}

int plot_latest_run(struct store *s, int64_t *run_id)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(store_db(s), "SELECT max(id) FROM runs", -1, &st, NULL) !=
	    SQLITE_OK)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		*run_id = sqlite3_column_int64(st, 0);
		rc = 0;
	} else {
		rc = rc == SQLITE_ROW ? -ENOENT : -EIO;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Prepares sql and binds the run id to ?1; NULL on trouble (why is set). */
static sqlite3_stmt *prepare(struct plot_ctx *c, const char *sql)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
		fail(c, -EIO, "cannot read results: %s", sqlite3_errmsg(c->db));
		return NULL;
	}
	sqlite3_bind_int64(st, 1, c->o->run_id);
	return st;
}

/* The failure of a statement that stopped stepping early. */
static int read_failed(struct plot_ctx *c)
{
	return fail(c, -EIO, "cannot read results: %s", sqlite3_errmsg(c->db));
}

static int mkdir_p(const char *dir)
{
	char path[4096];
	size_t len = strlen(dir);

	if (len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, dir, len + 1);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0777) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(path, 0777) && errno != EEXIST)
		return -errno;
	return 0;
}

static FILE *open_out(struct plot_ctx *c, const char *name, const char *ext)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.%s", c->o->out_dir, name, ext);
	f = fopen(path, "w");
	if (!f)
		fail(c, -EIO, "cannot write '%s': %s", path, strerror(errno));
	return f;
}

static int close_out(struct plot_ctx *c, FILE *f, const char *name, const char *ext)
{
	bool bad = ferror(f);

	if (fclose(f) || bad)
		return fail(c, -EIO, "cannot write '%s/%s.%s'", c->o->out_dir, name, ext);
	return 0;
}

static void remove_out(struct plot_ctx *c, const char *name, const char *ext)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s.%s", c->o->out_dir, name, ext);
	unlink(path);
}

/* The variants of the run in registry order; unknown names after the known ones. */
static int load_variants(struct plot_ctx *c)
{
	sqlite3_stmt *st = prepare(c, "SELECT DISTINCT variant FROM results WHERE run_id = ?1");
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
		return read_failed(c);
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
static void variant_title(struct plot_ctx *c, const struct run_variant *v, const char *pattern,
			  char *buf, size_t len)
{
	sqlite3_stmt *st = prepare(c, "SELECT 1 FROM cells WHERE run_id = ?1 AND variant = ?2"
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

static int write_style(struct plot_ctx *c)
{
	FILE *f = open_out(c, "style", "gp");
	const char *sep = "";

	if (!f)
		return -EIO;
	fprintf(f,
		"# style.gp - shared by every figure of this directory (attnbench plot).\n"
		"# Edit and re-run 'gnuplot NAME.gp' here to restyle a figure.\n"
		"\n"
		"# formats written by each script; the width in inches (3.5 for one column of a\n"
		"# two-column paper, 7 for the full width: 'attnbench plot --size'); each script\n"
		"# sets its own height and places its panels and legend for this width\n"
		"formats = \"");
	if (c->o->formats & PLOT_PDF)
		fprintf(f, "%spdf", sep), sep = " ";
	if (c->o->formats & PLOT_PNG)
		fprintf(f, "%spng", sep), sep = " ";
	if (c->o->formats & PLOT_SVG)
		fprintf(f, "%ssvg", sep), sep = " ";
	fprintf(f,
		"\"\n"
		"width = %.1f\n"
		"font = \"Sans\"\n"
		"fontsize = %g\n"
		"dpi = 300\n"
		"\n"
		"# terminal(format, width in, height in): the 'set terminal' command to eval.\n"
		"# Cairo sizes text as if at 96 dpi and draws lw 1 half a point wide: these scales\n"
		"# make 8 pt text 8 pt in the PDF and the PNG the same picture at 'dpi'.\n"
		"term_pdf(w, h) = sprintf('set terminal pdfcairo enhanced color size %%gin,%%gin "
		"font \"%%s,%%g\" fontscale 0.75 linewidth 1', w, h, font, fontsize)\n"
		"term_png(w, h) = sprintf('set terminal pngcairo enhanced color size %%d,%%d "
		"font \"%%s,%%g\" fontscale %%g linewidth %%g pointscale %%g', int(w * dpi), "
		"int(h * dpi), font, fontsize, dpi / 96.0, dpi / 144.0, dpi / 72.0)\n"
		"term_svg(w, h) = sprintf('set terminal svg enhanced size %%d,%%d "
		"font \"%%s,%%g\" linewidth 0.5 background \"white\"', int(w * 72), "
		"int(h * 72), font, fontsize)\n"
		"terminal(fmt, w, h) = fmt eq \"pdf\" ? term_pdf(w, h) : "
		"fmt eq \"png\" ? term_png(w, h) : term_svg(w, h)\n"
		"\n"
		"set border 3 lw 1\n"
		"set tics nomirror out scale 0.6\n"
		"set grid lc rgb \"#dddddd\" lw 1 dt 1\n"
		"# legends are drawn by each script in a band of their own above the panels\n"
		"unset key\n"
		"set errorbars small\n"
		"set pointsize 0.8\n"
		"set style textbox opaque noborder\n"
		"# accuracy heatmaps: viridis (sequential, colour-blind-safe), 0..1\n"
		"set palette defined (0 \"#440154\", 0.25 \"#3B528B\", 0.5 \"#21908C\", "
		"0.75 \"#5DC863\", 1 \"#FDE725\")\n"
		"\n"
		"# one style per variant, numbered by its index in the registry + 1, so a variant\n"
		"# has the same colour, point type and dash in every figure (Okabe-Ito colours)\n",
		c->width, FONT_PT);
	for (int i = 0; i < c->n_variants; i++) {
		const struct run_variant *v = &c->variants[i];
		int k = v->style - 1;

		/* past eight variants colours repeat: shift the point type, dash the line */
		fprintf(f, "set style line %d lc rgb \"%s\" pt %d lw 1.5 dt %d\t# %s\n", v->style,
			palette[k % PALETTE_SIZE],
			point_types[(k + k / PALETTE_SIZE) % POINT_TYPES],
			1 + k / (int)PALETTE_SIZE, v->name);
	}
	fprintf(f,
		"set style line %d lc rgb \"#555555\" lw 1.5 dt 2\t# chance, 1x and other references\n"
		"set style line %d lc rgb \"#222222\" lw 1.5 dt 1\t# Pareto front\n"
		"set style line %d lc rgb \"#000000\" pt 12 ps 1.1 lw 1.5\t# CAB's fitted crossing\n",
		STYLE_REFERENCE, STYLE_FRONT, STYLE_MARK);
	return close_out(c, f, "style", "gp");
}

/* Runs `gnuplot NAME.gp` in the output directory and checks what it wrote. */
static int run_gnuplot(struct plot_ctx *c, const char *name)
{
	static const struct {
		unsigned int bit;
		const char *ext;
	} outputs[] = { { PLOT_PDF, "pdf" }, { PLOT_PNG, "png" }, { PLOT_SVG, "svg" } };
	char script[300], log[4096], line[200] = "";
	int status;
	pid_t pid;

	snprintf(script, sizeof(script), "%s.gp", name);
	snprintf(log, sizeof(log), "%s/%s.log", c->o->out_dir, name);
	pid = fork();
	if (pid < 0)
		return fail(c, -errno, "cannot start gnuplot: %s", strerror(errno));
	if (pid == 0) {
		int in = open("/dev/null", O_RDONLY);
		int err = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (in < 0 || err < 0 || chdir(c->o->out_dir))
			_exit(127);
		dup2(in, 0);
		dup2(err, 1);
		dup2(err, 2);
		execl(c->o->gnuplot, "gnuplot", script, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return fail(c, -errno, "lost gnuplot: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		FILE *f = fopen(log, "r");

		/* gnuplot's own message: the last non-empty line of its output */
		while (f && fgets(line + 100, 100, f))
			if (line[100 + strspn(line + 100, " \t\n^")])
				memcpy(line, line + 100, 100);
		if (f)
			fclose(f);
		line[strcspn(line, "\n")] = '\0';
		return fail(c, -EPROTO, "gnuplot failed on %s/%s (see %s.log)%s%s",
			    c->o->out_dir, script, name, *line ? ": " : "", line);
	}
	unlink(log);
	for (size_t i = 0; i < sizeof(outputs) / sizeof(outputs[0]); i++) {
		char path[4096];
		struct stat sb;

		if (!(c->o->formats & outputs[i].bit))
			continue;
		snprintf(path, sizeof(path), "%s/%s.%s", c->o->out_dir, name, outputs[i].ext);
		if (stat(path, &sb) || !sb.st_size)
			return fail(c, -EPROTO, "gnuplot wrote no '%s'", path);
	}
	c->figures++;
	return 0;
}

/* What a legend entry draws before its text. */
enum key_kind {
	KEY_LINEPOINT,	/* a line sample with the style's point on it */
	KEY_POINT,	/* the point alone */
	KEY_LINE,	/* the line alone: references, fronts */
	KEY_BAR,	/* a filled grey box: a bar */
	KEY_INTERVAL,	/* a horizontal error bar */
	KEY_HATCH,	/* a hatched box: "none" */
};

struct key {
	char title[96];
	int style;
	enum key_kind kind;
};

/*
 * One figure being written: its script, legend and panel grid. Panels are laid out in
 * inches: the legend band (key_h) on top, then rows of panels, each with mt above it and
 * vgap below it (mb below the last row), and ml, mr, hgap across.
 */
struct figure {
	struct plot_ctx *c;
	char name[64];
	FILE *f;
	struct key keys[MAX_KEYS];
	int n_keys;
	int key_cols, key_rows;
	double key_col_w[MAX_KEYS];
	double key_h, key_x0;
	int rows, cols;
	double height, panel_w, panel_h;
	double ml, mr, mt, mb, hgap, vgap;
};

static void figure_init(struct figure *g, struct plot_ctx *c, const char *name)
{
	memset(g, 0, sizeof(*g));
	g->c = c;
	snprintf(g->name, sizeof(g->name), "%s", name);
	g->ml = ML_IN;
	g->mr = MR_IN;
	g->mt = MT_IN;
	g->mb = MB_IN;
	g->hgap = 0.12;
	g->vgap = 0.3;
	g->rows = g->cols = 1;
	g->panel_h = c->o->size == PLOT_COLUMN ? 1.9 : 2.3;
}

static void figure_key(struct figure *g, const char *title, int style, enum key_kind kind)
{
	struct key *k;

	if (g->n_keys >= MAX_KEYS)
		return;
	k = &g->keys[g->n_keys++];
	snprintf(k->title, sizeof(k->title), "%s", title);
	k->style = style;
	k->kind = kind;
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
		w[k] = KEY_SAMPLE_IN + KEY_GAP_IN + text_in(g->keys[k].title) + KEY_SEP_IN;
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
	g->key_h = g->key_rows * KEY_ROW_IN + 2 * KEY_PAD_IN;
	g->key_x0 = (g->c->width - (total - KEY_SEP_IN)) / 2;
	if (g->key_x0 < KEY_PAD_IN)
		g->key_x0 = KEY_PAD_IN;
}

/*
 * Opens the script: the legend's layout, then the figure's height from its rows x cols
 * panels of panel_h (set before), and the loop over formats up to `set multiplot`. What
 * the figure writes next runs once per format (after a reset, so each format starts from
 * style.gp alone); lines inside the loop start with a tab.
 */
static int figure_begin(struct figure *g, const char *what, int rows, int cols)
{
	struct plot_ctx *c = g->c;

	g->rows = rows;
	g->cols = cols;
	layout_keys(g);
	g->panel_w = (c->width - g->ml - g->mr - (cols - 1) * g->hgap) / cols;
	g->height = g->key_h + rows * (g->mt + g->panel_h) + (rows - 1) * g->vgap + g->mb;
	g->f = open_out(c, g->name, "gp");
	if (!g->f)
		return -EIO;
	fprintf(g->f,
		"# %s.gp - %s, run %lld (attnbench plot).\n"
		"# Data: %s.dat, in blocks (index 0, 1, ...) described by its comments.\n"
		"# Shared style: style.gp. The panels' margins and the legend's places are\n"
		"# fractions of the figure, laid out for width %.1f in with %g pt text.\n"
		"load \"style.gp\"\n"
		"height = %.3f\t# inches\n"
		"do for [fmt in formats] {\n"
		"\treset\n"
		"\tload \"style.gp\"\n"
		"\teval terminal(fmt, width, height)\n"
		"\tset output \"%s.\" . fmt\n"
		"\tset multiplot\n",
		g->name, what, (long long)c->o->run_id, g->name, c->width, FONT_PT, g->height,
		g->name);
	return 0;
}

/* Screen fractions of panel i (row-major) as margins. */
static void figure_panel(struct figure *g, int i)
{
	struct plot_ctx *c = g->c;
	int r = i / g->cols, k = i % g->cols;
	double left = g->ml + k * (g->panel_w + g->hgap);
	double top = g->height - g->key_h - r * (g->mt + g->panel_h + g->vgap) - g->mt;

	fprintf(g->f,
		"\tset lmargin at screen %.4f\n"
		"\tset rmargin at screen %.4f\n"
		"\tset tmargin at screen %.4f\n"
		"\tset bmargin at screen %.4f\n",
		left / c->width, (left + g->panel_w) / c->width, top / g->height,
		(top - g->panel_h) / g->height);
}

/* Whether panel i has no panel under it (its x axis label goes there). */
static bool figure_lowest(const struct figure *g, int i, int n)
{
	return i + g->cols >= n;
}

/* The legend band, drawn last (labels, arrows and objects in screen coordinates). */
static void write_legend(struct figure *g)
{
	struct plot_ctx *c = g->c;
	FILE *f = g->f;
	double row_h = KEY_ROW_IN / g->height;

	fprintf(f,
		"\t# the legend, in a band of its own above the panels\n"
		"\tunset label\n\tunset arrow\n\tunset object\n"
		"\tunset border\n\tunset tics\n\tunset xlabel\n\tunset ylabel\n\tunset title\n"
		"\tunset grid\n\tunset colorbox\n\tunset logscale\n"
		"\tset lmargin at screen 0\n\tset rmargin at screen 1\n"
		"\tset tmargin at screen 1\n\tset bmargin at screen %.4f\n"
		"\tset xrange [0:1]\n\tset yrange [0:1]\n",
		1 - g->key_h / g->height);
	for (int k = 0; k < g->n_keys; k++) {
		const struct key *e = &g->keys[k];
		int r = k / g->key_cols, col = k % g->key_cols;
		double x = g->key_x0, y = 1 - (KEY_PAD_IN / g->height + (r + 0.5) * row_h);
		double x1, xm, bh = 0.3 * row_h;

		for (int j = 0; j < col; j++)
			x += g->key_col_w[j];
		x1 = (x + KEY_SAMPLE_IN) / c->width;
		xm = (x + KEY_SAMPLE_IN / 2) / c->width;
		x /= c->width;
		switch (e->kind) {
		case KEY_LINEPOINT:
		case KEY_LINE:
			fprintf(f, "\tset arrow %d from screen %.4f, screen %.4f to screen %.4f, "
				"screen %.4f nohead ls %d\n", k + 1, x, y, x1, y, e->style);
			if (e->kind == KEY_LINE)
				break;
			/* fall through */
		case KEY_POINT:
			fprintf(f, "\tset label %d \"\" at screen %.4f, screen %.4f point ls %d\n",
				500 + k, xm, y, e->style);
			break;
		case KEY_BAR:
			fprintf(f, "\tset object %d rect from screen %.4f, screen %.4f to screen "
				"%.4f, screen %.4f fc rgb \"#aaaaaa\" fs solid 1 noborder\n", k + 1,
				x, y - bh, x1, y + bh);
			break;
		case KEY_INTERVAL:
			fprintf(f, "\tset arrow %d from screen %.4f, screen %.4f to screen %.4f, "
				"screen %.4f heads size screen 0.006, 90 lc rgb \"#222222\" lw 1.5\n",
				k + 1, x, y, x1, y);
			break;
		case KEY_HATCH:
			fprintf(f, "\tset object %d rect from screen %.4f, screen %.4f to screen "
				"%.4f, screen %.4f fc rgb \"#555555\" fs transparent pattern 4 "
				"border lc rgb \"#555555\"\n", k + 1, x, y - bh, x1, y + bh);
			break;
		}
		fprintf(f, "\tset label %d \"%s\" at screen %.4f, screen %.4f left noenhanced\n",
			1000 + k, e->title, x + (KEY_SAMPLE_IN + KEY_GAP_IN) / c->width, y);
	}
	fprintf(f, "\tplot 2 notitle\n");
}

/* Draws the legend, closes the loop and the script, and runs gnuplot on it. */
static int figure_end(struct figure *g)
{
	int rc;

	if (g->n_keys)
		write_legend(g);
	fprintf(g->f, "\tunset multiplot\n\tunset output\n}\n");
	rc = close_out(g->c, g->f, g->name, "gp");
	g->f = NULL;
	return rc ? rc : run_gnuplot(g->c, g->name);
}

/* Legend entries for the variants of blocks[0..n), on a pattern. */
static void figure_variant_keys(struct figure *g, const struct run_variant *const *blocks,
				int n, const char *pattern, enum key_kind kind)
{
	char title[96];

	for (int k = 0; k < n; k++) {
		variant_title(g->c, blocks[k], pattern, title, sizeof(title));
		figure_key(g, title, blocks[k]->style, kind);
	}
}

/* The legend entry of the chance line: "chance (1/64)". */
static void figure_chance_key(struct figure *g, double chance)
{
	char title[64];
	double k = 1 / chance;

	if (fabs(k - round(k)) < 1e-6)
		snprintf(title, sizeof(title), "chance (1/%.0f)", k);
	else
		snprintf(title, sizeof(title), "chance (%.3g)", chance);
	figure_key(g, title, STYLE_REFERENCE, KEY_LINE);
}

/* Most common shape of the task's ok cells on a pattern: d, heads, kv_heads, batch. */
static int common_shape(struct plot_ctx *c, const char *task, const char *pattern,
			int shape[4])
{
	sqlite3_stmt *st = prepare(c,
		"SELECT d, heads, kv_heads, batch FROM results"
		" WHERE run_id = ?1 AND task = ?2 AND pattern = ?3 AND status = 'ok'"
		" GROUP BY 1, 2, 3, 4 ORDER BY count(*) DESC, d LIMIT 1");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 2, task, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, pattern, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		for (int i = 0; i < 4; i++)
			shape[i] = sqlite3_column_int(st, i);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENODATA : read_failed(c);
}

/*
 * Steps st (bound), writing each row as a line of numbers (NaN for NULL) under a block
 * header "# TITLE" and "# COLUMNS"; blocks after the first are preceded by two blank
 * lines, as gnuplot's `index` wants. Widens c->x_min..x_max by the first column and
 * c->y_min..y_max by the positive values of the others. Returns the number of rows, or
 * -EIO.
 */
static int write_block(struct plot_ctx *c, FILE *f, sqlite3_stmt *st, int block,
		       const char *title, const char *columns)
{
	int rows = 0, rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		double x = sqlite3_column_double(st, 0);

		if (!rows++)
			fprintf(f, "%s# %s\n# %s\n", block ? "\n\n" : "", title, columns);
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
	return rc == SQLITE_DONE ? rows : read_failed(c);
}

/*
 * One block per variant of the run: the rows of sql with ?1 the run, ?2 the pattern, ?3
 * the variant and ?4.. the ints in binds. blocks gets the variants that had rows. Returns
 * their number, or -errno.
 */
static int write_variant_blocks(struct plot_ctx *c, FILE *f, const char *sql,
				const char *pattern, const int *binds, int n_binds,
				const char *columns, const struct run_variant **blocks)
{
	sqlite3_stmt *st = prepare(c, sql);
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
		rows = write_block(c, f, st, n, title, columns);
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

/* What a log axis's tick labels show. */
enum tick_unit {
	TICK_PLAIN,	/* the number: 0.25, 1, 16384 */
	TICK_BYTES,	/* binary prefixes: 512 B, 128 KiB, 4 MiB */
};

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
 * A log axis (x or y) over the data range lo..hi on length_in inches: base 2, ticks at
 * powers of 2 labelled in C (every 2nd, 4th, ... power when the labels would crowd), the
 * range padded a little so no point sits on the border, and a factor of 2 each way for a
 * single value, which gnuplot cannot scale. A range inside one octave gets a linear axis.
 */
static void log_axis(FILE *f, char axis, double lo, double hi, double length_in,
		     enum tick_unit unit, double range[2])
{
	double pad = pow(hi / lo, 0.05), r0, r1, room;
	int e0, e1, step = 1, ticks;
	char label[32];

	if (!(lo > 0) || !(hi >= lo) || !isfinite(hi)) {
		fprintf(f, "\tset autoscale %c\n", axis);
		if (range)
			range[0] = range[1] = NAN;
		return;
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
		return;
	}
	e0 = (int)ceil(log2(r0) - 1e-9);
	e1 = (int)floor(log2(r1) + 1e-9);
	if (e1 - e0 < 1) {
		fprintf(f, "\tset %crange [%g:%g]\n\tset format %c \"%%g\"\n", axis, r0, r1, axis);
		return;
	}
	/* room per label: its text across an x axis, a line and a half up a y axis */
	tick_label(pow(2, e1), unit, label, sizeof(label));
	room = axis == 'x' ? text_in(label) + 0.18 : 1.5 * LINE_IN;
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
}

/* The mean of a per-cell metric over the task's ok cells on a pattern; NAN when none. */
static double mean_metric(struct plot_ctx *c, const char *task, const char *pattern,
			  const char *metric)
{
	sqlite3_stmt *st = prepare(c,
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

/*
 * The plot elements of blocks[0..n): 'NAME.dat' index K using COLS with WITH ls S, then
 * what follows the style (a point size, say).
 */
static void plot_blocks(FILE *f, const char *name, const struct run_variant *const *blocks,
			int n, const char *using, const char *with, const char *extra)
{
	for (int k = 0; k < n; k++)
		fprintf(f, "%s'%s%s' index %d using %s with %s ls %d%s%s notitle",
			k ? ", \\\n\t     " : "", k ? "" : name, k ? "" : ".dat", k, using, with,
			blocks[k]->style, *extra ? " " : "", extra);
}

static int figure_speed(struct plot_ctx *c, const char *pattern, bool memory)
{
	static const char latency_sql[] =
		"SELECT n, avg(latency_ms), avg(latency_lo_ms), avg(latency_hi_ms) FROM results"
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
	int shape[4], n, rc;
	double xmin, xmax, ymin, ymax;
	FILE *f;

	rc = common_shape(c, "speed", pattern, shape);
	if (rc)
		return rc == -ENODATA ? 0 : rc;
	snprintf(name, sizeof(name), "%s-%s", memory ? "memory" : "latency", pattern);
	f = open_out(c, name, "dat");
	if (!f)
		return -EIO;
	fprintf(f, "# %s, pattern %s, run %lld: d = %d, heads = %d, kv_heads = %d, batch = %d\n",
		memory ? "peak workspace" : "forward latency", pattern, (long long)c->o->run_id,
		shape[0], shape[1], shape[2], shape[3]);
	n = write_variant_blocks(c, f, memory ? memory_sql : latency_sql, pattern, shape, 4,
				 memory ? "N\tpeak_bytes" :
				 "N\tmedian_ms\tci_lo_ms\tci_hi_ms (95% interval of the median)",
				 blocks);
	rc = close_out(c, f, name, "dat");
	if (n < 0 || rc)
		return n < 0 ? n : rc;
	if (!n) {
		/* nothing measurable on this pattern: no figure */
		remove_out(c, name, "dat");
		return 0;
	}
	xmin = c->x_min;
	xmax = c->x_max;
	ymin = c->y_min;
	ymax = c->y_max;
	figure_init(&g, c, name);
	if (memory)
		g.ml = 0.8;	/* tick labels such as "512 KiB" */
	figure_variant_keys(&g, blocks, n, pattern, KEY_LINEPOINT);
	rc = figure_begin(&g, memory ? "peak workspace vs sequence length" :
			  "forward latency vs sequence length", 1, 1);
	if (rc)
		return rc;
	figure_panel(&g, 0);
	fprintf(g.f, "\tset xlabel \"sequence length N (tokens)\"\n"
		"\tset ylabel \"%s\"\n", memory ? "peak workspace (bytes)" : "median latency (ms)");
	log_axis(g.f, 'x', xmin, xmax, g.panel_w, TICK_PLAIN, NULL);
	log_axis(g.f, 'y', ymin, ymax, g.panel_h, memory ? TICK_BYTES : TICK_PLAIN, NULL);
	fprintf(g.f, "\tplot ");
	plot_blocks(g.f, name, blocks, n, memory ? "1:2" : "1:2:3:4",
		    memory ? "linespoints" : "yerrorlines", "");
	fprintf(g.f, "\n");
	return figure_end(&g);
}

/* Appends the stored latency samples (seconds) that st yields to *x. 0 or -errno. */
static int load_samples(struct plot_ctx *c, sqlite3_stmt *st, double **x, size_t *n,
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
				return fail(c, -ENOMEM, "out of memory reading samples");
			}
			*x = p;
			*cap = grow;
		}
		(*x)[(*n)++] = sqlite3_column_double(st, 0);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : read_failed(c);
}

/*
 * Speed-up over the baseline vs N: median(baseline samples) / median(variant samples) at
 * each length both have, with stats_median_ratio()'s percentile bootstrap interval
 * (seeded, so the same database gives the same figure).
 */
static int figure_speedup(struct plot_ctx *c, const char *pattern)
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
	char name[64], label[160];
	struct figure g;
	FILE *f = NULL;

	if (!c->have_baseline)
		return 0;
	rc = common_shape(c, "speed", pattern, shape);
	if (rc)
		return rc == -ENODATA ? 0 : rc;
	lengths = prepare(c, lengths_sql);
	samples = prepare(c, samples_sql);
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
		rc = read_failed(c);
		goto out;
	}
	rc = 0;
	if (!n_len)
		goto out;
	sqlite3_bind_text(samples, 2, pattern, -1, SQLITE_STATIC);
	for (int k = 0; k < 4; k++)
		sqlite3_bind_int(samples, 5 + k, shape[k]);
	snprintf(name, sizeof(name), "speedup-%s", pattern);
	f = open_out(c, name, "dat");
	if (!f) {
		rc = -EIO;
		goto out;
	}
	fprintf(f, "# speed-up over %s, pattern %s, run %lld: d = %d, heads = %d, kv_heads = %d,"
		" batch = %d\n# speedup = median(baseline samples) / median(variant samples);"
		" lo, hi: 95%% percentile bootstrap\n# interval (%d resamples of both samples,"
		" seeded by N)\n", c->baseline, pattern, (long long)c->o->run_id, shape[0],
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
			rc = load_samples(c, samples, &var, &n_var, &cap_var);
			if (rc)
				goto out;
			if (!n_var)
				continue;
			sqlite3_bind_text(samples, 3, c->baseline, -1, SQLITE_STATIC);
			rc = load_samples(c, samples, &base, &n_base, &cap_base);
			if (rc)
				goto out;
			if (!n_base)
				continue;
			/* a = variant, b = baseline: r.ratio = median(b) / median(a) */
			if (stats_median_ratio(var, n_var, base, n_base, SPEEDUP_ITERS,
					       (uint64_t)len[j], &r) ||
			    stats_summarise(base, n_base, &sb) || stats_summarise(var, n_var, &sv)) {
				rc = fail(c, -ENOMEM, "out of memory in the bootstrap");
				goto out;
			}
			if (!rows++)
				fprintf(f, "%s# variant %s\n# N\tspeedup\tlo\thi\tbaseline_ms\t"
					"variant_ms\tbaseline_samples\tvariant_samples\n",
					n ? "\n\n" : "", v->name);
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
	rc = close_out(c, f, name, "dat");
	f = NULL;
	if (rc)
		goto out;
	if (!n) {
		remove_out(c, name, "dat");
		goto out;
	}
	figure_init(&g, c, name);
	figure_variant_keys(&g, blocks, n, pattern, KEY_LINEPOINT);
	figure_key(&g, "no change (1\303\227)", STYLE_REFERENCE, KEY_LINE);
	rc = figure_begin(&g, "speed-up over the baseline vs sequence length", 1, 1);
	if (rc)
		goto out;
	figure_panel(&g, 0);
	fprintf(g.f, "\tset xlabel \"sequence length N (tokens)\"\n");
	log_axis(g.f, 'x', xmin, xmax, g.panel_w, TICK_PLAIN, NULL);
	log_axis(g.f, 'y', ymin, ymax, g.panel_h, TICK_PLAIN, NULL);
	snprintf(label, sizeof(label), "speed-up over %s (\303\227)", c->baseline);
	fprintf(g.f,
		"\tset ylabel \"%s\" noenhanced\n"
		"\tplot 1 with lines ls %d notitle, \\\n\t     ",
		label, STYLE_REFERENCE);
	plot_blocks(g.f, name, blocks, n, "1:2:3:4", "yerrorlines", "");
	fprintf(g.f, "\n");
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
	EFF_SLOPE, EFF_COUNT,
};

static const char *const eff_names[EFF_COUNT] = {
	"efficiency_length_time", "efficiency_length_time_lo", "efficiency_length_time_hi",
	"cab_efficiency_length_time",
	"efficiency_length_memory", "efficiency_length_memory_lo",
	"efficiency_length_memory_hi", "cab_efficiency_length_memory",
	"loglog_slope_time",
};

struct eff_row {
	const struct run_variant *v;
	double val[EFF_COUNT];
	unsigned int have;	/* bit k: a row named eff_names[k] exists */
	unsigned int null;	/* bit k: and its value is NULL ("none") */
};

/* A value of the .dat: the number, or NaN when missing or NULL. */
static void put_value(FILE *f, const struct eff_row *r, int k)
{
	if ((r->have >> k & 1) && !(r->null >> k & 1) && isfinite(r->val[k]))
		fprintf(f, "\t%.9g", r->val[k]);
	else
		fputs("\tNaN", f);
}

/*
 * Efficiency lengths against the baseline, from run_metrics: horizontal bars (a row per
 * variant) in a time panel and a memory panel; the measured crossing as the bar with its
 * interval, CAB's fitted crossing as a mark; a value stored as NULL (no crossing in the
 * measured range) as a hatched bar over that range, labelled "none". At the page size a
 * third panel shows the fitted log-log slope of latency.
 */
static int figure_efficiency(struct plot_ctx *c, const char *pattern)
{
	static const char rows_sql[] =
		"SELECT variant, name, value FROM run_metrics WHERE run_id = ?1 AND pattern = ?2"
		" AND baseline = ?3";
	static const char range_sql[] =
		"SELECT min(n), max(n) FROM results WHERE run_id = ?1 AND task = 'speed'"
		" AND pattern = ?2 AND status = 'ok'";
	const char *baseline = c->baseline;
	struct eff_row rows[MAX_VARIANTS] = { 0 };
	double lo = INFINITY, hi = 0, rlo = 0, rhi = 0, ml = 0, slope_max = 2.4, range[2];
	bool slope = false, bars = false;
	int n = 0, rc, panels;
	char name[64], title[96];
	struct figure g;
	sqlite3_stmt *st;
	FILE *f;

	st = prepare(c, rows_sql);
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
		return read_failed(c);
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
		for (int k = 0; k < EFF_COUNT; k++) {
			double v = rows[i].val[k];

			if (k == EFF_SLOPE || !(rows[i].have >> k & 1) || rows[i].null >> k & 1 ||
			    !(v > 0) || !isfinite(v))
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
	st = prepare(c, range_sql);
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

	snprintf(name, sizeof(name), "efficiency-%s", pattern);
	f = open_out(c, name, "dat");
	if (!f)
		return -EIO;
	fprintf(f, "# efficiency length against %s, pattern %s, run %lld, from run_metrics:\n"
		"# the length N from which a variant is cheaper than the baseline, measured\n"
		"# (crossing of the medians, with its interval) and by CAB's fit; NaN = not\n"
		"# stored; none = 1: stored as NULL, no crossing in the measured range %g..%g\n",
		baseline, pattern, (long long)c->o->run_id, rlo, rhi);
	for (int i = 0; i < n; i++) {
		const struct eff_row *r = &rows[i];

		fprintf(f, "%s# variant %s\n# row\ttime\ttime_lo\ttime_hi\tcab_time\ttime_none\t"
			"memory\tmemory_lo\tmemory_hi\tcab_memory\tmemory_none\tloglog_slope_time\n"
			"%d", i ? "\n\n" : "", r->v->name, n - 1 - i);
		for (int k = EFF_TIME; k <= EFF_TIME_CAB; k++)
			put_value(f, r, k);
		fprintf(f, "\t%d", (r->null >> EFF_TIME & 1) && (r->have >> EFF_TIME & 1));
		for (int k = EFF_MEM; k <= EFF_MEM_CAB; k++)
			put_value(f, r, k);
		fprintf(f, "\t%d", (r->null >> EFF_MEM & 1) && (r->have >> EFF_MEM & 1));
		put_value(f, r, EFF_SLOPE);
		fputc('\n', f);
		variant_title(c, r->v, pattern, title, sizeof(title));
		if (text_in(title) > ml)
			ml = text_in(title);
	}
	rc = close_out(c, f, name, "dat");
	if (rc)
		return rc;

	figure_init(&g, c, name);
	figure_key(&g, "efficiency length (measured)", 0, KEY_BAR);
	figure_key(&g, "95% interval", 0, KEY_INTERVAL);
	figure_key(&g, "CAB's fit", STYLE_MARK, KEY_POINT);
	figure_key(&g, "none: no crossing in range", 0, KEY_HATCH);
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
	fprintf(g.f, "\tset yrange [-0.6:%d.6]\n\tset ytics scale 0\n\tset grid noytics xtics\n"
		"\tset errorbars 1.5\n", n - 1);
	for (int p = 0; p < panels; p++) {
		int col = p == 0 ? 2 : 7;	/* first column of the panel's measure */

		figure_panel(&g, p);
		if (p == 0) {
			fprintf(g.f, "\tset ytics (");
			for (int i = 0; i < n; i++) {
				variant_title(c, rows[i].v, pattern, title, sizeof(title));
				fprintf(g.f, "%s\"%s\" %d", i ? ", " : "", title, n - 1 - i);
			}
			fprintf(g.f, ") noenhanced\n");
		} else {
			fprintf(g.f, "\tset ytics 1\n\tset format y \"\"\n");
		}
		if (p == 2) {
			fprintf(g.f,
				"\tunset object\n"
				"\tunset label\n"
				"\tunset logscale x\n"
				"\tset xrange [0:%g]\n"
				"\tset xtics 0, 1\n"
				"\tset format x \"%%g\"\n"
				"\tset title \"scaling of latency\" offset 0, -0.4\n"
				"\tset xlabel \"log-log slope (1 = linear)\"\n"
				"\tset arrow 1 from 1, graph 0 to 1, graph 1 nohead ls %d\n"
				"\tset arrow 2 from 2, graph 0 to 2, graph 1 nohead ls %d\n"
				"\tplot ", slope_max, STYLE_REFERENCE, STYLE_REFERENCE);
			for (int i = 0; i < n; i++)
				fprintf(g.f, "%s'%s.dat' index %d using 12:1 with points ls %d "
					"ps 1.2 notitle", i ? ", \\\n\t     " : "", name, i,
					rows[i].v->style);
			fprintf(g.f, "\n\tunset arrow\n");
			continue;
		}
		log_axis(g.f, 'x', lo, hi, g.panel_w, TICK_PLAIN, range);
		fprintf(g.f,
			"\tset title \"%s\" offset 0, -0.4\n"
			"\tset xlabel \"length N (tokens)\"\n",
			p == 0 ? "time (latency)" : "memory (workspace)");
		/* "none": a hatched box over the measured range, labelled */
		fprintf(g.f, "\tunset object\n\tunset label\n");
		for (int i = 0; i < n; i++) {
			int k = p == 0 ? EFF_TIME : EFF_MEM;

			if (!(rows[i].have >> k & 1) || !(rows[i].null >> k & 1))
				continue;
			fprintf(g.f,
				"\tset object %d rect from %g, %g to %g, %g fc rgb \"#555555\" "
				"fs transparent pattern 4 border lc rgb \"#555555\"\n"
				"\tset label %d \"none\" at %g, %d center front boxed\n",
				i + 1, rlo, n - 1 - i - 0.32, rhi, n - 1 - i + 0.32, i + 1,
				sqrt(rlo * rhi), n - 1 - i);
		}
		fprintf(g.f, "\tplot ");
		for (int i = 0; i < n; i++)
			fprintf(g.f, "%s'%s.dat' index %d using (%g):1:(%g):%d:($1-0.32):($1+0.32) "
				"with boxxyerror fs solid 0.85 noborder ls %d notitle",
				i ? ", \\\n\t     " : "", name, i, range[0], range[0], col,
				rows[i].v->style);
		fprintf(g.f,
			", \\\n\t     for [k=0:%d] '%s.dat' index k using %d:1:%d:%d with xerrorbars "
			"lc rgb \"#222222\" lw 1.5 pt 0 ps 0 notitle, \\\n"
			"\t     for [k=0:%d] '' index k using %d:1 with points ls %d notitle\n",
			n - 1, name, col, col + 1, col + 2, n - 1, col + 3, STYLE_MARK);
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
static int figure_pareto(struct plot_ctx *c, const char *pattern)
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
	char name[64], ylabel[128];
	struct figure g;
	FILE *f;

	if (!c->pareto_length)
		return 0;
	rc = common_shape(c, "speed", pattern, shape);
	if (rc)
		return rc == -ENODATA ? 0 : rc;
	/* recall when the pattern has it, else passkey at its largest length */
	if (isnan(mean_metric(c, "recall", pattern, "accuracy"))) {
		st = prepare(c, "SELECT max(m) FROM results WHERE run_id = ?1 AND task = 'passkey'"
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
	lat = prepare(c, latency_sql);
	acc = prepare(c, passkey_m ? passkey_sql : recall_sql);
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
	f = open_out(c, name, "dat");
	if (!f) {
		rc = -EIO;
		goto out;
	}
	if (passkey_m)
		snprintf(ylabel, sizeof(ylabel), "passkey accuracy at M = %d (fraction)",
			 passkey_m);
	else
		snprintf(ylabel, sizeof(ylabel), "mean recall accuracy (fraction)");
	fprintf(f, "# accuracy vs latency, pattern %s, run %lld: median latency at N = %ld"
		" (speed, d = %d, heads = %d,\n# kv_heads = %d, batch = %d); %s\n",
		pattern, (long long)c->o->run_id, c->pareto_length, shape[0], shape[1], shape[2],
		shape[3], passkey_m ? "passkey accuracy at the largest length, mean over depths" :
		"recall accuracy, mean over all recall cells (every P, d and gap)");
	for (int i = 0; i < n; i++)
		fprintf(f, "%s# variant %s\n# latency_ms\taccuracy\n%.9g\t%.9g\n", i ? "\n\n" : "",
			pts[i].v->name, pts[i].latency, pts[i].accuracy);
	fprintf(f, "\n\n# Pareto front (no other variant is as fast and more accurate)\n"
		"# latency_ms\taccuracy\tvariant\n");
	for (int i = 0; i < n; i++) {
		const struct point *p = &pts[order[i]];

		if (p->accuracy <= best)
			continue;
		best = p->accuracy;
		fprintf(f, "%.9g\t%.9g\t%s\n", p->latency, p->accuracy, p->v->name);
	}
	rc = close_out(c, f, name, "dat");
	if (rc)
		goto out;
	figure_init(&g, c, name);
	figure_variant_keys(&g, blocks, n, pattern, KEY_POINT);
	figure_key(&g, "Pareto front", STYLE_FRONT, KEY_LINE);
	rc = figure_begin(&g, "accuracy against latency, with the Pareto front", 1, 1);
	if (rc)
		goto out;
	figure_panel(&g, 0);
	log_axis(g.f, 'x', xmin, xmax, g.panel_w, TICK_PLAIN, NULL);
	fprintf(g.f,
		"\tset xlabel \"median latency at N = %ld (ms)\"\n"
		"\tset ylabel \"%s\"\n"
		"\tset yrange [-0.04:1.06]\n"
		"\tset ytics 0, 0.25, 1\n"
		"\tplot '%s.dat' index %d using 1:2 with steps ls %d notitle, \\\n\t     ",
		c->pareto_length, ylabel, name, n, STYLE_FRONT);
	plot_blocks(g.f, name, blocks, n, "1:2", "points", "ps 1.3");
	fprintf(g.f, "\n");
	rc = figure_end(&g);
out:
	sqlite3_finalize(lat);
	sqlite3_finalize(acc);
	return rc;
}

/*
 * Fidelity: relative Frobenius error of O against exact attention vs length (M, the keys
 * each query sees; = N on self patterns), log-log, a panel per input regime with a shared
 * y axis. An error of exactly 0 cannot be drawn on a log axis; the .dat says how many.
 */
static int figure_fidelity(struct plot_ctx *c, const char *pattern, bool self)
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
	char regimes[MAX_REGIMES][32], name[64], title[96];
	int index[MAX_REGIMES][MAX_VARIANTS], n_regimes = 0, blocks = 0, rc, zeros = 0;
	bool used[MAX_VARIANTS] = { false };
	double ymin = 0, ymax = 0, xmin = 0, xmax = 0;
	int lo_exp, hi_exp, step;
	sqlite3_stmt *st;
	struct figure g;
	FILE *f;

	st = prepare(c, regimes_sql);
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 2, pattern, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n_regimes < MAX_REGIMES)
		snprintf(regimes[n_regimes++], sizeof(regimes[0]), "%s",
			 (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return read_failed(c);
	if (!n_regimes)
		return 0;
	st = prepare(c, range_sql);
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
	f = open_out(c, name, "dat");
	if (!f)
		return -EIO;
	fprintf(f, "# fidelity against exact attention, pattern %s, run %lld: a block per"
		" regime and variant,\n# averaged over cells that differ only in shape or"
		" parameters; %d cells with an error of\n# exactly 0 are left out (log axis)\n",
		pattern, (long long)c->o->run_id, zeros);
	st = prepare(c, rows_sql);
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
			snprintf(title, sizeof(title), "regime %s, variant %s", regimes[r],
				 c->variants[i].name);
			rows = write_block(c, f, st, blocks, title,
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
	rc = close_out(c, f, name, "dat");
	if (rc)
		return rc;

	figure_init(&g, c, name);
	for (int i = 0; i < c->n_variants; i++)
		if (used[i]) {
			variant_title(c, &c->variants[i], pattern, title, sizeof(title));
			figure_key(&g, title, c->variants[i].style, KEY_LINEPOINT);
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
	log_axis(g.f, 'x', xmin, xmax, g.panel_w, TICK_PLAIN, NULL);
	/* whole decades around the data, with a little room so no point sits on the border */
	fprintf(g.f,
		"\tset logscale y 10\n"
		"\tset yrange [%g:%g]\n"
		"\tset ytics 1e%d, 1e%d\n",
		pow(10, lo_exp) / 1.5, pow(10, hi_exp) * 1.5, lo_exp, step);
	for (int r = 0; r < n_regimes; r++) {
		bool first = true;

		figure_panel(&g, r);
		fprintf(g.f, "\tset title \"%s\" noenhanced offset 0, -0.4\n", regimes[r]);
		if (r % g.cols == 0)
			fprintf(g.f, "\tset format y \"10^{%%L}\"\n"
				"\tset ylabel \"relative Frobenius error\"\n");
		else
			fprintf(g.f, "\tset format y \"\"\n\tunset ylabel\n");
		if (figure_lowest(&g, r, n_regimes))
			fprintf(g.f, "\tset xlabel \"%s\"\n", self ? "sequence length N (tokens)" :
				"keys M (tokens)");
		else
			fprintf(g.f, "\tunset xlabel\n");
		fprintf(g.f, "\tplot ");
		for (int i = 0; i < c->n_variants; i++) {
			if (index[r][i] < 0)
				continue;
			fprintf(g.f, "%s'%s.dat' index %d using 1:2 with linespoints ls %d notitle",
				first ? "" : ", \\\n\t     ", name, index[r][i], c->variants[i].style);
			first = false;
		}
		fprintf(g.f, "\n");
	}
	return figure_end(&g);
}

/*
 * Recall accuracy vs pairs: long range (gap > 0: pairs first, filler, queries last) or
 * packed (gap = 0: queries right after the pairs), apart, since filler dilutes a fixed
 * state in a way the pair count alone does not.
 */
static int figure_recall(struct plot_ctx *c, const char *pattern, bool packed)
{
	static const char long_sql[] =
		"SELECT pairs, avg(accuracy) FROM results"
		" WHERE run_id = ?1 AND task = 'recall' AND pattern = ?2 AND variant = ?3"
		" AND d = ?4 AND status = 'ok' AND accuracy IS NOT NULL AND pairs > 0"
		" AND gap > 0 GROUP BY pairs ORDER BY pairs";
	static const char packed_sql[] =
		"SELECT pairs, avg(accuracy) FROM results"
		" WHERE run_id = ?1 AND task = 'recall' AND pattern = ?2 AND variant = ?3"
		" AND d = ?4 AND status = 'ok' AND accuracy IS NOT NULL AND pairs > 0"
		" AND gap = 0 GROUP BY pairs ORDER BY pairs";
	const struct run_variant *blocks[MAX_VARIANTS];
	int shape[4] = { 0 }, n, rc;
	double chance, xmin, xmax;
	char name[64];
	struct figure g;
	sqlite3_stmt *st;
	FILE *f;

	/* d = 64 when the run has it, else the most common d */
	rc = common_shape(c, "recall", pattern, shape);
	if (rc)
		return rc == -ENODATA ? 0 : rc;
	st = prepare(c, "SELECT 1 FROM results WHERE run_id = ?1 AND task = 'recall'"
		     " AND pattern = ?2 AND d = 64 AND status = 'ok' LIMIT 1");
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 2, pattern, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		shape[0] = 64;
	sqlite3_finalize(st);
	chance = mean_metric(c, "recall", pattern, "chance");
	snprintf(name, sizeof(name), "recall-%s%s", packed ? "packed-" : "", pattern);
	f = open_out(c, name, "dat");
	if (!f)
		return -EIO;
	fprintf(f, "# recall accuracy, pattern %s, run %lld, head dimension d = %d, %s"
		" (averaged over lengths)\n", pattern, (long long)c->o->run_id, shape[0],
		packed ? "packed (gap 0)" : "long range (gap > 0)");
	n = write_variant_blocks(c, f, packed ? packed_sql : long_sql, pattern, shape, 1,
				 "pairs\taccuracy", blocks);
	rc = close_out(c, f, name, "dat");
	if (n < 0 || rc)
		return n < 0 ? n : rc;
	if (!n) {
		remove_out(c, name, "dat");
		return 0;
	}
	xmin = c->x_min;
	xmax = c->x_max;
	figure_init(&g, c, name);
	figure_variant_keys(&g, blocks, n, pattern, KEY_LINEPOINT);
	if (chance > 0)
		figure_chance_key(&g, chance);
	rc = figure_begin(&g, packed ? "associative recall accuracy vs number of pairs, "
			  "queries right after the pairs" : "associative recall accuracy vs "
			  "number of pairs, queries far from the pairs", 1, 1);
	if (rc)
		return rc;
	figure_panel(&g, 0);
	log_axis(g.f, 'x', xmin, xmax, g.panel_w, TICK_PLAIN, NULL);
	fprintf(g.f,
		"\tset xlabel \"key-value pairs P (d = %d)\"\n"
		"\tset ylabel \"recall accuracy (fraction)\"\n"
		"\tset yrange [-0.04:1.06]\n"
		"\tset ytics 0, 0.25, 1\n"
		"\tplot ",
		shape[0]);
	plot_blocks(g.f, name, blocks, n, "1:2", "linespoints", "");
	if (chance > 0)
		fprintf(g.f, ", \\\n\t     %.9g with lines ls %d notitle", chance,
			STYLE_REFERENCE);
	fprintf(g.f, "\n");
	return figure_end(&g);
}

/*
 * Recall vs state: a point per variant and head dimension d, x the variant's analytic
 * state at that d (the largest over the cells: packed cells grow N with P), y the mean
 * accuracy over the pair counts of the sweep; long range and packed apart, as recall-P.
 */
static int figure_recall_state(struct plot_ctx *c, const char *pattern, bool packed)
{
	static const char long_sql[] =
		"SELECT max(state_bytes), avg(accuracy), d, count(*) FROM results"
		" WHERE run_id = ?1 AND task = 'recall' AND pattern = ?2 AND variant = ?3"
		" AND status = 'ok' AND accuracy IS NOT NULL AND state_bytes > 0 AND pairs > 0"
		" AND gap > 0 GROUP BY d ORDER BY 1";
	static const char packed_sql[] =
		"SELECT max(state_bytes), avg(accuracy), d, count(*) FROM results"
		" WHERE run_id = ?1 AND task = 'recall' AND pattern = ?2 AND variant = ?3"
		" AND status = 'ok' AND accuracy IS NOT NULL AND state_bytes > 0 AND pairs > 0"
		" AND gap = 0 GROUP BY d ORDER BY 1";
	const struct run_variant *blocks[MAX_VARIANTS];
	int n, rc, p_lo = 0, p_hi = 0;
	char name[64], pairs[32];
	double chance, xmin, xmax;
	struct figure g;
	sqlite3_stmt *st;
	FILE *f;

	st = prepare(c, packed ?
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
	chance = mean_metric(c, "recall", pattern, "chance");
	if (p_lo == p_hi)
		snprintf(pairs, sizeof(pairs), "%d", p_lo);
	else
		snprintf(pairs, sizeof(pairs), "%d..%d", p_lo, p_hi);
	snprintf(name, sizeof(name), "recall-state-%s%s", packed ? "packed-" : "", pattern);
	f = open_out(c, name, "dat");
	if (!f)
		return -EIO;
	fprintf(f, "# recall accuracy vs analytic state size, pattern %s, run %lld, %s:\n"
		"# a row per head dimension d; accuracy averaged over the cells (P = %s)\n",
		pattern, (long long)c->o->run_id, packed ? "packed (gap 0)" :
		"long range (gap > 0)", pairs);
	n = write_variant_blocks(c, f, packed ? packed_sql : long_sql, pattern, NULL, 0,
				 "state_bytes\taccuracy\td\tcells", blocks);
	rc = close_out(c, f, name, "dat");
	if (n < 0 || rc)
		return n < 0 ? n : rc;
	if (!n) {
		remove_out(c, name, "dat");
		return 0;
	}
	xmin = c->x_min;
	xmax = c->x_max;
	figure_init(&g, c, name);
	figure_variant_keys(&g, blocks, n, pattern, KEY_LINEPOINT);
	if (chance > 0)
		figure_chance_key(&g, chance);
	g.mt = MT_IN + TITLE_IN;
	rc = figure_begin(&g, packed ? "recall accuracy vs analytic state size, queries right "
			  "after the pairs" : "recall accuracy vs analytic state size, queries far "
			  "from the pairs", 1, 1);
	if (rc)
		return rc;
	figure_panel(&g, 0);
	log_axis(g.f, 'x', xmin, xmax, g.panel_w, TICK_BYTES, NULL);
	fprintf(g.f,
		"\tset title \"a point per head dimension d, mean over P = %s\" "
		"offset 0, -0.4\n"
		"\tset xlabel \"analytic state size (bytes)\"\n"
		"\tset ylabel \"mean recall accuracy (fraction)\"\n"
		"\tset yrange [-0.04:1.06]\n"
		"\tset ytics 0, 0.25, 1\n"
		"\tplot ",
		pairs);
	plot_blocks(g.f, name, blocks, n, "1:2", "linespoints", "");
	if (chance > 0)
		fprintf(g.f, ", \\\n\t     %.9g with lines ls %d notitle", chance,
			STYLE_REFERENCE);
	fprintf(g.f, "\n");
	return figure_end(&g);
}

/* Distinct values of a column of the task's ok cells on a pattern, ascending. */
static int distinct_values(struct plot_ctx *c, const char *column, const char *pattern,
			   double *out, int max)
{
	char sql[256];
	sqlite3_stmt *st;
	int n = 0;

	snprintf(sql, sizeof(sql),
		 "SELECT DISTINCT %s FROM results WHERE run_id = ?1 AND task = 'passkey'"
		 " AND pattern = ?2 AND status = 'ok' AND accuracy IS NOT NULL"
		 " AND %s IS NOT NULL ORDER BY 1", column, column);
	st = prepare(c, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 2, pattern, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW && n < max)
		out[n++] = sqlite3_column_double(st, 0);
	sqlite3_finalize(st);
	return n;
}

/*
 * Passkey heatmaps: a panel per variant in a grid (5 across a page, 3 across a column),
 * length up, needle depth across, one colour scale for all.
 */
static int figure_passkey(struct plot_ctx *c, const char *pattern, bool self)
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
	char name[64], title[96];
	struct figure g;
	FILE *f;

	n_depths = distinct_values(c, "depth", pattern, depths, 64);
	n_lengths = distinct_values(c, "m", pattern, lengths, 64);
	if (n_depths < 0 || n_lengths < 0)
		return -EIO;
	if (!n_depths || !n_lengths)
		return 0;
	snprintf(name, sizeof(name), "passkey-%s", pattern);
	f = open_out(c, name, "dat");
	if (!f)
		return -EIO;
	fprintf(f, "# passkey accuracy, pattern %s, run %lld (cells: depth_index, length_index)\n",
		pattern, (long long)c->o->run_id);
	n = write_variant_blocks(c, f, sql, pattern, NULL, 0,
				 "depth_index\tlength_index\taccuracy\tdepth\tkeys_M", blocks);
	rc = close_out(c, f, name, "dat");
	if (n < 0 || rc)
		return n < 0 ? n : rc;
	if (!n) {
		remove_out(c, name, "dat");
		return 0;
	}
	figure_init(&g, c, name);
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
	fprintf(g.f,
		"\tset cbrange [0:1]\n"
		"\tset xrange [-0.5:%d.5]\n"
		"\tset yrange [-0.5:%d.5]\n"
		"\tset grid noxtics noytics\n"
		"\tset border 15 lw 0.5\n"
		"\tset tics scale 0 front\n"
		"\tset cbtics 0, 0.25, 1 scale 0.5\n"
		"\tset format cb \"%%g\"\n"
		"\tset cblabel \"accuracy (fraction)\" offset 0.5, 0\n"
		"\tset colorbox user origin screen %.4f, screen %.4f size screen %.4f, "
		"screen %.4f\n"
		"\tset label 1 \"%s\" at screen %.4f, screen %.4f rotate by 90 center\n"
		"\tset label 2 \"needle depth (0 = first token, 1 = last)\" at screen %.4f, "
		"screen %.4f center\n"
		"\tset xtics (",
		n_depths - 1, n_lengths - 1, (c->width - g.mr + 0.1) / c->width,
		g.mb / g.height, 0.1 / c->width, region_h / g.height,
		self ? "length N (tokens)" : "keys M (tokens)", 0.1 / c->width,
		(g.mb + region_h / 2) / g.height, (g.ml + (c->width - g.ml - g.mr) / 2) / c->width,
		0.1 / g.height);
	for (int i = 0, first = 1; i < n_depths; i++) {
		/* label the ends and the middle when more would crowd a small panel */
		if (n_depths > 5 && i && i != n_depths - 1 && i != (n_depths - 1) / 2)
			continue;
		fprintf(g.f, "%s\"%g\" %d", first ? "" : ", ", depths[i], i);
		first = 0;
	}
	fprintf(g.f, ")\n\tlength_tics = 'set ytics (");
	for (int i = 0; i < n_lengths; i++)
		fprintf(g.f, "%s\"%.0f\" %d", i ? ", " : "", lengths[i], i);
	fprintf(g.f, ")'\n");
	for (int k = 0; k < n; k++) {
		figure_panel(&g, k);
		variant_title(c, blocks[k], pattern, title, sizeof(title));
		fprintf(g.f, "\tset title \"%s\" noenhanced offset 0, -0.4\n", title);
		fprintf(g.f, "\t%s\n", k % cols ? "unset ytics" : "eval length_tics");
		if (k == 1) {
			fprintf(g.f, "\tunset colorbox\n\tunset label 1\n\tunset label 2\n");
		}
		fprintf(g.f,
			"\tplot '%s.dat' index %d using 1:2:(0.5):(0.5):3 "
			"with boxxyerror fs solid 1.0 noborder lc palette notitle\n", name, k);
	}
	return figure_end(&g);
}

/* Whether the run exists, and whether it has anything to plot. */
static int check_run(struct plot_ctx *c)
{
	sqlite3_stmt *st = prepare(c, "SELECT 1 FROM runs WHERE id = ?1");
	int rc;

	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return fail(c, -ENOENT, "no run %lld in the database",
			    (long long)c->o->run_id);
	st = prepare(c, "SELECT count(*) FROM results WHERE run_id = ?1 AND status = 'ok'"
		     " AND ((task = 'speed' AND (latency_ms > 0 OR peak_bytes > 0))"
		     " OR (task = 'fidelity' AND rel_err > 0)"
		     " OR (task IN ('passkey', 'recall') AND accuracy IS NOT NULL))");
	if (!st)
		return -EIO;
	rc = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_finalize(st);
	if (rc < 0)
		return read_failed(c);
	if (!rc)
		return fail(c, -ENODATA, "run %lld has no successful speed, fidelity, passkey or "
			    "recall cells to plot", (long long)c->o->run_id);
	return 0;
}

/* The speed lengths of the run, "256, 1024", for messages. */
static void speed_lengths(struct plot_ctx *c, char *buf, size_t len)
{
	sqlite3_stmt *st = prepare(c, "SELECT group_concat(n, ', ') FROM (SELECT DISTINCT n"
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
static int resolve_choices(struct plot_ctx *c)
{
	sqlite3_stmt *st;
	char lengths[256];
	int rc;

	c->baseline = c->o->baseline ? c->o->baseline : PLOT_DEFAULT_BASELINE;
	st = prepare(c, "SELECT 1 FROM results WHERE run_id = ?1 AND task = 'speed'"
		     " AND variant = ?2 AND status = 'ok' AND latency_ms > 0 LIMIT 1");
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 2, c->baseline, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return read_failed(c);
	c->have_baseline = rc == SQLITE_ROW;
	if (c->o->baseline && !c->have_baseline)
		return fail(c, -EINVAL, "baseline '%s' has no successful speed cells in run %lld",
			    c->baseline, (long long)c->o->run_id);

	st = prepare(c, c->o->pareto_length ?
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
		return read_failed(c);
	if (c->o->pareto_length && !c->pareto_length) {
		speed_lengths(c, lengths, sizeof(lengths));
		return fail(c, -EINVAL, "no speed cells at N = %ld in run %lld for the Pareto "
			    "front (speed lengths: %s)", c->o->pareto_length,
			    (long long)c->o->run_id, lengths);
	}
	return 0;
}

int plot_run(struct store *s, const struct plot_options *o, int *figures, char *why,
	     size_t why_len)
{
	struct plot_options opts = *o;
	struct plot_ctx c = { .db = store_db(s), .o = &opts, .why = why, .why_len = why_len };
	int rc;

	if (!opts.formats)
		opts.formats = PLOT_ALL_FORMATS;
	c.width = opts.size == PLOT_COLUMN ? WIDTH_COLUMN_IN : WIDTH_PAGE_IN;
	*figures = 0;
	rc = check_run(&c);
	if (!rc)
		rc = load_variants(&c);
	if (!rc)
		rc = resolve_choices(&c);
	if (rc)
		return rc;
	rc = mkdir_p(opts.out_dir);
	if (rc)
		return fail(&c, rc, "cannot create '%s': %s", opts.out_dir, strerror(-rc));
	rc = write_style(&c);
	for (int p = 0; !rc && p < ATTN_PATTERN_COUNT; p++) {
		const char *pattern = pattern_name(p);
		bool self = pattern_is_self(p);

		rc = figure_speed(&c, pattern, false);
		if (!rc)
			rc = figure_speed(&c, pattern, true);
		if (!rc)
			rc = figure_speedup(&c, pattern);
		if (!rc)
			rc = figure_efficiency(&c, pattern);
		if (!rc)
			rc = figure_pareto(&c, pattern);
		if (!rc)
			rc = figure_fidelity(&c, pattern, self);
		if (!rc)
			rc = figure_passkey(&c, pattern, self);
		for (int packed = 0; packed < 2 && !rc; packed++) {
			rc = figure_recall(&c, pattern, packed);
			if (!rc)
				rc = figure_recall_state(&c, pattern, packed);
		}
	}
	*figures = c.figures;
	return rc;
}
