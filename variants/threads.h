/*
 * threads.h - one thread count for OpenMP and OpenBLAS.
 *
 * A cell runs with a fixed count (SPEC section 5). Kernels that call BLAS from inside
 * their own parallel region switch BLAS to one thread around it, so the two pools never
 * oversubscribe the cores.
 */
#ifndef ATTNBENCH_THREADS_H
#define ATTNBENCH_THREADS_H

/* Sets the OpenMP and OpenBLAS thread counts to n (n >= 1). */
void threads_set(int n);
/* The count last set (or the OpenMP default). */
int threads_get(void);
/* Makes BLAS calls single-threaded; returns what to pass to blas_serial_end(). */
int blas_serial_begin(void);
void blas_serial_end(int saved);
/* Number of online processors. */
int threads_online(void);

#endif
