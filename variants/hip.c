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
 * Work: a segment's score is computed once, from its representative's keys only (a
 * half that has its parent's representative keeps its parent's score). For b_q > 1 the
 * representatives are gathered so that one sgemm per level scores every new segment of
 * G, and the final attention is one sgemm over the gathered selected keys and values and
 * one for the output. For one row (cc, hip.block_q = 1) gathering for a one-row sgemm
 * costs more than the products: the row's scores are dot products read from K in place;
 * its attention takes the kept blocks' scores from the search (b_k <= 2: a kept block
 * is its own representative), then exp2 and a weighted sum of V rows in place. Where
 * every row sees the same E and no mask (cc; ns/nc at b_q = 1), the first level's segments and
 * their halves (the candidates of the second level) are the same for all rows, so a
 * work item of HIP_ROW_TILE consecutive rows scores them with one sgemm; each row then
 * selects from its own row of that tile only, so no row reads another. Each level keeps
 * its K_s best by a selection (quickselect on score, then position), not a sort, and
 * segments stay in order of position throughout. Per query block that is
 * O(b_q k d log(n / K_s)) and nothing of size N x M exists: a thread's workspace is
 * O(b_q k + k d), plus the row tile's scores of at most 3 x 2 K_s representative blocks.
 * Work items are (batch, head, query block or row tile), shared out dynamically over
 * OpenMP threads with OpenBLAS single-threaded. Selection is per query head (section
 * 31): grouped heads read their KV head in place.
 */
#include "variant.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
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

/*
 * Rows of one work item when b_q = 1 and no mask (cc, and ns/nc at hip.block_q = 1):
 * their first levels are the same segments, scored by one sgemm. Enough rows to
 * amortise gathering 2 K_s representatives, few enough to keep the tile in cache.
 */
#define HIP_ROW_TILE		32

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
	int tile;		/* query rows per work item: b_q, or HIP_ROW_TILE */
	bool shared_first;	/* b_q = 1 and E = M for every row: one first level */
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
	/* cc's rows, or single rows seeing all M keys, share the first level's segments */
	pl->shared_first = pl->bq == 1 && p->pattern != ATTN_CS;
	pl->tile = pl->bq;
	if (pl->shared_first)
		pl->tile = HIP_ROW_TILE < p->n ? HIP_ROW_TILE : p->n;
}

/*
 * With b_k <= HIP_SEG_KEYS a one-row search also keeps the scores of a representative's
 * keys: a kept single block is its own representative, so the final attention reuses
 * them instead of computing the same dot products again.
 */
#define HIP_SEG_KEYS		2

/* A candidate segment: blocks [lo, hi) and its score once computed. */
struct hip_seg {
	int lo, hi;
	int id;			/* at the first level: its index there */
	float score;
	bool scored;
	float keys[HIP_SEG_KEYS];	/* one row, b_k <= HIP_SEG_KEYS: each key's score */
};

/*
 * A segment's rank as one integer, larger is better: the score's bits mapped so that
 * unsigned order is float order, above the position reversed, so that equal scores
 * rank the segment further left first. Distinct segments never tie.
 */
static uint64_t hip_rank(const struct hip_seg *seg)
{
	float score = seg->score + 0.0f;	/* -0 ranks as +0, as float compares them */
	uint32_t bits;

	memcpy(&bits, &score, sizeof(bits));
	/* negative: flip every bit; positive: the sign bit */
	bits ^= (uint32_t)((int32_t)bits >> 31) | 0x80000000u;
	return (uint64_t)bits << 32 | (uint32_t)~(uint32_t)seg->lo;
}

/*
 * The value at index `at` of a[0..n) if it were sorted ascending (distinct values), by
 * quickselect. The partition does not branch on the data: scores are random enough that
 * a branch on each comparison is mispredicted half the time.
 */
