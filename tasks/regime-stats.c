/*
 * regime-stats.c - the measured properties of an input set's exact attention (entropy,
 * locality, sink, peak, effective rank), which fidelity stores with each cell so that a
 * regime's name is a measured claim.
 *
 * Straightforward double loops on a sample of rows: REGIME_STATS_ROWS query rows per
 * (batch, head), so the cost is O(64 m d) per head, a small share of the reference's
 * O(n m d), at any length.
 */
#include "regime-stats.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

/* Row t of count evenly spaced rows of n: the middle of the t-th of count equal parts. */
static int sample_index(int t, int count, int n)
{
	return (int)(((2 * (long)t + 1) * n) / (2 * (long)count));
}

static double dot(const float *a, const float *b, int d)
{
	double s = 0;

	for (int c = 0; c < d; c++)
		s += (double)a[c] * b[c];
	return s;
}

/*
 * Eigenvalues of the symmetric r x r matrix g (overwritten) into lambda, by cyclic Jacobi
 * rotations: a few sweeps for r <= 64, and no library beyond libm.
 */
static void jacobi_eigenvalues(double *g, int r, double *lambda)
{
	for (int sweep = 0; sweep < 60; sweep++) {
		double off = 0, diag = 0;

		for (int a = 0; a < r; a++) {
			diag += g[a * r + a] * g[a * r + a];
			for (int b = a + 1; b < r; b++)
				off += g[a * r + b] * g[a * r + b];
		}
		/* off-diagonal mass at rounding level: the diagonal holds the eigenvalues */
		if (off <= 1e-30 * diag)
			break;
		for (int a = 0; a < r; a++) {
			for (int b = a + 1; b < r; b++) {
				double gab = g[a * r + b], theta, t, c, s;

				if (gab == 0)
					continue;
				/* the rotation that zeroes g[a][b]: the smaller root t = tan */
				theta = (g[b * r + b] - g[a * r + a]) / (2 * gab);
				t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
				c = 1 / sqrt(t * t + 1);
				s = t * c;
				for (int x = 0; x < r; x++) {
					double ga = g[x * r + a], gb = g[x * r + b];

					g[x * r + a] = c * ga - s * gb;
					g[x * r + b] = s * ga + c * gb;
				}
				for (int x = 0; x < r; x++) {
					double ga = g[a * r + x], gb = g[b * r + x];

					g[a * r + x] = c * ga - s * gb;
					g[b * r + x] = s * ga + c * gb;
				}
			}
		}
	}
	for (int a = 0; a < r; a++)
		lambda[a] = g[a * r + a];
}

/*
 * Effective rank of the rows x keys block of scores: its singular values are the roots
 * of the eigenvalues of the block times its transpose (rows x rows, at most 64 x 64).
 * Squaring loses the smallest singular values to rounding, which weigh nothing here.
 */
static double effective_rank(const double *block, int rows, int keys, double *gram)
{
	double *lambda = gram + (size_t)rows * rows, sum = 0, h = 0;

	for (int a = 0; a < rows; a++)
		for (int b = 0; b <= a; b++) {
			double s = 0;

			for (int u = 0; u < keys; u++)
				s += block[(size_t)a * keys + u] * block[(size_t)b * keys + u];
			gram[a * rows + b] = gram[b * rows + a] = s;
		}
	jacobi_eigenvalues(gram, rows, lambda);
	for (int a = 0; a < rows; a++) {
		lambda[a] = lambda[a] > 0 ? sqrt(lambda[a]) : 0;
		sum += lambda[a];
	}
	if (sum == 0)
		return 0;
	for (int a = 0; a < rows; a++)
		if (lambda[a] > 0)
			h -= lambda[a] / sum * log(lambda[a] / sum);
	return exp(h);
}

/* The sums over the sampled rows of one (batch, head), and its effective rank. */
static int measure_head(const struct attn_problem *p, const float *q, const float *k,
			struct regime_stats *sum)
{
	int rows = p->n < REGIME_STATS_ROWS ? p->n : REGIME_STATS_ROWS;
	int keys = p->m < REGIME_STATS_KEYS ? p->m : REGIME_STATS_KEYS;
	double scale = 1 / sqrt(p->d), *s, *block, *gram;
	int d = p->d;

	s = malloc(sizeof(*s) * ((size_t)p->m + (size_t)rows * keys +
				 (size_t)rows * rows + rows));
	if (!s)
		return -ENOMEM;
	block = s + p->m;
	gram = block + (size_t)rows * keys;
	*sum = (struct regime_stats){ 0 };

	for (int t = 0; t < rows; t++) {
		int i = sample_index(t, rows, p->n);
		int visible = p->pattern == ATTN_CS ? (i + 1 < p->m ? i + 1 : p->m) : p->m;
		/* cross patterns: query i sits at key position i * m / n, as the regimes align */
		double centre = pattern_is_self(p->pattern) ? i : (double)i * p->m / p->n;
		double max = -INFINITY, z = 0, ws = 0, near = 0;
		const float *qi = q + (size_t)i * d;

		for (int j = 0; j < visible; j++) {
			s[j] = scale * dot(qi, k + (size_t)j * d, d);
			if (s[j] > max)
				max = s[j];
		}
		for (int j = 0; j < visible; j++) {
			double w = exp(s[j] - max);

			z += w;
			ws += w * (s[j] - max);
			if (fabs(j - centre) <= REGIME_STATS_NEAR)
				near += w;
		}
		sum->entropy += log(z) - ws / z;
		sum->near16 += near / z;
		sum->sink += exp(s[0] - max) / z;
		sum->top1 += 1 / z;	/* the largest weight is exp(0) / z */

		for (int u = 0; u < keys; u++)
			block[(size_t)t * keys + u] =
				scale * dot(qi, k + (size_t)sample_index(u, keys, p->m) * d, d);
	}
	sum->erank = effective_rank(block, rows, keys, gram);
	free(s);
	return 0;
}

int regime_stats_measure(const struct attn_problem *p, const float *q, const float *k,
			 struct regime_stats *s)
{
	int slices = p->batch * p->heads, rows = p->n < REGIME_STATS_ROWS ?
						 p->n : REGIME_STATS_ROWS;
	struct regime_stats *part = calloc((size_t)slices, sizeof(*part));
	int ret = 0;

	*s = (struct regime_stats){ 0 };
	if (!rows)
		return 0;
	if (!part)
		return -ENOMEM;
	/* heads in parallel, summed in order after: the same numbers on any thread count */
	#pragma omp parallel for schedule(dynamic, 1)
	for (int slice = 0; slice < slices; slice++) {
		int b = slice / p->heads, h = slice % p->heads;

		if (measure_head(p, q + problem_q_offset(p, b, h), k + problem_kv_offset(p, b, h),
				 &part[slice]))
			ret = -ENOMEM;
	}
	if (ret)
		goto out_free_part;
	for (int i = 0; i < slices; i++) {
		s->entropy += part[i].entropy;
		s->near16 += part[i].near16;
		s->sink += part[i].sink;
		s->top1 += part[i].top1;
		s->erank += part[i].erank;
	}
	s->entropy /= (double)slices * rows;
	s->near16 /= (double)slices * rows;
	s->sink /= (double)slices * rows;
	s->top1 /= (double)slices * rows;
	s->erank /= slices;
out_free_part:
	free(part);
	return ret;
}
