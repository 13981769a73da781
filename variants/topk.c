/*
 * topk.c - top-k attention: each query attends only its k highest-scoring keys, with a
 * softmax over them (Gupta et al. 2021, "Memory-efficient Transformers via Top-k
 * Attention"; VARIANTS.md section 5).
 *
 * Per (batch, head) slice and query row i, with candidates C_i (cs: keys j <= i; ns, nc,
 * cc: all m keys), s_ij = q_i.k_j / sqrt(d):
 *   T_i = the k largest s_ij over C_i, ties to the smaller j (all of C_i if |C_i| <= k);
 *   o_i = sum over j in T_i of softmax(s_{i,T_i})_j v_j.
 * Selection is per query head (section 31); a row looks at no other row, so cc is safe.
 *
 * Work items are (batch, head, tile of TOPK_BLOCK_Q query rows), shared out dynamically
 * over OpenMP threads. A tile walks its candidate keys (cs: up to its last row) in chunks
 * of TOPK_BLOCK_K: the chunk's scores against the whole tile come from a register-blocked
 * kernel on the transposed query tile (keys x queries; score-tile.h, shared with flash's
 * AVX2 engine), and are at once streamed through a per-row filter that keeps the running
 * best: a row's buffer takes every score above its threshold, and when full it is cut
 * back to the k best by a quickselect, whose k-th value becomes the new threshold. So
 * no score row of length m is ever stored: a thread holds one chunk of scores and, per
 * row, a buffer of at most 2k + 64 entries. At the end each row's buffer is cut to k, and
 * the softmax of the kept scores weights a gather of their value rows.
 *
 * Selection is discontinuous: a score that rounds differently can swap a key in or out.
 * Decoding must give the forward's rows, so every score is computed the same way on both
 * paths: the query scaled by log2(e)/sqrt(d) (base-2 scores for exp2), then one fused
 * multiply-add per dimension, in dimension order, from zero (or, without FMA, one multiply
 * and one add). That is why the scores come from our own kernels and not from sgemm,
 * which does not promise the same rounding for a one-row product as for a tile's row.
 *
 * Incremental decoding (cs) keeps every key (the next query may pick any), keys in panels
 * of 16 positions stored dimension-major so that a step scores 16 keys per vector with
 * the forward's arithmetic, values row-major; each step scores the new query against the
 * cache, selects and attends as a forward row does.
 */
#include "variant.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define TOPK_AVX2 1
#endif

#include "common.h"
#include "memory.h"
#include "score-tile.h"
#include "vexp.h"

#define TOPK_K_DEFAULT 64	/* VARIANTS.md section 5 */

/*
 * Query rows per work item (the catalogue's tile of 64) and keys per scored chunk: a
 * chunk's 96 x 64 scores (24 KiB) and the tile's transposed queries (16 KiB at d = 64)
 * stay in L1/L2 while the filter reads them. 96 is a whole number of the kernel's
 * 6-key blocks.
 */
#define TOPK_BLOCK_Q 64
#define TOPK_BLOCK_K 96

/* Positions per panel of the decode cache: two vectors of eight. */
#define PANEL 16
/* Floats per cache line: every workspace part starts on one. */
#define TOPK_LINE 16

/*
 * A row's buffer holds up to 2k + TOPK_SLACK entries before it is cut back to k: each
 * cut (a quickselect over the buffer) is paid for by at least k + TOPK_SLACK appends.
 */
#define TOPK_SLACK 64

/* Below this many multiply-adds per decode step a parallel region costs more. */
#define TOPK_DECODE_PARALLEL_MIN 32768

enum topk_param {
	TOPK_K,
};

static const struct variant_param topk_params[] = {
	[TOPK_K] = {
		.name		= "k",
		.def		= TOPK_K_DEFAULT,
		.min		= 1,
		.max		= 1048576,
		.integer	= true,
		.help		= "keys each query attends: its k largest scores, ties to the "
				  "smaller key; a row with <= k candidates attends all",
	},
};

static long topk_k(const struct attn_problem *p)
{
	return p->params ? (long)p->params[TOPK_K] : TOPK_K_DEFAULT;
}

static size_t round_up(size_t x, size_t to)
{
	return (x + to - 1) / to * to;
}

/* log2(e)/sqrt(d): scores come out in base 2 for exp2. Both paths scale q by it. */
static float topk_qscale(int d)
{
	return (float)(1.4426950408889634 / sqrt((double)d));
}

