/*
 * fidelity.c - how far a variant's output is from exact attention, on input regimes
 * that mimic real heads (SPEC section 4), with what each regime's attention measurably
 * is (regime-stats.h), so a low error on `local` means a method handles local heads.
 * Or on the user's own tensors (run --inputs: regime "npy:NAME").
 * A mask-exact variant is measured twice: against exact attention (what its mask costs)
 * and, as mask_rel_err, against the oracle under its own mask (whether it is exact there).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "inputs.h"
#include "reference-cache.h"
#include "regime-stats.h"
#include "task.h"

static int fidelity_run(const struct cell *c, struct cell_result *r)
{
	struct attn_problem p = cell_problem(c);
	size_t peak, rows = (size_t)p.batch * p.heads * p.n;
	struct output_error e;
	struct regime_stats st;
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
	if (c->inputs) {	/* the user's own tensors, as run --inputs read them */
		memcpy(q, c->inputs->q, sizeof(*q) * problem_q_count(&p));
		memcpy(k, c->inputs->k, sizeof(*k) * problem_kv_count(&p));
		memcpy(v, c->inputs->v, sizeof(*v) * problem_kv_count(&p));
	} else {
		ret = inputs_generate(c->regime, &p, c->seed, q, k, v);
	}
	if (!ret)
		ret = tensors_seal(q, k, v);
	if (ret)
		goto out_free_ref;
	ret = forward_measured(c->variant, &p, q, k, v, o, &peak);
	if (ret)
		goto out_free_ref;
	result_metric(r, "peak_bytes", (double)peak, "B");
	if (!tensors_check_guards(r) || !result_check_finite(r, "output", &p, o, 0, p.n))
		goto out_free_ref;
	/*
	 * The oracle and the regime's properties depend on the inputs only: shared by
	 * every variant of a run.
	 */
	ret = reference_cached(c, &p, q, k, v, ref, &st);
	if (ret)
		goto out_free_ref;
	output_compare(o, ref, rows, p.d, v, problem_kv_count(&p), &e);

	result_metric(r, "rel_err", e.rel_err, "");
	result_metric(r, "scaled_err", e.scaled_err, "");
	result_metric(r, "cosine", e.cosine, "");
	result_metric(r, "max_abs_err", e.max_abs_err, "");

	/* a mask-exact variant is also held to the oracle under its own declared mask */
	if (c->variant->mask) {
		ret = reference_attention_masked(&p, c->variant->mask, q, k, v, ref);
		if (ret)
			goto out_free_ref;
		output_compare(o, ref, rows, p.d, v, problem_kv_count(&p), &e);
		result_metric(r, "mask_rel_err", e.rel_err, "");
	}

	/* what the regime is, measured on these inputs */
	result_metric(r, "regime_entropy", st.entropy, "nats");
	result_metric(r, "regime_near16", st.near16, "");
	result_metric(r, "regime_sink", st.sink, "");
	result_metric(r, "regime_top1", st.top1, "");
	result_metric(r, "regime_erank", st.erank, "");
out_free_ref:
	free(ref);
out_free_tensors:
	tensors_free(q, k, v, o);
	return ret;
}

/*
 * The variant's pass and the fp64 reference, shared through the reference cache by the
 * variants of one shape: about two passes more per cell.
 */
static double fidelity_cost(const struct cell *c, double forward, int visits)
{
	(void)c;
	return visits * 3 * forward;
}

const struct task_ops fidelity_task = {
	.name = "fidelity",
	.summary = "error of O against double-precision exact attention, per input regime",
	.patterns = PATTERNS_ALL,
	.regimes = input_regimes,
	.regime_kind = "input regimes",
	.run = fidelity_run,
	.cost = fidelity_cost,
};
