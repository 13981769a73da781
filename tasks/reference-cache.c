/*
 * reference-cache.c - files of fp64 reference outputs and regime properties, one per input
 * set, in a per-run directory; the oldest are deleted beyond REFERENCE_CACHE_FILES.
 */
#include "reference-cache.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inputs.h"

/* The folder the caches go in: $TMPDIR or /tmp. */
static const char *cache_parent(void)
{
	const char *tmp = getenv("TMPDIR");

	return tmp && *tmp ? tmp : "/tmp";
}

int reference_cache_create(char *dir, size_t len)
{
	/* the pid names the cache's owner, so a later run can tell it was abandoned */
	if ((size_t)snprintf(dir, len, "%s/attnbench-ref-%ld-XXXXXX", cache_parent(),
			     (long)getpid()) >= len)
		return -ENAMETOOLONG;
	return mkdtemp(dir) ? 0 : -errno;
}

/* Calls fn on the path of each regular file in dir. */
static void for_each_file(const char *dir, void (*fn)(const char *path, void *arg), void *arg)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' &&
		    (size_t)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) < sizeof(path))
			fn(path, arg);
	closedir(d);
}

static void remove_file(const char *path, void *arg)
{
	(void)arg;
	unlink(path);
}

void reference_cache_remove(const char *dir)
{
	if (!dir)
		return;
	for_each_file(dir, remove_file, NULL);
	rmdir(dir);
}

int reference_cache_sweep(void)
{
	const char *parent = cache_parent();
	char path[PATH_MAX];
	struct dirent *e;
	int removed = 0;
	DIR *d = opendir(parent);
	long pid;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		/* kill(pid, 0) fails with ESRCH only when no such process exists */
		if (sscanf(e->d_name, "attnbench-ref-%ld-", &pid) == 1 && pid > 0 &&
		    kill((pid_t)pid, 0) && errno == ESRCH &&
		    (size_t)snprintf(path, sizeof(path), "%s/%s", parent, e->d_name) <
		    sizeof(path)) {
			reference_cache_remove(path);
			removed++;
		}
	closedir(d);
	return removed;
}

struct oldest {
	char path[PATH_MAX];
	struct timespec mtime;
	int count;
};

static void note_oldest(const char *path, void *arg)
{
	struct oldest *o = arg;
	struct stat st;

	if (stat(path, &st))
		return;
	o->count++;
	if (!o->path[0] || st.st_mtim.tv_sec < o->mtime.tv_sec ||
	    (st.st_mtim.tv_sec == o->mtime.tv_sec && st.st_mtim.tv_nsec < o->mtime.tv_nsec)) {
		snprintf(o->path, sizeof(o->path), "%s", path);
		o->mtime = st.st_mtim;
	}
}

/* Deletes the oldest files until fewer than REFERENCE_CACHE_FILES remain. */
static void make_room(const char *dir)
{
	for (;;) {
		struct oldest o = { .count = 0 };

		for_each_file(dir, note_oldest, &o);
		if (o.count < REFERENCE_CACHE_FILES || !o.path[0])
			return;
		unlink(o.path);
	}
}

/* The file of c's input set: every field the generated inputs depend on. */
static int cache_path(const struct cell *c, char *path, size_t len)
{
	int n = snprintf(path, len, "%s/%s-%s-b%d-h%d-kv%d-n%d-m%d-d%d-s%llu.f64",
			 c->cache_dir, c->regime ? c->regime : "none", pattern_name(c->pattern),
			 c->batch, c->heads, c->kv_heads, c->n, c->m, c->d,
			 (unsigned long long)c->seed);

	return n > 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

/* A file: the reference's count doubles, then the properties. */
static bool read_whole(const char *path, double *ref, size_t count, struct regime_stats *st)
{
	FILE *f = fopen(path, "rb");
	bool ok;

	if (!f)
		return false;
	ok = fread(ref, sizeof(*ref), count, f) == count && fread(st, sizeof(*st), 1, f) == 1 &&
	     fgetc(f) == EOF;
	fclose(f);
	return ok;
}

/* Writes under a name of this process, then renames: readers never see half a file. */
static void write_whole(const char *path, const double *ref, size_t count,
			const struct regime_stats *st)
{
	char tmp[PATH_MAX + 32];
	FILE *f;
	bool ok;

	snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
	f = fopen(tmp, "wb");
	if (!f)
		return;
	ok = fwrite(ref, sizeof(*ref), count, f) == count && fwrite(st, sizeof(*st), 1, f) == 1;
	ok = !fclose(f) && ok;
	if (!ok || rename(tmp, path))
		unlink(tmp);
}

int reference_cached(const struct cell *c, const struct attn_problem *p, const float *q,
		     const float *k, const float *v, double *ref, struct regime_stats *st)
{
	size_t count = problem_q_count(p);
	char path[PATH_MAX];
	int ret;

	if (c->cache_dir && !cache_path(c, path, sizeof(path)) &&
	    read_whole(path, ref, count, st))
		return 0;
	reference_attention(p, q, k, v, ref);
	ret = regime_stats_measure(p, q, k, st);
	if (ret)
		return ret;
	if (c->cache_dir && !cache_path(c, path, sizeof(path))) {
		make_room(c->cache_dir);
		write_whole(path, ref, count, st);
	}
	return 0;
}
