/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The ABI between ferry's BPF programs and user space: map names, key and
 * value layouts, flag bits and limits. Both sides include this file; it
 * includes nothing and uses only fixed-width kernel types, so the includer
 * must have __u8..__u64, __be16 and __be32 in scope (<linux/types.h> in user
 * space, <linux/bpf.h> in BPF code).
 *
 * Any change to a layout below bumps FERRY_ABI_VERSION; a new map or flag that
 * the previous release's programs and ferryd can ignore does not (ferry_be_vips,
 * ferry_vip_bits, ferry_be_bits, ferry_skipped, FERRY_FLOW_F_HINTED,
 * FERRY_FLOW_F_L7_FRESH, FERRY_FLOW_F_REPLY_HINT, FERRY_FLOW_F_TOLD and
 * ferry_l7's GOAWAY fields, which took its padding: the old programs neither
 * write nor read them, and flows they make lack the flags, so the new
 * programs treat them as before; an old program that meets a flow without its
 * embryonic reply half rebuilds the half through the hint, as for a lost one;
 * ferryd fills the two filters from what it adopts before its programs
 * replace the old ones; a connection told just before a rollback to an old
 * release is ending anyway).
 * ferryd migrates pins of the version before (user/kernel/migrate.c: flows,
 * overrides and other user-space metadata carried, the rest created afresh)
 * and refuses any other version instead of misreading it.
 */
#ifndef FERRY_MAPS_H
#define FERRY_MAPS_H

#define FERRY_ABI_VERSION 3

#define FERRY_PIN_ROOT_DEFAULT "/sys/fs/bpf/ferry"

/* Map names: at most 15 characters (BPF_OBJ_NAME_LEN - 1), no dots. */
#define FERRY_MAP_CONFIG "ferry_config"
#define FERRY_MAP_SERVICES "ferry_services"
#define FERRY_MAP_TABLES "ferry_tables"
#define FERRY_MAP_BACKENDS "ferry_backends"
#define FERRY_MAP_FLOWS "ferry_flows"
#define FERRY_MAP_RFLOWS "ferry_rflows"
#define FERRY_MAP_STATS "ferry_stats"
#define FERRY_MAP_SVC_STATS "ferry_svc_stats"
#define FERRY_MAP_COUNTERS "ferry_counters"
#define FERRY_MAP_LATENCY "ferry_latency"
#define FERRY_MAP_TRACE "ferry_trace"
#define FERRY_MAP_TX_PORTS "ferry_tx_ports"
#define FERRY_MAP_SVC_META "ferry_svc_meta"
#define FERRY_MAP_PRED_META "ferry_pred_meta"
#define FERRY_MAP_LINKS "ferry_links"
#define FERRY_MAP_SELECT "ferry_selectors"
#define FERRY_MAP_EFLOWS "ferry_eflows"
#define FERRY_MAP_ERFLOWS "ferry_erflows"
#define FERRY_MAP_NEW_RATE "ferry_new_rate"
#define FERRY_MAP_BE_VIPS "ferry_be_vips"
#define FERRY_MAP_VIP_BITS "ferry_vip_bits"
#define FERRY_MAP_BE_BITS "ferry_be_bits"
#define FERRY_MAP_SKIPPED "ferry_skipped"

/* Limits (max_entries). Ids 0 are reserved to mean "none" everywhere. */
#define FERRY_MAX_SERVICES 16384
#define FERRY_MAX_PREDICTORS 32768
#define FERRY_MAX_BACKENDS 131072
#define FERRY_MAX_FLOWS 262144
/* Embryonic flows (handshakes and pickups not yet confirmed): a flood churns only these. */
#define FERRY_MAX_EMBRYONIC 65536
#define FERRY_MAX_HISTOGRAMS 262144
#define FERRY_MAX_LINKS 4096
#define FERRY_MAX_TX_PORTS 256
#define FERRY_TRACE_BYTES (1 << 20)

/*
 * Per-predictor Maglev table sizes: a prime, so that every Maglev skip is coprime with it.
 * A predictor's table has next_prime(floor x 2^k) slots for the least k that gives at least
 * FERRY_TABLE_SLOTS_PER_BACKEND per ready backend, capped at FERRY_TABLE_SIZE_MAX
 * (ferry_table__size); the floor is FERRY_TABLE_SIZE_DEFAULT unless `ferryd --table-size`
 * says otherwise (between MIN and MAX).
 */
#define FERRY_TABLE_SIZE_DEFAULT 251
#define FERRY_TABLE_SIZE_MIN 7
#define FERRY_TABLE_SIZE_MAX 1048573
#define FERRY_TABLE_SLOTS_PER_BACKEND 100
#define FERRY_TABLE_MAX_BACKENDS 65535 /* slots hold 16-bit indices */

#define FERRY_AF_INET 4
#define FERRY_AF_INET6 6

/* How many table slots a hairpin client (a backend calling its own VIP) tries before it
 * takes itself; tests mirror the rule. */
#define FERRY_HAIRPIN_TRIES 8
#define FERRY_HAIRPIN_IDS 4 /* then the table's backends in turn: see bpf/select.bpf.h */

/* Weights are parts per million of a service's new connections. */
#define FERRY_WEIGHT_ONE 1000000

/* ---------------------------------------------------------------- config */

struct ferry_config {
	__u32 abi_version;
	__u32 hash_seed;
	__u32 trace_every; /* 0: tracing off; N: one decision in N to the ring buffer */
	__u32 udp_timeout_s; /* idle UDP flow older than this picks a backend anew */
	__u64 generation; /* bumped by every successful sync */
	__u64 sync_unix_ns; /* wall-clock time of the last successful sync */
	__u32 ferryd_pid;
	__u32 features; /* FERRY_FEAT_* detected on this kernel, for ferryctl */
	__u64 heartbeat_unix_ns;
	/*
	 * New flows a CPU inserts per second and service; past it they are
	 * forwarded by the consistent hash without state. 0: no limit.
	 */
	__u32 new_flow_rate;
	__u32 pad;
};
_Static_assert(sizeof(struct ferry_config) == 56, "ferry_config layout");

/* ferryd --new-flow-rate's default: Katran's 125k new connections per second per CPU. */
#define FERRY_NEW_FLOW_RATE_DEFAULT 125000

