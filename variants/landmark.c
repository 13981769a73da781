/*
 * landmark.c - landmark attention (Mohtashami & Jaggi 2023) with a training-free landmark,
 * VARIANTS.md section 7.
 *
 * Keys fall into blocks B_b = [bL, (b+1)L) (the last may be short). Each block has a
 * landmark key lambda_b, the mean of its keys ([harness]: the paper trains a landmark
 * token), and row i gates block b by g_ib = sigma q_i.lambda_b + ln|B_b| (the ln|B_b| term,
 * [harness], is dropped with landmark.logsize=0). landmark.gate=1 takes the exact block
 * log-mass g_ib = log sum_{j in B_b} e^{s_ij} instead (a test option; it scores every key
 * of every candidate block, so it costs as much as exact attention).
 *
 * Row i attends a local set Loc_i (cs: keys of its own block up to i; ns: its whole own
 * block; nc/cc: none) and the blocks R_i: the local_blocks - 1 blocks right before its own
 * (self patterns only) plus the topk candidates of largest gate (ties: the smaller block),
 * candidates being cs: the complete blocks before its own; ns: every other block; nc, cc:
 * every block. The grouped softmax
 *	Z = sum_{j in Loc} e^{s_ij} + sum_{b in R} e^{g_ib},
 *	O_i = (sum_{j in Loc} e^{s_ij} v_j + sum_{b in R} e^{g_ib} softmax_{B_b}(s_i.) V_b) / Z
 * is evaluated group by group, each with its own max shift, and the groups are merged
 * with a running maximum of their log-weights. Landmarks never contribute values. A row
 * with nothing to attend (nc/cc with topk = 0) outputs 0. Every row is computed from its
 * own query only, so cc is causal.
 *
 * Work: landmarks once per KV head (shared by its query group, section 31), a tile of up
 * to 64 query rows (inside one query block in ns/cs) gets its gates by one sgemm against
 * the landmark matrix, each row picks its blocks, and then per key block the rows that
 * picked it are gathered and scored and summed by two sgemm calls (two sgemv calls a row
 * when fewer than 8 rows share the block, as with random data and many blocks); the
 * local block is two sgemm calls for the whole tile. A thread holds about
 * 64 x (M/L + L + 2d + 2 k_r) words, never N x M.
 * Scores are in base 2 (scaled by log2(e)/sqrt(d)).
 *
 * Incremental decoding (cs) keeps the KV cache, the landmarks of complete blocks and a
 * double-precision running sum of the keys of the block being filled, and runs the same
 * tile code on one row.
 */
#include "variant.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kv-cache.h"
#include "memory.h"
#include "threads.h"
#include "vexp.h"

enum landmark_param {
	LANDMARK_BLOCK,
	LANDMARK_TOPK,
	LANDMARK_LOGSIZE,
	LANDMARK_GATE,
	LANDMARK_LOCAL_BLOCKS,
	LANDMARK_PARAM_COUNT,
};

#define LANDMARK_BLOCK_DEFAULT 64	/* catalogue L (the paper uses 50) */
#define LANDMARK_TOPK_DEFAULT 4		/* catalogue k_r (paper: 2-4 in its LM evaluation) */

/* Query rows per tile: sgemm calls of useful size, a workspace that does not grow with N. */
#define LANDMARK_ROWS 64

static const struct variant_param landmark_params[] = {
	[LANDMARK_BLOCK] = {
		.name		= "block",
		.def		= LANDMARK_BLOCK_DEFAULT,
		.min		= 1,
		.max		= 65536,
		.integer	= true,
		.help		= "L: keys per block, one landmark each (paper 50)",
	},
	[LANDMARK_TOPK] = {
		.name		= "topk",
		.def		= LANDMARK_TOPK_DEFAULT,
		.min		= 0,
		.max		= 1048576,
		.integer	= true,
		.help		= "k_r: retrieved blocks per row, by largest gate (ties: smaller block)",
	},
	[LANDMARK_LOGSIZE] = {
		.name		= "logsize",
		.def		= 1,
		.min		= 0,
		.max		= 1,
		.integer	= true,
		.help		= "1: gate += ln|B_b| [harness]; 0: the bare landmark score",
	},
	[LANDMARK_GATE] = {
		.name		= "gate",
		.def		= 0,
		.min		= 0,
		.max		= 1,
		.integer	= true,
		.help		= "0 = mean: sigma q.mean-key landmark [harness]; "
				  "1 = lse: log sum_{j in B} e^{s_ij} (exact, O(NM) gates)",
	},
	[LANDMARK_LOCAL_BLOCKS] = {
		.name		= "local_blocks",
		.def		= 1,
		.min		= 1,
		.max		= 1048576,
		.integer	= true,
		.help		= "n: the n-1 blocks before a row's own are always retrieved, gated "
				  "(ns/cs only; nc/cc have no own block [harness])",
	},
};

