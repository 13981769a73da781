/*
 * longshort.c - Long-Short Transformer attention (Zhu et al. 2021, NeurIPS; CAB
 * AttentionLS for ns, CausalLS for cs): an exact local window plus a few global key/value
 * mixtures of the whole sequence (ns: a dynamic low-rank projection; cs: per-chunk
 * summaries), under one softmax, with a LayerNorm on each side ("DualLN").
 *
 * Training-free [harness], as VARIANTS.md section 27: the projections are random, drawn
 * at plan time per QUERY head and never from the data; the LayerNorms are per head over
 * d, without affine parameters, eps LS_LN_EPS; positional terms are dropped. Write LN()
 * for that LayerNorm, σ = 1/sqrt(d), and Q ← σQ before every score: the landmark and
 * summary scores are scaled by σ exactly like the window scores (one softmax over both,
 * so both parts are on the same footing).
 *
 * ns (N rows, window w, rank r, e = max(floor(w/2), 1)):
 *	K_l = LN(K), V_l = LN(V)
 *	P = softmax over positions of each column of K W_p	(raw K; N x r)
 *	(CAB projects the layer input; there is none here, so raw K stands in for it)
 *	K̄ = LN(Pᵀ K_l), V̄ = LN(Pᵀ V_l)			(r x d)
 *	query block g (rows gw..gw+w-1) sees keys gw-e..gw+w-1+e, those outside 0..N-1
 *	masked (this is CAB's padding of N to a multiple of w, the padding masked);
 *	o = softmax([σq·K̄ᵀ, σq·K_l,windowᵀ]) [V̄; V_l,window].
 * W_p (d x r, float32, entries N(0, 1/d)) is drawn row by row, d rows of r, with
 * plan_rng_normal() / sqrt(d) from plan_rng_make(seed, 1000 h + LS_STREAM_NS).
 *
 * cs (window w, chunk l, rank R summary vectors per chunk):
 *	row t sees keys t-w+1..t (negative positions masked; CAB's zero memory there is not
 *	kept) and the summaries of the chunks wholly before its own, c < floor(t / l):
 *	a_{c,s}(j) = softmax over j in chunk c of k_j·u_s	(raw k, no scale)
 *	k̂_{c,s} = LN(Σ_j a_{c,s}(j) LN(k_j)), v̂_{c,s} = LN(Σ_j a_{c,s}(j) LN(v_j))
 *	o_t = softmax([σq_t·k̂ᵀ, σq_t·LN(K)_windowᵀ]) [v̂; LN(V)_window].
 * u (d x R, float32, N(0, 1/d)) is drawn like W_p from plan_rng_make(seed,
 * 1000 h + LS_STREAM_CS). Only chunks some row sees are summarised: floor((N - 1) / l).
 *
 * dual_ln = 0 drops every LayerNorm (raw K, V, landmarks and summaries); with rank 0 as
 * well, ns is a blocked window softmax and cs a causal window softmax.
 *
 * The LayerNorms of K and V are computed once per KV head; everything downstream of a
 * projection is per query head, as the projections are. Matrix products go through
 * cblas_sgemm (held single-threaded inside our OpenMP regions): K W_p, PᵀK_l, PᵀV_l, and
 * per tile of at most LS_TILE query rows the landmark and window scores and the outputs,
 * so the score scratch has at most LS_TILE rows whatever w is.
 */
#include "variant.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>

#include "common.h"
#include "memory.h"
#include "random.h"
#include "threads.h"

/* CAB's constructor defaults: AttentionLS window 15, rank 16; CausalLS 256, 32, 1. */
#define LS_NS_WINDOW_DEFAULT 15
#define LS_NS_RANK_DEFAULT 16
#define LS_CS_WINDOW_DEFAULT 256
#define LS_CS_RANK_DEFAULT 1
#define LS_CHUNK_DEFAULT 32

/* torch.nn.LayerNorm's default eps, which CAB's DualLN uses. */
#define LS_LN_EPS 1e-5f

