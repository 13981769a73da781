/*
 * memory.h - the allocator every variant uses, so its workspace is measured.
 *
 * Counts live and peak bytes over all threads. The harness resets the peak before a
 * measured call and reads it after; the difference from the live bytes at reset is the
 * workspace the call needed.
 */
#ifndef ATTNBENCH_MEMORY_H
#define ATTNBENCH_MEMORY_H

#include <stddef.h>

/* 64-byte aligned, uninitialised; NULL when out of memory (or size overflows). */
void *attn_alloc(size_t size);
/* Like attn_alloc(), zero-filled; NULL on overflow of count * size. */
void *attn_calloc(size_t count, size_t size);
/* Frees a block from attn_alloc() or attn_calloc(); accepts NULL. */
void attn_free(void *ptr);

/* Bytes currently allocated through attn_alloc(). */
size_t memory_live_bytes(void);
/* Highest live byte count since the last memory_reset_peak(). */
size_t memory_peak_bytes(void);
/* Sets the peak to the current live count. */
void memory_reset_peak(void);

#endif
