/*
 * test-nystrom.c - the Nyström variant against a double-precision transcription of its
 * equations (CAB's segmentation, the three softmaxes, the iterative pseudo-inverse, the
 * products), and the catalogue's properties: exact attention for N <= C, a pseudo-inverse
 * after six steps, vanilla for segment-constant inputs, CAB's scaling and batch-wide pinv
 * start, its state, and the problems it refuses.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "variant-test.h"

/* fp32 kernel against its own equations in fp64: the spec's bound for a transcription. */
#define TRANSCRIPTION_TOLERANCE 1e-5

/* The settings the transcription follows. */
struct nys_opts {
	int c;			/* landmarks */
	int iters;		/* pinv steps */
	bool cab_scale;		/* τ = 1/d instead of 1/√d */
	bool global_max;	/* Z₀ scaled by the largest column sum over all slices */
};

static const struct nys_opts defaults = { 16, 6, false, false };

static const struct variant_ops *nystrom(void)
{
	return variant_must_find("nystrom");
}

/* ---- the transcription ---- */

/*
 * CAB's segmentation written out: s = n / count rows each if count divides n, else the
 * first (s + 1) count − n segments have s rows and the rest s + 1, laid end to end.
 */
static void ref_segment(int n, int count, int seg, int *lo, int *hi)
{
	int s = n / count, shorter = n % count ? (s + 1) * count - n : count, at = 0;

	for (int g = 0; g < seg; g++)
		at += g < shorter ? s : s + 1;
	*lo = at;
	*hi = at + (seg < shorter ? s : s + 1);
}

/* out (count x d) = segment means of x (n x d). */
static void ref_means(const double *x, int n, int d, int count, double *out)
{
	int out_end = 0;

	for (int seg = 0; seg < count; seg++) {
		int lo, hi;

		ref_segment(n, count, seg, &lo, &hi);
		assert_true(hi > lo);
		for (int c = 0; c < d; c++) {
			double sum = 0;

			for (int i = lo; i < hi; i++)
				sum += x[(size_t)i * d + c];
			out[(size_t)seg * d + c] = sum / (hi - lo);
		}
		/* the segments tile the rows */
		assert_int_equal(lo, seg ? out_end : 0);
		out_end = hi;
	}
	assert_int_equal(out_end, n);
}

/* out (r x c) = row softmax of tau · a bᵀ, a (r x d), b (c x d). */
static void ref_softmax_scores(const double *a, const double *b, int r, int c, int d,
			       double tau, double *out)
{
	for (int i = 0; i < r; i++) {
		double *row = out + (size_t)i * c, max = -INFINITY, sum = 0;

		for (int j = 0; j < c; j++) {
			double s = 0;

			for (int x = 0; x < d; x++)
				s += a[(size_t)i * d + x] * b[(size_t)j * d + x];
			row[j] = tau * s;
			max = fmax(max, row[j]);
		}
		for (int j = 0; j < c; j++) {
			row[j] = exp(row[j] - max);
			sum += row[j];
		}
		for (int j = 0; j < c; j++)
			row[j] /= sum;
	}
}

/* out (r x c) = a (r x inner) b (inner x c). */
static void ref_matmul(const double *a, const double *b, int r, int inner, int c, double *out)
{
	for (int i = 0; i < r; i++)
		for (int j = 0; j < c; j++) {
			double s = 0;

			for (int x = 0; x < inner; x++)
				s += a[(size_t)i * inner + x] * b[(size_t)x * c + j];
			out[(size_t)i * c + j] = s;
		}
}

static double ref_max_column_sum(const double *a, int c)
{
	double best = 0;

	for (int j = 0; j < c; j++) {
		double s = 0;

		for (int i = 0; i < c; i++)
			s += a[(size_t)i * c + j];
		best = fmax(best, s);
	}
	return best;
}

