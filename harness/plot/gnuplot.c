/*
 * gnuplot.c - the files written beside the figures and gnuplot itself: the output folder
 * and the staging folder inside it where everything is written first (renamed into the
 * output folder only when every figure has been drawn, so a failed or interrupted plot
 * leaves the figures that were there), NAME.dat / NAME.gp opened and checked on close, style.gp of the run (plots/style.gp with
 * the formats, the width and one line style per variant of the run), a figure's script
 * from its template (header, panels, legend, footer), and gnuplot found on PATH and run
 * with fork/exec in the output folder, its status and outputs checked.
 */
#include "plot-internal.h"

#include "outfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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

int plot_mkdir_p(const char *dir)
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

/* The staging folder: a fresh hidden folder in the output folder (so renames stay on its file system). */
int plot_stage_begin(struct plot_ctx *c)
{
	if (snprintf(c->stage, sizeof(c->stage), "%s/.plot-XXXXXX", c->o->out_dir) >=
	    (int)sizeof(c->stage))
		return why_fail(-ENAMETOOLONG, c->why, c->why_len, "the folder '%.64s...' has "
				"too long a name", c->o->out_dir);
	if (!mkdtemp(c->stage)) {
		int err = errno;

		c->stage[0] = '\0';
		return why_fail(-err, c->why, c->why_len, "cannot write in '%s': %s",
				c->o->out_dir, strerror(err));
	}
	return 0;
}

/*
 * Renames every file of the staging folder into the output folder and removes the
 * staging folder. A file there that is a database is never replaced: refused before
 * anything moves.
 */
int plot_stage_commit(struct plot_ctx *c)
{
	char from[FILE_PATH_LEN], to[FILE_PATH_LEN];
	struct dirent *e;
	DIR *d;
	int rc = 0;

	for (int pass = 0; pass < 2 && !rc; pass++) {
		d = opendir(c->stage);
		if (!d)
			return why_fail(-errno, c->why, c->why_len, "cannot read '%s': %s",
					c->stage, strerror(errno));
		while (!rc && (e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(from, sizeof(from), "%s/%s", c->stage, e->d_name);
			snprintf(to, sizeof(to), "%s/%s", c->o->out_dir, e->d_name);
			if (pass == 0 && outfile_is_database(to, NULL))
				rc = why_fail(-EEXIST, c->why, c->why_len, "'%s' is a database: a "
					      "figure never replaces one", to);
			else if (pass == 1 && rename(from, to))
				rc = why_fail(-errno, c->why, c->why_len, "cannot write '%s': %s",
					      to, strerror(errno));
		}
		closedir(d);
	}
	if (!rc)
		plot_stage_abort(c);
	return rc;
}

/* Removes the staging folder and what is in it, unless gnuplot failed there. */
void plot_stage_abort(struct plot_ctx *c)
{
	struct dirent *e;
	DIR *d;

	if (!c->stage[0] || c->keep_stage)
		return;
	d = opendir(c->stage);
	while (d && (e = readdir(d))) {
		char path[FILE_PATH_LEN];

		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(path, sizeof(path), "%s/%s", c->stage, e->d_name);
			unlink(path);
		}
	}
	if (d)
		closedir(d);
	rmdir(c->stage);
	c->stage[0] = '\0';
}

FILE *plot_open_out(struct plot_ctx *c, const char *name, const char *ext)
{
	char path[FILE_PATH_LEN];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.%s", c->stage, name, ext);
	f = fopen(path, "w");
	if (!f)
		why_set(c->why, c->why_len, "cannot write '%s': %s", path, strerror(errno));
	return f;
}

int plot_close_out(struct plot_ctx *c, FILE *f, const char *name, const char *ext)
{
	bool bad = ferror(f);

	if (fclose(f) || bad)
		return why_fail(-EIO, c->why, c->why_len, "cannot write '%s/%s.%s'",
				c->stage, name, ext);
	return 0;
}

void plot_remove_out(struct plot_ctx *c, const char *name, const char *ext)
{
	char path[FILE_PATH_LEN];

	snprintf(path, sizeof(path), "%s/%s.%s", c->stage, name, ext);
	unlink(path);
}

int plot_close_dat(struct plot_ctx *c, FILE *f, const char *name, int n)
{
	int rc = plot_close_out(c, f, name, "dat");

	if (n < 0 || rc)
		return n < 0 ? n : rc;
	/* no block: nothing measurable, no figure */
	if (!n)
		plot_remove_out(c, name, "dat");
	return n;
}

/*
 * Runs gnuplot with arg (and arg2 when not NULL) in the staging folder, its output in
 * LOG.log, removed when it succeeds; what names the script in the message of a failure,
 * after which the staging folder is kept for the reader to look into.
 */
