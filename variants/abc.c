/*
 * abc.c - ABC, attention with bounded-memory control (Peng et al. 2022), as CAB's ABC,
 * training-free: the slot projections are their untrained initialisation.
 *
 * A memory of r slots replaces the keys and values. Slot s holds a softmax-weighted
 * average of keys, K̃[s] = Σ_j e^{α_js} k_j / Σ_j e^{α_js} with α = K W_k, and likewise
 * of values with β = V W_v; a query attends over the r slots:
 *
 *	o_i = Σ_s softmax_s(σ q_i·K̃[s]) Ṽ[s]
 *
 * ns, nc and cc (CAB's non-causal branch, which CAB also uses for causal cross) average
 * over every key, once per KV head, then each query head reads the r slots. cs (the
 * default, faithful ABC) averages over keys j <= i, so every row has its own memory; it
 * is computed by chunks of rows: a row's score against slot s is the part carried over
 * from earlier chunks, q_i·S_K[s] / Z_is, plus the masked product Q_c K_cᵀ weighted by
 * the chunk's e^{α}, all OpenBLAS products, never a loop over tokens.
 *
 * Sums are kept at a per-slot scale e^{-max}, the running maximum of that slot's logits,
 * and rescaled when a chunk raises it. Inside a chunk every row shares the chunk's
 * maximum, so a chunk is cut short before a row that would raise some slot's logit more
 * than ABC_SPAN above what its first row sees: then no row's normaliser can fall below
 * e^{-ABC_SPAN}, far inside float range, whatever later rows hold.
 *
 * abc.cab_causal=1 reproduces CAB's causal-self branch, which never sums over j: slot s
 * at step i is w_is k_i with w_is = e^{α_is} / Σ_{j<=i} e^{α_js}, and the output is
 * o_i = (Σ_s softmax_s(σ q_i·w_is k_i) w'_is) v_i (w' from β). A token attends only to
 * itself, scaled by how large its logits are against the earlier ones': this is not ABC
 * and only there to compare with CAB. It changes cs only.
 *
 * Decoding (cs, both modes) keeps per KV head the running sums, normalisers and maxima
 * (only the normalisers and maxima with cab_causal): a state that does not grow.
 */
#include "variant.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "common.h"
#include "memory.h"
#include "random.h"
#include "threads.h"

#define ABC_SLOTS_DEFAULT 16	/* CAB's num_landmarks */

/* plan_rng stream of the projections: the catalogue section, one pair for all heads. */
#define ABC_STREAM 25

/*
 * Rows per chunk in cs (and per block of keys or queries elsewhere): the masked c x c
 * products cost about what the slot products of the chunk do at r = 16, d = 64.
 */
#define ABC_CHUNK 64

/*
 * A chunk stops before a row whose logit exceeds the running maximum its first row sees
 * by more than this, so every normaliser of the chunk stays >= e^-60 (about 1e-26),
 * well above float's smallest normal number (e^-87) even after multiplying by scores.
 */
#define ABC_SPAN 60.0f

/* Below this many multiply-adds per step (slices x r x d) a parallel region costs more. */
#define ABC_DECODE_PARALLEL_MIN 32768

static const struct variant_param abc_params[] = {
	{
		.name		= "slots",
		.def		= ABC_SLOTS_DEFAULT,
		.min		= 1,
		.max		= 4096,
		.integer	= true,
		.help		= "r: memory slots, each a softmax-weighted average of keys "
				  "(and of values)",
	},
	{
		.name		= "cab_causal",
		.def		= 0,
		.min		= 0,
		.max		= 1,
		.integer	= true,
		.help		= "1: cs as CAB's causal branch (a token attends only to "
				  "itself; not ABC)",
	},
};

static int abc_slots(const struct attn_problem *p)
{
	return p->params ? (int)p->params[0] : ABC_SLOTS_DEFAULT;
}

