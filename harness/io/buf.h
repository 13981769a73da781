/*
 * buf.h - a growing byte buffer, for the text and SQL the io room builds (CSV
 * headers and lists, JSON, statements, URIs). Private to harness/io.
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

#endif
