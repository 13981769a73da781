/*
 * test-softplus.c - softplus attention (LSSA / LSSAR) against a plain fp64 transcription
 * of the catalogue's equations (VARIANTS.md section 22) on awkward shapes in all four
 * patterns, and its catalogue properties: rows sum to 1, the scaled form of the
 * re-weighting equals the direct one, a large power returns the value of the argmax,
 * rows with at most three keys take no offset, reweight = 0 is LSSA; causality, GQA, its
 * workspace, its KV-cache state and FLOPs by formula.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "common.h"
#include "variant-test.h"

/*
 * fp32 kernel against the fp64 transcription: the spec's bound. The scores are cosines
 * times c_i (up to ~25 on these shapes), so their fp32 rounding is ~1e-6 absolute and the
 * weights follow it; LSSAR's power p multiplies the relative rounding of each weight by
 * about p n a / (n a − o). Observed at most 4e-7 (LSSA) and 1.5e-6 (LSSAR, p up to 200).
 */
#define TOLERANCE 1e-5
/*
 * Scores of magnitude ~170 (scale 10) carry seven times the fp32 rounding of the grid's,
 * e^(score) turns it into relative error of the weights (1.2e-5 observed) and p = 15
 * multiplies that (5.4e-5 observed).
 */
#define VANISHING_TOLERANCE 3e-4
/* The scaled and direct forms in double differ by rounding only. */
#define FORMS_TOLERANCE 1e-12
/* Causality by perturbation (VARIANTS.md section 0). */
#define CAUSAL_TOLERANCE 1e-5

/* Parameter order of the variant (section 32). */
enum { SCALE, OFFSET, POWER, REWEIGHT, NPARAMS };

static const struct variant_ops *softplus(void)
{
	return variant_must_find("softplus");
}

/* The operator's settings, as the transcription reads them. */
struct spec {
	double scale, offset, power;
	bool reweight;
	bool direct;		/* r = max(0, n a − o)^p unscaled, instead of the scaled form */
	bool offset_everywhere;	/* o = offset on every row, ignoring the n_i <= 3 rule */
};

static struct spec spec_of(const double *params)
{
	struct spec s = {
		.scale		= params ? params[SCALE] : 1,
		.offset		= params ? params[OFFSET] : 1,
		.power		= params ? params[POWER] : 15,
		.reweight	= params ? params[REWEIGHT] != 0 : true,
	};

	return s;
}

/* q / max(|q|_2, 1e-12) in double. */
static void normalised(const float *x, int d, double *out)
{
	double ss = 0, div;

	for (int c = 0; c < d; c++)
		ss += (double)x[c] * x[c];
	div = fmax(sqrt(ss), 1e-12);
	for (int c = 0; c < d; c++)
		out[c] = x[c] / div;
}

static double softplus_d(double x)
{
	return fmax(x, 0) + log1p(exp(-fabs(x)));
}

/* The rows of x (rows x d) normalised into a new array of doubles. */
static double *normalised_rows(const float *x, int rows, int d)
{
	double *out = malloc(sizeof(double) * (rows > 0 ? rows : 1) * d);

	assert_non_null(out);
	for (int r = 0; r < rows; r++)
		normalised(x + (size_t)r * d, d, out + (size_t)r * d);
	return out;
}

/*
 * One row by the catalogue, in double: the normalised query qh against the normalised
 * keys kh (0..n-1) and the values v (d each). c = scale ln d ln n;
 * a_j = softplus(c q̂·k̂_j) / Σ; LSSAR: o = 0 when n <= 3 else offset,
 * r_j = ((n a_j − o) / (max n a − o))^p where n a_j > o, else 0 (or the direct
 * max(0, n a_j − o)^p), a'_j = r_j / Σ r, or a_j when Σ r = 0. Writes the weights to w
 * (n), the output to out (d), and returns the runner-up's scaled base (the second
 * largest (n a_j − o) / (max n a − o), 0 if none; 1 when a is kept), which bounds how far
 * a large power is from one-hot.
 */
