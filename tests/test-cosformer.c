/*
 * test-cosformer.c - cosFormer against its explicit (quadratic) form written out in
 * double precision, plus the properties its catalogue entry asks for: a query with no
 * positive entry outputs 0, the 1e-6 clamp, the horizon (causal rows independent of the
 * total length, refusal past it), decoding, state bytes and GQA sharing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "variant-test.h"

/* fp32 kernel against the fp64 explicit form: the catalogue's bound. */
#define TOLERANCE 1e-5
/* The spec's horizon for cs and cc when cosformer.horizon is 0. */
#define FIXED_CAUSAL_HORIZON 65536
/* The spec's clamp of the denominator: max(Σ_j w_ij, 1e-6). */
#define DEN_FLOOR 1e-6
/* A length-dependent θ moves rows by percents; far above any rounding. */
#define CHANGED 1e-3

#define PI 3.14159265358979323846

static const struct variant_ops *cosformer(void)
{
	return variant_must_find("cosformer");
}

static bool self_pattern(enum attn_pattern pattern)
{
	return pattern == ATTN_NS || pattern == ATTN_CS;
}

static bool causal_pattern(enum attn_pattern pattern)
{
	return pattern == ATTN_CS || pattern == ATTN_CC;
}

static double relu(float x)
{
	return x > 0 ? x : 0;
}

/*
 * The explicit form: w_ij = (q̃_i·k̃_j) cos(θ_i − θ_j), θ_x = πx/(2m) for the 1-based x,
 * o_i = Σ_j w_ij v_j / max(Σ_j w_ij, 1e-6) over all j, or j <= i in cs. m is the set
 * horizon, else max(N, M) in ns/nc and the fixed horizon in cs/cc.
 */
static void explicit_form(const struct attn_problem *p, long horizon, const float *q,
			  const float *k, const float *v, double *out)
{
	int n = p->n, m = p->m, d = p->d, group = p->heads / p->kv_heads;
	double mu = horizon > 0 ? horizon : causal_pattern(p->pattern) ?
		FIXED_CAUSAL_HORIZON : (n > m ? n : m);

	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			int kvh = h / group;
			const float *qs = q + ((size_t)b * p->heads + h) * n * d;
			const float *ks = k + ((size_t)b * p->kv_heads + kvh) * m * d;
			const float *vs = v + ((size_t)b * p->kv_heads + kvh) * m * d;
			double *os = out + ((size_t)b * p->heads + h) * n * d;

			for (int i = 0; i < n; i++) {
				int last = p->pattern == ATTN_CS ? i : m - 1;
				double sum = 0, *o = os + (size_t)i * d;
				double theta_i = PI * (i + 1) / (2 * mu);

				for (int c = 0; c < d; c++)
					o[c] = 0;
				for (int j = 0; j <= last; j++) {
					double qk = 0, w;

					for (int c = 0; c < d; c++)
						qk += relu(qs[(size_t)i * d + c]) *
						      relu(ks[(size_t)j * d + c]);
					w = qk * cos(theta_i - PI * (j + 1) / (2 * mu));
					sum += w;
					for (int c = 0; c < d; c++)
						o[c] += w * vs[(size_t)j * d + c];
				}
				for (int c = 0; c < d; c++)
					o[c] /= fmax(sum, DEN_FLOOR);
			}
		}
}

/* Runs the variant on t and returns its error against the explicit form. */
static double error_vs_explicit(const struct attn_problem *p, long horizon, struct tensors *t)
{
	double *ref = malloc(sizeof(double) * t->nq), err;

	assert_non_null(ref);
	explicit_form(p, horizon, t->q, t->k, t->v, ref);
	run(cosformer(), p, t);
	err = error_vs_double(t->o, ref, t->nq);
	free(ref);
	return err;
}

static void check_explicit(const struct attn_problem *p, long horizon, uint64_t seed,
			   double scale)
{
	struct tensors t;

	tensors_make(&t, p, seed, scale);
	check_error(cosformer(), p, error_vs_explicit(p, horizon, &t), TOLERANCE,
		    " horizon=%ld (against the explicit form)", horizon);
	tensors_release(&t);
}

/*
 * The grid of awkward shapes for every pattern; shapes longer than the horizon skipped.
 * Unless `every_kv`, one KV grouping per shape and d, in turn, to keep the time down.
 */
