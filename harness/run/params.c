/*
 * params.c - parsing and range-checking variant hyperparameters.
 */
#include "params.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes "a, b, c" of the declared parameter names into buf. */
static void param_names(const struct variant_ops *v, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; i < v->n_params && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
					 v->params[i].name);
	if (!v->n_params)
		snprintf(buf, len, "none");
}

static int parse_one(struct param_overrides *o, const char *item, char *why, size_t why_len)
{
	char name[128], names[256], *dot, *end;
	const struct variant_ops *v;
	const struct variant_param *decl;
	const char *eq = strchr(item, '=');
	double value;
	int index;

	if (!eq || (size_t)(eq - item) >= sizeof(name)) {
		snprintf(why, why_len, "--set '%s' is not of the form variant.param=value", item);
		return -EINVAL;
	}
	memcpy(name, item, (size_t)(eq - item));
	name[eq - item] = '\0';
	dot = strchr(name, '.');
	if (!dot) {
		snprintf(why, why_len, "--set '%s' is not of the form variant.param=value", item);
		return -EINVAL;
	}
	*dot = '\0';
	v = variant_find(name);
	if (!v) {
		snprintf(why, why_len, "unknown variant '%s' in --set '%s' (see 'attnbench list "
			 "variants')", name, item);
		return -EINVAL;
	}
	index = variant_param_index(v, dot + 1);
	if (index < 0) {
		param_names(v, names, sizeof(names));
		snprintf(why, why_len, "variant '%s' has no parameter '%s' (parameters: %s)",
			 v->name, dot + 1, names);
		return -EINVAL;
	}
	decl = &v->params[index];
	errno = 0;
	value = strtod(eq + 1, &end);
	if (eq[1] == '\0' || *end != '\0' || errno || !isfinite(value)) {
		snprintf(why, why_len, "%s.%s: '%s' is not a number", v->name, decl->name, eq + 1);
		return -EINVAL;
	}
	if ((decl->integer && value != floor(value)) || value < decl->min ||
	    value > decl->max) {
		snprintf(why, why_len, "%s.%s=%s is out of range (accepted: %s%g..%g)", v->name,
			 decl->name, eq + 1, decl->integer ? "whole numbers " : "", decl->min,
			 decl->max);
		return -EINVAL;
	}
	for (int i = 0; i < o->count; i++)
		if (o->items[i].variant == v && o->items[i].index == index) {
			o->items[i].value = value;
			return 0;
		}
	if (o->count == PARAMS_MAX_OVERRIDES) {
		snprintf(why, why_len, "too many --set values (at most %d)", PARAMS_MAX_OVERRIDES);
		return -EINVAL;
	}
	o->items[o->count++] = (struct param_override){ v, index, value };
	return 0;
}

int params_parse(struct param_overrides *o, const char *text, char *why, size_t why_len)
{
	char *copy = strdup(text), *item, *save = NULL;
	int ret = 0;

	if (!copy) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	for (item = strtok_r(copy, ",", &save); item && !ret; item = strtok_r(NULL, ",", &save))
		ret = parse_one(o, item, why, why_len);
	if (!ret && !strpbrk(text, "=")) {
		snprintf(why, why_len, "--set '%s' is not of the form variant.param=value", text);
		ret = -EINVAL;
	}
	free(copy);
	return ret;
}

void params_apply(const struct param_overrides *o, const struct variant_ops *v,
		  double *values)
{
	variant_default_params(v, values);
	for (int i = 0; i < o->count; i++)
		if (o->items[i].variant == v)
			values[o->items[i].index] = o->items[i].value;
}
