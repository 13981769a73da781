/*
 * test-based.c - the based variant (VARIANTS.md section 18) against straightforward fp64
 * transcriptions of the catalogue's equations, and the properties it lists: a window as
 * long as the sequence is softmax attention, no window is the quadratic kernel form with
 * 1 + t + t²/2, the shifted and unshifted forms agree; and causality, GQA, decoding,
 * state bytes, parameters and workspace.
 *
 * The transcription regenerates P from the plan generator (variants/random.h) as the
 * catalogue states the plan: the whole d x d Gaussian drawn column by column, its QR by
 * Givens rotations (the variant uses Gram-Schmidt on the first d' columns only), signs
 * fixed so that R's diagonal is positive, the first d' columns times √(d/d'). Then each
 * row is written out key by key: e^(s_ij) inside the window, 1 + t + t²/2 outside, one
 * sum for the normaliser.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <float.h>

#include "variant-test.h"

#include "common.h"
#include "random.h"

/* fp32 features, sgemm sums and exp2 against fp64 loops: the spec's transcription bound. */
#define TRANSCRIPTION_TOLERANCE 1e-5
/*
 * Inputs of scale 4-5 give scores near 100 whose fp32 rounding (a few 1e-6 absolute over
 * d = 64 products of size ~25) is exponentiated: relative weight errors of ~1e-5.
 */
#define LARGE_TOLERANCE 1e-4
/* Rows the causal mask hides may move visible rows only by fp32 reordering (spec). */
#define CAUSAL_TOLERANCE 1e-5
/* Two fp64 evaluations of one sum, shifted or not: only fp64 rounding apart. */
#define FP64_TOLERANCE 1e-12
/* fp32 against the fp64 softmax oracle: the spec's bound for exact attention. */
#define EXACT_TOLERANCE 1e-5

enum { P_FEATURE_DIM, P_WINDOW, P_COUNT };

static const double defaults[P_COUNT] = { 16, 64 };

static const enum attn_pattern all_patterns[] = { ATTN_NS, ATTN_CS, ATTN_NC, ATTN_CC };

static const struct variant_ops *based(void)
{
	return variant_must_find("based");
}

/* ---- the plan, regenerated ---- */

/*
 * Q of G = QR with diag(R) > 0 by Givens rotations; g (d x d, row-major) becomes R and q
 * (d x d, row-major) gets Q.
 */
static void givens_q(double *g, double *q, int d)
{
	double *qt = malloc(sizeof(double) * d * d);

	assert_non_null(qt);
	for (int i = 0; i < d; i++)
		for (int j = 0; j < d; j++)
			qt[(size_t)i * d + j] = i == j;
	/* zero column j from the bottom up, rotating rows i - 1 and i of R and of Qᵀ */
	for (int j = 0; j < d; j++)
		for (int i = d - 1; i > j; i--) {
			double a = g[(size_t)(i - 1) * d + j], b = g[(size_t)i * d + j];
			double r = hypot(a, b), c, s;

			if (r == 0)
				continue;
			c = a / r;
			s = b / r;
			for (int x = 0; x < d; x++) {
				double *m[2] = { g, qt };

				for (int k = 0; k < 2; k++) {
					double u = m[k][(size_t)(i - 1) * d + x];
					double v = m[k][(size_t)i * d + x];

					m[k][(size_t)(i - 1) * d + x] = c * u + s * v;
					m[k][(size_t)i * d + x] = -s * u + c * v;
				}
			}
		}
	/* Q = (Qᵀ)ᵀ, column j negated where R's diagonal came out negative */
	for (int i = 0; i < d; i++)
		for (int j = 0; j < d; j++)
			q[(size_t)i * d + j] = qt[(size_t)j * d + i] *
					       (g[(size_t)j * d + j] < 0 ? -1 : 1);
	free(qt);
}

/* d'_eff of the catalogue's [harness] rule: d' > d takes d columns. */
static int effective_dp(const double *params, int d)
{
	int dp = (int)params[P_FEATURE_DIM];

	return dp < d ? dp : d;
}

/*
 * P of query head h (d x dp, row-major): a d x d Gaussian from plan_rng_make(seed,
 * 1000 h), filled column by column, the first dp columns of its Q, times √(d/dp).
 * identity: the first dp columns of I instead (a wrong P, to see that P is seen).
 */
static void draw_p(uint64_t seed, int h, int d, int dp, bool identity, double *p)
{
	struct plan_rng rng = plan_rng_make(seed, 1000ull * (uint64_t)h);
	double *g = malloc(sizeof(double) * d * d), *q = malloc(sizeof(double) * d * d);

	assert_non_null(g);
	assert_non_null(q);
	for (int j = 0; j < d; j++)
		for (int i = 0; i < d; i++)
			g[(size_t)i * d + j] = plan_rng_normal(&rng);
	givens_q(g, q, d);
	for (int c = 0; c < d; c++)
		for (int a = 0; a < dp; a++)
			p[(size_t)c * dp + a] = (identity ? c == a : q[(size_t)c * d + a]) *
						sqrt((double)d / dp);
	free(g);
	free(q);
}

