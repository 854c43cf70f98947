// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ferry's TC entry points: the forward path at ingress (also the second half
 * of the XDP handoff), and reply translation at ingress of the interface
 * replies arrive on or at egress of a pod's host veth (see lb.bpf.h).
 */
#include "lb.bpf.h"

SEC("tc")
int ferry_tc_fwd(struct __sk_buff *skb)
{
	return ferry_fwd(skb, FERRY_HOOK_TC_INGRESS);
}

SEC("tc")
int ferry_tc_reply_in(struct __sk_buff *skb)
{
	return ferry_reply(skb, FERRY_HOOK_TC_INGRESS);
}

SEC("tc")
int ferry_tc_reply_eg(struct __sk_buff *skb)
{
	return ferry_reply(skb, FERRY_HOOK_TC_EGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
