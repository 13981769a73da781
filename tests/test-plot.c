/*
 * test-plot.c - `attnbench plot` as a user meets it: a tiny run into a fresh database (all
 * variants on speed, a few on the accuracy tasks) plus efficiency-length rows written by
 * SQL, then every figure kind written as valid PDF, PNG and SVG with its script and data
 * beside it, scripts that re-run in their directory, a speed-up that equals an
 * independent ratio of medians of the stored samples, a Pareto front checked point by
 * point, legends above every panel, both sizes, one-line exit-2 errors for bad input,
 * an empty run and a missing gnuplot, and the look read from $ATTNBENCH_PLOTS: an edited
 * copy of style.gp restyles the figures, a missing template is a one-line error; hostile
 * text in every stored string (quotes, backquotes, system(), newlines, '!', '#', '@', '%')
 * runs nothing in plot or in its scripts run again by hand, and merge refuses such a
 * variant name with OUT left byte for byte. argv[1] is the binary.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "run-binary.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *binary;
static char tmpdir[] = "/tmp/attnbench-plot-XXXXXX";
static char db[256], plots[256];

/* Every figure kind the tiny run has, and so must get. */
static const char *const figures[] = {
	"latency-ns", "latency-cs", "memory-ns", "memory-cs", "speedup-ns", "speedup-cs",
	"efficiency-ns", "pareto-ns", "pareto-cs", "roofline-ns", "roofline-cs", "fidelity-ns",
	"passkey-cs", "recall-ns", "recall-packed-ns", "recall-state-ns",
	"recall-state-packed-ns",
};
#define FIGURES (sizeof(figures) / sizeof(figures[0]))

/* Runs the binary with a NULL-terminated argument list. */
static void run(struct outcome *o, const char *arg, ...)
{
	va_list ap;

	va_start(ap, arg);
	run_binary(o, binary, tmpdir, arg, ap);
	va_end(ap);
}

static char *path_in(const char *dir, const char *name)
{
	static char paths[8][640];
	static int next;
	char *p = paths[next++ % 8], d[400];

	/* dir may be an earlier result of this function */
	snprintf(d, sizeof(d), "%s", dir);
	snprintf(p, 640, "%s/%s", d, name);
	return p;
}

static char *figure_file(const char *dir, const char *figure, const char *ext)
{
	char name[128];

	snprintf(name, sizeof(name), "%s.%s", figure, ext);
	return path_in(dir, name);
}

/* A whole file, NUL-terminated (NULL when it cannot be read); *len gets its size. */
static char *slurp_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long size;

	if (!f)
		return NULL;
	if (!fseek(f, 0, SEEK_END) && (size = ftell(f)) >= 0 && !fseek(f, 0, SEEK_SET)) {
		buf = malloc((size_t)size + 1);
		if (buf && fread(buf, 1, (size_t)size, f) == (size_t)size) {
			buf[size] = '\0';
			if (len)
				*len = (size_t)size;
		} else {
			free(buf);
			buf = NULL;
		}
	}
	fclose(f);
	return buf;
}

static bool exists(const char *path)
{
	struct stat sb;

	return !stat(path, &sb) && sb.st_size > 0;
}

/* One error line on stderr, and nothing else. */
static void assert_one_line(const struct outcome *o)
{
	const char *nl = strchr(o->err, '\n');

	assert_non_null(nl);
	assert_int_equal(nl[1], '\0');
	assert_memory_equal(o->err, "attnbench: ", 11);
}

