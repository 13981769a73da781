/*
 * inputs.c - random streams, input regimes and output comparison for the tasks.
 *
 * Regimes are drawn per KV slice first, then per query head from the KV slice that head
 * reads, so structured regimes (peaked, sink, local) relate Q to the keys it sees.
 */
#include "inputs.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
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
}

/*
 * The generators are inline so that a loop over a local copy of the state keeps it in
 * registers (rng_normals()): through memory, every draw waits on the last one's stores,
 * four times as slow.
 */
static inline __attribute__((always_inline)) uint64_t next_bits(struct rng *r)
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

static inline __attribute__((always_inline)) double uniform(struct rng *r)
{
	return (double)(next_bits(r) >> 11) * 0x1.0p-53;
}

uint64_t rng_next(struct rng *r)
{
	return next_bits(r);
}

double rng_uniform(struct rng *r)
{
	return uniform(r);
}

/*
 * Standard normals by the ziggurat (Marsaglia and Tsang 2000): 256 layers of equal area V
 * under f(x) = exp(-x^2 / 2). Layer i >= 1 is the box [0, x_i] x [f(x_i), f(x_{i+1})];
 * layer 0 is the box [0, R] x [0, f(R)] with the tail beyond R, drawn as if it were a box
 * of width x_0 = V / f(R). One 64-bit draw gives the layer (bits 0-7), the sign (bit 8)
 * and the position (bits 11-63), disjoint bits so that layer and value are independent.
 * About 99% of draws end at the first comparison: with the state in registers a normal
 * costs 3 to 4 ns where Box-Muller's log, sqrt and sincos cost 16 to 22 (2-core Zen 5
 * VM), which made drawing the inputs a third of a cheap cell's time.
 */
#define ZIGGURAT_LAYERS 256
#define ZIGGURAT_R 3.6541528853610088	/* x_1: 256 layers of equal area end at 0 */

static double ziggurat_x[ZIGGURAT_LAYERS + 1], ziggurat_f[ZIGGURAT_LAYERS + 1];
static pthread_once_t ziggurat_once = PTHREAD_ONCE_INIT;

static void ziggurat_build(void)
{
	double r = ZIGGURAT_R, fr = exp(-0.5 * r * r);
	double area = r * fr + sqrt(M_PI / 2) * erfc(r / M_SQRT2);

	ziggurat_x[0] = area / fr;
	ziggurat_x[1] = r;
	for (int i = 1; i < ZIGGURAT_LAYERS - 1; i++) {
		double y = area / ziggurat_x[i] + exp(-0.5 * ziggurat_x[i] * ziggurat_x[i]);

		ziggurat_x[i + 1] = sqrt(-2.0 * log(y));
	}
	ziggurat_x[ZIGGURAT_LAYERS] = 0;
	for (int i = 0; i <= ZIGGURAT_LAYERS; i++)
		ziggurat_f[i] = exp(-0.5 * ziggurat_x[i] * ziggurat_x[i]);
}

/* Always inline: a call would take the state's address and keep it in memory. */
static inline __attribute__((always_inline)) double normal(struct rng *r)
{
	for (;;) {
		uint64_t bits = next_bits(r);
		int i = (int)(bits & 0xff);
		double sign = 1.0 - 2.0 * (double)((bits >> 8) & 1);	/* no branch to mispredict */
		double x = (double)(bits >> 11) * 0x1.0p-53 * ziggurat_x[i];
		double a, b;

		if (x < ziggurat_x[i + 1])	/* under the curve whatever the height */
			return sign * x;
		if (i > 0) {
			/* the sliver between the layer's box and the curve */
			if (ziggurat_f[i] + uniform(r) * (ziggurat_f[i + 1] - ziggurat_f[i]) <
			    exp(-0.5 * x * x))
				return sign * x;
			continue;
		}
		/* beyond R (Marsaglia 1964): R + a, a exponential of rate R, kept w.p. e^(-a^2/2) */
		do {
			a = -log(1.0 - uniform(r)) / ZIGGURAT_R;
			b = -log(1.0 - uniform(r));
		} while (2 * b < a * a);
		return sign * (ZIGGURAT_R + a);
	}
}

double rng_normal(struct rng *r)
{
	pthread_once(&ziggurat_once, ziggurat_build);
	return normal(r);
}

void rng_normals(struct rng *r, float *x, size_t count, double scale)
{
	struct rng g = *r;

	pthread_once(&ziggurat_once, ziggurat_build);
	for (size_t i = 0; i < count; i++)
		x[i] = (float)(scale * normal(&g));
	*r = g;
}

uint64_t rng_below(struct rng *r, uint64_t n)
{
	return (uint64_t)(rng_uniform(r) * (double)n) % n;
}

