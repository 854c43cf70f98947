/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The coarse clock flows are stamped with (last_ns, the next-hop caches'
 * expiry, the new-flow guard's window): CLOCK_MONOTONIC at tick resolution,
 * as bpf_ktime_get_coarse_ns() returns it, computed from jiffies instead.
 * The kernel advances jiffies from the same monotonic time, one per tick
 * (TICK_NSEC), so jiffies * tick + offset is that clock, and the verifier
 * turns bpf_jiffies64() into one load where the helper is a call and a
 * seqcount read on every packet. ferryd measures the tick and the offset
 * with ferry_clock_probe (user/kernel/clock.c) after load and publishes
 * them here, in each object's .bss; until it has (or where the tick cannot
 * be measured), ferry_tick_ns is 0 and the helper answers.
 */
#ifndef FERRY_CLOCK_BPF_H
#define FERRY_CLOCK_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Written by user space; the offset first, then the tick (read in that order's reverse). */
__u64 ferry_tick_ns = 0;
__u64 ferry_clock_off = 0;

static __always_inline __u64 ferry_now(void)
{
	__u64 tick = ferry_tick_ns;

	if (!tick)
		return bpf_ktime_get_coarse_ns();
	/* Modulo 2^64 on both sides: jiffies start near the top and wrap. */
	return bpf_jiffies64() * tick + ferry_clock_off;
}

#endif /* FERRY_CLOCK_BPF_H */