#define FERRY_FEAT_TCX (1U << 0)
#define FERRY_FEAT_REDIRECT_NEIGH (1U << 1)
#define FERRY_FEAT_REDIRECT_PEER (1U << 2)
#define FERRY_FEAT_XDP_META (1U << 3) /* XDP may call bpf_xdp_adjust_meta (XDP -> TC handoff) */
#define FERRY_FEAT_JIFFIES (1U << 4) /* flows stamped from jiffies (bpf/clock.bpf.h) */

/*
 * How pod traffic leaves a pod's host veth after the rewrite (the TC
 * object's .rodata ferry_pod_path, ferryd --pod-fast-path). STACK: handed
 * to the kernel, so netfilter and the backend veth's egress hooks (where
 * CNIs enforce NetworkPolicy) see it. PEER: bpf_redirect_peer into a local
 * backend pod, bpf_redirect_neigh to a remote one; skips both.
 */
#define FERRY_POD_PATH_STACK 0
#define FERRY_POD_PATH_PEER 1

/* -------------------------------------------------------------- services */

/*
 * VIP (address, port, protocol). IPv4 uses addr[0] and leaves the rest zero.
 * An entry with port 0 and proto 0 marks a VIP address: the data plane looks
 * it up only for packets it cannot match fully (fragments, unknown ports).
 */
struct ferry_vip {
	__be32 addr[4];
	__be16 port;
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family; /* FERRY_AF_INET or FERRY_AF_INET6 */
};
_Static_assert(sizeof(struct ferry_vip) == 20, "ferry_vip layout");

struct ferry_service {
	__u32 id;
	__u32 flags; /* FERRY_SVC_F_* */
	__u32 table_size; /* the per-predictor table floor this service was built with */
	__u32 sample_every; /* latency sampling: 0 off, 1 every flow, N one flow in N */
	__u8 hash_mode; /* FERRY_HASH_*: what selection hashes; the kernel reads only this */
	__u8 pad[3];
};
_Static_assert(sizeof(struct ferry_service) == 20, "ferry_service layout");

#define FERRY_HASH_TUPLE 0 /* the whole 5-tuple: connections spread independently */
#define FERRY_HASH_CLIENT_ADDR 1 /* the client address only: ferry.io/affinity: client-ip */

/* The config layer's mark for client-ip affinity; sync turns it into hash_mode. */
#define FERRY_SVC_F_HASH_SRC_ADDR (1U << 0)
#define FERRY_SVC_F_ADDR_MARKER (1U << 1) /* address-only marker entry */
/* ferry.io/protocol: without either bit the kernel recognises HTTP/2 by its preface (auto). */
#define FERRY_SVC_F_PROTO_HTTP1 (1U << 2) /* measure as HTTP/1.x only */
#define FERRY_SVC_F_PROTO_H2C (1U << 3) /* measure as clear-text HTTP/2 from the first byte */

/*
 * Selection has two stages (docs/tables.md).
 *
 * 1. ferry_selectors, an array indexed by service id: the service's predictors and their
 *    effective weights (ppm). A new connection's hash picks a predictor by weighted
 *    rendezvous: every predictor with a weight scores -log2(u) / weight, u being the
 *    connection hash mixed with the predictor's key (a hash of its name, the same on every
 *    node), and the lowest score wins. A weight change is one update of this small value,
 *    written with BPF_F_LOCK and read under the same lock: a packet sees the old weights
 *    or the new ones, never half of each, and no table is built.
 * 2. ferry_tables, an array of maps indexed by predictor id: the predictor's Maglev table,
 *    sized to its backends. A second seeded hash of the connection picks a slot. The inner
 *    map is an array of 8-byte cells: cell 0 the head (size and backend count, read with
 *    the slots: there is no separately stored size that could be stale), cell 1 the
 *    inputs digest (user space only), then the slots (four 16-bit backend indices per
 *    cell) and last the backend ids (two per cell) that the indices name. Slots are a
 *    pure function of the backends' addresses: only the id cells are node-local.
 *    Replaced whole by swapping the inner map when the predictor's backends change.
 */
struct ferry_select_pred {
	__u32 predictor_id; /* index into ferry_tables */
	__u32 weight; /* effective weight, ppm; 0: never picked */
	__u32 key; /* rendezvous key: ferry_table__pred_key(name) */
};
_Static_assert(sizeof(struct ferry_select_pred) == 12, "ferry_select_pred layout");

struct ferry_select {
	struct bpf_spin_lock lock; /* from <linux/bpf.h>, which every includer has */
	__u32 npredictors;
	__u32 generation; /* bumped by every write, for observers */
	__u32 pad;
	struct ferry_select_pred preds[16]; /* FERRY_MAX_SVC_PREDICTORS */
};
_Static_assert(sizeof(struct ferry_select) == 16 + 16 * 12, "ferry_select layout");

struct ferry_table_head {
	__u32 size; /* slots: a prime, or 0 for a predictor with no ready backend */
	__u32 nbackends; /* id entries after the slots */
};

struct ferry_table_cell {
	union {
		struct ferry_table_head head; /* cell 0 */
		__u64 inputs; /* cell 1: digest of what the table was built from */
		__u16 slot[4]; /* cells 2 .. : slot s in FERRY_TABLE_SLOT_CELL(s), lane s % 4 */
		__u32 backend_id[2]; /* then index i in FERRY_TABLE_ID_CELL(size, i), lane i % 2 */
	};
};
_Static_assert(sizeof(struct ferry_table_cell) == 8, "ferry_table_cell layout");

#define FERRY_TABLE_SLOT_CELL(s) (2 + (s) / 4)
#define FERRY_TABLE_ID_CELL(size, i) (2 + ((size) + 3) / 4 + (i) / 2)
#define FERRY_TABLE_CELLS(size, n) (2 + ((size) + 3) / 4 + ((n) + 1) / 2)

/*
 * Inner maps must be created with exactly these flags (the kernel compares them with the
 * template's): any max_entries per predictor. Not mmap-able: an mmap-able array costs at
 * least two pages, a plain one kmalloc's rounding of its cells (a 5-backend predictor's
 * 503-slot table is 130 cells, 1,040 bytes). The name comes from <linux/bpf.h>.
 */
#define FERRY_TABLE_MAP_FLAGS (BPF_F_INNER_MAP)