static bool abc_cab_causal(const struct attn_problem *p)
{
	return p->params && p->params[1] != 0 && p->pattern == ATTN_CS;
}

/*
 * The plan: W_k then W_v, each d x r row-major, entries U(-b, b) with b = sqrt(3/(d + r))
 * (CAB's Xavier-uniform with gain 2^-1/2), drawn in that order from one stream of the
 * seed and rounded to float. Returns 2 d r floats from attn_alloc(), or NULL.
 */
static float *abc_projections(const struct attn_problem *p, int r)
{
	size_t count = 2 * (size_t)p->d * r;
	double bound = sqrt(3.0 / (p->d + r));
	struct plan_rng g = plan_rng_make(p->seed, ABC_STREAM);
	float *w = attn_alloc(count * sizeof(float));

	if (!w)
		return NULL;
	for (size_t i = 0; i < count; i++)
		w[i] = (float)(bound * (2 * plan_rng_uniform(&g) - 1));
	return w;
}

/*
 * The memory of one KV slice, in one block of abc_memory_floats(): per slot the
 * normalisers zk, zv (Σ e^{logit - max}), the running maxima mk, mv (-inf before the
 * first row), then the sums sk, sv (r x d, Σ e^{logit - max} x). cab_causal needs only
 * the first 4r floats.
 */
struct abc_memory {
	float *zk, *zv, *mk, *mv, *sk, *sv;
};

static size_t abc_memory_floats(int r, int d, bool cab)
{
	return cab ? 4 * (size_t)r : 4 * (size_t)r + 2 * (size_t)r * d;
}

/* Points mem into block and empties it. */
static void abc_memory_reset(struct abc_memory *mem, float *block, int r, int d, bool cab)
{
	mem->zk = block;
	mem->zv = block + r;
	mem->mk = block + 2 * r;
	mem->mv = block + 3 * r;
	mem->sk = cab ? NULL : block + 4 * r;
	mem->sv = cab ? NULL : block + 4 * r + (size_t)r * d;
	memset(block, 0, sizeof(float) * abc_memory_floats(r, d, cab));
	for (int s = 0; s < r; s++)
		mem->mk[s] = mem->mv[s] = -INFINITY;
}

/* logit (rows x r) = x (rows x d) W (d x r). */
static void abc_logits(const float *x, int rows, int d, const float *w, int r, float *logit)
{
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, r, d, 1.0f, x, d, w, r,
		    0.0f, logit, r);
}

/*
 * Raises the running maxima mx to cover `rows` rows of logits, rescales the sums
 * (r x d, may be NULL) and normalisers z to the new maxima, and turns the logits into
 * weights e^{logit - max} in place.
 */
static void abc_raise(float *logit, int rows, int r, int d, float *sum, float *z, float *mx)
{
	for (int s = 0; s < r; s++) {
		float top = mx[s], f;

		for (int i = 0; i < rows; i++)
			top = fmaxf(top, logit[(size_t)i * r + s]);
		if (top == mx[s])
			continue;
		/* nothing is held before the first row: the factor is 0 on zeros */
		f = mx[s] == -INFINITY ? 0.0f : expf(mx[s] - top);
		z[s] *= f;
		for (int c = 0; sum && c < d; c++)
			sum[(size_t)s * d + c] *= f;
		mx[s] = top;
	}
	for (int i = 0; i < rows; i++)
		for (int s = 0; s < r; s++)
			logit[(size_t)i * r + s] = expf(logit[(size_t)i * r + s] - mx[s]);
}

/* sum (r x d) += weightᵀ x over `rows` rows. */
static void abc_add_rows(float *sum, const float *weight, const float *x, int rows, int r,
			 int d)
{
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, d, rows, 1.0f, weight, r, x, d,
		    1.0f, sum, d);
}

