// SPDX-License-Identifier: GPL-2.0-only
/*
 * Rebalancing's planning rule and deadlines (user/kernel/rebalance.c), without
 * a kernel: which connections must go after a change, and when. The GOAWAY
 * segment builder (user/kernel/goaway.c): layout and checksums, and delivery
 * into a real TCP socket of a private network namespace (with and without TCP
 * timestamps, IPv4 and IPv6). The iterator's reading of a connection's request
 * state, on a real socket with hand-written map entries; the iterator and
 * bpf_sock_destroy are covered end to end (vmtests/scenarios/rebalance.sh).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kernel/dataplane.h"
#include "kernel/goaway.h"
#include "kernel/pins.h"
#include "kernel/rebalance.h"
#include "ferry_iter.skel.h"
#include "testing.h"

#define SUITE "rebalance"

static size_t count(const bool *v, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += v[i];
	return k;
}

/* Rollback to 0/100: every connection of the predictor at 0 goes, none of the other's. */
static void test_rollback_to_zero(void)
{
	__u32 pred[6] = { 2, 2, 2, 1, 2, 1 }, hash[6] = { 6, 5, 4, 3, 2, 1 };
	__u32 ids[2] = { 1, 2 }, shares[2] = { FERRY_WEIGHT_ONE, 0 };
	bool shrunk[2] = { false, true }, losing[6] = {}, out[6];

	ASSERT_EQ(ferry_rebal__plan(6, pred, losing, hash, 2, ids, shares, shrunk, out), 4,
		  "four canary connections go");
	for (int i = 0; i < 6; i++)
		ASSERT_EQ(out[i], pred[i] == 2, "exactly the canary's");
}

/* A drain: the drained backend's connections go whatever the shares say. */
static void test_drain(void)
{
	__u32 pred[4] = { 1, 1, 1, 1 }, hash[4] = { 1, 2, 3, 4 };
	__u32 ids[1] = { 1 }, shares[1] = { FERRY_WEIGHT_ONE };
	bool shrunk[1] = { false }, losing[4] = { true, false, true, false }, out[4];

	ASSERT_EQ(ferry_rebal__plan(4, pred, losing, hash, 1, ids, shares, shrunk, out), 2,
		  "two on the drained backend");
	ASSERT_TRUE(out[0] && out[2] && !out[1] && !out[3], "only those");
}

/*
 * 50/50 -> 90/10 with 10 connections 5/5: the canary keeps round(10 * 0.1) = 1,
 * the four it loses are the ones with the highest hashes; main loses nothing.
 */
static void test_partial_shift(void)
{
	__u32 pred[10] = { 1, 2, 1, 2, 1, 2, 1, 2, 1, 2 };
	__u32 hash[10] = { 9, 50, 8, 10, 7, 40, 6, 30, 5, 20 };
	__u32 ids[2] = { 1, 2 }, shares[2] = { 900000, 100000 };
	bool shrunk[2] = { false, true }, losing[10] = {}, out[10];

	ASSERT_EQ(ferry_rebal__plan(10, pred, losing, hash, 2, ids, shares, shrunk, out), 4,
		  "four canary connections go");
	ASSERT_FALSE(out[3], "the lowest hash stays");
	ASSERT_TRUE(out[1] && out[5] && out[7] && out[9], "the others go");
	ASSERT_EQ(count(out, 10), 4, "main loses none");
}

/*
 * A change that lowers no share (a scale-up, a table rebuilt): nothing goes,
 * even when chance left the connections far from the weights.
 */
static void test_no_churn_without_shrink(void)
{
	__u32 pred[4] = { 1, 1, 1, 2 }, hash[4] = { 1, 2, 3, 4 };
	__u32 ids[2] = { 1, 2 }, shares[2] = { 500000, 500000 };
	bool shrunk[2] = { false, false }, losing[4] = {}, out[4];

	ASSERT_EQ(ferry_rebal__plan(4, pred, losing, hash, 2, ids, shares, shrunk, out), 0,
		  "no share went down");
}

/* A predictor the service no longer has: all its connections go. */
static void test_predictor_removed(void)
{
	__u32 pred[3] = { 1, 7, 7 }, hash[3] = { 1, 2, 3 };
	__u32 ids[1] = { 1 }, shares[1] = { FERRY_WEIGHT_ONE };
	bool shrunk[1] = { false }, losing[3] = {}, out[3];

	ASSERT_EQ(ferry_rebal__plan(3, pred, losing, hash, 1, ids, shares, shrunk, out), 2,
		  "the removed predictor's two");
	ASSERT_TRUE(!out[0] && out[1] && out[2], "only those");
}

/* Deadlines fall inside the window and spread over it (cookies are sequential). */
static void test_deadlines_spread(void)
{
	const __u64 start = 1000000000ULL, window = 30000000000ULL;
	unsigned int bins[10] = {};
	__u64 d;

	for (__u64 cookie = 1; cookie <= 1000; cookie++) {
		d = ferry_rebal__deadline(start, window, cookie);
		if (!ASSERT_TRUE(d >= start && d < start + window, "inside the window"))
			return;
		bins[(d - start) * 10 / window]++;
	}
	/* 100 expected per tenth; sequential cookies must not bunch up. */
	for (int i = 0; i < 10; i++)
		ASSERT_TRUE(bins[i] >= 50 && bins[i] <= 150, "every tenth of the window used");
	ASSERT_EQ(ferry_rebal__deadline(start, window, 42),
		  ferry_rebal__deadline(start, window, 42), "a connection's deadline is stable");
}