/* The parameters of one call, resolved. */
struct landmark_setup {
	enum attn_pattern pattern;
	int d;
	int block;		/* L */
	long topk;		/* k_r */
	long local_blocks;	/* n */
	bool logsize;		/* mean gate: add log2|B_b| */
	bool lse;		/* exact block log-mass as the gate */
	float scale;		/* log2(e)/sqrt(d) */
};

static void landmark_resolve(const struct attn_problem *p, struct landmark_setup *st)
{
	const double *x = p->params;

	st->pattern = p->pattern;
	st->d = p->d;
	st->block = x ? (int)x[LANDMARK_BLOCK] : LANDMARK_BLOCK_DEFAULT;
	st->topk = x ? (long)x[LANDMARK_TOPK] : LANDMARK_TOPK_DEFAULT;
	st->logsize = x ? x[LANDMARK_LOGSIZE] != 0 : true;
	st->lse = x ? x[LANDMARK_GATE] != 0 : false;
	st->local_blocks = x ? (long)x[LANDMARK_LOCAL_BLOCKS] : 1;
	/* log2(e)/sqrt(d): scores and gates come out in base 2 for exp2. */
	st->scale = (float)(1.4426950408889634 / sqrt((double)p->d));
}

static int blocks_of(int m, int block)
{
	return (int)(((long)m + block - 1) / block);
}

/* Keys in block b of m keys. */
static int block_size(int m, int block, int b)
{
	long left = (long)m - (long)b * block;

	return left < block ? (int)left : block;
}

/* Most blocks a row retrieves: the forced ones and topk others, at most all blocks. */
static int landmark_kmax(const struct landmark_setup *st, int nb)
{
	long k = st->topk + st->local_blocks - 1;

	return k < nb ? (int)k : nb;
}

/* One thread's scratch for tiles of up to `rows` rows over nb blocks. */
struct landmark_ws {
	float *gate;		/* rows x nb, base-2 gates */
	float *s;		/* rows x lds scores, then probabilities */
	int lds;
	float *qg, *og;		/* rows x d: gathered queries, their group outputs */
	float *wmax, *wsum;	/* rows: largest group log-weight so far, sum of weights */
	int *sel, *nsel;	/* rows x kmax selected blocks (ascending), their counts */
	int *start, *member;	/* nb + 1 offsets, the rows that selected each block */
};

/* Where the parts of one workspace start, in 4-byte words. */
struct landmark_layout {
	int nb, kmax, lds;
	size_t gate, s, qg, og, wmax, wsum, sel, nsel, start, member, total;
};

static size_t round16(size_t x)
{
	return (x + 15) / 16 * 16;
}

static void landmark_layout(struct landmark_layout *lay, const struct landmark_setup *st,
			    int rows, int m)
{
	int nb = blocks_of(m, st->block), kmax = landmark_kmax(st, nb);

	lay->nb = nb;
	lay->kmax = kmax;
	lay->lds = st->block < m ? st->block : m;
	lay->gate = 0;
	lay->s = lay->gate + round16((size_t)rows * nb);
	lay->qg = lay->s + round16((size_t)rows * lay->lds);
	lay->og = lay->qg + round16((size_t)rows * st->d);
	lay->wmax = lay->og + round16((size_t)rows * st->d);
	lay->wsum = lay->wmax + round16(rows);
	lay->sel = lay->wsum + round16(rows);
	lay->nsel = lay->sel + round16((size_t)rows * kmax);
	lay->start = lay->nsel + round16(rows);
	lay->member = lay->start + round16((size_t)nb + 1);
	lay->total = lay->member + round16((size_t)rows * kmax);
}