/* One P remembered by regenerate_p(). */
struct p_memo {
	uint64_t seed;
	int h, d, dp;
	bool identity;
	double *p;		/* d x dp, kept for the life of the program */
};

/* The P of draw_p(), remembered: the walks ask for the same few many times. */
static void regenerate_p(uint64_t seed, int h, int d, int dp, bool identity, double *p)
{
	static struct p_memo memo[64];
	static int used;
	int at;

	for (at = 0; at < used; at++)
		if (memo[at].seed == seed && memo[at].h == h && memo[at].d == d &&
		    memo[at].dp == dp && memo[at].identity == identity) {
			memcpy(p, memo[at].p, sizeof(double) * d * dp);
			return;
		}
	draw_p(seed, h, d, dp, identity, p);
	if (used == COUNT(memo))
		return;
	memo[used] = (struct p_memo){ seed, h, d, dp, identity, malloc(sizeof(double) * d * dp) };
	assert_non_null(memo[used].p);
	memcpy(memo[used].p, p, sizeof(double) * d * dp);
	used++;
}

/* ---- the fp64 transcriptions ---- */

struct transcription {
	const double *params;	/* feature_dim, window */
	bool shifted;		/* multiply every term by e^(-max(0, max window s)) */
	bool identity_p;	/* P from the identity, not the plan */
};

/* x' = Pᵀx of `rows` rows of x into xp (rows x dp). */
static void project(const double *p, const float *x, int rows, int d, int dp, double *xp)
{
	for (int i = 0; i < rows; i++)
		for (int a = 0; a < dp; a++) {
			double sum = 0;

			for (int c = 0; c < d; c++)
				sum += p[(size_t)c * dp + a] * x[(size_t)i * d + c];
			xp[(size_t)i * dp + a] = sum;
		}
}

/* Whether key j is in the window of row i: the catalogue's W_i. */
static bool in_window(enum attn_pattern pattern, long w, int i, int j)
{
	if (w < 0 || !pattern_is_self(pattern))
		return false;
	if (pattern == ATTN_CS)
		return j <= i && i - j <= w;
	return labs((long)i - j) <= w;
}

static bool visible(enum attn_pattern pattern, int i, int j)
{
	return pattern != ATTN_CS || j <= i;
}

static double dot64(const double *a, const double *b, int n)
{
	double s = 0;

	for (int x = 0; x < n; x++)
		s += a[x] * b[x];
	return s;
}

static double score(const float *q, const float *k, int d)
{
	double s = 0;

	for (int c = 0; c < d; c++)
		s += (double)q[c] * k[c];
	return s / sqrt((double)d);
}

/*
 * One slice, row by row: weights e^(s_ij) for j in W_i, 1 + t + t²/2 (t = q'·k'/√d) for
 * the other visible keys, both times e^(-m_i) when shifted; o_i = Σ weight v / Σ weight.
 * Returns the largest window score seen.
 */
static double transcribe_slice(const struct attn_problem *p, const struct transcription *t,
			       const double *pm, const float *q, const float *k, const float *v,
			       double *out)
{
	int d = p->d, dp = effective_dp(t->params, d);
	long w = (long)t->params[P_WINDOW];
	double *qp = malloc(sizeof(double) * p->n * dp), *kp = malloc(sizeof(double) * p->m * dp);
	double top = -INFINITY;

	assert_true(qp && kp);
	project(pm, q, p->n, d, dp, qp);
	project(pm, k, p->m, d, dp, kp);
	for (int i = 0; i < p->n; i++) {
		const float *qi = q + (size_t)i * d;
		double shift = 0, den = 0, *oi = out + (size_t)i * d;

		for (int j = 0; j < p->m; j++)
			if (in_window(p->pattern, w, i, j)) {
				double s = score(qi, k + (size_t)j * d, d);

				top = fmax(top, s);
				if (t->shifted)
					shift = fmax(shift, s);
			}
		for (int c = 0; c < d; c++)
			oi[c] = 0;
		for (int j = 0; j < p->m; j++) {
			double weight;

			if (!visible(p->pattern, i, j))
				continue;
			if (in_window(p->pattern, w, i, j)) {
				weight = exp(score(qi, k + (size_t)j * d, d) - shift);
			} else {
				double tt = dot64(qp + (size_t)i * dp, kp + (size_t)j * dp, dp) /
					    sqrt((double)d);

				weight = (1 + tt + tt * tt / 2) * exp(-shift);
			}
			den += weight;
			for (int c = 0; c < d; c++)
				oi[c] += weight * v[(size_t)j * d + c];
		}
		for (int c = 0; c < d; c++)
			oi[c] /= den;
	}
	free(qp);
	free(kp);
	return top;
}