static double row_transcription(const struct spec *s, const double *qh, const double *kh,
				const float *v, int n, int d, double *w, double *out)
{
	double c = s->scale * log((double)d) * log((double)n), sum = 0, top = -INFINITY;
	double o = n <= 3 && !s->offset_everywhere ? 0 : s->offset, rsum = 0, second = 0;
	int best = 0;

	for (int j = 0; j < n; j++) {
		double x = 0;

		for (int t = 0; t < d; t++)
			x += qh[t] * kh[(size_t)j * d + t];
		w[j] = softplus_d(c * x);
		sum += w[j];
	}
	for (int j = 0; j < n; j++) {
		w[j] /= sum;
		if (n * w[j] > top) {
			top = n * w[j];
			best = j;
		}
	}
	if (s->reweight) {
		double *r = malloc(sizeof(double) * n);

		assert_non_null(r);
		for (int j = 0; j < n; j++) {
			double excess = n * w[j] - o;

			if (s->direct)
				r[j] = pow(fmax(0, excess), s->power);
			else
				r[j] = excess > 0 ? pow(excess / (top - o), s->power) : 0;
			rsum += r[j];
			if (j != best && excess > 0)
				second = fmax(second, excess / (top - o));
		}
		if (rsum > 0)
			for (int j = 0; j < n; j++)
				w[j] = r[j] / rsum;
		else if (n > 1)
			second = 1;	/* a is kept: no winner */
		free(r);
	}
	for (int t = 0; t < d; t++) {
		out[t] = 0;
		for (int j = 0; j < n; j++)
			out[t] += w[j] * v[(size_t)j * d + t];
	}
	return second;
}

/*
 * The whole problem, row by row: n_i = i + 1 keys in cs, all m otherwise. runner_up
 * (one per slice and row, may be NULL) receives row_transcription()'s return.
 */
static void transcription(const struct attn_problem *p, const struct spec *s, const float *q,
			  const float *k, const float *v, double *out, double *runner_up)
{
	double *w = malloc(sizeof(double) * p->m);

	assert_non_null(w);
	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);
			double *qh = normalised_rows(q + qo, p->n, p->d);
			double *kh = normalised_rows(k + kvo, p->m, p->d);

			for (int i = 0; i < p->n; i++) {
				int keys = p->pattern == ATTN_CS ? i + 1 : p->m;
				double x = row_transcription(s, qh + (size_t)i * p->d, kh, v + kvo,
							     keys, p->d, w,
							     out + qo + (size_t)i * p->d);

				if (runner_up)
					runner_up[((size_t)b * p->heads + h) * p->n + i] = x;
			}
			free(qh);
			free(kh);
		}
	free(w);
}

/* Runs softplus on a fresh N(0, 1) draw and holds it to the transcription. */
static void check_transcription(const struct attn_problem *p, const double *params,
				uint64_t seed)
{
	struct spec s = spec_of(params);
	struct tensors t;
	double *ref = reference_make(&t, p, seed);

	transcription(p, &s, t.q, t.k, t.v, ref, NULL);
	check_output(softplus(), p, &t, ref, TOLERANCE, " scale=%g o=%g p=%g rw=%g",
		     s.scale, s.offset, s.power, (double)s.reweight);
}

/*
 * Every shape of the grid in every pattern (odd n, n != m across, d 8, 12 and 64, MHA,
 * GQA and MQA): the defaults (LSSAR, p = 15, o = 1) and LSSA; p = 3 with o = 0.5 and a
 * doubled scale on the GQA shapes only, to keep the test short.
 */
