/*
 * hedgehog.c - Hedgehog linear attention (Zhang, Bhatia, Kumbong and Ré 2024, "The
 * Hedgehog & the Porcupine: Expressive Linear Attentions with Softmax Mimicry"), made
 * training-free by a fit at plan time (VARIANTS.md section 20).
 *
 * Feature map of query head h, the same for its queries and keys:
 *
 *	φ(x) = [max(softmax(u), 1e-12), max(softmax(-u), 1e-12)],   u = W_h x + b_h,
 *
 * softmax over the d features (the clamp is lolcats' SoftmaxDim), f = 2d features, and
 * o_i = φ(q_i)ᵀS / (φ(q_i)·z + 1e-12), S = Σ_j φ(k_j)v_jᵀ, z = Σ_j φ(k_j), over all keys
 * (ns, nc, cc: cc is the non-causal form, legal since every key is visible and a query
 * row reads only itself) or over j <= i (cs: the chunked prefix form of
 * feature-attention.c, and the recurrent form for decoding).
 *
 * The fit [harness], per QUERY head h, at plan time and never from the runtime tensors
 * (the last plan is kept for the next call, see struct plan_memo):
 *  - calibration: 256 query rows then 256 keys of d standard normal entries, drawn in
 *    that order from plan_rng_make(seed, 1000 h + 7) ("seed + 1000·h + 7" in the
 *    catalogue, the stream convention performer's seed + 1000·h follows). "gaussian"
 *    is the tasks' regime of that name: i.i.d. N(0, 1) entries; this matches its
 *    distribution, not its stream (tasks/ has its own generator, out of reach here);
 *  - loss: the mean over the 256 rows of KL(softmax_j(σ q_i·k_j) ‖ w_ij), σ = 1/√d,
 *    w_ij = a_ij / Σ_j' a_ij', a_ij = φ(q_i)·φ(k_j), over the keys row i sees: j <= i for
 *    cs, all 256 otherwise (cc is causal in its queries only and sees every key, so it
 *    takes the non-causal fit), in double. Rows count alike;
 *  - hedgehog.fit = 0 (temp): W = τI, b = 0; golden-section search on ln τ in
 *    [ln 0.05, ln 20], 40 steps (each shrinks the bracket by 0.618 and costs one new
 *    loss), τ = exp of the midpoint of the final bracket;
 *  - hedgehog.fit = 1 (full): from the temp fit's W = τI, b = 0, 500 full-batch Adam
 *    steps on W and b with lr 1e-2 and PyTorch's other defaults (β = 0.9, 0.999,
 *    ε = 1e-8) [harness], on the analytic gradient of the same loss; the last iterate
 *    is kept.
 * The target softmax weights are made once per head; each loss is one 256 x 256 x 2d
 * product of the features (dgemm, only the blocks of rows x keys a causal row can see)
 * plus the KL. The heads are fitted in parallel, BLAS serial inside.
 *
 * GQA: the key features depend on W_h, b_h, which belong to the query head and differ
 * between the heads of a group (each has its own calibration draw), so φ(k), S and z
 * are made per query head, as performer does; sharing them would be a different method.
 */
#include "variant.h"

#include "hedgehog.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "feature-attention.h"
#include "memory.h"
#include "random.h"
#include "threads.h"
#include "vexp.h"

#define R HEDGEHOG_CALIBRATION_ROWS

/* Every softmax feature is clamped to at least this (lolcats' SoftmaxDim eps). */
#define HEDGEHOG_FLOOR 1e-12
/* The catalogue's guard added to the denominator φ(q)·z. */
#define HEDGEHOG_DEN_ADD 1e-12f

/* Golden-section search on ln τ (catalogue). */
#define HEDGEHOG_TAU_MIN 0.05
#define HEDGEHOG_TAU_MAX 20.0
#define HEDGEHOG_GOLDEN_STEPS 40

/* The full fit: Adam with the catalogue's lr and steps, PyTorch's betas and eps. */
#define HEDGEHOG_ADAM_LR 1e-2
#define HEDGEHOG_ADAM_STEPS 500
#define HEDGEHOG_ADAM_BETA1 0.9
#define HEDGEHOG_ADAM_BETA2 0.999
#define HEDGEHOG_ADAM_EPS 1e-8

/* Calibration rows of one product block: a causal row block skips the keys after it. */
#define HEDGEHOG_FIT_BLOCK 64

/* The calibration stream of query head h. */
#define HEDGEHOG_STREAM(h) (1000ull * (uint64_t)(h) + 7)

enum hedgehog_param_index {
	HEDGEHOG_PARAM_FIT,
	HEDGEHOG_N_PARAMS,
};

static const struct variant_param hedgehog_params[] = {
	[HEDGEHOG_PARAM_FIT] = {
		.name		= "fit",
		.def		= HEDGEHOG_FIT_TEMP,
		.min		= 0,
		.max		= 1,
		.integer	= true,
		.help		= "0 temp: W = τI, b = 0, τ by golden-section search on ln τ; "
				  "1 full: then Adam on W, b (lr 1e-2, 500 steps) [harness]",
	},
};

static enum hedgehog_fit hedgehog_config(const struct attn_problem *p)
{
	double fit = p->params ? p->params[HEDGEHOG_PARAM_FIT] :
				 hedgehog_params[HEDGEHOG_PARAM_FIT].def;

