/*
 * csv-import.c - reading CSV for import (csv-import.h): libcsv splits the fields, fed a
 * line at a time so that an error can name its line; the header is matched against the
 * columns of runs and cells; every field is checked against its column's kind by
 * validate.c (as merge checks the rows of a database), and the rows of one run must
 * agree. Nothing here touches the database: the result is the parsed file of
 * csv-format.h.
 */
#include "csv-import.h"

#include <csv.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "csv-export.h"
#include "csv-format.h"
#include "validate.h"
#include "why.h"

enum role { ROLE_RUN_KEY, ROLE_RUN, ROLE_CELL, ROLE_METRIC, ROLE_SAMPLES,
	    ROLE_SAMPLE_ROUNDS, ROLE_TRIALS, ROLE_RUN_METRICS };

struct header_column {
	enum role role;
	size_t index;		/* into csv_run_columns, csv_cell_columns or the metrics */
	char *name;		/* as the header spells it */
};

struct field {
	char *text;		/* NULL for an unquoted empty field */
	size_t len;
};

struct parser {
	struct csv_import_data *d;
	struct validator *check;
	sqlite3_stmt *rm_check, *rm_rows;	/* on the validator's scratch database */
	struct header_column *cols;
	size_t n_cols;
	struct field *fields;
	size_t n_fields, cap_fields;
	int line;		/* the physical line being read */
	int row_line;		/* where the current row began */
	bool row_pending;	/* a row has begun and not ended */
	bool header_done;
	int ret;
	char *why;
	size_t why_len;
};

static void value_release(struct csv_value *v)
{
	free(v->s);
	memset(v, 0, sizeof(*v));
	v->type = SQLITE_NULL;
}

static void run_release(struct csv_run *r)
{
	for (int c = 0; c < R_COUNT; c++)
		value_release(&r->v[c]);
	free(r->run_metrics);
	for (size_t i = 0; i < r->n_rm; i++)
		for (int k = 0; k < CSV_RM_KEYS; k++)
			free(r->rm[i].keys[k]);
	free(r->rm);
}

static void cell_release(struct csv_cell *c)
{
	for (int i = 0; i < C_COUNT; i++)
		value_release(&c->v[i]);
	free(c->metrics);
	free(c->sample_idx);
	free(c->round_idx);
	free(c->rounds);
	free(c->samples);
	free(c->trial_idx);
	free(c->trials);
}

void csv_import_free(struct csv_import_data *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n_runs; i++)
		run_release(&d->runs[i]);
	for (size_t i = 0; i < d->n_cells; i++)
		cell_release(&d->cells[i]);
	free(d->runs);
	free(d->cells);
	csv_metric_columns_free(d->metrics, d->n_metrics);
	free(d);
}

size_t csv_import_run_count(const struct csv_import_data *d)
{
	return d->n_runs;
}

size_t csv_import_cell_count(const struct csv_import_data *d)
{
	return d->n_cells;
}

static const char *shown(const char *text, size_t len, char *out, size_t out_len)
{
	return validate_shown(text, len, out, out_len);
}

static void fail(struct parser *p, const char *column, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Records the first error: "line L[, column 'C']: message". */
static void fail(struct parser *p, const char *column, const char *fmt, ...)
{
	char message[512];
	va_list ap;

	if (p->ret)
		return;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (column)
		why_set(p->why, p->why_len, "line %d, column '%s': %s", p->row_line, column,
			message);
	else
		why_set(p->why, p->why_len, "line %d: %s", p->row_line, message);
	p->ret = -EINVAL;
}

static void fail_nomem(struct parser *p)
{
	if (!p->ret)
		p->ret = why_fail(-ENOMEM, p->why, p->why_len, "out of memory");
}

/* Strict numbers: the whole field, no spaces. */
static bool parse_real(const char *s, double *x)
{
	char *end;

	if (!*s || *s == ' ' || *s == '\t')
		return false;
	errno = 0;
	*x = strtod(s, &end);
	return !*end && !(errno == ERANGE && fabs(*x) > 1);
}

static bool parse_int(const char *s, int64_t *x)
{
	char *end;
	long long v;

	if (!*s || *s == ' ' || *s == '\t')
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end || errno)
		return false;
	*x = v;
	return true;
}

