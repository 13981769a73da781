/*
 * flash.c - exact attention without the score matrix: tiles and an online softmax
 * (Dao et al. 2022, FlashAttention; Dao 2023, FlashAttention-2).
 *
 * Work items are (batch, head, query tile), shared out dynamically over OpenMP threads;
 * on the vector engines an item is up to four neighbouring query tiles that walk the key
 * tiles together, so each key tile is read once for all of them. Each query tile keeps a
 * running max m, sum l and the output rows as accumulator while it walks the key tiles,
 * rescaling when m grows, and divides by l at the end. In cs, key tiles
 * wholly above the diagonal are skipped and the mask is applied only on tiles that cross
 * it. Scores are kept in base 2 (Q is scaled by log2(e)/sqrt(d)), so one exp2 per score
 * suffices.
 *
 * Three tile engines compute the same thing (flash.h); forward() takes the widest one the
 * build has (-march=native picks the instruction sets) and the head dimension allows:
 *  - AVX-512 (d a multiple of 16) and AVX2+FMA (d a multiple of 8): hand-blocked kernels
 *    on a transposed score tile (keys x queries, from score-tile.h, which topk shares),
 *    so the softmax runs down columns with a vector of queries and the query tile is
 *    packed once per tile instead of a key tile per key tile. The AVX-512 kernels are the
 *    AVX2 ones with twice the lanes and twice the registers: 12 keys x 32 queries per
 *    score block, 6 rows x 64 columns per output block;
 *  - portable: cblas_sgemm for both products with OpenBLAS held single-threaded, and a
 *    scalar row softmax.
 *
 * Incremental decoding walks the KV cache once per step in blocks of block_k keys with
 * the same online softmax, so no score row of the cache's length exists. When there are
 * fewer (batch, head) slices than threads, each slice's cache is split into runs of
 * blocks that threads walk apart, and their partial results are merged at the end (the
 * split-KV idea of Flash-Decoding, Dao et al. 2023).
 */
#include "variant.h"

#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define FLASH_AVX2 1
#if defined(__AVX512F__)
#define FLASH_AVX512 1
#endif
#endif

#include "common.h"
#include "flash.h"
#include "kv-cache.h"
#include "memory.h"
#include "score-tile.h"
#include "threads.h"
#include "vexp.h"

/*
 * VARIANTS.md suggests 64 x 64. Measured here (Zen 3, 2 threads, B=1 H=8 N=M=4096
 * d=64 ns, 8 alternating runs each): 64/64 averaged 116 GFLOP/s, 96/96 127 and 48/96
 * 130. 96 is a whole number of the kernels' 6-row blocks and 16-column blocks, so no
 * block runs padded; 64 leaves a partial 6-row block in every tile. A 96 x 96 score tile
 * (36 KiB) and the packed 96-query tile (24 KiB at d = 64) sit in the 512 KiB L2 next
 * to the streamed K and V tiles.
 */
#define FLASH_BLOCK_Q_DEFAULT 96
#define FLASH_BLOCK_K_DEFAULT 96

enum flash_param {
	FLASH_BLOCK_Q,
	FLASH_BLOCK_K,
};

static const struct variant_param flash_params[] = {
	[FLASH_BLOCK_Q] = {
		.name		= "block_q",
		.def		= FLASH_BLOCK_Q_DEFAULT,
		.min		= 1,
		.max		= 65536,
		.integer	= true,
		.help		= "query rows per tile (B_r)",
	},
	[FLASH_BLOCK_K] = {
		.name		= "block_k",
		.def		= FLASH_BLOCK_K_DEFAULT,
		.min		= 1,
		.max		= 65536,
		.integer	= true,
		.help		= "keys per tile (B_c)",
	},
};

/* Floats per cache line: every workspace part starts on one. */
#define FLASH_LINE 16
/*
 * Query rows of the AVX2 accumulate kernel's register block (its keys' counterpart is
 * SCORE_TILE_KEYS); query tiles are padded to whole blocks.
 */
#define KERNEL_ROWS 6
/* Output columns of the widest accumulate kernel: two AVX2 vectors, four AVX-512 ones. */
#define ACC_COLS 16
#define ACC_COLS_512 64

/* One query tile's view of its slice and its thread's workspace. */
struct flash_tile {
	enum flash_engine engine;
	const float *q, *k, *v;	/* the (batch, head) slice */
	float *out;
	int m, d;
	bool causal;
	float qscale;		/* log2(e)/sqrt(d) */
	int bk;			/* keys per tile */
	float *s;		/* score tile, then probabilities */
	int lds;		/* its row stride */
	float *qt;		/* vector engines: scaled query tile, transposed (d x lds) */
	float *mx, *l, *alpha;	/* per query row: running max, sum, last rescale */
	float *kpad, *apad;	/* vector engines: padded copies of a partial kernel block */
};

static size_t round_up(size_t x, size_t to)
{
	return (x + to - 1) / to * to;
}

/* Multiplies the output rows by 1/l; a row that saw nothing (l = 0) becomes 0. */
static void finish_rows(float *acc, const float *l, int rows, int d)
{
	for (int r = 0; r < rows; r++) {
		float by = l[r] > 0 ? 1.0f / l[r] : 0.0f;

		for (int c = 0; c < d; c++)
			acc[(size_t)r * d + c] *= by;
	}
}

/* diagonal_limit() of a tile that needs no mask. */
#define NO_MASK INT_MAX

/*
 * Keys a row of query tile q0 may see in key tile k0: row r sees its first
 * limit + r keys (limit = q0 - k0 + 1, which may be negative) when the tile crosses
 * the cs diagonal, all of them otherwise (NO_MASK).
 */
static int diagonal_limit(const struct flash_tile *t, int q0, int k0, int cols)
{
	if (t->causal && k0 + cols - 1 > q0)
		return q0 - k0 + 1;
	return NO_MASK;
}

