/*
 * test-landmark.c - landmark attention against a plain fp64 transcription of VARIANTS.md
 * section 7 (mean-key landmarks, gates, local set, candidate and forced blocks, top k_r,
 * grouped softmax) on awkward shapes in all four patterns, and the catalogue's properties:
 * keys constant within blocks with every block retrieved is vanilla (ns, cs), the lse gate
 * with every block retrieved is vanilla, k_r = 0 is block-diagonal chunk attention,
 * causality by perturbation, decode equals the causal forward, GQA is MHA with repeated
 * K/V, values of blocks a row does not retrieve never reach it, the state and FLOP
 * formulas, and a workspace far below the score matrix.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "variant-test.h"

/* fp32 kernel against the fp64 transcription: the catalogue's bound. */
#define TOLERANCE 1e-5
/* Rows the causal mask hides may move visible rows only by fp32 reordering. */
#define CAUSAL_TOLERANCE 1e-5
/* GQA reads the same numbers as MHA with repeated heads: only rounding noise. */
#define GQA_TOLERANCE 1e-6

/* The variant's parameter order. */
enum { P_BLOCK, P_TOPK, P_LOGSIZE, P_GATE, P_LOCAL_BLOCKS, P_COUNT };

/* More blocks than any test has: "retrieve every block". */
#define ALL_BLOCKS 100000

static const struct variant_ops *landmark(void)
{
	return variant_must_find("landmark");
}

/* A setting: block, topk, logsize, gate (0 mean, 1 lse), local_blocks. */
struct setting {
	double v[P_COUNT];
};

static const struct setting defaults = { { 64, 4, 1, 0, 1 } };

/* ---- the fp64 transcription ---- */

static double dotd(const float *a, const float *b, int d)
{
	double s = 0;

	for (int c = 0; c < d; c++)
		s += (double)a[c] * b[c];
	return s;
}

/*
 * The catalogue's equations by plain loops. uses (if not NULL) gets, per slice, row and
 * block, whether the row reads that block's values (local or retrieved): [slices][n][nb].
 */
