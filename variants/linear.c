/*
 * linear.c - linear attention with the feature map φ(x) = elu(x) + 1 (Katharopoulos et
 * al. 2020, "Transformers are RNNs").
 *
 * o_i = φ(q_i)ᵀS / (φ(q_i)·z + 1e-6), S = Σ_j φ(k_j)v_jᵀ, z = Σ_j φ(k_j), on raw q and k
 * (no 1/sqrt(d)). The noncausal patterns build one d x d state per KV head, shared by the
 * query heads of a GQA group; cs runs the chunked prefix form of feature-attention.c.
 * The recurrent form is the decoder: the state per KV head is all it keeps.
 */
#include "variant.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "common.h"
#include "feature-attention.h"
#include "memory.h"
#include "threads.h"
#include "vexp.h"

/* The paper's guard against a zero denominator (φ > 0, so it only matters near 0). */
#define LINEAR_EPS 1e-6f

/*
 * φ(x) = x + 1 for x > 0, e^x otherwise, elementwise; the same map for queries and keys.
 * The exponentials dominate the whole forward pass unless they are vectorised: eight at
 * a time as 2^(x log2 e) on min(x, 0), then blended with x + 1.
 */
static void elu_plus_one(const struct feature_map *fm, const float *x, int d, int first,
			 int rows, float *phi)
{
	size_t count = (size_t)rows * d, i = 0;

	(void)fm;
	(void)first;
#ifdef VEXP_AVX2
	const __m256 log2e = _mm256_set1_ps((float)M_LOG2E), one = _mm256_set1_ps(1.0f);

	for (; i + 8 <= count; i += 8) {
		__m256 v = _mm256_loadu_ps(x + i);
		__m256 neg = _mm256_min_ps(v, _mm256_setzero_ps());
		__m256 e = exp2_v8(_mm256_mul_ps(neg, log2e));
		__m256 pos = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ);

		_mm256_storeu_ps(phi + i, _mm256_blendv_ps(e, _mm256_add_ps(v, one), pos));
	}
#endif
	for (; i < count; i++)
		phi[i] = x[i] > 0 ? x[i] + 1 : expf(x[i]);
}

static struct feature_map linear_map(int d)
{
	struct feature_map fm = {
		.features	= d,
		.add		= LINEAR_EPS,
		.floor		= 0,
		.query		= elu_plus_one,
		.key		= elu_plus_one,
	};

	return fm;
}

static int linear_forward(const struct attn_problem *p, const float *q, const float *k,
			  const float *v, float *out)
{
	struct feature_map fm = linear_map(p->d);
	size_t scratch_len = feature_scratch_floats(&fm, p->d);
	size_t state_len = feature_state_floats(&fm, p->d);
	int threads = max_threads(), group = p->heads / p->kv_heads, saved;
	bool causal = p->pattern == ATTN_CS;
	/* cs: one working state per thread; otherwise one built state per KV head */
	size_t states = causal ? (size_t)threads : (size_t)p->batch * p->kv_heads;
	float *scratch, *state;

	scratch = attn_alloc(sizeof(float) * threads * scratch_len);
	state = attn_alloc(sizeof(float) * states * state_len);
	if (!scratch || !state) {
		attn_free(scratch);
		attn_free(state);
		return -ENOMEM;
	}
	saved = blas_serial_begin();
	if (causal) {
		#pragma omp parallel for schedule(dynamic)
		for (int s = 0; s < p->batch * p->heads; s++) {
			int b = s / p->heads, h = s % p->heads, t = thread_id();
			size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);

			feature_attention_causal(&fm, q + qo, k + kvo, v + kvo, p->n, p->d,
						 scratch + t * scratch_len, state + t * state_len,
						 out + qo);
		}
	} else {
		#pragma omp parallel for schedule(dynamic)
		for (int s = 0; s < p->batch * p->kv_heads; s++) {
			int b = s / p->kv_heads, h = s % p->kv_heads * group;
			size_t kvo = problem_kv_offset(p, b, h);

			feature_state_build(&fm, k + kvo, v + kvo, p->m, p->d,
					    scratch + thread_id() * scratch_len,
					    state + s * state_len);
		}
		#pragma omp parallel for schedule(dynamic)
		for (int s = 0; s < p->batch * p->heads; s++) {
			int b = s / p->heads, h = s % p->heads;
			size_t qo = problem_q_offset(p, b, h);
			size_t kv = (size_t)b * p->kv_heads + h / group;

			feature_state_apply(&fm, state + kv * state_len, q + qo, p->n, p->d,
					    scratch + thread_id() * scratch_len, out + qo);
		}
	}
	blas_serial_end(saved);
	attn_free(state);
	attn_free(scratch);
	return 0;
}