/* The transcription of the whole problem; returns the largest window score. */
static double transcribe(const struct attn_problem *p, const struct transcription *t,
			 const float *q, const float *k, const float *v, double *out)
{
	int dp = effective_dp(t->params, p->d);
	double *pm = malloc(sizeof(double) * p->d * dp), top = -INFINITY;

	assert_non_null(pm);
	for (int h = 0; h < p->heads; h++) {
		regenerate_p(p->seed, h, p->d, dp, t->identity_p, pm);
		for (int b = 0; b < p->batch; b++) {
			size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);

			top = fmax(top, transcribe_slice(p, t, pm, q + qo, k + kvo, v + kvo,
							 out + qo));
		}
	}
	free(pm);
	return top;
}

/*
 * The catalogue's "naive quadratic kernel form", for based.window = -1 only:
 * o_i = Σ_j (1 + t + t²/2) v_j / Σ_j (1 + t + t²/2) over the keys row i may see.
 */
static void quadratic_kernel_form(const struct attn_problem *p, const double *params,
				  const float *q, const float *k, const float *v, double *out)
{
	int d = p->d, dp = effective_dp(params, d);
	double *pm = malloc(sizeof(double) * d * dp), *qp = malloc(sizeof(double) * dp);
	double *kp = malloc(sizeof(double) * p->m * dp);

	assert_true(pm && qp && kp);
	for (int h = 0; h < p->heads; h++) {
		regenerate_p(p->seed, h, d, dp, false, pm);
		for (int b = 0; b < p->batch; b++) {
			size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);

			project(pm, k + kvo, p->m, d, dp, kp);
			for (int i = 0; i < p->n; i++) {
				int keys = p->pattern == ATTN_CS ? i + 1 : p->m;
				double den = 0, *oi = out + qo + (size_t)i * d;

				project(pm, q + qo + (size_t)i * d, 1, d, dp, qp);
				for (int c = 0; c < d; c++)
					oi[c] = 0;
				for (int j = 0; j < keys; j++) {
					double tt = dot64(qp, kp + (size_t)j * dp, dp) /
						    sqrt((double)d);
					double kappa = 1 + tt + tt * tt / 2;

					den += kappa;
					for (int c = 0; c < d; c++)
						oi[c] += kappa * v[kvo + (size_t)j * d + c];
				}
				for (int c = 0; c < d; c++)
					oi[c] /= den;
			}
		}
	}
	free(pm);
	free(qp);
	free(kp);
}

/* The variant on a fresh draw of scale `scale` against the transcription. */
static double error_vs_transcription(const struct attn_problem *p,
				     const struct transcription *t, uint64_t seed, double scale,
				     double *top)
{
	struct tensors x;
	double *ref, err, mx;

	tensors_make(&x, p, seed, scale);
	ref = malloc(sizeof(double) * x.nq);
	assert_non_null(ref);
	mx = transcribe(p, t, x.q, x.k, x.v, ref);
	if (top)
		*top = mx;
	run(based(), p, &x);
	for (size_t i = 0; i < x.nq; i++)
		assert_true(isfinite(x.o[i]));
	err = error_vs_double(x.o, ref, x.nq);
	free(ref);
	tensors_release(&x);
	return err;
}

static void check_transcription(const struct attn_problem *p, const double *params,
				uint64_t seed)
{
	struct transcription t = { .params = params };

	check_error(based(), p, error_vs_transcription(p, &t, seed, 1.0, NULL),
		    TRANSCRIPTION_TOLERANCE, " feature_dim=%g window=%g", params[P_FEATURE_DIM],
		    params[P_WINDOW]);
}

/* ---- against the transcription ---- */

/*
 * Every awkward shape of every pattern (sizes 1, 17, 63, 257; n != m across; d 8, 64,
 * 12; KV heads 4, 2, 1) at the defaults: at 257 rows the window of 64 leaves Taylor keys.
 */
static void test_based_matches_an_fp64_transcription_on_awkward_shapes(void **state)
{
	uint64_t seed = SEED;

	(void)state;
	for (int pi = 0; pi < COUNT(all_patterns); pi++) {
		struct shape_walk w = { 0 };
		struct attn_problem p;

		while (shape_walk_next(&w, all_patterns[pi], defaults, &p))
			check_transcription(&p, defaults, seed++);
	}
}

/*
 * Windows of one key (the token alone), two, a few, near and past a chunk, longer than
 * the sequence, none; d' of one, below d, equal to or above it (then min(d', d)).
 */
