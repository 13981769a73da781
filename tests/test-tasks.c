/*
 * test-tasks.c - the input regimes have the structure they claim, and the tasks score
 * known cases right: exact attention passes, a leaky or broken variant is caught.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inputs.h"
#include "memory.h"
#include "mean-variant.h"
#include "nan-variant.h"
#include "reference-cache.h"
#include "task-test.h"

static int nan_forward(const struct attn_problem *p, const float *q, const float *k,
		       const float *v, float *out)
{
	mean_v_forward(p, q, k, v, out);
	out[3] = NAN;
	return 0;
}

static const struct variant_ops nan_variant = {
	.name = "nan",
	.family = "test",
	.summary = "one NaN",
	.citation = "none",
	.patterns = PATTERNS_ALL,
	.forward = nan_forward,
};

static struct cell make_cell(const struct variant_ops *v, const char *task,
			     enum attn_pattern pattern, int n)
{
	struct cell c = cell_make(v, task, pattern, n, n);

	c.batch = 1;
	c.heads = 2;
	c.kv_heads = 1;
	c.d = 32;
	c.seed = 11;
	c.measure = (struct measure_opts){ 1, 5, 0.0, 100, 0 };
	return c;
}

/*
 * Mean over query rows of the softmax weight a predicate picks, in double; with a NULL
 * predicate, the mean of each row's largest weight (how peaked the rows are).
 */
static double mean_weight(const struct attn_problem *p, const float *q, const float *k,
			  bool (*pick)(int i, int j))
{
	double total = 0, *s = malloc(sizeof(double) * p->m);
	int n = p->n, m = p->m, d = p->d;

	for (int i = 0; i < n; i++) {
		double max = -INFINITY, z = 0, picked = 0;

		for (int j = 0; j < m; j++) {
			s[j] = 0;
			for (int c = 0; c < d; c++)
				s[j] += (double)q[i * d + c] * k[j * d + c];
			s[j] /= sqrt(d);
			max = fmax(max, s[j]);
		}
		for (int j = 0; j < m; j++) {
			z += exp(s[j] - max);
			picked += pick && pick(i, j) ? exp(s[j] - max) : 0;
		}
		total += pick ? picked / z : 1 / z;
	}
	free(s);
	return total / n;
}

static bool pick_sink(int i, int j)
{
	(void)i;
	return j == 0;
}

static bool pick_near(int i, int j)
{
	return abs(i - j) <= 16;
}

static void generate(const char *regime, const struct attn_problem *p, float **q, float **k,
		     float **v)
{
	float *o;

	assert_int_equal(tensors_alloc(p, q, k, v, &o), 0);
	tensor_free(o);
	assert_int_equal(inputs_generate(regime, p, 3, *q, *k, *v), 0);
}

static void test_regimes_have_the_structure_they_claim(void **state)
{
	struct attn_problem p = { .batch = 1, .heads = 1, .kv_heads = 1, .n = 256, .m = 256,
				  .d = 64, .pattern = ATTN_NS };
	float *q, *k, *v;
	double gauss_max, gauss_sink, gauss_near;

	(void)state;
	generate("gaussian", &p, &q, &k, &v);
	gauss_max = mean_weight(&p, q, k, NULL);
	gauss_sink = mean_weight(&p, q, k, pick_sink);
	gauss_near = mean_weight(&p, q, k, pick_near);
	tensors_free(q, k, v, NULL);
	/* iid rows: weights are spread (the max of 256 is a few percent) */
	assert_true(gauss_max < 0.2);

	generate("peaked", &p, &q, &k, &v);
	assert_true(mean_weight(&p, q, k, NULL) > 0.5);
	tensors_free(q, k, v, NULL);

	generate("sink", &p, &q, &k, &v);
	assert_true(mean_weight(&p, q, k, pick_sink) > 0.3);
	assert_true(gauss_sink < 0.02);
	tensors_free(q, k, v, NULL);

	/* rotary decay: the 33 nearest keys hold far more weight than under iid inputs */
	generate("local", &p, &q, &k, &v);
	assert_true(mean_weight(&p, q, k, pick_near) > 3 * gauss_near);
	tensors_free(q, k, v, NULL);
}

