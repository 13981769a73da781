/*
 * cca.c - Core Context Aware attention (Chen et al. 2024, arXiv 2412.12465; ICML 2025),
 * VARIANTS.md section 29: each group of g keys is pooled into one "core" key and value,
 * weighted by the group's last query; a row attends exact local keys plus the cores of
 * the groups outside its local range, under one softmax.
 *
 * Per (b, h) slice, σ = 1/sqrt(d), groups c = [cg, cg + g):
 *	ω_j = softmax_{j in c}(σ q_last·k_j),	q_last = the query of the group's last row
 *	k̂_c = Σ_j ω_j k_j,	v̂_c = Σ_j ω_j v_j
 *	o_i = softmax over {σ q_i·k_j : j local} ∪ {σ q_i·k̂_c : c a core of i}, applied to
 *	      the matching v_j and v̂_c.
 *
 * cs (native): only complete groups make cores. Row i's local keys are
 *	j in [i - ((i+1) mod g) - w + 1, i] (clipped at 0),
 * and its cores c <= floor((i - g + 1 - w) / g) (none if negative): exactly the groups that
 * end before the local range, so no key is counted twice. Every core a row sees ends
 * before it, and so does its q_last: the pass is causal. w must be a multiple of g
 * (supports() gives -EINVAL otherwise), which keeps the local range group-aligned.
 *
 * ns [harness]: row i's local keys are |i - j| <= w (clipped to the sequence); its cores
 * are the groups wholly outside that range: group c, keys cg .. e_c with
 * e_c = min(cg + g, N) - 1, is a core of row i iff e_c < i - w (it ends before the window)
 * or cg > i + w (it starts after it). A group the window cuts is neither: its keys
 * outside the window (up to g - 1 on each side) are not seen by the row in any form. The
 * last group may be short (N not a multiple of g); it still makes a core, pooled over its
 * N - cg keys by its own last query, row N - 1, so that rows far from the end see the
 * tail of the sequence. g = 1 or w >= N is vanilla attention in both patterns.
 *
 * Not exact, and not mask-exact: a core mixes several keys (the pattern matrix lists cca
 * among the mask-exact rows, its own section says "Exact: no"; the section is followed).
 *
 * Work O(N (w + N/g) d) per slice. The cores depend on the query head (through q_last), so
 * they are made once per query head, in parallel over (b, h, group), by dot loops: O(N d).
 * Then work items (b, h, tile of CCA_TILE rows) score their rows against the cores the
 * tile's rows can see and the union of their local ranges, with cblas_sgemm (held
 * single-threaded inside our OpenMP region); each row's softmax masks the columns that
 * row cannot see, and two or three more sgemm calls give the outputs. The score scratch
 * of a thread is CCA_TILE x (cores + local span): no N x M matrix exists. Scores are kept
 * in base 2 (Q scaled by log2(e)/sqrt(d)) for exp2, as flash does.
 *
 * Incremental decoding (cs) keeps a ring of the last max(w + g - 1, g) keys and values per
 * KV head (a row's local range, and a whole group to pool) and the cores of the complete
 * groups some row will see, per query head; a core is made when its group's last
 * position arrives, from that position's query, with the forward pass's own pooling code.
 */
#include "variant.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "kv-cache.h"
#include "memory.h"
#include "threads.h"
#include "vexp.h"

/* The catalogue's defaults [unverified: the paper's repository holds only a README]. */
#define CCA_GROUP_DEFAULT 16
#define CCA_WINDOW_DEFAULT 1024

/*
 * Query rows per work item: the score scratch (CCA_TILE x (cores + w + CCA_TILE + g))
 * stays a few hundred KiB at the defaults, and the products are wide enough for sgemm.
 */
#define CCA_TILE 64

enum cca_param {
	CCA_GROUP,
	CCA_WINDOW,
	CCA_PARAM_COUNT,
};

static const struct variant_param cca_params[] = {
	[CCA_GROUP] = {
		.name		= "group",
		.def		= CCA_GROUP_DEFAULT,
		.min		= 1,
		.max		= 1048576,
		.integer	= true,
		.help		= "g, keys pooled into one core (default 16 [unverified])",
	},
	[CCA_WINDOW] = {
		.name		= "window",
		.def		= CCA_WINDOW_DEFAULT,
		.min		= 0,
		.max		= 1048576,
		.integer	= true,
		.help		= "w, a multiple of g: cs local keys i-((i+1) mod g)-w+1..i; "
				  "ns [harness] |i-j| <= w (default 1024 [unverified])",
	},
};

