/*
 * buf.c - the growing byte buffer of the io room (buf.h).
 */
#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int buf_add(struct buf *b, const char *text, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		size_t cap = 2 * b->cap + len + 64;
		char *p = realloc(b->p, cap);

		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, text, len);
	b->len += len;
	b->p[b->len] = '\0';
	return 0;
}

int buf_str(struct buf *b, const char *text)
{
	return buf_add(b, text, strlen(text));
}