/* -------------------------------------------------------------- backends */

struct ferry_backend {
	__be32 addr[4];
	__be16 port;
	__u8 family;
	__u8 state; /* FERRY_BE_* */
	__u32 predictor_id;
	__u32 svc_id;
	__u32 flags; /* FERRY_BE_F_* */
};
_Static_assert(sizeof(struct ferry_backend) == 32, "ferry_backend layout");

#define FERRY_BE_F_ADMIN_DRAIN (1U << 0) /* 'ferryctl drain': out of the table until undrain */
/*
 * No other service has a backend at this address and port (ferryd's sync
 * says so, user/kernel/sync_write.c): no other VIP's flow can hold a new
 * flow's reply key, so the new flow skips the look in ferry_rflows for one
 * (bpf/lb.bpf.h, ferry_rflow_insert). Absent, the look is made: a release
 * that never set it, or a backend shared by services, keeps the check.
 */
#define FERRY_BE_F_SOLE (1U << 1)

#define FERRY_BE_UNUSED 0
#define FERRY_BE_ACTIVE 1 /* in its service's table */
#define FERRY_BE_DRAINING 2 /* out of the table; its flows continue */
#define FERRY_BE_UNREADY 3 /* not ready; out of the table; its flows continue */

/* ----------------------------------------------------------------- flows */

/*
 * A connection's 5-tuple as seen on the wire in one direction. The forward
 * key (ferry_flows, ferry_eflows, ferry_l7) is client -> VIP; the reply key
 * (ferry_rflows, ferry_erflows) is backend -> client.
 */
struct ferry_flow_key {
	__be32 saddr[4];
	__be32 daddr[4];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};
_Static_assert(sizeof(struct ferry_flow_key) == 40, "ferry_flow_key layout");

/*
 * ferry_flows (confirmed) and ferry_eflows (embryonic): client -> VIP key;
 * where the connection goes. A flow is born embryonic, both halves in the
 * embryonic maps, and moves to the confirmed maps once the client's ACK
 * acknowledges the backend's SYN-ACK (a pickup or UDP: once the backend
 * answers). flags is 32 bits so that both directions update it with atomics.
 */
struct ferry_flow {
	__be32 backend_addr[4];
	__be16 backend_port;
	__u8 family;
	__u8 pad0;
	__u32 flags; /* FERRY_FLOW_F_*; updated with __sync_fetch_and_or/and */
	__u32 backend_id;
	__u32 predictor_id;
	__u32 svc_id;
	/* Embryonic TCP with FERRY_FLOW_F_SYNACK: the client ACK that promotes (SYN-ACK seq + 1). */
	__u32 ack_expect;
	__u64 created_ns; /* bpf_ktime_get_ns() */
	__u64 last_ns; /* refreshed by both directions (replies at most once a second) */
	__u64 pending_ns; /* start of the exchange being timed (SYN or request); 0: none */
	__u64 packets;
	__u64 bytes;
	/*
	 * The next hop, cached so that most packets skip bpf_fib_lookup (about
	 * 40% of the established path's cost): valid until nh_expires_ns and
	 * only for packets arriving on nh_in_ifindex. Short-lived on purpose, so
	 * a route or neighbour change reaches every flow within FERRY_NH_TTL_NS.
	 */
	__u64 nh_expires_ns;
	__u32 nh_ifindex; /* 0: nothing cached */
	__u32 nh_in_ifindex;
	__u8 nh_dmac[6];
	__u8 nh_smac[6];
	__u8 pad[4];
};
_Static_assert(sizeof(struct ferry_flow) == 112, "ferry_flow layout");

#define FERRY_NH_TTL_NS (100ULL * 1000 * 1000)

/*
 * ferry_rflows (confirmed) and ferry_erflows (embryonic): backend -> client
 * key; how to make a reply look like the VIP's. The key has no VIP (a reply
 * does not carry it): two VIPs sharing a backend address:port would share a
 * reply key for one client address:port. Such a second connection is refused
 * at creation (FERRY_CTR_REPLY_CLASH), never allowed to overwrite the first.
 */
struct ferry_rflow {
	__be32 vip_addr[4];
	__be16 vip_port;
	__u8 family;
	__u8 pad0;
	__u32 flags; /* FERRY_FLOW_F_* copied from the forward entry at creation */
	__u32 backend_id;
	__u32 pad1;
	struct ferry_flow_key fwd; /* the forward entry */
	__u64 packets;
	__u64 bytes;
	/* The next hop toward the client, cached as in struct ferry_flow. */
	__u64 nh_expires_ns;
	__u32 nh_ifindex;
	__u32 nh_in_ifindex;
	__u8 nh_dmac[6];
	__u8 nh_smac[6];
	__u8 pad[4];
};
_Static_assert(sizeof(struct ferry_rflow) == 120, "ferry_rflow layout");

#define FERRY_FLOW_F_SAMPLED (1U << 0) /* latency is measured on this flow */
#define FERRY_FLOW_F_SYN_PENDING (1U << 1) /* pending_ns is a SYN awaiting SYN-ACK */
#define FERRY_FLOW_F_REQ_PENDING (1U << 2) /* pending_ns is a request awaiting a response */
#define FERRY_FLOW_F_CLOSING (1U << 3) /* FIN or RST seen */
#define FERRY_FLOW_F_RESP_SEEN (1U << 4) /* the current exchange has a response */
#define FERRY_FLOW_F_PICKUP (1U << 5) /* embryonic from a mid-stream packet, not a SYN */
/* embryonic: the SYN-ACK passed, ack_expect is set; UDP: the backend answered */
#define FERRY_FLOW_F_SYNACK (1U << 6)
/*
 * Made with its backend's VIP hint in ferry_be_vips: a lost reply half is
 * rebuilt by the reply itself, so forward packets do not check for it.
 * A flow made by an earlier release lacks it: its next forward packet checks
 * the reply half, writes the hint and sets the flag.
 */
#define FERRY_FLOW_F_HINTED (1U << 7)
/*
 * Made by a SYN: the tuple's request state (ferry_l7) may be an earlier
 * connection's. The connection's first payload, either way, resets it and
 * clears the flag; until then ferry_l7 does not describe this flow, and
 * readers (ferryctl flows, the rebalancing iterator) skip it.
 */
