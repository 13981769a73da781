/*
 * probsparse.c - Informer's ProbSparse attention as CAB's ProbSparse (Zhou et al. 2021).
 *
 * Only the u "active" queries attend; the others return the mean of all values. A query
 * is active when its largest score on a random sample of keys stands far above the
 * sample's (quirky) mean. Per (batch, head) slice, with c = probsparse.factor:
 *   U = min(c ceil(ln M), M) sampled keys per query, u = min(c ceil(ln N), N) active rows;
 *   mu_i = max_r q_i.k_{I[i][r]} - (sum_r q_i.k_{I[i][r]}) / M   (unscaled dot products;
 *          the sum over the U samples divided by M, not by U, as Informer writes it);
 *   the u rows of largest mu_i (ties: the smaller i) get softmax(q_i K^T / sqrt(d)) V over
 *   all M keys, every other row the mean of all M value rows.
 * ceil(ln 1) = 0 would give no sample and no active row when N or M is 1; both counts are
 * taken as at least c (then clipped to the length), so a single query always attends and a
 * single key is always sampled.
 *
 * The index matrix I (N x U, uniform on [0, M) with replacement) is a plan object: drawn
 * from plan_rng_make(seed, PROBSPARSE_STREAM) row by row (I[0][0], I[0][1], ...), one
 * plan_rng_below(M) each, and shared by every batch entry and head as CAB shares it.
 * Only the problem's seed feeds it, never the data.
 *
 * Slices run in parallel (OpenMP), BLAS single-threaded inside: the active queries are
 * gathered and their u x M scores and u x d outputs are two sgemm calls. The mean of V
 * depends on the values only, so it is made once per KV head and shared by its group.
 * Selection ranks every query row against all others, so cs and cc are refused.
 */
#include "variant.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "memory.h"
#include "random.h"
#include "threads.h"
#include "vexp.h"

#define PROBSPARSE_FACTOR_DEFAULT 5	/* Informer's and CAB's factor c */

/* The plan stream of the sample matrix; one for all heads (CAB shares the sample). */
#define PROBSPARSE_STREAM 0

static const struct variant_param probsparse_params[] = {
	{
		.name		= "factor",
		.def		= PROBSPARSE_FACTOR_DEFAULT,
		.min		= 1,
		.max		= 1048576,
		.integer	= true,
		.help		= "c: c ceil(ln M) sampled keys, c ceil(ln N) attending queries",
	},
};

static long probsparse_factor(const struct attn_problem *p)
{
	return p->params ? (long)p->params[0] : PROBSPARSE_FACTOR_DEFAULT;
}

/*
 * min(c ceil(ln len), len), with ceil(ln len) taken as at least 1 so that a length of 1
 * still gives one (ln of an integer above 1 is never a whole number, so ceil() is safe).
 */
static int probsparse_count(long c, int len)
{
	double l = ceil(log((double)len));
	long t = c * (l < 1 ? 1 : (long)l);

	return t < len ? (int)t : len;
}

/* A query's sparsity score and its row, for ranking. */
struct probsparse_rank {
	float mu;
	int i;
};

/* Larger mu first; equal scores keep the smaller row first, so the choice is fixed. */
static int probsparse_by_score(const void *a, const void *b)
{
	const struct probsparse_rank *x = a, *y = b;

	if (x->mu > y->mu)
		return -1;
	if (x->mu < y->mu)
		return 1;
	return (x->i > y->i) - (x->i < y->i);
}

static int probsparse_by_row(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/* Where one thread's scratch lives: offsets in floats into its slot. */
struct probsparse_layout {
	size_t rank, rows, qs, s, sums, os, total;
};

static void probsparse_layout(struct probsparse_layout *lay, int n, int m, int d, int u)
{
	/* a rank entry and a row index are each one float wide */
	lay->rank = 0;
	lay->rows = lay->rank + 2 * (size_t)n;
	lay->qs = lay->rows + (size_t)u;
	lay->s = lay->qs + (size_t)u * d;
	lay->sums = lay->s + (size_t)u * m;
	lay->os = lay->sums + (size_t)u;
	lay->total = lay->os + (size_t)u * d;
	/* whole cache lines, so threads do not share one */
	lay->total = (lay->total + 15) / 16 * 16;
}

/* The index matrix: row i holds the U keys sampled for query i. */
static void probsparse_sample(int32_t *idx, uint64_t seed, int n, int samples, int m)
{
	struct plan_rng g = plan_rng_make(seed, PROBSPARSE_STREAM);

	for (size_t x = 0; x < (size_t)n * samples; x++)
		idx[x] = (int32_t)plan_rng_below(&g, (uint64_t)m);
}

/* mean[c] = (1/m) sum_j v[j][c], summed in double so the mean is correctly rounded. */
static void probsparse_mean(const float *v, int m, int d, float *mean)
{
	for (int c = 0; c < d; c++) {
		double sum = 0;

		for (int j = 0; j < m; j++)
			sum += v[(size_t)j * d + c];
		mean[c] = (float)(sum / m);
	}
}

/* Scores every query on its sampled keys; leaves the u active rows ascending in rows. */
static void probsparse_select(const float *q, const float *k, const int32_t *idx, int n, int m,
			      int d, int samples, int u, struct probsparse_rank *rank, int *rows)
{
	for (int i = 0; i < n; i++) {
		const float *qi = q + (size_t)i * d;
		const int32_t *ii = idx + (size_t)i * samples;
		float max = -INFINITY, sum = 0;

		for (int r = 0; r < samples; r++) {
			float s = dot(qi, k + (size_t)ii[r] * d, d);

			max = fmaxf(max, s);
			sum += s;
		}
		rank[i].mu = max - sum / (float)m;
		rank[i].i = i;
	}
	qsort(rank, (size_t)n, sizeof(*rank), probsparse_by_score);
	for (int r = 0; r < u; r++)
		rows[r] = rank[r].i;
	qsort(rows, (size_t)u, sizeof(*rows), probsparse_by_row);
}

/* Full softmax attention of the u gathered queries qs over all m keys, into os. */
static void probsparse_attend(const float *qs, const float *k, const float *v, int u, int m,
			      int d, float *s, float *sums, float *os)
{
	/* log2(e)/sqrt(d): scores come out in base 2 for exp2. */
	float scale = (float)(1.4426950408889634 / sqrt((double)d));

	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, u, m, d, scale, qs, d, k, d,
		    0.0f, s, m);
	for (int r = 0; r < u; r++) {
		float *row = s + (size_t)r * m;

		sums[r] = exp2_shifted_sum(row, m, row_max(row, m));
	}
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, u, d, m, 1.0f, s, m, v, d,
		    0.0f, os, d);
	for (int r = 0; r < u; r++)
		for (int c = 0; c < d; c++)
			os[(size_t)r * d + c] /= sums[r];
}

