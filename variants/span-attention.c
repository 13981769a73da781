/*
 * span-attention.c - exact attention under a declared mask (span-attention.h).
 *
 * Work items are (batch, head, query tile of SPAN_BLOCK_Q rows), shared out dynamically.
 * A tile asks the mask for each row's spans, merges them into the tile's union of key
 * ranges, and walks that union in key tiles of at most SPAN_BLOCK_K keys: scores of the
 * tile's rows against the key tile by one sgemm (K rows are contiguous, so nothing is
 * gathered), every score outside a row's own spans set to -inf, then flash's online
 * softmax (base 2, vectorised exp2) and a second sgemm into the rows' accumulators. Key tiles outside the union
 * are never touched, so the work is the kept pairs plus what neighbouring rows of a tile
 * keep and this row does not. OpenBLAS is held single-threaded inside the region.
 */
#include "span-attention.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kv-cache.h"
#include "memory.h"
#include "threads.h"
#include "vexp.h"

#define SPAN_BLOCK_Q 32
#define SPAN_BLOCK_K 64
#define SPAN_ROOM_START 8	/* spans per row a tile makes room for at first */

/* One thread's workspace. */
struct span_tile {
	int room;		/* spans per row held in spans */
	struct key_span *spans;	/* [SPAN_BLOCK_Q][room] */
	struct key_span *keys;	/* the union: [SPAN_BLOCK_Q * room] */
	int count[SPAN_BLOCK_Q], next[SPAN_BLOCK_Q];
	float m[SPAN_BLOCK_Q], l[SPAN_BLOCK_Q];
	float *s;		/* [SPAN_BLOCK_Q][SPAN_BLOCK_K] scores, then weights */
	float *acc;		/* [SPAN_BLOCK_Q][d] */
};

static void tile_release(struct span_tile *t)
{
	attn_free(t->spans);
	attn_free(t->keys);
	attn_free(t->s);
	attn_free(t->acc);
	memset(t, 0, sizeof(*t));
}

static int tile_room(struct span_tile *t, int room)
{
	attn_free(t->spans);
	attn_free(t->keys);
	t->room = room;
	t->spans = attn_alloc(sizeof(*t->spans) * SPAN_BLOCK_Q * (size_t)room);
	t->keys = attn_alloc(sizeof(*t->keys) * SPAN_BLOCK_Q * (size_t)room);
	return t->spans && t->keys ? 0 : -ENOMEM;
}

static int tile_init(struct span_tile *t, int d)
{
	memset(t, 0, sizeof(*t));
	t->s = attn_alloc(sizeof(float) * SPAN_BLOCK_Q * SPAN_BLOCK_K);
	t->acc = attn_alloc(sizeof(float) * SPAN_BLOCK_Q * (size_t)d);
	if (!t->s || !t->acc || tile_room(t, SPAN_ROOM_START)) {
		tile_release(t);
		return -ENOMEM;
	}
	return 0;
}

static int by_start(const void *a, const void *b)
{
	const struct key_span *x = a, *y = b;

	return (x->lo > y->lo) - (x->lo < y->lo);
}

/*
 * Asks the mask for the spans of rows q0..q0+rows-1 (making room as needed) and merges
 * them into t->keys; returns the number of merged ranges, or -ENOMEM.
 */
static int tile_spans(struct span_tile *t, const struct attn_problem *p, attn_mask_fn mask,
		      int h, int q0, int rows)
{
	int total = 0, merged = 0;

	for (int r = 0; r < rows; r++) {
		int count = mask(p, h, q0 + r, t->spans + (size_t)r * t->room, t->room);

		if (count > t->room) {
			if (tile_room(t, count > 2 * t->room ? count : 2 * t->room))
				return -ENOMEM;
			r = -1;
			total = 0;
			continue;
		}
		t->count[r] = count;
		t->next[r] = 0;
		memcpy(t->keys + total, t->spans + (size_t)r * t->room, sizeof(*t->keys) * count);
		total += count;
	}
	qsort(t->keys, (size_t)total, sizeof(*t->keys), by_start);
	for (int i = 0; i < total; i++) {
		if (merged && t->keys[i].lo <= t->keys[merged - 1].hi) {
			if (t->keys[i].hi > t->keys[merged - 1].hi)
				t->keys[merged - 1].hi = t->keys[i].hi;
		} else {
			t->keys[merged++] = t->keys[i];
		}
	}
	return merged;
}

/* Sets the scores of row r for keys j0..j1-1 that its spans do not hold to -inf. */
static void mask_row(struct span_tile *t, int r, int j0, int j1, float *s)
{
	const struct key_span *sp = t->spans + (size_t)r * t->room;
	int x = t->next[r], pos = j0;

	while (x < t->count[r] && sp[x].hi <= j0)
		x++;
	t->next[r] = x;
	for (; x < t->count[r] && sp[x].lo < j1; x++) {
		int lo = sp[x].lo > j0 ? sp[x].lo : j0;

		for (int j = pos; j < lo; j++)
			s[j - j0] = -INFINITY;
		pos = sp[x].hi < j1 ? sp[x].hi : j1;
	}
	for (int j = pos; j < j1; j++)
		s[j - j0] = -INFINITY;
}

