/*
 * test-cli.c - the attnbench binary as a user meets it: real runs into real databases,
 * exit codes, one-line errors, and bad input that leaves the database byte-for-byte
 * unchanged. argv[1] is the binary.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "run-binary.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "db-dump.h"
#include "npy.h"
#include "rounds.h"
#include "variant.h"

static const char *binary;
static char tmpdir[] = "/tmp/attnbench-cli-XXXXXX";
static char db[256];

/* Runs the binary with a NULL-terminated argument list. */
static void run(struct outcome *o, const char *arg, ...)
{
	va_list ap;

	va_start(ap, arg);
	run_binary(o, binary, tmpdir, arg, ap);
	va_end(ap);
}

/* Starts the binary with the arguments and returns without waiting (finish_binary()). */
static pid_t start(const char *arg, ...)
{
	va_list ap;
	pid_t pid;

	va_start(ap, arg);
	pid = start_binary(binary, tmpdir, arg, ap);
	va_end(ap);
	return pid;
}

/* start(), with its output in another scratch folder (for two at once). */
static pid_t start_binary_in(const char *scratch, const char *arg, ...)
{
	va_list ap;
	pid_t pid;

	va_start(ap, arg);
	pid = start_binary(binary, scratch, arg, ap);
	va_end(ap);
	return pid;
}

static char *path_in_tmp(const char *name)
{
	static char paths[16][300];
	static int next;
	char *p = paths[next++ % 16];

	snprintf(p, 300, "%s/%s", tmpdir, name);
	return p;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static long read_file(const char *path, char **data)
{
	FILE *f = fopen(path, "rb");
	long len;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	*data = malloc((size_t)len + 1);
	assert_int_equal(fread(*data, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	return len;
}

static const char tiny_suite[] =
	"task,variants,patterns,lengths,dims,heads,kv_heads,batch,regimes\n"
	"fidelity,all,all,48x40,16,2,1,1,gaussian sink\n"
	"speed,all,all,64,16,2,,1,\n"
	"causality,all,all,64,16,2,,1,\n";

static int setup(void **state)
{
	struct outcome *o = malloc(sizeof(*o));

	(void)state;
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(db, sizeof(db), "%s/results.db", tmpdir);
	write_text(path_in_tmp("tiny.csv"), tiny_suite);
	/* one real run: the database the bad-input tests must leave alone */
	run(o, "run", "--suite", path_in_tmp("tiny.csv"), "--db", db, "--repeats", "2",
	    "--min-time", "0", "--threads", "1", "-q", NULL);
	if (o->status != 0) {
		fprintf(stderr, "setup run failed (%d): %s\n", o->status, o->err);
		free(o);
		return -1;
	}
	free(o);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd);
}

static void test_help_lists_the_commands_and_unknown_ones_fail(void **state)
{
	struct outcome *o = malloc(sizeof(*o));

	(void)state;
	run(o, "help", NULL);
	assert_int_equal(o->status, 0);
	assert_non_null(strstr(o->out, "run"));
	assert_non_null(strstr(o->out, "query"));
	run(o, "run", "--help", NULL);
	assert_int_equal(o->status, 0);
	assert_non_null(strstr(o->out, "--variants"));
	run(o, "frobnicate", NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->err, "attnbench: 'frobnicate' is not a command"));
	free(o);
}

static void test_list_shows_variants_tasks_suites_and_runs(void **state)
{
	struct outcome *o = malloc(sizeof(*o));

	(void)state;
	run(o, "list", "variants", NULL);
	assert_int_equal(o->status, 0);
	for (int i = 0; i < variant_count(); i++)
		assert_non_null(strstr(o->out, variant_at(i)->name));
	assert_non_null(strstr(o->out, "local.window = 15"));
	run(o, "list", "tasks", NULL);
	assert_non_null(strstr(o->out, "causality"));
	run(o, "list", "suites", NULL);
	assert_non_null(strstr(o->out, "quick"));
	run(o, "list", "runs", "--db", db, NULL);
	assert_int_equal(o->status, 0);
	assert_non_null(strstr(o->out, "complete"));
	assert_non_null(strstr(o->out, " sgemm   triad  cpu\n"));
	run(o, "list", "colours", NULL);
	assert_int_equal(o->status, 2);
	free(o);
}

static void test_a_run_stores_every_variant_on_every_supported_pattern(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	char expect[64], sql[320];
	int with_flops = 0;

	(void)state;
	run(o, "query", "--db", db, "--csv",
	    "SELECT variant, pattern, count(*) FROM results WHERE status = 'ok' "
	    "GROUP BY 1, 2 ORDER BY 1, 2", NULL);
	assert_int_equal(o->status, 0);
	for (int i = 0; i < variant_count(); i++)
		for (int p = 0; p < ATTN_PATTERN_COUNT; p++) {
			const struct variant_ops *v = variant_at(i);
			/* fidelity 2 regimes + speed 1, and causality on cs and cc */
			int cells = 3 + pattern_is_causal(p);

			snprintf(expect, sizeof(expect), "%s,%s,%d\r\n", v->name, pattern_name(p),
				 cells);
			if ((v->patterns & PATTERN_BIT(p)) != 0)
				assert_non_null(strstr(o->out, expect));
			else
				assert_null(strstr(o->out, expect));
		}
	/* one speed cell per pattern of every variant that counts its FLOPs */
	for (int i = 0; i < variant_count(); i++)
		for (int p = 0; p < ATTN_PATTERN_COUNT; p++)
			with_flops += variant_at(i)->flops &&
				      (variant_at(i)->patterns & PATTERN_BIT(p));
	snprintf(expect, sizeof(expect), "\"n\": %d", with_flops);
	run(o, "query", "--db", db, "--json",
	    "SELECT count(*) AS n FROM results WHERE task = 'speed' AND latency_ms > 0 "
	    "AND peak_fraction > 0 AND rss_bytes > 0", NULL);
	assert_int_equal(o->status, 0);
	assert_true(with_flops >= 10);	/* vanilla, flash and local at least */
	assert_non_null(strstr(o->out, expect));
	/*
	 * --repeats 2 --min-time 0 over the default 3 rounds: each visit's share is one timed
	 * call (2 / 3 rounded up), so one per round and speed cell, no more; three rounds,
	 * and up to ROUNDS_MAX_EXTRA more where single calls differed by more than the limit
	 */
	snprintf(sql, sizeof(sql), "SELECT min(k = r) AS one_each, min(r) AS least, max(r) <= %d"
		 " AS bounded FROM (SELECT count(*) AS k, count(DISTINCT round) AS r FROM samples s"
		 " JOIN cells c ON c.id = s.cell_id WHERE c.task = 'speed' GROUP BY cell_id)",
		 3 + ROUNDS_MAX_EXTRA);
	run(o, "query", "--db", db, "--json", sql, NULL);
	assert_int_equal(o->status, 0);
	assert_non_null(strstr(o->out, "\"one_each\": 1"));
	assert_non_null(strstr(o->out, "\"least\": 3"));
	assert_non_null(strstr(o->out, "\"bounded\": 1"));
	run(o, "query", "--db", db, "--csv", "SELECT DISTINCT rounds, omp_wait_policy FROM runs",
	    NULL);
	assert_int_equal(o->status, 0);
	assert_non_null(strstr(o->out, "\r\n3,passive\r\n"));
	run(o, "query", "--db", db, "SELECT count(*) FROM samples", NULL);
	assert_int_equal(o->status, 0);
	free(o);
}

/*
 * A run records the commit the binary was built from (or "unknown" outside a git
 * checkout, never nothing) and the flags that shaped its code, not the build type's name.
 */
static void test_a_run_records_the_commit_and_the_compiler_flags(void **state)
{
	struct outcome *o = malloc(sizeof(*o));

	(void)state;
	run(o, "--version", NULL);
	assert_int_equal(o->status, 0);
	assert_non_null(strstr(o->out, "attnbench "));
	assert_null(strstr(o->out, "()"));
	run(o, "query", "--db", db, "--csv", "SELECT count(*) FROM runs WHERE length(git_commit) > 0"
	    " AND cflags LIKE '-O%' AND cflags NOT LIKE '%release%'", NULL);
	assert_int_equal(o->status, 0);
	assert_non_null(strstr(o->out, "\r\n1\r\n"));
	free(o);
}

/* Runs one speed cell into a new database; o->out gets its run's threads and warnings. */
static void run_one_speed_cell(struct outcome *o, const char *name)
{
	const char *path = path_in_tmp(name);

	run(o, "run", "--variants", "vanilla", "--tasks", "speed", "--patterns", "ns",
	    "--lengths", "64", "--dims", "16", "--heads", "1", "--repeats", "2", "--min-time",
	    "0", "--db", path, "-q", NULL);
	assert_int_equal(o->status, 0);
	run(o, "query", "--db", path, "--csv", "SELECT threads, ifnull(warnings, '') FROM runs",
	    NULL);
	assert_int_equal(o->status, 0);
}

/*
 * An output never replaces a database: export onto its own database (also through a
 * symbolic link) or onto another one, and eval onto a database, are refused with exit 2
 * and every database stays byte for byte; a good export replaces its file whole.
 */
static void test_outputs_never_replace_a_database(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	const char *link_path = path_in_tmp("link-to-results.db");
	const char *other = path_in_tmp("other.db");
	const char *csv = path_in_tmp("whole.csv");
	char *before, *after, *other_before, *other_after;
	long len = read_file(db, &before), other_len;

	float x[8 * 4] = { 0 };
	int64_t shape[4] = { 1, 1, 8, 4 };
	sqlite3 *h;

	(void)state;
	/* another database, which no output may replace either */
	unlink(other);
	assert_int_equal(sqlite3_open(other, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, "CREATE TABLE t (x)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	other_len = read_file(other, &other_before);
	for (int i = 0; i < 3; i++)
		assert_int_equal(npy_write(path_in_tmp((const char *[]){ "tq.npy", "tk.npy",
									 "tv.npy" }[i]),
					   x, 4, shape), 0);
	unlink(link_path);
	assert_int_equal(symlink(db, link_path), 0);
	run(o, "export", "--csv", db, "--db", db, NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->err, "the database itself"));
	run(o, "export", "--csv", link_path, "--db", db, NULL);
	assert_int_equal(o->status, 2);
	run(o, "export", "--csv", other, "--db", db, NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->err, "a database"));
	run(o, "eval", "vanilla", "--pattern", "ns", "--q", path_in_tmp("tq.npy"), "--k",
	    path_in_tmp("tk.npy"), "--v", path_in_tmp("tv.npy"), "--out", db, NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->err, "it is a database"));
	assert_int_equal(read_file(db, &after), len);
	assert_memory_equal(before, after, (size_t)len);
	assert_int_equal(read_file(other, &other_after), other_len);
	assert_memory_equal(other_before, other_after, (size_t)other_len);
	/* a good export: the file is whole, and nothing is left beside it */
	run(o, "export", "--csv", csv, "--db", db, NULL);
	assert_int_equal(o->status, 0);
	run(o, "export", "--csv", csv, "--db", db, NULL);
	assert_int_equal(o->status, 0);
	{
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "test $(ls %s.* 2>/dev/null | wc -l) -eq 0", csv);
		assert_int_equal(system(cmd), 0);
	}
	free(before);
	free(after);
	free(other_before);
	free(other_after);
	free(o);
}

