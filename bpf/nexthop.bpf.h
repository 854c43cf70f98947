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

		if (gso_size && pkt->payload_len > gso_size)
			fib->tot_len = pkt->ip_len - pkt->payload_len + gso_size;
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

	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(*meta)))
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

	if ((void *)(meta + 1) > data || meta->magic != FERRY_META_MAGIC)
		return false;
	if ((void *)(eth + 1) > data_end) {
		*verdict = ferry_pass(FERRY_HOOK_TC_INGRESS);
		return true;
	}
	ifindex = meta->ifindex;
	if (ifindex & FERRY_META_NEIGH) {
		ferry_count(FERRY_CTR_REDIRECT_NEIGH);
		*verdict = bpf_redirect_neigh(ifindex & ~FERRY_META_NEIGH, NULL, 0, 0);
		return true;
	}
	__builtin_memcpy(eth->h_dest, meta->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, meta->smac, ETH_ALEN);
	ferry_count(FERRY_CTR_REDIRECT);
	*verdict = bpf_redirect(ifindex, 0);
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
		ferry_count(FERRY_CTR_REDIRECT);
		if (hook == FERRY_HOOK_XDP)
			return XDP_REDIRECT;
		return bpf_redirect(fib->ifindex, 0);
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		if (hook == FERRY_HOOK_XDP)
			return ferry_xdp_handoff(ctx, fib->ifindex | FERRY_META_NEIGH, NULL, NULL);
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

/*
 * Sends a reply, already translated back to the VIP, towards the client,
 * with the reverse entry's own next-hop cache (as struct ferry_flow's on
 * the forward path).
 */
static __always_inline int ferry_reply_xmit(struct __sk_buff *skb, const int hook,
					    const struct ferry_pkt *pkt, struct ferry_rflow *rflow)
{
	struct bpf_fib_lookup fib;
	__u32 in_ifindex;
	__u64 now;
	int rc;

	now = bpf_ktime_get_coarse_ns();
	in_ifindex = ferry_ifindex(skb, hook);
	if (rflow->nh_ifindex && rflow->nh_in_ifindex == in_ifindex && now < rflow->nh_expires_ns) {
		fib.ifindex = rflow->nh_ifindex;
		__builtin_memcpy(fib.dmac, rflow->nh_dmac, ETH_ALEN);
		__builtin_memcpy(fib.smac, rflow->nh_smac, ETH_ALEN);
		return ferry_send(skb, hook, &fib, BPF_FIB_LKUP_RET_SUCCESS);
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
	return ferry_send(skb, hook, &fib, rc);
}

#endif /* FERRY_NEXTHOP_BPF_H */
