/*
 * sea.c - SEA, sparse attention on an estimated attention mask (Lee et al. 2024, "SEA:
 * Sparse Linear Attention with Estimated Attention Mask", ICLR), as VARIANTS.md section
 * 12 adapts it without training: a FAVOR+ estimate of each key bin's attention mass
 * picks n_sel bins per query row, and the row takes an exact softmax over their keys.
 *
 * Keys are cut into bins of w_b consecutive positions, C = ceil(M / w_b) of them (the
 * last one may be short). With the FAVOR+ feature map of section 16 (m features, x' =
 * d^(-1/4) x, p_r(x) = w_r·x', h(x) = |x|²/(2√d), eps = SEA_EPS):
 *	φ(q)_r = m^(-1/2) (exp(p_r(q) - h(q) - max_r' p_r'(q)) + eps)
 *	φ(k)_r = m^(-1/2) (exp(p_r(k) - h(k) - K) + eps)
 * with K the one max of p over all keys and features of the slice in ns, nc and cc, and
 * K = 0 in cs (the causal stabiliser of section 16: a max over all keys would let later
 * keys move earlier rows). Bin masses S_c = Σ_{j in bin c} φ(k_j), once per KV head and
 * shared by its query group (section 31); estimated mass Â_ic = φ(q_i)·S_c.
 *
 * Candidates of row i: every bin (ns, nc, cc); in cs the bins wholly <= i and i's own
 * bin, whose estimate [harness] sums φ(k_j) over its keys j <= i only (its full S_c would
 * read keys after i). The n_sel candidates of largest Â_ic (ties: the smaller bin) are
 * chosen, all of them when there are no more than n_sel; the row is the exact softmax
 * of σ q_i·k_j over the keys of the chosen bins (cs: j <= i), so n_sel w_b >= M is
 * vanilla attention.
 *
 * [harness] W (m x d) is drawn once per call by favor_draw() from plan_rng_make(seed,
 * SEA_STREAM), the same for every head: the bin masses belong to the KV head and are
 * shared by its query group, so the query side of the group must use the same W; one W
 * for all heads also makes grouped heads give exactly what MHA gives with K/V repeated.
 * Heads stay independent in everything data-derived (estimates, selection, softmax).
 *
 * Work: key features by sgemm per chunk of SEA_TILE keys (twice outside cs, for the
 * max), bin sums; per tile of SEA_TILE query rows the query features and the tile x C
 * estimates by sgemm (cs: only the bins up to the tile's last row); per row a heap
 * selection over its candidates, then BLAS-2 products over the chosen bins, merged into
 * runs of contiguous keys. Never an N x M matrix: per thread a tile x C block of
 * estimates and n_sel w_b scores.
 */
#include "variant.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "feature-attention.h"
#include "memory.h"
#include "threads.h"
#include "vexp.h"

/* [harness] defaults of section 12 */
#define SEA_BIN_DEFAULT 32
#define SEA_SELECT_DEFAULT 8
#define SEA_FEATURES_DEFAULT 64
/* Section 16's kernel epsilon (CAB/google), added to every feature. */
#define SEA_EPS 1e-4
/* Plan stream of the random features (the catalogue's section number). */
#define SEA_STREAM 12
/* Query rows of a tile, and keys per feature chunk. */
#define SEA_TILE 64

/* Below this many multiply-adds a parallel region costs more than it saves. */
#define SEA_PARALLEL_MIN 32768

enum sea_param_index {
	SEA_BIN,
	SEA_SELECT,
	SEA_FEATURES,
	SEA_N_PARAMS,
};

static const struct variant_param sea_params[] = {
	[SEA_BIN] = {
		.name		= "bin",
		.def		= SEA_BIN_DEFAULT,
		.min		= 1,
		.max		= 1 << 20,
		.integer	= true,
		.help		= "w_b: consecutive keys per bin [harness default]",
	},
	[SEA_SELECT] = {
		.name		= "select",
		.def		= SEA_SELECT_DEFAULT,
		.min		= 1,
		.max		= 1 << 20,
		.integer	= true,
		.help		= "n_sel: bins each query row attends [harness default]",
	},
	[SEA_FEATURES] = {
		.name		= "features",
		.def		= SEA_FEATURES_DEFAULT,
		.min		= 1,
		.max		= 8192,
		.integer	= true,
		.help		= "m: FAVOR+ features of the mass estimator, one W for all heads "
				  "[harness]",
	},
};

