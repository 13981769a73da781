/*
 * resume.c - finishing a run that stopped (resume.h).
 */
#include "resume.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "provenance.h"
#include "queries.h"
#include "rounds.h"
#include "why.h"

void resume_release(struct resume_target *t)
{
	for (int i = 0; i < t->argc; i++)
		free(t->argv[i]);
	memset(t, 0, sizeof(*t));
}

/* The stored command line (a JSON array of strings) into t->argv. */
static int decode_arguments(sqlite3 *db, const char *json, struct resume_target *t,
			    char *why, size_t len)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT value FROM json_each(?1)", -1, &st, NULL) !=
	    SQLITE_OK)
		return why_fail(-EIO, why, len, "cannot read run %lld's command line",
				(long long)t->run);
	sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && t->argc < RESUME_MAX_ARGS) {
		const char *arg = (const char *)sqlite3_column_text(st, 0);

		t->argv[t->argc] = strdup(arg ? arg : "");
		if (!t->argv[t->argc]) {
			sqlite3_finalize(st);
			return why_fail(-ENOMEM, why, len, "out of memory");
		}
		t->argc++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE || t->argc < 1)
		return why_fail(-EINVAL, why, len, "run %lld's stored command line is not a JSON "
				"array of its arguments", (long long)t->run);
	return 0;
}

/* The newest run that is not complete (A/A runs aside); 0, -ENOENT, -EIO. */
static int newest_unfinished(sqlite3 *db, int64_t *run)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT id FROM runs WHERE status <> 'complete' AND"
			       " suite IS NOT '" STORE_AA_SUITE "' ORDER BY id DESC LIMIT 1", -1,
			       &st, NULL) != SQLITE_OK)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*run = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : -EIO;
}

int resume_find(struct store *st, int64_t run, struct resume_target *t, char *why,
		size_t len)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *q;
	char host[256] = "";
	const char *status, *ran_on, *driver, *args;
	int rc, ret = 0;

	memset(t, 0, sizeof(*t));
	if (!run) {
		ret = newest_unfinished(db, &run);
		if (ret == -ENOENT)
			return why_fail(ret, why, len, "no run to resume: every run is complete");
		if (ret)
			return why_fail(ret, why, len, "cannot read runs: %s", store_errmsg(st));
	}
	t->run = run;
	if (sqlite3_prepare_v2(db, "SELECT status, hostname, driver, arguments, rounds FROM runs"
			       " WHERE id = ?1", -1, &q, NULL) != SQLITE_OK)
		return why_fail(-EIO, why, len, "cannot read runs: %s", store_errmsg(st));
	sqlite3_bind_int64(q, 1, run);
	rc = sqlite3_step(q);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(q);
		return rc == SQLITE_DONE ?
		       why_fail(-ENOENT, why, len, "no run %lld (see 'attnbench list runs')",
				(long long)run) :
		       why_fail(-EIO, why, len, "cannot read runs: %s", store_errmsg(st));
	}
	status = (const char *)sqlite3_column_text(q, 0);
	ran_on = (const char *)sqlite3_column_text(q, 1);
	driver = (const char *)sqlite3_column_text(q, 2);
	args = (const char *)sqlite3_column_text(q, 3);
	t->rounds = sqlite3_column_type(q, 4) == SQLITE_NULL ? 1 : sqlite3_column_int(q, 4);
	gethostname(host, sizeof(host) - 1);
	if (status && !strcmp(status, "complete"))
		ret = why_fail(-EINVAL, why, len, "run %lld is complete: nothing to resume",
			       (long long)run);
	else if (status && !strcmp(status, "running") && (!ran_on || strcmp(ran_on, host)))
		ret = why_fail(-EINVAL, why, len, "run %lld was started on '%s' and may still run "
			       "there: resume it on that machine", (long long)run,
			       ran_on ? ran_on : "another machine");
	else if (status && !strcmp(status, "running") && provenance_driver_alive(driver) > 0)
		ret = why_fail(-EINVAL, why, len, "run %lld is still running (its driver, %s, is "
			       "alive)", (long long)run, driver);
	else if (status && !strcmp(status, "running") && provenance_driver_alive(driver) < 0)
		ret = why_fail(-EINVAL, why, len, "run %lld is marked running and records no "
			       "driver: cannot tell whether it still runs", (long long)run);
	else if (!args)
		ret = why_fail(-EINVAL, why, len, "run %lld has no stored command line (made "
			       "before schema 4, or imported): it cannot be resumed",
			       (long long)run);
	if (!ret)
		ret = decode_arguments(db, args, t, why, len);
	sqlite3_finalize(q);
	if (ret)
		resume_release(t);
	return ret;
}

