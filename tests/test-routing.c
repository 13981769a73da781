/*
 * test-routing.c - Routing attention against a plain fp64 transcription of VARIANTS.md
 * section 8 on awkward shapes, and its catalogue properties: one cluster is vanilla,
 * every balanced key set holds exactly w keys, cs and cc ignore later rows, GQA is MHA
 * with K/V repeated, cs decoding matches the causal pass, the default C is round(sqrt(M)),
 * the state by formula, the refusals, and a workspace well below the score matrix.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "variant-test.h"
#include "random.h"

/* fp32 kernel against the fp64 transcription: the spec's bound. */
#define TOLERANCE 1e-5
/*
 * A slice is compared only when every discrete choice of the transcription (an argmax,
 * the edge of a balanced set) wins by at least this much in cosine: the kernel decides
 * in fp32, where a cosine is off by up to about d * 2^-24 (4e-6 at d = 64), so a closer
 * choice may fall either way and both outputs are right.
 */
#define MARGIN 1e-5
/*
 * Rows <= t may move by rounding only (the catalogue's bound): a later row can change
 * the size of an earlier row's query tile and key block, hence sgemm's blocking.
 */
#define CAUSAL_TOLERANCE 1e-5

/* The plan streams the variant documents: ns/nc per query head, cc and cs one each. */
#define HEAD_STREAM(h) (1000 * (uint64_t)(h))
#define KEY_STREAM 1
#define FIXED_STREAM 2

static const struct variant_ops *routing(void)
{
	return variant_must_find("routing");
}

/* C from the params as the catalogue defines it: 0 (or no params) is round(sqrt(M)). */
static int clusters_for(const double *params, int m)
{
	int c = params ? (int)params[0] : 0;

	return c ? c : (int)lround(sqrt((double)m));
}

static int iters_for(const double *params)
{
	return params ? (int)params[1] : 10;
}

/* ---- the transcription ---- */

/* Rows x of d doubles scaled to unit length (a zero row stays zero). */
static double *unit_rows(const float *x, int rows, int d)
{
	double *u = malloc(sizeof(double) * rows * d);

	assert_non_null(u);
	for (int r = 0; r < rows; r++) {
		double ss = 0;

		for (int e = 0; e < d; e++)
			ss += (double)x[r * d + e] * x[r * d + e];
		for (int e = 0; e < d; e++)
			u[r * d + e] = ss > 0 ? x[r * d + e] / sqrt(ss) : 0;
	}
	return u;
}

static double dot_d(const double *a, const double *b, int d)
{
	double s = 0;

	for (int e = 0; e < d; e++)
		s += a[e] * b[e];
	return s;
}

/* argmax_c x . mu_c, ties to the smaller c; the winning gap lowers *margin. */
static int nearest_d(const double *x, const double *mu, int clusters, int d, double *margin)
{
	double best = -INFINITY, second = -INFINITY;
	int at = 0;

	for (int c = 0; c < clusters; c++) {
		double s = dot_d(x, mu + c * d, d);

		if (s > best) {
			second = best;
			best = s;
			at = c;
		} else if (s > second) {
			second = s;
		}
	}
	if (clusters > 1)
		*margin = fmin(*margin, best - second);
	return at;
}

/*
 * The centroids' first rows as the variant documents its draw: Floyd's algorithm over
 * [0, rows), t = plan_rng_below(j + 1) for j = rows - C .. rows - 1, j when t is taken.
 */
static void floyd_draw(uint64_t seed, uint64_t stream, int rows, int count, int *out)
{
	struct plan_rng g = plan_rng_make(seed, stream);
	int got = 0;

	for (int j = rows - count; j < rows; j++) {
		int t = (int)plan_rng_below(&g, (uint64_t)j + 1);
		bool taken = false;

		for (int x = 0; x < got; x++)
			taken |= out[x] == t;
		out[got++] = taken ? j : t;
	}
}

/* How many times lloyd_d() has kept the centroid of a cluster left without rows. */
static int kept_empty;

