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
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "rounds.h"
#include "shard.h"
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

/* Whether a and b are the same cell of a plan (shards copy cells, in plan order). */
static bool same_cell(const struct cell *a, const struct cell *b)
{
	return a->variant == b->variant && a->task == b->task && a->pattern == b->pattern &&
	       a->n == b->n && a->m == b->m && a->d == b->d && a->heads == b->heads &&
	       a->kv_heads == b->kv_heads && a->batch == b->batch && a->regime == b->regime &&
	       a->seed == b->seed && !memcmp(a->params, b->params, sizeof(a->params));
}

static void plan_suite(const char *name, struct cell **cells, size_t *count)
{
	struct selection sel = { .threads = 1 };
	char why[512];

	assert_int_equal(suite_load(name, &suite, why, sizeof(why)), 0);
	assert_int_equal(plan_cells(&suite, &sel, cells, count, why, sizeof(why)), 0);
}

/*
 * The shards of a plan hold every cell exactly once, in plan order, the same on every
 * call; their estimated costs add up to the plan's, recomputed cell by cell, and differ by
 * at most a shard's share or the dearest cell (longest-first into the least loaded).
 */
static void test_shards_hold_every_cell_once_balanced_by_cost(void **state)
{
	static const char *const names[] = { "quick", "default" };
	static const int ns[] = { 1, 2, 3, 7, 16 };

	(void)state;
	for (int s = 0; s < 2; s++)
		for (int t = 0; t < 5; t++) {
			struct cell *all, *part;
			size_t count, *seen;
			double cost[16], total = 0, dearest = 0, least = INFINITY, most = 0;
			int n = ns[t];

			plan_suite(names[s], &all, &count);
			seen = calloc(count, sizeof(*seen));
			assert_non_null(seen);
			for (size_t i = 0; i < count; i++) {
				double c = shard_cell_cost(&all[i], ROUNDS_DEFAULT);

				assert_true(c > 0);
				total += c;
				dearest = fmax(dearest, c);
			}
			for (int k = 1; k <= n; k++) {
				size_t got = count, at = 0, again = count;
				struct cell *twice = malloc(count * sizeof(*twice));
				double sum = 0;

				part = malloc(count * sizeof(*part));
				assert_non_null(part);
				assert_non_null(twice);
				memcpy(part, all, count * sizeof(*part));
				memcpy(twice, all, count * sizeof(*twice));
				assert_int_equal(shard_select(part, &got, (struct shard){ k, n },
							      ROUNDS_DEFAULT, cost), 0);
				assert_int_equal(shard_select(twice, &again, (struct shard){ k, n },
							      ROUNDS_DEFAULT, NULL), 0);
				assert_int_equal(got, again);
				for (size_t i = 0; i < got; i++) {
					assert_true(same_cell(&part[i], &twice[i]));
					/* in plan order: find it after the last one found */
					while (at < count && !same_cell(&all[at], &part[i]))
						at++;
					assert_true(at < count);
					seen[at]++;
					sum += shard_cell_cost(&part[i], ROUNDS_DEFAULT);
				}
				assert_float_equal(sum, cost[k - 1], 1e-6 * total);
				least = fmin(least, cost[k - 1]);
				most = fmax(most, cost[k - 1]);
				free(part);
				free(twice);
			}
			for (size_t i = 0; i < count; i++)
				assert_int_equal(seen[i], 1);
			assert_true(most - least <= fmax(total / n, dearest) + 1e-9);
			if (n == 1)
				assert_float_equal(most, total, 1e-6 * total);
			free(seen);
			free(all);
		}
}

/*
 * The timed cells of one shape go to one shard while they fit in a shard's share; cost
 * grows with the work (a speed cell at N = 1024 over one at 256, the same variant).
 */
static void test_shards_keep_a_shape_s_timed_cells_together(void **state)
{
	struct cell *all, *part;
	size_t count, got;
	int shapes = 0;

	(void)state;
	plan_suite("quick", &all, &count);
	for (int k = 1; k <= 2; k++) {
		part = malloc(count * sizeof(*part));
		assert_non_null(part);
		memcpy(part, all, count * sizeof(*part));
		got = count;
		assert_int_equal(shard_select(part, &got, (struct shard){ k, 2 }, ROUNDS_DEFAULT,
					      NULL), 0);
		/* every timed cell of the shard: all of its shape's cells are here too */
		for (size_t i = 0; i < got; i++) {
			size_t here = 0, planned = 0;

			if (!rounds_timed(&part[i]))
				continue;
			for (size_t j = 0; j < got; j++)
				here += rounds_timed(&part[j]) && part[j].task == part[i].task &&
					part[j].pattern == part[i].pattern && part[j].n == part[i].n &&
					part[j].d == part[i].d;
			for (size_t j = 0; j < count; j++)
				planned += all[j].task == part[i].task &&
					   all[j].pattern == part[i].pattern && all[j].n == part[i].n &&
					   all[j].d == part[i].d;
			assert_int_equal(here, planned);
			shapes++;
		}
		free(part);
	}
	assert_true(shapes > 0);
	for (size_t i = 0; i < count; i++)
		for (size_t j = 0; j < count; j++)
			if (all[i].variant == all[j].variant && all[i].task == all[j].task &&
			    !strcmp(all[i].task->name, "speed") && all[i].pattern == all[j].pattern &&
			    all[i].n == 256 && all[j].n == 1024)
				assert_true(shard_cell_cost(&all[j], 3) > shard_cell_cost(&all[i], 3));
	free(all);
}

/* The suite identity: the plan's, whatever the shard; another seed, another suite. */
static void test_suite_identity_is_the_plan_s(void **state)
{
	char a[SHA256_HEX_LEN], b[SHA256_HEX_LEN], c[SHA256_HEX_LEN], why[128];
	struct cell *all;
	size_t count;
	struct shard s;

	(void)state;
	plan_suite("quick", &all, &count);
	assert_int_equal(shard_suite_id(all, count, 0, 3, a), 0);
	assert_int_equal(shard_suite_id(all, count, 0, 3, b), 0);
	assert_string_equal(a, b);
	assert_int_equal(strlen(a), 64);
	assert_int_equal(shard_suite_id(all, count, 1, 3, c), 0);
	assert_string_not_equal(a, c);
	assert_int_equal(shard_suite_id(all, count, 0, 5, c), 0);
	assert_string_not_equal(a, c);
	assert_int_equal(shard_suite_id(all, count - 1, 0, 3, c), 0);
	assert_string_not_equal(a, c);
	free(all);
	assert_int_equal(shard_parse("3/16", &s, why, sizeof(why)), 0);
	assert_int_equal(s.k, 3);
	assert_int_equal(s.n, 16);
	for (const char *const *bad = (const char *const[]){ "0/4", "5/4", "1/0", "4", "1/",
			"/4", "1/4x", " 1/4", "1/4097", "-1/4", "99999999999999999999/4", NULL };
	     *bad; bad++) {
		assert_int_equal(shard_parse(*bad, &s, why, sizeof(why)), -EINVAL);
		assert_non_null(strstr(why, "K/N"));
	}
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
		cmocka_unit_test(test_shards_hold_every_cell_once_balanced_by_cost),
		cmocka_unit_test(test_shards_keep_a_shape_s_timed_cells_together),
		cmocka_unit_test(test_suite_identity_is_the_plan_s),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
