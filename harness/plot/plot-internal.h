/*
 * plot-internal.h - what the files of harness/plot/ share, and nothing else sees.
 *
 *   plot.c              plot_run(): the order of the figures; option parsing
 *   data.c              queries on the store: the run's variants, blocks of .dat files,
 *                       samples, means, distinct values, the checks before plotting
 *   layout.c            text widths, the legend's grid, panel geometry, log axes
 *   template.c          the plots/ folder: finding it, reading style.gp and the figure
 *                       templates, filling their {{placeholders}} into NAME.gp
 *   gnuplot.c           files written beside the figures, style.gp of the run, finding
 *                       and running gnuplot (fork/exec) and checking what it wrote
 *   figures-speed.c     latency, memory, speed-up, efficiency, Pareto
 *   figures-accuracy.c  fidelity, passkey, recall, recall-state
 *   figures-roofline.c  roofline: achieved rate against intensity, the machine's roofs
 *
 * A new figure: a function in the figures file of its family (or a new figures-*.c),
 * called from plot_run(), and its template plots/KIND.gp, listed in plots/meson.build.
 * The function queries the data, writes NAME.dat, lays out its legend and panels, and
 * names the sections of its template in the order the script needs them, with the
 * numbers they use (figure_var(), figure_emit()).
 */
#ifndef ATTNBENCH_PLOT_INTERNAL_H
#define ATTNBENCH_PLOT_INTERNAL_H

#include <stdbool.h>
#include <stdio.h>

#include "plot.h"
#include "why.h"

#define MAX_VARIANTS 64
#define MAX_KEYS (MAX_VARIANTS + 8)
#define MAX_REGIMES 16
#define MAX_VARS 48		/* placeholders set on one figure at a time */
#define MAX_SECTIONS 64		/* sections of one template */

/* Figure widths in inches, from enum plot_size. */
#define WIDTH_PAGE_IN 7.0
#define WIDTH_COLUMN_IN 3.5
/* Room above a panel, in inches: half a tick label; a panel with a title needs TITLE_IN more. */
#define MT_IN 0.08
#define TITLE_IN 0.16

/*
 * Line styles of style.gp that are not variants, by the names style.gp gives their
 * numbers: references (chance, 1x), Pareto fronts, CAB's fitted crossing, the arrows of
 * efficiency lengths below the measured range.
 */
#define STYLE_REFERENCE "ls_reference"
#define STYLE_FRONT "ls_front"
#define STYLE_MARK "ls_mark"
#define STYLE_BELOW "ls_below"

struct run_variant {
	char name[65];		/* import and merge take names of up to 64 bytes */
	int style;		/* line style number: registry index + 1 */
};

/* One template: its text split into sections ("#@ NAME" lines start each). */
struct template {
	char path[4096];
	char *text;
	int n;
	struct section {
		const char *name;
		size_t name_len;
		const char *body;
		size_t len;
	} sec[MAX_SECTIONS];
};

/* The staging folder's path, and a file's in it or in the output folder (a name is short). */
enum { STAGE_LEN = 4096, FILE_PATH_LEN = STAGE_LEN + 256 };

struct plot_ctx {
	sqlite3 *db;
	const struct plot_options *o;
	struct run_variant variants[MAX_VARIANTS];
	int n_variants;
	int figures;
	double width;		/* inches, from the size */
	double font_pt;		/* `fontsize = N` of style.gp: the text the layout measures */
	char plots_dir[4096];	/* where style.gp and the templates are */
	char stage[STAGE_LEN];	/* OUT/.plot-XXXXXX: every file is written here first */
	bool keep_stage;	/* gnuplot failed: its script, data and log stay there */
	char *style_text;	/* plots/style.gp */
	struct template frame;	/* plots/figure.gp: the sections every figure shares */
	const char *baseline;
	bool have_baseline;	/* the baseline has speed cells in the run */
	long pareto_length;	/* resolved: 0 when the run has no speed cells */
	double x_min, x_max;	/* first column of the blocks written since reset */
	double y_min, y_max;	/* their other columns (positive values) */
	char *why;
	size_t why_len;
};

/* What a legend entry draws before its text: sections key-line, key-point, ... */
enum key_kind {
	KEY_LINEPOINT,	/* a line sample with the style's point on it */
	KEY_POINT,	/* the point alone */
	KEY_LINE,	/* the line alone: references, fronts */
	KEY_BAR,	/* a filled box: a bar */
	KEY_INTERVAL,	/* a horizontal error bar */
	KEY_HATCH,	/* a hatched box: "none" */
	KEY_ARROW,	/* an arrow to the left: "below range" */
};

struct key {
	char title[96];
	char ls[32];		/* the line style: a number or a name of style.gp */
	enum key_kind kind;
};

struct figure_var {
	char name[32];
	char *value;
};

/*
 * One figure being written: its script, template, legend and panel grid. Panels are laid
 * out in inches: the legend band (key_h) on top, then rows of panels, each with mt above
 * it and vgap below it (mb below the last row), and ml, mr, hgap across.
 */
struct figure {
	struct plot_ctx *c;
	char name[64];
	char kind[32];		/* the template: plots/KIND.gp */
	FILE *f;
	struct template tpl;
	struct figure_var vars[MAX_VARS];
	int n_vars;
	int err;		/* the first failure while writing the script */
	struct key keys[MAX_KEYS];
	int n_keys;
	int key_cols, key_rows;
	double key_col_w[MAX_KEYS];
	double key_h, key_x0;
	int rows, cols;
	double height, panel_w, panel_h;
	double ml, mr, mt, mb, hgap, vgap;
};