static void transcription(const struct attn_problem *p, const double *x, const float *q,
			  const float *k, const float *v, double *out, bool *uses)
{
	int n = p->n, m = p->m, d = p->d, L = (int)x[P_BLOCK];
	int topk = (int)fmin(x[P_TOPK], 1e9), lb = (int)x[P_LOCAL_BLOCKS];
	bool logsize = x[P_LOGSIZE] != 0, lse = x[P_GATE] != 0;
	bool self = p->pattern == ATTN_NS || p->pattern == ATTN_CS, cs = p->pattern == ATTN_CS;
	int nb = (m + L - 1) / L;
	double sigma = 1 / sqrt((double)d);
	double *lam = malloc(sizeof(double) * nb * d), *s = malloc(sizeof(double) * m);
	double *g = malloc(sizeof(double) * nb);
	bool *cand = malloc(sizeof(bool) * nb), *inR = malloc(sizeof(bool) * nb);
	bool *forced = malloc(sizeof(bool) * nb);

	assert_true(lam && s && g && cand && inR && forced);
	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			const float *qh = q + problem_q_offset(p, b, h);
			const float *kh = k + problem_kv_offset(p, b, h);
			const float *vh = v + problem_kv_offset(p, b, h);
			double *oh = out + problem_q_offset(p, b, h);
			size_t slice = (size_t)b * p->heads + h;

			/* lambda_b = mean of the keys of block b */
			for (int bl = 0; bl < nb; bl++) {
				int lo = bl * L, hi = lo + L < m ? lo + L : m;

				for (int e = 0; e < d; e++) {
					lam[bl * d + e] = 0;
					for (int j = lo; j < hi; j++)
						lam[bl * d + e] += kh[j * d + e];
					lam[bl * d + e] /= hi - lo;
				}
			}
			for (int i = 0; i < n; i++) {
				const float *qi = qh + (size_t)i * d;
				double *oi = oh + (size_t)i * d, shift = -INFINITY, z = 0;
				int own = self ? i / L : -1, loc_lo = 0, loc_hi = 0;

				for (int j = 0; j < m; j++)
					s[j] = sigma * dotd(qi, kh + (size_t)j * d, d);
				if (self) {
					loc_lo = own * L;
					loc_hi = cs ? i + 1 : (loc_lo + L < m ? loc_lo + L : m);
				}
				for (int bl = 0; bl < nb; bl++) {
					int lo = bl * L, hi = lo + L < m ? lo + L : m;

					if (lse) {
						double mx = -INFINITY, sum = 0;

						for (int j = lo; j < hi; j++)
							mx = fmax(mx, s[j]);
						for (int j = lo; j < hi; j++)
							sum += exp(s[j] - mx);
						g[bl] = mx + log(sum);
					} else {
						double dl = 0;

						for (int e = 0; e < d; e++)
							dl += (double)qi[e] * lam[bl * d + e];
						g[bl] = sigma * dl + (logsize ? log((double)(hi - lo)) : 0);
					}
					/* candidates: cs complete blocks before own; ns others; cross all */
					cand[bl] = cs ? bl < own : (self ? bl != own : true);
					forced[bl] = self && bl < own && bl >= own - (lb - 1);
					inR[bl] = forced[bl];
				}
				/* topk times: the best candidate not yet in R (first on ties) */
				for (int t = 0; t < topk; t++) {
					int best = -1;

					for (int bl = 0; bl < nb; bl++)
						if (cand[bl] && !inR[bl] && (best < 0 || g[bl] > g[best]))
							best = bl;
					if (best < 0)
						break;
					inR[best] = true;
				}
				/* Z with one shift over every term */
				for (int j = loc_lo; j < loc_hi; j++)
					shift = fmax(shift, s[j]);
				for (int bl = 0; bl < nb; bl++)
					if (inR[bl])
						shift = fmax(shift, g[bl]);
				for (int j = loc_lo; j < loc_hi; j++)
					z += exp(s[j] - shift);
				for (int bl = 0; bl < nb; bl++)
					if (inR[bl])
						z += exp(g[bl] - shift);
				for (int e = 0; e < d; e++)
					oi[e] = 0;
				if (uses)
					for (int bl = 0; bl < nb; bl++)
						uses[(slice * n + i) * nb + bl] = inR[bl] || bl == own;
				if (z == 0)
					continue;
				for (int j = loc_lo; j < loc_hi; j++) {
					double w = exp(s[j] - shift) / z;

					for (int e = 0; e < d; e++)
						oi[e] += w * vh[j * d + e];
				}
				for (int bl = 0; bl < nb; bl++) {
					int lo = bl * L, hi = lo + L < m ? lo + L : m;
					double mx = -INFINITY, sum = 0, gw;

					if (!inR[bl])
						continue;
					gw = exp(g[bl] - shift) / z;
					for (int j = lo; j < hi; j++)
						mx = fmax(mx, s[j]);
					for (int j = lo; j < hi; j++)
						sum += exp(s[j] - mx);
					for (int j = lo; j < hi; j++) {
						double w = gw * exp(s[j] - mx) / sum;

						for (int e = 0; e < d; e++)
							oi[e] += w * vh[j * d + e];
					}
				}
			}
		}
	free(forced);
	free(inR);
	free(cand);
	free(g);
	free(s);
	free(lam);
}

/* Block-diagonal (chunk) attention with chunks of C in double: i sees j iff i/C == j/C. */
static void chunk_reference(const struct attn_problem *p, int C, const float *q,
			    const float *k, const float *v, double *out)
{
	int n = p->n, d = p->d;
	double sigma = 1 / sqrt((double)d);

	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			const float *qh = q + problem_q_offset(p, b, h);
			const float *kh = k + problem_kv_offset(p, b, h);
			const float *vh = v + problem_kv_offset(p, b, h);
			double *oh = out + problem_q_offset(p, b, h);

			for (int i = 0; i < n; i++) {
				double mx = -INFINITY, sum = 0;

				for (int e = 0; e < d; e++)
					oh[i * d + e] = 0;
				for (int j = 0; j < n; j++)
					if (j / C == i / C && (p->pattern != ATTN_CS || j <= i))
						mx = fmax(mx, sigma * dotd(qh + i * d, kh + j * d, d));
				for (int j = 0; j < n; j++) {
					double w;

					if (j / C != i / C || (p->pattern == ATTN_CS && j > i))
						continue;
					w = exp(sigma * dotd(qh + i * d, kh + j * d, d) - mx);
					sum += w;
					for (int e = 0; e < d; e++)
						oh[i * d + e] += w * vh[j * d + e];
				}
				for (int e = 0; e < d; e++)
					oh[i * d + e] /= sum;
			}
		}
}

