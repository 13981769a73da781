/*
 * reference.c - exact softmax attention in double precision: the oracle every variant
 * is checked against.
 *
 * Written for obviousness, not speed: one query row at a time, scores recomputed in a
 * second pass instead of stored, so the oracle needs no memory and cannot fail. The
 * masked oracle walks a row's keys span by span in the same way; its only memory is the
 * list of spans.
 */
#include "variant.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

static double dot(const float *a, const float *b, int d)
{
	double s = 0;

	for (int c = 0; c < d; c++)
		s += (double)a[c] * (double)b[c];
	return s;
}

/* Number of keys row i may see: cs sees keys 0..i, every other pattern all m keys. */
static int visible_keys(const struct attn_problem *p, int i)
{
	if (p->pattern == ATTN_CS)
		return i + 1 < p->m ? i + 1 : p->m;
	return p->m;
}

/* One query row q against keys/values k, v (m rows of d); writes d outputs. */
static void reference_row(const struct attn_problem *p, const float *q, const float *k,
			  const float *v, int keys, double *out)
{
	double scale = 1.0 / sqrt((double)p->d);
	double max = -INFINITY, sum = 0;

	for (int c = 0; c < p->d; c++)
		out[c] = 0;
	if (keys <= 0)
		return;
	for (int j = 0; j < keys; j++) {
		double s = scale * dot(q, k + (size_t)j * p->d, p->d);

		if (s > max)
			max = s;
	}
	for (int j = 0; j < keys; j++) {
		double w = exp(scale * dot(q, k + (size_t)j * p->d, p->d) - max);

		sum += w;
		for (int c = 0; c < p->d; c++)
			out[c] += w * v[(size_t)j * p->d + c];
	}
	for (int c = 0; c < p->d; c++)
		out[c] /= sum;
}

void reference_attention(const struct attn_problem *p, const float *q, const float *k,
			 const float *v, double *out)
{
	/* Rows are independent: threads only share out the work, results are identical. */
	#pragma omp parallel for collapse(3) schedule(dynamic, 16)
	for (int b = 0; b < p->batch; b++) {
		for (int h = 0; h < p->heads; h++) {
			for (int i = 0; i < p->n; i++) {
				size_t qo = problem_q_offset(p, b, h);
				size_t kvo = problem_kv_offset(p, b, h);

				reference_row(p, q + qo + (size_t)i * p->d, k + kvo, v + kvo,
					      visible_keys(p, i), out + qo + (size_t)i * p->d);
			}
		}
	}
}

/* One query row against the keys of spans[0..count), as reference_row(). */
static void reference_row_masked(const struct attn_problem *p, const float *q,
				 const float *k, const float *v, const struct key_span *spans,
				 int count, double *out)
{
	double scale = 1.0 / sqrt((double)p->d);
	double max = -INFINITY, sum = 0;

	for (int c = 0; c < p->d; c++)
		out[c] = 0;
	for (int s = 0; s < count; s++)
		for (int j = spans[s].lo; j < spans[s].hi; j++)
			max = fmax(max, scale * dot(q, k + (size_t)j * p->d, p->d));
	if (max == -INFINITY)
		return;
	for (int s = 0; s < count; s++)
		for (int j = spans[s].lo; j < spans[s].hi; j++) {
			double w = exp(scale * dot(q, k + (size_t)j * p->d, p->d) - max);

			sum += w;
			for (int c = 0; c < p->d; c++)
				out[c] += w * v[(size_t)j * p->d + c];
		}
	for (int c = 0; c < p->d; c++)
		out[c] /= sum;
}

int reference_attention_masked(const struct attn_problem *p, attn_mask_fn mask,
			       const float *q, const float *k, const float *v, double *out)
{
	int failed = 0;

	#pragma omp parallel for collapse(2) schedule(dynamic, 1) reduction(|:failed)
	for (int b = 0; b < p->batch; b++) {
		for (int h = 0; h < p->heads; h++) {
			size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);
			struct key_span *spans = NULL;
			int room = 0;

			for (int i = 0; i < p->n && !failed; i++) {
				int count = mask(p, h, i, spans, room);

				if (count > room) {
					free(spans);
					room = count;
					spans = malloc(sizeof(*spans) * (size_t)room);
					if (!spans) {
						failed = 1;
						break;
					}
					mask(p, h, i, spans, room);
				}
				reference_row_masked(p, q + qo + (size_t)i * p->d, k + kvo, v + kvo,
						     spans, count, out + qo + (size_t)i * p->d);
			}
			free(spans);
		}
	}
	return failed ? -ENOMEM : 0;
}
