/*
 * test-check.c - the verdicts of `attnbench check` on hand-built results: a measure
 * within tolerance passes, one beyond it fails, and a cell that measured nothing fails
 * too, whatever its status says.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "check.h"

/* An ok result with one metric called name (none when name is NULL). */
static struct cell_result result_with(const char *name, double value)
{
	struct cell_result r = { 0 };

	if (name)
		assert_int_equal(result_metric(&r, name, value, ""), 0);
	return r;
}

static void test_check_passes_within_tolerance_and_fails_beyond(void **state)
{
	struct cell_result r = result_with("rel_err", 2e-7);
	char why[64];
	double value;

	(void)state;
	assert_int_equal(check_verdict(&r, "rel_err", true, CHECK_TOLERANCE, &value, why,
				       sizeof(why)), CHECK_PASSED);
	assert_true(value == 2e-7);
	assert_string_equal(why, "");
	r = result_with("rel_err", 1e-3);
	assert_int_equal(check_verdict(&r, "rel_err", true, CHECK_TOLERANCE, &value, why,
				       sizeof(why)), CHECK_FAILED);
	/* not bounded: shown, not judged */
	assert_int_equal(check_verdict(&r, "rel_err", false, CHECK_TOLERANCE, &value, why,
				       sizeof(why)), CHECK_UNBOUNDED);
}

static void test_check_fails_an_ok_cell_without_its_metric(void **state)
{
	struct cell_result none = result_with(NULL, 0);
	struct cell_result other = result_with("peak_bytes", 0);
	struct cell_result nan = result_with("causal_change", NAN);
	char why[64];
	double value;

	(void)state;
	assert_int_equal(check_verdict(&none, "rel_err", true, CHECK_TOLERANCE, &value, why,
				       sizeof(why)), CHECK_FAILED);
	assert_true(isnan(value));
	assert_string_equal(why, "no 'rel_err' metric");
	/* another metric is no stand-in, bounded or not */
	assert_int_equal(check_verdict(&other, "causal_change", true, CHECK_TOLERANCE, &value,
				       why, sizeof(why)), CHECK_FAILED);
	assert_string_equal(why, "no 'causal_change' metric");
	assert_int_equal(check_verdict(&other, "rel_err", false, CHECK_TOLERANCE, &value, why,
				       sizeof(why)), CHECK_FAILED);
	assert_int_equal(check_verdict(&nan, "causal_change", true, CHECK_TOLERANCE, &value,
				       why, sizeof(why)), CHECK_FAILED);
	assert_string_equal(why, "'causal_change' is nan");
}

static void test_check_skips_unsupported_cells_and_fails_every_other_status(void **state)
{
	struct cell_result r = result_with("rel_err", 0);
	char why[64];
	double value;

	(void)state;
	for (int s = CELL_OK; s < CELL_STATUS_COUNT; s++) {
		enum check_verdict want = s == CELL_OK ? CHECK_PASSED :
					  s == CELL_UNSUPPORTED ? CHECK_SKIPPED : CHECK_FAILED;

		r.status = s;
		assert_int_equal(check_verdict(&r, "rel_err", true, CHECK_TOLERANCE, &value, why,
					       sizeof(why)), want);
		assert_true(value == 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_passes_within_tolerance_and_fails_beyond),
		cmocka_unit_test(test_check_fails_an_ok_cell_without_its_metric),
		cmocka_unit_test(test_check_skips_unsupported_cells_and_fails_every_other_status),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
