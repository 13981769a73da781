/*
 * provenance.h - where and how a run was made (SPEC section 5), stored with every run.
 */
#ifndef ATTNBENCH_PROVENANCE_H
#define ATTNBENCH_PROVENANCE_H

/* One column of the runs table each; the names are the column names. */
enum provenance_field {
	PROV_HARNESS_VERSION,
	PROV_GIT_COMMIT,
	PROV_COMPILER,
	PROV_CFLAGS,
	PROV_CPU_MODEL,
	PROV_CPU_FLAGS,
	PROV_CORES,
	PROV_THREADS,
	PROV_BLAS_CONFIG,
	PROV_SQLITE_VERSION,
	PROV_KERNEL,
	PROV_HOSTNAME,
	PROV_GOVERNOR,
	PROV_LOAD_AVG,
	PROV_SMT,
	PROV_ASLR,
	PROV_WARNINGS,
	PROV_SEED,
	PROV_SUITE,
	PROV_COMMAND,
	PROV_ROUNDS,		/* interleaved measurement rounds of the timed cells */
	PROV_OMP_WAIT_POLICY,	/* OMP_WAIT_POLICY the cells ran with, "unset" when none */
	PROV_DRIVER,		/* this process: BOOT_ID/PID/START_TICKS (provenance_driver_alive) */
	PROV_ARGUMENTS,		/* the command line as a JSON array of strings (for --resume) */
	PROV_COUNT,
};

struct provenance {
	char *values[PROV_COUNT];	/* malloc()ed strings; NULL is stored as NULL */
};

/* Column name of a field. */
const char *provenance_name(enum provenance_field f);

/*
 * Collects the build, machine and system state; threads, seed, rounds, suite and the
 * command line come from the caller. Warnings name what makes timings unreliable (a governor
 * other than performance, load at start, SMT, ASLR) or the SGEMM peak misleading (OpenBLAS
 * without AVX-512 kernels on a CPU with AVX-512). Returns 0 or -ENOMEM.
 */
int provenance_collect(struct provenance *p, int threads, unsigned long long seed,
		       int rounds, const char *suite, int argc, char **argv);
void provenance_release(struct provenance *p);

/*
 * Whether the process a run's driver column names (BOOT_ID/PID/START_TICKS, as this
 * process's is recorded) still runs on this machine: 1 alive, 0 gone (this machine has
 * rebooted since, or no process with that pid and start time exists), -1 unknown (NULL
 * or malformed). Only meaningful for runs whose hostname is this machine's.
 */
int provenance_driver_alive(const char *driver);

#endif
