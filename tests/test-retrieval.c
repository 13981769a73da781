/*
 * test-retrieval.c - the passkey and recall constructions: exact attention solves them,
 * a blind variant scores at chance, and a window finds only what lies inside it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mean-variant.h"
#include "task-test.h"

static struct cell make_cell(const struct variant_ops *v, const char *task,
			     enum attn_pattern pattern, int n, int m, const char *regime)
{
	struct cell c = cell_make(v, task, pattern, n, m);

	c.batch = 10;
	c.heads = 2;
	c.kv_heads = 1;
	c.d = 32;
	c.regime = regime;
	c.seed = 5;
	return c;
}

static double run_accuracy(const struct cell *c)
{
	struct cell_result r = { 0 };

	assert_int_equal(c->task->run(c, &r), 0);
	assert_int_equal(r.status, CELL_OK);
	return metric(&r, "accuracy");
}

static const char *const some_depths[] = { "0", "0.3", "0.7", "1" };

static void test_passkey_is_solved_by_exact_attention_at_every_depth(void **state)
{
	(void)state;
	for (int p = 0; p < ATTN_PATTERN_COUNT; p++)
		for (int i = 0; i < 4; i++) {
			bool self = pattern_is_self(p);
			struct cell c = make_cell(variant_find("vanilla"), "passkey", p,
						  self ? 300 : 8, 300, some_depths[i]);
			struct cell_result r = { 0 };

			assert_int_equal(c.task->run(&c, &r), 0);
			assert_float_equal(metric(&r, "accuracy"), 1.0, 0);
			/* 10 batch entries x 1 KV head: its 2 query heads are one trial */
			assert_float_equal(metric(&r, "trials"), 10, 0);
			assert_float_equal(metric(&r, "depth"), atof(some_depths[i]), 0);
			assert_float_equal(metric(&r, "chance"), 0.1, 0);
		}
}

static void test_passkey_sharpness_holds_at_65536_keys_in_float32(void **state)
{
	(void)state;
	for (int i = 0; i < 4; i++) {
		struct cell c = make_cell(variant_find("flash"), "passkey", ATTN_CC, 4, 65536,
					  some_depths[i]);

		c.d = 16;
		c.heads = 1;
		assert_float_equal(run_accuracy(&c), 1.0, 0);
	}
}

/*
 * The query heads of a KV group ask one question of one haystack: a grouped-query cell
 * counts batch x kv_heads trials, one per distinct haystack, and records that many
 * outcomes; with as many KV heads as query heads every head is its own trial.
 */
static void test_passkey_counts_a_query_group_as_one_trial(void **state)
{
	static const int kv_heads[] = { 1, 2, 4 };

	(void)state;
	for (int i = 0; i < 3; i++) {
		struct cell c = make_cell(variant_find("vanilla"), "passkey", ATTN_CS, 200, 200,
					  "0.5");
		struct cell_result r = { 0 };

		c.batch = 5;
		c.heads = 4;
		c.kv_heads = kv_heads[i];
		assert_int_equal(c.task->run(&c, &r), 0);
		assert_int_equal(r.status, CELL_OK);
		assert_float_equal(metric(&r, "trials"), 5 * kv_heads[i], 0);
		assert_int_equal(r.n_trials, 5 * kv_heads[i]);
		assert_float_equal(metric(&r, "accuracy"), 1.0, 0);
		result_release(&r);
	}
}

static void test_passkey_is_at_chance_for_a_blind_variant(void **state)
{
	(void)state;
	for (int i = 0; i < 4; i++) {
		struct cell c = make_cell(&mean_variant, "passkey", ATTN_NS, 300, 300,
					  some_depths[i]);

		c.heads = 4;
		c.kv_heads = 4;
		/* 40 trials at chance 0.1: 0.3 is far in the binomial's tail */
		assert_true(run_accuracy(&c) <= 0.3);
	}
}

static void test_passkey_finds_the_needle_only_inside_the_window(void **state)
{
	struct cell c = make_cell(variant_find("local"), "passkey", ATTN_CS, 300, 300, "1");

	(void)state;
	assert_float_equal(run_accuracy(&c), 1.0, 0);
	c.regime = "0.5";
	c.heads = 4;
	c.kv_heads = 4;
	assert_true(run_accuracy(&c) <= 0.3);
}

static void test_recall_is_solved_by_exact_attention(void **state)
{
	(void)state;
	for (int p = 0; p < ATTN_PATTERN_COUNT; p++) {
		bool self = pattern_is_self(p);
		struct cell c = make_cell(variant_find("flash"), "recall", p, self ? 512 : 32,
					  512, "256");
		struct cell_result r = { 0 };

		c.batch = 2;
		assert_int_equal(c.task->run(&c, &r), 0);
		assert_float_equal(metric(&r, "accuracy"), 1.0, 0);
		assert_float_equal(metric(&r, "pairs"), 256, 0);
		/* self: 512 - 256 pairs - 32 queries; cross: the fillers after the pairs */
		assert_float_equal(metric(&r, "gap"), self ? 224 : 256, 0);
		assert_float_equal(metric(&r, "trials"), 2 * 2 * 32, 0);
	}
}

static void test_recall_is_at_chance_blind_and_outside_a_window(void **state)
{
	struct cell c = make_cell(&mean_variant, "recall", ATTN_CS, 512, 512, "64");

	(void)state;
	c.batch = 4;
	/* chance is 1/64; 256 queries */
	assert_true(run_accuracy(&c) < 0.06);
	c.variant = variant_find("local");
	variant_default_params(c.variant, c.params);
	assert_true(run_accuracy(&c) < 0.06);
}

static void test_recall_refuses_a_sequence_too_short_for_its_pairs(void **state)
{
	struct cell c = make_cell(variant_find("vanilla"), "recall", ATTN_NS, 100, 100, "128");
	struct cell_result r = { 0 };

	(void)state;
	assert_int_equal(c.task->run(&c, &r), 0);
	assert_int_equal(r.status, CELL_UNSUPPORTED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_passkey_is_solved_by_exact_attention_at_every_depth),
		cmocka_unit_test(test_passkey_sharpness_holds_at_65536_keys_in_float32),
		cmocka_unit_test(test_passkey_counts_a_query_group_as_one_trial),
		cmocka_unit_test(test_passkey_is_at_chance_for_a_blind_variant),
		cmocka_unit_test(test_passkey_finds_the_needle_only_inside_the_window),
		cmocka_unit_test(test_recall_is_solved_by_exact_attention),
		cmocka_unit_test(test_recall_is_at_chance_blind_and_outside_a_window),
		cmocka_unit_test(test_recall_refuses_a_sequence_too_short_for_its_pairs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
