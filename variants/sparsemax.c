/*
 * sparsemax.c - sparsemax attention: each row's weights are the Euclidean projection of
 * its scores onto the probability simplex, which sets every weight below a threshold
 * to exactly zero (Martins & Astudillo 2016; VARIANTS.md section 23).
 *
 * Per (batch, head) slice and query row i, over the allowed keys (cs: j <= i; ns, nc,
 * cc: all m), z_j = scale * q_i.k_j / sqrt(d), and with z sorted descending,
 *   k* = max{k : 1 + k z_(k) > sum_{r<=k} z_(r)},  tau = (sum_{r<=k*} z_(r) - 1) / k*,
 *   p_j = max(z_j - tau, 0),  o_i = sum_j p_j v_j.
 * Every row looks only at its own scores, so cc is safe; all four patterns are harness
 * extensions (the paper has no attention patterns of its own).
 *
 * Work items are (batch, head, tile of SPARSEMAX_BLOCK_Q query rows), shared out
 * dynamically over OpenMP threads; cs runs its last (largest) tiles first. Per tile:
 *  1. the tile's scores against the keys it may see by one single-threaded sgemm (cs:
 *     only keys up to the tile's last row, so key tiles above the diagonal are never
 *     scored), into a rows x keys buffer: a thread's workspace is O(tile x M);
 *  2. per row, the exact threshold, without sorting the row: tau >= max z - 1 (the
 *     largest score alone gives sum_j max(z_j - tau, 0) >= max z - tau), so only scores
 *     >= max z - 1 can be in the support; they are gathered, then Michelot's pivot
 *     iteration runs on them: tau = (sum of the set - 1) / |set|, drop every value
 *     <= tau, repeat until nothing drops. tau never decreases and the set always holds
 *     the support, so the fixed point is the set {z > tau} with tau = (sum over it - 1) /
 *     its size: the sort formula's k* and tau, exactly (sums in double). Rows not
 *     settled after SPARSEMAX_PIVOT_PASSES passes sort what is left (all values above
 *     the last tau, so it still holds the support) and apply the catalogue's formula to
 *     it, which bounds the worst case at O(c log c) for c candidates;
 *  3. the weighted sum of the values. The weights are sparse: at the default scale on
 *     unit-variance data a row keeps a handful of its thousands of keys, so a gather
 *     (sum over the support of p_j v_j, d multiply-adds per kept key, found again by a
 *     vectorised compare of the row against tau) costs a small fraction of a dense
 *     product. When a tile's supports hold at least 1/SPARSEMAX_DENSE_SHARE of its
 *     allowed pairs (a small scale flattens the scores), the weights are written over
 *     the scores (zeros outside the support) and one sgemm with V does the sum, as it
 *     reuses each value row for the whole tile. The choice is made per tile from that
 *     tile's own data, so it is deterministic; the two routes differ by rounding only.
 *
 * GQA (section 31): there is no work that depends on K and V alone (no features, no
 * summaries): scores, threshold and support are per query row, so they stay per query
 * head; the heads of a group read their shared K/V slice in place, and their work items
 * are adjacent, so the slice is warm in cache for the next head.
 *
 * No decoding: the catalogue asks for none. The state is the KV cache (any key may be
 * in the next query's support).
 */
#include "variant.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX2__)
#include <immintrin.h>
#define SPARSEMAX_AVX2 1
#endif

#include "common.h"
#include "memory.h"
#include "threads.h"

/*
 * Query rows per work item: a 32 x 16384 score tile is 2 MiB per thread; larger tiles
 * gain little in sgemm speed and lose cache for the passes over the rows.
 */
#define SPARSEMAX_BLOCK_Q 32

/* Floats per cache line: rows of the score buffer start on one. */
#define SPARSEMAX_LINE 16