#define FERRY_FLOW_F_L7_FRESH (1U << 8)
/*
 * Embryonic, made by a SYN to a backend whose endpoint no other service
 * shares (FERRY_BE_F_SOLE) and whose VIP hint holds this VIP: no reply half
 * in ferry_erflows (no reply key clash is possible, and the hint finds the
 * flow). Its replies are translated from the forward entry, through the hint;
 * its promotion writes the confirmed reply half. Cleared by promotion.
 */
#define FERRY_FLOW_F_REPLY_HINT (1U << 9)
/*
 * Told by rebalancing (ferry_l7's FERRY_L7_GOAWAY_TOLD or _RAW): the client's
 * byte stream holds a GOAWAY the backend never sent. Payload-less segments
 * have the frame's 32 bytes taken out of the client's acknowledgements and
 * put into the backend's sequence numbers, so that each end takes the
 * other's ACK, FIN and RST (bpf/l7.bpf.h, ferry_told_seq).
 */
#define FERRY_FLOW_F_TOLD (1U << 10)

/*
 * ferry_be_vips: backend endpoint (a struct ferry_vip holding the backend's
 * address, port, protocol and family) -> the VIPs that most recently sent new
 * flows to it, newest first. Written by the forward programs when they make a
 * flow, read by the reply programs only when a reply finds no reply half:
 * each candidate gives a forward key (client -> VIP) to look up, and the
 * half is rebuilt only from a forward entry that names this backend, so a
 * stale or torn hint costs a lookup, never a wrong translation. An LRU map:
 * endpoints of pods long gone age out.
 */
#define FERRY_BE_VIPS 4

struct ferry_be_vip {
	__be32 addr[4];
	__be16 port; /* 0: empty */
	__u16 pad;
};

struct ferry_be_vips {
	struct ferry_be_vip vip[FERRY_BE_VIPS];
};
_Static_assert(sizeof(struct ferry_be_vips) == 80, "ferry_be_vips layout");

/*
 * Two one-hash filters, arrays of 64-bit words (bit / 64 is the key):
 * - ferry_vip_bits (2^16 bits): the services' (VIP address, port, protocol)
 *   and their addresses alone (port 0, protocol 0), read by the forward
 *   programs;
 * - ferry_be_bits (2^20 bits: up to FERRY_MAX_BACKENDS endpoints): the
 *   backends' (address, port), read by the reply programs on the source.
 * Most packets at a node's interfaces are for no service and from no
 * backend (in pod mode, the reply hook sees every packet into every pod): a
 * clear bit tells the programs so in one array read, before any hash lookup.
 * A set bit only means "maybe" (a collision costs the lookups a service's
 * packets take anyway). ferryd writes both from what it holds
 * (user/kernel/sync_write.c): bits of a new service or backend before
 * anything leads packets to it, those of deleted ones cleared after their
 * entries and flows are gone.
 */
#define FERRY_VIP_BITS_ORDER 16
#define FERRY_VIP_BITS_WORDS (1U << (FERRY_VIP_BITS_ORDER - 6))
#define FERRY_BE_BITS_ORDER 20
#define FERRY_BE_BITS_WORDS (1U << (FERRY_BE_BITS_ORDER - 6))

/* The bit of address addr (4 words), port, proto (network order) in a filter of 2^order bits. */
static inline __u32 ferry_filter_bit(const __be32 *addr, __be16 port, __u8 proto, __u32 order)
{
	__u32 h = (__u32)addr[0] ^ (__u32)addr[1] ^ (__u32)addr[2] ^ (__u32)addr[3] ^
		  ((__u32)port << 16 | proto);

	/* Fibonacci hashing: the top bits of the product depend on every input bit. */
	return (h * 0x9e3779b1U) >> (32 - order);
}

static inline __u32 ferry_vip_bit(const __be32 *addr, __be16 port, __u8 proto)
{
	return ferry_filter_bit(addr, port, proto, FERRY_VIP_BITS_ORDER);
}

/* A backend's bit: its replies of either protocol come from its address and port. */
static inline __u32 ferry_be_bit(const __be32 *addr, __be16 port)
{
	return ferry_filter_bit(addr, port, 0, FERRY_BE_BITS_ORDER);
}

/*
 * ferry_new_rate: per-CPU, indexed by service id; the new-flow rate guard's
 * one-second window.
 */
struct ferry_new_rate {
	__u64 window_ns; /* start of the current window */
	__u64 count; /* new flows inserted in it */
};
_Static_assert(sizeof(struct ferry_new_rate) == 16, "ferry_new_rate layout");

/*
 * ferry_skipped: the tuples the rate guard turned away, as 32-bit tags (a
 * hash of the tuple; 0: empty) in 2^FERRY_SKIPPED_ORDER entries of 15, one
 * entry per tuple hash and a cache line each. An entry is a ring: a new tag
 * replaces the entry's oldest (next), so a tag lasts until 15 newer ones
 * land in its entry, about 15 * 65,536 / (tuples turned away per second)
 * seconds. The tuple's next packet, a SYN's retransmission, finds its tag
 * and is let in on a second budget (ferry_guard_again in bpf/lb.bpf.h). 4 MB,
 * shared by all CPUs: a client's retransmission need not arrive on the CPU
 * of its first SYN.
 */
#define FERRY_SKIPPED_ORDER 16
#define FERRY_SKIPPED_ENTRIES (1U << FERRY_SKIPPED_ORDER)
#define FERRY_SKIPPED_TAGS 15

struct ferry_skipped {
	__u32 next; /* the slot the next tag takes, 0..FERRY_SKIPPED_TAGS - 1 */
	__u32 tag[FERRY_SKIPPED_TAGS];
};
_Static_assert(sizeof(struct ferry_skipped) == 64, "ferry_skipped layout");

/* ----------------------------------------------------------------- stats */

/* What a TCP flow speaks, as the kernel recognised it (ferry_l7, ferry_stats, histograms). */
enum ferry_l7_proto {
	FERRY_L7_UNKNOWN = 0, /* nothing seen yet, or not HTTP */
	FERRY_L7_HTTP1 = 1,
	FERRY_L7_H2C = 2,
	FERRY_L7_PROTOS,
};

