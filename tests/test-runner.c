/*
 * test-runner.c - real child processes: a crash, a hang, an allocation beyond the limit,
 * a SIGKILL from outside and a refused problem are each recorded, a large report arrives
 * whole, and the resident set a cell starts with is reported beside its peak.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runner.h"

static const struct runner_limits limits = { 20, 0 };

static int crashes(void *arg, struct cell_result *r)
{
	(void)arg;
	(void)r;
	raise(SIGSEGV);
	return 0;
}

static int hangs(void *arg, struct cell_result *r)
{
	(void)arg;
	(void)r;
	for (;;)
		pause();
	return 0;
}

/* Allocates and touches every page of `bytes`, then frees it; 0 or -ENOMEM. */
static int allocates_and_touches(size_t bytes)
{
	/* volatile: the compiler may drop a malloc, memset and free it can see through */
	volatile char *p = malloc(bytes);

	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < bytes; i += 4096)
		p[i] = 1;
	free((void *)p);
	return 0;
}

static int allocates_a_gibibyte(void *arg, struct cell_result *r)
{
	(void)arg;
	(void)r;
	return allocates_and_touches((size_t)1 << 30);
}

/* volatile: the pieces below stay reachable, so no malloc can be optimised away */
static void *volatile kept;

/*
 * Takes the whole address space in ever smaller pieces and says -ENOMEM with all of it
 * still taken, as a leaky task would.
 */
static int exhausts_the_address_space(void *arg, struct cell_result *r)
{
	size_t size = (size_t)64 << 20;
	void **chain = NULL;

	(void)arg;
	(void)r;
	while (size >= sizeof(void *)) {
		void **p = malloc(size);

		if (!p) {
			size /= 2;
			continue;
		}
		*p = chain;
		chain = p;
	}
	kept = chain;
	return -ENOMEM;
}

static int kills_itself(void *arg, struct cell_result *r)
{
	(void)arg;
	(void)r;
	raise(SIGKILL);
	return 0;
}

/* A third process (the child's own child) sends the SIGKILL while the cell waits. */
static int is_killed_by_another_process(void *arg, struct cell_result *r)
{
	pid_t pid = fork();

	(void)arg;
	(void)r;
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		kill(getppid(), SIGKILL);
		_exit(0);
	}
	for (;;)
		pause();
	return 0;
}

static int refuses(void *arg, struct cell_result *r)
{
	(void)arg;
	(void)r;
	return -ENOTSUP;
}

static int refuses_with_a_reason(void *arg, struct cell_result *r)
{
	(void)arg;
	result_status(r, CELL_UNSUPPORTED, "no incremental decoding");
	return -ENOTSUP;
}

static int exits_early(void *arg, struct cell_result *r)
{
	(void)arg;
	(void)r;
	_exit(7);
}

/* Touches 64 MiB and reports 20000 samples: more than a pipe's buffer holds. */
static int reports_a_lot(void *arg, struct cell_result *r)
{
	(void)arg;
	if (allocates_and_touches((size_t)64 << 20))
		return -ENOMEM;
	for (int i = 0; i < 20000; i++)
		result_sample(r, i * 1e-6);
	result_metric(r, "answer", 42.5, "B");
	result_metric(r, "unitless", 0.125, "");
	result_status(r, CELL_FAILED, "a reason\nacross lines");
	return 0;
}

/* A recall cell at N = 4096 with 8 cross heads scores 32768 trials: all must arrive. */
#define MANY_TRIALS 40000

static bool trial_pattern(int i)
{
	return (i * 7 + i / 3) % 5 < 2;	/* irregular, about 40% right */
}

static int reports_many_trials(void *arg, struct cell_result *r)
{
	(void)arg;
	for (int i = 0; i < MANY_TRIALS; i++)
		if (result_trial(r, trial_pattern(i)))
			return -ENOMEM;
	result_sample(r, 0.25);
	return result_metric(r, "trials", MANY_TRIALS, "");
}

static void test_many_trial_outcomes_arrive_whole_and_in_order(void **state)
{
	struct cell_result r;
	struct runner_outcome out;
	int wrong = 0;

	(void)state;
	assert_int_equal(runner_call(reports_many_trials, NULL, 1, &limits, &r, &out), 0);
	assert_int_equal(r.status, CELL_OK);
	assert_int_equal(r.n_trials, MANY_TRIALS);
	for (int i = 0; i < MANY_TRIALS; i++)
		wrong += r.trials[i] != trial_pattern(i);
	assert_int_equal(wrong, 0);
	assert_int_equal(r.n_samples, 1);
	assert_float_equal(r.samples[0], 0.25, 0);
	result_release(&r);
	assert_null(r.trials);
	assert_int_equal(r.n_trials, 0);
}

