/*
 * run-binary.h - for tests that drive the attnbench binary as a user would: run it with
 * arguments (and wait, or signal it meanwhile), capture its exit status, stdout and stderr.
 */
#ifndef ATTNBENCH_RUN_BINARY_H
#define ATTNBENCH_RUN_BINARY_H

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

struct outcome {
	int status;		/* exit status, or -1 when killed by a signal */
	char out[65536];
	char err[65536];
};

static void slurp(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t got = f ? fread(buf, 1, len - 1, f) : 0;

	buf[got] = '\0';
	if (f)
		fclose(f);
}

/*
 * Starts binary with the NULL-terminated arguments after arg, stdout and stderr going to
 * files in scratch_dir, and returns its pid without waiting; a failed fork fails the
 * test. finish_binary() waits for it.
 */
static pid_t start_binary(const char *binary, const char *scratch_dir, const char *arg,
			  va_list ap)
{
	const char *argv[64] = { binary, arg };
	char out_path[512], err_path[512];
	int argc = 2;
	pid_t pid;

	while (arg && argc < 63 && (argv[argc++] = va_arg(ap, const char *)))
		;
	snprintf(out_path, sizeof(out_path), "%s/stdout", scratch_dir);
	snprintf(err_path, sizeof(err_path), "%s/stderr", scratch_dir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		dup2(out, 1);
		dup2(err, 2);
		execv(binary, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* Waits for a binary start_binary() started and fills o; -1 status when it was killed. */
static void finish_binary(struct outcome *o, pid_t pid, const char *scratch_dir)
{
	char out_path[512], err_path[512];
	int status;

	waitpid(pid, &status, 0);
	snprintf(out_path, sizeof(out_path), "%s/stdout", scratch_dir);
	snprintf(err_path, sizeof(err_path), "%s/stderr", scratch_dir);
	o->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	slurp(out_path, o->out, sizeof(o->out));
	slurp(err_path, o->err, sizeof(o->err));
}

/* Runs binary with the NULL-terminated arguments after arg and waits: o filled. */
static void run_binary(struct outcome *o, const char *binary, const char *scratch_dir,
		       const char *arg, va_list ap)
{
	finish_binary(o, start_binary(binary, scratch_dir, arg, ap), scratch_dir);
}

#endif