struct cca_config {
	long g, w;
};

static void cca_config(const struct attn_problem *p, struct cca_config *c)
{
	c->g = p->params ? (long)p->params[CCA_GROUP] : CCA_GROUP_DEFAULT;
	c->w = p->params ? (long)p->params[CCA_WINDOW] : CCA_WINDOW_DEFAULT;
}

/* ---- which keys and cores a row sees ---- */

/* cs: first local key of row i. */
static long cs_local_lo(const struct cca_config *c, long i)
{
	long lo = i - (i + 1) % c->g - c->w + 1;

	return lo > 0 ? lo : 0;
}

/* cs: cores row i sees, 0 .. floor((i - g + 1 - w) / g), as a count. */
static long cs_cores_seen(const struct cca_config *c, long i)
{
	return i + 1 - c->w > 0 ? (i + 1 - c->w) / c->g : 0;
}

/* ns: groups in the sequence, the last possibly short. */
static long ns_groups(const struct cca_config *c, long n)
{
	return (n + c->g - 1) / c->g;
}

/* ns: groups 0 .. this - 1 end before row i's window (e_c < i - w). */
static long ns_cores_before(const struct cca_config *c, long i)
{
	return i - c->w > 0 ? (i - c->w) / c->g : 0;
}

/* ns: groups this .. groups - 1 start after row i's window (cg > i + w). */
static long ns_cores_after(const struct cca_config *c, long n, long i)
{
	long first = (i + c->w) / c->g + 1, groups = ns_groups(c, n);

	return first < groups ? first : groups;
}

/*
 * Cores a forward pass makes per query head: cs the complete groups some row sees (those
 * row N - 1 sees); ns every group, or none when no row sees one (then neither row 0 nor
 * row N - 1 does, and every other row sees fewer).
 */
static long cca_cores(const struct attn_problem *p, const struct cca_config *c)
{
	long n = p->n;

	if (p->pattern == ATTN_CS)
		return cs_cores_seen(c, n - 1);
	if (ns_cores_before(c, n - 1) > 0 || ns_cores_after(c, n, 0) < ns_groups(c, n))
		return ns_groups(c, n);
	return 0;
}

/* Keys a cs decoder keeps per KV head: a row's local range, and a whole group to pool. */
static long cs_ring(const struct cca_config *c, long n)
{
	long ring = c->w + c->g - 1 > c->g ? c->w + c->g - 1 : c->g;

	return ring < n ? ring : n;
}

/* Self patterns only; w must be a multiple of g (the cs local range is group-aligned). */
static int cca_supports(const struct attn_problem *p)
{
	struct cca_config c;

	if (!pattern_is_self(p->pattern))
		return -ENOTSUP;
	cca_config(p, &c);
	if (c.g < 1 || c.w < 0 || c.w % c.g)
		return -EINVAL;
	return 0;
}

/* ---- pooling ---- */

/*
 * khat, vhat = the keys and values of `count` consecutive positions pooled by
 * softmax_j(σ q_last·k_j). Position `first` is in slot first % ring of k and v (a forward
 * pass passes ring >= its length, a decoder its ring); w is scratch of count floats.
 * qscale = log2(e)/sqrt(d), so the weights are exp2 of base-2 scores.
 */
static void cca_pool(const float *q_last, const float *k, const float *v, int d, long first,
		     long count, long ring, float qscale, float *w, float *khat, float *vhat)
{
	long slot = first % ring;
	float max, inv;

	for (long j = 0; j < count; j++) {
		w[j] = qscale * dot(q_last, k + (size_t)slot * d, d);
		slot = slot + 1 == ring ? 0 : slot + 1;
	}
	max = row_max(w, (int)count);
	inv = 1.0f / exp2_shifted_sum(w, (int)count, max);
	for (int c = 0; c < d; c++)
		khat[c] = vhat[c] = 0;
	slot = first % ring;
	for (long j = 0; j < count; j++) {
		const float *kj = k + (size_t)slot * d, *vj = v + (size_t)slot * d;
		float a = w[j] * inv;

		for (int c = 0; c < d; c++) {
			khat[c] += a * kj[c];
			vhat[c] += a * vj[c];
		}
		slot = slot + 1 == ring ? 0 : slot + 1;
	}
}

