/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The load balancer itself: one forward body for XDP and TC ingress and one
 * reply body for TC ingress and egress. Every function takes a constant
 * "hook" (FERRY_HOOK_*) that clang folds, so each program gets only its own
 * branch of the code without a second copy in the source. IPv4 and IPv6
 * share the body: addresses are always 4 words, IPv4 uses word 0.
 */
#ifndef FERRY_LB_BPF_H
#define FERRY_LB_BPF_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "ferry_maps.h"
#include "maps.bpf.h"
#include "parse.bpf.h"
#include "csum.bpf.h"
#include "hash.bpf.h"

#define FERRY_AF_INET_SOCK 2 /* AF_INET, for bpf_fib_lookup */
#define FERRY_AF_INET6_SOCK 10 /* AF_INET6 */

/*
 * XDP -> TC handoff: XDP rewrote the frame and found the next hop but cannot
 * XDP_REDIRECT into the egress device (a veth whose peer runs no XDP drops
 * redirected frames), so it leaves this in the metadata area and passes the
 * frame up; ferry_tc_fwd on the same interface redirects the skb.
 */
#define FERRY_META_MAGIC 0xfe77a11eU
#define FERRY_META_NEIGH 0x80000000U /* no neighbour yet: bpf_redirect_neigh */

struct ferry_xdp_meta {
	__u32 magic;
	__u32 ifindex; /* egress ifindex | FERRY_META_NEIGH */
};

/* How much of an skb must be linear for headers plus the first response bytes. */
#define FERRY_TC_PULL_LEN 192

/* udp_timeout_s 0 in ferry_config means this default. */
#define FERRY_UDP_TIMEOUT_DEFAULT_S 30

/*
 * The verdict for "not ours" at TC. TC_ACT_OK ends a cls_bpf filter chain;
 * user space may set TC_ACT_UNSPEC before load to let a following filter run.
 */
const volatile int ferry_tc_pass = TC_ACT_OK;

/* ------------------------------------------------------- hook accessors */

static __always_inline void *ferry_data(void *ctx, const int hook)
{
	if (hook == FERRY_HOOK_XDP)
		return (void *)(long)((struct xdp_md *)ctx)->data;
	return (void *)(long)((struct __sk_buff *)ctx)->data;
}

static __always_inline void *ferry_data_end(void *ctx, const int hook)
{
	if (hook == FERRY_HOOK_XDP)
		return (void *)(long)((struct xdp_md *)ctx)->data_end;
	return (void *)(long)((struct __sk_buff *)ctx)->data_end;
}

static __always_inline __u32 ferry_ifindex(void *ctx, const int hook)
{
	if (hook == FERRY_HOOK_XDP)
		return ((struct xdp_md *)ctx)->ingress_ifindex;
	return ((struct __sk_buff *)ctx)->ifindex;
}

static __always_inline int ferry_pass(const int hook)
{
	return hook == FERRY_HOOK_XDP ? XDP_PASS : ferry_tc_pass;
}

static __always_inline int ferry_drop(const int hook)
{
	return hook == FERRY_HOOK_XDP ? XDP_DROP : TC_ACT_SHOT;
}

/* Makes the headers linear; test_run and most stacks give linear headers already. */
static __always_inline void ferry_tc_pull(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 want = skb->len < FERRY_TC_PULL_LEN ? skb->len : FERRY_TC_PULL_LEN;

	if (data + want > data_end)
		bpf_skb_pull_data(skb, want);
}

/* ------------------------------------------------------------- telemetry */

/*
 * Not inlined: one copy of the ring buffer code however many decisions there
 * are. Four arguments, packed, keep its stack (the saved arguments) at 32
 * bytes: 6.1 rounds each frame up to 32 and caps the sum at 512.
 */
