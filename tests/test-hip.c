/*
 * test-hip.c - the HiP variant against a double-precision transcription of VARIANTS.md
 * section 11 written as plain loops (the search level by level, the selected set as a
 * mask, a softmax per row); its reductions (k >= E is vanilla; with at most 2 K_s blocks
 * the search keeps the exact top K_s blocks by their scores), ties, causality at b_q = 1 in cs
 * and cc, block-causality and its leak at b_q > 1, cc's b_q = 1, GQA with the search
 * active, FLOPs, workspace and state bytes.
 *
 * The rules the catalogue leaves to the implementation, as hip.c documents them: K_s is
 * k / b_k rounded up; the first level has c = min(2 K_s, n) segments, segment s being
 * blocks [floor(s n / c), floor((s + 1) n / c)); a segment [lo, hi) is represented by
 * block floor((lo + hi) / 2) and halves at that block; a score counts only the pairs the
 * pattern's mask allows; ties keep the segment further left; cs adds the blocks over
 * G's own rows; cc runs with b_q = 1.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "variant-test.h"

/* fp32 kernels against the fp64 transcription on the same selection: the spec's bound. */
#define TOLERANCE 1e-5
/* Rows the mask hides may move visible rows only by fp32 reordering (spec). */
#define CAUSAL_TOLERANCE 1e-5
/* A selection that reads a changed row moves the output by far more than rounding. */
#define LEAK_AT_LEAST 1e-3

/* The variant's parameter order. */
enum { P_K, P_BLOCK_Q, P_BLOCK_K, P_COUNT };

static const struct variant_ops *variant(void)
{
	const struct variant_ops *v = variant_must_find("hip");

	assert_int_equal(v->n_params, P_COUNT);
	assert_int_equal(variant_param_index(v, "k"), P_K);
	assert_int_equal(variant_param_index(v, "block_q"), P_BLOCK_Q);
	assert_int_equal(variant_param_index(v, "block_k"), P_BLOCK_K);
	return v;
}

/* ---- the fp64 transcription ---- */

/* s_ij = q_i . k_j / sqrt(d), in double. */
static double score(const float *qi, const float *kj, int d)
{
	double s = 0;

	for (int c = 0; c < d; c++)
		s += (double)qi[c] * kj[c];
	return s / sqrt((double)d);
}

/* One query block G = rows [g0, g1) of a slice and what it sees. */
struct group {
	const float *q, *k;	/* the slice's rows */
	int d, g0, g1, e, bk;
	bool causal;
};

/*
 * The score of block b: the largest s_ij over rows i of G and keys j of the block below
 * E (in cs the pairs j <= i only); -inf when no pair is allowed.
 */
static double block_score(const struct group *g, int b)
{
	double best = -INFINITY;

	for (int i = g->g0; i < g->g1; i++)
		for (int j = b * g->bk; j < (b + 1) * g->bk && j < g->e; j++) {
			if (g->causal && j > i)
				continue;
			best = fmax(best, score(g->q + (size_t)i * g->d, g->k + (size_t)j * g->d,
						g->d));
		}
	return best;
}

struct segment {
	int lo, hi;
	double score;
};

/*
 * VARIANTS.md section 11's search: sets keep[b] for the blocks of [0, n) that G keeps.
 * Level by level: score every segment by its middle block, keep the K_s best by
 * picking the best left one K_s times, stop when all are single blocks, else halve.
 */