enum ferry_http_class {
	FERRY_HTTP_1XX,
	FERRY_HTTP_2XX,
	FERRY_HTTP_3XX,
	FERRY_HTTP_4XX,
	FERRY_HTTP_5XX,
	FERRY_HTTP_UNKNOWN, /* not HTTP/1.x in clear text: TLS, HTTP/2, gRPC */
	FERRY_HTTP_CLASSES,
};

/*
 * ferry_stats: per-CPU, indexed by backend id. The kernel updates only this
 * row on the packet path; predictor and service totals are sums over their
 * backends (user space folds a deleted backend's row into its predictor's
 * retired totals in ferry_pred_meta before the id is reused).
 */
struct ferry_stats {
	__u64 fwd_packets;
	__u64 fwd_bytes;
	__u64 rev_packets;
	__u64 rev_bytes;
	__u64 new_flows;
	__u64 flow_misses; /* TCP packets with no flow entry, rehashed */
	__u64 resets; /* RST sent by the backend */
	__u64 http[FERRY_HTTP_CLASSES];
	__u64 syn_timeouts; /* SYN retransmitted before any SYN-ACK: the attempt timed out */
	/* ABI 3, the request layer (bpf/observe.bpf.h, every TCP flow, sampled or not): */
	__u64 requests[FERRY_L7_PROTOS]; /* by enum ferry_l7_proto: h1 requests, h2c streams */
	__u64 h2_resets; /* RST_STREAM frames sent by the backend */
	__u64 l7_unsync; /* flows that lost the HTTP/2 frame layer and are no longer measured */
	__u64 streams_skipped; /* streams beyond FERRY_L7_STREAMS in flight: counted, not timed */
};
_Static_assert(sizeof(struct ferry_stats) == 112 + 8 * (FERRY_L7_PROTOS + 3), "ferry_stats layout");

/* ferry_svc_stats: per-CPU, indexed by service id; events with no backend. */
struct ferry_svc_stats {
	__u64 no_backend; /* packets dropped: the table has no backend */
	__u64 fragments; /* fragments to this VIP address, dropped */
};
_Static_assert(sizeof(struct ferry_svc_stats) == 16, "ferry_svc_stats layout");

/* ferry_counters: per-CPU, indexed by reason; node-wide events. */
enum ferry_counter {
	FERRY_CTR_MALFORMED, /* truncated or invalid header: passed untouched */
	FERRY_CTR_FRAGMENT, /* fragment to a VIP address: dropped */
	FERRY_CTR_IPV6_EXT, /* IPv6 extension header we do not walk: passed */
	FERRY_CTR_VIP_PORT_MISS, /* VIP address, no such port/protocol: passed */
	FERRY_CTR_NO_BACKEND, /* service with an empty table: dropped */
	FERRY_CTR_FLOW_MISS, /* TCP non-SYN with no flow entry: rehashed */
	FERRY_CTR_FLOW_FULL, /* flow entry could not be created */
	FERRY_CTR_FIB_STACK, /* rewritten, handed to the kernel to route */
	FERRY_CTR_FIB_DROP, /* fib lookup said blackhole/unreachable: dropped */
	FERRY_CTR_REDIRECT, /* sent with a redirect */
	FERRY_CTR_REDIRECT_NEIGH, /* sent with bpf_redirect_neigh (no neighbour yet) */
	FERRY_CTR_XDP_HANDOFF, /* XDP rewrote, TC ingress redirected (veth-safe path) */
	FERRY_CTR_REPLY_NAT, /* reply rewritten to the VIP */
	FERRY_CTR_TRACE_LOST, /* trace ring buffer full */
	FERRY_CTR_HIST_MISS, /* latency sample with no histogram entry */
	FERRY_CTR_ICMP_FWD, /* ICMP error about a reply, translated towards the backend */
	FERRY_CTR_ICMP_REPLY, /* ICMP error about a forwarded packet, translated towards the client */
	FERRY_CTR_FLOW_RESTORED, /* a missing half of a flow rebuilt from the other */
	FERRY_CTR_REJECT, /* SYN to a service with no backend answered with a RST */
	FERRY_CTR_REJECT_LIMITED, /* such a SYN or datagram dropped: the per-CPU budget was spent */
	FERRY_CTR_REJECT_ICMP, /* UDP to a service with no backend answered with port unreachable */
	FERRY_CTR_REPLY_FRAGMENT, /* IP fragment at a reply hook: passed untranslated */
	FERRY_CTR_REDIRECT_PEER, /* --pod-fast-path=peer: into a local pod with bpf_redirect_peer */
	FERRY_CTR_TTL_EXPIRED, /* TTL / hop limit <= 1: handed to the stack for its time exceeded */
	FERRY_CTR_EMBRYONIC_NEW, /* embryonic flow created (SYN, pickup or first datagram) */
	FERRY_CTR_EMBRYONIC_PROMOTED, /* embryonic flow confirmed */
	FERRY_CTR_EMBRYONIC_DROPPED, /* embryonic flow dropped: the backend reset it */
	FERRY_CTR_RATE_SKIPPED, /* new flow past the per-CPU rate guard: forwarded, not stored */
	FERRY_CTR_REPLY_CLASH, /* reply key held by a live flow of another VIP: refused */
	FERRY_CTR_GOAWAY_APPENDED, /* rebalancing's GOAWAY appended to a backend segment */
	FERRY_CTR_GOAWAY_TOLD, /* payload past a GOAWAY on a told connection: dropped */
	FERRY_CTR_H2_GAP_BRIDGED, /* HTTP/2 segment past a hole, the frame layer kept (ferry_h2_bridge) */
	FERRY_CTR_MAX,
};

/* --------------------------------------------------------------- latency */

/*
 * Log-linear histogram: bucket 0 holds samples under 1.024 us; then 16
 * buckets per power of two from 2^10 ns up (6.25% wide, at most ~3% error at
 * the midpoint, so a p99 is good to 5% even for a narrow distribution); the
 * last bucket (432) holds everything from its lower bound 2^36 * 31/16 ns
 * (133.1 s) up, 2^37 ns and more included. 3.5 KB per CPU each.
 */
#define FERRY_HIST_SUB_BITS 4
#define FERRY_HIST_MIN_SHIFT 10
#define FERRY_HIST_OCTAVES 27
#define FERRY_HIST_BUCKETS (1 + (FERRY_HIST_OCTAVES << FERRY_HIST_SUB_BITS))

