// SPDX-License-Identifier: GPL-2.0-only
/*
 * Per-packet cost of ferry's BPF programs, measured in the kernel by
 * bpf_prog_test_run_opts, reported in ns/packet and as a ratio to the floor
 * program (bpf/floor.bpf.c: parse the headers, XDP_TX).
 *
 * test_run with repeat reruns the program on the same buffer, so a program
 * that rewrites the packet sees its own output from the second run on. The
 * bench therefore maps each VIP to a backend with the same address and
 * port: the rewrite, checksum update, fib lookup and MAC rewrite all run and
 * write the same bytes back, and every repeat sees the packet anew. Those
 * cases use a large repeat ("repeat" mode). XDP established flows use a
 * declared tx port (bpf_redirect_map), since the XDP->TC handoff grows the
 * metadata on every repeat.
 *
 * New flows cannot repeat (the second run finds the flow), and neither can
 * the handoff: those run one packet per call ("calls" mode), each call timed
 * by the kernel; the cost of test_run's own timing is measured the same way
 * with an empty program (ferry_nop) and subtracted. New flows use a distinct
 * source address/port per call, so every call creates a flow. An
 * established case is measured in both modes to show how well they agree.
 *
 * Usage: pkt_bench [OUT.json]   (or FERRY_BENCH_OUT; default build/bench/pkt_ns.json)
 *        FERRY_BENCH_CALLS (default 40000), FERRY_BENCH_REPEAT (default 1000000)
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <jansson.h>
#include <linux/pkt_cls.h>

#include "../tests/netns_fixture.h"
#include "../tests/pkt_builder.h"
#include "ferry_maps.h"
#include "ferry_xdp.skel.h"
#include "ferry_tc.skel.h"
#include "floor.skel.h"

#define NS "fb-bench"
#define MAC_C0 "02:fb:00:00:00:c0"
#define MAC_B0 "02:fb:00:00:00:b0"
#define MAC_CLIENT "02:fb:00:00:00:64"
#define MAC_BACKEND "02:fb:00:00:01:0a"

static struct {
	struct netns_fixture ns;
	struct ferry_xdp *xdp;
	struct ferry_tc *tc;
	struct floor *floor;
	int if_c0, if_b0;
	int inner_fd;
	unsigned int calls, repeat;
} env = { .ns = NETNS_FIXTURE(NS), .inner_fd = -1 };

static void teardown(void)
{
	netns_fixture__destroy(&env.ns);
}

static void on_signal(int sig)
{
	teardown();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int setup_netns(void)
{
	static const char *const cmds[] = {
		"ip -n " NS " link add fb-c0 address " MAC_C0 " type veth peer name fb-c1",
		"ip -n " NS " link add fb-b0 address " MAC_B0 " type veth peer name fb-b1",
		"ip -n " NS " link set fb-c0 up",
		"ip -n " NS " link set fb-c1 up",
		"ip -n " NS " link set fb-b0 up",
		"ip -n " NS " link set fb-b1 up",
		"ip -n " NS " addr add 198.18.0.1/16 dev fb-c0",
		"ip -n " NS " addr add 2001:db8::1/64 dev fb-c0 nodad",
		"ip -n " NS " addr add 198.19.1.1/24 dev fb-b0",
		"ip -n " NS " addr add 2001:db8:1::1/64 dev fb-b0 nodad",
		"ip -n " NS " neigh add 198.19.1.10 lladdr " MAC_BACKEND " dev fb-b0 nud permanent",
		"ip -n " NS " -6 neigh add 2001:db8:1::10 lladdr " MAC_BACKEND
		" dev fb-b0 nud permanent",
		"ip -n " NS " neigh add 198.18.0.100 lladdr " MAC_CLIENT " dev fb-c0 nud permanent",
		"ip -n " NS " -6 neigh add 2001:db8::100 lladdr " MAC_CLIENT
		" dev fb-c0 nud permanent",
		"ip netns exec " NS " sysctl -qw net.ipv4.ip_forward=1",
		"ip netns exec " NS " sysctl -qw net.ipv6.conf.all.forwarding=1",
	};
	int err;

	err = netns_fixture__create(&env.ns, cmds, sizeof(cmds) / sizeof(cmds[0]));
	err = err ?: netns_fixture__enter(&env.ns);
	if (err)
		return err;
	env.if_c0 = if_nametoindex("fb-c0");
	env.if_b0 = if_nametoindex("fb-b0");
	return env.if_c0 && env.if_b0 ? 0 : -ENODEV;
}

static int load(void)
{
	struct bpf_map *m, *twin;
	int err;

	env.xdp = ferry_xdp__open();
	env.tc = ferry_tc__open();
	env.floor = floor__open_and_load();
	if (!env.xdp || !env.tc || !env.floor)
		return -errno;
	bpf_object__for_each_map(m, env.xdp->obj)
		bpf_map__set_pin_path(m, NULL);
	bpf_object__for_each_map(m, env.tc->obj)
		bpf_map__set_pin_path(m, NULL);
	err = ferry_xdp__load(env.xdp);
	if (err)
		return err;
	bpf_object__for_each_map(m, env.tc->obj) {
		if (bpf_map__is_internal(m))
			continue;
		twin = bpf_object__find_map_by_name(env.xdp->obj, bpf_map__name(m));
		if (!twin || (err = bpf_map__reuse_fd(m, bpf_map__fd(twin))))
			return twin ? err : -ENOENT;
	}
	return ferry_tc__load(env.tc);
}

static int mfd(struct bpf_map *m)
{
	return bpf_map__fd(m);
}

/*
 * Services 1 and 2: VIP 198.19.1.10:8080 and [2001:db8:1::10]:8080, each
 * mapped to a backend with the same address and port (see the top comment).
 */
