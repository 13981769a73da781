/*
 * routing.c - Routing Transformer attention without training (Roy et al. 2021, TACL):
 * queries and keys are clustered by spherical k-means and a query attends only to the
 * keys routed to its cluster (VARIANTS.md section 8).
 *
 * Per (batch, head) slice, with C clusters (routing.clusters; 0 means round(sqrt(M))),
 * T Lloyd steps (routing.iters) and w = ceil(M / C):
 *   x^ = x / |x| for the rows of Q and K (a zero row stays zero [harness]);
 *   ns, nc: the centroids start as C distinct rows of [Q^; K^] (row r < N is q^_r, row
 *       N + j is k^_j), drawn by Floyd's algorithm from plan_rng_make(seed, 1000 h) for
 *       query head h: for j = R - C .. R - 1, t = plan_rng_below(j + 1), and j instead
 *       of t when t was drawn already; centroid c is the c-th row drawn. Then T Lloyd
 *       steps on [Q^; K^]: every row goes to argmax_c x^ . mu_c (ties: the smaller c),
 *       mu_c becomes the normalised sum of its rows; a cluster with no rows, or whose
 *       rows sum to zero, keeps its centroid [harness: the second case].
 *       Query i's cluster a(i) = argmax_c q^_i . mu_c [harness: argmax, not the
 *       reference codes' top-w balancing of queries]; cluster c's key set is the w keys
 *       of largest k^_j . mu_c (ties: the smaller j). Row i: softmax of q_i . k_j / sqrt(d)
 *       over the key set of a(i).
 *   cc: as nc, but the centroids start from C rows of K^ drawn from the one stream
 *       ROUTING_KEY_STREAM and the Lloyd steps run on K^ alone, so queries never
 *       influence one another (nor the centroids).
 *   cs: C fixed unit centroids, plan objects: C x d standard normals from
 *       plan_rng_make(seed, ROUTING_FIXED_STREAM) (centroid by centroid), each
 *       normalised in double and stored as float. Key j's cluster a(j) and query i's
 *       a(i) are argmax_c of k_j . mu_c and q_i . mu_c (the cosine's argmax, |x| > 0);
 *       row i attends {j <= i : a(j) = a(i)} and itself.
 * [harness] The random objects of cc (which key rows start the centroids) and of cs (the
 * centroids) are one per problem, not per head: they meet only keys, so the clustering
 * of a KV head is computed once and shared by its query group (VARIANTS.md section 31),
 * which gives GQA exactly what MHA gives with K/V repeated. ns/nc centroids mix queries,
 * so they stay per query head with a per-head stream.
 *
 * Work is O((N + M) C d T + N w d): Lloyd assignments are sgemm products of row tiles
 * with the centroid matrix and an argmax per row, vectorised from C = 128 on (Lloyd
 * stops once the assignments repeat, which leaves every later step unchanged). Key sets
 * are made only for the clusters some query is routed to (no other set is ever read;
 * with N < C that is at most N of them): sgemm scores of K^ against blocks of those
 * centroids, then one pass over the keys that keeps, per set, the keys above a running
 * threshold (the w-th best score so far) and selects the w best of those few. Attention
 * gathers each cluster's queries in tiles and its keys in blocks for two sgemm calls per
 * block with an online softmax. No N x M score matrix exists; a thread's scratch is
 * O((N + M) d + M + tiles). Slices are clustered in parallel (OpenMP, BLAS
 * single-threaded inside; cc makes its sets after routing the queries), and attention
 * runs in parallel over (batch, head, cluster).
 *
 * cs decodes incrementally from a KV cache and the cluster id of every cached key; the
 * cs assignments use dot() in both forward and decode, so the two agree bit for bit on
 * which cluster a row is in.
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
#include "random.h"
#include "threads.h"
#include "vexp.h"

#define ROUTING_ITERS_DEFAULT 10	/* lucidrains' implementation (catalogue default) */

enum routing_param {
	ROUTING_CLUSTERS,
	ROUTING_ITERS,
};

static const struct variant_param routing_params[] = {
	[ROUTING_CLUSTERS] = {
		.name		= "clusters",
		.def		= 0,
		.min		= 0,
		.max		= 1048576,
		.integer	= true,
		.help		= "C clusters; 0 means round(sqrt(M)) (the paper's sqrt(n)); "
				  "w = ceil(M/C) keys per set",
	},
	[ROUTING_ITERS] = {
		.name		= "iters",
		.def		= ROUTING_ITERS_DEFAULT,
		.min		= 0,
		.max		= 1000,
		.integer	= true,
		.help		= "T Lloyd steps (ns, nc, cc) [harness: k-means at run time, "
				  "not the paper's EMA-trained centroids]",
	},
};

/* Plan streams: ns/nc per query head h; cc and cs one per problem (see the top). */
#define ROUTING_HEAD_STREAM(h)	(1000 * (uint64_t)(h))
#define ROUTING_KEY_STREAM	1
#define ROUTING_FIXED_STREAM	2

/* Rows per sgemm tile of the Lloyd assignments. */
#define ROUTING_TILE 256
/* Centroids per sgemm block when scoring keys for the balanced sets. */
#define ROUTING_SET_BLOCK 16
/*
 * Room for one set's candidates while its keys are scanned, in multiples of w: a full
 * room is cut back to the w best, so more room means fewer cuts but a longer last one.
 */
#define ROUTING_SET_ROOM 4
/*
 * Lanes of argmax(): a multiple of every vector width in floats; at 16 the compiler kept
 * the lanes in scalar registers instead of vectors.
 */
#define ROUTING_ARGMAX_LANES 32
/* Queries per attention tile and keys per block of its online softmax. */
#define ROUTING_TILE_Q 64
#define ROUTING_BLOCK_K 256

/* log2(e): scores are kept in base 2 for exp2. */
#define LOG2E 1.4426950408889634

static int routing_clusters(const struct attn_problem *p)
{
	long c = p->params ? (long)p->params[ROUTING_CLUSTERS] : 0;

	if (c == 0)
		c = lround(sqrt((double)p->m));
	return c < 1 ? 1 : (int)c;
}

static int routing_iters(const struct attn_problem *p)
{
	return p->params ? (int)p->params[ROUTING_ITERS] : ROUTING_ITERS_DEFAULT;
}

/* w = ceil(M / C): the size of every balanced key set. */
static int routing_width(const struct attn_problem *p)
{
	int c = routing_clusters(p);

	return (int)(((long)p->m + c - 1) / c);
}

/*
 * The centroids are drawn from rows: ns/nc need C distinct rows of [Q; K], cc C of K.
 * cs draws random vectors and takes any C.
 */
