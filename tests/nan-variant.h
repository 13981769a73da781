/*
 * nan-variant.h - a "variant" for task tests that is exact attention (vanilla's forward
 * and decoder) but for one NaN, at the query head, row and column its parameters name
 * (batch 0): in the forward output, or with decode_only set, only in the decode step
 * output of that row (position). Each task must report such a cell as nan, wherever the
 * NaN is.
 */
#ifndef ATTNBENCH_NAN_VARIANT_H
#define ATTNBENCH_NAN_VARIANT_H

#include <errno.h>
#include <math.h>
#include <string.h>

#include "memory.h"
#include "variant.h"

/* The nan-at parameters, in declared order. */
enum { NAN_AT_HEAD, NAN_AT_ROW, NAN_AT_COLUMN, NAN_AT_DECODE_ONLY, NAN_AT_PARAMS };

static const struct variant_param nan_at_params[NAN_AT_PARAMS] = {
	{ "head", 0, 0, 1024, true, "query head of the NaN (batch 0)" },
	{ "row", 0, 0, 1 << 20, true, "output row (position) of the NaN" },
	{ "column", 0, 0, 1024, true, "column of the NaN" },
	{ "decode_only", 0, 0, 1, true, "1: forward is exact, a decode step writes the NaN" },
};

static int nan_at_forward(const struct attn_problem *p, const float *q, const float *k,
			  const float *v, float *out)
{
	const double *at = p->params;
	int ret = variant_find("vanilla")->forward(p, q, k, v, out);

	if (!ret && !at[NAN_AT_DECODE_ONLY])
		out[problem_q_offset(p, 0, (int)at[NAN_AT_HEAD]) +
		    (size_t)at[NAN_AT_ROW] * p->d + (size_t)at[NAN_AT_COLUMN]] = NAN;
	return ret;
}

/* Vanilla's decoder, the position it is at, and where the NaN goes. */
struct nan_at_decode {
	void *inner;
	int t, d;
	double at[NAN_AT_PARAMS];
};

static void nan_at_decode_free(void *state)
{
	struct nan_at_decode *st = state;

	if (!st)
		return;
	variant_find("vanilla")->decode_free(st->inner);
	attn_free(st);
}

static int nan_at_decode_init(const struct attn_problem *p, void **state)
{
	struct nan_at_decode *st = attn_calloc(1, sizeof(*st));
	int ret;

	*state = NULL;
	if (!st)
		return -ENOMEM;
	st->d = p->d;
	memcpy(st->at, p->params, sizeof(st->at));
	ret = variant_find("vanilla")->decode_init(p, &st->inner);
	if (ret) {
		attn_free(st);
		return ret;
	}
	*state = st;
	return 0;
}

/* out is [batch][heads][d]: the NaN goes in (batch 0, head) at position row. */
static int nan_at_decode_step(void *state, const float *q, const float *k, const float *v,
			      float *out)
{
	struct nan_at_decode *st = state;
	int ret = variant_find("vanilla")->decode_step(st->inner, q, k, v, out);

	if (!ret && st->t++ == (int)st->at[NAN_AT_ROW])
		out[(size_t)st->at[NAN_AT_HEAD] * st->d + (size_t)st->at[NAN_AT_COLUMN]] = NAN;
	return ret;
}

static const struct variant_ops nan_at_variant = {
	.name = "nan-at",
	.family = "test",
	.summary = "exact attention but for one NaN where its parameters say",
	.citation = "none",
	.patterns = PATTERNS_ALL,
	.params = nan_at_params,
	.n_params = NAN_AT_PARAMS,
	.forward = nan_at_forward,
	.decode_init = nan_at_decode_init,
	.decode_step = nan_at_decode_step,
	.decode_free = nan_at_decode_free,
};

#endif
