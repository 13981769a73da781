/*
 * template.c - a complete variant built outside attnbench: softmax attention with a
 * temperature, o_i = Σ_j softmax_j(t · q_i·k_j / sqrt(d)) v_j, which is vanilla at t = 1.
 *
 * Copy this file, change the arithmetic, keep the shape. Build it as a plugin with the
 * headers and pkg-config file `meson install` puts in place:
 *
 *	cc -O2 -shared -fPIC template.c $(pkg-config --cflags --libs attnbench) \
 *		-o libtemplate.so
 *	attnbench check --plugin ./libtemplate.so template
 *	attnbench run --plugin ./libtemplate.so --suite quick --variants template,vanilla,flash
 *
 * A plugin sees only the public headers: variant.h (the interface: read its comments),
 * memory.h (the allocator: all memory through it, so its workspace is measured like a
 * built-in's) and threads.h. attn_alloc() and the thread settings are the attnbench
 * program's own; the plugin links against nothing else.
 *
 * The harness runs every cell in a child process, so a crash here is a 'crashed' cell,
 * and it fences the buffers, so writing outside them is a 'corrupt' one.
 */
#include <attnbench/memory.h>
#include <attnbench/variant.h>

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

/* Hyperparameters: set with --set template.temperature=X, stored with every result. */
static const struct variant_param template_params[] = {
	{
		.name		= "temperature",
		.def		= 1.0,
		.min		= 0.0,
		.max		= 100.0,
		.integer	= false,
		.help		= "multiplies the scores (1 = softmax attention)",
	},
};

/*
 * One output row: query q against keys/values rows [0, keys), in double, so that the
 * decode step, which calls it too, gives the very same numbers as forward().
 */
static void attend_row(const float *q, const float *k, const float *v, int keys, int d,
		       double scale, double *scores, float *out)
{
	double max = -INFINITY, sum = 0;

	for (int j = 0; j < keys; j++) {
		double s = 0;

		for (int c = 0; c < d; c++)
			s += (double)q[c] * k[(size_t)j * d + c];
		scores[j] = scale * s;
		if (scores[j] > max)
			max = scores[j];
	}
	for (int j = 0; j < keys; j++) {
		scores[j] = exp(scores[j] - max);
		sum += scores[j];
	}
	for (int c = 0; c < d; c++) {
		double acc = 0;

		for (int j = 0; j < keys; j++)
			acc += scores[j] * v[(size_t)j * d + c];
		out[c] = keys ? (float)(acc / sum) : 0.0f;	/* no keys: 0, never NaN */
	}
}

/* p->params holds the declared parameters in order, or is NULL for their defaults. */
static double template_temperature(const struct attn_problem *p)
{
	return p->params ? p->params[0] : template_params[0].def;
}

static double template_scale(const struct attn_problem *p)
{
	return template_temperature(p) / sqrt((double)p->d);
}

/* Optional: refuse shapes the method cannot take, beyond its patterns (none here but
 * an illustration: the double accumulators are sized for d up to 4096). */
static int template_supports(const struct attn_problem *p)
{
	return p->d <= 4096 ? 0 : -ENOTSUP;
}

/* Required: the whole problem. cs sees keys <= i; ns, nc and cc every key. */
static int template_forward(const struct attn_problem *p, const float *q, const float *k,
			    const float *v, float *out)
{
	double *scores = attn_alloc(sizeof(double) * p->m);

	if (!scores)
		return -ENOMEM;
	for (int b = 0; b < p->batch; b++)
		for (int h = 0; h < p->heads; h++) {
			size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);

			for (int i = 0; i < p->n; i++) {
				int keys = p->pattern == ATTN_CS ? i + 1 : p->m;

				attend_row(q + qo + (size_t)i * p->d, k + kvo, v + kvo, keys,
					   p->d, template_scale(p), scores,
					   out + qo + (size_t)i * p->d);
			}
		}
	attn_free(scores);
	return 0;
}

