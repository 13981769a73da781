/*
 * softplus.c - softplus attention with a length-dependent scale (LSSA) and re-weighting
 * (LSSAR) (Gao & Spratling 2025; VARIANTS.md section 22). The catalogue reconstructs the
 * method from secondary sources, so every constant is a parameter and the defaults are
 * documented as a reconstruction, not as the paper's exact method.
 *
 * Per (batch, head) slice and query row i, with n_i visible keys (cs: i + 1; ns, nc, cc:
 * all m) and cosine scores (q̂ = q / max(|q|, 1e-12), k̂ likewise, no 1/sqrt(d)):
 *
 *	c_i = scale · ln d · ln n_i
 *	a_ij = softplus(c_i q̂_i·k̂_j) / Σ_j' softplus(c_i q̂_i·k̂_j')		(LSSA)
 *	o_i = 0 when n_i <= 3, else offset
 *	r_ij = ((n_i a_ij − o_i) / (max_j' n_i a_ij' − o_i))^p, clamped at 0
 *	a'_ij = r_ij / Σ_j' r_ij', or a_ij when Σ r = 0 [harness]		(LSSAR)
 *	out_i = Σ_j a'_ij v_j
 *
 * softplus(x) = max(x, 0) + log1p(e^(−|x|)). The scaled form of r is max(0, n a − o)^p
 * divided by a constant of the row, which the last normalisation removes; it cannot
 * overflow, as (n a)^15 would in float32 past n a = 370. Written with the row's softplus
 * values sp_j and their sum Σ: n a_j − o = n (sp_j − t) / Σ with t = o Σ / n, so
 * x_j = (sp_j − t) / (max sp − t). Σ r is then 0 (max sp <= t: a uniform row, or o > 1) or
 * at least 1 (the largest key's x is 1).
 *
 * Work items are (batch, head, tile of SOFTPLUS_ROWS query rows), shared out dynamically
 * over OpenMP threads, OpenBLAS single-threaded inside. A tile's queries are normalised
 * and multiplied by their c_i, its scores against the keys it can see (cs: keys up to its
 * last row; key tiles above the diagonal are never computed) come from one sgemm, each
 * score row is then scaled by the keys' inverse norms and turned into weights in place
 * (softplus, row sum; then the re-weighting, a second pass), and a second sgemm takes
 * the product with V; each output row is divided by its weight sum. A thread holds one
 * tile of scores, SOFTPLUS_ROWS x m floats, never n x m.
 *
 * GQA (section 31): the keys' inverse norms, the one piece of work that depends on K
 * alone, are computed once per KV head before the tiles run, and read by every query
 * head of its group; the scores mix q with k, so the rest is per query head.
 *
 * Every row reads only its own query and the keys it may see, so cs and cc are causal.
 * No decoding: there is no recurrent form, and a KV-cache decoder is not required here.
 */
#include "variant.h"

#include <cblas.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "common.h"
#include "memory.h"
#include "threads.h"
#include "vexp.h"

enum softplus_param {
	SOFTPLUS_SCALE,
	SOFTPLUS_OFFSET,
	SOFTPLUS_POWER,
	SOFTPLUS_REWEIGHT,
	SOFTPLUS_PARAMS,
};

/* The catalogue's defaults (section 22), all part of the reconstruction. */
#define SOFTPLUS_SCALE_DEFAULT 1.0
#define SOFTPLUS_OFFSET_DEFAULT 1.0
#define SOFTPLUS_POWER_DEFAULT 15.0
#define SOFTPLUS_REWEIGHT_DEFAULT 1.0

/* The norm guard of q̂ and k̂ (section 22). */
#define SOFTPLUS_NORM_EPS 1e-12

/* Rows with n_i <= this many visible keys take o_i = 0 (section 22). */
#define SOFTPLUS_SMALL_ROW 3

/*
 * Query rows per work item: sgemm calls of 64 rows run near peak, and a thread's tile of
 * scores stays 64 x m floats (4 MiB at m = 16384).
 */
#define SOFTPLUS_ROWS 64

/* Below this many multiply-adds of scores a parallel region costs more than it saves. */
#define SOFTPLUS_PARALLEL_MIN (1 << 20)

/* Floats per cache line: every part of a thread's workspace starts on one. */
#define SOFTPLUS_LINE 16

/*
 * A row whose largest score is below this has every softplus below e^-30, where
 * softplus(x) = e^x (1 − e^x / 2 + ...) is e^x to 1e-13 relative: its weights are taken
 * as e^(x − max), the same a_ij in float32, so that the row's softplus values cannot all
 * underflow to a zero sum. Only reachable with a large scale and keys all facing away.
 */
