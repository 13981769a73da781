/*
 * cmd-merge.c - `attnbench merge`: databases from several machines or shards into one,
 * each run with its provenance, cells, metrics, samples, trials and run metrics.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "error.h"
#include "merge.h"
#include "store.h"

const char usage_merge[] =
	"usage: attnbench merge OUT.db IN.db...\n"
	"\n"
	"Copies every run of the input databases, with its provenance and all its results,\n"
	"into OUT.db (created if missing, migrated if older); runs get new ids. The inputs\n"
	"are only read. A run that is already in OUT.db or in an earlier input (same start\n"
	"time, host and command) is refused, and so is a row that 'attnbench import' would\n"
	"refuse (a variant name that is not 1 to 64 of letters, digits, '_', '-' and '.',\n"
	"an unknown status, a negative time, ...): OUT.db is then left as it was.\n"
	"\n"
	"example (shards of one suite run on several machines):\n"
	"  attnbench merge results/attnbench.db shard-1.db shard-2.db shard-3.db\n";

/* Removes an output this command created and could not fill. */
static void remove_new_output(const char *out)
{
	char side[4096];

	unlink(out);
	snprintf(side, sizeof(side), "%s-wal", out);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", out);
	unlink(side);
}

/*
 * After a merge: each suite run in shards (run --shard) whose shards are not all in out
 * and finished, a warning line; EXIT_FAILED when there is one (the merge itself stands).
 */
static int shards_whole(const char *out)
{
	struct store *st;
	char why[1024], what[2048];
	int suites;

	if (store_open(out, STORE_READONLY, &st, why, sizeof(why)))
		return error("cannot open database '%s': %s", out, why);
	suites = merge_shards_missing(store_db(st), what, sizeof(what));
	if (suites < 0)
		suites = error("cannot read the shards of '%s': %s", out, store_errmsg(st));
	store_close(st);
	if (suites <= 0)
		return suites < 0 ? suites : EXIT_OK;
	for (char *line = strtok(what, "\n"); line; line = strtok(NULL, "\n"))
		warning("%s (merge the rest in when they are done)", line);
	return EXIT_FAILED;
}

/*
 * After a merge: the shards of each suite now whole in out made one run, a line each;
 * then shards_whole(). The merge stands if this fails.
 */
static int fold_shards(const char *out)
{
	struct store *st;
	char why[1024], what[2048];
	int suites;

	if (store_open(out, 0, &st, why, sizeof(why)))
		return error("cannot open database '%s': %s", out, why);
	suites = merge_fold_shards(store_db(st), what, sizeof(what), why, sizeof(why));
	store_close(st);
	if (suites < 0)
		return error("merged, but cannot make the shards of '%s' one run: %s", out, why);
	for (char *line = strtok(what, "\n"); line; line = strtok(NULL, "\n"))
		printf("%s\n", line);
	return shards_whole(out);
}

int cmd_merge(int argc, char **argv)
{
	const char *out, *const *inputs;
	int64_t runs = 0, cells = 0;
	struct store *st;
	char why[1024];
	int n, ret;
	bool existed;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (argv[i][0] == '-' && argv[i][1])
			return error("unknown option '%s' (see 'attnbench merge --help')", argv[i]);
	}
	if (argc > 1 && !strcmp(argv[1], "--")) {
		argv++;
		argc--;
	}
	if (argc < 3)
		return error("merge needs an output and at least one input: "
			     "attnbench merge OUT.db IN.db...");
	out = argv[1];
	inputs = (const char *const *)argv + 2;
	n = argc - 2;
	/* Inputs are attached as read-only URIs (file:...?mode=ro). */
	sqlite3_config(SQLITE_CONFIG_URI, 1);

	/* Everything that can refuse the merge is checked before OUT is touched. */
	ret = merge_check(out, inputs, n, why, sizeof(why));
	if (ret)
		return error("cannot merge into '%s': %s", out, why);
	existed = !access(out, F_OK);
	if (store_open(out, 0, &st, why, sizeof(why))) {
		if (!existed)
			remove_new_output(out);
		return error("cannot open database '%s': %s", out, why);
	}
	ret = merge_databases(store_db(st), inputs, n, &runs, &cells, why, sizeof(why));
	store_close(st);
	if (ret) {
		if (!existed)
			remove_new_output(out);
		return error("cannot merge into '%s': %s", out, why);
	}
	printf("merged %lld runs (%lld cells) from %d database%s into '%s'\n",
	       (long long)runs, (long long)cells, n, n == 1 ? "" : "s", out);
	return fold_shards(out);
}