/* Rank of rows x d by Gram-Schmidt in double, with a relative tolerance. */
static int numeric_rank(const float *x, int rows, int d)
{
	double *basis = calloc((size_t)rows * d, sizeof(double));
	int rank = 0;

	for (int i = 0; i < rows; i++) {
		double *b = basis + (size_t)rank * d, norm0 = 0, norm = 0;

		for (int c = 0; c < d; c++) {
			b[c] = x[i * d + c];
			norm0 += b[c] * b[c];
		}
		for (int r = 0; r < rank; r++) {
			double dot = 0;

			for (int c = 0; c < d; c++)
				dot += b[c] * basis[(size_t)r * d + c];
			for (int c = 0; c < d; c++)
				b[c] -= dot * basis[(size_t)r * d + c];
		}
		for (int c = 0; c < d; c++)
			norm += b[c] * b[c];
		if (norm > 1e-8 * norm0) {
			for (int c = 0; c < d; c++)
				b[c] /= sqrt(norm);
			rank++;
		}
	}
	free(basis);
	return rank;
}

static void test_lowrank_rows_span_four_dimensions(void **state)
{
	struct attn_problem p = { .batch = 1, .heads = 2, .kv_heads = 2, .n = 40, .m = 40,
				  .d = 32, .pattern = ATTN_NS };
	float *q, *k, *v;

	(void)state;
	generate("lowrank", &p, &q, &k, &v);
	assert_int_equal(numeric_rank(q, 40, 32), 4);
	assert_int_equal(numeric_rank(k, 40, 32), 4);
	assert_int_equal(numeric_rank(v, 40, 32), 32);	/* values stay full rank */
	tensors_free(q, k, v, NULL);
	generate("gaussian", &p, &q, &k, &v);
	assert_int_equal(numeric_rank(q, 40, 32), 32);
	tensors_free(q, k, v, NULL);
}

static void test_inputs_are_deterministic_by_seed(void **state)
{
	struct attn_problem p = { .batch = 2, .heads = 4, .kv_heads = 2, .n = 17, .m = 17,
				  .d = 8, .pattern = ATTN_CS };
	size_t nq = problem_q_count(&p), nkv = problem_kv_count(&p);
	float *q1, *k1, *v1, *q2, *k2, *v2, *o;

	(void)state;
	for (int r = 0; input_regimes[r]; r++) {
		assert_int_equal(tensors_alloc(&p, &q1, &k1, &v1, &o), 0);
		tensor_free(o);
		assert_int_equal(tensors_alloc(&p, &q2, &k2, &v2, &o), 0);
		tensor_free(o);
		inputs_generate(input_regimes[r], &p, 99, q1, k1, v1);
		inputs_generate(input_regimes[r], &p, 99, q2, k2, v2);
		assert_memory_equal(q1, q2, nq * sizeof(float));
		assert_memory_equal(k1, k2, nkv * sizeof(float));
		assert_memory_equal(v1, v2, nkv * sizeof(float));
		inputs_generate(input_regimes[r], &p, 100, q2, k2, v2);
		assert_memory_not_equal(q1, q2, nq * sizeof(float));
		for (size_t i = 0; i < nq; i++)
			assert_true(isfinite(q1[i]));
		tensors_free(q1, k1, v1, NULL);
		tensors_free(q2, k2, v2, NULL);
	}
	assert_int_equal(inputs_generate("nonsense", &p, 1, NULL, NULL, NULL), -EINVAL);
}

static void test_output_compare_scores_known_cases(void **state)
{
	float o[4] = { 1, 0, 0, 2 }, neg[4] = { -1, 0, 0, -2 }, bad[4] = { 1, NAN, 0, 2 };
	double ref[4] = { 1, 0, 0, 2 };
	struct output_error e;

	(void)state;
	output_compare(o, ref, 2, 2, NULL, 0, &e);
	assert_float_equal(e.rel_err, 0, 0);
	assert_float_equal(e.cosine, 1, 1e-15);
	assert_float_equal(e.max_abs_err, 0, 0);
	output_compare(neg, ref, 2, 2, NULL, 0, &e);
	assert_float_equal(e.rel_err, 2, 1e-15);
	assert_float_equal(e.cosine, -1, 1e-15);
	assert_float_equal(e.max_abs_err, 4, 0);
	output_compare(bad, ref, 2, 2, NULL, 0, &e);
	assert_int_equal(e.nonfinite, 1);
}

