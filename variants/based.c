/*
 * based.c - Based: exact sliding-window softmax attention plus linear attention with a
 * second-order Taylor feature map (Arora et al. 2024, "Simple linear attention language
 * models balance the recall-throughput tradeoff"), VARIANTS.md section 18.
 *
 * [harness] In Based the two are separate layers; here they are one operator with one
 * normaliser: exact softmax weights e^(s_ij) for the keys inside the window W_i, Taylor
 * weights φ(q_i)·φ(k_j) = 1 + t + t²/2 for the keys outside it,
 *
 *	o_i = (Σ_{j∈W_i} e^(s_ij) v_j + Σ_{j∉W_i} φ(q_i)·φ(k_j) v_j)
 *	      / (Σ_{j∈W_i} e^(s_ij) + Σ_{j∉W_i} φ(q_i)·φ(k_j)),
 *
 * with s_ij = q_i·k_j/√d. cs: W_i = [i - w, i] (w keys of look-back and the token
 * itself), Taylor for j <= i - w - 1. ns: W_i = {j : |i - j| <= w}, Taylor for every other
 * key on both sides. nc, cc: no aligned window, Taylor for every key (cc reads only its
 * own query row, so it is causal as is). based.window = -1: no window, Taylor only.
 *
 * Features: x' = Pᵀx (d'), φ(x) = [1, x'/d^(1/4), vec(x'x'ᵀ)/(√2 √d)], f = 1 + d' + d'²
 * features, so t = q'·k'/√d (= s_ij when d' = d, P then being orthogonal).
 *
 * Plan, per QUERY head h, from plan_rng_make(seed, 1000 h) (the head offset CAB gives
 * Performer, as performer.c): the first d' columns of a d x d standard Gaussian G filled
 * column by column (draw j d + i is G[i][j]; the later columns never reach P, so they
 * are not drawn), orthonormalised by modified Gram-Schmidt in double, twice, which is
 * the Q of G = QR with R's diagonal positive; P = Q[:, :d'] √(d/d'). [harness] d' > d
 * cannot take d' columns of a d x d Q: d' is min(based.feature_dim, d).
 *
 * Overflow: one shift m_i = max(0, max_{j∈W_i} s_ij) multiplies the window terms and the
 * Taylor sums alike by e^(-m_i), which cancels exactly; there is no clamp (every
 * weight is positive, the denominator is at least one window weight or 1/2). The window
 * is an online softmax whose running max starts at 0, so its end is m_i itself; the
 * Taylor sums are made unshifted and scaled once at the end. Scores are kept in base 2
 * (scaled by log2(e)/√d) for exp2.
 *
 * Work, per (batch, query head) slice in parallel, OpenBLAS single-threaded inside:
 *  - the window by query tiles of BASED_CHUNK rows against key tiles of at most
 *    BASED_KEY_TILE keys covering the tile's band (sgemm for the scores and for P V);
 *  - the Taylor part as chunked kernel attention: the state (S, z) of the keys every row
 *    of a chunk sees, plus the masked quadratic form against the block of keys some of
 *    them see. In cs the keys lag the queries by w + 1: query chunk [r0, r1) pairs with
 *    key block [r0 - w - 1, r1 - w - 1), row i seeing j <= i - w - 1 of it. ns runs a
 *    second sweep from the end for the keys after the window (j >= i + w + 1), whose
 *    unnormalised sums wait in the output rows and in n floats per thread; the state is
 *    never a total from which the window would be subtracted, so nothing cancels.
 *  - nc, cc and ns without a window: the noncausal kernel of feature-attention.h.
 * feature_attention_causal() divides by its own denominator, and here the Taylor sums
 * share a normaliser with the window, so the chunk loop is written below.
 *
 * GQA (VARIANTS.md section 31): P belongs to the query head, so φ(k) and the states
 * Σφ(k)vᵀ, Σφ(k) differ between the query heads of a group and cannot be shared; the
 * window scores read q anyway. Every slice reads its KV head's K and V in place.
 *
 * Decoding (cs): per query head the Taylor state (S, z); per KV head a ring of the last
 * w + 1 keys and values (shared by the group: raw K and V). The key that leaves the
 * window at step t (t - w - 1) is the one its slot holds before k_t overwrites it: it is
 * copied aside, and then, in one parallel pass over the query heads, joins each one's
 * Taylor state before that head's query is answered.
 */
#include "variant.h"

#include <cblas.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "feature-attention.h"
#include "kv-cache.h"
#include "memory.h"
#include "random.h"
#include "threads.h"
#include "vexp.h"