	return fit != 0 ? HEDGEHOG_FIT_FULL : HEDGEHOG_FIT_TEMP;
}

/* ---- the fit, in double ---- */

/*
 * e^x and ln x in double, to about an ulp, as loops the compiler vectorises: libm's
 * calls would cost more than the fit's products (a 256 x 256 logarithm per loss).
 */
static inline double bits_to_double(uint64_t u)
{
	double x;

	memcpy(&x, &u, sizeof(x));
	return x;
}

static inline uint64_t double_to_bits(double x)
{
	uint64_t u;

	memcpy(&u, &x, sizeof(u));
	return u;
}

/*
 * e^x for x <= 0: x = k ln 2 + r with |r| <= ln 2 / 2, e^r by its Taylor series to r^13
 * (remainder below 2e-16), 2^k put into the exponent. Below -700 it returns e^-700
 * (about 1e-304): every such value here is a softmax term that the 1e-12 clamp or the
 * row sum makes irrelevant.
 */
static inline double fit_exp(double x)
{
	const double shifter = 0x1.8p52, ln2_hi = 0x1.62e42fefa3800p-1;
	const double ln2_lo = 0x1.ef35793c76730p-45;
	double kd, r, p;

	x = x < -700 ? -700 : x;
	kd = x * 0x1.71547652b82fep0 + shifter;	/* round(x / ln 2) in the low bits */
	r = x - (kd - shifter) * ln2_hi;
	r -= (kd - shifter) * ln2_lo;
	p = 1.0 / 6227020800;
	p = p * r + 1.0 / 479001600;
	p = p * r + 1.0 / 39916800;
	p = p * r + 1.0 / 3628800;
	p = p * r + 1.0 / 362880;
	p = p * r + 1.0 / 40320;
	p = p * r + 1.0 / 5040;
	p = p * r + 1.0 / 720;
	p = p * r + 1.0 / 120;
	p = p * r + 1.0 / 24;
	p = p * r + 1.0 / 6;
	p = p * r + 0.5;
	p = p * r + 1;
	p = p * r + 1;
	return p * bits_to_double((double_to_bits(kd) + 1023) << 52);
}

/*
 * ln x for a positive normal x: x = 2^e m with m in [√½, √2), ln m = 2 atanh(s),
 * s = (m - 1)/(m + 1), |s| <= 0.1716, by its series to s^21 (remainder below 3e-17).
 */
static inline double fit_log(double x)
{
	const double ln2_hi = 0x1.62e42fefa3800p-1, ln2_lo = 0x1.ef35793c76730p-45;
	uint64_t u = double_to_bits(x), t = u - 0x3fe6a09e667f3bcdull;	/* bits of √½ */
	int64_t e = (int64_t)t >> 52;
	double m = bits_to_double(u - ((uint64_t)e << 52)), s = (m - 1) / (m + 1);
	double s2 = s * s, p;

	p = 1.0 / 21;
	p = p * s2 + 1.0 / 19;
	p = p * s2 + 1.0 / 17;
	p = p * s2 + 1.0 / 15;
	p = p * s2 + 1.0 / 13;
	p = p * s2 + 1.0 / 11;
	p = p * s2 + 1.0 / 9;
	p = p * s2 + 1.0 / 7;
	p = p * s2 + 1.0 / 5;
	p = p * s2 + 1.0 / 3;
	p = p * s2 + 1;
	return (double)e * ln2_hi + (2 * s * p + (double)e * ln2_lo);
}

/* Σ x[j] for j < n in eight fixed partial sums (vectorised, deterministic). */
static double sum_fixed(const double *x, int n)
{
	double part[8] = { 0 }, s = 0;
	int j = 0;

	for (; j + 8 <= n; j += 8)
		for (int l = 0; l < 8; l++)
			part[l] += x[j + l];
	for (; j < n; j++)
		s += x[j];
	for (int l = 0; l < 8; l++)
		s += part[l];
	return s;
}

/* Σ x[j] y[j] for j < n, the same way. */
static double dot_fixed(const double *x, const double *y, int n)
{
	double part[8] = { 0 }, s = 0;
	int j = 0;

	for (; j + 8 <= n; j += 8)
		for (int l = 0; l < 8; l++)
			part[l] += x[j + l] * y[j + l];
	for (; j < n; j++)
		s += x[j] * y[j];
	for (int l = 0; l < 8; l++)
		s += part[l];
	return s;
}

/* One query head's calibration set and the fit's working arrays. */
struct fit {
	int d, f;		/* f = 2d features */
	bool causal;
	double *x;		/* [2R][d]: calibration queries, then keys */
	double *target;		/* R x R: softmax(σ q_i·k_j) over the keys row i sees */
	double *negent;		/* R: Σ_j p_ij ln p_ij of each row */
	double *rowsum;		/* R: Σ_j a_ij over the keys row i sees */
	double *u;		/* [2R][d]: W x + b, then the loss's gradient wrt it */
	double *phi;		/* [2R][f]: features of queries, then keys */
	double *a;		/* R x R: a_ij = φ(q_i)·φ(k_j), then dloss/da_ij */
	/* full fit only */
	double *soft;		/* [2R][f]: the softmaxes before the clamp */
	double *dphi;		/* [2R][f]: dloss/dφ */
	double *w, *b;		/* d x d and d: the parameters */
	double *gw, *gb;	/* their gradient */
	double *mw, *mb, *vw, *vb;	/* Adam's moments */
};