/* Each row of x (rows x r) becomes its softmax, times `scale` first. */
static void abc_softmax_rows(float *x, int rows, int r, float scale)
{
	for (int i = 0; i < rows; i++) {
		float *row = x + (size_t)i * r, top = -INFINITY, total = 0;

		for (int s = 0; s < r; s++) {
			row[s] *= scale;
			top = fmaxf(top, row[s]);
		}
		for (int s = 0; s < r; s++) {
			row[s] = expf(row[s] - top);
			total += row[s];
		}
		for (int s = 0; s < r; s++)
			row[s] /= total;
	}
}

/* Zeroes the entries above the diagonal of a rows x rows matrix: column j > row i. */
static void abc_mask_upper(float *a, int rows)
{
	for (int i = 0; i < rows; i++)
		memset(a + (size_t)i * rows + i + 1, 0, sizeof(float) * (rows - i - 1));
}

/* ---- ns, nc, cc: one memory over every key ---- */

/*
 * K̃ and Ṽ (r x d each, in the sums of block) of one KV slice of m rows; logit is
 * ABC_CHUNK x r scratch.
 */
static void abc_summarise(const float *k, const float *v, int m, int d, int r, const float *w,
			  float *logit, float *block)
{
	const float *wk = w, *wv = w + (size_t)d * r;
	struct abc_memory mem;

	abc_memory_reset(&mem, block, r, d, false);
	for (int r0 = 0; r0 < m; r0 += ABC_CHUNK) {
		int rows = m - r0 < ABC_CHUNK ? m - r0 : ABC_CHUNK;
		const float *kc = k + (size_t)r0 * d, *vc = v + (size_t)r0 * d;

		abc_logits(kc, rows, d, wk, r, logit);
		abc_raise(logit, rows, r, d, mem.sk, mem.zk, mem.mk);
		abc_add_rows(mem.sk, logit, kc, rows, r, d);
		for (int i = 0; i < rows; i++)
			for (int s = 0; s < r; s++)
				mem.zk[s] += logit[(size_t)i * r + s];
		abc_logits(vc, rows, d, wv, r, logit);
		abc_raise(logit, rows, r, d, mem.sv, mem.zv, mem.mv);
		abc_add_rows(mem.sv, logit, vc, rows, r, d);
		for (int i = 0; i < rows; i++)
			for (int s = 0; s < r; s++)
				mem.zv[s] += logit[(size_t)i * r + s];
	}
	/* each slot holds its largest weight e^0 = 1, so z >= 1 */
	for (int s = 0; s < r; s++)
		for (int c = 0; c < d; c++) {
			mem.sk[(size_t)s * d + c] /= mem.zk[s];
			mem.sv[(size_t)s * d + c] /= mem.zv[s];
		}
}

/* out (n x d) = softmax_r(σ Q K̃ᵀ) Ṽ by blocks of rows; p is ABC_CHUNK x r scratch. */
static void abc_read(const float *q, int n, int d, int r, const float *kt, const float *vt,
		     float *p, float *out)
{
	float scale = 1.0f / sqrtf((float)d);

	for (int r0 = 0; r0 < n; r0 += ABC_CHUNK) {
		int rows = n - r0 < ABC_CHUNK ? n - r0 : ABC_CHUNK;

		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, r, d, 1.0f,
			    q + (size_t)r0 * d, d, kt, d, 0.0f, p, r);
		abc_softmax_rows(p, rows, r, scale);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, r, 1.0f, p, r,
			    vt, d, 0.0f, out + (size_t)r0 * d, d);
	}
}

