/*
 * vanilla.c - exact attention with the full score matrix (Vaswani et al. 2017).
 *
 * Per (batch, head) slice: S = QK^T/sqrt(d) into one n x m buffer (OpenBLAS; in cs by
 * blocks of rows against the keys they can see), row
 * softmax in place (OpenMP over rows, vectorised exp), O = PV (OpenBLAS), each output
 * row divided by its softmax sum. The buffer is taken from the harness allocator so the
 * measured peak shows the n x m matrix this method needs.
 *
 * Incremental decoding keeps a KV cache of the capacity's length; each step appends one
 * key and value per KV head and scores the new query against the whole cache, one row
 * of scores per thread (OpenMP over the (batch, head) slices).
 */
#include "variant.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>


#include "common.h"
#include "kv-cache.h"
#include "memory.h"
#include "vexp.h"

/* Below this many scores per slice a parallel region costs more than it saves. */
#define VANILLA_PARALLEL_MIN 32768

/*
 * cs computes blocks of this many rows, each against only the keys its rows can see:
 * about half the work of the full square, with sgemm calls still large enough to run
 * near peak.
 */
#define VANILLA_CAUSAL_ROWS 256

/*
 * Replaces each row of s (n x m, base-2 scores of query rows r0..) by its unnormalised softmax weights over
 * the keys it may see (all m, or keys 0..i in cs; the rest become 0) and stores each
 * row's sum, so the division can be done on the d-wide output row instead of the m-wide
 * score row.
 */
static void softmax_rows(float *s, float *sums, int r0, int n, int m, bool causal)
{
	#pragma omp parallel for schedule(static) if ((long)n * m >= VANILLA_PARALLEL_MIN)
	for (int i = 0; i < n; i++) {
		float *row = s + (size_t)i * m;
		int keys = causal ? (r0 + i + 1 < m ? r0 + i + 1 : m) : m;

		sums[i] = exp2_shifted_sum(row, keys, row_max(row, keys));
		for (int j = keys; j < m; j++)
			row[j] = 0;
	}
}

static void divide_rows(float *out, const float *sums, int n, int d)
{
	for (int i = 0; i < n; i++)
		for (int c = 0; c < d; c++)
			out[(size_t)i * d + c] /= sums[i];
}

static int vanilla_forward(const struct attn_problem *p, const float *q, const float *k,
			   const float *v, float *out)
{
	/* log2(e)/sqrt(d): scores come out in base 2 for exp2. */
	float scale = (float)(M_LOG2E / sqrt((double)p->d));
	bool causal = p->pattern == ATTN_CS;
	int rows = causal ? VANILLA_CAUSAL_ROWS : p->n;
	float *s, *sums;

	if ((size_t)p->n > SIZE_MAX / sizeof(float) / (size_t)p->m)
		return -ENOMEM;
	s = attn_alloc((size_t)p->n * p->m * sizeof(float));
	sums = attn_alloc((size_t)p->n * sizeof(float));
	if (!s || !sums) {
		attn_free(s);
		attn_free(sums);
		return -ENOMEM;
	}
	for (int b = 0; b < p->batch; b++) {
		for (int h = 0; h < p->heads; h++) {
			size_t qo = problem_q_offset(p, b, h);
			size_t kvo = problem_kv_offset(p, b, h);

			for (int r0 = 0; r0 < p->n; r0 += rows) {
				int nr = p->n - r0 < rows ? p->n - r0 : rows;
				/* cs: rows r0.. see no key past their last row */
				int keys = causal ? r0 + nr : p->m;
				const float *qr = q + qo + (size_t)r0 * p->d;
				float *o = out + qo + (size_t)r0 * p->d;

				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, keys, p->d,
					    scale, qr, p->d, k + kvo, p->d, 0.0f, s, keys);
				softmax_rows(s, sums, r0, nr, keys, causal);
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, p->d, keys,
					    1.0f, s, keys, v + kvo, p->d, 0.0f, o, p->d);
				divide_rows(o, sums, nr, p->d);
			}
		}
	}
	attn_free(sums);
	attn_free(s);
	return 0;
}

/*
 * Bytes one forward moves, pass by pass as vanilla_forward() makes them, caches ignored.
 * Per (batch, head) and block of rows: the first product reads the rows of Q and the keys
 * they see and writes the scores; the softmax reads them and writes them back (and the
 * row sums); the second product reads them and the values and writes the rows of O,
 * which the division reads and writes again (reading the sums). Four passes over the
 * n x m scores: from small n on, nearly all of it.
 */