static void test_softplus_matches_an_fp64_transcription_on_awkward_shapes(void **state)
{
	static const double settings[][NPARAMS] = {
		{ 1, 1, 15, 1 },
		{ 1, 1, 15, 0 },
		{ 2, 0.5, 3, 1 },
	};
	uint64_t seed = SEED;
	int checked = 0;

	(void)state;
	for (int si = 0; si < COUNT(settings); si++)
		for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
			struct shape_walk w = { 0 };
			struct attn_problem p;

			while (shape_walk_next(&w, pat, si ? settings[si] : NULL, &p)) {
				if (si == 2 && p.kv_heads != 2)
					continue;
				check_transcription(&p, si ? settings[si] : settings[0], seed++);
				checked++;
			}
		}
	/* self: 4 sizes, cross: 12 pairs; 3 dims x 3 kv; two patterns of each */
	assert_int_equal(checked, (2 * 9 + 3) * 2 * (4 + 12));
}

/* Square and cross shapes with few rows, many keys, and more rows than keys. */
static const int prop_shapes[][2] = { { 17, 17 }, { 130, 130 }, { 63, 257 }, { 257, 17 },
				      { 1, 63 } };

/*
 * Rows sum to 1: with V = 1 everywhere each output is 1; with one-hot value rows
 * (v_j = e_(j mod d)) the outputs of a row are its weights binned, non-negative and
 * summing to 1. In every pattern, for LSSA, LSSAR, a large power and a large offset
 * (which leaves some rows with Σ r = 0, to keep a).
 */
static void test_softplus_rows_sum_to_one(void **state)
{
	static const double settings[][NPARAMS] = {
		{ 1, 1, 15, 1 }, { 1, 1, 15, 0 }, { 1, 1, 200, 1 }, { 1, 50, 15, 1 },
	};

	(void)state;
	for (int si = 0; si < COUNT(settings); si++)
		for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++)
			for (int sh = 0; sh < COUNT(prop_shapes); sh++) {
				int n = prop_shapes[sh][0], m = prop_shapes[sh][1], d = 12;
				struct attn_problem p;
				struct tensors t;

				if (pattern_is_self(pat) != (n == m))
					continue;
				p = problem(2, 4, 2, n, m, d, pat, settings[si]);
				tensors_make(&t, &p, SEED + 100 + sh, 1.0);
				for (size_t x = 0; x < t.nkv; x++)
					t.v[x] = 1;
				run(softplus(), &p, &t);
				for (size_t x = 0; x < t.nq; x++)
					assert_float_equal(t.o[x], 1, 1e-5);
				for (size_t x = 0; x < t.nkv; x++)
					t.v[x] = (x / d) % d == x % d;
				run(softplus(), &p, &t);
				for (size_t r = 0; r < t.nq / d; r++) {
					double sum = 0;

					for (int c = 0; c < d; c++) {
						assert_true(t.o[r * d + c] >= -1e-7);
						sum += t.o[r * d + c];
					}
					assert_float_equal(sum, 1, 1e-5);
				}
				tensors_release(&t);
			}
}

/*
 * The scaled form of r equals the direct max(0, n a − o)^p / Σ in fp64 on short rows
 * (where (n a)^p is far from overflowing a double), for p = 3, 15 and 200, and the kernel
 * (which uses the scaled form in float32) matches the direct one.
 */
static void test_softplus_scaled_reweighting_equals_the_direct_form(void **state)
{
	static const double powers[] = { 3, 15, 200 };
	static const int shapes[][3] = { { 17, 17, ATTN_CS }, { 63, 63, ATTN_NS },
					 { 17, 40, ATTN_NC }, { 30, 9, ATTN_CC } };

	(void)state;
	for (int pi = 0; pi < COUNT(powers); pi++)
		for (int si = 0; si < COUNT(shapes); si++) {
			double params[NPARAMS] = { 1, 1, powers[pi], 1 };
			struct attn_problem p = problem(2, 4, 2, shapes[si][0], shapes[si][1], 8,
							shapes[si][2], params);
			struct spec scaled = spec_of(params), direct = scaled;
			struct tensors t;
			double *ref = reference_make(&t, &p, SEED + 200 + si);
			double *ref2 = malloc(sizeof(double) * t.nq);

			assert_non_null(ref2);
			direct.direct = true;
			transcription(&p, &scaled, t.q, t.k, t.v, ref, NULL);
			transcription(&p, &direct, t.q, t.k, t.v, ref2, NULL);
			for (size_t x = 0; x < t.nq; x++)
				assert_float_equal(ref[x], ref2[x], FORMS_TOLERANCE);
			free(ref);	/* check_output() frees ref2 */
			check_output(softplus(), &p, &t, ref2,
				     TOLERANCE, " direct p=%g",
				     powers[pi]);
		}
}

