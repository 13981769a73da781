/*
 * test-topk.c - top-k attention against a plain fp64 transcription of its equations
 * (VARIANTS.md section 5) on awkward shapes in all four patterns, and its catalogue
 * properties: k >= M is vanilla, k = 1 returns the value of the argmax, ties go to the
 * smaller key, keys outside the top k do not matter, causality, GQA, decoding equal to
 * the causal forward, its workspace and its KV-cache state and FLOPs by formula.
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
/*
 * Scores closer than this (natural units) at the k-th place may be ordered differently
 * by fp32 rounding (a 64-term fp32 dot product is off by ~1e-6): such rows have no
 * single right answer and are left out of the comparison, and counted.
 */
#define TIE_GAP 1e-4
/* At most this share of rows may be left out so: random scores rarely come that close. */
#define AMBIGUOUS_SHARE 0.02

static const struct variant_ops *topk(void)
{
	return variant_must_find("topk");
}

/* A score and its key, ordered by score descending, then key ascending. */
struct scored {
	double s;
	int j;
};

static int by_score_then_key(const void *a, const void *b)
{
	const struct scored *x = a, *y = b;

	if (x->s != y->s)
		return x->s > y->s ? -1 : 1;
	return (x->j > y->j) - (x->j < y->j);
}

/*
 * Moves the first `want` of s[0..count) in that order to s[0..want), sorted, by
 * insertion: each entry that beats the last of the best so far is shifted into place.
 */
static void best_first(struct scored *s, int count, int want)
{
	int have = 0;

	for (int x = 0; x < count; x++) {
		struct scored e = s[x];
		int at;

		if (have == want && by_score_then_key(&e, &s[want - 1]) >= 0)
			continue;
		at = have < want ? have++ : want - 1;
		for (; at > 0 && by_score_then_key(&e, &s[at - 1]) < 0; at--)
			s[at] = s[at - 1];
		s[at] = e;
	}
}

/*
 * The catalogue in double, by plain loops: candidates C_i (cs: j <= i, otherwise all M),
 * s_ij = q_i.k_j / sqrt(d), T_i = the first k of C_i ordered by (s descending, j
 * ascending), or all of C_i when |C_i| <= k; o_i = softmax over T_i weighting v_j.
 * ambiguous[] (per slice and row, may be NULL) marks rows whose k-th and (k+1)-th scores
 * differ, but by less than TIE_GAP. Returns how many rows are so marked.
 */
static long transcription(const struct attn_problem *p, long k, const float *q,
			  const float *kk, const float *v, double *out, bool *ambiguous)
{
	int n = p->n, m = p->m, d = p->d;
	struct scored *s = malloc(sizeof(*s) * m);
	long marked = 0;

	assert_non_null(s);
	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			const float *qh = q + problem_q_offset(p, b, h);
			const float *kh = kk + problem_kv_offset(p, b, h);
			const float *vh = v + problem_kv_offset(p, b, h);
			double *oh = out + problem_q_offset(p, b, h);

			for (int i = 0; i < n; i++) {
				int cand = p->pattern == ATTN_CS ? i + 1 : m;
				int take = k < cand ? (int)k : cand;
				double max, sum = 0, *oi = oh + (size_t)i * d;
				bool amb = false;

				for (int j = 0; j < cand; j++) {
					double x = 0;

					for (int c = 0; c < d; c++)
						x += (double)qh[(size_t)i * d + c] *
						     kh[(size_t)j * d + c];
					s[j].s = x / sqrt((double)d);
					s[j].j = j;
				}
				/* all of C_i when it has no more than k keys: no order needed */
				if (take < cand) {
					double gap;

					best_first(s, cand, take + 1);
					gap = s[take - 1].s - s[take].s;
					amb = gap > 0 && gap < TIE_GAP;
				}
				if (ambiguous)
					ambiguous[((size_t)b * p->heads + h) * n + i] = amb;
				marked += amb;
				max = -INFINITY;
				for (int t = 0; t < take; t++)
					max = fmax(max, s[t].s);
				for (int c = 0; c < d; c++)
					oi[c] = 0;
				for (int t = 0; t < take; t++) {
					double w = exp(s[t].s - max);

					sum += w;
					for (int c = 0; c < d; c++)
						oi[c] += w * vh[(size_t)s[t].j * d + c];
				}
				for (int c = 0; c < d; c++)
					oi[c] /= sum;
			}
		}
	free(s);
	return marked;
}

