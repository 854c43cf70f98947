/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Where a translated packet goes next: bpf_fib_lookup, the per-flow
 * next-hop cache, the MAC rewrite and transmit (XDP_REDIRECT through a
 * declared tx port, bpf_redirect / bpf_redirect_neigh at TC), and the XDP ->
 * TC handoff for egress devices XDP cannot redirect into.
 */
#ifndef FERRY_NEXTHOP_BPF_H
#define FERRY_NEXTHOP_BPF_H

#include "hook.bpf.h"
#include "maps.bpf.h"
#include "parse.bpf.h"
#include "nat.bpf.h"
#include "observe.bpf.h"

#define FERRY_AF_INET_SOCK 2 /* AF_INET, for bpf_fib_lookup */
#define FERRY_AF_INET6_SOCK 10 /* AF_INET6 */

/*
 * XDP -> TC handoff: XDP rewrote the addresses and found the next hop but
 * cannot XDP_REDIRECT into the egress device (a veth whose peer runs no XDP
 * drops redirected frames), so it leaves this in the metadata area and
 * passes the frame up; ferry_tc_fwd on the same interface writes the MACs
 * and redirects the skb. The MACs travel in the metadata, not in the frame:
 * if the metadata cannot be attached or no TC program takes it, the frame
 * reaches the stack with its own MACs (this node's as destination) and the
 * kernel routes it to the backend; with the next hop's MACs already written
 * the stack would drop it as another host's. The magic changed with the
 * layout (it had only the ifindex), so that during an upgrade a TC program
 * of the other release ignores the metadata and lets the stack route.
 */
#define FERRY_META_MAGIC 0xfe77a12eU
#define FERRY_META_NEIGH 0x80000000U /* no neighbour yet: bpf_redirect_neigh */
/* An answer ferry built (reject.bpf.h), not a forwarded packet: TC leaves its TTL alone. */
#define FERRY_META_ANSWER 0x40000000U
#define FERRY_META_IFINDEX 0x3fffffffU

/*
 * How pod traffic leaves a pod's host veth (FERRY_POD_PATH_*, set by ferryd
 * --pod-fast-path before load). The default hands the rewritten packet to
 * the stack, so that netfilter and the backend veth's egress hooks, where
 * CNIs enforce NetworkPolicy, see it as they would see kube-proxy's DNAT.
 */
const volatile __u32 ferry_pod_path = FERRY_POD_PATH_STACK;
/* ferryd attaches to pods (--pod-iface): without, TC never looks for pod veths. */
const volatile bool ferry_pods = false;
/*
 * XDP may grow the metadata area (bpf_xdp_adjust_meta, Linux 4.15; some
 * hardened kernels refuse it to XDP programs). ferryd probes it before load;
 * false makes every XDP -> TC handoff a pass to the stack, and the verifier
 * never sees the helper (a branch on a frozen constant is dead code).
 */
const volatile bool ferry_xdp_meta = true;

/* A pod's host-side veth (ferryd marks them in ferry_links before attaching). */
static __always_inline bool ferry_is_pod_link(__u32 ifindex)
{
	struct ferry_link *link = bpf_map_lookup_elem(&ferry_links, &ifindex);

	return link && (link->hooks & FERRY_LINK_POD);
}

/*
 * TTL / hop limit: ferry forwards like a router, so a packet it redirects
 * leaves with one less, and one that arrives with 1 or 0 is not redirected:
 * the stack gets it and sends the time exceeded. Read before the rewrite,
 * so that the stack's error quotes what the client sent.
 */
static __always_inline bool ferry_ttl_expired(void *ctx, const int hook,
					      const struct ferry_pkt *pkt)
{
	void *data = ferry_data(ctx, hook), *data_end = ferry_data_end(ctx, hook);
	__u32 off = (pkt->l3_off & 0xff) + (pkt->key.family == FERRY_AF_INET ?
						    offsetof(struct iphdr, ttl) :
						    offsetof(struct ipv6hdr, hop_limit));
	__u8 *ttl = data + off;

	if ((void *)(ttl + 1) > data_end)
		return false;
	if (*ttl > 1)
		return false;
	ferry_count(FERRY_CTR_TTL_EXPIRED);
	return true;
}

