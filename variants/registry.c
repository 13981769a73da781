/*
 * registry.c - the one list of variants, their parameters, the pattern names, and the
 * bytes a forward moves when a variant does not say (attn_compulsory_bytes()).
 *
 * Adding a variant: declare its ops table below and add it to variants[].
 */
#include "variant.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "common.h"

extern const struct variant_ops vanilla_variant;
extern const struct variant_ops flash_variant;
extern const struct variant_ops local_variant;
extern const struct variant_ops linear_variant;
extern const struct variant_ops efficient_variant;
extern const struct variant_ops performer_variant;
extern const struct variant_ops cosformer_variant;
extern const struct variant_ops probsparse_variant;
extern const struct variant_ops nystrom_variant;
extern const struct variant_ops lara_variant;
extern const struct variant_ops abc_variant;
extern const struct variant_ops longshort_variant;
extern const struct variant_ops s4d_variant;
extern const struct variant_ops sink_variant;
extern const struct variant_ops topk_variant;
extern const struct variant_ops chunk_variant;
extern const struct variant_ops landmark_variant;
extern const struct variant_ops routing_variant;
extern const struct variant_ops power_variant;
extern const struct variant_ops radial_variant;
extern const struct variant_ops hip_variant;
extern const struct variant_ops sea_variant;
extern const struct variant_ops cca_variant;
extern const struct variant_ops s2attn_variant;
extern const struct variant_ops based_variant;
extern const struct variant_ops lightning_variant;
extern const struct variant_ops hedgehog_variant;
extern const struct variant_ops agent_variant;
extern const struct variant_ops softplus_variant;
extern const struct variant_ops sparsemax_variant;

/* Exact first, then CAB's efficient attentions in the catalogue's order (a variant keeps its
 * place, and so its line style in figures), then the newer ones. */
static const struct variant_ops *const variants[] = {
	&vanilla_variant,
	&flash_variant,
	&local_variant,
	&linear_variant,
	&efficient_variant,
	&performer_variant,
	&cosformer_variant,
	&probsparse_variant,
	&nystrom_variant,
	&lara_variant,
	&abc_variant,
	&longshort_variant,
	&s4d_variant,
	/* the sparse and retrieval attentions of the recent papers, in the catalogue's order */
	&sink_variant,
	&topk_variant,
	&chunk_variant,
	&landmark_variant,
	&routing_variant,
	&power_variant,
	&radial_variant,
	&hip_variant,
	&sea_variant,
	&cca_variant,
	&s2attn_variant,
	/* the kernel, hybrid and normalisation attentions, in the catalogue's order */
	&based_variant,
	&lightning_variant,
	&hedgehog_variant,
	&agent_variant,
	&softplus_variant,
	&sparsemax_variant,
};

static const char *const pattern_names[ATTN_PATTERN_COUNT] = {
	[ATTN_NS] = "ns",
	[ATTN_CS] = "cs",
	[ATTN_NC] = "nc",
	[ATTN_CC] = "cc",
};

const char *pattern_name(enum attn_pattern p)
{
	if ((unsigned int)p >= ATTN_PATTERN_COUNT)
		return "?";
	return pattern_names[p];
}

int pattern_parse(const char *name)
{
	if (!name)
		return -1;
	for (int p = 0; p < ATTN_PATTERN_COUNT; p++)
		if (!strcmp(pattern_names[p], name))
			return p;
	return -1;
}

bool pattern_is_self(enum attn_pattern p)
{
	return p == ATTN_NS || p == ATTN_CS;
}

bool pattern_is_causal(enum attn_pattern p)
{
	return p == ATTN_CS || p == ATTN_CC;
}

#define BUILTIN_COUNT ((int)(sizeof(variants) / sizeof(variants[0])))

/* Plugins, in the order they were loaded; set up before any cell runs, never removed. */
static const struct variant_ops *registered[VARIANT_MAX_REGISTERED];
static int n_registered;

int variant_count(void)
{
	return BUILTIN_COUNT + n_registered;
}

const struct variant_ops *variant_at(int i)
{
	if (i < 0 || i >= variant_count())
		return NULL;
	return i < BUILTIN_COUNT ? variants[i] : registered[i - BUILTIN_COUNT];
}

const struct variant_ops *variant_find(const char *name)
{
	if (!name)
		return NULL;
	for (int i = 0; i < variant_count(); i++)
		if (!strcmp(variant_at(i)->name, name))
			return variant_at(i);
	return NULL;
}

int variant_register(const struct variant_ops *v)
{
	if (variant_find(v->name))
		return -EEXIST;
	if (n_registered == VARIANT_MAX_REGISTERED)
		return -ENOSPC;
	registered[n_registered++] = v;
	return 0;
}

bool variant_is_builtin(const struct variant_ops *v)
{
	for (int i = 0; i < BUILTIN_COUNT; i++)
		if (variants[i] == v)
			return true;
	return false;
}

double attn_compulsory_bytes(const struct attn_problem *p)
{
	double q_o = 2.0 * p->batch * p->heads * p->n * p->d;
	double k_v = 2.0 * p->batch * p->kv_heads * p->m * p->d;

	return sizeof(float) * (q_o + k_v);
}

double variant_bytes(const struct variant_ops *v, const struct attn_problem *p)
{
	return v->bytes ? v->bytes(p) : attn_compulsory_bytes(p);
}

int variant_param_index(const struct variant_ops *v, const char *param)
{
	if (!param)
		return -1;
	for (int i = 0; i < v->n_params; i++)
		if (!strcmp(v->params[i].name, param))
			return i;
	return -1;
}

void variant_default_params(const struct variant_ops *v, double *values)
{
	for (int i = 0; i < v->n_params; i++)
		values[i] = v->params[i].def;
}

int variant_strict_causal_params(const struct variant_ops *v, double *values)
{
	int i;

	if (!(v->flags & VARIANT_BLOCK_CAUSAL))
		return -1;
	i = variant_param_index(v, v->strict_causal_param);
	if (i >= 0)
		values[i] = 1;
	return i;
}

/* A value given for a declared parameter must lie in its range (and be whole if asked). */
static bool param_ok(const struct variant_param *decl, double value)
{
	if (isnan(value) || value < decl->min || value > decl->max)
		return false;
	return !decl->integer || value == floor(value);
}

int variant_check_problem(const struct variant_ops *v, const struct attn_problem *p)
{
	if (!problem_sizes_ok(p) || p->m <= 0)
		return -EINVAL;
	if ((unsigned int)p->pattern >= ATTN_PATTERN_COUNT)
		return -EINVAL;
	if (pattern_is_self(p->pattern) && p->n != p->m)
		return -EINVAL;
	if (p->params)
		for (int i = 0; i < v->n_params; i++)
			if (!param_ok(&v->params[i], p->params[i]))
				return -EINVAL;
	if (!(v->patterns & PATTERN_BIT(p->pattern)))
		return -ENOTSUP;
	if (v->supports) {
		int ret = v->supports(p);

		if (ret)
			return ret < 0 ? ret : -ENOTSUP;
	}
	return 0;
}
