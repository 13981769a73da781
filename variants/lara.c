/*
 * lara.c - LARA, linear randomized attention, as CAB's Lara on its evaluation path
 * (Zheng et al. 2022).
 *
 * Per (batch, head) slice, with C proposals from CAB's segmentation (segment_bounds()):
 * μ_c = q̄_c + k̄_c (segment means of Q and of K), ω_c = μ_c (lara.sample=1 adds N(0, I)
 * noise drawn at plan time from (seed, query head)), s = 1/√d, ℓ_c(x) = s ω_c·x − s‖x‖²/2:
 *
 *	kv_c = Σ_j softmax_j(ℓ_c(k_j)) v_j
 *	r_ci = s μ_c·q_i + ℓ_c(q_i) + logsumexp_j ℓ_c(k_j) − ℓ_c(μ_c)
 *	o_i  = Σ_c softmax_c(r_ci) kv_c
 *
 * Every exponential is shifted by its maximum. The term −s‖q_i‖²/2 of ℓ_c(q_i) is the
 * same for every c, so the softmax over c cancels it: it is left out rather than added
 * and subtracted in float. The (N + M) x C x d products are OpenBLAS sgemm calls; slices
 * run in parallel with single-threaded BLAS inside, and the query side goes by blocks of
 * rows, so the workspace is O(C (M + d)) per thread.
 *
 * Self attention with N < C uses the rows themselves as segments (C = N). nc is a harness
 * extension (Q and K segmented apart), refused unless N, M >= C; cs and cc are refused:
 * the proposals mix every row. No decoding: there is no recurrent form.
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

enum lara_param {
	LARA_LANDMARKS,
	LARA_SAMPLE,
};

#define LARA_LANDMARKS_DEFAULT 16	/* CAB's constructor (its CLI says 15) */

/* Rows of queries scored at a time: sgemm calls big enough, a bounded workspace. */
#define LARA_ROWS 256

/* Plan-time stream of head h's proposal noise: LARA_STREAM + 1000 h. */
#define LARA_STREAM 26

static const struct variant_param lara_params[] = {
	[LARA_LANDMARKS] = {
		.name		= "landmarks",
		.def		= LARA_LANDMARKS_DEFAULT,
		.min		= 1,
		.max		= 4096,
		.integer	= true,
		.help		= "C: segment-mean proposals (self attention, N < C: one per row)",
	},
	[LARA_SAMPLE] = {
		.name		= "sample",
		.def		= 0,
		.min		= 0,
		.max		= 1,
		.integer	= true,
		.help		= "1: draw ω_c from N(μ_c, I), seeded per head, not ω_c = μ_c",
	},
};

static int lara_landmarks(const struct attn_problem *p)
{
	int c = p->params ? (int)p->params[LARA_LANDMARKS] : LARA_LANDMARKS_DEFAULT;

	/* self attention shorter than C: every row its own segment */
	if (p->pattern == ATTN_NS && p->n < c)
		c = p->n;
	return c;
}

static int lara_supports(const struct attn_problem *p)
{
	int c = lara_landmarks(p);

	if (p->pattern == ATTN_NS)
		return 0;
	if (p->pattern == ATTN_NC && p->n >= c && p->m >= c)
		return 0;
	return -ENOTSUP;
}

/* Floats of workspace per thread: μ, ω, μ + ω, kv (C x d); ℓ(k) (M x C); a block of r. */
static size_t lara_workspace(const struct attn_problem *p, int c)
{
	int rows = p->n < LARA_ROWS ? p->n : LARA_ROWS;

	return (size_t)c * (4 * (size_t)p->d + p->m + rows + 3);
}

/*
 * One slice. noise is this query head's C x d proposal noise, or NULL; ws is
 * lara_workspace() floats.
 */
