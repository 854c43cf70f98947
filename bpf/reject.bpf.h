/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Fast failure: a TCP SYN to a service with no backend is answered with a
 * RST at once, a UDP datagram with an ICMP port unreachable (the frame turned around in place: XDP_TX, or a redirect to
 * the ingress interface at TC) instead of being dropped, so the client
 * fails in milliseconds instead of after its connect timeout. Rate-limited
 * by a per-CPU token bucket so that ferry cannot be used as a reflector.
 */
#ifndef FERRY_REJECT_BPF_H
#define FERRY_REJECT_BPF_H

#include "hook.bpf.h"
#include "maps.bpf.h"
#include "parse.bpf.h"
#include "csum.bpf.h"
#include "nexthop.bpf.h"

/* Per CPU: sustained RSTs per second and burst. */
#define FERRY_REJECT_PER_SEC 100
#define FERRY_REJECT_BURST 100

struct ferry_reject_bucket {
	__u64 last_ns;
	__u64 tokens;
};

/* Object-local, not pinned: a restart refills the buckets, which is harmless. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ferry_reject_bucket);
} ferry_reject_tb SEC(".maps");

static __always_inline bool ferry_reject_allowed(void)
{
	struct ferry_reject_bucket *b;
	__u32 zero = 0;
	__u64 now, add;

	b = bpf_map_lookup_elem(&ferry_reject_tb, &zero);
	if (!b)
		return false;
	now = ferry_now();
	add = (now - b->last_ns) / (1000000000ULL / FERRY_REJECT_PER_SEC);
	if (add) {
		b->tokens = b->tokens + add > FERRY_REJECT_BURST ? FERRY_REJECT_BURST :
								   b->tokens + add;
		b->last_ns = now;
	}
	if (!b->tokens)
		return false;
	b->tokens -= 1;
	return true;
}

/*
 * Rewrites the SYN in pkt into the RST|ACK that answers it (addresses, ports
 * and MACs swapped, ack = seq + 1 + payload, 20-byte TCP header, no
 * options; IP id and TCP window are left as they were) and trims the frame. Checksums are computed whole: the frame is
 * new. IPv4 with options is not answered (-1: the caller drops it).
 */
static __always_inline int ferry_reject_build(void *ctx, const int hook,
					      const struct ferry_pkt *pkt)
{
	void *data = ferry_data(ctx, hook), *data_end = ferry_data_end(ctx, hook);
	__u32 l3 = pkt->l3_off & 0xff, l4 = pkt->l4_off & 0xff, len, i;
	struct ethhdr *eth = data;
	__u8 mac[ETH_ALEN];
	struct tcphdr *th;
	__u32 *w, seq;
	__u64 sum;

	th = data + l4;
	if ((void *)(eth + 1) > data_end || (void *)(th + 1) > data_end)
		return -1;
	if (pkt->key.family == FERRY_AF_INET) {
		struct iphdr *iph = data + l3;

		if ((void *)(iph + 1) > data_end || iph->ihl != 5)
			return -1;
		iph->saddr = pkt->key.daddr[0];
		iph->daddr = pkt->key.saddr[0];
		iph->tos = 0;
		iph->tot_len = bpf_htons(sizeof(*iph) + sizeof(*th));
		iph->frag_off = bpf_htons(0x4000); /* DF */
		iph->ttl = 64;
		iph->check = 0;
		w = (__u32 *)iph;
		sum = 0;
		for (i = 0; i < 5; i++)
			sum += w[i];
		iph->check = ~ferry_csum_fold(sum);
		sum = (__u64)pkt->key.saddr[0] + pkt->key.daddr[0] +
		      bpf_htonl((IPPROTO_TCP << 16) | sizeof(*th));
	} else {
		struct ipv6hdr *ip6 = data + l3;

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		*(__be32 *)ip6 = bpf_htonl(6U << 28); /* no traffic class, no flow label */
		ip6->payload_len = bpf_htons(sizeof(*th));
		ip6->hop_limit = 64;
		__builtin_memcpy(&ip6->saddr, pkt->key.daddr, 16);
		__builtin_memcpy(&ip6->daddr, pkt->key.saddr, 16);
		sum = bpf_htonl(sizeof(*th)) + (__u64)bpf_htonl(IPPROTO_TCP);
		for (i = 0; i < 4; i++)
			sum += (__u64)pkt->key.saddr[i] + pkt->key.daddr[i];
	}
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);

	seq = bpf_ntohl(th->seq);
	th->source = pkt->key.dport;
	th->dest = pkt->key.sport;
	th->ack_seq = bpf_htonl(seq + 1 + pkt->payload_len);
	th->seq = 0;
	((__u8 *)th)[12] = 5 << 4; /* doff 5 */
	((__u8 *)th)[13] = FERRY_TCP_RST | FERRY_TCP_ACK;
	th->check = 0;
	th->urg_ptr = 0;
	w = (__u32 *)th;
	for (i = 0; i < 5; i++)
		sum += w[i];
	th->check = ~ferry_csum_fold(sum);

	len = l4 + sizeof(*th);
	if (hook == FERRY_HOOK_XDP)
		return bpf_xdp_adjust_tail(ctx, (int)len - (int)(data_end - data)) ? -1 : 0;
	return bpf_skb_change_tail(ctx, len, 0) ? -1 : 0;
}