static __noinline int ferry_trace_emit(const struct ferry_flow_key *key, __u64 reason_hook_ifindex,
				       __u64 svc_predictor, __u32 backend_id)
{
	struct ferry_trace_event *ev;

	ev = bpf_ringbuf_reserve(&ferry_trace, sizeof(*ev), 0);
	if (!ev) {
		ferry_count(FERRY_CTR_TRACE_LOST);
		return 0;
	}
	ev->ts_ns = bpf_ktime_get_ns();
	__builtin_memcpy(&ev->tuple, key, sizeof(ev->tuple));
	ev->svc_id = svc_predictor >> 32;
	ev->predictor_id = (__u32)svc_predictor;
	ev->backend_id = backend_id;
	ev->ifindex = reason_hook_ifindex >> 32;
	ev->reason = reason_hook_ifindex & 0xff;
	ev->hook = (reason_hook_ifindex >> 8) & 0xff;
	__builtin_memset(ev->pad, 0, sizeof(ev->pad));
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

static __always_inline void ferry_trace_decision(void *ctx, const int hook,
						 const struct ferry_config *cfg,
						 const struct ferry_pkt *pkt, __u32 reason,
						 __u32 svc_id, __u32 predictor_id, __u32 backend_id)
{
	__u32 every = cfg->trace_every;

	if (!every || bpf_get_prandom_u32() % every)
		return;
	ferry_trace_emit(&pkt->key, ((__u64)ferry_ifindex(ctx, hook) << 32) | (hook << 8) | reason,
			 ((__u64)svc_id << 32) | predictor_id, backend_id);
}

/* floor(log2(v)) for v > 0; BPF has no count-leading-zeros instruction. */
static __always_inline __u32 ferry_log2(__u64 v)
{
	__u32 r = 0, s;

	s = (v > 0xffffffffULL) << 5;
	v >>= s;
	r |= s;
	s = (v > 0xffff) << 4;
	v >>= s;
	r |= s;
	s = (v > 0xff) << 3;
	v >>= s;
	r |= s;
	s = (v > 0xf) << 2;
	v >>= s;
	r |= s;
	s = (v > 0x3) << 1;
	v >>= s;
	r |= s;
	return r | (v >> 1);
}

/* The log-linear bucket described next to FERRY_HIST_BUCKETS. */
static __always_inline __u32 ferry_hist_bucket(__u64 ns)
{
	__u32 msb;

	if (ns < (1ULL << FERRY_HIST_MIN_SHIFT))
		return 0;
	msb = ferry_log2(ns);
	if (msb >= FERRY_HIST_MIN_SHIFT + FERRY_HIST_OCTAVES)
		return FERRY_HIST_BUCKETS - 1;
	return 1 + ((msb - FERRY_HIST_MIN_SHIFT) << FERRY_HIST_SUB_BITS) +
	       ((ns >> (msb - FERRY_HIST_SUB_BITS)) & ((1 << FERRY_HIST_SUB_BITS) - 1));
}

static __noinline __attribute__((unused)) int ferry_hist_record(__u32 id, __u32 kind_metric,
								__u64 ns)
{
	struct ferry_hist_key key = {
		.id = id,
		.kind = kind_metric & 0xff,
		.metric = kind_metric >> 8,
	};
	struct ferry_hist *hist;
	__u32 b;

	hist = bpf_map_lookup_elem(&ferry_latency, &key);
	if (!hist) {
		/*
		 * Histograms are made on first use: memory goes only to predictors
		 * and backends that carry sampled traffic (3.5 KB per CPU each).
		 */
		__u32 zero = 0;
		const struct ferry_hist *empty = bpf_map_lookup_elem(&ferry_hist_zero, &zero);

		if (empty)
			bpf_map_update_elem(&ferry_latency, &key, empty, BPF_NOEXIST);
		hist = bpf_map_lookup_elem(&ferry_latency, &key);
		if (!hist) {
			ferry_count(FERRY_CTR_HIST_MISS);
			return 0;
		}
	}
	b = ferry_hist_bucket(ns);
	if (b >= FERRY_HIST_BUCKETS) /* for the verifier */
		b = FERRY_HIST_BUCKETS - 1;
	hist->count += 1;
	hist->sum_ns += ns;
	hist->bucket[b] += 1;
	return 0;
}

/* Forward half of latency sampling: a request starts when the client sends payload. */
static __always_inline void ferry_fwd_latency(struct ferry_flow *flow, const struct ferry_pkt *pkt)
{
	__u8 flags = flow->flags;

	if (!pkt->payload_len || (flags & FERRY_FLOW_F_REQ_PENDING))
		return;
	/* Payload from the client also ends a handshake whose SYN-ACK we missed. */
	flow->pending_ns = bpf_ktime_get_ns();
	flow->flags = (flags & ~(FERRY_FLOW_F_SYN_PENDING | FERRY_FLOW_F_RESP_SEEN)) |
		      FERRY_FLOW_F_REQ_PENDING;
}

/* "HTTP/1.x NNN" -> its class; anything else (TLS, HTTP/2, gRPC) is unknown. */
static __always_inline __u32 ferry_http_class(void *ctx, const int hook,
					      const struct ferry_pkt *pkt)
{
	void *data = ferry_data(ctx, hook), *data_end = ferry_data_end(ctx, hook);
	const __u8 *p = data + (pkt->payload_off & 0xff);

	if (pkt->payload_len < 12 || (void *)(p + 12) > data_end)
		return FERRY_HTTP_UNKNOWN;
	if (p[0] != 'H' || p[1] != 'T' || p[2] != 'T' || p[3] != 'P' || p[4] != '/' ||
	    p[5] != '1' || p[6] != '.' || p[8] != ' ')
		return FERRY_HTTP_UNKNOWN;
	if (p[9] < '1' || p[9] > '5')
		return FERRY_HTTP_UNKNOWN;
	return p[9] - '1';
}

/* Reply half: SYN-ACK ends a connect, the first response payload ends a request. */
static __always_inline void ferry_reply_latency(void *ctx, const int hook, struct ferry_flow *flow,
						const struct ferry_pkt *pkt,
						struct ferry_stats *stats)
{
	__u8 flags = flow->flags;
	__u32 metric, class;
	__u64 delta;

	if ((flags & FERRY_FLOW_F_SYN_PENDING) &&
	    (pkt->tcp_flags & (FERRY_TCP_SYN | FERRY_TCP_ACK)) == (FERRY_TCP_SYN | FERRY_TCP_ACK)) {
		metric = FERRY_LAT_CONNECT;
		flow->flags = flags & ~FERRY_FLOW_F_SYN_PENDING;
	} else if ((flags & FERRY_FLOW_F_REQ_PENDING) && pkt->payload_len) {
		metric = FERRY_LAT_REQUEST;
		flow->flags = (flags & ~FERRY_FLOW_F_REQ_PENDING) | FERRY_FLOW_F_RESP_SEEN;
		class = ferry_http_class(ctx, hook, pkt);
		if (stats && class < FERRY_HTTP_CLASSES)
			stats->http[class] += 1;
	} else {
		return;
	}
	delta = bpf_ktime_get_ns() - flow->pending_ns;
	flow->pending_ns = 0;
	ferry_hist_record(flow->predictor_id, FERRY_HIST_PREDICTOR | (metric << 8), delta);
	ferry_hist_record(flow->backend_id, FERRY_HIST_BACKEND | (metric << 8), delta);
}

/* --------------------------------------------------------------- rewrite */

/*
 * Rewrites the destination (forward) or source (reply) address and port and
 * fixes the checksums. XDP updates them by hand: frames from a wire carry
 * full checksums. TC uses the csum helpers, which also handle the
 * CHECKSUM_PARTIAL skbs that local stacks (pods) send: there the L4 field
 * holds only the pseudo-header sum, and a by-hand update would corrupt it.
 */
static __always_inline int ferry_rewrite(void *ctx, const int hook, const struct ferry_pkt *pkt,
					 const bool src, const __be32 *addr, __be16 port)
{
	void *data = ferry_data(ctx, hook), *data_end = ferry_data_end(ctx, hook);
	__u32 l3 = pkt->l3_off & 0xff, l4 = pkt->l4_off & 0xff;
	const __be32 *old = src ? pkt->key.saddr : pkt->key.daddr;
	__be16 old_port = src ? pkt->key.sport : pkt->key.dport;
	bool v4 = pkt->key.family == FERRY_AF_INET;
	bool udp = pkt->key.proto == IPPROTO_UDP;
	__u32 csum_off =
		l4 + (udp ? offsetof(struct udphdr, check) : offsetof(struct tcphdr, check));
	__be16 *ports = data + l4;
	__be32 *a;
	__u64 diff;

	if (v4) {
		a = data + l3 +
		    (src ? offsetof(struct iphdr, saddr) : offsetof(struct iphdr, daddr));
		if ((void *)(a + 1) > data_end)
			return -1;
		a[0] = addr[0];
		diff = ferry_csum_diff32(0, old[0], addr[0]);
	} else {
		a = data + l3 +
		    (src ? offsetof(struct ipv6hdr, saddr) : offsetof(struct ipv6hdr, daddr));
		if ((void *)(a + 4) > data_end)
			return -1;
		a[0] = addr[0];
		a[1] = addr[1];
		a[2] = addr[2];
		a[3] = addr[3];
		diff = ferry_csum_diff32(0, old[0], addr[0]);
		diff = ferry_csum_diff32(diff, old[1], addr[1]);
		diff = ferry_csum_diff32(diff, old[2], addr[2]);
		diff = ferry_csum_diff32(diff, old[3], addr[3]);
	}
	if ((void *)(ports + 2) > data_end)
		return -1;
	ports[src ? 0 : 1] = port;

	if (hook == FERRY_HOOK_XDP) {
		__u16 *check = data + csum_off;
		__u16 sum;

		if (v4) {
			struct iphdr *iph = data + l3;

			if ((void *)(iph + 1) > data_end)
				return -1;
			iph->check = ferry_csum_apply(iph->check, diff);
		}
		if ((void *)(check + 1) > data_end)
			return -1;
		/* A zero UDP checksum means "none" and stays zero. */
		if (udp && *check == 0)
			return 0;
		sum = ferry_csum_apply(*check, ferry_csum_diff16(diff, old_port, port));
		if (udp && sum == 0)
			sum = 0xffff;
		*check = sum;
	} else {
		struct __sk_buff *skb = ctx;
		__u64 mangled0 = udp ? BPF_F_MARK_MANGLED_0 : 0;
		/* A size-0 replace takes a 32-bit checksum difference. */
		__u32 wdiff = ferry_csum_fold_wsum(diff);

		if (v4)
			bpf_l3_csum_replace(skb, l3 + offsetof(struct iphdr, check), 0, wdiff, 0);
		bpf_l4_csum_replace(skb, csum_off, 0, wdiff, BPF_F_PSEUDO_HDR | mangled0);
		bpf_l4_csum_replace(skb, csum_off, old_port, port, sizeof(port) | mangled0);
	}
	return 0;
}

/* ------------------------------------------------------------- next hop */

static __always_inline int ferry_fib(void *ctx, const int hook, const struct ferry_pkt *pkt,
				     const __be32 *saddr, const __be32 *daddr, __be16 sport,
				     __be16 dport, struct bpf_fib_lookup *fib)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->ifindex = ferry_ifindex(ctx, hook);
	fib->l4_protocol = pkt->key.proto;
	fib->sport = sport;
	fib->dport = dport;
	fib->tot_len = pkt->ip_len;
	if (pkt->key.family == FERRY_AF_INET) {
		fib->family = FERRY_AF_INET_SOCK;
		fib->ipv4_src = saddr[0];
		fib->ipv4_dst = daddr[0];
	} else {
		fib->family = FERRY_AF_INET6_SOCK;
		__builtin_memcpy(fib->ipv6_src, saddr, 16);
		__builtin_memcpy(fib->ipv6_dst, daddr, 16);
	}
	return bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
}

