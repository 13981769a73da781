/*
 * test-npy.c - .npy files round trip, hand-built files in every accepted form read back,
 * and each kind of malformed or unsupported file is refused with a reason.
 *
 * The hand-built files come from make_npy() below, written from the format description
 * and independent of npy_write(), so the reader and the writer check each other.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "npy.h"

static char tmp_dir[] = "/tmp/test-npy-XXXXXX";
static char path_buf[512];

static const char *tmp_path(const char *name)
{
	snprintf(path_buf, sizeof(path_buf), "%s/%s", tmp_dir, name);
	return path_buf;
}

static void write_bytes(const char *path, const void *bytes, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	if (len)
		assert_int_equal(fwrite(bytes, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Reads a whole file into buf; returns its length. */
static size_t read_bytes(const char *path, unsigned char *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	size_t len;

	assert_non_null(f);
	len = fread(buf, 1, cap, f);
	assert_true(feof(f));
	fclose(f);
	return len;
}

enum make_flags {
	MAKE_NO_NEWLINE = 1 << 0,	/* last header byte a space instead of '\n' */
	MAKE_ALIGN_16 = 1 << 1,		/* pad the preamble to 16 bytes, as old NumPy did */
	MAKE_MISALIGN = 1 << 2,		/* one byte more padding than 64-byte alignment */
};

/*
 * Builds a .npy file in buf: magic, version major.0, header length (2 bytes for 1.0,
 * 4 otherwise), dict[dict_len], spaces, '\n', then data[data_len] (zeros if data is
 * NULL). Returns the file's length.
 */
static size_t make_npy(unsigned char *buf, size_t cap, int major, const char *dict,
		       size_t dict_len, const void *data, size_t data_len, int flags)
{
	size_t len_size = major == 1 ? 2 : 4;
	size_t fixed = 6 + 2 + len_size;
	size_t align = flags & MAKE_ALIGN_16 ? 16 : 64;
	size_t preamble = fixed + dict_len + 1;
	size_t header_len;

	preamble = (preamble + align - 1) / align * align;
	if (flags & MAKE_MISALIGN)
		preamble++;
	assert_true(preamble + data_len <= cap);
	header_len = preamble - fixed;

	memcpy(buf, "\x93NUMPY", 6);
	buf[6] = (unsigned char)major;
	buf[7] = 0;
	for (size_t i = 0; i < len_size; i++)
		buf[8 + i] = (unsigned char)(header_len >> (8 * i));
	memcpy(buf + fixed, dict, dict_len);
	memset(buf + fixed + dict_len, ' ', preamble - fixed - dict_len);
	buf[preamble - 1] = flags & MAKE_NO_NEWLINE ? ' ' : '\n';
	if (data)
		memcpy(buf + preamble, data, data_len);
	else
		memset(buf + preamble, 0, data_len);
	return preamble + data_len;
}

static size_t make_npy_text(unsigned char *buf, size_t cap, int major, const char *dict,
			    const void *data, size_t data_len)
{
	return make_npy(buf, cap, major, dict, strlen(dict), data, data_len, 0);
}

/* Little-endian bytes of a double, from its bit pattern, one byte at a time. */
static void put_f64(unsigned char *out, double d)
{
	uint64_t bits;

	memcpy(&bits, &d, sizeof(bits));
	for (int i = 0; i < 8; i++)
		out[i] = (unsigned char)(bits >> (8 * i));
}

static void put_f32(unsigned char *out, float x)
{
	uint32_t bits;

	memcpy(&bits, &x, sizeof(bits));
	for (int i = 0; i < 4; i++)
		out[i] = (unsigned char)(bits >> (8 * i));
}

static void roundtrip(const char *name, int ndim, const int64_t *shape)
{
	struct npy_array a = { 0 };
	size_t count = 1;
	char why[256];
	float *data;

	for (int i = 0; i < ndim; i++)
		count *= (size_t)shape[i];
	data = malloc((count ? count : 1) * sizeof(*data));
	assert_non_null(data);
	for (size_t i = 0; i < count; i++)
		data[i] = (float)i * 0.37f - 11.0f;
	if (count > 2) {
		/* Awkward values must survive bit for bit. */
		data[0] = -0.0f;
		data[1] = INFINITY;
		data[2] = 1e-42f;
	}
	assert_int_equal(npy_write(tmp_path(name), data, ndim, shape), 0);
	assert_int_equal(npy_read(tmp_path(name), &a, why, sizeof(why)), 0);
	assert_string_equal(why, "");
	assert_int_equal(a.ndim, ndim);
	for (int i = 0; i < ndim; i++)
		assert_int_equal(a.shape[i], shape[i]);
	assert_int_equal(a.count, count);
	assert_non_null(a.data);
	if (count)
		assert_memory_equal(a.data, data, count * sizeof(*data));
	npy_release(&a);
	assert_null(a.data);
	free(data);
}