static int routing_supports(const struct attn_problem *p)
{
	long c = routing_clusters(p);

	switch (p->pattern) {
	case ATTN_NS:
	case ATTN_NC:
		return c <= (long)p->n + p->m ? 0 : -ENOTSUP;
	case ATTN_CC:
		return c <= p->m ? 0 : -ENOTSUP;
	default:
		return 0;
	}
}

/* The sizes one forward works with. */
struct routing_plan {
	enum attn_pattern pattern;
	int n, m, d;
	int clusters, iters, width;
	int rows;		/* rows Lloyd runs on: n + m (ns, nc), m (cc), 0 (cs) */
	int room;		/* candidates per set while selecting: min(m, 4 w) */
	float scale;		/* log2(e) / sqrt(d) */
};

static void routing_plan_make(struct routing_plan *pl, const struct attn_problem *p)
{
	pl->pattern = p->pattern;
	pl->n = p->n;
	pl->m = p->m;
	pl->d = p->d;
	pl->clusters = routing_clusters(p);
	pl->iters = routing_iters(p);
	pl->width = routing_width(p);
	pl->rows = p->pattern == ATTN_CC ? p->m : p->pattern == ATTN_CS ? 0 : p->n + p->m;
	pl->room = (int)fmin((double)ROUTING_SET_ROOM * pl->width, p->m);
	pl->scale = (float)(LOG2E / sqrt((double)p->d));
}

/* A key's score against one centroid, and the key, for the selection of a set. */
struct scored {
	float s;
	int j;
};

/* One thread's scratch. */
struct routing_ws {
	double *sums;		/* C x d: a Lloyd step's sums of rows per cluster */
	float *xhat;		/* rows x d: the normalised rows Lloyd runs on */
	float *qhat;		/* cc: ROUTING_TILE x d normalised queries */
	float *tile;		/* ROUTING_TILE x C: assignment scores */
	float *block;		/* m x ROUTING_SET_BLOCK: key scores for the sets */
	float *cent;		/* ROUTING_SET_BLOCK x d: the centroids scored in block */
	float *thr;		/* ROUTING_SET_BLOCK: a key must score above this to enter */
	float *qt, *s, *kb, *vb, *acc, *mx, *l;	/* attention tile, see attend_tile() */
	struct scored *sel;	/* m: keys ranked for one set */
	struct scored *cand;	/* ROUTING_SET_BLOCK x room: each column's candidates */
	int *target;		/* ROUTING_SET_BLOCK: the cluster of each block column, or -1 */
	int *ncand;		/* ROUTING_SET_BLOCK: candidates held per column */
	int *used;		/* C: the clusters some query is routed to */
	int *assign;		/* rows: current cluster of each Lloyd row */
	int *counts;		/* C: rows per cluster */
	int *draw;		/* C: the rows that start the centroids */
	int *ids;		/* max(n, m): cluster of each query (or key) */
	int *cursor;		/* C: counting-sort cursors */
	int *limit, *self;	/* ROUTING_TILE_Q: cs visible prefix and extra self key */
};

static size_t round_line(size_t bytes)
{
	return (bytes + 63) / 64 * 64;
}

/* Places one part at *at of base (NULL: only counts) and moves *at past it. */
#define PLACE(base, at, ptr, count)						\
	do {									\
		(ptr) = (base) ? (void *)((unsigned char *)(base) + (at)) : NULL; \
		(at) += round_line(sizeof(*(ptr)) * (size_t)(count));		\
	} while (0)

/* Lays out one thread's scratch from base (NULL: only measures); returns its bytes. */
static size_t routing_ws_layout(const struct routing_plan *pl, void *base,
				struct routing_ws *ws)
{
	size_t at = 0, most = pl->n > pl->m ? pl->n : pl->m;
	int c = pl->clusters, d = pl->d;
	int tile = pl->rows < ROUTING_TILE ? pl->rows : ROUTING_TILE;
	int sb = c < ROUTING_SET_BLOCK ? c : ROUTING_SET_BLOCK;
	bool lloyd = pl->rows > 0;

	if (pl->pattern == ATTN_CC && pl->n > tile)
		tile = pl->n < ROUTING_TILE ? pl->n : ROUTING_TILE;
	PLACE(base, at, ws->sums, lloyd ? (size_t)c * d : 0);
	PLACE(base, at, ws->xhat, (size_t)(lloyd ? pl->rows : 0) * d);
	PLACE(base, at, ws->qhat, pl->pattern == ATTN_CC ? (size_t)tile * d : 0);
	PLACE(base, at, ws->tile, lloyd ? (size_t)tile * c : 0);
	PLACE(base, at, ws->block, lloyd ? (size_t)pl->m * sb : 0);
	PLACE(base, at, ws->sel, lloyd ? pl->m : 0);
	PLACE(base, at, ws->cent, lloyd ? (size_t)sb * d : 0);
	PLACE(base, at, ws->thr, lloyd ? sb : 0);
	PLACE(base, at, ws->cand, lloyd ? (size_t)sb * pl->room : 0);
	PLACE(base, at, ws->target, lloyd ? sb : 0);
	PLACE(base, at, ws->ncand, lloyd ? sb : 0);
	PLACE(base, at, ws->used, lloyd ? c : 0);
	PLACE(base, at, ws->assign, pl->rows);
	PLACE(base, at, ws->counts, c);
	PLACE(base, at, ws->draw, c);
	PLACE(base, at, ws->ids, most);
	PLACE(base, at, ws->cursor, c);
	PLACE(base, at, ws->qt, (size_t)ROUTING_TILE_Q * d);
	PLACE(base, at, ws->s, (size_t)ROUTING_TILE_Q * ROUTING_BLOCK_K);
	PLACE(base, at, ws->kb, (size_t)ROUTING_BLOCK_K * d);
	PLACE(base, at, ws->vb, (size_t)ROUTING_BLOCK_K * d);
	PLACE(base, at, ws->acc, (size_t)ROUTING_TILE_Q * d);
	PLACE(base, at, ws->mx, ROUTING_TILE_Q);
	PLACE(base, at, ws->l, ROUTING_TILE_Q);
	PLACE(base, at, ws->limit, ROUTING_TILE_Q);
	PLACE(base, at, ws->self, ROUTING_TILE_Q);
	return at;
}

/* out = x / |x| (norm in double); a zero row gives a zero row. */
static void unit_row(const float *x, int d, float *out)
{
	double ss = 0;
	float inv;

	for (int c = 0; c < d; c++)
		ss += (double)x[c] * x[c];
	inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
	for (int c = 0; c < d; c++)
		out[c] = inv * x[c];
}

static void unit_rows(const float *x, int rows, int d, float *out)
{
	for (int r = 0; r < rows; r++)
		unit_row(x + (size_t)r * d, d, out + (size_t)r * d);
}

