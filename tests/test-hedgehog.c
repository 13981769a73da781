/*
 * test-hedgehog.c - the hedgehog variant (VARIANTS.md section 20) against a
 * straightforward fp64 transcription of its catalogue entry: the feature map, the
 * prefix sums and the naive quadratic form on the awkward shapes of all four patterns;
 * the plan-time fit (calibration draw, KL, golden-section search on ln τ, Adam for the
 * full fit), redone here from the catalogue with its own loops; and the properties the
 * catalogue lists: prefix == naive, fitted KL <= KL at τ = 1, a fit reproducible for a
 * seed; with causality, GQA, decoding, state bytes and the declared parameter.
 *
 * The calibration set is regenerated from the plan generator (variants/random.h) as the
 * variant documents it: 256 query rows then 256 keys of d N(0, 1) entries from
 * plan_rng_make(seed, 1000 h + 7). That is the plan, not the code under test. The fit's
 * helpers of variants/hedgehog.h are used where only they can answer: the gradient
 * (checked against finite differences of the loss) and the full fit's W, b (replayed
 * here by an Adam loop on that checked gradient).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "variant-test.h"

#include "hedgehog.h"
#include "random.h"
#include "threads.h"

#define R HEDGEHOG_CALIBRATION_ROWS

/* fp32 features and sums against fp64 ones: the spec's bound for a transcription. */
#define TRANSCRIPTION_TOLERANCE 1e-5
/* Rows the causal mask hides may move visible rows only by fp32 reordering (spec). */
#define CAUSAL_TOLERANCE 1e-5
/*
 * The variant's τ against the one fitted here: both search a bracket that ends 3e-8
 * wide in ln τ with KLs that agree to rounding; only the last few comparisons, between
 * losses equal to ~1e-16, can go either way.
 */
#define TAU_TOLERANCE 1e-6
/* The variant's loss (dgemm, its own exp and log) against these loops: rounding only. */
#define LOSS_TOLERANCE 1e-11
/* Central differences with step 1e-5 on a smooth loss: truncation ~1e-10, rounding ~1e-11. */
#define GRADIENT_TOLERANCE 1e-6
/* Adam's 500 steps replayed on the same gradient: rounding carried through the steps. */
#define ADAM_TOLERANCE 1e-7

/* The largest head dimension the transcription's stack arrays take. */
#define MAX_D 128

static const double temp_fit[1] = { HEDGEHOG_FIT_TEMP };
static const double full_fit[1] = { HEDGEHOG_FIT_FULL };

static const enum attn_pattern all_patterns[] = { ATTN_NS, ATTN_CS, ATTN_NC, ATTN_CC };

static const struct variant_ops *hedgehog(void)
{
	return variant_must_find("hedgehog");
}

/*
 * The fit's helpers on one thread, as forward() runs each head's fit: called from here,
 * outside a parallel region, OpenBLAS would split their small products over threads.
 */
static void fit_head(uint64_t seed, int h, int d, bool causal, enum hedgehog_fit fit,
		     double *w, double *b)
{
	int saved = threads_get();

	threads_set(1);
	assert_int_equal(hedgehog_fit_head(seed, h, d, causal, fit, w, b), 0);
	threads_set(saved);
}

static double fit_loss(uint64_t seed, int h, int d, bool causal, const double *w,
		       const double *b, double *grad_w, double *grad_b)
{
	int saved = threads_get();
	double loss;

	threads_set(1);
	assert_int_equal(hedgehog_calibration_loss(seed, h, d, causal, w, b, &loss, grad_w,
						   grad_b), 0);
	threads_set(saved);
	return loss;
}

/* ---- the feature map ---- */

/*
 * φ(x) = [max(softmax(u), 1e-12), max(softmax(-u), 1e-12)], u = W x + b, softmax over the
 * d entries of u, each with its largest exponent subtracted.
 */
static void features(const double *w, const double *b, const double *x, int d, double *phi)
{
	double u[MAX_D], max, min, zp = 0, zn = 0;

	assert_true(d <= MAX_D);
	for (int c = 0; c < d; c++) {
		u[c] = b[c];
		for (int e = 0; e < d; e++)
			u[c] += w[(size_t)c * d + e] * x[e];
	}
	max = min = u[0];
	for (int c = 0; c < d; c++) {
		max = fmax(max, u[c]);
		min = fmin(min, u[c]);
	}
	for (int c = 0; c < d; c++) {
		zp += exp(u[c] - max);
		zn += exp(-u[c] + min);
	}
	for (int c = 0; c < d; c++) {
		phi[c] = fmax(exp(u[c] - max) / zp, 1e-12);
		phi[d + c] = fmax(exp(-u[c] + min) / zn, 1e-12);
	}
}

static void features_of_float(const double *w, const double *b, const float *x, int d,
			      double *phi)
{
	double xd[MAX_D];

	for (int c = 0; c < d; c++)
		xd[c] = x[c];
	features(w, b, xd, d, phi);
}

/* Four running sums: the fit's 256 x 256 dot products here stay quick. */
static double dot_double(const double *a, const double *b, int n)
{
	double s[4] = { 0 };
	int c = 0;

	for (; c + 4 <= n; c += 4)
		for (int l = 0; l < 4; l++)
			s[l] += a[c + l] * b[c + l];
	for (; c < n; c++)
		s[0] += a[c] * b[c];
	return (s[0] + s[1]) + (s[2] + s[3]);
}

/* W = τI, b = 0. */
static void tau_identity(double tau, int d, double *w, double *b)
{
	for (int x = 0; x < d * d; x++)
		w[x] = 0;
	for (int c = 0; c < d; c++) {
		w[(size_t)c * d + c] = tau;
		b[c] = 0;
	}
}

/* ---- the calibration set and the loss ---- */

struct calibration {
	int d;
	bool causal;
	double *q, *k;		/* R x d each */
	double *p;		/* R x R: target softmax(σ q_i·k_j) over the keys row i sees */
};

/* Keys calibration row i sees: j <= i in cs, all of them otherwise. */
static int calibration_keys(const struct calibration *c, int i)
{
	return c->causal ? i + 1 : R;
}