/* cs: keys after the tile's last query are never visible, so their tiles are skipped. */
static int keys_needed(const struct flash_tile *t, int q0, int rows)
{
	if (t->causal && q0 + rows < t->m)
		return q0 + rows;
	return t->m;
}

/* ---- portable engine: OpenBLAS products, row-major scores ---- */

/*
 * Online-softmax step on a rows x cols tile of scores, one row at a time; rescales the
 * output rows already accumulated.
 */
static void softmax_rows(struct flash_tile *t, float *acc, int rows, int cols, int limit)
{
	for (int r = 0; r < rows; r++) {
		float *row = t->s + (size_t)r * t->lds;
		float m_old = t->mx[r], m_new = m_old, alpha, sum = 0;
		int n = cols;

		if (limit != NO_MASK)
			n = limit + r < 0 ? 0 : limit + r > cols ? cols : limit + r;
		for (int j = 0; j < n; j++)
			m_new = fmaxf(m_new, row[j]);
		/* Nothing seen yet: keep the shift finite so no -inf - -inf appears. */
		if (m_new == -INFINITY) {
			memset(row, 0, sizeof(float) * cols);
			continue;
		}
		for (int j = 0; j < n; j++) {
			row[j] = exp2f(row[j] - m_new);
			sum += row[j];
		}
		for (int j = n; j < cols; j++)
			row[j] = 0;
		alpha = exp2f(m_old - m_new);
		t->l[r] = alpha * t->l[r] + sum;
		t->mx[r] = m_new;
		if (alpha != 1.0f)
			for (int c = 0; c < t->d; c++)
				acc[(size_t)r * t->d + c] *= alpha;
	}
}

static void tile_blas(struct flash_tile *t, int q0, int rows)
{
	int d = t->d, kend = keys_needed(t, q0, rows);
	float *acc = t->out + (size_t)q0 * d;

	for (int r = 0; r < rows; r++) {
		t->mx[r] = -INFINITY;
		t->l[r] = 0;
	}
	memset(acc, 0, sizeof(float) * rows * d);
	for (int k0 = 0; k0 < kend; k0 += t->bk) {
		int cols = kend - k0 < t->bk ? kend - k0 : t->bk;

		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, d, t->qscale,
			    t->q + (size_t)q0 * d, d, t->k + (size_t)k0 * d, d, 0.0f,
			    t->s, t->lds);
		softmax_rows(t, acc, rows, cols, diagonal_limit(t, q0, k0, cols));
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, cols, 1.0f,
			    t->s, t->lds, t->v + (size_t)k0 * d, d, 1.0f, acc, d);
	}
	finish_rows(acc, t->l, rows, d);
}

#ifdef FLASH_AVX2
/* ---- AVX2 engine: transposed scores, register-blocked kernels ---- */

#define ALWAYS_INLINE inline __attribute__((always_inline))
/* Kernels stay out of line: inlined into the tile loop they run out of registers. */
#define NOINLINE __attribute__((noinline))

/*
 * The scores come from score-tile.h (the tile packed by score_tile_pack_queries(),
 * scored by score_tile_scores()). The accumulate kernels below work on KERNEL_ROWS rows
 * by 16 columns: 12 vector accumulators, two vector operands and a broadcast fill the 16
 * AVX2 registers. They take whole blocks only (fixed row offsets keep every address in a
 * register); tile_accumulate() routes the last, partial block through a padded copy.
 */

/*
 * Online-softmax step down the columns of the transposed tile, eight queries at a
 * time: masks (limit != NO_MASK), finds the new max, turns scores into probabilities and
 * updates l; alpha[r] is the factor the accumulated row r must be multiplied by.
 */
static void softmax_columns(struct flash_tile *t, int cols, int rows, int limit)
{
	const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
	const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);

	for (int r = 0; r < rows; r += 8) {
		float *s = t->s + r;
		__m256 m_old = _mm256_load_ps(t->mx + r), m_new = m_old;
		__m256 sum = _mm256_setzero_ps(), alpha, shift;

		if (limit != NO_MASK) {
			/* Query q0 + r + i sees key k0 + j iff j < limit + r + i. */
			__m256i seen = _mm256_add_epi32(_mm256_set1_epi32(limit + r), lane);

			for (int j = 0; j < cols; j++) {
				__m256 vis = _mm256_castsi256_ps(
					_mm256_cmpgt_epi32(seen, _mm256_set1_epi32(j)));
				__m256 x = _mm256_blendv_ps(neg_inf,
							    _mm256_load_ps(s + (size_t)j * t->lds),
							    vis);

				_mm256_store_ps(s + (size_t)j * t->lds, x);
				m_new = _mm256_max_ps(m_new, x);
			}
		} else {
			for (int j = 0; j < cols; j++)
				m_new = _mm256_max_ps(m_new,
						      _mm256_load_ps(s + (size_t)j * t->lds));
		}
		/* A query that has seen nothing keeps shift 0: no -inf - -inf. */
		shift = _mm256_blendv_ps(m_new, _mm256_setzero_ps(),
					 _mm256_cmp_ps(m_new, neg_inf, _CMP_EQ_OQ));
		for (int j = 0; j < cols; j++) {
			float *at = s + (size_t)j * t->lds;
			__m256 p = exp2_v8(_mm256_sub_ps(_mm256_load_ps(at), shift));

			_mm256_store_ps(at, p);
			sum = _mm256_add_ps(sum, p);
		}
		alpha = exp2_v8(_mm256_sub_ps(m_old, shift));
		_mm256_store_ps(t->alpha + r, alpha);
		_mm256_store_ps(t->l + r, _mm256_fmadd_ps(alpha, _mm256_load_ps(t->l + r), sum));
		_mm256_store_ps(t->mx + r, m_new);
	}
}

