/*
 * attnbench.c - main(): dispatches to the subcommands, and `help`.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "build-info.h"
#include "cmd.h"
#include "environment.h"
#include "error.h"
#include "options.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;
	const char *summary;
	bool plugins;		/* takes --plugin: loaded before the command parses */
};

static const struct command commands[] = {
	{ "run", cmd_run, usage_run, "run a suite or a selection of cells into the database",
	  true },
	{ "check", cmd_check, usage_check,
	  "check variants against the reference, causality and their own decoding", true },
	{ "list", cmd_list, usage_list, "list variants, tasks, suites or stored runs", true },
	{ "query", cmd_query, usage_query, "run read-only SQL against the database", false },
	{ "compare", cmd_compare, usage_compare,
	  "variants against a baseline, or a run against an earlier run, with verdicts", true },
	{ "plot", cmd_plot, usage_plot, "draw a run's figures with gnuplot (PDF, PNG, SVG)", false },
	{ "export", cmd_export, usage_export, "write runs as CSV, one row per cell", false },
	{ "import", cmd_import, usage_import, "add runs from a CSV file written by export", false },
	{ "merge", cmd_merge, usage_merge,
	  "combine databases from several machines or shards into one", false },
	{ "slurm", cmd_slurm, usage_slurm,
	  "write an sbatch script: a suite in shards on a cluster, then one database", true },
	{ "report", cmd_report, usage_report,
	  "leaderboards and efficiency lengths of a run (text, Markdown, LaTeX)", false },
	{ "eval", cmd_eval, usage_eval, "run one variant on your own .npy tensors", true },
	{ "help", cmd_help, usage_help, "show help for a command", false },
};

#define COMMAND_COUNT (sizeof(commands) / sizeof(commands[0]))

const char usage_help[] = "usage: attnbench help [COMMAND]\n";

static const struct command *command_find(const char *name)
{
	for (size_t i = 0; i < COMMAND_COUNT; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

int help_show(const char *name)
{
	const struct command *c;

	if (!name) {
		printf("usage: attnbench COMMAND [OPTIONS]\n\n"
		       "A benchmark and evaluation harness for attention mechanisms.\n\n"
		       "commands:\n");
		for (size_t i = 0; i < COMMAND_COUNT; i++)
			printf("  %-8s %s\n", commands[i].name, commands[i].summary);
		printf("\n'attnbench help COMMAND' or 'attnbench COMMAND --help' shows a "
		       "command's options.\n");
		return EXIT_OK;
	}
	c = command_find(name);
	if (!c)
		return error("unknown command '%s' (see 'attnbench help')", name);
	fputs(c->usage, stdout);
	return EXIT_OK;
}

int cmd_help(int argc, char **argv)
{
	if (argc > 2)
		return error("help takes at most one command");
	return help_show(argc == 2 ? argv[1] : NULL);
}

int main(int argc, char **argv)
{
	const struct command *c;

	/* passive OpenMP waiting before any timing: this may execute the program again */
	environment_settle(argv);
	if (argc < 2)
		return help_show(NULL), EXIT_USAGE;
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return help_show(NULL);
	if (!strcmp(argv[1], "--version")) {
		printf("attnbench %s (%s)\n", ATTNBENCH_VERSION, ATTNBENCH_GIT_COMMIT);
		return EXIT_OK;
	}
	c = command_find(argv[1]);
	if (!c)
		return error("'%s' is not a command (see 'attnbench help')", argv[1]);
	for (int i = 2; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return help_show(c->name);
	if (c->plugins && option_plugins(argc - 1, argv + 1))
		return EXIT_USAGE;
	return c->fn(argc - 1, argv + 1);
}
