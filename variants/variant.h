/*
 * variant.h - the interface every attention implementation sits behind.
 *
 * How to add a variant:
 *   1. write variants/<name>.c with one `const struct variant_ops <name>_variant`,
 *      including only headers of variants/ (this one, memory.h for attn_alloc(),
 *      threads.h, common.h, random.h, vexp.h, kv-cache.h, feature-attention.h,
 *      span-attention.h for a fixed mask declared as .mask, score-tile.h for a
 *      register-blocked keys x queries score tile): the
 *      variants library is built with no other include directory, so a header of tasks/
 *      or harness/ does not compile here;
 *   2. add `&<name>_variant` to the list in variants/registry.c;
 *   3. add the file to variant_sources in variants/meson.build;
 *   4. write tests/test-<name>.c against an independent fp64 transcription of its
 *      equations (helpers in tests/variant-test.h) and add it to the 'variants' list in
 *      tests/meson.build.
 * `attnbench list`, `run`, `check` and tests/test-variants.c pick it up from the registry.
 *
 * Rules for variants: no I/O, no printing, no timing, no global state. All memory comes
 * from attn_alloc() (variants/memory.h) so that the workspace is measured alike for all.
 * Random objects are drawn from problem->seed (and the head), never from the data.
 */
#ifndef ATTNBENCH_VARIANT_H
#define ATTNBENCH_VARIANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* CAB's four attention patterns (SPEC section 2). */
enum attn_pattern {
	ATTN_NS,	/* noncausal self: N = M, no mask */
	ATTN_CS,	/* causal self: row i sees rows <= i of Q, K, V */
	ATTN_NC,	/* noncausal cross: any N, M, no mask */
	ATTN_CC,	/* causal cross: all of K, V; Q rows <= i only */
	ATTN_PATTERN_COUNT,
};

#define PATTERN_BIT(p) (1u << (p))
#define PATTERNS_ALL (PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_CS) | \
		      PATTERN_BIT(ATTN_NC) | PATTERN_BIT(ATTN_CC))

/* Short name ("ns", "cs", "nc", "cc") of a pattern. */
const char *pattern_name(enum attn_pattern p);
/* Parses a short name; returns the pattern or -1. */
int pattern_parse(const char *name);
/* True for patterns whose queries and keys come from one sequence (ns, cs). */
bool pattern_is_self(enum attn_pattern p);
/* True for cs and cc. */
bool pattern_is_causal(enum attn_pattern p);

/*
 * One attention problem. Q is [batch][heads][n][d], K and V are [batch][kv_heads][m][d],
 * O is [batch][heads][n][d], float32, row-major, contiguous. kv_heads divides heads:
 * query head h reads KV head h / (heads / kv_heads).
 */
struct attn_problem {
	int batch;
	int heads;
	int kv_heads;
	int n;			/* query rows */
	int m;			/* key/value rows; n == m for self patterns */
	int d;			/* head dimension */
	enum attn_pattern pattern;
	uint64_t seed;		/* for the variant's random objects */
	const double *params;	/* values of the declared params, in order; NULL: defaults */
};

/* Offset of the (b, h) query/output slice and of the KV slice it reads. */
static inline size_t problem_q_offset(const struct attn_problem *p, int b, int h)
{
	return ((size_t)b * p->heads + h) * (size_t)p->n * p->d;
}

static inline size_t problem_kv_offset(const struct attn_problem *p, int b, int h)
{
	int kvh = h / (p->heads / p->kv_heads);

	return ((size_t)b * p->kv_heads + kvh) * (size_t)p->m * p->d;
}

/* A hyperparameter a variant declares; `--set name.param=value` must lie in [min, max]. */
struct variant_param {
	const char *name;	/* e.g. "window" (set as local.window) */
	double def;		/* default value */
	double min, max;	/* accepted range, inclusive */
	bool integer;		/* value must be a whole number */
	const char *help;	/* one line for `list variants` */
};

/* A run of keys [lo, hi) a query row may see. */
struct key_span {
	int lo, hi;
};

/*
 * A mask, declared once: the keys query row i of query head h may see, as ascending,
 * disjoint, non-empty spans within [0, p->m) (the causal limit included); writes at most
 * max of them and returns how many there are (more than max: call again with room).
 */