static int check_grid(long horizon, bool every_kv, uint64_t *seed)
{
	double params[1] = { (double)horizon };
	int checked = 0;

	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		struct shape_walk w = { 0 };
		struct attn_problem p;

		while (shape_walk_next(&w, pat, params, &p)) {
			if (!every_kv && w.kv != (w.a + w.b + w.di) % COUNT(kv_choices))
				continue;
			if (variant_check_problem(cosformer(), &p))
				continue;
			check_explicit(&p, horizon, (*seed)++, 1.0);
			checked++;
		}
	}
	return checked;
}

static void test_cosformer_matches_the_explicit_form_on_awkward_shapes(void **state)
{
	uint64_t seed = SEED;

	(void)state;
	/* 4 self sizes and 12 cross pairs, 9 (d, kv) each, in two patterns each */
	assert_int_equal(check_grid(0, true, &seed), 2 * (4 + 12) * 9);
}

/* θ spans up to π/2 when the horizon is the longest size: cos weights from 1 to ~0. */
static void test_cosformer_matches_the_explicit_form_with_a_set_horizon(void **state)
{
	uint64_t seed = SEED + 1000;

	(void)state;
	assert_int_equal(check_grid(257, false, &seed), 2 * (4 + 12) * 3);
	/* 257 is refused under a horizon of 63, and everything with it */
	assert_int_equal(check_grid(63, false, &seed), 2 * (3 + 6) * 3);
}

/* No params means the declared defaults: horizon 0. */
static void test_cosformer_without_params_uses_the_default_horizon(void **state)
{
	uint64_t seed = SEED + 2000;

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		struct attn_problem p = problem(2, 4, 2, 70, self_pattern(pat) ? 70 : 33, 12,
						pat, NULL);

		check_explicit(&p, 0, seed++, 1.0);
	}
}

/*
 * Queries of size 1e-7 against unit keys give denominators around 1e-6: some rows are
 * clamped, some not. Without the clamp (or with 1e-6 added instead) the outputs differ by
 * tens of percent.
 */
static void test_cosformer_clamps_small_denominators_at_1e_6(void **state)
{
	uint64_t seed = SEED + 3000;

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		int m = self_pattern(pat) ? 17 : 40;
		double params[1] = { 0 };
		struct attn_problem p = problem(2, 4, 2, 17, m, 8, pat, params);
		struct tensors t;
		double *ref, err;
		int clamped = 0;
		struct rng g = { seed++ };

		tensors_make(&t, &p, seed++, 1.0);
		fill_normal(&g, t.q, t.nq, 1e-7);
		err = error_vs_explicit(&p, 0, &t);
		assert_true(err <= TOLERANCE);

		/*
		 * The clamp really acts: some rows fall well short of the convex combination
		 * the same queries, scaled up out of the clamp's reach, give.
		 */
		ref = malloc(sizeof(double) * t.nq);
		assert_non_null(ref);
		for (size_t x = 0; x < t.nq; x++)
			t.q[x] *= 1e7f;
		explicit_form(&p, 0, t.q, t.k, t.v, ref);
		for (size_t r = 0; r < t.nq / p.d; r++) {
			double got = 0, full = 0;

			for (int c = 0; c < p.d; c++) {
				got += (double)t.o[r * p.d + c] * t.o[r * p.d + c];
				full += ref[r * p.d + c] * ref[r * p.d + c];
			}
			clamped += got < 0.81 * full;
		}
		assert_true(clamped > 0);
		free(ref);
		tensors_release(&t);
	}
}

/* Rows whose q has no positive entry have q' = 0: numerator 0, denominator clamped. */
static void test_cosformer_outputs_zero_for_a_query_with_no_positive_entry(void **state)
{
	uint64_t seed = SEED + 4000;

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		/* 70 rows: the zero rows fall in both chunks of the kernel */
		int n = 70, m = self_pattern(pat) ? 70 : 45, d = 12;
		double params[1] = { 0 };
		struct attn_problem p = problem(2, 4, 2, n, m, d, pat, params);
		size_t rows = (size_t)p.batch * p.heads * n;
		struct tensors t;

		tensors_make(&t, &p, seed++, 1.0);
		for (size_t r = 0; r < rows; r += 3)
			for (int c = 0; c < d; c++) {
				float *x = &t.q[r * d + c];

				/* zeros and negatives, including -0 */
				*x = c % 4 == 0 ? 0 : c % 4 == 1 ? -0.0f : -fabsf(*x);
			}
		run(cosformer(), &p, &t);
		for (size_t r = 0; r < rows; r++) {
			bool any = false;

			for (int c = 0; c < d; c++) {
				if (r % 3 == 0)
					assert_true(t.o[r * d + c] == 0);
				any |= t.o[r * d + c] != 0;
			}
			/* q has a positive entry and keys do too, with overwhelming odds */
			if (r % 3)
				assert_true(any);
		}
		tensors_release(&t);
	}
}