/* ---- forward ---- */

/*
 * What one tile of rows i0 .. i1 - 1 scores: up to two runs of cores (core indices
 * [core_lo, core_hi), in columns from 0 on, one after the other) and the local keys
 * [lo, hi), in the columns after the cores.
 */
struct cca_tile {
	long i0, i1;
	int runs;
	long core_lo[2], core_hi[2];
	long core_cols;		/* columns of the cores: both runs */
	long lo, hi;
};

static void cca_tile_bounds(const struct attn_problem *p, const struct cca_config *c,
			    long cores, long i0, long i1, struct cca_tile *t)
{
	t->i0 = i0;
	t->i1 = i1;
	t->runs = 0;
	t->core_cols = 0;
	if (p->pattern == ATTN_CS) {
		/* both ends of a row's range only grow with i */
		long seen = cs_cores_seen(c, i1 - 1);

		if (seen > 0) {
			t->core_lo[0] = 0;
			t->core_hi[0] = seen;
			t->runs = 1;
		}
		t->lo = cs_local_lo(c, i0);
		t->hi = i1;
	} else {
		if (cores > 0) {
			long before = ns_cores_before(c, i1 - 1);
			long after = ns_cores_after(c, p->n, i0);

			/* rows' windows overlap no group of the middle: two runs, else all */
			if (before < after) {
				t->core_lo[t->runs] = 0;
				t->core_hi[t->runs++] = before;
				t->core_lo[t->runs] = after;
				t->core_hi[t->runs++] = cores;
			} else {
				t->core_lo[t->runs] = 0;
				t->core_hi[t->runs++] = cores;
			}
		}
		t->lo = i0 - c->w > 0 ? i0 - c->w : 0;
		t->hi = i1 + c->w < p->n ? i1 + c->w : p->n;
	}
	for (int r = 0; r < t->runs; r++)
		t->core_cols += t->core_hi[r] - t->core_lo[r];
}

/* Column of core `core` of the tile (it lies in one of its runs). */
static long tile_core_column(const struct cca_tile *t, long core)
{
	long col = 0;

	for (int r = 0; r < t->runs; r++) {
		if (core < t->core_hi[r])
			return col + core - t->core_lo[r];
		col += t->core_hi[r] - t->core_lo[r];
	}
	return col;
}

/*
 * The columns of the tile's score row that row i sees, ascending and disjoint: at most
 * two runs of cores and the local keys. Returns how many runs it wrote to lo, hi.
 */
static int cca_row_columns(const struct attn_problem *p, const struct cca_config *c,
			   const struct cca_tile *t, long cores, long i, long *lo, long *hi)
{
	int count = 0;
	long a, b;

	if (p->pattern == ATTN_CS) {
		a = cs_cores_seen(c, i);
		if (a > 0) {
			lo[count] = 0;
			hi[count++] = a;
		}
		a = cs_local_lo(c, i);
		b = i + 1;
	} else {
		if (cores > 0) {
			a = ns_cores_before(c, i);
			b = ns_cores_after(c, p->n, i);
			if (a > 0) {
				lo[count] = 0;
				hi[count++] = a;
			}
			if (b < cores) {
				lo[count] = tile_core_column(t, b);
				hi[count++] = tile_core_column(t, cores - 1) + 1;
			}
		}
		a = i - c->w > 0 ? i - c->w : 0;
		b = i + c->w + 1 < p->n ? i + c->w + 1 : p->n;
	}
	/* cs with w = 0: a group's last row has no local key, only cores (its own too) */
	if (a < b) {
		lo[count] = t->core_cols + a - t->lo;
		hi[count++] = t->core_cols + b - t->lo;
	}
	return count;
}

/*
 * Turns a score row (base 2) into unnormalised weights over the runs [lo, hi) it sees,
 * every other column exactly 0; returns their sum (0 for a row that sees nothing).
 */
