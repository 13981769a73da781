/*
 * check.h - the verdict of `attnbench check` on one of its cells: is the variant what it
 * claims on this check (reference, causality, decode)?
 */
#ifndef ATTNBENCH_CHECK_H
#define ATTNBENCH_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "task.h"

/* Exact fp32 kernels land within a few 1e-7 of the fp64 oracle; the spec asks 1e-5. */
#define CHECK_TOLERANCE 1e-5

enum check_verdict {
	CHECK_PASSED,
	CHECK_FAILED,
	CHECK_SKIPPED,		/* the variant does not support the problem */
	CHECK_UNBOUNDED,	/* measured, but the variant claims no bound (not exact) */
};

/*
 * Judges r, whose measure is the metric called metric: skipped when the cell is
 * unsupported; failed when its status is anything else but ok, or when the metric is
 * missing or NaN (a check that measured nothing has not passed); otherwise unbounded
 * when bounded is false, passed when the metric is at most tolerance, failed above it.
 * *value is the metric, NAN when missing. why gets the reason of a failure for want of
 * the metric ("no 'rel_err' metric", "'rel_err' is nan") and is emptied otherwise: any
 * other failure is told by the cell's own reason.
 */
enum check_verdict check_verdict(const struct cell_result *r, const char *metric,
				 bool bounded, double tolerance, double *value, char *why,
				 size_t len);

#endif
