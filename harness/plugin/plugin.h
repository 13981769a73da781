/*
 * plugin.h - variants built outside the tree, loaded with --plugin PATH.so.
 *
 * A plugin is a shared object exporting ATTN_PLUGIN_ENTRY (variant.h). Loading it checks
 * everything the harness will rely on before the variant joins the registry, so that a
 * wrong build is a one-line refusal, never a crash later; what it then does at run time
 * is isolated in the cell's child process like any built-in variant. Each loaded plugin
 * keeps its absolute path and the SHA-256 of the very bytes that were loaded, which runs
 * store beside their results.
 */
#ifndef ATTNBENCH_PLUGIN_H
#define ATTNBENCH_PLUGIN_H

#include <stddef.h>

#include "digest.h"
#include "variant.h"

struct plugin {
	const struct variant_ops *variant;
	char path[4096];		/* absolute, symbolic links resolved */
	char sha256[SHA256_HEX_LEN];
};

/*
 * Loads the plugin at path and registers its variant; loading the same file again does
 * nothing. Returns 0, or -EINVAL (not loadable, no entry point, a wrong ABI version, a
 * broken ops table, a name taken), -ENOSPC (too many plugins) or -EIO, with why saying
 * which and what is accepted.
 */
int plugin_load(const char *path, char *why, size_t len);

/* The plugins loaded so far, in order. */
int plugin_count(void);
const struct plugin *plugin_at(int i);
/* The plugin that provides variant v, or NULL for a built-in. */
const struct plugin *plugin_of(const struct variant_ops *v);

/*
 * Checks an ops table as the harness needs it: name and parameter names (letters,
 * digits, '_', '-', a letter first; at most 32 bytes), texts (printable UTF-8, at most
 * 256 bytes), a forward, patterns within the four and extensions within them, known
 * flags, a mask exactly when mask-exact, a block-causal parameter that exists and is an
 * integer, all three decode hooks or none, parameter defaults inside their ranges.
 * Returns 0, or -EINVAL with why naming the first problem.
 */
int plugin_check_ops(const struct variant_ops *v, char *why, size_t len);

#endif
