// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferryd's command line (user/ferryd_options.c): the checks that must stop a
 * bad flag at parsing, with exit 2 and a message naming it, before anything
 * is attached or pinned. The parser is ferryd's own, outside the library, so
 * this file includes its source whole (as fuzz/ferryd_opts.c does).
 */
#include "../user/ferryd_options.c"

#include <limits.h>
#include <stdarg.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <unistd.h>

#include "testing.h"

#define SUITE "ferryd_options"

static char msg[4096]; /* what the last parse wrote to stderr */

/* Parses "ferryd ARGS..." (NULL-terminated) with stderr captured in msg. */
static int parse(struct ferryd_opts *o, ...)
{
	char *argv[32] = { "ferryd" };
	int argc = 1, saved, rc;
	FILE *cap = tmpfile();
	va_list ap;
	size_t n;

	va_start(ap, o);
	while (argc < 31 && (argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	memset(o, 0, sizeof(*o));
	msg[0] = '\0';
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	if (cap)
		dup2(fileno(cap), STDERR_FILENO);
	optind = 0; /* glibc: a full re-initialisation of getopt */
	rc = ferryd_opts__parse(argc, argv, o);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	if (cap) {
		rewind(cap);
		n = fread(msg, 1, sizeof(msg) - 1, cap);
		msg[n] = '\0';
		fclose(cap);
	}
	ferry_hist__buckets_free(&o->buckets);
	return rc;
}

/* --metrics-addr's form and port are checked at parsing, not after attaching. */
static void test_metrics_addr(void)
{
	struct ferryd_opts o;

	if (!ASSERT_EQ(parse(&o, "--config-dir", "/tmp", "--iface", "lo", "--metrics-addr", "bogus",
			     NULL),
		       -EINVAL, "no port"))
		return;
	ASSERT_STRSTR(msg, "--metrics-addr bogus", "names the flag and value");
	ASSERT_EQ(parse(&o, "--config-dir", "/tmp", "--iface", "lo", "--metrics-addr",
			"127.0.0.1:99999", NULL),
		  -EINVAL, "port out of range");
	ASSERT_STRSTR(msg, "0..65535", "says the range");
	ASSERT_EQ(parse(&o, "--config-dir", "/tmp", "--iface", "lo", "--metrics-addr",
			"127.0.0.1:-1", NULL),
		  -EINVAL, "negative port");
	ASSERT_EQ(parse(&o, "--config-dir", "/tmp", "--iface", "lo", "--metrics-addr", "[::1",
			NULL),
		  -EINVAL, "unclosed IPv6");
	ASSERT_EQ(parse(&o, "--config-dir", "/tmp", "--iface", "lo", "--metrics-addr",
			"[not-v6]:9477", NULL),
		  -EINVAL, "bracketed non-IPv6");
	ASSERT_EQ(parse(&o, "--config-dir", "/tmp", "--iface", "lo", "--metrics-addr", "::1:9477",
			NULL),
		  -EINVAL, "IPv6 without brackets");
	/* --once reads the flag too: a typo is a typo with or without a server. */
	ASSERT_EQ(parse(&o, "--config-dir", "/tmp", "--iface", "lo", "--once", "--metrics-addr",
			"bogus", NULL),
		  -EINVAL, "--once");
	ASSERT_OK(parse(&o, "--config-dir", "/tmp", "--iface", "lo", "--metrics-addr",
			"127.0.0.1:9477", NULL),
		  "IPv4");
	ASSERT_OK(parse(&o, "--config-dir", "/tmp", "--iface", "lo", "--metrics-addr", "[::1]:9477",
			NULL),
		  "IPv6");
	ASSERT_OK(parse(&o, "--config-dir", "/tmp", "--iface", "lo", "--metrics-addr", ":0", NULL),
		  ":PORT");
}

/* --host-clients=PATH must be a cgroup v2 directory, checked before any hook. */
static void test_host_clients(void)
{
	struct ferryd_opts o;
	struct statfs sfs;

	ASSERT_EQ(parse(&o, "--config-dir", "/tmp", "--iface", "lo",
			"--host-clients=/nonexistent/cgroup", NULL),
		  -EINVAL, "missing path");
	ASSERT_STRSTR(msg, "--host-clients=/nonexistent/cgroup", "names the flag and path");
	ASSERT_EQ(parse(&o, "--config-dir", "/tmp", "--iface", "lo", "--host-clients=/proc", NULL),
		  -EINVAL, "not cgroup2");
	ASSERT_STRSTR(msg, "cgroup v2", "says what is expected");
	ASSERT_EQ(parse(&o, "--config-dir", "/tmp", "--iface", "lo",
			"--host-clients=/proc/self/status", NULL),
		  -EINVAL, "a file");
	ASSERT_OK(parse(&o, "--config-dir", "/tmp", "--iface", "lo", "--host-clients", NULL),
		  "the root one, found at attach");
	if (!statfs("/sys/fs/cgroup", &sfs) && (unsigned long)sfs.f_type == CGROUP2_SUPER_MAGIC)
		ASSERT_OK(parse(&o, "--config-dir", "/tmp", "--iface", "lo",
				"--host-clients=/sys/fs/cgroup", NULL),
			  "a cgroup v2 directory");
	else if (ferry_dp__cgroup2_root()) {
		/* A hybrid host: the suggestion is the cgroup2 mount, not the path just refused. */
		char want[PATH_MAX + 16];

		snprintf(want, sizeof(want), "e.g. %s (", ferry_dp__cgroup2_root());
		ASSERT_EQ(parse(&o, "--config-dir", "/tmp", "--iface", "lo",
				"--host-clients=/sys/fs/cgroup", NULL),
			  -EINVAL, "/sys/fs/cgroup is not cgroup2 here");
		ASSERT_STRSTR(msg, want, "suggests the cgroup2 mount found");
	}
	if (ferry_dp__cgroup2_root()) {
		char want[PATH_MAX + 16];

		snprintf(want, sizeof(want), "e.g. %s (", ferry_dp__cgroup2_root());
		parse(&o, "--config-dir", "/tmp", "--iface", "lo", "--host-clients=/proc", NULL);
		ASSERT_STRSTR(msg, want, "suggests the cgroup2 mount found");
	}
}

/* The IPv6 example is --metrics-addr's, not --latency-buckets'. */
static void test_help_ipv6_line(void)
{
	char *text = NULL, *ipv6, *metrics, *buckets;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!ASSERT_TRUE(f != NULL, "memstream"))
		return;
	usage(f);
	fclose(f);
	ipv6 = strstr(text, "(IPv6: [::1]:9477)");
	metrics = strstr(text, "  --metrics-addr H:P");
	buckets = strstr(text, "  --latency-buckets LIST");
	if (ASSERT_TRUE(ipv6 && metrics && buckets, "lines present"))
		ASSERT_TRUE(metrics < ipv6 && ipv6 < buckets, "IPv6 line under --metrics-addr");
	free(text);
}

/* peer is a way to send pod traffic: without --pod-iface there is none. */
static void test_pod_fast_path_needs_pod_iface(void)
{
	struct ferryd_opts o;

	ASSERT_EQ(parse(&o, "--config-dir", "/tmp", "--iface", "lo", "--pod-fast-path", "peer",
			NULL),
		  -EINVAL, "peer without --pod-iface");
	ASSERT_STRSTR(msg, "--pod-iface", "names what is missing");
	ASSERT_OK(parse(&o, "--config-dir", "/tmp", "--pod-iface", "veth*", "--pod-fast-path",
			"peer", NULL),
		  "peer with --pod-iface");
	ASSERT_OK(parse(&o, "--config-dir", "/tmp", "--iface", "lo", "--pod-fast-path", "off",
			NULL),
		  "off alone");
}

static void test_iface_twice(void)
{
	struct ferryd_opts o;

	ASSERT_EQ(parse(&o, "--config-dir", "/tmp", "--iface", "lo", "--iface", "lo", NULL),
		  -EINVAL, "--iface twice");
	ASSERT_STRSTR(msg, "--iface lo is given twice", "names the duplicate");
	ASSERT_EQ(parse(&o, "--config-dir", "/tmp", "--iface", "lo", "--reply-iface", "lo",
			"--reply-iface", "lo", NULL),
		  -EINVAL, "--reply-iface twice");
	ASSERT_STRSTR(msg, "--reply-iface lo", "names the flag");
	/* Different flags may name one interface (forward and reply on the same device). */
	ASSERT_OK(parse(&o, "--config-dir", "/tmp", "--iface", "lo", "--reply-iface", "lo", NULL),
		  "--iface and --reply-iface");
}

static void test_latency_buckets(void)
{
	struct ferryd_opts o;

	ASSERT_EQ(parse(&o, "--config-dir", "/tmp", "--iface", "lo", "--latency-buckets",
			"0.1,,0.2", NULL),
		  -EINVAL, "empty element");
	ASSERT_STRSTR(msg, "empty", "says it is empty");
	ASSERT_STRSTR(msg, "extra comma", "says the fix");
	ASSERT_EQ(parse(&o, "--config-dir", "/tmp", "--iface", "lo", "--latency-buckets", "0.1,",
			NULL),
		  -EINVAL, "trailing comma");
	ASSERT_EQ(parse(&o, "--config-dir", "/tmp", "--iface", "lo", "--latency-buckets", ",0.1",
			NULL),
		  -EINVAL, "leading comma");
	ASSERT_EQ(parse(&o, "--config-dir", "/tmp", "--iface", "lo", "--latency-buckets", "inf",
			NULL),
		  -EINVAL, "inf alone");
	ASSERT_STRSTR(msg, "+Inf", "says +Inf is implicit");
	ASSERT_FALSE(strstr(msg, "empty bucket list"), "not an empty list");
	ASSERT_OK(parse(&o, "--config-dir", "/tmp", "--iface", "lo", "--latency-buckets",
			"0.1, 0.2,+Inf", NULL),
		  "spaces and a trailing +Inf");
}

int main(int argc, char **argv)
{
	test__main_init(argc, argv);
	RUN_TEST(SUITE, test_metrics_addr);
	RUN_TEST(SUITE, test_host_clients);
	RUN_TEST(SUITE, test_help_ipv6_line);
	RUN_TEST(SUITE, test_pod_fast_path_needs_pod_iface);
	RUN_TEST(SUITE, test_iface_twice);
	RUN_TEST(SUITE, test_latency_buckets);
	return test__summary();
}
