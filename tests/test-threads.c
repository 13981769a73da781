/*
 * test-threads.c - one thread pool, no oversubscription: a cell run with --threads N
 * never has more than N busy threads, OpenMP's and OpenBLAS's together.
 *
 * Each workload runs in a real runner child (runner_call() with the cell's thread count,
 * so child_main() calls threads_set() exactly as for a cell), and the parent watches that
 * child from the kernel's side while the work runs: /proc/PID/task/TID/stat of every
 * thread, every millisecond. The child tells the parent its pid and when its work starts
 * and ends through a shared page, and waits at both ends until the parent has read the
 * threads' CPU times, so the window is the work and nothing else. The watcher is a thread
 * of the parent, so it is not among the threads it counts.
 *
 * Workloads: a large cblas_sgemm (OpenBLAS's own team), and speed-task cells of vanilla
 * (sgemm between OpenMP regions), flash (an OpenMP region over tiles, BLAS held serial)
 * and lightning (cblas_sgemm per head inside OpenMP regions, blas_serial_begin() around
 * them), at 1 and 2 threads and at the usable CPU count when that is more. A control
 * child that starts more threads than it was given checks that the watcher sees them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cblas.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "environment.h"
#include "runner.h"
#include "task-test.h"

/*
 * A thread is busy when it used more CPU during the work than this fraction of the
 * work's wall time. A thread that takes a share of parallel work runs for most of the
 * wall time; one that was only created, or woken for a barrier and put back to sleep
 * (OMP_WAIT_POLICY=passive), uses microseconds. 2% lies far between the two. utime and
 * stime count whole ticks (10 ms at USER_HZ 100, rounded down from the exact run time),
 * so for the 0.25-0.5 s windows here a thread is busy once it is charged one tick.
 * A thread starved of CPU by other processes may fall below it: that can only hide a
 * busy thread, never invent one, and the count of running threads below does not
 * depend on getting CPU (a runnable thread waiting for a core is in state R too).
 */
#define WATCH_BUSY_FRACTION 0.02

/* How often the watcher reads the threads' states: often enough to see short regions. */
#define WATCH_PERIOD_NS 1000000L

/* More threads than any child here starts; the rest are not tracked (and fail the test). */
#define WATCH_MAX_THREADS 256

/*
 * Timed seconds of a speed cell: with its input generation, first call and warm-up the
 * cell runs about 0.3-0.5 s, long enough to be well sampled, short enough for a test.
 */
#define WORK_SECONDS 0.25

/* The sgemm workload: far beyond the caches, so OpenBLAS splits it over its team. */
#define SGEMM_SIZE 1024

/* The most any wait at either end of the work may last before the side gives up. */
#define HANDSHAKE_SECONDS 30.0

enum handshake_phase {
	PHASE_STARTING,		/* the child has not begun */
	PHASE_READY,		/* the child wrote its pid and waits */
	PHASE_GO,		/* the parent read the CPU times before the work */
	PHASE_DONE,		/* the child finished the work and waits */
	PHASE_SEEN,		/* the parent read the CPU times after the work */
};

/* In a shared anonymous mapping: the parent and the runner's child both see it. */
struct handshake {
	atomic_int pid;
	atomic_int phase;
};

/* What the child runs: a cell through its task, or one of the two fixed works below. */
struct watched {
	struct handshake *hs;
	const struct cell *cell;	/* or NULL */
	int spinners;			/* with cell NULL: 0 the sgemm, else the control */
};

struct thread_times {
	int tid;
	unsigned long long base;	/* utime + stime before the work (0: born during it) */
	unsigned long long last;	/* at the last read */
};