static uint64_t hip_nth(uint64_t *a, int n, int at)
{
	int lo = 0, hi = n - 1;

	while (lo < hi) {
		int store = lo, mid = (lo + hi) / 2, where;
		uint64_t x = a[lo], y = a[mid], z = a[hi], pivot;

		/* median of three, moved to the end: no quadratic case on sorted input */
		pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
		where = pivot == x ? lo : pivot == y ? mid : hi;
		a[where] = a[hi];
		a[hi] = pivot;
		/* Lomuto: a[lo..store) < pivot <= a[store..i) */
		for (int i = lo; i < hi; i++) {
			uint64_t v = a[i];

			a[i] = a[store];
			a[store] = v;
			store += v < pivot;
		}
		a[hi] = a[store];
		a[store] = pivot;
		if (at == store)
			return pivot;
		if (at < store)
			hi = store - 1;
		else
			lo = store + 1;
	}
	return a[at];
}

/*
 * q . k for one row's scores, where each key costs one product and a horizontal sum:
 * with AVX-512, sixteen lanes and one reduction in registers; otherwise common.h's
 * dot(). Either way deterministic for a given d and build.
 */
static inline float hip_dot(const float *a, const float *b, int d)
{
#ifdef VEXP_AVX512
	__m512 acc = _mm512_setzero_ps();
	float tail = 0;
	int c = 0;

	for (; c + 16 <= d; c += 16)
		acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + c), _mm512_loadu_ps(b + c), acc);
	for (; c < d; c++)
		tail += a[c] * b[c];
	return tail + _mm512_reduce_add_ps(acc);
#else
	return dot(a, b, d);
#endif
}

/*
 * A row's representatives lie scattered over K, where the hardware cannot foresee them:
 * scoring one segment asks for the keys of the one HIP_AHEAD segments later.
 */
#define HIP_AHEAD		8

static inline void hip_prefetch(const float *x, size_t floats)
{
#if defined(__GNUC__) || defined(__clang__)
	for (size_t f = 0; f < floats; f += 64 / sizeof(float))
		__builtin_prefetch(x + f);
#else
	(void)x;
	(void)floats;
#endif
}

/* Where one thread's scratch lives: offsets in floats into its slot. */
struct hip_layout {
	size_t s, first, kr, kg, vg, sums, pos, segs, next, ranks, blocks, kept, cols, total;
};

static size_t round_line(size_t x)
{
	/* whole cache lines, so threads and parts do not share one */
	return (x + 15) / 16 * 16;
}

static void hip_layout(struct hip_layout *lay, const struct hip_plan *pl, int d)
{
	size_t cols = (size_t)(pl->max_keys > pl->max_reps ? pl->max_keys : pl->max_reps);
	/* a segment is seven floats wide; an int is one, a rank two (and its copy) */
	size_t seg_floats = (sizeof(struct hip_seg) + sizeof(float) - 1) / sizeof(float);
	/* shared_first: the first level's representatives and their halves' */
	size_t reps = (size_t)pl->max_reps * (pl->shared_first ? 3 : 1);
	size_t first = pl->shared_first ? (size_t)pl->tile * reps : 0;

	lay->s = 0;
	lay->first = lay->s + round_line((size_t)pl->bq * cols);
	lay->kr = lay->first + round_line(first);
	lay->kg = lay->kr + round_line(reps * d);
	lay->vg = lay->kg + round_line((size_t)pl->max_keys * d);
	lay->sums = lay->vg + round_line((size_t)pl->max_keys * d);
	lay->pos = lay->sums + round_line((size_t)pl->bq);
	lay->segs = lay->pos + round_line((size_t)pl->max_keys);
	lay->next = lay->segs + round_line((size_t)pl->max_segs * seg_floats);
	lay->ranks = lay->next + round_line((size_t)pl->max_segs * seg_floats);
	lay->blocks = lay->ranks + round_line((size_t)pl->max_segs * 4);
	lay->kept = lay->blocks + round_line((size_t)pl->max_segs);
	lay->cols = lay->kept + round_line((size_t)pl->max_segs * HIP_SEG_KEYS);
	lay->total = lay->cols + round_line(pl->shared_first ? (size_t)pl->max_segs * 3 : 0);
}