static void test_a_crash_is_recorded_and_the_parent_goes_on(void **state)
{
	struct cell_result r;
	struct runner_outcome out;

	(void)state;
	assert_int_equal(runner_call(crashes, NULL, 1, &limits, &r, &out), 0);
	assert_int_equal(r.status, CELL_CRASHED);
	assert_non_null(strstr(r.reason, "signal 11"));
	result_release(&r);

	assert_int_equal(runner_call(exits_early, NULL, 1, &limits, &r, &out), 0);
	assert_int_equal(r.status, CELL_CRASHED);
	assert_non_null(strstr(r.reason, "status 7"));
	result_release(&r);
}

static void test_a_hang_is_killed_at_the_time_limit(void **state)
{
	struct runner_limits quick = { 0.3, 0 };
	struct cell_result r;
	struct runner_outcome out;

	(void)state;
	assert_int_equal(runner_call(hangs, NULL, 1, &quick, &r, &out), 0);
	assert_int_equal(r.status, CELL_TIMEOUT);
	assert_true(out.wall_seconds >= 0.3 && out.wall_seconds < 5);
	result_release(&r);
}

static void test_an_allocation_beyond_the_limit_is_oom(void **state)
{
	struct runner_limits small = { 20, (size_t)512 << 20 };
	struct cell_result r;
	struct runner_outcome out;

	(void)state;
	/* no RLIMIT_AS under AddressSanitizer (runner.h): only the refusals are checked */
	if (RUNNER_LIMITS_ADDRESS_SPACE) {
		assert_int_equal(runner_call(allocates_a_gibibyte, NULL, 1, &small, &r, &out), 0);
		assert_int_equal(r.status, CELL_OOM);
		assert_non_null(strstr(r.reason, "0.5 GiB address-space limit"));
		result_release(&r);
	}

	assert_int_equal(runner_call(refuses, NULL, 1, &limits, &r, &out), 0);
	assert_int_equal(r.status, CELL_UNSUPPORTED);
	assert_non_null(strstr(r.reason, "does not support"));
	result_release(&r);

	/* a task's own reason for refusing is kept */
	assert_int_equal(runner_call(refuses_with_a_reason, NULL, 1, &limits, &r, &out), 0);
	assert_int_equal(r.status, CELL_UNSUPPORTED);
	assert_string_equal(r.reason, "no incremental decoding");
	result_release(&r);
}

static void test_a_cell_that_exhausts_its_address_space_is_oom(void **state)
{
	struct runner_limits small = { 20, (size_t)512 << 20 };
	struct cell_result r;
	struct runner_outcome out;

	(void)state;
	if (!RUNNER_LIMITS_ADDRESS_SPACE)
		skip();		/* no RLIMIT_AS under AddressSanitizer (runner.h) */
	/* the child must still report, with no heap left to report from */
	assert_int_equal(runner_call(exhausts_the_address_space, NULL, 1, &small, &r, &out), 0);
	assert_int_equal(r.status, CELL_OOM);
	assert_non_null(strstr(r.reason, "out of memory under the 0.5 GiB address-space limit"));
	result_release(&r);
}

/*
 * The parent sends SIGKILL only at the time limit; any other SIGKILL is oom only when the
 * kernel counted an out-of-memory kill meanwhile, which these children do not cause.
 */
static void test_a_sigkill_from_outside_is_not_oom(void **state)
{
	struct cell_result r;
	struct runner_outcome out;

	(void)state;
	assert_int_equal(runner_call(kills_itself, NULL, 1, &limits, &r, &out), 0);
	assert_int_equal(r.status, CELL_CRASHED);
	assert_non_null(strstr(r.reason, "SIGKILL from outside the harness"));
	/* what the child said before it died is kept */
	assert_true(out.rss_at_start_bytes > 0);
	result_release(&r);

	assert_int_equal(runner_call(is_killed_by_another_process, NULL, 1, &limits, &r, &out),
			 0);
	assert_int_equal(r.status, CELL_CRASHED);
	assert_non_null(strstr(r.reason, "SIGKILL from outside the harness"));
	assert_true(out.wall_seconds < 10);
	result_release(&r);
}

