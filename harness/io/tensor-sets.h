/*
 * tensor-sets.h - a user's own Q/K/V from .npy files (run --inputs, eval): the files read
 * by the strict reader, their shapes checked against each other, their SHA-256 kept.
 *
 * A set is three files: Q of shape [B,H,N,d], K and V of shape [B,Hkv,M,d] (Hkv divides
 * H; [H,N,d] and [N,d] are read as B = 1, H = 1), float32 or float64, C order.
 */
#ifndef ATTNBENCH_TENSOR_SETS_H
#define ATTNBENCH_TENSOR_SETS_H

#include <stddef.h>
#include <stdint.h>

#include "npy.h"
#include "task.h"

#define TENSOR_SETS_MAX 16
#define TENSOR_SET_NAME_MAX 64

/* Q, K, V of one set: the arrays as read, their paths, the shape they give. */
struct tensor_files {
	char name[TENSOR_SET_NAME_MAX + 1];	/* letters, digits, '_', '-', '.' */
	char regime[TENSOR_SET_NAME_MAX + 5];	/* "npy:" name: the cells' regime */
	char paths[3][4096];			/* q, k, v as given */
	struct npy_array arrays[3];
	int batch, heads, kv_heads, n, m, d;
	struct tensor_set set;			/* what a cell's task reads */
};

struct tensor_sets {
	struct tensor_files files[TENSOR_SETS_MAX];
	int count;
};

/* The tensor of index 0, 1, 2: "q", "k", "v". */
extern const char *const tensor_names[3];

/*
 * Views an array as [B, H, rows, d] in dims; -EINVAL with why when it has another rank
 * or an empty or huge dimension. what names it in why ("--q 'x.npy'").
 */
int tensor_dims(const struct npy_array *a, const char *what, int64_t dims[4], char *why,
		size_t len);

/* Q against K and V: the same batch and d, Hkv dividing H, K and V alike; or -EINVAL. */
int tensor_shapes_check(const int64_t q[4], const int64_t k[4], const int64_t v[4],
			char *why, size_t len);

/*
 * Reads spec into sets (zeroed first; tensor_sets_release() is safe after any return):
 * either "Q.npy,K.npy,V.npy", one set named after what the three names share, or a
 * folder, one set per NAMEq.npy that has NAMEk.npy and NAMEv.npy beside it (NAME may be
 * empty or end in '_', '-' or '.': "layer3_q.npy" is set "layer3"). Returns 0, -EINVAL
 * (a file refused, shapes that do not fit, no set, too many, a bad name) or -ENOMEM,
 * with why saying which file and what is accepted.
 */
int tensor_sets_load(const char *spec, struct tensor_sets *sets, char *why, size_t len);

void tensor_sets_release(struct tensor_sets *sets);

#endif