/*
 * T Lloyd steps on the rows of x: every row to its nearest centroid, each centroid the
 * normalised sum of its rows; no rows (or a zero sum) keeps it.
 */
static void lloyd_d(const double *x, int rows, int d, double *mu, int clusters, int iters,
		    double *margin)
{
	int *assign = malloc(sizeof(int) * rows);
	double *sum = malloc(sizeof(double) * d);

	assert_non_null(assign);
	assert_non_null(sum);
	for (int it = 0; it < iters; it++) {
		for (int r = 0; r < rows; r++)
			assign[r] = nearest_d(x + r * d, mu, clusters, d, margin);
		for (int c = 0; c < clusters; c++) {
			double ss = 0;
			int count = 0;

			for (int e = 0; e < d; e++)
				sum[e] = 0;
			for (int r = 0; r < rows; r++)
				if (assign[r] == c) {
					count++;
					for (int e = 0; e < d; e++)
						sum[e] += x[r * d + e];
				}
			for (int e = 0; e < d; e++)
				ss += sum[e] * sum[e];
			kept_empty += !count;
			if (count && ss > 0)
				for (int e = 0; e < d; e++)
					mu[c * d + e] = sum[e] / sqrt(ss);
		}
	}
	free(sum);
	free(assign);
}

/* Row i of o: softmax of q_i . k_j / sqrt(d) over the keys with allowed[j]. */
static void softmax_row(const float *qi, const float *k, const float *v, int m, int d,
			const bool *allowed, double *o)
{
	double max = -INFINITY, sum = 0, *s = malloc(sizeof(double) * m);

	assert_non_null(s);
	for (int e = 0; e < d; e++)
		o[e] = 0;
	for (int j = 0; j < m; j++) {
		if (!allowed[j])
			continue;
		s[j] = 0;
		for (int e = 0; e < d; e++)
			s[j] += (double)qi[e] * k[j * d + e];
		s[j] /= sqrt((double)d);
		max = fmax(max, s[j]);
	}
	for (int j = 0; j < m; j++) {
		double w;

		if (!allowed[j])
			continue;
		w = exp(s[j] - max);
		sum += w;
		for (int e = 0; e < d; e++)
			o[e] += w * v[j * d + e];
	}
	for (int e = 0; e < d; e++)
		o[e] = sum > 0 ? o[e] / sum : 0;
	free(s);
}

/*
 * in_set[j] for the balanced set of centroid mu: the w keys of largest kh_j . mu, ties to
 * the smaller j, chosen one at a time; the gap at the set's edge lowers *margin.
 */
static void balanced_set(const double *kh, int m, int d, const double *mu, int w, bool *in_set,
			 double *margin)
{
	double *s = malloc(sizeof(double) * m), last = INFINITY;

	assert_non_null(s);
	for (int j = 0; j < m; j++) {
		s[j] = dot_d(kh + j * d, mu, d);
		in_set[j] = false;
	}
	for (int t = 0; t < w; t++) {
		int best = -1;

		for (int j = 0; j < m; j++)
			if (!in_set[j] && (best < 0 || s[j] > s[best]))
				best = j;
		in_set[best] = true;
		last = s[best];
	}
	for (int j = 0; j < m && w < m; j++)
		if (!in_set[j])
			*margin = fmin(*margin, last - s[j]);
	free(s);
}

/* cs: the C fixed centroids: d normals each from FIXED_STREAM, unit length, as float. */
static double *fixed_centroids_d(uint64_t seed, int clusters, int d)
{
	struct plan_rng g = plan_rng_make(seed, FIXED_STREAM);
	double *mu = malloc(sizeof(double) * clusters * d), ss;

	assert_non_null(mu);
	for (int c = 0; c < clusters; c++) {
		ss = 0;
		for (int e = 0; e < d; e++) {
			mu[c * d + e] = plan_rng_normal(&g);
			ss += mu[c * d + e] * mu[c * d + e];
		}
		for (int e = 0; e < d; e++)
			mu[c * d + e] = (float)(mu[c * d + e] / sqrt(ss));
	}
	return mu;
}

