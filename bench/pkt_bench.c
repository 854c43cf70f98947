// SPDX-License-Identifier: GPL-2.0-only
/*
 * Per-packet cost of ferry's BPF programs, measured in the kernel by
 * bpf_prog_test_run_opts. Every case is reported three ways, each against a
 * baseline measured in the same mode (repeat or calls) as the case:
 *   ns_per_packet  what test_run measured (per repeat, or per call: the
 *                  trimmed mean of the calls);
 *   above_nop_ns   minus the empty program (ferry_nop): the additive cost of
 *                  running this program instead of nothing;
 *   ratio_to_floor divided by the floor program (bpf/floor.bpf.c: parse the
 *                  headers, XDP_TX).
 * The empty program and the floor are measured several times in each mode
 * (FERRY_BENCH_FLOOR_RUNS, default 5), spread across the run; the median is
 * the baseline and every run is in the JSON.
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
 * by the kernel. New flows use a distinct source address/port per call, and
 * per process (env.next_tuple), so every call creates a flow: a tuple used
 * again by the next run of a case, or by another case, found its earlier
 * flow (ferry's retransmitted-SYN path, a reply half replaced, Katran an LRU
 * entry updated), which is not what a new connection costs. An established case is measured in both modes
 * to show how well they agree.
 *
 * Latency sampling is at the shipped default (every flow, sample_every 1)
 * in every case unless the case's name says "unsampled".
 *
 * The flow entries cache the next hop for FERRY_NH_TTL_NS, so the
 * established figures are the cache-hit path. The "_nh_expired" cases
 * expire the cache before every call (the flow entry's nh_expires_ns set to
 * 0 from user space, outside the timed part), so bpf_fib_lookup runs on
 * every packet: what a packet pays when its flow's cache has expired.
 *
 * Katran (optional): with KATRAN_OBJ=path to a balancer.bpf.c object built
 * by bench/run from KATRAN_SRC, its XDP program runs in this same harness on
 * the same packets (calls mode: its IPIP encapsulation grows the packet, so
 * it cannot repeat): an established (LRU hit) and a new-flow case.
 *
 * Usage: pkt_bench [OUT.json]   (or FERRY_BENCH_OUT; default build/bench/pkt_ns.json)
 *        FERRY_BENCH_CALLS (default 40000), FERRY_BENCH_REPEAT (default 1000000),
 *        FERRY_BENCH_FLOOR_RUNS (default 5), KATRAN_OBJ (default: no Katran cases),
 *        FERRY_BENCH_ONLY=TEXT (only the cases whose name contains TEXT)
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
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
#include "../tests/pkt_fixture.h"
#include "ferry_maps.h"
#include "kernel/table.h"
#include "ferry_xdp.skel.h"
#include "ferry_tc.skel.h"
#include "floor.skel.h"

#define NS "fb-bench"
#define MAC_C0 "02:fb:00:00:00:c0"
#define MAC_B0 "02:fb:00:00:00:b0"
#define MAC_CLIENT "02:fb:00:00:00:64"
#define MAC_BACKEND "02:fb:00:00:01:0a"
/* ferry's default latency sampling (user/source/config_sdep.c): every flow. */
#define FB_SAMPLE_DEFAULT 1

static struct {
	struct netns_fixture ns;
	struct ferry_xdp *xdp;
	struct ferry_tc *tc;
	struct floor *floor;
	int if_c0, if_b0;
	int inner_fd;
	unsigned int calls, repeat;
	unsigned long next_tuple; /* the new-flow cases' next source (see above) */
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

/* ferry's objects as the fixtures load them (pkt_fixture__load), and the floor. */
static int load(void)
{
	struct bpf_map *m;
	int err;

	env.xdp = ferry_xdp__open();
	env.tc = ferry_tc__open();
	env.floor = floor__open();
	if (!env.xdp || !env.tc || !env.floor)
		return -errno;
	/* The floor shares the headers that declare ferry's pinned maps: none of its own in bpffs. */
	bpf_object__for_each_map(m, env.floor->obj)
		bpf_map__set_pin_path(m, NULL);
	err = floor__load(env.floor);
	return err ?: pkt_fixture__load(env.xdp, env.tc);
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
	uint32_t zero = 0, size = FERRY_TABLE_SIZE_DEFAULT;
	int err;

	err = bpf_map_update_elem(mfd(env.xdp->maps.ferry_config), &zero, &cfg, 0);
	if (err)
		return err;
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
					    .svc_id = svc_id,
					    /* No other service has it: ferryd's sync says so. */
					    .flags = FERRY_BE_F_SOLE };
		struct ferry_table_cell cells[FERRY_TABLE_CELLS(FERRY_TABLE_SIZE_DEFAULT, 1)];
		struct ferry_select sel = { .npredictors = 1 };
		struct ferry_table_member m = { .backend_id = be_id };
		uint32_t pred_id = 1 + fam;
		int tfd;

