/*
 * test-performer.c - the performer variant (FAVOR+, VARIANTS.md section 16) against a
 * straightforward fp64 transcription of its equations, and the properties the catalogue
 * lists: unbiasedness against exact attention without eps and clamp, cancellation of the
 * stabilisers, orthonormal blocks of W, and the leak of CAB's causal mode.
 *
 * The transcription regenerates W from the plan generator (variants/random.h) exactly
 * as the variant documents its plan: that is the plan, not the code under test. It
 * orthogonalises by Householder reflections (the variant uses Gram-Schmidt), then fixes
 * signs so that R's diagonal is positive, which makes U unique.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "variant-test.h"

#include "random.h"

/* fp32 features and sums against fp64 ones: the spec's bound for a transcription. */
#define TRANSCRIPTION_TOLERANCE 1e-5
/* Rows the causal mask hides may move visible rows only by fp32 reordering (spec). */
#define CAUSAL_TOLERANCE 1e-5
/* Two fp32 paths of the same rows (chunked prefix sums against one full pass). */
#define PATH_TOLERANCE 1e-5
/* Gram-Schmidt or Householder in double on a Gaussian d <= 64: orthogonal to ~1e-14. */
#define ORTHO_TOLERANCE 1e-12

enum { P_FEATURES, P_EPS, P_CLAMP, P_CAB_CAUSAL, P_COUNT };

static const double defaults[P_COUNT] = { 16, 1e-4, 0.1, 0 };

static const enum attn_pattern all_patterns[] = { ATTN_NS, ATTN_CS, ATTN_NC, ATTN_CC };

static const struct variant_ops *performer(void)
{
	return variant_must_find("performer");
}

/* ---- the plan, regenerated ---- */

/*
 * U of G = U R with diag(R) > 0, by Householder reflections; g and u are d x d,
 * row-major (g[i d + j] = G[i][j]); g is overwritten by R.
 */
static void householder_q(double *g, double *u, int d)
{
	double *vs = calloc((size_t)d * d, sizeof(double));

	assert_non_null(vs);
	/* reflector k zeroes column k below the diagonal; its vector lives in vs[k][k..] */
	for (int k = 0; k + 1 < d; k++) {
		double norm = 0, vnorm = 0, alpha, *vk = vs + (size_t)k * d;

		for (int i = k; i < d; i++)
			norm += g[(size_t)i * d + k] * g[(size_t)i * d + k];
		norm = sqrt(norm);
		alpha = g[(size_t)k * d + k] > 0 ? -norm : norm;
		for (int i = k; i < d; i++)
			vk[i] = g[(size_t)i * d + k];
		vk[k] -= alpha;
		for (int i = k; i < d; i++)
			vnorm += vk[i] * vk[i];
		if (vnorm == 0)
			continue;
		vnorm = sqrt(vnorm);
		for (int i = k; i < d; i++)
			vk[i] /= vnorm;
		for (int j = 0; j < d; j++) {
			double s = 0;

			for (int i = k; i < d; i++)
				s += vk[i] * g[(size_t)i * d + j];
			for (int i = k; i < d; i++)
				g[(size_t)i * d + j] -= 2 * s * vk[i];
		}
	}
	/* U = H_0 H_1 ... H_{d-2} I, applied from the last reflector back */
	for (int i = 0; i < d; i++)
		for (int j = 0; j < d; j++)
			u[(size_t)i * d + j] = i == j;
	for (int k = d - 2; k >= 0; k--) {
		const double *vk = vs + (size_t)k * d;

		for (int j = 0; j < d; j++) {
			double s = 0;

			for (int i = k; i < d; i++)
				s += vk[i] * u[(size_t)i * d + j];
			for (int i = k; i < d; i++)
				u[(size_t)i * d + j] -= 2 * s * vk[i];
		}
	}
	/* G = (U D)(D R) with D = sign(diag R): make R's diagonal positive */
	for (int j = 0; j < d; j++)
		if (g[(size_t)j * d + j] < 0)
			for (int i = 0; i < d; i++)
				u[(size_t)i * d + j] = -u[(size_t)i * d + j];
	free(vs);
}

/*
 * W of query head h (f x d, the w_r themselves, without d^(-1/4)), as performer.c
 * documents its plan: per block of d rows a fresh d x d Gaussian filled column by
 * column, the rows of Uᵀ, the last block truncated; then per row the norm of d more
 * draws. If norms is not NULL it receives those norms.
 */
