// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests for user/netlink.c. Pattern and name checks run anywhere; route
 * look-ups and link/route notifications run as root inside the network
 * namespace fn-t1, which this process enters with setns() (so the libnl
 * sockets and the `ip` commands it runs live there) and deletes on every
 * exit path, signals included.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "testing.h"
#include <linux/bpf.h> /* struct bpf_spin_lock in ferry_maps.h */
#include "ferry_maps.h"
#include "kernel/netlink.h"

#define SUITE "netlink"
#define NS "fn-t1"

/* ---------------------------------------------------------------- helpers */

/* Runs a shell command with its output on stderr; returns its exit status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	if (rc == -1 || !WIFEXITED(rc))
		return -1;
	if (WEXITSTATUS(rc))
		fprintf(stderr, "    command failed (%d): %s\n", WEXITSTATUS(rc), cmd);
	return WEXITSTATUS(rc);
}

static int host_ns = -1;
static bool in_ns;

static void ns_leave(void)
{
	if (in_ns && host_ns >= 0 && setns(host_ns, CLONE_NEWNET))
		fprintf(stderr, "    setns back to the host namespace: %s\n", strerror(errno));
	in_ns = false;
	/* Deleting the namespace deletes the veths inside it. */
	if (system("ip netns del " NS " 2>/dev/null")) {
		/* Not there: nothing to clean. */
	}
}