struct sea_config {
	int wb;			/* keys per bin */
	int nsel;		/* bins per row */
	int f;			/* features */
};

static void sea_config(const struct attn_problem *p, struct sea_config *c)
{
	double values[SEA_N_PARAMS];

	for (int i = 0; i < SEA_N_PARAMS; i++)
		values[i] = p->params ? p->params[i] : sea_params[i].def;
	c->wb = (int)values[SEA_BIN];
	c->nsel = (int)values[SEA_SELECT];
	c->f = (int)values[SEA_FEATURES];
}

static int sea_bins(const struct attn_problem *p, const struct sea_config *c)
{
	return (int)(((long)p->m + c->wb - 1) / c->wb);
}

/* What the feature maps read: W with d^(-1/4) folded in, m^(-1/2), 1/(2√d). */
struct sea_map {
	const float *w;
	int f, d;
	float ratio, half_inv_sqrt_d;
};

/* proj (rows x f) = p(x) for `rows` rows of x. */
static void sea_project(const struct sea_map *sm, const float *x, int rows, float *proj)
{
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, sm->f, sm->d, 1.0f, x, sm->d,
		    sm->w, sm->d, 0.0f, proj, sm->f);
}

/* p -> m^(-1/2) (exp(p - shift - h(x)) + eps) along one row, in place. */
static void sea_finish_row(const struct sea_map *sm, const float *x, float *phi, float shift)
{
	float h = dot(x, x, sm->d) * sm->half_inv_sqrt_d;

	for (int r = 0; r < sm->f; r++)
		phi[r] = sm->ratio * (expf(phi[r] - shift - h) + (float)SEA_EPS);
}

static void sea_query_features(const struct sea_map *sm, const float *x, int rows, float *phi)
{
	sea_project(sm, x, rows, phi);
	for (int i = 0; i < rows; i++) {
		float *row = phi + (size_t)i * sm->f, max = row[0];

		for (int r = 1; r < sm->f; r++)
			max = fmaxf(max, row[r]);
		sea_finish_row(sm, x + (size_t)i * sm->d, row, max);
	}
}

static void sea_key_features(const struct sea_map *sm, const float *x, int rows, float shift,
			     float *phi)
{
	sea_project(sm, x, rows, phi);
	for (int i = 0; i < rows; i++)
		sea_finish_row(sm, x + (size_t)i * sm->d, phi + (size_t)i * sm->f, shift);
}

/* acc (f) += the `rows` rows of phi. */
static void add_rows(float *acc, const float *phi, int rows, int f)
{
	for (int i = 0; i < rows; i++)
		for (int r = 0; r < f; r++)
			acc[r] += phi[(size_t)i * f + r];
}

/* Floats (or ints) of each piece of one thread's workspace. */
struct sea_layout {
	size_t phiq, est, phik, run, scores, heap_val, heap_idx, spans, mark, total;
};

static void sea_layout(struct sea_layout *l, const struct attn_problem *p,
		       const struct sea_config *c)
{
	long bins = sea_bins(p, c), k = c->nsel < bins ? c->nsel : bins;
	long keys = (long)c->nsel * c->wb < p->m ? (long)c->nsel * c->wb : p->m;
	size_t at = 0;

	l->phiq = at;
	at += (size_t)SEA_TILE * c->f;
	l->est = at;
	at += (size_t)SEA_TILE * bins;
	l->phik = at;
	at += (size_t)SEA_TILE * c->f;
	l->run = at;
	at += c->f;
	l->scores = at;
	at += keys;
	l->heap_val = at;
	at += k;
	l->heap_idx = at;	/* ints */
	at += k;
	l->spans = at;		/* ints: lo, hi of at most k runs */
	at += 2 * k;
	l->mark = at;		/* bytes, one per bin */
	at += (bins + sizeof(float) - 1) / sizeof(float);
	l->total = (at + 15) & ~(size_t)15;	/* 64-byte slots */
}