static void regenerate_w(uint64_t seed, int h, int f, int d, double *w, double *norms)
{
	struct plan_rng rng = plan_rng_make(seed, 1000ull * (uint64_t)h);
	double *g = malloc(sizeof(double) * d * d), *u = malloc(sizeof(double) * d * d);

	assert_non_null(g);
	assert_non_null(u);
	for (int b0 = 0; b0 < f; b0 += d) {
		for (int j = 0; j < d; j++)
			for (int i = 0; i < d; i++)
				g[(size_t)i * d + j] = plan_rng_normal(&rng);
		householder_q(g, u, d);
		for (int r = 0; r < d && b0 + r < f; r++)
			for (int c = 0; c < d; c++)
				w[(size_t)(b0 + r) * d + c] = u[(size_t)c * d + r];
	}
	for (int r = 0; r < f; r++) {
		double norm = 0;

		for (int c = 0; c < d; c++) {
			double x = plan_rng_normal(&rng);

			norm += x * x;
		}
		norm = sqrt(norm);
		if (norms)
			norms[r] = norm;
		for (int c = 0; c < d; c++)
			w[(size_t)r * d + c] *= norm;
	}
	free(g);
	free(u);
}

/* ---- the fp64 transcription ---- */

struct transcription {
	const double *params;	/* features, eps, clamp, cab_causal */
	bool unstabilised;	/* leave both max shifts out (they must cancel) */
	bool gaussian_w;	/* i.i.d. N(0, 1) W instead of the plan: a wrong W */
};

/* p_r(x) = w_r·x d^(-1/4) for every r; returns h(x) = |x|²/(2√d). */
static double projections(const double *w, const float *x, int f, int d, double *proj)
{
	double xs = pow((double)d, -0.25), sq = 0;

	for (int r = 0; r < f; r++) {
		proj[r] = 0;
		for (int c = 0; c < d; c++)
			proj[r] += w[(size_t)r * d + c] * (x[c] * xs);
	}
	for (int c = 0; c < d; c++)
		sq += (double)x[c] * x[c];
	return sq / (2 * sqrt((double)d));
}

/* φ(x) of one row with stabiliser `shift`; proj holds p(x) on entry. */
static void features(const double *proj, double h, double shift, int f, double eps,
		     double *phi)
{
	for (int r = 0; r < f; r++)
		phi[r] = (exp(proj[r] - h - shift) + eps) / sqrt((double)f);
}

/* The output of one query row against sums s (f x d) and z (f). */
static void output_row(const double *phiq, const double *s, const double *z, int f, int d,
		       double clamp, double *out)
{
	double den = 0;

	for (int r = 0; r < f; r++)
		den += phiq[r] * z[r];
	if (den < clamp)
		den = clamp;
	for (int c = 0; c < d; c++) {
		out[c] = 0;
		for (int r = 0; r < f; r++)
			out[c] += phiq[r] * s[(size_t)r * d + c];
		/* no clamp and every feature underflowed: the variant's 0/0 guard gives 0 */
		out[c] = den > 0 ? out[c] / den : 0;
	}
}

