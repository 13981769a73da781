/*
 * options.c - what several commands parse alike (options.h).
 */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "plugin.h"
#include "queries.h"

int option_error(int opt, char **argv, const char *command)
{
	if (opt == ':')
		return error("option '%s' needs a value", argv[optind - 1]);
	return error("unknown option '%s' (see 'attnbench %s --help')", argv[optind - 1],
		     command);
}

int option_no_arguments(const char *command)
{
	return error("%s takes no arguments, only options (see 'attnbench %s --help')", command,
		     command);
}

int option_number(const char *text, double min, double max, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(text, &end);
	return *text && !*end && !errno && *out >= min && *out <= max ? 0 : -EINVAL;
}

int option_run_id(const char *option, const char *text, int64_t *run)
{
	char *end;
	long long x;

	errno = 0;
	x = strtoll(text, &end, 10);
	if (errno || end == text || *end || x < 1)
		return error("%s needs a run id (a whole number >= 1), not '%s'", option, text);
	*run = x;
	return 0;
}

int option_latest_run(struct store *st, const char *db, const char *purpose, int64_t *run)
{
	int ret = store_latest_run(store_db(st), run);

	if (ret == -ENOENT)
		return error("no runs in '%s' %s (A/A runs are only read with --run)", db,
			     purpose);
	if (ret)
		return error("cannot read runs in '%s': %s", db, store_errmsg(st));
	return 0;
}

int option_plugin(const char *path)
{
	char why[512];

	if (plugin_load(path, why, sizeof(why)))
		return error("cannot load plugin '%s': %s", path, why);
	return 0;
}

int option_plugins(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		const char *path = NULL;
		int ret;

		if (!strcmp(argv[i], "--plugin") && i + 1 < argc)
			path = argv[++i];
		else if (!strncmp(argv[i], "--plugin=", 9))
			path = argv[i] + 9;
		if (path && (ret = option_plugin(path)))
			return ret;
	}
	return 0;
}