typedef int (*attn_mask_fn)(const struct attn_problem *p, int h, int i,
			    struct key_span *spans, int max);

enum variant_flags {
	VARIANT_EXACT = 1 << 0,		/* equals softmax attention (to fp32 rounding) */
	VARIANT_MASK_EXACT = 1 << 1,	/* exact softmax attention under its own mask (.mask) */
	/*
	 * Causal (cs, cc) between blocks of query rows only, at its defaults: rows of one
	 * block share work (e.g. a selection) that reads every row of the block, so row i
	 * may depend on later rows of its own block, never on rows after it. The declared
	 * integer parameter strict_causal_param is that block's size; set to 1, the variant
	 * is strictly causal. The causality task and tests run it so, and also report the
	 * setting the cell asked for.
	 */
	VARIANT_BLOCK_CAUSAL = 1 << 2,
};

/*
 * The layout of struct variant_ops this build expects. A variant built outside the tree
 * (a plugin, loaded with --plugin) sets .abi to the value of the header it was compiled
 * against; attnbench refuses one whose value differs. Raised whenever the struct changes.
 */
#define ATTN_VARIANT_ABI 3

/*
 * A plugin exports this one function, returning its ops table (which must stay valid
 * while the program runs):
 *	const struct variant_ops *attnbench_variant(void) { return &my_variant; }
 */
#define ATTN_PLUGIN_ENTRY "attnbench_variant"

struct variant_ops {
	int abi;		/* ATTN_VARIANT_ABI (checked for plugins; first, so any
				 * layout can be read that far) */
	const char *name;	/* CLI and database key */
	const char *family;	/* e.g. "exact", "sparse", "linear" */
	const char *summary;	/* one line for `list variants` */
	const char *citation;	/* paper the method comes from */
	unsigned int patterns;	/* PATTERN_BIT()s of the supported patterns */
	unsigned int extensions; /* the subset that is a harness extension, not CAB/paper */
	unsigned int flags;	/* enum variant_flags */
	const struct variant_param *params;	/* declared hyperparameters; may be NULL */
	int n_params;
	/*
	 * VARIANT_BLOCK_CAUSAL only: name of the declared integer parameter that is the
	 * query block size, strictly causal at 1 (e.g. "block_q"); NULL otherwise.
	 */
	const char *strict_causal_param;

	/*
	 * Optional: 0 if this problem (beyond its pattern) can be run, -ENOTSUP if the
	 * method cannot take it (e.g. fewer rows than landmarks), -EINVAL if a parameter
	 * is in its declared range but meaningless here (e.g. an odd state size).
	 * NULL means every problem of a supported pattern is.
	 */
	int (*supports)(const struct attn_problem *p);

	/*
	 * Required: out = attention(q, k, v) for the whole problem.
	 * Returns 0, -ENOMEM when attn_alloc() fails, -ENOTSUP for an unsupported problem.
	 */
	int (*forward)(const struct attn_problem *p, const float *q, const float *k,
		       const float *v, float *out);

	/*
	 * Mask-exact variants (VARIANT_MASK_EXACT): the mask forward() applies. The kernel
	 * reads it from here too, and the fp64 reference restricted to it
	 * (reference_attention_masked()) is what `check` and the fidelity task hold the
	 * variant to. NULL for every other variant.
	 */
	attn_mask_fn mask;

	/*
	 * Optional: floating-point operations of one forward() (for GFLOP/s). Exact variants
	 * give the 4*n*m*d per head of the two matrix products (about half for cs).
	 */
	double (*flops)(const struct attn_problem *p);

	/*
	 * Optional: bytes one forward() moves to and from memory, by formula, for the
	 * arithmetic intensity flops / bytes of the roofline: every pass the code makes over
	 * an array counted (a matrix the method materialises, operands it reads again per
	 * tile), 4 bytes a float, caches ignored. NULL means attn_compulsory_bytes(): Q, K
	 * and V read once and O written once, the least any forward moves.
	 */
	double (*bytes)(const struct attn_problem *p);

	/*
	 * Optional: bytes of state the method keeps to produce its outputs at this shape
	 * (KV cache for exact attention, the window for local, a recurrent state or kept
	 * blocks for others), by formula, for recall-vs-state plots. Measured workspace is
	 * the harness's business; a gap between the two reveals hidden materialisation.
	 */
	double (*state_bytes)(const struct attn_problem *p);