static void calibration_make(struct calibration *c, uint64_t seed, int h, int d, bool causal)
{
	struct plan_rng rng = plan_rng_make(seed, 1000ull * (uint64_t)h + 7);

	c->d = d;
	c->causal = causal;
	c->q = malloc(sizeof(double) * R * d);
	c->k = malloc(sizeof(double) * R * d);
	c->p = calloc((size_t)R * R, sizeof(double));
	assert_true(c->q && c->k && c->p);
	for (int x = 0; x < R * d; x++)
		c->q[x] = plan_rng_normal(&rng);
	for (int x = 0; x < R * d; x++)
		c->k[x] = plan_rng_normal(&rng);
	for (int i = 0; i < R; i++) {
		double *p = c->p + (size_t)i * R, max = -INFINITY, sum = 0;
		int keys = calibration_keys(c, i);

		for (int j = 0; j < keys; j++) {
			p[j] = dot_double(c->q + (size_t)i * d, c->k + (size_t)j * d, d) /
			       sqrt((double)d);
			max = fmax(max, p[j]);
		}
		for (int j = 0; j < keys; j++)
			sum += exp(p[j] - max);
		for (int j = 0; j < keys; j++)
			p[j] = exp(p[j] - max) / sum;
	}
}

static void calibration_release(struct calibration *c)
{
	free(c->q);
	free(c->k);
	free(c->p);
}

/*
 * Mean over the calibration rows of KL(p_i ‖ hedgehog weights of row i), the weights
 * φ(q_i)·φ(k_j) normalised over the keys row i sees.
 */
static double calibration_kl(const struct calibration *c, const double *w, const double *b)
{
	int d = c->d, f = 2 * d;
	double *phq = malloc(sizeof(double) * R * f), *phk = malloc(sizeof(double) * R * f);
	double *a = malloc(sizeof(double) * R), total = 0;

	assert_true(phq && phk && a);
	for (int r = 0; r < R; r++) {
		features(w, b, c->q + (size_t)r * d, d, phq + (size_t)r * f);
		features(w, b, c->k + (size_t)r * d, d, phk + (size_t)r * f);
	}
	for (int i = 0; i < R; i++) {
		const double *p = c->p + (size_t)i * R;
		int keys = calibration_keys(c, i);
		double sum = 0, kl = 0;

		for (int j = 0; j < keys; j++) {
			a[j] = dot_double(phq + (size_t)i * f, phk + (size_t)j * f, f);
			sum += a[j];
		}
		for (int j = 0; j < keys; j++)
			if (p[j] > 0)
				kl += p[j] * (log(p[j]) - log(a[j] / sum));
		total += kl;
	}
	free(phq);
	free(phk);
	free(a);
	return total / R;
}

static double calibration_kl_tau(const struct calibration *c, double tau)
{
	double *w = malloc(sizeof(double) * c->d * c->d), *b = malloc(sizeof(double) * c->d);
	double kl;

	assert_true(w && b);
	tau_identity(tau, c->d, w, b);
	kl = calibration_kl(c, w, b);
	free(w);
	free(b);
	return kl;
}

/*
 * The temp fit as the catalogue states it: golden-section search on ln τ over
 * [ln 0.05, ln 20], 40 steps, τ = exp of the final bracket's midpoint.
 */
static double golden_section_tau(const struct calibration *c)
{
	const double inv_phi = (sqrt(5.0) - 1) / 2;
	double lo = log(0.05), hi = log(20.0);
	double left = hi - inv_phi * (hi - lo), right = lo + inv_phi * (hi - lo);
	double f_left = calibration_kl_tau(c, exp(left));
	double f_right = calibration_kl_tau(c, exp(right));

	for (int step = 0; step < 40; step++) {
		if (f_left < f_right) {
			/* the minimum is left of `right` */
			hi = right;
			right = left;
			f_right = f_left;
			left = hi - inv_phi * (hi - lo);
			f_left = calibration_kl_tau(c, exp(left));
		} else {
			lo = left;
			left = right;
			f_left = f_right;
			right = lo + inv_phi * (hi - lo);
			f_right = calibration_kl_tau(c, exp(right));
		}
	}
	return exp((lo + hi) / 2);
}

/* τ of query head h fitted here, kept once found: a fit of d = 64 takes a while. */
static double fitted_tau(uint64_t seed, int h, int d, bool causal)
{
	static struct {
		uint64_t seed;
		int h, d;
		bool causal;
		double tau;
	} cache[128];
	static int cached;
	struct calibration c;
	double tau;

	for (int i = 0; i < cached; i++)
		if (cache[i].seed == seed && cache[i].h == h && cache[i].d == d &&
		    cache[i].causal == causal)
			return cache[i].tau;
	calibration_make(&c, seed, h, d, causal);
	tau = golden_section_tau(&c);
	calibration_release(&c);
	assert_true(cached < COUNT(cache));
	cache[cached].seed = seed;
	cache[cached].h = h;
	cache[cached].d = d;
	cache[cached].causal = causal;
	cache[cached].tau = tau;
	cached++;
	return tau;
}

/* ---- the transcription ---- */

/* W and b of every query head: [heads][d][d] and [heads][d]. */
struct head_fits {
	int heads, d;
	double *w, *b;
};

static void head_fits_alloc(struct head_fits *fs, int heads, int d)
{
	fs->heads = heads;
	fs->d = d;
	fs->w = malloc(sizeof(double) * heads * d * d);
	fs->b = malloc(sizeof(double) * heads * d);
	assert_true(fs->w && fs->b);
}

static void head_fits_release(struct head_fits *fs)
{
	free(fs->w);
	free(fs->b);
}

/* The temp fit of every head, found here: W = τ_h I. cs fits causally, the rest not. */
static void head_fits_temp(struct head_fits *fs, const struct attn_problem *p)
{
	head_fits_alloc(fs, p->heads, p->d);
	for (int h = 0; h < p->heads; h++)
		tau_identity(fitted_tau(p->seed, h, p->d, p->pattern == ATTN_CS), p->d,
			     fs->w + (size_t)h * p->d * p->d, fs->b + (size_t)h * p->d);
}

/*
 * The full fit of query head h as the variant makes it (replayed by a test below), kept
 * once made, into w and b.
 */
