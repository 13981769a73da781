/*
 * lightning.c - Lightning Attention-2 (Qin et al. 2024): causal linear attention with an
 * exponential decay per head, computed blockwise (VARIANTS.md section 19).
 *
 *	o_t = Σ_{s<=t} λ^{t-s} (q_t·k_s) v_s	(raw q and k, no softmax, no denominator)
 *
 * By blocks of B rows (local indices x, y < B' = the block's rows, B' < B only for the
 * last block), with KV the d x d state of every row before the block:
 *
 *	O_b  = diag(λ^{1..B'}) Q_b KV + [(Q_b K_bᵀ) ⊙ D] V_b,	D_xy = λ^{x-y} for x >= y, else 0
 *	KV  <- λ^{B'} KV + (diag(λ^{B'-1-y}) K_b)ᵀ V_b
 *
 * all three products with cblas_sgemm (B' x B' scores, B' x d times the d x d state, the
 * d x B' times B' x d update). Every power of λ is at most 1, taken from one table of
 * exp(-k rate) made in double, so nothing is ever divided by a power of λ and no block
 * size can overflow. Then lightning.norm: 0 (default, [harness]) divides each output row
 * of each head by its root mean square, o (mean_c o_c² + 1e-6)^(-1/2), no gain (the
 * TransNormerLLM NormAttention normalises all heads together and gates the result, which
 * has no meaning for one attention operator); 1 leaves the kernel's raw output.
 *
 * λ_h = exp(-slope_scale s_h) with the ALiBi slopes s_h: 2^(-8(h+1)/H) when H is a power
 * of two; otherwise, with P = 2^floor(log2 H), the P slopes of P heads followed by every
 * other slope of the 2P sequence (its 1st, 3rd, ...), H - P of them. slope_scale (an
 * addition of this harness, default 1) is the released code's layer factor
 * 1 - l/(L-1) + 1e-5 for layer l of L; 1 is layer 0, 0 is λ = 1 (plain causal linear
 * attention with identity features).
 *
 * GQA: λ belongs to the QUERY head, and it weighs every key inside the state (the update
 * scales k_y by λ^{B'-1-y}, the carried state by λ^{B'}), so the d x d state differs per
 * query head and cannot be shared by a group, unlike linear attention's Σ φ(k) vᵀ. The
 * raw products Q_b K_bᵀ also mix in the query. Every (batch, query head) slice is
 * therefore computed on its own; it only reads its KV head's rows.
 *
 * Parallel over (batch, query head) slices. When there are fewer slices than threads,
 * each slice's blocks are also split into contiguous runs (row tiles): first every run
 * builds, from zero, the state its own rows leave (the update products only), then the
 * runs' starting states are chained (KV_start(j+1) = λ^{rows of run j} KV_start(j) +
 * state of run j), then every run computes its outputs from its starting state. That
 * costs one more pass of update products; with enough slices it is not taken. Memory
 * per thread: one d x d state, one B x d block of scaled keys, one B x B score tile and
 * the table of powers (B = min(lightning.block, n)), whatever the length; split runs
 * keep two d x d states per run instead of one per thread.
 *
 * Decoding (cs) keeps KV (d x d float) per (batch, query head) and feeds one position at
 * a time: o = λ q KV + (q·k) v, then KV <- λ KV + k vᵀ (row t of the recurrence above:
 * the blocked form with B = 1, so the newest term is a score times v, as inside a block,
 * not q (k vᵀ), which rounds q·k differently), then the norm. λ is applied in double:
 * a float λ would compound its own rounding over the positions fed.
 */
#include "variant.h"

#include <cblas.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "common.h"
#include "memory.h"
#include "threads.h"

#define LIGHTNING_BLOCK_DEFAULT 64	/* the released kernels' BLOCK = 64 */
#define LIGHTNING_BLOCK_MAX 4096

enum lightning_norm {
	LIGHTNING_NORM_RMS = 0,		/* [harness] per row and head, no gain */
	LIGHTNING_NORM_RAW = 1,		/* the kernel's own output */
};