static void lara_slice(const float *q, const float *k, const float *v, int n, int m, int d,
		       int c, const float *noise, float *ws, float *out)
{
	float s = (float)(1.0 / sqrt((double)d));
	size_t cd = (size_t)c * d;
	float *mu = ws, *omega = mu + cd, *both = omega + cd, *kv = both + cd;
	float *lk = kv + cd, *r = lk + (size_t)m * c;
	float *kmax = r + (size_t)c * (n < LARA_ROWS ? n : LARA_ROWS);
	float *ksum = kmax + c, *shift = ksum + c;

	/* μ = q̄ + k̄, ω = μ (+ noise), both = μ + ω */
	for (size_t x = 0; x < cd; x++)
		mu[x] = 0;
	segment_means_add(q, n, d, c, mu);
	segment_means_add(k, m, d, c, mu);
	for (size_t x = 0; x < cd; x++) {
		omega[x] = noise ? mu[x] + noise[x] : mu[x];
		both[x] = mu[x] + omega[x];
	}

	/* ℓ_c(k_j) = s ω_c·k_j − s‖k_j‖²/2, then its softmax over j for each c */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, c, d, s, k, d, omega, d, 0.0f,
		    lk, c);
	for (int l = 0; l < c; l++) {
		kmax[l] = -INFINITY;
		ksum[l] = 0;
	}
	for (int j = 0; j < m; j++) {
		float *row = lk + (size_t)j * c, half = 0.5f * s * dot(k + (size_t)j * d,
								      k + (size_t)j * d, d);

		for (int l = 0; l < c; l++) {
			row[l] -= half;
			kmax[l] = fmaxf(kmax[l], row[l]);
		}
	}
	for (int j = 0; j < m; j++) {
		float *row = lk + (size_t)j * c;

		for (int l = 0; l < c; l++) {
			row[l] = expf(row[l] - kmax[l]);
			ksum[l] += row[l];
		}
	}
	/* kv_c = Σ_j weights v_j / sum */
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, c, d, m, 1.0f, lk, c, v, d, 0.0f,
		    kv, d);
	for (int l = 0; l < c; l++) {
		const float *ml = mu + (size_t)l * d, *wl = omega + (size_t)l * d;
		float inv = 1.0f / ksum[l];

		for (int x = 0; x < d; x++)
			kv[(size_t)l * d + x] *= inv;
		/* logsumexp_j ℓ_c(k_j) − ℓ_c(μ_c) */
		shift[l] = kmax[l] + logf(ksum[l]) - s * (dot(wl, ml, d) - 0.5f * dot(ml, ml, d));
	}

	/* r_ci = s (μ_c + ω_c)·q_i + shift_c (− s‖q_i‖²/2, which cancels); o = softmax_c(r) kv */
	for (int r0 = 0; r0 < n; r0 += LARA_ROWS) {
		int rows = n - r0 < LARA_ROWS ? n - r0 : LARA_ROWS;

		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, c, d, s,
			    q + (size_t)r0 * d, d, both, d, 0.0f, r, c);
		for (int i = 0; i < rows; i++) {
			float *ri = r + (size_t)i * c, max = -INFINITY, sum = 0;

			for (int l = 0; l < c; l++) {
				ri[l] += shift[l];
				max = fmaxf(max, ri[l]);
			}
			for (int l = 0; l < c; l++) {
				ri[l] = expf(ri[l] - max);
				sum += ri[l];
			}
			for (int l = 0; l < c; l++)
				ri[l] /= sum;
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, c, 1.0f, r, c,
			    kv, d, 0.0f, out + (size_t)r0 * d, d);
	}
}

/* Head h's proposal noise: C x d standard normals from (seed, LARA_STREAM + 1000 h). */
static void lara_noise(const struct attn_problem *p, int c, float *noise)
{
	for (int h = 0; h < p->heads; h++) {
		struct plan_rng g = plan_rng_make(p->seed, LARA_STREAM + 1000 * (uint64_t)h);
		float *nh = noise + (size_t)h * c * p->d;

		for (size_t x = 0; x < (size_t)c * p->d; x++)
			nh[x] = (float)plan_rng_normal(&g);
	}
}

static int lara_forward(const struct attn_problem *p, const float *q, const float *k,
			const float *v, float *out)
{
	bool sample = p->params && p->params[LARA_SAMPLE] != 0;
	int c = lara_landmarks(p), slices = p->batch * p->heads, threads = max_threads();
	size_t per_thread = lara_workspace(p, c);
	float *ws, *noise = NULL;
	int saved;

	if (!(p->pattern == ATTN_NS || p->pattern == ATTN_NC) || lara_supports(p))
		return -ENOTSUP;
	ws = attn_alloc((size_t)threads * per_thread * sizeof(float));
	if (!ws)
		return -ENOMEM;
	if (sample) {
		noise = attn_alloc((size_t)p->heads * c * p->d * sizeof(float));
		if (!noise) {
			attn_free(ws);
			return -ENOMEM;
		}
		lara_noise(p, c, noise);
	}

	saved = blas_serial_begin();
	#pragma omp parallel for schedule(static)
	for (int i = 0; i < slices; i++) {
		int b = i / p->heads, h = i % p->heads;
		size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);

		lara_slice(q + qo, k + kvo, v + kvo, p->n, p->m, p->d, c,
			   noise ? noise + (size_t)h * c * p->d : NULL,
			   ws + (size_t)thread_id() * per_thread, out + qo);
	}
	blas_serial_end(saved);
	attn_free(noise);
	attn_free(ws);
	return 0;
}

/* 2 flops per multiply-add: ℓ(k) and kv (2MCd), r and o (2NCd). */
static double lara_flops(const struct attn_problem *p)
{
	return 4.0 * p->batch * p->heads * lara_landmarks(p) * p->d * ((double)p->n + p->m);
}

/*
 * What the outputs are produced from, float32: per query head the C kv_c vectors and the
 * C proposal vectors μ_c + ω_c that each query is scored against, d floats each:
 * 2 · batch · heads · C · d · 4 bytes (C = N for self attention shorter than C; the C
 * per-proposal score offsets are not counted).
 */
static double lara_state_bytes(const struct attn_problem *p)
{
	return 2.0 * p->batch * p->heads * lara_landmarks(p) * p->d * sizeof(float);
}

const struct variant_ops lara_variant = {
	.name		= "lara",
	.family		= "linear",
	.summary	= "LARA: importance-sampled attention with segment-mean proposals",
	.citation	= "Zheng et al. 2022, Linear Complexity Randomized Self-attention "
			  "Mechanism, ICML; CAB Lara",
	.patterns	= PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_NC),
	.extensions	= PATTERN_BIT(ATTN_NC),
	.flags		= 0,
	.params		= lara_params,
	.n_params	= 2,
	.supports	= lara_supports,
	.forward	= lara_forward,
	.flops		= lara_flops,
	.state_bytes	= lara_state_bytes,
};
