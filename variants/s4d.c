/*
 * s4d.c - a diagonal state-space layer in place of attention, as CAB's S4D (Gu et al.
 * 2022, "On the Parameterization and Initialization of Diagonal State Space Models").
 *
 * Not attention: Q and K are never read. The input is u = V; query head h reads the V
 * of its KV head, and each of the heads * d output channels (h, c) is an independent
 * causal convolution of its input column with a kernel made of n = d_state / 2 damped
 * complex exponentials (VARIANTS.md section 28):
 *
 *	K[l] = 2 Re sum_k C_k (e^{dt A_k} - 1) / A_k * e^{l dt A_k},
 *	y[t] = sum_{s <= t} K[t - s] u[s] + D u[t],	out = GELU(y) (s4d.act = 1).
 *
 * It is computed by the equivalent recurrence x_t = e^{dt A} x_{t-1} + u_t,
 * y_t = 2 Re sum_k C'_k x_{t,k} + D u_t with C' = C (e^{dt A} - 1) / A: O(n) per channel
 * and position. The complex state and the sums are kept in double so that long sequences
 * do not drift; the output is rounded to float once. GELU is the exact erf form
 * 0.5 y (1 + erf(y / sqrt 2)). ns and cs are the same causal convolution (CAB's default
 * is not bidirectional); cross patterns are refused. CAB's learned channel-mixing output
 * layer is omitted.
 *
 * Plan, drawn per call from plan_rng_make(p->seed, stream) (random.h); a test regenerates
 * it from this description, so it is part of the interface:
 *   - stream 0 (shared by every channel): for k = 0..n-1, Re B_k then Im B_k, each
 *     N(0, 1/2) (one plan_rng_normal() times sqrt(1/2)); then B <- B / sqrt(2 sum_k
 *     |B_k / A_k|^2). A_k = -0.5 + i (d_state / pi) (d_state / (1 + 2k) - 1), no draws.
 *   - stream (h + 1) * 2^32 + c for channel c of QUERY head h (so GQA equals MHA with
 *     V repeated): for k = 0..n-1, Re z_k then Im z_k, each N(0, 1/2), C_k = z_k B_k
 *     (complex product); then one uniform U, dt = exp(ln 0.001 + U (ln 0.1 - ln 0.001));
 *     then D = plan_rng_normal().
 *
 * The forward pass runs in parallel over (batch, head, block of S4D_BLOCK channels):
 * each work item draws its channels' plan into a per-thread slot and walks the sequence
 * once, so a row of d floats is read and written in whole cache lines. Incremental
 * decoding (cs) runs the same step on a kept state of n complex numbers per channel.
 */
#include "variant.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>

#include "common.h"
#include "memory.h"
#include "random.h"

#define S4D_STATE_DEFAULT 16	/* CAB's and the paper's d_state */
#define S4D_STATE_MAX 256
#define S4D_MAX_MODES (S4D_STATE_MAX / 2)
#define S4D_ACT_DEFAULT 1

/* Channels one work item (and one step call) carries: 16 floats, one cache line. */
#define S4D_BLOCK 16

/* Below this many mode updates per decode step a parallel region costs more than it saves. */
#define S4D_DECODE_PARALLEL_MIN 32768

#define S4D_PI 3.14159265358979323846
#define S4D_SQRT_HALF 0.70710678118654752440

/* The stream of the shared B; channel streams start at 2^32 and never meet it. */
#define S4D_STREAM_SHARED 0

static const struct variant_param s4d_params[] = {
	{
		.name		= "state",
		.def		= S4D_STATE_DEFAULT,
		.min		= 2,
		.max		= S4D_STATE_MAX,
		.integer	= true,
		.help		= "d_state, even: n = d_state/2 complex modes per channel",
	},
	{
		.name		= "act",
		.def		= S4D_ACT_DEFAULT,
		.min		= 0,
		.max		= 1,
		.integer	= true,
		.help		= "1: exact (erf) GELU on the output; 0: the linear SSM output",
	},
};

static int s4d_state(const struct attn_problem *p)
{
	return p->params ? (int)p->params[0] : S4D_STATE_DEFAULT;
}

static bool s4d_act(const struct attn_problem *p)
{
	return p->params ? p->params[1] != 0 : S4D_ACT_DEFAULT;
}

static uint64_t s4d_stream(int h, int c)
{
	return ((uint64_t)(h + 1) << 32) + (uint64_t)c;
}

/*
 * The plan shared by all channels: A_k (are, aim) and the normalised B_k (bre, bim),
 * n = d_state / 2 entries each.
 */
