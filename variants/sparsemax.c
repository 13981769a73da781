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
 *  2. per row, the exact threshold, without sorting the row: scores are shifted by the
 *     row's maximum (the projection commutes with a shift; see struct row_cut), and tau
 *     >= -1 (the largest score alone weighs 1 there), so only scores within 1 of the
 *     maximum can be in the support; they are copied out, then Michelot's pivot
 *     iteration runs on them: tau = (sum of the set - 1) / |set|, the set becomes
 *     {z > tau}, until it stops shrinking. tau never decreases and the set always holds
 *     the support, so the fixed point is the support with the sort formula's tau, from
 *     sums in double (threshold() has the argument). A few vector passes over a few
 *     dozen values at the default scale, not a sort of the row;
 *  3. the weighted sum of the values. The weights are sparse: at the default scale on
 *     unit-variance data a row keeps a handful of its thousands of keys, so a gather
 *     (sum over the support of p_j v_j, d multiply-adds per kept key, found again by a
 *     vectorised compare of the row against tau) costs a small fraction of a dense
 *     product. When a tile's supports hold at least 1/SPARSEMAX_DENSE_SHARE of its
 *     allowed pairs (a small scale flattens the scores), the weights are written over
 *     the scores (zeros outside the support) and one sgemm with V does the sum, as it
 *     reuses each value row for the whole tile. The choice is made per tile from that
 *     tile's own data, so it is deterministic; the two routes differ by rounding only.
 *     As the choice reads every row of the tile, a later row of the tile can change the
 *     rounding of an earlier one (by 4e-8 in `check`'s causality test), never more.
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
#include <string.h>

#if defined(__AVX2__)
#include <immintrin.h>
#define SPARSEMAX_AVX2 1
#endif

#include "common.h"
#include "memory.h"
#include "threads.h"

/*
 * Query rows per work item. Each tile's sgemm reads all of K, so taller tiles reuse it
 * more, although their scores (64 x 16384 floats: 4 MiB per thread) outgrow L2 for the
 * passes over the rows: on one core of an AMD EPYC (Zen 5) at M = 16384, d = 64, a head
 * took 652, 589, 559 and 538 ms at 16, 32, 64 and 128 rows. 64 as topk, for half the
 * memory of 128.
 */
#define SPARSEMAX_BLOCK_Q 64

/* Floats per cache line: rows of the score buffer start on one. */
#define SPARSEMAX_LINE 16

/*
 * The weighted sum runs as a dense sgemm when the tile's supports hold at least this
 * share (1/10) of its allowed pairs. Measured on one core of an AMD EPYC (Zen 5) at
 * d = 64, M = 4096, unit-variance inputs flattened by smaller scales: the gather, which
 * reads each kept value row once per query row, takes 40% less time than the sgemm at
 * the default scale (0.1% of the keys kept), 20% less at 1% and 7% less at 5%; they
 * are even at 10%, and the sgemm is ahead by 11 to 14% at 15 to 20% and by 2x at 70%.
 */
#define SPARSEMAX_DENSE_SHARE 10

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

/*
 * A row's projection: p_j = max((z_j - shift) - tau, 0), with shift the row's largest
 * score and tau in [-1, 0) the threshold of the shifted scores (the projection commutes
 * with a shift). Shifting first keeps tau small, so that float resolves it as finely as
 * the weights need even when the scores are large; z_j - shift is exact for every key
 * that can be in the support once |shift| >= 2 (Sterbenz), and within a rounding of 1
 * below that.
 */
struct row_cut {
	float shift, tau;
};

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
 * Copies w_j = z_j - shift for the j < len with w_j >= -1 into val, in order; returns
 * how many, and their sum (in double) in *sum. Only these can be in the support: tau >=
 * -1, as the largest score alone weighs 1 at tau = -1. At the default scale few pass,
 * so the compare runs eight at a time and only the hits are copied one by one.
 */
static int candidates(const float *z, int len, float shift, float *val, double *sum)
{
	double s = 0;
	int c = 0, j = 0;

#ifdef SPARSEMAX_AVX2
	const __m256 sh = _mm256_set1_ps(shift), lo = _mm256_set1_ps(-1.0f);

	for (; j + 8 <= len; j += 8) {
		__m256 w = _mm256_sub_ps(_mm256_loadu_ps(z + j), sh);
		int hit = _mm256_movemask_ps(_mm256_cmp_ps(w, lo, _CMP_GE_OQ));

		while (hit) {
			float x = z[j + __builtin_ctz(hit)] - shift;

			val[c++] = x;
			s += x;
			hit &= hit - 1;
		}
	}
#endif
	for (; j < len; j++) {
		float x = z[j] - shift;

		if (x >= -1.0f) {
			val[c++] = x;
			s += x;
		}
	}
	*sum = s;
	return c;
}

/* How many of val[0..c) are above t; their sum (in double) in *sum. */
static int sum_above(const float *val, int c, float t, double *sum)
{
	double s = 0;
	int count = 0, j = 0;

#ifdef SPARSEMAX_AVX2
	const __m256 tv = _mm256_set1_ps(t);
	/* four chains of double additions hide their latency */
	__m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
	double lanes[4];

	for (; j + 16 <= c; j += 16) {
		__m256 x = _mm256_loadu_ps(val + j), y = _mm256_loadu_ps(val + j + 8);
		__m256 mx = _mm256_cmp_ps(x, tv, _CMP_GT_OQ);
		__m256 my = _mm256_cmp_ps(y, tv, _CMP_GT_OQ);

		x = _mm256_and_ps(mx, x);
		y = _mm256_and_ps(my, y);
		a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(x)));
		a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)));
		a2 = _mm256_add_pd(a2, _mm256_cvtps_pd(_mm256_castps256_ps128(y)));
		a3 = _mm256_add_pd(a3, _mm256_cvtps_pd(_mm256_extractf128_ps(y, 1)));
		count += __builtin_popcount(_mm256_movemask_ps(mx)) +
			 __builtin_popcount(_mm256_movemask_ps(my));
	}
	a0 = _mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3));
	_mm256_storeu_pd(lanes, a0);
	s = lanes[0] + lanes[1] + lanes[2] + lanes[3];