/* ||o - ref|| / ||ref|| over the rows not marked ambiguous. */
static double error_outside(const struct attn_problem *p, const float *o, const double *ref,
			    const bool *ambiguous)
{
	double diff = 0, norm = 0;
	size_t rows = (size_t)p->batch * p->heads * p->n;

	for (size_t r = 0; r < rows; r++) {
		if (ambiguous[r])
			continue;
		for (int c = 0; c < p->d; c++) {
			double x = o[r * p->d + c], y = ref[r * p->d + c];

			diff += (x - y) * (x - y);
			norm += y * y;
		}
	}
	return norm > 0 ? sqrt(diff / norm) : sqrt(diff);
}

/*
 * Runs topk with k on a fresh draw (params NULL: the default) against the transcription;
 * adds the rows compared and left out to *rows and *left_out.
 */
static void check_transcription(const struct attn_problem *p, long k, uint64_t seed,
				long *rows, long *left_out)
{
	struct tensors t;
	double *ref = reference_make(&t, p, seed);
	size_t count = (size_t)p->batch * p->heads * p->n;
	bool *amb = malloc(sizeof(bool) * count);

	assert_non_null(amb);
	*left_out += transcription(p, k, t.q, t.k, t.v, ref, amb);
	*rows += (long)count;
	run(topk(), p, &t);
	check_error(topk(), p, error_outside(p, t.o, ref, amb), TOLERANCE, " k=%ld", k);
	free(amb);
	free(ref);
	tensors_release(&t);
}

/*
 * Every shape of the grid in every pattern (odd n, n != m across, d 8, 12 and 64, MHA,
 * GQA and MQA), for the default k = 64 and for k = 5 (k = 1 and k >= M have tests of
 * their own).
 */
static void test_topk_matches_an_fp64_transcription_on_awkward_shapes(void **state)
{
	static const long ks[] = { 64, 5 };
	uint64_t seed = SEED;
	long rows = 0, left_out = 0;
	int checked = 0;

	(void)state;
	for (int ki = 0; ki < COUNT(ks); ki++) {
		double params[1] = { (double)ks[ki] };

		for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
			struct shape_walk w = { 0 };
			struct attn_problem p;

			while (shape_walk_next(&w, pat, ki ? params : NULL, &p)) {
				check_transcription(&p, ks[ki], seed++, &rows, &left_out);
				checked++;
			}
		}
	}
	/* self: 4 sizes, cross: 12 pairs; 9 dims x kv; two patterns of each per k */
	assert_int_equal(checked, 2 * 2 * (4 + 12) * 9);
	if (!((double)left_out <= AMBIGUOUS_SHARE * rows))
		print_error("%ld of %ld rows ambiguous\n", left_out, rows);
	assert_true((double)left_out <= AMBIGUOUS_SHARE * rows);
}

/* Square and cross shapes with few rows, many keys, and more rows than keys. */
static const int limit_shapes[][2] = { { 17, 17 }, { 257, 257 }, { 63, 257 }, { 257, 17 },
				       { 1, 63 } };

/* k = M (and any k above it) keeps every key: exact attention, against the oracle. */
static void test_topk_with_k_at_least_m_equals_vanilla(void **state)
{
	uint64_t seed = SEED + 1000;

	(void)state;
	for (int si = 0; si < COUNT(limit_shapes); si++)
		for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++)
			for (int extra = 0; extra <= 1; extra++) {
				int n = limit_shapes[si][0], m = limit_shapes[si][1];
				double params[1] = { extra ? 1048576 : m };
				struct attn_problem p;
				struct tensors t;
				double *ref;

				if (pattern_is_self(pat) != (n == m))
					continue;
				p = problem(2, 4, 2, n, m, dims[(si + extra) % COUNT(dims)], pat,
					    params);
				ref = reference_make(&t, &p, seed++);
				reference_attention(&p, t.q, t.k, t.v, ref);
				check_output(topk(), &p, &t, ref, TOLERANCE, " k=%g", params[0]);
			}
}

/* The index of the largest fp64 score of row i over its candidates, and its lead. */
static int argmax_row(const struct attn_problem *p, const float *q, const float *k, int i,
		      double *lead)
{
	int cand = p->pattern == ATTN_CS ? i + 1 : p->m, best = 0;
	double top = -INFINITY, second = -INFINITY;

	for (int j = 0; j < cand; j++) {
		double x = 0;

		for (int c = 0; c < p->d; c++)
			x += (double)q[(size_t)i * p->d + c] * k[(size_t)j * p->d + c];
		if (x > top) {
			second = top;
			top = x;
			best = j;
		} else if (x > second) {
			second = x;
		}
	}
	*lead = (top - second) / sqrt((double)p->d);
	return best;
}