/* The kernel's products with d features (feature-attention.c); φ itself is left out. */
static double linear_flops(const struct attn_problem *p)
{
	return feature_attention_flops(p, p->d);
}

/* The recurrent state: S (d x d) and z (d) per KV head, float32. */
static double linear_state_bytes(const struct attn_problem *p)
{
	return (double)p->batch * p->kv_heads * ((double)p->d * p->d + p->d) * sizeof(float);
}

/* Decoding: one state per KV head, fed each key once and read by every query head. */
struct linear_decode {
	struct attn_problem p;	/* n = m = capacity in positions */
	struct feature_map fm;
	int len;		/* positions fed so far */
	size_t state_len;
	float *state;		/* [batch * kv_heads][state_len], zeroed */
	float *scratch;		/* [batch * heads][d]: φ of one row per slice */
};

static void linear_decode_free(void *state)
{
	struct linear_decode *st = state;

	if (!st)
		return;
	attn_free(st->scratch);
	attn_free(st->state);
	attn_free(st);
}

static int linear_decode_init(const struct attn_problem *p, void **state)
{
	struct linear_decode *st;

	*state = NULL;
	if (p->pattern != ATTN_CS)
		return -ENOTSUP;
	st = attn_calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->p = decode_problem(p);
	st->fm = linear_map(p->d);
	st->state_len = feature_state_floats(&st->fm, p->d);
	st->state = attn_calloc((size_t)p->batch * p->kv_heads * st->state_len, sizeof(float));
	st->scratch = attn_alloc(sizeof(float) * p->batch * p->heads * p->d);
	if (!st->state || !st->scratch) {
		linear_decode_free(st);
		return -ENOMEM;
	}
	*state = st;
	return 0;
}

static int linear_decode_step(void *state, const float *q, const float *k, const float *v,
			      float *out)
{
	struct linear_decode *st = state;
	const struct attn_problem *p = &st->p;
	int d = p->d, group = p->heads / p->kv_heads;

	if (st->len >= p->n)
		return -ENOSPC;
	for (int s = 0; s < p->batch * p->kv_heads; s++)
		feature_state_add(&st->fm, st->state + s * st->state_len, k + (size_t)s * d,
				  v + (size_t)s * d, d, st->len, st->scratch);
	for (int s = 0; s < p->batch * p->heads; s++) {
		int kv = s / p->heads * p->kv_heads + s % p->heads / group;

		feature_state_query(&st->fm, st->state + kv * st->state_len, q + (size_t)s * d,
				    d, st->len, st->scratch + (size_t)s * d, out + (size_t)s * d);
	}
	st->len++;
	return 0;
}

const struct variant_ops linear_variant = {
	.name		= "linear",
	.family		= "linear",
	.summary	= "kernel attention, φ = elu + 1, d x d state (chunked prefix form in cs)",
	.citation	= "Katharopoulos et al. 2020, Transformers are RNNs: Fast Autoregressive "
			  "Transformers with Linear Attention, ICML",
	.patterns	= PATTERNS_ALL,
	.extensions	= 0,
	.flags		= 0,
	.forward	= linear_forward,
	.flops		= linear_flops,
	.state_bytes	= linear_state_bytes,
	.decode_init	= linear_decode_init,
	.decode_step	= linear_decode_step,
	.decode_free	= linear_decode_free,
};
