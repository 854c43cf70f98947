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

		if (v4)
			bpf_l3_csum_replace(skb, l3 + offsetof(struct iphdr, check), 0, wdiff, 0);
		bpf_l4_csum_replace(skb, csum_off, 0, wdiff, BPF_F_PSEUDO_HDR | mangled0);
		bpf_l4_csum_replace(skb, csum_off, old_port, port, sizeof(port) | mangled0);
	}
	return 0;
}

#endif /* FERRY_NAT_BPF_H */
