/*
 * runner.c - child processes for cells: limits, a pipe back, wait4() for the rusage; and
 * the machine's rates measured in such a child at the start of a run (SGEMM, triad).
 *
 * The child writes "rss_at_start BYTES" as soon as it starts, then, when the cell is done,
 * one line per item ("metric NAME VALUE UNIT", "sample SECONDS", "trial 0|1", "status CODE
 * REASON") and "end" last; a child that dies before "end" is recorded by how it died.
 *
 * How a death is told apart (see record_death()):
 *   - the parent killed it at the time limit: timeout;
 *   - the cell ran out of address space under RLIMIT_AS: an allocation failed, the task
 *     returned -ENOMEM and the child reported oom itself (its report needs no memory);
 *   - SIGKILL the parent did not send: oom only when the kernel's count of out-of-memory
 *     kills (oom_kill in /proc/vmstat, global and cgroup kills alike, raised before the
 *     signal is sent) went up while the child lived; otherwise crashed, since a user, a
 *     scheduler or a user-space OOM daemon sent it. Another process's OOM kill at the same
 *     moment would be taken for this one's: the counter does not say whom it killed.
 *
 * A SIGSEGV in a guard zone or a sealed input of the task's buffers (tensors.h) is not a
 * death: the child's handler reports the cell corrupt itself and exits (on_segv()).
 */
#include "runner.h"

#include <cblas.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tensors.h"
#include "threads.h"
#include "timing.h"

static void write_result(FILE *f, const struct cell_result *r)
{
	for (int i = 0; i < r->n_metrics; i++)
		fprintf(f, "metric %s %.17g %s\n", r->metrics[i].name, r->metrics[i].value,
			r->metrics[i].unit[0] ? r->metrics[i].unit : "-");
	for (size_t i = 0; i < r->n_samples; i++)
		fprintf(f, "sample %.17g\n", r->samples[i]);
	for (size_t i = 0; i < r->n_trials; i++)
		fprintf(f, "trial %d\n", r->trials[i] ? 1 : 0);
	fprintf(f, "status %d ", (int)r->status);
	for (const char *c = r->reason; *c; c++)
		fputc(*c == '\n' ? ' ' : *c, f);
	fprintf(f, "\nend\n");
	if (fclose(f))
		_exit(3);
}

static const int default_signals[] = {
	SIGINT, SIGTERM, SIGPIPE, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT,
};

/* The child's end of the report pipe, for on_segv(). */
static int report_fd = -1;

/* Writes all of s to fd; a signal handler's only way to report (no stdio). */
static void write_all(int fd, const char *s)
{
	size_t left = strlen(s);

	while (left) {
		ssize_t got = write(fd, s, left);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return;
		s += got;
		left -= (size_t)got;
	}
}

/* Whether a faulting access was a write, where the machine says (x86-64's fault code). */
static enum tensors_access fault_access(const void *context)
{
#if defined(__x86_64__) && defined(REG_ERR)
	const ucontext_t *uc = context;

	return uc->uc_mcontext.gregs[REG_ERR] & 2 ? TENSORS_ACCESS_WRITE : TENSORS_ACCESS_READ;
#else
	(void)context;
	return TENSORS_ACCESS_UNKNOWN;
#endif
}

/*
 * SIGSEGV in the child: a fault in the fences of the task's buffers ends the report with
 * the status tensors_explain_fault() gives (nothing else is in the pipe while the task
 * runs) and exits; any other fault dies of the signal as before. Runs on its own stack,
 * so that a stack overflow still dies of SIGSEGV and not of a second fault.
 */
static void on_segv(int sig, siginfo_t *info, void *context)
{
	static atomic_flag reporting = ATOMIC_FLAG_INIT;
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	enum cell_status s = CELL_OK;
	char reason[200], code[4] = { 0 };

	/* si_code <= 0: sent by a process (raise, kill), si_addr means nothing */
	if (info->si_code > 0)
		s = tensors_explain_fault(info->si_addr, fault_access(context), reason,
					  sizeof(reason));
	if (s == CELL_OK) {
		/* pending until this returns, then fatal: the child dies of it */
		sigaction(sig, &dfl, NULL);
		raise(sig);
		return;
	}
	/* another thread faulted first: it reports, this one waits for the exit */
	if (atomic_flag_test_and_set(&reporting))
		for (;;)
			pause();
	code[0] = (char)('0' + s / 10);
	code[1] = (char)('0' + s % 10);
	write_all(report_fd, "status ");
	write_all(report_fd, s < 10 ? code + 1 : code);
	write_all(report_fd, " ");
	write_all(report_fd, reason);
	write_all(report_fd, "\nend\n");
	_exit(0);
}