static void full_fit_of(uint64_t seed, int h, int d, bool causal, double *w, double *b)
{
	static struct {
		uint64_t seed;
		int h, d;
		bool causal;
		double *w;	/* d x d, then b */
	} cache[32];
	static int cached;

	for (int i = 0; i < cached; i++)
		if (cache[i].seed == seed && cache[i].h == h && cache[i].d == d &&
		    cache[i].causal == causal) {
			memcpy(w, cache[i].w, sizeof(double) * d * d);
			memcpy(b, cache[i].w + d * d, sizeof(double) * d);
			return;
		}
	fit_head(seed, h, d, causal, HEDGEHOG_FIT_FULL, w, b);
	assert_true(cached < COUNT(cache));
	cache[cached].w = malloc(sizeof(double) * (d * d + d));
	assert_non_null(cache[cached].w);
	memcpy(cache[cached].w, w, sizeof(double) * d * d);
	memcpy(cache[cached].w + d * d, b, sizeof(double) * d);
	cache[cached].seed = seed;
	cache[cached].h = h;
	cache[cached].d = d;
	cache[cached].causal = causal;
	cached++;
}

static void head_fits_full(struct head_fits *fs, const struct attn_problem *p)
{
	head_fits_alloc(fs, p->heads, p->d);
	for (int h = 0; h < p->heads; h++)
		full_fit_of(p->seed, h, p->d, p->pattern == ATTN_CS,
			    fs->w + (size_t)h * p->d * p->d, fs->b + (size_t)h * p->d);
}

/* o = φᵀS / (φ·z + 1e-12) for one row of 2d features phi against S (2d x d) and z. */
static void output_row(const double *phi, const double *s, const double *z, int d,
		       double *out)
{
	double den = dot_double(phi, z, 2 * d) + 1e-12;

	for (int c = 0; c < d; c++) {
		double num = 0;

		for (int r = 0; r < 2 * d; r++)
			num += phi[r] * s[(size_t)r * d + c];
		out[c] = num / den;
	}
}

/*
 * The recurrent form: S = Σ φ(k_j) v_jᵀ and z = Σ φ(k_j) over all keys, or built up one
 * key at a time in cs, where row i reads them after key i; o = φ(q)ᵀS / (φ(q)·z + 1e-12).
 */
static void transcribe_prefix(const struct attn_problem *p, const struct head_fits *fs,
			      const float *q, const float *k, const float *v, double *out)
{
	int d = p->d, f = 2 * d;
	double *s = malloc(sizeof(double) * f * d), *z = malloc(sizeof(double) * f);
	double *phi = malloc(sizeof(double) * f);
	bool causal = p->pattern == ATTN_CS;

	assert_true(s && z && phi);
	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			const double *w = fs->w + (size_t)h * d * d, *bias = fs->b + (size_t)h * d;
			const float *qs = q + problem_q_offset(p, b, h);
			const float *ks = k + problem_kv_offset(p, b, h);
			const float *vs = v + problem_kv_offset(p, b, h);
			double *os = out + problem_q_offset(p, b, h);

			for (int x = 0; x < f * d; x++)
				s[x] = 0;
			for (int r = 0; r < f; r++)
				z[r] = 0;
			for (int j = 0; j < p->m; j++) {
				const float *vj = vs + (size_t)j * d;

				features_of_float(w, bias, ks + (size_t)j * d, d, phi);
				for (int r = 0; r < f; r++) {
					z[r] += phi[r];
					for (int c = 0; c < d; c++)
						s[(size_t)r * d + c] += phi[r] * vj[c];
				}
				if (!causal)
					continue;
				/* row j has now seen keys 0..j */
				features_of_float(w, bias, qs + (size_t)j * d, d, phi);
				output_row(phi, s, z, d, os + (size_t)j * d);
			}
			for (int i = 0; i < p->n && !causal; i++) {
				features_of_float(w, bias, qs + (size_t)i * d, d, phi);
				output_row(phi, s, z, d, os + (size_t)i * d);
			}
		}
	free(s);
	free(z);
	free(phi);
}

/*
 * The naive quadratic form: o_i = Σ_j a_ij v_j / (Σ_j a_ij + 1e-12), a_ij = φ(q_i)·φ(k_j),
 * over j <= i in cs and every key otherwise.
 */
static void transcribe_naive(const struct attn_problem *p, const struct head_fits *fs,
			     const float *q, const float *k, const float *v, double *out)
{
	int d = p->d, f = 2 * d;
	double *phq = malloc(sizeof(double) * f), *phk = malloc(sizeof(double) * p->m * f);

	assert_true(phq && phk);
	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			const double *w = fs->w + (size_t)h * d * d, *bias = fs->b + (size_t)h * d;
			const float *qs = q + problem_q_offset(p, b, h);
			const float *ks = k + problem_kv_offset(p, b, h);
			const float *vs = v + problem_kv_offset(p, b, h);
			double *os = out + problem_q_offset(p, b, h);

			for (int j = 0; j < p->m; j++)
				features_of_float(w, bias, ks + (size_t)j * d, d,
						  phk + (size_t)j * f);
			for (int i = 0; i < p->n; i++) {
				int keys = p->pattern == ATTN_CS ? i + 1 : p->m;
				double den = 0;

				features_of_float(w, bias, qs + (size_t)i * d, d, phq);
				for (int c = 0; c < d; c++)
					os[(size_t)i * d + c] = 0;
				for (int j = 0; j < keys; j++) {
					double a = dot_double(phq, phk + (size_t)j * f, f);

					den += a;
					for (int c = 0; c < d; c++)
						os[(size_t)i * d + c] += a * vs[(size_t)j * d + c];
				}
				for (int c = 0; c < d; c++)
					os[(size_t)i * d + c] /= den + 1e-12;
			}
		}
	free(phq);
	free(phk);
}

/* The variant on a fresh draw against a transcription with the fits fs: checks the error. */
static void check_transcription(const struct attn_problem *p, const struct head_fits *fs,
				bool naive, uint64_t seed)
{
	struct tensors t;
	double *ref = reference_make(&t, p, seed);

	if (naive)
		transcribe_naive(p, fs, t.q, t.k, t.v, ref);
	else
		transcribe_prefix(p, fs, t.q, t.k, t.v, ref);
	check_output(hedgehog(), p, &t, ref, TRANSCRIPTION_TOLERANCE, " fit=%g %s",
		     p->params ? p->params[0] : 0, naive ? "naive" : "prefix");
}

/* ---- against the transcription ---- */

