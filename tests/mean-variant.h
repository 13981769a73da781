/*
 * mean-variant.h - a deliberately wrong "variant" for task tests: every output row is the
 * mean of all V rows, whatever the query. It ignores causality (leaks the future) and
 * cannot retrieve (is blind to the query).
 */
#ifndef ATTNBENCH_MEAN_VARIANT_H
#define ATTNBENCH_MEAN_VARIANT_H

#include "variant.h"

static int mean_v_forward(const struct attn_problem *p, const float *q, const float *k,
			  const float *v, float *out)
{
	(void)q;
	(void)k;
	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			const float *vs = v + problem_kv_offset(p, b, h);
			float *o = out + problem_q_offset(p, b, h);

			for (int c = 0; c < p->d; c++) {
				double sum = 0;

				for (int j = 0; j < p->m; j++)
					sum += vs[(size_t)j * p->d + c];
				for (int i = 0; i < p->n; i++)
					o[(size_t)i * p->d + c] = (float)(sum / p->m);
			}
		}
	return 0;
}

static const struct variant_ops mean_variant = {
	.name = "mean",
	.family = "test",
	.summary = "mean of V for every row",
	.citation = "none",
	.patterns = PATTERNS_ALL,
	.forward = mean_v_forward,
};

#endif