static void test_based_matches_the_transcription_for_other_parameters(void **state)
{
	static const double sets[][P_COUNT] = {
		{ 16, 0 }, { 16, 1 }, { 4, 5 }, { 1, 17 }, { 64, 40 }, { 3, 63 }, { 8, 65 },
		{ 16, 300 }, { 5, -1 },
	};
	/* 130 rows: two whole chunks and a partial one */
	static const int shapes[][2] = { { 17, 17 }, { 130, 130 }, { 63, 17 }, { 17, 130 } };
	uint64_t seed = SEED + 100;

	(void)state;
	for (int si = 0; si < COUNT(sets); si++)
		for (int pi = 0; pi < COUNT(all_patterns); pi++)
			for (int sh = 0; sh < COUNT(shapes); sh++)
				for (int di = 0; di < COUNT(dims); di++) {
					enum attn_pattern pat = all_patterns[pi];
					int n = shapes[sh][0], m = shapes[sh][1];
					int kv = kv_choices[(si + sh + di) % COUNT(kv_choices)];
					struct attn_problem p = problem(2, 4, kv, n, m, dims[di],
									pat, sets[si]);

					if (pattern_is_self(pat) != (n == m))
						continue;
					/* cross patterns have no window: one window is enough */
					if (!pattern_is_self(pat) && si % 3)
						continue;
					check_transcription(&p, sets[si], seed++);
				}
}

/*
 * The match above sees P: with the first d' columns of the identity in place of the
 * plan's orthonormal ones, the transcription no longer matches (d' < d).
 */
static void test_based_differs_from_a_transcription_with_another_p(void **state)
{
	static const double params[P_COUNT] = { 16, 5 };
	struct transcription t = { .params = params, .identity_p = true };

	(void)state;
	for (int pi = 0; pi < COUNT(all_patterns); pi++) {
		enum attn_pattern pat = all_patterns[pi];
		struct attn_problem p = problem(1, 2, 2, 130, pattern_is_self(pat) ? 130 : 70, 64,
						pat, params);

		assert_true(error_vs_transcription(&p, &t, SEED + pi, 1.0, NULL) > 1e-3);
	}
}

/* ---- the catalogue's properties ---- */

/*
 * w >= N: every key is in the window (ns from w = N - 1, cs from w = N - 1 too, since
 * row i looks back i <= N - 1 keys), so based is softmax attention: the fp64 oracle.
 */
static void test_based_with_a_whole_sequence_window_is_vanilla(void **state)
{
	static const enum attn_pattern self[] = { ATTN_NS, ATTN_CS };
	uint64_t seed = SEED + 200;

	(void)state;
	for (int pi = 0; pi < COUNT(self); pi++)
		for (int si = 0; si < COUNT(sizes); si++)
			for (int di = 0; di < COUNT(dims); di++) {
				int n = sizes[si];
				/* just long enough, or far longer, in turn */
				double params[P_COUNT] = { 16, (si + di) % 2 ? 1048576 : n - 1 };
				int kv = kv_choices[(si + di) % COUNT(kv_choices)];
				struct attn_problem p = problem(2, 4, kv, n, n, dims[di], self[pi],
								params);
				struct tensors t;
				double *ref = reference_make(&t, &p, seed++);

				reference_attention(&p, t.q, t.k, t.v, ref);
				check_output(based(), &p, &t, ref, EXACT_TOLERANCE,
					     " window=%g (vanilla)", params[P_WINDOW]);
			}
}

/* One key short of the sequence, the farthest key is a Taylor key: no longer vanilla. */
static void test_based_with_a_window_one_short_is_not_vanilla(void **state)
{
	static const enum attn_pattern self[] = { ATTN_NS, ATTN_CS };

	(void)state;
	for (int pi = 0; pi < COUNT(self); pi++) {
		/* ns: rows 0 and n - 1 are n - 1 apart; cs: row n - 1 looks back n - 1 */
		double params[P_COUNT] = { 16, 15 };
		struct attn_problem p = problem(1, 2, 2, 17, 17, 8, self[pi], params);
		struct tensors t;
		double *ref = reference_make(&t, &p, SEED + 300 + pi);
		double worst = 0;

		reference_attention(&p, t.q, t.k, t.v, ref);
		run(based(), &p, &t);
		for (size_t x = 0; x < t.nq; x++)
			worst = fmax(worst, fabs(t.o[x] - ref[x]));
		assert_true(worst > 1e-4);
		free(ref);
		tensors_release(&t);
	}
}

/* based.window = -1: the naive quadratic kernel form with 1 + t + t²/2, every pattern. */
static void test_based_without_a_window_is_the_quadratic_kernel_form(void **state)
{
	static const double sets[][P_COUNT] = { { 16, -1 }, { 3, -1 } };
	uint64_t seed = SEED + 400;

	(void)state;
	for (int si = 0; si < COUNT(sets); si++)
		for (int pi = 0; pi < COUNT(all_patterns); pi++) {
			enum attn_pattern pat = all_patterns[pi];
			struct shape_walk w = { 0 };
			struct attn_problem p;

			while (shape_walk_next(&w, pat, sets[si], &p)) {
				struct tensors t;
				double *ref;

				/* one KV grouping per shape keeps the walk short */
				if (w.kv != (w.a + w.b + w.di + si) % COUNT(kv_choices))
					continue;
				ref = reference_make(&t, &p, seed++);
				quadratic_kernel_form(&p, sets[si], t.q, t.k, t.v, ref);
				check_output(based(), &p, &t, ref, TRANSCRIPTION_TOLERANCE,
					     " feature_dim=%g window=-1", sets[si][P_FEATURE_DIM]);
			}
		}
}

