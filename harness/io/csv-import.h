/*
 * csv-import.h - runs into the database from CSV in the format csv-export.h describes:
 * first the whole file is parsed and every row validated (csv-import.c), then the runs
 * go in, all in one transaction (csv-import-store.c), so bad input changes nothing.
 */
#ifndef ATTNBENCH_CSV_IMPORT_H
#define ATTNBENCH_CSV_IMPORT_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Parsed, validated contents of a CSV file (opaque). */
struct csv_import_data;

/*
 * Parses and validates a whole CSV file (text of len bytes; a UTF-8 byte-order mark is
 * skipped). Every row is checked: its CSV syntax, column count, types, sizes, names,
 * status values, JSON, finite numbers, and that the rows of one run agree on the run's
 * columns. Returns 0 with *out set; -EINVAL with why = "line L, column 'C': reason" for
 * the first bad row (L counts physical lines from 1; a row spanning lines is named by
 * its first); -ENOMEM.
 */
int csv_import_parse(const char *text, size_t len, struct csv_import_data **out, char *why,
		     size_t why_len);
/* Frees parsed data; accepts NULL. */
void csv_import_free(struct csv_import_data *d);
/* Number of runs and of cells in parsed data. */
size_t csv_import_run_count(const struct csv_import_data *d);
size_t csv_import_cell_count(const struct csv_import_data *d);

/*
 * Inserts the parsed runs, with their cells, metrics, samples, trials and run metrics,
 * in one transaction: everything or nothing. first_run gets the id of the first new run
 * (the others follow in file order). Returns 0; -EEXIST when a run's identity is
 * already in the database (why names it and the run there); -EIO for SQLite trouble.
 */
int csv_import_store(sqlite3 *db, const struct csv_import_data *d, int64_t *first_run, char *why,
		     size_t why_len);

#endif