/* Plan-time streams: 1000 h + these, so ns and cs projections are drawn apart. */
#define LS_STREAM_NS 1
#define LS_STREAM_CS 2

/*
 * Query rows per tile: a tile's scores (LS_TILE x (landmarks + window)) stay in cache and
 * the products are still wide enough for BLAS to pay.
 */
#define LS_TILE 64

enum ls_param {
	LS_WINDOW,
	LS_RANK,
	LS_CHUNK,
	LS_DUAL_LN,
	LS_PARAM_COUNT,
};

static const struct variant_param longshort_params[] = {
	[LS_WINDOW] = {
		.name		= "window",
		.def		= -1,
		.min		= -1,
		.max		= 1048576,
		.integer	= true,
		.help		= "w, -1 = CAB's default (ns 15: blocks of w rows see "
				  "w + 2 max(w/2, 1) keys; cs 256: keys t-w+1..t)",
	},
	[LS_RANK] = {
		.name		= "rank",
		.def		= -1,
		.min		= -1,
		.max		= 4096,
		.integer	= true,
		.help		= "global vectors, -1 = CAB's default (ns 16 landmarks; "
				  "cs 1 summary per chunk); 0 = window only",
	},
	[LS_CHUNK] = {
		.name		= "chunk",
		.def		= LS_CHUNK_DEFAULT,
		.min		= 1,
		.max		= 1048576,
		.integer	= true,
		.help		= "l, keys per summarised chunk (cs only)",
	},
	[LS_DUAL_LN] = {
		.name		= "dual_ln",
		.def		= 1,
		.min		= 0,
		.max		= 1,
		.integer	= true,
		.help		= "1 = LayerNorm (no affine, eps 1e-5) on the window's and "
				  "the global keys and values",
	},
};

/* The parameters of one problem with CAB's per-pattern defaults resolved. */
struct ls_config {
	long w;		/* window */
	int rank;	/* ns: landmarks r; cs: summaries per chunk */
	long chunk;	/* cs: l */
	bool dual_ln;
};

static void ls_config(const struct attn_problem *p, struct ls_config *c)
{
	double v[LS_PARAM_COUNT];
	bool causal = p->pattern == ATTN_CS;

	for (int i = 0; i < LS_PARAM_COUNT; i++)
		v[i] = p->params ? p->params[i] : longshort_params[i].def;
	c->w = v[LS_WINDOW] < 0 ? (causal ? LS_CS_WINDOW_DEFAULT : LS_NS_WINDOW_DEFAULT)
				: (long)v[LS_WINDOW];
	c->rank = v[LS_RANK] < 0 ? (causal ? LS_CS_RANK_DEFAULT : LS_NS_RANK_DEFAULT)
				 : (int)v[LS_RANK];
	c->chunk = (long)v[LS_CHUNK];
	c->dual_ln = v[LS_DUAL_LN] != 0;
}

/* ns: e, the keys a block sees on each side of itself. */
static long ls_margin(long w)
{
	return w / 2 > 1 ? w / 2 : 1;
}

/* Keys one tile or row can see in the window, at most the sequence. */
static long ls_span(const struct attn_problem *p, const struct ls_config *c)
{
	long span = p->pattern == ATTN_CS ? c->w : c->w + 2 * ls_margin(c->w);

	return span < p->n ? span : p->n;
}

/* cs: chunks whose summaries some row sees (all but the last row's chunk). */
static long ls_chunks_seen(const struct attn_problem *p, const struct ls_config *c)
{
	return (p->n - 1) / c->chunk;
}

/* Global key (and value) vectors of one query head: r landmarks, or R per seen chunk. */
static long ls_globals(const struct attn_problem *p, const struct ls_config *c)
{
	if (p->pattern == ATTN_CS)
		return ls_chunks_seen(p, c) * c->rank;
	return c->rank;
}