		pb_addr(vip.addr, fam ? "2001:db8:1::10" : "198.19.1.10");
		pb_addr(be.addr, fam ? "2001:db8:1::10" : "198.19.1.10");
		/* One predictor of one backend: both selection stages, as ferryd builds them. */
		m.key = ferry_table__key(be.family, be.addr, be.port);
		err = ferry_table__build(&m, 1, size, cells);
		tfd = err ?: ferry_table__create(cells, FERRY_TABLE_CELLS(size, 1), "fb_table");
		if (tfd < 0)
			return tfd;
		if (!fam)
			env.inner_fd = tfd;
		sel.preds[0] = (struct ferry_select_pred){ .predictor_id = pred_id,
							   .weight = FERRY_WEIGHT_ONE,
							   .key = ferry_table__pred_key("bench") };
		err = bpf_map_update_elem(mfd(env.xdp->maps.ferry_tables), &pred_id, &tfd, 0);
		err = err   ?:
			      bpf_map_update_elem(mfd(env.xdp->maps.ferry_selectors), &svc_id, &sel,
						  BPF_F_LOCK);
		err = err   ?:
			      pkt_fixture__bit(mfd(env.xdp->maps.ferry_be_bits),
					       ferry_be_bit(be.addr, be.port));
		err = err ?: bpf_map_update_elem(mfd(env.xdp->maps.ferry_backends), &be_id, &be, 0);
		err = err ?: pkt_fixture__vip_bit(mfd(env.xdp->maps.ferry_vip_bits), &vip);
		err = err ?: bpf_map_update_elem(mfd(env.xdp->maps.ferry_services), &vip, &svc, 0);
		/* The address marker (port 0, proto 0) every VIP address has. */
		vip.port = 0;
		vip.proto = 0;
		svc.flags = FERRY_SVC_F_ADDR_MARKER;
		err = err ?: pkt_fixture__vip_bit(mfd(env.xdp->maps.ferry_vip_bits), &vip);
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
	const char *client = fam == 4 ? "198.18.0.100" : "2001:db8::100";
	const char *vip = fam == 4 ? "198.19.1.10" : "2001:db8:1::10";

	pb_ends(&s, MAC_CLIENT, MAC_C0, client, vip);
	if (reply) {
		pb_ends(&s, MAC_BACKEND, MAC_B0, vip, client);
		s.sport = 8080;
		s.dport = 40000;
	}
	return s;
}

/* One test_run; returns the kernel-measured ns per repeat, or -1. */
static long run_once(int fd, bool xdp, int ifindex, const uint8_t *pkt, size_t len,
		     unsigned int repeat, int *verdict)
{
	struct xdp_md xctx = { .data_end = len, .ingress_ifindex = ifindex };
	struct __sk_buff sctx = { .ifindex = ifindex };
	uint8_t out[1600];
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

#define MAX_FLOOR_RUNS 16

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
	int sample; /* -1: the default (FB_SAMPLE_DEFAULT); 0: off; N: one flow in N */
	bool nh_expire; /* expire the cached next hop before every call */
	int h2; /* H2_*: a 1400-byte HTTP/2 response segment, request state set before every call */
	bool past_guard; /* new flows with the rate guard at 1 per second: all but the first past it */
	bool katran; /* Katran's program: no ferry warm-up, its own */
	bool connection; /* per call: a new flow's SYN, then its first ACK; the sum */
	double synack_ns; /* connection, ferry: the SYN-ACK between them (reply program, not summed) */
	bool repeat_fallback; /* asked for repeat mode, measured in calls mode (see measure()) */
	const char *does; /* what the program does with the packet, for the report */
	double ns; /* raw: per repeat, or trimmed mean per call */
	int verdict;
};

static int set_tx_port(bool on)
{
	int fd = mfd(env.xdp->maps.ferry_tx_ports);
	uint32_t ifb = env.if_b0;

	return on ? bpf_map_update_elem(fd, &ifb, &ifb, 0) : bpf_map_delete_elem(fd, &ifb);
}

static void clear_map(int fd)
{
	uint8_t key[256];

	while (!bpf_map_get_next_key(fd, NULL, key))
		if (bpf_map_delete_elem(fd, key))
			break;
}

/*
 * Latency sampling for both services, and no flow left: the next warm-up
 * SYN creates the flow with the new setting (sampling is decided per flow).
 */
static int set_sampling(uint32_t every)
{
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
	clear_map(mfd(env.xdp->maps.ferry_flows));
	clear_map(mfd(env.xdp->maps.ferry_rflows));
	clear_map(mfd(env.xdp->maps.ferry_eflows));
	clear_map(mfd(env.xdp->maps.ferry_erflows));
	return 0;
}

/*
 * Expires the cached next hop of every entry of a flow map (the bench
 * leaves one or two there for these cases), so the next packet of the flow
 * calls bpf_fib_lookup: what the flow's first packet after FERRY_NH_TTL_NS
 * pays. off: offset of nh_expires_ns in the map's value.
 */
static int expire_nh(struct bpf_map *m, size_t off)
{
	uint8_t key[256], prev[256], val[512];
	uint64_t zero = 0;
	int fd = bpf_map__fd(m);
	void *k = NULL;

	if (bpf_map__key_size(m) > sizeof(key) || bpf_map__value_size(m) > sizeof(val))
		return -E2BIG;
	while (!bpf_map_get_next_key(fd, k, key)) {
		if (!bpf_map_lookup_elem(fd, key, val)) {
			memcpy(val + off, &zero, sizeof(zero));
			if (bpf_map_update_elem(fd, key, val, BPF_EXIST))
				return -errno;
		}
		memcpy(prev, key, sizeof(key));
		k = prev;
	}
	return 0;
}

/*
 * And the per-backend next hop new flows start from (nexthop.bpf.h), which
 * would otherwise refill an expired flow's cache without bpf_fib_lookup:
 * the bench's backends are ids 1 and 2, slots 1 and 2, on every CPU.
 */
static int expire_be_nh(void)
{
	struct bpf_map *m = env.xdp->maps.ferry_be_nh;
	size_t size = libbpf_num_possible_cpus() * ((bpf_map__value_size(m) + 7) & ~7UL);
	void *zero = calloc(1, size);
	int err = zero ? 0 : -ENOMEM;

	for (uint32_t slot = 1; slot <= 2 && !err; slot++)
		if (bpf_map_update_elem(bpf_map__fd(m), &slot, zero, 0))
			err = -errno;
	free(zero);
	return err;
}

