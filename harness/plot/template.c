/*
 * template.c - the plots/ folder: where it is, style.gp's text and font size, and the
 * figure templates, split into sections whose {{placeholders}} are filled in here.
 *
 * The folder is $ATTNBENCH_PLOTS when set; else <directory of the program>/../share/
 * attnbench/plots when it exists (an installed attnbench); else the source tree's plots/,
 * fixed at build time (ATTNBENCH_SOURCE_PLOTS).
 *
 * A template is gnuplot text in sections: a line "#@ NAME" starts section NAME, which runs
 * to the next such line (trailing blank lines dropped); text before the first section is
 * the template's own comment. In a section, {{VAR}} stands for a value the figure sets
 * (figure_var()): a number, an escaped string, or gnuplot commands computed here (margins,
 * axis ranges and ticks, a list of plot elements). The figure code names the sections in
 * the order the script needs them; a section a figure's template lacks is taken from
 * figure.gp, which holds those every figure shares.
 */
#include "plot-internal.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef ATTNBENCH_SOURCE_PLOTS
#define ATTNBENCH_SOURCE_PLOTS "plots"
#endif

static bool is_dir(const char *path)
{
	struct stat sb;

	return !stat(path, &sb) && S_ISDIR(sb.st_mode);
}

/* The folder of the templates, by the rule at the top of this file. */
static void find_dir(char *buf, size_t len)
{
	const char *env = getenv("ATTNBENCH_PLOTS");
	char exe[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		snprintf(buf, len, "%s", env);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		char *slash;

		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash) {
			int m;

			*slash = '\0';
			m = snprintf(buf, len, "%.*s/../share/attnbench/plots", (int)(len - 32), exe);
			if (m > 0 && (size_t)m < len && is_dir(buf))
				return;
		}
	}
	snprintf(buf, len, "%s", ATTNBENCH_SOURCE_PLOTS);
}

/* A whole file into *text (NUL-terminated); 0, or -ENOENT / -EIO with why set. */
static int read_text(struct plot_ctx *c, const char *path, char **text)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, got;
	int err;

	*text = NULL;
	if (!f)
		goto fail;
	do {
		if (cap - len < 4096) {
			char *p = realloc(buf, cap ? 2 * cap : 8192);

			if (!p) {
				free(buf);
				fclose(f);
				return why_fail(-ENOMEM, c->why, c->why_len,
						"out of memory reading '%s'", path);
			}
			buf = p;
			cap = cap ? 2 * cap : 8192;
		}
		got = fread(buf + len, 1, cap - len - 1, f);
		len += got;
	} while (got);
	if (ferror(f)) {
		free(buf);
		fclose(f);
		errno = EIO;
		goto fail;
	}
	fclose(f);
	buf[len] = '\0';
	*text = buf;
	return 0;
fail:
	err = errno;
	return why_fail(err == ENOENT ? -ENOENT : -EIO, c->why, c->why_len,
			"cannot read template '%s': %s", path, strerror(err));
}

/* `fontsize = N` of style.gp: the one size the legend layout measures text at. */
static int read_font_size(struct plot_ctx *c, const char *path)
{
	for (const char *p = c->style_text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p) {
		char *end;
		double v;

		p += strspn(p, " \t");
		if (strncmp(p, "fontsize", 8))
			continue;
		p += 8 + strspn(p + 8, " \t");
		if (*p != '=')
			continue;
		v = strtod(p + 1, &end);
		if (end != p + 1 && v > 0 && v < 100) {
			c->font_pt = v;
			return 0;
		}
	}
	return why_fail(-EIO, c->why, c->why_len,
			"cannot read template '%s': it sets no 'fontsize = N'", path);
}

int plot_find_templates(struct plot_ctx *c)
{
	char path[sizeof(c->plots_dir) + 16];
	int rc;

	find_dir(c->plots_dir, sizeof(c->plots_dir));
	snprintf(path, sizeof(path), "%s/style.gp", c->plots_dir);
	rc = read_text(c, path, &c->style_text);
	if (!rc)
		rc = read_font_size(c, path);
	if (!rc)
		rc = plot_template_read(c, "figure", &c->frame);
	return rc;
}

/*
 * Drops a section's trailing blank lines, and a last paragraph of comment lines ('#' in
 * the first column) with them: that comment describes the next section. The section
 * keeps its last newline.
 */
