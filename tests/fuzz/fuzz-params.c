/*
 * fuzz-params.c - libFuzzer target for `--set variant.param=value` (params.h): the input
 * as one argument, then the overrides applied to every variant, as a run would.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "params.h"

/* Above any variant's count of declared parameters. */
#define MAX_VALUES 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct param_overrides o = { 0 };
	double values[MAX_VALUES];
	char why[512], *text;

	/* an argument is a C string: it ends at the first NUL */
	text = malloc(size + 1);
	if (!text)
		return -1;
	memcpy(text, data, size);
	text[size] = '\0';
	if (!params_parse(&o, text, why, sizeof(why))) {
		assert(o.count >= 0 && o.count <= PARAMS_MAX_OVERRIDES);
		for (int i = 0; i < variant_count(); i++) {
			const struct variant_ops *v = variant_at(i);

			assert(v->n_params <= MAX_VALUES);
			params_apply(&o, v, values);
		}
	}
	free(text);
	return 0;
}