static __always_inline int ferry_xdp_handoff(struct xdp_md *ctx, __u32 ifindex)
{
	struct ferry_xdp_meta *meta;

	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(*meta)))
		goto stack;
	meta = (void *)(long)ctx->data_meta;
	if ((void *)(meta + 1) > (void *)(long)ctx->data)
		goto stack;
	meta->magic = FERRY_META_MAGIC;
	meta->ifindex = ifindex;
	ferry_count(FERRY_CTR_XDP_HANDOFF);
	return XDP_PASS;
stack:
	ferry_count(FERRY_CTR_FIB_STACK);
	return XDP_PASS;
}

/* Returns true and the verdict when XDP left a handoff in the metadata. */
static __always_inline bool ferry_tc_handoff(struct __sk_buff *skb, int *verdict)
{
	struct ferry_xdp_meta *meta = (void *)(long)skb->data_meta;
	__u32 ifindex;

	if ((void *)(meta + 1) > (void *)(long)skb->data || meta->magic != FERRY_META_MAGIC)
		return false;
	ifindex = meta->ifindex;
	if (ifindex & FERRY_META_NEIGH) {
		ferry_count(FERRY_CTR_REDIRECT_NEIGH);
		*verdict = bpf_redirect_neigh(ifindex & ~FERRY_META_NEIGH, NULL, 0, 0);
	} else {
		ferry_count(FERRY_CTR_REDIRECT);
		*verdict = bpf_redirect(ifindex, 0);
	}
	return true;
}

