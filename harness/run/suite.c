/*
 * suite.c - built-in suites and the suite CSV parser (libcsv).
 */
#include "suite.h"

#include <csv.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADER "task,variants,patterns,lengths,dims,heads,kv_heads,batch,regimes\n"

/*
 * Cross rows use 128 query rows: eight per landmark of nystrom and lara (16 by default),
 * so those methods are tested on the problem they claim to solve; with 16 or 32 rows a
 * landmark averaged one or two queries and both came out near exact. The question is in
 * the keys, and the cost stays linear in M. Passkey's probe is the last row (`--lengths
 * 16x4096` gives its old shape); recall's rows ask min(P, 128) distinct pairs, each
 * scored once (tasks/recall.c; `--lengths 32x2048` gives its old shape).
 */

/* quick: every task, pattern and variant in well under a minute on two cores. */
static const char quick_csv[] = HEADER
	"fidelity,all,all,128x96,32,2,1,1,\n"
	"speed,all,all,256 1024,64,4,,1,\n"
	"causality,all,all,256,32,2,,1,\n"
	"passkey,all,ns cs,256,32,1,,10,0 0.5 1\n"
	"passkey,all,nc cc,64x256,32,1,,10,0 0.5 1\n"
	"recall,all,ns cs,256,32,1,,2,16 64\n"
	"recall,all,nc cc,128x256,32,1,,2,16 64\n"
	"decode,all,cs,256,32,2,,1,\n";

/*
 * Recall packed, in default and full: the queries right after the pairs, no filler
 * (N = P + 32 for self patterns, M = P for cross), one row per P.
 */
#define RECALL_PACKED_ROWS \
	"recall,all,ns cs,48,16 32 64 128,1,,4,16\n" \
	"recall,all,ns cs,64,16 32 64 128,1,,4,32\n" \
	"recall,all,ns cs,96,16 32 64 128,1,,4,64\n" \
	"recall,all,ns cs,160,16 32 64 128,1,,4,128\n" \
	"recall,all,ns cs,288,16 32 64 128,1,,4,256\n" \
	"recall,all,ns cs,544,16 32 64 128,1,,4,512\n" \
	"recall,all,ns cs,1056,16 32 64 128,1,,4,1024\n" \
	"recall,all,nc cc,128x16,16 32 64 128,1,,4,16\n" \
	"recall,all,nc cc,128x32,16 32 64 128,1,,4,32\n" \
	"recall,all,nc cc,128x64,16 32 64 128,1,,4,64\n" \
	"recall,all,nc cc,128x128,16 32 64 128,1,,4,128\n" \
	"recall,all,nc cc,128x256,16 32 64 128,1,,4,256\n" \
	"recall,all,nc cc,128x512,16 32 64 128,1,,4,512\n" \
	"recall,all,nc cc,128x1024,16 32 64 128,1,,4,1024\n"

/*
 * default: the lengths where efficient attention starts to matter, in minutes. Speed
 * starts at 64: on a CPU every approximate variant is already cheaper than vanilla at 256,
 * so the efficiency lengths (crossings) need the shorter lengths to fall inside the
 * range; 64 and 128 add 80 cells, about 45 s at 0.5 s a cell. Recall
 * runs twice: long range (pairs at the start of 2048 tokens, queries at the end) and
 * packed (the queries right after the pairs, no filler: N = P + 32, or M = P), which
 * separates a fixed state's capacity from dilution by the filler in between.
 */
static const char default_csv[] = HEADER
	"fidelity,all,all,512x256 1024x512,64,4,,1,\n"
	"speed,all,all,64 128 256 512 1024 2048 4096,64,8,,1,\n"
	"causality,all,all,1024 4096,64,4,,1,\n"
	"passkey,all,ns cs,1024 4096,64,1,,10,\n"
	"passkey,all,nc cc,128x4096 128x65536,64,1,,10,\n"
	"recall,all,ns cs,2048,16 32 64 128,1,,4,\n"
	"recall,all,nc cc,128x2048,16 32 64 128,1,,4,\n"
	RECALL_PACKED_ROWS
	"decode,all,cs,1024 4096,64,8,,1,\n";

