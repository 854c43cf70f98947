// SPDX-License-Identifier: GPL-2.0-only
/*
 * Fuzz target: frames through the real XDP and TC programs
 * (bpf_prog_test_run_opts on the objects ferry ships, loaded from the
 * skeletons) with a small configured service set, checking after every run:
 *   - the verdict is one the program may return at that hook;
 *   - the frame keeps its length (ferry never adds or strips headers),
 *     except a generated RST or port unreachable;
 *   - a frame whose IP destination is no VIP address (forward path), or
 *     whose source is no backend (reply path), comes out byte-identical;
 *   - a changed forwarded frame goes to a configured backend of the VIP it
 *     was sent to (address and port), and nothing else in it changed but
 *     the MACs, the destination, the destination port and the checksums;
 *   - a frame ferry turns around by a documented rule (docs/datapath.md) is
 *     exactly that: the RST|ACK answering a SYN to a service with no
 *     backend, or the ICMP port unreachable answering a datagram to one
 *     (XDP_TX, the XDP->TC handoff, or a redirect back out at TC), from the
 *     VIP to the client, ack = seq + 1 + payload or the original IP header
 *     plus 8 bytes quoted, checksums right;
 *   - an ICMP error about a balanced flow is translated, not rewritten at
 *     will: same family and type, the outer address moved between a VIP
 *     and a backend of it, IPv4 header and ICMP checksums still right;
 *   - a changed reply comes from the VIP of a service that backend serves
 *     (address and port), with the same rule for the rest of the frame;
 *   - checksums (IPv4 header, TCP/UDP with the pseudo-header) that were
 *     right going in are right coming out, and a zero UDP checksum stays 0;
 *   - no counter goes backwards (node counters, per-backend and per-service
 *     stats, summed over CPUs).
 * Input: byte 0 picks the program (bits 0-1: XDP, TC forward, TC reply
 * ingress, TC reply egress) and the interface (bit 2: client or backend
 * side); the rest is the frame. Needs root: it builds the network namespace
 * fz-pkt (bpf_fib_lookup needs routes and neighbours) and removes it at exit.
 *
 * FERRY_FUZZ_WRITE_SEEDS=DIR writes the seed frames (fixtures built like
 * tests/test_pkt.c's) into DIR and exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/pkt_cls.h>

#include "pkt_fixture.h"
#include "kernel/table.h"
#include "fuzz.h"

#define NS "fz-pkt"
#define MAC_C0 "02:fc:00:00:00:c0"
#define MAC_B0 "02:fc:00:00:00:b0"
#define MAC_CLIENT "02:fc:00:00:00:64"
#define CLIENT4 "198.18.0.100"
#define CLIENT6 "2001:db8::100"
#define MAX_FRAME 1600

struct backend_def {
	uint32_t id, svc_id;
	const char *addr;
	uint16_t port;
	const char *mac; /* permanent neighbour, NULL: none (or routed away) */
};

static const struct backend_def backends[] = {
	{ 1, 1, "198.18.1.10", 8080, "02:fc:00:00:01:0a" },
	{ 2, 1, "198.18.1.11", 8080, "02:fc:00:00:01:0b" },
	{ 3, 2, "198.18.1.12", 5353, "02:fc:00:00:01:0c" },
	{ 4, 3, "2001:db8:1::10", 8080, "02:fc:00:00:01:10" },
	{ 5, 3, "2001:db8:1::11", 8080, NULL }, /* no neighbour: redirect_neigh */
	{ 6, 4, "198.18.3.10", 80, NULL }, /* blackhole route: dropped */
};

struct service_def {
	uint32_t id;
	const char *addr;
	uint16_t port;
	uint8_t proto;
	uint32_t sample_every;
	uint32_t slots[2]; /* backend ids, alternating over the table */
};

static const struct service_def services[] = {
	{ 1, "198.18.2.1", 80, IPPROTO_TCP, 1, { 1, 2 } },
	{ 2, "198.18.2.1", 53, IPPROTO_UDP, 0, { 3, 3 } },
	{ 3, "2001:db8:2::1", 80, IPPROTO_TCP, 1, { 4, 5 } },
	{ 4, "198.18.2.2", 80, IPPROTO_TCP, 0, { 6, 6 } },
	{ 5, "198.18.2.3", 80, IPPROTO_TCP, 0, { 0, 0 } }, /* no backend */
};

#define NBACKENDS (sizeof(backends) / sizeof(backends[0]))
#define NSERVICES (sizeof(services) / sizeof(services[0]))
#define TABLE_SIZE 7

static struct {
	struct netns_fixture ns;
	struct ferry_xdp *xdp;
	struct ferry_tc *tc;
	int if_c0, if_b0, ncpus;
	int fd_counters, fd_stats, fd_svc_stats;
	uint64_t last[FERRY_CTR_MAX + (NBACKENDS + 1) * (sizeof(struct ferry_stats) / 8) +
		      (NSERVICES + 1) * (sizeof(struct ferry_svc_stats) / 8)];
} env = { .ns = NETNS_FIXTURE(NS) };

