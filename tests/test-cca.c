/*
 * test-cca.c - Core Context Aware attention against a double-precision transcription of
 * VARIANTS.md section 29, written as plain loops over "which keys and which cores does row
 * i see": cs (complete groups, local keys i - ((i+1) mod g) - w + 1 .. i, cores
 * c <= floor((i - g + 1 - w) / g)) and the ns [harness] extension (local |i - j| <= w,
 * cores the groups wholly outside it, the short last group a core pooled by row N - 1).
 * Then the catalogue's limits (w >= N and g = 1 are vanilla), causality, GQA, what a far
 * group reaches a row through (its core, pooled by the group's last query), decoding,
 * parameters, refusals, state bytes and FLOPs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "threads.h"
#include "variant-test.h"

/* fp32 kernels against the fp64 transcription: the catalogue's bound. */
#define TOLERANCE 1e-5
/* The same numbers summed in another order (a permuted group, GQA): rounding only. */
#define REORDER_TOLERANCE 1e-6

/* The variant's parameter order: group, window. */
enum { P_GROUP, P_WINDOW, P_COUNT };

static const struct variant_ops *variant(void)
{
	const struct variant_ops *v = variant_must_find("cca");

	assert_int_equal(v->n_params, P_COUNT);
	assert_int_equal(variant_param_index(v, "group"), P_GROUP);
	assert_int_equal(variant_param_index(v, "window"), P_WINDOW);
	return v;
}

/* ---- the catalogue's sets, row by row ---- */

static int floor_div(int a, int b)
{
	return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* Groups that can make cores: cs the complete ones, ns all (the last may be short). */
static int group_count(const struct attn_problem *p, int g)
{
	return p->pattern == ATTN_CS ? p->n / g : (p->n + g - 1) / g;
}

/* One past the last key of group c. */
static int group_end(const struct attn_problem *p, int g, int c)
{
	return c * g + g < p->n ? c * g + g : p->n;
}

static bool sees_key(const struct attn_problem *p, int g, int w, int i, int j)
{
	if (p->pattern == ATTN_CS)
		return j <= i && j >= i - (i + 1) % g - w + 1;
	return j >= i - w && j <= i + w;
}

static bool sees_core(const struct attn_problem *p, int g, int w, int i, int c)
{
	if (p->pattern == ATTN_CS)
		return c <= floor_div(i - g + 1 - w, g);
	return group_end(p, g, c) - 1 < i - w || c * g > i + w;
}

/* ---- the fp64 transcription ---- */

static double dotd(const float *a, const double *b, int d)
{
	double s = 0;

	for (int c = 0; c < d; c++)
		s += (double)a[c] * b[c];
	return s;
}

static double dotf(const float *a, const float *b, int d)
{
	double s = 0;

	for (int c = 0; c < d; c++)
		s += (double)a[c] * b[c];
	return s;
}

/* k̂, v̂ of keys first .. end - 1: softmax_j(σ q_last·k_j) weights. */
static void pool(const float *q_last, const float *k, const float *v, int d, int first,
		 int end, double *kh, double *vh)
{
	double sigma = 1 / sqrt((double)d), max = -INFINITY, sum = 0;

	for (int j = first; j < end; j++)
		max = fmax(max, sigma * dotf(q_last, k + (size_t)j * d, d));
	for (int c = 0; c < d; c++)
		kh[c] = vh[c] = 0;
	for (int j = first; j < end; j++)
		sum += exp(sigma * dotf(q_last, k + (size_t)j * d, d) - max);
	for (int j = first; j < end; j++) {
		double a = exp(sigma * dotf(q_last, k + (size_t)j * d, d) - max) / sum;

		for (int c = 0; c < d; c++) {
			kh[c] += a * k[(size_t)j * d + c];
			vh[c] += a * v[(size_t)j * d + c];
		}
	}
}

/* One slice: q, k, v of the slice, out its n rows. */
static void transcribe_slice(const struct attn_problem *p, int g, int w, const float *q,
			     const float *k, const float *v, double *out)
{
	int n = p->n, d = p->d, groups = group_count(p, g);
	double sigma = 1 / sqrt((double)d);
	double *kh = malloc(sizeof(double) * ((size_t)groups * d + 1));
	double *vh = malloc(sizeof(double) * ((size_t)groups * d + 1));

	assert_true(kh && vh);
	for (int c = 0; c < groups; c++) {
		int end = group_end(p, g, c);

		pool(q + (size_t)(end - 1) * d, k, v, d, c * g, end, kh + (size_t)c * d,
		     vh + (size_t)c * d);
	}
	for (int i = 0; i < n; i++) {
		const float *qi = q + (size_t)i * d;
		double max = -INFINITY, sum = 0, *o = out + (size_t)i * d;

		for (int j = 0; j < n; j++)
			if (sees_key(p, g, w, i, j))
				max = fmax(max, sigma * dotf(qi, k + (size_t)j * d, d));
		for (int c = 0; c < groups; c++)
			if (sees_core(p, g, w, i, c))
				max = fmax(max, sigma * dotd(qi, kh + (size_t)c * d, d));
		for (int x = 0; x < d; x++)
			o[x] = 0;
		for (int j = 0; j < n; j++) {
			double e;

			if (!sees_key(p, g, w, i, j))
				continue;
			e = exp(sigma * dotf(qi, k + (size_t)j * d, d) - max);
			sum += e;
			for (int x = 0; x < d; x++)
				o[x] += e * v[(size_t)j * d + x];
		}
		for (int c = 0; c < groups; c++) {
			double e;

			if (!sees_core(p, g, w, i, c))
				continue;
			e = exp(sigma * dotd(qi, kh + (size_t)c * d, d) - max);
			sum += e;
			for (int x = 0; x < d; x++)
				o[x] += e * vh[(size_t)c * d + x];
		}
		for (int x = 0; x < d && sum > 0; x++)
			o[x] /= sum;
	}
	free(kh);
	free(vh);
}

static void transcribe(const struct attn_problem *p, const float *q, const float *k,
		       const float *v, double *out)
{
	int g = (int)p->params[P_GROUP], w = (int)p->params[P_WINDOW];

	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);

			transcribe_slice(p, g, w, q + qo, k + kvo, v + kvo, out + qo);
		}
}

