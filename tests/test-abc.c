/*
 * test-abc.c - ABC (bounded-memory control) against a straightforward fp64 transcription
 * of its equations, naive in cs (every row's memory summed again from scratch), and its
 * own properties: equal rows give that row back, rows that differ only where the slot
 * projections cannot see them give the (prefix) mean of V, one slot ignores the queries,
 * CAB's causal branch attends to each token alone, decoding in both modes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "variant-test.h"

#include "random.h"
#include "threads.h"

/* fp32 slot sums and softmaxes against fp64 equations: the spec's bound. */
#define TOLERANCE 1e-5
/* Inputs that agree to fp32 rounding: only reordered sums may separate the outputs. */
#define SAME_TOLERANCE 1e-5

static const enum attn_pattern patterns[] = { ATTN_NS, ATTN_CS, ATTN_NC, ATTN_CC };

/* ---- the fp64 transcription ---- */

/*
 * W_k then W_v (d x r, row-major), as abc.c documents its plan: U(-b, b) with
 * b = sqrt(3/(d + r)), drawn in that order from plan_rng stream 25 of the seed,
 * rounded to float.
 */
static void plan_weights(uint64_t seed, int d, int r, double *wk, double *wv)
{
	struct plan_rng g = plan_rng_make(seed, 25);
	double b = sqrt(3.0 / (d + r));

	for (int i = 0; i < d * r; i++)
		wk[i] = (float)(b * (2 * plan_rng_uniform(&g) - 1));
	for (int i = 0; i < d * r; i++)
		wv[i] = (float)(b * (2 * plan_rng_uniform(&g) - 1));
}

/* logit[j][s] = x_j . W[:, s] for m rows. */
static void logits(const float *x, int m, int d, int r, const double *w, double *logit)
{
	for (int j = 0; j < m; j++)
		for (int s = 0; s < r; s++) {
			logit[j * r + s] = 0;
			for (int c = 0; c < d; c++)
				logit[j * r + s] += (double)x[j * d + c] * w[c * r + s];
		}
}

/* Slot s = Σ_{j<rows} e^{logit_js} x_j / Σ_{j<rows} e^{logit_js}, for every s. */
static void slots_over(const float *x, const double *logit, int rows, int d, int r,
		       double *slot)
{
	for (int s = 0; s < r; s++) {
		double top = -INFINITY, z = 0;

		for (int j = 0; j < rows; j++)
			top = fmax(top, logit[j * r + s]);
		for (int c = 0; c < d; c++)
			slot[s * d + c] = 0;
		for (int j = 0; j < rows; j++) {
			double e = exp(logit[j * r + s] - top);

			z += e;
			for (int c = 0; c < d; c++)
				slot[s * d + c] += e * x[j * d + c];
		}
		for (int c = 0; c < d; c++)
			slot[s * d + c] /= z;
	}
}

/* o = Σ_s softmax_s(σ q . kt_s) vt_s. */
static void read_slots(const float *q, const double *kt, const double *vt, int d, int r,
		       double *out)
{
	double *score = malloc(sizeof(double) * r), top = -INFINITY, z = 0;

	assert_non_null(score);
	for (int s = 0; s < r; s++) {
		score[s] = 0;
		for (int c = 0; c < d; c++)
			score[s] += (double)q[c] * kt[s * d + c];
		score[s] /= sqrt((double)d);
		top = fmax(top, score[s]);
	}
	for (int s = 0; s < r; s++)
		z += score[s] = exp(score[s] - top);
	for (int c = 0; c < d; c++) {
		out[c] = 0;
		for (int s = 0; s < r; s++)
			out[c] += score[s] / z * vt[s * d + c];
	}
	free(score);
}

/* CAB's causal row: o = (Σ_s softmax_s(σ q.k w_s) w'_s) v, w_s = e^{a_is} / Σ_{j<=i} e^{a_js} */
static void cab_row(const float *q, const float *k, const float *v, const double *a,
		    const double *b, int i, int d, int r, double *out)
{
	double qk = 0, top = -INFINITY, z = 0, mix = 0;
	double *w = malloc(sizeof(double) * 2 * r), *wv = w + r;

	assert_non_null(w);
	for (int c = 0; c < d; c++)
		qk += (double)q[c] * k[c];
	qk /= sqrt((double)d);
	for (int s = 0; s < r; s++) {
		double za = 0, zb = 0;

		for (int j = 0; j <= i; j++) {
			za += exp(a[j * r + s] - a[i * r + s]);
			zb += exp(b[j * r + s] - b[i * r + s]);
		}
		w[s] = 1 / za;
		wv[s] = 1 / zb;
		top = fmax(top, qk * w[s]);
	}
	for (int s = 0; s < r; s++) {
		double e = exp(qk * w[s] - top);

		z += e;
		mix += e * wv[s];
	}
	for (int c = 0; c < d; c++)
		out[c] = mix / z * v[c];
	free(w);
}