/*
 * One (b, h) slice of the whole procedure in double: q (n x d), k and v (m x d), out
 * (n x d). Returns the smallest winning gap of its discrete choices.
 */
static double transcribe_slice(const struct attn_problem *p, int h, const float *q,
			       const float *k, const float *v, double *out)
{
	int n = p->n, m = p->m, d = p->d;
	int clusters = clusters_for(p->params, m), iters = iters_for(p->params);
	int w = (m + clusters - 1) / clusters;
	double *qh = unit_rows(q, n, d), *kh = unit_rows(k, m, d), *mu, margin = INFINITY;
	int *qa = malloc(sizeof(int) * n), *ka = malloc(sizeof(int) * m);
	bool *allowed = malloc(sizeof(bool) * m);

	assert_non_null(qa);
	assert_non_null(ka);
	assert_non_null(allowed);
	if (p->pattern == ATTN_CS) {
		mu = fixed_centroids_d(p->seed, clusters, d);
		for (int j = 0; j < m; j++)
			ka[j] = nearest_d(kh + j * d, mu, clusters, d, &margin);
		for (int i = 0; i < n; i++) {
			qa[i] = nearest_d(qh + i * d, mu, clusters, d, &margin);
			for (int j = 0; j < m; j++)
				allowed[j] = j == i || (j < i && ka[j] == qa[i]);
			softmax_row(q + i * d, k, v, m, d, allowed, out + i * d);
		}
	} else {
		/* ns/nc: [Q^; K^] from the head's stream; cc: K^ alone from one stream */
		bool cc = p->pattern == ATTN_CC;
		int rows = cc ? m : n + m, *draw = malloc(sizeof(int) * clusters);
		bool *sets, *made;
		double *x = malloc(sizeof(double) * rows * d);

		assert_non_null(draw);
		assert_non_null(x);
		if (!cc)
			memcpy(x, qh, sizeof(double) * n * d);
		memcpy(x + (cc ? 0 : n * d), kh, sizeof(double) * m * d);
		mu = malloc(sizeof(double) * clusters * d);
		assert_non_null(mu);
		floyd_draw(p->seed, cc ? KEY_STREAM : HEAD_STREAM(h), rows, clusters, draw);
		for (int c = 0; c < clusters; c++)
			memcpy(mu + c * d, x + draw[c] * d, sizeof(double) * d);
		lloyd_d(x, rows, d, mu, clusters, iters, &margin);
		/* the set of every cluster some query lands in, each made once */
		sets = calloc((size_t)clusters * m, sizeof(bool));
		made = calloc((size_t)clusters, sizeof(bool));
		assert_non_null(sets);
		assert_non_null(made);
		for (int i = 0; i < n; i++) {
			int a = qa[i] = nearest_d(qh + i * d, mu, clusters, d, &margin);

			if (!made[a])
				balanced_set(kh, m, d, mu + a * d, w, sets + a * m, &margin);
			made[a] = true;
			softmax_row(q + i * d, k, v, m, d, sets + a * m, out + i * d);
		}
		free(made);
		free(sets);
		free(x);
		free(draw);
	}
	free(mu);
	free(allowed);
	free(ka);
	free(qa);
	free(kh);
	free(qh);
	return margin;
}

/* Relative Frobenius error of one output slice against the transcription. */
static double slice_error(const float *o, const double *ref, size_t count)
{
	return error_vs_double(o, ref, count);
}

struct tally {
	int compared, skipped;
};

/*
 * Runs the variant on one problem and compares every slice whose choices are clear of
 * MARGIN with the transcription; counts the compared and skipped slices.
 */