/* ---- interruption and resume ---- */

/*
 * Untimed cells (fidelity) and timed ones (speed, three rounds): a kill lands among
 * cells of both kinds, or between the rounds of timed ones.
 */
static const char resume_suite[] =
	"task,variants,patterns,lengths,dims,heads,kv_heads,batch,regimes\n"
	"fidelity,vanilla flash linear local,ns cs,96x64,16,2,,1,gaussian local\n"
	"speed,vanilla flash linear,ns cs,64 128,16,2,,1,\n";

/* Every key of the run's cells, sorted, one per line (duplicates kept), into o->out. */
static void cell_keys(struct outcome *o, const char *db_path, const char *run_id)
{
	char sql[512];

	snprintf(sql, sizeof(sql), "SELECT variant, task, pattern, ifnull(regime, ''), n, m, d,"
		 " heads, kv_heads, batch, params, seed FROM cells WHERE run_id = %s ORDER BY"
		 " 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12", run_id);
	run(o, "query", "--db", db_path, "--csv", sql, NULL);
	assert_int_equal(o->status, 0);
}

/* The number of cells stored in db_path so far, read while a run writes it. */
static int cells_stored(const char *db_path)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	int n = 0;

	if (sqlite3_open_v2(db_path, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		sqlite3_close(h);
		return 0;
	}
	sqlite3_busy_timeout(h, 2000);
	if (sqlite3_prepare_v2(h, "SELECT count(*) FROM cells", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return n;
}

/* Waits (up to a minute) until db_path holds at least n cells; false if it never does. */
static bool wait_for_cells(const char *db_path, int n)
{
	for (int i = 0; i < 6000; i++) {
		if (cells_stored(db_path) >= n)
			return true;
		usleep(10000);
	}
	return false;
}

/* The reference: the same command, never interrupted, and its cell keys. */
static char *uninterrupted_keys(void)
{
	struct outcome *o = malloc(sizeof(*o));
	const char *ref = path_in_tmp("resume-ref.db");
	char *keys;

	write_text(path_in_tmp("resume.csv"), resume_suite);
	run(o, "run", "--suite", path_in_tmp("resume.csv"), "--db", ref, "--repeats", "3",
	    "--min-time", "0.02", "--threads", "1", "-q", NULL);
	assert_int_equal(o->status, 0);
	cell_keys(o, ref, "1");
	keys = strdup(o->out);
	free(o);
	return keys;
}

/*
 * Checks that run 1 of db_path is complete, whole (PRAGMA integrity_check) and holds
 * exactly the cells of the uninterrupted run, every timed one with its three rounds.
 */
static void assert_same_cells(struct outcome *o, const char *db_path, const char *expected)
{
	run(o, "query", "--db", db_path, "--csv", "SELECT status FROM runs WHERE id = 1", NULL);
	assert_non_null(strstr(o->out, "complete"));
	run(o, "query", "--db", db_path, "--csv", "SELECT count(*) FROM cells c WHERE"
	    " c.task = 'speed' AND (SELECT count(DISTINCT round) FROM samples s WHERE"
	    " s.cell_id = c.id) < 3", NULL);
	assert_non_null(strstr(o->out, "\r\n0\r\n"));
	cell_keys(o, db_path, "1");
	assert_string_equal(o->out, expected);
	{
		sqlite3 *h;
		sqlite3_stmt *st;

		assert_int_equal(sqlite3_open_v2(db_path, &h, SQLITE_OPEN_READONLY, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
		sqlite3_finalize(st);
		sqlite3_close(h);
	}
}

/*
 * Two runs writing one database at once both finish, each with all its cells, and query
 * and report read the database while they write it.
 */
static void test_two_runs_share_a_database_while_it_is_read(void **state)
{
	struct outcome *o = malloc(sizeof(*o)), *second = malloc(sizeof(*second));
	const char *db_path = path_in_tmp("shared.db");
	char scratch[600];
	pid_t a, b;

	(void)state;
	write_text(path_in_tmp("resume.csv"), resume_suite);
	a = start("run", "--suite", path_in_tmp("resume.csv"), "--db", db_path, "--repeats", "3",
		  "--min-time", "0.02", "--threads", "1", "-q", NULL);
	/* the second writer reports into a scratch folder of its own */
	snprintf(scratch, sizeof(scratch), "%s/second", tmpdir);
	mkdir(scratch, 0755);
	assert_true(wait_for_cells(db_path, 1));
	b = start_binary_in(scratch, "run", "--suite", path_in_tmp("resume.csv"), "--db", db_path,
			    "--repeats", "3", "--min-time", "0.02", "--threads", "1", "-q", NULL);
	for (int i = 0; i < 5; i++) {
		run(o, "query", "--db", db_path, "--csv", "SELECT count(*) FROM cells", NULL);
		assert_int_equal(o->status, 0);
		run(o, "report", "--db", db_path, "--run", "1", NULL);
		assert_true(o->status == 0 || strstr(o->err, "no ") != NULL);
		usleep(100000);
	}
	finish_binary(o, a, tmpdir);
	assert_int_equal(o->status, 0);
	finish_binary(second, b, scratch);
	assert_int_equal(second->status, 0);
	run(o, "query", "--db", db_path, "--csv", "SELECT run_id, count(*) FROM cells GROUP BY"
	    " run_id ORDER BY run_id", NULL);
	assert_string_equal(o->out, "run_id,count(*)\r\n1,28\r\n2,28\r\n");
	free(second);
	free(o);
}

/*
 * kill -9 of the driver mid-run: the run shows as interrupted (its driver is gone), and
 * `run --resume` finishes it with exactly the cells of an uninterrupted run.
 */
static void test_a_killed_run_resumes_to_the_same_cells(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	const char *db_path = path_in_tmp("resume-kill.db");
	char *expected = uninterrupted_keys();
	int before;
	pid_t pid;

	(void)state;
	pid = start("run", "--suite", path_in_tmp("resume.csv"), "--db", db_path, "--repeats",
		    "3", "--min-time", "0.02", "--threads", "1", "-q", NULL);
	assert_true(wait_for_cells(db_path, 10));
	kill(pid, SIGKILL);
	finish_binary(o, pid, tmpdir);
	assert_int_equal(o->status, -1);
	before = cells_stored(db_path);
	assert_true(before >= 10);
	run(o, "list", "runs", "--db", db_path, NULL);
	assert_non_null(strstr(o->out, "interrupted"));
	run(o, "run", "--resume", "--db", db_path, "-q", NULL);
	assert_int_equal(o->status, 0);
	assert_same_cells(o, db_path, expected);
	/* nothing left to resume; a complete run is refused with one line */
	run(o, "run", "--resume", "1", "--db", db_path, NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->err, "complete"));
	run(o, "run", "--resume", "--suite", "quick", "--db", db_path, NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->err, "--resume takes only"));
	free(expected);
	free(o);
}

static int compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The data lines of a CSV (its header dropped) into lines[], sorted; their count. */
static int sorted_lines(char *csv, char **lines, int max)
{
	int n = 0;

	for (char *line = strtok(strstr(csv, "\r\n") + 2, "\r\n"); line && n < max;
	     line = strtok(NULL, "\r\n"))
		lines[n++] = line;
	qsort(lines, (size_t)n, sizeof(*lines), compare_strings);
	return n;
}

/*
 * run --shard K/N: the shards of a suite hold exactly its cells, one shard's run each with
 * the unsharded run's suite identity; a shard killed mid-run and started again with the
 * same command is resumed, and once complete, the command does nothing.
 */
static void test_shards_hold_the_suite_s_cells_and_resume_by_themselves(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	char *expected = uninterrupted_keys(), *got = NULL, *want[64], *have[64], db_path[3][300];
	char suite_id[80] = "", *shard_ids[3], *header;
	size_t got_len = 0;
	int n_want, n_have;
	pid_t pid;

	(void)state;
	run(o, "query", "--db", path_in_tmp("resume-ref.db"), "--csv",
	    "SELECT suite_id FROM runs WHERE id = 1", NULL);
	snprintf(suite_id, sizeof(suite_id), "%s", strstr(o->out, "\r\n") + 2);
	assert_int_equal(strlen(suite_id), 64 + 2);	/* and its CRLF */
	for (int k = 0; k < 3; k++) {
		char shard[8];

		snprintf(db_path[k], sizeof(db_path[k]), "%s/shard-%d.db", tmpdir, k + 1);
		snprintf(shard, sizeof(shard), "%d/3", k + 1);
		unlink(db_path[k]);
		if (k == 1) {	/* killed after its first cells, then the same command again */
			pid = start("run", "--suite", path_in_tmp("resume.csv"), "--db",
				    db_path[k], "--repeats", "3", "--min-time", "0.02", "--threads",
				    "1", "--shard", shard, "-q", NULL);
			assert_true(wait_for_cells(db_path[k], 2));
			kill(pid, SIGKILL);
			finish_binary(o, pid, tmpdir);
		}
		run(o, "run", "--suite", path_in_tmp("resume.csv"), "--db", db_path[k],
		    "--repeats", "3", "--min-time", "0.02", "--threads", "1", "--shard", shard,
		    "-q", NULL);
		assert_int_equal(o->status, 0);
		run(o, "run", "--suite", path_in_tmp("resume.csv"), "--db", db_path[k],
		    "--repeats", "3", "--min-time", "0.02", "--threads", "1", "--shard", shard,
		    NULL);
		assert_int_equal(o->status, 0);
		assert_non_null(strstr(o->out, "complete: nothing to do"));
		run(o, "query", "--db", db_path[k], "--csv", "SELECT count(*), min(status),"
		    " min(suite_id), min(shard), min(shards) FROM runs", NULL);
		shard_ids[k] = strdup(strstr(o->out, "\r\n") + 2);
		assert_non_null(strstr(shard_ids[k], "1,complete,"));
		assert_int_equal(strncmp(shard_ids[k] + strlen("1,complete,"), suite_id, 64), 0);
		cell_keys(o, db_path[k], "1");
		assert_int_equal(o->status, 0);
		{
			char *body = strstr(o->out, "\r\n") + 2;
			size_t len = strlen(body);

			got = realloc(got, got_len + len + 1);
			memcpy(got + got_len, body, len + 1);
			got_len += len;
		}
		free(shard_ids[k]);
	}
	/* the shards' lines under the reference's header, then both sorted */
	header = malloc(strlen(expected) + got_len + 1);
	assert_non_null(header);
	snprintf(header, strlen(expected) + 1, "%s", expected);
	strstr(header, "\r\n")[2] = '\0';
	strcat(header, got);
	free(got);
	got = header;
	n_want = sorted_lines(expected, want, 64);
	n_have = sorted_lines(got, have, 64);
	assert_int_equal(n_have, n_want);
	assert_true(n_want > 20);
	for (int i = 0; i < n_want; i++)
		assert_string_equal(have[i], want[i]);
	free(got);
	free(expected);
	free(o);
}

/*
 * SIGTERM (a scheduler's first signal): the cell running finishes, the run is marked
 * interrupted, the driver says how to resume and exits 130; the resume finishes it.
 */
static void test_a_terminated_run_says_how_to_resume_and_does(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	const char *db_path = path_in_tmp("resume-term.db");
	char *expected = uninterrupted_keys();
	pid_t pid;

	(void)state;
	pid = start("run", "--suite", path_in_tmp("resume.csv"), "--db", db_path, "--repeats",
		    "3", "--min-time", "0.02", "--threads", "1", "-q", NULL);
	assert_true(wait_for_cells(db_path, 4));
	kill(pid, SIGTERM);
	finish_binary(o, pid, tmpdir);
	assert_int_equal(o->status, 130);
	assert_non_null(strstr(o->err, "attnbench run --resume 1 --db "));
	run(o, "query", "--db", db_path, "--csv", "SELECT status FROM runs", NULL);
	assert_non_null(strstr(o->out, "interrupted"));
	run(o, "run", "--resume", "1", "--db", db_path, "-q", NULL);
	assert_int_equal(o->status, 0);
	assert_same_cells(o, db_path, expected);
	free(expected);
	free(o);
}

/*
 * The harness settles what makes timings stable itself: OpenMP waits passively unless
 * the user chose otherwise (then the run records a warning), and the default thread count
 * is the CPUs the process may use (pinned to one CPU: one thread).
 */
static void test_a_run_waits_passively_on_the_cpus_it_may_use(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	const char *set = getenv("OMP_WAIT_POLICY");
	char *saved = set ? strdup(set) : NULL;
	cpu_set_t all, one;

	(void)state;
	assert_int_equal(sched_getaffinity(0, sizeof(all), &all), 0);
	CPU_ZERO(&one);
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &all)) {
			CPU_SET(cpu, &one);
			break;
		}
	unsetenv("OMP_WAIT_POLICY");
	assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
	run_one_speed_cell(o, "pinned.db");
	assert_int_equal(sched_setaffinity(0, sizeof(all), &all), 0);
	assert_non_null(strstr(o->out, "\r\n1,"));
	assert_null(strstr(o->out, "waits actively"));

	setenv("OMP_WAIT_POLICY", "active", 1);
	run_one_speed_cell(o, "active.db");
	assert_non_null(strstr(o->out, "OpenMP waits actively (OMP_WAIT_POLICY=active)"));
	if (saved)
		setenv("OMP_WAIT_POLICY", saved, 1);
	else
		unsetenv("OMP_WAIT_POLICY");
	free(saved);
	free(o);
}

