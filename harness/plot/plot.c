/*
 * plot.c - plot_run(): the checks, the run's style.gp, then every figure of every pattern
 * in a fixed order, all written in a staging folder and moved into place at the end; and the parsing of --format and --size. The figures are listed in
 * plot.h; plot-internal.h says which file holds what, and where a new figure goes.
 */
#include "plot-internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "variant.h"

int plot_parse_formats(const char *list, unsigned int *formats, char *bad, size_t bad_len)
{
	static const struct {
		const char *name;
		unsigned int bit;
	} names[] = {
		{ "pdf", PLOT_PDF }, { "png", PLOT_PNG }, { "svg", PLOT_SVG },
	};
	unsigned int bits = 0;
	const char *p = list;

	for (;;) {
		size_t len = strcspn(p, ",");
		unsigned int bit = 0;

		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (len == strlen(names[i].name) && !strncmp(p, names[i].name, len))
				bit = names[i].bit;
		if (!bit) {
			if (bad && bad_len)
				snprintf(bad, bad_len, "%.*s", (int)len, p);
			return -EINVAL;
		}
		bits |= bit;
		if (!p[len])
			break;
		p += len + 1;
	}
	*formats = bits;
	return 0;
}

int plot_parse_size(const char *word, enum plot_size *size)
{
	if (!strcmp(word, "page"))
		*size = PLOT_PAGE;
	else if (!strcmp(word, "column"))
		*size = PLOT_COLUMN;
	else
		return -EINVAL;
	return 0;
}

int plot_run(struct store *s, const struct plot_options *o, int *figures, char *why,
	     size_t why_len)
{
	struct plot_options opts = *o;
	struct plot_ctx c = { .db = store_db(s), .o = &opts, .why = why, .why_len = why_len };
	int rc;

	if (!opts.formats)
		opts.formats = PLOT_ALL_FORMATS;
	c.width = opts.size == PLOT_COLUMN ? WIDTH_COLUMN_IN : WIDTH_PAGE_IN;
	*figures = 0;
	rc = plot_check_run(&c);
	if (!rc)
		rc = plot_load_variants(&c);
	if (!rc)
		rc = plot_resolve_choices(&c);
	if (!rc)
		rc = plot_find_templates(&c);
	if (rc)
		goto out;
	rc = plot_mkdir_p(opts.out_dir);
	if (rc) {
		rc = why_fail(rc, why, why_len, "cannot create '%s': %s", opts.out_dir,
			      strerror(-rc));
		goto out;
	}
	rc = plot_stage_begin(&c);
	if (!rc)
		rc = plot_write_style(&c);
	for (int p = 0; !rc && p < ATTN_PATTERN_COUNT; p++) {
		const char *pattern = pattern_name(p);
		bool self = pattern_is_self(p);

		rc = figure_speed(&c, pattern, false);
		if (!rc)
			rc = figure_speed(&c, pattern, true);
		if (!rc)
			rc = figure_speedup(&c, pattern);
		if (!rc)
			rc = figure_efficiency(&c, pattern);
		if (!rc)
			rc = figure_pareto(&c, pattern);
		if (!rc)
			rc = figure_roofline(&c, pattern);
		if (!rc)
			rc = figure_fidelity(&c, pattern, self);
		if (!rc)
			rc = figure_passkey(&c, pattern, self);
		for (int packed = 0; packed < 2 && !rc; packed++) {
			rc = figure_recall(&c, pattern, packed);
			if (!rc)
				rc = figure_recall_state(&c, pattern, packed);
		}
	}
	if (!rc)
		rc = plot_stage_commit(&c);
	plot_stage_abort(&c);
	*figures = rc ? 0 : c.figures;
out:
	free(c.style_text);
	plot_template_release(&c.frame);
	return rc;
}