/* ---- selection: one row's running best ---- */

/*
 * One query row's buffer: val[0..len) scores of keys idx[0..len), idx ascending. Every
 * key not in it is worse than the len best so far, and when len >= k so is every later
 * key whose score is not above thr.
 */
struct topk_row {
	float *val;
	int *idx;
	int len;
	float thr;
};

/* The shared settings of the rows of one thread: k, the buffer size, the select space. */
struct topk_select {
	int k;
	int cap;		/* entries a buffer holds before it is cut back */
	float *scratch;		/* 2 cap floats for the quickselect */
};

/*
 * The value at position want (0-based) of x[0..n) sorted in descending order, and in
 * *above how many of x are greater than it; x is left as it is, a and b (n floats each)
 * are scratch. Quickselect with a median-of-three pivot, expected O(n): each round
 * copies the range it searches into the other scratch buffer, values above the pivot to
 * the front and the rest to the back, then if need be the pivot's equals to the front of
 * the rest, and goes on in the part that holds position want (the pivot's own run always
 * leaves, so every range is smaller than the last). The rounds are branch-free, as their
 * compares would be mispredicted half of the time, and copy rather than swap in place,
 * so no load waits for the store before it. Everything left of the range is greater
 * than everything in it.
 */
static float kth_largest(const float *x, int n, int want, float *a, float *b, int *above)
{
	const float *cur = x;
	int lo = 0, hi = n;

	while (hi - lo > 1) {
		float u = cur[lo], v = cur[lo + (hi - lo) / 2], w = cur[hi - 1], pivot;
		float *to = cur == a ? b : a;
		int front = lo, back = hi;

		/* the median of u, v, w */
		pivot = u > v ? (v > w ? v : (u > w ? w : u)) : (u > w ? u : (v > w ? w : v));
		/* both free slots get the value; the side it belongs to keeps it */
		for (int i = lo; i < hi; i++) {
			float t = cur[i];
			int g = t > pivot;

			to[front] = t;
			to[back - 1] = t;
			front += g;
			back -= 1 - g;
		}
		cur = to;
		if (want < front) {
			hi = front;
			continue;
		}
		/* the pivot's equals to the front of the rest */
		to = cur == a ? b : a;
		*above = front;
		back = hi;
		for (int i = *above; i < hi; i++) {
			float t = cur[i];
			int e = t == pivot;

			to[front] = t;
			to[back - 1] = t;
			front += e;
			back -= 1 - e;
		}
		cur = to;
		if (want < front)
			return pivot;
		lo = front;
	}
	*above = lo;
	return cur[lo];
}

/*
 * Cuts a buffer of more than k entries back to its k best by (score descending, key
 * ascending), keeping their order, and makes the k-th best score the threshold.
 */
static void row_cut(struct topk_row *r, const struct topk_select *sel)
{
	int k = sel->k, above, out = 0, ties;
	float kth;

	kth = kth_largest(r->val, r->len, k - 1, sel->scratch, sel->scratch + sel->cap,
			  &above);
	/* keys equal to the k-th score: the first (smallest) ones fill the places left */
	ties = k - above;
	/* branch-free: every entry is written at out, which moves on only for a kept one */
	for (int t = 0; t < r->len; t++) {
		float x = r->val[t];
		int tie = x == kth && ties > 0, keep = (x > kth) | tie;

		ties -= tie;
		r->val[out] = x;
		r->idx[out] = r->idx[t];
		out += keep;
	}
	r->len = out;
	r->thr = kth;
}

/*
 * Offers key j with score s, keys coming in ascending order. A key equal to the
 * threshold loses to the k kept ones, which all came before it.
 */
static inline void row_offer(struct topk_row *r, const struct topk_select *sel, int j, float s)
{
	if (!(s > r->thr))
		return;
	if (r->len == sel->cap) {
		row_cut(r, sel);
		if (!(s > r->thr))
			return;
	}
	r->val[r->len] = s;
	r->idx[r->len] = j;
	r->len++;
}

static void row_reset(struct topk_row *r)
{
	r->len = 0;
	r->thr = -INFINITY;
}

/*
 * out = softmax-weighted sum of the value rows of the row's k best keys (all it has when
 * that is fewer), in ascending key order; the scores are base 2. A row with no key
 * outputs 0.
 */
