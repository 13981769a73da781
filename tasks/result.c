/*
 * result.c - what a task reports about its cell.
 */
#include "task.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inputs.h"

static const char *const status_names[] = {
	[CELL_OK] = "ok",
	[CELL_FAILED] = "failed",
	[CELL_CRASHED] = "crashed",
	[CELL_TIMEOUT] = "timeout",
	[CELL_OOM] = "oom",
	[CELL_UNSUPPORTED] = "unsupported",
	[CELL_NAN] = "nan",
	[CELL_CORRUPT] = "corrupt",
};

const char *cell_status_name(enum cell_status s)
{
	return status_names[s];
}

struct attn_problem cell_problem(const struct cell *c)
{
	return (struct attn_problem){
		.batch = c->batch,
		.heads = c->heads,
		.kv_heads = c->kv_heads,
		.n = c->n,
		.m = c->m,
		.d = c->d,
		.pattern = c->pattern,
		.seed = c->seed,
		.params = c->params,
	};
}

int result_metric(struct cell_result *r, const char *name, double value, const char *unit)
{
	struct metric *slot = NULL;

	for (int i = 0; i < r->n_metrics; i++)
		if (!strcmp(r->metrics[i].name, name))
			slot = &r->metrics[i];
	if (!slot) {
		if (r->n_metrics == RESULT_MAX_METRICS)
			return -ENOSPC;
		slot = &r->metrics[r->n_metrics++];
	}
	snprintf(slot->name, sizeof(slot->name), "%s", name);
	snprintf(slot->unit, sizeof(slot->unit), "%s", unit);
	slot->value = value;
	return 0;
}

int result_sample(struct cell_result *r, double seconds)
{
	if (r->n_samples == r->cap_samples) {
		size_t cap = r->cap_samples ? 2 * r->cap_samples : 64;
		double *grown = realloc(r->samples, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		r->samples = grown;
		r->cap_samples = cap;
	}
	r->samples[r->n_samples++] = seconds;
	return 0;
}

int result_trial(struct cell_result *r, bool correct)
{
	if (r->n_trials == r->cap_trials) {
		size_t cap = r->cap_trials ? 2 * r->cap_trials : 64;
		unsigned char *grown = realloc(r->trials, cap);

		if (!grown)
			return -ENOMEM;
		r->trials = grown;
		r->cap_trials = cap;
	}
	r->trials[r->n_trials++] = correct;
	return 0;
}

int result_latency(struct cell_result *r, struct sample_summary *s)
{
	int ret = stats_summarise(r->samples, r->n_samples, s);

	if (ret)
		return ret;
	result_metric(r, "latency_median", s->median, "s");
	result_metric(r, "latency_ci_lo", s->ci_lo, "s");
	result_metric(r, "latency_ci_hi", s->ci_hi, "s");
	result_metric(r, "latency_ci_level", s->ci_level, "");
	result_metric(r, "latency_q1", s->q1, "s");
	result_metric(r, "latency_q3", s->q3, "s");
	result_metric(r, "latency_min", s->min, "s");
	return 0;
}

void result_status(struct cell_result *r, enum cell_status s, const char *fmt, ...)
{
	va_list ap;

	r->status = s;
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
}

bool result_check_finite(struct cell_result *r, const char *what,
			 const struct attn_problem *p, const float *o, int first_row, int rows)
{
	size_t count = (size_t)p->batch * p->heads * rows * p->d;
	ptrdiff_t at = inputs_first_nonfinite(o, count);
	size_t row, slice;

	if (at < 0)
		return true;
	row = (size_t)at / p->d;
	slice = row / rows;
	result_status(r, CELL_NAN, "%s row %d, column %d (batch %d, head %d) is %s", what,
		      first_row + (int)(row % rows), (int)(at % p->d), (int)(slice / p->heads),
		      (int)(slice % p->heads),
		      isnan(o[at]) ? "nan" : o[at] > 0 ? "inf" : "-inf");
	return false;
}

void result_release(struct cell_result *r)
{
	free(r->samples);
	r->samples = NULL;
	r->n_samples = r->cap_samples = 0;
	free(r->trials);
	r->trials = NULL;
	r->n_trials = r->cap_trials = 0;
}