static void landmark_ws_at(struct landmark_ws *ws, const struct landmark_layout *lay,
			   float *base)
{
	ws->gate = base + lay->gate;
	ws->s = base + lay->s;
	ws->lds = lay->lds;
	ws->qg = base + lay->qg;
	ws->og = base + lay->og;
	ws->wmax = base + lay->wmax;
	ws->wsum = base + lay->wsum;
	ws->sel = (int *)(base + lay->sel);
	ws->nsel = (int *)(base + lay->nsel);
	ws->start = (int *)(base + lay->start);
	ws->member = (int *)(base + lay->member);
}

/*
 * lambda_b = mean of the keys of block b, for every block of m keys: summed in double in
 * key order and rounded once, so the decoder's running sums give the same floats.
 */
static void landmark_means(const float *k, int m, int d, int block, float *lambda)
{
	int nb = blocks_of(m, block);

	for (int b = 0; b < nb; b++) {
		int lo = b * block, cnt = block_size(m, block, b);

		for (int c = 0; c < d; c++) {
			double sum = 0;

			for (int j = lo; j < lo + cnt; j++)
				sum += k[(size_t)j * d + c];
			lambda[(size_t)b * d + c] = (float)(sum / cnt);
		}
	}
}

/*
 * Merges one group into a row: its log-weight w (base 2), its output u = acc / l. The
 * row keeps the largest log-weight W so far, out and S scaled by 2^-W.
 */
static void merge_group(float *out, float *wmax, float *wsum, float w, const float *acc,
			float l, int d)
{
	float e;

	if (w > *wmax) {
		float by = exp2f(*wmax - w);	/* 0 for the first group */

		if (*wsum > 0)
			for (int c = 0; c < d; c++)
				out[c] *= by;
		*wsum *= by;
		*wmax = w;
	}
	e = exp2f(w - *wmax);
	*wsum += e;
	e /= l;
	for (int c = 0; c < d; c++)
		out[c] += e * acc[c];
}

/*
 * Row softmax of `rows` score rows (stride lds) over their first vis[r] (or cnt) entries,
 * the rest zeroed: stores each row's max in mx and returns sums in l.
 */
static void softmax_rows(float *s, int lds, int rows, int cnt, const int *vis, float *mx,
			 float *l)
{
	for (int r = 0; r < rows; r++) {
		float *row = s + (size_t)r * lds;
		int n = vis ? vis[r] : cnt;

		mx[r] = row_max(row, n);
		l[r] = exp2_shifted_sum(row, n, mx[r]);
		for (int j = n; j < cnt; j++)
			row[j] = 0;
	}
}

/*
 * Fewer rows than this share a retrieved block: they are scored and summed by plain
 * loops, since sgemm's packing of the block's keys and values would cost more than the
 * products (measured: with one row a block, packing took 40% of a pass).
 */
#define LANDMARK_DIRECT_ROWS 8

/*
 * One query row against cnt keys and values: out = sum_j 2^(s_j - mx) v_j with
 * s_j = scale q.k_j, its max in mx and sum in l; s is scratch of cnt.
 */
static void block_direct(const struct landmark_setup *st, const float *q, const float *k,
			 const float *v, int cnt, float *s, float *out, float *mx, float *l)
{
	int d = st->d;

	cblas_sgemv(CblasRowMajor, CblasNoTrans, cnt, d, st->scale, k, d, q, 1, 0.0f, s, 1);
	*mx = row_max(s, cnt);
	*l = exp2_shifted_sum(s, cnt, *mx);
	cblas_sgemv(CblasRowMajor, CblasTrans, cnt, d, 1.0f, v, d, s, 1, 0.0f, out, 1);
}

/* Top-topk blocks of `others` by gate (ties: smaller block), appended to sel. */
struct pick {
	float g;
	int b;
};

static bool pick_before(float g, int b, const struct pick *than)
{
	return g > than->g || (g == than->g && b < than->b);
}