static void trim_section(struct section *s)
{
	for (;;) {
		size_t start;
		bool comment = true;

		while (s->len && strchr(" \t\r\n", s->body[s->len - 1]))
			s->len--;
		if (!s->len)
			return;
		/* the last paragraph: back to a blank line or the section's start */
		for (start = s->len; start > 0; start--)
			if (s->body[start - 1] == '\n' &&
			    (start < 2 || s->body[start - 2] == '\n'))
				break;
		for (size_t p = start; p < s->len; p = (size_t)(strchr(s->body + p, '\n') -
								 s->body) + 1) {
			if (s->body[p] != '#')
				comment = false;
			if (!memchr(s->body + p, '\n', s->len - p))
				break;
		}
		if (!comment || start == 0) {
			s->len++;
			return;
		}
		s->len = start;
	}
}

int plot_template_read(struct plot_ctx *c, const char *kind, struct template *t)
{
	struct section *s = NULL;
	char *p;
	int rc;

	memset(t, 0, sizeof(*t));
	snprintf(t->path, sizeof(t->path), "%.*s/%s.gp", (int)(sizeof(t->path) - 64),
		 c->plots_dir, kind);
	rc = read_text(c, t->path, &t->text);
	if (rc)
		return rc;
	for (p = t->text; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p)) {
		if (strncmp(p, "#@ ", 3))
			continue;
		if (s)
			s->len = (size_t)(p - s->body);
		if (t->n == MAX_SECTIONS) {
			plot_template_release(t);
			return why_fail(-EIO, c->why, c->why_len, "cannot read template '%s': "
					"more than %d sections", t->path, MAX_SECTIONS);
		}
		s = &t->sec[t->n++];
		s->name = p + 3;
		s->name_len = strcspn(s->name, " \t\r\n");
		s->body = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p);
	}
	if (s)
		s->len = strlen(s->body);
	for (int i = 0; i < t->n; i++)
		trim_section(&t->sec[i]);
	return 0;
}

void plot_template_release(struct template *t)
{
	free(t->text);
	t->text = NULL;
	t->n = 0;
}

/*
 * s as a gnuplot string in double quotes: backslash and quote escaped, and the bytes
 * gnuplot would act on inside a command line (the backquote of command substitution,
 * the @ of a macro, controls such as a newline) as octal escapes, so a stored name is
 * only ever text.
 */
void plot_gp_string(const char *s, char *buf, size_t len)
{
	size_t n = 0;

	if (len < 3) {
		if (len)
			*buf = '\0';
		return;
	}
	buf[n++] = '"';
	for (; *s && n + 6 < len; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '\\' || ch == '"') {
			buf[n++] = '\\';
			buf[n++] = (char)ch;
		} else if (ch == '`' || ch == '@' || ch < 32 || ch == 127) {
			n += (size_t)snprintf(buf + n, len - n, "\\%03o", ch);
		} else {
			buf[n++] = (char)ch;
		}
	}
	buf[n++] = '"';
	buf[n] = '\0';
}

/*
 * s for a comment line of a script or a data file: controls (a newline would end the
 * comment), backslashes (one at the end would continue it) and backquotes (which older
 * gnuplots substitute anywhere on a line) become '?'.
 */
void plot_comment_text(const char *s, char *buf, size_t len)
{
	size_t n = 0;

	if (!len)
		return;
	for (; *s && n + 1 < len; s++) {
		unsigned char ch = (unsigned char)*s;

		buf[n++] = ch < 32 || ch == 127 || ch == '\\' || ch == '`' ? '?' : (char)ch;
	}
	buf[n] = '\0';
}

/*
 * s as one field of a data line: whitespace and controls (which split a field or end the
 * line), '#' (which starts a comment), quotes, backquotes and backslashes become '?'; an
 * empty s is "?", so the line keeps its number of fields.
 */
void plot_data_word(const char *s, char *buf, size_t len)
{
	size_t n = 0;

	if (len < 2) {
		if (len)
			*buf = '\0';
		return;
	}
	for (; *s && n + 1 < len; s++) {
		unsigned char ch = (unsigned char)*s;

		buf[n++] = ch <= ' ' || ch == 127 || strchr("#\"'`\\", ch) ? '?' : (char)ch;
	}
	if (!n)
		buf[n++] = '?';
	buf[n] = '\0';
}

