/*
 * vexp.h - vectorised 2^x for the softmax of exact kernels (flash, vanilla), and e^x for
 * the feature maps and normalisations of others.
 *
 * Scores are kept in base 2 (scaled by log2(e)/sqrt(d)) so one exp2 per score is all a
 * softmax needs.
 */
#ifndef ATTNBENCH_VEXP_H
#define ATTNBENCH_VEXP_H

#include <math.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define VEXP_AVX2 1

/*
 * 2^x for x <= 0 (and -inf), eight at a time: x = k + r with k an integer and
 * |r| <= 1/2, 2^r by a degree-6 polynomial fitted to relative error 3e-9 (below float
 * rounding, so about 1 ulp overall), 2^k added into the exponent. Below -125 the result
 * would be subnormal; it is flushed to 0, which a weight next to the row maximum's 1
 * cannot notice.
 */
static inline __attribute__((always_inline)) __m256 exp2_v8(__m256 x)
{
	const __m256 lowest = _mm256_set1_ps(-125.0f);
	__m256 under = _mm256_cmp_ps(x, lowest, _CMP_LT_OQ);
	__m256 k, r, p;
	__m256i e;

	x = _mm256_max_ps(x, lowest);
	k = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	r = _mm256_sub_ps(x, k);
	p = _mm256_set1_ps(1.537070493e-4f);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.339984825e-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(9.618373588e-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.550329015e-2f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(2.402264774e-1f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(6.931471825e-1f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
	e = _mm256_slli_epi32(_mm256_cvtps_epi32(k), 23);
	p = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), e));
	return _mm256_andnot_ps(under, p);
}

#endif

#if defined(VEXP_AVX2) && defined(__AVX512F__)
#define VEXP_AVX512 1

/* exp2_v8() sixteen at a time: the same reduction, polynomial and flush to 0. */
static inline __attribute__((always_inline)) __m512 exp2_v16(__m512 x)
{
	const __m512 lowest = _mm512_set1_ps(-125.0f);
	__mmask16 keep = _mm512_cmp_ps_mask(x, lowest, _CMP_GE_OQ);
	__m512 k, r, p;
	__m512i e;

	x = _mm512_max_ps(x, lowest);
	k = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	r = _mm512_sub_ps(x, k);
	p = _mm512_set1_ps(1.537070493e-4f);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.339984825e-3f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(9.618373588e-3f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.550329015e-2f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(2.402264774e-1f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(6.931471825e-1f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	e = _mm512_slli_epi32(_mm512_cvtps_epi32(k), 23);
	p = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(p), e));
	return _mm512_maskz_mov_ps(keep, p);
}

#endif

/* Largest of x[0..n) (n >= 1). */
static inline float row_max(const float *x, int n)
{
	float max = x[0];
	int j = 0;

#ifdef VEXP_AVX2
	if (n >= 8) {
		__m256 m = _mm256_loadu_ps(x);

		for (j = 8; j + 8 <= n; j += 8)
			m = _mm256_max_ps(m, _mm256_loadu_ps(x + j));
		m = _mm256_max_ps(m, _mm256_permute2f128_ps(m, m, 1));
		m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0x4e));
		m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0xb1));
		max = _mm256_cvtss_f32(m);
	}
#endif
	for (; j < n; j++)
		max = x[j] > max ? x[j] : max;
	return max;
}

/* x[j] = 2^(x[j] - shift) for j < n; returns the sum (in float, as the kernels keep it). */
static inline float exp2_shifted_sum(float *x, int n, float shift)
{
	float sum = 0;
	int j = 0;

#ifdef VEXP_AVX2
	__m256 acc = _mm256_setzero_ps(), s = _mm256_set1_ps(shift);
	float lanes[8];

	for (; j + 8 <= n; j += 8) {
		__m256 p = exp2_v8(_mm256_sub_ps(_mm256_loadu_ps(x + j), s));

		_mm256_storeu_ps(x + j, p);
		acc = _mm256_add_ps(acc, p);
	}
	_mm256_storeu_ps(lanes, acc);
	for (int l = 0; l < 8; l++)
		sum += lanes[l];
#endif
	for (; j < n; j++) {
		x[j] = exp2f(x[j] - shift);
		sum += x[j];
	}
	return sum;
}

/*
 * out[j] = e^(x[j] - shift[j]) for j < n, every x[j] <= shift[j] (a max subtracted):
 * natural exponentials through exp2, for variants whose softmax is not in base 2.
 */
static inline void exp_shifted(float *out, const float *x, const float *shift, int n)
{
	int j = 0;

#ifdef VEXP_AVX2
	const __m256 log2e = _mm256_set1_ps((float)M_LOG2E);

	for (; j + 8 <= n; j += 8) {
		__m256 t = _mm256_sub_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(shift + j));

		_mm256_storeu_ps(out + j, exp2_v8(_mm256_mul_ps(t, log2e)));
	}
#endif
	for (; j < n; j++)
		out[j] = expf(x[j] - shift[j]);
}

#endif
