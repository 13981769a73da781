/*
 * recall.c - multi-query associative recall at the operator level, after Zoology's MQAR
 * (SPEC section 4): can a variant fetch many facts at once from far back?
 *
 * Each KV slice is one trial: P key/value pairs (random unit keys, values drawn from a
 * codebook), then filler tokens, then queries that each repeat the key of a random pair;
 * a query's output must decode (nearest code) to that pair's value. Self patterns hold
 * pairs, gap and the RECALL_QUERIES queries in one sequence of the cell's length, so the
 * gap is n - P - queries (long range: pairs at the start, queries at the end). Cross
 * patterns take the pairs and fillers as the key/value source (m) and every query row
 * as a query.
 *
 * A query scores its pair at RECALL_SHARPNESS logits (as passkey). Other pairs score
 * sharpness times the cosine of two random unit keys, about N(0, sharpness^2 / d); fillers
 * have a quarter of the key norm. That leaves exact attention above 99% up to P = 1024 at
 * d = 64, while a d x d recurrent state must lose recall once P grows past d.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "inputs.h"
#include "task.h"

#define RECALL_CODES 64			/* codebook of values: chance is 1/64 */
#define RECALL_QUERIES 32		/* queries per self-pattern trial */
#define RECALL_SHARPNESS 16.0		/* logit of a query on its own pair */
#define RECALL_FILLER_NORM 0.25		/* filler keys, relative to pair keys */

/* Pair counts, as regimes. */
static const char *const recall_pairs[] = {
	"16", "32", "64", "128", "256", "512", "1024", NULL,
};

/* A random vector of the given length. */
static void random_scaled(struct rng *r, float *x, int d, double length)
{
	random_unit(r, x, d);
	for (int c = 0; c < d; c++)
		x[c] = (float)(x[c] * length);
}

static int recall_run(const struct cell *c, struct cell_result *r)
{
	struct attn_problem p = cell_problem(c);
	bool self = pattern_is_self(p.pattern);
	int pairs = atoi(c->regime), d = p.d, group = p.heads / p.kv_heads;
	int queries = self ? RECALL_QUERIES : p.n, first_query = self ? p.n - queries : 0;
	double kappa = sqrt(RECALL_SHARPNESS * sqrt(d)), state;
	float *q, *k, *v, *o, *codes;
	int *target = NULL, *value_of = NULL;	/* per query row / per pair, one slice */
	long right = 0, trials = 0;
	struct rng g;
	int ret;

	if (p.m < pairs + (self ? queries : 0)) {
		result_status(r, CELL_UNSUPPORTED, "%d keys cannot hold %d pairs%s", p.m, pairs,
			      self ? " and the queries" : "");
		return 0;
	}
	ret = tensors_alloc(&p, &q, &k, &v, &o);
	if (ret)
		return ret;
	codes = malloc(sizeof(*codes) * RECALL_CODES * d);
	target = malloc(sizeof(*target) * (size_t)p.batch * p.heads * queries);
	value_of = malloc(sizeof(*value_of) * (size_t)pairs);
	if (!codes || !target || !value_of) {
		ret = -ENOMEM;
		goto out_free;
	}
	rng_seed(&g, c->seed);
	for (int i = 0; i < RECALL_CODES; i++)
		random_unit(&g, codes + (size_t)i * d, d);

	for (int s = 0; s < p.batch * p.kv_heads; s++) {
		int b = s / p.kv_heads, kvh = s % p.kv_heads;
		float *ks = k + (size_t)s * p.m * d, *vs = v + (size_t)s * p.m * d;

		for (int j = 0; j < p.m; j++) {
			float *key = ks + (size_t)j * d, *val = vs + (size_t)j * d;

			if (j < pairs) {
				value_of[j] = (int)rng_below(&g, RECALL_CODES);
				random_scaled(&g, key, d, kappa);
				memcpy(val, codes + (size_t)value_of[j] * d, sizeof(*val) * d);
			} else {
				random_scaled(&g, key, d, kappa * RECALL_FILLER_NORM);
				for (int x = 0; x < d; x++)
					val[x] = (float)(rng_normal(&g) / sqrt(d));
			}
		}
		for (int hh = kvh * group; hh < (kvh + 1) * group; hh++) {
			float *qs = q + problem_q_offset(&p, b, hh);

			for (int i = 0; i < p.n; i++) {
				int t = i - first_query, pair;

				if (t < 0) {	/* a pair or filler token's own query */
					random_scaled(&g, qs + (size_t)i * d, d,
						      kappa * RECALL_FILLER_NORM);
					continue;
				}
				pair = (int)rng_below(&g, (uint64_t)pairs);
				target[((size_t)b * p.heads + hh) * queries + t] = value_of[pair];
				for (int x = 0; x < d; x++)
					qs[(size_t)i * d + x] = ks[(size_t)pair * d + x];
			}
		}
	}
	ret = c->variant->forward(&p, q, k, v, o);
	if (ret || !result_check_finite(r, "output", &p, o, 0, p.n))
		goto out_free;
	for (int b = 0; b < p.batch; b++)
		for (int hh = 0; hh < p.heads; hh++)
			for (int t = 0; t < queries; t++) {
				const float *row = o + problem_q_offset(&p, b, hh) +
						   (size_t)(first_query + t) * d;
				bool ok = nearest_code(row, codes, RECALL_CODES, d) ==
					  target[((size_t)b * p.heads + hh) * queries + t];

				ret = result_trial(r, ok);
				if (ret)
					goto out_free;
				right += ok;
				trials++;
			}
	result_metric(r, "accuracy", (double)right / (double)trials, "");
	result_metric(r, "trials", (double)trials, "");
	result_metric(r, "pairs", pairs, "");
	result_metric(r, "gap", self ? p.n - pairs - queries : p.m - pairs, "");
	result_metric(r, "chance", 1.0 / RECALL_CODES, "");
	state = problem_state_bytes(c->variant, &p);
	if (state >= 0)
		result_metric(r, "state_bytes", state, "B");
out_free:
	free(codes);
	free(target);
	free(value_of);
	tensors_free(q, k, v, o);
	return ret;
}

const struct task_ops recall_task = {
	.name = "recall",
	.summary = "recall many key/value pairs at once from far back (MQAR), by pairs and d",
	.patterns = PATTERNS_ALL,
	.regimes = recall_pairs,
	.regime_kind = "pair counts",
	.run = recall_run,
};
