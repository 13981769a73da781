/*
 * timing.h - the monotonic clock and the repeat-until-stable measurement loop.
 */
#ifndef ATTNBENCH_TIMING_H
#define ATTNBENCH_TIMING_H

/* How a timed measurement repeats (SPEC section 5). */
struct measure_opts {
	int warmup;		/* untimed calls first */
	int min_repeats;	/* timed calls at least */
	double min_seconds;	/* and at least this much timed time */
	int max_repeats;	/* stop here even if min_seconds is not reached */
	double long_call;	/* a timed call this long is enough alone (0: no such call) */
};

/* Seconds on CLOCK_MONOTONIC. */
double timing_now(void);

/*
 * Calls fn(arg) opts->warmup times untimed, then times calls until both min_repeats
 * and min_seconds are reached (or max_repeats, or calls of long_call seconds or more
 * on average), passing each duration in seconds to
 * sample(sample_arg). Stops at the first call that returns non-zero and returns that;
 * otherwise returns what the first failing sample() returned, or 0.
 */
int timing_measure(int (*fn)(void *arg), void *arg, const struct measure_opts *opts,
		   int (*sample)(void *sample_arg, double seconds), void *sample_arg);

#endif