/* A stored cell of the run: its key, as planned cells are keyed, and what it holds. */
struct stored {
	char *key;
	int64_t id;
	bool finished;
	bool failed;		/* not ok, not unsupported */
	bool used;		/* matched to a planned cell already */
};

static int key_compare(const void *a, const void *b)
{
	const struct stored *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	return c ? c : (x->id > y->id) - (x->id < y->id);
}

/* The key of a cell: every column that tells two cells of a run apart. */
static char *cell_key(const char *variant, const char *task, const char *pattern,
		      const char *regime, const int shape[6], const char *params,
		      long long seed)
{
	char *key;

	if (asprintf(&key, "%s|%s|%s|%s|%d|%d|%d|%d|%d|%d|%s|%lld", variant, task, pattern,
		     regime, shape[0], shape[1], shape[2], shape[3], shape[4], shape[5], params,
		     seed) < 0)
		return NULL;
	return key;
}

/* Whether a stored cell is a result the run keeps (resume.h). */
static bool finished(const char *status, bool timed, int planned_rounds, double rounds,
		     double unstable)
{
	if (strcmp(status, "ok") || !timed)
		return true;
	if (isnan(rounds) || rounds < planned_rounds)
		return false;
	/* a majority still disagreeing would have had extra rounds, while any were left */
	return !(unstable > 0) || rounds >= planned_rounds + ROUNDS_MAX_EXTRA;
}

/* The stored cells of the run, sorted by key, into *out. */
static int load_stored(struct store *st, const struct resume_target *t, struct stored **out,
		       size_t *n, char *why, size_t len)
{
	sqlite3_stmt *q;
	struct stored *s = NULL;
	size_t cap = 0;
	int rc;

	*n = 0;
	if (sqlite3_prepare_v2(store_db(st),
		"SELECT c.id, c.variant, c.task, c.pattern, ifnull(c.regime, ''), c.n, c.m, c.d,"
		" c.heads, c.kv_heads, c.batch, c.params, c.seed, c.status,"
		" (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'rounds'),"
		" (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'unstable')"
		" FROM cells c WHERE c.run_id = ?1", -1, &q, NULL) != SQLITE_OK)
		return why_fail(-EIO, why, len, "cannot read run %lld's cells: %s",
				(long long)t->run, store_errmsg(st));
	sqlite3_bind_int64(q, 1, t->run);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const struct task_ops *task = task_find((const char *)sqlite3_column_text(q, 2));
		const char *status = (const char *)sqlite3_column_text(q, 13);
		int shape[6];

		if (*n == cap) {
			struct stored *grown = realloc(s, sizeof(*s) * (cap = 2 * cap + 64));

			if (!grown)
				break;
			s = grown;
		}
		for (int k = 0; k < 6; k++)
			shape[k] = sqlite3_column_int(q, 5 + k);
		s[*n] = (struct stored){
			.id = sqlite3_column_int64(q, 0),
			.key = cell_key((const char *)sqlite3_column_text(q, 1),
					(const char *)sqlite3_column_text(q, 2),
					(const char *)sqlite3_column_text(q, 3),
					(const char *)sqlite3_column_text(q, 4), shape,
					(const char *)sqlite3_column_text(q, 11),
					(long long)sqlite3_column_int64(q, 12)),
			.failed = strcmp(status, "ok") && strcmp(status, "unsupported"),
			.finished = finished(status, task && task->summarise, t->rounds,
					     sqlite3_column_type(q, 14) == SQLITE_NULL ? NAN :
					     sqlite3_column_double(q, 14),
					     sqlite3_column_double(q, 15)),
		};
		if (!s[*n].key)
			break;
		(*n)++;
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE) {
		for (size_t i = 0; i < *n; i++)
			free(s[i].key);
		free(s);
		return rc == SQLITE_ROW ? why_fail(-ENOMEM, why, len, "out of memory") :
		       why_fail(-EIO, why, len, "cannot read run %lld's cells: %s",
				(long long)t->run, store_errmsg(st));
	}
	qsort(s, *n, sizeof(*s), key_compare);
	*out = s;
	return 0;
}

