/*
 * csv-export.h - runs out of the database as CSV: the interchange format that
 * csv-import.h reads back.
 *
 * The CSV format (README "Export, import, merge"): RFC 4180, a header row, one row per
 * cell. Columns: run_key, run_<column> for every column of table runs but id, the cell's
 * columns (variant ... finished), one `metric:<name>[<unit>]` column per metric name and
 * unit present, samples_s, sample_rounds (the measurement round of each sample; absent
 * or empty: round 1) and trials (space-separated lists in idx order; an item `idx:value`
 * where the idx is not the previous one plus 1), and run_metrics (the run's
 * run_metrics rows as a JSON array). NULL is an unquoted empty field, an empty string a
 * quoted one (""). A text field that begins with = + - @ tab, CR or ' is written with
 * one more ' in front, so a spreadsheet shows it as text instead of running it as a
 * formula; import removes a leading ' that comes before one of those characters.
 *
 * A run's identity is (started, hostname, command): a run whose identity is already in
 * the database is refused by import and merge. run_key is 16 hex digits of the 64-bit
 * FNV-1a hash of started, hostname and command, each followed by the byte 0x1f (a NULL
 * value as the single byte 0x00 instead); import checks it and computes it when empty.
 */
#ifndef ATTNBENCH_CSV_EXPORT_H
#define ATTNBENCH_CSV_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "store.h"

/*
 * Writes the header and one row per cell of the given runs (in the order given, cells
 * by id) to out. Returns 0; -ENOENT when a run does not exist (why names it); -EIO for
 * SQLite or write trouble. cells, when not NULL, gets the number of rows written.
 */
int csv_export_runs(sqlite3 *db, const int64_t *runs, size_t n_runs, FILE *out,
		    size_t *cells, char *why, size_t why_len);

/*
 * Formats one CSV field into out (RFC 4180): quoted when it holds a comma, quote, CR or
 * LF, begins or ends with a space or tab, or is empty; with the leading ' of the
 * spreadsheet rule when escape is set (text columns). Returns 0 or -EIO.
 */
int csv_export_field(FILE *out, const char *text, size_t len, bool escape);

/* Writes the run key of (started, hostname, command) as 16 hex digits and a NUL. */
void csv_run_key(const char *started, const char *hostname, const char *command,
		 char key[17]);

#endif
