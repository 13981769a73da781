/*
 * local.c - sliding-window attention as CAB's LocalAttention (Luong et al. 2015).
 *
 * Row i attends keys i-w..i+w (ns, 2w+1 slots) or i-w+1..i (cs, w slots with itself).
 * Slots outside the sequence are masked, never clamped onto its ends. The window is
 * declared once as the variant's mask (local_mask), which the forward pass hands to the
 * span kernel (span-attention.h, O(n w d)) and the fp64 reference checks it under.
 *
 * Incremental decoding (cs) keeps a ring of the last w keys and values per KV head,
 * since no later row can see anything older: its state does not grow with the length.
 */
#include "variant.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>

#include "common.h"
#include "kv-cache.h"
#include "memory.h"
#include "span-attention.h"

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

/* The window of row i, clipped to the sequence: one span, or none. */
static int local_mask(const struct attn_problem *p, int h, int i, struct key_span *spans,
		      int max)
{
	long w = p->params ? (long)p->params[0] : LOCAL_WINDOW_DEFAULT;
	long lo = p->pattern == ATTN_CS ? i - w + 1 : i - w;
	long hi = i + (p->pattern == ATTN_CS ? 0 : w) + 1;

	(void)h;
	lo = lo < 0 ? 0 : lo;
	hi = hi > p->m ? p->m : hi;
	if (hi <= lo)
		return 0;
	if (max >= 1)
		spans[0] = (struct key_span){ (int)lo, (int)hi };
	return 1;
}

static int local_forward(const struct attn_problem *p, const float *q, const float *k,
			 const float *v, float *out)
{
	if (!pattern_is_self(p->pattern))
		return -ENOTSUP;
	return span_attention_forward(p, local_mask, q, k, v, out);
}

/* 4d flops per (query, key) pair inside the window and the sequence. */
static double local_flops(const struct attn_problem *p)
{
	return span_attention_flops(p, local_mask);
}

/*
 * Bytes of the keys and values one row can see, float32: a window of w (cs) or 2w + 1
 * (ns) positions, at most the sequence.
 */
static double local_state_bytes(const struct attn_problem *p)
{
	long w = p->params ? (long)p->params[0] : LOCAL_WINDOW_DEFAULT;
	long span = p->pattern == ATTN_CS ? w : 2 * w + 1;

	return kv_cache_bytes(p, span < p->m ? span : p->m);
}

/*
 * Below this many multiply-adds per step (slices x window x d, scores and sum alike) a
 * parallel region costs more than it saves.
 */
#define LOCAL_DECODE_PARALLEL_MIN 32768

/* Incremental decoding: position j lives in slot j % ring until j + ring replaces it. */
struct local_decode {
	struct attn_problem p;	/* n = m = capacity in positions */
	double params[1];	/* p.params points here */
	long w;			/* window */
	int ring;		/* slots per KV head: min(w, capacity) */
	int len;		/* positions fed so far */
	int threads;		/* score rows; the most threads a step runs on */
	struct kv_cache cache;	/* a ring of `ring` slots per KV head */
	float *s;		/* [threads][ring] scores */
};

static void local_decode_free(void *state)
{
	struct local_decode *st = state;

	if (!st)
		return;
	attn_free(st->s);
	kv_cache_release(&st->cache);
	attn_free(st);
}

static int local_decode_init(const struct attn_problem *p, void **state)
{
	struct local_decode *st;
	int ret;

	*state = NULL;
	st = attn_calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->p = decode_problem(p);
	st->params[0] = p->params ? p->params[0] : LOCAL_WINDOW_DEFAULT;
	st->p.params = st->params;
	st->w = (long)st->params[0];
	st->ring = st->w < p->n ? (int)st->w : p->n;
	st->threads = max_threads();
	ret = kv_cache_init(&st->cache, p, st->ring);
	if (ret)
		goto out_free_state;
	st->s = attn_calloc((size_t)st->threads * st->ring, sizeof(float));
	if (!st->s) {
		ret = -ENOMEM;
		goto out_free_state;
	}
	*state = st;
	return 0;

out_free_state:
	local_decode_free(st);
	return ret;
}

/*
 * Softmax attention of q over positions lo..hi-1 kept in a ring of `ring` slots
 * (hi - lo <= ring): the forward pass's row t, to rounding.
 */
static void ring_row(const float *q, const float *k, const float *v, int d, float scale,
		     long lo, long hi, int ring, float *scratch, float *out)
{
	float max = -INFINITY, sum = 0;
	int slot = (int)(lo % ring);

	for (int c = 0; c < d; c++)
		out[c] = 0;
	if (hi <= lo)
		return;
	for (long j = lo; j < hi; j++) {
		scratch[j - lo] = scale * dot(q, k + (size_t)slot * d, d);
		max = fmaxf(max, scratch[j - lo]);
		slot = slot + 1 == ring ? 0 : slot + 1;
	}
	slot = (int)(lo % ring);
	for (long j = lo; j < hi; j++) {
		float w = expf(scratch[j - lo] - max);
		const float *vj = v + (size_t)slot * d;

		sum += w;
		for (int c = 0; c < d; c++)
			out[c] += w * vj[c];
		slot = slot + 1 == ring ? 0 : slot + 1;
	}
	for (int c = 0; c < d; c++)
		out[c] /= sum;
}

static int local_decode_step(void *state, const float *q, const float *k, const float *v,
			     float *out)
{
	struct local_decode *st = state;
	const struct attn_problem *p = &st->p;
	float scale = 1.0f / sqrtf((float)p->d);
	int slices = p->batch * p->heads, d = p->d, t = st->len;
	long lo;

	if (t >= p->m)
		return -ENOSPC;
	kv_cache_put(&st->cache, t % st->ring, k, v);
	st->len++;
	lo = t - st->w + 1 > 0 ? t - st->w + 1 : 0;

	#pragma omp parallel for num_threads(st->threads) schedule(static) \
		if ((double)slices * (t + 1 - lo) * d >= LOCAL_DECODE_PARALLEL_MIN)
	for (int i = 0; i < slices; i++) {
		int b = i / p->heads, kvh = i % p->heads / (p->heads / p->kv_heads);
		size_t kvo = kv_cache_slice(&st->cache, b * p->kv_heads + kvh);
		float *scratch = st->s + (size_t)thread_id() * st->ring;

		ring_row(q + (size_t)i * d, st->cache.k + kvo, st->cache.v + kvo, d, scale, lo,
			 t + 1, st->ring, scratch, out + (size_t)i * d);
	}
	return 0;
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
	.mask		= local_mask,
	.params		= local_params,
	.n_params	= 1,
	.forward	= local_forward,
	.flops		= local_flops,
	.state_bytes	= local_state_bytes,
	.decode_init	= local_decode_init,
	.decode_step	= local_decode_step,
	.decode_free	= local_decode_free,
};