/*
 * One query against 1024 keys: key 5 is the query itself (cosine 1), every other faces
 * away from it (cosine −1 plus noise), so n a of key 5 is close to n = 1024 and the
 * direct (n a)^15 would overflow float32 (past about 370). The scaled form keeps the
 * kernel finite and equal to the transcription: the value of key 5.
 */
static void test_softplus_sharp_long_rows_do_not_overflow(void **state)
{
	const int m = 1024, d = 16;
	struct attn_problem p = problem(1, 1, 1, 1, m, d, ATTN_NC, NULL);
	struct spec s = spec_of(NULL), lssa = s;
	struct tensors t;
	struct rng g = { SEED + 300 };
	double *ref = reference_make(&t, &p, SEED + 301), *w = malloc(sizeof(double) * m);
	double *qh, *kh;

	(void)state;
	assert_non_null(w);
	for (int j = 0; j < m; j++)
		for (int c = 0; c < d; c++)
			t.k[(size_t)j * d + c] = j == 5 ? t.q[c] :
						 (float)(-t.q[c] + 0.05 * rng_normal(&g));
	qh = normalised_rows(t.q, 1, d);
	kh = normalised_rows(t.k, m, d);
	/* n a of key 5, from LSSA's weights: (n a − 1)^15 is past float32's range */
	lssa.reweight = false;
	row_transcription(&lssa, qh, kh, t.v, m, d, w, ref);
	assert_true(pow(m * w[5] - 1, 15) > 1e39);
	row_transcription(&s, qh, kh, t.v, m, d, w, ref);
	assert_true(w[5] > 1 - 1e-9);
	free(qh);
	free(kh);
	check_output(softplus(), &p, &t, ref, TOLERANCE, " needle");
	free(w);
}

/*
 * p → ∞ with o = 1 gives the argmax: at p = 200, each row whose runner-up has a scaled
 * base <= 0.9 (so every other key weighs below 0.9^200 = 7e-10 of the best) outputs the
 * value row of its highest-cosine key, found here from the cosines alone.
 */
static void test_softplus_with_a_large_power_returns_the_value_of_the_argmax(void **state)
{
	double params[NPARAMS] = { 1, 1, 200, 1 };
	long looked = 0, rows = 0;

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++)
		for (int sh = 0; sh < COUNT(prop_shapes); sh++) {
			int n = prop_shapes[sh][0], m = prop_shapes[sh][1];
			int d = dims[sh % COUNT(dims)];
			struct attn_problem p;
			struct spec s = spec_of(params);
			struct tensors t;
			double *ref, *runner_up, *qh = malloc(sizeof(double) * d);
			double *kh = malloc(sizeof(double) * d);

			if (pattern_is_self(pat) != (n == m)) {
				free(qh);
				free(kh);
				continue;
			}
			p = problem(2, 4, 1, n, m, d, pat, params);
			ref = reference_make(&t, &p, SEED + 400 + sh);
			runner_up = malloc(sizeof(double) * 8 * n);
			assert_non_null(runner_up);
			transcription(&p, &s, t.q, t.k, t.v, ref, runner_up);
			run(softplus(), &p, &t);
			for (int b = 0; b < 2; b++)
				for (int h = 0; h < 4; h++) {
					const float *qs = t.q + problem_q_offset(&p, b, h);
					const float *ks = t.k + problem_kv_offset(&p, b, h);
					const float *vs = t.v + problem_kv_offset(&p, b, h);
					const float *os = t.o + problem_q_offset(&p, b, h);

					for (int i = 0; i < n; i++) {
						int keys = pat == ATTN_CS ? i + 1 : m, best = 0;
						double top = -INFINITY, scale = 0;

						rows++;
						if (runner_up[((size_t)b * 4 + h) * n + i] > 0.9)
							continue;
						looked++;
						normalised(qs + (size_t)i * d, d, qh);
						for (int j = 0; j < keys; j++) {
							double x = 0;

							normalised(ks + (size_t)j * d, d, kh);
							for (int c = 0; c < d; c++)
								x += qh[c] * kh[c];
							if (x > top) {
								top = x;
								best = j;
							}
						}
						for (int c = 0; c < d; c++)
							scale = fmax(scale, fabs(vs[(size_t)best * d + c]));
						for (int c = 0; c < d; c++)
							assert_float_equal(os[(size_t)i * d + c],
									   vs[(size_t)best * d + c],
									   1e-5 * scale);
					}
				}
			free(runner_up);
			free(ref);
			free(qh);
			free(kh);
			tensors_release(&t);
		}
	/* most rows of random data have a clear winner at p = 200 */
	if (!(looked >= rows / 2))
		print_error("%ld of %ld rows had a clear argmax\n", looked, rows);
	assert_true(looked >= rows / 2);
}