static int fill(void)
{
	struct ferry_config cfg = { .abi_version = FERRY_ABI_VERSION,
				    .hash_seed = 1,
				    .udp_timeout_s = 30 };
	LIBBPF_OPTS(bpf_map_create_opts, copts, .map_flags = FERRY_TABLE_MAP_FLAGS);
	uint32_t zero = 0, size = FERRY_TABLE_SIZE_DEFAULT;
	int err;

	err = bpf_map_update_elem(mfd(env.xdp->maps.ferry_config), &zero, &cfg, 0);
	env.inner_fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "fb_table", 4, 4, size, &copts);
	if (err || env.inner_fd < 0)
		return err ? err : env.inner_fd;
	for (int fam = 0; fam < 2; fam++) {
		uint32_t svc_id = 1 + fam, be_id = 1 + fam;
		struct ferry_service svc = { .id = svc_id, .table_size = size };
		struct ferry_vip vip = { .port = htons(8080),
					 .proto = IPPROTO_TCP,
					 .family = fam ? FERRY_AF_INET6 : FERRY_AF_INET };
		struct ferry_backend be = { .port = htons(8080),
					    .family = vip.family,
					    .state = FERRY_BE_ACTIVE,
					    .predictor_id = 1 + fam,
					    .svc_id = svc_id };
		int tfd =
			fam ? bpf_map_create(BPF_MAP_TYPE_ARRAY, "fb_table6", 4, 4, size, &copts) :
			      env.inner_fd;

		if (tfd < 0)
			return tfd;
		pb_addr(vip.addr, fam ? "2001:db8:1::10" : "198.19.1.10");
		pb_addr(be.addr, fam ? "2001:db8:1::10" : "198.19.1.10");
		for (uint32_t s = 0; s < size; s++)
			bpf_map_update_elem(tfd, &s, &be_id, 0);
		err = bpf_map_update_elem(mfd(env.xdp->maps.ferry_tables), &svc_id, &tfd, 0);
		err = err ?: bpf_map_update_elem(mfd(env.xdp->maps.ferry_backends), &be_id, &be, 0);
		err = err ?: bpf_map_update_elem(mfd(env.xdp->maps.ferry_services), &vip, &svc, 0);
		/* The address marker (port 0, proto 0) every VIP address has. */
		vip.port = 0;
		vip.proto = 0;
		svc.flags = FERRY_SVC_F_ADDR_MARKER;
		err = err ?: bpf_map_update_elem(mfd(env.xdp->maps.ferry_services), &vip, &svc, 0);
		if (fam)
			close(tfd); /* the outer map holds it */
		if (err)
			return err;
	}
	return 0;
}