#define BASED_FEATURE_DIM_DEFAULT 16	/* Based's configs: feature_dim 16 */
#define BASED_WINDOW_DEFAULT 64		/* Based's configs: a look-back of 64 keys */
/* Bounds based.feature_dim: f = 1 + d' + d'² features, 16513 at 128. */
#define BASED_FEATURE_DIM_MAX 128

/* Query rows per chunk and window tile: the chunk size of feature-attention.h. */
#define BASED_CHUNK FEATURE_CHUNK
/* Keys per window score tile: the cs band of a chunk at the default window in one. */
#define BASED_KEY_TILE 128

/* Below this many multiply-adds (heads x d d'² of Gram-Schmidt) the plan runs on one thread. */
#define BASED_PARALLEL_MIN 32768
/*
 * A forward pass below this many multiply-adds of its Taylor products (slices x (n + m)
 * x f x d), or a decode step below BASED_DECODE_PARALLEL_MIN (slices x (f + window) x
 * d), runs on one thread: 0.1 ms of work or less, where waking the workers (microseconds
 * on an idle machine, milliseconds on a loaded one) and their idle spin after the region
 * cost about what the split saves.
 */
#define BASED_FORWARD_PARALLEL_MIN (1 << 22)
#define BASED_DECODE_PARALLEL_MIN (1 << 20)

enum based_param_index {
	BASED_FEATURE_DIM,
	BASED_WINDOW,
	BASED_N_PARAMS,
};

static const struct variant_param based_params[] = {
	[BASED_FEATURE_DIM] = {
		.name		= "feature_dim",
		.def		= BASED_FEATURE_DIM_DEFAULT,
		.min		= 1,
		.max		= BASED_FEATURE_DIM_MAX,
		.integer	= true,
		.help		= "d': projection of the Taylor map, 1 + d' + d'^2 features; "
				  "[harness] min(d', d) when d' > d",
	},
	[BASED_WINDOW] = {
		.name		= "window",
		.def		= BASED_WINDOW_DEFAULT,
		.min		= -1,
		.max		= 1048576,
		.integer	= true,
		.help		= "w: exact softmax on keys i-w..i (cs), |i-j| <= w "
				  "(ns), Taylor beyond; -1 Taylor only; nc/cc are Taylor only",
	},
};

/* The parameters of one problem, resolved. */
struct based_config {
	int dp;			/* d' = min(based.feature_dim, d) */
	int f;			/* 1 + d' + d'² */
	int w;			/* look-back, at most n (then every key is in); -1 none */
};

static void based_config(const struct attn_problem *p, struct based_config *c)
{
	double dp = p->params ? p->params[BASED_FEATURE_DIM] : BASED_FEATURE_DIM_DEFAULT;
	double w = p->params ? p->params[BASED_WINDOW] : BASED_WINDOW_DEFAULT;

	c->dp = dp < p->d ? (int)dp : p->d;
	c->f = 1 + c->dp + c->dp * c->dp;
	c->w = w < 0 ? -1 : w > p->n ? p->n : (int)w;
	/* nc, cc: no aligned window */
	if (!pattern_is_self(p->pattern))
		c->w = -1;
}

/* ---- the plan ---- */

/*
 * P d^(-1/4) of query head h into pm (d x dp, row-major), so that x pm = x'/d^(1/4); g is
 * d dp doubles of scratch. The draw is the one the file's opening comment describes.
 */
static void based_draw(uint64_t seed, int h, int d, int dp, double *g, float *pm)
{
	struct plan_rng rng = plan_rng_make(seed, 1000ull * (uint64_t)h);
	double scale = sqrt((double)d / dp) * pow((double)d, -0.25);

	/* column j of G at g + j d */
	for (size_t x = 0; x < (size_t)dp * d; x++)
		g[x] = plan_rng_normal(&rng);
	for (int j = 0; j < dp; j++) {
		double *cj = g + (size_t)j * d, norm = 0;

		/* a second pass takes out what rounding left of the earlier columns */
		for (int pass = 0; pass < 2; pass++)
			for (int i = 0; i < j; i++) {
				const double *ci = g + (size_t)i * d;
				double r = 0;

				for (int c = 0; c < d; c++)
					r += ci[c] * cj[c];
				for (int c = 0; c < d; c++)
					cj[c] -= r * ci[c];
			}
		for (int c = 0; c < d; c++)
			norm += cj[c] * cj[c];
		norm = sqrt(norm);
		for (int c = 0; c < d; c++)
			cj[c] /= norm;
	}
	for (int c = 0; c < d; c++)
		for (int a = 0; a < dp; a++)
			pm[(size_t)c * dp + a] = (float)(g[(size_t)a * d + c] * scale);
}

