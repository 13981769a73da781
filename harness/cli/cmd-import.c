/*
 * cmd-import.c - `attnbench import`: CSV written by `export` (or by hand, in the same
 * format) into the database. Every row is validated before the database is opened;
 * then all runs go in one transaction, so bad input changes nothing.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "csv-import.h"
#include "error.h"
#include "options.h"
#include "store.h"

const char usage_import[] =
	"usage: attnbench import --csv FILE [--db PATH]\n"
	"\n"
	"Reads runs from CSV in the format 'attnbench export' writes (see README.md) and\n"
	"adds them to the database, keeping their provenance and status. Every row is\n"
	"checked first; one bad row (named by its line) and nothing is imported. A run\n"
	"that is already in the database (same start time, host and command) is refused.\n"
	"\n"
	"  --csv FILE   the file to read ('-' for standard input)\n"
	"  --db PATH    the database (default " DEFAULT_DB "; created if missing)\n"
	"\n"
	"example:\n"
	"  attnbench import --csv results-from-cluster.csv\n";

/* Reads a whole stream; NULL (errno set) on trouble. */
static char *read_all(FILE *f, size_t *len)
{
	size_t cap = 1 << 16, n = 0, got;
	char *text = malloc(cap), *grown;

	while (text && (got = fread(text + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap) {
			grown = realloc(text, cap *= 2);
			if (!grown) {
				free(text);
				return NULL;
			}
			text = grown;
		}
	}
	if (text && ferror(f)) {
		free(text);
		errno = EIO;
		return NULL;
	}
	*len = n;
	return text;
}

int cmd_import(int argc, char **argv)
{
	static const struct option options[] = {
		{ "csv", required_argument, NULL, 'c' },
		{ "db", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	const char *db = DEFAULT_DB, *file = NULL;
	struct csv_import_data *data;
	struct store *st;
	int64_t first = 0;
	char why[1024], *text;
	size_t len, runs;
	FILE *in;
	int opt, ret;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			file = optarg;
			break;
		case 'd':
			db = optarg;
			break;
		default:
			return option_error(opt, argv, "import");
		}
	}
	if (optind != argc)
		return option_no_arguments("import");
	if (!file)
		return error("import needs --csv FILE ('-' for standard input)");
	in = strcmp(file, "-") ? fopen(file, "rb") : stdin;
	if (!in)
		return error("cannot read '%s': %s", file, strerror(errno));
	text = read_all(in, &len);
	if (in != stdin)
		fclose(in);
	if (!text)
		return error("cannot read '%s': %s", file, strerror(errno));
	ret = csv_import_parse(text, len, &data, why, sizeof(why));
	free(text);
	if (ret)
		return error("cannot import '%s': %s", file, why);

	/* Only valid input gets this far: now the database may be created or opened. */
	if (store_open(db, 0, &st, why, sizeof(why))) {
		csv_import_free(data);
		return error("cannot open database '%s': %s", db, why);
	}
	ret = csv_import_store(store_db(st), data, &first, why, sizeof(why));
	store_close(st);
	runs = csv_import_run_count(data);
	if (ret) {
		csv_import_free(data);
		return error("cannot import '%s': %s", file, why);
	}
	if (runs == 1)
		printf("imported 1 run (%zu cells) from '%s' into '%s' as run %lld\n",
		       csv_import_cell_count(data), file, db, (long long)first);
	else
		printf("imported %zu runs (%zu cells) from '%s' into '%s' as runs %lld..%lld\n",
		       runs, csv_import_cell_count(data), file, db, (long long)first,
		       (long long)first + (long long)runs - 1);
	csv_import_free(data);
	return EXIT_OK;
}