/* a (c x c) = value I − a. */
static void ref_identity_minus(double *a, int c, double value)
{
	for (int i = 0; i < c; i++)
		for (int j = 0; j < c; j++)
			a[(size_t)i * c + j] = (i == j ? value : 0) - a[(size_t)i * c + j];
}

/* z = f2ᵀ / scale, then `iters` times Z ← ¼ Z (13I − F₂Z (15I − F₂Z (7I − F₂Z))). */
static void ref_pinv(const double *f2, int c, int iters, double scale, double *z)
{
	size_t cc = (size_t)c * c;
	double *kz = malloc(sizeof(double) * cc), *t = malloc(sizeof(double) * cc);
	double *u = malloc(sizeof(double) * cc);

	assert_true(kz && t && u);
	for (int i = 0; i < c; i++)
		for (int j = 0; j < c; j++)
			z[(size_t)j * c + i] = f2[(size_t)i * c + j] / scale;
	for (int it = 0; it < iters; it++) {
		ref_matmul(f2, z, c, c, c, kz);
		memcpy(t, kz, sizeof(double) * cc);
		ref_identity_minus(t, c, 7);
		ref_matmul(kz, t, c, c, c, u);
		ref_identity_minus(u, c, 15);
		ref_matmul(kz, u, c, c, c, t);
		ref_identity_minus(t, c, 13);
		ref_matmul(z, t, c, c, c, u);
		for (size_t x = 0; x < cc; x++)
			z[x] = 0.25 * u[x];
	}
	free(kz);
	free(t);
	free(u);
}

/* One slice's Q, K, V in double. */
struct ref_slice {
	int n, m, d;
	double *q, *k, *v;
};

static void ref_slice_load(struct ref_slice *s, const struct attn_problem *p, int b, int h,
			   const float *q, const float *k, const float *v)
{
	size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);

	s->n = p->n;
	s->m = p->m;
	s->d = p->d;
	s->q = malloc(sizeof(double) * p->n * p->d);
	s->k = malloc(sizeof(double) * p->m * p->d);
	s->v = malloc(sizeof(double) * p->m * p->d);
	assert_true(s->q && s->k && s->v);
	for (size_t x = 0; x < (size_t)p->n * p->d; x++)
		s->q[x] = q[qo + x];
	for (size_t x = 0; x < (size_t)p->m * p->d; x++) {
		s->k[x] = k[kvo + x];
		s->v[x] = v[kvo + x];
	}
}

static void ref_slice_release(struct ref_slice *s)
{
	free(s->q);
	free(s->k);
	free(s->v);
}

static double ref_tau(const struct nys_opts *o, int d)
{
	return o->cab_scale ? 1.0 / d : 1.0 / sqrt((double)d);
}

/* Q̃, K̃ (c x d) and F₂ (c x c) of a slice. */
static void ref_landmarks(const struct nys_opts *o, const struct ref_slice *s, double *qt,
			  double *kt, double *f2)
{
	ref_means(s->q, s->n, s->d, o->c, qt);
	ref_means(s->k, s->m, s->d, o->c, kt);
	ref_softmax_scores(qt, kt, o->c, o->c, s->d, ref_tau(o, s->d), f2);
}

/* out (n x d) of one slice by the Nyström formula with Z₀ scaled by `scale`. */
static void ref_nystrom_slice(const struct nys_opts *o, const struct ref_slice *s,
			      double scale, double *out)
{
	int c = o->c, n = s->n, m = s->m, d = s->d;
	double tau = ref_tau(o, d);
	double *qt = malloc(sizeof(double) * c * d), *kt = malloc(sizeof(double) * c * d);
	double *f1 = malloc(sizeof(double) * n * c), *f2 = malloc(sizeof(double) * c * c);
	double *f3 = malloc(sizeof(double) * c * m), *z = malloc(sizeof(double) * c * c);
	double *w = malloc(sizeof(double) * c * d), *x = malloc(sizeof(double) * c * d);

	assert_true(qt && kt && f1 && f2 && f3 && z && w && x);
	ref_landmarks(o, s, qt, kt, f2);
	ref_softmax_scores(s->q, kt, n, c, d, tau, f1);
	ref_softmax_scores(qt, s->k, c, m, d, tau, f3);
	ref_pinv(f2, c, o->iters, scale > 0 ? scale : ref_max_column_sum(f2, c), z);
	ref_matmul(f3, s->v, c, m, d, w);
	ref_matmul(z, w, c, c, d, x);
	ref_matmul(f1, x, n, c, d, out);
	free(qt);
	free(kt);
	free(f1);
	free(f2);
	free(f3);
	free(z);
	free(w);
	free(x);
}