/*
 * Decrements the TTL / hop limit of an untagged frame about to be
 * redirected (VLAN frames always go to the stack). IPv4: the header
 * checksum incrementally (RFC 1624, as the kernel's ip_decrease_ttl), which
 * leaves the sum over the header, and so a CHECKSUM_COMPLETE skb's csum,
 * unchanged. IPv6 has no header checksum; at TC the skb's csum is updated
 * with the difference (bpf_csum_update acts only on CHECKSUM_COMPLETE).
 * Packet pointers are read here, after any helper that may have moved the
 * data, never carried across one.
 */
static __always_inline void ferry_ttl_dec(void *ctx, const int hook, bool v4)
{
	void *data = ferry_data(ctx, hook), *data_end = ferry_data_end(ctx, hook);

	if (v4) {
		struct iphdr *iph = data + sizeof(struct ethhdr);
		__u32 check;

		if ((void *)(iph + 1) > data_end)
			return;
		iph->ttl -= 1;
		check = iph->check;
		check += bpf_htons(0x0100);
		iph->check = (__u16)(check + (check >= 0xffff));
	} else {
		struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
		__be32 *word = (void *)ip6 + 4; /* payload length, next header, hop limit */
		__be32 old, new;

		if ((void *)(ip6 + 1) > data_end)
			return;
		old = *word;
		ip6->hop_limit -= 1;
		new = *word;
		if (hook != FERRY_HOOK_XDP)
			bpf_csum_update(ctx,
					bpf_csum_diff(&old, sizeof(old), &new, sizeof(new), 0));
	}
}

struct ferry_xdp_meta {
	__u32 magic;
	__u32 ifindex; /* egress ifindex | FERRY_META_NEIGH */
	__u8 dmac[ETH_ALEN]; /* zero with FERRY_META_NEIGH */
	__u8 smac[ETH_ALEN];
};

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
	/*
	 * A GRO-merged (or locally built GSO) skb leaves as segments of
	 * gso_size payload bytes: the MTU check is about one of those, not the
	 * merged length, which would send every such skb to the slow path.
	 */
	if (hook != FERRY_HOOK_XDP) {
		__u32 gso_size = ((struct __sk_buff *)ctx)->gso_size;

		/* Headers + one segment; BIG TCP's clamped lengths never enter it. */
		if (gso_size && pkt->payload_len > gso_size)
			fib->tot_len = pkt->payload_off - pkt->l3_off + gso_size;
	}
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

/* dmac and smac: NULL with FERRY_META_NEIGH. */
static __always_inline int ferry_xdp_handoff(struct xdp_md *ctx, __u32 ifindex, const __u8 *dmac,
					     const __u8 *smac)
{
	struct ferry_xdp_meta *meta;

	if (!ferry_xdp_meta || bpf_xdp_adjust_meta(ctx, -(int)sizeof(*meta)))
		goto stack;
	meta = (void *)(long)ctx->data_meta;
	if ((void *)(meta + 1) > (void *)(long)ctx->data)
		goto stack;
	meta->magic = FERRY_META_MAGIC;
	meta->ifindex = ifindex;
	if (dmac) {
		__builtin_memcpy(meta->dmac, dmac, ETH_ALEN);
		__builtin_memcpy(meta->smac, smac, ETH_ALEN);
	} else {
		__builtin_memset(meta->dmac, 0, 2 * ETH_ALEN);
	}
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
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u32 ifindex;
	bool v4;

	if ((void *)(meta + 1) > data || meta->magic != FERRY_META_MAGIC)
		return false;
	if ((void *)(eth + 1) > data_end) {
		*verdict = ferry_pass(FERRY_HOOK_TC_INGRESS);
		return true;
	}
	ifindex = meta->ifindex;
	v4 = eth->h_proto == bpf_htons(ETH_P_IP);
	if (!(ifindex & FERRY_META_NEIGH)) {
		__builtin_memcpy(eth->h_dest, meta->dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, meta->smac, ETH_ALEN);
	}
	/* XDP only checked the TTL: a frame the stack routes instead is decremented once. */
	if (!(ifindex & FERRY_META_ANSWER))
		ferry_ttl_dec(skb, FERRY_HOOK_TC_INGRESS, v4);
	if (ifindex & FERRY_META_NEIGH) {
		ferry_count(FERRY_CTR_REDIRECT_NEIGH);
		*verdict = bpf_redirect_neigh(ifindex & FERRY_META_IFINDEX, NULL, 0, 0);
		return true;
	}
	ferry_count(FERRY_CTR_REDIRECT);
	*verdict = bpf_redirect(ifindex & FERRY_META_IFINDEX, 0);
	return true;
}