static int abc_forward_global(const struct attn_problem *p, int r, const float *w,
			      const float *q, const float *k, const float *v, float *out)
{
	size_t stride = abc_memory_floats(r, p->d, false);
	int kv_slices = p->batch * p->kv_heads, slices = p->batch * p->heads;
	int group = p->heads / p->kv_heads, threads = max_threads(), saved;
	float *blocks, *scratch;

	blocks = attn_alloc((size_t)kv_slices * stride * sizeof(float));
	scratch = attn_alloc((size_t)threads * ABC_CHUNK * r * sizeof(float));
	if (!blocks || !scratch) {
		attn_free(blocks);
		attn_free(scratch);
		return -ENOMEM;
	}
	saved = blas_serial_begin();
	/* K/V-only work once per KV head, shared by its query group */
	#pragma omp parallel for schedule(static) if (kv_slices > 1)
	for (int i = 0; i < kv_slices; i++) {
		size_t kvo = (size_t)i * p->m * p->d;

		float *logit = scratch + (size_t)thread_id() * ABC_CHUNK * r;

		abc_summarise(k + kvo, v + kvo, p->m, p->d, r, w, logit, blocks + i * stride);
	}
	#pragma omp parallel for schedule(static) if (slices > 1)
	for (int i = 0; i < slices; i++) {
		int b = i / p->heads, h = i % p->heads;
		const float *block = blocks + (size_t)(b * p->kv_heads + h / group) * stride;
		/* K̃ and Ṽ are the sums of the memory, divided in place */
		const float *kt = block + 4 * r, *vt = kt + (size_t)r * p->d;

		abc_read(q + problem_q_offset(p, b, h), p->n, p->d, r, kt, vt,
			 scratch + (size_t)thread_id() * ABC_CHUNK * r,
			 out + problem_q_offset(p, b, h));
	}
	blas_serial_end(saved);
	attn_free(scratch);
	attn_free(blocks);
	return 0;
}

/* ---- cs: a memory per row, by chunks ---- */

/* Scratch floats of one causal task: logits, running normalisers, scores, c x c. */
static size_t abc_causal_scratch_floats(int r, int d)
{
	size_t c = ABC_CHUNK;

	return 5 * c * r + c * c + abc_memory_floats(r, d, false);
}

/*
 * Rows of the chunk of `rows` that may share one scale: it ends before the first row
 * (after the first) with a logit more than ABC_SPAN above the maximum its first row
 * sees (the running one, raised by the first row's own logits).
 */
static int abc_cut(const float *logit, int rows, int r, const float *mx)
{
	for (int i = 1; i < rows; i++)
		for (int s = 0; s < r; s++)
			if (logit[(size_t)i * r + s] > fmaxf(mx[s], logit[s]) + ABC_SPAN)
				return i;
	return rows;
}

/* z (rows x r): row i = z0 + Σ_{j<=i} weight_j, the normalisers of each row. */
static void abc_prefix(float *z, const float *z0, const float *weight, int rows, int r)
{
	for (int s = 0; s < r; s++)
		z[s] = z0[s] + weight[s];
	for (int i = 1; i < rows; i++) {
		float *row = z + (size_t)i * r;

		for (int s = 0; s < r; s++)
			row[s] = row[s - r] + weight[(size_t)i * r + s];
	}
}

/*
 * Faithful ABC over one KV slice (k, v: n x d) for query heads q[0..heads-1] (each n x d
 * at q + h * n * d, written likewise to out): the memories of rows in a chunk are the
 * carried sums plus the chunk's rows up to each, every product an sgemm.
 */
