/*
 * decode.c - incremental decoding after a prefix (SPEC section 4): per-token latency and
 * state of a variant's decode_step(), and the check that every incremental output equals
 * the same row of the full causal pass.
 *
 * The cell's n is the prefix N. The problem has N + DECODE_TOKENS positions in cs; the
 * prefix is fed untimed, then each generated position is timed alone. A decoder with a
 * prefill (a KV cache) reads the prefix in one go, as a prompt is read; the others are
 * fed it step by step, each of those outputs checked too.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "inputs.h"
#include "memory.h"
#include "stats.h"
#include "task.h"

/*
 * Positions generated and timed after the prefix: enough samples for a median with a
 * tight interval (ranks 24..40 of 64), few enough that the cache grows by under 2% at
 * N = 4096, so every step costs about the same.
 */
#define DECODE_TOKENS 64
/* fp32 kernels summing in another order than the full pass; the spec's bound. */
#define DECODE_TOLERANCE 1e-5

/* Step buffers: one position of Q, K, V and the output, [batch][heads or kv_heads][d]. */
struct decode_rows {
	float *q, *k, *v, *o;
};

static int rows_alloc(const struct attn_problem *p, struct decode_rows *r)
{
	size_t nq = (size_t)p->batch * p->heads * p->d;
	size_t nkv = (size_t)p->batch * p->kv_heads * p->d;

	/* fenced like the full tensors; not sealed, as every step refills them */
	r->q = tensor_alloc(nq, "step q");
	r->k = tensor_alloc(nkv, "step k");
	r->v = tensor_alloc(nkv, "step v");
	r->o = tensor_alloc(nq, "step o");
	if (r->q && r->k && r->v && r->o)
		return 0;
	tensors_free(r->q, r->k, r->v, r->o);
	return -ENOMEM;
}

/* Copies row t of every slice of x (slices of `rows` rows of d) into to[slices][d]. */
static void gather_row(float *to, const float *x, size_t slices, int rows, int d, int t)
{
	for (size_t s = 0; s < slices; s++)
		memcpy(to + s * d, x + (s * rows + t) * d, sizeof(float) * d);
}

/* Largest |o_inc - o_full| and |o_full| over position t; both outputs finite. */
static void compare_row(const struct attn_problem *p, const float *inc, const float *full,
			int t, double *diff, double *scale)
{
	for (size_t s = 0; s < (size_t)p->batch * p->heads; s++)
		for (int c = 0; c < p->d; c++) {
			double a = inc[s * p->d + c], b = full[(s * p->n + t) * p->d + c];

			*diff = fmax(*diff, fabs(a - b));
			*scale = fmax(*scale, fabs(b));
		}
}

/* The cs problem a cell decodes: its prefix N and the positions generated after it. */
static struct attn_problem decoded_problem(const struct cell *c)
{
	struct attn_problem p = cell_problem(c);

	p.n = p.m = c->n + DECODE_TOKENS;
	return p;
}

/*
 * The per-token latency, from r's samples; and, when the variant gives its state's size,
 * the bytes a step reads and the rate it reads them at. Every step reads the whole state
 * once (the KV cache of an exact variant); it is counted at its size after the last step,
 * which is within 2% of every timed step's from N = 4096 on (DECODE_TOKENS). A state the
 * step also writes back (a recurrent one) moves more than this: the write is not counted.
 */
static int decode_summarise(const struct cell *c, struct cell_result *r)
{
	struct attn_problem p = decoded_problem(c);
	struct sample_summary s;
	double bytes;
	int ret = result_latency(r, &s);

	if (ret || !c->variant->state_bytes || !(s.median > 0))
		return ret;
	bytes = c->variant->state_bytes(&p);
	result_metric(r, "bytes", bytes, "B");
	result_metric(r, "gbps", bytes / s.median * 1e-9, "GB/s");
	return 0;
}