static float cca_row_weights(float *s, long cols, const long *lo, const long *hi, int runs)
{
	float max = -INFINITY, sum = 0;
	long at = 0;

	for (int r = 0; r < runs; r++)
		max = fmaxf(max, row_max(s + lo[r], (int)(hi[r] - lo[r])));
	if (max == -INFINITY) {
		memset(s, 0, sizeof(float) * cols);
		return 0;
	}
	for (int r = 0; r < runs; r++) {
		memset(s + at, 0, sizeof(float) * (lo[r] - at));
		sum += exp2_shifted_sum(s + lo[r], (int)(hi[r] - lo[r]), max);
		at = hi[r];
	}
	memset(s + at, 0, sizeof(float) * (cols - at));
	return sum;
}

/* Everything one forward() holds. */
struct cca_work {
	const struct attn_problem *p;
	struct cca_config c;
	float qscale;		/* log2(e)/sqrt(d) */
	long cores;		/* per query head */
	long tiles;		/* per slice */
	long ld;		/* score row stride: the widest tile */
	long pool_len;		/* floats of pooling scratch per thread */
	float *khat, *vhat;	/* [batch][heads][cores][d] */
	float *scores;		/* [threads][CCA_TILE][ld] */
	float *pool;		/* [threads][pool_len] */
	float *sums;		/* [threads][CCA_TILE] */
};

static void cca_work_release(struct cca_work *ws)
{
	attn_free(ws->khat);
	attn_free(ws->vhat);
	attn_free(ws->scores);
	attn_free(ws->pool);
	attn_free(ws->sums);
}

static int cca_work_init(struct cca_work *ws, const struct attn_problem *p)
{
	size_t slices = (size_t)p->batch * p->heads;
	int threads = max_threads();

	*ws = (struct cca_work){ .p = p };
	cca_config(p, &ws->c);
	ws->qscale = (float)(1.4426950408889634 / sqrt((double)p->d));
	ws->cores = cca_cores(p, &ws->c);
	ws->tiles = (p->n + CCA_TILE - 1) / CCA_TILE;
	ws->ld = 1;
	for (long x = 0; x < ws->tiles; x++) {
		long i0 = x * CCA_TILE, i1 = i0 + CCA_TILE < p->n ? i0 + CCA_TILE : p->n;
		struct cca_tile t;

		cca_tile_bounds(p, &ws->c, ws->cores, i0, i1, &t);
		if (t.core_cols + t.hi - t.lo > ws->ld)
			ws->ld = t.core_cols + t.hi - t.lo;
	}
	ws->pool_len = ws->c.g < p->n ? ws->c.g : p->n;
	ws->khat = attn_alloc((slices * ws->cores * p->d + 1) * sizeof(float));
	ws->vhat = attn_alloc((slices * ws->cores * p->d + 1) * sizeof(float));
	ws->scores = attn_alloc((size_t)threads * CCA_TILE * ws->ld * sizeof(float));
	ws->pool = attn_alloc((size_t)threads * ws->pool_len * sizeof(float));
	ws->sums = attn_alloc((size_t)threads * CCA_TILE * sizeof(float));
	if (!ws->khat || !ws->vhat || !ws->scores || !ws->pool || !ws->sums) {
		cca_work_release(ws);
		return -ENOMEM;
	}
	return 0;
}

/* Core `core` of slice (b, h): its group's keys pooled by the group's last query. */
static void cca_make_core(struct cca_work *ws, const float *q, const float *k, const float *v,
			  int b, int h, long core, float *scratch)
{
	const struct attn_problem *p = ws->p;
	long first = core * ws->c.g, end = first + ws->c.g < p->n ? first + ws->c.g : p->n;
	size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);
	size_t at = (((size_t)b * p->heads + h) * ws->cores + core) * p->d;

	cca_pool(q + qo + (size_t)(end - 1) * p->d, k + kvo, v + kvo, p->d, first,
		 end - first, p->n, ws->qscale, scratch, ws->khat + at, ws->vhat + at);
}