static void transcribe_slice(const struct attn_problem *p, const struct transcription *t,
			     const double *w, const float *q, const float *k, const float *v,
			     double *out)
{
	int f = (int)t->params[P_FEATURES], d = p->d;
	double eps = t->params[P_EPS], clamp = t->params[P_CLAMP];
	bool prefix = p->pattern == ATTN_CS && t->params[P_CAB_CAUSAL] == 0;
	double *proj = malloc(sizeof(double) * f), *phiq = malloc(sizeof(double) * f);
	double *phik = malloc(sizeof(double) * f), *s = calloc((size_t)f * d, sizeof(double));
	double *z = calloc(f, sizeof(double)), key_shift = 0;

	assert_true(proj && phiq && phik && s && z);
	/* one max over every key and feature of the slice; none with prefix sums */
	if (!prefix && !t->unstabilised) {
		key_shift = -INFINITY;
		for (int j = 0; j < p->m; j++) {
			projections(w, k + (size_t)j * d, f, d, proj);
			for (int r = 0; r < f; r++)
				key_shift = fmax(key_shift, proj[r]);
		}
	}
	for (int j = 0; j < p->m; j++) {
		double h = projections(w, k + (size_t)j * d, f, d, proj);

		features(proj, h, key_shift, f, eps, phik);
		for (int r = 0; r < f; r++) {
			z[r] += phik[r];
			for (int c = 0; c < d; c++)
				s[(size_t)r * d + c] += phik[r] * v[(size_t)j * d + c];
		}
		if (prefix) {
			/* row j has now seen keys 0..j */
			double hq = projections(w, q + (size_t)j * d, f, d, proj), max = -INFINITY;

			for (int r = 0; r < f; r++)
				max = fmax(max, proj[r]);
			features(proj, hq, t->unstabilised ? 0 : max, f, eps, phiq);
			output_row(phiq, s, z, f, d, clamp, out + (size_t)j * d);
		}
	}
	for (int i = 0; i < p->n && !prefix; i++) {
		double hq = projections(w, q + (size_t)i * d, f, d, proj), max = -INFINITY;

		for (int r = 0; r < f; r++)
			max = fmax(max, proj[r]);
		features(proj, hq, t->unstabilised ? 0 : max, f, eps, phiq);
		output_row(phiq, s, z, f, d, clamp, out + (size_t)i * d);
	}
	free(proj);
	free(phiq);
	free(phik);
	free(s);
	free(z);
}

static void transcribe(const struct attn_problem *p, const struct transcription *t,
		       const float *q, const float *k, const float *v, double *out)
{
	int f = (int)t->params[P_FEATURES];
	double *w = malloc(sizeof(double) * f * p->d);

	assert_non_null(w);
	for (int h = 0; h < p->heads; h++) {
		if (t->gaussian_w) {
			struct rng g = { p->seed + 1000 * (uint64_t)h };

			for (int x = 0; x < f * p->d; x++)
				w[x] = rng_normal(&g);
		} else {
			regenerate_w(p->seed, h, f, p->d, w, NULL);
		}
		for (int b = 0; b < p->batch; b++) {
			size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);

			transcribe_slice(p, t, w, q + qo, k + kvo, v + kvo, out + qo);
		}
	}
	free(w);
}

/* The variant on a fresh draw against the transcription: the relative error. */
static double error_vs_transcription(const struct attn_problem *p,
				     const struct transcription *t, uint64_t seed, double scale)
{
	struct tensors x;
	double *ref, err;

	tensors_make(&x, p, seed, scale);
	ref = malloc(sizeof(double) * x.nq);
	assert_non_null(ref);
	transcribe(p, t, x.q, x.k, x.v, ref);
	run(performer(), p, &x);
	err = error_vs_double(x.o, ref, x.nq);
	free(ref);
	tensors_release(&x);
	return err;
}

static void check_transcription(const struct attn_problem *p, const struct transcription *t,
				uint64_t seed)
{
	check_error(performer(), p, error_vs_transcription(p, t, seed, 1.0),
		    TRANSCRIPTION_TOLERANCE, " features=%g eps=%g clamp=%g cab_causal=%g",
		    t->params[P_FEATURES], t->params[P_EPS], t->params[P_CLAMP],
		    t->params[P_CAB_CAUSAL]);
}

/* ---- against the transcription ---- */

/*
 * Every size pair of the pattern (self n = m, cross n != m) and d, with every KV
 * grouping (all_kv) or one per shape in turn.
 */
static void check_grid(enum attn_pattern pat, const double *params, bool unstabilised,
		       bool all_kv, uint64_t *seed)
{
	struct transcription t = { .params = params, .unstabilised = unstabilised };
	struct shape_walk w = { 0 };
	struct attn_problem p;

	while (shape_walk_next(&w, pat, params, &p)) {
		if (!all_kv && w.kv != (w.a + w.b + w.di) % COUNT(kv_choices))
			continue;
		check_transcription(&p, &t, (*seed)++);
	}
}

static void test_performer_matches_an_fp64_transcription_on_awkward_shapes(void **state)
{
	uint64_t seed = SEED;

	(void)state;
	for (int pi = 0; pi < COUNT(all_patterns); pi++)
		check_grid(all_patterns[pi], defaults, false, true, &seed);
}

/*
 * One feature, m not a multiple of d (a truncated last block), several blocks, no eps
 * or clamp, a large eps with a binding clamp, and CAB's causal mode.
 */
