/*
 * outfile.c - outputs written beside their path and renamed into place (outfile.h).
 */
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "why.h"

/* The first 16 bytes of every SQLite 3 database file. */
static const char sqlite_magic[16] = "SQLite format 3";

/* Whether path and db name the same file (also through links); false if either is missing. */
static bool same_file(const char *path, const char *db)
{
	struct stat a, b;

	return db && !stat(path, &a) && !stat(db, &b) && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

/* Whether the file at path begins as every SQLite 3 database does. */
static bool has_sqlite_magic(const char *path)
{
	char head[16];
	bool magic;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	magic = read(fd, head, sizeof(head)) == (ssize_t)sizeof(head) &&
		!memcmp(head, sqlite_magic, sizeof(head));
	close(fd);
	return magic;
}

bool outfile_is_database(const char *path, const char *db)
{
	return same_file(path, db) || has_sqlite_magic(path);
}

int outfile_open(struct outfile *o, const char *path, const char *db, char *why, size_t len)
{
	struct stat st;
	mode_t mask;
	int fd;

	memset(o, 0, sizeof(*o));
	snprintf(o->path, sizeof(o->path), "%s", path);
	/* a device or a pipe (/dev/stdout, a fifo) cannot be renamed over: written directly */
	if (!stat(path, &st) && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		o->f = fopen(path, "w");
		return o->f ? 0 : why_fail(-errno, why, len, "cannot write '%s': %s", path,
					   strerror(errno));
	}
	if (same_file(path, db))
		return why_fail(-EEXIST, why, len, "'%s' is the database itself: an output never "
				"replaces a database", path);
	if (has_sqlite_magic(path))
		return why_fail(-EEXIST, why, len, "'%s' is a database: an output never replaces "
				"one", path);
	if (snprintf(o->path, sizeof(o->path), "%s", path) >= (int)sizeof(o->path) ||
	    snprintf(o->tmp, sizeof(o->tmp), "%s.XXXXXX", path) >= (int)sizeof(o->tmp))
		return why_fail(-ENAMETOOLONG, why, len, "the path '%.64s...' is too long", path);
	fd = mkstemp(o->tmp);
	if (fd < 0) {
		int err = errno;

		o->tmp[0] = '\0';
		return why_fail(-err, why, len, "cannot write '%s': %s", path, strerror(err));
	}
	/* the mode fopen(path, "w") would give (mkstemp's is 0600) */
	mask = umask(0);
	umask(mask);
	fchmod(fd, 0666 & ~mask);
	o->f = fdopen(fd, "w");
	if (!o->f) {
		int err = errno;

		close(fd);
		unlink(o->tmp);
		o->tmp[0] = '\0';
		return why_fail(-err, why, len, "cannot write '%s': %s", path, strerror(err));
	}
	return 0;
}

int outfile_commit(struct outfile *o, char *why, size_t len)
{
	int err = 0;

	errno = 0;
	if (fflush(o->f) || ferror(o->f) || (o->tmp[0] && fsync(fileno(o->f))))
		err = errno ? errno : EIO;
	if (fclose(o->f) && !err)
		err = errno ? errno : EIO;
	o->f = NULL;
	if (!err && o->tmp[0] && rename(o->tmp, o->path))
		err = errno;
	if (err) {
		if (o->tmp[0])
			unlink(o->tmp);
		o->tmp[0] = '\0';
		return why_fail(-err, why, len, "cannot write '%s': %s", o->path, strerror(err));
	}
	o->tmp[0] = '\0';
	return 0;
}

void outfile_abort(struct outfile *o)
{
	if (o->f)
		fclose(o->f);
	o->f = NULL;
	if (o->tmp[0])
		unlink(o->tmp);
	o->tmp[0] = '\0';
}
