// SPDX-License-Identifier: GPL-2.0-only
/*
 * Packet generator and counter for `make bench`'s packet-rate section.
 *
 * Frames are made in the kernel by BPF_PROG_TEST_RUN in live-frame mode
 * (BPF_F_TEST_XDP_LIVE_FRAMES, Linux 5.18+): a tiny XDP program gives each
 * frame a new UDP source port and redirects it out of --iface (the client's
 * veth), so it arrives at the node's veth as a real received frame, where
 * whatever is being measured (ferry's XDP, iptables DNAT, plain forwarding)
 * handles it (where the kernel refuses live frames, the same frames leave
 * from a packet socket: "generator" in the output says which). The
 * backends' veth ends carry a counting XDP program that drops what it counts: the benchmark sink, so that no backend stack work
 * (ICMP port unreachable, socket lookups) is on the measured path. That
 * program is ours, not part of any system under test.
 *
 * The BPF programs are a few instructions each, written out here rather than
 * compiled: every bench/NAME.c is built as user space, and they need no maps beyond
 * one per-CPU counter array. All programs are attached with BPF links, so
 * they go away with this process whatever way it exits.
 *
 * Sinks of the other kind, --sock NETNS_PATH:PORT, are real UDP sockets in
 * the backends' namespaces, read by a thread each (recvmmsg) on a CPU other
 * than --cpu: every frame counted there was turned into an skb, went through
 * the backend's IP stack and reached a socket, as a pod's traffic must.
 * Frames the socket had no room for are reported too (the namespace's
 * UDP RcvbufErrors): they were delivered as far as the socket.
 *
 * Usage: pps_gen --iface IF --dst-mac MAC --src IP --dst IP --dport N
 *                [--flows N] [--seconds S] [--warmup S] [--cpu N]
 *                [--count NETNS_PATH:IF]... [--sock NETNS_PATH:PORT]...
 *                [--pass NETNS_PATH:IF]...
 * Runs in the client's network namespace (ip netns exec); --count and
 * --pass name interfaces in other namespaces by their /run/netns path.
 * Prints one JSON object on stdout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <jansson.h>
#include <linux/bpf.h>

#include "live_frame.h"

#define MAX_SINKS 16
#define FRAME_LEN 60 /* minimum Ethernet frame without FCS */
#define OFF_SPORT (14 + 20)

/* Encodings beyond live_frame.h's. */
#define ADD64_IMM(d, i) ALU64_IMM(BPF_ADD, d, i)
#define AND64_IMM(d, i) ALU64_IMM(BPF_AND, d, i)
#define JEQ_IMM(d, i, o) INSN(BPF_JMP | BPF_JEQ | BPF_K, d, 0, o, i)
#define LD_MAP_FD(d, fd) \
	INSN(BPF_LD | BPF_DW | BPF_IMM, d, BPF_PSEUDO_MAP_FD, 0, fd), INSN(0, 0, 0, 0, 0)

struct sink {
	char netns[256];
	char ifname[IF_NAMESIZE];
	int prog_fd;
	int link_fd;
};

/* A UDP socket in a backend's namespace and the thread that reads it. */
struct sock_sink {
	char netns[256];
	char label[300];
	int port;
	int fd;
	int avoid_cpu;
	pthread_t thread;
	bool started;
	atomic_ullong received;
	atomic_ullong rcvbuf_errors; /* the namespace's UDP RcvbufErrors, refreshed by the reader */
	atomic_bool stop;
	atomic_int ready; /* 1: bound; -errno: failed */
};

struct opts {
	const char *iface, *dst_mac, *src, *dst;
	int dport, flows, cpu;
	double seconds, warmup;
	struct sink count[MAX_SINKS], pass[MAX_SINKS];
	struct sock_sink sock[MAX_SINKS];
	int ncount, npass, nsock;
};

