/*
 * kv-cache.h - the key/value cache incremental decoders keep: a number of slots per KV
 * head, filled in order (exact attention) or as a ring (windows).
 */
#ifndef ATTNBENCH_KV_CACHE_H
#define ATTNBENCH_KV_CACHE_H

#include <stddef.h>

#include "variant.h"

struct kv_cache {
	int slices;		/* batch * kv_heads */
	int slots;		/* positions held per slice */
	int d;
	float *k, *v;		/* [slices][slots][d], from attn_alloc() */
};

/*
 * Checks that p is a cs problem a decoder can take and allocates `slots` zeroed
 * positions per KV head. Returns 0, -ENOTSUP for another pattern, -EINVAL for a bad
 * shape, -ENOMEM.
 */
int kv_cache_init(struct kv_cache *c, const struct attn_problem *p, int slots);
/* Stores one position's rows, k and v of [slices][d], in slot `slot` of every slice. */
void kv_cache_put(struct kv_cache *c, int slot, const float *k, const float *v);
/*
 * A decoder's decode_prefill() over this cache and its count of positions fed, *fed:
 * stores positions 0..len-1 of k and v ([slices][rows][d]) in slots 0..len-1 of every
 * slice, as len kv_cache_put() calls in order would, and sets *fed to len. -EINVAL if
 * *fed is not 0 or rows < len, -ENOSPC if len exceeds the slots.
 */
int kv_cache_prefill(struct kv_cache *c, int *fed, const float *k, const float *v, int rows,
		     int len);
/* Frees the cache; safe on a zeroed or released one. */
void kv_cache_release(struct kv_cache *c);

/* Offset of a slice (batch * kv_heads + kv_head) in k and v. */
static inline size_t kv_cache_slice(const struct kv_cache *c, int slice)
{
	return (size_t)slice * c->slots * c->d;
}

#endif