static void check_transcription(const struct attn_problem *p, uint64_t seed, struct tally *tl)
{
	struct tensors t;
	size_t qs = (size_t)p->n * p->d;
	double *ref = malloc(sizeof(double) * qs);

	assert_non_null(ref);
	tensors_make(&t, p, seed, 1.0);
	run(routing(), p, &t);
	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);
			double margin = transcribe_slice(p, h, t.q + qo, t.k + kvo, t.v + kvo,
							 ref);

			if (margin < MARGIN) {
				tl->skipped++;
				continue;
			}
			tl->compared++;
			check_error(routing(), p, slice_error(t.o + qo, ref, qs), TOLERANCE,
				    " C=%d T=%d b=%d h=%d", clusters_for(p->params, p->m),
				    iters_for(p->params), b, h);
		}
	free(ref);
	tensors_release(&t);
}

/*
 * Every shape of the grid in every pattern for the defaults, and with grouped heads for
 * two other settings.
 */
static void test_routing_matches_an_fp64_transcription_on_awkward_shapes(void **state)
{
	/* defaults (NULL); 5 clusters, 3 steps; 3 clusters and no Lloyd step at all */
	static const double settings[][2] = { { 0, 10 }, { 5, 3 }, { 3, 0 } };
	uint64_t seed = SEED;

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		struct tally tl = { 0 };
		int shapes = 0;

		for (int si = 0; si < COUNT(settings); si++) {
			struct shape_walk w = { 0 };
			struct attn_problem p;

			while (shape_walk_next(&w, pat, si ? settings[si] : NULL, &p)) {
				int c = clusters_for(p.params, p.m);
				bool fits = pat == ATTN_CS || c <= (pat == ATTN_CC ? p.m :
								     p.n + p.m);

				seed++;
				assert_int_equal(variant_check_problem(routing(), &p),
						 fits ? 0 : -ENOTSUP);
				/* the other settings on grouped heads only, to keep the time */
				if (!fits || (si && p.kv_heads != 2))
					continue;
				check_transcription(&p, seed, &tl);
				shapes++;
			}
		}
		print_message("routing %s: %d shapes, %d slices compared, %d too close to call\n",
			      pattern_name(pat), shapes, tl.compared, tl.skipped);
		/* near ties are rare: most slices must be compared */
		assert_true(tl.compared >= 9 * (tl.compared + tl.skipped) / 10);
	}
}

/* A unit vector at `degrees` in the plane of the first two coordinates, scaled by r. */
static void planar(float *x, int d, double degrees, double r)
{
	memset(x, 0, sizeof(float) * d);
	x[0] = (float)(r * cos(degrees * 3.141592653589793 / 180));
	x[1] = (float)(r * sin(degrees * 3.141592653589793 / 180));
}

/*
 * cc, C = 3, T = 3, eight keys in a plane. The draw starts the centroids at the keys at
 * 172, 34 and 46 degrees; after the first step the third centroid sits at about 66
 * degrees and from the second step on has no keys, so it keeps that centroid, and the
 * queries near it are routed to the keys nearest 66 degrees. Every choice wins by more
 * than 0.01 in cosine. The kernel must agree with the transcription, which must have
 * seen the empty cluster.
 */
static void test_routing_keeps_the_centroid_of_an_empty_cluster(void **state)
{
	static const double starts[] = { 172, 34, 46 }, others[] = { 114, 48, 108, 129, 156 };
	static const double queries[] = { 100, 110, 120, 136, 140, 10, 170 };
	double params[2] = { 3, 3 };
	const int n = COUNT(queries), m = 8, d = 8;
	struct attn_problem p = problem(1, 2, 1, n, m, d, ATTN_CC, params);
	struct tensors t;
	double *ref = malloc(sizeof(double) * n * d);
	struct rng g = { SEED + 7000 };
	bool drawn[8] = { false };
	int draw[3], next = 0;

	(void)state;
	assert_non_null(ref);
	tensors_make(&t, &p, SEED + 7000, 1.0);
	floyd_draw(p.seed, KEY_STREAM, m, 3, draw);
	for (int c = 0; c < 3; c++) {
		planar(t.k + draw[c] * d, d, starts[c], 0.5 + 2 * rng_uniform(&g));
		drawn[draw[c]] = true;
	}
	for (int j = 0; j < m; j++)
		if (!drawn[j])
			planar(t.k + j * d, d, others[next++], 0.5 + 2 * rng_uniform(&g));
	for (int h = 0; h < 2; h++)
		for (int i = 0; i < n; i++)
			planar(t.q + (h * n + i) * d, d, queries[i] + 3 * h,
			       0.5 + 2 * rng_uniform(&g));
	run(routing(), &p, &t);
	for (int h = 0; h < 2; h++) {
		size_t qo = problem_q_offset(&p, 0, h);

		kept_empty = 0;
		assert_true(transcribe_slice(&p, h, t.q + qo, t.k, t.v, ref) >= MARGIN);
		assert_true(kept_empty > 0);
		check_error(routing(), &p, slice_error(t.o + qo, ref, (size_t)n * d), TOLERANCE,
			    " h=%d", h);
	}
	free(ref);
	tensors_release(&t);
}