static int load_xdp(const char *name, const struct bpf_insn *insns, size_t n)
{
	char log[4096] = "";
	LIBBPF_OPTS(bpf_prog_load_opts, o, .log_buf = log, .log_size = sizeof(log), .log_level = 0);
	int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, name, "GPL", insns, n, &o);

	if (fd < 0) {
		o.log_level = 1;
		fd = bpf_prog_load(BPF_PROG_TYPE_XDP, name, "GPL", insns, n, &o);
		fprintf(stderr, "pps_gen: loading %s: %s\n%s\n", name, strerror(errno), log);
	}
	return fd;
}

/* XDP_DROP after adding one to counters[idx] (per CPU). */
static int load_counter(int map_fd, int idx)
{
	const struct bpf_insn insns[] = {
		ST_MEM(BPF_W, BPF_REG_10, -4, idx),
		MOV64_REG(BPF_REG_2, BPF_REG_10),
		ADD64_IMM(BPF_REG_2, -4),
		LD_MAP_FD(BPF_REG_1, map_fd),
		CALL(BPF_FUNC_map_lookup_elem),
		JEQ_IMM(BPF_REG_0, 0, 3),
		LDX_MEM(BPF_DW, BPF_REG_1, BPF_REG_0, 0),
		ADD64_IMM(BPF_REG_1, 1),
		STX_MEM(BPF_DW, BPF_REG_0, BPF_REG_1, 0),
		MOV64_IMM(BPF_REG_0, XDP_DROP),
		EXIT(),
	};
	return load_xdp("fx_count", insns, sizeof(insns) / sizeof(insns[0]));
}

/* XDP_PASS: gives a veth without XDP of its own the NAPI ring redirected frames need. */
static int load_pass(void)
{
	const struct bpf_insn insns[] = { MOV64_IMM(BPF_REG_0, XDP_PASS), EXIT() };

	return load_xdp("fx_pass", insns, 2);
}

/*
 * The generator: rewrites the frame's first HDR_WORDS * 4 bytes from the
 * template, gives it a pseudo-random UDP source port from a range of `flows`
 * (a power of two) starting at 1024, and redirects it out of ifindex.
 * Live-frame mode recycles pages without restoring their content, and what
 * the node did to the last frame in a page (MAC rewrite by the forwarding
 * path, DNAT by a balancer, TTL) would otherwise be sent again. The UDP
 * checksum is 0 (none, legal in IPv4).
 */
#define HDR_WORDS 11 /* Ethernet + IPv4 + UDP, and 2 bytes of payload */
#define GEN_INSNS (HDR_WORDS + 15)

static int load_gen(int ifindex, int flows, const unsigned char *frame)
{
	struct bpf_insn insns[GEN_INSNS];
	int n = 0, w;

	insns[n++] = MOV64_REG(BPF_REG_6, BPF_REG_1);
	insns[n++] = CALL(BPF_FUNC_get_prandom_u32);
	insns[n++] = AND64_IMM(BPF_REG_0, flows - 1);
	insns[n++] = ADD64_IMM(BPF_REG_0, 1024);
	/* to network byte order: the port is a 16-bit big-endian field */
	insns[n++] = INSN(BPF_ALU | BPF_END | BPF_TO_BE, BPF_REG_0, 0, 0, 16);
	insns[n++] = LDX_MEM(BPF_W, BPF_REG_2, BPF_REG_6, offsetof(struct xdp_md, data));
	insns[n++] = LDX_MEM(BPF_W, BPF_REG_3, BPF_REG_6, offsetof(struct xdp_md, data_end));
	insns[n++] = MOV64_REG(BPF_REG_4, BPF_REG_2);
	insns[n++] = ADD64_IMM(BPF_REG_4, HDR_WORDS * 4);
	insns[n++] = JGT_REG(BPF_REG_4, BPF_REG_3, HDR_WORDS + 1);
	for (w = 0; w < HDR_WORDS; w++) {
		__s32 word;

		memcpy(&word, frame + 4 * w, 4); /* bytes in frame order, stored as they are */
		insns[n++] = ST_MEM(BPF_W, BPF_REG_2, 4 * w, word);
	}
	insns[n++] = STX_MEM(BPF_H, BPF_REG_2, BPF_REG_0, OFF_SPORT);
	insns[n++] = MOV64_IMM(BPF_REG_1, ifindex);
	insns[n++] = MOV64_IMM(BPF_REG_2, 0);
	insns[n++] = CALL(BPF_FUNC_redirect);
	insns[n++] = EXIT();
	return load_xdp("fx_gen", insns, n);
}