static void check_transcription(const struct attn_problem *p, const struct setting *s,
				uint64_t seed)
{
	struct tensors t;
	double *ref = reference_make(&t, p, seed);

	transcription(p, s->v, t.q, t.k, t.v, ref, NULL);
	check_output(landmark(), p, &t, ref, TOLERANCE, " L=%g k_r=%g logsize=%g gate=%g n=%g",
		     s->v[0], s->v[1], s->v[2], s->v[3], s->v[4]);
}

/* ---- tests ---- */

static void test_landmark_declares_its_patterns_and_parameters(void **state)
{
	const struct variant_ops *v = landmark();
	static const char *const names[P_COUNT] = { "block", "topk", "logsize", "gate",
						    "local_blocks" };
	double def[VARIANT_MAX_PARAMS];

	(void)state;
	assert_int_equal(v->n_params, P_COUNT);
	for (int i = 0; i < P_COUNT; i++)
		assert_int_equal(variant_param_index(v, names[i]), i);
	variant_default_params(v, def);
	for (int i = 0; i < P_COUNT; i++)
		assert_true(def[i] == defaults.v[i]);
	assert_true(v->patterns == PATTERNS_ALL);
	assert_true(v->extensions ==
		    (PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_NC) | PATTERN_BIT(ATTN_CC)));
	assert_int_equal(v->flags, 0);
	assert_non_null(v->decode_init);
	assert_non_null(v->decode_step);
	assert_non_null(v->decode_free);
	assert_non_null(v->flops);
	assert_non_null(v->state_bytes);
}

/*
 * Every pattern over the awkward shapes (odd n, n != m in cross, d 8, 64, 12, 4 query
 * heads over 4, 2 and 1 KV heads) with the defaults (L = 64: one to five blocks); then
 * lighter walks (2 KV heads) with small blocks (every d) and, at d = 12, further settings:
 * no log-size term, forced local blocks, the lse gate, no retrieval, one-key blocks, more
 * local blocks than exist, a block longer than some sequences.
 */
static void test_landmark_matches_an_fp64_transcription_on_awkward_shapes(void **state)
{
	static const struct setting light[] = {
		{ { 8, 3, 1, 0, 1 } },
		{ { 8, 2, 0, 0, 2 } },
		{ { 5, 2, 1, 1, 3 } },
		{ { 16, 0, 1, 0, 1 } },
		{ { 1, 5, 1, 0, 4 } },
		{ { 7, 1, 1, 0, 100 } },
		{ { 100, 2, 1, 0, 1 } },
	};
	uint64_t seed = SEED;
	int checked = 0;

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		struct shape_walk w = { 0 };
		struct attn_problem p;

		while (shape_walk_next(&w, pat, defaults.v, &p)) {
			check_transcription(&p, &defaults, seed++);
			checked++;
		}
	}
	assert_int_equal(checked, (2 * 4 + 2 * 12) * 3 * 3);
	for (int si = 0; si < COUNT(light); si++)
		for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
			struct shape_walk w = { 0 };
			struct attn_problem p;

			while (shape_walk_next(&w, pat, light[si].v, &p)) {
				/* the first (small blocks) over every d, the rest at d = 12 */
				if (kv_choices[w.kv] != 2 || (si && dims[w.di] != 12))
					continue;
				check_transcription(&p, &light[si], seed++);
			}
		}
}

