/*
 * test-sea.c - SEA (VARIANTS.md section 12) against a plain fp64 transcription of the
 * catalogue's equations on awkward shapes, and its catalogue properties: n_sel w_b >= M
 * is vanilla; with many features the chosen bins are the true top bins by mass in most
 * rows; ties go to the smaller bin; causality (cs, cc) by perturbation with selections
 * that matter; grouped heads equal MHA with K/V repeated; the state and the workspace.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "common.h"
#include "random.h"
#include "variant-test.h"

/* fp32 kernel against the fp64 transcription (and the oracle): the spec's bound. */
#define TOLERANCE 1e-5
/* Rows the causal mask hides may move visible rows only by fp32 reordering (spec). */
#define CAUSAL_TOLERANCE 1e-5
/* Grouped heads read the same numbers as MHA with repeated K/V: rounding noise only. */
#define GQA_TOLERANCE 1e-6

/* What the variant documents: W from plan_rng_make(seed, 12), one for every head. */
#define SEA_STREAM 12
/* Section 16's epsilon, added to every feature. */
#define SEA_EPS 1e-4

static const struct variant_ops *sea(void)
{
	return variant_must_find("sea");
}

/* ---- the fp64 transcription ---- */

/*
 * The FAVOR+ projection as section 16 states it, in double: per block of d rows a fresh
 * d x d standard Gaussian G, drawn column by column (draw j d + i is G[i][j]); U of its
 * QR with R's diagonal positive, here by classical Gram-Schmidt on the columns with
 * re-orthogonalisation; the block's rows are the rows of Uᵀ, the last block truncated;
 * then row r times the norm of d more draws. w is f x d, without d^(-1/4).
 */
static void draw_w(uint64_t seed, int f, int d, double *w)
{
	struct plan_rng rng = plan_rng_make(seed, SEA_STREAM);
	double *g = malloc(sizeof(double) * d * d), *u = malloc(sizeof(double) * d * d);

	assert_non_null(g);
	assert_non_null(u);
	for (int b0 = 0; b0 < f; b0 += d) {
		for (int j = 0; j < d; j++)
			for (int i = 0; i < d; i++)
				g[(size_t)i * d + j] = plan_rng_normal(&rng);
		/* u[i][j]: column j of U */
		for (int j = 0; j < d; j++) {
			double norm = 0;

			for (int i = 0; i < d; i++)
				u[(size_t)i * d + j] = g[(size_t)i * d + j];
			for (int pass = 0; pass < 2; pass++)
				for (int l = 0; l < j; l++) {
					double r = 0;

					for (int i = 0; i < d; i++)
						r += u[(size_t)i * d + l] * u[(size_t)i * d + j];
					for (int i = 0; i < d; i++)
						u[(size_t)i * d + j] -= r * u[(size_t)i * d + l];
				}
			for (int i = 0; i < d; i++)
				norm += u[(size_t)i * d + j] * u[(size_t)i * d + j];
			for (int i = 0; i < d; i++)
				u[(size_t)i * d + j] /= sqrt(norm);
		}
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
		for (int c = 0; c < d; c++)
			w[(size_t)r * d + c] *= sqrt(norm);
	}
	free(g);
	free(u);
}

/* p_r(x) = w_r·x' with x' = d^(-1/4) x, for every r. */
static void project(const double *w, const float *x, int f, int d, double *p)
{
	for (int r = 0; r < f; r++) {
		p[r] = 0;
		for (int c = 0; c < d; c++)
			p[r] += w[(size_t)r * d + c] * x[c];
		p[r] *= pow(d, -0.25);
	}
}

/* φ_r = m^(-1/2) (exp(p_r - h(x) - shift) + eps), h(x) = |x|²/(2√d). */
static void features(const double *w, const float *x, int f, int d, bool query, double shift,
		     double *phi)
{
	double h = 0, max = -INFINITY;

	for (int c = 0; c < d; c++)
		h += (double)x[c] * x[c];
	h /= 2 * sqrt(d);
	project(w, x, f, d, phi);
	for (int r = 0; r < f; r++)
		max = fmax(max, phi[r]);
	if (query)
		shift = max;
	for (int r = 0; r < f; r++)
		phi[r] = (exp(phi[r] - h - shift) + SEA_EPS) / sqrt(f);
}

