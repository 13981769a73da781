/*
 * test-flash-engines.c - every tile engine this build of flash has (flash.h: portable
 * BLAS, AVX2, AVX-512), run on the same problems: each against a plain fp64 loop of
 * softmax attention, and the two vector engines against each other bit for bit, since
 * they compute every score, weight and output with the same chain of operations and only
 * the vector width differs. Shapes cover every pattern, head dimensions that use each
 * column block of the kernels (16, 32, 64 and their sums; 8 and 24 only for AVX2), tiles
 * cut anywhere (blocks of 1 to 200, n below, at and past a tile), GQA and batch 2.
 *
 * The vector engines walk the keys for up to four query tiles at once; every group size
 * must give the same bytes as the one forward() chose.
 *
 * Engines the build lacks (a portable build, a CPU without AVX-512) are reported as
 * skipped, not passed: which ran is printed.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <setjmp.h>
#include <cmocka.h>

#include "flash.h"
#include "threads.h"
#include "variant-test.h"

/*
 * fp32 tiles against fp64 loops: scores of size ~sqrt(d) through a float exp2 and sums
 * of up to a few hundred weights; at most 5.1e-7 on these shapes (AMD EPYC, AVX-512);
 * 2e-6 leaves room for other BLAS kernels.
 */
#define TOLERANCE 2e-6

static const char *const engine_names[] = {
	[FLASH_ENGINE_BLAS] = "blas",
	[FLASH_ENGINE_AVX2] = "avx2",
	[FLASH_ENGINE_AVX512] = "avx512",
};

/* Softmax attention in double, straight from the definition (cs: row i sees keys <= i). */
static void reference(const struct attn_problem *p, const struct tensors *t, double *out)
{
	int group = p->heads / p->kv_heads;
	double *w = malloc(sizeof(double) * p->m);

	assert_non_null(w);
	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++)
			for (int i = 0; i < p->n; i++) {
				size_t qrow = (((size_t)b * p->heads + h) * p->n + i) * p->d;
				size_t kv = ((size_t)b * p->kv_heads + h / group) * p->m * p->d;
				int keys = p->pattern == ATTN_CS && i + 1 < p->m ? i + 1 : p->m;
				double max = -INFINITY, sum = 0;

				for (int j = 0; j < keys; j++) {
					double s = 0;

					for (int c = 0; c < p->d; c++)
						s += (double)t->q[qrow + c] *
						     t->k[kv + (size_t)j * p->d + c];
					w[j] = s / sqrt((double)p->d);
					max = fmax(max, w[j]);
				}
				for (int j = 0; j < keys; j++) {
					w[j] = exp(w[j] - max);
					sum += w[j];
				}
				for (int c = 0; c < p->d; c++) {
					double o = 0;

					for (int j = 0; j < keys; j++)
						o += w[j] * t->v[kv + (size_t)j * p->d + c];
					out[qrow + c] = o / sum;
				}
			}
	free(w);
}

struct shape {
	enum attn_pattern pattern;
	int n, m;
};

static const struct shape shapes[] = {
	{ ATTN_NS, 1, 1 }, { ATTN_NS, 7, 7 }, { ATTN_NS, 97, 97 }, { ATTN_NS, 200, 200 },
	{ ATTN_CS, 1, 1 }, { ATTN_CS, 13, 13 }, { ATTN_CS, 96, 96 }, { ATTN_CS, 250, 250 },
	{ ATTN_NC, 33, 130 }, { ATTN_NC, 150, 7 },
	{ ATTN_CC, 100, 61 }, { ATTN_CC, 40, 193 },
};

static const int head_dims[] = { 8, 16, 24, 32, 64, 80, 112, 128 };

/* block_q, block_k; { 0 } is the variant's defaults. */
static const double blocks[][2] = { { 0, 0 }, { 1, 1 }, { 5, 7 }, { 32, 17 }, { 200, 3 } };

/* Runs engine e on t into t->o; checks it returns every byte it took. */
static void run_engine(enum flash_engine e, const struct attn_problem *p, struct tensors *t)
{
	size_t live = memory_live_bytes();

	assert_int_equal(flash_forward_on(e, p, t->q, t->k, t->v, t->o), 0);
	assert_int_equal(memory_live_bytes(), live);
}

