/*
 * cmd-slurm.c - `attnbench slurm`: a ready sbatch script for a suite in shards, a job
 * array and a dependent merge (sbatch.h).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "error.h"
#include "options.h"
#include "plan.h"
#include "plugin.h"
#include "rounds.h"
#include "sbatch.h"
#include "shard.h"
#include "suite.h"

const char usage_slurm[] =
	"usage: attnbench slurm --shards N [--suite NAME|FILE] [options] > job.sbatch\n"
	"\n"
	"Writes a Slurm batch script to stdout: a job array of N tasks, task i running\n"
	"'attnbench run --shard i+1/N' on the CPUs Slurm allocates it (--threads equal to\n"
	"them) into OUT/shard-K.db, and a merge job that starts when every task ended well,\n"
	"merges the shards into OUT/attnbench.db and writes OUT/report.md. Submit it with\n"
	"'sbatch job.sbatch'; after some tasks failed, submit it again: each task resumes its\n"
	"shard or finds it complete. Shards are balanced by estimated cost; the script's\n"
	"header gives the estimate per shard.\n"
	"\n"
	"  --shards N            tasks in the array, 1..4096\n"
	"  --suite NAME|FILE     quick, default, full, or a suite CSV file (default: default)\n"
	"  --out DIR             results folder, shared by the nodes (default: ./slurm-results;\n"
	"                        letters, digits and / . _ + - only)\n"
	"  --partition P         the partition to run in (default: the cluster's)\n"
	"  --time T              time limit per task, as Slurm writes it (e.g. 2:00:00)\n"
	"  --cpus-per-task C     CPUs per shard, and its --threads (default 2)\n"
	"  --seed N              input and variant seed (default 0)\n"
	"  --attnbench PATH      the program on the nodes (default: this one)\n"
	OPTION_PLUGIN_HELP
	"\n"
	"example:\n"
	"  attnbench slurm --suite full --shards 16 --time 1:00:00 > job.sbatch\n"
	"  sbatch job.sbatch\n";

enum {
	OPT_SHARDS = 256, OPT_SUITE, OPT_OUT, OPT_PARTITION, OPT_TIME, OPT_CPUS, OPT_SEED,
	OPT_ATTNBENCH, OPT_PLUGIN,
};

static const struct option slurm_options[] = {
	{ "shards", required_argument, NULL, OPT_SHARDS },
	{ "suite", required_argument, NULL, OPT_SUITE },
	{ "out", required_argument, NULL, OPT_OUT },
	{ "partition", required_argument, NULL, OPT_PARTITION },
	{ "time", required_argument, NULL, OPT_TIME },
	{ "cpus-per-task", required_argument, NULL, OPT_CPUS },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "attnbench", required_argument, NULL, OPT_ATTNBENCH },
	{ "plugin", required_argument, NULL, OPT_PLUGIN },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct slurm_args {
	struct sbatch_job job;
	const char *out;
	char program[PATH_MAX], out_path[PATH_MAX], suite_path[PATH_MAX];
};

static int parse_args(int argc, char **argv, struct slurm_args *a)
{
	double x;
	int opt;

	a->job = (struct sbatch_job){ .suite = "default", .cpus = 2 };
	a->out = "slurm-results";
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", slurm_options, NULL)) != -1) {
		switch (opt) {
		case OPT_SHARDS:
			if (option_number(optarg, 1, SHARD_MAX, &x) || x != (int)x)
				return error("--shards '%s' is not a whole number in 1..%d", optarg,
					     SHARD_MAX);
			a->job.shards = (int)x;
			break;
		case OPT_SUITE:
			a->job.suite = optarg;
			break;
		case OPT_OUT:
			a->out = optarg;
			break;
		case OPT_PARTITION:
			a->job.partition = optarg;
			break;
		case OPT_TIME:
			a->job.time = optarg;
			break;
		case OPT_CPUS:
			if (option_number(optarg, 1, 1024, &x) || x != (int)x)
				return error("--cpus-per-task '%s' is not a whole number in 1..1024",
					     optarg);
			a->job.cpus = (int)x;
			break;
		case OPT_SEED:
			if (option_number(optarg, 0, 9007199254740992.0, &x) || x != (double)(uint64_t)x)
				return error("--seed '%s' is not a whole number in 0..2^53", optarg);
			a->job.seed = (uint64_t)x;
			break;
		case OPT_ATTNBENCH:
			a->job.attnbench = optarg;
			break;
		case OPT_PLUGIN: {	/* loaded before parsing: checked, and its path resolved */
			int ret = option_plugin(optarg);

			if (ret)
				return ret;
			break;
		}
		case 'h':
			fputs(usage_slurm, stdout);
			return -1;
		default:
			return option_error(opt, argv, "slurm");
		}
	}
	if (optind < argc)
		return error("unexpected argument '%s' (see 'attnbench slurm --help')",
			     argv[optind]);
	if (!a->job.shards)
		return error("slurm needs --shards N: the number of tasks in the job array");
	return 0;
}

