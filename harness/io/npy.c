/*
 * npy.c - a strict reader and a plain writer for NumPy .npy files.
 *
 * The header is a Python dict literal. It is parsed by hand against the small grammar
 * NumPy writes (three keys; a string, a bool and a tuple of integers), never evaluated.
 * Every size in it is checked against fixed limits and against the length of the file
 * before anything is allocated, so a hostile or damaged file costs at most a refusal.
 */
#include "npy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "outfile.h"
#include "why.h"

/* '<f4' data is copied as is, and floats are written as they sit in memory. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c assumes a little-endian host"
#endif

#define MAGIC		"\x93NUMPY"
#define MAGIC_LEN	6
/* NumPy writes headers of a few hundred bytes at most; the cap bounds a hostile file. */
#define HEADER_MAX	((uint32_t)1 << 20)
/* 1 TiB: far beyond any benchmark input, small enough that products cannot overflow. */
#define DIM_MAX		((int64_t)1 << 40)
#define BYTES_MAX	((uint64_t)1 << 40)
/* NumPy aligns the preamble to 64 bytes; older releases aligned it to 16. */
#define ALIGN_WRITE	64
#define ALIGN_READ	16
/* Longest key or dtype string kept; longer ones are refused. */
#define STRING_MAX	64
/* First allocation when the file's length is unknown (a pipe); grows by doubling. */
#define CHUNK_FIRST	((size_t)1 << 26)

/* What the header says, once parsed. */
struct header {
	int elem_size;			/* 4 for '<f4', 8 for '<f8' */
	int ndim;
	int64_t shape[NPY_MAX_DIMS];
};

/* A position in the header text, and where to explain a refusal. */
struct cursor {
	const char *start;
	const char *p;
	const char *end;
	char *why;
	size_t why_len;
};

/* A string from the file, made safe to quote in a one-line message. */
static void printable(char *out, size_t len, const char *s)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < len; i++)
		out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	out[i] = '\0';
}

/* The shape as Python prints a tuple: "()", "(5,)", "(2, 3)". */
static void format_shape(char *out, size_t len, int ndim, const int64_t *shape)
{
	size_t used;

	used = (size_t)snprintf(out, len, "(");
	for (int i = 0; i < ndim && used < len; i++)
		used += (size_t)snprintf(out + used, len - used, "%s%" PRId64,
					 i ? ", " : "", shape[i]);
	if (used < len)
		snprintf(out + used, len - used, "%s", ndim == 1 ? ",)" : ")");
}

/* ---- header parsing ---- */

static void skip_space(struct cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
		c->p++;
}

/* Consumes ch after optional blanks; false, consuming only blanks, if it is not next. */
static bool accept(struct cursor *c, char ch)
{
	skip_space(c);
	if (c->p < c->end && *c->p == ch) {
		c->p++;
		return true;
	}
	return false;
}

static int expected(struct cursor *c, const char *what)
{
	size_t at = (size_t)(c->p - c->start);
	unsigned char ch;

	if (c->p >= c->end)
		return why_fail(-EINVAL, c->why, c->why_len,
				"malformed header: expected %s, found the end", what);
	ch = (unsigned char)*c->p;
	if (ch >= 0x20 && ch < 0x7f)
		why_set(c->why, c->why_len, "malformed header: expected %s at byte %zu, found '%c'",
			what, at, ch);
	else
		why_set(c->why, c->why_len,
			"malformed header: expected %s at byte %zu, found byte 0x%02x",
			what, at, ch);
	return -EINVAL;
}

static bool is_word_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '_' || ch == '.';
}

