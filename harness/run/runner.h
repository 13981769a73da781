/*
 * runner.h - runs work in a child process, so that a crash, hang, NaN or out-of-memory
 * in one variant is recorded and the run goes on (SPEC sections 5 and 7).
 *
 * The child reports through a pipe; the parent enforces the time limit, reaps the child
 * with wait4() and takes its peak resident set from the rusage. That peak includes what
 * the child shared with the parent at the fork, so the child also reports its resident
 * set before the work: the work's own growth is the difference.
 */
#ifndef ATTNBENCH_RUNNER_H
#define ATTNBENCH_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "task.h"

struct runner_limits {
	double seconds;		/* wall-clock limit of one child */
	size_t bytes;		/* address-space limit of one child; 0 for none */
};

/*
 * Whether limits.bytes is applied. AddressSanitizer reserves terabytes of shadow address
 * space at start and maps more as the program runs, so under any RLIMIT_AS a child dies at
 * its next mapping: a sanitizer build runs its children without one (and tests that need
 * the limit skip).
 */
#if defined(__SANITIZE_ADDRESS__)
#define RUNNER_LIMITS_ADDRESS_SPACE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RUNNER_LIMITS_ADDRESS_SPACE 0
#endif
#endif
#ifndef RUNNER_LIMITS_ADDRESS_SPACE
#define RUNNER_LIMITS_ADDRESS_SPACE 1
#endif

struct runner_outcome {
	double wall_seconds;	/* fork to reap */
	/*
	 * The peak resident set of the child that ran the work, or -1; it counts the pages
	 * it shared with the parent at the fork (e.g. the parent's heap) as its own.
	 */
	long long rss_bytes;
	/* the child's peak resident set before the work began, or -1 when it did not say */
	long long rss_at_start_bytes;
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

/*
 * Runs a cell's task through runner_call(), and records out->rss_at_start_bytes in r as
 * the metric rss_at_start_bytes when it is known, whatever became of the cell.
 */
int runner_run_cell(const struct cell *c, const struct runner_limits *limits,
		    struct cell_result *r, struct runner_outcome *out);

/*
 * The same in steps, for several cells at once: runner_start_cell() forks a child for c
 * (pid 0 in a zeroed struct means none), runner_wait_any() reads every running child's
 * report until one is done (finished or past its time limit) and returns its index,
 * runner_reap() collects that one into r and out as runner_run_cell() would and marks
 * the slot free. runner_start_cell() returns 0 or -errno (the slot stays free).
 * runner_wait_any() looks at the first RUNNER_MAX_CHILDREN slots; -1 when none runs.
 */
#define RUNNER_MAX_CHILDREN 64

struct runner_child {
	pid_t pid;		/* 0: the slot is free */
	int fd;			/* the report pipe's read end */
	double start;
	long long oom_kills;	/* the kernel's count at the fork */
	char *text;		/* the report so far */
	size_t len, cap;
	bool done, in_time;
};

int runner_start_cell(const struct cell *c, const struct runner_limits *limits,
		      struct runner_child *ch);
int runner_wait_any(struct runner_child *children, int n, const struct runner_limits *limits);
void runner_reap(struct runner_child *ch, const struct runner_limits *limits,
		 struct cell_result *r, struct runner_outcome *out);

/*
 * Measures this machine's SGEMM rate with `threads` threads (a 2048^3 product, the best
 * of repeats over about a second) in a child; 0 or -errno.
 */
int runner_sgemm_peak(int threads, double *gflops);

/*
 * Measures this machine's memory bandwidth with `threads` threads in a child: STREAM's
 * triad a[i] = b[i] + s * c[i] over three float arrays of 128 MiB, far beyond the caches,
 * the best of 10 after a warm-up, counting 12 bytes per element (b and c read, a written;
 * not the write-allocate read of a), in GB/s (1e9 bytes/s). 0 or -errno.
 */
int runner_triad_bandwidth(int threads, double *gbps);

#endif