static void check_transcription(const struct attn_problem *p, uint64_t seed)
{
	struct tensors t;
	double *ref = reference_make(&t, p, seed);

	transcribe(p, t.q, t.k, t.v, ref);
	check_output(variant(), p, &t, ref, TOLERANCE, " g=%g w=%g", p->params[P_GROUP],
		     p->params[P_WINDOW]);
}

/*
 * The defaults (w = 1024 covers every sequence here); groups of 1, 2, 3, 4, 5, 8 and 16
 * keys with windows of 0, one group and several groups, so local ranges start on and
 * off group edges and rows see none, some or most cores.
 */
static const double settings[][P_COUNT] = {
	{ 16, 1024 },
	{ 4, 8 },
	{ 3, 6 },
	{ 1, 3 },
	{ 5, 0 },
	{ 2, 2 },
	{ 16, 32 },
	{ 8, 64 },
};

/* Every awkward shape (odd n, d 8, 64 and 12, MHA, GQA and MQA) for every setting. */
static void check_shapes(enum attn_pattern pattern, uint64_t seed)
{
	for (int si = 0; si < COUNT(settings); si++) {
		struct shape_walk w = { 0 };
		struct attn_problem p;

		while (shape_walk_next(&w, pattern, settings[si], &p))
			check_transcription(&p, seed++);
	}
}

static void test_cca_matches_an_fp64_transcription_in_cs(void **state)
{
	(void)state;
	check_shapes(ATTN_CS, SEED);
}

static void test_cca_matches_an_fp64_transcription_in_ns(void **state)
{
	(void)state;
	check_shapes(ATTN_NS, SEED + 10000);
}

