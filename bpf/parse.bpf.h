/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Header parsing shared by every ferry program (and the benchmark floor):
 * Ethernet, one optional 802.1Q/802.1ad tag, IPv4 (with options) or the
 * fixed IPv6 header, then TCP or UDP. The result is a unified 5-tuple with
 * 4-word addresses (IPv4 uses word 0) plus the offsets the rewrite needs.
 */
#ifndef FERRY_PARSE_BPF_H
#define FERRY_PARSE_BPF_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "ferry_maps.h"

#ifndef ETH_P_8021Q
#define ETH_P_8021Q 0x8100
#endif
#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

#define FERRY_IP_MF 0x2000
#define FERRY_IP_OFFSET 0x1fff
#define FERRY_NEXTHDR_FRAGMENT 44

/* TCP flag bits as in byte 13 of the TCP header. */
#define FERRY_TCP_FIN 0x01
#define FERRY_TCP_SYN 0x02
#define FERRY_TCP_RST 0x04
#define FERRY_TCP_ACK 0x10

enum ferry_parse_result {
	FERRY_PARSE_OK, /* TCP or UDP over IPv4/IPv6: pkt is complete */
	FERRY_PARSE_OTHER, /* not TCP/UDP over IP: not ours */
	FERRY_PARSE_MALFORMED, /* truncated or invalid header */
	FERRY_PARSE_FRAG, /* IPv4 fragment or IPv6 fragment header: key.daddr is set */
	FERRY_PARSE_IPV6_EXT, /* IPv6 extension header we do not walk */
};

struct ferry_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

struct ferry_pkt {
	struct ferry_flow_key key; /* as received */
	__u32 len; /* bytes on the wire, for stats */
	__u16 l3_off; /* from the start of the frame */
	__u16 l4_off;
	__u16 payload_off;
	/*
	 * From the IP length fields, not the frame (Ethernet pads). BIG TCP
	 * (from the skb's length) can exceed 16 bits: both are then clamped at
	 * 0xffff, which every user reads right ("has payload", "more than one
	 * segment"); 16 bits keep the XDP program's stack where 6.1 accepts it.
	 */
	__u16 payload_len;
	__u16 ip_len; /* IPv4 total length or IPv6 payload length + 40, for the fib lookup */
	__u8 tcp_flags;
	__u8 vlan;
	/* ICMP errors only (ferry_parse_icmp): where the quoted packet's headers start. */
	__u16 inner_l3_off;
	__u16 inner_l4_off;
};

static __always_inline int ferry_ipv6_is_ext(__u8 nexthdr)
{
	switch (nexthdr) {
	case 0: /* hop-by-hop */
	case 43: /* routing */
	case 50: /* ESP */
	case 51: /* AH */
	case 60: /* destination options */
	case 135: /* mobility */
	case 139: /* HIP */
	case 140: /* shim6 */
		return 1;
	}
	return 0;
}

/* IPv6 hop-by-hop header holding only the jumbo payload option (RFC 2675), as BIG TCP adds. */
#define FERRY_IPV6_HOPOPTS 0
#define FERRY_IPV6_TLV_JUMBO 0xc2

/*
 * Offsets are masked with 0xff before use: the verifier then knows them to
 * be small (they are at most 18 + 60 + 60) and accepts the variable-offset
 * packet pointers that IPv4 options and TCP options produce.
 *
 * gso_len: the skb's length when it is a GSO skb (TC), else 0. BIG TCP
 * (Linux 5.19 IPv6, 6.3 IPv4) builds GSO skbs over 64 KB whose IP length
 * field cannot hold their size: IPv4 tot_len 0, IPv6 payload_len 0 (with a
 * jumbo hop-by-hop header on kernels that add one). Those take their
 * length from the skb instead of being malformed.
 */
