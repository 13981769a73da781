/*
 * store.c - SQLite schema, migrations and the prepared statements that write results.
 */
#include "store.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/*
 * The columns of the `results` view as version 1 made it, with the SGEMM rate that
 * peak_fraction divides by (the run's; from version 6 the shard's machine); later versions
 * add to them (the view is the contract of users' queries: columns are added, never
 * changed).
 */
#define RESULTS_COLUMNS_1 RESULTS_COLUMNS_PEAK("r.sgemm_gflops")
#define RESULTS_COLUMNS_PEAK(peak) \
	"  c.run_id, c.id AS cell_id, c.variant, c.task, c.pattern, c.regime," \
	"  c.n, c.m, c.d, c.heads, c.kv_heads, c.batch, c.params, c.status, c.reason," \
	"  (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'accuracy') AS accuracy," \
	"  (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'rel_err') AS rel_err," \
	"  (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'cosine') AS cosine," \
	"  (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'max_abs_err')" \
	"    AS max_abs_err," \
	"  1000 * (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'latency_median')" \
	"    AS latency_ms," \
	"  1000 * (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'latency_ci_lo')" \
	"    AS latency_lo_ms," \
	"  1000 * (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'latency_ci_hi')" \
	"    AS latency_hi_ms," \
	"  (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'peak_bytes')" \
	"    AS peak_bytes," \
	"  c.rss_bytes," \
	"  (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'gflops') AS gflops," \
	"  (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'gflops') / " peak \
	"    AS peak_fraction," \
	"  (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'depth') AS depth," \
	"  (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'pairs') AS pairs," \
	"  (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'gap') AS gap," \
	"  (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'trials') AS trials," \
	"  (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'state_bytes')" \
	"    AS state_bytes," \
	"  (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'causal_change')" \
	"    AS causal_change," \
	"  c.wall_seconds"

/* The view as version 3 made it: version 1's columns and the rounds of timed cells. */
#define RESULTS_VIEW_3 \
	"CREATE VIEW results AS SELECT" \
	RESULTS_COLUMNS_1 "," \
	"  (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'rounds') AS rounds," \
	"  (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'latency_round_spread')" \
	"    AS latency_round_spread," \
	"  (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'unstable') AS unstable" \
	" FROM cells c JOIN runs r ON r.id = c.run_id;"

/* The view as version 5 made it: version 3's and the plugin that provided the variant. */
#define RESULTS_VIEW_5 RESULTS_VIEW_FROM_5(RESULTS_COLUMNS_1, "")
/*
 * From version 6: a cell of a suite merged from shards (run --shard) has the shard that
 * ran it, and its peak_fraction is of that shard's machine.
 */
#define RESULTS_VIEW_6 RESULTS_VIEW_FROM_5(RESULTS_COLUMNS_6, ", c.shard")
#define RESULTS_COLUMNS_6 \
	RESULTS_COLUMNS_PEAK("coalesce((SELECT s.sgemm_gflops FROM shards s" \
		" WHERE s.run_id = c.run_id AND s.shard = c.shard), r.sgemm_gflops)")
/*
 * From version 7: the memory side of the roofline. gbps is the rate a cell moved its bytes
 * at (decode: the state a step reads), bandwidth_fraction that rate over the machine's
 * triad bandwidth (the shard's, as peak_fraction); bytes what a cell moves, intensity its
 * FLOPs per byte.
 */
#define RESULTS_VIEW_7 \
	RESULTS_VIEW_FROM_5(RESULTS_COLUMNS_6, ", c.shard," \
	"  (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'gbps') AS gbps," \
	"  (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'gbps') /" \
	"    coalesce((SELECT s.triad_gbps FROM shards s WHERE s.run_id = c.run_id AND" \
	"    s.shard = c.shard), r.triad_gbps) AS bandwidth_fraction," \
	"  (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'bytes') AS bytes," \
	"  (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'flops') /" \
	"    (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'bytes') AS intensity")