/* P d^(-1/4) of every query head into pm (heads x d x dp). Returns 0 or -ENOMEM. */
static int based_plan(const struct attn_problem *p, int dp, float *pm)
{
	int threads = max_threads(), d = p->d;
	double *g = attn_alloc((size_t)threads * d * dp * sizeof(double));

	if (!g)
		return -ENOMEM;
	#pragma omp parallel for schedule(static) \
		if ((double)p->heads * d * dp * dp >= BASED_PARALLEL_MIN)
	for (int h = 0; h < p->heads; h++)
		based_draw(p->seed, h, d, dp, g + (size_t)thread_id() * d * dp,
			   pm + (size_t)h * d * dp);
	attn_free(g);
	return 0;
}

/* ---- the feature map ---- */

/* What the map reads (feature_map.ctx): the query head's P d^(-1/4). */
struct based_map {
	const float *pm;	/* d x dp */
	int dp;
};

/*
 * φ(x) = [1, x'', vec(x'' x''ᵀ)/√2] with x'' = x'/d^(1/4) = x pm, for `rows` rows: the
 * projections land packed at the start of phi and are spread into rows of f from the
 * last row back, so no row is overwritten before it is read.
 */
static void based_features(const struct feature_map *fm, const float *x, int d, int first,
			   int rows, float *phi)
{
	const struct based_map *bm = fm->ctx;
	int dp = bm->dp, f = fm->features;

	(void)first;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, dp, d, 1.0f, x, d, bm->pm,
		    dp, 0.0f, phi, dp);
	for (int i = rows - 1; i >= 0; i--) {
		float xp[BASED_FEATURE_DIM_MAX], *row = phi + (size_t)i * f;
		float *quad = row + 1 + dp;

		memcpy(xp, phi + (size_t)i * dp, sizeof(float) * dp);
		row[0] = 1;
		memcpy(row + 1, xp, sizeof(float) * dp);
		for (int a = 0; a < dp; a++) {
			float xa = xp[a] * (float)M_SQRT1_2;

			for (int b = 0; b < dp; b++)
				quad[(size_t)a * dp + b] = xa * xp[b];
		}
	}
}

static void based_map_init(struct feature_map *fm, struct based_map *bm,
			   const struct based_config *c, const float *pm)
{
	bm->pm = pm;
	bm->dp = c->dp;
	fm->features = c->f;
	/* Every Taylor weight is >= 1/2: the floor only turns an impossible 0/0 into 0. */
	fm->add = 0;
	fm->floor = FLT_MIN;
	fm->ctx = bm;
	fm->query = based_features;
	fm->key = based_features;
}

/* ---- the self patterns with a window ---- */

/* One slice and its thread's workspace. */
struct based_slice {
	const float *q, *k, *v;	/* the slice's rows */
	float *out;
	int n, d, w;		/* n = m; w >= 0 */
	bool causal;
	float qscale;		/* log2(e)/√d: base-2 scores */
	const struct feature_map *fm;
	float *phq, *phk;	/* CHUNK x f: φ of a query chunk, of a key block */
	float *a;		/* CHUNK x CHUNK: φ(q)·φ(k) of the block */
	float *state;		/* S (f x d), then z (f) */
	int state_keys;		/* keys summed into the state */
	float *s;		/* CHUNK x KEY_TILE window scores, then weights */
	float *wnum, *tnum;	/* CHUNK x d: window and Taylor numerators */
	float *mx, *l, *tden;	/* CHUNK: base-2 shift, window sum, Taylor denominator */
	float *right;		/* ns: n Taylor denominators of the keys after the window */
};

/* Floats of workspace one thread needs for a self slice of n rows (ns keeps n more). */
static size_t slice_floats(const struct based_config *c, int n, int d, bool causal)
{
	size_t ch = BASED_CHUNK, f = c->f;

	return 2 * ch * f + ch * ch + f * d + f + ch * BASED_KEY_TILE + 2 * ch * d + 3 * ch +
	       (causal ? 0 : (size_t)n);
}

static void slice_carve(struct based_slice *sl, const struct based_config *c, float *ws)
{
	size_t ch = BASED_CHUNK, f = c->f;

	sl->phq = ws;
	sl->phk = sl->phq + ch * f;
	sl->a = sl->phk + ch * f;
	sl->state = sl->a + ch * ch;
	sl->s = sl->state + f * sl->d + f;
	sl->wnum = sl->s + ch * BASED_KEY_TILE;
	sl->tnum = sl->wnum + ch * sl->d;
	sl->mx = sl->tnum + ch * sl->d;
	sl->l = sl->mx + ch;
	sl->tden = sl->l + ch;
	sl->right = sl->causal ? NULL : sl->tden + ch;
}