/* Runs one speed cell with OPENBLAS_CORETYPE=core; o->out gets its run's BLAS and warnings. */
static void run_with_blas_core(struct outcome *o, const char *core)
{
	char name[64];
	const char *path;

	snprintf(name, sizeof(name), "core-%s.db", core);
	path = path_in_tmp(name);
	setenv("OPENBLAS_CORETYPE", core, 1);
	run(o, "run", "--variants", "vanilla", "--tasks", "speed", "--patterns", "ns",
	    "--lengths", "64", "--dims", "16", "--heads", "1", "--repeats", "2", "--min-time",
	    "0", "--db", path, "-q", NULL);
	unsetenv("OPENBLAS_CORETYPE");
	assert_int_equal(o->status, 0);
	run(o, "query", "--db", path, "--csv", "SELECT blas_config, ifnull(warnings, '') "
	    "FROM runs", NULL);
	assert_int_equal(o->status, 0);
}

/*
 * A run whose OpenBLAS drives a CPU with AVX-512 through its Haswell (AVX2) kernels says
 * that its SGEMM peak understates the machine; with the AVX-512 kernels, or on a CPU
 * without AVX-512, it does not. Needs an OpenBLAS that chooses its kernels at run time.
 */
static void test_a_run_warns_when_openblas_kernels_are_narrower_than_the_cpu(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	const char *warning = "OpenBLAS runs its Haswell kernels, without AVX-512";
	bool avx512 = __builtin_cpu_supports("avx512f");

	(void)state;
	if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
		free(o);
		skip();
	}
	run_with_blas_core(o, "Haswell");
	if (!strstr(o->out, "DYNAMIC_ARCH") || !strstr(o->out, "(core Haswell)")) {
		free(o);
		skip();		/* this OpenBLAS has one set of kernels, chosen when built */
	}
	if (avx512) {
		assert_non_null(strstr(o->out, warning));
		assert_non_null(strstr(o->out, "OPENBLAS_CORETYPE=SkylakeX selects"));
		run_with_blas_core(o, "SkylakeX");
		assert_non_null(strstr(o->out, "(core SkylakeX)"));
	}
	assert_null(strstr(o->out, "without AVX-512"));
	free(o);
}

