/*
 * hip.c - HiP attention: training-free dynamic sparsity by a hierarchical search for the
 * keys of each block of query rows (Lee et al. 2024, "HiP Attention", arXiv 2406.09827;
 * ICLR 2025). VARIANTS.md section 11.
 *
 * Per (batch, head) slice, for each query block G (b_q consecutive rows, the last one
 * shorter), with visible keys [0, E) (cs: E = last row of G + 1; otherwise M), key blocks
 * of b_k keys (the last one shorter), n = ceil(E / b_k) blocks and K_s = ceil(k / b_k):
 *   - n <= K_s: G attends every visible key;
 *   - otherwise [0, n) is cut into c = min(2 K_s, n) segments, segment s being blocks
 *     [floor(s n / c), floor((s + 1) n / c)) (sizes differ by at most 1), then repeatedly
 *       score every segment [lo, hi) by its representative, the middle block
 *       floor((lo + hi) / 2): the largest s_ij over rows i of G and keys j of that block
 *       (in cs only pairs j <= i count; none gives -inf),
 *       keep the K_s best (ties: the segment further left),
 *       stop when every kept segment is one block, else halve each longer one into
 *       [lo, floor((lo + hi) / 2)) and [floor((lo + hi) / 2), hi);
 *   - selected = the kept blocks, and in cs also the blocks overlapping G's own rows
 *     [harness] (so no row is left without a key);
 *   - each row of G: exact softmax over the selected keys (in cs those j <= i).
 * K_s is k / b_k rounded up [harness], so that k >= E attends everything as the
 * catalogue's test states. [harness] as the catalogue has it: no sink tokens, no sliding
 * window, no power-of-two snapping of segment borders: the pure hierarchical search.
 *
 * Causality: the rows of G share one selection that reads all of them, so in cs a row
 * may depend on later rows of its own block: hip is block-causal (VARIANT_BLOCK_CAUSAL)
 * at b_q > 1 and strictly causal at hip.block_q = 1. cc has no blocks to share: it
 * always runs with b_q = 1, whatever hip.block_q says [harness].
 *
 * Work: a segment's score is computed once, from its representative's keys only,
 * gathered so that one sgemm per level scores every new segment of G; the final
 * attention is one sgemm over the gathered selected keys and values and one for the
 * output. Per query block that is O(b_q k d log(n / K_s)) and nothing of size N x M
 * exists: a thread's workspace is O(b_q k + k d). Work items are (batch, head, query
 * block), shared out dynamically over OpenMP threads with OpenBLAS single-threaded.
 * Selection is per query head (section 31): grouped heads read their KV head in place.
 */
#include "variant.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "memory.h"
#include "threads.h"
#include "vexp.h"

/* The catalogue's defaults, those of v1.0's hip_attention(). */
#define HIP_K_DEFAULT		512
#define HIP_BLOCK_Q_DEFAULT	32
#define HIP_BLOCK_K_DEFAULT	2

enum hip_param {
	HIP_K,
	HIP_BLOCK_Q,
	HIP_BLOCK_K,
};

static const struct variant_param hip_params[] = {
	[HIP_K] = {
		.name		= "k",
		.def		= HIP_K_DEFAULT,
		.min		= 1,
		.max		= 16777216,
		.integer	= true,
		.help		= "keys kept per query block: K_s = k/block_k blocks, rounded up "
				  "[harness]; k >= visible keys attends all",
	},
	[HIP_BLOCK_Q] = {
		.name		= "block_q",
		.def		= HIP_BLOCK_Q_DEFAULT,
		.min		= 1,
		.max		= 65536,
		.integer	= true,
		.help		= "b_q: query rows sharing one selection; > 1 is block-causal in cs, "
				  "1 strictly causal; cc always runs with 1 [harness]",
	},
	[HIP_BLOCK_K] = {
		.name		= "block_k",
		.def		= HIP_BLOCK_K_DEFAULT,
		.min		= 1,
		.max		= 65536,
		.integer	= true,
		.help		= "b_k: keys per block, the unit of selection; a segment's "
				  "representative is its middle block [unverified: v1.0 the first]",
	},
};