/* Doubles of one struct fit's arrays (fit_layout()). */
static size_t fit_doubles(int d, bool full)
{
	size_t n = 2 * (size_t)R * d + 2 * (size_t)R * R + 2 * (size_t)R;

	n += 2 * (size_t)R * d + 2 * (size_t)R * 2 * d;
	if (full)
		n += 2 * 2 * (size_t)R * 2 * d + 7 * ((size_t)d * d + d);
	return n;
}

static void fit_layout(struct fit *ft, double *mem, int d, bool causal, bool full)
{
	size_t params = (size_t)d * d + d;

	memset(ft, 0, sizeof(*ft));
	ft->d = d;
	ft->f = 2 * d;
	ft->causal = causal;
	ft->x = mem;
	ft->target = ft->x + 2 * (size_t)R * d;
	ft->negent = ft->target + (size_t)R * R;
	ft->rowsum = ft->negent + R;
	ft->u = ft->rowsum + R;
	ft->phi = ft->u + 2 * (size_t)R * d;
	ft->a = ft->phi + 2 * (size_t)R * ft->f;
	if (!full)
		return;
	ft->soft = ft->a + (size_t)R * R;
	ft->dphi = ft->soft + 2 * (size_t)R * ft->f;
	/* each parameter block is W (d x d) followed by b (d) */
	ft->w = ft->dphi + 2 * (size_t)R * ft->f;
	ft->b = ft->w + (size_t)d * d;
	ft->gw = ft->w + params;
	ft->gb = ft->gw + (size_t)d * d;
	ft->mw = ft->gw + params;
	ft->mb = ft->mw + (size_t)d * d;
	ft->vw = ft->mw + params;
	ft->vb = ft->vw + (size_t)d * d;
}

/* Keys calibration row i sees. */
static inline int fit_visible(const struct fit *ft, int i)
{
	return ft->causal ? i + 1 : R;
}

/*
 * Draws the calibration set of query head h and makes the target weights: row i of
 * target is softmax(σ q_i·k_j) over the keys it sees, 0 after them.
 */
static void fit_prepare(struct fit *ft, uint64_t seed, int h)
{
	struct plan_rng rng = plan_rng_make(seed, HEDGEHOG_STREAM(h));
	int d = ft->d;

	for (size_t x = 0; x < 2 * (size_t)R * d; x++)
		ft->x[x] = plan_rng_normal(&rng);
	cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, R, d, 1 / sqrt((double)d),
		    ft->x, d, ft->x + (size_t)R * d, d, 0.0, ft->target, R);
	for (int i = 0; i < R; i++) {
		double *p = ft->target + (size_t)i * R, *lp = ft->rowsum, max = p[0], inv;
		int keys = fit_visible(ft, i);

		/* ft->rowsum serves as a row of scratch before the losses need it */
		for (int j = 1; j < keys; j++)
			max = p[j] > max ? p[j] : max;
		for (int j = 0; j < keys; j++)
			p[j] = fit_exp(p[j] - max);
		inv = 1 / sum_fixed(p, keys);
		for (int j = 0; j < keys; j++) {
			p[j] *= inv;
			lp[j] = p[j] > 0 ? fit_log(p[j]) : 0;
		}
		ft->negent[i] = dot_fixed(p, lp, keys);
		for (int j = keys; j < R; j++)
			p[j] = 0;
	}
}

/*
 * φ of one row from u = W x + b (d): phi (2d) gets the clamped softmaxes of u and -u,
 * soft (if not NULL) the same before the clamp.
 */
static void fit_features_row(const double *u, int d, double *soft, double *phi)
{
	double max = u[0], min = u[0], inv_p, inv_n;

	for (int c = 1; c < d; c++) {
		max = u[c] > max ? u[c] : max;
		min = u[c] < min ? u[c] : min;
	}
	for (int c = 0; c < d; c++) {
		phi[c] = fit_exp(u[c] - max);
		phi[d + c] = fit_exp(min - u[c]);
	}
	inv_p = 1 / sum_fixed(phi, d);
	inv_n = 1 / sum_fixed(phi + d, d);
	for (int c = 0; c < d; c++) {
		phi[c] *= inv_p;
		phi[d + c] *= inv_n;
	}
	if (soft)
		memcpy(soft, phi, sizeof(double) * 2 * d);
	for (int c = 0; c < 2 * d; c++)
		phi[c] = phi[c] > HEDGEHOG_FLOOR ? phi[c] : HEDGEHOG_FLOOR;
}

/*
 * The mean KL over the calibration rows, from the features in ft->phi; leaves a_ij in
 * ft->a (only over the keys each row sees) and Σ_j a_ij in ft->rowsum.
 */