/* Acts on the fib lookup result for a rewritten packet. */
static __always_inline int ferry_send(void *ctx, const int hook, struct bpf_fib_lookup *fib, int rc)
{
	void *data, *data_end;
	struct ethhdr *eth;
	int act;

	switch (rc) {
	case BPF_FIB_LKUP_RET_SUCCESS:
		data = ferry_data(ctx, hook);
		data_end = ferry_data_end(ctx, hook);
		eth = data;
		if ((void *)(eth + 1) > data_end)
			return ferry_pass(hook);
		__builtin_memcpy(eth->h_dest, fib->dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, fib->smac, ETH_ALEN);
		if (hook == FERRY_HOOK_XDP) {
			/* Not a declared tx port: the lookup fails and returns XDP_PASS. */
			act = bpf_redirect_map(&ferry_tx_ports, fib->ifindex, XDP_PASS);
			if (act == XDP_REDIRECT) {
				ferry_count(FERRY_CTR_REDIRECT);
				return act;
			}
			return ferry_xdp_handoff(ctx, fib->ifindex);
		}
		ferry_count(FERRY_CTR_REDIRECT);
		return bpf_redirect(fib->ifindex, 0);
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		if (hook == FERRY_HOOK_XDP)
			return ferry_xdp_handoff(ctx, fib->ifindex | FERRY_META_NEIGH);
		ferry_count(FERRY_CTR_REDIRECT_NEIGH);
		return bpf_redirect_neigh(fib->ifindex, NULL, 0, 0);
	case BPF_FIB_LKUP_RET_BLACKHOLE:
	case BPF_FIB_LKUP_RET_UNREACHABLE:
	case BPF_FIB_LKUP_RET_PROHIBIT:
		ferry_count(FERRY_CTR_FIB_DROP);
		return ferry_drop(hook);
	default:
		/* Local backend (NOT_FWDED), forwarding off, MTU: the kernel routes it. */
		ferry_count(FERRY_CTR_FIB_STACK);
		return ferry_pass(hook);
	}
}

static __always_inline bool ferry_fib_drops(int rc)
{
	return rc == BPF_FIB_LKUP_RET_BLACKHOLE || rc == BPF_FIB_LKUP_RET_UNREACHABLE ||
	       rc == BPF_FIB_LKUP_RET_PROHIBIT;
}

/*
 * Rewrites the destination to the backend and sends the packet on. flow,
 * when not NULL, is the live flow entry: its cached next hop spares the fib
 * lookup, and a fresh successful lookup refreshes it.
 */