static void s4d_modes(uint64_t seed, int d_state, double *are, double *aim, double *bre,
		      double *bim)
{
	struct plan_rng r = plan_rng_make(seed, S4D_STREAM_SHARED);
	int n = d_state / 2;
	double sum = 0, scale;

	for (int k = 0; k < n; k++) {
		are[k] = -0.5;
		aim[k] = d_state / S4D_PI * ((double)d_state / (1 + 2 * k) - 1);
		bre[k] = S4D_SQRT_HALF * plan_rng_normal(&r);
		bim[k] = S4D_SQRT_HALF * plan_rng_normal(&r);
		/* |B_k / A_k|^2 = |B_k|^2 / |A_k|^2 */
		sum += (bre[k] * bre[k] + bim[k] * bim[k]) /
		       (are[k] * are[k] + aim[k] * aim[k]);
	}
	scale = 1 / sqrt(2 * sum);
	for (int k = 0; k < n; k++) {
		bre[k] *= scale;
		bim[k] *= scale;
	}
}

/* The discretised plan of one channel, mode k at index k * stride of each array. */
struct s4d_channel {
	double *ar, *ai;	/* e^{dt A_k} */
	double *cr, *ci;	/* C'_k = C_k (e^{dt A_k} - 1) / A_k */
	double *dd;		/* D */
};

/* Draws channel c of query head h and discretises it (see the file comment). */
static void s4d_channel_plan(uint64_t seed, int h, int c, int n, const double *are,
			     const double *aim, const double *bre, const double *bim,
			     size_t stride, const struct s4d_channel *ch)
{
	struct plan_rng r = plan_rng_make(seed, s4d_stream(h, c));
	double dt;

	for (int k = 0; k < n; k++) {
		double zr = S4D_SQRT_HALF * plan_rng_normal(&r);
		double zi = S4D_SQRT_HALF * plan_rng_normal(&r);

		ch->cr[k * stride] = zr * bre[k] - zi * bim[k];
		ch->ci[k * stride] = zr * bim[k] + zi * bre[k];
	}
	dt = exp(log(0.001) + plan_rng_uniform(&r) * (log(0.1) - log(0.001)));
	*ch->dd = plan_rng_normal(&r);
	for (int k = 0; k < n; k++) {
		size_t i = k * stride;
		double mag = exp(dt * are[k]), abs2 = are[k] * are[k] + aim[k] * aim[k];
		double er = mag * cos(dt * aim[k]), ei = mag * sin(dt * aim[k]);
		/* w = (e^{dt A} - 1) / A = (e^{dt A} - 1) conj(A) / |A|^2 */
		double wr = ((er - 1) * are[k] + ei * aim[k]) / abs2;
		double wi = (ei * are[k] - (er - 1) * aim[k]) / abs2;
		double cr = ch->cr[i], ci = ch->ci[i];

		ch->ar[i] = er;
		ch->ai[i] = ei;
		ch->cr[i] = cr * wr - ci * wi;
		ch->ci[i] = cr * wi + ci * wr;
	}
}

static double s4d_gelu(double y)
{
	return 0.5 * y * (1 + erf(y * S4D_SQRT_HALF));
}

/*
 * One position of `count` <= S4D_BLOCK consecutive channels: mode k of channel j at
 * k * stride + j in the plan and state arrays, input u[j], output out[j]. The forward
 * pass and the decoder both run this, so a decode step is the forward row.
 */
static void s4d_step(int n, int count, size_t stride, const struct s4d_channel *ch,
		     double *restrict xr, double *restrict xi, const float *u, float *out,
		     bool act)
{
	const double *restrict ar = ch->ar, *restrict ai = ch->ai;
	const double *restrict cr = ch->cr, *restrict ci = ch->ci;
	double y[S4D_BLOCK], in[S4D_BLOCK];

	for (int j = 0; j < count; j++) {
		in[j] = u[j];
		y[j] = 0;
	}
	for (int k = 0; k < n; k++) {
		size_t o = k * stride;

		for (int j = 0; j < count; j++) {
			double re = ar[o + j] * xr[o + j] - ai[o + j] * xi[o + j] + in[j];
			double im = ar[o + j] * xi[o + j] + ai[o + j] * xr[o + j];

			xr[o + j] = re;
			xi[o + j] = im;
			y[j] += cr[o + j] * re - ci[o + j] * im;
		}
	}
	for (int j = 0; j < count; j++) {
		double v = 2 * y[j] + ch->dd[j] * in[j];

		out[j] = (float)(act ? s4d_gelu(v) : v);
	}
}