static void abc_causal_slice(const float *q, const float *k, const float *v, int heads, int n,
			     int d, int r, const float *w, float *scratch, float *out)
{
	const float *wk = w, *wv = w + (size_t)d * r;
	const size_t c = ABC_CHUNK;
	float *ek = scratch, *ev = ek + c * r, *ck = ev + c * r, *cv = ck + c * r;
	float *pr = cv + c * r, *g = pr + c * r, *block = g + c * c;
	float scale = 1.0f / sqrtf((float)d);
	struct abc_memory mem;
	int r0 = 0;

	abc_memory_reset(&mem, block, r, d, false);
	while (r0 < n) {
		int rows = n - r0 < ABC_CHUNK ? n - r0 : ABC_CHUNK, cut;
		const float *kc = k + (size_t)r0 * d, *vc = v + (size_t)r0 * d;

		abc_logits(kc, rows, d, wk, r, ek);
		abc_logits(vc, rows, d, wv, r, ev);
		cut = abc_cut(ek, rows, r, mem.mk);
		rows = abc_cut(ev, cut, r, mem.mv);
		abc_raise(ek, rows, r, d, mem.sk, mem.zk, mem.mk);
		abc_raise(ev, rows, r, d, mem.sv, mem.zv, mem.mv);
		abc_prefix(ck, mem.zk, ek, rows, r);
		abc_prefix(cv, mem.zv, ev, rows, r);
		for (int h = 0; h < heads; h++) {
			const float *qc = q + ((size_t)h * n + r0) * d;
			float *oc = out + ((size_t)h * n + r0) * d;

			/* q_i·(carried key sums + Σ_{j<=i in chunk} e^{α_j} k_j) */
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, r, d, 1.0f,
				    qc, d, mem.sk, d, 0.0f, pr, r);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, rows, d,
				    1.0f, qc, d, kc, d, 0.0f, g, rows);
			abc_mask_upper(g, rows);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, r, rows,
				    1.0f, g, rows, ek, r, 1.0f, pr, r);
			for (size_t x = 0; x < (size_t)rows * r; x++)
				pr[x] /= ck[x];
			abc_softmax_rows(pr, rows, r, scale);
			/* p_is / Zv_is weighs the value sums the same way */
			for (size_t x = 0; x < (size_t)rows * r; x++)
				pr[x] /= cv[x];
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, r, 1.0f,
				    pr, r, mem.sv, d, 0.0f, oc, d);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, rows, r,
				    1.0f, pr, r, ev, r, 0.0f, g, rows);
			abc_mask_upper(g, rows);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, rows,
				    1.0f, g, rows, vc, d, 1.0f, oc, d);
		}
		abc_add_rows(mem.sk, ek, kc, rows, r, d);
		abc_add_rows(mem.sv, ev, vc, rows, r, d);
		memcpy(mem.zk, ck + (size_t)(rows - 1) * r, sizeof(float) * r);
		memcpy(mem.zv, cv + (size_t)(rows - 1) * r, sizeof(float) * r);
		r0 += rows;
	}
}

/*
 * Adds one row's logits (r) to running maxima and normalisers and turns them into
 * w_s = e^{x_s} / Σ_{j<=i} e^{x_js}: CAB's causal weights. Shared with decoding.
 */
static void abc_cab_weights(float *x, float *mx, float *z, int r)
{
	for (int s = 0; s < r; s++) {
		if (x[s] > mx[s]) {
			/* e^{-inf} = 0 on the empty normaliser before the first row */
			z[s] = z[s] * expf(mx[s] - x[s]) + 1.0f;
			mx[s] = x[s];
			x[s] = 1.0f / z[s];
		} else {
			float e = expf(x[s] - mx[s]);

			z[s] += e;
			x[s] = e / z[s];
		}
	}
}

/* o = (Σ_s softmax_s(σ q·k w_s) w'_s) v: CAB's causal output of one row. */
static void abc_cab_row(const float *q, const float *k, const float *v, const float *wk,
			const float *wv, int d, int r, float *out)
{
	float qk = dot(q, k, d) / sqrtf((float)d), top = -INFINITY, total = 0, mix = 0;

	for (int s = 0; s < r; s++)
		top = fmaxf(top, qk * wk[s]);
	for (int s = 0; s < r; s++) {
		float e = expf(qk * wk[s] - top);

		total += e;
		mix += e * wv[s];
	}
	mix /= total;
	for (int c = 0; c < d; c++)
		out[c] = mix * v[c];
}

