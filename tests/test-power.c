/*
 * test-power.c - the PowerAttention variant against VARIANTS.md section 9, written here
 * as a per-(i, j) predicate straight from the catalogue's equations (beta(x) = floor(x/b),
 * Delta = beta(i) - beta(j); cs: j <= i and (Delta < W_b or Delta & (Delta - 1) = 0 or
 * j < b); ns: |Delta| in both tests, no causal term) and an fp64 softmax over the keys
 * it allows. Checked: the output on awkward shapes with masks that bite at small N, the
 * declared spans against the predicate for every (i, j), the catalogue's properties
 * (short sequences are vanilla; the key blocks a query block sees), hidden keys moving
 * nothing, causality, decoding, FLOPs and state bytes by formula, the declaration.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "variant-test.h"

/* fp32 kernel against the fp64 transcription: the spec's bound for exact kernels. */
#define TOLERANCE 1e-5
/* Keys given weight exactly 0 contribute exact zeros: a hidden key may move nothing. */
#define HIDDEN_TOLERANCE 1e-7

enum { P_BLOCK, P_LOCAL, P_COUNT };

/* {b, W_b}: masks that bite at small N, the edge W_b = 0, token blocks, the defaults. */
static const double settings[][P_COUNT] = {
	{ 4, 2 }, { 3, 1 }, { 5, 0 }, { 8, 3 }, { 1, 2 }, { 64, 5 },
};

static const enum attn_pattern self_patterns[] = { ATTN_NS, ATTN_CS };

static const struct variant_ops *variant(void)
{
	const struct variant_ops *v = variant_must_find("power");

	assert_int_equal(v->n_params, P_COUNT);
	assert_int_equal(variant_param_index(v, "block"), P_BLOCK);
	assert_int_equal(variant_param_index(v, "local"), P_LOCAL);
	return v;
}

/* The catalogue's mask, one (i, j) at a time. */
static bool allowed(const struct attn_problem *p, int i, int j)
{
	long b = (long)p->params[P_BLOCK], wb = (long)p->params[P_LOCAL];
	long delta = i / b - j / b;

	if (p->pattern == ATTN_CS)
		return j <= i && (delta < wb || (delta & (delta - 1)) == 0 || j < b);
	delta = delta < 0 ? -delta : delta;
	return delta < wb || (delta & (delta - 1)) == 0 || j < b;
}

/* Softmax attention over the allowed keys, in double; query head h reads floor(h Hkv / H). */
static void transcribe(const struct attn_problem *p, const float *q, const float *k,
		       const float *v, double *out)
{
	double sigma = 1.0 / sqrt(p->d);
	double *s = malloc(sizeof(double) * p->m);

	assert_non_null(s);
	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			int kvh = h * p->kv_heads / p->heads;
			const float *qs = q + ((size_t)b * p->heads + h) * p->n * p->d;
			const float *ks = k + ((size_t)b * p->kv_heads + kvh) * p->m * p->d;
			const float *vs = v + ((size_t)b * p->kv_heads + kvh) * p->m * p->d;
			double *os = out + ((size_t)b * p->heads + h) * p->n * p->d;

			for (int i = 0; i < p->n; i++) {
				double max = -INFINITY, sum = 0;

				for (int j = 0; j < p->m; j++) {
					double dot = 0;

					if (!allowed(p, i, j))
						continue;
					for (int c = 0; c < p->d; c++)
						dot += (double)qs[i * p->d + c] * ks[j * p->d + c];
					s[j] = sigma * dot;
					max = fmax(max, s[j]);
				}
				for (int c = 0; c < p->d; c++)
					os[i * p->d + c] = 0;
				for (int j = 0; j < p->m; j++) {
					double w;

					if (!allowed(p, i, j))
						continue;
					w = exp(s[j] - max);
					sum += w;
					for (int c = 0; c < p->d; c++)
						os[i * p->d + c] += w * vs[j * p->d + c];
				}
				for (int c = 0; c < p->d && sum > 0; c++)
					os[i * p->d + c] /= sum;
			}
		}
	free(s);
}