/* A PDF: the header, and the end-of-file marker in its last bytes. */
static void assert_valid_pdf(const char *path)
{
	size_t len = 0;
	char *pdf = slurp_file(path, &len);

	assert_non_null(pdf);
	assert_true(len > 100);
	assert_memory_equal(pdf, "%PDF-", 5);
	assert_non_null(memmem(pdf + len - 32, 32, "%%EOF", 5));
	free(pdf);
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A PNG: the signature, IHDR first, IEND last; returns its width in pixels. */
static uint32_t assert_valid_png(const char *path)
{
	static const unsigned char magic[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	size_t len = 0;
	unsigned char *png = (unsigned char *)slurp_file(path, &len);
	uint32_t width;

	assert_non_null(png);
	assert_true(len > 8 + 25 + 12);
	assert_memory_equal(png, magic, 8);
	assert_memory_equal(png + 12, "IHDR", 4);
	assert_memory_equal(png + len - 8, "IEND", 4);
	width = be32(png + 16);
	free(png);
	return width;
}

/* An SVG: the root element (after an XML declaration and comments) is <svg>, closed. */
static void assert_valid_svg(const char *path)
{
	size_t len = 0;
	char *svg = slurp_file(path, &len), *p, *end;

	assert_non_null(svg);
	p = svg;
	for (;;) {
		p += strspn(p, " \t\r\n");
		if (!strncmp(p, "<?", 2))
			p = strstr(p, "?>") + 2;
		else if (!strncmp(p, "<!--", 4))
			p = strstr(p, "-->") + 3;
		else if (!strncmp(p, "<!DOCTYPE", 9))
			p = strchr(p, '>') + 1;
		else
			break;
		assert_true(p > svg + 1);
	}
	assert_true(!strncmp(p, "<svg", 4) && strchr(" \t\r\n>", p[4]));
	end = svg + len;
	while (end > svg && strchr(" \t\r\n", end[-1]))
		end--;
	assert_true(end - svg > 6 && !strncmp(end - 6, "</svg>", 6));
	free(svg);
}

/* Runs `gnuplot SCRIPT` in dir; its exit status. */
static int run_gnuplot_in(const char *dir, const char *script)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (chdir(dir) || null < 0)
			_exit(126);
		dup2(null, 1);
		dup2(null, 2);
		execlp("gnuplot", "gnuplot", script, (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The most columns a .dat row has: the efficiency figure's 14. */
#define DAT_COLS 14

/* A data file's rows of numbers under "# variant NAME", up to max rows of DAT_COLS values. */
static int dat_rows(const char *dat, const char *variant, double rows[][DAT_COLS], int max)
{
	char header[128];
	const char *p;
	int n = 0;

	snprintf(header, sizeof(header), "# variant %s\n", variant);
	p = strstr(dat, header);
	if (!p)
		return 0;
	p += strlen(header);
	while (*p && n < max) {
		if (*p == '#') {
			p = strchr(p, '\n');
			if (!p)
				break;
			p++;
			continue;
		}
		if (*p == '\n')
			break;		/* the blank line that ends the block */
		for (int k = 0; k < DAT_COLS; k++)
			rows[n][k] = NAN;
		for (int k = 0; k < DAT_COLS && *p && *p != '\n'; k++) {
			char *end;

			rows[n][k] = strtod(p, &end);
			if (end == p)
				break;
			p = end + strspn(end, "\t ");
		}
		n++;
		p = strchr(p, '\n');
		if (!p)
			break;
		p++;
	}
	return n;
}

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The median of the stored latency samples of one speed cell, computed here. */
static double sample_median(sqlite3 *h, const char *variant, const char *pattern, int n)
{
	size_t count = 0, cap = 20000;
	double *x = malloc(cap * sizeof(*x)), m;
	sqlite3_stmt *st;

	assert_non_null(x);

	assert_int_equal(sqlite3_prepare_v2(h,
		"SELECT s.seconds FROM samples s JOIN cells c ON c.id = s.cell_id"
		" WHERE c.run_id = 1 AND c.task = 'speed' AND c.variant = ?1 AND c.pattern = ?2"
		" AND c.n = ?3 AND c.status = 'ok'", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, variant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, pattern, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, n);
	while (sqlite3_step(st) == SQLITE_ROW && count < cap)
		x[count++] = sqlite3_column_double(st, 0);
	sqlite3_finalize(st);
	assert_true(count > 0);
	qsort(x, count, sizeof(x[0]), compare_doubles);
	m = count % 2 ? x[count / 2] : (x[count / 2 - 1] + x[count / 2]) / 2;
	free(x);
	return m;
}

/*
 * The tiny run: every variant on speed (so legends carry all of them), a few on the
 * accuracy tasks; the last recall row packs the queries right after the pairs (gap 0).
 */
static const char tiny_suite[] =
	"task,variants,patterns,lengths,dims,heads,kv_heads,batch,regimes\n"
	"speed,all,ns cs,64 128,16,2,,1,\n"
	"fidelity,vanilla flash linear local,ns,32 64,16,1,,1,gaussian sink\n"
	"passkey,vanilla linear local,cs,64 128,16,1,,10,0 0.5 1\n"
	"recall,vanilla linear local,ns,128,64,1,,2,16 32 64\n"
	"recall,vanilla linear local,ns,48,64,1,,2,16\n";

static const char dull_suite[] =
	"task,variants,patterns,lengths,dims,heads,kv_heads,batch,regimes\n"
	"causality,all,cs,64,16,2,,1,\n";

/*
 * Efficiency lengths as the speed analysis stores them in run_metrics (schema 2): linear
 * crosses vanilla in time at 100 (80..120; CAB's fit says 150) and never in memory (NULL:
 * none in range); local never in time, in memory at 64; performer is cheaper at every
 * measured length in time (below range: the smallest length, 64, and the flag) and crosses
 * in memory at 90; flash only has a slope.
 */
static const char efficiency_rows[] =
	"DELETE FROM run_metrics;"	/* what the run computed itself: these rows replace it */
	"INSERT INTO run_metrics (run_id, variant, pattern, baseline, name, value, unit)"
	" VALUES"
	" (1, 'linear', 'ns', 'vanilla', 'efficiency_length_time', 100, 'tokens'),"
	" (1, 'linear', 'ns', 'vanilla', 'efficiency_length_time_lo', 80, 'tokens'),"
	" (1, 'linear', 'ns', 'vanilla', 'efficiency_length_time_hi', 120, 'tokens'),"
	" (1, 'linear', 'ns', 'vanilla', 'efficiency_below_range_time', 0, ''),"
	" (1, 'linear', 'ns', 'vanilla', 'cab_efficiency_length_time', 150, 'tokens'),"
	" (1, 'linear', 'ns', 'vanilla', 'efficiency_length_memory', NULL, 'tokens'),"
	" (1, 'linear', 'ns', 'vanilla', 'loglog_slope_time', 1.05, ''),"
	" (1, 'local', 'ns', 'vanilla', 'efficiency_length_time', NULL, 'tokens'),"
	" (1, 'local', 'ns', 'vanilla', 'efficiency_length_memory', 64, 'tokens'),"
	" (1, 'local', 'ns', 'vanilla', 'cab_efficiency_length_memory', 70, 'tokens'),"
	" (1, 'performer', 'ns', 'vanilla', 'efficiency_length_time', 64, 'tokens'),"
	" (1, 'performer', 'ns', 'vanilla', 'efficiency_below_range_time', 1, ''),"
	" (1, 'performer', 'ns', 'vanilla', 'efficiency_length_memory', 90, 'tokens'),"
	" (1, 'performer', 'ns', 'vanilla', 'efficiency_below_range_memory', 0, ''),"
	" (1, 'flash', 'ns', 'vanilla', 'loglog_slope_time', 1.98, '')";

static int setup(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	sqlite3 *h;
	FILE *f;
	int rc;

	(void)state;
	if (!o || !mkdtemp(tmpdir))
		return -1;
	snprintf(db, sizeof(db), "%s/results.db", tmpdir);
	snprintf(plots, sizeof(plots), "%s/figures", tmpdir);
	f = fopen(path_in(tmpdir, "tiny.csv"), "w");
	if (!f)
		return -1;
	fputs(tiny_suite, f);
	fclose(f);
	run(o, "run", "--suite", path_in(tmpdir, "tiny.csv"), "--db", db, "--repeats", "5",
	    "--min-time", "0.001", "--threads", "1", "-q", NULL);
	if (o->status != 0) {
		fprintf(stderr, "setup run failed (%d): %s\n", o->status, o->err);
		free(o);
		return -1;
	}
	free(o);
	if (sqlite3_open(db, &h) != SQLITE_OK)
		return -1;
	rc = sqlite3_exec(h, efficiency_rows, NULL, NULL, NULL);
	sqlite3_close(h);
	return rc == SQLITE_OK ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd);
}

static void test_plot_writes_every_figure_in_every_format(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	char expect[64], *gp;

	(void)state;
	run(o, "plot", "--db", db, "--out", plots, NULL);
	assert_int_equal(o->status, 0);
	assert_string_equal(o->err, "");
	snprintf(expect, sizeof(expect), "%zu figures of run 1", FIGURES);
	assert_non_null(strstr(o->out, expect));
	assert_true(exists(path_in(plots, "style.gp")));
	for (size_t i = 0; i < FIGURES; i++) {
		assert_valid_pdf(figure_file(plots, figures[i], "pdf"));
		/* the default size: 7 in at 300 dpi */
		assert_int_equal(assert_valid_png(figure_file(plots, figures[i], "png")), 2100);
		assert_valid_svg(figure_file(plots, figures[i], "svg"));
		gp = slurp_file(figure_file(plots, figures[i], "gp"), NULL);
		assert_non_null(gp);
		assert_non_null(strstr(gp, "load \"style.gp\""));
		free(gp);
		assert_true(exists(figure_file(plots, figures[i], "dat")));
		assert_false(exists(figure_file(plots, figures[i], "log")));
	}
	/* patterns and tasks the run did not touch get no figure */
	assert_false(exists(path_in(plots, "latency-nc.pdf")));
	assert_false(exists(path_in(plots, "passkey-ns.dat")));
	assert_false(exists(path_in(plots, "recall-cs.gp")));
	assert_false(exists(path_in(plots, "fidelity-cs.gp")));
	assert_false(exists(path_in(plots, "efficiency-cs.gp")));
	free(o);
}

/* Each NAME.gp, run by hand in its directory, draws NAME in every format again. */
static void test_every_script_reruns_in_its_directory(void **state)
{
	static const char *const exts[] = { "pdf", "png", "svg" };

	(void)state;
	for (size_t i = 0; i < FIGURES; i++) {
		char script[128];

		for (int k = 0; k < 3; k++)
			unlink(figure_file(plots, figures[i], exts[k]));
		snprintf(script, sizeof(script), "%s.gp", figures[i]);
		assert_int_equal(run_gnuplot_in(plots, script), 0);
		assert_valid_pdf(figure_file(plots, figures[i], "pdf"));
		assert_valid_png(figure_file(plots, figures[i], "png"));
		assert_valid_svg(figure_file(plots, figures[i], "svg"));
	}
}

/* speed-up = median(vanilla samples) / median(variant samples), recomputed here. */
static void test_speedup_is_the_ratio_of_median_samples(void **state)
{
	static const char *const variants[] = { "linear", "flash", "local" };
	char *dat = slurp_file(path_in(plots, "speedup-ns.dat"), NULL);
	double rows[8][DAT_COLS];
	sqlite3 *h;

	(void)state;
	assert_non_null(dat);
	assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
		int n = dat_rows(dat, variants[v], rows, 8);

		assert_int_equal(n, 2);
		for (int r = 0; r < n; r++) {
			int len = (int)rows[r][0];
			double want = sample_median(h, "vanilla", "ns", len) /
				      sample_median(h, variants[v], "ns", len);

			assert_true(len == 64 || len == 128);
			assert_float_equal(rows[r][1], want, 1e-6 * want);
			/* the interval brackets the ratio */
			assert_true(rows[r][2] <= rows[r][1] && rows[r][1] <= rows[r][3]);
			assert_true(rows[r][2] > 0);
		}
	}
	/* the baseline is not compared with itself */
	assert_int_equal(dat_rows(dat, "vanilla", rows, 8), 0);
	sqlite3_close(h);
	free(dat);
}

/* Bars for what run_metrics holds; NULL ("none") drawn as a labelled hatched bar. */
static void test_efficiency_bars_show_values_intervals_and_none(void **state)
{
	char *dat = slurp_file(path_in(plots, "efficiency-ns.dat"), NULL);
	char *gp = slurp_file(path_in(plots, "efficiency-ns.gp"), NULL);
	double rows[2][DAT_COLS];
	const char *p;
	int nones = 0;

	(void)state;
	assert_non_null(dat);
	assert_non_null(gp);
	/* row time time_lo time_hi cab_time time_none memory ... memory_none slope */
	assert_int_equal(dat_rows(dat, "linear", rows, 2), 1);
	assert_float_equal(rows[0][1], 100, 1e-9);
	assert_float_equal(rows[0][2], 80, 1e-9);
	assert_float_equal(rows[0][3], 120, 1e-9);
	assert_float_equal(rows[0][4], 150, 1e-9);
	assert_float_equal(rows[0][5], 0, 0);
	assert_true(isnan(rows[0][6]));
	assert_float_equal(rows[0][10], 1, 0);
	assert_float_equal(rows[0][11], 1.05, 1e-9);
	assert_int_equal(dat_rows(dat, "local", rows, 2), 1);
	assert_float_equal(rows[0][5], 1, 0);
	assert_float_equal(rows[0][6], 64, 1e-9);
	assert_float_equal(rows[0][9], 70, 1e-9);
	assert_int_equal(dat_rows(dat, "flash", rows, 2), 1);
	assert_float_equal(rows[0][11], 1.98, 1e-9);
	/* no rows, no bar; the baseline has none */
	assert_int_equal(dat_rows(dat, "cosformer", rows, 2), 0);
	assert_int_equal(dat_rows(dat, "vanilla", rows, 2), 0);
	/* one "none" in the time panel (local), one in the memory panel (linear) */
	for (p = gp; (p = strstr(p, "\"none\" at")); p++)
		nones++;
	assert_int_equal(nones, 2);
	assert_non_null(strstr(gp, "pattern 4"));
	free(dat);
	free(gp);
}

/* The block index of a variant in a .dat: how many blocks come before its header. */
static int dat_block(const char *dat, const char *variant)
{
	char header[128];
	const char *at, *p;
	int k = 0;

	snprintf(header, sizeof(header), "# variant %s\n", variant);
	at = strstr(dat, header);
	assert_non_null(at);
	for (p = dat; (p = strstr(p, "# variant ")) && p < at; p++)
		k++;
	return k;
}

/* A copy of gp from the line that contains from to the next that contains to (or the end). */
static char *gp_part(const char *gp, const char *from, const char *to)
{
	const char *a = strstr(gp, from), *b;

	assert_non_null(a);
	b = to ? strstr(a + 1, to) : NULL;
	return strndup(a, b ? (size_t)(b - a) : strlen(a));
}

/*
 * Below range (cheaper at every measured length) is not a bar at the smallest length: an
 * arrow from it to the left edge, labelled "< 64", with a legend entry of its own; a
 * variant that crosses within the range keeps its bar.
 */
static void test_efficiency_below_range_is_an_arrow_not_a_bar(void **state)
{
	char *dat = slurp_file(path_in(plots, "efficiency-ns.dat"), NULL);
	char *gp = slurp_file(path_in(plots, "efficiency-ns.gp"), NULL);
	char *time_part, *memory_part, want[128];
	const char *x0;
	double rows[2][DAT_COLS];
	int perf_row, perf_block, lin_block;

	(void)state;
	assert_non_null(dat);
	assert_non_null(gp);
	/* ... time_below memory_below: the last two columns */
	assert_int_equal(dat_rows(dat, "performer", rows, 2), 1);
	assert_float_equal(rows[0][1], 64, 1e-9);
	assert_float_equal(rows[0][12], 1, 0);
	assert_float_equal(rows[0][13], 0, 0);
	perf_row = (int)rows[0][0];
	assert_int_equal(dat_rows(dat, "linear", rows, 2), 1);
	assert_float_equal(rows[0][12], 0, 0);
	assert_float_equal(rows[0][13], 0, 0);
	perf_block = dat_block(dat, "performer");
	lin_block = dat_block(dat, "linear");

	time_part = gp_part(gp, "set title \"time", "set title \"memory");
	memory_part = gp_part(gp, "set title \"memory", "set title \"scaling");
	/* time: performer's arrow and label on its row, no bar; linear's bar */
	snprintf(want, sizeof(want), "from 64, %d to ", perf_row);
	assert_non_null(strstr(time_part, want));
	snprintf(want, sizeof(want), "\"< 64\" at 64, %d ", perf_row);
	assert_non_null(strstr(time_part, want));
	snprintf(want, sizeof(want), "index %d using (", perf_block);
	assert_null(strstr(time_part, want));
	snprintf(want, sizeof(want), "index %d using (", lin_block);
	assert_non_null(strstr(time_part, want));
	/* memory: performer crosses at 90, a bar and no arrow */
	snprintf(want, sizeof(want), "index %d using (", perf_block);
	assert_non_null(strstr(memory_part, want));
	snprintf(want, sizeof(want), "from 64, %d to ", perf_row);
	assert_null(strstr(memory_part, want));
	/* the arrow has room to point left: the axis starts well below 64 */
	x0 = strstr(time_part, "set xrange [");
	assert_non_null(x0);
	assert_true(strtod(x0 + strlen("set xrange ["), NULL) < 64 / 1.5);
	/* its own legend entry */
	assert_non_null(strstr(gp, "\"cheaper at every measured length (< 64)\""));
	free(time_part);
	free(memory_part);
	free(dat);
	free(gp);
}

/* Points of a pareto .dat: every variant block, then the front. */
struct front_point {
	double latency, accuracy;
};

static int read_front(const char *dat, struct front_point *front, int max)
{
	const char *p = strstr(dat, "# Pareto front");
	int n = 0;

	assert_non_null(p);
	while ((p = strchr(p, '\n')) && *++p && n < max) {
		if (*p == '#')
			continue;
		if (sscanf(p, "%lf %lf", &front[n].latency, &front[n].accuracy) == 2)
			n++;
	}
	return n;
}

/* The front is exactly the points no other point beats in both latency and accuracy. */
static void test_pareto_front_is_the_undominated_points(void **state)
{
	static const char *const variants[] = {
		"vanilla", "flash", "local", "linear", "efficient", "performer", "cosformer",
		"probsparse", "nystrom", "lara", "abc", "longshort", "s4d",
	};
	struct front_point pts[16], front[16];
	int n_pts = 0, n_front;
	char *dat = slurp_file(path_in(plots, "pareto-ns.dat"), NULL);
	double rows[2][DAT_COLS];

	(void)state;
	assert_non_null(dat);
	/* the default length: the largest speed length of the run */
	assert_non_null(strstr(dat, "median latency at N = 128"));
	for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++)
		if (dat_rows(dat, variants[v], rows, 2) == 1) {
			pts[n_pts].latency = rows[0][0];
			pts[n_pts].accuracy = rows[0][1];
			n_pts++;
		}
	/* the variants with recall cells: vanilla, linear, local */
	assert_int_equal(n_pts, 3);
	n_front = read_front(dat, front, 16);
	assert_true(n_front >= 1);
	for (int i = 0; i < n_pts; i++) {
		bool dominated = false, on_front = false;

		for (int j = 0; j < n_pts; j++)
			if (j != i && pts[j].latency <= pts[i].latency &&
			    pts[j].accuracy >= pts[i].accuracy &&
			    (pts[j].latency < pts[i].latency || pts[j].accuracy > pts[i].accuracy))
				dominated = true;
		for (int k = 0; k < n_front; k++)
			if (front[k].latency == pts[i].latency && front[k].accuracy == pts[i].accuracy)
				on_front = true;
		assert_int_equal(on_front, !dominated);
	}
	free(dat);
}

/* The number after `key` in text, which must be there. */
static double number_after(const char *text, const char *key)
{
	const char *at = strstr(text, key);

	if (!at)
		fail_msg("no '%s'", key);
	return strtod(at + strlen(key), NULL);
}

/* Whether a and b agree to 1e-8 of b: what %.9g keeps of a double. */
static bool close_to(double a, double b)
{
	return fabs(a - b) <= 1e-8 * fabs(b);
}

/*
 * roofline-ns: every variant with a rate on ns has its point, at its largest N, from the
 * stored cells; the roof is at the run's stored SGEMM rate and triad bandwidth, in the
 * data (the memory roof's slope, the ridge, the compute roof) and in the script.
 */
static void test_roofline_places_every_variant_under_the_stored_roofs(void **state)
{
	char *dat = slurp_file(path_in(plots, "roofline-ns.dat"), NULL);
	char *gp = slurp_file(path_in(plots, "roofline-ns.gp"), NULL);
	double rows[2][DAT_COLS], peak, triad, roof[3][2];
	int variants = 0, blocks = 0;
	char label[200], core[64];
	const char *at;
	sqlite3_stmt *st;
	sqlite3 *h;

	(void)state;
	assert_non_null(dat);
	assert_non_null(gp);
	assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, "SELECT sgemm_gflops, triad_gbps, blas_config"
					    " FROM runs WHERE id = 1", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	peak = sqlite3_column_double(st, 0);
	triad = sqlite3_column_double(st, 1);
	/* "OpenBLAS 0.3.21 ... (core Haswell)": the kernels' name ends the string */
	at = strstr((const char *)sqlite3_column_text(st, 2), "(core ");
	assert_non_null(at);
	snprintf(core, sizeof(core), "%s", at + strlen("(core "));
	assert_non_null(strchr(core, ')'));
	*strchr(core, ')') = '\0';
	sqlite3_finalize(st);
	assert_true(peak > 0 && triad > 0);

	/* the roofs at the stored values */
	assert_true(close_to(number_after(dat, "sgemm_gflops = "), peak));
	assert_true(close_to(number_after(dat, "triad_gbps = "), triad));
	assert_true(close_to(number_after(dat, "ridge point: "), peak / triad));
	at = strstr(dat, "# roof:");
	assert_non_null(at);
	at = strchr(strchr(at, '\n') + 1, '\n') + 1;	/* past the header's two lines */
	for (int r = 0; r < 3; r++) {
		char *end;

		roof[r][0] = strtod(at, &end);
		roof[r][1] = strtod(end, &end);
		at = end + 1;
	}
	assert_true(close_to(roof[0][1] / roof[0][0], triad));
	assert_true(close_to(roof[1][0], peak / triad) && close_to(roof[1][1], peak));
	assert_true(close_to(roof[2][1], peak) && roof[2][0] > roof[1][0]);
	assert_true(close_to(number_after(gp, "\tpeak = "), peak));
	assert_true(close_to(number_after(gp, "\tbandwidth = "), triad));
	/* the compute roof says whose SGEMM it is: a narrow kernel's rate is no machine limit */
	snprintf(label, sizeof(label), peak >= 100 ? "\"SGEMM %.0f GFLOP/s (OpenBLAS %s)\"" :
		 "\"SGEMM %.3g GFLOP/s (OpenBLAS %s)\"", peak, core);
	assert_non_null(strstr(gp, label));
	snprintf(label, sizeof(label), triad >= 100 ? "\"triad %.0f GB/s\"" :
		 "\"triad %.3g GB/s\"", triad);
	assert_non_null(strstr(gp, label));

	/* every variant: one point, at its largest N, named beside it */
	assert_int_equal(sqlite3_prepare_v2(h, "SELECT variant, max(n) FROM results"
		" WHERE run_id = 1 AND task = 'speed' AND pattern = 'ns' AND status = 'ok'"
		" AND gflops > 0 AND intensity > 0 GROUP BY variant", -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		int n = sqlite3_column_int(st, 1);
		sqlite3_stmt *cell;

		assert_int_equal(dat_rows(dat, name, rows, 2), 1);
		assert_int_equal((int)rows[0][2], n);
		assert_int_equal(sqlite3_prepare_v2(h, "SELECT avg(intensity), avg(gflops)"
			" FROM results WHERE run_id = 1 AND task = 'speed' AND pattern = 'ns'"
			" AND status = 'ok' AND variant = ?1 AND n = ?2", -1, &cell, NULL),
			SQLITE_OK);
		sqlite3_bind_text(cell, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int(cell, 2, n);
		assert_int_equal(sqlite3_step(cell), SQLITE_ROW);
		assert_true(close_to(rows[0][0], sqlite3_column_double(cell, 0)));
		assert_true(close_to(rows[0][1], sqlite3_column_double(cell, 1)));
		sqlite3_finalize(cell);
		snprintf(label, sizeof(label), "set label \"%s\" at graph ", name);
		assert_non_null(strstr(gp, label));
		variants++;
	}
	sqlite3_finalize(st);
	for (at = dat; (at = strstr(at, "# variant ")); at++)
		blocks++;
	assert_int_equal(blocks, variants);
	/* the tiny run has every variant on speed, vanilla and flash among them */
	assert_true(variants > 20);
	assert_int_equal(dat_rows(dat, "vanilla", rows, 2), 1);
	assert_int_equal(dat_rows(dat, "flash", rows, 2), 1);
	sqlite3_close(h);
	free(dat);
	free(gp);
}

/* Every legend lies in a band above the panels: no panel reaches into it. */
static void test_legends_sit_above_every_panel(void **state)
{
	(void)state;
	for (size_t i = 0; i < FIGURES; i++) {
		char *gp = slurp_file(figure_file(plots, figures[i], "gp"), NULL);
		char *legend, *p;
		double band = 1, top;

		assert_non_null(gp);
		legend = strstr(gp, "# the legend");
		if (legend) {
			p = strstr(legend, "set bmargin at screen ");
			assert_non_null(p);
			band = strtod(p + 22, NULL);
			*legend = '\0';
		}
		for (p = gp; (p = strstr(p, "set tmargin at screen ")); p++) {
			top = strtod(p + 22, NULL);
			assert_true(top <= band + 1e-9);
			assert_true(top > 0.2);
		}
		free(gp);
	}
}

static void test_a_variant_keeps_its_style_in_every_figure(void **state)
{
	char *latency = slurp_file(path_in(plots, "latency-ns.gp"), NULL);
	char *recall = slurp_file(path_in(plots, "recall-ns.gp"), NULL);
	char *speedup = slurp_file(path_in(plots, "speedup-ns.gp"), NULL);
	char *style = slurp_file(path_in(plots, "style.gp"), NULL);

	(void)state;
	assert_non_null(latency);
	assert_non_null(recall);
	assert_non_null(speedup);
	assert_non_null(style);
	/* vanilla is the registry's first variant and linear its fourth, everywhere */
	assert_non_null(strstr(style, "set style line 1 lc rgb \"#0072B2\""));
	assert_non_null(strstr(latency, "index 0 using 1:2:3:4 with yerrorlines ls 1 notitle"));
	assert_non_null(strstr(recall, "index 0 using 1:2 with linespoints ls 1 notitle"));
	assert_non_null(strstr(latency, "with yerrorlines ls 4 notitle"));
	assert_non_null(strstr(recall, "with linespoints ls 4 notitle"));
	assert_non_null(strstr(speedup, "with yerrorlines ls 4 notitle"));
	/* the legend names the variant beside its own sample */
	assert_non_null(strstr(latency, "\"vanilla\" at screen"));
	free(latency);
	free(recall);
	free(speedup);
	free(style);
}

static void test_column_size_is_3_5_inches(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	char dir[300], *style;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/column", tmpdir);
	run(o, "plot", "--db", db, "--out", dir, "--format", "png", "--size", "column",
	    "--pareto-length", "64", NULL);
	assert_int_equal(o->status, 0);
	style = slurp_file(path_in(dir, "style.gp"), NULL);
	assert_non_null(style);
	assert_non_null(strstr(style, "width = 3.5"));
	assert_int_equal(assert_valid_png(path_in(dir, "latency-ns.png")), 1050);
	assert_int_equal(assert_valid_png(path_in(dir, "efficiency-ns.png")), 1050);
	free(style);
	style = slurp_file(path_in(dir, "pareto-ns.dat"), NULL);
	assert_non_null(style);
	assert_non_null(strstr(style, "median latency at N = 64"));
	free(style);
	free(o);
}

static void test_format_subset_writes_only_those(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	char dir[300];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/svg-only", tmpdir);
	run(o, "plot", "--db", db, "--out", dir, "--format", "svg", NULL);
	assert_int_equal(o->status, 0);
	assert_true(exists(path_in(dir, "latency-ns.svg")));
	assert_true(exists(path_in(dir, "speedup-ns.svg")));
	assert_false(exists(path_in(dir, "latency-ns.pdf")));
	assert_false(exists(path_in(dir, "latency-ns.png")));
	free(o);
}

/* Runs a two-variant speed sweep of `repeats` samples per cell into db_name, plots it. */
static char *plot_speed_sweep(const char *db_name, const char *repeats)
{
	static const char suite[] =
		"task,variants,patterns,lengths,dims,heads,kv_heads,batch,regimes\n"
		"speed,vanilla linear,ns,32 64,16,1,,1,\n";
	struct outcome *o = malloc(sizeof(*o));
	char path[300], dir[300];
	char *dat;
	FILE *f;

	assert_non_null(o);
	f = fopen(path_in(tmpdir, "sweep.csv"), "w");
	assert_non_null(f);
	fputs(suite, f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/%s.db", tmpdir, db_name);
	snprintf(dir, sizeof(dir), "%s/%s", tmpdir, db_name);
	/* --min-time 0 in one round: exactly `repeats` samples per cell */
	run(o, "run", "--suite", path_in(tmpdir, "sweep.csv"), "--db", path, "--repeats", repeats,
	    "--min-time", "0", "--rounds", "1", "--threads", "1", "-q", NULL);
	assert_int_equal(o->status, 0);
	run(o, "plot", "--db", path, "--out", dir, "--format", "svg", NULL);
	assert_int_equal(o->status, 0);
	free(o);
	dat = slurp_file(path_in(dir, "latency-ns.dat"), NULL);
	assert_non_null(dat);
	return dat;
}

/*
 * Error bars from 3 samples are [min, max], which covers the median with 1 - 2 / 2^3 =
 * 75%, and the figure's data says so; from 6 samples they reach 95% and nothing is said.
 */
static void test_latency_data_names_intervals_below_95_percent(void **state)
{
	char *dat = plot_speed_sweep("three", "3");
	double rows[8][DAT_COLS];

	(void)state;
	/* 2 variants x 2 lengths */
	assert_non_null(strstr(dat, "\n# 4 cell(s) had too few samples for a 95% interval: their"
			       " [min, max] covers the median with 75% at the least\n"));
	assert_int_equal(dat_rows(dat, "vanilla", rows, 8), 2);
	for (int r = 0; r < 2; r++)
		assert_true(rows[r][2] <= rows[r][1] && rows[r][1] <= rows[r][3]);
	free(dat);
	dat = plot_speed_sweep("six", "6");
	assert_null(strstr(dat, "too few samples"));
	assert_int_equal(dat_rows(dat, "linear", rows, 8), 2);
	free(dat);
}

/*
 * A speed cell marked unstable (its rounds disagreed) is ringed in the latency figure:
 * column 5 of its row, a note naming it in the data, a legend entry in the script.
 */
static void test_latency_figure_rings_unstable_cells(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	char path[300], dir[300];
	double rows[8][DAT_COLS];
	char *dat, *gp;
	sqlite3 *h;

	(void)state;
	free(plot_speed_sweep("ringed", "3"));
	snprintf(path, sizeof(path), "%s/ringed.db", tmpdir);
	snprintf(dir, sizeof(dir), "%s/ringed-again", tmpdir);
	assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, "INSERT OR REPLACE INTO metrics (cell_id, name, value,"
				      " unit) SELECT id, 'unstable', 1, '' FROM cells WHERE"
				      " variant = 'vanilla' AND n = 64", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(h);
	run(o, "plot", "--db", path, "--out", dir, "--format", "svg", NULL);
	assert_int_equal(o->status, 0);
	dat = slurp_file(path_in(dir, "latency-ns.dat"), NULL);
	gp = slurp_file(path_in(dir, "latency-ns.gp"), NULL);
	assert_non_null(dat);
	assert_non_null(gp);
	assert_non_null(strstr(dat, "\n#   vanilla at N = 64\n"));
	assert_null(strstr(dat, "linear at N ="));
	assert_int_equal(dat_rows(dat, "vanilla", rows, 8), 2);
	assert_float_equal(rows[0][4], 0, 0);	/* N = 32 */
	assert_float_equal(rows[1][4], 1, 0);	/* N = 64 */
	assert_int_equal(dat_rows(dat, "linear", rows, 8), 2);
	assert_float_equal(rows[0][4] + rows[1][4], 0, 0);
	assert_non_null(strstr(gp, "unstable: rounds disagree"));
	assert_non_null(strstr(gp, "ls ls_unstable"));
	free(dat);
	free(gp);
	free(o);
}

static void test_bad_input_exits_2_with_one_line(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	char empty[300], dull[300], nowhere[300];
	FILE *f;

	(void)state;
	snprintf(empty, sizeof(empty), "%s/empty.db", tmpdir);
	snprintf(dull, sizeof(dull), "%s/dull.db", tmpdir);
	snprintf(nowhere, sizeof(nowhere), "%s/nowhere", tmpdir);
	run(o, "plot", "--db", db, "--out", nowhere, "--format", "bmp", NULL);
	assert_int_equal(o->status, 2);
	assert_one_line(o);
	assert_non_null(strstr(o->err, "'bmp'"));
	run(o, "plot", "--db", db, "--out", nowhere, "--format", "pdf,", NULL);
	assert_int_equal(o->status, 2);
	run(o, "plot", "--db", db, "--out", nowhere, "--size", "poster", NULL);
	assert_int_equal(o->status, 2);
	assert_one_line(o);
	assert_non_null(strstr(o->err, "'poster'"));
	run(o, "plot", "--db", db, "--out", nowhere, "--pareto-length", "0", NULL);
	assert_int_equal(o->status, 2);
	assert_one_line(o);
	run(o, "plot", "--db", db, "--out", nowhere, "--pareto-length", "1e3", NULL);
	assert_int_equal(o->status, 2);
	/* a length or a baseline the run does not have: said, and nothing written */
	run(o, "plot", "--db", db, "--out", nowhere, "--pareto-length", "100", NULL);
	assert_int_equal(o->status, 2);
	assert_one_line(o);
	assert_non_null(strstr(o->err, "no speed cells at N = 100"));
	assert_non_null(strstr(o->err, "64, 128"));
	run(o, "plot", "--db", db, "--out", nowhere, "--baseline", "nosuch", NULL);
	assert_int_equal(o->status, 2);
	assert_one_line(o);
	assert_non_null(strstr(o->err, "baseline 'nosuch'"));
	assert_false(exists(nowhere));
	run(o, "plot", "--db", db, "--out", nowhere, "--run", "99", NULL);
	assert_int_equal(o->status, 2);
	assert_one_line(o);
	assert_non_null(strstr(o->err, "no run 99"));
	run(o, "plot", "--db", db, "--out", nowhere, "--run", "one", NULL);
	assert_int_equal(o->status, 2);
	run(o, "plot", "--db", path_in(tmpdir, "missing.db"), "--out", nowhere, NULL);
	assert_int_equal(o->status, 2);
	assert_one_line(o);
	/* an empty file is an empty database: no runs to plot */
	f = fopen(empty, "w");
	assert_non_null(f);
	fclose(f);
	run(o, "plot", "--db", empty, "--out", nowhere, NULL);
	assert_int_equal(o->status, 2);
	assert_one_line(o);
	/* a run with nothing plottable: an error, and no empty figures */
	f = fopen(path_in(tmpdir, "dull.csv"), "w");
	assert_non_null(f);
	fputs(dull_suite, f);
	fclose(f);
	run(o, "run", "--suite", path_in(tmpdir, "dull.csv"), "--db", dull, "--repeats", "2",
	    "--min-time", "0.001", "--threads", "1", "-q", NULL);
	assert_int_equal(o->status, 0);
	run(o, "plot", "--db", dull, "--out", nowhere, NULL);
	assert_int_equal(o->status, 2);
	assert_one_line(o);
	assert_non_null(strstr(o->err, "no successful speed, fidelity, passkey or recall"));
	assert_false(exists(nowhere));
	free(o);
}

static void test_missing_gnuplot_is_named(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	const char *path = getenv("PATH");
	char *saved = path ? strdup(path) : NULL, bare[300];

	(void)state;
	/* a PATH of one empty directory: no gnuplot anywhere */
	snprintf(bare, sizeof(bare), "%s/bare", tmpdir);
	assert_int_equal(mkdir(bare, 0755), 0);
	setenv("PATH", bare, 1);
	run(o, "plot", "--db", db, "--out", path_in(tmpdir, "nowhere"), NULL);
	if (saved)
		setenv("PATH", saved, 1);
	free(saved);
	assert_int_equal(o->status, 2);
	assert_one_line(o);
	assert_non_null(strstr(o->err, "gnuplot not found: install the 'gnuplot-nox' package"));
	assert_false(exists(path_in(tmpdir, "nowhere")));
	free(o);
}

/* A copy of the source tree's plots/ in tmpdir/NAME; its path in dir. */
static void copy_plots(const char *name, char *dir, size_t len)
{
	char cmd[1024];

	snprintf(dir, len, "%s/%s", tmpdir, name);
	snprintf(cmd, sizeof(cmd), "cp -r '%s' '%s'", ATTNBENCH_SOURCE_PLOTS, dir);
	assert_int_equal(system(cmd), 0);
}

/* Runs plot with $ATTNBENCH_PLOTS set to plots_dir, into out. */
static void run_with_plots(struct outcome *o, const char *plots_dir, const char *out)
{
	setenv("ATTNBENCH_PLOTS", plots_dir, 1);
	run(o, "plot", "--db", db, "--out", out, "--format", "png", NULL);
	unsetenv("ATTNBENCH_PLOTS");
}

/* The palette's first colour changed once in style.gp: vanilla takes it everywhere. */
static void test_editing_style_gp_restyles_every_figure(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	char dir[300], out[300], cmd[1200], *style, *gp;

	(void)state;
	copy_plots("restyled-plots", dir, sizeof(dir));
	snprintf(cmd, sizeof(cmd), "sed -i 's/\"#0072B2\", \"#E69F00\"/\"#123456\", \"#E69F00\"/'"
		 " '%s/style.gp'", dir);
	assert_int_equal(system(cmd), 0);
	snprintf(out, sizeof(out), "%s/restyled", tmpdir);
	run_with_plots(o, dir, out);
	assert_int_equal(o->status, 0);
	style = slurp_file(path_in(out, "style.gp"), NULL);
	assert_non_null(style);
	assert_non_null(strstr(style, "set style line 1 lc rgb \"#123456\""));
	assert_null(strstr(style, "set style line 1 lc rgb \"#0072B2\""));
	free(style);
	for (size_t i = 0; i < FIGURES; i++)
		assert_valid_png(figure_file(out, figures[i], "png"));
	/* the figure draws vanilla with style 1, which style.gp now colours #123456 */
	gp = slurp_file(path_in(out, "latency-ns.gp"), NULL);
	assert_non_null(gp);
	assert_non_null(strstr(gp, "with yerrorlines ls 1 notitle"));
	free(gp);
	free(o);
}

/* No style.gp, or no template for a figure: exit 2 and one line naming the file. */
static void test_missing_template_exits_2_with_one_line(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	char dir[300], out[300], path[400];

	(void)state;
	copy_plots("partial-plots", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/recall.gp", dir);
	assert_int_equal(unlink(path), 0);
	snprintf(out, sizeof(out), "%s/partial", tmpdir);
	run_with_plots(o, dir, out);
	assert_int_equal(o->status, 2);
	assert_one_line(o);
	assert_non_null(strstr(o->err, "cannot read template '"));
	assert_non_null(strstr(o->err, "recall.gp'"));
	snprintf(path, sizeof(path), "%s/style.gp", dir);
	assert_int_equal(unlink(path), 0);
	snprintf(out, sizeof(out), "%s/unstyled", tmpdir);
	run_with_plots(o, dir, out);
	assert_int_equal(o->status, 2);
	assert_one_line(o);
	assert_non_null(strstr(o->err, "style.gp'"));
	/* found missing before anything is written */
	assert_false(exists(out));
	free(o);
}

/* The names in dir that begin with prefix: their count. */
static int count_named(const char *dir, const char *prefix)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += !strncmp(e->d_name, prefix, strlen(prefix));
	closedir(d);
	return n;
}

/*
 * A plot that fails on a late figure (a template gnuplot rejects) changes nothing in the
 * output folder: the figures of the last good plot stay byte for byte, none of the failed
 * plot's files are there, and its script and gnuplot's log stay in the staging folder the
 * message names. A plot that succeeds leaves no staging folder.
 */
static void test_a_failed_plot_leaves_the_last_figures(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	char dir[300], out[300], cmd[1200], stage[400];
	size_t before_len, after_len, log_len;
	char *before, *after, *log, *at;

	(void)state;
	snprintf(out, sizeof(out), "%s/kept", tmpdir);
	run(o, "plot", "--db", db, "--out", out, "--format", "png", NULL);
	assert_int_equal(o->status, 0);
	assert_int_equal(count_named(out, ".plot-"), 0);
	before = slurp_file(path_in(out, "recall-ns.png"), &before_len);
	assert_non_null(before);
	assert_int_equal(unlink(path_in(out, "latency-ns.png")), 0);

	copy_plots("broken-plots", dir, sizeof(dir));
	snprintf(cmd, sizeof(cmd), "sed -i 's/^\tplot {{lines}}/\tplot {{lines}}, no_such(1)/'"
		 " '%s/recall.gp'", dir);
	assert_int_equal(system(cmd), 0);
	run_with_plots(o, dir, out);
	assert_int_equal(o->status, 2);
	assert_one_line(o);
	assert_non_null(strstr(o->err, "gnuplot failed on "));
	assert_non_null(strstr(o->err, "recall-ns.gp (see recall-ns.log there"));

	/* the earlier figures of the failed plot were drawn, but only in the staging folder */
	assert_false(exists(path_in(out, "latency-ns.png")));
	after = slurp_file(path_in(out, "recall-ns.png"), &after_len);
	assert_non_null(after);
	assert_int_equal(after_len, before_len);
	assert_memory_equal(after, before, before_len);
	assert_int_equal(count_named(out, ".plot-"), 1);
	at = strstr(o->err, "gnuplot failed on ") + strlen("gnuplot failed on ");
	snprintf(stage, sizeof(stage), "%.*s", (int)(strstr(at, "/recall-ns.gp") - at), at);
	assert_true(exists(path_in(stage, "latency-ns.png")));
	log = slurp_file(path_in(stage, "recall-ns.log"), &log_len);
	assert_non_null(log);
	assert_non_null(strstr(log, "no_such"));
	free(log);
	free(before);
	free(after);
	free(o);
}

/*
 * Stored text that gnuplot would run, or that would end a line, a string or a comment,
 * redirect the output or start a macro, if a script took it for code.
 */
static const char *const hostile[] = {
	"x\" . system(\"touch PWNED\") . \"",
	"`touch PWNED`",
	"a\nset output \"/tmp/evil\"\n",
	"'; !touch PWNED; '",
	"x' . system('touch PWNED') . '",
	"back\\slash\\",
	"# hash @evil $data {{name}} %s%n",
	"line\r\n!touch PWNED\n# ",
	")\"; system \"touch PWNED\"; print (\"",
	"\x7f\x01 ctrl\ttab \xc3\xa9 \xe6\xb3\xa8",
};
#define HOSTILE (sizeof(hostile) / sizeof(hostile[0]))

static void exec_sql(sqlite3 *h, const char *sql, const char *a, const char *b)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(h));
	if (a)
		sqlite3_bind_text(st, 1, a, -1, SQLITE_TRANSIENT);
	if (b)
		sqlite3_bind_text(st, 2, b, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(st) != SQLITE_DONE)
		fail_msg("%s: %s", sql, sqlite3_errmsg(h));
	sqlite3_finalize(st);
}

/* The distinct values of sql's one column, up to max, each malloc()ed. */
static int distinct_texts(sqlite3 *h, const char *sql, char **out, int max)
{
	sqlite3_stmt *st;
	int n = 0;

	assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW && n < max)
		out[n++] = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return n;
}

/*
 * A copy of the tiny run's database at path with hostile text in its stored strings:
 * variant names (in cells and run_metrics alike, so every figure still has them),
 * regimes, params, reasons, units and every text column of runs but its times and
 * status. With every_column, also tasks, patterns and metric names, which leaves nothing
 * to plot. vanilla_out gets vanilla's new name.
 */
static void make_hostile_db(const char *path, bool every_column, char *vanilla_out,
			    size_t len)
{
	char *names[128], sql[512], name[128];
	sqlite3 *h;
	int n;

	unlink(path);
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	exec_sql(h, "VACUUM INTO ?1", path, NULL);
	sqlite3_close(h);
	assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
	exec_sql(h, "BEGIN", NULL, NULL);
	n = distinct_texts(h, "SELECT DISTINCT variant FROM cells ORDER BY variant", names, 128);
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%s %d", hostile[i % HOSTILE], i);
		if (!strcmp(names[i], "vanilla"))
			snprintf(vanilla_out, len, "%s", name);
		exec_sql(h, "UPDATE cells SET variant = ?1 WHERE variant = ?2", name, names[i]);
		exec_sql(h, "UPDATE run_metrics SET variant = ?1 WHERE variant = ?2", name,
			 names[i]);
		exec_sql(h, "UPDATE run_metrics SET baseline = ?1 WHERE baseline = ?2", name,
			 names[i]);
		free(names[i]);
	}
	n = distinct_texts(h, "SELECT DISTINCT regime FROM cells WHERE regime IS NOT NULL",
			   names, 128);
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%s %d", hostile[(i + 3) % HOSTILE], i);
		exec_sql(h, "UPDATE cells SET regime = ?1 WHERE regime = ?2", name, names[i]);
		free(names[i]);
	}
	exec_sql(h, "UPDATE cells SET params = json_object('evil', ?1), reason = ?2",
		 hostile[0], hostile[1]);
	exec_sql(h, "UPDATE metrics SET unit = ?1", hostile[2], NULL);
	exec_sql(h, "UPDATE run_metrics SET unit = ?1", hostile[6], NULL);
	n = distinct_texts(h, every_column ?
			   "SELECT m.name || ' ' || p.name FROM sqlite_master m,"
			   " pragma_table_info(m.name) p WHERE m.type = 'table' AND p.type = 'TEXT'"
			   " AND p.name NOT IN ('started', 'finished', 'status')" :
			   "SELECT 'runs ' || name FROM pragma_table_info('runs') WHERE type ="
			   " 'TEXT' AND name NOT IN ('started', 'finished', 'status', 'suite_id')",
			   names, 128);
	for (int i = 0; i < n; i++) {
		char *column = strchr(names[i], ' ');

		*column++ = '\0';
		snprintf(sql, sizeof(sql), "UPDATE \"%s\" SET \"%s\" = ?1 || rowid", names[i],
			 column);
		/* tables without rowid: every row the same text */
		if (!strcmp(names[i], "metrics") || !strcmp(names[i], "run_metrics") ||
		    !strcmp(names[i], "plugins") || !strcmp(names[i], "inputs") ||
		    !strcmp(names[i], "shards"))
			snprintf(sql, sizeof(sql), "UPDATE OR IGNORE \"%s\" SET \"%s\" = ?1",
				 names[i], column);
		exec_sql(h, sql, hostile[i % HOSTILE], NULL);
		free(names[i]);
	}
	exec_sql(h, "COMMIT", NULL, NULL);
	sqlite3_close(h);
}