/*
 * k = 1: the softmax of one score is 1, so each row is exactly (bit for bit) the value
 * row of its best key; rows whose best two scores are within TIE_GAP are not looked at.
 */
static void test_topk_with_k_one_returns_the_value_of_the_argmax(void **state)
{
	double params[1] = { 1 };
	long looked = 0, rows = 0;

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++)
		for (int si = 0; si < COUNT(limit_shapes); si++) {
			int n = limit_shapes[si][0], m = limit_shapes[si][1];
			int d = dims[si % COUNT(dims)];
			struct attn_problem p;
			struct tensors t;

			if (pattern_is_self(pat) != (n == m))
				continue;
			p = problem(2, 4, 1, n, m, d, pat, params);
			tensors_make(&t, &p, SEED + 2000 + si, 1.0);
			run(topk(), &p, &t);
			for (int b = 0; b < 2; b++)
				for (int h = 0; h < 4; h++) {
					const float *qh = t.q + problem_q_offset(&p, b, h);
					const float *kh = t.k + problem_kv_offset(&p, b, h);
					const float *vh = t.v + problem_kv_offset(&p, b, h);
					const float *oh = t.o + problem_q_offset(&p, b, h);

					for (int i = 0; i < n; i++) {
						double lead;
						int j = argmax_row(&p, qh, kh, i, &lead);

						rows++;
						if (lead < TIE_GAP)
							continue;
						looked++;
						assert_memory_equal(oh + (size_t)i * d,
								    vh + (size_t)j * d,
								    sizeof(float) * d);
					}
				}
			tensors_release(&t);
		}
	assert_true(looked >= (1 - AMBIGUOUS_SHARE) * rows);
}

/*
 * Exact ties: every key of a slice is the same vector, so every score of a row is the
 * same float and the k kept keys must be the first k (cs: of those up to i); the output
 * is then the plain mean of their value rows.
 */
static void test_topk_breaks_ties_towards_the_smaller_key(void **state)
{
	static const int ks[] = { 1, 3, 10 };
	const int n = 23, d = 12;

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++)
		for (int ki = 0; ki < COUNT(ks); ki++) {
			int m = pattern_is_self(pat) ? n : 31;
			double params[1] = { ks[ki] };
			struct attn_problem p = problem(2, 4, 2, n, m, d, pat, params);
			struct tensors t;

			tensors_make(&t, &p, SEED + 3000 + ki, 1.0);
			for (int s = 0; s < 4; s++)
				for (int j = 1; j < m; j++)
					memcpy(t.k + ((size_t)s * m + j) * d, t.k + (size_t)s * m * d,
					       sizeof(float) * d);
			run(topk(), &p, &t);
			for (int b = 0; b < 2; b++)
				for (int h = 0; h < 4; h++) {
					const float *vh = t.v + problem_kv_offset(&p, b, h);
					const float *oh = t.o + problem_q_offset(&p, b, h);

					for (int i = 0; i < n; i++) {
						int cand = pat == ATTN_CS ? i + 1 : m;
						int take = ks[ki] < cand ? ks[ki] : cand;

						for (int c = 0; c < d; c++) {
							double mean = 0;

							for (int j = 0; j < take; j++)
								mean += vh[(size_t)j * d + c];
							mean /= take;
							/* fp32 weights of exactly 1/take: rounding only */
							assert_float_equal(oh[(size_t)i * d + c], mean,
									   1e-5 * (1 + fabs(mean)));
						}
					}
				}
			tensors_release(&t);
		}
}

/*
 * Ties at every rank: keys drawn from a pool of three vectors, so each row's scores take
 * three values, each many times over, and k cuts through a group of equal scores. The
 * transcription keeps the smaller keys of the cut group; so must the variant (no row is
 * ambiguous: equal scores are equal floats, unequal ones far apart).
 */