/* NULL params are the defaults. */
static void test_landmark_without_params_takes_the_defaults(void **state)
{
	uint64_t seed = SEED + 100;

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		int m = pattern_is_self(pat) ? 257 : 200;
		struct attn_problem p = problem(2, 4, 2, 257, m, 16, pat, NULL);

		check_transcription(&p, &defaults, seed++);
	}
}

/* Compares with the exact fp64 reference. */
static void check_vanilla(const struct attn_problem *p, struct tensors *t, const char *what)
{
	double *ref = malloc(sizeof(double) * t->nq), err;

	assert_non_null(ref);
	reference_attention(p, t->q, t->k, t->v, ref);
	run(landmark(), p, t);
	err = error_vs_double(t->o, ref, t->nq);
	if (!(err <= TOLERANCE))
		print_error("%s %s n=%d m=%d d=%d L=%g: error %g against vanilla\n", what,
			    pattern_name(p->pattern), p->n, p->m, p->d, p->params[P_BLOCK], err);
	assert_true(err <= TOLERANCE);
	free(ref);
}

/*
 * Keys constant within every block make the mean-key gate sigma q.k + ln|B| the exact
 * log-mass of the block; with every block retrieved the grouped softmax is then exact
 * attention (ns, cs), short last blocks included.
 */
static void test_landmark_with_blockwise_constant_keys_and_every_block_equals_vanilla(void **state)
{
	static const int blocks[] = { 8, 5, 64 };
	static const int lens[] = { 17, 63, 257 };
	uint64_t seed = SEED + 200;

	(void)state;
	/* d cycles over 8, 64, 12 */
	for (int bi = 0; bi < COUNT(blocks); bi++)
		for (int li = 0; li < COUNT(lens); li++)
			for (int pat = ATTN_NS; pat <= ATTN_CS; pat++) {
				double x[P_COUNT] = { blocks[bi], ALL_BLOCKS, 1, 0, 1 };
				int n = lens[li], d = dims[(bi + li) % COUNT(dims)], L = blocks[bi];
				struct attn_problem p = problem(2, 4, 2, n, n, d, pat, x);
				struct tensors t;

				tensors_make(&t, &p, seed++, 1.0);
				for (int s = 0; s < 2 * 2; s++)
					for (int j = 0; j < n; j++)
						memcpy(t.k + ((size_t)s * n + j) * d,
						       t.k + ((size_t)s * n + j / L * L) * d,
						       sizeof(float) * d);
				check_vanilla(&p, &t, "constant keys");
				tensors_release(&t);
			}
}

/* The same keys without the ln|B| term under-rate every block of more than one key. */
static void test_landmark_without_log_size_is_not_vanilla_on_constant_keys(void **state)
{
	double x[P_COUNT] = { 8, ALL_BLOCKS, 0, 0, 1 };
	struct attn_problem p = problem(1, 2, 2, 63, 63, 16, ATTN_NS, x);
	struct tensors t;
	double *ref = malloc(sizeof(double) * 2 * 63 * 16);

	(void)state;
	assert_non_null(ref);
	tensors_make(&t, &p, SEED + 250, 1.0);
	for (int s = 0; s < 2; s++)
		for (int j = 0; j < 63; j++)
			memcpy(t.k + ((size_t)s * 63 + j) * 16, t.k + ((size_t)s * 63 + j / 8 * 8) * 16,
			       sizeof(float) * 16);
	reference_attention(&p, t.q, t.k, t.v, ref);
	run(landmark(), &p, &t);
	assert_true(error_vs_double(t.o, ref, t.nq) > 1e-3);
	free(ref);
	tensors_release(&t);
}

/* gate = lse is the block's exact log-mass: with every block retrieved, vanilla. */
static void test_landmark_lse_gate_with_every_block_equals_vanilla(void **state)
{
	static const int blocks[] = { 8, 5, 64 };
	static const int local[] = { 1, 3 };
	uint64_t seed = SEED + 300;

	(void)state;
	for (int bi = 0; bi < COUNT(blocks); bi++)
		for (int lo = 0; lo < COUNT(local); lo++)
			for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++)
				for (int si = 1; si < COUNT(sizes); si++) {
					double x[P_COUNT] = { blocks[bi], ALL_BLOCKS, 1, 1, local[lo] };
					int n = sizes[si];
					int m = pattern_is_self(pat) ? n : cross[si - 1][1];
					struct attn_problem p;
					struct tensors t;

					if (!pattern_is_self(pat))
						n = cross[si - 1][0];
					p = problem(2, 4, 2, n, m, dims[si % COUNT(dims)], pat, x);
					tensors_make(&t, &p, seed++, 1.0);
					check_vanilla(&p, &t, "lse gate");
					tensors_release(&t);
				}
}