/* Cross pairs (n, m): variant-test.h's, and a single query or key. */
static const int cross_pairs[][2] = { { 17, 63 }, { 257, 17 }, { 63, 257 }, { 1, 17 },
				      { 17, 1 } };

/*
 * The awkward shapes of every pattern at the default (temp) fit: ns and cs over every
 * size of variant-test.h, nc and cc over cross_pairs, each with every d, the KV grouping
 * (MHA, GQA, MQA) taking turns over the shapes. Each forward() fits its four heads,
 * which costs more than the attention at these sizes, so not every shape runs every
 * grouping (the GQA test below holds grouping to MHA bit for bit).
 */
static void test_hedgehog_matches_an_fp64_transcription_on_awkward_shapes(void **state)
{
	uint64_t seed = SEED;

	(void)state;
	for (int pi = 0; pi < COUNT(all_patterns); pi++) {
		enum attn_pattern pat = all_patterns[pi];
		int pairs = pattern_is_self(pat) ? COUNT(sizes) : COUNT(cross_pairs);

		for (int si = 0; si < pairs; si++)
			for (int di = 0; di < COUNT(dims); di++) {
				int n = pattern_is_self(pat) ? sizes[si] : cross_pairs[si][0];
				int m = pattern_is_self(pat) ? sizes[si] : cross_pairs[si][1];
				int kv = kv_choices[(si + di) % COUNT(kv_choices)], d = dims[di];
				struct attn_problem p = problem(2, 4, kv, n, m, d, pat, NULL);
				struct head_fits fs;

				head_fits_temp(&fs, &p);
				check_transcription(&p, &fs, false, seed++);
				head_fits_release(&fs);
			}
	}
}

/*
 * The catalogue's "prefix == naive": the variant's chunked prefix form in cs (a chunk
 * of 64 rows: lengths on, around and past chunk edges) equals the quadratic form.
 */
static void test_hedgehog_cs_prefix_form_equals_the_naive_form(void **state)
{
	static const int lengths[] = { 1, 2, 63, 64, 65, 130, 257 };
	uint64_t seed = SEED + 100;

	(void)state;
	for (int li = 0; li < COUNT(lengths); li++)
		for (int di = 0; di < COUNT(dims); di++) {
			/* two query heads, on two KV heads or on one */
			struct attn_problem p = problem(2, 2, 1 + (li + di) % 2, lengths[li],
							lengths[li], dims[di], ATTN_CS, temp_fit);
			struct head_fits fs;

			head_fits_temp(&fs, &p);
			check_transcription(&p, &fs, true, seed++);
			head_fits_release(&fs);
		}
}

/* The naive form of the other patterns too (every key seen). */
static void test_hedgehog_noncausal_patterns_equal_the_naive_form(void **state)
{
	static const int shapes[][2] = { { 17, 17 }, { 130, 130 }, { 63, 17 }, { 17, 257 } };
	static const enum attn_pattern pats[] = { ATTN_NS, ATTN_NC, ATTN_CC };
	uint64_t seed = SEED + 200;

	(void)state;
	for (int pi = 0; pi < COUNT(pats); pi++)
		for (int sh = 0; sh < COUNT(shapes); sh++) {
			int n = shapes[sh][0], m = shapes[sh][1];
			struct attn_problem p = problem(1, 4, 2, n, m, 12, pats[pi], temp_fit);
			struct head_fits fs;

			if (pattern_is_self(pats[pi]) != (n == m))
				continue;
			head_fits_temp(&fs, &p);
			check_transcription(&p, &fs, true, seed++);
			head_fits_release(&fs);
		}
}

/* ---- the temp fit ---- */

/*
 * The variant's τ (hedgehog_fit_head(), the plan forward() runs) is the one found by
 * the golden-section search here, W = τI and b = 0 exactly, and its KL (computed here)
 * is no worse than the KL at τ = 1: the catalogue's "fitted KL <= KL at τ = 1".
 */
static void test_hedgehog_fitted_kl_is_at_most_the_kl_at_tau_one(void **state)
{
	(void)state;
	for (int di = 0; di < COUNT(dims); di++)
		for (int causal = 0; causal <= 1; causal++)
			for (int h = 0; h < 4; h++) {
				int d = dims[di];
				double *w = malloc(sizeof(double) * d * d);
				double *b = malloc(sizeof(double) * d), tau, fitted, at_one;
				struct calibration c;

				assert_true(w && b);
				fit_head(SEED, h, d, causal, HEDGEHOG_FIT_TEMP, w, b);
				tau = w[0];
				/* the diagonal of W is every (d + 1)-th entry */
				for (int x = 0; x < d * d; x++)
					assert_true(w[x] == (x % (d + 1) == 0 ? tau : 0));
				for (int c = 0; c < d; c++)
					assert_true(b[c] == 0);
				assert_float_equal(tau, fitted_tau(SEED, h, d, causal),
						   TAU_TOLERANCE * tau);
				assert_true(tau > 0.05 && tau < 20);
				calibration_make(&c, SEED, h, d, causal);
				fitted = calibration_kl_tau(&c, tau);
				at_one = calibration_kl_tau(&c, 1.0);
				if (!(fitted <= at_one))
					print_error("d=%d causal=%d h=%d: KL %g at τ = %g, "
						    "%g at 1\n", d, causal, h, fitted, tau,
						    at_one);
				assert_true(fitted <= at_one);
				/* and a minimum: no better a little to either side */
				assert_true(fitted <= calibration_kl_tau(&c, tau * 1.01));
				assert_true(fitted <= calibration_kl_tau(&c, tau / 1.01));
				calibration_release(&c);
				free(w);
				free(b);
			}
}