static __always_inline int ferry_fwd_xmit(void *ctx, const int hook, const struct ferry_config *cfg,
					  const struct ferry_pkt *pkt, __u32 backend_id,
					  const __be32 *addr, __be16 port, struct ferry_flow *flow)
{
	struct bpf_fib_lookup fib;
	__u32 in_ifindex;
	int rc;

	if (ferry_rewrite(ctx, hook, pkt, false, addr, port))
		return ferry_pass(hook);
	/* The fib result is for an untagged frame; let the stack handle VLANs. */
	if (pkt->vlan) {
		ferry_count(FERRY_CTR_FIB_STACK);
		return ferry_pass(hook);
	}
	in_ifindex = ferry_ifindex(ctx, hook);
	if (flow && flow->nh_ifindex && flow->nh_in_ifindex == in_ifindex &&
	    flow->last_ns < flow->nh_expires_ns) {
		/* ferry_send() reads only these three fields on success. */
		fib.ifindex = flow->nh_ifindex;
		__builtin_memcpy(fib.dmac, flow->nh_dmac, ETH_ALEN);
		__builtin_memcpy(fib.smac, flow->nh_smac, ETH_ALEN);
		return ferry_send(ctx, hook, &fib, BPF_FIB_LKUP_RET_SUCCESS);
	}
	rc = ferry_fib(ctx, hook, pkt, pkt->key.saddr, addr, pkt->key.sport, port, &fib);
	if (flow && rc == BPF_FIB_LKUP_RET_SUCCESS) {
		flow->nh_ifindex = fib.ifindex;
		flow->nh_in_ifindex = in_ifindex;
		__builtin_memcpy(flow->nh_dmac, fib.dmac, ETH_ALEN);
		__builtin_memcpy(flow->nh_smac, fib.smac, ETH_ALEN);
		flow->nh_expires_ns = flow->last_ns + FERRY_NH_TTL_NS;
	}
	if (ferry_fib_drops(rc))
		ferry_trace_decision(ctx, hook, cfg, pkt, FERRY_TR_DROP_FIB, 0, 0, backend_id);
	return ferry_send(ctx, hook, &fib, rc);
}

/* --------------------------------------------------------------- forward */

static __always_inline void ferry_stats_fwd(__u32 backend_id, __u32 len, __u32 new_flow, __u32 miss)
{
	struct ferry_stats *st = bpf_map_lookup_elem(&ferry_stats, &backend_id);

	if (!st)
		return;
	st->fwd_packets += 1;
	st->fwd_bytes += len;
	st->new_flows += new_flow;
	st->flow_misses += miss;
}

/* The client retransmitted its SYN: the backend did not answer the first in time. */
static __always_inline void ferry_stats_syn_timeout(__u32 backend_id)
{
	struct ferry_stats *st = bpf_map_lookup_elem(&ferry_stats, &backend_id);

	if (st)
		st->syn_timeouts += 1;
}

/*
 * Flow counters are plain adds, not atomics: a flow's packets arrive on one
 * CPU (RSS) and a lost increment under a race only skews a statistic.
 */
static __always_inline int ferry_fwd_established(void *ctx, const int hook,
						 const struct ferry_config *cfg,
						 const struct ferry_pkt *pkt,
						 struct ferry_flow *flow)
{
	__u32 backend_id = flow->backend_id;

	flow->last_ns = bpf_ktime_get_coarse_ns();
	flow->packets += 1;
	flow->bytes += pkt->len;
	/* Written only when it changes: the cache line is shared with other CPUs. */
	if ((pkt->tcp_flags & (FERRY_TCP_FIN | FERRY_TCP_RST)) &&
	    !(flow->flags & FERRY_FLOW_F_CLOSING))
		flow->flags |= FERRY_FLOW_F_CLOSING;
	if (flow->flags & FERRY_FLOW_F_SAMPLED)
		ferry_fwd_latency(flow, pkt);
	ferry_stats_fwd(backend_id, pkt->len, 0, 0);
	ferry_trace_decision(ctx, hook, cfg, pkt, FERRY_TR_FLOW_HIT, flow->svc_id,
			     flow->predictor_id, backend_id);
	return ferry_fwd_xmit(ctx, hook, cfg, pkt, backend_id, flow->backend_addr,
			      flow->backend_port, flow);
}

static __always_inline bool ferry_sampled(__u32 hash, __u32 every)
{
	if (every <= 1)
		return every == 1;
	return (hash >> 8) % every == 0;
}

/*
 * Picks a backend for a new connection (or a flow-table miss) and records the flow.
 * The forward and reverse entries share stack space (a union): Linux 6.1 caps
 * a program's stack plus its deepest subprogram's at 512 bytes.
 */