/* One work item: query block G = rows g0 .. g0 + rows - 1 of a slice. */
struct hip_block {
	const float *q, *k, *v;	/* the slice: q from row g0, k and v from row 0 */
	float *out;		/* from row g0 */
	int g0, rows, e, d;	/* E: visible keys */
	bool causal;
	float scale;		/* log2(e)/sqrt(d): base-2 scores */
	float *s, *first, *kr, *kg, *vg, *sums;
	float *kept;		/* one row: the scores of the kept blocks' keys */
	int *pos, *blocks;
	int *cols;		/* shared_first: where each candidate's scores start */
	uint64_t *ranks;
	struct hip_seg *segs, *next;
};


/* Keys [j0, j1) of block `blk` among the visible keys [0, e). */
static void hip_block_keys(const struct hip_plan *pl, int e, int blk, int *j0, int *j1)
{
	*j0 = blk * pl->bk;
	*j1 = *j0 + pl->bk < e ? *j0 + pl->bk : e;
}

/* The first level over n blocks: c = min(2 K_s, n) segments; returns c. */
static int hip_first_level(const struct hip_plan *pl, int n, struct hip_seg *segs)
{
	int count = n < 2 * pl->ks ? n : 2 * (int)pl->ks;
	int step = n / count, rest = n % count, lo = 0, frac = 0;

	/* lo = floor(s n / count) step by step: every row of cc redoes this, divisions cost */
	for (int s = 0; s < count; s++) {
		segs[s].lo = lo;
		frac += rest;
		lo += step + (frac >= count);
		frac -= frac >= count ? count : 0;
		segs[s].hi = lo;
		segs[s].scored = false;
	}
	return count;
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
 * hip_score() for G of one row: each representative key is scored by a dot product
 * read from K in place, as gathering keys for a one-row sgemm costs more than the
 * product itself.
 */
static void hip_score_row(struct hip_block *g, const struct hip_plan *pl,
			  struct hip_seg *segs, int count)
{
	for (int s = 0; s < count; s++) {
		float best = -INFINITY;
		int j0, j1;

		if (s + HIP_AHEAD < count && !segs[s + HIP_AHEAD].scored) {
			const struct hip_seg *later = &segs[s + HIP_AHEAD];

			hip_block_keys(pl, g->e, (later->lo + later->hi) / 2, &j0, &j1);
			hip_prefetch(g->k + (size_t)j0 * g->d, (size_t)(j1 - j0) * g->d);
		}
		if (segs[s].scored)
			continue;
		hip_block_keys(pl, g->e, (segs[s].lo + segs[s].hi) / 2, &j0, &j1);
		/* cs: the row sees keys j <= g0 only */
		if (g->causal && g->g0 + 1 < j1)
			j1 = g->g0 + 1;
		for (int j = j0; j < j1; j++) {
			float x = g->scale * hip_dot(g->q, g->k + (size_t)j * g->d, g->d);

			if (pl->bk <= HIP_SEG_KEYS)
				segs[s].keys[j - j0] = x;
			best = x > best ? x : best;
		}
		segs[s].score = best;
		segs[s].scored = true;
	}
}

/* Appends the keys of segment seg's representative to kr; returns where they start. */
static int hip_gather_rep(struct hip_block *g, const struct hip_plan *pl,
			  const struct hip_seg *seg, int *reps)
{
	int j0, j1, at = *reps;

	hip_block_keys(pl, g->e, (seg->lo + seg->hi) / 2, &j0, &j1);
	memcpy(g->kr + (size_t)at * g->d, g->k + (size_t)j0 * g->d,
	       sizeof(float) * (size_t)(j1 - j0) * g->d);
	*reps += j1 - j0;
	return at;
}

/*
 * Scores, for every row of a work item at once where all rows see the same E and no
 * mask (shared_first), the candidates of the first two levels: the c first-level
 * segments, and the two halves of each (the second level is some K_s of those halves
 * in every row). One sgemm of the rows against the representatives' keys into
 * g->first, a row of `reps` scores per query row; g->cols[s] is where segment s's
 * scores start, g->cols[c + 2 s + h] those of its half h (-1: none). Each row still
 * selects from its own row only. Returns reps.
 */
static int hip_score_first(struct hip_block *g, const struct hip_plan *pl, int n)
{
	int count = hip_first_level(pl, n, g->segs), reps = 0;

	for (int s = 0; s < count; s++)
		g->cols[s] = hip_gather_rep(g, pl, &g->segs[s], &reps);
	for (int s = 0; s < count; s++) {
		int lo = g->segs[s].lo, hi = g->segs[s].hi, mid = (lo + hi) / 2;
		struct hip_seg left = { .lo = lo, .hi = mid }, right = { .lo = mid, .hi = hi };

		g->cols[count + 2 * s] = g->cols[count + 2 * s + 1] = -1;
		if (hi - lo == 1)
			continue;
		g->cols[count + 2 * s] = hip_gather_rep(g, pl, &left, &reps);
		g->cols[count + 2 * s + 1] = hip_gather_rep(g, pl, &right, &reps);
	}
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->rows, reps, g->d, g->scale,
		    g->q, g->d, g->kr, g->d, 0.0f, g->first, reps);
	return reps;
}

