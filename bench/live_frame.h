/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What the live-frame generators (bench/pps_gen.c, bench/syn_flood.c) share:
 * both make their frames in the kernel (BPF_PROG_TEST_RUN with
 * BPF_F_TEST_XDP_LIVE_FRAMES) with a small hand-assembled XDP program that
 * stamps each frame from a template, so both need the instruction encodings,
 * the sending interface's MAC address and the template's Ethernet + IPv4
 * header. Checksums come from tests/pkt_builder.h, the fixtures' builder.
 * Where the kernel refuses live frames, both send the same frames from a
 * packet socket instead (live_frame_sock_send).
 */
#ifndef FERRY_BENCH_LIVE_FRAME_H
#define FERRY_BENCH_LIVE_FRAME_H

#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <linux/if_packet.h>

#include "../tests/pkt_builder.h"

#ifndef BPF_F_TEST_XDP_LIVE_FRAMES
#define BPF_F_TEST_XDP_LIVE_FRAMES (1U << 1)
#endif

/* Instruction encodings (the kernel's filter.h is not UAPI). */
#define INSN(c, d, s, o, i) \
	((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })
#define ALU64_IMM(op, d, i) INSN(BPF_ALU64 | (op) | BPF_K, d, 0, 0, i)
#define ALU64_REG(op, d, s) INSN(BPF_ALU64 | (op) | BPF_X, d, s, 0, 0)
#define MOV64_IMM(d, i) ALU64_IMM(BPF_MOV, d, i)
#define MOV64_REG(d, s) ALU64_REG(BPF_MOV, d, s)
#define LDX_MEM(sz, d, s, o) INSN(BPF_LDX | BPF_MEM | (sz), d, s, o, 0)
#define STX_MEM(sz, d, s, o) INSN(BPF_STX | BPF_MEM | (sz), d, s, o, 0)
#define ST_MEM(sz, d, o, i) INSN(BPF_ST | BPF_MEM | (sz), d, 0, o, i)
#define JGT_REG(d, s, o) INSN(BPF_JMP | BPF_JGT | BPF_X, d, s, o, 0)
#define CALL(f) INSN(BPF_JMP | BPF_CALL, 0, 0, 0, f)
#define EXIT() INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

/* "aa:bb:cc:dd:ee:ff" into mac; -EINVAL if it is not one. */
static inline int live_frame_parse_mac(const char *s, unsigned char mac[6])
{
	return sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3],
		      &mac[4], &mac[5]) == 6 ?
		       0 :
		       -EINVAL;
}

/* The interface's MAC address: the frames' source, as if it had sent them. */
static inline int live_frame_iface_mac(const char *ifname, unsigned char mac[6])
{
	struct ifreq ifr = {};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), err = 0;

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr))
		err = -errno;
	else
		memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	close(fd);
	return err;
}

/*
 * The template's EtherType (IPv4) and its IPv4 header at f + 14: no options,
 * no fragment bits, TTL 64, the given total length (host order) and IP ID,
 * and its checksum. The MACs (f[0..11]) are the caller's.
 */
static inline void live_frame_ipv4(unsigned char *f, __u16 tot_len, __u16 id, __u8 proto,
				   struct in_addr src, struct in_addr dst)
{
	unsigned char *ip = f + 14;
	__be16 v;

	f[12] = 0x08; /* IPv4 */
	f[13] = 0x00;
	ip[0] = 0x45;
	v = htons(tot_len);
	memcpy(ip + 2, &v, 2);
	v = htons(id);
	memcpy(ip + 4, &v, 2);
	ip[8] = 64; /* TTL */
	ip[9] = proto;
	memcpy(ip + 12, &src, 4);
	memcpy(ip + 16, &dst, 4);
	v = pb_fold(pb_sum(ip, 20, 0));
	memcpy(ip + 10, &v, 2);
}

/*
 * Where the kernel refuses live-frame test_run (EPERM on some hardened
 * kernels), the same frames leave from a packet socket on ifindex that
 * bypasses the qdisc, LIVE_FRAME_BATCH to a sendmmsg: fill() stamps each
 * copy of the template with a fresh 64-bit random draw, as the generator
 * program does. Slower than live frames (every frame crosses the syscall
 * boundary). Returns the frames sent in `seconds`, or -errno.
 */
#define LIVE_FRAME_BATCH 64

typedef void (*live_frame_fill_fn)(unsigned char *frame, __u64 rnd, void *arg);

static inline double live_frame_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline long long live_frame_sock_send(int ifindex, const unsigned char *tmpl, size_t len,
					     double seconds, live_frame_fill_fn fill, void *arg)
{
	static unsigned char frames[LIVE_FRAME_BATCH][128];
	struct sockaddr_ll sll = { .sll_family = AF_PACKET,
				   .sll_ifindex = ifindex,
				   .sll_halen = 6 };
	struct mmsghdr msgs[LIVE_FRAME_BATCH];
	struct iovec iov[LIVE_FRAME_BATCH];
	__u64 x = ((__u64)(live_frame_now() * 1e6) ^ (__u64)getpid() << 32) | 1;
	long long sent = 0;
	int one = 1, fd, i, n;
	double end;

	if (len > sizeof(frames[0]))
		return -EINVAL;
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
	memset(msgs, 0, sizeof(msgs));
	for (i = 0; i < LIVE_FRAME_BATCH; i++) {
		memcpy(frames[i], tmpl, len);
		iov[i] = (struct iovec){ .iov_base = frames[i], .iov_len = len };
		msgs[i].msg_hdr = (struct msghdr){ .msg_name = &sll,
						   .msg_namelen = sizeof(sll),
						   .msg_iov = &iov[i],
						   .msg_iovlen = 1 };
	}
	end = live_frame_now() + seconds;
	while (live_frame_now() < end) {
		for (i = 0; i < LIVE_FRAME_BATCH; i++) {
			/* xorshift64 */
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			fill(frames[i], x, arg);
		}
		n = sendmmsg(fd, msgs, LIVE_FRAME_BATCH, 0);
		if (n < 0 && errno != ENOBUFS && errno != EAGAIN) {
			n = -errno;
			close(fd);
			return n;
		}
		sent += n > 0 ? n : 0;
	}
	close(fd);
	return sent;
}

#endif /* FERRY_BENCH_LIVE_FRAME_H */