/* The rms norm's guard inside the square root (catalogue: mean_c o_c² + 1e-6). */
#define LIGHTNING_RMS_EPS 1e-6

/*
 * Below this many multiply-adds (forward: slices x n x (B + d) x d; decode step: slices
 * x d x d) a parallel region costs more than it saves.
 */
#define LIGHTNING_PARALLEL_MIN 32768

enum lightning_param_index {
	LIGHTNING_BLOCK,
	LIGHTNING_NORM,
	LIGHTNING_SLOPE_SCALE,
	LIGHTNING_N_PARAMS,
};

static const struct variant_param lightning_params[] = {
	[LIGHTNING_BLOCK] = {
		.name		= "block",
		.def		= LIGHTNING_BLOCK_DEFAULT,
		.min		= 1,
		.max		= LIGHTNING_BLOCK_MAX,
		.integer	= true,
		.help		= "B: rows per block (masked quadratic inside a block, d x d "
				  "state across blocks)",
	},
	[LIGHTNING_NORM] = {
		.name		= "norm",
		.def		= LIGHTNING_NORM_RMS,
		.min		= 0,
		.max		= 1,
		.integer	= true,
		.help		= "0 rms: o / sqrt(mean_c o_c^2 + 1e-6) per row and head, no "
				  "gain [harness]; 1 raw: the kernel's own output",
	},
	[LIGHTNING_SLOPE_SCALE] = {
		.name		= "slope_scale",
		.def		= 1,
		.min		= 0,
		.max		= 1,
		.help		= "[harness] multiplies every ALiBi slope, lambda_h = "
				  "exp(-scale s_h): the released code's layer factor "
				  "1 - l/(L-1) + 1e-5 for layer l of L (1 = layer 0; 0 = lambda 1)",
	},
};

struct lightning_config {
	int block;		/* B as declared */
	bool rms;		/* lightning.norm = 0 */
	double slope_scale;
};

static void lightning_config(const struct attn_problem *p, struct lightning_config *c)
{
	double values[LIGHTNING_N_PARAMS];

	for (int i = 0; i < LIGHTNING_N_PARAMS; i++)
		values[i] = p->params ? p->params[i] : lightning_params[i].def;
	c->block = (int)values[LIGHTNING_BLOCK];
	c->rms = (int)values[LIGHTNING_NORM] == LIGHTNING_NORM_RMS;
	c->slope_scale = values[LIGHTNING_SLOPE_SCALE];
}

/* The i-th ALiBi slope of a power of two n of heads: 2^(-8 (i + 1) / n). */
static double alibi_slope_pow2(int i, int n)
{
	return exp2(-8.0 * (i + 1) / n);
}

/* ALiBi's slope of head h of `heads`, the interleaving rule for other counts. */
static double lightning_slope(int h, int heads)
{
	int pow2 = 1;

	while (pow2 * 2 <= heads)
		pow2 *= 2;
	if (h < pow2)
		return alibi_slope_pow2(h, pow2);
	/* every other slope of the 2P sequence: its 0th, 2nd, 4th, ... */
	return alibi_slope_pow2(2 * (h - pow2), 2 * pow2);
}

/* -ln λ of query head h: λ^k = exp(-k rate). */
static double lightning_rate(const struct lightning_config *c, int h, int heads)
{
	return c->slope_scale * lightning_slope(h, heads);
}

/* Rows per block actually used: B, or n when a single block holds the whole sequence. */
static int lightning_block(const struct lightning_config *c, int n)
{
	return c->block < n ? c->block : n;
}

/*
 * Runs each slice is split into: one when there are as many slices as threads (or the
 * work is too small for a parallel region), otherwise enough for every thread, at most
 * one per block.
 */
static int lightning_parts(const struct attn_problem *p, int block)
{
	int slices = p->batch * p->heads, threads = max_threads();
	int blocks = (p->n + block - 1) / block, parts;

	if (slices >= threads ||
	    (double)slices * p->n * ((double)block + p->d) * p->d < LIGHTNING_PARALLEL_MIN)
		return 1;
	parts = (threads + slices - 1) / slices;
	return parts < blocks ? parts : blocks;
}

