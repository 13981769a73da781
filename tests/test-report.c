/*
 * test-report.c - `attnbench report` on a fixed small database built here through SQL
 * inserts with known metrics: the leaderboard's z-scores, compositional index, ranking and
 * delta computed independently in the test and compared with report_leaderboard() and
 * with the Markdown, LaTeX and text the binary prints (aligned pipes, booktabs rules,
 * escaped names, the causality mark, the efficiency lengths it computes and stores); and
 * exit-2 errors that leave the database as it was. argv[1] is the binary.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "run-binary.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "report.h"
#include "store.h"
#include "store-test.h"

/* cmocka's assert_float_equal compares in single precision: this one in double. */
#define assert_close(a, b, eps) do { \
	double a_ = (a), b_ = (b); \
	if (!(fabs(a_ - b_) <= (eps))) \
		fail_msg("%s = %.17g, expected %.17g (+- %g)", #a, a_, b_, (double)(eps)); \
} while (0)

static const char *binary;
static char tmpdir[] = "/tmp/attnbench-report-XXXXXX";
static char db_path[256];

static void run(struct outcome *o, const char *arg, ...)
{
	va_list ap;

	va_start(ap, arg);
	run_binary(o, binary, tmpdir, arg, ap);
	va_end(ap);
}

/* ---- the fixed database ---- */

enum { VANILLA, FLASH, APPROX, SPEEDY, VARIANTS };
static const char *const names[VARIANTS] = { "vanilla", "flash", "my_approx", "speedy" };

/* pattern ns: fidelity at two regimes (speedy has no fidelity, passkey or recall) */
static const double ns_rel_err[3][2] = { { 1e-7, 2e-7 }, { 2e-7, 3e-7 }, { 0.4, 0.6 } };
static const double ns_cosine[3][2] = { { 1, 1 }, { 1, 1 }, { 0.9, 0.8 } };
/* passkey at depths 0, 0.5, 1; my_approx crashed at depth 0 (NAN), which drops that cell
 * from everyone's average */
static const double ns_passkey[3][3] = { { 1, 1, 1 }, { 1, 1, 1 }, { NAN, 0.3, 0.5 } };
static const double ns_recall[3][2] = { { 1, 1 }, { 1, 1 }, { 0.5, 0.25 } };
/* speed at N = 256, 512, 1024: median latency (s) and peak workspace (bytes) */
static const double ns_latency[VARIANTS][3] = {
	{ 1e-3, 4e-3, 16e-3 }, { 0.8e-3, 3e-3, 11e-3 }, { 2e-3, 2.5e-3, 3e-3 },
	{ 0.5e-3, 1e-3, 2e-3 },
};
static const double ns_peak[VARIANTS][3] = {
	{ 1e6, 4e6, 16e6 }, { 1e5, 1e5, 1e5 }, { 2e5, 3e5, 4e5 }, { 0, 0, 0 },
};
/* pattern cs: one fidelity cell; causality at two lengths, my_approx fails one */
static const double cs_rel_err[3] = { 1e-7, 1e-7, 0.5 };
static const double cs_cosine[3] = { 1, 1, 0.7 };

static sqlite3_int64 add_cell(sqlite3 *db, const char *variant, const char *task,
			      const char *pattern, int n, const char *regime, const char *status)
{
	char sql[1024];

	snprintf(sql, sizeof(sql), "INSERT INTO cells (run_id, variant, task, pattern, regime,"
		 " n, m, d, heads, kv_heads, batch, params, seed, threads, status, finished)"
		 " VALUES (1, '%s', '%s', '%s', %s%s%s, %d, %d, 64, 8, 8, 1, '{}', 0, 2, '%s',"
		 " 'now')", variant, task, pattern, regime ? "'" : "", regime ? regime : "NULL",
		 regime ? "'" : "", n, n, status);
	exec_ok(db, sql);
	return sqlite3_last_insert_rowid(db);
}