/* A quoted string without escapes, in single or double quotes, into buf. */
static int parse_string(struct cursor *c, char *buf, size_t len)
{
	const char *from;
	char quote;

	skip_space(c);
	if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
		return expected(c, "a quoted string");
	quote = *c->p++;
	from = c->p;
	while (c->p < c->end && *c->p != quote) {
		if (*c->p == '\\')
			return why_fail(-EINVAL, c->why, c->why_len,
					"malformed header: escape sequences in strings are not "
					"supported");
		c->p++;
	}
	if (c->p >= c->end)
		return why_fail(-EINVAL, c->why, c->why_len,
				"malformed header: unterminated string");
	if ((size_t)(c->p - from) >= len)
		return why_fail(-EINVAL, c->why, c->why_len,
				"malformed header: string longer than %zu bytes", len - 1);
	memcpy(buf, from, (size_t)(c->p - from));
	buf[c->p - from] = '\0';
	c->p++;
	return 0;
}

static int parse_descr(struct cursor *c, struct header *h)
{
	char descr[STRING_MAX], shown[STRING_MAX];
	int ret;

	skip_space(c);
	if (c->p < c->end && *c->p == '[')
		return why_fail(-EINVAL, c->why, c->why_len,
				"unsupported dtype: structured arrays are not supported "
				"(accepted: '<f4', '<f8')");
	ret = parse_string(c, descr, sizeof(descr));
	if (ret)
		return ret;
	if (!strcmp(descr, "<f4")) {
		h->elem_size = 4;
	} else if (!strcmp(descr, "<f8")) {
		h->elem_size = 8;
	} else {
		printable(shown, sizeof(shown), descr);
		return why_fail(-EINVAL, c->why, c->why_len,
				"unsupported dtype '%s' (accepted: '<f4', '<f8')", shown);
	}
	return 0;
}

static int parse_fortran_order(struct cursor *c)
{
	const char *word;
	size_t len;

	skip_space(c);
	word = c->p;
	while (c->p < c->end && is_word_char(*c->p))
		c->p++;
	len = (size_t)(c->p - word);
	if (len == 5 && !memcmp(word, "False", 5))
		return 0;
	if (len == 4 && !memcmp(word, "True", 4))
		return why_fail(-EINVAL, c->why, c->why_len,
				"fortran_order arrays are not supported "
				"(save with np.ascontiguousarray)");
	c->p = word;
	return expected(c, "True or False for 'fortran_order'");
}

/* A non-negative decimal integer no larger than DIM_MAX. */
static int parse_dim(struct cursor *c, int64_t *dim)
{
	const char *digits;
	int64_t v = 0;
	bool huge = false;

	skip_space(c);
	if (c->p < c->end && *c->p == '-')
		return why_fail(-EINVAL, c->why, c->why_len, "negative dimension in shape");
	if (c->p >= c->end || *c->p < '0' || *c->p > '9')
		goto not_integer;
	digits = c->p;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		if (!huge)
			v = v * 10 + (*c->p - '0');
		if (v > DIM_MAX)
			huge = true;
		c->p++;
	}
	/* Python rejects 007; so do we. */
	if (*digits == '0' && c->p - digits > 1)
		goto not_integer;
	/* Python 2 writers could print long integers as 3L; NumPy still reads those. */
	if (c->p < c->end && *c->p == 'L')
		c->p++;
	if (c->p < c->end && is_word_char(*c->p))
		goto not_integer;
	if (huge)
		return why_fail(-EINVAL, c->why, c->why_len,
				"dimension %.*s too large (at most 2^40)",
				(int)(c->p - digits > 24 ? 24 : c->p - digits), digits);
	*dim = v;
	return 0;

not_integer:
	return why_fail(-EINVAL, c->why, c->why_len, "shape entries must be non-negative integers");
}

