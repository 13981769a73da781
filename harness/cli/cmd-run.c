/*
 * cmd-run.c - `attnbench run`: plan the cells, run each in a child, store each result
 * as soon as it is known.
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
#include "efficiency.h"
#include "environment.h"
#include "error.h"
#include "options.h"
#include "plan.h"
#include "plugin.h"
#include "provenance.h"
#include "queries.h"
#include "resume.h"
#include "rounds.h"
#include "run-loop.h"
#include "shard.h"
#include "store.h"
#include "tensor-sets.h"
#include "threads.h"
#include "timing.h"

const char usage_run[] =
	"usage: attnbench run [--suite NAME|FILE.csv] [selection] [options]\n"
	"       attnbench run --resume [RUN] [--db PATH] [-q]\n"
	"\n"
	"Runs every cell of a suite (default: 'default'), each in its own process, and\n"
	"stores each result as soon as it is known. --resume finishes a run that stopped\n"
	"(default: the newest that is not complete): its own command again, into the same\n"
	"run, for the cells it has no finished result for. Exit status: 0 every cell ran\n"
	"well, 1 some failed, crashed, timed out, ran out of memory, gave NaN or wrote\n"
	"outside their buffers, 2 bad input, 130 interrupted (SIGINT or SIGTERM: the\n"
	"cell running finishes or meets its time limit, then the run stops).\n"
	"\n"
	"selection (lists separated by commas; narrow or replace the suite's values):\n"
	"  --variants LIST     variants to run (default: all of the suite's)\n"
	"  --tasks LIST        tasks (see 'attnbench list tasks')\n"
	"  --patterns LIST     patterns: ns, cs, nc, cc\n"
	"  --lengths LIST      sequence lengths N, or NxM for cross patterns\n"
	"  --dims LIST         head dimensions d\n"
	"  --heads LIST        query heads H\n"
	"  --kv-heads LIST     key/value heads (must divide H; default H)\n"
	"  --batch LIST        batch sizes B\n"
	"  --set V.P=X         a variant hyperparameter (repeatable; see 'list variants')\n"
	OPTION_PLUGIN_HELP
	"  --inputs Q,K,V|DIR  fidelity on your own tensors instead of the suite: Q.npy,\n"
	"                      K.npy, V.npy ([B,H,N,d], [B,Hkv,M,d]), or a folder of\n"
	"                      NAMEq.npy, NAMEk.npy, NAMEv.npy sets; regime npy:NAME\n"
	"\n"
	"options:\n"
	"  --suite NAME|FILE   quick, default, full, or a suite CSV file\n"
	"  --seed N            input and variant seed (default 0)\n"
	"  --threads N         threads per cell for OpenMP and OpenBLAS (default: all cores)\n"
	"  --jobs N            untimed cells (fidelity, causality, passkey, recall) run N at\n"
	"                      a time, each on threads/N threads and 1/N of --mem-limit;\n"
	"                      timed ones always alone (default 2 with 2 threads or more)\n"
	"  --repeats N         timed repeats at least (default: the suite's)\n"
	"  --min-time S        timed seconds at least per cell (default: the suite's)\n"
	"  --rounds N          measure timed cells in N interleaved rounds, each in a fresh\n"
	"                      random order, sharing the repeats and time (default 3)\n"
	"  --shard K/N         run shard K of N of the suite's cells, balanced by estimated\n"
	"                      cost (for job arrays: see 'attnbench slurm'); again on a\n"
	"                      database holding that shard's run, it resumes it\n"
	"  --time-limit S      wall-clock limit per cell (default 600)\n"
	"  --mem-limit GIB     address-space limit per cell (default 90% of RAM)\n"
	"  --db PATH           database (default " DEFAULT_DB ")\n"
	"  --resume [RUN]      finish run RUN (see above); takes only --db and -q\n"
	"  --dry-run           print the cells and exit\n"
	"  -q, --quiet         no progress line\n";

enum {
	OPT_SUITE = 256, OPT_VARIANTS, OPT_TASKS, OPT_PATTERNS, OPT_LENGTHS, OPT_DIMS,
	OPT_HEADS, OPT_KV_HEADS, OPT_BATCH, OPT_SET, OPT_SEED, OPT_THREADS, OPT_REPEATS,
	OPT_MIN_TIME, OPT_ROUNDS, OPT_TIME_LIMIT, OPT_MEM_LIMIT, OPT_DB, OPT_DRY_RUN,
	OPT_RESUME, OPT_PLUGIN, OPT_INPUTS, OPT_SHARD, OPT_JOBS,
};

static const struct option run_options[] = {
	{ "suite", required_argument, NULL, OPT_SUITE },
	{ "variants", required_argument, NULL, OPT_VARIANTS },
	{ "tasks", required_argument, NULL, OPT_TASKS },
	{ "patterns", required_argument, NULL, OPT_PATTERNS },
	{ "lengths", required_argument, NULL, OPT_LENGTHS },
	{ "dims", required_argument, NULL, OPT_DIMS },
	{ "heads", required_argument, NULL, OPT_HEADS },
	{ "kv-heads", required_argument, NULL, OPT_KV_HEADS },
	{ "batch", required_argument, NULL, OPT_BATCH },
	{ "set", required_argument, NULL, OPT_SET },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "jobs", required_argument, NULL, OPT_JOBS },
	{ "repeats", required_argument, NULL, OPT_REPEATS },
	{ "min-time", required_argument, NULL, OPT_MIN_TIME },
	{ "rounds", required_argument, NULL, OPT_ROUNDS },
	{ "time-limit", required_argument, NULL, OPT_TIME_LIMIT },
	{ "mem-limit", required_argument, NULL, OPT_MEM_LIMIT },
	{ "db", required_argument, NULL, OPT_DB },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "resume", no_argument, NULL, OPT_RESUME },
	{ "plugin", required_argument, NULL, OPT_PLUGIN },
	{ "inputs", required_argument, NULL, OPT_INPUTS },
	{ "shard", required_argument, NULL, OPT_SHARD },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct run_args {
	const char *suite;
	const char *db;
	const char *inputs;	/* --inputs, or NULL */
	struct selection sel;
	struct shard shard;	/* --shard K/N, or n = 0 */
	int repeats, rounds;
	int jobs;		/* --jobs, or 0 for the default */
	double min_time, time_limit, mem_limit_gib;
	bool dry_run, quiet;
	bool resume;		/* --resume: the rest comes from the run */
	int64_t resume_run;	/* its RUN, 0 for the newest unfinished */
	int planning_options;	/* options given besides --db, -q and --resume */
};

