/*
 * buf.h - growing buffers for the io room, private to harness/io: a byte buffer for the
 * text and SQL it builds (CSV headers and lists, JSON, statements, URIs), and room for
 * one more item in a malloc()ed array (rows, fields, list items, run identities).
 */
#ifndef ATTNBENCH_BUF_H
#define ATTNBENCH_BUF_H

#include <stddef.h>

/* A growing byte buffer. */
struct buf {
	char *p;
	size_t len, cap;
};

/* Appends len bytes of text and keeps the buffer NUL-terminated; 0 or -ENOMEM. */
int buf_add(struct buf *b, const char *text, size_t len);
/* buf_add() of a NUL-terminated string. */
int buf_str(struct buf *b, const char *text);

/*
 * Makes room for item n (0-based) in *array, a malloc()ed array (or NULL) of items of
 * size bytes with room for *cap; array is the address of the caller's pointer. Returns
 * 0; -ENOMEM with *array and *cap unchanged.
 */
int buf_grow(void *array, size_t n, size_t *cap, size_t size);

#endif