/*
 * ICMP port unreachable for a datagram (UDP): the frame grows at the front
 * by an outer IP header and the ICMP header, the Ethernet header moves to
 * the new front with its MACs swapped, and the original IP header plus the
 * 8 bytes after it (the UDP header, all a socket needs to match the error)
 * stay as the quote; the rest is trimmed. The outer source is the VIP, the
 * address the client sent to, so its connected socket takes the error.
 * IPv4 with options is not answered (-1). One body for both hooks: only the
 * grow and trim helpers differ.
 */
#define FERRY_ICMP_QUOTE_L4 8
#define FERRY_ICMP6_NEXTHDR 58

static __always_inline int ferry_reject_icmp_build(void *ctx, const int hook,
						   const struct ferry_pkt *pkt)
{
	bool v4 = pkt->key.family == FERRY_AF_INET;
	__u32 l3 = pkt->vlan ? sizeof(struct ethhdr) + 4 : sizeof(struct ethhdr);
	__u32 outer = v4 ? sizeof(struct iphdr) : sizeof(struct ipv6hdr);
	__u32 grow = outer + FERRY_ICMP_HDR_LEN;
	__u32 quote = outer + FERRY_ICMP_QUOTE_L4, len = l3 + grow + quote, i;
	void *data, *data_end;
	struct ethhdr *eth;
	__u8 *icmp;
	__u32 *w;
	__u64 sum;

	if (v4) {
		data = ferry_data(ctx, hook);
		data_end = ferry_data_end(ctx, hook);
		struct iphdr *iph = data + l3;

		if ((void *)(iph + 1) > data_end || iph->ihl != 5)
			return -1;
	}
	if (hook == FERRY_HOOK_XDP) {
		if (bpf_xdp_adjust_head(ctx, -(int)grow))
			return -1;
	} else if (bpf_skb_change_head(ctx, grow, 0)) {
		return -1;
	}
	data = ferry_data(ctx, hook);
	data_end = ferry_data_end(ctx, hook);
	if (data + len > data_end)
		return -1;
	/*
	 * The old L2 header moves to the front, MACs swapped: 18 bytes (a tag,
	 * or the IP header's first 4, which the outer header overwrites). The
	 * two places are grow >= 28 bytes apart, so packet-to-packet copies
	 * need no stack (the 6.1 cap: see ferry_reject_xdp).
	 */
	eth = data;
	__builtin_memcpy(eth->h_dest, data + grow + ETH_ALEN, ETH_ALEN);
	__builtin_memcpy(eth->h_source, data + grow, ETH_ALEN);
	__builtin_memcpy((__u8 *)data + 2 * ETH_ALEN, data + grow + 2 * ETH_ALEN, 6);
	icmp = data + l3 + outer;
	if ((void *)(icmp + FERRY_ICMP_HDR_LEN + quote) > data_end)
		return -1;
	__builtin_memset(icmp, 0, FERRY_ICMP_HDR_LEN);
	if (v4) {
		struct iphdr *iph = data + l3;

		if ((void *)(iph + 1) > data_end)
			return -1;
		*(__be16 *)iph = bpf_htons(0x4500);
		iph->tot_len = bpf_htons(grow + quote);
		iph->id = 0;
		iph->frag_off = 0;
		iph->ttl = 64;
		iph->protocol = IPPROTO_ICMP;
		iph->check = 0;
		iph->saddr = pkt->key.daddr[0];
		iph->daddr = pkt->key.saddr[0];
		w = (__u32 *)iph;
		sum = 0;
		for (i = 0; i < 5; i++)
			sum += w[i];
		iph->check = ~ferry_csum_fold(sum);
		icmp[0] = FERRY_ICMP_DEST_UNREACH;
		icmp[1] = 3; /* port unreachable */
		sum = 0;
	} else {
		struct ipv6hdr *ip6 = data + l3;

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		*(__be32 *)ip6 = bpf_htonl(6U << 28);
		ip6->payload_len = bpf_htons(FERRY_ICMP_HDR_LEN + quote);
		ip6->nexthdr = FERRY_ICMP6_NEXTHDR;
		ip6->hop_limit = 64;
		__builtin_memcpy(&ip6->saddr, pkt->key.daddr, 16);
		__builtin_memcpy(&ip6->daddr, pkt->key.saddr, 16);
		icmp[0] = FERRY_ICMP6_DEST_UNREACH;
		icmp[1] = 4; /* port unreachable */
		sum = bpf_htonl(FERRY_ICMP_HDR_LEN + quote) + (__u64)bpf_htonl(FERRY_ICMP6_NEXTHDR);
		for (i = 0; i < 4; i++)
			sum += (__u64)pkt->key.saddr[i] + pkt->key.daddr[i];
	}
	/* 36 or 56 bytes from a 4-aligned offset (l3 + outer): whole words. */
	w = (__u32 *)icmp;
	for (i = 0; i < (FERRY_ICMP_HDR_LEN + 40 + FERRY_ICMP_QUOTE_L4) / 4; i++) {
		if (i >= (FERRY_ICMP_HDR_LEN + quote) / 4)
			break;
		sum += w[i];
	}
	*(__u16 *)(icmp + 2) = ~ferry_csum_fold(sum);

	/* XDP: pkt->len is the frame as received (data_end - data would be 32-bit pointer math). */
	if (hook == FERRY_HOOK_XDP)
		return bpf_xdp_adjust_tail(ctx, (int)len - (int)(pkt->len + grow)) ? -1 : 0;
	return bpf_skb_change_tail(ctx, len, 0) ? -1 : 0;
}

