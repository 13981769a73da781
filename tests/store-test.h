/*
 * store-test.h - what the tests of the store and its users share: SQL that must succeed,
 * a provenance of placeholders, and removing a scratch directory.
 */
#ifndef ATTNBENCH_STORE_TEST_H
#define ATTNBENCH_STORE_TEST_H

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provenance.h"

/* Runs sql on db; an error fails the test with SQLite's message. */
static inline void exec_ok(sqlite3 *db, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err);
}

/* Every provenance field "x", but 2 cores and 2 threads and the CPU model cpu. */
static inline void fake_provenance(struct provenance *p, const char *cpu)
{
	memset(p, 0, sizeof(*p));
	for (int f = 0; f < PROV_COUNT; f++)
		p->values[f] = strdup(f == PROV_CPU_MODEL ? cpu :
				      f == PROV_CORES || f == PROV_THREADS ? "2" : "x");
}

/* Removes dir and everything in it: a cmocka group teardown's return value. */
static inline int remove_dir(const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

#endif