/*
 * ABC written out in double with the given projections: in cs each row's memory over
 * keys 0..i recomputed from scratch (or CAB's causal row when cab is set); otherwise
 * one memory over all m keys.
 */
static void transcribe_with(const struct attn_problem *p, int r, bool cab, const double *wk,
			    const double *wv, const float *q, const float *k, const float *v,
			    double *out)
{
	int d = p->d, m = p->m;
	double *a = malloc(sizeof(double) * m * r), *b = malloc(sizeof(double) * m * r);
	double *kt = malloc(sizeof(double) * r * d), *vt = malloc(sizeof(double) * r * d);

	assert_true(a && b && kt && vt);
	for (int bt = 0; bt < p->batch; bt++)
		for (int h = 0; h < p->heads; h++) {
			const float *qs = q + problem_q_offset(p, bt, h);
			const float *ks = k + problem_kv_offset(p, bt, h);
			const float *vs = v + problem_kv_offset(p, bt, h);
			double *os = out + problem_q_offset(p, bt, h);

			logits(ks, m, d, r, wk, a);
			logits(vs, m, d, r, wv, b);
			if (p->pattern != ATTN_CS) {
				slots_over(ks, a, m, d, r, kt);
				slots_over(vs, b, m, d, r, vt);
			}
			for (int i = 0; i < p->n; i++) {
				if (p->pattern == ATTN_CS && cab) {
					cab_row(qs + i * d, ks + i * d, vs + i * d, a, b, i, d, r,
						os + i * d);
					continue;
				}
				if (p->pattern == ATTN_CS) {
					slots_over(ks, a, i + 1, d, r, kt);
					slots_over(vs, b, i + 1, d, r, vt);
				}
				read_slots(qs + i * d, kt, vt, d, r, os + i * d);
			}
		}
	free(a);
	free(b);
	free(kt);
	free(vt);
}

/* The transcription with the variant's plan. */
static void transcribe(const struct attn_problem *p, int r, bool cab, const float *q,
		       const float *k, const float *v, double *out)
{
	double *wk = malloc(sizeof(double) * p->d * r), *wv = malloc(sizeof(double) * p->d * r);

	assert_true(wk && wv);
	plan_weights(p->seed, p->d, r, wk, wv);
	transcribe_with(p, r, cab, wk, wv, q, k, v, out);
	free(wk);
	free(wv);
}

static const struct variant_ops *abc(void)
{
	return variant_must_find("abc");
}

/* Runs abc on inputs drawn N(0, scale^2) from seed; checks it against the transcription. */
static void check_transcription(const struct attn_problem *p, uint64_t seed, double scale)
{
	int r = p->params ? (int)p->params[0] : 16;
	bool cab = p->params && p->params[1] != 0;
	struct tensors t;
	double *ref;

	tensors_make(&t, p, seed, scale);
	ref = malloc(sizeof(double) * t.nq);
	assert_non_null(ref);
	transcribe(p, r, cab, t.q, t.k, t.v, ref);
	check_output(abc(), p, &t, ref, TOLERANCE, " r=%d cab=%d", r, cab);
}

/* Every awkward shape of one pattern: self n = m, cross n != m. */
static void check_grid(enum attn_pattern pattern, const double *params, uint64_t *seed)
{
	struct shape_walk w = { 0 };
	struct attn_problem p;

	while (shape_walk_next(&w, pattern, params, &p))
		check_transcription(&p, (*seed)++, 1.0);
}

/* ---- agreement with the transcription ---- */

static void test_abc_matches_its_fp64_transcription_on_every_pattern(void **state)
{
	double params[2] = { 16, 0 };
	uint64_t seed = SEED;

	(void)state;
	for (int pi = 0; pi < COUNT(patterns); pi++)
		check_grid(patterns[pi], params, &seed);
}

