/*
 * kv-cache.c - allocation and filling of the decoders' key/value cache.
 */
#include "kv-cache.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "memory.h"

int kv_cache_init(struct kv_cache *c, const struct attn_problem *p, int slots)
{
	size_t count;
	int ret;

	memset(c, 0, sizeof(*c));
	ret = decode_check_problem(p);
	if (ret)
		return ret;
	if (slots < 1)
		return -EINVAL;
	if ((double)p->batch * p->kv_heads * slots * p->d * sizeof(float) > (double)SIZE_MAX)
		return -ENOMEM;
	c->slices = p->batch * p->kv_heads;
	c->slots = slots;
	c->d = p->d;
	count = (size_t)c->slices * slots * p->d;
	c->k = attn_calloc(count, sizeof(float));
	c->v = attn_calloc(count, sizeof(float));
	if (!c->k || !c->v) {
		kv_cache_release(c);
		return -ENOMEM;
	}
	return 0;
}

void kv_cache_put(struct kv_cache *c, int slot, const float *k, const float *v)
{
	for (int i = 0; i < c->slices; i++) {
		size_t at = kv_cache_slice(c, i) + (size_t)slot * c->d;

		memcpy(c->k + at, k + (size_t)i * c->d, sizeof(float) * c->d);
		memcpy(c->v + at, v + (size_t)i * c->d, sizeof(float) * c->d);
	}
}

int kv_cache_prefill(struct kv_cache *c, int *fed, const float *k, const float *v, int rows,
		     int len)
{
	if (*fed || len < 0 || rows < len)
		return -EINVAL;
	if (len > c->slots)
		return -ENOSPC;
	for (int i = 0; i < c->slices; i++) {
		size_t at = kv_cache_slice(c, i), from = (size_t)i * rows * c->d;

		memcpy(c->k + at, k + from, sizeof(float) * len * c->d);
		memcpy(c->v + at, v + from, sizeof(float) * len * c->d);
	}
	*fed = len;
	return 0;
}

void kv_cache_release(struct kv_cache *c)
{
	attn_free(c->k);
	attn_free(c->v);
	c->k = c->v = NULL;
}
