/*
 * error.h - the one way commands report trouble: one line on stderr.
 */
#ifndef ATTNBENCH_ERROR_H
#define ATTNBENCH_ERROR_H

/* Exit statuses (SPEC section 7). */
enum exit_status {
	EXIT_OK = 0,
	EXIT_FAILED = 1,	/* the work ran, but something failed */
	EXIT_USAGE = 2,		/* bad usage, bad input or trouble */
	EXIT_INTERRUPTED = 130,	/* stopped by SIGINT or SIGTERM (128 + SIGINT, as shells say) */
};

/* Prints "attnbench: <message>" to stderr and returns EXIT_USAGE. */
int error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "attnbench: warning: <message>" to stderr. */
void warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
