/*
 * inputs.c - random streams, input regimes and output comparison for the tasks.
 *
 * Regimes are drawn per KV slice first, then per query head from the KV slice that head
 * reads, so structured regimes (peaked, sink, local) relate Q to the keys it sees.
 */
#include "inputs.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "memory.h"

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void rng_seed(struct rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
	r->has_spare = false;
}

uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s, result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double rng_uniform(struct rng *r)
{
	return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

double rng_normal(struct rng *r)
{
	double u, w, radius, s, c;

	if (r->has_spare) {
		r->has_spare = false;
		return r->spare;
	}
	u = 1.0 - rng_uniform(r);	/* in (0, 1], so the log is finite */
	w = rng_uniform(r);
	radius = sqrt(-2.0 * log(u));
	sincos(2.0 * M_PI * w, &s, &c);
	r->spare = radius * s;
	r->has_spare = true;
	return radius * c;
}

uint64_t rng_below(struct rng *r, uint64_t n)
{
	return (uint64_t)(rng_uniform(r) * (double)n) % n;
}

void random_unit(struct rng *r, float *x, int d)
{
	double norm = 0;

	do {
		for (int c = 0; c < d; c++) {
			x[c] = (float)rng_normal(r);
			norm += (double)x[c] * x[c];
		}
	} while (norm == 0);
	for (int c = 0; c < d; c++)
		x[c] = (float)(x[c] / sqrt(norm));
}

void orthogonal_unit(struct rng *r, float *x, const float *dir, int d)
{
	double dot, norm;

	do {
		random_unit(r, x, d);
		dot = 0;
		for (int c = 0; c < d; c++)
			dot += (double)x[c] * dir[c];
		norm = 0;
		for (int c = 0; c < d; c++) {
			x[c] = (float)(x[c] - dot * dir[c]);
			norm += (double)x[c] * x[c];
		}
	} while (norm < 1e-6);	/* d = 1 has no orthogonal direction: callers need d >= 2 */
	for (int c = 0; c < d; c++)
		x[c] = (float)(x[c] / sqrt(norm));
}

int nearest_code(const float *o, const float *codes, int count, int d)
{
	double best = -INFINITY;
	int which = 0;

	for (int i = 0; i < count; i++) {
		double dot = 0;

		for (int c = 0; c < d; c++)
			dot += (double)o[c] * codes[(size_t)i * d + c];
		if (dot > best) {
			best = dot;
			which = i;
		}
	}
	return which;
}

double problem_state_bytes(const struct variant_ops *v, const struct attn_problem *p)
{
	return v->state_bytes ? v->state_bytes(p) : -1;
}

const char *const input_regimes[] = {
	"gaussian", "peaked", "local", "sink", "lowrank", NULL,
};

size_t problem_q_count(const struct attn_problem *p)
{
	return (size_t)p->batch * p->heads * p->n * p->d;
}

size_t problem_kv_count(const struct attn_problem *p)
{
	return (size_t)p->batch * p->kv_heads * p->m * p->d;
}

static void fill_normal(struct rng *r, float *x, size_t count, double scale)
{
	for (size_t i = 0; i < count; i++)
		x[i] = (float)(scale * rng_normal(r));
}

/* Rotary embedding of x (d values) at position pos, as RoPE with base 10000. */
static void rotate(float *x, int d, double pos)
{
	for (int f = 0; f + 1 < d; f += 2) {
		double theta = pos * pow(10000.0, -(double)f / d);
		double c = cos(theta), s = sin(theta), a = x[f], b = x[f + 1];

		x[f] = (float)(a * c - b * s);
		x[f + 1] = (float)(a * s + b * c);
	}
}

/* Rank of the lowrank regime: 4, or 1 for tiny heads. */
static int lowrank_rank(int d)
{
	return d >= 16 ? 4 : 1;
}

/* Rows of x (rows x d): random combinations of the lowrank_rank(d) rows of basis. */
static void fill_lowrank(struct rng *r, float *x, int rows, int d, const float *basis)
{
	int rank = lowrank_rank(d);
	double z[4];

	for (int i = 0; i < rows; i++) {
		for (int t = 0; t < rank; t++)
			z[t] = rng_normal(r);
		for (int c = 0; c < d; c++) {
			double sum = 0;

			for (int t = 0; t < rank; t++)
				sum += z[t] * basis[(size_t)t * d + c];
			x[(size_t)i * d + c] = (float)sum;
		}
	}
}

/* Keys and values of one KV slice; dir receives the directions Q shares with K. */
static void generate_kv(int regime, struct rng *r, int m, int d, float *k, float *v,
			float *dir)
{
	double sigma = 1.0 / sqrt(d);

	fill_normal(r, v, (size_t)m * d, 1.0);
	switch (regime) {
	case 2:	/* local: one content vector, rotated by position, plus noise */
		fill_normal(r, dir, d, 1.0);
		for (int j = 0; j < m; j++) {
			for (int c = 0; c < d; c++)
				k[(size_t)j * d + c] = dir[c] + 0.5f * (float)rng_normal(r);
			rotate(k + (size_t)j * d, d, j);
		}
		break;
	case 3:	/* sink: key 0 carries a direction every query shares */
		fill_normal(r, k, (size_t)m * d, 1.0);
		fill_normal(r, dir, d, 1.0);
		{
			double norm = 0, amp = sqrt(8.0 / sigma);	/* sigma*amp^2 = 8 logits */

			for (int c = 0; c < d; c++)
				norm += (double)dir[c] * dir[c];
			for (int c = 0; c < d; c++) {
				dir[c] = (float)(dir[c] / sqrt(norm) * amp);
				k[c] += dir[c];
			}
		}
		break;
	case 4:	/* lowrank: rows in a shared rank-4 subspace, same energy as gaussian */
		fill_normal(r, dir, (size_t)lowrank_rank(d) * d, 1.0 / sqrt(lowrank_rank(d)));
		fill_lowrank(r, k, m, d, dir);
		break;
	default:	/* gaussian, peaked */
		fill_normal(r, k, (size_t)m * d, 1.0);
		break;
	}
}

/* Queries of one head, reading the KV slice k generated with the same dir. */
static void generate_q(int regime, struct rng *r, const struct attn_problem *p,
		       const float *k, const float *dir, float *q)
{
	int n = p->n, m = p->m, d = p->d;

	switch (regime) {
	case 1:	/* peaked: each query is twice one visible key plus noise */
		for (int i = 0; i < n; i++) {
			int visible = p->pattern == ATTN_CS ? i + 1 : m;
			int j = (int)rng_below(r, (uint64_t)visible);

			for (int c = 0; c < d; c++)
				q[(size_t)i * d + c] = 2.0f * k[(size_t)j * d + c] +
						       0.5f * (float)rng_normal(r);
		}
		break;
	case 2:	/* local: same content vector, positions scaled onto the keys' range */
		for (int i = 0; i < n; i++) {
			for (int c = 0; c < d; c++)
				q[(size_t)i * d + c] = dir[c] + 0.5f * (float)rng_normal(r);
			rotate(q + (size_t)i * d, d, (double)i * m / n);
		}
		break;
	case 3:	/* sink */
		fill_normal(r, q, (size_t)n * d, 1.0);
		for (int i = 0; i < n; i++)
			for (int c = 0; c < d; c++)
				q[(size_t)i * d + c] += dir[c];
		break;
	case 4:	/* lowrank: the keys' subspace */
		fill_lowrank(r, q, n, d, dir);
		break;
	default:
		fill_normal(r, q, (size_t)n * d, 1.0);
		break;
	}
}

int inputs_generate(const char *regime, const struct attn_problem *p, uint64_t seed,
		    float *q, float *k, float *v)
{
	int which = -1, group = p->heads / p->kv_heads, slices = p->batch * p->kv_heads;
	size_t slice_kv = (size_t)p->m * p->d, slice_q = (size_t)p->n * p->d;
	int ret = 0;

	for (int i = 0; input_regimes[i]; i++)
		if (!strcmp(regime, input_regimes[i]))
			which = i;
	if (which < 0)
		return -EINVAL;

	/* Each KV slice and its query heads draw from their own stream: slices in parallel. */
	#pragma omp parallel for schedule(dynamic, 1)
	for (int slice = 0; slice < slices; slice++) {
		int b = slice / p->kv_heads, g = slice % p->kv_heads;
		size_t kv = (size_t)slice * slice_kv;
		float *dir = malloc(sizeof(*dir) * 4 * (size_t)p->d);	/* lowrank: 4 rows */
		struct rng r;

		if (!dir) {
			ret = -ENOMEM;
			continue;
		}
		rng_seed(&r, seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(slice + 1)));
		generate_kv(which, &r, p->m, p->d, k + kv, v + kv, dir);
		for (int h = g * group; h < (g + 1) * group; h++)
			generate_q(which, &r, p, k + kv, dir,
				   q + ((size_t)b * p->heads + h) * slice_q);
		free(dir);
	}
	return ret;
}