#define ACC_LOAD(i)							\
	do {								\
		__m256 a = _mm256_broadcast_ss(alpha + (i));		\
									\
		o##i##a = _mm256_mul_ps(a, _mm256_loadu_ps(acc + (size_t)(i) * ld)); \
		if (vecs == 2)						\
			o##i##b = _mm256_mul_ps(a, _mm256_loadu_ps(acc + (size_t)(i) * ld + 8)); \
	} while (0)

#define ACC_FMA(i)							\
	do {								\
		__m256 a = _mm256_broadcast_ss(pj + (i));		\
									\
		o##i##a = _mm256_fmadd_ps(a, b0, o##i##a);		\
		if (vecs == 2)						\
			o##i##b = _mm256_fmadd_ps(a, b1, o##i##b);	\
	} while (0)

#define ACC_STORE(i)							\
	do {								\
		_mm256_storeu_ps(acc + (size_t)(i) * ld, o##i##a);	\
		if (vecs == 2)						\
			_mm256_storeu_ps(acc + (size_t)(i) * ld + 8, o##i##b); \
	} while (0)

/*
 * acc[i][0..8*vecs) = alpha[i] * acc[i][..] + sum_j p[j][i] * v[j][..] for KERNEL_ROWS
 * output rows i (stride ld), vecs 1 or 2.
 */
static ALWAYS_INLINE void accumulate_kernel(const float *p, int lds, const float *v, int d,
					    int cols, const float *alpha, float *acc, int ld,
					    int vecs)
{
	__m256 o0a, o0b, o1a, o1b, o2a, o2b, o3a, o3b, o4a, o4b, o5a, o5b;

	o0b = o1b = o2b = o3b = o4b = o5b = _mm256_setzero_ps();
	ACC_LOAD(0);
	ACC_LOAD(1);
	ACC_LOAD(2);
	ACC_LOAD(3);
	ACC_LOAD(4);
	ACC_LOAD(5);
	for (int j = 0; j < cols; j++) {
		const float *pj = p + (size_t)j * lds;
		__m256 b0 = _mm256_loadu_ps(v + (size_t)j * d), b1 = b0;

		if (vecs == 2)
			b1 = _mm256_loadu_ps(v + (size_t)j * d + 8);
		ACC_FMA(0);
		ACC_FMA(1);
		ACC_FMA(2);
		ACC_FMA(3);
		ACC_FMA(4);
		ACC_FMA(5);
	}
	ACC_STORE(0);
	ACC_STORE(1);
	ACC_STORE(2);
	ACC_STORE(3);
	ACC_STORE(4);
	ACC_STORE(5);
}

static NOINLINE void accumulate_16(const float *p, int lds, const float *v, int d, int cols,
				   const float *alpha, float *acc, int ld)
{
	accumulate_kernel(p, lds, v, d, cols, alpha, acc, ld, 2);
}

static NOINLINE void accumulate_8(const float *p, int lds, const float *v, int d, int cols,
				  const float *alpha, float *acc, int ld)
{
	accumulate_kernel(p, lds, v, d, cols, alpha, acc, ld, 1);
}

#ifdef FLASH_AVX512
/* ---- AVX-512 engine: the AVX2 engine's structure at twice the width ---- */

/* softmax_columns() sixteen queries at a time, masks instead of blends. */
static void softmax_columns_512(struct flash_tile *t, int cols, int rows, int limit)
{
	const __m512 neg_inf = _mm512_set1_ps(-INFINITY);
	const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
					       14, 15);

	for (int r = 0; r < rows; r += 16) {
		float *s = t->s + r;
		__m512 m_old = _mm512_load_ps(t->mx + r), m_new = m_old;
		__m512 sum = _mm512_setzero_ps(), alpha, shift;

		if (limit != NO_MASK) {
			/* Query q0 + r + i sees key k0 + j iff j < limit + r + i. */
			__m512i seen = _mm512_add_epi32(_mm512_set1_epi32(limit + r), lane);

			for (int j = 0; j < cols; j++) {
				__mmask16 vis = _mm512_cmpgt_epi32_mask(seen, _mm512_set1_epi32(j));
				__m512 x = _mm512_mask_mov_ps(neg_inf, vis,
							      _mm512_load_ps(s + (size_t)j * t->lds));

				_mm512_store_ps(s + (size_t)j * t->lds, x);
				m_new = _mm512_max_ps(m_new, x);
			}
		} else {
			for (int j = 0; j < cols; j++)
				m_new = _mm512_max_ps(m_new,
						      _mm512_load_ps(s + (size_t)j * t->lds));
		}
		/* A query that has seen nothing keeps shift 0: no -inf - -inf. */
		shift = _mm512_mask_mov_ps(m_new, _mm512_cmp_ps_mask(m_new, neg_inf, _CMP_EQ_OQ),
					   _mm512_setzero_ps());
		for (int j = 0; j < cols; j++) {
			float *at = s + (size_t)j * t->lds;
			__m512 p = exp2_v16(_mm512_sub_ps(_mm512_load_ps(at), shift));

			_mm512_store_ps(at, p);
			sum = _mm512_add_ps(sum, p);
		}
		alpha = exp2_v16(_mm512_sub_ps(m_old, shift));
		_mm512_store_ps(t->alpha + r, alpha);
		_mm512_store_ps(t->l + r, _mm512_fmadd_ps(alpha, _mm512_load_ps(t->l + r), sum));
		_mm512_store_ps(t->mx + r, m_new);
	}
}

#define ACC_LOAD_512(i)							\
	do {								\
		__m512 a = _mm512_set1_ps(alpha[i]);			\
		const float *row = acc + (size_t)(i) * ld;		\
									\
		o##i##a = _mm512_mul_ps(a, _mm512_loadu_ps(row));	\
		if (vecs >= 2)						\
			o##i##b = _mm512_mul_ps(a, _mm512_loadu_ps(row + 16)); \
		if (vecs == 4) {					\
			o##i##c = _mm512_mul_ps(a, _mm512_loadu_ps(row + 32)); \
			o##i##d = _mm512_mul_ps(a, _mm512_loadu_ps(row + 48)); \
		}							\
	} while (0)

#define ACC_FMA_512(i)							\
	do {								\
		__m512 a = _mm512_set1_ps(pj[i]);			\
									\
		o##i##a = _mm512_fmadd_ps(a, b0, o##i##a);		\
		if (vecs >= 2)						\
			o##i##b = _mm512_fmadd_ps(a, b1, o##i##b);	\
		if (vecs == 4) {					\
			o##i##c = _mm512_fmadd_ps(a, b2, o##i##c);	\
			o##i##d = _mm512_fmadd_ps(a, b3, o##i##d);	\
		}							\
	} while (0)

#define ACC_STORE_512(i)						\
	do {								\
		float *row = acc + (size_t)(i) * ld;			\
									\
		_mm512_storeu_ps(row, o##i##a);				\
		if (vecs >= 2)						\
			_mm512_storeu_ps(row + 16, o##i##b);		\
		if (vecs == 4) {					\
			_mm512_storeu_ps(row + 32, o##i##c);		\
			_mm512_storeu_ps(row + 48, o##i##d);		\
		}							\
	} while (0)

/*
 * accumulate_kernel() on KERNEL_ROWS rows by 16 * vecs columns, vecs 1, 2 or 4: at four,
 * 24 accumulators, four value vectors and a broadcast fill 29 of the 32 registers.
 */
static ALWAYS_INLINE void accumulate_kernel_512(const float *p, int lds, const float *v,
						int d, int cols, const float *alpha,
						float *acc, int ld, int vecs)
{
	__m512 o0a, o0b, o0c, o0d, o1a, o1b, o1c, o1d, o2a, o2b, o2c, o2d;
	__m512 o3a, o3b, o3c, o3d, o4a, o4b, o4c, o4d, o5a, o5b, o5c, o5d;

	o0b = o1b = o2b = o3b = o4b = o5b = _mm512_setzero_ps();
	o0c = o1c = o2c = o3c = o4c = o5c = o0b;
	o0d = o1d = o2d = o3d = o4d = o5d = o0b;
	ACC_LOAD_512(0);
	ACC_LOAD_512(1);
	ACC_LOAD_512(2);
	ACC_LOAD_512(3);
	ACC_LOAD_512(4);
	ACC_LOAD_512(5);
	for (int j = 0; j < cols; j++) {
		const float *pj = p + (size_t)j * lds, *vj = v + (size_t)j * d;
		__m512 b0 = _mm512_loadu_ps(vj), b1 = b0, b2 = b0, b3 = b0;

		if (vecs >= 2)
			b1 = _mm512_loadu_ps(vj + 16);
		if (vecs == 4) {
			b2 = _mm512_loadu_ps(vj + 32);
			b3 = _mm512_loadu_ps(vj + 48);
		}
		ACC_FMA_512(0);
		ACC_FMA_512(1);
		ACC_FMA_512(2);
		ACC_FMA_512(3);
		ACC_FMA_512(4);
		ACC_FMA_512(5);
	}
	ACC_STORE_512(0);
	ACC_STORE_512(1);
	ACC_STORE_512(2);
	ACC_STORE_512(3);
	ACC_STORE_512(4);
	ACC_STORE_512(5);
}

#undef ACC_LOAD_512
#undef ACC_FMA_512
#undef ACC_STORE_512

static NOINLINE void accumulate_64(const float *p, int lds, const float *v, int d, int cols,
				   const float *alpha, float *acc, int ld)
{
	accumulate_kernel_512(p, lds, v, d, cols, alpha, acc, ld, 4);
}

static NOINLINE void accumulate_32(const float *p, int lds, const float *v, int d, int cols,
				   const float *alpha, float *acc, int ld)
{
	accumulate_kernel_512(p, lds, v, d, cols, alpha, acc, ld, 2);
}

static NOINLINE void accumulate_16_512(const float *p, int lds, const float *v, int d,
				       int cols, const float *alpha, float *acc, int ld)
{
	accumulate_kernel_512(p, lds, v, d, cols, alpha, acc, ld, 1);
}

#endif

/* An accumulate kernel: KERNEL_ROWS output rows by one block of columns. */
typedef void accumulate_fn(const float *p, int lds, const float *v, int d, int cols,
			   const float *alpha, float *acc, int ld);

/* The engine's widest kernel for `left` columns (a multiple of its smallest), and its width. */
static accumulate_fn *accumulate_pick(enum flash_engine e, int left, int *width)
{
#ifdef FLASH_AVX512
	if (e == FLASH_ENGINE_AVX512) {
		*width = left >= 64 ? 64 : left >= 32 ? 32 : 16;
		return *width == 64 ? accumulate_64 : *width == 32 ? accumulate_32 :
		       accumulate_16_512;
	}
#endif
	(void)e;
	*width = left >= 16 ? 16 : 8;
	return *width == 16 ? accumulate_16 : accumulate_8;
}

/*
 * acc = alpha * acc + P V for the tile's rows, over d in the engine's blocks of columns
 * (AVX2 16 then 8; AVX-512 64, 32, 16). A partial block of rows runs on a padded copy
 * (t->apad, KERNEL_ROWS x the widest block); P and alpha have padded lanes to read.
 */
static void tile_accumulate(struct flash_tile *t, float *acc, int k0, int cols, int rows)
{
	const float *v = t->v + (size_t)k0 * t->d;
	int d = t->d, pad_ld = t->engine == FLASH_ENGINE_AVX512 ? ACC_COLS_512 : ACC_COLS;

	for (int i = 0; i < rows; i += KERNEL_ROWS) {
		int kr = rows - i < KERNEL_ROWS ? rows - i : KERNEL_ROWS;

		for (int c = 0, width; c < d; c += width) {
			accumulate_fn *kernel = accumulate_pick(t->engine, d - c, &width);
			float *out = acc + (size_t)i * d + c, *at = out;
			int ld = d;

			if (kr < KERNEL_ROWS) {
				memset(t->apad, 0, sizeof(float) * KERNEL_ROWS * pad_ld);
				for (int r = 0; r < kr; r++)
					memcpy(t->apad + r * pad_ld, out + (size_t)r * d,
					       sizeof(float) * width);
				at = t->apad;
				ld = pad_ld;
			}
			kernel(t->s + i, t->lds, v + c, d, cols, t->alpha + i, at, ld);
			if (at != out)
				for (int r = 0; r < kr; r++)
					memcpy(out + (size_t)r * d, t->apad + r * pad_ld,
					       sizeof(float) * width);
		}
	}
}

/*
 * Query tiles tiles[0..count) (rows starting at q0[g], rows[g] of them) on a vector
 * engine: pack each tile's queries, then walk the key tiles once for all of them, each
 * key tile scored, softmaxed and accumulated into every query tile that sees it in turn.
 * Each query tile computes exactly what it would alone; walking the keys together reads
 * them from memory once per group instead of once per tile.
 */
static void group_vector(struct flash_tile *tiles, int count, const int *q0, const int *rows)
{
	int d = tiles[0].d, bk = tiles[0].bk, kend = 0;

	for (int g = 0; g < count; g++) {
		struct flash_tile *t = &tiles[g];
		int needed = keys_needed(t, q0[g], rows[g]);

		for (int r = 0; r < t->lds; r++) {
			t->mx[r] = -INFINITY;
			t->l[r] = 0;
		}
		memset(t->out + (size_t)q0[g] * d, 0, sizeof(float) * rows[g] * d);
		score_tile_pack_queries(t->qt, t->lds, t->q + (size_t)q0[g] * d, d, rows[g],
					t->qscale);
		kend = needed > kend ? needed : kend;
	}
	for (int k0 = 0; k0 < kend; k0 += bk) {
		for (int g = 0; g < count; g++) {
			struct flash_tile *t = &tiles[g];
			int needed = keys_needed(t, q0[g], rows[g]);
			int cols = needed - k0 < bk ? needed - k0 : bk;
			const float *kt = t->k + (size_t)k0 * d;
			int limit;

			if (cols <= 0)
				continue;
			limit = diagonal_limit(t, q0[g], k0, cols);
#ifdef FLASH_AVX512
			if (t->engine == FLASH_ENGINE_AVX512) {
				score_tile_scores_512(t->s, t->qt, t->lds, kt, d, cols, rows[g],
						      t->kpad);
				softmax_columns_512(t, cols, rows[g], limit);
			} else
#endif
			{
				score_tile_scores(t->s, t->qt, t->lds, kt, d, cols, rows[g], t->kpad);
				softmax_columns(t, cols, rows[g], limit);
			}
			tile_accumulate(t, t->out + (size_t)q0[g] * d, k0, cols, rows[g]);
		}
	}
	for (int g = 0; g < count; g++)
		finish_rows(tiles[g].out + (size_t)q0[g] * d, tiles[g].l, rows[g], d);
}
#endif

bool flash_engine_handles(enum flash_engine e, int d)
{
	(void)d;	/* a portable build has no engine that asks */
	switch (e) {
	case FLASH_ENGINE_BLAS:
		return true;
#ifdef FLASH_AVX2
	case FLASH_ENGINE_AVX2:
		return d % 8 == 0;
#endif
#ifdef FLASH_AVX512
	case FLASH_ENGINE_AVX512:
		return d % 16 == 0;
#endif
	default:
		return false;
	}
}

enum flash_engine flash_engine_for(int d)
{
	if (flash_engine_handles(FLASH_ENGINE_AVX512, d))
		return FLASH_ENGINE_AVX512;
	if (flash_engine_handles(FLASH_ENGINE_AVX2, d))
		return FLASH_ENGINE_AVX2;
	return FLASH_ENGINE_BLAS;
}

/*
 * Where the parts of one thread's workspace start, in floats: the score tile and the
 * padded kernel blocks once, then each query tile of a group its own queries and row
 * state (the parts of tile g start tile_floats * g after those of tile 0).
 */
struct flash_layout {
	int lds;			/* score tile row stride */
	size_t s, kpad, apad, qt, mx, l, alpha;
	size_t tile_floats;		/* one query tile's parts */
	size_t total;			/* floats per thread */
};

/*
 * Vector engines: scores are keys x queries, bk rounded up to the kernel's keys rows of
 * round6(bq) rounded up to its query block (16 AVX2, 32 AVX-512), plus the padded kernel
 * blocks, and for each of a group's query tiles its transposed queries and row state
 * (running max, sum, rescale). Portable: bq x round16(bk). Nothing depends on n or m.
 */
static void tile_layout(struct flash_layout *lay, int bq, int bk, int d, enum flash_engine e,
			int group)
{
	size_t row_len, s_len, qt_len = 0, kpad_len = 0, apad_len = 0;
	size_t keys = SCORE_TILE_KEYS, queries = 16, acc_cols = ACC_COLS;

	if (e == FLASH_ENGINE_AVX512) {
		keys = SCORE_TILE_KEYS_512;
		queries = 32;
		acc_cols = ACC_COLS_512;
	}
	if (e != FLASH_ENGINE_BLAS) {
		row_len = round_up(round_up(bq, KERNEL_ROWS), queries);
		lay->lds = (int)row_len;
		s_len = round_up(bk, keys) * row_len;
		qt_len = (size_t)d * row_len;
		kpad_len = round_up(keys * d, FLASH_LINE);
		apad_len = KERNEL_ROWS * acc_cols;
	} else {
		row_len = round_up(bq, FLASH_LINE);
		lay->lds = (int)round_up(bk, FLASH_LINE);
		s_len = (size_t)bq * lay->lds;
	}
	lay->s = 0;
	lay->kpad = lay->s + s_len;
	lay->apad = lay->kpad + kpad_len;
	lay->qt = lay->apad + apad_len;
	lay->mx = lay->qt + qt_len;
	lay->l = lay->mx + row_len;
	lay->alpha = lay->l + row_len;
	lay->tile_floats = qt_len + 3 * row_len;
	lay->total = lay->qt + (size_t)group * lay->tile_floats;
}

/*
 * Query tiles that walk the keys together (group_vector()): four, so that at 16384 keys
 * (8 MiB of keys and values per head at d = 64, beyond what stays cached) each key tile
 * comes from memory once per four query tiles; fewer when that would leave fewer than
 * eight work items per thread; one on the portable engine. Measured on a Zen 5 VM (AVX-512, one thread, B = 1, H = 8,
 * d = 64, ns): tiles one at a time ran at 148-153 GFLOP/s at N = 16384 against 165-170
 * at 4096; in fours, 182 at both.
 */
#define FLASH_GROUP_MAX 4

static int forward_group(enum flash_engine e, long slices, int tiles_q)
{
	int group = e == FLASH_ENGINE_BLAS ? 1 : FLASH_GROUP_MAX;

	while (group > 1 && slices * ((tiles_q + group - 1) / group) < 8L * max_threads())
		group--;
	return group;
}

static int flash_forward(const struct attn_problem *p, const float *q, const float *k,
			 const float *v, float *out)
{
	return flash_forward_on(flash_engine_for(p->d), p, q, k, v, out);
}

int flash_forward_on(enum flash_engine engine, const struct attn_problem *p, const float *q,
		     const float *k, const float *v, float *out)
{
	return flash_forward_grouped(engine, 0, p, q, k, v, out);
}

int flash_forward_grouped(enum flash_engine engine, int group, const struct attn_problem *p,
			  const float *q, const float *k, const float *v, float *out)
{
	int bq = p->params ? (int)p->params[FLASH_BLOCK_Q] : FLASH_BLOCK_Q_DEFAULT;
	int bk = p->params ? (int)p->params[FLASH_BLOCK_K] : FLASH_BLOCK_K_DEFAULT;
	int threads = max_threads(), saved, tiles_q, groups;
	long slices = (long)p->batch * p->heads, items;
	struct flash_layout lay;
	float *ws;

	if (!flash_engine_handles(engine, p->d) || group < 0 || group > FLASH_GROUP_MAX)
		return -ENOTSUP;
	bq = bq < p->n ? bq : p->n;
	bk = bk < p->m ? bk : p->m;
	tiles_q = (p->n + bq - 1) / bq;
	if (engine == FLASH_ENGINE_BLAS)
		group = 1;
	else if (!group)
		group = forward_group(engine, slices, tiles_q);
	groups = (tiles_q + group - 1) / group;
	items = slices * groups;
	/* room for a whole group always, so no length changes the workspace */
	tile_layout(&lay, bq, bk, p->d, engine, engine == FLASH_ENGINE_BLAS ? 1 : FLASH_GROUP_MAX);
	/* Zeroed, so padding lanes read before they are written hold numbers. */
	ws = attn_calloc((size_t)threads * lay.total, sizeof(float));
	if (!ws)
		return -ENOMEM;

	saved = blas_serial_begin();
	#pragma omp parallel
	{
		float *base = ws + (size_t)thread_id() * lay.total;
		struct flash_tile tiles[FLASH_GROUP_MAX], t = {
			.engine	= engine,
			.m	= p->m,
			.d	= p->d,
			.causal	= p->pattern == ATTN_CS,
			/* log2(e)/sqrt(d): scores come out in base 2 for exp2. */
			.qscale	= (float)(1.4426950408889634 / sqrt((double)p->d)),
			.bk	= bk,
			.s	= base + lay.s,
			.lds	= lay.lds,
			.qt	= base + lay.qt,
			.mx	= base + lay.mx,
			.l	= base + lay.l,
			.alpha	= base + lay.alpha,
			.kpad	= base + lay.kpad,
			.apad	= base + lay.apad,
		};

		/* Dynamic: cs tiles differ in work; the last (largest) groups go first. */
		#pragma omp for schedule(dynamic, 1)
		for (long it = 0; it < items; it++) {
			long slice = it / groups;
			int first = (groups - 1 - (int)(it % groups)) * group, count = 0;
			int b = (int)(slice / p->heads), h = (int)(slice % p->heads);
			size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);
			int q0[FLASH_GROUP_MAX], rows[FLASH_GROUP_MAX];

			t.q = q + qo;
			t.k = k + kvo;
			t.v = v + kvo;
			t.out = out + qo;
			for (int tile = first; tile < tiles_q && count < group; tile++, count++) {
				size_t at = lay.tile_floats * (size_t)count;

				tiles[count] = t;
				tiles[count].qt += at;
				tiles[count].mx += at;
				tiles[count].l += at;
				tiles[count].alpha += at;
				q0[count] = tile * bq;
				rows[count] = p->n - q0[count] < bq ? p->n - q0[count] : bq;
			}
#ifdef FLASH_AVX2
			if (engine != FLASH_ENGINE_BLAS) {
				group_vector(tiles, count, q0, rows);
				continue;
			}
#endif
			tile_blas(&t, q0[0], rows[0]);
		}
	}
	blas_serial_end(saved);
	attn_free(ws);
	return 0;
}

/*
 * Below this many multiply-adds per step (slices x cached keys x d, scores and sum
 * alike) a parallel region costs more than it saves.
 */
#define FLASH_DECODE_PARALLEL_MIN 32768

/*
 * Incremental decoding. A partial result is one run of key blocks of one slice: its
 * running max and sum and its unnormalised output row, each on its own cache lines.
 */
struct flash_decode {
	struct attn_problem p;	/* n = m = capacity in positions */
	double params[2];	/* p.params points here */
	int len;		/* positions fed so far */
	int threads;		/* score tiles; the most threads a step runs on */
	int bk;			/* keys per block */
	int max_splits;		/* partial results per slice */
	int part_len;		/* floats per partial result */
	struct kv_cache cache;	/* capacity slots per KV head */
	float *s;		/* [threads][round16(bk)] scores of one block */
	float *part;		/* [slices][max_splits][part_len]: acc[d], max, sum */
};

static void flash_decode_free(void *state)
{
	struct flash_decode *st = state;

	if (!st)
		return;
	attn_free(st->part);
	attn_free(st->s);
	kv_cache_release(&st->cache);
	attn_free(st);
}

static int flash_decode_init(const struct attn_problem *p, void **state)
{
	struct flash_decode *st;
	int slices = p->batch * p->heads, ret;

	*state = NULL;
	st = attn_calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	ret = kv_cache_init(&st->cache, p, p->n);
	if (ret)
		goto out_free_state;
	st->p = decode_problem(p);
	st->params[FLASH_BLOCK_Q] = FLASH_BLOCK_Q_DEFAULT;
	st->params[FLASH_BLOCK_K] = FLASH_BLOCK_K_DEFAULT;
	if (p->params) {
		st->params[FLASH_BLOCK_Q] = p->params[FLASH_BLOCK_Q];
		st->params[FLASH_BLOCK_K] = p->params[FLASH_BLOCK_K];
	}
	st->p.params = st->params;
	st->bk = (int)st->params[FLASH_BLOCK_K];
	st->bk = st->bk < p->n ? st->bk : p->n;
	st->threads = max_threads();
	/* Slices are split only to give every thread work. */
	st->max_splits = (st->threads + slices - 1) / slices;
	st->part_len = (int)round_up((size_t)p->d + 2, FLASH_LINE);
	st->s = attn_calloc(st->threads * round_up(st->bk, FLASH_LINE), sizeof(float));
	st->part = attn_calloc((size_t)slices * st->max_splits * st->part_len,
			       sizeof(float));
	if (!st->s || !st->part) {
		ret = -ENOMEM;
		goto out_free_state;
	}
	*state = st;
	return 0;

out_free_state:
	flash_decode_free(st);
	return ret;
}

/* s[j] = qscale * q . k_j for the cols keys (rows of k). */
static void block_scores(const float *q, const float *k, int d, int cols, float qscale,
			 float *s)
{
	int j = 0;

#ifdef FLASH_AVX2
	/* Four keys at a time share the loads of q; their sums are reduced together. */
	if (d % 8 == 0) {
		for (; j + 4 <= cols; j += 4) {
			const float *k0 = k + (size_t)j * d, *k1 = k0 + d;
			const float *k2 = k1 + d, *k3 = k2 + d;
			__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, h;
			__m128 sum;

			for (int c = 0; c < d; c += 8) {
				__m256 x = _mm256_loadu_ps(q + c);

				a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k0 + c), a0);
				a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k1 + c), a1);
				a2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k2 + c), a2);
				a3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k3 + c), a3);
			}
			/* lanes 0..3 and 4..7 of h hold halves of the four sums */
			h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
			sum = _mm_add_ps(_mm256_castps256_ps128(h),
					 _mm256_extractf128_ps(h, 1));
			_mm_storeu_ps(s + j, _mm_mul_ps(sum, _mm_set1_ps(qscale)));
		}
	}
