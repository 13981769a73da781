/*
 * test-sparsemax.c - sparsemax attention against a plain fp64 transcription of the
 * catalogue's sort-based projection (VARIANTS.md section 23) on awkward shapes in all
 * four patterns and at several scales, and its catalogue properties: the worked example
 * z = [1, 0.5, 0], convex rows with exact zeros, shift invariance, a lead of 1 giving a
 * one-hot row, sort and bisection thresholds agreeing, causality, GQA, its parameter, its
 * workspace, and its state and FLOPs by formula.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "variant-test.h"

/* fp32 kernel against the fp64 transcription: the spec's bound. */
#define TOLERANCE 1e-5
/* Sort and bisection are two fp64 routes to one threshold: the catalogue's bound. */
#define THRESHOLD_AGREEMENT 1e-6
/* A row of fp32 weights sums to 1 up to the rounding of a few dozen additions. */
#define SUM_TOLERANCE 1e-5

static const struct variant_ops *sparsemax(void)
{
	return variant_must_find("sparsemax");
}

/* ---- the catalogue in double ---- */

static int descending(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x < y) - (x > y);
}

/*
 * The threshold by the catalogue's sort: z_(1) >= z_(2) >= ..., k* = max{k : 1 + k z_(k)
 * > sum_{r<=k} z_(r)}, tau = (sum_{r<=k*} z_(r) - 1) / k*. sorted is scratch of len.
 */
static double tau_by_sort(const double *z, int len, double *sorted)
{
	double sum = 0, kept_sum = 0;
	int kstar = 0;

	memcpy(sorted, z, sizeof(double) * len);
	qsort(sorted, len, sizeof(double), descending);
	for (int k = 1; k <= len; k++) {
		sum += sorted[k - 1];
		if (1 + k * sorted[k - 1] > sum) {
			kstar = k;
			kept_sum = sum;
		}
	}
	return (kept_sum - 1) / kstar;
}

/*
 * The threshold by the catalogue's bisection: tau in [max z - 1, max z] with
 * sum_j max(z_j - tau, 0) = 1, halved until the interval cannot shrink, then tau
 * recomputed from the support found, {z > lo}.
 */
static double tau_by_bisection(const double *z, int len)
{
	double lo = z[0], hi, sum = 0;
	int count = 0;

	for (int j = 1; j < len; j++)
		lo = fmax(lo, z[j]);
	hi = lo;
	lo -= 1;
	for (;;) {
		double mid = (lo + hi) / 2, mass = 0;

		if (mid <= lo || mid >= hi)
			break;
		for (int j = 0; j < len; j++)
			mass += fmax(z[j] - mid, 0);
		if (mass >= 1)
			lo = mid;
		else
			hi = mid;
	}
	for (int j = 0; j < len; j++)
		if (z[j] > lo) {
			sum += z[j];
			count++;
		}
	return (sum - 1) / count;
}

/* z_j = scale q_i.k_j / sqrt(d) over the allowed keys of row i (cs: j <= i). */
static int row_scores(const struct attn_problem *p, double scale, const float *qh,
		      const float *kh, int i, double *z)
{
	int len = p->pattern == ATTN_CS ? i + 1 : p->m;

	for (int j = 0; j < len; j++) {
		double x = 0;

		for (int c = 0; c < p->d; c++)
			x += (double)qh[(size_t)i * p->d + c] * kh[(size_t)j * p->d + c];
		z[j] = scale * x / sqrt((double)p->d);
	}
	return len;
}

/*
 * The catalogue by plain loops: per slice and row, the scores over the allowed keys,
 * tau by the sort, p_j = max(z_j - tau, 0), o_i = sum_j p_j v_j. weights, when not
 * NULL, gets p per slice and row, m entries (0 for keys a cs row may not see).
 */
