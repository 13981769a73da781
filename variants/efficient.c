/*
 * efficient.c - Efficient Attention (Shen et al. 2021): normalise Q over its features and
 * K over positions, then reassociate, O = ρ_q(Q) (ρ_k(K)ᵀ V), in O((n + m) d²).
 *
 * ρ_q(q_i) is the softmax over the d features of q_i; ρ_k the softmax of each feature
 * column c of K over the keys, so row c of the d x d global context G = ρ_k(K)ᵀ V is a
 * convex combination of values, and o_i = Σ_c ρ_q(q_i)_c G[c]. No 1/√d (the paper
 * applies the softmaxes to the raw projections). efficient.norm = 1 is the paper's
 * scaling normalisation instead, ρ_q = Q/√M, ρ_k = K/√M (see efficient_params for M).
 *
 * ns, nc, cc: G is built once per KV head (it reads only K and V) and shared by the query
 * heads of its group; then O = ρ_q(Q) G with cblas_sgemm. cc needs nothing else: the
 * column softmax runs over keys, all of which every row sees, and ρ_q is per row.
 *
 * cs (a harness extension): row i uses G_i built from keys j <= i, with a running max m_c
 * per channel. By chunks of rows with BLAS, never a loop over tokens: with E_jc =
 * e^{k_jc - m_c} for the chunk's keys, den_i[c] the carried denominator plus the prefix
 * sum of E inside the chunk, and W_ic = ρ_q(q_i)_c / den_i[c],
 *
 *	O_chunk = W Carried + mask_{j <= i}(W Eᵀ) V_chunk,	Carried += Eᵀ V_chunk,
 *
 * where Carried (d x d) and the denominators are kept relative to m_c and rescaled by
 * e^{m_old - m_new} when a chunk raises m_c. Incremental decoding carries exactly that
 * state per KV head and adds one key at a time.
 */
#include "variant.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "common.h"
#include "memory.h"
#include "threads.h"
#include "vexp.h"

enum efficient_norm {
	EFFICIENT_SOFTMAX = 0,	/* softmax over features (Q) and over positions (K) */
	EFFICIENT_SCALE = 1,	/* ρ_q = Q/√M, ρ_k = K/√M */
};

#define EFFICIENT_NORM_DEFAULT EFFICIENT_SOFTMAX

/*
 * Rows per chunk in cs (and per block of queries elsewhere): the c x c intra-chunk
 * products then cost about what the d x d state update does at d = 64.
 */
#define EFFICIENT_CHUNK 64

/*
 * In cs every row of a chunk is measured against the chunk's largest key per channel,
 * so a row before a much larger key gets a denominator of e^{-(rise)} and the product
 * W Eᵀ carries e^{+rise}. Up to 60 (1e-26 and 1e26) float holds both with the terms
 * that matter still normal numbers; a chunk whose max rises more than that inside it
 * is halved until it does not (one row always qualifies), so no input underflows.
 */
#define EFFICIENT_MAX_RISE 60.0f

/*
 * Below this many multiply-adds per decode step (KV slices x d x d) a parallel region
 * costs more than it saves.
 */
#define EFFICIENT_DECODE_PARALLEL_MIN 32768

/*
 * The scaling normalisation: the paper writes ρ_q = Q/√n, ρ_k = K/√n for self attention,
 * so that ρ_q(Q) ρ_k(K)ᵀ = QKᵀ/n, its "scaling normalisation" of dot-product attention
 * that averages over the n keys. For cross attention (n queries, m keys) we keep that
 * meaning and use M = the number of keys a row sees for both factors (m in ns, nc, cc;
 * i + 1 for row i in cs) rather than √n on the query side: an output row then does not
 * depend on how many other queries there are (cc and decoding could not know), and a cs
 * row equals the noncausal form applied to its own prefix, as with the softmax.
 */
static const struct variant_param efficient_params[] = {
	{
		.name		= "norm",
		.def		= EFFICIENT_NORM_DEFAULT,
		.min		= 0,
		.max		= 1,
		.integer	= true,
		.help		= "0 softmax (rho_q over features, rho_k over positions); "
				  "1 scale: Q/sqrt(M), K/sqrt(M), M = keys a row sees "
				  "(m; cs: i+1)",
	},
};

