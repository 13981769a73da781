/*
 * sink.c - StreamingLLM's attention sinks plus a recent window (Xiao et al. 2024).
 *
 * Row i sees the first S keys ("sinks") and a window of W keys ending at itself, one
 * softmax over their union (a key in both counts once):
 *   cs: j <= i and (j < S or j >= i - W + 1), so sink.window = recent_size + 1 of the
 *       reference's StartRecentKVCache;
 *   ns [harness]: j < S or |i - j| < W.
 * The mask is at most two spans, made in O(1) per row (sink_mask) and handed to the span
 * kernel (span-attention.h), so the work is O(n (S + W) d).
 *
 * The paper re-indexes positions inside its cache (a key's position is its slot in the
 * cache, not in the text). Here Q and K come with their positional encoding applied, so
 * that cannot be reproduced and results may differ from the paper's.
 *
 * Incremental decoding (cs) is the span kernel's: every position cached, each step over
 * row t's spans.
 */
#include "variant.h"

#include <errno.h>
#include <string.h>

#include "common.h"
#include "span-attention.h"

#define SINK_SINKS_DEFAULT 4	/* the paper's 4 initial tokens */
#define SINK_WINDOW_DEFAULT 1020	/* "4+1020": a 1024-token cache (Table 1) */

enum { SINK_SINKS, SINK_WINDOW, SINK_PARAMS };

static const struct variant_param sink_params[] = {
	[SINK_SINKS] = {
		.name		= "sinks",
		.def		= SINK_SINKS_DEFAULT,
		.min		= 0,
		.max		= 1048576,
		.integer	= true,
		.help		= "S: the first S keys every row sees (cs: those <= i)",
	},
	[SINK_WINDOW] = {
		.name		= "window",
		.def		= SINK_WINDOW_DEFAULT,
		.min		= 1,
		.max		= 1048576,
		.integer	= true,
		.help		= "W: cs keys i-W+1..i (recent_size + 1); ns keys |i-j| < W [harness]",
	},
};

static long sink_param(const struct attn_problem *p, int which)
{
	return p->params ? (long)p->params[which] : (long)sink_params[which].def;
}

/*
 * The sinks [0, S) and the window of row i, clipped to the sequence and (cs) to i, as
 * one span when they touch or overlap, else two.
 */
static int sink_mask(const struct attn_problem *p, int h, int i, struct key_span *spans,
		     int max)
{
	long s = sink_param(p, SINK_SINKS), w = sink_param(p, SINK_WINDOW);
	long end = p->pattern == ATTN_CS ? (long)i + 1 : p->m;
	long lo = i - w + 1 > 0 ? i - w + 1 : 0;
	long hi = p->pattern == ATTN_CS ? (long)i + 1 : (long)i + w;
	struct key_span out[2];
	int count = 0;

	(void)h;
	s = s < end ? s : end;
	hi = hi < p->m ? hi : p->m;
	if (s > 0 && s >= lo) {
		/* the sinks reach the window: one run from key 0 */
		out[count++] = (struct key_span){ 0, (int)(hi > s ? hi : s) };
	} else {
		if (s > 0)
			out[count++] = (struct key_span){ 0, (int)s };
		if (hi > lo)
			out[count++] = (struct key_span){ (int)lo, (int)hi };
	}
	for (int x = 0; x < count && x < max; x++)
		spans[x] = out[x];
	return count;
}

static int sink_forward(const struct attn_problem *p, const float *q, const float *k,
			const float *v, float *out)
{
	if (!pattern_is_self(p->pattern))
		return -ENOTSUP;
	return span_attention_forward(p, sink_mask, q, k, v, out);
}

/* 4d flops per (query, key) pair the mask keeps. */
static double sink_flops(const struct attn_problem *p)
{
	return span_attention_flops(p, sink_mask);
}

/*
 * Bytes of the keys and values one row can see at most, float32: S sinks and a window
 * of W (cs) or 2W - 1 (ns) positions, at most the sequence.
 */
static double sink_state_bytes(const struct attn_problem *p)
{
	long s = sink_param(p, SINK_SINKS), w = sink_param(p, SINK_WINDOW);
	long keys = s + (p->pattern == ATTN_CS ? w : 2 * w - 1);

	return kv_cache_bytes(p, keys < p->m ? keys : p->m);
}

/* The span kernel's decoder under sink_mask. */
static int sink_decode_init(const struct attn_problem *p, void **state)
{
	return span_decode_init(p, sink_mask, SINK_PARAMS, state);
}

const struct variant_ops sink_variant = {
	.name		= "sink",
	.family		= "sparse",
	.summary	= "StreamingLLM: S sink keys + window W (ns [harness]); the paper re-indexes "
			  "positions in its cache, which given Q/K cannot be reproduced",
	.citation	= "Xiao et al. 2024, Efficient Streaming Language Models with Attention "
			  "Sinks, ICLR, arXiv 2309.17453",
	.patterns	= PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_CS),
	.extensions	= PATTERN_BIT(ATTN_NS),
	.flags		= VARIANT_MASK_EXACT,
	.mask		= sink_mask,
	.params		= sink_params,
	.n_params	= SINK_PARAMS,
	.forward	= sink_forward,
	.flops		= sink_flops,
	.state_bytes	= sink_state_bytes,
	.decode_init	= sink_decode_init,
	.decode_step	= span_decode_step,
	.decode_free	= span_decode_free,
	.decode_prefill	= span_decode_prefill,
};
