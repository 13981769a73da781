/*
 * nystrom.c - Nyströmformer attention as CAB's NystromAttention (Xiong et al. 2021).
 *
 * Per (batch, head) slice, with C landmarks: Q̃ and K̃ are the means of C segments of
 * the query and key rows (CAB's segmentation, segment_bounds()), and
 *
 *	F₁ = softmax(τ Q K̃ᵀ) (N x C), F₂ = softmax(τ Q̃ K̃ᵀ) (C x C), F₃ = softmax(τ Q̃ Kᵀ) (C x M)
 *	O = F₁ · (pinv(F₂) · (F₃ V))
 *
 * with pinv(F₂) by the iteration Z₀ = F₂ᵀ / max column sum of F₂,
 * Z ← ¼ Z (13I − F₂Z (15I − F₂Z (7I − F₂Z))). Products are OpenBLAS sgemm calls, the
 * slices run in parallel with single-threaded BLAS inside; F₁ is made by blocks of rows,
 * so a thread's workspace is C (4d + 5C + M + 256) floats at most, never N x M.
 *
 * Self attention with N <= C is exact softmax attention (CAB's fallback). τ = 1/√d by
 * default (the original Nyströmformer's d^-1/4 on each side); nystrom.cab_exact=1 takes
 * CAB's τ = 1/d (q and k each divided by √d, so its fallback is softmax(QKᵀ/d)V, not
 * vanilla) and the Z₀ maximum over every slice of the batch, which couples slices.
 *
 * nc is a harness extension: Q̃ from Q, K̃ from K, refused unless N, M >= C. cs and cc
 * are refused: landmarks mix every row. No decoding: there is no recurrent form.
 */
#include "variant.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "memory.h"
#include "threads.h"

enum nystrom_param {
	NYSTROM_LANDMARKS,
	NYSTROM_ITERS,
	NYSTROM_CAB_EXACT,
};

#define NYSTROM_LANDMARKS_DEFAULT 16	/* CAB's num_landmarks */
#define NYSTROM_ITERS_DEFAULT 6		/* CAB's and the paper's pinv_iterations */

/* Rows of F₁ made at a time: sgemm calls big enough to run well, a bounded workspace. */
#define NYSTROM_ROWS 256

static const struct variant_param nystrom_params[] = {
	[NYSTROM_LANDMARKS] = {
		.name		= "landmarks",
		.def		= NYSTROM_LANDMARKS_DEFAULT,
		.min		= 1,
		.max		= 4096,
		.integer	= true,
		.help		= "C: segment-mean landmarks; self attention with N <= C is exact",
	},
	[NYSTROM_ITERS] = {
		.name		= "iters",
		.def		= NYSTROM_ITERS_DEFAULT,
		.min		= 0,
		.max		= 100,
		.integer	= true,
		.help		= "iterations of the pseudo-inverse of the landmark kernel",
	},
	[NYSTROM_CAB_EXACT] = {
		.name		= "cab_exact",
		.def		= 0,
		.min		= 0,
		.max		= 1,
		.integer	= true,
		.help		= "1: CAB's scores q.k/d, pinv start scaled over the whole batch",
	},
};

/* The parameters of one call, resolved. */
struct nystrom_setup {
	int c;			/* landmarks */
	int iters;		/* pinv iterations */
	bool cab_exact;		/* τ = 1/d and a Z₀ scale shared by all slices */
	bool exact;		/* self attention with N <= C: plain softmax attention */
	float tau;		/* score scale */
	size_t ws;		/* floats of workspace per thread */
};

static void nystrom_setup(const struct attn_problem *p, struct nystrom_setup *st)
{
	int rows;

	st->c = p->params ? (int)p->params[NYSTROM_LANDMARKS] : NYSTROM_LANDMARKS_DEFAULT;
	st->iters = p->params ? (int)p->params[NYSTROM_ITERS] : NYSTROM_ITERS_DEFAULT;
	st->cab_exact = p->params && p->params[NYSTROM_CAB_EXACT] != 0;
	st->exact = p->pattern == ATTN_NS && p->n <= st->c;
	st->tau = (float)(st->cab_exact ? 1.0 / p->d : 1.0 / sqrt((double)p->d));
	if (st->exact) {
		/* the n x m scores, n = m <= C */
		st->ws = (size_t)p->n * p->m;
		return;
	}
	rows = p->n < NYSTROM_ROWS ? p->n : NYSTROM_ROWS;
	/* Q̃, K̃, F₃V, pinv·F₃V; F₂, Z and three C x C temporaries; F₃; a block of F₁ */
	st->ws = (size_t)st->c * (4 * (size_t)p->d + 5 * (size_t)st->c + p->m + rows);
}

static int nystrom_supports(const struct attn_problem *p)
{
	int c = p->params ? (int)p->params[NYSTROM_LANDMARKS] : NYSTROM_LANDMARKS_DEFAULT;

	if (p->pattern == ATTN_NS)
		return 0;
	if (p->pattern == ATTN_NC && p->n >= c && p->m >= c)
		return 0;
	return -ENOTSUP;
}