static int efficient_norm(const struct attn_problem *p)
{
	return p->params ? (int)p->params[0] : EFFICIENT_NORM_DEFAULT;
}

/* out = softmax of the d features of x; out is also scratch for the shifts. */
static void softmax_features(const float *x, int d, float *out)
{
	float max = x[0], sum = 0;

	for (int c = 1; c < d; c++)
		max = fmaxf(max, x[c]);
	for (int c = 0; c < d; c++)
		out[c] = max;
	exp_shifted(out, x, out, d);
	for (int c = 0; c < d; c++)
		sum += out[c];
	for (int c = 0; c < d; c++)
		out[c] /= sum;
}

/* Floats of scratch one (batch, KV head) slice needs, forward or causal. */
static size_t efficient_scratch_floats(int d)
{
	size_t c = EFFICIENT_CHUNK, dd = (size_t)d;

	/* state d x d, three d-vectors, E, den and W chunks, the c x c scores */
	return dd * dd + 3 * dd + 3 * c * dd + c * c;
}

/*
 * g (d x d) = ρ_k(K)ᵀ V over all m keys of one KV slice. Softmax: each channel is shifted
 * by its largest key, so every column sum is >= 1. Scratch: d + d + EFFICIENT_CHUNK * d.
 */
static void build_context(int norm, const float *k, const float *v, int m, int d, float *g,
			  float *scratch)
{
	float *colmax = scratch, *colsum = colmax + d, *e = colsum + d;

	if (norm == EFFICIENT_SCALE) {
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, d, m,
			    1.0f / sqrtf((float)m), k, d, v, d, 0.0f, g, d);
		return;
	}
	for (int c = 0; c < d; c++) {
		colmax[c] = -INFINITY;
		colsum[c] = 0;
	}
	for (int j = 0; j < m; j++)
		for (int c = 0; c < d; c++)
			colmax[c] = fmaxf(colmax[c], k[(size_t)j * d + c]);
	for (int r0 = 0; r0 < m; r0 += EFFICIENT_CHUNK) {
		int rows = m - r0 < EFFICIENT_CHUNK ? m - r0 : EFFICIENT_CHUNK;
		const float *kc = k + (size_t)r0 * d;

		for (int j = 0; j < rows; j++) {
			exp_shifted(e + (size_t)j * d, kc + (size_t)j * d, colmax, d);
			for (int c = 0; c < d; c++)
				colsum[c] += e[(size_t)j * d + c];
		}
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, d, rows, 1.0f, e, d,
			    v + (size_t)r0 * d, d, r0 ? 1.0f : 0.0f, g, d);
	}
	for (int c = 0; c < d; c++)
		for (int x = 0; x < d; x++)
			g[(size_t)c * d + x] /= colsum[c];
}

/*
 * out (n x d) = ρ_q(Q) g for one query slice; m keys made g. Scratch: EFFICIENT_CHUNK * d.
 */
static void apply_context(int norm, const float *g, const float *q, int n, int m, int d,
			  float *out, float *scratch)
{
	if (norm == EFFICIENT_SCALE) {
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, d, d,
			    1.0f / sqrtf((float)m), q, d, g, d, 0.0f, out, d);
		return;
	}
	for (int r0 = 0; r0 < n; r0 += EFFICIENT_CHUNK) {
		int rows = n - r0 < EFFICIENT_CHUNK ? n - r0 : EFFICIENT_CHUNK;

		for (int i = 0; i < rows; i++)
			softmax_features(q + (size_t)(r0 + i) * d, d, scratch + (size_t)i * d);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, d, 1.0f,
			    scratch, d, g, d, 0.0f, out + (size_t)r0 * d, d);
	}
}

/*
 * Rows of the cs chunk that starts with key row kc (at most `rows`): halved until no
 * channel's largest key in it exceeds the max known at its first row (carried max and
 * that row) by more than EFFICIENT_MAX_RISE.
 */
static int chunk_rows(const float *kc, const float *mx, int rows, int d)
{
	for (;;) {
		bool ok = true;

		for (int c = 0; c < d && ok; c++) {
			float first = fmaxf(mx[c], kc[c]), top = first;

			for (int j = 1; j < rows; j++)
				top = fmaxf(top, kc[(size_t)j * d + c]);
			ok = top - first <= EFFICIENT_MAX_RISE;
		}
		if (ok || rows == 1)
			return rows;
		rows /= 2;
	}
}