/* k_r = 0 with the own block only: cs (and ns) is chunk attention with C = L. */
static void test_landmark_without_retrieval_is_chunk_attention(void **state)
{
	static const int blocks[] = { 1, 8, 5, 64, 300 };
	uint64_t seed = SEED + 400;

	(void)state;
	for (int bi = 0; bi < COUNT(blocks); bi++)
		for (int si = 0; si < COUNT(sizes); si++)
			for (int pat = ATTN_NS; pat <= ATTN_CS; pat++) {
				double x[P_COUNT] = { blocks[bi], 0, 1, 0, 1 };
				int n = sizes[si], d = dims[(bi + si) % COUNT(dims)];
				struct attn_problem p = problem(2, 4, 1, n, n, d, pat, x);
				struct tensors t;
				double *ref = reference_make(&t, &p, seed++);

				chunk_reference(&p, blocks[bi], t.q, t.k, t.v, ref);
				check_output(landmark(), &p, &t, ref, TOLERANCE, " L=%d k_r=0",
					     blocks[bi]);
			}
}

/* nc/cc with k_r = 0 have nothing to attend: every row is 0, never NaN. */
static void test_landmark_cross_without_retrieval_outputs_zero(void **state)
{
	double x[P_COUNT] = { 8, 0, 1, 0, 3 };

	(void)state;
	for (int pat = ATTN_NC; pat <= ATTN_CC; pat++) {
		struct attn_problem p = problem(1, 2, 1, 17, 40, 8, pat, x);
		struct tensors t;

		tensors_make(&t, &p, SEED + 450, 1.0);
		run(landmark(), &p, &t);
		for (size_t i = 0; i < t.nq; i++)
			assert_true(t.o[i] == 0.0f);
		tensors_release(&t);
	}
}

/* cs: perturb Q, K, V after t; cc: Q after t. Rows <= t must not move. */
static void check_causal(const struct attn_problem *p, uint64_t seed)
{
	static const int cuts[] = { 0, 7, 8, 41, 64, 100 };
	struct tensors a;

	tensors_make(&a, p, seed, 1.0);
	run(landmark(), p, &a);
	for (int ci = 0; ci < COUNT(cuts); ci++) {
		struct rng g = { seed + 17 * (uint64_t)ci };
		struct tensors b;
		double change;
		int t = cuts[ci];

		if (t >= p->n - 1)
			continue;
		tensors_copy(&b, &a);
		perturb_rows_after(&g, b.q, (size_t)p->batch * p->heads, p->n, p->d, t);
		if (p->pattern == ATTN_CS) {
			perturb_rows_after(&g, b.k, (size_t)p->batch * p->kv_heads, p->m, p->d, t);
			perturb_rows_after(&g, b.v, (size_t)p->batch * p->kv_heads, p->m, p->d, t);
		}
		run(landmark(), p, &b);
		change = change_up_to(p, a.o, b.o, t);
		if (!(change <= CAUSAL_TOLERANCE))
			print_error("%s t=%d L=%g k_r=%g gate=%g: rows <= t moved by %g\n",
				    pattern_name(p->pattern), t, p->params[P_BLOCK],
				    p->params[P_TOPK], p->params[P_GATE], change);
		assert_true(change <= CAUSAL_TOLERANCE);
		tensors_release(&b);
	}
	tensors_release(&a);
}