/*
 * The window of query rows r0..r0+rows-1: wnum, l and mx get each row's Σ 2^(s2 - mx) v,
 * Σ 2^(s2 - mx) and mx = max(0, max s2) over its window keys (s2 = s log2 e), by an
 * online softmax over key tiles whose running max starts at 0.
 */
static void window_chunk(struct based_slice *sl, int r0, int rows)
{
	int d = sl->d, w = sl->w, lo = r0 - w > 0 ? r0 - w : 0;
	int hi = sl->causal ? r0 + rows : (r0 + rows + w < sl->n ? r0 + rows + w : sl->n);

	memset(sl->wnum, 0, sizeof(float) * rows * d);
	for (int a = 0; a < rows; a++)
		sl->mx[a] = sl->l[a] = 0;
	for (int k0 = lo; k0 < hi; k0 += BASED_KEY_TILE) {
		int cols = hi - k0 < BASED_KEY_TILE ? hi - k0 : BASED_KEY_TILE;

		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, d, sl->qscale,
			    sl->q + (size_t)r0 * d, d, sl->k + (size_t)k0 * d, d, 0.0f, sl->s,
			    BASED_KEY_TILE);
		for (int a = 0; a < rows; a++) {
			float *row = sl->s + (size_t)a * BASED_KEY_TILE, top, alpha, sum;
			int i = r0 + a, jlo = i - w - k0, jhi = (sl->causal ? i : i + w) + 1 - k0;

			jlo = jlo > 0 ? jlo : 0;
			jhi = jhi < cols ? jhi : cols;
			if (jlo >= jhi) {
				memset(row, 0, sizeof(float) * cols);
				continue;
			}
			top = fmaxf(sl->mx[a], row_max(row + jlo, jhi - jlo));
			alpha = exp2f(sl->mx[a] - top);
			sum = exp2_shifted_sum(row + jlo, jhi - jlo, top);
			memset(row, 0, sizeof(float) * jlo);
			memset(row + jhi, 0, sizeof(float) * (cols - jhi));
			if (alpha != 1.0f)
				for (int c = 0; c < d; c++)
					sl->wnum[(size_t)a * d + c] *= alpha;
			sl->l[a] = alpha * sl->l[a] + sum;
			sl->mx[a] = top;
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, cols, 1.0f, sl->s,
			    BASED_KEY_TILE, sl->v + (size_t)k0 * d, d, 1.0f, sl->wnum, d);
	}
}

/*
 * One chunk of a Taylor sweep, φ of query rows r0..r0+rows-1 already in phq: num
 * (rows x d) and den get the unshifted sums over the state's keys (which every row of
 * the chunk sees) and over the block [kb0, kb1), of which row i sees j <= i - lag
 * (!after) or j >= i + lag (after). Then the block joins the state.
 */
static void taylor_chunk(struct based_slice *sl, int r0, int rows, int kb0, int kb1, int lag,
			 bool after, float *num, float *den)
{
	int d = sl->d, f = sl->fm->features, kr = kb1 - kb0;
	float *s = sl->state, *z = sl->state + (size_t)f * d;

	if (sl->state_keys > 0) {
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, f, 1.0f, sl->phq,
			    f, s, d, 0.0f, num, d);
		for (int a = 0; a < rows; a++)
			den[a] = dot(sl->phq + (size_t)a * f, z, f);
	} else {
		memset(num, 0, sizeof(float) * rows * d);
		for (int a = 0; a < rows; a++)
			den[a] = 0;
	}
	if (kr <= 0)
		return;
	sl->fm->key(sl->fm, sl->k + (size_t)kb0 * d, d, kb0, kr, sl->phk);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, kr, f, 1.0f, sl->phq, f,
		    sl->phk, f, 0.0f, sl->a, kr);
	for (int a = 0; a < rows; a++) {
		float *ai = sl->a + (size_t)a * kr, sum = 0;
		int i = r0 + a, jlo = 0, jhi = kr;

		if (after)
			jlo = i + lag - kb0 < 0 ? 0 : i + lag - kb0 > kr ? kr : i + lag - kb0;
		else
			jhi = i - lag - kb0 + 1 < 0 ? 0 : i - lag - kb0 + 1 > kr ? kr :
			      i - lag - kb0 + 1;
		for (int j = 0; j < jlo; j++)
			ai[j] = 0;
		for (int j = jlo; j < jhi; j++)
			sum += ai[j];
		for (int j = jhi; j < kr; j++)
			ai[j] = 0;
		den[a] += sum;
	}
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, kr, 1.0f, sl->a, kr,
		    sl->v + (size_t)kb0 * d, d, 1.0f, num, d);
	/* the block joins the state: S += φ(k)ᵀV, z += Σ φ(k) */
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, f, d, kr, 1.0f, sl->phk, f,
		    sl->v + (size_t)kb0 * d, d, 1.0f, s, d);
	for (int j = 0; j < kr; j++)
		for (int r = 0; r < f; r++)
			z[r] += sl->phk[(size_t)j * f + r];
	sl->state_keys += kr;
}

