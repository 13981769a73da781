/*
 * test-longshort.c - the Long-Short variant against a double-precision transcription of
 * VARIANTS.md section 27 (ns landmarks and blocked window, cs chunk summaries and causal
 * window, DualLN), written as plain loops; its reductions (rank 0 without LayerNorm is a
 * blocked or causal window softmax), causality for several window/chunk/rank settings,
 * what the window hides, CAB's per-pattern defaults, state bytes and refused patterns.
 *
 * The random projections are part of the plan the variant documents: W_p and u of query
 * head h are d x rank float32, drawn row by row as plan_rng_normal() / sqrt(d) from
 * plan_rng_make(seed, 1000 h + 1) in ns and 1000 h + 2 in cs. They are regenerated here
 * from variants/random.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "variant-test.h"
#include "random.h"

/* fp32 kernels against the fp64 transcription: the catalogue's bound. */
#define TOLERANCE 1e-5
/* torch.nn.LayerNorm's eps, as the variant documents. */
#define LN_EPS 1e-5

/* The variant's parameter order: window, rank, chunk, dual_ln. */
enum { P_WINDOW, P_RANK, P_CHUNK, P_DUAL_LN, P_COUNT };

static const struct variant_ops *variant(void)
{
	const struct variant_ops *v = variant_must_find("longshort");

	assert_int_equal(v->n_params, P_COUNT);
	assert_int_equal(variant_param_index(v, "window"), P_WINDOW);
	assert_int_equal(variant_param_index(v, "rank"), P_RANK);
	assert_int_equal(variant_param_index(v, "chunk"), P_CHUNK);
	assert_int_equal(variant_param_index(v, "dual_ln"), P_DUAL_LN);
	return v;
}

/* The settings a problem runs with, -1 replaced by CAB's default for the pattern. */
struct setting {
	int w, rank, chunk;
	bool dual_ln;
};

static struct setting resolve(const struct attn_problem *p)
{
	bool cs = p->pattern == ATTN_CS;
	struct setting s = {
		.w = p->params[P_WINDOW] < 0 ? (cs ? 256 : 15) : (int)p->params[P_WINDOW],
		.rank = p->params[P_RANK] < 0 ? (cs ? 1 : 16) : (int)p->params[P_RANK],
		.chunk = (int)p->params[P_CHUNK],
		.dual_ln = p->params[P_DUAL_LN] != 0,
	};

	return s;
}

/* ---- the fp64 transcription ---- */

static void layer_norm(const double *x, int d, double *y)
{
	double mean = 0, var = 0;

	for (int c = 0; c < d; c++)
		mean += x[c];
	mean /= d;
	for (int c = 0; c < d; c++)
		var += (x[c] - mean) * (x[c] - mean);
	var /= d;
	for (int c = 0; c < d; c++)
		y[c] = (x[c] - mean) / sqrt(var + LN_EPS);
}

/* W (d x r) of query head h, as the variant documents its plan. */
static void projection(const struct attn_problem *p, int h, int r, double *w)
{
	struct plan_rng g = plan_rng_make(p->seed, 1000 * (uint64_t)h +
					  (p->pattern == ATTN_CS ? 2 : 1));

	for (int i = 0; i < p->d * r; i++)
		w[i] = (float)(plan_rng_normal(&g) / sqrt((double)p->d));
}

static double dotd(const double *a, const double *b, int d)
{
	double s = 0;

	for (int c = 0; c < d; c++)
		s += a[c] * b[c];
	return s;
}

/*
 * o = Σ softmax(scores) vals over `count` candidates; scores already scaled, vals[j] a
 * row of d. Nothing to attend gives 0.
 */