static void row_attend(struct topk_row *r, const struct topk_select *sel, const float *v,
		       int d, float *out)
{
	float sum, inv;

	if (r->len > sel->k)
		row_cut(r, sel);
	for (int c = 0; c < d; c++)
		out[c] = 0;
	if (r->len == 0)
		return;
	/*
	 * The kept rows of V are scattered over the slice: ask for all their cache lines
	 * first, so the misses overlap instead of following the sum row by row.
	 */
	for (int t = 0; t < r->len; t++)
		for (int c = 0; c < d; c += TOPK_LINE)
			__builtin_prefetch(v + (size_t)r->idx[t] * d + c);
	sum = exp2_shifted_sum(r->val, r->len, row_max(r->val, r->len));
	for (int t = 0; t < r->len; t++) {
		const float *vj = v + (size_t)r->idx[t] * d;
		float w = r->val[t];

		for (int c = 0; c < d; c++)
			out[c] += w * vj[c];
	}
	inv = 1.0f / sum;
	for (int c = 0; c < d; c++)
		out[c] *= inv;
}

/* The buffer size for rows of at most `most` candidates: 2k + slack, never past most. */
static int select_cap(long k, int most)
{
	long cap = 2 * k + TOPK_SLACK;

	return cap < most ? (int)cap : most;
}

/* ---- forward: score chunks of a query tile, stream them through the rows ---- */

/* One work item's view of its slice and its thread's workspace. */
struct topk_tile {
	const float *q, *k, *v;	/* the (batch, head) slice */
	float *out;
	int m, d;
	bool causal;
	float qscale;
	int lds;		/* row stride of qt and s: the tile's rows, padded */
	float *qt;		/* scaled query tile, transposed: d x lds */
	float *s;		/* one chunk of scores, keys x queries: round6(bk) x lds */
	float *kpad;		/* a partial kernel block of keys, zero-padded */
	struct topk_row *rows;	/* per query row of the tile */
	struct topk_select sel;
};

#ifdef TOPK_AVX2
/* s = the chunk's scores against the tile, by score-tile.h's kernel. */
static void chunk_scores(struct topk_tile *t, int k0, int cols, int rows)
{
	score_tile_scores(t->s, t->qt, t->lds, t->k + (size_t)k0 * t->d, t->d, cols, rows,
			  t->kpad);
}

/*
 * Streams a chunk's scores into the rows' buffers, eight rows at a time: one compare
 * finds which of them beat their thresholds (most keys beat none once the buffers are
 * warm).
 */
static void chunk_filter(struct topk_tile *t, int q0, int rows, int k0, int cols)
{
	for (int g = 0; g < rows; g += 8) {
		int lanes = rows - g < 8 ? rows - g : 8;
		int valid = (1 << lanes) - 1;
		__m256 thr = _mm256_setr_ps(t->rows[g].thr,
					    lanes > 1 ? t->rows[g + 1].thr : INFINITY,
					    lanes > 2 ? t->rows[g + 2].thr : INFINITY,
					    lanes > 3 ? t->rows[g + 3].thr : INFINITY,
					    lanes > 4 ? t->rows[g + 4].thr : INFINITY,
					    lanes > 5 ? t->rows[g + 5].thr : INFINITY,
					    lanes > 6 ? t->rows[g + 6].thr : INFINITY,
					    lanes > 7 ? t->rows[g + 7].thr : INFINITY);

		for (int j = 0; j < cols; j++) {
			const float *sj = t->s + (size_t)j * t->lds + g;
			int key = k0 + j, mask = valid, hit;

			if (t->causal) {
				/* query q0 + g + l sees key iff l >= key - q0 - g */
				int first = key - q0 - g;

				if (first >= lanes)
					break;
				if (first > 0)
					mask &= valid << first;
			}
			hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_load_ps(sj), thr,
							       _CMP_GT_OQ)) & mask;
			if (!hit)
				continue;
			do {
				int l = __builtin_ctz(hit);

				hit &= hit - 1;
				row_offer(&t->rows[g + l], &t->sel, key, sj[l]);
				/* a cut raises the threshold; keep the vector in step */
				thr = _mm256_blendv_ps(thr, _mm256_set1_ps(t->rows[g + l].thr),
						       _mm256_castsi256_ps(_mm256_cmpeq_epi32(
							       _mm256_setr_epi32(0, 1, 2, 3, 4, 5,
										 6, 7),
							       _mm256_set1_epi32(l))));
			} while (hit);
		}
	}
}
#else
/*
 * Portable: the same scores in plain C, one multiply and one add per dimension in
 * order; the decoder's portable kernel does the same. flash has no portable scorer of
 * its own to share this with (it uses sgemm), so it stays here.
 */