static void test_power_matches_an_fp64_transcription(void **state)
{
	const struct variant_ops *v = variant();
	uint64_t seed = SEED;

	(void)state;
	for (int si = 0; si < COUNT(settings); si++)
		for (int pi = 0; pi < COUNT(self_patterns); pi++)
			for (int n = 0; n < COUNT(sizes); n++)
				for (int x = 0; x < COUNT(dims); x++) {
					int kv = kv_choices[(x + n + si) % COUNT(kv_choices)];
					struct attn_problem p = problem(2, 4, kv, sizes[n], sizes[n],
									dims[x], self_patterns[pi],
									settings[si]);
					struct tensors t;
					double *ref = reference_make(&t, &p, seed++);

					transcribe(&p, t.q, t.k, t.v, ref);
					check_output(v, &p, &t, ref, TOLERANCE, " b=%g W_b=%g",
						     settings[si][P_BLOCK], settings[si][P_LOCAL]);
				}
}

/* The keys row i's spans hold, as flags over [0, m). */
static int span_flags(const struct variant_ops *v, const struct attn_problem *p, int i,
		      bool *seen)
{
	struct key_span spans[512];
	int count = v->mask(p, 0, i, spans, COUNT(spans));

	assert_true(count >= 0 && count <= COUNT(spans));
	assert_int_equal(v->mask(p, 0, i, NULL, 0), count);
	memset(seen, 0, sizeof(bool) * p->m);
	for (int x = 0; x < count; x++) {
		assert_true(spans[x].lo < spans[x].hi);
		/* ascending, disjoint and merged: a gap between neighbours */
		assert_true(x == 0 || spans[x].lo > spans[x - 1].hi);
		for (int j = spans[x].lo; j < spans[x].hi; j++)
			seen[j] = true;
	}
	return count;
}

static int bit_length(long x)
{
	int bits = 0;

	for (; x; x >>= 1)
		bits++;
	return bits;
}

/*
 * Every (i, j) of a few shapes: the declared spans hold exactly what the predicate
 * allows, in O(W_b + log(N / b)) merged spans (sink, far blocks on each side, one band).
 */
static void test_power_spans_are_the_catalogue_mask(void **state)
{
	static const int lengths[] = { 1, 17, 63, 257, 300 };
	const struct variant_ops *v = variant();

	(void)state;
	for (int si = 0; si < COUNT(settings); si++)
		for (int pi = 0; pi < COUNT(self_patterns); pi++)
			for (int li = 0; li < COUNT(lengths); li++) {
				int n = lengths[li];
				struct attn_problem p = problem(1, 2, 1, n, n, 8, self_patterns[pi],
								settings[si]);
				long blocks = (n + (long)settings[si][P_BLOCK] - 1) /
					      (long)settings[si][P_BLOCK];
				bool *seen = malloc(sizeof(bool) * n);

				assert_non_null(seen);
				for (int i = 0; i < n; i++) {
					int count = span_flags(v, &p, i, seen);

					assert_true(count <= 3 + 2 * bit_length(blocks));
					for (int j = 0; j < n; j++)
						assert_int_equal(seen[j], allowed(&p, i, j));
				}
				free(seen);
			}
}

/* Plain softmax attention in double: every key (ns) or every key j <= i (cs). */
static void vanilla(const struct attn_problem *p, const float *q, const float *k,
		    const float *v, double *out)
{
	double sigma = 1.0 / sqrt(p->d);

	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			int kvh = h * p->kv_heads / p->heads;
			const float *qs = q + ((size_t)b * p->heads + h) * p->n * p->d;
			const float *ks = k + ((size_t)b * p->kv_heads + kvh) * p->m * p->d;
			const float *vs = v + ((size_t)b * p->kv_heads + kvh) * p->m * p->d;
			double *os = out + ((size_t)b * p->heads + h) * p->n * p->d;

			for (int i = 0; i < p->n; i++) {
				int end = p->pattern == ATTN_CS ? i + 1 : p->m;
				double max = -INFINITY, sum = 0, s[512];

				for (int j = 0; j < end; j++) {
					double dot = 0;

					for (int c = 0; c < p->d; c++)
						dot += (double)qs[i * p->d + c] * ks[j * p->d + c];
					s[j] = sigma * dot;
					max = fmax(max, s[j]);
				}
				for (int c = 0; c < p->d; c++)
					os[i * p->d + c] = 0;
				for (int j = 0; j < end; j++) {
					double w = exp(s[j] - max);

					sum += w;
					for (int c = 0; c < p->d; c++)
						os[i * p->d + c] += w * vs[j * p->d + c];
				}
				for (int c = 0; c < p->d; c++)
					os[i * p->d + c] /= sum;
			}
		}
}