/*
 * Pivot passes before the threshold sorts what is left. Unit-variance scores settle in
 * 1 to 6 passes (flat rows, e.g. at scale 0.1, in 8 to 10); the first passes shrink the
 * set the most, down to a few times the support, and sorting that rest is cheaper than
 * more passes would be, and bounds the worst case at O(c log c).
 */
#define SPARSEMAX_PIVOT_PASSES 4

/*
 * The weighted sum runs as a dense sgemm when the tile's supports hold at least this
 * share (1/8) of its allowed pairs. Measured on 2 cores of an AMD EPYC (Zen 5) at d = 64,
 * M = 4096: the gather, which reads each kept value row once per query row, breaks even
 * with the sgemm at about 1/10 of the keys kept.
 */
#define SPARSEMAX_DENSE_SHARE 8

#define SPARSEMAX_SCALE_DEFAULT 1.0	/* VARIANTS.md section 23 */

enum sparsemax_param {
	SPARSEMAX_SCALE,
};

static const struct variant_param sparsemax_params[] = {
	[SPARSEMAX_SCALE] = {
		.name		= "scale",
		.def		= SPARSEMAX_SCALE_DEFAULT,
		.min		= 0,
		.max		= 1e6,
		.integer	= false,
		.help		= "multiplier on sigma = 1/sqrt(d): z = scale*sigma*q.k (not "
				  "entmax's alpha); 0 averages the allowed values",
	},
};

static double sparsemax_scale(const struct attn_problem *p)
{
	return p->params ? p->params[SPARSEMAX_SCALE] : SPARSEMAX_SCALE_DEFAULT;
}

static size_t round_up(size_t x, size_t to)
{
	return (x + to - 1) / to * to;
}

/* ---- the threshold of one row ---- */

/* Largest of z[0..len) (len >= 1). */
static float max_of(const float *z, int len)
{
	float max = z[0];
	int j = 0;

#ifdef SPARSEMAX_AVX2
	if (len >= 8) {
		__m256 m = _mm256_loadu_ps(z);

		for (j = 8; j + 8 <= len; j += 8)
			m = _mm256_max_ps(m, _mm256_loadu_ps(z + j));
		m = _mm256_max_ps(m, _mm256_permute2f128_ps(m, m, 1));
		m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0x4e));
		m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0xb1));
		max = _mm256_cvtss_f32(m);
	}
#endif
	for (; j < len; j++)
		max = z[j] > max ? z[j] : max;
	return max;
}

/*
 * Copies the values of z[0..len) that are >= bound into val, in order; returns how many.
 * Few pass at the default scale, so the compare runs eight at a time and only the hits
 * are copied one by one.
 */
static int candidates(const float *z, int len, float bound, float *val)
{
	int c = 0, j = 0;

#ifdef SPARSEMAX_AVX2
	const __m256 b = _mm256_set1_ps(bound);

	for (; j + 8 <= len; j += 8) {
		int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(z + j), b,
							   _CMP_GE_OQ));

		while (hit) {
			val[c++] = z[j + __builtin_ctz(hit)];
			hit &= hit - 1;
		}
	}
#endif
	for (; j < len; j++)
		if (z[j] >= bound)
			val[c++] = z[j];
	return c;
}

static int descending(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x < y) - (x > y);
}

/*
 * The catalogue's formula on val[0..c), which holds the support: sort descending, k* =
 * the largest k with 1 + k z_(k) > sum_{r<=k} z_(r), tau = (sum_{r<=k*} z_(r) - 1) / k*.
 * Reorders val; *support = k*.
 */
static double threshold_sorted(float *val, int c, int *support)
{
	double sum = 0, tau_sum = val[0];
	int kstar = 1;

	qsort(val, c, sizeof(*val), descending);
	for (int k = 1; k <= c; k++) {
		sum += val[k - 1];
		if (1 + (double)k * val[k - 1] > sum) {
			kstar = k;
			tau_sum = sum;
		}
	}
	*support = kstar;
	return (tau_sum - 1) / kstar;
}

