/*
 * cmd-query.c - `attnbench query`: SQL against the database, opened read-only, printed
 * as an aligned table, CSV (RFC 4180, through libcsv) or JSON.
 */
#include <csv.h>
#include <ctype.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "error.h"
#include "options.h"
#include "store.h"

const char usage_query[] =
	"usage: attnbench query [--db PATH] [--csv | --json] SQL\n"
	"\n"
	"Runs one SQL statement against the database (default " DEFAULT_DB "),\n"
	"opened read-only. The view 'results' has one row per cell; see README.md.\n"
	"\n"
	"  --csv    RFC 4180 CSV with a header row\n"
	"  --json   an array of objects, one per row\n"
	"\n"
	"example:\n"
	"  attnbench query \"SELECT variant, pattern, n, latency_ms FROM results\n"
	"                   WHERE task = 'speed' ORDER BY variant, pattern, n\"\n";

enum format { FORMAT_TABLE, FORMAT_CSV, FORMAT_JSON };

/* Text of a value as the table and CSV show it; NULL is empty. */
static const char *cell_text(sqlite3_stmt *st, int col, char *buf, size_t len)
{
	double x;

	switch (sqlite3_column_type(st, col)) {
	case SQLITE_NULL:
		return "";
	case SQLITE_FLOAT:
		x = sqlite3_column_double(st, col);
		/* Byte counts and the like are stored as REAL; show whole numbers whole. */
		snprintf(buf, len, x == floor(x) && fabs(x) < 1e15 ? "%.0f" : "%.6g", x);
		return buf;
	default:
		return (const char *)sqlite3_column_text(st, col);
	}
}

/* A CSV field, quoted by libcsv only when RFC 4180 needs it. */
static void csv_field(const char *text)
{
	if (strpbrk(text, ",\"\r\n"))
		csv_fwrite(stdout, text, strlen(text));
	else
		fputs(text, stdout);
}

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c == '\n')
			printf("\\n");
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void json_value(sqlite3_stmt *st, int col)
{
	double x;

	switch (sqlite3_column_type(st, col)) {
	case SQLITE_NULL:
		printf("null");
		break;
	case SQLITE_INTEGER:
		printf("%lld", (long long)sqlite3_column_int64(st, col));
		break;
	case SQLITE_FLOAT:
		x = sqlite3_column_double(st, col);
		if (isfinite(x))
			printf("%.17g", x);
		else
			printf("null");
		break;
	default:
		json_string((const char *)sqlite3_column_text(st, col));
		break;
	}
}

static int print_rows(sqlite3_stmt *st, enum format fmt)
{
	int cols = sqlite3_column_count(st), rc;
	char buf[64];
	size_t rows = 0, n = 0, cap = 0, *width;
	char **cells = NULL;

	width = calloc((size_t)cols + 1, sizeof(*width));
	if (!width)
		return -1;
	if (fmt == FORMAT_JSON)
		printf("[");
	for (int c = 0; c < cols && fmt == FORMAT_CSV; c++) {
		const char *name = sqlite3_column_name(st, c);

		if (c)
			putchar(',');
		csv_field(name);
	}
	if (fmt == FORMAT_CSV)
		printf("\r\n");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (fmt == FORMAT_JSON) {
			printf("%s\n  {", rows ? "," : "");
			for (int c = 0; c < cols; c++) {
				printf("%s", c ? ", " : "");
				json_string(sqlite3_column_name(st, c));
				printf(": ");
				json_value(st, c);
			}
			printf("}");
		} else if (fmt == FORMAT_CSV) {
			for (int c = 0; c < cols; c++) {
				const char *text = cell_text(st, c, buf, sizeof(buf));

				if (c)
					putchar(',');
				csv_field(text);
			}
			printf("\r\n");
		} else {
			/* A table needs every row first to size its columns. */
			if (n + (size_t)cols > cap) {
				char **grown = realloc(cells, (cap = 2 * cap + (size_t)cols * 64) *
						       sizeof(*grown));

				if (!grown)
					break;
				cells = grown;
			}
			for (int c = 0; c < cols; c++) {
				cells[n] = strdup(cell_text(st, c, buf, sizeof(buf)));
				if (cells[n] && strlen(cells[n]) > width[c])
					width[c] = strlen(cells[n]);
				n++;
			}
		}
		rows++;
	}
	if (fmt == FORMAT_JSON)
		printf("%s]\n", rows ? "\n" : "");
	if (fmt == FORMAT_TABLE) {
		for (int c = 0; c < cols; c++) {
			size_t len = strlen(sqlite3_column_name(st, c));

			if (len > width[c])
				width[c] = len;
			printf("%s%-*s", c ? "  " : "", (int)width[c], sqlite3_column_name(st, c));
		}
		printf("\n");
		for (size_t i = 0; i < n; i++) {
			int c = (int)(i % (size_t)cols);
			const char *text = cells[i] ? cells[i] : "";
			/* Numbers read best right-aligned. */
			bool number = *text && strspn(text, "0123456789.-+eE") == strlen(text);

			printf("%s%*s%s", c ? "  " : "", number ? (int)width[c] : -(int)width[c],
			       text, c == cols - 1 ? "\n" : "");
			free(cells[i]);
		}
	}
	free(cells);
	free(width);
	return rc == SQLITE_DONE ? 0 : -1;
}

int cmd_query(int argc, char **argv)
{
	static const struct option options[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "csv", no_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *db = DEFAULT_DB, *tail;
	enum format fmt = FORMAT_TABLE;
	struct store *st;
	sqlite3_stmt *stmt;
	char why[256];
	int opt, ret;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":", options, NULL)) != -1) {
		if (opt == 'd')
			db = optarg;
		else if (opt == 'c')
			fmt = FORMAT_CSV;
		else if (opt == 'j')
			fmt = FORMAT_JSON;
		else
			return option_error(opt, argv, "query");
	}
	if (optind != argc - 1)
		return error("query needs exactly one SQL statement (quote it)");
	if (store_open(db, STORE_READONLY, &st, why, sizeof(why)))
		return error("cannot open database '%s': %s", db, why);
	if (sqlite3_prepare_v2(store_db(st), argv[optind], -1, &stmt, &tail) != SQLITE_OK) {
		ret = error("bad query: %s", store_errmsg(st));
		goto out_close;
	}
	if (!stmt) {
		ret = error("the query is empty");
		goto out_close;
	}
	tail += strspn(tail, " \t\r\n;");
	if (*tail) {
		ret = error("query runs one statement at a time; remove '%.20s'", tail);
		goto out_finalize;
	}
	if (!sqlite3_stmt_readonly(stmt)) {
		ret = error("query is read-only: use a SELECT (or a read-only PRAGMA)");
		goto out_finalize;
	}
	ret = print_rows(stmt, fmt) ? error("query failed: %s", store_errmsg(st)) : EXIT_OK;
out_finalize:
	sqlite3_finalize(stmt);
out_close:
	store_close(st);
	return ret;
}