/*
 * One key tile j0..j0+cols-1 for the tile's rows: scores, mask, online softmax, P V.
 * Scores are in base 2 (scaled by log2(e)/sqrt(d)), so one vectorised exp2 per score.
 */
static void tile_keys(struct span_tile *t, const struct attn_problem *p, const float *q,
		      const float *k, const float *v, int rows, int j0, int cols)
{
	float scale = (float)(M_LOG2E / sqrt((double)p->d));
	int d = p->d;

	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, d, scale, q, d,
		    k + (size_t)j0 * d, d, 0.0f, t->s, SPAN_BLOCK_K);
	for (int r = 0; r < rows; r++) {
		float *s = t->s + (size_t)r * SPAN_BLOCK_K, *acc = t->acc + (size_t)r * d;
		float max, m, alpha;

		mask_row(t, r, j0, j0 + cols, s);
		max = row_max(s, cols);
		if (max == -INFINITY) {
			/* nothing of this tile for the row: zero weights, accumulator as it is */
			memset(s, 0, sizeof(float) * cols);
			continue;
		}
		m = fmaxf(t->m[r], max);
		alpha = exp2f(t->m[r] - m);
		t->l[r] = t->l[r] * alpha + exp2_shifted_sum(s, cols, m);
		t->m[r] = m;
		if (alpha != 1.0f)
			for (int c = 0; c < d; c++)
				acc[c] *= alpha;
	}
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, cols, 1.0f, t->s,
		    SPAN_BLOCK_K, v + (size_t)j0 * d, d, 1.0f, t->acc, d);
}

/* Rows q0..q0+rows-1 of slice (b, h). */
static int run_tile(struct span_tile *t, const struct attn_problem *p, attn_mask_fn mask,
		    const float *q, const float *k, const float *v, float *out, int b, int h,
		    int q0, int rows)
{
	size_t qo = problem_q_offset(p, b, h) + (size_t)q0 * p->d;
	size_t kvo = problem_kv_offset(p, b, h);
	int ranges = tile_spans(t, p, mask, h, q0, rows), d = p->d;

	if (ranges < 0)
		return ranges;
	for (int r = 0; r < rows; r++) {
		t->m[r] = -INFINITY;
		t->l[r] = 0;
	}
	memset(t->acc, 0, sizeof(float) * rows * d);
	for (int x = 0; x < ranges; x++)
		for (int j0 = t->keys[x].lo; j0 < t->keys[x].hi; j0 += SPAN_BLOCK_K) {
			int cols = t->keys[x].hi - j0 < SPAN_BLOCK_K ? t->keys[x].hi - j0 :
								       SPAN_BLOCK_K;

			tile_keys(t, p, q + qo, k + kvo, v + kvo, rows, j0, cols);
		}
	for (int r = 0; r < rows; r++) {
		float inv = t->l[r] > 0 ? 1.0f / t->l[r] : 0.0f;

		for (int c = 0; c < d; c++)
			out[qo + (size_t)r * d + c] = t->acc[(size_t)r * d + c] * inv;
	}
	return 0;
}

int span_attention_forward(const struct attn_problem *p, attn_mask_fn mask, const float *q,
			   const float *k, const float *v, float *out)
{
	long tiles = (p->n + SPAN_BLOCK_Q - 1) / SPAN_BLOCK_Q;
	long items = (long)p->batch * p->heads * tiles;
	int failed = 0, saved = blas_serial_begin();

	#pragma omp parallel reduction(|:failed)
	{
		struct span_tile t;

		if (tile_init(&t, p->d))
			failed = 1;
		#pragma omp for schedule(dynamic, 1)
		for (long w = 0; w < items; w++) {
			long slice = w / tiles;
			int q0 = (int)(w % tiles) * SPAN_BLOCK_Q;
			int rows = p->n - q0 < SPAN_BLOCK_Q ? p->n - q0 : SPAN_BLOCK_Q;

			if (!failed && run_tile(&t, p, mask, q, k, v, out, (int)(slice / p->heads),
						(int)(slice % p->heads), q0, rows))
				failed = 1;
		}
		tile_release(&t);
	}
	blas_serial_end(saved);
	return failed ? -ENOMEM : 0;
}

double span_attention_pairs(const struct attn_problem *p, attn_mask_fn mask)
{
	struct key_span some[64];
	double pairs = 0;

	for (int h = 0; h < p->heads; h++)
		for (int i = 0; i < p->n; i++) {
			int count = mask(p, h, i, some, 64);

			if (count > 64) {
				struct key_span *all = malloc(sizeof(*all) * (size_t)count);

				if (!all)
					return NAN;
				mask(p, h, i, all, count);
				for (int x = 0; x < count; x++)
					pairs += all[x].hi - all[x].lo;
				free(all);
				continue;
			}
			for (int x = 0; x < count; x++)
				pairs += some[x].hi - some[x].lo;
		}
	return pairs;
}