/* Catches SIGSEGV with on_segv() on an alternate stack; best effort. */
static void catch_segv(int fd)
{
	/* static: the child's own, and large enough for the handler on any x86 or Arm */
	static char stack[64 << 10];
	stack_t ss = { .ss_sp = stack, .ss_size = sizeof(stack) };
	struct sigaction sa = { .sa_sigaction = on_segv, .sa_flags = SA_SIGINFO | SA_ONSTACK };

	report_fd = fd;
	sigemptyset(&sa.sa_mask);
	if (sigaltstack(&ss, NULL))
		sa.sa_flags &= ~SA_ONSTACK;
	sigaction(SIGSEGV, &sa, NULL);
}

/* The peak resident set of this process so far in bytes (ru_maxrss is in KiB on Linux). */
static long long self_max_rss(void)
{
	struct rusage ru;

	return getrusage(RUSAGE_SELF, &ru) ? -1 : (long long)ru.ru_maxrss * 1024;
}

static void child_main(int fd, int (*fn)(void *, struct cell_result *), void *arg,
		       int threads, const struct runner_limits *limits)
{
	size_t as_limit = RUNNER_LIMITS_ADDRESS_SPACE ? limits->bytes : 0;
	/* static: the report must not need the heap, which the cell may have used up */
	static char buf[BUFSIZ];
	struct cell_result r = { 0 };
	FILE *f = fdopen(fd, "w");
	int ret;

	if (!f || setvbuf(f, buf, _IOFBF, sizeof(buf)))
		_exit(3);
	/* what the child shares with the parent from the fork is resident before the cell */
	fprintf(f, "rss_at_start %lld\n", self_max_rss());
	if (fflush(f))
		_exit(3);
	if (as_limit) {
		struct rlimit rl = { as_limit, as_limit };

		setrlimit(RLIMIT_AS, &rl);
	}
	/* Die as the signal says, whatever handlers the parent had. */
	for (size_t i = 0; i < sizeof(default_signals) / sizeof(default_signals[0]); i++)
		signal(default_signals[i], SIG_DFL);
	catch_segv(fd);
	threads_set(threads);
	ret = fn(arg, &r);
	if (ret == -ENOTSUP && r.reason[0])
		r.status = CELL_UNSUPPORTED;	/* the task said why */
	else if (ret == -ENOTSUP)
		result_status(&r, CELL_UNSUPPORTED, "the variant does not support this problem");
	else if (ret == -ENOMEM && as_limit)
		result_status(&r, CELL_OOM, "out of memory under the %.1f GiB address-space limit",
			      (double)as_limit / (1 << 30));
	else if (ret == -ENOMEM)
		result_status(&r, CELL_OOM, "out of memory (no address-space limit)");
	else if (ret)
		result_status(&r, CELL_FAILED, "%s", strerror(-ret));
	write_result(f, &r);
	_exit(0);
}

/* Reads what ch's child has written so far; marks it done at the end of the report. */
static void read_some(struct runner_child *ch)
{
	ssize_t got;

	if (ch->len + 4096 + 1 > ch->cap) {
		char *grown = realloc(ch->text, ch->cap = 2 * ch->cap + 8192);

		if (!grown) {
			ch->done = true;	/* the report is lost: recorded as crashed */
			return;
		}
		ch->text = grown;
	}
	got = read(ch->fd, ch->text + ch->len, ch->cap - ch->len - 1);
	if (got < 0 && errno == EINTR)
		return;
	if (got <= 0)
		ch->done = true;	/* on an error, recorded by how the child ends */
	else
		ch->len += (size_t)got;
}

