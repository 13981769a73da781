/*
 * test-csvio.c - the CSV interchange format and database merging: RFC 4180 quoting and
 * the spreadsheet rule, exact round trips of nasty fields (commas, quotes, newlines,
 * non-ASCII, formulas, SQL, a very long field, NULL against empty, extreme numbers),
 * malformed files refused with their line and column, duplicate runs refused with
 * nothing written, and merges (more inputs than SQLite attaches at once, old inputs,
 * duplicates) that copy every table exactly, refuse every row import would refuse (by
 * input, table, row and column, the output not touched) and an output given as an input
 * by any name. Covers harness/io's csv-export.c, csv-import.c, csv-import-store.c,
 * validate.c and merge.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csv-export.h"
#include "csv-import.h"
#include "db-dump.h"
#include "merge.h"
#include "store.h"
#include "store-test.h"

static char tmpdir[] = "/tmp/attnbench-csvio-XXXXXX";

static int make_tmpdir(void **state)
{
	(void)state;
	/* merge attaches its inputs as read-only URIs */
	sqlite3_config(SQLITE_CONFIG_URI, 1);
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
	(void)state;
	return remove_dir(tmpdir);
}

static char *tmp_path(const char *name)
{
	static char paths[32][300];
	static int next;
	char *p = paths[next++ % 32];

	snprintf(p, 300, "%s/%s", tmpdir, name);
	return p;
}

static struct store *open_store(const char *path)
{
	struct store *s;
	char why[256];

	if (store_open(path, 0, &s, why, sizeof(why)))
		fail_msg("cannot open %s: %s", path, why);
	return s;
}

