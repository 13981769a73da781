/*
 * fuzz-import.c - libFuzzer target for CSV import (csv-import.h): any bytes as an
 * exported CSV file. What parses is also stored, into a fresh in-memory database, so the
 * insert side sees every shape of data the parser lets through; nothing touches a disk.
 */
#include <stdint.h>
#include <stdlib.h>

#include "csv-import.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct csv_import_data *d;
	struct store *st;
	char why[512];
	int64_t first;

	if (csv_import_parse((const char *)data, size, &d, why, sizeof(why)))
		return 0;
	if (!store_open(":memory:", 0, &st, why, sizeof(why))) {
		csv_import_store(store_db(st), d, &first, why, sizeof(why));
		store_close(st);
	}
	csv_import_free(d);
	return 0;
}
