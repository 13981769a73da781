/*
 * test-suite.c - suites (built-in and CSV), --set parameters and the cell plan,
 * including the bad input each must refuse with a reason.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "suite.h"

static struct suite suite;	/* large; static keeps it off the stack */

static int parse(const char *csv, char *why, size_t len)
{
	return suite_parse(csv, strlen(csv), "test.csv", &suite, why, len);
}

static void test_builtin_suites_parse_and_plan(void **state)
{
	static const char *const names[] = { "quick", "default", "full" };
	struct selection sel = { .threads = 1 };
	char why[512];

	(void)state;
	for (int i = 0; i < 3; i++) {
		struct cell *cells;
		size_t count;
		unsigned int tasks = 0, patterns = 0;
		uint64_t variants = 0;

		assert_int_equal(suite_load(names[i], &suite, why, sizeof(why)), 0);
		assert_int_equal(plan_cells(&suite, &sel, &cells, &count, why, sizeof(why)), 0);
		assert_true(count > 0);
		/* every suite touches every task, every pattern and every variant */
		for (size_t c = 0; c < count; c++) {
			for (int t = 0; t < task_count(); t++)
				tasks |= (unsigned int)(cells[c].task == task_at(t)) << t;
			for (int v = 0; v < variant_count(); v++)
				variants |= (uint64_t)(cells[c].variant == variant_at(v)) << v;
			patterns |= PATTERN_BIT(cells[c].pattern);
		}
		assert_true(variant_count() < 64);
		assert_int_equal(tasks, (1u << task_count()) - 1);
		assert_int_equal(variants, (UINT64_C(1) << variant_count()) - 1);
		assert_int_equal(patterns, PATTERNS_ALL);
		free(cells);
	}
}

static void test_suite_csv_reads_lists_lengths_and_comments(void **state)
{
	char why[512];
	const struct suite_row *r;

	(void)state;
	assert_int_equal(parse("task,variants,patterns,lengths,dims,heads,kv_heads,batch\n"
			       "# a comment row, ignored\n"
			       "speed,flash vanilla,ns;cs,\"256,512x128\",32 64,8,2,1\n", why,
			       sizeof(why)), 0);
	assert_int_equal(suite.n_rows, 1);
	r = &suite.rows[0];
	assert_ptr_equal(r->task, task_find("speed"));
	assert_int_equal(r->n_variants, 2);
	assert_int_equal(r->patterns, PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_CS));
	assert_int_equal(r->n_lengths, 2);
	assert_int_equal(r->lengths[1].n, 512);
	assert_int_equal(r->lengths[1].m, 128);
	assert_int_equal(r->n_dims, 2);
	assert_int_equal(r->kv_heads[0], 2);

	/* columns in any order; only task is required; defaults fill the rest */
	assert_int_equal(parse("lengths,task\n64,causality\n", why, sizeof(why)), 0);
	assert_int_equal(suite.rows[0].dims[0], 64);
	assert_int_equal(suite.rows[0].heads[0], 8);
	assert_int_equal(suite.rows[0].n_variants, 0);
}

static void test_suite_csv_refuses_bad_rows_with_a_reason(void **state)
{
	static const struct {
		const char *csv;
		const char *reason;
	} bad[] = {
		{ "", "no rows" },
		{ "task\n", "no rows" },
		{ "variants\nflash\n", "no 'task' column" },
		{ "task,colour\nspeed,red\n", "unknown column 'colour'" },
		{ "task,task\nspeed,speed\n", "duplicate column" },
		{ "task\nsorting\n", "unknown task 'sorting'" },
		{ "task\nspeed fidelity\n", "one task per row" },
		{ "task,variants\nspeed,flash nope\n", "unknown variant 'nope'" },
		{ "task,patterns\nspeed,xs\n", "unknown pattern 'xs'" },
		{ "task,patterns\ncausality,ns\n", "not defined for every pattern" },
		{ "task,lengths\nspeed,0\n", "out of range" },
		{ "task,lengths\nspeed,99999999999\n", "out of range" },
		{ "task,lengths\nspeed,12abc\n", "not a whole number" },
		{ "task,lengths\nspeed,nan\n", "not a whole number" },
		{ "task,lengths\nspeed,64x\n", "not a whole number" },
		{ "task,dims\nspeed,-4\n", "out of range" },
		{ "task,heads\nspeed,100000\n", "out of range" },
		{ "task,regimes\nfidelity,gaussian; DROP TABLE runs\n", "no regime 'DROP'" },
		{ "task,regimes\nspeed,gaussian\n", "takes no regimes" },
		{ "task,lengths\nspeed,256,512\n", "more fields" },
		{ "task,lengths\nspeed\n", "fewer fields" },
		{ "task,lengths\nspeed,\"256\n", "row 2" },
		{ "task,lengths\nspeed,\"25\"6\n", "row 2" },
	};
	char why[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		assert_int_equal(parse(bad[i].csv, why, sizeof(why)), -EINVAL);
		if (!strstr(why, bad[i].reason))
			fail_msg("row %zu: '%s' does not say '%s'", i, why, bad[i].reason);
		assert_null(strchr(why, '\n'));
	}
}

static void test_suite_load_names_a_missing_file(void **state)
{
	char why[512];

	(void)state;
	assert_int_equal(suite_load("/nonexistent/suite.csv", &suite, why, sizeof(why)),
			 -ENOENT);
	assert_non_null(strstr(why, "/nonexistent/suite.csv"));
}

