/*
 * test-faults.c - every way a variant can break (fault-variants.h), through the real
 * runner and real tasks: each is recorded with its own status and a reason that says what
 * happened, and the guard zones and canaries of the task's buffers (tensors.h) catch a
 * write outside them wherever it lands.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "fault-variants.h"
#include "runner.h"
#include "tensors.h"

/*
 * A small address space, so the endless allocation ends soon. The cells take some 20 ms;
 * only the hang meets the time limit of 2 s, and the others get 60 s, as a machine busy
 * with the whole test suite once kept a 20 ms cell past 2 s.
 */
static const struct runner_limits limits = { 60, (size_t)512 << 20 };
static const struct runner_limits hang_limits = { 2, (size_t)512 << 20 };

struct fault_case {
	const struct variant_ops *variant;
	/*
	 * n x d of each of the two query heads: 16 x 16 makes O 2 KiB, a multiple of 64, so
	 * its end touches the guard page; 5 x 3 leaves 8 bytes of canaries after it.
	 */
	int n, d;
	enum cell_status status;
	const char *reason;	/* a part of the reason */
};

static const struct fault_case cases[] = {
	{ &segv_variant, 16, 16, CELL_CRASHED, "killed by signal 11 (Segmentation fault)" },
	{ &abort_variant, 16, 16, CELL_CRASHED, "killed by signal 6 (Aborted)" },
	{ &hang_variant, 16, 16, CELL_TIMEOUT, "exceeded the time limit of 2 s" },
#if RUNNER_LIMITS_ADDRESS_SPACE
	/* without an address-space limit (a sanitizer build) it would only time out */
	{ &alloc_forever_variant, 16, 16, CELL_OOM, "under the 0.5 GiB address-space limit" },
#endif
	{ &nan_variant, 16, 16, CELL_NAN, "row 0, column 0 (batch 0, head 0) is nan" },
	{ &inf_variant, 16, 16, CELL_NAN, ", column 15 (batch 0, head 1) is inf" },
	/* the guard page: the handler in the child names the address */
	{ &overrun_near_variant, 16, 16, CELL_CORRUPT, "is 0 bytes past the end of o)" },
	/* the canaries after O: found when the variant returns */
	{ &overrun_near_variant, 5, 3, CELL_CORRUPT, "(changed the 4 bytes past the end of o)" },
	{ &overrun_far_variant, 16, 16, CELL_CORRUPT, "is 16384 bytes past the end of o)" },
	{ &underrun_variant, 16, 16, CELL_CORRUPT, "(changed the 4 bytes before the start of o)" },
	{ &write_input_variant, 16, 16, CELL_CORRUPT, "wrote into its input q (address 0x" },
#if defined(__x86_64__)
	/* only x86-64 says whether a fault was a read: elsewhere "read or wrote" */
	{ &read_far_variant, 16, 16, CELL_CRASHED, "read outside the buffers it was given" },
#endif
};

/* Every task that runs a variant on the harness's tensors, with a pattern and regime it takes. */
static const struct {
	const char *name;
	enum attn_pattern pattern;
	const char *regime;
} fault_tasks[] = {
	{ "speed", ATTN_NS, NULL },
	{ "fidelity", ATTN_NS, "gaussian" },
	{ "passkey", ATTN_NS, "0.5" },
	/* cross: every query row asks, so 5 keys hold 2 pairs */
	{ "recall", ATTN_NC, "2" },
	{ "causality", ATTN_CS, NULL },
	{ "decode", ATTN_CS, NULL },
};

static struct cell fault_cell(const struct fault_case *fc, size_t task)
{
	return (struct cell){
		.variant = fc->variant,
		.task = task_find(fault_tasks[task].name),
		.pattern = fault_tasks[task].pattern,
		.batch = 1, .heads = 2, .kv_heads = 1, .n = fc->n, .m = fc->n, .d = fc->d,
		.regime = fault_tasks[task].regime,
		.seed = 7,
		.threads = 1,
		.measure = { .warmup = 1, .min_repeats = 3, .max_repeats = 3 },
	};
}

/*
 * Each fault under each task: its status and reason. Prints the fault matrix (fault,
 * task, status, reason) as it goes.
 */
static void test_each_fault_is_recorded_with_its_own_status_and_reason(void **state)
{
	(void)state;
	for (size_t t = 0; t < sizeof(fault_tasks) / sizeof(fault_tasks[0]); t++)
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct cell c = fault_cell(&cases[i], t);
			struct runner_outcome out;
			struct cell_result r;

			assert_int_equal(runner_run_cell(&c, cases[i].status == CELL_TIMEOUT ?
							 &hang_limits : &limits, &r, &out), 0);
			print_message("| %s (%dx%d) | %s | %s | %s |\n", c.variant->name, c.n, c.d,
				      c.task->name, cell_status_name(r.status), r.reason);
			if (r.status != cases[i].status || !strstr(r.reason, cases[i].reason))
				fail_msg("%s under %s: %s '%s', expected %s '...%s...'",
					 c.variant->name, c.task->name, cell_status_name(r.status),
					 r.reason, cell_status_name(cases[i].status),
					 cases[i].reason);
			result_release(&r);
		}
}

/*
 * The fences cost the exact variant nothing: it runs ok on the same shapes (1 x 1 only
 * where the task takes it: passkey needs d >= 2, recall two keys for its two pairs).
 */