/* The sizes one forward() runs with. */
struct hip_plan {
	int bq;			/* query rows per block (1 in cc) */
	int bk;			/* keys per block */
	long ks;		/* K_s: blocks kept */
	int max_blocks;		/* ceil(m / bk): the most blocks any E gives */
	int max_segs;		/* min(2 K_s, max_blocks): the most segments alive at once */
	int max_keys;		/* the most keys a query block attends */
	int max_reps;		/* the most representative keys one level scores */
};

static void hip_plan_make(struct hip_plan *pl, const struct attn_problem *p)
{
	long k = p->params ? (long)p->params[HIP_K] : HIP_K_DEFAULT;
	long diag;

	pl->bq = p->params ? (int)p->params[HIP_BLOCK_Q] : HIP_BLOCK_Q_DEFAULT;
	pl->bk = p->params ? (int)p->params[HIP_BLOCK_K] : HIP_BLOCK_K_DEFAULT;
	if (p->pattern == ATTN_CC)
		pl->bq = 1;
	if (pl->bq > p->n)
		pl->bq = p->n;
	pl->ks = (k + pl->bk - 1) / pl->bk;
	pl->max_blocks = (int)(((long)p->m + pl->bk - 1) / pl->bk);
	pl->max_segs = 2 * pl->ks < pl->max_blocks ? (int)(2 * pl->ks) : pl->max_blocks;
	/* kept blocks and, in cs, the blocks over G's rows: at most (bq - 1)/bk + 2 */
	diag = p->pattern == ATTN_CS ? (long)(pl->bq - 1) / pl->bk + 2 : 0;
	pl->max_keys = (pl->ks + diag) * pl->bk < p->m ? (int)((pl->ks + diag) * pl->bk) : p->m;
	pl->max_reps = (long)pl->max_segs * pl->bk < p->m ? pl->max_segs * pl->bk : p->m;
}

/* A candidate segment: blocks [lo, hi) and its score once computed. */
struct hip_seg {
	int lo, hi;
	float score;
	bool scored;
};

/* Better first: higher score, then the segment further left, so the choice is fixed. */
static int hip_by_rank(const void *a, const void *b)
{
	const struct hip_seg *x = a, *y = b;

	if (x->score > y->score)
		return -1;
	if (x->score < y->score)
		return 1;
	return (x->lo > y->lo) - (x->lo < y->lo);
}

static int hip_by_position(const void *a, const void *b)
{
	const struct hip_seg *x = a, *y = b;

	return (x->lo > y->lo) - (x->lo < y->lo);
}

/* Where one thread's scratch lives: offsets in floats into its slot. */
struct hip_layout {
	size_t s, kr, kg, vg, sums, pos, segs, next, blocks, total;
};

static size_t round_line(size_t x)
{
	/* whole cache lines, so threads and parts do not share one */
	return (x + 15) / 16 * 16;
}

static void hip_layout(struct hip_layout *lay, const struct hip_plan *pl, int d)
{
	size_t cols = (size_t)(pl->max_keys > pl->max_reps ? pl->max_keys : pl->max_reps);
	/* a segment is four floats wide; an int is one */
	size_t seg_floats = (sizeof(struct hip_seg) + sizeof(float) - 1) / sizeof(float);

	lay->s = 0;
	lay->kr = lay->s + round_line((size_t)pl->bq * cols);
	lay->kg = lay->kr + round_line((size_t)pl->max_reps * d);
	lay->vg = lay->kg + round_line((size_t)pl->max_keys * d);
	lay->sums = lay->vg + round_line((size_t)pl->max_keys * d);
	lay->pos = lay->sums + round_line((size_t)pl->bq);
	lay->segs = lay->pos + round_line((size_t)pl->max_keys);
	lay->next = lay->segs + round_line((size_t)pl->max_segs * seg_floats);
	lay->blocks = lay->next + round_line((size_t)pl->max_segs * seg_floats);
	lay->total = lay->blocks + round_line((size_t)pl->max_segs);
}

/* One work item: query block G = rows g0 .. g0 + rows - 1 of a slice. */
struct hip_block {
	const float *q, *k, *v;	/* the slice: q from row g0, k and v from row 0 */
	float *out;		/* from row g0 */
	int g0, rows, e, d;	/* E: visible keys */
	bool causal;
	float scale;		/* log2(e)/sqrt(d): base-2 scores */
	float *s, *kr, *kg, *vg, *sums;
	int *pos, *blocks;
	struct hip_seg *segs, *next;
};