static void test_first_nonfinite_finds_the_first_nan_or_infinity(void **state)
{
	float x[5] = { 1, -2, 0, 3e38f, -3e38f };

	(void)state;
	assert_int_equal(inputs_first_nonfinite(x, 5), -1);
	assert_int_equal(inputs_first_nonfinite(x, 0), -1);
	x[4] = -INFINITY;
	assert_int_equal(inputs_first_nonfinite(x, 5), 4);
	assert_int_equal(inputs_first_nonfinite(x, 4), -1);
	x[2] = NAN;
	assert_int_equal(inputs_first_nonfinite(x, 5), 2);
	x[0] = INFINITY;
	assert_int_equal(inputs_first_nonfinite(x, 5), 0);
}

static void test_fidelity_of_exact_attention_is_near_zero_error(void **state)
{
	(void)state;
	for (int r = 0; input_regimes[r]; r++) {
		struct cell c = make_cell(variant_find("vanilla"), "fidelity", ATTN_NC, 64);
		struct cell_result res = { 0 };

		c.m = 40;
		c.regime = input_regimes[r];
		assert_int_equal(c.task->run(&c, &res), 0);
		assert_int_equal(res.status, CELL_OK);
		assert_true(metric(&res, "rel_err") < 1e-5);
		assert_true(metric(&res, "cosine") > 1 - 1e-9);
		assert_true(metric(&res, "peak_bytes") >= 64 * 40 * sizeof(float));
	}
}

static void test_fidelity_flags_nan_and_scores_a_wrong_variant(void **state)
{
	struct cell c = make_cell(&nan_variant, "fidelity", ATTN_NS, 32);
	struct cell_result r = { 0 };

	(void)state;
	c.regime = "peaked";
	assert_int_equal(c.task->run(&c, &r), 0);
	assert_int_equal(r.status, CELL_NAN);

	memset(&r, 0, sizeof(r));
	c.variant = &mean_variant;
	assert_int_equal(c.task->run(&c, &r), 0);
	assert_int_equal(r.status, CELL_OK);
	assert_true(metric(&r, "rel_err") > 0.5);	/* the mean of V is far from peaked rows */
}

/*
 * A run's reference cache: the first cell of an input set stores the oracle's output, a
 * later variant on the same inputs reads it and scores exactly as without the cache; a
 * damaged file is recomputed, and the oldest files go beyond the limit.
 */
static void test_fidelity_shares_its_reference_through_the_run_cache(void **state)
{
	struct cell c = make_cell(variant_find("vanilla"), "fidelity", ATTN_NS, 48);
	struct cell_result plain = { 0 }, first = { 0 }, second = { 0 }, damaged = { 0 };
	char dir[256], path[600];
	struct dirent *e;
	FILE *f;
	DIR *d;
	int files = 0;

	(void)state;
	c.regime = "peaked";
	c.variant = variant_find("linear");
	assert_int_equal(c.task->run(&c, &plain), 0);
	assert_int_equal(reference_cache_create(dir, sizeof(dir)), 0);
	c.cache_dir = dir;
	c.variant = variant_find("vanilla");
	assert_int_equal(c.task->run(&c, &first), 0);
	assert_true(metric(&first, "rel_err") < 1e-5);
	c.variant = variant_find("linear");
	assert_int_equal(c.task->run(&c, &second), 0);
	assert_true(metric(&second, "rel_err") == metric(&plain, "rel_err"));
	assert_true(metric(&second, "cosine") == metric(&plain, "cosine"));
	/* the regime's properties come from the same file */
	assert_true(metric(&second, "regime_erank") == metric(&plain, "regime_erank"));
	assert_true(metric(&second, "regime_entropy") == metric(&plain, "regime_entropy"));

	/* one file for the input set; truncate it: the next cell recomputes, same score */
	d = opendir(dir);
	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			files++;
		}
	closedir(d);
	assert_int_equal(files, 1);
	f = fopen(path, "wb");
	assert_non_null(f);
	fputs("short", f);
	fclose(f);
	assert_int_equal(c.task->run(&c, &damaged), 0);
	assert_true(metric(&damaged, "rel_err") == metric(&plain, "rel_err"));
	assert_true(metric(&damaged, "regime_top1") == metric(&plain, "regime_top1"));

	/* more input sets than the limit: the directory keeps at most the limit */
	for (int s = 0; s < REFERENCE_CACHE_FILES + 3; s++) {
		struct cell_result r = { 0 };

		c.seed = 100 + s;
		assert_int_equal(c.task->run(&c, &r), 0);
	}
	files = 0;
	d = opendir(dir);
	while ((e = readdir(d)))
		files += e->d_name[0] != '.';
	closedir(d);
	assert_true(files <= REFERENCE_CACHE_FILES);
	reference_cache_remove(dir);
	assert_int_equal(access(dir, F_OK), -1);
}

