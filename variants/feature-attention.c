/*
 * feature-attention.c - chunked kernel attention with a feature map (see the header).
 *
 * A chunk's features are made once into scratch and used for the three products of
 * that chunk; the state S is f x d, the running denominator z is f, so the memory a
 * slice needs is a few chunks, whatever its length.
 */
#include "feature-attention.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "common.h"
#include "random.h"

static inline float guard(const struct feature_map *fm, float den)
{
	return fmaxf(den + fm->add, fm->floor);
}

double feature_attention_flops(const struct attn_problem *p, int features)
{
	double d = p->d, f = features;

	if (p->pattern == ATTN_CS) {
		double per_head = 0;

		for (long r0 = 0; r0 < p->n; r0 += FEATURE_CHUNK) {
			double r = p->n - r0 < FEATURE_CHUNK ? p->n - r0 : FEATURE_CHUNK;

			per_head += 4 * r * f * d + 2 * r * r * (f + d) + 3 * r * f;
		}
		return (double)p->batch * p->heads * per_head;
	}
	return (double)p->batch * p->kv_heads * p->m * (2 * f * d + f) +
	       (double)p->batch * p->heads * p->n * (2 * f * d + 2 * f);
}

size_t feature_scratch_floats(const struct feature_map *fm, int d)
{
	size_t c = FEATURE_CHUNK;

	(void)d;
	/* φ of a query chunk and of a key chunk, the c x c scores, c denominators */
	return 2 * c * fm->features + c * c + c;
}

size_t feature_state_floats(const struct feature_map *fm, int d)
{
	return (size_t)fm->features * d + fm->features;
}

/* z += the column sums of phi (rows x f). */
static void add_column_sums(float *z, const float *phi, int rows, int f)
{
	for (int i = 0; i < rows; i++)
		for (int r = 0; r < f; r++)
			z[r] += phi[(size_t)i * f + r];
}

/* S (f x d) += phiᵀ v for `rows` rows. */
static void add_outer(float *s, const float *phi, const float *v, int rows, int f, int d)
{
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, f, d, rows, 1.0f, phi, f, v, d,
		    1.0f, s, d);
}

/* Divides each output row by the guarded denominator of its query. */
static void divide_rows(const struct feature_map *fm, float *out, const float *den, int rows,
			int d)
{
	for (int i = 0; i < rows; i++) {
		float g = guard(fm, den[i]);

		for (int c = 0; c < d; c++)
			out[(size_t)i * d + c] /= g;
	}
}

void feature_state_build(const struct feature_map *fm, const float *k, const float *v, int m,
			 int d, float *scratch, float *state)
{
	int f = fm->features;
	float *s = state, *z = state + (size_t)f * d, *phi = scratch;

	memset(state, 0, sizeof(float) * feature_state_floats(fm, d));
	for (int r0 = 0; r0 < m; r0 += FEATURE_CHUNK) {
		int rows = m - r0 < FEATURE_CHUNK ? m - r0 : FEATURE_CHUNK;

		fm->key(fm, k + (size_t)r0 * d, d, r0, rows, phi);
		add_outer(s, phi, v + (size_t)r0 * d, rows, f, d);
		add_column_sums(z, phi, rows, f);
	}
}

void feature_state_apply(const struct feature_map *fm, const float *state, const float *q,
			 int n, int d, float *scratch, float *out)
{
	int f = fm->features;
	const float *s = state, *z = state + (size_t)f * d;
	float *phi = scratch, *den = scratch + 2 * FEATURE_CHUNK * f + FEATURE_CHUNK * FEATURE_CHUNK;

	for (int r0 = 0; r0 < n; r0 += FEATURE_CHUNK) {
		int rows = n - r0 < FEATURE_CHUNK ? n - r0 : FEATURE_CHUNK;
		float *o = out + (size_t)r0 * d;

		fm->query(fm, q + (size_t)r0 * d, d, r0, rows, phi);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, f, 1.0f, phi, f,
			    s, d, 0.0f, o, d);
		for (int i = 0; i < rows; i++)
			den[i] = dot(phi + (size_t)i * f, z, f);
		divide_rows(fm, o, den, rows, d);
	}
}

