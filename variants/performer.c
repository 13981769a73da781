/*
 * performer.c - FAVOR+ positive orthogonal random features (Choromanski et al. 2021,
 * "Rethinking Attention with Performers"), as CAB's Performer evaluates it.
 *
 * Plan, per QUERY head h, from plan_rng_make(seed, 1000 h) (CAB offsets heads by 1000):
 * W (m x d) is drawn by favor_draw() (feature-attention.c), block by block. Each block
 * draws a fresh d x d standard Gaussian G, filled column by column (draw j d + i is
 * G[i][j]); its QR with R's diagonal positive (modified Gram-Schmidt in double) gives U,
 * and the block's rows are the rows of Uᵀ (the columns of U) in order, the last block
 * keeping only the rows still needed. Then, for r = 0..m-1 in order, d more draws make
 * a vector whose norm scales row r. Taking R's diagonal positive makes U unique, so any
 * QR with that sign convention regenerates the same W (numpy's Householder QR differs
 * only by column signs: same distribution).
 *
 * Features, with x' = d^(-1/4) x, p_r(x) = w_r·x', h(x) = |x|²/(2√d):
 *   φ(q)_r = m^(-1/2) (exp(p_r(q) - h(q) - max_r' p_r'(q)) + eps)
 *   φ(k)_r = m^(-1/2) (exp(p_r(k) - h(k) - M) + eps)
 * with M the one max of p over all keys and features of the slice (ns, nc, cc; a
 * pre-pass over the keys) and M = 0 in cs, where a global max would let later keys move
 * earlier rows through eps and the clamp. o_i = φ(q_i)ᵀS / max(φ(q_i)·z, clamp) with the
 * chunked kernel of feature-attention.h. clamp = 0 means no clamp: the floor is then
 * FLT_MIN, which only turns a 0/0 (every feature underflowed) into 0 and leaves every
 * normal (non-subnormal) denominator alone.
 *
 * cc is the non-causal form (all keys visible; each query row only reads itself).
 * performer.cab_causal = 1 reproduces CAB on cs, which runs the non-causal path with the
 * global key max: every row then sees every key, so it leaks the future on purpose (the
 * causality check is expected to fail it) and cannot be decoded.
 *
 * In cs the key features are exp(p - h) unshifted. p_r(k) - h(k) <= |w_r|²/2, reached
 * only by a key parallel to w_r; with |w_r|² ~ chi²_d that stays far inside float range
 * for d <= 64, and only adversarial keys near w_r can overflow it for d >= 128.
 *
 * Decoding (cs) keeps S and z per query head (W is per query head, so key features are
 * too) and adds one position at a time with the kernel's feature_state_add().
 */
#include "variant.h"

#include <cblas.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "feature-attention.h"
#include "memory.h"
#include "threads.h"

#define PERFORMER_FEATURES_DEFAULT 16	/* CAB approx_attn_dim */
#define PERFORMER_EPS_DEFAULT 1e-4	/* CAB/google kernel_epsilon */
#define PERFORMER_CLAMP_DEFAULT 0.1	/* CAB's denominator clamp */

/*
 * Below this many multiply-adds (plan: heads x m d², its Gram-Schmidt; forward:
 * slices x (n + M) m d) a parallel region costs more than it saves.
 */
#define PERFORMER_PARALLEL_MIN 32768

enum performer_param_index {
	PERFORMER_FEATURES,
	PERFORMER_EPS,
	PERFORMER_CLAMP,
	PERFORMER_CAB_CAUSAL,
	PERFORMER_N_PARAMS,
};

static const struct variant_param performer_params[] = {
	[PERFORMER_FEATURES] = {
		.name		= "features",
		.def		= PERFORMER_FEATURES_DEFAULT,
		.min		= 1,
		.max		= 8192,
		.integer	= true,
		.help		= "m: random features per query head",
	},
	[PERFORMER_EPS] = {
		.name		= "eps",
		.def		= PERFORMER_EPS_DEFAULT,
		.min		= 0,
		.max		= 1,
		.help		= "added to every exp feature before the m^-1/2 (0: unbiased)",
	},
	[PERFORMER_CLAMP] = {
		.name		= "clamp",
		.def		= PERFORMER_CLAMP_DEFAULT,
		.min		= 0,
		.max		= 10,
		.help		= "denominator floor (0: none, only a 0/0 guard)",
	},
	[PERFORMER_CAB_CAUSAL] = {
		.name		= "cab_causal",
		.def		= 0,
		.min		= 0,
		.max		= 1,
		.integer	= true,
		.help		= "1: cs as CAB, non-causal with the global key max (leaks)",
	},
};