static void test_topk_keeps_the_smaller_keys_of_a_tied_group(void **state)
{
	static const int ks[] = { 2, 7, 12, 20 };
	const int n = 29, d = 8, pool = 3;

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++)
		for (int ki = 0; ki < COUNT(ks); ki++) {
			int m = pattern_is_self(pat) ? n : 40;
			double params[1] = { ks[ki] };
			struct attn_problem p = problem(1, 4, 2, n, m, d, pat, params);
			struct tensors t;
			struct rng g = { SEED + 4000 + ki };
			double *ref;

			tensors_make(&t, &p, SEED + 4100 + ki, 1.0);
			for (int s = 0; s < 2; s++)
				for (int j = pool; j < m; j++)
					memcpy(t.k + ((size_t)s * m + j) * d,
					       t.k + ((size_t)s * m + rng_next(&g) % pool) * d,
					       sizeof(float) * d);
			ref = malloc(sizeof(double) * t.nq);
			assert_non_null(ref);
			assert_int_equal(transcription(&p, ks[ki], t.q, t.k, t.v, ref, NULL), 0);
			run(topk(), &p, &t);
			check_error(topk(), &p, error_vs_double(t.o, ref, t.nq), TOLERANCE,
				    " k=%d ties", ks[ki]);
			free(ref);
			tensors_release(&t);
		}
}

/*
 * One query (nc) over 257 keys with k = 9: changing the value rows of keys outside its
 * top k leaves its output bit-identical; changing one inside moves it.
 */
static void test_topk_ignores_keys_outside_the_top_k(void **state)
{
	const int m = 257, d = 16, k = 9;
	double params[1] = { k };
	struct attn_problem p = problem(1, 1, 1, 1, m, d, ATTN_NC, params);
	struct scored *s = malloc(sizeof(*s) * m);
	struct tensors a, b;
	struct rng g = { SEED + 5000 };

	(void)state;
	assert_non_null(s);
	tensors_make(&a, &p, SEED + 5001, 1.0);
	for (int j = 0; j < m; j++) {
		s[j].s = 0;
		for (int c = 0; c < d; c++)
			s[j].s += (double)a.q[c] * a.k[(size_t)j * d + c];
		s[j].j = j;
	}
	qsort(s, m, sizeof(*s), by_score_then_key);
	/* unscaled dot products here: sqrt(d) = 4 */
	assert_true((s[k - 1].s - s[k].s) / 4 > TIE_GAP);
	tensors_copy(&b, &a);
	for (int r = k; r < m; r++)
		fill_normal(&g, b.v + (size_t)s[r].j * d, d, 5.0);
	run(topk(), &p, &a);
	run(topk(), &p, &b);
	assert_memory_equal(a.o, b.o, sizeof(float) * d);
	b.v[(size_t)s[k - 1].j * d] += 1;
	run(topk(), &p, &b);
	assert_memory_not_equal(a.o, b.o, sizeof(float) * d);
	tensors_release(&a);
	tensors_release(&b);
	free(s);
}

/*
 * cs: changing Q, K and V rows after t leaves rows <= t bit-identical; cc: changing Q
 * rows after t does. For several k, cuts inside and between the 64-row tiles.
 */
static void test_topk_rows_ignore_later_positions(void **state)
{
	static const int cuts[] = { 0, 5, 63, 64, 100 };
	static const int ks[] = { 1, 5, 64 };

	(void)state;
	for (int pat = ATTN_CS; pat <= ATTN_CC; pat += ATTN_CC - ATTN_CS)
		for (int ki = 0; ki < COUNT(ks); ki++) {
			double params[1] = { ks[ki] };
			struct attn_problem p = problem(2, 4, 2, 130, pat == ATTN_CS ? 130 : 77,
							12, pat, params);
			struct tensors a;

			tensors_make(&a, &p, SEED + 6000 + ki, 1.0);
			run(topk(), &p, &a);
			for (int ci = 0; ci < COUNT(cuts); ci++) {
				struct tensors b;
				struct rng g = { SEED + 6100 + ci };
				int t = cuts[ci];

				tensors_copy(&b, &a);
				perturb_rows_after(&g, b.q, 8, p.n, p.d, t);
				if (pat == ATTN_CS) {
					perturb_rows_after(&g, b.k, 4, p.m, p.d, t);
					perturb_rows_after(&g, b.v, 4, p.m, p.d, t);
				}
				run(topk(), &p, &b);
				assert_true(change_up_to(&p, a.o, b.o, t) == 0);
				/* and the perturbation did reach the later rows */
				assert_true(change_up_to(&p, a.o, b.o, p.n - 1) > 0);
				tensors_release(&b);
			}
			tensors_release(&a);
		}
}

