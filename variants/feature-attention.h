/*
 * feature-attention.h - kernel ("linearised") attention with a positive feature map φ,
 * the core that linear, performer and cosformer share:
 *
 *	o_i = φ(q_i)ᵀ S / g(φ(q_i)·z),   S = Σ_j φ(k_j) v_jᵀ (f x d),   z = Σ_j φ(k_j) (f)
 *
 * over all keys j (noncausal) or j <= i (causal), with the denominator guard
 * g(x) = max(x + add, floor) each method defines. Everything is done by chunks of
 * FEATURE_CHUNK rows with OpenBLAS products, so the workspace does not grow with the
 * sequence: the causal form is the masked quadratic form inside a chunk plus the
 * state carried over from the chunks before it, never a loop over tokens.
 *
 * Also the draw of FAVOR+ random features, which performer and sea's estimator share.
 */
#ifndef ATTNBENCH_FEATURE_ATTENTION_H
#define ATTNBENCH_FEATURE_ATTENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "variant.h"

/* Rows per chunk: the intra-chunk c x c product costs about what the state update does. */
#define FEATURE_CHUNK 64

struct feature_map {
	int features;		/* f, the length of φ(x) */
	float add, floor;	/* denominator guard g(x) = max(x + add, floor) */
	const void *ctx;	/* the method's own data (projection, stabiliser, horizon) */
	/*
	 * Write φ of `rows` consecutive rows of x (d floats each; x points at the first
	 * of them, which is position `first` of its sequence) into phi (rows x f).
	 */
	void (*query)(const struct feature_map *fm, const float *x, int d, int first,
		      int rows, float *phi);
	void (*key)(const struct feature_map *fm, const float *x, int d, int first,
		    int rows, float *phi);
};

/*
 * FLOPs of the products for p with f features, the feature maps left out. Noncausal: the
 * state once per KV head (2Mfd + Mf), then per query head the outputs and denominators
 * (2Nfd + 2Nf). cs, per query head and chunk of r rows: the carried state (2rfd), the
 * r x r scores (2r²f) and their product with V (2r²d), the denominators (2rf) and the
 * state update (2rfd + rf).
 */
double feature_attention_flops(const struct attn_problem *p, int f);

/* Floats of scratch one call below needs (per thread): chunk features, scores, sums. */
size_t feature_scratch_floats(const struct feature_map *fm, int d);
/* Floats of one state: S (f x d) followed by z (f). */
size_t feature_state_floats(const struct feature_map *fm, int d);

/* state = (S, z) over all m keys and values of one slice. */
void feature_state_build(const struct feature_map *fm, const float *k, const float *v, int m,
			 int d, float *scratch, float *state);

/* out (n x d) = the noncausal outputs of n queries against a built state. */
void feature_state_apply(const struct feature_map *fm, const float *state, const float *q,
			 int n, int d, float *scratch, float *out);

/*
 * out (n x d) = the causal outputs of one self slice (n queries, keys and values);
 * state (feature_state_floats()) is workspace and ends as the state over all n.
 */
void feature_attention_causal(const struct feature_map *fm, const float *q, const float *k,
			      const float *v, int n, int d, float *scratch, float *state,
			      float *out);

/*
 * Decoding, one position at a time: feature_state_add() adds φ(k)vᵀ and φ(k) of the key
 * at `position` to a state (zeroed to start); feature_state_query() writes the output of
 * query q at `position` against it. Apart so that GQA can share one state per KV head.
 */
void feature_state_add(const struct feature_map *fm, float *state, const float *k,
		       const float *v, int d, int position, float *scratch);
void feature_state_query(const struct feature_map *fm, const float *state, const float *q,
			 int d, int position, float *scratch, float *out);

/*
 * FAVOR+ random features (VARIANTS.md section 16), the projection of performer and of
 * sea's estimator: w (f x d) drawn from plan_rng_make(seed, stream). Block by block, a
 * fresh d x d standard Gaussian G filled column by column (draw j d + i is G[i][j]); its
 * QR with R's diagonal positive (modified Gram-Schmidt in double) gives U, and the
 * block's rows are the rows of Uᵀ in order, the last block keeping only the rows still
 * needed. Then, for r = 0..f-1 in order, d more draws make a vector whose norm scales row
 * r; every row is also multiplied by `scale` (performer folds d^(-1/4) in). g is d x d
 * doubles of scratch. Cannot fail.
 */
void favor_draw(uint64_t seed, uint64_t stream, int f, int d, double scale, double *g,
		float *w);

#endif
