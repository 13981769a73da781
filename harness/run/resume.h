/*
 * resume.h - finishing a run that stopped: which run, with which command, and which of
 * its planned cells it still lacks.
 *
 * A run stores its command line (runs.arguments, a JSON array) and its driver (runs.driver:
 * boot, pid, start time). `run --resume` plans the stored command again and runs into the
 * same run only the cells it has no finished result for, so the run ends with exactly the
 * cells of an uninterrupted one: none repeated, none missing. A cell is finished when its
 * status is not ok (a crash is a result), or when it is untimed, or when a timed cell has
 * all its planned rounds and no majority disagreement left to measure; a timed cell cut
 * off between rounds is deleted and measured again from its first round.
 */
#ifndef ATTNBENCH_RESUME_H
#define ATTNBENCH_RESUME_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "task.h"

/* The most arguments a stored command line may have. */
#define RESUME_MAX_ARGS 256

/* A run to resume and the command line that started it. */
struct resume_target {
	int64_t run;
	int rounds;			/* its planned rounds */
	int argc;
	char *argv[RESUME_MAX_ARGS + 1];	/* malloc()ed, argv[argc] NULL */
	size_t done;			/* planned cells it has a finished result for */
	size_t failed;			/* of those, crashed, failed, timed out, ... */
};

/*
 * Finds the run to resume: `run` when not 0, else the newest run that is not complete
 * (A/A runs aside). Refuses a complete run, a run whose driver still runs on this
 * machine, one started on another machine that may still be running there, and a run
 * without a stored command line (made before schema 4 or imported), each -EINVAL with a
 * reason in why; -ENOENT when there is no such run. Fills t (resume_release() it).
 */
int resume_find(struct store *st, int64_t run, struct resume_target *t, char *why,
		size_t len);

void resume_release(struct resume_target *t);

/*
 * Drops from cells[0..*count) those the run has a finished result for (see above), keeping
 * the order of the rest, and deletes from the run the timed cells that did not finish
 * their rounds. t->done gets the number dropped, t->failed how many of them did not end
 * ok or unsupported. 0, -EIO or -ENOMEM with a reason in why.
 */
int resume_remaining(struct store *st, struct resume_target *t, struct cell *cells,
		     size_t *count, char *why, size_t len);

/* The run is 'running' again, with driver (provenance.h) as its driver. 0 or -EIO. */
int resume_take_over(struct store *st, int64_t run, const char *driver);

#endif