static __always_inline int ferry_parse(void *data, void *data_end, struct ferry_pkt *pkt,
				       __u32 gso_len)
{
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);
	__u32 l4_hdr_len, l3_payload, ip_len;
	__be16 proto;
	__u8 l4_proto;

	if ((void *)(eth + 1) > data_end)
		return FERRY_PARSE_MALFORMED;
	proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct ferry_vlan_hdr *vh = data + off;

		if ((void *)(vh + 1) > data_end)
			return FERRY_PARSE_MALFORMED;
		proto = vh->proto;
		off += sizeof(*vh);
		pkt->vlan = 1;
	}
	pkt->l3_off = off;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = data + off;
		__u32 hl;

		if ((void *)(iph + 1) > data_end)
			return FERRY_PARSE_MALFORMED;
		hl = iph->ihl * 4;
		if (iph->version != 4 || hl < sizeof(*iph))
			return FERRY_PARSE_MALFORMED;
		if (data + off + hl > data_end)
			return FERRY_PARSE_MALFORMED;
		ip_len = bpf_ntohs(iph->tot_len);
		/*
		 * gso_len first: testing ip_len == 0 first would leave a path with
		 * the constant 0 compared with hl below, and 6.1's verifier then
		 * carries impossible bounds for hl (umin 20, umax 0) into the
		 * TCP pointer math and rejects it.
		 */
		if (gso_len > off && !ip_len)
			ip_len = gso_len - off; /* BIG TCP */
		if (ip_len < hl)
			return FERRY_PARSE_MALFORMED;
		pkt->key.family = FERRY_AF_INET;
		pkt->key.saddr[0] = iph->saddr;
		pkt->key.daddr[0] = iph->daddr;
		l3_payload = ip_len - hl;
		l4_proto = iph->protocol;
		if (iph->frag_off & bpf_htons(FERRY_IP_MF | FERRY_IP_OFFSET))
			return FERRY_PARSE_FRAG;
		off += hl;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;

		if ((void *)(ip6 + 1) > data_end)
			return FERRY_PARSE_MALFORMED;
		if (ip6->version != 6)
			return FERRY_PARSE_MALFORMED;
		pkt->key.family = FERRY_AF_INET6;
		__builtin_memcpy(pkt->key.saddr, &ip6->saddr, 16);
		__builtin_memcpy(pkt->key.daddr, &ip6->daddr, 16);
		l3_payload = bpf_ntohs(ip6->payload_len);
		l4_proto = ip6->nexthdr;
		off += sizeof(*ip6);
		if (gso_len > off && !l3_payload) { /* gso_len first: see IPv4 */
			/* BIG TCP: the length is the skb's; skip a jumbo-only hop-by-hop header. */
			__u8 *hbh = data + off;

			l3_payload = gso_len - off;
			if (l4_proto == FERRY_IPV6_HOPOPTS) {
				if ((void *)(hbh + 8) > data_end)
					return FERRY_PARSE_MALFORMED;
				if (hbh[1] != 0 || hbh[2] != FERRY_IPV6_TLV_JUMBO || hbh[3] != 4)
					return FERRY_PARSE_IPV6_EXT;
				l4_proto = hbh[0];
				off += 8;
			}
		}
		ip_len = l3_payload + sizeof(*ip6);
		if (l4_proto == FERRY_NEXTHDR_FRAGMENT)
			return FERRY_PARSE_FRAG;
		if (ferry_ipv6_is_ext(l4_proto))
			return FERRY_PARSE_IPV6_EXT;
		l3_payload = ip_len - (off - pkt->l3_off);
	} else {
		return FERRY_PARSE_OTHER;
	}

	off &= 0xff;
	pkt->l4_off = off;
	pkt->key.proto = l4_proto;
	if (l4_proto == IPPROTO_TCP) {
		struct tcphdr *th = data + off;

		if ((void *)(th + 1) > data_end)
			return FERRY_PARSE_MALFORMED;
		l4_hdr_len = th->doff * 4;
		if (l4_hdr_len < sizeof(*th) || data + off + l4_hdr_len > data_end)
			return FERRY_PARSE_MALFORMED;
		pkt->key.sport = th->source;
		pkt->key.dport = th->dest;
		pkt->tcp_flags = ((__u8 *)th)[13];
	} else if (l4_proto == IPPROTO_UDP) {
		struct udphdr *uh = data + off;

		if ((void *)(uh + 1) > data_end)
			return FERRY_PARSE_MALFORMED;
		l4_hdr_len = sizeof(*uh);
		pkt->key.sport = uh->source;
		pkt->key.dport = uh->dest;
	} else {
		return FERRY_PARSE_OTHER;
	}
	if (l3_payload < l4_hdr_len)
		return FERRY_PARSE_MALFORMED;
	pkt->payload_off = off + l4_hdr_len;
	l3_payload -= l4_hdr_len;
	pkt->payload_len = l3_payload > 0xffff ? 0xffff : l3_payload;
	pkt->ip_len = ip_len > 0xffff ? 0xffff : ip_len;
	return FERRY_PARSE_OK;
}

