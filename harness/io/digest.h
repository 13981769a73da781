/*
 * digest.h - SHA-256 (Nettle), for provenance: what a run loaded, a plugin or a user's
 * tensors, identified by content, not by name; and a suite's identity, by its cells.
 */
#ifndef ATTNBENCH_DIGEST_H
#define ATTNBENCH_DIGEST_H

#include <stddef.h>

#define SHA256_HEX_LEN 65	/* 64 hex digits and the NUL */

/* The SHA-256 of bytes[0..len), as lowercase hex. */
void digest_sha256_bytes(const void *bytes, size_t len, char hex[SHA256_HEX_LEN]);

/*
 * The SHA-256 of everything the open file fd holds, from its first byte (read with
 * pread(), so fd's offset is left alone), as lowercase hex. Returns 0, or -errno.
 */
int digest_sha256_fd(int fd, char hex[SHA256_HEX_LEN]);

#endif