static int parse_shape(struct cursor *c, struct header *h)
{
	int ret;

	h->ndim = 0;
	if (!accept(c, '('))
		return expected(c, "a tuple for 'shape'");
	for (;;) {
		/* ')' closes an empty tuple or follows a trailing comma. */
		if (accept(c, ')'))
			return 0;
		if (h->ndim == NPY_MAX_DIMS)
			return why_fail(-EINVAL, c->why, c->why_len,
					"too many dimensions (at most %d)", NPY_MAX_DIMS);
		ret = parse_dim(c, &h->shape[h->ndim]);
		if (ret)
			return ret;
		h->ndim++;
		if (accept(c, ','))
			continue;
		if (!accept(c, ')'))
			return expected(c, "',' or ')' in 'shape'");
		if (h->ndim == 1)
			return why_fail(-EINVAL, c->why, c->why_len,
					"shape (%" PRId64 ") is not a tuple "
					"(a 1-D shape is written (%" PRId64 ",))",
					h->shape[0], h->shape[0]);
		return 0;
	}
}

enum header_key {
	KEY_DESCR = 1 << 0,
	KEY_FORTRAN_ORDER = 1 << 1,
	KEY_SHAPE = 1 << 2,
};

static const struct {
	const char *name;
	enum header_key key;
} header_keys[] = {
	{ "descr", KEY_DESCR },
	{ "fortran_order", KEY_FORTRAN_ORDER },
	{ "shape", KEY_SHAPE },
};

#define HEADER_KEY_COUNT ((int)(sizeof(header_keys) / sizeof(header_keys[0])))

static int parse_item(struct cursor *c, struct header *h, unsigned int *seen)
{
	char name[STRING_MAX], shown[STRING_MAX];
	int i, ret;

	ret = parse_string(c, name, sizeof(name));
	if (ret)
		return ret;
	for (i = 0; i < HEADER_KEY_COUNT; i++)
		if (!strcmp(name, header_keys[i].name))
			break;
	if (i == HEADER_KEY_COUNT) {
		printable(shown, sizeof(shown), name);
		return why_fail(-EINVAL, c->why, c->why_len, "unknown key '%s' in header", shown);
	}
	if (*seen & header_keys[i].key)
		return why_fail(-EINVAL, c->why, c->why_len, "duplicate key '%s' in header", name);
	*seen |= header_keys[i].key;
	if (!accept(c, ':'))
		return expected(c, "':' after a key");
	switch (header_keys[i].key) {
	case KEY_DESCR:
		return parse_descr(c, h);
	case KEY_FORTRAN_ORDER:
		return parse_fortran_order(c);
	case KEY_SHAPE:
		return parse_shape(c, h);
	}
	return -EINVAL;
}

/* text[len] is the header without its final newline. */
static int parse_header(const char *text, size_t len, struct header *h, char *why,
			size_t why_len)
{
	struct cursor c = { text, text, text + len, why, why_len };
	unsigned int seen = 0;
	int ret;

	if (!accept(&c, '{'))
		return expected(&c, "'{'");
	for (;;) {
		/* '}' closes an empty dict or follows a trailing comma. */
		if (accept(&c, '}'))
			break;
		ret = parse_item(&c, h, &seen);
		if (ret)
			return ret;
		if (accept(&c, ','))
			continue;
		if (!accept(&c, '}'))
			return expected(&c, "',' or '}'");
		break;
	}
	skip_space(&c);
	if (c.p != c.end)
		return expected(&c, "only padding after the dict");
	for (int i = 0; i < HEADER_KEY_COUNT; i++)
		if (!(seen & header_keys[i].key))
			return why_fail(-EINVAL, why, why_len, "missing key '%s' in header",
					header_keys[i].name);
	return 0;
}

/* ---- reading ---- */

/* Reads up to len bytes; *got says how many arrived. -EIO on a read error. */
static int read_some(FILE *f, void *buf, size_t len, size_t *got)
{
	*got = fread(buf, 1, len, f);
	return ferror(f) ? -EIO : 0;
}

/*
 * Reads the preamble; on success *text holds the header (malloc'd, final newline
 * replaced by NUL), *text_len its length without the newline, *preamble the offset of
 * the data (on failure NULL, 0 and 0). file_size is -1 when unknown.
 */