static int build_frame(const struct opts *o, unsigned char *f)
{
	unsigned char *udp = f + 34;
	struct in_addr src, dst;
	int err;

	memset(f, 0, FRAME_LEN);
	if (live_frame_parse_mac(o->dst_mac, f)) {
		fprintf(stderr, "pps_gen: --dst-mac %s: expected aa:bb:cc:dd:ee:ff\n", o->dst_mac);
		return -EINVAL;
	}
	err = live_frame_iface_mac(o->iface, f + 6);
	if (err) {
		fprintf(stderr, "pps_gen: --iface %s: no MAC address: %s\n", o->iface,
			strerror(-err));
		return err;
	}
	if (inet_pton(AF_INET, o->src, &src) != 1 || inet_pton(AF_INET, o->dst, &dst) != 1) {
		fprintf(stderr, "pps_gen: --src/--dst: expected IPv4 addresses\n");
		return -EINVAL;
	}
	live_frame_ipv4(f, FRAME_LEN - 14, 0, IPPROTO_UDP, src, dst);
	*(__u16 *)(udp + 0) = htons(1024);
	*(__u16 *)(udp + 2) = htons(o->dport);
	*(__u16 *)(udp + 4) = htons(FRAME_LEN - 34);
	return 0; /* UDP checksum stays 0: none */
}

/* Runs fn in the network namespace at path, then returns to ours. */
static int in_netns(int self_ns, const char *path, const char *ifname, int prog_fd, int *link_fd)
{
	int ns = open(path, O_RDONLY | O_CLOEXEC), ifindex, err = 0;

	if (ns < 0) {
		fprintf(stderr, "pps_gen: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	if (setns(ns, CLONE_NEWNET)) {
		err = -errno;
		fprintf(stderr, "pps_gen: setns %s: %s\n", path, strerror(errno));
		goto out_close;
	}
	ifindex = if_nametoindex(ifname);
	if (!ifindex) {
		err = -ENODEV;
		fprintf(stderr, "pps_gen: %s in %s: no such interface\n", ifname, path);
		goto out_back;
	}
	*link_fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, NULL);
	if (*link_fd < 0) {
		err = -errno;
		fprintf(stderr, "pps_gen: XDP link on %s in %s: %s\n", ifname, path,
			strerror(errno));
	}
out_back:
	if (setns(self_ns, CLONE_NEWNET) && !err)
		err = -errno;
out_close:
	close(ns);
	return err;
}

static int parse_sink(const char *arg, struct sink *s)
{
	const char *colon = strrchr(arg, ':');

	if (!colon || colon == arg || strlen(colon + 1) >= IF_NAMESIZE ||
	    (size_t)(colon - arg) >= sizeof(s->netns)) {
		fprintf(stderr, "pps_gen: '%s': expected NETNS_PATH:IFNAME\n", arg);
		return -EINVAL;
	}
	snprintf(s->netns, sizeof(s->netns), "%.*s", (int)(colon - arg), arg);
	snprintf(s->ifname, sizeof(s->ifname), "%s", colon + 1);
	s->prog_fd = s->link_fd = -1;
	return 0;
}