/* Rows [*lo, *hi) of run `part` of `parts`, whole blocks of `block` rows over n. */
static void lightning_part_rows(int n, int block, int parts, int part, int *lo, int *hi)
{
	int blocks = (n + block - 1) / block;
	long first = (long)blocks * part / parts, last = (long)blocks * (part + 1) / parts;

	*lo = (int)(first * block);
	*hi = last * block < n ? (int)(last * block) : n;
}

/* What one slice's blocks read: its rows, the table of powers and the scratch. */
struct lightning_slice {
	const float *q, *k, *v;	/* the slice's n rows of d */
	float *out;
	int d, block;		/* block: B as used (<= n) */
	bool rms;
	/*
	 * pw[j] = λ^(block - j) for j = 0..block, so λ^e = pw[block - e]: a row of the
	 * decay mask, λ^(x - y) for y = 0..x, is pw[block - x ..] read forwards.
	 */
	float *pw;
	float *ks;		/* block x d: keys scaled for the state update */
	float *a;		/* block x block: the scores of one block */
};

/* Floats of scratch one thread needs for blocks of `block` rows. */
static size_t lightning_scratch_floats(int block, int d)
{
	return (size_t)block + 1 + (size_t)block * d + (size_t)block * block;
}

static void lightning_slice_init(struct lightning_slice *sl, float *scratch, int block, int d,
				 double rate)
{
	sl->block = block;
	sl->d = d;
	sl->pw = scratch;
	sl->ks = sl->pw + block + 1;
	sl->a = sl->ks + (size_t)block * d;
	for (int j = 0; j <= block; j++) {
		double power = exp(-(double)(block - j) * rate);

		/* no subnormal weights (slow in every product): below FLT_MIN is 0 */
		sl->pw[j] = power < FLT_MIN ? 0.0f : (float)power;
	}
}

/*
 * Divides each of `rows` rows of o (d wide) by its root mean square (guarded). The sum of
 * squares is kept in double: scale-free, so raw outputs of any size normalise alike.
 */
static void rms_rows(float *o, int rows, int d)
{
	for (int i = 0; i < rows; i++) {
		float *row = o + (size_t)i * d, scale;
		double sum = 0;

		for (int c = 0; c < d; c++)
			sum += (double)row[c] * row[c];
		scale = (float)(1 / sqrt(sum / d + LIGHTNING_RMS_EPS));
		for (int c = 0; c < d; c++)
			row[c] *= scale;
	}
}

/* kv <- λ^r kv + (diag(λ^(r-1-y)) K_b)ᵀ V_b for the block of r rows at row r0. */
static void lightning_update(const struct lightning_slice *sl, int r0, int r, float *kv)
{
	const float *kb = sl->k + (size_t)r0 * sl->d, *vb = sl->v + (size_t)r0 * sl->d;
	const float *pw = sl->pw + sl->block - r + 1;	/* pw[y] = λ^(r-1-y) */
	int d = sl->d;

	for (int y = 0; y < r; y++)
		for (int c = 0; c < d; c++)
			sl->ks[(size_t)y * d + c] = pw[y] * kb[(size_t)y * d + c];
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, d, r, 1.0f, sl->ks, d, vb, d,
		    sl->pw[sl->block - r], kv, d);
}

/*
 * The outputs of the block of r rows at row r0 against the state kv of the rows before
 * it (zero when `fresh`: the inter-block product is skipped), then the norm.
 */
