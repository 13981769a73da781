/*
 * cmd-list.c - `attnbench list variants|tasks|suites|runs`.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "error.h"
#include "options.h"
#include "plugin.h"
#include "provenance.h"
#include "queries.h"
#include "store.h"
#include "suite.h"

const char usage_list[] =
	"usage: attnbench list variants|tasks|suites|runs [--db PATH] [--plugin PATH.so]...\n"
	"\n"
	"  variants   family, patterns (* = harness extension), exactness, citation and\n"
	"             hyperparameters (set with --set variant.param=value)\n"
	"  tasks      what each task measures, its patterns and input regimes\n"
	"  suites     the built-in suites and their rows, in the suite CSV format\n"
	"  runs       the runs stored in the database (default " DEFAULT_DB "), with the\n"
	"             machine's SGEMM rate (GFLOP/s) and triad bandwidth (GB/s) measured\n"
	"             at their start\n";

static void print_patterns(unsigned int patterns, unsigned int extensions)
{
	bool first = true;

	for (int p = 0; p < ATTN_PATTERN_COUNT; p++)
		if (patterns & PATTERN_BIT(p)) {
			printf("%s%s%s", first ? "" : ",", pattern_name(p),
			       extensions & PATTERN_BIT(p) ? "*" : "");
			first = false;
		}
}

static int list_variants(void)
{
	for (int i = 0; i < variant_count(); i++) {
		const struct variant_ops *v = variant_at(i);

		printf("%-10s %-8s ", v->name, v->family);
		print_patterns(v->patterns, v->extensions);
		printf("  %s\n", v->flags & VARIANT_EXACT ? "exact" :
		       v->flags & VARIANT_MASK_EXACT ? "exact under its mask" : "approximate");
		printf("           %s\n           %s\n", v->summary, v->citation);
		if (plugin_of(v))
			printf("           plugin %s (sha256 %s)\n", plugin_of(v)->path,
			       plugin_of(v)->sha256);
		if (v->flags & VARIANT_BLOCK_CAUSAL)
			printf("           block-causal at its defaults (%s.%s=1 for strict)\n",
			       v->name, v->strict_causal_param);
		for (int p = 0; p < v->n_params; p++) {
			const struct variant_param *d = &v->params[p];

			printf("           %s.%s = %.10g  (%s%.10g..%.10g) %s\n", v->name, d->name, d->def,
			       d->integer ? "whole, " : "", d->min, d->max, d->help);
		}
	}
	printf("\n* a harness extension: a pattern neither CAB nor the paper runs, defined in the"
	       " catalogue\n");
	return EXIT_OK;
}

static int list_tasks(void)
{
	for (int i = 0; i < task_count(); i++) {
		const struct task_ops *t = task_at(i);

		printf("%-10s ", t->name);
		print_patterns(t->patterns, 0);
		printf("  %s\n", t->summary);
		if (t->regimes) {
			printf("           %s (the suite's regimes column):", t->regime_kind);
			for (int r = 0; t->regimes[r]; r++)
				printf(" %s", t->regimes[r]);
			printf("\n");
		}
	}
	return EXIT_OK;
}

static int list_suites(void)
{
	for (int i = 0; suite_builtins[i].name; i++) {
		const char *csv = suite_builtin_csv(suite_builtins[i].name);

		printf("%-10s %s\n", suite_builtins[i].name, suite_builtins[i].summary);
		for (const char *line = csv; *line; ) {
			size_t len = strcspn(line, "\n");

			printf("           %.*s\n", (int)len, line);
			line += len + (line[len] == '\n');
		}
	}
	return EXIT_OK;
}

/*
 * Column col of the row as text fit for a terminal: "-" for NULL, controls (a stored
 * string may carry escape sequences) as '?'.
 */
static const char *shown(sqlite3_stmt *st, int col, char *buf, size_t len)
{
	const unsigned char *text = sqlite3_column_text(st, col);
	size_t n = 0;

	if (!text)
		return "-";
	for (; *text && n + 1 < len; text++)
		buf[n++] = *text < 32 || *text == 127 ? '?' : (char)*text;
	buf[n] = '\0';
	return buf;
}

/*
 * A run's status as stored, but "interrupted" for a run still marked running whose driver
 * on this machine is gone (killed, or the machine rebooted): nothing will finish it but
 * `run --resume`.
 */
static const char *run_status(sqlite3_stmt *st, const char *host, char *buf, size_t len)
{
	const char *status = shown(st, 2, buf, len);
	const unsigned char *ran_on = sqlite3_column_text(st, 8);

	if (!strcmp(status, "running") && ran_on && !strcmp((const char *)ran_on, host) &&
	    provenance_driver_alive((const char *)sqlite3_column_text(st, 9)) == 0)
		return "interrupted";
	return status;
}

/* A measured rate of the machine with one decimal, or "-" when the run has none. */
static const char *rate(sqlite3_stmt *st, int col, char *buf, size_t len)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return "-";
	snprintf(buf, len, "%.1f", sqlite3_column_double(st, col));
	return buf;
}