static void add_metric(sqlite3 *db, sqlite3_int64 cell, const char *name, double value)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "INSERT INTO metrics VALUES (%lld, '%s', %.17g, '')",
		 (long long)cell, name, value);
	exec_ok(db, sql);
}

static void build_database(const char *path)
{
	static const char *const depths[3] = { "0", "0.5", "1" };
	static const char *const regimes[2] = { "gaussian", "peaked" };
	static const char *const pairs[2] = { "16", "64" };
	struct store *s;
	char why[128], sql[256];
	sqlite3 *db;

	assert_int_equal(store_open(path, 0, &s, why, sizeof(why)), 0);
	db = store_db(s);
	exec_ok(db, "BEGIN");
	exec_ok(db, "INSERT INTO runs (id, started, status, suite, sgemm_gflops, triad_gbps)"
		" VALUES (1, '2024-01-01T00:00:00Z', 'complete', 'fixed', 212, 25)");
	for (int v = 0; v < 3; v++) {
		for (int r = 0; r < 2; r++) {
			sqlite3_int64 c = add_cell(db, names[v], "fidelity", "ns", 256, regimes[r],
						   "ok");

			add_metric(db, c, "rel_err", ns_rel_err[v][r]);
			add_metric(db, c, "cosine", ns_cosine[v][r]);
			c = add_cell(db, names[v], "recall", "ns", 256, pairs[r], "ok");
			add_metric(db, c, "accuracy", ns_recall[v][r]);
		}
		for (int k = 0; k < 3; k++) {
			bool crashed = isnan(ns_passkey[v][k]);
			sqlite3_int64 c = add_cell(db, names[v], "passkey", "ns", 256, depths[k],
						   crashed ? "crashed" : "ok");

			if (!crashed)
				add_metric(db, c, "accuracy", ns_passkey[v][k]);
		}
		sqlite3_int64 c = add_cell(db, names[v], "fidelity", "cs", 256, "gaussian", "ok");

		add_metric(db, c, "rel_err", cs_rel_err[v]);
		add_metric(db, c, "cosine", cs_cosine[v]);
		for (int k = 0; k < 2; k++) {
			bool fails = v == APPROX && k == 1;

			c = add_cell(db, names[v], "causality", "cs", 256 << k, NULL,
				     fails ? "failed" : "ok");
			add_metric(db, c, "causal_change", fails ? 0.1 : 0);
		}
	}
	for (int v = 0; v < VARIANTS; v++)
		for (int k = 0; k < 3; k++) {
			sqlite3_int64 c = add_cell(db, names[v], "speed", "ns", 256 << k, NULL,
						   "ok");

			add_metric(db, c, "latency_median", ns_latency[v][k]);
			add_metric(db, c, "peak_bytes", ns_peak[v][k]);
			/* speedy's longest cell: its measurement rounds disagreed */
			if (v == SPEEDY && k == 2)
				add_metric(db, c, "unstable", 1);
			for (int i = 0; i < 5; i++) {
				snprintf(sql, sizeof(sql), "INSERT INTO samples (cell_id, idx,"
					 " seconds) VALUES (%lld, %d, %.17g)", (long long)c, i,
					 ns_latency[v][k]);
				exec_ok(db, sql);
			}
		}
	/* decode is not ranked: a cell of it changes nothing */
	sqlite3_int64 c = add_cell(db, "speedy", "decode", "cs", 256, NULL, "ok");

	add_metric(db, c, "rel_err", 5);
	exec_ok(db, "COMMIT");
	store_close(s);
}

/* ---- the expected leaderboard, computed here ---- */

/* Signed z-scores of x[0..n) (NAN: absent) with the population sd; all 0 when sd is 0. */
static void zscores(const double *x, int n, int sign, double *z)
{
	double mean = 0, ss = 0;
	int k = 0;

	for (int i = 0; i < n; i++)
		if (!isnan(x[i])) {
			mean += x[i];
			k++;
		}
	mean /= k;
	for (int i = 0; i < n; i++)
		if (!isnan(x[i]))
			ss += (x[i] - mean) * (x[i] - mean);
	for (int i = 0; i < n; i++)
		z[i] = isnan(x[i]) ? NAN : ss == 0 ? 0 : sign * (x[i] - mean) / sqrt(ss / k);
}