static void transcription(const struct attn_problem *p, double scale, const float *q,
			  const float *k, const float *v, double *out, double *weights)
{
	int n = p->n, m = p->m, d = p->d;
	double *z = malloc(sizeof(double) * m), *sorted = malloc(sizeof(double) * m);

	assert_non_null(z);
	assert_non_null(sorted);
	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			const float *qh = q + problem_q_offset(p, b, h);
			const float *kh = k + problem_kv_offset(p, b, h);
			const float *vh = v + problem_kv_offset(p, b, h);
			double *oh = out + problem_q_offset(p, b, h);

			for (int i = 0; i < n; i++) {
				size_t row = ((size_t)b * p->heads + h) * n + i;
				int len = row_scores(p, scale, qh, kh, i, z);
				double tau = tau_by_sort(z, len, sorted), *oi = oh + (size_t)i * d;
				double *w = weights ? weights + row * m : NULL;

				for (int c = 0; c < d; c++)
					oi[c] = 0;
				for (int j = 0; j < m; j++) {
					double pj = j < len ? fmax(z[j] - tau, 0) : 0;

					if (w)
						w[j] = pj;
					for (int c = 0; c < d && pj > 0; c++)
						oi[c] += pj * vh[(size_t)j * d + c];
				}
			}
		}
	free(sorted);
	free(z);
}

/* Runs sparsemax at scale on a fresh N(0, 1) draw; checks it against the transcription. */
static void check_transcription(const struct attn_problem *p, double scale, uint64_t seed)
{
	struct tensors t;
	double *ref = reference_make(&t, p, seed);

	transcription(p, scale, t.q, t.k, t.v, ref, NULL);
	check_output(sparsemax(), p, &t, ref, TOLERANCE, " scale=%g", scale);
}

/*
 * The scales of the tests: the default; a flat 0.05, where nearly every key is in the
 * support and tiles take the dense product; a sharp 4, with supports of a key or two.
 */
static const double scales[] = { 1, 0.05, 4 };

/*
 * Every shape of the grid in every pattern (odd n, n != m across, d 8, 12 and 64, MHA,
 * GQA and MQA) at the default scale; at the other scales every size and pattern, each
 * with a third of the (d, KV heads) pairs, a different third per scale and size, so the
 * test stays short.
 */
static void test_sparsemax_matches_an_fp64_transcription_on_awkward_shapes(void **state)
{
	uint64_t seed = SEED;
	int checked = 0;

	(void)state;
	for (int si = 0; si < COUNT(scales); si++) {
		double params[1] = { scales[si] };

		for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
			struct shape_walk w = { 0 };
			struct attn_problem p;

			while (shape_walk_next(&w, pat, si ? params : NULL, &p)) {
				if (si && (w.di + w.kv + w.a + w.b + si) % 3)
					continue;
				check_transcription(&p, scales[si], seed++);
				checked++;
			}
		}
	}
	/* self: 4 sizes, cross: 12 pairs; two patterns of each; 9 (d, kv), then 3 twice */
	assert_int_equal(checked, 2 * (4 + 12) * (9 + 3 + 3));
}

/*
 * Long rows (4096 keys): a few dozen candidates within 1 of the maximum at the default
 * scale; at 0.01 every key is a candidate, about 10 pivot passes find a support of 5%
 * (the gather); at 0.001 the support is a third of the keys (the dense product).
 */
static void test_sparsemax_matches_the_transcription_on_long_rows(void **state)
{
	static const double long_scales[] = { 1, 0.01, 0.001 };

	(void)state;
	for (int si = 0; si < COUNT(long_scales); si++)
		for (int pat = ATTN_NC; pat <= ATTN_CC; pat++) {
			double params[1] = { long_scales[si] };
			struct attn_problem p = problem(1, 2, 1, 33, 4096, 64, pat, params);

			check_transcription(&p, long_scales[si], SEED + 100 + si);
		}
}

/* The two fp64 thresholds agree on random rows of every length and spread. */
static void test_sparsemax_sort_and_bisection_thresholds_agree(void **state)
{
	static const int lengths[] = { 1, 2, 3, 17, 257, 4096 };
	static const double spreads[] = { 0.001, 0.1, 1, 4, 100 };
	double *z = malloc(sizeof(double) * 4096), *sorted = malloc(sizeof(double) * 4096);
	struct rng g = { SEED + 200 };

	(void)state;
	assert_non_null(z);
	assert_non_null(sorted);
	for (int li = 0; li < COUNT(lengths); li++)
		for (int si = 0; si < COUNT(spreads); si++)
			for (int rep = 0; rep < 4; rep++) {
				double a, b;

				for (int j = 0; j < lengths[li]; j++)
					z[j] = spreads[si] * rng_normal(&g) + rep;
				a = tau_by_sort(z, lengths[li], sorted);
				b = tau_by_bisection(z, lengths[li]);
				if (!(fabs(a - b) <= THRESHOLD_AGREEMENT))
					print_error("len %d spread %g: sort %.17g bisection %.17g\n",
						    lengths[li], spreads[si], a, b);
				assert_true(fabs(a - b) <= THRESHOLD_AGREEMENT);
			}
	free(sorted);
	free(z);
}

