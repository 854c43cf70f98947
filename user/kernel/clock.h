/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The data plane's coarse clock (bpf/clock.bpf.h): the tick measured once,
 * the offset between jiffies and CLOCK_MONOTONIC sampled by the XDP
 * object's ferry_clock_probe, both published into the .bss of the objects
 * that stamp flows.
 */
#ifndef FERRY_CLOCK_H
#define FERRY_CLOCK_H

#include <linux/types.h>

struct ferry_xdp;
struct ferry_tc;

struct ferry_clock {
	__u64 tick_ns; /* ns per jiffy; 0: not measured yet */
	__u64 synced_ns; /* CLOCK_MONOTONIC when it was read */
	int err; /* the measurement failed (-errno): the helper stays */
};

/*
 * Measures the tick (once, about 100 ms) and publishes the offset to xdp
 * and tc (tc may be NULL); later calls read the offset again once a
 * minute (jiffies follow the monotonic clock, so it should not move).
 * Returns 0 or -errno; where the tick could not be measured the objects
 * keep ferry_tick_ns 0, which is correct, only slower.
 */
int ferry_clock__sync(struct ferry_clock *c, struct ferry_xdp *xdp, struct ferry_tc *tc);

#endif /* FERRY_CLOCK_H */