static void test_abc_matches_its_transcription_for_every_slot_count(void **state)
{
	static const int slots[] = { 1, 3, 40 };
	static const int shapes[][2] = { { 17, 17 }, { 130, 130 }, { 17, 63 }, { 63, 17 } };
	uint64_t seed = SEED + 100;

	(void)state;
	for (int si = 0; si < COUNT(slots); si++)
		for (int pi = 0; pi < COUNT(patterns); pi++)
			for (int sh = 0; sh < COUNT(shapes); sh++) {
				int n = shapes[sh][0], m = shapes[sh][1];
				double params[2] = { slots[si], 0 };
				struct attn_problem p = problem(2, 4, 2, n, m, 12, patterns[pi],
								params);

				if (pattern_is_self(patterns[pi]) != (n == m))
					continue;
				check_transcription(&p, seed++, 1.0);
			}
}

/*
 * Lengths on, around and far past the chunk of 64 rows, larger inputs: the carried
 * sums and their rescaling meet every row's recomputed memory.
 */
static void test_abc_cs_streaming_equals_naive_recomputation(void **state)
{
	static const int lengths[] = { 64, 65, 128, 300 };
	static const int slots[] = { 1, 16 };
	uint64_t seed = SEED + 200;

	(void)state;
	for (int li = 0; li < COUNT(lengths); li++)
		for (int si = 0; si < COUNT(slots); si++) {
			double params[2] = { slots[si], 0 };
			int n = lengths[li];
			struct attn_problem p = problem(1, 2, 1, n, n, 32, ATTN_CS, params);

			check_transcription(&p, seed++, 2.5);
		}
}

/*
 * Keys of up to 10 lined up with a slot's projection column give logits of about +-60:
 * maxima rise by far more than float's exponent range inside one chunk, so chunks must
 * be cut and carried sums rescaled. Still the transcription's numbers, and
 * rows do not move when later rows change.
 */
static void test_abc_stays_accurate_when_slot_logits_span_a_wide_range(void **state)
{
	const int n = 200, d = 64, r = 16;
	double params[2] = { r, 0 };
	double *wk = malloc(sizeof(double) * d * r), *wv = malloc(sizeof(double) * d * r);
	struct attn_problem p = problem(1, 2, 1, n, n, d, ATTN_CS, params);
	struct rng g = { SEED + 300 };
	struct tensors t, later;
	double *ref = malloc(sizeof(double) * (size_t)2 * n * d), change = 0, top = 0;

	(void)state;
	assert_true(wk && wv && ref);
	plan_weights(p.seed, d, r, wk, wv);
	tensors_make(&t, &p, SEED + 301, 1.0);
	for (int j = 0; j < n; j++) {
		/*
		 * 10 sign(W[:, s]) t: logit s = 10 t Σ_c |W[c][s]|, about 62 t. t climbs from
		 * -1 to 1 over the first 64 rows, so every slot's maximum rises by about 120
		 * inside one chunk; then t is uniform in [-1, 1].
		 */
		double tk = j < 64 ? -1 + 2.0 * j / 63 : 2 * rng_uniform(&g) - 1;
		double tv = j < 64 ? -1 + 2.0 * j / 63 : 2 * rng_uniform(&g) - 1;
		int s = j % r;

		for (int c = 0; c < d; c++) {
			t.k[j * d + c] = (float)(10 * tk * (wk[c * r + s] > 0 ? 1 : -1));
			t.v[j * d + c] = (float)(10 * tv * (wv[c * r + s] > 0 ? 1 : -1));
		}
	}
	transcribe(&p, r, false, t.q, t.k, t.v, ref);
	run(abc(), &p, &t);
	for (size_t x = 0; x < t.nq; x++)
		assert_true(isfinite(t.o[x]));
	assert_true(error_vs_double(t.o, ref, t.nq) <= TOLERANCE);

	/* rows <= 99 stay put when rows 100.. become 10 sign(W[:, s]): the largest logits */
	tensors_copy(&later, &t);
	for (int j = 100; j < n; j++) {
		int s = (int)(rng_uniform(&g) * r);

		for (int c = 0; c < d; c++) {
			later.k[j * d + c] = wk[c * r + s] > 0 ? 10.0f : -10.0f;
			later.v[j * d + c] = wv[c * r + s] > 0 ? 10.0f : -10.0f;
		}
	}
	run(abc(), &p, &later);
	for (int h = 0; h < 2; h++)
		for (int i = 0; i < 100 * d; i++) {
			size_t at = (size_t)h * n * d + i;

			change = fmax(change, fabs((double)later.o[at] - t.o[at]));
			top = fmax(top, fabs((double)t.o[at]));
		}
	assert_true(change <= TOLERANCE * top);
	tensors_release(&later);
	tensors_release(&t);
	free(ref);
	free(wk);
	free(wv);
}

