/*
 * cmd-compare.c - `attnbench compare`: variants against a baseline in one run, a run
 * against an earlier run, or the baseline against itself (A/A) to measure how often the
 * verdict rule calls noise a change on this machine. Statistics in compare.[ch].
 */
#include <csv.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "compare.h"
#include "environment.h"
#include "error.h"
#include "options.h"
#include "queries.h"
#include "plan.h"
#include "provenance.h"
#include "rounds.h"
#include "run-loop.h"
#include "store.h"
#include "threads.h"
#include "timing.h"

const char usage_compare[] =
	"usage: attnbench compare [--baseline VARIANT] [--run ID] [options] [VARIANT...]\n"
	"       attnbench compare --run NEW --against OLD [--force] [options] [VARIANT...]\n"
	"       attnbench compare --aa [--variant VARIANT] [--lengths LIST] [--repeats N]\n"
	"\n"
	"Compares variants with a baseline variant of the same run (default: every other\n"
	"variant against vanilla in the latest run), or each variant with itself in an\n"
	"earlier run (--against). Per task, pattern, regime and shape: the accuracy with its\n"
	"Wilson 95% interval and its difference to the baseline with a p-value, the latency\n"
	"ratio (variant / baseline medians) with a 95% bootstrap interval, the ratio of the\n"
	"fastest calls, the peak-workspace and peak-RSS ratios, and a verdict:\n"
	"  faster / slower   the latency interval lies wholly below 1 - T / above 1 + T, and\n"
	"                    so does the ratio of the fastest calls (other work on the\n"
	"                    machine slows some calls, rarely all of them)\n"
	"  better / worse    the accuracy differs by A or more with p < 0.05 (exact McNemar\n"
	"                    test on the trials both saw; Fisher's exact test otherwise)\n"
	"  no significant change   otherwise\n"
	"\n"
	"  --baseline VARIANT    the baseline variant (default vanilla)\n"
	"  --run ID              the run to read (default: the latest, A/A runs aside)\n"
	"  --against ID          compare with the same variants in run ID instead; refused\n"
	"                        when the runs' machine or build differ, unless --force\n"
	"  --force               compare runs whose provenance differs\n"
	"  --mix-machines        compare a run merged from shards that ran on different\n"
	"                        machines (CPU model or threads), whose latencies then\n"
	"                        compare machines too\n"
	"  --tasks LIST          only these tasks (default: all with latency or accuracy)\n"
	"  --patterns LIST       only these patterns: ns, cs, nc, cc\n"
	"  --threshold T         latency noise threshold (default 0.05: 5%; measure what\n"
	"                        this machine needs with --aa)\n"
	"  --accuracy-threshold A  smallest accuracy difference that counts (default 0.02)\n"
	"  --csv, --markdown     output format (default: an aligned table)\n"
	"  --fail-on-regression  exit 1 when a cell is slower or worse, or broke (crashed,\n"
	"                        failed, ...) where the baseline ran; also when the run is\n"
	"                        unfinished or lacks cells the --against run has\n"
	"  --db PATH             the database (default " DEFAULT_DB ")\n"
	"  --plugin PATH.so      load a variant built outside attnbench (repeatable)\n"
	"\n"
	"A/A test: --aa runs the variant's speed cells twice, interleaved (A, A', A, A', ...),\n"
	"stores them as two runs of suite 'aa', compares A' against A and counts the cells\n"
	"the rule calls faster or slower: this machine's false-positive rate (exit 1 when\n"
	"above 5%).\n"
	"  --variant VARIANT     the variant (default vanilla)\n"
	"  --lengths LIST        lengths N (default 128,256,512,1024,2048)\n"
	"  --patterns LIST       patterns (default: every pattern of the variant)\n"
	"  --repeats N           timed calls per cell at least (default 20)\n"
	"  --min-time S          timed seconds per cell at least (default 0.5)\n"
	"  --threads N           threads per cell (default: all cores)\n"
	"  -q, --quiet           no progress line\n"
	"\n"
	"examples:\n"
	"  attnbench compare --baseline vanilla flash linear --tasks speed --patterns cs\n"
	"  attnbench compare --run 8 --against 5 flash --fail-on-regression\n";

enum format { FORMAT_TABLE, FORMAT_CSV, FORMAT_MARKDOWN };

enum {
	OPT_BASELINE = 256, OPT_RUN, OPT_AGAINST, OPT_FORCE, OPT_MIX_MACHINES, OPT_TASKS, OPT_PATTERNS,
	OPT_THRESHOLD, OPT_CSV, OPT_MARKDOWN, OPT_FAIL, OPT_DB, OPT_AA, OPT_VARIANT,
	OPT_LENGTHS, OPT_REPEATS, OPT_MIN_TIME, OPT_THREADS, OPT_ACCURACY_THRESHOLD, OPT_PLUGIN,
};