/*
 * The exact sparsemax threshold of the values val[0..c), which must include every
 * value of the row above max - 1 and the maximum itself (the rest of the row is below
 * the threshold and does not change it). Michelot's pivot iteration, then the sort
 * formula on what is left if it has not settled after SPARSEMAX_PIVOT_PASSES passes.
 * Reorders and overwrites val; *support = the size of the support, {z > tau}.
 */
static double threshold(float *val, int c, int *support)
{
	double sum = 0, tau;

	for (int j = 0; j < c; j++)
		sum += val[j];
	tau = (sum - 1) / c;
	for (int pass = 0; pass < SPARSEMAX_PIVOT_PASSES; pass++) {
		double kept_sum = 0;
		int kept = 0;

		/* branch-free: every value is written at kept, which moves on for a kept one */
		for (int j = 0; j < c; j++) {
			float x = val[j];
			int keep = x > tau;

			val[kept] = x;
			kept += keep;
			kept_sum += keep ? x : 0.0;
		}
		/* the maximum is always kept: tau < max, as the mean of the set is <= max */
		if (kept == c) {
			*support = c;
			return tau;
		}
		c = kept;
		tau = (kept_sum - 1) / c;
	}
	return threshold_sorted(val, c, support);
}

/*
 * *tau_f = the row's threshold rounded to float: the weighted sum takes the support as
 * {j : z_j > tau_f} and p_j = z_j - tau_f (a key within rounding of tau has p_j ~ 0
 * either way). cand is scratch of len floats. Returns the size of the support (as
 * found in double, which may differ from the float one by such keys: it only steers
 * the choice of route for the weighted sum).
 */
static int row_threshold(const float *z, int len, float *cand, float *tau_f)
{
	float max = max_of(z, len);
	int c = candidates(z, len, max - 1.0f, cand), support;

	*tau_f = (float)threshold(cand, c, &support);
	return support;
}

/* ---- the weighted sum ---- */

/* out[0..d) += w * x[0..d) */
static inline void axpy(float *out, float w, const float *x, int d)
{
	for (int c = 0; c < d; c++)
		out[c] += w * x[c];
}

/* out = sum over j < len with z_j > tau of (z_j - tau) v_j, in ascending j. */
static void row_gather(const float *z, int len, float tau, const float *v, int d, float *out)
{
	int j = 0;

	memset(out, 0, sizeof(float) * d);
#ifdef SPARSEMAX_AVX2
	const __m256 t = _mm256_set1_ps(tau);

	for (; j + 8 <= len; j += 8) {
		int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(z + j), t,
							   _CMP_GT_OQ));

		while (hit) {
			int at = j + __builtin_ctz(hit);

			axpy(out, z[at] - tau, v + (size_t)at * d, d);
			hit &= hit - 1;
		}
	}
#endif
	for (; j < len; j++)
		if (z[j] > tau)
			axpy(out, z[j] - tau, v + (size_t)j * d, d);
}

/* z[0..ld) = max(z - tau, 0) on the first len entries, 0 after them. */
static void row_weights(float *z, int len, int ld, float tau)
{
	for (int j = 0; j < len; j++) {
		float w = z[j] - tau;

		z[j] = w > 0 ? w : 0;
	}
	for (int j = len; j < ld; j++)
		z[j] = 0;
}

/* ---- forward ---- */

/* One work item's view of its slice and its thread's workspace. */
struct sparsemax_tile {
	const float *q, *k, *v;	/* the (batch, head) slice */
	float *out;
	int m, d;
	bool causal;
	float alpha;		/* scale / sqrt(d) */
	int lds;		/* row stride of s */
	float *s;		/* scores, then weights: rows x lds */
	float *cand;		/* one row's candidates: lds floats */
	float *tau;		/* per row of the tile */
};