static int run_in_stage(struct plot_ctx *c, const char *what, const char *log_name,
			  const char *arg, const char *arg2)
{
	char log[FILE_PATH_LEN], line[200] = "";
	int status;
	pid_t pid;

	snprintf(log, sizeof(log), "%s/%s.log", c->stage, log_name);
	pid = fork();
	if (pid < 0)
		return why_fail(-errno, c->why, c->why_len, "cannot start gnuplot: %s",
				strerror(errno));
	if (pid == 0) {
		int in = open("/dev/null", O_RDONLY);
		int err = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (in < 0 || err < 0 || chdir(c->stage))
			_exit(127);
		dup2(in, 0);
		dup2(err, 1);
		dup2(err, 2);
		execl(c->o->gnuplot, "gnuplot", arg, arg2, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return why_fail(-errno, c->why, c->why_len, "lost gnuplot: %s",
					strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		FILE *f = fopen(log, "r");

		/* gnuplot's own message: the last non-empty line of its output */
		while (f && fgets(line + 100, 100, f))
			if (line[100 + strspn(line + 100, " \t\n^")])
				memcpy(line, line + 100, 100);
		if (f)
			fclose(f);
		line[strcspn(line, "\n")] = '\0';
		c->keep_stage = true;
		return why_fail(-EPROTO, c->why, c->why_len,
				"gnuplot failed on %s/%s (see %s.log there; nothing in %s changed)%s%s",
				c->stage, what, log_name, c->o->out_dir, *line ? ": " : "", line);
	}
	unlink(log);
	return 0;
}

/* Runs `gnuplot NAME.gp` in the staging folder and checks what it wrote. */
static int run_gnuplot(struct plot_ctx *c, const char *name)
{
	static const struct {
		unsigned int bit;
		const char *ext;
	} outputs[] = { { PLOT_PDF, "pdf" }, { PLOT_PNG, "png" }, { PLOT_SVG, "svg" } };
	char script[300];
	int rc;

	snprintf(script, sizeof(script), "%s.gp", name);
	rc = run_in_stage(c, script, name, script, NULL);
	if (rc)
		return rc;
	for (size_t i = 0; i < sizeof(outputs) / sizeof(outputs[0]); i++) {
		char path[FILE_PATH_LEN];
		struct stat sb;

		if (!(c->o->formats & outputs[i].bit))
			continue;
		snprintf(path, sizeof(path), "%s/%s.%s", c->stage, name, outputs[i].ext);
		if (stat(path, &sb) || !sb.st_size) {
			c->keep_stage = true;
			return why_fail(-EPROTO, c->why, c->why_len, "gnuplot wrote no '%s'", path);
		}
	}
	c->figures++;
	return 0;
}

/*
 * style.gp of the run: a header with the formats and the width, plots/style.gp, then one
 * `set style line` per variant of the run, which gnuplot itself writes from style.gp's
 * variant_style() (so the rule lives in style.gp alone, and the lines here can be edited).
 */
int plot_write_style(struct plot_ctx *c)
{
	FILE *f = plot_open_out(c, "style", "gp");
	char *cmd = NULL, name[200], quoted[700];
	const char *sep = "";
	size_t cmd_len = 0;
	FILE *m;
	int rc;

	if (!f)
		return -EIO;
	fprintf(f,
		"# style.gp - shared by every figure of this directory (attnbench plot): the\n"
		"# text of plots/style.gp between a header with this run's formats and width\n"
		"# and a line style for each of its variants.\n"
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
	fprintf(f, "\"\nwidth = %.1f\n\n%s", c->width, c->style_text);
	if (*c->style_text && c->style_text[strlen(c->style_text) - 1] != '\n')
		fputc('\n', f);
	fprintf(f, "\n# this run's variants, numbered by their index in the registry + 1 "
		"(variant_style() above)\n");
	rc = plot_close_out(c, f, "style", "gp");
	if (rc)
		return rc;

	/* gnuplot appends the variants' lines to the file it has just read */
	m = open_memstream(&cmd, &cmd_len);
	if (!m)
		return why_fail(-ENOMEM, c->why, c->why_len, "out of memory writing style.gp");
	fprintf(m, "load \"style.gp\"; set print \"style.gp\" append;");
	for (int i = 0; i < c->n_variants; i++) {
		plot_comment_text(c->variants[i].name, name, sizeof(name));
		plot_gp_string(name, quoted, sizeof(quoted));
		fprintf(m, " print variant_style(%d) . \"\\t# \" . %s;", c->variants[i].style,
			quoted);
	}
	fprintf(m, " unset print");
	fclose(m);
	if (!cmd)
		return why_fail(-ENOMEM, c->why, c->why_len, "out of memory writing style.gp");
	rc = run_in_stage(c, "style.gp", "style", "-e", cmd);
	free(cmd);
	return rc;
}

/*
 * Opens the script: the legend's layout and the figure's height, the template, then its
 * header section (from figure.gp unless the template has its own): the comment and the
 * loop over formats up to `set multiplot`. What the figure emits next runs once per
 * format (after a reset, so each format starts from style.gp alone).
 */
int figure_begin(struct figure *g, const char *what, int rows, int cols)
{
	struct plot_ctx *c = g->c;
	int rc;

	figure_layout(g, rows, cols);
	rc = plot_template_read(c, g->kind, &g->tpl);
	if (rc)
		return rc;
	g->f = plot_open_out(c, g->name, "gp");
	if (!g->f) {
		plot_template_release(&g->tpl);
		return -EIO;
	}
	figure_var(g, "name", "%s", g->name);
	figure_var(g, "what", "%s", what);
	figure_var(g, "template", "%s", g->kind);
	figure_var(g, "run", "%lld", (long long)c->o->run_id);
	figure_var(g, "width", "%.1f", c->width);
	figure_var(g, "fontsize", "%g", c->font_pt);
	figure_var(g, "height", "%.3f", g->height);
	figure_emit(g, "header");
	return 0;
}

int figure_begin_one_panel(struct figure *g, const char *what, double x_lo, double x_hi,
			   enum tick_unit x_unit)
{
	int rc = figure_begin(g, what, 1, 1);

	if (rc)
		return rc;
	figure_panel(g, 0);
	plot_log_axis(g, "xaxis", 'x', x_lo, x_hi, g->panel_w, x_unit, NULL);
	return 0;
}

/* Panel i's margins (row-major) as screen fractions: section "panel". */
void figure_panel(struct figure *g, int i)
{
	double frac[4];

	figure_panel_frac(g, i, frac);
	figure_var(g, "left", "%.4f", frac[0]);
	figure_var(g, "right", "%.4f", frac[1]);
	figure_var(g, "top", "%.4f", frac[2]);
	figure_var(g, "bottom", "%.4f", frac[3]);
	figure_emit(g, "panel");
}

/* The sections that draw a legend entry's sample, by its kind. */
static const char *const key_sections[][2] = {
	[KEY_LINEPOINT] = { "key-line", "key-point" },
	[KEY_POINT] = { "key-point", NULL },
	[KEY_LINE] = { "key-line", NULL },
	[KEY_BAR] = { "key-bar", NULL },
	[KEY_INTERVAL] = { "key-interval", NULL },
	[KEY_HATCH] = { "key-hatch", NULL },
	[KEY_ARROW] = { "key-arrow", NULL },
};

/* The legend band, drawn last: sections legend, the samples, key-label, legend-end. */
static void write_legend(struct figure *g)
{
	char title[300];

	figure_var(g, "bottom", "%.4f", 1 - g->key_h / g->height);
	figure_emit(g, "legend");
	for (int k = 0; k < g->n_keys; k++) {
		const struct key *e = &g->keys[k];
		double place[7];

		figure_key_place(g, k, place);
		figure_var(g, "tag", "%d", k + 1);
		figure_var(g, "point_tag", "%d", 500 + k);
		figure_var(g, "label_tag", "%d", 1000 + k);
		figure_var(g, "x", "%.4f", place[0]);
		figure_var(g, "x1", "%.4f", place[1]);
		figure_var(g, "xm", "%.4f", place[2]);
		figure_var(g, "xt", "%.4f", place[3]);
		figure_var(g, "y", "%.4f", place[4]);
		figure_var(g, "y0", "%.4f", place[5]);
		figure_var(g, "y1", "%.4f", place[6]);
		figure_var(g, "ls", "%s", e->ls);
		plot_gp_string(e->title, title, sizeof(title));
		figure_var(g, "title", "%s", title);
		for (int s = 0; s < 2; s++)
			if (key_sections[e->kind][s])
				figure_emit(g, key_sections[e->kind][s]);
		figure_emit(g, "key-label");
	}
	figure_emit(g, "legend-end");
}

/* Draws the legend, closes the loop and the script, and runs gnuplot on it. */
int figure_end(struct figure *g)
{
	int rc;

	if (g->n_keys)
		write_legend(g);
	figure_emit(g, "footer");
	rc = plot_close_out(g->c, g->f, g->name, "gp");
	g->f = NULL;
	if (g->err)
		rc = g->err;
	figure_vars_release(g);
	plot_template_release(&g->tpl);
	return rc ? rc : run_gnuplot(g->c, g->name);
}

/*
 * Var as the elements of a plot command, one per block: section filled in with data (the
 * data file, then '' for the same), index (index[k], or k when index is NULL) and ls.
 */
void figure_block_list(struct figure *g, const char *var, const char *section,
		       const struct run_variant *const *blocks, const int *index, int n)
{
	figure_var(g, var, "%s", "");
	for (int k = 0; k < n; k++) {
		if (k)
			figure_var(g, "data", "%s", "''");
		else
			figure_var(g, "data", "'%s.dat'", g->name);
		figure_var(g, "index", "%d", index ? index[k] : k);
		figure_var(g, "ls", "%d", blocks[k]->style);
		figure_var_append(g, var, ", \\\n\t     ", section);
	}
}