static void test_npy_roundtrips_a_1d_float32_array(void **state)
{
	const int64_t shape[] = { 17 };

	(void)state;
	roundtrip("1d.npy", 1, shape);
}

static void test_npy_roundtrips_a_4d_float32_array(void **state)
{
	const int64_t shape[] = { 2, 3, 5, 7 };

	(void)state;
	roundtrip("4d.npy", 4, shape);
}

static void test_npy_roundtrips_a_zero_length_array(void **state)
{
	const int64_t empty_1d[] = { 0 };
	const int64_t empty_3d[] = { 4, 0, 3 };

	(void)state;
	roundtrip("empty-1d.npy", 1, empty_1d);
	roundtrip("empty-3d.npy", 3, empty_3d);
}

static void test_npy_roundtrips_a_0d_scalar(void **state)
{
	(void)state;
	roundtrip("scalar.npy", 0, NULL);
}

static void test_npy_roundtrips_eight_dimensions(void **state)
{
	const int64_t shape[NPY_MAX_DIMS] = { 1, 2, 1, 3, 1, 2, 1, 2 };

	(void)state;
	roundtrip("8d.npy", NPY_MAX_DIMS, shape);
}

static void test_npy_writes_the_header_numpy_writes(void **state)
{
	static const char dict[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
	const int64_t shape[] = { 2, 3 };
	const float data[6] = { 1, 2, 3, 4, 5, 6 };
	unsigned char buf[512], expect[4];
	size_t len, header_len, preamble;

	(void)state;
	assert_int_equal(npy_write(tmp_path("header.npy"), data, 2, shape), 0);
	len = read_bytes(tmp_path("header.npy"), buf, sizeof(buf));
	assert_memory_equal(buf, "\x93NUMPY", 6);
	assert_int_equal(buf[6], 1);
	assert_int_equal(buf[7], 0);
	header_len = buf[8] | (size_t)buf[9] << 8;
	preamble = 10 + header_len;
	assert_int_equal(preamble % 64, 0);
	assert_int_equal(len, preamble + sizeof(data));
	assert_memory_equal(buf + 10, dict, strlen(dict));
	/* Padding is spaces only, and no more than needed to reach the next 64 bytes. */
	for (size_t i = 10 + strlen(dict); i < preamble - 1; i++)
		assert_int_equal(buf[i], ' ');
	assert_int_equal(buf[preamble - 1], '\n');
	assert_true(preamble - (10 + strlen(dict) + 1) < 64);
	for (int i = 0; i < 6; i++) {
		put_f32(expect, data[i]);
		assert_memory_equal(buf + preamble + 4 * i, expect, 4);
	}
}

static void test_npy_writes_1d_and_0d_shapes_as_python_tuples(void **state)
{
	static const char dict_1d[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }";
	static const char dict_0d[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (), }";
	const int64_t shape[] = { 5 };
	const float data[5] = { 0 };
	unsigned char buf[512];
	size_t len;

	(void)state;
	assert_int_equal(npy_write(tmp_path("tuple-1d.npy"), data, 1, shape), 0);
	len = read_bytes(tmp_path("tuple-1d.npy"), buf, sizeof(buf));
	assert_int_equal(len, 128 + sizeof(data));
	assert_memory_equal(buf + 10, dict_1d, strlen(dict_1d));
	assert_int_equal(npy_write(tmp_path("tuple-0d.npy"), data, 0, NULL), 0);
	len = read_bytes(tmp_path("tuple-0d.npy"), buf, sizeof(buf));
	assert_int_equal(len, 128 + sizeof(float));
	assert_memory_equal(buf + 10, dict_0d, strlen(dict_0d));
}

static void test_npy_reads_a_hand_built_float64_file_as_float32(void **state)
{
	static const double values[6] = { 1.5, -2.25, 0.1, 1e-3, 3e38, -1e300 };
	unsigned char data[sizeof(values)], buf[256];
	struct npy_array a = { 0 };
	char why[256];
	size_t len;

	(void)state;
	for (int i = 0; i < 6; i++)
		put_f64(data + 8 * i, values[i]);
	len = make_npy_text(buf, sizeof(buf), 1,
			    "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }",
			    data, sizeof(data));
	write_bytes(tmp_path("f8.npy"), buf, len);
	assert_int_equal(npy_read(tmp_path("f8.npy"), &a, why, sizeof(why)), 0);
	assert_int_equal(a.ndim, 2);
	assert_int_equal(a.shape[0], 3);
	assert_int_equal(a.shape[1], 2);
	assert_int_equal(a.count, 6);
	for (int i = 0; i < 5; i++)
		assert_true(a.data[i] == (float)values[i]);
	/* Beyond float range: IEC 60559 rounds to an infinity of the same sign. */
	assert_true(isinf(a.data[5]) && a.data[5] < 0);
	npy_release(&a);
}

static void read_good(const char *name, int major, const char *dict, int flags,
		      int ndim, const int64_t *shape)
{
	unsigned char buf[1024], data[256];
	struct npy_array a = { 0 };
	size_t count = 1, len;
	char why[256];

	for (int i = 0; i < ndim; i++)
		count *= (size_t)shape[i];
	assert_true(count * 4 <= sizeof(data));
	for (size_t i = 0; i < count; i++)
		put_f32(data + 4 * i, (float)i + 0.5f);
	len = make_npy(buf, sizeof(buf), major, dict, strlen(dict), data, count * 4, flags);
	write_bytes(tmp_path(name), buf, len);
	if (npy_read(tmp_path(name), &a, why, sizeof(why)))
		fail_msg("%s: %s", name, why);
	assert_int_equal(a.ndim, ndim);
	for (int i = 0; i < ndim; i++)
		assert_int_equal(a.shape[i], shape[i]);
	assert_int_equal(a.count, count);
	for (size_t i = 0; i < count; i++)
		assert_true(a.data[i] == (float)i + 0.5f);
	npy_release(&a);
}

static void test_npy_reads_version_2_and_3_headers(void **state)
{
	const int64_t shape[] = { 2, 3 };

	(void)state;
	read_good("v2.npy", 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
		  0, 2, shape);
	read_good("v3.npy", 3, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
		  0, 2, shape);
}

static void test_npy_reads_double_quotes_reordered_keys_and_no_trailing_comma(void **state)
{
	const int64_t shape[] = { 4 };
	const int64_t shape_2d[] = { 3, 2 };

	(void)state;
	read_good("quotes.npy", 1,
		  "{\"shape\": (4,), \"descr\": \"<f4\", \"fortran_order\": False}", 0, 1, shape);
	read_good("mixed.npy", 1, "{'fortran_order':False,\"shape\":(3,2,),'descr':'<f4'}",
		  0, 2, shape_2d);
	read_good("spaced.npy", 1, "  { 'descr' : '<f4' , 'fortran_order' : False , "
		  "'shape' : ( 3 , 2 ) , }  ", 0, 2, shape_2d);
}

static void test_npy_reads_a_preamble_aligned_to_16_bytes(void **state)
{
	const int64_t shape[] = { 3 };

	(void)state;
	read_good("align16.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
		  MAKE_ALIGN_16, 1, shape);
}

static void test_npy_reads_python_2_long_dimensions(void **state)
{
	const int64_t shape[] = { 2, 3 };

	(void)state;
	read_good("long.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }",
		  0, 2, shape);
}

/* ---- refusals ---- */

struct bad_file {
	const char *reason;	/* expected within why */
	const char *dict;	/* header dict; the test pads and terminates it */
	size_t dict_len;	/* 0: strlen(dict) */
	int major;		/* 0: 1 */
	int flags;		/* enum make_flags */
	size_t data_len;	/* zero bytes after the header */
	const char *raw;	/* instead of dict: the whole file */
	size_t raw_len;
};

#define GOOD_2X3 "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
#define RAW(s) .raw = s, .raw_len = sizeof(s) - 1

static const struct bad_file bad_magic = {
	.reason = "bad magic", RAW("\x93NUMPZ\x01\x00\x76\x00{'descr': '<f4'}     \n"),
};
static const struct bad_file text_file = {
	.reason = "bad magic", RAW("descr,fortran_order,shape\n1,2,3\n"),
};
static const struct bad_file empty_file = { .reason = "empty file", RAW("") };
static const struct bad_file truncated_magic = {
	.reason = "truncated preamble: file ends after 4 bytes", RAW("\x93NUM"),
};
static const struct bad_file truncated_preamble = {
	.reason = "truncated preamble: file ends after 9 bytes", RAW("\x93NUMPY\x01\x00\x46"),
};
static const struct bad_file header_past_the_file = {
	.reason = "runs past the end of the file",
	RAW("\x93NUMPY\x01\x00\xf6\x0f{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}\n"),
};
static const struct bad_file header_over_the_limit = {
	.reason = "over the limit",
	RAW("\x93NUMPY\x02\x00\xf4\xff\xff\x7f{'descr': '<f4', 'fortran_order': False}\n"),
};
static const struct bad_file unknown_version = {
	.reason = "unsupported .npy format version 4.0",
	RAW("\x93NUMPY\x04\x00\x74\x00\x00\x00{'descr': '<f4', 'fortran_order': False}\n"),
};
static const struct bad_file unknown_minor_version = {
	.reason = "unsupported .npy format version 1.1",
	RAW("\x93NUMPY\x01\x01\x76\x00{'descr': '<f4', 'fortran_order': False}\n"),
};
static const struct bad_file misaligned_preamble = {
	.reason = "not a multiple", .dict = GOOD_2X3, .flags = MAKE_MISALIGN, .data_len = 24,
};
static const struct bad_file header_without_newline = {
	.reason = "not terminated by a newline",
	.dict = GOOD_2X3, .flags = MAKE_NO_NEWLINE, .data_len = 24,
};
static const struct bad_file missing_key = {
	.reason = "missing key 'shape'", .dict = "{'descr': '<f4', 'fortran_order': False, }",
};
static const struct bad_file empty_dict = { .reason = "missing key 'descr'", .dict = "{}" };
static const struct bad_file duplicate_key = {
	.reason = "duplicate key 'descr'",
	.dict = "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
	.data_len = 24,
};
static const struct bad_file unknown_key = {
	.reason = "unknown key 'extra'",
	.dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'extra': 1}",
	.data_len = 24,
};
static const struct bad_file fortran_order = {
	.reason = "fortran_order arrays are not supported (save with np.ascontiguousarray)",
	.dict = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", .data_len = 24,
};
static const struct bad_file fortran_order_not_bool = {
	.reason = "expected True or False",
	.dict = "{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3), }",
	.data_len = 24,
};
static const struct bad_file dtype_int32 = {
	.reason = "unsupported dtype '<i4' (accepted: '<f4', '<f8')",
	.dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", .data_len = 24,
};
static const struct bad_file dtype_big_endian = {
	.reason = "unsupported dtype '>f4'",
	.dict = "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }",
	.data_len = 24,
};
static const struct bad_file dtype_half = {
	.reason = "unsupported dtype '<f2'",
	.dict = "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }",
	.data_len = 12,
};
static const struct bad_file dtype_native_order = {
	.reason = "unsupported dtype '=f4'",
	.dict = "{'descr': '=f4', 'fortran_order': False, 'shape': (2, 3), }",
	.data_len = 24,
};
static const struct bad_file dtype_structured = {
	.reason = "structured arrays",
	.dict = "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2, 3), }",
	.data_len = 24,
};
static const struct bad_file negative_dim = {
	.reason = "negative dimension",
	.dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }",
};
static const struct bad_file fractional_dim = {
	.reason = "non-negative integers",
	.dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2.5, 3), }",
};
static const struct bad_file string_dim = {
	.reason = "non-negative integers",
	.dict = "{'descr': '<f4', 'fortran_order': False, 'shape': ('2', 3), }",
};
static const struct bad_file hex_dim = {
	.reason = "non-negative integers",
	.dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (0x10,), }",
};
static const struct bad_file huge_dim = {
	.reason = "too large", .dict = "{'descr': '<f4', 'fortran_order': False, "
	"'shape': (99999999999999999999999999999999,), }",
};
static const struct bad_file overflowing_product = {
	.reason = "too large", .dict = "{'descr': '<f4', 'fortran_order': False, "
	"'shape': (1099511627776, 1099511627776, 1099511627776), }",
};
static const struct bad_file too_many_dims = {
	.reason = "too many dimensions", .dict = "{'descr': '<f4', 'fortran_order': False, "
	"'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }", .data_len = 4,
};
static const struct bad_file shape_not_a_tuple = {
	.reason = "not a tuple", .dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (5), }",
	.data_len = 20,
};
static const struct bad_file shape_a_list = {
	.reason = "expected a tuple",
	.dict = "{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }",
	.data_len = 24,
};
static const struct bad_file short_data = {
	.reason = "truncated: shape (2, 3) needs 24 bytes of data, file has 20",
	.dict = GOOD_2X3, .data_len = 20,
};
static const struct bad_file short_float64_data = {
	.reason = "truncated: shape (3,) needs 24 bytes of data, file has 12",
	.dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", .data_len = 12,
};
static const struct bad_file extra_data = {
	.reason = "file has 4 extra bytes after the data", .dict = GOOD_2X3, .data_len = 28,
};
static const struct bad_file code_in_the_dict = {
	.reason = "malformed header",
	.dict = "{'descr': __import__('os').system('true'), 'fortran_order': False, "
		"'shape': (1,), }",
	.data_len = 4,
};
static const struct bad_file code_after_the_dict = {
	.reason = "malformed header", .dict = GOOD_2X3 " or __import__('os')", .data_len = 24,
};
static const struct bad_file nul_in_the_header = {
	.reason = "NUL byte",
	.dict = "{'descr': '<f4'\0, 'fortran_order': False, 'shape': (2, 3), }",
	.dict_len = sizeof("{'descr': '<f4'\0, 'fortran_order': False, 'shape': (2, 3), }") - 1,
	.data_len = 24,
};
static const struct bad_file non_ascii_header = {
	.reason = "non-ASCII",
	.dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), '\xc3\xa9': 1}",
	.data_len = 24,
};
static const struct bad_file escape_in_a_string = {
	.reason = "escape",
	.dict = "{'descr': '<f\\x34', 'fortran_order': False, 'shape': (2, 3), }",
	.data_len = 24,
};
static const struct bad_file unterminated_string = {
	.reason = "unterminated string",
	.dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x}",
	.data_len = 24,
};
static const struct bad_file missing_colon = {
	.reason = "expected ':'",
	.dict = "{'descr' '<f4', 'fortran_order': False, 'shape': (2, 3), }",
	.data_len = 24,
};
static const struct bad_file unclosed_dict = {
	.reason = "malformed header",
	.dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)",
	.data_len = 24,
};