static double mean_of(const double *x, int n)
{
	double s = 0;

	for (int i = 0; i < n; i++)
		s += x[i];
	return s / n;
}

struct expected {
	double ci[VARIANTS];
	double task[VARIANTS][REPORT_TASKS];
};

static void expected_ns(struct expected *e)
{
	double rel[VARIANTS], cos[VARIANTS], pk[VARIANTS], rc[VARIANTS], lat[VARIANTS],
	       mem[VARIANTS];
	double zrel[VARIANTS], zcos[VARIANTS], zpk[VARIANTS], zrc[VARIANTS], zlat[VARIANTS],
	       zmem[VARIANTS];

	for (int v = 0; v < VARIANTS; v++) {
		rel[v] = v < 3 ? mean_of(ns_rel_err[v], 2) : NAN;
		cos[v] = v < 3 ? mean_of(ns_cosine[v], 2) : NAN;
		/* depth 0 is not common to all: depths 0.5 and 1 only */
		pk[v] = v < 3 ? mean_of(&ns_passkey[v][1], 2) : NAN;
		rc[v] = v < 3 ? mean_of(ns_recall[v], 2) : NAN;
		lat[v] = mem[v] = 0;
		for (int k = 0; k < 3; k++) {
			lat[v] += log10(1000 * ns_latency[v][k]) / 3;
			mem[v] += log10(ns_peak[v][k] > 1 ? ns_peak[v][k] : 1) / 3;
		}
	}
	zscores(rel, VARIANTS, -1, zrel);
	zscores(cos, VARIANTS, +1, zcos);
	zscores(pk, VARIANTS, +1, zpk);
	zscores(rc, VARIANTS, +1, zrc);
	zscores(lat, VARIANTS, -1, zlat);
	zscores(mem, VARIANTS, -1, zmem);
	for (int v = 0; v < VARIANTS; v++) {
		e->task[v][REPORT_FIDELITY] = v < 3 ? (zrel[v] + zcos[v]) / 2 : NAN;
		e->task[v][REPORT_PASSKEY] = zpk[v];
		e->task[v][REPORT_RECALL] = zrc[v];
		e->task[v][REPORT_SPEED] = (zlat[v] + zmem[v]) / 2;
		e->task[v][REPORT_CAUSALITY] = NAN;
		/* a variant is scored on the tasks it has */
		e->ci[v] = v < 3 ? (e->task[v][0] + e->task[v][1] + e->task[v][2] +
				    e->task[v][3]) / 4 : e->task[v][REPORT_SPEED];
	}
}

static const struct report_row *find_row(const struct leaderboard *lb, const char *name)
{
	for (int i = 0; i < lb->count; i++)
		if (!strcmp(lb->rows[i].variant, name))
			return &lb->rows[i];
	fail_msg("no row for %s", name);
	return NULL;
}