/* out (n x d) = softmax(tau QKᵀ) V of one slice. */
static void ref_exact_slice(const struct ref_slice *s, double tau, double *out)
{
	double *a = malloc(sizeof(double) * s->n * s->m);

	assert_non_null(a);
	ref_softmax_scores(s->q, s->k, s->n, s->m, s->d, tau, a);
	ref_matmul(a, s->v, s->n, s->m, s->d, out);
	free(a);
}

/* The whole problem in double, laid out like O. */
static void nystrom_reference(const struct attn_problem *p, const struct nys_opts *o,
			      const float *q, const float *k, const float *v, double *out)
{
	double global = 0;

	if (o->global_max && !(p->pattern == ATTN_NS && p->n <= o->c)) {
		double *qt = malloc(sizeof(double) * o->c * p->d);
		double *kt = malloc(sizeof(double) * o->c * p->d);
		double *f2 = malloc(sizeof(double) * o->c * o->c);

		assert_true(qt && kt && f2);
		for (int b = 0; b < p->batch; b++)
			for (int h = 0; h < p->heads; h++) {
				struct ref_slice s;

				ref_slice_load(&s, p, b, h, q, k, v);
				ref_landmarks(o, &s, qt, kt, f2);
				global = fmax(global, ref_max_column_sum(f2, o->c));
				ref_slice_release(&s);
			}
		free(qt);
		free(kt);
		free(f2);
	}
	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			double *o_slice = out + problem_q_offset(p, b, h);
			struct ref_slice s;

			ref_slice_load(&s, p, b, h, q, k, v);
			if (p->pattern == ATTN_NS && p->n <= o->c)
				ref_exact_slice(&s, ref_tau(o, p->d), o_slice);
			else
				ref_nystrom_slice(o, &s, global, o_slice);
			ref_slice_release(&s);
		}
}

/* ---- helpers ---- */

/* The variant against the transcription on a fresh N(0, 1) draw. */
static void check_transcription(const struct attn_problem *p, const struct nys_opts *o,
				uint64_t seed)
{
	struct tensors t;
	double *ref = reference_make(&t, p, seed);

	nystrom_reference(p, o, t.q, t.k, t.v, ref);
	check_output(nystrom(), p, &t, ref, TRANSCRIPTION_TOLERANCE, " C=%d iters=%d cab=%d",
		     o->c, o->iters, o->cab_scale);
}

/* Every awkward shape of both patterns, with params for o. */
static void check_every_shape(const struct nys_opts *o, uint64_t seed)
{
	double params[3] = { o->c, o->iters, o->cab_scale };
	struct shape_walk w = { 0 };
	struct attn_problem p;

	while (landmark_walk_next(&w, params, &p)) {
		if (p.pattern == ATTN_NC && variant_check_problem(nystrom(), &p) == -ENOTSUP)
			continue;
		check_transcription(&p, o, seed++);
	}
}

/*
 * Segment-structured inputs (MHA only): in every slice, the rows of segment c of Q and
 * of segment c of K are one centre, drawn N(0, spread²) and shared by the two, plus
 * N(0, noise²) of their own. Landmark c of Q̃ is then nearest to landmark c of K̃, so
 * F₂ is diagonally dominant and well conditioned. V is left as drawn.
 */