/* C = 1: one cluster, one set of every key (cs: every earlier key): exact attention. */
static void test_routing_with_one_cluster_equals_vanilla(void **state)
{
	static const double one[2] = { 1, 10 };
	uint64_t seed = SEED + 1000;

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		struct shape_walk w = { 0 };
		struct attn_problem p;

		while (shape_walk_next(&w, pat, one, &p)) {
			struct tensors t;
			double *ref;

			/* grouped heads only: the transcription test covers the others */
			if (p.kv_heads != 2)
				continue;
			ref = reference_make(&t, &p, seed++);

			reference_attention(&p, t.q, t.k, t.v, ref);
			check_output(routing(), &p, &t, ref, TOLERANCE, " C=1");
		}
	}
}

/*
 * V = the identity rows (d = 64 >= M), so output coordinate j of a row is the weight of
 * key j: a softmax weight is never 0, a key outside the set contributes exactly 0. Every
 * row of ns, nc and cc must then have exactly w = ceil(M/C) nonzero coordinates; a cs row
 * i only coordinates <= i, i among them, and all i + 1 of them when C = 1.
 */
static void test_routing_gives_every_query_exactly_w_keys(void **state)
{
	static const int shapes[][2] = { { 63, 63 }, { 17, 17 }, { 63, 17 }, { 17, 63 },
					 { 257, 64 }, { 1, 33 } };
	static const int choices[] = { 0, 1, 2, 5, 7, 16, 40 };
	const int d = 64;
	uint64_t seed = SEED + 2000;
	int rows_checked = 0;

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++)
		for (int si = 0; si < COUNT(shapes); si++)
			for (int ci = 0; ci < COUNT(choices); ci++) {
				int n = shapes[si][0], m = shapes[si][1];
				double params[2] = { choices[ci], 4 };
				struct attn_problem p = problem(2, 4, 2, n, m, d, pat, params);
				int c = clusters_for(params, m), wd = (m + c - 1) / c;
				struct tensors t;

				if (pattern_is_self(pat) != (n == m) ||
				    variant_check_problem(routing(), &p))
					continue;
				tensors_make(&t, &p, seed++, 1.0);
				memset(t.v, 0, sizeof(float) * t.nkv);
				for (size_t s = 0; s < (size_t)2 * 2; s++)
					for (int j = 0; j < m; j++)
						t.v[(s * m + j) * d + j] = 1;
				run(routing(), &p, &t);
				for (size_t s = 0; s < (size_t)2 * 4; s++)
					for (int i = 0; i < n; i++) {
						const float *o = t.o + (s * n + i) * d;
						int nonzero = 0, last = -1;

						for (int j = 0; j < d; j++)
							if (o[j] != 0) {
								nonzero++;
								last = j;
							}
						rows_checked++;
						if (pat != ATTN_CS) {
							assert_int_equal(nonzero, wd);
							continue;
						}
						assert_int_equal(last, i);
						if (c == 1)
							assert_int_equal(nonzero, i + 1);
					}
				tensors_release(&t);
			}
	assert_true(rows_checked > 10000);
}