/* ---- constructed scores ---- */

/*
 * Value row j = e_j (m <= d), so each output row is its row's weight vector. The tests
 * that use it build exact scores: at d = 16, sigma = 1/4 (d = 64: 1/8), so a query 4 e_0
 * (8 e_0) and a key z e_0 score exactly z when z has few mantissa bits.
 */
static void one_hot_values(struct tensors *t, const struct attn_problem *p)
{
	size_t slices = (size_t)p->batch * p->kv_heads;

	assert_true(p->m <= p->d);
	memset(t->v, 0, sizeof(float) * t->nkv);
	for (size_t s = 0; s < slices; s++)
		for (int j = 0; j < p->m; j++)
			t->v[(s * p->m + j) * p->d + j] = 1;
}

/*
 * The catalogue's example: scores [1, 0.5, 0] give weights [0.75, 0.25, 0], exactly (the
 * scores and the threshold 0.25 are exact in float). In cs, row 0 sees [1] (weight 1)
 * and row 1 sees [1, 0.5], whose threshold is also 0.25.
 */
static void test_sparsemax_projects_the_catalogue_example(void **state)
{
	static const float z[3] = { 1, 0.5f, 0 };
	static const float want[3][3] = {
		{ 0.75f, 0.25f, 0 }, { 0.75f, 0.25f, 0 }, { 0.75f, 0.25f, 0 },
	};
	static const float want_cs[3][3] = {
		{ 1, 0, 0 }, { 0.75f, 0.25f, 0 }, { 0.75f, 0.25f, 0 },
	};

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		struct attn_problem p = problem(1, 2, 1, 3, 3, 16, pat, NULL);
		struct tensors t;

		tensors_make(&t, &p, SEED + 300, 1.0);
		memset(t.q, 0, sizeof(float) * t.nq);
		memset(t.k, 0, sizeof(float) * t.nkv);
		for (int s = 0; s < 2; s++)
			for (int i = 0; i < 3; i++)
				t.q[((size_t)s * 3 + i) * 16] = 4;
		for (int j = 0; j < 3; j++)
			t.k[(size_t)j * 16] = z[j];
		one_hot_values(&t, &p);
		run(sparsemax(), &p, &t);
		for (int s = 0; s < 2; s++)
			for (int i = 0; i < 3; i++) {
				const float *o = t.o + ((size_t)s * 3 + i) * 16;
				const float *row = pat == ATTN_CS ? want_cs[i] : want[i];

				for (int j = 0; j < 3; j++)
					assert_true(o[j] == row[j]);
				for (int c = 3; c < 16; c++)
					assert_true(o[c] == 0);
			}
		tensors_release(&t);
	}
}

/*
 * Random Q and K (d = 64), value rows e_j, so each output row is its weight vector:
 * every weight >= 0, each row sums to 1, equals the transcription's weights, and every
 * row with at least 17 allowed keys has some weight exactly 0.0f; in cs the keys after
 * the row weigh exactly 0.
 */
static void test_sparsemax_rows_are_convex_with_exact_zeros(void **state)
{
	static const int shapes[][2] = { { 63, 63 }, { 17, 17 }, { 40, 63 }, { 70, 17 } };
	uint64_t seed = SEED + 400;

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++)
		for (int si = 0; si < COUNT(shapes); si++) {
			int n = shapes[si][0], m = shapes[si][1], d = 64, zero_rows = 0;
			struct attn_problem p;
			struct tensors t;
			double *ref, *w;

			if (pattern_is_self(pat) != (n == m))
				continue;
			p = problem(2, 4, 2, n, m, d, pat, NULL);
			tensors_make(&t, &p, seed++, 1.0);
			one_hot_values(&t, &p);
			ref = malloc(sizeof(double) * t.nq);
			w = malloc(sizeof(double) * 8 * n * m);
			assert_non_null(ref);
			assert_non_null(w);
			transcription(&p, 1.0, t.q, t.k, t.v, ref, w);
			run(sparsemax(), &p, &t);
			for (int r = 0; r < 8 * n; r++) {
				const float *o = t.o + (size_t)r * d;
				int len = pat == ATTN_CS ? r % n + 1 : m, zeros = 0;
				double sum = 0;

				for (int j = 0; j < m; j++) {
					assert_true(o[j] >= 0);
					assert_float_equal(o[j], w[(size_t)r * m + j],
							   TOLERANCE);
					sum += o[j];
					zeros += j < len && o[j] == 0.0f;
					if (j >= len)
						assert_true(o[j] == 0.0f);
				}
				for (int c = m; c < d; c++)
					assert_true(o[c] == 0.0f);
				assert_float_equal(sum, 1.0, SUM_TOLERANCE);
				if (len >= 17) {
					assert_true(zeros > 0);
					zero_rows++;
				}
			}
			assert_true(m < 17 || zero_rows > 0);
			free(w);
			free(ref);
			tensors_release(&t);
		}
}