static void fill_segmented(struct rng *g, const struct attn_problem *p, struct tensors *t,
			   int c, double spread, double noise)
{
	float *centre = malloc(sizeof(float) * c * p->d);

	assert_non_null(centre);
	assert_int_equal(p->kv_heads, p->heads);
	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			float *qs = t->q + problem_q_offset(p, b, h);
			float *ks = t->k + problem_kv_offset(p, b, h);

			fill_normal(g, centre, (size_t)c * p->d, spread);
			for (int seg = 0; seg < c; seg++) {
				const float *u = centre + (size_t)seg * p->d;
				int lo, hi;

				ref_segment(p->n, c, seg, &lo, &hi);
				for (size_t x = (size_t)lo * p->d; x < (size_t)hi * p->d; x++)
					qs[x] = u[x % p->d] + (float)(noise * rng_normal(g));
				ref_segment(p->m, c, seg, &lo, &hi);
				for (size_t x = (size_t)lo * p->d; x < (size_t)hi * p->d; x++)
					ks[x] = u[x % p->d] + (float)(noise * rng_normal(g));
			}
		}
	free(centre);
}

/* ---- tests ---- */

static void test_nystrom_matches_an_fp64_transcription(void **state)
{
	(void)state;
	check_every_shape(&defaults, SEED);
}

/* Other landmark counts and step counts move the segment edges and the pinv. */
static void test_nystrom_matches_the_transcription_for_other_settings(void **state)
{
	static const struct nys_opts others[] = {
		{ 1, 6, false, false },
		{ 7, 6, false, false },
		{ 16, 0, false, false },
		{ 16, 2, false, false },
		{ 32, 6, false, false },
	};

	(void)state;
	for (int i = 0; i < COUNT(others); i++)
		check_every_shape(&others[i], SEED + 100 * (i + 1));
}

/* CAB's scaling and batch-wide Z₀ maximum. */
static void test_nystrom_cab_exact_matches_a_transcription_with_a_global_max(void **state)
{
	const struct nys_opts cab = { 16, 6, true, true };

	(void)state;
	check_every_shape(&cab, SEED + 1000);
}

/* Self attention with N <= C never approximates: it is vanilla, the fp64 oracle. */
static void test_nystrom_with_at_most_c_rows_equals_vanilla(void **state)
{
	static const int short_sizes[] = { 1, 5, 16 };
	uint64_t seed = SEED + 2000;

	(void)state;
	for (int si = 0; si < COUNT(short_sizes); si++)
		for (int di = 0; di < COUNT(dims); di++) {
			int n = short_sizes[si];
			struct attn_problem p = problem(2, 4, 2, n, n, dims[di], ATTN_NS, NULL);
			struct tensors t;
			double *ref, err;

			tensors_make(&t, &p, seed++, 1.0);
			ref = malloc(sizeof(double) * t.nq);
			assert_non_null(ref);
			reference_attention(&p, t.q, t.k, t.v, ref);
			run(nystrom(), &p, &t);
			err = error_vs_double(t.o, ref, t.nq);
			assert_true(err <= TRANSCRIPTION_TOLERANCE);
			free(ref);
			tensors_release(&t);
		}
	/* as many landmarks as rows, at a longer length */
	{
		double params[3] = { 257, 6, 0 };
		struct attn_problem p = problem(1, 2, 1, 257, 257, 64, ATTN_NS, params);
		struct tensors t;
		double *ref;

		tensors_make(&t, &p, seed, 1.0);
		ref = malloc(sizeof(double) * t.nq);
		assert_non_null(ref);
		reference_attention(&p, t.q, t.k, t.v, ref);
		run(nystrom(), &p, &t);
		assert_true(error_vs_double(t.o, ref, t.nq) <= TRANSCRIPTION_TOLERANCE);
		free(ref);
		tensors_release(&t);
	}
}

/*
 * CAB divides q and k each by √d, so its fallback is softmax(QKᵀ/d)V: the oracle (which
 * scales by 1/√d) on Q/√d. Far from vanilla itself at this scale.
 */