struct sea_params {
	int wb, nsel, f;
};

static struct sea_params params_of(const double *params)
{
	struct sea_params s = { 32, 8, 64 };

	if (params) {
		s.wb = (int)params[0];
		s.nsel = (int)params[1];
		s.f = (int)params[2];
	}
	return s;
}

/*
 * Chooses `count` of est[0..cand) by repeated argmax, the first on a tie, into chosen[]
 * (flags).
 */
static void choose(const double *est, int cand, int count, bool *chosen)
{
	for (int c = 0; c < cand; c++)
		chosen[c] = count >= cand;
	for (int t = 0; t < count && count < cand; t++) {
		int best = -1;

		for (int c = 0; c < cand; c++)
			if (!chosen[c] && (best < 0 || est[c] > est[best]))
				best = c;
		chosen[best] = true;
	}
}

/* Row i: softmax of σ q·k_j over j < end in chosen bins, into out. */
static void attend(const float *q, const float *k, const float *v, int d, int wb, int end,
		   const bool *chosen, double *out)
{
	double max = -INFINITY, sum = 0;

	for (int c = 0; c < d; c++)
		out[c] = 0;
	for (int pass = 0; pass < 2; pass++)
		for (int j = 0; j < end; j++) {
			double s = 0;

			if (!chosen[j / wb])
				continue;
			for (int c = 0; c < d; c++)
				s += (double)q[c] * k[(size_t)j * d + c];
			s /= sqrt(d);
			if (pass == 0) {
				max = fmax(max, s);
				continue;
			}
			sum += exp(s - max);
			for (int c = 0; c < d; c++)
				out[c] += exp(s - max) * v[(size_t)j * d + c];
		}
	for (int c = 0; c < d; c++)
		out[c] /= sum;
}

/*
 * Section 12 by plain loops in double: bins of w_b keys; S_c = Σ φ(k_j) over the bin
 * (cs: key shift 0; else the max of p over the slice's keys and features); Â = φ(q)·S_c;
 * candidates all bins, or in cs the bins up to i's own, whose mass counts keys j <= i;
 * the n_sel largest (first on a tie); exact softmax over their keys (cs: j <= i).
 */
static void transcription(const struct attn_problem *p, const float *q, const float *k,
			  const float *v, double *out)
{
	struct sea_params sp = params_of(p->params);
	int n = p->n, m = p->m, d = p->d, f = sp.f, wb = sp.wb, bins = (m + wb - 1) / wb;
	bool causal = p->pattern == ATTN_CS;
	double *w = malloc(sizeof(double) * f * d), *phik = malloc(sizeof(double) * m * f);
	double *mass = malloc(sizeof(double) * bins * f), *phiq = malloc(sizeof(double) * f);
	double *est = malloc(sizeof(double) * bins), *proj = malloc(sizeof(double) * f);
	bool *chosen = malloc(sizeof(bool) * bins);

	assert_non_null(w);
	assert_non_null(phik);
	assert_non_null(mass);
	assert_non_null(phiq);
	assert_non_null(est);
	assert_non_null(proj);
	assert_non_null(chosen);
	draw_w(p->seed, f, d, w);
	for (int b = 0; b < p->batch; b++) {
		for (int h = 0; h < p->heads; h++) {
			const float *qh = q + problem_q_offset(p, b, h);
			const float *kh = k + problem_kv_offset(p, b, h);
			const float *vh = v + problem_kv_offset(p, b, h);
			double *oh = out + problem_q_offset(p, b, h), shift = 0;

			if (!causal) {
				shift = -INFINITY;
				for (int j = 0; j < m; j++) {
					project(w, kh + (size_t)j * d, f, d, proj);
					for (int r = 0; r < f; r++)
						shift = fmax(shift, proj[r]);
				}
			}
			for (int j = 0; j < m; j++)
				features(w, kh + (size_t)j * d, f, d, false, shift,
					 phik + (size_t)j * f);
			for (int c = 0; c < bins; c++)
				for (int r = 0; r < f; r++) {
					mass[(size_t)c * f + r] = 0;
					for (int j = c * wb; j < m && j < (c + 1) * wb; j++)
						mass[(size_t)c * f + r] += phik[(size_t)j * f + r];
				}
			for (int i = 0; i < n; i++) {
				int cand = causal ? i / wb + 1 : bins;

				features(w, qh + (size_t)i * d, f, d, true, 0, phiq);
				for (int c = 0; c < cand; c++) {
					est[c] = 0;
					for (int r = 0; r < f; r++) {
						double s = mass[(size_t)c * f + r];

						if (causal && c == i / wb) {
							s = 0;
							for (int j = c * wb; j <= i; j++)
								s += phik[(size_t)j * f + r];
						}
						est[c] += phiq[r] * s;
					}
				}
				choose(est, cand, sp.nsel, chosen);
				attend(qh + (size_t)i * d, kh, vh, d, wb, causal ? i + 1 : m, chosen,
				       oh + (size_t)i * d);
			}
		}
	}
	free(chosen);
	free(proj);
	free(est);
	free(phiq);
	free(mass);
	free(phik);
	free(w);
}

