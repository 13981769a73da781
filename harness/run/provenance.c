/*
 * provenance.c - reads the build, the machine and its state at the start of a run.
 */
#include "provenance.h"

#include <cblas.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "build-info.h"
#include "environment.h"
#include "threads.h"

static const char *const field_names[PROV_COUNT] = {
	[PROV_HARNESS_VERSION] = "harness_version",
	[PROV_GIT_COMMIT] = "git_commit",
	[PROV_COMPILER] = "compiler",
	[PROV_CFLAGS] = "cflags",
	[PROV_CPU_MODEL] = "cpu_model",
	[PROV_CPU_FLAGS] = "cpu_flags",
	[PROV_CORES] = "cores",
	[PROV_THREADS] = "threads",
	[PROV_BLAS_CONFIG] = "blas_config",
	[PROV_SQLITE_VERSION] = "sqlite_version",
	[PROV_KERNEL] = "kernel",
	[PROV_HOSTNAME] = "hostname",
	[PROV_GOVERNOR] = "governor",
	[PROV_LOAD_AVG] = "load_avg",
	[PROV_SMT] = "smt",
	[PROV_ASLR] = "aslr",
	[PROV_WARNINGS] = "warnings",
	[PROV_SEED] = "seed",
	[PROV_SUITE] = "suite",
	[PROV_COMMAND] = "command",
	[PROV_ROUNDS] = "rounds",
	[PROV_OMP_WAIT_POLICY] = "omp_wait_policy",
	[PROV_DRIVER] = "driver",
	[PROV_ARGUMENTS] = "arguments",
};

const char *provenance_name(enum provenance_field f)
{
	return field_names[f];
}

/* First line of a small system file, without its newline; NULL if unreadable. */
static char *read_line(const char *path)
{
	char buf[512];
	FILE *f = fopen(path, "r");

	if (!f)
		return NULL;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return strdup(buf);
}

/* Value of the first "key : value" line of /proc/cpuinfo with this key. */
static char *cpuinfo(const char *key)
{
	size_t len = strlen(key), cap = 0;
	char *line = NULL, *value = NULL;
	FILE *f = fopen("/proc/cpuinfo", "r");

	if (!f)
		return NULL;
	while (!value && getline(&line, &cap, f) > 0) {
		char *colon = strchr(line, ':');

		if (strncmp(line, key, len) || !colon || strspn(line + len, " \t") !=
		    (size_t)(colon - line - len))
			continue;
		colon += 1 + strspn(colon + 1, " ");
		colon[strcspn(colon, "\n")] = '\0';
		value = strdup(colon);
	}
	free(line);
	fclose(f);
	return value;
}