static __always_inline int ferry_fwd_new(void *ctx, const int hook, const struct ferry_config *cfg,
					 const struct ferry_pkt *pkt,
					 const struct ferry_service *svc, __u32 reason)
{
	union {
		struct ferry_flow fwd;
		struct {
			struct ferry_flow_key key;
			struct ferry_rflow val;
		} rev;
	} e;
	const struct ferry_backend *be;
	struct ferry_svc_stats *sst;
	__u32 svc_id = svc->id, table_size = svc->table_size;
	__u32 hash, slot, backend_id, predictor_id, miss = reason == FERRY_TR_FLOW_MISS;
	__u32 *id;
	void *table;
	__u64 now;
	__u8 flags = 0;

	hash = ferry_flow_hash(&pkt->key, cfg->hash_seed, svc->flags & FERRY_SVC_F_HASH_SRC_ADDR);
	if (!table_size)
		goto no_backend;
	slot = hash % table_size;
	table = bpf_map_lookup_elem(&ferry_tables, &svc_id);
	if (!table)
		goto no_backend;
	id = bpf_map_lookup_elem(table, &slot);
	if (!id || !*id)
		goto no_backend;
	backend_id = *id;
	be = bpf_map_lookup_elem(&ferry_backends, &backend_id);
	if (!be || be->family != pkt->key.family)
		goto no_backend;
	predictor_id = be->predictor_id;

	__builtin_memset(&e, 0, sizeof(e));
	now = bpf_ktime_get_coarse_ns();
	__builtin_memcpy(e.fwd.backend_addr, be->addr, sizeof(e.fwd.backend_addr));
	e.fwd.backend_port = be->port;
	e.fwd.family = pkt->key.family;
	e.fwd.backend_id = backend_id;
	e.fwd.predictor_id = predictor_id;
	e.fwd.svc_id = svc_id;
	e.fwd.created_ns = now;
	e.fwd.last_ns = now;
	e.fwd.packets = 1;
	e.fwd.bytes = pkt->len;
	if (pkt->tcp_flags & (FERRY_TCP_FIN | FERRY_TCP_RST))
		e.fwd.flags |= FERRY_FLOW_F_CLOSING;
	/* On every flow, sampled or not: a second SYN before the SYN-ACK is a timeout. */
	if (pkt->tcp_flags & FERRY_TCP_SYN)
		e.fwd.flags |= FERRY_FLOW_F_SYN_PENDING;
	if (ferry_sampled(hash, svc->sample_every)) {
		e.fwd.flags |= FERRY_FLOW_F_SAMPLED;
		if (pkt->tcp_flags & FERRY_TCP_SYN)
			e.fwd.pending_ns = bpf_ktime_get_ns();
		else
			ferry_fwd_latency(&e.fwd, pkt);
	}
	flags = e.fwd.flags;
	if (bpf_map_update_elem(&ferry_flows, &pkt->key, &e.fwd, BPF_ANY))
		ferry_count(FERRY_CTR_FLOW_FULL);

	/* The reply's key: backend -> client, as it will arrive. */
	__builtin_memset(&e, 0, sizeof(e));
	__builtin_memcpy(e.rev.key.saddr, be->addr, sizeof(e.rev.key.saddr));
	__builtin_memcpy(e.rev.key.daddr, pkt->key.saddr, sizeof(e.rev.key.daddr));
	e.rev.key.sport = be->port;
	e.rev.key.dport = pkt->key.sport;
	e.rev.key.proto = pkt->key.proto;
	e.rev.key.family = pkt->key.family;
	__builtin_memcpy(e.rev.val.vip_addr, pkt->key.daddr, sizeof(e.rev.val.vip_addr));
	e.rev.val.vip_port = pkt->key.dport;
	e.rev.val.family = pkt->key.family;
	e.rev.val.flags = flags;
	e.rev.val.backend_id = backend_id;
	__builtin_memcpy(&e.rev.val.fwd, &pkt->key, sizeof(e.rev.val.fwd));
	if (bpf_map_update_elem(&ferry_rflows, &e.rev.key, &e.rev.val, BPF_ANY))
		ferry_count(FERRY_CTR_FLOW_FULL);

	if (miss)
		ferry_count(FERRY_CTR_FLOW_MISS);
	ferry_stats_fwd(backend_id, pkt->len, 1, miss);
	ferry_trace_decision(ctx, hook, cfg, pkt, reason, svc_id, predictor_id, backend_id);
	return ferry_fwd_xmit(ctx, hook, cfg, pkt, backend_id, be->addr, be->port, NULL);

no_backend:
	ferry_count(FERRY_CTR_NO_BACKEND);
	sst = bpf_map_lookup_elem(&ferry_svc_stats, &svc_id);
	if (sst)
		sst->no_backend += 1;
	ferry_trace_decision(ctx, hook, cfg, pkt, FERRY_TR_DROP_NO_BACKEND, svc_id, 0, 0);
	return ferry_drop(hook);
}

/* The address-only marker entry of pkt's destination, if it is a VIP address. */
static __always_inline const struct ferry_service *ferry_vip_marker(const struct ferry_pkt *pkt)
{
	struct ferry_vip vip = {};

	__builtin_memcpy(vip.addr, pkt->key.daddr, sizeof(vip.addr));
	vip.family = pkt->key.family;
	return bpf_map_lookup_elem(&ferry_services, &vip);
}