/* Relative Frobenius difference of the first `rows` rows of every slice of a and b. */
static double first_rows_error(const float *a, int a_rows, const float *b, int b_rows,
			       size_t slices, int rows, int d)
{
	double diff = 0, norm = 0;

	for (size_t s = 0; s < slices; s++)
		for (size_t x = 0; x < (size_t)rows * d; x++) {
			double u = a[s * a_rows * d + x], w = b[s * b_rows * d + x];

			diff += (u - w) * (u - w);
			norm += w * w;
		}
	return norm > 0 ? sqrt(diff / norm) : sqrt(diff);
}

/* Copies the first `rows` rows of every slice of `from` (from_rows each) into `to`. */
static void copy_first_rows(float *to, int to_rows, const float *from, int from_rows,
			    size_t slices, int d)
{
	for (size_t s = 0; s < slices; s++)
		memcpy(to + s * to_rows * d, from + s * from_rows * d,
		       sizeof(float) * to_rows * d);
}

/*
 * Runs `pattern` on n_long query rows, then on the first n_short of them (and, in self
 * patterns, of the keys and values; in cross ones the keys stay); returns how far the
 * first n_short output rows moved. With keys_off, keys at positions >= n_short have no
 * positive entry: they carry no weight, so only θ can move the rows.
 */
static double truncation_change(enum attn_pattern pattern, double horizon, int n_long,
				int n_short, int m_cross, bool keys_off, uint64_t seed)
{
	double params[1] = { horizon };
	int m_long = self_pattern(pattern) ? n_long : m_cross;
	int m_short = self_pattern(pattern) ? n_short : m_cross;
	struct attn_problem lp = problem(2, 4, 2, n_long, m_long, 16, pattern, params);
	struct attn_problem sp = problem(2, 4, 2, n_short, m_short, 16, pattern, params);
	size_t slices = 2 * 4, kv_slices = 2 * 2;
	struct tensors a, b;
	double change;

	tensors_make(&a, &lp, seed, 1.0);
	tensors_make(&b, &sp, seed + 1, 1.0);
	if (keys_off)
		for (size_t s = 0; s < kv_slices; s++)
			for (size_t x = (size_t)n_short * 16; x < (size_t)m_long * 16; x++)
				a.k[s * m_long * 16 + x] = -fabsf(a.k[s * m_long * 16 + x]);
	copy_first_rows(b.q, n_short, a.q, n_long, slices, 16);
	copy_first_rows(b.k, m_short, a.k, m_long, kv_slices, 16);
	copy_first_rows(b.v, m_short, a.v, m_long, kv_slices, 16);
	run(cosformer(), &lp, &a);
	run(cosformer(), &sp, &b);
	change = first_rows_error(b.o, n_short, a.o, n_long, slices, n_short, 16);
	tensors_release(&a);
	tensors_release(&b);
	return change;
}

/*
 * CAB's truncation test: a causal row must not change when later rows are appended. It
 * holds with the fixed horizon (the default) and with a set one.
 */
static void test_cosformer_causal_rows_survive_truncation_with_a_fixed_horizon(void **state)
{
	static const double horizons[] = { 0, 100, 63 };
	uint64_t seed = SEED + 5000;

	(void)state;
	for (int hi = 0; hi < COUNT(horizons); hi++) {
		double cs = truncation_change(ATTN_CS, horizons[hi], 63, 40, 0, false, seed++);
		double cc = truncation_change(ATTN_CC, horizons[hi], 63, 40, 50, false, seed++);

		assert_true(cs <= TOLERANCE);
		assert_true(cc <= TOLERANCE);
	}
}

/*
 * Why cs and cc need the horizon: with CAB's m = max(N, M) the rows move with the total
 * length even when the added keys carry no weight (ns) or only queries are added (nc).
 * Under a set horizon the same runs agree.
 */