	/*
	 * Optional incremental decoding (cs); all three set, or none. decode_init() makes a
	 * state for p, whose n (= m) is the most positions that will be fed, allocated with
	 * attn_alloc(). decode_step() feeds the next position t of every (batch, head): q is
	 * [batch][heads][d], k and v are [batch][kv_heads][d]; it writes out [batch][heads][d],
	 * which must equal row t of forward() in cs over the positions fed so far. It returns
	 * 0, or -ENOSPC past the capacity. decode_free() releases the state; accepts NULL.
	 */
	int (*decode_init)(const struct attn_problem *p, void **state);
	int (*decode_step)(void *state, const float *q, const float *k, const float *v,
			   float *out);
	void (*decode_free)(void *state);

	/*
	 * Optional, with the three above: feeds a state fresh from decode_init() positions
	 * 0..len-1 at once, leaving it as len decode_step() calls would (the outputs are not
	 * made). k and v are [batch][kv_heads][rows][d] with rows >= len. Only for a state
	 * the queries and outputs of those positions do not enter (a KV cache): a prompt
	 * read in one go instead of token by token. 0, -ENOSPC past the capacity, or
	 * -EINVAL on a state already fed.
	 */
	int (*decode_prefill)(void *state, const float *k, const float *v, int rows, int len);
};

/* The registry (variants/registry.c): the built-in variants, then the registered ones. */
int variant_count(void);
const struct variant_ops *variant_at(int i);
/* Returns the variant called `name`, or NULL. */
const struct variant_ops *variant_find(const char *name);
/*
 * Adds a variant from outside the tree (the harness validates it first). Returns 0,
 * -EEXIST when its name is taken, -ENOSPC past VARIANT_MAX_REGISTERED.
 */
int variant_register(const struct variant_ops *v);
/* Whether v is one of the built-in variants. */
bool variant_is_builtin(const struct variant_ops *v);
#define VARIANT_MAX_REGISTERED 16
/*
 * The bytes any forward pass of p moves at least: Q, K and V read once and O written once,
 * float32: 4 * (2 * batch * heads * n * d + 2 * batch * kv_heads * m * d).
 */
double attn_compulsory_bytes(const struct attn_problem *p);
/* The bytes one forward() of v moves at p: its bytes hook, else attn_compulsory_bytes(). */
double variant_bytes(const struct variant_ops *v, const struct attn_problem *p);
/* Index of a declared parameter, or -1. */
int variant_param_index(const struct variant_ops *v, const char *param);
/* Fills `values` (v->n_params entries) with the declared defaults. */
void variant_default_params(const struct variant_ops *v, double *values);
/*
 * Sets, in `values` (v->n_params entries), v's strict_causal_param to 1 when v is
 * VARIANT_BLOCK_CAUSAL, so that v is strictly causal with them; returns the index of
 * that parameter, or -1 (values unchanged) for any other variant.
 */
int variant_strict_causal_params(const struct variant_ops *v, double *values);

/*
 * Checks that a problem is well formed and that v supports it: 0, -EINVAL for a bad
 * shape (non-positive size, kv_heads not dividing heads, n != m on a self pattern),
 * -ENOTSUP for a pattern or problem the variant refuses.
 */
int variant_check_problem(const struct variant_ops *v, const struct attn_problem *p);

/*
 * Exact attention in double precision by straightforward loops: the oracle
 * (variants/reference.c). Inputs are float32 as given to variants; out is double,
 * laid out like O. Supports all four patterns and GQA. A row with nothing to attend
 * outputs 0.
 */
void reference_attention(const struct attn_problem *p, const float *q, const float *k,
			 const float *v, double *out);

/*
 * The same oracle restricted to a mask: row i of head h attends exactly the keys of
 * mask(p, h, i, ...), whatever the pattern. Returns 0, or -ENOMEM.
 */
int reference_attention_masked(const struct attn_problem *p, attn_mask_fn mask,
			       const float *q, const float *k, const float *v, double *out);

/* Most variant tensors fit; this bounds `--set` ranges. */
#define VARIANT_MAX_PARAMS 16

#endif