static int64_t count_rows(sqlite3 *db, const char *table)
{
	char sql[128];
	sqlite3_stmt *st;
	int64_t n;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* A whole file (malloc()ed) and its size; fails the test when it cannot be read. */
static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long size;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	size = ftell(f);
	assert_true(size >= 0);
	rewind(f);
	buf = malloc((size_t)size + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	*len = (size_t)size;
	return buf;
}

/* Fails unless db dumps exactly as before (which it frees) and holds one run. */
static void assert_unchanged_with_one_run(sqlite3 *db, char *before)
{
	char *after = db_dump(db, 0, INT64_MAX);

	assert_string_equal(before, after);
	assert_int_equal(count_rows(db, "runs"), 1);
	free(before);
	free(after);
}

/* Binds ?1.. from a list of texts; "\x01NULL" binds NULL. */
static void run_sql(sqlite3 *db, const char *sql, int n, ...)
{
	sqlite3_stmt *st;
	va_list ap;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	va_start(ap, n);
	for (int i = 1; i <= n; i++) {
		const char *text = va_arg(ap, const char *);

		if (!strcmp(text, "\x01NULL"))
			sqlite3_bind_null(st, i);
		else
			sqlite3_bind_text(st, i, text, -1, SQLITE_TRANSIENT);
	}
	va_end(ap);
	if (sqlite3_step(st) != SQLITE_DONE)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	sqlite3_finalize(st);
}

#define NUL "\x01NULL"

/* Text that breaks naive CSV, JSON and SQL handling. */
static const char *const nasty[] = {
	"comma, \"double quotes\" and\nnewline\r\nand CRLF",
	"naïve café — 注意力 🙂",
	"=HYPERLINK(\"http://example.com\",\"click\")",
	"+SUM(A1:A9)",
	"-2+3",
	"@cmd",
	"'starts with an apostrophe",
	"\tleading tab",
	" padded both sides ",
	"'); DROP TABLE runs; --",
	"",
	"trailing backslash \\",
};
#define NASTY_COUNT ((int)(sizeof(nasty) / sizeof(nasty[0])))

/*
 * One run with nasty provenance and cells that use every column: NULL and empty text,
 * non-contiguous sample and trial indexes, NULL and infinite metric values, one metric
 * name in two units, run_metrics. tag makes the run's identity unique.
 */
static int64_t add_nasty_run(sqlite3 *db, const char *tag)
{
	char started[64], *long_text, json[256], number[64];
	int64_t run, cell;

	/* the tag, a hex digit, is the day: merge checks dates as import does */
	snprintf(started, sizeof(started), "2025-03-%02ldT10:00:00.123Z", strtol(tag, NULL, 16));
	run_sql(db, "INSERT INTO runs (started, finished, status, sgemm_gflops, harness_version,"
		" git_commit, compiler, cflags, cpu_model, cpu_flags, cores, threads, blas_config,"
		" sqlite_version, kernel, hostname, governor, load_avg, smt, aslr, warnings, seed,"
		" suite, command, triad_gbps) VALUES (?1, NULL, 'interrupted', 159.73412345678912,"
		" '0.1.0', '', 'gcc 12', '-O3 -march=native', ?2, ?3, '2', '2', ?4, '3.40.1',"
		" 'Linux', ?5, NULL, '5.35', 'off', 'on', ?6, '42', ?7, ?8, 21.123456789012345)", 8,
		started, nasty[1], nasty[0], nasty[2], tag, nasty[3], nasty[10], nasty[9]);
	run = sqlite3_last_insert_rowid(db);

	long_text = malloc(200001);
	for (int i = 0; i < 200000; i++)
		long_text[i] = "ab,\"\n c"[i % 7];
	long_text[200000] = '\0';
	for (int i = 0; i < NASTY_COUNT + 1; i++) {
		char run_text[32], n_text[16], m_text[16], seed_text[32];
		const char *reason = i < NASTY_COUNT ? nasty[i] : long_text;
		const char *pattern = i % 4 == 0 ? "ns" : i % 4 == 1 ? "cs" : i % 4 == 2 ? "nc" :
				      "cc";
		bool self = i % 4 < 2;

		snprintf(run_text, sizeof(run_text), "%lld", (long long)run);
		snprintf(n_text, sizeof(n_text), "%d", 64 + i);
		snprintf(m_text, sizeof(m_text), "%d", self ? 64 + i : 1000 + i);
		/* 2^53 + 1 + i: an integer a double would round */
		snprintf(seed_text, sizeof(seed_text), "%lld", 9007199254740993LL + i);
		snprintf(json, sizeof(json), "{\"window\":%d,\"note\":\"a,b \\\"c\\\"\\n\"}", i);
		run_sql(db, "INSERT INTO cells (run_id, variant, task, pattern, regime, n, m, d,"
			" heads, kv_heads, batch, params, seed, threads, status, reason,"
			" wall_seconds, rss_bytes, finished) VALUES (?1, ?2, 'speed', ?3, ?4, ?5, ?6,"
			" 16, 4, 2, 1, ?7, ?8, 2, ?9, ?10, ?11, ?12, '2025-03-01T10:00:01.000Z')", 12,
			run_text, i % 2 ? "flash" : "vanilla", pattern,
			i % 3 ? nasty[(i + 3) % NASTY_COUNT] : NUL, n_text, m_text, json, seed_text,
			i % 5 == 4 ? "nan" : "ok", i % 6 == 5 ? NUL : reason,
			i % 4 == 3 ? NUL : "0.123456789012345678", i % 4 == 2 ? NUL : "123456789");
		cell = sqlite3_last_insert_rowid(db);
		snprintf(run_text, sizeof(run_text), "%lld", (long long)cell);
		/* one metric name in two units (in different cells), extreme values, NULL */
		run_sql(db, "INSERT INTO metrics VALUES (?1, 'latency_median', 0.1 + 0.2, ?2)", 2,
			run_text, i % 2 ? "ms" : "s");
		run_sql(db, "INSERT INTO metrics VALUES (?1, 'tiny', 4.9406564584124654e-324,"
			" 'a,b')", 1, run_text);
		run_sql(db, "INSERT INTO metrics VALUES (?1, 'huge', 1.7976931348623157e308,"
			" 'x[y]')", 1, run_text);
		if (i % 3 == 0)
			run_sql(db, "INSERT INTO metrics VALUES (?1, 'missing', NULL, '')", 1,
				run_text);
		if (i % 3 == 1)
			run_sql(db, "INSERT INTO metrics VALUES (?1, 'causal_change', -1e999, '')",
				1, run_text);
		for (int k = 0; k < 5 + i; k++) {
			int idx = k < 3 ? k : k + 7 * (i % 2);	/* gaps in odd cells */
			char round[16];

			snprintf(number, sizeof(number), "%.17g", 1e-3 * (1 + k) / 3.0);
			snprintf(json, sizeof(json), "%d", idx);
			snprintf(round, sizeof(round), "%d", 1 + (k + i) % 3);
			run_sql(db, "INSERT INTO samples (cell_id, idx, seconds, round)"
				" VALUES (?1, ?2, ?3, ?4)", 4, run_text, json, number, round);
			if (i % 2 == 0 || k < 2)
				run_sql(db, "INSERT INTO trials VALUES (?1, ?2, ?3)", 3, run_text,
					json, k % 3 ? "1" : "0");
		}
	}
	free(long_text);
	snprintf(json, sizeof(json), "%lld", (long long)run);
	run_sql(db, "INSERT INTO run_metrics VALUES (?1, 'linear', 'ns', 'vanilla',"
		" 'efficiency_length_time', 1877.0000000000002, 'tokens')", 1, json);
	run_sql(db, "INSERT INTO run_metrics VALUES (?1, 'linear', 'cs', 'vanilla',"
		" 'efficiency_length_memory', NULL, 'tokens')", 1, json);
	run_sql(db, "INSERT INTO run_metrics VALUES (?1, ?2, 'cs', 'vanilla', 'slope', 1e999,"
		" ?3)", 3, json, "lin\"ear, \\ \n", nasty[1]);
	return run;
}

/* Exports runs to a string; fails the test on trouble. */
static char *export_text(sqlite3 *db, const int64_t *runs, size_t n, size_t *cells)
{
	char *text = NULL, why[256];
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	int ret;

	assert_non_null(f);
	ret = csv_export_runs(db, runs, n, f, cells, why, sizeof(why));
	fclose(f);
	if (ret)
		fail_msg("export: %s", why);
	return text;
}

static void test_the_header_names_every_column_of_runs_and_cells(void **state)
{
	struct store *s = open_store(":memory:");
	sqlite3 *db = store_db(s);
	char *text, expect[4096] = "run_key";
	int64_t run;
	sqlite3_stmt *st;

	(void)state;
	run_sql(db, "INSERT INTO runs (started, status) VALUES ('2025-01-01', 'complete')", 0);
	run = sqlite3_last_insert_rowid(db);
	/* the schema, read independently: every column of runs but id, prefixed */
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT 'run_' || name FROM pragma_table_info("
					    "'runs') WHERE name != 'id' UNION ALL SELECT name FROM"
					    " pragma_table_info('cells') WHERE name NOT IN ('id',"
					    " 'run_id')", -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		strcat(expect, ",");
		strcat(expect, (const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	strcat(expect, ",samples_s,sample_rounds,trials,run_metrics\r\n");
	text = export_text(db, &run, 1, NULL);
	assert_string_equal(text, expect);
	free(text);
	store_close(s);
}

static void test_fields_are_quoted_only_where_rfc4180_needs_it(void **state)
{
	static const struct {
		const char *in;
		bool escape;
		const char *out;
	} cases[] = {
		{ "plain", true, "plain" },
		{ "a,b", true, "\"a,b\"" },
		{ "say \"hi\"", true, "\"say \"\"hi\"\"\"" },
		{ "two\nlines", true, "\"two\nlines\"" },
		{ "cr\r", true, "\"cr\r\"" },
		{ "", true, "\"\"" },
		{ " lead", true, "\" lead\"" },
		{ "trail\t", true, "\"trail\t\"" },
		{ "naïve 🙂", true, "naïve 🙂" },
		/* the spreadsheet rule: text that a spreadsheet would run gets a ' */
		{ "=1+2", true, "'=1+2" },
		{ "+A1", true, "'+A1" },
		{ "-O3", true, "'-O3" },
		{ "@SUM(A1)", true, "'@SUM(A1)" },
		{ "'quoted'", true, "''quoted'" },
		{ "=a,b", true, "\"'=a,b\"" },
		{ "\tx", true, "\"'\tx\"" },
		/* numbers are not text and keep their sign */
		{ "-1.5", false, "-1.5" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *text = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);

		assert_int_equal(csv_export_field(f, cases[i].in, strlen(cases[i].in),
						  cases[i].escape), 0);
		fclose(f);
		assert_string_equal(text, cases[i].out);
		free(text);
	}
}

static void test_the_run_key_is_fnv1a_of_start_host_and_command(void **state)
{
	char key[17], other[17];
	uint64_t h = 14695981039346656037ULL;
	const char *bytes = "a\x1f" "b\x1f" "c\x1f";

	(void)state;
	/* FNV-1a 64 written out here, over the documented bytes */
	for (const char *s = bytes; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	snprintf(other, sizeof(other), "%016llx", (unsigned long long)h);
	csv_run_key("a", "b", "c", key);
	assert_string_equal(key, other);
	/* NULL is not the empty string */
	csv_run_key("a", NULL, "c", key);
	csv_run_key("a", "", "c", other);
	assert_string_not_equal(key, other);
}

static void test_nasty_fields_round_trip_exactly(void **state)
{
	struct store *a = open_store(":memory:"), *b = open_store(":memory:");
	struct csv_import_data *data;
	int64_t runs[2], first = 0;
	char *text, *again, *dump_a, *dump_b, why[512];
	size_t cells;

	(void)state;
	runs[0] = add_nasty_run(store_db(a), "1");
	runs[1] = add_nasty_run(store_db(a), "2");
	text = export_text(store_db(a), runs, 2, &cells);
	assert_int_equal(cells, 2 * (NASTY_COUNT + 1));
	/* formulas reach the file only behind a ' and inside quotes where needed */
	assert_non_null(strstr(text, ",\"'=HYPERLINK(\"\"http://example.com\"\",\"\"click\"\")\","));
	assert_non_null(strstr(text, ",'+SUM(A1:A9),"));
	assert_non_null(strstr(text, ",''starts with an apostrophe,"));
	assert_null(strstr(text, ",=HYPERLINK"));
	/* one metric name in two units makes two columns */
	assert_non_null(strstr(text, ",metric:latency_median[ms],metric:latency_median[s],"));
	assert_non_null(strstr(text, ",\"metric:tiny[a,b]\","));

	if (csv_import_parse(text, strlen(text), &data, why, sizeof(why)))
		fail_msg("parse: %s", why);
	assert_int_equal(csv_import_run_count(data), 2);
	assert_int_equal(csv_import_cell_count(data), cells);
	if (csv_import_store(store_db(b), data, &first, why, sizeof(why)))
		fail_msg("import: %s", why);
	csv_import_free(data);
	assert_int_equal(first, 1);

	dump_a = db_dump(store_db(a), 1, 2);
	dump_b = db_dump(store_db(b), 1, 2);
	assert_true(strlen(dump_a) > 400000);	/* the long field is in it, twice */
	assert_string_equal(dump_a, dump_b);
	/* and what comes back out is the same file */
	again = export_text(store_db(b), runs, 2, NULL);
	assert_string_equal(again, text);
	free(again);
	free(dump_a);
	free(dump_b);
	free(text);
	store_close(a);
	store_close(b);
}

/* A small valid file; row 3 (line 3) is the one the malformed cases change. */
static const char *const base_header[] = {
	"run_started", "run_status", "run_hostname", "run_command", "variant", "task",
	"pattern", "regime", "n", "m", "d", "heads", "kv_heads", "batch", "params", "seed",
	"threads", "status", "reason", "wall_seconds", "finished", "metric:latency_median[s]",
	"samples_s", "trials",
};
#define BASE_COLUMNS (sizeof(base_header) / sizeof(base_header[0]))
static const char *const base_row2[BASE_COLUMNS] = {
	"2025-01-01T00:00:00.000Z", "complete", "host", "cmd", "vanilla", "speed", "ns", "",
	"64", "64", "16", "2", "1", "1", "{}", "0", "1", "ok", "", "0.5",
	"2025-01-01T00:00:01.000Z", "0.001", "0.001 0.002", "",
};
static const char *const base_row3[BASE_COLUMNS] = {
	"2025-01-01T00:00:00.000Z", "complete", "host", "cmd", "flash", "passkey", "nc", "0.5",
	"8", "64", "16", "2", "2", "10", "\"{\"\"block_q\"\":96}\"", "0", "1", "ok", "", "0.5",
	"2025-01-01T00:00:02.000Z", "", "", "1 0 1",
};

/* The base file with row 3's column `column` replaced by raw CSV text. */
static char *base_with(const char *column, const char *raw)
{
	static char text[8192];
	int at = 0;

	for (size_t c = 0; c < BASE_COLUMNS; c++)
		at += snprintf(text + at, sizeof(text) - (size_t)at, "%s%s", c ? "," : "",
			       base_header[c]);
	at += snprintf(text + at, sizeof(text) - (size_t)at, "\n");
	for (size_t c = 0; c < BASE_COLUMNS; c++)
		at += snprintf(text + at, sizeof(text) - (size_t)at, "%s%s", c ? "," : "",
			       base_row2[c]);
	at += snprintf(text + at, sizeof(text) - (size_t)at, "\n");
	for (size_t c = 0; c < BASE_COLUMNS; c++)
		at += snprintf(text + at, sizeof(text) - (size_t)at, "%s%s", c ? "," : "",
			       column && !strcmp(column, base_header[c]) ? raw : base_row3[c]);
	snprintf(text + at, sizeof(text) - (size_t)at, "\n");
	return text;
}

/* text with every old replaced by new, in a static buffer */
static char *replaced(const char *text, const char *old, const char *new)
{
	static char out[16384];
	size_t at = 0, n_old = strlen(old), n_new = strlen(new);

	while (*text && at + n_new < sizeof(out) - 1) {
		if (!strncmp(text, old, n_old)) {
			memcpy(out + at, new, n_new);
			at += n_new;
			text += n_old;
		} else {
			out[at++] = *text++;
		}
	}
	out[at] = '\0';
	return out;
}

static void expect_refused(const char *text, const char *want)
{
	struct csv_import_data *data = NULL;
	char why[1024];
	int ret = csv_import_parse(text, strlen(text), &data, why, sizeof(why));

	if (ret != -EINVAL)
		fail_msg("accepted (%d) what should fail with \"%s\":\n%s", ret, want, text);
	if (!strstr(why, want))
		fail_msg("error \"%s\" does not contain \"%s\"", why, want);
	/* one line */
	assert_null(strchr(why, '\n'));
	assert_null(data);
}

static void test_a_small_handwritten_file_is_accepted(void **state)
{
	struct store *s = open_store(":memory:");
	struct csv_import_data *data;
	char why[512], *text = base_with(NULL, NULL);
	int64_t first;
	sqlite3_stmt *st;

	(void)state;
	if (csv_import_parse(text, strlen(text), &data, why, sizeof(why)))
		fail_msg("parse: %s", why);
	assert_int_equal(csv_import_run_count(data), 1);
	assert_int_equal(csv_import_cell_count(data), 2);
	assert_int_equal(csv_import_store(store_db(s), data, &first, why, sizeof(why)), 0);
	csv_import_free(data);
	assert_int_equal(sqlite3_prepare_v2(store_db(s), "SELECT latency_ms, regime IS NULL,"
					    " reason IS NULL, params, (SELECT group_concat(correct, '')"
					    " FROM trials) FROM results ORDER BY cell_id", -1, &st,
					    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_true(fabs(sqlite3_column_double(st, 0) - 1.0) < 1e-12);	/* 0.001 s */
	assert_int_equal(sqlite3_column_int(st, 1), 1);	/* unquoted empty is NULL */
	assert_int_equal(sqlite3_column_int(st, 2), 1);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal(sqlite3_column_text(st, 3), "{\"block_q\":96}");
	assert_string_equal(sqlite3_column_text(st, 4), "101");
	sqlite3_finalize(st);
	/* a file from before a column (here most of runs', the triad among them): NULL */
	assert_int_equal(sqlite3_prepare_v2(store_db(s), "SELECT count(*) FROM runs WHERE"
					    " triad_gbps IS NULL AND sgemm_gflops IS NULL", -1, &st,
					    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 1);
	sqlite3_finalize(st);
	store_close(s);
}

static void test_import_removes_only_the_spreadsheet_guard(void **state)
{
	static const struct {
		const char *raw, *stored;
	} cases[] = {
		{ "'=1+2", "=1+2" },
		{ "'-3", "-3" },
		{ "''x", "'x" },
		{ "\"'); DROP TABLE runs; --\"", "'); DROP TABLE runs; --" },
		{ "'quoted'", "'quoted'" },
		{ "'", "'" },
		{ "=raw", "=raw" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct store *s = open_store(":memory:");
		struct csv_import_data *data;
		char *text = base_with("reason", cases[i].raw), why[256];
		int64_t first;
		sqlite3_stmt *st;

		if (csv_import_parse(text, strlen(text), &data, why, sizeof(why)))
			fail_msg("%s: %s", cases[i].raw, why);
		assert_int_equal(csv_import_store(store_db(s), data, &first, why, sizeof(why)), 0);
		csv_import_free(data);
		assert_int_equal(sqlite3_prepare_v2(store_db(s), "SELECT reason FROM cells WHERE"
						    " variant = 'flash'", -1, &st, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_string_equal(sqlite3_column_text(st, 0), cases[i].stored);
		sqlite3_finalize(st);
		store_close(s);
	}
}

static void test_each_malformed_row_is_refused_with_its_line_and_column(void **state)
{
	static const struct {
		const char *column, *raw, *want;
	} cases[] = {
		{ "n", "12x", "line 3, column 'n'" },
		{ "n", "0", "line 3, column 'n'" },
		{ "n", "-4", "line 3, column 'n'" },
		{ "n", "99999999999", "line 3, column 'n'" },
		{ "n", " 8", "line 3, column 'n'" },
		{ "seed", "1.5", "line 3, column 'seed'" },
		{ "pattern", "cs", "line 3, column 'm': m = 64, but pattern 'cs' needs m = n" },
		{ "pattern", "sideways", "line 3, column 'pattern': unknown pattern 'sideways'" },
		{ "status", "exploded", "line 3, column 'status': unknown status 'exploded'" },
		{ "run_status", "done", "line 3, column 'run_status'" },
		{ "run_status", "failed", "line 3, column 'run_status': differs from line 2" },
		{ "wall_seconds", "nan", "line 3, column 'wall_seconds'" },
		{ "wall_seconds", "inf", "line 3, column 'wall_seconds'" },
		{ "wall_seconds", "-1", "line 3, column 'wall_seconds'" },
		{ "samples_s", "0.1 nan", "line 3, column 'samples_s': item 2" },
		{ "samples_s", "0.1 -0.2", "line 3, column 'samples_s': item 2" },
		{ "samples_s", "0.1 x", "line 3, column 'samples_s': item 2" },
		{ "trials", "1 2", "line 3, column 'trials': item 2" },
		{ "trials", "3:1 2:0", "line 3, column 'trials': item 2" },
		{ "metric:latency_median[s]", "fast", "line 3, column 'metric:latency_median[s]'" },
		{ "params", "\"[1,2]\"", "line 3, column 'params'" },
		{ "params", "{oops", "line 3, column 'params'" },
		{ "params", "", "line 3, column 'params': is empty" },
		{ "variant", "\"x'); DROP TABLE runs; --\"", "line 3, column 'variant'" },
		{ "variant", "", "line 3, column 'variant'" },
		{ "task", "\"a b\"", "line 3, column 'task'" },
		{ "kv_heads", "3", "line 3, column 'kv_heads'" },
		{ "finished", "yesterday", "line 3, column 'finished'" },
		{ "finished", "now", "line 3, column 'finished'" },
		{ "reason", "\"\xff\xfe\"", "line 3, column 'reason': holds a NUL byte or is not "
		  "valid UTF-8" },
		{ "reason", "ab\"c", "line 3: a quote inside an unquoted field" },
		{ "trials", "\"1 0 1", "line 3: a quoted field is not closed" },
		{ "trials", "1,0", "line 3: 25 fields, but the header has 24 columns" },
	};
	char text[16384];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_refused(base_with(cases[i].column, cases[i].raw), cases[i].want);

	/* a quoted field over two lines (row 2's reason) moves row 3 to line 4 */
	snprintf(text, sizeof(text), "%s", replaced(base_with("status", "exploded"), ",ok,,",
						    ",ok,\"a\nb\","));
	expect_refused(text, "line 4, column 'status'");
	/* the same with CRLF line ends, inside the quoted field too */
	expect_refused(replaced(text, "\n", "\r\n"), "line 4, column 'status'");
	/* blank lines count */
	expect_refused(replaced(base_with("n", "0"), "\n", "\n\n"), "line 5, column 'n'");

	/* the header */
	expect_refused("", "the file is empty");
	expect_refused("run_started,run_status,variant\n", "line 1: the header lacks the "
		       "required column 'task'");
	snprintf(text, sizeof(text), "colour,%s", base_with(NULL, NULL));
	expect_refused(text, "line 1: unknown column 'colour'");
	snprintf(text, sizeof(text), "n,%s", base_with(NULL, NULL));
	expect_refused(text, "line 1: header column 'n' appears twice");
	snprintf(text, sizeof(text), "metric:bad name[s],%s", base_with(NULL, NULL));
	expect_refused(text, "line 1: header column 'metric:bad name[s]' is not");
	snprintf(text, sizeof(text), "%s", base_with(NULL, NULL));
	strchr(text, '\n')[1] = '\0';
	expect_refused(text, "no rows after the header");
}

static void test_run_keys_and_run_metrics_are_checked(void **state)
{
	char text[4096];
	const char *header = "run_key,run_started,run_status,run_hostname,run_command,variant,"
			     "task,pattern,n,m,d,heads,kv_heads,batch,params,seed,threads,status,"
			     "finished,run_metrics\n";
	const char *row = "2025-01-01T00:00:00Z,complete,h,c,vanilla,speed,ns,8,8,4,1,1,1,{},0,1,"
			  "ok,2025-01-01T00:00:01Z";
	char key[17], upper[17];
	struct csv_import_data *data;
	char why[512];

	(void)state;
	csv_run_key("2025-01-01T00:00:00Z", "h", "c", key);
	/* the right key, an empty key (computed), and uppercase hex all pass */
	for (int i = 0; i < 16; i++)
		upper[i] = (char)toupper((unsigned char)key[i]);
	upper[16] = '\0';
	snprintf(text, sizeof(text), "%s%s,%s,\n,%s,\n%s,%s,\n", header, key, row, row, upper,
		 row);
	assert_int_equal(csv_import_parse(text, strlen(text), &data, why, sizeof(why)), 0);
	assert_int_equal(csv_import_run_count(data), 1);
	csv_import_free(data);
	snprintf(text, sizeof(text), "%s0123456789abcdef,%s,\n", header, row);
	expect_refused(text, "line 2, column 'run_key'");
	snprintf(text, sizeof(text), "%s,%s,\"[{\"\"variant\"\":\"\"a\"\"}]\"\n", header, row);
	expect_refused(text, "line 2, column 'run_metrics': item 1 needs exactly the keys");
	snprintf(text, sizeof(text), "%s,%s,{}\n", header, row);
	expect_refused(text, "line 2, column 'run_metrics': is not a JSON array of objects");
	snprintf(text, sizeof(text), "%s,%s,\"[{\"\"variant\"\":\"\"a\"\",\"\"pattern\"\":\"\"ns\"\","
		 "\"\"baseline\"\":\"\"v\"\",\"\"name\"\":\"\"x\"\",\"\"unit\"\":\"\"\"\","
		 "\"\"value\"\":\"\"1\"\"}]\"\n", header, row);
	expect_refused(text, "item 1 needs exactly the keys");
	/* two rows of one run that disagree about run_metrics */
	snprintf(text, sizeof(text), "%s,%s,\n,%s,\"[{\"\"variant\"\":\"\"a\"\",\"\"pattern\"\":"
		 "\"\"ns\"\",\"\"baseline\"\":\"\"v\"\",\"\"name\"\":\"\"x\"\",\"\"unit\"\":"
		 "\"\"\"\",\"\"value\"\":null}]\"\n", header, row, row);
	expect_refused(text, "line 3, column 'run_metrics': differs from line 2");
}

static void test_a_duplicate_run_is_refused_and_nothing_is_written(void **state)
{
	struct store *a = open_store(":memory:"), *b = open_store(":memory:");
	struct csv_import_data *data;
	int64_t runs[2], first;
	char *text, why[512], *before;

	(void)state;
	runs[0] = add_nasty_run(store_db(a), "1");
	runs[1] = add_nasty_run(store_db(a), "2");
	/* b already holds the second run only */
	text = export_text(store_db(a), &runs[1], 1, NULL);
	assert_int_equal(csv_import_parse(text, strlen(text), &data, why, sizeof(why)), 0);
	assert_int_equal(csv_import_store(store_db(b), data, &first, why, sizeof(why)), 0);
	csv_import_free(data);
	free(text);
	before = db_dump(store_db(b), 0, INT64_MAX);

	text = export_text(store_db(a), runs, 2, NULL);
	assert_int_equal(csv_import_parse(text, strlen(text), &data, why, sizeof(why)), 0);
	assert_int_equal(csv_import_store(store_db(b), data, &first, why, sizeof(why)), -EEXIST);
	assert_non_null(strstr(why, "is already in the database as run 1"));
	csv_import_free(data);
	free(text);
	/* the first run of the file, which was new, is not there either */
	assert_unchanged_with_one_run(store_db(b), before);
	store_close(a);
	store_close(b);
}

/* A database file with one nasty run per tag. */
static const char *make_db(const char *name, const char *const *tags, int n)
{
	const char *path = tmp_path(name);
	struct store *s;

	unlink(path);
	s = open_store(path);
	for (int i = 0; i < n; i++)
		add_nasty_run(store_db(s), tags[i]);
	store_close(s);
	return path;
}

static void test_merge_copies_every_table_with_new_ids(void **state)
{
	static const char *const tags[] = { "1", "2", "3", "4", "5", "6", "7", "8", "9",
					    "a", "b", "c", "d" };
	const char *inputs[12], *out;
	char name[32], why[512];
	int64_t runs, cells;
	struct store *s, *in;

	(void)state;
	out = make_db("out.db", tags, 1);
	/* twelve inputs, more than SQLite attaches at once (10); the last holds two runs */
	for (int i = 0; i < 12; i++) {
		snprintf(name, sizeof(name), "in%d.db", i);
		inputs[i] = make_db(name, &tags[i == 11 ? 11 : i + 1], i == 11 ? 2 : 1);
	}
	/* out has run "1"; the inputs "2".."c", and the last "c" again with "d" */
	assert_int_equal(merge_check(out, inputs, 12, why, sizeof(why)), -EEXIST);
	assert_non_null(strstr(why, "is also run"));
	inputs[11] = make_db("in11.db", &tags[12], 1);
	if (merge_check(out, inputs, 12, why, sizeof(why)))
		fail_msg("check: %s", why);

	s = open_store(out);
	if (merge_databases(store_db(s), inputs, 12, &runs, &cells, why, sizeof(why)))
		fail_msg("merge: %s", why);
	assert_int_equal(runs, 12);
	assert_int_equal(cells, 12 * (NASTY_COUNT + 1));
	assert_int_equal(count_rows(store_db(s), "runs"), 13);
	/* each input's run is in out, exactly, as run 2 + i */
	for (int i = 0; i < 12; i++) {
		char *want, *got;

		in = open_store(inputs[i]);
		want = db_dump(store_db(in), 1, 1);
		got = db_dump(store_db(s), 2 + i, 2 + i);
		assert_string_equal(want, got);
		free(want);
		free(got);
		store_close(in);
	}
	store_close(s);

	/* and a second merge of any of them is refused */
	assert_int_equal(merge_check(out, &inputs[3], 1, why, sizeof(why)), -EEXIST);
	assert_non_null(strstr(why, "is already in"));
}

static void test_a_failed_merge_takes_out_what_earlier_groups_added(void **state)
{
	static const char *const tags[] = { "1", "2", "3", "4", "5", "6", "7", "8", "9",
					    "a", "b" };
	const char *inputs[11], *out;
	char name[32], why[512], *before;
	int64_t runs, cells;
	struct store *s;

	(void)state;
	out = make_db("out2.db", tags, 1);
	for (int i = 0; i < 11; i++) {
		snprintf(name, sizeof(name), "dup%d.db", i);
		/* the eleventh (second group) repeats the output's run */
		inputs[i] = make_db(name, &tags[i == 10 ? 0 : i + 1], 1);
	}
	s = open_store(out);
	before = db_dump(store_db(s), 0, INT64_MAX);
	/* the check in the transaction catches what merge_check would have */
	assert_int_equal(merge_databases(store_db(s), inputs, 11, &runs, &cells, why, sizeof(why)),
			 -EEXIST);
	assert_unchanged_with_one_run(store_db(s), before);
	store_close(s);
}

static void test_merge_reads_old_inputs_and_refuses_what_it_cannot(void **state)
{
	static const char *const tags[] = { "1", "2" };
	const char *inputs[1], *old, *out = tmp_path("new-out.db");
	char why[512];
	int64_t runs, cells;
	struct store *s;
	sqlite3 *db;
	FILE *f;

	(void)state;
	/* a version-1 database: no trials, no run_metrics */
	old = make_db("v1.db", &tags[1], 1);
	assert_int_equal(sqlite3_open(old, &db), SQLITE_OK);
	exec_ok(db, "DROP TABLE trials; DROP TABLE run_metrics; PRAGMA user_version = 1");
	sqlite3_close(db);
	inputs[0] = old;
	unlink(out);
	assert_int_equal(merge_check(out, inputs, 1, why, sizeof(why)), 0);
	assert_int_equal(access(out, F_OK), -1);	/* the check writes nothing */
	s = open_store(out);
	assert_int_equal(merge_databases(store_db(s), inputs, 1, &runs, &cells, why,
					 sizeof(why)), 0);
	assert_int_equal(runs, 1);
	assert_int_equal(count_rows(store_db(s), "samples"),
			 (NASTY_COUNT + 1) * 5 + (NASTY_COUNT + 1) * NASTY_COUNT / 2);
	assert_int_equal(count_rows(store_db(s), "trials"), 0);
	store_close(s);

	/* missing, not a database, not attnbench's, too new, the output itself */
	inputs[0] = tmp_path("missing.db");
	assert_int_equal(merge_check(out, inputs, 1, why, sizeof(why)), -ENOENT);
	f = fopen(tmp_path("text.db"), "w");
	fputs("task,variants\nspeed,all\n", f);
	fclose(f);
	inputs[0] = tmp_path("text.db");
	assert_int_equal(merge_check(out, inputs, 1, why, sizeof(why)), -EPROTO);
	assert_int_equal(sqlite3_open(tmp_path("other.db"), &db), SQLITE_OK);
	exec_ok(db, "CREATE TABLE t (x)");
	sqlite3_close(db);
	inputs[0] = tmp_path("other.db");
	assert_int_equal(merge_check(out, inputs, 1, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "not an attnbench database"));
	assert_int_equal(sqlite3_open(tmp_path("future.db"), &db), SQLITE_OK);
	exec_ok(db, "PRAGMA user_version = 99");
	sqlite3_close(db);
	inputs[0] = tmp_path("future.db");
	assert_int_equal(merge_check(out, inputs, 1, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "newer"));
	inputs[0] = out;
	assert_int_equal(merge_check(out, inputs, 1, why, sizeof(why)), -EINVAL);
}

/* A nasty input database with sql run on it: what merge must refuse. */
static const char *make_bad_db(const char *name, const char *tag, const char *sql)
{
	static const char *tags[1];
	const char *path;
	sqlite3 *db;

	tags[0] = tag;
	path = make_db(name, tags, 1);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	exec_ok(db, sql);
	sqlite3_close(db);
	return path;
}

static void test_merge_refuses_rows_import_would_and_writes_nothing(void **state)
{
	static const struct {
		const char *sql, *want;
	} cases[] = {
		{ "UPDATE cells SET variant = 'linear\" . system(\"touch x\") . \"' WHERE id = 3",
		  "table cells, row 3, column 'variant': 'linear\" . system(\"touch x\") . \"' is "
		  "not a name (1 to 64 letters, digits, '_', '-' or '.')" },
		{ "UPDATE cells SET task = 'a b' WHERE id = 2", "table cells, row 2, column 'task'" },
		{ "UPDATE runs SET status = 'done'", "table runs, row 1, column 'status': unknown "
		  "run status 'done' (accepted: running, complete, failed, interrupted)" },
		{ "UPDATE runs SET started = 'yesterday'", "table runs, row 1, column 'started'" },
		{ "UPDATE runs SET triad_gbps = -25", "table runs, row 1, column 'triad_gbps': "
		  "'-25' is not a finite number >= 0" },
		{ "INSERT INTO shards (run_id, shard, triad_gbps) VALUES (1, 1, 'wide')",
		  "table shards, row (run_id 1, shard 1), column 'triad_gbps'" },
		{ "UPDATE cells SET reason = x'00ff' WHERE id = 2", "table cells, row 2, column "
		  "'reason': holds a BLOB, not text" },
		{ "UPDATE cells SET reason = 'a' || char(0) || 'b' WHERE id = 2", "column 'reason'" },
		{ "UPDATE cells SET params = '[1]' WHERE id = 1", "table cells, row 1, column "
		  "'params': '[1]' is not a JSON object" },
		{ "UPDATE cells SET n = 'abc' WHERE id = 1", "column 'n': 'abc' is not a whole "
		  "number in 1..2147483647" },
		{ "UPDATE cells SET m = n + 1 WHERE id = 1", "table cells, row 1, column 'm': m = "
		  "65, but pattern 'ns' needs m = n (64)" },
		{ "UPDATE cells SET kv_heads = 3 WHERE id = 1", "column 'kv_heads'" },
		{ "UPDATE cells SET wall_seconds = -1 WHERE id = 1", "column 'wall_seconds': '-1' "
		  "is not a finite number >= 0" },
		{ "UPDATE metrics SET name = 'bad name' WHERE cell_id = 1 AND name = 'tiny'",
		  "table metrics, row (cell_id 1, name 'bad name'), column 'name'" },
		{ "UPDATE metrics SET value = 'fast' WHERE cell_id = 1 AND name = 'tiny'",
		  "table metrics, row (cell_id 1, name 'tiny'), column 'value'" },
		{ "UPDATE samples SET seconds = -1 WHERE cell_id = 1 AND idx = 0",
		  "table samples, row (cell_id 1, idx 0), column 'seconds': '-1' is not a finite "
		  "number >= 0" },
		{ "UPDATE samples SET round = 0 WHERE cell_id = 1 AND idx = 0",
		  "table samples, row (cell_id 1, idx 0), column 'round'" },
		{ "UPDATE trials SET idx = -1 WHERE cell_id = 1 AND idx = 0",
		  "table trials, row (cell_id 1, idx -1), column 'idx'" },
		{ "UPDATE run_metrics SET baseline = ''", "table run_metrics, " },
	};
	const char *out, *inputs[2];
	char why[1024], *before, *file_before, *file_after, name[32];
	size_t len_before, len_after;
	int64_t runs, cells;
	struct store *s;

	(void)state;
	out = make_db("guard-out.db", (const char *const[]){ "1" }, 1);
	inputs[0] = make_db("guard-clean.db", (const char *const[]){ "2" }, 1);
	file_before = read_file(out, &len_before);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(name, sizeof(name), "guard-bad%zu.db", i);
		inputs[1] = make_bad_db(name, "3", cases[i].sql);
		/* refused before the output is opened: not a byte of it changes */
		assert_int_equal(merge_check(out, inputs, 2, why, sizeof(why)), -EINVAL);
		if (!strstr(why, cases[i].want) || !strstr(why, name))
			fail_msg("error \"%s\" does not name '%s' and \"%s\"", why, name,
				 cases[i].want);
		assert_null(strchr(why, '\n'));
		file_after = read_file(out, &len_after);
		assert_int_equal(len_after, len_before);
		assert_memory_equal(file_after, file_before, len_before);
		free(file_after);
		/* and merge_databases, called alone, checks again before it copies */
		s = open_store(out);
		before = db_dump(store_db(s), 0, INT64_MAX);
		assert_int_equal(merge_databases(store_db(s), inputs, 2, &runs, &cells, why,
						 sizeof(why)), -EINVAL);
		assert_non_null(strstr(why, cases[i].want));
		assert_unchanged_with_one_run(store_db(s), before);
		store_close(s);
	}
	free(file_before);

	/* the clean input alone still merges */
	assert_int_equal(merge_check(out, inputs, 1, why, sizeof(why)), 0);
	s = open_store(out);
	assert_int_equal(merge_databases(store_db(s), inputs, 1, &runs, &cells, why,
					 sizeof(why)), 0);
	assert_int_equal(runs, 1);
	store_close(s);
}

static void test_merge_refuses_the_output_by_any_name(void **state)
{
	const char *out = make_db("self.db", (const char *const[]){ "1" }, 1), *inputs[1];
	char why[512];
	FILE *f;

	(void)state;
	unlink(tmp_path("self-hard.db"));
	unlink(tmp_path("self-soft.db"));
	assert_int_equal(link(out, tmp_path("self-hard.db")), 0);
	assert_int_equal(symlink(out, tmp_path("self-soft.db")), 0);
	inputs[0] = tmp_path("self-hard.db");
	assert_int_equal(merge_check(out, inputs, 1, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "is the output"));
	inputs[0] = tmp_path("self-soft.db");
	assert_int_equal(merge_check(out, inputs, 1, why, sizeof(why)), -EINVAL);
	/* and the other way round: the output named by a link to an input */
	inputs[0] = out;
	assert_int_equal(merge_check(tmp_path("self-soft.db"), inputs, 1, why, sizeof(why)),
			 -EINVAL);
	/* text is not SQLite */
	f = fopen(tmp_path("notes.db"), "w");
	assert_non_null(f);
	fputs("this is not a database, just some text that is long enough to be read\n", f);
	fclose(f);
	inputs[0] = tmp_path("notes.db");
	assert_int_equal(merge_check(out, inputs, 1, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "is not an SQLite database"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_header_names_every_column_of_runs_and_cells),
		cmocka_unit_test(test_fields_are_quoted_only_where_rfc4180_needs_it),
		cmocka_unit_test(test_the_run_key_is_fnv1a_of_start_host_and_command),
		cmocka_unit_test(test_nasty_fields_round_trip_exactly),
		cmocka_unit_test(test_a_small_handwritten_file_is_accepted),
		cmocka_unit_test(test_import_removes_only_the_spreadsheet_guard),
		cmocka_unit_test(test_each_malformed_row_is_refused_with_its_line_and_column),
		cmocka_unit_test(test_run_keys_and_run_metrics_are_checked),
		cmocka_unit_test(test_a_duplicate_run_is_refused_and_nothing_is_written),
		cmocka_unit_test(test_merge_copies_every_table_with_new_ids),
		cmocka_unit_test(test_a_failed_merge_takes_out_what_earlier_groups_added),
		cmocka_unit_test(test_merge_reads_old_inputs_and_refuses_what_it_cannot),
		cmocka_unit_test(test_merge_refuses_rows_import_would_and_writes_nothing),
		cmocka_unit_test(test_merge_refuses_the_output_by_any_name),
	};

	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