/* ---- properties ---- */

/* Every K row of a slice equal, every V row equal: each slot holds them; o_i = v. */
static void test_abc_outputs_the_value_row_when_all_rows_are_equal(void **state)
{
	uint64_t seed = SEED + 400;

	(void)state;
	for (int pi = 0; pi < COUNT(patterns); pi++) {
		enum attn_pattern pat = patterns[pi];
		int n = 70, m = pattern_is_self(pat) ? 70 : 45, d = 24;
		struct attn_problem p = problem(2, 4, 2, n, m, d, pat, NULL);
		struct tensors t;

		tensors_make(&t, &p, seed++, 2.0);
		for (int s = 0; s < 2 * 2; s++)
			for (int j = 1; j < m; j++) {
				memcpy(t.k + ((size_t)s * m + j) * d, t.k + (size_t)s * m * d,
				       sizeof(float) * d);
				memcpy(t.v + ((size_t)s * m + j) * d, t.v + (size_t)s * m * d,
				       sizeof(float) * d);
			}
		run(abc(), &p, &t);
		for (int b = 0; b < 2; b++)
			for (int h = 0; h < 4; h++) {
				const float *v0 = t.v + problem_kv_offset(&p, b, h);
				const float *o = t.o + problem_q_offset(&p, b, h);

				for (int i = 0; i < n; i++)
					for (int c = 0; c < d; c++)
						assert_float_equal(o[i * d + c], v0[c],
								   SAME_TOLERANCE * 2 *
								   (1 + fabsf(v0[c])));
			}
		tensors_release(&t);
	}
}

/*
 * The check of the transcription itself: W_k = W_v = 0 makes every slot the plain
 * (prefix) mean, so o_i = mean_{j<=i} v_j in cs and mean(V) otherwise, worked out here
 * by a sum.
 */
static void test_zero_projections_make_the_transcription_output_prefix_means(void **state)
{
	const int d = 8, r = 5;
	double wk[8 * 5] = { 0 }, wv[8 * 5] = { 0 };

	(void)state;
	for (int pi = 0; pi < COUNT(patterns); pi++) {
		enum attn_pattern pat = patterns[pi];
		int n = 19, m = pattern_is_self(pat) ? 19 : 11;
		struct attn_problem p = problem(1, 2, 1, n, m, d, pat, NULL);
		struct tensors t;
		double *out;

		tensors_make(&t, &p, SEED + 500 + pi, 1.0);
		out = malloc(sizeof(double) * t.nq);
		assert_non_null(out);
		transcribe_with(&p, r, false, wk, wv, t.q, t.k, t.v, out);
		for (int h = 0; h < 2; h++)
			for (int i = 0; i < n; i++)
				for (int c = 0; c < d; c++) {
					int rows = pat == ATTN_CS ? i + 1 : m;
					double mean = 0;

					for (int j = 0; j < rows; j++)
						mean += t.v[j * d + c];
					mean /= rows;
					size_t at = ((size_t)h * n + i) * d + c;

					assert_float_equal(out[at], mean, 1e-12);
				}
		free(out);
		tensors_release(&t);
	}
}

/* Orthonormal basis (r rows of d) of the columns of W (d x r), by Gram-Schmidt. */
static void column_basis(const double *w, int d, int r, double *basis)
{
	for (int s = 0; s < r; s++) {
		double *u = basis + s * d, norm = 0;

		for (int c = 0; c < d; c++)
			u[c] = w[c * r + s];
		for (int t = 0; t < s; t++) {
			double along = 0;

			for (int c = 0; c < d; c++)
				along += u[c] * basis[t * d + c];
			for (int c = 0; c < d; c++)
				u[c] -= along * basis[t * d + c];
		}
		for (int c = 0; c < d; c++)
			norm += u[c] * u[c];
		for (int c = 0; c < d; c++)
			u[c] /= sqrt(norm);
	}
}

/* x (d) loses its components along the r basis vectors. */
static void project_out(float *x, const double *basis, int d, int r)
{
	double y[64];

	for (int c = 0; c < d; c++)
		y[c] = x[c];
	for (int s = 0; s < r; s++) {
		double along = 0;

		for (int c = 0; c < d; c++)
			along += y[c] * basis[s * d + c];
		for (int c = 0; c < d; c++)
			y[c] -= along * basis[s * d + c];
	}
	for (int c = 0; c < d; c++)
		x[c] = (float)y[c];
}

