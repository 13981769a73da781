/*
 * merge.c - databases into one (merge.h): the run identities of the output and every
 * input read and compared, and every row of every input checked by validate.c as import
 * checks a file, before anything is written; then each input ATTACHed read-only, its
 * rows checked again inside the transaction, and copied table by table with INSERT ...
 * SELECT, ids shifted past the output's, in groups as large as SQLite attaches at once.
 */
#include "merge.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "csv-format.h"
#include "validate.h"
#include "why.h"

struct run_identity {
	char *started, *hostname, *command;
	int source;		/* -1: the output; else the input's index */
	int64_t id;
	char *suite_id;		/* schema 6 on: the suite, and the shard of run --shard */
	int shard, shards;	/* 0 when not a shard */
};

static int compare_text(const char *a, const char *b)
{
	if (!a || !b)
		return (a != NULL) - (b != NULL);
	return strcmp(a, b);
}

static int compare_identities(const void *x, const void *y)
{
	const struct run_identity *a = x, *b = y;
	int c = compare_text(a->started, b->started);

	if (!c)
		c = compare_text(a->hostname, b->hostname);
	if (!c)
		c = compare_text(a->command, b->command);
	if (!c)
		c = (a->source > b->source) - (a->source < b->source);
	return c;
}

static char *column_strdup(sqlite3_stmt *st, int col, bool *nomem)
{
	const unsigned char *s = sqlite3_column_text(st, col);
	char *copy;

	if (sqlite3_column_type(st, col) == SQLITE_NULL || !s)
		return NULL;
	copy = strdup((const char *)s);
	if (!copy)
		*nomem = true;
	return copy;
}

/* The tables whose rows merge copies, with what each column must hold. */
static const struct {
	const char *table;
	const struct csv_column *cols;
	int n;
	const char *owner;	/* the key column naming the row's run or cell, or id */
	const char *key;	/* the second key column, or NULL */
} checked_tables[] = {
	{ "runs", csv_run_columns, R_COUNT, "id", NULL },
	{ "cells", csv_cell_columns, C_COUNT, "id", NULL },
	{ "metrics", validate_metric_columns, M_COUNT, "cell_id", "name" },
	{ "samples", validate_sample_columns, S_COUNT, "cell_id", "idx" },
	{ "trials", validate_trial_columns, T_COUNT, "cell_id", "idx" },
	{ "run_metrics", validate_run_metric_columns, RM_COUNT, "run_id", "name" },
	{ "plugins", validate_plugin_columns, P_COUNT, "run_id", "variant" },
	{ "inputs", validate_input_columns, I_COUNT, "run_id", "name" },
	{ "shards", validate_shard_columns, SH_COUNT, "run_id", "shard" },
};

static int append_quoted(struct buf *b, const char *name);

/*
 * SELECT owner, key, the checked columns FROM schema.table, a column the table lacks (an
 * older schema) as NULL, or as 1 for samples.round (its default). *present is false when
 * the input has no such table.
 */
static int checked_select(sqlite3 *db, const char *schema, int t, struct buf *sql,
			  bool *present)
{
	const char *table = checked_tables[t].table;
	sqlite3_stmt *st;
	int ret = 0;

	*present = false;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info(?1, ?2) WHERE name = ?3",
			       -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, schema, -1, SQLITE_STATIC);
	ret = buf_str(sql, "SELECT ") ? -ENOMEM : 0;
	for (int c = -2; c < checked_tables[t].n && !ret; c++) {
		const char *name = c == -2 ? checked_tables[t].owner :
				   c == -1 ? checked_tables[t].key : checked_tables[t].cols[c].name;
		int rc;

		if (c > -2)
			ret = buf_str(sql, ", ") ? -ENOMEM : 0;
		if (!name) {
			ret = ret ? ret : buf_str(sql, "NULL") ? -ENOMEM : 0;
			continue;
		}
		sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			ret = -EIO;
			break;
		}
		*present |= rc == SQLITE_ROW;
		if (ret)
			break;
		if (rc == SQLITE_ROW)
			ret = append_quoted(sql, name);
		else
			ret = buf_str(sql, !strcmp(table, "samples") && !strcmp(name, "round") ?
				      "1" : "NULL") ? -ENOMEM : 0;
	}
	sqlite3_finalize(st);
	if (!ret && (buf_str(sql, " FROM ") || buf_str(sql, schema) || buf_str(sql, ".") ||
		     append_quoted(sql, table)))
		ret = -ENOMEM;
	return ret;
}

/* A value of a result column, as validate_value() takes it (pointing into st). */
static struct stored_value column_value(sqlite3_stmt *st, int col)
{
	struct stored_value x = { .type = sqlite3_column_type(st, col) };

