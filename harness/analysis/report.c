/*
 * report.c - a run's leaderboards (leaderboard.c), task metrics and efficiency lengths,
 * rendered as text, Markdown or LaTeX tables.
 */
#include "report.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "queries.h"
#include "rounds.h"
#include "variant.h"

static const struct {
	const char *name, *long_name;
} known_patterns[] = {
	{ "ns", "noncausal self" }, { "cs", "causal self" },
	{ "nc", "noncausal cross" }, { "cc", "causal cross" },
};

#define KNOWN_PATTERNS (sizeof(known_patterns) / sizeof(known_patterns[0]))

static const char *pattern_long_name(const char *p)
{
	for (size_t i = 0; i < KNOWN_PATTERNS; i++)
		if (!strcmp(known_patterns[i].name, p))
			return known_patterns[i].long_name;
	return "imported pattern";
}

/* ---- tables ---- */

#define TABLE_MAX_COLS 12
#define CELL_LEN 128

struct column {
	const char *text;	/* heading in text and Markdown */
	const char *latex;	/* heading in LaTeX */
	bool right;		/* numbers are right-aligned */
};

struct table {
	const struct column *cols;
	int n_cols, rows;
	char (*cells)[TABLE_MAX_COLS][CELL_LEN];
};

static char *table_cell(struct table *t, int row, int col)
{
	return t->cells[row][col];
}

static int table_init(struct table *t, const struct column *cols, int n_cols, int rows)
{
	t->cols = cols;
	t->n_cols = n_cols;
	t->rows = rows;
	t->cells = calloc((size_t)rows + 1, sizeof(*t->cells));
	return t->cells ? 0 : -ENOMEM;
}

static void table_release(struct table *t)
{
	free(t->cells);
	t->cells = NULL;
}

/* Columns a UTF-8 string takes on a terminal (continuation bytes take none). */
static size_t display_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

static void pad(FILE *f, const char *s, size_t width, bool right)
{
	size_t w = display_width(s);

	if (right)
		fprintf(f, "%*s%s", (int)(width - w), "", s);
	else
		fprintf(f, "%s%*s", s, (int)(width - w), "");
}

static void table_widths(const struct table *t, size_t *width)
{
	for (int c = 0; c < t->n_cols; c++) {
		width[c] = display_width(t->cols[c].text);
		for (int r = 0; r < t->rows; r++)
			if (display_width(t->cells[r][c]) > width[c])
				width[c] = display_width(t->cells[r][c]);
	}
}

static void render_text(FILE *f, const struct table *t)
{
	size_t width[TABLE_MAX_COLS];

	table_widths(t, width);
	for (int c = 0; c < t->n_cols; c++) {
		fputs(c ? "  " : "", f);
		pad(f, t->cols[c].text, c == t->n_cols - 1 && !t->cols[c].right ? 0 : width[c],
		    t->cols[c].right);
	}
	fputc('\n', f);
	for (int c = 0; c < t->n_cols; c++) {
		fputs(c ? "  " : "", f);
		for (size_t i = 0; i < width[c]; i++)
			fputc('-', f);
	}
	fputc('\n', f);
	for (int r = 0; r < t->rows; r++) {
		for (int c = 0; c < t->n_cols; c++) {
			fputs(c ? "  " : "", f);
			pad(f, t->cells[r][c],
			    c == t->n_cols - 1 && !t->cols[c].right ? 0 : width[c],
			    t->cols[c].right);
		}
		fputc('\n', f);
	}
}

static void render_markdown(FILE *f, const struct table *t)
{
	size_t width[TABLE_MAX_COLS];

	table_widths(t, width);
	for (int c = 0; c < t->n_cols; c++)
		if (width[c] < 3)
			width[c] = 3;	/* room for the alignment row's ":--" */
	fputc('|', f);
	for (int c = 0; c < t->n_cols; c++) {
		fputc(' ', f);
		pad(f, t->cols[c].text, width[c], false);
		fputs(" |", f);
	}
	fputs("\n|", f);
	for (int c = 0; c < t->n_cols; c++) {
		fputc(t->cols[c].right ? '-' : ':', f);
		for (size_t i = 0; i < width[c]; i++)
			fputc('-', f);
		fputs(t->cols[c].right ? ":|" : "-|", f);
	}
	fputc('\n', f);
	for (int r = 0; r < t->rows; r++) {
		fputc('|', f);
		for (int c = 0; c < t->n_cols; c++) {
			fputc(' ', f);
			pad(f, t->cells[r][c], width[c], t->cols[c].right);
			fputs(" |", f);
		}
		fputc('\n', f);
	}
}