static int int_ascending(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/*
 * R_i for one row: blocks [flo, fhi) are forced; the others are the candidate blocks
 * [0, ng) outside [flo, fhi) and other than own; topk of them by gate. Writes the
 * selection to sel in ascending order and returns its size. picks is scratch of kmax.
 */
static int select_blocks(const struct landmark_setup *st, const float *gate, int ng, int own,
			 int flo, int fhi, int *sel, struct pick *picks)
{
	int count = 0, others = 0, n = 0;

	for (int b = 0; b < ng; b++)
		if (b != own && (b < flo || b >= fhi))
			others++;
	if (st->topk >= others) {
		for (int b = 0; b < ng; b++)
			if (b != own)
				sel[n++] = b;
		return n;
	}
	for (int b = 0; b < ng && st->topk > 0; b++) {
		int at;

		if (b == own || (b >= flo && b < fhi))
			continue;
		if (count == st->topk) {
			if (!pick_before(gate[b], b, &picks[count - 1]))
				continue;
			count--;
		}
		/* insertion into picks, best first */
		for (at = count; at > 0 && pick_before(gate[b], b, &picks[at - 1]); at--)
			picks[at] = picks[at - 1];
		picks[at].g = gate[b];
		picks[at].b = b;
		count++;
	}
	for (int x = 0; x < count; x++)
		sel[n++] = picks[x].b;
	for (int b = flo; b < fhi; b++)
		sel[n++] = b;
	qsort(sel, (size_t)n, sizeof(*sel), int_ascending);
	return n;
}

/*
 * One tile: query rows r0 .. r0 + rows - 1 of a slice (q at row r0, out likewise) against
 * keys 0 .. m-1 (k, v) with landmarks lambda (mean gate). In ns and cs the rows lie in one
 * query block. picks: kmax scratch entries.
 */
static void landmark_tile(const struct landmark_setup *st, struct landmark_ws *ws,
			  struct pick *picks, const float *q, int r0, int rows, const float *k,
			  const float *v, const float *lambda, int m, float *out)
{
	int d = st->d, L = st->block, nb = blocks_of(m, L), lds = ws->lds;
	bool self = pattern_is_self(st->pattern), cs = st->pattern == ATTN_CS;
	int own = self ? r0 / L : -1;
	int ng = cs ? own : nb;		/* blocks that can be gated */
	int flo = 0, fhi = 0;		/* forced blocks */
	int kmax = landmark_kmax(st, nb);
	float *mx = ws->wmax, *l = ws->wsum;	/* reused before the merge starts */
	int vis[LANDMARK_ROWS];

	if (self) {
		long lo = own - (st->local_blocks - 1);

		flo = lo > 0 ? (int)lo : 0;
		fhi = own;
	}

	/* gates, rows x ng, stride nb */
	if (!st->lse && ng > 0) {
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, ng, d, st->scale, q,
			    d, lambda, d, 0.0f, ws->gate, nb);
		if (st->logsize)
			for (int b = 0; b < ng; b++) {
				float add = log2f((float)block_size(m, L, b));

				for (int r = 0; r < rows; r++)
					ws->gate[(size_t)r * nb + b] += add;
			}
	} else if (st->lse) {
		for (int b = 0; b < ng; b++) {
			int cnt = block_size(m, L, b);

			if (b == own)
				continue;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cnt, d,
				    st->scale, q, d, k + (size_t)b * L * d, d, 0.0f, ws->s, lds);
			softmax_rows(ws->s, lds, rows, cnt, NULL, mx, l);
			for (int r = 0; r < rows; r++)
				ws->gate[(size_t)r * nb + b] = mx[r] + log2f(l[r]);
		}
	}

	/* each row's blocks, then the rows of each block */
	memset(ws->start, 0, sizeof(int) * ((size_t)nb + 1));
	for (int r = 0; r < rows; r++) {
		int *sel = ws->sel + (size_t)r * kmax;

		ws->nsel[r] = select_blocks(st, ws->gate + (size_t)r * nb, ng, own, flo, fhi,
					    sel, picks);
		for (int x = 0; x < ws->nsel[r]; x++)
			ws->start[sel[x] + 1]++;
	}
	for (int b = 0; b < nb; b++)
		ws->start[b + 1] += ws->start[b];
	for (int r = 0; r < rows; r++) {
		const int *sel = ws->sel + (size_t)r * kmax;

		/* nsel is spent as a cursor: start[b] counts up as members are filed */
		for (int x = 0; x < ws->nsel[r]; x++)
			ws->member[ws->start[sel[x]]++] = r;
	}
	/* start[b] now holds the end of block b; shift back to offsets */
	for (int b = nb; b > 0; b--)
		ws->start[b] = ws->start[b - 1];
	ws->start[0] = 0;

	memset(out, 0, sizeof(float) * rows * d);

	/* the local group */
	if (self) {
		int lo = own * L, hi = lo + block_size(m, L, own), cnt;

		if (cs && hi > r0 + rows)
			hi = r0 + rows;
		cnt = hi - lo;
		for (int r = 0; r < rows; r++)
			vis[r] = cs ? r0 + r - lo + 1 : cnt;
		if (rows < LANDMARK_DIRECT_ROWS) {
			/* a decode step, or tiles of tiny blocks */
			for (int r = 0; r < rows; r++)
				block_direct(st, q + (size_t)r * d, k + (size_t)lo * d,
					     v + (size_t)lo * d, vis[r], ws->s,
					     ws->og + (size_t)r * d, &mx[r], &l[r]);
		} else {
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cnt, d,
				    st->scale, q, d, k + (size_t)lo * d, d, 0.0f, ws->s, lds);
			softmax_rows(ws->s, lds, rows, cnt, vis, mx, l);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, cnt, 1.0f,
				    ws->s, lds, v + (size_t)lo * d, d, 0.0f, ws->og, d);
		}
		for (int r = 0; r < rows; r++) {
			float w = mx[r] + log2f(l[r]), lr = l[r];

			/* the merge state takes over mx and l: the first group sets them */
			ws->wmax[r] = -INFINITY;
			ws->wsum[r] = 0;
			merge_group(out + (size_t)r * d, &ws->wmax[r], &ws->wsum[r], w,
				    ws->og + (size_t)r * d, lr, d);
		}
	} else {
		for (int r = 0; r < rows; r++) {
			ws->wmax[r] = -INFINITY;
			ws->wsum[r] = 0;
		}
	}

	/* retrieved blocks, each with the rows that picked it */
	for (int b = 0; b < nb; b++) {
		int c = ws->start[b + 1] - ws->start[b], cnt = block_size(m, L, b);
		const int *rs = ws->member + ws->start[b];
		float bmx[LANDMARK_ROWS], bl[LANDMARK_ROWS];

		if (!c)
			continue;
		if (c < LANDMARK_DIRECT_ROWS) {
			for (int x = 0; x < c; x++)
				block_direct(st, q + (size_t)rs[x] * d, k + (size_t)b * L * d,
					     v + (size_t)b * L * d, cnt, ws->s,
					     ws->og + (size_t)x * d, &bmx[x], &bl[x]);
		} else {
			for (int x = 0; x < c; x++)
				memcpy(ws->qg + (size_t)x * d, q + (size_t)rs[x] * d,
				       sizeof(float) * d);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c, cnt, d, st->scale,
				    ws->qg, d, k + (size_t)b * L * d, d, 0.0f, ws->s, lds);
			softmax_rows(ws->s, lds, c, cnt, NULL, bmx, bl);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c, d, cnt, 1.0f,
				    ws->s, lds, v + (size_t)b * L * d, d, 0.0f, ws->og, d);
		}
		for (int x = 0; x < c; x++) {
			int r = rs[x];

			merge_group(out + (size_t)r * d, &ws->wmax[r], &ws->wsum[r],
				    ws->gate[(size_t)r * nb + b], ws->og + (size_t)x * d, bl[x], d);
		}
	}

	for (int r = 0; r < rows; r++) {
		float by = ws->wsum[r] > 0 ? 1.0f / ws->wsum[r] : 0.0f;

		for (int c = 0; c < d; c++)
			out[(size_t)r * d + c] *= by;
	}
}