/* Self patterns only (.patterns); a window of 0 keys is a bad value, not a shape. */
static int longshort_supports(const struct attn_problem *p)
{
	struct ls_config c;

	if (!pattern_is_self(p->pattern))
		return -ENOTSUP;
	ls_config(p, &c);
	if (c.w < 1)
		return -EINVAL;
	return 0;
}

/* LayerNorm without affine over each of `rows` rows of d: y = (x - mean) / sqrt(var + eps). */
static void ls_layer_norm(const float *x, long rows, int d, float *y)
{
	for (long i = 0; i < rows; i++) {
		const float *xi = x + (size_t)i * d;
		float *yi = y + (size_t)i * d;
		float mean = 0, var = 0, inv;

		for (int c = 0; c < d; c++)
			mean += xi[c];
		mean /= (float)d;
		for (int c = 0; c < d; c++)
			var += (xi[c] - mean) * (xi[c] - mean);
		var /= (float)d;
		inv = 1.0f / sqrtf(var + LS_LN_EPS);
		for (int c = 0; c < d; c++)
			yi[c] = (xi[c] - mean) * inv;
	}
}

/* Softmax down each of the `cols` columns of a rows x cols block with row stride ld. */
static void ls_column_softmax(float *x, long rows, int cols, int ld)
{
	for (int s = 0; s < cols; s++) {
		float max = -INFINITY, sum = 0;

		for (long j = 0; j < rows; j++)
			max = fmaxf(max, x[(size_t)j * ld + s]);
		for (long j = 0; j < rows; j++) {
			float e = expf(x[(size_t)j * ld + s] - max);

			x[(size_t)j * ld + s] = e;
			sum += e;
		}
		for (long j = 0; j < rows; j++)
			x[(size_t)j * ld + s] /= sum;
	}
}

/*
 * Softmax of one score row over the allowed columns [0, globals) and [lo, hi) of the
 * window part that starts at column `base`; every other column gets weight exactly 0,
 * so it adds nothing to the products that follow.
 */
static void ls_row_softmax(float *s, int cols, int globals, int base, int lo, int hi)
{
	float max = -INFINITY, sum = 0;

	for (int j = 0; j < globals; j++)
		max = fmaxf(max, s[j]);
	for (int j = base + lo; j < base + hi; j++)
		max = fmaxf(max, s[j]);
	for (int j = 0; j < cols; j++) {
		bool on = j < globals || (j >= base + lo && j < base + hi);
		float e = on ? expf(s[j] - max) : 0;

		s[j] = e;
		sum += e;
	}
	for (int j = 0; j < cols; j++)
		s[j] /= sum;
}

/* The projections of every query head: heads x (d x rank), N(0, 1/d), float32. */
static void ls_draw_projections(const struct attn_problem *p, int rank, uint64_t stream,
				float *proj)
{
	double sd = 1 / sqrt((double)p->d);

	for (int h = 0; h < p->heads; h++) {
		struct plan_rng g = plan_rng_make(p->seed, 1000 * (uint64_t)h + stream);
		float *w = proj + (size_t)h * p->d * rank;

		for (size_t i = 0; i < (size_t)p->d * rank; i++)
			w[i] = (float)(sd * plan_rng_normal(&g));
	}
}

/* Everything one forward() holds: the normalised K and V, projections, global vectors. */
struct ls_work {
	const struct attn_problem *p;
	struct ls_config c;
	float scale;
	long span;		/* window keys one tile row sees, at most */
	long globals;		/* global vectors per query head */
	int tile_rows;		/* query rows of a tile, at most: min(LS_TILE, N) */
	int tile_cols;		/* score columns of a tile: globals + window keys of a tile */
	const float *kl, *vl;	/* LN(K), LN(V) (or K, V), laid out like K and V */
	float *ln;		/* the storage behind kl and vl, when normalised */
	float *proj;		/* heads x d x rank */
	float *kg, *vg;		/* [batch][heads][globals][d] */
	float *pi;		/* [threads][pi_floats] projection scores */
	size_t pi_floats;	/* positions projected x rank */
	float *scores;		/* [threads][tile_rows x tile_cols] */
};