static double fit_kl(struct fit *ft)
{
	const double *phq = ft->phi, *phk = ft->phi + (size_t)R * ft->f;
	double row_kl[R], total = 0;

	/*
	 * Row blocks in parallel when the heads are not (one head: a passkey or recall
	 * cell); the rows' terms are summed in order after, the same sum on any threads.
	 */
	#pragma omp parallel for schedule(dynamic)
	for (int r0 = 0; r0 < R; r0 += HEDGEHOG_FIT_BLOCK) {
		int rows = R - r0 < HEDGEHOG_FIT_BLOCK ? R - r0 : HEDGEHOG_FIT_BLOCK;
		int keys = ft->causal ? r0 + rows : R;

		cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, keys, ft->f, 1.0,
			    phq + (size_t)r0 * ft->f, ft->f, phk, ft->f, 0.0,
			    ft->a + (size_t)r0 * R, R);
		for (int i = r0; i < r0 + rows; i++) {
			const double *a = ft->a + (size_t)i * R, *p = ft->target + (size_t)i * R;
			double la[R], sum;
			int seen = fit_visible(ft, i);

			for (int j = 0; j < seen; j++)
				la[j] = fit_log(a[j]);
			sum = sum_fixed(a, seen);
			ft->rowsum[i] = sum;
			row_kl[i] = ft->negent[i] - dot_fixed(p, la, seen) + fit_log(sum);
		}
	}
	for (int i = 0; i < R; i++)
		total += row_kl[i];
	return total / R;
}

/* The loss of W = τI, b = 0. */
static double fit_temp_loss(struct fit *ft, double tau)
{
	int d = ft->d;

	#pragma omp parallel for schedule(static)
	for (int r = 0; r < 2 * R; r++) {
		double *u = ft->u + (size_t)r * d;

		for (int c = 0; c < d; c++)
			u[c] = tau * ft->x[(size_t)r * d + c];
		fit_features_row(u, d, NULL, ft->phi + (size_t)r * ft->f);
	}
	return fit_kl(ft);
}

/* τ of the temp fit: golden-section search on ln τ, the midpoint of the last bracket. */
static double fit_temperature(struct fit *ft)
{
	const double r = (sqrt(5.0) - 1) / 2;
	double lo = log(HEDGEHOG_TAU_MIN), hi = log(HEDGEHOG_TAU_MAX);
	double x1 = hi - r * (hi - lo), x2 = lo + r * (hi - lo);
	double f1 = fit_temp_loss(ft, exp(x1)), f2 = fit_temp_loss(ft, exp(x2));

	for (int step = 0; step < HEDGEHOG_GOLDEN_STEPS; step++) {
		bool last = step + 1 == HEDGEHOG_GOLDEN_STEPS;

		/* the minimum lies in [lo, x2] or in [x1, hi]; the new point is not needed last */
		if (f1 < f2) {
			hi = x2;
			x2 = x1;
			f2 = f1;
			x1 = hi - r * (hi - lo);
			if (!last)
				f1 = fit_temp_loss(ft, exp(x1));
		} else {
			lo = x1;
			x1 = x2;
			f1 = f2;
			x2 = lo + r * (hi - lo);
			if (!last)
				f2 = fit_temp_loss(ft, exp(x2));
		}
	}
	return exp((lo + hi) / 2);
}

/*
 * The loss at ft->w, ft->b and, when grad is set, its gradient into ft->gw, ft->gb.
 * Needs the full fit's arrays.
 */
static double fit_full_loss(struct fit *ft, bool grad)
{
	int d = ft->d, f = ft->f;
	double *phq = ft->phi, *phk = ft->phi + (size_t)R * f;
	double loss;

	/* u = W x + b for every calibration row */
	cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 2 * R, d, d, 1.0, ft->x, d, ft->w,
		    d, 0.0, ft->u, d);
	for (int r = 0; r < 2 * R; r++) {
		double *u = ft->u + (size_t)r * d;

		for (int c = 0; c < d; c++)
			u[c] += ft->b[c];
		fit_features_row(u, d, ft->soft + (size_t)r * f, ft->phi + (size_t)r * f);
	}
	loss = fit_kl(ft);
	if (!grad)
		return loss;

	/* dloss/da_ij = (-p_ij / a_ij + 1 / Σ_j' a_ij') / R over the keys row i sees */
	for (int i = 0; i < R; i++) {
		double *a = ft->a + (size_t)i * R;
		const double *p = ft->target + (size_t)i * R;
		double inv = 1 / ft->rowsum[i];
		int keys = fit_visible(ft, i);

		for (int j = 0; j < keys; j++)
			a[j] = (inv - p[j] / a[j]) / R;
		for (int j = keys; j < R; j++)
			a[j] = 0;
	}
	/* a = Φq Φkᵀ: dΦq = G Φk, dΦk = Gᵀ Φq */
	cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, f, R, 1.0, ft->a, R, phk, f,
		    0.0, ft->dphi, f);
	cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, f, R, 1.0, ft->a, R, phq, f,
		    0.0, ft->dphi + (size_t)R * f, f);
	/* through the clamps (no gradient where one holds) and the two softmaxes */
	for (int r = 0; r < 2 * R; r++) {
		const double *s = ft->soft + (size_t)r * f, *g = ft->dphi + (size_t)r * f;
		double *du = ft->u + (size_t)r * d, dot_p = 0, dot_n = 0;

		for (int c = 0; c < d; c++) {
			if (s[c] > HEDGEHOG_FLOOR)
				dot_p += g[c] * s[c];
			if (s[d + c] > HEDGEHOG_FLOOR)
				dot_n += g[d + c] * s[d + c];
		}
		for (int c = 0; c < d; c++) {
			double gp = s[c] > HEDGEHOG_FLOOR ? g[c] : 0;
			double gn = s[d + c] > HEDGEHOG_FLOOR ? g[d + c] : 0;

			/* softmax(-u) turns the sign of its Jacobian */
			du[c] = s[c] * (gp - dot_p) - s[d + c] * (gn - dot_n);
		}
	}
	/* u = W x + b: dW = Σ_rows du xᵀ, db = Σ_rows du */
	cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, d, 2 * R, 1.0, ft->u, d, ft->x,
		    d, 0.0, ft->gw, d);
	for (int c = 0; c < d; c++)
		ft->gb[c] = 0;
	for (int r = 0; r < 2 * R; r++)
		for (int c = 0; c < d; c++)
			ft->gb[c] += ft->u[(size_t)r * d + c];
	return loss;
}

