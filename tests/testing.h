/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A small test harness in the style of the kernel's BPF selftests. Checks
 * return a bool so that a failing test still reaches its cleanup:
 *
 *	if (!ASSERT_EQ(got, want, "verdict"))
 *		goto out_close;
 *
 * Each test prints one line "PASS name", "FAIL name: why" or "SKIP name: why";
 * tests/run counts those lines across every suite.
 */
#ifndef FERRY_TESTING_H
#define FERRY_TESTING_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

struct test_state {
	int passed, failed, skipped;
	bool cur_failed, cur_skipped;
	const char *cur_name;
	const char *filter;
};

static struct test_state test_state;

static inline bool test__fail(const char *file, int line, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#include <stdarg.h>
static inline bool test__fail(const char *file, int line, const char *what, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "    %s:%d: %s: ", file, line, what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	test_state.cur_failed = true;
	return false;
}

#define ASSERT_TRUE(cond, what) \
	((cond) ? true : test__fail(__FILE__, __LINE__, (what), "expected true: %s", #cond))
#define ASSERT_FALSE(cond, what) \
	(!(cond) ? true : test__fail(__FILE__, __LINE__, (what), "expected false: %s", #cond))
#define ASSERT_EQ(got, want, what)                                                               \
	({                                                                                       \
		long long __g = (long long)(got), __w = (long long)(want);                       \
		__g == __w ?                                                                     \
			true :                                                                   \
			test__fail(__FILE__, __LINE__, (what), "got %lld, want %lld", __g, __w); \
	})
#define ASSERT_NEQ(got, bad, what)                                                                 \
	({                                                                                         \
		long long __g = (long long)(got), __b = (long long)(bad);                          \
		__g != __b ? true :                                                                \
			     test__fail(__FILE__, __LINE__, (what), "got %lld, must differ", __g); \
	})
#define ASSERT_LE(got, max, what)                                                               \
	({                                                                                      \
		double __g = (double)(got), __m = (double)(max);                                \
		__g <= __m ?                                                                    \
			true :                                                                  \
			test__fail(__FILE__, __LINE__, (what), "got %g, want <= %g", __g, __m); \
	})
#define ASSERT_GE(got, min, what)                                                               \
	({                                                                                      \
		double __g = (double)(got), __m = (double)(min);                                \
		__g >= __m ?                                                                    \
			true :                                                                  \
			test__fail(__FILE__, __LINE__, (what), "got %g, want >= %g", __g, __m); \
	})
#define ASSERT_OK(err, what)                                                              \
	({                                                                                \
		long long __e = (long long)(err);                                         \
		__e == 0 ? true :                                                         \
			   test__fail(__FILE__, __LINE__, (what), "error %lld (%s)", __e, \
				      strerror(__e < 0 ? (int)-__e : (int)__e));          \
	})
#define ASSERT_STREQ(got, want, what)                                                     \
	({                                                                                \
		const char *__g = (got), *__w = (want);                                   \
		(__g && __w && !strcmp(__g, __w)) ?                                       \
			true :                                                            \
			test__fail(__FILE__, __LINE__, (what), "got \"%s\", want \"%s\"", \
				   __g ? __g : "(null)", __w ? __w : "(null)");           \
	})
#define ASSERT_STRSTR(haystack, needle, what)                                                \
	({                                                                                   \
		const char *__h = (haystack), *__n = (needle);                               \
		(__h && __n && strstr(__h, __n)) ?                                           \
			true :                                                               \
			test__fail(__FILE__, __LINE__, (what), "\"%s\" not found in \"%s\"", \
				   __n ? __n : "(null)", __h ? __h : "(null)");              \
	})

/* Marks the running test skipped, with the reason shown loudly. */
#define test__skip(fmt, ...)                                              \
	do {                                                              \
		fprintf(stderr, "    SKIPPED: " fmt "\n", ##__VA_ARGS__); \
		test_state.cur_skipped = true;                            \
	} while (0)

static inline bool test__start(const char *name)
{
	if (test_state.filter && !strstr(name, test_state.filter))
		return false;
	test_state.cur_name = name;
	test_state.cur_failed = false;
	test_state.cur_skipped = false;
	return true;
}

static inline void test__end(const char *suite)
{
	if (test_state.cur_failed) {
		printf("FAIL %s/%s\n", suite, test_state.cur_name);
		test_state.failed++;
	} else if (test_state.cur_skipped) {
		printf("SKIP %s/%s\n", suite, test_state.cur_name);
		test_state.skipped++;
	} else {
		printf("PASS %s/%s\n", suite, test_state.cur_name);
		test_state.passed++;
	}
	fflush(stdout);
}

/* RUN_TEST(suite, fn): runs fn() (void fn(void)) unless argv[1] filters it out. */
#define RUN_TEST(suite, fn)               \
	do {                              \
		if (test__start(#fn)) {   \
			fn();             \
			test__end(suite); \
		}                         \
	} while (0)

static inline int test__main_init(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_state.filter = argc > 1 ? argv[1] : NULL;
	return 0;
}

static inline int test__summary(void)
{
	return test_state.failed ? 1 : 0;
}

/* Whether the running kernel is MAJOR.MINOR or newer (from uname's release). */
static inline bool kernel_at_least(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;

	if (uname(&u) || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
		return true; /* unknown: assume new, so that a refusal is a failure */
	return ma > major || (ma == major && mi >= minor);
}

#define TEST_NEEDS_ROOT()                                                  \
	do {                                                               \
		if (geteuid() != 0) {                                      \
			test__skip("needs root (CAP_BPF, CAP_NET_ADMIN)"); \
			return;                                            \
		}                                                          \
	} while (0)

#endif /* FERRY_TESTING_H */
