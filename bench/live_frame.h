/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What the live-frame generators (bench/pps_gen.c, bench/syn_flood.c) share:
 * both make their frames in the kernel (BPF_PROG_TEST_RUN with
 * BPF_F_TEST_XDP_LIVE_FRAMES) with a small hand-assembled XDP program that
 * stamps each frame from a template, so both need the instruction encodings,
 * the sending interface's MAC address and the template's Ethernet + IPv4
 * header. Checksums come from tests/pkt_builder.h, the fixtures' builder.
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
#include <unistd.h>
#include <linux/bpf.h>

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

#endif /* FERRY_BENCH_LIVE_FRAME_H */