/* Is (va, ia) a worse choice than (vb, ib)? Smaller estimate; on a tie the larger bin. */
static inline bool worse(float va, int ia, float vb, int ib)
{
	return va < vb || (va == vb && ia > ib);
}

/* Restores the heap (worst at the top) below position at. */
static void heap_down(float *val, int *idx, int k, int at)
{
	for (;;) {
		int l = 2 * at + 1, r = l + 1, w = at, ti;
		float tv;

		if (l < k && worse(val[l], idx[l], val[w], idx[w]))
			w = l;
		if (r < k && worse(val[r], idx[r], val[w], idx[w]))
			w = r;
		if (w == at)
			return;
		tv = val[at];
		ti = idx[at];
		val[at] = val[w];
		idx[at] = idx[w];
		val[w] = tv;
		idx[w] = ti;
		at = w;
	}
}

/*
 * Marks in mark[] the k of est[0..cand) with the largest values, ties to the smaller
 * index (a NaN counts as -inf), using a heap of k entries.
 */
static void select_bins(const float *est, int cand, int k, float *val, int *idx,
			unsigned char *mark)
{
	if (k >= cand) {
		memset(mark, 1, (size_t)cand);
		return;
	}
	for (int c = 0; c < k; c++) {
		val[c] = isnan(est[c]) ? -INFINITY : est[c];
		idx[c] = c;
	}
	for (int at = k / 2 - 1; at >= 0; at--)
		heap_down(val, idx, k, at);
	for (int c = k; c < cand; c++) {
		float x = isnan(est[c]) ? -INFINITY : est[c];

		/* bins come in ascending order: a tie keeps the earlier one */
		if (x > val[0]) {
			val[0] = x;
			idx[0] = c;
			heap_down(val, idx, k, 0);
		}
	}
	for (int c = 0; c < k; c++)
		mark[idx[c]] = 1;
}

/*
 * Row i: exact softmax over the keys of the marked bins among the first cand (clearing
 * the marks), keys below `end` only (i + 1 in cs, M otherwise). q is the row, k and v
 * its KV slice; spans and s are scratch.
 */
static void attend_bins(const float *q, const float *k, const float *v, int d, int wb,
			int cand, int end, unsigned char *mark, int *spans, float *s,
			float *out)
{
	/* log2(e)/sqrt(d): scores in base 2 for exp2 */
	float scale = (float)(1.4426950408889634 / sqrt((double)d)), max, sum;
	int runs = 0, keys = 0;

	for (int c = 0; c < cand; c++) {
		int lo, hi;

		if (!mark[c])
			continue;
		mark[c] = 0;
		lo = (int)((long)c * wb);
		hi = (int)((long)lo + wb < end ? (long)lo + wb : end);
		if (runs && spans[2 * runs - 1] == lo)
			spans[2 * runs - 1] = hi;
		else {
			spans[2 * runs] = lo;
			spans[2 * runs + 1] = hi;
			runs++;
		}
	}
	for (int r = 0; r < runs; r++) {
		int lo = spans[2 * r], len = spans[2 * r + 1] - lo;

		cblas_sgemv(CblasRowMajor, CblasNoTrans, len, d, scale, k + (size_t)lo * d, d, q,
			    1, 0.0f, s + keys, 1);
		keys += len;
	}
	max = row_max(s, keys);
	sum = exp2_shifted_sum(s, keys, max);
	memset(out, 0, sizeof(float) * d);
	keys = 0;
	for (int r = 0; r < runs; r++) {
		int lo = spans[2 * r], len = spans[2 * r + 1] - lo;

		cblas_sgemv(CblasRowMajor, CblasTrans, len, d, 1.0f, v + (size_t)lo * d, d,
			    s + keys, 1, 1.0f, out, 1);
		keys += len;
	}
	for (int c = 0; c < d; c++)
		out[c] /= sum;
}

