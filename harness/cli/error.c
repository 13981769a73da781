/*
 * error.c - one-line messages on stderr.
 */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

static void vreport(const char *prefix, const char *fmt, va_list ap)
{
	fprintf(stderr, "attnbench: %s", prefix);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport("", fmt, ap);
	va_end(ap);
	return EXIT_USAGE;
}

void warning(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport("warning: ", fmt, ap);
	va_end(ap);
}