static void lightning_outputs(const struct lightning_slice *sl, int r0, int r, const float *kv,
			      bool fresh)
{
	int d = sl->d, b = sl->block;
	const float *qb = sl->q + (size_t)r0 * d, *kb = sl->k + (size_t)r0 * d;
	const float *vb = sl->v + (size_t)r0 * d;
	float *ob = sl->out + (size_t)r0 * d, *a = sl->a;

	if (!fresh) {
		/* O_inter = diag(λ^(x+1)) Q_b KV */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, d, d, 1.0f, qb, d, kv,
			    d, 0.0f, ob, d);
		for (int x = 0; x < r; x++) {
			float f = sl->pw[b - x - 1];

			for (int c = 0; c < d; c++)
				ob[(size_t)x * d + c] *= f;
		}
	}
	/* O_intra = [(Q_b K_bᵀ) ⊙ D] V_b */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, r, d, 1.0f, qb, d, kb, d, 0.0f,
		    a, r);
	for (int x = 0; x < r; x++) {
		float *ax = a + (size_t)x * r;
		const float *decay = sl->pw + b - x;	/* decay[y] = λ^(x-y) */

		for (int y = 0; y <= x; y++)
			ax[y] *= decay[y];
		for (int y = x + 1; y < r; y++)
			ax[y] = 0;
	}
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, d, r, 1.0f, a, r, vb, d,
		    fresh ? 0.0f : 1.0f, ob, d);
	if (sl->rms)
		rms_rows(ob, r, d);
}

/*
 * Rows [lo, hi) of a slice (lo on a block edge) from the state kv of the rows before lo
 * (zero when `fresh`); kv ends as the state of every row before hi.
 */
static void lightning_rows(const struct lightning_slice *sl, int lo, int hi, float *kv,
			   bool fresh)
{
	for (int r0 = lo; r0 < hi; r0 += sl->block) {
		int r = hi - r0 < sl->block ? hi - r0 : sl->block;

		lightning_outputs(sl, r0, r, kv, fresh);
		lightning_update(sl, r0, r, kv);
		fresh = false;
	}
}

/* kv = the state rows [lo, hi) alone leave (from zero): the update products only. */
static void lightning_run_state(const struct lightning_slice *sl, int lo, int hi, float *kv)
{
	memset(kv, 0, sizeof(float) * sl->d * sl->d);
	for (int r0 = lo; r0 < hi; r0 += sl->block)
		lightning_update(sl, r0, hi - r0 < sl->block ? hi - r0 : sl->block, kv);
}

static void lightning_slice_at(const struct attn_problem *p, const struct lightning_config *c,
			       int s, const float *q, const float *k, const float *v, float *out,
			       float *scratch, struct lightning_slice *sl)
{
	int b = s / p->heads, h = s % p->heads;
	size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);

	lightning_slice_init(sl, scratch, lightning_block(c, p->n), p->d,
			     lightning_rate(c, h, p->heads));
	sl->q = q + qo;
	sl->k = k + kvo;
	sl->v = v + kvo;
	sl->out = out + qo;
	sl->rms = c->rms;
}