static void test_a_large_report_arrives_whole_with_the_child_rss(void **state)
{
	struct cell_result r;
	struct runner_outcome out;

	(void)state;
	assert_int_equal(runner_call(reports_a_lot, NULL, 1, &limits, &r, &out), 0);
	assert_int_equal(r.status, CELL_FAILED);
	assert_string_equal(r.reason, "a reason across lines");
	assert_int_equal(r.n_samples, 20000);
	assert_float_equal(r.samples[19999], 19999e-6, 1e-18);
	assert_int_equal(r.n_metrics, 2);
	assert_string_equal(r.metrics[0].name, "answer");
	assert_float_equal(r.metrics[0].value, 42.5, 0);
	assert_string_equal(r.metrics[0].unit, "B");
	assert_string_equal(r.metrics[1].unit, "");
	/* the child touched 64 MiB; wait4() must have seen it */
	assert_true(out.rss_bytes >= (64LL << 20));
	result_release(&r);
}

#define MIB (1LL << 20)

static int touches_64_mib(const struct cell *c, struct cell_result *r)
{
	(void)c;
	(void)r;
	return allocates_and_touches(64 * MIB);
}

static int touches_nothing(const struct cell *c, struct cell_result *r)
{
	(void)c;
	(void)r;
	return 0;
}

static const struct task_ops touching_task = { .name = "touching", .run = touches_64_mib };
static const struct task_ops idle_task = { .name = "idle", .run = touches_nothing };

static double metric_value(const struct cell_result *r, const char *name)
{
	for (int i = 0; i < r->n_metrics; i++)
		if (!strcmp(r->metrics[i].name, name))
			return r->metrics[i].value;
	return -1;
}

/*
 * The parent holds 128 MiB resident at the fork, which the child's peak counts too; the
 * resident set at start takes it out, so the growth is the cell's own.
 */
static void test_the_rss_at_start_separates_the_cell_from_the_parent(void **state)
{
	struct cell touching = { .task = &touching_task, .threads = 1 };
	struct cell idle = { .task = &idle_task, .threads = 1 };
	size_t held = 128 * MIB;
	volatile char *parent = malloc(held);
	struct cell_result r;
	struct runner_outcome out;

	(void)state;
	assert_non_null(parent);
	for (size_t i = 0; i < held; i += 4096)
		parent[i] = 1;

	assert_int_equal(runner_run_cell(&touching, &limits, &r, &out), 0);
	assert_int_equal(r.status, CELL_OK);
	assert_true(out.rss_at_start_bytes >= 128 * MIB);
	assert_float_equal(metric_value(&r, "rss_at_start_bytes"), out.rss_at_start_bytes, 0);
	assert_true(out.rss_bytes - out.rss_at_start_bytes >= 64 * MIB);
	/* and not the parent's buffer once more */
	assert_true(out.rss_bytes - out.rss_at_start_bytes < 96 * MIB);
	result_release(&r);

	/* stdio, the pipe and the rest of the child's own work stay well below 16 MiB */
	assert_int_equal(runner_run_cell(&idle, &limits, &r, &out), 0);
	assert_int_equal(r.status, CELL_OK);
	assert_true(out.rss_bytes >= 128 * MIB);
	assert_true(out.rss_bytes - out.rss_at_start_bytes < 16 * MIB);
	result_release(&r);
	free((void *)parent);
}

static void test_the_sgemm_peak_is_a_plausible_rate(void **state)
{
	double gflops = 0;

	(void)state;
	assert_int_equal(runner_sgemm_peak(1, &gflops), 0);
	/* any machine that runs this does more than 1 and less than 100000 GFLOP/s */
	assert_true(gflops > 1 && gflops < 1e5);
}

static void test_the_triad_bandwidth_is_a_plausible_rate(void **state)
{
	double gbps = 0;

	(void)state;
	assert_int_equal(runner_triad_bandwidth(1, &gbps), 0);
	/* one core of any machine that runs this moves more than 0.1 and less than 10^4 GB/s */
	assert_true(gbps > 0.1 && gbps < 1e4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_crash_is_recorded_and_the_parent_goes_on),
		cmocka_unit_test(test_a_hang_is_killed_at_the_time_limit),
		cmocka_unit_test(test_an_allocation_beyond_the_limit_is_oom),
		cmocka_unit_test(test_a_cell_that_exhausts_its_address_space_is_oom),
		cmocka_unit_test(test_a_sigkill_from_outside_is_not_oom),
		cmocka_unit_test(test_a_large_report_arrives_whole_with_the_child_rss),
		cmocka_unit_test(test_many_trial_outcomes_arrive_whole_and_in_order),
		cmocka_unit_test(test_the_rss_at_start_separates_the_cell_from_the_parent),
		cmocka_unit_test(test_the_sgemm_peak_is_a_plausible_rate),
		cmocka_unit_test(test_the_triad_bandwidth_is_a_plausible_rate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