/* One Adam update of n parameters at step t (from 1). */
static void adam_step(double *x, const double *g, double *m, double *v, size_t n, int t)
{
	double c1 = 1 - pow(HEDGEHOG_ADAM_BETA1, t), c2 = 1 - pow(HEDGEHOG_ADAM_BETA2, t);

	for (size_t i = 0; i < n; i++) {
		m[i] = HEDGEHOG_ADAM_BETA1 * m[i] + (1 - HEDGEHOG_ADAM_BETA1) * g[i];
		v[i] = HEDGEHOG_ADAM_BETA2 * v[i] + (1 - HEDGEHOG_ADAM_BETA2) * g[i] * g[i];
		x[i] -= HEDGEHOG_ADAM_LR * (m[i] / c1) / (sqrt(v[i] / c2) + HEDGEHOG_ADAM_EPS);
	}
}

/* The full fit: Adam from W = τI, b = 0; leaves the last iterate in ft->w, ft->b. */
static void fit_adam(struct fit *ft, double tau)
{
	size_t params = (size_t)ft->d * ft->d + ft->d;

	/* W and b, their gradients and both moments each lie in one block of params */
	memset(ft->w, 0, sizeof(double) * params);
	memset(ft->mw, 0, sizeof(double) * 2 * params);
	for (int c = 0; c < ft->d; c++)
		ft->w[(size_t)c * ft->d + c] = tau;
	for (int t = 1; t <= HEDGEHOG_ADAM_STEPS; t++) {
		fit_full_loss(ft, true);
		adam_step(ft->w, ft->gw, ft->mw, ft->vw, params, t);
	}
}

/*
 * Fits query head h into w (d x d) and b (d), in double: the temp fit (w = τI, b = 0)
 * or the full one. mem holds fit_doubles(d, full) doubles.
 */
static void fit_head(double *mem, uint64_t seed, int h, int d, bool causal,
		     enum hedgehog_fit fit, double *w, double *b)
{
	bool full = fit == HEDGEHOG_FIT_FULL;
	struct fit ft;
	double tau;

	fit_layout(&ft, mem, d, causal, full);
	fit_prepare(&ft, seed, h);
	tau = fit_temperature(&ft);
	if (full) {
		fit_adam(&ft, tau);
		memcpy(w, ft.w, sizeof(double) * d * d);
		memcpy(b, ft.b, sizeof(double) * d);
		return;
	}
	memset(w, 0, sizeof(double) * d * d);
	memset(b, 0, sizeof(double) * d);
	for (int c = 0; c < d; c++)
		w[(size_t)c * d + c] = tau;
}

int hedgehog_fit_head(uint64_t seed, int h, int d, bool causal, enum hedgehog_fit fit,
		      double *w, double *b)
{
	double *mem = attn_alloc(sizeof(double) * fit_doubles(d, fit == HEDGEHOG_FIT_FULL));
	int saved;

	if (!mem)
		return -ENOMEM;
	saved = blas_serial_begin();
	fit_head(mem, seed, h, d, causal, fit, w, b);
	blas_serial_end(saved);
	attn_free(mem);
	return 0;
}

int hedgehog_calibration_loss(uint64_t seed, int h, int d, bool causal, const double *w,
			      const double *b, double *loss, double *grad_w, double *grad_b)
{
	double *mem = attn_alloc(sizeof(double) * fit_doubles(d, true));
	struct fit ft;
	int saved;

	if (!mem)
		return -ENOMEM;
	saved = blas_serial_begin();
	fit_layout(&ft, mem, d, causal, true);
	fit_prepare(&ft, seed, h);
	memcpy(ft.w, w, sizeof(double) * d * d);
	memcpy(ft.b, b, sizeof(double) * d);
	*loss = fit_full_loss(&ft, grad_w || grad_b);
	blas_serial_end(saved);
	if (grad_w)
		memcpy(grad_w, ft.gw, sizeof(double) * d * d);
	if (grad_b)
		memcpy(grad_b, ft.gb, sizeof(double) * d);
	attn_free(mem);
	return 0;
}

/* ---- the plan and the feature map ---- */

/* What forward() and the decoder run with: per query head, τ or W and b, in float. */
struct hedgehog_plan {
	enum hedgehog_fit fit;
	float *tau;		/* [heads]: the temp fit's τ */
	float *w;		/* [heads][d][d], full fit only */
	float *b;		/* [heads][d], full fit only */
};

/*
 * The last plan this process made, and what it was made for. A plan is a function of
 * the seed, the heads, d, the mask and the fit's kind only, never of the data (plan vs
 * run, VARIANTS.md), so a forward that finds its plan here takes it bit for bit as a
 * new fit would make it, as a trained model keeps its feature maps: a fit costs some
 * 60 ms per 8 heads, more than the attention itself up to N = 16384, and timed as part
 * of every call it measured the search instead of the method. The first call of a
 * process (the harness's warm-up, whose workspace counts the fit's scratch) pays it.
 * Plain malloc: it outlives the calls whose workspace attn_alloc() accounts.
 */