static void set_err(struct figure *g, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Keeps the first failure of a figure's script; figure_end() returns it. */
static void set_err(struct figure *g, int err, const char *fmt, ...)
{
	va_list ap;

	if (g->err)
		return;
	g->err = err;
	va_start(ap, fmt);
	why_vset(g->c->why, g->c->why_len, fmt, ap);
	va_end(ap);
}

static struct figure_var *find_var(struct figure *g, const char *name, size_t len)
{
	for (int i = 0; i < g->n_vars; i++)
		if (strlen(g->vars[i].name) == len && !strncmp(g->vars[i].name, name, len))
			return &g->vars[i];
	return NULL;
}

/* Sets var name to value (taken over: freed with the figure). */
static void put_var(struct figure *g, const char *name, char *value)
{
	struct figure_var *v = find_var(g, name, strlen(name));

	if (!value) {
		set_err(g, -ENOMEM, "out of memory writing '%s.gp'", g->name);
		return;
	}
	if (!v) {
		if (g->n_vars == MAX_VARS) {
			free(value);
			set_err(g, -ENOMEM, "too many placeholders in '%s.gp'", g->name);
			return;
		}
		v = &g->vars[g->n_vars++];
		snprintf(v->name, sizeof(v->name), "%s", name);
		v->value = NULL;
	}
	free(v->value);
	v->value = value;
}

void figure_var(struct figure *g, const char *name, const char *fmt, ...)
{
	va_list ap;
	char *value;

	va_start(ap, fmt);
	if (vasprintf(&value, fmt, ap) < 0)
		value = NULL;
	va_end(ap);
	put_var(g, name, value);
}

void figure_var_string(struct figure *g, const char *name, const char *s)
{
	char buf[1024];

	plot_gp_string(s, buf, sizeof(buf));
	figure_var(g, name, "%s", buf);
}

static const struct section *find_section(const struct template *t, const char *name)
{
	for (int i = 0; i < t->n; i++)
		if (t->sec[i].name_len == strlen(name) && !strncmp(t->sec[i].name, name,
								   t->sec[i].name_len))
			return &t->sec[i];
	return NULL;
}

/* Writes section name with its placeholders filled in to f. */
static void expand(struct figure *g, const char *name, FILE *f)
{
	const struct section *s = find_section(&g->tpl, name);
	const char *p, *end;

	if (!s)
		s = find_section(&g->c->frame, name);
	if (!s) {
		set_err(g, -EIO, "template '%s' has no section '%s'", g->tpl.path, name);
		return;
	}
	for (p = s->body, end = s->body + s->len; p < end;) {
		const char *open = strstr(p, "{{"), *close;
		struct figure_var *v;

		if (!open || open >= end) {
			fwrite(p, 1, (size_t)(end - p), f);
			break;
		}
		fwrite(p, 1, (size_t)(open - p), f);
		close = strstr(open, "}}");
		if (!close || close >= end) {
			set_err(g, -EIO, "template '%s': '{{' without '}}' in section '%s'",
				g->tpl.path, name);
			return;
		}
		v = find_var(g, open + 2, (size_t)(close - open - 2));
		if (!v) {
			set_err(g, -EIO, "template '%s': section '%s' uses '%.*s', which %s does "
				"not set", g->tpl.path, name, (int)(close - open + 2), open, g->name);
			return;
		}
		fputs(v->value, f);
		p = close + 2;
	}
}

void figure_emit(struct figure *g, const char *section)
{
	if (!g->err && g->f)
		expand(g, section, g->f);
}

/*
 * Appends section, filled in, to var name (sep between items; the section's last newline
 * dropped): how a list such as a plot command's elements is built an item at a time.
 */
void figure_var_append(struct figure *g, const char *name, const char *sep,
		       const char *section)
{
	struct figure_var *v = find_var(g, name, strlen(name));
	char *item = NULL, *value;
	size_t len = 0;
	FILE *f;

	if (g->err)
		return;
	f = open_memstream(&item, &len);
	if (!f) {
		set_err(g, -ENOMEM, "out of memory writing '%s.gp'", g->name);
		return;
	}
	expand(g, section, f);
	fclose(f);
	if (len && item[len - 1] == '\n')
		item[--len] = '\0';
	if (v && *v->value) {
		if (asprintf(&value, "%s%s%s", v->value, sep, item) < 0)
			value = NULL;
		free(item);
	} else {
		value = item;
	}
	put_var(g, name, value);
}

void figure_vars_release(struct figure *g)
{
	for (int i = 0; i < g->n_vars; i++)
		free(g->vars[i].value);
	g->n_vars = 0;
}