#define RESULTS_VIEW_FROM_5(columns, more) \
	"CREATE VIEW results AS SELECT" \
	columns "," \
	"  (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'rounds') AS rounds," \
	"  (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'latency_round_spread')" \
	"    AS latency_round_spread," \
	"  (SELECT value FROM metrics WHERE cell_id = c.id AND name = 'unstable') AS unstable," \
	"  (SELECT path FROM plugins WHERE run_id = c.run_id AND variant = c.variant)" \
	"    AS plugin_path," \
	"  (SELECT sha256 FROM plugins WHERE run_id = c.run_id AND variant = c.variant)" \
	"    AS plugin_sha256" more \
	" FROM cells c JOIN runs r ON r.id = c.run_id;"

/* migrations[v] takes a database from user_version v to v + 1. */
static const char *const migrations[] = {
	"CREATE TABLE runs ("
	"  id INTEGER PRIMARY KEY,"
	"  started TEXT NOT NULL,"
	"  finished TEXT,"
	"  status TEXT NOT NULL,"
	"  sgemm_gflops REAL,"
	"  harness_version TEXT, git_commit TEXT, compiler TEXT, cflags TEXT,"
	"  cpu_model TEXT, cpu_flags TEXT, cores INTEGER, threads INTEGER,"
	"  blas_config TEXT, sqlite_version TEXT, kernel TEXT, hostname TEXT,"
	"  governor TEXT, load_avg REAL, smt TEXT, aslr TEXT, warnings TEXT,"
	"  seed INTEGER, suite TEXT, command TEXT"
	");"
	"CREATE TABLE cells ("
	"  id INTEGER PRIMARY KEY,"
	"  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
	"  variant TEXT NOT NULL, task TEXT NOT NULL, pattern TEXT NOT NULL, regime TEXT,"
	"  n INTEGER NOT NULL, m INTEGER NOT NULL, d INTEGER NOT NULL,"
	"  heads INTEGER NOT NULL, kv_heads INTEGER NOT NULL, batch INTEGER NOT NULL,"
	"  params TEXT NOT NULL, seed INTEGER NOT NULL, threads INTEGER NOT NULL,"
	"  status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'crashed', 'timeout',"
	"    'oom', 'unsupported', 'nan')),"
	"  reason TEXT, wall_seconds REAL, rss_bytes INTEGER, finished TEXT NOT NULL"
	");"
	"CREATE INDEX cells_by_run ON cells(run_id, task, variant);"
	"CREATE TABLE metrics ("
	"  cell_id INTEGER NOT NULL REFERENCES cells(id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL, value REAL, unit TEXT NOT NULL,"
	"  PRIMARY KEY (cell_id, name)"
	") WITHOUT ROWID;"
	"CREATE TABLE samples ("
	"  cell_id INTEGER NOT NULL REFERENCES cells(id) ON DELETE CASCADE,"
	"  idx INTEGER NOT NULL, seconds REAL NOT NULL,"
	"  PRIMARY KEY (cell_id, idx)"
	") WITHOUT ROWID;"
	"CREATE VIEW results AS SELECT"
	RESULTS_COLUMNS_1
	" FROM cells c JOIN runs r ON r.id = c.run_id;",

	/*
	 * 2: per-trial outcomes of accuracy tasks (trial idx of a cell right or not), so two
	 * variants that saw the same inputs can be compared trial by trial; and results
	 * about a run rather than one cell (efficiency length, scaling slope) per variant
	 * and pattern against a baseline.
	 */
	"CREATE TABLE trials ("
	"  cell_id INTEGER NOT NULL REFERENCES cells(id) ON DELETE CASCADE,"
	"  idx INTEGER NOT NULL, correct INTEGER NOT NULL CHECK (correct IN (0, 1)),"
	"  PRIMARY KEY (cell_id, idx)"
	") WITHOUT ROWID;"
	"CREATE TABLE run_metrics ("
	"  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
	"  variant TEXT NOT NULL, pattern TEXT NOT NULL, baseline TEXT NOT NULL,"
	"  name TEXT NOT NULL, value REAL, unit TEXT NOT NULL,"
	"  PRIMARY KEY (run_id, variant, pattern, baseline, name)"
	") WITHOUT ROWID;",

	/*
	 * 3: timed cells are measured in interleaved rounds: each sample keeps its round
	 * (samples stored before were all one round); the run records its rounds and the
	 * OpenMP wait policy its cells ran with; the view shows the between-round spread
	 * and the unstable mark beside the latency.
	 */
	"ALTER TABLE samples ADD COLUMN round INTEGER NOT NULL DEFAULT 1;"
	"ALTER TABLE runs ADD COLUMN rounds INTEGER;"
	"ALTER TABLE runs ADD COLUMN omp_wait_policy TEXT;"
	"DROP VIEW results;"
	RESULTS_VIEW_3,

	/*
	 * 4: the driver that runs a run (boot, pid and start time: a run whose driver is
	 * gone is interrupted, not running) and its command line (to resume it), and the
	 * status corrupt (a variant wrote outside
	 * its buffers). SQLite cannot change a CHECK in place: cells is rebuilt, with foreign
	 * keys off (store_open() migrates before it turns them on), and the view with it.
	 */
	"ALTER TABLE runs ADD COLUMN driver TEXT;"
	"ALTER TABLE runs ADD COLUMN arguments TEXT;"
	"DROP VIEW results;"
	"CREATE TABLE cells_4 ("
	"  id INTEGER PRIMARY KEY,"
	"  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
	"  variant TEXT NOT NULL, task TEXT NOT NULL, pattern TEXT NOT NULL, regime TEXT,"
	"  n INTEGER NOT NULL, m INTEGER NOT NULL, d INTEGER NOT NULL,"
	"  heads INTEGER NOT NULL, kv_heads INTEGER NOT NULL, batch INTEGER NOT NULL,"
	"  params TEXT NOT NULL, seed INTEGER NOT NULL, threads INTEGER NOT NULL,"
	"  status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'crashed', 'timeout',"
	"    'oom', 'unsupported', 'nan', 'corrupt')),"
	"  reason TEXT, wall_seconds REAL, rss_bytes INTEGER, finished TEXT NOT NULL"
	");"
	"INSERT INTO cells_4 SELECT id, run_id, variant, task, pattern, regime, n, m, d, heads,"
	"  kv_heads, batch, params, seed, threads, status, reason, wall_seconds, rss_bytes,"
	"  finished FROM cells;"
	"DROP TABLE cells;"
	"ALTER TABLE cells_4 RENAME TO cells;"
	"CREATE INDEX cells_by_run ON cells(run_id, task, variant);"
	RESULTS_VIEW_3,

	/*
	 * 5: what a run loaded from files, each with the SHA-256 of the bytes read, so a
	 * result says exactly what ran: variants from plugins (--plugin), and the user's own
	 * tensors (--inputs), whose cells have regime "npy:NAME".
	 */
	"CREATE TABLE plugins ("
	"  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
	"  variant TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL,"
	"  PRIMARY KEY (run_id, variant)"
	") WITHOUT ROWID;"
	"CREATE TABLE inputs ("
	"  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL, tensor TEXT NOT NULL CHECK (tensor IN ('q', 'k', 'v')),"
	"  path TEXT NOT NULL, sha256 TEXT NOT NULL,"
	"  PRIMARY KEY (run_id, name, tensor)"
	") WITHOUT ROWID;"
	"DROP VIEW results;"
	RESULTS_VIEW_5,

	/*
	 * 6: the suite a run belongs to, the SHA-256 of its whole plan (shard.h), and for
	 * run --shard K/N its slice: merge tells the shards of one suite by them and, once
	 * all are there, makes them one run (shards in runs.shards, runs.shard NULL) whose
	 * cells keep their shard, each shard's machine and times in the table shards.
	 */
	"ALTER TABLE runs ADD COLUMN suite_id TEXT;"
	"ALTER TABLE runs ADD COLUMN shard INTEGER;"
	"ALTER TABLE runs ADD COLUMN shards INTEGER;"
	"ALTER TABLE cells ADD COLUMN shard INTEGER;"
	"CREATE TABLE shards ("
	"  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
	"  shard INTEGER NOT NULL, started TEXT, finished TEXT, status TEXT, hostname TEXT,"
	"  cpu_model TEXT, cores INTEGER, threads INTEGER, sgemm_gflops REAL, load_avg REAL,"
	"  warnings TEXT, command TEXT,"
	"  PRIMARY KEY (run_id, shard)"
	") WITHOUT ROWID;"
	"DROP VIEW results;"
	RESULTS_VIEW_6,

	/*
	 * 7: the machine's memory bandwidth (STREAM's triad, GB/s) beside its SGEMM rate,
	 * for each run and each shard; the view adds the bytes cells move, their rate, the
	 * fraction of the bandwidth it is, and the arithmetic intensity.
	 */
	"ALTER TABLE runs ADD COLUMN triad_gbps REAL;"
	"ALTER TABLE shards ADD COLUMN triad_gbps REAL;"
	"DROP VIEW results;"
	RESULTS_VIEW_7,
};