/* Packets that did not parse as TCP/UDP: pass, except fragments to a VIP address. */
static __always_inline int ferry_fwd_unparsed(void *ctx, const int hook,
					      const struct ferry_pkt *pkt, int rc)
{
	const struct ferry_service *marker;
	struct ferry_svc_stats *sst;
	struct ferry_config *cfg;
	__u32 svc_id, zero = 0;

	switch (rc) {
	case FERRY_PARSE_MALFORMED:
		ferry_count(FERRY_CTR_MALFORMED);
		return ferry_pass(hook);
	case FERRY_PARSE_IPV6_EXT:
		ferry_count(FERRY_CTR_IPV6_EXT);
		return ferry_pass(hook);
	case FERRY_PARSE_FRAG:
		/* Later fragments carry no ports: ferry cannot balance them, so it drops them. */
		marker = ferry_vip_marker(pkt);
		if (!marker)
			return ferry_pass(hook);
		svc_id = marker->id;
		ferry_count(FERRY_CTR_FRAGMENT);
		sst = bpf_map_lookup_elem(&ferry_svc_stats, &svc_id);
		if (sst)
			sst->fragments += 1;
		cfg = bpf_map_lookup_elem(&ferry_config, &zero);
		if (cfg)
			ferry_trace_decision(ctx, hook, cfg, pkt, FERRY_TR_DROP_FRAGMENT, svc_id, 0,
					     0);
		return ferry_drop(hook);
	default:
		return ferry_pass(hook);
	}
}

static __always_inline int ferry_fwd(void *ctx, const int hook)
{
	const struct ferry_service *svc;
	struct ferry_pkt pkt = {};
	struct ferry_config *cfg;
	struct ferry_flow *flow;
	struct ferry_vip vip;
	__u32 zero = 0, reason, timeout;
	int rc;

	if (hook != FERRY_HOOK_XDP) {
		if (ferry_tc_handoff(ctx, &rc))
			return rc;
		ferry_tc_pull(ctx);
	}
	rc = ferry_parse(ferry_data(ctx, hook), ferry_data_end(ctx, hook), &pkt);
	if (rc != FERRY_PARSE_OK)
		return ferry_fwd_unparsed(ctx, hook, &pkt, rc);
	if (hook == FERRY_HOOK_XDP)
		pkt.len = ferry_data_end(ctx, hook) - ferry_data(ctx, hook);
	else
		pkt.len = ((struct __sk_buff *)ctx)->len;
	cfg = bpf_map_lookup_elem(&ferry_config, &zero);
	if (!cfg)
		return ferry_pass(hook);

	/* Established TCP first: one lookup, no service lookup. */
	reason = FERRY_TR_NEW_FLOW;
	if (pkt.key.proto == IPPROTO_TCP &&
	    (pkt.tcp_flags & (FERRY_TCP_SYN | FERRY_TCP_ACK)) != FERRY_TCP_SYN) {
		flow = bpf_map_lookup_elem(&ferry_flows, &pkt.key);
		if (flow)
			return ferry_fwd_established(ctx, hook, cfg, &pkt, flow);
		/*
		 * Most such packets are simply not ours: the address marker
		 * tells in one lookup, instead of a service and a marker lookup.
		 */
		if (!ferry_vip_marker(&pkt))
			return ferry_pass(hook);
		reason = FERRY_TR_FLOW_MISS;
	}

	__builtin_memcpy(vip.addr, pkt.key.daddr, sizeof(vip.addr));
	vip.port = pkt.key.dport;
	vip.proto = pkt.key.proto;
	vip.family = pkt.key.family;
	svc = bpf_map_lookup_elem(&ferry_services, &vip);
	if (!svc) {
		/* A flow miss already found the marker. */
		if (reason == FERRY_TR_FLOW_MISS || ferry_vip_marker(&pkt))
			ferry_count(FERRY_CTR_VIP_PORT_MISS);
		return ferry_pass(hook);
	}

	if (reason == FERRY_TR_NEW_FLOW) {
		/* A SYN reuses its flow unless the old connection on this port closed. */
		flow = bpf_map_lookup_elem(&ferry_flows, &pkt.key);
		if (flow) {
			if (pkt.key.proto == IPPROTO_TCP) {
				if (!(flow->flags & FERRY_FLOW_F_CLOSING)) {
					if (flow->flags & FERRY_FLOW_F_SYN_PENDING)
						ferry_stats_syn_timeout(flow->backend_id);
					return ferry_fwd_established(ctx, hook, cfg, &pkt, flow);
				}
			} else {
				timeout = cfg->udp_timeout_s ?: FERRY_UDP_TIMEOUT_DEFAULT_S;
				if (bpf_ktime_get_coarse_ns() - flow->last_ns <=
				    (__u64)timeout * 1000000000ULL)
					return ferry_fwd_established(ctx, hook, cfg, &pkt, flow);
			}
		}
	}
	return ferry_fwd_new(ctx, hook, cfg, &pkt, svc, reason);
}