static void search(const struct group *g, int n, int ks, bool *keep)
{
	int count = 2 * ks < n ? 2 * ks : n;
	struct segment *seg = malloc(sizeof(*seg) * 2 * ks);
	struct segment *kept = malloc(sizeof(*kept) * ks);
	bool *taken = malloc(sizeof(*taken) * 2 * ks);

	assert_non_null(seg);
	assert_non_null(kept);
	assert_non_null(taken);
	for (int s = 0; s < count; s++) {
		seg[s].lo = (int)((long)s * n / count);
		seg[s].hi = (int)((long)(s + 1) * n / count);
	}
	for (;;) {
		int nk = 0, splits = 0;

		for (int s = 0; s < count; s++) {
			seg[s].score = block_score(g, (seg[s].lo + seg[s].hi) / 2);
			taken[s] = false;
		}
		/* the K_s best, ties to the left; then back in the order of position */
		for (int round = 0; round < ks && round < count; round++) {
			int best = -1;

			for (int s = 0; s < count; s++)
				if (!taken[s] && (best < 0 || seg[s].score > seg[best].score))
					best = s;
			taken[best] = true;
		}
		for (int s = 0; s < count; s++)
			if (taken[s])
				kept[nk++] = seg[s];
		count = 0;
		for (int s = 0; s < nk; s++) {
			int mid = (kept[s].lo + kept[s].hi) / 2;

			if (kept[s].hi - kept[s].lo > 1) {
				seg[count++] = (struct segment){ kept[s].lo, mid, 0 };
				seg[count++] = (struct segment){ mid, kept[s].hi, 0 };
				splits++;
			} else {
				seg[count++] = kept[s];
			}
		}
		if (!splits)
			break;
	}
	for (int s = 0; s < count; s++)
		keep[seg[s].lo] = true;
	free(seg);
	free(kept);
	free(taken);
}

/*
 * The blocks G attends, as keep[0..n): everything when n <= K_s, else the search's
 * (exact = false) or the K_s best blocks by block_score() (exact = true); in cs also
 * the blocks over G's own rows.
 */
static void select_blocks(const struct group *g, int n, int ks, bool exact, bool *keep)
{
	for (int b = 0; b < n; b++)
		keep[b] = n <= ks;
	if (n > ks && !exact) {
		search(g, n, ks, keep);
	} else if (n > ks) {
		double *s = malloc(sizeof(*s) * n);

		assert_non_null(s);
		for (int b = 0; b < n; b++)
			s[b] = block_score(g, b);
		for (int round = 0; round < ks; round++) {
			int best = -1;

			for (int b = 0; b < n; b++)
				if (!keep[b] && (best < 0 || s[b] > s[best]))
					best = b;
			keep[best] = true;
		}
		free(s);
	}
	if (g->causal)
		for (int i = g->g0; i < g->g1; i++)
			keep[i / g->bk] = true;
}

/*
 * HiP in double: every (b, h) slice, every query block of b_q rows (1 in cc), softmax of
 * each row over the keys of the kept blocks (in cs those j <= i).
 */
static void hip_reference(const struct attn_problem *p, bool exact, const float *q,
			  const float *k, const float *v, double *out)
{
	int kk = (int)p->params[P_K], bq = (int)p->params[P_BLOCK_Q];
	int bk = (int)p->params[P_BLOCK_K], ks = (kk + bk - 1) / bk, d = p->d;
	bool causal = p->pattern == ATTN_CS;
	int nmax = (p->m + bk - 1) / bk;
	bool *keep = malloc(sizeof(*keep) * nmax);
	double *w = malloc(sizeof(*w) * p->m);

	assert_non_null(keep);
	assert_non_null(w);
	if (p->pattern == ATTN_CC)
		bq = 1;
	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);

			for (int g0 = 0; g0 < p->n; g0 += bq) {
				struct group g = {
					.q = q + qo, .k = k + kvo, .d = d, .g0 = g0,
					.g1 = g0 + bq < p->n ? g0 + bq : p->n, .bk = bk,
					.causal = causal,
				};
				int n;

				g.e = causal ? g.g1 : p->m;
				n = (g.e + bk - 1) / bk;
				select_blocks(&g, n, ks, exact, keep);
				for (int i = g.g0; i < g.g1; i++) {
					double max = -INFINITY, sum = 0;
					double *o = out + qo + (size_t)i * d;

					for (int j = 0; j < g.e; j++) {
						w[j] = -INFINITY;
						if (keep[j / bk] && !(causal && j > i))
							w[j] = score(q + qo + (size_t)i * d,
								     k + kvo + (size_t)j * d, d);
						max = fmax(max, w[j]);
					}
					for (int c = 0; c < d; c++)
						o[c] = 0;
					for (int j = 0; j < g.e; j++) {
						double e;

						if (w[j] == -INFINITY)
							continue;
						e = exp(w[j] - max);
						sum += e;
						for (int c = 0; c < d; c++)
							o[c] += e * v[kvo + (size_t)j * d + c];
					}
					for (int c = 0; c < d && sum > 0; c++)
						o[c] /= sum;
				}
			}
		}
	free(keep);
	free(w);
}