#define NVALUES (sizeof(env.last) / sizeof(env.last[0]))

/*
 * libFuzzer sees no coverage inside BPF: these extra counters stand in for
 * it (which node counters moved, the verdict, whether the frame changed), so
 * an input that reaches a new data plane path is kept and mutated further.
 */
__attribute__((section("__libfuzzer_extra_counters"))) static uint8_t bpf_cov[4][FERRY_CTR_MAX + 8];

/*
 * Where this harness reports: stderr as it was at start, since libFuzzer's
 * -close_fd_mask=2 (quiet runs) closes stderr after LLVMFuzzerInitialize.
 */
static FILE *report;

/* What the runs did, printed at exit: evidence the invariants were exercised. */
static struct {
	unsigned long runs, forwarded, replied, dropped, redirected;
} tally;

static void die(const char *what, int err)
{
	fprintf(stderr, "fuzz/pkt: %s: %s\n", what, strerror(err < 0 ? -err : err));
	netns_fixture__destroy(&env.ns);
	exit(1);
}

/* ------------------------------------------------------------ frames */

/* A frame taken apart the way bpf/parse.bpf.h does, plus checksum state. */
struct view {
	bool ip; /* an IPv4 or IPv6 header is there whole */
	bool l4; /* and a whole TCP or UDP header after it */
	int family;
	size_t l3, l4_off, csum_off, l4_len; /* l4_len: per the IP header */
	uint8_t proto;
	uint32_t saddr[4], daddr[4];
	uint16_t sport, dport; /* network order */
	bool ip_csum_ok, l4_csum_ok, l4_csum_known, udp_zero;
};

static void view_of(const uint8_t *f, size_t len, struct view *v)
{
	uint16_t type;
	size_t off = 14, l3_payload;

	memset(v, 0, sizeof(*v));
	if (len < 14)
		return;
	type = (f[12] << 8) | f[13];
	if (type == ETH_P_8021Q || type == ETH_P_8021AD) {
		if (len < 18)
			return;
		type = (f[16] << 8) | f[17];
		off = 18;
	}
	v->l3 = off;
	if (type == ETH_P_IP) {
		const struct iphdr *iph = (const void *)(f + off);
		size_t hl;

		if (len < off + sizeof(*iph))
			return;
		hl = iph->ihl * 4;
		if (iph->version != 4 || hl < sizeof(*iph) || len < off + hl ||
		    ntohs(iph->tot_len) < hl)
			return;
		v->family = 4;
		v->saddr[0] = iph->saddr;
		v->daddr[0] = iph->daddr;
		v->proto = iph->protocol;
		v->ip = true;
		v->ip_csum_ok = pb_fold(pb_sum(iph, hl, 0)) == 0;
		if (iph->frag_off & htons(0x3fff))
			return;
		l3_payload = ntohs(iph->tot_len) - hl;
		off += hl;
	} else if (type == ETH_P_IPV6) {
		const struct ipv6hdr *ip6 = (const void *)(f + off);

		if (len < off + sizeof(*ip6) || ip6->version != 6)
			return;
		v->family = 6;
		memcpy(v->saddr, &ip6->saddr, 16);
		memcpy(v->daddr, &ip6->daddr, 16);
		v->proto = ip6->nexthdr;
		v->ip = true;
		v->ip_csum_ok = true;
		l3_payload = ntohs(ip6->payload_len);
		off += sizeof(*ip6);
	} else {
		return;
	}
	v->l4_off = off;
	if (v->proto == IPPROTO_TCP) {
		if (len < off + 20 || (f[off + 12] >> 4) * 4u < 20 ||
		    len < off + (f[off + 12] >> 4) * 4u)
			return;
		v->csum_off = off + 16;
	} else if (v->proto == IPPROTO_UDP) {
		if (len < off + 8)
			return;
		v->csum_off = off + 6;
	} else {
		return;
	}
	v->l4 = true;
	memcpy(&v->sport, f + off, 2);
	memcpy(&v->dport, f + off + 2, 2);
	v->l4_len = l3_payload;
	v->udp_zero = v->proto == IPPROTO_UDP && !f[v->csum_off] && !f[v->csum_off + 1];
	/* Checksums cover what the IP header says is there; only then can they be checked. */
	if (off + l3_payload <= len && l3_payload >= (v->proto == IPPROTO_TCP ? 20u : 8u)) {
		v->l4_csum_known = true;
		v->l4_csum_ok = v->udp_zero ||
				pb_fold(pb_sum(f + off, l3_payload,
					       pb_pseudo(v->family, v->saddr, v->daddr, v->proto,
							 l3_payload))) == 0;
	}
}

static bool addr_eq(const uint32_t *a, const uint32_t *b, int family)
{
	return !memcmp(a, b, family == 4 ? 4 : 16);
}