#define MIGRATION_COUNT ((int)(sizeof(migrations) / sizeof(migrations[0])))

_Static_assert(MIGRATION_COUNT == STORE_SCHEMA_VERSION, "one migration per version");

struct store {
	sqlite3 *db;
	sqlite3_stmt *insert_cell, *insert_metric, *insert_sample, *insert_trial;
};

static void set_why(char *why, size_t len, const char *fmt, const char *detail)
{
	if (why && len)
		snprintf(why, len, fmt, detail);
}

static int exec(struct store *s, const char *sql)
{
	return sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

/* Whether some row points at a parent that is not there (or the check cannot run). */
static bool foreign_keys_broken(struct store *s)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, "PRAGMA foreign_key_check", -1, &st, NULL) != SQLITE_OK)
		return true;
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc != SQLITE_DONE;
}

static int user_version(struct store *s, int *version)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);

	if (rc != SQLITE_OK)
		return -EIO;
	rc = sqlite3_step(st);
	*version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -EIO;
}

/*
 * Applies the migrations the file lacks, each with its version bump, atomically. The
 * version is read again inside the write transaction: of two processes that found an old
 * file at once, the second sees what the first did. Foreign keys must be off (a rebuilt
 * table is dropped); the result is checked before it commits.
 */
static int migrate(struct store *s)
{
	char bump[64];
	int from;

	if (exec(s, "BEGIN IMMEDIATE"))
		return -EIO;
	if (user_version(s, &from))
		goto fail;
	for (int v = from; v < MIGRATION_COUNT; v++) {
		snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v + 1);
		if (exec(s, migrations[v]) || exec(s, bump))
			goto fail;
	}
	if (from < MIGRATION_COUNT && foreign_keys_broken(s))
		goto fail;
	return exec(s, "COMMIT");
