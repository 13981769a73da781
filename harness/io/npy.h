/*
 * npy.h - reading and writing NumPy .npy arrays (format versions 1.0, 2.0 and 3.0).
 *
 * Reads little-endian float32 ('<f4') and float64 ('<f8') arrays in C order and converts
 * them to float32; writes float32 C-order version 1.0 files. Everything else (Fortran
 * order, other dtypes, big-endian, object arrays, truncated data, absurd shapes) is
 * refused: the header is parsed strictly, never evaluated.
 */
#ifndef ATTNBENCH_NPY_H
#define ATTNBENCH_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "digest.h"

#define NPY_MAX_DIMS 8

struct npy_array {
	int ndim;
	int64_t shape[NPY_MAX_DIMS];
	size_t count;		/* product of shape */
	float *data;		/* count floats, from malloc() */
	/* of the file's bytes, as read (npy_read()); "" when not a regular file (a pipe) */
	char sha256[SHA256_HEX_LEN];
};

/*
 * Loads `path` into a (zeroed first, so npy_release(a) is always safe after). Returns 0;
 * -ENOENT, -EACCES, -EISDIR, -EIO, ... when the file cannot be read; -ENOMEM; -EINVAL for
 * a malformed or unsupported file. why[why_len] (may be NULL) gets a one-line reason.
 * An empty array still has a non-NULL data pointer.
 */
int npy_read(const char *path, struct npy_array *a, char *why, size_t why_len);
/*
 * Writes prod(shape) floats as float32 .npy, beside path first and renamed into place
 * (outfile.h), so a failed write leaves path as it was; 0, -EINVAL for a bad shape (ndim
 * outside 0..NPY_MAX_DIMS, a negative or huge dimension), -EEXIST when path is an SQLite
 * database, or -errno from the file system.
 */
int npy_write(const char *path, const float *data, int ndim, const int64_t *shape);
/* Frees a's data; a may be reused. */
void npy_release(struct npy_array *a);

#endif