static void test_cosformer_cab_horizon_makes_rows_depend_on_the_length(void **state)
{
	uint64_t seed = SEED + 6000;

	(void)state;
	assert_true(truncation_change(ATTN_NS, 0, 63, 40, 0, true, seed) > CHANGED);
	assert_true(truncation_change(ATTN_NS, 100, 63, 40, 0, true, seed) <= TOLERANCE);
	/* nc with 30 keys: m = max(N, M) is the number of queries */
	assert_true(truncation_change(ATTN_NC, 0, 63, 40, 30, false, seed + 1) > CHANGED);
	assert_true(truncation_change(ATTN_NC, 100, 63, 40, 30, false, seed + 1) <= TOLERANCE);
}

static int check_shape(double horizon, enum attn_pattern pattern, int n, int m)
{
	double params[1] = { horizon };
	struct attn_problem p = problem(1, 2, 1, n, m, 8, pattern, params);

	return variant_check_problem(cosformer(), &p);
}

static void test_cosformer_refuses_problems_longer_than_its_horizon(void **state)
{
	static const double horizons[] = { 40, 1 };

	(void)state;
	for (int hi = 0; hi < COUNT(horizons); hi++) {
		int h = (int)horizons[hi];

		for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
			if (self_pattern(pat)) {
				assert_int_equal(check_shape(h, pat, h, h), 0);
				assert_int_equal(check_shape(h, pat, h + 1, h + 1), -ENOTSUP);
			} else {
				assert_int_equal(check_shape(h, pat, h, 1), 0);
				assert_int_equal(check_shape(h, pat, 1, h), 0);
				assert_int_equal(check_shape(h, pat, h + 1, 1), -ENOTSUP);
				assert_int_equal(check_shape(h, pat, 1, h + 1), -ENOTSUP);
			}
		}
	}
	/* horizon 0: cs and cc fixed at 65536; ns and nc take m = max(N, M), any length */
	assert_int_equal(check_shape(0, ATTN_CS, 65536, 65536), 0);
	assert_int_equal(check_shape(0, ATTN_CS, 65537, 65537), -ENOTSUP);
	assert_int_equal(check_shape(0, ATTN_CC, 16, 65536), 0);
	assert_int_equal(check_shape(0, ATTN_CC, 16, 65537), -ENOTSUP);
	assert_int_equal(check_shape(0, ATTN_CC, 65537, 16), -ENOTSUP);
	assert_int_equal(check_shape(0, ATTN_NS, 65537, 65537), 0);
	assert_int_equal(check_shape(0, ATTN_NC, 16, 1000000), 0);
	assert_int_equal(check_shape(0, ATTN_NC, 1000000, 16), 0);
}

/* forward() and decode_init() refuse too, not only the supports hook. */
static void test_cosformer_forward_and_decoder_refuse_past_the_horizon(void **state)
{
	double params[1] = { 8 };
	struct attn_problem p = problem(1, 2, 1, 9, 9, 8, ATTN_CS, params);
	struct tensors t;
	void *dec = &dec;

	(void)state;
	tensors_make(&t, &p, SEED, 1.0);
	assert_int_equal(cosformer()->forward(&p, t.q, t.k, t.v, t.o), -ENOTSUP);
	p.pattern = ATTN_NS;
	assert_int_equal(cosformer()->forward(&p, t.q, t.k, t.v, t.o), -ENOTSUP);
	p.pattern = ATTN_CS;
	assert_int_equal(cosformer()->decode_init(&p, &dec), -ENOTSUP);
	assert_null(dec);
	/* decoding is causal self only */
	p.n = p.m = 8;
	p.pattern = ATTN_NS;
	dec = &dec;
	assert_int_equal(cosformer()->decode_init(&p, &dec), -ENOTSUP);
	assert_null(dec);
	tensors_release(&t);
}

static void test_cosformer_declares_cab_and_harness_patterns(void **state)
{
	const struct variant_ops *v = cosformer();

	(void)state;
	assert_int_equal(v->patterns, PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_CS) |
				      PATTERN_BIT(ATTN_NC) | PATTERN_BIT(ATTN_CC));
	assert_int_equal(v->extensions, PATTERN_BIT(ATTN_CS) | PATTERN_BIT(ATTN_CC));
	assert_int_equal(v->flags, 0);
	assert_int_equal(v->n_params, 1);
	assert_int_equal(variant_param_index(v, "horizon"), 0);
	assert_true(v->params[0].def == 0);
	assert_true(v->params[0].min == 0 && v->params[0].max == 1048576);
	assert_true(v->params[0].integer);
}