fail:
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return -EIO;
}

static int prepare(struct store *s)
{
	static const char insert_cell[] =
		"INSERT INTO cells (run_id, variant, task, pattern, regime, n, m, d, heads,"
		" kv_heads, batch, params, seed, threads, status, reason, wall_seconds,"
		" rss_bytes, finished) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
		" ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))";
	static const char insert_metric[] =
		"INSERT OR REPLACE INTO metrics (cell_id, name, value, unit) VALUES (?, ?, ?, ?)";
	static const char insert_sample[] =
		"INSERT INTO samples (cell_id, idx, seconds, round) VALUES (?, ?, ?, ?)";
	static const char insert_trial[] =
		"INSERT INTO trials (cell_id, idx, correct) VALUES (?, ?, ?)";

	if (sqlite3_prepare_v2(s->db, insert_cell, -1, &s->insert_cell, NULL) ||
	    sqlite3_prepare_v2(s->db, insert_metric, -1, &s->insert_metric, NULL) ||
	    sqlite3_prepare_v2(s->db, insert_sample, -1, &s->insert_sample, NULL) ||
	    sqlite3_prepare_v2(s->db, insert_trial, -1, &s->insert_trial, NULL))
		return -EIO;
	return 0;
}

int store_open(const char *path, int flags, struct store **out, char *why, size_t why_len)
{
	bool readonly = flags & STORE_READONLY, memory = !strcmp(path, ":memory:");
	int open_flags = readonly ? SQLITE_OPEN_READONLY :
			 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	struct stat st;
	struct store *s;
	int version, ret = -EIO;

	*out = NULL;
	if (readonly && !memory && stat(path, &st)) {
		set_why(why, why_len, "%s", "no such file");
		return -ENOENT;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		set_why(why, why_len, "%s", "out of memory");
		return -ENOMEM;
	}
	if (sqlite3_open_v2(path, &s->db, open_flags, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(s->db, 10000);
	if (user_version(s, &version))
		goto fail;
	if (version > STORE_SCHEMA_VERSION) {
		char text[128];

		snprintf(text, sizeof(text), "schema version %d is newer than this build's %d",
			 version, STORE_SCHEMA_VERSION);
		set_why(why, why_len, "%s", text);
		store_close(s);
		return -EPROTO;
	}
	if (readonly) {
		if (version < STORE_SCHEMA_VERSION) {
			set_why(why, why_len, "%s", "not an attnbench database (or an older one: "
				"open it once with 'attnbench run' to migrate)");
			store_close(s);
			return -EPROTO;
		}
		*out = s;
		return 0;
	}
	/* a finished cell survives power loss: one sync per cell is nothing next to a cell */
	if ((!memory && exec(s, "PRAGMA journal_mode = WAL")) ||
	    exec(s, "PRAGMA synchronous = FULL"))
		goto fail;
	if (version < STORE_SCHEMA_VERSION && migrate(s))
		goto fail;
	if (exec(s, "PRAGMA foreign_keys = ON"))
		goto fail;
	if (prepare(s))
		goto fail;
	*out = s;
	return 0;
fail:
	set_why(why, why_len, "%s", s->db ? sqlite3_errmsg(s->db) : "cannot open");
	store_close(s);
	return ret;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	sqlite3_finalize(s->insert_cell);
	sqlite3_finalize(s->insert_metric);
	sqlite3_finalize(s->insert_sample);
	sqlite3_finalize(s->insert_trial);
	sqlite3_close(s->db);
	free(s);
}

sqlite3 *store_db(struct store *s)
{
	return s->db;
}

const char *store_errmsg(struct store *s)
{
	return sqlite3_errmsg(s->db);
}

static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

int store_begin_run(struct store *s, const struct provenance *p, int64_t *run_id)
{
	char sql[1024] = "INSERT INTO runs (started, status", *at;
	sqlite3_stmt *st;
	int ret;

	for (int f = 0; f < PROV_COUNT; f++) {
		strcat(sql, ", ");
		strcat(sql, provenance_name(f));
	}
	strcat(sql, ") VALUES (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'running'");
	at = sql + strlen(sql);
	for (int f = 0; f < PROV_COUNT; f++, at += 3)
		memcpy(at, ", ?", 4);
	strcat(sql, ")");

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	for (int f = 0; f < PROV_COUNT; f++)
		sqlite3_bind_text(st, f + 1, p->values[f], -1, SQLITE_TRANSIENT);
	ret = step_done(st);
	sqlite3_finalize(st);
	*run_id = sqlite3_last_insert_rowid(s->db);
	return ret;
}

static int update_run(struct store *s, const char *sql, int64_t run_id, const char *text,
		      double number)
{
	sqlite3_stmt *st;
	int ret;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	if (text)
		sqlite3_bind_text(st, 1, text, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_double(st, 1, number);
	sqlite3_bind_int64(st, 2, run_id);
	ret = step_done(st);
	sqlite3_finalize(st);
	return ret;
}

int store_set_run_peak(struct store *s, int64_t run_id, double sgemm_gflops)
{
	return update_run(s, "UPDATE runs SET sgemm_gflops = ? WHERE id = ?", run_id, NULL,
			  sgemm_gflops);
}

int store_set_run_bandwidth(struct store *s, int64_t run_id, double triad_gbps)
{
	return update_run(s, "UPDATE runs SET triad_gbps = ? WHERE id = ?", run_id, NULL,
			  triad_gbps);
}

int store_set_run_suite(struct store *s, int64_t run_id, const char *suite_id, int shard,
			int shards)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, "UPDATE runs SET suite_id = ?1, shard = ?2, shards = ?3"
			       " WHERE id = ?4", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, suite_id, -1, SQLITE_STATIC);
	if (shards > 0) {
		sqlite3_bind_int(st, 2, shard);
		sqlite3_bind_int(st, 3, shards);
	}
	sqlite3_bind_int64(st, 4, run_id);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Runs an INSERT of the run id and up to four texts; 0 or -EIO. */
static int insert_texts(struct store *s, const char *sql, int64_t run_id,
			const char *const *texts, int n)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, run_id);
	for (int i = 0; i < n; i++)
		sqlite3_bind_text(st, 2 + i, texts[i], -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

int store_add_plugin(struct store *s, int64_t run_id, const char *variant, const char *path,
		     const char *sha256)
{
	const char *texts[] = { variant, path, sha256 };

	return insert_texts(s, "INSERT OR REPLACE INTO plugins (run_id, variant, path, sha256)"
			    " VALUES (?, ?, ?, ?)", run_id, texts, 3);
}

int store_add_input(struct store *s, int64_t run_id, const char *name, const char *tensor,
		    const char *path, const char *sha256)
{
	const char *texts[] = { name, tensor, path, sha256 };

	return insert_texts(s, "INSERT OR REPLACE INTO inputs (run_id, name, tensor, path,"
			    " sha256) VALUES (?, ?, ?, ?, ?)", run_id, texts, 4);
}

int store_finish_run(struct store *s, int64_t run_id, const char *status)
{
	return update_run(s, "UPDATE runs SET status = ?, finished = "
			  "strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?", run_id, status, 0);
}

int store_params_json(const struct cell *c, char *buf, size_t len)
{
	const struct variant_ops *v = c->variant;
	size_t used = 0;
	int n;

	n = snprintf(buf, len, "{");
	for (int i = 0; n >= 0 && (size_t)n < len - used && i < v->n_params; i++) {
		used += (size_t)n;
		n = snprintf(buf + used, len - used, "%s\"%s\":%.17g", i ? "," : "",
			     v->params[i].name, c->params[i]);
	}
	if (n < 0 || (size_t)n >= len - used)
		return -ENOSPC;
	used += (size_t)n;
	n = snprintf(buf + used, len - used, "}");
	return n < 0 || (size_t)n >= len - used ? -ENOSPC : 0;
}

static int insert_cell(struct store *s, int64_t run_id, const struct cell_record *rec,
		       int64_t *cell_id)
{
	const struct cell *c = rec->cell;
	const struct cell_result *r = rec->result;
	sqlite3_stmt *st = s->insert_cell;
	char params[1024];
	int i = 1;

	if (store_params_json(c, params, sizeof(params)))
		return -ENOSPC;
	sqlite3_bind_int64(st, i++, run_id);
	sqlite3_bind_text(st, i++, c->variant->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, c->task->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, pattern_name(c->pattern), -1, SQLITE_STATIC);
	if (c->regime)
		sqlite3_bind_text(st, i++, c->regime, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i++);
	sqlite3_bind_int(st, i++, c->n);
	sqlite3_bind_int(st, i++, c->m);
	sqlite3_bind_int(st, i++, c->d);
	sqlite3_bind_int(st, i++, c->heads);
	sqlite3_bind_int(st, i++, c->kv_heads);
	sqlite3_bind_int(st, i++, c->batch);
	sqlite3_bind_text(st, i++, params, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, i++, (sqlite3_int64)c->seed);
	sqlite3_bind_int(st, i++, c->threads);
	sqlite3_bind_text(st, i++, cell_status_name(r->status), -1, SQLITE_STATIC);
	if (r->reason[0])
		sqlite3_bind_text(st, i++, r->reason, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i++);
	sqlite3_bind_double(st, i++, rec->wall_seconds);
	if (rec->rss_bytes >= 0)
		sqlite3_bind_int64(st, i++, rec->rss_bytes);
	else
		sqlite3_bind_null(st, i++);
	if (step_done(st))
		return -EIO;
	*cell_id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

/* Points the cell's row at rec's outcome and drops its metrics, samples and trials. */
static int reset_cell(struct store *s, int64_t cell_id, const struct cell_record *rec)
{
	static const char *const sql[] = {
		"UPDATE cells SET status = ?2, reason = ?3, wall_seconds = ?4, rss_bytes = ?5,"
		" finished = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
		"DELETE FROM metrics WHERE cell_id = ?1",
		"DELETE FROM samples WHERE cell_id = ?1",
		"DELETE FROM trials WHERE cell_id = ?1",
	};
	const struct cell_result *r = rec->result;
	int ret = 0;

	for (size_t i = 0; !ret && i < sizeof(sql) / sizeof(sql[0]); i++) {
		sqlite3_stmt *st;

		if (sqlite3_prepare_v2(s->db, sql[i], -1, &st, NULL) != SQLITE_OK)
			return -EIO;
		sqlite3_bind_int64(st, 1, cell_id);
		if (i == 0) {
			sqlite3_bind_text(st, 2, cell_status_name(r->status), -1, SQLITE_STATIC);
			if (r->reason[0])
				sqlite3_bind_text(st, 3, r->reason, -1, SQLITE_STATIC);
			sqlite3_bind_double(st, 4, rec->wall_seconds);
			if (rec->rss_bytes >= 0)
				sqlite3_bind_int64(st, 5, rec->rss_bytes);
		}
		ret = step_done(st);
		sqlite3_finalize(st);
	}
	return ret;
}

int store_put_cell(struct store *s, int64_t run_id, const struct cell_record *rec,
		   int64_t *cell_id)
{
	const struct cell_result *r = rec->result;
	int ret;

	if (exec(s, "BEGIN IMMEDIATE"))
		return -EIO;
	ret = *cell_id ? reset_cell(s, *cell_id, rec) : insert_cell(s, run_id, rec, cell_id);
	for (int i = 0; !ret && i < r->n_metrics; i++) {
		sqlite3_stmt *st = s->insert_metric;

		sqlite3_bind_int64(st, 1, *cell_id);
		sqlite3_bind_text(st, 2, r->metrics[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_double(st, 3, r->metrics[i].value);
		sqlite3_bind_text(st, 4, r->metrics[i].unit, -1, SQLITE_STATIC);
		ret = step_done(st);
	}
	for (size_t i = 0; !ret && i < r->n_samples; i++) {
		sqlite3_stmt *st = s->insert_sample;

		sqlite3_bind_int64(st, 1, *cell_id);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
		sqlite3_bind_double(st, 3, r->samples[i]);
		sqlite3_bind_int(st, 4, rec->sample_rounds ? rec->sample_rounds[i] : 1);
		ret = step_done(st);
	}
	for (size_t i = 0; !ret && i < r->n_trials; i++) {
		sqlite3_stmt *st = s->insert_trial;

		sqlite3_bind_int64(st, 1, *cell_id);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
		sqlite3_bind_int(st, 3, r->trials[i] ? 1 : 0);
		ret = step_done(st);
	}
	if (ret) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return ret;
	}
	return exec(s, "COMMIT");
}

int store_add_cell(struct store *s, int64_t run_id, const struct cell_record *rec)
{
	int64_t cell_id = 0;

	return store_put_cell(s, run_id, rec, &cell_id);
}