/*
 * The cs outputs of the `group` query heads (slices q_stride apart in q and out) that read
 * one KV slice of n keys and values. See the file comment for the chunk equations.
 */
static void efficient_causal(int norm, const float *q, const float *k, const float *v, int n,
			     int d, int group, size_t q_stride, float *out, float *scratch)
{
	const int chunk = EFFICIENT_CHUNK;
	float *carried = scratch, *den = carried + (size_t)d * d, *mx = den + d;
	float *top = mx + d, *e = top + d, *dsum = e + (size_t)chunk * d;
	float *w = dsum + (size_t)chunk * d, *a = w + (size_t)chunk * d;

	memset(carried, 0, sizeof(float) * d * d);
	for (int c = 0; c < d; c++) {
		den[c] = 0;
		mx[c] = -INFINITY;
	}
	for (int r0 = 0, rows; r0 < n; r0 += rows) {
		const float *kc = k + (size_t)r0 * d, *vc = v + (size_t)r0 * d, *wk = kc;

		rows = n - r0 < chunk ? n - r0 : chunk;
		if (norm == EFFICIENT_SOFTMAX) {
			rows = chunk_rows(kc, mx, rows, d);
			/* raise each channel's max to the chunk's, rescaling what is carried */
			for (int c = 0; c < d; c++) {
				top[c] = mx[c];
				for (int j = 0; j < rows; j++)
					top[c] = fmaxf(top[c], kc[(size_t)j * d + c]);
			}
			for (int c = 0; c < d; c++) {
				float f;

				if (!(top[c] > mx[c]))
					continue;
				/* the first chunk has nothing carried: e^{-inf} = 0 times 0 */
				f = expf(mx[c] - top[c]);
				for (int x = 0; x < d; x++)
					carried[(size_t)c * d + x] *= f;
				den[c] *= f;
				mx[c] = top[c];
			}
			/* E and the denominators each row of the chunk sees */
			for (int j = 0; j < rows; j++)
				for (int c = 0; c < d; c++) {
					size_t at = (size_t)j * d + c;

					e[at] = expf(kc[at] - mx[c]);
					dsum[at] = (j ? dsum[at - d] : den[c]) + e[at];
				}
			wk = e;
		}
		for (int hq = 0; hq < group; hq++) {
			const float *qc = q + hq * q_stride + (size_t)r0 * d, *wq = qc;
			float *o = out + hq * q_stride + (size_t)r0 * d;

			if (norm == EFFICIENT_SOFTMAX) {
				for (int i = 0; i < rows; i++) {
					float *wi = w + (size_t)i * d;

					softmax_features(qc + (size_t)i * d, d, wi);
					for (int c = 0; c < d; c++)
						wi[c] /= dsum[(size_t)i * d + c];
				}
				wq = w;
			}
			/* what the chunks before this one left, then j <= i inside it */
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, d, 1.0f,
				    wq, d, carried, d, 0.0f, o, d);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, rows, d, 1.0f,
				    wq, d, wk, d, 0.0f, a, rows);
			for (int i = 0; i < rows; i++)
				for (int j = i + 1; j < rows; j++)
					a[(size_t)i * rows + j] = 0;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, rows, 1.0f,
				    a, rows, vc, d, 1.0f, o, d);
			/* scale: ρ_q ρ_kᵀ = qkᵀ/(i + 1), the keys row i sees */
			if (norm == EFFICIENT_SCALE)
				for (int i = 0; i < rows; i++)
					for (int x = 0; x < d; x++)
						o[(size_t)i * d + x] /= (float)(r0 + i + 1);
		}
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, d, rows, 1.0f, wk, d, vc,
			    d, 1.0f, carried, d);
		if (norm == EFFICIENT_SOFTMAX)
			memcpy(den, dsum + (size_t)(rows - 1) * d, sizeof(float) * d);
	}
}

