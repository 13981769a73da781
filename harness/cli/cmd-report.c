/*
 * cmd-report.c - `attnbench report`: a run's leaderboards in CAB's style, task metrics and
 * efficiency lengths, as a text table, Markdown or LaTeX (see report.h, efficiency.h).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "efficiency.h"
#include "error.h"
#include "plot.h"
#include "queries.h"
#include "report.h"
#include "options.h"
#include "store.h"

const char usage_report[] =
	"usage: attnbench report [--db PATH] [--run ID] [--baseline NAME] [--markdown | --latex]\n"
	"\n"
	"Leaderboards of a run (default: the latest), one per pattern, in CAB's style:\n"
	"each task's metrics are averaged over the cells every variant completed, z-normalised\n"
	"across the run's variants and signed so that higher is better, averaged per task, then\n"
	"over the tasks a variant has: its compositional index (CI), with delta against the\n"
	"baseline. Metrics: fidelity rel_err (lower is better) and cosine; passkey accuracy;\n"
	"recall accuracy; speed log10 median latency and log10 peak workspace (lower is\n"
	"better); causality share of cells passed. A variant missing a task is not penalised:\n"
	"its CI averages the tasks it has. Then each pattern's task metrics, and its efficiency\n"
	"lengths against the baseline (measured crossing with a 95% bootstrap interval, CAB's\n"
	"quadratic-vs-linear fit with R^2, a flag where they disagree, log-log slopes).\n"
	"\n"
	"Efficiency lengths are stored by 'run' against vanilla; for a run without them (an\n"
	"imported run, another --baseline) report computes them from the speed cells and\n"
	"stores them in the database's run_metrics table (a warning if it cannot write).\n"
	"\n"
	"  --db PATH        the database (default " DEFAULT_DB ")\n"
	"  --run ID         the run to report (default: the latest)\n"
	"  --baseline NAME  the variant delta and efficiency lengths refer to (default "
	EFFICIENCY_DEFAULT_BASELINE ")\n"
	"  --markdown       Markdown pipe tables\n"
	"  --latex          LaTeX table environments with booktabs rules: they compile in a\n"
	"                   document whose preamble has \\usepackage{booktabs}\n";

/* Whether the run has a cell of the variant (1), none (0), or -EIO. */
static int run_has_variant(sqlite3 *db, int64_t run_id, const char *variant)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT 1 FROM cells WHERE run_id = ? AND variant = ?"
			       " AND status <> 'unsupported' LIMIT 1", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_text(st, 2, variant, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -EIO;
}

/*
 * The run's efficiency lengths against baseline: stored ones, or else computed now and
 * stored through a second, writable connection. A failure to store is only a warning.
 */
static int efficiency_for_report(struct store *st, const char *db, int64_t run_id,
				 const char *baseline, struct eff_list *eff)
{
	struct store *rw;
	char why[256];
	int ret;

	ret = efficiency_load(store_db(st), run_id, baseline, eff);
	if (ret || eff->count)
		return ret;
	ret = efficiency_compute(store_db(st), run_id, baseline, eff);
	if (ret)
		return ret == -ENODATA ? 0 : ret;
	if (store_open(db, 0, &rw, why, sizeof(why))) {
		warning("cannot store the efficiency lengths in '%s': %s", db, why);
		return 0;
	}
	if (efficiency_save(store_db(rw), run_id, baseline, eff))
		warning("cannot store the efficiency lengths in '%s': %s", db,
			store_errmsg(rw));
	store_close(rw);
	return 0;
}

int cmd_report(int argc, char **argv)
{
	static const struct option options[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "run", required_argument, NULL, 'r' },
		{ "baseline", required_argument, NULL, 'b' },
		{ "markdown", no_argument, NULL, 'm' },
		{ "latex", no_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	struct report_options ro = {
		.baseline = EFFICIENCY_DEFAULT_BASELINE, .format = REPORT_TEXT,
	};
	const char *db = DEFAULT_DB, *run = NULL;
	struct eff_list eff = { 0 };
	bool baseline_given = false, format_given = false;
	struct store *st;
	char why[256];
	int opt, rc, ret;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":", options, NULL)) != -1) {
		switch (opt) {
		case 'd':
			db = optarg;
			break;
		case 'r':
			run = optarg;
			break;
		case 'b':
			if (!*optarg || strlen(optarg) >= 64)
				return error("--baseline needs a variant name (1 to 63 "
					     "characters)");
			ro.baseline = optarg;
			baseline_given = true;
			break;
		case 'm':
		case 'l':
			if (format_given)
				return error("choose one of --markdown and --latex");
			ro.format = opt == 'm' ? REPORT_MARKDOWN : REPORT_LATEX;
			format_given = true;
			break;
		default:
			return option_error(opt, argv, "report");
		}
	}
	if (optind != argc)
		return option_no_arguments("report");
	if (run && option_run_id("--run", run, &ro.run_id))
		return EXIT_USAGE;
	if (store_open(db, STORE_READONLY, &st, why, sizeof(why)))
		return error("cannot open database '%s': %s", db, why);
	if (!run) {
		ret = option_latest_run(st, db, "to report", &ro.run_id);
		if (ret)
			goto out_close;
	} else {
		rc = store_find_run(store_db(st), ro.run_id);
		if (rc) {
			ret = rc == -ENOENT ?
			      error("no run %" PRId64 " in '%s' (see 'attnbench list runs')",
				    ro.run_id, db) :
			      error("cannot read runs in '%s': %s", db, store_errmsg(st));
			goto out_close;
		}
	}
	if (baseline_given) {
		rc = run_has_variant(store_db(st), ro.run_id, ro.baseline);
		if (rc <= 0) {
			ret = rc ? error("cannot read run %" PRId64 ": %s", ro.run_id,
					 store_errmsg(st)) :
			      error("baseline '%s' has no cells in run %" PRId64, ro.baseline,
				    ro.run_id);
			goto out_close;
		}
	}
	rc = efficiency_for_report(st, db, ro.run_id, ro.baseline, &eff);
	if (rc) {
		ret = rc == -ENOMEM ? error("out of memory") :
		      error("cannot read the speed cells of run %" PRId64 ": %s", ro.run_id,
			    store_errmsg(st));
		goto out_close;
	}
	rc = report_write(stdout, store_db(st), &ro, &eff);
	if (rc == -ENODATA)
		ret = error("run %" PRId64 " has no fidelity, passkey, recall, speed or causality "
			    "results to rank", ro.run_id);
	else if (rc)
		ret = rc == -ENOMEM ? error("out of memory") :
		      error("cannot read run %" PRId64 ": %s", ro.run_id, store_errmsg(st));
	else
		ret = EXIT_OK;
	efficiency_list_release(&eff);
out_close:
	store_close(st);
	return ret;
}