struct plan_memo {
	pthread_mutex_t lock;
	bool valid;
	uint64_t seed;
	int heads, d;
	bool causal;
	enum hedgehog_fit fit;
	float *tau, *w, *b;
};

static struct plan_memo memo = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Copies a plan's arrays (heads of d; w NULL for the temp fit) from one place to another. */
static void plan_copy(float *tau_to, float *w_to, float *b_to, const float *tau,
		      const float *w, const float *b, int heads, int d)
{
	memcpy(tau_to, tau, sizeof(float) * heads);
	if (!w)
		return;
	memcpy(w_to, w, sizeof(float) * heads * d * d);
	memcpy(b_to, b, sizeof(float) * heads * d);
}

/* pl's arrays from the memo if it holds p's plan; true then. */
static bool memo_take(const struct attn_problem *p, bool causal, struct hedgehog_plan *pl)
{
	bool hit;

	pthread_mutex_lock(&memo.lock);
	hit = memo.valid && memo.seed == p->seed && memo.heads == p->heads &&
	      memo.d == p->d && memo.causal == causal && memo.fit == pl->fit;
	if (hit)
		plan_copy(pl->tau, pl->w, pl->b, memo.tau, memo.w, memo.b, p->heads, p->d);
	pthread_mutex_unlock(&memo.lock);
	return hit;
}

/* Keeps pl as p's plan; out of memory, the memo is only left empty. */
static void memo_keep(const struct attn_problem *p, bool causal, const struct hedgehog_plan *pl)
{
	bool full = pl->fit == HEDGEHOG_FIT_FULL;

	pthread_mutex_lock(&memo.lock);
	free(memo.tau);
	free(memo.w);
	free(memo.b);
	memo.tau = malloc(sizeof(float) * p->heads);
	memo.w = full ? malloc(sizeof(float) * p->heads * p->d * p->d) : NULL;
	memo.b = full ? malloc(sizeof(float) * p->heads * p->d) : NULL;
	memo.valid = memo.tau && (!full || (memo.w && memo.b));
	if (memo.valid) {
		plan_copy(memo.tau, memo.w, memo.b, pl->tau, pl->w, pl->b, p->heads, p->d);
		memo.seed = p->seed;
		memo.heads = p->heads;
		memo.d = p->d;
		memo.causal = causal;
		memo.fit = pl->fit;
	}
	pthread_mutex_unlock(&memo.lock);
}

static void hedgehog_plan_free(struct hedgehog_plan *pl)
{
	attn_free(pl->tau);
	attn_free(pl->w);
	attn_free(pl->b);
	memset(pl, 0, sizeof(*pl));
}

/*
 * The plan of every query head of p (the cs fit when causal): the process's last plan
 * when it is p's, else fitted in parallel over heads. Returns 0 or -ENOMEM (pl then
 * holds nothing).
 */
static int hedgehog_plan_make(const struct attn_problem *p, enum hedgehog_fit fit,
			      bool causal, struct hedgehog_plan *pl)
{
	bool full = fit == HEDGEHOG_FIT_FULL;
	int d = p->d, threads = max_threads(), saved;
	size_t per_thread = fit_doubles(d, full) + (size_t)d * d + d;
	double *mem;

	memset(pl, 0, sizeof(*pl));
	pl->fit = fit;
	pl->tau = attn_alloc(sizeof(float) * p->heads);
	if (full) {
		pl->w = attn_alloc(sizeof(float) * p->heads * d * d);
		pl->b = attn_alloc(sizeof(float) * p->heads * d);
	}
	if (!pl->tau || (full && (!pl->w || !pl->b))) {
		hedgehog_plan_free(pl);
		return -ENOMEM;
	}
	if (memo_take(p, causal, pl))
		return 0;
	mem = attn_alloc(sizeof(double) * threads * per_thread);
	if (!mem) {
		hedgehog_plan_free(pl);
		return -ENOMEM;
	}
	/* one head per thread, BLAS serial: a fit's products are too small to split well */
	saved = blas_serial_begin();
	#pragma omp parallel for schedule(dynamic) if (p->heads > 1)
	for (int h = 0; h < p->heads; h++) {
		double *ws = mem + (size_t)thread_id() * per_thread;
		double *w = ws + fit_doubles(d, full), *b = w + (size_t)d * d;

		fit_head(ws, p->seed, h, d, causal, fit, w, b);
		pl->tau[h] = (float)w[0];
		if (!full)
			continue;
		for (size_t x = 0; x < (size_t)d * d; x++)
			pl->w[(size_t)h * d * d + x] = (float)w[x];
		for (int c = 0; c < d; c++)
			pl->b[(size_t)h * d + c] = (float)b[c];
	}
	blas_serial_end(saved);
	attn_free(mem);
	memo_keep(p, causal, pl);
	return 0;
}

/* What the feature callback of one query head reads (feature_map.ctx). */
struct hedgehog_map {
	float tau;		/* temp fit: u = τ x */
	const float *w, *b;	/* full fit: u = W x + b; w NULL for the temp fit */
};

