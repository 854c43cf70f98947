/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A small packet builder for BPF fixture tests: Ethernet, an optional
 * 802.1Q tag, IPv4 (with options, fragment bits) or IPv6 (with one
 * fragment or hop-by-hop header), TCP or UDP, payload, and correct
 * checksums. Tests describe packets with struct pb_spec instead of hex.
 * pb_verify_csums() checks a frame's checksums independently of the
 * builder's own bookkeeping (it recomputes them from the bytes).
 */
#ifndef FERRY_PKT_BUILDER_H
#define FERRY_PKT_BUILDER_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#define PB_TCP_FIN 0x01
#define PB_TCP_SYN 0x02
#define PB_TCP_RST 0x04
#define PB_TCP_PSH 0x08
#define PB_TCP_ACK 0x10

enum pb_v6_ext {
	PB_V6_NONE,
	PB_V6_FRAG, /* an 8-byte fragment header before L4 */
	PB_V6_HOPOPTS, /* an 8-byte hop-by-hop header before L4 */
};

struct pb_spec {
	uint8_t dmac[6], smac[6];
	bool vlan;
	uint16_t vlan_id;
	int family; /* 4 or 6 */
	uint32_t saddr[4], daddr[4]; /* network byte order; IPv4 uses [0] */
	uint8_t proto; /* IPPROTO_TCP, IPPROTO_UDP or anything else (no L4 header) */
	uint16_t sport, dport; /* host byte order */
	uint8_t tcp_flags;
	uint32_t seq, ack;
	int ip_opts_len; /* IPv4 options, multiple of 4, <= 40 */
	uint16_t frag; /* IPv4 flags|offset field, host order (0x2000 = MF) */
	enum pb_v6_ext v6_ext;
	bool udp_csum_zero; /* send UDP with checksum 0 (IPv4 only) */
	const void *payload;
	size_t payload_len;
};

static inline void pb_addr(uint32_t addr[4], const char *text)
{
	memset(addr, 0, 16);
	if (strchr(text, ':'))
		inet_pton(AF_INET6, text, addr);
	else
		inet_pton(AF_INET, text, addr);
}

static inline void pb_mac(uint8_t mac[6], const char *text)
{
	unsigned int m[6];

	sscanf(text, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]);
	for (int i = 0; i < 6; i++)
		mac[i] = m[i];
}

/* The frame's ends from text: smac -> dmac, saddr -> daddr (both IPv4 or both IPv6). */
static inline void pb_ends(struct pb_spec *s, const char *smac, const char *dmac, const char *saddr,
			   const char *daddr)
{
	pb_mac(s->smac, smac);
	pb_mac(s->dmac, dmac);
	pb_addr(s->saddr, saddr);
	pb_addr(s->daddr, daddr);
}

static inline uint32_t pb_sum(const void *buf, size_t len, uint32_t sum)
{
	const uint8_t *p = buf;

	for (; len > 1; len -= 2, p += 2)
		sum += (uint32_t)((p[0] << 8) | p[1]);
	if (len)
		sum += (uint32_t)(p[0] << 8);
	return sum;
}

/* Network-order 16-bit ones' complement checksum of sum. */
static inline uint16_t pb_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

static inline uint32_t pb_pseudo(int family, const uint32_t *saddr, const uint32_t *daddr,
				 uint8_t proto, uint32_t l4_len)
{
	int alen = family == 4 ? 4 : 16;
	uint32_t sum = 0;

	sum = pb_sum(saddr, alen, sum);
	sum = pb_sum(daddr, alen, sum);
	sum += proto;
	sum += l4_len & 0xffff;
	sum += l4_len >> 16;
	return sum;
}