static void check_transcription(const struct attn_problem *p, uint64_t seed)
{
	struct sea_params sp = params_of(p->params);
	struct tensors t;
	double *ref = reference_make(&t, p, seed);

	transcription(p, t.q, t.k, t.v, ref);
	check_output(sea(), p, &t, ref, TOLERANCE, " w_b=%d n_sel=%d m=%d", sp.wb, sp.nsel,
		     sp.f);
}

/* Bins of one key, of an odd count, of about a tenth of the keys; few and many features. */
static const double small_params[][3] = {
	{ 4, 3, 16 }, { 7, 2, 5 }, { 1, 5, 32 }, { 13, 1, 70 }, { 32, 8, 64 },
};

/* Every pattern, self sizes 1..130 and cross pairs both ways, d 8, 12, 64, MHA to MQA. */
static void test_sea_matches_an_fp64_transcription_on_awkward_shapes(void **state)
{
	static const int self[] = { 1, 17, 63, 130 };
	static const int pairs[][2] = { { 17, 63 }, { 63, 17 }, { 40, 129 } };
	uint64_t seed = SEED;

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		int shapes = pattern_is_self(pat) ? COUNT(self) : COUNT(pairs);

		for (int si = 0; si < shapes; si++) {
			int n = pattern_is_self(pat) ? self[si] : pairs[si][0];
			int m = pattern_is_self(pat) ? self[si] : pairs[si][1];

			for (int pi = 0; pi < COUNT(small_params); pi++)
				for (int di = 0; di < COUNT(dims); di++) {
					int kv = kv_choices[(si + pi + di) % COUNT(kv_choices)];
					struct attn_problem p = problem(2, 4, kv, n, m, dims[di],
									pat, small_params[pi]);

					check_transcription(&p, seed++);
				}
		}
	}
}

/* Without params the variant takes its declared defaults: 32, 8, 64. */
static void test_sea_declares_the_catalogue_defaults(void **state)
{
	const struct variant_ops *v = sea();
	double values[VARIANT_MAX_PARAMS];

	(void)state;
	assert_int_equal(v->n_params, 3);
	assert_int_equal(variant_param_index(v, "bin"), 0);
	assert_int_equal(variant_param_index(v, "select"), 1);
	assert_int_equal(variant_param_index(v, "features"), 2);
	variant_default_params(v, values);
	assert_true(values[0] == 32 && values[1] == 8 && values[2] == 64);
	assert_int_equal(v->patterns, PATTERNS_ALL);
	assert_int_equal(v->extensions,
			 PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_NC) | PATTERN_BIT(ATTN_CC));
	assert_int_equal(v->flags, 0);

	/* n = 300 > 256 keys: the defaults select, so NULL and the defaults must agree */
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		struct attn_problem p = problem(1, 2, 1, 300, pattern_is_self(pat) ? 300 : 333,
						16, pat, values);
		struct tensors a, b;

		tensors_make(&a, &p, SEED + pat, 1.0);
		tensors_copy(&b, &a);
		run(v, &p, &a);
		p.params = NULL;
		run(v, &p, &b);
		assert_memory_equal(a.o, b.o, sizeof(float) * a.nq);
		tensors_release(&a);
		tensors_release(&b);
	}
}