/*
 * Rows that share one component and differ only orthogonally to the projections'
 * columns: every row then has the same logits, as with W_k = W_v = 0 (which no
 * parameter reaches), so every slot is the (prefix) mean and o_i = mean_{j<=i} v_j in
 * cs, mean(V) otherwise, whatever the queries.
 */
static void test_abc_outputs_the_value_mean_when_the_projections_see_no_change(void **state)
{
	static const int shapes[][2] = { { 4, 12 }, { 16, 64 } };	/* slots, d */

	(void)state;
	for (int sh = 0; sh < COUNT(shapes); sh++) {
		int r = shapes[sh][0], d = shapes[sh][1];
		double params[2] = { r, 0 };
		size_t bytes = sizeof(double) * d * r;
		double *wk = malloc(bytes), *wv = malloc(bytes), *bk = malloc(bytes);
		double *bv = malloc(bytes);

		assert_true(wk && wv && bk && bv);
		plan_weights(SEED, d, r, wk, wv);
		column_basis(wk, d, r, bk);
		column_basis(wv, d, r, bv);
		for (int pi = 0; pi < COUNT(patterns); pi++) {
			enum attn_pattern pat = patterns[pi];
			int n = 90, m = pattern_is_self(pat) ? 90 : 33;
			struct attn_problem p = problem(2, 4, 2, n, m, d, pat, params);
			struct tensors t;

			tensors_make(&t, &p, SEED + 600 + pi, 1.0);
			for (int s = 0; s < 2 * 2; s++)
				for (int j = 0; j < m; j++) {
					float *kj = t.k + ((size_t)s * m + j) * d;
					float *vj = t.v + ((size_t)s * m + j) * d;

					project_out(kj, bk, d, r);
					project_out(vj, bv, d, r);
					/* plus the slice's shared part, which the logits see */
					for (int c = 0; c < d; c++) {
						kj[c] += (float)(0.1 * (s + 1) * (c % 3));
						vj[c] += (float)(0.2 * (s + 2) * (c % 5 == 1));
					}
				}
			run(abc(), &p, &t);
			for (int b = 0; b < 2; b++)
				for (int h = 0; h < 4; h++) {
					const float *vs = t.v + problem_kv_offset(&p, b, h);
					const float *o = t.o + problem_q_offset(&p, b, h);

					for (int i = 0; i < n; i++)
						for (int c = 0; c < d; c++) {
							int rows = pat == ATTN_CS ? i + 1 : m;
							double mean = 0;

							for (int j = 0; j < rows; j++)
								mean += vs[j * d + c];
							mean /= rows;
							assert_float_equal(o[i * d + c], mean,
									   SAME_TOLERANCE);
						}
				}
			tensors_release(&t);
		}
		free(wk);
		free(wv);
		free(bk);
		free(bv);
	}
}

/* With one slot its softmax weight is 1: the queries cannot matter. */
static void test_abc_with_one_slot_ignores_the_queries(void **state)
{
	double params[2] = { 1, 0 };

	(void)state;
	for (int pi = 0; pi < COUNT(patterns); pi++) {
		enum attn_pattern pat = patterns[pi];
		int m = pattern_is_self(pat) ? 77 : 20;
		struct attn_problem p = problem(1, 2, 2, 77, m, 16, pat, params);
		struct tensors a, b;
		struct rng g = { SEED + 700 };

		tensors_make(&a, &p, SEED + 700 + pi, 1.0);
		tensors_copy(&b, &a);
		fill_normal(&g, b.q, b.nq, 3.0);
		run(abc(), &p, &a);
		run(abc(), &p, &b);
		assert_true(error_vs_float(b.o, a.o, a.nq) <= SAME_TOLERANCE);
		tensors_release(&a);
		tensors_release(&b);
	}
}

/*
 * With fewer KV slices than threads, cs gives each query head its own task and repeats
 * the K/V work instead of sharing it: each head's arithmetic, and so every bit, is the
 * same either way.
 */
static void test_abc_gives_the_same_bits_with_or_without_shared_kv_work(void **state)
{
	int saved = threads_get();

	(void)state;
	for (int cab = 0; cab < 2; cab++) {
		double params[2] = { 16, cab };
		struct attn_problem p = problem(1, 4, 1, 150, 150, 24, ATTN_CS, params);
		struct tensors a, b;

		tensors_make(&a, &p, SEED + 1400 + cab, 1.0);
		tensors_copy(&b, &a);
		threads_set(1);
		run(abc(), &p, &a);
		threads_set(3);
		run(abc(), &p, &b);
		assert_memory_equal(a.o, b.o, sizeof(float) * a.nq);
		tensors_release(&a);
		tensors_release(&b);
	}
	threads_set(saved);
}