int runner_wait_any(struct runner_child *children, int n, const struct runner_limits *limits)
{
	for (;;) {
		struct pollfd pfd[RUNNER_MAX_CHILDREN];
		int slot[RUNNER_MAX_CHILDREN], count = 0, ready;
		double now = timing_now(), first = 0, left;

		for (int i = 0; i < n && i < RUNNER_MAX_CHILDREN; i++) {
			struct runner_child *ch = &children[i];
			double deadline = ch->start + limits->seconds;

			if (!ch->pid)
				continue;
			if (ch->done)
				return i;
			if (now >= deadline) {
				ch->done = true;
				ch->in_time = false;
				return i;
			}
			if (!count || deadline < first)
				first = deadline;
			pfd[count] = (struct pollfd){ ch->fd, POLLIN, 0 };
			slot[count++] = i;
		}
		if (!count)
			return -1;
		left = first - now;
		ready = poll(pfd, (nfds_t)count, left > 60 ? 60000 : (int)(left * 1000) + 1);
		/* a signal (the run being interrupted) must not turn off the time limit */
		if (ready < 0 && errno != EINTR) {
			children[slot[0]].done = true;	/* cannot wait: recorded by how it ends */
			return slot[0];
		}
		for (int k = 0; ready > 0 && k < count; k++)
			if (pfd[k].revents)
				read_some(&children[slot[k]]);
	}
}

/*
 * Parses the report into r and the child's starting resident set into *rss_at_start (left
 * alone when the report has none); returns false if it is incomplete.
 */
static bool parse_report(char *text, struct cell_result *r, long long *rss_at_start)
{
	char *line, *save = NULL;
	bool ended = false;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[64], unit[32];
		double value;
		int code, used = 0;
		long long bytes;

		if (sscanf(line, "rss_at_start %lld", &bytes) == 1) {
			*rss_at_start = bytes;
		} else if (sscanf(line, "metric %63s %lf %31s", name, &value, unit) == 3) {
			result_metric(r, name, value, strcmp(unit, "-") ? unit : "");
		} else if (sscanf(line, "sample %lf", &value) == 1) {
			if (result_sample(r, value))
				return false;
		} else if (sscanf(line, "trial %d", &code) == 1 && (code == 0 || code == 1)) {
			if (result_trial(r, code))
				return false;
		} else if (sscanf(line, "status %d %n", &code, &used) == 1 && code >= CELL_OK &&
			   code < CELL_STATUS_COUNT) {
			r->status = code;
			snprintf(r->reason, sizeof(r->reason), "%s", line + used);
		} else if (!strcmp(line, "end")) {
			ended = true;
		}
	}
	return ended;
}

/*
 * The kernel's count of out-of-memory kills since boot, or -1 when it cannot be read
 * (not Linux, or a kernel before 4.13).
 */
static long long oom_kill_count(void)
{
	FILE *f = fopen("/proc/vmstat", "r");
	char line[128];
	long long n = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "oom_kill ", 9)) {
			n = strtoll(line + 9, NULL, 10);
			break;
		}
	fclose(f);
	return n;
}

/*
 * Records in r how a child that did not finish its report died; oom_kills_before is
 * oom_kill_count() from before the fork.
 */
static void record_death(struct cell_result *r, bool in_time, int status,
			 const struct runner_limits *limits, long long oom_kills_before)
{
	long long oom_kills_after;

	if (!in_time) {
		result_status(r, CELL_TIMEOUT, "exceeded the time limit of %g s", limits->seconds);
	} else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
		/* the parent sends SIGKILL only at the time limit: this one came from elsewhere */
		oom_kills_after = oom_kills_before < 0 ? -1 : oom_kill_count();
		if (oom_kills_after < 0)
			result_status(r, CELL_CRASHED, "killed by SIGKILL from outside the harness "
				      "or by the kernel's out-of-memory killer (cannot tell which)");
		else if (oom_kills_after > oom_kills_before)
			result_status(r, CELL_OOM, "killed by the kernel's out-of-memory killer");
		else
			result_status(r, CELL_CRASHED, "killed by SIGKILL from outside the harness "
				      "(not by the kernel's out-of-memory killer)");
	} else if (WIFSIGNALED(status)) {
		result_status(r, CELL_CRASHED, "killed by signal %d (%s)", WTERMSIG(status),
			      strsignal(WTERMSIG(status)));
	} else {
		result_status(r, CELL_CRASHED, "exited with status %d before reporting",
			      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
}

/* Forks a child running fn(arg) into the free slot ch; 0 or -errno (ch stays free). */
static int start_child(int (*fn)(void *arg, struct cell_result *r), void *arg, int threads,
		       const struct runner_limits *limits, struct runner_child *ch)
{
	int fds[2];
	pid_t pid;

	memset(ch, 0, sizeof(*ch));
	ch->oom_kills = oom_kill_count();
	ch->start = timing_now();
	if (pipe(fds))
		return -errno;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		int err = errno;

		close(fds[0]);
		close(fds[1]);
		return -err;
	}
	if (pid == 0) {
		close(fds[0]);
		child_main(fds[1], fn, arg, threads, limits);
	}
	close(fds[1]);
	ch->pid = pid;
	ch->fd = fds[0];
	ch->in_time = true;
	return 0;
}