/* Everything one forward() shares between its phases. */
struct sea_work {
	const struct attn_problem *p;
	struct sea_config c;
	struct sea_layout lay;
	struct sea_map map;
	bool causal;
	int bins;
	float *masses;		/* [batch][kv_heads][bins][f]: S_c */
	float *shifts;		/* [batch][kv_heads]: K of the key features */
	float *ws;		/* [threads][lay.total] */
};


/* S_c of bins [c0, c1) of one KV slice (keys k) into mass, by chunks of keys into phi. */
static void bin_masses(const struct sea_work *w, const float *k, float shift, int c0, int c1,
		       float *mass, float *phi)
{
	const struct attn_problem *p = w->p;
	int f = w->c.f, wb = w->c.wb;
	long lo = (long)c0 * wb, hi = (long)c1 * wb < p->m ? (long)c1 * wb : p->m;

	memset(mass, 0, sizeof(float) * (size_t)(c1 - c0) * f);
	for (long r0 = lo; r0 < hi; r0 += SEA_TILE) {
		int rows = (int)(hi - r0 < SEA_TILE ? hi - r0 : SEA_TILE);

		sea_key_features(&w->map, k + (size_t)r0 * p->d, rows, shift, phi);
		for (int i = 0; i < rows; i++)
			add_rows(mass + (size_t)((r0 + i) / wb - c0) * f, phi + (size_t)i * f, 1,
				 f);
	}
}

/*
 * Query rows [i0, i0 + SEA_TILE) of slice (b, h), or up to n: estimates, selection and
 * the softmax over the chosen bins, into out. ws is this thread's workspace.
 */
static void sea_tile(const struct sea_work *w, const float *q, const float *k, const float *v,
		     float *out, int b, int h, int i0, float *ws)
{
	const struct attn_problem *p = w->p;
	const struct sea_layout *lay = &w->lay;
	int d = p->d, f = w->c.f, wb = w->c.wb;
	int rows = p->n - i0 < SEA_TILE ? p->n - i0 : SEA_TILE, i1 = i0 + rows;
	int kvs = b * p->kv_heads + h / (p->heads / p->kv_heads);
	size_t qo = problem_q_offset(p, b, h) + (size_t)i0 * d, kvo = problem_kv_offset(p, b, h);
	const float *mass = w->masses + (size_t)kvs * w->bins * f;
	const float *ks = k + kvo, *vs = v + kvo;
	int ncol = w->causal ? (i1 - 1) / wb + 1 : w->bins;
	float *phiq = ws + lay->phiq, *est = ws + lay->est;
	float *phik = ws + lay->phik, *run = ws + lay->run;
	unsigned char *mark = (unsigned char *)(ws + lay->mark);

	sea_query_features(&w->map, q + qo, rows, phiq);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, ncol, f, 1.0f, phiq, f, mass,
		    f, 0.0f, est, ncol);
	if (w->causal) {
		/* i's own bin: its keys up to i only; start from those before the tile */
		long first = (long)(i0 / wb) * wb;

		memset(run, 0, sizeof(float) * f);
		for (long r0 = first; r0 < i0; r0 += SEA_TILE) {
			int n0 = (int)(i0 - r0 < SEA_TILE ? i0 - r0 : SEA_TILE);

			sea_key_features(&w->map, ks + (size_t)r0 * d, n0, 0, phik);
			add_rows(run, phik, n0, f);
		}
		sea_key_features(&w->map, ks + (size_t)i0 * d, rows, 0, phik);
		for (int r = 0; r < rows; r++) {
			int i = i0 + r;

			if (i % wb == 0)
				memset(run, 0, sizeof(float) * f);
			add_rows(run, phik + (size_t)r * f, 1, f);
			est[(size_t)r * ncol + i / wb] = dot(phiq + (size_t)r * f, run, f);
		}
	}
	/* the workspace comes uninitialised; attend_bins() clears the marks it read */
	memset(mark, 0, (size_t)ncol);
	for (int r = 0; r < rows; r++) {
		int i = i0 + r, cand = w->causal ? i / wb + 1 : w->bins;
		int chosen = w->c.nsel < cand ? w->c.nsel : cand;

		select_bins(est + (size_t)r * ncol, cand, chosen, ws + lay->heap_val,
			    (int *)(ws + lay->heap_idx), mark);
		attend_bins(q + qo + (size_t)r * d, ks, vs, d, wb, cand, w->causal ? i + 1 : p->m,
			    mark, (int *)(ws + lay->spans), ws + lay->scores,
			    out + qo + (size_t)r * d);
	}
}

