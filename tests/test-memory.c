/*
 * test-memory.c - the counting allocator: alignment, live and peak bytes, reset,
 * zero-filling, overflow and NULL handling.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "memory.h"

/* Vector loads in the variants rely on this. */
#define ALIGNMENT 64

static void test_blocks_are_64_byte_aligned(void **state)
{
	static const size_t sizes[] = { 0, 1, 3, 63, 64, 65, 1000, 4096, 1 << 20 };

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		unsigned char *a = attn_alloc(sizes[i]);
		unsigned char *b = attn_calloc(sizes[i], 1);

		assert_non_null(a);
		assert_non_null(b);
		assert_int_equal((uintptr_t)a % ALIGNMENT, 0);
		assert_int_equal((uintptr_t)b % ALIGNMENT, 0);
		/* The whole block is usable. */
		memset(a, 0xa5, sizes[i]);
		attn_free(a);
		attn_free(b);
	}
}

static void test_live_bytes_count_blocks_in_and_out(void **state)
{
	size_t base = memory_live_bytes();
	void *a, *b;

	(void)state;
	a = attn_alloc(1000);
	assert_non_null(a);
	assert_int_equal(memory_live_bytes(), base + 1000);
	b = attn_calloc(10, 30);
	assert_non_null(b);
	assert_int_equal(memory_live_bytes(), base + 1300);
	attn_free(a);
	assert_int_equal(memory_live_bytes(), base + 300);
	attn_free(b);
	assert_int_equal(memory_live_bytes(), base);
}

static void test_peak_holds_the_highest_live_count_until_reset(void **state)
{
	size_t base = memory_live_bytes();
	void *a, *b, *c;

	(void)state;
	memory_reset_peak();
	assert_int_equal(memory_peak_bytes(), base);
	a = attn_alloc(5000);
	b = attn_alloc(3000);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(memory_peak_bytes(), base + 8000);
	attn_free(a);
	/* Freeing lowers the live count, never the peak. */
	assert_int_equal(memory_peak_bytes(), base + 8000);
	c = attn_alloc(1000);
	assert_non_null(c);
	assert_int_equal(memory_peak_bytes(), base + 8000);
	memory_reset_peak();
	assert_int_equal(memory_peak_bytes(), base + 4000);
	attn_free(b);
	attn_free(c);
	assert_int_equal(memory_peak_bytes(), base + 4000);
	memory_reset_peak();
	assert_int_equal(memory_peak_bytes(), base);
}

static void test_calloc_fills_with_zeros(void **state)
{
	unsigned char *a;

	(void)state;
	/* Dirty a block first so a reused one would show. */
	a = attn_alloc(4096);
	assert_non_null(a);
	memset(a, 0xff, 4096);
	attn_free(a);
	a = attn_calloc(1024, 4);
	assert_non_null(a);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(a[i], 0);
	attn_free(a);
}

static void test_oversized_requests_return_null_and_count_nothing(void **state)
{
	size_t base = memory_live_bytes();

	(void)state;
	assert_null(attn_calloc(SIZE_MAX / 2 + 1, 2));
	assert_null(attn_calloc(SIZE_MAX, SIZE_MAX));
	assert_null(attn_calloc(2, SIZE_MAX / 2 + 1));
	assert_null(attn_alloc(SIZE_MAX));
	assert_null(attn_alloc(SIZE_MAX - 10));
	assert_int_equal(memory_live_bytes(), base);
}

/*
 * Sizes just below the header limit must not wrap when the header and alignment
 * padding are added: the allocator would hand out a tiny block for a huge request.
 */
static void test_sizes_near_the_limit_do_not_wrap(void **state)
{
	size_t base = memory_live_bytes();

	(void)state;
	assert_null(attn_alloc(SIZE_MAX - 64));
	assert_null(attn_alloc(SIZE_MAX - 100));
	assert_null(attn_calloc(1, SIZE_MAX - 100));
	assert_int_equal(memory_live_bytes(), base);
}

static void test_freeing_null_does_nothing(void **state)
{
	size_t base = memory_live_bytes();

	(void)state;
	attn_free(NULL);
	assert_int_equal(memory_live_bytes(), base);
}

static void test_zero_counts_are_allocations_of_nothing(void **state)
{
	size_t base = memory_live_bytes();
	void *a = attn_calloc(0, 100), *b = attn_calloc(100, 0);

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(memory_live_bytes(), base);
	attn_free(a);
	attn_free(b);
	assert_int_equal(memory_live_bytes(), base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blocks_are_64_byte_aligned),
		cmocka_unit_test(test_live_bytes_count_blocks_in_and_out),
		cmocka_unit_test(test_peak_holds_the_highest_live_count_until_reset),
		cmocka_unit_test(test_calloc_fills_with_zeros),
		cmocka_unit_test(test_oversized_requests_return_null_and_count_nothing),
		cmocka_unit_test(test_sizes_near_the_limit_do_not_wrap),
		cmocka_unit_test(test_freeing_null_does_nothing),
		cmocka_unit_test(test_zero_counts_are_allocations_of_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