/* -ENOTSUP for cross patterns, -EINVAL for an odd d_state (n = d_state / 2 modes). */
static int s4d_supports(const struct attn_problem *p)
{
	if (!pattern_is_self(p->pattern))
		return -ENOTSUP;
	if (s4d_state(p) % 2 || s4d_state(p) < 2 || s4d_state(p) > S4D_STATE_MAX)
		return -EINVAL;
	return 0;
}

/* Doubles of one thread's slot: plan and state of S4D_BLOCK channels. */
static size_t s4d_slot(int n)
{
	return (size_t)6 * n * S4D_BLOCK + S4D_BLOCK;
}

static int s4d_forward(const struct attn_problem *p, const float *q, const float *k,
		       const float *v, float *out)
{
	double are[S4D_MAX_MODES], aim[S4D_MAX_MODES], bre[S4D_MAX_MODES], bim[S4D_MAX_MODES];
	int d_state = s4d_state(p), n = d_state / 2, d = p->d, ret;
	int blocks = (d + S4D_BLOCK - 1) / S4D_BLOCK;
	long items = (long)p->batch * p->heads * blocks;
	bool act = s4d_act(p);
	size_t slot = s4d_slot(n);
	double *scratch;

	(void)q;
	(void)k;
	ret = s4d_supports(p);
	if (ret)
		return ret;
	scratch = attn_alloc((size_t)max_threads() * slot * sizeof(double));
	if (!scratch)
		return -ENOMEM;
	s4d_modes(p->seed, d_state, are, aim, bre, bim);

	#pragma omp parallel for schedule(dynamic)
	for (long it = 0; it < items; it++) {
		int blk = (int)(it % blocks), h = (int)(it / blocks % p->heads);
		int b = (int)(it / blocks / p->heads);
		int c0 = blk * S4D_BLOCK, count = d - c0 < S4D_BLOCK ? d - c0 : S4D_BLOCK;
		size_t plane = (size_t)n * S4D_BLOCK;
		double *base = scratch + (size_t)thread_id() * slot;
		struct s4d_channel ch = {
			.ar = base, .ai = base + plane, .cr = base + 2 * plane,
			.ci = base + 3 * plane, .dd = base + 6 * plane,
		};
		double *xr = base + 4 * plane, *xi = base + 5 * plane;
		const float *u = v + problem_kv_offset(p, b, h) + c0;
		float *o = out + problem_q_offset(p, b, h) + c0;

		for (int j = 0; j < count; j++) {
			struct s4d_channel cj = {
				.ar = ch.ar + j, .ai = ch.ai + j, .cr = ch.cr + j,
				.ci = ch.ci + j, .dd = ch.dd + j,
			};

			s4d_channel_plan(p->seed, h, c0 + j, n, are, aim, bre, bim, S4D_BLOCK,
					 &cj);
		}
		for (size_t i = 0; i < plane; i++)
			xr[i] = xi[i] = 0;
		for (int t = 0; t < p->n; t++)
			s4d_step(n, count, S4D_BLOCK, &ch, xr, xi, u + (size_t)t * d,
				 o + (size_t)t * d, act);
	}
	attn_free(scratch);
	return 0;
}

/*
 * Per channel and position, 11 flops per mode (the complex x update 7, the output
 * term 4) and 3 for 2y + Du; the GELU and the plan are not counted.
 */
static double s4d_flops(const struct attn_problem *p)
{
	double n = s4d_state(p) / 2;

	return (double)p->batch * p->heads * p->d * p->n * (11 * n + 3);
}

/*
 * The recurrent state: n = d_state / 2 complex modes for each of the batch * heads * d
 * channels (query heads: each has its own dt and C), kept in double (16 bytes a mode),
 * whatever the length. The plan (A, B, C', dt, D) is a parameter, not state.
 */
static double s4d_state_bytes(const struct attn_problem *p)
{
	return (double)p->batch * p->heads * p->d * (s4d_state(p) / 2) * 2 * sizeof(double);
}

/* Incremental decoding: the plan of every (head, channel) and the state of every channel. */
struct s4d_decode {
	struct attn_problem p;	/* n = m = capacity in positions */
	double params[2];	/* p.params points here */
	int modes;		/* n = d_state / 2 */
	bool act;
	int len;		/* positions fed so far */
	/*
	 * Per head h: [ar, ai, cr, ci][mode][d] at plan + 4 h modes d, and D[d] at
	 * plan + 4 heads modes d + h d.
	 */
	double *plan;
	double *x;		/* per (batch, head) slice: [re, im][mode][d] */
};