static void test_causality_passes_exact_attention_and_catches_a_leak(void **state)
{
	static const enum attn_pattern causal[] = { ATTN_CS, ATTN_CC };

	(void)state;
	for (int i = 0; i < 2; i++) {
		struct cell c = make_cell(variant_find("vanilla"), "causality", causal[i], 64);
		struct cell_result r = { 0 };

		assert_int_equal(c.task->run(&c, &r), 0);
		assert_int_equal(r.status, CELL_OK);
		assert_true(metric(&r, "causal_change") <= 1e-5);

		memset(&r, 0, sizeof(r));
		c.variant = &mean_variant;
		assert_int_equal(c.task->run(&c, &r), 0);
		/* cs: future V leaks into the mean; cc: Q rows are ignored, so nothing moves */
		if (causal[i] == ATTN_CS) {
			assert_int_equal(r.status, CELL_FAILED);
			assert_non_null(strstr(r.reason, "causality violated"));
		} else {
			assert_int_equal(r.status, CELL_OK);
		}
	}
}

/*
 * A block-causal variant (hip with a small k, so its search prunes, and blocks of 16
 * rows): the cell passes on strict causality at hip.block_q=1 and on causality between
 * blocks at its own setting, and reports the leak inside a block, which is real.
 */
static void test_causality_holds_a_block_causal_variant_to_both_settings(void **state)
{
	const struct variant_ops *hip = variant_find("hip");
	struct cell c = make_cell(hip, "causality", ATTN_CS, 256);
	struct cell_result r = { 0 };

	(void)state;
	c.params[variant_param_index(hip, "k")] = 16;
	c.params[variant_param_index(hip, "block_q")] = 16;
	assert_int_equal(c.task->run(&c, &r), 0);
	assert_int_equal(r.status, CELL_OK);
	assert_true(metric(&r, "causal_change") <= 1e-5);
	assert_true(metric(&r, "causal_block") == 1);
	assert_true(metric(&r, "block_causal_change") <= 1e-5);
	assert_true(metric(&r, "causal_leak") > 1e-3);
	assert_non_null(strstr(r.reason, "tested strict at hip.block_q=1"));
	assert_non_null(strstr(r.reason, "block-causal at the cell's hip.block_q=16"));
}

static void test_speed_stores_every_sample_and_a_summary(void **state)
{
	struct cell c = make_cell(variant_find("vanilla"), "speed", ATTN_CS, 128);
	struct cell_result r = { 0 };
	struct attn_problem p;

	(void)state;
	assert_int_equal(c.task->run(&c, &r), 0);
	assert_int_equal(r.status, CELL_OK);
	assert_int_equal(r.n_samples, 5);	/* min_repeats with min_seconds 0 */
	assert_true(metric(&r, "latency_median") > 0);
	assert_true(metric(&r, "latency_ci_lo") <= metric(&r, "latency_median"));
	assert_true(metric(&r, "latency_ci_hi") >= metric(&r, "latency_median"));
	/* 5 samples reach no 95% pair: [min, max], which covers 1 - 2 / 2^5 */
	assert_true(metric(&r, "latency_ci_level") == 1 - 2.0 / 32);
	assert_true(metric(&r, "latency_ci_lo") == metric(&r, "latency_min"));
	assert_true(metric(&r, "gflops") > 0);
	/* vanilla materialises one n x m slice of scores */
	assert_true(metric(&r, "peak_bytes") >= 128 * 128 * sizeof(float));
	/* the bytes of vanilla's own formula, beside its FLOPs */
	p = cell_problem(&c);
	assert_true(metric(&r, "bytes") == c.variant->bytes(&p));
	assert_true(metric(&r, "bytes") > attn_compulsory_bytes(&p));
	result_release(&r);

	/* a variant without a formula: the compulsory traffic */
	c = make_cell(variant_find("linear"), "speed", ATTN_NS, 128);
	memset(&r, 0, sizeof(r));
	assert_null(c.variant->bytes);
	assert_int_equal(c.task->run(&c, &r), 0);
	p = cell_problem(&c);
	assert_true(metric(&r, "bytes") == attn_compulsory_bytes(&p));
	result_release(&r);
}