static void softmax_mix(const double *scores, const double *const *vals, int count, int d,
			double *o)
{
	double max = -INFINITY, sum = 0;

	for (int c = 0; c < d; c++)
		o[c] = 0;
	for (int j = 0; j < count; j++)
		max = fmax(max, scores[j]);
	for (int j = 0; j < count; j++) {
		double e = exp(scores[j] - max);

		sum += e;
		for (int c = 0; c < d; c++)
			o[c] += e * vals[j][c];
	}
	for (int c = 0; c < d && sum > 0; c++)
		o[c] /= sum;
}

/* One slice's K, V in double (raw) and normalised (or raw without dual_ln). */
struct slice {
	int n, d;
	double *k, *v, *kl, *vl;
};

static void slice_load(struct slice *s, const struct attn_problem *p, const float *k,
		       const float *v, int b, int h, bool dual_ln)
{
	size_t kvo = problem_kv_offset(p, b, h), count = (size_t)p->n * p->d;

	s->n = p->n;
	s->d = p->d;
	s->k = malloc(sizeof(double) * count);
	s->v = malloc(sizeof(double) * count);
	s->kl = malloc(sizeof(double) * count);
	s->vl = malloc(sizeof(double) * count);
	assert_true(s->k && s->v && s->kl && s->vl);
	for (size_t i = 0; i < count; i++) {
		s->k[i] = k[kvo + i];
		s->v[i] = v[kvo + i];
		s->kl[i] = s->k[i];
		s->vl[i] = s->v[i];
	}
	if (dual_ln)
		for (int j = 0; j < p->n; j++) {
			layer_norm(s->k + (size_t)j * p->d, p->d, s->kl + (size_t)j * p->d);
			layer_norm(s->v + (size_t)j * p->d, p->d, s->vl + (size_t)j * p->d);
		}
}

static void slice_release(struct slice *s)
{
	free(s->k);
	free(s->v);
	free(s->kl);
	free(s->vl);
}

/*
 * Global vectors mixed from keys lo..hi-1 of a slice with weights softmax_j(k_j·w_s)
 * (column s of W, raw k, no scale): gk[s] = Σ a_s(j) kl_j, gv[s] likewise, then LN.
 */
static void mix_globals(const struct slice *s, const double *w, int r, int lo, int hi,
			bool dual_ln, double *gk, double *gv)
{
	int d = s->d;

	for (int col = 0; col < r; col++) {
		double max = -INFINITY, sum = 0;
		double *a = malloc(sizeof(double) * (hi - lo));

		assert_non_null(a);
		for (int j = lo; j < hi; j++) {
			double pi = 0;

			for (int c = 0; c < d; c++)
				pi += s->k[(size_t)j * d + c] * w[(size_t)c * r + col];
			a[j - lo] = pi;
			max = fmax(max, pi);
		}
		for (int j = lo; j < hi; j++) {
			a[j - lo] = exp(a[j - lo] - max);
			sum += a[j - lo];
		}
		for (int c = 0; c < d; c++) {
			double ks = 0, vs = 0;

			for (int j = lo; j < hi; j++) {
				ks += a[j - lo] / sum * s->kl[(size_t)j * d + c];
				vs += a[j - lo] / sum * s->vl[(size_t)j * d + c];
			}
			gk[(size_t)col * d + c] = ks;
			gv[(size_t)col * d + c] = vs;
		}
		if (dual_ln) {
			layer_norm(gk + (size_t)col * d, d, gk + (size_t)col * d);
			layer_norm(gv + (size_t)col * d, d, gv + (size_t)col * d);
		}
		free(a);
	}
}