#endif
	for (; j < cols; j++)
		s[j] = qscale * dot(q, k + (size_t)j * d, d);
}

/* acc = alpha * acc + sum_j p[j] v_j over the cols values (rows of v). */
static void block_accumulate(float *acc, float alpha, const float *p, const float *v, int d,
			     int cols)
{
	int c = 0;

#ifdef FLASH_AVX2
	/* 32 columns of acc stay in registers while the block's values stream past. */
	if (d % 8 == 0) {
		__m256 a = _mm256_set1_ps(alpha);

		for (; c + 32 <= d; c += 32) {
			__m256 o0 = _mm256_mul_ps(a, _mm256_loadu_ps(acc + c));
			__m256 o1 = _mm256_mul_ps(a, _mm256_loadu_ps(acc + c + 8));
			__m256 o2 = _mm256_mul_ps(a, _mm256_loadu_ps(acc + c + 16));
			__m256 o3 = _mm256_mul_ps(a, _mm256_loadu_ps(acc + c + 24));

			for (int j = 0; j < cols; j++) {
				const float *vj = v + (size_t)j * d + c;
				__m256 w = _mm256_broadcast_ss(p + j);

				o0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj), o0);
				o1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 8), o1);
				o2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 16), o2);
				o3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 24), o3);
			}
			_mm256_storeu_ps(acc + c, o0);
			_mm256_storeu_ps(acc + c + 8, o1);
			_mm256_storeu_ps(acc + c + 16, o2);
			_mm256_storeu_ps(acc + c + 24, o3);
		}
		for (; c < d; c += 8) {
			__m256 o = _mm256_mul_ps(a, _mm256_loadu_ps(acc + c));

			for (int j = 0; j < cols; j++) {
				const float *vj = v + (size_t)j * d + c;

				o = _mm256_fmadd_ps(_mm256_broadcast_ss(p + j),
						    _mm256_loadu_ps(vj), o);
			}
			_mm256_storeu_ps(acc + c, o);
		}
		return;
	}