/* Tiles of one slice: in ns/cs inside query blocks, in nc/cc plain runs of rows. */
struct landmark_tiling {
	int per_block;		/* ns/cs: tiles per query block */
	int count;		/* tiles per slice */
};

static void landmark_tiling(struct landmark_tiling *t, const struct landmark_setup *st, int n)
{
	if (pattern_is_self(st->pattern)) {
		int rows = st->block < LANDMARK_ROWS ? st->block : LANDMARK_ROWS;

		t->per_block = (st->block + rows - 1) / rows;
		t->count = blocks_of(n, st->block) * t->per_block;
	} else {
		t->per_block = 0;
		t->count = (n + LANDMARK_ROWS - 1) / LANDMARK_ROWS;
	}
}

/* Rows r0 .. r0 + return - 1 of tile `tile`; 0 rows for a tile past a short last block. */
static int landmark_tile_rows(const struct landmark_tiling *t, const struct landmark_setup *st,
			      int n, int tile, int *r0)
{
	long lo, hi;

	if (t->per_block) {
		int rows = st->block < LANDMARK_ROWS ? st->block : LANDMARK_ROWS;
		long qb = tile / t->per_block, sub = tile % t->per_block;
		long end = (qb + 1) * st->block;

		lo = qb * st->block + sub * rows;
		hi = lo + rows < end ? lo + rows : end;
	} else {
		lo = (long)tile * LANDMARK_ROWS;
		hi = lo + LANDMARK_ROWS;
	}
	hi = hi < n ? hi : n;
	*r0 = (int)lo;
	return hi > lo ? (int)(hi - lo) : 0;
}

