/*
 * plot.h - figures of a run (SPEC section 7, `plot`): the store's results to gnuplot data
 * files and scripts, then gnuplot run as an external program.
 *
 * The look of every figure is in the plots/ folder of the source tree (installed in
 * <prefix>/share/attnbench/plots; $ATTNBENCH_PLOTS overrides both): style.gp (palette,
 * font and font size, line styles, terminals) and one template per figure kind
 * (KIND.gp, sections of gnuplot text with {{placeholders}}; figure.gp holds the sections
 * all figures share). Every figure NAME is written as NAME.dat (the numbers, in blocks),
 * NAME.gp (the script: its template with the computed numbers filled in) and
 * NAME.pdf/.png/.svg, beside style.gp, which every script loads: plots/style.gp after the
 * list of formats and the figure width, then one line style per variant of the run (its
 * index in the registry, so a variant looks the same in every figure). Editing that
 * style.gp and running `gnuplot NAME.gp` in the directory restyles a figure; editing
 * plots/style.gp restyles every figure drawn after. Figures, per pattern P of the run:
 *
 *   latency-P           speed: median latency vs N, log-log, 95% interval of the median
 *   memory-P            speed: peak workspace vs N, log-log
 *   speedup-P           speed: baseline latency / variant latency vs N, with the 95%
 *                       bootstrap interval of the ratio of medians of the stored samples
 *   efficiency-P        run_metrics: efficiency length in time and memory against the
 *                       baseline (measured crossing with its interval, CAB's fit, "none"),
 *                       and the log-log slope of latency when stored
 *   pareto-P            mean recall accuracy (or passkey accuracy when the run has no
 *                       recall) against median latency at one length, Pareto front
 *   roofline-P          speed: achieved GFLOP/s against arithmetic intensity (FLOP per
 *                       byte moved), a point per variant at its largest N, under the
 *                       compute roof (SGEMM rate) and memory roof (triad bandwidth) of
 *                       the run; only for runs that measured both
 *   fidelity-P          fidelity: relative Frobenius error vs length, a panel per regime
 *   passkey-P           passkey: accuracy by length and needle depth, a panel per variant
 *   recall-P            recall: accuracy vs pairs P, queries far from the pairs (gap > 0)
 *   recall-packed-P     the same with the queries right after the pairs (gap = 0)
 *   recall-state-P      recall: accuracy (mean over P) vs analytic state bytes, a point
 *                       per head dimension d, gap > 0; recall-state-packed-P for gap = 0
 */
#ifndef ATTNBENCH_PLOT_H
#define ATTNBENCH_PLOT_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

enum plot_format {
	PLOT_PDF = 1 << 0,	/* pdfcairo: vector, for papers */
	PLOT_PNG = 1 << 1,	/* pngcairo at 300 dpi, the same layout and text size */
	PLOT_SVG = 1 << 2,	/* svg */
};

#define PLOT_ALL_FORMATS (PLOT_PDF | PLOT_PNG | PLOT_SVG)

/* Figure widths: a two-column paper's full text width, or one of its columns. */
enum plot_size {
	PLOT_PAGE = 0,		/* 7 in wide (the default) */
	PLOT_COLUMN = 1,	/* 3.5 in wide */
};

/* The baseline of speedup-P and efficiency-P when none is given. */
#define PLOT_DEFAULT_BASELINE "vanilla"

struct plot_options {
	int64_t run_id;		/* the run to plot */
	const char *out_dir;	/* created (with its parents) when missing */
	unsigned int formats;	/* enum plot_format bits; 0 means all */
	const char *gnuplot;	/* the program, from plot_find_gnuplot() */
	enum plot_size size;
	/*
	 * The variant speed-ups and efficiency lengths are measured against. NULL means
	 * PLOT_DEFAULT_BASELINE, and those figures are left out when the run lacks it; a
	 * name given here that has no speed cell in the run is an error.
	 */
	const char *baseline;
	/* N of the Pareto front; 0 means the largest speed N of the run. */
	long pareto_length;
};

/*
 * Parses a comma-separated list of "pdf", "png", "svg" into enum plot_format bits.
 * Returns 0, or -EINVAL with the offending word copied into bad (NUL-terminated).
 */
int plot_parse_formats(const char *list, unsigned int *formats, char *bad, size_t bad_len);

/* Parses "column" or "page"; 0 or -EINVAL. */
int plot_parse_size(const char *word, enum plot_size *size);

/* Finds gnuplot on PATH; 0 with its path in buf, or -ENOENT. */
int plot_find_gnuplot(char *buf, size_t len);

/*
 * Writes every figure of the run. *figures gets the number of figures written.
 * Returns 0; -ENOENT when the run does not exist; -ENODATA when it has no cell to plot
 * (nothing is written then); -EINVAL when an explicit baseline or Pareto length is not in
 * the run (nothing is written then either); -ENOENT or -EIO when style.gp or a template
 * cannot be read ("cannot read template 'PATH': ..."; nothing is written when it is
 * style.gp or figure.gp); -EIO when a file cannot be written; -EPROTO when gnuplot fails
 * (on style.gp too); -ENOMEM. why gets a one-line reason.
 */
int plot_run(struct store *s, const struct plot_options *o, int *figures, char *why,
	     size_t why_len);

#endif
