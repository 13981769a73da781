/*
 * environment.c - passive OpenMP waiting and the usable CPU count (environment.h).
 */
#include "environment.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

int environment_settle(char **argv)
{
	if (getenv(ENVIRONMENT_WAIT_POLICY))
		return 0;
	if (setenv(ENVIRONMENT_WAIT_POLICY, ENVIRONMENT_WAIT_PASSIVE, 1))
		return -errno;
	execv("/proc/self/exe", argv);
	/* not executed again: this process keeps the policy libgomp already read */
	unsetenv(ENVIRONMENT_WAIT_POLICY);
	return -errno;
}

int environment_waits_passively(void)
{
	const char *policy = getenv(ENVIRONMENT_WAIT_POLICY);

	return policy && !strcasecmp(policy, ENVIRONMENT_WAIT_PASSIVE);
}

/* CPUs a quota of `quota` per `period` microseconds allows, rounded up; 0 for none. */
static int quota_cpus(double quota, double period)
{
	if (!(quota > 0) || !(period > 0))
		return 0;
	return (int)ceil(quota / period - 1e-9);
}

/* The CPU quota of this process's cgroup in CPUs, or 0 when there is none. */
static int cgroup_cpus(void)
{
	double quota = 0, period = 0;
	char word[32] = "";
	FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
	int cpus = 0;

	if (f) {
		/* cgroup v2: "max 100000" (no quota) or "200000 100000" */
		if (fscanf(f, "%31s %lf", word, &period) == 2 && strcmp(word, "max"))
			cpus = quota_cpus(strtod(word, NULL), period);
		fclose(f);
		return cpus;
	}
	f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "r");
	if (f) {
		/* cgroup v1: a quota of -1 is none */
		if (fscanf(f, "%lf", &quota) != 1)
			quota = 0;
		fclose(f);
	}
	f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "r");
	if (f) {
		if (fscanf(f, "%lf", &period) != 1)
			period = 0;
		fclose(f);
	}
	return quota_cpus(quota, period);
}

int environment_usable_cpus(void)
{
	cpu_set_t set;
	int cpus = 0, quota;

	if (!sched_getaffinity(0, sizeof(set), &set))
		cpus = CPU_COUNT(&set);
	if (cpus < 1) {
		long online = sysconf(_SC_NPROCESSORS_ONLN);

		cpus = online > 0 ? (int)online : 1;
	}
	quota = cgroup_cpus();
	if (quota > 0 && quota < cpus)
		cpus = quota;
	return cpus;
}