/*
 * Index of the largest of s[0..count); ties go to the first. From 4 x
 * ROUTING_ARGMAX_LANES scores on, the largest value comes from that many running maxima
 * and the first index holding it from a search a block at a time, loops the compiler
 * vectorises: 4x faster than the scalar scan at C = 256, where that scan, branching on
 * every score, cost a quarter of a Lloyd step. Below that the scan was as fast here. The
 * first index holding the largest value is what the scan finds, as long as there are no
 * NaNs.
 */
static int argmax(const float *s, int count)
{
	float part[ROUTING_ARGMAX_LANES], max;
	int c, best = 0;

	if (count < 4 * ROUTING_ARGMAX_LANES) {
		for (c = 1; c < count; c++)
			if (s[c] > s[best])
				best = c;
		return best;
	}
	for (int x = 0; x < ROUTING_ARGMAX_LANES; x++)
		part[x] = s[x];
	for (c = ROUTING_ARGMAX_LANES; c + ROUTING_ARGMAX_LANES <= count;
	     c += ROUTING_ARGMAX_LANES)
		for (int x = 0; x < ROUTING_ARGMAX_LANES; x++)
			part[x] = s[c + x] > part[x] ? s[c + x] : part[x];
	/* halving down to two lanes: a maximum is exact in any order */
	for (int half = ROUTING_ARGMAX_LANES / 2; half >= 2; half /= 2)
		for (int x = 0; x < half; x++)
			part[x] = part[x + half] > part[x] ? part[x + half] : part[x];
	max = part[1] > part[0] ? part[1] : part[0];
	for (; c < count; c++)
		max = s[c] > max ? s[c] : max;
	for (; best + ROUTING_ARGMAX_LANES <= count; best += ROUTING_ARGMAX_LANES) {
		int hit = 0;

		for (int x = 0; x < ROUTING_ARGMAX_LANES; x++)
			hit |= s[best + x] == max;
		if (hit)
			break;
	}
	/* bounded: a NaN max equals nothing */
	while (best < count - 1 && s[best] != max)
		best++;
	return best;
}

/* The cluster of x among the C centroids: argmax_c x . mu_c by dot(), ties to the first. */
static int nearest(const float *x, const float *mu, int clusters, int d)
{
	float best = dot(x, mu, d);
	int at = 0;

	for (int c = 1; c < clusters; c++) {
		float s = dot(x, mu + (size_t)c * d, d);

		if (s > best) {
			best = s;
			at = c;
		}
	}
	return at;
}

/*
 * count distinct integers of [0, rows), in the order drawn, by Floyd's algorithm: for
 * j = rows - count .. rows - 1, t = plan_rng_below(j + 1), or j when t is taken.
 */
static void draw_rows(struct plan_rng *g, int rows, int count, int *out)
{
	int got = 0;

	for (int j = rows - count; j < rows; j++) {
		int t = (int)plan_rng_below(g, (uint64_t)j + 1);

		for (int x = 0; x < got; x++)
			if (out[x] == t) {
				t = j;
				break;
			}
		out[got++] = t;
	}
}

/* cs: the C fixed unit centroids of the plan (see the top). */
static void fixed_centroids(uint64_t seed, int clusters, int d, float *mu)
{
	struct plan_rng g = plan_rng_make(seed, ROUTING_FIXED_STREAM);

	for (int c = 0; c < clusters; c++) {
		/* the d normals twice: once for their norm, then from the same state again */
		struct plan_rng again = g;
		double ss = 0, x;

		for (int e = 0; e < d; e++) {
			x = plan_rng_normal(&g);
			ss += x * x;
		}
		for (int e = 0; e < d; e++)
			mu[(size_t)c * d + e] = (float)(plan_rng_normal(&again) / sqrt(ss));
	}
}

/*
 * assign[r] = argmax_c x_r . mu_c for the rows of x, tile by tile through sgemm; returns
 * whether any assignment changed.
 */
static bool assign_rows(const float *x, int rows, const float *mu, int clusters, int d,
			float *tile, int *assign)
{
	bool changed = false;

	for (int r0 = 0; r0 < rows; r0 += ROUTING_TILE) {
		int nr = rows - r0 < ROUTING_TILE ? rows - r0 : ROUTING_TILE;

		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, clusters, d, 1.0f,
			    x + (size_t)r0 * d, d, mu, d, 0.0f, tile, clusters);
		for (int r = 0; r < nr; r++) {
			int a = argmax(tile + (size_t)r * clusters, clusters);

			changed |= assign[r0 + r] != a;
			assign[r0 + r] = a;
		}
	}
	return changed;
}

/*
 * mu_c = (sum of the rows assigned to c) / its norm, summed in double; a cluster with no
 * rows or a zero sum keeps its centroid.
 */
static void update_centroids(const float *x, int rows, const int *assign, int clusters,
			     int d, double *sums, int *counts, float *mu)
{
	memset(sums, 0, sizeof(double) * clusters * d);
	memset(counts, 0, sizeof(int) * clusters);
	for (int r = 0; r < rows; r++) {
		double *sc = sums + (size_t)assign[r] * d;
		const float *xr = x + (size_t)r * d;

		counts[assign[r]]++;
		for (int e = 0; e < d; e++)
			sc[e] += xr[e];
	}
	for (int c = 0; c < clusters; c++) {
		const double *sc = sums + (size_t)c * d;
		double ss = 0;

		if (!counts[c])
			continue;
		for (int e = 0; e < d; e++)
			ss += sc[e] * sc[e];
		if (!(ss > 0))
			continue;
		for (int e = 0; e < d; e++)
			mu[(size_t)c * d + e] = (float)(sc[e] / sqrt(ss));
	}
}

/*
 * T Lloyd steps on ws->xhat (pl->rows rows) from the centroids in mu. Stops early once an
 * assignment repeats the last: that step and every later one would leave mu as it is.
 * Returns whether ws->assign holds every row's argmax under the final mu.
 */
static bool lloyd(const struct routing_plan *pl, float *mu, struct routing_ws *ws)
{
	for (int r = 0; r < pl->rows; r++)
		ws->assign[r] = -1;
	for (int it = 0; it < pl->iters; it++) {
		if (!assign_rows(ws->xhat, pl->rows, mu, pl->clusters, pl->d, ws->tile,
				 ws->assign))
			return true;
		update_centroids(ws->xhat, pl->rows, ws->assign, pl->clusters, pl->d, ws->sums,
				 ws->counts, mu);
	}
	return false;
}

/* Ranking of keys for a set: larger score first, then the smaller key. */
static bool ranks_before(const struct scored *a, const struct scored *b)
{
	return a->s > b->s || (a->s == b->s && a->j < b->j);
}