/*
 * Rows with n_i <= 3 keys take o = 0: cs rows 0..2 equal the transcription with o = 0
 * and differ from one that applies o = 1 to them; cross patterns with m <= 3 keys take
 * o = 0 on every row, m = 4 takes the offset.
 */
static void test_softplus_rows_with_at_most_three_keys_use_no_offset(void **state)
{
	const int d = 8;

	(void)state;
	/* cs: rows 0..2 */
	{
		struct attn_problem p = problem(2, 4, 2, 9, 9, d, ATTN_CS, NULL);
		struct spec rule = spec_of(NULL), everywhere = rule;
		struct tensors t;
		double *ref = reference_make(&t, &p, SEED + 500);
		double *forced = malloc(sizeof(double) * t.nq), moved = 0;

		assert_non_null(forced);
		everywhere.offset_everywhere = true;
		transcription(&p, &rule, t.q, t.k, t.v, ref, NULL);
		transcription(&p, &everywhere, t.q, t.k, t.v, forced, NULL);
		run(softplus(), &p, &t);
		for (int s = 0; s < 8; s++)
			for (int i = 0; i < 9; i++)
				for (int c = 0; c < d; c++) {
					size_t at = ((size_t)s * 9 + i) * d + c;

					assert_float_equal(t.o[at], ref[at],
							   TOLERANCE * (1 + fabs(ref[at])));
					if (i >= 3)
						assert_true(ref[at] == forced[at]);
					else
						moved = fmax(moved, fabs(ref[at] - forced[at]));
				}
		/* the rule matters: o = 1 on rows 1 and 2 would give other outputs */
		assert_true(moved > 1e-2);
		free(forced);
		free(ref);
		tensors_release(&t);
	}
	/* cross: m = 1, 2, 3 keys take o = 0; m = 4 takes o */
	for (int pat = ATTN_NC; pat <= ATTN_CC; pat++)
		for (int m = 1; m <= 4; m++) {
			struct attn_problem p = problem(2, 4, 1, 11, m, d, pat, NULL);
			struct spec rule = spec_of(NULL), zero = rule;
			struct tensors t;
			double *ref = reference_make(&t, &p, SEED + 510 + m);
			double *ref0 = malloc(sizeof(double) * t.nq);

			assert_non_null(ref0);
			zero.offset = 0;
			transcription(&p, &rule, t.q, t.k, t.v, ref, NULL);
			transcription(&p, &zero, t.q, t.k, t.v, ref0, NULL);
			if (m <= 3)
				assert_memory_equal(ref, ref0, sizeof(double) * t.nq);
			else
				assert_memory_not_equal(ref, ref0, sizeof(double) * t.nq);
			free(ref0);
			check_output(softplus(), &p, &t, ref, TOLERANCE, " m=%d", m);
		}
}