/* Same seed, same fit and bit-identical outputs; another seed, another τ and output. */
static void test_hedgehog_fit_is_reproducible_for_a_seed(void **state)
{
	struct attn_problem p = problem(2, 4, 2, 40, 40, 12, ATTN_NS, temp_fit);
	double w1[144], b1[12], w2[144], b2[12];
	struct tensors a, b, c;

	(void)state;
	fit_head(SEED, 1, 12, false, HEDGEHOG_FIT_TEMP, w1, b1);
	fit_head(SEED, 1, 12, false, HEDGEHOG_FIT_TEMP, w2, b2);
	assert_memory_equal(w1, w2, sizeof(w1));
	fit_head(SEED + 1, 1, 12, false, HEDGEHOG_FIT_TEMP, w2, b2);
	assert_true(fabs(w1[0] - w2[0]) > 1e-4 * w1[0]);

	tensors_make(&a, &p, SEED, 1.0);
	tensors_copy(&b, &a);
	tensors_copy(&c, &a);
	run(hedgehog(), &p, &a);
	run(hedgehog(), &p, &b);
	assert_memory_equal(a.o, b.o, sizeof(float) * a.nq);
	p.seed++;
	run(hedgehog(), &p, &c);
	assert_memory_not_equal(a.o, c.o, sizeof(float) * a.nq);
	tensors_release(&a);
	tensors_release(&b);
	tensors_release(&c);
}

/*
 * The fit belongs to the query head (its own calibration draw): two query heads of one
 * KV head given the same queries differ, and so do their τ.
 */
static void test_hedgehog_fits_each_query_head(void **state)
{
	struct attn_problem p = problem(1, 2, 1, 17, 17, 8, ATTN_NS, temp_fit);
	struct tensors t;

	(void)state;
	assert_true(fabs(fitted_tau(SEED, 0, 8, false) - fitted_tau(SEED, 1, 8, false)) > 1e-4);
	tensors_make(&t, &p, SEED, 1.0);
	memcpy(t.q + problem_q_offset(&p, 0, 1), t.q, sizeof(float) * 17 * 8);
	run(hedgehog(), &p, &t);
	assert_memory_not_equal(t.o, t.o + problem_q_offset(&p, 0, 1), sizeof(float) * 17 * 8);
	tensors_release(&t);
}

/*
 * cs fits with the causal mask, so its τ differs from the others'; cc sees every key
 * and takes the non-causal fit: with n = m it gives ns's output bit for bit.
 */
static void test_hedgehog_fits_cs_causally_and_cc_as_ns(void **state)
{
	struct attn_problem ns = problem(2, 4, 2, 45, 45, 12, ATTN_NS, temp_fit);
	struct attn_problem cc = ns;
	struct tensors a, b;

	(void)state;
	for (int h = 0; h < 4; h++)
		assert_true(fabs(fitted_tau(SEED, h, 12, true) - fitted_tau(SEED, h, 12, false)) >
			    1e-4);
	cc.pattern = ATTN_CC;
	tensors_make(&a, &ns, SEED, 1.0);
	tensors_copy(&b, &a);
	run(hedgehog(), &ns, &a);
	run(hedgehog(), &cc, &b);
	assert_memory_equal(a.o, b.o, sizeof(float) * a.nq);
	tensors_release(&a);
	tensors_release(&b);
}

/* ---- the full fit ---- */

/* W near τI with some spread, b small: a point where no clamp holds. */
static void random_parameters(struct rng *g, int d, double tau, double *w, double *b)
{
	tau_identity(tau, d, w, b);
	for (int x = 0; x < d * d; x++)
		w[x] += 0.3 * rng_normal(g);
	for (int c = 0; c < d; c++)
		b[c] = 0.3 * rng_normal(g);
}

/* The variant's loss at any W, b is the KL computed here. */
static void test_hedgehog_loss_is_the_catalogues_kl(void **state)
{
	struct rng g = { SEED + 5 };

	(void)state;
	for (int di = 0; di < COUNT(dims); di++)
		for (int causal = 0; causal <= 1; causal++) {
			int d = dims[di];
			double *w = malloc(sizeof(double) * d * d), *b = malloc(sizeof(double) * d);
			double loss, kl;
			struct calibration c;

			assert_true(w && b);
			random_parameters(&g, d, 1.5, w, b);
			loss = fit_loss(SEED, 2, d, causal, w, b, NULL, NULL);
			calibration_make(&c, SEED, 2, d, causal);
			kl = calibration_kl(&c, w, b);
			assert_float_equal(loss, kl, LOSS_TOLERANCE * kl);
			calibration_release(&c);
			free(w);
			free(b);
		}
}

/* The analytic gradient of the loss against central differences, every W and b entry. */
static void test_hedgehog_gradient_matches_finite_differences(void **state)
{
	static const int grad_dims[] = { 8, 12 };
	const double step = 1e-5;
	struct rng g = { SEED + 6 };

	(void)state;
	for (int di = 0; di < COUNT(grad_dims); di++)
		for (int causal = 0; causal <= 1; causal++) {
			int d = grad_dims[di], n = d * d + d;
			double *x = malloc(sizeof(double) * n), *grad = malloc(sizeof(double) * n);
			double hi, lo, scale = 0, worst = 0;

			assert_true(x && grad);
			random_parameters(&g, d, 1.5, x, x + d * d);
			fit_loss(SEED, 0, d, causal, x, x + d * d, grad, grad + d * d);
			for (int i = 0; i < n; i++)
				scale = fmax(scale, fabs(grad[i]));
			assert_true(scale > 1e-4);
			for (int i = 0; i < n; i++) {
				double keep = x[i];

				x[i] = keep + step;
				hi = fit_loss(SEED, 0, d, causal, x, x + d * d, NULL, NULL);
				x[i] = keep - step;
				lo = fit_loss(SEED, 0, d, causal, x, x + d * d, NULL, NULL);
				x[i] = keep;
				worst = fmax(worst, fabs((hi - lo) / (2 * step) - grad[i]));
			}
			if (!(worst <= GRADIENT_TOLERANCE * scale))
				print_error("d=%d causal=%d: gradient off by %g of %g\n", d, causal,
					    worst, scale);
			assert_true(worst <= GRADIENT_TOLERANCE * scale);
			free(x);
			free(grad);
		}
}

/*
 * The full fit is Adam (lr 1e-2, β 0.9 and 0.999, ε 1e-8, 500 full-batch steps) from
 * W = τI, b = 0 with τ of the temp fit, on the gradient checked above, last iterate
 * kept: replayed here, it lands where the variant's fit does.
 */
