/*
 * passkey.c - a needle in a haystack at the operator level, after Landmark Attention's
 * passkey test (SPEC section 4).
 *
 * Each KV slice is one trial (the query heads that share it ask it one question): a
 * haystack that repeats a "sentence" of filler tokens, one needle token at the cell's
 * depth whose key is a marker and whose value is the code of a digit, and a few
 * distractors whose keys half-match the marker and whose values are other digits. The
 * probe query carries the marker: the last position for self patterns, the last query
 * row for cross ones (the haystack is then the key/value source). The answer is the
 * digit whose code is nearest to the probe's output row.
 *
 * Sharpness: the probe scores the needle at PASSKEY_SHARPNESS logits and every filler at
 * exactly 0 (filler keys are orthogonal to the marker). With L fillers the needle keeps
 * e^s / (e^s + L) of the weight; s = ln(65536) + 5 = 16 keeps at least 99% at 65,536
 * positions, so exact attention decodes every trial right at every length up to 65,536
 * in float32, and the distractors (logit 8 each) take under 0.1%.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inputs.h"
#include "task.h"

#define PASSKEY_DIGITS 10
#define PASSKEY_FILLERS 8		/* tokens in the repeated filler sentence */
#define PASSKEY_SHARPNESS 16.0		/* needle logit; see the top of the file */
#define PASSKEY_DISTRACTORS 3
#define PASSKEY_DISTRACTOR_MATCH 0.5	/* cosine of a distractor key with the marker */
#define PASSKEY_MAX_DIM 1024		/* the largest head dimension a suite accepts */

/* Depths from 0 (first position) to 1 (just before the probe), as regimes. */
static const char *const passkey_depths[] = {
	"0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1", NULL,
};

/* What one trial (one KV slice) holds, besides the codes shared by the cell. */
struct haystack {
	float marker[PASSKEY_MAX_DIM];
	float fillers[PASSKEY_FILLERS][PASSKEY_MAX_DIM];
	float filler_keys[PASSKEY_FILLERS][PASSKEY_MAX_DIM];	/* kappa times fillers */
	float filler_values[PASSKEY_FILLERS][PASSKEY_MAX_DIM];
	int distractor_at[PASSKEY_DISTRACTORS];			/* -1: lost */
	int distractor_digit[PASSKEY_DISTRACTORS];
	float distractor_keys[PASSKEY_DISTRACTORS][PASSKEY_MAX_DIM];
	int digit;
};

/*
 * Draws what one KV slice of m keys holds into h (h->digit set): every random choice of
 * the slice, in the stream's order, so that laying the slices out can go in parallel.
 */
static void draw_haystack(struct rng *r, int m, int d, int needle, double kappa,
			  struct haystack *h, int avoid)
{
	double match = PASSKEY_DISTRACTOR_MATCH, off = sqrt(1 - match * match);
	float away[PASSKEY_MAX_DIM];

	random_unit(r, h->marker, d);
	for (int f = 0; f < PASSKEY_FILLERS; f++) {
		orthogonal_unit(r, h->fillers[f], h->marker, d);
		rng_normals(r, h->filler_values[f], (size_t)d, 1 / sqrt(d));
		for (int c = 0; c < d; c++)
			h->filler_keys[f][c] = (float)(kappa * h->fillers[f][c]);
	}
	for (int i = 0; i < PASSKEY_DISTRACTORS; i++) {
		int j, wrong;

		h->distractor_at[i] = -1;
		if (m <= 2)
			continue;
		j = (int)rng_below(r, (uint64_t)m);
		wrong = (h->digit + 1 + (int)rng_below(r, PASSKEY_DIGITS - 1)) % PASSKEY_DIGITS;
		if (j == needle || j == avoid)
			continue;	/* a lost distractor only makes the test easier */
		orthogonal_unit(r, away, h->marker, d);
		for (int c = 0; c < d; c++)
			h->distractor_keys[i][c] = (float)(kappa * (match * h->marker[c] +
								    off * away[c]));
		h->distractor_at[i] = j;
		h->distractor_digit[i] = wrong;
	}
}

/* Keys and values of one KV slice from h: filler rows, then distractors, the needle. */
static void lay_out_haystack(const struct haystack *h, int m, int d, int needle,
			     double kappa, const float *codes, float *k, float *v)
{
	size_t row = sizeof(float) * (size_t)d;

	/* rows repeat every PASSKEY_FILLERS: copies, as 65,536-key haystacks need */
	for (int j = 0; j < m; j++) {
		memcpy(k + (size_t)j * d, h->filler_keys[j % PASSKEY_FILLERS], row);
		memcpy(v + (size_t)j * d, h->filler_values[j % PASSKEY_FILLERS], row);
	}
	for (int i = 0; i < PASSKEY_DISTRACTORS; i++) {
		int j = h->distractor_at[i];

		if (j < 0)
			continue;
		memcpy(k + (size_t)j * d, h->distractor_keys[i], row);
		memcpy(v + (size_t)j * d, codes + (size_t)h->distractor_digit[i] * d, row);
	}
	for (int c = 0; c < d; c++) {
		k[(size_t)needle * d + c] = (float)(kappa * h->marker[c]);
		v[(size_t)needle * d + c] = codes[(size_t)h->digit * d + c];
	}
}

