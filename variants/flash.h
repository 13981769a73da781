/*
 * flash.h - the tile engines of the flash variant (flash.c), exported so that a test can
 * run each one the build has on the same problem and hold them to one another: forward()
 * itself always takes flash_engine_for(d).
 */
#ifndef ATTNBENCH_FLASH_H
#define ATTNBENCH_FLASH_H

#include <stdbool.h>

#include "variant.h"

enum flash_engine {
	FLASH_ENGINE_BLAS,	/* OpenBLAS products and a scalar softmax: any build, any d */
	FLASH_ENGINE_AVX2,	/* built with AVX2 and FMA; d a multiple of 8 */
	FLASH_ENGINE_AVX512,	/* built with AVX-512F; d a multiple of 16 */
};

/* Whether this build has engine e and it handles head dimension d. */
bool flash_engine_handles(enum flash_engine e, int d);
/* The engine forward() uses for head dimension d: the widest that handles it. */
enum flash_engine flash_engine_for(int d);
/* flash's forward() on engine e; -ENOTSUP when e does not handle p->d. */
int flash_forward_on(enum flash_engine e, const struct attn_problem *p, const float *q,
		     const float *k, const float *v, float *out);
/*
 * The same with `group` query tiles walking the keys together on a vector engine (1 to
 * 4; 0 chooses as forward() does; the portable engine always takes 1): the result must
 * not depend on it, bit for bit.
 */
int flash_forward_grouped(enum flash_engine e, int group, const struct attn_problem *p,
			  const float *q, const float *k, const float *v, float *out);

#endif