static void ls_work_release(struct ls_work *ws)
{
	attn_free(ws->ln);
	attn_free(ws->proj);
	attn_free(ws->kg);
	attn_free(ws->vg);
	attn_free(ws->pi);
	attn_free(ws->scores);
}

static int ls_work_init(struct ls_work *ws, const struct attn_problem *p, const float *k,
			const float *v)
{
	size_t kv = (size_t)p->batch * p->kv_heads * p->n * p->d;
	size_t slices = (size_t)p->batch * p->heads;
	int threads = max_threads();
	bool causal = p->pattern == ATTN_CS;
	size_t positions;
	long window_cols;

	*ws = (struct ls_work){ .p = p };
	ls_config(p, &ws->c);
	ws->scale = 1.0f / sqrtf((float)p->d);
	ws->span = ls_span(p, &ws->c);
	ws->globals = ls_globals(p, &ws->c);
	/* cs: a tile's window reaches w - 1 keys before its first row. */
	ws->tile_rows = p->n < LS_TILE ? p->n : LS_TILE;
	window_cols = causal ? ws->span + ws->tile_rows - 1 : ws->span;
	if (window_cols > p->n)
		window_cols = p->n;
	ws->tile_cols = (int)(ws->globals + window_cols);
	/* cs projects only the keys of the chunks summarised. */
	positions = causal ? (size_t)ls_chunks_seen(p, &ws->c) * ws->c.chunk : (size_t)p->n;

	ws->kl = k;
	ws->vl = v;
	if (ws->c.dual_ln) {
		ws->ln = attn_alloc(2 * kv * sizeof(float));
		if (!ws->ln)
			goto out_nomem;
		ws->kl = ws->ln;
		ws->vl = ws->ln + kv;
	}
	ws->proj = attn_alloc((size_t)p->heads * p->d * ws->c.rank * sizeof(float));
	ws->kg = attn_alloc(slices * ws->globals * p->d * sizeof(float));
	ws->vg = attn_alloc(slices * ws->globals * p->d * sizeof(float));
	ws->pi_floats = positions * ws->c.rank;
	ws->pi = attn_alloc((size_t)threads * ws->pi_floats * sizeof(float));
	ws->scores = attn_alloc((size_t)threads * ws->tile_rows * ws->tile_cols * sizeof(float));
	if (!ws->proj || !ws->kg || !ws->vg || !ws->pi || !ws->scores)
		goto out_nomem;
	ls_draw_projections(p, ws->c.rank, causal ? LS_STREAM_CS : LS_STREAM_NS, ws->proj);
	return 0;

out_nomem:
	ls_work_release(ws);
	return -ENOMEM;
}

/* LN(K) and LN(V) once per KV head (only with dual_ln). */
static void ls_normalise_kv(struct ls_work *ws, const float *k, const float *v)
{
	const struct attn_problem *p = ws->p;
	long slices = (long)p->batch * p->kv_heads;
	size_t kv = (size_t)slices * p->n * p->d;

	if (!ws->c.dual_ln)
		return;
	#pragma omp parallel for schedule(static)
	for (long s = 0; s < slices; s++) {
		size_t at = (size_t)s * p->n * p->d;

		ls_layer_norm(k + at, p->n, p->d, ws->ln + at);
		ls_layer_norm(v + at, p->n, p->d, ws->ln + kv + at);
	}
}

/*
 * ns landmarks of one (b, h) slice: P = column softmax of K W_p over the N positions,
 * K̄ = LN(PᵀK_l), V̄ = LN(PᵀV_l).
 */