enum ferry_hist_kind {
	FERRY_HIST_PREDICTOR = 1,
	FERRY_HIST_BACKEND = 2,
};

enum ferry_hist_metric {
	FERRY_LAT_REQUEST = 1, /* request first byte -> response first byte */
	FERRY_LAT_CONNECT = 2, /* SYN -> SYN-ACK */
};

struct ferry_hist_key {
	__u32 id; /* predictor or backend id */
	__u8 kind; /* enum ferry_hist_kind */
	__u8 metric; /* enum ferry_hist_metric */
	__u8 protocol; /* enum ferry_l7_proto; FERRY_L7_UNKNOWN for connect latency */
	__u8 pad;
};
_Static_assert(sizeof(struct ferry_hist_key) == 8, "ferry_hist_key layout");

struct ferry_hist {
	__u64 count;
	__u64 sum_ns;
	__u64 bucket[FERRY_HIST_BUCKETS];
};
_Static_assert(sizeof(struct ferry_hist) == 8 * (2 + FERRY_HIST_BUCKETS), "ferry_hist layout");

/* ------------------------------------------------------------ L7 state */

/*
 * ferry_l7: LRU hash keyed by the forward flow key (client -> VIP); what the
 * kernel knows of the requests on a TCP flow. The first fields are a contract
 * with user space (rebalancing reads inflight to find idle connections); the
 * layout after them belongs to the HTTP/2 tracker.
 */
#define FERRY_MAP_L7 "ferry_l7"

struct ferry_l7_head {
	__u8 protocol; /* enum ferry_l7_proto */
	__u8 flags; /* FERRY_L7_F_* */
	__u16 goaway; /* FERRY_L7_GOAWAY_*: rebalancing's GOAWAY on this flow (h2c) */
	__u32 inflight; /* requests or streams sent and not yet answered */
	__u64 requests; /* requests or streams answered */
	__u64 last_ns; /* last request or response seen */
};
_Static_assert(sizeof(struct ferry_l7_head) == 24, "ferry_l7_head layout");

#define FERRY_L7_F_UNSYNC (1U << 0) /* lost the frame layer: no longer measured */
#define FERRY_L7_F_CLASSIFIED (1U << 1) /* protocol was decided on the client's first payload */

/*
 * Rebalancing tells an h2c connection to go with an HTTP/2 GOAWAY written into
 * the backend's byte stream (docs/datapath.md, "Rebalancing"): either by the
 * reply path, appended to a backend segment (a connection that is never idle
 * at a pass: calls back to back), or by ferryd, a segment of its own into an
 * idle client socket. From then on the client's stream holds 32 bytes the
 * backend never sent, so both directions' payload past the frame is dropped
 * (it would land 32 bytes off, or run a call the client retries elsewhere)
 * until the iterator ends the socket. The iterator writes TELL and RAW, the
 * reply path TELL -> TOLD; goaway_seq (struct ferry_l7) before the state.
 */
#define FERRY_L7_GOAWAY_TELL 1 /* append one at the next frame boundary with no stream open */
#define FERRY_L7_GOAWAY_TOLD 2 /* appended at goaway_seq */
#define FERRY_L7_GOAWAY_RAW 3 /* ferryd's own segment goes in at goaway_seq */

/*
 * The frame either way (RFC 9113 6.8): stream 0, last-stream-id 0 (none of
 * the client's streams was processed: gRPC C-core retries on a new connection
 * any it opened meanwhile), NO_ERROR, and debug data for the client's logs.
 */
#define FERRY_GOAWAY_FRAME_LEN 32
#define FERRY_GOAWAY_FRAME                                                                        \
	{                                                                                         \
		0, 0, FERRY_GOAWAY_FRAME_LEN - 9, 0x7 /* GOAWAY */, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, \
			0, 0, 0, 'f', 'e', 'r', 'r', 'y', ' ', 'r', 'e', 'b', 'a', 'l', 'a', 'n', \
			'c', 'e'                                                                  \
	}

/*
 * The tracker's own state (bpf/observe.bpf.h). HTTP/2 frame headers are found
 * by TCP sequence number, per direction: hdr_seq is where the next frame header
 * starts; a header split across segments keeps its first hdr_have bytes in hdr
 * until the next segment completes it. Up to FERRY_L7_STREAMS streams awaiting
 * their response headers are timed at once; more are counted (streams_skipped).
 */
#define FERRY_L7_STREAMS 8

struct ferry_l7_dir {
	__u32 hdr_seq; /* sequence number of the next frame header's first byte */
	__u8 hdr_have; /* bytes of that header already seen (0..8) */
	__u8 synced; /* hdr_seq is valid */
	__u8 hdr[9];
	/*
	 * Searches of a segment past a hole for its first frame header
	 * (ferry_h2_bridge) not yet paid back by walked segments, at most
	 * FERRY_H2_SEARCHES: a peer cannot make every segment a search. This
	 * and walked were padding before.
	 */
	__u8 searches;
	/*
	 * Backend -> client: the largest segment payload seen (a GSO packet's
	 * gso_size), at most the path's MSS: a segment that the GOAWAY's 32 bytes
	 * keep within it fits the path (ferry_l7_tell).
	 */
	__u16 seg_max;
	__u16 walked; /* segments walked since a search was last paid back */
};
_Static_assert(sizeof(struct ferry_l7_dir) == 20, "ferry_l7_dir layout");
#define FERRY_H2_SEARCHES 8

struct ferry_l7 {
	struct ferry_l7_head head;
	__u64 start_ns; /* HTTP/1 and unknown: the request (exchange) being timed; 0: none */
	__u32 last_stream; /* highest client stream id seen: a larger one is a new stream */
	__u32 goaway_seq; /* FERRY_L7_GOAWAY_TOLD, _RAW: the backend's sequence number of the frame */
	struct ferry_l7_dir dir[2]; /* 0: client -> backend, 1: backend -> client */
	__u32 stream_id[FERRY_L7_STREAMS]; /* 0: free slot */
	__u64 stream_ns[FERRY_L7_STREAMS]; /* when the stream's client HEADERS went by */
};
_Static_assert(sizeof(struct ferry_l7) == 24 + 16 + 40 + 12 * FERRY_L7_STREAMS, "ferry_l7 layout");

/* ----------------------------------------------------------------- trace */