/*
 * The h2 cases: a backend's 1400-byte segment (seq 1) inside a large message
 * on stream 1 of an h2c connection, the request state written before every
 * call (docs/datapath.md, "Requests"). H2_INSIDE: in order, wholly inside a
 * DATA frame (what most segments of a large message are). H2_HOLE_PAST: past
 * a hole, after 1 MB frames: a guessed header place past the segment, so it
 * is skipped. H2_HOLE_SEARCH: past a hole, after 100-byte frames: every
 * guessed place inside the segment and wrong, so the whole segment is
 * searched, in vain (payload bytes never equal the stream id's).
 */
enum { H2_NONE, H2_INSIDE, H2_HOLE_PAST, H2_HOLE_SEARCH };

static int h2_state(int family, int h2)
{
	struct pb_spec fwd = spec(family, PB_TCP_ACK, false);
	struct ferry_flow_key k = { .sport = htons(fwd.sport),
				    .dport = htons(fwd.dport),
				    .proto = IPPROTO_TCP,
				    .family = family };
	uint32_t flen = h2 == H2_HOLE_PAST ? 1048581 : 100;
	struct ferry_l7 l7 = {
		.head = { .protocol = FERRY_L7_H2C, .flags = FERRY_L7_F_CLASSIFIED },
	};
	struct ferry_l7_dir *d = &l7.dir[1];

	memcpy(k.saddr, fwd.saddr, sizeof(k.saddr));
	memcpy(k.daddr, fwd.daddr, sizeof(k.daddr));
	l7.dir[0].synced = 1;
	d->synced = 1;
	d->hdr_seq = h2 == H2_INSIDE ? 1 + 1400 + 100 : 1 - 1000;
	d->hdr[0] = flen >> 16;
	d->hdr[1] = flen >> 8;
	d->hdr[2] = flen;
	d->hdr[8] = 1; /* DATA, no flags, stream 1 */
	if (bpf_map_update_elem(bpf_map__fd(env.xdp->maps.ferry_l7), &k, &l7, 0))
		return -errno;
	return 0;
}

static int measure(struct bcase *c)
{
	static const char body[100] = "HTTP/1.1 200 OK";
	static char big[1400];
	struct pb_spec s = spec(c->family, c->flags, c->reply);
	long *v = NULL, *w = NULL;
	uint8_t pkt[1600];
	size_t len;
	int err = 0;

	if (c->payload) {
		s.payload = body;
		s.payload_len = sizeof(body);
	}
	if (c->h2) {
		memset(big, 'x', sizeof(big));
		s.payload = big;
		s.payload_len = sizeof(big);
	}
	if (!c->katran && (err = set_sampling(c->sample < 0 ? FB_SAMPLE_DEFAULT : c->sample)))
		return err;
	if (c->past_guard && (err = pkt_fixture__new_flow_rate(mfd(env.xdp->maps.ferry_config), 1)))
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

		if (c->katran) {
			/* Katran keeps no handshake state: its first SYN makes the LRU entry. */
			sl = pb_build(&syn, sb, sizeof(sb));
			run_once(c->prog_fd, true, env.if_c0, sb, sl, 1, NULL);
		} else {
			synack.seq = 0;
			sl = pb_build(&syn, sb, sizeof(sb));
			run_once(xfd, true, env.if_c0, sb, sl, 1, NULL);
			sl = pb_build(&synack, sb, sizeof(sb));
			run_once(bpf_program__fd(env.tc->progs.ferry_tc_reply_in), false, env.if_b0,
				 sb, sl, 1, NULL);
			sl = pb_build(&ack, sb, sizeof(sb));
			run_once(xfd, true, env.if_c0, sb, sl, 1, NULL);
			/* And the reverse entry's next hop (replies fill it on their first packet). */
			run_once(c->prog_fd, c->xdp, c->ifindex, pkt, len, 1, NULL);
		}
	}
	if (c->handoff)
		set_tx_port(false);
	if (c->mode == M_REPEAT) {
		int first;
		long d;

		/*
		 * Repeat mode holds only if every repeat does what the first does.
		 * A program that changes what it sees next time (the TTL it
		 * decrements on a redirect) ends up measuring another path (TTL
		 * expired: XDP_PASS to the stack) for most of the repeats: then
		 * the case is measured one packet per call instead, and says so.
		 */
		run_once(c->prog_fd, c->xdp, c->ifindex, pkt, len, 1, &first);
		d = run_once(c->prog_fd, c->xdp, c->ifindex, pkt, len, env.repeat, &c->verdict);
		if (d < 0) {
			err = -errno;
			goto out;
		}
		if (c->verdict == first) {
			c->ns = d;
			goto out;
		}
		c->mode = M_CALLS;
		c->repeat_fallback = true;
	}
	v = calloc(env.calls, sizeof(*v));
	w = calloc(env.calls, sizeof(*w));
	if (!v || !w) {
		err = -ENOMEM;
		goto out;
	}
	for (unsigned int i = 0; i < env.calls; i++) {
		if (c->new_flows) {
			unsigned long n = env.next_tuple++;

			s.sport = 1024 + n % 60000;
			if (c->family == 4) /* 198.18.0.100 onwards, in 198.18.0.0/15 */
				s.saddr[0] = htonl(0xc6120000 | ((100 + n / 60000) & 0x1ffff));
			else
				s.saddr[3] = htonl(0x100 + n / 60000);
			len = pb_build(&s, pkt, sizeof(pkt));
		}
		if (c->nh_expire) {
			err = expire_nh(env.xdp->maps.ferry_flows,
					offsetof(struct ferry_flow, nh_expires_ns));
			err = err   ?:
				      expire_nh(env.xdp->maps.ferry_rflows,
						offsetof(struct ferry_rflow, nh_expires_ns));
			err = err ?: expire_be_nh();
			if (err)
				goto out;
		}
		if (c->h2 && (err = h2_state(c->family, c->h2)))
			goto out;
		v[i] = run_once(c->prog_fd, c->xdp, c->ifindex, pkt, len, 1, &c->verdict);
		if (v[i] < 0) {
			err = -errno;
			goto out;
		}
		if (c->connection) {
			/* The same flow's first ACK: whatever the SYN left to do (promotion). */
			struct pb_spec ack = s;
			uint8_t ab[256];
			size_t al;
			long d;

			/*
			 * ferry: the backend's SYN-ACK first, through the reply program,
			 * which arms the promotion (ack_expect); without it the ACK would
			 * only hit the embryonic flow. Timed apart, not in the sum: it is
			 * the reply path's work, which Katran (DSR) does not have.
			 */
			if (!c->katran) {
				struct pb_spec sa = spec(c->family, PB_TCP_SYN | PB_TCP_ACK, true);

				memcpy(sa.daddr, s.saddr, sizeof(sa.daddr));
				sa.dport = s.sport;
				sa.seq = 0;
				al = pb_build(&sa, ab, sizeof(ab));
				d = run_once(bpf_program__fd(env.tc->progs.ferry_tc_reply_in),
					     false, env.if_b0, ab, al, 1, NULL);
				if (d < 0) {
					err = -errno;
					goto out;
				}
				w[i] = d;
			}
			ack.tcp_flags = PB_TCP_ACK;
			al = pb_build(&ack, ab, sizeof(ab));
			d = run_once(c->prog_fd, c->xdp, c->ifindex, ab, al, 1, &c->verdict);
			if (d < 0) {
				err = -errno;
				goto out;
			}
			v[i] += d;
		}
	}
	c->ns = trimmed_mean(v, env.calls);
	if (c->connection && !c->katran)
		c->synack_ns = trimmed_mean(w, env.calls);
