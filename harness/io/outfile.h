/*
 * outfile.h - how a command writes a file: into a temporary file in the same folder,
 * renamed into place only once it is complete, so a failed or interrupted write leaves
 * whatever was there before; and never over a database.
 */
#ifndef ATTNBENCH_OUTFILE_H
#define ATTNBENCH_OUTFILE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct outfile {
	char path[PATH_MAX];	/* where the file goes */
	char tmp[PATH_MAX];	/* where it is written meanwhile: PATH.XXXXXX */
	FILE *f;
};

/*
 * Whether the file at path is an SQLite database (its first 16 bytes are SQLite's magic
 * string), or the same file as db (also through a link); false when path does not exist.
 */
bool outfile_is_database(const char *path, const char *db);

/*
 * Opens a temporary file beside path for writing, into o->f (a path that is a device or
 * a pipe is opened itself: nothing can be renamed over it). Refuses (-EEXIST) a path that
 * is the database db (NULL: none) or any other SQLite database, which an output must
 * never replace. 0, or -errno with a one-line reason in why.
 */
int outfile_open(struct outfile *o, const char *path, const char *db, char *why, size_t len);

/*
 * Flushes, syncs and closes the temporary file and renames it to its path. 0, or -errno
 * with a reason in why (the temporary file is then removed; the path keeps what it had).
 */
int outfile_commit(struct outfile *o, char *why, size_t len);

/* Closes and removes the temporary file; the path keeps what it had. Accepts a closed o. */
void outfile_abort(struct outfile *o);

#endif
