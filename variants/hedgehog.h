/*
 * hedgehog.h - the plan-time fit of the hedgehog variant (hedgehog.c, VARIANTS.md
 * section 20), exported so that its tests can hold the fit to the catalogue: the loss
 * and its gradient at any W, b, and the W, b forward() computes for a query head.
 * Nothing else calls these; forward() and the decoder fit through the same code. Their
 * products run on BLAS as the caller's thread settings have it: forward() fits each head
 * on one thread, inside its parallel region.
 */
#ifndef ATTNBENCH_HEDGEHOG_H
#define ATTNBENCH_HEDGEHOG_H

#include <stdbool.h>
#include <stdint.h>

/* Calibration query rows and keys per query head (256 x 256, the catalogue's). */
#define HEDGEHOG_CALIBRATION_ROWS 256

/* hedgehog.fit: which fit ran. */
enum hedgehog_fit {
	HEDGEHOG_FIT_TEMP = 0,	/* W = τI, b = 0, τ by golden-section search on ln τ */
	HEDGEHOG_FIT_FULL = 1,	/* then Adam on W, b from W = τI, b = 0 */
};

/*
 * The loss of the fit for query head h: the mean over the calibration query rows of
 * KL(softmax(σ q_i·k_j) ‖ φ(q_i)·φ(k_j) / Σ_j' φ(q_i)·φ(k_j')), over the keys j a row
 * sees (j <= i when causal, else all), with φ(x) = [max(softmax(Wx + b), 1e-12),
 * max(softmax(-(Wx + b)), 1e-12)], all in double. The calibration Q and K (standard
 * normal) are drawn from plan_rng_make(seed, 1000 h + 7). w is d x d row-major (u = W x
 * + b), b has d entries. When grad_w (d x d) and grad_b (d) are not NULL, they receive
 * the gradient of the loss. Returns 0, or -ENOMEM.
 */
int hedgehog_calibration_loss(uint64_t seed, int h, int d, bool causal, const double *w,
			      const double *b, double *loss, double *grad_w, double *grad_b);

/*
 * The fit forward() makes for query head h (causal: the cs fit; every other pattern
 * takes the non-causal one): w (d x d) and b (d) of u = W x + b; the temp fit leaves
 * w = τI and b = 0. Returns 0, or -ENOMEM.
 */
int hedgehog_fit_head(uint64_t seed, int h, int d, bool causal, enum hedgehog_fit fit,
		      double *w, double *b);

#endif