static void chunk_scores(struct topk_tile *t, int k0, int cols, int rows)
{
	int d = t->d;

	for (int j = 0; j < cols; j++) {
		const float *kj = t->k + (size_t)(k0 + j) * d;
		float *sj = t->s + (size_t)j * t->lds;

		for (int r = 0; r < rows; r++)
			sj[r] = 0;
		for (int c = 0; c < d; c++) {
			const float *qc = t->qt + (size_t)c * t->lds;

			for (int r = 0; r < rows; r++)
				sj[r] += kj[c] * qc[r];
		}
	}
}

static void chunk_filter(struct topk_tile *t, int q0, int rows, int k0, int cols)
{
	for (int r = 0; r < rows; r++) {
		int end = cols;

		/* query q0 + r sees keys up to q0 + r */
		if (t->causal && q0 + r + 1 - k0 < end)
			end = q0 + r + 1 - k0;
		for (int j = 0; j < end; j++)
			row_offer(&t->rows[r], &t->sel, k0 + j, t->s[(size_t)j * t->lds + r]);
	}
}
#endif

static void tile_run(struct topk_tile *t, int q0, int rows)
{
	int kend = t->causal ? q0 + rows : t->m;

	for (int r = 0; r < rows; r++)
		row_reset(&t->rows[r]);
	score_tile_pack_queries(t->qt, t->lds, t->q + (size_t)q0 * t->d, t->d, rows,
				t->qscale);
	for (int k0 = 0; k0 < kend; k0 += TOPK_BLOCK_K) {
		int cols = kend - k0 < TOPK_BLOCK_K ? kend - k0 : TOPK_BLOCK_K;

		chunk_scores(t, k0, cols, rows);
		chunk_filter(t, q0, rows, k0, cols);
	}
	for (int r = 0; r < rows; r++)
		row_attend(&t->rows[r], &t->sel, t->v, t->d,
			   t->out + (size_t)(q0 + r) * t->d);
}

/* Where the parts of one thread's workspace start, in floats. */
struct topk_layout {
	int lds;
	size_t qt, s, kpad, val, idx, scratch, rows;
	size_t total;		/* floats per thread */
};

/* Nothing depends on n, nor on m beyond the buffer size (at most 2k + 64). */
static void topk_layout(struct topk_layout *lay, int bq, int d, int cap)
{
	size_t row_buf = round_up((size_t)cap, TOPK_LINE);

	lay->lds = (int)round_up(bq, 16);
	lay->qt = 0;
	lay->s = lay->qt + (size_t)d * lay->lds;
	lay->kpad = lay->s + round_up(TOPK_BLOCK_K, SCORE_TILE_KEYS) * lay->lds;
	lay->val = lay->kpad + round_up((size_t)SCORE_TILE_KEYS * d, TOPK_LINE);
	/* an int is one float wide */
	lay->idx = lay->val + (size_t)bq * row_buf;
	lay->scratch = lay->idx + (size_t)bq * row_buf;
	lay->rows = lay->scratch + 2 * row_buf;
	lay->total = lay->rows +
		     round_up(sizeof(struct topk_row) * bq / sizeof(float) + 1, TOPK_LINE);
}