/* Reorders x[0..n) so that its first k (1 <= k <= n) are the k first by ranks_before(). */
static void select_first(struct scored *x, int n, int k)
{
	int lo = 0, hi = n - 1;

	while (lo < hi) {
		struct scored pivot = x[lo + (hi - lo) / 2];
		int i = lo, j = hi;

		while (i <= j) {
			while (ranks_before(&x[i], &pivot))
				i++;
			while (ranks_before(&pivot, &x[j]))
				j--;
			if (i <= j) {
				struct scored t = x[i];

				x[i++] = x[j];
				x[j--] = t;
			}
		}
		if (k - 1 <= j)
			hi = j;
		else if (k - 1 >= i)
			lo = i;
		else
			break;
	}
}

static int by_value(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/*
 * Keeps, in their order, the k first of x[0..*n) by ranks_before() (k <= *n), through a
 * selection on a copy in tmp; *n becomes k. Returns the score of the k-th, below which
 * (or level with it, further on in the scan) a key cannot enter.
 */
static float keep_first(struct scored *x, int *n, int k, struct scored *tmp)
{
	struct scored last;
	int kept = 0;

	memcpy(tmp, x, sizeof(*x) * *n);
	select_first(tmp, *n, k);
	last = tmp[0];
	for (int r = 1; r < k; r++)
		if (ranks_before(&last, &tmp[r]))
			last = tmp[r];
	/* exactly k pass under a total order; kept < k bounds it when NaNs break the order */
	for (int r = 0; r < *n && kept < k; r++)
		if (!ranks_before(&last, &x[r]))
			x[kept++] = x[r];
	*n = kept;
	return last.s;
}

/* The set of column col of the m x nb block by ranking all m keys (see select_sets()). */
static void select_all(const struct routing_plan *pl, const float *block, int nb, int col,
		       struct routing_ws *ws, int *set)
{
	int m = pl->m, w = pl->width;

	for (int j = 0; j < m; j++) {
		ws->sel[j].s = block[(size_t)j * nb + col];
		ws->sel[j].j = j;
	}
	select_first(ws->sel, m, w);
	for (int r = 0; r < w; r++)
		set[r] = ws->sel[r].j;
	qsort(set, (size_t)w, sizeof(*set), by_value);
}

/*
 * The balanced sets (w < m) of the columns of an m x nb block of key scores: column x
 * fills the set of cluster ws->target[x], or nothing when that is -1. One pass over the
 * keys in order keeps, per column, every key that beats the column's threshold: the w-th
 * best score so far, set each time the candidates fill ws->room and are cut back to
 * their w first. A later key level with it ranks after it (larger j), so it is out, and
 * the candidates stay in key order: the first w of them by rank are the set, ascending.
 */
static void select_sets(const struct routing_plan *pl, const float *block, int nb,
			struct routing_ws *ws, int *sets)
{
	int m = pl->m, w = pl->width, room = pl->room;

	for (int x = 0; x < nb; x++) {
		ws->thr[x] = ws->target[x] < 0 ? INFINITY : -INFINITY;
		ws->ncand[x] = 0;
	}
	for (int j = 0; j < m; j++) {
		const float *row = block + (size_t)j * nb;
		int hit = 0;

		/* most keys enter no set: one vector compare per row rules them out */
		for (int x = 0; x < nb; x++)
			hit |= row[x] > ws->thr[x];
		if (!hit)
			continue;
		for (int x = 0; x < nb; x++) {
			struct scored *cand = ws->cand + (size_t)x * room;

			if (!(row[x] > ws->thr[x]))
				continue;
			if (ws->ncand[x] == room) {
				ws->thr[x] = keep_first(cand, &ws->ncand[x], w, ws->sel);
				if (!(row[x] > ws->thr[x]))
					continue;
			}
			cand[ws->ncand[x]].s = row[x];
			cand[ws->ncand[x]++].j = j;
		}
	}
	for (int x = 0; x < nb; x++) {
		struct scored *cand = ws->cand + (size_t)x * room;
		int *set;

		if (ws->target[x] < 0)
			continue;
		set = sets + (size_t)ws->target[x] * w;
		if (ws->ncand[x] > w)
			keep_first(cand, &ws->ncand[x], w, ws->sel);
		/* fewer than w only when NaN scores were never taken in */
		if (ws->ncand[x] < w) {
			select_all(pl, block, nb, x, ws, set);
			continue;
		}
		for (int r = 0; r < w; r++)
			set[r] = cand[r].j;
	}
}

/*
 * sets[c w .. c w + w) = the w keys of largest khat_j . mu_c (ties: the smaller j), in
 * ascending order, for the clusters used[0..nused) (ascending); the other sets are never
 * read and stay unwritten. Scores by sgemm against blocks of ROUTING_SET_BLOCK centroids:
 * the used ones gathered into full blocks (the last padded with copies of its first),
 * and those of a last, narrower block (C not a multiple) with that block as it is, so
 * every score comes from the same sgemm shape as when all C sets were made.
 */
static void key_sets(const struct routing_plan *pl, const float *khat, const float *mu,
		     const int *used, int nused, struct routing_ws *ws, int *sets)
{
	int m = pl->m, d = pl->d, w = pl->width, clusters = pl->clusters;
	int sb = clusters < ROUTING_SET_BLOCK ? clusters : ROUTING_SET_BLOCK;
	int full = clusters / sb * sb, u = 0;

	if (w >= m) {
		for (u = 0; u < nused; u++)
			for (int j = 0; j < m; j++)
				sets[(size_t)used[u] * w + j] = j;
		return;
	}
	while (u < nused && used[u] < full) {
		int nb = 0;

		for (; nb < sb && u < nused && used[u] < full; nb++, u++) {
			ws->target[nb] = used[u];
			memcpy(ws->cent + (size_t)nb * d, mu + (size_t)used[u] * d,
			       sizeof(float) * d);
		}
		for (int x = nb; x < sb; x++) {
			ws->target[x] = -1;
			memcpy(ws->cent + (size_t)x * d, ws->cent, sizeof(float) * d);
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, sb, d, 1.0f, khat, d,
			    ws->cent, d, 0.0f, ws->block, sb);
		select_sets(pl, ws->block, sb, ws, sets);
	}
	if (u < nused) {
		int nb = clusters - full;

		for (int x = 0; x < nb; x++)
			ws->target[x] = -1;
		for (; u < nused; u++)
			ws->target[used[u] - full] = used[u];
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, nb, d, 1.0f, khat, d,
			    mu + (size_t)full * d, d, 0.0f, ws->block, nb);
		select_sets(pl, ws->block, nb, ws, sets);
	}
}

/* used[] = the clusters with a query in the grouping off (C + 1); returns how many. */
static int used_clusters(const int *off, int clusters, int *used)
{
	int count = 0;

	for (int c = 0; c < clusters; c++)
		if (off[c + 1] > off[c])
			used[count++] = c;
	return count;
}

/*
 * perm = 0..n-1 grouped by cluster (ascending inside each), off[c]..off[c + 1] the range
 * of cluster c.
 */
