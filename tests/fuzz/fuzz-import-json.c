/*
 * fuzz-import-json.c - libFuzzer target for the JSON inside imported CSV (csv-import.h):
 * the input is a cell's params (a JSON object) in one file and a run's run_metrics (a
 * JSON array of objects) in another. Whole-file mutation rarely keeps the CSV around a
 * field valid, so this target puts every input where the JSON checks see it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv-import.h"
#include "store.h"

static const char header[] =
	"run_key,run_started,run_status,run_hostname,run_command,variant,task,pattern,n,m,d,"
	"heads,kv_heads,batch,params,seed,threads,status,finished,run_metrics\n";
static const char row_start[] =
	",2025-01-01T00:00:00Z,complete,h,c,vanilla,speed,ns,8,8,4,1,1,1,";
static const char row_middle[] = ",0,1,ok,2025-01-01T00:00:01Z,";

/* The input as one quoted CSV field, its quotes doubled. */
static void put_quoted(char *out, size_t *at, const uint8_t *data, size_t size)
{
	out[(*at)++] = '"';
	for (size_t i = 0; i < size; i++) {
		if (data[i] == '"')
			out[(*at)++] = '"';
		out[(*at)++] = (char)data[i];
	}
	out[(*at)++] = '"';
}

static void parse_and_store(const char *text, size_t len)
{
	struct csv_import_data *d;
	struct store *st;
	char why[512];
	int64_t first;

	if (csv_import_parse(text, len, &d, why, sizeof(why)))
		return;
	if (!store_open(":memory:", 0, &st, why, sizeof(why))) {
		csv_import_store(store_db(st), d, &first, why, sizeof(why));
		store_close(st);
	}
	csv_import_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cap = sizeof(header) + sizeof(row_start) + sizeof(row_middle) + 2 * size + 16;
	char *text = malloc(cap);
	size_t at;

	if (!text)
		return -1;
	for (int as_params = 0; as_params < 2; as_params++) {
		at = (size_t)sprintf(text, "%s%s", header, row_start);
		if (as_params)
			put_quoted(text, &at, data, size);
		else
			at += (size_t)sprintf(text + at, "{}");
		at += (size_t)sprintf(text + at, "%s", row_middle);
		if (!as_params)
			put_quoted(text, &at, data, size);
		text[at++] = '\n';
		parse_and_store(text, at);
	}
	free(text);
	return 0;
}