/*
 * Below this many multiply-adds in a forward pass (about 100 us of work) a parallel region
 * costs more than it saves.
 */
#define LANDMARK_PARALLEL_MIN (1 << 20)

/* Multiply-adds of a forward pass, roughly: every row's own block, retrieved blocks, gates. */
static double landmark_work(const struct landmark_setup *st, const struct attn_problem *p)
{
	int nb = blocks_of(p->m, st->block);
	double per_row = (double)st->block * (landmark_kmax(st, nb) + 1) +
			 (st->lse ? p->m : nb);

	return (double)p->batch * p->heads * p->n * p->d * per_row;
}

static int landmark_forward(const struct attn_problem *p, const float *q, const float *k,
			    const float *v, float *out)
{
	struct landmark_setup st;
	struct landmark_layout lay;
	struct landmark_tiling tiling;
	int kv_slices = p->batch * p->kv_heads, threads = max_threads(), saved;
	size_t picks_words;
	float *lambda = NULL, *ws;
	long items;

	landmark_resolve(p, &st);
	landmark_layout(&lay, &st, LANDMARK_ROWS, p->m);
	landmark_tiling(&tiling, &st, p->n);
	/* a pick is two words */
	picks_words = round16(2 * (size_t)(lay.kmax > 0 ? lay.kmax : 1));
	ws = attn_alloc((size_t)threads * (lay.total + picks_words) * sizeof(float));
	if (!ws)
		return -ENOMEM;
	if (!st.lse) {
		lambda = attn_alloc((size_t)kv_slices * lay.nb * p->d * sizeof(float));
		if (!lambda) {
			attn_free(ws);
			return -ENOMEM;
		}
	}

	items = (long)p->batch * p->heads * tiling.count;
	saved = blas_serial_begin();
	#pragma omp parallel if (landmark_work(&st, p) >= LANDMARK_PARALLEL_MIN)
	{
		float *base = ws + (size_t)thread_id() * (lay.total + picks_words);
		struct pick *picks = (struct pick *)(base + lay.total);
		struct landmark_ws w;

		landmark_ws_at(&w, &lay, base);
		/* the landmarks of every KV head first (the barrier ends this loop) */
		if (lambda) {
			#pragma omp for schedule(static)
			for (int s = 0; s < kv_slices; s++)
				landmark_means(k + (size_t)s * p->m * p->d, p->m, p->d, st.block,
					       lambda + (size_t)s * lay.nb * p->d);
		}
		#pragma omp for schedule(dynamic, 1)
		for (long it = 0; it < items; it++) {
			long slice = it / tiling.count;
			int b = (int)(slice / p->heads), h = (int)(slice % p->heads);
			int kvh = h / (p->heads / p->kv_heads), r0;
			int rows = landmark_tile_rows(&tiling, &st, p->n,
						      (int)(it % tiling.count), &r0);
			size_t qo = problem_q_offset(p, b, h) + (size_t)r0 * p->d;
			size_t kvo = problem_kv_offset(p, b, h);
			const float *lam = lambda ? lambda + ((size_t)b * p->kv_heads + kvh) *
						    lay.nb * p->d : NULL;

			if (!rows)
				continue;
			landmark_tile(&st, &w, picks, q + qo, r0, rows, k + kvo, v + kvo, lam,
				      p->m, out + qo);
		}
	}
	blas_serial_end(saved);
	attn_free(lambda);
	attn_free(ws);
	return 0;
}

/*
 * Keys row i attends and blocks it gates, by the rules above. Retrieved blocks are
 * counted as full (L keys, at most the keys of the candidates), which is exact unless the
 * short last block of ns/nc/cc is among them.
 */