/* CAB's causal branch over one KV slice, laid out as abc_causal_slice(). */
static void abc_cab_slice(const float *q, const float *k, const float *v, int heads, int n,
			  int d, int r, const float *w, float *scratch, float *out)
{
	const float *wk = w, *wv = w + (size_t)d * r;
	float *ek = scratch, *ev = ek + (size_t)ABC_CHUNK * r;
	float *block = ev + (size_t)ABC_CHUNK * r;
	struct abc_memory mem;

	abc_memory_reset(&mem, block, r, d, true);
	for (int r0 = 0; r0 < n; r0 += ABC_CHUNK) {
		int rows = n - r0 < ABC_CHUNK ? n - r0 : ABC_CHUNK;

		abc_logits(k + (size_t)r0 * d, rows, d, wk, r, ek);
		abc_logits(v + (size_t)r0 * d, rows, d, wv, r, ev);
		for (int i = 0; i < rows; i++) {
			abc_cab_weights(ek + (size_t)i * r, mem.mk, mem.zk, r);
			abc_cab_weights(ev + (size_t)i * r, mem.mv, mem.zv, r);
		}
		for (int h = 0; h < heads; h++)
			for (int i = 0; i < rows; i++) {
				size_t at = (size_t)(r0 + i) * d, qat = (size_t)h * n * d + at;

				abc_cab_row(q + qat, k + at, v + at, ek + (size_t)i * r,
					    ev + (size_t)i * r, d, r, out + qat);
			}
	}
}

static int abc_forward_causal(const struct attn_problem *p, int r, bool cab, const float *w,
			      const float *q, const float *k, const float *v, float *out)
{
	int group = p->heads / p->kv_heads, threads = max_threads(), saved;
	/*
	 * A task is a KV slice with its query group, sharing the K/V work; with fewer KV
	 * slices than threads, a task per query head keeps every thread busy and repeats
	 * the K/V work instead. Each head's arithmetic is the same either way.
	 */
	bool shared = p->batch * p->kv_heads >= threads || group == 1;
	int per_task = shared ? group : 1;
	int tasks = p->batch * p->heads / per_task;
	size_t floats = abc_causal_scratch_floats(r, p->d);
	float *scratch;

	scratch = attn_alloc((size_t)threads * floats * sizeof(float));
	if (!scratch)
		return -ENOMEM;
	saved = blas_serial_begin();
	#pragma omp parallel for schedule(static) if (tasks > 1)
	for (int t = 0; t < tasks; t++) {
		int b = t * per_task / p->heads, h = t * per_task % p->heads;
		size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);
		float *mine = scratch + (size_t)thread_id() * floats;

		if (cab)
			abc_cab_slice(q + qo, k + kvo, v + kvo, per_task, p->n, p->d, r, w,
				      mine, out + qo);
		else
			abc_causal_slice(q + qo, k + kvo, v + kvo, per_task, p->n, p->d, r, w,
					 mine, out + qo);
	}
	blas_serial_end(saved);
	attn_free(scratch);
	return 0;
}

static int abc_forward(const struct attn_problem *p, const float *q, const float *k,
		       const float *v, float *out)
{
	int r = abc_slots(p), ret;
	float *w;

	w = abc_projections(p, r);
	if (!w)
		return -ENOMEM;
	if (p->pattern == ATTN_CS)
		ret = abc_forward_causal(p, r, abc_cab_causal(p), w, q, k, v, out);
	else
		ret = abc_forward_global(p, r, w, q, k, v, out);
	attn_free(w);
	return ret;
}

/*
 * Floating-point operations (2 per multiply-add) of the products: the logits (2 M d r
 * each for K and V) and the slot sums (2 M r d each) per KV head; per query head, the
 * scores and outputs against the slots (4 N r d), and in cs the masked c x c products
 * of each chunk (about 4 N c (d + r) more, c = ABC_CHUNK). CAB's causal branch does
 * only the logits and a dot product and a scaling per row.
 */