/* Rows t->i0 .. t->i1 - 1 of slice (b, h): scores, per-row weights, outputs. */
static void cca_tile_rows(struct cca_work *ws, const float *q, const float *k, const float *v,
			  float *out, int b, int h, const struct cca_tile *t, float *s,
			  float *sums)
{
	const struct attn_problem *p = ws->p;
	size_t qo = problem_q_offset(p, b, h) + (size_t)t->i0 * p->d;
	size_t kvo = problem_kv_offset(p, b, h);
	size_t co = ((size_t)b * p->heads + h) * ws->cores * p->d;
	int rows = (int)(t->i1 - t->i0), d = p->d, span = (int)(t->hi - t->lo);
	int ld = (int)ws->ld, cols = (int)(t->core_cols + span);
	float beta = 0.0f;
	long col = 0;

	for (int r = 0; r < t->runs; r++) {
		int run = (int)(t->core_hi[r] - t->core_lo[r]);

		if (run > 0)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, run, d,
				    ws->qscale, q + qo, d,
				    ws->khat + co + (size_t)t->core_lo[r] * d, d, 0.0f, s + col,
				    ld);
		col += run;
	}
	if (span > 0)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, span, d, ws->qscale,
			    q + qo, d, k + kvo + (size_t)t->lo * d, d, 0.0f, s + col, ld);
	for (int r = 0; r < rows; r++) {
		long lo[3], hi[3];
		int runs = cca_row_columns(p, &ws->c, t, ws->cores, t->i0 + r, lo, hi);

		sums[r] = cca_row_weights(s + (size_t)r * ld, cols, lo, hi, runs);
	}
	/* the first product writes the outputs, the others add to them */
	if (span > 0) {
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, span, 1.0f,
			    s + t->core_cols, ld, v + kvo + (size_t)t->lo * d, d, 0.0f,
			    out + qo, d);
		beta = 1.0f;
	}
	col = 0;
	for (int r = 0; r < t->runs; r++) {
		int run = (int)(t->core_hi[r] - t->core_lo[r]);

		if (run > 0) {
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, run, 1.0f,
				    s + col, ld, ws->vhat + co + (size_t)t->core_lo[r] * d, d,
				    beta, out + qo, d);
			beta = 1.0f;
		}
		col += run;
	}
	/* a tile that sees nothing at all cannot occur (each row sees a key or a core) */
	if (beta == 0.0f)
		memset(out + qo, 0, sizeof(float) * rows * d);
	for (int r = 0; r < rows; r++) {
		float by = sums[r] > 0 ? 1.0f / sums[r] : 0.0f;
		float *o = out + qo + (size_t)r * d;

		for (int c = 0; c < d; c++)
			o[c] *= by;
	}
}

static int cca_forward(const struct attn_problem *p, const float *q, const float *k,
		       const float *v, float *out)
{
	long slices = (long)p->batch * p->heads;
	struct cca_work ws;
	int saved, ret;

	ret = cca_supports(p);
	if (ret)
		return ret;
	ret = cca_work_init(&ws, p);
	if (ret)
		return ret;

	saved = blas_serial_begin();
	#pragma omp parallel
	{
		float *pool = ws.pool + (size_t)thread_id() * ws.pool_len;
		float *s = ws.scores + (size_t)thread_id() * CCA_TILE * ws.ld;
		float *sums = ws.sums + (size_t)thread_id() * CCA_TILE;

		#pragma omp for schedule(static)
		for (long x = 0; x < slices * ws.cores; x++) {
			long slice = x / ws.cores;

			cca_make_core(&ws, q, k, v, (int)(slice / p->heads),
				      (int)(slice % p->heads), x % ws.cores, pool);
		}
		/* Dynamic: cs tiles differ in work; the last (largest) tiles go first. */
		#pragma omp for schedule(dynamic, 1)
		for (long x = 0; x < slices * ws.tiles; x++) {
			long slice = x / ws.tiles, tile = ws.tiles - 1 - x % ws.tiles;
			long i0 = tile * CCA_TILE, i1 = i0 + CCA_TILE < p->n ? i0 + CCA_TILE : p->n;
			struct cca_tile t;

			cca_tile_bounds(p, &ws.c, ws.cores, i0, i1, &t);
			cca_tile_rows(&ws, q, k, v, out, (int)(slice / p->heads),
				      (int)(slice % p->heads), &t, s, sums);
		}
	}
	blas_serial_end(saved);
	cca_work_release(&ws);
	return 0;
}

/*
 * Per slice: pooling, 6 d per pooled key (its score, and its share of k̂ and v̂), for
 * the cores made; then 4 d per (row, local key or core it sees).
 */