static void test_leaderboard_matches_an_independent_computation(void **state)
{
	struct expected e;
	struct leaderboard lb;
	struct store *s;
	char why[128];

	(void)state;
	expected_ns(&e);
	assert_int_equal(store_open(db_path, STORE_READONLY, &s, why, sizeof(why)), 0);
	assert_int_equal(report_leaderboard(store_db(s), 1, "ns", "vanilla", &lb), 0);
	assert_int_equal(lb.count, VARIANTS);
	assert_true(lb.has_baseline);
	assert_int_equal(lb.common_cells[REPORT_PASSKEY], 2);
	assert_int_equal(lb.common_cells[REPORT_SPEED], 3);
	for (int v = 0; v < VARIANTS; v++) {
		const struct report_row *r = find_row(&lb, names[v]);

		assert_close(r->ci, e.ci[v], 1e-9);
		assert_close(r->delta, e.ci[v] - e.ci[VANILLA], 1e-9);
		for (int t = 0; t < REPORT_TASKS; t++) {
			if (isnan(e.task[v][t]))
				assert_true(isnan(r->task[t]));
			else
				assert_close(r->task[t], e.task[v][t], 1e-9);
		}
	}
	assert_int_equal(find_row(&lb, "my_approx")->failed_cells, 1);
	/* sorted best first */
	for (int i = 1; i < lb.count; i++)
		assert_true(lb.rows[i - 1].ci >= lb.rows[i].ci);
	report_leaderboard_release(&lb);

	/* cs: vanilla and flash tie and share rank 1; my_approx fails causality */
	assert_int_equal(report_leaderboard(store_db(s), 1, "cs", "vanilla", &lb), 0);
	assert_int_equal(lb.count, 3);
	assert_string_equal(lb.rows[0].variant, "flash");
	assert_string_equal(lb.rows[1].variant, "vanilla");
	assert_int_equal(lb.rows[0].rank, 1);
	assert_int_equal(lb.rows[1].rank, 1);
	assert_int_equal(lb.rows[2].rank, 3);
	assert_int_equal(find_row(&lb, "my_approx")->causal_pass, 1);
	assert_int_equal(find_row(&lb, "my_approx")->causal_total, 2);
	report_leaderboard_release(&lb);
	store_close(s);
}

/* ---- the printed report ---- */

static size_t display_width(const char *s, size_t len)
{
	size_t w = 0;

	for (size_t i = 0; i < len; i++)
		w += ((unsigned char)s[i] & 0xc0) != 0x80;
	return w;
}

/* Every Markdown table: all lines as wide, with their pipes in the same columns. */
static int check_markdown_tables(const char *text)
{
	const char *line = text;
	char first_pipes[256];
	size_t first_width = 0;
	int tables = 0;
	bool in_table = false;

	while (*line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);

		if (len && line[0] == '|') {
			char pipes[256] = "";
			size_t col = 0, np = 0;

			for (size_t i = 0; i < len; i++) {
				if (((unsigned char)line[i] & 0xc0) == 0x80)
					continue;
				if (line[i] == '|' && (i == 0 || line[i - 1] != '\\') && np < 255)
					pipes[np++] = (char)(col % 250 + 1);
				col++;
			}
			pipes[np] = '\0';
			if (!in_table) {
				tables++;
				first_width = display_width(line, len);
				memcpy(first_pipes, pipes, sizeof(pipes));
			} else {
				assert_int_equal(display_width(line, len), first_width);
				assert_string_equal(pipes, first_pipes);
			}
			in_table = true;
		} else {
			in_table = false;
		}
		line += len + (end != NULL);
	}
	return tables;
}

/* The cells of the Markdown data row whose second cell is name, after heading `after`. */
static int markdown_row(const char *text, const char *after, const char *name,
			char cells[][64], int max)
{
	const char *p = strstr(text, after), *line;
	char key[80];

	assert_non_null(p);
	snprintf(key, sizeof(key), "| %s ", name);
	for (line = p; (line = strstr(line, "\n|")); line++) {
		const char *start = line + 1, *end = strchr(start, '\n');
		char buf[1024];
		int n = 0;

		snprintf(buf, sizeof(buf), "%.*s", (int)(end ? end - start : (long)strlen(start)),
			 start);
		if (!strstr(buf, key))
			continue;
		for (char *tok = strtok(buf, "|"); tok && n < max; tok = strtok(NULL, "|")) {
			while (*tok == ' ')
				tok++;
			size_t len = strlen(tok);

			while (len && tok[len - 1] == ' ')
				tok[--len] = '\0';
			snprintf(cells[n++], 64, "%s", tok);
		}
		return n;
	}
	fail_msg("no Markdown row for '%s' after '%s'", name, after);
	return 0;
}