static double abc_flops(const struct attn_problem *p)
{
	double r = abc_slots(p), d = p->d, n = p->n, m = p->m;
	double kv = (double)p->batch * p->kv_heads, heads = (double)p->batch * p->heads;
	double c = n < ABC_CHUNK ? n : ABC_CHUNK;

	if (abc_cab_causal(p))
		return kv * 4 * m * d * r + heads * 4 * n * d;
	if (p->pattern == ATTN_CS)
		return kv * 8 * m * d * r + heads * (4 * n * r * d + 4 * n * c * (d + r));
	return kv * 8 * m * d * r + heads * 4 * n * r * d;
}

/*
 * Bytes of the memory the outputs are read from, float32, per KV head (the memory
 * depends only on K and V, so a query group shares it): ns, nc, cc keep K̃ and Ṽ,
 * 2 r d floats; cs keeps the running sums, normalisers and maxima, 2 r d + 4 r floats;
 * CAB's causal branch needs only the normalisers and maxima, 4 r floats.
 */
static double abc_state_bytes(const struct attn_problem *p)
{
	double r = abc_slots(p), kv = (double)p->batch * p->kv_heads, floats;

	if (abc_cab_causal(p))
		floats = 4 * r;
	else if (p->pattern == ATTN_CS)
		floats = 2 * r * p->d + 4 * r;
	else
		floats = 2 * r * p->d;
	return kv * floats * sizeof(float);
}

/* ---- incremental decoding (cs) ---- */

struct abc_decode {
	struct attn_problem p;	/* n = m = capacity in positions */
	int r;			/* slots */
	bool cab;		/* CAB's causal branch */
	int len;		/* positions fed so far */
	int threads;		/* scratch rows; the most threads a step runs on */
	size_t stride;		/* floats of one KV slice's memory */
	float *w;		/* W_k then W_v, d x r each */
	float *blocks;		/* [batch * kv_heads][stride] memories */
	float *scratch;		/* [threads][3 r]: logits of k, of v, scores */
};

static void abc_decode_free(void *state)
{
	struct abc_decode *st = state;

	if (!st)
		return;
	attn_free(st->scratch);
	attn_free(st->blocks);
	attn_free(st->w);
	attn_free(st);
}

static int abc_decode_init(const struct attn_problem *p, void **state)
{
	struct abc_decode *st;
	int kv_slices = p->batch * p->kv_heads;

	*state = NULL;
	if (p->pattern != ATTN_CS)
		return -ENOTSUP;
	st = attn_calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->p = decode_problem(p);
	st->r = abc_slots(p);
	st->cab = abc_cab_causal(p);
	st->threads = max_threads();
	st->stride = abc_memory_floats(st->r, p->d, st->cab);
	st->w = abc_projections(p, st->r);
	st->blocks = attn_alloc((size_t)kv_slices * st->stride * sizeof(float));
	st->scratch = attn_alloc((size_t)st->threads * 3 * st->r * sizeof(float));
	if (!st->w || !st->blocks || !st->scratch) {
		abc_decode_free(st);
		return -ENOMEM;
	}
	for (int i = 0; i < kv_slices; i++) {
		struct abc_memory mem;

		abc_memory_reset(&mem, st->blocks + i * st->stride, st->r, p->d, st->cab);
	}
	*state = st;
	return 0;
}

/* x (r) = row (d) W (d x r). */
static void abc_row_logits(const float *row, const float *w, int d, int r, float *x)
{
	for (int s = 0; s < r; s++)
		x[s] = 0;
	for (int c = 0; c < d; c++)
		for (int s = 0; s < r; s++)
			x[s] += row[c] * w[(size_t)c * r + s];
}

/* Adds position k, v to a faithful memory; ek, ev (r) are scratch. */
static void abc_memory_add(struct abc_memory *mem, const float *k, const float *v,
			   const float *w, int d, int r, float *ek, float *ev)
{
	abc_row_logits(k, w, d, r, ek);
	abc_row_logits(v, w + (size_t)d * r, d, r, ev);
	abc_raise(ek, 1, r, d, mem->sk, mem->zk, mem->mk);
	abc_raise(ev, 1, r, d, mem->sv, mem->zv, mem->mv);
	for (int s = 0; s < r; s++) {
		for (int c = 0; c < d; c++) {
			mem->sk[(size_t)s * d + c] += ek[s] * k[c];
			mem->sv[(size_t)s * d + c] += ev[s] * v[c];
		}
		mem->zk[s] += ek[s];
		mem->zv[s] += ev[s];
	}
}