/* ns: landmarks over all N keys; row i in block g = i / w sees keys gw-e..gw+w-1+e. */
static void transcribe_ns_slice(const struct attn_problem *p, const struct setting *st,
				const struct slice *s, int h, const float *q, double *out)
{
	int d = p->d, r = st->rank, w = st->w, e = w / 2 > 1 ? w / 2 : 1;
	int most = r + w + 2 * e;
	double *proj = malloc(sizeof(double) * (d * r + 1));
	double *gk = malloc(sizeof(double) * (r * d + 1));
	double *gv = malloc(sizeof(double) * (r * d + 1));
	double *scores = malloc(sizeof(double) * most), *qi = malloc(sizeof(double) * d);
	const double **vals = malloc(sizeof(double *) * most);
	double sigma = 1 / sqrt((double)d);

	assert_true(proj && gk && gv && scores && qi && vals);
	projection(p, h, r, proj);
	mix_globals(s, proj, r, 0, p->n, st->dual_ln, gk, gv);
	for (int i = 0; i < p->n; i++) {
		int g = i / w, count = 0;

		for (int c = 0; c < d; c++)
			qi[c] = sigma * q[(size_t)i * d + c];
		for (int l = 0; l < r; l++) {
			scores[count] = dotd(qi, gk + (size_t)l * d, d);
			vals[count++] = gv + (size_t)l * d;
		}
		for (int j = g * w - e; j <= g * w + w - 1 + e; j++) {
			if (j < 0 || j >= p->n)
				continue;
			scores[count] = dotd(qi, s->kl + (size_t)j * d, d);
			vals[count++] = s->vl + (size_t)j * d;
		}
		softmax_mix(scores, vals, count, d, out + (size_t)i * d);
	}
	free(proj);
	free(gk);
	free(gv);
	free(scores);
	free(qi);
	free(vals);
}

/* cs: one summary set per whole chunk; row t sees chunks c < t / l and keys t-w+1..t. */
static void transcribe_cs_slice(const struct attn_problem *p, const struct setting *st,
				const struct slice *s, int h, const float *q, double *out)
{
	int d = p->d, r = st->rank, w = st->w, l = st->chunk, chunks = p->n / l;
	int most = chunks * r + w;
	double *proj = malloc(sizeof(double) * (d * r + 1));
	double *gk = malloc(sizeof(double) * ((size_t)chunks * r * d + 1));
	double *gv = malloc(sizeof(double) * ((size_t)chunks * r * d + 1));
	double *scores = malloc(sizeof(double) * most), *qi = malloc(sizeof(double) * d);
	const double **vals = malloc(sizeof(double *) * most);
	double sigma = 1 / sqrt((double)d);

	assert_true(proj && gk && gv && scores && qi && vals);
	projection(p, h, r, proj);
	for (int c = 0; c < chunks; c++)
		mix_globals(s, proj, r, c * l, c * l + l, st->dual_ln,
			    gk + (size_t)c * r * d, gv + (size_t)c * r * d);
	for (int t = 0; t < p->n; t++) {
		int count = 0;

		for (int c = 0; c < d; c++)
			qi[c] = sigma * q[(size_t)t * d + c];
		for (int c = 0; c < t / l; c++)
			for (int u = 0; u < r; u++) {
				size_t at = ((size_t)c * r + u) * d;

				scores[count] = dotd(qi, gk + at, d);
				vals[count++] = gv + at;
			}
		for (int j = t - w + 1; j <= t; j++) {
			if (j < 0)
				continue;
			scores[count] = dotd(qi, s->kl + (size_t)j * d, d);
			vals[count++] = s->vl + (size_t)j * d;
		}
		softmax_mix(scores, vals, count, d, out + (size_t)t * d);
	}
	free(proj);
	free(gk);
	free(gv);
	free(scores);
	free(qi);
	free(vals);
}

static void transcribe(const struct attn_problem *p, const float *q, const float *k,
		       const float *v, double *out)
{
	struct setting st = resolve(p);

	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			size_t qo = problem_q_offset(p, b, h);
			struct slice s;

			slice_load(&s, p, k, v, b, h, st.dual_ln);
			if (p->pattern == ATTN_CS)
				transcribe_cs_slice(p, &st, &s, h, q + qo, out + qo);
			else
				transcribe_ns_slice(p, &st, &s, h, q + qo, out + qo);
			slice_release(&s);
		}
}

