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

#include "variant-test.h"
#include "random.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sea_matches_an_fp64_transcription_on_awkward_shapes),
		cmocka_unit_test(test_sea_declares_the_catalogue_defaults),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