/* ------------------------------------------------------------- GOAWAY segments */

static __u32 csum_add(const __u8 *p, size_t len, __u32 sum)
{
	for (size_t i = 0; i < len; i += 2)
		sum += (__u32)p[i] << 8 | (i + 1 < len ? p[i + 1] : 0);
	return sum;
}

static __u16 csum_fold(__u32 sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* A checksum is right when the one's complement sum over what it covers is 0xffff. */
static bool tcp_csum_ok(const __u8 *pkt, bool v6, size_t iplen, size_t total)
{
	__u32 sum = 6 + (__u32)(total - iplen);

	if (v6)
		sum = csum_add(pkt + 8, 32, sum);
	else
		sum = csum_add(pkt + 12, 8, sum);
	return csum_fold(csum_add(pkt + iplen, total - iplen, sum)) == 0xffff;
}

static __u32 get32(const __u8 *p)
{
	return (__u32)p[0] << 24 | (__u32)p[1] << 16 | (__u32)p[2] << 8 | p[3];
}

/* The GOAWAY frame itself: 9-byte header, last-stream-id 0, NO_ERROR, debug data. */
static bool frame_ok(const __u8 *f)
{
	static const __u8 head[17] = {
		0, 0, FERRY_GOAWAY_FRAME_LEN - 9, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
	};

	return !memcmp(f, head, sizeof(head)) && !memcmp(f + 17, "ferry rebalance", 15);
}

/* IPv4 with timestamps: header, options, checksums, the frame, and the record's mapping. */
static void test_goaway_segment_v4(void)
{
	struct ferry_rebal_sock rec = {
		.key = { .family = FERRY_AF_INET, .proto = 6 },
		.rcv_nxt = 0xfffffff0,
		.snd_nxt = 0x12345678,
		.window = 0x1f000,
		.ts_recent = 0xa1b2c3d4,
		.ts_ecr = 0x01020304,
		.tcp_flags = FERRY_RB_TCP_TSTAMP,
	};
	struct ferry_goaway_seg seg;
	__u8 pkt[FERRY_GOAWAY_SEG_MAX];
	ssize_t n;

	/* The socket: 10.0.0.1:40000 (local, the client) -> 198.18.0.10:5001 (remote). */
	rec.key.saddr[0] = htonl(0x0a000001);
	rec.key.daddr[0] = htonl(0xc612000a);
	rec.key.sport = htons(40000);
	rec.key.dport = htons(5001);
	ferry_goaway__from_rec(&rec, &seg);
	n = ferry_goaway__build(&seg, pkt, sizeof(pkt));
	if (!ASSERT_EQ(n, 20 + 32 + (ssize_t)FERRY_GOAWAY_FRAME_LEN, "length with timestamps"))
		return;
	ASSERT_EQ(pkt[0], 0x45, "IPv4, no options");
	ASSERT_EQ((pkt[2] << 8 | pkt[3]), n, "total length");
	ASSERT_EQ(pkt[9], 6, "TCP");
	ASSERT_EQ(csum_fold(csum_add(pkt, 20, 0)), 0xffff, "IPv4 header checksum");
	ASSERT_EQ(get32(pkt + 12), 0xc612000a, "from the socket's remote end");
	ASSERT_EQ(get32(pkt + 16), 0x0a000001, "to the socket's local end");
	ASSERT_EQ((pkt[20] << 8 | pkt[21]), 5001, "source port: the remote's");
	ASSERT_EQ((pkt[22] << 8 | pkt[23]), 40000, "destination port: the local one");
	ASSERT_EQ(get32(pkt + 24), 0xfffffff0, "seq: the socket's rcv_nxt");
	ASSERT_EQ(get32(pkt + 28), 0x12345678, "ack: its snd_nxt");
	ASSERT_EQ(pkt[32] >> 4, 8, "data offset: 20 + 12 bytes of options");
	ASSERT_EQ(pkt[33], 0x18, "ACK|PSH");
	ASSERT_EQ((pkt[34] << 8 | pkt[35]), 0xffff, "window clamped to 16 bits");
	ASSERT_TRUE(pkt[40] == 1 && pkt[41] == 1 && pkt[42] == 8 && pkt[43] == 10,
		    "NOP NOP TS(10)");
	ASSERT_EQ(get32(pkt + 44), 0xa1b2c3d4, "TSval: ts_recent, so PAWS accepts it");
	ASSERT_EQ(get32(pkt + 48), 0x01020304, "TSecr: rcv_tsecr");
	ASSERT_TRUE(tcp_csum_ok(pkt, false, 20, (size_t)n), "TCP checksum");
	ASSERT_TRUE(frame_ok(pkt + 52), "GOAWAY, last-stream-id 0, NO_ERROR");
	/* Any bit flipped breaks the checksum: it covers the payload. */
	pkt[60] ^= 1;
	ASSERT_FALSE(tcp_csum_ok(pkt, false, 20, (size_t)n), "payload under the checksum");
	ASSERT_EQ(ferry_goaway__build(&seg, pkt, (size_t)n - 1), -ENOSPC, "short buffer");

	/* The RST after phase 2's abort: the other way, at snd_una, bare. */
	rec.snd_una = 0x12345600;
	ferry_goaway__rst_from_rec(&rec, &seg);
	n = ferry_goaway__build(&seg, pkt, sizeof(pkt));
	if (!ASSERT_EQ(n, 40, "RST: headers only, no option"))
		return;
	ASSERT_EQ((pkt[2] << 8 | pkt[3]), 40, "RST: total length");
	ASSERT_EQ(get32(pkt + 12), 0x0a000001, "RST: from the socket's local end");
	ASSERT_EQ(get32(pkt + 16), 0xc612000a, "RST: to its remote end");
	ASSERT_EQ((pkt[20] << 8 | pkt[21]), 40000, "RST: source port: the local one");
	ASSERT_EQ((pkt[22] << 8 | pkt[23]), 5001, "RST: destination port: the remote's");
	ASSERT_EQ(get32(pkt + 24), 0x12345600, "RST: seq: the socket's snd_una");
	ASSERT_EQ(pkt[33], 0x04, "RST alone");
	ASSERT_TRUE(tcp_csum_ok(pkt, false, 20, (size_t)n), "RST: TCP checksum");
}

/* IPv6 without timestamps: 20-byte TCP header, pseudo-header with 128-bit addresses. */
static void test_goaway_segment_v6(void)
{
	struct ferry_goaway_seg seg = {
		.family = FERRY_AF_INET6,
		.sport = htons(5001),
		.dport = htons(40001),
		.seq = 7,
		.ack = 9,
		.window = 512,
	};
	__u8 pkt[FERRY_GOAWAY_SEG_MAX];
	ssize_t n;

	inet_pton(AF_INET6, "fd00::10", seg.saddr);
	inet_pton(AF_INET6, "fd00:1::2", seg.daddr);
	n = ferry_goaway__build(&seg, pkt, sizeof(pkt));
	if (!ASSERT_EQ(n, 40 + 20 + (ssize_t)FERRY_GOAWAY_FRAME_LEN, "length"))
		return;
	ASSERT_EQ(pkt[0] >> 4, 6, "IPv6");
	ASSERT_EQ((pkt[4] << 8 | pkt[5]), n - 40, "payload length");
	ASSERT_EQ(pkt[6], 6, "next header TCP");
	ASSERT_TRUE(!memcmp(pkt + 8, seg.saddr, 16) && !memcmp(pkt + 24, seg.daddr, 16),
		    "addresses");
	ASSERT_EQ(pkt[52] >> 4, 5, "no options");
	ASSERT_TRUE(tcp_csum_ok(pkt, true, 40, (size_t)n),
		    "TCP checksum over the v6 pseudo-header");
	ASSERT_TRUE(frame_ok(pkt + 60), "the frame");
	seg.family = 0;
	ASSERT_EQ(ferry_goaway__build(&seg, pkt, sizeof(pkt)), -EAFNOSUPPORT, "unknown family");
}

/* ------------------------------------------------- delivery into a real socket */

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ok;

	if (fd < 0)
		return -errno;
	ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
	close(fd);
	return ok ? 0 : -EIO;
}

