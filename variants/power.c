/*
 * power.c - PowerAttention's static block mask (Chen et al. 2025, VARIANTS.md section 9).
 *
 * Positions fall into blocks of b, beta(x) = floor(x / b), and Delta = beta(i) - beta(j)
 * is the block distance of query i to key j. cs (the paper's Algorithm 1): row i sees
 * key j <= i iff Delta < W_b (a local band of blocks), or Delta is a power of two
 * ((Delta & (Delta - 1)) == 0, which Delta = 0 passes), or j < b (one sink block).
 * ns [harness]: the same with |Delta| in both tests and no causal term; the sink is key
 * block 0. A query block thus sees O(W_b + log2(N / b)) key blocks.
 *
 * The mask is declared once (power_mask): per row, the visible blocks in closed form,
 * ascending, adjacent ones merged into one span. The forward pass, its FLOPs and
 * decoding are the span kernel's (span-attention.h) under that mask.
 */
#include "variant.h"

#include <errno.h>

#include "common.h"
#include "span-attention.h"

#define POWER_BLOCK_DEFAULT 64	/* [harness] b; the paper's 256 is [unverified] */
#define POWER_LOCAL_DEFAULT 5	/* W_b, the paper's [unverified] local band in blocks */

enum { POWER_BLOCK, POWER_LOCAL, POWER_N_PARAMS };

static const struct variant_param power_params[] = {
	[POWER_BLOCK] = {
		.name		= "block",
		.def		= POWER_BLOCK_DEFAULT,
		.min		= 1,
		.max		= 1048576,
		.integer	= true,
		.help		= "b: positions per block [harness: 64; the paper's 256 is "
				  "unverified]",
	},
	[POWER_LOCAL] = {
		.name		= "local",
		.def		= POWER_LOCAL_DEFAULT,
		.min		= 0,
		.max		= 1048576,
		.integer	= true,
		.help		= "W_b: block distances < W_b are all seen (own block always) "
				  "[unverified: paper's 5]",
	},
};

static long power_param(const struct attn_problem *p, int which)
{
	if (p->params)
		return (long)p->params[which];
	return which == POWER_BLOCK ? POWER_BLOCK_DEFAULT : POWER_LOCAL_DEFAULT;
}

/* Key block c, up to `limit` (the causal limit i + 1 in cs, m in ns). */
static void add_block(struct span_list *l, long b, long c, long limit)
{
	long hi = (c + 1) * b;

	span_list_add(l, c * b, hi < limit ? hi : limit);
}

/*
 * Row i's blocks in ascending order: the sink block 0; blocks beta(i) - 2^k for
 * 2^k >= L = max(W_b, 1) (largest k first); the local band of blocks at distance < L
 * (the own block included: Delta = 0 passes the bit test even when W_b = 0); in ns
 * then blocks beta(i) + 2^k for 2^k >= L (smallest k first). Blocks past the sequence
 * and, in cs, keys past i are cut.
 */
static int power_mask(const struct attn_problem *p, int h, int i, struct key_span *spans,
		      int max)
{
	long b = power_param(p, POWER_BLOCK), w = power_param(p, POWER_LOCAL);
	long L = w > 1 ? w : 1, row = i / b, blocks = (p->m + b - 1) / b;
	bool cs = p->pattern == ATTN_CS;
	long limit = cs ? (long)i + 1 : p->m, last = cs ? row : blocks - 1;
	struct span_list l = { .spans = spans, .max = spans ? max : 0 };
	long delta = 1;

	(void)h;
	add_block(&l, b, 0, limit);
	while (delta * 2 <= row)
		delta *= 2;
	for (; delta >= L && delta <= row; delta /= 2)
		add_block(&l, b, row - delta, limit);
	for (long c = row - L + 1 > 0 ? row - L + 1 : 0; c <= row + L - 1 && c <= last; c++)
		add_block(&l, b, c, limit);
	if (!cs) {
		delta = 1;
		while (delta < L)
			delta *= 2;
		for (; row + delta <= last; delta *= 2)
			add_block(&l, b, row + delta, limit);
	}
	return l.count;
}

static int power_forward(const struct attn_problem *p, const float *q, const float *k,
			 const float *v, float *out)
{
	if (!pattern_is_self(p->pattern))
		return -ENOTSUP;
	return span_attention_forward(p, power_mask, q, k, v, out);
}

/* 4d FLOPs per kept (query, key) pair. */
static double power_flops(const struct attn_problem *p)
{
	return span_attention_flops(p, power_mask);
}

/* Keys row i sees: the lengths of its spans. */
static long power_row_keys(const struct attn_problem *p, int i)
{
	struct key_span spans[256];
	int count = power_mask(p, 0, i, spans, 256);
	long keys = 0;

	/* at most 3 + 2 log2(blocks) < 256 spans for any int length */
	for (int x = 0; x < count && x < 256; x++)
		keys += spans[x].hi - spans[x].lo;
	return keys;
}

/*
 * Bytes of the keys and values one row can see at most. All rows of a block see the same
 * blocks (ns) or the same blocks up to themselves (cs), so the most is seen by the last
 * row of some block: one mask call per block, O((N / b) log(N / b)).
 */
static double power_state_bytes(const struct attn_problem *p)
{
	long b = power_param(p, POWER_BLOCK), most = 0;

	for (long end = b; end - b < p->n; end += b) {
		long keys = power_row_keys(p, (int)(end < p->n ? end - 1 : p->n - 1));

		most = keys > most ? keys : most;
	}
	return kv_cache_bytes(p, most);
}

static int power_decode_init(const struct attn_problem *p, void **state)
{
	return span_decode_init(p, power_mask, POWER_N_PARAMS, state);
}

const struct variant_ops power_variant = {
	.name		= "power",
	.family		= "sparse",
	.summary	= "PowerAttention block mask: sink block, W_b local blocks, blocks at "
			  "power-of-two distance (ns: |distance| [harness])",
	.citation	= "Chen et al. 2025, PowerAttention: Exponentially Scaling of "
			  "Receptive Fields for Effective Sparse Attention, arXiv 2503.03588",
	.patterns	= PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_CS),
	.extensions	= PATTERN_BIT(ATTN_NS),
	.flags		= VARIANT_MASK_EXACT,
	.mask		= power_mask,
	.params		= power_params,
	.n_params	= POWER_N_PARAMS,
	.forward	= power_forward,
	.flops		= power_flops,
	.state_bytes	= power_state_bytes,
	.decode_init	= power_decode_init,
	.decode_step	= span_decode_step,
	.decode_free	= span_decode_free,
	.decode_prefill	= span_decode_prefill,
};