#endif
	for (; c < d; c++)
		acc[c] *= alpha;
	for (int j = 0; j < cols; j++)
		for (c = 0; c < d; c++)
			acc[c] += p[j] * v[(size_t)j * d + c];
}

/*
 * Online softmax of query q over keys j0..j1-1 of one slice's cache, block by block:
 * part gets the unnormalised output row, then the max and the sum (base 2). s holds one
 * block of scores.
 */
static void decode_run(const struct flash_decode *st, const float *q, const float *kc,
		       const float *vc, int j0, int j1, float *s, float *part)
{
	int d = st->p.d, bk = st->bk;
	/* log2(e)/sqrt(d): scores come out in base 2 for exp2. */
	float qscale = (float)(1.4426950408889634 / sqrt((double)d));
	float mx = -INFINITY, l = 0;

	for (int c = 0; c < d; c++)
		part[c] = 0;
	for (int b0 = j0; b0 < j1; b0 += bk) {
		int cols = j1 - b0 < bk ? j1 - b0 : bk;
		const size_t at = (size_t)b0 * d;
		float m_new, alpha;

		block_scores(q, kc + at, d, cols, qscale, s);
		m_new = fmaxf(mx, row_max(s, cols));
		alpha = exp2f(mx - m_new);
		l = alpha * l + exp2_shifted_sum(s, cols, m_new);
		block_accumulate(part, alpha, s, vc + at, d, cols);
		mx = m_new;
	}
	part[d] = mx;
	part[d + 1] = l;
}