static void test_landmark_ignores_later_rows_in_causal_patterns(void **state)
{
	static const struct setting settings[] = {
		{ { 64, 4, 1, 0, 1 } },
		{ { 8, 2, 1, 0, 1 } },
		{ { 8, 1, 0, 0, 3 } },
		{ { 5, 2, 1, 1, 2 } },
		{ { 1, 3, 1, 0, 1 } },
	};
	uint64_t seed = SEED + 500;

	(void)state;
	for (int si = 0; si < COUNT(settings); si++) {
		struct attn_problem cs = problem(2, 4, 2, 130, 130, 16, ATTN_CS, settings[si].v);
		struct attn_problem cc = problem(2, 4, 2, 130, 77, 12, ATTN_CC, settings[si].v);

		check_causal(&cs, seed++);
		check_causal(&cc, seed++);
	}
}

/* Decoding one position at a time gives the rows of the causal forward pass. */
static void test_landmark_decoding_matches_its_causal_forward(void **state)
{
	static const struct setting settings[] = {
		{ { 64, 4, 1, 0, 1 } },
		{ { 8, 2, 1, 0, 2 } },
		{ { 5, 1, 0, 1, 1 } },
		{ { 16, 0, 1, 0, 1 } },
		{ { 1, 3, 1, 0, 1 } },
	};
	static const int lens[] = { 1, 17, 63, 130 };
	static const int ds[] = { 8, 12, 64 };
	uint64_t seed = SEED + 600;

	(void)state;
	/* every length with every setting; d and the KV grouping cycle */
	for (int si = 0; si < COUNT(settings); si++)
		for (int li = 0; li < COUNT(lens); li++) {
			int kv = kv_choices[(si + li) % COUNT(kv_choices)];
			int d = ds[(si + 2 * li) % COUNT(ds)];
			struct attn_problem p = problem(2, 4, kv, lens[li], lens[li], d, ATTN_CS,
							settings[si].v);

			check_decode(landmark(), &p, seed++);
		}
}

/* Only cs decodes. */
static void test_landmark_decoding_refuses_other_patterns(void **state)
{
	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		struct attn_problem p = problem(1, 2, 2, 16, 16, 8, pat, defaults.v);
		void *dec = NULL;

		if (pat == ATTN_CS)
			continue;
		assert_int_equal(landmark()->decode_init(&p, &dec), -ENOTSUP);
		assert_null(dec);
	}
}

/* Grouped KV heads (landmarks per KV head) give MHA with each KV head repeated. */
static void test_landmark_gives_gqa_as_mha_with_repeated_kv(void **state)
{
	double x[P_COUNT] = { 8, 2, 1, 0, 2 };

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++)
		for (int kv = 1; kv <= 2; kv++) {
			int n = 71, m = pattern_is_self(pat) ? 71 : 45, d = 12;
			struct attn_problem gqa = problem(2, 4, kv, n, m, d, pat, x);
			struct attn_problem mha = problem(2, 4, 4, n, m, d, pat, x);
			struct tensors g, h;
			double err;

			tensors_make(&g, &gqa, SEED + 700 + kv, 1.0);
			tensors_make(&h, &mha, SEED, 1.0);
			memcpy(h.q, g.q, sizeof(float) * g.nq);
			for (int b = 0; b < 2; b++)
				for (int hd = 0; hd < 4; hd++) {
					memcpy(h.k + problem_kv_offset(&mha, b, hd),
					       g.k + problem_kv_offset(&gqa, b, hd),
					       sizeof(float) * m * d);
					memcpy(h.v + problem_kv_offset(&mha, b, hd),
					       g.v + problem_kv_offset(&gqa, b, hd),
					       sizeof(float) * m * d);
				}
			run(landmark(), &gqa, &g);
			run(landmark(), &mha, &h);
			err = error_vs_float(g.o, h.o, g.nq);
			assert_true(err <= GQA_TOLERANCE);
			tensors_release(&g);
			tensors_release(&h);
		}
}

/*
 * Landmarks never contribute values, and a block outside R_i (and not the own block)
 * never reaches row i: replacing the values of one block leaves bit-identical every row
 * the transcription says does not read it, and moves the rows that do.
 */
