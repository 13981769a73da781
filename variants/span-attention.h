/*
 * span-attention.h - exact softmax attention under a declared mask (variant.h's
 * attn_mask_fn), with work proportional to what the mask keeps: the kernel, FLOPs,
 * and incremental decoding that every mask-exact variant (local, sink, chunk, power,
 * radial, s2attn) shares, so that each of them is its mask and its parameters.
 */
#ifndef ATTNBENCH_SPAN_ATTENTION_H
#define ATTNBENCH_SPAN_ATTENTION_H

#include "variant.h"

/*
 * out = softmax attention of every row over the keys mask gives it; a row given no key
 * outputs 0. Walks query tiles, and for each only the union of its rows' spans in key
 * tiles, with an online softmax (as flash): no score matrix beyond one tile. Returns 0
 * or -ENOMEM.
 */
int span_attention_forward(const struct attn_problem *p, attn_mask_fn mask, const float *q,
			   const float *k, const float *v, float *out);

/* Query-key pairs the mask keeps over all heads and rows of one batch entry. */
double span_attention_pairs(const struct attn_problem *p, attn_mask_fn mask);

/* 4d FLOPs per kept pair (two products), over the whole problem. */
double span_attention_flops(const struct attn_problem *p, attn_mask_fn mask);

/*
 * Incremental decoding (cs) under the mask of the capacity problem p (n = m = the most
 * positions fed): a KV cache of every position, and per step each head's row t over the
 * keys its mask gives. The state keeps a copy of p's n_params params (the variant's
 * count). state gets a struct for span_decode_step()/span_decode_free().
 */
int span_decode_init(const struct attn_problem *p, attn_mask_fn mask, int n_params,
		     void **state);
int span_decode_step(void *state, const float *q, const float *k, const float *v, float *out);
void span_decode_free(void *state);
/* A prompt's keys and values straight into the cache (decode_prefill()). */
int span_decode_prefill(void *state, const float *k, const float *v, int rows, int len);

/*
 * A mask's spans built in ascending order of their start (span_list_add()): a span that
 * touches or overlaps the last one extends it. Counts every span, writes the first max,
 * as attn_mask_fn asks. Start with { spans, max } and return count.
 */
struct span_list {
	struct key_span *spans;
	int max, count;
	long lo, hi;		/* the last span, written or not */
};

static inline void span_list_add(struct span_list *l, long lo, long hi)
{
	if (hi <= lo)
		return;
	if (l->count && lo <= l->hi) {
		if (hi > l->hi) {
			l->hi = hi;
			if (l->count <= l->max)
				l->spans[l->count - 1].hi = (int)hi;
		}
		return;
	}
	l->count++;
	l->lo = lo;
	l->hi = hi;
	if (l->count <= l->max)
		l->spans[l->count - 1] = (struct key_span){ (int)lo, (int)hi };
}

#endif