/*
 * full: lengths up to 16384 (65,536 for cross passkey), GQA and d = 128 too, in an hour;
 * speed from 64 and recall long range and packed, as in default.
 */
static const char full_csv[] = HEADER
	"fidelity,all,all,512x256 2048x1024 4096x2048,64,4,,1,\n"
	"fidelity,all,all,1024x512,128,8,2,2,\n"
	"speed,all,all,64 128 256 512 1024 2048 4096 8192 16384,64,8,,1,\n"
	"speed,all,all,1024 4096,128,8,2,1,\n"
	"causality,all,all,1024 4096,64,4,,1,\n"
	"passkey,all,ns cs,1024 4096 16384,64,1,,10,\n"
	"passkey,all,nc cc,128x4096 128x16384 128x65536,64,1,,10,\n"
	"recall,all,ns cs,2048 8192,16 32 64 128,1,,4,\n"
	"recall,all,nc cc,128x2048 128x8192,16 32 64 128,1,,4,\n"
	RECALL_PACKED_ROWS
	"decode,all,cs,1024 4096 16384,64,8,,1,\n";

static const struct {
	const char *csv;
	struct measure_opts measure;
} builtin_defs[] = {
	/*
	 * warm-up, min repeats, min seconds, max repeats, long call. Short cells repeat
	 * until the seconds are spent (thousands of samples at N = 64); long ones stop at the
	 * repeats: fewer repeats on long cells is where a suite's time goes, not fewer
	 * lengths. Six, two per round, put the median inside [min, max] with 96.9% (stored
	 * as latency_ci_level); 20 (95.9% between the 6th and 15th) made default's speed task
	 * 13 minutes on two cores, two thirds of it in the cells of 2048 and 4096. Calls of
	 * 0.2 s or more stop at one per round, three in all: [min, max] holds the median with
	 * 75%, and such calls vary least; they are most of full's time (N = 8192, 16384)
	 * and the quadratic variants' cells at 4096 in default.
	 * default's 0.03 s still gives dozens to hundreds of samples below N = 512. quick's 5
	 * reach 93.75%.
	 */
	{ quick_csv, { 1, 5, 0.05, 1000, 0.2 } },
	{ default_csv, { 1, 6, 0.03, 10000, 0.2 } },
	{ full_csv, { 1, 6, 0.25, 10000, 0.2 } },
};

const struct suite_info suite_builtins[] = {
	{ "quick", "every task, pattern and variant at small sizes (under a minute)" },
	{ "default", "speed 64..4096, passkey to 65536, recall P 16..1024 (~9 min on 2 cores)" },
	{ "full", "speed 64..16384, passkey to 16384, GQA and d = 128 rows (~47 min on 2 cores)" },
	{ NULL, NULL },
};

const char *suite_builtin_csv(const char *name)
{
	for (int i = 0; suite_builtins[i].name; i++)
		if (!strcmp(suite_builtins[i].name, name))
			return builtin_defs[i].csv;
	return NULL;
}

/* Calls fn on each item of a list separated by spaces, commas or semicolons. */
static int for_each_item(const char *text, int (*fn)(const char *item, void *arg), void *arg)
{
	char *copy = strdup(text), *item, *save = NULL;
	int ret = 0;

	if (!copy)
		return -ENOMEM;
	for (item = strtok_r(copy, " ,;\t", &save); item && !ret;
	     item = strtok_r(NULL, " ,;\t", &save))
		ret = fn(item, arg);
	free(copy);
	return ret;
}

struct list_ctx {
	const char *what;
	int min, max;
	void *out;
	int *count;
	char *why;
	size_t why_len;
};