#define SOFTPLUS_TINY_BELOW -30.0f

static const struct variant_param softplus_params[] = {
	[SOFTPLUS_SCALE] = {
		.name		= "scale",
		.def		= SOFTPLUS_SCALE_DEFAULT,
		.min		= 0,
		.max		= 100,
		.integer	= false,
		.help		= "multiplies c_i = ln d ln n_i, the scale of the cosine scores "
				  "[reconstruction: 1]",
	},
	[SOFTPLUS_OFFSET] = {
		.name		= "offset",
		.def		= SOFTPLUS_OFFSET_DEFAULT,
		.min		= 0,
		.max		= 1000,
		.integer	= false,
		.help		= "o in max(0, n a - o)^p for rows with more than 3 keys (else 0) "
				  "[reconstruction: 1]",
	},
	[SOFTPLUS_POWER] = {
		.name		= "power",
		.def		= SOFTPLUS_POWER_DEFAULT,
		.min		= 1,
		.max		= 1000,
		.integer	= false,
		.help		= "p in max(0, n a - o)^p [reconstruction: 15, the paper's headline; "
				  "3 its best at 1K]",
	},
	[SOFTPLUS_REWEIGHT] = {
		.name		= "reweight",
		.def		= SOFTPLUS_REWEIGHT_DEFAULT,
		.min		= 0,
		.max		= 1,
		.integer	= true,
		.help		= "1: LSSAR (re-weighted; a row with sum r = 0 keeps a [harness]), "
				  "0: LSSA",
	},
};

/* The parameters of one call, resolved. */
struct softplus_setup {
	double scale;		/* multiplies ln d ln n_i */
	float offset;		/* o for rows with more than SOFTPLUS_SMALL_ROW keys */
	float power;		/* p */
	bool reweight;		/* LSSAR; LSSA otherwise */
};

static void softplus_setup(const struct attn_problem *p, struct softplus_setup *st)
{
	const double *x = p->params;

	st->scale = x ? x[SOFTPLUS_SCALE] : SOFTPLUS_SCALE_DEFAULT;
	st->offset = (float)(x ? x[SOFTPLUS_OFFSET] : SOFTPLUS_OFFSET_DEFAULT);
	st->power = (float)(x ? x[SOFTPLUS_POWER] : SOFTPLUS_POWER_DEFAULT);
	st->reweight = (x ? x[SOFTPLUS_REWEIGHT] : SOFTPLUS_REWEIGHT_DEFAULT) != 0;
}

static size_t round_up(size_t x, size_t to)
{
	return (x + to - 1) / to * to;
}

/* ---- the elementwise passes over one score row ---- */

static inline float softplus1(float x)
{
	return fmaxf(x, 0) + log1pf(expf(-fabsf(x)));
}

/* max(x, 0)^p, 0 for x below the smallest normal float (whose power is 0 in float). */
static inline float power1(float x, float p)
{
	return x >= FLT_MIN ? powf(x, p) : 0;
}

#ifdef VEXP_AVX2
/*
 * log1p(u) for u in [0, 1], eight at a time: 2 atanh(s) with s = u / (2 + u) <= 1/3, by
 * the odd Taylor series of atanh to s^15 (the next term is below 2e-9 relative). Exact
 * in relative terms for tiny u, where log(1 + u) would round to 0.
 */
static inline __m256 log1p_v8(__m256 u)
{
	__m256 s = _mm256_div_ps(u, _mm256_add_ps(u, _mm256_set1_ps(2.0f)));
	__m256 s2 = _mm256_mul_ps(s, s);
	__m256 t = _mm256_set1_ps(2.0f / 15);

	t = _mm256_fmadd_ps(t, s2, _mm256_set1_ps(2.0f / 13));
	t = _mm256_fmadd_ps(t, s2, _mm256_set1_ps(2.0f / 11));
	t = _mm256_fmadd_ps(t, s2, _mm256_set1_ps(2.0f / 9));
	t = _mm256_fmadd_ps(t, s2, _mm256_set1_ps(2.0f / 7));
	t = _mm256_fmadd_ps(t, s2, _mm256_set1_ps(2.0f / 5));
	t = _mm256_fmadd_ps(t, s2, _mm256_set1_ps(2.0f / 3));
	t = _mm256_fmadd_ps(t, s2, _mm256_set1_ps(2.0f));
	return _mm256_mul_ps(t, s);
}

