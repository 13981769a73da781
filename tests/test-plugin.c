/*
 * test-plugin.c - variants built outside the tree, through the program as a user meets
 * them: the template plugin listed, checked, run in a small suite (its path and the
 * SHA-256 of its bytes stored with every result, shown by list runs and report, kept by
 * merge), compared against vanilla; a resumed run refuses a rebuilt plugin; each broken
 * plugin refused in one line with exit 2, or, for a forward that segfaults, a crashed
 * cell. argv: the attnbench binary, the template plugin, then the broken plugins in the
 * order of tests/meson.build (wrong ABI, no entry, name clash, no forward, segv forward).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "run-binary.h"

enum { WRONG_ABI, NO_ENTRY, NAME_CLASH, NO_FORWARD, SEGV_FORWARD, BROKEN };

static const char *binary, *template_so, *broken_so[BROKEN];
static char tmpdir[] = "/tmp/attnbench-plugin-XXXXXX";

static void run(struct outcome *o, const char *arg, ...)
{
	va_list ap;

	va_start(ap, arg);
	run_binary(o, binary, tmpdir, arg, ap);
	va_end(ap);
}

static void scratch_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

/* One line on stderr holding want, exit status 2. */
static void assert_refused(const struct outcome *o, const char *want)
{
	const char *nl = strchr(o->err, '\n');

	if (o->status != 2 || !strstr(o->err, want) || !nl || nl[1])
		fail_msg("expected exit 2 and one line with '%s'; got %d: %s", want, o->status,
			 o->err);
}

/* The SHA-256 of a file by coreutils' sha256sum: not the program's own code. */
static void sha256_of(const char *path, char hex[65])
{
	char cmd[1200];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "sha256sum '%s'", path);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%64s", hex), 1);
	pclose(p);
}

/* The first column of the first row of sql on db, as text (empty when none). */
static void query_text(const char *db, const char *sql, char *buf, size_t len)
{
	sqlite3 *h;
	sqlite3_stmt *st;

	buf[0] = '\0';
	assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(h);
}

static void test_the_template_is_listed_with_its_file(void **state)
{
	struct outcome o;
	char real[4096], hex[65];

	(void)state;
	run(&o, "list", "variants", "--plugin", template_so, NULL);
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.out, "template   exact"));
	assert_non_null(realpath(template_so, real));
	sha256_of(template_so, hex);
	assert_non_null(strstr(o.out, real));
	assert_non_null(strstr(o.out, hex));
	/* the built-ins are all still there, and the plugin after them */
	assert_true(strstr(o.out, "vanilla") < strstr(o.out, "template   exact"));
}

static void test_the_template_passes_check(void **state)
{
	struct outcome o;

	(void)state;
	run(&o, "check", "template", "--plugin", template_so, NULL);
	if (o.status != 0)
		fail_msg("check template: %d\n%s%s", o.status, o.out, o.err);
	assert_non_null(strstr(o.out, "template"));
	assert_null(strstr(o.out, "FAILED"));
}

/* A suite with the plugin: every cell ok, provenance stored, shown, merged, compared. */
static void test_a_run_stores_what_ran_and_compares(void **state)
{
	char db[600], merged[600], real[4096], hex[65], got[4096];
	struct outcome o;

	(void)state;
	scratch_path(db, sizeof(db), "suite.db");
	/* --variants names the plugin's variant before --plugin loads it */
	run(&o, "run", "--suite", "quick", "--variants", "template,vanilla", "--tasks",
	    "fidelity,speed,causality,decode", "--lengths", "64", "--db", db, "-q",
	    "--plugin", template_so, NULL);
	if (o.status != 0)
		fail_msg("run: %d\n%s", o.status, o.err);
	query_text(db, "SELECT count(*) FROM results WHERE variant = 'template' AND status <> 'ok'",
		   got, sizeof(got));
	assert_string_equal(got, "0");
	query_text(db, "SELECT count(DISTINCT task) FROM results WHERE variant = 'template'",
		   got, sizeof(got));
	assert_string_equal(got, "4");
	assert_non_null(realpath(template_so, real));
	sha256_of(template_so, hex);
	query_text(db, "SELECT group_concat(DISTINCT plugin_path) FROM results"
		   " WHERE variant = 'template'", got, sizeof(got));
	assert_string_equal(got, real);
	query_text(db, "SELECT group_concat(DISTINCT plugin_sha256) FROM results"
		   " WHERE variant = 'template'", got, sizeof(got));
	assert_string_equal(got, hex);
	query_text(db, "SELECT count(plugin_sha256) FROM results WHERE variant = 'vanilla'",
		   got, sizeof(got));
	assert_string_equal(got, "0");

	run(&o, "list", "runs", "--db", db, NULL);
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.out, "plugin template: "));
	assert_non_null(strstr(o.out, hex));
	run(&o, "report", "--db", db, "--markdown", NULL);
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.out, hex));

	run(&o, "compare", "--db", db, "--baseline", "vanilla", "template", "--plugin",
	    template_so, NULL);
	if (o.status != 0)
		fail_msg("compare: %d\n%s%s", o.status, o.out, o.err);
	assert_non_null(strstr(o.out, "template"));

	/* merge keeps the provenance with the rows */
	scratch_path(merged, sizeof(merged), "merged.db");
	run(&o, "merge", merged, db, NULL);
	if (o.status != 0)
		fail_msg("merge: %d\n%s", o.status, o.err);
	query_text(merged, "SELECT group_concat(DISTINCT plugin_sha256) FROM results"
		   " WHERE variant = 'template'", got, sizeof(got));
	assert_string_equal(got, hex);
}