static int run_metric_rows(const char *baseline)
{
	struct store *s;
	sqlite3_stmt *st;
	char why[128];
	int n;

	assert_int_equal(store_open(db_path, STORE_READONLY, &s, why, sizeof(why)), 0);
	assert_int_equal(sqlite3_prepare_v2(store_db(s), "SELECT count(*) FROM run_metrics"
					    " WHERE baseline = ?", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, baseline, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	store_close(s);
	return n;
}

static void test_markdown_ranks_scores_and_aligns(void **state)
{
	static struct outcome o;
	struct expected e;
	char cells[16][64], want[64];
	int order[VARIANTS], n;
	double t, cross;

	(void)state;
	expected_ns(&e);
	assert_int_equal(run_metric_rows("vanilla"), 0);
	run(&o, "report", "--db", db_path, "--markdown", NULL);
	assert_int_equal(o.status, 0);
	assert_string_equal(o.err, "");
	/* leaderboard, metrics and efficiency on ns; leaderboard and metrics on cs */
	assert_int_equal(check_markdown_tables(o.out), 5);
	assert_non_null(strstr(o.out, "## Pattern ns (noncausal self)"));
	assert_non_null(strstr(o.out, "## Pattern cs (causal self)"));
	assert_null(strstr(o.out, "Pattern nc"));
	/* the machine's rates, measured at the run's start */
	assert_non_null(strstr(o.out, " threads, SGEMM 212.0 GFLOP/s, triad 25.0 GB/s; baseline"));

	/* ranking on ns, best first, as computed here */
	for (int v = 0; v < VARIANTS; v++)
		order[v] = v;
	for (int i = 0; i < VARIANTS; i++)
		for (int j = i + 1; j < VARIANTS; j++)
			if (e.ci[order[j]] > e.ci[order[i]]) {
				int x = order[i];

				order[i] = order[j];
				order[j] = x;
			}
	for (int i = 0; i < VARIANTS; i++) {
		char name[32];
		int v = order[i];

		/* Markdown escapes the underscore */
		snprintf(name, sizeof(name), "%s", v == APPROX ? "my\\_approx" : names[v]);
		n = markdown_row(o.out, "**Leaderboard**, ns", name, cells, 16);
		assert_int_equal(n, 9);
		snprintf(want, sizeof(want), "%d", i + 1);
		assert_string_equal(cells[0], want);
		snprintf(want, sizeof(want), "%+.2f", e.ci[v]);
		assert_string_equal(cells[2], want);
		snprintf(want, sizeof(want), "%+.2f", e.ci[v] - e.ci[VANILLA]);
		if (!strcmp(want, "-0.00"))
			want[0] = '+';
		assert_string_equal(cells[3], want);
		/* speedy has only speed: its other task columns are empty */
		assert_string_equal(cells[4], v == SPEEDY ? "—" : cells[4]);
		snprintf(want, sizeof(want), "%+.2f", e.task[v][REPORT_SPEED]);
		assert_string_equal(cells[7], want);
	}
	/* the rows appear in that order */
	{
		const char *lb = strstr(o.out, "**Leaderboard**, ns"), *prev = lb;

		for (int i = 0; i < VARIANTS; i++) {
			char key[40];
			const char *at;

			snprintf(key, sizeof(key), "| %s ",
				 order[i] == APPROX ? "my\\_approx" : names[order[i]]);
			at = strstr(lb, key);
			assert_non_null(at);
			assert_true(at > prev);
			prev = at;
		}
	}
	/* cs: the tie shares rank 1; my_approx carries the causality mark */
	n = markdown_row(o.out, "**Leaderboard**, cs", "vanilla", cells, 16);
	assert_string_equal(cells[0], "1");
	n = markdown_row(o.out, "**Leaderboard**, cs", "flash", cells, 16);
	assert_string_equal(cells[0], "1");
	assert_string_equal(cells[3], "+0.00");
	n = markdown_row(o.out, "**Leaderboard**, cs", "my\\_approx\\*", cells, 16);
	assert_string_equal(cells[0], "3");
	assert_non_null(strstr(o.out, "fails the causality test"));
	n = markdown_row(o.out, "**Task metrics**, cs", "my\\_approx\\*", cells, 16);
	assert_string_equal(cells[7], "fail 1/2");

	/* efficiency: my_approx crosses vanilla between 256 (ratio 2) and 512 (0.625) */
	t = log(2.0) / (log(2.0) - log(2.5 / 4));
	cross = exp(log(256) + t * (log(512) - log(256)));
	n = markdown_row(o.out, "**Efficiency length against vanilla**, ns", "my\\_approx", cells,
			 16);
	assert_int_equal(n, 8);
	assert_string_equal(cells[1], "time");
	/* equal samples: every resample crosses at the same length */
	snprintf(want, sizeof(want), "%.0f [%.0f, %.0f]", cross, cross, cross);
	assert_string_equal(cells[2], want);
	n = markdown_row(o.out, "**Efficiency length against vanilla**, ns", "flash", cells, 16);
	/* below range: no number alone, which would read as a crossing at 256 */
	assert_string_equal(cells[2], "< 256 (cheaper at every length)");
	assert_non_null(strstr(o.out, "No efficiency lengths on cs"));
	/* computed for the report and stored, since the run had none */
	assert_true(run_metric_rows("vanilla") > 0);
}

static void test_latex_uses_booktabs_and_escapes(void **state)
{
	static struct outcome o;
	const char *p;
	int tables = 0, top = 0, mid = 0, bottom = 0, ends = 0;
	char tex[512], cmd[2048], pdf[512], head[5] = "";
	FILE *f;

	(void)state;
	run(&o, "report", "--db", db_path, "--latex", NULL);
	assert_int_equal(o.status, 0);
	for (p = o.out; (p = strstr(p, "\\begin{table}")); p++)
		tables++;
	for (p = o.out; (p = strstr(p, "\\end{table}")); p++)
		ends++;
	for (p = o.out; (p = strstr(p, "\\toprule")); p++)
		top++;
	for (p = o.out; (p = strstr(p, "\\midrule")); p++)
		mid++;
	for (p = o.out; (p = strstr(p, "\\bottomrule")); p++)
		bottom++;
	assert_int_equal(tables, 5);
	assert_int_equal(ends, 5);
	assert_int_equal(top, 5);
	assert_int_equal(mid, 5);
	assert_int_equal(bottom, 5);
	assert_null(strstr(o.out, "\\hline"));
	assert_non_null(strstr(o.out, "my\\_approx"));
	assert_null(strstr(o.out, "my_approx"));
	assert_non_null(strstr(o.out, "my\\_approx$^{*}$"));
	assert_non_null(strstr(o.out, "$\\Delta$"));
	assert_null(strstr(o.out, "Δ"));
	assert_null(strstr(o.out, "—"));
	/* the label of every table is unique to run and pattern */
	assert_non_null(strstr(o.out, "\\label{tab:attnbench-run1-ns-leaderboard}"));

	/* it compiles as given, when pdflatex is installed (not required by the suite) */
	if (system("command -v pdflatex >/dev/null 2>&1")) {
		print_message("pdflatex not installed: compile check skipped\n");
		return;
	}
	snprintf(tex, sizeof(tex), "%s/doc.tex", tmpdir);
	f = fopen(tex, "w");
	assert_non_null(f);
	fprintf(f, "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n%s"
		"\\end{document}\n", o.out);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "cd %s && pdflatex -interaction=nonstopmode -halt-on-error"
		 " doc.tex >pdflatex.log 2>&1", tmpdir);
	assert_int_equal(system(cmd), 0);
	snprintf(pdf, sizeof(pdf), "%s/doc.pdf", tmpdir);
	f = fopen(pdf, "rb");
	assert_non_null(f);
	assert_int_equal(fread(head, 1, 4, f), 4);
	fclose(f);
	assert_string_equal(head, "%PDF");
}

static void test_text_is_the_default_and_aligned(void **state)
{
	static struct outcome o;
	const char *lb, *first, *second;

	(void)state;
	run(&o, "report", "--db", db_path, "--run", "1", NULL);
	assert_int_equal(o.status, 0);
	assert_null(strstr(o.out, "| "));
	assert_null(strstr(o.out, "\\toprule"));
	lb = strstr(o.out, "Leaderboard, ns");
	assert_non_null(lb);
	/* the header line and its rule line are as wide */
	first = strchr(lb, '\n') + 2;	/* a blank line follows the caption */
	second = strchr(first, '\n') + 1;
	assert_int_equal(display_width(first, (size_t)(strchr(first, '\n') - first)),
			 display_width(second, (size_t)(strchr(second, '\n') - second)));
	assert_memory_equal(first, "#  variant", 10);
	assert_memory_equal(second, "-  -------", 10);
}

/* A variant with an unstable speed cell has it counted beside its latency, and explained. */
static void test_unstable_speed_cells_are_counted_beside_the_latency(void **state)
{
	static struct outcome o;
	const char *metrics, *row;

	(void)state;
	run(&o, "report", "--db", db_path, "--run", "1", NULL);
	assert_int_equal(o.status, 0);
	metrics = strstr(o.out, "Task metrics, ns");
	assert_non_null(metrics);
	assert_non_null(strstr(metrics, "(N unstable): N of the variant's speed cells"));
	row = strstr(metrics, "\nspeedy ");
	assert_non_null(row);
	assert_true(strstr(row, "(1 unstable)") < strchr(row + 1, '\n'));
	assert_non_null(strstr(row, "(1 unstable)"));
	row = strstr(metrics, "\nvanilla ");
	assert_non_null(row);
	assert_true(!strstr(row, "unstable") || strstr(row, "unstable") > strchr(row + 1, '\n'));
}

/*
 * A variant that is only block-causal at its defaults (hip) carries a mark on causal
 * patterns, explained beside the table, and none on ns: from a real run of hip.
 */
static void test_block_causal_variants_are_marked_on_causal_patterns(void **state)
{
	static struct outcome o;
	char db[300];
	const char *cs, *ns;

	(void)state;
	snprintf(db, sizeof(db), "%s/hip.db", tmpdir);
	run(&o, "run", "--suite", "quick", "--variants", "hip,vanilla", "--patterns", "ns,cs",
	    "--tasks", "fidelity,causality", "--lengths", "64", "--db", db, "-q", NULL);
	assert_int_equal(o.status, 0);
	run(&o, "report", "--db", db, "--markdown", NULL);
	assert_int_equal(o.status, 0);
	ns = strstr(o.out, "Leaderboard**, ns");
	cs = strstr(o.out, "Leaderboard**, cs");
	assert_non_null(ns);
	assert_non_null(cs);
	assert_non_null(strstr(cs, "| hip† "));
	assert_non_null(strstr(cs, "† hip is block-causal at its defaults: a row may depend on "
				   "later rows of its own query block (strictly causal at "
				   "hip.block_q=1)."));
	assert_null(strstr(cs, "vanilla†"));
	/* the ns tables come first and carry no mark */
	assert_true(ns < cs);
	assert_true(!strstr(ns, "†") || strstr(ns, "†") > cs);
	run(&o, "report", "--db", db, "--latex", NULL);
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.out, "hip$^{\\dagger}$"));
}