static void test_hedgehog_full_fit_is_adam_from_the_temp_fit(void **state)
{
	const int d = 8, n = d * d + d;
	double *x = malloc(sizeof(double) * n), *grad = malloc(sizeof(double) * n);
	double *m = calloc(n, sizeof(double)), *v = calloc(n, sizeof(double));
	double *w = malloc(sizeof(double) * d * d), *b = malloc(sizeof(double) * d);
	double worst = 0, scale = 0;

	(void)state;
	assert_true(x && grad && m && v && w && b);
	tau_identity(fitted_tau(SEED, 3, d, true), d, x, x + d * d);
	for (int t = 1; t <= 500; t++) {
		fit_loss(SEED, 3, d, true, x, x + d * d, grad, grad + d * d);
		for (int i = 0; i < n; i++) {
			double mhat, vhat;

			m[i] = 0.9 * m[i] + 0.1 * grad[i];
			v[i] = 0.999 * v[i] + 0.001 * grad[i] * grad[i];
			mhat = m[i] / (1 - pow(0.9, t));
			vhat = v[i] / (1 - pow(0.999, t));
			x[i] -= 1e-2 * mhat / (sqrt(vhat) + 1e-8);
		}
	}
	full_fit_of(SEED, 3, d, true, w, b);
	for (int i = 0; i < n; i++) {
		double got = i < d * d ? w[i] : b[i - d * d];

		worst = fmax(worst, fabs(got - x[i]));
		scale = fmax(scale, fabs(x[i]));
	}
	if (!(worst <= ADAM_TOLERANCE * scale))
		print_error("full fit off the replayed Adam by %g of %g\n", worst, scale);
	assert_true(worst <= ADAM_TOLERANCE * scale);
	free(x);
	free(grad);
	free(m);
	free(v);
	free(w);
	free(b);
}

/* The full fit ends below the temp fit's KL (computed here), causal or not. */
static void test_hedgehog_full_fit_lowers_the_kl_of_the_temp_fit(void **state)
{
	static const int fit_dims[] = { 8, 12 };

	(void)state;
	for (int di = 0; di < COUNT(fit_dims); di++)
		for (int causal = 0; causal <= 1; causal++) {
			int d = fit_dims[di];
			double *w = malloc(sizeof(double) * d * d), *b = malloc(sizeof(double) * d);
			double full, temp;
			struct calibration c;

			assert_true(w && b);
			full_fit_of(SEED, 0, d, causal, w, b);
			calibration_make(&c, SEED, 0, d, causal);
			full = calibration_kl(&c, w, b);
			temp = calibration_kl_tau(&c, fitted_tau(SEED, 0, d, causal));
			if (!(full < temp))
				print_error("d=%d causal=%d: full fit KL %g, temp %g\n", d, causal,
					    full, temp);
			assert_true(full < temp);
			calibration_release(&c);
			free(w);
			free(b);
		}
}

/*
 * hedgehog.fit=1 runs with its W and b: the transcription with them, all four patterns
 * (two query heads on one KV head: the full fit takes a while per head).
 */
static void test_hedgehog_full_fit_matches_the_transcription(void **state)
{
	static const struct {
		enum attn_pattern pattern;
		int n, m, d;
	} cases[] = {
		{ ATTN_NS, 63, 63, 8 },
		{ ATTN_CS, 130, 130, 8 },
		{ ATTN_NC, 17, 40, 12 },
		{ ATTN_CC, 70, 33, 12 },
	};
	uint64_t seed = SEED + 300;

	(void)state;
	for (int i = 0; i < COUNT(cases); i++) {
		struct attn_problem p = problem(2, 2, 1, cases[i].n, cases[i].m, cases[i].d,
						cases[i].pattern, full_fit);
		struct head_fits fs;

		head_fits_full(&fs, &p);
		check_transcription(&p, &fs, false, seed++);
		head_fits_release(&fs);
	}
}

/* ---- causality, GQA, decoding ---- */

/*
 * The perturbation check on 2 query heads over 1 KV head: self patterns change Q, K, V
 * rows after t, cross ones only Q rows; in cs and cc rows <= t must not move. Returns
 * the largest relative move over the first `count` cuts (inside the first chunk of 64,
 * on either side of its edge, at the start).
 */
static double causal_leak(enum attn_pattern pattern, const double *params, int d, int count)
{
	static const int cuts[] = { 6, 63, 64, 0, 20, 41 };
	struct attn_problem p = problem(2, 2, 1, 90, pattern_is_self(pattern) ? 90 : 40, d,
					pattern, params);
	struct tensors a;
	double worst = 0;

	tensors_make(&a, &p, SEED + pattern, 1.0);
	run(hedgehog(), &p, &a);
	assert_true(count <= COUNT(cuts));
	for (int ci = 0; ci < count; ci++) {
		struct rng g = { SEED + 7 * (uint64_t)cuts[ci] };
		struct tensors b;

		tensors_copy(&b, &a);
		perturb_rows_after(&g, b.q, (size_t)p.batch * p.heads, p.n, p.d, cuts[ci]);
		if (pattern_is_self(pattern)) {
			perturb_rows_after(&g, b.k, (size_t)p.batch * p.kv_heads, p.m, p.d,
					   cuts[ci]);
			perturb_rows_after(&g, b.v, (size_t)p.batch * p.kv_heads, p.m, p.d,
					   cuts[ci]);
		}
		run(hedgehog(), &p, &b);
		worst = fmax(worst, change_up_to(&p, a.o, b.o, cuts[ci]));
		tensors_release(&b);
	}
	tensors_release(&a);
	return worst;
}

/* d = 12 (the kernel's portable tails) and 64; test-variants.c runs d = 16. */
static void test_hedgehog_ignores_later_rows_in_cs_and_cc(void **state)
{
	static const int leak_dims[] = { 12, 64 };

	(void)state;
	for (int di = 0; di < COUNT(leak_dims); di++) {
		assert_true(causal_leak(ATTN_CS, temp_fit, leak_dims[di], 6) <= CAUSAL_TOLERANCE);
		assert_true(causal_leak(ATTN_CC, temp_fit, leak_dims[di], 6) <= CAUSAL_TOLERANCE);
	}
	/* the full fit's projection W x + b, at fewer cuts: its fits take a while */
	assert_true(causal_leak(ATTN_CS, full_fit, 8, 3) <= CAUSAL_TOLERANCE);
	assert_true(causal_leak(ATTN_CC, full_fit, 8, 3) <= CAUSAL_TOLERANCE);
}

/*
 * The perturbation check can fail: ns reads every key, so changing later rows moves
 * earlier ones.
 */