static int parse_args(int argc, char **argv, struct run_args *a)
{
	struct selection *s = &a->sel;
	char why[512];
	double x;
	int opt;

	*a = (struct run_args){ .suite = "default", .db = DEFAULT_DB, .time_limit = 600,
				.min_time = -1, .rounds = ROUNDS_DEFAULT };
	s->threads = environment_usable_cpus();
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":qh", run_options, NULL)) != -1) {
		int ret = 0;

		switch (opt) {
		case OPT_SUITE:
			a->suite = optarg;
			break;
		case OPT_VARIANTS:
			ret = parse_variant_list(optarg, s->variants, &s->n_variants, why,
						 sizeof(why));
			break;
		case OPT_TASKS:
			ret = parse_task_list(optarg, s->tasks, &s->n_tasks, why, sizeof(why));
			break;
		case OPT_PATTERNS:
			ret = parse_pattern_list(optarg, &s->patterns, why, sizeof(why));
			break;
		case OPT_LENGTHS:
			ret = parse_length_list(optarg, s->lengths, &s->n_lengths, why, sizeof(why));
			break;
		case OPT_DIMS:
			ret = parse_int_list(optarg, "dim", 1, SUITE_MAX_DIM, s->dims, &s->n_dims,
					     why, sizeof(why));
			break;
		case OPT_HEADS:
			ret = parse_int_list(optarg, "heads", 1, SUITE_MAX_HEADS, s->heads,
					     &s->n_heads, why, sizeof(why));
			break;
		case OPT_KV_HEADS:
			ret = parse_int_list(optarg, "kv_heads", 1, SUITE_MAX_HEADS, s->kv_heads,
					     &s->n_kv_heads, why, sizeof(why));
			break;
		case OPT_BATCH:
			ret = parse_int_list(optarg, "batch", 1, SUITE_MAX_BATCH, s->batch,
					     &s->n_batch, why, sizeof(why));
			break;
		case OPT_SET:
			ret = params_parse(&s->params, optarg, why, sizeof(why));
			break;
		case OPT_SEED:
			if (option_number(optarg, 0, 9007199254740992.0, &x) || x != (double)(uint64_t)x)
				return error("--seed '%s' is not a whole number in 0..2^53", optarg);
			s->seed = (uint64_t)x;
			break;
		case OPT_THREADS:
			if (option_number(optarg, 1, 1024, &x) || x != (int)x)
				return error("--threads '%s' is not a whole number in 1..1024", optarg);
			s->threads = (int)x;
			break;
		case OPT_JOBS:
			if (option_number(optarg, 1, RUNNER_MAX_CHILDREN, &x) || x != (int)x)
				return error("--jobs '%s' is not a whole number in 1..%d", optarg,
					     RUNNER_MAX_CHILDREN);
			a->jobs = (int)x;
			break;
		case OPT_REPEATS:
			if (option_number(optarg, 1, 1000000, &x) || x != (int)x)
				return error("--repeats '%s' is not a whole number in 1..1000000",
					     optarg);
			a->repeats = (int)x;
			break;
		case OPT_MIN_TIME:
			if (option_number(optarg, 0, 86400, &a->min_time))
				return error("--min-time '%s' is not a number of seconds in 0..86400",
					     optarg);
			break;
		case OPT_ROUNDS:
			if (option_number(optarg, 1, ROUNDS_MAX_PLANNED, &x) || x != (int)x)
				return error("--rounds '%s' is not a whole number in 1..%d", optarg,
					     ROUNDS_MAX_PLANNED);
			a->rounds = (int)x;
			break;
		case OPT_TIME_LIMIT:
			if (option_number(optarg, 0.1, 86400 * 7, &a->time_limit))
				return error("--time-limit '%s' is not a number of seconds in "
					     "0.1..604800", optarg);
			break;
		case OPT_MEM_LIMIT:
			if (option_number(optarg, 0.01, 1 << 20, &a->mem_limit_gib))
				return error("--mem-limit '%s' is not a number of GiB in 0.01..1048576",
					     optarg);
			break;
		case OPT_DB:
			a->db = optarg;
			a->planning_options--;	/* counted below, but allowed with --resume */
			break;
		case OPT_RESUME:
			a->resume = true;
			a->planning_options--;
			break;
		case OPT_DRY_RUN:
			a->dry_run = true;
			break;
		case OPT_INPUTS:
			a->inputs = optarg;
			break;
		case OPT_SHARD:
			ret = shard_parse(optarg, &a->shard, why, sizeof(why));
			break;
		case OPT_PLUGIN:	/* loaded before parsing; again if abbreviated */
			ret = option_plugin(optarg);
			if (ret)
				return ret;
			break;
		case 'q':
			a->quiet = true;
			a->planning_options--;
			break;
		case 'h':
			fputs(usage_run, stdout);
			return -1;
		default:
			return option_error(opt, argv, "run");
		}
		if (ret)
			return error("%s", why);
		a->planning_options++;
	}
	if (a->resume) {
		if (a->planning_options > 0)
			return error("--resume takes only --db and -q: the run's own options are "
				     "its stored command line's");
		if (optind < argc && option_run_id("--resume", argv[optind++], &a->resume_run))
			return EXIT_USAGE;
	}
	if (optind < argc)
		return error("unexpected argument '%s' (see 'attnbench run --help')",
			     argv[optind]);
	/* two at a time by default: a small accuracy cell leaves a core idle in its start */
	if (!a->jobs)
		a->jobs = s->threads >= 2 ? 2 : 1;
	if (a->jobs > s->threads)
		return error("--jobs %d is more than the %d threads: each cell needs one of its "
			     "own", a->jobs, s->threads);
	if (a->inputs && (s->n_lengths || s->n_dims || s->n_heads || s->n_kv_heads ||
			  s->n_batch))
		return error("--inputs gives the shapes: it takes no --lengths, --dims, --heads,"
			     " --kv-heads or --batch");
	if (a->inputs && (s->n_tasks > 1 || (s->n_tasks && strcmp(s->tasks[0]->name,
								   "fidelity"))))
		return error("--inputs runs the fidelity task only");
	return 0;
}