static struct pb_spec spec(int fam, uint8_t flags, bool reply)
{
	struct pb_spec s = { .family = fam,
			     .proto = IPPROTO_TCP,
			     .sport = 40000,
			     .dport = 8080,
			     .tcp_flags = flags,
			     .seq = 1,
			     .ack = 1 };

	pb_mac(s.dmac, MAC_C0);
	pb_mac(s.smac, MAC_CLIENT);
	pb_addr(s.saddr, fam == 4 ? "198.18.0.100" : "2001:db8::100");
	pb_addr(s.daddr, fam == 4 ? "198.19.1.10" : "2001:db8:1::10");
	if (reply) {
		memcpy(s.daddr, s.saddr, 16);
		pb_addr(s.saddr, fam == 4 ? "198.19.1.10" : "2001:db8:1::10");
		s.sport = 8080;
		s.dport = 40000;
		pb_mac(s.dmac, MAC_B0);
		pb_mac(s.smac, MAC_BACKEND);
	}
	return s;
}

/* One test_run; returns the kernel-measured ns per repeat, or -1. */
static long run_once(int fd, bool xdp, int ifindex, const uint8_t *pkt, size_t len,
		     unsigned int repeat, int *verdict)
{
	struct xdp_md xctx = { .data_end = len, .ingress_ifindex = ifindex };
	struct __sk_buff sctx = { .ifindex = ifindex };
	uint8_t out[512];
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = len, .data_out = out,
		    .data_size_out = sizeof(out), .repeat = repeat);

	if (xdp) {
		opts.ctx_in = &xctx;
		opts.ctx_size_in = sizeof(xctx);
	} else {
		opts.ctx_in = &sctx;
		opts.ctx_size_in = sizeof(sctx);
	}
	if (bpf_prog_test_run_opts(fd, &opts))
		return -1;
	if (verdict)
		*verdict = opts.retval;
	return opts.duration;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

/* Mean of the middle 80% of one-packet calls: robust to interrupts and preemption. */
static double trimmed_mean(long *v, unsigned int n)
{
	unsigned int lo = n / 10, hi = n - n / 10;
	double sum = 0;

	qsort(v, n, sizeof(*v), cmp_long);
	for (unsigned int i = lo; i < hi; i++)
		sum += v[i];
	return sum / (hi - lo);
}

enum mode { M_REPEAT, M_CALLS };

struct bcase {
	const char *name;
	enum mode mode;
	int prog_fd;
	bool xdp;
	int ifindex;
	int family;
	uint8_t flags;
	bool reply; /* a backend->client packet */
	bool new_flows; /* distinct source per call */
	bool handoff; /* XDP without a declared tx port: metadata handoff */
	bool payload; /* 100 bytes of payload (a request, or a response) */
	int sample; /* 0: latency sampling off for the flow; 1: on (every flow) */
	double ns;
	int verdict;
};

static int set_tx_port(bool on)
{
	int fd = mfd(env.xdp->maps.ferry_tx_ports);
	uint32_t ifb = env.if_b0;

	return on ? bpf_map_update_elem(fd, &ifb, &ifb, 0) : bpf_map_delete_elem(fd, &ifb);
}

/*
 * Latency sampling for both services, and no flow left: the next warm-up
 * SYN creates the flow with the new setting (sampling is decided per flow).
 */
static int set_sampling(uint32_t every)
{
	int flows[4] = { mfd(env.xdp->maps.ferry_flows), mfd(env.xdp->maps.ferry_rflows),
			 mfd(env.xdp->maps.ferry_eflows), mfd(env.xdp->maps.ferry_erflows) };
	struct ferry_flow_key key;

	for (int fam = 0; fam < 2; fam++) {
		struct ferry_vip vip = { .port = htons(8080),
					 .proto = IPPROTO_TCP,
					 .family = fam ? FERRY_AF_INET6 : FERRY_AF_INET };
		struct ferry_service svc;
		int fd = mfd(env.xdp->maps.ferry_services);

		pb_addr(vip.addr, fam ? "2001:db8:1::10" : "198.19.1.10");
		if (bpf_map_lookup_elem(fd, &vip, &svc))
			return -errno;
		svc.sample_every = every;
		if (bpf_map_update_elem(fd, &vip, &svc, 0))
			return -errno;
	}
	for (int i = 0; i < 4; i++)
		while (!bpf_map_get_next_key(flows[i], NULL, &key))
			bpf_map_delete_elem(flows[i], &key);
	return 0;
}