static const struct option compare_options[] = {
	{ "baseline", required_argument, NULL, OPT_BASELINE },
	{ "run", required_argument, NULL, OPT_RUN },
	{ "against", required_argument, NULL, OPT_AGAINST },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "mix-machines", no_argument, NULL, OPT_MIX_MACHINES },
	{ "tasks", required_argument, NULL, OPT_TASKS },
	{ "patterns", required_argument, NULL, OPT_PATTERNS },
	{ "threshold", required_argument, NULL, OPT_THRESHOLD },
	{ "accuracy-threshold", required_argument, NULL, OPT_ACCURACY_THRESHOLD },
	{ "csv", no_argument, NULL, OPT_CSV },
	{ "markdown", no_argument, NULL, OPT_MARKDOWN },
	{ "fail-on-regression", no_argument, NULL, OPT_FAIL },
	{ "db", required_argument, NULL, OPT_DB },
	{ "aa", no_argument, NULL, OPT_AA },
	{ "variant", required_argument, NULL, OPT_VARIANT },
	{ "lengths", required_argument, NULL, OPT_LENGTHS },
	{ "repeats", required_argument, NULL, OPT_REPEATS },
	{ "min-time", required_argument, NULL, OPT_MIN_TIME },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "plugin", required_argument, NULL, OPT_PLUGIN },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* The A/A lengths: small enough that 20 pairs of cells take about a minute. */
static const char aa_default_lengths[] = "128,256,512,1024,2048";

/* More A/A cells than this share called significant means the rule is wrong here. */
#define AA_MAX_FALSE_POSITIVES 0.05

struct compare_args {
	const char *db, *baseline, *variant, *lengths;
	int64_t run, against;		/* 0: not given */
	bool force, mix_machines, fail_on_regression, aa, quiet, any_aa_option;
	const char *tasks[SUITE_MAX_LIST];
	int n_tasks;
	unsigned int patterns;
	double threshold, accuracy_threshold;
	enum format format;
	const char **variants;		/* positional arguments */
	int n_variants;
	int repeats, threads;
	double min_time;		/* < 0: the suite's */
};

static int parse_option(int opt, struct compare_args *a, char **argv)
{
	const struct task_ops *tasks[SUITE_MAX_LIST];
	char why[512];
	double x;

	switch (opt) {
	case OPT_BASELINE:
		a->baseline = optarg;
		break;
	case OPT_RUN:
		return option_run_id("--run", optarg, &a->run);
	case OPT_AGAINST:
		return option_run_id("--against", optarg, &a->against);
	case OPT_MIX_MACHINES:
		a->mix_machines = true;
		return 0;
	case OPT_FORCE:
		a->force = true;
		break;
	case OPT_TASKS:
		if (parse_task_list(optarg, tasks, &a->n_tasks, why, sizeof(why)))
			return error("%s", why);
		for (int i = 0; i < a->n_tasks; i++)
			a->tasks[i] = tasks[i]->name;
		break;
	case OPT_PATTERNS:
		if (parse_pattern_list(optarg, &a->patterns, why, sizeof(why)))
			return error("%s", why);
		break;
	case OPT_THRESHOLD:
		if (option_number(optarg, 0, 0.99, &a->threshold))
			return error("--threshold '%s' is not a number in 0..0.99 (0.05 is 5%%)",
				     optarg);
		break;
	case OPT_ACCURACY_THRESHOLD:
		if (option_number(optarg, 0, 1, &a->accuracy_threshold))
			return error("--accuracy-threshold '%s' is not a number in 0..1 (0.02 is "
				     "2 points)", optarg);
		break;
	case OPT_CSV:
	case OPT_MARKDOWN:
		if (a->format != FORMAT_TABLE)
			return error("choose one of --csv and --markdown");
		a->format = opt == OPT_CSV ? FORMAT_CSV : FORMAT_MARKDOWN;
		break;
	case OPT_FAIL:
		a->fail_on_regression = true;
		break;
	case OPT_DB:
		a->db = optarg;
		break;
	case OPT_AA:
		a->aa = true;
		break;
	case OPT_VARIANT:
		a->variant = optarg;
		a->any_aa_option = true;
		break;
	case OPT_LENGTHS:
		a->lengths = optarg;
		a->any_aa_option = true;
		break;
	case OPT_REPEATS:
		if (option_number(optarg, 1, 1000000, &x) || x != (int)x)
			return error("--repeats '%s' is not a whole number in 1..1000000", optarg);
		a->repeats = (int)x;
		a->any_aa_option = true;
		break;
	case OPT_MIN_TIME:
		if (option_number(optarg, 0, 86400, &a->min_time))
			return error("--min-time '%s' is not a number of seconds in 0..86400",
				     optarg);
		a->any_aa_option = true;
		break;
	case OPT_THREADS:
		if (option_number(optarg, 1, 1024, &x) || x != (int)x)
			return error("--threads '%s' is not a whole number in 1..1024", optarg);
		a->threads = (int)x;
		a->any_aa_option = true;
		break;
	case OPT_PLUGIN:	/* loaded before parsing; again if abbreviated */
		return option_plugin(optarg);
	case 'q':
		a->quiet = true;
		break;
	case 'h':
		fputs(usage_compare, stdout);
		return -1;
	default:
		return option_error(opt, argv, "compare");
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct compare_args *a)
{
	int opt, ret;

	*a = (struct compare_args){ .db = DEFAULT_DB, .threshold = COMPARE_THRESHOLD,
				    .accuracy_threshold = COMPARE_ACCURACY_THRESHOLD,
				    .min_time = -1 };
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":qh", compare_options, NULL)) != -1)
		if ((ret = parse_option(opt, a, argv)))
			return ret;
	a->variants = (const char **)argv + optind;
	a->n_variants = argc - optind;
	for (int i = 0; i < a->n_variants; i++)
		if (a->variants[i][0] == '-')
			return error("unknown option '%s' (see 'attnbench compare --help')",
				     a->variants[i]);
	if (a->aa) {
		if (a->run || a->against || a->n_variants || a->n_tasks || a->force)
			return error("--aa runs new cells: it takes no --run, --against, --force, "
				     "--tasks or variant arguments (use --variant)");
		if (a->baseline && a->variant && strcmp(a->baseline, a->variant))
			return error("--aa compares one variant with itself: give --variant or "
				     "--baseline, not both");
		if (!a->variant)
			a->variant = a->baseline ? a->baseline : "vanilla";
		return 0;
	}
	if (a->any_aa_option)
		return error("--variant, --lengths, --repeats, --min-time and --threads go with "
			     "--aa (name variants as arguments)");
	if (a->against && a->baseline)
		return error("--against compares each variant with itself in the other run: "
			     "drop --baseline");
	if (a->force && !a->against)
		return error("--force only applies with --against");
	if (!a->against && !a->baseline)
		a->baseline = "vanilla";
	return 0;
}