static void test_another_baseline_gets_its_own_efficiency_lengths(void **state)
{
	static struct outcome o;
	char cells[16][64];

	(void)state;
	run(&o, "report", "--db", db_path, "--baseline", "flash", "--markdown", NULL);
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.out, "Δ against flash"));
	markdown_row(o.out, "**Leaderboard**, ns", "flash", cells, 16);
	assert_string_equal(cells[3], "+0.00");
	assert_non_null(strstr(o.out, "**Efficiency length against flash**, ns"));
	assert_true(run_metric_rows("flash") > 0);
}

static void assert_one_line(const struct outcome *o)
{
	const char *nl = strchr(o->err, '\n');

	assert_non_null(nl);
	assert_int_equal(nl[1], '\0');
	assert_memory_equal(o->err, "attnbench: ", 11);
}

static void test_bad_input_exits_2_and_changes_nothing(void **state)
{
	static struct outcome o;
	char empty[512], missing[512];
	int before = run_metric_rows("vanilla") + run_metric_rows("flash");
	struct store *s;
	char why[128];

	(void)state;
	run(&o, "report", "--db", db_path, "--run", "99", NULL);
	assert_int_equal(o.status, 2);
	assert_one_line(&o);
	assert_non_null(strstr(o.err, "no run 99"));
	run(&o, "report", "--db", db_path, "--run", "x", NULL);
	assert_int_equal(o.status, 2);
	assert_one_line(&o);
	run(&o, "report", "--db", db_path, "--markdown", "--latex", NULL);
	assert_int_equal(o.status, 2);
	assert_one_line(&o);
	run(&o, "report", "--db", db_path, "--baseline", "nosuch", NULL);
	assert_int_equal(o.status, 2);
	assert_one_line(&o);
	assert_non_null(strstr(o.err, "'nosuch'"));
	run(&o, "report", "--db", db_path, "--bogus", NULL);
	assert_int_equal(o.status, 2);
	assert_one_line(&o);
	run(&o, "report", "--db", db_path, "extra", NULL);
	assert_int_equal(o.status, 2);
	assert_one_line(&o);
	assert_int_equal(run_metric_rows("vanilla") + run_metric_rows("flash"), before);

	snprintf(missing, sizeof(missing), "%s/missing.db", tmpdir);
	run(&o, "report", "--db", missing, NULL);
	assert_int_equal(o.status, 2);
	assert_one_line(&o);
	snprintf(empty, sizeof(empty), "%s/empty.db", tmpdir);
	assert_int_equal(store_open(empty, 0, &s, why, sizeof(why)), 0);
	store_close(s);
	run(&o, "report", "--db", empty, NULL);
	assert_int_equal(o.status, 2);
	assert_one_line(&o);
	assert_non_null(strstr(o.err, "no runs"));
}