/* A run from before the triad bandwidth was measured: the other figures, no roofline. */
static void test_a_run_without_the_bandwidth_has_no_roofline(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	char older[300], dir[300];
	sqlite3 *h;

	(void)state;
	snprintf(older, sizeof(older), "%s/no-triad.db", tmpdir);
	snprintf(dir, sizeof(dir), "%s/no-triad", tmpdir);
	unlink(older);
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	exec_sql(h, "VACUUM INTO ?1", older, NULL);
	sqlite3_close(h);
	assert_int_equal(sqlite3_open(older, &h), SQLITE_OK);
	exec_sql(h, "UPDATE runs SET triad_gbps = NULL", NULL, NULL);
	sqlite3_close(h);
	run(o, "plot", "--db", older, "--out", dir, "--format", "svg", NULL);
	assert_int_equal(o->status, 0);
	assert_string_equal(o->err, "");
	assert_true(exists(path_in(dir, "latency-ns.svg")));
	assert_true(exists(path_in(dir, "pareto-ns.svg")));
	assert_int_equal(count_named(dir, "roofline-"), 0);
	free(o);
}

/* Fails if a hostile string ran: a file PWNED in dir, the test's folders, or /tmp/evil. */
static void assert_nothing_ran(const char *dir, bool evil_before)
{
	char cwd[380];

	assert_int_equal(access(path_in(dir, "PWNED"), F_OK), -1);
	assert_int_equal(access(path_in(tmpdir, "PWNED"), F_OK), -1);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(access(path_in(cwd, "PWNED"), F_OK), -1);
	if (!evil_before)
		assert_int_equal(access("/tmp/evil", F_OK), -1);
}