static double vanilla_bytes(const struct attn_problem *p)
{
	bool causal = p->pattern == ATTN_CS;
	int rows = causal ? VANILLA_CAUSAL_ROWS : p->n;
	double floats = 0;

	for (int r0 = 0; r0 < p->n; r0 += rows) {
		double nr = p->n - r0 < rows ? p->n - r0 : rows;
		double keys = causal ? r0 + nr : p->m;

		floats += 4 * nr * p->d + 2 * keys * p->d + 4 * nr * keys + 2 * nr;
	}
	return sizeof(float) * p->batch * p->heads * floats;
}

/*
 * Below this many multiply-adds per step (slices x cached keys x d, scores and sum
 * alike) a parallel region costs more than it saves.
 */
#define VANILLA_DECODE_PARALLEL_MIN 32768

/* Incremental decoding: the problem, the KV cache and one score row per thread. */
struct vanilla_decode {
	struct attn_problem p;	/* n = m = capacity in positions */
	int len;		/* positions fed so far */
	int threads;		/* score rows; the most threads a step runs on */
	struct kv_cache cache;	/* capacity slots per KV head */
	float *s;		/* [threads][capacity] scores, then softmax weights */
};

static void vanilla_decode_free(void *state)
{
	struct vanilla_decode *st = state;

	if (!st)
		return;
	attn_free(st->s);
	kv_cache_release(&st->cache);
	attn_free(st);
}

static int vanilla_decode_init(const struct attn_problem *p, void **state)
{
	struct vanilla_decode *st;
	int ret;

	*state = NULL;
	st = attn_calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	ret = kv_cache_init(&st->cache, p, p->n);
	if (ret)
		goto out_free_state;
	st->p = decode_problem(p);
	st->threads = max_threads();
	st->s = attn_calloc((size_t)st->threads * p->n, sizeof(float));
	if (!st->s) {
		ret = -ENOMEM;
		goto out_free_state;
	}
	*state = st;
	return 0;

out_free_state:
	vanilla_decode_free(st);
	return ret;
}

/* A prompt's keys and values straight into the cache. */
static int vanilla_decode_prefill(void *state, const float *k, const float *v, int rows,
				  int len)
{
	struct vanilla_decode *st = state;

	return kv_cache_prefill(&st->cache, &st->len, k, v, rows, len);
}

static int vanilla_decode_step(void *state, const float *q, const float *k, const float *v,
			       float *out)
{
	struct vanilla_decode *st = state;
	const struct attn_problem *p = &st->p;
	/* log2(e)/sqrt(d): scores come out in base 2 for exp2. */
	float scale = (float)(M_LOG2E / sqrt((double)p->d));
	int slices = p->batch * p->heads, keys, d = p->d;

	if (st->len >= p->m)
		return -ENOSPC;
	kv_cache_put(&st->cache, st->len, k, v);
	keys = ++st->len;

	#pragma omp parallel for num_threads(st->threads) schedule(static) \
		if ((double)slices * keys * d >= VANILLA_DECODE_PARALLEL_MIN)
	for (int i = 0; i < slices; i++) {
		size_t kvo = problem_kv_offset(p, i / p->heads, i % p->heads);
		const float *qi = q + (size_t)i * d;
		const float *kc = st->cache.k + kvo, *vc = st->cache.v + kvo;
		float *s = st->s + (size_t)thread_id() * p->m, *o = out + (size_t)i * d;
		float sum;

		for (int j = 0; j < keys; j++)
			s[j] = scale * dot(qi, kc + (size_t)j * d, d);
		sum = exp2_shifted_sum(s, keys, row_max(s, keys));
		for (int c = 0; c < d; c++)
			o[c] = 0;
		for (int j = 0; j < keys; j++)
			for (int c = 0; c < d; c++)
				o[c] += s[j] * vc[(size_t)j * d + c];
		for (int c = 0; c < d; c++)
			o[c] /= sum;
	}
	return 0;
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
	.flops		= exact_attention_flops,
	.bytes		= vanilla_bytes,
	.state_bytes	= exact_attention_state_bytes,
	.decode_init	= vanilla_decode_init,
	.decode_step	= vanilla_decode_step,
	.decode_free	= vanilla_decode_free,
	.decode_prefill	= vanilla_decode_prefill,
};