struct performer_config {
	int f;			/* m, features */
	float eps, floor;	/* eps; the denominator floor (clamp, or FLT_MIN for none) */
	bool cab_causal;
};

static void performer_config(const struct attn_problem *p, struct performer_config *c)
{
	double values[PERFORMER_N_PARAMS];

	for (int i = 0; i < PERFORMER_N_PARAMS; i++)
		values[i] = p->params ? p->params[i] : performer_params[i].def;
	c->f = (int)values[PERFORMER_FEATURES];
	c->eps = (float)values[PERFORMER_EPS];
	c->floor = values[PERFORMER_CLAMP] > 0 ? (float)values[PERFORMER_CLAMP] : FLT_MIN;
	c->cab_causal = values[PERFORMER_CAB_CAUSAL] != 0;
}

/* What the feature callbacks of one slice read (feature_map.ctx). */
struct performer_map {
	const float *w;		/* f x d, row r = d^(-1/4) w_r, so x W'ᵀ gives p(x) */
	float ratio;		/* m^(-1/2) */
	float eps;
	float half_inv_sqrt_d;	/* 1/(2√d): h(x) = |x|² / (2√d) */
	float key_shift;	/* M: max of p over the slice's keys, or 0 in cs */
};

/* proj (rows x f) = p(x) for `rows` rows of x. */
static void project(const float *w, const float *x, int d, int f, int rows, float *proj)
{
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, f, d, 1.0f, x, d, w, d,
		    0.0f, proj, f);
}

/* p -> m^(-1/2) (exp(p - shift - h) + eps) along one row of f features, in place. */
static void finish_row(const struct performer_map *pm, float *phi, int f, float shift,
		       float h)
{
	for (int r = 0; r < f; r++)
		phi[r] = pm->ratio * (expf(phi[r] - shift - h) + pm->eps);
}

static void performer_query(const struct feature_map *fm, const float *x, int d, int first,
			    int rows, float *phi)
{
	const struct performer_map *pm = fm->ctx;
	int f = fm->features;

	(void)first;
	project(pm->w, x, d, f, rows, phi);
	for (int i = 0; i < rows; i++) {
		const float *xi = x + (size_t)i * d;
		float *row = phi + (size_t)i * f, max = row[0];

		for (int r = 1; r < f; r++)
			max = fmaxf(max, row[r]);
		finish_row(pm, row, f, max, dot(xi, xi, d) * pm->half_inv_sqrt_d);
	}
}

static void performer_key(const struct feature_map *fm, const float *x, int d, int first,
			  int rows, float *phi)
{
	const struct performer_map *pm = fm->ctx;
	int f = fm->features;

	(void)first;
	project(pm->w, x, d, f, rows, phi);
	for (int i = 0; i < rows; i++) {
		const float *xi = x + (size_t)i * d;

		finish_row(pm, phi + (size_t)i * f, f, pm->key_shift,
			   dot(xi, xi, d) * pm->half_inv_sqrt_d);
	}
}

static void performer_map_init(struct feature_map *fm, struct performer_map *pm,
			       const struct performer_config *c, const float *w, int d)
{
	pm->w = w;
	pm->ratio = (float)(1 / sqrt((double)c->f));
	pm->eps = c->eps;
	pm->half_inv_sqrt_d = (float)(0.5 / sqrt((double)d));
	pm->key_shift = 0;
	fm->features = c->f;
	fm->add = 0;
	fm->floor = c->floor;
	fm->ctx = pm;
	fm->query = performer_query;
	fm->key = performer_key;
}

/*
 * W of every query head into w (heads x f x d), in parallel over heads. Returns 0 or
 * -ENOMEM.
 */
static int performer_plan(const struct attn_problem *p, int f, float *w)
{
	int threads = max_threads(), d = p->d;
	double *g = attn_alloc((size_t)threads * d * d * sizeof(double));

	if (!g)
		return -ENOMEM;
	#pragma omp parallel for schedule(static) \
		if ((double)p->heads * f * d * d >= PERFORMER_PARALLEL_MIN)
	for (int h = 0; h < p->heads; h++)
		favor_draw(p->seed, 1000ull * (uint64_t)h, f, d, pow((double)d, -0.25),
			   g + (size_t)thread_id() * d * d, w + (size_t)h * f * d);
	attn_free(g);
	return 0;
}