static void check_transcription(const struct attn_problem *p, uint64_t seed)
{
	struct tensors t;
	double *ref = reference_make(&t, p, seed);

	transcribe(p, t.q, t.k, t.v, ref);
	check_output(variant(), p, &t, ref, TOLERANCE, " w=%g r=%g l=%g ln=%g",
		     p->params[P_WINDOW], p->params[P_RANK], p->params[P_CHUNK],
		     p->params[P_DUAL_LN]);
}

/* Every awkward shape for one pattern and a list of settings. */
static void check_shapes(enum attn_pattern pattern, const double (*settings)[P_COUNT],
			 int count, uint64_t seed)
{
	for (int si = 0; si < count; si++) {
		struct shape_walk w = { 0 };
		struct attn_problem p;

		while (shape_walk_next(&w, pattern, settings[si], &p))
			check_transcription(&p, seed++);
	}
}

/*
 * CAB's defaults; a short window with a few landmarks, with and without DualLN; w = 1
 * (e = 1); a window longer than every sequence; more landmarks than some sequences.
 */
static void test_longshort_matches_an_fp64_transcription_in_ns(void **state)
{
	static const double settings[][P_COUNT] = {
		{ -1, -1, 32, 1 },
		{ 5, 3, 32, 1 },
		{ 5, 3, 32, 0 },
		{ 1, 2, 32, 1 },
		{ 300, 20, 32, 1 },
		{ 4, 0, 32, 1 },
	};

	(void)state;
	check_shapes(ATTN_NS, settings, COUNT(settings), SEED);
}

/*
 * CAB's defaults (w = 256 covers every sequence here); short windows with chunks shorter
 * and longer than the window, several summaries per chunk, chunks of one key, with and
 * without DualLN.
 */
static void test_longshort_matches_an_fp64_transcription_in_cs(void **state)
{
	static const double settings[][P_COUNT] = {
		{ -1, -1, 32, 1 },
		{ 20, 3, 7, 1 },
		{ 5, 2, 16, 0 },
		{ 3, 2, 1, 1 },
		{ 1, 4, 300, 1 },
		{ 64, 0, 8, 1 },
	};

	(void)state;
	check_shapes(ATTN_CS, settings, COUNT(settings), SEED + 10000);
}

/* ---- reductions ---- */

/* Plain window softmax on raw K, V: row i sees keys lo(i)..hi(i) within the sequence. */
static void window_softmax(const struct attn_problem *p, const float *q, const float *k,
			   const float *v, int w, double *out)
{
	int d = p->d, e = w / 2 > 1 ? w / 2 : 1;

	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);

			for (int i = 0; i < p->n; i++) {
				int lo = p->pattern == ATTN_CS ? i - w + 1 : i / w * w - e;
				int hi = p->pattern == ATTN_CS ? i : i / w * w + w - 1 + e;
				double max = -INFINITY, sum = 0, *o = out + qo + (size_t)i * d;

				lo = lo < 0 ? 0 : lo;
				hi = hi > p->n - 1 ? p->n - 1 : hi;
				for (int j = lo; j <= hi; j++) {
					double s = 0;

					for (int c = 0; c < d; c++)
						s += (double)q[qo + (size_t)i * d + c] *
						     k[kvo + (size_t)j * d + c];
					max = fmax(max, s / sqrt((double)d));
				}
				for (int c = 0; c < d; c++)
					o[c] = 0;
				for (int j = lo; j <= hi; j++) {
					double s = 0, e2;

					for (int c = 0; c < d; c++)
						s += (double)q[qo + (size_t)i * d + c] *
						     k[kvo + (size_t)j * d + c];
					e2 = exp(s / sqrt((double)d) - max);
					sum += e2;
					for (int c = 0; c < d; c++)
						o[c] += e2 * v[kvo + (size_t)j * d + c];
				}
				for (int c = 0; c < d; c++)
					o[c] /= sum;
			}
		}
}