/* Keys [j0, j1) of block `blk` among the visible keys [0, e). */
static void hip_block_keys(const struct hip_plan *pl, int e, int blk, int *j0, int *j1)
{
	*j0 = blk * pl->bk;
	*j1 = *j0 + pl->bk < e ? *j0 + pl->bk : e;
}

/*
 * Scores every segment of segs[0..count) not scored yet: the keys of their
 * representatives are gathered into kr, one sgemm scores them against every row of G,
 * and each segment takes the largest score the mask allows (-inf if none).
 */
static void hip_score(struct hip_block *g, const struct hip_plan *pl, struct hip_seg *segs,
		      int count)
{
	int d = g->d, reps = 0, col = 0;

	for (int s = 0; s < count; s++) {
		int j0, j1;

		if (segs[s].scored)
			continue;
		hip_block_keys(pl, g->e, (segs[s].lo + segs[s].hi) / 2, &j0, &j1);
		memcpy(g->kr + (size_t)reps * d, g->k + (size_t)j0 * d,
		       sizeof(float) * (size_t)(j1 - j0) * d);
		reps += j1 - j0;
	}
	if (!reps)
		return;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->rows, reps, d, g->scale, g->q,
		    d, g->kr, d, 0.0f, g->s, reps);
	for (int s = 0; s < count; s++) {
		float best = -INFINITY;
		int j0, j1;

		if (segs[s].scored)
			continue;
		hip_block_keys(pl, g->e, (segs[s].lo + segs[s].hi) / 2, &j0, &j1);
		for (int r = 0; r < g->rows; r++) {
			const float *row = g->s + (size_t)r * reps + col - j0;
			int last = j1;

			/* cs: row g0 + r sees keys j <= g0 + r only */
			if (g->causal && g->g0 + r + 1 < last)
				last = g->g0 + r + 1;
			for (int j = j0; j < last; j++)
				best = row[j] > best ? row[j] : best;
		}
		segs[s].score = best;
		segs[s].scored = true;
		col += j1 - j0;
	}
}

/*
 * The hierarchical search over n > K_s blocks: leaves the K_s kept blocks of G in
 * g->blocks, ascending, and returns how many there are.
 */
static int hip_search(struct hip_block *g, const struct hip_plan *pl, int n)
{
	struct hip_seg *cur = g->segs, *next = g->next, *swap;
	int ks = (int)pl->ks, count = n < 2 * pl->ks ? n : 2 * ks;

	for (int s = 0; s < count; s++) {
		cur[s].lo = (int)((long)s * n / count);
		cur[s].hi = (int)((long)(s + 1) * n / count);
		cur[s].scored = false;
	}
	for (;;) {
		bool longer = false;
		int kept = 0;

		hip_score(g, pl, cur, count);
		if (count > ks) {
			qsort(cur, (size_t)count, sizeof(*cur), hip_by_rank);
			count = ks;
		}
		qsort(cur, (size_t)count, sizeof(*cur), hip_by_position);
		for (int s = 0; s < count; s++)
			longer |= cur[s].hi - cur[s].lo > 1;
		if (!longer)
			break;
		/* at most 2 K_s halves, and no more than the n blocks: max_segs */
		for (int s = 0; s < count; s++) {
			int lo = cur[s].lo, hi = cur[s].hi, mid = (lo + hi) / 2;

			if (hi - lo == 1) {
				next[kept++] = cur[s];
				continue;
			}
			next[kept++] = (struct hip_seg){ .lo = lo, .hi = mid };
			next[kept++] = (struct hip_seg){ .lo = mid, .hi = hi };
		}
		swap = cur;
		cur = next;
		next = swap;
		count = kept;
	}
	for (int s = 0; s < count; s++)
		g->blocks[s] = cur[s].lo;
	return count;
}

/*
 * Gathers the keys and values of the kept blocks[0..kept) and, in cs, of the blocks over
 * G's own rows, ascending and each once, into kg and vg with their positions in pos;
 * returns how many keys.
 */