/*
 * A decoder that answers every step with the mean of the V rows fed so far: right at
 * position 0 (one value), wrong after. Its forward() is vanilla's, so the full pass is
 * exact and only the incremental outputs are off.
 */
struct mean_decode {
	struct attn_problem p;
	int len;
	double *sum;		/* [batch][kv_heads][d] running sums of V */
};

static int mean_forward(const struct attn_problem *p, const float *q, const float *k,
			const float *v, float *out)
{
	return variant_find("vanilla")->forward(p, q, k, v, out);
}

static void mean_decode_free(void *state)
{
	struct mean_decode *st = state;

	if (!st)
		return;
	attn_free(st->sum);
	attn_free(st);
}

static int mean_decode_init(const struct attn_problem *p, void **state)
{
	struct mean_decode *st = attn_calloc(1, sizeof(*st));

	*state = NULL;
	if (!st)
		return -ENOMEM;
	st->p = *p;
	st->sum = attn_calloc((size_t)p->batch * p->kv_heads * p->d, sizeof(double));
	if (!st->sum) {
		attn_free(st);
		return -ENOMEM;
	}
	*state = st;
	return 0;
}

static int mean_decode_step(void *state, const float *q, const float *k, const float *v,
			    float *out)
{
	struct mean_decode *st = state;
	const struct attn_problem *p = &st->p;
	int group = p->heads / p->kv_heads;

	(void)q;
	(void)k;
	if (st->len >= p->n)
		return -ENOSPC;
	st->len++;
	for (int i = 0; i < p->batch * p->kv_heads * p->d; i++)
		st->sum[i] += v[i];
	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			size_t kv = (size_t)b * p->kv_heads + h / group;
			const double *sum = st->sum + kv * p->d;
			float *o = out + ((size_t)b * p->heads + h) * p->d;

			for (int c = 0; c < p->d; c++)
				o[c] = (float)(sum[c] / st->len);
		}
	return 0;
}

static const struct variant_ops mean_decode_variant = {
	.name = "mean-decode",
	.family = "test",
	.summary = "exact forward, mean of V when decoding",
	.citation = "none",
	.patterns = PATTERNS_ALL,
	.forward = mean_forward,
	.decode_init = mean_decode_init,
	.decode_step = mean_decode_step,
	.decode_free = mean_decode_free,
};

static int sleep_10ms(void *arg)
{
	(void)arg;
	usleep(10000);
	return 0;
}

static int count_sample(void *arg, double seconds)
{
	(void)seconds;
	++*(int *)arg;
	return 0;
}

/* Calls of long_call seconds or more stop the repeats at one; shorter ones do not. */
static void test_a_long_call_is_enough_alone(void **state)
{
	struct measure_opts m = { 0, 4, 0, 100, 0.005 };
	int samples = 0;

	(void)state;
	assert_int_equal(timing_measure(sleep_10ms, NULL, &m, count_sample, &samples), 0);
	assert_int_equal(samples, 1);
	m.long_call = 60;
	samples = 0;
	assert_int_equal(timing_measure(sleep_10ms, NULL, &m, count_sample, &samples), 0);
	assert_int_equal(samples, 4);
	m.long_call = 0;	/* off */
	samples = 0;
	assert_int_equal(timing_measure(sleep_10ms, NULL, &m, count_sample, &samples), 0);
	assert_int_equal(samples, 4);
}