enum ferry_trace_reason {
	FERRY_TR_NEW_FLOW = 1,
	FERRY_TR_FLOW_HIT,
	FERRY_TR_FLOW_MISS,
	FERRY_TR_REPLY,
	FERRY_TR_DROP_NO_BACKEND,
	FERRY_TR_DROP_FRAGMENT,
	FERRY_TR_DROP_FIB,
};

struct ferry_trace_event {
	__u64 ts_ns;
	struct ferry_flow_key tuple; /* as received */
	__u32 svc_id;
	__u32 predictor_id;
	__u32 backend_id;
	__u32 ifindex;
	__u8 reason; /* enum ferry_trace_reason */
	__u8 hook; /* FERRY_HOOK_* */
	__u8 pad[6];
};
_Static_assert(sizeof(struct ferry_trace_event) == 72, "ferry_trace_event layout");

#define FERRY_HOOK_XDP 1
#define FERRY_HOOK_TC_INGRESS 2
#define FERRY_HOOK_TC_EGRESS 3

/* ---------------------------------------------- user-space-only metadata */

/*
 * These maps are written and read only by ferryd and ferryctl; they live in
 * bpffs so that ferryctl works while ferryd is down and a restarted ferryd
 * knows what it wrote. Strings are NUL-terminated and NUL-padded.
 */
#define FERRY_NAME_LEN 128
#define FERRY_PRED_NAME_LEN 64
#define FERRY_MAX_SVC_PREDICTORS 16

struct ferry_svc_meta {
	struct ferry_vip vip;
	__u32 npredictors;
	char deployment[FERRY_NAME_LEN]; /* "namespace/name" */
	__u32 predictor_ids[FERRY_MAX_SVC_PREDICTORS];
	__u64 table_generation; /* bumped at every table swap */
};
_Static_assert(sizeof(struct ferry_svc_meta) == 224, "ferry_svc_meta layout");

struct ferry_pred_meta {
	__u32 svc_id;
	__u32 flags; /* FERRY_PRED_F_* */
	__u32 weight_configured; /* ppm, from the manifest */
	__u32 weight_effective; /* ppm, what the table holds */
	__u32 weight_override; /* ppm, ferryctl's emergency override */
	__u32 backends_ready;
	__u32 backends_draining;
	__u32 weight_canary; /* ppm, set by canary analysis (FERRY_PRED_F_CANARY) */
	char name[FERRY_PRED_NAME_LEN];
	struct ferry_stats retired; /* totals of backends already deleted */
};
_Static_assert(sizeof(struct ferry_pred_meta) == 32 + 64 + sizeof(struct ferry_stats),
	       "ferry_pred_meta layout");

#define FERRY_PRED_F_OVERRIDE (1U << 0) /* weight_override is in force */
#define FERRY_PRED_F_SHADOW (1U << 1)
/*
 * weight_canary is in force: canary analysis set it (a rollback to 0 or a step). An SRE's
 * override (FERRY_PRED_F_OVERRIDE) wins over it while both are set.
 */
#define FERRY_PRED_F_CANARY (1U << 2)

struct ferry_link {
	char ifname[16];
	__u32 hooks; /* FERRY_LINK_* */
	__u32 reason; /* why: FERRY_LINK_WHY_* in bits 0-7, FERRY_TX_WHY_* in bits 8-15 */
};
_Static_assert(sizeof(struct ferry_link) == 24, "ferry_link layout");

#define FERRY_LINK_XDP_NATIVE (1U << 0)
#define FERRY_LINK_XDP_GENERIC (1U << 1)
#define FERRY_LINK_TC_FWD (1U << 2) /* forward program at TC ingress */
#define FERRY_LINK_TC_REPLY_IN (1U << 3) /* reply program at TC ingress */
#define FERRY_LINK_TC_REPLY_EG (1U << 4) /* reply program at TC egress */
#define FERRY_LINK_TCX (1U << 5) /* TC programs attached with tcx links */
#define FERRY_LINK_CLSACT_OWNED (1U << 6) /* ferry created the clsact qdisc */
#define FERRY_LINK_SOCK (1U << 7) /* connect() hooks on a cgroup (key 0) */
#define FERRY_LINK_POD (1U << 8) /* a pod's host-side veth (--pod-iface); read by TC */
#define FERRY_LINK_TX_PORT (1U << 9) /* in ferry_tx_ports: XDP redirects into it */

/* Why an --iface got the forward program at XDP or only at TC (ferry_link.reason & 0xff). */
#define FERRY_LINK_WHY_NONE 0
#define FERRY_LINK_WHY_FLAG 1 /* --attach xdp|tc said so */
#define FERRY_LINK_WHY_NATIVE 2 /* driver has native XDP (xdp-features) */
#define FERRY_LINK_WHY_NO_NATIVE 3 /* driver has no native XDP: generic XDP is slower than TC */
#define FERRY_LINK_WHY_VETH 4 /* veth, peer runs no XDP: skbs arrive, TC avoids the copy */
#define FERRY_LINK_WHY_VETH_PEER_XDP 5 /* veth whose peer runs XDP: frames arrive as XDP */
#define FERRY_LINK_WHY_NO_FEATURES 6 /* kernel reports no xdp-features (< 6.3): XDP as before */
#define FERRY_LINK_WHY_POD 7 /* --pod-iface: TC by design */
#define FERRY_LINK_WHY_REPLY 8 /* reply program where backends are routed */

/* Why an interface is in ferry_tx_ports ((ferry_link.reason >> 8) & 0xff). */
#define FERRY_TX_WHY_NONE 0
#define FERRY_TX_WHY_FLAG 1 /* --xdp-tx-iface */
#define FERRY_TX_WHY_NDO_XMIT 2 /* its xdp-features have NETDEV_XDP_ACT_NDO_XMIT */

/* ----------------------------------------------------------- rebalancing */

/*
 * ferry_sock_sel: socket-local storage (BPF_MAP_TYPE_SK_STORAGE): the connect
 * hook's choice for a host-network client, whose socket is connected to the
 * backend itself, so no flow entry names it. Written by ferry_sock.bpf.c, read
 * by the rebalance iterator; it lives and dies with its socket.
 */
#define FERRY_MAP_SOCK_SEL "ferry_sock_sel"

