/*
 * score-tile.h - the transposed score tile of flash's vector engines and of topk: a query
 * tile packed once, scaled and transposed (d x ld), and a register-blocked kernel that
 * scores the keys of a key tile against it, SCORE_TILE_KEYS keys by 16 queries at a time
 * (AVX2), or SCORE_TILE_KEYS_512 keys by 32 (AVX-512), into a keys x queries tile (row j:
 * key j's scores for every query of the tile).
 *
 * Every score is one fused multiply-add per dimension, in dimension order, from zero, on
 * the already scaled query. topk depends on that: its decoder recomputes the same scores
 * one query at a time and must round them alike, or a key could swap in or out of a row's
 * k best. flash only needs the scores to be close, but a faster order for flash (say two
 * accumulator chains over d) would break topk's forward/decode identity.
 *
 * Only the scoring is here. What a variant does with the tile (flash's online softmax and
 * P V kernels, topk's per-row filter), and its portable path (flash: sgemm; topk: plain C
 * in the same order), stays with the variant.
 */
#ifndef ATTNBENCH_SCORE_TILE_H
#define ATTNBENCH_SCORE_TILE_H

#include <stddef.h>
#include <string.h>

/*
 * Keys in the kernel's register block: 6 keys x 16 queries are 12 vector accumulators,
 * which with two query vectors and a broadcast key fill the 16 AVX2 registers.
 */
#define SCORE_TILE_KEYS 6
/*
 * The AVX-512 kernel's: 12 keys x 32 queries are 24 accumulators, which with two query
 * vectors and a broadcast key leave 5 of the 32 registers.
 */
#define SCORE_TILE_KEYS_512 12

/*
 * qt[c][r] = qscale * q[r][c] for the rows query rows of q (row stride d), and 0 for
 * rows <= r < ld, so that padded query columns score 0 rather than garbage.
 */
static inline void score_tile_pack_queries(float *qt, int ld, const float *q, int d, int rows,
					   float qscale)
{
	for (int c = 0; c < d; c++) {
		float *col = qt + (size_t)c * ld;
		int r;

		for (r = 0; r < rows; r++)
			col[r] = qscale * q[(size_t)r * d + c];
		for (; r < ld; r++)
			col[r] = 0;
	}
}

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define SCORE_TILE_AVX2 1

#define SCORE_TILE_FMA(i)						\
	do {								\
		__m256 a = _mm256_broadcast_ss(k + (size_t)(i) * d + c); \
									\
		s##i##a = _mm256_fmadd_ps(a, b0, s##i##a);		\
		s##i##b = _mm256_fmadd_ps(a, b1, s##i##b);		\
	} while (0)