/* Each bad command exits 2 with one line on stderr and leaves the database as it was. */
static void test_bad_input_exits_2_and_leaves_the_database_unchanged(void **state)
{
	/*
	 * Placeholders: *_SUITE, BAD_NPY, BAD_IMPORT, NOT_SQLITE, NEWER_DB: files written
	 * below; MAIN_DB: the database; NO_DB: do not add "--db MAIN_DB" (the command takes
	 * its database otherwise, or names another).
	 */
	static const char *const bad[][14] = {
		{ "run", "--variants", "nope" },
		{ "run", "--variants", "local", "--patterns", "nc" },
		{ "run", "--patterns", "sideways" },
		{ "run", "--set", "local.window=0" },
		{ "run", "--set", "local.window=abc" },
		{ "run", "--set", "flash.colour=3" },
		{ "run", "--variants", "s4d", "--set", "s4d.state=3" },
		{ "run", "--variants", "longshort", "--set", "longshort.window=0" },
		{ "run", "--lengths", "0" },
		{ "run", "--lengths", "64,huge" },
		{ "run", "--heads", "8", "--kv-heads", "3" },
		{ "run", "--threads", "0" },
		{ "run", "--seed", "-1" },
		{ "run", "--tasks", "sorting" },
		{ "run", "--bogus" },
		{ "run", "--suite", "/nonexistent/suite.csv" },
		{ "run", "--suite", "BAD_SUITE" },
		{ "run", "--rounds", "0" },
		{ "run", "--rounds", "2.5" },
		{ "run", "--rounds", "21" },
		{ "run", "--suite", "TRUNCATED_SUITE" },
		{ "query", "DELETE FROM runs" },
		{ "query", "DROP TABLE cells" },
		{ "query", "SELECT 1; DELETE FROM runs" },
		{ "query", "SELECT * FROM no_such_table" },
		{ "compare", "nope" },
		{ "compare", "--baseline", "nope" },
		{ "compare", "--run", "0" },
		{ "compare", "--run", "999" },
		{ "compare", "--run", "1x" },
		{ "compare", "--against", "999" },
		{ "compare", "--threshold", "abc" },
		{ "compare", "--threshold", "1.5" },
		{ "compare", "--threshold", "nan" },
		{ "compare", "--accuracy-threshold", "-0.1" },
		{ "compare", "--csv", "--markdown" },
		{ "compare", "--tasks", "sorting" },
		{ "compare", "--tasks", "causality" },
		{ "compare", "--patterns", "sideways" },
		{ "compare", "--force" },
		{ "compare", "--lengths", "64" },
		{ "compare", "--bogus" },
		{ "compare", "--baseline", "flash", "--against", "1" },
		{ "compare", "--aa", "--variant", "nope" },
		{ "compare", "--aa", "--lengths", "0" },
		{ "compare", "--aa", "--lengths", "64", "--repeats", "0" },
		{ "compare", "--aa", "--run", "1" },
		{ "compare", "--aa", "flash" },
		{ "compare", "--aa", "--variant", "local", "--patterns", "nc" },
		/* the command line */
		{ "frobnicate", "NO_DB" },
		{ "run", "--lengths" },
		{ "run", "--lengths", "nan" },
		{ "run", "--lengths", "-64" },
		{ "run", "--lengths", "99999999999" },
		{ "run", "--dims", "0" },
		{ "run", "--batch", "1e9" },
		{ "run", "--repeats", "x" },
		{ "run", "--time-limit", "nan" },
		{ "run", "--mem-limit", "-1" },
		{ "run", "--variants", "vanilla", "--tasks", "speed", "--patterns", "ns",
		  "--lengths", "1048576", "--dims", "1024", "--heads", "64" },
		{ "run", "--set", "nope.window=3" },
		{ "run", "--set", "local.window" },
		{ "run", "--set", "local.window=1e400" },
		{ "run", "--set", "local.window=7.5" },
		{ "run", "--resume", "99" },
		/* suite files */
		{ "run", "--suite", "EMPTY_SUITE" },
		{ "run", "--suite", "JUNK_SUITE" },
		{ "run", "--suite", "LONG_SUITE" },
		{ "run", "--suite", "NOTASK_SUITE" },
		{ "run", "--suite", "TYPES_SUITE" },
		/* tensors, CSV and databases from elsewhere */
		{ "eval", "vanilla", "--pattern", "ns", "--q", "BAD_NPY", "--k", "BAD_NPY", "--v",
		  "BAD_NPY", "--out", "OUT_NPY", "NO_DB" },
		{ "run", "--inputs", "BAD_NPY,BAD_NPY,BAD_NPY" },
		{ "run", "--inputs", "BAD_NPY,BAD_NPY" },
		{ "run", "--inputs", "/proc" },
		{ "run", "--inputs", "BAD_NPY,BAD_NPY,BAD_NPY", "--lengths", "64" },
		{ "run", "--inputs", "BAD_NPY,BAD_NPY,BAD_NPY", "--tasks", "speed" },
		{ "run", "--plugin", "BAD_NPY" },
		{ "run", "--plugin", "/nonexistent.so" },
		{ "import", "--csv", "BAD_IMPORT" },
		{ "import", "--csv", "BAD_ROUNDS" },
		{ "import", "--csv", "NOT_SQLITE" },
		{ "merge", "MAIN_DB", "NOT_SQLITE", "NO_DB" },
		{ "merge", "MAIN_DB", "NEWER_DB", "NO_DB" },
		{ "merge", "MAIN_DB", "MAIN_DB", "NO_DB" },
		{ "query", "SELECT 1", "--db", "NOT_SQLITE", "NO_DB" },
		{ "query", "SELECT 1", "--db", "NEWER_DB", "NO_DB" },
		{ "report", "--db", "NOT_SQLITE", "NO_DB" },
		{ "list", "runs", "--db", "NEWER_DB", "NO_DB" },
		{ "run", "--suite", "quick", "--db", "NEWER_DB", "NO_DB" },
		{ "run", "--suite", "quick", "--db", "TMPDIR", "NO_DB" },
		{ "run", "--suite", "quick", "--db", "/proc/attnbench.db", "NO_DB" },
		{ "export", "--csv", "MAIN_DB" },
	};
	/* a 10 MB line: the suite reader must refuse it, not choke */
	char *long_suite = malloc(10 << 20);
	struct outcome *o = malloc(sizeof(*o));
	char *before, *after;
	long len_before = read_file(db, &before);

	static const struct {
		const char *name, *file;
	} files[] = {
		{ "BAD_SUITE", "bad.csv" }, { "TRUNCATED_SUITE", "truncated.csv" },
		{ "EMPTY_SUITE", "empty.csv" }, { "JUNK_SUITE", "junk.csv" },
		{ "LONG_SUITE", "long.csv" }, { "NOTASK_SUITE", "notask.csv" },
		{ "TYPES_SUITE", "types.csv" }, { "BAD_NPY", "bad.npy" }, { "OUT_NPY", "o.npy" },
		{ "BAD_IMPORT", "bad-import.csv" }, { "NOT_SQLITE", "not-sqlite.db" },
		{ "NEWER_DB", "newer.db" }, { "BAD_ROUNDS", "bad-rounds.csv" },
	};
	char *newer_before, *newer_after, *text_before, *text_after;
	long newer_len, text_len;
	sqlite3 *h;

	(void)state;
	write_text(path_in_tmp("bad.csv"), "task,lengths\nspeed,64\nsorting,64\n");
	write_text(path_in_tmp("truncated.csv"), "task,lengths\nspeed,\"64");
	write_text(path_in_tmp("empty.csv"), "");
	write_text(path_in_tmp("junk.csv"), "\x7f\x45\x4c\x46\x02\x01\x01\xff\xfe,\x80\n\x01");
	write_text(path_in_tmp("notask.csv"), "variants,lengths\nvanilla,64\n");
	write_text(path_in_tmp("types.csv"), "task,lengths,dims\nspeed,abc,sixty\n");
	assert_non_null(long_suite);
	memcpy(long_suite, "task,lengths\nspeed,", 19);
	memset(long_suite + 19, '6', (10 << 20) - 21);
	long_suite[(10 << 20) - 2] = '\n';
	long_suite[(10 << 20) - 1] = '\0';
	write_text(path_in_tmp("long.csv"), long_suite);
	free(long_suite);
	write_text(path_in_tmp("bad.npy"), "\x93NUMPY\x01\x00\x10\x00{'descr': '<f8'");
	write_text(path_in_tmp("bad-import.csv"), "run_started,run_status,variant,task,pattern,"
		   "n,m,d,heads,kv_heads,batch,params,seed,threads,status,finished\r\n"
		   "2026-01-01,complete,vanilla,speed,ns,8,8,4,1,1,1,{},0,1,weird,2026-01-01\r\n");
	/* two samples, one round: a round for every sample or none */
	write_text(path_in_tmp("bad-rounds.csv"), "run_started,run_status,variant,task,pattern,"
		   "n,m,d,heads,kv_heads,batch,params,seed,threads,status,finished,samples_s,"
		   "sample_rounds\r\n2026-01-01,complete,vanilla,speed,ns,8,8,4,1,1,1,{},0,1,ok,"
		   "2026-01-01,0.1 0.2,1\r\n");
	write_text(path_in_tmp("not-sqlite.db"), "this is not a database\n");
	unlink(path_in_tmp("newer.db"));
	assert_int_equal(sqlite3_open(path_in_tmp("newer.db"), &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, "CREATE TABLE t (x); PRAGMA user_version = 99", NULL,
				      NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	newer_len = read_file(path_in_tmp("newer.db"), &newer_before);
	text_len = read_file(path_in_tmp("not-sqlite.db"), &text_before);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *argv[18] = { NULL };
		int argc = 0;
		bool own_db = false;

		for (int j = 0; j < 14 && bad[i][j]; j++) {
			const char *a = bad[i][j];

			if (!strcmp(a, "NO_DB")) {
				own_db = true;
				continue;
			}
			for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++)
				if (!strcmp(a, files[f].name))
					a = path_in_tmp(files[f].file);
			argv[argc++] = !strcmp(a, "MAIN_DB") ? db : !strcmp(a, "TMPDIR") ? tmpdir : a;
		}
		if (!own_db) {
			argv[argc++] = "--db";
			argv[argc++] = db;
		}
		run(o, argv[0], argv[1], argv[2], argv[3], argv[4], argv[5], argv[6], argv[7],
		    argv[8], argv[9], argv[10], argv[11], argv[12], argv[13], argv[14], argv[15],
		    NULL);
		if (o->status != 2)
			fail_msg("'%s %s %s' exited %d: %s", argv[0], argv[1], argv[2] ? argv[2] : "",
				 o->status, o->err);
		assert_true(strncmp(o->err, "attnbench: ", 11) == 0);
		/* exactly one line */
		assert_non_null(strchr(o->err, '\n'));
		assert_int_equal(strchr(o->err, '\n')[1], '\0');
		assert_int_equal(read_file(db, &after), len_before);
		assert_memory_equal(before, after, (size_t)len_before);
		free(after);
		/* the other databases are not touched either */
		assert_int_equal(read_file(path_in_tmp("newer.db"), &newer_after), newer_len);
		assert_memory_equal(newer_before, newer_after, (size_t)newer_len);
		free(newer_after);
		assert_int_equal(read_file(path_in_tmp("not-sqlite.db"), &text_after), text_len);
		assert_memory_equal(text_before, text_after, (size_t)text_len);
		free(text_after);
	}
	/* none created a database where it should not */
	assert_int_equal(access("/proc/attnbench.db", F_OK), -1);
	assert_int_equal(access(path_in_tmp("o.npy"), F_OK), -1);
	free(newer_before);
	free(text_before);
	free(before);
	free(o);
}

static void test_check_passes_the_exact_variants_and_names_its_checks(void **state)
{
	struct outcome *o = malloc(sizeof(*o));

	(void)state;
	run(o, "check", "vanilla", "flash", "--threads", "1", NULL);
	assert_int_equal(o->status, 0);
	assert_non_null(strstr(o->out, "cs decode"));
	assert_non_null(strstr(o->out, "cc causality"));
	assert_non_null(strstr(o->out, "14 passed, 0 failed"));
	run(o, "check", "nope", NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->err, "unknown variant 'nope'"));
	free(o);
}

static void test_query_and_list_refuse_a_missing_database(void **state)
{
	struct outcome *o = malloc(sizeof(*o));

	(void)state;
	run(o, "query", "--db", path_in_tmp("missing.db"), "SELECT 1", NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->err, "cannot open database"));
	assert_int_equal(access(path_in_tmp("missing.db"), F_OK), -1);	/* not created */
	run(o, "list", "runs", "--db", path_in_tmp("missing.db"), NULL);
	assert_int_equal(o->status, 2);
	free(o);
}

static void test_eval_writes_what_exact_attention_gives(void **state)
{
	const int64_t qshape[4] = { 1, 4, 33, 16 }, kvshape[4] = { 1, 2, 20, 16 };
	size_t nq = 4 * 33 * 16, nkv = 2 * 20 * 16;
	float *q = malloc(nq * 4), *k = malloc(nkv * 4), *v = malloc(nkv * 4);
	double *ref = malloc(nq * sizeof(double)), err = 0, norm = 0;
	struct outcome *o = malloc(sizeof(*o));
	struct npy_array out = { 0 };
	char why[256];

	(void)state;
	for (size_t i = 0; i < nq; i++)
		q[i] = (float)sin(0.37 * (double)i);
	for (size_t i = 0; i < nkv; i++) {
		k[i] = (float)cos(0.11 * (double)i);
		v[i] = (float)sin(0.05 * (double)i + 1);
	}
	assert_int_equal(npy_write(path_in_tmp("q.npy"), q, 4, qshape), 0);
	assert_int_equal(npy_write(path_in_tmp("k.npy"), k, 4, kvshape), 0);
	assert_int_equal(npy_write(path_in_tmp("v.npy"), v, 4, kvshape), 0);
	run(o, "eval", "flash", "--pattern", "cc", "--q", path_in_tmp("q.npy"), "--k",
	    path_in_tmp("k.npy"), "--v", path_in_tmp("v.npy"), "--out", path_in_tmp("o.npy"),
	    "--threads", "1", NULL);
	assert_int_equal(o->status, 0);
	assert_int_equal(npy_read(path_in_tmp("o.npy"), &out, why, sizeof(why)), 0);
	assert_int_equal(out.ndim, 4);
	assert_int_equal(out.count, nq);

	struct attn_problem p = { .batch = 1, .heads = 4, .kv_heads = 2, .n = 33, .m = 20,
				  .d = 16, .pattern = ATTN_CC };
	reference_attention(&p, q, k, v, ref);
	for (size_t i = 0; i < nq; i++) {
		err += (out.data[i] - ref[i]) * (out.data[i] - ref[i]);
		norm += ref[i] * ref[i];
	}
	assert_true(sqrt(err / norm) < 1e-5);

	/* shapes that do not fit, and a file that is not .npy */
	run(o, "eval", "vanilla", "--pattern", "ns", "--q", path_in_tmp("q.npy"), "--k",
	    path_in_tmp("k.npy"), "--v", path_in_tmp("v.npy"), "--out", path_in_tmp("x.npy"),
	    NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->err, "N = M"));
	run(o, "eval", "local", "--pattern", "nc", "--q", path_in_tmp("q.npy"), "--k",
	    path_in_tmp("k.npy"), "--v", path_in_tmp("v.npy"), "--out", path_in_tmp("x.npy"),
	    NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->err, "does not support pattern 'nc'"));
	run(o, "eval", "vanilla", "--pattern", "nc", "--q", path_in_tmp("tiny.csv"), "--k",
	    path_in_tmp("k.npy"), "--v", path_in_tmp("v.npy"), "--out", path_in_tmp("x.npy"),
	    NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->err, "cannot read --q"));
	npy_release(&out);
	free(q);
	free(k);
	free(v);
	free(ref);
	free(o);
}