/*
 * The data lines of a .dat (not comments, not blank): no '#', quote or backquote, and
 * within a block the same number of whitespace-separated fields.
 */
static void assert_data_lines_parse(const char *path)
{
	char *dat = slurp_file(path, NULL), *line, *save = NULL;
	int fields_in_block = -1, blank = 0;

	assert_non_null(dat);
	for (line = strtok_r(dat, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int fields = 0;

		/* strtok_r skips empty lines: a block starts after a comment header */
		if (line[0] == '#') {
			blank = 1;
			continue;
		}
		if (blank)
			fields_in_block = -1;
		blank = 0;
		if (strpbrk(line, "#\"`"))
			fail_msg("%s: data line '%s'", path, line);
		for (char *p = line; *p; ) {
			p += strspn(p, " \t");
			if (*p)
				fields++;
			p += strcspn(p, " \t");
		}
		if (fields_in_block >= 0 && fields != fields_in_block)
			fail_msg("%s: '%s' has %d fields, not %d", path, line, fields,
				 fields_in_block);
		fields_in_block = fields;
	}
	free(dat);
}

/*
 * Blanks what gnuplot reads as text, not code: the insides of strings, and comments (from
 * a '#' outside quotes to the line's end). What is left is what gnuplot would run.
 */
static void code_only(char *text)
{
	char quote = 0;

	for (char *p = text; *p; p++) {
		if (*p == '\n') {
			quote = 0;
		} else if (quote == '"' && *p == '\\' && p[1] && p[1] != '\n') {
			*p++ = ' ';
			*p = ' ';
		} else if (quote && *p == quote) {
			quote = 0;
		} else if (quote) {
			*p = ' ';
		} else if (*p == '"' || *p == '\'') {
			quote = *p;
		} else if (*p == '#') {
			while (*p && *p != '\n')
				*p++ = ' ';
			p--;
		}
	}
}

/*
 * Every script in dir: no stored text unescaped in it, and run again by hand in dir it
 * runs nothing; every data file parses. Returns the number of figure scripts.
 */
static int check_written_files(const char *dir, bool evil_before)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	int scripts = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		char *text;

		if (len > 4 && !strcmp(e->d_name + len - 4, ".dat")) {
			assert_data_lines_parse(path_in(dir, e->d_name));
			continue;
		}
		if (len < 4 || strcmp(e->d_name + len - 3, ".gp"))
			continue;
		text = slurp_file(path_in(dir, e->d_name), NULL);
		assert_non_null(text);
		/* stored text may stand in comments and strings, never in the code */
		code_only(text);
		assert_null(strchr(text, '`'));
		assert_null(strstr(text, "PWNED"));
		assert_null(strstr(text, "evil"));
		assert_null(strstr(text, "system"));
		free(text);
		if (strcmp(e->d_name, "style.gp"))
			scripts++;
		/* gnuplot may fail on a figure whose data a test removed; it must run nothing */
		run_gnuplot_in(dir, e->d_name);
		assert_nothing_ran(dir, evil_before);
	}
	closedir(d);
	return scripts;
}

