/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The ABI between ferry's BPF programs and user space: map names, key and
 * value layouts, flag bits and limits. Both sides include this file; it
 * includes nothing and uses only fixed-width kernel types, so the includer
 * must have __u8..__u64, __be16 and __be32 in scope (<linux/types.h> in user
 * space, <linux/bpf.h> in BPF code).
 *
 * Any change to a layout below bumps FERRY_ABI_VERSION. ferryd migrates pins
 * of the version before (user/kernel/migrate.c: flows, overrides and other
 * user-space metadata carried, the rest created afresh) and refuses any other
 * version instead of misreading it.
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
#define FERRY_MAP_EFLOWS "ferry_eflows"
#define FERRY_MAP_ERFLOWS "ferry_erflows"
#define FERRY_MAP_NEW_RATE "ferry_new_rate"

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

/* Lookup table sizes: a prime, so that every Maglev skip is coprime with it. */
#define FERRY_TABLE_SIZE_DEFAULT 16381
#define FERRY_TABLE_SIZE_MIN 7
#define FERRY_TABLE_SIZE_MAX 1048573

#define FERRY_AF_INET 4
#define FERRY_AF_INET6 6

/* How many table slots a hairpin client (a backend calling its own VIP) tries before it
 * takes itself; tests mirror the rule. */
#define FERRY_HAIRPIN_TRIES 8

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
	__u32 table_size; /* slots in this service's inner table */
	__u32 sample_every; /* latency sampling: 0 off, 1 every flow, N one flow in N */
};
_Static_assert(sizeof(struct ferry_service) == 16, "ferry_service layout");

#define FERRY_SVC_F_HASH_SRC_ADDR (1U << 0) /* hash the client address only */
#define FERRY_SVC_F_ADDR_MARKER (1U << 1) /* address-only marker entry */
/* ferry.io/protocol: without either bit the kernel recognises HTTP/2 by its preface (auto). */
#define FERRY_SVC_F_PROTO_HTTP1 (1U << 2) /* measure as HTTP/1.x only */
#define FERRY_SVC_F_PROTO_H2C (1U << 3) /* measure as clear-text HTTP/2 from the first byte */

/*
 * ferry_tables: an array of maps indexed by service id; each inner map is an
 * array of table_size __u32 backend ids (0: no backend). A service's table is
 * replaced by swapping the inner map, so a packet sees one table or the other.
 * Inner maps must be created with exactly these flags (the kernel compares
 * them with the template's): any size per service, filled through mmap.
 * The names come from <linux/bpf.h>, which every includer has.
 */
#define FERRY_TABLE_MAP_FLAGS (BPF_F_INNER_MAP | BPF_F_MMAPABLE)

/* -------------------------------------------------------------- backends */

struct ferry_backend {
	__be32 addr[4];
	__be16 port;
	__u8 family;
	__u8 state; /* FERRY_BE_* */
	__u32 predictor_id;
	__u32 svc_id;
	__u32 flags; /* FERRY_BE_F_*: operator overrides, read by user space only */
};
_Static_assert(sizeof(struct ferry_backend) == 32, "ferry_backend layout");

#define FERRY_BE_F_ADMIN_DRAIN (1U << 0) /* 'ferryctl drain': out of the table until undrain */

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
#define FERRY_FLOW_F_SYNACK (1U << 6) /* embryonic: the SYN-ACK passed, ack_expect is set */

/*
 * ferry_new_rate: per-CPU, indexed by service id; the new-flow rate guard's
 * one-second window.
 */
struct ferry_new_rate {
	__u64 window_ns; /* start of the current window */
	__u64 count; /* new flows inserted in it */
};
_Static_assert(sizeof(struct ferry_new_rate) == 16, "ferry_new_rate layout");

/* ----------------------------------------------------------------- stats */

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
};
_Static_assert(sizeof(struct ferry_stats) == 112, "ferry_stats layout");

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
	FERRY_CTR_EMBRYONIC_NEW, /* embryonic flow created (SYN, pickup or first datagram) */
	FERRY_CTR_EMBRYONIC_PROMOTED, /* embryonic flow confirmed */
	FERRY_CTR_EMBRYONIC_DROPPED, /* embryonic flow dropped: the backend reset it */
	FERRY_CTR_RATE_SKIPPED, /* new flow past the per-CPU rate guard: forwarded, not stored */
	FERRY_CTR_REPLY_CLASH, /* reply key held by a live flow of another VIP: refused */
	FERRY_CTR_MAX,
};

/* --------------------------------------------------------------- latency */

/*
 * Log-linear histogram: bucket 0 holds samples under 1.024 us; then 16
 * buckets per power of two from 2^10 ns up (6.25% wide, at most ~3% error at
 * the midpoint, so a p99 is good to 5% even for a narrow distribution); the
 * last bucket holds everything from 2^37 ns (137 s) up. 3.5 KB per CPU each.
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
	__u8 pad[2];
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

enum ferry_l7_proto {
	FERRY_L7_UNKNOWN = 0, /* nothing seen yet, or not HTTP */
	FERRY_L7_HTTP1 = 1,
	FERRY_L7_H2C = 2,
};

struct ferry_l7_head {
	__u8 protocol; /* enum ferry_l7_proto */
	__u8 flags; /* FERRY_L7_F_* */
	__u16 pad;
	__u32 inflight; /* requests or streams sent and not yet answered */
	__u64 requests; /* requests or streams answered */
	__u64 last_ns; /* last request or response seen */
};
_Static_assert(sizeof(struct ferry_l7_head) == 24, "ferry_l7_head layout");

#define FERRY_L7_F_UNSYNC (1U << 0) /* lost the frame layer: no longer measured */

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
_Static_assert(sizeof(struct ferry_pred_meta) == 32 + 64 + 112, "ferry_pred_meta layout");

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
	__u32 pad;
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

#endif /* FERRY_MAPS_H */
