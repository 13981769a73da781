/*
 * speed.c - latency, work rate, bytes moved and workspace of one forward pass (SPEC
 * sections 4, 5).
 */
#include <math.h>
#include <stdlib.h>

#include "inputs.h"
#include "stats.h"
#include "task.h"

struct speed_call {
	const struct variant_ops *variant;
	const struct attn_problem *problem;
	const float *q, *k, *v;
	float *o;
};

static int speed_forward(void *arg)
{
	struct speed_call *call = arg;

	return call->variant->forward(call->problem, call->q, call->k, call->v, call->o);
}

static int speed_sample(void *arg, double seconds)
{
	return result_sample(arg, seconds);
}

/*
 * The latency, the time spent timing and the work rate, from r's samples; and the bytes
 * a forward moves (the variant's formula, or the compulsory traffic), which with the
 * FLOPs place the variant on the roofline.
 */
static int speed_summarise(const struct cell *c, struct cell_result *r)
{
	struct attn_problem p = cell_problem(c);
	struct sample_summary s;
	double timed = 0;
	int ret = result_latency(r, &s);

	if (ret)
		return ret;
	for (size_t i = 0; i < r->n_samples; i++)
		timed += r->samples[i];
	result_metric(r, "timed_seconds", timed, "s");
	result_metric(r, "bytes", variant_bytes(c->variant, &p), "B");
	if (c->variant->flops) {
		double flops = c->variant->flops(&p);

		result_metric(r, "flops", flops, "FLOP");
		result_metric(r, "gflops", flops / s.median * 1e-9, "GFLOP/s");
	}
	return 0;
}

static int speed_run(const struct cell *c, struct cell_result *r)
{
	struct attn_problem p = cell_problem(c);
	struct measure_opts opts = c->measure;
	struct speed_call call;
	float *q, *k, *v, *o;
	size_t peak;
	int ret;

	ret = tensors_alloc(&p, &q, &k, &v, &o);
	if (ret)
		return ret;
	inputs_generate("gaussian", &p, c->seed, q, k, v);
	/* sealed once for all calls: no mprotect() among the timed ones */
	ret = tensors_seal(q, k, v);
	if (ret)
		goto out_free;
	/* The first call measures the workspace and counts as a warm-up call. */
	ret = forward_measured(c->variant, &p, q, k, v, o, &peak);
	if (ret)
		goto out_free;
	if (!tensors_check_guards(r) || !result_check_finite(r, "output", &p, o, 0, p.n))
		goto out_free;
	if (opts.warmup > 0)
		opts.warmup--;
	call = (struct speed_call){ c->variant, &p, q, k, v, o };
	ret = timing_measure(speed_forward, &call, &opts, speed_sample, r);
	if (ret)
		goto out_free;
	/* the timed calls wrote o too; a variant may go wrong only on a later call */
	if (!tensors_check_guards(r) ||
	    !result_check_finite(r, "output of a timed call", &p, o, 0, p.n))
		goto out_free;
	result_metric(r, "peak_bytes", (double)peak, "B");
	ret = speed_summarise(c, r);
out_free:
	tensors_free(q, k, v, o);
	return ret;
}

/* Warm-up calls in every visit, then the repeats and time shared by the visits. */
static double speed_cost(const struct cell *c, double forward, int visits)
{
	double timed = fmax(c->measure.min_seconds, c->measure.min_repeats * forward);

	if (c->measure.long_call > 0 && forward >= c->measure.long_call)
		timed = visits * forward;

	return visits * c->measure.warmup * forward + timed;
}

const struct task_ops speed_task = {
	.name = "speed",
	.summary = "latency (median, 95% CI, IQR), GFLOP/s and workspace over a length sweep",
	.patterns = PATTERNS_ALL,
	.run = speed_run,
	.summarise = speed_summarise,
	.cost = speed_cost,
};