ptrdiff_t inputs_first_nonfinite(const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return (ptrdiff_t)i;
	return -1;
}

void output_compare(const float *o, const double *ref, size_t rows, int d, const float *v,
		    size_t nv, struct output_error *e)
{
	double diff2 = 0, ref2 = 0, cos_sum = 0, v2 = 0, rms_err;
	size_t finite = 0;

	memset(e, 0, sizeof(*e));
	for (size_t i = 0; i < rows; i++) {
		double dot = 0, oo = 0, rr = 0;

		for (int c = 0; c < d; c++) {
			double x = o[i * d + c], y = ref[i * d + c], err = fabs(x - y);

			if (!isfinite(x)) {
				e->nonfinite++;
				continue;
			}
			dot += x * y;
			oo += x * x;
			rr += y * y;
			diff2 += (x - y) * (x - y);
			finite++;
			if (err > e->max_abs_err)
				e->max_abs_err = err;
		}
		ref2 += rr;
		if (oo == 0 && rr == 0)
			cos_sum += 1;
		else if (oo > 0 && rr > 0)
			cos_sum += dot / sqrt(oo * rr);
	}
	e->rel_err = ref2 > 0 ? sqrt(diff2 / ref2) : sqrt(diff2);
	for (size_t i = 0; i < nv; i++)
		v2 += (double)v[i] * v[i];
	rms_err = finite ? sqrt(diff2 / (double)finite) : 0;
	e->scaled_err = v2 > 0 ? rms_err / sqrt(v2 / (double)nv) : rms_err;
	e->cosine = rows ? cos_sum / (double)rows : 1;
}

int forward_measured(const struct variant_ops *v, const struct attn_problem *p,
		     const float *q, const float *k, const float *v_in, float *out,
		     size_t *peak_bytes)
{
	size_t before = memory_live_bytes();
	int ret;

	memory_reset_peak();
	ret = v->forward(p, q, k, v_in, out);
	*peak_bytes = memory_peak_bytes() - before;
	return ret;
}

int tensors_alloc(const struct attn_problem *p, float **q, float **k, float **v, float **o)
{
	*q = malloc(sizeof(float) * problem_q_count(p));
	*k = malloc(sizeof(float) * problem_kv_count(p));
	*v = malloc(sizeof(float) * problem_kv_count(p));
	*o = malloc(sizeof(float) * problem_q_count(p));
	if (*q && *k && *v && *o)
		return 0;
	tensors_free(*q, *k, *v, *o);
	*q = *k = *v = *o = NULL;
	return -ENOMEM;
}

void tensors_free(float *q, float *k, float *v, float *o)
{
	free(q);
	free(k);
	free(v);
	free(o);
}
