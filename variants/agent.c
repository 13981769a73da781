/*
 * agent.c - Agent Attention (Han et al. 2024): n agent tokens pooled from the queries
 * gather from all keys, then broadcast to every query.
 *
 * Per (batch, head) slice, with n_eff = min(n, N) agents and σ = 1/√d:
 *
 *	A   = the means of n_eff segments of the query rows (n_eff x d)
 *	V_A = softmax(σ A Kᵀ) V      (n_eff x d: agent aggregation)
 *	O   = softmax(σ Q Aᵀ) V_A    (N x d: agent broadcast)
 *
 * The segments are CAB's disjoint segmentation (segment_bounds(), as Nyström's
 * landmarks) [harness]: the paper's code pools a √N x √N image grid with 2-D adaptive
 * average pooling, whose bins overlap, which has no meaning for a sequence. The learned
 * agent biases and the depthwise convolution on V are dropped [harness]: this is a
 * training-free comparison of the attention operator alone. With N <= n every segment is
 * one row, so A = Q.
 *
 * Both softmaxes are one routine, attend(): softmax attention of a tile of rows against
 * a set of keys and values, by tiles of AGENT_BLOCK_K keys with an online softmax in base
 * 2 (scores scaled by log2(e)/√d), each tile's two products an OpenBLAS sgemm. So no
 * score matrix larger than AGENT_ROWS x AGENT_BLOCK_K exists, whatever N, M and n are.
 * Two parallel passes over work items, with BLAS held single-threaded inside them:
 *
 *	1. (batch, head, tile of agents): the tile's agents as segment means, then their
 *	   V_A rows, attending over all M keys;
 *	2. (batch, head, tile of query rows): O rows, attending over the n_eff agents.
 *
 * A and V_A of every query head live between the passes: 2 n_eff d floats per query
 * head, which is also the state the method needs to produce its outputs.
 *
 * GQA (VARIANTS.md section 31): nothing is shared across the query heads of a group.
 * Every product involving K or V goes through A (σ A Kᵀ, then its weights times V), and
 * A is built from the query head's own Q, so there is no K/V-only quantity to compute
 * once per KV head; each query head reads its KV head's K and V directly.
 *
 * Patterns: ns native; nc a harness extension (A from Q, keys and values from K and V).
 * cs and cc are refused: every agent is a mean over query rows from the whole sequence,
 * so every output row depends on later query rows. No decoding (not causal).
 */
#include "variant.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>

#include "common.h"
#include "memory.h"
#include "threads.h"
#include "vexp.h"

enum agent_param {
	AGENT_AGENTS,
};

/* [harness]: the paper's code uses 49 (7 x 7 pooled) by default. */
#define AGENT_AGENTS_DEFAULT 64

/*
 * Rows per work item, agents in pass 1 and queries in pass 2: 64 keeps the default
 * agents one item per slice; sgemm calls of 64 rows already run well.
 */
#define AGENT_ROWS 64
/*
 * Keys (pass 1) or agents (pass 2) per tile of the online softmax: a 64 x 256 score
 * tile is 64 KiB, in L2 beside a 256-row tile of K or V at d = 64. At the default
 * n = 64 pass 2 is a single tile, so it never rescales.
 */
#define AGENT_BLOCK_K 256

static const struct variant_param agent_params[] = {
	[AGENT_AGENTS] = {
		.name		= "agents",
		.def		= AGENT_AGENTS_DEFAULT,
		.min		= 1,
		.max		= 65536,
		.integer	= true,
		.help		= "n: agents, means of disjoint query segments (n_eff = min(n, N)); "
				  "64 [harness; paper code 49]",
	},
};

/* n_eff = min(n, N). */
static int agent_count(const struct attn_problem *p)
{
	int n = p->params ? (int)p->params[AGENT_AGENTS] : AGENT_AGENTS_DEFAULT;

	return n < p->n ? n : p->n;
}

