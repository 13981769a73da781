/*
 * plot.h - figures of a run (SPEC section 7, `plot`): the store's results view to gnuplot
 * data files and scripts, then gnuplot run as an external program.
 *
 * Every figure NAME is written as NAME.dat (the numbers, one block per variant), NAME.gp
 * (the script) and NAME.pdf/.png/.svg, beside style.gp, which every script loads: the
 * palette, one line style per variant (its index in the registry, so a variant looks the
 * same in every figure), fonts, the figure size and the list of formats. Editing style.gp
 * and running `gnuplot NAME.gp` in the directory restyles a figure.
 */
#ifndef ATTNBENCH_PLOT_H
#define ATTNBENCH_PLOT_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

enum plot_format {
	PLOT_PDF = 1 << 0,	/* pdfcairo: vector, for papers */
	PLOT_PNG = 1 << 1,	/* pngcairo at 300 dpi */
	PLOT_SVG = 1 << 2,	/* svg */
};

#define PLOT_ALL_FORMATS (PLOT_PDF | PLOT_PNG | PLOT_SVG)

struct plot_options {
	int64_t run_id;		/* the run to plot */
	const char *out_dir;	/* created (with its parents) when missing */
	unsigned int formats;	/* enum plot_format bits; 0 means all */
	const char *gnuplot;	/* the program, from plot_find_gnuplot() */
};

/*
 * Parses a comma-separated list of "pdf", "png", "svg" into enum plot_format bits.
 * Returns 0, or -EINVAL with the offending word copied into bad (NUL-terminated).
 */
int plot_parse_formats(const char *list, unsigned int *formats, char *bad, size_t bad_len);

/* Finds gnuplot on PATH; 0 with its path in buf, or -ENOENT. */
int plot_find_gnuplot(char *buf, size_t len);

/* The newest run in the store; 0, or -ENOENT when there is none, -EIO on trouble. */
int plot_latest_run(struct store *s, int64_t *run_id);

/*
 * Writes every figure of the run. *figures gets the number of figures written.
 * Returns 0; -ENOENT when the run does not exist; -ENODATA when it has no cell to plot
 * (nothing is written then); -EIO when a file cannot be written; -EPROTO when gnuplot
 * fails. why gets a one-line reason.
 */
int plot_run(struct store *s, const struct plot_options *o, int *figures, char *why,
	     size_t why_len);

#endif
