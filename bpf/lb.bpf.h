/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The load balancer's flow logic: one forward body for XDP and TC ingress
 * and one reply body for TC ingress and egress, built from one header per
 * concern: parse (headers -> 5-tuple), select (backend choice), nat
 * (rewrite + checksums), nexthop (fib, next-hop cache, transmit, XDP -> TC
 * handoff) and observe (stats, histograms, trace). Every function takes a
 * constant "hook" (FERRY_HOOK_*) that clang folds, so each program gets only
 * its own branch of the code without a second copy in the source. IPv4 and
 * IPv6 share the body: addresses are always 4 words, IPv4 uses word 0.
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
#include "hook.bpf.h"
#include "parse.bpf.h"
#include "select.bpf.h"
#include "nat.bpf.h"
#include "nexthop.bpf.h"
#include "observe.bpf.h"
#include "l7.bpf.h"
#include "reject.bpf.h"

/* How stale the forward entry's last_ns may get before a reply refreshes it. */
#define FERRY_REPLY_TOUCH_NS 1000000000ULL

/* udp_timeout_s 0 in ferry_config means this default. */
#define FERRY_UDP_TIMEOUT_DEFAULT_S 30

/* --------------------------------------------------------------- forward */

/*
 * The two halves of a flow live in two LRU maps that evict independently.
 * Either half can be rebuilt from the other: the forward key holds client
 * and VIP and its value the backend; the reply key holds backend and client
 * and its value the VIP and the forward key. These rebuild the missing half
 * (BPF_NOEXIST: a concurrent rebuild on another CPU wins, with the same
 * content). Not inlined: whatever they need stays out of the callers'
 * frames, which every kernel caps with their subprograms' at 512 bytes.
 */
/* A reply entry being built: too big for the XDP program's stack (see below). */
struct ferry_rflow_scratch {
	struct ferry_flow_key key;
	struct ferry_rflow val;
};

/* Object-local, not pinned: scratch space only, nothing survives a call. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ferry_rflow_scratch);
} ferry_rflow_tmp SEC(".maps");

/*
 * Runs on every established forward packet, so it must not add stack: the
 * XDP program with ferry_fwd_new's frame is near the 512-byte cap, and the
 * reply entry (152 bytes with its key) is built in a per-CPU scratch value.
 */
static __noinline int ferry_rflow_restore(const struct ferry_flow_key *fwd,
					  const struct ferry_flow *flow)
{
	struct ferry_rflow_scratch *tmp;
	__u32 zero = 0;

	tmp = bpf_map_lookup_elem(&ferry_rflow_tmp, &zero);
	if (!tmp)
		return 0;
	__builtin_memset(&tmp->key, 0, sizeof(tmp->key));
	__builtin_memcpy(tmp->key.saddr, flow->backend_addr, sizeof(tmp->key.saddr));
	__builtin_memcpy(tmp->key.daddr, fwd->saddr, sizeof(tmp->key.daddr));
	tmp->key.sport = flow->backend_port;
	tmp->key.dport = fwd->sport;
	tmp->key.proto = fwd->proto;
	tmp->key.family = fwd->family;
	if (bpf_map_lookup_elem(&ferry_rflows, &tmp->key))
		return 0;
	__builtin_memset(&tmp->val, 0, sizeof(tmp->val));
	__builtin_memcpy(tmp->val.vip_addr, fwd->daddr, sizeof(tmp->val.vip_addr));
	tmp->val.vip_port = fwd->dport;
	tmp->val.family = fwd->family;
	tmp->val.flags = flow->flags;
	tmp->val.backend_id = flow->backend_id;
	__builtin_memcpy(&tmp->val.fwd, fwd, sizeof(tmp->val.fwd));
	if (bpf_map_update_elem(&ferry_rflows, &tmp->key, &tmp->val, BPF_NOEXIST))
		return 0;
	ferry_count(FERRY_CTR_FLOW_RESTORED);
	return 0;
}

