/*
 * buf.c - the growing byte buffer and arrays of the io room (buf.h).
 */
#include "buf.h"

#include <errno.h>
#include <stdint.h>
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

int buf_grow(void *array, size_t n, size_t *cap, size_t size)
{
	size_t want = 2 * *cap + 16;
	void *p, *grown;

	if (n < *cap)
		return 0;
	if (want > SIZE_MAX / size)
		return -ENOMEM;
	/* the caller's pointer is read and written through bytes: it may be any object type */
	memcpy(&p, array, sizeof(p));
	grown = realloc(p, want * size);
	if (!grown)
		return -ENOMEM;
	memcpy(array, &grown, sizeof(grown));
	*cap = want;
	return 0;
}