/* softplus(x) = max(x, 0) + log1p(e^(−|x|)), eight at a time. */
static inline __m256 softplus_v8(__m256 x)
{
	const __m256 log2e = _mm256_set1_ps((float)M_LOG2E);
	__m256 neg = _mm256_min_ps(x, _mm256_sub_ps(_mm256_setzero_ps(), x));

	return _mm256_add_ps(_mm256_max_ps(x, _mm256_setzero_ps()),
			     log1p_v8(exp2_v8(_mm256_mul_ps(neg, log2e))));
}

/*
 * log2(x) for normal x > 0, eight at a time: x = 2^e m with m in [sqrt(1/2), sqrt(2)),
 * log2 m = 2 atanh(s) / ln 2 with s = (m − 1) / (m + 1), |s| <= 0.172, by the odd
 * Taylor series to s^11 (the next term is below 1e-10 relative).
 */
static inline __m256 log2_v8(__m256 x)
{
	__m256i bits = _mm256_castps_si256(x);
	__m256i e = _mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(127));
	__m256 m = _mm256_castsi256_ps(_mm256_or_si256(
		_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)),
		_mm256_set1_epi32(0x3f800000)));
	__m256 big = _mm256_cmp_ps(m, _mm256_set1_ps((float)M_SQRT2), _CMP_GT_OQ);
	__m256 ef = _mm256_add_ps(_mm256_cvtepi32_ps(e),
				  _mm256_and_ps(big, _mm256_set1_ps(1.0f)));
	__m256 s, s2, t;

	m = _mm256_blendv_ps(m, _mm256_mul_ps(m, _mm256_set1_ps(0.5f)), big);
	s = _mm256_div_ps(_mm256_sub_ps(m, _mm256_set1_ps(1.0f)),
			  _mm256_add_ps(m, _mm256_set1_ps(1.0f)));
	s2 = _mm256_mul_ps(s, s);
	t = _mm256_set1_ps(1.0f / 11);
	t = _mm256_fmadd_ps(t, s2, _mm256_set1_ps(1.0f / 9));
	t = _mm256_fmadd_ps(t, s2, _mm256_set1_ps(1.0f / 7));
	t = _mm256_fmadd_ps(t, s2, _mm256_set1_ps(1.0f / 5));
	t = _mm256_fmadd_ps(t, s2, _mm256_set1_ps(1.0f / 3));
	t = _mm256_fmadd_ps(t, s2, _mm256_set1_ps(1.0f));
	t = _mm256_mul_ps(t, _mm256_mul_ps(s, _mm256_set1_ps((float)(2 * M_LOG2E))));
	return _mm256_add_ps(ef, t);
}

/* Sum of the eight lanes, in a fixed order. */
static inline float lanes_sum(__m256 x)
{
	float lanes[8], sum = 0;

	_mm256_storeu_ps(lanes, x);
	for (int l = 0; l < 8; l++)
		sum += lanes[l];
	return sum;
}

static inline float lanes_max(__m256 x)
{
	x = _mm256_max_ps(x, _mm256_permute2f128_ps(x, x, 1));
	x = _mm256_max_ps(x, _mm256_shuffle_ps(x, x, 0x4e));
	x = _mm256_max_ps(x, _mm256_shuffle_ps(x, x, 0xb1));
	return _mm256_cvtss_f32(x);
}
#endif

/* row[j] *= kinv[j] for j < n (n >= 1): the cosines' key norms. Returns the largest. */
static float scale_columns(float *row, const float *kinv, int n)
{
	float max = -INFINITY;
	int j = 0;

#ifdef VEXP_AVX2
	__m256 m = _mm256_set1_ps(-INFINITY);

	for (; j + 8 <= n; j += 8) {
		__m256 x = _mm256_mul_ps(_mm256_loadu_ps(row + j), _mm256_loadu_ps(kinv + j));

		_mm256_storeu_ps(row + j, x);
		m = _mm256_max_ps(m, x);
	}
	max = lanes_max(m);
#endif
	for (; j < n; j++) {
		row[j] *= kinv[j];
		max = row[j] > max ? row[j] : max;
	}
	return max;
}

/* row[j] = softplus(row[j]) for j < n; returns the sum, and the largest in *max. */
static float softplus_row(float *row, int n, float *max)
{
	float sum = 0, mx = 0;
	int j = 0;

#ifdef VEXP_AVX2
	__m256 acc = _mm256_setzero_ps(), m = _mm256_setzero_ps();

	for (; j + 8 <= n; j += 8) {
		__m256 x = softplus_v8(_mm256_loadu_ps(row + j));

		_mm256_storeu_ps(row + j, x);
		acc = _mm256_add_ps(acc, x);
		m = _mm256_max_ps(m, x);
	}
	sum = lanes_sum(acc);
	mx = lanes_max(m);
#endif
	for (; j < n; j++) {
		row[j] = softplus1(row[j]);
		sum += row[j];
		mx = row[j] > mx ? row[j] : mx;
	}
	*max = mx;
	return sum;
}

