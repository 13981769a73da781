/*
 * task-test.h - what the tests of tasks share: a cell of a variant on a task, and one
 * metric of a cell's result by name. Uses tasks/ and variants/ headers only.
 */
#ifndef ATTNBENCH_TASK_TEST_H
#define ATTNBENCH_TASK_TEST_H

#include <math.h>
#include <string.h>

#include "task.h"

/*
 * A cell of v on the task called task, in pattern, n queries and m keys, one thread,
 * v's default parameters; every other field zero for the caller to set.
 */
static inline struct cell cell_make(const struct variant_ops *v, const char *task,
				    enum attn_pattern pattern, int n, int m)
{
	struct cell c = {
		.variant = v,
		.task = task_find(task),
		.pattern = pattern,
		.n = n,
		.m = m,
		.threads = 1,
	};

	variant_default_params(v, c.params);
	return c;
}

/* The value of r's metric called name; a missing one fails the test. */
static inline double metric(const struct cell_result *r, const char *name)
{
	for (int i = 0; i < r->n_metrics; i++)
		if (!strcmp(r->metrics[i].name, name))
			return r->metrics[i].value;
	fail_msg("no metric '%s'", name);
	return NAN;
}

#endif