/* Runs hip on a fresh draw and checks it against the transcription. */
static void check_against_transcription(const struct attn_problem *p, bool exact,
					uint64_t seed)
{
	struct tensors t;
	double *ref = reference_make(&t, p, seed);

	hip_reference(p, exact, t.q, t.k, t.v, ref);
	check_output(variant(), p, &t, ref, TOLERANCE, " k=%g b_q=%g b_k=%g",
		     p->params[P_K], p->params[P_BLOCK_Q], p->params[P_BLOCK_K]);
}

/* The shapes of a pattern: odd self lengths, or n != m both ways; d and KV heads vary. */
static int pattern_shapes(enum attn_pattern pat, int (*shapes)[2])
{
	static const int self[] = { 1, 17, 63, 257 };
	int count = 0;

	if (pattern_is_self(pat)) {
		for (int i = 0; i < COUNT(self); i++) {
			shapes[count][0] = shapes[count][1] = self[i];
			count++;
		}
		return count;
	}
	for (int i = 0; i < COUNT(cross); i++) {
		shapes[count][0] = cross[i][0];
		shapes[count][1] = cross[i][1];
		count++;
	}
	return count;
}

/*
 * Settings with the search several levels deep on these lengths: blocks of one key,
 * of two, of three (not dividing the lengths), query blocks of one row, of a few, of
 * more than a short sequence, k not a multiple of b_k.
 */
static const double searching[][P_COUNT] = {
	{ 8, 4, 2 },
	{ 6, 3, 1 },
	{ 13, 5, 3 },
	{ 20, 32, 2 },
	{ 4, 1, 1 },
};

static void test_hip_matches_an_fp64_transcription_of_the_search(void **state)
{
	uint64_t seed = SEED;
	int shapes[8][2], checked = 0;

	(void)state;
	for (int si = 0; si < COUNT(searching); si++)
		for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
			int count = pattern_shapes(pat, shapes);

			for (int i = 0; i < count; i++, checked++) {
				int d = dims[checked % COUNT(dims)];
				int kv = kv_choices[(checked / COUNT(dims)) % COUNT(kv_choices)];
				struct attn_problem p = problem(2, 4, kv, shapes[i][0], shapes[i][1],
								d, pat, searching[si]);

				check_against_transcription(&p, false, seed++);
			}
		}
	assert_int_equal(checked, COUNT(searching) * 14);
}

/* The defaults on sequences past k = 512 keys: 600 blocks of 2, K_s = 256. */
static void test_hip_at_its_defaults_matches_the_transcription_past_k(void **state)
{
	static const double defaults[P_COUNT] = { 512, 32, 2 };
	uint64_t seed = SEED + 100;

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		int n = pattern_is_self(pat) ? 1201 : 77;
		struct attn_problem p = problem(1, 2, 1, n, 1201, 16, pat, defaults);

		check_against_transcription(&p, false, seed++);
	}
}