static void group_by_cluster(const int *ids, int n, int clusters, int *cursor, int *perm,
			     int *off)
{
	memset(off, 0, sizeof(int) * (clusters + 1));
	for (int i = 0; i < n; i++)
		off[ids[i] + 1]++;
	for (int c = 0; c < clusters; c++)
		off[c + 1] += off[c];
	memcpy(cursor, off, sizeof(int) * clusters);
	for (int i = 0; i < n; i++)
		perm[cursor[ids[i]]++] = i;
}

/*
 * ns/nc: clusters one query slice (q, k of one query head), from the stream of its head:
 * centroids into mu, balanced key sets into sets, its queries grouped into perm/off.
 */
static void cluster_queries_and_keys(const struct routing_plan *pl, const float *q,
				     const float *k, struct plan_rng g, struct routing_ws *ws,
				     float *mu, int *sets, int *perm, int *off)
{
	int n = pl->n, d = pl->d;
	const int *ids = ws->assign;

	unit_rows(q, n, d, ws->xhat);
	unit_rows(k, pl->m, d, ws->xhat + (size_t)n * d);
	draw_rows(&g, pl->rows, pl->clusters, ws->draw);
	for (int c = 0; c < pl->clusters; c++)
		memcpy(mu + (size_t)c * d, ws->xhat + (size_t)ws->draw[c] * d, sizeof(float) * d);
	if (!lloyd(pl, mu, ws)) {
		for (int i = 0; i < n; i++)
			ws->ids[i] = -1;
		assign_rows(ws->xhat, n, mu, pl->clusters, d, ws->tile, ws->ids);
		ids = ws->ids;
	}
	group_by_cluster(ids, n, pl->clusters, ws->cursor, perm, off);
	key_sets(pl, ws->xhat + (size_t)n * d, mu, ws->used,
		 used_clusters(off, pl->clusters, ws->used), ws, sets);
}

/* cc: clusters one KV slice's keys into mu (its sets wait for the queries' clusters). */
static void cluster_keys(const struct routing_plan *pl, const float *k, uint64_t seed,
			 struct routing_ws *ws, float *mu)
{
	struct plan_rng g = plan_rng_make(seed, ROUTING_KEY_STREAM);
	int d = pl->d;

	unit_rows(k, pl->m, d, ws->xhat);
	draw_rows(&g, pl->m, pl->clusters, ws->draw);
	for (int c = 0; c < pl->clusters; c++)
		memcpy(mu + (size_t)c * d, ws->xhat + (size_t)ws->draw[c] * d, sizeof(float) * d);
	lloyd(pl, mu, ws);
}

/*
 * cc: the balanced sets of one KV slice (k, centroids mu) for the clusters that queries
 * of its group are routed to; off holds the group's `group` query groupings, in turn.
 */
static void key_sets_for_group(const struct routing_plan *pl, const float *k,
			       const float *mu, const int *off, int group,
			       struct routing_ws *ws, int *sets)
{
	int clusters = pl->clusters, nused = 0;
	int *wanted = ws->counts;

	memset(wanted, 0, sizeof(int) * clusters);
	for (int g = 0; g < group; g++) {
		const int *o = off + (size_t)g * (clusters + 1);

		for (int c = 0; c < clusters; c++)
			wanted[c] |= o[c + 1] > o[c];
	}
	for (int c = 0; c < clusters; c++)
		if (wanted[c])
			ws->used[nused++] = c;
	unit_rows(k, pl->m, pl->d, ws->xhat);
	key_sets(pl, ws->xhat, mu, ws->used, nused, ws, sets);
}

/* cc: each query to argmax_c q^ . mu_c, tile by tile through sgemm; grouped into perm/off. */
static void route_queries(const struct routing_plan *pl, const float *q, const float *mu,
			  struct routing_ws *ws, int *perm, int *off)
{
	int d = pl->d, clusters = pl->clusters;

	for (int r0 = 0; r0 < pl->n; r0 += ROUTING_TILE) {
		int nr = pl->n - r0 < ROUTING_TILE ? pl->n - r0 : ROUTING_TILE;

		unit_rows(q + (size_t)r0 * d, nr, d, ws->qhat);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, clusters, d, 1.0f,
			    ws->qhat, d, mu, d, 0.0f, ws->tile, clusters);
		for (int r = 0; r < nr; r++)
			ws->ids[r0 + r] = argmax(ws->tile + (size_t)r * clusters, clusters);
	}
	group_by_cluster(ws->ids, pl->n, clusters, ws->cursor, perm, off);
}

/*
 * Attends the nr queries rows[] of a slice (q, k, v) to the nk keys keys[] (ascending)
 * with an online softmax over blocks of ROUTING_BLOCK_K gathered keys. limit (cs) gives
 * each row its visible prefix of keys[]; self (cs) an extra key index per row, or -1.
 * Writes the rows of out.
 */
static void attend_tile(const struct routing_plan *pl, const float *q, const float *k,
			const float *v, const int *rows, int nr, const int *keys, int nk,
			const int *limit, const int *self, struct routing_ws *ws, float *out)
{
	int d = pl->d, bk = ROUTING_BLOCK_K;

	for (int r = 0; r < nr; r++) {
		memcpy(ws->qt + (size_t)r * d, q + (size_t)rows[r] * d, sizeof(float) * d);
		ws->mx[r] = -INFINITY;
		ws->l[r] = 0;
	}
	memset(ws->acc, 0, sizeof(float) * nr * d);
	for (int k0 = 0; k0 < nk; k0 += bk) {
		int cols = nk - k0 < bk ? nk - k0 : bk;

		for (int j = 0; j < cols; j++) {
			memcpy(ws->kb + (size_t)j * d, k + (size_t)keys[k0 + j] * d,
			       sizeof(float) * d);
			memcpy(ws->vb + (size_t)j * d, v + (size_t)keys[k0 + j] * d,
			       sizeof(float) * d);
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, cols, d, pl->scale,
			    ws->qt, d, ws->kb, d, 0.0f, ws->s, bk);
		for (int r = 0; r < nr; r++) {
			float *row = ws->s + (size_t)r * bk, m_new, alpha, sum;
			int seen = cols;

			if (limit)
				seen = limit[r] - k0 < 0 ? 0 :
				       limit[r] - k0 > cols ? cols : limit[r] - k0;
			if (!seen) {
				memset(row, 0, sizeof(float) * cols);
				continue;
			}
			m_new = fmaxf(ws->mx[r], row_max(row, seen));
			sum = exp2_shifted_sum(row, seen, m_new);
			memset(row + seen, 0, sizeof(float) * (cols - seen));
			alpha = exp2f(ws->mx[r] - m_new);
			ws->l[r] = alpha * ws->l[r] + sum;
			ws->mx[r] = m_new;
			if (alpha != 1.0f)
				for (int c = 0; c < d; c++)
					ws->acc[(size_t)r * d + c] *= alpha;
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, d, cols, 1.0f, ws->s,
			    bk, ws->vb, d, 1.0f, ws->acc, d);
	}
	for (int r = 0; r < nr; r++) {
		float *acc = ws->acc + (size_t)r * d, by;

		if (self && self[r] >= 0) {
			float sc = pl->scale * dot(ws->qt + (size_t)r * d,
						   k + (size_t)self[r] * d, d);
			float m_new = fmaxf(ws->mx[r], sc);
			float alpha = exp2f(ws->mx[r] - m_new), w = exp2f(sc - m_new);
			const float *vs = v + (size_t)self[r] * d;

			ws->l[r] = alpha * ws->l[r] + w;
			ws->mx[r] = m_new;
			for (int c = 0; c < d; c++)
				acc[c] = alpha * acc[c] + w * vs[c];
		}
		by = ws->l[r] > 0 ? 1.0f / ws->l[r] : 0.0f;
		for (int c = 0; c < d; c++)
			out[(size_t)rows[r] * d + c] = by * acc[c];
	}
}