static __noinline int ferry_flow_restore(const struct ferry_rflow *rflow,
					 const struct ferry_flow_key *reply)
{
	const struct ferry_backend *be;
	struct ferry_flow val = {};
	__u32 backend_id = rflow->backend_id;
	__u64 now = bpf_ktime_get_coarse_ns();

	__builtin_memcpy(val.backend_addr, reply->saddr, sizeof(val.backend_addr));
	val.backend_port = reply->sport;
	val.family = reply->family;
	/* Timing in flight is lost with the entry. */
	val.flags = rflow->flags & (FERRY_FLOW_F_SAMPLED | FERRY_FLOW_F_CLOSING);
	val.backend_id = backend_id;
	be = bpf_map_lookup_elem(&ferry_backends, &backend_id);
	if (be) {
		val.predictor_id = be->predictor_id;
		val.svc_id = be->svc_id;
	}
	val.created_ns = now;
	val.last_ns = now;
	if (bpf_map_update_elem(&ferry_flows, &rflow->fwd, &val, BPF_NOEXIST))
		return 0;
	ferry_count(FERRY_CTR_FLOW_RESTORED);
	return 0;
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

	ferry_rflow_restore(&pkt->key, flow);
	flow->last_ns = bpf_ktime_get_coarse_ns();
	flow->packets += 1;
	flow->bytes += pkt->len;
	/* Written only when it changes: the cache line is shared with other CPUs. */
	if ((pkt->tcp_flags & (FERRY_TCP_FIN | FERRY_TCP_RST)) &&
	    !(flow->flags & FERRY_FLOW_F_CLOSING))
		flow->flags |= FERRY_FLOW_F_CLOSING;
	ferry_fwd_latency(flow, pkt);
	ferry_l7_track(ctx, hook, &pkt->key, flow, pkt, false);
	ferry_stats_fwd(backend_id, pkt->len, 0, 0);
	ferry_trace_decision(ctx, hook, cfg, pkt, FERRY_TR_FLOW_HIT, flow->svc_id,
			     flow->predictor_id, backend_id);
	return ferry_fwd_xmit(ctx, hook, cfg, pkt, backend_id, flow->backend_addr,
			      flow->backend_port, flow);
}

/*
 * The forward and reverse entries of a new flow, built in a per-CPU scratch
 * value rather than on the stack: Linux 6.1 caps a program's stack plus its
 * deepest call chain at 512 bytes, and the request layer's chain
 * (ferry_l7_fwd_xdp and its bpf_loop callback, l7.bpf.h) needs what this
 * union took (152 bytes) in the forward programs' frames.
 */
union ferry_new_scratch {
	struct ferry_flow fwd;
	struct {
		struct ferry_flow_key key;
		struct ferry_rflow val;
	} rev;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, union ferry_new_scratch);
} ferry_new_tmp SEC(".maps");

/* Picks a backend for a new connection (or a flow-table miss) and records the flow. */
static __always_inline int ferry_fwd_new(void *ctx, const int hook, const struct ferry_config *cfg,
					 const struct ferry_pkt *pkt,
					 const struct ferry_service *svc, __u32 reason)
{
	union ferry_new_scratch *e;
	const struct ferry_backend *be;
	struct ferry_svc_stats *sst;
	__u32 svc_id = svc->id;
	__u32 hash, backend_id = 0, predictor_id, miss = reason == FERRY_TR_FLOW_MISS, zero = 0;
	__u64 now;
	__u8 flags = 0;

	be = ferry_select(svc, &pkt->key, cfg->hash_seed, ferry_svc_hash_mode(svc), pkt->key.family,
			  pkt->key.saddr, &hash, &backend_id);
	if (!be)
		goto no_backend;
	predictor_id = be->predictor_id;
	e = bpf_map_lookup_elem(&ferry_new_tmp, &zero);
	if (!e)
		return ferry_pass(hook);

	__builtin_memset(e, 0, sizeof(*e));
	now = bpf_ktime_get_coarse_ns();
	__builtin_memcpy(e->fwd.backend_addr, be->addr, sizeof(e->fwd.backend_addr));
	e->fwd.backend_port = be->port;
	e->fwd.family = pkt->key.family;
	e->fwd.backend_id = backend_id;
	e->fwd.predictor_id = predictor_id;
	e->fwd.svc_id = svc_id;
	e->fwd.created_ns = now;
	e->fwd.last_ns = now;
	e->fwd.packets = 1;
	e->fwd.bytes = pkt->len;
	if (pkt->tcp_flags & (FERRY_TCP_FIN | FERRY_TCP_RST))
		e->fwd.flags |= FERRY_FLOW_F_CLOSING;
	/* On every flow, sampled or not: a second SYN before the SYN-ACK is a timeout. */
	if (pkt->tcp_flags & FERRY_TCP_SYN) {
		e->fwd.flags |= FERRY_FLOW_F_SYN_PENDING;
		ferry_l7_forget(&pkt->key);
	}
	if (ferry_sampled(hash, svc->sample_every)) {
		e->fwd.flags |= FERRY_FLOW_F_SAMPLED;
		if (pkt->tcp_flags & FERRY_TCP_SYN)
			e->fwd.pending_ns = bpf_ktime_get_ns();
	}
	flags = e->fwd.flags;
	if (bpf_map_update_elem(&ferry_flows, &pkt->key, &e->fwd, BPF_ANY))
		ferry_count(FERRY_CTR_FLOW_FULL);

	/* The reply's key: backend -> client, as it will arrive. */
	__builtin_memset(e, 0, sizeof(*e));
	__builtin_memcpy(e->rev.key.saddr, be->addr, sizeof(e->rev.key.saddr));
	__builtin_memcpy(e->rev.key.daddr, pkt->key.saddr, sizeof(e->rev.key.daddr));
	e->rev.key.sport = be->port;
	e->rev.key.dport = pkt->key.sport;
	e->rev.key.proto = pkt->key.proto;
	e->rev.key.family = pkt->key.family;
	__builtin_memcpy(e->rev.val.vip_addr, pkt->key.daddr, sizeof(e->rev.val.vip_addr));
	e->rev.val.vip_port = pkt->key.dport;
	e->rev.val.family = pkt->key.family;
	e->rev.val.flags = flags;
	e->rev.val.backend_id = backend_id;
	__builtin_memcpy(&e->rev.val.fwd, &pkt->key, sizeof(e->rev.val.fwd));
	if (bpf_map_update_elem(&ferry_rflows, &e->rev.key, &e->rev.val, BPF_ANY))
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
	return ferry_reject(ctx, hook, pkt);
}

