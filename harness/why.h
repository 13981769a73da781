/*
 * why.h - the one-line reason library code gives its caller.
 *
 * Harness library functions return 0 or a negative errno and, where the caller passes a
 * buffer, fill it with a short lowercase reason that the command prints after its own
 * subject ("cannot open database 'x': <why>"). This is the one helper that fills it.
 */
#ifndef ATTNBENCH_WHY_H
#define ATTNBENCH_WHY_H

#include <stdarg.h>
#include <stddef.h>

/* Formats the reason into why[0..len); does nothing when why is NULL or len is 0. */
void why_set(char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* why_set() with its arguments as a va_list, for helpers that add a step of their own. */
void why_vset(char *why, size_t len, const char *fmt, va_list ap);

/* why_set(), then returns err: `return why_fail(-EIO, why, len, "...")` reads as one step. */
int why_fail(int err, char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