static int read_preamble(FILE *f, int64_t file_size, char **text, size_t *text_len,
			 uint64_t *preamble, char *why, size_t why_len)
{
	unsigned char fixed[MAGIC_LEN + 2 + 4];
	size_t got, len_size, fixed_len;
	uint32_t header_len = 0;
	char *buf;
	int ret;

	*text = NULL;
	*text_len = 0;
	*preamble = 0;
	ret = read_some(f, fixed, MAGIC_LEN + 2, &got);
	if (ret)
		return ret;
	if (got == 0)
		return why_fail(-EINVAL, why, why_len, "empty file: not a .npy file");
	if (memcmp(fixed, MAGIC, got < MAGIC_LEN ? got : MAGIC_LEN))
		return why_fail(-EINVAL, why, why_len, "bad magic: not a .npy file");
	if (got < MAGIC_LEN + 2)
		return why_fail(-EINVAL, why, why_len,
				"truncated preamble: file ends after %zu bytes", got);
	if (fixed[6] < 1 || fixed[6] > 3 || fixed[7] != 0)
		return why_fail(-EINVAL, why, why_len,
				"unsupported .npy format version %u.%u (accepted: 1.0, 2.0, 3.0)",
				fixed[6], fixed[7]);
	len_size = fixed[6] == 1 ? 2 : 4;
	ret = read_some(f, fixed + MAGIC_LEN + 2, len_size, &got);
	if (ret)
		return ret;
	if (got < len_size)
		return why_fail(-EINVAL, why, why_len,
				"truncated preamble: file ends after %zu bytes",
				MAGIC_LEN + 2 + got);
	for (size_t i = 0; i < len_size; i++)
		header_len |= (uint32_t)fixed[MAGIC_LEN + 2 + i] << (8 * i);
	fixed_len = MAGIC_LEN + 2 + len_size;
	*preamble = fixed_len + header_len;

	if (header_len > HEADER_MAX)
		return why_fail(-EINVAL, why, why_len,
				"header length %" PRIu32 " is over the limit of %" PRIu32 " bytes",
				header_len, HEADER_MAX);
	if (file_size >= 0 && *preamble > (uint64_t)file_size)
		return why_fail(-EINVAL, why, why_len,
				"header length %" PRIu32 " runs past the end of the file "
				"(%" PRId64 " bytes)",
				header_len, file_size);
	if (*preamble % ALIGN_READ)
		return why_fail(-EINVAL, why, why_len,
				"preamble of %" PRIu64 " bytes is not a multiple of %d", *preamble,
				ALIGN_READ);

	buf = malloc(header_len ? header_len : 1);
	if (!buf)
		return -ENOMEM;
	ret = read_some(f, buf, header_len, &got);
	if (ret)
		goto out_free;
	ret = -EINVAL;
	if (got < header_len) {
		why_set(why, why_len, "truncated header: %" PRIu32 " bytes promised, %zu present",
			header_len, got);
		goto out_free;
	}
	if (header_len == 0 || buf[header_len - 1] != '\n') {
		why_set(why, why_len, "header not terminated by a newline");
		goto out_free;
	}
	for (size_t i = 0; i < header_len; i++) {
		unsigned char ch = (unsigned char)buf[i];

		if (ch == 0) {
			why_set(why, why_len, "NUL byte in the header at byte %zu", i);
			goto out_free;
		}
		/* Version 3.0 allows UTF-8; the grammar refuses it later where it matters. */
		if (ch >= 0x80 && fixed[6] < 3) {
			why_set(why, why_len, "non-ASCII byte in a version %u.0 header", fixed[6]);
			goto out_free;
		}
	}
	buf[header_len - 1] = '\0';
	*text = buf;
	*text_len = header_len - 1;
	return 0;

out_free:
	free(buf);
	return ret;
}