static void copy_file(const char *from, const char *to)
{
	char *data;
	long len = read_file(from, &data);
	FILE *f = fopen(to, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	free(data);
}

static sqlite3 *open_db(const char *path)
{
	sqlite3 *h;

	assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
	return h;
}

static void exec_sql(sqlite3 *h, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(h, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err);
}

static int64_t scalar(sqlite3 *h, const char *sql)
{
	sqlite3_stmt *st;
	int64_t x;

	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(h));
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	x = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return x;
}

/* Fills x with n values of a smooth pattern (phase a, rate b): inputs that are not the
 * harness's own regimes. */
static void fill_wave(float *x, size_t n, double a, double b)
{
	for (size_t i = 0; i < n; i++)
		x[i] = (float)(2 * sin(a + b * (double)i) + cos(0.3 * b * (double)i));
}

/* ||O - ref|| / ||ref|| of eval's output on the set's files (PREFIX q.npy, k.npy, v.npy)
 * against the fp64 oracle on the same tensors. */
static double eval_rel_err(const char *variant, const char *pattern,
			   const struct attn_problem *p, const float *q, const float *k,
			   const float *v, const char *set)
{
	size_t nq = (size_t)p->batch * p->heads * p->n * p->d;
	double *ref = malloc(nq * sizeof(*ref)), err = 0, norm = 0;
	struct outcome *o = malloc(sizeof(*o));
	struct npy_array out = { 0 };
	char qp[1100], kp[1100], vp[1100], why[256];

	snprintf(qp, sizeof(qp), "%sq.npy", set);
	snprintf(kp, sizeof(kp), "%sk.npy", set);
	snprintf(vp, sizeof(vp), "%sv.npy", set);
	run(o, "eval", variant, "--pattern", pattern, "--q", qp, "--k", kp, "--v", vp, "--out",
	    path_in_tmp("eval-out.npy"), "--threads", "1", NULL);
	assert_int_equal(o->status, 0);
	assert_int_equal(npy_read(path_in_tmp("eval-out.npy"), &out, why, sizeof(why)), 0);
	reference_attention(p, q, k, v, ref);
	for (size_t i = 0; i < nq; i++) {
		err += (out.data[i] - ref[i]) * (out.data[i] - ref[i]);
		norm += ref[i] * ref[i];
	}
	npy_release(&out);
	free(ref);
	free(o);
	return sqrt(err / norm);
}

/*
 * run --inputs: every selected variant on the user's own tensors, two sets from a folder
 * (one self-shaped, one cross), regime npy:NAME, the files' SHA-256 stored; the error
 * stored for a variant is the one its output on those very tensors has (checked through
 * eval and the fp64 oracle here).
 */
static void test_run_inputs_measures_the_users_own_tensors(void **state)
{
	const int64_t qs[4] = { 1, 4, 40, 16 }, kvs[4] = { 1, 2, 40, 16 };
	const int64_t qc[4] = { 1, 2, 33, 8 }, kvc[4] = { 1, 1, 20, 8 };
	size_t nq = 4 * 40 * 16, nkv = 2 * 40 * 16;
	float *q = malloc(nq * 4), *k = malloc(nkv * 4), *v = malloc(nkv * 4);
	struct attn_problem p = { .batch = 1, .heads = 4, .kv_heads = 2, .n = 40, .m = 40,
				  .d = 16, .pattern = ATTN_NS };
	struct outcome *o = malloc(sizeof(*o));
	char dir[300], db[300], path[1000], sql[400], hex[80], cmd[900];
	sqlite3 *h;
	double stored, direct;

	(void)state;
	snprintf(dir, sizeof(dir), "%s", path_in_tmp("my-tensors"));
	snprintf(db, sizeof(db), "%s", path_in_tmp("inputs.db"));
	assert_int_equal(mkdir(dir, 0755), 0);
	fill_wave(q, nq, 0.1, 0.37);
	fill_wave(k, nkv, 0.7, 0.11);
	fill_wave(v, nkv, 1.3, 0.05);
	snprintf(path, sizeof(path), "%s/layer0_q.npy", dir);
	assert_int_equal(npy_write(path, q, 4, qs), 0);
	snprintf(path, sizeof(path), "%s/layer0_k.npy", dir);
	assert_int_equal(npy_write(path, k, 4, kvs), 0);
	snprintf(path, sizeof(path), "%s/layer0_v.npy", dir);
	assert_int_equal(npy_write(path, v, 4, kvs), 0);
	snprintf(path, sizeof(path), "%s/cross-q.npy", dir);
	assert_int_equal(npy_write(path, q, 4, qc), 0);
	snprintf(path, sizeof(path), "%s/cross-k.npy", dir);
	assert_int_equal(npy_write(path, k, 4, kvc), 0);
	snprintf(path, sizeof(path), "%s/cross-v.npy", dir);
	assert_int_equal(npy_write(path, v, 4, kvc), 0);

	run(o, "run", "--inputs", dir, "--variants", "vanilla,linear,local", "--db", db, "-q",
	    NULL);
	if (o->status != 0)
		fail_msg("run --inputs: %d %s", o->status, o->err);
	assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	/* layer0 on all four patterns, cross only where N != M may run; local self only */
	assert_int_equal(scalar(h, "SELECT count(*) FROM results WHERE regime = 'npy:layer0'"),
			 4 + 4 + 2);
	assert_int_equal(scalar(h, "SELECT count(*) FROM results WHERE regime = 'npy:cross'"),
			 2 + 2);
	assert_int_equal(scalar(h, "SELECT count(*) FROM results WHERE status <> 'ok'"
			 " OR task <> 'fidelity' OR n <> (CASE regime WHEN 'npy:cross' THEN 33"
			 " ELSE 40 END)"), 0);
	assert_int_equal(scalar(h, "SELECT count(*) FROM results WHERE rel_err > 1e-6 AND"
			 " variant = 'vanilla'"), 0);
	/* the stored error is the error on these tensors, not on generated ones */
	stored = 0;
	{
		sqlite3_stmt *st;

		assert_int_equal(sqlite3_prepare_v2(h, "SELECT rel_err FROM results WHERE"
			" variant = 'linear' AND pattern = 'ns' AND regime = 'npy:layer0'", -1,
			&st, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		stored = sqlite3_column_double(st, 0);
		sqlite3_finalize(st);
	}
	snprintf(path, sizeof(path), "%s/layer0_", dir);
	direct = eval_rel_err("linear", "ns", &p, q, k, v, path);
	assert_true(stored > 0.01);
	assert_true(fabs(stored - direct) <= 1e-6 * direct);
	/* each file's SHA-256, by coreutils */
	assert_int_equal(scalar(h, "SELECT count(*) FROM inputs"), 6);
	snprintf(cmd, sizeof(cmd), "sha256sum '%s/layer0_k.npy' | cut -c1-64 > '%s'", dir,
		 path_in_tmp("sha.txt"));
	assert_int_equal(system(cmd), 0);
	{
		FILE *f = fopen(path_in_tmp("sha.txt"), "r");

		assert_non_null(f);
		assert_int_equal(fscanf(f, "%64s", hex), 1);
		fclose(f);
	}
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM inputs WHERE name = 'layer0' AND"
		 " tensor = 'k' AND sha256 = '%s' AND path LIKE '%%/layer0_k.npy'", hex);
	assert_int_equal(scalar(h, sql), 1);
	sqlite3_close(h);
	run(o, "list", "runs", "--db", db, NULL);
	assert_non_null(strstr(o->out, "input layer0.k: "));
	assert_non_null(strstr(o->out, hex));

	/* Q and K that do not fit: one line, exit 2 */
	snprintf(path, sizeof(path), "%s/layer0_q.npy,%s/cross-k.npy,%s/cross-v.npy", dir, dir,
		 dir);
	run(o, "run", "--inputs", path, "--db", db, NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->err, "head dimension differs"));
	free(q);
	free(k);
	free(v);
	free(o);
}

/* Rows of mine.results (ids aside, with storage classes) that other.results lacks. */
static int64_t results_not_in_other(sqlite3 *h, const char *mine, const char *other)
{
	char sql[4096], cols[2048] = "";
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_prepare_v2(h, "SELECT name FROM pragma_table_info('results')"
					    " WHERE name NOT IN ('run_id', 'cell_id')", -1, &st,
					    NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);

		snprintf(cols + strlen(cols), sizeof(cols) - strlen(cols), "%s%s, typeof(%s)",
			 cols[0] ? ", " : "", name, name);
	}
	sqlite3_finalize(st);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM (SELECT %s FROM %s.results EXCEPT"
		 " SELECT %s FROM %s.results)", cols, mine, cols, other);
	return scalar(h, sql);
}

/*
 * export, then import into a fresh database, gives the same results view, provenance,
 * metrics, samples, trials and run metrics, with text that breaks naive CSV handling.
 */