/*
 * Sequences of many row tiles, with many cores per row: a tile's rows see different
 * numbers of cores (cs) or different runs of them on both sides (ns), and the short
 * last group of ns (700 = 43 x 16 + 12, 700 = 100 x 7) takes part.
 */
static void test_cca_matches_the_transcription_over_many_tiles(void **state)
{
	static const double long_settings[][P_COUNT] = {
		{ 16, 64 },
		{ 7, 21 },
		{ 32, 0 },
		{ 16, 256 },
	};
	static const int lengths[] = { 700, 333 };
	uint64_t seed = SEED + 20000;

	(void)state;
	for (int si = 0; si < COUNT(long_settings); si++)
		for (int li = 0; li < COUNT(lengths); li++)
			for (int pat = ATTN_NS; pat <= ATTN_CS; pat++) {
				struct attn_problem p = problem(1, 4, 2, lengths[li], lengths[li],
								li ? 12 : 64, pat,
								long_settings[si]);

				check_transcription(&p, seed++);
			}
}

/* ---- the catalogue's limits ---- */

static void check_vanilla(const struct attn_problem *p, uint64_t seed)
{
	struct tensors t;
	double *ref = reference_make(&t, p, seed);

	reference_attention(p, t.q, t.k, t.v, ref);
	check_output(variant(), p, &t, ref, TOLERANCE, " g=%g w=%g (vs vanilla)",
		     p->params[P_GROUP], p->params[P_WINDOW]);
}

/* w >= N: every key is local and no group is a core, in both patterns. */
static void test_cca_with_a_window_covering_the_sequence_is_vanilla(void **state)
{
	static const int groups[] = { 1, 4, 16, 300 };
	uint64_t seed = SEED + 30000;

	(void)state;
	for (int gi = 0; gi < COUNT(groups); gi++)
		for (int ni = 0; ni < COUNT(sizes); ni++)
			for (int pat = ATTN_NS; pat <= ATTN_CS; pat++) {
				int n = sizes[ni], g = groups[gi];
				double params[P_COUNT] = { g, (double)((n + g - 1) / g * g) };
				struct attn_problem p = problem(2, 4, kv_choices[ni % 3], n, n,
								dims[gi % 3], pat, params);

				check_vanilla(&p, seed++);
			}
}

/* g = 1: each core is its one key with weight 1, so every key is seen exactly once. */
static void test_cca_with_groups_of_one_is_vanilla(void **state)
{
	static const int windows[] = { 0, 1, 5, 20 };
	uint64_t seed = SEED + 31000;

	(void)state;
	for (int wi = 0; wi < COUNT(windows); wi++)
		for (int ni = 0; ni < COUNT(sizes); ni++)
			for (int pat = ATTN_NS; pat <= ATTN_CS; pat++) {
				double params[P_COUNT] = { 1, windows[wi] };
				struct attn_problem p = problem(2, 4, kv_choices[wi % 3], sizes[ni],
								sizes[ni], dims[ni % 3], pat,
								params);

				check_vanilla(&p, seed++);
			}
}

/* ...and the limits are not met by accident: a short window with groups is not vanilla. */
static void test_cca_with_a_short_window_and_groups_differs_from_vanilla(void **state)
{
	double params[P_COUNT] = { 4, 8 };

	(void)state;
	for (int pat = ATTN_NS; pat <= ATTN_CS; pat++) {
		struct attn_problem p = problem(1, 2, 2, 63, 63, 16, pat, params);
		struct tensors t;
		double *ref = reference_make(&t, &p, SEED + 32000);

		reference_attention(&p, t.q, t.k, t.v, ref);
		run(variant(), &p, &t);
		assert_true(error_vs_double(t.o, ref, t.nq) > 1e-2);
		free(ref);
		tensors_release(&t);
	}
}

/* ---- causality ---- */

/* Rows after t of every slice replaced by larger random values. */
static void perturb_after(struct rng *g, float *x, size_t slices, int rows, int d, int t)
{
	for (size_t s = 0; s < slices; s++)
		fill_normal(g, x + (s * rows + t + 1) * d, (size_t)(rows - t - 1) * d, 3.0);
}