static int too_many(struct list_ctx *c)
{
	snprintf(c->why, c->why_len, "too many %s (at most %d)", c->what, SUITE_MAX_LIST);
	return -EINVAL;
}

static int parse_int(const char *item, const char *what, int min, int max, int *value,
		     char *why, size_t why_len)
{
	char *end;
	long x;

	errno = 0;
	x = strtol(item, &end, 10);
	if (*end || end == item || errno) {
		snprintf(why, why_len, "%s '%s' is not a whole number", what, item);
		return -EINVAL;
	}
	if (x < min || x > max) {
		snprintf(why, why_len, "%s %s is out of range (accepted: %d..%d)", what, item,
			 min, max);
		return -EINVAL;
	}
	*value = (int)x;
	return 0;
}

static int int_item(const char *item, void *arg)
{
	struct list_ctx *c = arg;
	int *out = c->out;

	if (*c->count == SUITE_MAX_LIST)
		return too_many(c);
	return parse_int(item, c->what, c->min, c->max, &out[(*c->count)++], c->why,
			 c->why_len);
}

static int finish_list(int ret, struct list_ctx *c)
{
	if (!ret && *c->count == 0) {
		snprintf(c->why, c->why_len, "empty list of %s", c->what);
		return -EINVAL;
	}
	return ret;
}

int parse_int_list(const char *text, const char *what, int min, int max, int *out,
		   int *count, char *why, size_t why_len)
{
	struct list_ctx c = { what, min, max, out, count, why, why_len };

	*count = 0;
	return finish_list(for_each_item(text, int_item, &c), &c);
}

static int length_item(const char *item, void *arg)
{
	struct list_ctx *c = arg;
	struct length *out = c->out;
	char n_text[32];
	const char *x = strchr(item, 'x');
	struct length l = { 0, 0 };

	if (*c->count == SUITE_MAX_LIST)
		return too_many(c);
	if (x && (size_t)(x - item) < sizeof(n_text)) {
		memcpy(n_text, item, (size_t)(x - item));
		n_text[x - item] = '\0';
		if (parse_int(n_text, "length", 1, SUITE_MAX_LENGTH, &l.n, c->why, c->why_len) ||
		    parse_int(x + 1, "length", 1, SUITE_MAX_LENGTH, &l.m, c->why, c->why_len))
			return -EINVAL;
	} else if (parse_int(item, "length", 1, SUITE_MAX_LENGTH, &l.n, c->why, c->why_len)) {
		return -EINVAL;
	}
	out[(*c->count)++] = l;
	return 0;
}

int parse_length_list(const char *text, struct length *out, int *count, char *why,
		      size_t why_len)
{
	struct list_ctx c = { "lengths", 1, SUITE_MAX_LENGTH, out, count, why, why_len };

	*count = 0;
	return finish_list(for_each_item(text, length_item, &c), &c);
}

static int pattern_item(const char *item, void *arg)
{
	struct list_ctx *c = arg;
	unsigned int *patterns = c->out;
	int p = pattern_parse(item);

	if (!strcmp(item, "all")) {
		*patterns |= PATTERNS_ALL;
	} else if (p < 0) {
		snprintf(c->why, c->why_len, "unknown pattern '%s' (accepted: ns, cs, nc, cc, all)",
			 item);
		return -EINVAL;
	} else {
		*patterns |= PATTERN_BIT(p);
	}
	(*c->count)++;
	return 0;
}

int parse_pattern_list(const char *text, unsigned int *patterns, char *why, size_t why_len)
{
	int count = 0;
	struct list_ctx c = { "patterns", 0, 0, patterns, &count, why, why_len };

	*patterns = 0;
	return finish_list(for_each_item(text, pattern_item, &c), &c);
}