struct watch {
	struct handshake *hs;
	atomic_bool stop;		/* the child is gone: give up waiting for it */
	struct thread_times t[WATCH_MAX_THREADS];
	int n_threads;			/* threads seen during the work */
	bool overflow;			/* more threads than t holds */
	bool complete;			/* the work's window was watched from start to end */
	int samples;			/* reads of the states during the work */
	int max_running;		/* most threads in state R at one read */
	int busy;			/* threads that used more than the busy threshold */
	double wall;			/* seconds of the work */
	double busiest;			/* CPU seconds of the busiest thread */
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void pause_ns(long ns)
{
	struct timespec ts = { 0, ns };

	nanosleep(&ts, NULL);
}

/*
 * Reads the state and utime + stime (fields 3, 14 and 15) of one thread; false when it
 * is gone. The command name (field 2) may hold spaces and parentheses: fields are
 * counted from its last ')'.
 */
static bool read_thread_stat(int pid, int tid, char *state, unsigned long long *ticks)
{
	char path[64], buf[1024], *p;
	unsigned long long utime, stime;
	ssize_t got;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	got = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (got <= 0)
		return false;
	buf[got] = '\0';
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 state, &utime, &stime) != 3)
		return false;
	*ticks = utime + stime;
	return true;
}

/*
 * Reads every thread of pid: records its CPU time (as the base when `before`, and a
 * thread first seen later starts from 0, as it was born during the work); returns how
 * many are in state R, or -1 when the process is gone. One sweep is not one instant (it
 * takes tens of microseconds): a thread that fell asleep as another woke could be counted
 * with it, but a child with no more threads than its count is never counted over it.
 */
static int watch_read(struct watch *w, int pid, bool before)
{
	char path[64];
	struct dirent *e;
	int running = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((e = readdir(dir))) {
		unsigned long long ticks;
		int tid = atoi(e->d_name), i;
		char state;

		if (tid <= 0 || !read_thread_stat(pid, tid, &state, &ticks))
			continue;
		running += state == 'R';
		for (i = 0; i < w->n_threads && w->t[i].tid != tid; i++)
			;
		if (i == w->n_threads) {
			if (i == WATCH_MAX_THREADS) {
				w->overflow = true;
				continue;
			}
			w->t[i] = (struct thread_times){ tid, before ? ticks : 0, ticks };
			w->n_threads++;
		}
		w->t[i].last = ticks;
	}
	closedir(dir);
	return running;
}

/* Waits until the shared phase is `phase` or `stop` is set; false on stop or timeout. */
static bool wait_phase(struct handshake *hs, int phase, atomic_bool *stop)
{
	double deadline = now() + HANDSHAKE_SECONDS;

	while (atomic_load(&hs->phase) != phase) {
		if ((stop && atomic_load(stop)) || now() > deadline)
			return false;
		pause_ns(100000);
	}
	return true;
}

/* The parent's watcher thread: one child's work, from PHASE_READY to PHASE_DONE. */
static void *watch_main(void *arg)
{
	struct watch *w = arg;
	double start, tick = 1.0 / (double)sysconf(_SC_CLK_TCK);
	int pid;

	if (!wait_phase(w->hs, PHASE_READY, &w->stop))
		return NULL;
	pid = atomic_load(&w->hs->pid);
	if (watch_read(w, pid, true) < 0)
		return NULL;
	start = now();
	atomic_store(&w->hs->phase, PHASE_GO);
	while (atomic_load(&w->hs->phase) != PHASE_DONE) {
		int running = watch_read(w, pid, false);

		if (running < 0 || atomic_load(&w->stop))
			return NULL;
		/* the child may have finished between the read and this check: not counted */
		if (atomic_load(&w->hs->phase) != PHASE_GO)
			break;
		w->samples++;
		if (running > w->max_running)
			w->max_running = running;
		pause_ns(WATCH_PERIOD_NS);
	}
	if (watch_read(w, pid, false) < 0)
		return NULL;
	w->wall = now() - start;
	atomic_store(&w->hs->phase, PHASE_SEEN);
	for (int i = 0; i < w->n_threads; i++) {
		double used = (double)(w->t[i].last - w->t[i].base) * tick;

		w->busy += used > WATCH_BUSY_FRACTION * w->wall;
		if (used > w->busiest)
			w->busiest = used;
	}
	w->complete = true;
	return NULL;
}

