/*
 * runner.h - runs work in a child process, so that a crash, hang, NaN or out-of-memory
 * in one variant is recorded and the run goes on (SPEC sections 5 and 7).
 *
 * The child reports through a pipe; the parent enforces the time limit, reaps the child
 * with wait4() and takes its peak resident set from the rusage.
 */
#ifndef ATTNBENCH_RUNNER_H
#define ATTNBENCH_RUNNER_H

#include <stddef.h>

#include "task.h"

struct runner_limits {
	double seconds;		/* wall-clock limit of one child */
	size_t bytes;		/* address-space limit of one child; 0 for none */
};

struct runner_outcome {
	double wall_seconds;	/* fork to reap */
	long long rss_bytes;	/* the child's peak resident set, or -1 */
};

/*
 * Runs fn(arg, r) in a child with `threads` threads and the limits, and fills r with what
 * it reported, or with status crashed / timeout / oom when it died. fn returns 0, or
 * -ENOTSUP (recorded as unsupported), -ENOMEM (oom), another -errno (failed).
 * A child killed by a SIGKILL the parent did not send (the parent sends one only at the
 * time limit) is oom when the kernel counted an out-of-memory kill meanwhile, and
 * crashed otherwise.
 * Returns 0, or -errno when no child could be started (r untouched).
 */
int runner_call(int (*fn)(void *arg, struct cell_result *r), void *arg, int threads,
		const struct runner_limits *limits, struct cell_result *r,
		struct runner_outcome *out);

/* Runs a cell's task through runner_call(). */
int runner_run_cell(const struct cell *c, const struct runner_limits *limits,
		    struct cell_result *r, struct runner_outcome *out);

/*
 * Measures this machine's SGEMM rate with `threads` threads (a 2048^3 product, the best
 * of repeats over about a second) in a child; 0 or -errno.
 */
int runner_sgemm_peak(int threads, double *gflops);

#endif