static int parse_sock_sink(const char *arg, struct sock_sink *s)
{
	const char *colon = strrchr(arg, ':');

	if (!colon || colon == arg || atoi(colon + 1) <= 0 ||
	    (size_t)(colon - arg) >= sizeof(s->netns)) {
		fprintf(stderr, "pps_gen: '%s': expected NETNS_PATH:PORT\n", arg);
		return -EINVAL;
	}
	snprintf(s->netns, sizeof(s->netns), "%.*s", (int)(colon - arg), arg);
	/* Named after the namespace, like an interface sink: "fx-b1". */
	snprintf(s->label, sizeof(s->label), "%s",
		 strrchr(s->netns, '/') ? strrchr(s->netns, '/') + 1 : s->netns);
	s->port = atoi(colon + 1);
	s->fd = -1;
	return 0;
}

/* UDP RcvbufErrors of the calling thread's network namespace. */
static unsigned long long udp_rcvbuf_errors(void)
{
	char names[1024], values[1024], *n, *v, *sn, *sv;
	unsigned long long r = 0;
	FILE *f = fopen("/proc/thread-self/net/snmp", "r");

	if (!f)
		return 0;
	while (fgets(names, sizeof(names), f) && fgets(values, sizeof(values), f)) {
		if (strncmp(names, "Udp:", 4))
			continue;
		n = strtok_r(names, " \n", &sn);
		v = strtok_r(values, " \n", &sv);
		while (n && v) {
			if (!strcmp(n, "RcvbufErrors"))
				r = strtoull(v, NULL, 10);
			n = strtok_r(NULL, " \n", &sn);
			v = strtok_r(NULL, " \n", &sv);
		}
		break;
	}
	fclose(f);
	return r;
}

/*
 * The reader: enters the backend's namespace (this thread only), binds
 * 0.0.0.0:port, and counts datagrams until told to stop. Runs on any CPU
 * but --cpu, so that the application's reads are not on the measured core.
 */
static void *sock_reader(void *arg)
{
	struct sock_sink *s = arg;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(s->port) };
	struct mmsghdr msgs[64];
	struct iovec iov[64];
	static __thread char bufs[64][64];
	struct timeval tv = { .tv_usec = 50000 };
	int big = 4 << 20, ns, n, ncpu = libbpf_num_possible_cpus();
	cpu_set_t set;

	CPU_ZERO(&set);
	for (int c = 0; c < ncpu; c++)
		if (c != s->avoid_cpu || ncpu == 1)
			CPU_SET(c, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	ns = open(s->netns, O_RDONLY | O_CLOEXEC);
	if (ns < 0 || unshare(CLONE_FS) || setns(ns, CLONE_NEWNET)) {
		atomic_store(&s->ready, -errno);
		if (ns >= 0)
			close(ns);
		return NULL;
	}
	close(ns);
	s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0 || setsockopt(s->fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) ||
	    setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    bind(s->fd, (struct sockaddr *)&a, sizeof(a))) {
		atomic_store(&s->ready, -errno);
		return NULL;
	}
	for (int i = 0; i < 64; i++) {
		iov[i] = (struct iovec){ .iov_base = bufs[i], .iov_len = sizeof(bufs[i]) };
		msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	atomic_store(&s->rcvbuf_errors, udp_rcvbuf_errors());
	atomic_store(&s->ready, 1);
	while (!atomic_load(&s->stop)) {
		n = recvmmsg(s->fd, msgs, 64, MSG_WAITFORONE, NULL);
		if (n > 0)
			atomic_fetch_add(&s->received, n);
		else
			atomic_store(&s->rcvbuf_errors, udp_rcvbuf_errors());
	}
	atomic_store(&s->rcvbuf_errors, udp_rcvbuf_errors());
	return NULL;
}

/*
 * Waits until the readers have emptied their sockets (nothing read for
 * 120 ms, at most 7 s), so that counts taken now hold every datagram queued
 * before and none queued after.
 */