/* In the child: one large product after another for WORK_SECONDS. */
static int sgemm_work(struct cell_result *r)
{
	size_t count = (size_t)SGEMM_SIZE * SGEMM_SIZE;
	float *a = malloc(count * sizeof(float)), *b = malloc(count * sizeof(float));
	float *c = malloc(count * sizeof(float));
	double start = now();
	int products = 0;

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
	do {
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, SGEMM_SIZE, SGEMM_SIZE,
			    SGEMM_SIZE, 1.0f, a, SGEMM_SIZE, b, SGEMM_SIZE, 0.0f, c, SGEMM_SIZE);
		products++;
	} while (now() - start < WORK_SECONDS);
	free(a);
	free(b);
	free(c);
	return result_metric(r, "products", products, "");
}

static void *spin(void *arg)
{
	double until = *(const double *)arg;
	volatile double x = 1;

	while (now() < until)
		x = x * 1.0000001 + 1e-9;
	return NULL;
}

/*
 * In the child: the control. Spins `spinners` threads of its own beside the calling one
 * for WORK_SECONDS, whatever thread count it was given: what an oversubscribing variant
 * would do.
 */
static int spin_work(int spinners)
{
	double until = now() + WORK_SECONDS;
	pthread_t t[8];
	int started = 0;

	while (started < spinners && started < 8 && !pthread_create(&t[started], NULL, spin, &until))
		started++;
	spin(&until);
	while (started)
		pthread_join(t[--started], NULL);
	return 0;
}

/* The runner child's function: pid and start to the parent, the work, the end. */
static int watched_fn(void *arg, struct cell_result *r)
{
	const struct watched *w = arg;
	int ret;

	atomic_store(&w->hs->pid, (int)getpid());
	atomic_store(&w->hs->phase, PHASE_READY);
	if (!wait_phase(w->hs, PHASE_GO, NULL))
		return -ETIMEDOUT;
	if (w->cell)
		ret = w->cell->task->run(w->cell, r);
	else if (w->spinners)
		ret = spin_work(w->spinners);
	else
		ret = sgemm_work(r);
	atomic_store(&w->hs->phase, PHASE_DONE);
	if (!wait_phase(w->hs, PHASE_SEEN, NULL))
		return -ETIMEDOUT;
	return ret;
}

/*
 * Runs a work (cell's task, or with cell NULL the control with `spinners`, or the sgemm
 * when that is 0) in a runner child with `threads` threads while a watcher thread of this
 * process reads the child's threads; fills w and prints what it saw under `name`. A child
 * that failed, or a window not watched whole, fails the test.
 */
