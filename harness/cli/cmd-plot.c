/*
 * cmd-plot.c - `attnbench plot`: figures of a run with gnuplot, as PDF, PNG and SVG, with
 * the data files and scripts beside them (see plot.h).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "error.h"
#include "plot.h"
#include "options.h"
#include "queries.h"
#include "store.h"

const char usage_plot[] =
	"usage: attnbench plot [--db PATH] [--run ID] [--out DIR] [--format pdf,png,svg]\n"
	"                      [--size column|page] [--baseline VARIANT]\n"
	"                      [--pareto-length N]\n"
	"\n"
	"Draws the figures of a run with gnuplot (package gnuplot-nox), per pattern P:\n"
	"  latency-P         median latency vs length, log-log, 95% interval (under 6\n"
	"                    samples, [min, max] and the level it reaches in NAME.dat)\n"
	"  memory-P          peak workspace vs length, log-log\n"
	"  speedup-P         baseline latency / variant latency vs length, with the 95%\n"
	"                    bootstrap interval of the ratio of medians of the samples\n"
	"  efficiency-P      efficiency length in time and memory against the baseline\n"
	"                    (from run_metrics): measured, CAB's fit, none in range, or\n"
	"                    below range (cheaper at every length: an arrow, no bar)\n"
	"  pareto-P          mean recall accuracy (passkey without recall) vs latency\n"
	"                    at one length, with the Pareto front\n"
	"  roofline-P        achieved GFLOP/s vs FLOP per byte moved, a point per variant\n"
	"                    at its largest length, under the SGEMM and triad roofs\n"
	"                    measured at the run's start (runs that measured both)\n"
	"  fidelity-P        relative Frobenius error vs length, a panel per regime\n"
	"  passkey-P         passkey accuracy by length and needle depth, per variant\n"
	"  recall-P          recall accuracy vs key-value pairs, queries far from the\n"
	"                    pairs; recall-packed-P with the queries right after them\n"
	"  recall-state-P    recall accuracy vs analytic state size, a point per d;\n"
	"                    recall-state-packed-P likewise\n"
	"Each NAME.pdf/.png/.svg has NAME.dat and NAME.gp beside it; style.gp holds the\n"
	"palette, one style per variant, font and width: edit it and run\n"
	"'gnuplot NAME.gp' in the directory to restyle.\n"
	"\n"
	"  --db PATH          the database (default " DEFAULT_DB ")\n"
	"  --run ID           the run to plot (default: the latest)\n"
	"  --out DIR          where figures go (default plots/<run-id>/)\n"
	"  --format LIST      comma-separated formats among pdf, png, svg (default all)\n"
	"  --size SIZE        column (3.5 in wide) or page (7 in, the default); 8 pt text\n"
	"  --baseline NAME    the variant speed-ups and efficiency lengths are against\n"
	"                     (default " PLOT_DEFAULT_BASELINE ")\n"
	"  --pareto-length N  the speed length of the Pareto front (default: the largest)\n"
	"  --mix-machines     plot a run merged from shards that ran on different machines\n"
	"                     (CPU model or threads): its latencies compare machines too\n";

int cmd_plot(int argc, char **argv)
{
	static const struct option options[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "run", required_argument, NULL, 'r' },
		{ "out", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, 'f' },
		{ "size", required_argument, NULL, 's' },
		{ "baseline", required_argument, NULL, 'b' },
		{ "pareto-length", required_argument, NULL, 'p' },
		{ "mix-machines", no_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	const char *db = DEFAULT_DB, *out = NULL, *run = NULL, *pareto = NULL;
	struct plot_options po = { .formats = PLOT_ALL_FORMATS };
	char why[512], gnuplot[4096], dir[4096], bad[64], machines[512];
	struct store *st;
	int opt, rc, figures, n_machines;
	bool mix_machines = false;

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
		case 's':
			if (plot_parse_size(optarg, &po.size))
				return error("unknown size '%s' in --size (accepted: column, page)",
					     optarg);
			break;
		case 'b':
			if (!*optarg)
				return error("--baseline needs a variant name");
			po.baseline = optarg;
			break;
		case 'p':
			pareto = optarg;
			break;
		case 'm':
			mix_machines = true;
			break;
		default:
			return option_error(opt, argv, "plot");
		}
	}
	if (optind != argc)
		return option_no_arguments("plot");
	if (run && option_run_id("--run", run, &po.run_id))
		return EXIT_USAGE;
	if (pareto) {
		char *end;
		long long v;

		errno = 0;
		v = strtoll(pareto, &end, 10);
		if (errno || end == pareto || *end || v < 1 || v > 1L << 30)
			return error("--pareto-length needs a sequence length (a whole number >= 1),"
				     " not '%s'", pareto);
		po.pareto_length = (long)v;
	}
	if (plot_find_gnuplot(gnuplot, sizeof(gnuplot)))
		return error("gnuplot not found: install the 'gnuplot-nox' package");
	po.gnuplot = gnuplot;
	if (store_open(db, STORE_READONLY, &st, why, sizeof(why)))
		return error("cannot open database '%s': %s", db, why);
	if (!run && option_latest_run(st, db, "to plot", &po.run_id)) {
		store_close(st);
		return EXIT_USAGE;
	}
	/* a run merged from shards on different machines: its latency curves mix them */
	n_machines = store_run_machines(store_db(st), po.run_id, machines, sizeof(machines));
	if (n_machines < 0) {
		error("cannot read the shards of run %" PRId64 ": %s", po.run_id, store_errmsg(st));
		store_close(st);
		return EXIT_USAGE;
	}
	if (n_machines > 1 && !mix_machines) {
		store_close(st);
		return error("run %" PRId64 " was merged from shards on %d machines (%s): its "
			     "latency figures would mix them (--mix-machines plots anyway)",
			     po.run_id, n_machines, machines);
	}
	if (n_machines > 1)
		warning("run %" PRId64 " ran on %d machines (%s): latency figures mix them "
			"(--mix-machines)", po.run_id, n_machines, machines);
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