static void sock_sinks_drain(struct opts *o)
{
	unsigned long long prev = ~0ULL, cur;

	for (int t = 0; t < 60; t++) {
		cur = 0;
		for (int i = 0; i < o->nsock; i++)
			cur += atomic_load(&o->sock[i].received);
		if (cur == prev)
			return;
		prev = cur;
		usleep(120000); /* > SO_RCVTIMEO: an idle reader has refreshed rcvbuf_errors */
	}
}

static int sock_sinks_start(struct opts *o)
{
	for (int i = 0; i < o->nsock; i++) {
		struct sock_sink *s = &o->sock[i];

		s->avoid_cpu = o->cpu;
		if (pthread_create(&s->thread, NULL, sock_reader, s))
			return -errno;
		s->started = true;
		while (!atomic_load(&s->ready))
			usleep(1000);
		if (atomic_load(&s->ready) < 0) {
			fprintf(stderr, "pps_gen: --sock %s: %s\n", s->label,
				strerror(-atomic_load(&s->ready)));
			return atomic_load(&s->ready);
		}
	}
	return 0;
}

static void sock_sinks_stop(struct opts *o)
{
	for (int i = 0; i < o->nsock; i++) {
		struct sock_sink *s = &o->sock[i];

		if (!s->started)
			continue;
		atomic_store(&s->stop, true);
		pthread_join(s->thread, NULL);
		if (s->fd >= 0)
			close(s->fd);
	}
}

/*
 * /proc/stat for one CPU, in seconds: busy (everything but idle and
 * iowait) and softirq. The softirq column is what the kernel's CPU
 * accounting attributes to softirqs: with CONFIG_IRQ_TIME_ACCOUNTING it is
 * measured, and then not included in any task's CPU time; without it, it
 * is sampled at the tick, and the time stays in the task it interrupted.
 */
static int cpu_stat(int cpu, double *busy, double *softirq)
{
	char want[32], line[512];
	unsigned long long v[10] = { 0 };
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/stat", "r");
	int n = -1;

	if (!f)
		return -errno;
	snprintf(want, sizeof(want), "cpu%d ", cpu);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, want, strlen(want)))
			continue;
		n = sscanf(line + strlen(want), "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
			   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
		break;
	}
	fclose(f);
	if (n < 7)
		return -ENOENT;
	*busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / hz;
	*softirq = (double)v[6] / hz;
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * CPU time spent on the frames: this thread's (the generator, and every
 * softirq that ran when it re-enabled bottom halves: the node's and the
 * backends' veth NAPI, XDP, TC, forwarding, conntrack) plus what ksoftirqd on
 * our CPU picked up when softirqs were deferred to it. Rates per CPU-second
 * do not depend on how much of the core other work on the machine took.
 */
static int ksoftirqd_pid(int cpu)
{
	char want[32], path[300], comm[64];
	struct dirent *de;
	int pid = -1;
	DIR *d = opendir("/proc");
	FILE *f;

	if (!d)
		return -1;
	snprintf(want, sizeof(want), "ksoftirqd/%d\n", cpu);
	while (pid < 0 && (de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strcmp(comm, want))
			pid = atoi(de->d_name);
		fclose(f);
	}
	closedir(d);
	return pid;
}

static double cpu_seconds(int softirqd)
{
	unsigned long long ns = 0;
	struct timespec ts;
	char path[64];
	FILE *f;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	if (softirqd > 0) {
		snprintf(path, sizeof(path), "/proc/%d/schedstat", softirqd);
		f = fopen(path, "r");
		if (f) {
			if (fscanf(f, "%llu", &ns) != 1)
				ns = 0;
			fclose(f);
		}
	}
	return ts.tv_sec + ts.tv_nsec / 1e9 + ns / 1e9;
}

static int read_counts(int map_fd, int n, int ncpu, __u64 *out)
{
	__u64 *vals = calloc(ncpu, sizeof(*vals));
	int i, c;

	if (!vals)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		__u32 k = i;

		out[i] = 0;
		if (bpf_map_lookup_elem(map_fd, &k, vals)) {
			free(vals);
			return -errno;
		}
		for (c = 0; c < ncpu; c++)
			out[i] += vals[c];
	}
	free(vals);
	return 0;
}