static void test_help_names_the_formats(void **state)
{
	static struct outcome o;

	(void)state;
	run(&o, "report", "--help", NULL);
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.out, "--markdown"));
	assert_non_null(strstr(o.out, "\\usepackage{booktabs}"));
	run(&o, "help", NULL);
	assert_non_null(strstr(o.out, "report"));
}

static int build(void **state)
{
	(void)state;
	build_database(db_path);
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_leaderboard_matches_an_independent_computation),
		cmocka_unit_test(test_markdown_ranks_scores_and_aligns),
		cmocka_unit_test(test_latex_uses_booktabs_and_escapes),
		cmocka_unit_test(test_text_is_the_default_and_aligned),
		cmocka_unit_test(test_unstable_speed_cells_are_counted_beside_the_latency),
		cmocka_unit_test(test_another_baseline_gets_its_own_efficiency_lengths),
		cmocka_unit_test(test_block_causal_variants_are_marked_on_causal_patterns),
		cmocka_unit_test(test_bad_input_exits_2_and_changes_nothing),
		cmocka_unit_test(test_help_names_the_formats),
	};
	char cmd[600];
	int failed;

	if (argc != 2) {
		fprintf(stderr, "usage: %s ATTNBENCH-BINARY\n", argv[0]);
		return 2;
	}
	binary = argv[1];
	if (!mkdtemp(tmpdir))
		return 2;
	snprintf(db_path, sizeof(db_path), "%s/fixed.db", tmpdir);
	failed = cmocka_run_group_tests(tests, build, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (!failed && system(cmd))
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return failed;
}
