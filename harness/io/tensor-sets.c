/*
 * tensor-sets.c - a user's own Q/K/V from .npy files (see the header).
 */
#include "tensor-sets.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "why.h"

const char *const tensor_names[3] = { "q", "k", "v" };

int tensor_dims(const struct npy_array *a, const char *what, int64_t dims[4], char *why,
		size_t len)
{
	int pad = 4 - a->ndim;

	if (a->ndim < 2 || a->ndim > 4)
		return why_fail(-EINVAL, why, len, "%s has %d dimensions (accepted: [B,H,N,d], "
				"[H,N,d] or [N,d])", what, a->ndim);
	for (int i = 0; i < 4; i++) {
		dims[i] = i < pad ? 1 : a->shape[i - pad];
		if (dims[i] < 1 || dims[i] > (1 << 24))
			return why_fail(-EINVAL, why, len, "%s has an empty or huge dimension "
					"(%lld; accepted 1..16777216)", what, (long long)dims[i]);
	}
	return 0;
}

int tensor_shapes_check(const int64_t q[4], const int64_t k[4], const int64_t v[4],
			char *why, size_t len)
{
	if (memcmp(k, v, 4 * sizeof(*k)))
		return why_fail(-EINVAL, why, len, "K and V shapes differ (they must both be "
				"[B,Hkv,M,d])");
	if (q[0] != k[0])
		return why_fail(-EINVAL, why, len, "batch differs: Q has %lld, K has %lld",
				(long long)q[0], (long long)k[0]);
	if (q[3] != k[3])
		return why_fail(-EINVAL, why, len, "head dimension differs: Q has d = %lld, K "
				"has %lld", (long long)q[3], (long long)k[3]);
	if (q[1] % k[1])
		return why_fail(-EINVAL, why, len, "K/V heads (%lld) must divide Q heads (%lld)",
				(long long)k[1], (long long)q[1]);
	return 0;
}

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);

	return n >= t && !strcmp(s + n - t, tail);
}

/* The set's name from its Q file's name: "layer3_q.npy" -> "layer3", "q.npy" -> "inputs". */
static int set_name(const char *q_path, char *name, char *why, size_t len)
{
	const char *base = strrchr(q_path, '/') ? strrchr(q_path, '/') + 1 : q_path;
	size_t n = strlen(base);

	n -= ends_with(base, "q.npy") ? 5 : ends_with(base, ".npy") ? 4 : 0;
	while (n && strchr("_-.", base[n - 1]))
		n--;
	if (n > TENSOR_SET_NAME_MAX)
		return why_fail(-EINVAL, why, len, "'%s' makes a set name longer than %d bytes",
				q_path, TENSOR_SET_NAME_MAX);
	for (size_t i = 0; i < n; i++)
		if (!((base[i] >= 'a' && base[i] <= 'z') || (base[i] >= 'A' && base[i] <= 'Z') ||
		      (base[i] >= '0' && base[i] <= '9') || strchr("_-.", base[i])))
			return why_fail(-EINVAL, why, len, "'%s': a set is named after its Q "
					"file, whose name may hold only letters, digits, '_', "
					"'-' and '.'", q_path);
	snprintf(name, TENSOR_SET_NAME_MAX + 1, "%.*s", (int)n, n ? base : "inputs");
	return 0;
}

/* Reads the three files of f (paths set) and checks their shapes. */
static int load_files(struct tensor_files *f, char *why, size_t len)
{
	int64_t dims[3][4];
	char what[4200], reason[512];
	int ret;

	for (int t = 0; t < 3; t++) {
		snprintf(what, sizeof(what), "%s '%s'", tensor_names[t], f->paths[t]);
		ret = npy_read(f->paths[t], &f->arrays[t], reason, sizeof(reason));
		if (ret == -ENOMEM)
			return why_fail(ret, why, len, "out of memory reading %s", what);
		if (ret)
			return why_fail(-EINVAL, why, len, "cannot read %s: %s", what, reason);
		if (!f->arrays[t].sha256[0])
			return why_fail(-EINVAL, why, len, "%s is not a regular file (a run "
					"stores the SHA-256 of the files it read)", what);
		ret = tensor_dims(&f->arrays[t], what, dims[t], why, len);
		if (ret)
			return ret;
	}
	ret = tensor_shapes_check(dims[0], dims[1], dims[2], reason, sizeof(reason));
	if (ret)
		return why_fail(ret, why, len, "set '%s': %s", f->name, reason);
	f->batch = (int)dims[0][0];
	f->heads = (int)dims[0][1];
	f->kv_heads = (int)dims[1][1];
	f->n = (int)dims[0][2];
	f->m = (int)dims[1][2];
	f->d = (int)dims[0][3];
	snprintf(f->regime, sizeof(f->regime), "npy:%s", f->name);
	f->set = (struct tensor_set){
		.name = f->name, .q = f->arrays[0].data, .k = f->arrays[1].data,
		.v = f->arrays[2].data, .batch = f->batch, .heads = f->heads,
		.kv_heads = f->kv_heads, .n = f->n, .m = f->m, .d = f->d,
	};
	return 0;
}