/*
 * reweight = 0 is LSSA: the transcription without re-weighting, whatever the offset and
 * power; with scale = 0 too, every score is 0, every weight ln 2 / (n ln 2), and each row
 * is the plain mean of its visible value rows.
 */
static void test_softplus_without_reweighting_is_lssa(void **state)
{
	static const double settings[][NPARAMS] = {
		{ 1, 1, 15, 0 }, { 1, 7, 200, 0 }, { 3, 0, 1, 0 },
	};

	(void)state;
	for (int si = 0; si < COUNT(settings); si++)
		for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
			int n = 70, m = pattern_is_self(pat) ? 70 : 33;
			struct attn_problem p = problem(2, 4, 2, n, m, 64, pat, settings[si]);

			check_transcription(&p, settings[si], SEED + 600 + si);
		}
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		double params[NPARAMS] = { 0, 1, 15, 0 };
		int n = 45, m = pattern_is_self(pat) ? 45 : 20, d = 12;
		struct attn_problem p = problem(1, 2, 1, n, m, d, pat, params);
		struct tensors t;

		tensors_make(&t, &p, SEED + 650, 1.0);
		run(softplus(), &p, &t);
		for (int h = 0; h < 2; h++)
			for (int i = 0; i < n; i++) {
				int keys = pat == ATTN_CS ? i + 1 : m;

				for (int c = 0; c < d; c++) {
					double mean = 0;

					for (int j = 0; j < keys; j++)
						mean += t.v[(size_t)j * d + c];
					mean /= keys;
					assert_float_equal(t.o[((size_t)h * n + i) * d + c], mean,
							   1e-5 * (1 + fabs(mean)));
				}
			}
		tensors_release(&t);
	}
}

/*
 * Scale 10 with every key facing away from its query (cosines in [−1, −0.5]): scores of
 * −80 to −170, whose softplus values all underflow float32. The kernel's rows stay
 * finite and equal the transcription (double holds them).
 */
static void test_softplus_rows_of_vanishing_softplus_stay_exact(void **state)
{
	double params[NPARAMS] = { 10, 1, 15, 1 };

	(void)state;
	for (int rw = 0; rw <= 1; rw++) {
		struct attn_problem p = problem(1, 2, 1, 9, 63, 64, ATTN_NC, params);
		struct spec s;
		struct tensors t;
		double *ref;

		params[REWEIGHT] = rw;
		s = spec_of(params);
		ref = reference_make(&t, &p, SEED + 700);
		/* every key = −(its query's head 0 row 0) plus a little noise: cosines near −1 */
		for (int j = 0; j < p.m; j++)
			for (int c = 0; c < p.d; c++)
				t.k[(size_t)j * p.d + c] = -t.q[c] + 0.3f * t.k[(size_t)j * p.d + c];
		for (int s2 = 0; s2 < 2; s2++)
			for (int i = 0; i < p.n; i++)
				for (int c = 0; c < p.d; c++)
					t.q[((size_t)s2 * p.n + i) * p.d + c] =
						t.q[c] + 0.1f * t.q[((size_t)s2 * p.n + i) * p.d + c];
		transcription(&p, &s, t.q, t.k, t.v, ref, NULL);
		check_output(softplus(), &p, &t, ref, VANISHING_TOLERANCE, " vanishing rw=%d",
			     rw);
	}
}

/*
 * cs: changing Q, K and V rows after t leaves rows <= t within the spec's bound; cc:
 * changing Q rows after t does. For LSSA and LSSAR, cuts inside and between the 64-row
 * tiles; and the perturbation did reach the later rows.
 */