static void test_hedgehog_ns_moves_when_later_rows_change(void **state)
{
	(void)state;
	assert_true(causal_leak(ATTN_NS, temp_fit, 12, 3) > 1e-3);
}

/*
 * Grouped KV heads: every query head computes its own key features from its KV head,
 * so GQA does the very arithmetic of MHA with repeated K/V, bit for bit.
 */
static void test_hedgehog_gives_gqa_as_mha_with_repeated_kv(void **state)
{
	uint64_t seed = SEED + 400;

	(void)state;
	for (int pi = 0; pi < COUNT(all_patterns); pi++)
		for (int kv = 1; kv <= 2; kv++) {
			enum attn_pattern pat = all_patterns[pi];
			int m = pattern_is_self(pat) ? 33 : 20;
			struct attn_problem p = problem(2, 4, kv, 33, m, 12, pat, temp_fit);

			check_gqa_is_mha_bit_for_bit(hedgehog(), &p, seed++);
		}
	{
		struct attn_problem p = problem(1, 2, 1, 33, 33, 8, ATTN_CS, full_fit);

		check_gqa_is_mha_bit_for_bit(hedgehog(), &p, seed++);
	}
}

static void test_hedgehog_decoding_matches_its_forward(void **state)
{
	static const int decode_sizes[] = { 1, 17, 130 };
	uint64_t seed = SEED + 500;

	(void)state;
	for (int ni = 0; ni < COUNT(decode_sizes); ni++)
		for (int di = 0; di < COUNT(dims); di++) {
			int n = decode_sizes[ni];
			int kv = kv_choices[(ni + di) % COUNT(kv_choices)];
			struct attn_problem p = problem(2, 4, kv, n, n, dims[di], ATTN_CS,
							temp_fit);

			check_decode(hedgehog(), &p, seed++);
		}
	{
		struct attn_problem p = problem(1, 2, 1, 70, 70, 12, ATTN_CS, full_fit);

		check_decode(hedgehog(), &p, seed++);
	}
}

static void test_hedgehog_decoding_refuses_non_causal_patterns(void **state)
{
	size_t live = memory_live_bytes();

	(void)state;
	for (int pi = 0; pi < COUNT(all_patterns); pi++) {
		enum attn_pattern pat = all_patterns[pi];
		struct attn_problem p = problem(1, 2, 2, 16, pattern_is_self(pat) ? 16 : 20, 8,
						pat, temp_fit);
		void *dec = &dec;

		if (pat == ATTN_CS)
			continue;
		assert_int_equal(hedgehog()->decode_init(&p, &dec), -ENOTSUP);
		assert_null(dec);
	}
	assert_int_equal(memory_live_bytes(), live);
}

/* ---- declarations, state, workspace ---- */

/* S (2d x d) and z (2d) in float32 per (batch, query head), whatever the pattern or fit. */
static void test_hedgehog_state_bytes_follow_the_formula(void **state)
{
	struct attn_problem p = problem(2, 8, 2, 300, 300, 64, ATTN_CS, NULL);

	(void)state;
	assert_true(hedgehog()->state_bytes(&p) == 2.0 * 8 * (2 * 64 * 64 + 2 * 64) * 4);
	p = problem(3, 4, 1, 17, 33, 12, ATTN_NC, full_fit);
	assert_true(hedgehog()->state_bytes(&p) == 3.0 * 4 * (2 * 12 * 12 + 2 * 12) * 4);
	p.pattern = ATTN_CC;
	assert_true(hedgehog()->state_bytes(&p) == 3.0 * 4 * (2 * 12 * 12 + 2 * 12) * 4);
}

/*
 * All four patterns, none a harness extension; hedgehog.fit is 0 (temp) or 1 (full);
 * `list variants` says what the fit ran on.
 */
static void test_hedgehog_declares_its_patterns_and_fit(void **state)
{
	static const double bad[][1] = { { -1 }, { 2 }, { 0.5 } };
	const struct variant_ops *v = hedgehog();

	(void)state;
	assert_string_equal(v->family, "linear");
	assert_int_equal(v->patterns, PATTERNS_ALL);
	assert_int_equal(v->extensions, 0);
	assert_int_equal(v->flags, 0);
	assert_int_equal(v->n_params, 1);
	assert_int_equal(variant_param_index(v, "fit"), 0);
	assert_true(v->params[0].def == 0 && v->params[0].min == 0 && v->params[0].max == 1);
	assert_true(v->params[0].integer);
	assert_non_null(strstr(v->params[0].help, "0 temp"));
	assert_non_null(strstr(v->params[0].help, "1 full"));
	assert_non_null(strstr(v->summary, "256 x 256 gaussian calibration Q/K"));
	assert_non_null(strstr(v->summary, "seed + 1000·h + 7"));
	assert_non_null(strstr(v->summary, "never on the inputs"));
	assert_non_null(strstr(v->citation, "2402.04347"));
	for (int pi = 0; pi < COUNT(all_patterns); pi++) {
		enum attn_pattern pat = all_patterns[pi];
		struct attn_problem p = problem(1, 2, 1, 16, pattern_is_self(pat) ? 16 : 5, 8,
						pat, NULL);

		assert_int_equal(variant_check_problem(v, &p), 0);
		p.params = full_fit;
		assert_int_equal(variant_check_problem(v, &p), 0);
		for (int b = 0; b < COUNT(bad); b++) {
			p.params = bad[b];
			assert_int_equal(variant_check_problem(v, &p), -EINVAL);
		}
	}
}

/* NULL params are the declared defaults (the temp fit). */
static void test_hedgehog_uses_the_temp_fit_without_params(void **state)
{
	struct attn_problem p = problem(2, 4, 2, 40, 40, 12, ATTN_CS, NULL);
	struct tensors a, b;

	(void)state;
	tensors_make(&a, &p, SEED, 1.0);
	tensors_copy(&b, &a);
	run(hedgehog(), &p, &a);
	p.params = temp_fit;
	run(hedgehog(), &p, &b);
	assert_memory_equal(a.o, b.o, sizeof(float) * a.nq);
	tensors_release(&a);
	tensors_release(&b);
}

/* Positive weights: every output coordinate lies between the visible values' extremes. */
/*
 * True when every coordinate of o (d) lies between the extremes of that coordinate over
 * the first `keys` rows of v, up to the fp32 rounding of a convex combination.
 */