/* Each row of s (rows x cols, scaled scores) replaced by its softmax. */
static void softmax_rows(float *s, int rows, int cols)
{
	for (int i = 0; i < rows; i++) {
		float *r = s + (size_t)i * cols, max = r[0], sum = 0;

		for (int j = 1; j < cols; j++)
			max = fmaxf(max, r[j]);
		for (int j = 0; j < cols; j++) {
			r[j] = expf(r[j] - max);
			sum += r[j];
		}
		for (int j = 0; j < cols; j++)
			r[j] /= sum;
	}
}

/* Largest column sum of a (c x c): the Z₀ scale. */
static float max_column_sum(const float *a, int c)
{
	float best = 0;

	for (int col = 0; col < c; col++) {
		float sum = 0;

		for (int r = 0; r < c; r++)
			sum += a[(size_t)r * c + col];
		best = fmaxf(best, sum);
	}
	return best;
}

/*
 * Q̃ (qt), K̃ (kt) and F₂ (f2) of one slice; returns F₂'s largest column sum. Shared by
 * the pass that finds CAB's batch-wide maximum and the main pass, so both see the same F₂.
 */
static float landmark_kernel(const struct nystrom_setup *st, const float *q, const float *k,
			     int n, int m, int d, float *qt, float *kt, float *f2)
{
	memset(qt, 0, sizeof(float) * st->c * d);
	memset(kt, 0, sizeof(float) * st->c * d);
	segment_means_add(q, n, d, st->c, qt);
	segment_means_add(k, m, d, st->c, kt);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, st->c, st->c, d, st->tau, qt, d,
		    kt, d, 0.0f, f2, st->c);
	softmax_rows(f2, st->c, st->c);
	return max_column_sum(f2, st->c);
}

/* a (c x c) = value * I. */
static void set_identity(float *a, int c, float value)
{
	memset(a, 0, sizeof(float) * c * c);
	for (int i = 0; i < c; i++)
		a[(size_t)i * c + i] = value;
}

/*
 * z (c x c) = pinv(f2) by `iters` steps from Z₀ = f2ᵀ / scale; kz, t1, t2 are c x c
 * scratch. Each step is four c x c products; the identity terms are preloaded so that
 * sgemm's beta adds them.
 */
static void pinv(const float *f2, int c, int iters, float scale, float *z, float *kz,
		 float *t1, float *t2)
{
	for (int r = 0; r < c; r++)
		for (int col = 0; col < c; col++)
			z[(size_t)col * c + r] = f2[(size_t)r * c + col] / scale;
	for (int it = 0; it < iters; it++) {
		/* kz = F₂Z; t1 = 7I − kz */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c, c, c, 1.0f, f2, c,
			    z, c, 0.0f, kz, c);
		for (size_t x = 0; x < (size_t)c * c; x++)
			t1[x] = -kz[x];
		for (int i = 0; i < c; i++)
			t1[(size_t)i * c + i] += 7.0f;
		/* t2 = 15I − kz t1 */
		set_identity(t2, c, 15.0f);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c, c, c, -1.0f, kz, c,
			    t1, c, 1.0f, t2, c);
		/* t1 = 13I − kz t2 */
		set_identity(t1, c, 13.0f);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c, c, c, -1.0f, kz, c,
			    t2, c, 1.0f, t1, c);
		/* Z = ¼ Z t1 */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c, c, c, 0.25f, z, c,
			    t1, c, 0.0f, t2, c);
		memcpy(z, t2, sizeof(float) * c * c);
	}
}

/* Self attention with n <= C: softmax(τ QKᵀ) V directly; ws holds the n x n scores. */
static void exact_slice(const struct nystrom_setup *st, const float *q, const float *k,
			const float *v, int n, int d, float *ws, float *out)
{
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, d, st->tau, q, d, k, d,
		    0.0f, ws, n);
	softmax_rows(ws, n, n);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, d, n, 1.0f, ws, n, v, d,
		    0.0f, out, d);
}

/*
 * One slice by the Nyström formula. `shared_scale` is the batch-wide Z₀ scale in
 * cab_exact mode, 0 for this slice's own.
 */
static void nystrom_slice(const struct nystrom_setup *st, const float *q, const float *k,
			  const float *v, int n, int m, int d, float shared_scale, float *ws,
			  float *out)
{
	int c = st->c;
	float *qt = ws, *kt = qt + (size_t)c * d, *w = kt + (size_t)c * d;
	float *x = w + (size_t)c * d, *f2 = x + (size_t)c * d, *z = f2 + (size_t)c * c;
	float *t0 = z + (size_t)c * c, *t1 = t0 + (size_t)c * c, *t2 = t1 + (size_t)c * c;
	float *f3 = t2 + (size_t)c * c, *f1 = f3 + (size_t)c * m;
	float scale = landmark_kernel(st, q, k, n, m, d, qt, kt, f2);

	pinv(f2, c, st->iters, shared_scale > 0 ? shared_scale : scale, z, t0, t1, t2);
	/* w = F₃V, x = Z w */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c, m, d, st->tau, qt, d, k, d,
		    0.0f, f3, m);
	softmax_rows(f3, c, m);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c, d, m, 1.0f, f3, m, v, d,
		    0.0f, w, d);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c, d, c, 1.0f, z, c, w, d,
		    0.0f, x, d);
	/* O = F₁ x, by blocks of rows */
	for (int r0 = 0; r0 < n; r0 += NYSTROM_ROWS) {
		int rows = n - r0 < NYSTROM_ROWS ? n - r0 : NYSTROM_ROWS;

		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, c, d, st->tau,
			    q + (size_t)r0 * d, d, kt, d, 0.0f, f1, c);
		softmax_rows(f1, rows, c);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, c, 1.0f, f1, c,
			    x, d, 0.0f, out + (size_t)r0 * d, d);
	}
}