/* A private network namespace (as root, or in a new user namespace): no names, no lock. */
static bool private_netns(void)
{
	static int done; /* 1: in one, -1: cannot */
	char map[64];
	uid_t uid = getuid();
	gid_t gid = getgid();
	struct ifreq ifr = { .ifr_name = "lo" };
	int fd;

	if (done)
		return done > 0;
	done = -1;
	if (unshare(CLONE_NEWNET)) {
		if (unshare(CLONE_NEWUSER | CLONE_NEWNET))
			return false;
		write_file("/proc/self/setgroups", "deny");
		snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
		if (write_file("/proc/self/uid_map", map))
			return false;
		snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
		write_file("/proc/self/gid_map", map);
	}
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	if (!ioctl(fd, SIOCGIFFLAGS, &ifr)) {
		ifr.ifr_flags |= IFF_UP;
		if (!ioctl(fd, SIOCSIFFLAGS, &ifr))
			done = 1;
	}
	close(fd);
	return done > 0;
}

struct conn {
	int lfd, cfd, sfd, pfd; /* listener, client, server side, packet capture */
	bool v6;
	__u8 addr[16];
	__be16 cport, sport;
};

static void conn_close(struct conn *c)
{
	int *fds[] = { &c->lfd, &c->cfd, &c->sfd, &c->pfd };

	for (size_t i = 0; i < 4; i++)
		if (*fds[i] >= 0)
			close(*fds[i]);
}