static void check_window_reduction(enum attn_pattern pattern, uint64_t seed)
{
	static const int windows[] = { 1, 2, 5, 16, 300 };

	for (int wi = 0; wi < COUNT(windows); wi++)
		for (int ni = 0; ni < COUNT(sizes); ni++) {
			double params[P_COUNT] = { windows[wi], 0, 7, 0 };
			int kv = kv_choices[(wi + ni) % COUNT(kv_choices)];
			struct attn_problem p = problem(2, 4, kv, sizes[ni], sizes[ni],
							dims[(wi + ni) % COUNT(dims)], pattern,
							params);
			struct tensors t;
			double *ref, err;

			tensors_make(&t, &p, seed++, 1.0);
			ref = malloc(sizeof(double) * t.nq);
			assert_non_null(ref);
			window_softmax(&p, t.q, t.k, t.v, windows[wi], ref);
			run(variant(), &p, &t);
			err = error_vs_double(t.o, ref, t.nq);
			if (!(err <= TOLERANCE))
				print_error("%s w=%d n=%d: error %g\n", pattern_name(pattern),
					    windows[wi], sizes[ni], err);
			assert_true(err <= TOLERANCE);
			free(ref);
			tensors_release(&t);
		}
}

static void test_longshort_without_rank_or_dual_ln_is_a_blocked_window_softmax(void **state)
{
	(void)state;
	check_window_reduction(ATTN_NS, SEED + 20000);
}

static void test_longshort_without_rank_or_dual_ln_is_a_causal_window_softmax(void **state)
{
	(void)state;
	check_window_reduction(ATTN_CS, SEED + 21000);
}

/* ---- causality and what the window hides ---- */

/* Rows after t of every slice replaced by larger random values. */
static void perturb_after(struct rng *g, float *x, size_t slices, int rows, int d, int t)
{
	for (size_t s = 0; s < slices; s++)
		fill_normal(g, x + (s * rows + t + 1) * d, (size_t)(rows - t - 1) * d, 3.0);
}

/*
 * Changing Q, K, V after row t leaves rows <= t bit-identical: later keys get weight
 * exactly 0 and no summary mixes a key from t's own chunk or later. Cuts fall on, just
 * before and just after chunk and tile edges.
 */
static void test_longshort_cs_ignores_later_rows_for_several_settings(void **state)
{
	static const double settings[][P_COUNT] = {
		{ -1, -1, 32, 1 },
		{ 5, 2, 4, 1 },
		{ 3, 3, 1, 1 },
		{ 20, 1, 7, 0 },
		{ 1, 4, 16, 1 },
		{ 100, 2, 64, 1 },
	};
	static const int cuts[] = { 0, 3, 6, 7, 20, 27, 63, 64, 65, 100, 128 };
	const int n = 130, d = 16;

	(void)state;
	for (int si = 0; si < COUNT(settings); si++) {
		struct attn_problem p = problem(2, 4, 2, n, n, d, ATTN_CS, settings[si]);
		struct tensors a;

		tensors_make(&a, &p, SEED + si, 1.0);
		run(variant(), &p, &a);
		for (int ci = 0; ci < COUNT(cuts); ci++) {
			int cut = cuts[ci];
			struct rng g = { SEED + 31 * (uint64_t)cut };
			struct tensors b;

			tensors_copy(&b, &a);
			perturb_after(&g, b.q, (size_t)p.batch * p.heads, n, d, cut);
			perturb_after(&g, b.k, (size_t)p.batch * p.kv_heads, n, d, cut);
			perturb_after(&g, b.v, (size_t)p.batch * p.kv_heads, n, d, cut);
			run(variant(), &p, &b);
			for (int s = 0; s < p.batch * p.heads; s++)
				assert_memory_equal(a.o + (size_t)s * n * d,
						    b.o + (size_t)s * n * d,
						    sizeof(float) * (cut + 1) * d);
			/* and the rows after the cut did see the change */
			assert_memory_not_equal(a.o + (size_t)(cut + 1) * d,
						b.o + (size_t)(cut + 1) * d, sizeof(float) * d);
			tensors_release(&b);
		}
		tensors_release(&a);
	}
}