static void test_performer_matches_the_transcription_for_other_parameters(void **state)
{
	static const double sets[][P_COUNT] = {
		{ 1, 1e-4, 0.1, 0 },
		{ 37, 0, 0, 0 },
		{ 200, 1e-3, 1, 0 },
		{ 64, 0.5, 10, 0 },
		{ 16, 1e-4, 0.1, 1 },
		{ 37, 0, 0, 1 },
	};
	static const int shapes[][2] = { { 17, 17 }, { 130, 130 }, { 63, 17 }, { 17, 257 } };
	uint64_t seed = SEED + 100;

	(void)state;
	for (int si = 0; si < COUNT(sets); si++)
		for (int pi = 0; pi < COUNT(all_patterns); pi++)
			for (int sh = 0; sh < COUNT(shapes); sh++)
				for (int di = 0; di < COUNT(dims); di++) {
					enum attn_pattern pat = all_patterns[pi];
					int n = shapes[sh][0], m = shapes[sh][1];
					int kv = kv_choices[(sh + di) % COUNT(kv_choices)];
					struct transcription t = { .params = sets[si] };
					struct attn_problem p = problem(2, 4, kv, n, m, dims[di],
									pat, sets[si]);

					if (pattern_is_self(pat) != (n == m))
						continue;
					check_transcription(&p, &t, seed++);
				}
}

/*
 * The comparison above sees W: with i.i.d. Gaussian rows (no QR, no norm scaling) in
 * place of the plan, the transcription no longer matches. So the match shows that the
 * variant uses the regenerated W, orthonormal blocks (tested below) included.
 */
static void test_performer_differs_from_a_transcription_with_another_w(void **state)
{
	struct transcription t = { .params = defaults, .gaussian_w = true };

	(void)state;
	for (int pi = 0; pi < COUNT(all_patterns); pi++) {
		enum attn_pattern pat = all_patterns[pi];
		struct attn_problem p = problem(1, 2, 2, 63, pattern_is_self(pat) ? 63 : 40, 12,
						pat, defaults);

		assert_true(error_vs_transcription(&p, &t, SEED + pi, 1.0) > 1e-2);
	}
}

/* ---- unbiasedness and the stabilisers ---- */

/* Rows of x (rows x d) drawn in random directions with norms uniform in (0, 2). */
static void fill_bounded_norms(struct rng *g, float *x, size_t rows, int d)
{
	for (size_t i = 0; i < rows; i++) {
		float *xi = x + i * d;
		double norm = 0, target = 2 * rng_uniform(g);

		for (int c = 0; c < d; c++) {
			xi[c] = (float)rng_normal(g);
			norm += (double)xi[c] * xi[c];
		}
		for (int c = 0; c < d; c++)
			xi[c] = (float)(xi[c] * target / sqrt(norm));
	}
}

/*
 * Without eps and clamp, φ(q)·φ(k) is an unbiased estimate of exp(q·k/√d); 4096
 * orthogonal features bring each row within a few percent of exact attention.
 */
static void test_performer_is_within_a_few_percent_of_vanilla_unbiased(void **state)
{
	static const double unbiased[P_COUNT] = { 4096, 0, 0, 0 };
	/* "a few %" (catalogue); the estimate's spread with m = 4096 is about 1% here */
	const double tolerance = 0.03;

	(void)state;
	for (int pi = 0; pi < COUNT(all_patterns); pi++) {
		enum attn_pattern pat = all_patterns[pi];
		struct attn_problem p = problem(1, 2, 1, 64, pattern_is_self(pat) ? 64 : 40, 16,
						pat, unbiased);
		struct rng g = { SEED + 77 + pi };
		struct tensors t;
		double *ref, err;

		tensors_make(&t, &p, SEED + pi, 1.0);
		fill_bounded_norms(&g, t.q, t.nq / p.d, p.d);
		fill_bounded_norms(&g, t.k, t.nkv / p.d, p.d);
		ref = malloc(sizeof(double) * t.nq);
		assert_non_null(ref);
		reference_attention(&p, t.q, t.k, t.v, ref);
		run(performer(), &p, &t);
		err = error_vs_double(t.o, ref, t.nq);
		if (!(err <= tolerance))
			print_error("performer %s: %g from exact attention\n", pattern_name(pat),
				    err);
		assert_true(err <= tolerance);
		free(ref);
		tensors_release(&t);
	}
}

/*
 * With eps = 0 and no clamp both stabilisers are factors common to a row's numerator
 * and denominator: the variant (with them) equals the transcription without them.
 */