static void test_export_and_import_round_trip_nasty_fields(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	const char *nasty = path_in_tmp("nasty.db"), *fresh = path_in_tmp("fresh.db");
	const char *csv = path_in_tmp("nasty.csv");
	char *before, *after, *long_reason, expect[512];
	sqlite3_stmt *st;
	sqlite3 *h;

	(void)state;
	copy_file(db, nasty);
	h = open_db(nasty);
	exec_sql(h, "UPDATE runs SET hostname = 'node-7, \"rack\" 3', warnings = "
		 "'=HYPERLINK(\"http://example.com\",\"x\")', suite = '+1', git_commit = '';"
		 "UPDATE cells SET reason = CASE id % 6"
		 " WHEN 0 THEN 'comma, \"quote\" and' || char(10) || 'newline' || char(13, 10)"
		 " WHEN 1 THEN 'naïve — 注意力 🙂'"
		 " WHEN 2 THEN '=1+2'"
		 " WHEN 3 THEN '''); DROP TABLE runs; --'"
		 " WHEN 4 THEN '' ELSE NULL END;"
		 "UPDATE cells SET regime = ' -spaced, ' WHERE regime IS NULL AND id % 2 = 0;"
		 "INSERT INTO trials SELECT id, 0, 1 FROM cells WHERE id % 3 = 0;"
		 "INSERT INTO trials SELECT id, 4, 0 FROM cells WHERE id % 3 = 0;"
		 "INSERT OR REPLACE INTO run_metrics VALUES (1, 'linear', 'ns', 'vanilla',"
		 " 'efficiency_length_time', 1877.25, 'tokens'), (1, 'local', 'cs', 'vanilla',"
		 " 'slope, \"fitted\"', NULL, '');");
	/* a very long field */
	long_reason = malloc(300001);
	for (int i = 0; i < 300000; i++)
		long_reason[i] = ",\"\n xy"[i % 6];
	long_reason[300000] = '\0';
	assert_int_equal(sqlite3_prepare_v2(h, "UPDATE cells SET reason = ?1 WHERE id = 2", -1,
					    &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, long_reason, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	free(long_reason);
	sqlite3_close(h);

	run(o, "export", "--csv", csv, "--db", nasty, NULL);
	assert_int_equal(o->status, 0);
	h = open_db(nasty);
	snprintf(expect, sizeof(expect), "exported run 1 (%lld cells) to '%s'",
		 (long long)scalar(h, "SELECT count(*) FROM cells"), csv);
	sqlite3_close(h);
	assert_non_null(strstr(o->out, expect));
	unlink(fresh);
	run(o, "import", "--csv", csv, "--db", fresh, NULL);
	if (o->status != 0)
		fail_msg("import exited %d: %s", o->status, o->err);
	assert_non_null(strstr(o->out, "imported 1 run"));

	/* the results view, compared in SQL, both ways */
	h = open_db(fresh);
	snprintf(expect, sizeof(expect), "ATTACH '%s' AS o", nasty);
	exec_sql(h, expect);
	assert_int_equal(results_not_in_other(h, "main", "o"), 0);
	assert_int_equal(results_not_in_other(h, "o", "main"), 0);
	assert_int_equal(scalar(h, "SELECT count(*) FROM main.results"),
			 scalar(h, "SELECT count(*) FROM o.results"));
	assert_int_equal(scalar(h, "SELECT count(*) FROM main.results WHERE reason = '=1+2'"),
			 scalar(h, "SELECT count(*) FROM o.cells WHERE id % 6 = 2 AND id != 2"));
	sqlite3_close(h);
	/* and everything else, exactly */
	h = open_db(nasty);
	before = db_dump(h, 1, 1);
	sqlite3_close(h);
	h = open_db(fresh);
	after = db_dump(h, 1, 1);
	sqlite3_close(h);
	assert_true(strlen(before) > 300000);
	assert_string_equal(before, after);
	free(before);
	free(after);

	/* what export writes to standard output is what it writes to a file */
	{
		char *data;
		long len = read_file(csv, &data);

		run(o, "export", "--csv", "-", "--run", "1", "--db", nasty, NULL);
		assert_int_equal(o->status, 0);
		assert_true(strlen(o->out) > 1000);
		/* stdout is captured up to 64 KiB */
		assert_true((long)strlen(o->out) <= len);
		assert_memory_equal(o->out, data, strlen(o->out));
		free(data);
	}
	run(o, "export", "--csv", path_in_tmp("x.csv"), "--run", "99", "--db", db, NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->err, "no run 99"));
	assert_int_equal(access(path_in_tmp("x.csv"), F_OK), -1);
	run(o, "export", "--db", db, NULL);
	assert_int_equal(o->status, 2);
	free(o);
}

/* Malformed files and a duplicate run: exit 2, one line naming the line, no change. */
static void test_import_refuses_bad_files_and_leaves_the_database_unchanged(void **state)
{
	static const char header[] =
		"run_started,run_status,run_hostname,run_command,variant,task,pattern,regime,"
		"n,m,d,heads,kv_heads,batch,params,seed,threads,status,reason,wall_seconds,"
		"finished,metric:latency_median[s],samples_s\n";
	/* lines 2 and 3: a reason with a line break in it */
	static const char good[] =
		"2025-01-01T00:00:00Z,complete,h,c,vanilla,speed,ns,,64,64,16,2,1,1,{},0,1,ok,"
		"\"multi\nline, \"\"reason\"\"\",0.5,2025-01-01T00:00:01Z,0.001,0.001 0.002\n";
	static const struct {
		const char *name, *row, *want;
	} bad[] = {
		{ "truncated quote", "2025-01-01T00:00:00Z,complete,h,c,flash,speed,ns,,64,64,16,"
		  "2,1,1,{},0,1,ok,\"never closed,0.5", "line 4: a quoted field is not closed" },
		{ "column count", "2025-01-01T00:00:00Z,complete,h,c,flash,speed,ns,,64,64,16,2,1,"
		  "1,{},0,1,ok,,0.5,2025-01-01T00:00:01Z,0.001\n", "line 4: 22 fields, but the "
		  "header has 23 columns" },
		{ "bad number", "2025-01-01T00:00:00Z,complete,h,c,flash,speed,ns,,64,6x4,16,2,1,1,"
		  "{},0,1,ok,,0.5,2025-01-01T00:00:01Z,0.001,0.001\n", "line 4, column 'm'" },
		{ "nan", "2025-01-01T00:00:00Z,complete,h,c,flash,speed,ns,,64,64,16,2,1,1,{},0,1,"
		  "ok,,0.5,2025-01-01T00:00:01Z,0.001,0.001 NaN\n", "line 4, column 'samples_s'" },
		{ "unknown status", "2025-01-01T00:00:00Z,complete,h,c,flash,speed,ns,,64,64,16,2,"
		  "1,1,{},0,1,melted,,0.5,2025-01-01T00:00:01Z,,\n", "line 4, column 'status': "
		  "unknown status 'melted'" },
		{ "sql", "2025-01-01T00:00:00Z,complete,h,c,\"x'); DELETE FROM runs; --\",speed,"
		  "ns,,64,64,16,2,1,1,{},0,1,ok,,0.5,2025-01-01T00:00:01Z,,\n",
		  "line 4, column 'variant'" },
	};
	const size_t n_bad = sizeof(bad) / sizeof(bad[0]);
	struct outcome *o = malloc(sizeof(*o));
	const char *file = path_in_tmp("bad-import.csv"), *missing = path_in_tmp("none.db");
	char text[4096], *before, *after;
	long len_before = read_file(db, &before);

	(void)state;
	/* the good row alone imports into a fresh database */
	snprintf(text, sizeof(text), "%s%s", header, good);
	write_text(file, text);
	run(o, "import", "--csv", file, "--db", path_in_tmp("good.db"), NULL);
	if (o->status != 0)
		fail_msg("a good file failed: %s", o->err);

	for (size_t i = 0; i <= n_bad; i++) {
		const char *want = i < n_bad ? bad[i].want : "is already in the database as run 1";

		if (i < n_bad) {
			snprintf(text, sizeof(text), "%s%s%s", header, good, bad[i].row);
			write_text(file, text);
		} else {
			/* the database's own run, exported: a duplicate */
			run(o, "export", "--csv", file, "--db", db, NULL);
			assert_int_equal(o->status, 0);
		}
		run(o, "import", "--csv", file, "--db", db, NULL);
		if (o->status != 2 || !strstr(o->err, want))
			fail_msg("%s: exit %d, '%s' (wanted '%s')",
				 i < n_bad ? bad[i].name : "duplicate", o->status, o->err, want);
		assert_true(strncmp(o->err, "attnbench: cannot import ", 25) == 0);
		assert_int_equal(strchr(o->err, '\n')[1], '\0');
		assert_int_equal(read_file(db, &after), len_before);
		assert_memory_equal(before, after, (size_t)len_before);
		free(after);
		/* bad input does not create a database either */
		if (i < n_bad) {
			run(o, "import", "--csv", file, "--db", missing, NULL);
			assert_int_equal(o->status, 2);
			assert_int_equal(access(missing, F_OK), -1);
		}
	}
	run(o, "import", "--csv", path_in_tmp("no-such.csv"), "--db", db, NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->err, "cannot read"));
	free(before);
	free(o);
}

/*
 * merge and run --shard: a suite missing a shard is merged with a warning naming it and
 * exit 1, whole once it comes; a second run of one shard, or shards of one suite cut in
 * another number, is refused with one line and exit 2, the output untouched.
 */
