/*
 * cosformer.c - cosFormer: ReLU kernel attention re-weighted by cos(θ_i − θ_j) of the
 * positions, linearised with Ptolemy's identity (Qin et al. 2022; CAB CosformerAttention).
 *
 * With q̃ = ReLU(q), k̃ = ReLU(k) and θ_x = πx / (2m) for the 1-based position x,
 *
 *	q'_i = [q̃_i sin θ_i, q̃_i cos θ_i],  k'_j = [k̃_j sin θ_j, k̃_j cos θ_j]  (2d features)
 *
 * so q'_i·k'_j = (q̃_i·k̃_j) cos(θ_i − θ_j), and o_i = q'_iᵀ(Σ_j k'_j v_jᵀ) / max(q'_i·Σ_j k'_j,
 * 1e-6), over all keys or, in cs, over j <= i. The work is the shared chunked kernel of
 * feature-attention.h with this feature map.
 *
 * The horizon m: CAB uses m = max(N, M), which makes every row depend on the total
 * length. That is harmless without a mask but breaks causality's spirit in cs and cc (a
 * row would change when later rows are appended), so those patterns use a fixed horizon.
 * `cosformer.horizon` > 0 is m in every pattern; problems longer than it are refused.
 *
 * ns, nc and cc build one state (S, z) per KV head, since k' depends only on k and its
 * position, and apply it to every query head of the group; cs runs the chunked causal
 * form per query head. Incremental decoding (cs) keeps (S, z) per KV head.
 */
#include "variant.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>

#include "common.h"
#include "feature-attention.h"
#include "memory.h"
#include "threads.h"

/*
 * The horizon cs and cc use when none is set: the longest sequence the built-in suites
 * plan (cross passkey at 16 x 65536 keys), so every planned problem fits under it.
 */
#define COSFORMER_CAUSAL_HORIZON 65536

/* The guard of the denominator, CAB's clamp: g(x) = max(x, 1e-6). */
#define COSFORMER_DEN_FLOOR 1e-6f

/* C11 has no M_PI. */
#define COSFORMER_PI 3.14159265358979323846

/* Below this many multiply-adds per decode step a parallel region costs more than it saves. */
#define COSFORMER_DECODE_PARALLEL_MIN 32768

static const struct variant_param cosformer_params[] = {
	{
		.name		= "horizon",
		.def		= 0,
		.min		= 0,
		.max		= 1048576,
		.integer	= true,
		.help		= "m in θ = πx/(2m); 0: max(N, M) in ns/nc, 65536 in cs/cc",
	},
};

/* What the feature map needs: the step of θ per position, π / (2m). */
struct cosformer_map {
	double step;
};

/* The set horizon, or 0 when CAB's rule (or the fixed causal one) applies. */
static long cosformer_set_horizon(const struct attn_problem *p)
{
	return p->params ? (long)p->params[0] : 0;
}

/* The m this problem uses. */
static long cosformer_horizon(const struct attn_problem *p)
{
	long h = cosformer_set_horizon(p);

	if (h > 0)
		return h;
	if (pattern_is_causal(p->pattern))
		return COSFORMER_CAUSAL_HORIZON;
	return p->n > p->m ? p->n : p->m;
}

/* A position past the horizon would have θ > π/2 and a sign-changing cos: refuse it. */
static int cosformer_supports(const struct attn_problem *p)
{
	long h = cosformer_horizon(p);

	return p->n > h || p->m > h ? -ENOTSUP : 0;
}

/*
 * φ of `rows` rows from position `first` (0-based): ReLU(x) times sin θ, then ReLU(x)
 * times cos θ, with θ for the 1-based position first + r + 1. Queries and keys alike.
 */
static void cosformer_features(const struct feature_map *fm, const float *x, int d, int first,
			       int rows, float *phi)
{
	const struct cosformer_map *map = fm->ctx;

	for (int r = 0; r < rows; r++) {
		double theta = map->step * ((double)first + r + 1);
		float s = (float)sin(theta), c = (float)cos(theta);
		const float *xr = x + (size_t)r * d;
		float *out = phi + (size_t)r * 2 * d;

		for (int col = 0; col < d; col++) {
			float relu = xr[col] > 0 ? xr[col] : 0;

			out[col] = relu * s;
			out[d + col] = relu * c;
		}
	}
}