/* One perturbation after row t: rows <= t must not move (cs: Q, K, V; cc: Q only). */
static void check_cut(const struct attn_problem *p, const struct tensors *a, int t)
{
	struct tensors b;
	struct rng g = { SEED + 17 * (uint64_t)t };
	double change;

	tensors_copy(&b, a);
	perturb_rows_after(&g, b.q, (size_t)p->batch * p->heads, p->n, p->d, t);
	if (p->pattern == ATTN_CS) {
		perturb_rows_after(&g, b.k, (size_t)p->batch * p->kv_heads, p->m, p->d, t);
		perturb_rows_after(&g, b.v, (size_t)p->batch * p->kv_heads, p->m, p->d, t);
	}
	run(routing(), p, &b);
	change = change_up_to(p, a->o, b.o, t);
	if (!(change <= CAUSAL_TOLERANCE))
		print_error("%s t=%d: rows <= t moved by %g\n", pattern_name(p->pattern), t,
			    change);
	assert_true(change <= CAUSAL_TOLERANCE);
	/* ...while the later rows themselves do change. */
	if (t + 1 < p->n)
		assert_memory_not_equal(a->o + (size_t)(t + 1) * p->d,
					b.o + (size_t)(t + 1) * p->d, sizeof(float) * p->d);
	tensors_release(&b);
}

static void test_routing_ignores_later_rows_in_cs_and_cc(void **state)
{
	static const int cuts[] = { 0, 1, 6, 20, 41, 61 };
	static const double settings[][2] = { { 0, 10 }, { 3, 2 }, { 9, 10 } };
	static const int dims_[] = { 12, 64 };
	uint64_t seed = SEED + 3000;

	(void)state;
	for (int si = 0; si < COUNT(settings); si++)
		for (int di = 0; di < COUNT(dims_); di++)
			for (int pat = ATTN_CS; pat <= ATTN_CC; pat += ATTN_CC - ATTN_CS) {
				struct attn_problem p = problem(2, 4, 2, 63,
								pat == ATTN_CS ? 63 : 40,
								dims_[di], pat, settings[si]);
				struct tensors a;

				tensors_make(&a, &p, seed++, 1.0);
				run(routing(), &p, &a);
				for (int ci = 0; ci < COUNT(cuts); ci++)
					check_cut(&p, &a, cuts[ci]);
				tensors_release(&a);
			}
}

/*
 * Grouped KV heads give exactly what MHA gives with each KV head repeated: ns/nc cluster
 * per query head, cc and cs share the key clustering of a KV head, the same arithmetic.
 */
static void test_routing_gives_gqa_as_mha_with_repeated_kv(void **state)
{
	static const int shapes[][2] = { { 63, 63 }, { 63, 63 }, { 63, 17 }, { 17, 130 } };

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++)
		for (int kv = 1; kv <= 2; kv++) {
			struct attn_problem gqa = problem(2, 4, kv, shapes[pat][0], shapes[pat][1], 12,
							  pat, NULL);

			check_gqa_is_mha_bit_for_bit(routing(), &gqa, SEED + 4000 + kv);
		}
}

/* Every decode step equals the same row of the cs pass, for several cluster counts. */
static void test_routing_decoding_matches_its_causal_forward(void **state)
{
	static const int lengths[] = { 1, 17, 63, 130 };
	static const int dims_[] = { 8, 12, 64 };
	static const double settings[][2] = { { 0, 10 }, { 1, 10 }, { 7, 10 } };
	uint64_t seed = SEED + 5000;

	(void)state;
	for (int si = 0; si < COUNT(settings); si++)
		for (int li = 0; li < COUNT(lengths); li++)
			for (int di = 0; di < COUNT(dims_); di++)
				for (int kv = 0; kv < COUNT(kv_choices); kv++) {
					struct attn_problem p = problem(2, 4, kv_choices[kv],
									lengths[li], lengths[li],
									dims_[di], ATTN_CS,
									settings[si]);

					check_decode(routing(), &p, seed++);
				}
}