/* Resuming a run whose plugin file changed would mix two variants under one name. */
static void test_resume_refuses_a_changed_plugin(void **state)
{
	char db[600], copy[600], cmd[2000], before[64], after[64];
	struct outcome o;

	(void)state;
	scratch_path(db, sizeof(db), "resume.db");
	scratch_path(copy, sizeof(copy), "libmine.so");
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", template_so, copy);
	assert_int_equal(system(cmd), 0);
	run(&o, "run", "--suite", "quick", "--variants", "template", "--tasks", "fidelity",
	    "--db", db, "-q", "--plugin", copy, NULL);
	assert_int_equal(o.status, 0);
	snprintf(cmd, sizeof(cmd), "sqlite3 '%s' \"UPDATE runs SET status = 'interrupted';"
		 " DELETE FROM cells\"", db);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "printf 'x' >> '%s'", copy);	/* a rebuilt plugin */
	assert_int_equal(system(cmd), 0);
	query_text(db, "SELECT count(*) FROM runs", before, sizeof(before));
	run(&o, "run", "--resume", "--db", db, NULL);
	assert_refused(&o, "is not the file the run started with");
	query_text(db, "SELECT count(*) FROM cells", after, sizeof(after));
	assert_string_equal(after, "0");
}

static void test_broken_plugins_are_refused_in_one_line(void **state)
{
	static const struct {
		int which;
		const char *want;
	} cases[] = {
		{ WRONG_ABI, "built for variant ABI" },
		{ NO_ENTRY, "exports no function attnbench_variant()" },
		{ NAME_CLASH, "its variant 'vanilla' has the name of a built-in variant" },
		{ NO_FORWARD, "it has no forward function" },
	};
	char text[600], cmd[1200];
	struct outcome o;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		run(&o, "list", "variants", "--plugin", broken_so[cases[i].which], NULL);
		assert_refused(&o, cases[i].want);
		run(&o, "check", "--plugin", broken_so[cases[i].which], "vanilla", NULL);
		assert_refused(&o, cases[i].want);
	}
	run(&o, "list", "variants", "--plugin", "/nonexistent/libx.so", NULL);
	assert_refused(&o, "cannot load plugin '/nonexistent/libx.so'");
	scratch_path(text, sizeof(text), "not-a-plugin.so");
	snprintf(cmd, sizeof(cmd), "echo hello > '%s'", text);
	assert_int_equal(system(cmd), 0);
	run(&o, "list", "variants", "--plugin", text, NULL);
	assert_refused(&o, "not a loadable shared object");
	/* the same file twice is one plugin; a copy elsewhere is a second with the same name */
	run(&o, "list", "variants", "--plugin", template_so, "--plugin", template_so, NULL);
	assert_int_equal(o.status, 0);
	scratch_path(text, sizeof(text), "libtwin.so");
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", template_so, text);
	assert_int_equal(system(cmd), 0);
	run(&o, "list", "variants", "--plugin", template_so, "--plugin", text, NULL);
	assert_refused(&o, "has the name of a variant of another plugin");
}

/* A plugin that crashes in forward() crashes its cell, not the run. */
static void test_a_crashing_plugin_is_a_crashed_cell(void **state)
{
	char db[600], got[256];
	struct outcome o;

	(void)state;
	scratch_path(db, sizeof(db), "crash.db");
	run(&o, "run", "--plugin", broken_so[SEGV_FORWARD], "--suite", "quick", "--variants",
	    "broken,vanilla", "--tasks", "fidelity", "--patterns", "ns", "--db", db, "-q",
	    NULL);
	assert_int_equal(o.status, 1);
	query_text(db, "SELECT group_concat(DISTINCT status) FROM results WHERE variant = 'broken'",
		   got, sizeof(got));
	assert_string_equal(got, "crashed");
	query_text(db, "SELECT group_concat(DISTINCT status) FROM results WHERE variant = 'vanilla'",
		   got, sizeof(got));
	assert_string_equal(got, "ok");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_template_is_listed_with_its_file),
		cmocka_unit_test(test_the_template_passes_check),
		cmocka_unit_test(test_a_run_stores_what_ran_and_compares),
		cmocka_unit_test(test_resume_refuses_a_changed_plugin),
		cmocka_unit_test(test_broken_plugins_are_refused_in_one_line),
		cmocka_unit_test(test_a_crashing_plugin_is_a_crashed_cell),
	};
	char cmd[600];
	int failed;

	if (argc != 3 + BROKEN) {
		fprintf(stderr, "usage: %s ATTNBENCH TEMPLATE.so BROKEN.so x %d\n", argv[0],
			BROKEN);
		return 2;
	}
	binary = argv[1];
	template_so = argv[2];
	for (int i = 0; i < BROKEN; i++)
		broken_so[i] = argv[3 + i];
	if (!mkdtemp(tmpdir))
		return 2;
	failed = cmocka_run_group_tests(tests, NULL, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (!failed && system(cmd))
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return failed;
}
