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
#include "options.h"
#include "outfile.h"
#include "queries.h"
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
	int64_t run = 0, *runs = NULL, count;
	bool all = false, to_stdout;
	size_t n_runs = 0, cells = 0;
	struct store *st;
	char why[512];
	struct outfile of;
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
		default:
			return option_error(opt, argv, "export");
		}
	}
	if (optind != argc)
		return option_no_arguments("export");
	if (!file)
		return error("export needs --csv FILE ('-' for standard output)");
	if (run_text && all)
		return error("give --run ID or --all, not both");
	if (run_text && option_run_id("--run", run_text, &run))
		return EXIT_USAGE;
	if (store_open(db, STORE_READONLY, &st, why, sizeof(why)))
		return error("cannot open database '%s': %s", db, why);
	/* the runs to export: all that have cells, the one given, or the latest */
	if (all)
		ret = store_runs_with_cells(store_db(st), &runs, &n_runs);
	else if (run)
		ret = store_find_run(store_db(st), run);
	else
		ret = store_latest_run(store_db(st), &run);
	if (ret && ret != -ENOENT) {
		ret = error("cannot read runs in '%s': %s", db, store_errmsg(st));
		goto out_close;
	}
	if (!all && !ret) {
		runs = &run;
		n_runs = 1;
	}
	if (n_runs == 0) {
		ret = run_text ? error("no run %lld in '%s' (see 'attnbench list runs')",
				       (long long)run, db) :
				 error("no runs with cells in '%s' to export", db);
		goto out_close;
	}
	if (!all && !store_count_cells(store_db(st), run, &count) && count == 0) {
		ret = error("run %lld in '%s' has no cells to export", (long long)runs[0], db);
		goto out_close;
	}
	to_stdout = !strcmp(file, "-");
	if (to_stdout) {
		of.f = stdout;
	} else if (outfile_open(&of, file, db, why, sizeof(why))) {
		ret = error("%s", why);
		goto out_close;
	}
	ret = csv_export_runs(store_db(st), runs, n_runs, of.f, &cells, why, sizeof(why));
	/* the last writes fail here: when standard output is flushed, or the file closed */
	if (!ret && to_stdout && fflush(stdout))
		ret = why_fail(-EIO, why, sizeof(why), "cannot write: %s", strerror(errno));
	else if (!ret && !to_stdout)
		ret = outfile_commit(&of, why, sizeof(why));
	else if (!to_stdout)
		outfile_abort(&of);
	if (ret) {
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
	if (all)
		free(runs);
	store_close(st);
	return ret;
}