	if (x.type == SQLITE_INTEGER) {
		x.i = sqlite3_column_int64(st, col);
	} else if (x.type == SQLITE_FLOAT) {
		x.r = sqlite3_column_double(st, col);
	} else if (x.type == SQLITE_TEXT || x.type == SQLITE_BLOB) {
		/* a BLOB is refused whatever it holds; read as bytes, not converted */
		x.s = x.type == SQLITE_TEXT ? (const char *)sqlite3_column_text(st, col) :
					      (const char *)sqlite3_column_blob(st, col);
		x.len = (size_t)sqlite3_column_bytes(st, col);
	}
	return x;
}

/* "row 12" (by id), or "row (cell_id 12, idx 3)" (by the key of a table without one). */
static void row_label(sqlite3_stmt *st, int t, char *buf, size_t len)
{
	struct stored_value owner = column_value(st, 0), key = column_value(st, 1);
	char show[64], owner_text[32];

	if (owner.type == SQLITE_INTEGER)
		snprintf(owner_text, sizeof(owner_text), "%lld", (long long)owner.i);
	else
		snprintf(owner_text, sizeof(owner_text), "?");
	if (!checked_tables[t].key)
		snprintf(buf, len, "row %s", owner_text);
	else if (key.type == SQLITE_INTEGER)
		snprintf(buf, len, "row (%s %s, %s %lld)", checked_tables[t].owner, owner_text,
			 checked_tables[t].key, (long long)key.i);
	else
		snprintf(buf, len, "row (%s %s, %s '%s')", checked_tables[t].owner, owner_text,
			 checked_tables[t].key, key.type == SQLITE_TEXT ?
			 validate_shown(key.s, key.len, show, sizeof(show)) : "?");
}

/*
 * Checks every row of every table of the input at schema (main of its own connection, or
 * attached) as import checks the rows of a file: each value with validate_value(), each
 * cell's shape with validate_cell_shape(). Returns 0; -EINVAL with why naming path,
 * table, row and column and what the column accepts; -ENOMEM; -EIO.
 */
static int check_rows(sqlite3 *db, const char *schema, const char *path, char *why,
		      size_t why_len)
{
	struct validator *v;
	int ret = validator_open(&v);

	if (ret)
		return why_fail(ret, why, why_len, "cannot check '%s': %s", path,
				ret == -ENOMEM ? "out of memory" : "no scratch database");
	for (int t = 0; t < (int)(sizeof(checked_tables) / sizeof(checked_tables[0])) && !ret;
	     t++) {
		struct stored_value x[(int)C_COUNT > (int)R_COUNT ? (int)C_COUNT : (int)R_COUNT];
		const char *column = NULL;
		struct buf sql = { 0 };
		sqlite3_stmt *st = NULL;
		char label[160], reason[512];
		bool present;
		int rc = SQLITE_DONE;

		ret = checked_select(db, schema, t, &sql, &present);
		if (!ret && present && sqlite3_prepare_v2(db, sql.p, -1, &st, NULL) != SQLITE_OK)
			ret = -EIO;
		free(sql.p);
		while (!ret && present && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			int bad = -1;

			for (int c = 0; c < checked_tables[t].n && !ret; c++) {
				x[c] = column_value(st, 2 + c);
				ret = validate_value(v, &checked_tables[t].cols[c], &x[c], reason,
						     sizeof(reason));
				bad = c;
			}
			if (!ret && checked_tables[t].cols == csv_cell_columns)
				ret = validate_cell_shape(x, &bad, reason, sizeof(reason));
			if (ret) {
				column = checked_tables[t].cols[bad].name;
				row_label(st, t, label, sizeof(label));
			}
		}
		if (!ret && present && rc != SQLITE_DONE)
			ret = -EIO;
		if (ret == -EINVAL)
			why_set(why, why_len, "input '%s', table %s, %s, column '%s': %s", path,
				checked_tables[t].table, label, column, reason);
		else if (ret == -EIO && column)
			why_set(why, why_len, "cannot check '%s': %s", path, reason);
		else if (ret)
			why_set(why, why_len, "cannot check '%s': %s", path,
				ret == -ENOMEM ? "out of memory" : sqlite3_errmsg(db));
		sqlite3_finalize(st);
	}
	validator_free(v);
	return ret;
}

/*
 * Reads the run identities of the database at path (opened read-only) into ids, and
 * for an input (source >= 0) checks every row (check_rows()).
 * may_be_new: a file with no tables at all is accepted as empty.
 */
