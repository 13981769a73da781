/*
 * plan.h - expands a suite and the command line's selection into the list of cells.
 */
#ifndef ATTNBENCH_PLAN_H
#define ATTNBENCH_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "params.h"
#include "suite.h"
#include "task.h"
#include "tensor-sets.h"

/* What the command line narrows (lists with count 0 leave the suite's values). */
struct selection {
	const struct variant_ops *variants[SUITE_MAX_LIST];
	int n_variants;
	const struct task_ops *tasks[SUITE_MAX_LIST];
	int n_tasks;
	unsigned int patterns;	/* 0: as the suite says */
	struct length lengths[SUITE_MAX_LIST];
	int n_lengths;
	int dims[SUITE_MAX_LIST], n_dims;
	int heads[SUITE_MAX_LIST], n_heads;
	int kv_heads[SUITE_MAX_LIST], n_kv_heads;
	int batch[SUITE_MAX_LIST], n_batch;
	struct param_overrides params;
	uint64_t seed;
	int threads;
	/* run --inputs: fidelity on these instead of the suite's rows, or NULL */
	const struct tensor_sets *inputs;
};

/*
 * Builds the cells (malloc()ed array) of s narrowed by sel; with sel->inputs, the
 * fidelity cells of the selected variants and patterns on each set instead (its shape;
 * self patterns only for sets with N = M), timed as the suite says. Variants are skipped on
 * patterns they do not support, unless the variant was named in sel and supports none
 * of the patterns asked for: that, a kv_heads that does not divide heads, and an empty
 * plan are -EINVAL with a one-line reason in why.
 */
int plan_cells(const struct suite *s, const struct selection *sel, struct cell **cells,
	       size_t *count, char *why, size_t why_len);

/*
 * The bytes of a cell's own tensors (Q and O, K and V, float32; decode's positions after
 * the prefix included): what it needs before any variant workspace.
 */
double plan_tensor_bytes(const struct cell *c);

/* The input seed of a cell: the same for every variant and parameter setting. */
uint64_t plan_cell_seed(uint64_t run_seed, const struct cell *c);

#endif