static void test_performer_stabilisers_cancel_without_eps_or_clamp(void **state)
{
	static const double bare[P_COUNT] = { 16, 0, 0, 0 };
	uint64_t seed = SEED + 200;

	(void)state;
	for (int pi = 0; pi < COUNT(all_patterns); pi++)
		check_grid(all_patterns[pi], bare, true, false, &seed);
}

/*
 * Largest |cs row t - last row of ns over rows 0..t|, relative to the cs row. The cs
 * row uses key stabiliser 0 and chunked prefix sums, the ns one the max over keys 0..t
 * and one pass: the same rows only if the stabilisers cancel.
 */
static double cs_vs_ns_prefix(const double *params, int d, int t)
{
	const int n = 130;
	struct attn_problem cs = problem(1, 2, 1, n, n, d, ATTN_CS, params);
	struct attn_problem ns = problem(1, 2, 1, t + 1, t + 1, d, ATTN_NS, params);
	struct tensors a, b;
	double diff = 0, scale = 0;

	tensors_make(&a, &cs, SEED + t, 1.0);
	tensors_make(&b, &ns, SEED, 1.0);
	for (int h = 0; h < cs.heads; h++) {
		memcpy(b.q + problem_q_offset(&ns, 0, h), a.q + problem_q_offset(&cs, 0, h),
		       sizeof(float) * (t + 1) * d);
	}
	memcpy(b.k, a.k, sizeof(float) * (t + 1) * d);
	memcpy(b.v, a.v, sizeof(float) * (t + 1) * d);
	run(performer(), &cs, &a);
	run(performer(), &ns, &b);
	for (int h = 0; h < cs.heads; h++) {
		const float *x = a.o + problem_q_offset(&cs, 0, h) + (size_t)t * d;
		const float *y = b.o + problem_q_offset(&ns, 0, h) + (size_t)t * d;

		for (int c = 0; c < d; c++) {
			diff = fmax(diff, fabs((double)x[c] - y[c]));
			scale = fmax(scale, fabs((double)x[c]));
		}
	}
	tensors_release(&a);
	tensors_release(&b);
	return diff / scale;
}

static void test_performer_cs_rows_equal_ns_over_their_prefix_unbiased(void **state)
{
	static const double bare[P_COUNT] = { 16, 0, 0, 0 };
	static const int rows[] = { 0, 16, 63, 64, 100, 129 };

	(void)state;
	for (int di = 0; di < COUNT(dims); di++)
		for (int i = 0; i < COUNT(rows); i++) {
			double diff = cs_vs_ns_prefix(bare, dims[di], rows[i]);

			if (!(diff <= PATH_TOLERANCE))
				print_error("d=%d row %d: %g\n", dims[di], rows[i], diff);
			assert_true(diff <= PATH_TOLERANCE);
		}
}

/* With eps and the clamp the stabilisers no longer cancel: the check above can fail. */
static void test_performer_cs_rows_differ_from_ns_over_their_prefix_clamped(void **state)
{
	static const int rows[] = { 16, 100 };

	(void)state;
	for (int i = 0; i < COUNT(rows); i++)
		assert_true(cs_vs_ns_prefix(defaults, 64, rows[i]) > 1e-3);
}

/* ---- the plan ---- */

/* Each block of d rows of W, every row divided by its norm, is orthonormal. */
static void test_performer_blocks_of_w_have_orthonormal_rows(void **state)
{
	static const int features_choices[] = { 1, 16, 37, 200 };
	static const int plan_dims[] = { 1, 8, 12, 64 };

	(void)state;
	for (int fi = 0; fi < COUNT(features_choices); fi++)
		for (int di = 0; di < COUNT(plan_dims); di++)
			for (int h = 0; h < 3; h++) {
				int f = features_choices[fi], d = plan_dims[di];
				double *w = malloc(sizeof(double) * f * d);
				double *norms = malloc(sizeof(double) * f);

				assert_true(w && norms);
				regenerate_w(SEED, h, f, d, w, norms);
				for (int r = 0; r < f; r++) {
					double len = 0;

					for (int c = 0; c < d; c++)
						len += w[(size_t)r * d + c] * w[(size_t)r * d + c];
					/* the row's length is the norm that scaled it */
					assert_float_equal(sqrt(len), norms[r],
							   ORTHO_TOLERANCE * norms[r]);
					for (int s = r - r % d; s <= r; s++) {
						double g = 0;

						for (int c = 0; c < d; c++)
							g += w[(size_t)r * d + c] *
							     w[(size_t)s * d + c];
						g /= norms[r] * norms[s];
						assert_float_equal(g, s == r ? 1 : 0,
								   ORTHO_TOLERANCE);
					}
				}
				free(w);
				free(norms);
			}
}