static int read_identities(const char *path, int source, bool may_be_new,
			   struct run_identity **ids, size_t *n, size_t *cap, char *why,
			   size_t why_len)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int version = -1, tables = 0, rc, ret = 0;
	bool nomem = false;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		goto sqlite_trouble;
	sqlite3_busy_timeout(db, 10000);
	if (sqlite3_prepare_v2(db, "SELECT (SELECT user_version FROM pragma_user_version),"
			       " (SELECT count(*) FROM sqlite_master)", -1, &st, NULL) !=
	    SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
		goto sqlite_trouble;
	version = sqlite3_column_int(st, 0);
	tables = sqlite3_column_int(st, 1);
	sqlite3_finalize(st);
	st = NULL;
	if (version > STORE_SCHEMA_VERSION) {
		ret = why_fail(-EPROTO, why, why_len,
			       "'%s' has schema version %d, newer than this build's %d", path,
			       version, STORE_SCHEMA_VERSION);
		goto out;
	}
	if (version == 0) {
		if (may_be_new && tables == 0)
			goto out;
		ret = why_fail(-EPROTO, why, why_len, "'%s' is not an attnbench database", path);
		goto out;
	}
	if (sqlite3_prepare_v2(db, version >= 6 ? "SELECT id, started, hostname, command,"
			       " suite_id, shard, shards FROM runs" : "SELECT id, started, hostname,"
			       " command, NULL, NULL, NULL FROM runs", -1, &st, NULL) != SQLITE_OK)
		goto sqlite_trouble;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct run_identity *r;

		if (buf_grow(ids, *n, cap, sizeof(**ids))) {
			nomem = true;
			break;
		}
		r = &(*ids)[(*n)++];
		r->id = sqlite3_column_int64(st, 0);
		r->source = source;
		r->started = column_strdup(st, 1, &nomem);
		r->hostname = column_strdup(st, 2, &nomem);
		r->command = column_strdup(st, 3, &nomem);
		r->suite_id = column_strdup(st, 4, &nomem);
		r->shard = sqlite3_column_int(st, 5);
		r->shards = sqlite3_column_int(st, 6);
		if (nomem)
			break;
	}
	if (nomem) {
		ret = why_fail(-ENOMEM, why, why_len, "out of memory");
	} else if (rc != SQLITE_DONE) {
		goto sqlite_trouble;
	} else if (source >= 0) {
		sqlite3_finalize(st);
		st = NULL;
		ret = check_rows(db, "main", path, why, why_len);
	}
	goto out;
sqlite_trouble:
	if (db && sqlite3_errcode(db) == SQLITE_NOTADB)
		why_set(why, why_len, "'%s' is not an SQLite database", path);
	else
		why_set(why, why_len, "cannot read '%s': %s", path,
			db ? sqlite3_errmsg(db) : "out of memory");
	ret = version < 0 ? -EPROTO : -EIO;
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return ret;
}

static const char *source_name(const struct run_identity *r, const char *out_path,
			       const char *const *inputs)
{
	return r->source < 0 ? out_path : inputs[r->source];
}

static int by_shard(const void *x, const void *y)
{
	const struct run_identity *a = x, *b = y;
	int c = compare_text(a->suite_id, b->suite_id);

	if (!c)
		c = (a->shard > b->shard) - (a->shard < b->shard);
	if (!c)
		c = (a->shards > b->shards) - (a->shards < b->shards);
	return c;
}

/*
 * The shards among ids[0..count) (sorted here by suite and shard): one run per shard of a
 * suite, and one shard count per suite. 0, or -EEXIST / -EINVAL with a reason in why.
 */
static int check_shards(struct run_identity *ids, size_t count, const char *out_path,
			const char *const *inputs, char *why, size_t why_len)
{
	if (count < 2)	/* (ids may be NULL then, which qsort may not be given) */
		return 0;
	qsort(ids, count, sizeof(*ids), by_shard);
	for (size_t i = 1; i < count; i++) {
		const struct run_identity *a = &ids[i - 1], *b = &ids[i];

		if (!a->shards || !b->shards || compare_text(a->suite_id, b->suite_id))
			continue;
		if (a->shards != b->shards)
			return why_fail(-EINVAL, why, why_len, "suite %.12s has shards of %d "
					"('%s', run %lld) and of %d ('%s', run %lld): their cells "
					"overlap", a->suite_id, a->shards,
					source_name(a, out_path, inputs), (long long)a->id,
					b->shards, source_name(b, out_path, inputs),
					(long long)b->id);
		if (!a->shard != !b->shard)	/* one is the suite made whole already */
			return why_fail(-EEXIST, why, why_len, "suite %.12s is already one run "
					"(%lld of '%s'): shard %d/%d ('%s', run %lld) is in it",
					a->suite_id, (long long)a->id,
					source_name(a, out_path, inputs), b->shard, b->shards,
					source_name(b, out_path, inputs), (long long)b->id);
		if (a->shard && a->shard == b->shard)	/* (two whole runs of a suite may be) */
			return why_fail(-EEXIST, why, why_len, "shard %d/%d of suite %.12s is both "
					"run %lld of '%s' and run %lld of '%s'", a->shard, a->shards,
					a->suite_id, (long long)a->id,
					source_name(a, out_path, inputs), (long long)b->id,
					source_name(b, out_path, inputs));
	}
	return 0;
}