/*
 * --pod-fast-path=peer, at TC ingress of a pod's host veth or of the
 * interface replies arrive on: a packet for a pod on this node goes
 * straight into that pod's namespace (bpf_redirect_peer: no second pass
 * through the stack, no backlog queue), one for a remote pod leaves with
 * bpf_redirect_neigh. Returns -1 when neither applies. Both skip netfilter
 * and the target veth's egress hooks: the documented price of the opt-in.
 */
static __always_inline int ferry_send_pod(void *ctx, const int hook, struct bpf_fib_lookup *fib,
					  bool v4)
{
	struct ethhdr *eth;

	if (hook != FERRY_HOOK_TC_INGRESS || !ferry_pods || ferry_pod_path != FERRY_POD_PATH_PEER)
		return -1;
	if (ferry_is_pod_link(fib->ifindex)) {
		eth = ferry_data(ctx, hook);
		if ((void *)(eth + 1) > ferry_data_end(ctx, hook))
			return ferry_pass(hook);
		__builtin_memcpy(eth->h_dest, fib->dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, fib->smac, ETH_ALEN);
		ferry_ttl_dec(ctx, hook, v4);
		ferry_count(FERRY_CTR_REDIRECT_PEER);
		return bpf_redirect_peer(fib->ifindex, 0);
	}
	if (ferry_is_pod_link(ferry_ifindex(ctx, hook))) {
		ferry_ttl_dec(ctx, hook, v4);
		ferry_count(FERRY_CTR_REDIRECT_NEIGH);
		return bpf_redirect_neigh(fib->ifindex, NULL, 0, 0);
	}
	return -1;
}

