/*
 * fuzz-npy.c - libFuzzer target for the .npy reader (npy.h): any bytes as a file.
 *
 * npy_read() takes a path, so the input goes into a memfd and is read back through
 * /proc/self/fd: a regular file of known size, as a file on disk would be, without a
 * disk write per input.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct npy_array a;
	char path[64], why[256];
	size_t count = 1, done = 0;
	volatile float sum = 0;
	int fd;

	fd = memfd_create("fuzz-npy", 0);
	if (fd < 0)
		return -1;
	while (done < size) {
		ssize_t n = write(fd, data + done, size - done);

		if (n <= 0)
			goto out_close;
		done += (size_t)n;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (!npy_read(path, &a, why, sizeof(why))) {
		/* what the header promised is what arrived: touch every float */
		for (int i = 0; i < a.ndim; i++)
			count *= (size_t)a.shape[i];
		assert(count == a.count && a.data);
		for (size_t i = 0; i < a.count; i++)
			sum += a.data[i];
	}
	(void)sum;
	npy_release(&a);
out_close:
	close(fd);
	return 0;
}
