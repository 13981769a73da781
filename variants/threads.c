/*
 * threads.c - keeps the OpenMP and OpenBLAS pools at the same size.
 */
#include "threads.h"

#include <cblas.h>
#include <omp.h>
#include <unistd.h>

void threads_set(int n)
{
	omp_set_num_threads(n);
	openblas_set_num_threads(n);
}

int threads_get(void)
{
	return omp_get_max_threads();
}

/* openblas_get_parallel(): 0 sequential build, 1 pthreads, 2 OpenMP. */
#define OPENBLAS_OPENMP 2

int blas_serial_begin(void)
{
	int saved;

	/*
	 * The OpenMP build already runs BLAS single-threaded inside a parallel region, and
	 * its openblas_set_num_threads() would shrink our own parallel regions too.
	 */
	if (openblas_get_parallel() == OPENBLAS_OPENMP)
		return -1;
	saved = openblas_get_num_threads();
	openblas_set_num_threads(1);
	return saved;
}

void blas_serial_end(int saved)
{
	if (saved > 0)
		openblas_set_num_threads(saved);
}

int threads_online(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)n : 1;
}
