/*
 * validate.c - the one check of stored values (validate.h): each kind of csv-format.h
 * with the message saying what it accepts, the checks across a cell's columns, and the
 * columns of metrics, samples, trials, run_metrics, plugins and inputs. JSON objects and dates are read
 * by a scratch in-memory SQLite, so that they mean what the store's queries will read.
 */
#include "validate.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "task.h"
#include "variant.h"
#include "why.h"

struct validator {
	sqlite3 *scratch;
	sqlite3_stmt *is_object, *is_time;
};

const struct csv_column validate_metric_columns[M_COUNT] = {
	[M_NAME] = { "name", K_NAME, true },
	[M_VALUE] = { "value", K_NUMBER, false },
	[M_UNIT] = { "unit", K_TEXT, true },
};

const struct csv_column validate_sample_columns[S_COUNT] = {
	[S_IDX] = { "idx", K_COUNT, true },
	[S_SECONDS] = { "seconds", K_REAL, true },
	[S_ROUND] = { "round", K_SIZE, true },
};

const struct csv_column validate_trial_columns[T_COUNT] = {
	[T_IDX] = { "idx", K_COUNT, true },
	[T_CORRECT] = { "correct", K_BIT, true },
};

const struct csv_column validate_run_metric_columns[RM_COUNT] = {
	[RM_VARIANT] = { "variant", K_LABEL, true },
	[RM_PATTERN] = { "pattern", K_LABEL, true },
	[RM_BASELINE] = { "baseline", K_LABEL, true },
	[RM_NAME] = { "name", K_LABEL, true },
	[RM_VALUE] = { "value", K_NUMBER, false },
	[RM_UNIT] = { "unit", K_TEXT, true },
};

/* A plugin's variant, its file and the SHA-256 (64 hex digits: a name) of what was loaded. */
const struct csv_column validate_plugin_columns[P_COUNT] = {
	[P_VARIANT] = { "variant", K_NAME, true },
	[P_PATH] = { "path", K_LABEL, true },
	[P_SHA256] = { "sha256", K_NAME, true },
};

/* A shard of a suite merged into one run: its run's times, status and machine. */
const struct csv_column validate_shard_columns[SH_COUNT] = {
	[SH_STARTED] = { "started", K_TIME, false },
	[SH_FINISHED] = { "finished", K_TIME, false },
	[SH_STATUS] = { "status", K_RUN_STATUS, false },
	[SH_HOSTNAME] = { "hostname", K_TEXT, false },
	[SH_CPU_MODEL] = { "cpu_model", K_TEXT, false },
	[SH_CORES] = { "cores", K_SIZE, false },
	[SH_THREADS] = { "threads", K_SIZE, false },
	[SH_SGEMM_GFLOPS] = { "sgemm_gflops", K_REAL, false },
	[SH_LOAD_AVG] = { "load_avg", K_REAL, false },
	[SH_WARNINGS] = { "warnings", K_TEXT, false },
	[SH_COMMAND] = { "command", K_TEXT, false },
	[SH_TRIAD_GBPS] = { "triad_gbps", K_REAL, false },
};

/* A set of --inputs: its name, which tensor (q, k, v: a name), its file, the SHA-256. */
const struct csv_column validate_input_columns[I_COUNT] = {
	[I_NAME] = { "name", K_NAME, true },
	[I_TENSOR] = { "tensor", K_NAME, true },
	[I_PATH] = { "path", K_LABEL, true },
	[I_SHA256] = { "sha256", K_NAME, true },
};

/* A refused value reads "<before>'<value>'<after>". */
static const struct {
	const char *before, *after;
} refusals[] = {
	[K_TEXT] = { "", " is not text" },
	[K_LABEL] = { "", " is not a non-empty string" },
	[K_NAME] = { "", " is not a name (1 to 64 letters, digits, '_', '-' or '.')" },
	[K_TIME] = { "", " is not a date and time (like 2025-01-31T12:00:00.000Z)" },
	[K_RUN_STATUS] = { "unknown run status ", " (accepted: running, complete, failed, "
			   "interrupted)" },
	[K_CELL_STATUS] = { "unknown status ", " (accepted: ok, failed, crashed, timeout, oom, "
			    "unsupported, nan, corrupt)" },
	[K_PATTERN] = { "unknown pattern ", " (accepted: ns, cs, nc, cc)" },
	[K_JSON] = { "", " is not a JSON object" },
	[K_INT] = { "", " is not a whole number" },
	[K_COUNT] = { "", " is not a whole number >= 0" },
	[K_SIZE] = { "", " is not a whole number in 1..2147483647" },
	[K_REAL] = { "", " is not a finite number >= 0" },
	[K_BIT] = { "", " is not 0 or 1" },
	[K_NUMBER] = { "", " is not a number (empty or nan for none)" },
};