#define SCORE_TILE_STORE(i)						\
	do {								\
		_mm256_store_ps(s + (size_t)(i) * lds, s##i##a);	\
		_mm256_store_ps(s + (size_t)(i) * lds + 8, s##i##b);	\
	} while (0)

/*
 * s[i][0..16) = k_i . qt[.][0..16) for SCORE_TILE_KEYS keys i (rows of k, stride d): per
 * score one FMA per dimension, in order, from zero. Whole blocks only (fixed row offsets
 * keep every address in a register); qt and s 32-byte aligned, strides ldq and lds
 * multiples of 8. Kept out of line: inlined into a tile loop it runs out of registers
 * (so static, not inline, which gcc would warn of; unused spares an includer that
 * calls only score_tile_pack_queries() the unused-function warning).
 */
static __attribute__((noinline, unused)) void score_tile_kernel(const float *k, int d,
								const float *qt, int ldq,
								float *s, int lds)
{
	__m256 s0a, s0b, s1a, s1b, s2a, s2b, s3a, s3b, s4a, s4b, s5a, s5b;

	s0a = s0b = s1a = s1b = s2a = s2b = _mm256_setzero_ps();
	s3a = s3b = s4a = s4b = s5a = s5b = _mm256_setzero_ps();
	for (int c = 0; c < d; c++) {
		__m256 b0 = _mm256_load_ps(qt + (size_t)c * ldq);
		__m256 b1 = _mm256_load_ps(qt + (size_t)c * ldq + 8);

		SCORE_TILE_FMA(0);
		SCORE_TILE_FMA(1);
		SCORE_TILE_FMA(2);
		SCORE_TILE_FMA(3);
		SCORE_TILE_FMA(4);
		SCORE_TILE_FMA(5);
	}
	SCORE_TILE_STORE(0);
	SCORE_TILE_STORE(1);
	SCORE_TILE_STORE(2);
	SCORE_TILE_STORE(3);
	SCORE_TILE_STORE(4);
	SCORE_TILE_STORE(5);
}

#undef SCORE_TILE_FMA
#undef SCORE_TILE_STORE

/* A register-blocked kernel: a block of keys against a block of query columns. */
typedef void score_tile_kernel_fn(const float *k, int d, const float *qt, int ldq, float *s,
				  int lds);

/*
 * s[j][r] = k_j . qt[.][r] for the cols keys j (rows of k, stride d) and every query
 * column r < rows rounded up to the kernel's qblock, in blocks of `keys` keys. The last,
 * partial block of keys runs on a zero-padded copy in kpad (keys x d floats), and its
 * extra scores land in rows nobody reads; so s needs rows for cols rounded up to keys.
 * Inlined with a constant kernel, the call is direct.
 */
static inline __attribute__((always_inline)) void
score_tile_blocks(score_tile_kernel_fn *kernel, int keys, int qblock, float *s,
		  const float *qt, int ld, const float *k, int d, int cols, int rows, float *kpad)
{
	int qcols = (rows + qblock - 1) / qblock * qblock;

	for (int j = 0; j < cols; j += keys) {
		const float *kj = k + (size_t)j * d;

		if (cols - j < keys) {
			memset(kpad, 0, sizeof(float) * keys * d);
			memcpy(kpad, kj, sizeof(float) * (cols - j) * d);
			kj = kpad;
		}
		for (int r = 0; r < qcols; r += qblock)
			kernel(kj, d, qt + r, ld, s + (size_t)j * ld + r, ld);
	}
}

/*
 * The AVX2 tile (score_tile_blocks()): qt and s share the row stride ld, a multiple of 16
 * no smaller than round16(rows), and are 32-byte aligned; kpad holds SCORE_TILE_KEYS x d.
 */
static inline void score_tile_scores(float *s, const float *qt, int ld, const float *k,
				     int d, int cols, int rows, float *kpad)
{
	score_tile_blocks(score_tile_kernel, SCORE_TILE_KEYS, 16, s, qt, ld, k, d, cols, rows,
			  kpad);
}

#ifdef __AVX512F__
#define SCORE_TILE_AVX512 1

#define SCORE_TILE_FMA_512(i)						\
	do {								\
		__m512 a = _mm512_set1_ps(k[(size_t)(i) * d + c]);	\
									\
		s##i##a = _mm512_fmadd_ps(a, b0, s##i##a);		\
		s##i##b = _mm512_fmadd_ps(a, b1, s##i##b);		\
	} while (0)

#define SCORE_TILE_STORE_512(i)						\
	do {								\
		_mm512_store_ps(s + (size_t)(i) * lds, s##i##a);	\
		_mm512_store_ps(s + (size_t)(i) * lds + 16, s##i##b);	\
	} while (0)

/*
 * score_tile_kernel() for SCORE_TILE_KEYS_512 keys by 32 queries, each score the same
 * chain of FMAs (so the same bits); qt and s 64-byte aligned, ldq and lds multiples of 16.
 */
static __attribute__((noinline, unused)) void score_tile_kernel_512(const float *k, int d,
								    const float *qt, int ldq,
								    float *s, int lds)
{
	__m512 s0a, s0b, s1a, s1b, s2a, s2b, s3a, s3b, s4a, s4b, s5a, s5b;
	__m512 s6a, s6b, s7a, s7b, s8a, s8b, s9a, s9b, s10a, s10b, s11a, s11b;

	s0a = s0b = s1a = s1b = s2a = s2b = s3a = s3b = _mm512_setzero_ps();
	s4a = s4b = s5a = s5b = s6a = s6b = s7a = s7b = _mm512_setzero_ps();
	s8a = s8b = s9a = s9b = s10a = s10b = s11a = s11b = _mm512_setzero_ps();
	for (int c = 0; c < d; c++) {
		__m512 b0 = _mm512_load_ps(qt + (size_t)c * ldq);
		__m512 b1 = _mm512_load_ps(qt + (size_t)c * ldq + 16);

		SCORE_TILE_FMA_512(0);
		SCORE_TILE_FMA_512(1);
		SCORE_TILE_FMA_512(2);
		SCORE_TILE_FMA_512(3);
		SCORE_TILE_FMA_512(4);
		SCORE_TILE_FMA_512(5);
		SCORE_TILE_FMA_512(6);
		SCORE_TILE_FMA_512(7);
		SCORE_TILE_FMA_512(8);
		SCORE_TILE_FMA_512(9);
		SCORE_TILE_FMA_512(10);
		SCORE_TILE_FMA_512(11);
	}
	SCORE_TILE_STORE_512(0);
	SCORE_TILE_STORE_512(1);
	SCORE_TILE_STORE_512(2);
	SCORE_TILE_STORE_512(3);
	SCORE_TILE_STORE_512(4);
	SCORE_TILE_STORE_512(5);
	SCORE_TILE_STORE_512(6);
	SCORE_TILE_STORE_512(7);
	SCORE_TILE_STORE_512(8);
	SCORE_TILE_STORE_512(9);
	SCORE_TILE_STORE_512(10);
	SCORE_TILE_STORE_512(11);
}

#undef SCORE_TILE_FMA_512
#undef SCORE_TILE_STORE_512

/*
 * The AVX-512 tile: ld a multiple of 32 no smaller than round32(rows), qt and s 64-byte
 * aligned, kpad SCORE_TILE_KEYS_512 x d floats.
 */
static inline void score_tile_scores_512(float *s, const float *qt, int ld, const float *k,
					 int d, int cols, int rows, float *kpad)
{
	score_tile_blocks(score_tile_kernel_512, SCORE_TILE_KEYS_512, 32, s, qt, ld, k, d, cols,
			  rows, kpad);
}

#endif /* AVX-512 */

#endif /* AVX2 and FMA */

#endif