/*
 * Reads need bytes of data into a new buffer. *got says how many arrived; it is less than
 * need only when the file ended early. Without a known file size the buffer grows as data
 * arrives, so a lying header cannot make us allocate more than the file holds.
 */
static int read_data(FILE *f, size_t need, bool size_known, unsigned char **out, size_t *got)
{
	size_t cap = size_known || need < CHUNK_FIRST ? need : CHUNK_FIRST;
	unsigned char *buf, *grown;
	size_t n;
	int ret;

	*got = 0;
	/* At least one float, so an empty array still has a non-NULL data pointer. */
	buf = malloc(cap ? cap : sizeof(float));
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ret = read_some(f, buf + *got, cap - *got, &n);
		*got += n;
		if (ret)
			goto out_free;
		if (*got < cap || cap == need)
			break;
		cap = cap > need / 2 ? need : cap * 2;
		grown = realloc(buf, cap);
		if (!grown) {
			ret = -ENOMEM;
			goto out_free;
		}
		buf = grown;
	}
	*out = buf;
	return 0;

out_free:
	free(buf);
	return ret;
}

/* Converts count doubles to floats in place; float i never overwrites an unread double. */
static void narrow_in_place(unsigned char *buf, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		double d;
		float x;

		memcpy(&d, buf + 8 * i, sizeof(d));
		/* Out-of-range values become infinities (IEC 60559 conversion). */
		x = (float)d;
		memcpy(buf + 4 * i, &x, sizeof(x));
	}
}

/*
 * count and bytes for a shape; -EINVAL for a dimension outside [0, 2^40] or more than
 * 2^40 bytes in all.
 */
static int shape_size(int ndim, const int64_t *shape, int elem_size, size_t *count,
		      uint64_t *bytes)
{
	uint64_t n = 1;
	bool empty = false;

	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0 || shape[i] > DIM_MAX)
			return -EINVAL;
		if (shape[i] == 0)
			empty = true;
	}
	for (int i = 0; i < ndim && !empty; i++) {
		if (n > BYTES_MAX / (uint64_t)elem_size / (uint64_t)shape[i])
			return -EINVAL;
		n *= (uint64_t)shape[i];
	}
	if (empty)
		n = 0;
	if (n > SIZE_MAX / (uint64_t)elem_size)
		return -EINVAL;
	*count = (size_t)n;
	*bytes = n * (uint64_t)elem_size;
	return 0;
}

static int read_array(FILE *f, int64_t file_size, struct npy_array *a, char *why,
		      size_t why_len)
{
	char shape_text[NPY_MAX_DIMS * 24 + 4];
	struct header h = { 0 };
	unsigned char *data, *smaller;
	uint64_t preamble, need, avail;
	size_t text_len, count, got;
	char *text;
	int ret;

	ret = read_preamble(f, file_size, &text, &text_len, &preamble, why, why_len);
	if (ret)
		return ret;
	ret = parse_header(text, text_len, &h, why, why_len);
	free(text);
	if (ret)
		return ret;

	format_shape(shape_text, sizeof(shape_text), h.ndim, h.shape);
	if (shape_size(h.ndim, h.shape, h.elem_size, &count, &need))
		return why_fail(-EINVAL, why, why_len,
				"shape %s is too large (more than 2^40 bytes)", shape_text);
	if (file_size >= 0) {
		avail = (uint64_t)file_size - preamble;
		if (avail < need)
			return why_fail(-EINVAL, why, why_len,
					"truncated: shape %s needs %" PRIu64 " bytes of data, "
					"file has %" PRIu64,
					shape_text, need, avail);
		if (avail > need)
			return why_fail(-EINVAL, why, why_len,
					"file has %" PRIu64 " extra bytes after the data",
					avail - need);
	}

	ret = read_data(f, (size_t)need, file_size >= 0, &data, &got);
	if (ret)
		return ret;
	ret = -EINVAL;
	if (got < need) {
		why_set(why, why_len,
			"truncated: shape %s needs %" PRIu64 " bytes of data, file has %zu",
			shape_text, need, got);
		goto out_free;
	}
	if (fgetc(f) != EOF) {
		why_set(why, why_len, "file has extra bytes after the data");
		goto out_free;
	}
	if (ferror(f)) {
		ret = -EIO;
		goto out_free;
	}

	if (h.elem_size == 8 && count) {
		narrow_in_place(data, count);
		smaller = realloc(data, count * sizeof(float));
		if (smaller)
			data = smaller;
	}
	a->ndim = h.ndim;
	memcpy(a->shape, h.shape, sizeof(h.shape));
	a->count = count;
	a->data = (float *)data;
	return 0;

out_free:
	free(data);
	return ret;
}