static void landmark_row_work(const struct landmark_setup *st, int i, int m, double *keys,
			      double *gated)
{
	int L = st->block, nb = blocks_of(m, L);
	bool self = pattern_is_self(st->pattern), cs = st->pattern == ATTN_CS;
	int own = self ? i / L : -1, ng = cs ? own : nb;
	long forced = 0, others, picked;
	double local = 0, other_keys;

	if (self) {
		long lo = own - (st->local_blocks - 1);

		forced = own - (lo > 0 ? lo : 0);
		local = cs ? i - (long)own * L + 1 : block_size(m, L, own);
	}
	others = ng - forced - (self && !cs ? 1 : 0);
	/* keys of all candidates minus the forced blocks and the own block */
	other_keys = (cs ? (double)own * L : (double)m - local) - (double)forced * L;
	picked = st->topk < others ? st->topk : others;
	*keys = local + (double)forced * L + fmin((double)picked * L, other_keys);
	*gated = st->lse ? (cs ? (double)own * L : (double)m - local) : (self && !cs ? ng - 1 : ng);
}

/*
 * 2d per (row, gated block) for the mean gate or per (row, candidate key) for lse, 4d per
 * (row, attended key), and d per key for the landmarks of each KV head.
 */
static double landmark_flops(const struct attn_problem *p)
{
	struct landmark_setup st;
	double keys_total = 0, gated_total = 0;

	landmark_resolve(p, &st);
	for (int i = 0; i < p->n; i++) {
		double keys, gated;

		landmark_row_work(&st, i, p->m, &keys, &gated);
		keys_total += keys;
		gated_total += gated;
	}
	return (double)p->batch * p->heads * p->d * (4.0 * keys_total + 2.0 * gated_total) +
	       (st.lse ? 0.0 : (double)p->batch * p->kv_heads * p->m * p->d);
}

/* Landmarks kept per KV head: every block (ns, nc, cc) or the complete ones (cs). */
static long landmark_count(const struct landmark_setup *st, int m)
{
	if (st->lse)
		return 0;
	return st->pattern == ATTN_CS ? m / st->block : blocks_of(m, st->block);
}

/*
 * Every key and value (any block can be retrieved later) plus the landmark keys, float32:
 * kv_cache_bytes(p, m) + 4 B Hkv d (cs: floor(M/L), else ceil(M/L)); no landmarks with
 * the lse gate.
 */
static double landmark_state_bytes(const struct attn_problem *p)
{
	struct landmark_setup st;

	landmark_resolve(p, &st);
	return kv_cache_bytes(p, p->m) +
	       (double)p->batch * p->kv_heads * landmark_count(&st, p->m) * p->d * sizeof(float);
}

/* Below this many multiply-adds per step a parallel region costs more than it saves. */
#define LANDMARK_DECODE_PARALLEL_MIN 32768

/* Incremental decoding (cs). */
struct landmark_decode {
	struct attn_problem p;		/* n = m = capacity in positions */
	double params[LANDMARK_PARAM_COUNT];	/* p.params points here */
	struct landmark_setup st;
	struct landmark_layout lay;	/* one-row tiles over the capacity */
	size_t slot;			/* words per thread: layout and picks */
	int len;			/* positions fed so far */
	int threads;
	struct kv_cache cache;
	float *lambda;			/* [kv slices][capacity / L][d] complete blocks */
	double *sum;			/* [kv slices][d] keys of the block being filled */
	float *ws;			/* [threads][slot] */
};

static void landmark_decode_free(void *state)
{
	struct landmark_decode *dec = state;

	if (!dec)
		return;
	attn_free(dec->ws);
	attn_free(dec->sum);
	attn_free(dec->lambda);
	kv_cache_release(&dec->cache);
	attn_free(dec);
}