static void watch_child(struct watch *w, const char *name, const struct cell *cell,
			int spinners, int threads)
{
	static const struct runner_limits limits = { 120, 0 };
	struct handshake *hs = mmap(NULL, sizeof(*hs), PROT_READ | PROT_WRITE,
				    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct watched what = { hs, cell, spinners };
	struct runner_outcome out;
	struct cell_result r;
	pthread_t watcher;

	assert_true(hs != MAP_FAILED);
	atomic_init(&hs->pid, 0);
	atomic_init(&hs->phase, PHASE_STARTING);
	memset(w, 0, sizeof(*w));
	w->hs = hs;
	atomic_init(&w->stop, false);
	assert_int_equal(pthread_create(&watcher, NULL, watch_main, w), 0);
	assert_int_equal(runner_call(watched_fn, &what, threads, &limits, &r, &out), 0);
	atomic_store(&w->stop, true);
	pthread_join(watcher, NULL);
	print_message("%-9s %d thread%s: %d busy (busiest %.2f s CPU), at most %d running, "
		      "%d threads, %d reads over %.2f s\n", name, threads, threads > 1 ? "s" : "",
		      w->busy, w->busiest, w->max_running, w->n_threads, w->samples, w->wall);
	if (r.status != CELL_OK)
		fail_msg("%s at %d threads: status %d (%s)", name, threads, r.status, r.reason);
	result_release(&r);
	munmap(hs, sizeof(*hs));
	assert_true(w->complete);
	assert_false(w->overflow);
	/* a watched window of a few hundred reads; fewer than this and it saw little */
	assert_true(w->samples >= 20);
}

/* Fails unless w saw at most `threads` busy threads and at most `threads` running at once. */
static void assert_within(const struct watch *w, const char *name, int threads)
{
	if (w->busy > threads || w->max_running > threads)
		fail_msg("%s at %d threads: %d threads busy, up to %d running at once", name,
			 threads, w->busy, w->max_running);
}

/*
 * The property is the plain build's: in the AddressSanitizer build (CI's sanitize stage)
 * a runner child starting OpenBLAS's OpenMP team, forked from this process while its
 * watcher thread lives, hung once until its time limit. That is the sanitizer's fork and
 * thread bookkeeping, not a variant's threads, and it says nothing of memory safety, which
 * is what that build is for: there these tests skip.
 */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif

static void skip_when_sanitized(void)
{
#ifdef SANITIZED
	print_message("skipped: AddressSanitizer build\n");
	skip();
#endif
}

/* The thread counts to check: 1, 2, and the usable CPUs when there are more. */
static int thread_counts(int counts[3])
{
	int usable = environment_usable_cpus(), n = 0;

	counts[n++] = 1;
	counts[n++] = 2;
	if (usable > 2)
		counts[n++] = usable;
	return n;
}

/* Checks the bound for a speed cell of the named variant at each thread count. */
static void check_cell(const char *variant, enum attn_pattern pattern, int heads, int n)
{
	const struct variant_ops *v = variant_find(variant);
	int counts[3], k = thread_counts(counts);

	assert_non_null(v);
	for (int i = 0; i < k; i++) {
		struct cell c = cell_make(v, "speed", pattern, n, n);
		struct watch w;

		c.batch = 1;
		c.heads = heads;
		c.kv_heads = heads;
		c.d = 64;
		c.seed = 7;
		c.threads = counts[i];
		/* one warm-up call, then calls until WORK_SECONDS, as a short timed cell */
		c.measure = (struct measure_opts){ 1, 2, WORK_SECONDS, 1000, 0 };
		watch_child(&w, variant, &c, 0, c.threads);
		assert_within(&w, variant, c.threads);
	}
}

static void test_the_watcher_sees_a_child_that_oversubscribes(void **state)
{
	struct watch w;

	(void)state;
	skip_when_sanitized();
	/* three spinning threads in a child given one: both counts must go past 1 */
	watch_child(&w, "control", NULL, 2, 1);
	assert_true(w.max_running > 1);
	/*
	 * Busy needs CPU, which a machine busy at a higher priority may all but deny a
	 * niced test (then each spinner's share may fall under the threshold): checked
	 * when the busiest spinner ran for a tenth of the wall time, as a shared core gives.
	 */
	if (w.busiest > 0.1 * w.wall)
		assert_true(w.busy > 1);
}

static void test_a_large_sgemm_stays_within_the_thread_count(void **state)
{
	int counts[3], k = thread_counts(counts);

	(void)state;
	skip_when_sanitized();
	for (int i = 0; i < k; i++) {
		struct watch w;

		watch_child(&w, "sgemm", NULL, 0, counts[i]);
		assert_within(&w, "sgemm", counts[i]);
		/* and OpenBLAS did run a team: threads_set() reached it */
		if (counts[i] > 1 && w.max_running < 2)
			fail_msg("sgemm at %d threads never ran on more than one", counts[i]);
	}
}

static void test_vanilla_stays_within_the_thread_count(void **state)
{
	(void)state;
	skip_when_sanitized();
	check_cell("vanilla", ATTN_NS, 2, 1024);
}

static void test_flash_stays_within_the_thread_count(void **state)
{
	(void)state;
	skip_when_sanitized();
	check_cell("flash", ATTN_NS, 2, 1024);
}

static void test_lightning_stays_within_the_thread_count(void **state)
{
	(void)state;
	skip_when_sanitized();
	check_cell("lightning", ATTN_CS, 4, 2048);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_watcher_sees_a_child_that_oversubscribes),
		cmocka_unit_test(test_a_large_sgemm_stays_within_the_thread_count),
		cmocka_unit_test(test_vanilla_stays_within_the_thread_count),
		cmocka_unit_test(test_flash_stays_within_the_thread_count),
		cmocka_unit_test(test_lightning_stays_within_the_thread_count),
	};

	(void)argc;
	/* OpenMP waits passively in every cell the program runs: so here (may exec again) */
	environment_settle(argv);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
