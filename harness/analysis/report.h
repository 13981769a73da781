/*
 * report.h - the report of a run (SPEC section 7, `report`): per pattern its leaderboard
 * (leaderboard.h), task metrics and the efficiency-length table, as an aligned text
 * table, Markdown or LaTeX (booktabs).
 */
#ifndef ATTNBENCH_REPORT_H
#define ATTNBENCH_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include <sqlite3.h>

#include "efficiency.h"
#include "leaderboard.h"

enum report_format {
	REPORT_TEXT,		/* aligned columns for a terminal */
	REPORT_MARKDOWN,	/* pipe tables with aligned pipes */
	REPORT_LATEX,		/* table environments with booktabs rules */
};

struct report_options {
	int64_t run_id;
	const char *baseline;
	enum report_format format;
};

/*
 * Writes the report of a run: for each pattern with cells, the leaderboard, the task
 * metrics and the efficiency lengths in eff (from efficiency_load/compute against the
 * same baseline). Returns 0, -ENODATA when the run has nothing to rank (nothing written),
 * -EIO, -ENOMEM.
 */
int report_write(FILE *out, sqlite3 *db, const struct report_options *o,
		 const struct eff_list *eff);

#endif