_Static_assert(sizeof(refusals) / sizeof(refusals[0]) == K_NUMBER + 1, "a refusal per kind");

static const char *const run_statuses[] = { "running", "complete", "failed", "interrupted" };

int validator_open(struct validator **out)
{
	static const char is_object[] =
		"SELECT CASE WHEN json_valid(?1) THEN json_type(?1) = 'object' ELSE 0 END";
	static const char is_time[] = "SELECT julianday(?1) IS NOT NULL";
	struct validator *v = calloc(1, sizeof(*v));

	*out = NULL;
	if (!v)
		return -ENOMEM;
	if (sqlite3_open_v2(":memory:", &v->scratch, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(v->scratch, is_object, -1, &v->is_object, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(v->scratch, is_time, -1, &v->is_time, NULL) != SQLITE_OK) {
		validator_free(v);
		return -EIO;
	}
	*out = v;
	return 0;
}

void validator_free(struct validator *v)
{
	if (!v)
		return;
	sqlite3_finalize(v->is_object);
	sqlite3_finalize(v->is_time);
	sqlite3_close(v->scratch);
	free(v);
}

sqlite3 *validator_scratch(struct validator *v)
{
	return v->scratch;
}

bool validate_utf8(const char *text, size_t len)
{
	const unsigned char *s = (const unsigned char *)text;

	for (size_t i = 0; i < len; ) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80) {
			if (!c)
				return false;
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			n = 1, cp = c & 0x1f;
		else if ((c & 0xf0) == 0xe0)
			n = 2, cp = c & 0x0f;
		else if ((c & 0xf8) == 0xf0)
			n = 3, cp = c & 0x07;
		else
			return false;
		if (i + n >= len)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		/* overlong forms, surrogates and code points past U+10FFFF */
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		i += n + 1;
	}
	return true;
}

const char *validate_shown(const char *text, size_t len, char *out, size_t out_len)
{
	size_t n = len > 40 ? 40 : len, at = 0;

	if (!out_len)
		return out;
	if (!text) {
		*out = '\0';
		return out;
	}
	/* do not cut a UTF-8 sequence */
	while (n < len && n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80)
		n--;
	for (size_t i = 0; i < n && at + 4 < out_len; i++)
		out[at++] = (unsigned char)text[i] < 0x20 || text[i] == 0x7f ? '?' : text[i];
	if (n < len && at + 4 < out_len) {
		memcpy(out + at, "...", 3);
		at += 3;
	}
	out[at] = '\0';
	return out;
}

static bool is_name(const char *s, size_t len)
{
	if (len < 1 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-' || s[i] == '.'))
			return false;
	return true;
}

int validate_scratch_check(sqlite3_stmt *st, const char *text, size_t len)
{
	int rc, result = -1;

	sqlite3_bind_text(st, 1, text, (int)len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		result = sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return result;
}

static bool is_time(struct validator *v, const char *s, size_t len)
{
	/* YYYY-MM-DD first: julianday() alone also takes 'now' and bare numbers */
	for (int i = 0; i < 10; i++) {
		bool dash = i == 4 || i == 7;

		if ((size_t)i >= len || (dash ? s[i] != '-' : (s[i] < '0' || s[i] > '9')))
			return false;
	}
	return validate_scratch_check(v->is_time, s, len) == 1;
}

static bool one_of(const char *s, size_t len, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(names[i]) == len && !memcmp(s, names[i], len))
			return true;
	return false;
}

/* Whether text x (valid UTF-8, no NUL) is what kind k accepts; -1 on scratch trouble. */
static int text_accepted(struct validator *v, enum csv_kind k, const struct stored_value *x)
{
	char word[16];

	switch (k) {
	case K_TEXT:
		return 1;
	case K_LABEL:
		return x->len > 0;
	case K_NAME:
		return is_name(x->s, x->len);
	case K_TIME:
		return is_time(v, x->s, x->len);
	case K_RUN_STATUS:
		return one_of(x->s, x->len, run_statuses, 4);
	case K_CELL_STATUS:
		for (int i = 0; i < CELL_STATUS_COUNT; i++) {
			const char *name = cell_status_name((enum cell_status)i);

			if (strlen(name) == x->len && !memcmp(name, x->s, x->len))
				return 1;
		}
		return 0;
	case K_PATTERN:
		if (x->len >= sizeof(word))
			return 0;
		memcpy(word, x->s, x->len);
		word[x->len] = '\0';
		return pattern_parse(word) >= 0;
	case K_JSON: {
		int r = validate_scratch_check(v->is_object, x->s, x->len);

		return r < 0 ? -1 : r == 1;
	}
	default:
		return 0;
	}
}

/* Whether number x (an integer or a real) is what kind k accepts. */
static bool number_accepted(enum csv_kind k, const struct stored_value *x)
{
	bool whole = x->type == SQLITE_INTEGER;
	double r = whole ? (double)x->i : x->r;

	switch (k) {
	case K_INT:
		return whole;
	case K_COUNT:
		return whole && x->i >= 0;
	case K_SIZE:
		return whole && x->i >= 1 && x->i <= INT_MAX;
	case K_BIT:
		return whole && (x->i == 0 || x->i == 1);
	case K_REAL:
		return isfinite(r) && r >= 0;
	case K_NUMBER:
		return true;
	default:
		return false;
	}
}

int validate_value(struct validator *v, const struct csv_column *c,
		   const struct stored_value *x, char *why, size_t why_len)
{
	char show[64];
	int ok;

	switch (x->type) {
	case SQLITE_NULL:
		if (c->required)
			return why_fail(-EINVAL, why, why_len, "is empty, but a value is required");
		return 0;
	case SQLITE_BLOB:
		return why_fail(-EINVAL, why, why_len, "holds a BLOB, not %s",
				csv_is_text_kind(c->kind) ? "text" : "a number");
	case SQLITE_TEXT:
		if (!validate_utf8(x->s, x->len))
			return why_fail(-EINVAL, why, why_len,
					"holds a NUL byte or is not valid UTF-8");
		validate_shown(x->s, x->len, show, sizeof(show));
		/* a number stored as text is refused by the number kinds below */
		ok = csv_is_text_kind(c->kind) ? text_accepted(v, c->kind, x) : 0;
		if (ok < 0)
			return why_fail(-EIO, why, why_len, "cannot check '%s': %s", show,
					sqlite3_errmsg(v->scratch));
		break;
	case SQLITE_INTEGER:
	case SQLITE_FLOAT:
		if (x->type == SQLITE_INTEGER)
			snprintf(show, sizeof(show), "%lld", (long long)x->i);
		else
			snprintf(show, sizeof(show), "%.17g", x->r);
		if (csv_is_text_kind(c->kind))
			return why_fail(-EINVAL, why, why_len, "'%s' is a number, not text", show);
		ok = number_accepted(c->kind, x);
		break;
	default:
		return why_fail(-EINVAL, why, why_len, "holds a value of unknown type %d",
				x->type);
	}
	if (ok)
		return 0;
	return why_fail(-EINVAL, why, why_len, "%s'%s'%s", refusals[c->kind].before, show,
			refusals[c->kind].after);
}

int validate_cell_shape(const struct stored_value v[C_COUNT], int *column, char *why,
			size_t why_len)
{
	char pattern[16];
	int p;

	/* values checked: the pattern is a short known name, the sizes are integers >= 1 */
	snprintf(pattern, sizeof(pattern), "%.*s", (int)v[C_PATTERN].len, v[C_PATTERN].s);
	p = pattern_parse(pattern);
	if (p >= 0 && pattern_is_self((enum attn_pattern)p) && v[C_N].i != v[C_M].i) {
		*column = C_M;
		return why_fail(-EINVAL, why, why_len, "m = %lld, but pattern '%s' needs m = n "
				"(%lld)", (long long)v[C_M].i, pattern, (long long)v[C_N].i);
	}
	if (v[C_KV_HEADS].i < 1 || v[C_HEADS].i % v[C_KV_HEADS].i) {
		*column = C_KV_HEADS;
		return why_fail(-EINVAL, why, why_len, "kv_heads = %lld does not divide heads = "
				"%lld", (long long)v[C_KV_HEADS].i, (long long)v[C_HEADS].i);
	}
	return 0;
}