static void on_signal(int sig)
{
	ns_leave();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Creates fn-t1 and moves this (single-threaded) process into it. */
static bool ns_enter(void)
{
	int fd;

	ns_leave(); /* a previous run killed with SIGKILL */
	if (sh("ip netns add " NS))
		return false;
	if (host_ns < 0)
		host_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	fd = open("/run/netns/" NS, O_RDONLY | O_CLOEXEC);
	if (host_ns < 0 || fd < 0 || setns(fd, CLONE_NEWNET)) {
		fprintf(stderr, "    entering %s: %s\n", NS, strerror(errno));
		if (fd >= 0)
			close(fd);
		ns_leave();
		return false;
	}
	close(fd);
	in_ns = true;
	return !sh("ip link set lo up");
}

/*
 * fn-a0 (198.18.1.1/24, 2001:db8:1::1/64) and fn-b0 (198.18.2.1/24,
 * 2001:db8:2::1/64), each a veth whose peer stays in the namespace, plus
 * routes through fn-b0 for 198.18.100.0/24, 198.18.128.0/17 and
 * 2001:db8:100::/48. No default route yet.
 */
static bool topology_up(void)
{
	return !sh("ip link add fn-a0 type veth peer name fn-a1") &&
	       !sh("ip link add fn-b0 type veth peer name fn-b1") &&
	       !sh("for i in fn-a0 fn-a1 fn-b0 fn-b1; do ip link set $i up || exit 1; done") &&
	       !sh("ip addr add 198.18.1.1/24 dev fn-a0") &&
	       !sh("ip addr add 198.18.2.1/24 dev fn-b0") &&
	       !sh("ip -6 addr add 2001:db8:1::1/64 dev fn-a0 nodad") &&
	       !sh("ip -6 addr add 2001:db8:2::1/64 dev fn-b0 nodad") &&
	       !sh("ip route add 198.18.100.0/24 via 198.18.2.2 dev fn-b0") &&
	       !sh("ip route add 198.18.128.0/17 via 198.18.2.2 dev fn-b0") &&
	       !sh("ip -6 route add 2001:db8:100::/48 via 2001:db8:2::2 dev fn-b0");
}

static bool ip_needed(void)
{
	if (geteuid() != 0) {
		test__skip("needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN for setns)");
		return false;
	}
	if (system("ip -V >/dev/null 2>&1")) {
		test__skip("needs iproute2's ip");
		return false;
	}
	return true;
}

static void addr4(__be32 a[4], const char *s)
{
	memset(a, 0, 16);
	inet_pton(AF_INET, s, a);
}

static void addr6(__be32 a[4], const char *s)
{
	inet_pton(AF_INET6, s, a);
}

static int route4(struct ferry_nl *nl, const char *s, int *ifindex)
{
	__be32 a[4];

	addr4(a, s);
	*ifindex = 0;
	return ferry_nl__route_ifindex(nl, AF_INET, a, ifindex);
}

static int route6(struct ferry_nl *nl, const char *s, int *ifindex)
{
	__be32 a[4];

	addr6(a, s);
	*ifindex = 0;
	return ferry_nl__route_ifindex(nl, AF_INET6, a, ifindex);
}

static int ifindex_of(const char *name)
{
	char err[256];
	int idx = 0;

	if (ferry_nl__ifindex_by_name("test", name, &idx, err, sizeof(err)))
		fprintf(stderr, "    %s\n", err);
	return idx;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* -------------------------------------------------------- event recording */

struct link_event {
	int ifindex;
	char name[16];
	bool up, removed;
};

struct recorder {
	struct link_event ev[256];
	int nev;
	int route_changes;
};

static void rec_link(void *ctx, int ifindex, const char *ifname, bool up, bool removed)
{
	struct recorder *r = ctx;
	struct link_event *e;

	fprintf(stderr, "    on_link(%d, %s, up=%d, removed=%d)\n", ifindex, ifname, up, removed);
	if (r->nev == (int)(sizeof(r->ev) / sizeof(r->ev[0])))
		return;
	e = &r->ev[r->nev++];
	e->ifindex = ifindex;
	snprintf(e->name, sizeof(e->name), "%s", ifname);
	e->up = up;
	e->removed = removed;
}

static void rec_route(void *ctx)
{
	struct recorder *r = ctx;

	r->route_changes++;
}

static const struct link_event *find_event(const struct recorder *r, int from, const char *name,
					   bool up, bool removed)
{
	int i;

	for (i = from; i < r->nev; i++)
		if (!strcmp(r->ev[i].name, name) && r->ev[i].up == up &&
		    r->ev[i].removed == removed)
			return &r->ev[i];
	return NULL;
}

/* Polls the notification fd like ferryd's loop until done() or timeout. */
static bool wait_until(struct ferry_nl *nl, int timeout_ms, bool (*done)(void *), void *arg)
{
	double deadline = now_ms() + timeout_ms;
	struct pollfd pfd = { .fd = ferry_nl__fd(nl), .events = POLLIN };

	while (!done(arg)) {
		double left = deadline - now_ms();

		if (left <= 0)
			return false;
		if (poll(&pfd, 1, (int)left + 1) > 0 && ferry_nl__process(nl))
			return false;
	}
	return true;
}

struct event_wait {
	struct recorder *rec;
	int from;
	const char *name;
	bool up, removed;
};

static bool event_seen(void *arg)
{
	struct event_wait *w = arg;

	return find_event(w->rec, w->from, w->name, w->up, w->removed) != NULL;
}

static bool route_change_seen(void *arg)
{
	return ((struct recorder *)arg)->route_changes > 0;
}

/* -------------------------------------------------------- unprivileged tests */

static void test_match(void)
{
	const char *pods = "veth*, cali* ,lxc*";

	ASSERT_TRUE(ferry_nl__match(pods, "veth1234"), "veth*");
	ASSERT_TRUE(ferry_nl__match(pods, "cali0a1b2c"), "cali* with spaces around");
	ASSERT_TRUE(ferry_nl__match(pods, "lxc_health"), "lxc*");
	ASSERT_FALSE(ferry_nl__match(pods, "eth0"), "eth0 matches none");
	ASSERT_FALSE(ferry_nl__match(pods, "xveth1"), "globs are anchored");
	ASSERT_TRUE(ferry_nl__match("eth[0-3]", "eth2"), "bracket class");
	ASSERT_FALSE(ferry_nl__match("eth[0-3]", "eth4"), "bracket class miss");
	ASSERT_TRUE(ferry_nl__match("fn-?0", "fn-a0"), "question mark");
	ASSERT_TRUE(ferry_nl__match("eth0", "eth0"), "exact name");
	ASSERT_FALSE(ferry_nl__match("eth0", "eth00"), "exact name is not a prefix");
	ASSERT_TRUE(ferry_nl__match("*", "anything"), "star");
	ASSERT_TRUE(ferry_nl__match(",, veth* ,", "veth9"), "empty entries are skipped");
	ASSERT_FALSE(ferry_nl__match("", "eth0"), "empty list");
	ASSERT_FALSE(ferry_nl__match(" , ", "eth0"), "blank list");
	ASSERT_FALSE(ferry_nl__match(NULL, "eth0"), "NULL list");
	ASSERT_FALSE(ferry_nl__match("*", NULL), "NULL name");
}

static void test_check_patterns(void)
{
	char err[256] = "", longpat[200];

	ASSERT_OK(ferry_nl__check_patterns("--pod-ifaces", "veth*, cali*,lxc*", err, sizeof(err)),
		  "valid list");
	ASSERT_OK(ferry_nl__check_patterns("--pod-ifaces", "eth0", err, sizeof(err)), "one name");
	ASSERT_EQ(ferry_nl__check_patterns("--pod-ifaces", "veth*,,cali*", err, sizeof(err)),
		  -EINVAL, "double comma");
	ASSERT_STRSTR(err, "--pod-ifaces", "message names the flag");
	ASSERT_STRSTR(err, "pattern 2 is empty", "message names the entry");
	ASSERT_EQ(ferry_nl__check_patterns("--pod-ifaces", "veth*,", err, sizeof(err)), -EINVAL,
		  "trailing comma");
	ASSERT_EQ(ferry_nl__check_patterns("--pod-ifaces", "", err, sizeof(err)), -EINVAL,
		  "empty list");
	ASSERT_STRSTR(err, "empty pattern list", "empty list message");
	memset(longpat, 'x', sizeof(longpat) - 1);
	longpat[sizeof(longpat) - 1] = '\0';
	ASSERT_EQ(ferry_nl__check_patterns("--pod-ifaces", longpat, err, sizeof(err)), -EINVAL,
		  "overlong pattern");
	ASSERT_EQ(ferry_nl__check_patterns(NULL, "a,", NULL, 0), -EINVAL, "no message buffer");
}

static void test_name_helpers(void)
{
	char err[256] = "", name[16];
	int idx = -1;

	/* Every network namespace has lo, and it is always ifindex 1. */
	ASSERT_OK(ferry_nl__ifindex_by_name("--iface", "lo", &idx, err, sizeof(err)), "lo");
	ASSERT_EQ(idx, 1, "lo's ifindex");
	ASSERT_OK(ferry_nl__ifname_by_index(1, name, sizeof(name), err, sizeof(err)), "index 1");
	ASSERT_STREQ(name, "lo", "index 1's name");

	ASSERT_EQ(ferry_nl__ifindex_by_name("--iface", "fn-nosuch9", &idx, err, sizeof(err)),
		  -ENODEV, "missing interface");
	ASSERT_STRSTR(err, "--iface fn-nosuch9: no such interface", "missing message");

	ASSERT_EQ(ferry_nl__ifindex_by_name("--iface", "fn-0123456789abc", &idx, err, sizeof(err)),
		  -ENAMETOOLONG, "16 characters");
	ASSERT_STRSTR(err, "at most 15 characters", "length message");
	ASSERT_STRSTR(err, "this one has 16", "length message counts");
	/* 15 characters is legal: the error must be "no such", not "too long". */
	ASSERT_EQ(ferry_nl__ifindex_by_name("--iface", "fn-0123456789ab", &idx, err, sizeof(err)),
		  -ENODEV, "15 characters");

	ASSERT_EQ(ferry_nl__ifindex_by_name("--iface", "", &idx, err, sizeof(err)), -EINVAL,
		  "empty name");
	ASSERT_EQ(ferry_nl__ifindex_by_name("--iface", "a/b", &idx, err, sizeof(err)), -EINVAL,
		  "slash");
	ASSERT_EQ(ferry_nl__ifindex_by_name("--iface", "eth0:1", &idx, err, sizeof(err)), -EINVAL,
		  "alias colon");
	ASSERT_EQ(ferry_nl__ifindex_by_name("--iface", "a b", &idx, err, sizeof(err)), -EINVAL,
		  "space");
	ASSERT_STRSTR(err, "not a valid interface name", "invalid message");
	ASSERT_EQ(ferry_nl__ifname_by_index(0x7ffffff0, name, sizeof(name), err, sizeof(err)),
		  -ENODEV, "missing index");
	ASSERT_STRSTR(err, "no such interface", "missing index message");
	ASSERT_EQ(ferry_nl__ifname_by_index(1, name, 2, err, sizeof(err)), -ENOSPC, "short buffer");
}

/* Route sockets need no privilege: a look-up of 127.0.0.1 on the host is lo. */
static void test_route_loopback_host(void)
{
	struct ferry_nl *nl = ferry_nl__new();
	__be32 a[4];
	int idx = 0;

	if (!ASSERT_TRUE(nl != NULL, "ferry_nl__new"))
		return;
	ASSERT_TRUE(ferry_nl__fd(nl) >= 0, "notification fd");
	addr4(a, "127.0.0.1");
	ASSERT_OK(ferry_nl__route_ifindex(nl, FERRY_AF_INET, a, &idx), "127.0.0.1");
	ASSERT_EQ(idx, 1, "127.0.0.1 routes through lo");
	addr6(a, "::1");
	idx = 0;
	ASSERT_OK(ferry_nl__route_ifindex(nl, FERRY_AF_INET6, a, &idx), "::1");
	ASSERT_EQ(idx, 1, "::1 routes through lo");
	ASSERT_EQ(ferry_nl__route_ifindex(nl, 99, a, &idx), -EAFNOSUPPORT, "unknown family");
	ASSERT_OK(ferry_nl__process(nl), "process with nothing pending");
	ferry_nl__free(nl);
}

struct link_seen {
	int lo, a0;
};

static int count_link(void *ctx, int ifindex, const char *ifname, bool up)
{
	struct link_seen *s = ctx;

	if (!strcmp(ifname, "lo") && ifindex == 1 && up)
		s->lo++;
	if (ferry_nl__match("fn-a*", ifname) && ifname[4] == '0' && up)
		s->a0++;
	return 0;
}

/* --------------------------------------------------------- privileged tests */

static void test_route_ifindex(void)
{
	struct ferry_nl *nl = NULL;
	int a0, b0, idx;

	if (!ip_needed())
		return;
	if (!ASSERT_TRUE(ns_enter(), "create " NS))
		goto out;
	if (!ASSERT_TRUE(topology_up(), "topology"))
		goto out;
	a0 = ifindex_of("fn-a0");
	b0 = ifindex_of("fn-b0");
	nl = ferry_nl__new();
	if (!ASSERT_TRUE(nl != NULL, "ferry_nl__new"))
		goto out;

	ASSERT_OK(route4(nl, "198.18.100.7", &idx), "v4 specific route");
	ASSERT_EQ(idx, b0, "v4 specific route -> fn-b0");
	ASSERT_OK(route4(nl, "198.18.1.9", &idx), "v4 connected");
	ASSERT_EQ(idx, a0, "v4 connected -> fn-a0");
	ASSERT_OK(route4(nl, "198.18.1.1", &idx), "v4 local address");
	ASSERT_EQ(idx, 1, "v4 local address -> lo");
	ASSERT_OK(route6(nl, "2001:db8:100::7", &idx), "v6 specific route");
	ASSERT_EQ(idx, b0, "v6 specific route -> fn-b0");
	ASSERT_OK(route6(nl, "2001:db8:1::9", &idx), "v6 connected");
	ASSERT_EQ(idx, a0, "v6 connected -> fn-a0");

	/* No default route yet. These land in the cache as negative entries. */
	ASSERT_EQ(route4(nl, "198.19.5.5", &idx), -ENETUNREACH, "v4 no route");
	ASSERT_EQ(idx, 0, "v4 no route leaves ifindex alone");
	ASSERT_EQ(route6(nl, "2001:db8:99::1", &idx), -ENETUNREACH, "v6 no route");

	/*
	 * Add default routes and look up again without ferry_nl__process():
	 * the pending notification alone must keep the cache from answering.
	 */
	if (!ASSERT_OK(sh("ip route add default via 198.18.1.2 dev fn-a0"), "v4 default") ||
	    !ASSERT_OK(sh("ip -6 route add default via 2001:db8:1::2 dev fn-a0"), "v6 default"))
		goto out;
	ASSERT_OK(route4(nl, "198.19.5.5", &idx), "v4 default route");
	ASSERT_EQ(idx, a0, "v4 default route -> fn-a0");
	ASSERT_OK(route6(nl, "2001:db8:99::1", &idx), "v6 default route");
	ASSERT_EQ(idx, a0, "v6 default route -> fn-a0");
	ASSERT_OK(ferry_nl__process(nl), "process");

	if (!ASSERT_OK(sh("ip route add unreachable 198.18.50.0/24"), "unreachable route") ||
	    !ASSERT_OK(sh("ip route add prohibit 198.18.51.0/24"), "prohibit route"))
		goto out;
	ASSERT_EQ(route4(nl, "198.18.50.1", &idx), -EHOSTUNREACH, "v4 unreachable route");
	ASSERT_EQ(route4(nl, "198.18.51.1", &idx), -EACCES, "v4 prohibit route");
	/* FERRY_AF_* as in struct ferry_model_backend work too. */
	{
		__be32 a[4];

		addr4(a, "198.18.100.8");
		ASSERT_OK(ferry_nl__route_ifindex(nl, FERRY_AF_INET, a, &idx), "FERRY_AF_INET");
		ASSERT_EQ(idx, b0, "FERRY_AF_INET -> fn-b0");
		addr6(a, "2001:db8:100::8");
		ASSERT_OK(ferry_nl__route_ifindex(nl, FERRY_AF_INET6, a, &idx), "FERRY_AF_INET6");
		ASSERT_EQ(idx, b0, "FERRY_AF_INET6 -> fn-b0");
	}
	/* Route requests use their own sequence numbers: libnl's dumps still work. */
	{
		struct link_seen seen = { 0 };

		ASSERT_OK(ferry_nl__for_each_link(nl, count_link, &seen), "dump after look-ups");
		ASSERT_EQ(seen.a0, 1, "fn-a0 listed after look-ups");
	}
out:
	ferry_nl__free(nl);
	ns_leave();
}

#define NQUERIES 10000

/* 7,500 IPv4 (half via fn-b0's /17, half via the default) and 2,500 IPv6. */
static void fill_queries(struct ferry_nl_route_query *q, int a0, int b0, int *want)
{
	int i;

	for (i = 0; i < NQUERIES; i++) {
		memset(&q[i], 0, sizeof(q[i]));
		if (i < 7500) {
			/* 198.18.128.0/17 for even i, 198.19.0.0/16 (default) for odd i. */
			__u32 host = i & 1 ? 0xc6130000u + i : 0xc6128000u + i;

			q[i].family = AF_INET;
			q[i].addr[0] = htonl(host);
			want[i] = i & 1 ? a0 : b0;
		} else {
			q[i].family = AF_INET6;
			addr6(q[i].addr, "2001:db8:100::");
			q[i].addr[3] = htonl(i);
			want[i] = b0;
		}
	}
}

static void test_route_10k(void)
{
	struct ferry_nl_route_query *q = calloc(NQUERIES, sizeof(*q));
	int *want = calloc(NQUERIES, sizeof(*want));
	struct ferry_nl *nl = NULL;
	double t0, single_ms, batch_ms, cached_ms;
	int a0, b0, i, bad = 0;

	if (!ASSERT_TRUE(q && want, "calloc") || !ip_needed())
		goto out_free;
	if (!ASSERT_TRUE(ns_enter(), "create " NS))
		goto out;
	if (!ASSERT_TRUE(topology_up(), "topology") ||
	    !ASSERT_OK(sh("ip route add default via 198.18.1.2 dev fn-a0"), "v4 default"))
		goto out;
	a0 = ifindex_of("fn-a0");
	b0 = ifindex_of("fn-b0");
	nl = ferry_nl__new();
	if (!ASSERT_TRUE(nl != NULL, "ferry_nl__new"))
		goto out;
	fill_queries(q, a0, b0, want);

	/* One round trip each: distinct addresses, so every one misses. */
	ferry_nl__flush_cache(nl);
	t0 = now_ms();
	for (i = 0; i < NQUERIES; i++) {
		int idx = 0, err = ferry_nl__route_ifindex(nl, q[i].family, q[i].addr, &idx);

		if (err || idx != want[i])
			bad++;
	}
	single_ms = now_ms() - t0;
	ASSERT_EQ(bad, 0, "single look-ups with a wrong answer");

	ferry_nl__flush_cache(nl);
	t0 = now_ms();
	if (!ASSERT_OK(ferry_nl__route_ifindex_batch(nl, q, NQUERIES), "batch"))
		goto out;
	batch_ms = now_ms() - t0;
	for (i = 0, bad = 0; i < NQUERIES; i++)
		if (q[i].err || q[i].ifindex != want[i])
			bad++;
	ASSERT_EQ(bad, 0, "batch look-ups with a wrong answer");

	/*
	 * IPv6 addrconf keeps announcing link-local addresses for a second or
	 * two; read those first so that a pending one does not flush the cache.
	 */
	ferry_nl__process(nl);
	ferry_nl__route_ifindex_batch(nl, q, NQUERIES);
	t0 = now_ms();
	if (!ASSERT_OK(ferry_nl__route_ifindex_batch(nl, q, NQUERIES), "cached batch"))
		goto out;
	cached_ms = now_ms() - t0;
	for (i = 0, bad = 0; i < NQUERIES; i++)
		if (q[i].err || q[i].ifindex != want[i])
			bad++;
	ASSERT_EQ(bad, 0, "cached look-ups with a wrong answer");

	fprintf(stderr,
		"    timing: %d route look-ups (7500 IPv4, 2500 IPv6): one at a time %.1f ms, "
		"batched %.1f ms, from cache %.2f ms\n",
		NQUERIES, single_ms, batch_ms, cached_ms);
out:
	ferry_nl__free(nl);
	ns_leave();
out_free:
	free(q);
	free(want);
}

static int stop_at_first(void *ctx, int ifindex, const char *ifname, bool up)
{
	(*(int *)ctx)++;
	return 42;
}

static void test_link_events(void)
{
	struct ferry_nl_callbacks cb = { .on_link = rec_link, .on_route_change = rec_route };
	struct recorder *rec = calloc(1, sizeof(*rec));
	struct link_seen seen = { 0 };
	struct ferry_nl *nl = NULL;
	struct event_wait w;
	const struct link_event *e;
	int pod_ifindex, calls = 0, from;

	if (!ASSERT_TRUE(rec != NULL, "calloc") || !ip_needed())
		goto out_free;
	if (!ASSERT_TRUE(ns_enter(), "create " NS))
		goto out;
	if (!ASSERT_TRUE(topology_up(), "topology"))
		goto out;
	nl = ferry_nl__new();
	if (!ASSERT_TRUE(nl != NULL, "ferry_nl__new"))
		goto out;
	ferry_nl__set_callbacks(nl, &cb, rec);

	ASSERT_OK(ferry_nl__for_each_link(nl, count_link, &seen), "for_each_link");
	ASSERT_EQ(seen.lo, 1, "lo listed once, up");
	ASSERT_EQ(seen.a0, 1, "fn-a0 listed once, up");
	ASSERT_EQ(ferry_nl__for_each_link(nl, stop_at_first, &calls), 42, "cb stops the walk");
	ASSERT_EQ(calls, 1, "walk stopped after the first link");
	ASSERT_OK(ferry_nl__process(nl), "drain");
	ASSERT_EQ(rec->nev, 0, "no link event for links that existed before");

	/* A pod interface appears after the watcher started. */
	from = rec->nev;
	if (!ASSERT_OK(sh("ip link add fnpod1 type veth peer name fnpod1p"), "add fnpod1"))
		goto out;
	w = (struct event_wait){ rec, from, "fnpod1", false, false };
	if (!ASSERT_TRUE(wait_until(nl, 1000, event_seen, &w), "on_link(fnpod1) within 1 s"))
		goto out;
	e = find_event(rec, from, "fnpod1", false, false);
	pod_ifindex = e->ifindex;
	ASSERT_EQ(pod_ifindex, ifindex_of("fnpod1"), "event ifindex");

	from = rec->nev;
	if (!ASSERT_OK(sh("ip link set fnpod1 up"), "fnpod1 up"))
		goto out;
	w = (struct event_wait){ rec, from, "fnpod1", true, false };
	ASSERT_TRUE(wait_until(nl, 1000, event_seen, &w), "on_link(fnpod1, up) within 1 s");

	/* Same name, same up: an MTU change must not call back. */
	from = rec->nev;
	if (!ASSERT_OK(sh("ip link set fnpod1 mtu 1400"), "fnpod1 mtu"))
		goto out;
	w = (struct event_wait){ rec, from, "fnpod1", true, false };
	ASSERT_FALSE(wait_until(nl, 300, event_seen, &w), "no on_link for an MTU change");

	from = rec->nev;
	if (!ASSERT_OK(sh("ip link del fnpod1"), "del fnpod1"))
		goto out;
	w = (struct event_wait){ rec, from, "fnpod1", false, true };
	if (ASSERT_TRUE(wait_until(nl, 1000, event_seen, &w), "on_link(fnpod1, removed) in 1 s")) {
		e = find_event(rec, from, "fnpod1", false, true);
		ASSERT_EQ(e->ifindex, pod_ifindex, "removed event ifindex");
	}
	/* Its peer goes with it. */
	w = (struct event_wait){ rec, from, "fnpod1p", false, true };
	ASSERT_TRUE(wait_until(nl, 1000, event_seen, &w), "on_link(fnpod1p, removed) in 1 s");
out:
	ferry_nl__free(nl);
	ns_leave();
out_free:
	free(rec);
}

static void test_route_events(void)
{
	struct ferry_nl_callbacks cb = { .on_link = rec_link, .on_route_change = rec_route };
	struct recorder *rec = calloc(1, sizeof(*rec));
	struct ferry_nl *nl = NULL;
	int a0, b0, idx;

	if (!ASSERT_TRUE(rec != NULL, "calloc") || !ip_needed())
		goto out_free;
	if (!ASSERT_TRUE(ns_enter(), "create " NS))
		goto out;
	if (!ASSERT_TRUE(topology_up(), "topology") ||
	    !ASSERT_OK(sh("ip route add default via 198.18.1.2 dev fn-a0"), "v4 default"))
		goto out;
	a0 = ifindex_of("fn-a0");
	b0 = ifindex_of("fn-b0");
	nl = ferry_nl__new();
	if (!ASSERT_TRUE(nl != NULL, "ferry_nl__new"))
		goto out;
	ferry_nl__set_callbacks(nl, &cb, rec);
	ASSERT_OK(ferry_nl__process(nl), "drain");
	rec->route_changes = 0;

	ASSERT_OK(route4(nl, "198.19.200.1", &idx), "before: default route");
	ASSERT_EQ(idx, a0, "before: -> fn-a0");

	if (!ASSERT_OK(sh("ip route add 198.19.200.0/24 via 198.18.2.2 dev fn-b0"), "add route"))
		goto out;
	if (!ASSERT_TRUE(wait_until(nl, 1000, route_change_seen, rec), "on_route_change in 1 s"))
		goto out;
	ASSERT_OK(route4(nl, "198.19.200.1", &idx), "after: specific route");
	ASSERT_EQ(idx, b0, "after: -> fn-b0");

	/* IPv4 drops routes of a downed link without a route notification. */
	rec->route_changes = 0;
	if (!ASSERT_OK(sh("ip link set fn-b0 down"), "fn-b0 down"))
		goto out;
	ASSERT_TRUE(wait_until(nl, 1000, route_change_seen, rec), "on_route_change for link down");
	ASSERT_OK(route4(nl, "198.19.200.1", &idx), "link down: back to the default route");
	ASSERT_EQ(idx, a0, "link down: -> fn-a0");

	rec->route_changes = 0;
	if (!ASSERT_OK(sh("ip -6 route add 2001:db8:300::/48 via 2001:db8:1::2 dev fn-a0"),
		       "add v6 route"))
		goto out;
	ASSERT_TRUE(wait_until(nl, 1000, route_change_seen, rec), "on_route_change for IPv6");
out:
	ferry_nl__free(nl);
	ns_leave();
out_free:
	free(rec);
}

#define NOVERFLOW 24

static bool all_seen(void *arg)
{
	struct event_wait *w = arg;
	char name[16];
	int i;

	for (i = 0; i < NOVERFLOW; i++) {
		snprintf(name, sizeof(name), "fnov%d", i);
		if (!find_event(w->rec, w->from, name, false, w->removed))
			return false;
	}
	return true;
}

/*
 * A receive buffer too small for a burst: the kernel drops notifications
 * (ENOBUFS) and ferry_nl__process() must rebuild the picture from a dump.
 */
static void test_resync_after_overflow(void)
{
	struct ferry_nl_callbacks cb = { .on_link = rec_link, .on_route_change = rec_route };
	struct recorder *rec = calloc(1, sizeof(*rec));
	struct ferry_nl *nl = NULL;
	struct event_wait w;
	int tiny = 1;

	if (!ASSERT_TRUE(rec != NULL, "calloc") || !ip_needed())
		goto out_free;
	if (!ASSERT_TRUE(ns_enter(), "create " NS))
		goto out;
	nl = ferry_nl__new();
	if (!ASSERT_TRUE(nl != NULL, "ferry_nl__new"))
		goto out;
	ferry_nl__set_callbacks(nl, &cb, rec);
	ASSERT_OK(ferry_nl__process(nl), "drain");
	/* The kernel rounds this up to its minimum, a few KiB: two or three messages. */
	if (!ASSERT_OK(setsockopt(ferry_nl__fd(nl), SOL_SOCKET, SO_RCVBUF, &tiny, sizeof(tiny)),
		       "shrink SO_RCVBUF"))
		goto out;

	rec->route_changes = 0;
	if (!ASSERT_OK(sh("for i in $(seq 0 %d); do "
			  "echo link add fnov$i type veth peer name fnov${i}p; done | ip -b -",
			  NOVERFLOW - 1),
		       "add veths"))
		goto out;
	w = (struct event_wait){ rec, 0, NULL, false, false };
	ASSERT_TRUE(wait_until(nl, 2000, all_seen, &w), "on_link for every new veth");
	/*
	 * Down veths without addresses change no route: only the resync that
	 * follows ENOBUFS reports a routing change here.
	 */
	ASSERT_GE(rec->route_changes, 1, "resync reported a routing change");

	w.from = rec->nev;
	w.removed = true;
	if (!ASSERT_OK(sh("for i in $(seq 0 %d); do echo link del fnov$i; done | ip -b -",
			  NOVERFLOW - 1),
		       "delete veths"))
		goto out;
	ASSERT_TRUE(wait_until(nl, 2000, all_seen, &w), "removed for every veth");
out:
	ferry_nl__free(nl);
	ns_leave();
out_free:
	free(rec);
}

/* ------------------------------------------------------- xdp-features */

#define NS2 "fn-t2"

struct xdp_seen {
	int ifindex;
	__u64 features;
	int calls;
};

static void rec_xdp(void *ctx, int ifindex, __u64 features, bool removed)
{
	struct xdp_seen *x = ctx;

	fprintf(stderr, "    on_xdp_features(%d, %#llx%s)\n", ifindex, (unsigned long long)features,
		removed ? ", removed" : "");
	if (ifindex != x->ifindex || removed)
		return;
	x->features = features;
	x->calls++;
}

static bool ndo_xmit_seen(void *arg)
{
	const struct xdp_seen *x = arg;

	return x->calls && (x->features & FERRY_XDP_ACT_NDO_XMIT);
}

static bool xdp_wait(struct ferry_nl *nl, int timeout_ms, bool (*done)(void *), void *arg)
{
	double deadline = now_ms() + timeout_ms;
	struct pollfd pfd[2] = { { .fd = ferry_nl__fd(nl), .events = POLLIN },
				 { .fd = ferry_nl__xdp_fd(nl), .events = POLLIN } };

	while (!done(arg)) {
		double left = deadline - now_ms();

		if (left <= 0)
			return false;
		if (poll(pfd, pfd[1].fd >= 0 ? 2 : 1, (int)left + 1) <= 0)
			continue;
		int e1 = ferry_nl__process(nl), e2 = pfd[1].fd >= 0 ? ferry_nl__xdp_process(nl) : 0;

		if (e1 || e2) {
			fprintf(stderr, "    process: %d, xdp_process: %d\n", e1, e2);
			return false;
		}
	}
	return true;
}

/* Attaches an XDP_PASS program to ifname in namespace ns (entered and left with setns). */
static bool xdp_pass_on(const char *ns, const char *ifname)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_PASS },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	char path[64];
	int prog, fd, here, err = -1;

	prog = bpf_prog_load(BPF_PROG_TYPE_XDP, "fn_pass", "GPL", insns, 2, NULL);
	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	here = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (prog >= 0 && fd >= 0 && here >= 0 && !setns(fd, CLONE_NEWNET)) {
		int ifindex = if_nametoindex(ifname);

		err = ifindex ? bpf_xdp_attach(ifindex, prog, XDP_FLAGS_DRV_MODE, NULL) : -1;
		if (setns(here, CLONE_NEWNET))
			err = -1;
	}
	if (fd >= 0)
		close(fd);
	if (here >= 0)
		close(here);
	if (prog >= 0)
		close(prog); /* the attachment holds its own reference */
	return !err;
}