/* The unshifted fp64 transcription of a fresh draw against the shifted one. */
static double shifted_vs_unshifted(const struct attn_problem *p, const double *params,
				   uint64_t seed, double scale)
{
	struct transcription plain = { .params = params };
	struct transcription shifted = { .params = params, .shifted = true };
	struct tensors x;
	double *a, *b, err;

	tensors_make(&x, p, seed, scale);
	a = malloc(sizeof(double) * x.nq);
	b = malloc(sizeof(double) * x.nq);
	assert_true(a && b);
	transcribe(p, &plain, x.q, x.k, x.v, a);
	transcribe(p, &shifted, x.q, x.k, x.v, b);
	err = 0;
	for (size_t i = 0; i < x.nq; i++)
		err = fmax(err, fabs(a[i] - b[i]) / (1 + fabs(a[i])));
	free(a);
	free(b);
	tensors_release(&x);
	return err;
}

/* In fp64, where nothing overflows, the shift m_i cancels: both forms agree. */
static void test_based_shifted_and_unshifted_forms_agree_in_fp64(void **state)
{
	static const double scales[] = { 1, 4 };
	static const double params[P_COUNT] = { 16, 5 };
	uint64_t seed = SEED + 500;

	(void)state;
	for (int pi = 0; pi < COUNT(all_patterns); pi++)
		for (int si = 0; si < COUNT(scales); si++)
			for (int di = 0; di < COUNT(dims); di++) {
				enum attn_pattern pat = all_patterns[pi];
				struct attn_problem p = problem(1, 2, 1, 63,
								pattern_is_self(pat) ? 63 : 40,
								dims[di], pat, params);

				assert_true(shifted_vs_unshifted(&p, params, seed++, scales[si]) <=
					    FP64_TOLERANCE);
			}
}

/*
 * Large-norm inputs (scale 4 and 5, d = 64): window scores beyond log(FLT_MAX), where an
 * unshifted fp32 e^s overflows; the variant (shifted) stays finite and on the unshifted
 * fp64 transcription.
 */
static void test_based_stays_finite_and_matches_fp64_for_large_norm_inputs(void **state)
{
	static const double scales[] = { 4, 5 };
	static const double sets[][P_COUNT] = { { 16, 64 }, { 16, 5 }, { 4, 0 } };
	uint64_t seed = SEED + 600;
	double highest = 0;

	(void)state;
	for (int si = 0; si < COUNT(sets); si++)
		for (int pi = 0; pi < COUNT(all_patterns); pi++)
			for (int xi = 0; xi < COUNT(scales); xi++) {
				enum attn_pattern pat = all_patterns[pi];
				struct transcription t = { .params = sets[si] };
				struct attn_problem p = problem(1, 2, 2, 257,
								pattern_is_self(pat) ? 257 : 63,
								64, pat, sets[si]);
				double top = 0, err;

				err = error_vs_transcription(&p, &t, seed++, scales[xi], &top);
				check_error(based(), &p, err, LARGE_TOLERANCE,
					    " scale=%g window=%g", scales[xi], sets[si][P_WINDOW]);
				if (pattern_is_self(pat))
					highest = fmax(highest, top);
			}
	/* the shift was needed: some window score would overflow e^s in fp32 */
	assert_true(highest > log(FLT_MAX));
}

/* ---- causality, GQA, the plan ---- */

/*
 * cs changes Q, K, V rows after t, cc only Q rows; returns the largest relative move of
 * rows <= t over the cuts.
 */
static double causal_leak(enum attn_pattern pattern, const double *params)
{
	static const int cuts[] = { 0, 6, 20, 41, 64, 100 };
	struct attn_problem p = problem(2, 4, 2, 130, pattern == ATTN_NC || pattern == ATTN_CC ?
					70 : 130, 16, pattern, params);
	struct tensors a;
	double worst = 0;

	tensors_make(&a, &p, SEED + pattern, 1.0);
	run(based(), &p, &a);
	for (int ci = 0; ci < COUNT(cuts); ci++) {
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
		run(based(), &p, &b);
		worst = fmax(worst, change_up_to(&p, a.o, b.o, cuts[ci]));
		tensors_release(&b);
	}
	tensors_release(&a);
	return worst;
}

static void test_based_ignores_later_rows_in_cs_and_cc(void **state)
{
	static const double sets[][P_COUNT] = {
		{ 16, 64 }, { 16, 0 }, { 4, 5 }, { 16, -1 }, { 8, 20 }, { 16, 200 },
	};

	(void)state;
	for (int si = 0; si < COUNT(sets); si++) {
		assert_true(causal_leak(ATTN_CS, sets[si]) <= CAUSAL_TOLERANCE);
		assert_true(causal_leak(ATTN_CC, sets[si]) <= CAUSAL_TOLERANCE);
	}
}