static void test_nystrom_cab_fallback_scores_by_one_over_d(void **state)
{
	double params[3] = { 16, 6, 1 };
	struct attn_problem p = problem(2, 4, 2, 13, 13, 64, ATTN_NS, params);
	struct tensors t;
	double *ref, *plain;
	float *qs;

	(void)state;
	tensors_make(&t, &p, SEED + 3000, 2.0);
	ref = malloc(sizeof(double) * t.nq);
	plain = malloc(sizeof(double) * t.nq);
	qs = malloc(sizeof(float) * t.nq);
	assert_true(ref && plain && qs);
	for (size_t x = 0; x < t.nq; x++)
		qs[x] = t.q[x] / 8.0f;	/* √64, exact in float */
	reference_attention(&p, qs, t.k, t.v, ref);
	reference_attention(&p, t.q, t.k, t.v, plain);
	run(nystrom(), &p, &t);
	assert_true(error_vs_double(t.o, ref, t.nq) <= TRANSCRIPTION_TOLERANCE);
	assert_true(error_vs_double(t.o, plain, t.nq) > 0.1);
	free(ref);
	free(plain);
	free(qs);
	tensors_release(&t);
}

/* ‖F₂ZF₂ − F₂‖_F / ‖F₂‖_F of the transcription's F₂ after `iters` steps. */
static double pinv_residual(const double *f2, int c, int iters)
{
	size_t cc = (size_t)c * c;
	double *z = malloc(sizeof(double) * cc), *fz = malloc(sizeof(double) * cc);
	double *fzf = malloc(sizeof(double) * cc), diff = 0, norm = 0;

	assert_true(z && fz && fzf);
	ref_pinv(f2, c, iters, ref_max_column_sum(f2, c), z);
	ref_matmul(f2, z, c, c, c, fz);
	ref_matmul(fz, f2, c, c, c, fzf);
	for (size_t x = 0; x < cc; x++) {
		diff += (fzf[x] - f2[x]) * (fzf[x] - f2[x]);
		norm += f2[x] * f2[x];
	}
	free(z);
	free(fz);
	free(fzf);
	return sqrt(diff / norm);
}

/*
 * Each step maps every singular value x of F₂Z (in [0, 1] from Z₀) to
 * ¼x(13 − 15x + 7x² − x³) >= x, so the residual never grows. On segment-structured
 * inputs (well-conditioned F₂) six steps reach a pseudo-inverse; on unstructured draws
 * (long segments, near-uniform F₂ whose small singular values start near 0) it still
 * falls but is not small yet: the tolerance applies to the first kind only.
 */
static void test_nystrom_pinv_iteration_reaches_a_pseudo_inverse(void **state)
{
	static const int shapes[][2] = { { 257, 257 }, { 63, 63 }, { 63, 257 }, { 257, 17 } };
	/* six steps take the structured F₂ here below 1e-10; allow for other draws */
	const double converged = 1e-6;
	/* double rounding once the residual is at its floor */
	const double floor = 1e-13;

	(void)state;
	for (int structured = 0; structured <= 1; structured++)
		for (int si = 0; si < COUNT(shapes); si++) {
			struct attn_problem p = problem(2, 4, 4, shapes[si][0], shapes[si][1], 64,
							ATTN_NC, NULL);
			struct rng g = { SEED + 4000 + si };
			struct tensors t;

			tensors_make(&t, &p, SEED + 4000 + si, 1.0);
			if (structured)
				fill_segmented(&g, &p, &t, 16, 0.7, 1.0);
			for (int sl = 0; sl < p.batch * p.heads; sl++) {
				double qt[16 * 64], kt[16 * 64], f2[16 * 16], r = 0;
				double last = INFINITY;
				struct ref_slice s;

				ref_slice_load(&s, &p, sl / p.heads, sl % p.heads, t.q, t.k, t.v);
				ref_landmarks(&defaults, &s, qt, kt, f2);
				for (int it = 0; it <= 6; it++) {
					r = pinv_residual(f2, 16, it);
					assert_true(r <= last || r <= floor);
					last = r;
				}
				if (structured)
					assert_true(r <= converged);
				ref_slice_release(&s);
			}
			tensors_release(&t);
		}
}