/* Keys row `row` may see in its window: ns its block's w + 2e keys, cs t-w+1..t. */
static bool in_window(enum attn_pattern pattern, int w, int row, int j)
{
	int e = w / 2 > 1 ? w / 2 : 1, g = row / w;

	if (pattern == ATTN_CS)
		return j <= row && row - j < w;
	return j >= g * w - e && j <= g * w + w - 1 + e;
}

/*
 * Replaces the keys and values outside row `row`'s window and returns how far the row
 * moved (relative to its largest magnitude).
 */
static double row_change_outside_window(enum attn_pattern pattern, const double *params, int w,
					int row, bool bitwise)
{
	const int n = 200, d = 16;
	struct attn_problem p = problem(1, 2, 1, n, n, d, pattern, params);
	struct tensors a, b;
	struct rng g = { SEED + 5 };
	double change = 0, scale = 0;

	tensors_make(&a, &p, SEED + 4, 1.0);
	tensors_copy(&b, &a);
	for (int j = 0; j < n; j++) {
		if (in_window(pattern, w, row, j))
			continue;
		fill_normal(&g, b.k + (size_t)j * d, d, 3.0);
		fill_normal(&g, b.v + (size_t)j * d, d, 3.0);
	}
	run(variant(), &p, &a);
	run(variant(), &p, &b);
	for (int h = 0; h < 2; h++) {
		size_t at = problem_q_offset(&p, 0, h) + (size_t)row * d;

		if (bitwise)
			assert_memory_equal(a.o + at, b.o + at, sizeof(float) * d);
		for (int c = 0; c < d; c++) {
			change = fmax(change, fabs((double)a.o[at + c] - b.o[at + c]));
			scale = fmax(scale, fabs((double)a.o[at + c]));
		}
	}
	tensors_release(&a);
	tensors_release(&b);
	return change / scale;
}

/* Rank 0 leaves only the window: nothing outside it is read for the row. */
static void test_longshort_without_rank_ignores_keys_outside_the_window(void **state)
{
	static const int rows[] = { 0, 30, 64, 150, 199 };

	(void)state;
	for (int ln = 0; ln <= 1; ln++)
		for (int ri = 0; ri < COUNT(rows); ri++) {
			double ns[P_COUNT] = { 10, 0, 32, ln }, cs[P_COUNT] = { 10, 0, 8, ln };

			row_change_outside_window(ATTN_NS, ns, 10, rows[ri], true);
			row_change_outside_window(ATTN_CS, cs, 10, rows[ri], true);
		}
}

/* With landmarks or summaries, keys far outside the window reach the row. */
static void test_longshort_with_rank_sees_keys_outside_the_window(void **state)
{
	double ns[P_COUNT] = { 10, 4, 32, 1 }, cs[P_COUNT] = { 10, 1, 8, 1 };

	(void)state;
	assert_true(row_change_outside_window(ATTN_NS, ns, 10, 150, false) > 1e-3);
	assert_true(row_change_outside_window(ATTN_CS, cs, 10, 150, false) > 1e-3);
}

/* ---- DualLN ---- */

/*
 * LN(v) forgets a constant added to v, and the mixing weights come from K alone: with
 * DualLN, adding a per-row constant to V moves nothing beyond rounding; without it the
 * output moves.
 */
