/*
 * fidelity.c - how far a variant's output is from exact attention, on input regimes
 * that mimic real heads (SPEC section 4).
 */
#include <errno.h>
#include <stdlib.h>

#include "inputs.h"
#include "reference-cache.h"
#include "task.h"

static int fidelity_run(const struct cell *c, struct cell_result *r)
{
	struct attn_problem p = cell_problem(c);
	size_t peak, rows = (size_t)p.batch * p.heads * p.n;
	struct output_error e;
	float *q, *k, *v, *o;
	double *ref;
	int ret;

	ret = tensors_alloc(&p, &q, &k, &v, &o);
	if (ret)
		return ret;
	ref = malloc(sizeof(*ref) * problem_q_count(&p));
	if (!ref) {
		ret = -ENOMEM;
		goto out_free_tensors;
	}
	ret = inputs_generate(c->regime, &p, c->seed, q, k, v);
	if (ret)
		goto out_free_ref;
	ret = forward_measured(c->variant, &p, q, k, v, o, &peak);
	if (ret)
		goto out_free_ref;
	result_metric(r, "peak_bytes", (double)peak, "B");
	if (!result_check_finite(r, "output", &p, o, 0, p.n))
		goto out_free_ref;
	/* the oracle's output depends on the inputs only: shared by every variant of a run */
	reference_cached(c, &p, q, k, v, ref);
	output_compare(o, ref, rows, p.d, &e);

	result_metric(r, "rel_err", e.rel_err, "");
	result_metric(r, "cosine", e.cosine, "");
	result_metric(r, "max_abs_err", e.max_abs_err, "");
out_free_ref:
	free(ref);
out_free_tensors:
	tensors_free(q, k, v, o);
	return ret;
}

const struct task_ops fidelity_task = {
	.name = "fidelity",
	.summary = "error of O against double-precision exact attention, per input regime",
	.patterns = PATTERNS_ALL,
	.regimes = input_regimes,
	.regime_kind = "input regimes",
	.run = fidelity_run,
};
