/*
 * tensors.c - fenced buffers for q, k, v and o (see tensors.h): one mapping each, guard
 * zones, canaries, sealed inputs, and the explanation of a fault in them.
 *
 * A buffer's mapping, low addresses first:
 *   [guard][canaries | buffer (64-byte aligned start) | canaries][guard]
 *          lo                                                    hi
 * lo and hi are page boundaries; the canaries after the buffer are the few bytes that
 * round it up to 64 (none when it is a multiple of 64), so its end touches the guard.
 */
#include "tensors.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "inputs.h"

/* a float's bit pattern 0xa5a5a5a5 is -2.87e-16: no variant writes exactly that */
#define CANARY 0xa5
#define ALIGN 64

struct fence {
	char *base;		/* the mapping; NULL: a free slot */
	size_t map_bytes;
	char *lo, *hi;		/* the accessible span between the guards */
	char *start;		/* the buffer */
	size_t bytes;
	bool sealed;
	char name[8];
};

static struct fence fences[TENSORS_MAX];

static size_t round_up(size_t x, size_t to)
{
	return (x + to - 1) / to * to;
}

static size_t page_bytes(void)
{
	long page = sysconf(_SC_PAGESIZE);

	return page > 0 ? (size_t)page : 4096;
}

/*
 * Faults a large tensor's pages in from every thread: the kernel zeroes a page in the
 * thread that first touches it, so a task filling its inputs alone zeroed them on one
 * core while the other waited (30 ms of a 65,536-key passkey cell's 335 MB).
 */
static void touch_pages(char *lo, size_t span, size_t page)
{
	#pragma omp parallel for schedule(static)
	for (size_t at = 0; at < span; at += page)
		lo[at] = 0;
}

