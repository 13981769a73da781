/*
 * causality.c - CAB's pattern test by perturbation: change what row t must not see and
 * check that rows <= t do not move (SPEC section 4).
 *
 * cs: rows > t of Q, K and V change; cc: rows > t of Q change (all keys stay visible).
 * A block-causal variant (VARIANT_BLOCK_CAUSAL) is tested strictly at its strict setting
 * and between blocks at the cell's (causality_run()).
 */
#include <errno.h>
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

/*
 * Perturbs, for cuts t at a quarter, half and three quarters of the sequence, the rows
 * after the end of t's block of `block` rows (block 1: the rows after t) in a copy of
 * the inputs (Q rows; K and V rows too in cs), runs p on it and measures how far rows
 * <= t moved from o, p's output on the inputs. With `inside`, t is moved to the middle
 * of its block and the rows after t change: what leaks inside a block. *worst and
 * *worst_t get the largest change and its cut. Returns 0; 1 when an output was not
 * finite or a buffer was written outside (r's status then says so); or what forward()
 * returned.
 */
static int cut_changes(const struct cell *c, const struct attn_problem *p, const float *q,
		       const float *k, const float *v, const float *o, float *q2, float *k2,
		       float *v2, float *o2, struct rng *g, int block, bool inside,
		       struct cell_result *r, double *worst, int *worst_t)
{
	size_t q_bytes = sizeof(float) * problem_q_count(p);
	size_t kv_bytes = sizeof(float) * problem_kv_count(p);
	char what[64];
	int ret;

	*worst = 0;
	*worst_t = -1;
	for (int part = 1; part <= 3; part++) {
		int t = (int)((long)p->n * part / 4), after = (t / block + 1) * block - 1;
		double change;

		if (inside) {
			t = t / block * block + (block - 1) / 2;
			after = t;
		}

		if (after >= p->n - 1)
			continue;
		ret = tensors_unseal(q2, k2, v2);
		if (ret)
			return ret;
		memcpy(q2, q, q_bytes);
		memcpy(k2, k, kv_bytes);
		memcpy(v2, v, kv_bytes);
		perturb_rows(g, q2, (size_t)p->batch * p->heads, p->n, p->d, after);
		if (p->pattern == ATTN_CS) {
			perturb_rows(g, k2, (size_t)p->batch * p->kv_heads, p->m, p->d, after);
			perturb_rows(g, v2, (size_t)p->batch * p->kv_heads, p->m, p->d, after);
		}
		ret = tensors_seal(q2, k2, v2);
		if (ret)
			return ret;
		ret = c->variant->forward(p, q2, k2, v2, o2);
		if (ret)
			return ret;
		snprintf(what, sizeof(what), "output with rows > %d changed", after);
		if (!tensors_check_guards(r) || !result_check_finite(r, what, p, o2, 0, p->n))
			return 1;
		change = change_up_to(p, o, o2, t);
		if (change >= *worst) {
			*worst = change;
			*worst_t = t;
		}
	}
	return 0;
}

/*
 * A VARIANT_BLOCK_CAUSAL variant is held to strict causality with its strict setting
 * (strict_causal_param = 1: causal_change, causal_block = 1), and at the cell's own
 * setting of block size B to causality between blocks (block_causal_change: rows after
 * t's block change); what rows <= t move when the rows after t change at the cell's
 * setting is reported as causal_leak. The reason says which setting was tested.
 */
static int causality_run(const struct cell *c, struct cell_result *r)
{
	struct attn_problem p = cell_problem(c), strict = p;
	double strict_params[VARIANT_MAX_PARAMS], worst, block_worst = 0, leak = 0;
	float *q, *k, *v, *o, *q2 = NULL, *k2 = NULL, *v2 = NULL, *o2 = NULL, *os = NULL;
	int worst_t, block_t = -1, leak_t, block = 1, ret, si;
	const char *name = c->variant->strict_causal_param;
	size_t peak;
	struct rng g;

	memcpy(strict_params, c->params, sizeof(strict_params));
	si = variant_strict_causal_params(c->variant, strict_params);
	if (si >= 0) {
		strict.params = strict_params;
		block = (int)c->params[si];
	}
	ret = tensors_alloc(&p, &q, &k, &v, &o);
	if (ret)
		return ret;
	ret = tensors_alloc(&p, &q2, &k2, &v2, &o2);
	if (ret)
		goto out_free;
	if (si >= 0) {
		os = tensor_alloc(problem_q_count(&p), "o");
		if (!os) {
			ret = -ENOMEM;
			goto out_free;
		}
	}
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
	if (si >= 0) {
		ret = c->variant->forward(&strict, q, k, v, os);
		if (ret)
			goto out_free;
		if (!tensors_check_guards(r) ||
		    !result_check_finite(r, "output at the strict setting", &p, os, 0, p.n))
			goto out_free;
		ret = cut_changes(c, &strict, q, k, v, os, q2, k2, v2, o2, &g, 1, false, r,
				  &worst, &worst_t);
		if (!ret)
			ret = cut_changes(c, &p, q, k, v, o, q2, k2, v2, o2, &g, block, false, r,
					  &block_worst, &block_t);
		if (!ret)
			ret = cut_changes(c, &p, q, k, v, o, q2, k2, v2, o2, &g, block, true, r,
					  &leak, &leak_t);
		result_metric(r, "causal_block", 1, "");
		result_metric(r, "block_causal_change", block_worst, "");
		result_metric(r, "causal_leak", leak, "");
	} else {
		ret = cut_changes(c, &p, q, k, v, o, q2, k2, v2, o2, &g, 1, false, r, &worst,
				  &worst_t);
	}
	if (ret) {
		/* 1: r's status already says what went wrong */
		ret = ret > 0 ? 0 : ret;
		goto out_free;
	}
	result_metric(r, "causal_change", worst, "");
	if (worst > CAUSAL_TOLERANCE && si < 0)
		result_status(r, CELL_FAILED,
			      "causality violated: rows <= %d moved by %.3g relative (tolerance %g)",
			      worst_t, worst, CAUSAL_TOLERANCE);
	else if (worst > CAUSAL_TOLERANCE)
		result_status(r, CELL_FAILED,
			      "causality violated at the strict %s.%s=1: rows <= %d moved by %.3g "
			      "relative (tolerance %g)", c->variant->name, name, worst_t, worst,
			      CAUSAL_TOLERANCE);
	else if (block_worst > CAUSAL_TOLERANCE)
		result_status(r, CELL_FAILED,
			      "block-causality violated at %s.%s=%d: rows <= %d moved by %.3g "
			      "relative when rows after their block changed (tolerance %g)",
			      c->variant->name, name, block, block_t, block_worst,
			      CAUSAL_TOLERANCE);
	else if (si >= 0)
		result_status(r, CELL_OK,
			      "tested strict at %s.%s=1; block-causal at the cell's %s.%s=%d, "
			      "where rows <= t move by %.3g when later rows of their block change",
			      c->variant->name, name, c->variant->name, name, block, leak);
out_free:
	if (os)
		tensor_free(os);
	tensors_free(q2, k2, v2, o2);
	tensors_free(q, k, v, o);
	return ret;
}

/* The pass on the inputs and one per perturbed position (three). */
static double causality_cost(const struct cell *c, double forward, int visits)
{
	(void)c;
	return visits * 4 * forward;
}

const struct task_ops causality_task = {
	.name = "causality",
	.summary = "perturb what a causal row must not see; rows <= t must not move",
	.patterns = PATTERN_BIT(ATTN_CS) | PATTERN_BIT(ATTN_CC),
	.run = causality_run,
	.cost = causality_cost,
};
