/*
 * db-dump.h - a database's results as one exact text, for tests that move runs between
 * databases (export/import, merge): every column of runs, cells, metrics, samples,
 * trials and run_metrics with its storage class, reals bit for bit (%a), ids replaced
 * by the position of the run and cell, so two databases holding the same results under
 * different ids dump alike.
 */
#ifndef ATTNBENCH_DB_DUMP_H
#define ATTNBENCH_DB_DUMP_H

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dump_buf {
	char *p;
	size_t len, cap;
};

static void dump_add(struct dump_buf *b, const void *data, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		b->cap = 2 * b->cap + len + 4096;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	if (len)	/* data may be NULL then (an empty blob), and memcpy() wants neither */
		memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
}

/* Appends every row of sql (?1, ?2 = the run id range), columns named *id skipped. */
static void dump_query(sqlite3 *db, struct dump_buf *b, const char *title, const char *sql,
		       int64_t first, int64_t last)
{
	sqlite3_stmt *st;
	char text[128];

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "dump: %s: %s\n", sql, sqlite3_errmsg(db));
		abort();
	}
	sqlite3_bind_int64(st, 1, first);
	sqlite3_bind_int64(st, 2, last);
	dump_add(b, title, strlen(title));
	dump_add(b, "\n", 1);
	while (sqlite3_step(st) == SQLITE_ROW) {
		for (int c = 0; c < sqlite3_column_count(st); c++) {
			const char *name = sqlite3_column_name(st, c);
			size_t n = strlen(name);

			if (n >= 2 && !strcmp(name + n - 2, "id"))
				continue;
			switch (sqlite3_column_type(st, c)) {
			case SQLITE_NULL:
				snprintf(text, sizeof(text), "%s=NULL|", name);
				break;
			case SQLITE_INTEGER:
				snprintf(text, sizeof(text), "%s=I%lld|", name,
					 (long long)sqlite3_column_int64(st, c));
				break;
			case SQLITE_FLOAT:
				snprintf(text, sizeof(text), "%s=R%a|", name,
					 sqlite3_column_double(st, c));
				break;
			default:
				snprintf(text, sizeof(text), "%s=T%d:", name,
					 sqlite3_column_bytes(st, c));
				dump_add(b, text, strlen(text));
				dump_add(b, sqlite3_column_blob(st, c),
					 (size_t)sqlite3_column_bytes(st, c));
				snprintf(text, sizeof(text), "|");
				break;
			}
			dump_add(b, text, strlen(text));
		}
		dump_add(b, "\n", 1);
	}
	sqlite3_finalize(st);
}

/* The results of runs first..last (ids) of db as text; free() it. */
static char *db_dump(sqlite3 *db, int64_t first, int64_t last)
{
	struct dump_buf b = { 0 };

#define RUNS "(SELECT id AS rid, row_number() OVER (ORDER BY id) AS run_no FROM runs" \
	     " WHERE id BETWEEN ?1 AND ?2)"
#define CELLS "(SELECT id AS cid, row_number() OVER (ORDER BY id) AS cell_no FROM cells" \
	      " WHERE run_id BETWEEN ?1 AND ?2)"
	dump_query(db, &b, "runs", "SELECT * FROM runs WHERE id BETWEEN ?1 AND ?2 ORDER BY id",
		   first, last);
	dump_query(db, &b, "cells", "SELECT r.run_no, c.* FROM cells c JOIN " RUNS " r"
		   " ON r.rid = c.run_id ORDER BY c.id", first, last);
	dump_query(db, &b, "metrics", "SELECT c.cell_no, m.* FROM metrics m JOIN " CELLS " c"
		   " ON c.cid = m.cell_id ORDER BY c.cell_no, m.name", first, last);
	dump_query(db, &b, "samples", "SELECT c.cell_no, s.* FROM samples s JOIN " CELLS " c"
		   " ON c.cid = s.cell_id ORDER BY c.cell_no, s.idx", first, last);
	dump_query(db, &b, "trials", "SELECT c.cell_no, t.* FROM trials t JOIN " CELLS " c"
		   " ON c.cid = t.cell_id ORDER BY c.cell_no, t.idx", first, last);
	dump_query(db, &b, "run_metrics", "SELECT r.run_no, m.* FROM run_metrics m JOIN " RUNS
		   " r ON r.rid = m.run_id ORDER BY r.run_no, m.variant, m.pattern, m.baseline,"
		   " m.name", first, last);
#undef RUNS
#undef CELLS
	return b.p;
}

#endif