/* k >= E: n <= K_s for every query block, so hip is softmax attention over [0, E). */
static void test_hip_with_k_at_least_the_visible_keys_is_vanilla(void **state)
{
	static const double tiles[][2] = { { 1, 1 }, { 4, 2 }, { 7, 3 }, { 32, 2 }, { 64, 5 } };
	uint64_t seed = SEED + 200;
	int shapes[8][2];

	(void)state;
	for (int ti = 0; ti < COUNT(tiles); ti++)
		for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
			int count = pattern_shapes(pat, shapes);

			for (int i = 0; i < count; i++) {
				/* k = M, the least that keeps everything, and more */
				double params[P_COUNT] = { shapes[i][1] + (i % 2) * 7, tiles[ti][0],
							   tiles[ti][1] };
				struct attn_problem p = problem(2, 4, kv_choices[i % 3], shapes[i][0],
								shapes[i][1], dims[(i + ti) % 3],
								pat, params);
				struct tensors t;
				double *ref = reference_make(&t, &p, seed++);

				reference_attention(&p, t.q, t.k, t.v, ref);
				check_output(variant(), &p, &t, ref, TOLERANCE, " k=%g", params[P_K]);
			}
		}
}

/*
 * n <= 2 K_s blocks: the first level has one segment per block, so the search is the
 * exact top K_s blocks by their own score. Checked against a transcription that ranks
 * every block directly, and shown to drop keys (it is not vanilla there).
 */
static void test_hip_with_at_most_2ks_blocks_keeps_the_exact_top_ks(void **state)
{
	/* 63 keys in 21 blocks of 3, K_s = 11; 40 keys in 20 blocks of 2, K_s = 10 or 11 */
	static const struct {
		int n, m;
		enum attn_pattern pat;
		double params[P_COUNT];
	} cases[] = {
		{ 63, 63, ATTN_NS, { 33, 4, 3 } },
		{ 63, 63, ATTN_CS, { 33, 4, 3 } },
		{ 63, 63, ATTN_CS, { 31, 1, 3 } },
		{ 17, 40, ATTN_NC, { 20, 5, 2 } },
		{ 57, 40, ATTN_CC, { 21, 32, 2 } },
		{ 40, 40, ATTN_NS, { 21, 40, 2 } },
	};
	uint64_t seed = SEED + 300;

	(void)state;
	for (int i = 0; i < COUNT(cases); i++) {
		struct attn_problem p = problem(2, 4, 2, cases[i].n, cases[i].m, dims[i % 3],
						cases[i].pat, cases[i].params);
		struct tensors t, u;
		double *ref = reference_make(&t, &p, seed), *van;

		tensors_copy(&u, &t);
		hip_reference(&p, true, t.q, t.k, t.v, ref);
		check_output(variant(), &p, &t, ref, TOLERANCE, " k=%g b_q=%g b_k=%g",
			     cases[i].params[P_K], cases[i].params[P_BLOCK_Q],
			     cases[i].params[P_BLOCK_K]);
		van = malloc(sizeof(double) * u.nq);
		assert_non_null(van);
		reference_attention(&p, u.q, u.k, u.v, van);
		run(variant(), &p, &u);
		assert_true(error_vs_double(u.o, van, u.nq) > LEAK_AT_LEAST);
		free(van);
		tensors_release(&u);
		seed++;
	}
}

/*
 * Zero keys score every block exactly 0: each level's tie keeps the segments further
 * left, so the rows average the values of the blocks that choice leaves.
 */
static void test_hip_breaks_ties_towards_the_left(void **state)
{
	static const double settings[][P_COUNT] = { { 8, 4, 2 }, { 5, 1, 1 }, { 12, 3, 3 } };
	uint64_t seed = SEED + 350;

	(void)state;
	for (int si = 0; si < COUNT(settings); si++)
		for (int nc = 0; nc < 2; nc++) {
			struct attn_problem p = problem(1, 2, 1, 37, nc ? 90 : 37, 8,
							nc ? ATTN_NC : ATTN_NS, settings[si]);
			struct tensors t;
			double *ref = reference_make(&t, &p, seed++);

			memset(t.k, 0, sizeof(float) * t.nkv);
			hip_reference(&p, false, t.q, t.k, t.v, ref);
			check_output(variant(), &p, &t, ref, TOLERANCE, " zero keys k=%g",
				     settings[si][P_K]);
		}
}

/* ---- causality ---- */