/* The same check catches a leak: ns sees later rows through its window and Taylor keys. */
static void test_based_ns_sees_later_rows(void **state)
{
	static const double sets[][P_COUNT] = { { 16, 64 }, { 16, 0 }, { 16, -1 } };

	(void)state;
	for (int si = 0; si < COUNT(sets); si++)
		assert_true(causal_leak(ATTN_NS, sets[si]) > 1e-3);
}

/* Grouped KV heads do the very arithmetic of MHA with K/V repeated, bit for bit. */
static void test_based_gives_gqa_as_mha_bit_for_bit(void **state)
{
	static const double sets[][P_COUNT] = { { 16, 64 }, { 16, 20 }, { 4, -1 } };
	static const int gqa_dims[] = { 12, 64 };
	uint64_t seed = SEED + 700;

	(void)state;
	for (int si = 0; si < COUNT(sets); si++)
		for (int pi = 0; pi < COUNT(all_patterns); pi++)
			for (int kv = 1; kv <= 2; kv++) {
				enum attn_pattern pat = all_patterns[pi];
				int d = gqa_dims[(si + pi + kv) % COUNT(gqa_dims)];
				struct attn_problem p = problem(2, 4, kv, 130,
								pattern_is_self(pat) ? 130 : 47, d,
								pat, sets[si]);

				check_gqa_is_mha_bit_for_bit(based(), &p, seed++);
			}
}

/*
 * P belongs to the query head: two query heads on one KV head with equal queries differ
 * once d' < d (with d' = d, P Pᵀ = I and t = s whatever P is).
 */
static void test_based_draws_p_per_query_head(void **state)
{
	static const double params[P_COUNT] = { 16, 5 };

	(void)state;
	for (int pi = 0; pi < COUNT(all_patterns); pi++) {
		enum attn_pattern pat = all_patterns[pi];
		struct attn_problem p = problem(1, 2, 1, 70, pattern_is_self(pat) ? 70 : 40, 64,
						pat, params);
		struct tensors t;

		tensors_make(&t, &p, SEED, 1.0);
		memcpy(t.q + problem_q_offset(&p, 0, 1), t.q, sizeof(float) * 70 * 64);
		run(based(), &p, &t);
		assert_memory_not_equal(t.o, t.o + problem_q_offset(&p, 0, 1),
					sizeof(float) * 70 * 64);
		tensors_release(&t);
	}
}

/* The plan follows the seed: another seed, another P, another output. */
static void test_based_draws_p_from_the_seed(void **state)
{
	static const double params[P_COUNT] = { 16, 5 };
	struct attn_problem p = problem(1, 1, 1, 70, 70, 64, ATTN_CS, params);
	struct tensors a, b;

	(void)state;
	tensors_make(&a, &p, SEED, 1.0);
	tensors_copy(&b, &a);
	run(based(), &p, &a);
	p.seed++;
	run(based(), &p, &b);
	assert_memory_not_equal(a.o, b.o, sizeof(float) * a.nq);
	tensors_release(&a);
	tensors_release(&b);
}

/* [harness] d' > d is d' = d: 12 columns of a 12 x 12 Q, whatever d' asks more. */
static void test_based_feature_dim_above_d_is_d(void **state)
{
	static const double at_d[P_COUNT] = { 12, 5 }, above[P_COUNT] = { 100, 5 };

	(void)state;
	for (int pi = 0; pi < COUNT(all_patterns); pi++) {
		enum attn_pattern pat = all_patterns[pi];
		struct attn_problem p = problem(1, 2, 1, 130, pattern_is_self(pat) ? 130 : 40, 12,
						pat, at_d);
		struct tensors a, b;

		tensors_make(&a, &p, SEED + pi, 1.0);
		tensors_copy(&b, &a);
		run(based(), &p, &a);
		p.params = above;
		run(based(), &p, &b);
		assert_memory_equal(a.o, b.o, sizeof(float) * a.nq);
		tensors_release(&a);
		tensors_release(&b);
	}
}

/* ---- decoding ---- */

/*
 * Every decode step equals its row of the causal forward: windows of the token alone,
 * a few keys, the default, past the capacity, none; d' below, at and above d.
 */
static void test_based_decoding_matches_its_causal_forward(void **state)
{
	static const double sets[][P_COUNT] = {
		{ 16, 64 }, { 16, 0 }, { 4, 5 }, { 16, -1 }, { 32, 7 }, { 16, 200 },
	};
	static const int decode_sizes[] = { 1, 17, 63, 130 };
	uint64_t seed = SEED + 800;

	(void)state;
	for (int si = 0; si < COUNT(sets); si++)
		for (int ni = 0; ni < COUNT(decode_sizes); ni++)
			for (int di = 0; di < COUNT(dims); di++) {
				int n = decode_sizes[ni];
				int kv = kv_choices[(si + ni + di) % COUNT(kv_choices)];
				struct attn_problem p = problem(2, 4, kv, n, n, dims[di], ATTN_CS,
								sets[si]);

				/* d = 12 (the odd one) at half the shapes keeps the test short */
				if (dims[di] == 12 && (si + ni) % 2)
					continue;

				check_decode(based(), &p, seed++);
			}
}