/* One query against a faithful memory; x (r) is scratch. */
static void abc_memory_read(const struct abc_memory *mem, const float *q, int d, int r,
			    float *x, float *out)
{
	for (int s = 0; s < r; s++)
		x[s] = dot(q, mem->sk + (size_t)s * d, d) / mem->zk[s];
	abc_softmax_rows(x, 1, r, 1.0f / sqrtf((float)d));
	for (int c = 0; c < d; c++)
		out[c] = 0;
	for (int s = 0; s < r; s++) {
		float a = x[s] / mem->zv[s];

		for (int c = 0; c < d; c++)
			out[c] += a * mem->sv[(size_t)s * d + c];
	}
}

static int abc_decode_step(void *state, const float *q, const float *k, const float *v,
			   float *out)
{
	struct abc_decode *st = state;
	const struct attn_problem *p = &st->p;
	int kv_slices = p->batch * p->kv_heads, group = p->heads / p->kv_heads;
	int d = p->d, r = st->r;

	if (st->len >= p->m)
		return -ENOSPC;
	st->len++;

	#pragma omp parallel for num_threads(st->threads) schedule(static) \
		if ((double)p->batch * p->heads * r * d >= ABC_DECODE_PARALLEL_MIN)
	for (int i = 0; i < kv_slices; i++) {
		float *ek = st->scratch + (size_t)thread_id() * 3 * r;
		float *ev = ek + r, *x = ev + r;
		const float *ki = k + (size_t)i * d, *vi = v + (size_t)i * d;
		struct abc_memory mem;
		float *block = st->blocks + i * st->stride;

		/* the block stays as the last step left it: point into it, no reset */
		mem.zk = block;
		mem.zv = block + r;
		mem.mk = block + 2 * r;
		mem.mv = block + 3 * r;
		mem.sk = st->cab ? NULL : block + 4 * r;
		mem.sv = st->cab ? NULL : mem.sk + (size_t)r * d;
		if (st->cab) {
			abc_row_logits(ki, st->w, d, r, ek);
			abc_row_logits(vi, st->w + (size_t)d * r, d, r, ev);
			abc_cab_weights(ek, mem.mk, mem.zk, r);
			abc_cab_weights(ev, mem.mv, mem.zv, r);
		} else {
			abc_memory_add(&mem, ki, vi, st->w, d, r, ek, ev);
		}
		for (int h = i * group; h < (i + 1) * group; h++) {
			if (st->cab)
				abc_cab_row(q + (size_t)h * d, ki, vi, ek, ev, d, r,
					    out + (size_t)h * d);
			else
				abc_memory_read(&mem, q + (size_t)h * d, d, r, x,
						out + (size_t)h * d);
		}
	}
	return 0;
}

const struct variant_ops abc_variant = {
	.name		= "abc",
	.family		= "lowrank",
	.summary	= "bounded memory: r slots, each a softmax-weighted average of keys "
			  "and of values",
	.citation	= "Peng et al. 2022, ABC: Attention with Bounded-memory Control, ACL "
			  "(arXiv 2110.02488); CAB ABC (Zhang et al. 2023, ICML)",
	.patterns	= PATTERNS_ALL,
	.extensions	= 0,
	.flags		= 0,
	.params		= abc_params,
	.n_params	= 2,
	.forward	= abc_forward,
	.flops		= abc_flops,
	.state_bytes	= abc_state_bytes,
	.decode_init	= abc_decode_init,
	.decode_step	= abc_decode_step,
	.decode_free	= abc_decode_free,
};