/* What a log axis's tick labels show. */
enum tick_unit {
	TICK_PLAIN,	/* the number: 0.25, 1, 16384 */
	TICK_BYTES,	/* binary prefixes: 512 B, 128 KiB, 4 MiB */
};

/* data.c */
sqlite3_stmt *plot_prepare(struct plot_ctx *c, const char *sql);
int plot_read_failed(struct plot_ctx *c);
int plot_check_run(struct plot_ctx *c);
int plot_load_variants(struct plot_ctx *c);
int plot_resolve_choices(struct plot_ctx *c);
void plot_variant_title(struct plot_ctx *c, const struct run_variant *v, const char *pattern,
			char *buf, size_t len);
/*
 * The shape a figure of task on pattern takes (store_common_shape(): d, heads, kv_heads,
 * batch), among those with_variant ran at when not NULL; 0, -ENODATA, -EIO.
 */
int plot_common_shape(struct plot_ctx *c, const char *task, const char *pattern,
		      const char *with_variant, int shape[4]);
int plot_write_block(struct plot_ctx *c, FILE *f, sqlite3_stmt *st, int block,
		     const char *title, const char *columns);
int plot_write_variant_blocks(struct plot_ctx *c, FILE *f, const char *sql,
			      const char *pattern, const int *binds, int n_binds,
			      const char *columns, const struct run_variant **blocks);
double plot_mean_metric(struct plot_ctx *c, const char *task, const char *pattern,
			const char *metric);
int plot_load_samples(struct plot_ctx *c, sqlite3_stmt *st, double **x, size_t *n,
		      size_t *cap);
int plot_distinct_values(struct plot_ctx *c, const char *column, const char *pattern,
			 double *out, int max);

/* layout.c */
double plot_text_in(const struct plot_ctx *c, const char *s);
double plot_line_in(const struct plot_ctx *c);
void figure_init(struct figure *g, struct plot_ctx *c, const char *name, const char *kind);
void figure_key(struct figure *g, const char *title, const char *ls, enum key_kind kind);
void figure_variant_keys(struct figure *g, const struct run_variant *const *blocks, int n,
			 const char *pattern, enum key_kind kind);
void figure_chance_key(struct figure *g, double chance);
void figure_layout(struct figure *g, int rows, int cols);
void figure_panel_frac(const struct figure *g, int i, double frac[4]);
bool figure_lowest(const struct figure *g, int i, int n);
void figure_key_place(const struct figure *g, int k, double place[7]);
void plot_log_axis(struct figure *g, const char *var, char axis, double lo, double hi,
		   double length_in, enum tick_unit unit, double range[2]);

/* template.c */
int plot_find_templates(struct plot_ctx *c);
int plot_template_read(struct plot_ctx *c, const char *kind, struct template *t);
void plot_template_release(struct template *t);
void plot_gp_string(const char *s, char *buf, size_t len);
void plot_comment_text(const char *s, char *buf, size_t len);
void plot_data_word(const char *s, char *buf, size_t len);
void figure_var(struct figure *g, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void figure_var_string(struct figure *g, const char *name, const char *s);
void figure_var_append(struct figure *g, const char *name, const char *sep,
		       const char *section);
void figure_emit(struct figure *g, const char *section);
void figure_vars_release(struct figure *g);

/* gnuplot.c */
int plot_mkdir_p(const char *dir);
int plot_stage_begin(struct plot_ctx *c);
int plot_stage_commit(struct plot_ctx *c);
void plot_stage_abort(struct plot_ctx *c);
FILE *plot_open_out(struct plot_ctx *c, const char *name, const char *ext);
int plot_close_out(struct plot_ctx *c, FILE *f, const char *name, const char *ext);
void plot_remove_out(struct plot_ctx *c, const char *name, const char *ext);
/*
 * Closes NAME.dat, which holds n blocks (or -errno: writing them failed), and removes it
 * when n is 0, as there is no figure to draw from it. Returns n, or -errno: n itself when
 * negative, else -EIO when the file could not be written.
 */
int plot_close_dat(struct plot_ctx *c, FILE *f, const char *name, int n);
int plot_write_style(struct plot_ctx *c);
int figure_begin(struct figure *g, const char *what, int rows, int cols);
/*
 * figure_begin() for a figure of one panel, which it places (figure_panel()), with a log
 * x axis over the data range x_lo..x_hi in the placeholder xaxis (plot_log_axis()).
 * Returns 0 or -errno, as figure_begin().
 */
int figure_begin_one_panel(struct figure *g, const char *what, double x_lo, double x_hi,
			   enum tick_unit x_unit);
void figure_panel(struct figure *g, int i);
void figure_block_list(struct figure *g, const char *var, const char *section,
		       const struct run_variant *const *blocks, const int *index, int n);
int figure_end(struct figure *g);

/* figures-speed.c */
int figure_speed(struct plot_ctx *c, const char *pattern, bool memory);
int figure_speedup(struct plot_ctx *c, const char *pattern);
int figure_efficiency(struct plot_ctx *c, const char *pattern);
int figure_pareto(struct plot_ctx *c, const char *pattern);

/* figures-roofline.c */
int figure_roofline(struct plot_ctx *c, const char *pattern);

/* figures-accuracy.c */
int figure_fidelity(struct plot_ctx *c, const char *pattern, bool self);
int figure_passkey(struct plot_ctx *c, const char *pattern, bool self);
int figure_recall(struct plot_ctx *c, const char *pattern, bool packed);
int figure_recall_state(struct plot_ctx *c, const char *pattern, bool packed);

#endif