static int hip_gather(struct hip_block *g, const struct hip_plan *pl, int kept)
{
	int a = 0, own = 0, own_end = -1, len = 0, d = g->d;

	if (g->causal) {
		own = g->g0 / pl->bk;
		own_end = (g->g0 + g->rows - 1) / pl->bk;
	}
	while (a < kept || own <= own_end) {
		int blk, j0, j1;

		if (own > own_end || (a < kept && g->blocks[a] < own)) {
			blk = g->blocks[a++];
		} else {
			blk = own++;
			if (a < kept && g->blocks[a] == blk)
				a++;
		}
		hip_block_keys(pl, g->e, blk, &j0, &j1);
		memcpy(g->kg + (size_t)len * d, g->k + (size_t)j0 * d,
		       sizeof(float) * (size_t)(j1 - j0) * d);
		memcpy(g->vg + (size_t)len * d, g->v + (size_t)j0 * d,
		       sizeof(float) * (size_t)(j1 - j0) * d);
		for (int j = j0; j < j1; j++)
			g->pos[len++] = j;
	}
	return len;
}

/*
 * Exact softmax attention of G's rows over len keys kk and values vv at positions pos
 * (ascending; NULL: 0, 1, ...), in cs only those at or before the row, into g->out.
 */
static void hip_attend(struct hip_block *g, const float *kk, const float *vv, const int *pos,
		       int len)
{
	int d = g->d, seen = 0;

	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->rows, len, d, g->scale, g->q, d,
		    kk, d, 0.0f, g->s, len);
	for (int r = 0; r < g->rows; r++) {
		float *row = g->s + (size_t)r * len;
		int i = g->g0 + r;

		/* rows ascend, so the count of visible keys only grows */
		if (!g->causal)
			seen = len;
		else if (!pos)
			seen = i + 1 < len ? i + 1 : len;
		else
			while (seen < len && pos[seen] <= i)
				seen++;
		g->sums[r] = seen ? exp2_shifted_sum(row, seen, row_max(row, seen)) : 0;
		memset(row + seen, 0, sizeof(float) * (size_t)(len - seen));
	}
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->rows, d, len, 1.0f, g->s, len,
		    vv, d, 0.0f, g->out, d);
	for (int r = 0; r < g->rows; r++) {
		float by = g->sums[r] > 0 ? 1.0f / g->sums[r] : 0.0f;

		for (int c = 0; c < d; c++)
			g->out[(size_t)r * d + c] *= by;
	}
}

/* Selection and attention of one query block. */
static void hip_block_run(struct hip_block *g, const struct hip_plan *pl)
{
	int n = (int)(((long)g->e + pl->bk - 1) / pl->bk), kept, len;

	if (n <= pl->ks) {
		/* everything visible is kept: attend in place */
		hip_attend(g, g->k, g->v, NULL, g->e);
		return;
	}
	kept = hip_search(g, pl, n);
	len = hip_gather(g, pl, kept);
	hip_attend(g, g->kg, g->vg, g->pos, len);
}

static int hip_forward(const struct attn_problem *p, const float *q, const float *k,
		       const float *v, float *out)
{
	int threads = max_threads(), saved, tiles;
	struct hip_layout lay;
	struct hip_plan pl;
	long items;
	float *ws;

	hip_plan_make(&pl, p);
	hip_layout(&lay, &pl, p->d);
	tiles = (p->n + pl.bq - 1) / pl.bq;
	items = (long)p->batch * p->heads * tiles;
	ws = attn_alloc((size_t)threads * lay.total * sizeof(float));
	if (!ws)
		return -ENOMEM;

	saved = blas_serial_begin();
	#pragma omp parallel
	{
		float *base = ws + (size_t)thread_id() * lay.total;
		struct hip_block g = {
			.d	= p->d,
			.causal	= p->pattern == ATTN_CS,
			/* log2(e)/sqrt(d): scores come out in base 2 for exp2. */
			.scale	= (float)(1.4426950408889634 / sqrt((double)p->d)),
			.s	= base + lay.s,
			.kr	= base + lay.kr,
			.kg	= base + lay.kg,
			.vg	= base + lay.vg,
			.sums	= base + lay.sums,
			.pos	= (int *)(base + lay.pos),
			.blocks	= (int *)(base + lay.blocks),
			.segs	= (struct hip_seg *)(base + lay.segs),
			.next	= (struct hip_seg *)(base + lay.next),
		};

		/* Dynamic: in cs later blocks see more keys; the last blocks go first. */
		#pragma omp for schedule(dynamic, 1)
		for (long it = 0; it < items; it++) {
			long slice = it / tiles;
			int tile = tiles - 1 - (int)(it % tiles);
			int b = (int)(slice / p->heads), h = (int)(slice % p->heads);
			size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);

			g.g0 = tile * pl.bq;
			g.rows = p->n - g.g0 < pl.bq ? p->n - g.g0 : pl.bq;
			g.e = g.causal ? g.g0 + g.rows : p->m;
			g.q = q + qo + (size_t)g.g0 * p->d;
			g.k = k + kvo;
			g.v = v + kvo;
			g.out = out + qo + (size_t)g.g0 * p->d;
			hip_block_run(&g, &pl);
		}
	}
	blas_serial_end(saved);
	attn_free(ws);
	return 0;
}