/*
 * Keys in bins of w_b around a direction of their own (u_c + noise / 4, u_c ~ N(0, a²),
 * so bins differ in mass), queries N(0, a²), values N(0, 1).
 */
static void binned_inputs(struct tensors *t, const struct attn_problem *p, int wb, double a,
			  uint64_t seed)
{
	struct rng g = { seed };
	double *u = malloc(sizeof(double) * p->d);

	assert_non_null(u);
	tensors_make(t, p, seed, 1.0);
	fill_normal(&g, t->q, t->nq, a);
	for (size_t s = 0; s < (size_t)p->batch * p->kv_heads; s++)
		for (int j = 0; j < p->m; j++) {
			float *kj = t->k + (s * p->m + j) * p->d;

			if (j % wb == 0)
				for (int c = 0; c < p->d; c++)
					u[c] = a * rng_normal(&g);
			for (int c = 0; c < p->d; c++)
				kj[c] = (float)(u[c] + 0.25 * a * rng_normal(&g));
		}
	free(u);
}

/*
 * Share of rows whose output is, to 1e-4, the exact softmax over the n_sel bins of
 * largest true mass Σ_{j in bin, j < end} e^{s_ij} (ties: the smaller bin): the rows
 * whose chosen bins are the true top bins. Only rows with more candidates than n_sel
 * count (the others take every bin).
 */
static double share_of_true_top_bins(const struct attn_problem *p, const struct tensors *t)
{
	struct sea_params sp = params_of(p->params);
	int bins = (p->m + sp.wb - 1) / sp.wb, rows = 0, matched = 0;
	double *est = malloc(sizeof(double) * bins), *out = malloc(sizeof(double) * p->d);
	bool *chosen = malloc(sizeof(bool) * bins);

	assert_non_null(est);
	assert_non_null(out);
	assert_non_null(chosen);
	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			const float *qh = t->q + problem_q_offset(p, b, h);
			const float *kh = t->k + problem_kv_offset(p, b, h);
			const float *vh = t->v + problem_kv_offset(p, b, h);
			const float *oh = t->o + problem_q_offset(p, b, h);

			for (int i = 0; i < p->n; i++) {
				bool causal = p->pattern == ATTN_CS;
				int cand = causal ? i / sp.wb + 1 : bins, end = causal ? i + 1 : p->m;
				double diff = 0, norm = 0;

				for (int c = 0; c < cand; c++) {
					est[c] = 0;
					for (int j = c * sp.wb; j < end && j < (c + 1) * sp.wb; j++) {
						double s = 0;

						for (int x = 0; x < p->d; x++)
							s += (double)qh[(size_t)i * p->d + x] *
							     kh[(size_t)j * p->d + x];
						est[c] += exp(s / sqrt(p->d));
					}
				}
				choose(est, cand, sp.nsel, chosen);
				attend(qh + (size_t)i * p->d, kh, vh, p->d, sp.wb, end, chosen, out);
				for (int x = 0; x < p->d; x++) {
					double o = oh[(size_t)i * p->d + x];

					diff = fmax(diff, fabs(o - out[x]));
					norm = fmax(norm, fabs(out[x]));
				}
				if (cand <= sp.nsel)
					continue;
				rows++;
				matched += diff <= 1e-4 * norm;
			}
		}
	free(chosen);
	free(out);
	free(est);
	return (double)matched / rows;
}

/*
 * Section 12: with m = 4096 features and small inputs (a = 0.3), the chosen bins are the
 * true top bins by mass in most rows: 8 bins of 16 keys, 2 chosen, d = 16, keys grouped
 * by bin so that bin masses differ. Asserted: at least 75 % of the rows that have a
 * choice to make (more candidates than n_sel) choose exactly the true top bins (measured
 * 81 % ns, 89 % cs, 82 % nc, 86 % cc). With m = 8 fewer than half do (measured 12-36 %),
 * so the bar is one a poor estimator fails.
 */