static void ls_landmarks(struct ls_work *ws, const float *k, int b, int h, float *pi)
{
	const struct attn_problem *p = ws->p;
	size_t kvo = problem_kv_offset(p, b, h);
	size_t go = ((size_t)b * p->heads + h) * ws->globals * p->d;
	int r = ws->c.rank, n = p->n, d = p->d;
	const float *wp = ws->proj + (size_t)h * d * r;

	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, r, d, 1.0f, k + kvo, d, wp,
		    r, 0.0f, pi, r);
	ls_column_softmax(pi, n, r, r);
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, d, n, 1.0f, pi, r,
		    ws->kl + kvo, d, 0.0f, ws->kg + go, d);
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, d, n, 1.0f, pi, r,
		    ws->vl + kvo, d, 0.0f, ws->vg + go, d);
	if (ws->c.dual_ln) {
		ls_layer_norm(ws->kg + go, r, d, ws->kg + go);
		ls_layer_norm(ws->vg + go, r, d, ws->vg + go);
	}
}

/*
 * cs summaries of one (b, h) slice: for each chunk c some row sees and each s < R,
 * weights softmax_j(k_j·u_s) over the chunk's keys, k̂ = LN(Σ weights LN(k)), v̂ alike.
 * Summary (c, s) is global row c R + s.
 */
static void ls_summaries(struct ls_work *ws, const float *k, int b, int h, float *pi)
{
	const struct attn_problem *p = ws->p;
	size_t kvo = problem_kv_offset(p, b, h);
	size_t go = ((size_t)b * p->heads + h) * ws->globals * p->d;
	long chunks = ls_chunks_seen(p, &ws->c), l = ws->c.chunk;
	int r = ws->c.rank, d = p->d;
	const float *u = ws->proj + (size_t)h * d * r;

	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(chunks * l), r, d, 1.0f,
		    k + kvo, d, u, r, 0.0f, pi, r);
	for (long c = 0; c < chunks; c++) {
		float *pc = pi + (size_t)c * l * r;
		size_t from = kvo + (size_t)c * l * d, to = go + (size_t)c * r * d;

		ls_column_softmax(pc, l, r, r);
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, d, (int)l, 1.0f, pc, r,
			    ws->kl + from, d, 0.0f, ws->kg + to, d);
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, d, (int)l, 1.0f, pc, r,
			    ws->vl + from, d, 0.0f, ws->vg + to, d);
	}
	if (ws->c.dual_ln) {
		ls_layer_norm(ws->kg + go, chunks * r, d, ws->kg + go);
		ls_layer_norm(ws->vg + go, chunks * r, d, ws->vg + go);
	}
}

/*
 * Weights of rows i0..i1-1 of one slice over the first `globals` global keys and the
 * window keys lo..hi-1: scores σQ[K_g; K_l]ᵀ into s (row stride tile_cols), then the row
 * softmax over what each row may see (cs: its own window and earlier chunks only).
 */
static void ls_tile(const struct ls_work *ws, const float *q, int b, int h, long i0, long i1,
		    long globals, long lo, long hi, float *s)
{
	const struct attn_problem *p = ws->p;
	size_t qo = problem_q_offset(p, b, h) + (size_t)i0 * p->d;
	size_t kvo = problem_kv_offset(p, b, h) + (size_t)lo * p->d;
	size_t go = ((size_t)b * p->heads + h) * ws->globals * p->d;
	int rows = (int)(i1 - i0), span = (int)(hi - lo), g = (int)globals, d = p->d;
	int ld = ws->tile_cols, cols = g + span;
	bool causal = p->pattern == ATTN_CS;

	if (g > 0)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, g, d, ws->scale,
			    q + qo, d, ws->kg + go, d, 0.0f, s, ld);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, span, d, ws->scale, q + qo,
		    d, ws->kl + kvo, d, 0.0f, s + g, ld);
	for (int i = 0; i < rows; i++) {
		long t = i0 + i;
		int row_globals = g, wlo = 0, whi = span;

		if (causal) {
			/* chunks strictly before t's own; keys t-w+1..t */
			row_globals = (int)(t / ws->c.chunk * ws->c.rank);
			wlo = (int)(t - ws->c.w + 1 - lo);
			wlo = wlo > 0 ? wlo : 0;
			whi = (int)(t + 1 - lo);
		}
		ls_row_softmax(s + (size_t)i * ld, cols, row_globals, g, wlo, whi);
	}
}

