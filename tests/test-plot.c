/*
 * test-plot.c - `attnbench plot` as a user meets it: a tiny run into a fresh database,
 * then every figure written as PDF, PNG and SVG with its script and data beside it, and
 * one-line exit-2 errors for an empty database, an unknown run and an unknown format.
 * argv[1] is the binary.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "run-binary.h"

#include <fcntl.h>
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
	static char paths[8][512];
	static int next;
	char *p = paths[next++ % 8], d[400];

	/* dir may be an earlier result of this function */
	snprintf(d, sizeof(d), "%s", dir);
	snprintf(p, 512, "%s/%s", d, name);
	return p;
}

/* The first len bytes of a file (fewer when it is shorter); the count read. */
static size_t head(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "rb");
	size_t got;

	if (!f)
		return 0;
	got = fread(buf, 1, len, f);
	fclose(f);
	return got;
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

static const char tiny_suite[] =
	"task,variants,patterns,lengths,dims,heads,kv_heads,batch,regimes\n"
	"speed,all,ns cs,64 128,16,2,,1,\n"
	"passkey,all,cs,64 128,16,1,,10,0 0.5 1\n"
	"recall,all,ns,128,64,1,,2,16 32 64\n";

static const char dull_suite[] =
	"task,variants,patterns,lengths,dims,heads,kv_heads,batch,regimes\n"
	"causality,all,cs,64,16,2,,1,\n";

static int setup(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	FILE *f;

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
	run(o, "run", "--suite", path_in(tmpdir, "tiny.csv"), "--db", db, "--repeats", "2",
	    "--min-time", "0", "--threads", "1", "-q", NULL);
	if (o->status != 0) {
		fprintf(stderr, "setup run failed (%d): %s\n", o->status, o->err);
		free(o);
		return -1;
	}
	free(o);
	return 0;
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
	static const char *const figures[] = {
		"latency-ns", "latency-cs", "memory-ns", "memory-cs", "passkey-cs", "recall-ns",
	};
	static const unsigned char png_magic[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	struct outcome *o = malloc(sizeof(*o));
	char name[64], buf[4096];
	size_t got;

	(void)state;
	run(o, "plot", "--db", db, "--out", plots, NULL);
	assert_int_equal(o->status, 0);
	assert_string_equal(o->err, "");
	assert_non_null(strstr(o->out, "6 figures of run 1"));
	assert_true(exists(path_in(plots, "style.gp")));
	for (size_t i = 0; i < sizeof(figures) / sizeof(figures[0]); i++) {
		snprintf(name, sizeof(name), "%s.pdf", figures[i]);
		assert_int_equal(head(path_in(plots, name), buf, 4), 4);
		assert_memory_equal(buf, "%PDF", 4);
		snprintf(name, sizeof(name), "%s.png", figures[i]);
		assert_int_equal(head(path_in(plots, name), buf, 8), 8);
		assert_memory_equal(buf, png_magic, 8);
		snprintf(name, sizeof(name), "%s.svg", figures[i]);
		got = head(path_in(plots, name), buf, sizeof(buf) - 1);
		buf[got] = '\0';
		assert_non_null(strstr(buf, "<svg"));
		snprintf(name, sizeof(name), "%s.gp", figures[i]);
		assert_true(exists(path_in(plots, name)));
		got = head(path_in(plots, name), buf, sizeof(buf) - 1);
		buf[got] = '\0';
		assert_non_null(strstr(buf, "load \"style.gp\""));
		snprintf(name, sizeof(name), "%s.dat", figures[i]);
		assert_true(exists(path_in(plots, name)));
		snprintf(name, sizeof(name), "%s.log", figures[i]);
		assert_false(exists(path_in(plots, name)));
	}
	/* patterns the run did not touch get no figure */
	assert_false(exists(path_in(plots, "latency-nc.pdf")));
	assert_false(exists(path_in(plots, "passkey-ns.dat")));
	assert_false(exists(path_in(plots, "recall-cs.gp")));
	free(o);
}

static void test_a_variant_keeps_its_style_in_every_figure(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	char latency[4096], recall[4096];
	size_t got;

	(void)state;
	run(o, "plot", "--db", db, "--out", plots, "--format", "png", NULL);
	assert_int_equal(o->status, 0);
	got = head(path_in(plots, "latency-ns.gp"), latency, sizeof(latency) - 1);
	latency[got] = '\0';
	got = head(path_in(plots, "recall-ns.gp"), recall, sizeof(recall) - 1);
	recall[got] = '\0';
	/* vanilla is the registry's first variant: line style 1 everywhere */
	assert_non_null(strstr(latency, "ls 1 title \"vanilla\""));
	assert_non_null(strstr(recall, "ls 1 title \"vanilla\""));
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
	assert_false(exists(path_in(dir, "latency-ns.pdf")));
	assert_false(exists(path_in(dir, "latency-ns.png")));
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
	    "--min-time", "0", "--threads", "1", "-q", NULL);
	assert_int_equal(o->status, 0);
	run(o, "plot", "--db", dull, "--out", nowhere, NULL);
	assert_int_equal(o->status, 2);
	assert_one_line(o);
	assert_non_null(strstr(o->err, "no successful speed, passkey or recall"));
	assert_false(exists(nowhere));
	free(o);
}

static void test_missing_gnuplot_is_named(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	const char *path = getenv("PATH");
	char *saved = path ? strdup(path) : NULL;

	(void)state;
	setenv("PATH", tmpdir, 1);
	run(o, "plot", "--db", db, "--out", path_in(tmpdir, "nowhere"), NULL);
	if (saved)
		setenv("PATH", saved, 1);
	free(saved);
	assert_int_equal(o->status, 2);
	assert_one_line(o);
	assert_non_null(strstr(o->err, "gnuplot not found: install the 'gnuplot-nox' package"));
	free(o);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plot_writes_every_figure_in_every_format),
		cmocka_unit_test(test_a_variant_keeps_its_style_in_every_figure),
		cmocka_unit_test(test_format_subset_writes_only_those),
		cmocka_unit_test(test_bad_input_exits_2_with_one_line),
		cmocka_unit_test(test_missing_gnuplot_is_named),
	};

	if (argc < 2) {
		fprintf(stderr, "usage: test-plot ATTNBENCH\n");
		return 2;
	}
	binary = argv[1];
	return cmocka_run_group_tests(tests, setup, teardown);
}