static int list_runs(const char *db)
{
	static const char sql[] =
		"SELECT r.id, r.started, r.status, r.suite, r.threads, r.sgemm_gflops,"
		" r.cpu_model, (SELECT count(*) FROM cells c WHERE c.run_id = r.id),"
		" r.hostname, r.driver, r.triad_gbps FROM runs r ORDER BY r.id";
	char why[256], host[256] = "", started[64], status[32], suite[64], cpu[128];
	char what[160], path[4096], sha[80], sgemm[32], triad[32];
	struct store *st;
	sqlite3_stmt *stmt, *loaded, *shards = NULL;
	int rc;

	if (store_open(db, STORE_READONLY, &st, why, sizeof(why)))
		return error("cannot open database '%s': %s", db, why);
	if (sqlite3_prepare_v2(store_db(st), sql, -1, &stmt, NULL) != SQLITE_OK) {
		error("cannot list runs in '%s': %s", db, store_errmsg(st));
		store_close(st);
		return EXIT_USAGE;
	}
	gethostname(host, sizeof(host) - 1);
	printf("%-5s %-24s %-12s %-10s %7s %6s %9s %7s  %s\n", "run", "started", "status",
	       "suite", "threads", "cells", "sgemm", "triad", "cpu");
	if (sqlite3_prepare_v2(store_db(st), STORE_LOADED_FILES_SQL, -1, &loaded, NULL) ||
	    sqlite3_prepare_v2(store_db(st), STORE_SHARDS_SQL, -1, &shards, NULL)) {
		sqlite3_finalize(shards);
		sqlite3_finalize(stmt);
		error("cannot list runs in '%s': %s", db, store_errmsg(st));
		store_close(st);
		return EXIT_USAGE;
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		printf("%-5lld %-24s %-12s %-10s %7d %6d %9s %7s  %s\n",
		       (long long)sqlite3_column_int64(stmt, 0),
		       shown(stmt, 1, started, sizeof(started)),
		       run_status(stmt, host, status, sizeof(status)),
		       shown(stmt, 3, suite, sizeof(suite)), sqlite3_column_int(stmt, 4),
		       sqlite3_column_int(stmt, 7), rate(stmt, 5, sgemm, sizeof(sgemm)),
		       rate(stmt, 10, triad, sizeof(triad)), shown(stmt, 6, cpu, sizeof(cpu)));
		/* what it loaded from files: plugins, the user's tensors */
		sqlite3_bind_int64(loaded, 1, sqlite3_column_int64(stmt, 0));
		while (sqlite3_step(loaded) == SQLITE_ROW)
			printf("      %s: %s (sha256 %s)\n", shown(loaded, 0, what, sizeof(what)),
			       shown(loaded, 1, path, sizeof(path)),
			       shown(loaded, 2, sha, sizeof(sha)));
		sqlite3_reset(loaded);
		/* the shards it was merged from, each with its machine */
		sqlite3_bind_int64(shards, 1, sqlite3_column_int64(stmt, 0));
		while (sqlite3_step(shards) == SQLITE_ROW)
			printf("      shard %d: %s, %s, %d threads, sgemm %s, triad %s, %.1f s\n",
			       sqlite3_column_int(shards, 0), shown(shards, 1, what, sizeof(what)),
			       shown(shards, 2, cpu, sizeof(cpu)), sqlite3_column_int(shards, 3),
			       rate(shards, 4, sgemm, sizeof(sgemm)),
			       rate(shards, 6, triad, sizeof(triad)),
			       sqlite3_column_double(shards, 5));
		sqlite3_reset(shards);
	}
	sqlite3_finalize(shards);
	sqlite3_finalize(loaded);
	sqlite3_finalize(stmt);
	if (rc != SQLITE_DONE)
		error("cannot list runs in '%s': %s", db, store_errmsg(st));
	store_close(st);
	return rc == SQLITE_DONE ? EXIT_OK : EXIT_USAGE;
}

int cmd_list(int argc, char **argv)
{
	static const struct option options[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "plugin", required_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	const char *db = DEFAULT_DB, *what;
	int opt;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":", options, NULL)) != -1) {
		if (opt == 'd')
			db = optarg;
		else if (opt == 'P' && option_plugin(optarg))	/* again if abbreviated */
			return EXIT_USAGE;
		else if (opt != 'P')
			return option_error(opt, argv, "list");
	}
	if (optind != argc - 1)
		return error("list needs one of: variants, tasks, suites, runs");
	what = argv[optind];
	if (!strcmp(what, "variants"))
		return list_variants();
	if (!strcmp(what, "tasks"))
		return list_tasks();
	if (!strcmp(what, "suites"))
		return list_suites();
	if (!strcmp(what, "runs"))
		return list_runs(db);
	return error("cannot list '%s' (accepted: variants, tasks, suites, runs)", what);
}