static double cca_flops(const struct attn_problem *p)
{
	struct cca_config c;
	double pooled = 0, pairs = 0;
	long cores;

	cca_config(p, &c);
	if (c.g < 1 || c.w < 0)
		return 0;
	cores = cca_cores(p, &c);
	for (long x = 0; x < cores; x++)
		pooled += (x + 1) * c.g < p->n ? c.g : p->n - x * c.g;
	for (long i = 0; i < p->n; i++) {
		if (p->pattern == ATTN_CS) {
			pairs += cs_cores_seen(&c, i) + i + 1 - cs_local_lo(&c, i);
		} else {
			long lo = i - c.w > 0 ? i - c.w : 0;
			long hi = i + c.w + 1 < p->n ? i + c.w + 1 : p->n;

			pairs += hi - lo;
			if (cores > 0)
				pairs += ns_cores_before(&c, i) + cores -
					 ns_cores_after(&c, p->n, i);
		}
	}
	return (double)p->batch * p->heads * p->d * (6.0 * pooled + 4.0 * pairs);
}

/*
 * Bytes the method keeps, float32: the local keys and values per KV head (cs: the
 * decoder's ring, max(w + g - 1, g) positions; ns: 2w + 1; at most N), plus per query
 * head the k̂ and v̂ of the cores a forward pass makes (cca_cores()).
 */
static double cca_state_bytes(const struct attn_problem *p)
{
	struct cca_config c;
	long positions;

	cca_config(p, &c);
	if (p->pattern == ATTN_CS)
		positions = cs_ring(&c, p->n);
	else
		positions = 2 * c.w + 1 < p->n ? 2 * c.w + 1 : p->n;
	return kv_cache_bytes(p, positions) +
	       2.0 * p->batch * p->heads * cca_cores(p, &c) * p->d * sizeof(float);
}

/* ---- incremental decoding (cs) ---- */

/*
 * Below this many multiply-adds per step (slices x (cores + local keys) x d) a parallel
 * region costs more than it saves.
 */
#define CCA_DECODE_PARALLEL_MIN 32768

/* Position j lives in slot j % ring of the cache until j + ring replaces it. */
struct cca_decode {
	struct attn_problem p;	/* n = m = capacity in positions */
	double params[CCA_PARAM_COUNT];	/* p.params points here */
	struct cca_config c;
	float qscale;
	long ring;		/* slots per KV head */
	long cores;		/* cores kept per query head: those some row sees */
	long len;		/* positions fed so far */
	int threads;
	long s_len;		/* scratch floats per thread: cores + ring */
	struct kv_cache cache;
	float *khat, *vhat;	/* [batch][heads][cores][d] */
	float *s;		/* [threads][s_len] */
};

static void cca_decode_free(void *state)
{
	struct cca_decode *st = state;

	if (!st)
		return;
	attn_free(st->khat);
	attn_free(st->vhat);
	attn_free(st->s);
	kv_cache_release(&st->cache);
	attn_free(st);
}

static int cca_decode_init(const struct attn_problem *p, void **state)
{
	size_t slices = (size_t)p->batch * p->heads;
	struct cca_decode *st;
	int ret;

	*state = NULL;
	ret = decode_check_problem(p);
	if (ret)
		return ret;
	ret = cca_supports(p);
	if (ret)
		return ret;
	st = attn_calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->p = decode_problem(p);
	st->params[CCA_GROUP] = p->params ? p->params[CCA_GROUP] : CCA_GROUP_DEFAULT;
	st->params[CCA_WINDOW] = p->params ? p->params[CCA_WINDOW] : CCA_WINDOW_DEFAULT;
	st->p.params = st->params;
	cca_config(&st->p, &st->c);
	st->qscale = (float)(1.4426950408889634 / sqrt((double)p->d));
	st->ring = cs_ring(&st->c, p->n);
	st->cores = cca_cores(&st->p, &st->c);
	st->threads = max_threads();
	/* the pooling scratch (g <= ring floats) fits in the same slot */
	st->s_len = st->cores + st->ring;
	ret = kv_cache_init(&st->cache, p, (int)st->ring);
	if (ret)
		goto out_free_state;
	st->khat = attn_alloc((slices * st->cores * p->d + 1) * sizeof(float));
	st->vhat = attn_alloc((slices * st->cores * p->d + 1) * sizeof(float));
	st->s = attn_alloc((size_t)st->threads * st->s_len * sizeof(float));
	if (!st->khat || !st->vhat || !st->s) {
		ret = -ENOMEM;
		goto out_free_state;
	}
	*state = st;
	return 0;

out_free_state:
	cca_decode_free(st);
	return ret;
}

