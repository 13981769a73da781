/*
 * s2attn.c - LongLoRA's shifted sparse attention, S^2-Attn (Chen et al. 2024), with
 * SinkLoRA's global sink tokens (Zhang 2024) as an option.
 *
 * Attention inside groups of G positions; half of the heads use groups shifted by half a
 * group, so that information crosses the borders. With half = floor(G / 2):
 *   heads h < floor(H / 2):  groups [aG, (a + 1)G);
 *   heads h >= floor(H / 2) (H = 1: the only head), wrap = 0: borders at half + aG, the
 *     first group [0, half): the layout of LongLoRA's flash-attention path for Llama;
 *   the same heads, wrap = 1: LongLoRA's roll by -half (its non-flash and GPT-NeoX path):
 *     position x sits at r(x) = (x - half) mod N of the rolled sequence, grouped as
 *     [aG, (a + 1)G) there, so the last group joins the last and the first tokens.
 * One softmax per row over its group; cs also needs j <= i, which with wrap = 1 is taken
 * in rolled order (r(j) <= r(i)), as the rolled sequence is what gets the causal mask:
 * the first tokens then see the last ones. wrap = 1 is meant for ns; in cs it runs, and
 * is non-causal, so that the causality check can be seen to catch it.
 * sinks = S adds keys [0, S) to every row (cs: those <= i) and implies wrap = 0, as
 * SinkLoRA returns the shifted groups to place.
 *
 * Defaults: G = 0 means floor(N / 4), at least 1 (LongLoRA's group_size_ratio 1/4, 2048
 * for 8192; with N not a multiple the last group is short). Odd G shifts by floor(G / 2),
 * as LongLoRA's group_size // 2; G = 1 leaves nothing to shift.
 *
 * The mask is at most two spans per row, made in O(1) (s2attn_mask), and run by the span
 * kernel (span-attention.h): O(N G d). LongLoRA fine-tunes causal language models, so cs is
 * native and ns a harness extension. Incremental decoding (cs) is the span kernel's,
 * every position cached; it refuses wrap = 1 (without sinks), whose rows see later keys.
 */
#include "variant.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "common.h"
#include "span-attention.h"

enum { S2ATTN_GROUP, S2ATTN_WRAP, S2ATTN_SINKS, S2ATTN_PARAMS };

static const struct variant_param s2attn_params[] = {
	[S2ATTN_GROUP] = {
		.name		= "group",
		.def		= 0,
		.min		= 0,
		.max		= 1048576,
		.integer	= true,
		.help		= "G: group size; 0 = floor(N/4), at least 1; odd G shifts by floor(G/2)",
	},
	[S2ATTN_WRAP] = {
		.name		= "wrap",
		.def		= 0,
		.min		= 0,
		.max		= 1,
		.integer	= true,
		.help		= "1: roll shifted heads by -G/2 (last and first tokens share a group); "
				  "ns only: in cs it runs non-causal",
	},
	[S2ATTN_SINKS] = {
		.name		= "sinks",
		.def		= 0,
		.min		= 0,
		.max		= 1048576,
		.integer	= true,
		.help		= "S: first S keys seen by every row, implies wrap = 0 "
				  "(SinkLoRA; its count [unverified], 4 suggested)",
	},
};

/* What one head of a problem uses. */
struct s2attn_layout {
	long g;		/* group size */
	long half;	/* shift of the shifted heads: floor(g / 2) */
	long sinks;
	bool shifted;	/* h >= floor(H / 2) */
	bool wrap;	/* a shifted head rolled by -half */
};

static double s2attn_param(const struct attn_problem *p, int which)
{
	return p->params ? p->params[which] : s2attn_params[which].def;
}

/* Group size: the declared one, or floor(n / 4) and at least 1 for 0. */
static long s2attn_group(const struct attn_problem *p)
{
	long g = (long)s2attn_param(p, S2ATTN_GROUP);

	if (g <= 0)
		g = p->n / 4 > 1 ? p->n / 4 : 1;
	return g;
}

static struct s2attn_layout s2attn_layout(const struct attn_problem *p, int h)
{
	struct s2attn_layout l = {
		.g = s2attn_group(p),
		.sinks = (long)s2attn_param(p, S2ATTN_SINKS),
		.shifted = h >= p->heads / 2,
	};

	l.half = l.g / 2;
	l.wrap = l.shifted && s2attn_param(p, S2ATTN_WRAP) != 0 && l.sinks == 0;
	return l;
}