static bool inside_visible_values(const float *o, const float *v, int keys, int d)
{
	for (int c = 0; c < d; c++) {
		float lo = INFINITY, hi = -INFINITY;

		for (int j = 0; j < keys; j++) {
			lo = fminf(lo, v[(size_t)j * d + c]);
			hi = fmaxf(hi, v[(size_t)j * d + c]);
		}
		if (o[c] < lo - 1e-5f * (1 + fabsf(lo)) || o[c] > hi + 1e-5f * (1 + fabsf(hi)))
			return false;
	}
	return true;
}

static void test_hedgehog_outputs_are_convex_combinations_of_visible_values(void **state)
{
	(void)state;
	for (int pi = 0; pi < COUNT(all_patterns); pi++) {
		enum attn_pattern pat = all_patterns[pi];
		struct attn_problem p = problem(1, 2, 1, 50, pattern_is_self(pat) ? 50 : 31, 8,
						pat, temp_fit);
		struct tensors t;

		tensors_make(&t, &p, SEED + pi, 1.0);
		run(hedgehog(), &p, &t);
		for (int h = 0; h < p.heads; h++)
			for (int i = 0; i < p.n; i++) {
				size_t at = problem_q_offset(&p, 0, h) + (size_t)i * p.d;
				const float *vs = t.v + problem_kv_offset(&p, 0, h);
				int keys = pat == ATTN_CS ? i + 1 : p.m;

				assert_true(inside_visible_values(t.o + at, vs, keys, p.d));
			}
		tensors_release(&t);
	}
}

/* The kernel works by chunks and the fit on 256 rows: no growth with the sequence. */
static void test_hedgehog_workspace_does_not_grow_with_the_sequence(void **state)
{
	static const enum attn_pattern pats[] = { ATTN_NS, ATTN_CS };
	const int lengths[2] = { 128, 2048 };

	(void)state;
	for (int pi = 0; pi < COUNT(pats); pi++) {
		size_t peak[2];

		for (int i = 0; i < 2; i++) {
			struct attn_problem p = problem(1, 2, 2, lengths[i], lengths[i], 32,
							pats[pi], temp_fit);
			struct tensors t;
			size_t before;

			tensors_make(&t, &p, SEED, 1.0);
			run(hedgehog(), &p, &t);	/* the plan: fitted once per process */
			before = memory_live_bytes();
			memory_reset_peak();
			run(hedgehog(), &p, &t);
			peak[i] = memory_peak_bytes() - before;
			tensors_release(&t);
		}
		assert_true(peak[0] > 0);
		assert_int_equal(peak[0], peak[1]);
	}
}

/*
 * The plan a forward keeps for the next call is the plan a new fit makes: the same
 * outputs bit for bit whether the call before fitted for this problem or for another
 * seed or mask, whose plan must not be taken for this one's.
 */
static void test_hedgehog_reuses_only_its_own_plan(void **state)
{
	struct attn_problem ns = problem(1, 2, 2, 65, 65, 16, ATTN_NS, temp_fit);
	struct attn_problem cs = problem(1, 2, 2, 65, 65, 16, ATTN_CS, temp_fit);
	struct attn_problem other = ns;
	struct tensors t;
	size_t bytes;
	float *first;

	(void)state;
	other.seed = ns.seed + 1;
	tensors_make(&t, &ns, SEED + 900, 1.0);
	bytes = sizeof(float) * t.nq;
	first = malloc(bytes);
	assert_non_null(first);
	run(hedgehog(), &other, &t);	/* the memo holds another seed's plan */
	run(hedgehog(), &ns, &t);	/* fitted */
	memcpy(first, t.o, bytes);
	run(hedgehog(), &ns, &t);	/* kept */
	assert_memory_equal(first, t.o, bytes);
	run(hedgehog(), &cs, &t);	/* the causal fit, another tau */
	assert_memory_not_equal(first, t.o, bytes);
	run(hedgehog(), &ns, &t);	/* fitted again, not cs's plan */
	assert_memory_equal(first, t.o, bytes);
	run(hedgehog(), &other, &t);
	assert_memory_not_equal(first, t.o, bytes);
	free(first);
	tensors_release(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hedgehog_matches_an_fp64_transcription_on_awkward_shapes),
		cmocka_unit_test(test_hedgehog_cs_prefix_form_equals_the_naive_form),
		cmocka_unit_test(test_hedgehog_noncausal_patterns_equal_the_naive_form),
		cmocka_unit_test(test_hedgehog_fitted_kl_is_at_most_the_kl_at_tau_one),
		cmocka_unit_test(test_hedgehog_fit_is_reproducible_for_a_seed),
		cmocka_unit_test(test_hedgehog_fits_each_query_head),
		cmocka_unit_test(test_hedgehog_fits_cs_causally_and_cc_as_ns),
		cmocka_unit_test(test_hedgehog_loss_is_the_catalogues_kl),
		cmocka_unit_test(test_hedgehog_gradient_matches_finite_differences),
		cmocka_unit_test(test_hedgehog_full_fit_is_adam_from_the_temp_fit),
		cmocka_unit_test(test_hedgehog_full_fit_lowers_the_kl_of_the_temp_fit),
		cmocka_unit_test(test_hedgehog_full_fit_matches_the_transcription),
		cmocka_unit_test(test_hedgehog_ignores_later_rows_in_cs_and_cc),
		cmocka_unit_test(test_hedgehog_ns_moves_when_later_rows_change),
		cmocka_unit_test(test_hedgehog_gives_gqa_as_mha_with_repeated_kv),
		cmocka_unit_test(test_hedgehog_decoding_matches_its_forward),
		cmocka_unit_test(test_hedgehog_decoding_refuses_non_causal_patterns),
		cmocka_unit_test(test_hedgehog_state_bytes_follow_the_formula),
		cmocka_unit_test(test_hedgehog_declares_its_patterns_and_fit),
		cmocka_unit_test(test_hedgehog_uses_the_temp_fit_without_params),
		cmocka_unit_test(test_hedgehog_outputs_are_convex_combinations_of_visible_values),
		cmocka_unit_test(test_hedgehog_workspace_does_not_grow_with_the_sequence),
		cmocka_unit_test(test_hedgehog_reuses_only_its_own_plan),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
