/*
 * recall.c - multi-query associative recall at the operator level, after Zoology's MQAR
 * (SPEC section 4): can a variant fetch many facts at once from far back?
 *
 * Each KV slice is one haystack, drawn from a stream of its own (the slices in parallel):
 * P key/value pairs (random unit keys, values drawn from a codebook), then filler tokens,
 * then query rows, some of which repeat the key of a pair; such a row's output must
 * decode (nearest code) to that pair's value. Self
 * patterns hold pairs, gap and RECALL_QUERIES query rows in one sequence of the cell's
 * length, so the gap is n - P - RECALL_QUERIES (long range: pairs at the start, queries
 * at the end). Cross patterns take the pairs and fillers as the key/value source (m), and
 * any of the n query rows may ask.
 *
 * A trial is one distinct question: a pair of one haystack. The query rows of a KV
 * group (all its heads) ask distinct pairs, drawn without replacement, in random rows;
 * when the group has more rows than there are pairs, each pair is asked once and the
 * other rows ask nothing, so a cell has batch x kv_heads x min(P, rows x heads /
 * kv_heads) trials. Asked twice, a question would count twice with (nearly) the same
 * outcome, narrowing Wilson's interval and overstating compare's paired McNemar test.
 * Questions of one haystack still share it: distinct, not fully independent.
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
#define RECALL_QUERIES 32		/* query rows per self-pattern sequence */
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

/*
 * Puts take distinct indices of [0, n), drawn uniformly and in random order, in
 * idx[0..take): a partial Fisher-Yates shuffle; idx holds n ints.
 */
static void draw_distinct(struct rng *r, int *idx, int n, int take)
{
	for (int i = 0; i < n; i++)
		idx[i] = i;
	for (int i = 0; i < take; i++) {
		int j = i + (int)rng_below(r, (uint64_t)(n - i)), t = idx[i];

		idx[i] = idx[j];
		idx[j] = t;
	}
}

/* What every slice of a cell shares while its haystack is drawn. */
struct recall_layout {
	const struct attn_problem *p;
	int pairs, rows, first_query, slots, asked;
	double kappa;
	const float *codes;
};

/*
 * Draws KV slice s (batch s / kv_heads) from its own stream: its pairs and fillers into
 * k and v, its group's query rows into q, and into tg (the group's rows, head after
 * head: slot = (head - first head) * rows + t) the value each row asks for, or -1.
 */
static int draw_slice(const struct recall_layout *l, uint64_t seed, int s, float *q, float *k,
		      float *v, int *tg)
{
	const struct attn_problem *p = l->p;
	int d = p->d, group = p->heads / p->kv_heads, b = s / p->kv_heads;
	int kvh = s % p->kv_heads, pairs = l->pairs, rows = l->rows;
	float *ks = k + (size_t)s * p->m * d, *vs = v + (size_t)s * p->m * d;
	int *value_of = malloc(sizeof(*value_of) * (size_t)pairs);
	int *pair_of = malloc(sizeof(*pair_of) * (size_t)pairs);
	int *slot_of = malloc(sizeof(*slot_of) * (size_t)l->slots);
	struct rng g;

	if (!value_of || !pair_of || !slot_of) {
		free(value_of);
		free(pair_of);
		free(slot_of);
		return -ENOMEM;
	}
	rng_seed(&g, seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(s + 1)));
	for (int j = 0; j < p->m; j++) {
		float *key = ks + (size_t)j * d, *val = vs + (size_t)j * d;

		if (j < pairs) {
			value_of[j] = (int)rng_below(&g, RECALL_CODES);
			random_scaled(&g, key, d, l->kappa);
			memcpy(val, l->codes + (size_t)value_of[j] * d, sizeof(*val) * d);
		} else {
			random_scaled(&g, key, d, l->kappa * RECALL_FILLER_NORM);
			rng_normals(&g, val, (size_t)d, 1 / sqrt(d));
		}
	}
	/*
	 * Which pairs the group asks, and in which rows. A pair asked twice of one haystack
	 * is one question (the same row of another head gives the same output, as does
	 * another row of a non-causal pattern), so none is asked twice; rows left over get
	 * filler queries and are not scored.
	 */
	draw_distinct(&g, pair_of, pairs, l->asked);
	draw_distinct(&g, slot_of, l->slots, l->asked);
	for (int t = 0; t < l->slots; t++)
		tg[t] = -1;
	for (int i = 0; i < l->asked; i++) {
		int hh = kvh * group + slot_of[i] / rows, t = slot_of[i] % rows;
		float *row = q + problem_q_offset(p, b, hh) + (size_t)(l->first_query + t) * d;

		tg[slot_of[i]] = value_of[pair_of[i]];
		memcpy(row, ks + (size_t)pair_of[i] * d, sizeof(*row) * d);
	}
	/* every other row: a token's own query, or a row asking nothing */
	for (int hh = kvh * group; hh < (kvh + 1) * group; hh++) {
		float *qs = q + problem_q_offset(p, b, hh);
		const int *th = tg + (size_t)(hh - kvh * group) * rows;

		for (int i = 0; i < p->n; i++)
			if (i < l->first_query || th[i - l->first_query] < 0)
				random_scaled(&g, qs + (size_t)i * d, d,
					      l->kappa * RECALL_FILLER_NORM);
	}
	free(value_of);
	free(pair_of);
	free(slot_of);
	return 0;
}