/*
 * row[j] = max(0, (row[j] − t) inv)^p for j < n, every row[j] <= t + 1/inv (so the base is
 * at most 1 and the power cannot overflow); returns the sum.
 */
static float power_row(float *row, int n, float t, float inv, float p)
{
	float sum = 0;
	int j = 0;

#ifdef VEXP_AVX2
	const __m256 vt = _mm256_set1_ps(t), vinv = _mm256_set1_ps(inv);
	const __m256 vp = _mm256_set1_ps(p), tiny = _mm256_set1_ps(FLT_MIN);
	__m256 acc = _mm256_setzero_ps();

	for (; j + 8 <= n; j += 8) {
		__m256 x = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(row + j), vt), vinv);
		__m256 live = _mm256_cmp_ps(x, tiny, _CMP_GE_OQ);
		/* x <= 1, so p log2 x <= 0 up to rounding; exp2_v8 wants it so */
		__m256 e = _mm256_min_ps(_mm256_mul_ps(vp, log2_v8(_mm256_max_ps(x, tiny))),
					 _mm256_setzero_ps());
		__m256 r = _mm256_and_ps(live, exp2_v8(e));

		_mm256_storeu_ps(row + j, r);
		acc = _mm256_add_ps(acc, r);
	}
	sum = lanes_sum(acc);
#endif
	for (; j < n; j++) {
		row[j] = power1((row[j] - t) * inv, p);
		sum += row[j];
	}
	return sum;
}

/*
 * Turns a row of scores c_i q̂_i·k_j, not yet divided by the key norms, into the weights
 * of its n = n_i visible keys (those after are zeroed up to len, for the product with V)
 * and returns their sum, by which the output row is divided.
 */
static float row_weights(const struct softplus_setup *st, float *row, const float *kinv,
			 int n, int len)
{
	float max_score = scale_columns(row, kinv, n), sum, max, t;

	for (int j = n; j < len; j++)
		row[j] = 0;
	if (max_score < SOFTPLUS_TINY_BELOW) {
		/* rare, so plain expf; the largest weight is 1 */
		sum = 0;
		for (int j = 0; j < n; j++) {
			row[j] = expf(row[j] - max_score);
			sum += row[j];
		}
		max = 1;
	} else {
		sum = softplus_row(row, n, &max);
	}
	if (!st->reweight)
		return sum;
	t = (n <= SOFTPLUS_SMALL_ROW ? 0 : st->offset) * sum / (float)n;
	/* Σ r = 0 when no weight is above t: keep a [harness] */
	if (!(max > t))
		return sum;
	return power_row(row, n, t, 1.0f / (max - t), st->power);
}

/* ---- forward ---- */

/* What one work item reads and where its thread's workspace is. */
struct softplus_tile {
	const struct softplus_setup *st;
	const float *q, *k, *v;	/* the (batch, head) slice */
	const float *kinv;	/* the inverse norms of its KV head's keys */
	float *out;
	int m, d;
	bool causal;
	float *s;		/* rows x keys scores, then weights */
	float *qs;		/* rows x d: q̂ c_i */
	float *den;		/* rows: the weight sums */
};

/* 1 / max(|x|, 1e-12) of a row of d floats, the norm summed in double. */
static float inverse_norm(const float *x, int d)
{
	double ss = 0;

	for (int c = 0; c < d; c++)
		ss += (double)x[c] * x[c];
	return (float)(1.0 / fmax(sqrt(ss), SOFTPLUS_NORM_EPS));
}

static void tile_run(struct softplus_tile *t, int q0, int rows)
{
	int d = t->d, keys = t->causal ? q0 + rows : t->m;
	double log_d = log((double)d);

	for (int r = 0; r < rows; r++) {
		const float *qi = t->q + (size_t)(q0 + r) * d;
		float *qs = t->qs + (size_t)r * d;
		int ni = t->causal ? q0 + r + 1 : t->m;
		float f = (float)(t->st->scale * log_d * log((double)ni)) * inverse_norm(qi, d);

		for (int c = 0; c < d; c++)
			qs[c] = f * qi[c];
	}
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, keys, d, 1.0f, t->qs, d,
		    t->k, d, 0.0f, t->s, keys);
	for (int r = 0; r < rows; r++) {
		int ni = t->causal ? q0 + r + 1 : t->m;

		t->den[r] = row_weights(t->st, t->s + (size_t)r * keys, t->kinv, ni, keys);
	}
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, keys, 1.0f, t->s, keys,
		    t->v, d, 0.0f, t->out + (size_t)q0 * d, d);
	for (int r = 0; r < rows; r++) {
		float *o = t->out + (size_t)(q0 + r) * d, inv = 1.0f / t->den[r];

		for (int c = 0; c < d; c++)
			o[c] *= inv;
	}
}