/*
 * Changing Q, K, V after row t leaves rows <= t bit-identical: later keys and cores get
 * weight exactly 0, and no core a row sees has its group or q_last after the row. Cuts
 * fall on, just before and after group, window and tile edges.
 */
static void test_cca_cs_ignores_later_rows_for_several_settings(void **state)
{
	static const double cs_settings[][P_COUNT] = {
		{ 4, 8 },
		{ 1, 0 },
		{ 3, 6 },
		{ 16, 32 },
		{ 5, 0 },
		{ 16, 1024 },
	};
	static const int cuts[] = { 0, 2, 3, 6, 7, 20, 27, 47, 63, 64, 65, 100, 128 };
	const int n = 130, d = 16;

	(void)state;
	for (int si = 0; si < COUNT(cs_settings); si++) {
		struct attn_problem p = problem(2, 4, 2, n, n, d, ATTN_CS, cs_settings[si]);
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

/* ---- GQA, finite output ---- */

/*
 * Grouped KV heads give what MHA gives with each KV head repeated, with settings where
 * cores matter (the registry-wide test runs the defaults, which are vanilla at its sizes).
 */
static void test_cca_gives_gqa_as_mha_with_repeated_kv(void **state)
{
	double params[P_COUNT] = { 4, 8 };

	(void)state;
	for (int pat = ATTN_NS; pat <= ATTN_CS; pat++)
		for (int kv = 1; kv <= 2; kv++) {
			struct attn_problem gqa = problem(2, 4, kv, 65, 65, 16, pat, params);
			struct attn_problem mha = problem(2, 4, 4, 65, 65, 16, pat, params);
			size_t slice = (size_t)65 * 16;
			struct tensors g, h;
			double err;

			tensors_make(&g, &gqa, SEED + kv, 1.0);
			tensors_make(&h, &mha, SEED, 1.0);
			memcpy(h.q, g.q, sizeof(float) * g.nq);
			for (int b = 0; b < 2; b++)
				for (int hd = 0; hd < 4; hd++) {
					memcpy(h.k + problem_kv_offset(&mha, b, hd),
					       g.k + problem_kv_offset(&gqa, b, hd),
					       sizeof(float) * slice);
					memcpy(h.v + problem_kv_offset(&mha, b, hd),
					       g.v + problem_kv_offset(&gqa, b, hd),
					       sizeof(float) * slice);
				}
			run(variant(), &gqa, &g);
			run(variant(), &mha, &h);
			err = error_vs_float(g.o, h.o, g.nq);
			assert_true(err <= REORDER_TOLERANCE);
			tensors_release(&g);
			tensors_release(&h);
		}
}

/* Inputs up to |x| = 10 give scores in the hundreds, in the pooling too. */
static void test_cca_gives_finite_output_for_large_inputs(void **state)
{
	double params[P_COUNT] = { 4, 8 };

	(void)state;
	for (int pat = ATTN_NS; pat <= ATTN_CS; pat++) {
		struct attn_problem p = problem(1, 2, 2, 70, 70, 64, pat, params);
		struct tensors t;
		struct rng g = { SEED };

		tensors_make(&t, &p, SEED, 1.0);
		for (size_t x = 0; x < t.nq; x++)
			t.q[x] = (float)(20 * rng_uniform(&g) - 10);
		for (size_t x = 0; x < t.nkv; x++) {
			t.k[x] = (float)(20 * rng_uniform(&g) - 10);
			t.v[x] = (float)(20 * rng_uniform(&g) - 10);
		}
		run(variant(), &p, &t);
		for (size_t x = 0; x < t.nq; x++)
			assert_true(isfinite(t.o[x]));
		tensors_release(&t);
	}
}

/* ---- what a far group reaches a row through ---- */

/* Largest change of row i over the slices, relative to the row's largest magnitude. */
static double row_change(const struct attn_problem *p, const float *a, const float *b, int i)
{
	double change = 0, scale = 0;

	for (int s = 0; s < p->batch * p->heads; s++)
		for (int c = 0; c < p->d; c++) {
			size_t at = ((size_t)s * p->n + i) * p->d + c;

			change = fmax(change, fabs((double)a[at] - b[at]));
			scale = fmax(scale, fabs((double)a[at]));
		}
	return scale > 0 ? change / scale : change;
}

/*
 * Swapping two key/value pairs inside group 2 leaves its core as it was (pooling is a
 * weighted sum over the set), so rows that see the group only as a core, or see both
 * keys or neither, stay put up to rounding; rows that see exactly one of the two keys
 * move. In ns a row whose window cuts the group between the two keys is such a row.
 */
static void test_cca_rows_see_a_far_group_only_through_its_core(void **state)
{
	const int n = 96, d = 16, g = 8, w = 16, j1 = 17, j2 = 21;
	double params[P_COUNT] = { g, w };

	(void)state;
	for (int pat = ATTN_NS; pat <= ATTN_CS; pat++) {
		struct attn_problem p = problem(1, 2, 1, n, n, d, pat, params);
		struct tensors a, b;
		int through_core = 0;
		double moved = 0;

		tensors_make(&a, &p, SEED + 40000, 1.0);
		tensors_copy(&b, &a);
		for (int c = 0; c < d; c++) {
			b.k[(size_t)j1 * d + c] = a.k[(size_t)j2 * d + c];
			b.k[(size_t)j2 * d + c] = a.k[(size_t)j1 * d + c];
			b.v[(size_t)j1 * d + c] = a.v[(size_t)j2 * d + c];
			b.v[(size_t)j2 * d + c] = a.v[(size_t)j1 * d + c];
		}
		run(variant(), &p, &a);
		run(variant(), &p, &b);
		for (int i = 0; i < n; i++) {
			bool one = sees_key(&p, g, w, i, j1) != sees_key(&p, g, w, i, j2);
			double change = row_change(&p, a.o, b.o, i);

			if (one) {
				moved = fmax(moved, change);
				continue;
			}
			assert_true(change <= REORDER_TOLERANCE);
			through_core += sees_core(&p, g, w, i, 2);
		}
		assert_true(moved > 1e-2);
		/* the rows that see the group as a core were there to stay put */
		assert_true(through_core > 40);
		tensors_release(&a);
		tensors_release(&b);
	}
}

/*
 * The pooling weights come from the group's last query, no other: changing the queries of
 * a group's other rows moves only those rows; changing its last query moves the rows that
 * see the group's core as well, and nothing else. ns also on 92 rows, whose short last
 * group (88..91) is pooled by row 91.
 */
static void test_cca_pools_each_group_by_its_last_query(void **state)
{
	static const struct {
		enum attn_pattern pattern;
		int n, group;
	} cases[] = {
		{ ATTN_CS, 96, 2 },
		{ ATTN_NS, 96, 2 },
		{ ATTN_NS, 92, 11 },
	};
	const int d = 16, g = 8, w = 16;
	double params[P_COUNT] = { g, w };

	(void)state;
	for (int ci = 0; ci < COUNT(cases); ci++) {
		struct attn_problem p = problem(1, 2, 1, cases[ci].n, cases[ci].n, d,
						cases[ci].pattern, params);
		int c = cases[ci].group, first = c * g, last = group_end(&p, g, c) - 1;
		struct tensors a, b;
		struct rng r = { SEED + 41000 };
		int moved = 0;

		tensors_make(&a, &p, SEED + 41000 + ci, 1.0);
		run(variant(), &p, &a);
		/* the group's rows but its last */
		tensors_copy(&b, &a);
		for (int s = 0; s < p.heads; s++)
			fill_normal(&r, b.q + ((size_t)s * p.n + first) * d,
				    (size_t)(last - first) * d, 3.0);
		run(variant(), &p, &b);
		for (int i = 0; i < p.n; i++) {
			double change = row_change(&p, a.o, b.o, i);

			if (i >= first && i < last)
				assert_true(change > 0);
			else
				assert_true(change == 0);
		}
		tensors_release(&b);
		/* its last row */
		tensors_copy(&b, &a);
		for (int s = 0; s < p.heads; s++)
			fill_normal(&r, b.q + ((size_t)s * p.n + last) * d, d, 3.0);
		run(variant(), &p, &b);
		for (int i = 0; i < p.n; i++) {
			double change = row_change(&p, a.o, b.o, i);

			if (i == last)
				continue;
			if (sees_core(&p, g, w, i, c)) {
				assert_true(change > 1e-6);
				moved++;
			} else {
				assert_true(change == 0);
			}
		}
		assert_true(moved > 0);
		tensors_release(&b);
		tensors_release(&a);
	}
}

/* ---- decoding ---- */

/* Every decode shape (1, 17, 63, 130 positions; d 8, 64, 12; MHA, GQA, MQA) per setting. */
static void test_cca_decoding_matches_its_causal_forward(void **state)
{
	static const double decode_settings[][P_COUNT] = {
		{ 4, 8 },
		{ 1, 0 },
		{ 3, 6 },
		{ 16, 32 },
		{ 5, 0 },
		{ 2, 4 },
		{ 16, 1024 },
	};
	static const int lengths[] = { 1, 17, 63, 130 };
	const struct variant_ops *v = variant();
	uint64_t seed = SEED + 50000;

	(void)state;
	assert_non_null(v->decode_init);
	for (int si = 0; si < COUNT(decode_settings); si++)
		for (int li = 0; li < COUNT(lengths); li++)
			for (int di = 0; di < COUNT(dims); di++)
				for (int kv = 0; kv < COUNT(kv_choices); kv++) {
					int n = lengths[li];
					struct attn_problem p = problem(2, 4, kv_choices[kv], n, n,
									dims[di], ATTN_CS,
									decode_settings[si]);

					check_decode(v, &p, seed++);
				}
}

/* Decoding is cs only, and takes no setting forward() refuses. */
static void test_cca_decoding_refuses_ns_and_bad_settings(void **state)
{
	const struct variant_ops *v = variant();
	double params[P_COUNT] = { 4, 8 }, bad[P_COUNT] = { 4, 6 };
	struct attn_problem p = problem(1, 2, 2, 16, 16, 8, ATTN_NS, params);
	void *dec = &dec;

	(void)state;
	assert_int_equal(v->decode_init(&p, &dec), -ENOTSUP);
	assert_null(dec);
	p.pattern = ATTN_CS;
	p.params = bad;
	dec = &dec;
	assert_int_equal(v->decode_init(&p, &dec), -EINVAL);
	assert_null(dec);
}

/*
 * The decoder holds what state_bytes() says (a ring of max(w + g - 1, g) positions per KV
 * head, two d-vectors per core per query head) plus scratch of cores + ring floats per
 * thread and its own bookkeeping; its ring does not grow with the length.
 */
static void test_cca_decoding_holds_its_state_bytes(void **state)
{
	static const int lengths[] = { 64, 256, 1024 };
	const struct variant_ops *v = variant();
	double params[P_COUNT] = { 4, 8 };
	int threads = threads_get();

	(void)state;
	for (int li = 0; li < COUNT(lengths); li++) {
		int n = lengths[li], cores = (n - 8) / 4, ring = 11;
		struct attn_problem p = problem(1, 4, 2, n, n, 16, ATTN_CS, params);
		double expect = 2.0 * 2 * ring * 16 * 4 + 2.0 * 4 * cores * 16 * 4;
		size_t peak = decode_peak(v, &p);

		assert_true(v->state_bytes(&p) == expect);
		assert_true(peak >= expect);
		/* scratch per thread, and a few KiB of struct and alignment */
		assert_true(peak <= expect + 4.0 * threads * (cores + ring) + 8192);
	}
}

/* ---- parameters, patterns, state, work ---- */

/* Defaults 16 and 1024; NULL params are the defaults. */
static void test_cca_defaults_are_the_catalogues(void **state)
{
	const struct variant_ops *v = variant();
	double defaults[P_COUNT], explicit_params[P_COUNT] = { 16, 1024 };

	(void)state;
	variant_default_params(v, defaults);
	assert_true(defaults[P_GROUP] == 16 && defaults[P_WINDOW] == 1024);
	for (int pat = ATTN_NS; pat <= ATTN_CS; pat++) {
		/* longer than w, so cores are in play */
		struct attn_problem p = problem(1, 2, 1, 1100, 1100, 8, pat, explicit_params);
		struct tensors a, b;

		tensors_make(&a, &p, SEED + 60000, 1.0);
		tensors_copy(&b, &a);
		run(v, &p, &a);
		p.params = NULL;
		run(v, &p, &b);
		assert_memory_equal(a.o, b.o, sizeof(float) * a.nq);
		tensors_release(&a);
		tensors_release(&b);
	}
}

/* w must be a multiple of g (0 is one); cross patterns are refused; not exact. */
static void test_cca_refuses_cross_patterns_and_a_window_off_the_groups(void **state)
{
	static const double ok[][P_COUNT] = { { 16, 1024 }, { 4, 0 }, { 1, 7 }, { 3, 300 } };
	static const double bad[][P_COUNT] = { { 16, 1000 }, { 4, 6 }, { 3, 1 }, { 300, 3 } };
	const struct variant_ops *v = variant();

	(void)state;
	for (int pat = ATTN_NS; pat <= ATTN_CS; pat++) {
		struct attn_problem p = problem(1, 2, 2, 16, 16, 8, pat, NULL);

		for (int i = 0; i < COUNT(ok); i++) {
			p.params = ok[i];
			assert_int_equal(variant_check_problem(v, &p), 0);
		}
		for (int i = 0; i < COUNT(bad); i++) {
			p.params = bad[i];
			assert_int_equal(variant_check_problem(v, &p), -EINVAL);
		}
	}
	for (int pat = ATTN_NC; pat <= ATTN_CC; pat++) {
		struct attn_problem p = problem(1, 2, 2, 16, 24, 8, pat, ok[0]);

		assert_int_equal(variant_check_problem(v, &p), -ENOTSUP);
		p.m = 16;
		assert_int_equal(variant_check_problem(v, &p), -ENOTSUP);
	}
	assert_true(v->patterns == (PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_CS)));
	assert_true(v->extensions == PATTERN_BIT(ATTN_NS));
	assert_int_equal(v->flags, 0);
}

/*
 * float32 local keys and values per KV head (cs max(w + g - 1, g), ns 2w + 1, at most N)
 * plus k̂ and v̂ per query head of the cores made: cs floor((N - w) / g) complete groups,
 * ns ceil(N / g) groups when any row sees one.
 */
static void test_cca_state_bytes_follow_their_formula(void **state)
{
	const struct variant_ops *v = variant();
	double defaults[P_COUNT], small[P_COUNT] = { 4, 8 }, zero[P_COUNT] = { 4, 0 };
	struct attn_problem p;

	(void)state;
	variant_default_params(v, defaults);
	/* cs defaults at 4096: a ring of 1039, (4096 - 1024) / 16 = 192 cores */
	p = problem(2, 8, 2, 4096, 4096, 64, ATTN_CS, defaults);
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 2 * 1039 * 64 * 4 + 2.0 * 2 * 8 * 192 * 64 * 4);
	/* ns defaults at 4096: a window of 2049, 256 groups */
	p.pattern = ATTN_NS;
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 2 * 2049 * 64 * 4 + 2.0 * 2 * 8 * 256 * 64 * 4);
	/* shorter than the window: the sequence, no cores */
	p = problem(1, 4, 4, 300, 300, 8, ATTN_CS, defaults);
	assert_true(v->state_bytes(&p) == 2.0 * 4 * 300 * 8 * 4);
	p.pattern = ATTN_NS;
	assert_true(v->state_bytes(&p) == 2.0 * 4 * 300 * 8 * 4);
	/* g 4, w 8 at 50: cs 11 positions and 10 cores; ns 17 and 13 groups (the last short) */
	p = problem(1, 4, 2, 50, 50, 8, ATTN_CS, small);
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 11 * 8 * 4 + 2.0 * 4 * 10 * 8 * 4);
	p.pattern = ATTN_NS;
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 17 * 8 * 4 + 2.0 * 4 * 13 * 8 * 4);
	/* w 0: cs keeps a whole group to pool, (50 - 0) / 4 = 12 cores; ns one key */
	p = problem(1, 4, 2, 50, 50, 8, ATTN_CS, zero);
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 4 * 8 * 4 + 2.0 * 4 * 12 * 8 * 4);
	p.pattern = ATTN_NS;
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 1 * 8 * 4 + 2.0 * 4 * 13 * 8 * 4);
}