/* The decoder takes cs only, and a step past its capacity fails (checked above too). */
static void test_routing_decoding_refuses_other_patterns(void **state)
{
	static const enum attn_pattern others[] = { ATTN_NS, ATTN_NC, ATTN_CC };
	void *dec = (void *)1;

	(void)state;
	for (int i = 0; i < COUNT(others); i++) {
		struct attn_problem p = problem(1, 2, 2, 16, 16, 8, others[i], NULL);

		assert_int_equal(routing()->decode_init(&p, &dec), -ENOTSUP);
		assert_null(dec);
	}
}

/* C = 0 (the default) is C = round(sqrt(M)), and C is really used. */
static void test_routing_default_clusters_are_round_sqrt_m(void **state)
{
	static const int shapes[][2] = { { 63, 63 }, { 90, 90 }, { 17, 130 }, { 30, 42 } };

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		int n = shapes[pat][0], m = shapes[pat][1];
		int root = (int)lround(sqrt((double)m));
		double def[2] = { 0, 10 }, same[2] = { root, 10 }, other[2] = { root + 1, 10 };
		struct attn_problem p = problem(1, 4, 2, n, m, 16, pat, def);
		struct tensors a, b, c;

		tensors_make(&a, &p, SEED + 6000 + pat, 1.0);
		tensors_copy(&b, &a);
		tensors_copy(&c, &a);
		run(routing(), &p, &a);
		p.params = same;
		run(routing(), &p, &b);
		assert_memory_equal(a.o, b.o, sizeof(float) * a.nq);
		p.params = other;
		run(routing(), &p, &c);
		assert_memory_not_equal(a.o, c.o, sizeof(float) * a.nq);
		p.params = NULL;
		run(routing(), &p, &c);
		assert_memory_equal(a.o, c.o, sizeof(float) * a.nq);
		tensors_release(&a);
		tensors_release(&b);
		tensors_release(&c);
	}
}

/*
 * The KV cache of every key, plus C d float32 centroids per query head (ns, nc), per KV
 * head (cc) or once (cs), plus an int32 cluster id per cached key (cs).
 */
static void test_routing_state_bytes_follow_the_formula(void **state)
{
	const struct variant_ops *v = routing();
	double params[2] = { 7, 10 };
	struct attn_problem p;

	(void)state;
	assert_non_null(v->state_bytes);
	/* C = round(sqrt(300)) = 17 */
	p = problem(2, 8, 2, 300, 300, 64, ATTN_NS, NULL);
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 2 * 300 * 64 * 4 + 2.0 * 8 * 17 * 64 * 4);
	p = problem(1, 4, 4, 17, 33, 8, ATTN_NC, params);
	assert_true(v->state_bytes(&p) == 2.0 * 1 * 4 * 33 * 8 * 4 + 1.0 * 4 * 7 * 8 * 4);
	p = problem(1, 4, 2, 17, 33, 8, ATTN_CC, params);
	assert_true(v->state_bytes(&p) == 2.0 * 1 * 2 * 33 * 8 * 4 + 1.0 * 2 * 7 * 8 * 4);
	p = problem(2, 4, 1, 50, 50, 12, ATTN_CS, params);
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 1 * 50 * 12 * 4 + 2.0 * 1 * 50 * 4 +
					   7.0 * 12 * 4);
}

/*
 * All four patterns, three of them harness extensions; ns/nc need C distinct rows of
 * [Q; K] to start from, cc C rows of K; cs takes any C.
 */
static void test_routing_refuses_more_clusters_than_rows(void **state)
{
	const struct variant_ops *v = routing();
	double many[2] = { 40, 10 };
	struct attn_problem p;

	(void)state;
	assert_true(v->patterns == PATTERNS_ALL);
	assert_true(v->extensions == (PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_NC) |
				      PATTERN_BIT(ATTN_CC)));
	assert_true(v->flags == 0);
	p = problem(1, 2, 2, 20, 20, 8, ATTN_NS, many);
	assert_int_equal(variant_check_problem(v, &p), 0);
	p = problem(1, 2, 2, 19, 20, 8, ATTN_NC, many);
	assert_int_equal(variant_check_problem(v, &p), -ENOTSUP);
	p = problem(1, 2, 2, 20, 20, 8, ATTN_NC, many);
	assert_int_equal(variant_check_problem(v, &p), 0);
	p = problem(1, 2, 2, 300, 39, 8, ATTN_CC, many);
	assert_int_equal(variant_check_problem(v, &p), -ENOTSUP);
	p = problem(1, 2, 2, 5, 40, 8, ATTN_CC, many);
	assert_int_equal(variant_check_problem(v, &p), 0);
	p = problem(1, 2, 2, 3, 3, 8, ATTN_CS, many);
	assert_int_equal(variant_check_problem(v, &p), 0);
}

