/*
 * radial.c - Radial Attention's "energy decay" mask (Li et al. 2025, VARIANTS.md section
 * 10), in the catalogue's 1-D adaptation [harness]: a frame is a chunk of F consecutive
 * positions, the spatial offset the position inside it.
 *
 * f(x) = floor(x / F), r(x) = x mod F, t = |f(i) - f(j)|, P = 2^bitlen(F), g = bitlen(t),
 * omega = P / 2^g. Row i sees key j iff f(j) = 0 (the sink frame); or t <= 1 (whole
 * frames); or, if omega >= tau, |r(i) - r(j)| <= omega; or, if omega < tau,
 * t mod floor(tau / omega) = 0 and |r(i) - r(j)| <= tau. cs [harness] adds j <= i.
 * With a decay factor df != 1 the rule is the reference's: f(j) = 0, or
 * [(t <= 1 or |r(i) - r(j)| <= max(df omega, tau)) and (omega >= tau or
 * t mod floor(tau / omega) = 0)]. At df = 1 the two agree except for t = 1 when tau
 * exceeds P / 2, where the first (the catalogue's Op) is followed.
 *
 * A key frame gives row i one band (or the whole frame, or nothing), so the mask is at
 * most one span per frame, found in closed form (radial_mask): O(N / F) spans per row and
 * O(F log(N / F)) keys. The forward pass, its FLOPs and decoding are the span kernel's
 * (span-attention.h) under that mask. The reference's 128 x 128 block coarsening is not
 * implemented: radial.blockify accepts only 0, the token mask.
 */
#include "variant.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>

#include "common.h"
#include "span-attention.h"

enum { RADIAL_FRAME, RADIAL_TAU, RADIAL_BLOCKIFY, RADIAL_DECAY, RADIAL_N_PARAMS };

#define RADIAL_MAX 1073741824	/* 2^30: frames and tau stay within int, P within 2^31 */

static const struct variant_param radial_params[] = {
	[RADIAL_FRAME] = {
		.name		= "frame",
		.def		= 0,
		.min		= 0,
		.max		= RADIAL_MAX,
		.integer	= true,
		.help		= "F: positions per frame; 0 = 2^ceil(log2 sqrt(N)) [harness]",
	},
	[RADIAL_TAU] = {
		.name		= "tau",
		.def		= 0,
		.min		= 0,
		.max		= RADIAL_MAX,
		.integer	= true,
		.help		= "tau: narrowest band, subsampling below it; 0 = max(1, floor(F/32)) "
				  "[harness]",
	},
	[RADIAL_BLOCKIFY] = {
		.name		= "blockify",
		.def		= 0,
		.min		= 0,
		.max		= 0,
		.integer	= true,
		.help		= "reference's 128x128 block coarsening: not implemented, only 0 "
				  "(token mask)",
	},
	[RADIAL_DECAY] = {
		.name		= "decay",
		.def		= 1,
		.min		= 0,
		.max		= 1,
		.integer	= false,
		.help		= "df: band max(df omega, tau) (reference rule when != 1); 1 as the "
				  "model wrappers [name: harness]",
	},
};

/* The settings of a problem, defaults resolved. */
struct radial_setting {
	long frame, tau;
	double df;
	int64_t period;		/* P = 2^bitlen(F) */
};

static int bitlen(int64_t x)
{
	int bits = 0;

	for (; x > 0; x >>= 1)
		bits++;
	return bits;
}

static struct radial_setting radial_resolve(const struct attn_problem *p)
{
	struct radial_setting s = { 0, 0, 1, 0 };

	if (p->params) {
		s.frame = (long)p->params[RADIAL_FRAME];
		s.tau = (long)p->params[RADIAL_TAU];
		s.df = p->params[RADIAL_DECAY];
	}
	if (!s.frame)	/* the smallest power of two at least sqrt(N) */
		for (s.frame = 1; s.frame * s.frame < p->n; s.frame *= 2)
			;
	if (!s.tau)
		s.tau = s.frame / 32 > 1 ? s.frame / 32 : 1;
	s.period = (int64_t)1 << bitlen(s.frame);
	return s;
}

#define RADIAL_HIDDEN (-1)	/* a reach: nothing of the frame */
#define RADIAL_WHOLE (-2)	/* a reach: the whole frame */

/*
 * How far from the query's offset row i sees into a key frame at frame distance t >= 0
 * that is not the sink: a half width w >= 0 (|r(i) - r(j)| <= w), RADIAL_WHOLE or
 * RADIAL_HIDDEN. omega >= tau iff P >= tau 2^g, and floor(tau / omega) =
 * floor(tau 2^g / P), so everything stays in integers but df omega.
 */
static long radial_reach(const struct radial_setting *s, long t)
{
	int64_t scaled = (int64_t)s->tau << bitlen(t);	/* tau 2^g */
	bool wide = s->period >= scaled;
	bool kept = wide || t % (scaled / s->period) == 0;

	if (s->df == 1) {
		if (t <= 1)
			return RADIAL_WHOLE;
		if (!kept)
			return RADIAL_HIDDEN;
		return wide ? (long)(s->period >> bitlen(t)) : s->tau;
	}
	if (!kept)
		return RADIAL_HIDDEN;
	if (t <= 1)
		return RADIAL_WHOLE;
	/* |r(i) - r(j)| <= max(df omega, tau) for whole numbers; tau is whole */
	{
		long band = (long)floor(s->df * ldexp((double)s->period, -bitlen(t)));

		return band > s->tau ? band : s->tau;
	}
}