static int landmark_decode_init(const struct attn_problem *p, void **state)
{
	struct landmark_decode *dec;
	int kv_slices = p->batch * p->kv_heads, ret;

	*state = NULL;
	dec = attn_calloc(1, sizeof(*dec));
	if (!dec)
		return -ENOMEM;
	ret = kv_cache_init(&dec->cache, p, p->n);
	if (ret)
		goto out_free_state;
	dec->p = decode_problem(p);
	dec->params[LANDMARK_BLOCK] = LANDMARK_BLOCK_DEFAULT;
	dec->params[LANDMARK_TOPK] = LANDMARK_TOPK_DEFAULT;
	dec->params[LANDMARK_LOGSIZE] = 1;
	dec->params[LANDMARK_GATE] = 0;
	dec->params[LANDMARK_LOCAL_BLOCKS] = 1;
	if (p->params)
		memcpy(dec->params, p->params, sizeof(dec->params));
	dec->p.params = dec->params;
	landmark_resolve(&dec->p, &dec->st);
	landmark_layout(&dec->lay, &dec->st, 1, dec->p.m);
	dec->slot = dec->lay.total + round16(2 * (size_t)(dec->lay.kmax > 0 ? dec->lay.kmax : 1));
	dec->threads = max_threads();
	dec->lambda = attn_calloc((size_t)kv_slices * (dec->p.m / dec->st.block + 1) * p->d,
				  sizeof(float));
	dec->sum = attn_calloc((size_t)kv_slices * p->d, sizeof(double));
	dec->ws = attn_calloc((size_t)dec->threads * dec->slot, sizeof(float));
	if (!dec->lambda || !dec->sum || !dec->ws) {
		ret = -ENOMEM;
		goto out_free_state;
	}
	*state = dec;
	return 0;

out_free_state:
	landmark_decode_free(dec);
	return ret;
}

static int landmark_decode_step(void *state, const float *q, const float *k, const float *v,
				float *out)
{
	struct landmark_decode *dec = state;
	const struct attn_problem *p = &dec->p;
	int slices = p->batch * p->heads, kv_slices = p->batch * p->kv_heads, d = p->d;
	int t = dec->len, L = dec->st.block, per = p->m / L + 1, saved;
	double work;

	if (t >= p->m)
		return -ENOSPC;
	kv_cache_put(&dec->cache, t, k, v);
	dec->len++;
	/* the running sum in key order, as landmark_means() sums a block */
	for (int s = 0; s < kv_slices; s++) {
		double *sum = dec->sum + (size_t)s * d;

		for (int c = 0; c < d; c++)
			sum[c] += k[(size_t)s * d + c];
		if ((t + 1) % L == 0) {
			float *lam = dec->lambda + ((size_t)s * per + t / L) * d;

			for (int c = 0; c < d; c++) {
				lam[c] = (float)(sum[c] / L);
				sum[c] = 0;
			}
		}
	}

	work = (double)slices * d * ((double)(t % L + 1) + (double)(t / L) +
				     (double)(dec->lay.kmax) * L);
	saved = blas_serial_begin();
	#pragma omp parallel num_threads(dec->threads) \
		if (work >= LANDMARK_DECODE_PARALLEL_MIN)
	{
		float *base = dec->ws + (size_t)thread_id() * dec->slot;
		struct pick *picks = (struct pick *)(base + dec->lay.total);
		struct landmark_ws w;

		landmark_ws_at(&w, &dec->lay, base);
		#pragma omp for schedule(static)
		for (int i = 0; i < slices; i++) {
			int b = i / p->heads, kvh = i % p->heads / (p->heads / p->kv_heads);
			int kvs = b * p->kv_heads + kvh;
			size_t kvo = kv_cache_slice(&dec->cache, kvs);

			landmark_tile(&dec->st, &w, picks, q + (size_t)i * d, t, 1,
				      dec->cache.k + kvo, dec->cache.v + kvo,
				      dec->lambda + (size_t)kvs * per * d, t + 1,
				      out + (size_t)i * d);
		}
	}
	blas_serial_end(saved);
	return 0;
}

const struct variant_ops landmark_variant = {
	.name		= "landmark",
	.family		= "sparse",
	.summary	= "landmark attention: mean-key block landmarks [harness] gate the top "
			  "k_r blocks in a grouped softmax with the own block",
	.citation	= "Mohtashami & Jaggi 2023, Landmark Attention: Random-Access Infinite "
			  "Context Length for Transformers, NeurIPS (arXiv 2305.16300)",
	.patterns	= PATTERNS_ALL,
	.extensions	= PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_NC) | PATTERN_BIT(ATTN_CC),
	.flags		= 0,
	.params		= landmark_params,
	.n_params	= LANDMARK_PARAM_COUNT,
	.forward	= landmark_forward,
	.flops		= landmark_flops,
	.state_bytes	= landmark_state_bytes,
	.decode_init	= landmark_decode_init,
	.decode_step	= landmark_decode_step,
	.decode_free	= landmark_decode_free,
};