#endif
	for (; j < c; j++)
		if (val[j] > t) {
			s += val[j];
			count++;
		}
	*sum = s;
	return count;
}

/*
 * The threshold of the shifted candidates val[0..c) (those >= -1, with the maximum, 0,
 * among them), whose sum is sum; *support = the size of the support {w > tau}.
 *
 * Michelot's pivot iteration, which is Newton's method from the left on f(tau) =
 * sum_j max(w_j - tau, 0) - 1: tau = (sum of the set - 1) / |set|, then the set becomes
 * {w > tau}, until it stops shrinking. Every value dropped is <= tau, so tau never
 * decreases and the set always holds the support; at the fixed point the set is {w >
 * tau} and tau = (its sum - 1) / its size: the sort formula's tau, as its k* (the
 * largest k with 1 + k w_(k) > sum_{r<=k} w_(r)) is the size of {w > tau}.
 * Sums are in double, tau is rounded to float once per pass.
 *
 * Each pass that does not stop drops a value, so there are at most c passes; random rows
 * take 1 to 6 (flat ones, e.g. at scale 0.01, up to about 10), and a search for slow
 * inputs found none above 9. The maximum, 0, is never dropped: tau = the set's mean -
 * 1/|set| < 0. The passes scan the candidates without compacting them: vector compares
 * and sums beat a compaction's dependent stores, and there are few candidates unless
 * the row is flat.
 */
static float threshold(const float *val, int c, double sum, int *support)
{
	float tau = (float)((sum - 1) / c);
	int k = c;

	for (;;) {
		int kept = sum_above(val, c, tau, &sum);
		float next;

		if (kept == k)
			break;
		k = kept;
		next = (float)((sum - 1) / k);
		/* never below the last tau, which rounding could otherwise give */
		tau = next > tau ? next : tau;
	}
	*support = k;
	return tau;
}