/* "live-frames", or "packet-socket" once the kernel refused live frames. */
static const char *gen_mode = "live-frames";

/* The generator program's stamp (load_gen) for the packet-socket fallback; arg: flows. */
static void stamp(unsigned char *f, __u64 rnd, void *arg)
{
	*(__u16 *)(f + OFF_SPORT) = htons(1024 + (rnd & (*(int *)arg - 1)));
}

/* Sends frames for `seconds`; returns the number sent (or -errno). */
static long long generate(int prog_fd, int ifindex, int flows, unsigned char *frame, double seconds)
{
	struct xdp_md ctx = { .data_end = FRAME_LEN, .ingress_ifindex = ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = frame, .data_size_in = FRAME_LEN,
		    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = 1 << 16,
		    .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = 64);
	double end = now_s() + seconds;
	long long sent = 0;

	if (strcmp(gen_mode, "live-frames"))
		return live_frame_sock_send(ifindex, frame, FRAME_LEN, seconds, stamp, &flows);
	while (now_s() < end) {
		if (!bpf_prog_test_run_opts(prog_fd, &t)) {
			sent += t.repeat;
			continue;
		}
		if (errno != EPERM || sent) {
			fprintf(stderr, "pps_gen: BPF_PROG_TEST_RUN (live frames): %s\n",
				strerror(errno));
			return -errno;
		}
		fprintf(stderr,
			"pps_gen: this kernel refuses live-frame test_run (%s): sending "
			"from a packet socket (slower: the generator may bound the rate)\n",
			strerror(errno));
		gen_mode = "packet-socket";
		return live_frame_sock_send(ifindex, frame, FRAME_LEN, end - now_s(), stamp,
					    &flows);
	}
	return sent;
}

