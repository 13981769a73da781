/*
 * queries.c - shared read-only questions about stored runs (queries.h).
 */
#include "queries.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

/* Steps a prepared statement once; 0 on a row, -ENOENT on none, -EIO on trouble. */
static int step_once(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : -EIO;
}

int store_latest_run(sqlite3 *db, int64_t *run)
{
	sqlite3_stmt *st;
	int ret;

	if (sqlite3_prepare_v2(db, "SELECT max(id) FROM runs WHERE suite IS NOT ?1"
			       " HAVING max(id) IS NOT NULL", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, STORE_AA_SUITE, -1, SQLITE_STATIC);
	ret = step_once(st);
	if (!ret)
		*run = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return ret;
}

int store_find_run(sqlite3 *db, int64_t run)
{
	sqlite3_stmt *st;
	int ret;

	if (sqlite3_prepare_v2(db, "SELECT 1 FROM runs WHERE id = ?1", -1, &st, NULL) !=
	    SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, run);
	ret = step_once(st);
	sqlite3_finalize(st);
	return ret;
}

int store_run_status(sqlite3 *db, int64_t run, char *buf, size_t len)
{
	sqlite3_stmt *st;
	int ret;

	if (sqlite3_prepare_v2(db, "SELECT ifnull(status, '') FROM runs WHERE id = ?1", -1, &st,
			       NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, run);
	ret = step_once(st);
	if (!ret)
		snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return ret;
}

int store_find_shard(sqlite3 *db, const char *suite_id, int shard, int shards, int64_t *run)
{
	sqlite3_stmt *st;
	int ret;

	if (sqlite3_prepare_v2(db, "SELECT id FROM runs WHERE suite_id = ?1 AND shard = ?2 AND"
			       " shards = ?3 ORDER BY id DESC LIMIT 1", -1, &st, NULL) !=
	    SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, suite_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, shard);
	sqlite3_bind_int(st, 3, shards);
	ret = step_once(st);
	if (!ret)
		*run = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return ret;
}

int store_run_machines(sqlite3 *db, int64_t run, char *list, size_t len)
{
	sqlite3_stmt *st;
	size_t used = 0;
	int n = 0, rc;

	list[0] = '\0';
	if (sqlite3_prepare_v2(db, "SELECT DISTINCT ifnull(cpu_model, '?') || ', ' ||"
			       " ifnull(threads, '?') || ' threads' FROM shards WHERE run_id = ?1"
			       " ORDER BY 1", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, run);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (used < len)
			used += (size_t)snprintf(list + used, len - used, "%s%s", n ? "; " : "",
						 (const char *)sqlite3_column_text(st, 0));
		n++;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? n : -EIO;
}

/* The text of a one-row, one-column query on run (?1) and key (?2, ?3) into buf. */
static int query_text(sqlite3 *db, const char *sql, int64_t run, const char *key,
		      const char *key2, char *buf, size_t len)
{
	sqlite3_stmt *st;
	int ret;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, run);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	if (key2)
		sqlite3_bind_text(st, 3, key2, -1, SQLITE_STATIC);
	ret = step_once(st);
	if (!ret)
		snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return ret;
}

int store_plugin_sha256(sqlite3 *db, int64_t run, const char *variant, char *buf, size_t len)
{
	return query_text(db, "SELECT ifnull(sha256, '') FROM plugins WHERE run_id = ?1"
			  " AND variant = ?2", run, variant, NULL, buf, len);
}

int store_input_sha256(sqlite3 *db, int64_t run, const char *name, const char *tensor,
		       char *buf, size_t len)
{
	return query_text(db, "SELECT ifnull(sha256, '') FROM inputs WHERE run_id = ?1"
			  " AND name = ?2 AND tensor = ?3", run, name, tensor, buf, len);
}

int store_runs_with_cells(sqlite3 *db, int64_t **runs, size_t *n)
{
	sqlite3_stmt *st;
	size_t cap = 0;
	int rc;

	*runs = NULL;
	*n = 0;
	if (sqlite3_prepare_v2(db, "SELECT id FROM runs WHERE EXISTS"
			       " (SELECT 1 FROM cells WHERE run_id = runs.id) ORDER BY id", -1, &st,
			       NULL) != SQLITE_OK)
		return -EIO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			int64_t *grown = realloc(*runs, (cap = 2 * cap + 16) * sizeof(*grown));

			if (!grown) {
				rc = SQLITE_NOMEM;
				break;
			}
			*runs = grown;
		}
		(*runs)[(*n)++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return 0;
	free(*runs);
	*runs = NULL;
	*n = 0;
	return rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
}

int store_count_cells(sqlite3 *db, int64_t run, int64_t *n)
{
	sqlite3_stmt *st;
	int ret;

	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM cells WHERE run_id = ?1", -1, &st,
			       NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, run);
	ret = step_once(st) ? -EIO : 0;
	if (!ret)
		*n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return ret;
}

int store_common_shape(sqlite3 *db, int64_t run, const char *task, const char *pattern,
		       const char *with_variant, struct cell_shape *out)
{
	sqlite3_stmt *st;
	int ret;

	if (sqlite3_prepare_v2(db,
			       "SELECT d, heads, kv_heads, batch FROM cells"
			       " WHERE run_id = ?1 AND task = ?2 AND pattern = ?3 AND status = 'ok'"
			       " GROUP BY 1, 2, 3, 4 HAVING ?4 IS NULL OR sum(variant = ?4) > 0"
			       " ORDER BY count(*) DESC, 1, 2, 3, 4 LIMIT 1", -1, &st, NULL) !=
	    SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, run);
	sqlite3_bind_text(st, 2, task, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, pattern, -1, SQLITE_STATIC);
	if (with_variant)
		sqlite3_bind_text(st, 4, with_variant, -1, SQLITE_STATIC);
	ret = step_once(st);
	if (!ret) {
		out->d = sqlite3_column_int(st, 0);
		out->heads = sqlite3_column_int(st, 1);
		out->kv_heads = sqlite3_column_int(st, 2);
		out->batch = sqlite3_column_int(st, 3);
	}
	sqlite3_finalize(st);
	return ret == -ENOENT ? -ENODATA : ret;
}