/* Decoding with the fixed horizon, one as long as the capacity, and a tight one. */
static void test_cosformer_decoding_matches_its_causal_forward(void **state)
{
	static const int lengths[] = { 1, 17, 63, 130 };
	static const int decode_dims[] = { 8, 64 };
	uint64_t seed = SEED + 7000;

	(void)state;
	for (int li = 0; li < COUNT(lengths); li++)
		for (int di = 0; di < COUNT(decode_dims); di++)
			for (int kv = 0; kv < COUNT(kv_choices); kv++) {
				int n = lengths[li];
				double horizons[3] = { 0, 130, n };

				for (int hi = 0; hi < 3; hi++) {
					double params[1] = { horizons[hi] };
					struct attn_problem p = problem(2, 4, kv_choices[kv], n,
									n, decode_dims[di],
									ATTN_CS, params);

					check_decode(cosformer(), &p, seed++);
				}
			}
}

/* (2d·d + 2d) floats per KV head, whatever the length or the pattern. */
static void test_cosformer_state_bytes_follow_the_formula(void **state)
{
	static const int shapes[][5] = {
		/* batch, heads, kv_heads, n, d */
		{ 2, 8, 2, 300, 64 },
		{ 1, 4, 4, 17, 8 },
		{ 3, 4, 1, 1000, 12 },
	};

	(void)state;
	for (int si = 0; si < COUNT(shapes); si++) {
		const int *s = shapes[si];
		double d = s[4];
		double expect = (2 * d * d + 2 * d) * 4 * s[0] * s[2];

		for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
			struct attn_problem p = problem(s[0], s[1], s[2], s[3],
							self_pattern(pat) ? s[3] : 2 * s[3],
							s[4], pat, NULL);

			assert_true(cosformer()->state_bytes(&p) == expect);
		}
	}
}

/* Allocator peak of one forward() on a fresh draw. */
static size_t forward_peak(const struct attn_problem *p)
{
	struct tensors t;
	size_t before, peak;

	tensors_make(&t, p, SEED, 1.0);
	before = memory_live_bytes();
	memory_reset_peak();
	run(cosformer(), p, &t);
	peak = memory_peak_bytes() - before;
	tensors_release(&t);
	return peak;
}

/* One (S, z) per KV head, shared by its query heads: MQA keeps three fewer than MHA. */
static void test_cosformer_keeps_one_state_per_kv_head(void **state)
{
	size_t one_state = sizeof(float) * (2 * 64 * 64 + 2 * 64);

	(void)state;
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		struct attn_problem mqa, mha;

		if (pat == ATTN_CS)
			continue;
		mqa = problem(1, 4, 1, 100, self_pattern(pat) ? 100 : 70, 64, pat, NULL);
		mha = problem(1, 4, 4, 100, self_pattern(pat) ? 100 : 70, 64, pat, NULL);
		assert_true(forward_peak(&mqa) + 3 * one_state <= forward_peak(&mha));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cosformer_matches_the_explicit_form_on_awkward_shapes),
		cmocka_unit_test(test_cosformer_matches_the_explicit_form_with_a_set_horizon),
		cmocka_unit_test(test_cosformer_without_params_uses_the_default_horizon),
		cmocka_unit_test(test_cosformer_clamps_small_denominators_at_1e_6),
		cmocka_unit_test(test_cosformer_outputs_zero_for_a_query_with_no_positive_entry),
		cmocka_unit_test(test_cosformer_causal_rows_survive_truncation_with_a_fixed_horizon),
		cmocka_unit_test(test_cosformer_cab_horizon_makes_rows_depend_on_the_length),
		cmocka_unit_test(test_cosformer_refuses_problems_longer_than_its_horizon),
		cmocka_unit_test(test_cosformer_forward_and_decoder_refuse_past_the_horizon),
		cmocka_unit_test(test_cosformer_declares_cab_and_harness_patterns),
		cmocka_unit_test(test_cosformer_decoding_matches_its_causal_forward),
		cmocka_unit_test(test_cosformer_state_bytes_follow_the_formula),
		cmocka_unit_test(test_cosformer_keeps_one_state_per_kv_head),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
