/*
 * timing.c - warm-up, then timed repeats until a minimum count and time are reached.
 */
#include "timing.h"

#include <time.h>

double timing_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int timing_measure(int (*fn)(void *arg), void *arg, const struct measure_opts *opts,
		   int (*sample)(void *sample_arg, double seconds), void *sample_arg)
{
	double total = 0;
	int ret;

	for (int i = 0; i < opts->warmup; i++) {
		ret = fn(arg);
		if (ret)
			return ret;
	}
	for (int i = 0; i < opts->max_repeats; i++) {
		double start, elapsed;

		if (i >= opts->min_repeats && total >= opts->min_seconds)
			break;
		if (i > 0 && opts->long_call > 0 && total >= i * opts->long_call)
			break;
		start = timing_now();
		ret = fn(arg);
		elapsed = timing_now() - start;
		if (ret)
			return ret;
		total += elapsed;
		ret = sample(sample_arg, elapsed);
		if (ret)
			return ret;
	}
	return 0;
}