static void test_merge_names_missing_and_refuses_repeated_shards(void **state)
{
	static const char suite[] =
		"task,variants,patterns,lengths,dims,heads,kv_heads,batch,regimes\n"
		"fidelity,vanilla flash linear local,ns cs,64 96,16,2,,1,gaussian\n"
		"speed,vanilla flash,ns,64,16,1,,1,\n";
	struct outcome *o = malloc(sizeof(*o));
	const char *out = path_in_tmp("shards-merged.db"), *csv = path_in_tmp("shards.csv");
	char db_path[4][300], *before, *after;
	long len_before, len_after;
	static const char *const shard[] = { "1/2", "2/2", "2/2", "1/3" };

	(void)state;
	write_text(csv, suite);
	unlink(out);
	for (int i = 0; i < 4; i++) {
		snprintf(db_path[i], sizeof(db_path[i]), "%s/shards-%d.db", tmpdir, i);
		unlink(db_path[i]);
		run(o, "run", "--suite", csv, "--db", db_path[i], "--threads", "1", "--shard",
		    shard[i], "--repeats", "2", "--min-time", "0", "-q", NULL);
		assert_int_equal(o->status, 0);
	}
	run(o, "merge", out, db_path[0], NULL);
	assert_int_equal(o->status, 1);
	assert_non_null(strstr(o->err, "1 of 2 shards, missing 2"));
	run(o, "merge", out, db_path[1], NULL);
	assert_int_equal(o->status, 0);
	assert_string_equal(o->err, "");
	/* whole: one run, each cell with its shard, each shard's machine kept */
	assert_non_null(strstr(o->out, "2 shards made one, run 3"));
	run(o, "query", "--db", out, "--csv", "SELECT count(*), count(DISTINCT run_id),"
	    " sum(shard = 1), sum(shard = 2), (SELECT count(*) FROM runs WHERE shards = 2 AND"
	    " shard IS NULL), (SELECT count(*) FROM shards WHERE run_id = 3) FROM cells", NULL);
	assert_non_null(strstr(o->out, "\r\n18,1,"));
	assert_non_null(strstr(o->out, ",1,2\r\n"));
	/* each shard's triad bandwidth kept; the run's is their mean, as its SGEMM rate */
	run(o, "query", "--db", out, "--csv", "SELECT (SELECT count(*) FROM shards WHERE"
	    " run_id = 3 AND triad_gbps > 0), (SELECT abs(r.triad_gbps - avg(s.triad_gbps))"
	    " < 1e-9 FROM runs r JOIN shards s ON s.run_id = r.id WHERE r.id = 3)", NULL);
	assert_non_null(strstr(o->out, "\r\n2,1\r\n"));
	run(o, "list", "runs", "--db", out, NULL);
	assert_non_null(strstr(o->out, "shard 1: "));
	assert_non_null(strstr(o->out, "shard 2: "));
	assert_non_null(strstr(o->out, ", triad "));
	run(o, "report", "--db", out, NULL);
	assert_non_null(strstr(o->out, "Merged from shards: shard 1 on "));
	assert_non_null(strstr(o->out, " GB/s)"));
	/* a second run of shard 2: already in the whole run; both in one merge: twice */
	len_before = read_file(out, &before);
	run(o, "merge", out, db_path[2], NULL);
	assert_int_equal(o->status, 2);
	assert_int_equal(strchr(o->err, '\n') - o->err + 1, (long)strlen(o->err));
	assert_non_null(strstr(o->err, "is already one run"));
	run(o, "merge", path_in_tmp("shards-twice.db"), db_path[1], db_path[2], NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->err, "shard 2/2 of suite "));
	assert_int_equal(access(path_in_tmp("shards-twice.db"), F_OK), -1);
	run(o, "merge", out, db_path[3], NULL);
	assert_int_equal(o->status, 2);
	assert_int_equal(strchr(o->err, '\n') - o->err + 1, (long)strlen(o->err));
	assert_non_null(strstr(o->err, "has shards of 2"));
	assert_non_null(strstr(o->err, "and of 3"));
	len_after = read_file(out, &after);
	assert_int_equal(len_after, len_before);
	assert_memory_equal(before, after, (size_t)len_before);
	/* shards on two machines: compare and plot refuse, unless asked */
	{
		sqlite3 *h;

		assert_int_equal(sqlite3_open(out, &h), SQLITE_OK);
		assert_int_equal(sqlite3_exec(h, "UPDATE shards SET cpu_model = 'Other CPU'"
					      " WHERE shard = 2", NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(h);
	}
	run(o, "compare", "--db", out, "--baseline", "vanilla", "flash", NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->err, "on 2 machines"));
	assert_non_null(strstr(o->err, "--mix-machines"));
	run(o, "compare", "--db", out, "--baseline", "vanilla", "flash", "--mix-machines", NULL);
	assert_int_equal(o->status, 0);
	assert_non_null(strstr(o->err, "latency verdicts compare machines too"));
	run(o, "plot", "--db", out, "--out", path_in_tmp("shards-plots"), NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->err, "latency figures would mix them"));
	free(before);
	free(after);
	free(o);
}

/* Writes an executable sh script at path that lists its arguments, one a line, in log. */
static void fake_command(const char *path, const char *log)
{
	char text[1024];

	snprintf(text, sizeof(text), "#!/bin/sh\nfor a in \"$@\"; do printf '%%s\\n' \"$a\"; "
		 "done > '%s'\n", log);
	write_text(path, text);
	assert_int_equal(chmod(path, 0755), 0);
}

/*
 * attnbench slurm: the script's task 0 submits the merge job after the array and runs its
 * shard under srun (fakes here record their arguments), a hostile suite path arriving as
 * one word, nothing it holds run; bad values refused with one line, nothing made.
 */
static void test_slurm_script_runs_its_shard_and_quotes_what_it_is_given(void **state)
{
	static const char suite[] =
		"task,variants,patterns,lengths,dims,heads,kv_heads,batch,regimes\n"
		"fidelity,vanilla flash,ns cs,64 96,16,2,,1,gaussian\n";
	struct outcome *o = malloc(sizeof(*o));
	char dir[400], csv[500], bin[400], cmd[2048], args[4096], *line, want[600];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/we ird $(touch PWNED) 'q' `touch PWNED`", tmpdir);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(csv, sizeof(csv), "%s/suite.csv", dir);
	write_text(csv, suite);
	snprintf(bin, sizeof(bin), "%s/fakebin", tmpdir);
	assert_int_equal(mkdir(bin, 0755), 0);
	snprintf(cmd, sizeof(cmd), "%s/sbatch", bin);
	fake_command(cmd, path_in_tmp("sbatch.args"));
	snprintf(cmd, sizeof(cmd), "%s/srun", bin);
	fake_command(cmd, path_in_tmp("srun.args"));

	run(o, "slurm", "--shards", "3", "--suite", csv, "--out", path_in_tmp("slurm-out"),
	    "--partition", "debug", "--time", "1-02:00", "--cpus-per-task", "1", NULL);
	assert_int_equal(o->status, 0);
	assert_non_null(strstr(o->out, "#SBATCH --array=0-2\n"));
	assert_non_null(strstr(o->out, "#SBATCH --partition=debug\n"));
	assert_non_null(strstr(o->out, "#SBATCH --time=1-02:00\n"));
	write_text(path_in_tmp("job.sbatch"), o->out);
	snprintf(cmd, sizeof(cmd), "cd '%s' && PATH='%s':\"$PATH\" SLURM_ARRAY_TASK_ID=0 "
		 "SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_JOB_ID=77 SLURM_CPUS_PER_TASK=1 bash "
		 "job.sbatch", tmpdir, bin);
	assert_int_equal(system(cmd), 0);
	slurp(path_in_tmp("srun.args"), args, sizeof(args));
	assert_non_null(strstr(args, "--cpu-bind=cores\n"));
	assert_non_null(strstr(args, "\n--shard\n1/3\n--threads\n1\n"));
	/* the suite's path, one argument, byte for byte */
	line = strstr(args, "\n--suite\n");
	assert_non_null(line);
	snprintf(want, sizeof(want), "\n--suite\n%s\n", csv);
	assert_memory_equal(line, want, strlen(want));
	slurp(path_in_tmp("sbatch.args"), args, sizeof(args));
	assert_non_null(strstr(args, "--dependency=afterok:77\n"));
	assert_non_null(strstr(args, "--kill-on-invalid-dep=yes\n"));
	assert_int_equal(access(path_in_tmp("PWNED"), F_OK), -1);
	snprintf(cmd, sizeof(cmd), "%s/PWNED", dir);
	assert_int_equal(access(cmd, F_OK), -1);

	/* bad values: one line, exit 2, no folder made */
	{
		static const char *const bad[][2] = {
			{ "--out", "has space" }, { "--time", "2 hours" }, { "--partition", "a;b" },
			{ "--shards", "0" }, { "--shards", "99" }, { "--cpus-per-task", "0" },
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			const char *out = !strcmp(bad[i][0], "--out") ? bad[i][1] :
					  path_in_tmp("slurm-bad");

			run(o, "slurm", "--shards", "3", "--suite", csv, bad[i][0], bad[i][1],
			    "--out", out, NULL);
			assert_int_equal(o->status, 2);
			assert_int_equal(strchr(o->err, '\n') - o->err + 1, (long)strlen(o->err));
			assert_string_equal(o->out, "");
		}
		assert_int_equal(access(path_in_tmp("has space"), F_OK), -1);
		assert_int_equal(access(path_in_tmp("slurm-bad"), F_OK), -1);
	}
	free(o);
}

/* Two shards into one: the union, both provenances, duplicates refused, OUT unchanged. */
static void test_merge_combines_shards_and_refuses_duplicates(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	const char *shard = path_in_tmp("shard2.db"), *out = path_in_tmp("merged.db");
	const char *out2 = path_in_tmp("merged2.db");
	char *before, *after, *want, *got, sql[1024];
	long len_before;
	sqlite3 *h;

	(void)state;
	run(o, "run", "--variants", "vanilla,flash", "--tasks", "speed", "--patterns", "ns",
	    "--lengths", "64", "--repeats", "2", "--min-time", "0", "--threads", "1", "-q",
	    "--db", shard, NULL);
	assert_int_equal(o->status, 0);
	unlink(out);
	run(o, "merge", out, db, shard, NULL);
	if (o->status != 0)
		fail_msg("merge exited %d: %s", o->status, o->err);
	assert_non_null(strstr(o->out, "merged 2 runs"));

	h = open_db(out);
	snprintf(sql, sizeof(sql), "ATTACH '%s' AS a; ATTACH '%s' AS b", db, shard);
	exec_sql(h, sql);
	/* the union of the cells, and each run's provenance as it was */
	assert_int_equal(scalar(h, "SELECT count(*) FROM main.results"),
			 scalar(h, "SELECT (SELECT count(*) FROM a.results) +"
				   " (SELECT count(*) FROM b.results)"));
	assert_int_equal(scalar(h, "SELECT count(*) FROM (SELECT * FROM main.runs WHERE id = 1"
				   " EXCEPT SELECT * FROM a.runs)"), 0);
	/* run 1 of b is run 2 here: all but the id */
	assert_int_equal(scalar(h, "SELECT count(*) FROM (SELECT * FROM main.runs WHERE id = 2"
				   " EXCEPT SELECT * FROM b.runs)"), 1);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM main.runs WHERE id = 2 AND command ="
		 " (SELECT command FROM b.runs) AND started = (SELECT started FROM b.runs) AND"
		 " command LIKE '%%--variants vanilla,flash%%'");
	assert_int_equal(scalar(h, sql), 1);
	sqlite3_close(h);
	h = open_db(db);
	want = db_dump(h, 1, 1);
	sqlite3_close(h);
	h = open_db(out);
	got = db_dump(h, 1, 1);
	assert_string_equal(want, got);
	free(want);
	free(got);
	got = db_dump(h, 2, 2);
	sqlite3_close(h);
	h = open_db(shard);
	want = db_dump(h, 1, 1);
	sqlite3_close(h);
	assert_string_equal(want, got);
	free(want);
	free(got);

	/* the same shard again: refused, OUT byte for byte as it was */
	len_before = read_file(out, &before);
	run(o, "merge", out, shard, NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->err, "is already in"));
	assert_int_equal(strchr(o->err, '\n')[1], '\0');
	assert_int_equal(read_file(out, &after), len_before);
	assert_memory_equal(before, after, (size_t)len_before);
	free(after);
	free(before);
	/* a duplicate between inputs: refused, and no new OUT is left behind */
	run(o, "merge", out2, shard, db, shard, NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->err, "is also run 1 of"));
	assert_int_equal(access(out2, F_OK), -1);
	run(o, "merge", out2, path_in_tmp("nowhere.db"), NULL);
	assert_int_equal(o->status, 2);
	assert_int_equal(access(out2, F_OK), -1);
	run(o, "merge", out2, NULL);
	assert_int_equal(o->status, 2);
	free(o);
}