static void test_npy_refuses(void **state)
{
	const struct bad_file *bad = *state;
	unsigned char buf[1024];
	struct npy_array a = { 0 };
	char why[256] = "unchanged";
	size_t len;
	int ret;

	if (bad->raw) {
		memcpy(buf, bad->raw, bad->raw_len);
		len = bad->raw_len;
	} else {
		len = make_npy(buf, sizeof(buf), bad->major ? bad->major : 1, bad->dict,
			       bad->dict_len ? bad->dict_len : strlen(bad->dict), NULL,
			       bad->data_len, bad->flags);
	}
	write_bytes(tmp_path("bad.npy"), buf, len);
	ret = npy_read(tmp_path("bad.npy"), &a, why, sizeof(why));
	if (ret != -EINVAL)
		fail_msg("expected -EINVAL, got %d (%s)", ret, why);
	assert_null(a.data);
	assert_int_equal(a.count, 0);
	assert_true(why[0] != '\0');
	assert_null(strchr(why, '\n'));
	if (!strstr(why, bad->reason))
		fail_msg("reason '%s' does not contain '%s'", why, bad->reason);
	npy_release(&a);
}

#define REFUSES(name) { "test_npy_refuses_" #name, test_npy_refuses, NULL, NULL, \
			(void *)&name }