/* out = the splits' partial results rescaled to their common max, over their sum. */
static void decode_merge(const float *part, int splits, int part_len, int d, float *out)
{
	float mx = -INFINITY, l = 0;

	for (int i = 0; i < splits; i++)
		mx = fmaxf(mx, part[(size_t)i * part_len + d]);
	for (int c = 0; c < d; c++)
		out[c] = 0;
	for (int i = 0; i < splits; i++) {
		const float *pi = part + (size_t)i * part_len;
		float scale = exp2f(pi[d] - mx);

		l += scale * pi[d + 1];
		for (int c = 0; c < d; c++)
			out[c] += scale * pi[c];
	}
	for (int c = 0; c < d; c++)
		out[c] /= l;
}

/* A prompt's keys and values straight into the cache. */
static int flash_decode_prefill(void *state, const float *k, const float *v, int rows,
				int len)
{
	struct flash_decode *st = state;

	return kv_cache_prefill(&st->cache, &st->len, k, v, rows, len);
}

static int flash_decode_step(void *state, const float *q, const float *k, const float *v,
			     float *out)
{
	struct flash_decode *st = state;
	const struct attn_problem *p = &st->p;
	int slices = p->batch * p->heads, d = p->d, keys, blocks, splits;
	size_t s_len = round_up(st->bk, FLASH_LINE);

	if (st->len >= p->m)
		return -ENOSPC;
	kv_cache_put(&st->cache, st->len, k, v);
	keys = ++st->len;
	blocks = (keys + st->bk - 1) / st->bk;
	splits = st->max_splits < blocks ? st->max_splits : blocks;

	#pragma omp parallel num_threads(st->threads) \
		if ((double)slices * keys * d >= FLASH_DECODE_PARALLEL_MIN)
	{
		float *s = st->s + (size_t)thread_id() * s_len;

		/* Split j of a slice walks blocks j * blocks / splits .. (j + 1) * ... - 1. */
		#pragma omp for schedule(static)
		for (long it = 0; it < (long)slices * splits; it++) {
			int i = (int)(it / splits), split = (int)(it % splits);
			size_t kvo = problem_kv_offset(p, i / p->heads, i % p->heads);
			int j0 = (int)((long)split * blocks / splits) * st->bk;
			int j1 = (int)((long)(split + 1) * blocks / splits) * st->bk;
			float *part = st->part + (size_t)it * st->part_len;

			decode_run(st, q + (size_t)i * d, st->cache.k + kvo, st->cache.v + kvo, j0,
				   j1 < keys ? j1 : keys, s, part);
		}
		#pragma omp for schedule(static)
		for (int i = 0; i < slices; i++)
			decode_merge(st->part + (size_t)i * splits * st->part_len, splits,
				     st->part_len, d, out + (size_t)i * d);
	}
	return 0;
}