/* ---- CAB's causal branch ---- */

static void test_abc_cab_causal_matches_its_transcription(void **state)
{
	double params[2] = { 16, 1 };
	uint64_t seed = SEED + 800;

	(void)state;
	check_grid(ATTN_CS, params, &seed);
	params[0] = 3;
	check_grid(ATTN_CS, params, &seed);
}

/* CAB's causal branch is the only one cab_causal changes; ns, nc and cc ignore it. */
static void test_abc_cab_causal_leaves_other_patterns_alone(void **state)
{
	double faithful[2] = { 16, 0 }, cab[2] = { 16, 1 };

	(void)state;
	for (int pi = 0; pi < COUNT(patterns); pi++) {
		enum attn_pattern pat = patterns[pi];
		int m = pattern_is_self(pat) ? 40 : 23;
		struct attn_problem p = problem(2, 4, 2, 40, m, 16, pat, faithful);
		struct tensors a, b;

		tensors_make(&a, &p, SEED + 900, 1.0);
		tensors_copy(&b, &a);
		run(abc(), &p, &a);
		p.params = cab;
		run(abc(), &p, &b);
		if (pat == ATTN_CS)
			assert_true(error_vs_float(b.o, a.o, a.nq) > 0.01);
		else
			assert_memory_equal(a.o, b.o, sizeof(float) * a.nq);
		tensors_release(&a);
		tensors_release(&b);
	}
}

/*
 * A token attends only to itself: o_i is a multiple of v_i; with every row equal the
 * weight of v is Σ_s p_s w'_s = 1/(i + 1), which is why it is not ABC.
 */
static void test_abc_cab_causal_outputs_a_multiple_of_the_rows_own_value(void **state)
{
	double params[2] = { 16, 1 };
	const int n = 70, d = 16;
	struct attn_problem p = problem(1, 2, 1, n, n, d, ATTN_CS, params);
	struct tensors t;

	(void)state;
	tensors_make(&t, &p, SEED + 1000, 1.0);
	run(abc(), &p, &t);
	for (int h = 0; h < 2; h++)
		for (int i = 0; i < n; i++) {
			const float *o = t.o + ((size_t)h * n + i) * d, *vi = t.v + i * d;
			double ov = 0, vv = 0, rest = 0, oo = 0;

			for (int c = 0; c < d; c++) {
				ov += (double)o[c] * vi[c];
				vv += (double)vi[c] * vi[c];
				oo += (double)o[c] * o[c];
			}
			for (int c = 0; c < d; c++)
				rest += pow(o[c] - ov / vv * vi[c], 2);
			assert_true(oo > 0);
			assert_true(sqrt(rest / oo) <= SAME_TOLERANCE);
		}
	tensors_release(&t);

	tensors_make(&t, &p, SEED + 1001, 1.0);
	for (int j = 1; j < n; j++) {
		memcpy(t.k + j * d, t.k, sizeof(float) * d);
		memcpy(t.v + j * d, t.v, sizeof(float) * d);
	}
	run(abc(), &p, &t);
	for (int h = 0; h < 2; h++)
		for (int i = 0; i < n; i++)
			for (int c = 0; c < d; c++)
				assert_float_equal(t.o[((size_t)h * n + i) * d + c],
						   t.v[c] / (i + 1.0),
						   SAME_TOLERANCE * (1 + fabsf(t.v[c])));
	tensors_release(&t);
}

/*
 * Earlier rows reach row i only through the normalisers Σ e^{α_j}, Σ e^{β_j}: moving
 * earlier K and V rows where the projections cannot see them leaves row i of CAB's
 * branch in place, while faithful ABC, whose slots average those rows, moves.
 */