static bool is_vip_addr(const struct view *v)
{
	uint32_t a[4];

	for (size_t i = 0; i < NSERVICES; i++) {
		pb_addr(a, services[i].addr);
		if ((strchr(services[i].addr, ':') ? 6 : 4) == v->family &&
		    addr_eq(a, v->daddr, v->family))
			return true;
	}
	return false;
}

static bool is_backend_addr(const struct view *v)
{
	uint32_t a[4];

	for (size_t i = 0; i < NBACKENDS; i++) {
		pb_addr(a, backends[i].addr);
		if ((strchr(backends[i].addr, ':') ? 6 : 4) == v->family &&
		    addr_eq(a, v->saddr, v->family))
			return true;
	}
	return false;
}

/* Is (addr, port) a backend of the service at (vaddr, vport, proto)? */
static bool backend_of(const uint32_t *vaddr, uint16_t vport, const uint32_t *baddr, uint16_t bport,
		       int family, uint8_t proto)
{
	uint32_t a[4];

	for (size_t i = 0; i < NSERVICES; i++) {
		const struct service_def *s = &services[i];

		pb_addr(a, s->addr);
		if ((strchr(s->addr, ':') ? 6 : 4) != family || !addr_eq(a, vaddr, family) ||
		    htons(s->port) != vport || s->proto != proto)
			continue;
		for (size_t j = 0; j < NBACKENDS; j++) {
			const struct backend_def *b = &backends[j];

			if (b->svc_id != s->id)
				continue;
			pb_addr(a, b->addr);
			if (addr_eq(a, baddr, family) && htons(b->port) == bport)
				return true;
		}
	}
	return false;
}

/* Is baddr the address of a backend of a service whose VIP address is vaddr? */
static bool backend_addr_of(const uint32_t *vaddr, const uint32_t *baddr, int family)
{
	uint32_t a[4];

	for (size_t i = 0; i < NSERVICES; i++) {
		const struct service_def *s = &services[i];

		pb_addr(a, s->addr);
		if ((strchr(s->addr, ':') ? 6 : 4) != family || !addr_eq(a, vaddr, family))
			continue;
		for (size_t j = 0; j < NBACKENDS; j++) {
			pb_addr(a, backends[j].addr);
			if (backends[j].svc_id == s->id && addr_eq(a, baddr, family))
				return true;
		}
	}
	return false;
}

#define CHECK(cond, ...)                                                             \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(report, "fuzz/pkt: invariant broken: " __VA_ARGS__); \
			fputc('\n', report);                                         \
			fflush(report);                                              \
			abort();                                                     \
		}                                                                    \
	} while (0)

/*
 * The bytes a translation may change: MACs, checksums, the TTL or hop limit
 * (one less on a redirect), and on the forward path the destination address
 * and port, on the reply path the source ones.
 */
static void check_only_translated(const uint8_t *in, const uint8_t *out, size_t len,
				  const struct view *v, bool reply)
{
	size_t alen = v->family == 4 ? 4 : 16;
	size_t a_off = v->family == 4 ? v->l3 + (reply ? 12 : 16) : v->l3 + (reply ? 8 : 24);
	size_t p_off = v->l4_off + (reply ? 0 : 2);

	size_t ttl_off = v->l3 + (v->family == 4 ? 8 : 7);

	for (size_t i = 12; i < len; i++) {
		if (v->family == 4 && i >= v->l3 + 10 && i < v->l3 + 12)
			continue; /* IPv4 header checksum */
		if (i == ttl_off && out[i] != in[i]) {
			/* A redirect is a router's hop: TTL / hop limit one less, never more. */
			CHECK(in[i] > 1 && out[i] == in[i] - 1,
			      "TTL %u -> %u on a translated packet", in[i], out[i]);
			continue;
		}
		if (i >= a_off && i < a_off + alen)
			continue;
		if (i >= p_off && i < p_off + 2)
			continue;
		if (i >= v->csum_off && i < v->csum_off + 2)
			continue;
		CHECK(in[i] == out[i],
		      "byte %zu changed (%02x -> %02x) outside the translated fields", i, in[i],
		      out[i]);
	}
}

/* ------------------------------------------------------------ counters */

static size_t read_percpu(int fd, uint32_t key, size_t words, uint64_t *dst)
{
	uint64_t vals[env.ncpus * words];

	memset(dst, 0, words * 8);
	if (bpf_map_lookup_elem(fd, &key, vals))
		return words;
	for (int c = 0; c < env.ncpus; c++)
		for (size_t w = 0; w < words; w++)
			dst[w] += vals[c * words + w];
	return words;
}

static void read_values(uint64_t *v)
{
	size_t n = 0;

	for (uint32_t k = 0; k < FERRY_CTR_MAX; k++)
		n += read_percpu(env.fd_counters, k, 1, v + n);
	for (uint32_t id = 0; id <= NBACKENDS; id++)
		n += read_percpu(env.fd_stats, id, sizeof(struct ferry_stats) / 8, v + n);
	for (uint32_t id = 0; id <= NSERVICES; id++)
		n += read_percpu(env.fd_svc_stats, id, sizeof(struct ferry_svc_stats) / 8, v + n);
	if (n != NVALUES)
		abort();
}