/* Reaps the done child of ch into r and out, and frees the slot. */
static void collect(struct runner_child *ch, const struct runner_limits *limits,
		    struct cell_result *r, struct runner_outcome *out)
{
	struct rusage ru;
	bool reported;
	int status;

	close(ch->fd);
	if (!ch->in_time)
		kill(ch->pid, SIGKILL);
	while (wait4(ch->pid, &status, 0, &ru) < 0 && errno == EINTR)
		;
	out->wall_seconds = timing_now() - ch->start;
	out->rss_bytes = (long long)ru.ru_maxrss * 1024;
	out->rss_at_start_bytes = -1;
	if (ch->text)
		ch->text[ch->len] = '\0';

	memset(r, 0, sizeof(*r));
	/* parsed even from a child that died: its first line, rss_at_start, is kept */
	reported = ch->text && parse_report(ch->text, r, &out->rss_at_start_bytes);
	if (!ch->in_time || !WIFEXITED(status) || WEXITSTATUS(status) || !reported) {
		result_release(r);
		memset(r, 0, sizeof(*r));
		record_death(r, ch->in_time, status, limits, ch->oom_kills);
	}
	free(ch->text);
	memset(ch, 0, sizeof(*ch));
}

int runner_call(int (*fn)(void *arg, struct cell_result *r), void *arg, int threads,
		const struct runner_limits *limits, struct cell_result *r,
		struct runner_outcome *out)
{
	struct runner_child ch;
	int ret = start_child(fn, arg, threads, limits, &ch);

	if (ret)
		return ret;
	runner_wait_any(&ch, 1, limits);
	collect(&ch, limits, r, out);
	return 0;
}

static int run_cell_fn(void *arg, struct cell_result *r)
{
	const struct cell *c = arg;

	return c->task->run(c, r);
}

int runner_start_cell(const struct cell *c, const struct runner_limits *limits,
		      struct runner_child *ch)
{
	return start_child(run_cell_fn, (void *)c, c->threads, limits, ch);
}

void runner_reap(struct runner_child *ch, const struct runner_limits *limits,
		 struct cell_result *r, struct runner_outcome *out)
{
	collect(ch, limits, r, out);
	/* a task that filled every metric slot loses this one (-ENOSPC), not its own */
	if (out->rss_at_start_bytes >= 0)
		result_metric(r, "rss_at_start_bytes", (double)out->rss_at_start_bytes, "B");
}

int runner_run_cell(const struct cell *c, const struct runner_limits *limits,
		    struct cell_result *r, struct runner_outcome *out)
{
	struct runner_child ch;
	int ret = runner_start_cell(c, limits, &ch);

	if (ret)
		return ret;
	runner_wait_any(&ch, 1, limits);
	runner_reap(&ch, limits, r, out);
	return 0;
}

/* 2048^3 is far beyond the caches and takes ~0.1 s: the rate BLAS sustains. */
#define PEAK_SIZE 2048

static int sgemm_peak_fn(void *arg, struct cell_result *r)
{
	size_t count = (size_t)PEAK_SIZE * PEAK_SIZE;
	float *a = malloc(count * sizeof(float)), *b = malloc(count * sizeof(float));
	float *c = malloc(count * sizeof(float));
	double best = 0, start = timing_now();

	(void)arg;
	if (!a || !b || !c) {
		free(a);
		free(b);
		free(c);
		return -ENOMEM;
	}
	for (size_t i = 0; i < count; i++) {
		a[i] = (float)(i % 13) * 0.01f;
		b[i] = (float)(i % 7) * 0.01f;
	}
	/* One warm-up product, then the best of at least three within about a second. */
	for (int rep = 0; rep < 4 || timing_now() - start < 1.0; rep++) {
		double t0 = timing_now(), rate;

		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, PEAK_SIZE, PEAK_SIZE,
			    PEAK_SIZE, 1.0f, a, PEAK_SIZE, b, PEAK_SIZE, 0.0f, c, PEAK_SIZE);
		rate = 2.0 * PEAK_SIZE * PEAK_SIZE * (double)PEAK_SIZE / (timing_now() - t0);
		if (rep > 0 && rate > best)
			best = rate;
		if (rep > 100)
			break;
	}
	free(a);
	free(b);
	free(c);
	return result_metric(r, "sgemm_gflops", best * 1e-9, "GFLOP/s");
}