static void test_abc_cab_causal_ignores_earlier_rows_that_keep_their_logits(void **state)
{
	const int n = 80, d = 32, r = 16, row = 70;
	double cab[2] = { r, 1 }, faithful[2] = { r, 0 };
	double *wk = malloc(sizeof(double) * d * r), *wv = malloc(sizeof(double) * d * r);
	double *bk = malloc(sizeof(double) * d * r), *bv = malloc(sizeof(double) * d * r);
	struct rng g = { SEED + 1100 };

	(void)state;
	assert_true(wk && wv && bk && bv);
	plan_weights(SEED, d, r, wk, wv);
	column_basis(wk, d, r, bk);
	column_basis(wv, d, r, bv);
	for (int mode = 0; mode < 2; mode++) {
		const double *params = mode ? faithful : cab;
		struct attn_problem p = problem(1, 1, 1, n, n, d, ATTN_CS, params);
		struct tensors a, b;
		float noise[32];
		double moved = 0, top = 0;

		tensors_make(&a, &p, SEED + 1101, 1.0);
		tensors_copy(&b, &a);
		for (int j = 0; j < row; j++) {
			fill_normal(&g, noise, d, 2.0);
			project_out(noise, bk, d, r);
			for (int c = 0; c < d; c++)
				b.k[j * d + c] += noise[c];
			fill_normal(&g, noise, d, 2.0);
			project_out(noise, bv, d, r);
			for (int c = 0; c < d; c++)
				b.v[j * d + c] += noise[c];
		}
		run(abc(), &p, &a);
		run(abc(), &p, &b);
		for (int c = 0; c < d; c++) {
			moved = fmax(moved, fabs((double)a.o[row * d + c] - b.o[row * d + c]));
			top = fmax(top, fabs((double)a.o[row * d + c]));
		}
		if (mode == 0)
			assert_true(moved <= SAME_TOLERANCE * top);
		else
			assert_true(moved > 0.01 * top);
		tensors_release(&a);
		tensors_release(&b);
	}
	free(wk);
	free(wv);
	free(bk);
	free(bv);
}

/* ---- decoding, state, parameters ---- */

static void test_abc_decoding_matches_its_causal_forward_in_both_modes(void **state)
{
	static const int slots[] = { 1, 16, 33 };
	static const int lengths[] = { 1, 17, 130 };
	static const int decode_dims[] = { 8, 64 };
	uint64_t seed = SEED + 1200;

	(void)state;
	for (int cab = 0; cab < 2; cab++)
		for (int si = 0; si < COUNT(slots); si++)
			for (int li = 0; li < COUNT(lengths); li++)
				for (int di = 0; di < COUNT(decode_dims); di++)
					for (int kv = 1; kv <= 4; kv *= 4) {
						double params[2] = { slots[si], cab };
						int n = lengths[li];
						struct attn_problem p = problem(2, 4, kv, n, n,
										decode_dims[di],
										ATTN_CS, params);

						check_decode(abc(), &p, seed++);
					}
}

static void test_abc_decoding_refuses_other_patterns(void **state)
{
	static const enum attn_pattern others[] = { ATTN_NS, ATTN_NC, ATTN_CC };

	(void)state;
	for (int i = 0; i < COUNT(others); i++) {
		struct attn_problem p = problem(1, 2, 2, 16, 16, 8, others[i], NULL);
		void *dec = &dec;

		assert_int_equal(abc()->decode_init(&p, &dec), -ENOTSUP);
		assert_null(dec);
	}
}

static void test_abc_decoding_state_does_not_grow_with_the_sequence(void **state)
{
	double params[2] = { 16, 0 };
	struct attn_problem shortp = problem(1, 4, 2, 64, 64, 16, ATTN_CS, params);
	struct attn_problem longp = problem(1, 4, 2, 1024, 1024, 16, ATTN_CS, params);
	size_t peak = decode_peak(abc(), &shortp);

	(void)state;
	assert_int_equal(peak, decode_peak(abc(), &longp));
	/* at least the slot sums of keys and values of both KV heads */
	assert_true(peak >= 2 * 2 * 16 * 16 * sizeof(float));
}

/*
 * Per KV head, float32: ns, nc, cc keep K̃, Ṽ (2 r d); cs the running sums, normalisers
 * and maxima (2 r d + 4 r); CAB's causal branch the normalisers and maxima (4 r).
 */
