/*
 * broken.c - plugins that are wrong in one way each, chosen by a macro at build time
 * (tests/meson.build builds one shared object per way): test-plugin loads each and
 * expects its documented refusal, or, for SEGV_FORWARD, a crashed cell.
 */
#include <attnbench/variant.h>

#include <stddef.h>

#ifndef NO_FORWARD
static int broken_forward(const struct attn_problem *p, const float *q, const float *k,
			  const float *v, float *out)
{
	(void)p;
	(void)q;
	(void)k;
	(void)v;
	(void)out;
#ifdef SEGV_FORWARD
	*(volatile float *)NULL = 1;	/* a store to address 0 */
#endif
	return 0;
}
#endif

static const struct variant_ops broken_variant = {
#ifdef WRONG_ABI
	.abi		= ATTN_VARIANT_ABI + 1,
#else
	.abi		= ATTN_VARIANT_ABI,
#endif
#ifdef NAME_CLASH
	.name		= "vanilla",
#else
	.name		= "broken",
#endif
	.family		= "exact",
	.summary	= "a plugin that is wrong on purpose",
	.citation	= "tests/plugins/broken.c",
	.patterns	= PATTERNS_ALL,
#ifndef NO_FORWARD
	.forward	= broken_forward,
#endif
};

#ifdef NO_ENTRY
const struct variant_ops *another_name(void)
#else
const struct variant_ops *attnbench_variant(void)
#endif
{
	return &broken_variant;
}