int merge_check(const char *out_path, const char *const *inputs, int n,
		char *why, size_t why_len)
{
	struct run_identity *ids = NULL;
	size_t count = 0, cap = 0;
	struct stat out_st, st;
	bool out_exists = !stat(out_path, &out_st);
	int ret = 0;

	for (int i = 0; i < n && !ret; i++) {
		if (stat(inputs[i], &st)) {
			ret = why_fail(-ENOENT, why, why_len, "cannot open input '%s': %s",
				       inputs[i], strerror(errno));
		} else if (out_exists && st.st_dev == out_st.st_dev &&
			   st.st_ino == out_st.st_ino) {
			/* the same file by any name: a symbolic or a hard link too */
			ret = why_fail(-EINVAL, why, why_len, "input '%s' is the output '%s'",
				       inputs[i], out_path);
		}
	}
	if (!ret && out_exists)
		ret = read_identities(out_path, -1, true, &ids, &count, &cap, why, why_len);
	for (int i = 0; i < n && !ret; i++)
		ret = read_identities(inputs[i], i, false, &ids, &count, &cap, why, why_len);
	if (!ret && count > 1) {
		qsort(ids, count, sizeof(*ids), compare_identities);
		for (size_t i = 1; i < count && !ret; i++) {
			const struct run_identity *a = &ids[i - 1], *b = &ids[i];

			if (compare_text(a->started, b->started) ||
			    compare_text(a->hostname, b->hostname) ||
			    compare_text(a->command, b->command))
				continue;
			ret = -EEXIST;
			if (a->source < 0)
				why_set(why, why_len, "run %lld of '%s' (started %s on %s) is already "
					"in '%s' as run %lld", (long long)b->id, inputs[b->source],
					b->started ? b->started : "?",
					b->hostname ? b->hostname : "?", out_path, (long long)a->id);
			else
				why_set(why, why_len, "run %lld of '%s' (started %s on %s) is also "
					"run %lld of '%s'", (long long)b->id, inputs[b->source],
					b->started ? b->started : "?",
					b->hostname ? b->hostname : "?", (long long)a->id,
					inputs[a->source]);
		}
	}
	if (!ret)
		ret = check_shards(ids, count, out_path, inputs, why, why_len);
	for (size_t i = 0; i < count; i++) {
		free(ids[i].started);
		free(ids[i].hostname);
		free(ids[i].command);
		free(ids[i].suite_id);
	}
	free(ids);
	return ret;
}

/* "file:<path>?mode=ro" with the characters URIs reserve percent-encoded. */
static char *read_only_uri(const char *path)
{
	char real[PATH_MAX], hex[4];
	struct buf b = { 0 };
	int ret;

	if (!realpath(path, real))
		return NULL;
	ret = buf_str(&b, "file:");
	for (const unsigned char *s = (const unsigned char *)real; *s && !ret; s++) {
		if (*s == '%' || *s == '?' || *s == '#' || *s <= ' ' || *s >= 0x7f) {
			snprintf(hex, sizeof(hex), "%%%02X", *s);
			ret = buf_str(&b, hex);
		} else {
			ret = buf_add(&b, (const char *)s, 1);
		}
	}
	if (ret || buf_str(&b, "?mode=ro")) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

static int query_int64(sqlite3 *db, const char *sql, int64_t *value, bool *null)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*value = sqlite3_column_int64(st, 0);
		if (null)
			*null = sqlite3_column_type(st, 0) == SQLITE_NULL;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -EIO;
}

/*
 * How far the ids of the input's table move to follow main's: the largest id in main,
 * less the input's smallest (1 when *none, the input's table being empty), plus 1.
 */
static int id_offset(sqlite3 *db, const char *schema, const char *table, int64_t *offset,
		     bool *none)
{
	char sql[128];
	int64_t max_main, min_input;

	snprintf(sql, sizeof(sql), "SELECT coalesce(max(id), 0) FROM main.%s", table);
	if (query_int64(db, sql, &max_main, NULL))
		return -EIO;
	snprintf(sql, sizeof(sql), "SELECT min(id) FROM %s.%s", schema, table);
	if (query_int64(db, sql, &min_input, none))
		return -EIO;
	*offset = max_main - (*none ? 1 : min_input) + 1;
	return 0;
}