/* The first stored cell with key that no planned cell took yet, or NULL. */
static struct stored *match(struct stored *s, size_t n, const char *key)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(s[mid].key, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < n && !strcmp(s[lo].key, key); lo++)
		if (!s[lo].used)
			return &s[lo];
	return NULL;
}

/* Deletes the unfinished stored cells (their rows go with them) in one transaction. */
static int delete_unfinished(struct store *st, const struct stored *s, size_t n)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *del;
	int ret = 0;

	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return -EIO;
	if (sqlite3_prepare_v2(db, "DELETE FROM cells WHERE id = ?1", -1, &del, NULL) !=
	    SQLITE_OK) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -EIO;
	}
	for (size_t i = 0; !ret && i < n; i++) {
		if (s[i].finished)
			continue;
		sqlite3_bind_int64(del, 1, s[i].id);
		ret = sqlite3_step(del) == SQLITE_DONE ? 0 : -EIO;
		sqlite3_reset(del);
	}
	sqlite3_finalize(del);
	if (ret) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return ret;
	}
	return sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

int resume_remaining(struct store *st, struct resume_target *t, struct cell *cells,
		     size_t *count, char *why, size_t len)
{
	struct stored *s = NULL;
	size_t n = 0, kept = 0;
	int ret = load_stored(st, t, &s, &n, why, len);

	t->done = t->failed = 0;
	if (ret)
		return ret;
	for (size_t i = 0; !ret && i < *count; i++) {
		const struct cell *c = &cells[i];
		int shape[6] = { c->n, c->m, c->d, c->heads, c->kv_heads, c->batch };
		char params[1024], *key;
		struct stored *at;

		if (store_params_json(c, params, sizeof(params))) {
			ret = why_fail(-ENOMEM, why, len, "a cell's parameters do not fit");
			break;
		}
		key = cell_key(c->variant->name, c->task->name, pattern_name(c->pattern),
			       c->regime ? c->regime : "", shape, params, (long long)c->seed);
		if (!key) {
			ret = why_fail(-ENOMEM, why, len, "out of memory");
			break;
		}
		at = match(s, n, key);
		free(key);
		if (at)
			at->used = true;
		if (at && at->finished) {
			t->done++;
			t->failed += at->failed;
		} else {
			cells[kept++] = *c;
		}
	}
	/* a stored cell no planned cell took is not this command's: left alone */
	for (size_t i = 0; i < n; i++)
		if (!s[i].used)
			s[i].finished = true;
	if (!ret && delete_unfinished(st, s, n))
		ret = why_fail(-EIO, why, len, "cannot delete run %lld's unfinished cells: %s",
			       (long long)t->run, store_errmsg(st));
	if (!ret)
		*count = kept;
	for (size_t i = 0; i < n; i++)
		free(s[i].key);
	free(s);
	return ret;
}

int resume_take_over(struct store *st, int64_t run, const char *driver)
{
	sqlite3_stmt *q;
	int rc;

	if (sqlite3_prepare_v2(store_db(st), "UPDATE runs SET status = 'running', finished = NULL,"
			       " driver = ?2 WHERE id = ?1", -1, &q, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(q, 1, run);
	if (driver)
		sqlite3_bind_text(q, 2, driver, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : -EIO;
}