double span_attention_flops(const struct attn_problem *p, attn_mask_fn mask)
{
	return 4.0 * p->batch * p->d * span_attention_pairs(p, mask);
}

/* Incremental decoding: every position cached; a step walks row t's spans per head. */
struct span_decode {
	struct attn_problem p;	/* n = m = capacity */
	double params[VARIANT_MAX_PARAMS];	/* p.params points here */
	attn_mask_fn mask;
	int len;		/* positions fed so far */
	int threads;
	int room;		/* spans held per head */
	struct key_span *spans;	/* [heads][room]: row t's spans of each head */
	int *count;		/* [heads] */
	float *s;		/* [threads][capacity] weights */
	struct kv_cache cache;
};

void span_decode_free(void *state)
{
	struct span_decode *st = state;

	if (!st)
		return;
	attn_free(st->spans);
	attn_free(st->count);
	attn_free(st->s);
	kv_cache_release(&st->cache);
	attn_free(st);
}

int span_decode_init(const struct attn_problem *p, attn_mask_fn mask, int n_params,
		     void **state)
{
	struct span_decode *st;
	int ret = decode_check_problem(p);

	*state = NULL;
	if (!ret && (n_params < 0 || n_params > VARIANT_MAX_PARAMS))
		ret = -EINVAL;
	if (ret)
		return ret;
	st = attn_calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->p = decode_problem(p);
	if (p->params)
		memcpy(st->params, p->params, sizeof(double) * n_params);
	st->p.params = p->params ? st->params : NULL;
	st->mask = mask;
	st->threads = max_threads();
	st->room = SPAN_ROOM_START;
	st->spans = attn_alloc(sizeof(*st->spans) * (size_t)p->heads * st->room);
	st->count = attn_alloc(sizeof(int) * (size_t)p->heads);
	st->s = attn_alloc(sizeof(float) * (size_t)st->threads * p->n);
	ret = st->spans && st->count && st->s ? kv_cache_init(&st->cache, p, p->n) : -ENOMEM;
	if (ret) {
		span_decode_free(st);
		return ret;
	}
	*state = st;
	return 0;
}

/* Row t of one (batch, head) slice over its spans, in the cache of its KV head. */
static void decode_row(const struct span_decode *st, const float *q, const float *k,
		       const float *v, const struct key_span *spans, int count, float *w,
		       float *out)
{
	float scale = 1.0f / sqrtf((float)st->p.d), max = -INFINITY, sum = 0;
	int d = st->p.d, at = 0;

	for (int c = 0; c < d; c++)
		out[c] = 0;
	for (int x = 0; x < count; x++)
		for (int j = spans[x].lo; j < spans[x].hi; j++) {
			w[at] = scale * dot(q, k + (size_t)j * d, d);
			max = fmaxf(max, w[at++]);
		}
	if (!at)
		return;
	at = 0;
	for (int x = 0; x < count; x++)
		for (int j = spans[x].lo; j < spans[x].hi; j++) {
			float e = expf(w[at++] - max);
			const float *vj = v + (size_t)j * d;

			sum += e;
			for (int c = 0; c < d; c++)
				out[c] += e * vj[c];
		}
	for (int c = 0; c < d; c++)
		out[c] /= sum;
}

int span_decode_prefill(void *state, const float *k, const float *v, int rows, int len)
{
	struct span_decode *st = state;

	return kv_cache_prefill(&st->cache, &st->len, k, v, rows, len);
}

int span_decode_step(void *state, const float *q, const float *k, const float *v, float *out)
{
	struct span_decode *st = state;
	const struct attn_problem *p = &st->p;
	int t = st->len, slices = p->batch * p->heads, d = p->d;

	if (t >= p->m)
		return -ENOSPC;
	kv_cache_put(&st->cache, t, k, v);
	st->len++;
	/* each head's spans of row t, with room made first: the loop below only reads them */
	for (int h = 0; h < p->heads; h++) {
		int count = st->mask(p, h, t, st->spans + (size_t)h * st->room, st->room);

		if (count > st->room) {
			struct key_span *more = attn_alloc(sizeof(*more) * (size_t)p->heads * count);

			if (!more)
				return -ENOMEM;
			attn_free(st->spans);
			st->spans = more;
			st->room = count;
			h = -1;
			continue;
		}
		st->count[h] = count;
	}

	#pragma omp parallel for num_threads(st->threads) schedule(static) \
		if ((double)slices * (t + 1) * d >= 32768)
	for (int i = 0; i < slices; i++) {
		int b = i / p->heads, h = i % p->heads, kvh = h / (p->heads / p->kv_heads);
		size_t kvo = kv_cache_slice(&st->cache, b * p->kv_heads + kvh);

		decode_row(st, q + (size_t)i * d, st->cache.k + kvo, st->cache.v + kvo,
			   st->spans + (size_t)h * st->room, st->count[h],
			   st->s + (size_t)thread_id() * p->n, out + (size_t)i * d);
	}
	return 0;
}