/* ---- formatting ---- */

/* A ratio with as many digits as its size needs: 0.00192, 0.523, 12.4, 1.5e+04. */
static void format_ratio(char *buf, size_t len, double x)
{
	if (!isfinite(x))
		snprintf(buf, len, "-");
	else if (x == 0)
		snprintf(buf, len, "0");
	else if (x < 0.1)
		snprintf(buf, len, "%.2g", x);
	else if (x < 10)
		snprintf(buf, len, "%.3f", x);
	else if (x < 1000)
		snprintf(buf, len, "%.1f", x);
	else
		snprintf(buf, len, "%.3g", x);
}

static void format_p(char *buf, size_t len, double p)
{
	if (p < 0.001)
		snprintf(buf, len, "p<0.001");
	else
		snprintf(buf, len, "p=%.2g", p);
}

/* What the verdict column says about a row. */
static void format_verdict(char *buf, size_t len, const struct compare_row *r)
{
	const char *lat = r->has_latency ? compare_verdict_name(r->latency.verdict) : NULL;
	const char *acc = r->has_accuracy ? compare_verdict_name(r->accuracy.verdict) : NULL;

	if (strcmp(r->var.status, "ok"))
		snprintf(buf, len, "%s", r->var.status);
	else if (strcmp(r->base.status, "ok"))
		snprintf(buf, len, "baseline %s", r->base.status);
	else if (lat && acc && !strcmp(lat, acc))
		snprintf(buf, len, "%s", lat);
	else if (lat && acc)
		snprintf(buf, len, "%s, %s", lat, acc);
	else
		snprintf(buf, len, "%s", lat ? lat : acc ? acc : "-");
	/* the rounds of a cell disagreed: its latency may be the machine's load */
	if (r->unstable && strlen(buf) + 12 < len)
		strcat(buf, " (unstable)");
}

enum column {
	COL_TASK, COL_PATTERN, COL_REGIME, COL_N, COL_M, COL_D, COL_VARIANT, COL_ACCURACY,
	COL_DELTA, COL_LATENCY, COL_FASTEST, COL_VERDICT, COL_PEAK, COL_RSS, COL_COUNT,
};

static const char *const column_names[COL_COUNT] = {
	"task", "pattern", "regime", "n", "m", "d", "variant", "accuracy [95%]", "Δacc (p)",
	"latency × [95%]", "fastest ×", "verdict", "peak mem ×", "rss ×",
};

/* Columns whose text is a number read best right-aligned. */
static const bool column_right[COL_COUNT] = {
	[COL_N] = true, [COL_M] = true, [COL_D] = true, [COL_FASTEST] = true, [COL_PEAK] = true,
	[COL_RSS] = true,
};

#define CELL_TEXT 96