/*
 * The projection of z[0..len) into *cut; cand is scratch of len floats. Returns the size
 * of the support, which steers the choice of route for the weighted sum only (a key
 * within rounding of tau has p_j ~ 0 either way).
 */
static int row_threshold(const float *z, int len, float *cand, struct row_cut *cut)
{
	double sum;
	int c, support;

	cut->shift = max_of(z, len);
	c = candidates(z, len, cut->shift, cand, &sum);
	cut->tau = threshold(cand, c, sum, &support);
	return support;
}

/* ---- the weighted sum ---- */

/* out[0..d) += w * x[0..d) */
static inline void axpy(float *out, float w, const float *x, int d)
{
	for (int c = 0; c < d; c++)
		out[c] += w * x[c];
}

/* out = sum over the j < len in the support of p_j v_j, in ascending j. */
static void row_gather(const float *z, int len, struct row_cut cut, const float *v, int d,
		       float *out)
{
	int j = 0;

	memset(out, 0, sizeof(float) * d);
#ifdef SPARSEMAX_AVX2
	const __m256 sh = _mm256_set1_ps(cut.shift), t = _mm256_set1_ps(cut.tau);

	for (; j + 8 <= len; j += 8) {
		__m256 w = _mm256_sub_ps(_mm256_loadu_ps(z + j), sh);
		int hit = _mm256_movemask_ps(_mm256_cmp_ps(w, t, _CMP_GT_OQ));

		while (hit) {
			int at = j + __builtin_ctz(hit);

			axpy(out, (z[at] - cut.shift) - cut.tau, v + (size_t)at * d, d);
			hit &= hit - 1;
		}
	}
#endif
	for (; j < len; j++) {
		float w = z[j] - cut.shift;

		if (w > cut.tau)
			axpy(out, w - cut.tau, v + (size_t)j * d, d);
	}
}

/* z[0..ld) = the weights p_j on the first len entries, 0 after them. */
static void row_weights(float *z, int len, int ld, struct row_cut cut)
{
	for (int j = 0; j < len; j++) {
		float w = (z[j] - cut.shift) - cut.tau;

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
	struct row_cut *cut;	/* per row of the tile */
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

		nnz += row_threshold(t->s + (size_t)r * t->lds, len, t->cand, &t->cut[r]);
		pairs += len;
	}
	if (nnz * SPARSEMAX_DENSE_SHARE >= pairs) {
		for (int r = 0; r < rows; r++) {
			int len = t->causal ? q0 + r + 1 : kend;

			row_weights(t->s + (size_t)r * t->lds, len, kend, t->cut[r]);
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, kend, 1.0f,
			    t->s, t->lds, t->v, d, 0.0f, o, d);
		return;
	}
	for (int r = 0; r < rows; r++) {
		int len = t->causal ? q0 + r + 1 : kend;

		row_gather(t->s + (size_t)r * t->lds, len, t->cut[r], t->v, d, o + (size_t)r * d);
	}
}

static int sparsemax_forward(const struct attn_problem *p, const float *q, const float *k,
			     const float *v, float *out)
{
	int bq = p->n < SPARSEMAX_BLOCK_Q ? p->n : SPARSEMAX_BLOCK_Q;
	int tiles_q = (p->n + bq - 1) / bq, threads = max_threads(), saved;
	long items = (long)p->batch * p->heads * tiles_q;
	size_t lds = round_up((size_t)p->m, SPARSEMAX_LINE);
	/* scores, one row's candidates, the rows' cuts (two floats each) */
	size_t per_thread = (bq + 1) * lds + round_up(2 * bq, SPARSEMAX_LINE);
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
			.cut	= (struct row_cut *)(base + (size_t)(bq + 1) * lds),
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