static void test_softplus_rows_ignore_later_positions(void **state)
{
	static const int cuts[] = { 0, 2, 5, 63, 64, 100 };
	static const double settings[][NPARAMS] = { { 1, 1, 15, 1 }, { 1, 1, 15, 0 } };

	(void)state;
	for (int pat = ATTN_CS; pat <= ATTN_CC; pat += ATTN_CC - ATTN_CS)
		for (int si = 0; si < COUNT(settings); si++) {
			struct attn_problem p = problem(2, 4, 2, 130, pat == ATTN_CS ? 130 : 77,
							12, pat, settings[si]);
			struct tensors a;

			tensors_make(&a, &p, SEED + 800 + si, 1.0);
			run(softplus(), &p, &a);
			for (int ci = 0; ci < COUNT(cuts); ci++) {
				struct tensors b;
				struct rng g = { SEED + 810 + ci };
				int t = cuts[ci];

				tensors_copy(&b, &a);
				perturb_rows_after(&g, b.q, 8, p.n, p.d, t);
				if (pat == ATTN_CS) {
					perturb_rows_after(&g, b.k, 4, p.m, p.d, t);
					perturb_rows_after(&g, b.v, 4, p.m, p.d, t);
				}
				run(softplus(), &p, &b);
				assert_true(change_up_to(&p, a.o, b.o, t) <= CAUSAL_TOLERANCE);
				assert_true(change_up_to(&p, a.o, b.o, p.n - 1) > 0.01);
				tensors_release(&b);
			}
			tensors_release(&a);
		}
}

/*
 * Grouped KV heads give, bit for bit, MHA with each KV head repeated for its group: the
 * keys' norms are shared, the rest is the very arithmetic of MHA.
 */
static void test_softplus_gives_gqa_as_mha_with_repeated_kv(void **state)
{
	static const double settings[][NPARAMS] = { { 1, 1, 15, 1 }, { 1, 1, 15, 0 } };

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++)
		for (int si = 0; si < COUNT(settings); si++)
			for (int kv = 1; kv <= 2; kv++) {
				int n = 97, m = pattern_is_self(pat) ? 97 : 150;
				struct attn_problem gqa = problem(2, 4, kv, n, m, 12, pat,
								  settings[si]);

				check_gqa_is_mha_bit_for_bit(softplus(), &gqa, SEED + 900 + kv);
			}
}

/* Allocator peak of one forward() at p. */
static size_t forward_peak(const struct attn_problem *p)
{
	struct tensors t;
	size_t before, peak;

	tensors_make(&t, p, SEED, 1.0);
	before = memory_live_bytes();
	memory_reset_peak();
	run(softplus(), p, &t);
	peak = memory_peak_bytes() - before;
	tensors_release(&t);
	return peak;
}

static size_t up16(size_t x)
{
	return (x + 15) / 16 * 16;
}

/*
 * The workspace is, per thread, one tile of 64 query rows' scores against the keys, its
 * scaled queries and sums, plus one inverse norm per key of each KV head: the same for 64
 * and 1024 query rows against 512 keys, and far below one n x m score matrix.
 */
static void test_softplus_workspace_is_a_tile_of_scores(void **state)
{
	struct attn_problem few = problem(1, 2, 1, 64, 512, 64, ATTN_NC, NULL);
	struct attn_problem many = problem(1, 2, 1, 1024, 512, 64, ATTN_NC, NULL);
	struct attn_problem self = problem(1, 2, 2, 2048, 2048, 64, ATTN_CS, NULL);
	size_t tile = up16(64 * 512) + up16(64 * 64) + up16(64);

	(void)state;
	assert_int_equal(forward_peak(&few), sizeof(float) * (max_threads() * tile + 512));
	assert_int_equal(forward_peak(&many), forward_peak(&few));
	assert_true(forward_peak(&self) < sizeof(float) * 2048 * 2048 / 4);
}

/* The keys and values it reads, float32: the KV cache of exact attention. */
static void test_softplus_state_bytes_are_the_kv_cache(void **state)
{
	(void)state;
	struct attn_problem p = problem(2, 8, 2, 300, 300, 64, ATTN_CS, NULL);

	assert_true(softplus()->state_bytes(&p) == 2.0 * 2 * 2 * 300 * 64 * 4);
	p = problem(1, 4, 4, 17, 33, 8, ATTN_NC, NULL);
	assert_true(softplus()->state_bytes(&p) == 2.0 * 1 * 4 * 33 * 8 * 4);
}