static void test_npy_read_of_a_missing_file_is_enoent(void **state)
{
	struct npy_array a = { 0 };
	char why[256];

	(void)state;
	assert_int_equal(npy_read(tmp_path("no-such-file.npy"), &a, why, sizeof(why)), -ENOENT);
	assert_null(a.data);
}

static void test_npy_read_of_a_directory_is_an_error(void **state)
{
	struct npy_array a = { 0 };

	(void)state;
	assert_int_equal(npy_read(tmp_dir, &a, NULL, 0), -EISDIR);
	assert_null(a.data);
}

static void test_npy_read_works_without_why(void **state)
{
	const int64_t shape[] = { 3 };
	const float data[3] = { 1, 2, 3 };
	struct npy_array a = { 0 };

	(void)state;
	assert_int_equal(npy_write(tmp_path("nowhy.npy"), data, 1, shape), 0);
	assert_int_equal(npy_read(tmp_path("nowhy.npy"), &a, NULL, 0), 0);
	npy_release(&a);
	write_bytes(tmp_path("nowhy.npy"), "junk", 4);
	assert_int_equal(npy_read(tmp_path("nowhy.npy"), &a, NULL, 0), -EINVAL);
}

static void test_npy_truncates_the_reason_to_why_len(void **state)
{
	struct npy_array a = { 0 };
	unsigned char buf[256];
	char why[12];
	size_t len;

	(void)state;
	memset(why, 'x', sizeof(why));
	len = make_npy_text(buf, sizeof(buf), 1,
			    "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", NULL, 8);
	write_bytes(tmp_path("why.npy"), buf, len);
	assert_int_equal(npy_read(tmp_path("why.npy"), &a, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "unsupported");
}

/* Writes len bytes of buf into a FIFO from a child, as a shell's <(...) would. */
static int read_through_a_pipe(const unsigned char *buf, size_t len, struct npy_array *a,
			       char *why, size_t why_len)
{
	const char *path = tmp_path("fifo");
	char fifo[sizeof(path_buf)];
	int status, ret;
	pid_t pid;

	snprintf(fifo, sizeof(fifo), "%s", path);
	unlink(fifo);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		FILE *f = fopen(fifo, "wb");

		if (!f)
			_exit(1);
		fwrite(buf, 1, len, f);
		_exit(fclose(f) ? 1 : 0);
	}
	ret = npy_read(fifo, a, why, why_len);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	unlink(fifo);
	return ret;
}