/* The same rows' outputs: the weights of ls_tile() times [V_g; V_l]. */
static void ls_tile_output(const struct ls_work *ws, int b, int h, long i0, long i1,
			   long globals, long lo, long hi, const float *s, float *out)
{
	const struct attn_problem *p = ws->p;
	size_t qo = problem_q_offset(p, b, h) + (size_t)i0 * p->d;
	size_t kvo = problem_kv_offset(p, b, h) + (size_t)lo * p->d;
	size_t go = ((size_t)b * p->heads + h) * ws->globals * p->d;
	int rows = (int)(i1 - i0), span = (int)(hi - lo), g = (int)globals, d = p->d;
	int ld = ws->tile_cols;

	if (g > 0)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, g, 1.0f, s, ld,
			    ws->vg + go, d, 0.0f, out + qo, d);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, span, 1.0f, s + g, ld,
		    ws->vl + kvo, d, g > 0 ? 1.0f : 0.0f, out + qo, d);
}

/*
 * Tile `tile` of a slice: its rows i0..i1 (empty if past the end), the global vectors
 * its score block needs and its window keys lo..hi. ns tiles lie inside one query block
 * of w rows and all see that block's keys; cs tiles are LS_TILE consecutive rows and see
 * the summaries of the chunks before their last row's (rows mask the rest).
 */
static bool ls_tile_bounds(const struct ls_work *ws, long tile, long tiles_per_block,
			   long *i0, long *i1, long *globals, long *lo, long *hi)
{
	const struct attn_problem *p = ws->p;
	long w = ws->c.w;

	if (p->pattern == ATTN_CS) {
		*i0 = tile * LS_TILE;
		*i1 = *i0 + LS_TILE < p->n ? *i0 + LS_TILE : p->n;
		*globals = (*i1 - 1) / ws->c.chunk * ws->c.rank;
		*lo = *i0 - w + 1 > 0 ? *i0 - w + 1 : 0;
		*hi = *i1;
	} else {
		long g = tile / tiles_per_block, e = ls_margin(w);
		long end = (g + 1) * w < p->n ? (g + 1) * w : p->n;

		*i0 = g * w + tile % tiles_per_block * LS_TILE;
		*i1 = *i0 + LS_TILE < end ? *i0 + LS_TILE : end;
		*globals = ws->globals;
		*lo = g * w - e > 0 ? g * w - e : 0;
		*hi = g * w + w + e < p->n ? g * w + w + e : p->n;
	}
	return *i0 < *i1;
}