static void test_landmark_rows_ignore_values_of_blocks_they_do_not_retrieve(void **state)
{
	static const enum attn_pattern pats[] = { ATTN_NS, ATTN_CS, ATTN_NC, ATTN_CC };
	double x[P_COUNT] = { 8, 2, 1, 0, 2 };

	(void)state;
	for (int pi = 0; pi < COUNT(pats); pi++) {
		int n = 57, m = pattern_is_self(pats[pi]) ? 57 : 70, d = 16, L = 8;
		int nb = (m + L - 1) / L, slices = 2 * 4;
		struct attn_problem p = problem(2, 4, 4, n, m, d, pats[pi], x);
		bool *uses = malloc(sizeof(bool) * slices * n * nb);
		double *ref = malloc(sizeof(double) * slices * n * d);
		struct tensors a;

		assert_non_null(uses);
		assert_non_null(ref);
		tensors_make(&a, &p, SEED + 800 + pi, 1.0);
		transcription(&p, x, a.q, a.k, a.v, ref, uses);
		run(landmark(), &p, &a);
		for (int blk = 0; blk < nb; blk++) {
			struct rng g = { SEED + 900 + blk };
			struct tensors b;
			int readers = 0, others = 0;

			tensors_copy(&b, &a);
			for (int s = 0; s < slices; s++)
				for (int j = blk * L; j < m && j < (blk + 1) * L; j++)
					fill_normal(&g, b.v + ((size_t)s * m + j) * d, d, 3.0);
			run(landmark(), &p, &b);
			for (int s = 0; s < slices; s++)
				for (int i = 0; i < n; i++) {
					size_t at = ((size_t)s * n + i) * d;
					bool same = !memcmp(a.o + at, b.o + at, sizeof(float) * d);

					if (uses[((size_t)s * n + i) * nb + blk]) {
						assert_false(same);
						readers++;
					} else {
						assert_true(same);
						others++;
					}
				}
			/* k_r = 2 of 8 or 9 blocks: some rows read each block, most do not */
			assert_true(others > 0);
			/* in ns and cs the own block's rows read it */
			assert_true(readers > 0 || !pattern_is_self(pats[pi]));
			tensors_release(&b);
		}
		free(ref);
		free(uses);
		tensors_release(&a);
	}
}

/*
 * Ties: every block holds the same keys (so the same landmark and gate) and its own
 * values; the k_r blocks retrieved must be the first ones, as the transcription picks.
 */
static void test_landmark_breaks_gate_ties_towards_the_smaller_block(void **state)
{
	static const enum attn_pattern pats[] = { ATTN_NS, ATTN_CS, ATTN_NC, ATTN_CC };
	double x[P_COUNT] = { 8, 2, 1, 0, 1 };

	(void)state;
	for (int pi = 0; pi < COUNT(pats); pi++) {
		int n = 48, m = pattern_is_self(pats[pi]) ? 48 : 64, d = 8;
		struct attn_problem p = problem(1, 2, 1, n, m, d, pats[pi], x);
		struct tensors t;
		double *ref = reference_make(&t, &p, SEED + 1100 + pi);

		for (int j = 8; j < m; j++)
			memcpy(t.k + (size_t)j * d, t.k + (size_t)(j % 8) * d, sizeof(float) * d);
		transcription(&p, x, t.q, t.k, t.v, ref, NULL);
		check_output(landmark(), &p, &t, ref, TOLERANCE, " tied gates");
	}
}

/* KV cache of every key and value plus the landmark keys (cs: complete blocks only). */
static void test_landmark_state_bytes_follow_the_formula(void **state)
{
	const struct variant_ops *v = landmark();
	double lse[P_COUNT] = { 64, 4, 1, 1, 1 }, small[P_COUNT] = { 7, 4, 1, 0, 1 };
	struct attn_problem p;

	(void)state;
	p = problem(2, 8, 2, 300, 300, 64, ATTN_CS, defaults.v);
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 2 * 300 * 64 * 4 + 2.0 * 2 * 4 * 64 * 4);
	p = problem(2, 8, 2, 300, 300, 64, ATTN_NS, defaults.v);
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 2 * 300 * 64 * 4 + 2.0 * 2 * 5 * 64 * 4);
	p = problem(1, 4, 4, 17, 33, 8, ATTN_NC, small);
	assert_true(v->state_bytes(&p) == 2.0 * 1 * 4 * 33 * 8 * 4 + 1.0 * 4 * 5 * 8 * 4);
	p = problem(1, 4, 4, 17, 33, 8, ATTN_CC, NULL);
	assert_true(v->state_bytes(&p) == 2.0 * 1 * 4 * 33 * 8 * 4 + 1.0 * 4 * 1 * 8 * 4);
	p = problem(2, 8, 2, 300, 300, 64, ATTN_CS, lse);
	assert_true(v->state_bytes(&p) == 2.0 * 2 * 2 * 300 * 64 * 4);
}