/* Changes rows > t of Q (and of K, V in cs); returns how far rows <= t moved. */
static double moved_by_rows_after(const struct attn_problem *p, const struct tensors *a, int t)
{
	struct tensors b;
	struct rng g = { SEED + 7 * (uint64_t)t };
	double change;

	tensors_copy(&b, a);
	perturb_rows_after(&g, b.q, (size_t)p->batch * p->heads, p->n, p->d, t);
	if (p->pattern == ATTN_CS) {
		perturb_rows_after(&g, b.k, (size_t)p->batch * p->kv_heads, p->m, p->d, t);
		perturb_rows_after(&g, b.v, (size_t)p->batch * p->kv_heads, p->m, p->d, t);
	}
	run(variant(), p, &b);
	change = change_up_to(p, a->o, b.o, t);
	tensors_release(&b);
	return change;
}

/* b_q = 1 in cs, any b_q in cc: rows <= t never move when rows > t change. */
static void test_hip_with_block_q_one_ignores_later_rows(void **state)
{
	static const double settings[][P_COUNT] = {
		{ 8, 1, 2 }, { 6, 1, 3 }, { 4, 1, 1 }, { 512, 1, 2 }, { 8, 32, 2 }, { 6, 7, 1 },
	};
	static const int cuts[] = { 0, 6, 20, 41, 61 };

	(void)state;
	for (int si = 0; si < COUNT(settings); si++)
		for (int cc = 0; cc < 2; cc++) {
			enum attn_pattern pat = cc ? ATTN_CC : ATTN_CS;
			struct attn_problem p = problem(2, 4, 2, 63, cc ? 40 : 63, 16, pat,
							settings[si]);
			struct tensors a;

			/* b_q > 1 is strict in cc only */
			if (!cc && settings[si][P_BLOCK_Q] > 1)
				continue;
			tensors_make(&a, &p, SEED + si, 1.0);
			run(variant(), &p, &a);
			for (int ci = 0; ci < COUNT(cuts); ci++) {
				double change = moved_by_rows_after(&p, &a, cuts[ci]);

				if (!(change <= CAUSAL_TOLERANCE))
					print_error("hip %s k=%g b_q=%g b_k=%g t=%d: moved by %g\n",
						    pattern_name(pat), settings[si][P_K],
						    settings[si][P_BLOCK_Q], settings[si][P_BLOCK_K],
						    cuts[ci], change);
				assert_true(change <= CAUSAL_TOLERANCE);
			}
			tensors_release(&a);
		}
}

/*
 * cs with b_q = 8: changing rows after t's query block leaves rows <= t alone (causal
 * between blocks), but changing the rows of its own block after t moves them (the
 * shared selection reads them): the leak that makes hip VARIANT_BLOCK_CAUSAL.
 */
static void test_hip_with_larger_query_blocks_is_block_causal_only(void **state)
{
	static const double params[P_COUNT] = { 8, 8, 2 };
	/* inside blocks [8, 16), [40, 48), [56, 63) */
	static const int cuts[] = { 10, 43, 58 };
	struct attn_problem p = problem(2, 4, 2, 63, 63, 16, ATTN_CS, params);
	const struct variant_ops *v = variant();
	struct tensors a;
	int leaks = 0;

	(void)state;
	assert_true(v->flags & VARIANT_BLOCK_CAUSAL);
	assert_string_equal(v->strict_causal_param, "block_q");
	tensors_make(&a, &p, SEED + 400, 1.0);
	run(v, &p, &a);
	for (int ci = 0; ci < COUNT(cuts); ci++) {
		int t = cuts[ci], end = (t / 8 + 1) * 8 - 1;

		if (end < p.n - 1)
			assert_true(moved_by_rows_after(&p, &a, end) <= CAUSAL_TOLERANCE);
		leaks += moved_by_rows_after(&p, &a, t) > LEAK_AT_LEAST;
	}
	assert_int_equal(leaks, COUNT(cuts));
	tensors_release(&a);
}