struct ferry_sock_sel {
	__u32 svc_id;
	__u32 predictor_id;
	__u32 backend_id;
	__u32 pad;
};
_Static_assert(sizeof(struct ferry_sock_sel) == 16, "ferry_sock_sel layout");

/*
 * One record per TCP socket ferry balanced, written by the rebalance
 * iterator (bpf/ferry_iter.bpf.c) to its seq_file and read by ferryd.
 * key is the forward flow key (client -> VIP) for a flow of the packet path,
 * or the socket's own tuple (client -> backend) for a connect-hook choice.
 */
struct ferry_rebal_sock {
	struct ferry_flow_key key;
	__u64 cookie;
	__u32 svc_id;
	__u32 predictor_id;
	__u32 backend_id;
	__u32 inflight; /* ferry_l7's count, when that map has an entry */
	__u64 requests; /* ferry_l7's count */
	__u8 origin; /* FERRY_RB_ORIGIN_* */
	__u8 verdict; /* FERRY_RB_* */
	__u8 busy; /* FERRY_RB_BUSY_*: why the socket is not idle (0: idle) */
	__u8 l7_protocol; /* enum ferry_l7_proto; FERRY_L7_UNKNOWN without an entry */
	__u8 l7_flags; /* FERRY_L7_F_* */
	__u8 tcp_flags; /* FERRY_RB_TCP_* */
	__u8 l7_goaway; /* FERRY_L7_GOAWAY_*: ferry_l7's, when that map has an entry */
	__u8 pad;
	/*
	 * What a forged segment into this socket needs (FERRY_RB_GOAWAY), as the
	 * socket sees it: the next byte it expects, the next it sends, and the
	 * timestamps a segment must carry to pass PAWS (RFC 7323).
	 */
	__u32 rcv_nxt;
	__u32 snd_nxt;
	__u32 ts_recent; /* the peer's last TSval: sent back as TSval, so PAWS accepts it */
	__u32 ts_ecr; /* rx_opt.rcv_tsecr: our own TSval the peer echoed last */
	__u32 window; /* snd_wnd >> snd_wscale: the window the peer advertised last, as sent */
	__u32 goaway_end_seq; /* FERRY_RB_TOLD: the sequence number just past the appended frame */
	/*
	 * FERRY_RB_DESTROYED after a GOAWAY: the socket's snd_una before the abort,
	 * the server's rcv_nxt when it discarded what the client sent since (its
	 * acknowledgements of the frame), so a RST there is exact (rebalance.c).
	 */
	__u32 snd_una;
	__u32 pad2;
};
_Static_assert(sizeof(struct ferry_rebal_sock) == 112, "ferry_rebal_sock layout");

#define FERRY_RB_TCP_TSTAMP (1U << 0) /* TCP timestamps negotiated: segments carry them */

#define FERRY_RB_ORIGIN_FLOW 1 /* ferry_flows (XDP/TC) */
#define FERRY_RB_ORIGIN_CONNECT 2 /* ferry_sock_sel (connect hook) */

#define FERRY_RB_SEEN 0 /* not marked, or its deadline has not come */
#define FERRY_RB_DESTROYED 1 /* marked, idle: ended with bpf_sock_destroy */
#define FERRY_RB_BUSY 2 /* marked, deadline passed, not idle: left alone this pass */
#define FERRY_RB_FAILED 3 /* bpf_sock_destroy returned an error */
#define FERRY_RB_GOAWAY 4 /* marked, due, idle, speaks h2c: left open for ferryd's GOAWAY */
#define FERRY_RB_GOAWAY_WAIT 5 /* a GOAWAY went in: the socket ends at a later pass */
#define FERRY_RB_TOLD 6 /* marked, h2c: the reply path appended a GOAWAY (goaway_end_seq) */

#define FERRY_RB_BUSY_STATE (1U << 0) /* not ESTABLISHED */
#define FERRY_RB_BUSY_SEND (1U << 1) /* bytes queued or unacknowledged */
#define FERRY_RB_BUSY_RECV (1U << 2) /* bytes received and not read */
#define FERRY_RB_BUSY_L7 (1U << 3) /* ferry_l7: a request or stream in flight */
#define FERRY_RB_BUSY_TURN (1U << 4) /* no L7 view: the client sent well after its last receipt */

/*
 * Value of the iterator's mark map (key: socket cookie): ferryd's decision.
 * Pinned (PIN/ferry_rb_marks, created by ferryd's iterator, not by the data
 * plane's objects) so that a ferryd restarted between a GOAWAY and the end of
 * its socket takes the mark over and ends it: nothing else would (rebalance.c).
 */
#define FERRY_MAP_RB_MARKS "ferry_rb_marks"
struct ferry_rebal_mark {
	__u64 deadline_ns; /* bpf_ktime_get_ns() after which the socket may end when idle */
	/*
	 * Set by ferryd once it delivered a GOAWAY into the socket: when, and the
	 * sequence number just past the frame. The socket then ends (phase 2) as soon
	 * as it left ESTABLISHED (the client closed it), or once the client read the
	 * frame (copied_seq reached goaway_end_seq) and FERRY_RB_GOAWAY_LINGER_NS
	 * passed, or at FERRY_RB_GOAWAY_LIMIT_NS whatever it did.
	 */
	__u64 goaway_ns; /* 0: no GOAWAY yet */
	__u32 goaway_end_seq;
	__u32 flags; /* FERRY_RB_MARK_* */
};
_Static_assert(sizeof(struct ferry_rebal_mark) == 24, "ferry_rebal_mark layout");

/* The service says h2c (ferry.io/protocol): a GOAWAY first even without ferry_l7's view. */
#define FERRY_RB_MARK_H2C (1U << 0)
/* ferryd cannot deliver a GOAWAY (no CAP_NET_RAW, no raw socket): abort as without one. */
#define FERRY_RB_MARK_ABORT (1U << 1)
/*
 * After a GOAWAY: the client must read it before its socket ends, or a call it
 * starts in between is written to a dead socket. gRPC C-core reads while any
 * call of the process polls, and at least every 5 s (its backup poller).
 */
#define FERRY_RB_GOAWAY_LINGER_NS 1000000000ULL
#define FERRY_RB_GOAWAY_LIMIT_NS 10000000000ULL

#endif /* FERRY_MAPS_H */
