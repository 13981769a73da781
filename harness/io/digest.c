/*
 * digest.c - SHA-256 of a file or of bytes in memory (see the header).
 */
#include "digest.h"

#include <errno.h>
#include <nettle/sha2.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

static void to_hex(struct sha256_ctx *ctx, char hex[SHA256_HEX_LEN])
{
	uint8_t digest[SHA256_DIGEST_SIZE];

	sha256_digest(ctx, sizeof(digest), digest);
	for (int i = 0; i < SHA256_DIGEST_SIZE; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}

void digest_sha256_bytes(const void *bytes, size_t len, char hex[SHA256_HEX_LEN])
{
	struct sha256_ctx ctx;

	sha256_init(&ctx);
	sha256_update(&ctx, len, bytes);
	to_hex(&ctx, hex);
}

int digest_sha256_fd(int fd, char hex[SHA256_HEX_LEN])
{
	uint8_t buf[65536];
	struct sha256_ctx ctx;
	off_t at = 0;
	ssize_t got;

	sha256_init(&ctx);
	while ((got = pread(fd, buf, sizeof(buf), at)) != 0) {
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		sha256_update(&ctx, (size_t)got, buf);
		at += got;
	}
	to_hex(&ctx, hex);
	return 0;
}