static int sea_forward(const struct attn_problem *p, const float *q, const float *k,
		       const float *v, float *out)
{
	struct sea_work w = { .p = p };
	int kv_slices = p->batch * p->kv_heads, threads = max_threads(), d = p->d;
	int chunks = (p->m + SEA_TILE - 1) / SEA_TILE, tiles = (p->n + SEA_TILE - 1) / SEA_TILE;
	int per_group, groups, saved, ret = -ENOMEM;
	float *wmat, *maxes;
	double *g;

	sea_config(p, &w.c);
	w.causal = p->pattern == ATTN_CS;
	w.bins = sea_bins(p, &w.c);
	sea_layout(&w.lay, p, &w.c);
	/* whole bins of about SEA_TILE keys per unit of the bin-mass pass */
	per_group = w.c.wb < SEA_TILE ? SEA_TILE / w.c.wb : 1;
	groups = (w.bins + per_group - 1) / per_group;

	wmat = attn_alloc((size_t)w.c.f * d * sizeof(float));
	if (!wmat)
		return -ENOMEM;
	g = attn_alloc((size_t)d * d * sizeof(double));
	if (!g)
		goto out_free_w;
	favor_draw(p->seed, SEA_STREAM, w.c.f, d, pow((double)d, -0.25), g, wmat);
	attn_free(g);
	w.masses = attn_alloc((size_t)kv_slices * w.bins * w.c.f * sizeof(float));
	if (!w.masses)
		goto out_free_w;
	maxes = attn_alloc(((size_t)kv_slices * chunks + kv_slices) * sizeof(float));
	if (!maxes)
		goto out_free_masses;
	w.shifts = maxes + (size_t)kv_slices * chunks;
	w.ws = attn_alloc((size_t)threads * w.lay.total * sizeof(float));
	if (!w.ws)
		goto out_free_maxes;
	w.map = (struct sea_map){
		.w = wmat,
		.f = w.c.f,
		.d = d,
		.ratio = (float)(1 / sqrt((double)w.c.f)),
		.half_inv_sqrt_d = (float)(0.5 / sqrt((double)d)),
	};

	saved = blas_serial_begin();
	/* K per KV slice: the max of p over its keys, by chunks; 0 in cs */
	#pragma omp parallel for schedule(static) \
		if (!w.causal && (double)kv_slices * p->m * w.c.f * d >= SEA_PARALLEL_MIN)
	for (int u = 0; u < (w.causal ? 0 : kv_slices * chunks); u++) {
		int s = u / chunks, r0 = u % chunks * SEA_TILE;
		int rows = p->m - r0 < SEA_TILE ? p->m - r0 : SEA_TILE;
		float *proj = w.ws + (size_t)thread_id() * w.lay.total + w.lay.phik;
		float max = -INFINITY;

		sea_project(&w.map, k + ((size_t)s * p->m + r0) * d, rows, proj);
		for (size_t x = 0; x < (size_t)rows * w.c.f; x++)
			max = fmaxf(max, proj[x]);
		maxes[u] = max;
	}
	for (int s = 0; s < kv_slices; s++) {
		w.shifts[s] = w.causal ? 0 : -INFINITY;
		for (int c = 0; !w.causal && c < chunks; c++)
			w.shifts[s] = fmaxf(w.shifts[s], maxes[(size_t)s * chunks + c]);
	}

	/* S_c, once per KV slice, by groups of whole bins */
	#pragma omp parallel for schedule(static) \
		if ((double)kv_slices * p->m * w.c.f * d >= SEA_PARALLEL_MIN)
	for (int u = 0; u < kv_slices * groups; u++) {
		int s = u / groups, c0 = u % groups * per_group;
		int c1 = c0 + per_group < w.bins ? c0 + per_group : w.bins;
		float *phi = w.ws + (size_t)thread_id() * w.lay.total + w.lay.phik;

		bin_masses(&w, k + (size_t)s * p->m * d, w.shifts[s], c0, c1,
			   w.masses + ((size_t)s * w.bins + c0) * w.c.f, phi);
	}

	/* every tile of query rows of every (batch, head) */
	#pragma omp parallel for schedule(dynamic, 1)
	for (int u = 0; u < p->batch * p->heads * tiles; u++) {
		int sl = u / tiles;

		sea_tile(&w, q, k, v, out, sl / p->heads, sl % p->heads, u % tiles * SEA_TILE,
			 w.ws + (size_t)thread_id() * w.lay.total);
	}
	blas_serial_end(saved);
	ret = 0;

	attn_free(w.ws);
out_free_maxes:
	attn_free(maxes);
out_free_masses:
	attn_free(w.masses);
out_free_w:
	attn_free(wmat);
	return ret;
}