static void tile_run(struct sparsemax_tile *t, int q0, int rows)
{
	/* cs: the tile's rows see no key past its last row */
	int kend = t->causal ? q0 + rows : t->m, d = t->d;
	double nnz = 0, pairs = 0;
	float *o = t->out + (size_t)q0 * d;

	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, kend, d, t->alpha,
		    t->q + (size_t)q0 * d, d, t->k, d, 0.0f, t->s, t->lds);
	for (int r = 0; r < rows; r++) {
		int len = t->causal ? q0 + r + 1 : kend;

		nnz += row_threshold(t->s + (size_t)r * t->lds, len, t->cand, &t->tau[r]);
		pairs += len;
	}
	if (nnz * SPARSEMAX_DENSE_SHARE >= pairs) {
		for (int r = 0; r < rows; r++)
			row_weights(t->s + (size_t)r * t->lds, t->causal ? q0 + r + 1 : kend,
				    kend, t->tau[r]);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, kend, 1.0f,
			    t->s, t->lds, t->v, d, 0.0f, o, d);
		return;
	}
	for (int r = 0; r < rows; r++)
		row_gather(t->s + (size_t)r * t->lds, t->causal ? q0 + r + 1 : kend, t->tau[r],
			   t->v, d, o + (size_t)r * d);
}

static int sparsemax_forward(const struct attn_problem *p, const float *q, const float *k,
			     const float *v, float *out)
{
	int bq = p->n < SPARSEMAX_BLOCK_Q ? p->n : SPARSEMAX_BLOCK_Q;
	int tiles_q = (p->n + bq - 1) / bq, threads = max_threads(), saved;
	long items = (long)p->batch * p->heads * tiles_q;
	size_t lds = round_up((size_t)p->m, SPARSEMAX_LINE);
	size_t per_thread = (bq + 1) * lds + round_up(bq, SPARSEMAX_LINE);
	float *ws;

	if (per_thread > SIZE_MAX / sizeof(float) / (size_t)threads)
		return -ENOMEM;
	ws = attn_alloc((size_t)threads * per_thread * sizeof(float));
	if (!ws)
		return -ENOMEM;

	saved = blas_serial_begin();
	#pragma omp parallel
	{
		float *base = ws + (size_t)thread_id() * per_thread;
		struct sparsemax_tile t = {
			.m	= p->m,
			.d	= p->d,
			.causal	= p->pattern == ATTN_CS,
			.alpha	= (float)(sparsemax_scale(p) / sqrt((double)p->d)),
			.lds	= (int)lds,
			.s	= base,
			.cand	= base + (size_t)bq * lds,
			.tau	= base + (size_t)(bq + 1) * lds,
		};

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
	blas_serial_end(saved);
	attn_free(ws);
	return 0;
}

/*
 * 2d per allowed (query, key) pair for the scores, as exact attention counts them (cs:
 * n(n + 1)/2 pairs). The weighted sum depends on the data (2d per kept key, at most
 * another 2d per pair when a tile goes dense) and is not counted, nor are the
 * threshold's compares and sums.
 */
static double sparsemax_flops(const struct attn_problem *p)
{
	return exact_attention_flops(p) / 2;
}

/* Every key and value, float32: any key may be in the next query's support. */
static double sparsemax_state_bytes(const struct attn_problem *p)
{
	return exact_attention_state_bytes(p);
}

const struct variant_ops sparsemax_variant = {
	.name		= "sparsemax",
	.family		= "normalisation",
	.summary	= "exact sparsemax: each row's scores projected onto the simplex, "
			  "sparse weights; all four patterns [harness]",
	.citation	= "Martins, Astudillo 2016, From Softmax to Sparsemax: A Sparse Model "
			  "of Attention and Multi-Label Classification, ICML (arXiv 1602.02068)",
	.patterns	= PATTERNS_ALL,
	.extensions	= PATTERNS_ALL,
	.flags		= 0,
	.params		= sparsemax_params,
	.n_params	= 1,
	.forward	= sparsemax_forward,
	.flops		= sparsemax_flops,
	.state_bytes	= sparsemax_state_bytes,
};