/* No metadata (ferry_xdp_meta): the answer gets the request's MACs back and the stack routes it. */
static __always_inline int ferry_reject_xdp_stack(struct xdp_md *ctx)
{
	struct ethhdr *eth = (void *)(long)ctx->data;
	__u8 mac[ETH_ALEN];

	if ((void *)(eth + 1) > (void *)(long)ctx->data_end)
		return XDP_DROP;
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	ferry_count(FERRY_CTR_FIB_STACK);
	return XDP_PASS;
}

/*
 * The answer leaves by the interface the request came in on. XDP_TX only
 * where user space declared that interface redirect-safe (ferry_tx_ports,
 * as for XDP_REDIRECT): a veth whose peer runs no XDP drops XDP_TX frames
 * just as it drops redirected ones. Elsewhere the answer is handed to TC
 * like a forwarded packet (metadata with the ingress interface and the
 * answer's MACs; the frame keeps the request's, so that without TC the
 * stack routes the answer), and ferry_tc_fwd redirects it to that
 * interface's egress.
 */
static __always_inline int ferry_reject_xdp_send(struct xdp_md *ctx)
{
	__u32 ifindex = ctx->ingress_ifindex;
	struct ferry_xdp_meta *meta;
	struct ethhdr *eth;

	if (bpf_map_lookup_elem(&ferry_tx_ports, &ifindex))
		return XDP_TX;
	if (!ferry_xdp_meta)
		return ferry_reject_xdp_stack(ctx);
	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(*meta)))
		return XDP_DROP;
	meta = (void *)(long)ctx->data_meta;
	eth = (void *)(long)ctx->data;
	if ((void *)(meta + 1) > (void *)eth || (void *)(eth + 1) > (void *)(long)ctx->data_end)
		return XDP_DROP;
	meta->magic = FERRY_META_MAGIC;
	meta->ifindex = ifindex | FERRY_META_ANSWER; /* built here: no TTL to decrement */
	/* The answer's MACs go to the metadata; the frame gets the request's back. */
	__builtin_memcpy(meta->dmac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(meta->smac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, meta->smac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, meta->dmac, ETH_ALEN);
	ferry_count(FERRY_CTR_XDP_HANDOFF);
	return XDP_PASS;
}