/* Sets seg's score (and its keys') from the scores of its representative's keys at row. */
static void hip_score_from(struct hip_seg *seg, const struct hip_plan *pl, int e,
			   const float *row)
{
	float best = -INFINITY;
	int j0, j1;

	hip_block_keys(pl, e, (seg->lo + seg->hi) / 2, &j0, &j1);
	for (int j = j0; j < j1; j++) {
		if (pl->bk <= HIP_SEG_KEYS)
			seg->keys[j - j0] = row[j - j0];
		best = row[j - j0] > best ? row[j - j0] : best;
	}
	seg->score = best;
	seg->scored = true;
}

/*
 * Keeps the K_s best of segs[0..count) (count > K_s; ties: the segment further left) in
 * place and in their order of position, which is the order they come in: the K_s-th
 * best rank is found by selection, not by sorting every level.
 */
static int hip_keep(struct hip_block *g, const struct hip_plan *pl, struct hip_seg *segs,
		    int count)
{
	uint64_t *rank = g->ranks, *work = g->ranks + pl->max_segs, least;
	int ks = (int)pl->ks, kept = 0;

	for (int s = 0; s < count; s++)
		work[s] = rank[s] = hip_rank(&segs[s]);
	least = hip_nth(work, count, count - ks);
	/* compacting without a branch: s >= kept, so segs[s] is read before overwritten */
	for (int s = 0; s < count; s++) {
		segs[kept] = segs[s];
		kept += rank[s] >= least;
	}
	return kept;
}

/*
 * The hierarchical search over n > K_s blocks: leaves the K_s kept blocks of G in
 * g->blocks, ascending, and returns how many there are. first, if not NULL, holds G's
 * one row's scores of the first two levels' candidates (hip_score_first(), g->cols).
 */
