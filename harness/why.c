/*
 * why.c - filling a caller's reason buffer (why.h).
 */
#include "why.h"

#include <stdarg.h>
#include <stdio.h>

void why_vset(char *why, size_t len, const char *fmt, va_list ap)
{
	if (why && len)
		vsnprintf(why, len, fmt, ap);
}

void why_set(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	why_vset(why, len, fmt, ap);
	va_end(ap);
}

int why_fail(int err, char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	why_vset(why, len, fmt, ap);
	va_end(ap);
	return err;
}