/*
 * Row i's spans: per key frame c (all of them in ns, c <= f(i) in cs) the whole frame,
 * one band around r(i), or nothing; frames past the sequence and, in cs, keys past i cut.
 */
static int radial_mask(const struct attn_problem *p, int h, int i, struct key_span *spans,
		       int max)
{
	struct radial_setting s = radial_resolve(p);
	struct span_list l = { .spans = spans, .max = spans ? max : 0 };
	bool cs = p->pattern == ATTN_CS;
	long fi = i / s.frame, ri = i % s.frame, limit = cs ? (long)i + 1 : p->m;
	long last = cs ? fi : (p->m - 1) / s.frame;

	(void)h;
	for (long c = 0; c <= last; c++) {
		long lo = c * s.frame, hi = lo + s.frame < limit ? lo + s.frame : limit;
		long w = c ? radial_reach(&s, c > fi ? c - fi : fi - c) : RADIAL_WHOLE;

		if (w == RADIAL_WHOLE)
			span_list_add(&l, lo, hi);
		else if (w != RADIAL_HIDDEN)
			span_list_add(&l, ri - w > 0 ? lo + ri - w : lo,
				      lo + ri + w + 1 < hi ? lo + ri + w + 1 : hi);
	}
	return l.count;
}

static int radial_forward(const struct attn_problem *p, const float *q, const float *k,
			  const float *v, float *out)
{
	if (!pattern_is_self(p->pattern))
		return -ENOTSUP;
	return span_attention_forward(p, radial_mask, q, k, v, out);
}

/* 4d FLOPs per kept (query, key) pair. */
static double radial_flops(const struct attn_problem *p)
{
	return span_attention_flops(p, radial_mask);
}

/* Keys of a key frame of `len` positions at distance t a row can see at most. */
static long frame_keys(const struct radial_setting *s, long t, long len)
{
	long w = radial_reach(s, t);

	if (w == RADIAL_WHOLE)
		return len;
	if (w == RADIAL_HIDDEN)
		return 0;
	return 2 * w + 1 < len ? 2 * w + 1 : len;
}

/*
 * Bytes of the keys and values one row can see at most, by frames: the largest over query
 * frames of the sum of what each key frame can show (the whole frame, or a band of 2w + 1
 * keys cut to the frame; in cs all of the own frame), so an upper bound, reached in ns when
 * every band fits around one offset (2w + 1 <= F, N a multiple of F). The sums over the
 * frames before and after the query's frame are carried from one query frame to the next:
 * O(N / F).
 */
static double radial_state_bytes(const struct attn_problem *p)
{
	struct radial_setting s = radial_resolve(p);
	long frames = (p->n + s.frame - 1) / s.frame, tail = p->n - (frames - 1) * s.frame;
	bool cs = p->pattern == ATTN_CS;
	double before = 0, after = 0, most = 0;	/* full frames at distances 1..fi-1, 1..T */

	for (long t = 1; t < frames; t++)
		after += frame_keys(&s, t, s.frame);
	for (long fi = 0; fi < frames; fi++) {
		long own = fi == frames - 1 ? tail : s.frame, t_last = frames - 1 - fi;
		/* the own frame, frames fi-1..1 and the sink before it */
		double keys = own + before + (fi >= 1 ? s.frame : 0);

		/* frames after it (ns), the last one cut to the sequence */
		if (!cs && t_last >= 1)
			keys += after - frame_keys(&s, t_last, s.frame) +
				frame_keys(&s, t_last, tail);
		most = keys > most ? keys : most;
		if (fi >= 1)
			before += frame_keys(&s, fi, s.frame);
		if (t_last >= 1)
			after -= frame_keys(&s, t_last, s.frame);
	}
	return kv_cache_bytes(p, (long)most);
}

static int radial_decode_init(const struct attn_problem *p, void **state)
{
	return span_decode_init(p, radial_mask, RADIAL_N_PARAMS, state);
}

const struct variant_ops radial_variant = {
	.name		= "radial",
	.family		= "sparse",
	.summary	= "Radial energy-decay mask, 1-D frames of F [harness]: sink frame, "
			  "near frames whole, bands halving as distance doubles",
	.citation	= "Li et al. 2025, Radial Attention: O(n log n) Sparse Attention with "
			  "Energy Decay for Long Video Generation, NeurIPS (arXiv 2506.19852)",
	.patterns	= PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_CS),
	.extensions	= PATTERN_BIT(ATTN_CS),
	.flags		= VARIANT_MASK_EXACT,
	.mask		= radial_mask,
	.params		= radial_params,
	.n_params	= RADIAL_N_PARAMS,
	.forward	= radial_forward,
	.flops		= radial_flops,
	.state_bytes	= radial_state_bytes,
	.decode_init	= radial_decode_init,
	.decode_step	= span_decode_step,
	.decode_free	= span_decode_free,
	.decode_prefill	= span_decode_prefill,
};