/* Every query of one cluster (rows, ascending) against its balanced key set. */
static void attend_cluster(const struct routing_plan *pl, const float *q, const float *k,
			   const float *v, const int *rows, int count, const int *set,
			   struct routing_ws *ws, float *out)
{
	for (int t0 = 0; t0 < count; t0 += ROUTING_TILE_Q) {
		int nr = count - t0 < ROUTING_TILE_Q ? count - t0 : ROUTING_TILE_Q;

		attend_tile(pl, q, k, v, rows + t0, nr, set, pl->width, NULL, NULL, ws, out);
	}
}

/*
 * cs: the queries of cluster c (rows, ascending) against the keys of cluster c (keys,
 * ascending): row i sees the keys <= i, and itself when its key is in another cluster.
 */
static void attend_cluster_causal(const struct routing_plan *pl, const float *q,
				  const float *k, const float *v, const int *rows, int count,
				  const int *keys, int nk, const int *kid, int c,
				  struct routing_ws *ws, float *out)
{
	int at = 0;

	for (int t0 = 0; t0 < count; t0 += ROUTING_TILE_Q) {
		int nr = count - t0 < ROUTING_TILE_Q ? count - t0 : ROUTING_TILE_Q;

		for (int r = 0; r < nr; r++) {
			int i = rows[t0 + r];

			while (at < nk && keys[at] <= i)
				at++;
			ws->limit[r] = at;
			ws->self[r] = kid[i] == c ? -1 : i;
		}
		attend_tile(pl, q, k, v, rows + t0, nr, keys, at, ws->limit, ws->self, ws, out);
	}
}

/* What a forward keeps between its phases, for all slices. */
struct routing_state {
	float *mu;		/* [owners][C][d]: owners are query slices (ns, nc),
				   KV slices (cc), or one (cs) */
	int *sets;		/* [owners][C][w] balanced key sets (not cs) */
	int *perm, *off;	/* [slices][n], [slices][C + 1]: queries grouped by cluster */
	int *kid, *kperm, *koff; /* cs: [kv slices][m] key clusters, grouped, [C + 1] */
};

static void routing_state_release(struct routing_state *st)
{
	attn_free(st->mu);
	attn_free(st->sets);
	attn_free(st->perm);
	attn_free(st->off);
	attn_free(st->kid);
	attn_free(st->kperm);
	attn_free(st->koff);
}

static int routing_state_alloc(struct routing_state *st, const struct attn_problem *p,
			       const struct routing_plan *pl)
{
	size_t slices = (size_t)p->batch * p->heads, kv_slices = (size_t)p->batch * p->kv_heads;
	size_t owners = p->pattern == ATTN_CC ? kv_slices : p->pattern == ATTN_CS ? 1 : slices;
	size_t c = pl->clusters;

	memset(st, 0, sizeof(*st));
	st->mu = attn_alloc(sizeof(float) * owners * c * pl->d);
	st->perm = attn_alloc(sizeof(int) * slices * pl->n);
	st->off = attn_alloc(sizeof(int) * slices * (c + 1));
	if (!st->mu || !st->perm || !st->off)
		return -ENOMEM;
	if (p->pattern != ATTN_CS) {
		st->sets = attn_alloc(sizeof(int) * owners * c * pl->width);
		return st->sets ? 0 : -ENOMEM;
	}
	st->kid = attn_alloc(sizeof(int) * kv_slices * pl->m);
	st->kperm = attn_alloc(sizeof(int) * kv_slices * pl->m);
	st->koff = attn_alloc(sizeof(int) * kv_slices * (c + 1));
	return st->kid && st->kperm && st->koff ? 0 : -ENOMEM;
}