static int variant_item(const char *item, void *arg)
{
	struct list_ctx *c = arg;
	const struct variant_ops **out = c->out;
	const struct variant_ops *v = variant_find(item);

	if (!strcmp(item, "all")) {
		for (int i = 0; i < variant_count() && i < SUITE_MAX_LIST; i++)
			out[i] = variant_at(i);
		*c->count = variant_count() < SUITE_MAX_LIST ? variant_count() : SUITE_MAX_LIST;
		return 0;
	}
	if (!v) {
		snprintf(c->why, c->why_len, "unknown variant '%s' (see 'attnbench list variants')",
			 item);
		return -EINVAL;
	}
	for (int i = 0; i < *c->count; i++)
		if (out[i] == v)
			return 0;
	if (*c->count == SUITE_MAX_LIST)
		return too_many(c);
	out[(*c->count)++] = v;
	return 0;
}

int parse_variant_list(const char *text, const struct variant_ops **out, int *count,
		       char *why, size_t why_len)
{
	struct list_ctx c = { "variants", 0, 0, out, count, why, why_len };

	*count = 0;
	return finish_list(for_each_item(text, variant_item, &c), &c);
}

static int task_item(const char *item, void *arg)
{
	struct list_ctx *c = arg;
	const struct task_ops **out = c->out;
	const struct task_ops *t = task_find(item);
	char names[256] = "";

	if (!t) {
		for (int i = 0; i < task_count(); i++) {
			strcat(names, i ? ", " : "");
			strcat(names, task_at(i)->name);
		}
		snprintf(c->why, c->why_len, "unknown task '%s' (accepted: %s)", item, names);
		return -EINVAL;
	}
	for (int i = 0; i < *c->count; i++)
		if (out[i] == t)
			return 0;
	if (*c->count == SUITE_MAX_LIST)
		return too_many(c);
	out[(*c->count)++] = t;
	return 0;
}

int parse_task_list(const char *text, const struct task_ops **out, int *count, char *why,
		    size_t why_len)
{
	struct list_ctx c = { "tasks", 0, 0, out, count, why, why_len };

	*count = 0;
	return finish_list(for_each_item(text, task_item, &c), &c);
}

enum column {
	COL_TASK, COL_VARIANTS, COL_PATTERNS, COL_LENGTHS, COL_DIMS, COL_HEADS,
	COL_KV_HEADS, COL_BATCH, COL_REGIMES, COL_COUNT,
};

static const char *const column_names[COL_COUNT] = {
	"task", "variants", "patterns", "lengths", "dims", "heads", "kv_heads", "batch",
	"regimes",
};

#define MAX_FIELD 4096

struct parse_state {
	struct suite *suite;
	const char *source;
	int columns[COL_COUNT + 8];	/* column index -> enum column */
	int n_columns;
	char fields[COL_COUNT][MAX_FIELD];
	int field;		/* index of the next field in the current row */
	int row;		/* 1-based row number in the file */
	bool header_done;
	bool comment;		/* the row's first field starts with '#' */
	int ret;
	char *why;
	size_t why_len;
};

static void fail(struct parse_state *ps, const char *reason)
{
	if (ps->ret)
		return;
	snprintf(ps->why, ps->why_len, "suite '%s' row %d: %s", ps->source, ps->row, reason);
	ps->ret = -EINVAL;
}