/* Allocator peak of one forward. */
static size_t forward_peak(const struct attn_problem *p)
{
	struct tensors t;
	size_t live, peak;

	tensors_make(&t, p, SEED, 1.0);
	live = memory_live_bytes();
	memory_reset_peak();
	run(routing(), p, &t);
	peak = memory_peak_bytes() - live;
	tensors_release(&t);
	return peak;
}

/*
 * No N x M score matrix: at N = M = 2048 the workspace is a fraction of one, and doubling
 * the length far less than quadruples it.
 */
static void test_routing_workspace_stays_below_the_score_matrix(void **state)
{
	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		struct attn_problem small = problem(1, 2, 2, 1024, 1024, 64, pat, NULL);
		struct attn_problem large = problem(1, 2, 2, 2048, 2048, 64, pat, NULL);
		size_t a = forward_peak(&small), b = forward_peak(&large);

		print_message("routing %s workspace: %zu bytes at 1024, %zu at 2048\n",
			      pattern_name(pat), a, b);
		assert_true(b < 2048.0 * 2048 * sizeof(float) / 4);
		assert_true(b < 3 * a);
	}
}

/* flops: the formula's pieces, and C = 1 in cs is exact attention's count plus routing. */
static void test_routing_counts_the_work_it_keeps(void **state)
{
	const struct variant_ops *v = routing();
	double one[2] = { 1, 10 }, four[2] = { 4, 2 };
	struct attn_problem p;

	(void)state;
	p = problem(1, 2, 1, 10, 10, 8, ATTN_CS, one);
	assert_true(v->flops(&p) == 1.0 * 2 * 8 * 1 * 10 + 2.0 * (2 * 8 * 1 * 10) +
				    4.0 * 2 * 8 * 55);
	/* ns: w = ceil(16/4) = 4; T = 2 over 32 rows, then 16 queries and 16 keys */
	p = problem(1, 2, 1, 16, 16, 8, ATTN_NS, four);
	assert_true(v->flops(&p) == 2.0 * (2 * 8 * 4 * (32.0 * 2 + 32) + 4 * 8 * 16 * 4));
	p = problem(1, 2, 1, 16, 16, 8, ATTN_CC, four);
	assert_true(v->flops(&p) == 1.0 * 2 * 8 * 4 * 16 * 3 +
				    2.0 * (2 * 8 * 4 * 16 + 4 * 8 * 16 * 4));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routing_matches_an_fp64_transcription_on_awkward_shapes),
		cmocka_unit_test(test_routing_keeps_the_centroid_of_an_empty_cluster),
		cmocka_unit_test(test_routing_with_one_cluster_equals_vanilla),
		cmocka_unit_test(test_routing_gives_every_query_exactly_w_keys),
		cmocka_unit_test(test_routing_ignores_later_rows_in_cs_and_cc),
		cmocka_unit_test(test_routing_gives_gqa_as_mha_with_repeated_kv),
		cmocka_unit_test(test_routing_decoding_matches_its_causal_forward),
		cmocka_unit_test(test_routing_decoding_refuses_other_patterns),
		cmocka_unit_test(test_routing_default_clusters_are_round_sqrt_m),
		cmocka_unit_test(test_routing_state_bytes_follow_the_formula),
		cmocka_unit_test(test_routing_refuses_more_clusters_than_rows),
		cmocka_unit_test(test_routing_workspace_stays_below_the_score_matrix),
		cmocka_unit_test(test_routing_counts_the_work_it_keeps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