/* A connection over lo that has carried one request and one response, captured. */
static bool conn_open(struct conn *c, bool v6)
{
	struct sockaddr_storage ss = {};
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	socklen_t len = v6 ? sizeof(*s6) : sizeof(*s4);
	char buf[16];

	memset(c, 0, sizeof(*c));
	c->lfd = c->cfd = c->sfd = c->pfd = -1;
	c->v6 = v6;
	c->pfd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
			htons(v6 ? ETH_P_IPV6 : ETH_P_IP));
	c->lfd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	c->cfd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!ASSERT_TRUE(c->pfd >= 0 && c->lfd >= 0 && c->cfd >= 0, "sockets"))
		return false;
	if (v6) {
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
		memcpy(c->addr, &in6addr_loopback, 16);
	} else {
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		memcpy(c->addr, &s4->sin_addr, 4);
	}
	if (!ASSERT_OK(bind(c->lfd, (struct sockaddr *)&ss, len), "bind") ||
	    !ASSERT_OK(listen(c->lfd, 1), "listen") ||
	    !ASSERT_OK(getsockname(c->lfd, (struct sockaddr *)&ss, &len), "getsockname") ||
	    !ASSERT_OK(connect(c->cfd, (struct sockaddr *)&ss, len), "connect"))
		return false;
	c->sport = v6 ? s6->sin6_port : s4->sin_port;
	c->sfd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
	len = sizeof(ss);
	if (!ASSERT_TRUE(c->sfd >= 0, "accept") ||
	    !ASSERT_OK(getsockname(c->cfd, (struct sockaddr *)&ss, &len), "client port"))
		return false;
	c->cport = v6 ? s6->sin6_port : s4->sin_port;
	return ASSERT_EQ(write(c->cfd, "req", 3), 3, "request") &&
	       ASSERT_EQ(read(c->sfd, buf, sizeof(buf)), 3, "request read") &&
	       ASSERT_EQ(write(c->sfd, "resp", 4), 4, "response") &&
	       ASSERT_EQ(read(c->cfd, buf, sizeof(buf)), 4, "response read");
}

/*
 * The state the iterator would read from the client socket, taken from the
 * server's last segment as captured: rcv_nxt = its seq + length, snd_nxt = its
 * ack, ts_recent = its TSval, rcv_tsecr = its TSecr.
 */
static bool client_state(struct conn *c, struct ferry_goaway_seg *seg)
{
	size_t iplen = c->v6 ? 40 : 20;
	bool found = false;
	__u8 pkt[2048];
	ssize_t n;

	memset(seg, 0, sizeof(*seg));
	while ((n = recv(c->pfd, pkt, sizeof(pkt), 0)) > 0) {
		const __u8 *tcp = pkt + iplen;
		size_t doff, paylen;

		if ((size_t)n < iplen + 20 || memcmp(tcp, &c->sport, 2) ||
		    memcmp(tcp + 2, &c->cport, 2))
			continue;
		doff = (size_t)(tcp[12] >> 4) * 4;
		paylen = (size_t)n - iplen - doff;
		seg->seq = get32(tcp + 4) + (__u32)paylen;
		seg->ack = get32(tcp + 8);
		seg->window = (__u16)(tcp[14] << 8 | tcp[15]);
		seg->tstamp = false;
		for (size_t o = 20; o + 10 <= doff;) {
			if (tcp[o] == 1) {
				o++;
			} else if (tcp[o] == 8 && tcp[o + 1] == 10) {
				seg->tstamp = true;
				seg->tsval = get32(tcp + o + 2);
				seg->tsecr = get32(tcp + o + 6);
				break;
			} else if (tcp[o] == 0 || tcp[o + 1] < 2) {
				break;
			} else {
				o += tcp[o + 1];
			}
		}
		found = true;
	}
	seg->family = c->v6 ? FERRY_AF_INET6 : FERRY_AF_INET;
	memcpy(seg->saddr, c->addr, c->v6 ? 16 : 4);
	memcpy(seg->daddr, c->addr, c->v6 ? 16 : 4);
	seg->sport = c->sport;
	seg->dport = c->cport;
	return found;
}

/* Sends seg and reads what the client's socket got within 300 ms (0: nothing). */
static ssize_t deliver(struct conn *c, const struct ferry_goaway_seg *seg, __u8 *got, size_t len)
{
	struct ferry_goaway_sockets sk;
	struct pollfd p = { .fd = c->cfd, .events = POLLIN };
	int err;

	ferry_goaway__open(&sk);
	err = ferry_goaway__send(&sk, seg);
	ferry_goaway__close(&sk);
	if (!ASSERT_OK(err, "raw send"))
		return -1;
	if (poll(&p, 1, 300) != 1)
		return 0;
	return read(c->cfd, got, len);
}

/* One GOAWAY into a real client socket: the client reads exactly the frame. */
static void goaway_delivery(bool v6, bool tstamps)
{
	struct ferry_goaway_seg seg;
	__u8 got[256];
	struct conn c;

	if (!private_netns()) {
		test__skip("no private network namespace (unshare: %s)", strerror(errno));
		return;
	}
	if (!ASSERT_OK(write_file("/proc/sys/net/ipv4/tcp_timestamps", tstamps ? "1" : "0"),
		       "net.ipv4.tcp_timestamps in the private namespace"))
		return;
	if (!conn_open(&c, v6))
		goto out;
	if (!ASSERT_TRUE(client_state(&c, &seg), "the server's segment captured") ||
	    !ASSERT_EQ(seg.tstamp, tstamps, "timestamps as negotiated"))
		goto out;
	if (ASSERT_EQ(deliver(&c, &seg, got, sizeof(got)), (ssize_t)FERRY_GOAWAY_FRAME_LEN,
		      "the client socket took the frame (rcv_nxt moved by its length)"))
		ASSERT_TRUE(frame_ok(got), "and reads the GOAWAY as sent");
	/* The same segment again is a duplicate now: nothing more to read. */
	ASSERT_EQ(deliver(&c, &seg, got, sizeof(got)), 0, "a duplicate is not delivered twice");
out:
	conn_close(&c);
}