static void row_texts(const struct compare_row *r, char text[COL_COUNT][CELL_TEXT],
		      bool *unpaired)
{
	const struct accuracy_comparison *a = &r->accuracy;
	const struct ratio_interval *l = &r->latency.ratio;
	char x[3][24];

	snprintf(text[COL_TASK], CELL_TEXT, "%s", r->task);
	snprintf(text[COL_PATTERN], CELL_TEXT, "%s", r->pattern);
	snprintf(text[COL_REGIME], CELL_TEXT, "%s", r->regime[0] ? r->regime : "-");
	snprintf(text[COL_N], CELL_TEXT, "%d", r->n);
	snprintf(text[COL_M], CELL_TEXT, "%d", r->m);
	snprintf(text[COL_D], CELL_TEXT, "%d", r->d);
	snprintf(text[COL_VARIANT], CELL_TEXT, "%s", r->var.variant);
	if (r->has_accuracy) {
		snprintf(text[COL_ACCURACY], CELL_TEXT, "%.3f [%.3f, %.3f]",
			 (double)a->right / (double)a->trials, a->lo, a->hi);
		format_p(x[0], sizeof(x[0]), a->p);
		snprintf(text[COL_DELTA], CELL_TEXT, "%+.3f (%s)%s", a->delta, x[0],
			 a->paired ? "" : "*");
		*unpaired |= !a->paired;
	} else {
		snprintf(text[COL_ACCURACY], CELL_TEXT, "-");
		snprintf(text[COL_DELTA], CELL_TEXT, "-");
	}
	if (r->has_latency) {
		format_ratio(x[0], sizeof(x[0]), l->ratio);
		format_ratio(x[1], sizeof(x[1]), l->lo);
		format_ratio(x[2], sizeof(x[2]), l->hi);
		snprintf(text[COL_LATENCY], CELL_TEXT, "%s [%s, %s]", x[0], x[1], x[2]);
		format_ratio(text[COL_FASTEST], CELL_TEXT, r->latency.min_ratio);
	} else {
		snprintf(text[COL_LATENCY], CELL_TEXT, "-");
		snprintf(text[COL_FASTEST], CELL_TEXT, "-");
	}
	format_verdict(text[COL_VERDICT], CELL_TEXT, r);
	format_ratio(text[COL_PEAK], CELL_TEXT, r->peak_ratio);
	format_ratio(text[COL_RSS], CELL_TEXT, r->rss_ratio);
}

