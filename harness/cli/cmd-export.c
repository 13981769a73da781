/*
 * cmd-export.c - `attnbench export`: runs as CSV, one row per cell, with the run's
 * provenance, metrics, latency samples and trial outcomes (format: csv-export.h, README).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "csv-export.h"
#include "error.h"
#include "store.h"
#include "why.h"

const char usage_export[] =
	"usage: attnbench export --csv FILE [--run ID | --all] [--db PATH]\n"
	"\n"
	"Writes runs as CSV (RFC 4180): one row per cell with the run's provenance, the\n"
	"cell's shape, status and parameters, one column per metric (metric:NAME[UNIT]),\n"
	"every latency sample and trial outcome. 'attnbench import' reads it back; the\n"
	"format is described in README.md.\n"
	"\n"
	"  --csv FILE   where to write ('-' for standard output)\n"
	"  --run ID     the run to export (default: the latest)\n"
	"  --all        every run that has cells\n"
	"  --db PATH    the database (default " DEFAULT_DB ")\n"
	"\n"
	"example:\n"
	"  attnbench export --csv results.csv --all\n";

/* The runs to export: one given, the latest, or all that have cells. */
static int select_runs(sqlite3 *db, int64_t run, bool all, int64_t **out, size_t *n)
{
	const char *sql = all ? "SELECT id FROM runs WHERE EXISTS"
				" (SELECT 1 FROM cells WHERE run_id = runs.id) ORDER BY id" :
			  run ? "SELECT id FROM runs WHERE id = ?1" :
				"SELECT max(id) FROM runs HAVING max(id) IS NOT NULL";
	sqlite3_stmt *st;
	size_t cap = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	if (run)
		sqlite3_bind_int64(st, 1, run);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			int64_t *grown = realloc(*out, (cap = 2 * cap + 16) * sizeof(*grown));

			if (!grown) {
				rc = SQLITE_NOMEM;
				break;
			}
			*out = grown;
		}
		(*out)[(*n)++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

static int64_t cell_count(sqlite3 *db, int64_t run)
{
	sqlite3_stmt *st;
	int64_t n = -1;

	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM cells WHERE run_id = ?1", -1, &st,
			       NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, run);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

int cmd_export(int argc, char **argv)
{
	static const struct option options[] = {
		{ "csv", required_argument, NULL, 'c' },
		{ "run", required_argument, NULL, 'r' },
		{ "all", no_argument, NULL, 'a' },
		{ "db", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	const char *db = DEFAULT_DB, *file = NULL, *run_text = NULL;
	int64_t run = 0, *runs = NULL;
	bool all = false, to_stdout;
	size_t n_runs = 0, cells = 0;
	struct store *st;
	char why[512];
	FILE *out;
	int opt, ret;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			file = optarg;
			break;
		case 'r':
			run_text = optarg;
			break;
		case 'a':
			all = true;
			break;
		case 'd':
			db = optarg;
			break;
		case ':':
			return error("option '%s' needs a value", argv[optind - 1]);
		default:
			return error("unknown option '%s' (see 'attnbench export --help')",
				     argv[optind - 1]);
		}
	}
	if (optind != argc)
		return error("export takes no arguments, only options (see 'attnbench export "
			     "--help')");
	if (!file)
		return error("export needs --csv FILE ('-' for standard output)");
	if (run_text && all)
		return error("give --run ID or --all, not both");
	if (run_text) {
		char *end;

		errno = 0;
		run = strtoll(run_text, &end, 10);
		if (errno || end == run_text || *end || run < 1)
			return error("--run needs a run id (a whole number >= 1), not '%s'",
				     run_text);
	}
	if (store_open(db, STORE_READONLY, &st, why, sizeof(why)))
		return error("cannot open database '%s': %s", db, why);
	if (select_runs(store_db(st), run, all, &runs, &n_runs)) {
		ret = error("cannot read runs in '%s': %s", db, store_errmsg(st));
		goto out_close;
	}
	if (n_runs == 0) {
		ret = run ? error("no run %lld in '%s' (see 'attnbench list runs')",
				  (long long)run, db) :
			    error("no runs with cells in '%s' to export", db);
		goto out_close;
	}
	if (!all && cell_count(store_db(st), runs[0]) == 0) {
		ret = error("run %lld in '%s' has no cells to export", (long long)runs[0], db);
		goto out_close;
	}
	to_stdout = !strcmp(file, "-");
	out = to_stdout ? stdout : fopen(file, "w");
	if (!out) {
		ret = error("cannot write '%s': %s", file, strerror(errno));
		goto out_close;
	}
	ret = csv_export_runs(store_db(st), runs, n_runs, out, &cells, why, sizeof(why));
	/* the last writes fail here: when standard output is flushed, or the file closed */
	if ((to_stdout ? fflush(out) : fclose(out)) && !ret)
		ret = why_fail(-EIO, why, sizeof(why), "cannot write: %s", strerror(errno));
	if (ret) {
		if (!to_stdout)
			unlink(file);
		ret = error("cannot export to '%s': %s", file, why);
		goto out_close;
	}
	if (!to_stdout) {
		if (n_runs == 1)
			printf("exported run %lld (%zu cells) to '%s'\n", (long long)runs[0], cells,
			       file);
		else
			printf("exported %zu runs (%zu cells) to '%s'\n", n_runs, cells, file);
	}
	ret = EXIT_OK;
out_close:
	free(runs);
	store_close(st);
	return ret;
}