/*
 * Bytes one forward moves by its tiling, caches ignored: each (batch, head) query tile of
 * block_q rows reads its Q rows and writes its O rows once, and reads the K and V rows of
 * the keys it sees (all m; in cs up to its last row) once per tile.
 */
static double flash_bytes(const struct attn_problem *p)
{
	int bq = p->params ? (int)p->params[FLASH_BLOCK_Q] : FLASH_BLOCK_Q_DEFAULT, span;
	double keys = 0;

	bq = bq < p->n ? bq : p->n;
	span = bq * forward_group(flash_engine_for(p->d), (long)p->batch * p->heads,
				  (p->n + bq - 1) / bq);
	/* K and V once per group of query tiles, as far as its last row sees */
	for (int q0 = 0; q0 < p->n; q0 += span) {
		int end = p->n - q0 < span ? p->n : q0 + span;

		keys += p->pattern == ATTN_CS && end < p->m ? end : p->m;
	}
	return sizeof(float) * p->batch * p->heads * (2.0 * p->n * p->d + 2.0 * keys * p->d);
}

const struct variant_ops flash_variant = {
	.name		= "flash",
	.family		= "exact",
	.summary	= "tiled online-softmax attention, no n x m matrix",
	.citation	= "Dao et al. 2022, FlashAttention, NeurIPS (arXiv 2205.14135); "
			  "Dao 2023, FlashAttention-2 (arXiv 2307.08691)",
	.patterns	= PATTERNS_ALL,
	.extensions	= 0,
	.flags		= VARIANT_EXACT,
	.params		= flash_params,
	.n_params	= 2,
	.forward	= flash_forward,
	.flops		= exact_attention_flops,
	.bytes		= flash_bytes,
	.state_bytes	= exact_attention_state_bytes,
	.decode_init	= flash_decode_init,
	.decode_step	= flash_decode_step,
	.decode_free	= flash_decode_free,
	.decode_prefill	= flash_decode_prefill,
};