/*
 * Checks x against column c with validate_value(), recording a refusal under header.
 * Returns whether it was accepted.
 */
static bool checked(struct parser *p, const struct csv_column *c, const char *header,
		    const struct stored_value *x)
{
	char why[512];
	int ret = validate_value(p->check, c, x, why, sizeof(why));

	if (ret == -EINVAL)
		fail(p, header, "%s", why);
	else if (ret && !p->ret)
		p->ret = why_fail(ret, p->why, p->why_len, "%s", why);
	return !ret;
}

/*
 * A field as the value it stands for: text kinds as text, without the leading ' of the
 * spreadsheet rule; number kinds parsed, or as text when they do not parse (which the
 * check then refuses); empty as NULL (an empty quoted field is empty text).
 */
static struct stored_value field_stored(const struct field *f, enum csv_kind kind)
{
	struct stored_value x = { .type = SQLITE_NULL };
	const char *s = f->text;
	size_t len = f->len;

	if (!s || (!len && !csv_is_text_kind(kind)))
		return x;
	if (csv_is_text_kind(kind) && csv_has_formula_guard(s, len)) {
		s++;
		len--;
	}
	x.type = SQLITE_TEXT;
	x.s = s;
	x.len = len;
	if (kind == K_INT || kind == K_COUNT || kind == K_SIZE || kind == K_BIT) {
		if (parse_int(s, &x.i))
			x.type = SQLITE_INTEGER;
	} else if (kind == K_REAL || kind == K_NUMBER) {
		if (parse_real(s, &x.r))
			x.type = SQLITE_FLOAT;
	}
	return x;
}

/*
 * Turns a field into the value of a column of the given kind. Returns false (with the
 * error recorded) when the field is not acceptable.
 */
static bool field_value(struct parser *p, struct field *f, const struct csv_column *c,
			const char *header, struct csv_value *v)
{
	struct stored_value x = field_stored(f, c->kind);

	value_release(v);
	if (!checked(p, c, header, &x))
		return false;
	v->type = x.type;
	v->i = x.i;
	v->r = x.r;
	if (x.type != SQLITE_TEXT)
		return true;
	v->s = malloc(x.len + 1);
	if (!v->s) {
		fail_nomem(p);
		return false;
	}
	memcpy(v->s, x.s, x.len);
	v->s[x.len] = '\0';
	v->len = x.len;
	return true;
}

static bool values_equal(const struct csv_value *a, const struct csv_value *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case SQLITE_INTEGER:
		return a->i == b->i;
	case SQLITE_FLOAT:
		return a->r == b->r;
	case SQLITE_TEXT:
		return a->len == b->len && !memcmp(a->s, b->s, a->len);
	default:
		return true;
	}
}

/* What a list column holds. */
enum list_kind {
	LIST_SECONDS,	/* samples_s: finite seconds >= 0 */
	LIST_ROUNDS,	/* sample_rounds: whole numbers >= 1 */
	LIST_TRIALS,	/* trials: 0 or 1 */
};

/*
 * Parses a list column: items separated by spaces, each "value" or "idx:value"; indexes
 * rise strictly from 0. Seconds go to *real_out, rounds and trials to *int_out.
 */