static void test_abc_state_bytes_follow_their_formula(void **state)
{
	double def[2] = { 16, 0 }, wide[2] = { 40, 0 }, cab[2] = { 40, 1 };
	struct attn_problem p;

	(void)state;
	assert_non_null(abc()->state_bytes);
	p = problem(2, 8, 2, 300, 300, 64, ATTN_CS, def);
	assert_true(abc()->state_bytes(&p) == 2.0 * 2 * (2 * 16 * 64 + 4 * 16) * 4);
	p.params = NULL;
	assert_true(abc()->state_bytes(&p) == 2.0 * 2 * (2 * 16 * 64 + 4 * 16) * 4);
	p.params = wide;
	assert_true(abc()->state_bytes(&p) == 2.0 * 2 * (2 * 40 * 64 + 4 * 40) * 4);
	p.params = cab;
	assert_true(abc()->state_bytes(&p) == 2.0 * 2 * (4 * 40) * 4);
	p = problem(1, 4, 4, 17, 33, 8, ATTN_NC, wide);
	assert_true(abc()->state_bytes(&p) == 1.0 * 4 * (2 * 40 * 8) * 4);
	p.pattern = ATTN_CC;
	p.params = cab;
	assert_true(abc()->state_bytes(&p) == 1.0 * 4 * (2 * 40 * 8) * 4);
	p = problem(3, 4, 1, 50, 50, 12, ATTN_NS, NULL);
	assert_true(abc()->state_bytes(&p) == 3.0 * 1 * (2 * 16 * 12) * 4);
}

static void test_abc_accepts_every_pattern_and_rejects_bad_parameters(void **state)
{
	static const double bad[][2] = { { 0, 0 }, { 2.5, 0 }, { 16, 2 }, { 16, 0.5 } };
	double params[2] = { 16, 0 };

	(void)state;
	assert_int_equal(abc()->patterns, PATTERNS_ALL);
	assert_int_equal(abc()->extensions, 0);
	assert_int_equal(variant_param_index(abc(), "slots"), 0);
	assert_int_equal(variant_param_index(abc(), "cab_causal"), 1);
	assert_true(abc()->params[0].def == 16 && abc()->params[1].def == 0);
	for (int pi = 0; pi < COUNT(patterns); pi++) {
		int m = pattern_is_self(patterns[pi]) ? 16 : 5;
		struct attn_problem p = problem(1, 2, 1, 16, m, 8, patterns[pi], params);

		assert_int_equal(variant_check_problem(abc(), &p), 0);
		for (int b = 0; b < COUNT(bad); b++) {
			p.params = bad[b];
			assert_int_equal(variant_check_problem(abc(), &p), -EINVAL);
		}
	}
}

/* No parameters means the declared defaults, to the bit. */
static void test_abc_without_parameters_uses_the_defaults(void **state)
{
	double params[2] = { 16, 0 };

	(void)state;
	for (int pi = 0; pi < COUNT(patterns); pi++) {
		int m = pattern_is_self(patterns[pi]) ? 70 : 30;
		struct attn_problem p = problem(1, 2, 1, 70, m, 16, patterns[pi], NULL);
		struct tensors a, b;

		tensors_make(&a, &p, SEED + 1300, 1.0);
		tensors_copy(&b, &a);
		run(abc(), &p, &a);
		p.params = params;
		run(abc(), &p, &b);
		assert_memory_equal(a.o, b.o, sizeof(float) * a.nq);
		tensors_release(&a);
		tensors_release(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_abc_matches_its_fp64_transcription_on_every_pattern),
		cmocka_unit_test(test_abc_matches_its_transcription_for_every_slot_count),
		cmocka_unit_test(test_abc_cs_streaming_equals_naive_recomputation),
		cmocka_unit_test(test_abc_stays_accurate_when_slot_logits_span_a_wide_range),
		cmocka_unit_test(test_abc_outputs_the_value_row_when_all_rows_are_equal),
		cmocka_unit_test(test_zero_projections_make_the_transcription_output_prefix_means),
		cmocka_unit_test(test_abc_outputs_the_value_mean_when_the_projections_see_no_change),
		cmocka_unit_test(test_abc_with_one_slot_ignores_the_queries),
		cmocka_unit_test(test_abc_gives_the_same_bits_with_or_without_shared_kv_work),
		cmocka_unit_test(test_abc_cab_causal_matches_its_transcription),
		cmocka_unit_test(test_abc_cab_causal_leaves_other_patterns_alone),
		cmocka_unit_test(test_abc_cab_causal_outputs_a_multiple_of_the_rows_own_value),
		cmocka_unit_test(test_abc_cab_causal_ignores_earlier_rows_that_keep_their_logits),
		cmocka_unit_test(test_abc_decoding_matches_its_causal_forward_in_both_modes),
		cmocka_unit_test(test_abc_decoding_refuses_other_patterns),
		cmocka_unit_test(test_abc_decoding_state_does_not_grow_with_the_sequence),
		cmocka_unit_test(test_abc_state_bytes_follow_their_formula),
		cmocka_unit_test(test_abc_accepts_every_pattern_and_rejects_bad_parameters),
		cmocka_unit_test(test_abc_without_parameters_uses_the_defaults),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
