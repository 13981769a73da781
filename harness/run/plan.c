/*
 * plan.c - suite rows x command-line selection -> cells.
 */
#include "plan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t mix(uint64_t h, uint64_t x)
{
	h ^= x + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdULL;
}

static uint64_t mix_string(uint64_t h, const char *s)
{
	for (; s && *s; s++)
		h = mix(h, (unsigned char)*s);
	return mix(h, 0);
}

uint64_t plan_cell_seed(uint64_t run_seed, const struct cell *c)
{
	uint64_t h = mix(0x617474656e74ULL, run_seed);

	h = mix_string(h, c->task->name);
	h = mix_string(h, c->regime);
	h = mix(h, (uint64_t)c->pattern);
	h = mix(h, (uint64_t)c->n);
	h = mix(h, (uint64_t)c->m);
	h = mix(h, (uint64_t)c->d);
	h = mix(h, (uint64_t)c->heads);
	h = mix(h, (uint64_t)c->kv_heads);
	return mix(h, (uint64_t)c->batch);
}

struct plan {
	struct cell *cells;
	size_t count, cap;
};

static int plan_add(struct plan *p, const struct cell *c)
{
	if (p->count == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 256;
		struct cell *grown = realloc(p->cells, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		p->cells = grown;
		p->cap = cap;
	}
	p->cells[p->count++] = *c;
	return 0;
}

static bool task_selected(const struct selection *sel, const struct task_ops *t)
{
	for (int i = 0; i < sel->n_tasks; i++)
		if (sel->tasks[i] == t)
			return true;
	return sel->n_tasks == 0;
}

/* The variants of a row: the row's (or all), narrowed by the selection. */
static int row_variants(const struct suite_row *r, const struct selection *sel,
			const struct variant_ops **out)
{
	int count = 0;

	for (int i = 0; i < variant_count(); i++) {
		const struct variant_ops *v = variant_at(i);
		bool in_row = r->n_variants == 0, in_sel = sel->n_variants == 0;

		for (int j = 0; j < r->n_variants; j++)
			in_row |= r->variants[j] == v;
		for (int j = 0; j < sel->n_variants; j++)
			in_sel |= sel->variants[j] == v;
		if (in_row && in_sel)
			out[count++] = v;
	}
	return count;
}

/* One cell per regime (or one without) for a fixed shape. */
static int add_regimes(struct plan *p, struct cell *c, const struct suite_row *r)
{
	const struct task_ops *t = c->task;
	int ret = 0;

	if (!t->regimes) {
		c->regime = NULL;
		c->seed = plan_cell_seed(c->seed, c);
		return plan_add(p, c);
	}
	for (int i = 0; t->regimes[i] && !ret; i++) {
		struct cell one = *c;

		if (r->regimes && !(r->regimes & (1u << i)))
			continue;
		one.regime = t->regimes[i];
		one.seed = plan_cell_seed(c->seed, &one);
		ret = plan_add(p, &one);
	}
	return ret;
}

/*
 * A parameter value inside its declared range that the variant still cannot use for this
 * cell (an odd state size, an empty window) is bad input, refused before anything runs.
 */
static bool refuses_params(const struct cell *c, char *why, size_t why_len)
{
	struct attn_problem p = cell_problem(c);
	int len;

	if (variant_check_problem(c->variant, &p) != -EINVAL)
		return false;
	len = snprintf(why, why_len, "variant '%s' cannot run with", c->variant->name);
	for (int i = 0; i < c->variant->n_params && len > 0 && (size_t)len < why_len; i++)
		len += snprintf(why + len, why_len - len, " %s.%s=%g", c->variant->name,
				c->variant->params[i].name, c->params[i]);
	if (len > 0 && (size_t)len < why_len)
		snprintf(why + len, why_len - len, " on %s n=%d m=%d d=%d (see 'attnbench list "
			 "variants')", pattern_name(c->pattern), c->n, c->m, c->d);
	return true;
}

#define PICK(sel, row, field) ((sel)->n_##field ? (sel)->field : (row)->field)
#define PICK_N(sel, row, field) ((sel)->n_##field ? (sel)->n_##field : (row)->n_##field)

static int plan_row(struct plan *p, const struct suite_row *r, const struct suite *s,
		    const struct selection *sel, char *why, size_t why_len)
{
	const struct variant_ops *variants[64];
	int n_variants = row_variants(r, sel, variants);
	unsigned int patterns = r->patterns ? r->patterns : r->task->patterns;
	const int *kv = PICK(sel, r, kv_heads);
	int n_kv = PICK_N(sel, r, kv_heads);

	if (sel->patterns)
		patterns = (r->patterns ? r->patterns : PATTERNS_ALL) & sel->patterns;
	patterns &= r->task->patterns;

	for (int li = 0; li < PICK_N(sel, r, lengths); li++)
	for (int di = 0; di < PICK_N(sel, r, dims); di++)
	for (int hi = 0; hi < PICK_N(sel, r, heads); hi++)
	for (int ki = 0; ki < (n_kv ? n_kv : 1); ki++)
	for (int bi = 0; bi < PICK_N(sel, r, batch); bi++)
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		struct length len = PICK(sel, r, lengths)[li];
		int heads = PICK(sel, r, heads)[hi], kv_heads = n_kv ? kv[ki] : heads;

		if (!(patterns & PATTERN_BIT(pat)))
			continue;
		if (heads % kv_heads) {
			snprintf(why, why_len, "kv_heads %d does not divide heads %d", kv_heads,
				 heads);
			return -EINVAL;
		}
		for (int vi = 0; vi < n_variants; vi++) {
			const struct variant_ops *v = variants[vi];
			struct cell c = {
				.variant = v,
				.task = r->task,
				.pattern = pat,
				.batch = PICK(sel, r, batch)[bi],
				.heads = heads,
				.kv_heads = kv_heads,
				.n = len.n,
				.m = pattern_is_self(pat) || !len.m ? len.n : len.m,
				.d = PICK(sel, r, dims)[di],
				.seed = sel->seed,
				.threads = sel->threads,
				.measure = s->measure,
			};

			if (!(v->patterns & PATTERN_BIT(pat)))
				continue;
			params_apply(&sel->params, v, c.params);
			if (refuses_params(&c, why, why_len))
				return -EINVAL;
			if (add_regimes(p, &c, r))
				return -ENOMEM;
		}
	}
	return 0;
}