/* Rows of different blocks are drawn apart: across blocks they are not orthogonal. */
static void test_performer_blocks_of_w_are_drawn_apart(void **state)
{
	const int f = 32, d = 8;
	double w[32 * 8], worst = 0;

	(void)state;
	regenerate_w(SEED, 0, f, d, w, NULL);
	for (int r = 0; r < d; r++)
		for (int s = d; s < f; s++) {
			double g = 0, lr = 0, ls = 0;

			for (int c = 0; c < d; c++) {
				g += w[r * d + c] * w[s * d + c];
				lr += w[r * d + c] * w[r * d + c];
				ls += w[s * d + c] * w[s * d + c];
			}
			worst = fmax(worst, fabs(g) / sqrt(lr * ls));
		}
	assert_true(worst > 0.1);
}

/* W belongs to the query head: two query heads on one KV head with equal queries differ. */
static void test_performer_draws_w_per_query_head(void **state)
{
	struct attn_problem p = problem(1, 2, 1, 17, 17, 8, ATTN_NS, defaults);
	struct tensors t;

	(void)state;
	tensors_make(&t, &p, SEED, 1.0);
	memcpy(t.q + problem_q_offset(&p, 0, 1), t.q, sizeof(float) * 17 * 8);
	run(performer(), &p, &t);
	assert_memory_not_equal(t.o, t.o + problem_q_offset(&p, 0, 1), sizeof(float) * 17 * 8);
	tensors_release(&t);
}

/* The plan follows the seed: another seed, another W, another output. */
static void test_performer_draws_w_from_the_seed(void **state)
{
	struct attn_problem p = problem(1, 1, 1, 17, 17, 8, ATTN_NS, defaults);
	struct tensors a, b;

	(void)state;
	tensors_make(&a, &p, SEED, 1.0);
	tensors_copy(&b, &a);
	run(performer(), &p, &a);
	p.seed++;
	run(performer(), &p, &b);
	assert_memory_not_equal(a.o, b.o, sizeof(float) * a.nq);
	tensors_release(&a);
	tensors_release(&b);
}

/* ---- causality ---- */

/*
 * The registry's perturbation check: cs changes Q, K, V rows after t, cc only Q rows.
 * Returns the largest relative move of rows <= t over the cuts.
 */
static double causal_leak(enum attn_pattern pattern, const double *params)
{
	static const int cuts[] = { 0, 6, 20, 41 };
	struct attn_problem p = problem(2, 4, 2, 63, pattern == ATTN_CS ? 63 : 40, 16,
					pattern, params);
	struct tensors a;
	double worst = 0;

	tensors_make(&a, &p, SEED + pattern, 1.0);
	run(performer(), &p, &a);
	for (int ci = 0; ci < COUNT(cuts); ci++) {
		struct rng g = { SEED + 7 * (uint64_t)cuts[ci] };
		struct tensors b;

		tensors_copy(&b, &a);
		perturb_rows_after(&g, b.q, (size_t)p.batch * p.heads, p.n, p.d, cuts[ci]);
		if (pattern == ATTN_CS) {
			perturb_rows_after(&g, b.k, (size_t)p.batch * p.kv_heads, p.m, p.d,
					   cuts[ci]);
			perturb_rows_after(&g, b.v, (size_t)p.batch * p.kv_heads, p.m, p.d,
					   cuts[ci]);
		}
		run(performer(), &p, &b);
		worst = fmax(worst, change_up_to(&p, a.o, b.o, cuts[ci]));
		tensors_release(&b);
	}
	tensors_release(&a);
	return worst;
}

static void test_performer_passes_the_perturbation_check_in_its_own_modes(void **state)
{
	static const double bare[P_COUNT] = { 37, 0, 0, 0 };

	(void)state;
	assert_true(causal_leak(ATTN_CS, defaults) <= CAUSAL_TOLERANCE);
	assert_true(causal_leak(ATTN_CC, defaults) <= CAUSAL_TOLERANCE);
	assert_true(causal_leak(ATTN_CS, bare) <= CAUSAL_TOLERANCE);
	assert_true(causal_leak(ATTN_CC, bare) <= CAUSAL_TOLERANCE);
}