/* y[c] = e^(k (t[c] - shift)) for c < n, every k (t[c] - shift) <= 0. */
static void exp_scaled(float *y, const float *t, float shift, float k, int n)
{
	int c = 0;

#ifdef VEXP_AVX2
	const __m256 s = _mm256_set1_ps(shift), kl = _mm256_set1_ps(k * (float)M_LOG2E);

	for (; c + 8 <= n; c += 8)
		_mm256_storeu_ps(y + c, exp2_v8(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(t + c),
									    s), kl)));
#endif
	for (; c < n; c++)
		y[c] = expf(k * (t[c] - shift));
}

/* phi[c] = max(phi[c] / sum, floor) for c < n, sum of phi[0..n) in fixed order. */
static void normalise_clamp(float *phi, int n)
{
	float sum = 0, inv;

	for (int c = 0; c < n; c++)
		sum += phi[c];
	inv = 1 / sum;
	for (int c = 0; c < n; c++)
		phi[c] = fmaxf(phi[c] * inv, (float)HEDGEHOG_FLOOR);
}

/*
 * φ of one row: out (2d) = [softmax(k t), softmax(-k t)] clamped, k > 0; t may be the
 * first d floats of out itself.
 */
static void features_row(const float *t, float k, int d, float *out)
{
	float max = t[0], min = t[0];

	for (int c = 1; c < d; c++) {
		max = fmaxf(max, t[c]);
		min = fminf(min, t[c]);
	}
	/* e^(-k (t - min)) first: it reads t before the positive half overwrites it */
	exp_scaled(out + d, t, min, -k, d);
	exp_scaled(out, t, max, k, d);
	normalise_clamp(out, d);
	normalise_clamp(out + d, d);
}

static void hedgehog_phi(const struct feature_map *fm, const float *x, int d, int first,
			 int rows, float *phi)
{
	const struct hedgehog_map *hm = fm->ctx;
	int f = 2 * d;

	(void)first;
	if (!hm->w) {
		for (int i = 0; i < rows; i++)
			features_row(x + (size_t)i * d, hm->tau, d, phi + (size_t)i * f);
		return;
	}
	/* u = W x + b into the first half of each row of phi */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, d, d, 1.0f, x, d, hm->w, d,
		    0.0f, phi, f);
	for (int i = 0; i < rows; i++) {
		float *row = phi + (size_t)i * f;

		for (int c = 0; c < d; c++)
			row[c] += hm->b[c];
		features_row(row, 1.0f, d, row);
	}
}

static void hedgehog_map_init(struct feature_map *fm, struct hedgehog_map *hm,
			      const struct hedgehog_plan *pl, int h, int d)
{
	hm->tau = pl->tau ? pl->tau[h] : 1;
	hm->w = pl->w ? pl->w + (size_t)h * d * d : NULL;
	hm->b = pl->b ? pl->b + (size_t)h * d : NULL;
	fm->features = 2 * d;
	fm->add = HEDGEHOG_DEN_ADD;
	fm->floor = 0;
	fm->ctx = hm;
	fm->query = hedgehog_phi;
	fm->key = hedgehog_phi;
}

/* ---- forward ---- */

static int hedgehog_forward(const struct attn_problem *p, const float *q, const float *k,
			    const float *v, float *out)
{
	int slices = p->batch * p->heads, threads = max_threads(), d = p->d, saved;
	bool causal = p->pattern == ATTN_CS;
	struct hedgehog_plan pl;
	struct feature_map probe;
	struct hedgehog_map probe_map;
	size_t scratch_floats, state_floats, per_thread;
	float *ws;
	int ret;

	ret = hedgehog_plan_make(p, hedgehog_config(p), causal, &pl);
	if (ret)
		return ret;
	hedgehog_map_init(&probe, &probe_map, &pl, 0, d);
	scratch_floats = feature_scratch_floats(&probe, d);
	state_floats = feature_state_floats(&probe, d);
	per_thread = scratch_floats + state_floats;
	ws = attn_alloc(sizeof(float) * threads * per_thread);
	if (!ws) {
		hedgehog_plan_free(&pl);
		return -ENOMEM;
	}

	saved = blas_serial_begin();
	#pragma omp parallel for schedule(dynamic)
	for (int s = 0; s < slices; s++) {
		int b = s / p->heads, h = s % p->heads;
		size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);
		float *scratch = ws + (size_t)thread_id() * per_thread;
		float *state = scratch + scratch_floats;
		struct feature_map fm;
		struct hedgehog_map hm;

		/* φ(k) depends on the query head's fit: one state per query head (GQA too) */
		hedgehog_map_init(&fm, &hm, &pl, h, d);
		if (causal) {
			feature_attention_causal(&fm, q + qo, k + kvo, v + kvo, p->n, d, scratch,
						 state, out + qo);
			continue;
		}
		feature_state_build(&fm, k + kvo, v + kvo, p->m, d, scratch, state);
		feature_state_apply(&fm, state, q + qo, p->n, d, scratch, out + qo);
	}
	blas_serial_end(saved);
	attn_free(ws);
	hedgehog_plan_free(&pl);
	return 0;
}

/*
 * The kernel's products with 2d features and a state per query head (feature-attention.c
 * counts the noncausal state per KV head: here it is made per query head), and for the
 * full fit the projections W x of queries and keys. The fit is plan time, made once per
 * process (struct plan_memo), so not counted; the exponentials of φ are left out, as
 * the kernel leaves out its feature maps.
 */