static void test_npy_reads_from_a_pipe_and_checks_its_length(void **state)
{
	unsigned char buf[256], data[24];
	struct npy_array a = { 0 };
	char why[256];
	size_t len;

	(void)state;
	for (int i = 0; i < 6; i++)
		put_f32(data + 4 * i, (float)i);
	len = make_npy_text(buf, sizeof(buf), 1, GOOD_2X3, data, sizeof(data));
	assert_int_equal(read_through_a_pipe(buf, len, &a, why, sizeof(why)), 0);
	assert_int_equal(a.count, 6);
	assert_true(a.data[5] == 5.0f);
	npy_release(&a);

	assert_int_equal(read_through_a_pipe(buf, len - 4, &a, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "truncated: shape (2, 3) needs 24 bytes of data, file has 20");
	buf[len] = 0;
	assert_int_equal(read_through_a_pipe(buf, len + 1, &a, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "file has extra bytes after the data");
	assert_null(a.data);
}

static void test_npy_write_to_a_missing_directory_fails(void **state)
{
	const int64_t shape[] = { 1 };
	const float data[1] = { 1 };

	(void)state;
	assert_int_equal(npy_write(tmp_path("no-such-dir/x.npy"), data, 1, shape), -ENOENT);
}

static void test_npy_write_reports_errors_found_at_close(void **state)
{
	const int64_t shape[] = { 4 };
	const float data[4] = { 1, 2, 3, 4 };

	(void)state;
	if (access("/dev/full", W_OK))
		skip();
	/* Small writes sit in the stdio buffer, so ENOSPC surfaces only at fclose(). */
	assert_int_equal(npy_write("/dev/full", data, 1, shape), -ENOSPC);
}

static void test_npy_write_refuses_bad_shapes(void **state)
{
	const int64_t negative[] = { 2, -1 };
	const int64_t huge[] = { (int64_t)1 << 40, (int64_t)1 << 40 };
	const int64_t nine[NPY_MAX_DIMS + 1] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 };
	const int64_t two[] = { 2 };
	const float data[2] = { 0 };

	(void)state;
	assert_int_equal(npy_write(tmp_path("w.npy"), data, 2, negative), -EINVAL);
	assert_int_equal(npy_write(tmp_path("w.npy"), data, 2, huge), -EINVAL);
	assert_int_equal(npy_write(tmp_path("w.npy"), data, NPY_MAX_DIMS + 1, nine), -EINVAL);
	assert_int_equal(npy_write(tmp_path("w.npy"), data, -1, two), -EINVAL);
	assert_int_equal(npy_write(tmp_path("w.npy"), NULL, 1, two), -EINVAL);
}

static int make_tmp_dir(void **state)
{
	(void)state;
	return mkdtemp(tmp_dir) ? 0 : -1;
}

static int remove_tmp_dir(void **state)
{
	struct dirent *e;
	DIR *d;

	(void)state;
	d = opendir(tmp_dir);
	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlink(tmp_path(e->d_name));
	closedir(d);
	return rmdir(tmp_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_npy_roundtrips_a_1d_float32_array),
		cmocka_unit_test(test_npy_roundtrips_a_4d_float32_array),
		cmocka_unit_test(test_npy_roundtrips_a_zero_length_array),
		cmocka_unit_test(test_npy_roundtrips_a_0d_scalar),
		cmocka_unit_test(test_npy_roundtrips_eight_dimensions),
		cmocka_unit_test(test_npy_writes_the_header_numpy_writes),
		cmocka_unit_test(test_npy_writes_1d_and_0d_shapes_as_python_tuples),
		cmocka_unit_test(test_npy_reads_a_hand_built_float64_file_as_float32),
		cmocka_unit_test(test_npy_reads_version_2_and_3_headers),
		cmocka_unit_test(test_npy_reads_double_quotes_reordered_keys_and_no_trailing_comma),
		cmocka_unit_test(test_npy_reads_a_preamble_aligned_to_16_bytes),
		cmocka_unit_test(test_npy_reads_python_2_long_dimensions),
		REFUSES(bad_magic),
		REFUSES(text_file),
		REFUSES(empty_file),
		REFUSES(truncated_magic),
		REFUSES(truncated_preamble),
		REFUSES(header_past_the_file),
		REFUSES(header_over_the_limit),
		REFUSES(unknown_version),
		REFUSES(unknown_minor_version),
		REFUSES(misaligned_preamble),
		REFUSES(header_without_newline),
		REFUSES(missing_key),
		REFUSES(empty_dict),
		REFUSES(duplicate_key),
		REFUSES(unknown_key),
		REFUSES(fortran_order),
		REFUSES(fortran_order_not_bool),
		REFUSES(dtype_int32),
		REFUSES(dtype_big_endian),
		REFUSES(dtype_half),
		REFUSES(dtype_native_order),
		REFUSES(dtype_structured),
		REFUSES(negative_dim),
		REFUSES(fractional_dim),
		REFUSES(string_dim),
		REFUSES(hex_dim),
		REFUSES(huge_dim),
		REFUSES(overflowing_product),
		REFUSES(too_many_dims),
		REFUSES(shape_not_a_tuple),
		REFUSES(shape_a_list),
		REFUSES(short_data),
		REFUSES(short_float64_data),
		REFUSES(extra_data),
		REFUSES(code_in_the_dict),
		REFUSES(code_after_the_dict),
		REFUSES(nul_in_the_header),
		REFUSES(non_ascii_header),
		REFUSES(escape_in_a_string),
		REFUSES(unterminated_string),
		REFUSES(missing_colon),
		REFUSES(unclosed_dict),
		cmocka_unit_test(test_npy_read_of_a_missing_file_is_enoent),
		cmocka_unit_test(test_npy_read_of_a_directory_is_an_error),
		cmocka_unit_test(test_npy_read_works_without_why),
		cmocka_unit_test(test_npy_truncates_the_reason_to_why_len),
		cmocka_unit_test(test_npy_reads_from_a_pipe_and_checks_its_length),
		cmocka_unit_test(test_npy_write_to_a_missing_directory_fails),
		cmocka_unit_test(test_npy_write_reports_errors_found_at_close),
		cmocka_unit_test(test_npy_write_refuses_bad_shapes),
	};

	return cmocka_run_group_tests(tests, make_tmp_dir, remove_tmp_dir);
}