static void test_sea_with_many_features_chooses_the_true_top_bins(void **state)
{
	/* the share asserted with m = 4096, and the share m = 8 must stay below */
	const double many = 0.75, few = 0.5;

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		int n = pattern_is_self(pat) ? 128 : 100;
		double params[3] = { 16, 2, 4096 };
		struct attn_problem p = problem(2, 2, 1, n, 128, 16, pat, params);
		struct tensors t;
		double share;

		binned_inputs(&t, &p, 16, 0.3, SEED + 5 + pat);
		run(sea(), &p, &t);
		share = share_of_true_top_bins(&p, &t);
		if (!(share >= many))
			print_error("%s m=4096: %.3f of rows chose the true top bins\n",
				    pattern_name(pat), share);
		assert_true(share >= many);
		params[2] = 8;
		run(sea(), &p, &t);
		share = share_of_true_top_bins(&p, &t);
		if (!(share < few))
			print_error("%s m=8: %.3f of rows chose the true top bins\n",
				    pattern_name(pat), share);
		assert_true(share < few);
		tensors_release(&t);
	}
}

/*
 * n_sel w_b >= M: every candidate bin is chosen, so every pattern is vanilla attention
 * (the fp64 oracle); n_sel w_b = M exactly, a short last bin, and one bin of all keys.
 */
static void test_sea_with_every_bin_chosen_is_vanilla(void **state)
{
	static const int shapes[][2] = { { 17, 17 }, { 63, 63 }, { 130, 130 }, { 17, 63 },
					 { 63, 17 }, { 40, 129 } };
	uint64_t seed = SEED + 100;

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++)
		for (int si = 0; si < COUNT(shapes); si++) {
			int n = shapes[si][0], m = shapes[si][1];
			/* n_sel w_b = m rounded up to w_b, exactly m when w_b divides it */
			double params[][3] = { { 4, (m + 3) / 4, 16 }, { 1, m, 8 },
					       { m, 1, 64 }, { 7, (m + 6) / 7 + 3, 5 } };

			if (pattern_is_self(pat) != (n == m))
				continue;
			for (int pi = 0; pi < COUNT(params); pi++)
				for (int di = 0; di < COUNT(dims); di++) {
					int kv = kv_choices[(si + pi + di) % COUNT(kv_choices)];
					struct attn_problem p = problem(2, 4, kv, n, m, dims[di], pat,
									params[pi]);
					struct tensors t;
					double *ref = reference_make(&t, &p, seed++);

					reference_attention(&p, t.q, t.k, t.v, ref);
					check_output(sea(), &p, &t, ref, TOLERANCE, " w_b=%g n_sel=%g",
						     params[pi][0], params[pi][1]);
				}
		}
}

/*
 * Every key 0, so every full bin has the same estimate: the n_sel smallest bins win. Values mark their bin (v_j = e_{bin}), so each row is 1/n_sel on the first n_sel
 * coordinates. cs rows whose own bin is incomplete (a smaller mass) and that have at
 * least n_sel full bins before them choose the same.
 */
static void test_sea_breaks_ties_toward_the_smaller_bin(void **state)
{
	const int wb = 5, nsel = 3, d = 8;
	static const enum attn_pattern patterns[] = { ATTN_NS, ATTN_CS, ATTN_NC, ATTN_CC };

	(void)state;
	for (int pi = 0; pi < COUNT(patterns); pi++) {
		enum attn_pattern pat = patterns[pi];
		/* nc: a short last bin (3 keys) of smaller mass */
		int n = 40, m = pattern_is_self(pat) ? 40 : 43;
		double params[3] = { wb, nsel, 16 };
		struct attn_problem p = problem(1, 2, 1, n, m, d, pat, params);
		struct tensors t;
		int checked = 0;

		tensors_make(&t, &p, SEED + 200 + pi, 1.0);
		/* k = 0: every p_r, h and score is exactly 0 whatever the summation order */
		for (int j = 0; j < m; j++)
			for (int c = 0; c < d; c++) {
				t.k[(size_t)j * d + c] = 0;
				t.v[(size_t)j * d + c] = c == j / wb;
			}
		run(sea(), &p, &t);
		for (int h = 0; h < 2; h++)
			for (int i = 0; i < n; i++) {
				const float *o = t.o + ((size_t)h * n + i) * d;

				if (pat == ATTN_CS && (i / wb < nsel || i % wb == wb - 1))
					continue;
				for (int c = 0; c < d; c++)
					assert_float_equal(o[c], c < nsel ? 1.0 / nsel : 0, 1e-6);
				checked++;
			}
		assert_true(checked >= 2 * 20);
		tensors_release(&t);
	}
}

