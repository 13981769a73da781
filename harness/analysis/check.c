/*
 * check.c - the verdict of `attnbench check` on one cell (see check.h).
 */
#include "check.h"

#include <math.h>
#include <string.h>

#include "why.h"

enum check_verdict check_verdict(const struct cell_result *r, const char *metric,
				 bool bounded, double tolerance, double *value, char *why,
				 size_t len)
{
	bool found = false;

	*value = NAN;
	why_set(why, len, "%s", "");
	for (int i = 0; i < r->n_metrics; i++)
		if (!strcmp(r->metrics[i].name, metric)) {
			*value = r->metrics[i].value;
			found = true;
		}
	if (r->status == CELL_UNSUPPORTED)
		return CHECK_SKIPPED;
	if (r->status != CELL_OK)
		return CHECK_FAILED;
	if (!found) {
		why_set(why, len, "no '%s' metric", metric);
		return CHECK_FAILED;
	}
	if (isnan(*value)) {
		why_set(why, len, "'%s' is nan", metric);
		return CHECK_FAILED;
	}
	if (!bounded)
		return CHECK_UNBOUNDED;
	return *value <= tolerance ? CHECK_PASSED : CHECK_FAILED;
}