/*
 * FLOPs of the work kept, by hand: cs, L = 8, N = 64, d = 16, k_r = 0. Row i attends the
 * i % 8 + 1 keys of its block (288 in all), gates its i / 8 earlier blocks (224 row-block
 * pairs), and the landmarks add M d: 16 (4 * 288 + 2 * 224) + 64 * 16 = 26624. With
 * k_r = 2 each row also reads min(2, i / 8) full blocks (8 * 8 * 13 = 832 keys).
 */
static void test_landmark_flops_count_the_kept_work(void **state)
{
	double x[P_COUNT] = { 8, 0, 1, 0, 1 };
	struct attn_problem p = problem(1, 1, 1, 64, 64, 16, ATTN_CS, x);
	const struct variant_ops *v = landmark();
	struct attn_problem big = problem(1, 1, 1, 16384, 16384, 64, ATTN_CS, NULL);

	(void)state;
	assert_true(v->flops(&p) == 26624.0);
	x[P_TOPK] = 2;
	assert_true(v->flops(&p) == 16.0 * (4 * (288 + 832) + 2 * 224) + 64 * 16);
	/* far below exact attention at length */
	assert_true(v->flops(&big) < 0.1 * 4.0 * 64 * 16384.0 * 16385 / 2);
}

/* The workspace never holds an N x M score matrix: at N = M = 2048 it is far below one. */
static void test_landmark_workspace_stays_far_below_the_score_matrix(void **state)
{
	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		int n = 2048;
		struct attn_problem p = problem(1, 2, 1, n, n, 16, pat, defaults.v);
		struct tensors t;
		size_t live, peak;

		tensors_make(&t, &p, SEED + 1000, 1.0);
		live = memory_live_bytes();
		memory_reset_peak();
		run(landmark(), &p, &t);
		peak = memory_peak_bytes() - live;
		assert_true(peak < (size_t)n * n * sizeof(float) / 16);
		tensors_release(&t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_landmark_declares_its_patterns_and_parameters),
		cmocka_unit_test(test_landmark_matches_an_fp64_transcription_on_awkward_shapes),
		cmocka_unit_test(test_landmark_without_params_takes_the_defaults),
		cmocka_unit_test(test_landmark_with_blockwise_constant_keys_and_every_block_equals_vanilla),
		cmocka_unit_test(test_landmark_without_log_size_is_not_vanilla_on_constant_keys),
		cmocka_unit_test(test_landmark_lse_gate_with_every_block_equals_vanilla),
		cmocka_unit_test(test_landmark_without_retrieval_is_chunk_attention),
		cmocka_unit_test(test_landmark_cross_without_retrieval_outputs_zero),
		cmocka_unit_test(test_landmark_ignores_later_rows_in_causal_patterns),
		cmocka_unit_test(test_landmark_decoding_matches_its_causal_forward),
		cmocka_unit_test(test_landmark_decoding_refuses_other_patterns),
		cmocka_unit_test(test_landmark_gives_gqa_as_mha_with_repeated_kv),
		cmocka_unit_test(test_landmark_rows_ignore_values_of_blocks_they_do_not_retrieve),
		cmocka_unit_test(test_landmark_breaks_gate_ties_towards_the_smaller_block),
		cmocka_unit_test(test_landmark_state_bytes_follow_the_formula),
		cmocka_unit_test(test_landmark_flops_count_the_kept_work),
		cmocka_unit_test(test_landmark_workspace_stays_far_below_the_score_matrix),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