static bool parse_list(struct parser *p, const char *header, struct field *f,
		       enum list_kind kind, int64_t **idx_out, double **real_out, int **int_out,
		       size_t *count)
{
	/* what merge checks the same values of a database's tables against */
	static const struct csv_column *const columns[] = {
		[LIST_SECONDS] = &validate_sample_columns[S_SECONDS],
		[LIST_ROUNDS] = &validate_sample_columns[S_ROUND],
		[LIST_TRIALS] = &validate_trial_columns[T_CORRECT],
	};
	char *s = f->text, *item, *save = NULL, why[256];
	size_t n = 0, cap_idx = 0, cap_values = 0;
	int64_t next = 0, *idx = NULL;
	double *reals = NULL;
	int *ints = NULL;
	bool ok = true;

	*count = 0;
	if (!s || !f->len)
		return true;
	for (item = strtok_r(s, " \t", &save); item && ok; item = strtok_r(NULL, " \t", &save)) {
		char *colon = strchr(item, ':'), *value = item;
		int64_t at = next;
		struct field vf;
		struct stored_value x;
		int ret;

		if (colon) {
			*colon = '\0';
			value = colon + 1;
			if (!parse_int(item, &at) || at < next) {
				fail(p, header, "item %zu: index '%s' is not a whole number above the "
				     "previous one", n + 1, item);
				ok = false;
				break;
			}
		}
		vf.text = value;
		vf.len = strlen(value);
		x = field_stored(&vf, columns[kind]->kind);
		ret = validate_value(p->check, columns[kind], &x, why, sizeof(why));
		if (ret) {
			if (ret == -EINVAL)
				fail(p, header, "item %zu: %s", n + 1, why);
			else if (!p->ret)
				p->ret = why_fail(ret, p->why, p->why_len, "%s", why);
			ok = false;
			break;
		}
		if (buf_grow(&idx, n, &cap_idx, sizeof(*idx)) ||
		    (kind == LIST_SECONDS ? buf_grow(&reals, n, &cap_values, sizeof(*reals)) :
					    buf_grow(&ints, n, &cap_values, sizeof(*ints)))) {
			fail_nomem(p);
			ok = false;
			break;
		}
		idx[n] = at;
		if (kind == LIST_SECONDS)
			reals[n] = x.r;
		else
			ints[n] = (int)x.i;
		n++;
		next = at + 1;
	}
	if (!ok) {
		free(idx);
		free(reals);
		free(ints);
		return false;
	}
	*idx_out = idx;
	if (kind == LIST_SECONDS)
		*real_out = reals;
	else
		*int_out = ints;
	*count = n;
	return true;
}

/*
 * Column col of a row of rm_rows as the value it stands for, by its JSON type (at col - 1):
 * strings as text, numbers and null as such, the rest as a BLOB, which no column accepts.
 */
static struct stored_value json_stored(sqlite3_stmt *st, int col)
{
	const char *type = (const char *)sqlite3_column_text(st, col - 1);
	struct stored_value x = { .type = SQLITE_NULL };

	if (!type)
		return x;
	x.type = sqlite3_column_type(st, col);
	if (strcmp(type, "text") && strcmp(type, "integer") && strcmp(type, "real") &&
	    strcmp(type, "null")) {
		x.type = SQLITE_BLOB;
	} else if (x.type == SQLITE_TEXT) {
		x.s = (const char *)sqlite3_column_text(st, col);
		x.len = (size_t)sqlite3_column_bytes(st, col);
	} else if (x.type == SQLITE_INTEGER) {
		x.i = sqlite3_column_int64(st, col);
	} else {
		x.r = sqlite3_column_double(st, col);
	}
	return x;
}