static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *format(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/* Appends "; text" (or text) to a warnings string. */
static void warn(char **warnings, const char *text)
{
	char *joined = *warnings ? format("%s; %s", *warnings, text) : strdup(text);

	if (joined) {
		free(*warnings);
		*warnings = joined;
	}
}

/* Whether a /proc/cpuinfo flags line holds this flag as a whole word. */
static bool has_flag(const char *flags, const char *flag)
{
	size_t len = strlen(flag);

	for (const char *at = flags; at && (at = strstr(at, flag)); at += len)
		if ((at == flags || at[-1] == ' ') && (at[len] == ' ' || at[len] == '\0'))
			return true;
	return false;
}

/*
 * Every peak_fraction of a run divides by OpenBLAS's SGEMM rate, which is this machine's
 * compute limit only if OpenBLAS runs kernels as wide as the CPU's vectors. It may not:
 * Debian's 0.3.21 takes a Zen 5 for a Haswell, and its SGEMM then reaches half of what
 * the CPU (and flash) can do. The cores below are the ones with AVX-512 kernels.
 */
static void check_blas_width(char **warnings, const char *cpu_flags)
{
	static const char *const avx512_cores[] = { "SkylakeX", "Cooperlake",
						    "SapphireRapids" };
	const char *core = openblas_get_corename();
	char *text;

	if (!has_flag(cpu_flags, "avx512f") || !core)
		return;
	for (size_t i = 0; i < sizeof(avx512_cores) / sizeof(avx512_cores[0]); i++)
		if (!strcasecmp(core, avx512_cores[i]))
			return;
	text = format("OpenBLAS runs its %s kernels, without AVX-512, on a CPU that has it: "
		      "the SGEMM peak understates this machine and peak_fraction may exceed 1"
		      "%s", core, strstr(openblas_get_config(), "DYNAMIC_ARCH") ?
		      " (OPENBLAS_CORETYPE=SkylakeX selects its AVX-512 kernels)" : "");
	if (text)
		warn(warnings, text);
	free(text);
}

static void collect_state(struct provenance *p)
{
	char **v = p->values, *loadavg = read_line("/proc/loadavg"), *warnings = NULL;
	int running = 0, total = 0;
	double load = 0;

	v[PROV_GOVERNOR] = read_line("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor");
	if (!v[PROV_GOVERNOR])
		v[PROV_GOVERNOR] = strdup("unavailable");
	else if (strcmp(v[PROV_GOVERNOR], "performance"))
		warn(&warnings, "CPU frequency governor is not 'performance'");

	if (loadavg && sscanf(loadavg, "%lf %*f %*f %d/%d", &load, &running, &total) >= 1) {
		v[PROV_LOAD_AVG] = format("%.2f", load);
		if (load > 0.5) {
			char *text = format("load average %.2f at start", load);

			if (text)
				warn(&warnings, text);
			free(text);
		}
		/* This process is one of the running ones. */
		if (running > 1) {
			char *text = format("%d other runnable processes at start", running - 1);

			if (text)
				warn(&warnings, text);
			free(text);
		}
	}
	free(loadavg);

	v[PROV_SMT] = read_line("/sys/devices/system/cpu/smt/active");
	if (!v[PROV_SMT])
		v[PROV_SMT] = strdup("unknown");
	else if (!strcmp(v[PROV_SMT], "1"))
		warn(&warnings, "SMT is on: sibling threads share a core");

	v[PROV_ASLR] = read_line("/proc/sys/kernel/randomize_va_space");
	if (v[PROV_ASLR] && strcmp(v[PROV_ASLR], "0"))
		warn(&warnings, "ASLR is on: layouts differ between cells");
	if (!environment_waits_passively()) {
		char *text = format("OpenMP waits actively (%s=%s): a team sharing its cores "
				    "with other work stalls at every barrier",
				    ENVIRONMENT_WAIT_POLICY, getenv(ENVIRONMENT_WAIT_POLICY) ?
				    getenv(ENVIRONMENT_WAIT_POLICY) : "unset");

		if (text)
			warn(&warnings, text);
		free(text);
	}
	check_blas_width(&warnings, v[PROV_CPU_FLAGS]);
	v[PROV_WARNINGS] = warnings;
}

/*
 * argv[0..argc) as a JSON array of strings: '"' and '\\' escaped, control characters as
 * \u00XX, everything else (UTF-8 included) as it is. NULL without memory.
 */
static char *json_strings(int argc, char **argv)
{
	size_t len = 3;
	char *text, *at;

	for (int i = 0; i < argc; i++)
		len += 6 * strlen(argv[i]) + 3;
	text = malloc(len);
	if (!text)
		return NULL;
	at = text;
	*at++ = '[';
	for (int i = 0; i < argc; i++) {
		if (i)
			*at++ = ',';
		*at++ = '"';
		for (const unsigned char *c = (const unsigned char *)argv[i]; *c; c++)
			if (*c == '"' || *c == '\\') {
				*at++ = '\\';
				*at++ = (char)*c;
			} else if (*c < 32 || *c == 127) {
				at += sprintf(at, "\\u%04x", *c);
			} else {
				*at++ = (char)*c;
			}
		*at++ = '"';
	}
	*at++ = ']';
	*at = '\0';
	return text;
}

/* Field 22 of /proc/PID/stat: the process's start, in clock ticks after boot; 0 if none. */
static unsigned long long start_ticks(long pid)
{
	char path[64], line[1024], *close;
	unsigned long long ticks = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	/* the command name (field 2) may hold spaces and parentheses: skip to its last ')' */
	if (fgets(line, sizeof(line), f) && (close = strrchr(line, ')')) &&
	    sscanf(close + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d"
		   " %*d %*d %*d %*d %llu", &ticks) != 1)
		ticks = 0;
	fclose(f);
	return ticks;
}

/* BOOT_ID/PID/START_TICKS of process pid, or NULL when /proc cannot say. */
static char *driver_of(long pid)
{
	char *boot = read_line("/proc/sys/kernel/random/boot_id"), *text;
	unsigned long long ticks = start_ticks(pid);

	text = boot && ticks ? format("%s/%ld/%llu", boot, pid, ticks) : NULL;
	free(boot);
	return text;
}

int provenance_driver_alive(const char *driver)
{
	char boot[64], *now;
	long pid;
	unsigned long long ticks;
	int alive;

	if (!driver || sscanf(driver, "%63[^/]/%ld/%llu", boot, &pid, &ticks) != 3 || pid <= 0)
		return -1;
	now = read_line("/proc/sys/kernel/random/boot_id");
	if (!now)
		return -1;
	alive = !strcmp(now, boot) && start_ticks(pid) == ticks;
	free(now);
	return alive;
}

int provenance_collect(struct provenance *p, int threads, unsigned long long seed,
		       int rounds, const char *suite, int argc, char **argv)
{
	char **v = p->values, host[256] = "";
	struct utsname uts;
	size_t len = 1;

	memset(p, 0, sizeof(*p));
	v[PROV_HARNESS_VERSION] = strdup(ATTNBENCH_VERSION);
	v[PROV_GIT_COMMIT] = strdup(ATTNBENCH_GIT_COMMIT);
	v[PROV_COMPILER] = strdup(ATTNBENCH_COMPILER);
	v[PROV_CFLAGS] = strdup(ATTNBENCH_CFLAGS);
	v[PROV_CPU_MODEL] = cpuinfo("model name");
	v[PROV_CPU_FLAGS] = cpuinfo("flags");
	v[PROV_CORES] = format("%d", threads_online());
	v[PROV_THREADS] = format("%d", threads);
	v[PROV_BLAS_CONFIG] = format("%s (core %s)", openblas_get_config(),
				     openblas_get_corename());
	v[PROV_SQLITE_VERSION] = strdup(sqlite3_libversion());
	if (!uname(&uts))
		v[PROV_KERNEL] = format("%s %s %s", uts.sysname, uts.release, uts.machine);
	if (!gethostname(host, sizeof(host) - 1))
		v[PROV_HOSTNAME] = strdup(host);
	v[PROV_SEED] = format("%llu", seed);
	v[PROV_SUITE] = strdup(suite);
	v[PROV_ROUNDS] = format("%d", rounds);
	v[PROV_DRIVER] = driver_of(getpid());
	v[PROV_ARGUMENTS] = json_strings(argc, argv);
	v[PROV_OMP_WAIT_POLICY] = strdup(getenv(ENVIRONMENT_WAIT_POLICY) ?
					 getenv(ENVIRONMENT_WAIT_POLICY) : "unset");

	for (int i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	v[PROV_COMMAND] = calloc(1, len);
	for (int i = 0; v[PROV_COMMAND] && i < argc; i++) {
		if (i)
			strcat(v[PROV_COMMAND], " ");
		strcat(v[PROV_COMMAND], argv[i]);
	}
	collect_state(p);

	/* Fields that must exist; the system ones may be missing on odd machines. */
	if (!v[PROV_HARNESS_VERSION] || !v[PROV_COMMAND] || !v[PROV_SEED] || !v[PROV_SUITE]) {
		provenance_release(p);
		return -ENOMEM;
	}
	return 0;
}

void provenance_release(struct provenance *p)
{
	for (int i = 0; i < PROV_COUNT; i++) {
		free(p->values[i]);
		p->values[i] = NULL;
	}
}