static void test_longshort_with_dual_ln_ignores_an_offset_of_each_value_row(void **state)
{
	static const enum attn_pattern patterns[] = { ATTN_NS, ATTN_CS };

	(void)state;
	for (int pi = 0; pi < COUNT(patterns); pi++)
		for (int ln = 0; ln <= 1; ln++) {
			double params[P_COUNT] = { 6, 3, 5, ln };
			struct attn_problem p = problem(2, 4, 2, 63, 63, 12, patterns[pi], params);
			struct tensors a, b;
			struct rng g = { SEED + 8 };
			double err;

			tensors_make(&a, &p, SEED + 9, 1.0);
			tensors_copy(&b, &a);
			for (size_t row = 0; row < b.nkv / p.d; row++) {
				double shift = 3 * rng_normal(&g);

				for (int c = 0; c < p.d; c++)
					b.v[row * p.d + c] += (float)shift;
			}
			run(variant(), &p, &a);
			run(variant(), &p, &b);
			err = error_vs_float(b.o, a.o, a.nq);
			if (ln)
				assert_true(err <= TOLERANCE);
			else
				assert_true(err > 1e-2);
			tensors_release(&a);
			tensors_release(&b);
		}
}

/* ---- parameters, patterns, state ---- */

/* -1 means CAB's constructor default: ns w = 15, r = 16; cs w = 256, rank 1. */
static void test_longshort_defaults_are_cabs_per_pattern(void **state)
{
	static const struct {
		enum attn_pattern pattern;
		double explicit_params[P_COUNT];
	} cases[] = {
		{ ATTN_NS, { 15, 16, 32, 1 } },
		{ ATTN_CS, { 256, 1, 32, 1 } },
	};
	const struct variant_ops *v = variant();
	double defaults[P_COUNT];

	(void)state;
	variant_default_params(v, defaults);
	assert_true(defaults[P_WINDOW] == -1 && defaults[P_RANK] == -1);
	assert_true(defaults[P_CHUNK] == 32 && defaults[P_DUAL_LN] == 1);
	for (int i = 0; i < COUNT(cases); i++) {
		struct attn_problem p = problem(1, 2, 2, 300, 300, 16, cases[i].pattern, defaults);
		struct tensors a, b;

		tensors_make(&a, &p, SEED + 11, 1.0);
		tensors_copy(&b, &a);
		run(v, &p, &a);
		p.params = cases[i].explicit_params;
		run(v, &p, &b);
		assert_memory_equal(a.o, b.o, sizeof(float) * a.nq);
		/* NULL params are the declared defaults too */
		p.params = NULL;
		run(v, &p, &b);
		assert_memory_equal(a.o, b.o, sizeof(float) * a.nq);
		tensors_release(&a);
		tensors_release(&b);
	}
}

/* Rank 0 is a setting (window only); a window of 0 keys and values below -1 are not. */
static void test_longshort_accepts_rank_zero_and_refuses_an_empty_window(void **state)
{
	const struct variant_ops *v = variant();
	double rank0[P_COUNT] = { 5, 0, 32, 1 }, w0[P_COUNT] = { 0, 4, 32, 1 };
	double low[P_COUNT] = { 5, -2, 32, 1 }, chunk0[P_COUNT] = { 5, 1, 0, 1 };
	double ln2[P_COUNT] = { 5, 1, 8, 2 };

	(void)state;
	for (int pat = ATTN_NS; pat <= ATTN_CS; pat++) {
		struct attn_problem p = problem(1, 2, 2, 16, 16, 8, pat, rank0);

		assert_int_equal(variant_check_problem(v, &p), 0);
		p.params = w0;
		assert_int_equal(variant_check_problem(v, &p), -EINVAL);
		p.params = low;
		assert_int_equal(variant_check_problem(v, &p), -EINVAL);
		p.params = chunk0;
		assert_int_equal(variant_check_problem(v, &p), -EINVAL);
		p.params = ln2;
		assert_int_equal(variant_check_problem(v, &p), -EINVAL);
	}
}