/*
 * Adding c_i to every score of row i leaves its weights unchanged: a last component a_i
 * on query i and b on every key adds a_i b sigma to all of row i's scores (here 0.5 to
 * 3.5 at sigma = 1/4); the other components are random.
 */
static void test_sparsemax_is_shift_invariant(void **state)
{
	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		int n = 45, m = pattern_is_self(pat) ? 45 : 70, d = 16;
		struct attn_problem p = problem(2, 4, 2, n, m, d, pat, NULL);
		struct tensors a, b;
		double moved;

		tensors_make(&a, &p, SEED + 500 + pat, 1.0);
		for (size_t r = 0; r < a.nq / d; r++)
			a.q[r * d + d - 1] = 0;
		for (size_t r = 0; r < a.nkv / d; r++)
			a.k[r * d + d - 1] = 0;
		tensors_copy(&b, &a);
		for (size_t r = 0; r < b.nq / d; r++)
			b.q[r * d + d - 1] = 1 + (float)(r % 7);
		for (size_t r = 0; r < b.nkv / d; r++)
			b.k[r * d + d - 1] = 2;
		run(sparsemax(), &p, &a);
		run(sparsemax(), &p, &b);
		moved = error_vs_float(b.o, a.o, a.nq);
		if (!(moved <= TOLERANCE))
			print_error("%s: shifted rows moved by %g\n", pattern_name(pat), moved);
		assert_true(moved <= TOLERANCE);
		tensors_release(&a);
		tensors_release(&b);
	}
}

/*
 * When the best score leads every other allowed one by at least 1, the row is one-hot:
 * weight exactly 1 on the best key, exactly 0 elsewhere (a lead of exactly 1 included:
 * the runner-up's weight z_(2) - (z_(1) - 1) is 0). Scores are exact multiples of 1/1024
 * on e_0 (d = 64, queries 8 e_0); in cs the best key is key 0, so every row sees it.
 */
static void test_sparsemax_a_lead_of_one_gives_a_one_hot_row(void **state)
{
	static const double leads[] = { 1, 1 + 1.0 / 1024, 1.5, 7 };
	struct rng g = { SEED + 600 };

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++)
		for (int li = 0; li < COUNT(leads); li++) {
			int n = 29, m = pattern_is_self(pat) ? 29 : 16, d = 64;
			struct attn_problem p = problem(1, 2, 1, n, m, d, pat, NULL);
			int best = pat == ATTN_CS ? 0 : (int)(rng_next(&g) % m);
			double top = -INFINITY;
			struct tensors t;

			tensors_make(&t, &p, SEED + 610 + li, 1.0);
			for (size_t r = 0; r < t.nq / d; r++)
				t.q[r * d] = 8;
			for (size_t r = 0; r < t.nq / d; r++)
				for (int c = 1; c < d; c++)
					t.q[r * d + c] = 0;
			for (int j = 0; j < m; j++) {
				/* a multiple of 1/1024 in (-2, 0] */
				t.k[(size_t)j * d] = -(float)(rng_next(&g) % 2048) / 1024;
				if (j != best)
					top = fmax(top, t.k[(size_t)j * d]);
			}
			t.k[(size_t)best * d] = (float)(top + leads[li]);
			one_hot_values(&t, &p);
			run(sparsemax(), &p, &t);
			for (int r = 0; r < 2 * n; r++)
				for (int c = 0; c < d; c++) {
					float want = c == best ? 1.0f : 0.0f;

					assert_true(t.o[(size_t)r * d + c] == want);
				}
			tensors_release(&t);
		}
}

/*
 * The scale multiplies sigma: scale 2 on Q is scale 1 on 2Q (to rounding), and sparsemax
 * is not scale-invariant: scale 2 gives other weights than scale 1.
 */
