/*
 * environment.h - what the harness sets up itself so that timings are stable, instead of
 * asking the user to: OpenMP's passive waiting, and a thread count equal to the CPUs this
 * process may really use.
 */
#ifndef ATTNBENCH_ENVIRONMENT_H
#define ATTNBENCH_ENVIRONMENT_H

/* The variable libgomp reads once, when it is loaded, and the value the harness wants. */
#define ENVIRONMENT_WAIT_POLICY "OMP_WAIT_POLICY"
#define ENVIRONMENT_WAIT_PASSIVE "passive"

/*
 * Makes OpenMP threads sleep, not spin, when they wait: a spinning team that shares its
 * cores with another busy process stalls at every barrier (README, A/A numbers). libgomp
 * reads OMP_WAIT_POLICY when it is loaded, before main(), so when the variable is unset
 * this sets it and executes the program again with the same arguments (argv as main()
 * got it). A value the user set is kept. Returns only when nothing was executed again:
 * 0, or -errno when the new program could not be started (the run goes on with
 * libgomp's default).
 */
int environment_settle(char **argv);

/*
 * The CPUs this process may use: those of its affinity mask, fewer when a cgroup CPU
 * quota (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us / cpu.cfs_period_us) allows fewer
 * (rounded up). At least 1. The default thread count of every command that times.
 */
int environment_usable_cpus(void);

/* Whether OpenMP waits passively in this process (OMP_WAIT_POLICY is "passive"). */
int environment_waits_passively(void);

#endif