static int efficient_forward(const struct attn_problem *p, const float *q, const float *k,
			     const float *v, float *out)
{
	int norm = efficient_norm(p), d = p->d, group = p->heads / p->kv_heads;
	int slices = p->batch * p->kv_heads, threads = max_threads(), saved;
	bool parallel;
	size_t per = efficient_scratch_floats(d), q_stride = (size_t)p->n * d;
	float *scratch;

	/* one slice: no region of ours, so BLAS may use the threads itself */
	parallel = slices > 1 && threads > 1;
	scratch = attn_alloc((size_t)(parallel ? threads : 1) * per * sizeof(float));
	if (!scratch)
		return -ENOMEM;
	saved = parallel ? blas_serial_begin() : -1;
	#pragma omp parallel for schedule(static) if (parallel)
	for (int s = 0; s < slices; s++) {
		int b = s / p->kv_heads, h0 = s % p->kv_heads * group;
		size_t qo = problem_q_offset(p, b, h0), kvo = problem_kv_offset(p, b, h0);
		float *ws = scratch + (size_t)thread_id() * per;

		if (p->pattern == ATTN_CS) {
			efficient_causal(norm, q + qo, k + kvo, v + kvo, p->n, d, group, q_stride,
					 out + qo, ws);
			continue;
		}
		/* G once per KV head, then each query head of the group */
		build_context(norm, k + kvo, v + kvo, p->m, d, ws, ws + (size_t)d * d);
		for (int hq = 0; hq < group; hq++)
			apply_context(norm, ws, q + qo + hq * q_stride, p->n, p->m, d,
				      out + qo + hq * q_stride, ws + (size_t)d * d);
	}
	if (parallel)
		blas_serial_end(saved);
	attn_free(scratch);
	return 0;
}

/*
 * 2 flops per multiply-add: G (m d² per KV head) and ρ_q(Q) G (n d² per query head); in
 * cs per chunk of c rows the carried product and update (c d² each) and the two c x c
 * intra-chunk products (c² d each, counted whole).
 */
static double efficient_flops(const struct attn_problem *p)
{
	double d = p->d, kv = (double)p->batch * p->kv_heads, qh = (double)p->batch * p->heads;
	double f = 2.0 * (kv * p->m * d * d + qh * p->n * d * d);

	if (p->pattern == ATTN_CS)
		for (int r0 = 0; r0 < p->n; r0 += EFFICIENT_CHUNK) {
			double c = p->n - r0 < EFFICIENT_CHUNK ? p->n - r0 : EFFICIENT_CHUNK;

			f += 2.0 * qh * 2 * c * c * d;
		}
	return f;
}

/*
 * Floats kept per KV head, times batch * kv_heads, float32: the d x d numerator of G, and
 * with the softmax its d column denominators, plus in cs the d running channel maxima
 * they are measured against. Scale keeps only Σ k vᵀ (the key count is a shape).
 */
static double efficient_state_bytes(const struct attn_problem *p)
{
	double d = p->d, floats = d * d;

	if (efficient_norm(p) == EFFICIENT_SOFTMAX)
		floats += p->pattern == ATTN_CS ? 2 * d : d;
	return floats * sizeof(float) * p->batch * p->kv_heads;
}

/* Incremental decoding (cs): the carried state of efficient_causal() per KV head. */
struct efficient_decode {
	struct attn_problem p;	/* n = m = capacity in positions; params NULL */
	int norm;
	int len;		/* positions fed so far */
	int threads;		/* scratch rows; the most threads a step runs on */
	size_t stride;		/* floats per KV head: numerator, then denominators, maxima */
	float *state;		/* [batch * kv_heads][stride] */
	float *scratch;		/* [threads][d] */
};

static void efficient_decode_free(void *state)
{
	struct efficient_decode *st = state;

	if (!st)
		return;
	attn_free(st->scratch);
	attn_free(st->state);
	attn_free(st);
}