/* Appends keys [lo, hi) to out; starts arrive ascending, so a touching run is merged. */
static void span_add(struct key_span *out, int *count, long lo, long hi)
{
	if (hi <= lo)
		return;
	if (*count && lo <= out[*count - 1].hi) {
		if (hi > out[*count - 1].hi)
			out[*count - 1].hi = (int)hi;
		return;
	}
	out[(*count)++] = (struct key_span){ (int)lo, (int)hi };
}

/*
 * A shifted head rolled by -half: row i's group in rolled order (cs: up to r(i)), taken
 * back to positions, where it is one run or, wrapped past the end, two.
 */
static int rolled_group(const struct attn_problem *p, const struct s2attn_layout *l, int i,
			struct key_span *out)
{
	long n = p->n, shift = l->half % n, r = ((long)i - shift + n) % n;
	long lo = r / l->g * l->g, hi = lo + l->g < n ? lo + l->g : n;
	int count = 0;

	if (p->pattern == ATTN_CS)
		hi = r + 1;
	/* rolled position t holds position (t + shift) mod n */
	lo += shift;
	hi += shift;
	if (hi > n)
		span_add(out, &count, lo > n ? lo - n : 0, hi - n);
	span_add(out, &count, lo, hi < n ? hi : n);
	return count;
}

static int s2attn_mask(const struct attn_problem *p, int h, int i, struct key_span *spans,
		       int max)
{
	struct s2attn_layout l = s2attn_layout(p, h);
	long end = p->pattern == ATTN_CS ? (long)i + 1 : p->m, lo, hi;
	struct key_span out[3];
	int count = 0;

	if (l.wrap) {
		count = rolled_group(p, &l, i, out);
	} else {
		if (!l.shifted) {
			lo = (long)i / l.g * l.g;
			hi = lo + l.g;
		} else if (i < l.half) {
			lo = 0;
			hi = l.half;
		} else {
			lo = l.half + ((long)i - l.half) / l.g * l.g;
			hi = lo + l.g;
		}
		hi = hi < end ? hi : end;
		span_add(out, &count, 0, l.sinks < end ? l.sinks : end);
		span_add(out, &count, lo, hi);
	}
	for (int x = 0; x < count && x < max; x++)
		spans[x] = out[x];
	return count;
}

static int s2attn_forward(const struct attn_problem *p, const float *q, const float *k,
			  const float *v, float *out)
{
	if (!pattern_is_self(p->pattern))
		return -ENOTSUP;
	return span_attention_forward(p, s2attn_mask, q, k, v, out);
}

/* 4d flops per (query, key) pair of the rows' groups and sinks. */
static double s2attn_flops(const struct attn_problem *p)
{
	return span_attention_flops(p, s2attn_mask);
}

/* Bytes of the keys and values one row can see at most, float32: a group and the sinks. */
static double s2attn_state_bytes(const struct attn_problem *p)
{
	long keys = s2attn_group(p) + (long)s2attn_param(p, S2ATTN_SINKS);

	return kv_cache_bytes(p, keys < p->m ? keys : p->m);
}

/*
 * The span kernel's decoder under s2attn_mask; -ENOTSUP for wrap = 1 without sinks,
 * whose rows see later positions.
 */
static int s2attn_decode_init(const struct attn_problem *p, void **state)
{
	*state = NULL;
	if (s2attn_param(p, S2ATTN_WRAP) != 0 && s2attn_param(p, S2ATTN_SINKS) == 0)
		return -ENOTSUP;
	return span_decode_init(p, s2attn_mask, S2ATTN_PARAMS, state);
}

const struct variant_ops s2attn_variant = {
	.name		= "s2attn",
	.family		= "sparse",
	.summary	= "LongLoRA S2-Attn: groups of G (0 = N/4), heads >= H/2 shifted by G/2; "
			  "wrap = 1 rolls (non-causal in cs); sinks from SinkLoRA [unverified]",
	.citation	= "Chen et al. 2024, LongLoRA: Efficient Fine-tuning of Long-Context Large "
			  "Language Models, ICLR, arXiv 2309.12307; Zhang 2024, SinkLoRA, "
			  "arXiv 2406.05678",
	.patterns	= PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_CS),
	.extensions	= PATTERN_BIT(ATTN_NS),
	.flags		= VARIANT_MASK_EXACT,
	.mask		= s2attn_mask,
	.params		= s2attn_params,
	.n_params	= S2ATTN_PARAMS,
	.forward	= s2attn_forward,
	.flops		= s2attn_flops,
	.state_bytes	= s2attn_state_bytes,
	.decode_init	= s2attn_decode_init,
	.decode_step	= span_decode_step,
	.decode_free	= span_decode_free,
	.decode_prefill	= span_decode_prefill,
};