/* ----------------------------------------------------------------- reply */

static __always_inline int ferry_reply(struct __sk_buff *skb, const int hook)
{
	struct bpf_fib_lookup fib;
	struct ferry_pkt pkt = {};
	struct ferry_rflow *rflow;
	struct ferry_config *cfg;
	struct ferry_stats *st;
	struct ferry_flow *flow;
	__u32 zero = 0, backend_id, in_ifindex;
	__u64 now;
	bool synack;
	int rc;

	ferry_tc_pull(skb);
	if (ferry_parse(ferry_data(skb, hook), ferry_data_end(skb, hook), &pkt) != FERRY_PARSE_OK)
		return ferry_pass(hook);
	rflow = bpf_map_lookup_elem(&ferry_rflows, &pkt.key);
	if (!rflow)
		return ferry_pass(hook);
	pkt.len = skb->len;
	backend_id = rflow->backend_id;
	rflow->packets += 1;
	rflow->bytes += pkt.len;
	ferry_count(FERRY_CTR_REPLY_NAT);
	st = bpf_map_lookup_elem(&ferry_stats, &backend_id);
	if (st) {
		st->rev_packets += 1;
		st->rev_bytes += pkt.len;
		if (pkt.tcp_flags & FERRY_TCP_RST)
			st->resets += 1;
	}
	if ((pkt.tcp_flags & (FERRY_TCP_FIN | FERRY_TCP_RST)) &&
	    !(rflow->flags & FERRY_FLOW_F_CLOSING))
		rflow->flags |= FERRY_FLOW_F_CLOSING;
	synack = (pkt.tcp_flags & (FERRY_TCP_SYN | FERRY_TCP_ACK)) ==
		 (FERRY_TCP_SYN | FERRY_TCP_ACK);
	/*
	 * The forward entry is needed once or twice per connection, and for the
	 * payload of a sampled flow (a response may start): one more lookup per
	 * such packet, about 30 ns (make bench: tc_reply_payload_v4_sampled).
	 */
	if ((pkt.tcp_flags & FERRY_TCP_RST) || synack ||
	    ((rflow->flags & FERRY_FLOW_F_SAMPLED) && pkt.payload_len)) {
		flow = bpf_map_lookup_elem(&ferry_flows, &rflow->fwd);
		if (flow) {
			/* A reset by the backend ends the flow: the next SYN picks anew. */
			if ((pkt.tcp_flags & FERRY_TCP_RST) &&
			    !(flow->flags & FERRY_FLOW_F_CLOSING))
				flow->flags |= FERRY_FLOW_F_CLOSING;
			if (flow->flags & FERRY_FLOW_F_SAMPLED)
				ferry_reply_latency(skb, hook, flow, &pkt, st);
			else if (synack && (flow->flags & FERRY_FLOW_F_SYN_PENDING))
				flow->flags &= ~FERRY_FLOW_F_SYN_PENDING;
		}
	}
	cfg = bpf_map_lookup_elem(&ferry_config, &zero);
	if (cfg)
		ferry_trace_decision(skb, hook, cfg, &pkt, FERRY_TR_REPLY, 0, 0, backend_id);

	if (ferry_rewrite(skb, hook, &pkt, true, rflow->vip_addr, rflow->vip_port))
		return ferry_pass(hook);
	if (hook == FERRY_HOOK_TC_EGRESS || pkt.vlan)
		return ferry_pass(hook);
	/* The next-hop cache, as on the forward path (struct ferry_flow). */
	now = bpf_ktime_get_coarse_ns();
	in_ifindex = ferry_ifindex(skb, hook);
	if (rflow->nh_ifindex && rflow->nh_in_ifindex == in_ifindex && now < rflow->nh_expires_ns) {
		fib.ifindex = rflow->nh_ifindex;
		__builtin_memcpy(fib.dmac, rflow->nh_dmac, ETH_ALEN);
		__builtin_memcpy(fib.smac, rflow->nh_smac, ETH_ALEN);
		return ferry_send(skb, hook, &fib, BPF_FIB_LKUP_RET_SUCCESS);
	}
	rc = ferry_fib(skb, hook, &pkt, rflow->vip_addr, pkt.key.daddr, rflow->vip_port,
		       pkt.key.dport, &fib);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		rflow->nh_ifindex = fib.ifindex;
		rflow->nh_in_ifindex = in_ifindex;
		__builtin_memcpy(rflow->nh_dmac, fib.dmac, ETH_ALEN);
		__builtin_memcpy(rflow->nh_smac, fib.smac, ETH_ALEN);
		rflow->nh_expires_ns = now + FERRY_NH_TTL_NS;
	}
	return ferry_send(skb, hook, &fib, rc);
}

#endif /* FERRY_LB_BPF_H */