/* A thread's scratch for attend(): a score tile and per row a running max and sum. */
struct agent_scratch {
	float *s;		/* AGENT_ROWS x AGENT_BLOCK_K */
	float *max, *sum;	/* AGENT_ROWS each */
};

#define AGENT_SCRATCH_FLOATS ((size_t)AGENT_ROWS * AGENT_BLOCK_K + 2 * AGENT_ROWS)

static struct agent_scratch agent_scratch_at(float *ws, int slot)
{
	float *base = ws + (size_t)slot * AGENT_SCRATCH_FLOATS;
	struct agent_scratch sc = {
		.s	= base,
		.max	= base + (size_t)AGENT_ROWS * AGENT_BLOCK_K,
		.sum	= base + (size_t)AGENT_ROWS * AGENT_BLOCK_K + AGENT_ROWS,
	};

	return sc;
}

/*
 * out (rows x d) = softmax(σ x keysᵀ) vals for rows <= AGENT_ROWS rows of x against
 * count keys and values (all d wide, row-major), by tiles of AGENT_BLOCK_K keys with an
 * online softmax: each tile's scores (base 2) are shifted by the running row maximum,
 * the output rows already accumulated are rescaled when it grows, and each row is
 * divided by its sum at the end.
 */
static void attend(const float *x, int rows, const float *keys, const float *vals, int count,
		   int d, const struct agent_scratch *sc, float *out)
{
	/* log2(e)/√d: scores come out in base 2 for exp2 */
	float scale = (float)(M_LOG2E / sqrt((double)d));

	for (int k0 = 0; k0 < count; k0 += AGENT_BLOCK_K) {
		int cols = count - k0 < AGENT_BLOCK_K ? count - k0 : AGENT_BLOCK_K;

		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, d, scale, x, d,
			    keys + (size_t)k0 * d, d, 0.0f, sc->s, cols);
		for (int r = 0; r < rows; r++) {
			float *row = sc->s + (size_t)r * cols, top = row_max(row, cols);

			if (k0 == 0) {
				sc->max[r] = top;
				sc->sum[r] = exp2_shifted_sum(row, cols, top);
			} else {
				float m = top > sc->max[r] ? top : sc->max[r];
				float alpha = exp2f(sc->max[r] - m);
				float *o = out + (size_t)r * d;

				sc->max[r] = m;
				sc->sum[r] = alpha * sc->sum[r] + exp2_shifted_sum(row, cols, m);
				for (int c = 0; c < d; c++)
					o[c] *= alpha;
			}
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, cols, 1.0f, sc->s,
			    cols, vals + (size_t)k0 * d, d, k0 ? 1.0f : 0.0f, out, d);
	}
	for (int r = 0; r < rows; r++) {
		/* the row maximum contributes 2^0 = 1, so the sum is >= 1; guard all the same */
		float by = sc->sum[r] > 0 ? 1.0f / sc->sum[r] : 0.0f;

		for (int c = 0; c < d; c++)
			out[(size_t)r * d + c] *= by;
	}
}

/*
 * a (rows x d) = the means of segments first.. first+rows-1 of the `count` CAB segments
 * of the n rows of q.
 */
static void segment_means(const float *q, int n, int d, int count, int first, int rows,
			  float *a)
{
	for (int g = 0; g < rows; g++) {
		float *o = a + (size_t)g * d, inv;
		int lo, hi;

		segment_bounds(n, count, first + g, &lo, &hi);
		inv = 1.0f / (float)(hi - lo);
		for (int c = 0; c < d; c++)
			o[c] = 0;
		for (int i = lo; i < hi; i++)
			for (int c = 0; c < d; c++)
				o[c] += q[(size_t)i * d + c];
		for (int c = 0; c < d; c++)
			o[c] *= inv;
	}
}