static int add_set(struct tensor_sets *sets, const char *q, const char *k, const char *v,
		   char *why, size_t len)
{
	struct tensor_files *f = &sets->files[sets->count];
	const char *paths[3] = { q, k, v };
	int ret;

	if (sets->count == TENSOR_SETS_MAX)
		return why_fail(-EINVAL, why, len, "more than %d sets of tensors",
				TENSOR_SETS_MAX);
	for (int t = 0; t < 3; t++)
		if ((size_t)snprintf(f->paths[t], sizeof(f->paths[t]), "%s", paths[t]) >=
		    sizeof(f->paths[t]))
			return why_fail(-EINVAL, why, len, "a path longer than %zu bytes",
					sizeof(f->paths[t]) - 1);
	ret = set_name(q, f->name, why, len);
	if (ret)
		return ret;
	for (int i = 0; i < sets->count; i++)
		if (!strcmp(sets->files[i].name, f->name))
			return why_fail(-EINVAL, why, len, "two sets are named '%s' (after their "
					"Q files)", f->name);
	sets->count++;
	return load_files(f, why, len);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One set per NAMEq.npy of the folder with NAMEk.npy and NAMEv.npy beside it, by name. */
static int load_folder(const char *dir, struct tensor_sets *sets, char *why, size_t len)
{
	char *qs[TENSOR_SETS_MAX + 1], q[4096], k[4096], v[4096];
	struct dirent *e;
	int n = 0, ret = 0;
	DIR *d = opendir(dir);

	if (!d)
		return why_fail(-EINVAL, why, len, "cannot open folder '%s': %s", dir,
				strerror(errno));
	while ((e = readdir(d)) && n <= TENSOR_SETS_MAX)
		if (ends_with(e->d_name, "q.npy") && !(qs[n++] = strdup(e->d_name)))
			ret = -ENOMEM;
	closedir(d);
	if (!ret && n == 0)
		ret = why_fail(-EINVAL, why, len, "folder '%s' holds no NAMEq.npy (with NAMEk.npy "
			       "and NAMEv.npy beside it)", dir);
	if (!ret && n > TENSOR_SETS_MAX)
		ret = why_fail(-EINVAL, why, len, "folder '%s' holds more than %d sets", dir,
			       TENSOR_SETS_MAX);
	if (!ret)
		qsort(qs, (size_t)n, sizeof(*qs), by_name);
	for (int i = 0; i < n && !ret; i++) {
		size_t stem = strlen(qs[i]) - 5;

		snprintf(q, sizeof(q), "%s/%s", dir, qs[i]);
		snprintf(k, sizeof(k), "%s/%.*sk.npy", dir, (int)stem, qs[i]);
		snprintf(v, sizeof(v), "%s/%.*sv.npy", dir, (int)stem, qs[i]);
		ret = add_set(sets, q, k, v, why, len);
	}
	for (int i = 0; i < n; i++)
		free(qs[i]);
	return ret == -ENOMEM ? why_fail(ret, why, len, "out of memory") : ret;
}

int tensor_sets_load(const char *spec, struct tensor_sets *sets, char *why, size_t len)
{
	const char *c1 = strchr(spec, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
	char q[4096], k[4096], v[4096];
	struct stat st;

	memset(sets, 0, sizeof(*sets));
	if (!c1) {
		if (stat(spec, &st) || !S_ISDIR(st.st_mode))
			return why_fail(-EINVAL, why, len, "--inputs '%s' is neither "
					"Q.npy,K.npy,V.npy nor a folder", spec);
		return load_folder(spec, sets, why, len);
	}
	if (!c2 || strchr(c2 + 1, ',') || c1 == spec || c2 == c1 + 1 || !c2[1] ||
	    (size_t)(c1 - spec) >= sizeof(q) || (size_t)(c2 - c1) > sizeof(k) ||
	    strlen(c2 + 1) >= sizeof(v))
		return why_fail(-EINVAL, why, len, "--inputs '%s' is not three files "
				"Q.npy,K.npy,V.npy (or a folder)", spec);
	snprintf(q, sizeof(q), "%.*s", (int)(c1 - spec), spec);
	snprintf(k, sizeof(k), "%.*s", (int)(c2 - c1 - 1), c1 + 1);
	snprintf(v, sizeof(v), "%s", c2 + 1);
	return add_set(sets, q, k, v, why, len);
}

void tensor_sets_release(struct tensor_sets *sets)
{
	for (int i = 0; i < sets->count; i++)
		for (int t = 0; t < 3; t++)
			npy_release(&sets->files[i].arrays[t]);
	sets->count = 0;
}