static void test_longshort_refuses_cross_patterns(void **state)
{
	const struct variant_ops *v = variant();
	double params[P_COUNT];

	(void)state;
	variant_default_params(v, params);
	for (int pat = ATTN_NC; pat <= ATTN_CC; pat++) {
		struct attn_problem p = problem(1, 2, 2, 16, 24, 8, pat, params);

		assert_int_equal(variant_check_problem(v, &p), -ENOTSUP);
		p.m = 16;
		assert_int_equal(variant_check_problem(v, &p), -ENOTSUP);
	}
	assert_true(v->patterns == (PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_CS)));
	assert_int_equal(v->extensions, 0);
}

/*
 * Window keys and values per KV head (ns w + 2e, cs w, at most N) plus per query head
 * 2 r d landmark floats (ns) or 2 R d ceil(N / l) summary floats (cs), float32.
 */
static void test_longshort_state_bytes_follow_their_formula(void **state)
{
	const struct variant_ops *v = variant();
	double defaults[P_COUNT], small[P_COUNT] = { 6, 3, 7, 1 };
	struct attn_problem p;

	(void)state;
	variant_default_params(v, defaults);
	assert_non_null(v->state_bytes);
	/* ns defaults: w 15, e 7, 29 window keys; 16 landmarks */
	p = problem(2, 8, 2, 300, 300, 64, ATTN_NS, defaults);
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 2 * 29 * 64 * 4 + 2.0 * 2 * 8 * 16 * 64 * 4);
	/* the ns state does not grow with the sequence */
	p.n = p.m = 3000;
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 2 * 29 * 64 * 4 + 2.0 * 2 * 8 * 16 * 64 * 4);
	/* cs defaults: w 256, one summary for each of ceil(300 / 32) = 10 chunks */
	p = problem(2, 8, 2, 300, 300, 64, ATTN_CS, defaults);
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 2 * 256 * 64 * 4 + 2.0 * 2 * 8 * 10 * 64 * 4);
	/* a window longer than the sequence keeps only the sequence */
	p = problem(1, 4, 4, 5, 5, 8, ATTN_CS, defaults);
	assert_true(v->state_bytes(&p) == 2.0 * 4 * 5 * 8 * 4 + 2.0 * 4 * 1 * 8 * 4);
	p.pattern = ATTN_NS;
	assert_true(v->state_bytes(&p) == 2.0 * 4 * 5 * 8 * 4 + 2.0 * 4 * 16 * 8 * 4);
	/* w 6: ns sees 6 + 2 * 3 keys; cs 6 keys and 3 summaries per 7-key chunk */
	p = problem(1, 4, 2, 50, 50, 8, ATTN_NS, small);
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 12 * 8 * 4 + 2.0 * 4 * 3 * 8 * 4);
	p.pattern = ATTN_CS;
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 6 * 8 * 4 + 2.0 * 4 * 3 * 8 * 8 * 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_longshort_matches_an_fp64_transcription_in_ns),
		cmocka_unit_test(test_longshort_matches_an_fp64_transcription_in_cs),
		cmocka_unit_test(test_longshort_without_rank_or_dual_ln_is_a_blocked_window_softmax),
		cmocka_unit_test(test_longshort_without_rank_or_dual_ln_is_a_causal_window_softmax),
		cmocka_unit_test(test_longshort_cs_ignores_later_rows_for_several_settings),
		cmocka_unit_test(test_longshort_without_rank_ignores_keys_outside_the_window),
		cmocka_unit_test(test_longshort_with_rank_sees_keys_outside_the_window),
		cmocka_unit_test(test_longshort_with_dual_ln_ignores_an_offset_of_each_value_row),
		cmocka_unit_test(test_longshort_defaults_are_cabs_per_pattern),
		cmocka_unit_test(test_longshort_accepts_rank_zero_and_refuses_an_empty_window),
		cmocka_unit_test(test_longshort_refuses_cross_patterns),
		cmocka_unit_test(test_longshort_state_bytes_follow_their_formula),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
