/*
 * sbatch.c - the Slurm batch script of a sharded suite (sbatch.h).
 */
#include "sbatch.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "why.h"

/* Whether s is non-empty and every byte of it is a letter, a digit or in extra. */
static bool made_of(const char *s, const char *extra)
{
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
			return false;
	return true;
}

/* Slurm's time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S (digits only between). */
static bool slurm_time(const char *s)
{
	int fields = 0, colons = 0;
	bool day = false;

	if (!s || !isdigit((unsigned char)*s))
		return false;
	for (; *s; s++) {
		if (isdigit((unsigned char)*s))
			continue;
		if (!isdigit((unsigned char)s[1]))
			return false;
		if (*s == '-' && !day && !colons)
			day = true;
		else if (*s == ':' && colons < 2)
			colons++;
		else
			return false;
		fields++;
	}
	return !(day && colons > 2) && fields <= 3;
}

int sbatch_check(const struct sbatch_job *job, char *why, size_t why_len)
{
	if (!made_of(job->out, "/._+-") || job->out[0] != '/')
		return why_fail(-EINVAL, why, why_len, "--out '%s' is not a path of letters, "
				"digits and / . _ + - (sbatch reads it unquoted)", job->out);
	if (job->partition && !made_of(job->partition, ",._-"))
		return why_fail(-EINVAL, why, why_len, "--partition '%s' is not a partition name "
				"(letters, digits and , . _ -)", job->partition);
	if (job->time && !slurm_time(job->time))
		return why_fail(-EINVAL, why, why_len, "--time '%s' is not a Slurm time limit "
				"(M, M:S, H:M:S, D-H, D-H:M or D-H:M:S)", job->time);
	return 0;
}

void sbatch_quote(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++)
		if (*s == '\'')
			fputs("'\\''", f);
		else
			fputc(*s, f);
	fputc('\'', f);
}

/* The #SBATCH lines a task and the merge job share. */
static void placement(FILE *f, const struct sbatch_job *job, const char *prefix,
		      const char *suffix)
{
	if (job->partition)
		fprintf(f, "%s--partition=%s%s", prefix, job->partition, suffix);
	if (job->time)
		fprintf(f, "%s--time=%s%s", prefix, job->time, suffix);
}

int sbatch_write(FILE *f, const struct sbatch_job *job)
{
	double least = 0, most = 0, total = 0;

	for (int k = 0; job->cost && k < job->shards; k++) {
		least = k == 0 || job->cost[k] < least ? job->cost[k] : least;
		most = job->cost[k] > most ? job->cost[k] : most;
		total += job->cost[k];
	}
	fprintf(f, "#!/bin/bash\n"
		"# A suite in %d shards, one per task of a Slurm job array, then one merged\n"
		"# database and its report: written by 'attnbench slurm'.\n"
		"#   submit:   sbatch THIS_FILE   (again after a failure: each shard resumes)\n"
		"#   results:  OUT/shard-K.db, then OUT/attnbench.db and OUT/report.md\n",
		job->shards);
	if (job->cost)
		fprintf(f, "# Estimated cost per shard, in nominal seconds of a 2-core machine:\n"
			"# %.0f to %.0f (all shards %.0f).\n", least, most, total);
	fprintf(f, "#SBATCH --job-name=attnbench\n"
		"#SBATCH --array=0-%d\n"
		"#SBATCH --ntasks=1\n"
		"#SBATCH --cpus-per-task=%d\n", job->shards - 1, job->cpus);
	placement(f, job, "#SBATCH ", "\n");
	fprintf(f, "#SBATCH --output=%s/slurm-%%A_%%a.out\n\n", job->out);

	fputs("set -u\nATTNBENCH=", f);
	sbatch_quote(f, job->attnbench);
	fputs("\nOUT=", f);
	sbatch_quote(f, job->out);
	fputs("\nSUITE=", f);
	sbatch_quote(f, job->suite);
	fprintf(f, "\nexport ATTNBENCH OUT\n"
		"task=${SLURM_ARRAY_TASK_ID:?submit this script with sbatch}\n"
		"cpus=${SLURM_CPUS_PER_TASK:-%d}\n"
		"mkdir -p \"$OUT\" || exit 2\n\n", job->cpus);

	/*
	 * The merge job: no user text in --wrap, it reads ATTNBENCH and OUT from the env. The
	 * old database's -wal and -shm go before the new one takes its name: SQLite would
	 * apply a stale log to the new file.
	 */
	fprintf(f, "# The first task submits the merge job: it starts when every task of this\n"
		"# array ended well (a failed one cancels it) and merges the shards afresh.\n"
		"if [ \"$task\" = \"${SLURM_ARRAY_TASK_MIN:-0}\" ]; then\n"
		"\tsbatch --parsable --job-name=attnbench-merge --ntasks=1 --cpus-per-task=1 \\\n"
		"\t\t--dependency=\"afterok:$SLURM_ARRAY_JOB_ID\" --kill-on-invalid-dep=yes \\\n"
		"\t\t--export=ALL --output=\"$OUT/slurm-merge-%%j.out\" \\\n");
	placement(f, job, "\t\t", " \\\n");
	fprintf(f, "\t\t--wrap='set --; k=1; while [ $k -le %d ]; do "
		"set -- \"$@\" \"$OUT/shard-$k.db\"; k=$((k + 1)); done; "
		"rm -f \"$OUT/attnbench.db.new\"* && "
		"\"$ATTNBENCH\" merge \"$OUT/attnbench.db.new\" \"$@\" && "
		"rm -f \"$OUT/attnbench.db-wal\" \"$OUT/attnbench.db-shm\" && "
		"mv -f \"$OUT/attnbench.db.new\" \"$OUT/attnbench.db\" && "
		"\"$ATTNBENCH\" report --db \"$OUT/attnbench.db\" --markdown > \"$OUT/report.md\"' "
		"|| exit 2\n"
		"fi\n\n", job->shards);

	fprintf(f, "# Shard task + 1, on the CPUs Slurm gave this task; exit 1 (some cells\n"
		"# failed or crashed) is a finished shard too.\n"
		"shard=$((task + 1))\n"
		"srun --ntasks=1 --cpus-per-task=\"$cpus\" --cpu-bind=cores \"$ATTNBENCH\" run "
		"--suite \"$SUITE\" \\\n"
		"\t--shard \"$shard/%d\" --threads \"$cpus\" --seed %llu", job->shards,
		(unsigned long long)job->seed);
	for (int i = 0; i < job->n_plugins; i++) {
		fputs(" --plugin ", f);
		sbatch_quote(f, job->plugins[i]);
	}
	fputs(" \\\n\t--db \"$OUT/shard-$shard.db\" -q\n"
	      "status=$?\n"
	      "[ \"$status\" -eq 0 ] || [ \"$status\" -eq 1 ]\n", f);
	return ferror(f) ? -EIO : 0;
}