static void test_stored_text_never_runs_in_plot_scripts(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	char hostile_db[300], out[300], vanilla[128], *gp;
	bool evil_before = !access("/tmp/evil", F_OK);
	sqlite3 *h;

	(void)state;
	snprintf(hostile_db, sizeof(hostile_db), "%s/hostile.db", tmpdir);
	make_hostile_db(hostile_db, false, vanilla, sizeof(vanilla));
	/* OpenBLAS's kernels reach the roofline's label only as a plain name */
	assert_int_equal(sqlite3_open(hostile_db, &h), SQLITE_OK);
	exec_sql(h, "UPDATE runs SET blas_config = ?1", "OpenBLAS (core Has\"well\" . system("
		 "\"touch PWNED\") . (\")", NULL);
	sqlite3_close(h);

	/* every figure is drawn, with the hostile names as text */
	snprintf(out, sizeof(out), "%s/hostile", tmpdir);
	run(o, "plot", "--db", hostile_db, "--out", out, NULL);
	assert_nothing_ran(out, evil_before);
	if (o->status)
		fail_msg("plot exited %d: %s", o->status, o->err);
	/* no baseline under its default name: no speedup-ns, speedup-cs, efficiency-ns */
	assert_int_equal(check_written_files(out, evil_before), FIGURES - 3);
	gp = slurp_file(path_in(out, "latency-ns.gp"), NULL);
	assert_non_null(gp);
	assert_non_null(strstr(gp, "\\140touch PWNED\\140"));
	assert_non_null(strstr(gp, "x\\\" . system(\\\"touch PWNED\\\") . \\\""));
	free(gp);
	gp = slurp_file(path_in(out, "roofline-ns.gp"), NULL);
	assert_non_null(gp);
	assert_non_null(strstr(gp, " GFLOP/s\""));
	assert_null(strstr(gp, "OpenBLAS"));
	free(gp);

	/* a hostile baseline named on the command line draws speed-up and efficiency */
	snprintf(out, sizeof(out), "%s/hostile-baseline", tmpdir);
	run(o, "plot", "--db", hostile_db, "--out", out, "--baseline", vanilla, NULL);
	assert_nothing_ran(out, evil_before);
	if (o->status)
		fail_msg("plot exited %d: %s", o->status, o->err);
	assert_true(exists(path_in(out, "speedup-ns.pdf")));
	assert_true(exists(path_in(out, "efficiency-ns.pdf")));
	assert_int_equal(check_written_files(out, evil_before), FIGURES);

	/* hostile tasks, patterns and metric names too: nothing to plot, or text */
	make_hostile_db(hostile_db, true, vanilla, sizeof(vanilla));
	snprintf(out, sizeof(out), "%s/hostile-all", tmpdir);
	run(o, "plot", "--db", hostile_db, "--out", out, NULL);
	assert_nothing_ran(out, evil_before);
	if (o->status) {
		assert_int_equal(o->status, 2);
		assert_one_line(o);
	}
	check_written_files(out, evil_before);
	free(o);
}