static void test_set_accepts_declared_params_in_range(void **state)
{
	struct param_overrides o = { 0 };
	double values[VARIANT_MAX_PARAMS];
	char why[512];

	(void)state;
	assert_int_equal(params_parse(&o, "local.window=256", why, sizeof(why)), 0);
	assert_int_equal(params_parse(&o, "local.window=64,flash.block_q=32", why, sizeof(why)),
			 0);
	assert_int_equal(o.count, 2);
	params_apply(&o, variant_find("local"), values);
	assert_float_equal(values[0], 64, 0);	/* the later setting wins */
	params_apply(&o, variant_find("vanilla"), values);
}

static void test_set_refuses_bad_values_with_a_reason(void **state)
{
	static const struct {
		const char *text;
		const char *reason;
	} bad[] = {
		{ "window=3", "variant.param=value" },
		{ "local.window", "variant.param=value" },
		{ "", "variant.param=value" },
		{ "nope.window=3", "unknown variant 'nope'" },
		{ "local.size=3", "no parameter 'size' (parameters: window)" },
		{ "local.window=0", "out of range" },
		{ "local.window=-5", "out of range" },
		{ "local.window=1e300", "out of range" },
		{ "local.window=2.5", "out of range (accepted: whole numbers" },
		{ "local.window=abc", "not a number" },
		{ "local.window=nan", "not a number" },
		{ "local.window=inf", "not a number" },
		{ "local.window=", "not a number" },
		{ "local.window=5;DROP TABLE runs", "not a number" },
	};
	char why[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct param_overrides o = { 0 };

		why[0] = '\0';
		assert_int_equal(params_parse(&o, bad[i].text, why, sizeof(why)), -EINVAL);
		if (!strstr(why, bad[i].reason))
			fail_msg("'%s': '%s' does not say '%s'", bad[i].text, why, bad[i].reason);
	}
}

static void test_plan_skips_unsupported_patterns_and_counts_cells(void **state)
{
	struct selection sel = { .threads = 2, .seed = 5 };
	struct cell *cells;
	size_t count, expected = 0;
	char why[512];

	(void)state;
	assert_int_equal(parse("task,lengths,dims,heads\nspeed,128 256x64,16,2\n", why,
			       sizeof(why)), 0);
	assert_int_equal(plan_cells(&suite, &sel, &cells, &count, why, sizeof(why)), 0);
	for (int v = 0; v < variant_count(); v++)
		expected += 2 * (size_t)__builtin_popcount(variant_at(v)->patterns);
	assert_int_equal(count, expected);
	for (size_t c = 0; c < count; c++) {
		assert_true(cells[c].variant->patterns & PATTERN_BIT(cells[c].pattern));
		/* self patterns always use M = N; cross ones take the x */
		if (pattern_is_self(cells[c].pattern) || cells[c].n == 128)
			assert_int_equal(cells[c].m, cells[c].n);
		else
			assert_int_equal(cells[c].m, 64);
		assert_int_equal(cells[c].threads, 2);
	}
	free(cells);
}

static void test_plan_gives_every_variant_the_same_inputs(void **state)
{
	struct selection sel = { .threads = 1 };
	struct cell *cells;
	size_t count;
	char why[512];

	(void)state;
	assert_int_equal(parse("task,patterns,lengths\nfidelity,ns,64\n", why, sizeof(why)), 0);
	assert_int_equal(plan_cells(&suite, &sel, &cells, &count, why, sizeof(why)), 0);
	for (size_t a = 0; a < count; a++)
		for (size_t b = 0; b < count; b++)
			if (cells[a].regime == cells[b].regime)
				assert_true(cells[a].seed == cells[b].seed);
			else
				assert_true(cells[a].seed != cells[b].seed);
	free(cells);
}

static void test_plan_refuses_impossible_selections(void **state)
{
	struct selection sel = { .threads = 1 };
	struct cell *cells;
	size_t count;
	char why[512];

	(void)state;
	assert_int_equal(parse("task,lengths,heads,kv_heads\nspeed,64,8,3\n", why, sizeof(why)),
			 0);
	assert_int_equal(plan_cells(&suite, &sel, &cells, &count, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "kv_heads 3 does not divide heads 8"));

	assert_int_equal(parse("task,lengths\nspeed,64\n", why, sizeof(why)), 0);
	sel.variants[0] = variant_find("local");
	sel.n_variants = 1;
	sel.patterns = PATTERN_BIT(ATTN_NC);
	assert_int_equal(plan_cells(&suite, &sel, &cells, &count, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "variant 'local' supports none of the patterns"));

	sel.n_variants = 0;
	sel.tasks[0] = task_find("causality");
	sel.n_tasks = 1;
	assert_int_equal(plan_cells(&suite, &sel, &cells, &count, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "nothing to run"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builtin_suites_parse_and_plan),
		cmocka_unit_test(test_suite_csv_reads_lists_lengths_and_comments),
		cmocka_unit_test(test_suite_csv_refuses_bad_rows_with_a_reason),
		cmocka_unit_test(test_suite_load_names_a_missing_file),
		cmocka_unit_test(test_set_accepts_declared_params_in_range),
		cmocka_unit_test(test_set_refuses_bad_values_with_a_reason),
		cmocka_unit_test(test_plan_skips_unsupported_patterns_and_counts_cells),
		cmocka_unit_test(test_plan_gives_every_variant_the_same_inputs),
		cmocka_unit_test(test_plan_refuses_impossible_selections),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