static void test_sparsemax_scale_multiplies_sigma(void **state)
{
	double two[1] = { 2 };
	struct attn_problem p1 = problem(2, 4, 2, 63, 63, 12, ATTN_NS, NULL);
	struct attn_problem p2 = problem(2, 4, 2, 63, 63, 12, ATTN_NS, two);
	struct tensors a, b;

	(void)state;
	tensors_make(&a, &p2, SEED + 700, 1.0);
	tensors_copy(&b, &a);
	for (size_t x = 0; x < b.nq; x++)
		b.q[x] *= 2;
	run(sparsemax(), &p2, &a);
	run(sparsemax(), &p1, &b);
	assert_true(error_vs_float(a.o, b.o, a.nq) <= TOLERANCE);
	memcpy(b.q, a.q, sizeof(float) * a.nq);
	run(sparsemax(), &p1, &b);
	assert_true(error_vs_float(a.o, b.o, a.nq) > 1e-2);
	tensors_release(&a);
	tensors_release(&b);
}

/* ---- causality, GQA, memory, declarations ---- */

/*
 * cs: changing Q, K and V rows after t moves rows <= t by rounding at most (a tile's
 * choice of route for the weighted sum reads its later rows); cc: changing Q rows after
 * t does. Cuts inside and between the 64-row tiles, at every scale.
 */
static void test_sparsemax_rows_ignore_later_positions(void **state)
{
	static const int cuts[] = { 0, 5, 63, 64, 100 };

	(void)state;
	for (int pat = ATTN_CS; pat <= ATTN_CC; pat += ATTN_CC - ATTN_CS)
		for (int si = 0; si < COUNT(scales); si++) {
			double params[1] = { scales[si] };
			struct attn_problem p = problem(2, 4, 2, 130, pat == ATTN_CS ? 130 : 77,
							12, pat, params);
			struct tensors a;

			tensors_make(&a, &p, SEED + 800 + si, 1.0);
			run(sparsemax(), &p, &a);
			for (int ci = 0; ci < COUNT(cuts); ci++) {
				struct tensors b;
				struct rng g = { SEED + 810 + ci };
				int t = cuts[ci];
				double moved;

				tensors_copy(&b, &a);
				perturb_rows_after(&g, b.q, 8, p.n, p.d, t);
				if (pat == ATTN_CS) {
					perturb_rows_after(&g, b.k, 4, p.m, p.d, t);
					perturb_rows_after(&g, b.v, 4, p.m, p.d, t);
				}
				run(sparsemax(), &p, &b);
				moved = change_up_to(&p, a.o, b.o, t);
				if (!(moved <= TOLERANCE))
					print_error("%s scale %g t=%d: rows <= t moved by %g\n",
						    pattern_name(pat), scales[si], t, moved);
				assert_true(moved <= TOLERANCE);
				/* and the perturbation did reach the later rows */
				assert_true(change_up_to(&p, a.o, b.o, p.n - 1) > 1e-3);
				tensors_release(&b);
			}
			tensors_release(&a);
		}
}

/* Grouped KV heads give, bit for bit, MHA with each KV head repeated for its group. */
static void test_sparsemax_gives_gqa_as_mha_with_repeated_kv(void **state)
{
	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++)
		for (int si = 0; si < COUNT(scales); si++)
			for (int kv = 1; kv <= 2; kv++) {
				int n = 97, m = pattern_is_self(pat) ? 97 : 150, d = 12;
				double params[1] = { scales[si] };
				struct attn_problem gqa = problem(2, 4, kv, n, m, d, pat, params);

				check_gqa_is_mha_bit_for_bit(sparsemax(), &gqa, SEED + 900 + kv);
			}
}

/* The allocator's peak over one forward of p on a fresh draw. */
static size_t forward_peak(const struct attn_problem *p)
{
	struct tensors t;
	size_t before, peak;

	tensors_make(&t, p, SEED, 1.0);
	before = memory_live_bytes();
	memory_reset_peak();
	run(sparsemax(), p, &t);
	peak = memory_peak_bytes() - before;
	tensors_release(&t);
	return peak;
}

/*
 * The workspace is a tile of scores per thread, O(tile x M): the same for 64 and 8192
 * query rows, twice as much for twice the keys, and far below one n x m score matrix.
 */
