/*
 * csvio.h - moving results between databases: the CSV interchange format (export,
 * import) and the merge of whole databases.
 *
 * The CSV format (README "Export, import, merge"): RFC 4180, a header row, one row per
 * cell. Columns: run_key, run_<column> for every column of table runs but id, the cell's
 * columns (variant ... finished), one `metric:<name>[<unit>]` column per metric name and
 * unit present, samples_s and trials (space-separated lists in idx order; an item
 * `idx:value` where the idx is not the previous one plus 1), and run_metrics (the run's
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
#ifndef ATTNBENCH_CSVIO_H
#define ATTNBENCH_CSVIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "store.h"

/* Parsed, validated contents of a CSV file (opaque). */
struct csvio_data;

/*
 * Writes the header and one row per cell of the given runs (in the order given, cells
 * by id) to out. Returns 0; -ENOENT when a run does not exist (why names it); -EIO for
 * SQLite or write trouble. cells, when not NULL, gets the number of rows written.
 */
int csvio_export(sqlite3 *db, const int64_t *runs, size_t n_runs, FILE *out,
		 size_t *cells, char *why, size_t why_len);

/*
 * Parses and validates a whole CSV file (text of len bytes; a UTF-8 byte-order mark is
 * skipped). Every row is checked: its CSV syntax, column count, types, sizes, names,
 * status values, JSON, finite numbers, and that the rows of one run agree on the run's
 * columns. Returns 0 with *out set; -EINVAL with why = "line L, column 'C': reason" for
 * the first bad row (L counts physical lines from 1; a row spanning lines is named by
 * its first); -ENOMEM.
 */
int csvio_parse(const char *text, size_t len, struct csvio_data **out, char *why,
		size_t why_len);
/* Frees parsed data; accepts NULL. */
void csvio_free(struct csvio_data *d);
/* Number of runs and of cells in parsed data. */
size_t csvio_run_count(const struct csvio_data *d);
size_t csvio_cell_count(const struct csvio_data *d);

/*
 * Inserts the parsed runs, with their cells, metrics, samples, trials and run metrics,
 * in one transaction: everything or nothing. first_run gets the id of the first new run
 * (the others follow in file order). Returns 0; -EEXIST when a run's identity is
 * already in the database (why names it and the run there); -EIO for SQLite trouble.
 */
int csvio_import(sqlite3 *db, const struct csvio_data *d, int64_t *first_run, char *why,
		 size_t why_len);

/*
 * Checks, without writing anything, that the databases at inputs[0..n) can be merged
 * into out_path (which may not exist yet): each input is an attnbench database of this
 * schema version or older, and no run identity occurs twice among the output's runs
 * and the inputs'. Returns 0; -ENOENT for a missing input; -EPROTO for a file that is
 * not an attnbench database or is newer; -EEXIST for a duplicate run; -EINVAL when an
 * input is the output; -EIO for SQLite trouble. why names the file and run.
 */
int csvio_merge_check(const char *out_path, const char *const *inputs, int n,
		      char *why, size_t why_len);

/*
 * Copies every run of inputs[0..n), with its cells, metrics, samples, trials and run
 * metrics and new ids, into the open database db (ATTACH read-only, INSERT ... SELECT).
 * Inputs are attached up to SQLite's limit of attached databases at once, each group in
 * one transaction; if a later group fails, the runs added by earlier ones are deleted
 * again. Needs URI filenames enabled (sqlite3_config(SQLITE_CONFIG_URI, 1) before the
 * connection was opened, or a library built with SQLITE_USE_URI). runs and cells get
 * the numbers copied. Returns 0; -EEXIST for a duplicate run (re-checked in the
 * transaction); -EIO for SQLite trouble.
 */
int csvio_merge(sqlite3 *db, const char *const *inputs, int n, int64_t *runs,
		int64_t *cells, char *why, size_t why_len);

/*
 * Formats one CSV field into out (RFC 4180): quoted when it holds a comma, quote, CR or
 * LF, begins or ends with a space or tab, or is empty; with the leading ' of the
 * spreadsheet rule when escape is set (text columns). Returns 0 or -EIO.
 */
int csvio_write_field(FILE *out, const char *text, size_t len, bool escape);

/* Writes the run key of (started, hostname, command) as 16 hex digits and a NUL. */
void csvio_run_key(const char *started, const char *hostname, const char *command,
		   char key[17]);

#endif
