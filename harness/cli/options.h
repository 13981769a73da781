/*
 * options.h - what several commands parse alike: errors for bad options, numbers in a
 * range, run ids (`--run ID`), the latest run when no id is given, and plugins.
 */
#ifndef ATTNBENCH_OPTIONS_H
#define ATTNBENCH_OPTIONS_H

#include <stdint.h>

#include "store.h"

/*
 * The error for what getopt_long (its optstring starting with ':') returned for a bad
 * option of command: ':' a missing value, anything else an unknown option. Prints one
 * line naming the option and returns EXIT_USAGE.
 */
int option_error(int opt, char **argv, const char *command);

/* Prints "COMMAND takes no arguments, only options (...)" and returns EXIT_USAGE. */
int option_no_arguments(const char *command);

/* Parses a number in [min, max] (strtod syntax, nothing after it); 0 or -EINVAL. */
int option_number(const char *text, double min, double max, double *out);

/*
 * Parses the value of option (e.g. "--run") as a run id, a whole number >= 1. Returns 0,
 * or prints "OPTION needs a run id (a whole number >= 1), not 'TEXT'" and returns
 * EXIT_USAGE.
 */
int option_run_id(const char *option, const char *text, int64_t *run);

/*
 * The newest run of st (opened from db) that is not an A/A run (store_latest_run()).
 * Returns 0, or prints "no runs in 'DB' PURPOSE (A/A runs are only read with --run)"
 * (purpose: "to plot") or the read error and returns EXIT_USAGE.
 */
int option_latest_run(struct store *st, const char *db, const char *purpose, int64_t *run);

/*
 * Loads the plugin at path (--plugin PATH); loading one twice does nothing. Returns 0,
 * or prints "cannot load plugin 'PATH': WHY" and returns EXIT_USAGE.
 */
int option_plugin(const char *path);

/*
 * Loads every plugin argv names (--plugin PATH or --plugin=PATH, up to a "--") before a
 * command parses its options, so that they may name a plugin's variant in any order.
 * Returns 0 or EXIT_USAGE.
 */
int option_plugins(int argc, char **argv);

/* The help line of --plugin, for the commands that take it. */
#define OPTION_PLUGIN_HELP \
	"  --plugin PATH.so    load a variant built outside attnbench (repeatable)\n"

#endif