static int topk_forward(const struct attn_problem *p, const float *q, const float *k,
			const float *v, float *out)
{
	long kk = topk_k(p);
	int bq = p->n < TOPK_BLOCK_Q ? p->n : TOPK_BLOCK_Q;
	int tiles_q = (p->n + bq - 1) / bq, threads = max_threads();
	int cap = select_cap(kk, p->m);
	long items = (long)p->batch * p->heads * tiles_q;
	struct topk_layout lay;
	float *ws;

	topk_layout(&lay, bq, p->d, cap);
	/* Zeroed, so padded lanes read before they are written hold numbers. */
	ws = attn_calloc((size_t)threads * lay.total, sizeof(float));
	if (!ws)
		return -ENOMEM;

	#pragma omp parallel
	{
		float *base = ws + (size_t)thread_id() * lay.total;
		struct topk_tile t = {
			.m	= p->m,
			.d	= p->d,
			.causal	= p->pattern == ATTN_CS,
			.qscale	= topk_qscale(p->d),
			.lds	= lay.lds,
			.qt	= base + lay.qt,
			.s	= base + lay.s,
			.kpad	= base + lay.kpad,
			.rows	= (struct topk_row *)(base + lay.rows),
			.sel	= {
				.k		= (int)(kk < cap ? kk : cap),
				.cap		= cap,
				.scratch	= base + lay.scratch,
			},
		};
		size_t row_buf = round_up((size_t)cap, TOPK_LINE);

		for (int r = 0; r < bq; r++) {
			t.rows[r].val = base + lay.val + (size_t)r * row_buf;
			t.rows[r].idx = (int *)(base + lay.idx) + (size_t)r * row_buf;
		}

		/* Dynamic: cs tiles differ in work; the last (largest) tiles go first. */
		#pragma omp for schedule(dynamic, 1)
		for (long it = 0; it < items; it++) {
			long slice = it / tiles_q;
			int tile = tiles_q - 1 - (int)(it % tiles_q);
			int b = (int)(slice / p->heads), h = (int)(slice % p->heads);
			size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);
			int q0 = tile * bq, rows = p->n - q0 < bq ? p->n - q0 : bq;

			t.q = q + qo;
			t.k = k + kvo;
			t.v = v + kvo;
			t.out = out + qo;
			tile_run(&t, q0, rows);
		}
	}
	attn_free(ws);
	return 0;
}

/* Candidate (query, key) pairs and kept keys of one head: cs sees keys <= i. */
static void topk_counts(const struct attn_problem *p, double *pairs, double *kept)
{
	double n = p->n, k = (double)topk_k(p);

	if (p->pattern == ATTN_CS) {
		*pairs = n * (n + 1) / 2;
		/* rows i < k keep their i + 1 candidates, the others k */
		*kept = k >= n ? *pairs : k * (k + 1) / 2 + (n - k) * k;
	} else {
		*pairs = n * p->m;
		*kept = n * (k < p->m ? k : p->m);
	}
}

/*
 * 2d per candidate pair for the scores and 2d per kept key for the weighted sum; the
 * selection's compares and the k exponentials per row are not counted.
 */
static double topk_flops(const struct attn_problem *p)
{
	double pairs, kept;

	topk_counts(p, &pairs, &kept);
	return 2.0 * p->batch * p->heads * p->d * (pairs + kept);
}

/*
 * Every key and value, float32: any key may be among the next query's k best, so none
 * can be dropped; the KV cache of exact attention, kv_cache_bytes(p, m).
 */
static double topk_state_bytes(const struct attn_problem *p)
{
	return kv_cache_bytes(p, p->m);
}

/* ---- incremental decoding ---- */

/*
 * The cache: per KV slice, keys in panels of PANEL positions, each panel d x PANEL
 * (dimension-major: position t is lane t % PANEL of panel t / PANEL), values row-major.
 */
struct topk_decode {
	struct attn_problem p;	/* n = m = capacity in positions */
	double params[1];	/* p.params points here */
	int len;		/* positions fed so far */
	int threads;		/* workspaces; the most threads a step runs on */
	int panels;		/* per KV slice: ceil(capacity / PANEL) */
	float *kp;		/* [slices][panels][d][PANEL] */
	float *vc;		/* [slices][capacity][d] */
	struct topk_select sel;	/* k and cap; scratch is per thread */
	size_t ws_len;		/* floats per thread of ws */
	float *ws;		/* [threads]: scores, scaled query, buffer, scratch */
};

static void topk_decode_free(void *state)
{
	struct topk_decode *st = state;

	if (!st)
		return;
	attn_free(st->ws);
	attn_free(st->vc);
	attn_free(st->kp);
	attn_free(st);
}

/* Per thread: the score row, the scaled query, a row buffer (values, keys), scratch. */
static size_t decode_ws_len(int panels, int d, int cap)
{
	size_t buf = round_up((size_t)cap, TOPK_LINE);

	return (size_t)panels * PANEL + round_up((size_t)d, TOPK_LINE) + 4 * buf;
}

