// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* ferry's XDP entry point: the forward path at the driver (see lb.bpf.h). */
#include "lb.bpf.h"

SEC("xdp")
int ferry_xdp_fwd(struct xdp_md *ctx)
{
	return ferry_fwd(ctx, FERRY_HOOK_XDP);
}

/* ferry_clock_probe's readings, for user/kernel/clock.c. */
__u64 ferry_probe_ns0 = 0;
__u64 ferry_probe_j = 0;
__u64 ferry_probe_ns1 = 0;

/*
 * Never attached: user space runs it (BPF_PROG_TEST_RUN) to read jiffies
 * and the coarse clock together, which sets ferry_now()'s offset
 * (clock.bpf.h).
 */
SEC("xdp")
int ferry_clock_probe(struct xdp_md *ctx)
{
	ferry_probe_ns0 = bpf_ktime_get_coarse_ns();
	ferry_probe_j = bpf_jiffies64();
	ferry_probe_ns1 = bpf_ktime_get_coarse_ns();
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