static void test_goaway_delivery_v4_timestamps(void)
{
	goaway_delivery(false, true);
}

static void test_goaway_delivery_v4_no_timestamps(void)
{
	goaway_delivery(false, false);
}

static void test_goaway_delivery_v6_timestamps(void)
{
	goaway_delivery(true, true);
}

/*
 * Timestamps negotiated, the segment without the option: what this kernel does
 * with it (RFC 7323 5.3 lets it drop it). The builder always sends the option
 * when the socket has timestamps, so either answer is fine; printed for docs.
 */
static void test_goaway_without_option_on_timestamped(void)
{
	struct ferry_goaway_seg seg;
	__u8 got[256];
	struct conn c;
	ssize_t n;

	if (!private_netns()) {
		test__skip("no private network namespace (unshare: %s)", strerror(errno));
		return;
	}
	if (!ASSERT_OK(write_file("/proc/sys/net/ipv4/tcp_timestamps", "1"), "tcp_timestamps"))
		return;
	if (!conn_open(&c, false) || !ASSERT_TRUE(client_state(&c, &seg), "captured") ||
	    !ASSERT_TRUE(seg.tstamp, "negotiated"))
		goto out;
	seg.tstamp = false;
	n = deliver(&c, &seg, got, sizeof(got));
	ASSERT_TRUE(n == 0 || n == (ssize_t)FERRY_GOAWAY_FRAME_LEN, "dropped or taken whole");
	fprintf(stderr,
		"    note: %s %s a segment without the timestamp option on a connection "
		"that negotiated timestamps\n",
		"this kernel", n ? "accepts" : "drops");
out:
	conn_close(&c);
}

/* The iterator's record of the socket whose key is key, from one full pass. */
static bool iter_record(struct bpf_link *link, const struct ferry_flow_key *key,
			struct ferry_rebal_sock *out)
{
	static __u8 buf[1 << 16];
	size_t have = 0;
	bool found = false;
	ssize_t n;
	int fd;

	fd = bpf_iter_create(bpf_link__fd(link));
	if (!ASSERT_TRUE(fd >= 0, "bpf_iter_create"))
		return false;
	while (have < sizeof(buf) && (n = read(fd, buf + have, sizeof(buf) - have)) > 0)
		have += (size_t)n;
	close(fd);
	for (size_t off = 0; off + sizeof(*out) <= have; off += sizeof(*out)) {
		if (!memcmp(buf + off, key, sizeof(*key))) {
			memcpy(out, buf + off, sizeof(*out));
			found = true;
		}
	}
	return found;
}

/* The iterator loaded in a private namespace over one real connection, keyed as ferry would. */
struct iter_env {
	struct conn c;
	struct ferry_iter *skel;
	struct bpf_link *link;
	struct ferry_flow_key key;
	int flows, l7s, marks;
};

static bool iter_env_open(struct iter_env *e)
{
	memset(e, 0, sizeof(*e));
	e->c.lfd = e->c.cfd = e->c.sfd = e->c.pfd = -1;
	if (!ASSERT_TRUE(private_netns(), "private network namespace") || !conn_open(&e->c, false))
		return false;
	e->skel = ferry_iter__open();
	if (!ASSERT_TRUE(e->skel != NULL, "open ferry_iter"))
		return false;
	e->skel->rodata->ferry_have_l7 = true;
	if (!ASSERT_OK(ferry_iter__load(e->skel), "load ferry_iter"))
		return false;
	e->link = bpf_program__attach_iter(e->skel->progs.ferry_rebal_iter, NULL);
	if (!ASSERT_TRUE(e->link != NULL, "attach the iterator"))
		return false;
	e->key.proto = IPPROTO_TCP;
	e->key.family = FERRY_AF_INET;
	memcpy(e->key.saddr, e->c.addr, 4);
	memcpy(e->key.daddr, e->c.addr, 4);
	e->key.sport = e->c.cport;
	e->key.dport = e->c.sport;
	e->flows = bpf_map__fd(e->skel->maps.ferry_flows);
	e->l7s = bpf_map__fd(e->skel->maps.ferry_l7);
	e->marks = bpf_map__fd(e->skel->maps.ferry_rb_marks);
	return true;
}

static void iter_env_close(struct iter_env *e)
{
	bpf_link__destroy(e->link);
	ferry_iter__destroy(e->skel);
	conn_close(&e->c);
}

/*
 * A connection made by a SYN whose first payload has not gone by yet carries
 * FERRY_FLOW_F_L7_FRESH: ferry_l7 may still hold an earlier connection's state
 * for the tuple (here: h2c, a stream in flight), which must make it neither
 * busy nor h2c to the iterator. Once the flag is gone the entry is read.
 */
