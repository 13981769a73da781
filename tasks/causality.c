/*
 * causality.c - CAB's pattern test by perturbation: change what row t must not see and
 * check that rows <= t do not move (SPEC section 4).
 *
 * cs: rows > t of Q, K and V change; cc: rows > t of Q change (all keys stay visible).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inputs.h"
#include "task.h"

/* fp32 kernels reorder sums when data changes elsewhere; 1e-5 relative is the spec's. */
#define CAUSAL_TOLERANCE 1e-5

/* Replaces rows > t of every slice of x (slices of `rows` rows of d) with new values. */
static void perturb_rows(struct rng *g, float *x, size_t slices, int rows, int d, int t)
{
	for (size_t s = 0; s < slices; s++)
		for (int i = t + 1; i < rows; i++)
			for (int c = 0; c < d; c++)
				x[(s * rows + i) * d + c] = (float)(3.0 * rng_normal(g));
}

/* Largest change of rows <= t, relative to the largest magnitude there; a and b finite. */
static double change_up_to(const struct attn_problem *p, const float *a, const float *b,
			   int t)
{
	double change = 0, scale = 0;

	for (size_t s = 0; s < (size_t)p->batch * p->heads; s++)
		for (int i = 0; i <= t; i++)
			for (int c = 0; c < p->d; c++) {
				size_t at = (s * p->n + i) * p->d + c;

				change = fmax(change, fabs((double)a[at] - b[at]));
				scale = fmax(scale, fabs((double)a[at]));
			}
	return scale > 0 ? change / scale : change;
}

static int causality_run(const struct cell *c, struct cell_result *r)
{
	struct attn_problem p = cell_problem(c);
	size_t peak, q_bytes = sizeof(float) * problem_q_count(&p);
	size_t kv_bytes = sizeof(float) * problem_kv_count(&p);
	float *q, *k, *v, *o, *q2 = NULL, *k2 = NULL, *v2 = NULL, *o2 = NULL;
	double worst = 0;
	char what[64];
	int worst_t = -1, ret;
	struct rng g;

	ret = tensors_alloc(&p, &q, &k, &v, &o);
	if (ret)
		return ret;
	ret = tensors_alloc(&p, &q2, &k2, &v2, &o2);
	if (ret)
		goto out_free;
	inputs_generate("gaussian", &p, c->seed, q, k, v);
	ret = tensors_seal(q, k, v);
	if (ret)
		goto out_free;
	ret = forward_measured(c->variant, &p, q, k, v, o, &peak);
	if (ret)
		goto out_free;
	result_metric(r, "peak_bytes", (double)peak, "B");
	/* every row, those past the last cut too: a NaN anywhere is a broken output */
	if (!tensors_check_guards(r) || !result_check_finite(r, "output", &p, o, 0, p.n))
		goto out_free;
	rng_seed(&g, c->seed ^ 0x5eedca5e);
	/* Cut points at a quarter, half and three quarters of the sequence. */
	for (int part = 1; part <= 3; part++) {
		int t = (int)((long)p.n * part / 4);
		double change;

		if (t >= p.n - 1)
			continue;
		ret = tensors_unseal(q2, k2, v2);
		if (ret)
			goto out_free;
		memcpy(q2, q, q_bytes);
		memcpy(k2, k, kv_bytes);
		memcpy(v2, v, kv_bytes);
		perturb_rows(&g, q2, (size_t)p.batch * p.heads, p.n, p.d, t);
		if (p.pattern == ATTN_CS) {
			perturb_rows(&g, k2, (size_t)p.batch * p.kv_heads, p.m, p.d, t);
			perturb_rows(&g, v2, (size_t)p.batch * p.kv_heads, p.m, p.d, t);
		}
		ret = tensors_seal(q2, k2, v2);
		if (ret)
			goto out_free;
		ret = c->variant->forward(&p, q2, k2, v2, o2);
		if (ret)
			goto out_free;
		snprintf(what, sizeof(what), "output with rows > %d changed", t);
		if (!tensors_check_guards(r) || !result_check_finite(r, what, &p, o2, 0, p.n))
			goto out_free;
		change = change_up_to(&p, o, o2, t);
		if (change >= worst) {
			worst = change;
			worst_t = t;
		}
	}
	result_metric(r, "causal_change", worst, "");
	if (worst > CAUSAL_TOLERANCE)
		result_status(r, CELL_FAILED,
			      "causality violated: rows <= %d moved by %.3g relative (tolerance %g)",
			      worst_t, worst, CAUSAL_TOLERANCE);
out_free:
	tensors_free(q2, k2, v2, o2);
	tensors_free(q, k, v, o);
	return ret;
}

const struct task_ops causality_task = {
	.name = "causality",
	.summary = "perturb what a causal row must not see; rows <= t must not move",
	.patterns = PATTERN_BIT(ATTN_CS) | PATTERN_BIT(ATTN_CC),
	.run = causality_run,
};
