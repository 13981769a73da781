/*
 * params.h - `--set variant.param=value`: parsed, checked against what the variant
 * declares, and applied to the cells of that variant.
 */
#ifndef ATTNBENCH_PARAMS_H
#define ATTNBENCH_PARAMS_H

#include <stddef.h>

#include "variant.h"

#define PARAMS_MAX_OVERRIDES 64

struct param_override {
	const struct variant_ops *variant;
	int index;		/* into variant->params */
	double value;
};

struct param_overrides {
	struct param_override items[PARAMS_MAX_OVERRIDES];
	int count;
};

/*
 * Parses one --set argument: "variant.param=value", several separated by commas.
 * Later settings of the same parameter win. Returns 0, or -EINVAL with a one-line
 * reason in why (unknown variant or parameter, not a number, not whole, out of range).
 */
int params_parse(struct param_overrides *o, const char *text, char *why, size_t why_len);

/* Fills values with v's defaults, then the overrides that name v. */
void params_apply(const struct param_overrides *o, const struct variant_ops *v,
		  double *values);

#endif
