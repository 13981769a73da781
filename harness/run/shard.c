/*
 * shard.c - suite identity and balanced shards (shard.h).
 */
#include "shard.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"
#include "rounds.h"
#include "store.h"
#include "why.h"

/* A nominal rate for the estimates: a 2-core machine's attention kernels. */
#define NOMINAL_FLOPS 50e9
/* A cell's own cost besides its passes: a fresh child, its inputs, its row in the store. */
#define CELL_SECONDS 0.02

int shard_parse(const char *text, struct shard *s, char *why, size_t why_len)
{
	const char *after;
	char *end;
	long k, n;

	errno = 0;
	k = strtol(text, &end, 10);
	if (!isdigit((unsigned char)*text) || *end != '/' || errno)
		goto bad;
	after = end + 1;
	n = strtol(after, &end, 10);
	if (!isdigit((unsigned char)*after) || *end || errno || n < 1 || n > SHARD_MAX || k < 1 || k > n)
		goto bad;
	s->k = (int)k;
	s->n = (int)n;
	return 0;
bad:
	return why_fail(-EINVAL, why, why_len, "--shard '%s' is not K/N with 1 <= K <= N <= %d",
			text, SHARD_MAX);
}

/* Multiply-adds of exact attention at c's shape, as the variant's work when it has no count. */
static double exact_flops(const struct attn_problem *p)
{
	double pairs = (double)p->n * p->m;

	if (p->pattern == ATTN_CS || p->pattern == ATTN_CC)
		pairs = pairs / 2 + p->n / 2.0;
	return 4.0 * p->batch * p->heads * p->d * pairs;
}

double shard_cell_cost(const struct cell *c, int rounds)
{
	struct attn_problem p = cell_problem(c);
	double flops = c->variant->flops ? c->variant->flops(&p) : exact_flops(&p);
	double forward = flops > 0 ? flops / NOMINAL_FLOPS : 0;
	bool timed = rounds_timed(c);
	int visits = timed ? rounds : 1;

	if (c->task->cost)
		return visits * CELL_SECONDS + c->task->cost(c, forward, visits);
	return visits * (CELL_SECONDS + forward);
}

/* A unit of assignment: a cell, or timed cells of one shape. */
struct unit {
	size_t first;		/* its first cell, in plan order */
	double cost;
	int shard;		/* 0-based */
};

/* Whether a and b are timed cells of one shape (they go to one shard if they fit). */
static bool same_timed_shape(const struct cell *a, const struct cell *b)
{
	return a->task == b->task && a->pattern == b->pattern && a->n == b->n &&
	       a->m == b->m && a->d == b->d && a->heads == b->heads &&
	       a->kv_heads == b->kv_heads && a->batch == b->batch &&
	       !strcmp(a->regime ? a->regime : "", b->regime ? b->regime : "");
}

static int by_cost(const void *x, const void *y)
{
	const struct unit *a = x, *b = y;

	if (a->cost != b->cost)
		return a->cost < b->cost ? 1 : -1;
	return (a->first > b->first) - (a->first < b->first);
}

/* Cells that go to one shard if they fit: one untimed cell, or a shape's timed cells. */
struct group {
	size_t first;		/* its first cell */
	double cost;
	size_t open;		/* the unit its next cell joins */
};

/*
 * Cuts cells[0..n) into units (unit_of[i]: cell i's; *u with each unit's first cell and
 * cost). A group is one unit, unless it costs more than a shard's share (target): then
 * it is cut, in plan order, into consecutive pieces of at most that (one cell at least),
 * so no unit is larger than a balanced shard. Returns the number of units, or 0 without
 * memory.
 */