/*
 * 4d per (row, local key or core it sees) plus 6d per key pooled into a core that is
 * made, counted here from the catalogue's sets.
 */
static void test_cca_flops_count_the_pairs_it_keeps(void **state)
{
	static const double flop_settings[][P_COUNT] = { { 4, 8 }, { 16, 1024 }, { 5, 0 } };
	static const int lengths[] = { 17, 300, 1500 };
	const struct variant_ops *v = variant();

	(void)state;
	for (int si = 0; si < COUNT(flop_settings); si++)
		for (int li = 0; li < COUNT(lengths); li++)
			for (int pat = ATTN_NS; pat <= ATTN_CS; pat++) {
				int n = lengths[li], g = (int)flop_settings[si][P_GROUP];
				int w = (int)flop_settings[si][P_WINDOW];
				struct attn_problem p = problem(2, 4, 2, n, n, 12, pat,
								flop_settings[si]);
				int groups = group_count(&p, g);
				double pairs = 0, pooled = 0;
				bool any = false;

				for (int i = 0; i < n; i++) {
					for (int j = 0; j < n; j++)
						pairs += sees_key(&p, g, w, i, j);
					for (int c = 0; c < groups; c++) {
						pairs += sees_core(&p, g, w, i, c);
						any |= sees_core(&p, g, w, i, c);
					}
				}
				/* cs makes the cores row N - 1 sees; ns all, if any is seen */
				for (int c = 0; c < groups; c++)
					if (pat == ATTN_CS ? sees_core(&p, g, w, n - 1, c) : any)
						pooled += group_end(&p, g, c) - c * g;
				assert_true(v->flops(&p) ==
					    2.0 * 4 * 12 * (4 * pairs + 6 * pooled));
			}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cca_matches_an_fp64_transcription_in_cs),
		cmocka_unit_test(test_cca_matches_an_fp64_transcription_in_ns),
		cmocka_unit_test(test_cca_matches_the_transcription_over_many_tiles),
		cmocka_unit_test(test_cca_with_a_window_covering_the_sequence_is_vanilla),
		cmocka_unit_test(test_cca_with_groups_of_one_is_vanilla),
		cmocka_unit_test(test_cca_with_a_short_window_and_groups_differs_from_vanilla),
		cmocka_unit_test(test_cca_cs_ignores_later_rows_for_several_settings),
		cmocka_unit_test(test_cca_gives_gqa_as_mha_with_repeated_kv),
		cmocka_unit_test(test_cca_gives_finite_output_for_large_inputs),
		cmocka_unit_test(test_cca_rows_see_a_far_group_only_through_its_core),
		cmocka_unit_test(test_cca_pools_each_group_by_its_last_query),
		cmocka_unit_test(test_cca_decoding_matches_its_causal_forward),
		cmocka_unit_test(test_cca_decoding_refuses_ns_and_bad_settings),
		cmocka_unit_test(test_cca_decoding_holds_its_state_bytes),
		cmocka_unit_test(test_cca_defaults_are_the_catalogues),
		cmocka_unit_test(test_cca_refuses_cross_patterns_and_a_window_off_the_groups),
		cmocka_unit_test(test_cca_state_bytes_follow_their_formula),
		cmocka_unit_test(test_cca_flops_count_the_pairs_it_keeps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
