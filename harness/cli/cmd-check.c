/*
 * cmd-check.c - `attnbench check`: is a variant what it claims? Agreement with the fp64
 * reference (exact variants), the causality test on every causal pattern it supports,
 * and incremental decoding against its own causal pass. Each check runs as a cell in a
 * child process, so a crash is reported, not suffered.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cmd.h"
#include "environment.h"
#include "error.h"
#include "options.h"
#include "params.h"
#include "runner.h"
#include "suite.h"
#include "threads.h"

const char usage_check[] =
	"usage: attnbench check [VARIANT...] [--set VARIANT.PARAM=X] [--threads N]\n"
	"                       [--plugin PATH.so]...\n"
	"\n"
	"Checks every variant (or those named) on each pattern it supports, at a small\n"
	"awkward shape (N = 63, M = 41 for cross patterns, d = 32, 4 query heads on 2 KV\n"
	"heads, batch 2): exact variants against the double-precision reference (relative\n"
	"error <= 1e-5), mask-exact ones against it restricted to their own mask (same\n"
	"bound), causal patterns by the perturbation test, and incremental decoding\n"
	"against the causal pass. Exit status 1 if any check fails.\n";

struct check_counts {
	int passed, failed;
};

static const char *const verdict_names[] = {
	[CHECK_PASSED] = "ok",
	[CHECK_FAILED] = "FAILED",
	[CHECK_SKIPPED] = "skipped",
	[CHECK_UNBOUNDED] = "(not exact: no bound)",
};

/* Runs one check as a cell and prints its line; counts a verdict where there is one. */
static void check_one(struct cell c, const char *task, const char *what,
		      struct check_counts *counts)
{
	struct runner_limits limits = { 120, 0 };
	bool fidelity = !strcmp(task, "fidelity");
	struct runner_outcome out;
	enum check_verdict verdict;
	struct cell_result r;
	const char *reason;
	char why[128];
	double value;

	c.task = task_find(task);
	c.regime = c.task->regimes ? "gaussian" : NULL;
	if (runner_run_cell(&c, &limits, &r, &out)) {
		printf("  %-2s %-10s could not start a child process\n", pattern_name(c.pattern),
		       what);
		counts->failed++;
		return;
	}
	/* a mask-exact variant answers to the reference under its own mask */
	verdict = check_verdict(&r, !strcmp(task, "causality") ? "causal_change" :
				    fidelity && c.variant->mask ? "mask_rel_err" : "rel_err",
				!fidelity || (c.variant->flags & VARIANT_EXACT) || c.variant->mask,
				CHECK_TOLERANCE, &value, why, sizeof(why));
	if (verdict == CHECK_PASSED)
		counts->passed++;
	else if (verdict == CHECK_FAILED)
		counts->failed++;
	reason = r.reason[0] ? r.reason : why;
	printf("  %-2s %-10s %-10.3g %s%s%s%s\n", pattern_name(c.pattern), what, value,
	       verdict_names[verdict], reason[0] ? " (" : "", reason, reason[0] ? ")" : "");
	result_release(&r);
}

static void check_variant(const struct variant_ops *v, const struct param_overrides *o,
			  int threads, struct check_counts *counts)
{
	printf("%s\n", v->name);
	for (int p = 0; p < ATTN_PATTERN_COUNT; p++) {
		struct cell c = {
			.variant = v,
			.pattern = p,
			.batch = 2, .heads = 4, .kv_heads = 2, .d = 32,
			.n = 63, .m = pattern_is_self(p) ? 63 : 41,
			.seed = 1, .threads = threads,
		};

		if (!(v->patterns & PATTERN_BIT(p)))
			continue;
		params_apply(o, v, c.params);
		check_one(c, "fidelity", v->mask ? "masked ref" : "reference", counts);
		if (pattern_is_causal(p))
			check_one(c, "causality", "causality", counts);
		if (p == ATTN_CS && v->decode_step)
			check_one(c, "decode", "decode", counts);
	}
}

int cmd_check(int argc, char **argv)
{
	static const struct option options[] = {
		{ "set", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 't' },
		{ "plugin", required_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	const struct variant_ops *named[SUITE_MAX_LIST];
	struct param_overrides overrides = { 0 };
	struct check_counts counts = { 0 };
	int opt, n_named = 0, threads = environment_usable_cpus();
	char why[512], *end;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":", options, NULL)) != -1) {
		if (opt == 's' && params_parse(&overrides, optarg, why, sizeof(why)))
			return error("%s", why);
		if (opt == 't') {
			threads = (int)strtol(optarg, &end, 10);
			if (!*optarg || *end || threads < 1 || threads > 1024)
				return error("--threads '%s' is not a whole number in 1..1024", optarg);
		}
		if (opt == 'P' && option_plugin(optarg))	/* again if abbreviated */
			return EXIT_USAGE;
		if (opt == ':' || opt == '?')
			return option_error(opt, argv, "check");
	}
	for (int i = optind; i < argc; i++) {
		if (n_named == SUITE_MAX_LIST)
			return error("too many variants (at most %d)", SUITE_MAX_LIST);
		named[n_named] = variant_find(argv[i]);
		if (!named[n_named++])
			return error("unknown variant '%s' (see 'attnbench list variants')",
				     argv[i]);
	}
	for (int i = 0; i < (n_named ? n_named : variant_count()); i++)
		check_variant(n_named ? named[i] : variant_at(i), &overrides, threads, &counts);
	printf("%d passed, %d failed\n", counts.passed, counts.failed);
	return counts.failed ? EXIT_FAILED : EXIT_OK;
}