/*
 * The triad's arrays: 32 Mi floats each, 384 MiB for the three. STREAM asks each array to
 * be at least 4 times the last-level cache: 128 MiB is that for caches of up to 32 MiB (a
 * desktop's L3, or the L3 of the one EPYC chiplet a run on a few cores sees), so the rate
 * is the memory's and not a cache's.
 */
#define TRIAD_COUNT ((long)32 << 20)
/* Timed triads after one warm-up: STREAM's 10, of which the best is the rate. */
#define TRIAD_REPEATS 10
/* The arrays' alignment: a huge page of x86-64. */
#define TRIAD_PAGE ((size_t)2 << 20)

/* a = b + s * c over the arrays, shared out as the first touch shared them. */
static void triad(float *a, const float *b, const float *c, float s)
{
	#pragma omp parallel for schedule(static)
	for (long i = 0; i < TRIAD_COUNT; i++)
		a[i] = b[i] + s * c[i];
}

/*
 * An array of the triad on transparent huge pages where the system grants them on request,
 * as the cells' inputs are (tasks/tensors.c): the rate is then the one those see.
 */
static float *triad_array(size_t size)
{
	void *x = NULL;

	if (posix_memalign(&x, TRIAD_PAGE, size))
		return NULL;
	madvise(x, size, MADV_HUGEPAGE);
	return x;
}

static int triad_bandwidth_fn(void *arg, struct cell_result *r)
{
	size_t size = (size_t)TRIAD_COUNT * sizeof(float);
	float *a = triad_array(size), *b = triad_array(size), *c = triad_array(size);
	double best = 0;
	int ret = -ENOMEM;

	(void)arg;
	if (!a || !b || !c)
		goto out_free;
	/* first touch in the triad's own static layout: each thread's pages near it */
	#pragma omp parallel for schedule(static)
	for (long i = 0; i < TRIAD_COUNT; i++) {
		a[i] = 0;
		b[i] = 1;
		c[i] = 2;
	}
	for (int rep = 0; rep <= TRIAD_REPEATS; rep++) {
		double t0 = timing_now(), took;

		triad(a, b, c, 3.0f);
		took = timing_now() - t0;
		if (rep > 0 && (!best || took < best))
			best = took;
	}
	/* the triad's result is read, so no store of it can be left out */
	ret = a[TRIAD_COUNT - 1] == 7.0f && best > 0 ? 0 : -EIO;
	/*
	 * STREAM's count: b and c read, a written. The read of a that a write-allocate
	 * cache makes before writing it is not counted, so this is the rate the program
	 * sees, as STREAM reports it.
	 */
	if (!ret)
		ret = result_metric(r, "triad_gbps", 3.0 * size / best * 1e-9, "GB/s");
out_free:
	free(a);
	free(b);
	free(c);
	return ret;
}

/* Runs fn in a child with `threads` threads; the one metric it reports into *value. */
static int machine_rate(int (*fn)(void *, struct cell_result *), int threads, double *value)
{
	struct runner_limits limits = { 120, 0 };
	struct runner_outcome out;
	struct cell_result r;
	int ret = runner_call(fn, NULL, threads, &limits, &r, &out);

	if (ret)
		return ret;
	ret = r.status == CELL_OK && r.n_metrics == 1 ? 0 : -EIO;
	if (!ret)
		*value = r.metrics[0].value;
	result_release(&r);
	return ret;
}

int runner_sgemm_peak(int threads, double *gflops)
{
	return machine_rate(sgemm_peak_fn, threads, gflops);
}

int runner_triad_bandwidth(int threads, double *gbps)
{
	return machine_rate(triad_bandwidth_fn, threads, gbps);
}