static void on_field(void *data, size_t len, void *arg)
{
	struct parse_state *ps = arg;
	const char *text = data ? data : "";
	int at = ps->field++;

	if (ps->ret)
		return;
	if (at == 0 && len > 0 && text[0] == '#' && ps->header_done)
		ps->comment = true;
	if (ps->comment)
		return;
	if (len >= MAX_FIELD || memchr(text, '\0', len)) {
		fail(ps, "field too long or holds a NUL byte");
		return;
	}
	if (!ps->header_done) {
		int col = -1;

		for (int c = 0; c < COL_COUNT; c++)
			if (strlen(column_names[c]) == len && !memcmp(column_names[c], text, len))
				col = c;
		if (col < 0 || at >= COL_COUNT) {
			char reason[MAX_FIELD + 128];

			snprintf(reason, sizeof(reason), "unknown column '%.*s' (accepted: task, "
				 "variants, patterns, lengths, dims, heads, kv_heads, batch, "
				 "regimes)", (int)(len > 64 ? 64 : len), text);
			fail(ps, reason);
			return;
		}
		for (int c = 0; c < at; c++)
			if (ps->columns[c] == col)
				fail(ps, "duplicate column in the header");
		ps->columns[at] = col;
		ps->n_columns = at + 1;
		return;
	}
	if (at >= ps->n_columns) {
		fail(ps, "more fields than the header has columns");
		return;
	}
	memcpy(ps->fields[ps->columns[at]], text, len);
	ps->fields[ps->columns[at]][len] = '\0';
}

static int regime_item(const char *item, void *arg)
{
	struct list_ctx *c = arg;
	const struct task_ops *t = c->out;
	int i = task_regime_index(t, item);

	if (!strcmp(item, "all"))
		return 0;
	if (i < 0) {
		snprintf(c->why, c->why_len, "task '%s' has no regime '%s'", t->name, item);
		return -EINVAL;
	}
	*c->count |= 1 << i;
	return 0;
}

/* Turns the fields of one data row into a suite row. */
static int build_row(struct parse_state *ps, struct suite_row *r, char *why, size_t len)
{
	char (*f)[MAX_FIELD] = ps->fields;
	int regimes = 0;

	memset(r, 0, sizeof(*r));
	r->task = task_find(f[COL_TASK]);
	if (!r->task) {
		const struct task_ops *named[SUITE_MAX_LIST];
		int count;

		if (!parse_task_list(f[COL_TASK], named, &count, why, len))
			snprintf(why, len, "one task per row, not '%.64s'", f[COL_TASK]);
		return -EINVAL;
	}
	if (f[COL_VARIANTS][0] && strcmp(f[COL_VARIANTS], "all") &&
	    parse_variant_list(f[COL_VARIANTS], r->variants, &r->n_variants, why, len))
		return -EINVAL;
	if (f[COL_PATTERNS][0] && strcmp(f[COL_PATTERNS], "all") &&
	    parse_pattern_list(f[COL_PATTERNS], &r->patterns, why, len))
		return -EINVAL;
	if (r->patterns & ~r->task->patterns) {
		snprintf(why, len, "task '%s' is not defined for every pattern listed",
			 r->task->name);
		return -EINVAL;
	}
	if (parse_length_list(f[COL_LENGTHS][0] ? f[COL_LENGTHS] : "1024", r->lengths,
			      &r->n_lengths, why, len) ||
	    parse_int_list(f[COL_DIMS][0] ? f[COL_DIMS] : "64", "dim", 1, SUITE_MAX_DIM,
			   r->dims, &r->n_dims, why, len) ||
	    parse_int_list(f[COL_HEADS][0] ? f[COL_HEADS] : "8", "heads", 1, SUITE_MAX_HEADS,
			   r->heads, &r->n_heads, why, len) ||
	    parse_int_list(f[COL_BATCH][0] ? f[COL_BATCH] : "1", "batch", 1, SUITE_MAX_BATCH,
			   r->batch, &r->n_batch, why, len))
		return -EINVAL;
	if (f[COL_KV_HEADS][0] && parse_int_list(f[COL_KV_HEADS], "kv_heads", 1,
						 SUITE_MAX_HEADS, r->kv_heads, &r->n_kv_heads,
						 why, len))
		return -EINVAL;
	if (f[COL_REGIMES][0]) {
		struct list_ctx c = { "regimes", 0, 0, (void *)r->task, &regimes, why, len };

		if (!r->task->regimes) {
			snprintf(why, len, "task '%s' takes no regimes", r->task->name);
			return -EINVAL;
		}
		if (for_each_item(f[COL_REGIMES], regime_item, &c))
			return -EINVAL;
		r->regimes = (unsigned int)regimes;
	}
	return 0;
}