/* CAB's cs runs the non-causal path with the global key max: the check must catch it. */
static void test_performer_cab_causal_fails_the_perturbation_check(void **state)
{
	static const double cab[P_COUNT] = { 16, 1e-4, 0.1, 1 };
	static const double cab_bare[P_COUNT] = { 16, 0, 0, 1 };

	(void)state;
	assert_true(causal_leak(ATTN_CS, cab) > 100 * CAUSAL_TOLERANCE);
	assert_true(causal_leak(ATTN_CS, cab_bare) > 100 * CAUSAL_TOLERANCE);
	/* cc is the non-causal form in both modes, and legal */
	assert_true(causal_leak(ATTN_CC, cab) <= CAUSAL_TOLERANCE);
}

/* ---- decoding, state, parameters ---- */

static void test_performer_decoding_matches_its_forward_for_other_parameters(void **state)
{
	static const double sets[][P_COUNT] = {
		{ 1, 1e-4, 0.1, 0 },
		{ 37, 0, 0, 0 },
		{ 200, 1e-3, 1, 0 },
	};
	static const int decode_sizes[] = { 1, 17, 130 };
	uint64_t seed = SEED + 300;

	(void)state;
	for (int si = 0; si < COUNT(sets); si++)
		for (int ni = 0; ni < COUNT(decode_sizes); ni++)
			for (int di = 0; di < COUNT(dims); di++) {
				int n = decode_sizes[ni];
				int kv = kv_choices[(ni + di) % COUNT(kv_choices)];
				struct attn_problem p = problem(2, 4, kv, n, n, dims[di], ATTN_CS,
								sets[si]);

				check_decode(performer(), &p, seed++);
			}
}

static void test_performer_decoding_refuses_non_causal_patterns_and_cab_mode(void **state)
{
	static const double cab[P_COUNT] = { 16, 1e-4, 0.1, 1 };
	size_t live = memory_live_bytes();

	(void)state;
	for (int pi = 0; pi < COUNT(all_patterns); pi++) {
		enum attn_pattern pat = all_patterns[pi];
		struct attn_problem p = problem(1, 2, 2, 16, pattern_is_self(pat) ? 16 : 20, 8,
						pat, defaults);
		void *dec = &dec;

		if (pat == ATTN_CS)
			p.params = cab;
		assert_int_equal(performer()->decode_init(&p, &dec), -ENOTSUP);
		assert_null(dec);
	}
	assert_int_equal(memory_live_bytes(), live);
}

/* S (m x d) and z (m) in float32 per (batch, query head), whatever the pattern. */
static void test_performer_state_bytes_follow_the_formula(void **state)
{
	static const double many[P_COUNT] = { 300, 1e-4, 0.1, 0 };
	struct attn_problem p = problem(2, 8, 2, 300, 300, 64, ATTN_CS, NULL);

	(void)state;
	assert_true(performer()->state_bytes(&p) == 2.0 * 8 * (16 * 64 + 16) * 4);
	p = problem(3, 4, 1, 17, 33, 12, ATTN_NC, many);
	assert_true(performer()->state_bytes(&p) == 3.0 * 4 * (300 * 12 + 300) * 4);
	p.pattern = ATTN_CC;
	assert_true(performer()->state_bytes(&p) == 3.0 * 4 * (300 * 12 + 300) * 4);
}