/*
 * What decides where XDP goes and which egress takes XDP_REDIRECT: a
 * veth's kind and its peer's XDP program, read across namespaces (the peer
 * of a pod's veth lives in the pod), and xdp-features with their change
 * notifications (Linux 6.3+; on 6.1 the family is missing and the
 * features stay unknown, which the caller treats as "keep the handoff").
 */
static void test_xdp_features(void)
{
	struct xdp_seen seen = { 0 };
	struct ferry_nl_callbacks cb = { .on_xdp_features = rec_xdp };
	struct ferry_nl_xdp_dev dev;
	struct ferry_nl *nl = NULL;

	if (!ip_needed())
		return;
	if (!ASSERT_TRUE(ns_enter(), "create " NS))
		goto out;
	sh("ip netns del " NS2 " 2>/dev/null; ip netns add " NS2);
	if (!ASSERT_OK(sh("ip link add fnx0 type veth peer name fnx1 netns " NS2), "veth") ||
	    !ASSERT_OK(sh("ip link set fnx0 up && ip -n " NS2 " link set fnx1 up"), "up"))
		goto out;
	nl = ferry_nl__new();
	if (!ASSERT_TRUE(nl != NULL, "ferry_nl__new"))
		goto out;
	seen.ifindex = ifindex_of("fnx0");
	ferry_nl__set_callbacks(nl, &cb, &seen);

	if (!ASSERT_OK(ferry_nl__xdp_dev(nl, ifindex_of("lo"), &dev), "xdp_dev lo"))
		goto out;
	ASSERT_FALSE(dev.veth, "lo is no veth");
	if (!ASSERT_OK(ferry_nl__xdp_dev(nl, seen.ifindex, &dev), "xdp_dev fnx0"))
		goto out;
	ASSERT_TRUE(dev.veth, "fnx0 is a veth");
	ASSERT_TRUE(dev.peer_known, "its peer in " NS2 " was read");
	ASSERT_FALSE(dev.peer_xdp, "its peer runs no XDP yet");
	if (ferry_nl__has_xdp_features(nl)) {
		ASSERT_TRUE(dev.features_known, "fnx0's xdp-features");
		ASSERT_TRUE(dev.features & FERRY_XDP_ACT_BASIC, "veth: native XDP");
		ASSERT_FALSE(dev.features & FERRY_XDP_ACT_NDO_XMIT,
			     "no ndo-xmit while the peer has neither XDP nor GRO");
		ASSERT_OK(ferry_nl__xdp_dump(nl), "dump");
		ASSERT_TRUE(seen.calls >= 1, "the dump reported fnx0");
	} else {
		ASSERT_FALSE(dev.features_known, "no netdev family: features unknown");
		ASSERT_EQ(ferry_nl__xdp_dump(nl), -EOPNOTSUPP, "dump without the family");
	}

	/* The peer starts running XDP: the veth now takes redirected frames. */
	if (!ASSERT_TRUE(xdp_pass_on(NS2, "fnx1"), "XDP on the peer"))
		goto out;
	ASSERT_OK(ferry_nl__xdp_dev(nl, seen.ifindex, &dev), "xdp_dev fnx0 again");
	ASSERT_TRUE(dev.peer_xdp, "the peer's XDP program is seen across namespaces");
	if (ferry_nl__has_xdp_features(nl)) {
		ASSERT_TRUE(dev.features & FERRY_XDP_ACT_NDO_XMIT, "ndo-xmit with XDP on the peer");
		ASSERT_TRUE(xdp_wait(nl, 1000, ndo_xmit_seen, &seen),
			    "on_xdp_features(fnx0, ndo-xmit) within 1 s");
	}
out:
	ferry_nl__free(nl);
	sh("ip netns del " NS2 " 2>/dev/null");
	ns_leave();
}

int main(int argc, char **argv)
{
	test__main_init(argc, argv);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	atexit(ns_leave);

	RUN_TEST(SUITE, test_match);
	RUN_TEST(SUITE, test_check_patterns);
	RUN_TEST(SUITE, test_name_helpers);
	RUN_TEST(SUITE, test_route_loopback_host);
	RUN_TEST(SUITE, test_route_ifindex);
	RUN_TEST(SUITE, test_route_10k);
	RUN_TEST(SUITE, test_link_events);
	RUN_TEST(SUITE, test_route_events);
	RUN_TEST(SUITE, test_resync_after_overflow);
	RUN_TEST(SUITE, test_xdp_features);
	return test__summary();
}