/*
 * CAB's Z₀ scale: the largest column sum of F₂ over every slice of the batch. Each
 * slice's F₂ is computed here and again in the main pass, identically.
 */
static float shared_pinv_scale(const struct attn_problem *p, const struct nystrom_setup *st,
			       const float *q, const float *k, float *ws)
{
	int slices = p->batch * p->heads;
	float best = 0;

	#pragma omp parallel for schedule(static) reduction(max:best)
	for (int i = 0; i < slices; i++) {
		int b = i / p->heads, h = i % p->heads;
		float *qt = ws + (size_t)thread_id() * st->ws;
		float *kt = qt + (size_t)st->c * p->d, *f2 = kt + (size_t)st->c * p->d;
		float s = landmark_kernel(st, q + problem_q_offset(p, b, h),
					  k + problem_kv_offset(p, b, h), p->n, p->m, p->d, qt,
					  kt, f2);

		best = fmaxf(best, s);
	}
	return best;
}

static int nystrom_forward(const struct attn_problem *p, const float *q, const float *k,
			   const float *v, float *out)
{
	int slices = p->batch * p->heads, threads = max_threads(), saved;
	struct nystrom_setup st;
	float shared = 0;
	float *ws;

	if (!(p->pattern == ATTN_NS || p->pattern == ATTN_NC) || nystrom_supports(p))
		return -ENOTSUP;
	nystrom_setup(p, &st);
	ws = attn_alloc((size_t)threads * st.ws * sizeof(float));
	if (!ws)
		return -ENOMEM;

	saved = blas_serial_begin();
	if (st.cab_exact && !st.exact)
		shared = shared_pinv_scale(p, &st, q, k, ws);
	#pragma omp parallel for schedule(static)
	for (int i = 0; i < slices; i++) {
		int b = i / p->heads, h = i % p->heads;
		size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);
		float *tws = ws + (size_t)thread_id() * st.ws;

		if (st.exact)
			exact_slice(&st, q + qo, k + kvo, v + kvo, p->n, p->d, tws, out + qo);
		else
			nystrom_slice(&st, q + qo, k + kvo, v + kvo, p->n, p->m, p->d, shared,
				      tws, out + qo);
	}
	blas_serial_end(saved);
	attn_free(ws);
	return 0;
}

/*
 * 2 flops per multiply-add: F₁ and F₁x (2NCd), F₃ and F₃V (2CMd), F₂ and Zw (2C²d),
 * four C x C x C products per pinv step; the exact path as exact attention.
 */
static double nystrom_flops(const struct attn_problem *p)
{
	struct nystrom_setup st;
	double c, per_slice;

	nystrom_setup(p, &st);
	if (st.exact)
		return exact_attention_flops(p);
	c = st.c;
	per_slice = 2.0 * (2.0 * p->n * c * p->d + 2.0 * c * p->m * p->d + 2.0 * c * c * p->d +
			   4.0 * st.iters * c * c * c);
	return per_slice * p->batch * p->heads;
}

/*
 * What the outputs are produced from, float32: per query head, K̃ (C x d) against which
 * each query's F₁ row is scored, and pinv(F₂)·F₃V (C x d) that F₁ mixes, so
 * 2 · batch · heads · C · d · 4 bytes. The exact path (self attention, N <= C) keeps
 * the keys and values themselves: the KV cache of M positions per KV head.
 */
static double nystrom_state_bytes(const struct attn_problem *p)
{
	struct nystrom_setup st;

	nystrom_setup(p, &st);
	if (st.exact)
		return kv_cache_bytes(p, p->m);
	return 2.0 * p->batch * p->heads * st.c * p->d * sizeof(float);
}

const struct variant_ops nystrom_variant = {
	.name		= "nystrom",
	.family		= "lowrank",
	.summary	= "Nystrom: segment-mean landmarks, iterative pseudo-inverse of the "
			  "landmark kernel",
	.citation	= "Xiong et al. 2021, Nystromformer: A Nystrom-Based Algorithm for "
			  "Approximating Self-Attention, AAAI; CAB NystromAttention",
	.patterns	= PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_NC),
	.extensions	= PATTERN_BIT(ATTN_NC),
	.flags		= 0,
	.params		= nystrom_params,
	.n_params	= 3,
	.supports	= nystrom_supports,
	.forward	= nystrom_forward,
	.flops		= nystrom_flops,
	.state_bytes	= nystrom_state_bytes,
};