static void test_based_decoding_refuses_other_patterns(void **state)
{
	size_t live = memory_live_bytes();

	(void)state;
	for (int pi = 0; pi < COUNT(all_patterns); pi++) {
		enum attn_pattern pat = all_patterns[pi];
		struct attn_problem p = problem(1, 2, 2, 16, pattern_is_self(pat) ? 16 : 20, 8,
						pat, defaults);
		void *dec = &dec;

		if (pat == ATTN_CS)
			continue;
		assert_int_equal(based()->decode_init(&p, &dec), -ENOTSUP);
		assert_null(dec);
	}
	assert_int_equal(memory_live_bytes(), live);
}

/* The decoder holds the Taylor states and a ring of w + 1 positions: fixed in length. */
static void test_based_decoding_state_does_not_grow_with_the_sequence(void **state)
{
	static const double params[P_COUNT] = { 4, 8 };
	struct attn_problem shortp = problem(1, 4, 2, 64, 64, 16, ATTN_CS, params);
	struct attn_problem longp = problem(1, 4, 2, 1024, 1024, 16, ATTN_CS, params);
	size_t short_peak, long_peak;

	(void)state;
	short_peak = decode_peak(based(), &shortp);
	long_peak = decode_peak(based(), &longp);
	assert_int_equal(short_peak, long_peak);
	/* at least what state_bytes counts */
	assert_true(short_peak >= based()->state_bytes(&shortp));
}

/* ---- state, FLOPs, parameters, workspace ---- */

static void test_based_state_bytes_follow_the_formula(void **state)
{
	static const double none[P_COUNT] = { 4, -1 }, wide[P_COUNT] = { 100, 5000 };
	/* f = 1 + 16 + 256 at the defaults with d >= 16 */
	const double f16 = 273, f4 = 21, f12 = 157;
	struct attn_problem p = problem(2, 8, 2, 300, 300, 64, ATTN_CS, NULL);
	const struct variant_ops *v = based();

	(void)state;
	/* per query head f d + f floats; per KV head w + 1 (cs) or 2w + 1 (ns) positions */
	assert_true(v->state_bytes(&p) == 2.0 * 8 * (f16 * 64 + f16) * 4 +
					  2.0 * 2 * 2 * 65 * 64 * 4);
	p.pattern = ATTN_NS;
	assert_true(v->state_bytes(&p) == 2.0 * 8 * (f16 * 64 + f16) * 4 +
					  2.0 * 2 * 2 * 129 * 64 * 4);
	/* a window past the sequence holds the sequence; d' = 100 > 12 is 12 */
	p = problem(1, 4, 1, 40, 40, 12, ATTN_CS, wide);
	assert_true(v->state_bytes(&p) == 1.0 * 4 * (f12 * 12 + f12) * 4 +
					  2.0 * 1 * 1 * 40 * 12 * 4);
	p.pattern = ATTN_NS;
	assert_true(v->state_bytes(&p) == 1.0 * 4 * (f12 * 12 + f12) * 4 +
					  2.0 * 1 * 1 * 40 * 12 * 4);
	/* no window, or a cross pattern: the Taylor state alone */
	p = problem(3, 4, 2, 50, 50, 16, ATTN_CS, none);
	assert_true(v->state_bytes(&p) == 3.0 * 4 * (f4 * 16 + f4) * 4);
	p = problem(3, 4, 2, 17, 33, 16, ATTN_NC, NULL);
	assert_true(v->state_bytes(&p) == 3.0 * 4 * (f16 * 16 + f16) * 4);
	p.pattern = ATTN_CC;
	assert_true(v->state_bytes(&p) == 3.0 * 4 * (f16 * 16 + f16) * 4);
}

/*
 * cs work is linear in the sequence: eight times the rows, eight times the FLOPs, a
 * little more as the first w + 1 rows have no Taylor keys (the brief allows 9x in time).
 */
static void test_based_flops_grow_linearly_in_cs(void **state)
{
	struct attn_problem shortp = problem(1, 8, 8, 4096, 4096, 64, ATTN_CS, NULL);
	struct attn_problem longp = problem(1, 8, 8, 32768, 32768, 64, ATTN_CS, NULL);
	double ratio = based()->flops(&longp) / based()->flops(&shortp);

	(void)state;
	assert_true(ratio > 7.9 && ratio < 8.2);
	/* and far below exact attention's at 32768 */
	assert_true(based()->flops(&longp) < exact_attention_flops(&longp) / 10);
}