/*
 * The tensors of --inputs, read and checked (and, resuming run, the very bytes it
 * started with) into *sets; 0, or an exit status after a one-line error.
 */
static int load_inputs(const char *spec, struct store *st, int64_t run,
		       struct tensor_sets **sets)
{
	char why[4400], stored[SHA256_HEX_LEN];

	*sets = calloc(1, sizeof(**sets));
	if (!*sets)
		return error("out of memory");
	if (tensor_sets_load(spec, *sets, why, sizeof(why)))
		return error("%s", why);
	for (int i = 0; run && i < (*sets)->count; i++)
		for (int t = 0; t < 3; t++) {
			const struct tensor_files *f = &(*sets)->files[i];
			int ret = store_input_sha256(store_db(st), run, f->name, tensor_names[t],
						     stored, sizeof(stored));

			if (ret && ret != -ENOENT)
				return error("cannot resume run %lld: %s", (long long)run,
					     store_errmsg(st));
			if (ret || strcmp(stored, f->arrays[t].sha256))
				return error("cannot resume run %lld: input %s of set '%s' ('%s') "
					     "is not the file the run started with",
					     (long long)run, tensor_names[t], f->name, f->paths[t]);
		}
	return 0;
}

/* Stores each input file of sets with run: its absolute path and SHA-256. */
static int record_inputs(struct store *st, int64_t run, const struct tensor_sets *sets)
{
	char real[PATH_MAX];

	for (int i = 0; i < sets->count; i++)
		for (int t = 0; t < 3; t++) {
			const struct tensor_files *f = &sets->files[i];
			const char *path = realpath(f->paths[t], real) ? real : f->paths[t];

			if (store_add_input(st, run, f->name, tensor_names[t], path,
					    f->arrays[t].sha256))
				return -EIO;
		}
	return 0;
}