/* N <= W_b b: every block distance is below W_b, so the mask is the pattern's own. */
static void test_power_short_sequences_are_vanilla(void **state)
{
	static const double small[][P_COUNT] = { { 4, 3 }, { 64, 5 }, { 1, 40 }, { 7, 2 } };
	const struct variant_ops *v = variant();
	uint64_t seed = SEED + 100;

	(void)state;
	for (int si = 0; si < COUNT(small); si++)
		for (int pi = 0; pi < COUNT(self_patterns); pi++) {
			int longest = (int)(small[si][P_BLOCK] * small[si][P_LOCAL]);
			int lengths[] = { 1, longest / 2 + 1, longest };

			for (int li = 0; li < COUNT(lengths); li++) {
				struct attn_problem p = problem(2, 4, 2, lengths[li], lengths[li],
								12, self_patterns[pi], small[si]);
				struct tensors t;
				double *ref = reference_make(&t, &p, seed++);

				for (int i = 0; i < p.n; i++) {
					struct key_span span[2];

					assert_int_equal(v->mask(&p, 0, i, span, 2), 1);
					assert_int_equal(span[0].lo, 0);
					assert_int_equal(span[0].hi,
							 p.pattern == ATTN_CS ? i + 1 : p.m);
				}
				vanilla(&p, t.q, t.k, t.v, ref);
				check_output(v, &p, &t, ref, TOLERANCE, " vanilla (b=%g W_b=%g)",
					     small[si][P_BLOCK], small[si][P_LOCAL]);
			}
		}
	/* one block more and the mask bites: row N - 1 no longer sees everything */
	{
		struct attn_problem p = problem(1, 1, 1, 24, 24, 8, ATTN_CS,
						(const double[]){ 4, 3 });
		struct key_span span[4];

		assert_int_equal(v->mask(&p, 0, p.n - 1, span, 4), 2);
	}
}

/*
 * The key blocks query block B sees are B - Delta for Delta in {0..W_b-1} and the powers
 * of two, Delta <= B, plus block 0 (ns: B + Delta too, inside the sequence); each of
 * them whole, but the own block, which cs cuts at the row.
 */
static void test_power_query_blocks_see_near_and_power_of_two_blocks(void **state)
{
	static const double wide[][P_COUNT] = { { 8, 0 }, { 8, 1 }, { 8, 2 }, { 8, 5 },
						{ 3, 4 } };
	const struct variant_ops *v = variant();
	int n = 700;
	bool *seen = malloc(sizeof(bool) * n);

	(void)state;
	assert_non_null(seen);
	for (int si = 0; si < COUNT(wide); si++)
		for (int pi = 0; pi < COUNT(self_patterns); pi++) {
			int b = (int)wide[si][P_BLOCK], wb = (int)wide[si][P_LOCAL];
			int blocks = (n + b - 1) / b;
			struct attn_problem p = problem(1, 1, 1, n, n, 8, self_patterns[pi],
							wide[si]);
			bool cs = p.pattern == ATTN_CS;

			for (int i = 0; i < n; i++) {
				int row = i / b;
				bool *want = calloc(blocks, sizeof(bool));

				assert_non_null(want);
				span_flags(v, &p, i, seen);
				want[0] = true;
				for (int delta = 0; delta <= blocks; delta++) {
					bool near = delta < wb;
					bool power = delta >= 1 && !(delta & (delta - 1));

					if (!near && !power && delta)
						continue;
					if (delta <= row)
						want[row - delta] = true;
					if (!cs && row + delta < blocks)
						want[row + delta] = true;
				}
				for (int c = 0; c < blocks; c++) {
					int lo = c * b, hi = lo + b < n ? lo + b : n, got = 0;

					if (cs && c == row)
						hi = i + 1;
					for (int j = lo; j < hi; j++)
						got += seen[j];
					assert_int_equal(got, want[c] && (!cs || c <= row) ? hi - lo : 0);
				}
				/* nothing past the row in cs */
				for (int j = i + 1; cs && j < n; j++)
					assert_false(seen[j]);
				free(want);
			}
		}
	free(seen);
}