static int lightning_forward(const struct attn_problem *p, const float *q, const float *k,
			     const float *v, float *out)
{
	struct lightning_config c;
	int slices = p->batch * p->heads, threads = max_threads(), d = p->d, block, parts;
	int items, saved;
	size_t dd = (size_t)d * d, scf;
	float *scratch, *states;
	bool parallel;

	if (p->pattern != ATTN_CS)
		return -ENOTSUP;
	lightning_config(p, &c);
	block = lightning_block(&c, p->n);
	parts = lightning_parts(p, block);
	items = slices * parts;
	scf = lightning_scratch_floats(block, d);
	parallel = (double)slices * p->n * ((double)block + d) * d >= LIGHTNING_PARALLEL_MIN;

	scratch = attn_alloc(sizeof(float) * scf * threads);
	/* one state per thread; split runs keep a state and a starting state per run */
	states = attn_alloc(sizeof(float) * dd * (parts > 1 ? 2 * (size_t)items : (size_t)threads));
	if (!scratch || !states) {
		attn_free(scratch);
		attn_free(states);
		return -ENOMEM;
	}

	saved = blas_serial_begin();
	if (parts == 1) {
		#pragma omp parallel for schedule(dynamic) if (parallel)
		for (int s = 0; s < slices; s++) {
			struct lightning_slice sl;
			float *kv = states + dd * thread_id();

			lightning_slice_at(p, &c, s, q, k, v, out, scratch + scf * thread_id(), &sl);
			memset(kv, 0, sizeof(float) * dd);
			lightning_rows(&sl, 0, p->n, kv, true);
		}
	} else {
		float *own = states, *start = states + dd * items;

		/* the state each run leaves from zero; the last run's is never needed */
		#pragma omp parallel for schedule(static)
		for (int it = 0; it < items; it++) {
			struct lightning_slice sl;
			int lo, hi;

			if (it % parts == parts - 1)
				continue;
			lightning_slice_at(p, &c, it / parts, q, k, v, out,
					   scratch + scf * thread_id(), &sl);
			lightning_part_rows(p->n, block, parts, it % parts, &lo, &hi);
			lightning_run_state(&sl, lo, hi, own + dd * it);
		}
		/* chained: start(j + 1) = λ^(rows of run j) start(j) + own(j) */
		for (int s = 0; s < slices; s++) {
			double rate = lightning_rate(&c, s % p->heads, p->heads);

			memset(start + dd * s * parts, 0, sizeof(float) * dd);
			for (int j = 0; j + 1 < parts; j++) {
				const float *from = start + dd * (s * parts + j);
				const float *add = own + dd * (s * parts + j);
				float *to = start + dd * (s * parts + j + 1), decay;
				int lo, hi;

				lightning_part_rows(p->n, block, parts, j, &lo, &hi);
				decay = (float)exp(-(double)(hi - lo) * rate);
				for (size_t x = 0; x < dd; x++)
					to[x] = decay * from[x] + add[x];
			}
		}
		#pragma omp parallel for schedule(static)
		for (int it = 0; it < items; it++) {
			struct lightning_slice sl;
			int lo, hi;

			lightning_slice_at(p, &c, it / parts, q, k, v, out,
					   scratch + scf * thread_id(), &sl);
			lightning_part_rows(p->n, block, parts, it % parts, &lo, &hi);
			lightning_rows(&sl, lo, hi, start + dd * it, it % parts == 0);
		}
	}
	blas_serial_end(saved);

	attn_free(states);
	attn_free(scratch);
	return 0;
}

/*
 * The products and elementwise work of one block of r rows: scores 2r²d, their product
 * with V 2r²d, the decay mask r(r+1)/2, the state update 2rd² + d² (its β) + rd (scaled
 * keys), and, except for a slice's first block, the inter-block product 2rd² + rd; the
 * rms norm 3rd. Split runs (fewer slices than threads) add one more pass of updates and
 * the chaining of their starting states, 2d² per run.
 */
static double lightning_flops(const struct attn_problem *p)
{
	struct lightning_config c;
	double d = p->d, per_slice = 0, update = 0;
	int block, parts;

	lightning_config(p, &c);
	block = lightning_block(&c, p->n);
	parts = lightning_parts(p, block);
	for (int part = 0; part < parts; part++) {
		int lo, hi;

		lightning_part_rows(p->n, block, parts, part, &lo, &hi);
		for (int r0 = lo; r0 < hi; r0 += block) {
			double r = hi - r0 < block ? hi - r0 : block;
			double up = 2 * r * d * d + d * d + r * d;

			per_slice += 4 * r * r * d + r * (r + 1) / 2 + up;
			if (r0 > 0)
				per_slice += 2 * r * d * d + r * d;
			if (c.rms)
				per_slice += 3 * r * d;
			if (parts > 1 && part < parts - 1)
				update += up;
		}
	}
	/* chaining the runs' starting states */
	update += 2 * d * d * (parts - 1);
	return (per_slice + update) * p->batch * p->heads;
}

/*
 * The recurrent state: KV (d x d float) per (batch, QUERY head); λ is per query head,
 * so a GQA group cannot share it. batch * heads * d² * 4 bytes, whatever the length.
 */
static double lightning_state_bytes(const struct attn_problem *p)
{
	return (double)p->batch * p->heads * p->d * p->d * sizeof(float);
}

struct lightning_decode {
	struct attn_problem p;	/* n = m = capacity in positions */
	bool rms;
	int len;		/* positions fed so far */
	int threads;
	double *lambda;		/* [heads] λ in double: a float λ would compound its rounding */
	float *kv;		/* [batch][heads][d][d], zeroed */
};