/* run --inputs: fidelity on each of the user's sets, in its own shape. */
static int plan_inputs(struct plan *p, const struct suite *s, const struct selection *sel,
		       char *why, size_t why_len)
{
	static const struct suite_row all = { 0 };
	const struct variant_ops *variants[64];
	int n_variants = row_variants(&all, sel, variants);
	unsigned int patterns = sel->patterns ? sel->patterns : PATTERNS_ALL;

	for (int i = 0; i < sel->inputs->count; i++)
	for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++) {
		const struct tensor_files *f = &sel->inputs->files[i];

		if (!(patterns & PATTERN_BIT(pat)) || (pattern_is_self(pat) && f->n != f->m))
			continue;
		for (int vi = 0; vi < n_variants; vi++) {
			struct cell c = {
				.variant = variants[vi],
				.task = task_find("fidelity"),
				.pattern = pat,
				.batch = f->batch,
				.heads = f->heads,
				.kv_heads = f->kv_heads,
				.n = f->n,
				.m = f->m,
				.d = f->d,
				.regime = f->regime,
				.inputs = &f->set,
				.threads = sel->threads,
				.measure = s->measure,
			};

			if (!(c.variant->patterns & PATTERN_BIT(pat)))
				continue;
			params_apply(&sel->params, c.variant, c.params);
			if (refuses_params(&c, why, why_len))
				return -EINVAL;
			c.seed = plan_cell_seed(sel->seed, &c);
			if (plan_add(p, &c))
				return -ENOMEM;
		}
	}
	return 0;
}

/* A variant named on the command line that got no cell supports none of the patterns. */
static int check_named_variants(const struct plan *p, const struct selection *sel,
				char *why, size_t why_len)
{
	for (int i = 0; i < sel->n_variants; i++) {
		const struct variant_ops *v = sel->variants[i];
		char supported[32] = "";
		bool used = false;

		for (size_t c = 0; c < p->count && !used; c++)
			used = p->cells[c].variant == v;
		if (used)
			continue;
		if (v->patterns & (sel->patterns ? sel->patterns : PATTERNS_ALL)) {
			snprintf(why, why_len, "no cell of the suite runs variant '%s' with this "
				 "selection", v->name);
			return -EINVAL;
		}
		for (int pat = 0; pat < ATTN_PATTERN_COUNT; pat++)
			if (v->patterns & PATTERN_BIT(pat)) {
				strcat(supported, supported[0] ? ", " : "");
				strcat(supported, pattern_name(pat));
			}
		snprintf(why, why_len, "variant '%s' supports none of the patterns asked for "
			 "(supports: %s)", v->name, supported);
		return -EINVAL;
	}
	return 0;
}

double plan_tensor_bytes(const struct cell *c)
{
	/* decode runs n + its generated positions; 64 is more than it generates */
	double extra = c->task && !strcmp(c->task->name, "decode") ? 64 : 0;
	double n = c->n + extra, m = c->m + extra;

	return 4.0 * 2 * c->batch * c->d * (c->heads * n + c->kv_heads * m);
}

int plan_cells(const struct suite *s, const struct selection *sel, struct cell **cells,
	       size_t *count, char *why, size_t why_len)
{
	struct plan p = { 0 };
	int ret = 0;

	if (sel->inputs)
		ret = plan_inputs(&p, s, sel, why, why_len);
	for (int i = 0; i < s->n_rows && !ret && !sel->inputs; i++)
		if (task_selected(sel, s->rows[i].task))
			ret = plan_row(&p, &s->rows[i], s, sel, why, why_len);
	if (ret == -ENOMEM)
		snprintf(why, why_len, "out of memory");
	if (!ret)
		ret = check_named_variants(&p, sel, why, why_len);
	if (!ret && p.count == 0) {
		if (sel->inputs)
			snprintf(why, why_len, "nothing to run: no selected variant supports a "
				 "selected pattern at the inputs' shapes (self patterns need N = M)");
		else
			snprintf(why, why_len, "nothing to run: no cell of suite '%s' matches the "
				 "selection", s->name);
		ret = -EINVAL;
	}
	if (ret) {
		free(p.cells);
		return ret;
	}
	*cells = p.cells;
	*count = p.count;
	return 0;
}