/* cc runs with b_q = 1 whatever block_q says; ns shares the selection across b_q rows. */
static void test_hip_runs_cc_with_query_blocks_of_one_row(void **state)
{
	double one[P_COUNT] = { 8, 1, 2 }, many[P_COUNT] = { 8, 32, 2 };

	(void)state;
	for (int cc = 0; cc < 2; cc++) {
		enum attn_pattern pat = cc ? ATTN_CC : ATTN_NC;
		struct attn_problem p1 = problem(1, 4, 2, 45, 70, 12, pat, one);
		struct attn_problem pm = problem(1, 4, 2, 45, 70, 12, pat, many);
		struct tensors a, b;

		tensors_make(&a, &p1, SEED + 500, 1.0);
		tensors_copy(&b, &a);
		run(variant(), &p1, &a);
		run(variant(), &pm, &b);
		if (cc)
			assert_memory_equal(a.o, b.o, sizeof(float) * a.nq);
		else
			assert_true(error_vs_float(b.o, a.o, a.nq) > LEAK_AT_LEAST);
		tensors_release(&a);
		tensors_release(&b);
	}
}

/* ---- GQA, cost, memory ---- */

/* With the search active, grouped KV heads give what MHA gives with them repeated. */
static void test_hip_gives_gqa_as_mha_with_the_search_active(void **state)
{
	static const double params[P_COUNT] = { 8, 4, 2 };

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++)
		for (int kv = 1; kv <= 2; kv++) {
			int n = 57, m = pattern_is_self(pat) ? 57 : 90;
			struct attn_problem gqa = problem(2, 4, kv, n, m, 12, pat, params);
			struct attn_problem mha = problem(2, 4, 4, n, m, 12, pat, params);
			size_t slice = (size_t)m * 12;
			struct tensors g, h;

			tensors_make(&g, &gqa, SEED + 600 + kv, 1.0);
			tensors_make(&h, &mha, SEED, 1.0);
			memcpy(h.q, g.q, sizeof(float) * g.nq);
			for (int b = 0; b < 2; b++)
				for (int hd = 0; hd < 4; hd++) {
					memcpy(h.k + problem_kv_offset(&mha, b, hd),
					       g.k + problem_kv_offset(&gqa, b, hd), sizeof(float) * slice);
					memcpy(h.v + problem_kv_offset(&mha, b, hd),
					       g.v + problem_kv_offset(&gqa, b, hd), sizeof(float) * slice);
				}
			run(variant(), &gqa, &g);
			run(variant(), &mha, &h);
			/* the same numbers through the same kernels: identical */
			assert_memory_equal(g.o, h.o, sizeof(float) * g.nq);
			tensors_release(&g);
			tensors_release(&h);
		}
}

/* Keeping everything costs what exact attention costs; searching long sequences less. */
static void test_hip_flops_follow_the_work_it_keeps(void **state)
{
	const struct variant_ops *v = variant();
	double all[P_COUNT] = { 4096, 32, 2 }, few[P_COUNT] = { 64, 32, 2 };

	(void)state;
	assert_non_null(v->flops);
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		int m = pattern_is_self(pat) ? 300 : 170;
		struct attn_problem p = problem(2, 4, 2, 300, m, 16, pat, all);
		double pairs = pat == ATTN_CS ? 300.0 * 301 / 2 : 300.0 * m;

		assert_true(fabs(v->flops(&p) - 4.0 * 2 * 4 * 16 * pairs) <= 1e-9 * v->flops(&p));
		/* k = 64 of 8192 keys: a search six levels deep, still a fraction of exact */
		pairs = pat == ATTN_CS ? 8192.0 * 8193 / 2 : 8192.0 * 8192;
		p = problem(1, 1, 1, 8192, 8192, 64, pat == ATTN_CS ? ATTN_CS : ATTN_NS, few);
		assert_true(v->flops(&p) > 0);
		assert_true(v->flops(&p) < 0.25 * 4.0 * 64 * pairs);
	}
}

