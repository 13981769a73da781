/*
 * sbatch.h - a Slurm batch script for a sharded suite (attnbench slurm).
 *
 * The script is a job array with one task per shard: task i runs shard i + 1 of N with
 * `run --shard`, into its own database in the results folder (SQLite files are not shared
 * between writers on a network file system), pinned by srun to the CPUs Slurm allocated
 * it, with --threads equal to their number. A task whose cells ran but some failed (exit
 * 1) counts as done: a crashed cell is a result. Task 0 first submits the merge job,
 * which waits for every task of the array (afterok) and then merges the shards into one
 * database, afresh, and writes the report beside it; a failed task cancels it. Submitting
 * the same script again reruns the array: each task resumes its shard's run or finds it
 * complete (run --shard), and a new merge job follows.
 *
 * Every value taken from the user (paths, suite, partition) is checked or quoted so that
 * the shell and sbatch read it as one word and nothing else.
 */
#ifndef ATTNBENCH_SBATCH_H
#define ATTNBENCH_SBATCH_H

#include <stdint.h>
#include <stdio.h>

#define SBATCH_MAX_PLUGINS 16

struct sbatch_job {
	const char *attnbench;	/* the program, an absolute path on the cluster */
	const char *suite;	/* a built-in suite's name or a suite file's absolute path */
	const char *out;	/* the results folder, absolute */
	const char *partition;	/* or NULL */
	const char *time;	/* Slurm's time limit per task, or NULL */
	int shards, cpus;
	uint64_t seed;
	const char *plugins[SBATCH_MAX_PLUGINS];	/* absolute paths */
	int n_plugins;
	const double *cost;	/* estimated nominal seconds per shard, or NULL */
};

/*
 * Checks what goes into #SBATCH lines, which sbatch reads without a shell: the folder (for
 * --output) of letters, digits and / . _ + - only; the partition of letters, digits and
 * , . _ -; the time as Slurm writes it (M, M:S, H:M:S, D-H, D-H:M, D-H:M:S). 0, or
 * -EINVAL with a reason naming the value and what is accepted in why.
 */
int sbatch_check(const struct sbatch_job *job, char *why, size_t why_len);

/* Writes the script of job (sbatch_check()ed) to f; 0, or -EIO. */
int sbatch_write(FILE *f, const struct sbatch_job *job);

/* Writes s to f in single quotes, each ' as '\'' (one shell word whatever s holds). */
void sbatch_quote(FILE *f, const char *s);

#endif