out:
	if (c->handoff)
		set_tx_port(true);
	if (c->past_guard)
		pkt_fixture__new_flow_rate(mfd(env.xdp->maps.ferry_config), 0);
	free(v);
	free(w);
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

/* ------------------------------------------------------------ baselines */

/*
 * The empty program and the floor, in both modes, each measured
 * env.floor_runs times; the runs are spread over the bench (one round
 * before the cases, the others between them) so that a slow phase of the
 * machine does not land on the baselines only.
 */
struct baseline {
	double runs[MAX_FLOOR_RUNS];
	int n;
};

enum { B_NOP_REPEAT, B_NOP_CALLS, B_FLOOR_REPEAT, B_FLOOR_CALLS, B_COUNT };
static const char *const baseline_names[B_COUNT] = { "nop_repeat", "nop_calls", "floor_repeat",
						     "floor_calls" };
static struct baseline baselines[B_COUNT];

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double baseline_median(int b)
{
	double v[MAX_FLOOR_RUNS];
	int n = baselines[b].n;

	if (!n)
		return 0;
	memcpy(v, baselines[b].runs, n * sizeof(double));
	qsort(v, n, sizeof(double), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int baseline_round(void)
{
	int nop = bpf_program__fd(env.floor->progs.ferry_nop);
	int fl = bpf_program__fd(env.floor->progs.ferry_floor);
	struct bcase b[B_COUNT] = {
		{ "nop_repeat", M_REPEAT, nop, true, env.if_c0, 4, PB_TCP_ACK, .katran = true },
		{ "nop_calls", M_CALLS, nop, true, env.if_c0, 4, PB_TCP_ACK, .katran = true },
		{ "floor_repeat", M_REPEAT, fl, true, env.if_c0, 4, PB_TCP_ACK, .katran = true },
		{ "floor_calls", M_CALLS, fl, true, env.if_c0, 4, PB_TCP_ACK, .katran = true },
	};

	/* .katran: no ferry warm-up or sampling change for these programs. */
	for (int i = 0; i < B_COUNT; i++) {
		if (baselines[i].n == MAX_FLOOR_RUNS)
			continue;
		b[i].new_flows = true; /* no warm-up packet either */
		if (measure(&b[i]))
			return -errno;
		baselines[i].runs[baselines[i].n++] = b[i].ns;
	}
	return 0;
}

/* --------------------------------------------------------------- Katran */

/*
 * Katran's balancer (katran/lib/bpf/balancer.bpf.c), built by bench/run
 * from KATRAN_SRC, configured the way its user space would for one VIP:
 * vip_map (198.19.1.10:8080/tcp -> vip_num 0), one real (10.0.0.2, IPv4)
 * at index 1, the VIP's consistent-hash ring all pointing at it, the
 * gateway MAC in ctl_array, and one LRU per CPU in lru_mapping of
 * FERRY_MAX_FLOWS entries (ferry's flow table size). Its struct layouts
 * are Katran's (balancer_structs.h), restated here: the harness must not
 * include another project's headers into ferry's build.
 */
struct katran_vip_definition {
	uint32_t vip[4];
	uint16_t port;
	uint8_t proto;
	uint8_t pad;
};

struct katran_vip_meta {
	uint32_t flags;
	uint32_t vip_num;
};

struct katran_real_definition {
	uint32_t dst[4];
	uint8_t flags;
	uint8_t pad[3];
};

static struct {
	struct bpf_object *obj;
	int prog_fd;
	int lru_fds[256];
	int nlru;
	const char *skipped;
} katran = { .prog_fd = -1 };

static int katran_map_fd(const char *name)
{
	struct bpf_map *m = bpf_object__find_map_by_name(katran.obj, name);

	return m ? bpf_map__fd(m) : -ENOENT;
}

static int katran_setup(const char *path)
{
	struct katran_vip_definition vip = { .port = htons(8080), .proto = IPPROTO_TCP };
	struct katran_vip_meta meta = { 0 };
	struct katran_real_definition real = { 0 };
	uint32_t ring = getenv("KATRAN_RING_SIZE") ? atoi(getenv("KATRAN_RING_SIZE")) : 65537;
	uint32_t one = 1, zero = 0, *keys = NULL, *vals = NULL;
	uint8_t mac[8] = { 0 };
	struct bpf_program *prog;
	struct bpf_map *lru;
	int ncpu = libbpf_num_possible_cpus(), err;

	katran.obj = bpf_object__open_file(path, NULL);
	if (!katran.obj)
		return -errno;
	lru = bpf_object__find_map_by_name(katran.obj, "lru_mapping");
	if (!lru || ncpu <= 0 || ncpu > (int)(sizeof(katran.lru_fds) / sizeof(int)))
		return -ENOENT;
	/* Katran's user space creates the per-CPU LRUs; the template is the first. */
	for (katran.nlru = 0; katran.nlru < ncpu; katran.nlru++) {
		int fd = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "katran_lru", 40, 16,
					FERRY_MAX_FLOWS, NULL);

		if (fd < 0)
			return -errno;
		katran.lru_fds[katran.nlru] = fd;
	}
	err = bpf_map__set_inner_map_fd(lru, katran.lru_fds[0]);
	err = err ?: bpf_object__load(katran.obj);
	if (err)
		return err;
	prog = bpf_object__find_program_by_name(katran.obj, "balancer_ingress");
	if (!prog)
		return -ENOENT;
	katran.prog_fd = bpf_program__fd(prog);
	for (int cpu = 0; cpu < ncpu; cpu++) {
		uint32_t k = cpu;

		if (bpf_map_update_elem(bpf_map__fd(lru), &k, &katran.lru_fds[cpu], 0))
			return -errno;
	}
	pb_addr(vip.vip, "198.19.1.10");
	pb_addr(real.dst, "10.0.0.2");
	pb_mac(mac, MAC_BACKEND);
	if (bpf_map_update_elem(katran_map_fd("vip_map"), &vip, &meta, 0) ||
	    bpf_map_update_elem(katran_map_fd("reals"), &one, &real, 0) ||
	    bpf_map_update_elem(katran_map_fd("ctl_array"), &zero, mac, 0))
		return -errno;
	keys = calloc(ring, sizeof(*keys));
	vals = calloc(ring, sizeof(*vals));
	if (!keys || !vals) {
		err = -ENOMEM;
		goto out_free;
	}
	for (uint32_t i = 0; i < ring; i++) {
		keys[i] = i; /* vip_num 0: slots 0 .. ring-1 */
		vals[i] = 1;
	}
	for (uint32_t i = 0; i < ring && !err; i++)
		if (bpf_map_update_elem(katran_map_fd("ch_rings"), &keys[i], &vals[i], 0))
			err = -errno;
out_free:
	free(keys);
	free(vals);
	return err;
}

static void katran_teardown(void)
{
	bpf_object__close(katran.obj);
	for (int i = 0; i < katran.nlru; i++)
		close(katran.lru_fds[i]);
}

/* ----------------------------------------------------------------- main */

static json_t *baseline_json(int b)
{
	json_t *j = json_object(), *runs = json_array();

	for (int i = 0; i < baselines[b].n; i++)
		json_array_append_new(runs, json_real(baselines[b].runs[i]));
	json_object_set_new(j, "median_ns", json_real(baseline_median(b)));
	json_object_set_new(j, "runs_ns", runs);
	return j;
}

static const char *verdict_name(const struct bcase *c)
{
	static const char *const xdp[] = { "XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX",
					   "XDP_REDIRECT" };
	static const char *const tc[] = { "TC_ACT_OK",	   "TC_ACT_RECLASSIFY", "TC_ACT_SHOT",
					  "TC_ACT_PIPE",   "TC_ACT_STOLEN",	"TC_ACT_QUEUED",
					  "TC_ACT_REPEAT", "TC_ACT_REDIRECT" };

	if (c->xdp && c->verdict >= 0 && c->verdict < 5)
		return xdp[c->verdict];
	if (!c->xdp && c->verdict >= 0 && c->verdict < 8)
		return tc[c->verdict];
	return c->verdict == -1 ? "TC_ACT_UNSPEC" : "?";
}

int main(int argc, char **argv)
{
	const char *out_path = argc > 1 ? argv[1] : getenv("FERRY_BENCH_OUT");
	const char *katran_obj = getenv("KATRAN_OBJ");
	/* Only the cases whose name contains this (profiling one path). */
	const char *only = getenv("FERRY_BENCH_ONLY");
	json_t *root = NULL, *jcases, *jprogs, *jbase;
	unsigned int floor_runs;
	struct utsname uts;
	cpu_set_t cpus;
	int cpu, err, rc = 1;

	if (!out_path)
		out_path = "build/bench/pkt_ns.json";
	env.calls = getenv("FERRY_BENCH_CALLS") ? atoi(getenv("FERRY_BENCH_CALLS")) : 40000;
	env.repeat = getenv("FERRY_BENCH_REPEAT") ? atoi(getenv("FERRY_BENCH_REPEAT")) : 1000000;
	floor_runs = getenv("FERRY_BENCH_FLOOR_RUNS") ? atoi(getenv("FERRY_BENCH_FLOOR_RUNS")) : 5;
	if (env.calls < 100)
		env.calls = 100;
	if (floor_runs < 1)
		floor_runs = 1;
	if (floor_runs > MAX_FLOOR_RUNS)
		floor_runs = MAX_FLOOR_RUNS;
	if (geteuid() != 0) {
		fprintf(stderr, "pkt_bench: needs root (CAP_BPF, CAP_NET_ADMIN); skipped\n");
		return 0;
	}
	/*
	 * One CPU for the whole run: Katran's flow state is per CPU (a warm-up
	 * on one CPU and calls on another would miss), and the baselines and
	 * the cases then share that CPU's caches.
	 */
	cpu = getenv("FERRY_BENCH_CPU") ? atoi(getenv("FERRY_BENCH_CPU")) :
					  libbpf_num_possible_cpus() - 1;
	CPU_ZERO(&cpus);
	CPU_SET(cpu, &cpus);
	if (sched_setaffinity(0, sizeof(cpus), &cpus))
		fprintf(stderr, "pkt_bench: cannot pin to CPU %d: %s (not pinned)\n", cpu,
			strerror(errno));
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	err = setup_netns();
	err = err ?: load();
	err = err ?: fill();
	if (err) {
		fprintf(stderr, "pkt_bench: setup failed: %s\n", strerror(-err));
		goto out;
	}
	if (katran_obj && *katran_obj) {
		err = katran_setup(katran_obj);
		if (err) {
			fprintf(stderr, "pkt_bench: Katran (%s): setup failed: %s\n", katran_obj,
				strerror(-err));
			katran.skipped = "Katran object did not load or configure (see the log)";
			katran.prog_fd = -1;
		}
	} else {
		katran.skipped = "KATRAN_SRC not set";
	}

	int x = bpf_program__fd(env.xdp->progs.ferry_xdp_fwd);
	int tf = bpf_program__fd(env.tc->progs.ferry_tc_fwd);
	int ri = bpf_program__fd(env.tc->progs.ferry_tc_reply_in);
	int re = bpf_program__fd(env.tc->progs.ferry_tc_reply_eg);
	int ci = env.if_c0, bi = env.if_b0;
	static const char *const fwd = "flow lookup, DNAT rewrite + checksums, next hop (cached), "
				       "stats, latency sampling, redirect";
	static const char *const newf = "service + table lookup, hash, forward and reverse flow "
					"inserts, DNAT, fib lookup, redirect";

	if (baseline_round())
		goto out_err;
	if (set_tx_port(true))
		goto out_err;

	struct bcase cases[] = {
		{ "xdp_established_v4", M_REPEAT, x, true, ci, 4, PB_TCP_ACK, .does = fwd },
		{ "xdp_established_v6", M_REPEAT, x, true, ci, 6, PB_TCP_ACK, .does = fwd },
		{ "xdp_established_v4_calls", M_CALLS, x, true, ci, 4, PB_TCP_ACK, .does = fwd },
		{ "xdp_established_v4_nh_expired_calls", M_CALLS, x, true, ci, 4, PB_TCP_ACK,
		  .nh_expire = true,
		  .does = "as xdp_established, with bpf_fib_lookup (cache expired)" },
		{ "xdp_established_v6_nh_expired_calls", M_CALLS, x, true, ci, 6, PB_TCP_ACK,
		  .nh_expire = true,
		  .does = "as xdp_established, with bpf_fib_lookup (cache expired)" },
		{ "xdp_handoff_v4_calls", M_CALLS, x, true, ci, 4, PB_TCP_ACK, .handoff = true,
		  .does = "as xdp_established, then XDP_PASS with metadata for TC" },
		{ "xdp_new_flow_v4_calls", M_CALLS, x, true, ci, 4, PB_TCP_SYN, .new_flows = true,
		  .does = newf },
		{ "xdp_new_flow_v6_calls", M_CALLS, x, true, ci, 6, PB_TCP_SYN, .new_flows = true,
		  .does = newf },
		{ "xdp_new_flow_past_guard_v4_calls", M_CALLS, x, true, ci, 4, PB_TCP_SYN,
		  .new_flows = true, .past_guard = true,
		  .does = "a SYN past the rate guard: hash, backend, tuple noted in ferry_skipped, "
			  "nothing stored, DNAT, fib lookup, redirect" },
		/* A backend->client packet at the forward hook: flow, service and marker misses. */
		{ "xdp_non_vip_v4", M_REPEAT, x, true, ci, 4, PB_TCP_ACK, true,
		  .does = "flow miss, VIP address miss, XDP_PASS" },
		{ "xdp_non_vip_v6", M_REPEAT, x, true, ci, 6, PB_TCP_ACK, true,
		  .does = "flow miss, VIP address miss, XDP_PASS" },
		{ "tc_established_v4", M_REPEAT, tf, false, ci, 4, PB_TCP_ACK, .does = fwd },
		{ "tc_established_v6", M_REPEAT, tf, false, ci, 6, PB_TCP_ACK, .does = fwd },
		{ "tc_established_v4_calls", M_CALLS, tf, false, ci, 4, PB_TCP_ACK, .does = fwd },
		{ "tc_established_v4_nh_expired_calls", M_CALLS, tf, false, ci, 4, PB_TCP_ACK,
		  .nh_expire = true,
		  .does = "as tc_established, with bpf_fib_lookup (cache expired)" },
		{ "tc_new_flow_v4_calls", M_CALLS, tf, false, ci, 4, PB_TCP_SYN, .new_flows = true,
		  .does = newf },
		{ "tc_reply_in_v4", M_REPEAT, ri, false, bi, 4, PB_TCP_ACK, true,
		  .does = "reverse flow lookup, SNAT back to the VIP + checksums, next hop (cached), "
			  "redirect" },
		{ "tc_reply_in_v6", M_REPEAT, ri, false, bi, 6, PB_TCP_ACK, true,
		  .does = "reverse flow lookup, SNAT back to the VIP, next hop (cached), redirect" },
		{ "tc_reply_in_v4_nh_expired_calls", M_CALLS, ri, false, bi, 4, PB_TCP_ACK, true,
		  .nh_expire = true,
		  .does = "as tc_reply_in, with bpf_fib_lookup (cache expired)" },
		{ "tc_reply_eg_v4", M_REPEAT, re, false, bi, 4, PB_TCP_ACK, true,
		  .does = "reverse flow lookup, SNAT back to the VIP (pod egress)" },
		{ "tc_reply_eg_v6", M_REPEAT, re, false, bi, 6, PB_TCP_ACK, true,
		  .does = "reverse flow lookup, SNAT back to the VIP (pod egress)" },
		/* What a pod's host veth egress sees most: a packet into the pod from no backend. */
		{ "tc_reply_eg_non_backend_v4", M_REPEAT, re, false, bi, 4, PB_TCP_ACK,
		  .does = "backend filter miss, TC_ACT_OK" },
		/*
		 * Packets with payload, latency sampling off and at the default (every
		 * flow): what sampling costs per packet of a sampled flow.
		 */
		{ "xdp_payload_v4_unsampled", M_REPEAT, x, true, ci, 4, PB_TCP_ACK, .payload = true,
		  .sample = 0, .does = fwd },
		{ "xdp_payload_v4", M_REPEAT, x, true, ci, 4, PB_TCP_ACK, .payload = true,
		  .does = fwd },
		{ "tc_reply_payload_v4_unsampled", M_REPEAT, ri, false, bi, 4, PB_TCP_ACK, true,
		  .payload = true, .sample = 0, .does = "reply, latency sampling off" },
		{ "tc_reply_payload_v4", M_REPEAT, ri, false, bi, 4, PB_TCP_ACK, true,
		  .payload = true, .does = "reply, latency sampled (the default)" },
		/* A large HTTP/2 message's segments: in order, and past a hole (see h2_state). */
		{ "tc_reply_h2_inside_v4_calls", M_CALLS, ri, false, bi, 4, PB_TCP_ACK, true,
		  .h2 = H2_INSIDE, .does = "reply, 1400 bytes inside an HTTP/2 DATA frame" },
		{ "tc_reply_h2_hole_past_v4_calls", M_CALLS, ri, false, bi, 4, PB_TCP_ACK, true,
		  .h2 = H2_HOLE_PAST,
		  .does = "reply, 1400 bytes past a hole, the guessed header past them: skipped" },
		{ "tc_reply_h2_hole_search_v4_calls", M_CALLS, ri, false, bi, 4, PB_TCP_ACK, true,
		  .h2 = H2_HOLE_SEARCH,
		  .does = "reply, 1400 bytes past a hole, searched in vain for a header" },
		/* A connection's first two packets: SYN (new flow), then its first ACK. */
		{ "xdp_connection_v4_calls", M_CALLS, x, true, ci, 4, PB_TCP_SYN, .new_flows = true,
		  .connection = true,
		  .does = "a new flow's SYN plus the client's ACK that confirms it (promotion), "
			  "per connection; the backend's SYN-ACK between them goes through the reply "
			  "program, timed apart (synack_ns), not in the sum" },
		/* Katran, same packets, same mode as ferry's calls cases. */
		{ "katran_established_v4_calls", M_CALLS, katran.prog_fd, true, ci, 4, PB_TCP_ACK,
		  .katran = true,
		  .does = "vip lookup, per-CPU LRU hit, IPIP encapsulation (adjust_head, new outer "
			  "IPv4 header + checksum), stats, XDP_TX; no reply path (DSR)" },
		{ "katran_connection_v4_calls", M_CALLS, katran.prog_fd, true, ci, 4, PB_TCP_SYN,
		  .katran = true, .new_flows = true, .connection = true,
		  .does = "a new flow's SYN plus its first ACK (LRU hit) (per connection)" },
		{ "katran_new_flow_v4_calls", M_CALLS, katran.prog_fd, true, ci, 4, PB_TCP_SYN,
		  .katran = true, .new_flows = true,
		  .does = "vip lookup, jhash, consistent-hash ring lookup, per-CPU LRU insert, IPIP "
			  "encapsulation, stats, XDP_TX; no reply path (DSR)" },
	};
	size_t ncases = sizeof(cases) / sizeof(cases[0]);
	size_t between = ncases / (floor_runs > 1 ? floor_runs - 1 : 1) + 1;

	/* Cases without an explicit setting run at ferry's default sampling. */
	for (size_t i = 0; i < ncases; i++)
		if (!cases[i].payload)
			cases[i].sample = -1;

	root = json_object();
	jcases = json_object();
	jprogs = json_object();
	jbase = json_object();
	uname(&uts);
	json_object_set_new(root, "kernel", json_string(uts.release));
	json_object_set_new(root, "calls", json_integer(env.calls));
	json_object_set_new(root, "repeat", json_integer(env.repeat));
	json_object_set_new(root, "cpu", json_integer(cpu));
	json_object_set_new(root, "sample_every_default", json_integer(FB_SAMPLE_DEFAULT));

	printf("%-38s %-6s %9s %9s %8s %s\n", "case", "mode", "ns/pkt", "+nop ns", "x floor",
	       "verdict");
	for (size_t i = 0; i < ncases; i++) {
		struct bcase *c = &cases[i];

		if ((c->katran && c->prog_fd < 0) || (only && !strstr(c->name, only)))
			continue;
		if (measure(c))
			goto out_err;
		/* The next baseline round, spread among the cases. */
		if (i % between == between - 1 && baselines[0].n < (int)floor_runs &&
		    baseline_round())
			goto out_err;
	}
	while (baselines[0].n < (int)floor_runs)
		if (baseline_round())
			goto out_err;
	/*
	 * The Katran comparison once more, interleaved: ferry's and Katran's
	 * calls-mode cases one after the other, floor_runs times, so that the
	 * ratio does not rest on two single runs minutes apart.
	 */
	if (katran.prog_fd >= 0) {
		static const char *const pair_names[][2] = {
			{ "xdp_established_v4_calls", "katran_established_v4_calls" },
			{ "xdp_new_flow_v4_calls", "katran_new_flow_v4_calls" },
			{ "xdp_connection_v4_calls", "katran_connection_v4_calls" },
		};
		static const char *const pair_keys[] = { "established", "new_flow", "connection" };
		json_t *jcmp = json_object();
		double nop = baseline_median(B_NOP_CALLS);

		for (size_t p = 0; p < 3; p++) {
			json_t *jp = json_object(), *jf = json_array(), *jk = json_array();

			for (unsigned int r = 0; r < floor_runs; r++) {
				for (size_t i = 0; i < ncases; i++) {
					struct bcase c = cases[i];

					if ((strcmp(c.name, pair_names[p][0]) &&
					     strcmp(c.name, pair_names[p][1])) ||
					    (only && !strstr(c.name, only)))
						continue;
					if (measure(&c))
						goto out_err;
					json_array_append_new(
						strcmp(c.name, pair_names[p][0]) ? jk : jf,
						json_real(c.ns - (c.connection ? 2 : 1) * nop));
				}
			}
			json_object_set_new(jp, "ferry_above_nop_ns", jf);
			json_object_set_new(jp, "katran_above_nop_ns", jk);
			json_object_set_new(jcmp, pair_keys[p], jp);
		}
		json_object_set_new(root, "katran_interleaved", jcmp);
	}
	for (int b = 0; b < B_COUNT; b++)
		json_object_set_new(jbase, baseline_names[b], baseline_json(b));
	json_object_set_new(root, "baselines", jbase);
	/* Compatibility with earlier results.json readers. */
	json_object_set_new(root, "floor_ns", json_real(baseline_median(B_FLOOR_REPEAT)));
	json_object_set_new(root, "nop_overhead_ns", json_real(baseline_median(B_NOP_CALLS)));
	for (size_t i = 0; i < ncases; i++) {
		struct bcase *c = &cases[i];
		/* A connection case is two calls: twice the baselines. */
		double k = c->connection ? 2 : 1;
		double nop = k * baseline_median(c->mode == M_REPEAT ? B_NOP_REPEAT : B_NOP_CALLS);
		double fl =
			k * baseline_median(c->mode == M_REPEAT ? B_FLOOR_REPEAT : B_FLOOR_CALLS);
		json_t *j;

		if ((c->katran && c->prog_fd < 0) || (only && !strstr(c->name, only)))
			continue;
		j = json_object();
		printf("%-38s %-6s %9.1f %9.1f %8.2f %s\n", c->name,
		       c->mode == M_REPEAT ? "repeat" : "calls", c->ns, c->ns - nop, c->ns / fl,
		       verdict_name(c));
		json_object_set_new(j, "mode",
				    json_string(c->mode == M_REPEAT ? "repeat" : "calls"));
		json_object_set_new(j, "ns_per_packet", json_real(c->ns));
		json_object_set_new(j, "above_nop_ns", json_real(c->ns - nop));
		json_object_set_new(j, "above_floor_ns", json_real(c->ns - fl));
		json_object_set_new(j, "floor_ns", json_real(fl));
		json_object_set_new(j, "nop_ns", json_real(nop));
		json_object_set_new(j, "ratio_to_floor", json_real(c->ns / fl));
		json_object_set_new(j, "verdict", json_integer(c->verdict));
		json_object_set_new(j, "verdict_name", json_string(verdict_name(c)));
		json_object_set_new(j, "sample_every",
				    json_integer(c->katran     ? 0 :
						 c->sample < 0 ? FB_SAMPLE_DEFAULT :
								 c->sample));
		json_object_set_new(j, "does", json_string(c->does ? c->does : ""));
		if (c->synack_ns > 0)
			json_object_set_new(j, "synack_ns", json_real(c->synack_ns));
		if (c->repeat_fallback)
			json_object_set_new(
				j, "repeat_fallback",
				json_string("the program changes the packet it sees on the "
					    "next repeat (TTL): measured one packet per call"));
		json_object_set_new(jcases, c->name, j);
	}
	json_object_set_new(root, "cases", jcases);
	if (katran.skipped) {
		json_object_set_new(root, "katran_skipped", json_string(katran.skipped));
		printf("katran: skipped: %s\n", katran.skipped);
	}
	printf("\nbaselines (median of %u runs each): nop %.1f ns repeat, %.1f ns calls; floor "
	       "%.1f ns repeat, %.1f ns calls\n",
	       floor_runs, baseline_median(B_NOP_REPEAT), baseline_median(B_NOP_CALLS),
	       baseline_median(B_FLOOR_REPEAT), baseline_median(B_FLOOR_CALLS));

	struct {
		const char *name;
		int fd;
	} progs[] = {
		{ "ferry_floor", bpf_program__fd(env.floor->progs.ferry_floor) },
		{ "ferry_xdp_fwd", x },
		{ "ferry_tc_fwd", tf },
		{ "ferry_tc_reply_in", ri },
		{ "ferry_tc_reply_eg", re },
		{ "katran_balancer_ingress", katran.prog_fd },
	};
	printf("\n%-24s %14s %12s %12s\n", "program", "verified_insns", "xlated_bytes",
	       "jited_bytes");
	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		struct bpf_prog_info info;
		json_t *j;

		if (progs[i].fd < 0)
			continue;
		if (prog_info(progs[i].fd, &info))
			goto out_err;
		j = json_object();
		printf("%-24s %14u %12u %12u\n", progs[i].name, info.verified_insns,
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
	katran_teardown();
	floor__destroy(env.floor);
	ferry_tc__destroy(env.tc);
	ferry_xdp__destroy(env.xdp);
	teardown();
	return rc;
}