/* merge takes no row that import would refuse: exit 2, one line, OUT left as it was. */
static void test_merge_refuses_a_hostile_name_and_leaves_out_alone(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	char hostile_db[300], out[300], vanilla[128], *before, *after;
	size_t before_len = 0, after_len = 0;
	sqlite3 *h;

	(void)state;
	snprintf(hostile_db, sizeof(hostile_db), "%s/hostile-merge.db", tmpdir);
	make_hostile_db(hostile_db, false, vanilla, sizeof(vanilla));
	snprintf(out, sizeof(out), "%s/merge-out.db", tmpdir);
	unlink(out);
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	exec_sql(h, "VACUUM INTO ?1", out, NULL);
	sqlite3_close(h);
	before = slurp_file(out, &before_len);
	assert_non_null(before);
	run(o, "merge", out, hostile_db, NULL);
	assert_int_equal(o->status, 2);
	assert_one_line(o);
	assert_non_null(strstr(o->err, "hostile-merge.db', table cells, row 1, column 'variant': "));
	assert_non_null(strstr(o->err, "is not a name (1 to 64 letters"));
	after = slurp_file(out, &after_len);
	assert_non_null(after);
	assert_int_equal(after_len, before_len);
	assert_memory_equal(before, after, before_len);
	free(before);
	free(after);
	free(o);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plot_writes_every_figure_in_every_format),
		cmocka_unit_test(test_every_script_reruns_in_its_directory),
		cmocka_unit_test(test_speedup_is_the_ratio_of_median_samples),
		cmocka_unit_test(test_efficiency_bars_show_values_intervals_and_none),
		cmocka_unit_test(test_efficiency_below_range_is_an_arrow_not_a_bar),
		cmocka_unit_test(test_pareto_front_is_the_undominated_points),
		cmocka_unit_test(test_roofline_places_every_variant_under_the_stored_roofs),
		cmocka_unit_test(test_a_run_without_the_bandwidth_has_no_roofline),
		cmocka_unit_test(test_legends_sit_above_every_panel),
		cmocka_unit_test(test_a_variant_keeps_its_style_in_every_figure),
		cmocka_unit_test(test_column_size_is_3_5_inches),
		cmocka_unit_test(test_format_subset_writes_only_those),
		cmocka_unit_test(test_latency_data_names_intervals_below_95_percent),
		cmocka_unit_test(test_latency_figure_rings_unstable_cells),
		cmocka_unit_test(test_bad_input_exits_2_with_one_line),
		cmocka_unit_test(test_missing_gnuplot_is_named),
		cmocka_unit_test(test_editing_style_gp_restyles_every_figure),
		cmocka_unit_test(test_missing_template_exits_2_with_one_line),
		cmocka_unit_test(test_a_failed_plot_leaves_the_last_figures),
		cmocka_unit_test(test_stored_text_never_runs_in_plot_scripts),
		cmocka_unit_test(test_merge_refuses_a_hostile_name_and_leaves_out_alone),
	};

	if (argc < 2) {
		fprintf(stderr, "usage: test-plot ATTNBENCH\n");
		return 2;
	}
	binary = argv[1];
	return cmocka_run_group_tests(tests, setup, teardown);
}