static void test_iter_fresh_flow(void)
{
	struct ferry_l7 l7 = { .head = { .protocol = FERRY_L7_H2C, .inflight = 1, .requests = 7 } };
	struct ferry_flow flow = { .svc_id = 1, .predictor_id = 2, .backend_id = 3 };
	struct ferry_rebal_sock rec;
	struct iter_env e;

	if (!iter_env_open(&e))
		goto out;
	flow.flags = FERRY_FLOW_F_L7_FRESH;
	if (!ASSERT_OK(bpf_map_update_elem(e.flows, &e.key, &flow, BPF_ANY), "flow") ||
	    !ASSERT_OK(bpf_map_update_elem(e.l7s, &e.key, &l7, BPF_ANY),
		       "an earlier connection's l7"))
		goto out;

	if (ASSERT_TRUE(iter_record(e.link, &e.key, &rec), "the client socket's record")) {
		ASSERT_EQ(rec.backend_id, 3, "its flow's backend");
		ASSERT_EQ(rec.l7_protocol, FERRY_L7_UNKNOWN, "not h2c by an earlier connection");
		ASSERT_EQ(rec.inflight, 0, "nothing in flight by an earlier connection");
		ASSERT_EQ(rec.busy & FERRY_RB_BUSY_L7, 0, "not busy by an earlier connection");
	}
	flow.flags = 0;
	if (!ASSERT_OK(bpf_map_update_elem(e.flows, &e.key, &flow, BPF_ANY), "flag cleared"))
		goto out;
	if (ASSERT_TRUE(iter_record(e.link, &e.key, &rec), "the record again")) {
		ASSERT_EQ(rec.l7_protocol, FERRY_L7_H2C, "its own state read");
		ASSERT_EQ(rec.inflight, 1, "a stream in flight");
		ASSERT_EQ(rec.busy & FERRY_RB_BUSY_L7, FERRY_RB_BUSY_L7, "busy by its stream");
	}
out:
	iter_env_close(&e);
}

/*
 * How the iterator tells an h2c connection (struct ferry_l7's GOAWAY state):
 * due and busy (a stream in flight), it arms the flow for the reply path
 * (TELL) and reports it busy; HTTP/1 is never armed; once the reply path has
 * appended the frame (TOLD) it reports where the frame ends, for phase 2; due
 * and idle, it takes ferryd's own segment (RAW, at the socket's rcv_nxt, so
 * that the data path drops what would land on it); and a RAW connection whose
 * GOAWAY ferryd could not send (FERRY_RB_MARK_ABORT) is ended even though its
 * dropped payload keeps it busy.
 */
static void test_iter_goaway_states(void)
{
	struct ferry_l7 l7 = { .head = { .protocol = FERRY_L7_HTTP1, .inflight = 1 } };
	struct ferry_flow flow = { .svc_id = 1, .predictor_id = 2, .backend_id = 3 };
	struct ferry_rebal_mark mark = { .deadline_ns = 1 };
	struct ferry_rebal_sock rec;
	struct iter_env e;
	char buf[8];

	if (!iter_env_open(&e))
		goto out;
	if (!ASSERT_OK(bpf_map_update_elem(e.flows, &e.key, &flow, BPF_ANY), "flow") ||
	    !ASSERT_OK(bpf_map_update_elem(e.l7s, &e.key, &l7, BPF_ANY), "l7") ||
	    !ASSERT_TRUE(iter_record(e.link, &e.key, &rec), "the client socket's record") ||
	    !ASSERT_OK(bpf_map_update_elem(e.marks, &rec.cookie, &mark, BPF_ANY), "due mark"))
		goto out;

	if (!ASSERT_TRUE(iter_record(e.link, &e.key, &rec), "the record"))
		goto out;
	ASSERT_EQ(rec.verdict, FERRY_RB_BUSY, "HTTP/1, a request in flight: busy");
	bpf_map_lookup_elem(e.l7s, &e.key, &l7);
	ASSERT_EQ(l7.head.goaway, 0, "HTTP/1 is not armed");

	l7.head.protocol = FERRY_L7_H2C;
	bpf_map_update_elem(e.l7s, &e.key, &l7, BPF_ANY);
	if (!ASSERT_TRUE(iter_record(e.link, &e.key, &rec), "the record"))
		goto out;
	ASSERT_EQ(rec.verdict, FERRY_RB_BUSY, "h2c, a stream in flight: busy");
	bpf_map_lookup_elem(e.l7s, &e.key, &l7);
	ASSERT_EQ(l7.head.goaway, FERRY_L7_GOAWAY_TELL, "armed for the reply path");
	ASSERT_EQ(rec.l7_goaway, 0, "the record has the state it found");
	if (!ASSERT_TRUE(iter_record(e.link, &e.key, &rec), "the record"))
		goto out;
	ASSERT_EQ(rec.l7_goaway, FERRY_L7_GOAWAY_TELL, "armed, at the next pass");

	l7.head.goaway = FERRY_L7_GOAWAY_TOLD;
	l7.goaway_seq = 0xfffffff0; /* the end wraps */
	bpf_map_update_elem(e.l7s, &e.key, &l7, BPF_ANY);
	if (!ASSERT_TRUE(iter_record(e.link, &e.key, &rec), "the record"))
		goto out;
	ASSERT_EQ(rec.verdict, FERRY_RB_TOLD, "told by the reply path");
	ASSERT_EQ(rec.goaway_end_seq, 0x10, "past the frame");

	l7.head.goaway = 0;
	l7.head.inflight = 0;
	bpf_map_update_elem(e.l7s, &e.key, &l7, BPF_ANY);
	if (!ASSERT_TRUE(iter_record(e.link, &e.key, &rec), "the record"))
		goto out;
	ASSERT_EQ(rec.verdict, FERRY_RB_GOAWAY, "idle: ferryd's own GOAWAY");
	bpf_map_lookup_elem(e.l7s, &e.key, &l7);
	ASSERT_EQ(l7.head.goaway, FERRY_L7_GOAWAY_RAW, "the data path drops what lands on it");
	ASSERT_EQ(l7.goaway_seq, rec.rcv_nxt, "at the socket's rcv_nxt");
	bpf_map_lookup_elem(e.flows, &e.key, &flow);
	ASSERT_EQ(flow.flags & FERRY_FLOW_F_TOLD, FERRY_FLOW_F_TOLD,
		  "the flow is told: ACKs and sequence numbers lose and gain the frame");

	mark.flags = FERRY_RB_MARK_ABORT;
	bpf_map_update_elem(e.marks, &rec.cookie, &mark, BPF_ANY);
	ASSERT_EQ(write(e.c.cfd, "x", 1), 1, "the client writes (dropped by the data path)");
	if (!ASSERT_TRUE(iter_record(e.link, &e.key, &rec), "the record"))
		goto out;
	ASSERT_EQ(rec.verdict, FERRY_RB_DESTROYED, "ferryd could not send it: aborted at once");
	ASSERT_TRUE(read(e.c.cfd, buf, sizeof(buf)) < 0 && errno == ECONNABORTED,
		    "the client's socket was aborted");
out:
	iter_env_close(&e);
}