static void state_reset(struct based_slice *sl)
{
	size_t f = sl->fm->features;

	memset(sl->state, 0, sizeof(float) * (f * sl->d + f));
	sl->state_keys = 0;
}

/*
 * ns, first: the Taylor sums of every row over the keys after its window (j >= i + w + 1),
 * from the last chunk back, into the output rows (numerators) and right (denominators).
 */
static void right_sweep(struct based_slice *sl)
{
	int n = sl->n, d = sl->d, lag = sl->w + 1;

	state_reset(sl);
	for (int r0 = (n - 1) / BASED_CHUNK * BASED_CHUNK; r0 >= 0; r0 -= BASED_CHUNK) {
		int rows = n - r0 < BASED_CHUNK ? n - r0 : BASED_CHUNK;
		int kb0 = r0 + lag < n ? r0 + lag : n;
		int kb1 = r0 + rows + lag < n ? r0 + rows + lag : n;
		float *num = sl->out + (size_t)r0 * d;

		if (kb1 <= kb0 && sl->state_keys == 0) {
			memset(num, 0, sizeof(float) * rows * d);
			memset(sl->right + r0, 0, sizeof(float) * rows);
			continue;
		}
		sl->fm->query(sl->fm, sl->q + (size_t)r0 * d, d, r0, rows, sl->phq);
		taylor_chunk(sl, r0, rows, kb0, kb1, lag, true, num, sl->right + r0);
	}
}

/*
 * cs, and ns after right_sweep(): by chunks from the start, the window and the Taylor
 * sums over the keys before it (j <= i - w - 1), then every row's one normaliser.
 */
static void left_sweep(struct based_slice *sl)
{
	int n = sl->n, d = sl->d, lag = sl->w + 1;

	state_reset(sl);
	for (int r0 = 0; r0 < n; r0 += BASED_CHUNK) {
		int rows = n - r0 < BASED_CHUNK ? n - r0 : BASED_CHUNK;
		int kb0 = r0 - lag > 0 ? r0 - lag : 0;
		int kb1 = r0 + rows - lag > 0 ? r0 + rows - lag : 0;
		float *o = sl->out + (size_t)r0 * d;

		if (sl->w >= 0)
			window_chunk(sl, r0, rows);
		else
			for (int a = 0; a < rows; a++)
				sl->mx[a] = sl->l[a] = 0;
		if (kb1 > kb0 || sl->state_keys > 0) {
			sl->fm->query(sl->fm, sl->q + (size_t)r0 * d, d, r0, rows, sl->phq);
			taylor_chunk(sl, r0, rows, kb0, kb1, lag, false, sl->tnum, sl->tden);
		} else {
			memset(sl->tnum, 0, sizeof(float) * rows * d);
			for (int a = 0; a < rows; a++)
				sl->tden[a] = 0;
		}
		for (int a = 0; a < rows; a++) {
			/* e^(-m_i): the window's shift applied to the Taylor sums */
			float e = exp2f(-sl->mx[a]), den = sl->tden[a], by;
			const float *wn = sl->w >= 0 ? sl->wnum + (size_t)a * d : NULL;
			float *tn = sl->tnum + (size_t)a * d, *oi = o + (size_t)a * d;

			if (!sl->causal) {
				den += sl->right[r0 + a];
				for (int c = 0; c < d; c++)
					tn[c] += oi[c];
			}
			by = 1.0f / (sl->l[a] + e * den);
			for (int c = 0; c < d; c++)
				oi[c] = ((wn ? wn[c] : 0) + e * tn[c]) * by;
		}
	}
}

/* ---- the forward pass ---- */