void feature_attention_causal(const struct feature_map *fm, const float *q, const float *k,
			      const float *v, int n, int d, float *scratch, float *state,
			      float *out)
{
	const int c = FEATURE_CHUNK;
	int f = fm->features;
	float *s = state, *z = state + (size_t)f * d;
	float *phq = scratch, *phk = phq + (size_t)c * f, *a = phk + (size_t)c * f;
	float *den = a + (size_t)c * c;

	memset(state, 0, sizeof(float) * feature_state_floats(fm, d));
	for (int r0 = 0; r0 < n; r0 += c) {
		int rows = n - r0 < c ? n - r0 : c;
		const float *vc = v + (size_t)r0 * d;
		float *o = out + (size_t)r0 * d;

		fm->query(fm, q + (size_t)r0 * d, d, r0, rows, phq);
		fm->key(fm, k + (size_t)r0 * d, d, r0, rows, phk);
		/* what the chunks before this one left in the state */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, f, 1.0f, phq, f,
			    s, d, 0.0f, o, d);
		/* inside the chunk: φ(q_i)·φ(k_j) for j <= i only */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, rows, f, 1.0f, phq, f,
			    phk, f, 0.0f, a, rows);
		for (int i = 0; i < rows; i++) {
			float *ai = a + (size_t)i * rows, sum = 0;

			for (int j = 0; j <= i; j++)
				sum += ai[j];
			for (int j = i + 1; j < rows; j++)
				ai[j] = 0;
			den[i] = dot(phq + (size_t)i * f, z, f) + sum;
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, rows, 1.0f, a,
			    rows, vc, d, 1.0f, o, d);
		divide_rows(fm, o, den, rows, d);
		add_outer(s, phk, vc, rows, f, d);
		add_column_sums(z, phk, rows, f);
	}
}

void feature_state_add(const struct feature_map *fm, float *state, const float *k,
		       const float *v, int d, int position, float *scratch)
{
	int f = fm->features;
	float *s = state, *z = state + (size_t)f * d;

	fm->key(fm, k, d, position, 1, scratch);
	for (int r = 0; r < f; r++) {
		for (int c = 0; c < d; c++)
			s[(size_t)r * d + c] += scratch[r] * v[c];
		z[r] += scratch[r];
	}
}

void feature_state_query(const struct feature_map *fm, const float *state, const float *q,
			 int d, int position, float *scratch, float *out)
{
	int f = fm->features;
	const float *s = state, *z = state + (size_t)f * d;
	float g;

	fm->query(fm, q, d, position, 1, scratch);
	for (int c = 0; c < d; c++)
		out[c] = 0;
	for (int r = 0; r < f; r++)
		for (int c = 0; c < d; c++)
			out[c] += scratch[r] * s[(size_t)r * d + c];
	g = guard(fm, dot(scratch, z, f));
	for (int c = 0; c < d; c++)
		out[c] /= g;
}

/*
 * Orthonormalises the d columns of g (column-major, d x d) in place by modified
 * Gram-Schmidt: g becomes U of g = U R with R's diagonal positive.
 */
static void orthonormalise_columns(double *g, int d)
{
	for (int j = 0; j < d; j++) {
		double *cj = g + (size_t)j * d, norm = 0;

		for (int i = 0; i < j; i++) {
			const double *ci = g + (size_t)i * d;
			double r = 0;

			for (int c = 0; c < d; c++)
				r += ci[c] * cj[c];
			for (int c = 0; c < d; c++)
				cj[c] -= r * ci[c];
		}
		for (int c = 0; c < d; c++)
			norm += cj[c] * cj[c];
		norm = sqrt(norm);
		for (int c = 0; c < d; c++)
			cj[c] /= norm;
	}
}

void favor_draw(uint64_t seed, uint64_t stream, int f, int d, double scale, double *g,
		float *w)
{
	struct plan_rng rng = plan_rng_make(seed, stream);

	for (int b0 = 0; b0 < f; b0 += d) {
		int rows = f - b0 < d ? f - b0 : d;

		for (size_t i = 0; i < (size_t)d * d; i++)
			g[i] = plan_rng_normal(&rng);
		orthonormalise_columns(g, d);
		/* row r of Uᵀ is column r of U, held in g as double for the scaling below */
		for (int r = 0; r < rows; r++)
			for (int c = 0; c < d; c++)
				w[(size_t)(b0 + r) * d + c] = (float)g[(size_t)r * d + c];
	}
	for (int r = 0; r < f; r++) {
		double norm = 0;

		for (int c = 0; c < d; c++) {
			double x = plan_rng_normal(&rng);

			norm += x * x;
		}
		norm = sqrt(norm) * scale;
		for (int c = 0; c < d; c++) {
			float *wr = w + (size_t)r * d + c;

			*wr = (float)(*wr * norm);
		}
	}
}
