/*
 * chunk.c - block-diagonal attention over non-overlapping chunks, the attention of TCNCA
 * (Terzic et al. 2023) and MEGA-chunk.
 *
 * Row i sees the keys of its own chunk: floor(i / C) == floor(j / C), and in cs also
 * j <= i; the last chunk may be short. The paper uses it inside a causal language model,
 * so cs is native and ns a harness extension. Its learned temporal convolution that
 * mixes chunks is not part of the operator. One span per row (chunk_mask), made in O(1),
 * run by the span kernel (span-attention.h): O(n C d).
 *
 * Incremental decoding (cs) is the span kernel's: every position cached, each step over
 * row t's chunk.
 */
#include "variant.h"

#include <errno.h>
#include <string.h>

#include "common.h"
#include "span-attention.h"

#define CHUNK_SIZE_DEFAULT 128	/* [harness]: the paper's value is unverified */

enum { CHUNK_SIZE, CHUNK_PARAMS };

static const struct variant_param chunk_params[] = {
	[CHUNK_SIZE] = {
		.name		= "size",
		.def		= CHUNK_SIZE_DEFAULT,
		.min		= 1,
		.max		= 1048576,
		.integer	= true,
		.help		= "C: keys per chunk [harness default; paper value unverified]",
	},
};

static long chunk_size(const struct attn_problem *p)
{
	return p->params ? (long)p->params[CHUNK_SIZE] : CHUNK_SIZE_DEFAULT;
}

/* Row i's chunk [C floor(i / C), C floor(i / C) + C), clipped to the sequence and (cs) to i. */
static int chunk_mask(const struct attn_problem *p, int h, int i, struct key_span *spans,
		      int max)
{
	long c = chunk_size(p), lo = (long)i / c * c, hi = lo + c;

	(void)h;
	if (p->pattern == ATTN_CS && hi > (long)i + 1)
		hi = (long)i + 1;
	if (hi > p->m)
		hi = p->m;
	if (hi <= lo)
		return 0;
	if (max >= 1)
		spans[0] = (struct key_span){ (int)lo, (int)hi };
	return 1;
}

static int chunk_forward(const struct attn_problem *p, const float *q, const float *k,
			 const float *v, float *out)
{
	if (!pattern_is_self(p->pattern))
		return -ENOTSUP;
	return span_attention_forward(p, chunk_mask, q, k, v, out);
}

/* 4d flops per (query, key) pair inside a chunk (and, cs, at or before the query). */
static double chunk_flops(const struct attn_problem *p)
{
	return span_attention_flops(p, chunk_mask);
}

/* Bytes of the keys and values one row can see at most, float32: one chunk. */
static double chunk_state_bytes(const struct attn_problem *p)
{
	long c = chunk_size(p);

	return kv_cache_bytes(p, c < p->m ? c : p->m);
}

/* The span kernel's decoder under chunk_mask. */
static int chunk_decode_init(const struct attn_problem *p, void **state)
{
	return span_decode_init(p, chunk_mask, CHUNK_PARAMS, state);
}

const struct variant_ops chunk_variant = {
	.name		= "chunk",
	.family		= "sparse",
	.summary	= "block-diagonal chunks of C keys (cs native; ns [harness]); "
			  "C = 128 [harness, paper value unverified]",
	.citation	= "Terzic et al. 2023, TCNCA: Temporal Convolution Network with Chunked "
			  "Attention for Scalable Sequence Processing, NeurIPS ENLSP workshop, "
			  "arXiv 2312.05605",
	.patterns	= PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_CS),
	.extensions	= PATTERN_BIT(ATTN_NS),
	.flags		= VARIANT_MASK_EXACT,
	.mask		= chunk_mask,
	.params		= chunk_params,
	.n_params	= CHUNK_PARAMS,
	.forward	= chunk_forward,
	.flops		= chunk_flops,
	.state_bytes	= chunk_state_bytes,
	.decode_init	= chunk_decode_init,
	.decode_step	= span_decode_step,
	.decode_free	= span_decode_free,
};