/* max of p over all keys and features of a slice, by chunks of proj (FEATURE_CHUNK x f). */
static float key_max(const float *w, const float *k, int m, int d, int f, float *proj)
{
	float max = -INFINITY;

	for (int r0 = 0; r0 < m; r0 += FEATURE_CHUNK) {
		int rows = m - r0 < FEATURE_CHUNK ? m - r0 : FEATURE_CHUNK;

		project(w, k + (size_t)r0 * d, d, f, rows, proj);
		for (size_t x = 0; x < (size_t)rows * f; x++)
			max = fmaxf(max, proj[x]);
	}
	return max;
}

static int performer_forward(const struct attn_problem *p, const float *q, const float *k,
			     const float *v, float *out)
{
	struct performer_config c;
	size_t scratch_floats, state_floats, per_thread;
	int slices = p->batch * p->heads, threads = max_threads(), d = p->d, saved;
	struct feature_map probe;
	struct performer_map probe_map;
	bool causal;
	float *w, *ws;
	int ret;

	performer_config(p, &c);
	causal = p->pattern == ATTN_CS && !c.cab_causal;
	performer_map_init(&probe, &probe_map, &c, NULL, d);
	scratch_floats = feature_scratch_floats(&probe, d);
	state_floats = feature_state_floats(&probe, d);
	/* kernel scratch, one state, one chunk of key projections for the max */
	per_thread = scratch_floats + state_floats + (size_t)FEATURE_CHUNK * c.f;

	w = attn_alloc((size_t)p->heads * c.f * d * sizeof(float));
	ws = attn_alloc((size_t)threads * per_thread * sizeof(float));
	if (!w || !ws) {
		ret = -ENOMEM;
		goto out_free;
	}
	ret = performer_plan(p, c.f, w);
	if (ret)
		goto out_free;

	saved = blas_serial_begin();
	#pragma omp parallel for schedule(static) \
		if ((double)slices * ((double)p->n + p->m) * c.f * d >= PERFORMER_PARALLEL_MIN)
	for (int s = 0; s < slices; s++) {
		int b = s / p->heads, h = s % p->heads;
		size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);
		float *scratch = ws + (size_t)thread_id() * per_thread;
		float *state = scratch + scratch_floats, *proj = state + state_floats;
		const float *wh = w + (size_t)h * c.f * d;
		struct feature_map fm;
		struct performer_map pm;

		performer_map_init(&fm, &pm, &c, wh, d);
		if (causal) {
			feature_attention_causal(&fm, q + qo, k + kvo, v + kvo, p->n, d, scratch,
						 state, out + qo);
			continue;
		}
		pm.key_shift = key_max(wh, k + kvo, p->m, d, c.f, proj);
		feature_state_build(&fm, k + kvo, v + kvo, p->m, d, scratch, state);
		feature_state_apply(&fm, state, q + qo, p->n, d, scratch, out + qo);
	}
	blas_serial_end(saved);

out_free:
	attn_free(ws);
	attn_free(w);
	return ret;
}

/*
 * Per slice: 2 m d per projected row (n queries; M keys, twice outside cs for the max
 * pre-pass), 2 m d per key for S and per query for the output; cs adds the masked
 * FEATURE_CHUNK-wide products inside each chunk, 2 c (m + d) per row.
 */
static double performer_flops(const struct attn_problem *p)
{
	struct performer_config c;
	double f, d = p->d, per_slice;
	bool causal;

	performer_config(p, &c);
	causal = p->pattern == ATTN_CS && !c.cab_causal;
	f = c.f;
	per_slice = 2 * f * d * ((double)p->n + (causal ? 1 : 2) * (double)p->m);
	per_slice += 2 * f * d * ((double)p->n + p->m);
	if (causal)
		per_slice += 2.0 * FEATURE_CHUNK * (f + d) * p->n;
	return per_slice * p->batch * p->heads;
}

/*
 * S (m x d) and z (m) per query head, float32: W, and so every key feature, belongs to
 * the query head, so GQA cannot share them. batch * heads * (m d + m) * 4 bytes.
 */
static double performer_state_bytes(const struct attn_problem *p)
{
	struct performer_config c;

	performer_config(p, &c);
	return (double)p->batch * p->heads * ((double)c.f * p->d + c.f) * sizeof(float);
}