/* ------------------------------------------------------------ setup */

static void teardown(void)
{
	if (tally.runs)
		fprintf(report,
			"fuzz/pkt: %lu runs: %lu forwarded (translated), %lu replies translated, "
			"%lu dropped, %lu redirected\n",
			tally.runs, tally.forwarded, tally.replied, tally.dropped,
			tally.redirected);
	tally.runs = 0;
	netns_fixture__destroy(&env.ns);
}

static void on_signal(int sig)
{
	teardown();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int netns_setup(void)
{
	static const char *const cmds[] = {
		PKT_FIXTURE_NETNS_CMDS(NS, "fz", MAC_C0, MAC_B0, MAC_CLIENT, CLIENT4, CLIENT6),
	};
	int err;

	err = netns_fixture__create(&env.ns, cmds, sizeof(cmds) / sizeof(cmds[0]));
	if (err)
		return err;
	for (size_t i = 0; i < NBACKENDS; i++) {
		if (!backends[i].mac)
			continue;
		err = pkt_fixture__neigh(NS, "fz-b0", backends[i].addr, backends[i].mac);
		if (err)
			return err;
	}
	err = netns_fixture__enter(&env.ns);
	if (err)
		return err;
	env.if_c0 = if_nametoindex("fz-c0");
	env.if_b0 = if_nametoindex("fz-b0");
	return env.if_c0 && env.if_b0 ? 0 : -ENODEV;
}

/* Both objects unpinned, sharing one set of maps (as tests/test_pkt.c loads them). */
static int load_objects(void)
{
	env.xdp = ferry_xdp__open();
	env.tc = ferry_tc__open();
	if (!env.xdp || !env.tc)
		return -errno;
	return pkt_fixture__load(env.xdp, env.tc);
}

static int map_fd(const char *name)
{
	struct bpf_map *m = bpf_object__find_map_by_name(env.xdp->obj, name);

	return m ? bpf_map__fd(m) : -1;
}

static int fill_maps(void)
{
	struct ferry_config cfg = { .abi_version = FERRY_ABI_VERSION,
				    .hash_seed = 0x5eed1234,
				    .trace_every = 3,
				    .udp_timeout_s = 30 };
	uint32_t zero = 0;
	int err;

	err = bpf_map_update_elem(map_fd(FERRY_MAP_CONFIG), &zero, &cfg, 0);
	if (err)
		return err;
	for (size_t i = 0; i < NBACKENDS; i++) {
		const struct backend_def *d = &backends[i];

		/*
		 * Every endpoint here is one service's, which ferryd marks sole;
		 * the odd ids are left unmarked (as a shared endpoint's are) so
		 * that both sides of the reply-clash check take fuzzed packets.
		 */
		err = pkt_fixture__backend(map_fd(FERRY_MAP_BACKENDS), map_fd(FERRY_MAP_BE_BITS),
					   d->id, d->id, d->svc_id, d->addr, d->port, !(d->id & 1));
		if (err)
			return err;
	}
	for (size_t i = 0; i < NSERVICES; i++) {
		const struct service_def *d = &services[i];
		struct ferry_service svc = { .id = d->id,
					     .table_size = TABLE_SIZE,
					     .sample_every = d->sample_every };
		struct ferry_select sel = {};

		err = pkt_fixture__service(map_fd(FERRY_MAP_SERVICES), map_fd(FERRY_MAP_VIP_BITS),
					   svc, d->addr, d->port, d->proto);
		if (err)
			return err;
		/* Each slot backend is its own predictor (ids match), at equal weights. */
		for (int k = 0; k < 2; k++) {
			struct ferry_table_cell cells[FERRY_TABLE_CELLS(TABLE_SIZE, 1)];
			struct ferry_table_member m = { .backend_id = d->slots[k] };
			struct ferry_backend be;
			__u32 pred = d->slots[k];
			int fd;

			if (!pred || (k && pred == d->slots[0]) ||
			    bpf_map_lookup_elem(map_fd(FERRY_MAP_BACKENDS), &pred, &be))
				continue;
			m.key = ferry_table__key(be.family, be.addr, be.port);
			err = ferry_table__build(&m, 1, TABLE_SIZE, cells);
			fd = err   ?:
				     ferry_table__create(cells, FERRY_TABLE_CELLS(TABLE_SIZE, 1),
							 "fz_table");
			if (fd < 0)
				return fd;
			err = bpf_map_update_elem(map_fd(FERRY_MAP_TABLES), &pred, &fd, 0);
			close(fd); /* the outer map holds it */
			if (err)
				return err;
			sel.preds[sel.npredictors++] = (struct ferry_select_pred){
				.predictor_id = pred, .weight = FERRY_WEIGHT_ONE / 2, .key = pred
			};
		}
		err = bpf_map_update_elem(map_fd(FERRY_MAP_SELECT), &d->id, &sel, BPF_F_LOCK);
		if (err)
			return err;
	}
	return 0;
}

/* ------------------------------------------------------------ seeds */

struct seed {
	const char *name;
	uint8_t sel;
	struct pb_spec s;
};

static size_t make_seeds(struct seed *out)
{
	static const char payload[] = "POST /api/v1.0/predictions HTTP/1.1\r\nHost: iris\r\n\r\n";
	static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
	size_t n = 0;

#define SEED(nm, sl, ...) \
	out[n++] = (struct seed){ nm, sl, pkt_fixture__client(MAC_CLIENT, MAC_C0, __VA_ARGS__) }
	SEED("syn4", P_XDP, 4, IPPROTO_TCP, CLIENT4, 40000, "198.18.2.1", 80, PB_TCP_SYN);
	SEED("ack4-tc", P_TC_FWD, 4, IPPROTO_TCP, CLIENT4, 40000, "198.18.2.1", 80, PB_TCP_ACK);
	SEED("data4", P_XDP, 4, IPPROTO_TCP, CLIENT4, 40000, "198.18.2.1", 80,
	     PB_TCP_ACK | PB_TCP_PSH);
	out[n - 1].s.payload = payload;
	out[n - 1].s.payload_len = sizeof(payload) - 1;
	SEED("fin4", P_XDP, 4, IPPROTO_TCP, CLIENT4, 40001, "198.18.2.1", 80,
	     PB_TCP_FIN | PB_TCP_ACK);
	SEED("udp4", P_XDP, 4, IPPROTO_UDP, CLIENT4, 5300, "198.18.2.1", 53, 0);
	SEED("udp4-zero-csum", P_TC_FWD, 4, IPPROTO_UDP, CLIENT4, 5301, "198.18.2.1", 53, 0);
	out[n - 1].s.udp_csum_zero = true;
	SEED("syn6", P_XDP, 6, IPPROTO_TCP, CLIENT6, 40000, "2001:db8:2::1", 80, PB_TCP_SYN);
	SEED("syn6-tc", P_TC_FWD, 6, IPPROTO_TCP, CLIENT6, 40002, "2001:db8:2::1", 80, PB_TCP_SYN);
	SEED("syn4-blackhole", P_XDP, 4, IPPROTO_TCP, CLIENT4, 40000, "198.18.2.2", 80, PB_TCP_SYN);
	SEED("syn4-no-backend", P_TC_FWD, 4, IPPROTO_TCP, CLIENT4, 40000, "198.18.2.3", 80,
	     PB_TCP_SYN);
	SEED("syn4-other-port", P_XDP, 4, IPPROTO_TCP, CLIENT4, 40000, "198.18.2.1", 81,
	     PB_TCP_SYN);
	SEED("not-vip", P_XDP, 4, IPPROTO_TCP, CLIENT4, 40000, "198.18.1.10", 8080, PB_TCP_SYN);
	SEED("vlan", P_XDP, 4, IPPROTO_TCP, CLIENT4, 40003, "198.18.2.1", 80, PB_TCP_SYN);
	out[n - 1].s.vlan = true;
	out[n - 1].s.vlan_id = 7;
	SEED("ip-options", P_TC_FWD, 4, IPPROTO_TCP, CLIENT4, 40004, "198.18.2.1", 80, PB_TCP_SYN);
	out[n - 1].s.ip_opts_len = 8;
	SEED("fragment", P_XDP, 4, IPPROTO_TCP, CLIENT4, 40005, "198.18.2.1", 80, PB_TCP_SYN);
	out[n - 1].s.frag = 0x2000;
	SEED("v6-hopopts", P_XDP, 6, IPPROTO_TCP, CLIENT6, 40006, "2001:db8:2::1", 80, PB_TCP_SYN);
	out[n - 1].s.v6_ext = PB_V6_HOPOPTS;
	SEED("v6-frag", P_TC_FWD, 6, IPPROTO_TCP, CLIENT6, 40007, "2001:db8:2::1", 80, PB_TCP_SYN);
	out[n - 1].s.v6_ext = PB_V6_FRAG;
	/* Replies to the flows the first seeds make (whichever backend got them). */
	SEED("synack4-be1", P_TC_REPLY_IN | 4, 4, IPPROTO_TCP, "198.18.1.10", 8080, CLIENT4, 40000,
	     PB_TCP_SYN | PB_TCP_ACK);
	SEED("synack4-be2", P_TC_REPLY_IN | 4, 4, IPPROTO_TCP, "198.18.1.11", 8080, CLIENT4, 40000,
	     PB_TCP_SYN | PB_TCP_ACK);
	SEED("answer4-be1", P_TC_REPLY_IN | 4, 4, IPPROTO_TCP, "198.18.1.10", 8080, CLIENT4, 40000,
	     PB_TCP_ACK | PB_TCP_PSH);
	out[n - 1].s.payload = answer;
	out[n - 1].s.payload_len = sizeof(answer) - 1;
	SEED("rst4-be2-eg", P_TC_REPLY_EG | 4, 4, IPPROTO_TCP, "198.18.1.11", 8080, CLIENT4, 40000,
	     PB_TCP_RST);
	SEED("udp4-reply", P_TC_REPLY_IN | 4, 4, IPPROTO_UDP, "198.18.1.12", 5353, CLIENT4, 5300,
	     0);
	SEED("synack6", P_TC_REPLY_IN | 4, 6, IPPROTO_TCP, "2001:db8:1::10", 8080, CLIENT6, 40000,
	     PB_TCP_SYN | PB_TCP_ACK);
	SEED("synack6-be5", P_TC_REPLY_IN | 4, 6, IPPROTO_TCP, "2001:db8:1::11", 8080, CLIENT6,
	     40000, PB_TCP_SYN | PB_TCP_ACK);
#undef SEED
	return n;
}

static void write_seeds(const char *dir)
{
	struct seed seeds[64];
	size_t n = make_seeds(seeds);
	uint8_t buf[MAX_FRAME];

	for (size_t i = 0; i < n; i++) {
		char path[512];
		size_t len;

		buf[0] = seeds[i].sel;
		len = pb_build(&seeds[i].s, buf + 1, sizeof(buf) - 1);
		if (!len)
			abort();
		snprintf(path, sizeof(path), "%s/%s", dir, seeds[i].name);
		fuzz_write(path, buf, len + 1);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *seed_dir = getenv("FERRY_FUZZ_WRITE_SEEDS");
	int err;

	if (seed_dir) {
		write_seeds(seed_dir);
		exit(0);
	}
	report = fdopen(dup(2), "w");
	if (!report)
		report = stderr;
	if (geteuid() != 0) {
		fprintf(stderr, "fuzz/pkt: needs root (BPF, network namespaces)\n");
		exit(1);
	}
	libbpf_set_print(NULL);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	atexit(teardown);
	env.ncpus = libbpf_num_possible_cpus();
	err = netns_setup();
	if (err)
		die("network namespace " NS, err);
	err = load_objects();
	if (err)
		die("loading the BPF objects", err);
	err = fill_maps();
	if (err)
		die("filling the maps", err);
	env.fd_counters = map_fd(FERRY_MAP_COUNTERS);
	env.fd_stats = map_fd(FERRY_MAP_STATS);
	env.fd_svc_stats = map_fd(FERRY_MAP_SVC_STATS);
	read_values(env.last);
	return 0;
}

/* ------------------------------------------------------------ one run */

static int prog_fd(enum prog p)
{
	return pkt_fixture__prog_fd(env.xdp, env.tc, p);
}

/* Ones' complement sum of an ICMP message (ICMPv6: with its pseudo-header) is 0. */
static bool icmp_csum_ok(const uint8_t *f, size_t len, const struct view *v)
{
	size_t n = len - v->l4_off;

	if (v->family == 4)
		return pb_fold(pb_sum(f + v->l4_off, n, 0)) == 0;
	return pb_fold(pb_sum(f + v->l4_off, n,
			      pb_pseudo(6, v->saddr, v->daddr, IPPROTO_ICMPV6, n))) == 0;
}

/*
 * An answer's MACs: swapped in the frame (XDP_TX, TC), or still the
 * original ones when XDP hands it to TC, which writes the MACs carried in
 * the metadata (lb.bpf.h: the frame stays routable if the handoff fails).
 */
static bool macs_answered(const uint8_t *in, const uint8_t *out)
{
	return (!memcmp(out, in + 6, 6) && !memcmp(out + 6, in, 6)) || !memcmp(out, in, 12);
}

/* A SYN to a service with no backend, answered with a RST|ACK (bpf/reject.bpf.h). */
static bool is_reject(const uint8_t *in, const struct view *vi, const uint8_t *out, size_t olen,
		      bool reply)
{
	struct view vo;

	if (reply || !vi->l4 || vi->proto != IPPROTO_TCP || (in[vi->l4_off + 13] & 0x16) != 0x02)
		return false;
	view_of(out, olen, &vo);
	return vo.l4 && vo.proto == IPPROTO_TCP && vo.family == vi->family &&
	       (out[vo.l4_off + 13] & 0x3f) == 0x14 && addr_eq(vo.saddr, vi->daddr, vi->family) &&
	       addr_eq(vo.daddr, vi->saddr, vi->family) && vo.sport == vi->dport &&
	       vo.dport == vi->sport && vo.l4_csum_known;
}

static void check_reject(const uint8_t *in, const struct view *vi, const uint8_t *out, size_t olen)
{
	size_t hl = (in[vi->l4_off + 12] >> 4) * 4u, payload = vi->l4_len - hl;
	uint32_t seq, ack;
	struct view vo;

	CHECK(is_vip_addr(vi), "a RST was made for a frame to no VIP");
	view_of(out, olen, &vo);
	memcpy(&seq, in + vi->l4_off + 4, 4);
	memcpy(&ack, out + vo.l4_off + 8, 4);
	CHECK(ntohl(ack) == ntohl(seq) + 1 + payload, "the RST acks %u, the SYN had seq %u",
	      ntohl(ack), ntohl(seq));
	CHECK(olen == vo.l4_off + 20, "the RST is %zu bytes, not its headers", olen);
	CHECK(macs_answered(in, out),
	      "the RST's MACs are neither swapped nor left for the handoff");
	CHECK(vo.family == 6 || vo.ip_csum_ok, "the RST's IPv4 header checksum is wrong");
	CHECK(vo.l4_csum_ok, "the RST's TCP checksum is wrong");
}

/* An ICMP error translated between a VIP and one of its backends (lb.bpf.h). */
static void check_icmp(const uint8_t *in, size_t len, const struct view *vi, const uint8_t *out,
		       bool reply)
{
	struct view vo;

	view_of(out, len, &vo);
	CHECK(vo.ip && vo.family == vi->family && vo.proto == vi->proto,
	      "a translated ICMP error no longer parses the same");
	CHECK(out[vo.l4_off] == in[vi->l4_off] && out[vo.l4_off + 1] == in[vi->l4_off + 1],
	      "an ICMP error changed its type or code");
	if (!reply)
		CHECK(addr_eq(vo.daddr, vi->daddr, vi->family) ||
			      backend_addr_of(vi->daddr, vo.daddr, vi->family),
		      "an ICMP error to a VIP went to no backend of it");
	else
		CHECK(addr_eq(vo.saddr, vi->saddr, vi->family) ||
			      backend_addr_of(vo.saddr, vi->saddr, vi->family),
		      "an ICMP error from a backend left with a source that is none of its VIPs");
	if (vi->family == 4 && vi->ip_csum_ok)
		CHECK(vo.ip_csum_ok, "the IPv4 header checksum of an ICMP error broke");
	if (icmp_csum_ok(in, len, vi))
		CHECK(icmp_csum_ok(out, len, &vo), "the ICMP checksum broke");
}

/* A datagram to a service with no backend, answered with ICMP port unreachable (reject.bpf.h). */
static bool is_port_unreach(const struct view *vi, const uint8_t *out, size_t olen, bool reply)
{
	struct view vo;

	if (reply || !vi->l4 || vi->proto != IPPROTO_UDP)
		return false;
	view_of(out, olen, &vo);
	return vo.ip && vo.family == vi->family &&
	       vo.proto == (vi->family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6) &&
	       addr_eq(vo.saddr, vi->daddr, vi->family) && addr_eq(vo.daddr, vi->saddr, vi->family);
}

static void check_port_unreach(const uint8_t *in, const struct view *vi, const uint8_t *out,
			       size_t olen)
{
	size_t outer = vi->family == 4 ? 20 : 40;
	struct view vo;

	view_of(out, olen, &vo);
	CHECK(is_vip_addr(vi), "a port unreachable was made for a frame to no VIP");
	CHECK(vi->family == 4 ? out[vo.l4_off] == 3 && out[vo.l4_off + 1] == 3 :
				out[vo.l4_off] == 1 && out[vo.l4_off + 1] == 4,
	      "the answer to a datagram is ICMP type %u code %u, not port unreachable",
	      out[vo.l4_off], out[vo.l4_off + 1]);
	CHECK(olen == vo.l4_off + 8 + outer + 8, "the port unreachable is %zu bytes", olen);
	CHECK(!memcmp(out + vo.l4_off + 8, in + vi->l3, outer + 8),
	      "the port unreachable does not quote the datagram's IP header and 8 bytes");
	CHECK(macs_answered(in, out),
	      "the port unreachable's MACs are neither swapped nor left for the handoff");
	CHECK(vo.family == 6 || vo.ip_csum_ok,
	      "the port unreachable's IPv4 header checksum is wrong");
	CHECK(icmp_csum_ok(out, olen, &vo), "the port unreachable's ICMP checksum is wrong");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t in[MAX_FRAME], out[MAX_FRAME + 256];
	uint64_t now[NVALUES];
	enum prog p;
	int ifindex, err;
	struct view vi, vo;
	const uint8_t *fo;
	size_t len, olen;
	bool reply, changed;
	struct xdp_md xctx = {};
	struct __sk_buff sctx = {};
	LIBBPF_OPTS(bpf_test_run_opts, opts, .repeat = 1);

	/* test_run needs at least an Ethernet header. */
	if (size < 1 + 14 || size > 1 + MAX_FRAME)
		return -1;
	p = data[0] & 3;
	ifindex = data[0] & 4 ? env.if_b0 : env.if_c0;
	len = size - 1;
	memcpy(in, data + 1, len);
	reply = p == P_TC_REPLY_IN || p == P_TC_REPLY_EG;

	opts.data_in = in;
	opts.data_size_in = len;
	opts.data_out = out;
	opts.data_size_out = sizeof(out);
	if (p == P_XDP) {
		xctx.data_end = len;
		xctx.ingress_ifindex = ifindex;
		opts.ctx_in = &xctx;
		opts.ctx_size_in = sizeof(xctx);
		opts.ctx_out = &xctx;
		opts.ctx_size_out = sizeof(xctx);
	} else {
		sctx.ifindex = ifindex;
		opts.ctx_in = &sctx;
		opts.ctx_size_in = sizeof(sctx);
	}
	view_of(in, len, &vi);
	err = bpf_prog_test_run_opts(prog_fd(p), &opts);
	/* test_run refuses an skb whose IP header (by its ethertype) is cut short. */
	if (err && errno == EINVAL && p != P_XDP && !vi.ip)
		return -1;
	CHECK(!err, "test_run of program %d failed: %s", p, strerror(errno));

	if (p == P_XDP)
		CHECK(opts.retval == XDP_PASS || opts.retval == XDP_DROP ||
			      opts.retval == XDP_REDIRECT || opts.retval == XDP_TX,
		      "XDP verdict %u", opts.retval);
	else
		/* "Not ours" is TC_ACT_UNSPEC (the next filter or tcx program runs), as shipped. */
		CHECK(opts.retval == TC_ACT_OK || opts.retval == TC_ACT_UNSPEC ||
			      opts.retval == TC_ACT_SHOT || opts.retval == TC_ACT_REDIRECT,
		      "TC verdict %d", (int)opts.retval);
	if (p == P_TC_REPLY_EG)
		CHECK(opts.retval == TC_ACT_OK || opts.retval == TC_ACT_UNSPEC,
		      "reply egress must pass, got %d", (int)opts.retval);

	/* XDP test_run returns the frame from data_meta; ctx_out.data is the metadata length. */
	fo = out + (p == P_XDP ? xctx.data : 0);
	olen = opts.data_size_out - (p == P_XDP ? xctx.data : 0);
	if (is_reject(in, &vi, fo, olen, reply)) {
		check_reject(in, &vi, fo, olen);
		changed = true;
		goto counters;
	}
	if (is_port_unreach(&vi, fo, olen, reply)) {
		check_port_unreach(in, &vi, fo, olen);
		changed = true;
		goto counters;
	}
	CHECK(p != P_XDP || opts.retval != XDP_TX, "XDP_TX of a frame that is no RST or ICMP");
	CHECK(olen == len, "frame length %zu became %zu", len, olen);
	changed = memcmp(in, fo, len) != 0;

	if (!vi.ip || (!reply && !is_vip_addr(&vi)) || (reply && !is_backend_addr(&vi)))
		CHECK(!changed, "a frame not for a VIP (or not from a backend) was changed");
	if (vi.ip && !vi.l4 && (vi.proto == IPPROTO_ICMP || vi.proto == IPPROTO_ICMPV6)) {
		if (changed)
			check_icmp(in, len, &vi, fo, reply);
		goto counters;
	}
	if (!vi.ip || !vi.l4)
		CHECK(opts.retval != XDP_REDIRECT && opts.retval != TC_ACT_REDIRECT,
		      "a frame without TCP/UDP was redirected");
	if (changed) {
		CHECK(vi.l4, "a frame without TCP/UDP was changed");
		view_of(fo, len, &vo);
		CHECK(vo.l4 && vo.family == vi.family && vo.proto == vi.proto,
		      "the translated frame no longer parses the same");
		check_only_translated(in, fo, len, &vi, reply);
		if (!reply)
			CHECK(backend_of(vi.daddr, vi.dport, vo.daddr, vo.dport, vi.family,
					 vi.proto),
			      "forwarded to an address:port that is no backend of the VIP");
		else
			CHECK(backend_of(vo.saddr, vo.sport, vi.saddr, vi.sport, vi.family,
					 vi.proto),
			      "a reply's new source is not the VIP of a service of its backend");
		if (vi.family == 4 && vi.ip_csum_ok)
			CHECK(vo.ip_csum_ok, "the IPv4 header checksum broke");
		if (vi.l4_csum_known && vi.l4_csum_ok)
			CHECK(vo.l4_csum_ok, "the L4 checksum broke");
		if (vi.udp_zero)
			CHECK(vo.udp_zero, "a zero UDP checksum became non-zero");
	}

counters:
	read_values(now);
	for (size_t i = 0; i < NVALUES; i++)
		CHECK(now[i] >= env.last[i], "counter %zu went backwards (%llu -> %llu)", i,
		      (unsigned long long)env.last[i], (unsigned long long)now[i]);
	for (size_t i = 0; i < FERRY_CTR_MAX; i++)
		if (now[i] != env.last[i])
			bpf_cov[p][i] = 1;
	bpf_cov[p][FERRY_CTR_MAX + (opts.retval & 3)] = 1;
	bpf_cov[p][FERRY_CTR_MAX + 4 + changed] = 1;
	memcpy(env.last, now, sizeof(now));

	tally.runs++;
	tally.forwarded += changed && !reply;
	tally.replied += changed && reply;
	tally.dropped += p == P_XDP ? opts.retval == XDP_DROP : opts.retval == TC_ACT_SHOT;
	tally.redirected += p == P_XDP ? opts.retval == XDP_REDIRECT :
					 opts.retval == TC_ACT_REDIRECT;
	return 0;
}