void random_unit(struct rng *r, float *x, int d)
{
	double norm = 0;

	do {
		rng_normals(r, x, (size_t)d, 1.0);
		for (int c = 0; c < d; c++)
			norm += (double)x[c] * x[c];
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


/*
 * The structured regimes are calibrated so that the exact attention of every row has the
 * property the regime is named for, at every suite length (M up to 4096) and d >= 32;
 * fidelity stores the measured properties with each cell (regime-stats.h), and
 * tests/test-regimes.c checks them with its own computation.
 */

/*
 * peaked: the chosen key's logit stands this far above log M. The other keys' logits are
 * about normal with sd (log M + PEAKED_LEAD) / sqrt(d) (a random key against the chosen
 * one's direction), so for d >= 32 they hold a few percent of a row together even at
 * M = 4096 (top-1 weight 0.95 measured at d = 32, 0.99 at d = 64).
 */
#define PEAKED_LEAD 8.0
/* peaked: noise on each query coordinate; it adds about N(0, 1/4) to every logit */
#define PEAKED_NOISE 0.5

/*
 * local: a query against the key at its own position scores LOCAL_PEAK, and the score
 * falls as a Gaussian of the distance with length LOCAL_LENGTH, so the weights form a
 * bump of sd LOCAL_LENGTH / sqrt(LOCAL_PEAK) = 2.5 positions. Far keys score about
 * N(0, LOCAL_PEAK^2 / d): far below the peak, so they hold well under 1% of a row at
 * M = 4096 and d = 32. LOCAL_NOISE on every coordinate jitters the scores by about half a
 * logit, so rows are not shifted copies of one another.
 */
#define LOCAL_PEAK 16.0
#define LOCAL_LENGTH 10.0
#define LOCAL_NOISE 0.25

/*
 * sink: key 0's logit stands this far above log M for every query, and the other logits
 * are about N(0, 1) as in gaussian, whose M exponentials add up to about 1.65 M: key 0
 * holds about e^1.5 / (e^1.5 + 1.65) = 73% of a full row at any length (more in the
 * early rows of cs, which see fewer keys).
 */
#define SINK_LEAD 1.5

/*
 * A rotary position code: x[2f], x[2f + 1] = amp * (cos, sin)(w_f pos + phi_f), with w_f
 * and phi_f in code[2f], code[2f + 1]. Two codes at positions a and b have the dot product
 * amp^2 sum_f cos(w_f (a - b)): a function of the distance only. An odd d's last
 * coordinate is 0.
 */
static void position_code(float *x, int d, double pos, const float *code, double amp)
{
	for (int f = 0; f + 1 < d; f += 2) {
		double s, c;

		sincos((double)code[f] * pos + code[f + 1], &s, &c);
		x[f] = (float)(amp * c);
		x[f + 1] = (float)(amp * s);
	}
	if (d % 2)
		x[d - 1] = 0;
}

/* Amplitude of the local code: a code against itself scores LOCAL_PEAK after 1/sqrt(d). */
static double local_amp(int d)
{
	return d >= 2 ? sqrt(LOCAL_PEAK * sqrt(d) / (d / 2)) : 0;
}

/* Length of the sink direction: query and key 0 score log M + SINK_LEAD after 1/sqrt(d). */
static double sink_amp(int m, int d)
{
	return sqrt((log(m) + SINK_LEAD) * sqrt(d));
}

/* x minus its component along the unit vector u (d values). */
static void remove_component(float *x, const float *u, int d)
{
	double dot = 0;

	for (int c = 0; c < d; c++)
		dot += (double)x[c] * u[c];
	for (int c = 0; c < d; c++)
		x[c] = (float)(x[c] - dot * u[c]);
}

/* Scales x (d values) to unit length; returns its length before. */
static double normalise(float *x, int d)
{
	double norm = 0;

	for (int c = 0; c < d; c++)
		norm += (double)x[c] * x[c];
	norm = sqrt(norm);
	if (norm > 0)
		for (int c = 0; c < d; c++)
			x[c] = (float)(x[c] / norm);
	return norm;
}

/* Rank of the lowrank regime: 4, or 1 for tiny heads. */
static int lowrank_rank(int d)
{
	return d >= 16 ? 4 : 1;
}

/*
 * The lowrank_rank(d) rows of basis (d values each): orthogonal, each of length
 * sqrt(d / rank), so that rows drawn from it have gaussian's energy and the scores'
 * nonzero singular values are alike (effective rank close to the rank).
 */
static void lowrank_basis(struct rng *r, float *basis, int d)
{
	int rank = lowrank_rank(d);

	for (int t = 0; t < rank; t++) {
		float *b = basis + (size_t)t * d;

		/* d >= 16 for rank 4: a random unit vector is never in the span of three */
		do {
			random_unit(r, b, d);
			for (int u = 0; u < t; u++) {
				double dot = 0;

				for (int c = 0; c < d; c++)
					dot += (double)b[c] * basis[(size_t)u * d + c];
				for (int c = 0; c < d; c++)
					b[c] = (float)(b[c] - dot * basis[(size_t)u * d + c]);
			}
		} while (normalise(b, d) < 1e-3);
	}
	for (int i = 0; i < rank * d; i++)
		basis[i] = (float)(basis[i] * sqrt((double)d / rank));
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

/*
 * Keys and values of one KV slice; dir receives what Q shares with K (4 d floats): the
 * local code's frequencies and phases, the sink direction, the lowrank basis.
 */
static void generate_kv(int regime, struct rng *r, int m, int d, float *k, float *v,
			float *dir)
{
	rng_normals(r, v, (size_t)m * d, 1.0);
	switch (regime) {
	case 2:	/* local: a rotary code of the key's position, plus noise */
		/*
		 * frequencies ~ N(0, 1 / LOCAL_LENGTH^2): the mean of cos(w t) is then
		 * exp(-t^2 / (2 LOCAL_LENGTH^2)); drawn, not evenly spaced, as evenly spaced
		 * frequencies would make the code periodic and bring far keys back
		 */
		for (int f = 0; f + 1 < d; f += 2) {
			dir[f] = (float)(rng_normal(r) / LOCAL_LENGTH);
			dir[f + 1] = (float)(2 * M_PI * rng_uniform(r));
		}
		for (int j = 0; j < m; j++) {
			float *kj = k + (size_t)j * d;

			position_code(kj, d, j, dir, local_amp(d));
			for (int c = 0; c < d; c++)
				kj[c] += (float)(LOCAL_NOISE * rng_normal(r));
		}
		break;
	case 3:	/* sink: key 0 is the sink direction, the others are orthogonal to it */
		rng_normals(r, k, (size_t)m * d, 1.0);
		random_unit(r, dir, d);
		for (int j = 1; j < m; j++)
			remove_component(k + (size_t)j * d, dir, d);
		for (int c = 0; c < d; c++)
			k[c] = (float)(sink_amp(m, d) * dir[c]);
		break;
	case 4:	/* lowrank: rows in a shared rank-4 subspace, same energy as gaussian */
		lowrank_basis(r, dir, d);
		fill_lowrank(r, k, m, d, dir);
		break;
	default:	/* gaussian, peaked */
		rng_normals(r, k, (size_t)m * d, 1.0);
		break;
	}
}

/* Queries of one head, reading the KV slice k generated with the same dir. */
static void generate_q(int regime, struct rng *r, const struct attn_problem *p,
		       const float *k, const float *dir, float *q)
{
	int n = p->n, m = p->m, d = p->d;

	switch (regime) {
	case 1:	/* peaked: each query points at one visible key, scaled to its lead */
		for (int i = 0; i < n; i++) {
			int visible = p->pattern == ATTN_CS ? i + 1 : m;
			const float *kj = k + rng_below(r, (uint64_t)visible) * d;
			float *qi = q + (size_t)i * d;
			double norm2 = 0, scale;

			for (int c = 0; c < d; c++)
				norm2 += (double)kj[c] * kj[c];
			/* q.kj / sqrt(d) = the lead: kj's length does not change the peak */
			scale = norm2 > 0 ? (log(m) + PEAKED_LEAD) * sqrt(d) / norm2 : 0;
			for (int c = 0; c < d; c++)
				qi[c] = (float)(scale * kj[c] + PEAKED_NOISE * rng_normal(r));
		}
		break;
	case 2:	/* local: the code at the query's position, scaled onto the keys' range */
		for (int i = 0; i < n; i++) {
			float *qi = q + (size_t)i * d;

			position_code(qi, d, (double)i * m / n, dir, local_amp(d));
			for (int c = 0; c < d; c++)
				qi[c] += (float)(LOCAL_NOISE * rng_normal(r));
		}
		break;
	case 3:	/* sink: gaussian queries with their sink component set to the same length */
		rng_normals(r, q, (size_t)n * d, 1.0);
		for (int i = 0; i < n; i++) {
			float *qi = q + (size_t)i * d;

			remove_component(qi, dir, d);
			for (int c = 0; c < d; c++)
				qi[c] += (float)(sink_amp(m, d) * dir[c]);
		}
		break;
	case 4:	/* lowrank: the keys' subspace */
		fill_lowrank(r, q, n, d, dir);
		break;
	default:
		rng_normals(r, q, (size_t)n * d, 1.0);
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