float *tensor_alloc(size_t count, const char *name)
{
	size_t page = page_bytes(), guard = round_up(TENSORS_GUARD_BYTES, page), span;
	struct fence *f = NULL;
	char *base;

	for (int i = 0; i < TENSORS_MAX && !f; i++)
		if (!fences[i].base)
			f = &fences[i];
	if (!f || count > (SIZE_MAX - 2 * guard - page) / sizeof(float) / 2)
		return NULL;
	span = round_up(count ? count * sizeof(float) : 1, page);
	/* all inaccessible, then the span opened: the guards need no call of their own */
	base = mmap(NULL, span + 2 * guard, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return NULL;
	if (mprotect(base + guard, span, PROT_READ | PROT_WRITE)) {
		munmap(base, span + 2 * guard);
		return NULL;
	}
	/*
	 * Large tensors on transparent huge pages where the system allows them on request:
	 * a 65536-key passkey cell spent a third of its time in 4 KiB page faults filling
	 * its inputs, and every variant reads them with fewer TLB misses, as frameworks'
	 * allocators arrange. Only advice: refused, the pages stay small.
	 */
	if (span >= TENSORS_HUGE_BYTES) {
		madvise(base + guard, span, MADV_HUGEPAGE);
		touch_pages(base + guard, span, page);
	}
	*f = (struct fence){
		.base = base, .map_bytes = span + 2 * guard,
		.lo = base + guard, .hi = base + guard + span,
		.bytes = count * sizeof(float),
	};
	f->start = f->hi - round_up(f->bytes, ALIGN);
	snprintf(f->name, sizeof(f->name), "%s", name);
	/* the slack before the start is under a page: cheap to fill and to check */
	memset(f->lo, CANARY, (size_t)(f->start - f->lo));
	memset(f->start + f->bytes, CANARY, (size_t)(f->hi - f->start) - f->bytes);
	return (float *)f->start;
}

static struct fence *fence_of(const float *x)
{
	for (int i = 0; i < TENSORS_MAX; i++)
		if (fences[i].base && fences[i].start == (const char *)x)
			return &fences[i];
	return NULL;
}

void tensor_free(float *x)
{
	struct fence *f;

	if (!x)
		return;
	f = fence_of(x);
	assert(f);	/* only buffers from tensor_alloc() come here */
	if (!f)
		return;
	munmap(f->base, f->map_bytes);
	f->base = NULL;
}

int tensors_alloc(const struct attn_problem *p, float **q, float **k, float **v, float **o)
{
	*q = tensor_alloc(problem_q_count(p), "q");
	*k = tensor_alloc(problem_kv_count(p), "k");
	*v = tensor_alloc(problem_kv_count(p), "v");
	*o = tensor_alloc(problem_q_count(p), "o");
	if (*q && *k && *v && *o)
		return 0;
	tensors_free(*q, *k, *v, *o);
	*q = *k = *v = *o = NULL;
	return -ENOMEM;
}

void tensors_free(float *q, float *k, float *v, float *o)
{
	tensor_free(q);
	tensor_free(k);
	tensor_free(v);
	tensor_free(o);
}

static int protect(const float *x, bool sealed)
{
	struct fence *f;

	if (!x)
		return 0;
	f = fence_of(x);
	assert(f);
	if (!f)
		return -EINVAL;
	if (mprotect(f->lo, (size_t)(f->hi - f->lo), sealed ? PROT_READ : PROT_READ | PROT_WRITE))
		return -errno;
	f->sealed = sealed;
	return 0;
}

int tensors_seal(const float *q, const float *k, const float *v)
{
	int ret = protect(q, true);

	if (!ret)
		ret = protect(k, true);
	return ret ? ret : protect(v, true);
}

int tensors_unseal(const float *q, const float *k, const float *v)
{
	int ret = protect(q, false);

	if (!ret)
		ret = protect(k, false);
	return ret ? ret : protect(v, false);
}

/* Offset of the first byte of x[0..n) that is not the canary, or n. */
static size_t first_changed(const char *x, size_t n)
{
	size_t i = 0;

	while (i < n && (unsigned char)x[i] == CANARY)
		i++;
	return i;
}

/* Offset of the last byte of x[0..n) that is not the canary, or n when none. */
static size_t last_changed(const char *x, size_t n)
{
	for (size_t i = n; i-- > 0;)
		if ((unsigned char)x[i] != CANARY)
			return i;
	return n;
}

bool tensors_check_guards(struct cell_result *r)
{
	for (int i = 0; i < TENSORS_MAX; i++) {
		const struct fence *f = &fences[i];
		const char *end = f->start + f->bytes;
		size_t before, after, at;

		if (!f->base)
			continue;
		before = (size_t)(f->start - f->lo);
		after = (size_t)(f->hi - end);
		/* the farthest change tells how far the write went */
		at = first_changed(f->lo, before);
		if (at < before) {
			result_status(r, CELL_CORRUPT, "wrote outside the buffers it was given "
				      "(changed the %zu bytes before the start of %s)", before - at,
				      f->name);
			return false;
		}
		at = last_changed(end, after);
		if (at < after) {
			result_status(r, CELL_CORRUPT, "wrote outside the buffers it was given "
				      "(changed the %zu bytes past the end of %s)", at + 1,
				      f->name);
			return false;
		}
	}
	return true;
}

/* Text built in a signal handler: appends as much as fits, always terminated. */
struct text {
	char *buf;
	size_t len, at;
};

static void put(struct text *t, const char *s)
{
	while (*s && t->at + 1 < t->len)
		t->buf[t->at++] = *s++;
	t->buf[t->at] = '\0';
}

static void put_number(struct text *t, uintptr_t x, unsigned base)
{
	char digits[2 * sizeof(x) * 4 + 1], *d = digits + sizeof(digits);

	*--d = '\0';
	do {
		*--d = "0123456789abcdef"[x % base];
		x /= base;
	} while (x);
	if (base == 16)
		put(t, "0x");
	put(t, d);
}

enum cell_status tensors_explain_fault(const void *addr, enum tensors_access access,
				       char *reason, size_t len)
{
	const char *a = addr;

	for (int i = 0; i < TENSORS_MAX; i++) {
		const struct fence *f = &fences[i];
		const char *end = f->start + f->bytes;
		struct text t = { reason, len, 0 };
		bool guard = a < f->lo || a >= f->hi;
		enum cell_status s;

		if (!f->base || a < f->base || a >= f->base + f->map_bytes)
			continue;
		if (!guard && !f->sealed)
			return CELL_OK;	/* accessible: not what faulted */
		if (!guard && a >= f->start && a < end) {
			put(&t, "wrote into its input ");
			put(&t, f->name);
			put(&t, " (address ");
			put_number(&t, (uintptr_t)a, 16);
			put(&t, ", byte ");
			put_number(&t, (uintptr_t)(a - f->start), 10);
			put(&t, " of it)");
			return CELL_CORRUPT;
		}
		/* only a write faults in a sealed span; in a guard, any access does */
		if (access == TENSORS_ACCESS_WRITE || !guard) {
			s = CELL_CORRUPT;
			put(&t, "wrote outside the buffers it was given");
		} else if (access == TENSORS_ACCESS_READ) {
			s = CELL_CRASHED;
			put(&t, "read outside the buffers it was given");
		} else {
			s = CELL_CRASHED;
			put(&t, "read or wrote outside the buffers it was given");
		}
		put(&t, " (address ");
		put_number(&t, (uintptr_t)a, 16);
		put(&t, " is ");
		/* o[-1] is 4 bytes before the start, o[count] 0 bytes past the end */
		put_number(&t, (uintptr_t)(a < f->start ? f->start - a : a - end), 10);
		put(&t, a < f->start ? " bytes before the start of " : " bytes past the end of ");
		put(&t, f->name);
		put(&t, ")");
		return s;
	}
	return CELL_OK;
}