/* Grouped KV heads give, bit for bit, MHA with each KV head repeated for its group. */
static void test_topk_gives_gqa_as_mha_with_repeated_kv(void **state)
{
	static const int ks[] = { 3, 64 };

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++)
		for (int ki = 0; ki < COUNT(ks); ki++)
			for (int kv = 1; kv <= 2; kv++) {
				int n = 97, m = pattern_is_self(pat) ? 97 : 150, d = 12;
				double params[1] = { ks[ki] };
				struct attn_problem gqa = problem(2, 4, kv, n, m, d, pat, params);

				check_gqa_is_mha_bit_for_bit(topk(), &gqa, SEED + 7000 + kv);
			}
}

/*
 * Feeds every position of t through the decoder and insists each step is, bit for bit,
 * the row of the causal forward (both score with the same arithmetic and select the
 * same keys).
 */
static void check_decode_exact(const struct attn_problem *p, struct tensors *t)
{
	size_t live = memory_live_bytes();
	struct step_rows r;
	void *dec = NULL;

	step_rows_make(&r, p);
	run(topk(), p, t);
	assert_int_equal(topk()->decode_init(p, &dec), 0);
	for (int i = 0; i < p->n; i++) {
		gather_step(&r, p, t, i);
		assert_int_equal(topk()->decode_step(dec, r.q, r.k, r.v, r.o), 0);
		for (int s = 0; s < p->batch * p->heads; s++)
			assert_memory_equal(r.o + (size_t)s * p->d,
					    t->o + ((size_t)s * p->n + i) * p->d,
					    sizeof(float) * p->d);
	}
	assert_int_equal(topk()->decode_step(dec, r.q, r.k, r.v, r.o), -ENOSPC);
	topk()->decode_free(dec);
	assert_int_equal(memory_live_bytes(), live);
	step_rows_release(&r);
}

/* Every k from one key to more than the positions, d 8, 12 and 64, MHA to MQA. */
static void test_topk_decoding_equals_its_causal_forward(void **state)
{
	static const int ks[] = { 1, 5, 64, 200 };
	static const int lengths[] = { 1, 17, 130 };
	uint64_t seed = SEED + 8000;

	(void)state;
	for (int ki = 0; ki < COUNT(ks); ki++)
		for (int li = 0; li < COUNT(lengths); li++)
			for (int di = 0; di < COUNT(dims); di++) {
				double params[1] = { ks[ki] };
				int n = lengths[li];
				struct attn_problem p = problem(2, 4, kv_choices[(ki + di) % 3], n,
								n, dims[di], ATTN_CS, params);
				struct tensors t;

				tensors_make(&t, &p, seed++, 1.0);
				check_decode_exact(&p, &t);
				tensors_release(&t);
			}
	/* the harness's check too, with the default k */
	for (int kv = 0; kv < COUNT(kv_choices); kv++) {
		struct attn_problem p = problem(2, 4, kv_choices[kv], 200, 200, 64, ATTN_CS,
						NULL);

		check_decode(topk(), &p, seed++);
	}
}

/* With every key of a slice the same, decoding must keep the same first keys. */
static void test_topk_decoding_breaks_ties_as_its_forward(void **state)
{
	double params[1] = { 4 };
	struct attn_problem p = problem(1, 2, 1, 40, 40, 8, ATTN_CS, params);
	struct tensors t;

	(void)state;
	tensors_make(&t, &p, SEED + 9000, 1.0);
	for (int j = 1; j < 40; j++)
		memcpy(t.k + (size_t)j * 8, t.k, sizeof(float) * 8);
	check_decode_exact(&p, &t);
	tensors_release(&t);
}

static void test_topk_decoding_refuses_other_patterns(void **state)
{
	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		struct attn_problem p = problem(1, 2, 2, 16, 16, 8, pat, NULL);
		void *dec = &dec;

		if (pat == ATTN_CS)
			continue;
		assert_int_equal(topk()->decode_init(&p, &dec), -ENOTSUP);
		assert_null(dec);
	}
}

/*
 * The workspace is a chunk of scores and a buffer of 2k + 64 entries per row of a
 * 64-row tile: the same at 256 and 2048 keys, and far below one n x m score matrix.
 */
static void test_topk_workspace_does_not_grow_with_the_sequence(void **state)
{
	static const int lengths[] = { 256, 2048 };
	double params[1] = { 8 };
	size_t peak[2];

	(void)state;
	for (int i = 0; i < 2; i++) {
		struct attn_problem p = problem(1, 2, 2, lengths[i], lengths[i], 64, ATTN_NS,
						params);
		struct tensors t;
		size_t before;

		tensors_make(&t, &p, SEED, 1.0);
		before = memory_live_bytes();
		memory_reset_peak();
		run(topk(), &p, &t);
		peak[i] = memory_peak_bytes() - before;
		tensors_release(&t);
	}
	assert_true(peak[0] > 0);
	assert_int_equal(peak[0], peak[1]);
	assert_true(peak[1] < sizeof(float) * 2048 * 2048 / 16);
}