static void test_decode_of_exact_attention_equals_the_full_pass(void **state)
{
	struct cell c = make_cell(variant_find("vanilla"), "decode", ATTN_CS, 100);
	struct cell_result r = { 0 };
	size_t live = memory_live_bytes();
	/* the KV cache at N + 64 positions: 2 x batch 1 x 1 KV head x 164 x d 32 floats */
	double cache = 2.0 * 1 * 1 * 164 * 32 * sizeof(float);

	(void)state;
	assert_int_equal(c.task->run(&c, &r), 0);
	assert_int_equal(r.status, CELL_OK);
	assert_int_equal(r.n_samples, 64);
	assert_true(metric(&r, "tokens") == 64);
	assert_true(metric(&r, "rel_err") <= 1e-5);
	assert_true(metric(&r, "state_bytes") == cache);
	assert_true(metric(&r, "peak_bytes") >= cache);
	assert_true(metric(&r, "latency_median") > 0);
	assert_true(metric(&r, "latency_min") <= metric(&r, "latency_median"));
	assert_true(metric(&r, "latency_ci_lo") <= metric(&r, "latency_median"));
	assert_true(metric(&r, "latency_ci_hi") >= metric(&r, "latency_median"));
	/* 64 samples: a pair inside [min, max] still reaching 95% */
	assert_true(metric(&r, "latency_ci_level") >= 0.95 && metric(&r, "latency_ci_level") < 1);
	assert_true(metric(&r, "latency_q1") <= metric(&r, "latency_q3"));
	/* each step reads the whole cache: its bytes over the median step */
	assert_true(metric(&r, "bytes") == cache);
	assert_true(metric(&r, "gbps") == cache / metric(&r, "latency_median") * 1e-9);
	assert_int_equal(memory_live_bytes(), live);
	result_release(&r);
}

static void test_decode_catches_a_wrong_step_and_refuses_without_hooks(void **state)
{
	struct cell c = make_cell(&mean_decode_variant, "decode", ATTN_CS, 40);
	struct cell_result r = { 0 };

	(void)state;
	assert_int_equal(c.task->run(&c, &r), 0);
	assert_int_equal(r.status, CELL_FAILED);
	assert_non_null(strstr(r.reason, "differs from the full causal pass"));
	assert_true(metric(&r, "rel_err") > 1e-2);
	/* no state_bytes hook, so no state_bytes metric, nor the bytes a step reads */
	for (int i = 0; i < r.n_metrics; i++) {
		assert_string_not_equal(r.metrics[i].name, "state_bytes");
		assert_string_not_equal(r.metrics[i].name, "bytes");
		assert_string_not_equal(r.metrics[i].name, "gbps");
	}
	result_release(&r);

	memset(&r, 0, sizeof(r));
	c.variant = &mean_variant;
	assert_int_equal(c.task->run(&c, &r), -ENOTSUP);
	assert_int_equal(r.n_samples, 0);
	result_release(&r);
}

/*
 * A cell of nan-at on task (batch 1, 2 query heads on 1 KV head, d 32, n = m) with its
 * one NaN at query head, row and column.
 */
static struct cell nan_cell(const char *task, enum attn_pattern pattern, int n, int head,
			    int row, int column)
{
	struct cell c = make_cell(&nan_at_variant, task, pattern, n);

	c.params[NAN_AT_HEAD] = head;
	c.params[NAN_AT_ROW] = row;
	c.params[NAN_AT_COLUMN] = column;
	return c;
}

/* Runs c and expects a nan cell whose reason names where, e.g. "row 5, column 3". */
static void assert_nan_at(const struct cell *c, const char *where)
{
	struct cell_result r = { 0 };

	assert_int_equal(c->task->run(c, &r), 0);
	assert_string_equal(cell_status_name(r.status), "nan");
	if (!strstr(r.reason, where) || !strstr(r.reason, " is nan"))
		fail_msg("reason '%s' does not say '%s ... is nan'", r.reason, where);
	result_release(&r);
}

/* Rows past the last cut (3/4 of 64) are compared by no cut, yet are output all the same. */
static void test_causality_reports_a_nan_past_every_cut_as_nan(void **state)
{
	struct cell cs = nan_cell("causality", ATTN_CS, 64, 1, 60, 5);
	struct cell cc = nan_cell("causality", ATTN_CC, 64, 0, 63, 31);

	(void)state;
	assert_nan_at(&cs, "row 60, column 5");
	assert_nan_at(&cc, "row 63, column 31");
}

/* Query rows 32..63 of 64 are scored; the NaN sits in one of them, off column 0. */
static void test_recall_reports_a_nan_off_the_first_column_as_nan(void **state)
{
	struct cell c = nan_cell("recall", ATTN_NS, 64, 1, 40, 7);

	(void)state;
	c.regime = "16";
	assert_nan_at(&c, "row 40, column 7");
	c.params[NAN_AT_ROW] = 3;	/* a pair's own row, which no query reads */
	assert_nan_at(&c, "row 3, column 7");
}