static int hip_search(struct hip_block *g, const struct hip_plan *pl, int n,
		      const float *first)
{
	struct hip_seg *cur = g->segs, *next = g->next, *swap;
	int ks = (int)pl->ks, count = hip_first_level(pl, n, cur), top = count;

	for (int s = 0; first && s < count; s++) {
		cur[s].id = s;
		hip_score_from(&cur[s], pl, g->e, first + g->cols[s]);
	}
	/* segments stay in order of position throughout: the first level is, halves are */
	for (;;) {
		bool longer = false;
		int kept = 0;

		if (g->rows == 1)
			hip_score_row(g, pl, cur, count);
		else
			hip_score(g, pl, cur, count);
		if (count > ks)
			count = hip_keep(g, pl, cur, count);
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
			/* [lo, lo + 2)'s right half has its parent's representative and scores */
			next[kept] = cur[s];
			next[kept].lo = mid;
			next[kept++].scored = hi - mid == 1;
			if (first && top) {
				int at = top + 2 * cur[s].id;

				hip_score_from(&next[kept - 2], pl, g->e, first + g->cols[at]);
				hip_score_from(&next[kept - 1], pl, g->e, first + g->cols[at + 1]);
			}
		}
		top = 0;
		swap = cur;
		cur = next;
		next = swap;
		count = kept;
	}
	for (int s = 0; s < count; s++) {
		g->blocks[s] = cur[s].lo;
		if (g->rows == 1 && pl->bk <= HIP_SEG_KEYS)
			memcpy(g->kept + (size_t)s * HIP_SEG_KEYS, cur[s].keys,
			       sizeof(cur[s].keys));
	}
	return count;
}

/*
 * The positions of the keys G attends: those of the kept blocks[0..kept) and, in cs, of
 * the blocks over G's own rows, ascending and each once, into g->pos; returns how many.
 * With w, G is one row: its scores of those keys go to w too, the kept blocks' taken
 * from the search where it left them in g->kept.
 */
static int hip_positions(struct hip_block *g, const struct hip_plan *pl, int kept, float *w)
{
	int a = 0, own = 0, own_end = -1, len = 0;

	if (g->causal) {
		own = g->g0 / pl->bk;
		own_end = (g->g0 + g->rows - 1) / pl->bk;
	}
	while (a < kept || own <= own_end) {
		const float *known = NULL;
		int blk, j0, j1;

		if (own > own_end || (a < kept && g->blocks[a] < own)) {
			known = g->kept + (size_t)a * HIP_SEG_KEYS;
			blk = g->blocks[a++];
		} else {
			blk = own++;
			if (a < kept && g->blocks[a] == blk)
				known = g->kept + (size_t)a++ * HIP_SEG_KEYS;
		}
		if (pl->bk > HIP_SEG_KEYS)
			known = NULL;
		hip_block_keys(pl, g->e, blk, &j0, &j1);
		for (int j = j0; j < j1; j++, len++) {
			g->pos[len] = j;
			if (w)
				w[len] = known ? known[j - j0] :
				     g->scale * hip_dot(g->q, g->k + (size_t)j * g->d, g->d);
		}
	}
	return len;
}