/*
 * The absolute paths the nodes will use for the program and a suite file. 0, or an exit
 * status after a one-line error.
 */
static int resolve_inputs(struct slurm_args *a)
{
	if (!a->job.attnbench) {
		if (!realpath("/proc/self/exe", a->program))
			return error("cannot find this program's path: %s", strerror(errno));
		a->job.attnbench = a->program;
	} else if (a->job.attnbench[0] != '/') {
		return error("--attnbench '%s' is not an absolute path", a->job.attnbench);
	}
	if (!suite_builtin_csv(a->job.suite)) {
		if (!realpath(a->job.suite, a->suite_path))
			return error("no suite '%s': not quick, default or full, nor a file (%s)",
				     a->job.suite, strerror(errno));
		a->job.suite = a->suite_path;
	}
	return 0;
}

/* The results folder, made now (so that a typo shows) and resolved. 0, or exit status. */
static int make_out(struct slurm_args *a)
{
	if (mkdir(a->out, 0777) && errno != EEXIST)
		return error("cannot make the results folder '%s': %s", a->out, strerror(errno));
	if (!realpath(a->out, a->out_path))
		return error("cannot resolve '%s': %s", a->out, strerror(errno));
	a->job.out = a->out_path;
	return 0;
}

/*
 * The suite planned as every shard will plan it (with the tasks' CPUs as threads), and
 * the estimated cost of each shard into cost. 0, or an exit status after an error.
 */
static int estimate(const struct slurm_args *a, double *cost)
{
	struct suite *suite = calloc(1, sizeof(*suite));
	struct selection sel = { .threads = a->job.cpus, .seed = a->job.seed };
	struct cell *cells = NULL;
	size_t count;
	char why[512];
	int ret = 0;

	if (!suite)
		return error("out of memory");
	if (suite_load(a->job.suite, suite, why, sizeof(why)) ||
	    plan_cells(suite, &sel, &cells, &count, why, sizeof(why)))
		ret = error("%s", why);
	else if (count < (size_t)a->job.shards)
		ret = error("--shards %d is more than the suite's %zu cells", a->job.shards, count);
	else if (shard_select(cells, &count, (struct shard){ 1, a->job.shards }, ROUNDS_DEFAULT,
			      cost))
		ret = error("out of memory");
	free(cells);
	free(suite);
	return ret;
}

int cmd_slurm(int argc, char **argv)
{
	struct slurm_args *a = calloc(1, sizeof(*a));
	double *cost = NULL;
	char why[512];
	int ret;

	if (!a)
		return error("out of memory");
	ret = parse_args(argc, argv, a);
	if (ret)
		goto out;
	/* everything checked before the folder is made: bad input leaves nothing behind */
	snprintf(a->out_path, sizeof(a->out_path), "/%s", a->out);
	if (sbatch_check(&(struct sbatch_job){ .out = a->out_path, .partition = a->job.partition,
					       .time = a->job.time }, why, sizeof(why))) {
		ret = error("%s", why);
		goto out;
	}
	ret = resolve_inputs(a);
	if (ret)
		goto out;
	cost = calloc((size_t)a->job.shards, sizeof(*cost));
	if (!cost) {
		ret = error("out of memory");
		goto out;
	}
	ret = estimate(a, cost);
	if (!ret)
		ret = make_out(a);
	if (ret)
		goto out;
	if (sbatch_check(&a->job, why, sizeof(why))) {
		ret = error("%s", why);
		goto out;
	}
	a->job.cost = cost;
	for (int i = 0; i < plugin_count() && i < SBATCH_MAX_PLUGINS; i++)
		a->job.plugins[a->job.n_plugins++] = plugin_at(i)->path;
	if (sbatch_write(stdout, &a->job) || fflush(stdout))
		ret = error("cannot write the script: %s", strerror(errno));
out:
	free(cost);
	free(a);
	return ret < 0 ? EXIT_OK : ret;
}
