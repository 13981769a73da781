/*
 * local.c - sliding-window attention as CAB's LocalAttention (Luong et al. 2015).
 *
 * Row i attends keys i-w..i+w (ns, 2w+1 slots) or i-w+1..i (cs, w slots with itself).
 * Slots outside the sequence are masked, never clamped onto its ends. Each row is
 * computed directly from its window, O(n w d), in parallel over rows; the only memory is
 * one window of scores per thread.
 */
#include "variant.h"

#include <errno.h>
#include <math.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "memory.h"

#define LOCAL_WINDOW_DEFAULT 15	/* CAB's constructor and CLI default */

static const struct variant_param local_params[] = {
	{
		.name		= "window",
		.def		= LOCAL_WINDOW_DEFAULT,
		.min		= 1,
		.max		= 1048576,
		.integer	= true,
		.help		= "w: ns sees keys i-w..i+w, cs sees keys i-w+1..i",
	},
};

static int max_threads(void)
{
#ifdef _OPENMP
	return omp_get_max_threads();
#else
	return 1;
#endif
}

static int thread_id(void)
{
#ifdef _OPENMP
	return omp_get_thread_num();
#else
	return 0;
#endif
}

/* Dot product in eight fixed partial sums, so it vectorises and stays deterministic. */
static float dot(const float *a, const float *b, int d)
{
	float part[8] = { 0 }, s = 0;
	int c = 0;

	for (; c + 8 <= d; c += 8)
		for (int l = 0; l < 8; l++)
			part[l] += a[c + l] * b[c + l];
	for (; c < d; c++)
		s += a[c] * b[c];
	for (int l = 0; l < 8; l++)
		s += part[l];
	return s;
}

/*
 * One output row: softmax of scale * q.k_j over keys lo..hi-1 (already clipped to the
 * sequence), weights scratch of hi - lo floats.
 */
static void local_row(const float *q, const float *k, const float *v, int d, float scale,
		      int lo, int hi, float *scratch, float *out)
{
	float max = -INFINITY, sum = 0;

	for (int c = 0; c < d; c++)
		out[c] = 0;
	if (hi <= lo)
		return;
	for (int j = lo; j < hi; j++) {
		scratch[j - lo] = scale * dot(q, k + (size_t)j * d, d);
		max = fmaxf(max, scratch[j - lo]);
	}
	for (int j = lo; j < hi; j++) {
		float w = expf(scratch[j - lo] - max);
		const float *vj = v + (size_t)j * d;

		sum += w;
		for (int c = 0; c < d; c++)
			out[c] += w * vj[c];
	}
	for (int c = 0; c < d; c++)
		out[c] /= sum;
}

static int local_forward(const struct attn_problem *p, const float *q, const float *k,
			 const float *v, float *out)
{
	long w = p->params ? (long)p->params[0] : LOCAL_WINDOW_DEFAULT;
	bool causal = p->pattern == ATTN_CS;
	long span = causal ? w : 2 * w + 1;
	long rows = (long)p->batch * p->heads * p->n;
	float scale = 1.0f / sqrtf((float)p->d);
	int threads = max_threads();
	float *scratch;

	if (!pattern_is_self(p->pattern))
		return -ENOTSUP;
	if (span > p->m)
		span = p->m;
	scratch = attn_alloc((size_t)threads * span * sizeof(float));
	if (!scratch)
		return -ENOMEM;

	#pragma omp parallel for schedule(static)
	for (long r = 0; r < rows; r++) {
		int slice = (int)(r / p->n), i = (int)(r % p->n);
		int b = slice / p->heads, h = slice % p->heads;
		long lo = causal ? i - w + 1 : i - w;
		long hi = i + (causal ? 0 : w) + 1;
		size_t qo = problem_q_offset(p, b, h) + (size_t)i * p->d;
		size_t kvo = problem_kv_offset(p, b, h);

		if (lo < 0)
			lo = 0;
		if (hi > p->m)
			hi = p->m;
		local_row(q + qo, k + kvo, v + kvo, p->d, scale, (int)lo, (int)hi,
			  scratch + (size_t)thread_id() * span, out + qo);
	}
	attn_free(scratch);
	return 0;
}

/* 4d flops per (query, key) pair inside the window and the sequence. */
static double local_flops(const struct attn_problem *p)
{
	long w = p->params ? (long)p->params[0] : LOCAL_WINDOW_DEFAULT;
	double pairs = 0;

	for (long i = 0; i < p->n; i++) {
		long lo = p->pattern == ATTN_CS ? i - w + 1 : i - w;
		long hi = i + (p->pattern == ATTN_CS ? 0 : w) + 1;

		lo = lo < 0 ? 0 : lo;
		hi = hi > p->m ? p->m : hi;
		pairs += hi > lo ? (double)(hi - lo) : 0;
	}
	return 4.0 * p->batch * p->heads * p->d * pairs;
}

const struct variant_ops local_variant = {
	.name		= "local",
	.family		= "sparse",
	.summary	= "sliding window: ns keys i-w..i+w, cs keys i-w+1..i",
	.citation	= "Luong et al. 2015, Effective Approaches to Attention-based NMT, "
			  "EMNLP; CAB LocalAttention (Zhang et al. 2023, ICML)",
	.patterns	= PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_CS),
	.extensions	= 0,
	.flags		= VARIANT_MASK_EXACT,
	.params		= local_params,
	.n_params	= 1,
	.forward	= local_forward,
	.flops		= local_flops,
};