static int recall_run(const struct cell *c, struct cell_result *r)
{
	struct attn_problem p = cell_problem(c);
	bool self = pattern_is_self(p.pattern);
	int pairs = atoi(c->regime), d = p.d, group = p.heads / p.kv_heads;
	int rows = self ? RECALL_QUERIES : p.n, slices = p.batch * p.kv_heads;
	/* a group's query rows ask distinct pairs: every pair once when rows outnumber them */
	struct recall_layout l = {
		.p = &p, .pairs = pairs, .rows = rows, .first_query = self ? p.n - rows : 0,
		.slots = group * rows, .asked = pairs < group * rows ? pairs : group * rows,
		.kappa = sqrt(RECALL_SHARPNESS * sqrt(d)),
	};
	float *q, *k, *v, *o, *codes;
	int *target = NULL;	/* per query row, the value asked or -1 */
	long right = 0, trials = 0;
	double state;
	struct rng g;
	int ret;

	if (p.m < pairs + (self ? rows : 0)) {
		result_status(r, CELL_UNSUPPORTED, "%d keys cannot hold %d pairs%s", p.m, pairs,
			      self ? " and the queries" : "");
		return 0;
	}
	ret = tensors_alloc(&p, &q, &k, &v, &o);
	if (ret)
		return ret;
	codes = malloc(sizeof(*codes) * RECALL_CODES * d);
	target = malloc(sizeof(*target) * (size_t)p.batch * p.heads * rows);
	if (!codes || !target) {
		ret = -ENOMEM;
		goto out_free;
	}
	rng_seed(&g, c->seed);
	for (int i = 0; i < RECALL_CODES; i++)
		random_unit(&g, codes + (size_t)i * d, d);
	l.codes = codes;
	/* each slice from its own stream, so the slices are drawn in parallel */
	#pragma omp parallel for schedule(dynamic, 1) reduction(min : ret)
	for (int s = 0; s < slices; s++) {
		int *tg = target + ((size_t)(s / p.kv_heads) * p.heads +
				    (size_t)(s % p.kv_heads) * group) * rows;
		int got = draw_slice(&l, c->seed, s, q, k, v, tg);

		ret = got < ret ? got : ret;
	}
	if (!ret)
		ret = tensors_seal(q, k, v);
	if (ret)
		goto out_free;
	ret = c->variant->forward(&p, q, k, v, o);
	if (ret || !tensors_check_guards(r) || !result_check_finite(r, "output", &p, o, 0, p.n))
		goto out_free;
	/* trial i is the i-th row that asks, in (batch, head, row) order, for every variant */
	for (int b = 0; b < p.batch; b++)
		for (int hh = 0; hh < p.heads; hh++)
			for (int t = 0; t < rows; t++) {
				int want = target[((size_t)b * p.heads + hh) * rows + t];
				const float *row = o + problem_q_offset(&p, b, hh) +
						   (size_t)(l.first_query + t) * d;
				bool ok;

				if (want < 0)
					continue;
				ok = nearest_code(row, codes, RECALL_CODES, d) == want;
				ret = result_trial(r, ok);
				if (ret)
					goto out_free;
				right += ok;
				trials++;
			}
	result_metric(r, "accuracy", (double)right / (double)trials, "");
	result_metric(r, "trials", (double)trials, "");
	result_metric(r, "pairs", pairs, "");
	result_metric(r, "gap", self ? p.n - pairs - rows : p.m - pairs, "");
	result_metric(r, "chance", 1.0 / RECALL_CODES, "");
	state = problem_state_bytes(c->variant, &p);
	if (state >= 0)
		result_metric(r, "state_bytes", state, "B");
out_free:
	free(codes);
	free(target);
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