int npy_read(const char *path, struct npy_array *a, char *why, size_t why_len)
{
	int64_t file_size = -1;
	struct stat st;
	FILE *f;
	int ret;

	memset(a, 0, sizeof(*a));
	why_set(why, why_len, "%s", "");
	f = fopen(path, "rb");
	if (!f) {
		ret = -errno;
		why_set(why, why_len, "%s", strerror(-ret));
		return ret;
	}
	if (fstat(fileno(f), &st)) {
		ret = -errno;
		goto out_close;
	}
	if (S_ISDIR(st.st_mode)) {
		ret = -EISDIR;
		goto out_close;
	}
	if (S_ISREG(st.st_mode))
		file_size = (int64_t)st.st_size;
	ret = read_array(f, file_size, a, why, why_len);
	if (!ret && S_ISREG(st.st_mode)) {
		ret = digest_sha256_fd(fileno(f), a->sha256);	/* the bytes just read */
		if (ret)
			npy_release(a);
	}
out_close:
	fclose(f);
	if (ret && ret != -EINVAL)
		why_set(why, why_len, "%s", strerror(-ret));
	return ret;
}

/* ---- writing ---- */

int npy_write(const char *path, const float *data, int ndim, const int64_t *shape)
{
	/* The dict with eight 13-digit dimensions stays well under this. */
	char preamble[ALIGN_WRITE * 8];
	char shape_text[NPY_MAX_DIMS * 24 + 4];
	size_t count, len, header_len;
	struct outfile out;
	uint64_t bytes;
	int ret;

	if (ndim < 0 || ndim > NPY_MAX_DIMS || (ndim && !shape))
		return -EINVAL;
	if (shape_size(ndim, shape, sizeof(float), &count, &bytes))
		return -EINVAL;
	if (count && !data)
		return -EINVAL;

	format_shape(shape_text, sizeof(shape_text), ndim, shape);
	memcpy(preamble, MAGIC, MAGIC_LEN);
	preamble[6] = 1;
	preamble[7] = 0;
	len = MAGIC_LEN + 4;
	len += (size_t)snprintf(preamble + len, sizeof(preamble) - len,
				"{'descr': '<f4', 'fortran_order': False, 'shape': %s, }",
				shape_text);
	/* Spaces, then the newline, to the next multiple of 64. */
	while ((len + 1) % ALIGN_WRITE)
		preamble[len++] = ' ';
	preamble[len++] = '\n';
	header_len = len - (MAGIC_LEN + 4);
	preamble[8] = (char)(header_len & 0xff);
	preamble[9] = (char)(header_len >> 8);

	ret = outfile_open(&out, path, NULL, NULL, 0);
	if (ret)
		return ret;
	errno = 0;
	if (fwrite(preamble, 1, len, out.f) != len ||
	    (count && fwrite(data, sizeof(float), count, out.f) != count)) {
		ret = errno ? -errno : -EIO;
		outfile_abort(&out);
		return ret;
	}
	return outfile_commit(&out, NULL, 0);
}

void npy_release(struct npy_array *a)
{
	free(a->data);
	a->data = NULL;
	a->count = 0;
	a->ndim = 0;
}