/* Largest change of row i over all slices, relative to its largest magnitude. */
static double row_change(const struct attn_problem *p, const float *a, const float *b, int i)
{
	double change = 0, scale = 0;

	for (size_t s = 0; s < (size_t)p->batch * p->heads; s++)
		for (int c = 0; c < p->d; c++) {
			size_t at = (s * p->n + i) * p->d + c;

			change = fmax(change, fabs((double)a[at] - b[at]));
			scale = fmax(scale, fabs((double)a[at]));
		}
	return scale > 0 ? change / scale : change;
}

/* New K and V rows j of every KV slice, drawn large. */
static void perturb_key(struct rng *g, const struct attn_problem *p, struct tensors *t, int j)
{
	for (size_t s = 0; s < (size_t)p->batch * p->kv_heads; s++) {
		fill_normal(g, t->k + (s * p->m + j) * p->d, p->d, 3.0);
		fill_normal(g, t->v + (s * p->m + j) * p->d, p->d, 3.0);
	}
}

/*
 * Every key the predicate hides from row i changed at once: row i stays put. The
 * converse proves the check can fail: one key of a power-of-two block moves it.
 */
static void test_power_ignores_keys_its_mask_hides(void **state)
{
	static const int rows[] = { 0, 13, 33, 47, 62 };
	static const double bite[P_COUNT] = { 4, 2 };
	const struct variant_ops *v = variant();
	struct rng g = { SEED + 200 };

	(void)state;
	for (int pi = 0; pi < COUNT(self_patterns); pi++) {
		struct attn_problem p = problem(2, 4, 2, 63, 63, 16, self_patterns[pi], bite);
		struct tensors a;

		tensors_make(&a, &p, SEED + 201 + pi, 1.0);
		run(v, &p, &a);
		for (int ri = 0; ri < COUNT(rows); ri++) {
			int i = rows[ri], hidden = 0;
			struct tensors b;

			tensors_copy(&b, &a);
			for (int j = 0; j < p.m; j++)
				if (!allowed(&p, i, j)) {
					perturb_key(&g, &p, &b, j);
					hidden++;
				}
			run(v, &p, &b);
			assert_true(row_change(&p, a.o, b.o, i) <= HIDDEN_TOLERANCE);
			/* row 47 (block 11) sees block 3 at distance 8: a key there moves it */
			if (i == 47) {
				assert_true(hidden > 0);
				assert_true(allowed(&p, 47, 13));
				perturb_key(&g, &p, &b, 13);
				run(v, &p, &b);
				assert_true(row_change(&p, a.o, b.o, i) > 1e-3);
			}
			tensors_release(&b);
		}
		tensors_release(&a);
	}
}

/* cs: changing Q, K, V rows after t leaves rows <= t as they were. */
static void test_power_cs_ignores_later_rows(void **state)
{
	static const double bites[][P_COUNT] = { { 4, 2 }, { 5, 0 }, { 1, 1 } };
	static const int cuts[] = { 0, 6, 20, 41 };
	const struct variant_ops *v = variant();
	struct rng g = { SEED + 300 };

	(void)state;
	for (int si = 0; si < COUNT(bites); si++) {
		struct attn_problem p = problem(2, 4, 2, 63, 63, 16, ATTN_CS, bites[si]);
		struct tensors a;

		tensors_make(&a, &p, SEED + 301 + si, 1.0);
		run(v, &p, &a);
		for (int ci = 0; ci < COUNT(cuts); ci++) {
			struct tensors b;
			size_t qs = (size_t)p.batch * p.heads, kvs = (size_t)p.batch * p.kv_heads;

			tensors_copy(&b, &a);
			perturb_rows_after(&g, b.q, qs, p.n, p.d, cuts[ci]);
			perturb_rows_after(&g, b.k, kvs, p.m, p.d, cuts[ci]);
			perturb_rows_after(&g, b.v, kvs, p.m, p.d, cuts[ci]);
			run(v, &p, &b);
			/* masked keys weigh exactly 0; only fp32 reordering could move a row */
			assert_true(change_up_to(&p, a.o, b.o, cuts[ci]) <= 1e-5);
			tensors_release(&b);
		}
		tensors_release(&a);
	}
}