static struct feature_map cosformer_feature_map(int d, const struct cosformer_map *map)
{
	struct feature_map fm = {
		.features	= 2 * d,
		.add		= 0,
		.floor		= COSFORMER_DEN_FLOOR,
		.ctx		= map,
		.query		= cosformer_features,
		.key		= cosformer_features,
	};

	return fm;
}

static struct cosformer_map cosformer_map_for(long horizon)
{
	struct cosformer_map map = { .step = COSFORMER_PI / (2.0 * (double)horizon) };

	return map;
}

/* ns, nc, cc: one state per KV head, then every query head of its group against it. */
static int cosformer_noncausal(const struct attn_problem *p, const struct feature_map *fm,
			       const float *q, const float *k, const float *v, float *out)
{
	int d = p->d, kv_slices = p->batch * p->kv_heads, slices = p->batch * p->heads;
	int group = p->heads / p->kv_heads, threads = max_threads(), saved;
	size_t sf = feature_state_floats(fm, d), scf = feature_scratch_floats(fm, d);
	float *states, *scratch;

	states = attn_alloc(sizeof(float) * sf * kv_slices);
	scratch = attn_alloc(sizeof(float) * scf * threads);
	if (!states || !scratch) {
		attn_free(states);
		attn_free(scratch);
		return -ENOMEM;
	}

	saved = blas_serial_begin();
	#pragma omp parallel
	{
		float *sc = scratch + scf * thread_id();

		#pragma omp for schedule(static)
		for (int s = 0; s < kv_slices; s++) {
			size_t kvo = (size_t)s * p->m * d;

			feature_state_build(fm, k + kvo, v + kvo, p->m, d, sc, states + sf * s);
		}
		#pragma omp for schedule(static)
		for (int s = 0; s < slices; s++) {
			int b = s / p->heads, h = s % p->heads;
			size_t qo = problem_q_offset(p, b, h);

			feature_state_apply(fm, states + sf * (b * p->kv_heads + h / group),
					    q + qo, p->n, d, sc, out + qo);
		}
	}
	blas_serial_end(saved);

	attn_free(scratch);
	attn_free(states);
	return 0;
}

/* cs: the chunked causal form per query head, a state and scratch per thread. */
static int cosformer_causal(const struct attn_problem *p, const struct feature_map *fm,
			    const float *q, const float *k, const float *v, float *out)
{
	int d = p->d, slices = p->batch * p->heads, threads = max_threads(), saved;
	size_t per = feature_scratch_floats(fm, d) + feature_state_floats(fm, d);
	float *work = attn_alloc(sizeof(float) * per * threads);

	if (!work)
		return -ENOMEM;

	saved = blas_serial_begin();
	#pragma omp parallel for schedule(static)
	for (int s = 0; s < slices; s++) {
		int b = s / p->heads, h = s % p->heads;
		size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);
		float *sc = work + per * thread_id();

		feature_attention_causal(fm, q + qo, k + kvo, v + kvo, p->n, d, sc,
					 sc + feature_scratch_floats(fm, d), out + qo);
	}
	blas_serial_end(saved);

	attn_free(work);
	return 0;
}

static int cosformer_forward(const struct attn_problem *p, const float *q, const float *k,
			     const float *v, float *out)
{
	struct cosformer_map map;
	struct feature_map fm;

	if (cosformer_supports(p))
		return -ENOTSUP;
	map = cosformer_map_for(cosformer_horizon(p));
	fm = cosformer_feature_map(p->d, &map);
	if (p->pattern == ATTN_CS)
		return cosformer_causal(p, &fm, q, k, v, out);
	return cosformer_noncausal(p, &fm, q, k, v, out);
}

/* The kernel's products with 2d features (feature-attention.c); the maps are left out. */
static double cosformer_flops(const struct attn_problem *p)
{
	return feature_attention_flops(p, 2 * p->d);
}

/*
 * The state the outputs come from: S (2d x d) and z (2d) per KV head, float32, in every
 * pattern (prefix sums of the same size in cs): (2d² + 2d) * 4 * batch * kv_heads bytes.
 */
static double cosformer_state_bytes(const struct attn_problem *p)
{
	double d = p->d;

	return (2 * d * d + 2 * d) * sizeof(float) * p->batch * p->kv_heads;
}

