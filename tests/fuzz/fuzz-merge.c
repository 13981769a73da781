/*
 * fuzz-merge.c - libFuzzer target for merge's checks (merge.h, validate.h): any bytes as
 * an input database file. The seeds (merge-seeds.sh) are small attnbench databases (page
 * size 512), so a mutation mostly lands in a stored value or its type, which the
 * validator must refuse or let through whole; what merge_check() accepts is then merged into a fresh in-memory
 * database, which re-checks every row inside its transaction. The file lives in a
 * private temporary folder removed at exit.
 */
#include <fcntl.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "merge.h"
#include "store.h"

static char dir[] = "/tmp/fuzz-merge-XXXXXX";
static char input[64], journal[80], wal[80], shm[80], output[64];

static void remove_files(void)
{
	unlink(input);
	unlink(journal);
	unlink(wal);
	unlink(shm);
	rmdir(dir);
}

/* Writes the bytes as the input file; false when the folder or file cannot be written. */
static bool write_input(const uint8_t *data, size_t size)
{
	int fd;

	if (!input[0]) {
		if (!mkdtemp(dir))
			return false;
		snprintf(input, sizeof(input), "%s/in.db", dir);
		snprintf(journal, sizeof(journal), "%s-journal", input);
		snprintf(wal, sizeof(wal), "%s-wal", input);
		snprintf(shm, sizeof(shm), "%s-shm", input);
		snprintf(output, sizeof(output), "%s/out.db", dir);
		atexit(remove_files);
		/* merge attaches its inputs as read-only URIs */
		sqlite3_config(SQLITE_CONFIG_URI, 1);
	}
	/* nothing of the last input (a hot journal, a WAL) may be read with the next */
	unlink(journal);
	unlink(wal);
	unlink(shm);
	fd = open(input, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return false;
	if (size && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return false;
	}
	close(fd);
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *inputs[] = { input };
	int64_t runs, cells;
	struct store *st;
	char why[1024];

	if (!write_input(data, size))
		abort();
	/* the output does not exist: the check looks at the input alone */
	if (merge_check(output, inputs, 1, why, sizeof(why)))
		return 0;
	if (!store_open(":memory:", 0, &st, why, sizeof(why))) {
		merge_databases(store_db(st), inputs, 1, &runs, &cells, why, sizeof(why));
		store_close(st);
	}
	return 0;
}