/* Parses the run_metrics JSON of a new run into r->rm. */
static bool parse_run_metrics(struct parser *p, const char *header, struct csv_run *r)
{
	sqlite3_stmt *st = p->rm_rows;
	size_t cap = 0;
	int rc;

	if (!r->run_metrics)
		return true;
	if (validate_scratch_check(p->rm_check, r->run_metrics, strlen(r->run_metrics)) != 1) {
		fail(p, header, "is not a JSON array of objects");
		return false;
	}
	sqlite3_bind_text(st, 1, r->run_metrics, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct csv_run_metric m = { 0 };
		struct stored_value x[RM_COUNT];
		bool bad = sqlite3_column_int(st, 0) != CSV_RM_KEYS + 1;
		char why[256];

		/* the keys in table order: variant, pattern, baseline, name, then value, unit */
		for (int k = 0; k < RM_VALUE; k++)
			x[k] = json_stored(st, 2 + 2 * k);
		x[RM_VALUE] = json_stored(st, 2 + 2 * CSV_RM_KEYS);
		x[RM_UNIT] = json_stored(st, 2 + 2 * (CSV_RM_KEYS - 1));
		for (int k = 0; k < RM_COUNT && !bad; k++) {
			int ret = validate_value(p->check, &validate_run_metric_columns[k], &x[k],
						 why, sizeof(why));

			if (ret && ret != -EINVAL) {
				if (!p->ret)
					p->ret = why_fail(ret, p->why, p->why_len, "%s", why);
				break;
			}
			bad = ret;
		}
		if (p->ret)
			break;
		for (int k = 0; k < CSV_RM_KEYS && !bad; k++) {
			const struct stored_value *key = &x[k < RM_VALUE ? k : RM_UNIT];

			m.keys[k] = strndup(key->s, key->len);
			if (!m.keys[k]) {
				fail_nomem(p);
				bad = true;
			}
		}
		if (!bad) {
			m.null = x[RM_VALUE].type == SQLITE_NULL;
			m.value = x[RM_VALUE].type == SQLITE_INTEGER ? (double)x[RM_VALUE].i :
				  x[RM_VALUE].r;
		}
		for (size_t i = 0; i < r->n_rm && !bad; i++) {
			bool same = true;

			for (int k = 0; k < CSV_RM_KEYS - 1; k++)
				same &= !strcmp(r->rm[i].keys[k], m.keys[k]);
			if (same) {
				fail(p, header, "item %zu repeats variant, pattern, baseline and "
				     "name of item %zu", r->n_rm + 1, i + 1);
				bad = true;
			}
		}
		if (!bad && buf_grow(&r->rm, r->n_rm, &cap, sizeof(*r->rm))) {
			fail_nomem(p);
			bad = true;
		}
		if (bad) {
			fail(p, header, "item %zu needs exactly the keys variant, pattern, "
			     "baseline, name (non-empty strings), unit (a string) and value (a "
			     "number or null)", r->n_rm + 1);
			for (int k = 0; k < CSV_RM_KEYS; k++)
				free(m.keys[k]);
			break;
		}
		r->rm[r->n_rm++] = m;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (!p->ret && rc != SQLITE_DONE)
		fail(p, header, "is not a JSON array of objects");
	return !p->ret;
}

static int header_find(const struct parser *p, enum role role, size_t index)
{
	for (size_t i = 0; i < p->n_cols; i++)
		if (p->cols[i].role == role && (role == ROLE_RUN_KEY || role == ROLE_SAMPLES ||
						role == ROLE_SAMPLE_ROUNDS ||
						role == ROLE_TRIALS || role == ROLE_RUN_METRICS ||
						p->cols[i].index == index))
			return (int)i;
	return -1;
}

/* Reads the header row: known names only, each once, every required column present. */
static void parse_header(struct parser *p)
{
	struct csv_import_data *d = p->d;
	size_t cap_metrics = 0;
	char show[64];

	p->cols = calloc(p->n_fields ? p->n_fields : 1, sizeof(*p->cols));
	if (!p->cols) {
		fail_nomem(p);
		return;
	}
	for (size_t i = 0; i < p->n_fields && !p->ret; i++) {
		struct field *f = &p->fields[i];
		struct header_column *h = &p->cols[i];
		const char *s = f->text ? f->text : "";
		bool known = true;

		shown(s, f->len, show, sizeof(show));
		if (!f->text || !f->len || !validate_utf8(s, f->len)) {
			fail(p, NULL, "column %zu of the header has no name", i + 1);
			break;
		}
		h->name = strdup(s);
		if (!h->name) {
			fail_nomem(p);
			break;
		}
		p->n_cols = i + 1;
		if (!strcmp(s, "run_key")) {
			h->role = ROLE_RUN_KEY;
		} else if (!strcmp(s, "samples_s")) {
			h->role = ROLE_SAMPLES;
		} else if (!strcmp(s, "sample_rounds")) {
			h->role = ROLE_SAMPLE_ROUNDS;
		} else if (!strcmp(s, "trials")) {
			h->role = ROLE_TRIALS;
		} else if (!strcmp(s, "run_metrics")) {
			h->role = ROLE_RUN_METRICS;
		} else if (!strncmp(s, CSV_METRIC_PREFIX, strlen(CSV_METRIC_PREFIX))) {
			const char *name = s + strlen(CSV_METRIC_PREFIX), *open = strchr(name, '[');
			struct csv_metric_column m;
			struct stored_value x = { .type = SQLITE_TEXT, .s = name };
			char why[256];

			if (open)
				x.len = (size_t)(open - name);
			if (!open || s[f->len - 1] != ']' ||
			    validate_value(p->check, &validate_metric_columns[M_NAME], &x, why,
					   sizeof(why))) {
				fail(p, NULL, "header column '%s' is not metric:NAME[UNIT]", show);
				break;
			}
			m.name = strndup(name, (size_t)(open - name));
			m.unit = strndup(open + 1, (size_t)(s + f->len - 1 - (open + 1)));
			if (!m.name || !m.unit) {
				free(m.name);
				free(m.unit);
				fail_nomem(p);
				break;
			}
			for (size_t k = 0; k < d->n_metrics; k++)
				if (!csv_metric_column_compare(&d->metrics[k], &m)) {
					fail(p, NULL, "header column '%s' appears twice", show);
					break;
				}
			if (!p->ret && buf_grow(&d->metrics, d->n_metrics, &cap_metrics,
						sizeof(*d->metrics)))
				fail_nomem(p);
			if (p->ret) {
				free(m.name);
				free(m.unit);
				break;
			}
			h->role = ROLE_METRIC;
			h->index = d->n_metrics;
			d->metrics[d->n_metrics++] = m;
			continue;
		} else {
			known = false;
			for (int c = 0; c < R_COUNT && !known; c++)
				if (!strncmp(s, "run_", 4) &&
				    !strcmp(s + 4, csv_run_columns[c].name)) {
					h->role = ROLE_RUN;
					h->index = (size_t)c;
					known = true;
				}
			for (int c = 0; c < C_COUNT && !known; c++)
				if (!strcmp(s, csv_cell_columns[c].name)) {
					h->role = ROLE_CELL;
					h->index = (size_t)c;
					known = true;
				}
		}
		if (!known) {
			fail(p, NULL, "unknown column '%s' in the header (see 'Export, import, "
			     "merge' in README.md)", show);
			break;
		}
		for (size_t k = 0; k < i; k++)
			if (!strcmp(p->cols[k].name, h->name)) {
				fail(p, NULL, "header column '%s' appears twice", show);
				break;
			}
	}
	for (int c = 0; c < R_COUNT && !p->ret; c++)
		if (csv_run_columns[c].required && header_find(p, ROLE_RUN, (size_t)c) < 0)
			fail(p, NULL, "the header lacks the required column 'run_%s'",
			     csv_run_columns[c].name);
	for (int c = 0; c < C_COUNT && !p->ret; c++)
		if (csv_cell_columns[c].required && header_find(p, ROLE_CELL, (size_t)c) < 0)
			fail(p, NULL, "the header lacks the required column '%s'",
			     csv_cell_columns[c].name);
}

static struct csv_run *find_run(struct csv_import_data *d, const char *key)
{
	for (size_t i = d->n_runs; i-- > 0; )
		if (!strcmp(d->runs[i].key, key))
			return &d->runs[i];
	return NULL;
}

/* Validates one data row and adds its cell (and its run when new). */
static void parse_row(struct parser *p)
{
	struct csv_import_data *d = p->d;
	struct csv_cell cell = { 0 };
	struct csv_run run = { 0 };
	struct csv_run *known;
	const char *key_text = NULL, *rm_header = "run_metrics";
	size_t cap_metrics = 0;
	struct stored_value shape[C_COUNT];
	char key[17], show[64], why[256];
	int bad_column;
	bool ok = true;

	for (int c = 0; c < R_COUNT; c++)
		run.v[c].type = SQLITE_NULL;
	for (int c = 0; c < C_COUNT; c++)
		cell.v[c].type = SQLITE_NULL;
	if (p->n_fields != p->n_cols) {
		fail(p, NULL, "%zu fields, but the header has %zu columns", p->n_fields,
		     p->n_cols);
		return;
	}
	/* text first: no NUL bytes, valid UTF-8 */
	for (size_t i = 0; i < p->n_fields; i++) {
		struct field *f = &p->fields[i];

		if (f->text && !validate_utf8(f->text, f->len)) {
			fail(p, p->cols[i].name, "holds a NUL byte or is not valid UTF-8");
			return;
		}
	}
	for (size_t i = 0; i < p->n_fields && ok; i++) {
		struct header_column *h = &p->cols[i];
		struct field *f = &p->fields[i];

		switch (h->role) {
		case ROLE_RUN_KEY:
			key_text = f->text && f->len ?
				   f->text + csv_has_formula_guard(f->text, f->len) : NULL;
			break;
		case ROLE_RUN:
			ok = field_value(p, f, &csv_run_columns[h->index], h->name,
					 &run.v[h->index]);
			break;
		case ROLE_CELL:
			ok = field_value(p, f, &csv_cell_columns[h->index], h->name,
					 &cell.v[h->index]);
			break;
		case ROLE_METRIC: {
			struct csv_cell_metric m = { .column = h->index };
			struct stored_value x = field_stored(f, K_NUMBER);

			if (x.type == SQLITE_NULL)
				break;
			if (!checked(p, &validate_metric_columns[M_VALUE], h->name, &x)) {
				ok = false;
				break;
			}
			m.value = x.r;
			m.null = isnan(m.value);
			for (size_t k = 0; k < cell.n_metrics; k++)
				if (!strcmp(d->metrics[cell.metrics[k].column].name,
					    d->metrics[h->index].name)) {
					fail(p, h->name, "a second value for metric '%s' (in another "
					     "unit)", d->metrics[h->index].name);
					ok = false;
				}
			if (!ok)
				break;
			if (buf_grow(&cell.metrics, cell.n_metrics, &cap_metrics,
				     sizeof(*cell.metrics))) {
				fail_nomem(p);
				ok = false;
				break;
			}
			cell.metrics[cell.n_metrics++] = m;
			break;
		}
		case ROLE_SAMPLES:
			ok = parse_list(p, h->name, f, LIST_SECONDS, &cell.sample_idx, &cell.samples,
					NULL, &cell.n_samples);
			break;
		case ROLE_SAMPLE_ROUNDS:
			ok = parse_list(p, h->name, f, LIST_ROUNDS, &cell.round_idx, NULL,
					&cell.rounds, &cell.n_rounds);
			break;
		case ROLE_TRIALS:
			ok = parse_list(p, h->name, f, LIST_TRIALS, &cell.trial_idx, NULL,
					&cell.trials, &cell.n_trials);
			break;
		case ROLE_RUN_METRICS:
			rm_header = h->name;
			if (f->text && f->len) {
				const char *s = f->text + csv_has_formula_guard(f->text, f->len);

				run.run_metrics = strdup(s);
				if (!run.run_metrics) {
					fail_nomem(p);
					ok = false;
				}
			}
			break;
		}
	}
	if (!ok)
		goto fail;

	/* a round for every sample or none (all round 1, as before rounds) */
	if (cell.rounds && (cell.n_rounds != cell.n_samples ||
			    memcmp(cell.round_idx, cell.sample_idx,
				   sizeof(int64_t) * cell.n_samples))) {
		fail(p, "sample_rounds", "gives %zu rounds for %zu samples; it needs one round "
		     "per sample, at the same indexes as samples_s", cell.n_rounds,
		     cell.n_samples);
		goto fail;
	}

	/* the shape: self patterns have n = m; kv_heads divides heads */
	for (int c = 0; c < C_COUNT; c++)
		shape[c] = (struct stored_value){ .type = cell.v[c].type, .i = cell.v[c].i,
						  .r = cell.v[c].r, .s = cell.v[c].s,
						  .len = cell.v[c].len };
	if (validate_cell_shape(shape, &bad_column, why, sizeof(why))) {
		fail(p, csv_cell_columns[bad_column].name, "%s", why);
		goto fail;
	}

	csv_run_key(run.v[R_STARTED].s, run.v[R_HOSTNAME].s, run.v[R_COMMAND].s, key);
	if (key_text && strcasecmp(key_text, key)) {
		fail(p, "run_key", "'%s' is not the key of this row's run_started, run_hostname "
		     "and run_command (%s); leave it empty to have it computed",
		     shown(key_text, strlen(key_text), show, sizeof(show)), key);
		goto fail;
	}
	known = find_run(d, key);
	if (known) {
		for (int c = 0; c < R_COUNT; c++)
			if (!values_equal(&known->v[c], &run.v[c])) {
				char column[32];

				snprintf(column, sizeof(column), "run_%s", csv_run_columns[c].name);
				fail(p, column, "differs from line %d, an earlier row of the same run",
				     known->line);
				goto fail;
			}
		if ((known->run_metrics == NULL) != (run.run_metrics == NULL) ||
		    (run.run_metrics && strcmp(known->run_metrics, run.run_metrics))) {
			fail(p, rm_header, "differs from line %d, an earlier row of the same run",
			     known->line);
			goto fail;
		}
		run_release(&run);
		cell.run = (size_t)(known - d->runs);
	} else {
		if (!parse_run_metrics(p, rm_header, &run))
			goto fail;
		if (buf_grow(&d->runs, d->n_runs, &d->cap_runs, sizeof(*d->runs))) {
			fail_nomem(p);
			goto fail;
		}
		memcpy(run.key, key, sizeof(key));
		run.line = p->row_line;
		cell.run = d->n_runs;
		d->runs[d->n_runs++] = run;
	}
	if (buf_grow(&d->cells, d->n_cells, &d->cap_cells, sizeof(*d->cells))) {
		fail_nomem(p);
		/* the run, if new, is owned by d now */
		cell_release(&cell);
		return;
	}
	d->cells[d->n_cells++] = cell;
	return;
fail:
	run_release(&run);
	cell_release(&cell);
}

static void clear_fields(struct parser *p)
{
	for (size_t i = 0; i < p->n_fields; i++)
		free(p->fields[i].text);
	p->n_fields = 0;
}

static void on_field(void *data, size_t len, void *arg)
{
	struct parser *p = arg;
	struct field *f;

	if (!p->row_pending) {
		/* rows that end with a bare CR share a line with the next one */
		p->row_pending = true;
		p->row_line = p->line;
	}
	if (p->ret)
		return;
	if (buf_grow(&p->fields, p->n_fields, &p->cap_fields, sizeof(*p->fields))) {
		fail_nomem(p);
		return;
	}
	f = &p->fields[p->n_fields++];
	f->len = len;
	f->text = NULL;
	if (data) {
		f->text = malloc(len + 1);
		if (!f->text) {
			p->n_fields--;
			fail_nomem(p);
			return;
		}
		memcpy(f->text, data, len);
		f->text[len] = '\0';
	}
}

static void on_row(int terminator, void *arg)
{
	struct parser *p = arg;

	(void)terminator;
	if (!p->ret) {
		if (!p->header_done) {
			parse_header(p);
			p->header_done = true;
		} else {
			parse_row(p);
		}
	}
	clear_fields(p);
	p->row_pending = false;
}

/* libcsv trims spaces around unquoted fields unless told that nothing is a space. */
static int no_space(unsigned char c)
{
	(void)c;
	return 0;
}

static int open_scratch(struct parser *p)
{
	static const char rm_check[] =
		"SELECT CASE WHEN NOT json_valid(?1) THEN 0"
		" WHEN json_type(?1) != 'array' THEN 0"
		" WHEN EXISTS (SELECT 1 FROM json_each(?1) WHERE type != 'object') THEN 0"
		" ELSE 1 END";
	static const char rm_rows[] =
		"SELECT (SELECT count(*) FROM json_each(e.value)),"
		" json_type(e.value, '$.variant'), json_extract(e.value, '$.variant'),"
		" json_type(e.value, '$.pattern'), json_extract(e.value, '$.pattern'),"
		" json_type(e.value, '$.baseline'), json_extract(e.value, '$.baseline'),"
		" json_type(e.value, '$.name'), json_extract(e.value, '$.name'),"
		" json_type(e.value, '$.unit'), json_extract(e.value, '$.unit'),"
		" json_type(e.value, '$.value'), json_extract(e.value, '$.value')"
		" FROM json_each(?1) AS e ORDER BY e.key";

	sqlite3 *scratch;

	if (validator_open(&p->check))
		return -EIO;
	scratch = validator_scratch(p->check);
	if (sqlite3_prepare_v2(scratch, rm_check, -1, &p->rm_check, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(scratch, rm_rows, -1, &p->rm_rows, NULL) != SQLITE_OK)
		return -EIO;
	return 0;
}

static void close_scratch(struct parser *p)
{
	sqlite3_finalize(p->rm_check);
	sqlite3_finalize(p->rm_rows);
	validator_free(p->check);
}

static bool blank_line(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != '\r' && s[i] != '\n')
			return false;
	return true;
}

int csv_import_parse(const char *text, size_t len, struct csv_import_data **out, char *why,
		     size_t why_len)
{
	struct parser p = { .why = why, .why_len = why_len };
	struct csv_parser csv;
	size_t at = 0;
	int ret;

	*out = NULL;
	p.d = calloc(1, sizeof(*p.d));
	if (!p.d || csv_init(&csv, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL |
				   CSV_EMPTY_IS_NULL)) {
		free(p.d);
		return why_fail(-ENOMEM, why, why_len, "out of memory");
	}
	csv_set_space_func(&csv, no_space);
	if (open_scratch(&p)) {
		p.ret = why_fail(-EIO, why, why_len, "cannot open a scratch SQLite database");
		goto out;
	}
	if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
		at = 3;		/* a UTF-8 byte-order mark, as spreadsheets write */
	/* Fed a line at a time, so that an error can name its line. */
	while (at < len && !p.ret) {
		const char *nl = memchr(text + at, '\n', len - at);
		size_t chunk = nl ? (size_t)(nl - (text + at)) + 1 : len - at;

		p.line++;
		if (!p.row_pending && !blank_line(text + at, chunk)) {
			p.row_pending = true;
			p.row_line = p.line;
		}
		if (csv_parse(&csv, text + at, chunk, on_field, on_row, &p) != chunk && !p.ret) {
			p.row_line = p.line;
			fail(&p, NULL, "a quote inside an unquoted field, or text after a closing "
			     "quote (quote the field and double its quotes)");
		}
		at += chunk;
	}
	if (!p.ret && csv_fini(&csv, on_field, on_row, &p) && !p.ret)
		fail(&p, NULL, "a quoted field is not closed before the end of the file");
	if (!p.ret && !p.header_done)
		p.ret = why_fail(-EINVAL, why, why_len, "the file is empty (no header row)");
	else if (!p.ret && p.d->n_cells == 0)
		p.ret = why_fail(-EINVAL, why, why_len, "no rows after the header");
out:
	csv_free(&csv);
	clear_fields(&p);
	free(p.fields);
	for (size_t i = 0; i < p.n_cols; i++)
		free(p.cols[i].name);
	free(p.cols);
	close_scratch(&p);
	ret = p.ret;
	if (ret)
		csv_import_free(p.d);
	else
		*out = p.d;
	return ret;
}