static void format_duration(double seconds, char *buf, size_t len)
{
	long s = (long)(seconds + 0.5);

	if (s >= 3600)
		snprintf(buf, len, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
	else
		snprintf(buf, len, "%ld:%02ld", s / 60, s % 60);
}

static void describe_cell(const struct cell *c, char *buf, size_t len)
{
	int used = snprintf(buf, len, "%s %s %s n=%d", c->task->name, c->variant->name,
			    pattern_name(c->pattern), c->n);

	if (c->m != c->n)
		used += snprintf(buf + used, len - (size_t)used, " m=%d", c->m);
	snprintf(buf + used, len - (size_t)used, " d=%d h=%d%s%s", c->d, c->heads,
		 c->regime ? " " : "", c->regime ? c->regime : "");
}

/* The progress line: shown before each cell when stderr is a terminal, unless --quiet. */
static void show_progress(void *data, const struct run_loop_step *step)
{
	const bool *progress = data;
	char what[160], spent[32], left[32] = "?", round[32] = "";

	if (!*progress)
		return;
	describe_cell(step->cell, what, sizeof(what));
	format_duration(step->elapsed, spent, sizeof(spent));
	if (step->index > 0)
		format_duration(step->elapsed / (double)step->index *
				(double)(step->total - step->index), left, sizeof(left));
	if (step->round > step->rounds)
		snprintf(round, sizeof(round), ", extra round %d", step->round);
	else if (step->round > 0)
		snprintf(round, sizeof(round), ", round %d of %d", step->round, step->rounds);
	fprintf(stderr, "\r[%zu/%zu] %s elapsed, ~%s left: %s%s\033[K", step->index,
		step->total, spent, left, what, round);
}

/* A stored cell that did not run as it should: one warning line. */
static void warn_broken_cell(void *data, const struct run_loop_step *step,
			     const struct cell_result *r, bool stored)
{
	const bool *progress = data;
	char what[160];

	if (!stored || r->status == CELL_OK || r->status == CELL_UNSUPPORTED)
		return;
	describe_cell(step->cell, what, sizeof(what));
	if (*progress)
		fputs("\r\033[K", stderr);
	warning("%s: %s: %s", what, cell_status_name(r->status), r->reason);
}

static const struct run_loop_ops run_progress_ops = {
	.cell_start	= show_progress,
	.cell_done	= warn_broken_cell,
};

/* Creates the folder of the default database when the command runs elsewhere. */
static void make_parent(const char *path)
{
	char dir[4096];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		return;
	*slash = '\0';
	mkdir(dir, 0777);
}

/* The run's end: cells by status, and (resuming) how many had finished before. */
static void print_summary(const struct run_loop *rl, const char *status, double seconds,
			  size_t before)
{
	char spent[32];
	bool first = true;

	format_duration(seconds, spent, sizeof(spent));
	printf("run %lld %s: %zu cells (", (long long)rl->runs[0], status, rl->done);
	for (int s = 0; s < CELL_STATUS_COUNT; s++)
		if (rl->by_status[s]) {
			printf("%s%zu %s", first ? "" : ", ", rl->by_status[s], cell_status_name(s));
			first = false;
		}
	printf(") in %s", spent);
	if (before)
		printf(", after %zu finished before the resume", before);
	printf(" -> %s\n", rl->db);
}

static void print_plan(const struct cell *cells, size_t count)
{
	char what[160];

	for (size_t i = 0; i < count; i++) {
		describe_cell(&cells[i], what, sizeof(what));
		printf("%s\n", what);
	}
	printf("%zu cells\n", count);
}

/*
 * Keeps the cells of --shard K/N; with --dry-run, says what the shard holds against the
 * whole suite. 0, or an exit status after a one-line error.
 */
static int take_shard(const struct run_args *a, struct cell *cells, size_t *count,
		      const char *suite_id)
{
	double *cost = calloc((size_t)a->shard.n, sizeof(*cost)), least, most, total = 0;
	size_t all = *count;

	if (!cost || shard_select(cells, count, a->shard, a->rounds, cost)) {
		free(cost);
		return error("out of memory");
	}
	least = most = cost[0];
	for (int k = 0; k < a->shard.n; k++) {
		total += cost[k];
		least = cost[k] < least ? cost[k] : least;
		most = cost[k] > most ? cost[k] : most;
	}
	if (a->dry_run)
		printf("shard %d/%d of suite %.12s: %zu of %zu cells, estimated cost %.1f of %.1f "
		       "(shards %.1f to %.1f; nominal seconds)\n", a->shard.k, a->shard.n, suite_id,
		       *count, all, cost[a->shard.k - 1], total, least, most);
	free(cost);
	return 0;
}

/*
 * run --shard K/N into a database that already holds that shard's run (the same suite):
 * a job re-submitted after a failure finishes it instead of starting again. *handled is
 * set when so: the run was complete (nothing to do) or it was resumed; the exit status
 * is returned.
 */
static int shard_again(const struct run_args *a, const char *suite_id, bool *handled)
{
	struct store *st = NULL;
	char why[512], status[32], id[32];
	int64_t run;
	int ret;

	*handled = false;
	if (access(a->db, F_OK))
		return 0;
	if (store_open(a->db, 0, &st, why, sizeof(why)))
		return error("cannot open database '%s': %s", a->db, why);
	ret = store_find_shard(store_db(st), suite_id, a->shard.k, a->shard.n, &run);
	if (!ret)
		ret = store_run_status(store_db(st), run, status, sizeof(status));
	if (ret == -EIO)
		ret = error("cannot read '%s': %s", a->db, store_errmsg(st));
	store_close(st);
	if (ret)
		return ret == -ENOENT ? 0 : ret;
	*handled = true;
	if (!strcmp(status, "complete")) {
		printf("run %lld in %s already holds shard %d/%d of this suite, complete: "
		       "nothing to do\n", (long long)run, a->db, a->shard.k, a->shard.n);
		return EXIT_OK;
	}
	snprintf(id, sizeof(id), "%lld", (long long)run);
	{
		char *args[] = { "attnbench", "run", "--resume", id, "--db", (char *)a->db,
				 a->quiet ? "-q" : NULL, NULL };

		return cmd_run(a->quiet ? 6 : 5, args + 1);
	}
}

/*
 * Whether some cell's own tensors cannot fit in the address-space limit (0: none): such a
 * plan is refused before anything runs, with the first such cell named.
 */
static bool tensors_too_big(const struct cell *cells, size_t count, size_t limit)
{
	char what[160];

	for (size_t i = 0; limit && i < count; i++)
		if (plan_tensor_bytes(&cells[i]) > (double)limit) {
			describe_cell(&cells[i], what, sizeof(what));
			error("%s needs %.1f GiB for its tensors alone, more than the %.1f GiB "
			      "address-space limit of a cell (--mem-limit)", what,
			      plan_tensor_bytes(&cells[i]) / (1 << 30), (double)limit / (1 << 30));
			return true;
		}
	return false;
}

/*
 * The plugins a resumed run loads must be the bytes its first part ran: a rebuilt .so
 * would mix two variants under one name. 0, or an exit status after a one-line error.
 */
static int resume_same_plugins(struct store *st, int64_t run)
{
	char stored[SHA256_HEX_LEN];

	for (int i = 0; i < plugin_count(); i++) {
		const struct plugin *pl = plugin_at(i);
		int ret = store_plugin_sha256(store_db(st), run, pl->variant->name, stored,
					      sizeof(stored));

		if (ret && ret != -ENOENT)
			return error("cannot resume run %lld: %s", (long long)run,
				     store_errmsg(st));
		if (ret || strcmp(stored, pl->sha256))
			return error("cannot resume run %lld: plugin '%s' (variant %s) is not "
				     "the file the run started with (SHA-256 %.12s..., now "
				     "%.12s...)", (long long)run, pl->path, pl->variant->name,
				     ret ? "none" : stored, pl->sha256);
	}
	return 0;
}

/*
 * For --resume: the run to finish, with its stored command line parsed into a (the
 * database and -q as given now). 0, or an exit status after a one-line error.
 */
static int resume_args(struct run_args *a, struct store **st, struct resume_target *t)
{
	struct run_args given = *a;
	char why[512];
	int ret;

	if (access(a->db, F_OK))
		return error("cannot resume: no database '%s'", a->db);
	if (store_open(a->db, 0, st, why, sizeof(why)))
		return error("cannot open database '%s': %s", a->db, why);
	if (resume_find(*st, a->resume_run, t, why, sizeof(why)))
		return error("cannot resume: %s", why);
	/* stored as the program got it: the program, "run", then the options */
	if (t->argc < 2 || strcmp(t->argv[1], "run"))
		return error("cannot resume run %lld: its command line is not a run's",
			     (long long)t->run);
	ret = option_plugins(t->argc - 1, t->argv + 1);
	if (ret)
		return ret;
	ret = resume_same_plugins(*st, t->run);
	if (ret)
		return ret;
	ret = parse_args(t->argc - 1, t->argv + 1, a);
	if (ret)
		return ret < 0 ? error("cannot resume run %lld: its command line asks for help",
				       (long long)t->run) : ret;
	if (a->resume || a->dry_run)
		return error("cannot resume run %lld: its command line is not a run's",
			     (long long)t->run);
	a->db = given.db;
	a->quiet = given.quiet;
	return 0;
}

int cmd_run(int argc, char **argv)
{
	struct provenance prov;
	struct run_args a;
	struct resume_target target = { 0 };
	struct suite *suite = NULL;
	struct store *st = NULL;
	struct cell *cells = NULL;
	struct tensor_sets *inputs = NULL;
	struct run_loop rl = { .n_runs = 1, .ops = &run_progress_ops };
	const char *status;
	size_t count;
	bool progress, resuming;
	double peak, gbps, started = timing_now();
	char why[512], suite_id[SHA256_HEX_LEN];
	char loop_why[PATH_MAX + 512];	/* room for the database's path and SQLite's message */
	int ret = parse_args(argc, argv, &a);

	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	resuming = a.resume;
	if (resuming) {
		ret = resume_args(&a, &st, &target);
		if (ret)
			goto out;
	}
	if (a.inputs) {
		ret = load_inputs(a.inputs, st, resuming ? target.run : 0, &inputs);
		if (ret)
			goto out;
		a.sel.inputs = inputs;
	}
	suite = calloc(1, sizeof(*suite));
	if (!suite) {
		ret = error("out of memory");
		goto out;
	}
	if (suite_load(a.suite, suite, why, sizeof(why))) {
		ret = error("%s", why);
		goto out;
	}
	if (a.repeats) {	/* a count asked for is a count kept, however long the calls */
		suite->measure.min_repeats = a.repeats;
		suite->measure.long_call = 0;
	}
	if (a.min_time >= 0)	/* --min-time 0 is a real choice: stop at the repeat count */
		suite->measure.min_seconds = a.min_time;
	if (plan_cells(suite, &a.sel, &cells, &count, why, sizeof(why))) {
		ret = error("%s", why);
		goto out;
	}
	if (shard_suite_id(cells, count, a.sel.seed, a.rounds, suite_id)) {
		ret = error("out of memory");
		goto out;
	}
	if (a.shard.n) {
		bool handled = false;

		ret = take_shard(&a, cells, &count, suite_id);
		if (!ret && !resuming && !a.dry_run)
			ret = shard_again(&a, suite_id, &handled);
		if (ret || handled)
			goto out;
	}
	if (a.dry_run) {
		print_plan(cells, count);
		ret = EXIT_OK;
		goto out;
	}
	rl.limits.bytes = a.mem_limit_gib > 0 ? (size_t)(a.mem_limit_gib * (1 << 30)) :
			  run_loop_default_mem_limit();
	if (tensors_too_big(cells, count, rl.limits.bytes)) {
		ret = EXIT_USAGE;
		goto out;
	}

	if (!resuming && !strcmp(a.db, DEFAULT_DB))
		make_parent(a.db);
	if (!resuming && store_open(a.db, 0, &st, why, sizeof(why))) {
		ret = error("cannot open database '%s': %s", a.db, why);
		goto out;
	}
	if (resuming && resume_remaining(st, &target, cells, &count, why, sizeof(why))) {
		ret = error("cannot resume run %lld: %s", (long long)target.run, why);
		goto out;
	}
	if (provenance_collect(&prov, a.sel.threads, (unsigned long long)a.sel.seed, a.rounds,
			       a.suite, argc + 1, argv - 1)) {
		ret = error("out of memory");
		goto out;
	}
	if (prov.values[PROV_WARNINGS])
		warning("measurements may be unreliable: %s", prov.values[PROV_WARNINGS]);
	rl.store = st;
	rl.db = a.db;
	rl.cells = cells;
	rl.count = count;
	rl.rounds = a.rounds;
	rl.jobs = a.jobs;
	rl.seed = a.sel.seed;
	rl.limits.seconds = a.time_limit;
	progress = !a.quiet && isatty(STDERR_FILENO);
	rl.data = &progress;
	if (resuming) {
		rl.runs[0] = target.run;
		ret = resume_take_over(st, target.run, prov.values[PROV_DRIVER]);
	} else {
		ret = run_loop_begin(&rl, &prov);
		if (!ret)
			ret = store_set_run_suite(st, rl.runs[0], suite_id, a.shard.k, a.shard.n);
		if (!ret && inputs)
			ret = record_inputs(st, rl.runs[0], inputs);
	}
	provenance_release(&prov);
	if (ret) {
		ret = error("cannot record the run in '%s': %s", a.db, store_errmsg(st));
		goto out;
	}
	run_loop_catch_signals(&rl);

	if (!a.quiet && resuming)
		fprintf(stderr, "run %lld resumed: %zu cells of suite '%s' had finished, %zu to go,"
			" with %d threads into %s\n", (long long)rl.runs[0], target.done, a.suite,
			count, a.sel.threads, a.db);
	else if (!a.quiet)
		fprintf(stderr, "run %lld: %zu cells of suite '%s' with %d threads into %s\n",
			(long long)rl.runs[0], count, a.suite, a.sel.threads, a.db);
	/* a resumed run keeps the peak it measured at its start */
	if (!resuming && !run_loop_measure_peak(&rl, a.sel.threads, &peak)) {
		if (!a.quiet)
			fprintf(stderr, "SGEMM peak of this machine: %.1f GFLOP/s\n", peak);
	} else if (!resuming) {
		warning("could not measure the SGEMM peak; peak_fraction will be empty");
	}
	if (!resuming && !run_loop_measure_bandwidth(&rl, a.sel.threads, &gbps)) {
		if (!a.quiet)
			fprintf(stderr, "triad bandwidth of this machine: %.1f GB/s\n", gbps);
	} else if (!resuming) {
		warning("could not measure the memory bandwidth; bandwidth_fraction will be "
			"empty");
	}
	if (run_loop_use_reference_cache(&rl))
		warning("no reference cache: every fidelity cell computes its own reference");
	ret = run_loop_run(&rl, loop_why, sizeof(loop_why));
	if (ret) {
		ret = error("%s", loop_why);
		run_loop_finish(&rl, run_loop_status(ret, false));
	} else {
		bool failed = run_loop_cells_failed(&rl) || target.failed;

		if (progress)
			fputs("\r\033[K", stderr);
		status = run_loop_status(0, failed);
		/* efficiency lengths against the default baseline, for report and plot */
		if (!run_loop_interrupted()) {
			int rc = efficiency_update_run(store_db(st), rl.runs[0],
						       EFFICIENCY_DEFAULT_BASELINE);

			if (rc && rc != -ENODATA)
				warning("cannot store the efficiency lengths of run %lld: %s",
					(long long)rl.runs[0], rc == -EIO ? store_errmsg(st) :
					strerror(-rc));
		}
		run_loop_finish(&rl, status);
		print_summary(&rl, status, timing_now() - started, target.done);
		if (run_loop_interrupted())
			fprintf(stderr, "attnbench: run %lld interrupted; finish it with: attnbench "
				"run --resume %lld --db %s\n", (long long)rl.runs[0],
				(long long)rl.runs[0], a.db);
		ret = run_loop_interrupted() ? EXIT_INTERRUPTED : failed ? EXIT_FAILED : EXIT_OK;
	}
	run_loop_restore_signals(&rl);
out:
	store_close(st);
	free(cells);
	free(suite);
	if (inputs)
		tensor_sets_release(inputs);
	free(inputs);
	resume_release(&target);
	return ret;
}