/*
 * The products it keeps, per KV slice: key projections 2 M m d (twice outside cs, for
 * the max) and the bin sums M m; per query slice: query projections 2 N m d, estimates
 * 2 m per (row, estimated bin) (cs: the bins up to the tile's last row, plus the own-bin
 * key features 2 m d per key fed to it and a dot of 2 m per row); attention 4 d per
 * (row, key of a chosen bin), counted as n_sel w_b when fewer bins are chosen than there
 * are candidates (an upper bound: the last bin may be short, the own bin cut at i).
 */
static double sea_flops(const struct attn_problem *p)
{
	struct sea_config c;
	double f, d = p->d, keys, rows = 0, kv;
	long bins;

	sea_config(p, &c);
	f = c.f;
	bins = sea_bins(p, &c);
	kv = (double)p->m * (2 * f * d * (p->pattern == ATTN_CS ? 1 : 2) + f);
	rows = 2 * (double)p->n * f * d;
	if (p->pattern != ATTN_CS) {
		keys = c.nsel < bins ? (double)c.nsel * c.wb : p->m;
		rows += (double)p->n * (2 * f * bins + 4 * d * keys);
	} else {
		for (int i0 = 0; i0 < p->n; i0 += SEA_TILE) {
			int i1 = p->n - i0 < SEA_TILE ? p->n : i0 + SEA_TILE;
			double fed = i1 - (long)(i0 / c.wb) * c.wb;

			rows += 2.0 * (i1 - i0) * f * ((i1 - 1) / c.wb + 1);
			rows += 2 * f * d * fed;
			for (int i = i0; i < i1; i++) {
				long cand = i / c.wb + 1;

				keys = c.nsel < cand ? (double)c.nsel * c.wb : i + 1;
				rows += 2 * f + 4 * d * keys;
			}
		}
	}
	return (double)p->batch * (p->kv_heads * kv + p->heads * rows);
}

/*
 * Every key and value (any bin may be chosen: the KV cache of exact attention) and the
 * bin masses, C x m floats per KV head: kv_cache_bytes(p, m) + batch kv_heads C m 4.
 */
static double sea_state_bytes(const struct attn_problem *p)
{
	struct sea_config c;

	sea_config(p, &c);
	return kv_cache_bytes(p, p->m) +
	       (double)p->batch * p->kv_heads * sea_bins(p, &c) * c.f * sizeof(float);
}

const struct variant_ops sea_variant = {
	.name		= "sea",
	.family		= "sparse",
	.summary	= "SEA: FAVOR+ estimate of key-bin masses [harness estimator], top n_sel "
			  "bins per row, exact softmax over their keys",
	.citation	= "Lee et al. 2024, SEA: Sparse Linear Attention with Estimated "
			  "Attention Mask, ICLR (arXiv 2310.01777)",
	.patterns	= PATTERNS_ALL,
	.extensions	= PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_NC) | PATTERN_BIT(ATTN_CC),
	.flags		= 0,
	.params		= sea_params,
	.n_params	= SEA_N_PARAMS,
	.forward	= sea_forward,
	.flops		= sea_flops,
	.state_bytes	= sea_state_bytes,
};