static int decode_run(const struct cell *c, struct cell_result *r)
{
	const struct variant_ops *vo = c->variant;
	struct attn_problem p = decoded_problem(c);
	struct decode_rows step;
	double diff = 0, scale = 0, rel_err;
	size_t live, peak;
	float *q, *k, *v, *o;
	void *state;
	int ret, fed = 0;

	if (!vo->decode_init || !vo->decode_step || !vo->decode_free) {
		result_status(r, CELL_UNSUPPORTED, "'%s' has no incremental decoding",
			      vo->name);
		return -ENOTSUP;
	}
	if (c->pattern != ATTN_CS || c->n < 0)
		return -EINVAL;
	ret = variant_check_problem(vo, &p);
	if (ret)
		return ret;

	ret = tensors_alloc(&p, &q, &k, &v, &o);
	if (ret)
		return ret;
	ret = rows_alloc(&p, &step);
	if (ret)
		goto out_free_tensors;
	inputs_generate("gaussian", &p, c->seed, q, k, v);
	ret = tensors_seal(q, k, v);
	if (ret)
		goto out_free_rows;
	ret = vo->forward(&p, q, k, v, o);
	if (ret || !tensors_check_guards(r) ||
	    !result_check_finite(r, "full causal pass output", &p, o, 0, p.n))
		goto out_free_rows;

	live = memory_live_bytes();
	memory_reset_peak();
	ret = vo->decode_init(&p, &state);
	if (ret)
		goto out_free_rows;
	if (vo->decode_prefill) {
		ret = vo->decode_prefill(state, k, v, p.m, c->n);
		if (ret)
			goto out_free_state;
		fed = c->n;
	}
	for (int t = fed; t < p.n; t++) {
		double start, took;

		gather_row(step.q, q, (size_t)p.batch * p.heads, p.n, p.d, t);
		gather_row(step.k, k, (size_t)p.batch * p.kv_heads, p.m, p.d, t);
		gather_row(step.v, v, (size_t)p.batch * p.kv_heads, p.m, p.d, t);
		start = timing_now();
		ret = vo->decode_step(state, step.q, step.k, step.v, step.o);
		took = timing_now() - start;
		if (ret)
			goto out_free_state;
		/* The prefix is fed untimed; each generated position is one sample. */
		if (t >= c->n) {
			ret = result_sample(r, took);
			if (ret)
				goto out_free_state;
		}
		if (!tensors_check_guards(r) ||
		    !result_check_finite(r, "decode step output", &p, step.o, t, 1))
			goto out_free_state;
		compare_row(&p, step.o, o, t, &diff, &scale);
	}
	peak = memory_peak_bytes() - live;

	ret = decode_summarise(c, r);
	if (ret)
		goto out_free_state;
	rel_err = scale > 0 ? diff / scale : diff;
	result_metric(r, "rel_err", rel_err, "");
	result_metric(r, "tokens", DECODE_TOKENS, "");
	if (vo->state_bytes)
		result_metric(r, "state_bytes", vo->state_bytes(&p), "B");
	result_metric(r, "peak_bytes", (double)peak, "B");
	if (!(rel_err <= DECODE_TOLERANCE))
		result_status(r, CELL_FAILED,
			      "incremental output differs from the full causal pass by %.3g "
			      "(tolerance %g)", rel_err, DECODE_TOLERANCE);
out_free_state:
	vo->decode_free(state);
out_free_rows:
	tensors_free(step.q, step.k, step.v, step.o);
out_free_tensors:
	tensors_free(q, k, v, o);
	return ret;
}

/*
 * Each visit: the full causal pass, then every position stepped (together about another
 * pass, and a call's own overhead each), or the prefix read at once and the generated
 * positions stepped.
 */
static double decode_cost(const struct cell *c, double forward, int visits)
{
	if (c->variant->decode_prefill)
		return visits * (forward + DECODE_TOKENS * 2e-6);
	return visits * (2 * forward + (c->n + DECODE_TOKENS) * 2e-6);
}

const struct task_ops decode_task = {
	.name = "decode",
	.summary = "per-token latency and state of incremental decoding after a prefix",
	.patterns = PATTERN_BIT(ATTN_CS),
	.run = decode_run,
	.summarise = decode_summarise,
	.cost = decode_cost,
};
