/*
 * vanilla.c - exact attention with the full score matrix (Vaswani et al. 2017).
 *
 * Per (batch, head) slice: S = QK^T/sqrt(d) into one n x m buffer (OpenBLAS), row
 * softmax in place (OpenMP over rows), O = PV (OpenBLAS). The buffer is taken from the
 * harness allocator so the measured peak shows the n x m matrix this method needs.
 */
#include "variant.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>

#include "memory.h"

/* Below this many scores per slice a parallel region costs more than it saves. */
#define VANILLA_PARALLEL_MIN 32768

/*
 * Replaces each row of s (n x m) by its softmax over the keys it may see: all m, or
 * keys 0..i in cs. Masked entries become 0, as exp(-inf) would make them.
 */
static void softmax_rows(float *s, int n, int m, bool causal)
{
	#pragma omp parallel for schedule(static) if ((long)n * m >= VANILLA_PARALLEL_MIN)
	for (int i = 0; i < n; i++) {
		float *row = s + (size_t)i * m;
		int keys = causal ? (i + 1 < m ? i + 1 : m) : m;
		float max = -INFINITY, sum = 0;

		for (int j = 0; j < keys; j++)
			max = fmaxf(max, row[j]);
		for (int j = 0; j < keys; j++) {
			row[j] = expf(row[j] - max);
			sum += row[j];
		}
		for (int j = 0; j < keys; j++)
			row[j] /= sum;
		for (int j = keys; j < m; j++)
			row[j] = 0;
	}
}

static int vanilla_forward(const struct attn_problem *p, const float *q, const float *k,
			   const float *v, float *out)
{
	float scale = 1.0f / sqrtf((float)p->d);
	float *s;

	if ((size_t)p->n > SIZE_MAX / sizeof(float) / (size_t)p->m)
		return -ENOMEM;
	s = attn_alloc((size_t)p->n * p->m * sizeof(float));
	if (!s)
		return -ENOMEM;
	for (int b = 0; b < p->batch; b++) {
		for (int h = 0; h < p->heads; h++) {
			size_t qo = problem_q_offset(p, b, h);
			size_t kvo = problem_kv_offset(p, b, h);

			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p->n, p->m, p->d,
				    scale, q + qo, p->d, k + kvo, p->d, 0.0f, s, p->m);
			softmax_rows(s, p->n, p->m, p->pattern == ATTN_CS);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, p->n, p->d, p->m,
				    1.0f, s, p->m, v + kvo, p->d, 0.0f, out + qo, p->d);
		}
	}
	attn_free(s);
	return 0;
}

/* 4d flops (two multiply-adds of length d) per visible (query, key) pair. */
static double vanilla_flops(const struct attn_problem *p)
{
	double pairs = (double)p->n * p->m;

	if (p->pattern == ATTN_CS)
		pairs = (double)p->n * (p->n + 1) / 2;
	return 4.0 * p->batch * p->heads * p->d * pairs;
}

const struct variant_ops vanilla_variant = {
	.name		= "vanilla",
	.family		= "exact",
	.summary	= "softmax attention with the full n x m score matrix",
	.citation	= "Vaswani et al. 2017, Attention Is All You Need, NeurIPS "
			  "(arXiv 1706.03762)",
	.patterns	= PATTERNS_ALL,
	.extensions	= 0,
	.flags		= VARIANT_EXACT,
	.params		= NULL,
	.n_params	= 0,
	.forward	= vanilla_forward,
	.flops		= vanilla_flops,
};
