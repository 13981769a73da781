/*
 * variant-test.h - what the variant tests share: the awkward shapes, seeded inputs,
 * problems, tensors, running a variant under the allocator's eye, error measures, the
 * check of an output against an fp64 one, the GQA-as-MHA check and the decode-vs-forward
 * check.
 * Every test-<variant>.c includes it after cmocka.h.
 */
#ifndef ATTNBENCH_VARIANT_TEST_H
#define ATTNBENCH_VARIANT_TEST_H

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memory.h"
#include "variant.h"

/* The seed of every problem(): variants draw their random objects from it. */
#define VARIANT_TEST_SEED 20240601u

#define SEED VARIANT_TEST_SEED

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* The awkward shapes (spec): one row, sizes off a power of two by one either way. */
static const int sizes[] = { 1, 17, 63, 257 };
/* Cross attention (n, m): fewer keys than queries, more, and far more. */
static const int cross[][2] = { { 17, 63 }, { 257, 17 }, { 63, 257 } };
/* 12 is not a multiple of 8: it takes the kernels' portable paths (flash's among them). */
static const int dims[] = { 8, 64, 12 };
/* KV heads for 4 query heads: MHA, GQA and MQA. */
static const int kv_choices[] = { 4, 2, 1 };

/* The registered variant called name; a missing one fails the test. */
static inline const struct variant_ops *variant_must_find(const char *name)
{
	const struct variant_ops *v = variant_find(name);

	assert_non_null(v);
	return v;
}

struct rng {
	uint64_t state;
};