/*
 * The workspace is a query block's scores over at most 2 K_s representatives or the
 * selected keys, and those keys: it does not grow with the sequence, and stays far
 * below one n x m score matrix.
 */
static void test_hip_workspace_does_not_grow_with_the_sequence(void **state)
{
	double params[P_COUNT] = { 64, 32, 2 };
	static const int lengths[] = { 1024, 2048 };
	size_t peak[2];

	(void)state;
	for (int cs = 0; cs < 2; cs++) {
		for (int i = 0; i < 2; i++) {
			struct attn_problem p = problem(1, 2, 1, lengths[i], lengths[i], 16,
							cs ? ATTN_CS : ATTN_NS, params);
			struct tensors t;
			size_t before;

			tensors_make(&t, &p, SEED, 1.0);
			before = memory_live_bytes();
			memory_reset_peak();
			run(variant(), &p, &t);
			peak[i] = memory_peak_bytes() - before;
			tensors_release(&t);
		}
		assert_true(peak[0] > 0);
		assert_int_equal(peak[0], peak[1]);
		assert_true(peak[1] < sizeof(float) * 2048 * 2048 / 16);
	}
}

/* The whole KV cache, whatever k: a later block may pick any key. */
static void test_hip_state_bytes_hold_every_key_and_value(void **state)
{
	const struct variant_ops *v = variant();
	double params[P_COUNT] = { 64, 32, 2 };
	struct attn_problem p = problem(2, 8, 2, 300, 300, 64, ATTN_CS, params);

	(void)state;
	assert_non_null(v->state_bytes);
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 2 * 300 * 64 * 4);
	params[P_K] = 8;
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 2 * 300 * 64 * 4);
	p = problem(1, 4, 4, 17, 33, 8, ATTN_NC, params);
	assert_true(v->state_bytes(&p) == 2.0 * 1 * 4 * 33 * 8 * 4);
}

/* Every pattern runs, at the defaults and at the smallest settings. */
static void test_hip_takes_every_pattern_and_setting(void **state)
{
	const struct variant_ops *v = variant();
	double least[P_COUNT] = { 1, 1, 1 };

	(void)state;
	assert_int_equal(v->patterns, PATTERNS_ALL);
	assert_int_equal(v->extensions,
			 PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_NC) | PATTERN_BIT(ATTN_CC));
	assert_false(v->flags & (VARIANT_EXACT | VARIANT_MASK_EXACT));
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		int m = pattern_is_self(pat) ? 33 : 20;
		struct attn_problem p = problem(1, 2, 1, 33, m, 8, pat, NULL);
		struct tensors t;

		assert_int_equal(variant_check_problem(v, &p), 0);
		p.params = least;
		tensors_make(&t, &p, SEED + pat, 1.0);
		run(v, &p, &t);
		for (size_t x = 0; x < t.nq; x++)
			assert_true(isfinite(t.o[x]));
		tensors_release(&t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hip_matches_an_fp64_transcription_of_the_search),
		cmocka_unit_test(test_hip_at_its_defaults_matches_the_transcription_past_k),
		cmocka_unit_test(test_hip_with_k_at_least_the_visible_keys_is_vanilla),
		cmocka_unit_test(test_hip_with_at_most_2ks_blocks_keeps_the_exact_top_ks),
		cmocka_unit_test(test_hip_breaks_ties_towards_the_left),
		cmocka_unit_test(test_hip_with_block_q_one_ignores_later_rows),
		cmocka_unit_test(test_hip_with_larger_query_blocks_is_block_causal_only),
		cmocka_unit_test(test_hip_runs_cc_with_query_blocks_of_one_row),
		cmocka_unit_test(test_hip_gives_gqa_as_mha_with_the_search_active),
		cmocka_unit_test(test_hip_flops_follow_the_work_it_keeps),
		cmocka_unit_test(test_hip_workspace_does_not_grow_with_the_sequence),
		cmocka_unit_test(test_hip_state_bytes_hold_every_key_and_value),
		cmocka_unit_test(test_hip_takes_every_pattern_and_setting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