/* Engine e with each group size 1 to 4 gives t->o (forward()'s group) bit for bit. */
static void check_groups(enum flash_engine e, const struct attn_problem *p,
			 const struct tensors *t)
{
	float *o = malloc(sizeof(float) * t->nq);

	assert_non_null(o);
	for (int group = 1; group <= 4; group++) {
		assert_int_equal(flash_forward_grouped(e, group, p, t->q, t->k, t->v, o), 0);
		assert_memory_equal(o, t->o, sizeof(float) * t->nq);
	}
	assert_int_equal(flash_forward_grouped(e, 5, p, t->q, t->k, t->v, o), -ENOTSUP);
	free(o);
}

/* Problems each engine ran, and its largest error against the fp64 loop. */
struct tally {
	int checked[3];
	double worst[3];
};

static void check_shape(const struct attn_problem *p, struct tally *tally)
{
	struct tensors t;
	double *ref = reference_make(&t, p, VARIANT_TEST_SEED + (uint64_t)p->n * 131 + p->d);
	float *avx2 = NULL;

	reference(p, &t, ref);
	for (int e = FLASH_ENGINE_BLAS; e <= FLASH_ENGINE_AVX512; e++) {
		double err;

		if (!flash_engine_handles(e, p->d)) {
			assert_int_equal(flash_forward_on(e, p, t.q, t.k, t.v, t.o), -ENOTSUP);
			continue;
		}
		run_engine(e, p, &t);
		err = error_vs_double(t.o, ref, t.nq);
		check_error(variant_must_find("flash"), p, err, TOLERANCE, " engine %s block %g x %g",
			    engine_names[e], p->params ? p->params[0] : 0,
			    p->params ? p->params[1] : 0);
		tally->checked[e]++;
		tally->worst[e] = fmax(tally->worst[e], err);
		if (e != FLASH_ENGINE_BLAS)
			check_groups(e, p, &t);
		if (e == FLASH_ENGINE_AVX2) {
			avx2 = malloc(sizeof(float) * t.nq);
			assert_non_null(avx2);
			memcpy(avx2, t.o, sizeof(float) * t.nq);
		} else if (e == FLASH_ENGINE_AVX512 && avx2) {
			assert_memory_equal(t.o, avx2, sizeof(float) * t.nq);
		}
	}
	free(avx2);
	free(ref);
	tensors_release(&t);
}

static void test_engines_agree(void **state)
{
	struct tally tally = { { 0 }, { 0 } };

	(void)state;
	for (size_t s = 0; s < COUNT(shapes); s++)
		for (size_t di = 0; di < COUNT(head_dims); di++)
			for (size_t bi = 0; bi < COUNT(blocks); bi++) {
				int kv = s % 2 ? 2 : 4;
				const double *params = blocks[bi][0] > 0 ? blocks[bi] : NULL;
				struct attn_problem p = problem(2, 4, kv, shapes[s].n, shapes[s].m,
								head_dims[di], shapes[s].pattern,
								params);

				check_shape(&p, &tally);
			}
	for (int e = FLASH_ENGINE_BLAS; e <= FLASH_ENGINE_AVX512; e++)
		if (tally.checked[e])
			printf("flash engine %-6s checked on %d problems, largest error %.3g\n",
			       engine_names[e], tally.checked[e], tally.worst[e]);
		else
			printf("flash engine %-6s not in this build: skipped\n", engine_names[e]);
	assert_true(tally.checked[FLASH_ENGINE_BLAS] > 0);
}

/* forward() takes the widest engine that handles d, and refuses nothing flash accepts. */
static void test_forward_takes_the_widest(void **state)
{
	(void)state;
	for (int d = 1; d <= 130; d++) {
		enum flash_engine e = flash_engine_for(d);

		assert_true(flash_engine_handles(e, d));
		for (int wider = e + 1; wider <= FLASH_ENGINE_AVX512; wider++)
			assert_false(flash_engine_handles(wider, d));
	}
	assert_int_equal(flash_engine_for(7), FLASH_ENGINE_BLAS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_engines_agree),
		cmocka_unit_test(test_forward_takes_the_widest),
	};

	threads_set(2);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