/*
 * Below this many multiply-adds per step (slices x features x d) a parallel region
 * costs more than it saves.
 */
#define PERFORMER_DECODE_PARALLEL_MIN 32768

struct performer_decode {
	struct attn_problem p;	/* n = m = capacity in positions */
	struct performer_config c;
	int len;		/* positions fed so far */
	int threads;		/* scratch slots */
	size_t state_floats;	/* per (batch, query head) */
	float *w;		/* heads x f x d */
	float *states;		/* [batch][heads] S and z */
	float *scratch;		/* [threads][f] one row of features */
};

static void performer_decode_free(void *state)
{
	struct performer_decode *st = state;

	if (!st)
		return;
	attn_free(st->scratch);
	attn_free(st->states);
	attn_free(st->w);
	attn_free(st);
}

static int performer_decode_init(const struct attn_problem *p, void **state)
{
	struct performer_decode *st;
	struct feature_map probe;
	struct performer_map probe_map;
	int ret;

	*state = NULL;
	if (p->pattern != ATTN_CS || p->n != p->m)
		return -ENOTSUP;
	st = attn_calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->p = decode_problem(p);	/* the params are in st->c */
	performer_config(p, &st->c);
	if (st->c.cab_causal) {
		/* its forward reads keys not fed yet: there is nothing to match */
		ret = -ENOTSUP;
		goto out_free_state;
	}
	performer_map_init(&probe, &probe_map, &st->c, NULL, p->d);
	st->state_floats = feature_state_floats(&probe, p->d);
	st->threads = max_threads();
	st->w = attn_alloc((size_t)p->heads * st->c.f * p->d * sizeof(float));
	st->states = attn_calloc((size_t)p->batch * p->heads * st->state_floats,
				 sizeof(float));
	st->scratch = attn_alloc((size_t)st->threads * st->c.f * sizeof(float));
	if (!st->w || !st->states || !st->scratch) {
		ret = -ENOMEM;
		goto out_free_state;
	}
	ret = performer_plan(p, st->c.f, st->w);
	if (ret)
		goto out_free_state;
	*state = st;
	return 0;

out_free_state:
	performer_decode_free(st);
	return ret;
}

static int performer_decode_step(void *state, const float *q, const float *k, const float *v,
				 float *out)
{
	struct performer_decode *st = state;
	const struct attn_problem *p = &st->p;
	int slices = p->batch * p->heads, d = p->d, t = st->len, f = st->c.f, saved;

	if (t >= p->m)
		return -ENOSPC;
	st->len++;
	saved = blas_serial_begin();
	#pragma omp parallel for num_threads(st->threads) schedule(static) \
		if ((double)slices * f * d >= PERFORMER_DECODE_PARALLEL_MIN)
	for (int s = 0; s < slices; s++) {
		int b = s / p->heads, h = s % p->heads;
		int kvh = h / (p->heads / p->kv_heads);
		const float *kv_k = k + ((size_t)b * p->kv_heads + kvh) * d;
		const float *kv_v = v + ((size_t)b * p->kv_heads + kvh) * d;
		float *sstate = st->states + (size_t)s * st->state_floats;
		float *scratch = st->scratch + (size_t)thread_id() * f;
		struct feature_map fm;
		struct performer_map pm;

		performer_map_init(&fm, &pm, &st->c, st->w + (size_t)h * f * d, d);
		feature_state_add(&fm, sstate, kv_k, kv_v, d, t, scratch);
		feature_state_query(&fm, sstate, q + (size_t)s * d, d, t, scratch,
				    out + (size_t)s * d);
	}
	blas_serial_end(saved);
	return 0;
}

const struct variant_ops performer_variant = {
	.name		= "performer",
	.family		= "linear",
	.summary	= "FAVOR+ positive orthogonal random features (m per head), "
			  "clamped denominator",
	.citation	= "Choromanski et al. 2021, Rethinking Attention with Performers, ICLR "
			  "(arXiv 2009.14794); CAB Performer",
	.patterns	= PATTERNS_ALL,
	.extensions	= PATTERN_BIT(ATTN_CS),
	.flags		= 0,
	.params		= performer_params,
	.n_params	= PERFORMER_N_PARAMS,
	.forward	= performer_forward,
	.flops		= performer_flops,
	.state_bytes	= performer_state_bytes,
	.decode_init	= performer_decode_init,
	.decode_step	= performer_decode_step,
	.decode_free	= performer_decode_free,
};