static int based_forward(const struct attn_problem *p, const float *q, const float *k,
			 const float *v, float *out)
{
	struct based_config c;
	struct feature_map probe;
	struct based_map probe_map;
	int slices = p->batch * p->heads, threads = max_threads(), d = p->d, saved;
	bool windowed, causal = p->pattern == ATTN_CS;
	size_t per_thread;
	float *pm, *ws;
	int ret;

	based_config(p, &c);
	/* ns without a window is the noncausal kernel over every key, as nc */
	windowed = pattern_is_self(p->pattern) && (causal || c.w >= 0);
	based_map_init(&probe, &probe_map, &c, NULL);
	per_thread = windowed ? slice_floats(&c, p->n, d, causal) :
				feature_scratch_floats(&probe, d) + feature_state_floats(&probe, d);
	pm = attn_alloc((size_t)p->heads * d * c.dp * sizeof(float));
	ws = attn_alloc((size_t)threads * per_thread * sizeof(float));
	if (!pm || !ws) {
		ret = -ENOMEM;
		goto out_free;
	}
	ret = based_plan(p, c.dp, pm);
	if (ret)
		goto out_free;

	saved = blas_serial_begin();
	#pragma omp parallel for schedule(dynamic) \
		if ((double)slices * ((double)p->n + p->m) * c.f * d >= BASED_FORWARD_PARALLEL_MIN)
	for (int sx = 0; sx < slices; sx++) {
		int b = sx / p->heads, h = sx % p->heads;
		size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);
		float *mine = ws + (size_t)thread_id() * per_thread;
		struct feature_map fm;
		struct based_map bm;

		based_map_init(&fm, &bm, &c, pm + (size_t)h * d * c.dp);
		if (windowed) {
			struct based_slice sl = {
				.q = q + qo, .k = k + kvo, .v = v + kvo, .out = out + qo,
				.n = p->n, .d = d, .w = c.w, .causal = causal,
				.qscale = (float)(M_LOG2E / sqrt((double)d)), .fm = &fm,
			};

			slice_carve(&sl, &c, mine);
			if (!causal)
				right_sweep(&sl);
			left_sweep(&sl);
		} else {
			float *state = mine + feature_scratch_floats(&fm, d);

			/* φ(k) depends on the query head's P: built per query head (see top) */
			feature_state_build(&fm, k + kvo, v + kvo, p->m, d, mine, state);
			feature_state_apply(&fm, state, q + qo, p->n, d, mine, out + qo);
		}
	}
	blas_serial_end(saved);

out_free:
	attn_free(ws);
	attn_free(pm);
	return ret;
}

/*
 * FLOPs of a Taylor chunk of `rows` queries with `held` keys in the state and `block`
 * keys in its block (what taylor_chunk() and its caller do; nothing when both are 0).
 */
static double taylor_chunk_flops(double rows, double held, double block, double f, double d,
				 double map)
{
	double flops;

	if (held == 0 && block == 0)
		return 0;
	flops = rows * map + block * map;
	if (held > 0)
		flops += rows * (2 * f * d + 2 * f);
	return flops + 2 * rows * block * (f + d) + block * (2 * f * d + f);
}

/*
 * FLOPs of the products of one forward pass, walking the chunks as the kernel does: the
 * feature map of a row (projection 2 d d', d'² products), the window's two products
 * (4 d per score of every key tile, masked entries included), and the Taylor products
 * (2 f d per row against the state and its f-long denominator dot, 2 f and 2 d per
 * (row, block key) pair, 2 f d + f per key joining the state). Exponentials and the
 * plan are left out.
 */
static double based_flops(const struct attn_problem *p)
{
	struct based_config c;
	double d = p->d, f, map, per_slice = 0;
	long n = p->n;
	int lag;

	based_config(p, &c);
	f = c.f;
	map = 2 * d * c.dp + (double)c.dp * c.dp;
	if (!pattern_is_self(p->pattern) || (p->pattern == ATTN_NS && c.w < 0)) {
		per_slice = p->m * (map + 2 * f * d + f) + n * (map + 2 * f * d + 2 * f);
		return per_slice * p->batch * p->heads;
	}
	lag = c.w + 1;
	for (long r0 = 0; r0 < n; r0 += BASED_CHUNK) {
		long rows = n - r0 < BASED_CHUNK ? n - r0 : BASED_CHUNK;
		long lo = r0 - c.w > 0 ? r0 - c.w : 0;
		long hi = p->pattern == ATTN_CS ? r0 + rows :
			  (r0 + rows + c.w < n ? r0 + rows + c.w : n);
		/* left sweep: keys in the state before the chunk, and in its block */
		long kb0 = r0 - lag > 0 ? r0 - lag : 0;
		long kb1 = r0 + rows - lag > 0 ? r0 + rows - lag : 0;

		if (c.w >= 0)
			per_slice += 4.0 * rows * (hi - lo) * d;
		per_slice += taylor_chunk_flops(rows, kb0, kb1 - kb0, f, d, map);
		if (p->pattern == ATTN_CS)
			continue;
		/* ns, right sweep: the state holds the keys from the block's end on */
		kb0 = r0 + lag < n ? r0 + lag : n;
		kb1 = r0 + rows + lag < n ? r0 + rows + lag : n;
		per_slice += taylor_chunk_flops(rows, n - kb1, kb1 - kb0, f, d, map);
	}
	return per_slice * p->batch * p->heads;
}

