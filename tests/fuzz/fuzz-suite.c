/*
 * fuzz-suite.c - libFuzzer target for suite CSV (suite.h): any bytes as a suite file,
 * through the header, the row fields and every list parser they use.
 */
#include <assert.h>
#include <stdint.h>

#include "suite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* static: a suite is tens of kilobytes */
	static struct suite s;
	char why[512];

	if (!suite_parse((const char *)data, size, "fuzz", &s, why, sizeof(why))) {
		assert(s.n_rows >= 0 && s.n_rows <= SUITE_MAX_ROWS);
		for (int i = 0; i < s.n_rows; i++)
			assert(s.rows[i].task && s.rows[i].n_variants <= SUITE_MAX_LIST &&
			       s.rows[i].n_lengths <= SUITE_MAX_LIST);
	}
	return 0;
}