static double hedgehog_flops(const struct attn_problem *p)
{
	enum hedgehog_fit fit = hedgehog_config(p);
	struct attn_problem per_head = *p;
	double flops;

	per_head.kv_heads = p->heads;
	flops = feature_attention_flops(&per_head, 2 * p->d);
	if (fit == HEDGEHOG_FIT_FULL)
		flops += 2.0 * p->batch * p->heads * ((double)p->n + p->m) * p->d * p->d;
	return flops;
}

/*
 * S (2d x d) and z (2d) per (batch, query head), float32: the key features belong to
 * the query head's fit, so GQA cannot share them. batch * heads * (2d² + 2d) * 4 bytes.
 */
static double hedgehog_state_bytes(const struct attn_problem *p)
{
	double d = p->d;

	return (double)p->batch * p->heads * (2 * d * d + 2 * d) * sizeof(float);
}

/* ---- decoding (cs) ---- */

struct hedgehog_decode {
	struct attn_problem p;	/* n = m = capacity in positions */
	int len;		/* positions fed so far */
	int threads;		/* scratch slots */
	size_t state_floats;	/* per (batch, query head) */
	struct hedgehog_plan pl;
	float *states;		/* [batch][heads] S and z */
	float *scratch;		/* [threads][2d] one row of features */
};

static void hedgehog_decode_free(void *state)
{
	struct hedgehog_decode *st = state;

	if (!st)
		return;
	attn_free(st->scratch);
	attn_free(st->states);
	hedgehog_plan_free(&st->pl);
	attn_free(st);
}

static int hedgehog_decode_init(const struct attn_problem *p, void **state)
{
	struct hedgehog_decode *st;
	struct feature_map probe;
	struct hedgehog_map probe_map;
	int ret;

	*state = NULL;
	ret = decode_check_problem(p);
	if (ret)
		return ret;
	st = attn_calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->p = decode_problem(p);	/* the fit is made here, the params not kept */
	ret = hedgehog_plan_make(p, hedgehog_config(p), true, &st->pl);
	if (ret) {
		attn_free(st);
		return ret;
	}
	hedgehog_map_init(&probe, &probe_map, &st->pl, 0, p->d);
	st->state_floats = feature_state_floats(&probe, p->d);
	st->threads = max_threads();
	st->states = attn_calloc((size_t)p->batch * p->heads * st->state_floats,
				 sizeof(float));
	st->scratch = attn_alloc(sizeof(float) * st->threads * 2 * p->d);
	if (!st->states || !st->scratch) {
		hedgehog_decode_free(st);
		return -ENOMEM;
	}
	*state = st;
	return 0;
}

/*
 * Below this many multiply-adds per step (slices x 2d x d) a parallel region costs more
 * than it saves.
 */
#define HEDGEHOG_DECODE_PARALLEL_MIN 32768

static int hedgehog_decode_step(void *state, const float *q, const float *k, const float *v,
				float *out)
{
	struct hedgehog_decode *st = state;
	const struct attn_problem *p = &st->p;
	int slices = p->batch * p->heads, d = p->d, t = st->len, saved;

	if (t >= p->n)
		return -ENOSPC;
	st->len++;
	saved = blas_serial_begin();
	#pragma omp parallel for num_threads(st->threads) schedule(static) \
		if ((double)slices * 2 * d * d >= HEDGEHOG_DECODE_PARALLEL_MIN)
	for (int s = 0; s < slices; s++) {
		int b = s / p->heads, h = s % p->heads;
		int kvh = h / (p->heads / p->kv_heads);
		const float *ks = k + ((size_t)b * p->kv_heads + kvh) * d;
		const float *vs = v + ((size_t)b * p->kv_heads + kvh) * d;
		float *sstate = st->states + (size_t)s * st->state_floats;
		float *scratch = st->scratch + (size_t)thread_id() * 2 * d;
		struct feature_map fm;
		struct hedgehog_map hm;

		hedgehog_map_init(&fm, &hm, &st->pl, h, d);
		feature_state_add(&fm, sstate, ks, vs, d, t, scratch);
		feature_state_query(&fm, sstate, q + (size_t)s * d, d, t, scratch,
				    out + (size_t)s * d);
	}
	blas_serial_end(saved);
	return 0;
}

const struct variant_ops hedgehog_variant = {
	.name		= "hedgehog",
	.family		= "linear",
	.summary	= "[harness] φ = [softmax(Wx+b), softmax(-(Wx+b))], 2d features, W, b "
			  "fitted at plan time on 256 x 256 gaussian calibration Q/K drawn from "
			  "seed + 1000·h + 7, never on the inputs",
	.citation	= "Zhang, Bhatia, Kumbong and Ré 2024, The Hedgehog & the Porcupine: "
			  "Expressive Linear Attentions with Softmax Mimicry, ICLR "
			  "(arXiv 2402.04347)",
	.patterns	= PATTERNS_ALL,
	.extensions	= 0,
	.flags		= 0,
	.params		= hedgehog_params,
	.n_params	= HEDGEHOG_N_PARAMS,
	.forward	= hedgehog_forward,
	.flops		= hedgehog_flops,
	.state_bytes	= hedgehog_state_bytes,
	.decode_init	= hedgehog_decode_init,
	.decode_step	= hedgehog_decode_step,
	.decode_free	= hedgehog_decode_free,
};