static void lightning_decode_free(void *state)
{
	struct lightning_decode *st = state;

	if (!st)
		return;
	attn_free(st->kv);
	attn_free(st->lambda);
	attn_free(st);
}

static int lightning_decode_init(const struct attn_problem *p, void **state)
{
	struct lightning_decode *st;
	struct lightning_config c;
	int ret;

	*state = NULL;
	ret = decode_check_problem(p);
	if (ret)
		return ret;
	st = attn_calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	lightning_config(p, &c);	/* the params are read here, not kept */
	st->p = decode_problem(p);
	st->rms = c.rms;
	st->threads = max_threads();
	st->lambda = attn_alloc(sizeof(double) * p->heads);
	st->kv = attn_calloc((size_t)p->batch * p->heads * p->d * p->d, sizeof(float));
	if (!st->lambda || !st->kv) {
		lightning_decode_free(st);
		return -ENOMEM;
	}
	for (int h = 0; h < p->heads; h++)
		st->lambda[h] = exp(-lightning_rate(&c, h, p->heads));
	*state = st;
	return 0;
}

static int lightning_decode_step(void *state, const float *q, const float *k, const float *v,
				 float *out)
{
	struct lightning_decode *st = state;
	const struct attn_problem *p = &st->p;
	int slices = p->batch * p->heads, d = p->d;

	if (st->len >= p->n)
		return -ENOSPC;
	st->len++;
	#pragma omp parallel for num_threads(st->threads) schedule(static) \
		if ((double)slices * d * d >= LIGHTNING_PARALLEL_MIN)
	for (int s = 0; s < slices; s++) {
		int b = s / p->heads, h = s % p->heads;
		int kvh = h / (p->heads / p->kv_heads);
		const float *ks = k + ((size_t)b * p->kv_heads + kvh) * d;
		const float *vs = v + ((size_t)b * p->kv_heads + kvh) * d;
		const float *qs = q + (size_t)s * d;
		float *kv = st->kv + (size_t)s * d * d, *o = out + (size_t)s * d;
		double lambda = st->lambda[h];
		float score = dot(qs, ks, d);

		/* o = λ q KV + (q·k) v, from the state before this position */
		for (int c = 0; c < d; c++)
			o[c] = 0;
		for (int i = 0; i < d; i++) {
			const float *row = kv + (size_t)i * d;

			for (int c = 0; c < d; c++)
				o[c] += qs[i] * row[c];
		}
		for (int c = 0; c < d; c++)
			o[c] = (float)(lambda * o[c]) + score * vs[c];
		/* KV <- λ KV + k vᵀ */
		for (int i = 0; i < d; i++) {
			float *row = kv + (size_t)i * d;

			for (int c = 0; c < d; c++)
				row[c] = (float)(lambda * row[c] + (double)ks[i] * vs[c]);
		}
		if (st->rms)
			rms_rows(o, 1, d);
	}
	return 0;
}

const struct variant_ops lightning_variant = {
	.name		= "lightning",
	.family		= "linear",
	.summary	= "Lightning Attention-2: causal linear attention decayed by ALiBi-slope "
			  "lambda per head, blocks of B, rms norm per head [harness]",
	.citation	= "Qin et al. 2024, Lightning Attention-2: A Free Lunch for Handling "
			  "Unlimited Sequence Lengths in Large Language Models, arXiv preprint "
			  "(arXiv 2401.04658); Lightning-1 in TransNormerLLM, Qin et al. 2023 "
			  "(arXiv 2307.14995)",
	.patterns	= PATTERN_BIT(ATTN_CS),
	.extensions	= 0,
	.flags		= 0,
	.params		= lightning_params,
	.n_params	= LIGHTNING_N_PARAMS,
	.forward	= lightning_forward,
	.flops		= lightning_flops,
	.state_bytes	= lightning_state_bytes,
	.decode_init	= lightning_decode_init,
	.decode_step	= lightning_decode_step,
	.decode_free	= lightning_decode_free,
};