/* The address-only marker entry of pkt's destination, if it is a VIP address. */
static __always_inline const struct ferry_service *ferry_vip_marker(const struct ferry_pkt *pkt)
{
	struct ferry_vip vip = {};

	__builtin_memcpy(vip.addr, pkt->key.daddr, sizeof(vip.addr));
	vip.family = pkt->key.family;
	return bpf_map_lookup_elem(&ferry_services, &vip);
}

/*
 * An ICMP error about a reply (a router on the client's side, or the client,
 * quoting VIP -> client): goes to the flow's backend, translated to quote
 * backend -> client, so that the backend's socket learns the path MTU or
 * the error. Anything else ICMP is not ours.
 */
static __always_inline int ferry_fwd_icmp(void *ctx, const int hook, struct ferry_pkt *pkt)
{
	struct bpf_fib_lookup fib;
	struct ferry_flow *flow;
	int rc;

	if (ferry_parse_icmp(ferry_data(ctx, hook), ferry_data_end(ctx, hook), pkt) !=
	    FERRY_PARSE_OK)
		return ferry_pass(hook);
	flow = bpf_map_lookup_elem(&ferry_flows, &pkt->key);
	if (!flow)
		return ferry_pass(hook);
	if (!pkt->vlan && ferry_ttl_expired(ctx, hook, pkt))
		return ferry_pass(hook);
	if (ferry_icmp_rewrite(ctx, hook, pkt, false, flow->backend_addr, flow->backend_port))
		return ferry_pass(hook);
	ferry_count(FERRY_CTR_ICMP_FWD);
	if (pkt->vlan) {
		ferry_count(FERRY_CTR_FIB_STACK);
		return ferry_pass(hook);
	}
	/*
	 * The client's address stands in for the sender's (often a router) and
	 * the quoted ports for ICMP's none: only policy routing reads them.
	 */
	rc = ferry_fib(ctx, hook, pkt, pkt->key.saddr, flow->backend_addr, pkt->key.sport,
		       flow->backend_port, &fib);
	return ferry_send(ctx, hook, &fib, rc, pkt->key.family == FERRY_AF_INET);
}

/* Packets that did not parse as TCP/UDP: pass, except fragments to a VIP address. */
static __always_inline int ferry_fwd_unparsed(void *ctx, const int hook, struct ferry_pkt *pkt,
					      int rc)
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
	case FERRY_PARSE_OTHER:
		if (pkt->key.proto == IPPROTO_ICMP || pkt->key.proto == IPPROTO_ICMPV6)
			return ferry_fwd_icmp(ctx, hook, pkt);
		return ferry_pass(hook);
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
	rc = ferry_parse(ferry_data(ctx, hook), ferry_data_end(ctx, hook), &pkt,
			 ferry_gso_len(ctx, hook));
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

/*
 * An ICMP error about a forwarded packet (from the backend, a router on its
 * side, or this node, quoting client -> backend): goes to the client,
 * translated to quote client -> VIP, so that the client's socket, connected
 * to the VIP, takes it.
 */