static int topk_decode_init(const struct attn_problem *p, void **state)
{
	struct topk_decode *st;
	size_t slices = (size_t)p->batch * p->kv_heads;
	int ret, cap;
	long kk;

	*state = NULL;
	ret = decode_check_problem(p);
	if (ret)
		return ret;
	st = attn_calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->p = decode_problem(p);
	st->params[TOPK_K] = p->params ? p->params[TOPK_K] : TOPK_K_DEFAULT;
	st->p.params = st->params;
	kk = topk_k(&st->p);
	cap = select_cap(kk, p->n);
	st->sel.k = (int)(kk < cap ? kk : cap);
	st->sel.cap = cap;
	st->threads = max_threads();
	st->panels = (p->n + PANEL - 1) / PANEL;
	st->ws_len = decode_ws_len(st->panels, p->d, cap);
	ret = -ENOMEM;
	if ((double)slices * st->panels * PANEL * p->d * sizeof(float) > (double)SIZE_MAX)
		goto out_free_state;
	st->kp = attn_calloc(slices * st->panels * PANEL * p->d, sizeof(float));
	st->vc = attn_calloc(slices * p->n * p->d, sizeof(float));
	st->ws = attn_calloc((size_t)st->threads * st->ws_len, sizeof(float));
	if (!st->kp || !st->vc || !st->ws)
		goto out_free_state;
	*state = st;
	return 0;

out_free_state:
	topk_decode_free(st);
	return ret;
}

/*
 * s[0 .. panels * PANEL) = scores of the scaled query qs against the panels' keys, each
 * one multiply-add per dimension in order from zero, as the forward's kernel
 * (score_tile_kernel() in score-tile.h).
 */
static void decode_scores(const float *qs, const float *kp, int d, int panels, float *s)
{
	size_t plen = (size_t)d * PANEL;
	int pi = 0;

#ifdef TOPK_AVX2
	/* Four panels at a time: eight independent chains hide the FMA latency. */
	for (; pi + 4 <= panels; pi += 4) {
		const float *k0 = kp + pi * plen, *k1 = k0 + plen, *k2 = k1 + plen;
		const float *k3 = k2 + plen;
		__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
		__m256 a4 = a0, a5 = a0, a6 = a0, a7 = a0;

		for (int c = 0; c < d; c++) {
			__m256 x = _mm256_broadcast_ss(qs + c);
			size_t at = (size_t)c * PANEL;

			a0 = _mm256_fmadd_ps(x, _mm256_load_ps(k0 + at), a0);
			a1 = _mm256_fmadd_ps(x, _mm256_load_ps(k0 + at + 8), a1);
			a2 = _mm256_fmadd_ps(x, _mm256_load_ps(k1 + at), a2);
			a3 = _mm256_fmadd_ps(x, _mm256_load_ps(k1 + at + 8), a3);
			a4 = _mm256_fmadd_ps(x, _mm256_load_ps(k2 + at), a4);
			a5 = _mm256_fmadd_ps(x, _mm256_load_ps(k2 + at + 8), a5);
			a6 = _mm256_fmadd_ps(x, _mm256_load_ps(k3 + at), a6);
			a7 = _mm256_fmadd_ps(x, _mm256_load_ps(k3 + at + 8), a7);
		}
		_mm256_storeu_ps(s + (size_t)pi * PANEL, a0);
		_mm256_storeu_ps(s + (size_t)pi * PANEL + 8, a1);
		_mm256_storeu_ps(s + (size_t)(pi + 1) * PANEL, a2);
		_mm256_storeu_ps(s + (size_t)(pi + 1) * PANEL + 8, a3);
		_mm256_storeu_ps(s + (size_t)(pi + 2) * PANEL, a4);
		_mm256_storeu_ps(s + (size_t)(pi + 2) * PANEL + 8, a5);
		_mm256_storeu_ps(s + (size_t)(pi + 3) * PANEL, a6);
		_mm256_storeu_ps(s + (size_t)(pi + 3) * PANEL + 8, a7);
	}
	for (; pi < panels; pi++) {
		const float *k0 = kp + pi * plen;
		__m256 a0 = _mm256_setzero_ps(), a1 = a0;

		for (int c = 0; c < d; c++) {
			__m256 x = _mm256_broadcast_ss(qs + c);

			a0 = _mm256_fmadd_ps(x, _mm256_load_ps(k0 + (size_t)c * PANEL), a0);
			a1 = _mm256_fmadd_ps(x, _mm256_load_ps(k0 + (size_t)c * PANEL + 8), a1);
		}
		_mm256_storeu_ps(s + (size_t)pi * PANEL, a0);
		_mm256_storeu_ps(s + (size_t)pi * PANEL + 8, a1);
	}
#else
	for (; pi < panels; pi++) {
		const float *k0 = kp + pi * plen;
		float *sp = s + (size_t)pi * PANEL;

		for (int l = 0; l < PANEL; l++)
			sp[l] = 0;
		for (int c = 0; c < d; c++)
			for (int l = 0; l < PANEL; l++)
				sp[l] += k0[(size_t)c * PANEL + l] * qs[c];
	}
#endif
}