/* What is copied, in an order that satisfies the foreign keys. */
static const struct {
	const char *table;
	const char *where;	/* %s: the attached schema */
} copied_tables[] = {
	{ "runs", "" },
	{ "cells", " WHERE run_id IN (SELECT id FROM %s.runs)" },
	{ "metrics", " WHERE cell_id IN (SELECT id FROM %s.cells WHERE run_id IN"
		     " (SELECT id FROM %s.runs))" },
	{ "samples", " WHERE cell_id IN (SELECT id FROM %s.cells WHERE run_id IN"
		     " (SELECT id FROM %s.runs))" },
	{ "trials", " WHERE cell_id IN (SELECT id FROM %s.cells WHERE run_id IN"
		    " (SELECT id FROM %s.runs))" },
	{ "run_metrics", " WHERE run_id IN (SELECT id FROM %s.runs)" },
	{ "plugins", " WHERE run_id IN (SELECT id FROM %s.runs)" },
	{ "inputs", " WHERE run_id IN (SELECT id FROM %s.runs)" },
	{ "shards", " WHERE run_id IN (SELECT id FROM %s.runs)" },
};

static int append_quoted(struct buf *b, const char *name)
{
	int ret = buf_str(b, "\"");

	for (; *name && !ret; name++)
		ret = buf_add(b, name, 1) || (*name == '"' && buf_add(b, "\"", 1)) ? -ENOMEM : 0;
	return ret ? ret : buf_str(b, "\"");
}

/*
 * INSERT INTO main.T (columns both have) SELECT ... FROM schema.T, with ids shifted by
 * the run (?1) and cell (?2) offsets. Skips a table the input does not have.
 */
