/*
 * run-option.h - the run a command reads: `--run ID` parsed alike by every command, or
 * the latest run of the database when none is given. Both print their own one-line error.
 */
#ifndef ATTNBENCH_RUN_OPTION_H
#define ATTNBENCH_RUN_OPTION_H

#include <stdint.h>

#include "store.h"

/*
 * Parses the value of option (e.g. "--run") as a run id, a whole number >= 1. Returns 0,
 * or prints "OPTION needs a run id (a whole number >= 1), not 'TEXT'" and returns
 * EXIT_USAGE.
 */
int run_option_parse(const char *option, const char *text, int64_t *run);

/*
 * The newest run of st (opened from db), leaving out runs of except_suite (NULL: none).
 * Returns 0, or prints "no runs in 'DB' PURPOSE" (purpose: "to plot") or the read error
 * and returns EXIT_USAGE.
 */
int run_option_latest(struct store *st, const char *db, const char *except_suite,
		      const char *purpose, int64_t *run);

#endif