/* Handles the end of a row; errors name ps->row, counted after. */
static void finish_row(struct parse_state *ps, int fields)
{
	char why[512];

	if (!ps->header_done) {
		bool has_task = false;

		for (int c = 0; c < ps->n_columns; c++)
			has_task |= ps->columns[c] == COL_TASK;
		if (!has_task)
			fail(ps, "the header has no 'task' column");
		ps->header_done = true;
		return;
	}
	if (ps->comment)
		return;
	if (fields != ps->n_columns)
		fail(ps, "fewer fields than the header has columns");
	else if (ps->suite->n_rows == SUITE_MAX_ROWS)
		fail(ps, "too many rows");
	else if (build_row(ps, &ps->suite->rows[ps->suite->n_rows], why, sizeof(why)))
		fail(ps, why);
	else
		ps->suite->n_rows++;
}

static void on_row(int terminator, void *arg)
{
	struct parse_state *ps = arg;

	(void)terminator;
	if (!ps->ret)
		finish_row(ps, ps->field);
	for (int c = 0; c < COL_COUNT; c++)
		ps->fields[c][0] = '\0';
	ps->field = 0;
	ps->comment = false;
	ps->row++;
}

int suite_parse(const char *text, size_t len, const char *source, struct suite *s,
		char *why, size_t why_len)
{
	struct parse_state *ps = calloc(1, sizeof(*ps));
	struct csv_parser parser;
	int ret;

	if (!ps || csv_init(&parser, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL)) {
		free(ps);
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	memset(s->rows, 0, sizeof(s->rows));
	s->n_rows = 0;
	snprintf(s->name, sizeof(s->name), "%s", source);
	s->measure = builtin_defs[1].measure;
	*ps = (struct parse_state){ .suite = s, .source = source, .row = 1, .why = why,
				    .why_len = why_len };
	if (csv_parse(&parser, text, len, on_field, on_row, ps) != len ||
	    csv_fini(&parser, on_field, on_row, ps)) {
		if (!ps->ret)
			snprintf(why, why_len, "suite '%s' row %d: %s", source, ps->row,
				 csv_strerror(csv_error(&parser)));
		ps->ret = -EINVAL;
	}
	csv_free(&parser);
	if (!ps->ret && s->n_rows == 0) {
		snprintf(why, why_len, "suite '%s' has no rows", source);
		ps->ret = -EINVAL;
	}
	ret = ps->ret;
	free(ps);
	return ret;
}

/* Suite files are small; this refuses reading a huge file by mistake. */
#define SUITE_MAX_FILE (1 << 20)

int suite_load(const char *name, struct suite *s, char *why, size_t why_len)
{
	char *text;
	size_t len;
	FILE *f;
	int ret;

	for (int i = 0; suite_builtins[i].name; i++)
		if (!strcmp(suite_builtins[i].name, name)) {
			ret = suite_parse(builtin_defs[i].csv, strlen(builtin_defs[i].csv), name, s,
					  why, why_len);
			s->measure = builtin_defs[i].measure;
			return ret;
		}
	f = fopen(name, "rb");
	if (!f) {
		snprintf(why, why_len, "no suite or suite file '%s' (built-in: quick, default, "
			 "full; or a CSV file): %s", name, strerror(errno));
		return -ENOENT;
	}
	text = malloc(SUITE_MAX_FILE + 1);
	len = text ? fread(text, 1, SUITE_MAX_FILE + 1, f) : 0;
	fclose(f);
	if (!text || len > SUITE_MAX_FILE) {
		free(text);
		snprintf(why, why_len, "suite file '%s' is larger than %d bytes", name,
			 SUITE_MAX_FILE);
		return -EINVAL;
	}
	ret = suite_parse(text, len, name, s, why, why_len);
	free(text);
	return ret;
}