static void test_an_exact_variant_runs_ok_inside_the_fences(void **state)
{
	static const struct fault_case exact[] = {
		{ NULL, 16, 16, CELL_OK, "" },
		{ NULL, 5, 3, CELL_OK, "" },
		{ NULL, 1, 1, CELL_OK, "" },
	};
	static const char *const too_small[] = { "passkey", "recall" };

	(void)state;
	for (size_t t = 0; t < sizeof(fault_tasks) / sizeof(fault_tasks[0]); t++)
		for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
			struct cell c = fault_cell(&exact[i], t);
			struct runner_outcome out;
			struct cell_result r;

			c.variant = variant_find("vanilla");
			assert_int_equal(runner_run_cell(&c, &limits, &r, &out), 0);
			if (c.n == 1 && (!strcmp(c.task->name, too_small[0]) ||
					 !strcmp(c.task->name, too_small[1])))
				assert_int_equal(r.status, CELL_UNSUPPORTED);
			else
				assert_int_equal(r.status, CELL_OK);
			result_release(&r);
		}
}

/* A fault the fences do not explain stays a crash: a real stack overflow, say. */
static int overflows_the_stack(void *arg, struct cell_result *r)
{
	volatile char frame[4096];
	uintptr_t depth = (uintptr_t)arg;

	frame[depth % sizeof(frame)] = 1;
	if (depth == UINTPTR_MAX)
		return 0;
	return overflows_the_stack((void *)(depth + 1), r) + frame[0];
}

static void test_a_stack_overflow_is_still_a_crash(void **state)
{
	struct runner_outcome out;
	struct cell_result r;

	(void)state;
	assert_int_equal(runner_call(overflows_the_stack, NULL, 1, &limits, &r, &out), 0);
	assert_int_equal(r.status, CELL_CRASHED);
	assert_non_null(strstr(r.reason, "signal 11"));
	result_release(&r);
}

/* In the parent, without the runner: the canaries and the table of live buffers. */
static void test_canaries_find_a_write_just_outside_a_buffer(void **state)
{
	struct cell_result r = { 0 };
	float *x = tensor_alloc(17, "x"), *y = tensor_alloc(0, "y");

	(void)state;
	assert_non_null(x);
	assert_non_null(y);
	assert_int_equal((uintptr_t)x % 64, 0);
	assert_true(tensors_check_guards(&r));
	x[16] = 1;
	assert_true(tensors_check_guards(&r));
	x[17] = 2;	/* 68 bytes round up to 128: 60 bytes of canaries follow */
	assert_false(tensors_check_guards(&r));
	assert_int_equal(r.status, CELL_CORRUPT);
	assert_non_null(strstr(r.reason, "changed the 4 bytes past the end of x"));
	tensor_free(x);
	r = (struct cell_result){ 0 };
	assert_true(tensors_check_guards(&r));
	tensor_free(y);
	tensor_free(NULL);
}

/*
 * A guard zone and a sealed input explain a fault there; an address elsewhere is no fault
 * of theirs.
 */
static void test_faults_in_the_fences_are_explained(void **state)
{
	float *x = tensor_alloc(1024, "q");
	char reason[200];
	int here;

	(void)state;
	assert_non_null(x);
	assert_int_equal(tensors_explain_fault(x + 1024 + 100, TENSORS_ACCESS_WRITE, reason,
					       sizeof(reason)), CELL_CORRUPT);
	assert_non_null(strstr(reason, "is 400 bytes past the end of q)"));
	assert_int_equal(tensors_explain_fault(x - 2, TENSORS_ACCESS_READ, reason,
					       sizeof(reason)), CELL_CRASHED);
	assert_non_null(strstr(reason, "read outside the buffers it was given (address 0x"));
	assert_non_null(strstr(reason, "is 8 bytes before the start of q)"));
	/* accessible and not sealed: the fault was elsewhere */
	assert_int_equal(tensors_explain_fault(x + 5, TENSORS_ACCESS_WRITE, reason,
					       sizeof(reason)), CELL_OK);
	assert_int_equal(tensors_seal(x, NULL, NULL), 0);
	assert_int_equal(tensors_explain_fault(x + 5, TENSORS_ACCESS_UNKNOWN, reason,
					       sizeof(reason)), CELL_CORRUPT);
	assert_non_null(strstr(reason, "wrote into its input q"));
	assert_non_null(strstr(reason, "byte 20 of it)"));
	assert_float_equal(x[5], x[5], 0);	/* still readable */
	assert_int_equal(tensors_unseal(x, NULL, NULL), 0);
	x[5] = 1;
	assert_int_equal(tensors_explain_fault(&here, TENSORS_ACCESS_WRITE, reason,
					       sizeof(reason)), CELL_OK);
	/* a reason longer than its room is cut, not overrun */
	assert_int_equal(tensors_explain_fault(x + 2000, TENSORS_ACCESS_WRITE, reason, 8),
			 CELL_CORRUPT);
	assert_string_equal(reason, "wrote o");
	tensor_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_fault_is_recorded_with_its_own_status_and_reason),
		cmocka_unit_test(test_an_exact_variant_runs_ok_inside_the_fences),
		cmocka_unit_test(test_a_stack_overflow_is_still_a_crash),
		cmocka_unit_test(test_canaries_find_a_write_just_outside_a_buffer),
		cmocka_unit_test(test_faults_in_the_fences_are_explained),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