/*
 * Stores position t's key and value of every KV slice: k and v hold slice 0's, each next
 * slice's `stride` floats on ([slices][d] from a step: stride d).
 */
static void decode_put(struct topk_decode *st, int t, const float *k, const float *v,
		       size_t stride)
{
	int slices = st->p.batch * st->p.kv_heads, d = st->p.d;
	size_t plen = (size_t)d * PANEL;

	for (int i = 0; i < slices; i++) {
		float *panel = st->kp + ((size_t)i * st->panels + t / PANEL) * plen;

		for (int c = 0; c < d; c++)
			panel[(size_t)c * PANEL + t % PANEL] = k[i * stride + c];
		memcpy(st->vc + ((size_t)i * st->p.n + t) * d, v + i * stride, sizeof(float) * d);
	}
}

/* A prompt's keys and values into the panels, position by position as steps put them. */
static int topk_decode_prefill(void *state, const float *k, const float *v, int rows, int len)
{
	struct topk_decode *st = state;
	size_t d = (size_t)st->p.d;

	if (st->len || len < 0 || rows < len)
		return -EINVAL;
	if (len > st->p.n)
		return -ENOSPC;
	for (int t = 0; t < len; t++)
		decode_put(st, t, k + t * d, v + t * d, (size_t)rows * d);
	st->len = len;
	return 0;
}

static int topk_decode_step(void *state, const float *q, const float *k, const float *v,
			    float *out)
{
	struct topk_decode *st = state;
	const struct attn_problem *p = &st->p;
	int slices = p->batch * p->heads, d = p->d, t = st->len, keys;
	float qscale = topk_qscale(d);
	size_t buf = round_up((size_t)st->sel.cap, TOPK_LINE);

	if (t >= p->n)
		return -ENOSPC;
	decode_put(st, t, k, v, (size_t)st->p.d);
	keys = ++st->len;

	#pragma omp parallel for num_threads(st->threads) schedule(static) \
		if ((double)slices * keys * d >= TOPK_DECODE_PARALLEL_MIN)
	for (int i = 0; i < slices; i++) {
		int b = i / p->heads, kvh = i % p->heads / (p->heads / p->kv_heads);
		size_t slice = (size_t)b * p->kv_heads + kvh;
		float *ws = st->ws + (size_t)thread_id() * st->ws_len;
		float *s = ws, *qs = s + (size_t)st->panels * PANEL;
		float *val = qs + round_up((size_t)d, TOPK_LINE);
		struct topk_select sel = st->sel;
		struct topk_row row = { .val = val, .idx = (int *)(val + buf) };

		sel.scratch = val + 2 * buf;
		for (int c = 0; c < d; c++)
			qs[c] = qscale * q[(size_t)i * d + c];
		decode_scores(qs, st->kp + slice * st->panels * PANEL * d, d,
			      (keys + PANEL - 1) / PANEL, s);
		row_reset(&row);
		for (int j = 0; j < keys; j++)
			row_offer(&row, &sel, j, s[j]);
		row_attend(&row, &sel, st->vc + slice * p->n * d, d, out + (size_t)i * d);
	}
	return 0;
}

const struct variant_ops topk_variant = {
	.name		= "topk",
	.family		= "sparse",
	.summary	= "each query's k highest-scoring keys (exact selection, ties to the "
			  "smaller key), softmax over them; all four patterns [harness]",
	.citation	= "Gupta, Dar, Goodman, Ciprut, Berant 2021, Memory-efficient "
			  "Transformers via Top-k Attention, SustaiNLP workshop at EMNLP 2021 "
			  "(arXiv 2106.06899)",
	.patterns	= PATTERNS_ALL,
	.extensions	= PATTERNS_ALL,
	.flags		= 0,
	.params		= topk_params,
	.n_params	= 1,
	.forward	= topk_forward,
	.flops		= topk_flops,
	.state_bytes	= topk_state_bytes,
	.decode_init	= topk_decode_init,
	.decode_step	= topk_decode_step,
	.decode_free	= topk_decode_free,
	.decode_prefill	= topk_decode_prefill,
};