/* caption is already LaTeX; note (LaTeX, may be empty) goes under the rule. */
static void render_latex(FILE *f, const struct table *t, const char *caption,
			 const char *label, const char *note)
{
	fprintf(f, "\\begin{table}[htbp]\n\\centering\n\\small\n\\setlength{\\tabcolsep}{4pt}\n"
		"\\caption{%s}\n\\label{%s}\n"
		"\\begin{tabular}{", caption, label);
	for (int c = 0; c < t->n_cols; c++)
		fputc(t->cols[c].right ? 'r' : 'l', f);
	fprintf(f, "}\n\\toprule\n");
	for (int c = 0; c < t->n_cols; c++)
		fprintf(f, "%s%s", c ? " & " : "", t->cols[c].latex);
	fprintf(f, " \\\\\n\\midrule\n");
	for (int r = 0; r < t->rows; r++) {
		for (int c = 0; c < t->n_cols; c++)
			fprintf(f, "%s%s", c ? " & " : "", t->cells[r][c]);
		fprintf(f, " \\\\\n");
	}
	fprintf(f, "\\bottomrule\n\\end{tabular}\n");
	if (note && *note)
		fprintf(f, "\\par\\smallskip\\footnotesize %s\n", note);
	fprintf(f, "\\end{table}\n\n");
}

/* ---- cell text ---- */

struct writer {
	FILE *f;
	enum report_format fmt;
	int64_t run_id;
	const char *baseline;
};

static const char *missing(const struct writer *w)
{
	return w->fmt == REPORT_LATEX ? "--" : "—";
}

/* The LaTeX for one character of text, or NULL when it stands for itself. */
static const char *latex_special(char c)
{
	switch (c) {
	case '_': return "\\_";
	case '%': return "\\%";
	case '&': return "\\&";
	case '#': return "\\#";
	case '$': return "\\$";
	case '{': return "\\{";
	case '}': return "\\}";
	case '~': return "\\textasciitilde{}";
	case '^': return "\\textasciicircum{}";
	case '\\': return "\\textbackslash{}";
	case '<': return "\\textless{}";
	case '>': return "\\textgreater{}";
	default: return NULL;
	}
}

/*
 * Escapes text for the output format: LaTeX specials, Markdown's table and emphasis;
 * control characters (a stored line break would end a LaTeX comment) become '?'.
 */
static void escape(const struct writer *w, const char *s, char *buf, size_t len)
{
	size_t used = 0;

	/* 20 bytes: room for the longest replacement and the NUL */
	for (; *s && used + 20 < len; s++) {
		const char *rep = w->fmt == REPORT_LATEX ? latex_special(*s) : NULL;

		if ((unsigned char)*s < 0x20 || *s == 0x7f) {
			buf[used++] = '?';
			continue;
		}
		if (rep) {
			used += (size_t)snprintf(buf + used, len - used, "%s", rep);
			continue;
		}
		if (w->fmt == REPORT_MARKDOWN && strchr("|_*\\`<>[]", *s))
			buf[used++] = '\\';
		buf[used++] = *s;
	}
	buf[used] = '\0';
}

/* A signed score to two decimals; "-0.00" shows as "+0.00". */
static void signed_number(const struct writer *w, double x, char *buf, size_t len)
{
	char num[32];

	if (isnan(x)) {
		snprintf(buf, len, "%s", missing(w));
		return;
	}
	snprintf(num, sizeof(num), "%+.2f", x);
	if (!strcmp(num, "-0.00"))
		num[0] = '+';
	if (w->fmt == REPORT_LATEX)
		snprintf(buf, len, "$%s$", num);
	else
		snprintf(buf, len, "%s", num);
}

static void number(const struct writer *w, const char *fmt, double x, char *buf, size_t len)
{
	if (isnan(x)) {
		snprintf(buf, len, "%s", missing(w));
		return;
	}
	snprintf(buf, len, fmt, x);
	/* a value that rounds to zero shows without a sign: "-0.00" is "0.00" */
	if (buf[0] == '-' && strspn(buf + 1, "0.") == strlen(buf + 1))
		memmove(buf, buf + 1, strlen(buf));
}

