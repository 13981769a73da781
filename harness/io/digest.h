/*
 * digest.h - SHA-256 of a file's bytes (Nettle), for provenance: what a run loaded, a
 * plugin or a user's tensors, identified by content, not by name.
 */
#ifndef ATTNBENCH_DIGEST_H
#define ATTNBENCH_DIGEST_H

#define SHA256_HEX_LEN 65	/* 64 hex digits and the NUL */

/*
 * The SHA-256 of everything the open file fd holds, from its first byte (read with
 * pread(), so fd's offset is left alone), as lowercase hex. Returns 0, or -errno.
 */
int digest_sha256_fd(int fd, char hex[SHA256_HEX_LEN]);

#endif