/* Floats of one thread's workspace: a tile of scores, its scaled queries, its sums. */
static size_t tile_floats(int bq, int m, int d)
{
	return round_up((size_t)bq * m, SOFTPLUS_LINE) + round_up((size_t)bq * d, SOFTPLUS_LINE) +
	       round_up((size_t)bq, SOFTPLUS_LINE);
}

static int softplus_forward(const struct attn_problem *p, const float *q, const float *k,
			    const float *v, float *out)
{
	int bq = p->n < SOFTPLUS_ROWS ? p->n : SOFTPLUS_ROWS;
	int tiles_q = (p->n + bq - 1) / bq, threads = max_threads(), saved;
	long items = (long)p->batch * p->heads * tiles_q;
	long keys = (long)p->batch * p->kv_heads * p->m;
	struct softplus_setup st;
	size_t per_thread;
	float *ws, *kinv;

	softplus_setup(p, &st);
	per_thread = tile_floats(bq, p->m, p->d);
	if ((double)threads * per_thread * sizeof(float) > (double)SIZE_MAX)
		return -ENOMEM;
	ws = attn_alloc((size_t)threads * per_thread * sizeof(float));
	kinv = attn_alloc((size_t)keys * sizeof(float));
	if (!ws || !kinv) {
		attn_free(ws);
		attn_free(kinv);
		return -ENOMEM;
	}

	saved = blas_serial_begin();
	#pragma omp parallel if ((double)p->batch * p->heads * p->n * p->m * p->d >= \
				 SOFTPLUS_PARALLEL_MIN)
	{
		float *base = ws + (size_t)thread_id() * per_thread;
		struct softplus_tile t = {
			.st	= &st,
			.m	= p->m,
			.d	= p->d,
			.causal	= p->pattern == ATTN_CS,
			.s	= base,
			.qs	= base + round_up((size_t)bq * p->m, SOFTPLUS_LINE),
		};

		t.den = t.qs + round_up((size_t)bq * p->d, SOFTPLUS_LINE);

		/* once per KV head, shared by its query group: K rows are contiguous */
		#pragma omp for schedule(static)
		for (long j = 0; j < keys; j++)
			kinv[j] = inverse_norm(k + (size_t)j * p->d, p->d);

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
			t.kinv = kinv + kvo / p->d;
			t.out = out + qo;
			tile_run(&t, q0, rows);
		}
	}
	blas_serial_end(saved);
	attn_free(kinv);
	attn_free(ws);
	return 0;
}

/*
 * The multiply-adds it does, two flops each: per query head and tile of r rows against
 * its K keys (cs: up to the tile's last row; otherwise m), the scores and the product
 * with V (2 · 2 r K d), and the query norms and scaling (3 r d); per KV head the key norms
 * (2 m d). The elementwise softplus, power and scalings are not counted, as no variant
 * counts its exponentials.
 */
static double softplus_flops(const struct attn_problem *p)
{
	int bq = p->n < SOFTPLUS_ROWS ? p->n : SOFTPLUS_ROWS;
	double d = p->d, products = 0;

	for (long q0 = 0; q0 < p->n; q0 += bq) {
		double rows = p->n - q0 < bq ? p->n - q0 : bq;
		double keys = p->pattern == ATTN_CS ? q0 + rows : p->m;

		products += 4 * rows * keys * d;
	}
	return (double)p->batch * p->heads * (products + 3.0 * p->n * d) +
	       (double)p->batch * p->kv_heads * 2.0 * p->m * d;
}

const struct variant_ops softplus_variant = {
	.name		= "softplus",
	.family		= "normalisation",
	.summary	= "LSSA/LSSAR: softplus of ln d ln n-scaled cosines, l1-normalised, "
			  "re-weighted by max(0, n a - o)^p [reconstruction, not the exact paper]",
	.citation	= "Gao & Spratling 2025, Softplus Attention with Re-weighting Boosts "
			  "Length Extrapolation in Large Language Models, arXiv preprint "
			  "2501.13428",
	.patterns	= PATTERNS_ALL,
	.extensions	= PATTERNS_ALL,
	.flags		= 0,
	.params		= softplus_params,
	.n_params	= SOFTPLUS_PARAMS,
	.forward	= softplus_forward,
	.flops		= softplus_flops,
	.state_bytes	= exact_attention_state_bytes,
};