static int agent_forward(const struct attn_problem *p, const float *q, const float *k,
			 const float *v, float *out)
{
	int agents = agent_count(p), d = p->d, slices = p->batch * p->heads, saved;
	int agent_tiles = (agents + AGENT_ROWS - 1) / AGENT_ROWS;
	int row_tiles = (p->n + AGENT_ROWS - 1) / AGENT_ROWS;
	size_t per_head = (size_t)agents * d;
	float *state, *ws;

	if (p->pattern != ATTN_NS && p->pattern != ATTN_NC)
		return -ENOTSUP;
	/* A then V_A of each query head */
	state = attn_alloc(sizeof(float) * 2 * per_head * slices);
	ws = attn_alloc(sizeof(float) * AGENT_SCRATCH_FLOATS * max_threads());
	if (!state || !ws) {
		attn_free(state);
		attn_free(ws);
		return -ENOMEM;
	}
	saved = blas_serial_begin();

	/* pass 1: agents and their aggregation over all keys */
	#pragma omp parallel for schedule(dynamic)
	for (int item = 0; item < slices * agent_tiles; item++) {
		int s = item / agent_tiles, a0 = item % agent_tiles * AGENT_ROWS;
		int rows = agents - a0 < AGENT_ROWS ? agents - a0 : AGENT_ROWS;
		int b = s / p->heads, h = s % p->heads;
		size_t kvo = problem_kv_offset(p, b, h);
		float *a = state + 2 * per_head * s + (size_t)a0 * d;
		float *va = a + per_head;
		struct agent_scratch sc = agent_scratch_at(ws, thread_id());

		segment_means(q + problem_q_offset(p, b, h), p->n, d, agents, a0, rows, a);
		attend(a, rows, k + kvo, v + kvo, p->m, d, &sc, va);
	}

	/* pass 2: every query row over the agents */
	#pragma omp parallel for schedule(dynamic)
	for (int item = 0; item < slices * row_tiles; item++) {
		int s = item / row_tiles, r0 = item % row_tiles * AGENT_ROWS;
		int rows = p->n - r0 < AGENT_ROWS ? p->n - r0 : AGENT_ROWS;
		size_t qo = problem_q_offset(p, s / p->heads, s % p->heads) + (size_t)r0 * d;
		const float *a = state + 2 * per_head * s;
		struct agent_scratch sc = agent_scratch_at(ws, thread_id());

		attend(q + qo, rows, a, a + per_head, agents, d, &sc, out + qo);
	}

	blas_serial_end(saved);
	attn_free(ws);
	attn_free(state);
	return 0;
}

/*
 * Per query head: the segment sums (N d adds), then two multiply-adds (4 flops) per
 * dimension for each (agent, key) pair (scores and their product with V) and for each
 * (query, agent) pair. The exponentials and rescaling are left out.
 */
static double agent_flops(const struct attn_problem *p)
{
	double n = agent_count(p);

	return (double)p->batch * p->heads *
	       ((double)p->n * p->d + 4.0 * n * p->d * ((double)p->m + p->n));
}

/*
 * What the outputs are produced from, float32: per query head the agents A (n_eff x d),
 * against which each query is scored, and V_A (n_eff x d), which the weights mix, so
 * 2 · batch · heads · n_eff · d · 4 bytes. Neither is per KV head: both depend on the
 * query head's Q.
 */
static double agent_state_bytes(const struct attn_problem *p)
{
	return 2.0 * p->batch * p->heads * agent_count(p) * p->d * sizeof(float);
}

const struct variant_ops agent_variant = {
	.name		= "agent",
	.family		= "lowrank",
	.summary	= "agent attention: n segment-mean query agents [harness] gather from "
			  "all keys, queries read the agents; no biases or DWC [harness]",
	.citation	= "Han et al. 2024, Agent Attention: On the Integration of Softmax and "
			  "Linear Attention, ECCV (arXiv 2312.08874)",
	.patterns	= PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_NC),
	.extensions	= PATTERN_BIT(ATTN_NC),
	.flags		= 0,
	.params		= agent_params,
	.n_params	= 1,
	.forward	= agent_forward,
	.flops		= agent_flops,
	.state_bytes	= agent_state_bytes,
};
