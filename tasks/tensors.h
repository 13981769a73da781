/*
 * tensors.h - the buffers a task hands a variant, fenced so that a write outside them is
 * caught and recorded as corrupt (SPEC section 7: a fault in one variant is recorded).
 *
 * Each buffer is a mapping of its own: an inaccessible guard zone of TENSORS_GUARD_BYTES
 * (or more, whole pages) on each side, the buffer's end as close to the guard after it as
 * a 64-byte-aligned start allows, and canary bytes in the slack on either side. A write
 * far outside lands in a guard zone (SIGSEGV, which the runner's handler explains through
 * tensors_explain_fault()); a write just outside changes a canary, which
 * tensors_check_guards() finds after the variant returns. Inputs can be sealed read-only,
 * so that writing into one is a SIGSEGV too.
 *
 * Buffers are kept in a small fixed table, so that a signal handler can read it: not
 * thread-safe (a task allocates from one thread), at most TENSORS_MAX live at once.
 */
#ifndef ATTNBENCH_TENSORS_H
#define ATTNBENCH_TENSORS_H

#include <stdbool.h>
#include <stddef.h>

#include "task.h"
#include "variant.h"

/* 64 KiB: an overrun by a few thousand floats (a wrong row stride) still hits the guard */
#define TENSORS_GUARD_BYTES ((size_t)64 << 10)
/* Tensors from this size on are advised onto transparent huge pages (2 MiB on x86-64). */
#define TENSORS_HUGE_BYTES ((size_t)4 << 20)
/* Live buffers at once: a task holds at most two sets of q, k, v, o and decode's rows. */
#define TENSORS_MAX 64

/*
 * A fenced buffer of count floats, 64-byte aligned, uninitialised; name (up to 7
 * characters, e.g. "o") is what reasons call it. NULL when out of memory, or when
 * TENSORS_MAX buffers are live.
 */
float *tensor_alloc(size_t count, const char *name);
/* Unmaps a buffer from tensor_alloc(); accepts NULL. */
void tensor_free(float *x);

/* Allocates fenced q, k, v and o for p (not counted as workspace); 0 or -ENOMEM. */
int tensors_alloc(const struct attn_problem *p, float **q, float **k, float **v, float **o);
/* tensor_free() of each; NULLs are skipped. */
void tensors_free(float *q, float *k, float *v, float *o);

/*
 * Makes the buffers q, k and v (from tensor_alloc(); NULLs are skipped) read-only, so a
 * variant that writes into its inputs is caught at the write, or writable again for the
 * task to refill them. 0 or -errno from mprotect().
 */
int tensors_seal(const float *q, const float *k, const float *v);
int tensors_unseal(const float *q, const float *k, const float *v);

/*
 * Checks the canaries around every live buffer. True when all are intact; otherwise sets
 * r's status to CELL_CORRUPT with a reason naming the buffer and how far outside it the
 * write went, and returns false. Every variant call a task makes is followed by it.
 */
bool tensors_check_guards(struct cell_result *r);

/* What a faulting access did, as far as the signal tells (tensors_explain_fault()). */
enum tensors_access {
	TENSORS_ACCESS_UNKNOWN,
	TENSORS_ACCESS_READ,
	TENSORS_ACCESS_WRITE,
};

/*
 * For a SIGSEGV handler (async-signal-safe: no stdio, no heap): whether addr lies in a
 * guard zone or a sealed input of a live buffer. CELL_CORRUPT for a write there (or any
 * fault in a sealed input's data, which only a write causes), CELL_CRASHED for a read of
 * a guard zone or an access of unknown kind, each with a reason in reason[len]; CELL_OK
 * when addr is none of the buffers' (reason untouched): an ordinary crash.
 */
enum cell_status tensors_explain_fault(const void *addr, enum tensors_access access,
				       char *reason, size_t len);

#endif