/*
 * Not inlined (one subprogram per hook): the forward program's frame stays
 * as it is, and the 6.1 stack cap counts the deepest call chain.
 */
static __noinline int ferry_reject_xdp(struct xdp_md *ctx, const struct ferry_pkt *pkt)
{
	if (pkt->key.proto == IPPROTO_UDP) {
		if (ferry_reject_icmp_build(ctx, FERRY_HOOK_XDP, pkt))
			return XDP_DROP;
		ferry_count(FERRY_CTR_REJECT_ICMP);
		return ferry_reject_xdp_send(ctx);
	}
	if (ferry_reject_build(ctx, FERRY_HOOK_XDP, pkt))
		return XDP_DROP;
	ferry_count(FERRY_CTR_REJECT);
	return ferry_reject_xdp_send(ctx);
}

static __noinline int ferry_reject_tc(struct __sk_buff *skb, const struct ferry_pkt *pkt)
{
	if (pkt->key.proto == IPPROTO_UDP) {
		if (ferry_reject_icmp_build(skb, FERRY_HOOK_TC_INGRESS, pkt))
			return TC_ACT_SHOT;
		ferry_count(FERRY_CTR_REJECT_ICMP);
		return bpf_redirect(skb->ifindex, 0);
	}
	if (ferry_reject_build(skb, FERRY_HOOK_TC_INGRESS, pkt))
		return TC_ACT_SHOT;
	ferry_count(FERRY_CTR_REJECT);
	return bpf_redirect(skb->ifindex, 0);
}

/*
 * A connection attempt to a service with no backend: RST for a TCP SYN,
 * ICMP port unreachable for UDP, one budget for both; anything else is
 * dropped.
 */
static __always_inline int ferry_reject(void *ctx, const int hook, const struct ferry_pkt *pkt)
{
	if (pkt->key.proto != IPPROTO_UDP &&
	    (pkt->key.proto != IPPROTO_TCP ||
	     (pkt->tcp_flags & (FERRY_TCP_SYN | FERRY_TCP_ACK | FERRY_TCP_RST)) != FERRY_TCP_SYN))
		return ferry_drop(hook);
	if (!ferry_reject_allowed()) {
		ferry_count(FERRY_CTR_REJECT_LIMITED);
		return ferry_drop(hook);
	}
	if (hook == FERRY_HOOK_XDP)
		return ferry_reject_xdp(ctx, pkt);
	return ferry_reject_tc(ctx, pkt);
}

#endif /* FERRY_REJECT_BPF_H */