/* The first phase: centroids, key sets (or key clusters) and query groups of every slice. */
static void routing_cluster_all(const struct attn_problem *p, const struct routing_plan *pl,
				const float *q, const float *k, struct routing_state *st,
				unsigned char *ws_base, size_t ws_bytes)
{
	int slices = p->batch * p->heads, kv_slices = p->batch * p->kv_heads;
	size_t c = pl->clusters, d = pl->d;

	if (p->pattern == ATTN_NS || p->pattern == ATTN_NC) {
		#pragma omp parallel for schedule(dynamic, 1)
		for (int sl = 0; sl < slices; sl++) {
			int b = sl / p->heads, h = sl % p->heads;
			struct routing_ws ws;

			routing_ws_layout(pl, ws_base + (size_t)thread_id() * ws_bytes, &ws);
			cluster_queries_and_keys(pl, q + problem_q_offset(p, b, h),
						 k + problem_kv_offset(p, b, h),
						 plan_rng_make(p->seed, ROUTING_HEAD_STREAM(h)),
						 &ws, st->mu + sl * c * d,
						 st->sets + sl * c * pl->width,
						 st->perm + (size_t)sl * pl->n,
						 st->off + sl * (c + 1));
		}
		return;
	}
	if (p->pattern == ATTN_CC) {
		#pragma omp parallel for schedule(dynamic, 1)
		for (int kv = 0; kv < kv_slices; kv++) {
			struct routing_ws ws;

			routing_ws_layout(pl, ws_base + (size_t)thread_id() * ws_bytes, &ws);
			cluster_keys(pl, k + (size_t)kv * pl->m * d, p->seed, &ws,
				     st->mu + kv * c * d);
		}
		#pragma omp parallel for schedule(dynamic, 1)
		for (int sl = 0; sl < slices; sl++) {
			int b = sl / p->heads, h = sl % p->heads;
			int kv = b * p->kv_heads + h / (p->heads / p->kv_heads);
			struct routing_ws ws;

			routing_ws_layout(pl, ws_base + (size_t)thread_id() * ws_bytes, &ws);
			route_queries(pl, q + problem_q_offset(p, b, h), st->mu + kv * c * d, &ws,
				      st->perm + (size_t)sl * pl->n, st->off + sl * (c + 1));
		}
		/* a KV head's query heads are the consecutive slices of its group */
		#pragma omp parallel for schedule(dynamic, 1)
		for (int kv = 0; kv < kv_slices; kv++) {
			int group = p->heads / p->kv_heads;
			struct routing_ws ws;

			routing_ws_layout(pl, ws_base + (size_t)thread_id() * ws_bytes, &ws);
			key_sets_for_group(pl, k + (size_t)kv * pl->m * d, st->mu + kv * c * d,
					   st->off + (size_t)kv * group * (c + 1), group, &ws,
					   st->sets + kv * c * pl->width);
		}
		return;
	}
	fixed_centroids(p->seed, pl->clusters, pl->d, st->mu);
	#pragma omp parallel for schedule(static)
	for (int kv = 0; kv < kv_slices; kv++) {
		const float *kk = k + (size_t)kv * pl->m * d;
		int *kid = st->kid + (size_t)kv * pl->m;
		struct routing_ws ws;

		routing_ws_layout(pl, ws_base + (size_t)thread_id() * ws_bytes, &ws);
		for (int j = 0; j < pl->m; j++)
			kid[j] = nearest(kk + (size_t)j * d, st->mu, pl->clusters, pl->d);
		group_by_cluster(kid, pl->m, pl->clusters, ws.cursor,
				 st->kperm + (size_t)kv * pl->m, st->koff + kv * (c + 1));
	}
	#pragma omp parallel for schedule(static)
	for (int sl = 0; sl < slices; sl++) {
		int b = sl / p->heads, h = sl % p->heads;
		const float *qq = q + problem_q_offset(p, b, h);
		struct routing_ws ws;

		routing_ws_layout(pl, ws_base + (size_t)thread_id() * ws_bytes, &ws);
		for (int i = 0; i < pl->n; i++)
			ws.ids[i] = nearest(qq + (size_t)i * d, st->mu, pl->clusters, pl->d);
		group_by_cluster(ws.ids, pl->n, pl->clusters, ws.cursor,
				 st->perm + (size_t)sl * pl->n, st->off + sl * (c + 1));
	}
}

/* The second phase: every (slice, cluster) attends, in parallel. */
static void routing_attend_all(const struct attn_problem *p, const struct routing_plan *pl,
			       const float *q, const float *k, const float *v,
			       const struct routing_state *st, unsigned char *ws_base,
			       size_t ws_bytes, float *out)
{
	long items = (long)p->batch * p->heads * pl->clusters;
	size_t c1 = pl->clusters + 1;

	#pragma omp parallel for schedule(dynamic, 1)
	for (long it = 0; it < items; it++) {
		int sl = (int)(it / pl->clusters), c = (int)(it % pl->clusters);
		int b = sl / p->heads, h = sl % p->heads;
		int kv = b * p->kv_heads + h / (p->heads / p->kv_heads);
		size_t qo = problem_q_offset(p, b, h), kvo = problem_kv_offset(p, b, h);
		const int *off = st->off + sl * c1;
		const int *rows = st->perm + (size_t)sl * pl->n + off[c];
		int count = off[c + 1] - off[c];
		struct routing_ws ws;

		if (!count)
			continue;
		routing_ws_layout(pl, ws_base + (size_t)thread_id() * ws_bytes, &ws);
		if (p->pattern == ATTN_CS) {
			const int *koff = st->koff + kv * c1;

			attend_cluster_causal(pl, q + qo, k + kvo, v + kvo, rows, count,
					      st->kperm + (size_t)kv * pl->m + koff[c],
					      koff[c + 1] - koff[c],
					      st->kid + (size_t)kv * pl->m, c, &ws, out + qo);
		} else {
			size_t owner = p->pattern == ATTN_CC ? (size_t)kv : (size_t)sl;

			attend_cluster(pl, q + qo, k + kvo, v + kvo, rows, count,
				       st->sets + (owner * pl->clusters + c) * pl->width, &ws,
				       out + qo);
		}
	}
}

static int routing_forward(const struct attn_problem *p, const float *q, const float *k,
			   const float *v, float *out)
{
	struct routing_plan pl;
	struct routing_state st;
	struct routing_ws probe;
	unsigned char *ws_base;
	size_t ws_bytes;
	int ret, saved;

	if ((unsigned int)p->pattern >= ATTN_PATTERN_COUNT || routing_supports(p))
		return -ENOTSUP;
	routing_plan_make(&pl, p);
	ws_bytes = routing_ws_layout(&pl, NULL, &probe);
	ret = routing_state_alloc(&st, p, &pl);
	if (ret)
		goto out_release;
	ws_base = attn_alloc((size_t)max_threads() * ws_bytes);
	if (!ws_base) {
		ret = -ENOMEM;
		goto out_release;
	}
	saved = blas_serial_begin();
	routing_cluster_all(p, &pl, q, k, &st, ws_base, ws_bytes);
	routing_attend_all(p, &pl, q, k, v, &st, ws_base, ws_bytes, out);
	blas_serial_end(saved);
	attn_free(ws_base);
out_release:
	routing_state_release(&st);
	return ret;
}

/*
 * 2d per (row, centroid) score and 4d per (query, key) pair kept:
 *   ns/nc: T assignment steps over the N + M rows, the final query assignment and the
 *          key scores for the sets, 2dC((N + M)T + N + M), and 4dNw of attention;
 *   cc:    per KV head 2dCM(T + 1), per query head 2dCN + 4dNw;
 *   cs:    2dCM per KV head, 2dCN per query head, and 4d per pair over the expected
 *          N + N(N - 1)/(2C) pairs (each earlier key in the query's cluster with
 *          probability 1/C, and itself), exact for C = 1.
 * Lloyd stops once assignments repeat, so T steps is the most it does, and sets are made
 * only for the clusters queries land in, so C sets is the most.
 */
static double routing_flops(const struct attn_problem *p)
{
	double c = routing_clusters(p), t = routing_iters(p), w = routing_width(p);
	double n = p->n, m = p->m, d = p->d;
	double qh = (double)p->batch * p->heads, kvh = (double)p->batch * p->kv_heads;

	switch (p->pattern) {
	case ATTN_NS:
	case ATTN_NC:
		return qh * (2 * d * c * ((n + m) * t + n + m) + 4 * d * n * w);
	case ATTN_CC:
		return kvh * 2 * d * c * m * (t + 1) + qh * (2 * d * c * n + 4 * d * n * w);
	default:
		return kvh * 2 * d * c * m + qh * (2 * d * c * n +
						   4 * d * (n + n * (n - 1) / (2 * c)));
	}
}