/* Gathers the keys and values at g->pos[0..len) into kg and vg. */
static void hip_gather(struct hip_block *g, int len)
{
	size_t row = sizeof(float) * (size_t)g->d;

	for (int i = 0; i < len; i++) {
		memcpy(g->kg + (size_t)i * g->d, g->k + (size_t)g->pos[i] * g->d, row);
		memcpy(g->vg + (size_t)i * g->d, g->v + (size_t)g->pos[i] * g->d, row);
	}
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

/*
 * hip_attend() for G of one row over the keys at pos[0..len) (NULL: 0, 1, ...), read
 * from K and V in place: dot products (unless `scored`: already in g->s), exp2, and a
 * weighted sum of value rows. Every key given is visible (in cs E = g0 + 1 already
 * bounds them).
 */
static void hip_attend_row(struct hip_block *g, const int *pos, int len, bool scored)
{
	float *w = g->s, *o = g->out, sum, by;
	int d = g->d, i;

	for (i = 0; i < len && !scored; i++)
		w[i] = g->scale * hip_dot(g->q, g->k + (size_t)(pos ? pos[i] : i) * d, d);
	sum = len ? exp2_shifted_sum(w, len, row_max(w, len)) : 0;
	memset(o, 0, sizeof(float) * (size_t)d);
	/* four value rows per pass over o: a quarter of the chain of loads and stores to o */
	for (i = 0; i + 4 <= len; i += 4) {
		const float *v0 = g->v + (size_t)(pos ? pos[i] : i) * d;
		const float *v1 = g->v + (size_t)(pos ? pos[i + 1] : i + 1) * d;
		const float *v2 = g->v + (size_t)(pos ? pos[i + 2] : i + 2) * d;
		const float *v3 = g->v + (size_t)(pos ? pos[i + 3] : i + 3) * d;

		for (int c = 0; c < d; c++)
			o[c] += (w[i] * v0[c] + w[i + 1] * v1[c]) +
				(w[i + 2] * v2[c] + w[i + 3] * v3[c]);
	}
	for (; i < len; i++) {
		const float *vj = g->v + (size_t)(pos ? pos[i] : i) * d;

		for (int c = 0; c < d; c++)
			o[c] += w[i] * vj[c];
	}
	by = sum > 0 ? 1.0f / sum : 0.0f;
	for (int c = 0; c < d; c++)
		o[c] *= by;
}

/* Selection and attention of one query block; first as hip_search() takes it. */
static void hip_block_run(struct hip_block *g, const struct hip_plan *pl, const float *first)
{
	int n = (int)(((long)g->e + pl->bk - 1) / pl->bk), kept, len;

	if (n <= pl->ks) {
		/* everything visible is kept: attend in place */
		if (g->rows == 1)
			hip_attend_row(g, NULL, g->e, false);
		else
			hip_attend(g, g->k, g->v, NULL, g->e);
		return;
	}
	kept = hip_search(g, pl, n, first);
	len = hip_positions(g, pl, kept, g->rows == 1 ? g->s : NULL);
	if (g->rows == 1) {
		hip_attend_row(g, g->pos, len, true);
		return;
	}
	hip_gather(g, len);
	hip_attend(g, g->kg, g->vg, g->pos, len);
}

/*
 * One work item: a query block of b_q rows, or with shared_first up to HIP_ROW_TILE rows
 * of one row each, whose first level is scored once for all of them.
 */
static void hip_item_run(struct hip_block *g, const struct hip_plan *pl)
{
	int n = (int)(((long)g->e + pl->bk - 1) / pl->bk), reps = 0;

	if (!pl->shared_first) {
		hip_block_run(g, pl, NULL);
		return;
	}
	if (n > pl->ks)
		reps = hip_score_first(g, pl, n);
	for (int r = 0; r < g->rows; r++) {
		struct hip_block row = *g;

		row.g0 = g->g0 + r;
		row.rows = 1;
		row.q = g->q + (size_t)r * g->d;
		row.out = g->out + (size_t)r * g->d;
		hip_block_run(&row, pl, reps ? g->first + (size_t)r * reps : NULL);
	}
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
	tiles = (p->n + pl.tile - 1) / pl.tile;
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
			.first	= base + lay.first,
			.kr	= base + lay.kr,
			.kg	= base + lay.kg,
			.vg	= base + lay.vg,
			.sums	= base + lay.sums,
			.pos	= (int *)(base + lay.pos),
			.blocks	= (int *)(base + lay.blocks),
			.kept	= base + lay.kept,
			.cols	= (int *)(base + lay.cols),
			.ranks	= (uint64_t *)(base + lay.ranks),
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

			g.g0 = tile * pl.tile;
			g.rows = p->n - g.g0 < pl.tile ? p->n - g.g0 : pl.tile;
			g.e = g.causal ? g.g0 + g.rows : p->m;
			g.q = q + qo + (size_t)g.g0 * p->d;
			g.k = k + kvo;
			g.v = v + kvo;
			g.out = out + qo + (size_t)g.g0 * p->d;
			hip_item_run(&g, &pl);
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
 * scored again), with c = min(2 K_s, n) segments at the first level. It counts the
 * method's work, not the kernels': a row tile's sgemm also scores the halves its rows
 * do not keep, and one row's attention reuses the scores of its search.
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