static int measure(struct bcase *c, double nop_ns)
{
	static const char body[100] = "HTTP/1.1 200 OK";
	struct pb_spec s = spec(c->family, c->flags, c->reply);
	long *v = NULL;
	uint8_t pkt[256];
	size_t len;
	int err = 0;

	if (c->payload) {
		s.payload = body;
		s.payload_len = sizeof(body);
	}
	if (c->sample >= 0 && (err = set_sampling(c->sample)))
		return err;
	len = pb_build(&s, pkt, sizeof(pkt));
	/*
	 * Warm up: creates the flow that established and reply cases hit, and
	 * confirms it as a client does (ABI 3: a SYN alone makes an embryonic
	 * flow): the backend's SYN-ACK (seq 0), then the client's ACK (ack 1).
	 */
	if (!c->new_flows) {
		struct pb_spec syn = spec(c->family, PB_TCP_SYN, false);
		struct pb_spec synack = spec(c->family, PB_TCP_SYN | PB_TCP_ACK, true);
		struct pb_spec ack = spec(c->family, PB_TCP_ACK, false);
		int xfd = bpf_program__fd(env.xdp->progs.ferry_xdp_fwd);
		uint8_t sb[256];
		size_t sl;

		synack.seq = 0;
		sl = pb_build(&syn, sb, sizeof(sb));
		run_once(xfd, true, env.if_c0, sb, sl, 1, NULL);
		sl = pb_build(&synack, sb, sizeof(sb));
		run_once(bpf_program__fd(env.tc->progs.ferry_tc_reply_in), false, env.if_b0, sb, sl,
			 1, NULL);
		sl = pb_build(&ack, sb, sizeof(sb));
		run_once(xfd, true, env.if_c0, sb, sl, 1, NULL);
	}
	if (c->handoff)
		set_tx_port(false);
	if (c->mode == M_REPEAT) {
		long d =
			run_once(c->prog_fd, c->xdp, c->ifindex, pkt, len, env.repeat, &c->verdict);

		if (d < 0)
			err = -errno;
		c->ns = d;
		goto out;
	}
	v = calloc(env.calls, sizeof(*v));
	if (!v) {
		err = -ENOMEM;
		goto out;
	}
	for (unsigned int i = 0; i < env.calls; i++) {
		if (c->new_flows) {
			s.sport = 1024 + i % 60000;
			if (c->family == 4)
				s.saddr[0] = htonl(0xc6120000 | (100 + i / 60000)); /* 198.18.x.y */
			else
				s.saddr[3] = htonl(0x100 + i / 60000);
			len = pb_build(&s, pkt, sizeof(pkt));
		}
		v[i] = run_once(c->prog_fd, c->xdp, c->ifindex, pkt, len, 1, &c->verdict);
		if (v[i] < 0) {
			err = -errno;
			goto out;
		}
	}
	c->ns = trimmed_mean(v, env.calls) - nop_ns;
out:
	if (c->handoff)
		set_tx_port(true);
	free(v);
	return err;
}

static int prog_info(int fd, struct bpf_prog_info *info)
{
	__u32 len = sizeof(*info);

	memset(info, 0, sizeof(*info));
	return bpf_obj_get_info_by_fd(fd, info, &len);
}