static inline uint64_t rng_next(struct rng *g)
{
	uint64_t z = (g->state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in (0, 1). */
static inline double rng_uniform(struct rng *g)
{
	return ((rng_next(g) >> 11) + 0.5) / 9007199254740992.0;
}

static inline double rng_normal(struct rng *g)
{
	double u = rng_uniform(g), v = rng_uniform(g);

	/* Box-Muller; 2 pi spelled out, as C11 has no M_PI. */
	return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

struct tensors {
	float *q, *k, *v, *o;
	size_t nq, nkv;		/* floats in Q (and O), in K (and V) */
};

static inline struct attn_problem problem(int batch, int heads, int kv_heads, int n, int m, int d,
				   enum attn_pattern pattern, const double *params)
{
	struct attn_problem p = {
		.batch		= batch,
		.heads		= heads,
		.kv_heads	= kv_heads,
		.n		= n,
		.m		= m,
		.d		= d,
		.pattern	= pattern,
		.seed		= VARIANT_TEST_SEED,
		.params		= params,
	};

	return p;
}

/*
 * A walk over the awkward shapes of one pattern, batch 2 and 4 query heads: n and m over
 * sizes (n = m for self attention, n != m for cross), then each of dims and kv_choices.
 * The order is fixed, so a seed drawn per shape stays with its shape. Start from { 0 }.
 */
struct shape_walk {
	int a, b, di, kv;	/* indices of n and m in sizes, of d in dims, into kv_choices */
	int step;
};

/* Fills p with the next shape of pattern and returns true; false after the last. */
static inline bool shape_walk_next(struct shape_walk *w, enum attn_pattern pattern,
				   const double *params, struct attn_problem *p)
{
	while (w->step < COUNT(sizes) * COUNT(sizes) * COUNT(dims) * COUNT(kv_choices)) {
		int s = w->step++;

		w->kv = s % COUNT(kv_choices);
		s /= COUNT(kv_choices);
		w->di = s % COUNT(dims);
		s /= COUNT(dims);
		w->b = s % COUNT(sizes);
		w->a = s / COUNT(sizes);
		if (pattern_is_self(pattern) != (w->a == w->b))
			continue;
		*p = problem(2, 4, kv_choices[w->kv], sizes[w->a], sizes[w->b], dims[w->di],
			     pattern, params);
		return true;
	}
	return false;
}

/*
 * The landmark variants' walk (lara, nystrom): for each of dims and kv_choices, ns over
 * sizes, then nc over the pairs of cross. Fills p with the next problem and returns
 * true; false after the last. Start from { 0 }.
 */
static inline bool landmark_walk_next(struct shape_walk *w, const double *params,
				      struct attn_problem *p)
{
	int per = COUNT(sizes) + COUNT(cross), s = w->step, i = s % per;

	if (s >= COUNT(dims) * COUNT(kv_choices) * per)
		return false;
	w->step++;
	s /= per;
	w->kv = s % COUNT(kv_choices);
	w->di = s / COUNT(kv_choices);
	if (i < COUNT(sizes))
		*p = problem(2, 4, kv_choices[w->kv], sizes[i], sizes[i], dims[w->di], ATTN_NS,
			     params);
	else
		*p = problem(2, 4, kv_choices[w->kv], cross[i - COUNT(sizes)][0],
			     cross[i - COUNT(sizes)][1], dims[w->di], ATTN_NC, params);
	return true;
}

static inline void fill_normal(struct rng *g, float *x, size_t count, double scale)
{
	for (size_t i = 0; i < count; i++)
		x[i] = (float)(scale * rng_normal(g));
}

/* Q, K, V drawn N(0, scale^2) from seed; O allocated. */
static inline void tensors_make(struct tensors *t, const struct attn_problem *p, uint64_t seed,
			 double scale)
{
	struct rng g = { seed };

	t->nq = (size_t)p->batch * p->heads * p->n * p->d;
	t->nkv = (size_t)p->batch * p->kv_heads * p->m * p->d;
	t->q = malloc(sizeof(float) * t->nq);
	t->k = malloc(sizeof(float) * t->nkv);
	t->v = malloc(sizeof(float) * t->nkv);
	t->o = malloc(sizeof(float) * t->nq);
	assert_non_null(t->q);
	assert_non_null(t->k);
	assert_non_null(t->v);
	assert_non_null(t->o);
	fill_normal(&g, t->q, t->nq, scale);
	fill_normal(&g, t->k, t->nkv, scale);
	fill_normal(&g, t->v, t->nkv, scale);
}

static inline void tensors_copy(struct tensors *to, const struct tensors *from)
{
	*to = *from;
	to->q = malloc(sizeof(float) * from->nq);
	to->k = malloc(sizeof(float) * from->nkv);
	to->v = malloc(sizeof(float) * from->nkv);
	to->o = malloc(sizeof(float) * from->nq);
	assert_non_null(to->q);
	assert_non_null(to->k);
	assert_non_null(to->v);
	assert_non_null(to->o);
	memcpy(to->q, from->q, sizeof(float) * from->nq);
	memcpy(to->k, from->k, sizeof(float) * from->nkv);
	memcpy(to->v, from->v, sizeof(float) * from->nkv);
}

static inline void tensors_release(struct tensors *t)
{
	free(t->q);
	free(t->k);
	free(t->v);
	free(t->o);
}

/* Runs v on t and insists it succeeds and gives back all its memory. */
static inline void run(const struct variant_ops *v, const struct attn_problem *p, struct tensors *t)
{
	size_t live = memory_live_bytes();

	assert_int_equal(variant_check_problem(v, p), 0);
	assert_int_equal(v->forward(p, t->q, t->k, t->v, t->o), 0);
	assert_int_equal(memory_live_bytes(), live);
}

/* ||o - ref||_F / ||ref||_F (absolute when ref is 0). */
static inline double error_vs_double(const float *o, const double *ref, size_t count)
{
	double diff = 0, norm = 0;

	for (size_t i = 0; i < count; i++) {
		diff += (o[i] - ref[i]) * (o[i] - ref[i]);
		norm += ref[i] * ref[i];
	}
	return norm > 0 ? sqrt(diff / norm) : sqrt(diff);
}

static inline double error_vs_float(const float *o, const float *ref, size_t count)
{
	double diff = 0, norm = 0;

	for (size_t i = 0; i < count; i++) {
		diff += ((double)o[i] - ref[i]) * ((double)o[i] - ref[i]);
		norm += (double)ref[i] * ref[i];
	}
	return norm > 0 ? sqrt(diff / norm) : sqrt(diff);
}

static inline void describe(char *buf, size_t len, const struct variant_ops *v,
		     const struct attn_problem *p)
{
	snprintf(buf, len, "%s %s b=%d h=%d kv=%d n=%d m=%d d=%d", v->name,
		 pattern_name(p->pattern), p->batch, p->heads, p->kv_heads, p->n, p->m, p->d);
}

/* check_error() with its settings as a va_list. */
static inline void check_error_v(const struct variant_ops *v, const struct attn_problem *p,
				 double err, double tolerance, const char *fmt, va_list ap)
{
	char what[160], settings[160];

	if (!(err <= tolerance)) {
		describe(what, sizeof(what), v, p);
		vsnprintf(settings, sizeof(settings), fmt, ap);
		print_error("%s%s: relative error %g\n", what, settings, err);
	}
	assert_true(err <= tolerance);
}

/*
 * Fails unless err <= tolerance; first prints v, p and the settings printf-formatted from
 * fmt ("" when the problem says all), so that a failure says which case it was.
 */
static inline void __attribute__((format(printf, 5, 6)))
check_error(const struct variant_ops *v, const struct attn_problem *p, double err,
	    double tolerance, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	check_error_v(v, p, err, tolerance, fmt, ap);
	va_end(ap);
}

/* Q, K, V drawn N(0, 1) from seed into t, and room for the fp64 output they should give. */
static inline double *reference_make(struct tensors *t, const struct attn_problem *p,
				     uint64_t seed)
{
	double *ref;

	tensors_make(t, p, seed, 1.0);
	ref = malloc(sizeof(double) * t->nq);
	assert_non_null(ref);
	return ref;
}

/*
 * Runs v on t (from reference_make()) and checks its output against ref within tolerance,
 * as check_error() does; frees ref and t.
 */
static inline void __attribute__((format(printf, 6, 7)))
check_output(const struct variant_ops *v, const struct attn_problem *p, struct tensors *t,
	     double *ref, double tolerance, const char *fmt, ...)
{
	va_list ap;

	run(v, p, t);
	va_start(ap, fmt);
	check_error_v(v, p, error_vs_double(t->o, ref, t->nq), tolerance, fmt, ap);
	va_end(ap);
	free(ref);
	tensors_release(t);
}

/*
 * Runs v on gqa, drawn from seed, and on its MHA twin (as many KV heads as query heads,
 * each KV head of gqa repeated for the query heads of its group, the same Q); fails
 * unless the outputs are the same bit for bit (for variants whose grouped heads do the
 * very arithmetic of MHA).
 */
static inline void check_gqa_is_mha_bit_for_bit(const struct variant_ops *v,
						const struct attn_problem *gqa, uint64_t seed)
{
	struct attn_problem mha = *gqa;
	size_t slice = (size_t)gqa->m * gqa->d;
	struct tensors g, h;

	mha.kv_heads = mha.heads;
	tensors_make(&g, gqa, seed, 1.0);
	tensors_make(&h, &mha, VARIANT_TEST_SEED, 1.0);
	memcpy(h.q, g.q, sizeof(float) * g.nq);
	for (int b = 0; b < gqa->batch; b++)
		for (int hd = 0; hd < gqa->heads; hd++) {
			size_t from = problem_kv_offset(gqa, b, hd);
			size_t to = problem_kv_offset(&mha, b, hd);

			memcpy(h.k + to, g.k + from, sizeof(float) * slice);
			memcpy(h.v + to, g.v + from, sizeof(float) * slice);
		}
	run(v, gqa, &g);
	run(v, &mha, &h);
	assert_memory_equal(g.o, h.o, sizeof(float) * g.nq);
	tensors_release(&g);
	tensors_release(&h);
}

/*
 * What the landmark variants (lara, nystrom; C = 16 by default) accept: cs and cc are
 * refused; nc needs C rows of queries and of keys, so 15 x 63 passes only with a smaller
 * C (params sets C = 8); ns of any length, short ones exact.
 */
static inline void check_landmark_refusals(const struct variant_ops *v, const double *params)
{
	static const struct {
		int n, m;
		enum attn_pattern pattern;
		bool with_params;
		int ret;
	} cases[] = {
		{ 63, 63, ATTN_CS, false, -ENOTSUP },
		{ 63, 63, ATTN_CC, false, -ENOTSUP },
		{ 15, 63, ATTN_NC, false, -ENOTSUP },
		{ 63, 15, ATTN_NC, false, -ENOTSUP },
		{ 16, 16, ATTN_NC, false, 0 },
		{ 15, 63, ATTN_NC, true, 0 },
		{ 3, 3, ATTN_NS, false, 0 },
	};

	for (int i = 0; i < COUNT(cases); i++) {
		struct attn_problem p = problem(1, 2, 2, cases[i].n, cases[i].m, 16,
						cases[i].pattern,
						cases[i].with_params ? params : NULL);

		assert_int_equal(variant_check_problem(v, &p), cases[i].ret);
	}
}

/* A step sums in another order than the full pass; the spec's bound for decode. */
#define DECODE_TOLERANCE 1e-5

/* One position of every slice: Q and O [batch][heads][d], K and V [batch][kv_heads][d]. */
struct step_rows {
	float *q, *k, *v, *o;
};

static inline void step_rows_make(struct step_rows *r, const struct attn_problem *p)
{
	r->q = malloc(sizeof(float) * p->batch * p->heads * p->d);
	r->k = malloc(sizeof(float) * p->batch * p->kv_heads * p->d);
	r->v = malloc(sizeof(float) * p->batch * p->kv_heads * p->d);
	r->o = malloc(sizeof(float) * p->batch * p->heads * p->d);
	assert_non_null(r->q);
	assert_non_null(r->k);
	assert_non_null(r->v);
	assert_non_null(r->o);
}

static inline void step_rows_release(struct step_rows *r)
{
	free(r->q);
	free(r->k);
	free(r->v);
	free(r->o);
}

/* Copies position t of every slice of x (slices of `rows` rows of d) into to[slices][d]. */
static inline void gather_position(float *to, const float *x, size_t slices, int rows, int d,
			    int t)
{
	for (size_t s = 0; s < slices; s++)
		memcpy(to + s * d, x + (s * rows + t) * d, sizeof(float) * d);
}

static inline void gather_step(struct step_rows *r, const struct attn_problem *p,
			const struct tensors *t, int pos)
{
	gather_position(r->q, t->q, (size_t)p->batch * p->heads, p->n, p->d, pos);
	gather_position(r->k, t->k, (size_t)p->batch * p->kv_heads, p->m, p->d, pos);
	gather_position(r->v, t->v, (size_t)p->batch * p->kv_heads, p->m, p->d, pos);
}

/* Largest |step - row t of the full pass|, relative to the row's largest magnitude. */
static inline double step_error(const struct attn_problem *p, const float *step, const float *full,
			 int t)
{
	double diff = 0, scale = 0;

	for (size_t s = 0; s < (size_t)p->batch * p->heads; s++)
		for (int c = 0; c < p->d; c++) {
			double a = step[s * p->d + c], b = full[(s * p->n + t) * p->d + c];

			diff = fmax(diff, fabs(a - b));
			scale = fmax(scale, fabs(b));
			if (!isfinite(a))
				diff = INFINITY;
		}
	return scale > 0 ? diff / scale : diff;
}

/*
 * Feeds every position of a fresh draw through v's decoder, comparing each step with the
 * same row of forward() in cs; a step past the capacity must fail with -ENOSPC, and
 * decode_free() must give back all the memory.
 */
static inline void check_decode(const struct variant_ops *v, const struct attn_problem *p,
			 uint64_t seed)
{
	size_t live = memory_live_bytes(), row = (size_t)p->batch * p->heads * p->d;
	float *stepped = malloc(sizeof(float) * row * p->n);
	struct step_rows r;
	struct tensors t;
	void *dec = NULL;
	char what[160];

	assert_non_null(stepped);
	tensors_make(&t, p, seed, 1.0);
	step_rows_make(&r, p);
	run(v, p, &t);
	assert_int_equal(v->decode_init(p, &dec), 0);
	assert_non_null(dec);
	for (int i = 0; i < p->n; i++) {
		double err;

		gather_step(&r, p, &t, i);
		assert_int_equal(v->decode_step(dec, r.q, r.k, r.v, r.o), 0);
		memcpy(stepped + row * i, r.o, sizeof(float) * row);
		err = step_error(p, r.o, t.o, i);
		if (!(err <= DECODE_TOLERANCE)) {
			describe(what, sizeof(what), v, p);
			print_error("%s: step %d differs from the forward row by %g\n",
				    what, i, err);
		}
		assert_true(err <= DECODE_TOLERANCE);
	}
	assert_int_equal(v->decode_step(dec, r.q, r.k, r.v, r.o), -ENOSPC);
	v->decode_free(dec);

	/* a prefilled prefix leaves the state its steps leave: the later steps bit for bit */
	for (int x = 0; v->decode_prefill && x < 3; x++) {
		int fed = (int)((long)p->n * x / 2);

		assert_int_equal(v->decode_init(p, &dec), 0);
		assert_int_equal(v->decode_prefill(dec, t.k, t.v, p->m, fed), 0);
		if (fed)	/* a state already fed takes no prompt */
			assert_int_equal(v->decode_prefill(dec, t.k, t.v, p->m, fed), -EINVAL);
		for (int i = fed; i < p->n; i++) {
			gather_step(&r, p, &t, i);
			assert_int_equal(v->decode_step(dec, r.q, r.k, r.v, r.o), 0);
			assert_memory_equal(r.o, stepped + row * i, sizeof(float) * row);
		}
		assert_int_equal(v->decode_step(dec, r.q, r.k, r.v, r.o), -ENOSPC);
		v->decode_free(dec);
	}
	if (v->decode_prefill) {
		assert_int_equal(v->decode_init(p, &dec), 0);
		assert_int_equal(v->decode_prefill(dec, t.k, t.v, p->m + 1, p->n + 1), -ENOSPC);
		v->decode_free(dec);
	}
	assert_int_equal(memory_live_bytes(), live);
	free(stepped);
	step_rows_release(&r);
	tensors_release(&t);
}

/* Largest change of rows <= t over all slices, relative to their largest magnitude. */
static inline double change_up_to(const struct attn_problem *p, const float *a, const float *b, int t)
{
	double change = 0, scale = 0;

	for (size_t s = 0; s < (size_t)p->batch * p->heads; s++)
		for (int i = 0; i <= t; i++)
			for (int c = 0; c < p->d; c++) {
				size_t at = (s * p->n + i) * p->d + c;

				change = fmax(change, fabs((double)a[at] - b[at]));
				scale = fmax(scale, fabs((double)a[at]));
			}
	return scale > 0 ? change / scale : change;
}

static inline void perturb_rows_after(struct rng *g, float *x, size_t slices, int rows, int d, int t)
{
	for (size_t s = 0; s < slices; s++)
		fill_normal(g, x + (s * rows + t + 1) * d, (size_t)(rows - t - 1) * d, 3.0);
}

/* Allocator peak over decode_init() and n steps of random positions, freed after. */
static inline size_t decode_peak(const struct variant_ops *v, const struct attn_problem *p)
{
	size_t live = memory_live_bytes(), peak;
	struct step_rows r;
	struct rng g = { VARIANT_TEST_SEED };
	void *dec;

	step_rows_make(&r, p);
	memory_reset_peak();
	assert_int_equal(v->decode_init(p, &dec), 0);
	for (int t = 0; t < p->n; t++) {
		fill_normal(&g, r.q, (size_t)p->batch * p->heads * p->d, 1.0);
		fill_normal(&g, r.k, (size_t)p->batch * p->kv_heads * p->d, 1.0);
		fill_normal(&g, r.v, (size_t)p->batch * p->kv_heads * p->d, 1.0);
		assert_int_equal(v->decode_step(dec, r.q, r.k, r.v, r.o), 0);
	}
	peak = memory_peak_bytes() - live;
	v->decode_free(dec);
	assert_int_equal(memory_live_bytes(), live);
	step_rows_release(&r);
	return peak;
}


#endif