/*
 * FLOPs of one query block of `rows` rows seeing e keys: 2d per (row, representative
 * key) scored and 4d per (row, selected key) attended. The search is counted as if
 * every kept segment split at every level (an upper bound: kept single blocks are not
 * scored again), with c = min(2 K_s, n) segments at the first level.
 */
static double hip_block_flops(const struct hip_plan *pl, int g0, int rows, int e, bool causal,
			      int d)
{
	long n = ((long)e + pl->bk - 1) / pl->bk, count, size, keys;
	double reps, pairs;

	if (n <= pl->ks) {
		/* cs: row g0 + r sees g0 + r + 1 keys; e = g0 + rows */
		pairs = causal ? (double)rows * g0 + (double)rows * (rows + 1) / 2 :
				 (double)rows * e;
		return 4.0 * d * pairs;
	}
	count = n < 2 * pl->ks ? n : 2 * pl->ks;
	reps = (double)count;
	for (size = (n + count - 1) / count; size > 1; size = (size + 1) / 2)
		reps += (double)count;
	keys = pl->ks * pl->bk;
	pairs = (double)rows * keys;
	if (causal) {
		/* the blocks over G's rows, each row seeing those at or before it */
		keys = keys + rows < e ? keys + rows : e;
		pairs = (double)rows * keys - (double)rows * (rows - 1) / 2;
	}
	return 2.0 * d * rows * reps * pl->bk + 4.0 * d * pairs;
}

static double hip_flops(const struct attn_problem *p)
{
	bool causal = p->pattern == ATTN_CS;
	struct hip_plan pl;
	double total = 0;

	hip_plan_make(&pl, p);
	for (int g0 = 0; g0 < p->n; g0 += pl.bq) {
		int rows = p->n - g0 < pl.bq ? p->n - g0 : pl.bq;

		total += hip_block_flops(&pl, g0, rows, causal ? g0 + rows : p->m, causal, p->d);
	}
	return (double)p->batch * p->heads * total;
}

/*
 * Every key and value, float32: a later query block's search may pick any block, and
 * its representatives lie anywhere in [0, E), so nothing can be dropped (HiP keeps the
 * whole KV cache too): kv_cache_bytes(p, m), one cache per KV head.
 */
static double hip_state_bytes(const struct attn_problem *p)
{
	return kv_cache_bytes(p, p->m);
}

const struct variant_ops hip_variant = {
	.name		= "hip",
	.family		= "sparse",
	.summary	= "HiP: per block of b_q queries, a tree search halves key segments and "
			  "keeps the best K_s by a middle block's score; no sink/window [harness]",
	.citation	= "Lee et al. 2024, HiP Attention, arXiv 2406.09827; ICLR 2025 as A "
			  "Training-Free Sub-quadratic Cost Transformer Model Serving Framework "
			  "with Hierarchically Pruned Attention",
	.patterns	= PATTERNS_ALL,
	.extensions	= PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_NC) | PATTERN_BIT(ATTN_CC),
	.flags		= VARIANT_BLOCK_CAUSAL,
	.params		= hip_params,
	.n_params	= 3,
	.strict_causal_param = "block_q",
	.forward	= hip_forward,
	.flops		= hip_flops,
	.state_bytes	= hip_state_bytes,
};
