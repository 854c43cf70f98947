/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What every part of the body needs from its hook: packet bounds, the
 * ingress interface and the "not ours" / drop verdicts. Each function takes
 * a constant hook (FERRY_HOOK_*) that clang folds, so a program keeps only
 * its own branch.
 */
#ifndef FERRY_HOOK_BPF_H
#define FERRY_HOOK_BPF_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "ferry_maps.h"
#include "clock.bpf.h"

/*
 * How much of an skb a pull makes linear: the longest headers ferry parses
 * (Ethernet, VLAN, IPv4 with options or IPv6, TCP with options, or an ICMP
 * error's quote). Payload is read with bpf_skb_load_bytes, which needs none.
 */
#define FERRY_TC_PULL_LEN 192

/*
 * The verdict for "not ours" at TC: TC_ACT_UNSPEC, which is tcx's
 * TCX_NEXT and lets the next cls_bpf filter run, so that a CNI's programs
 * attached after ferry's still see every packet ferry does not take.
 * TC_ACT_OK would end the chain there. A loader may set another value
 * before load (the packet fixtures use TC_ACT_OK to see "passed" plainly).
 */
const volatile int ferry_tc_pass = TC_ACT_UNSPEC;

/*
 * A 32-bit context field loaded straight from the context register. With
 * plain C, clang may keep ctx + offsetof(field) in a register and load
 * through it later (after a helper call, to spare an addition), which the
 * verifier rejects: "dereference of modified ctx ptr". The asm pins the
 * access to the form the verifier rewrites.
 */
#define ferry_ctx_u32(ctx, type, field)                               \
	({                                                            \
		__u64 __v;                                            \
		asm volatile("%0 = *(u32 *)(%1 + %2)"                 \
			     : "=r"(__v)                              \
			     : "r"(ctx), "i"(offsetof(type, field))); \
		__v;                                                  \
	})

static __always_inline void *ferry_data(void *ctx, const int hook)
{
	if (hook == FERRY_HOOK_XDP)
		return (void *)(long)ferry_ctx_u32(ctx, struct xdp_md, data);
	return (void *)(long)ferry_ctx_u32(ctx, struct __sk_buff, data);
}

static __always_inline void *ferry_data_end(void *ctx, const int hook)
{
	if (hook == FERRY_HOOK_XDP)
		return (void *)(long)ferry_ctx_u32(ctx, struct xdp_md, data_end);
	return (void *)(long)ferry_ctx_u32(ctx, struct __sk_buff, data_end);
}

static __always_inline __u32 ferry_ifindex(void *ctx, const int hook)
{
	if (hook == FERRY_HOOK_XDP)
		return ((struct xdp_md *)ctx)->ingress_ifindex;
	return ((struct __sk_buff *)ctx)->ifindex;
}

/* For ferry_parse(): the skb's length when it is a GSO skb (BIG TCP lengths), else 0. */
static __always_inline __u32 ferry_gso_len(void *ctx, const int hook)
{
	struct __sk_buff *skb = ctx;

	if (hook == FERRY_HOOK_XDP || !skb->gso_size)
		return 0;
	return skb->len;
}

static __always_inline int ferry_pass(const int hook)
{
	return hook == FERRY_HOOK_XDP ? XDP_PASS : ferry_tc_pass;
}

static __always_inline int ferry_drop(const int hook)
{
	return hook == FERRY_HOOK_XDP ? XDP_DROP : TC_ACT_SHOT;
}

/*
 * Makes the headers linear (FERRY_TC_PULL_LEN bytes, or the whole skb when
 * shorter); ferry_parse_ctx() calls it only when they are not already.
 */
static __always_inline void ferry_tc_pull(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 want = skb->len < FERRY_TC_PULL_LEN ? skb->len : FERRY_TC_PULL_LEN;

	if (data + want > data_end)
		bpf_skb_pull_data(skb, want);
}

#endif /* FERRY_HOOK_BPF_H */
