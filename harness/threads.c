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

int blas_serial_begin(void)
{
	int saved = openblas_get_num_threads();

	openblas_set_num_threads(1);
	return saved;
}

void blas_serial_end(int saved)
{
	openblas_set_num_threads(saved);
}

int threads_online(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)n : 1;
}