static __always_inline int ferry_reply_icmp(struct __sk_buff *skb, const int hook,
					    struct ferry_pkt *pkt)
{
	struct ferry_rflow *rflow;

	if (ferry_parse_icmp(ferry_data(skb, hook), ferry_data_end(skb, hook), pkt) !=
	    FERRY_PARSE_OK)
		return ferry_pass(hook);
	rflow = bpf_map_lookup_elem(&ferry_rflows, &pkt->key);
	if (!rflow)
		return ferry_pass(hook);
	if (ferry_icmp_rewrite(skb, hook, pkt, true, rflow->vip_addr, rflow->vip_port))
		return ferry_pass(hook);
	ferry_count(FERRY_CTR_ICMP_REPLY);
	if (hook == FERRY_HOOK_TC_EGRESS || pkt->vlan)
		return ferry_pass(hook);
	return ferry_reply_xmit(skb, hook, pkt, rflow);
}

static __always_inline int ferry_reply(struct __sk_buff *skb, const int hook)
{
	struct ferry_pkt pkt = {};
	struct ferry_rflow *rflow;
	struct ferry_config *cfg;
	struct ferry_stats *st;
	struct ferry_flow *flow;
	__u32 zero = 0, backend_id;
	bool synack;
	int rc;

	ferry_tc_pull(skb);
	rc = ferry_parse(ferry_data(skb, hook), ferry_data_end(skb, hook), &pkt,
			 ferry_gso_len(skb, hook));
	if (rc == FERRY_PARSE_OTHER &&
	    (pkt.key.proto == IPPROTO_ICMP || pkt.key.proto == IPPROTO_ICMPV6))
		return ferry_reply_icmp(skb, hook, &pkt);
	if (rc != FERRY_PARSE_OK) {
		/*
		 * A fragmented reply carries its ports in the first fragment
		 * only, so no fragment can be matched to its flow and each
		 * leaves with the backend's source address (the client drops
		 * it). Backends answer with DF set and PMTU discovery keeps
		 * them unfragmented; this counts what is left. No service can
		 * be named without the ports: a node counter.
		 */
		if (rc == FERRY_PARSE_FRAG)
			ferry_count(FERRY_CTR_REPLY_FRAGMENT);
		return ferry_pass(hook);
	}
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
	 * The forward entry on every reply (one more lookup, about 30 ns: make
	 * bench, tc_reply_in_v4 against tc_reply_payload_v4_sampled before): rebuilt when it is gone, so that the
	 * client's next packet still goes to this backend (a rehash would not
	 * after a table change), and its idle timer refreshed so that a flow
	 * that only streams replies does not expire. last_ns is written at most
	 * once a second: the cache line is shared with the forward CPU.
	 */
	flow = bpf_map_lookup_elem(&ferry_flows, &rflow->fwd);
	if (!flow) {
		ferry_flow_restore(rflow, &pkt.key);
	} else {
		__u64 now = bpf_ktime_get_coarse_ns();

		if (now - flow->last_ns > FERRY_REPLY_TOUCH_NS)
			flow->last_ns = now;
	}
	if (flow && ((pkt.tcp_flags & FERRY_TCP_RST) || synack)) {
		/* A reset by the backend ends the flow: the next SYN picks anew. */
		if ((pkt.tcp_flags & FERRY_TCP_RST) && !(flow->flags & FERRY_FLOW_F_CLOSING))
			flow->flags |= FERRY_FLOW_F_CLOSING;
		if (flow->flags & FERRY_FLOW_F_SAMPLED)
			ferry_reply_latency(flow, &pkt);
		else if (synack && (flow->flags & FERRY_FLOW_F_SYN_PENDING))
			flow->flags &= ~FERRY_FLOW_F_SYN_PENDING;
	}
	/* Requests and streams, on every flow: before the rewrite, which may move the data. */
	if (flow)
		ferry_l7_track(skb, hook, &rflow->fwd, flow, &pkt, true);
	cfg = bpf_map_lookup_elem(&ferry_config, &zero);
	if (cfg)
		ferry_trace_decision(skb, hook, cfg, &pkt, FERRY_TR_REPLY, 0, 0, backend_id);

	if (ferry_rewrite(skb, hook, &pkt, true, rflow->vip_addr, rflow->vip_port))
		return ferry_pass(hook);
	if (hook == FERRY_HOOK_TC_EGRESS || pkt.vlan)
		return ferry_pass(hook);
	return ferry_reply_xmit(skb, hook, &pkt, rflow);
}

#endif /* FERRY_LB_BPF_H */