/* The probe is the last row; the NaN is in a filler's row. */
static void test_passkey_reports_a_nan_off_the_probe_row_as_nan(void **state)
{
	struct cell c = nan_cell("passkey", ATTN_NS, 64, 0, 10, 0);

	(void)state;
	c.regime = "0.5";
	assert_nan_at(&c, "row 10, column 0");
	c.pattern = ATTN_NC;
	c.m = 40;
	assert_nan_at(&c, "row 10, column 0");
}

static void test_fidelity_reports_where_a_nan_is(void **state)
{
	struct cell c = nan_cell("fidelity", ATTN_NC, 64, 1, 20, 9);

	(void)state;
	c.m = 40;
	c.regime = "gaussian";
	assert_nan_at(&c, "row 20, column 9");
}

/* Position 70 is a generated one (the prefix is 40): a NaN in its step, or its full row. */
static void test_decode_reports_a_nan_in_a_step_or_in_the_full_pass_as_nan(void **state)
{
	struct cell c = nan_cell("decode", ATTN_CS, 40, 1, 70, 2);

	(void)state;
	c.params[NAN_AT_DECODE_ONLY] = 1;
	assert_nan_at(&c, "decode step output row 70, column 2");
	c.params[NAN_AT_DECODE_ONLY] = 0;
	assert_nan_at(&c, "row 70, column 2");
}

/* Calls of flaky_forward since the test reset it: the first is exact, later ones not. */
static int flaky_calls;

static int flaky_forward(const struct attn_problem *p, const float *q, const float *k,
			 const float *v, float *out)
{
	int ret = variant_find("vanilla")->forward(p, q, k, v, out);

	if (!ret && flaky_calls++ > 0)
		out[problem_q_count(p) - 1] = INFINITY;
	return ret;
}

static const struct variant_ops flaky_variant = {
	.name = "flaky",
	.family = "test",
	.summary = "exact on the first call, then infinity in the last element",
	.citation = "none",
	.patterns = PATTERNS_ALL,
	.forward = flaky_forward,
};

/* The timed calls write the output too: an infinity there counts as much as the first. */
static void test_speed_reports_a_nan_in_any_call_as_nan(void **state)
{
	struct cell c = nan_cell("speed", ATTN_NS, 128, 1, 127, 31);
	struct cell_result r = { 0 };

	(void)state;
	assert_nan_at(&c, "row 127, column 31");

	c = make_cell(&flaky_variant, "speed", ATTN_NS, 128);
	flaky_calls = 0;
	assert_int_equal(c.task->run(&c, &r), 0);
	assert_true(flaky_calls > 1);
	assert_string_equal(cell_status_name(r.status), "nan");
	assert_non_null(strstr(r.reason, "row 127, column 31 (batch 0, head 1) is inf"));
	result_release(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_regimes_have_the_structure_they_claim),
		cmocka_unit_test(test_lowrank_rows_span_four_dimensions),
		cmocka_unit_test(test_inputs_are_deterministic_by_seed),
		cmocka_unit_test(test_output_compare_scores_known_cases),
		cmocka_unit_test(test_first_nonfinite_finds_the_first_nan_or_infinity),
		cmocka_unit_test(test_fidelity_of_exact_attention_is_near_zero_error),
		cmocka_unit_test(test_fidelity_flags_nan_and_scores_a_wrong_variant),
		cmocka_unit_test(test_fidelity_shares_its_reference_through_the_run_cache),
		cmocka_unit_test(test_causality_passes_exact_attention_and_catches_a_leak),
		cmocka_unit_test(test_causality_holds_a_block_causal_variant_to_both_settings),
		cmocka_unit_test(test_speed_stores_every_sample_and_a_summary),
		cmocka_unit_test(test_a_long_call_is_enough_alone),
		cmocka_unit_test(test_decode_of_exact_attention_equals_the_full_pass),
		cmocka_unit_test(test_decode_catches_a_wrong_step_and_refuses_without_hooks),
		cmocka_unit_test(test_causality_reports_a_nan_past_every_cut_as_nan),
		cmocka_unit_test(test_recall_reports_a_nan_off_the_first_column_as_nan),
		cmocka_unit_test(test_passkey_reports_a_nan_off_the_probe_row_as_nan),
		cmocka_unit_test(test_fidelity_reports_where_a_nan_is),
		cmocka_unit_test(test_decode_reports_a_nan_in_a_step_or_in_the_full_pass_as_nan),
		cmocka_unit_test(test_speed_reports_a_nan_in_any_call_as_nan),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