static int mkdir_parents(const char *path)
{
	char buf[4096];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *out_path = argc > 1 ? argv[1] : getenv("FERRY_BENCH_OUT");
	json_t *root = NULL, *jcases, *jprogs;
	struct bcase nop, floorc;
	struct utsname uts;
	double nop_ns, floor_ns;
	int err, rc = 1;

	if (!out_path)
		out_path = "build/bench/pkt_ns.json";
	env.calls = getenv("FERRY_BENCH_CALLS") ? atoi(getenv("FERRY_BENCH_CALLS")) : 40000;
	env.repeat = getenv("FERRY_BENCH_REPEAT") ? atoi(getenv("FERRY_BENCH_REPEAT")) : 1000000;
	if (env.calls < 100)
		env.calls = 100;
	if (geteuid() != 0) {
		fprintf(stderr, "pkt_bench: needs root (CAP_BPF, CAP_NET_ADMIN); skipped\n");
		return 0;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	err = setup_netns();
	err = err ?: load();
	err = err ?: fill();
	if (err) {
		fprintf(stderr, "pkt_bench: setup failed: %s\n", strerror(-err));
		goto out;
	}

	int x = bpf_program__fd(env.xdp->progs.ferry_xdp_fwd);
	int tf = bpf_program__fd(env.tc->progs.ferry_tc_fwd);
	int ri = bpf_program__fd(env.tc->progs.ferry_tc_reply_in);
	int re = bpf_program__fd(env.tc->progs.ferry_tc_reply_eg);
	int ci = env.if_c0, bi = env.if_b0;

	nop = (struct bcase){ "nop",	 M_CALLS, bpf_program__fd(env.floor->progs.ferry_nop),
			      true,	 ci,	  4,
			      PB_TCP_ACK };
	if (measure(&nop, 0))
		goto out_err;
	nop_ns = nop.ns;
	floorc = (struct bcase){ "floor",   M_REPEAT, bpf_program__fd(env.floor->progs.ferry_floor),
				 true,	    ci,	      4,
				 PB_TCP_ACK };
	if (measure(&floorc, nop_ns))
		goto out_err;
	floor_ns = floorc.ns;
	if (set_tx_port(true))
		goto out_err;

	struct bcase cases[] = {
		{ "floor_calls", M_CALLS, bpf_program__fd(env.floor->progs.ferry_floor), true, ci,
		  4, PB_TCP_ACK },
		{ "xdp_established_v4", M_REPEAT, x, true, ci, 4, PB_TCP_ACK },
		{ "xdp_established_v6", M_REPEAT, x, true, ci, 6, PB_TCP_ACK },
		{ "xdp_established_v4_calls", M_CALLS, x, true, ci, 4, PB_TCP_ACK },
		{ "xdp_handoff_v4_calls", M_CALLS, x, true, ci, 4, PB_TCP_ACK, .handoff = true },
		{ "xdp_new_flow_v4_calls", M_CALLS, x, true, ci, 4, PB_TCP_SYN, .new_flows = true },
		{ "xdp_new_flow_v6_calls", M_CALLS, x, true, ci, 6, PB_TCP_SYN, .new_flows = true },
		/* A backend->client packet at the forward hook: flow, service and marker misses. */
		{ "xdp_non_vip_v4", M_REPEAT, x, true, ci, 4, PB_TCP_ACK, true },
		{ "xdp_non_vip_v6", M_REPEAT, x, true, ci, 6, PB_TCP_ACK, true },
		{ "tc_established_v4", M_REPEAT, tf, false, ci, 4, PB_TCP_ACK },
		{ "tc_established_v6", M_REPEAT, tf, false, ci, 6, PB_TCP_ACK },
		{ "tc_new_flow_v4_calls", M_CALLS, tf, false, ci, 4, PB_TCP_SYN,
		  .new_flows = true },
		{ "tc_reply_in_v4", M_REPEAT, ri, false, bi, 4, PB_TCP_ACK, true },
		{ "tc_reply_in_v6", M_REPEAT, ri, false, bi, 6, PB_TCP_ACK, true },
		{ "tc_reply_eg_v4", M_REPEAT, re, false, bi, 4, PB_TCP_ACK, true },
		{ "tc_reply_eg_v6", M_REPEAT, re, false, bi, 6, PB_TCP_ACK, true },
		/*
		 * Latency sampling off and on (ferry's default: every flow), packets
		 * with payload: the steady per-packet cost of sampling on a flow.
		 */
		{ "xdp_payload_v4_unsampled", M_REPEAT, x, true, ci, 4, PB_TCP_ACK, .payload = true,
		  .sample = 0 },
		{ "xdp_payload_v4_sampled", M_REPEAT, x, true, ci, 4, PB_TCP_ACK, .payload = true,
		  .sample = 1 },
		{ "tc_reply_payload_v4_unsampled", M_REPEAT, ri, false, bi, 4, PB_TCP_ACK, true,
		  .payload = true, .sample = 0 },
		{ "tc_reply_payload_v4_sampled", M_REPEAT, ri, false, bi, 4, PB_TCP_ACK, true,
		  .payload = true, .sample = 1 },
	};
	/* Cases without an explicit setting leave sampling as it is (off). */
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!cases[i].payload)
			cases[i].sample = -1;

	root = json_object();
	jcases = json_object();
	jprogs = json_object();
	uname(&uts);
	json_object_set_new(root, "kernel", json_string(uts.release));
	json_object_set_new(root, "calls", json_integer(env.calls));
	json_object_set_new(root, "repeat", json_integer(env.repeat));
	json_object_set_new(root, "nop_overhead_ns", json_real(nop_ns));
	json_object_set_new(root, "floor_ns", json_real(floor_ns));

	printf("floor %.1f ns/pkt (repeat %u); one-call overhead (nop) %.1f ns, subtracted in "
	       "'calls' mode (%u calls, trimmed mean)\n\n",
	       floor_ns, env.repeat, nop_ns, env.calls);
	printf("%-26s %-6s %9s %8s %s\n", "case", "mode", "ns/pkt", "x floor", "verdict");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bcase *c = &cases[i];
		json_t *j = json_object();

		if (measure(c, nop_ns))
			goto out_err;
		printf("%-26s %-6s %9.1f %8.2f %d\n", c->name,
		       c->mode == M_REPEAT ? "repeat" : "calls", c->ns, c->ns / floor_ns,
		       c->verdict);
		json_object_set_new(j, "mode",
				    json_string(c->mode == M_REPEAT ? "repeat" : "calls"));
		json_object_set_new(j, "ns_per_packet", json_real(c->ns));
		json_object_set_new(j, "ratio_to_floor", json_real(c->ns / floor_ns));
		json_object_set_new(j, "verdict", json_integer(c->verdict));
		json_object_set_new(jcases, c->name, j);
	}
	json_object_set_new(root, "cases", jcases);

	struct {
		const char *name;
		int fd;
	} progs[] = {
		{ "ferry_floor", bpf_program__fd(env.floor->progs.ferry_floor) },
		{ "ferry_xdp_fwd", x },
		{ "ferry_tc_fwd", tf },
		{ "ferry_tc_reply_in", ri },
		{ "ferry_tc_reply_eg", re },
	};
	printf("\n%-20s %14s %12s %12s\n", "program", "verified_insns", "xlated_bytes",
	       "jited_bytes");
	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		struct bpf_prog_info info;
		json_t *j = json_object();

		if (prog_info(progs[i].fd, &info))
			goto out_err;
		printf("%-20s %14u %12u %12u\n", progs[i].name, info.verified_insns,
		       info.xlated_prog_len, info.jited_prog_len);
		json_object_set_new(j, "verified_insns", json_integer(info.verified_insns));
		json_object_set_new(j, "xlated_bytes", json_integer(info.xlated_prog_len));
		json_object_set_new(j, "jited_bytes", json_integer(info.jited_prog_len));
		json_object_set_new(jprogs, progs[i].name, j);
	}
	json_object_set_new(root, "programs", jprogs);
	if (mkdir_parents(out_path) || json_dump_file(root, out_path, JSON_INDENT(2))) {
		fprintf(stderr, "pkt_bench: cannot write %s: %s\n", out_path, strerror(errno));
		goto out;
	}
	printf("\nwrote %s\n", out_path);
	rc = 0;
	goto out;
out_err:
	fprintf(stderr, "pkt_bench: %s\n", strerror(errno));
out:
	json_decref(root);
	if (env.inner_fd >= 0)
		close(env.inner_fd);
	floor__destroy(env.floor);
	ferry_tc__destroy(env.tc);
	ferry_xdp__destroy(env.xdp);
	teardown();
	return rc;
}