/*
 * The state the method keeps, float32: per query head (P makes φ(k) per query head) the
 * Taylor state S (f x d) and z (f); per KV head the keys and values of the window, cs
 * w + 1 positions, ns 2w + 1, at most the sequence; none in nc, cc or without a window.
 */
static double based_state_bytes(const struct attn_problem *p)
{
	struct based_config c;
	long span = 0;

	based_config(p, &c);
	if (c.w >= 0)
		span = p->pattern == ATTN_CS ? (long)c.w + 1 : 2L * c.w + 1;
	if (span > p->m)
		span = p->m;
	return (double)p->batch * p->heads * ((double)c.f * p->d + c.f) * sizeof(float) +
	       kv_cache_bytes(p, span);
}

/* ---- decoding ---- */

struct based_decode {
	struct attn_problem p;	/* n = m = capacity in positions */
	struct based_config c;
	int len;		/* positions fed so far */
	int ring;		/* window slots per KV head: min(w + 1, capacity); 0 without */
	int threads;		/* scratch slots */
	size_t state_floats;	/* per (batch, query head): S then z */
	float *pm;		/* heads x d x dp */
	float *states;		/* [batch][heads] Taylor states */
	struct kv_cache cache;	/* the ring; position j in slot j % ring */
	float *scratch;		/* [threads][f + ring]: φ of one row, window scores */
	float *leaving;		/* [2][batch * kv_heads][d]: the pair leaving the ring */
};

static void based_decode_free(void *state)
{
	struct based_decode *st = state;

	if (!st)
		return;
	attn_free(st->leaving);
	attn_free(st->scratch);
	kv_cache_release(&st->cache);
	attn_free(st->states);
	attn_free(st->pm);
	attn_free(st);
}

static int based_decode_init(const struct attn_problem *p, void **state)
{
	struct based_decode *st;
	int ret;

	*state = NULL;
	ret = decode_check_problem(p);
	if (ret)
		return ret;
	st = attn_calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->p = decode_problem(p);	/* the params are in st->c */
	based_config(p, &st->c);
	st->ring = st->c.w < 0 ? 0 : st->c.w + 1 < p->n ? st->c.w + 1 : p->n;
	if (st->ring > 0) {
		ret = kv_cache_init(&st->cache, &st->p, st->ring);
		if (ret)
			goto out_free_state;
	}
	st->threads = max_threads();
	st->state_floats = (size_t)st->c.f * p->d + st->c.f;
	st->pm = attn_alloc((size_t)p->heads * p->d * st->c.dp * sizeof(float));
	st->states = attn_calloc((size_t)p->batch * p->heads * st->state_floats, sizeof(float));
	st->scratch = attn_alloc((size_t)st->threads * (st->c.f + st->ring) * sizeof(float));
	st->leaving = attn_alloc((size_t)2 * p->batch * p->kv_heads * p->d * sizeof(float));
	if (!st->pm || !st->states || !st->scratch || !st->leaving) {
		ret = -ENOMEM;
		goto out_free_state;
	}
	ret = based_plan(&st->p, st->c.dp, st->pm);
	if (ret)
		goto out_free_state;
	*state = st;
	return 0;

out_free_state:
	based_decode_free(st);
	return ret;
}

/* Adds φ(k)vᵀ and φ(k) of one key to a Taylor state; phi is f floats of scratch. */
static void state_add(const struct feature_map *fm, float *state, const float *k,
		      const float *v, int d, float *phi)
{
	int f = fm->features;
	float *z = state + (size_t)f * d;

	fm->key(fm, k, d, 0, 1, phi);
	for (int r = 0; r < f; r++) {
		float *sr = state + (size_t)r * d;

		for (int c = 0; c < d; c++)
			sr[c] += phi[r] * v[c];
		z[r] += phi[r];
	}
}