#define MARKS_PIN "/sys/fs/bpf/ferry-trebal"

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

/*
 * A ferryd that stops between a GOAWAY and phase 2 (a rolling update, a
 * crash): the next one takes the pinned mark over and ends the socket, both
 * ends of it. Here the told client closed its side meanwhile, as gRPC does
 * after a GOAWAY; a host client's server discards that FIN (it acknowledges
 * the frame the server never sent), so the server's socket stayed ESTABLISHED
 * for good when the marks died with ferryd, and also, with them pinned, when
 * only the abort's RST went to it (below). The end is not counted again (the
 * first ferryd counted the GOAWAY). A pin of another layout is replaced.
 */
static void test_marks_survive_restart(void)
{
	struct ferry_flow flow = { .svc_id = 1, .predictor_id = 2, .backend_id = 3 };
	struct ferry_rebal_mark mark = { .deadline_ns = 1 }, got;
	struct ferry_rebal *r = NULL;
	struct ferry_rebal_stats st;
	struct bpf_map_info info = {};
	__u32 info_len = sizeof(info);
	struct ferry_dp *dp = NULL;
	struct ferry_flow_key key = { .proto = IPPROTO_TCP, .family = FERRY_AF_INET };
	struct tcp_info ti = {};
	socklen_t len = sizeof(__u64);
	struct conn c = { .lfd = -1, .cfd = -1, .sfd = -1, .pfd = -1 };
	struct pollfd p = { .events = POLLIN };
	__u8 frame[FERRY_GOAWAY_FRAME_LEN + 16];
	struct ferry_goaway_seg seg;
	__u64 cookie = 0;
	int fd = -1;

	if (!ASSERT_TRUE(private_netns(), "private network namespace") || !conn_open(&c, false))
		goto out;
	ferry_dp__reset(MARKS_PIN);
	dp = ferry_dp__open(&(struct ferry_dp_opts){ .pin_path = MARKS_PIN });
	if (!ASSERT_TRUE(dp != NULL, "a data plane"))
		goto out;
	memcpy(key.saddr, c.addr, 4);
	memcpy(key.daddr, c.addr, 4);
	key.sport = c.cport;
	key.dport = c.sport;
	if (!ASSERT_OK(bpf_map_update_elem(dp->map_fds[FERRY_M_FLOWS], &key, &flow, BPF_ANY),
		       "the connection's flow") ||
	    !ASSERT_OK(getsockopt(c.cfd, SOL_SOCKET, SO_COOKIE, &cookie, &len), "its cookie"))
		goto out;

	r = ferry_rebal__new(&(struct ferry_rebal_opts){ .pin_path = MARKS_PIN });
	ferry_rebal__stats(r, &st);
	if (!ASSERT_TRUE(st.available, st.reason))
		goto out;
	fd = bpf_obj_get(MARKS_PIN "/" FERRY_MAP_RB_MARKS);
	if (!ASSERT_TRUE(fd >= 0, "the marks are pinned"))
		goto out;
	/* The first ferryd tells the connection: the GOAWAY goes in, and its mark says so. */
	if (!ASSERT_TRUE(client_state(&c, &seg), "the server's segment captured") ||
	    !ASSERT_EQ(deliver(&c, &seg, frame, sizeof(frame)), (ssize_t)FERRY_GOAWAY_FRAME_LEN,
		       "the client read the GOAWAY"))
		goto out;
	mark.goaway_ns = mono_ns();
	mark.goaway_end_seq = seg.seq + FERRY_GOAWAY_FRAME_LEN;
	if (!ASSERT_OK(bpf_map_update_elem(fd, &cookie, &mark, BPF_ANY), "a told mark"))
		goto out;
	ferry_rebal__free(r);
	r = NULL;
	/* Its FIN acknowledges the frame: the server discards it (and challenges it, 6.18). */
	ASSERT_OK(shutdown(c.cfd, SHUT_WR), "the client closes after the GOAWAY");

	r = ferry_rebal__new(&(struct ferry_rebal_opts){ .pin_path = MARKS_PIN });
	ferry_rebal__stats(r, &st);
	if (!ASSERT_TRUE(st.available, st.reason))
		goto out;
	ASSERT_EQ(st.marked, 1, "the next ferryd took the mark over");
	ferry_rebal__tick(r, mono_ns());
	ferry_rebal__stats(r, &st);
	ASSERT_EQ(st.marked, 0, "its pass ended it");
	ASSERT_EQ(st.goaway + st.destroyed + st.gone, 0, "not counted again");
	ASSERT_TRUE(bpf_map_lookup_elem(fd, &cookie, &got) && errno == ENOENT,
		    "the pin's mark is gone");
	len = sizeof(ti);
	ASSERT_OK(getsockopt(c.cfd, IPPROTO_TCP, TCP_INFO, &ti, &len), "TCP_INFO");
	ASSERT_EQ(ti.tcpi_state, TCP_CLOSE, "the client's socket was aborted");
	/*
	 * The abort's RST follows the discarded FIN, one past the server's
	 * rcv_nxt: the server answers with a challenge ACK, rate-limited per
	 * socket (net.ipv4.tcp_invalid_ratelimit, 500 ms) and so skipped after the
	 * one the FIN drew; only ferryd's RST at the client's snd_una is exact.
	 */
	p.fd = c.sfd;
	ASSERT_EQ(poll(&p, 1, 300), 1, "the server's socket wakes up");
	len = sizeof(ti);
	ASSERT_OK(getsockopt(c.sfd, IPPROTO_TCP, TCP_INFO, &ti, &len), "the server's TCP_INFO");
	ASSERT_EQ(ti.tcpi_state, TCP_CLOSE, "the server's socket was reset");
	ferry_rebal__free(r);
	r = NULL;
	close(fd);

	/* A pin of another layout: replaced by one of this ferryd's. */
	unlink(MARKS_PIN "/" FERRY_MAP_RB_MARKS);
	fd = bpf_map_create(BPF_MAP_TYPE_HASH, "ferry_rb_marks", sizeof(__u64), 16, 64, NULL);
	if (!ASSERT_TRUE(fd >= 0, "an older mark map") ||
	    !ASSERT_OK(bpf_obj_pin(fd, MARKS_PIN "/" FERRY_MAP_RB_MARKS), "pinned"))
		goto out;
	close(fd);
	r = ferry_rebal__new(&(struct ferry_rebal_opts){ .pin_path = MARKS_PIN });
	ferry_rebal__stats(r, &st);
	ASSERT_TRUE(st.available, "available over a pin of another layout");
	fd = bpf_obj_get(MARKS_PIN "/" FERRY_MAP_RB_MARKS);
	if (ASSERT_TRUE(fd >= 0, "pinned again") &&
	    ASSERT_OK(bpf_obj_get_info_by_fd(fd, &info, &info_len), "its info"))
		ASSERT_EQ(info.value_size, sizeof(struct ferry_rebal_mark), "this layout");
out:
	if (fd >= 0)
		close(fd);
	ferry_rebal__free(r);
	ferry_dp__close(dp);
	ferry_dp__reset(MARKS_PIN);
	conn_close(&c);
}

int main(int argc, char **argv)
{
	test__main_init(argc, argv);
	RUN_TEST(SUITE, test_rollback_to_zero);
	RUN_TEST(SUITE, test_drain);
	RUN_TEST(SUITE, test_partial_shift);
	RUN_TEST(SUITE, test_no_churn_without_shrink);
	RUN_TEST(SUITE, test_predictor_removed);
	RUN_TEST(SUITE, test_deadlines_spread);
	RUN_TEST(SUITE, test_goaway_segment_v4);
	RUN_TEST(SUITE, test_goaway_segment_v6);
	RUN_TEST(SUITE, test_goaway_delivery_v4_timestamps);
	RUN_TEST(SUITE, test_goaway_delivery_v4_no_timestamps);
	RUN_TEST(SUITE, test_goaway_delivery_v6_timestamps);
	RUN_TEST(SUITE, test_goaway_without_option_on_timestamped);
	RUN_TEST(SUITE, test_iter_fresh_flow);
	RUN_TEST(SUITE, test_iter_goaway_states);
	RUN_TEST(SUITE, test_marks_survive_restart);
	return test__summary();
}
