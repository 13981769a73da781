/*
 * cmd-plot.c - `attnbench plot`: figures of a run with gnuplot, as PDF, PNG and SVG, with
 * the data files and scripts beside them (see plot.h).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "error.h"
#include "plot.h"
#include "store.h"

const char usage_plot[] =
	"usage: attnbench plot [--db PATH] [--run ID] [--out DIR] [--format pdf,png,svg]\n"
	"\n"
	"Draws the figures of a run with gnuplot (package gnuplot-nox), one per pattern:\n"
	"  latency-P   median latency vs length, log-log, 95% interval of the median\n"
	"  memory-P    peak workspace vs length, log-log\n"
	"  passkey-P   passkey accuracy by length and needle depth, a panel per variant\n"
	"  recall-P    recall accuracy vs key-value pairs at d = 64, with chance\n"
	"Each NAME.pdf/.png/.svg has NAME.dat and NAME.gp beside it; style.gp holds the\n"
	"palette, one style per variant, fonts and size: edit it and run 'gnuplot NAME.gp'\n"
	"in the directory to restyle.\n"
	"\n"
	"  --db PATH      the database (default " DEFAULT_DB ")\n"
	"  --run ID       the run to plot (default: the latest)\n"
	"  --out DIR      where figures go (default plots/<run-id>/)\n"
	"  --format LIST  comma-separated formats among pdf, png, svg (default all)\n";

int cmd_plot(int argc, char **argv)
{
	static const struct option options[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "run", required_argument, NULL, 'r' },
		{ "out", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	const char *db = DEFAULT_DB, *out = NULL, *run = NULL;
	struct plot_options po = { .formats = PLOT_ALL_FORMATS };
	char why[512], gnuplot[4096], dir[4096], bad[64];
	struct store *st;
	int opt, rc, figures;

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
		case 'o':
			out = optarg;
			break;
		case 'f':
			if (plot_parse_formats(optarg, &po.formats, bad, sizeof(bad)))
				return error("unknown format '%s' in --format (accepted: pdf, png, "
					     "svg, comma-separated)", bad);
			break;
		case ':':
			return error("option '%s' needs a value", argv[optind - 1]);
		default:
			return error("unknown option '%s' (see 'attnbench plot --help')",
				     argv[optind - 1]);
		}
	}
	if (optind != argc)
		return error("plot takes no arguments, only options (see 'attnbench plot --help')");
	if (run) {
		char *end;

		errno = 0;
		po.run_id = strtoll(run, &end, 10);
		if (errno || end == run || *end || po.run_id < 1)
			return error("--run needs a run id (a whole number >= 1), not '%s'", run);
	}
	if (plot_find_gnuplot(gnuplot, sizeof(gnuplot)))
		return error("gnuplot not found: install the 'gnuplot-nox' package");
	po.gnuplot = gnuplot;
	if (store_open(db, STORE_READONLY, &st, why, sizeof(why)))
		return error("cannot open database '%s': %s", db, why);
	if (!run) {
		rc = plot_latest_run(st, &po.run_id);
		if (rc) {
			store_close(st);
			return rc == -ENOENT ? error("no runs in '%s' to plot", db) :
			       error("cannot read runs in '%s': %s", db, store_errmsg(st));
		}
	}
	if (!out) {
		snprintf(dir, sizeof(dir), "plots/%" PRId64, po.run_id);
		out = dir;
	}
	po.out_dir = out;
	rc = plot_run(st, &po, &figures, why, sizeof(why));
	store_close(st);
	if (rc)
		return error("%s", why);
	printf("%d figures of run %" PRId64 " in %s/\n", figures, po.run_id, out);
	return EXIT_OK;
}
