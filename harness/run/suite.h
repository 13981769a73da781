/*
 * suite.h - what a run covers: rows of (task, variants, patterns, lengths, dims, heads,
 * kv_heads, batch, regimes). Built-in suites and user suite files share one CSV format,
 * parsed with libcsv:
 *
 *   task,variants,patterns,lengths,dims,heads,kv_heads,batch,regimes
 *   speed,all,ns cs,1024 2048 4096,64,8,,1,
 *   fidelity,vanilla flash,nc cc,512x1024,64,4,2,1,gaussian peaked
 *
 * A header row names the columns (any order; only `task` is required). List fields are
 * separated by spaces, semicolons or (quoted) commas; an empty field takes the default:
 * every variant, every pattern and regime of the task, d 64, 8 heads, kv_heads = heads,
 * batch 1. A length is N, or NxM for cross patterns (self patterns always use M = N).
 * Rows whose first field starts with '#' are comments.
 */
#ifndef ATTNBENCH_SUITE_H
#define ATTNBENCH_SUITE_H

#include <stddef.h>

#include "task.h"
#include "timing.h"

#define SUITE_MAX_LIST 64
#define SUITE_MAX_ROWS 64

/* Accepted sizes: large enough for real runs, small enough to refuse typos. */
#define SUITE_MAX_LENGTH (1 << 20)
#define SUITE_MAX_DIM 1024
#define SUITE_MAX_HEADS 1024
#define SUITE_MAX_BATCH 1024

struct length {
	int n, m;		/* m == 0: the same as n */
};

struct suite_row {
	const struct task_ops *task;
	const struct variant_ops *variants[SUITE_MAX_LIST];
	int n_variants;		/* 0: every variant */
	unsigned int patterns;	/* PATTERN_BIT()s; 0: every pattern of the task */
	unsigned int regimes;	/* bit i: task->regimes[i]; 0: all of them */
	struct length lengths[SUITE_MAX_LIST];
	int n_lengths;
	int dims[SUITE_MAX_LIST], n_dims;
	int heads[SUITE_MAX_LIST], n_heads;
	int kv_heads[SUITE_MAX_LIST], n_kv_heads;	/* 0 entries: kv_heads = heads */
	int batch[SUITE_MAX_LIST], n_batch;
};

struct suite {
	char name[256];
	struct suite_row rows[SUITE_MAX_ROWS];
	int n_rows;
	struct measure_opts measure;
};

struct suite_info {
	const char *name;
	const char *summary;
};

/* The built-in suites, NULL-terminated. */
extern const struct suite_info suite_builtins[];

/* CSV text of a built-in suite, or NULL. */
const char *suite_builtin_csv(const char *name);

/*
 * Loads a built-in suite by name or, if name is not one, a CSV suite file at that path.
 * Returns 0; -ENOENT (no such suite or file); -EINVAL for a malformed file, with a
 * one-line reason naming the row in why.
 */
int suite_load(const char *name, struct suite *s, char *why, size_t why_len);

/* Parses suite CSV text; source names it in errors. 0 or -EINVAL with why. */
int suite_parse(const char *text, size_t len, const char *source, struct suite *s,
		char *why, size_t why_len);

/*
 * List parsers shared by suite files and command-line options. Items are separated by
 * spaces, commas or semicolons. Each returns 0 or -EINVAL with why.
 */
int parse_int_list(const char *text, const char *what, int min, int max, int *out,
		   int *count, char *why, size_t why_len);
int parse_length_list(const char *text, struct length *out, int *count, char *why,
		      size_t why_len);
int parse_pattern_list(const char *text, unsigned int *patterns, char *why, size_t why_len);
int parse_variant_list(const char *text, const struct variant_ops **out, int *count,
		       char *why, size_t why_len);
int parse_task_list(const char *text, const struct task_ops **out, int *count, char *why,
		    size_t why_len);

#endif