/* All four patterns run (cs is the harness's prefix form); bad parameters do not. */
static void test_performer_supports_every_pattern_and_rejects_bad_parameters(void **state)
{
	static const double bad[][P_COUNT] = {
		{ 0, 1e-4, 0.1, 0 },
		{ 8193, 1e-4, 0.1, 0 },
		{ 16.5, 1e-4, 0.1, 0 },
		{ 16, -1e-4, 0.1, 0 },
		{ 16, 1.5, 0.1, 0 },
		{ 16, 1e-4, -0.1, 0 },
		{ 16, 1e-4, 11, 0 },
		{ 16, 1e-4, 0.1, 0.5 },
		{ 16, 1e-4, 0.1, 2 },
	};
	const struct variant_ops *v = performer();

	(void)state;
	assert_int_equal(v->patterns, PATTERNS_ALL);
	assert_int_equal(v->extensions, PATTERN_BIT(ATTN_CS));
	assert_int_equal(v->n_params, P_COUNT);
	assert_int_equal(variant_param_index(v, "features"), P_FEATURES);
	assert_int_equal(variant_param_index(v, "eps"), P_EPS);
	assert_int_equal(variant_param_index(v, "clamp"), P_CLAMP);
	assert_int_equal(variant_param_index(v, "cab_causal"), P_CAB_CAUSAL);
	for (int i = 0; i < P_COUNT; i++)
		assert_true(v->params[i].def == defaults[i]);
	for (int pi = 0; pi < COUNT(all_patterns); pi++) {
		enum attn_pattern pat = all_patterns[pi];
		struct attn_problem p = problem(1, 2, 1, 16, pattern_is_self(pat) ? 16 : 5, 8,
						pat, NULL);

		assert_int_equal(variant_check_problem(v, &p), 0);
		for (int b = 0; b < COUNT(bad); b++) {
			p.params = bad[b];
			assert_int_equal(variant_check_problem(v, &p), -EINVAL);
		}
	}
}

/* NULL params are the declared defaults. */
static void test_performer_uses_the_defaults_without_params(void **state)
{
	struct attn_problem p = problem(2, 4, 2, 40, 40, 12, ATTN_CS, NULL);
	struct tensors a, b;

	(void)state;
	tensors_make(&a, &p, SEED, 1.0);
	tensors_copy(&b, &a);
	run(performer(), &p, &a);
	p.params = defaults;
	run(performer(), &p, &b);
	assert_memory_equal(a.o, b.o, sizeof(float) * a.nq);
	tensors_release(&a);
	tensors_release(&b);
}

/* The kernel works by chunks: the workspace depends on m and d, not on the sequence. */
static void test_performer_workspace_does_not_grow_with_the_sequence(void **state)
{
	static const enum attn_pattern pats[] = { ATTN_NS, ATTN_CS };
	const int lengths[2] = { 128, 2048 };

	(void)state;
	for (int pi = 0; pi < COUNT(pats); pi++) {
		size_t peak[2];

		for (int i = 0; i < 2; i++) {
			struct attn_problem p = problem(1, 2, 2, lengths[i], lengths[i], 32,
							pats[pi], defaults);
			struct tensors t;
			size_t before;

			tensors_make(&t, &p, SEED, 1.0);
			before = memory_live_bytes();
			memory_reset_peak();
			run(performer(), &p, &t);
			peak[i] = memory_peak_bytes() - before;
			tensors_release(&t);
		}
		assert_true(peak[0] > 0);
		assert_int_equal(peak[0], peak[1]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_performer_matches_an_fp64_transcription_on_awkward_shapes),
		cmocka_unit_test(test_performer_matches_the_transcription_for_other_parameters),
		cmocka_unit_test(test_performer_differs_from_a_transcription_with_another_w),
		cmocka_unit_test(test_performer_is_within_a_few_percent_of_vanilla_unbiased),
		cmocka_unit_test(test_performer_stabilisers_cancel_without_eps_or_clamp),
		cmocka_unit_test(test_performer_cs_rows_equal_ns_over_their_prefix_unbiased),
		cmocka_unit_test(test_performer_cs_rows_differ_from_ns_over_their_prefix_clamped),
		cmocka_unit_test(test_performer_blocks_of_w_have_orthonormal_rows),
		cmocka_unit_test(test_performer_blocks_of_w_are_drawn_apart),
		cmocka_unit_test(test_performer_draws_w_per_query_head),
		cmocka_unit_test(test_performer_draws_w_from_the_seed),
		cmocka_unit_test(test_performer_passes_the_perturbation_check_in_its_own_modes),
		cmocka_unit_test(test_performer_cab_causal_fails_the_perturbation_check),
		cmocka_unit_test(test_performer_decoding_matches_its_forward_for_other_parameters),
		cmocka_unit_test(test_performer_decoding_refuses_non_causal_patterns_and_cab_mode),
		cmocka_unit_test(test_performer_state_bytes_follow_the_formula),
		cmocka_unit_test(test_performer_supports_every_pattern_and_rejects_bad_parameters),
		cmocka_unit_test(test_performer_uses_the_defaults_without_params),
		cmocka_unit_test(test_performer_workspace_does_not_grow_with_the_sequence),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