/* All four patterns run (ns, nc, cc are the harness's); bad parameters do not. */
static void test_based_supports_every_pattern_and_rejects_bad_parameters(void **state)
{
	static const double bad[][P_COUNT] = {
		{ 0, 64 }, { 129, 64 }, { 16.5, 64 }, { 16, -2 }, { 16, 2.5 }, { 16, 1048577 },
	};
	const struct variant_ops *v = based();

	(void)state;
	assert_string_equal(v->family, "hybrid");
	assert_int_equal(v->patterns, PATTERNS_ALL);
	assert_int_equal(v->extensions,
			 PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_NC) | PATTERN_BIT(ATTN_CC));
	assert_int_equal(v->flags, 0);
	assert_int_equal(v->n_params, P_COUNT);
	assert_int_equal(variant_param_index(v, "feature_dim"), P_FEATURE_DIM);
	assert_int_equal(variant_param_index(v, "window"), P_WINDOW);
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
static void test_based_uses_the_defaults_without_params(void **state)
{
	(void)state;
	for (int pi = 0; pi < COUNT(all_patterns); pi++) {
		enum attn_pattern pat = all_patterns[pi];
		struct attn_problem p = problem(2, 4, 2, 130, pattern_is_self(pat) ? 130 : 40, 64,
						pat, NULL);
		struct tensors a, b;

		tensors_make(&a, &p, SEED, 1.0);
		tensors_copy(&b, &a);
		run(based(), &p, &a);
		p.params = defaults;
		run(based(), &p, &b);
		assert_memory_equal(a.o, b.o, sizeof(float) * a.nq);
		tensors_release(&a);
		tensors_release(&b);
	}
}

/* Workspace of one forward pass at n rows (n keys across). */
static size_t forward_peak(enum attn_pattern pat, int n)
{
	struct attn_problem p = problem(1, 2, 2, n, n, 32, pat, defaults);
	struct tensors t;
	size_t before, peak;

	tensors_make(&t, &p, SEED, 1.0);
	before = memory_live_bytes();
	memory_reset_peak();
	run(based(), &p, &t);
	peak = memory_peak_bytes() - before;
	tensors_release(&t);
	return peak;
}

/*
 * By chunks and tiles, the workspace does not grow with the sequence in cs, nc and cc;
 * ns keeps n Taylor denominators per thread for its sweep from the end, and no more.
 */
static void test_based_workspace_does_not_grow_with_the_sequence(void **state)
{
	static const enum attn_pattern fixed[] = { ATTN_CS, ATTN_NC, ATTN_CC };
	const int short_n = 128, long_n = 2048;

	(void)state;
	for (int pi = 0; pi < COUNT(fixed); pi++) {
		size_t a = forward_peak(fixed[pi], short_n), b = forward_peak(fixed[pi], long_n);

		assert_true(a > 0);
		assert_int_equal(a, b);
	}
	assert_int_equal(forward_peak(ATTN_NS, long_n) - forward_peak(ATTN_NS, short_n),
			 (size_t)max_threads() * (long_n - short_n) * sizeof(float));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_based_matches_an_fp64_transcription_on_awkward_shapes),
		cmocka_unit_test(test_based_matches_the_transcription_for_other_parameters),
		cmocka_unit_test(test_based_differs_from_a_transcription_with_another_p),
		cmocka_unit_test(test_based_with_a_whole_sequence_window_is_vanilla),
		cmocka_unit_test(test_based_with_a_window_one_short_is_not_vanilla),
		cmocka_unit_test(test_based_without_a_window_is_the_quadratic_kernel_form),
		cmocka_unit_test(test_based_shifted_and_unshifted_forms_agree_in_fp64),
		cmocka_unit_test(test_based_stays_finite_and_matches_fp64_for_large_norm_inputs),
		cmocka_unit_test(test_based_ignores_later_rows_in_cs_and_cc),
		cmocka_unit_test(test_based_ns_sees_later_rows),
		cmocka_unit_test(test_based_gives_gqa_as_mha_bit_for_bit),
		cmocka_unit_test(test_based_draws_p_per_query_head),
		cmocka_unit_test(test_based_draws_p_from_the_seed),
		cmocka_unit_test(test_based_feature_dim_above_d_is_d),
		cmocka_unit_test(test_based_decoding_matches_its_causal_forward),
		cmocka_unit_test(test_based_decoding_refuses_other_patterns),
		cmocka_unit_test(test_based_decoding_state_does_not_grow_with_the_sequence),
		cmocka_unit_test(test_based_state_bytes_follow_the_formula),
		cmocka_unit_test(test_based_flops_grow_linearly_in_cs),
		cmocka_unit_test(test_based_supports_every_pattern_and_rejects_bad_parameters),
		cmocka_unit_test(test_based_uses_the_defaults_without_params),
		cmocka_unit_test(test_based_workspace_does_not_grow_with_the_sequence),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