static int longshort_forward(const struct attn_problem *p, const float *q, const float *k,
			     const float *v, float *out)
{
	long slices = (long)p->batch * p->heads, tiles_per_block, tiles;
	struct ls_work ws;
	int saved, ret;

	ret = longshort_supports(p);
	if (ret)
		return ret;
	ret = ls_work_init(&ws, p, k, v);
	if (ret)
		return ret;
	if (p->pattern == ATTN_CS) {
		tiles_per_block = 1;
		tiles = (p->n + LS_TILE - 1) / LS_TILE;
	} else {
		long rows = ws.c.w < p->n ? ws.c.w : p->n;

		tiles_per_block = (rows + LS_TILE - 1) / LS_TILE;
		tiles = (p->n + ws.c.w - 1) / ws.c.w * tiles_per_block;
	}

	saved = blas_serial_begin();
	ls_normalise_kv(&ws, k, v);
	if (ws.globals > 0) {
		#pragma omp parallel for schedule(static)
		for (long s = 0; s < slices; s++) {
			float *pi = ws.pi + (size_t)thread_id() * ws.pi_floats;

			if (p->pattern == ATTN_CS)
				ls_summaries(&ws, k, (int)(s / p->heads), (int)(s % p->heads), pi);
			else
				ls_landmarks(&ws, k, (int)(s / p->heads), (int)(s % p->heads), pi);
		}
	}
	#pragma omp parallel for schedule(dynamic, 1)
	for (long x = 0; x < slices * tiles; x++) {
		int b = (int)(x / tiles / p->heads), h = (int)(x / tiles % p->heads);
		float *s = ws.scores + (size_t)thread_id() * ws.tile_rows * ws.tile_cols;
		long i0, i1, globals, lo, hi;

		if (!ls_tile_bounds(&ws, x % tiles, tiles_per_block, &i0, &i1, &globals, &lo,
				    &hi))
			continue;
		ls_tile(&ws, q, b, h, i0, i1, globals, lo, hi, s);
		ls_tile_output(&ws, b, h, i0, i1, globals, lo, hi, s, out);
	}
	blas_serial_end(saved);
	ls_work_release(&ws);
	return 0;
}

/*
 * Multiply-adds x 2: the projection scores (N d R) and the two global mixtures (2 N R d)
 * per slice, then 4 d per (row, visible key or global vector).
 */
static double longshort_flops(const struct attn_problem *p)
{
	struct ls_config c;
	double per_slice, pairs = 0;

	ls_config(p, &c);
	if (p->pattern == ATTN_CS) {
		long proj = ls_chunks_seen(p, &c) * c.chunk;

		per_slice = 6.0 * proj * p->d * c.rank;
		for (long t = 0; t < p->n; t++)
			pairs += (double)(t / c.chunk) * c.rank + (t + 1 < c.w ? t + 1 : c.w);
	} else {
		long e = ls_margin(c.w);

		per_slice = 6.0 * p->n * p->d * c.rank;
		for (long g = 0; g * c.w < p->n; g++) {
			long rows = (g + 1) * c.w < p->n ? c.w : p->n - g * c.w;
			long lo = g * c.w - e > 0 ? g * c.w - e : 0;
			long hi = g * c.w + c.w + e < p->n ? g * c.w + c.w + e : p->n;

			pairs += (double)rows * (c.rank + hi - lo);
		}
	}
	return (double)p->batch * p->heads * (per_slice + 4.0 * p->d * pairs);
}

/*
 * Bytes the method keeps to produce its outputs, float32: the window's keys and values
 * per KV head (ns: a block's w + 2e keys, cs: w keys; at most N), plus per query head
 * the global keys and values: ns 2 r d (landmarks), cs 2 R d ceil(N / l) (the summaries
 * of every chunk, the open one included, as a decoder would keep them).
 */
static double longshort_state_bytes(const struct attn_problem *p)
{
	struct ls_config c;
	double globals;

	ls_config(p, &c);
	globals = c.rank;
	if (p->pattern == ATTN_CS)
		globals *= (double)((p->n + c.chunk - 1) / c.chunk);
	return kv_cache_bytes(p, ls_span(p, &c)) +
	       2.0 * p->batch * p->heads * globals * p->d * sizeof(float);
}

const struct variant_ops longshort_variant = {
	.name		= "longshort",
	.family		= "lowrank",
	.summary	= "window plus global low-rank projection (ns) / chunk summaries (cs), "
			  "one softmax, DualLN",
	.citation	= "Zhu et al. 2021, Long-Short Transformer: Efficient Transformers for "
			  "Language and Vision, NeurIPS; CAB AttentionLS, CausalLS",
	.patterns	= PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_CS),
	.extensions	= 0,
	.flags		= 0,
	.params		= longshort_params,
	.n_params	= LS_PARAM_COUNT,
	.supports	= longshort_supports,
	.forward	= longshort_forward,
	.flops		= longshort_flops,
	.state_bytes	= longshort_state_bytes,
};