/* Parameters under which rows choose among several bins at n = 63. */
static const double choosy_params[][3] = {
	{ 4, 3, 16 }, { 1, 2, 8 }, { 7, 2, 32 }, { 16, 2, 64 },
};

/* Largest change of rows <= t after perturbing rows > t (Q, K, V in cs; Q in cc; ns: Q, K, V). */
static double change_after_cut(const struct attn_problem *p, const struct tensors *a, int t)
{
	struct tensors b;
	struct rng g = { SEED + 7 * (uint64_t)t };
	double change;

	tensors_copy(&b, a);
	perturb_rows_after(&g, b.q, (size_t)p->batch * p->heads, p->n, p->d, t);
	if (p->pattern != ATTN_CC) {
		perturb_rows_after(&g, b.k, (size_t)p->batch * p->kv_heads, p->m, p->d, t);
		perturb_rows_after(&g, b.v, (size_t)p->batch * p->kv_heads, p->m, p->d, t);
	}
	run(sea(), p, &b);
	change = change_up_to(p, a->o, b.o, t);
	tensors_release(&b);
	return change;
}

/*
 * cs: changing Q, K, V after t moves no row <= t, cuts inside and on bin edges (the own
 * bin's estimate counts only keys <= i); cc: changing Q after t. As a control, the same
 * perturbation does move earlier rows in ns, where every key is a candidate.
 */
static void test_sea_ignores_later_rows_in_causal_patterns(void **state)
{
	static const int cuts[] = { 0, 3, 4, 6, 20, 27, 41, 61 };
	static const enum attn_pattern patterns[] = { ATTN_CS, ATTN_CC, ATTN_NS };

	(void)state;
	for (int pi = 0; pi < COUNT(patterns); pi++)
		for (int xi = 0; xi < COUNT(choosy_params); xi++) {
			enum attn_pattern pat = patterns[pi];
			struct attn_problem p = problem(2, 4, 2, 63, pat == ATTN_CC ? 50 : 63, 16,
							pat, choosy_params[xi]);
			struct tensors a;
			double most = 0;

			tensors_make(&a, &p, SEED + 300 + xi, 1.0);
			run(sea(), &p, &a);
			for (int ci = 0; ci < COUNT(cuts); ci++) {
				double change = change_after_cut(&p, &a, cuts[ci]);

				if (pat != ATTN_NS && !(change <= CAUSAL_TOLERANCE))
					print_error("sea %s w_b=%g t=%d: rows <= t moved by %g\n",
						    pattern_name(pat), choosy_params[xi][0], cuts[ci],
						    change);
				if (pat != ATTN_NS)
					assert_true(change <= CAUSAL_TOLERANCE);
				most = fmax(most, change);
			}
			if (pat == ATTN_NS)
				assert_true(most > 1e-2);
			tensors_release(&a);
		}
}

/* Grouped KV heads give what MHA gives with each KV head repeated, while rows choose. */
static void test_sea_gives_gqa_as_mha_with_repeated_kv(void **state)
{
	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++)
		for (int xi = 0; xi < COUNT(choosy_params); xi++)
			for (int kv = 1; kv <= 2; kv++) {
				int m = pattern_is_self(pat) ? 63 : 50;
				struct attn_problem gqa = problem(2, 4, kv, 63, m, 12, pat,
								  choosy_params[xi]);
				struct attn_problem mha = problem(2, 4, 4, 63, m, 12, pat,
								  choosy_params[xi]);
				size_t slice = (size_t)m * 12;
				struct tensors g, h;
				double err;

				tensors_make(&g, &gqa, SEED + 400 + kv, 1.0);
				tensors_make(&h, &mha, SEED, 1.0);
				memcpy(h.q, g.q, sizeof(float) * g.nq);
				for (int b = 0; b < 2; b++)
					for (int hd = 0; hd < 4; hd++) {
						size_t from = problem_kv_offset(&gqa, b, hd);
						size_t to = problem_kv_offset(&mha, b, hd);

						memcpy(h.k + to, g.k + from, sizeof(float) * slice);
						memcpy(h.v + to, g.v + from, sizeof(float) * slice);
					}
				run(sea(), &gqa, &g);
				run(sea(), &mha, &h);
				err = error_vs_float(g.o, h.o, g.nq);
				if (!(err <= GQA_TOLERANCE))
					print_error("sea %s kv=%d w_b=%g: GQA differs by %g\n",
						    pattern_name(pat), kv, choosy_params[xi][0], err);
				assert_true(err <= GQA_TOLERANCE);
				tensors_release(&g);
				tensors_release(&h);
			}
}