static int copy_table(sqlite3 *db, const char *schema, int t, int64_t run_off,
		      int64_t cell_off, int64_t *copied)
{
	const char *table = copied_tables[t].table;
	struct buf cols = { 0 }, exprs = { 0 }, sql = { 0 };
	sqlite3_stmt *st = NULL;
	char where[512];
	int ret = 0, rc, n = 0;
	bool present = false;

	*copied = 0;
	if (sqlite3_prepare_v2(db, "SELECT m.name FROM pragma_table_info(?1, 'main') m"
			       " WHERE m.name IN (SELECT s.name FROM pragma_table_info(?1, ?2) s)"
			       " ORDER BY m.cid", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, schema, -1, SQLITE_STATIC);
	while (!ret && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		const char *shift =
			!strcmp(name, "id") ? (!strcmp(table, "runs") ? " + ?1" : " + ?2") :
			!strcmp(name, "run_id") ? " + ?1" : !strcmp(name, "cell_id") ? " + ?2" : "";

		present = true;
		ret = buf_str(&cols, n ? ", " : "") || append_quoted(&cols, name) ||
		      buf_str(&exprs, n ? ", " : "") || append_quoted(&exprs, name) ||
		      buf_str(&exprs, shift) ? -ENOMEM : 0;
		n++;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = -EIO;
	sqlite3_finalize(st);
	st = NULL;
	if (ret || !present)
		goto out;
	snprintf(where, sizeof(where), copied_tables[t].where, schema, schema);
	if (buf_str(&sql, "INSERT INTO main.") || append_quoted(&sql, table) ||
	    buf_str(&sql, " (") || buf_str(&sql, cols.p) || buf_str(&sql, ") SELECT ") ||
	    buf_str(&sql, exprs.p) || buf_str(&sql, " FROM ") || buf_str(&sql, schema) ||
	    buf_str(&sql, ".") || append_quoted(&sql, table) || buf_str(&sql, where)) {
		ret = -ENOMEM;
		goto out;
	}
	if (sqlite3_prepare_v2(db, sql.p, -1, &st, NULL) != SQLITE_OK) {
		ret = -EIO;
		goto out;
	}
	sqlite3_bind_int64(st, 1, run_off);
	sqlite3_bind_int64(st, 2, cell_off);
	if (sqlite3_step(st) != SQLITE_DONE)
		ret = -EIO;
	else
		*copied = sqlite3_changes(db);
out:
	sqlite3_finalize(st);
	free(cols.p);
	free(exprs.p);
	free(sql.p);
	return ret;
}

/* Copies the attached input schema into main; called inside a transaction. */
static int copy_input(sqlite3 *db, const char *schema, const char *path, int64_t *runs,
		      int64_t *cells, char *why, size_t why_len)
{
	char sql[512];
	int64_t run_off, cell_off, copied, dup_src = 0, dup_main = 0;
	bool no_runs, no_cells;
	sqlite3_stmt *st;
	int ret = 0, rc;

	/* the check before the transaction, again: nothing else may have added the run */
	snprintf(sql, sizeof(sql), "SELECT s.id, r.id FROM %s.runs s JOIN main.runs r"
		 " ON r.started IS s.started AND r.hostname IS s.hostname"
		 " AND r.command IS s.command LIMIT 1", schema);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		dup_src = sqlite3_column_int64(st, 0);
		dup_main = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return why_fail(-EEXIST, why, why_len,
				"run %lld of '%s' is already in the output as run %lld",
				(long long)dup_src, path, (long long)dup_main);
	if (rc != SQLITE_DONE)
		return -EIO;

	/* new ids: every id of the input shifted past the largest id in main */
	if (id_offset(db, schema, "runs", &run_off, &no_runs))
		return -EIO;
	if (no_runs)
		return 0;
	if (id_offset(db, schema, "cells", &cell_off, &no_cells))
		return -EIO;
	for (int t = 0; t < (int)(sizeof(copied_tables) / sizeof(copied_tables[0])) && !ret;
	     t++) {
		ret = copy_table(db, schema, t, run_off, cell_off, &copied);
		if (t == 0)
			*runs += copied;
		else if (t == 1)
			*cells += copied;
	}
	return ret;
}

int merge_databases(sqlite3 *db, const char *const *inputs, int n, int64_t *runs,
		    int64_t *cells, char *why, size_t why_len)
{
	int limit = sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, -1), ret = 0, attached = 0;
	int64_t first_max;
	char schema[32], attach[64];

	*runs = *cells = 0;
	if (limit < 1)
		return why_fail(-EIO, why, why_len, "SQLite allows no attached databases");
	if (query_int64(db, "SELECT coalesce(max(id), 0) FROM main.runs", &first_max, NULL))
		return why_fail(-EIO, why, why_len, "cannot read the output: %s",
				sqlite3_errmsg(db));
	for (int g = 0; g < n && !ret; g += limit) {
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
			ret = why_fail(-EIO, why, why_len, "cannot begin a transaction: %s",
				       sqlite3_errmsg(db));
			break;
		}
		for (int i = g; i < n && i < g + limit && !ret; i++) {
			char *uri = read_only_uri(inputs[i]);
			sqlite3_stmt *st;
			int rc;

			snprintf(schema, sizeof(schema), "src%d", i - g);
			if (!uri) {
				ret = why_fail(-EIO, why, why_len, "cannot open input '%s': %s",
					       inputs[i], strerror(errno));
				break;
			}
			snprintf(attach, sizeof(attach), "ATTACH DATABASE ?1 AS %s", schema);
			rc = sqlite3_prepare_v2(db, attach, -1, &st, NULL);
			if (rc == SQLITE_OK) {
				sqlite3_bind_text(st, 1, uri, -1, SQLITE_STATIC);
				rc = sqlite3_step(st);
				sqlite3_finalize(st);
			}
			free(uri);
			if (rc != SQLITE_DONE) {
				ret = why_fail(-EIO, why, why_len, "cannot attach '%s': %s",
					       inputs[i], sqlite3_errmsg(db));
				break;
			}
			attached++;
			if (sqlite3_db_readonly(db, schema) != 1) {
				ret = why_fail(-EIO, why, why_len, "input '%s' did not open "
					       "read-only (SQLite needs URI filenames enabled)",
					       inputs[i]);
				break;
			}
			/* as read in this transaction, which keeps it from changing */
			ret = check_rows(db, schema, inputs[i], why, why_len);
		}
		/* every input of the group checked before any is copied */
		for (int i = g; i < n && i < g + limit && !ret; i++) {
			snprintf(schema, sizeof(schema), "src%d", i - g);
			ret = copy_input(db, schema, inputs[i], runs, cells, why, why_len);
			if (ret == -EIO || ret == -ENOMEM)
				why_set(why, why_len, "cannot copy '%s': %s", inputs[i],
					ret == -ENOMEM ? "out of memory" : sqlite3_errmsg(db));
		}
		if (!ret && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			ret = why_fail(-EIO, why, why_len, "cannot commit: %s", sqlite3_errmsg(db));
		if (ret)
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		for (int k = 0; k < attached; k++) {
			char detach[64];

			snprintf(detach, sizeof(detach), "DETACH DATABASE src%d", k);
			sqlite3_exec(db, detach, NULL, NULL, NULL);
		}
		attached = 0;
	}
	if (ret && n > limit) {
		/* earlier groups were committed: take their runs out again (cascades) */
		sqlite3_stmt *st;

		if (sqlite3_prepare_v2(db, "DELETE FROM runs WHERE id > ?1", -1, &st, NULL) ==
		    SQLITE_OK) {
			sqlite3_bind_int64(st, 1, first_max);
			sqlite3_step(st);
			sqlite3_finalize(st);
		}
		*runs = *cells = 0;
	}
	return ret;
}

int merge_shards_missing(sqlite3 *db, char *what, size_t len)
{
	sqlite3_stmt *st;
	int rc, suites = 0;
	size_t used = 0;

	what[0] = '\0';
	if (sqlite3_prepare_v2(db, "SELECT suite_id, shards, shard, status NOT IN ('complete',"
			       " 'failed') FROM runs WHERE shards IS NOT NULL AND shard IS NOT NULL"
			       " ORDER BY suite_id, shard", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	rc = sqlite3_step(st);
	while (rc == SQLITE_ROW) {
		char suite[72], missing[256] = "", unfinished[256] = "";
		int shards = sqlite3_column_int(st, 1), expect = 1, held = 0;
		size_t m = 0, u = 0;

		snprintf(suite, sizeof(suite), "%s", (const char *)sqlite3_column_text(st, 0));
		/* the rows of this suite: its shards in order, gaps are the missing ones */
		do {
			int k = sqlite3_column_int(st, 2);

			for (; expect < k && m < sizeof(missing); expect++)
				m += (size_t)snprintf(missing + m, sizeof(missing) - m, "%s%d",
						      m ? ", " : "", expect);
			expect = k + 1;
			held++;
			if (sqlite3_column_int(st, 3) && u < sizeof(unfinished))
				u += (size_t)snprintf(unfinished + u, sizeof(unfinished) - u,
						      "%s%d", u ? ", " : "", k);
			rc = sqlite3_step(st);
		} while (rc == SQLITE_ROW &&
			 !strcmp((const char *)sqlite3_column_text(st, 0), suite));
		for (; expect <= shards && m < sizeof(missing); expect++)
			m += (size_t)snprintf(missing + m, sizeof(missing) - m, "%s%d",
					      m ? ", " : "", expect);
		if (!m && !u)
			continue;
		suites++;
		if (used < len)
			used += (size_t)snprintf(what + used, len - used, "%ssuite %.12s: %d of %d "
						 "shards%s%s%s%s", used ? "\n" : "", suite, held,
						 shards, m ? ", missing " : "", missing,
						 u ? ", unfinished " : "", unfinished);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? suites : -EIO;
}

/* The shard runs of suite ?1 cut in ?2 shards, in SQL. */
#define SHARD_RUNS "SELECT id FROM runs WHERE suite_id = ?1 AND shards = ?2 AND shard IS NOT NULL"

/* Each statement of a fold, on the suite (?1), its shard count (?2) and the new run (?3). */
static const char *const fold_steps[] = {
	/* the suite's run: its first shard's provenance, then what the shards share */
	"UPDATE runs SET arguments = NULL, driver = NULL,"
	"  started = (SELECT min(started) FROM runs WHERE id IN (" SHARD_RUNS ")),"
	"  finished = (SELECT max(finished) FROM runs WHERE id IN (" SHARD_RUNS ")),"
	"  status = CASE WHEN EXISTS (SELECT 1 FROM runs WHERE id IN (" SHARD_RUNS ") AND"
	"    status = 'failed') THEN 'failed' ELSE 'complete' END,"
	"  hostname = (SELECT group_concat(x, ', ') FROM (SELECT DISTINCT hostname AS x FROM"
	"    runs WHERE id IN (" SHARD_RUNS ") ORDER BY x)),"
	"  cpu_model = (SELECT group_concat(x, '; ') FROM (SELECT DISTINCT cpu_model AS x FROM"
	"    runs WHERE id IN (" SHARD_RUNS ") ORDER BY x)),"
	"  sgemm_gflops = (SELECT avg(sgemm_gflops) FROM runs WHERE id IN (" SHARD_RUNS ")),"
	"  triad_gbps = (SELECT avg(triad_gbps) FROM runs WHERE id IN (" SHARD_RUNS ")),"
	"  warnings = (SELECT group_concat(x, '; ') FROM (SELECT DISTINCT warnings AS x FROM"
	"    runs WHERE id IN (" SHARD_RUNS ") ORDER BY x))"
	" WHERE id = ?3",
	"INSERT INTO shards (run_id, shard, started, finished, status, hostname, cpu_model,"
	"  cores, threads, sgemm_gflops, load_avg, warnings, command, triad_gbps)"
	" SELECT ?3, shard, started, finished, status, hostname, cpu_model, cores, threads,"
	"  sgemm_gflops, load_avg, warnings, command, triad_gbps FROM runs"
	" WHERE id IN (" SHARD_RUNS ")",
	"UPDATE cells SET shard = (SELECT r.shard FROM runs r WHERE r.id = cells.run_id),"
	"  run_id = ?3 WHERE run_id IN (" SHARD_RUNS ")",
	"INSERT OR IGNORE INTO plugins SELECT ?3, variant, path, sha256 FROM plugins"
	" WHERE run_id IN (" SHARD_RUNS ")",
	"INSERT OR IGNORE INTO inputs SELECT ?3, name, tensor, path, sha256 FROM inputs"
	" WHERE run_id IN (" SHARD_RUNS ")",
	/* their run metrics (efficiency lengths) were per shard: report remakes the run's */
	"DELETE FROM runs WHERE id IN (" SHARD_RUNS ")",
};

/* The run that copies the provenance of suite's first shard; its id into *run. */
static int fold_begin(sqlite3 *db, const char *suite, int shards, int64_t *run)
{
	struct buf cols = { 0 }, sql = { 0 };
	sqlite3_stmt *st;
	int ret = 0, rc, n = 0;

	if (sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info('runs') WHERE name <> 'id'"
			       " ORDER BY cid", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	while (!ret && (rc = sqlite3_step(st)) == SQLITE_ROW)
		ret = buf_str(&cols, n++ ? ", " : "") ||
		      append_quoted(&cols, (const char *)sqlite3_column_text(st, 0)) ? -ENOMEM : 0;
	sqlite3_finalize(st);
	if (!ret && (buf_str(&sql, "INSERT INTO runs (") || buf_str(&sql, cols.p) ||
		     buf_str(&sql, ") SELECT ") || buf_str(&sql, cols.p) ||
		     buf_str(&sql, " FROM runs WHERE id = (SELECT min(id) FROM runs WHERE"
			     " suite_id = ?1 AND shards = ?2 AND shard = 1)")))
		ret = -ENOMEM;
	if (!ret && sqlite3_prepare_v2(db, sql.p, -1, &st, NULL) != SQLITE_OK)
		ret = -EIO;
	if (!ret) {
		sqlite3_bind_text(st, 1, suite, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, shards);
		ret = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
		sqlite3_finalize(st);
		*run = sqlite3_last_insert_rowid(db);
	}
	/* not a shard itself: the steps' SHARD_RUNS must not find it */
	if (!ret && sqlite3_prepare_v2(db, "UPDATE runs SET shard = NULL WHERE id = ?1", -1, &st,
				       NULL) != SQLITE_OK)
		ret = -EIO;
	if (!ret) {
		sqlite3_bind_int64(st, 1, *run);
		ret = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
		sqlite3_finalize(st);
	}
	free(cols.p);
	free(sql.p);
	return ret;
}

/* Makes the shards of suite one run (merge.h), in the caller's transaction. */
static int fold_suite(sqlite3 *db, const char *suite, int shards, int64_t *run)
{
	int ret = fold_begin(db, suite, shards, run);

	for (size_t i = 0; !ret && i < sizeof(fold_steps) / sizeof(fold_steps[0]); i++) {
		sqlite3_stmt *st;

		if (sqlite3_prepare_v2(db, fold_steps[i], -1, &st, NULL) != SQLITE_OK)
			return -EIO;
		sqlite3_bind_text(st, 1, suite, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, shards);
		sqlite3_bind_int64(st, 3, *run);
		ret = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
		sqlite3_finalize(st);
	}
	return ret;
}

int merge_fold_shards(sqlite3 *db, char *what, size_t len, char *why, size_t why_len)
{
	sqlite3_stmt *st;
	size_t used = 0;
	int folded = 0, rc, ret = 0;

	what[0] = '\0';
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return why_fail(-EIO, why, why_len, "%s", sqlite3_errmsg(db));
	/* every suite whose shards are all here, each once, and finished */
	if (sqlite3_prepare_v2(db, "SELECT suite_id, shards FROM runs WHERE shard IS NOT NULL"
			       " AND suite_id IS NOT NULL GROUP BY suite_id, shards HAVING"
			       " count(*) = shards AND count(DISTINCT shard) = shards AND"
			       " min(shard) = 1 AND max(shard) = shards AND"
			       " sum(status NOT IN ('complete', 'failed')) = 0", -1, &st, NULL) !=
	    SQLITE_OK)
		ret = -EIO;
	while (!ret && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		char suite[72];
		int shards = sqlite3_column_int(st, 1);
		int64_t run;

		snprintf(suite, sizeof(suite), "%s", (const char *)sqlite3_column_text(st, 0));
		ret = fold_suite(db, suite, shards, &run);
		if (!ret && used < len)
			used += (size_t)snprintf(what + used, len - used, "%ssuite %.12s: %d shards "
						 "made one, run %lld", used ? "\n" : "", suite,
						 shards, (long long)run);
		folded++;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = -EIO;
	sqlite3_finalize(st);
	if (ret) {
		why_set(why, why_len, "%s", sqlite3_errmsg(db));
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return ret;
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		why_set(why, why_len, "%s", sqlite3_errmsg(db));
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -EIO;
	}
	return folded;
}