/* Every key and value of every KV head, float32: 2 B Hkv M d 4 bytes, whatever k. */
static void test_topk_state_bytes_hold_every_key_and_value(void **state)
{
	static const double ks[] = { 1, 64, 1000 };

	(void)state;
	for (int ki = 0; ki < COUNT(ks); ki++) {
		struct attn_problem p = problem(2, 8, 2, 300, 300, 64, ATTN_CS, &ks[ki]);

		assert_true(topk()->state_bytes(&p) == 2.0 * 2 * 2 * 300 * 64 * 4);
		p = problem(1, 4, 4, 17, 33, 8, ATTN_NC, &ks[ki]);
		assert_true(topk()->state_bytes(&p) == 2.0 * 1 * 4 * 33 * 8 * 4);
	}
}

/*
 * 2d per candidate pair (scores) and 2d per kept key (weighted sum), per head:
 *   nc 10 x 40, k = 64: 400 pairs, 10 x 40 kept;
 *   nc 10 x 40, k = 4: 400 pairs, 10 x 4 kept;
 *   cs n = 10, k = 4: 55 pairs; rows 0..3 keep 1..4, rows 4..9 keep 4: 10 + 24 = 34;
 *   cs n = 10, k = 64: 55 pairs, 55 kept.
 */
static void test_topk_flops_count_scores_and_kept_keys(void **state)
{
	double k4[1] = { 4 };
	struct attn_problem p;

	(void)state;
	p = problem(2, 3, 1, 10, 40, 8, ATTN_NC, NULL);
	assert_true(topk()->flops(&p) == 2.0 * 2 * 3 * 8 * (400 + 400));
	p = problem(2, 3, 1, 10, 40, 8, ATTN_CC, k4);
	assert_true(topk()->flops(&p) == 2.0 * 2 * 3 * 8 * (400 + 40));
	p = problem(2, 3, 1, 10, 10, 8, ATTN_CS, k4);
	assert_true(topk()->flops(&p) == 2.0 * 2 * 3 * 8 * (55 + 34));
	p = problem(2, 3, 1, 10, 10, 8, ATTN_CS, NULL);
	assert_true(topk()->flops(&p) == 2.0 * 2 * 3 * 8 * (55 + 55));
}

/* All four patterns, every one a harness extension; k declared as the catalogue says. */
static void test_topk_declares_its_patterns_and_parameter(void **state)
{
	const struct variant_ops *v = topk();

	(void)state;
	assert_int_equal(v->patterns, PATTERNS_ALL);
	assert_int_equal(v->extensions, PATTERNS_ALL);
	assert_int_equal(v->flags, 0);
	assert_int_equal(v->n_params, 1);
	assert_string_equal(v->params[0].name, "k");
	assert_true(v->params[0].def == 64);
	assert_true(v->params[0].min == 1);
	assert_true(v->params[0].integer);
	assert_int_equal(variant_param_index(v, "k"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_topk_matches_an_fp64_transcription_on_awkward_shapes),
		cmocka_unit_test(test_topk_with_k_at_least_m_equals_vanilla),
		cmocka_unit_test(test_topk_with_k_one_returns_the_value_of_the_argmax),
		cmocka_unit_test(test_topk_breaks_ties_towards_the_smaller_key),
		cmocka_unit_test(test_topk_keeps_the_smaller_keys_of_a_tied_group),
		cmocka_unit_test(test_topk_ignores_keys_outside_the_top_k),
		cmocka_unit_test(test_topk_rows_ignore_later_positions),
		cmocka_unit_test(test_topk_gives_gqa_as_mha_with_repeated_kv),
		cmocka_unit_test(test_topk_decoding_equals_its_causal_forward),
		cmocka_unit_test(test_topk_decoding_breaks_ties_as_its_forward),
		cmocka_unit_test(test_topk_decoding_refuses_other_patterns),
		cmocka_unit_test(test_topk_workspace_does_not_grow_with_the_sequence),
		cmocka_unit_test(test_topk_state_bytes_hold_every_key_and_value),
		cmocka_unit_test(test_topk_flops_count_scores_and_kept_keys),
		cmocka_unit_test(test_topk_declares_its_patterns_and_parameter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