static int probsparse_forward(const struct attn_problem *p, const float *q, const float *k,
			      const float *v, float *out)
{
	long c = probsparse_factor(p);
	int samples = probsparse_count(c, p->m), u = probsparse_count(c, p->n);
	int slices = p->batch * p->heads, kv_slices = p->batch * p->kv_heads;
	int threads = max_threads(), d = p->d, saved;
	struct probsparse_layout lay;
	int32_t *idx;
	float *means, *ws;
	int ret = -ENOMEM;

	if (p->pattern != ATTN_NS && p->pattern != ATTN_NC)
		return -ENOTSUP;
	probsparse_layout(&lay, p->n, p->m, d, u);
	idx = attn_alloc((size_t)p->n * samples * sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	means = attn_alloc((size_t)kv_slices * d * sizeof(float));
	if (!means)
		goto out_free_idx;
	ws = attn_alloc((size_t)threads * lay.total * sizeof(float));
	if (!ws)
		goto out_free_means;

	probsparse_sample(idx, p->seed, p->n, samples, p->m);

	#pragma omp parallel for schedule(static)
	for (int s = 0; s < kv_slices; s++)
		probsparse_mean(v + (size_t)s * p->m * d, p->m, d, means + (size_t)s * d);

	saved = blas_serial_begin();
	#pragma omp parallel for schedule(static)
	for (int sl = 0; sl < slices; sl++) {
		int b = sl / p->heads, h = sl % p->heads;
		int kvh = h / (p->heads / p->kv_heads);
		size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);
		float *base = ws + (size_t)thread_id() * lay.total;
		struct probsparse_rank *rank = (struct probsparse_rank *)(base + lay.rank);
		int *rows = (int *)(base + lay.rows);
		float *qs = base + lay.qs, *os = base + lay.os;
		const float *mean = means + ((size_t)b * p->kv_heads + kvh) * d;
		float *o = out + qo;

		probsparse_select(q + qo, k + kvo, idx, p->n, p->m, d, samples, u, rank, rows);
		for (int r = 0; r < u; r++)
			memcpy(qs + (size_t)r * d, q + qo + (size_t)rows[r] * d,
			       sizeof(float) * d);
		probsparse_attend(qs, k + kvo, v + kvo, u, p->m, d, base + lay.s,
				  base + lay.sums, os);
		/* rows is ascending: fill the lazy rows between the active ones */
		for (int i = 0, r = 0; i < p->n; i++) {
			float *oi = o + (size_t)i * d;

			if (r < u && rows[r] == i)
				memcpy(oi, os + (size_t)r++ * d, sizeof(float) * d);
			else
				memcpy(oi, mean, sizeof(float) * d);
		}
	}
	blas_serial_end(saved);
	ret = 0;

	attn_free(ws);
out_free_means:
	attn_free(means);
out_free_idx:
	attn_free(idx);
	return ret;
}

/* 2d per sampled (query, key) score, 4d per (active query, key) pair of the attention. */
static double probsparse_flops(const struct attn_problem *p)
{
	long c = probsparse_factor(p);
	double samples = probsparse_count(c, p->m), u = probsparse_count(c, p->n);

	return (double)p->batch * p->heads * p->d *
	       (2.0 * p->n * samples + 4.0 * u * p->m);
}

/*
 * Every key and value, float32: which queries become active depends on all of them, an
 * active query attends over every key, and a lazy one returns the mean of every value, so
 * nothing can be dropped: the KV cache of exact attention, kv_cache_bytes(p, m).
 */
static double probsparse_state_bytes(const struct attn_problem *p)
{
	return kv_cache_bytes(p, p->m);
}

const struct variant_ops probsparse_variant = {
	.name		= "probsparse",
	.family		= "sparse",
	.summary	= "Informer ProbSparse: top c ln N queries attend, the rest get mean(V)",
	.citation	= "Zhou et al. 2021, Informer: Beyond Efficient Transformer for Long "
			  "Sequence Time-Series Forecasting, AAAI; CAB ProbSparse",
	.patterns	= PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_NC),
	.extensions	= PATTERN_BIT(ATTN_NC),
	.flags		= 0,
	.params		= probsparse_params,
	.n_params	= 1,
	.forward	= probsparse_forward,
	.flops		= probsparse_flops,
	.state_bytes	= probsparse_state_bytes,
};