static int based_decode_step(void *state, const float *q, const float *k, const float *v,
			     float *out)
{
	struct based_decode *st = state;
	const struct attn_problem *p = &st->p;
	int slices = p->batch * p->heads, d = p->d, t = st->len, f = st->c.f, saved;
	int group = p->heads / p->kv_heads, ring = st->ring;
	/* with no window the new key is a Taylor key at once; else the one leaving, if any */
	bool joins = ring == 0 || t >= st->c.w + 1;
	int keys = t + 1 < ring ? t + 1 : ring;
	float qscale = (float)(M_LOG2E / sqrt((double)d));
	const float *lk = k, *lv = v;

	if (t >= p->n)
		return -ENOSPC;
	st->len++;
	if (ring > 0) {
		/* key t - w - 1 leaves the slot k_t takes: kept aside for the Taylor states */
		if (joins)
			for (int kv = 0; kv < p->batch * p->kv_heads; kv++) {
				size_t at = kv_cache_slice(&st->cache, kv) + (size_t)(t % ring) * d;

				memcpy(st->leaving + (size_t)kv * d, st->cache.k + at,
				       sizeof(float) * d);
				memcpy(st->leaving + ((size_t)p->batch * p->kv_heads + kv) * d,
				       st->cache.v + at, sizeof(float) * d);
			}
		lk = st->leaving;
		lv = st->leaving + (size_t)p->batch * p->kv_heads * d;
		kv_cache_put(&st->cache, t % ring, k, v);
	}

	saved = blas_serial_begin();
	#pragma omp parallel for num_threads(st->threads) schedule(static) \
		if ((double)slices * (f + keys) * d >= BASED_DECODE_PARALLEL_MIN)
	for (int sx = 0; sx < slices; sx++) {
		int b = sx / p->heads, h = sx % p->heads, kv = b * p->kv_heads + h / group;
		const float *qi = q + (size_t)sx * d;
		float *sst = st->states + (size_t)sx * st->state_floats, *z = sst + (size_t)f * d;
		float *phi = st->scratch + (size_t)thread_id() * (f + ring), *sc = phi + f;
		float *o = out + (size_t)sx * d, mx = 0, wsum = 0, tden, e;
		struct feature_map fm;
		struct based_map bm;

		based_map_init(&fm, &bm, &st->c, st->pm + (size_t)h * d * st->c.dp);
		if (joins)
			state_add(&fm, sst, lk + (size_t)kv * d, lv + (size_t)kv * d, d, phi);
		for (int c = 0; c < d; c++)
			o[c] = 0;
		if (keys > 0) {
			const float *kc = st->cache.k + kv_cache_slice(&st->cache, kv);
			const float *vc = st->cache.v + kv_cache_slice(&st->cache, kv);

			for (int j = 0; j < keys; j++)
				sc[j] = qscale * dot(qi, kc + (size_t)j * d, d);
			mx = fmaxf(0, row_max(sc, keys));
			wsum = exp2_shifted_sum(sc, keys, mx);
			for (int j = 0; j < keys; j++)
				for (int c = 0; c < d; c++)
					o[c] += sc[j] * vc[(size_t)j * d + c];
		}
		fm.query(&fm, qi, d, t, 1, phi);
		tden = dot(phi, z, f);
		/* e^(-m_i): the window's shift applied to the Taylor sums */
		e = exp2f(-mx);
		for (int r = 0; r < f; r++) {
			float pr = e * phi[r];

			for (int c = 0; c < d; c++)
				o[c] += pr * sst[(size_t)r * d + c];
		}
		e = 1.0f / (wsum + e * tden);
		for (int c = 0; c < d; c++)
			o[c] *= e;
	}
	blas_serial_end(saved);
	return 0;
}

const struct variant_ops based_variant = {
	.name		= "based",
	.family		= "hybrid",
	.summary	= "[harness] exact softmax in a w-key window + 2nd-order Taylor kernel "
			  "(1 + d' + d'^2 features) beyond it, one normaliser; nc/cc Taylor only",
	.citation	= "Arora et al. 2024, Simple linear attention language models balance "
			  "the recall-throughput tradeoff, ICML (arXiv 2402.18668)",
	.patterns	= PATTERNS_ALL,
	.extensions	= PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_NC) | PATTERN_BIT(ATTN_CC),
	.flags		= 0,
	.params		= based_params,
	.n_params	= BASED_N_PARAMS,
	.forward	= based_forward,
	.flops		= based_flops,
	.state_bytes	= based_state_bytes,
	.decode_init	= based_decode_init,
	.decode_step	= based_decode_step,
	.decode_free	= based_decode_free,
};