static void bytes_text(const struct writer *w, double b, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;

	if (isnan(b)) {
		snprintf(buf, len, "%s", missing(w));
		return;
	}
	while (b >= 1024 && u < 4) {
		b /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.3g %s" : "%.0f %s", b, units[u]);
}

static void title(const struct writer *w, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A heading: "== x ==" in text, "#..# x" in Markdown, a comment in LaTeX. */
static void title(const struct writer *w, int level, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (w->fmt == REPORT_MARKDOWN)
		fprintf(w->f, "%.*s %s\n\n", level, "######", text);
	else if (w->fmt == REPORT_LATEX)
		fprintf(w->f, "%% %s\n", text);
	else
		fprintf(w->f, "%s\n\n", text);
}

/* A paragraph under a table (text, Markdown); LaTeX puts notes inside the table. */
static void note(const struct writer *w, const char *text)
{
	if (w->fmt != REPORT_LATEX && *text)
		fprintf(w->f, "\n%s\n", text);
	fputc('\n', w->f);
}

static void render(const struct writer *w, const struct table *t, const char *caption,
		   const char *label, const char *note_text)
{
	if (w->fmt == REPORT_LATEX) {
		render_latex(w->f, t, caption, label, note_text);
		return;
	}
	if (w->fmt == REPORT_MARKDOWN)
		render_markdown(w->f, t);
	else
		render_text(w->f, t);
	note(w, note_text);
}

/* The caption above a text or Markdown table; in Markdown its first phrase in bold. */
static void caption_paragraph(const struct writer *w, const char *caption)
{
	size_t lead = strcspn(caption, ",");

	if (w->fmt == REPORT_MARKDOWN)
		fprintf(w->f, "**%.*s**%s\n\n", (int)lead, caption, caption + lead);
	else if (w->fmt == REPORT_TEXT)
		fprintf(w->f, "%s\n\n", caption);
}

static bool fails_causality(const struct report_row *r)
{
	return r->causal_total && r->causal_pass < r->causal_total;
}

/*
 * The built-in variant called name when it is only block-causal at its defaults (hip)
 * and the pattern is causal, so its rows on that pattern carry a mark; else NULL.
 */
static const struct variant_ops *block_causal(const char *name, const char *pattern)
{
	const struct variant_ops *v = variant_find(name);
	int p = pattern_parse(pattern);

	return v && (v->flags & VARIANT_BLOCK_CAUSAL) && p >= 0 && pattern_is_causal(p) ? v :
												NULL;
}

static const char *dagger(const struct writer *w)
{
	return w->fmt == REPORT_LATEX ? "$^{\\dagger}$" : "†";
}

/*
 * The variant's name, escaped, with a mark when it fails the causality test, and another
 * when it is block-causal on this pattern.
 */
static void variant_cell(const struct writer *w, const struct report_row *r,
			 const char *pattern, char *buf, size_t len)
{
	char name[96];

	escape(w, r->variant, name, sizeof(name));
	snprintf(buf, len, "%s%s%s", name, !fails_causality(r) ? "" :
		 w->fmt == REPORT_LATEX ? "$^{*}$" : w->fmt == REPORT_MARKDOWN ? "\\*" : "*",
		 block_causal(r->variant, pattern) ? dagger(w) : "");
}

/* What the block-causal mark means, for the variants of lb that carry it (or nothing). */
static void block_causal_note(const struct writer *w, const struct leaderboard *lb,
			      char *buf, size_t len)
{
	size_t used = strlen(buf);

	for (int i = 0; i < lb->count && used < len; i++) {
		const struct variant_ops *v = block_causal(lb->rows[i].variant, lb->pattern);

		if (v)
			used += (size_t)snprintf(buf + used, len - used, " %s %s is block-causal "
						 "at its defaults: a row may depend on later rows of "
						 "its own query block (strictly causal at %s.%s=1).",
						 dagger(w), v->name, v->name,
						 v->strict_causal_param);
	}
}

static void common_note(const struct writer *w, const struct leaderboard *lb, char *buf,
			size_t len)
{
	size_t used = 0;
	bool any = false, fails = false;

	used += (size_t)snprintf(buf, len, "Cells every ranked variant completed, per task:");
	for (int t = 0; t < REPORT_TASKS; t++) {
		bool present = false;

		for (int i = 0; i < lb->count; i++)
			if (!isnan(lb->rows[i].task[t]))
				present = true;
		if (!present)
			continue;
		used += (size_t)snprintf(buf + used, len - used, "%s %s %d", any ? "," : "",
					 report_task_name(t), lb->common_cells[t]);
		any = true;
	}
	used += (size_t)snprintf(buf + used, len - used, ".");
	for (int i = 0; i < lb->count; i++)
		fails |= fails_causality(&lb->rows[i]);
	if (fails)
		snprintf(buf + used, len - used, " %s fails the causality test on this pattern.",
			 w->fmt == REPORT_LATEX ? "$^{*}$" : w->fmt == REPORT_MARKDOWN ? "\\*" :
			 "*");
	block_causal_note(w, lb, buf, len);
}

static int write_leaderboard(const struct writer *w, const struct leaderboard *lb)
{
	static const struct column cols[] = {
		{ "#", "\\#", true },
		{ "variant", "variant", false },
		{ "CI", "CI", true },
		{ "Δ", "$\\Delta$", true },
		{ "fidelity", "fidelity", true },
		{ "passkey", "passkey", true },
		{ "recall", "recall", true },
		{ "speed", "speed", true },
		{ "causality", "causality", true },
	};
	char caption[512], label[128], base[96], text[1024];
	struct table t;

	if (table_init(&t, cols, 9, lb->count))
		return -ENOMEM;
	for (int i = 0; i < lb->count; i++) {
		const struct report_row *r = &lb->rows[i];

		if (r->rank)
			snprintf(table_cell(&t, i, 0), CELL_LEN, "%d", r->rank);
		else
			snprintf(table_cell(&t, i, 0), CELL_LEN, "%s", missing(w));
		variant_cell(w, r, lb->pattern, table_cell(&t, i, 1), CELL_LEN);
		signed_number(w, r->ci, table_cell(&t, i, 2), CELL_LEN);
		signed_number(w, r->delta, table_cell(&t, i, 3), CELL_LEN);
		for (int k = 0; k < REPORT_TASKS; k++)
			signed_number(w, r->task[k], table_cell(&t, i, 4 + k), CELL_LEN);
	}
	escape(w, w->baseline, base, sizeof(base));
	snprintf(caption, sizeof(caption), "Leaderboard, %s (%s), run %lld: compositional index "
		 "(CI) and task scores, mean z-scores across variants, higher is better; "
		 "%s against %s%s.", lb->pattern, pattern_long_name(lb->pattern),
		 (long long)w->run_id, w->fmt == REPORT_LATEX ? "$\\Delta$" : "Δ", base,
		 lb->has_baseline ? "" : " (not on this pattern)");
	snprintf(label, sizeof(label), "tab:attnbench-run%lld-%s-leaderboard",
		 (long long)w->run_id, lb->pattern);
	caption_paragraph(w, caption);
	common_note(w, lb, text, sizeof(text));
	render(w, &t, caption, label, text);
	table_release(&t);
	return 0;
}

static void causality_text(const struct writer *w, const struct report_row *r, char *buf,
			   size_t len)
{
	if (!r->causal_total)
		snprintf(buf, len, "%s", missing(w));
	else if (r->causal_pass == r->causal_total)
		snprintf(buf, len, "pass");
	else
		snprintf(buf, len, "fail %d/%d", r->causal_total - r->causal_pass,
			 r->causal_total);
}

static int write_metrics(const struct writer *w, const struct leaderboard *lb)
{
	static const struct column cols[] = {
		{ "variant", "variant", false },
		{ "rel_err", "rel.\\ err.", true },
		{ "cosine", "cos.", true },
		{ "passkey", "passkey", true },
		{ "recall", "recall", true },
		{ "latency ms", "ms", true },
		{ "peak memory", "memory", true },
		{ "causality", "causal", true },
		{ "failed cells", "failed", true },
	};
	char caption[1024], label[128], note[512] = "";
	struct table t;
	int unstable = 0;

	if (table_init(&t, cols, 9, lb->count))
		return -ENOMEM;
	for (int i = 0; i < lb->count; i++) {
		const struct report_row *r = &lb->rows[i];

		variant_cell(w, r, lb->pattern, table_cell(&t, i, 0), CELL_LEN);
		number(w, "%.3g", r->raw[REPORT_REL_ERR], table_cell(&t, i, 1), CELL_LEN);
		number(w, "%.4f", r->raw[REPORT_COSINE], table_cell(&t, i, 2), CELL_LEN);
		number(w, "%.3f", r->raw[REPORT_PASSKEY_ACC], table_cell(&t, i, 3), CELL_LEN);
		number(w, "%.3f", r->raw[REPORT_RECALL_ACC], table_cell(&t, i, 4), CELL_LEN);
		number(w, "%.3g", pow(10, r->raw[REPORT_LOG_LATENCY]), table_cell(&t, i, 5),
		       CELL_LEN);
		if (r->unstable_cells) {
			/* the mark the caption explains */
			size_t used = strlen(table_cell(&t, i, 5));

			snprintf(table_cell(&t, i, 5) + used, CELL_LEN - used, " (%d unstable)",
				 r->unstable_cells);
			unstable += r->unstable_cells;
		}
		bytes_text(w, pow(10, r->raw[REPORT_LOG_MEMORY]), table_cell(&t, i, 6),
			   CELL_LEN);
		causality_text(w, r, table_cell(&t, i, 7), CELL_LEN);
		snprintf(table_cell(&t, i, 8), CELL_LEN, "%d", r->failed_cells);
	}
	if (unstable)
		snprintf(note, sizeof(note), " (N unstable): N of the variant's speed cells had "
			 "measurement rounds that disagreed beyond %.2fx even after extra rounds; "
			 "their latency may be the machine's load.", ROUNDS_SPREAD_LIMIT);
	block_causal_note(w, lb, note, sizeof(note));
	snprintf(caption, sizeof(caption), "Task metrics, %s (%s), run %lld: means over the "
		 "cells every variant completed (latency and memory: geometric means); passkey "
		 "and recall are accuracies; failed cells crashed, timed out, ran out of memory, "
		 "gave NaN or wrote outside their buffers.%s", lb->pattern,
		 pattern_long_name(lb->pattern), (long long)w->run_id, note);
	snprintf(label, sizeof(label), "tab:attnbench-run%lld-%s-metrics", (long long)w->run_id,
		 lb->pattern);
	caption_paragraph(w, caption);
	render(w, &t, caption, label, "");
	table_release(&t);
	return 0;
}

/* A stored efficiency value: NAN with *present false when the row is missing. */
static double eff_value(const struct eff_list *eff, const char *variant, const char *pattern,
			const char *name, bool *present)
{
	const struct eff_metric *m = efficiency_find(eff, variant, pattern, name);

	if (present)
		*present = m != NULL;
	return m ? m->value : NAN;
}

static void length_text(const struct writer *w, const struct eff_list *eff,
			const char *variant, const char *pattern, const char *what, char *buf,
			size_t len)
{
	char name[64];
	bool present, has_lo, has_hi;
	double x, lo, hi;

	snprintf(name, sizeof(name), "efficiency_length_%s", what);
	x = eff_value(eff, variant, pattern, name, &present);
	if (!present) {
		snprintf(buf, len, "%s", missing(w));
		return;
	}
	if (isnan(x)) {
		snprintf(buf, len, "none");
		return;
	}
	/* below range: x is only the smallest length, and must not read as a crossing */
	snprintf(name, sizeof(name), "efficiency_below_range_%s", what);
	if (eff_value(eff, variant, pattern, name, NULL) == 1) {
		snprintf(buf, len, "%s %.0f (cheaper at every length)",
			 w->fmt == REPORT_LATEX ? "$<$" : "<", x);
		return;
	}
	snprintf(name, sizeof(name), "efficiency_length_%s_lo", what);
	lo = eff_value(eff, variant, pattern, name, &has_lo);
	snprintf(name, sizeof(name), "efficiency_length_%s_hi", what);
	hi = eff_value(eff, variant, pattern, name, &has_hi);
	if (!has_lo || isnan(lo))
		snprintf(buf, len, "%.0f", x);
	else if (has_hi && !isnan(hi))
		snprintf(buf, len, "%.0f [%.0f, %.0f]", x, lo, hi);
	else
		snprintf(buf, len, "%.0f [%.0f, %s)", x, lo,
			 w->fmt == REPORT_LATEX ? "$\\infty$" : "∞");
}

static void cab_text(const struct writer *w, const struct eff_list *eff, const char *variant,
		     const char *pattern, const char *what, char *length, char *r2_base,
		     char *r2_var, char *flag, size_t len)
{
	char name[64];
	bool present;
	double x, rb, rv, d;

	snprintf(name, sizeof(name), "cab_efficiency_length_%s", what);
	x = eff_value(eff, variant, pattern, name, &present);
	if (!present)
		snprintf(length, len, "%s", missing(w));
	else if (isnan(x))
		snprintf(length, len, "none");
	else
		snprintf(length, len, "%.0f", x);
	snprintf(name, sizeof(name), "cab_r2_baseline_%s", what);
	rb = eff_value(eff, variant, pattern, name, NULL);
	snprintf(name, sizeof(name), "cab_r2_variant_%s", what);
	rv = eff_value(eff, variant, pattern, name, NULL);
	number(w, "%.3f", rb, r2_base, len);
	number(w, "%.3f", rv, r2_var, len);
	snprintf(name, sizeof(name), "efficiency_disagree_%s", what);
	d = eff_value(eff, variant, pattern, name, NULL);
	snprintf(flag, len, "%s", isnan(d) ? missing(w) : d ? "yes" : "no");
}

static bool eff_has_variant(const struct eff_list *eff, const char *variant,
			    const char *pattern)
{
	for (size_t i = 0; i < eff->count; i++)
		if (!strcmp(eff->items[i].variant, variant) &&
		    !strcmp(eff->items[i].pattern, pattern))
			return true;
	return false;
}

static int write_efficiency(const struct writer *w, const struct leaderboard *lb,
			    const struct eff_list *eff)
{
	static const struct column cols[] = {
		{ "variant", "variant", false },
		{ "cost", "cost", false },
		{ "measured [95% CI]", "measured", true },
		{ "CAB fit", "CAB fit", true },
		{ "R² base", "$R^2_{\\mathrm{b}}$", true },
		{ "R² var", "$R^2_{\\mathrm{v}}$", true },
		{ "disagree", "disagree", false },
		{ "log-log slope", "slope", true },
	};
	static const char *const what[2] = { "time", "memory" };
	const char *order[64 + 1];
	char caption[1024], label[128], base[96];
	int n = 0;
	struct table t;

	/* the baseline first, then the leaderboard's order */
	if (eff_has_variant(eff, w->baseline, lb->pattern))
		order[n++] = w->baseline;
	for (int i = 0; i < lb->count && n < 64; i++)
		if (strcmp(lb->rows[i].variant, w->baseline) &&
		    eff_has_variant(eff, lb->rows[i].variant, lb->pattern))
			order[n++] = lb->rows[i].variant;
	escape(w, w->baseline, base, sizeof(base));
	if (!n) {
		if (w->fmt == REPORT_LATEX)
			fprintf(w->f, "%% no efficiency lengths on %s: no speed cells of %s\n\n",
				lb->pattern, base);
		else
			fprintf(w->f, "No efficiency lengths on %s: the run has no speed cells of "
				"the baseline %s on this pattern.\n\n", lb->pattern, base);
		return 0;
	}
	/* two rows per variant: time, then memory */
	if (table_init(&t, cols, 8, 2 * n))
		return -ENOMEM;
	for (int i = 0; i < 2 * n; i++) {
		const char *v = order[i / 2], *cost = what[i % 2];
		char name[64], *x;
		double s;

		if (i % 2 == 0)
			escape(w, v, table_cell(&t, i, 0), CELL_LEN);
		snprintf(table_cell(&t, i, 1), CELL_LEN, "%s", cost);
		if (!strcmp(v, w->baseline)) {
			for (int k = 2; k < 7; k++)
				snprintf(table_cell(&t, i, k), CELL_LEN, "%s", missing(w));
		} else {
			length_text(w, eff, v, lb->pattern, cost, table_cell(&t, i, 2), CELL_LEN);
			cab_text(w, eff, v, lb->pattern, cost, table_cell(&t, i, 3),
				 table_cell(&t, i, 4), table_cell(&t, i, 5), table_cell(&t, i, 6),
				 CELL_LEN);
		}
		snprintf(name, sizeof(name), "loglog_slope_%s", cost);
		s = eff_value(eff, v, lb->pattern, name, NULL);
		x = table_cell(&t, i, 7);
		number(w, "%.2f", s, x, CELL_LEN);
		if (w->fmt == REPORT_LATEX && x[0] == '-' && x[1] != '-') {
			/* a minus sign, not a hyphen */
			char tmp[CELL_LEN];

			snprintf(tmp, sizeof(tmp), "$-$%s", x + 1);
			snprintf(x, CELL_LEN, "%s", tmp);
		}
	}
	snprintf(caption, sizeof(caption), "Efficiency length against %s, %s (%s), run %lld, in "
		 "tokens: from where each variant is cheaper than the baseline, in time (median "
		 "latency) and memory (peak workspace). Measured: the crossing of the measured "
		 "curves, interpolated, with a 95%s bootstrap interval for time in brackets; "
		 "CAB fit: a quadratic fit of the baseline crossed with a linear fit of the "
		 "variant, with the fits' %s (baseline, variant); disagree: the two differ by "
		 "more than %gx; slope: the log-log scaling exponent.", base, lb->pattern,
		 pattern_long_name(lb->pattern), (long long)w->run_id, w->fmt == REPORT_LATEX ? "\\%" : "%",
		 w->fmt == REPORT_LATEX ? "$R^2$" : "R²", EFFICIENCY_DISAGREE_FACTOR);
	snprintf(label, sizeof(label), "tab:attnbench-run%lld-%s-efficiency",
		 (long long)w->run_id, lb->pattern);
	caption_paragraph(w, caption);
	render(w, &t, caption, label, w->fmt == REPORT_LATEX ?
	       "none: the curves do not cross in the sampled range; $<$ $N$: cheaper at "
	       "every sampled length, the smallest being $N$; $\\infty$: some resamples do not "
	       "cross in range." :
	       "none: the curves do not cross in the sampled range; < N: cheaper at every "
	       "sampled length, the smallest being N; ∞: some resamples do not cross in range.");
	table_release(&t);
	return 0;
}

/* The patterns with cells in the run: ns, cs, nc, cc first, then any others. */
static int run_patterns(sqlite3 *db, int64_t run_id, char patterns[][8], int max, int *n)
{
	sqlite3_stmt *st;
	int rc;

	*n = 0;
	for (size_t i = 0; i < KNOWN_PATTERNS; i++)
		snprintf(patterns[(*n)++], 8, "%s", known_patterns[i].name);
	if (sqlite3_prepare_v2(db, "SELECT DISTINCT pattern FROM cells WHERE run_id = ?"
			       " ORDER BY pattern", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, run_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max) {
		const char *p = (const char *)sqlite3_column_text(st, 0);
		bool known = false;

		for (size_t i = 0; i < KNOWN_PATTERNS; i++)
			known |= !strcmp(p, known_patterns[i].name);
		if (!known)
			snprintf(patterns[(*n)++], 8, "%s", p);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -EIO;
}

/* What the run loaded from files (plugins, the user's tensors), with their SHA-256. */
static void write_loaded_files(const struct writer *w, sqlite3 *db)
{
	char name[320], path[8192], sha[160];
	sqlite3_stmt *st;
	int shown = 0;

	if (sqlite3_prepare_v2(db, STORE_LOADED_FILES_SQL, -1, &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_int64(st, 1, w->run_id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		escape(w, (const char *)sqlite3_column_text(st, 0), name, sizeof(name));
		escape(w, (const char *)sqlite3_column_text(st, 1), path, sizeof(path));
		escape(w, (const char *)sqlite3_column_text(st, 2), sha, sizeof(sha));
		fprintf(w->f, "%sLoaded %s: %s (SHA-256 %s).\n",
			w->fmt == REPORT_LATEX ? "% " : "", name, path, sha);
		shown++;
	}
	sqlite3_finalize(st);
	if (shown)
		fputc('\n', w->f);
}

/*
 * ", SGEMM 212.0 GFLOP/s, triad 25.3 GB/s": the machine's rates in columns sgemm and triad
 * of st, each left out when it was not measured (an older run); "" when neither was.
 */
static void machine_rates(sqlite3_stmt *st, int sgemm, int triad, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	if (sqlite3_column_type(st, sgemm) != SQLITE_NULL)
		n = (size_t)snprintf(buf, len, ", SGEMM %.1f GFLOP/s",
				     sqlite3_column_double(st, sgemm));
	if (n < len && sqlite3_column_type(st, triad) != SQLITE_NULL)
		snprintf(buf + n, len - n, ", triad %.1f GB/s", sqlite3_column_double(st, triad));
}

/* The shards the run was merged from (run --shard), each with its machine. */
static void write_shards(const struct writer *w, sqlite3 *db)
{
	char host[320], cpu[320], rates[96];
	sqlite3_stmt *st;
	int shown = 0;

	if (sqlite3_prepare_v2(db, STORE_SHARDS_SQL, -1, &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_int64(st, 1, w->run_id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		escape(w, (const char *)sqlite3_column_text(st, 1), host, sizeof(host));
		escape(w, (const char *)sqlite3_column_text(st, 2), cpu, sizeof(cpu));
		if (w->fmt == REPORT_LATEX)	/* a comment line each */
			fputs(shown ? "\n% " : "% Merged from shards:", w->f);
		else
			fputs(shown ? ";" : "Merged from shards:", w->f);
		machine_rates(st, 4, 6, rates, sizeof(rates));
		fprintf(w->f, " shard %d on %s (%s, %d threads%s)", sqlite3_column_int(st, 0),
			host, cpu, sqlite3_column_int(st, 3), rates);
		shown++;
	}
	sqlite3_finalize(st);
	if (shown)
		fputs(w->fmt == REPORT_LATEX ? "\n" : ".\n\n", w->f);
}

static void write_header(const struct writer *w, sqlite3 *db)
{
	sqlite3_stmt *st;
	char info[512] = "", shown[1024], rates[96];

	if (sqlite3_prepare_v2(db, "SELECT ifnull(suite, ''), started, status,"
			       " ifnull(cpu_model, ''), ifnull(threads, 0), sgemm_gflops, triad_gbps"
			       " FROM runs WHERE id = ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, w->run_id);
		if (sqlite3_step(st) == SQLITE_ROW) {
			machine_rates(st, 5, 6, rates, sizeof(rates));
			snprintf(info, sizeof(info), "suite %s, started %s, %s; %s, %d threads%s",
				 sqlite3_column_text(st, 0), sqlite3_column_text(st, 1),
				 sqlite3_column_text(st, 2), sqlite3_column_text(st, 3),
				 sqlite3_column_int(st, 4), rates);
		}
		sqlite3_finalize(st);
	}
	escape(w, info, shown, sizeof(shown));	/* stored texts: no line breaks, no markup */
	if (w->fmt == REPORT_LATEX) {
		fprintf(w->f, "%% attnbench report, run %lld (%s), baseline %s\n"
			"%% needs \\usepackage{booktabs} in the preamble\n",
			(long long)w->run_id, shown, w->baseline);
		write_loaded_files(w, db);
		write_shards(w, db);
		fputc('\n', w->f);
		return;
	}
	title(w, 1, "attnbench report: run %lld", (long long)w->run_id);
	fprintf(w->f, "%s; baseline %s.\n\n", shown, w->baseline);
	write_loaded_files(w, db);
	write_shards(w, db);
}

int report_write(FILE *out, sqlite3 *db, const struct report_options *o,
		 const struct eff_list *eff)
{
	struct writer w = { out, o->format, o->run_id, o->baseline };
	char patterns[32][8];
	int n, written = 0, ret;

	ret = run_patterns(db, o->run_id, patterns, 32, &n);
	if (ret)
		return ret;
	for (int i = 0; i < n; i++) {
		struct leaderboard lb;
		bool ranked = false;

		ret = report_leaderboard(db, o->run_id, patterns[i], o->baseline, &lb);
		if (ret)
			return ret;
		for (int k = 0; k < lb.count; k++)
			ranked |= !isnan(lb.rows[k].ci);
		if (ranked) {
			if (!written++)
				write_header(&w, db);
			title(&w, 2, "Pattern %s (%s)", lb.pattern, pattern_long_name(lb.pattern));
			ret = write_leaderboard(&w, &lb);
			if (!ret)
				ret = write_metrics(&w, &lb);
			if (!ret)
				ret = write_efficiency(&w, &lb, eff);
		}
		report_leaderboard_release(&lb);
		if (ret)
			return ret;
	}
	return written ? 0 : -ENODATA;
}