/*
 * The KV cache of every key and value (any bin may be chosen) plus the bin masses,
 * ceil(M / w_b) x m floats per KV head.
 */
static void test_sea_state_bytes_follow_the_formula(void **state)
{
	const struct variant_ops *v = sea();
	double params[3] = { 7, 2, 5 };
	struct attn_problem p = problem(2, 8, 2, 300, 300, 64, ATTN_CS, NULL);

	(void)state;
	assert_non_null(v->state_bytes);
	/* defaults: 10 bins of 32 (the last one 12 keys), 64 features */
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 2 * 300 * 64 * 4 + 2.0 * 2 * 10 * 64 * 4);
	p = problem(1, 4, 4, 17, 33, 8, ATTN_NC, params);
	assert_true(v->state_bytes(&p) == 2.0 * 1 * 4 * 33 * 8 * 4 + 1.0 * 4 * 5 * 5 * 4);
	p = problem(3, 4, 1, 64, 64, 16, ATTN_NS, params);
	assert_true(v->state_bytes(&p) == 2.0 * 3 * 1 * 64 * 16 * 4 + 3.0 * 1 * 10 * 5 * 4);
}

/*
 * Work and memory follow what it keeps: the workspace is far below one n x m score
 * matrix and grows about linearly with the length; the FLOPs at n = 4096 are a fraction
 * of exact attention's, and those of vanilla when every bin is chosen.
 */
static void test_sea_keeps_work_and_memory_to_its_selection(void **state)
{
	const struct variant_ops *v = sea();
	static const int lengths[] = { 512, 2048 };
	size_t peak[2];

	(void)state;
	for (int li = 0; li < 2; li++) {
		int n = lengths[li];
		struct attn_problem p = problem(1, 2, 1, n, n, 64, ATTN_NS, NULL);
		struct tensors t;
		size_t before;

		tensors_make(&t, &p, SEED, 1.0);
		before = memory_live_bytes();
		memory_reset_peak();
		run(v, &p, &t);
		peak[li] = memory_peak_bytes() - before;
		tensors_release(&t);
	}
	assert_true(peak[1] < sizeof(float) * 2048 * 2048 / 16);
	/* 4x the length: far less than the 16x of a score matrix */
	assert_true(peak[1] < 6 * peak[0]);

	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		struct attn_problem p = problem(1, 4, 2, 4096, 4096, 64, pat, NULL);
		double all[3] = { 32, 128, 64 };

		assert_true(v->flops(&p) > 0);
		assert_true(v->flops(&p) < exact_attention_flops(&p) / 4);
		p.params = all;
		/* the attention products of vanilla plus the estimator's */
		assert_true(v->flops(&p) > exact_attention_flops(&p));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sea_matches_an_fp64_transcription_on_awkward_shapes),
		cmocka_unit_test(test_sea_declares_the_catalogue_defaults),
		cmocka_unit_test(test_sea_with_many_features_chooses_the_true_top_bins),
		cmocka_unit_test(test_sea_with_every_bin_chosen_is_vanilla),
		cmocka_unit_test(test_sea_breaks_ties_toward_the_smaller_bin),
		cmocka_unit_test(test_sea_ignores_later_rows_in_causal_patterns),
		cmocka_unit_test(test_sea_gives_gqa_as_mha_with_repeated_kv),
		cmocka_unit_test(test_sea_state_bytes_follow_the_formula),
		cmocka_unit_test(test_sea_keeps_work_and_memory_to_its_selection),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