/*
 * On segment-structured inputs the variant's output settles as the pseudo-inverse
 * converges: each step moves it less than the step before, down to fp32 rounding, and
 * from the default six steps on it no longer moves.
 */
static void test_nystrom_more_iterations_move_the_output_less(void **state)
{
	static const int shapes[][2] = { { 257, 257 }, { 63, 63 }, { 63, 257 } };
	/* relative moves below this are fp32 rounding of the products (about 1e-7) */
	const double rounding = 1e-6;

	(void)state;
	for (int si = 0; si < COUNT(shapes); si++) {
		enum attn_pattern pat = shapes[si][0] == shapes[si][1] ? ATTN_NS : ATTN_NC;
		struct attn_problem p = problem(2, 4, 4, shapes[si][0], shapes[si][1], 64, pat,
						NULL);
		struct rng g = { SEED + 5000 + si };
		struct tensors t;
		double last = INFINITY;
		float *prev;

		tensors_make(&t, &p, SEED + 5000 + si, 1.0);
		fill_segmented(&g, &p, &t, 16, 0.7, 1.0);
		prev = malloc(sizeof(float) * t.nq);
		assert_non_null(prev);
		for (int it = 0; it <= 12; it++) {
			double params[3] = { 16, it, 0 }, move;

			p.params = params;
			run(nystrom(), &p, &t);
			if (it > 0) {
				move = error_vs_float(t.o, prev, t.nq);
				assert_true(move <= last || move <= rounding);
				if (it > 6)
					assert_true(move <= rounding);
				last = move;
			}
			memcpy(prev, t.o, sizeof(float) * t.nq);
		}
		free(prev);
		tensors_release(&t);
	}
}

/*
 * With Q and K constant within each segment the softmax matrix is E_Q D⁻¹ G E_Kᵀ for
 * G = exp(τ Q̃ K̃ᵀ), indicator matrices E and row sums D over all keys, and
 * F₁ F₂⁻¹ F₃ equals it exactly even for unequal segments; Nyström is vanilla up to the
 * pseudo-inverse's convergence and fp32 rounding through F₂'s conditioning.
 */
static void test_nystrom_with_segment_constant_inputs_is_nearly_vanilla(void **state)
{
	static const int shapes[][2] = { { 257, 257 }, { 63, 63 }, { 17, 17 }, { 63, 257 },
					 { 257, 17 } };
	/* F₂'s condition number (here below 10) times fp32 rounding, with margin */
	const double tolerance = 1e-5;

	(void)state;
	for (int si = 0; si < COUNT(shapes); si++)
		for (int di = 0; di < 2; di++) {
			int n = shapes[si][0], m = shapes[si][1], d = di ? 32 : 64;
			enum attn_pattern pat = n == m ? ATTN_NS : ATTN_NC;
			struct attn_problem p = problem(2, 4, 4, n, m, d, pat, NULL);
			struct rng g = { SEED + 6000 + si };
			struct tensors t;
			double *ref, err;

			tensors_make(&t, &p, SEED + 6000 + si, 1.0);
			fill_segmented(&g, &p, &t, 16, 0.7 * sqrt(64.0 / d), 0.0);
			ref = malloc(sizeof(double) * t.nq);
			assert_non_null(ref);
			reference_attention(&p, t.q, t.k, t.v, ref);
			run(nystrom(), &p, &t);
			err = error_vs_double(t.o, ref, t.nq);
			assert_true(err <= tolerance);
			free(ref);
			tensors_release(&t);
		}
}