/*
 * Row t of one slice: one softmax over its cores (khat, vhat) and its local positions
 * lo .. t, read from a ring of `ring` slots; s is scratch of cores + ring floats.
 */
static void cca_decode_row(const float *q, const float *khat, const float *vhat, long cores,
			   const float *k, const float *v, long ring, long lo, long t, int d,
			   float qscale, float *s, float *out)
{
	long local = t + 1 - lo, slot = lo % ring, count = cores + local;
	float max, inv;

	for (long c = 0; c < cores; c++)
		s[c] = qscale * dot(q, khat + (size_t)c * d, d);
	for (long j = 0; j < local; j++) {
		s[cores + j] = qscale * dot(q, k + (size_t)slot * d, d);
		slot = slot + 1 == ring ? 0 : slot + 1;
	}
	for (int c = 0; c < d; c++)
		out[c] = 0;
	if (count == 0)
		return;
	max = row_max(s, (int)count);
	inv = 1.0f / exp2_shifted_sum(s, (int)count, max);
	for (long c = 0; c < cores; c++)
		for (int x = 0; x < d; x++)
			out[x] += s[c] * vhat[(size_t)c * d + x];
	slot = lo % ring;
	for (long j = 0; j < local; j++) {
		for (int x = 0; x < d; x++)
			out[x] += s[cores + j] * v[(size_t)slot * d + x];
		slot = slot + 1 == ring ? 0 : slot + 1;
	}
	for (int x = 0; x < d; x++)
		out[x] *= inv;
}

static int cca_decode_step(void *state, const float *q, const float *k, const float *v,
			   float *out)
{
	struct cca_decode *st = state;
	const struct attn_problem *p = &st->p;
	int slices = p->batch * p->heads, d = p->d;
	long t = st->len, lo, seen, core = -1;

	if (t >= p->m)
		return -ENOSPC;
	kv_cache_put(&st->cache, (int)(t % st->ring), k, v);
	st->len++;
	/* t closes group (t + 1) / g - 1; pool it now, while its query is here */
	if ((t + 1) % st->c.g == 0 && (t + 1) / st->c.g - 1 < st->cores)
		core = (t + 1) / st->c.g - 1;
	lo = cs_local_lo(&st->c, t);
	seen = cs_cores_seen(&st->c, t);

	#pragma omp parallel for num_threads(st->threads) schedule(static) \
		if ((double)slices * (seen + t + 1 - lo) * d >= CCA_DECODE_PARALLEL_MIN)
	for (int i = 0; i < slices; i++) {
		int b = i / p->heads, kvh = i % p->heads / (p->heads / p->kv_heads);
		size_t kvo = kv_cache_slice(&st->cache, b * p->kv_heads + kvh);
		size_t co = (size_t)i * st->cores * d;
		float *s = st->s + (size_t)thread_id() * st->s_len;

		if (core >= 0)
			cca_pool(q + (size_t)i * d, st->cache.k + kvo, st->cache.v + kvo, d,
				 core * st->c.g, st->c.g, st->ring, st->qscale, s,
				 st->khat + co + (size_t)core * d,
				 st->vhat + co + (size_t)core * d);
		cca_decode_row(q + (size_t)i * d, st->khat + co, st->vhat + co, seen,
			       st->cache.k + kvo, st->cache.v + kvo, st->ring, lo, t, d,
			       st->qscale, s, out + (size_t)i * d);
	}
	return 0;
}

const struct variant_ops cca_variant = {
	.name		= "cca",
	.family		= "sparse",
	.summary	= "local keys plus one core per far group of g keys (pooled by the "
			  "group's last query), one softmax; ns [harness]",
	.citation	= "Chen et al. 2024, Core Context Aware Transformers for Long Context "
			  "Language Modeling, ICML 2025 (arXiv 2412.12465)",
	.patterns	= PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_CS),
	.extensions	= PATTERN_BIT(ATTN_NS),
	.flags		= 0,
	.params		= cca_params,
	.n_params	= CCA_PARAM_COUNT,
	.supports	= cca_supports,
	.forward	= cca_forward,
	.flops		= cca_flops,
	.state_bytes	= cca_state_bytes,
	.decode_init	= cca_decode_init,
	.decode_step	= cca_decode_step,
	.decode_free	= cca_decode_free,
};