/* ICMP types that carry a quoted packet and concern a connection. */
#define FERRY_ICMP_DEST_UNREACH 3
#define FERRY_ICMP_TIME_EXCEEDED 11
#define FERRY_ICMP6_DEST_UNREACH 1
#define FERRY_ICMP6_PKT_TOOBIG 2
#define FERRY_ICMP6_TIME_EXCEED 3
#define FERRY_ICMP_HDR_LEN 8

static __always_inline bool ferry_icmp_is_error(__u8 family, __u8 type)
{
	if (family == FERRY_AF_INET)
		return type == FERRY_ICMP_DEST_UNREACH || type == FERRY_ICMP_TIME_EXCEEDED;
	return type == FERRY_ICMP6_DEST_UNREACH || type == FERRY_ICMP6_PKT_TOOBIG ||
	       type == FERRY_ICMP6_TIME_EXCEED;
}

/*
 * For a packet that ferry_parse() left at FERRY_PARSE_OTHER with proto ICMP
 * or ICMPv6: if it is an error quoting a TCP or UDP packet, replaces pkt->key
 * with the quoted tuple reversed and returns FERRY_PARSE_OK. Reversed,
 * because an error travels against the packet it quotes: an error about a
 * reply (quoting VIP -> client) reaches the forward path and its reversed
 * quote is the forward flow key (client -> VIP); an error about a forwarded
 * packet (quoting client -> backend) reaches the reply path and its reversed
 * quote is the reply key (backend -> client). The outer addresses stay in
 * the packet. The quoted packet must have the outer family, no IPv6
 * extension headers and no fragment offset (the ports must be there).
 */
static __always_inline int ferry_parse_icmp(void *data, void *data_end, struct ferry_pkt *pkt)
{
	__u32 off = pkt->l4_off & 0xff;
	__u8 *icmp = data + off;
	__be16 *ports;
	__u8 proto;

	if (pkt->key.proto != (pkt->key.family == FERRY_AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6))
		return FERRY_PARSE_OTHER;
	if ((void *)(icmp + FERRY_ICMP_HDR_LEN) > data_end)
		return FERRY_PARSE_MALFORMED;
	if (!ferry_icmp_is_error(pkt->key.family, icmp[0]))
		return FERRY_PARSE_OTHER;
	off += FERRY_ICMP_HDR_LEN;
	pkt->inner_l3_off = off;
	if (pkt->key.family == FERRY_AF_INET) {
		struct iphdr *iph = data + off;
		__u32 hl;

		if ((void *)(iph + 1) > data_end)
			return FERRY_PARSE_MALFORMED;
		hl = iph->ihl * 4;
		if (iph->version != 4 || hl < sizeof(*iph))
			return FERRY_PARSE_MALFORMED;
		if (iph->frag_off & bpf_htons(FERRY_IP_OFFSET))
			return FERRY_PARSE_OTHER;
		proto = iph->protocol;
		pkt->key.saddr[0] = iph->daddr;
		pkt->key.daddr[0] = iph->saddr;
		off += hl;
	} else {
		struct ipv6hdr *ip6 = data + off;

		if ((void *)(ip6 + 1) > data_end)
			return FERRY_PARSE_MALFORMED;
		if (ip6->version != 6)
			return FERRY_PARSE_MALFORMED;
		proto = ip6->nexthdr;
		__builtin_memcpy(pkt->key.saddr, &ip6->daddr, 16);
		__builtin_memcpy(pkt->key.daddr, &ip6->saddr, 16);
		off += sizeof(*ip6);
	}
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return FERRY_PARSE_OTHER;
	/* Outer l4 <= 18 + 60, + 8 + 60: masking keeps the verifier's range small. */
	off &= 0xff;
	ports = data + off;
	if ((void *)(ports + 2) > data_end)
		return FERRY_PARSE_MALFORMED;
	pkt->inner_l4_off = off;
	pkt->key.sport = ports[1];
	pkt->key.dport = ports[0];
	pkt->key.proto = proto;
	pkt->tcp_flags = 0;
	pkt->payload_len = 0;
	return FERRY_PARSE_OK;
}

#endif /* FERRY_PARSE_BPF_H */