static void usage(void)
{
	fprintf(stderr,
		"Usage: pps_gen --iface IF --dst-mac MAC --src IP --dst IP --dport N [--flows N]\n"
		"               [--seconds S] [--warmup S] [--cpu N]\n"
		"               [--count NETNS_PATH:IF]... [--sock NETNS_PATH:PORT]...\n"
		"               [--pass NETNS_PATH:IF]...\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = { { "iface", required_argument, NULL, 'i' },
						  { "dst-mac", required_argument, NULL, 'm' },
						  { "src", required_argument, NULL, 's' },
						  { "dst", required_argument, NULL, 'd' },
						  { "dport", required_argument, NULL, 'p' },
						  { "flows", required_argument, NULL, 'f' },
						  { "seconds", required_argument, NULL, 't' },
						  { "warmup", required_argument, NULL, 'w' },
						  { "cpu", required_argument, NULL, 'c' },
						  { "count", required_argument, NULL, 'C' },
						  { "pass", required_argument, NULL, 'P' },
						  { "sock", required_argument, NULL, 'S' },
						  {} };
	struct opts o = { .flows = 4096, .seconds = 3, .warmup = 0.5, .cpu = -1 };
	unsigned char frame[FRAME_LEN];
	__u64 before[MAX_SINKS], after[MAX_SINKS], total = 0;
	int self_ns = -1, map_fd = -1, gen_fd = -1, pass_fd = -1, ifindex, ncpu, c, i, rc = 1;
	long long sent;
	double t0, t1, c0 = 0, c1 = 0, busy0 = -1, busy1 = 0, soft0 = 0, soft1 = 0;
	unsigned long long sock_before[MAX_SINKS], rcvbuf_before[MAX_SINKS], sock_full = 0;
	int softirqd = -1;
	json_t *out, *per;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			o.iface = optarg;
			break;
		case 'm':
			o.dst_mac = optarg;
			break;
		case 's':
			o.src = optarg;
			break;
		case 'd':
			o.dst = optarg;
			break;
		case 'p':
			o.dport = atoi(optarg);
			break;
		case 'f':
			o.flows = atoi(optarg);
			break;
		case 't':
			o.seconds = atof(optarg);
			break;
		case 'w':
			o.warmup = atof(optarg);
			break;
		case 'c':
			o.cpu = atoi(optarg);
			break;
		case 'C':
			if (o.ncount == MAX_SINKS || parse_sink(optarg, &o.count[o.ncount++]))
				return 2;
			break;
		case 'P':
			if (o.npass == MAX_SINKS || parse_sink(optarg, &o.pass[o.npass++]))
				return 2;
			break;
		case 'S':
			if (o.nsock == MAX_SINKS || parse_sock_sink(optarg, &o.sock[o.nsock++]))
				return 2;
			break;
		default:
			usage();
			return 2;
		}
	}
	if (!o.iface || !o.dst_mac || !o.src || !o.dst || o.dport <= 0 || !(o.ncount + o.nsock) ||
	    o.flows < 1 || (o.flows & (o.flows - 1)) || o.flows > 32768) {
		usage();
		fprintf(stderr,
			"pps_gen: --iface, --dst-mac, --src, --dst, --dport and one --count "
			"or --sock are required; --flows is a power of two up to 32768\n");
		return 2;
	}
	if (build_frame(&o, frame))
		return 2;
	ifindex = if_nametoindex(o.iface);
	if (!ifindex) {
		fprintf(stderr, "pps_gen: --iface %s: no such interface here\n", o.iface);
		return 2;
	}
	ncpu = libbpf_num_possible_cpus();
	if (o.cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(o.cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set)) {
			fprintf(stderr, "pps_gen: --cpu %d: %s\n", o.cpu, strerror(errno));
			return 2;
		}
		softirqd = ksoftirqd_pid(o.cpu);
	}

	self_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	map_fd = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "fx_counts", 4, 8, MAX_SINKS, NULL);
	if (self_ns < 0 || map_fd < 0) {
		fprintf(stderr, "pps_gen: counter map: %s\n", strerror(errno));
		goto out_close;
	}
	for (i = 0; i < o.ncount; i++) {
		o.count[i].prog_fd = load_counter(map_fd, i);
		if (o.count[i].prog_fd < 0 || in_netns(self_ns, o.count[i].netns, o.count[i].ifname,
						       o.count[i].prog_fd, &o.count[i].link_fd))
			goto out_close;
	}
	if (o.npass) {
		pass_fd = load_pass();
		if (pass_fd < 0)
			goto out_close;
	}
	for (i = 0; i < o.npass; i++)
		if (in_netns(self_ns, o.pass[i].netns, o.pass[i].ifname, pass_fd,
			     &o.pass[i].link_fd))
			goto out_close;
	if (sock_sinks_start(&o))
		goto out_close;
	gen_fd = load_gen(ifindex, o.flows, frame);
	if (gen_fd < 0)
		goto out_close;

	if (o.warmup > 0 && generate(gen_fd, ifindex, o.flows, frame, o.warmup) < 0)
		goto out_close;
	usleep(20000);
	sock_sinks_drain(&o);
	if (read_counts(map_fd, o.ncount, ncpu, before))
		goto out_close;
	for (i = 0; i < o.nsock; i++) {
		sock_before[i] = atomic_load(&o.sock[i].received);
		rcvbuf_before[i] = atomic_load(&o.sock[i].rcvbuf_errors);
	}
	if (o.cpu >= 0 && cpu_stat(o.cpu, &busy0, &soft0))
		busy0 = soft0 = -1;
	c0 = cpu_seconds(softirqd);
	t0 = now_s();
	sent = generate(gen_fd, ifindex, o.flows, frame, o.seconds);
	t1 = now_s();
	c1 = cpu_seconds(softirqd);
	if (o.cpu >= 0 && busy0 >= 0 && cpu_stat(o.cpu, &busy1, &soft1))
		busy0 = -1;
	/* Frames still in veth rings and socket queues land within milliseconds; let them. */
	usleep(20000);
	sock_sinks_drain(&o);
	if (sent < 0 || read_counts(map_fd, o.ncount, ncpu, after))
		goto out_close;

	out = json_object();
	per = json_object();
	for (i = 0; i < o.ncount; i++) {
		json_object_set_new(per, o.count[i].ifname, json_integer(after[i] - before[i]));
		total += after[i] - before[i];
	}
	if (o.nsock) {
		json_t *full = json_object();

		for (i = 0; i < o.nsock; i++) {
			unsigned long long r = atomic_load(&o.sock[i].received) - sock_before[i];
			unsigned long long e =
				atomic_load(&o.sock[i].rcvbuf_errors) - rcvbuf_before[i];

			/*
			 * A datagram the socket had no room for went through the
			 * whole stack to the socket: delivered, as far as the node
			 * and the backend's kernel are concerned. The reader (the
			 * application) runs on another core and is not measured.
			 */
			json_object_set_new(per, o.sock[i].label, json_integer(r + e));
			json_object_set_new(full, o.sock[i].label, json_integer(e));
			total += r + e;
			sock_full += e;
		}
		json_object_set_new(out, "sink", json_string("socket"));
		json_object_set_new(out, "socket_full", full);
		json_object_set_new(out, "socket_full_total", json_integer(sock_full));
	} else {
		json_object_set_new(out, "sink", json_string("xdp"));
	}
	if (busy0 >= 0 && busy1 > busy0) {
		/* What /proc/stat saw on the measured CPU (all tasks on it, in ticks). */
		json_object_set_new(out, "stat_busy_s", json_real(busy1 - busy0));
		json_object_set_new(out, "stat_softirq_s", json_real(soft1 - soft0));
	}
	json_object_set_new(out, "seconds", json_real(t1 - t0));
	json_object_set_new(out, "sent", json_integer(sent));
	json_object_set_new(out, "delivered", json_integer(total));
	json_object_set_new(out, "per_sink", per);
	json_object_set_new(out, "sent_mpps", json_real(sent / (t1 - t0) / 1e6));
	json_object_set_new(out, "mpps", json_real(total / (t1 - t0) / 1e6));
	json_object_set_new(out, "flows", json_integer(o.flows));
	json_object_set_new(out, "generator", json_string(gen_mode));
	if (o.cpu >= 0 && total && c1 > c0) {
		/* Rates per CPU-second: independent of how busy the machine was. */
		json_object_set_new(out, "cpu", json_integer(o.cpu));
		json_object_set_new(out, "cpu_seconds", json_real(c1 - c0));
		json_object_set_new(out, "ksoftirqd_seen", json_boolean(softirqd > 0));
		json_object_set_new(out, "mpps_per_cpu", json_real(total / (c1 - c0) / 1e6));
		json_object_set_new(out, "ns_per_frame_cpu", json_real((c1 - c0) * 1e9 / total));
	}
	json_dumpf(out, stdout, JSON_COMPACT);
	putchar('\n');
	json_decref(out);
	rc = 0;
out_close:
	sock_sinks_stop(&o);
	/* Closing the links detaches the programs. */
	for (i = 0; i < o.ncount; i++) {
		if (o.count[i].link_fd >= 0)
			close(o.count[i].link_fd);
		if (o.count[i].prog_fd >= 0)
			close(o.count[i].prog_fd);
	}
	for (i = 0; i < o.npass; i++)
		if (o.pass[i].link_fd >= 0)
			close(o.pass[i].link_fd);
	if (pass_fd >= 0)
		close(pass_fd);
	if (gen_fd >= 0)
		close(gen_fd);
	if (map_fd >= 0)
		close(map_fd);
	if (self_ns >= 0)
		close(self_ns);
	return rc;
}
