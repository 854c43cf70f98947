/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Address and port translation: the destination towards the backend
 * (forward) or the source back to the VIP (reply), with the IP and L4
 * checksums kept right for XDP frames and for skbs in every checksum state.
 */
#ifndef FERRY_NAT_BPF_H
#define FERRY_NAT_BPF_H

#include "hook.bpf.h"
#include "parse.bpf.h"
#include "csum.bpf.h"

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
		/* Read before the helpers, which invalidate packet pointers. */
		bool give_back = !v4;

		if (!v4 && udp) {
			__u16 *check = data + csum_off;

			if ((void *)(check + 1) > data_end)
				return -1;
			/* The helpers leave a zero ("none") UDP checksum and skb->csum alone. */
			give_back = *check != 0;
		}
		if (v4)
			bpf_l3_csum_replace(skb, l3 + offsetof(struct iphdr, check), 0, wdiff, 0);
		bpf_l4_csum_replace(skb, csum_off, 0, wdiff, BPF_F_PSEUDO_HDR | mangled0);
		/*
		 * On a CHECKSUM_COMPLETE skb the pseudo-header replace also
		 * takes diff out of skb->csum: right for IPv4, whose header
		 * checksum moves by -diff, wrong for IPv6, where the address
		 * change (+diff) and the L4 field (-diff) cancel out and the
		 * packet's sum does not move. BPF_F_IPV6 (Linux 6.16) skips
		 * that update; older kernels lack it, so give diff back.
		 * bpf_csum_update is a no-op unless the skb is
		 * CHECKSUM_COMPLETE.
		 */
		if (give_back)
			bpf_csum_update(skb, wdiff);
		bpf_l4_csum_replace(skb, csum_off, old_port, port, sizeof(port) | mangled0);
	}
	return 0;
}

/*
 * Translates an ICMP error that ferry_parse_icmp() accepted. reply: an error
 * about a forwarded packet (quoting client -> backend) on its way to the
 * client: the quoted destination becomes the VIP, and so does the outer
 * source if the backend itself sent the error. !reply: an error about a
 * reply (quoting VIP -> client) on its way to the backend: the quoted source
 * becomes the backend, and so does the outer destination (the VIP).
 *
 * Checksums are updated by hand at every hook, in order from the inside
 * out: the quoted IPv4 header, the quoted L4 checksum when the quote
 * reaches it (it covers the quoted addresses through its pseudo-header),
 * the ICMP checksum over all of those changes (ICMPv6 also over the outer
 * addresses, its pseudo-header), and the outer IPv4 header. Every change is
 * compensated inside the packet, so the sum of the bytes from L3 on does
 * not move: a CHECKSUM_COMPLETE skb's csum stays valid without the csum
 * helpers, and ICMP is never CHECKSUM_PARTIAL (the kernel sums it fully).
 */
static __always_inline int ferry_icmp_rewrite(void *ctx, const int hook,
					      const struct ferry_pkt *pkt, const bool reply,
					      const __be32 *addr, __be16 port)
{
	void *data = ferry_data(ctx, hook), *data_end = ferry_data_end(ctx, hook);
	__u32 l3 = pkt->l3_off & 0xff, l4 = pkt->l4_off & 0xff;
	__u32 il3 = pkt->inner_l3_off & 0xff, il4 = pkt->inner_l4_off & 0xff;
	const __be32 *old = reply ? pkt->key.saddr : pkt->key.daddr;
	__be16 old_port = reply ? pkt->key.sport : pkt->key.dport;
	bool v4 = pkt->key.family == FERRY_AF_INET;
	bool udp = pkt->key.proto == IPPROTO_UDP;
	__u64 daddr, dicmp;
	__be32 *outer, *inner;
	__u16 *check, oc, nc;
	__be16 *ports;
	bool hit;

	if (v4) {
		outer = data + l3 +
			(reply ? offsetof(struct iphdr, saddr) : offsetof(struct iphdr, daddr));
		inner = data + il3 +
			(reply ? offsetof(struct iphdr, daddr) : offsetof(struct iphdr, saddr));
		if ((void *)(outer + 1) > data_end || (void *)(inner + 1) > data_end)
			return -1;
		daddr = ferry_csum_diff32(0, old[0], addr[0]);
		hit = outer[0] == old[0];
		if (hit)
			outer[0] = addr[0];
		inner[0] = addr[0];
	} else {
		outer = data + l3 +
			(reply ? offsetof(struct ipv6hdr, saddr) : offsetof(struct ipv6hdr, daddr));
		inner = data + il3 +
			(reply ? offsetof(struct ipv6hdr, daddr) : offsetof(struct ipv6hdr, saddr));
		if ((void *)(outer + 4) > data_end || (void *)(inner + 4) > data_end)
			return -1;
		daddr = ferry_csum_diff32(0, old[0], addr[0]);
		daddr = ferry_csum_diff32(daddr, old[1], addr[1]);
		daddr = ferry_csum_diff32(daddr, old[2], addr[2]);
		daddr = ferry_csum_diff32(daddr, old[3], addr[3]);
		hit = outer[0] == old[0] && outer[1] == old[1] && outer[2] == old[2] &&
		      outer[3] == old[3];
		if (hit) {
			outer[0] = addr[0];
			outer[1] = addr[1];
			outer[2] = addr[2];
			outer[3] = addr[3];
		}
		inner[0] = addr[0];
		inner[1] = addr[1];
		inner[2] = addr[2];
		inner[3] = addr[3];
	}
	dicmp = daddr;
	if (hit && !v4)
		dicmp += daddr;

	ports = data + il4;
	if ((void *)(ports + 2) > data_end)
		return -1;
	ports[reply ? 1 : 0] = port;
	dicmp = ferry_csum_diff16(dicmp, old_port, port);

	if (v4) {
		struct iphdr *iiph = data + il3;

		if ((void *)(iiph + 1) > data_end)
			return -1;
		oc = iiph->check;
		nc = ferry_csum_apply(oc, daddr);
		iiph->check = nc;
		dicmp = ferry_csum_diff16(dicmp, oc, nc);
	}

	check = data + il4 +
		(udp ? offsetof(struct udphdr, check) : offsetof(struct tcphdr, check));
	if ((void *)(check + 1) <= data_end && !(udp && *check == 0)) {
		oc = *check;
		nc = ferry_csum_apply(oc, ferry_csum_diff16(daddr, old_port, port));
		if (udp && nc == 0)
			nc = 0xffff;
		*check = nc;
		dicmp = ferry_csum_diff16(dicmp, oc, nc);
	}

	if (v4 && hit) {
		struct iphdr *iph = data + l3;

		if ((void *)(iph + 1) > data_end)
			return -1;
		iph->check = ferry_csum_apply(iph->check, daddr);
	}

	check = data + l4 + 2; /* ICMP and ICMPv6 alike */
	if ((void *)(check + 1) > data_end)
		return -1;
	*check = ferry_csum_apply(*check, dicmp);
	return 0;
}

#endif /* FERRY_NAT_BPF_H */