static size_t make_units(const struct cell *cells, size_t n, const double *cost,
			 double target, struct unit *u, size_t *unit_of)
{
	struct group *g = calloc(n, sizeof(*g));
	size_t *group_of = calloc(n, sizeof(*group_of)), groups = 0, units = 0;

	if (!g || !group_of)
		goto out;
	for (size_t i = 0; i < n; i++) {
		size_t j = groups;

		if (rounds_timed(&cells[i]))
			for (j = 0; j < groups; j++)
				if (rounds_timed(&cells[g[j].first]) &&
				    same_timed_shape(&cells[g[j].first], &cells[i]))
					break;
		if (j == groups)
			g[groups++].first = i;
		g[j].cost += cost[i];
		group_of[i] = j;
	}
	for (size_t i = 0; i < n; i++) {
		struct group *gi = &g[group_of[i]];

		if (i == gi->first || (gi->cost > target && u[gi->open].cost + cost[i] > target)) {
			gi->open = units;
			u[units++] = (struct unit){ .first = i };
		}
		u[gi->open].cost += cost[i];
		unit_of[i] = gi->open;
	}
out:
	free(g);
	free(group_of);
	return units;
}

int shard_select(struct cell *cells, size_t *count, struct shard s, int rounds,
		 double *cost)
{
	size_t n = *count, units, kept = 0;
	struct unit *u = calloc(n + 1, sizeof(*u)), *sorted = calloc(n + 1, sizeof(*sorted));
	size_t *unit_of = calloc(n + 1, sizeof(*unit_of));
	double *cell_cost = calloc(n + 1, sizeof(*cell_cost));
	double *load = calloc((size_t)s.n, sizeof(*load)), total = 0;
	int ret = -ENOMEM;

	if (!u || !sorted || !unit_of || !cell_cost || !load)
		goto out;
	for (size_t i = 0; i < n; i++) {
		cell_cost[i] = shard_cell_cost(&cells[i], rounds);
		total += cell_cost[i];
	}
	units = make_units(cells, n, cell_cost, total / s.n, u, unit_of);
	if (n && !units)
		goto out;
	/* longest first, each to the least loaded shard (the lower on a tie) */
	memcpy(sorted, u, units * sizeof(*u));
	qsort(sorted, units, sizeof(*sorted), by_cost);
	for (size_t j = 0; j < units; j++) {
		int least = 0;

		for (int k = 1; k < s.n; k++)
			if (load[k] < load[least])
				least = k;
		load[least] += sorted[j].cost;
		u[unit_of[sorted[j].first]].shard = least;
	}
	for (size_t i = 0; i < n; i++)
		if (u[unit_of[i]].shard == s.k - 1)
			cells[kept++] = cells[i];
	*count = kept;
	if (cost)
		memcpy(cost, load, (size_t)s.n * sizeof(*load));
	ret = 0;
out:
	free(u);
	free(sorted);
	free(unit_of);
	free(cell_cost);
	free(load);
	return ret;
}

int shard_suite_id(const struct cell *cells, size_t count, uint64_t seed, int rounds,
		   char id[SHA256_HEX_LEN])
{
	char *text = NULL, params[1024];
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return -ENOMEM;
	fprintf(f, "attnbench suite 1\nseed %llu rounds %d\n", (unsigned long long)seed, rounds);
	for (size_t i = 0; i < count; i++) {
		const struct cell *c = &cells[i];
		const struct plugin *pl = plugin_of(c->variant);

		if (store_params_json(c, params, sizeof(params)))
			params[0] = '\0';
		fprintf(f, "%s %s %s %s %d %d %d %d %d %d %s %llu %d %d %d %.17g %d %.17g %s\n",
			c->variant->name, c->task->name, pattern_name(c->pattern),
			c->regime ? c->regime : "-", c->n, c->m, c->d, c->heads, c->kv_heads,
			c->batch, params, (unsigned long long)c->seed, c->threads,
			c->measure.warmup, c->measure.min_repeats, c->measure.min_seconds,
			c->measure.max_repeats, c->measure.long_call, pl ? pl->sha256 : "built-in");
	}
	if (fclose(f)) {
		free(text);
		return -ENOMEM;
	}
	digest_sha256_bytes(text, len, id);
	free(text);
	return 0;
}