/* Writes the frame into buf and returns its length (0 if cap is too small). */
static inline size_t pb_build(const struct pb_spec *s, uint8_t *buf, size_t cap)
{
	size_t l4_hdr = s->proto == IPPROTO_TCP ? sizeof(struct tcphdr) :
			s->proto == IPPROTO_UDP ? sizeof(struct udphdr) :
						  0;
	size_t l4_len = l4_hdr + s->payload_len, off = 0, l3_off, l4_off;
	uint16_t *eth_type;

	if (cap < 14 + 4 + 60 + 8 + l4_len)
		return 0;
	memset(buf, 0, 14 + 4 + 60 + 8 + l4_len);
	memcpy(buf, s->dmac, 6);
	memcpy(buf + 6, s->smac, 6);
	eth_type = (uint16_t *)(buf + 12);
	off = 14;
	if (s->vlan) {
		*eth_type = htons(ETH_P_8021Q);
		*(uint16_t *)(buf + 14) = htons(s->vlan_id);
		eth_type = (uint16_t *)(buf + 16);
		off += 4;
	}
	l3_off = off;
	if (s->family == 4) {
		struct iphdr *iph = (struct iphdr *)(buf + off);
		size_t hl = sizeof(*iph) + s->ip_opts_len;

		*eth_type = htons(ETH_P_IP);
		iph->version = 4;
		iph->ihl = hl / 4;
		iph->tot_len = htons(hl + l4_len);
		iph->id = htons(0x1234);
		iph->frag_off = htons(s->frag);
		iph->ttl = 64;
		iph->protocol = s->proto;
		iph->saddr = s->saddr[0];
		iph->daddr = s->daddr[0];
		/* Options: NOPs then an end-of-list, enough to exercise ihl > 5. */
		for (int i = 0; i < s->ip_opts_len; i++)
			buf[off + sizeof(*iph) + i] = i == s->ip_opts_len - 1 ? 0 : 1;
		iph->check = pb_fold(pb_sum(iph, hl, 0));
		off += hl;
	} else {
		struct ipv6hdr *ip6 = (struct ipv6hdr *)(buf + off);
		size_t ext = s->v6_ext != PB_V6_NONE ? 8 : 0;

		*eth_type = htons(ETH_P_IPV6);
		ip6->version = 6;
		ip6->payload_len = htons(ext + l4_len);
		ip6->hop_limit = 64;
		memcpy(&ip6->saddr, s->saddr, 16);
		memcpy(&ip6->daddr, s->daddr, 16);
		off += sizeof(*ip6);
		if (s->v6_ext == PB_V6_NONE) {
			ip6->nexthdr = s->proto;
		} else {
			ip6->nexthdr = s->v6_ext == PB_V6_FRAG ? 44 : 0;
			buf[off] = s->proto; /* the extension header's next header */
			off += 8;
		}
	}
	l4_off = off;
	if (s->proto == IPPROTO_TCP) {
		struct tcphdr *th = (struct tcphdr *)(buf + off);

		th->source = htons(s->sport);
		th->dest = htons(s->dport);
		th->seq = htonl(s->seq);
		th->ack_seq = htonl(s->ack);
		th->doff = 5;
		buf[off + 13] = s->tcp_flags;
		th->window = htons(65535);
	} else if (s->proto == IPPROTO_UDP) {
		struct udphdr *uh = (struct udphdr *)(buf + off);

		uh->source = htons(s->sport);
		uh->dest = htons(s->dport);
		uh->len = htons(l4_len);
	}
	if (s->payload_len)
		memcpy(buf + off + l4_hdr, s->payload, s->payload_len);
	if (l4_hdr) {
		size_t csum_off = l4_off + (s->proto == IPPROTO_TCP ? 16 : 6);
		uint16_t check = 0;

		if (!(s->proto == IPPROTO_UDP && s->udp_csum_zero)) {
			check = pb_fold(
				pb_sum(buf + l4_off, l4_len,
				       pb_pseudo(s->family, s->saddr, s->daddr, s->proto, l4_len)));
			if (s->proto == IPPROTO_UDP && check == 0)
				check = 0xffff;
		}
		memcpy(buf + csum_off, &check, 2);
	}
	(void)l3_off;
	return l4_off + l4_len;
}

/*
 * Recomputes the IPv4 header checksum and the TCP/UDP checksum of a frame
 * built by pb_build (no extension headers) and says whether both are right.
 * A UDP checksum of 0 ("none") counts as right.
 */
static inline bool pb_verify_csums(const uint8_t *buf, size_t len)
{
	size_t off = 14, l4_off, l4_len;
	uint16_t type = ntohs(*(const uint16_t *)(buf + 12));
	uint32_t saddr[4] = {}, daddr[4] = {};
	int family;
	uint8_t proto;

	if (type == ETH_P_8021Q) {
		type = ntohs(*(const uint16_t *)(buf + 16));
		off += 4;
	}
	if (type == ETH_P_IP) {
		const struct iphdr *iph = (const void *)(buf + off);

		if (pb_fold(pb_sum(iph, iph->ihl * 4, 0)) != 0)
			return false;
		family = 4;
		saddr[0] = iph->saddr;
		daddr[0] = iph->daddr;
		proto = iph->protocol;
		l4_off = off + iph->ihl * 4;
		l4_len = ntohs(iph->tot_len) - iph->ihl * 4;
	} else if (type == ETH_P_IPV6) {
		const struct ipv6hdr *ip6 = (const void *)(buf + off);

		family = 6;
		memcpy(saddr, &ip6->saddr, 16);
		memcpy(daddr, &ip6->daddr, 16);
		proto = ip6->nexthdr;
		l4_off = off + sizeof(*ip6);
		l4_len = ntohs(ip6->payload_len);
	} else {
		return false;
	}
	if (l4_off + l4_len > len)
		return false;
	if (proto == IPPROTO_UDP && !*(const uint16_t *)(buf + l4_off + 6))
		return true;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return true;
	return pb_fold(pb_sum(buf + l4_off, l4_len,
			      pb_pseudo(family, saddr, daddr, proto, l4_len))) == 0;
}

#endif /* FERRY_PKT_BUILDER_H */
