/*
 * plugin.c - loading variants from shared objects (see the header).
 */
#include "plugin.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "digest.h"
#include "why.h"

#define NAME_MAX_BYTES 32
#define TEXT_MAX_BYTES 256

static struct plugin plugins[VARIANT_MAX_REGISTERED];
static int n_plugins;

int plugin_count(void)
{
	return n_plugins;
}

const struct plugin *plugin_at(int i)
{
	return i >= 0 && i < n_plugins ? &plugins[i] : NULL;
}

const struct plugin *plugin_of(const struct variant_ops *v)
{
	for (int i = 0; i < n_plugins; i++)
		if (plugins[i].variant == v)
			return &plugins[i];
	return NULL;
}

/* A name as the command line, --set V.P=X and stored rows take it. */
static bool name_ok(const char *s)
{
	size_t len;

	if (!s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
		return false;
	len = strnlen(s, NAME_MAX_BYTES + 1);
	if (len > NAME_MAX_BYTES)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

/* Printable UTF-8 (no control characters) of at most TEXT_MAX_BYTES. */
static bool text_ok(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t len, i = 0;

	if (!s)
		return false;
	len = strnlen(s, TEXT_MAX_BYTES + 1);
	if (len > TEXT_MAX_BYTES)
		return false;
	while (i < len) {
		int more = u[i] < 0x80 ? 0 : (u[i] & 0xe0) == 0xc0 ? 1 :
			   (u[i] & 0xf0) == 0xe0 ? 2 : (u[i] & 0xf8) == 0xf0 ? 3 : -1;

		if (more < 0 || (more == 0 && (u[i] < 0x20 || u[i] == 0x7f)) ||
		    (more == 1 && u[i] < 0xc2) || (more > 0 && i + more >= len))
			return false;
		for (int c = 1; c <= more; c++)
			if ((u[i + c] & 0xc0) != 0x80)
				return false;
		i += more + 1;
	}
	return true;
}

static int check_params(const struct variant_ops *v, char *why, size_t len)
{
	if (v->n_params < 0 || v->n_params > VARIANT_MAX_PARAMS)
		return why_fail(-EINVAL, why, len, "n_params is %d (0..%d accepted)",
				v->n_params, VARIANT_MAX_PARAMS);
	if (v->n_params && !v->params)
		return why_fail(-EINVAL, why, len, "n_params is %d but params is NULL",
				v->n_params);
	for (int i = 0; i < v->n_params; i++) {
		const struct variant_param *p = &v->params[i];

		if (!name_ok(p->name))
			return why_fail(-EINVAL, why, len, "parameter %d has no valid name "
					"(letters, digits, '_', '-', a letter first, at most %d)",
					i, NAME_MAX_BYTES);
		if (!text_ok(p->help))
			return why_fail(-EINVAL, why, len, "parameter '%s' has no printable "
					"help line of at most %d bytes", p->name,
					TEXT_MAX_BYTES);
		if (!(isfinite(p->min) && isfinite(p->max) && p->min <= p->def &&
		      p->def <= p->max) || (p->integer && p->def != floor(p->def)))
			return why_fail(-EINVAL, why, len, "parameter '%s': its default is "
					"not a finite value within [min, max]%s", p->name,
					p->integer ? " and whole" : "");
		for (int j = 0; j < i; j++)
			if (!strcmp(v->params[j].name, p->name))
				return why_fail(-EINVAL, why, len, "parameter '%s' is declared "
						"twice", p->name);
	}
	return 0;
}

int plugin_check_ops(const struct variant_ops *v, char *why, size_t len)
{
	const unsigned int known = VARIANT_EXACT | VARIANT_MASK_EXACT | VARIANT_BLOCK_CAUSAL;
	int hooks = !!v->decode_init + !!v->decode_step + !!v->decode_free, ret, i;

	if (!name_ok(v->name))
		return why_fail(-EINVAL, why, len, "its name is not valid (letters, digits, "
				"'_', '-', a letter first, at most %d bytes)", NAME_MAX_BYTES);
	if (!text_ok(v->family) || !text_ok(v->summary) || !text_ok(v->citation))
		return why_fail(-EINVAL, why, len, "family, summary and citation must be "
				"printable texts of at most %d bytes", TEXT_MAX_BYTES);
	if (!v->forward)
		return why_fail(-EINVAL, why, len, "it has no forward function");
	if (!v->patterns || v->patterns & ~PATTERNS_ALL)
		return why_fail(-EINVAL, why, len, "its patterns are 0x%x (a non-empty set "
				"of PATTERN_BIT(ns, cs, nc, cc))", v->patterns);
	if (v->extensions & ~v->patterns)
		return why_fail(-EINVAL, why, len, "its extensions are not among its "
				"patterns");
	if (v->flags & ~known)
		return why_fail(-EINVAL, why, len, "unknown flags 0x%x", v->flags & ~known);
	if (!!(v->flags & VARIANT_MASK_EXACT) != !!v->mask)
		return why_fail(-EINVAL, why, len, "a mask is declared exactly when the flag "
				"VARIANT_MASK_EXACT is set");
	if (hooks != 0 && hooks != 3)
		return why_fail(-EINVAL, why, len, "decode_init, decode_step and decode_free "
				"come all three or not at all");
	ret = check_params(v, why, len);
	if (ret)
		return ret;
	if (v->flags & VARIANT_BLOCK_CAUSAL) {
		i = v->strict_causal_param ? variant_param_index(v, v->strict_causal_param) : -1;
		if (i < 0 || !v->params[i].integer || v->params[i].min > 1)
			return why_fail(-EINVAL, why, len, "VARIANT_BLOCK_CAUSAL needs "
					"strict_causal_param to name an integer parameter that "
					"accepts 1");
	}
	return 0;
}

/* dlopen()s the file open as fd, so that what runs is what was hashed. */
static void *open_object(int fd, char *why, size_t len)
{
	char self[64];
	void *handle;

	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	handle = dlopen(self, RTLD_NOW | RTLD_LOCAL);
	if (!handle)
		why_set(why, len, "not a loadable shared object: %s", dlerror());
	return handle;
}

/* The ops table of a loaded object, checked; NULL with why set. */
static const struct variant_ops *entry_ops(void *handle, char *why, size_t len)
{
	const struct variant_ops *(*entry)(void);
	const struct variant_ops *v;

	*(void **)&entry = dlsym(handle, ATTN_PLUGIN_ENTRY);
	if (!entry) {
		why_set(why, len, "it exports no function %s() (see variant.h)",
			ATTN_PLUGIN_ENTRY);
		return NULL;
	}
	v = entry();
	if (!v) {
		why_set(why, len, "%s() returned NULL", ATTN_PLUGIN_ENTRY);
		return NULL;
	}
	if (v->abi != ATTN_VARIANT_ABI) {
		why_set(why, len, "it was built for variant ABI %d; this attnbench has ABI %d "
			"(rebuild it against this attnbench's headers)", v->abi,
			ATTN_VARIANT_ABI);
		return NULL;
	}
	if (plugin_check_ops(v, why, len))
		return NULL;
	return v;
}

int plugin_load(const char *path, char *why, size_t len)
{
	struct plugin *pl = &plugins[n_plugins];
	char detail[512];
	const struct variant_ops *v;
	void *handle;
	int fd, ret;

	if (!realpath(path, pl->path))
		return why_fail(-EINVAL, why, len, "%s", strerror(errno));
	for (int i = 0; i < n_plugins; i++)
		if (!strcmp(plugins[i].path, pl->path))
			return 0;
	if (n_plugins == VARIANT_MAX_REGISTERED)
		return why_fail(-ENOSPC, why, len, "at most %d plugins can be loaded",
				VARIANT_MAX_REGISTERED);
	fd = open(pl->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return why_fail(-EINVAL, why, len, "%s", strerror(errno));
	ret = digest_sha256_fd(fd, pl->sha256);
	if (ret) {
		close(fd);
		return why_fail(-EIO, why, len, "cannot read it: %s", strerror(-ret));
	}
	handle = open_object(fd, why, len);
	close(fd);
	if (!handle)
		return -EINVAL;
	/* a refused object stays mapped: its code may already have run (constructors) */
	v = entry_ops(handle, detail, sizeof(detail));
	if (!v)
		return why_fail(-EINVAL, why, len, "%s", detail);
	ret = variant_register(v);
	if (ret == -EEXIST)
		return why_fail(-EINVAL, why, len, "its variant '%s' has the name of %s",
				v->name, plugin_of(variant_find(v->name)) ?
				"a variant of another plugin" : "a built-in variant");
	if (ret)
		return why_fail(ret, why, len, "at most %d plugins can be loaded",
				VARIANT_MAX_REGISTERED);
	pl->variant = v;
	n_plugins++;
	return 0;
}