/* Decoding under masks that bite: each step is the forward pass's row. */
static void test_power_decoding_matches_its_causal_forward(void **state)
{
	static const double bites[][P_COUNT] = { { 4, 2 }, { 3, 0 }, { 8, 1 } };
	static const int lengths[] = { 17, 63, 130 };
	const struct variant_ops *v = variant();
	uint64_t seed = SEED + 400;

	(void)state;
	for (int si = 0; si < COUNT(bites); si++)
		for (int li = 0; li < COUNT(lengths); li++) {
			struct attn_problem p = problem(2, 4, li % 2 ? 1 : 2, lengths[li],
							lengths[li], li % 2 ? 64 : 8, ATTN_CS,
							bites[si]);

			check_decode(v, &p, seed++);
		}
}

/* Keys row i may see, by the predicate. */
static long row_keys(const struct attn_problem *p, int i)
{
	long keys = 0;

	for (int j = 0; j < p->m; j++)
		keys += allowed(p, i, j);
	return keys;
}

/*
 * state_bytes: the float32 K and V of the most keys any row sees, per KV head; FLOPs:
 * 4d per allowed pair of every head.
 */
static void test_power_state_bytes_and_flops_follow_their_formulas(void **state)
{
	static const int lengths[] = { 1, 17, 130, 257, 4096 };
	const struct variant_ops *v = variant();

	(void)state;
	for (int si = 0; si < COUNT(settings); si++)
		for (int pi = 0; pi < COUNT(self_patterns); pi++)
			for (int li = 0; li < COUNT(lengths); li++) {
				int n = lengths[li];
				struct attn_problem p = problem(2, 8, 2, n, n, 16, self_patterns[pi],
								settings[si]);
				long most = 0;
				double pairs = 0;

				/* the long case only at the defaults: its predicate walk is N^2 */
				if (n > 300 && settings[si][P_BLOCK] != 64)
					continue;
				for (int i = 0; i < n; i++) {
					long keys = row_keys(&p, i);

					most = keys > most ? keys : most;
					pairs += keys;
				}
				assert_true(v->state_bytes(&p) == 2.0 * 2 * 2 * most * 16 * 4);
				assert_true(v->flops(&p) == 4.0 * 2 * 8 * 16 * pairs);
			}
	/*
	 * Defaults at 4096 in cs: the last row sees blocks 63 - {0..4, 8, 16, 32} and the
	 * sink, 9 blocks of 64.
	 */
	{
		struct attn_problem p = problem(1, 1, 1, 4096, 4096, 8, ATTN_CS, settings[5]);

		assert_true(v->state_bytes(&p) == 2.0 * 9 * 64 * 8 * 4);
	}
}

static void test_power_declares_its_parameters_and_patterns(void **state)
{
	const struct variant_ops *v = variant();
	double defaults[P_COUNT];

	(void)state;
	variant_default_params(v, defaults);
	assert_true(defaults[P_BLOCK] == 64);
	assert_true(defaults[P_LOCAL] == 5);
	assert_true(v->flags & VARIANT_MASK_EXACT);
	assert_non_null(v->mask);
	assert_int_equal(v->patterns, PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_CS));
	assert_int_equal(v->extensions, PATTERN_BIT(ATTN_NS));
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		int m = pattern_is_self(pat) ? 40 : 24;
		struct attn_problem p = problem(1, 2, 1, 40, m, 8, pat, defaults);

		assert_int_equal(variant_check_problem(v, &p), pattern_is_self(pat) ? 0 : -ENOTSUP);
	}
	/* a block of 0 is outside the range */
	{
		double zero[P_COUNT] = { 0, 5 };
		struct attn_problem p = problem(1, 2, 1, 40, 40, 8, ATTN_CS, zero);

		assert_int_equal(variant_check_problem(v, &p), -EINVAL);
	}
	assert_non_null(v->decode_init);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_power_matches_an_fp64_transcription),
		cmocka_unit_test(test_power_spans_are_the_catalogue_mask),
		cmocka_unit_test(test_power_short_sequences_are_vanilla),
		cmocka_unit_test(test_power_query_blocks_see_near_and_power_of_two_blocks),
		cmocka_unit_test(test_power_ignores_keys_its_mask_hides),
		cmocka_unit_test(test_power_cs_ignores_later_rows),
		cmocka_unit_test(test_power_decoding_matches_its_causal_forward),
		cmocka_unit_test(test_power_state_bytes_and_flops_follow_their_formulas),
		cmocka_unit_test(test_power_declares_its_parameters_and_patterns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
