/*
 * plot.c - figures of a run: queries on the results view, gnuplot data files and scripts
 * written side by side, then gnuplot run once per figure (fork/exec, status checked).
 *
 * Figures, each per pattern present in the run:
 *   latency-P  speed: median latency vs N, log-log, 95% interval of the median as bars
 *   memory-P   speed: peak workspace vs N, log-log
 *   passkey-P  passkey: accuracy heatmap (depth x length), one panel per variant
 *   recall-P   recall: accuracy vs pairs (log2), at one head dimension, chance 1/64,
 *              long range (gap > 0); recall-packed-P the same with the queries right
 *              after the pairs (gap 0)
 * Speed figures take one shape per pattern (the most common d, heads, kv_heads, batch),
 * so that lines compare like with like; cells that differ only in parameters are averaged.
 */
#include "plot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* The line style that marks "chance" and other references. */
#define STYLE_REFERENCE 100

#define MAX_VARIANTS 64
#define MAX_BLOCKS MAX_VARIANTS

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
	double x_min, x_max;	/* first column of the last data file written */
	char tics[128];
	char *why;
	size_t why_len;
};

/* One block of a data file: the variant it holds. */
struct block {
	const struct run_variant *v;
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

/* The variants of the run in registry order; unknown names after the known ones. */
static int load_variants(struct plot_ctx *c)
{
	sqlite3_stmt *st = prepare(c, "SELECT DISTINCT variant FROM results WHERE run_id = ?1");
	int extra = 0;

	if (!st)
		return -EIO;
	while (sqlite3_step(st) == SQLITE_ROW && c->n_variants < MAX_VARIANTS) {
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
	/* insertion sort by style: a handful of entries */
	for (int i = 1; i < c->n_variants; i++)
		for (int j = i; j > 0 && c->variants[j - 1].style > c->variants[j].style; j--) {
			struct run_variant t = c->variants[j];

			c->variants[j] = c->variants[j - 1];
			c->variants[j - 1] = t;
		}
	return 0;
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
		"# formats written by each script, and the figure size in inches\n"
		"# (3.5 x 2.6 fits one column of a two-column paper; 7.0 spans both)\n"
		"formats = \"");
	if (c->o->formats & PLOT_PDF)
		fprintf(f, "%spdf", sep), sep = " ";
	if (c->o->formats & PLOT_PNG)
		fprintf(f, "%spng", sep), sep = " ";
	if (c->o->formats & PLOT_SVG)
		fprintf(f, "%ssvg", sep), sep = " ";
	fprintf(f,
		"\"\n"
		"width = 3.5\n"
		"height = 2.6\n"
		"font = \"Sans\"\n"
		"fontsize = 8\n"
		"dpi = 300\n"
		"\n"
		"# terminal(format, width in, height in): the 'set terminal' command to eval\n"
		"term_pdf(w, h) = sprintf('set terminal pdfcairo enhanced color size %%gin,%%gin "
		"font \"%%s,%%g\" linewidth 1', w, h, font, fontsize)\n"
		"term_png(w, h) = sprintf('set terminal pngcairo enhanced color size %%d,%%d "
		"font \"%%s,%%g\" fontscale %%g linewidth %%g pointscale %%g', int(w * dpi), "
		"int(h * dpi), font, fontsize, dpi / 72.0, dpi / 72.0, dpi / 72.0)\n"
		"term_svg(w, h) = sprintf('set terminal svg enhanced size %%d,%%d "
		"font \"%%s,%%g\" linewidth 1 background \"white\"', int(w * 72), int(h * 72), "
		"font, fontsize)\n"
		"terminal(fmt, w, h) = fmt eq \"pdf\" ? term_pdf(w, h) : "
		"fmt eq \"png\" ? term_png(w, h) : term_svg(w, h)\n"
		"\n"
		"set border 3 lw 0.8\n"
		"set tics nomirror out scale 0.6\n"
		"set grid lc rgb \"#d9d9d9\" lw 0.5 dt 1\n"
		"set key tmargin center horizontal maxrows 1 reverse Left noopaque samplen 1.5 width -2\n"
		"set errorbars small\n"
		"set pointsize 0.8\n"
		"# accuracy heatmaps: viridis (sequential, colour-blind-safe), 0..1\n"
		"set palette defined (0 \"#440154\", 0.25 \"#3B528B\", 0.5 \"#21908C\", "
		"0.75 \"#5DC863\", 1 \"#FDE725\")\n"
		"\n"
		"# one style per variant, numbered by its index in the registry + 1, so a variant\n"
		"# has the same colour, point type and dash in every figure (Okabe-Ito colours)\n");
	for (int i = 0; i < c->n_variants; i++) {
		const struct run_variant *v = &c->variants[i];
		int k = v->style - 1;

		/* past eight variants colours repeat: shift the point type, dash the line */
		fprintf(f, "set style line %d lc rgb \"%s\" pt %d lw 1.2 dt %d\t# %s\n", v->style,
			palette[k % PALETTE_SIZE],
			point_types[(k + k / PALETTE_SIZE) % POINT_TYPES],
			1 + k / (int)PALETTE_SIZE, v->name);
	}
	fprintf(f, "set style line %d lc rgb \"#555555\" lw 1 dt 2\t# chance and references\n",
		STYLE_REFERENCE);
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

/* The start of a figure's script. */
static void script_head(struct plot_ctx *c, FILE *f, const char *name, const char *what)
{
	fprintf(f,
		"# %s.gp - %s, run %lld (attnbench plot).\n"
		"# Data: %s.dat, one block per variant (index 0, 1, ...). Shared style: style.gp.\n"
		"load \"style.gp\"\n",
		name, what, (long long)c->o->run_id, name);
}

/* The loop over formats around the plot command(s). */
static void script_outputs(FILE *f, const char *name, const char *w, const char *h)
{
	fprintf(f,
		"do for [fmt in formats] {\n"
		"\teval terminal(fmt, %s, %s)\n"
		"\tset output \"%s.\" . fmt\n",
		w, h, name);
}

static void script_tail(FILE *f)
{
	fprintf(f, "\tunset output\n}\n");
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
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENODATA : -EIO;
}

/*
 * Writes one block per variant: the rows of sql (bound: ?1 run, ?2 pattern, ?3 variant,
 * ?4..?7 the shape), columns as numbers. Returns the number of blocks, or -errno.
 */
static int write_blocks(struct plot_ctx *c, FILE *f, const char *sql, const char *pattern,
			const int shape[4], const char *columns, struct block *blocks)
{
	int n = 0;

	c->x_min = 0;
	c->x_max = 0;
	for (int i = 0; i < c->n_variants; i++) {
		sqlite3_stmt *st = prepare(c, sql);
		int rows = 0, rc;

		if (!st)
			return -EIO;
		sqlite3_bind_text(st, 2, pattern, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, c->variants[i].name, -1, SQLITE_STATIC);
		for (int k = 0; shape && k < 4; k++)
			sqlite3_bind_int(st, 4 + k, shape[k]);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (!rows++)
				fprintf(f, "%s# variant %s\n# %s\n", n ? "\n\n" : "",
					c->variants[i].name, columns);
			double x = sqlite3_column_double(st, 0);

			if (!c->x_max || x < c->x_min)
				c->x_min = x;
			if (x > c->x_max)
				c->x_max = x;
			for (int k = 0; k < sqlite3_column_count(st); k++)
				fprintf(f, "%s%.9g", k ? "\t" : "", sqlite3_column_double(st, k));
			fputc('\n', f);
		}
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return fail(c, -EIO, "cannot read results: %s", sqlite3_errmsg(c->db));
		if (rows)
			blocks[n++].v = &c->variants[i];
	}
	return n;
}

/* Ticks at powers of 4 on a log2 axis that would otherwise crowd (more than 6 ticks). */
static const char *wide_x_tics(struct plot_ctx *c)
{
	if (c->x_min > 0 && c->x_max / c->x_min > 32) {
		snprintf(c->tics, sizeof(c->tics),
			 "set xtics %g, 4\t# a tick per power of 4: powers of 2 would crowd\n",
			 c->x_min);
		return c->tics;
	}
	return "";
}

/* The per-variant plot elements: 'NAME.dat' index K using COLS with STYLE ls S title "V". */
static void plot_blocks(FILE *f, const char *name, const struct block *b, int n,
			const char *using, const char *with)
{
	for (int k = 0; k < n; k++)
		fprintf(f, "%s'%s%s' index %d using %s with %s ls %d title \"%s\" noenhanced",
			k ? ", \\\n\t     " : "", k ? "" : name, k ? "" : ".dat", k, using, with,
			b[k].v->style, b[k].v->name);
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
	struct block blocks[MAX_BLOCKS];
	char name[64];
	int shape[4], n, rc;
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
	n = write_blocks(c, f, memory ? memory_sql : latency_sql, pattern, shape,
			 memory ? "N\tpeak_bytes" :
			 "N\tmedian_ms\tci_lo_ms\tci_hi_ms (95% interval of the median)", blocks);
	rc = close_out(c, f, name, "dat");
	if (n < 0 || rc)
		return n < 0 ? n : rc;
	if (!n) {
		/* nothing measurable on this pattern: no figure */
		char path[4096];

		snprintf(path, sizeof(path), "%s/%s.dat", c->o->out_dir, name);
		unlink(path);
		return 0;
	}
	f = open_out(c, name, "gp");
	if (!f)
		return -EIO;
	script_head(c, f, name, memory ? "peak workspace vs sequence length" :
		    "forward latency vs sequence length");
	fprintf(f,
		"set logscale xy\n"
		"set logscale x 2\n"
		"set xlabel \"sequence length N (tokens)\"\n"
		"set format x \"%%.0f\"\n"
		"set offsets graph 0.04, graph 0.04, 0, 0\n"
		"%s", wide_x_tics(c));
	if (memory)
		fprintf(f,
			"set ylabel \"peak workspace (bytes)\"\n"
			"set format y \"%%.0s %%cB\"\n"
			"set yrange [*:*] noreverse\n");
	else
		fprintf(f,
			"set ylabel \"median latency (ms)\"\n"
			"set format y \"%%g\"\n");
	script_outputs(f, name, "width", "height");
	fprintf(f, "\tplot ");
	plot_blocks(f, name, blocks, n, memory ? "1:2" : "1:2:3:4",
		    memory ? "linespoints" : "yerrorlines");
	fprintf(f, "\n");
	script_tail(f);
	rc = close_out(c, f, name, "gp");
	return rc ? rc : run_gnuplot(c, name);
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
	struct block blocks[MAX_BLOCKS];
	sqlite3_stmt *st;
	char name[64];
	int shape[4] = { 0 }, n, rc;
	FILE *f;

	/* d = 64 when the run has it (chance is 1/64 either way), else the most common d */
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
	snprintf(name, sizeof(name), "recall-%s%s", packed ? "packed-" : "", pattern);
	f = open_out(c, name, "dat");
	if (!f)
		return -EIO;
	fprintf(f, "# recall accuracy, pattern %s, run %lld, head dimension d = %d, %s"
		" (averaged over lengths)\n", pattern, (long long)c->o->run_id, shape[0],
		packed ? "packed (gap 0)" : "long range (gap > 0)");
	n = write_blocks(c, f, packed ? packed_sql : long_sql, pattern, shape,
			 "pairs\taccuracy", blocks);
	rc = close_out(c, f, name, "dat");
	if (n < 0 || rc)
		return n < 0 ? n : rc;
	if (!n) {
		char path[4096];

		snprintf(path, sizeof(path), "%s/%s.dat", c->o->out_dir, name);
		unlink(path);
		return 0;
	}
	f = open_out(c, name, "gp");
	if (!f)
		return -EIO;
	script_head(c, f, name, packed ? "associative recall accuracy vs number of pairs, "
		    "queries right after the pairs" : "associative recall accuracy vs number "
		    "of pairs, queries far from the pairs");
	fprintf(f,
		"set logscale x 2\n"
		"set xlabel \"key-value pairs P (d = %d)\"\n"
		"set format x \"%%.0f\"\n"
		"set ylabel \"recall accuracy\"\n"
		"set yrange [-0.03:1.05]\n"
		"set ytics 0, 0.25, 1\n"
		"set offsets graph 0.04, graph 0.04, 0, 0\n"
		"%s",
		shape[0], wide_x_tics(c));
	script_outputs(f, name, "width", "height");
	fprintf(f, "\tplot ");
	plot_blocks(f, name, blocks, n, "1:2", "linespoints");
	fprintf(f, ", \\\n\t     1.0 / 64 with lines ls %d title \"chance (1/64)\"\n",
		STYLE_REFERENCE);
	script_tail(f);
	rc = close_out(c, f, name, "gp");
	return rc ? rc : run_gnuplot(c, name);
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
	struct block blocks[MAX_BLOCKS];
	double depths[64], lengths[64];
	int n_depths, n_lengths, n, rc;
	char name[64], height[32];
	double h;
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
	n = write_blocks(c, f, sql, pattern, NULL,
			 "depth_index\tlength_index\taccuracy\tdepth\tkeys_M", blocks);
	rc = close_out(c, f, name, "dat");
	if (n < 0 || rc)
		return n < 0 ? n : rc;
	f = open_out(c, name, "gp");
	if (!f)
		return -EIO;
	script_head(c, f, name, "passkey retrieval accuracy by length and needle depth");
	/*
	 * One panel per variant, stacked, each with its name above it; inches: 0.55 at the
	 * bottom for ticks and label, 0.1 at the top, 0.16 between panels for the names.
	 */
	h = 0.65 + 0.16 * n + 0.55 * n;
	if (h < 2.6)
		h = 2.6;
	snprintf(height, sizeof(height), "%.2f", h);
	fprintf(f,
		"set cbrange [0:1]\n"
		"set xrange [-0.5:%d.5]\n"
		"set yrange [-0.5:%d.5]\n"
		"depth_tics = 'set xtics (",
		n_depths - 1, n_lengths - 1);
	for (int i = 0, first = 1; i < n_depths; i++) {
		/* label the ends and every other depth */
		if (i % 2 && i != n_depths - 1 && n_depths > 6)
			continue;
		fprintf(f, "%s\"%g\" %d", first ? "" : ", ", depths[i], i);
		first = 0;
	}
	fprintf(f, ") scale 0'\nset ytics (");
	for (int i = 0; i < n_lengths; i++)
		fprintf(f, "%s\"%.0f\" %d", i ? ", " : "", lengths[i], i);
	fprintf(f,
		") scale 0\n"
		"set grid noxtics noytics\n"
		"set border 15 lw 0.5\n"
		"unset key\n"
		"set cbtics 0, 0.25, 1 scale 0.5\n"
		"set format cb \"%%g\"\n"
		"set tics front\n"
		"set label 1 \"%s\" at screen 0.03, screen %.3f rotate by 90 center\n"
		"colorbox = 'set colorbox user origin screen 0.80, screen %.3f size "
		"screen 0.03, screen %.3f'\n"
		"set cblabel \"accuracy\" offset -0.5, 0\n",
		self ? "length N (tokens)" : "keys M (tokens)", (1 + 0.55 / h - 0.26 / h) / 2,
		0.55 / h, 1 - 0.81 / h);
	script_outputs(f, name, "width", height);
	fprintf(f,
		"\tset multiplot layout %d, 1 margins 0.22, 0.76, %.3f, %.3f spacing 0, %.3f\n",
		n, 0.55 / h, 1 - 0.26 / h, 0.16 / h);
	for (int k = 0; k < n; k++) {
		fprintf(f, "\t%s\n", k == n - 1 ? "eval depth_tics" : "unset xtics");
		fprintf(f, "\tset xlabel %s\n", k == n - 1 ? "\"needle depth (0 = first token, "
			"1 = last)\"" : "\"\"");
		fprintf(f, "\tset label 2 \"%s\" at graph 0, graph 1 left offset 0, 0.55 "
			"noenhanced\n", blocks[k].v->name);
		fprintf(f, "\t%s\n", k ? "unset colorbox" : "eval colorbox");
		fprintf(f,
			"\tplot '%s.dat' index %d using 1:2:(0.5):(0.5):3 "
			"with boxxyerror fs solid 1.0 noborder lc palette\n", name, k);
	}
	fprintf(f, "\tunset label 2\n");
	fprintf(f, "\tunset multiplot\n");
	script_tail(f);
	rc = close_out(c, f, name, "gp");
	return rc ? rc : run_gnuplot(c, name);
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
		     " OR (task IN ('passkey', 'recall') AND accuracy IS NOT NULL))");
	if (!st)
		return -EIO;
	rc = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_finalize(st);
	if (rc < 0)
		return fail(c, -EIO, "cannot read results: %s", sqlite3_errmsg(c->db));
	if (!rc)
		return fail(c, -ENODATA, "run %lld has no successful speed, passkey or recall "
			    "cells to plot", (long long)c->o->run_id);
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
	*figures = 0;
	rc = check_run(&c);
	if (rc)
		return rc;
	rc = load_variants(&c);
	if (rc)
		return rc;
	rc = mkdir_p(opts.out_dir);
	if (rc)
		return fail(&c, rc, "cannot create '%s': %s", opts.out_dir, strerror(-rc));
	rc = write_style(&c);
	for (int p = 0; !rc && p < ATTN_PATTERN_COUNT; p++) {
		const char *pattern = pattern_name(p);

		rc = figure_speed(&c, pattern, false);
		if (!rc)
			rc = figure_speed(&c, pattern, true);
		if (!rc)
			rc = figure_passkey(&c, pattern, pattern_is_self(p));
		if (!rc)
			rc = figure_recall(&c, pattern, false);
		if (!rc)
			rc = figure_recall(&c, pattern, true);
	}
	*figures = c.figures;
	return rc;
}