static void s4d_decode_free(void *state)
{
	struct s4d_decode *st = state;

	if (!st)
		return;
	attn_free(st->plan);
	attn_free(st->x);
	attn_free(st);
}

/* The plan of channels c0.. of head h inside the decoder's layout. */
static struct s4d_channel s4d_decode_channel(const struct s4d_decode *st, int h, int c0)
{
	size_t plane = (size_t)st->modes * st->p.d;
	double *base = st->plan + 4 * plane * h + c0;
	struct s4d_channel ch = {
		.ar = base, .ai = base + plane, .cr = base + 2 * plane, .ci = base + 3 * plane,
		.dd = st->plan + 4 * plane * st->p.heads + (size_t)h * st->p.d + c0,
	};

	return ch;
}

static int s4d_decode_init(const struct attn_problem *p, void **state)
{
	double are[S4D_MAX_MODES], aim[S4D_MAX_MODES], bre[S4D_MAX_MODES], bim[S4D_MAX_MODES];
	struct s4d_decode *st;
	size_t plane;
	int ret;

	*state = NULL;
	ret = decode_check_problem(p);
	if (ret)
		return ret;
	ret = s4d_supports(p);
	if (ret)
		return ret;
	st = attn_calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->p = decode_problem(p);
	st->params[0] = s4d_state(p);
	st->params[1] = s4d_act(p);
	st->p.params = st->params;
	st->modes = s4d_state(p) / 2;
	st->act = s4d_act(p);
	plane = (size_t)st->modes * p->d;
	st->plan = attn_alloc((4 * plane + p->d) * p->heads * sizeof(double));
	st->x = attn_calloc(2 * plane * p->batch * p->heads, sizeof(double));
	if (!st->plan || !st->x) {
		s4d_decode_free(st);
		return -ENOMEM;
	}
	s4d_modes(p->seed, s4d_state(p), are, aim, bre, bim);
	for (int h = 0; h < p->heads; h++)
		for (int c = 0; c < p->d; c++) {
			struct s4d_channel ch = s4d_decode_channel(st, h, c);

			s4d_channel_plan(p->seed, h, c, st->modes, are, aim, bre, bim, p->d,
					 &ch);
		}
	*state = st;
	return 0;
}

static int s4d_decode_step(void *state, const float *q, const float *k, const float *v,
			   float *out)
{
	struct s4d_decode *st = state;
	const struct attn_problem *p = &st->p;
	int d = p->d, blocks = (d + S4D_BLOCK - 1) / S4D_BLOCK;
	long items = (long)p->batch * p->heads * blocks;
	size_t plane = (size_t)st->modes * d;

	(void)q;
	(void)k;
	if (st->len >= p->m)
		return -ENOSPC;
	st->len++;

	#pragma omp parallel for schedule(static) \
		if ((double)p->batch * p->heads * plane >= S4D_DECODE_PARALLEL_MIN)
	for (long it = 0; it < items; it++) {
		int blk = (int)(it % blocks), slice = (int)(it / blocks);
		int b = slice / p->heads, h = slice % p->heads;
		int kvh = h / (p->heads / p->kv_heads);
		int c0 = blk * S4D_BLOCK, count = d - c0 < S4D_BLOCK ? d - c0 : S4D_BLOCK;
		struct s4d_channel ch = s4d_decode_channel(st, h, c0);
		double *xr = st->x + 2 * plane * slice + c0;

		s4d_step(st->modes, count, d, &ch, xr, xr + plane,
			 v + ((size_t)b * p->kv_heads + kvh) * d + c0,
			 out + (size_t)slice * d + c0, st->act);
	}
	return 0;
}

const struct variant_ops s4d_variant = {
	.name		= "s4d",
	.family		= "ssm",
	.summary	= "diagonal state-space layer on V (ignores Q, K): causal conv per channel",
	.citation	= "Gu et al. 2022, On the Parameterization and Initialization of "
			  "Diagonal State Space Models, NeurIPS (arXiv 2206.11893); CAB S4D",
	.patterns	= PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_CS),
	.extensions	= 0,
	.flags		= 0,
	.params		= s4d_params,
	.n_params	= 2,
	.supports	= s4d_supports,
	.forward	= s4d_forward,
	.flops		= s4d_flops,
	.state_bytes	= s4d_state_bytes,
	.decode_init	= s4d_decode_init,
	.decode_step	= s4d_decode_step,
	.decode_free	= s4d_decode_free,
};