/*
 * cab_exact scales every slice's Z₀ by the largest column sum over the batch: a slice
 * whose F₂ sends every landmark to one column (column sum C) moves all the others,
 * which the default per-slice scale leaves bit-identical.
 */
static void test_nystrom_cab_exact_couples_the_slices_through_the_max(void **state)
{
	struct attn_problem p = problem(2, 4, 4, 63, 63, 16, ATTN_NS, NULL);
	size_t qo = problem_q_offset(&p, 1, 2), kvo = problem_kv_offset(&p, 1, 2);
	size_t slice = (size_t)p.n * p.d;

	(void)state;
	for (int cab = 0; cab <= 1; cab++) {
		double params[3] = { 16, 6, cab };
		struct tensors a, b;

		p.params = params;
		tensors_make(&a, &p, SEED + 7000, 1.0);
		tensors_copy(&b, &a);
		/* slice (1, 2): every query and the first segment's keys along (1, ..., 1) */
		for (size_t x = 0; x < slice; x++) {
			b.q[qo + x] = 3;
			b.k[kvo + x] = x < (size_t)3 * p.d ? 3 : 0;
		}
		run(nystrom(), &p, &a);
		run(nystrom(), &p, &b);
		if (cab)
			assert_true(error_vs_float(b.o, a.o, qo) > 1e-3);
		else
			assert_memory_equal(a.o, b.o, sizeof(float) * qo);
		tensors_release(&a);
		tensors_release(&b);
	}
}

/* Per query head K̃ and pinv(F₂)F₃V, C x d floats each; the exact path keeps K and V. */
static void test_nystrom_state_bytes_follow_the_formula(void **state)
{
	double params[3] = { 32, 6, 0 };
	struct attn_problem p = problem(2, 8, 2, 257, 257, 64, ATTN_NS, NULL);

	(void)state;
	assert_non_null(nystrom()->state_bytes);
	assert_true(nystrom()->state_bytes(&p) == 2.0 * 2 * 8 * 16 * 64 * 4);
	p.params = params;
	assert_true(nystrom()->state_bytes(&p) == 2.0 * 2 * 8 * 32 * 64 * 4);
	p = problem(2, 8, 2, 63, 257, 12, ATTN_NC, NULL);
	assert_true(nystrom()->state_bytes(&p) == 2.0 * 2 * 8 * 16 * 12 * 4);
	/* N <= C: exact attention over the 10 keys and values of each KV head */
	p = problem(2, 8, 2, 10, 10, 64, ATTN_NS, NULL);
	assert_true(nystrom()->state_bytes(&p) == 2.0 * 2 * 2 * 10 * 64 * 4);
}

/* cs and cc are not offered; nc needs C rows of queries and of keys. */
static void test_nystrom_refuses_causal_and_short_cross_problems(void **state)
{
	double params[3] = { 8, 6, 0 };

	(void)state;
	assert_int_equal(nystrom()->extensions, PATTERN_BIT(ATTN_NC));
	check_landmark_refusals(nystrom(), params);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nystrom_matches_an_fp64_transcription),
		cmocka_unit_test(test_nystrom_matches_the_transcription_for_other_settings),
		cmocka_unit_test(test_nystrom_cab_exact_matches_a_transcription_with_a_global_max),
		cmocka_unit_test(test_nystrom_with_at_most_c_rows_equals_vanilla),
		cmocka_unit_test(test_nystrom_cab_fallback_scores_by_one_over_d),
		cmocka_unit_test(test_nystrom_pinv_iteration_reaches_a_pseudo_inverse),
		cmocka_unit_test(test_nystrom_more_iterations_move_the_output_less),
		cmocka_unit_test(test_nystrom_with_segment_constant_inputs_is_nearly_vanilla),
		cmocka_unit_test(test_nystrom_cab_exact_couples_the_slices_through_the_max),
		cmocka_unit_test(test_nystrom_state_bytes_follow_the_formula),
		cmocka_unit_test(test_nystrom_refuses_causal_and_short_cross_problems),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