static int passkey_run(const struct cell *c, struct cell_result *r)
{
	struct attn_problem p = cell_problem(c);
	bool self = pattern_is_self(p.pattern);
	int d = p.d, group = p.heads / p.kv_heads, slices = p.batch * p.kv_heads;
	int probe = p.n - 1, right = 0, trials = 0, ret;
	double depth = atof(c->regime), state;
	/* q.k / sqrt(d) = kappa^2 / sqrt(d) = sharpness for the marker */
	double kappa = sqrt(PASSKEY_SHARPNESS * sqrt(d));
	/* self: depth 1 is the position just before the probe */
	int needle = (int)lround(depth * (self ? p.m - 2 : p.m - 1));
	float *q, *k, *v, *o, codes[PASSKEY_DIGITS * PASSKEY_MAX_DIM];
	struct haystack *h;
	struct rng g;

	if (d < 2 || d > PASSKEY_MAX_DIM || p.m < 2) {
		result_status(r, CELL_UNSUPPORTED, "passkey needs 2 <= d <= %d and 2 keys or more",
			      PASSKEY_MAX_DIM);
		return 0;
	}
	ret = tensors_alloc(&p, &q, &k, &v, &o);
	if (ret)
		return ret;
	h = malloc(sizeof(*h) * (size_t)slices);
	if (!h) {
		ret = -ENOMEM;
		goto out_free;
	}
	rng_seed(&g, c->seed);
	for (int i = 0; i < PASSKEY_DIGITS; i++)
		random_unit(&g, codes + (size_t)i * d, d);
	for (int s = 0; s < slices; s++) {
		h[s].digit = s % PASSKEY_DIGITS;	/* ten trials: each digit once */
		draw_haystack(&g, p.m, d, needle, kappa, &h[s], self ? probe : -1);
	}
	/* hundreds of MB at 65,536 keys: laid out on every thread */
	#pragma omp parallel for schedule(dynamic)
	for (int s = 0; s < slices; s++) {
		int b = s / p.kv_heads, kvh = s % p.kv_heads;
		size_t kv = (size_t)s * p.m * d;

		lay_out_haystack(&h[s], p.m, d, needle, kappa, codes, k + kv, v + kv);
		for (int hh = kvh * group; hh < (kvh + 1) * group; hh++) {
			float *qs = q + problem_q_offset(&p, b, hh);

			/* Other rows ask about filler tokens; the probe asks for the marker. */
			for (int i = 0; i < p.n; i++)
				memcpy(qs + (size_t)i * d, h[s].filler_keys[i % PASSKEY_FILLERS],
				       sizeof(float) * (size_t)d);
			for (int x = 0; x < d; x++)
				qs[(size_t)probe * d + x] = (float)(kappa * h[s].marker[x]);
		}
	}
	ret = tensors_seal(q, k, v);
	if (ret)
		goto out_free_h;
	ret = c->variant->forward(&p, q, k, v, o);
	if (ret || !tensors_check_guards(r) || !result_check_finite(r, "output", &p, o, 0, p.n))
		goto out_free_h;
	/*
	 * One trial per KV slice, its digit s % 10. The query heads of a group ask the same
	 * question of the same haystack, so they are one trial, not `group` of them (counted
	 * apart they would narrow Wilson's interval and inflate McNemar's): the group's
	 * first head answers for it.
	 */
	for (int b = 0; b < p.batch; b++)
		for (int kvh = 0; kvh < p.kv_heads; kvh++) {
			const float *row = o + problem_q_offset(&p, b, kvh * group) +
					   (size_t)probe * d;
			int digit = (b * p.kv_heads + kvh) % PASSKEY_DIGITS;
			bool ok = nearest_code(row, codes, PASSKEY_DIGITS, d) == digit;

			ret = result_trial(r, ok);
			if (ret)
				goto out_free_h;
			right += ok;
			trials++;
		}
	result_metric(r, "accuracy", (double)right / trials, "");
	result_metric(r, "trials", trials, "");
	result_metric(r, "depth", depth, "");
	result_metric(r, "needle_position", needle, "");
	result_metric(r, "chance", 1.0 / PASSKEY_DIGITS, "");
	result_metric(r, "sharpness", PASSKEY_SHARPNESS, "");
	result_metric(r, "distractors", PASSKEY_DISTRACTORS, "");
	state = problem_state_bytes(c->variant, &p);
	if (state >= 0)
		result_metric(r, "state_bytes", state, "B");
out_free_h:
	free(h);
out_free:
	tensors_free(q, k, v, o);
	return ret;
}

const struct task_ops passkey_task = {
	.name = "passkey",
	.summary = "find one needle (a digit) in a haystack of fillers, by length and depth",
	.patterns = PATTERNS_ALL,
	.regimes = passkey_depths,
	.regime_kind = "needle depths",
	.run = passkey_run,
};