/*
 * float32 bytes the outputs are produced from: the KV cache of every key (which keys a
 * set keeps depends on all of them; cs sees every earlier key of its cluster) plus the
 * centroids: C d per query head (ns, nc), per KV head (cc), or once (cs), and in cs one
 * int32 cluster id per cached key.
 */
static double routing_state_bytes(const struct attn_problem *p)
{
	double c = routing_clusters(p), d = p->d, f = sizeof(float);
	double qh = (double)p->batch * p->heads, kvh = (double)p->batch * p->kv_heads;

	switch (p->pattern) {
	case ATTN_NS:
	case ATTN_NC:
		return kv_cache_bytes(p, p->m) + qh * c * d * f;
	case ATTN_CC:
		return kv_cache_bytes(p, p->m) + kvh * c * d * f;
	default:
		return kv_cache_bytes(p, p->m) + kvh * p->m * sizeof(int32_t) + c * d * f;
	}
}

/*
 * Below this many multiply-adds per step (slices x cached keys x d) a parallel region
 * costs more than it saves.
 */
#define ROUTING_DECODE_PARALLEL_MIN 32768

/* Incremental cs decoding: the KV cache, every cached key's cluster, the centroids. */
struct routing_decode {
	struct attn_problem p;	/* n = m = capacity in positions */
	double params[2];	/* p.params points here */
	int clusters;
	int len;		/* positions fed so far */
	int threads;		/* score rows; the most threads a step runs on */
	float *mu;		/* C x d fixed centroids */
	struct kv_cache cache;	/* capacity slots per KV head */
	int *kid;		/* [kv slices][capacity] cluster of each cached key */
	float *s;		/* [threads][capacity] scores of one row */
	int *keys;		/* [threads][capacity] the keys one row sees */
};

static void routing_decode_free(void *state)
{
	struct routing_decode *st = state;

	if (!st)
		return;
	attn_free(st->keys);
	attn_free(st->s);
	attn_free(st->kid);
	attn_free(st->mu);
	kv_cache_release(&st->cache);
	attn_free(st);
}

static int routing_decode_init(const struct attn_problem *p, void **state)
{
	struct routing_decode *st;
	int ret;

	*state = NULL;
	st = attn_calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	ret = kv_cache_init(&st->cache, p, p->n);
	if (ret)
		goto out_free_state;
	st->p = decode_problem(p);
	st->params[ROUTING_CLUSTERS] = p->params ? p->params[ROUTING_CLUSTERS] : 0;
	st->params[ROUTING_ITERS] = p->params ? p->params[ROUTING_ITERS] :
				    ROUTING_ITERS_DEFAULT;
	st->p.params = st->params;
	st->clusters = routing_clusters(&st->p);
	st->threads = max_threads();
	st->mu = attn_alloc(sizeof(float) * st->clusters * p->d);
	st->kid = attn_alloc(sizeof(int) * p->batch * p->kv_heads * p->n);
	st->s = attn_alloc(sizeof(float) * st->threads * p->n);
	st->keys = attn_alloc(sizeof(int) * st->threads * p->n);
	if (!st->mu || !st->kid || !st->s || !st->keys) {
		ret = -ENOMEM;
		goto out_free_state;
	}
	fixed_centroids(p->seed, st->clusters, p->d, st->mu);
	*state = st;
	return 0;

out_free_state:
	routing_decode_free(st);
	return ret;
}

/*
 * Row t of slice (kc, vc, kid): softmax over the cached keys j <= t in the query's cluster
 * a, and t itself.
 */
static void decode_row(const struct routing_decode *st, const float *q, const float *kc,
		       const float *vc, const int *kid, int a, int t, float *s, int *keys,
		       float *out)
{
	int d = st->p.d, count = 0;
	float scale = (float)(LOG2E / sqrt((double)d)), sum;

	for (int j = 0; j <= t; j++)
		if (kid[j] == a || j == t)
			keys[count++] = j;
	for (int x = 0; x < count; x++)
		s[x] = scale * dot(q, kc + (size_t)keys[x] * d, d);
	sum = exp2_shifted_sum(s, count, row_max(s, count));
	for (int c = 0; c < d; c++)
		out[c] = 0;
	for (int x = 0; x < count; x++) {
		const float *vj = vc + (size_t)keys[x] * d;

		for (int c = 0; c < d; c++)
			out[c] += s[x] * vj[c];
	}
	for (int c = 0; c < d; c++)
		out[c] /= sum;
}

static int routing_decode_step(void *state, const float *q, const float *k, const float *v,
			       float *out)
{
	struct routing_decode *st = state;
	const struct attn_problem *p = &st->p;
	int slices = p->batch * p->heads, kv_slices = p->batch * p->kv_heads;
	int d = p->d, t = st->len;

	if (t >= p->m)
		return -ENOSPC;
	kv_cache_put(&st->cache, t, k, v);
	for (int kv = 0; kv < kv_slices; kv++)
		st->kid[(size_t)kv * p->m + t] = nearest(k + (size_t)kv * d, st->mu,
							 st->clusters, d);
	st->len++;

	#pragma omp parallel for num_threads(st->threads) schedule(static) \
		if ((double)slices * (t + 1) * d >= ROUTING_DECODE_PARALLEL_MIN)
	for (int i = 0; i < slices; i++) {
		int b = i / p->heads;
		int kv = b * p->kv_heads + i % p->heads / (p->heads / p->kv_heads);
		size_t kvo = kv_cache_slice(&st->cache, kv);
		const float *qi = q + (size_t)i * d;

		decode_row(st, qi, st->cache.k + kvo, st->cache.v + kvo,
			   st->kid + (size_t)kv * p->m, nearest(qi, st->mu, st->clusters, d), t,
			   st->s + (size_t)thread_id() * p->m,
			   st->keys + (size_t)thread_id() * p->m, out + (size_t)i * d);
	}
	return 0;
}

const struct variant_ops routing_variant = {
	.name		= "routing",
	.family		= "sparse",
	.summary	= "Routing Transformer: k-means clusters, attend within the query's "
			  "cluster [harness: run-time k-means; cs fixed random centroids]",
	.citation	= "Roy et al. 2021, Efficient Content-Based Sparse Attention with "
			  "Routing Transformers, TACL (arXiv 2003.05997)",
	.patterns	= PATTERNS_ALL,
	.extensions	= PATTERN_BIT(ATTN_NS) | PATTERN_BIT(ATTN_NC) | PATTERN_BIT(ATTN_CC),
	.flags		= 0,
	.params		= routing_params,
	.n_params	= 2,
	.supports	= routing_supports,
	.forward	= routing_forward,
	.flops		= routing_flops,
	.state_bytes	= routing_state_bytes,
	.decode_init	= routing_decode_init,
	.decode_step	= routing_decode_step,
	.decode_free	= routing_decode_free,
};