static void test_sparsemax_workspace_is_a_tile_of_scores(void **state)
{
	struct attn_problem few = problem(1, 2, 2, 64, 1024, 64, ATTN_NC, NULL);
	struct attn_problem many = problem(1, 2, 2, 8192, 1024, 64, ATTN_NC, NULL);
	struct attn_problem wide = problem(1, 2, 2, 64, 2048, 64, ATTN_NC, NULL);
	size_t a = forward_peak(&few), b = forward_peak(&many), c = forward_peak(&wide);

	(void)state;
	assert_true(a > 0);
	assert_int_equal(a, b);
	assert_true(c > b + b / 2 && c < 2 * b + b / 16);
	assert_true(b < sizeof(float) * 8192 * 1024 / 16);
}

/* Every key and value of every KV head, float32: 2 B Hkv M d 4 bytes, at any scale. */
static void test_sparsemax_state_bytes_are_the_kv_cache(void **state)
{
	static const double scale[] = { 1, 0.01, 50 };

	(void)state;
	for (int si = 0; si < COUNT(scale); si++) {
		struct attn_problem p = problem(2, 8, 2, 300, 300, 64, ATTN_CS, &scale[si]);

		assert_true(sparsemax()->state_bytes(&p) == 2.0 * 2 * 2 * 300 * 64 * 4);
		p = problem(1, 4, 4, 17, 33, 8, ATTN_NC, &scale[si]);
		assert_true(sparsemax()->state_bytes(&p) == 2.0 * 1 * 4 * 33 * 8 * 4);
	}
}

/*
 * 2d per allowed (query, key) pair, the scores' product, per head:
 *   nc 10 x 40: 400 pairs; cs n = 10: 55 pairs.
 */
static void test_sparsemax_flops_count_the_scores(void **state)
{
	struct attn_problem p;

	(void)state;
	p = problem(2, 3, 1, 10, 40, 8, ATTN_NC, NULL);
	assert_true(sparsemax()->flops(&p) == 2.0 * 2 * 3 * 8 * 400);
	p = problem(2, 3, 1, 10, 40, 8, ATTN_CC, NULL);
	assert_true(sparsemax()->flops(&p) == 2.0 * 2 * 3 * 8 * 400);
	p = problem(2, 3, 1, 10, 10, 8, ATTN_CS, NULL);
	assert_true(sparsemax()->flops(&p) == 2.0 * 2 * 3 * 8 * 55);
	p = problem(1, 1, 1, 10, 10, 8, ATTN_NS, NULL);
	assert_true(sparsemax()->flops(&p) == 2.0 * 8 * 100);
}

/* All four patterns, every one a harness extension; scale as section 32 names it. */
static void test_sparsemax_declares_its_patterns_and_parameter(void **state)
{
	const struct variant_ops *v = sparsemax();

	(void)state;
	assert_string_equal(v->family, "normalisation");
	assert_int_equal(v->patterns, PATTERNS_ALL);
	assert_int_equal(v->extensions, PATTERNS_ALL);
	assert_int_equal(v->flags, 0);
	assert_null(v->mask);
	assert_null(v->decode_init);
	assert_int_equal(v->n_params, 1);
	assert_string_equal(v->params[0].name, "scale");
	assert_true(v->params[0].def == 1);
	assert_true(v->params[0].min >= 0);
	assert_false(v->params[0].integer);
	assert_int_equal(variant_param_index(v, "scale"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sparsemax_matches_an_fp64_transcription_on_awkward_shapes),
		cmocka_unit_test(test_sparsemax_matches_the_transcription_on_long_rows),
		cmocka_unit_test(test_sparsemax_sort_and_bisection_thresholds_agree),
		cmocka_unit_test(test_sparsemax_projects_the_catalogue_example),
		cmocka_unit_test(test_sparsemax_rows_are_convex_with_exact_zeros),
		cmocka_unit_test(test_sparsemax_is_shift_invariant),
		cmocka_unit_test(test_sparsemax_a_lead_of_one_gives_a_one_hot_row),
		cmocka_unit_test(test_sparsemax_scale_multiplies_sigma),
		cmocka_unit_test(test_sparsemax_rows_ignore_later_positions),
		cmocka_unit_test(test_sparsemax_gives_gqa_as_mha_with_repeated_kv),
		cmocka_unit_test(test_sparsemax_workspace_is_a_tile_of_scores),
		cmocka_unit_test(test_sparsemax_state_bytes_are_the_kv_cache),
		cmocka_unit_test(test_sparsemax_flops_count_the_scores),
		cmocka_unit_test(test_sparsemax_declares_its_patterns_and_parameter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