/* Optional: floating-point operations of one forward(), for GFLOP/s. */
static double template_flops(const struct attn_problem *p)
{
	double pairs = p->pattern == ATTN_CS ? (double)p->n * (p->n + 1) / 2 :
					       (double)p->n * p->m;

	return 4.0 * pairs * p->d * p->batch * p->heads;
}

/* Optional: what the method must keep to produce its outputs: the whole KV cache. */
static double template_state_bytes(const struct attn_problem *p)
{
	return 2.0 * p->batch * p->kv_heads * p->m * p->d * sizeof(float);
}

/* Optional decoding (cs): a KV cache, one position of every (batch, head) per step. */
struct template_decode {
	struct attn_problem p;		/* n = m = capacity */
	double params[1];
	int len;			/* positions fed so far */
	float *k, *v;			/* [batch][kv_heads][capacity][d] */
	double *scores;			/* capacity */
};

static void template_decode_free(void *state)
{
	struct template_decode *st = state;

	if (!st)
		return;
	attn_free(st->k);
	attn_free(st->v);
	attn_free(st->scores);
	attn_free(st);
}

static int template_decode_init(const struct attn_problem *p, void **state)
{
	size_t floats = (size_t)p->batch * p->kv_heads * p->m * p->d;
	struct template_decode *st;

	*state = NULL;
	if (p->pattern != ATTN_CS)
		return -ENOTSUP;
	st = attn_calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->p = *p;
	st->params[0] = template_temperature(p);
	st->p.params = st->params;	/* the caller's array may not outlive this call */
	st->k = attn_alloc(sizeof(float) * floats);
	st->v = attn_alloc(sizeof(float) * floats);
	st->scores = attn_alloc(sizeof(double) * p->m);
	if (!st->k || !st->v || !st->scores) {
		template_decode_free(st);
		return -ENOMEM;
	}
	*state = st;
	return 0;
}

static int template_decode_step(void *state, const float *q, const float *k, const float *v,
				float *out)
{
	struct template_decode *st = state;
	const struct attn_problem *p = &st->p;
	int d = p->d, group = p->heads / p->kv_heads;

	if (st->len >= p->m)
		return -ENOSPC;
	for (int s = 0; s < p->batch * p->kv_heads; s++) {
		size_t at = ((size_t)s * p->m + st->len) * d;

		memcpy(st->k + at, k + (size_t)s * d, sizeof(float) * d);
		memcpy(st->v + at, v + (size_t)s * d, sizeof(float) * d);
	}
	st->len++;
	for (int s = 0; s < p->batch * p->heads; s++) {
		int kv = s / p->heads * p->kv_heads + s % p->heads / group;
		size_t base = (size_t)kv * p->m * d;

		attend_row(q + (size_t)s * d, st->k + base, st->v + base, st->len, d,
			   template_scale(p), st->scores, out + (size_t)s * d);
	}
	return 0;
}

static const struct variant_ops template_variant = {
	.abi		= ATTN_VARIANT_ABI,	/* refused by an attnbench of another ABI */
	.name		= "template",		/* letters, digits, '_', '-'; not a built-in's */
	.family		= "exact",
	.summary	= "softmax attention with a temperature (the plugin template)",
	.citation	= "attnbench examples/plugin/template.c",
	.patterns	= PATTERNS_ALL,
	.extensions	= 0,			/* patterns that are not the paper's own */
	.flags		= 0,			/* VARIANT_EXACT only if it equals softmax */
	.params		= template_params,
	.n_params	= 1,
	.supports	= template_supports,
	.forward	= template_forward,
	.mask		= NULL,			/* mask-exact variants declare their mask */
	.flops		= template_flops,
	.bytes		= NULL,			/* the least: Q, K, V and O once */
	.state_bytes	= template_state_bytes,
	.decode_init	= template_decode_init,
	.decode_step	= template_decode_step,
	.decode_free	= template_decode_free,
};

/* The one symbol attnbench looks for (ATTN_PLUGIN_ENTRY in variant.h). */
const struct variant_ops *attnbench_variant(void)
{
	return &template_variant;
}