/* Acts on the fib lookup result for a rewritten packet; v4: its family. */
static __always_inline int ferry_send(void *ctx, const int hook, struct bpf_fib_lookup *fib, int rc,
				      bool v4)
{
	void *data, *data_end;
	struct ethhdr *eth;
	int act;

	switch (rc) {
	case BPF_FIB_LKUP_RET_SUCCESS:
		act = ferry_send_pod(ctx, hook, fib, v4);
		if (act >= 0)
			return act;
		/*
		 * XDP: the redirect happens after the program returns, so the
		 * MACs can be written once it is certain; a handoff carries
		 * them in the metadata instead (see ferry_xdp_meta).
		 * Not a declared tx port: the lookup fails and returns XDP_PASS.
		 */
		act = XDP_REDIRECT;
		if (hook == FERRY_HOOK_XDP)
			act = bpf_redirect_map(&ferry_tx_ports, fib->ifindex, XDP_PASS);
		if (act != XDP_REDIRECT)
			return ferry_xdp_handoff(ctx, fib->ifindex, fib->dmac, fib->smac);
		data = ferry_data(ctx, hook);
		data_end = ferry_data_end(ctx, hook);
		eth = data;
		if ((void *)(eth + 1) > data_end)
			return ferry_pass(hook);
		__builtin_memcpy(eth->h_dest, fib->dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, fib->smac, ETH_ALEN);
		ferry_ttl_dec(ctx, hook, v4);
		ferry_count(FERRY_CTR_REDIRECT);
		if (hook == FERRY_HOOK_XDP)
			return XDP_REDIRECT;
		return bpf_redirect(fib->ifindex, 0);
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		if (hook == FERRY_HOOK_XDP)
			return ferry_xdp_handoff(ctx, fib->ifindex | FERRY_META_NEIGH, NULL, NULL);
		ferry_ttl_dec(ctx, hook, v4);
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
 * The next hop per backend, for a flow whose own cache is empty or expired
 * (every new flow's first packet): one bpf_fib_lookup per backend, ingress
 * device and CPU every FERRY_NH_TTL_NS instead of one per flow. The route
 * to a backend is the route to its address: the client's address and ports,
 * which the lookup also takes, matter only to source or port policy rules
 * (ip rule from / sport / dport) for forwarded traffic, which a node that
 * balances does not use for its backends. Direct-mapped (slot: backend id
 * modulo the size; the id is kept, so another backend's entry is a miss)
 * and per CPU, so that no reader sees half of another CPU's write.
 * Object-local: nothing of it survives a reload. A flow filled from it
 * expires when the entry does, so a route or neighbour change reaches every
 * packet within FERRY_NH_TTL_NS of the lookup, as before.
 */
#define FERRY_BE_NH_SLOTS 4096

struct ferry_be_nh {
	__u64 expires_ns;
	__u32 backend_id;
	__u32 in_ifindex;
	__u32 ifindex; /* 0: nothing cached */
	__u8 dmac[ETH_ALEN];
	__u8 smac[ETH_ALEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FERRY_BE_NH_SLOTS);
	__type(key, __u32);
	__type(value, struct ferry_be_nh);
} ferry_be_nh SEC(".maps");

/*
 * Rewrites the destination to the backend and sends the packet on. flow,
 * when not NULL, is the live flow entry: its cached next hop spares the fib
 * lookup, and a fresh successful lookup refreshes it.
 */
static __always_inline int ferry_fwd_xmit(void *ctx, const int hook, const struct ferry_config *cfg,
					  const struct ferry_pkt *pkt, __u32 backend_id,
					  const __be32 *addr, __be16 port, struct ferry_flow *flow)
{
	bool v4 = pkt->key.family == FERRY_AF_INET;
	struct ferry_be_nh *bnh = NULL;
	struct bpf_fib_lookup fib;
	__u32 in_ifindex, slot;
	int rc;

	in_ifindex = ferry_ifindex(ctx, hook);
	/* From a pod, by default: rewritten and routed by the stack, as kube-proxy's DNAT. */
	if (hook == FERRY_HOOK_TC_INGRESS && ferry_pods && ferry_pod_path == FERRY_POD_PATH_STACK &&
	    ferry_is_pod_link(in_ifindex)) {
		if (ferry_rewrite(ctx, hook, pkt, false, addr, port))
			return ferry_pass(hook);
		ferry_count(FERRY_CTR_FIB_STACK);
		return ferry_pass(hook);
	}
	/* The fib result is for an untagged frame; let the stack handle VLANs. */
	if (!pkt->vlan && ferry_ttl_expired(ctx, hook, pkt))
		return ferry_pass(hook);
	if (ferry_rewrite(ctx, hook, pkt, false, addr, port))
		return ferry_pass(hook);
	if (pkt->vlan) {
		ferry_count(FERRY_CTR_FIB_STACK);
		return ferry_pass(hook);
	}
	if (flow && !(flow->nh_ifindex && flow->nh_in_ifindex == in_ifindex &&
		      flow->last_ns < flow->nh_expires_ns)) {
		/* The flow's own cache is empty or old: the backend's, if it is fresh. */
		slot = backend_id % FERRY_BE_NH_SLOTS;
		bnh = bpf_map_lookup_elem(&ferry_be_nh, &slot);
		if (bnh && bnh->ifindex && bnh->backend_id == backend_id &&
		    bnh->in_ifindex == in_ifindex && flow->last_ns < bnh->expires_ns) {
			flow->nh_ifindex = bnh->ifindex;
			flow->nh_in_ifindex = in_ifindex;
			__builtin_memcpy(flow->nh_dmac, bnh->dmac, ETH_ALEN);
			__builtin_memcpy(flow->nh_smac, bnh->smac, ETH_ALEN);
			flow->nh_expires_ns = bnh->expires_ns;
		}
	}
	if (flow && flow->nh_ifindex && flow->nh_in_ifindex == in_ifindex &&
	    flow->last_ns < flow->nh_expires_ns) {
		/* ferry_send() reads only these three fields on success. */
		fib.ifindex = flow->nh_ifindex;
		__builtin_memcpy(fib.dmac, flow->nh_dmac, ETH_ALEN);
		__builtin_memcpy(fib.smac, flow->nh_smac, ETH_ALEN);
		return ferry_send(ctx, hook, &fib, BPF_FIB_LKUP_RET_SUCCESS, v4);
	}
	rc = ferry_fib(ctx, hook, pkt, pkt->key.saddr, addr, pkt->key.sport, port, &fib);
	if (flow && rc == BPF_FIB_LKUP_RET_SUCCESS) {
		flow->nh_ifindex = fib.ifindex;
		flow->nh_in_ifindex = in_ifindex;
		__builtin_memcpy(flow->nh_dmac, fib.dmac, ETH_ALEN);
		__builtin_memcpy(flow->nh_smac, fib.smac, ETH_ALEN);
		flow->nh_expires_ns = flow->last_ns + FERRY_NH_TTL_NS;
		if (bnh) {
			bnh->backend_id = backend_id;
			bnh->in_ifindex = in_ifindex;
			bnh->ifindex = fib.ifindex;
			__builtin_memcpy(bnh->dmac, fib.dmac, ETH_ALEN);
			__builtin_memcpy(bnh->smac, fib.smac, ETH_ALEN);
			bnh->expires_ns = flow->nh_expires_ns;
		}
	}
	if (ferry_fib_drops(rc))
		ferry_trace_decision(ctx, hook, cfg, pkt, FERRY_TR_DROP_FIB, 0, 0, backend_id);
	return ferry_send(ctx, hook, &fib, rc, v4);
}

/*
 * Sends a reply, already translated back to the VIP, towards the client,
 * with the reverse entry's own next-hop cache (as struct ferry_flow's on
 * the forward path).
 */
static __always_inline int ferry_reply_xmit(struct __sk_buff *skb, const int hook,
					    const struct ferry_pkt *pkt, struct ferry_rflow *rflow)
{
	bool v4 = pkt->key.family == FERRY_AF_INET;
	struct bpf_fib_lookup fib;
	__u32 in_ifindex;
	__u64 now;
	int rc;

	/* Already translated: the stack's time exceeded goes nowhere useful, but it is rare. */
	if (ferry_ttl_expired(skb, hook, pkt))
		return ferry_pass(hook);
	now = ferry_now();
	in_ifindex = ferry_ifindex(skb, hook);
	if (rflow->nh_ifindex && rflow->nh_in_ifindex == in_ifindex && now < rflow->nh_expires_ns) {
		fib.ifindex = rflow->nh_ifindex;
		__builtin_memcpy(fib.dmac, rflow->nh_dmac, ETH_ALEN);
		__builtin_memcpy(fib.smac, rflow->nh_smac, ETH_ALEN);
		return ferry_send(skb, hook, &fib, BPF_FIB_LKUP_RET_SUCCESS, v4);
	}
	rc = ferry_fib(skb, hook, pkt, rflow->vip_addr, pkt->key.daddr, rflow->vip_port,
		       pkt->key.dport, &fib);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		rflow->nh_ifindex = fib.ifindex;
		rflow->nh_in_ifindex = in_ifindex;
		__builtin_memcpy(rflow->nh_dmac, fib.dmac, ETH_ALEN);
		__builtin_memcpy(rflow->nh_smac, fib.smac, ETH_ALEN);
		rflow->nh_expires_ns = now + FERRY_NH_TTL_NS;
	}
	return ferry_send(skb, hook, &fib, rc, v4);
}

#endif /* FERRY_NEXTHOP_BPF_H */