/*
 * Per query head, two products of rows x keys x d per tile (4 r K d flops), 3 n d for
 * the query norms and scaling; per KV head 2 m d for the key norms:
 *   nc 10 x 40, d 8, B 2, H 3, Hkv 1: 6 (4·10·40·8 + 3·10·8) + 2 (2·40·8);
 *   cs n = 100, d 8: tiles of 64 and 36 rows against 64 and 100 keys.
 */
static void test_softplus_flops_count_its_products(void **state)
{
	struct attn_problem p;

	(void)state;
	p = problem(2, 3, 1, 10, 40, 8, ATTN_NC, NULL);
	assert_true(softplus()->flops(&p) == 6.0 * (4 * 10 * 40 * 8 + 3 * 10 * 8) +
					     2.0 * (2 * 40 * 8));
	p = problem(2, 3, 1, 100, 100, 8, ATTN_CS, NULL);
	assert_true(softplus()->flops(&p) ==
		    6.0 * (4.0 * 8 * (64 * 64 + 36 * 100) + 3 * 100 * 8) + 2.0 * (2 * 100 * 8));
}

/*
 * All four patterns, every one a harness extension; not exact; the four parameters of
 * section 32 with the catalogue's defaults; the reconstruction said in the summary and
 * help; no decoder.
 */
static void test_softplus_declares_its_patterns_and_parameters(void **state)
{
	static const char *const names[] = { "scale", "offset", "power", "reweight" };
	static const double defaults[] = { 1, 1, 15, 1 };
	const struct variant_ops *v = softplus();

	(void)state;
	assert_string_equal(v->family, "normalisation");
	assert_int_equal(v->patterns, PATTERNS_ALL);
	assert_int_equal(v->extensions, PATTERNS_ALL);
	assert_int_equal(v->flags, 0);
	assert_non_null(strstr(v->summary, "reconstruction"));
	assert_non_null(strstr(v->citation, "2501.13428"));
	assert_int_equal(v->n_params, NPARAMS);
	for (int i = 0; i < NPARAMS; i++) {
		assert_string_equal(v->params[i].name, names[i]);
		assert_true(v->params[i].def == defaults[i]);
		assert_int_equal(variant_param_index(v, names[i]), i);
	}
	assert_true(v->params[REWEIGHT].integer);
	assert_true(v->params[REWEIGHT].min == 0 && v->params[REWEIGHT].max == 1);
	assert_non_null(strstr(v->params[POWER].help, "reconstruction"));
	assert_null(v->decode_init);
	assert_null(v->decode_step);
	assert_null(v->decode_free);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_softplus_matches_an_fp64_transcription_on_awkward_shapes),
		cmocka_unit_test(test_softplus_rows_sum_to_one),
		cmocka_unit_test(test_softplus_scaled_reweighting_equals_the_direct_form),
		cmocka_unit_test(test_softplus_sharp_long_rows_do_not_overflow),
		cmocka_unit_test(test_softplus_with_a_large_power_returns_the_value_of_the_argmax),
		cmocka_unit_test(test_softplus_rows_with_at_most_three_keys_use_no_offset),
		cmocka_unit_test(test_softplus_without_reweighting_is_lssa),
		cmocka_unit_test(test_softplus_rows_of_vanishing_softplus_stay_exact),
		cmocka_unit_test(test_softplus_rows_ignore_later_positions),
		cmocka_unit_test(test_softplus_gives_gqa_as_mha_with_repeated_kv),
		cmocka_unit_test(test_softplus_workspace_is_a_tile_of_scores),
		cmocka_unit_test(test_softplus_state_bytes_are_the_kv_cache),
		cmocka_unit_test(test_softplus_flops_count_its_products),
		cmocka_unit_test(test_softplus_declares_its_patterns_and_parameters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