static int efficient_decode_init(const struct attn_problem *p, void **state)
{
	struct efficient_decode *st;
	size_t slices;
	int ret;

	*state = NULL;
	ret = decode_check_problem(p);
	if (ret)
		return ret;
	st = attn_calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->p = decode_problem(p);
	st->norm = efficient_norm(p);
	st->threads = max_threads();
	st->stride = (size_t)p->d * p->d;
	if (st->norm == EFFICIENT_SOFTMAX)
		st->stride += 2 * (size_t)p->d;
	slices = (size_t)p->batch * p->kv_heads;
	st->state = attn_calloc(slices * st->stride, sizeof(float));
	st->scratch = attn_calloc((size_t)st->threads * p->d, sizeof(float));
	if (!st->state || !st->scratch) {
		efficient_decode_free(st);
		return -ENOMEM;
	}
	if (st->norm == EFFICIENT_SOFTMAX)
		for (size_t s = 0; s < slices; s++)
			for (int c = 0; c < p->d; c++)
				st->state[s * st->stride + st->stride - p->d + c] = -INFINITY;
	*state = st;
	return 0;
}

/* Adds key k and value v of one position to a KV head's state. */
static void decode_add(int norm, float *state, const float *k, const float *v, int d)
{
	float *num = state, *den = num + (size_t)d * d, *mx = den + d;

	for (int c = 0; c < d; c++) {
		float *row = num + (size_t)c * d, e = k[c];

		if (norm == EFFICIENT_SOFTMAX) {
			if (k[c] > mx[c]) {
				/* nothing yet: e^{-inf} = 0 times the zero state */
				float f = expf(mx[c] - k[c]);

				for (int x = 0; x < d; x++)
					row[x] *= f;
				den[c] *= f;
				mx[c] = k[c];
			}
			e = expf(k[c] - mx[c]);
			den[c] += e;
		}
		for (int x = 0; x < d; x++)
			row[x] += e * v[x];
	}
}

/* out = the output of query q at position t (t + 1 keys fed) against a KV head's state. */
static void decode_query(int norm, const float *state, const float *q, int d, int t,
			 float *w, float *out)
{
	const float *num = state, *den = num + (size_t)d * d;

	if (norm == EFFICIENT_SOFTMAX) {
		softmax_features(q, d, w);
		for (int c = 0; c < d; c++)
			w[c] /= den[c];
	} else {
		memcpy(w, q, sizeof(float) * d);
	}
	for (int x = 0; x < d; x++)
		out[x] = 0;
	for (int c = 0; c < d; c++)
		for (int x = 0; x < d; x++)
			out[x] += w[c] * num[(size_t)c * d + x];
	if (norm == EFFICIENT_SCALE)
		for (int x = 0; x < d; x++)
			out[x] /= (float)(t + 1);
}

static int efficient_decode_step(void *state, const float *q, const float *k, const float *v,
				 float *out)
{
	struct efficient_decode *st = state;
	const struct attn_problem *p = &st->p;
	int slices = p->batch * p->kv_heads, d = p->d, t = st->len;
	int group = p->heads / p->kv_heads;

	if (t >= p->m)
		return -ENOSPC;
	st->len++;

	#pragma omp parallel for num_threads(st->threads) schedule(static) \
		if ((double)slices * group * d * d >= EFFICIENT_DECODE_PARALLEL_MIN)
	for (int s = 0; s < slices; s++) {
		float *kvs = st->state + (size_t)s * st->stride;
		float *w = st->scratch + (size_t)thread_id() * d;

		decode_add(st->norm, kvs, k + (size_t)s * d, v + (size_t)s * d, d);
		/* query heads s * group.. read KV head s (batch-major in both layouts) */
		for (int hq = 0; hq < group; hq++) {
			size_t qi = ((size_t)s * group + hq) * d;

			decode_query(st->norm, kvs, q + qi, d, t, w, out + qi);
		}
	}
	return 0;
}

const struct variant_ops efficient_variant = {
	.name		= "efficient",
	.family		= "linear",
	.summary	= "softmax Q over features, K over positions, then Q (K^T V)",
	.citation	= "Shen et al. 2021, Efficient Attention: Attention with Linear "
			  "Complexities, WACV (arXiv 1812.01243)",
	.patterns	= PATTERNS_ALL,
	.extensions	= PATTERN_BIT(ATTN_CS),
	.flags		= 0,
	.params		= efficient_params,
	.n_params	= 1,
	.forward	= efficient_forward,
	.flops		= efficient_flops,
	.state_bytes	= efficient_state_bytes,
	.decode_init	= efficient_decode_init,
	.decode_step	= efficient_decode_step,
	.decode_free	= efficient_decode_free,
};