/* Incremental decoding (cs): (S, z) per KV head and a feature scratch per thread. */
struct cosformer_decode {
	struct attn_problem p;	/* n = m = capacity in positions */
	struct cosformer_map map;
	struct feature_map fm;	/* fm.ctx points at map */
	int len;		/* positions fed so far */
	int threads;		/* scratch slots; the most threads a step runs on */
	size_t state_floats;	/* per KV head */
	size_t scratch_floats;	/* per thread */
	float *states;		/* [batch * kv_heads][state_floats] */
	float *scratch;		/* [threads][scratch_floats] */
};

static void cosformer_decode_free(void *state)
{
	struct cosformer_decode *st = state;

	if (!st)
		return;
	attn_free(st->scratch);
	attn_free(st->states);
	attn_free(st);
}

static int cosformer_decode_init(const struct attn_problem *p, void **state)
{
	struct cosformer_decode *st;
	int ret;

	*state = NULL;
	ret = decode_check_problem(p);
	if (ret)
		return ret;
	st = attn_calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	/* The decoder keeps only the horizon, not the params array it came from. */
	st->p = decode_problem(p);
	if (cosformer_supports(p)) {
		ret = -ENOTSUP;
		goto out_free_state;
	}
	st->map = cosformer_map_for(cosformer_horizon(p));
	st->fm = cosformer_feature_map(p->d, &st->map);
	st->threads = max_threads();
	st->state_floats = feature_state_floats(&st->fm, p->d);
	st->scratch_floats = feature_scratch_floats(&st->fm, p->d);
	st->states = attn_calloc(st->state_floats * p->batch * p->kv_heads, sizeof(float));
	st->scratch = attn_calloc(st->scratch_floats * st->threads, sizeof(float));
	if (!st->states || !st->scratch) {
		ret = -ENOMEM;
		goto out_free_state;
	}
	*state = st;
	return 0;

out_free_state:
	cosformer_decode_free(st);
	return ret;
}

static int cosformer_decode_step(void *state, const float *q, const float *k, const float *v,
				 float *out)
{
	struct cosformer_decode *st = state;
	const struct attn_problem *p = &st->p;
	int d = p->d, t = st->len, group = p->heads / p->kv_heads;
	int kv_slices = p->batch * p->kv_heads, slices = p->batch * p->heads;
	double work = (double)slices * 2 * d * d;

	if (t >= p->m)
		return -ENOSPC;
	st->len++;

	#pragma omp parallel num_threads(st->threads) if (work >= COSFORMER_DECODE_PARALLEL_MIN)
	{
		float *sc = st->scratch + st->scratch_floats * thread_id();

		/* the new key first: row t sees itself */
		#pragma omp for schedule(static)
		for (int s = 0; s < kv_slices; s++)
			feature_state_add(&st->fm, st->states + st->state_floats * s,
					  k + (size_t)s * d, v + (size_t)s * d, d, t, sc);
		#pragma omp for schedule(static)
		for (int s = 0; s < slices; s++) {
			int b = s / p->heads, h = s % p->heads;

			feature_state_query(&st->fm,
					    st->states + st->state_floats *
						    (b * p->kv_heads + h / group),
					    q + (size_t)s * d, d, t, sc, out + (size_t)s * d);
		}
	}
	return 0;
}

const struct variant_ops cosformer_variant = {
	.name		= "cosformer",
	.family		= "linear",
	.summary	= "ReLU kernel attention re-weighted by cos(θ_i − θ_j), θ_x = πx/(2m)",
	.citation	= "Qin et al. 2022, cosFormer: Rethinking Softmax in Attention, ICLR; "
			  "CAB CosformerAttention",
	.patterns	= PATTERNS_ALL,
	.extensions	= PATTERN_BIT(ATTN_CS) | PATTERN_BIT(ATTN_CC),
	.flags		= 0,
	.params		= cosformer_params,
	.n_params	= 1,
	.supports	= cosformer_supports,
	.forward	= cosformer_forward,
	.flops		= cosformer_flops,
	.state_bytes	= cosformer_state_bytes,
	.decode_init	= cosformer_decode_init,
	.decode_step	= cosformer_decode_step,
	.decode_free	= cosformer_decode_free,
};