/* Sets a run's CPU model in the database, as if it had run on another machine. */
static void set_cpu_model(const char *path, int run, const char *model)
{
	sqlite3 *handle;
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_open(path, &handle), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(handle, "UPDATE runs SET cpu_model = ?1 WHERE "
					    "id = ?2", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, run);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(handle);
}

/* Sets a run's status, as an interrupted run leaves it. */
static void set_run_status(const char *path, int run, const char *status)
{
	sqlite3 *handle;
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_open(path, &handle), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(handle, "UPDATE runs SET status = ?1 WHERE id = ?2",
					    -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, run);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(handle);
}

static size_t count_lines(const char *text)
{
	size_t n = 0;

	for (; *text; text++)
		n += *text == '\n';
	return n;
}

/*
 * A window of 15 cannot find a needle 100 positions back: compare calls local "worse"
 * than vanilla on passkey, and --fail-on-regression turns that into exit 1.
 */
static void test_compare_finds_a_real_regression_and_fails_on_it(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	const char *cdb = path_in_tmp("compare.db");
	char *before, *after;
	long len;

	(void)state;
	run(o, "run", "--variants", "vanilla,local", "--tasks", "passkey,speed", "--patterns",
	    "cs", "--lengths", "128", "--dims", "32", "--heads", "1", "--repeats", "3",
	    "--min-time", "0", "--threads", "1", "--db", cdb, "-q", NULL);
	assert_int_equal(o->status, 0);

	run(o, "compare", "local", "--db", cdb, NULL);
	assert_int_equal(o->status, 0);
	assert_non_null(strstr(o->out, "against baseline 'vanilla'"));
	assert_non_null(strstr(o->out, "passkey"));
	assert_non_null(strstr(o->out, "worse"));
	assert_non_null(strstr(o->out, "latency × [95%]"));
	assert_null(strstr(o->out, "\033["));	/* no colour when stdout is a file */

	run(o, "compare", "--baseline", "vanilla", "local", "--fail-on-regression", "--db", cdb,
	    NULL);
	assert_int_equal(o->status, 1);
	assert_non_null(strstr(o->err, "regression"));
	/* CSV: a header and one row per pair (11 passkey depths + 1 speed cell) */
	run(o, "compare", "--csv", "local", "--db", cdb, NULL);
	assert_int_equal(o->status, 0);
	assert_true(strncmp(o->out, "run_id,baseline_run_id,task,pattern,regime,", 43) == 0);
	assert_int_equal(count_lines(o->out), 1 + 12);
	assert_non_null(strstr(o->out, ",local,vanilla,ok,ok,"));
	run(o, "compare", "--markdown", "local", "--db", cdb, NULL);
	assert_int_equal(o->status, 0);
	assert_non_null(strstr(o->out, "| task    | pattern | regime |"));
	assert_non_null(strstr(o->out, "| passkey | cs      | 0.5    | 128 |"));
	assert_non_null(strstr(o->out, "|:---|"));

	/* a run against itself: nothing changed */
	run(o, "compare", "--run", "1", "--against", "1", "--fail-on-regression", "--db", cdb,
	    NULL);
	assert_int_equal(o->status, 0);
	assert_non_null(strstr(o->out, "latency: 0 faster, 0 slower, 2 no significant change; "
			       "accuracy: 0 better, 0 worse, 22 no significant change"));

	/* another machine's run is refused (exit 2, database untouched) unless --force */
	run(o, "run", "--variants", "local", "--tasks", "passkey", "--patterns", "cs",
	    "--lengths", "128", "--dims", "32", "--heads", "1", "--threads", "1", "--db", cdb,
	    "-q", NULL);
	assert_int_equal(o->status, 0);
	set_cpu_model(cdb, 2, "Another CPU");
	len = read_file(cdb, &before);
	run(o, "compare", "--run", "2", "--against", "1", "--db", cdb, NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->err, "differ in cpu_model"));
	assert_non_null(strstr(o->err, "--force"));
	assert_int_equal(count_lines(o->err), 1);
	assert_int_equal(read_file(cdb, &after), len);
	assert_memory_equal(before, after, (size_t)len);
	run(o, "compare", "--run", "2", "--against", "1", "--force", "--db", cdb, NULL);
	assert_int_equal(o->status, 0);
	assert_non_null(strstr(o->out, "run 2 against run 1"));
	assert_non_null(strstr(o->err, "warning"));

	/*
	 * Run 2 has local's passkey cells only: the verdicts cannot see the 13 cells of run 1
	 * it lacks (vanilla's 11 passkey depths and speed cell, local's speed cell), nor the
	 * cells an interrupted run did not finish. Both are said, and fail a CI job.
	 */
	assert_non_null(strstr(o->err, "run 2 lacks 13 cells that run 1 has (first: "));
	run(o, "compare", "--run", "2", "--against", "1", "--force", "--fail-on-regression",
	    "--db", cdb, NULL);
	assert_int_equal(o->status, 1);
	assert_non_null(strstr(o->err, "run 2 lacks 13 cells"));
	run(o, "compare", "--run", "2", "--against", "1", "--force", "--fail-on-regression",
	    "--tasks", "passkey", "local", "--db", cdb, NULL);
	assert_int_equal(o->status, 0);
	assert_null(strstr(o->err, "lacks"));
	set_run_status(cdb, 2, "interrupted");
	run(o, "compare", "--run", "2", "--against", "1", "--force", "--fail-on-regression",
	    "--tasks", "passkey", "local", "--db", cdb, NULL);
	assert_int_equal(o->status, 1);
	assert_non_null(strstr(o->err, "run 2 is 'interrupted', not complete"));
	free(before);
	free(after);
	free(o);
}

static void test_compare_aa_stores_two_interleaved_runs_and_reports_a_rate(void **state)
{
	struct outcome *o = malloc(sizeof(*o));
	const char *adb = path_in_tmp("aa.db");

	(void)state;
	run(o, "compare", "--aa", "--lengths", "64,128", "--patterns", "ns", "--repeats", "5",
	    "--min-time", "0", "--threads", "1", "--db", adb, "-q", NULL);
	/* 1 when this machine is too noisy for the rule: the report says so either way */
	assert_true(o->status == 0 || o->status == 1);
	assert_non_null(strstr(o->out, "A/A false-positive rate:"));
	assert_non_null(strstr(o->out, " of 2 cells"));
	run(o, "query", "--csv", "--db", adb, "SELECT r.id, r.suite, c.n, c.id FROM runs r "
	    "JOIN cells c ON c.run_id = r.id ORDER BY c.id", NULL);
	assert_int_equal(o->status, 0);
	/* interleaved: A 64, A' 64, A 128, A' 128 */
	assert_non_null(strstr(o->out, "1,aa,64,1\r\n2,aa,64,2\r\n1,aa,128,3\r\n2,aa,128,4\r\n"));
	/* A/A runs measure the harness: never "the latest run", read only with --run */
	run(o, "report", "--db", adb, NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->err, "A/A runs are only read with --run"));
	run(o, "export", "--db", adb, "--csv", "-", NULL);
	assert_int_equal(o->status, 2);
	run(o, "export", "--db", adb, "--csv", "-", "--run", "2", NULL);
	assert_int_equal(o->status, 0);
	free(o);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_help_lists_the_commands_and_unknown_ones_fail),
		cmocka_unit_test(test_list_shows_variants_tasks_suites_and_runs),
		cmocka_unit_test(test_a_run_stores_every_variant_on_every_supported_pattern),
		cmocka_unit_test(test_a_run_records_the_commit_and_the_compiler_flags),
		cmocka_unit_test(test_a_run_waits_passively_on_the_cpus_it_may_use),
		cmocka_unit_test(test_a_run_warns_when_openblas_kernels_are_narrower_than_the_cpu),
		cmocka_unit_test(test_outputs_never_replace_a_database),
		cmocka_unit_test(test_two_runs_share_a_database_while_it_is_read),
		cmocka_unit_test(test_a_killed_run_resumes_to_the_same_cells),
		cmocka_unit_test(test_shards_hold_the_suite_s_cells_and_resume_by_themselves),
		cmocka_unit_test(test_a_terminated_run_says_how_to_resume_and_does),
		cmocka_unit_test(test_bad_input_exits_2_and_leaves_the_database_unchanged),
		cmocka_unit_test(test_check_passes_the_exact_variants_and_names_its_checks),
		cmocka_unit_test(test_query_and_list_refuse_a_missing_database),
		cmocka_unit_test(test_eval_writes_what_exact_attention_gives),
		cmocka_unit_test(test_run_inputs_measures_the_users_own_tensors),
		cmocka_unit_test(test_export_and_import_round_trip_nasty_fields),
		cmocka_unit_test(test_import_refuses_bad_files_and_leaves_the_database_unchanged),
		cmocka_unit_test(test_merge_combines_shards_and_refuses_duplicates),
		cmocka_unit_test(test_merge_names_missing_and_refuses_repeated_shards),
		cmocka_unit_test(test_slurm_script_runs_its_shard_and_quotes_what_it_is_given),
		cmocka_unit_test(test_compare_finds_a_real_regression_and_fails_on_it),
		cmocka_unit_test(test_compare_aa_stores_two_interleaved_runs_and_reports_a_rate),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: test-cli PATH-TO-ATTNBENCH\n");
		return 2;
	}
	binary = argv[1];
	return cmocka_run_group_tests(tests, setup, teardown);
}