/* Display width of UTF-8 text (the headers hold Δ and ×). */
static int text_width(const char *s)
{
	int w = 0;

	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

static void print_padded(const char *text, int width, bool right)
{
	int pad = width - text_width(text);

	if (right)
		printf("%*s%s", pad, "", text);
	else
		printf("%s%*s", text, pad, "");
}

static const char *verdict_colour(const struct compare_row *r)
{
	if (r->regression)
		return "\033[31m";	/* red */
	if ((r->has_latency && r->latency.verdict == COMPARE_FASTER) ||
	    (r->has_accuracy && r->accuracy.verdict == COMPARE_BETTER))
		return "\033[32m";	/* green */
	return NULL;
}

static void print_table(const struct compare_row *rows, size_t count, bool markdown,
			bool colour)
{
	char (*texts)[COL_COUNT][CELL_TEXT] = malloc(sizeof(*texts) * (count ? count : 1));
	int width[COL_COUNT];
	bool unpaired = false;

	if (!texts)
		return;
	for (int c = 0; c < COL_COUNT; c++)
		width[c] = text_width(column_names[c]);
	for (size_t i = 0; i < count; i++) {
		row_texts(&rows[i], texts[i], &unpaired);
		for (int c = 0; c < COL_COUNT; c++)
			if (text_width(texts[i][c]) > width[c])
				width[c] = text_width(texts[i][c]);
	}
	for (int c = 0; c < COL_COUNT; c++) {
		printf("%s", markdown ? (c ? " | " : "| ") : (c ? "  " : ""));
		print_padded(column_names[c], width[c], column_right[c] && markdown);
	}
	printf("%s\n", markdown ? " |" : "");
	if (markdown) {
		for (int c = 0; c < COL_COUNT; c++)
			printf("|%s%s", column_right[c] ? "---:" : ":---",
			       c == COL_COUNT - 1 ? "|\n" : "");
	}
	for (size_t i = 0; i < count; i++) {
		const char *start = colour ? verdict_colour(&rows[i]) : NULL;

		for (int c = 0; c < COL_COUNT; c++) {
			bool coloured = start && c == COL_VERDICT;

			printf("%s%s", markdown ? (c ? " | " : "| ") : (c ? "  " : ""),
			       coloured ? start : "");
			/* the last column of a table carries no trailing blanks */
			if (!markdown && c == COL_COUNT - 1 && !column_right[c])
				printf("%s", texts[i][c]);
			else
				print_padded(texts[i][c], width[c], column_right[c]);
			printf("%s", coloured ? "\033[0m" : "");
		}
		printf("%s\n", markdown ? " |" : "");
	}
	if (unpaired)
		printf("%s* unpaired: the cells did not see the same trials (or their outcomes "
		       "were not stored); Fisher's exact test\n", markdown ? "\n" : "");
	free(texts);
}

static void csv_text(const char *text)
{
	if (strpbrk(text, ",\"\r\n"))
		csv_fwrite(stdout, text, strlen(text));
	else
		fputs(text, stdout);
}

static void csv_number(double x)
{
	if (isfinite(x))
		printf(",%.6g", x);
	else
		printf(",");
}

static void print_csv(const struct compare_row *rows, size_t count, const char *baseline)
{
	printf("run_id,baseline_run_id,task,pattern,regime,n,m,d,heads,kv_heads,batch,variant,"
	       "baseline,status,baseline_status,accuracy,accuracy_lo,accuracy_hi,trials,"
	       "baseline_accuracy,baseline_accuracy_lo,baseline_accuracy_hi,accuracy_delta,"
	       "accuracy_p,paired,latency_ms,baseline_latency_ms,latency_ratio,"
	       "latency_ratio_lo,latency_ratio_hi,fastest_ratio,peak_ratio,rss_ratio,verdict,"
	       "regression\r\n");
	for (size_t i = 0; i < count; i++) {
		const struct compare_row *r = &rows[i];
		const struct accuracy_comparison *a = &r->accuracy;
		bool acc = r->has_accuracy, lat = r->has_latency;
		char verdict[CELL_TEXT];

		printf("%lld,%lld,", (long long)r->var.run_id, (long long)r->base.run_id);
		csv_text(r->task);
		printf(",%s,", r->pattern);
		csv_text(r->regime);
		printf(",%d,%d,%d,%d,%d,%d,", r->n, r->m, r->d, r->heads, r->kv_heads, r->batch);
		csv_text(r->var.variant);
		putchar(',');
		csv_text(baseline ? baseline : r->base.variant);
		printf(",%s,%s", r->var.status, r->base.status);
		csv_number(acc ? (double)a->right / (double)a->trials : NAN);
		csv_number(acc ? a->lo : NAN);
		csv_number(acc ? a->hi : NAN);
		csv_number(acc ? (double)a->trials : NAN);
		csv_number(acc ? (double)a->base_right / (double)a->base_trials : NAN);
		csv_number(acc ? a->base_lo : NAN);
		csv_number(acc ? a->base_hi : NAN);
		csv_number(acc ? a->delta : NAN);
		csv_number(acc ? a->p : NAN);
		printf(",%s", acc ? (a->paired ? "1" : "0") : "");
		csv_number(lat ? r->var.latency_median * 1e3 : NAN);
		csv_number(lat ? r->base.latency_median * 1e3 : NAN);
		csv_number(lat ? r->latency.ratio.ratio : NAN);
		csv_number(lat ? r->latency.ratio.lo : NAN);
		csv_number(lat ? r->latency.ratio.hi : NAN);
		csv_number(lat ? r->latency.min_ratio : NAN);
		csv_number(r->peak_ratio);
		csv_number(r->rss_ratio);
		format_verdict(verdict, sizeof(verdict), r);
		putchar(',');
		csv_text(verdict);
		printf(",%d\r\n", r->regression ? 1 : 0);
	}
}

struct tally {
	size_t faster, slower, same_latency, better, worse, same_accuracy, broken, regressions;
	size_t unstable;
};

static void count_verdicts(const struct compare_row *rows, size_t count, struct tally *t)
{
	*t = (struct tally){ 0 };
	for (size_t i = 0; i < count; i++) {
		const struct compare_row *r = &rows[i];

		if (r->has_latency) {
			t->faster += r->latency.verdict == COMPARE_FASTER;
			t->slower += r->latency.verdict == COMPARE_SLOWER;
			t->same_latency += r->latency.verdict == COMPARE_SAME;
		}
		if (r->has_accuracy) {
			t->better += r->accuracy.verdict == COMPARE_BETTER;
			t->worse += r->accuracy.verdict == COMPARE_WORSE;
			t->same_accuracy += r->accuracy.verdict == COMPARE_SAME;
		}
		t->broken += r->regression && !(r->has_latency &&
				r->latency.verdict == COMPARE_SLOWER) &&
			     !(r->has_accuracy && r->accuracy.verdict == COMPARE_WORSE);
		t->regressions += r->regression;
		t->unstable += r->unstable;
	}
}

static void print_summary(const struct tally *t, double threshold,
			  double accuracy_threshold)
{
	printf("\nlatency: %zu faster, %zu slower, %zu no significant change; accuracy: %zu "
	       "better, %zu worse, %zu no significant change",
	       t->faster, t->slower, t->same_latency, t->better, t->worse, t->same_accuracy);
	if (t->broken)
		printf("; %zu broke where the baseline ran", t->broken);
	if (t->unstable)
		printf("\n%zu latency row(s) marked (unstable): a cell's measurement rounds "
		       "disagreed beyond %.2fx even after extra rounds, so its latency may be the "
		       "machine's load", t->unstable, ROUNDS_SPREAD_LIMIT);
	printf("\nrule: latency ratio = median(variant) / median(baseline) with a 95%% bootstrap "
	       "interval (%d resamples);\nfaster/slower when the interval and the ratio of the "
	       "fastest calls both lie beyond 1 -/+ %g;\naccuracy better/worse when "
	       "|difference| >= %g and p < %g\n",
	       COMPARE_BOOTSTRAP_ITERS, threshold, accuracy_threshold, COMPARE_ALPHA);
}

static void print_rows(const struct compare_args *a, const char *context,
		       const struct compare_row *rows, size_t count, const char *baseline)
{
	bool colour = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
	struct tally t;

	if (a->format == FORMAT_CSV) {
		print_csv(rows, count, baseline);
		return;
	}
	printf("%s\n\n", context);
	print_table(rows, count, a->format == FORMAT_MARKDOWN,
		    colour && a->format == FORMAT_TABLE);
	count_verdicts(rows, count, &t);
	print_summary(&t, a->threshold, a->accuracy_threshold);
}

/* ---- compare stored runs ---- */

/* Provenance warns about a load average above this at the start of a run. */
#define BUSY_LOAD 0.5

/* Says when a run with latency rows started on a busy machine. */
static void warn_if_busy(struct store *st, const struct compare_row *rows, size_t count,
			 int64_t run, int64_t base_run)
{
	const int64_t runs[2] = { run, base_run };
	bool latency = false;
	double load;

	for (size_t i = 0; i < count; i++)
		latency |= rows[i].has_latency;
	for (int i = 0; latency && i < (run == base_run ? 1 : 2); i++)
		if (!compare_run_load(st, runs[i], &load) && load > BUSY_LOAD)
			warning("run %lld started with load average %.2f: other work on the "
				"machine can turn noise into latency verdicts (see 'attnbench "
				"compare --aa')", (long long)runs[i], load);
}

/*
 * Warns when the compared run did not finish, or (against an earlier run) lacks cells the
 * earlier run has: both hide results the verdicts cannot see. Returns whether it warned.
 */
static bool incomplete(const struct compare_args *a, struct store *st,
		       const struct compare_request *q)
{
	char status[32] = "", first[256] = "";
	bool warned = false;
	long missing = 0;

	if (!store_run_status(store_db(st), q->run_id, status, sizeof(status)) &&
	    (!strcmp(status, "interrupted") || !strcmp(status, "running"))) {
		warning("run %lld is '%s', not complete: cells it did not finish are not "
			"compared", (long long)q->run_id, status);
		warned = true;
	}
	if (a->against && !compare_missing_cells(st, q, &missing, first, sizeof(first)) &&
	    missing) {
		warning("run %lld lacks %ld cell%s that run %lld has (first: %s)",
			(long long)q->run_id, missing, missing == 1 ? "" : "s",
			(long long)q->base_run_id, first);
		warned = true;
	}
	return warned;
}

/*
 * A run merged from shards that ran on different machines: its latency ratios compare
 * machines as well as variants. Refused with one line unless --mix-machines, then said.
 * 0, or an exit status.
 */
static int same_machines(struct store *st, const struct compare_args *a,
			 const struct compare_request *q)
{
	const int64_t runs[2] = { q->run_id, q->base_run_id };
	char list[512];

	for (int r = 0; r < (q->base_run_id == q->run_id ? 1 : 2); r++) {
		int n = store_run_machines(store_db(st), runs[r], list, sizeof(list));

		if (n < 0)
			return error("cannot read the shards of run %lld: %s", (long long)runs[r],
				     store_errmsg(st));
		if (n > 1 && !a->mix_machines)
			return error("run %lld was merged from shards on %d machines (%s): its "
				     "latencies would compare machines too (--mix-machines compares "
				     "anyway)", (long long)runs[r], n, list);
		if (n > 1)
			warning("run %lld ran on %d machines (%s): latency verdicts compare "
				"machines too (--mix-machines)", (long long)runs[r], n, list);
	}
	return 0;
}

static int compare_stored(const struct compare_args *a)
{
	struct compare_request q = {
		.baseline = a->baseline,
		.variants = a->variants,
		.n_variants = a->n_variants,
		.tasks = a->tasks,
		.n_tasks = a->n_tasks,
		.patterns = a->patterns,
		.threshold = a->threshold,
		.accuracy_threshold = a->accuracy_threshold,
	};
	struct compare_row *rows;
	struct store *st;
	struct tally t;
	char why[768], context[512];
	size_t count;
	int ret;

	if (store_open(a->db, STORE_READONLY, &st, why, sizeof(why)))
		return error("cannot open database '%s': %s", a->db, why);
	q.run_id = a->run;
	if (!q.run_id) {
		ret = option_latest_run(st, a->db, "to compare", &q.run_id);
		if (ret)
			goto out_close;
	}
	q.base_run_id = a->against ? a->against : q.run_id;
	if (a->against) {
		ret = compare_provenance(st, q.run_id, q.base_run_id, why, sizeof(why));
		if (ret < 0) {
			ret = error("%s", why);
			goto out_close;
		}
		if (ret > 0 && !a->force) {
			ret = error("%s: timings from different machines or builds are not "
				    "comparable (use --force to compare anyway)", why);
			goto out_close;
		}
		if (ret > 0)
			warning("%s; comparing anyway (--force)", why);
	}
	ret = same_machines(st, a, &q);
	if (ret)
		goto out_close;
	if (compare_gather(st, &q, &rows, &count, why, sizeof(why))) {
		ret = error("%s", why);
		goto out_close;
	}
	warn_if_busy(st, rows, count, q.run_id, q.base_run_id);
	if (a->against)
		snprintf(context, sizeof(context), "run %lld against run %lld (thresholds: "
			 "latency %g, accuracy %g)", (long long)q.run_id,
			 (long long)q.base_run_id, a->threshold, a->accuracy_threshold);
	else
		snprintf(context, sizeof(context), "run %lld against baseline '%s' (thresholds: "
			 "latency %g, accuracy %g)", (long long)q.run_id, a->baseline,
			 a->threshold, a->accuracy_threshold);
	print_rows(a, context, rows, count, a->baseline);
	count_verdicts(rows, count, &t);
	ret = EXIT_OK;
	if (a->fail_on_regression && t.regressions) {
		fprintf(stderr, "attnbench: %zu regression%s (slower, worse or broken) against "
			"%s\n", t.regressions, t.regressions == 1 ? "" : "s",
			a->baseline ? a->baseline : "the earlier run");
		ret = EXIT_FAILED;
	}
	/* what the rows cannot show: an unfinished run, cells the earlier run had */
	if (incomplete(a, st, &q) && a->fail_on_regression)
		ret = EXIT_FAILED;
	free(rows);
out_close:
	store_close(st);
	return ret;
}

/* ---- A/A ---- */

/* The cells of an A/A test: the default suite's speed row, narrowed. */
static int aa_plan(const struct compare_args *a, struct suite *suite, struct cell **cells,
		   size_t *count)
{
	struct selection sel = {
		.threads = a->threads ? a->threads : environment_usable_cpus(),
	};
	const struct task_ops *speed = task_find("speed");
	char why[512];

	if (parse_variant_list(a->variant, sel.variants, &sel.n_variants, why, sizeof(why)))
		return error("%s", why);
	if (sel.n_variants != 1)
		return error("--aa takes one variant, not '%s'", a->variant);
	sel.tasks[sel.n_tasks++] = speed;
	sel.patterns = a->patterns;
	if (parse_length_list(a->lengths ? a->lengths : aa_default_lengths, sel.lengths,
			      &sel.n_lengths, why, sizeof(why)))
		return error("%s", why);
	if (suite_load("default", suite, why, sizeof(why)))
		return error("%s", why);
	if (a->repeats) {	/* a count asked for is a count kept, however long the calls */
		suite->measure.min_repeats = a->repeats;
		suite->measure.long_call = 0;
	}
	if (a->min_time >= 0)
		suite->measure.min_seconds = a->min_time;
	if (plan_cells(suite, &sel, cells, count, why, sizeof(why)))
		return error("%s", why);
	return 0;
}

static void describe_cell(const struct cell *c, char *buf, size_t len)
{
	snprintf(buf, len, "%s %s %s n=%d m=%d d=%d h=%d", c->task->name, c->variant->name,
		 pattern_name(c->pattern), c->n, c->m, c->d, c->heads);
}

/* What the A/A loop's news needs: whether to show progress, whether a cell broke. */
struct aa_progress {
	bool progress, broken;
};

static void aa_show_progress(void *data, const struct run_loop_step *step)
{
	const struct aa_progress *p = data;
	char what[160];

	if (!p->progress)
		return;
	describe_cell(step->cell, what, sizeof(what));
	fprintf(stderr, "\r[%zu/%zu] %.0f s: %s (%s)\033[K", step->index, step->total,
		step->elapsed, what, step->side ? "A'" : "A");
}

/* Any cell not ok, even one an interruption dropped, gets a warning and spoils the test. */
static void aa_cell_done(void *data, const struct run_loop_step *step,
			 const struct cell_result *r, bool stored)
{
	struct aa_progress *p = data;
	char what[160];

	(void)stored;
	if (r->status == CELL_OK)
		return;
	describe_cell(step->cell, what, sizeof(what));
	warning("%s: %s: %s", what, cell_status_name(r->status), r->reason);
	p->broken = true;
}

static const struct run_loop_ops aa_ops = {
	.cell_start	= aa_show_progress,
	.cell_done	= aa_cell_done,
};

static int compare_aa(const struct compare_args *a, int argc, char **argv)
{
	struct aa_progress progress = { .progress = !a->quiet && isatty(STDERR_FILENO) };
	/* run's default time limit; no memory limit at these sizes */
	struct run_loop rl = { .db = a->db, .n_runs = 2, .rounds = ROUNDS_DEFAULT,
			       .limits = { 600, 0 }, .ops = &aa_ops, .data = &progress };
	struct suite *suite = calloc(1, sizeof(*suite));
	struct compare_request q = {
		.threshold = a->threshold,
		.accuracy_threshold = a->accuracy_threshold,
		.n_variants = 1,
	};
	const char *speed[] = { "speed" };
	struct compare_row *rows = NULL;
	struct cell *cells = NULL;
	struct provenance prov;
	struct store *st = NULL;
	char why[512], context[512];
	char loop_why[PATH_MAX + 512];	/* room for the database's path and SQLite's message */
	size_t count, n_rows;
	struct tally t;
	double peak, gbps, rate, lo = 0, hi = 0, needed;
	FILE *out;
	int ret;

	if (!suite)
		return error("out of memory");
	ret = aa_plan(a, suite, &cells, &count);
	if (ret)
		goto out_free;
	if (store_open(a->db, 0, &st, why, sizeof(why))) {
		ret = error("cannot open database '%s': %s", a->db, why);
		goto out_free;
	}
	if (provenance_collect(&prov, cells[0].threads, 0, rl.rounds, STORE_AA_SUITE, argc + 1,
			       argv - 1)) {
		ret = error("out of memory");
		goto out_close;
	}
	if (prov.values[PROV_WARNINGS])
		warning("measurements may be unreliable: %s", prov.values[PROV_WARNINGS]);
	rl.store = st;
	rl.cells = cells;
	rl.count = count;
	ret = run_loop_begin(&rl, &prov);
	provenance_release(&prov);
	if (ret) {
		ret = error("cannot record the runs in '%s': %s", a->db, store_errmsg(st));
		goto out_close;
	}
	if (!a->quiet)
		fprintf(stderr, "A/A: %zu speed cells of %s, each twice, into runs %lld (A) and "
			"%lld (A') of %s\n", count, a->variant, (long long)rl.runs[0],
			(long long)rl.runs[1], a->db);
	run_loop_measure_peak(&rl, cells[0].threads, &peak);
	run_loop_measure_bandwidth(&rl, cells[0].threads, &gbps);
	run_loop_catch_signals(&rl);
	ret = run_loop_run(&rl, loop_why, sizeof(loop_why));
	if (ret)
		ret = error("%s", loop_why);
	if (progress.progress)
		fputs("\r\033[K", stderr);
	run_loop_restore_signals(&rl);
	run_loop_finish(&rl, run_loop_status(ret, progress.broken));
	if (ret)
		goto out_close;
	if (run_loop_interrupted()) {
		ret = 130;
		goto out_close;
	}

	q.run_id = rl.runs[1];
	q.base_run_id = rl.runs[0];
	q.variants = &a->variant;
	q.tasks = speed;
	q.n_tasks = 1;
	if (compare_gather(st, &q, &rows, &n_rows, why, sizeof(why))) {
		ret = error("%s", why);
		goto out_close;
	}
	snprintf(context, sizeof(context), "A/A: run %lld (A') against run %lld (A), %s, "
		 "threshold %g", (long long)rl.runs[1], (long long)rl.runs[0], a->variant,
		 a->threshold);
	print_rows(a, context, rows, n_rows, NULL);
	count_verdicts(rows, n_rows, &t);
	needed = compare_threshold_needed(rows, n_rows, AA_MAX_FALSE_POSITIVES);
	n_rows = t.faster + t.slower + t.same_latency;
	rate = n_rows ? (double)(t.faster + t.slower) / (double)n_rows : 0;
	if (n_rows)
		stats_wilson((long)(t.faster + t.slower), (long)n_rows, &lo, &hi);
	out = a->format == FORMAT_CSV ? stderr : stdout;
	fprintf(out, "%sA/A false-positive rate: %zu of %zu cells called faster or slower "
		"(%.1f%%, 95%% interval %.1f-%.1f%%; %zu faster, %zu slower)\n",
		a->format == FORMAT_CSV ? "" : "\n", t.faster + t.slower, n_rows, 100 * rate,
		100 * lo, 100 * hi, t.faster, t.slower);
	fprintf(out, "threshold that keeps these cells at or under %.0f%%: %.3g\n",
		100 * AA_MAX_FALSE_POSITIVES, needed);
	ret = EXIT_OK;
	if (rate > AA_MAX_FALSE_POSITIVES) {
		fprintf(stderr, "attnbench: the verdict rule called %.1f%% of A/A cells "
			"significant (more than %.0f%%): timings on this machine are noisier than "
			"the threshold %g allows\n", 100 * rate, 100 * AA_MAX_FALSE_POSITIVES,
			a->threshold);
		ret = EXIT_FAILED;
	}
	if (progress.broken)
		ret = EXIT_FAILED;
	free(rows);
out_close:
	store_close(st);
out_free:
	free(cells);
	free(suite);
	return ret;
}

int cmd_compare(int argc, char **argv)
{
	struct compare_args a;
	int ret = parse_args(argc, argv, &a);

	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	return a.aa ? compare_aa(&a, argc, argv) : compare_stored(&a);
}
